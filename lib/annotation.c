/*
 * annotation.c: reads ground-truth and prediction PNGs of dense benchmarks as raw sample values
 * (dmllm_read_png_values): class-index maps (ADE20K annotations, palette label maps such as
 * dmllm_write_label_png's) and 16-bit depth in millimetres (NYUv2), i.e. what
 * numpy.array(PIL.Image.open(path)) holds for modes L, P and I;16. Never converts to RGB (that is
 * image.c's job for model inputs) and touches no model or session.
 */
#include "common.h"
#include "image.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct values_decode {
    const char *path;
    FILE *file;
    png_structp png;
    png_infop info;
    uint8_t *rows;       /* [height][row_bytes] decoded samples */
    png_bytep *row_ptrs; /* [height] into rows */
    dmllm_png_values *result;
    dmllm_status status;
    char message[DMLLM_PNG_MESSAGE];
} values_decode;

/* Everything that may longjmp happens here, with no locals that change after setjmp. */
static void decode(values_decode *d) {
    if (setjmp(png_jmpbuf(d->png))) {
        if (d->status == DMLLM_OK) d->status = dmllm_fail(DMLLM_ERR_FORMAT, "%s: bad PNG: %s", d->path, d->message);
        return;
    }
    png_init_io(d->png, d->file);
    png_read_info(d->png, d->info);
    png_uint_32 width, height;
    int bit_depth, color_type;
    png_get_IHDR(d->png, d->info, &width, &height, &bit_depth, &color_type, NULL, NULL, NULL);
    if (color_type & PNG_COLOR_MASK_COLOR && color_type != PNG_COLOR_TYPE_PALETTE) {
        d->status =
            dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%s: an RGB PNG; annotation maps must be grayscale or palette", d->path);
        return;
    }
    if ((int64_t)width * height > DMLLM_IMAGE_MAX_PIXELS) {
        d->status = dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%s: %ux%u pixels exceed the limit", d->path, (unsigned)width,
                               (unsigned)height);
        return;
    }
    /* PIL: 1-bit gray is mode "1" (0/1), 2- and 4-bit gray are scaled to 0..255, palette indices stay. */
    if (color_type == PNG_COLOR_TYPE_GRAY && (bit_depth == 2 || bit_depth == 4))
        png_set_expand_gray_1_2_4_to_8(d->png);
    else if (bit_depth < 8)
        png_set_packing(d->png);
    if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_strip_alpha(d->png);
    png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);
    const size_t row_bytes = png_get_rowbytes(d->png, d->info);
    d->rows = dmllm_malloc(height, row_bytes);
    d->row_ptrs = dmllm_malloc(height, sizeof *d->row_ptrs);
    dmllm_png_values *r = d->result;
    r->values = dmllm_malloc((size_t)width * height, sizeof *r->values);
    if (!d->rows || !d->row_ptrs || !r->values) {
        d->status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory for %ux%u values", d->path, (unsigned)width,
                               (unsigned)height);
        return;
    }
    for (png_uint_32 y = 0; y < height; y++) d->row_ptrs[y] = d->rows + y * row_bytes;
    png_read_image(d->png, d->row_ptrs);
    r->width = (int)width;
    r->height = (int)height;
    r->bit_depth = bit_depth;
    r->palette = color_type == PNG_COLOR_TYPE_PALETTE;
    for (png_uint_32 y = 0; y < height; y++)
        for (png_uint_32 x = 0; x < width; x++) {
            const uint8_t *sample = d->row_ptrs[y] + (bit_depth == 16 ? 2 * x : x);
            r->values[(size_t)y * width + x] = (uint16_t)(bit_depth == 16 ? sample[0] << 8 | sample[1] : sample[0]);
        }
}

dmllm_status dmllm_read_png_values(const char *path, dmllm_png_values **out) {
    if (!out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_read_png_values: out is NULL");
    *out = NULL;
    if (!path) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_read_png_values: path is NULL");
    values_decode d = {.path = path, .status = DMLLM_OK};
    uint8_t signature[8];
    if (!(d.file = fopen(path, "rb"))) return dmllm_fail(DMLLM_ERR_IO, "cannot open %s", path);
    if (fread(signature, 1, 8, d.file) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
        fclose(d.file);
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s is not a PNG file", path);
    }
    d.result = calloc(1, sizeof *d.result);
    d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d.message, dmllm_png_on_error, dmllm_png_on_warning);
    if (d.png) d.info = png_create_info_struct(d.png);
    if (!d.result || !d.png || !d.info)
        d.status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    if (d.status == DMLLM_OK) {
        /* Skips every ancillary chunk but tRNS unread: none matters for sample values, and libpng
         * 1.6 only warns about one above its 8 MB limit and allocates it anyway (66 bytes declaring
         * a 2 GB tEXt chunk allocated and touched 2 GB). */
        png_set_keep_unknown_chunks(d.png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
        png_set_sig_bytes(d.png, 8);
        decode(&d);
    }
    png_destroy_read_struct(d.png ? &d.png : NULL, d.info ? &d.info : NULL, NULL);
    fclose(d.file);
    free(d.rows);
    free(d.row_ptrs);
    if (d.status != DMLLM_OK) {
        dmllm_png_values_free(d.result);
        return d.status;
    }
    *out = d.result;
    return DMLLM_OK;
}

void dmllm_png_values_free(dmllm_png_values *values) {
    if (!values) return;
    free(values->values);
    free(values);
}
