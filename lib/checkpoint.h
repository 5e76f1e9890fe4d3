/*
 * checkpoint.h: a Hugging Face model directory: config.json plus one safetensors file or a sharded
 * set listed in model.safetensors.index.json. Opening validates every tensor the config implies
 * (names, shapes, float dtypes); later lookups of those tensors cannot fail. Does not convert or
 * pack weights (that is backend.c's job).
 */
#ifndef DMLLM_CHECKPOINT_H
#define DMLLM_CHECKPOINT_H

#include "config.h"
#include "safetensors.h"

typedef struct dmllm_checkpoint dmllm_checkpoint;

dmllm_status dmllm_checkpoint_open(const char *model_dir, dmllm_checkpoint **out);
void dmllm_checkpoint_close(dmllm_checkpoint *checkpoint);
const dmllm_config *dmllm_checkpoint_config(const dmllm_checkpoint *checkpoint);
const char *dmllm_checkpoint_dir(const dmllm_checkpoint *checkpoint);
/* NULL when absent. Every tensor named in checkpoint.c's schema is present after a successful open. */
const dmllm_tensor *dmllm_checkpoint_tensor(const dmllm_checkpoint *checkpoint, const char *name);
/* printf-style name, for "model.layers.%d.mlp.up_proj.weight". */
const dmllm_tensor *dmllm_checkpoint_tensorf(const dmllm_checkpoint *checkpoint, const char *fmt, ...)
    DMLLM_PRINTF(2, 3);
/* Parameters used by inference (tied head counted once, unused position embedding excluded). */
int64_t dmllm_checkpoint_n_params(const dmllm_checkpoint *checkpoint);
/* Identifies the checkpoint's content for the packed-weight cache: config.json, the index and
 * every shard's dmllm_safetensors_identity() (stat data and header, not the tensor bytes). */
uint64_t dmllm_checkpoint_identity(const dmllm_checkpoint *checkpoint);

#endif
