/*
 * preprocess.c: model-spec section 2 after decoding: the target size (2.2), the separable
 * antialiased bilinear resize in its two exact variants (2.3), and pixel values (2.4-2.5).
 * Reads an image, writes a new image or a caller's float buffer; nothing else.
 *
 * Resize: both modes share Pillow's taps and double-precision weights and differ only in the
 * fixed-point weights: `pillow` uses Pillow 9.4's fixed 22 fraction bits (int32 weights), `hf`
 * the torchvision uint8 antialias path's int16 weights with a per-axis precision. Each axis gets
 * one coefficient table per call; the passes (horizontal, then vertical, each rounding to uint8)
 * are integer multiply-accumulate loops over rows, split across the caller's OpenMP threads.
 */
#include "preprocess.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- target size (2.2) ------------------------------------------------------------------------ */

enum { RESIZE_ALIGN = 32, RESIZE_PATCH = 16 };

/* max(32, ceil(n*s/32)*32), evaluated in double exactly as the Python rule. */
static int scaled_side(double s, int n) {
    const double side = ceil((double)n * s / RESIZE_ALIGN) * RESIZE_ALIGN;
    return side < RESIZE_ALIGN ? RESIZE_ALIGN : (int)side;
}

/* The 0.02-step rule. Once s is small enough (at the latest when it reaches <= 0, after at most 51
 * steps) both sides sit at the 32 floor, i.e. 4 patches; max_num_patches >= 4 therefore always
 * ends the loop and smaller caps are rejected. No other cut-off (vLLM's s <= 0.1 fallback) applies. */
dmllm_status dmllm_target_size(int width, int height, int max_num_patches, int *out_width, int *out_height) {
    if (!out_width || !out_height) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_target_size: output is NULL");
    if (width <= 0 || height <= 0 || width > DMLLM_IMAGE_MAX_PIXELS || height > DMLLM_IMAGE_MAX_PIXELS)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_target_size: image size %dx%d is not in 1..%lld",
                          width, height, (long long)DMLLM_IMAGE_MAX_PIXELS);
    const int floor_patches = (RESIZE_ALIGN / RESIZE_PATCH) * (RESIZE_ALIGN / RESIZE_PATCH);
    if (max_num_patches < floor_patches)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_target_size: max_num_patches = %d < %d (one 32x32 block)",
                          max_num_patches, floor_patches);
    double s = 1.0;
    int w, h;
    for (;;) {
        h = scaled_side(s, height);
        w = scaled_side(s, width);
        if ((int64_t)(h / RESIZE_PATCH) * (w / RESIZE_PATCH) <= max_num_patches) break;
        s -= 0.02;
    }
    *out_width = w;
    *out_height = h;
    return DMLLM_OK;
}

/* ---- resize (2.3) ------------------------------------------------------------------------------ */

enum { PILLOW_PRECISION_BITS = 32 - 8 - 2, HF_MAX_PRECISION = 22 };
/* Multiply-accumulates below which a pass stays on one thread (thread start-up would dominate). */
#define PARALLEL_MIN_MACS ((int64_t)1 << 20)

/* Fixed-point coefficients of one axis: output i reads inputs first[i] .. first[i]+count[i]-1. */
typedef struct resample_axis {
    int out_size;
    int taps;          /* row length of weights: the largest count */
    int precision;     /* fraction bits of weights */
    int *first;        /* [out_size] */
    int *count;        /* [out_size] */
    int32_t *weights;  /* [out_size][taps], zero-padded */
} resample_axis;

static void resample_axis_free(resample_axis *axis) {
    free(axis->first);
    free(axis->count);
    free(axis->weights);
}

static double bilinear_filter(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs (box = whole axis) then the mode's quantisation. */
static dmllm_status resample_axis_init(int in_size, int out_size, dmllm_resize_mode mode, resample_axis *axis) {
    memset(axis, 0, sizeof *axis);
    axis->out_size = out_size;
    const double scale = (double)in_size / out_size;
    const double filter_scale = scale < 1.0 ? 1.0 : scale;
    const double support = 1.0 * filter_scale; /* bilinear support is 1 */
    const int max_taps = (int)ceil(support) * 2 + 1;
    double *coeffs = dmllm_malloc((size_t)out_size * max_taps, sizeof *coeffs); /* [out_size][max_taps] */
    axis->first = dmllm_malloc((size_t)out_size, sizeof *axis->first);
    axis->count = dmllm_malloc((size_t)out_size, sizeof *axis->count);
    axis->weights = dmllm_calloc((size_t)out_size * max_taps, sizeof *axis->weights);
    if (!coeffs || !axis->first || !axis->count || !axis->weights) {
        free(coeffs);
        resample_axis_free(axis);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for resize coefficients (%d -> %d)", in_size, out_size);
    }
    const double inv_scale = 1.0 / filter_scale;
    double max_weight = 0.0;
    for (int i = 0; i < out_size; i++) {
        const double center = (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        const int n = hi - lo;
        double *k = coeffs + (size_t)i * max_taps;
        double total = 0.0;
        for (int j = 0; j < n; j++) {
            k[j] = bilinear_filter((j + lo - center + 0.5) * inv_scale);
            total += k[j];
        }
        for (int j = 0; j < n; j++) {
            if (total != 0.0) k[j] /= total;
            if (k[j] > max_weight) max_weight = k[j];
        }
        axis->first[i] = lo;
        axis->count[i] = n;
        if (n > axis->taps) axis->taps = n;
    }
    if (mode == DMLLM_RESIZE_PILLOW) {
        axis->precision = PILLOW_PRECISION_BITS;
    } else {
        /* torchvision: the most fraction bits that keep the largest weight inside int16. */
        int p = 0;
        while (p < HF_MAX_PRECISION && (int)(0.5 + max_weight * (double)(1 << (p + 1))) < (1 << 15)) p++;
        axis->precision = p;
    }
    const double one = (double)(1 << axis->precision);
    for (int i = 0; i < out_size; i++) {
        const double *k = coeffs + (size_t)i * max_taps;
        int32_t *w = axis->weights + (size_t)i * axis->taps;
        /* Rounded weights sum to 2^precision give or take rounding that cancels out in practice,
         * so 255 * sum + half stays far inside int32 (pillow: ~2^30). */
        for (int j = 0; j < axis->count[i]; j++) w[j] = (int32_t)(k[j] < 0 ? -0.5 + k[j] * one : 0.5 + k[j] * one);
    }
    free(coeffs);
    return DMLLM_OK;
}

static inline uint8_t fixed_to_u8(int32_t acc, int precision) {
    const int32_t v = acc >> precision;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Horizontal pass over n_rows rows: src [n_rows][in_w][3] -> dst [n_rows][axis->out_size][3]. */
static void resample_horizontal(const uint8_t *src, int in_w, int n_rows, const resample_axis *axis, uint8_t *dst) {
    const int32_t half = (int32_t)1 << (axis->precision - 1);
    const int out_w = axis->out_size;
    #pragma omp parallel for schedule(static) if ((int64_t)n_rows * out_w * axis->taps >= PARALLEL_MIN_MACS)
    for (int y = 0; y < n_rows; y++) {
        const uint8_t *src_row = src + (size_t)y * in_w * 3;
        uint8_t *dst_row = dst + (size_t)y * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            const int32_t *w = axis->weights + (size_t)x * axis->taps;
            const uint8_t *s = src_row + (size_t)axis->first[x] * 3;
            int32_t r = half, g = half, b = half;
            for (int k = 0; k < axis->count[x]; k++) {
                r += s[3 * k] * w[k];
                g += s[3 * k + 1] * w[k];
                b += s[3 * k + 2] * w[k];
            }
            dst_row[3 * x] = fixed_to_u8(r, axis->precision);
            dst_row[3 * x + 1] = fixed_to_u8(g, axis->precision);
            dst_row[3 * x + 2] = fixed_to_u8(b, axis->precision);
        }
    }
}

/* Vertical pass: src rows of row_bytes bytes, output row y reads src rows first[y] - row_offset
 * onwards; dst [axis->out_size][row_bytes]. acc [n_threads][row_bytes] is scratch, one row per
 * OpenMP thread. */
static void resample_vertical(const uint8_t *src, size_t row_bytes, int row_offset, const resample_axis *axis,
                              int n_threads, int32_t *acc_rows, uint8_t *dst) {
    const int32_t half = (int32_t)1 << (axis->precision - 1);
    #pragma omp parallel for schedule(static) num_threads(n_threads) \
        if ((int64_t)axis->out_size * (int64_t)row_bytes * axis->taps >= PARALLEL_MIN_MACS)
    for (int y = 0; y < axis->out_size; y++) {
        int32_t *acc = acc_rows + (size_t)omp_get_thread_num() * row_bytes;
        for (size_t i = 0; i < row_bytes; i++) acc[i] = half;
        const int32_t *w = axis->weights + (size_t)y * axis->taps;
        for (int k = 0; k < axis->count[y]; k++) {
            const uint8_t *s = src + (size_t)(axis->first[y] - row_offset + k) * row_bytes;
            const int32_t wk = w[k];
            for (size_t i = 0; i < row_bytes; i++) acc[i] += s[i] * wk;
        }
        uint8_t *d = dst + (size_t)y * row_bytes;
        for (size_t i = 0; i < row_bytes; i++) d[i] = fixed_to_u8(acc[i], axis->precision);
    }
}

/* Both passes, given the coefficient tables (NULL: that pass is skipped). */
static dmllm_status resample(const dmllm_image *in, const resample_axis *horizontal, const resample_axis *vertical,
                             dmllm_image *out) {
    if (!horizontal && !vertical) {
        memcpy(out->pixels, in->pixels, (size_t)in->width * in->height * 3);
        return DMLLM_OK;
    }
    if (!vertical) {
        resample_horizontal(in->pixels, in->width, in->height, horizontal, out->pixels);
        return DMLLM_OK;
    }
    /* Like Pillow, the horizontal pass only produces the rows the vertical pass reads. */
    const int last = vertical->out_size - 1;
    const int row_first = vertical->first[0], row_end = vertical->first[last] + vertical->count[last];
    const size_t row_bytes = (size_t)out->width * 3;
    uint8_t *between = NULL; /* [row_end - row_first][out->width][3] horizontal pass output */
    const int n_threads = omp_get_max_threads();
    int32_t *acc = dmllm_malloc((size_t)n_threads * row_bytes, sizeof *acc); /* [n_threads][out->width * 3] */
    if (horizontal) between = dmllm_malloc((size_t)(row_end - row_first), row_bytes);
    if (!acc || (horizontal && !between)) {
        free(acc);
        free(between);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the resize passes (%dx%d -> %dx%d)", in->width,
                          in->height, out->width, out->height);
    }
    if (horizontal) {
        resample_horizontal(in->pixels + (size_t)row_first * in->width * 3, in->width, row_end - row_first, horizontal,
                            between);
        resample_vertical(between, row_bytes, row_first, vertical, n_threads, acc, out->pixels);
    } else {
        resample_vertical(in->pixels, row_bytes, 0, vertical, n_threads, acc, out->pixels);
    }
    free(acc);
    free(between);
    return DMLLM_OK;
}

/* Bytes of one axis's coefficients (resample_axis_init: the double kernel, first, count, weights). */
static size_t axis_bytes(int in_size, int out_size) {
    if (in_size == out_size) return 0;
    const double scale = (double)in_size / out_size;
    const size_t max_taps = (size_t)ceil(scale < 1.0 ? 1.0 : scale) * 2 + 1;
    return (size_t)out_size * (max_taps * (sizeof(double) + sizeof(int32_t)) + 2 * sizeof(int));
}

size_t dmllm_image_resize_bytes(int in_width, int in_height, int width, int height) {
    const size_t row_bytes = (size_t)width * 3;
    return sizeof(dmllm_image) + row_bytes * (size_t)height + axis_bytes(in_width, width) +
           axis_bytes(in_height, height) + (size_t)omp_get_max_threads() * row_bytes * sizeof(int32_t) +
           (size_t)in_height * row_bytes;
}

dmllm_status dmllm_image_resize(const dmllm_image *image, int width, int height, dmllm_resize_mode mode,
                                dmllm_image **out_image) {
    if (!image || !out_image) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_resize: image or out_image is NULL");
    *out_image = NULL;
    if (mode != DMLLM_RESIZE_HF && mode != DMLLM_RESIZE_PILLOW)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_resize: mode %d is not a dmllm_resize_mode", (int)mode);
    if (width <= 0 || height <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_resize: target size %dx%d is empty", width, height);
    dmllm_image *out;
    DMLLM_TRY(dmllm_image_alloc(width, height, &out));
    resample_axis horizontal = {0}, vertical = {0};
    const bool need_horizontal = width != image->width, need_vertical = height != image->height;
    dmllm_status status = DMLLM_OK;
    if (need_horizontal) status = resample_axis_init(image->width, width, mode, &horizontal);
    if (status == DMLLM_OK && need_vertical) status = resample_axis_init(image->height, height, mode, &vertical);
    if (status == DMLLM_OK)
        status = resample(image, need_horizontal ? &horizontal : NULL, need_vertical ? &vertical : NULL, out);
    resample_axis_free(&horizontal);
    resample_axis_free(&vertical);
    if (status != DMLLM_OK) {
        dmllm_image_free(out);
        return status;
    }
    *out_image = out;
    return DMLLM_OK;
}

/* ---- pixel values (2.4-2.5) -------------------------------------------------------------------- */

dmllm_status dmllm_pixel_values(const dmllm_image *resized, int patch_size, float *pixel_values) {
    if (!resized || !pixel_values || patch_size <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_pixel_values: NULL image or output, or patch size %d",
                          patch_size);
    const int block = 2 * patch_size; /* one 2x2 merge block of patches */
    if (resized->width % block != 0 || resized->height % block != 0)
        return dmllm_fail(DMLLM_ERR_SHAPE, "dmllm_pixel_values: image %dx%d is not a multiple of %d (2 x patch %d)",
                          resized->width, resized->height, block, patch_size);
    /* Correctly rounded float32 of (u8 - 127.5)/127.5 = (2*u8 - 255)/255: the double quotient is
     * within half a double ulp and a float32 rounding boundary is never that close to k/255. */
    float normalised[256];
    for (int u = 0; u < 256; u++) normalised[u] = (float)((2.0 * u - 255.0) / 255.0);
    const int gw = resized->width / patch_size, gh = resized->height / patch_size;
    const size_t row_bytes = (size_t)resized->width * 3;
    float *dst = pixel_values; /* [gh*gw][patch][patch][3], patches in 2x2 merge-block order */
    for (int bh = 0; bh < gh / 2; bh++) {
        for (int bw = 0; bw < gw / 2; bw++) {
            for (int d = 0; d < 4; d++) {
                const int y0 = (2 * bh + d / 2) * patch_size, x0 = (2 * bw + d % 2) * patch_size;
                for (int py = 0; py < patch_size; py++) {
                    const uint8_t *src = resized->pixels + (size_t)(y0 + py) * row_bytes + (size_t)x0 * 3;
                    for (int i = 0; i < 3 * patch_size; i++) dst[i] = normalised[src[i]];
                    dst += 3 * patch_size;
                }
            }
        }
    }
    return DMLLM_OK;
}
