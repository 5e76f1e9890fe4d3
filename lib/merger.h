/*
 * merger.h: the patch merger (model-spec 3.6): RMSNorm, concatenation of each 2x2 block's four
 * consecutive rows, Linear, erf-GELU, Linear. Owns its packed weights.
 */
#ifndef DMLLM_MERGER_H
#define DMLLM_MERGER_H

#include "backend.h"
#include "checkpoint.h"

typedef struct dmllm_merger dmllm_merger;

dmllm_status dmllm_merger_load(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint,
                               dmllm_merger **out);
void dmllm_merger_free(dmllm_merger *merger);

/* vision_out [4*n_tokens, vision hidden] -> out [n_tokens, text hidden] (merged tokens row-major). */
dmllm_status dmllm_merger_forward(const dmllm_merger *merger, const float *vision_out, int n_tokens,
                                  float *out);
/* Upper bound of the bytes dmllm_merger_forward allocates for n_tokens (not oneDNN's scratchpad). */
size_t dmllm_merger_forward_bytes(const dmllm_merger *merger, int n_tokens);

#endif
