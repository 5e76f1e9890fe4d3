/*
 * image.c: the dmllm_image handle and its decoders, matching PIL 9.4's
 * Image.open(...).convert("RGB") (plus ImageOps.exif_transpose for JPEG):
 *  - JPEG through the TurboJPEG 2.x API (same libjpeg-turbo, ISLOW DCT and fancy upsampling as
 *    PIL, so RGB and grayscale decode bit-identically); CMYK/YCCK through PIL's "CMYK;I" polarity
 *    and its cmyk2rgb formula; EXIF orientation 2-8 from our own bounds-checked APP1/TIFF parser.
 *    PNG orientation comes from eXIf or XMP text chunks, as PIL's getexif() finds it.
 *  - PNG through libpng: every colour type and depth, interlaced or not, converted as PIL does
 *    (alpha and tRNS dropped, not composited; 16-bit samples keep their high byte except 16-bit
 *    gray, which PIL opens as mode "I" and clips to 255; palette indices past PLTE map to gray i).
 *  - WebP through libwebp (the same decoder as PIL, so lossy files match too); an animation gives
 *    its first frame as libwebpdemux composites it. Orientation from the EXIF chunk, as PIL.
 *  - TIFF through libtiff's RGBA interface, first page only, turned by its Orientation tag as PIL
 *    9.4's TIFF loader does (its exif_transpose would turn such a file a second time; we do not).
 *    8-bit files match PIL exactly; libtiff rounds 16-bit samples to 8 bits where PIL keeps the
 *    high byte.
 *  - BMP through gdk-pixbuf's loader (every depth, RLE, bitfields; one small, fuzzed decoder with
 *    per-call error messages, and a size callback before any pixel memory).
 * Formats are told apart by their first bytes, never by a file name. Decoding only; never
 * resizes. The limits of dmllm_image_params (pixels from the frame header, IHDR, VP8X, IFD or BMP
 * header, encoded bytes, decode memory) are checked before the memory they guard is allocated, and
 * a file is never read past its byte limit.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <webp/decode.h>
#include <webp/demux.h>

/* ---- the handle ------------------------------------------------------------------------------- */

dmllm_status dmllm_image_alloc(int width, int height, dmllm_image **out) {
    if (!out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_alloc: out is NULL");
    *out = NULL;
    if (width <= 0 || height <= 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "image size %dx%d is empty", width, height);
    if ((int64_t)width * height > DMLLM_IMAGE_MAX_PIXELS)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "image size %dx%d exceeds the limit of %lld pixels", width, height,
                          (long long)DMLLM_IMAGE_MAX_PIXELS);
    dmllm_image *image = calloc(1, sizeof *image);
    if (!image) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating an image handle");
    image->pixels = dmllm_malloc((size_t)width * height, 3);
    if (!image->pixels) {
        free(image);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating a %dx%d RGB image", width, height);
    }
    image->width = width;
    image->height = height;
    *out = image;
    return DMLLM_OK;
}

void dmllm_image_free(dmllm_image *image) {
    if (!image) return;
    free(image->pixels);
    free(image);
}

int dmllm_image_width(const dmllm_image *image) { return image ? image->width : 0; }
int dmllm_image_height(const dmllm_image *image) { return image ? image->height : 0; }
const uint8_t *dmllm_image_pixels(const dmllm_image *image) { return image ? image->pixels : NULL; }

dmllm_status dmllm_image_from_rgb(const uint8_t *rgb, int width, int height, size_t stride_bytes,
                                  dmllm_image **out_image) {
    if (!rgb || !out_image) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_from_rgb: rgb or out_image is NULL");
    *out_image = NULL;
    if (width <= 0 || height <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_from_rgb: size %dx%d is empty", width, height);
    const size_t row_bytes = (size_t)width * 3;
    if (stride_bytes == 0) stride_bytes = row_bytes;
    if (stride_bytes < row_bytes)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_from_rgb: stride %zu bytes < 3*width = %zu",
                          stride_bytes, row_bytes);
    dmllm_image *image;
    DMLLM_TRY(dmllm_image_alloc(width, height, &image));
    for (int y = 0; y < height; y++) memcpy(image->pixels + y * row_bytes, rgb + y * stride_bytes, row_bytes);
    *out_image = image;
    return DMLLM_OK;
}

/* ---- limits ----------------------------------------------------------------------------------- */

void dmllm_image_params_init(dmllm_image_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->max_pixels = DMLLM_DEFAULT_MAX_IMAGE_PIXELS;
    params->max_encoded_bytes = DMLLM_DEFAULT_MAX_IMAGE_BYTES;
}

size_t dmllm_image_params_sizeof(void) { return sizeof(dmllm_image_params); }

static dmllm_status resolve_image_params(const dmllm_image_params *given, dmllm_image_params *p) {
    dmllm_image_params_init(p);
    if (given) DMLLM_TRY(dmllm_copy_versioned(p, sizeof *p, given, "dmllm_image_params"));
    if (p->max_pixels < 0 || p->max_encoded_bytes < 0 || p->memory_limit_bytes < 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_image_params: max_pixels %lld, max_encoded_bytes %lld, memory_limit_bytes %lld; "
                          "each must be >= 0 (0: no limit)", (long long)p->max_pixels,
                          (long long)p->max_encoded_bytes, (long long)p->memory_limit_bytes);
    return DMLLM_OK;
}

/* What a decoder checks a header against: the resolved params and the encoded bytes the decode
 * holds (the file read by dmllm_image_load_file_ex; 0 for the caller's memory). */
typedef struct decode_limits {
    const dmllm_image_params *params;
    size_t held_bytes;
} decode_limits;

/* Decoder memory per pixel besides the 3 RGB bytes, an upper bound of the peak:
 * JPEG: a progressive or multi-scan file's coefficients (2 bytes x 64 per block and component,
 * at most 4 full-resolution components: 8 bytes) plus the CMYK samples (4), or the rotated copy
 * (3) after both are freed; PNG: libpng's rows after our transforms (at most 4: RGBA, 16-bit gray
 * is 2) and a row pointer per row, or the rotated copy; WebP: a lossless frame's ARGB words (4)
 * and a lossy frame's alpha plane (1); an animation's two RGBA canvases (8) besides; TIFF: the
 * RGBA raster (4), plus the strip or tile buffer that check_decode_size is given in bytes; BMP:
 * gdk-pixbuf's RGB or RGBA pixbuf (4). */
enum {
    JPEG_EXTRA_BYTES_PER_PIXEL = 12, PNG_EXTRA_BYTES_PER_PIXEL = 4, WEBP_EXTRA_BYTES_PER_PIXEL = 5,
    WEBP_ANIMATION_EXTRA_BYTES_PER_PIXEL = 13, TIFF_EXTRA_BYTES_PER_PIXEL = 4, BMP_EXTRA_BYTES_PER_PIXEL = 4
};
/* The decoders' own tables and per-row buffers, zlib's window. */
#define DECODER_FIXED_BYTES ((int64_t)4 << 20)

/* Checks a size read from a header before any pixel memory exists; extra_bytes: decoder buffers
 * the header sizes apart from the pixels (a TIFF strip). */
static dmllm_status check_decode_size(const char *format, int64_t width, int64_t height, int extra_per_pixel,
                                      int64_t extra_bytes, const decode_limits *limits) {
    const int64_t asked = limits->params->max_pixels;
    const int64_t cap = asked > 0 && asked < DMLLM_IMAGE_MAX_PIXELS ? asked : DMLLM_IMAGE_MAX_PIXELS;
    if (width <= 0 || height <= 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s size %lldx%lld: an image needs at least one pixel", format,
                          (long long)width, (long long)height);
    /* Each side alone first: headers give sides up to 2^32 - 1, whose product overflows. */
    if (width > cap || height > cap || width * height > cap)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%s size %lldx%lld (%.0f pixels) exceeds the limit of %lld pixels "
                          "(%s)", format, (long long)width, (long long)height, (double)width * (double)height,
                          (long long)cap, cap == asked ? "dmllm_image_params.max_pixels" : "the library's hard limit");
    const int64_t pixels = width * height;
    char stage[64];
    snprintf(stage, sizeof stage, "decoding the %lldx%lld %s", (long long)width, (long long)height, format);
    const int64_t need = pixels * (3 + extra_per_pixel) + height * 8 + extra_bytes + DECODER_FIXED_BYTES;
    return dmllm_check_memory(limits->params->memory_limit_bytes, stage, (size_t)need, limits->held_bytes);
}

/* ---- JPEG markers: EXIF orientation ----------------------------------------------------------- */

static unsigned read_u16(const uint8_t *p, bool big_endian) {
    return big_endian ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t read_u32(const uint8_t *p, bool big_endian) {
    return big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

enum { ORIENTATION_ABSENT = 0 };

/* Orientation tag (0x0112) of IFD0 in a TIFF block: ORIENTATION_ABSENT when the block or the tag is
 * missing or malformed, else 1-8, or 1 (no change) for a tag PIL would not act on: like PIL only
 * a single SHORT or LONG value 1-8 counts. Every offset is checked against the block. */
static int tiff_orientation(const uint8_t *tiff, size_t size) {
    enum { TYPE_SHORT = 3, TYPE_LONG = 4, TAG_ORIENTATION = 0x0112, ENTRY_BYTES = 12 };
    if (size < 8) return ORIENTATION_ABSENT;
    bool big_endian;
    if (memcmp(tiff, "II*\0", 4) == 0) big_endian = false;
    else if (memcmp(tiff, "MM\0*", 4) == 0) big_endian = true;
    else return ORIENTATION_ABSENT;
    const uint32_t ifd = read_u32(tiff + 4, big_endian);
    if (ifd > size - 2) return ORIENTATION_ABSENT;
    const unsigned n_entries = read_u16(tiff + ifd, big_endian);
    for (unsigned i = 0; i < n_entries; i++) {
        const size_t entry = (size_t)ifd + 2 + (size_t)i * ENTRY_BYTES;
        if (entry + ENTRY_BYTES > size) return ORIENTATION_ABSENT;
        const uint8_t *e = tiff + entry;
        if (read_u16(e, big_endian) != TAG_ORIENTATION) continue;
        const unsigned type = read_u16(e + 2, big_endian);
        if (read_u32(e + 4, big_endian) != 1) return 1;
        /* A single value sits left-aligned in the 4-byte value field. */
        const uint32_t value = type == TYPE_SHORT ? read_u16(e + 8, big_endian)
                             : type == TYPE_LONG  ? read_u32(e + 8, big_endian) : 1;
        return value >= 1 && value <= 8 ? (int)value : 1;
    }
    return ORIENTATION_ABSENT;
}

/* An EXIF payload as PIL's Exif.load takes it: an optional "Exif\0\0" prefix, then TIFF. */
static int exif_orientation(const uint8_t *exif, size_t size) {
    if (size >= 6 && memcmp(exif, "Exif\0\0", 6) == 0) return tiff_orientation(exif + 6, size - 6);
    return tiff_orientation(exif, size);
}

/* What the marker segments before the first SOS tell us. */
typedef struct jpeg_markers {
    int orientation;   /* of the first "Exif\0" APP1 segment (PIL reads only that one), or ORIENTATION_ABSENT */
    int frame_marker;  /* the SOFn marker byte, 0 when none was found */
    int precision;     /* bits per sample of that frame */
} jpeg_markers;

/* Walks the marker segments up to the first SOS. Stops quietly at anything malformed: the decoder
 * reports real damage. PIL ignores XMP for JPEG, so we do too. */
static jpeg_markers jpeg_scan_markers(const uint8_t *data, size_t size) {
    enum { MARKER_SOS = 0xDA, MARKER_APP1 = 0xE1, MARKER_EOI = 0xD9 };
    jpeg_markers found = {ORIENTATION_ABSENT, 0, 0};
    size_t pos = 2; /* after SOI */
    while (pos + 4 <= size && data[pos] == 0xFF) {
        const uint8_t marker = data[pos + 1];
        if (marker == 0xFF) { pos++; continue; } /* fill byte */
        if (marker == MARKER_SOS || marker == MARKER_EOI) break;
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { pos += 2; continue; } /* no length */
        const size_t length = (size_t)data[pos + 2] << 8 | data[pos + 3]; /* includes itself */
        if (length < 2 || pos + 2 + length > size) break;
        const uint8_t *payload = data + pos + 4;
        const size_t payload_size = length - 2;
        const bool is_frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (marker == MARKER_APP1 && found.orientation == ORIENTATION_ABSENT && payload_size >= 6 &&
            memcmp(payload, "Exif\0", 5) == 0)
            found.orientation = exif_orientation(payload, payload_size);
        if (is_frame && !found.frame_marker && payload_size >= 1) {
            found.frame_marker = marker;
            found.precision = payload[0];
        }
        pos += 2 + length;
    }
    return found;
}

/* Applies EXIF orientation 2-8 as ImageOps.exif_transpose does (anything else: no change). For
 * every output pixel (x, y) the source pixel is (sx, sy); orientations 5-8 swap the sides. */
static dmllm_status apply_orientation(dmllm_image **image_io, int orientation) {
    dmllm_image *in = *image_io;
    if (orientation <= 1 || orientation > 8) return DMLLM_OK;
    const bool swaps = orientation >= 5;
    const int w = swaps ? in->height : in->width, h = swaps ? in->width : in->height;
    const int W = in->width, H = in->height;
    dmllm_image *out;
    DMLLM_TRY(dmllm_image_alloc(w, h, &out));
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int sx, sy;
            switch (orientation) {
            case 2: sx = W - 1 - x; sy = y; break;          /* mirror left-right */
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;  /* rotate 180 */
            case 4: sx = x; sy = H - 1 - y; break;          /* mirror top-bottom */
            case 5: sx = y; sy = x; break;                  /* transpose */
            case 6: sx = y; sy = H - 1 - x; break;          /* rotate 90 clockwise */
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;  /* transverse */
            default: sx = W - 1 - y; sy = x; break;         /* 8: rotate 90 counter-clockwise */
            }
            memcpy(out->pixels + ((size_t)y * w + x) * 3, in->pixels + ((size_t)sy * W + sx) * 3, 3);
        }
    }
    dmllm_image_free(in);
    *image_io = out;
    return DMLLM_OK;
}

/* Copies the RGB samples of packed 8-bit pixels of `channels` samples each (3, or 4 with the
 * alpha dropped as PIL's convert("RGB") drops it), rows stride bytes apart, into image. */
static void packed_to_rgb(const uint8_t *src, size_t stride, int channels, dmllm_image *image) {
    for (int y = 0; y < image->height; y++) {
        const uint8_t *row = src + (size_t)y * stride;
        uint8_t *rgb = image->pixels + (size_t)y * image->width * 3;
        for (int x = 0; x < image->width; x++) memcpy(rgb + 3 * x, row + (size_t)channels * x, 3);
    }
}

/* The end of every decoder: frees image on failure, else applies the orientation (which may fail)
 * and hands the image over. */
static dmllm_status finish_decode(dmllm_status status, dmllm_image *image, int orientation, dmllm_image **out) {
    if (status == DMLLM_OK) status = apply_orientation(&image, orientation);
    if (status != DMLLM_OK) {
        dmllm_image_free(image);
        return status;
    }
    *out = image;
    return DMLLM_OK;
}

/* ---- JPEG --------------------------------------------------------------------------------------- */

/* PIL reads 4-component JPEGs as "CMYK;I" (inverted, Adobe polarity) and converts with
 * rgb = nk - nk*c/255 (rounded as MULDIV255), nk = 255 - k. With the stored (uninverted) values
 * that is nk = k_stored, c = 255 - c_stored. */
static void cmyk_to_rgb(const uint8_t *cmyk, size_t n_pixels, uint8_t *rgb) {
    for (size_t i = 0; i < n_pixels; i++) {
        const int nk = cmyk[4 * i + 3];
        for (int c = 0; c < 3; c++) {
            const int t = (255 - cmyk[4 * i + c]) * nk + 128;
            rgb[3 * i + c] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        }
    }
}

/* huffman: the frame is Huffman-coded (every SOFn but the arithmetic SOF9-15), or of unknown type. */
static dmllm_status decode_jpeg_pixels(tjhandle tj, const uint8_t *data, size_t size, bool huffman,
                                       const decode_limits *limits,
                                       dmllm_image **out) {
    int width = 0, height = 0, subsampling = -1, colorspace = -1;
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &width, &height, &subsampling, &colorspace) != 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "malformed JPEG header: %s", tjGetErrorStr2(tj));
    /* TurboJPEG 2.1 returns success without touching the outputs when the data ends (or holds only
     * tables) before a frame header. */
    if (width <= 0 || height <= 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "JPEG data without a frame header (truncated?): %s", tjGetErrorStr2(tj));
    DMLLM_TRY(check_decode_size("JPEG", width, height, JPEG_EXTRA_BYTES_PER_PIXEL, 0, limits));
    /* A Huffman code is at least one bit, and every 8x8 block of the full-resolution component
     * codes its DC value, so shorter data is truncated. The decoder would pad the missing blocks
     * with gray only to be refused below: a few hundred bytes claiming 2^28 pixels would cost
     * gigabytes and seconds. Arithmetic coding has no such bound. */
    const uint64_t blocks = (uint64_t)(width + 7) / 8 * (uint64_t)((height + 7) / 8);
    if (huffman && (uint64_t)size * 8 < blocks)
        return dmllm_fail(DMLLM_ERR_FORMAT,
                          "truncated JPEG: %zu bytes cannot hold the %llu blocks of a %dx%d frame", size,
                          (unsigned long long)blocks, width, height);
    const bool is_cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    dmllm_image *image;
    DMLLM_TRY(dmllm_image_alloc(width, height, &image));
    uint8_t *cmyk = NULL; /* [height][width][4] for CMYK/YCCK files */
    if (is_cmyk && !(cmyk = dmllm_malloc((size_t)width * height, 4))) {
        dmllm_image_free(image);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory decoding a %dx%d CMYK JPEG", width, height);
    }
    dmllm_status status = DMLLM_OK;
    if (tjDecompress2(tj, data, (unsigned long)size, is_cmyk ? cmyk : image->pixels, width, 0, height,
                      is_cmyk ? TJPF_CMYK : TJPF_RGB, 0) != 0) {
        const char *message = tjGetErrorStr2(tj);
        /* libjpeg reports a missing end as a warning and pads with gray; PIL refuses such files
         * ("image file is truncated"), so do we. Other warnings (e.g. extraneous bytes) are benign. */
        if (tjGetErrorCode(tj) == TJERR_FATAL || strstr(message, "Premature end"))
            status = dmllm_fail(DMLLM_ERR_FORMAT, "corrupt or truncated JPEG data (%dx%d): %s", width, height, message);
        else
            dmllm_log(DMLLM_LOG_WARN, "JPEG decoder warning: %s", message);
    }
    if (status == DMLLM_OK && is_cmyk) cmyk_to_rgb(cmyk, (size_t)width * height, image->pixels);
    free(cmyk);
    if (status != DMLLM_OK) {
        dmllm_image_free(image);
        return status;
    }
    *out = image;
    return DMLLM_OK;
}

static dmllm_status decode_jpeg(const uint8_t *data, size_t size, const decode_limits *limits, dmllm_image **out) {
    const jpeg_markers markers = jpeg_scan_markers(data, size);
    const int frame_type = markers.frame_marker - 0xC0;
    if (markers.frame_marker && (frame_type & 3) == 3)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "lossless JPEG (SOF%d) is not supported", frame_type);
    if (markers.frame_marker && markers.precision != 8)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%d-bit JPEG is not supported (8-bit samples only)", markers.precision);
    tjhandle tj = tjInitDecompress();
    if (!tj) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "cannot create a TurboJPEG decompressor: %s", tjGetErrorStr2(NULL));
    dmllm_image *image = NULL;
    const bool arithmetic = markers.frame_marker && (frame_type & 8);
    dmllm_status status = decode_jpeg_pixels(tj, data, size, !arithmetic, limits, &image);
    tjDestroy(tj);
    return finish_decode(status, image, markers.orientation, out);
}

/* ---- PNG ---------------------------------------------------------------------------------------- */

/* Everything the libpng callbacks and the longjmp recovery touch. It lives in decode_png's frame
 * and is reached through a pointer inside read_png, so nothing modified between setjmp and longjmp
 * is a non-volatile local of the function that called setjmp. */
typedef struct png_decode {
    const uint8_t *data;
    size_t size, pos;
    const decode_limits *limits;
    png_structp png;
    png_infop info;
    uint8_t *rows;         /* [height][row_bytes] libpng output after our transforms */
    png_bytep *row_ptrs;   /* [height] into rows */
    dmllm_image *image;
    dmllm_status status;   /* OK until a failure; libpng's own errors (longjmp) become FORMAT */
    char message[DMLLM_PNG_MESSAGE];
} png_decode;

void dmllm_png_on_error(png_structp png, png_const_charp message) {
    snprintf(png_get_error_ptr(png), DMLLM_PNG_MESSAGE, "%s", message);
    png_longjmp(png, 1);
}

void dmllm_png_on_warning(png_structp png, png_const_charp message) {
    (void)png;
    dmllm_log(DMLLM_LOG_DEBUG, "libpng warning: %s", message);
}

static void png_read_memory(png_structp png, png_bytep dst, size_t n) {
    png_decode *d = png_get_io_ptr(png);
    if (n > d->size - d->pos) png_error(png, "truncated PNG data");
    memcpy(dst, d->data + d->pos, n);
    d->pos += n;
}

/* Converts one libpng output row (after the transforms set in read_png) to RGB. */
static void png_row_to_rgb(const uint8_t *row, int width, int color_type, int bit_depth, const uint8_t *palette,
                           uint8_t *rgb) {
    for (int x = 0; x < width; x++, rgb += 3) {
        switch (color_type) {
        case PNG_COLOR_TYPE_PALETTE: memcpy(rgb, palette + 3 * row[x], 3); break;
        case PNG_COLOR_TYPE_GRAY: {
            /* 16-bit gray is PIL mode "I": convert("RGB") clips each value to 255. */
            const unsigned v = bit_depth == 16 ? (unsigned)row[2 * x] << 8 | row[2 * x + 1] : row[x];
            rgb[0] = rgb[1] = rgb[2] = (uint8_t)(v > 255 ? 255 : v);
            break;
        }
        case PNG_COLOR_TYPE_GRAY_ALPHA: rgb[0] = rgb[1] = rgb[2] = row[2 * x]; break;
        case PNG_COLOR_TYPE_RGB: memcpy(rgb, row + 3 * x, 3); break;
        default: memcpy(rgb, row + 4 * x, 3); break; /* RGBA: alpha dropped */
        }
    }
}

static void read_png(png_decode *d) {
    if (setjmp(png_jmpbuf(d->png))) {
        if (d->status == DMLLM_OK) d->status = DMLLM_ERR_FORMAT;
        return;
    }
    png_set_read_fn(d->png, d, png_read_memory);
    /* PIL checks the CRC of every chunk before the pixels; libpng by default only warns about
     * ancillary ones. */
    png_set_crc_action(d->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_read_info(d->png, d->info);
    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(d->png, d->info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    d->status = check_decode_size("PNG", width, height, PNG_EXTRA_BYTES_PER_PIXEL, 0, d->limits);
    if (d->status != DMLLM_OK) {
        snprintf(d->message, sizeof d->message, "%s", dmllm_last_error());
        return;
    }
    /* PIL's palette: gray ramp i -> (i, i, i), overwritten by the PLTE entries. */
    uint8_t palette[256 * 3]; /* [index][rgb] */
    for (int i = 0; i < 256; i++) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = (uint8_t)i;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp entries;
        int n_entries = 0;
        if (png_get_PLTE(d->png, d->info, &entries, &n_entries) == 0) png_error(d->png, "palette PNG without PLTE");
        for (int i = 0; i < n_entries && i < 256; i++) {
            palette[3 * i] = entries[i].red;
            palette[3 * i + 1] = entries[i].green;
            palette[3 * i + 2] = entries[i].blue;
        }
    }
    if (bit_depth < 8) {
        if (color_type == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(d->png); /* PIL's "1"/"L;2"/"L;4" scaling */
        else png_set_packing(d->png);                                                  /* palette indices, one per byte */
    }
    if (bit_depth == 16 && color_type != PNG_COLOR_TYPE_GRAY) png_set_strip_16(d->png); /* high byte, like "RGB;16B" */
    png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);
    const size_t row_bytes = png_get_rowbytes(d->png, d->info);
    d->rows = dmllm_malloc(height, row_bytes);
    d->row_ptrs = dmllm_malloc(height, sizeof *d->row_ptrs);
    if (!d->rows || !d->row_ptrs) {
        d->status = DMLLM_ERR_OUT_OF_MEMORY;
        snprintf(d->message, sizeof d->message, "out of memory decoding a %ux%u PNG", (unsigned)width, (unsigned)height);
        return;
    }
    for (png_uint_32 y = 0; y < height; y++) d->row_ptrs[y] = d->rows + y * row_bytes;
    png_read_image(d->png, d->row_ptrs);
    if (dmllm_image_alloc((int)width, (int)height, &d->image) != DMLLM_OK) {
        d->status = DMLLM_ERR_OUT_OF_MEMORY;
        snprintf(d->message, sizeof d->message, "%s", dmllm_last_error());
        return;
    }
    for (png_uint_32 y = 0; y < height; y++)
        png_row_to_rgb(d->row_ptrs[y], (int)width, color_type, bit_depth, palette, d->image->pixels + (size_t)y * width * 3);
}

/* The chunks after the pixels, for an eXIf or XMP orientation there. PIL reads this tail leniently
 * (it stops at the first damaged chunk and keeps the image), so errors here only end the reading. */
static void read_png_tail(png_decode *d) {
    if (setjmp(png_jmpbuf(d->png))) return;
    png_read_end(d->png, d->info);
}

/* First "tiff:Orientation" followed by ="<digit> or ><digit> (PIL's regex on the XMP packet). */
static int xmp_orientation(const char *xmp, size_t length) {
    static const char key[] = "tiff:Orientation";
    const size_t key_length = sizeof key - 1;
    for (size_t i = 0; i + key_length + 1 < length; i++) {
        if (memcmp(xmp + i, key, key_length) != 0) continue;
        const char *after = xmp + i + key_length;
        const size_t room = length - i - key_length;
        if (room >= 3 && after[0] == '=' && after[1] == '"' && after[2] >= '0' && after[2] <= '9')
            return after[2] - '0';
        if (room >= 2 && after[0] == '>' && after[1] >= '0' && after[1] <= '9') return after[1] - '0';
    }
    return ORIENTATION_ABSENT;
}

/* PIL's getexif() for PNG: the eXIf chunk's orientation tag, else the tiff:Orientation of the
 * last "XML:com.adobe.xmp" text chunk (PIL keeps the last one). Values outside 1-8 change nothing.
 * Not read: ImageMagick's hex "Raw profile type exif" text. */
static int png_orientation(png_structp png, png_infop info) {
    png_bytep exif = NULL;
    png_uint_32 exif_size = 0;
    if (png_get_eXIf_1(png, info, &exif_size, &exif) && exif) {
        const int orientation = exif_orientation(exif, exif_size);
        if (orientation != ORIENTATION_ABSENT) return orientation;
    }
    png_textp texts = NULL;
    const int n_texts = png_get_text(png, info, &texts, NULL);
    const png_text *xmp = NULL;
    for (int i = 0; i < n_texts; i++)
        if (texts[i].key && strcmp(texts[i].key, "XML:com.adobe.xmp") == 0 && texts[i].text) xmp = &texts[i];
    if (!xmp) return ORIENTATION_ABSENT;
    const int orientation = xmp_orientation(xmp->text, xmp->compression >= PNG_ITXT_COMPRESSION_NONE ? xmp->itxt_length
                                                                                                    : xmp->text_length);
    return orientation >= 1 && orientation <= 8 ? orientation : 1;
}

/* The first chunk (after the 8-byte signature) whose declared length runs past the end of the
 * data, or NULL. libpng 1.6 only warns about an ancillary chunk above its 8 MB limit and allocates
 * it anyway, so 66 bytes declaring a 2 GB tEXt chunk would allocate 2 GB before failing. */
static const uint8_t *png_chunk_past_end(const uint8_t *data, size_t size, uint32_t *length) {
    size_t pos = 8;
    while (pos + 8 <= size) {
        *length = read_u32(data + pos, true);
        if (*length > size - pos - 8 || size - pos - 8 - *length < 4) return data + pos; /* data + CRC */
        if (memcmp(data + pos + 4, "IEND", 4) == 0) break;
        pos += 12 + (size_t)*length;
    }
    return NULL;
}

static dmllm_status decode_png(const uint8_t *data, size_t size, const decode_limits *limits,
                               dmllm_image **out) {
    uint32_t length = 0;
    const uint8_t *chunk = png_chunk_past_end(data, size, &length);
    if (chunk)
        return dmllm_fail(DMLLM_ERR_FORMAT,
                          "truncated PNG: the \"%.4s\" chunk at byte %td declares %u bytes, the data ends %zu bytes "
                          "after its header", (const char *)chunk + 4, chunk - data, (unsigned)length,
                          size - (size_t)(chunk - data) - 8);
    png_decode d = {.data = data, .size = size, .limits = limits};
    d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d.message, dmllm_png_on_error, dmllm_png_on_warning);
    if (d.png) d.info = png_create_info_struct(d.png);
    if (!d.png || !d.info) {
        png_destroy_read_struct(d.png ? &d.png : NULL, NULL, NULL);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "cannot create a libpng reader");
    }
    read_png(&d);
    int orientation = ORIENTATION_ABSENT;
    if (d.status == DMLLM_OK) {
        read_png_tail(&d);
        orientation = png_orientation(d.png, d.info);
    }
    png_destroy_read_struct(&d.png, &d.info, NULL);
    free(d.rows);
    free(d.row_ptrs);
    if (d.status != DMLLM_OK)
        dmllm_fail(d.status, "%s%s", d.status == DMLLM_ERR_FORMAT ? "corrupt or truncated PNG: " : "", d.message);
    return finish_decode(d.status, d.image, orientation, out);
}

/* ---- WebP --------------------------------------------------------------------------------------- */

static const char *webp_status_text(VP8StatusCode status) {
    switch (status) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "decoding suspended";
    case VP8_STATUS_USER_ABORT: return "decoding aborted";
    default: return "the data ends early";
    }
}

/* The orientation tag of the EXIF chunk, which PIL's getexif() reads for WebP (XMP it does not). */
static int webp_orientation(const uint8_t *data, size_t size) {
    const WebPData bitstream = {data, size};
    WebPDemuxer *demux = WebPDemux(&bitstream);
    if (!demux) return ORIENTATION_ABSENT;
    int orientation = ORIENTATION_ABSENT;
    WebPChunkIterator chunk;
    if (WebPDemuxGetChunk(demux, "EXIF", 1, &chunk)) {
        orientation = exif_orientation(chunk.chunk.bytes, chunk.chunk.size);
        WebPDemuxReleaseChunkIterator(&chunk);
    }
    WebPDemuxDelete(demux);
    return orientation;
}

/* An animation's first frame as PIL shows it: composited by libwebpdemux onto the canvas
 * (transparent black where the frame does not reach), non-premultiplied RGBA, alpha dropped. */
static dmllm_status decode_webp_first_frame(const uint8_t *data, size_t size, dmllm_image *image) {
    WebPAnimDecoderOptions options;
    if (!WebPAnimDecoderOptionsInit(&options))
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "animated WebP: libwebpdemux ABI mismatch");
    options.color_mode = MODE_RGBA;
    options.use_threads = 0;
    const WebPData bitstream = {data, size};
    WebPAnimDecoder *decoder = WebPAnimDecoderNew(&bitstream, &options);
    if (!decoder) return dmllm_fail(DMLLM_ERR_FORMAT, "corrupt or truncated animated WebP: its chunks do not parse");
    WebPAnimInfo info;
    uint8_t *canvas = NULL; /* [height][width][4] owned by the decoder */
    int timestamp;
    dmllm_status status = DMLLM_OK;
    if (!WebPAnimDecoderGetInfo(decoder, &info) || (int)info.canvas_width != image->width ||
        (int)info.canvas_height != image->height)
        status = dmllm_fail(DMLLM_ERR_FORMAT, "animated WebP: the canvas is not the %dx%d of its header",
                            image->width, image->height);
    else if (!WebPAnimDecoderGetNext(decoder, &canvas, &timestamp))
        status = dmllm_fail(DMLLM_ERR_FORMAT, "corrupt or truncated animated WebP: its first frame (of %u) does "
                            "not decode", info.frame_count);
    else
        packed_to_rgb(canvas, (size_t)image->width * 4, 4, image);
    WebPAnimDecoderDelete(decoder);
    return status;
}

static dmllm_status decode_webp(const uint8_t *data, size_t size, const decode_limits *limits, dmllm_image **out) {
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config)) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "WebP: libwebp ABI mismatch");
    const VP8StatusCode header = WebPGetFeatures(data, size, &config.input);
    if (header != VP8_STATUS_OK)
        return dmllm_fail(DMLLM_ERR_FORMAT, "malformed or truncated WebP header (%zu bytes): %s", size,
                          webp_status_text(header));
    const WebPBitstreamFeatures *features = &config.input;
    const bool animated = features->has_animation;
    DMLLM_TRY(check_decode_size(animated ? "animated WebP" : "WebP", features->width, features->height,
                                animated ? WEBP_ANIMATION_EXTRA_BYTES_PER_PIXEL : WEBP_EXTRA_BYTES_PER_PIXEL, 0,
                                limits));
    dmllm_image *image;
    DMLLM_TRY(dmllm_image_alloc(features->width, features->height, &image));
    dmllm_status status = DMLLM_OK;
    if (animated) {
        status = decode_webp_first_frame(data, size, image);
    } else {
        /* Straight into the image: RGB of the non-premultiplied samples, as PIL's RGBA minus alpha. */
        config.output.colorspace = MODE_RGB;
        config.output.is_external_memory = 1;
        config.output.u.RGBA.rgba = image->pixels;
        config.output.u.RGBA.stride = image->width * 3;
        config.output.u.RGBA.size = (size_t)image->width * image->height * 3;
        const VP8StatusCode decoded = WebPDecode(data, size, &config);
        WebPFreeDecBuffer(&config.output);
        if (decoded != VP8_STATUS_OK)
            status = dmllm_fail(DMLLM_ERR_FORMAT, "corrupt or truncated WebP data (%dx%d, %s): %s", image->width,
                                image->height, features->format == 2 ? "lossless" : "lossy",
                                webp_status_text(decoded));
    }
    return finish_decode(status, image, status == DMLLM_OK ? webp_orientation(data, size) : 0, out);
}

/* ---- TIFF --------------------------------------------------------------------------------------- */

/* The encoded bytes libtiff reads through the client procedures, and its first error message. */
typedef struct tiff_memory {
    const uint8_t *data;
    size_t size;
    uint64_t pos;       /* may lie past the end after a seek: reads there return nothing */
    bool short_read;    /* libtiff asked for bytes past the end: the file is truncated */
    char message[256];  /* libtiff's first error, "" when none */
    char warning[256];  /* libtiff's first warning, "" when none */
} tiff_memory;

static tmsize_t tiff_read(thandle_t handle, void *dst, tmsize_t n) {
    tiff_memory *m = handle;
    const uint64_t left = m->pos < m->size ? m->size - m->pos : 0;
    const size_t count = n <= 0 ? 0 : (uint64_t)n < left ? (size_t)n : (size_t)left;
    if (count) memcpy(dst, m->data + m->pos, count);
    if ((tmsize_t)count < n) m->short_read = true;
    m->pos += count;
    return (tmsize_t)count;
}

static tmsize_t tiff_write(thandle_t handle, void *src, tmsize_t n) { return -1; } /* opened read-only */

static toff_t tiff_seek(thandle_t handle, toff_t offset, int whence) {
    tiff_memory *m = handle;
    const uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
    if (offset > UINT64_MAX - base) return (toff_t)-1;
    m->pos = base + offset;
    return m->pos;
}

static int tiff_close(thandle_t handle) { return 0; }
static toff_t tiff_size(thandle_t handle) { return ((tiff_memory *)handle)->size; }
/* No mapping ("m" mode): libtiff copies through tiff_read and never sees the caller's buffer. */
static int tiff_map(thandle_t handle, void **base, toff_t *size) { return 0; }
static void tiff_unmap(thandle_t handle, void *base, toff_t size) {}

/* "module: message" of a libtiff error or warning into dst[256]. */
static void tiff_format(char dst[256], const char *module, const char *fmt, va_list args) {
    int n = snprintf(dst, 256, "%s: ", module ? module : "libtiff");
    if (n < 0 || n > 255) n = 255;
    vsnprintf(dst + n, 256 - (size_t)n, fmt, args);
}

/* Per-file handlers: the first error becomes part of our message, warnings go to the debug log,
 * and returning 1 keeps libtiff's global handlers (which print to stderr) from running. */
static int tiff_on_error(TIFF *tif, void *user_data, const char *module, const char *fmt, va_list args) {
    tiff_memory *m = user_data;
    if (!m->message[0]) tiff_format(m->message, module, fmt, args);
    return 1;
}

static int tiff_on_warning(TIFF *tif, void *user_data, const char *module, const char *fmt, va_list args) {
    tiff_memory *m = user_data;
    char text[256];
    tiff_format(text, module, fmt, args);
    dmllm_log(DMLLM_LOG_DEBUG, "libtiff warning: %s", text);
    if (!m->warning[0]) memcpy(m->warning, text, sizeof text);
    return 1;
}

/* libtiff's RGBA interface premultiplies unassociated alpha into the colours; PIL keeps them and
 * drops the alpha. Declaring the alpha associated makes libtiff copy the colours as stored. */
static dmllm_status tiff_keep_colours(TIFF *tif) {
    uint16_t n_extra = 0, *kinds = NULL; /* [n_extra] EXTRASAMPLE_* of each extra sample */
    if (!TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &n_extra, &kinds) || n_extra == 0 ||
        kinds[0] != EXTRASAMPLE_UNASSALPHA)
        return DMLLM_OK;
    uint16_t *associated = dmllm_malloc(n_extra, sizeof *associated); /* [n_extra] */
    if (!associated) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory reading a TIFF directory");
    memcpy(associated, kinds, n_extra * sizeof *associated);
    associated[0] = EXTRASAMPLE_ASSOCALPHA;
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, n_extra, associated);
    free(associated);
    return DMLLM_OK;
}

/* The first page of an open TIFF, in the file's own row and column order. */
static dmllm_status read_tiff_page(TIFF *tif, tiff_memory *m, const decode_limits *limits, dmllm_image **out) {
    uint32_t width = 0, height = 0;
    uint16_t orientation = ORIENTATION_TOPLEFT, planar = PLANARCONFIG_CONTIG, samples = 1;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orientation);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
    /* libtiff only warns about a tag whose data lies past the end, and goes on without it (a
     * palette file without its colour map); PIL refuses such a file, so do we. */
    if (m->short_read)
        return dmllm_fail(DMLLM_ERR_FORMAT, "truncated TIFF: its directory points past the end of the %zu bytes (%s)",
                          m->size, m->warning[0] ? m->warning : "no libtiff message");
    char reason[1024];
    if (!TIFFRGBAImageOK(tif, reason)) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "unsupported TIFF: %s", reason);
    /* libtiff reads one strip or tile (of every plane, when separate) at a time. A tile may be far
     * larger than a small image, so that buffer is bounded as well as counted: 8 bytes per pixel
     * of the pixel cap hold any strip of a legitimate RGBA 16-bit image. */
    const uint64_t unit = TIFFIsTiled(tif) ? TIFFTileSize64(tif) : TIFFStripSize64(tif);
    const uint64_t planes = planar == PLANARCONFIG_SEPARATE ? samples : 1;
    const int64_t asked = limits->params->max_pixels;
    const uint64_t cap = (uint64_t)(asked > 0 && asked < DMLLM_IMAGE_MAX_PIXELS ? asked : DMLLM_IMAGE_MAX_PIXELS) * 8;
    const bool too_large = unit > cap / planes;
    DMLLM_TRY(check_decode_size("TIFF", width, height, TIFF_EXTRA_BYTES_PER_PIXEL,
                                too_large ? (int64_t)cap : (int64_t)(unit * planes), limits));
    if (too_large)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "TIFF %s of %llu bytes (x %llu planes) exceeds %llu bytes, "
                          "8 per pixel of the pixel limit", TIFFIsTiled(tif) ? "tile" : "strip", (unsigned long long)unit,
                          (unsigned long long)planes, (unsigned long long)cap);
    DMLLM_TRY(tiff_keep_colours(tif));
    dmllm_image *image;
    DMLLM_TRY(dmllm_image_alloc((int)width, (int)height, &image));
    uint32_t *raster = dmllm_malloc((size_t)width * height, sizeof *raster); /* [height][width] ABGR words */
    if (!raster) {
        dmllm_image_free(image);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory decoding a %ux%u TIFF", width, height);
    }
    dmllm_status status = DMLLM_OK;
    /* Asking for the file's own orientation makes libtiff flip nothing; PIL's exif_transpose is
     * applied afterwards, as for JPEG. stop_on_error: a damaged strip fails the whole decode. */
    if (!TIFFReadRGBAImageOriented(tif, width, height, raster, orientation, 1)) {
        status = dmllm_fail(DMLLM_ERR_FORMAT, "corrupt or truncated TIFF data (%ux%u): %s", width, height,
                            m->message[0] ? m->message : "libtiff gave no reason");
    } else {
        for (size_t i = 0; i < (size_t)width * height; i++) {
            image->pixels[3 * i] = (uint8_t)TIFFGetR(raster[i]);
            image->pixels[3 * i + 1] = (uint8_t)TIFFGetG(raster[i]);
            image->pixels[3 * i + 2] = (uint8_t)TIFFGetB(raster[i]);
        }
    }
    free(raster);
    return finish_decode(status, image, ORIENTATION_ABSENT, out);
}

static dmllm_status decode_tiff(const uint8_t *data, size_t size, const decode_limits *limits, dmllm_image **out) {
    tiff_memory m = {.data = data, .size = size};
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "cannot create libtiff open options");
    TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_on_error, &m);
    TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_on_warning, &m);
    if (limits->params->memory_limit_bytes > 0)
        TIFFOpenOptionsSetMaxSingleMemAlloc(options, (tmsize_t)limits->params->memory_limit_bytes);
    TIFF *tif = TIFFClientOpenExt("TIFF", "rm", &m, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size,
                                  tiff_map, tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    if (!tif)
        return dmllm_fail(DMLLM_ERR_FORMAT, "malformed or truncated TIFF (%zu bytes): %s", size,
                          m.message[0] ? m.message : "libtiff cannot read its first directory");
    dmllm_image *image = NULL;
    const dmllm_status status = read_tiff_page(tif, &m, limits, &image);
    TIFFClose(tif);
    /* The Orientation tag of the first IFD, applied as PIL's TIFF loader applies it. */
    return finish_decode(status, image, status == DMLLM_OK ? tiff_orientation(data, size) : 0, out);
}

/* ---- BMP ---------------------------------------------------------------------------------------- */

/* What gdk-pixbuf's loader callbacks report back. */
typedef struct bmp_decode {
    const decode_limits *limits;
    dmllm_status status;  /* of the size check */
    char message[256];    /* its error */
    int64_t rows_done;    /* rows the loader wrote ("area-updated"), to tell a truncated file */
} bmp_decode;

static void bmp_size_prepared(GdkPixbufLoader *loader, gint width, gint height, gpointer user_data) {
    bmp_decode *d = user_data;
    d->status = check_decode_size("BMP", width, height, BMP_EXTRA_BYTES_PER_PIXEL, 0, d->limits);
    if (d->status == DMLLM_OK) return;
    snprintf(d->message, sizeof d->message, "%s", dmllm_last_error());
    gdk_pixbuf_loader_set_size(loader, 0, 0); /* a zero size stops the BMP loader before its pixbuf */
}

static void bmp_area_updated(GdkPixbufLoader *loader, gint x, gint y, gint width, gint height, gpointer user_data) {
    ((bmp_decode *)user_data)->rows_done += height;
}

static dmllm_status decode_bmp(const uint8_t *data, size_t size, const decode_limits *limits, dmllm_image **out) {
    /* gdk-pixbuf's loader allocates the declared info header size, the declared pixel data offset
     * (direct colour) and the declared palette (a negative count passes its check) before it
     * checks them: up to 4 GiB for a 30-byte file. These fields are checked first; the header
     * sizes are the ones the loader reads (it refuses any other). */
    enum { FILE_HEADER_BYTES = 14 };
    if (size < FILE_HEADER_BYTES + 4)
        return dmllm_fail(DMLLM_ERR_FORMAT, "truncated BMP: %zu bytes cannot hold its headers", size);
    const uint32_t data_offset = read_u32(data + 10, false), header_size = read_u32(data + FILE_HEADER_BYTES, false);
    if (header_size != 12 && header_size != 40 && header_size != 64 && header_size != 108 && header_size != 124)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "BMP with a %u-byte info header (only 12, 40, 64, 108 and 124 are "
                          "read)", header_size);
    if (data_offset > size)
        return dmllm_fail(DMLLM_ERR_FORMAT, "truncated BMP: its pixels start at byte %u, past the end of its %zu bytes",
                          data_offset, size);
    if (header_size >= 40 && size >= FILE_HEADER_BYTES + 36) {
        const unsigned depth = read_u16(data + 28, false);
        const uint32_t n_colors = read_u32(data + 46, false);
        if (depth <= 8 && n_colors > 256)
            return dmllm_fail(DMLLM_ERR_FORMAT, "corrupt BMP: a palette of %u colours at %u bits per pixel", n_colors,
                              depth);
    }
    GError *error = NULL;
    GdkPixbufLoader *loader = gdk_pixbuf_loader_new_with_type("bmp", &error);
    if (!loader) {
        const dmllm_status status = dmllm_fail(DMLLM_ERR_UNSUPPORTED, "BMP: gdk-pixbuf has no BMP loader: %s",
                                               error ? error->message : "unknown error");
        g_clear_error(&error);
        return status;
    }
    bmp_decode d = {.limits = limits};
    g_signal_connect(loader, "size-prepared", G_CALLBACK(bmp_size_prepared), &d);
    g_signal_connect(loader, "area-updated", G_CALLBACK(bmp_area_updated), &d);
    const bool written = gdk_pixbuf_loader_write(loader, data, size, &error);
    /* close() also after a failed write: it is then a no-op that reports nothing new. */
    const bool closed = gdk_pixbuf_loader_close(loader, written ? &error : NULL);
    GdkPixbuf *pixbuf = written && closed ? gdk_pixbuf_loader_get_pixbuf(loader) : NULL;
    dmllm_status status = DMLLM_OK;
    dmllm_image *image = NULL;
    if (d.status != DMLLM_OK) {
        status = dmllm_fail(d.status, "%s", d.message);
    } else if (!pixbuf) {
        status = dmllm_fail(DMLLM_ERR_FORMAT, "corrupt or truncated BMP: %s", error ? error->message : "no image");
    } else if (gdk_pixbuf_get_bits_per_sample(pixbuf) != 8 || gdk_pixbuf_get_n_channels(pixbuf) < 3) {
        status = dmllm_fail(DMLLM_ERR_UNSUPPORTED, "BMP: gdk-pixbuf returned %d-bit samples, %d channels",
                            gdk_pixbuf_get_bits_per_sample(pixbuf), gdk_pixbuf_get_n_channels(pixbuf));
    } else if (d.rows_done < gdk_pixbuf_get_height(pixbuf)) {
        /* The loader reports a missing end only inside the headers; missing rows stay unwritten. */
        status = dmllm_fail(DMLLM_ERR_FORMAT, "truncated BMP: the data ends after %lld of %d rows",
                            (long long)d.rows_done, gdk_pixbuf_get_height(pixbuf));
    } else if ((status = dmllm_image_alloc(gdk_pixbuf_get_width(pixbuf), gdk_pixbuf_get_height(pixbuf), &image)) ==
               DMLLM_OK) {
        packed_to_rgb(gdk_pixbuf_read_pixels(pixbuf), (size_t)gdk_pixbuf_get_rowstride(pixbuf),
                      gdk_pixbuf_get_n_channels(pixbuf), image);
    }
    g_clear_error(&error);
    g_object_unref(loader);
    return finish_decode(status, image, ORIENTATION_ABSENT, out);
}

/* ---- entry points ------------------------------------------------------------------------------- */

/* A name for a signature we do not decode, so the error says what the file is. */
static const char *other_format_name(const uint8_t *data, size_t size) {
    static const struct { const char *magic; size_t offset, length; const char *name; } known[] = {
        {"GIF8", 0, 4, "GIF"},          {"ftypavif", 4, 8, "AVIF"},
        {"ftypheic", 4, 8, "HEIC"},     {"ftypmif1", 4, 8, "HEIF"}, {"qoif", 0, 4, "QOI"},
        {"\0\0\1\0", 0, 4, "ICO"},      {"8BPS", 0, 4, "PSD"},     {"\xff\x0a", 0, 2, "JPEG XL"},
        {"\0\0\0\x0cjP  ", 0, 8, "JPEG 2000"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (size >= known[i].offset + known[i].length &&
            memcmp(data + known[i].offset, known[i].magic, known[i].length) == 0)
            return known[i].name;
    return NULL;
}

#define DECODED_FORMATS "only JPEG, PNG, WebP, TIFF and BMP are decoded"

static dmllm_status decode_any(const uint8_t *bytes, size_t size, const decode_limits *limits,
                               dmllm_image **out_image) {
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size == 0) return dmllm_fail(DMLLM_ERR_FORMAT, "empty image data (0 bytes)");
    const int64_t max_bytes = limits->params->max_encoded_bytes;
    if (max_bytes > 0 && size > (uint64_t)max_bytes)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%zu bytes of image data exceed the limit of %lld "
                          "(dmllm_image_params.max_encoded_bytes)", size, (long long)max_bytes);
    if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return decode_jpeg(bytes, size, limits, out_image);
    if (size >= 8 && memcmp(bytes, png_signature, 8) == 0) return decode_png(bytes, size, limits, out_image);
    if (size >= 12 && memcmp(bytes, "RIFF", 4) == 0 && memcmp(bytes + 8, "WEBP", 4) == 0)
        return decode_webp(bytes, size, limits, out_image);
    /* Classic and BigTIFF, in either byte order. */
    if (size >= 4 && (memcmp(bytes, "II*\0", 4) == 0 || memcmp(bytes, "MM\0*", 4) == 0 ||
                      memcmp(bytes, "II+\0", 4) == 0 || memcmp(bytes, "MM\0+", 4) == 0))
        return decode_tiff(bytes, size, limits, out_image);
    if (size >= 2 && memcmp(bytes, "BM", 2) == 0) return decode_bmp(bytes, size, limits, out_image);
    const char *name = other_format_name(bytes, size);
    if (name) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "unsupported image format %s (%s)", name, DECODED_FORMATS);
    char head[3 * 8] = ""; /* "xx xx ... xx" of up to 8 bytes */
    size_t used = 0;
    for (size_t i = 0; i < size && i < 8; i++)
        used += (size_t)snprintf(head + used, sizeof head - used, i ? " %02x" : "%02x", bytes[i]);
    return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "unknown image format (first bytes %s; %s)", head, DECODED_FORMATS);
}

dmllm_status dmllm_image_load_memory_ex(const void *data, size_t size, const dmllm_image_params *params,
                                        dmllm_image **out_image) {
    if (!data || !out_image)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_load_memory: data or out_image is NULL");
    *out_image = NULL;
    dmllm_image_params p;
    DMLLM_TRY(resolve_image_params(params, &p));
    const decode_limits limits = {&p, 0};
    return decode_any(data, size, &limits, out_image);
}

dmllm_status dmllm_image_load_memory(const void *data, size_t size, dmllm_image **out_image) {
    return dmllm_image_load_memory_ex(data, size, NULL, out_image);
}

/* Reads the open file fd into *out (malloc'ed, [*out_size] bytes), never more than max_bytes (0: no
 * limit) plus the one byte that shows the file is longer: a regular file's size is known up front,
 * anything else (a pipe, /dev/zero) is read in doubling steps. */
static dmllm_status read_bounded(int fd, const char *path, int64_t max_bytes, uint8_t **out, size_t *out_size) {
    struct stat st;
    if (fstat(fd, &st) != 0) return dmllm_fail(DMLLM_ERR_IO, "%s: cannot stat the file: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return dmllm_fail(DMLLM_ERR_IO, "%s: is a directory, not an image file", path);
    const bool regular = S_ISREG(st.st_mode);
    if (regular && max_bytes > 0 && st.st_size > max_bytes)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%s: the file holds %lld bytes, more than the limit of %lld "
                          "(dmllm_image_params.max_encoded_bytes)", path, (long long)st.st_size, (long long)max_bytes);
    const size_t ceiling = max_bytes > 0 ? (size_t)max_bytes + 1 : SIZE_MAX;
    uint8_t *data = NULL; /* [capacity] the bytes read so far */
    size_t size = 0, capacity = 0;
    for (;;) {
        if (size == capacity) {
            if (capacity == ceiling) break;
            size_t grown_capacity = regular && capacity == 0 ? (size_t)st.st_size + 1 : capacity ? 2 * capacity : 1 << 16;
            if (grown_capacity > ceiling || grown_capacity < capacity) grown_capacity = ceiling;
            uint8_t *grown = realloc(data, grown_capacity);
            if (!grown) {
                free(data);
                return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes", path, grown_capacity);
            }
            data = grown;
            capacity = grown_capacity;
        }
        const ssize_t n = read(fd, data + size, capacity - size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(data);
            return dmllm_fail(DMLLM_ERR_IO, "%s: read error: %s", path, strerror(errno));
        }
        if (n == 0) break;
        size += (size_t)n;
    }
    if (max_bytes > 0 && size > (size_t)max_bytes) {
        free(data);
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%s: more than %lld bytes (dmllm_image_params.max_encoded_bytes); "
                          "stopped reading", path, (long long)max_bytes);
    }
    *out = data;
    *out_size = size;
    return DMLLM_OK;
}

dmllm_status dmllm_image_load_file_ex(const char *path, const dmllm_image_params *params, dmllm_image **out_image) {
    if (!path || !out_image)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_load_file: path or out_image is NULL");
    *out_image = NULL;
    dmllm_image_params p;
    DMLLM_TRY(resolve_image_params(params, &p));
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dmllm_fail(DMLLM_ERR_IO, "%s: cannot open image file: %s", path, strerror(errno));
    uint8_t *data = NULL; /* [size] the whole file */
    size_t size = 0;
    dmllm_status status = read_bounded(fd, path, p.max_encoded_bytes, &data, &size);
    close(fd);
    if (status == DMLLM_OK) {
        const decode_limits limits = {&p, size};
        status = decode_any(data, size, &limits, out_image);
        if (status != DMLLM_OK) dmllm_fail_context(status, "%s", path);
    }
    free(data);
    return status;
}

dmllm_status dmllm_image_load_file(const char *path, dmllm_image **out_image) {
    return dmllm_image_load_file_ex(path, NULL, out_image);
}
