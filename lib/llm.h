/*
 * llm.h: the Youtu-LLM decoder (model-spec 4): token embeddings, 40 MLA + SwiGLU layers, final
 * RMSNorm and the tied LM head. The weights (dmllm_llm) are immutable; the latent KV cache
 * (dmllm_kv_cache: 512-d normalised latent + 64-d roped k_pe per token and layer) is per session.
 */
#ifndef DMLLM_LLM_H
#define DMLLM_LLM_H

#include "backend.h"
#include "checkpoint.h"

typedef struct dmllm_llm dmllm_llm;
typedef struct dmllm_kv_cache dmllm_kv_cache;

/* The checkpoint must outlive the LLM: token embeddings are read from its mapping. */
dmllm_status dmllm_llm_load(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint, dmllm_llm **out);
void dmllm_llm_free(dmllm_llm *llm);

dmllm_status dmllm_kv_cache_create(const dmllm_llm *llm, int capacity, dmllm_kv_cache **out);
/* Bytes dmllm_kv_cache_create allocates for capacity positions. */
size_t dmllm_kv_cache_bytes(const dmllm_llm *llm, int capacity);
void dmllm_kv_cache_free(dmllm_kv_cache *cache);
int dmllm_kv_cache_length(const dmllm_kv_cache *cache);
int dmllm_kv_cache_capacity(const dmllm_kv_cache *cache);
/* Forgets every position >= n_keep. */
void dmllm_kv_cache_truncate(dmllm_kv_cache *cache, int n_keep);

/* out[n, hidden] = embed_tokens rows of ids (ids must be < vocab_size; checked). */
dmllm_status dmllm_llm_embed(const dmllm_llm *llm, const int32_t *ids, int n, float *out);

/* Runs n new tokens with input embeddings [n, hidden] at positions cache_length .. +n-1, appends
 * them to the cache and writes the final-normed hidden states [n, hidden]. On failure the cache
 * is left as it was. Reports progress "llm" once per layer. */
dmllm_status dmllm_llm_forward(const dmllm_llm *llm, dmllm_kv_cache *cache, const float *embeddings, int n,
                               float *normed_hidden, const dmllm_progress *progress);
/* Upper bound of the bytes dmllm_llm_forward allocates for n tokens after n_past cached ones
 * (scratch, attention tiles, matmul activations; not oneDNN's scratchpad), with the calling
 * thread's thread count. */
size_t dmllm_llm_forward_bytes(const dmllm_llm *llm, int n_past, int n);

/* The two evaluations of MLA (model-spec 4.4). EXPANDED rebuilds per-head k_nope/v from the cached
 * latents with kv_b_proj (cheap for long chunks); ABSORBED folds W_UK into the queries and W_UV into
 * the output so all heads attend directly to the cached [c | k_pe] rows (cheap for decode and short
 * chunks). AUTO applies dmllm_llm_pick_form. Both give the same result up to rounding. */
typedef enum dmllm_mla_form { DMLLM_MLA_AUTO = 0, DMLLM_MLA_EXPANDED, DMLLM_MLA_ABSORBED } dmllm_mla_form;

/* The form AUTO uses for n_new tokens after n_past cached ones (the one with fewer FLOPs). */
dmllm_mla_form dmllm_llm_pick_form(const dmllm_llm *llm, int n_past, int n_new);
/* dmllm_llm_forward with the attention form forced (tests compare the two). */
dmllm_status dmllm_llm_forward_form(const dmllm_llm *llm, dmllm_kv_cache *cache, const float *embeddings, int n,
                                    float *normed_hidden, const dmllm_progress *progress, dmllm_mla_form form);

/* logits[n, vocab] = normed_hidden[n, hidden] embed_tokens^T (the tied LM head). */
dmllm_status dmllm_llm_logits(const dmllm_llm *llm, const float *normed_hidden, int n, float *logits);
/* out[n, n_ids] = dot products with the selected embed_tokens rows only. */
dmllm_status dmllm_llm_logits_select(const dmllm_llm *llm, const float *normed_hidden, int n,
                                     const int32_t *ids, int n_ids, float *out);

#endif
