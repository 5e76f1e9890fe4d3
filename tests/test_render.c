/*
 * test_render.c: the PNG writers of render.c, read back with libpng (raw samples, palette, bit
 * depth) and with the library's own loader: VOC palette entries, label maps (palette and 16-bit),
 * the overlay palette (no dark colour, the first 16 apart and away from grass/olive/brick), overlay
 * blend, outlines, background as the photo, boxes with tags and the legend panel (swatches of
 * exactly the present labels, glyph pixels, growing with the image), depth16 rounding and clamping,
 * colour-map stops and percentiles, the colour bar and a fixed range across images, PCA against
 * planted components and an independent Jacobi eigensolver, the PCA picture over the photo, and
 * atomicity (missing directory, target that is a directory, a write failing midway under
 * RLIMIT_FSIZE: an error, the old file intact, no temporary file left).
 */
#include "image.h"
#include "render.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <png.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- reading PNGs back ------------------------------------------------------------------------- */

typedef struct raw_png {
    int width, height, bit_depth, color_type, n_palette;
    uint8_t palette[256 * 3]; /* [n_palette][3] */
    uint8_t *data;            /* [height][row_bytes] samples as stored (16-bit big-endian) */
    size_t row_bytes;
} raw_png;

static bool read_raw_png(const char *path, raw_png *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(out->data);
        out->data = NULL;
        return false;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    out->width = (int)png_get_image_width(png, info);
    out->height = (int)png_get_image_height(png, info);
    out->bit_depth = png_get_bit_depth(png, info);
    out->color_type = png_get_color_type(png, info);
    png_colorp entries;
    if (png_get_PLTE(png, info, &entries, &out->n_palette))
        for (int i = 0; i < out->n_palette; i++) {
            out->palette[3 * i] = entries[i].red;
            out->palette[3 * i + 1] = entries[i].green;
            out->palette[3 * i + 2] = entries[i].blue;
        }
    out->row_bytes = png_get_rowbytes(png, info);
    out->data = malloc(out->row_bytes * (size_t)out->height);
    for (int y = 0; y < out->height; y++) png_read_row(png, out->data + (size_t)y * out->row_bytes, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return true;
}

static unsigned sample16(const raw_png *p, int x, int y) {
    const uint8_t *s = p->data + (size_t)y * p->row_bytes + 2 * (size_t)x;
    return (unsigned)s[0] << 8 | s[1];
}

static const char *temp_path(const char *name) {
    static char buffer[4][1024];
    static int next;
    char *b = buffer[next++ & 3];
    snprintf(b, sizeof buffer[0], "%s/%s", test_temp_dir(), name);
    return b;
}

/* Entries of dir whose name holds ".tmp.": temporary files left behind. */
static int count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The VOC palette written out independently: for each of 8 groups of 3 bits, red takes bit 0. */
static void voc_color(uint32_t label, uint8_t rgb[3]) {
    unsigned r = 0, g = 0, b = 0;
    for (int shift = 7; shift >= 0; shift--) {
        r |= (label & 1u) << shift;
        g |= ((label >> 1) & 1u) << shift;
        b |= ((label >> 2) & 1u) << shift;
        label >>= 3;
    }
    rgb[0] = (uint8_t)r, rgb[1] = (uint8_t)g, rgb[2] = (uint8_t)b;
}

/* ---- palette and label maps -------------------------------------------------------------------- */

static void test_label_colors(void) {
    static const struct { int label; uint8_t rgb[3]; } known[] = {
        {0, {0, 0, 0}},        {1, {128, 0, 0}},     {2, {0, 128, 0}},       {3, {128, 128, 0}},
        {4, {0, 0, 128}},      {7, {128, 128, 128}}, {8, {64, 0, 0}},        {15, {192, 128, 128}},
        {20, {0, 64, 128}},    {255, {224, 224, 192}}, {(1 << 24) - 1, {255, 255, 255}},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        uint8_t rgb[3];
        CHECK_OK(dmllm_label_color(known[i].label, rgb));
        CHECK_MSG(memcmp(rgb, known[i].rgb, 3) == 0, "label %d: (%u,%u,%u)", known[i].label, rgb[0], rgb[1], rgb[2]);
    }
    /* Every label of the 16-bit range has its own colour and matches the formula. */
    uint8_t *seen = calloc(1 << 21, 1); /* one bit per 24-bit colour */
    int mismatches = 0, repeats = 0;
    for (int label = 0; label < 65536; label++) {
        uint8_t rgb[3], expected[3];
        dmllm_label_color(label, rgb);
        voc_color((uint32_t)label, expected);
        mismatches += memcmp(rgb, expected, 3) != 0;
        const uint32_t key = (uint32_t)rgb[0] << 16 | (uint32_t)rgb[1] << 8 | rgb[2];
        repeats += (seen[key >> 3] >> (key & 7)) & 1;
        seen[key >> 3] |= (uint8_t)(1u << (key & 7));
    }
    free(seen);
    CHECK(mismatches == 0 && repeats == 0);
    uint8_t rgb[3];
    CHECK_STATUS(dmllm_label_color(-1, rgb), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_label_color(1 << 24, rgb), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_label_color(0, NULL), DMLLM_ERR_INVALID_ARGUMENT);
}

static void test_label_png(void) {
    enum { W = 7, H = 5 };
    uint16_t labels[W * H];
    for (int i = 0; i < W * H; i++) labels[i] = (uint16_t)((i * 7 + i / W) % 21);
    const char *path = temp_path("labels.png");
    CHECK_OK(dmllm_write_label_png(path, labels, W, H, 21));
    raw_png p;
    CHECK(read_raw_png(path, &p));
    CHECK(p.width == W && p.height == H && p.bit_depth == 8 && p.color_type == PNG_COLOR_TYPE_PALETTE &&
          p.n_palette == 21);
    int bad = 0;
    for (int i = 0; i < 21; i++) {
        uint8_t expected[3];
        voc_color((uint32_t)i, expected);
        bad += memcmp(p.palette + 3 * i, expected, 3) != 0;
    }
    for (int i = 0; p.data && i < W * H; i++) bad += p.data[(size_t)(i / W) * p.row_bytes + i % W] != labels[i];
    CHECK_MSG(bad == 0, "%d palette entries or indices differ", bad);
    free(p.data);
    /* The library's own decoder sees the palette colours. */
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_load_file(path, &image));
    bad = 0;
    for (int i = 0; image && i < W * H; i++) {
        uint8_t expected[3];
        voc_color(labels[i], expected);
        bad += memcmp(dmllm_image_pixels(image) + 3 * i, expected, 3) != 0;
    }
    CHECK(image && bad == 0);
    dmllm_image_free(image);

    /* More than 256 labels: 16-bit gray holding the labels. */
    for (int i = 0; i < W * H; i++) labels[i] = (uint16_t)(i * 1871 % 300);
    CHECK_OK(dmllm_write_label_png(path, labels, W, H, 300));
    CHECK(read_raw_png(path, &p));
    CHECK(p.bit_depth == 16 && p.color_type == PNG_COLOR_TYPE_GRAY);
    bad = 0;
    for (int i = 0; p.data && i < W * H; i++) bad += sample16(&p, i % W, i / W) != labels[i];
    CHECK(p.data && bad == 0);
    free(p.data);

    /* One label: a one-entry palette. */
    memset(labels, 0, sizeof labels);
    CHECK_OK(dmllm_write_label_png(path, labels, W, H, 1));
    CHECK(read_raw_png(path, &p) && p.n_palette == 1 && p.palette[0] == 0);
    free(p.data);

    const char *never = temp_path("never.png");
    labels[12] = 3;
    CHECK_STATUS(dmllm_write_label_png(never, labels, W, H, 3), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "(x 5, y 1)") != NULL, "position not named: %s", dmllm_last_error());
    CHECK_STATUS(dmllm_write_label_png(never, labels, W, H, 0), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_label_png(never, labels, W, H, 65537), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_label_png(never, labels, 0, H, 4), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_label_png(never, NULL, W, H, 4), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_label_png(NULL, labels, W, H, 4), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_label_png("", labels, W, H, 4), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(!file_exists(never));
}

/* ---- overlay ----------------------------------------------------------------------------------- */

static float luminance(const uint8_t *rgb) { return 0.2126f * rgb[0] + 0.7152f * rgb[1] + 0.0722f * rgb[2]; }

static dmllm_image *gradient_image(int w, int h) {
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_alloc(w, h, &image));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = image->pixels + ((size_t)y * w + x) * 3;
            px[0] = (uint8_t)(x * 255 / (w - 1));
            px[1] = (uint8_t)(y * 255 / (h - 1));
            px[2] = (uint8_t)((x + y) % 256);
        }
    return image;
}

static uint8_t *pixel_at(const dmllm_image *image, int x, int y) {
    return image->pixels + ((size_t)y * image->width + x) * 3;
}

static void overlay_rgb(int label, uint8_t rgb[3]) { CHECK_OK(dmllm_overlay_color(label, rgb)); }

/* The blend of image pixel (x, y) toward label's overlay colour. */
static bool is_blend(const dmllm_image *out, const dmllm_image *image, int x, int y, int label, float alpha) {
    uint8_t color[3];
    overlay_rgb(label, color);
    const uint8_t *src = pixel_at(image, x, y), *px = pixel_at(out, x, y);
    for (int k = 0; k < 3; k++)
        if (px[k] != (uint8_t)floorf((1.0f - alpha) * src[k] + alpha * color[k] + 0.5f)) return false;
    return true;
}

static bool is_color(const dmllm_image *out, int x, int y, int label) {
    uint8_t color[3];
    overlay_rgb(label, color);
    return memcmp(pixel_at(out, x, y), color, 3) == 0;
}

/* Labels whose colour shows in column x of the legend panel, each run once, top to bottom. */
static int legend_swatches(const dmllm_image *out, int x, int n_labels, int *found, int max_found) {
    int n = 0;
    for (int y = 0; y < out->height; y++)
        for (int label = 0; label < n_labels; label++)
            if (is_color(out, x, y, label) && (n == 0 || found[n - 1] != label) && n < max_found) found[n++] = label;
    return n;
}

static void test_overlay_palette(void) {
    uint8_t colors[16][3];
    float darkest = 255.0f;
    for (int label = 0; label < 65536; label++) {
        uint8_t rgb[3];
        overlay_rgb(label, rgb);
        if (label < 16) memcpy(colors[label], rgb, 3);
        darkest = luminance(rgb) < darkest ? luminance(rgb) : darkest;
    }
    /* No colour is near black: the old palette made label 0 a black veil. */
    CHECK_MSG(darkest >= 100.0f, "darkest overlay colour has luminance %.1f", (double)darkest);
    double closest = 1e9;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < i; j++) {
            double d = 0.0;
            for (int k = 0; k < 3; k++) d += (colors[i][k] - colors[j][k]) * (double)(colors[i][k] - colors[j][k]);
            closest = sqrt(d) < closest ? sqrt(d) : closest;
        }
    CHECK_MSG(closest >= 30.0, "two of the first 16 overlay colours are %.1f apart in RGB", closest);
    /* Far from grass, dark olive and brick, the colours of common scenes. */
    static const uint8_t scene[3][3] = {{86, 125, 50}, {85, 107, 47}, {150, 70, 50}};
    for (int i = 0; i < 16; i++)
        for (int s = 0; s < 3; s++) {
            double d = 0.0;
            for (int k = 0; k < 3; k++) d += (colors[i][k] - scene[s][k]) * (double)(colors[i][k] - scene[s][k]);
            CHECK_MSG(sqrt(d) >= 60.0, "colour %d is %.1f from scene colour %d", i, sqrt(d), s);
        }
    uint8_t rgb[3];
    CHECK_STATUS(dmllm_overlay_color(-1, rgb), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_overlay_color(65536, rgb), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_overlay_color(0, NULL), DMLLM_ERR_INVALID_ARGUMENT);
}

static void test_overlay(void) {
    enum { W = 200, H = 120, N_LABELS = 12 };
    dmllm_image *image = gradient_image(W, H);
    uint16_t *labels = malloc(sizeof *labels * W * H); /* [H][W] */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) labels[y * W + x] = x < W / 2 ? 2 : (y > 80 && x > 150 ? 9 : 5);
    static const char *const names[N_LABELS] = {"zero", "one", "H", "three", "four", "five",
                                                "six",  "seven", "eight", "nine", "ten", "eleven"};
    const char *path = temp_path("overlay.png");
    const float alpha = 0.5f;
    dmllm_overlay_params p;
    dmllm_overlay_params_init(&p);
    CHECK(p.struct_size == sizeof p && p.alpha == 0.5f && p.background_label == -1 && p.outline_px == DMLLM_AUTO &&
          p.legend == 1 && !p.boxes && p.n_boxes == 0 && dmllm_overlay_params_sizeof() == sizeof p);
    CHECK_OK(dmllm_write_overlay_png_v2(path, image, labels, N_LABELS, names, &p));
    dmllm_image *out = NULL;
    CHECK_OK(dmllm_image_load_file(path, &out));
    /* The legend sits in a panel right of the image, which it never covers. */
    CHECK(out && out->width > W && out->height == H);
    if (!out) goto done;
    CHECK(is_blend(out, image, 2, 2, 2, alpha) && is_blend(out, image, 50, 60, 2, alpha));
    CHECK(is_blend(out, image, 120, 10, 5, alpha) && is_blend(out, image, 190, 110, 9, alpha));
    /* A 1 px outline in full colour on both sides of every border, none along the image edge. */
    CHECK(is_color(out, W / 2 - 1, 60, 2) && is_color(out, W / 2, 60, 5));
    CHECK(is_color(out, 170, 80, 5) && is_color(out, 170, 81, 9) && is_blend(out, image, 170, 79, 5, alpha));
    CHECK(is_blend(out, image, 0, 60, 2, alpha) && is_blend(out, image, 199, 10, 5, alpha));
    int found[8];
    const int n_found = legend_swatches(out, W + 6, N_LABELS, found, 8); /* swatches at x W+3 .. W+10 */
    CHECK_MSG(n_found == 3 && found[0] == 2 && found[1] == 5 && found[2] == 9,
              "swatches: %d found (%d %d %d), expected labels 2 5 9", n_found, found[0], found[1], found[2]);
    /* The first row's text "H" in white: the two stems and the bar, nothing between the stems. */
    const int tx = W + 14, ty = 4;
#define WHITE(x, y) (memcmp(pixel_at(out, x, y), "\xff\xff\xff", 3) == 0)
    CHECK(WHITE(tx, ty) && WHITE(tx + 4, ty) && WHITE(tx + 2, ty + 3));
    CHECK(!WHITE(tx + 1, ty) && !WHITE(tx + 2, ty + 1) && !WHITE(tx + 2, ty + 6));
#undef WHITE
    dmllm_image_free(out);
    out = NULL;

    /* The background label shows the photo exactly, outline and legend row included. */
    p.background_label = 5;
    p.alpha = 0.8f;
    CHECK_OK(dmllm_write_overlay_png_v2(path, image, labels, N_LABELS, names, &p));
    CHECK_OK(dmllm_image_load_file(path, &out));
    if (out) {
        int differ = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (labels[y * W + x] == 5) differ += memcmp(pixel_at(out, x, y), pixel_at(image, x, y), 3) != 0;
        CHECK_MSG(differ == 0, "%d background pixels differ from the photo", differ);
        CHECK(is_blend(out, image, 50, 60, 2, 0.8f) && is_color(out, W / 2 - 1, 60, 2));
        const int n = legend_swatches(out, W + 6, N_LABELS, found, 8);
        CHECK_MSG(n == 2 && found[0] == 2 && found[1] == 9, "background: %d swatches", n);
    }
    dmllm_image_free(out);
    out = NULL;

    /* No outline, no legend: the picture has the image's size and every pixel is the blend. */
    dmllm_overlay_params_init(&p);
    p.outline_px = 0;
    p.legend = 0;
    CHECK_OK(dmllm_write_overlay_png_v2(path, image, labels, N_LABELS, NULL, &p));
    CHECK_OK(dmllm_image_load_file(path, &out));
    if (out) {
        int differ = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) differ += !is_blend(out, image, x, y, labels[y * W + x], 0.5f);
        CHECK(out->width == W && out->height == H && differ == 0);
    }
    dmllm_image_free(out);
    out = NULL;

    /* The legacy call: the v2 defaults with its alpha. */
    CHECK_OK(dmllm_write_overlay_png(path, image, labels, N_LABELS, NULL, 1.0f));
    CHECK_OK(dmllm_image_load_file(path, &out));
    CHECK(out && out->width > W && is_color(out, 50, 60, 2));
    dmllm_image_free(out);
    out = NULL;

    /* Boxes: a frame in the colour of the label its text names, a tag with the text above it; an
     * unnamed text takes label n_labels + its rank. */
    const dmllm_region boxes[2] = {{sizeof boxes[0], .label = "H", .box = {20, 40, 80, 100}},
                                   {sizeof boxes[0], .label = "cat", .box = {130, 30, 190, 70}}};
    const dmllm_region *const box_ptrs[2] = {&boxes[0], &boxes[1]};
    dmllm_overlay_params_init(&p);
    p.boxes = box_ptrs;
    p.n_boxes = 2;
    p.alpha = 0.0f;
    p.outline_px = 0;
    CHECK_OK(dmllm_write_overlay_png_v2(path, image, labels, N_LABELS, names, &p));
    CHECK_OK(dmllm_image_load_file(path, &out));
    if (out) {
        CHECK(is_color(out, 20, 70, 2) && is_color(out, 21, 70, 2) && is_color(out, 79, 70, 2) && is_color(out, 50, 99, 2));
        CHECK(memcmp(pixel_at(out, 50, 70), pixel_at(image, 50, 70), 3) == 0); /* inside: the photo */
        CHECK(is_color(out, 130, 50, N_LABELS) && is_color(out, 20, 40 - 2, 2)); /* tag edge above the box */
        int ink = 0; /* black text on the light tag */
        for (int y = 25; y < 40; y++)
            for (int x = 20; x < 40; x++) ink += memcmp(pixel_at(out, x, y), "\0\0\0", 3) == 0;
        CHECK_MSG(ink > 5, "tag text: %d ink pixels", ink);
    }
    dmllm_image_free(out);
    out = NULL;
    /* Boxes alone: no label map. */
    CHECK_OK(dmllm_write_overlay_png_v2(path, image, NULL, 0, NULL, &p));
    CHECK_OK(dmllm_image_load_file(path, &out));
    CHECK(out && out->width == W && is_color(out, 20, 70, 0) && is_color(out, 130, 50, 1));
    dmllm_image_free(out);
    out = NULL;

    /* The legend grows with the image: text scale 1 at 100 px, 4 at 1200 px. */
    int panel[2];
    const int sides[2] = {100, 1200};
    for (int t = 0; t < 2; t++) {
        const int side = sides[t];
        dmllm_image *square = gradient_image(side, side);
        uint16_t *square_labels = calloc((size_t)side * side, sizeof *square_labels);
        CHECK_OK(dmllm_write_overlay_png_v2(path, square, square_labels, 1, names, NULL));
        CHECK_OK(dmllm_image_load_file(path, &out));
        panel[t] = out ? out->width - side : 0;
        /* The 100 px image keeps every pixel: the panel is beside it. */
        if (out && t == 0) CHECK(out->height == side && is_blend(out, square, 2, 2, 0, 0.5f));
        dmllm_image_free(out);
        out = NULL;
        dmllm_image_free(square);
        free(square_labels);
    }
    CHECK_MSG(panel[0] > 0 && panel[1] >= 4 * panel[0] - 8, "legend panels %d and %d px wide", panel[0], panel[1]);

    const char *never = temp_path("never_overlay.png");
    CHECK_STATUS(dmllm_write_overlay_png(never, image, labels, N_LABELS, names, -0.1f), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_overlay_png(never, image, labels, N_LABELS, names, NAN), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_overlay_png(never, NULL, labels, N_LABELS, names, alpha), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_overlay_png(never, image, labels, 3, names, alpha), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_overlay_params_init(&p);
    p.background_label = N_LABELS;
    CHECK_STATUS(dmllm_write_overlay_png_v2(never, image, labels, N_LABELS, names, &p), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_overlay_params_init(&p);
    p.outline_px = 65;
    CHECK_STATUS(dmllm_write_overlay_png_v2(never, image, labels, N_LABELS, names, &p), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_overlay_params_init(&p);
    p.n_boxes = 1;
    CHECK_STATUS(dmllm_write_overlay_png_v2(never, image, labels, N_LABELS, names, &p), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_overlay_params_init(&p);
    p.legend = 2;
    CHECK_STATUS(dmllm_write_overlay_png_v2(never, image, labels, N_LABELS, names, &p), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_overlay_png_v2(never, image, NULL, 3, names, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(!file_exists(never));
done:
    dmllm_image_free(out);
    dmllm_image_free(image);
    free(labels);
}

/* ---- depth ------------------------------------------------------------------------------------- */

static unsigned expected_depth16(float depth, double scale) {
    if (isnan(depth)) return 0;
    const double v = floor((double)depth * scale + 0.5);
    return v < 0 ? 0u : v > 65535 ? 65535u : (unsigned)v;
}

static void test_depth16(void) {
    static const float depths[] = {0.0f, 1.0f, 0.0015f, 1.2344f, 65.535f, 65.5354f, 70.0f, -1.0f, NAN, INFINITY,
                                   -INFINITY, 0.0004f, 12.3456f, 3.0f, 0.25f, 1e-9f};
    enum { W = 4, H = 4 };
    const char *path = temp_path("depth16.png");
    const double scales[] = {0.0, 1000.0, 256.0};
    for (int s = 0; s < 3; s++) {
        CHECK_OK(dmllm_write_depth_png16(path, depths, W, H, (float)scales[s]));
        raw_png p;
        CHECK(read_raw_png(path, &p) && p.bit_depth == 16 && p.color_type == PNG_COLOR_TYPE_GRAY);
        const double scale = scales[s] == 0.0 ? 1000.0 : scales[s];
        for (int i = 0; p.data && i < W * H; i++)
            CHECK_MSG(sample16(&p, i % W, i / W) == expected_depth16(depths[i], scale), "depth %g scale %g: %u, not %u",
                      (double)depths[i], scale, sample16(&p, i % W, i / W), expected_depth16(depths[i], scale));
        free(p.data);
    }
    CHECK(expected_depth16(1.0f, 1000.0) == 1000 && expected_depth16(65.535f, 1000.0) == 65535);
    CHECK_STATUS(dmllm_write_depth_png16(path, depths, W, H, -1.0f), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_depth_png16(path, depths, W, H, NAN), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_depth_png16(path, depths, W, H, INFINITY), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_depth_png16(path, NULL, W, H, 0.0f), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_depth_png16(path, depths, W, -1, 0.0f), DMLLM_ERR_INVALID_ARGUMENT);
}

static void test_depth_color(void) {
    static const uint8_t stops[5][3] = {
        {252, 236, 140}, {250, 170, 70}, {225, 105, 100}, {130, 60, 150}, {25, 30, 95}};
    for (int i = 0; i < 5; i++) {
        uint8_t rgb[3];
        dmllm_depth_color(i / 4.0f, rgb);
        CHECK_MSG(memcmp(rgb, stops[i], 3) == 0, "stop %d: (%u,%u,%u)", i, rgb[0], rgb[1], rgb[2]);
    }
    uint8_t rgb[3], mid[3];
    dmllm_depth_color(-3.0f, rgb);
    CHECK(memcmp(rgb, stops[0], 3) == 0);
    dmllm_depth_color(7.0f, rgb);
    CHECK(memcmp(rgb, stops[4], 3) == 0);
    dmllm_depth_color(0.125f, mid); /* halfway between the first two stops */
    CHECK(mid[0] == 251 && mid[1] == 203 && mid[2] == 105);
    /* Luminance falls monotonically from near to far. */
    int rises = 0;
    float previous = 1e9f;
    for (int i = 0; i <= 1000; i++) {
        dmllm_depth_color(i / 1000.0f, rgb);
        rises += luminance(rgb) > previous + 0.5f;
        previous = luminance(rgb);
    }
    CHECK(rises == 0);

    /* Depths 1 .. 101 m and five invalid ones: percentiles 2/98 are 3 and 99 m. */
    enum { N = 106 };
    float depths[N];
    for (int i = 0; i < 101; i++) depths[i] = (float)(i + 1);
    depths[101] = 0.0f, depths[102] = -2.0f, depths[103] = NAN, depths[104] = INFINITY, depths[105] = -INFINITY;
    const char *path = temp_path("depth_color.png");
    CHECK_OK(dmllm_write_depth_color_png(path, depths, N, 1, 0.0f, 0.0f));
    dmllm_image *out = NULL;
    CHECK_OK(dmllm_image_load_file(path, &out));
    if (out) {
        const uint8_t *px = out->pixels;
        CHECK(memcmp(px + 3 * 0, stops[0], 3) == 0 && memcmp(px + 3 * 2, stops[0], 3) == 0); /* 1 m (clamped), 3 m */
        CHECK(memcmp(px + 3 * 50, stops[2], 3) == 0);                                          /* 51 m: t = 1/2 */
        CHECK(memcmp(px + 3 * 98, stops[4], 3) == 0 && memcmp(px + 3 * 100, stops[4], 3) == 0); /* 99, 101 m */
        int not_black = 0;
        for (int i = 101; i < N; i++) not_black += px[3 * i] | px[3 * i + 1] | px[3 * i + 2];
        CHECK(not_black == 0);
    }
    dmllm_image_free(out);
    out = NULL;
    /* A given range, 2 .. 8 m. */
    CHECK_OK(dmllm_write_depth_color_png(path, depths, N, 1, 2.0f, 8.0f));
    CHECK_OK(dmllm_image_load_file(path, &out));
    if (out) {
        CHECK(memcmp(out->pixels + 3 * 1, stops[0], 3) == 0);  /* 2 m */
        CHECK(memcmp(out->pixels + 3 * 4, stops[2], 3) == 0);  /* 5 m */
        CHECK(memcmp(out->pixels + 3 * 7, stops[4], 3) == 0);  /* 8 m */
        CHECK(memcmp(out->pixels + 3 * 60, stops[4], 3) == 0); /* beyond: clamped */
    }
    dmllm_image_free(out);
    out = NULL;
    /* Only the far end automatic: 50 .. 99 m. */
    CHECK_OK(dmllm_write_depth_color_png(path, depths, N, 1, 50.0f, -1.0f));
    CHECK_OK(dmllm_image_load_file(path, &out));
    CHECK(out && memcmp(out->pixels + 3 * 49, stops[0], 3) == 0 && memcmp(out->pixels + 3 * 98, stops[4], 3) == 0);
    dmllm_image_free(out);
    CHECK_STATUS(dmllm_write_depth_color_png(path, depths, N, 1, 8.0f, 2.0f), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_depth_color_png(path, depths, N, 1, NAN, 2.0f), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_depth_color_png(path, NULL, N, 1, 0.0f, 0.0f), DMLLM_ERR_INVALID_ARGUMENT);
}


/* The colour bar picture: the map beside a bar from near (bottom) to far (top) with ticks, and a
 * fixed range giving equal depths equal colours in two images. */
static void test_depth_colorbar(void) {
    enum { W = 60, H = 200 };
    float *a = malloc(sizeof *a * W * H), *b = malloc(sizeof *b * W * H); /* [H][W] each */
    for (int i = 0; i < W * H; i++) {
        a[i] = 1.0f + 4.0f * (float)(i / W) / (H - 1); /* 1 .. 5 m down the rows */
        b[i] = 3.0f + 6.0f * (float)(i % W) / (W - 1); /* 3 .. 9 m across */
    }
    a[0] = 3.0f, b[0] = 3.0f;
    const char *path_a = temp_path("bar_a.png"), *path_b = temp_path("bar_b.png");
    dmllm_image *out_a = NULL, *out_b = NULL;
    /* Each image's own range: the same 3 m gets two colours. */
    CHECK_OK(dmllm_write_depth_colorbar_png(path_a, a, W, H, 0.0f, 0.0f));
    CHECK_OK(dmllm_write_depth_colorbar_png(path_b, b, W, H, 0.0f, 0.0f));
    CHECK_OK(dmllm_image_load_file(path_a, &out_a));
    CHECK_OK(dmllm_image_load_file(path_b, &out_b));
    CHECK(out_a && out_b && memcmp(out_a->pixels, out_b->pixels, 3) != 0);
    dmllm_image_free(out_a);
    dmllm_image_free(out_b);
    out_a = out_b = NULL;
    /* One fixed range: equal colours, and the map part is dmllm_write_depth_color_png's. */
    CHECK_OK(dmllm_write_depth_colorbar_png(path_a, a, W, H, 1.0f, 10.0f));
    CHECK_OK(dmllm_write_depth_colorbar_png(path_b, b, W, H, 1.0f, 10.0f));
    CHECK_OK(dmllm_image_load_file(path_a, &out_a));
    CHECK_OK(dmllm_image_load_file(path_b, &out_b));
    const char *plain_path = temp_path("bar_plain.png");
    dmllm_image *plain = NULL;
    CHECK_OK(dmllm_write_depth_color_png(plain_path, a, W, H, 1.0f, 10.0f));
    CHECK_OK(dmllm_image_load_file(plain_path, &plain));
    if (out_a && out_b && plain) {
        CHECK(memcmp(out_a->pixels, out_b->pixels, 3) == 0);
        int differ = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) differ += memcmp(pixel_at(out_a, x, y), pixel_at(plain, x, y), 3) != 0;
        CHECK_MSG(differ == 0, "%d map pixels differ from the plain colour map", differ);
        /* The bar: a column right of the map runs through the whole ramp, far (navy) above near. */
        CHECK(out_a->width > W + 20 && out_a->height == H);
        const int bar_x = W + 3 + 8; /* margin 3, bar 16 wide at scale 1 */
        uint8_t near[3], far[3];
        dmllm_depth_color(0.0f, near);
        dmllm_depth_color(1.0f, far);
        int y_near = -1, y_far = -1, white = 0;
        for (int y = 0; y < H; y++) {
            if (memcmp(pixel_at(out_a, bar_x, y), near, 3) == 0) y_near = y;
            if (y_far < 0 && memcmp(pixel_at(out_a, bar_x, y), far, 3) == 0) y_far = y;
            for (int x = W + 19; x < out_a->width; x++) white += memcmp(pixel_at(out_a, x, y), "\xff\xff\xff", 3) == 0;
        }
        CHECK_MSG(y_far >= 0 && y_near > y_far + H / 2, "bar: far at y %d, near at y %d", y_far, y_near);
        CHECK_MSG(white > 100, "ticks and labels: %d white pixels", white);
    }
    dmllm_image_free(out_a);
    dmllm_image_free(out_b);
    dmllm_image_free(plain);
    CHECK_STATUS(dmllm_write_depth_colorbar_png(path_a, a, W, H, 8.0f, 2.0f), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_depth_colorbar_png(path_a, NULL, W, H, 0.0f, 0.0f), DMLLM_ERR_INVALID_ARGUMENT);
    free(a);
    free(b);
}

/* ---- PCA --------------------------------------------------------------------------------------- */

/* Eigenvalues of the symmetric n x n matrix a (destroyed), by cyclic Jacobi rotations. */
static void jacobi_eigenvalues(double *a, int n, double *values) {
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
        if (off < 1e-22) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                if (fabs(a[p * n + q]) < 1e-300) continue;
                const double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * a[p * n + q]);
                const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                const double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    const double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    const double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < n; i++) values[i] = a[i * n + i];
}

static int compare_descending(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Random features with a decaying spectrum: the top three from dmllm_pca3 must be eigenpairs of
 * the covariance and match the Jacobi eigenvalues. The iteration stops about 1e-5 rad from the
 * eigenvector, so vectors are checked to 1e-4 and the (second-order) variances to 1e-9. */
static void test_pca_random(void) {
    enum { ROWS = 300, COLS = 24 };
    float *x = malloc(sizeof *x * ROWS * COLS);
    uint64_t state = 12345;
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < COLS; j++) {
            state = state * 6364136223846793005ull + 1;
            const double u = (double)(state >> 11) / 9007199254740992.0 - 0.5;
            x[r * COLS + j] = (float)(u * 4.0 / (1.0 + j) + 0.3 * j);
        }
    double components[3 * COLS], scores[ROWS * 3], variances[3];
    CHECK_OK(dmllm_pca3(x, ROWS, COLS, components, scores, variances));
    double mean[COLS] = {0}, cov[COLS * COLS] = {0}, eig[COLS];
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < COLS; j++) mean[j] += x[r * COLS + j] / (double)ROWS;
    for (int r = 0; r < ROWS; r++)
        for (int i = 0; i < COLS; i++)
            for (int j = 0; j < COLS; j++)
                cov[i * COLS + j] += (x[r * COLS + i] - mean[i]) * (x[r * COLS + j] - mean[j]) / (ROWS - 1);
    for (int k = 0; k < 3; k++) {
        const double *v = components + k * COLS;
        double residual = 0.0, norm = 0.0;
        int largest = 0;
        for (int i = 0; i < COLS; i++) {
            double cv = 0.0;
            for (int j = 0; j < COLS; j++) cv += cov[i * COLS + j] * v[j];
            residual += (cv - variances[k] * v[i]) * (cv - variances[k] * v[i]);
            norm += v[i] * v[i];
            if (fabs(v[i]) > fabs(v[largest])) largest = i;
        }
        CHECK_MSG(sqrt(residual) < 1e-4 * variances[0], "component %d: |Cv - lv| = %g", k, sqrt(residual));
        CHECK(fabs(norm - 1.0) < 1e-12 && v[largest] > 0);
    }
    double copy[COLS * COLS];
    memcpy(copy, cov, sizeof copy);
    jacobi_eigenvalues(copy, COLS, eig);
    qsort(eig, COLS, sizeof *eig, compare_descending);
    for (int k = 0; k < 3; k++)
        CHECK_MSG(fabs(variances[k] - eig[k]) < 1e-9 * eig[0], "variance %d: %.12g, Jacobi %.12g", k, variances[k], eig[k]);
    free(x);
}

/* A token grid whose features are 3(x-3.5) a + (y-2.5) b + 0.2 q(x) c + offset, with a, b, c
 * orthonormal and q(x) = (x-3.5)^2 - 5.25 uncorrelated with x and y: the components are a, b and
 * -c (c's largest coefficient is negative), so red rises with x, green with y, and blue follows -q. */
static void test_pca_png(void) {
    enum { GW = 8, GH = 6, COLS = 6, ROWS = GW * GH };
    static const double a[COLS] = {0.8, 0.6, 0, 0, 0, 0}, b[COLS] = {-0.36, 0.48, 0.8, 0, 0, 0},
                        c[COLS] = {0, 0, 0, 0.6, -0.8, 0};
    float x[ROWS * COLS];
    for (int gy = 0; gy < GH; gy++)
        for (int gx = 0; gx < GW; gx++) {
            const double q = (gx - 3.5) * (gx - 3.5) - 5.25;
            for (int j = 0; j < COLS; j++)
                x[(gy * GW + gx) * COLS + j] =
                    (float)(3.0 * (gx - 3.5) * a[j] + (gy - 2.5) * b[j] + 0.2 * q * c[j] + 5.0 + j);
        }
    double components[3 * COLS], scores[ROWS * 3], variances[3];
    CHECK_OK(dmllm_pca3(x, ROWS, COLS, components, scores, variances));
    double err = 0.0;
    for (int j = 0; j < COLS; j++)
        err = fmax(err, fmax(fabs(components[j] - a[j]),
                             fmax(fabs(components[COLS + j] - b[j]), fabs(components[2 * COLS + j] + c[j]))));
    CHECK_MSG(err < 1e-4, "components differ from a, b, -c by %g", err);
    /* Variances with the rows-1 denominator: 9*sum(x-3.5)^2*GH/47 etc. */
    CHECK(fabs(variances[0] - 9.0 * 42.0 * GH / (ROWS - 1)) < 1e-4);
    CHECK(fabs(variances[1] - 17.5 * GW / (ROWS - 1)) < 1e-4);
    CHECK(fabs(variances[2] - 0.04 * 168.0 * GH / (ROWS - 1)) < 1e-4);

    const char *path = temp_path("pca.png");
    CHECK_OK(dmllm_write_pca_png(path, x, ROWS, COLS, GW, GH, 2 * GW, 2 * GH));
    dmllm_image *out = NULL;
    CHECK_OK(dmllm_image_load_file(path, &out));
    CHECK(out && out->width == 2 * GW && out->height == 2 * GH);
    if (out) {
        int bad = 0;
        for (int y = 0; y < 2 * GH; y++)
            for (int xx = 0; xx < 2 * GW; xx++) {
                const int gx = xx / 2, gy = y / 2;
                const uint8_t *px = out->pixels + ((size_t)y * out->width + xx) * 3;
                const double q = (gx - 3.5) * (gx - 3.5) - 5.25;
                const double r = 255.0 * gx / (GW - 1), g = 255.0 * gy / (GH - 1), bl = 255.0 * (-q + 7.0) / 12.0;
                bad += fabs(px[0] - r) > 1.0 || fabs(px[1] - g) > 1.0 || fabs(px[2] - bl) > 1.0;
            }
        CHECK_MSG(bad == 0, "%d PCA pixels off", bad);
        /* Red strictly rises along x, green along y. */
        const uint8_t *p = out->pixels;
        CHECK(p[0] == 0 && p[3 * (2 * GW - 1)] == 255 && p[3 * 2] < p[3 * 4]);
        CHECK(p[1] == 0 && p[((size_t)(2 * GH - 1) * 2 * GW) * 3 + 1] == 255);
    }
    dmllm_image_free(out);

    /* The same bytes whatever the thread count; default size = the grid. */
    const char *path1 = temp_path("pca1.png"), *path2 = temp_path("pca2.png");
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK_OK(dmllm_write_pca_png(path1, x, ROWS, COLS, GW, GH, 0, 0));
    omp_set_num_threads(3);
    CHECK_OK(dmllm_write_pca_png(path2, x, ROWS, COLS, GW, GH, 0, 0));
    omp_set_num_threads(threads);
    size_t n1 = 0, n2 = 0;
    void *f1 = test_read_file(path1, &n1), *f2 = test_read_file(path2, &n2);
    CHECK(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0);
    free(f1);
    free(f2);
    raw_png raw;
    CHECK(read_raw_png(path1, &raw) && raw.width == GW && raw.height == GH);
    free(raw.data);

    /* Two feature columns: the third component has no variance, so blue is 0. */
    float two[ROWS * 2];
    for (int i = 0; i < ROWS; i++) two[2 * i] = (float)(i % GW), two[2 * i + 1] = (float)((i / GW) * 0.5);
    CHECK_OK(dmllm_write_pca_png(path, two, ROWS, 2, GW, GH, 0, 0));
    CHECK_OK(dmllm_image_load_file(path, &out));
    int blue = 0;
    for (int i = 0; out && i < ROWS; i++) blue += out->pixels[3 * i + 2];
    CHECK(out && blue == 0);
    dmllm_image_free(out);

    CHECK_STATUS(dmllm_write_pca_png(path, x, ROWS, COLS, GW + 1, GH, 0, 0), DMLLM_ERR_SHAPE);
    x[7] = NAN;
    CHECK_STATUS(dmllm_write_pca_png(path, x, ROWS, COLS, GW, GH, 0, 0), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_pca_png(path, NULL, ROWS, COLS, GW, GH, 0, 0), DMLLM_ERR_INVALID_ARGUMENT);
}


/* The PCA picture over the photo: alpha 0 is the photo, alpha 1 the token colours (a corner pixel
 * is its token's colour), between them a mix; the colours are interpolated, not blocks. */
static void test_pca_overlay(void) {
    enum { GW = 4, GH = 3, COLS = 5, W = 40, H = 30 };
    float features[GW * GH * COLS]; /* [GH * GW][COLS] */
    for (int i = 0; i < GW * GH * COLS; i++) features[i] = sinf(0.7f * i) + 0.1f * (float)(i % 7);
    dmllm_image *image = gradient_image(W, H);
    const char *grid_path = temp_path("pca_grid.png"), *path = temp_path("pca_overlay.png");
    CHECK_OK(dmllm_write_pca_png(grid_path, features, GW * GH, COLS, GW, GH, 0, 0));
    dmllm_image *grid = NULL, *out = NULL;
    CHECK_OK(dmllm_image_load_file(grid_path, &grid));
    CHECK_OK(dmllm_write_pca_overlay_png(path, image, features, GW * GH, COLS, GW, GH, 0.0f));
    CHECK_OK(dmllm_image_load_file(path, &out));
    CHECK(out && out->width == W && memcmp(out->pixels, image->pixels, (size_t)W * H * 3) == 0);
    dmllm_image_free(out);
    out = NULL;
    CHECK_OK(dmllm_write_pca_overlay_png(path, image, features, GW * GH, COLS, GW, GH, 1.0f));
    CHECK_OK(dmllm_image_load_file(path, &out));
    if (out && grid) {
        CHECK(memcmp(pixel_at(out, 0, 0), pixel_at(grid, 0, 0), 3) == 0);
        CHECK(memcmp(pixel_at(out, W - 1, H - 1), pixel_at(grid, GW - 1, GH - 1), 3) == 0);
        int distinct = 1; /* colours along the first row: more than the 4 tokens when interpolated */
        for (int x = 1; x < W; x++) distinct += memcmp(pixel_at(out, x, 0), pixel_at(out, x - 1, 0), 3) != 0;
        CHECK_MSG(distinct > 2 * GW, "%d distinct colours along a row", distinct);
    }
    dmllm_image_free(out);
    out = NULL;
    CHECK_OK(dmllm_write_pca_overlay_png(path, image, features, GW * GH, COLS, GW, GH, 0.5f));
    CHECK_OK(dmllm_image_load_file(path, &out));
    if (out && grid) {
        const uint8_t *photo = pixel_at(image, 0, 0), *token = pixel_at(grid, 0, 0), *px = pixel_at(out, 0, 0);
        for (int k = 0; k < 3; k++) CHECK(px[k] == (uint8_t)floorf(0.5f * photo[k] + 0.5f * token[k] + 0.5f));
    }
    dmllm_image_free(out);
    dmllm_image_free(grid);
    CHECK_STATUS(dmllm_write_pca_overlay_png(path, image, features, GW * GH, COLS, GW, GH, 1.5f),
                 DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_pca_overlay_png(path, NULL, features, GW * GH, COLS, GW, GH, 0.5f),
                 DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_write_pca_overlay_png(path, image, features, GW * GH, COLS, GW + 1, GH, 0.5f), DMLLM_ERR_SHAPE);
    dmllm_image_free(image);
}

/* ---- atomicity --------------------------------------------------------------------------------- */

static void test_atomic_writes(void) {
    const char *dir = test_temp_dir();
    enum { W = 160, H = 160 };
    float *depth = malloc(sizeof *depth * W * H); /* noise: compresses badly, so the file is large */
    uint64_t state = 99;
    for (int i = 0; i < W * H; i++) {
        state = state * 6364136223846793005ull + 1;
        depth[i] = (float)(state >> 40) / 16777216.0f * 60.0f;
    }
    /* A missing directory. */
    const char *missing = temp_path("no/such/dir/depth.png");
    CHECK_STATUS(dmllm_write_depth_png16(missing, depth, W, H, 0.0f), DMLLM_ERR_IO);
    CHECK_MSG(strstr(dmllm_last_error(), missing) != NULL, "path not named: %s", dmllm_last_error());

    /* The target is a non-empty directory: the temporary file is complete but cannot be renamed. */
    const char *blocked = temp_path("blocked.png");
    CHECK(mkdir(blocked, 0755) == 0);
    char inner[1100];
    snprintf(inner, sizeof inner, "%s/keep", blocked);
    CHECK(test_write_file(inner, "x", 1) == 0);
    CHECK_STATUS(dmllm_write_depth_png16(blocked, depth, W, H, 0.0f), DMLLM_ERR_IO);
    CHECK_MSG(strstr(dmllm_last_error(), "rename") != NULL, "%s", dmllm_last_error());
    CHECK(count_temporaries(dir) == 0);

    /* A write failing midway (file size limit) leaves the previous file as it was. */
    const char *path = temp_path("kept.png");
    uint16_t labels[4] = {0, 1, 1, 0};
    CHECK_OK(dmllm_write_label_png(path, labels, 2, 2, 2));
    size_t old_size = 0;
    void *old = test_read_file(path, &old_size);
    struct rlimit saved;
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    void (*saved_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {4096, saved.rlim_max};
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    const dmllm_status status = dmllm_write_depth_png16(path, depth, W, H, 0.0f);
    CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    signal(SIGXFSZ, saved_handler);
    CHECK_STATUS(status, DMLLM_ERR_IO);
    CHECK_MSG(strstr(dmllm_last_error(), "kept.png") != NULL, "%s", dmllm_last_error());
    size_t new_size = 0;
    void *now = test_read_file(path, &new_size);
    CHECK(old && now && old_size == new_size && memcmp(old, now, old_size) == 0);
    CHECK(count_temporaries(dir) == 0);
    free(old);
    free(now);

    /* An unwritable directory (permissions do not bind root, so only checked for other users). */
    if (geteuid() != 0) {
        const char *locked = temp_path("locked");
        CHECK(mkdir(locked, 0555) == 0);
        char target[1100];
        snprintf(target, sizeof target, "%s/depth.png", locked);
        CHECK_STATUS(dmllm_write_depth_png16(target, depth, W, H, 0.0f), DMLLM_ERR_IO);
        CHECK(count_temporaries(locked) == 0 && !file_exists(target));
        chmod(locked, 0755);
    } else {
        printf("  unwritable-directory case skipped: running as root\n");
    }

    /* Success replaces the file and leaves nothing else. */
    CHECK_OK(dmllm_write_depth_png16(path, depth, W, H, 0.0f));
    raw_png p;
    CHECK(read_raw_png(path, &p) && p.width == W && p.height == H && sample16(&p, 5, 0) == expected_depth16(depth[5], 1000.0));
    free(p.data);
    CHECK(count_temporaries(dir) == 0);
    free(depth);
}

int main(void) {
    test_label_colors();
    test_label_png();
    test_overlay_palette();
    test_overlay();
    test_depth_colorbar();
    test_pca_overlay();
    test_depth16();
    test_depth_color();
    test_pca_random();
    test_pca_png();
    test_atomic_writes();
    return test_finish("test_render");
}
