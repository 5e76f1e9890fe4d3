/*
 * test_readout.c: lib/readout.c against a PyTorch oracle (tests/fixtures/readout/, written by
 * tests/reference/make_readout_golden.py: mean of sub-token logits, F.interpolate bilinear with
 * align_corners=False, softmax at temperature 0.2, sigmoid with a 0.5 background channel), plus
 * hand-computed cases and argument errors.
 */
#include "readout.h"
#include "safetensors.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const dmllm_safetensors *golden;

static const void *tensor(const char *name, dmllm_dtype dtype, int64_t n_elements) {
    const dmllm_tensor *t = dmllm_safetensors_find(golden, name);
    CHECK_MSG(t && t->dtype == dtype && t->n_elements == n_elements, "fixture tensor %s", name);
    return t && t->dtype == dtype && t->n_elements == n_elements ? t->data : NULL;
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float worst = 0.0f;
    for (size_t i = 0; i < n; i++) worst = fmaxf(worst, fabsf(a[i] - b[i]));
    return worst;
}

static size_t count_label_mismatches(const uint16_t *got, const int32_t *want, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += got[i] != (uint16_t)want[i];
    return bad;
}

enum { GRID_H = 5, GRID_W = 7, OUT_H = 37, OUT_W = 61, N_LABELS = 5, N_COLUMNS = 11 };

static void test_against_torch(void) {
    const size_t n_tokens = GRID_H * GRID_W, n_pixels = OUT_H * OUT_W;
    const float *logits = tensor("logits", DMLLM_DTYPE_F32, n_tokens * N_COLUMNS);
    const int32_t *offsets = tensor("offsets", DMLLM_DTYPE_I32, N_LABELS + 1);
    const float *want_scores = tensor("scores", DMLLM_DTYPE_F32, n_tokens * N_LABELS);
    const float *want_up = tensor("upsampled", DMLLM_DTYPE_F32, n_pixels * N_LABELS);
    const int32_t *want_softmax_labels = tensor("softmax_labels", DMLLM_DTYPE_I32, n_pixels);
    const float *want_confidence = tensor("softmax_confidence", DMLLM_DTYPE_F32, n_pixels);
    const float *want_softmax = tensor("softmax_probabilities", DMLLM_DTYPE_F32, n_pixels * N_LABELS);
    const int32_t *want_bg_labels = tensor("background_labels", DMLLM_DTYPE_I32, n_pixels);
    const float *want_bg = tensor("background_probabilities", DMLLM_DTYPE_F32, n_pixels * (N_LABELS + 1));
    if (!logits || !offsets || !want_scores || !want_up || !want_softmax_labels || !want_confidence ||
        !want_softmax || !want_bg_labels || !want_bg)
        return;

    int offs[N_LABELS + 1];
    for (int k = 0; k <= N_LABELS; k++) offs[k] = offsets[k];
    float scores[GRID_H * GRID_W * N_LABELS];
    dmllm_readout_label_scores(logits, (int)n_tokens, N_COLUMNS, offs, N_LABELS, scores);
    CHECK_MSG(max_abs_diff(scores, want_scores, n_tokens * N_LABELS) < 1e-5f, "mean of sub-token logits");

    float *up = malloc(n_pixels * (N_LABELS + 1) * sizeof(float));
    uint16_t *labels = malloc(n_pixels * sizeof *labels);
    float *confidence = malloc(n_pixels * sizeof(float));
    CHECK_OK(dmllm_readout_resize(scores, GRID_H, GRID_W, N_LABELS, OUT_H, OUT_W, up));
    CHECK_MSG(max_abs_diff(up, want_up, n_pixels * N_LABELS) < 1e-5f, "bilinear upsampling vs F.interpolate: %g",
              (double)max_abs_diff(up, want_up, n_pixels * N_LABELS));

    const dmllm_score_transform softmax = {DMLLM_SCORE_SOFTMAX, 0.2f, 0.25f, 0.5f, false};
    CHECK_OK(dmllm_readout_argmax(scores, GRID_H, GRID_W, N_LABELS, &softmax, OUT_H, OUT_W, labels, confidence));
    CHECK_MSG(count_label_mismatches(labels, want_softmax_labels, n_pixels) == 0, "softmax argmax: %zu of %zu differ",
              count_label_mismatches(labels, want_softmax_labels, n_pixels), n_pixels);
    CHECK_MSG(max_abs_diff(confidence, want_confidence, n_pixels) < 1e-4f, "softmax confidence");
    CHECK_OK(dmllm_readout_probabilities(scores, GRID_H, GRID_W, N_LABELS, &softmax, OUT_H, OUT_W, up));
    CHECK_MSG(max_abs_diff(up, want_softmax, n_pixels * N_LABELS) < 1e-4f, "softmax probabilities");

    const dmllm_score_transform background = {DMLLM_SCORE_SIGMOID_BACKGROUND, 1.0f, 0.25f, 0.5f, false};
    CHECK(dmllm_readout_channels(&background, N_LABELS) == N_LABELS + 1);
    CHECK_OK(dmllm_readout_argmax(scores, GRID_H, GRID_W, N_LABELS, &background, OUT_H, OUT_W, labels, NULL));
    size_t n_background = 0;
    for (size_t i = 0; i < n_pixels; i++) n_background += labels[i] == N_LABELS;
    CHECK_MSG(n_background > 0 && n_background < n_pixels, "the fixture has background and classes (%zu)", n_background);
    CHECK_MSG(count_label_mismatches(labels, want_bg_labels, n_pixels) == 0, "background argmax: %zu differ",
              count_label_mismatches(labels, want_bg_labels, n_pixels));
    CHECK_OK(dmllm_readout_probabilities(scores, GRID_H, GRID_W, N_LABELS, &background, OUT_H, OUT_W, up));
    CHECK_MSG(max_abs_diff(up, want_bg, n_pixels * (N_LABELS + 1)) < 1e-5f, "background probabilities");
    free(up);
    free(labels);
    free(confidence);
}

/* A 1x2 grid upsampled to 1x4: source x = (i + 0.5) / 2 - 0.5 = -0.25 (clamped), 0.25, 0.75, 1.25. */
static void test_hand_computed(void) {
    const float grid[2] = {0.0f, 8.0f};
    float out[4];
    CHECK_OK(dmllm_readout_resize(grid, 1, 2, 1, 1, 4, out));
    CHECK(out[0] == 0.0f && out[1] == 2.0f && out[2] == 6.0f && out[3] == 8.0f);
    /* Downsampling 4 -> 2 samples at 0.5 and 2.5. */
    const float row[4] = {0.0f, 4.0f, 8.0f, 12.0f};
    float half[2];
    CHECK_OK(dmllm_readout_resize(row, 1, 4, 1, 1, 2, half));
    CHECK(half[0] == 2.0f && half[1] == 10.0f);
    /* Two labels, background mode: every score <= 0 is background (label 2). */
    const float scores[2 * 2] = {-1.0f, -3.0f, 2.0f, -1.0f};
    const dmllm_score_transform background = {DMLLM_SCORE_SIGMOID_BACKGROUND, 1.0f, 0.25f, 0.5f, false};
    uint16_t labels[2];
    float confidence[2];
    CHECK_OK(dmllm_readout_argmax(scores, 1, 2, 2, &background, 1, 2, labels, confidence));
    CHECK(labels[0] == 2 && labels[1] == 0);
    CHECK(confidence[0] == 0.5f && fabsf(confidence[1] - 1.0f / (1.0f + expf(-0.5f))) < 1e-6f);
    /* Probability space. Labels BG, FG; token 0 is FG at sigmoid 0.88, token 1 BG at 0.99995, 1x2 -> 1x8
     * (pixels at source x 0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1). Blended logits favour FG only up to
     * x = 1/6, blended sigmoids up to x = 0.432: near the middle. */
    const float fg_bg[2 * 2] = {-2.0f, 2.0f, 10.0f, -10.0f};
    dmllm_score_transform plain = {DMLLM_SCORE_SOFTMAX, 1.0f, 0.25f, 0.5f, false};
    uint16_t boundary[8];
    CHECK_OK(dmllm_readout_argmax(fg_bg, 1, 2, 2, &plain, 1, 8, boundary, NULL));
    for (int i = 0; i < 8; i++) CHECK_MSG(boundary[i] == (i < 3), "logit space, pixel %d: label %d", i, boundary[i]);
    plain.probability_space = true;
    float fg_confidence[8];
    CHECK_OK(dmllm_readout_argmax(fg_bg, 1, 2, 2, &plain, 1, 8, boundary, fg_confidence));
    for (int i = 0; i < 8; i++) CHECK_MSG(boundary[i] == (i < 4), "probability space, pixel %d: label %d", i, boundary[i]);
    /* Pixel 3 blends p = (0.119 + 0.881 * 0.375, 0.881 * 0.625): softmax of their logits. */
    const float p_bg = 1.0f / (1.0f + expf(2.0f)), p_fg = 1.0f - p_bg;
    const float bg3 = p_bg + 0.375f * (1.0f / (1.0f + expf(-10.0f)) - p_bg);
    const float fg3 = p_fg + 0.375f * (1.0f / (1.0f + expf(10.0f)) - p_fg);
    const float z_bg = logf(bg3 / (1.0f - bg3)), z_fg = logf(fg3 / (1.0f - fg3));
    CHECK_MSG(fabsf(fg_confidence[3] - 1.0f / (1.0f + expf(z_bg - z_fg))) < 1e-5f, "probability-space confidence %g",
              (double)fg_confidence[3]);
    /* Saturated sigmoids tie (clamped at 1 - 2^-24) and the first label wins. */
    const float saturated[2] = {30.0f, 40.0f};
    CHECK_OK(dmllm_readout_argmax(saturated, 1, 1, 2, &plain, 1, 1, boundary, NULL));
    CHECK(boundary[0] == 0);
    /* Mean of a 3-token name. */
    const float logits[4] = {1.0f, 2.0f, 6.0f, -5.0f};
    const int offsets[3] = {0, 3, 4};
    float mean[2];
    dmllm_readout_label_scores(logits, 1, 4, offsets, 2, mean);
    CHECK(mean[0] == 3.0f && mean[1] == -5.0f);
}

static void test_errors(void) {
    const float grid[4] = {0};
    uint16_t labels[4];
    float out[4];
    const dmllm_score_transform softmax = {DMLLM_SCORE_SOFTMAX, 0.2f, 0.25f, 0.5f, false};
    const dmllm_score_transform cold = {DMLLM_SCORE_SOFTMAX, 0.0f, 0.25f, 0.5f, false};
    const dmllm_score_transform bad_level = {DMLLM_SCORE_SIGMOID_BACKGROUND, 1.0f, 0.25f, 1.0f, false};
    CHECK_STATUS(dmllm_readout_argmax(grid, 2, 2, 1, &cold, 2, 2, labels, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_argmax(grid, 2, 2, 1, &bad_level, 2, 2, labels, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_argmax(grid, 2, 2, 1, NULL, 2, 2, labels, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_argmax(grid, 0, 2, 1, &softmax, 2, 2, labels, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_argmax(grid, 2, 2, 1, &softmax, 2, -1, labels, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_argmax(grid, 2, 2, 70000, &softmax, 2, 2, labels, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_argmax(NULL, 2, 2, 1, &softmax, 2, 2, labels, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_argmax(grid, 2, 2, 1, &softmax, 2, 2, NULL, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_readout_resize(grid, 2, 2, 1, 2, 2, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "NULL") != NULL);
    CHECK_OK(dmllm_readout_resize(grid, 2, 2, 1, 2, 2, out));
}

int main(void) {
    dmllm_safetensors *file = NULL;
    CHECK_OK(dmllm_safetensors_open(test_source_path("tests/fixtures/readout/readout.safetensors"), &file));
    golden = file;
    if (file) test_against_torch();
    dmllm_safetensors_close(file);
    test_hand_computed();
    test_errors();
    return test_finish("test_readout");
}
