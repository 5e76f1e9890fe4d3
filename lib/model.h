/*
 * model.h: what a loaded model holds. Immutable after dmllm_model_load(); sessions read it from
 * many threads at once, so nothing here may be written after loading.
 */
#ifndef DMLLM_MODEL_H
#define DMLLM_MODEL_H

#include "backend.h"
#include "checkpoint.h"
#include "llm.h"
#include "merger.h"
#include "profile.h"
#include "tokenizer.h"
#include "vision.h"

struct dmllm_model {
    dmllm_checkpoint *checkpoint;   /* config and the mapped tensors (embedding rows are read from it) */
    const dmllm_config *config;     /* owned by checkpoint */
    dmllm_backend *backend;         /* NULL for a check_only model */
    dmllm_pack_cache *pack_cache;   /* the mapped packed-weight cache, or NULL: linears point
                                       into it */
    dmllm_vision *vision;           /* packed vision tower weights */
    dmllm_merger *merger;           /* packed merger weights */
    dmllm_llm *llm;                 /* packed LLM weights incl. the tied LM head */
    dmllm_readout_profile profile;  /* readout_profile.json of the directory over the youtu_vl defaults */
    dmllm_tokenizer *tokenizer;     /* tokenizer.json of the directory; NULL when it has none */
    int64_t memory_limit_bytes;     /* dmllm_model_params.memory_limit_bytes: its sessions' default */
};

#endif
