/*
 * render.c: PNG pictures of dense predictions: label maps, overlays with a legend in a built-in
 * 5x7 font, depth as 16-bit units or a colour map, and the PCA picture of vision-token features,
 * all through one atomic libpng writer. Reads caller buffers only; never touches a model or session.
 */
#include "render.h"

#include "image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the atomic PNG writer -------------------------------------------------------------------- */

typedef struct png_encode {
    png_structp png;
    png_infop info;
    char message[DMLLM_PNG_MESSAGE]; /* libpng's error text */
} png_encode;

/* The checks every writer fn shares: a path, the data, and a size within the image limit. */
static dmllm_status check_output(const char *fn, const char *path, const void *data, const char *data_name, int width,
                                 int height) {
    if (!path || !*path) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: path is NULL or empty", fn);
    if (!data) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, data_name);
    if (width <= 0 || height <= 0 || (int64_t)width * height > DMLLM_IMAGE_MAX_PIXELS)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: size %dx%d is empty or above %lld pixels", fn, width, height,
                          (long long)DMLLM_IMAGE_MAX_PIXELS);
    return DMLLM_OK;
}

static size_t png_bytes_per_pixel(dmllm_png_kind kind) {
    return kind == DMLLM_PNG_RGB8 ? 3 : kind == DMLLM_PNG_GRAY16 ? 2 : 1;
}

/* Encodes into an open file; false with e->message set when libpng fails (a failed fwrite included). */
static bool encode_png(png_encode *e, FILE *file, dmllm_png_kind kind, const uint8_t *pixels, int width, int height,
                       const uint8_t *palette, int n_palette) {
    if (setjmp(png_jmpbuf(e->png))) return false;
    png_init_io(e->png, file);
    const int color_type = kind == DMLLM_PNG_RGB8 ? PNG_COLOR_TYPE_RGB
                         : kind == DMLLM_PNG_GRAY16 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_PALETTE;
    png_set_IHDR(e->png, e->info, (png_uint_32)width, (png_uint_32)height, kind == DMLLM_PNG_GRAY16 ? 16 : 8,
                 color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (kind == DMLLM_PNG_PALETTE8) {
        png_color entries[256];
        for (int i = 0; i < n_palette; i++) {
            entries[i].red = palette[3 * i];
            entries[i].green = palette[3 * i + 1];
            entries[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(e->png, e->info, entries, n_palette);
    }
    png_write_info(e->png, e->info);
    const size_t row_bytes = (size_t)width * png_bytes_per_pixel(kind);
    for (int y = 0; y < height; y++) png_write_row(e->png, pixels + (size_t)y * row_bytes);
    png_write_end(e->png, NULL);
    return true;
}

dmllm_status dmllm_png_write(const char *path, dmllm_png_kind kind, const uint8_t *pixels, int width, int height,
                             const uint8_t *palette, int n_palette) {
    DMLLM_TRY(check_output("PNG writer", path, pixels, "pixels", width, height));
    if ((kind == DMLLM_PNG_PALETTE8) != (palette != NULL) || (palette && (n_palette < 1 || n_palette > 256)))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: a palette PNG needs 1..256 palette entries (got %d)", path,
                          palette ? n_palette : 0);
    const size_t temp_size = strlen(path) + 32;
    char *temp = malloc(temp_size); /* "<path>.tmp.<pid>" */
    if (!temp) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(temp, temp_size, "%s.tmp.%ld", path, (long)getpid());
    FILE *file = fopen(temp, "wb");
    if (!file) {
        const dmllm_status status = dmllm_fail(DMLLM_ERR_IO, "%s: cannot create the temporary file %s: %s", path, temp,
                                               strerror(errno));
        free(temp);
        return status;
    }
    dmllm_status status = DMLLM_OK;
    png_encode e = {0};
    e.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e.message, dmllm_png_on_error, dmllm_png_on_warning);
    if (e.png) e.info = png_create_info_struct(e.png);
    if (!e.png || !e.info) {
        status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: cannot create a libpng writer", path);
    } else {
        errno = 0;
        if (!encode_png(&e, file, kind, pixels, width, height, palette, n_palette))
            status = dmllm_fail(DMLLM_ERR_IO, "%s: writing %s failed: %s%s%s", path, temp, e.message, errno ? ": " : "",
                                errno ? strerror(errno) : "");
    }
    png_destroy_write_struct(e.png ? &e.png : NULL, e.info ? &e.info : NULL);
    /* Flushed to the disk before the rename, so a crash leaves the old file or the whole new one. */
    if (status == DMLLM_OK && (fflush(file) != 0 || fsync(fileno(file)) != 0))
        status = dmllm_fail(DMLLM_ERR_IO, "%s: writing %s failed: %s", path, temp, strerror(errno));
    if (fclose(file) != 0 && status == DMLLM_OK)
        status = dmllm_fail(DMLLM_ERR_IO, "%s: closing %s failed: %s", path, temp, strerror(errno));
    if (status == DMLLM_OK && rename(temp, path) != 0)
        status = dmllm_fail(DMLLM_ERR_IO, "%s: cannot rename %s over it: %s", path, temp, strerror(errno));
    if (status != DMLLM_OK) remove(temp);
    free(temp);
    return status;
}

/* ---- label colours and label maps -------------------------------------------------------------- */

enum { LABEL_COLOR_LIMIT = 1 << 24 };

static void label_color(uint32_t label, uint8_t rgb[3]) {
    rgb[0] = rgb[1] = rgb[2] = 0;
    for (int j = 0; j < 8; j++, label >>= 3)
        for (int c = 0; c < 3; c++) rgb[c] |= (uint8_t)(((label >> c) & 1u) << (7 - j));
}

dmllm_status dmllm_label_color(int label, uint8_t rgb[3]) {
    if (!rgb) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_label_color: rgb is NULL");
    if (label < 0 || label >= LABEL_COLOR_LIMIT)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_label_color: label %d is outside 0..%d", label,
                          LABEL_COLOR_LIMIT - 1);
    label_color((uint32_t)label, rgb);
    return DMLLM_OK;
}

/* Validates a label map and its label count for the function fn. */
static dmllm_status check_label_map(const char *fn, const char *path, const uint16_t *labels, int width, int height,
                                    int n_labels) {
    DMLLM_TRY(check_output(fn, path, labels, "labels", width, height));
    if (n_labels < 1 || n_labels > 65536)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: n_labels %d is outside 1..65536", fn, n_labels);
    const size_t n = (size_t)width * height;
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= n_labels)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: label %u at (x %zu, y %zu) is not below n_labels = %d", fn,
                              labels[i], i % (size_t)width, i / (size_t)width, n_labels);
    return DMLLM_OK;
}

dmllm_status dmllm_write_label_png(const char *path, const uint16_t *labels, int width, int height, int n_labels) {
    DMLLM_TRY(check_label_map("dmllm_write_label_png", path, labels, width, height, n_labels));
    const size_t n = (size_t)width * height;
    const bool palette8 = n_labels <= 256;
    uint8_t *pixels; /* [height][width] indices, or [height][width][2] big-endian labels */
    DMLLM_TRY(dmllm_alloc(&pixels, n, palette8 ? 1 : 2, "the label PNG"));
    uint8_t palette[256 * 3]; /* [n_labels][rgb] */
    if (palette8) {
        for (int i = 0; i < n_labels; i++) label_color((uint32_t)i, palette + 3 * i);
        for (size_t i = 0; i < n; i++) pixels[i] = (uint8_t)labels[i];
    } else {
        for (size_t i = 0; i < n; i++) {
            pixels[2 * i] = (uint8_t)(labels[i] >> 8);
            pixels[2 * i + 1] = (uint8_t)labels[i];
        }
    }
    const dmllm_status status = dmllm_png_write(path, palette8 ? DMLLM_PNG_PALETTE8 : DMLLM_PNG_GRAY16, pixels, width,
                                                height, palette8 ? palette : NULL, n_labels);
    free(pixels);
    return status;
}

/* ---- the legend font --------------------------------------------------------------------------- */

/* 5x7 glyphs of printable ASCII 32..126, drawn for this file: seven rows each, '#' = ink. The
 * letters of descenders are drawn two rows lower, so their tails hang below the line. */
static const char font_glyphs[95][7][6] = {
    /*   */ {".....", ".....", ".....", ".....", ".....", ".....", "....."},
    /* ! */ {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."},
    /* " */ {".#.#.", ".#.#.", ".....", ".....", ".....", ".....", "....."},
    /* # */ {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."},
    /* $ */ {"..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#.."},
    /* % */ {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
    /* & */ {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"},
    /* ' */ {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."},
    /* ( */ {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
    /* ) */ {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
    /* * */ {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."},
    /* + */ {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
    /* , */ {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
    /* - */ {".....", ".....", ".....", "#####", ".....", ".....", "....."},
    /* . */ {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
    /* / */ {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
    /* 0 */ {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
    /* 1 */ {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
    /* 2 */ {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
    /* 3 */ {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
    /* 4 */ {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
    /* 5 */ {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
    /* 6 */ {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
    /* 7 */ {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
    /* 8 */ {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
    /* 9 */ {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
    /* : */ {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
    /* ; */ {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."},
    /* < */ {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."},
    /* = */ {".....", ".....", "#####", ".....", "#####", ".....", "....."},
    /* > */ {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."},
    /* ? */ {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
    /* @ */ {".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."},
    /* A */ {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
    /* B */ {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
    /* C */ {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
    /* D */ {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
    /* E */ {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
    /* F */ {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
    /* G */ {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
    /* H */ {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
    /* I */ {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
    /* J */ {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
    /* K */ {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
    /* L */ {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
    /* M */ {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
    /* N */ {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
    /* O */ {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
    /* P */ {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
    /* Q */ {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
    /* R */ {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
    /* S */ {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
    /* T */ {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
    /* U */ {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
    /* V */ {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
    /* W */ {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
    /* X */ {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
    /* Y */ {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
    /* Z */ {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
    /* [ */ {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."},
    /* \ */ {".....", "#....", ".#...", "..#..", "...#.", "....#", "....."},
    /* ] */ {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."},
    /* ^ */ {"..#..", ".#.#.", "#...#", ".....", ".....", ".....", "....."},
    /* _ */ {".....", ".....", ".....", ".....", ".....", ".....", "#####"},
    /* ` */ {".#...", "..#..", "...#.", ".....", ".....", ".....", "....."},
    /* a */ {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"},
    /* b */ {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."},
    /* c */ {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."},
    /* d */ {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"},
    /* e */ {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."},
    /* f */ {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."},
    /* g */ {".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."},
    /* h */ {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"},
    /* i */ {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."},
    /* j */ {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."},
    /* k */ {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."},
    /* l */ {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
    /* m */ {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"},
    /* n */ {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"},
    /* o */ {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."},
    /* p */ {"####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."},
    /* q */ {".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"},
    /* r */ {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."},
    /* s */ {".....", ".....", ".###.", "#....", ".###.", "....#", "####."},
    /* t */ {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."},
    /* u */ {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"},
    /* v */ {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
    /* w */ {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."},
    /* x */ {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"},
    /* y */ {"#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."},
    /* z */ {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"},
    /* { */ {"...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#."},
    /* | */ {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
    /* } */ {".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#..."},
    /* ~ */ {".....", ".....", ".#...", "#.#.#", "...#.", ".....", "....."},
};

static const char descenders[] = "gjpqy";

enum {
    GLYPH_W = 5, GLYPH_H = 7, DESCENT = 2,
    ADVANCE = GLYPH_W + 1, /* one blank column between characters */
    ROW_H = 10,            /* legend row pitch, before scaling: a glyph, its descent, one blank row */
    SWATCH = 8,            /* swatch side, before scaling */
    PAD = 3,               /* margin inside the legend box, before scaling */
    LEGEND_SCALE_STEP = 400
};

/* A clipped RGB canvas: drawing outside [0, w) x [0, h) is dropped. */
typedef struct canvas {
    uint8_t *rgb; /* [h][w][3] */
    int w, h;
} canvas;

static void fill_rect(canvas *c, int x0, int y0, int w, int h, const uint8_t rgb[3]) {
    const int x1 = x0 + w < c->w ? x0 + w : c->w, y1 = y0 + h < c->h ? y0 + h : c->h;
    for (int y = y0 < 0 ? 0 : y0; y < y1; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1; x++) memcpy(c->rgb + ((size_t)y * c->w + x) * 3, rgb, 3);
}

/* Draws text from (x, y) at an integer scale; UTF-8 continuation bytes are skipped so each
 * non-ASCII character shows as one '?'. */
static void draw_text(canvas *c, int x, int y, int scale, const char *text, const uint8_t rgb[3]) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p & 0xC0) == 0x80) continue;
        const int index = *p >= 32 && *p <= 126 ? *p - 32 : '?' - 32;
        const int top = y + (strchr(descenders, *p) ? DESCENT * scale : 0);
        for (int row = 0; row < GLYPH_H; row++)
            for (int col = 0; col < GLYPH_W; col++)
                if (font_glyphs[index][row][col] == '#') fill_rect(c, x + col * scale, top + row * scale, scale, scale, rgb);
        x += ADVANCE * scale;
    }
}

static int text_columns(const char *text) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

/* Text of a legend row: the caller's name or "label N". buffer holds the fallback. */
static const char *legend_name(const char *const *names, int label, char *buffer, size_t size) {
    if (names && names[label]) return names[label];
    snprintf(buffer, size, "label %d", label);
    return buffer;
}

/* The legend over the top-left corner of the blended picture: the box darkens what is under it to
 * a quarter so white text reads on any image. */
static void draw_legend(canvas *c, const bool *present, int n_labels, const uint8_t *colors, const char *const *names) {
    const int short_side = c->w < c->h ? c->w : c->h;
    const int s = short_side / LEGEND_SCALE_STEP > 1 ? short_side / LEGEND_SCALE_STEP : 1;
    const int pad = PAD * s, row_h = ROW_H * s, swatch = SWATCH * s;
    const int n_fit = (c->h - 2 * pad) / row_h;
    int n_present = 0;
    for (int i = 0; i < n_labels; i++) n_present += present[i];
    if (n_fit < 1 || n_present == 0) return;
    const int n_shown = n_present <= n_fit ? n_present : n_fit - 1; /* rows with a swatch */
    char more[32] = "";                                              /* "+N more" row, if any */
    if (n_shown < n_present) snprintf(more, sizeof more, "+%d more", n_present - n_shown);
    char fallback[32];
    int max_columns = text_columns(more);
    for (int i = 0, shown = 0; i < n_labels && shown < n_shown; i++) {
        if (!present[i]) continue;
        const int columns = text_columns(legend_name(names, i, fallback, sizeof fallback));
        if (columns > max_columns) max_columns = columns;
        shown++;
    }
    const int text_x = pad + swatch + pad;
    const int box_w = text_x + max_columns * ADVANCE * s - s + pad;
    const int box_h = 2 * pad + (n_shown + (more[0] != 0)) * row_h;
    for (int y = 0; y < box_h && y < c->h; y++)
        for (int x = 0; x < box_w && x < c->w; x++)
            for (int k = 0; k < 3; k++) c->rgb[((size_t)y * c->w + x) * 3 + k] >>= 2;
    static const uint8_t white[3] = {255, 255, 255}, outline[3] = {200, 200, 200};
    int y = pad + (row_h - swatch) / 2;
    for (int i = 0, shown = 0; i < n_labels && shown < n_shown; i++) {
        if (!present[i]) continue;
        /* The light outline keeps dark colours (label 0 is black) visible on the darkened box. */
        fill_rect(c, pad, y, swatch, swatch, outline);
        fill_rect(c, pad + s, y + s, swatch - 2 * s, swatch - 2 * s, colors + 3 * i);
        draw_text(c, text_x, y + (swatch - GLYPH_H * s) / 2, s, legend_name(names, i, fallback, sizeof fallback), white);
        y += row_h;
        shown++;
    }
    if (more[0]) draw_text(c, pad, y + (swatch - GLYPH_H * s) / 2, s, more, white);
}

dmllm_status dmllm_write_overlay_png(const char *path, const dmllm_image *image, const uint16_t *labels, int n_labels,
                                     const char *const *names, float alpha) {
    static const char fn[] = "dmllm_write_overlay_png";
    if (!image) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: image is NULL", fn);
    const int w = image->width, h = image->height;
    DMLLM_TRY(check_label_map(fn, path, labels, w, h, n_labels));
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: alpha %g is outside [0, 1]", fn, (double)alpha);
    const size_t n = (size_t)w * h;
    uint8_t *colors = NULL; /* [n_labels][3] */
    bool *present = NULL;   /* [n_labels] */
    uint8_t *rgb = NULL;    /* [h][w][3] the picture */
    dmllm_status status = dmllm_alloc(&colors, (size_t)n_labels, 3, "overlay colours");
    if (status == DMLLM_OK) status = dmllm_alloc(&rgb, n, 3, "the overlay picture");
    if (status == DMLLM_OK && !(present = dmllm_calloc((size_t)n_labels, sizeof *present)))
        status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (status == DMLLM_OK) {
        for (int i = 0; i < n_labels; i++) label_color((uint32_t)i, colors + 3 * i);
        for (size_t i = 0; i < n; i++) {
            present[labels[i]] = true;
            for (int k = 0; k < 3; k++)
                rgb[3 * i + k] = (uint8_t)lroundf((1.0f - alpha) * image->pixels[3 * i + k] +
                                                  alpha * colors[3 * labels[i] + k]);
        }
        canvas c = {rgb, w, h};
        draw_legend(&c, present, n_labels, colors, names);
        status = dmllm_png_write(path, DMLLM_PNG_RGB8, rgb, w, h, NULL, 0);
    }
    free(colors);
    free(present);
    free(rgb);
    return status;
}

/* ---- depth ------------------------------------------------------------------------------------- */

dmllm_status dmllm_write_depth_png16(const char *path, const float *depth_m, int width, int height, float scale) {
    static const char fn[] = "dmllm_write_depth_png16";
    DMLLM_TRY(check_output(fn, path, depth_m, "depth_m", width, height));
    if (!(scale >= 0.0f) || isinf(scale))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: scale %g is negative or not finite", fn, (double)scale);
    if (scale == 0.0f) scale = DMLLM_DEPTH_PNG_SCALE;
    const size_t n = (size_t)width * height;
    uint8_t *pixels; /* [height][width][2] big-endian */
    DMLLM_TRY(dmllm_alloc(&pixels, n, 2, "the depth PNG"));
    for (size_t i = 0; i < n; i++) {
        const double v = (double)depth_m[i] * scale; /* NaN fails both comparisons below */
        const unsigned u = v >= 65535.0 ? 65535u : v > 0.0 ? (unsigned)floor(v + 0.5) : 0u;
        pixels[2 * i] = (uint8_t)(u >> 8);
        pixels[2 * i + 1] = (uint8_t)u;
    }
    const dmllm_status status = dmllm_png_write(path, DMLLM_PNG_GRAY16, pixels, width, height, NULL, 0);
    free(pixels);
    return status;
}

void dmllm_depth_color(float t, uint8_t rgb[3]) {
    static const float stops[5][3] = {
        {252, 236, 140}, {250, 170, 70}, {225, 105, 100}, {130, 60, 150}, {25, 30, 95}};
    const float x = (t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f) * 4.0f; /* NaN -> 0 */
    const int i = x >= 4.0f ? 3 : (int)x;
    const float f = x - (float)i;
    for (int k = 0; k < 3; k++) rgb[k] = (uint8_t)lroundf(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f);
}

static bool depth_valid(float d) { return isfinite(d) && d > 0.0f; }

static int compare_floats(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Percentile q (0..100) of sorted[n], interpolating linearly between order statistics. */
static float percentile(const float *sorted, size_t n, double q) {
    const double position = q / 100.0 * (double)(n - 1);
    const size_t lo = (size_t)position, hi = lo + 1 < n ? lo + 1 : lo;
    return (float)(sorted[lo] + (sorted[hi] - sorted[lo]) * (position - (double)lo));
}

dmllm_status dmllm_write_depth_color_png(const char *path, const float *depth_m, int width, int height, float min_m,
                                         float max_m) {
    static const char fn[] = "dmllm_write_depth_color_png";
    DMLLM_TRY(check_output(fn, path, depth_m, "depth_m", width, height));
    if (!isfinite(min_m) || !isfinite(max_m) || (min_m > 0.0f && max_m > 0.0f && min_m >= max_m))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: range %g .. %g m is not finite or empty", fn, (double)min_m,
                          (double)max_m);
    const size_t n = (size_t)width * height;
    if (min_m <= 0.0f || max_m <= 0.0f) {
        float *valid; /* [n_valid] sorted valid depths */
        DMLLM_TRY(dmllm_alloc(&valid, n, sizeof *valid, "depth percentiles"));
        size_t n_valid = 0;
        for (size_t i = 0; i < n; i++)
            if (depth_valid(depth_m[i])) valid[n_valid++] = depth_m[i];
        if (n_valid > 0) {
            qsort(valid, n_valid, sizeof *valid, compare_floats);
            if (min_m <= 0.0f) min_m = percentile(valid, n_valid, 2.0);
            if (max_m <= 0.0f) max_m = percentile(valid, n_valid, 98.0);
        }
        free(valid);
    }
    const float range = max_m - min_m;
    uint8_t *rgb; /* [height][width][3] */
    DMLLM_TRY(dmllm_alloc(&rgb, n, 3, "the depth colour PNG"));
    for (size_t i = 0; i < n; i++) {
        if (depth_valid(depth_m[i])) dmllm_depth_color(range > 0.0f ? (depth_m[i] - min_m) / range : 0.0f, rgb + 3 * i);
        else rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 0;
    }
    const dmllm_status status = dmllm_png_write(path, DMLLM_PNG_RGB8, rgb, width, height, NULL, 0);
    free(rgb);
    return status;
}

/* ---- PCA of token features --------------------------------------------------------------------- */

enum { PCA_COMPONENTS = 3, PCA_MAX_ITERATIONS = 1000, PCA_COLUMN_BLOCK = 256 };

/* w[r] = (x[r] - mean) . v for every row. */
static void centred_times(const float *x, int rows, int cols, double mean_dot_v, const double *v, double *w) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * cols;
        double sum[4] = {0.0, 0.0, 0.0, 0.0}; /* four chains the CPU can overlap */
        int j = 0;
        for (; j + 4 <= cols; j += 4)
            for (int u = 0; u < 4; u++) sum[u] += row[j + u] * v[j + u];
        for (; j < cols; j++) sum[0] += row[j] * v[j];
        w[r] = (sum[0] + sum[1]) + (sum[2] + sum[3]) - mean_dot_v;
    }
}

/* z = (X - 1 mean)^T w. Each thread owns a block of columns and walks the rows in order, so the
 * sums do not depend on the thread count. */
static void centred_transpose_times(const float *x, int rows, int cols, const double *mean, const double *w, double *z) {
    double w_sum = 0.0;
    for (int r = 0; r < rows; r++) w_sum += w[r];
    const int n_blocks = (cols + PCA_COLUMN_BLOCK - 1) / PCA_COLUMN_BLOCK;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n_blocks; b++) {
        const int j0 = b * PCA_COLUMN_BLOCK, j1 = j0 + PCA_COLUMN_BLOCK < cols ? j0 + PCA_COLUMN_BLOCK : cols;
        for (int j = j0; j < j1; j++) z[j] = -mean[j] * w_sum;
        for (int r = 0; r < rows; r++) {
            const float *row = x + (size_t)r * cols;
            for (int j = j0; j < j1; j++) z[j] += row[j] * w[r];
        }
    }
}

static double dot(const double *a, const double *b, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* Removes from v its parts along the unit vectors basis[0..k-1] (the deflation) and returns the
 * remaining norm. */
static double orthogonalise(double *v, const double *basis, int k, int n) {
    for (int i = 0; i < k; i++) {
        const double along = dot(v, basis + (size_t)i * n, n);
        for (int j = 0; j < n; j++) v[j] -= along * basis[(size_t)i * n + j];
    }
    return sqrt(dot(v, v, n));
}

dmllm_status dmllm_pca3(const float *features, int rows, int cols, double *components, double *scores,
                        double *variances) {
    if (!features || !components || !scores || !variances || rows < 1 || cols < 1)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "PCA: NULL buffer or empty %d x %d features", rows, cols);
    double *mean = dmllm_calloc((size_t)cols, sizeof *mean); /* [cols] */
    double *v = dmllm_malloc((size_t)cols, sizeof *v);       /* [cols] current direction */
    double *z = dmllm_malloc((size_t)cols, sizeof *z);       /* [cols] next direction */
    double *w = dmllm_malloc((size_t)rows, sizeof *w);       /* [rows] projections */
    if (!mean || !v || !z || !w) {
        free(mean);
        free(v);
        free(z);
        free(w);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "PCA: out of memory for %d x %d features", rows, cols);
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) mean[j] += features[(size_t)r * cols + j];
    for (int j = 0; j < cols; j++) mean[j] /= rows;
    double total = 0.0; /* sum of squared centred entries: bounds every |X^T X v| for unit v */
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            const double d = features[(size_t)r * cols + j] - mean[j];
            total += d * d;
        }
    /* Start vectors from a fixed linear congruential sequence: deterministic, and almost surely
     * not orthogonal to any component. */
    uint64_t state = 0x2545F4914F6CDD1Dull;
    for (int k = 0; k < PCA_COMPONENTS; k++) {
        double *component = components + (size_t)k * cols;
        for (int j = 0; j < cols; j++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            v[j] = (double)(state >> 11) / 9007199254740992.0 - 0.5;
        }
        double norm = orthogonalise(v, components, k, cols);
        bool has_variance = norm > 0.0 && total > 0.0;
        for (int it = 0; has_variance && it < PCA_MAX_ITERATIONS; it++) {
            for (int j = 0; j < cols; j++) v[j] /= norm;
            centred_times(features, rows, cols, dot(mean, v, cols), v, w);
            centred_transpose_times(features, rows, cols, mean, w, z);
            norm = orthogonalise(z, components, k, cols);
            /* What is left after deflation is rounding noise: the data has rank k. */
            if (norm <= 1e-12 * total) has_variance = false;
            const double cosine = has_variance ? fabs(dot(z, v, cols)) / norm : 1.0;
            memcpy(v, z, (size_t)cols * sizeof *v);
            if (1.0 - cosine < 1e-10) break; /* about 1e-5 rad: far below what 8-bit output shows */
        }
        if (has_variance) {
            norm = sqrt(dot(v, v, cols));
            int largest = 0;
            for (int j = 1; j < cols; j++)
                if (fabs(v[j]) > fabs(v[largest])) largest = j;
            const double sign = v[largest] < 0.0 ? -1.0 : 1.0;
            for (int j = 0; j < cols; j++) component[j] = sign * v[j] / norm;
        } else {
            memset(component, 0, (size_t)cols * sizeof *component);
        }
        centred_times(features, rows, cols, dot(mean, component, cols), component, w);
        double sum_squares = 0.0;
        for (int r = 0; r < rows; r++) {
            scores[(size_t)r * PCA_COMPONENTS + k] = w[r];
            sum_squares += w[r] * w[r];
        }
        variances[k] = rows > 1 ? sum_squares / (rows - 1) : 0.0;
    }
    free(mean);
    free(v);
    free(z);
    free(w);
    return DMLLM_OK;
}

dmllm_status dmllm_write_pca_png(const char *path, const float *features, int rows, int cols, int grid_w, int grid_h,
                                 int out_w, int out_h) {
    static const char fn[] = "dmllm_write_pca_png";
    if (grid_w <= 0 || grid_h <= 0 || cols <= 0 || (int64_t)grid_w * grid_h != rows)
        return dmllm_fail(DMLLM_ERR_SHAPE, "%s: %d rows of %d features do not fill a %d x %d token grid", fn, rows, cols,
                          grid_w, grid_h);
    if (out_w <= 0 || out_h <= 0) {
        out_w = grid_w;
        out_h = grid_h;
    }
    DMLLM_TRY(check_output(fn, path, features, "features", out_w, out_h));
    const size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(features[i]))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: feature %zu of row %zu is not finite", fn, i % (size_t)cols,
                              i / (size_t)cols);
    double *components = dmllm_malloc((size_t)PCA_COMPONENTS * cols, sizeof *components); /* [3][cols] */
    double *scores = dmllm_malloc((size_t)rows, PCA_COMPONENTS * sizeof *scores);        /* [rows][3] */
    uint8_t *tokens = dmllm_malloc((size_t)rows, 3);                                     /* [grid_h][grid_w][3] */
    uint8_t *rgb = dmllm_malloc((size_t)out_w * out_h, 3);                               /* [out_h][out_w][3] */
    double variances[PCA_COMPONENTS];
    dmllm_status status = components && scores && tokens && rgb
                              ? DMLLM_OK
                              : dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory for %d x %d features", fn, rows, cols);
    if (status == DMLLM_OK) status = dmllm_pca3(features, rows, cols, components, scores, variances);
    if (status == DMLLM_OK) {
        for (int k = 0; k < PCA_COMPONENTS; k++) {
            double lo = scores[k], hi = scores[k];
            for (int r = 1; r < rows; r++) {
                const double s = scores[(size_t)r * PCA_COMPONENTS + k];
                lo = s < lo ? s : lo;
                hi = s > hi ? s : hi;
            }
            for (int r = 0; r < rows; r++)
                tokens[3 * r + k] = hi > lo ? (uint8_t)floor(255.0 * (scores[(size_t)r * PCA_COMPONENTS + k] - lo) /
                                                                 (hi - lo) + 0.5)
                                            : 0;
        }
        for (int y = 0; y < out_h; y++) {
            /* Nearest token to the output pixel's centre. */
            const int ty = (int)(((int64_t)2 * y + 1) * grid_h / ((int64_t)2 * out_h));
            for (int x = 0; x < out_w; x++) {
                const int tx = (int)(((int64_t)2 * x + 1) * grid_w / ((int64_t)2 * out_w));
                memcpy(rgb + ((size_t)y * out_w + x) * 3, tokens + ((size_t)ty * grid_w + tx) * 3, 3);
            }
        }
        status = dmllm_png_write(path, DMLLM_PNG_RGB8, rgb, out_w, out_h, NULL, 0);
    }
    free(components);
    free(scores);
    free(tokens);
    free(rgb);
    return status;
}
