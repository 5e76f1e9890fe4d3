/*
 * readout.h: DenseMLLM's decoder-free readout (model-spec section 6.3, report Eq. 6, section 9.2-9.3):
 * label scores as the mean of sub-token logits at the image tokens, bilinear upsampling of the token
 * grid, softmax or sigmoid-with-background, argmax with confidence. Pure functions over caller
 * buffers: no session, model or tokenizer here; dense.c feeds them.
 */
#ifndef DMLLM_READOUT_H
#define DMLLM_READOUT_H

#include "common.h"

/* scores[t][k] = mean of logits[t][offsets[k] .. offsets[k+1]-1] (Eq. 6). offsets has n_labels + 1
 * entries, increasing, offsets[n_labels] <= n_columns. */
void dmllm_readout_label_scores(const float *logits /* [n_tokens][n_columns] */, int n_tokens, int n_columns,
                                const int *offsets, int n_labels, float *scores /* [n_tokens][n_labels] */);

/* How scores become probabilities. Argmax is over the scores either way; the transform decides
 * the confidence and, with a background channel, where the background wins. */
typedef enum dmllm_score_kind {
    DMLLM_SCORE_SOFTMAX = 0,          /* p = softmax(z / temperature) over the labels */
    DMLLM_SCORE_SIGMOID_BACKGROUND,   /* p_k = sigmoid(sigmoid_scale * z_k), plus a constant
                                         background channel; label n_labels = background */
} dmllm_score_kind;

typedef struct dmllm_score_transform {
    dmllm_score_kind kind;
    float temperature;       /* softmax temperature (> 0) */
    float sigmoid_scale;     /* report: 0.25 */
    float background_level;  /* report: 0.5 */
    bool probability_space;  /* interpolate sigmoid(z) and read each pixel back as the logit of the
                                blend, instead of blending z (Eq. 6); profile "interpolation" */
} dmllm_score_transform;

/* Channels the transform produces: n_labels, plus one for the background. */
int dmllm_readout_channels(const dmllm_score_transform *transform, int n_labels);

/* Upsamples scores [grid_h][grid_w][n_labels] bilinearly (align_corners = false, edge-clamped, as
 * torch's F.interpolate; in probability space if the transform says so) to out_h x out_w and writes
 * each pixel's argmax label and its probability under the transform. Streams one output row at a
 * time: memory is O(grid_w * n_labels) (plus one sigmoid copy of the score grid in probability
 * space), never n_labels x out_h x out_w. confidence may be NULL. */
dmllm_status dmllm_readout_argmax(const float *scores, int grid_h, int grid_w, int n_labels,
                                  const dmllm_score_transform *transform, int out_h, int out_w,
                                  uint16_t *labels /* [out_h][out_w] */, float *confidence /* [out_h][out_w] */);

/* The same upsampling and transform, keeping every channel: probabilities
 * [out_h][out_w][dmllm_readout_channels()], the input of the dense CRF. */
dmllm_status dmllm_readout_probabilities(const float *scores, int grid_h, int grid_w, int n_labels,
                                         const dmllm_score_transform *transform, int out_h, int out_w,
                                         float *probabilities);

/* Bytes dmllm_readout_argmax, _probabilities (transform set) or _resize (NULL) allocate for
 * themselves, beyond the caller's buffers: the memory budget's estimate of them. */
size_t dmllm_readout_bytes(int grid_h, int grid_w, int n_labels,
                           const dmllm_score_transform *transform, int out_h, int out_w);

/* Bilinear resize (align_corners = false) of a [src_h][src_w][channels] float map. */
dmllm_status dmllm_readout_resize(const float *src, int src_h, int src_w, int channels, int dst_h, int dst_w,
                                  float *dst /* [dst_h][dst_w][channels] */);

#endif
