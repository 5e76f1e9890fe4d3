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

#endif
