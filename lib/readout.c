/*
 * readout.c: label scores, bilinear upsampling of the token grid and per-pixel argmax (readout.h).
 * Works on caller buffers only; touches no session or model state.
 *
 * All three public operations are one loop: for every output pixel, interpolate the channel vector
 * of the four neighbouring grid cells, then hand it to a pixel sink (argmax, probabilities, copy).
 * The vertical interpolation is done once per output row for the whole grid row, so the per-pixel
 * work is one two-tap blend of n_channels floats.
 */
#include "readout.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void dmllm_readout_label_scores(const float *logits, int n_tokens, int n_columns, const int *offsets, int n_labels,
                                float *scores) {
    for (int t = 0; t < n_tokens; t++) {
        const float *row = logits + (size_t)t * n_columns;
        for (int k = 0; k < n_labels; k++) {
            float sum = 0.0f;
            for (int c = offsets[k]; c < offsets[k + 1]; c++) sum += row[c];
            scores[(size_t)t * n_labels + k] = sum / (float)(offsets[k + 1] - offsets[k]);
        }
    }
}

int dmllm_readout_channels(const dmllm_score_transform *transform, int n_labels) {
    return transform->kind == DMLLM_SCORE_SIGMOID_BACKGROUND ? n_labels + 1 : n_labels;
}

/* ---- bilinear taps --------------------------------------------------------------------------- */

/* Output index i blends source cells lo and hi: (1 - frac) * src[lo] + frac * src[hi]. */
typedef struct bilinear_tap {
    int lo, hi;
    float frac;
} bilinear_tap;

/* align_corners = false: source coordinate (i + 0.5) * in / out - 0.5, clamped at the edges, in
 * float like torch's CPU kernel. */
static dmllm_status make_taps(int in, int out, bilinear_tap **taps) {
    DMLLM_TRY(dmllm_alloc(taps, (size_t)out, sizeof **taps, "the bilinear taps"));
    const float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float source = scale * ((float)i + 0.5f) - 0.5f;
        if (source < 0.0f) source = 0.0f;
        int lo = (int)source;
        if (lo > in - 1) lo = in - 1;
        (*taps)[i] = (bilinear_tap){lo, lo < in - 1 ? lo + 1 : lo, source - (float)lo};
    }
    return DMLLM_OK;
}

/* ---- pixel sinks ----------------------------------------------------------------------------- */

typedef enum sink_kind { SINK_ARGMAX, SINK_PROBABILITIES, SINK_COPY } sink_kind;

typedef struct pixel_sink {
    sink_kind kind;
    const dmllm_score_transform *transform; /* SINK_ARGMAX, SINK_PROBABILITIES */
    uint16_t *labels;                       /* SINK_ARGMAX: [out_h][out_w] */
    float *confidence;                      /* SINK_ARGMAX: [out_h][out_w] or NULL */
    float *values;                          /* SINK_PROBABILITIES, SINK_COPY: [out_h][out_w][channels] */
} pixel_sink;

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Blended probabilities are clamped to [2^-24, 1 - 2^-24] (|logit| <= 16.6), where float sigmoid
 * has saturated: labels beyond that tie, and the argmax takes the first. */
static inline float clamp_probability(float p) { return fminf(fmaxf(p, 0x1p-24f), 1.0f - 0x1p-24f); }

static inline float logit(float p) { return logf(p) - log1pf(-p); }

/* A plain argmax of the clamped probabilities is that of their logits: only the confidence, the
 * probabilities and the background threshold need the logarithms. */
static bool sink_needs_logits(const pixel_sink *sink) {
    return sink->kind != SINK_ARGMAX || sink->confidence || sink->transform->kind != DMLLM_SCORE_SOFTMAX;
}

static void sink_argmax(const pixel_sink *sink, const float *z, int n, size_t pixel) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (z[k] > z[best]) best = k;
    const dmllm_score_transform *t = sink->transform;
    if (t->kind == DMLLM_SCORE_SIGMOID_BACKGROUND) {
        const float p = sigmoid(t->sigmoid_scale * z[best]);
        const bool background = p < t->background_level; /* a tie goes to the class */
        sink->labels[pixel] = (uint16_t)(background ? n : best);
        if (sink->confidence) sink->confidence[pixel] = background ? t->background_level : p;
        return;
    }
    sink->labels[pixel] = (uint16_t)best;
    if (sink->confidence) {
        float sum = 0.0f;
        const float inv_temperature = 1.0f / t->temperature;
        for (int k = 0; k < n; k++) sum += expf((z[k] - z[best]) * inv_temperature);
        sink->confidence[pixel] = 1.0f / sum;
    }
}

/* Channel values under the transform, summing to 1 (the sigmoid channels and the background are
 * normalised together, which keeps their argmax). */
static void sink_probabilities(const pixel_sink *sink, const float *z, int n, size_t pixel) {
    const dmllm_score_transform *t = sink->transform;
    float *p = sink->values + pixel * (size_t)dmllm_readout_channels(t, n);
    float sum = 0.0f;
    if (t->kind == DMLLM_SCORE_SIGMOID_BACKGROUND) {
        for (int k = 0; k < n; k++) sum += p[k] = sigmoid(t->sigmoid_scale * z[k]);
        sum += p[n] = t->background_level;
        for (int k = 0; k <= n; k++) p[k] /= sum;
        return;
    }
    float top = z[0];
    for (int k = 1; k < n; k++) top = fmaxf(top, z[k]);
    const float inv_temperature = 1.0f / t->temperature;
    for (int k = 0; k < n; k++) sum += p[k] = expf((z[k] - top) * inv_temperature);
    for (int k = 0; k < n; k++) p[k] /= sum;
}

static void sink_pixel(const pixel_sink *sink, const float *z, int n, size_t pixel) {
    switch (sink->kind) {
    case SINK_ARGMAX: sink_argmax(sink, z, n, pixel); break;
    case SINK_PROBABILITIES: sink_probabilities(sink, z, n, pixel); break;
    case SINK_COPY: memcpy(sink->values + pixel * (size_t)n, z, (size_t)n * sizeof *z); break;
    }
}

/* ---- the upsampling loop --------------------------------------------------------------------- */

static dmllm_status check_sizes(const float *src, int src_h, int src_w, int channels, int dst_h, int dst_w) {
    if (!src) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: NULL score map");
    if (src_h <= 0 || src_w <= 0 || channels <= 0 || dst_h <= 0 || dst_w <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: sizes must be positive (grid %dx%d, %d channels, output %dx%d)",
                          src_h, src_w, channels, dst_h, dst_w);
    return DMLLM_OK;
}

/* Floats of one thread's scratch in upsample(): the blended grid row and the pixel vector. */
static size_t upsample_floats_per_thread(int src_w, int n) {
    return ((size_t)src_w + 1) * (size_t)n;
}

/* Bytes upsample() allocates: the taps and every thread's scratch. */
static size_t upsample_bytes(int src_w, int n, int dst_h, int dst_w) {
    return ((size_t)dst_h + dst_w) * sizeof(bilinear_tap) +
           upsample_floats_per_thread(src_w, n) * (size_t)omp_get_max_threads() * sizeof(float);
}

static dmllm_status upsample(const float *src, int src_h, int src_w, int n, int dst_h, int dst_w, const pixel_sink *sink) {
    DMLLM_TRY(check_sizes(src, src_h, src_w, n, dst_h, dst_w));
    bilinear_tap *rows = NULL, *cols = NULL;
    float *scratch = NULL; /* per thread: [src_w][n] blended grid row, then [n] pixel vector */
    const int n_threads = omp_get_max_threads();
    const size_t per_thread = upsample_floats_per_thread(src_w, n);
    dmllm_status status = make_taps(src_h, dst_h, &rows);
    if (status == DMLLM_OK) status = make_taps(src_w, dst_w, &cols);
    if (status == DMLLM_OK) status = dmllm_alloc(&scratch, per_thread * (size_t)n_threads, sizeof(float), "the readout rows");
    if (status != DMLLM_OK) {
        free(rows);
        free(cols);
        return status;
    }
    const size_t row_len = (size_t)src_w * (size_t)n;
    const bool in_probability_space = sink->transform && sink->transform->probability_space;
    const bool to_logits = in_probability_space && sink_needs_logits(sink);
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int y = 0; y < dst_h; y++) {
        float *grid_row = scratch + per_thread * (size_t)omp_get_thread_num();
        float *pixel = grid_row + row_len;
        const bilinear_tap ty = rows[y];
        const float *upper = src + (size_t)ty.lo * row_len, *lower = src + (size_t)ty.hi * row_len;
        for (size_t i = 0; i < row_len; i++) grid_row[i] = upper[i] + ty.frac * (lower[i] - upper[i]);
        for (int x = 0; x < dst_w; x++) {
            const bilinear_tap tx = cols[x];
            const float *left = grid_row + (size_t)tx.lo * n, *right = grid_row + (size_t)tx.hi * n;
            for (int k = 0; k < n; k++) pixel[k] = left[k] + tx.frac * (right[k] - left[k]);
            if (in_probability_space)
                for (int k = 0; k < n; k++) pixel[k] = clamp_probability(pixel[k]);
            if (to_logits)
                for (int k = 0; k < n; k++) pixel[k] = logit(pixel[k]);
            sink_pixel(sink, pixel, n, (size_t)y * dst_w + x);
        }
    }
    free(rows);
    free(cols);
    free(scratch);
    return DMLLM_OK;
}

/* upsample() of the scores, or of their sigmoids when the transform interpolates in probability
 * space (the sink then reads each pixel back as logits). Blending probabilities rather than logits
 * puts a boundary where the two labels' probabilities cross: blended logits move it towards the
 * label whose logits are less extreme, however sure the model is of both sides. */
static dmllm_status upsample_scores(const float *scores, int grid_h, int grid_w, int n, int out_h, int out_w,
                                    const pixel_sink *sink) {
    if (!sink->transform->probability_space) return upsample(scores, grid_h, grid_w, n, out_h, out_w, sink);
    DMLLM_TRY(check_sizes(scores, grid_h, grid_w, n, out_h, out_w));
    const size_t count = (size_t)grid_h * grid_w * n;
    float *probabilities = NULL; /* [grid_h][grid_w][n] sigmoid of the scores */
    DMLLM_TRY(dmllm_alloc(&probabilities, count, sizeof *probabilities, "the score probabilities"));
    for (size_t i = 0; i < count; i++) probabilities[i] = sigmoid(scores[i]);
    const dmllm_status status = upsample(probabilities, grid_h, grid_w, n, out_h, out_w, sink);
    free(probabilities);
    return status;
}

size_t dmllm_readout_bytes(int grid_h, int grid_w, int n_labels,
                           const dmllm_score_transform *transform, int out_h, int out_w) {
    const size_t sigmoids =
        transform && transform->probability_space ? (size_t)grid_h * grid_w * n_labels : 0;
    return sigmoids * sizeof(float) + upsample_bytes(grid_w, n_labels, out_h, out_w);
}

static dmllm_status check_transform(const dmllm_score_transform *t) {
    if (!t) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: NULL score transform");
    if (t->kind == DMLLM_SCORE_SOFTMAX && !(t->temperature > 0.0f))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: softmax temperature %g must be > 0", (double)t->temperature);
    if (t->kind == DMLLM_SCORE_SIGMOID_BACKGROUND && !(t->background_level > 0.0f && t->background_level < 1.0f))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: background level %g must be in (0, 1)",
                          (double)t->background_level);
    if (t->kind != DMLLM_SCORE_SOFTMAX && t->kind != DMLLM_SCORE_SIGMOID_BACKGROUND)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: unknown score transform %d", (int)t->kind);
    return DMLLM_OK;
}

dmllm_status dmllm_readout_argmax(const float *scores, int grid_h, int grid_w, int n_labels,
                                  const dmllm_score_transform *transform, int out_h, int out_w, uint16_t *labels,
                                  float *confidence) {
    DMLLM_TRY(check_transform(transform));
    if (!labels) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: NULL label map");
    if (dmllm_readout_channels(transform, n_labels) > 65535)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: %d labels do not fit 16-bit label maps", n_labels);
    const pixel_sink sink = {.kind = SINK_ARGMAX, .transform = transform, .labels = labels, .confidence = confidence};
    return upsample_scores(scores, grid_h, grid_w, n_labels, out_h, out_w, &sink);
}

dmllm_status dmllm_readout_probabilities(const float *scores, int grid_h, int grid_w, int n_labels,
                                         const dmllm_score_transform *transform, int out_h, int out_w,
                                         float *probabilities) {
    DMLLM_TRY(check_transform(transform));
    if (!probabilities) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: NULL probability volume");
    const pixel_sink sink = {.kind = SINK_PROBABILITIES, .transform = transform, .values = probabilities};
    return upsample_scores(scores, grid_h, grid_w, n_labels, out_h, out_w, &sink);
}

dmllm_status dmllm_readout_resize(const float *src, int src_h, int src_w, int channels, int dst_h, int dst_w,
                                  float *dst) {
    if (!dst) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "readout: NULL resize output");
    const pixel_sink sink = {.kind = SINK_COPY, .values = dst};
    return upsample(src, src_h, src_w, channels, dst_h, dst_w, &sink);
}
