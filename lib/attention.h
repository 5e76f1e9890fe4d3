/*
 * attention.h: tiled (flash-style) multi-head attention with an online softmax: queries are
 * processed in blocks against key blocks, so no n_q x n_k score matrix is ever stored. One kernel
 * serves the vision windows and full-attention layers (bidirectional), the LLM prefill (causal,
 * per-head keys) and the absorbed MLA form (causal, keys and values shared by all heads:
 * k_head_stride = v_head_stride = 0). Parallel over heads x query blocks with OpenMP.
 */
#ifndef DMLLM_ATTENTION_H
#define DMLLM_ATTENTION_H

#include "common.h"

typedef struct dmllm_attention_args {
    int n_heads;
    int n_q, n_k;          /* queries and keys per head */
    int d_qk, d_v;         /* dot-product and value widths */
    float scale;           /* applied to q.k before the softmax */
    /* Element strides: vector i of head h starts at base + h*head_stride + i*row_stride. */
    const float *q; int64_t q_row_stride, q_head_stride;
    const float *k; int64_t k_row_stride, k_head_stride;
    const float *v; int64_t v_row_stride, v_head_stride;
    float *out;     int64_t out_row_stride, out_head_stride;   /* [n_q, d_v] per head */
    /* Causal: query i sits at absolute position q_pos0 + i, key j at position j, and sees keys
     * j <= q_pos0 + i. Not causal: every query sees every key. */
    bool causal;
    int q_pos0;
} dmllm_attention_args;

dmllm_status dmllm_attention(const dmllm_attention_args *args);
/* Scratch memory dmllm_attention allocates for these arguments with the calling thread's OpenMP
 * thread count: bounded by the block sizes, d_qk and d_v, independent of n_q and n_k. */
size_t dmllm_attention_scratch_bytes(const dmllm_attention_args *args);

#endif
