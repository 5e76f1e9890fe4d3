/*
 * vision.h: the SigLIP2-style vision tower (model-spec 3.1-3.5): linear patch embedding, window
 * reorder, 2-D rotate-half RoPE, pre-LN blocks with window or full attention, restore order,
 * post-LayerNorm. Owns its packed weights; keeps no per-call state (scratch is per call).
 */
#ifndef DMLLM_VISION_H
#define DMLLM_VISION_H

#include "backend.h"
#include "checkpoint.h"

typedef struct dmllm_vision dmllm_vision;

dmllm_status dmllm_vision_load(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint,
                               dmllm_vision **out);
void dmllm_vision_free(dmllm_vision *vision);

/* pixel_values [gh*gw, 3*patch*patch] in merge-block order -> out [gh*gw, vision hidden], post-LN,
 * in the same (merge-block) order. Reports progress "vision" once per layer. */
dmllm_status dmllm_vision_forward(const dmllm_vision *vision, const float *pixel_values, int gh, int gw,
                                  float *out, const dmllm_progress *progress);
/* Upper bound of the bytes dmllm_vision_forward allocates for a gh x gw grid (scratch, attention
 * tiles, matmul activations; not oneDNN's scratchpad), with the calling thread's thread count. */
size_t dmllm_vision_forward_bytes(const dmllm_vision *vision, int gh, int gw);

/* The window partition of a merged_h x merged_w merged-token grid (model-spec 3.2), windows of
 * window_tokens x window_tokens merged tokens, ragged at the right and bottom edges.
 * window_index [merged_h*merged_w]: the row-major merged token at each window-order position.
 * window_starts [n_windows + 1]: first window-order position of each window, then merged_h*merged_w;
 * it needs room for ceil(merged_h/window_tokens)*ceil(merged_w/window_tokens) + 1 entries.
 * Returns n_windows. All sizes must be positive. */
int dmllm_vision_window_order(int merged_h, int merged_w, int window_tokens, int *window_index,
                              int *window_starts);

/* Load helpers shared with merger.c. */
#define DMLLM_MAX_LINEAR_PARTS 3
/* One dmllm_linear whose weight rows are the n_parts checkpoint matrices [part_rows[p], in_features]
 * stacked in order (e.g. q, k, v for one GEMM) and whose bias is the matching vectors stacked (bias_names
 * NULL: no bias). The stacked copy is freed once the backend has packed it. Taken from the
 * backend's packed-weight cache (name: the first weight's, "+N" for N more parts) when it has it,
 * without reading the checkpoint. */
dmllm_status dmllm_linear_from_checkpoint(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint,
                                          const char *const *weight_names, const char *const *bias_names,
                                          const int64_t *part_rows, int n_parts, int64_t in_features,
                                          dmllm_linear **out);
/* The 1-D checkpoint tensor name of n elements, converted to f32 into out. */
dmllm_status dmllm_load_vector_f32(const dmllm_checkpoint *checkpoint, const char *name, int64_t n, float *out);

#endif
