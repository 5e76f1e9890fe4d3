/*
 * render.c: PNG pictures of dense predictions: label maps, overlays with a legend in a built-in
 * 5x7 font, depth as 16-bit units or a colour map, and the PCA picture of vision-token features,
 * all through one atomic libpng writer. Reads caller buffers only; never touches a model or session.
 */
#include "render.h"

#include "image.h"
#include "readout.h"

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

/* ---- overlay colours --------------------------------------------------------------------------- */

enum { OVERLAY_COLOR_LIMIT = 65536, OVERLAY_FIXED = 16, CHROMA_STEPS = 30 };

/* OKLab to linear sRGB with the matrices of Ottosson's OKLab definition (2020); false when the
 * colour lies outside the sRGB gamut. */
static bool oklab_to_linear_srgb(double lightness, double a, double b, double rgb[3]) {
    const double l = lightness + 0.3963377774 * a + 0.2158037573 * b;
    const double m = lightness - 0.1055613458 * a - 0.0638541728 * b;
    const double s = lightness - 0.0894841775 * a - 1.2914855480 * b;
    const double l3 = l * l * l, m3 = m * m * m, s3 = s * s * s;
    rgb[0] = 4.0767416621 * l3 - 3.3077115913 * m3 + 0.2309699292 * s3;
    rgb[1] = -1.2684380046 * l3 + 2.6097574011 * m3 - 0.3413193965 * s3;
    rgb[2] = -0.0041960863 * l3 - 0.7034186147 * m3 + 1.7076147010 * s3;
    for (int k = 0; k < 3; k++)
        if (rgb[k] < -1e-9 || rgb[k] > 1.0 + 1e-9) return false;
    return true;
}

static uint8_t srgb_encode(double linear) {
    const double v = linear <= 0.0031308 ? 12.92 * linear : 1.055 * pow(linear, 1.0 / 2.4) - 0.055;
    return (uint8_t)lround(255.0 * (v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v));
}

/* OKLab lightness and hue (degrees) of the first labels' colours: twelve hue families spread over
 * the circle, neighbours in label order far apart, yellows and greens kept light (a dark yellow
 * is olive, a dark green is grass) and reds light enough not to be brick. */
static const double palette_lch[OVERLAY_FIXED][2] = {
    {0.64, 262}, {0.78, 58},  {0.80, 180}, {0.66, 345}, {0.90, 108}, {0.62, 300}, {0.88, 135}, {0.66, 28},
    {0.78, 225}, {0.80, 80},  {0.80, 320}, {0.76, 158}, {0.70, 245}, {0.74, 5},   {0.76, 280}, {0.88, 195},
};

/* The header's rule: the table, then a golden-angle hue walk with lightness alternating; chroma is
 * lowered until the colour fits sRGB (chroma 0, a light grey, always does). */
static void overlay_color(uint32_t label, uint8_t rgb[3]) {
    const uint32_t walk = label - OVERLAY_FIXED; /* steps of the walk, for labels past the table */
    const double lightness = label < OVERLAY_FIXED ? palette_lch[label][0] : walk % 2 ? 0.72 : 0.86;
    const double degrees = label < OVERLAY_FIXED ? palette_lch[label][1] : fmod(20.0 + 137.50776405003785 * walk, 360.0);
    const double hue = degrees * 0.017453292519943295; /* radians */
    double linear[3];
    for (int step = CHROMA_STEPS; step >= 0; step--) {
        const double chroma = 0.005 * step; /* 0.15 down to 0 */
        if (oklab_to_linear_srgb(lightness, chroma * cos(hue), chroma * sin(hue), linear)) break;
    }
    for (int k = 0; k < 3; k++) rgb[k] = srgb_encode(linear[k]);
}

dmllm_status dmllm_overlay_color(int label, uint8_t rgb[3]) {
    if (!rgb) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_overlay_color: rgb is NULL");
    if (label < 0 || label >= OVERLAY_COLOR_LIMIT)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_overlay_color: label %d is outside 0..%d", label,
                          OVERLAY_COLOR_LIMIT - 1);
    overlay_color((uint32_t)label, rgb);
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
    PAD = 3,               /* margin inside the legend panel and tags, before scaling */
    TEXT_SCALE_STEP = 300, /* short side per step of the text scale */
    OUTLINE_STEP = 400,    /* short side per pixel of the automatic outline */
    FRAME_STEP = 250,      /* short side per pixel of a box frame */
    OUTLINE_MAX = 64,
    LEGEND_MIN_ROWS = 40   /* rows the legend may grow the picture to */
};

static const uint8_t panel_grey[3] = {32, 32, 32}, white[3] = {255, 255, 255}, black[3] = {0, 0, 0};

/* A clipped RGB view: drawing outside [0, w) x [0, h) is dropped; rows are stride pixels apart, so
 * a view of the image part of a widened picture keeps boxes and tags off the legend panel. */
typedef struct canvas {
    uint8_t *rgb; /* [h][stride][3] */
    int w, h, stride;
} canvas;

static uint8_t *canvas_pixel(const canvas *c, int x, int y) { return c->rgb + ((size_t)y * c->stride + x) * 3; }

static void fill_rect(canvas *c, int x0, int y0, int w, int h, const uint8_t rgb[3]) {
    const int x1 = x0 + w < c->w ? x0 + w : c->w, y1 = y0 + h < c->h ? y0 + h : c->h;
    for (int y = y0 < 0 ? 0 : y0; y < y1; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1; x++) memcpy(canvas_pixel(c, x, y), rgb, 3);
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

/* Width in pixels of text drawn at scale s (no trailing blank column). */
static int text_width(const char *text, int s) {
    const int columns = text_columns(text);
    return columns > 0 ? columns * ADVANCE * s - s : 0;
}

static int short_side(int w, int h) { return w < h ? w : h; }

/* Integer scale of the legend, colour-bar and tag text for a w x h image. */
static int text_scale(int w, int h) {
    const int s = (short_side(w, h) + TEXT_SCALE_STEP / 2) / TEXT_SCALE_STEP;
    return s > 1 ? s : 1;
}

static const uint8_t *readable_on(const uint8_t rgb[3]) {
    return 0.2126f * rgb[0] + 0.7152f * rgb[1] + 0.0722f * rgb[2] >= 128.0f ? black : white;
}

/* Text of a legend row: the caller's name or "label N". buffer holds the fallback. */
static const char *legend_name(const char *const *names, int label, char *buffer, size_t size) {
    if (names && names[label]) return names[label];
    snprintf(buffer, size, "label %d", label);
    return buffer;
}

/* The legend panel: which rows it shows and its size in pixels. */
typedef struct legend_layout {
    int s;            /* text scale */
    int n_rows;       /* rows with a swatch */
    int n_more;       /* labels summarised in a last "+N more" row */
    int width, height;
} legend_layout;

static legend_layout measure_legend(const bool *present, int n_labels, const char *const *names, int image_w,
                                    int image_h) {
    legend_layout l = {.s = text_scale(image_w, image_h)};
    const int pad = PAD * l.s, row_h = ROW_H * l.s;
    int n_present = 0;
    for (int i = 0; i < n_labels; i++) n_present += present[i];
    if (n_present == 0) return l;
    const int fit = (image_h - 2 * pad) / row_h, max_rows = fit > LEGEND_MIN_ROWS ? fit : LEGEND_MIN_ROWS;
    l.n_rows = n_present <= max_rows ? n_present : max_rows - 1;
    l.n_more = n_present - l.n_rows;
    char text[32];
    snprintf(text, sizeof text, "+%d more", l.n_more);
    int text_w = l.n_more ? text_width(text, l.s) : 0;
    for (int i = 0, shown = 0; i < n_labels && shown < l.n_rows; i++) {
        if (!present[i]) continue;
        const int w = text_width(legend_name(names, i, text, sizeof text), l.s);
        text_w = w > text_w ? w : text_w;
        shown++;
    }
    l.width = pad + SWATCH * l.s + pad + text_w + pad;
    l.height = 2 * pad + (l.n_rows + (l.n_more > 0)) * row_h;
    return l;
}

/* Rows of swatches and names, from the top of the panel at x0. */
static void draw_legend(canvas *c, int x0, const legend_layout *l, const bool *present, int n_labels,
                        const char *const *names) {
    const int s = l->s, pad = PAD * s, swatch = SWATCH * s, text_x = x0 + pad + swatch + pad;
    char text[32];
    int y = pad + (ROW_H * s - swatch) / 2;
    for (int i = 0, shown = 0; i < n_labels && shown < l->n_rows; i++) {
        if (!present[i]) continue;
        uint8_t color[3];
        overlay_color((uint32_t)i, color);
        fill_rect(c, x0 + pad, y, swatch, swatch, color);
        draw_text(c, text_x, y + (swatch - GLYPH_H * s) / 2, s, legend_name(names, i, text, sizeof text), white);
        y += ROW_H * s;
        shown++;
    }
    snprintf(text, sizeof text, "+%d more", l->n_more);
    if (l->n_more) draw_text(c, x0 + pad, y + (swatch - GLYPH_H * s) / 2, s, text, white);
}

/* True when a pixel of another label lies within t pixels left, right, above or below (x, y). */
static bool on_border(const uint16_t *labels, int w, int h, int x, int y, int t) {
    const uint16_t own = labels[(size_t)y * w + x];
    for (int d = 1; d <= t; d++) {
        if ((x >= d && labels[(size_t)y * w + x - d] != own) || (x + d < w && labels[(size_t)y * w + x + d] != own) ||
            (y >= d && labels[(size_t)(y - d) * w + x] != own) || (y + d < h && labels[(size_t)(y + d) * w + x] != own))
            return true;
    }
    return false;
}

static const char *box_label(const dmllm_region *box) { return box->label ? box->label : ""; }

/* The label named text (background left out), or -1. */
static int named_label(const char *text, const char *const *names, int n_labels, int background) {
    for (int k = 0; names && k < n_labels; k++)
        if (k != background && names[k] && strcmp(names[k], text) == 0) return k;
    return -1;
}

/* The label whose colour box i takes: its named label, else n_labels + the rank of its text among
 * the distinct unnamed box texts in order of first appearance. */
static uint32_t box_color_label(const dmllm_overlay_params *p, const dmllm_region *boxes, int i,
                                const char *const *names, int n_labels) {
    const char *text = box_label(&boxes[i]);
    const int named = named_label(text, names, n_labels, p->background_label);
    if (named >= 0) return (uint32_t)named;
    uint32_t rank = 0;
    for (int j = 0; j < i; j++) {
        const char *other = box_label(&boxes[j]);
        if (named_label(other, names, n_labels, p->background_label) >= 0) continue;
        bool first = true;
        for (int m = 0; m < j && first; m++) first = strcmp(box_label(&boxes[m]), other) != 0;
        if (!first) continue;
        if (strcmp(other, text) == 0) break;
        rank++;
    }
    return (uint32_t)n_labels + rank;
}

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Frames and tags of the boxes ([p->n_boxes], copies of p->boxes), on the image view c. */
static void draw_boxes(canvas *c, const dmllm_overlay_params *p, const dmllm_region *boxes,
                       const char *const *names, int n_labels) {
    const int s = text_scale(c->w, c->h), pad = PAD * s;
    const int frame = short_side(c->w, c->h) / FRAME_STEP > 2 ? short_side(c->w, c->h) / FRAME_STEP : 2;
    for (int i = 0; i < p->n_boxes; i++) {
        const int *b = boxes[i].box;
        const int x0 = clamp_int(b[0] < b[2] ? b[0] : b[2], 0, c->w), x1 = clamp_int(b[0] < b[2] ? b[2] : b[0], 0, c->w);
        const int y0 = clamp_int(b[1] < b[3] ? b[1] : b[3], 0, c->h), y1 = clamp_int(b[1] < b[3] ? b[3] : b[1], 0, c->h);
        if (x1 <= x0 || y1 <= y0) continue;
        uint8_t color[3];
        overlay_color(box_color_label(p, boxes, i, names, n_labels), color);
        fill_rect(c, x0, y0, x1 - x0, frame, color);
        fill_rect(c, x0, y1 - frame, x1 - x0, frame, color);
        fill_rect(c, x0, y0, frame, y1 - y0, color);
        fill_rect(c, x1 - frame, y0, frame, y1 - y0, color);
        const char *text = box_label(&boxes[i]);
        if (!*text) continue;
        const int tag_w = text_width(text, s) + 2 * pad, tag_h = (GLYPH_H + DESCENT) * s + 2 * pad;
        const int tag_x = x0 + tag_w <= c->w ? x0 : (c->w - tag_w > 0 ? c->w - tag_w : 0);
        const int tag_y = y0 >= tag_h ? y0 - tag_h : y0;
        fill_rect(c, tag_x, tag_y, tag_w, tag_h, color);
        draw_text(c, tag_x + pad, tag_y + pad, s, text, readable_on(color));
    }
}

void dmllm_overlay_params_init(dmllm_overlay_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = (uint32_t)sizeof *p;
    p->alpha = 0.5f;
    p->background_label = -1;
    p->outline_px = DMLLM_AUTO;
    p->legend = 1;
}

size_t dmllm_overlay_params_sizeof(void) { return sizeof(dmllm_overlay_params); }

static dmllm_status check_overlay_params(const char *fn, const dmllm_overlay_params *p, int n_labels) {
    if (!(p->alpha >= 0.0f && p->alpha <= 1.0f))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: alpha %g is outside [0, 1]", fn, (double)p->alpha);
    if (p->background_label < -1 || p->background_label >= n_labels)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: background_label %d is outside -1..%d", fn,
                          p->background_label, n_labels - 1);
    if (p->outline_px != DMLLM_AUTO && (p->outline_px < 0 || p->outline_px > OUTLINE_MAX))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: outline_px %d is outside 0..%d (or DMLLM_AUTO)", fn,
                          p->outline_px, OUTLINE_MAX);
    if (p->legend != 0 && p->legend != 1)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: legend %d is not 0 or 1", fn, p->legend);
    if (p->n_boxes < 0 || (p->n_boxes > 0 && !p->boxes))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "%s: n_boxes %d with boxes %s; n_boxes >= 0, boxes not NULL when n_boxes > 0", fn,
                          p->n_boxes, p->boxes ? "given" : "NULL");
    return DMLLM_OK;
}

/* The caller's boxes as this library's structs in *out ([p->n_boxes], NULL for none): each read
 * up to its struct_size, later fields left at their zero defaults. */
static dmllm_status copy_boxes(const char *fn, const dmllm_overlay_params *p, dmllm_region **out) {
    *out = NULL;
    if (p->n_boxes == 0) return DMLLM_OK;
    dmllm_region *boxes = dmllm_calloc((size_t)p->n_boxes, sizeof *boxes);
    if (!boxes) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory for %d boxes", fn, p->n_boxes);
    dmllm_status status = DMLLM_OK;
    for (int i = 0; status == DMLLM_OK && i < p->n_boxes; i++) {
        char what[32];
        snprintf(what, sizeof what, "boxes[%d]", i);
        status = dmllm_copy_versioned(&boxes[i], sizeof boxes[i], p->boxes[i], what);
    }
    if (status != DMLLM_OK) {
        free(boxes);
        return status;
    }
    *out = boxes;
    return DMLLM_OK;
}

dmllm_status dmllm_write_overlay_png_v2(const char *path, const dmllm_image *image, const uint16_t *labels,
                                        int n_labels, const char *const *names, const dmllm_overlay_params *given) {
    static const char fn[] = "dmllm_write_overlay_png_v2";
    if (!image) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: image is NULL", fn);
    const int w = image->width, h = image->height;
    if (labels || n_labels != 0) DMLLM_TRY(check_label_map(fn, path, labels, w, h, n_labels));
    else DMLLM_TRY(check_output(fn, path, image->pixels, "image pixels", w, h));
    dmllm_overlay_params p;
    dmllm_overlay_params_init(&p);
    if (given) DMLLM_TRY(dmllm_copy_versioned(&p, sizeof p, given, "dmllm_overlay_params"));
    DMLLM_TRY(check_overlay_params(fn, &p, n_labels));
    dmllm_region *boxes = NULL; /* [p.n_boxes] */
    DMLLM_TRY(copy_boxes(fn, &p, &boxes));
    const int outline = p.outline_px != DMLLM_AUTO ? p.outline_px
                        : short_side(w, h) / OUTLINE_STEP > 1 ? short_side(w, h) / OUTLINE_STEP : 1;
    bool *present = NULL; /* [n_labels] labels with a legend row */
    if (n_labels > 0 && !(present = dmllm_calloc((size_t)n_labels, sizeof *present))) {
        free(boxes);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    const size_t n = (size_t)w * h;
    for (size_t i = 0; labels && i < n; i++) present[labels[i]] = true;
    if (p.background_label >= 0) present[p.background_label] = false;
    const legend_layout legend =
        p.legend && n_labels > 0 ? measure_legend(present, n_labels, names, w, h) : (legend_layout){0};
    const int out_w = w + legend.width, out_h = h > legend.height ? h : legend.height;
    uint8_t *rgb = NULL; /* [out_h][out_w][3] the picture */
    dmllm_status status = (int64_t)out_w * out_h > DMLLM_IMAGE_MAX_PIXELS
                              ? dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: the legend makes the picture %dx%d", fn,
                                           out_w, out_h)
                              : dmllm_alloc(&rgb, (size_t)out_w * out_h, 3, "the overlay picture");
    if (status == DMLLM_OK) {
        canvas all = {rgb, out_w, out_h, out_w}, photo = {rgb, w, h, out_w};
        fill_rect(&all, 0, 0, out_w, out_h, panel_grey);
        uint8_t *colors = NULL; /* [n_labels][3], NULL when there are no labels */
        if (n_labels > 0) status = dmllm_alloc(&colors, (size_t)n_labels, 3, "overlay colours");
        for (int k = 0; colors && k < n_labels; k++) overlay_color((uint32_t)k, colors + 3 * k);
        for (int y = 0; status == DMLLM_OK && y < h; y++)
            for (int x = 0; x < w; x++) {
                const size_t i = (size_t)y * w + x;
                const uint8_t *src = image->pixels + 3 * i;
                uint8_t *dst = canvas_pixel(&photo, x, y);
                if (!labels || labels[i] == p.background_label) {
                    memcpy(dst, src, 3);
                } else if (outline > 0 && on_border(labels, w, h, x, y, outline)) {
                    memcpy(dst, colors + 3 * labels[i], 3);
                } else {
                    for (int k = 0; k < 3; k++)
                        dst[k] = (uint8_t)lroundf((1.0f - p.alpha) * src[k] + p.alpha * colors[3 * labels[i] + k]);
                }
            }
        free(colors);
        if (status == DMLLM_OK) {
            draw_boxes(&photo, &p, boxes, names, n_labels);
            if (legend.width > 0) draw_legend(&all, w, &legend, present, n_labels, names);
            status = dmllm_png_write(path, DMLLM_PNG_RGB8, rgb, out_w, out_h, NULL, 0);
        }
    }
    free(boxes);
    free(present);
    free(rgb);
    return status;
}

dmllm_status dmllm_write_overlay_png(const char *path, const dmllm_image *image, const uint16_t *labels, int n_labels,
                                     const char *const *names, float alpha) {
    dmllm_overlay_params p;
    dmllm_overlay_params_init(&p);
    p.alpha = alpha;
    return dmllm_write_overlay_png_v2(path, image, labels, n_labels, names, &p);
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

/* Checks the range and replaces an end given as <= 0 by the 2nd / 98th percentile of the valid
 * depths [n]. */
static dmllm_status depth_range(const char *fn, const float *depth_m, size_t n, float *min_m, float *max_m) {
    if (!isfinite(*min_m) || !isfinite(*max_m) || (*min_m > 0.0f && *max_m > 0.0f && *min_m >= *max_m))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: range %g .. %g m is not finite or empty", fn,
                          (double)*min_m, (double)*max_m);
    if (*min_m > 0.0f && *max_m > 0.0f) return DMLLM_OK;
    float *valid; /* [n_valid] sorted valid depths */
    DMLLM_TRY(dmllm_alloc(&valid, n, sizeof *valid, "depth percentiles"));
    size_t n_valid = 0;
    for (size_t i = 0; i < n; i++)
        if (depth_valid(depth_m[i])) valid[n_valid++] = depth_m[i];
    if (n_valid > 0) {
        qsort(valid, n_valid, sizeof *valid, compare_floats);
        if (*min_m <= 0.0f) *min_m = percentile(valid, n_valid, 2.0);
        if (*max_m <= 0.0f) *max_m = percentile(valid, n_valid, 98.0);
    }
    free(valid);
    return DMLLM_OK;
}

/* Paints depth_m [c->h][c->w] into c: the colour map over min_m .. max_m, invalid pixels black. */
static void color_depths(canvas *c, const float *depth_m, float min_m, float max_m) {
    const float range = max_m - min_m;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            const float d = depth_m[(size_t)y * c->w + x];
            uint8_t *px = canvas_pixel(c, x, y);
            if (depth_valid(d)) dmllm_depth_color(range > 0.0f ? (d - min_m) / range : 0.0f, px);
            else memcpy(px, black, 3);
        }
}

dmllm_status dmllm_write_depth_color_png(const char *path, const float *depth_m, int width, int height, float min_m,
                                         float max_m) {
    static const char fn[] = "dmllm_write_depth_color_png";
    DMLLM_TRY(check_output(fn, path, depth_m, "depth_m", width, height));
    DMLLM_TRY(depth_range(fn, depth_m, (size_t)width * height, &min_m, &max_m));
    uint8_t *rgb; /* [height][width][3] */
    DMLLM_TRY(dmllm_alloc(&rgb, (size_t)width * height, 3, "the depth colour PNG"));
    canvas c = {rgb, width, height, width};
    color_depths(&c, depth_m, min_m, max_m);
    const dmllm_status status = dmllm_png_write(path, DMLLM_PNG_RGB8, rgb, width, height, NULL, 0);
    free(rgb);
    return status;
}

enum { BAR_W = 16, TICK_W = 3, TICK_GAP = 5, BAR_MIN_ROWS = 6, TARGET_TICKS = 5, TICK_TEXT = 32 };

/* Round tick spacing for a range: 1, 2 or 5 times a power of ten, near range / (TARGET_TICKS - 1);
 * *decimals: the digits after the point that show it. */
static double tick_step(double range, int *decimals) {
    const double raw = range / (TARGET_TICKS - 1), magnitude = pow(10.0, floor(log10(raw)));
    const double f = raw / magnitude;
    const double step = magnitude * (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0);
    const int digits = (int)-floor(log10(step) + 1e-9);
    *decimals = digits < 0 ? 0 : digits > 6 ? 6 : digits;
    return step;
}

/* The bar panel right of the map at x0: the colours from near (bottom) to far (top) between
 * top and bottom (exclusive), and a tick and label at every multiple of the step in the range. */
static void draw_colorbar(canvas *c, int x0, int top, int bottom, int s, float min_m, float max_m) {
    const int bar_x = x0 + PAD * s, span = bottom - 1 - top;
    for (int y = top; y < bottom; y++) {
        uint8_t color[3];
        dmllm_depth_color(span > 0 ? (float)(bottom - 1 - y) / span : 0.0f, color);
        fill_rect(c, bar_x, y, BAR_W * s, 1, color);
    }
    const double range = (double)max_m - min_m;
    int decimals = 0;
    const double step = range > 0.0 ? tick_step(range, &decimals) : 1.0;
    char text[TICK_TEXT];
    for (double k = ceil(min_m / step - 1e-9); k * step <= max_m + 1e-9 * step; k++) {
        const double value = k * step;
        const int y = range > 0.0 ? bottom - 1 - (int)lround((value - min_m) / range * span) : bottom - 1;
        fill_rect(c, bar_x + BAR_W * s, y - s / 2, TICK_W * s, s, white);
        snprintf(text, sizeof text, "%.*f m", decimals, value);
        draw_text(c, bar_x + (BAR_W + TICK_W + TICK_GAP) * s, y - GLYPH_H * s / 2, s, text, white);
        if (range <= 0.0) break;
    }
}

dmllm_status dmllm_write_depth_colorbar_png(const char *path, const float *depth_m, int width, int height,
                                            float min_m, float max_m) {
    static const char fn[] = "dmllm_write_depth_colorbar_png";
    DMLLM_TRY(check_output(fn, path, depth_m, "depth_m", width, height));
    DMLLM_TRY(depth_range(fn, depth_m, (size_t)width * height, &min_m, &max_m));
    const int s = text_scale(width, height), pad = PAD * s;
    /* The widest label: the bigger end with the step's decimals. */
    int decimals = 0;
    if (max_m > min_m) tick_step((double)max_m - min_m, &decimals);
    char widest[TICK_TEXT];
    snprintf(widest, sizeof widest, "%.*f m", decimals, (double)(fabsf(max_m) > fabsf(min_m) ? max_m : min_m));
    const int panel_w = pad + (BAR_W + TICK_W + TICK_GAP) * s + text_width(widest, s) + pad;
    const int margin = pad + GLYPH_H * s; /* above and below the bar, for half a label and a gap */
    const int min_h = 2 * margin + BAR_MIN_ROWS * ROW_H * s;
    const int out_w = width + panel_w, out_h = height > min_h ? height : min_h;
    if ((int64_t)out_w * out_h > DMLLM_IMAGE_MAX_PIXELS)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: the colour bar makes the picture %dx%d", fn, out_w, out_h);
    uint8_t *rgb; /* [out_h][out_w][3] */
    DMLLM_TRY(dmllm_alloc(&rgb, (size_t)out_w * out_h, 3, "the depth colour PNG"));
    canvas all = {rgb, out_w, out_h, out_w}, map = {rgb, width, height, out_w};
    fill_rect(&all, 0, 0, out_w, out_h, panel_grey);
    color_depths(&map, depth_m, min_m, max_m);
    draw_colorbar(&all, width, margin, out_h - margin, s, min_m, max_m);
    const dmllm_status status = dmllm_png_write(path, DMLLM_PNG_RGB8, rgb, out_w, out_h, NULL, 0);
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

/* Checks the token grid and features, then colours each token: tokens [rows][3], component k's
 * scores min-max scaled to 0 .. 255 as channel k. */
static dmllm_status pca_token_colors(const char *fn, const float *features, int rows, int cols, int grid_w,
                                     int grid_h, uint8_t **out_tokens) {
    *out_tokens = NULL;
    if (grid_w <= 0 || grid_h <= 0 || cols <= 0 || (int64_t)grid_w * grid_h != rows)
        return dmllm_fail(DMLLM_ERR_SHAPE, "%s: %d rows of %d features do not fill a %d x %d token grid", fn, rows, cols,
                          grid_w, grid_h);
    if (!features) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: features is NULL", fn);
    const size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(features[i]))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: feature %zu of row %zu is not finite", fn, i % (size_t)cols,
                              i / (size_t)cols);
    double *components = dmllm_malloc((size_t)PCA_COMPONENTS * cols, sizeof *components); /* [3][cols] */
    double *scores = dmllm_malloc((size_t)rows, PCA_COMPONENTS * sizeof *scores);        /* [rows][3] */
    uint8_t *tokens = dmllm_malloc((size_t)rows, 3);                                     /* [grid_h][grid_w][3] */
    double variances[PCA_COMPONENTS];
    dmllm_status status = components && scores && tokens
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
        *out_tokens = tokens;
        tokens = NULL;
    }
    free(components);
    free(scores);
    free(tokens);
    return status;
}

dmllm_status dmllm_write_pca_png(const char *path, const float *features, int rows, int cols, int grid_w, int grid_h,
                                 int out_w, int out_h) {
    static const char fn[] = "dmllm_write_pca_png";
    if (out_w <= 0 || out_h <= 0) {
        out_w = grid_w;
        out_h = grid_h;
    }
    DMLLM_TRY(check_output(fn, path, features, "features", out_w, out_h));
    uint8_t *tokens; /* [grid_h][grid_w][3] */
    DMLLM_TRY(pca_token_colors(fn, features, rows, cols, grid_w, grid_h, &tokens));
    uint8_t *rgb; /* [out_h][out_w][3] */
    dmllm_status status = dmllm_alloc(&rgb, (size_t)out_w * out_h, 3, "the PCA picture");
    if (status == DMLLM_OK) {
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
    free(tokens);
    free(rgb);
    return status;
}

dmllm_status dmllm_write_pca_overlay_png(const char *path, const dmllm_image *image, const float *features, int rows,
                                        int cols, int grid_w, int grid_h, float alpha) {
    static const char fn[] = "dmllm_write_pca_overlay_png";
    if (!image) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: image is NULL", fn);
    const int w = image->width, h = image->height;
    DMLLM_TRY(check_output(fn, path, features, "features", w, h));
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: alpha %g is outside [0, 1]", fn, (double)alpha);
    uint8_t *tokens; /* [grid_h][grid_w][3] */
    DMLLM_TRY(pca_token_colors(fn, features, rows, cols, grid_w, grid_h, &tokens));
    const size_t n = (size_t)w * h;
    float *grid = dmllm_malloc((size_t)rows, 3 * sizeof *grid); /* [grid_h][grid_w][3] */
    float *smooth = dmllm_malloc(n, 3 * sizeof *smooth);       /* [h][w][3] */
    uint8_t *rgb = dmllm_malloc(n, 3);                          /* [h][w][3] */
    dmllm_status status = grid && smooth && rgb ? DMLLM_OK
                                                : dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (status == DMLLM_OK) {
        for (size_t i = 0; i < (size_t)rows * 3; i++) grid[i] = tokens[i];
        status = dmllm_readout_resize(grid, grid_h, grid_w, 3, h, w, smooth);
    }
    if (status == DMLLM_OK) {
        for (size_t i = 0; i < 3 * n; i++)
            rgb[i] = (uint8_t)lroundf((1.0f - alpha) * image->pixels[i] + alpha * smooth[i]);
        status = dmllm_png_write(path, DMLLM_PNG_RGB8, rgb, w, h, NULL, 0);
    }
    free(tokens);
    free(grid);
    free(smooth);
    free(rgb);
    return status;
}
