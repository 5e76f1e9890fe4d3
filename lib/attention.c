/*
 * attention.c: tiled (flash-style) attention with an online softmax. Reads q, k, v and writes out
 * through the caller's strides; allocates only per-thread scratch bounded by the block sizes.
 *
 * Layout: a task is a block of up to BLOCK_Q query rows. The block is transposed once into
 * q_t [d_qk][BLOCK_Q] (pre-scaled), so the query index runs along the vector lanes: scores
 * s_t [keys][BLOCK_Q] come from broadcasting k[j][d] against q_t rows, the softmax statistics are
 * per lane (no horizontal reductions), and the output accumulates transposed in acc_t [d_v][BLOCK_Q]
 * by broadcasting v[j][c] against probability rows. When keys and values are shared by all heads
 * (head strides 0, the absorbed MLA form), a block may hold rows of several heads (row r is head
 * r / n_q, query r % n_q), so decode with one query per head still fills the vectors and reads
 * each key once.
 */
#include "attention.h"
#include "kernels.h"
#include "vecmath.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_Q 64           /* query rows per task: 4 vectors of 16 lanes */
#define BLOCK_K 128          /* keys per online-softmax step */
#define LANES 16
#define TRANSPOSE_SLICE 16  /* columns per pass of the q_t / acc_t transposes */
#define BLOCK_Q_VECTORS (BLOCK_Q / LANES)

/* Per-thread working set; every array is indexed [.][lane] with lane < BLOCK_Q. */
typedef struct block_scratch {
    float *q_t;              /* [d_qk][BLOCK_Q]: the block's queries times scale, transposed */
    float *s_t;              /* [BLOCK_K][BLOCK_Q]: scores, then probabilities */
    float *acc_t;            /* [d_v][BLOCK_Q]: unnormalised output */
    float *row_max;          /* [BLOCK_Q] running max of the scores */
    float *row_sum;          /* [BLOCK_Q] running sum of exp(score - row_max) */
    int32_t *last_key;       /* [BLOCK_Q] last visible key index per lane */
} block_scratch;

static size_t scratch_floats_per_thread(const dmllm_attention_args *args) {
    return (size_t)BLOCK_Q * ((size_t)args->d_qk + BLOCK_K + (size_t)args->d_v + 3);
}

size_t dmllm_attention_scratch_bytes(const dmllm_attention_args *args) {
    return scratch_floats_per_thread(args) * sizeof(float) * (size_t)omp_get_max_threads();
}

/* The key block [key0, key0 + n_keys) and what the kernels need to know about it. */
typedef struct key_block {
    const float *k, *v;      /* first key / value row of the block */
    int64_t k_row_stride, v_row_stride;
    int key0, n_keys;
    bool masked;             /* some lane cannot see some key of the block */
} key_block;

/* The three inner kernels, an AVX-512 and a portable set; vectors = lanes in use / 16, rounded up. */
typedef struct attention_kernels {
    void (*scores)(const key_block *block, const block_scratch *scratch, int d_qk, int vectors);
    void (*softmax)(const key_block *block, const block_scratch *scratch, int d_v, int vectors);
    void (*accumulate)(const key_block *block, const block_scratch *scratch, int d_v, int vectors);
} attention_kernels;

/* ---- portable kernels ------------------------------------------------------------------------ */

static void scores_generic(const key_block *block, const block_scratch *scratch, int d_qk, int vectors) {
    const int lanes = vectors * LANES;
    for (int j = 0; j < block->n_keys; j++) {
        const float *key = block->k + j * block->k_row_stride;
        float *s = scratch->s_t + j * BLOCK_Q;
        for (int lane = 0; lane < lanes; lane++) s[lane] = 0.0f;
        for (int d = 0; d < d_qk; d++) {
            const float *q = scratch->q_t + d * BLOCK_Q;
            for (int lane = 0; lane < lanes; lane++) s[lane] += key[d] * q[lane];
        }
    }
}

static void softmax_generic(const key_block *block, const block_scratch *scratch, int d_v, int vectors) {
    for (int lane = 0; lane < vectors * LANES; lane++) {
        const int visible = block->masked ? scratch->last_key[lane] - block->key0 + 1 : block->n_keys;
        const int n = visible < block->n_keys ? visible : block->n_keys;
        float block_max = -FLT_MAX;
        for (int j = 0; j < n; j++) block_max = fmaxf(block_max, scratch->s_t[j * BLOCK_Q + lane]);
        const float old_max = scratch->row_max[lane];
        const float new_max = fmaxf(old_max, block_max);
        const float correction = expf(old_max - new_max);
        float sum = 0.0f;
        for (int j = 0; j < block->n_keys; j++) {
            float *s = &scratch->s_t[j * BLOCK_Q + lane];
            *s = j < n ? expf(*s - new_max) : 0.0f;
            sum += *s;
        }
        scratch->row_max[lane] = new_max;
        scratch->row_sum[lane] = scratch->row_sum[lane] * correction + sum;
        for (int c = 0; c < d_v; c++) scratch->acc_t[c * BLOCK_Q + lane] *= correction;
    }
}

static void accumulate_generic(const key_block *block, const block_scratch *scratch, int d_v, int vectors) {
    const int lanes = vectors * LANES;
    for (int j = 0; j < block->n_keys; j++) {
        const float *value = block->v + j * block->v_row_stride, *p = scratch->s_t + j * BLOCK_Q;
        for (int c = 0; c < d_v; c++) {
            float *acc = scratch->acc_t + c * BLOCK_Q;
            for (int lane = 0; lane < lanes; lane++) acc[lane] += value[c] * p[lane];
        }
    }
}

static const attention_kernels generic_kernels = {scores_generic, softmax_generic, accumulate_generic};

/* ---- AVX-512 kernels ------------------------------------------------------------------------- */

/* s_t[j0 + t][lanes] (+)= sum_{d0 <= d < d1} k[j0 + t][d] q_t[d][lanes] for KEYS keys and VECTORS
 * lane vectors: KEYS x VECTORS accumulators stay in registers over d. */
DMLLM_AVX512 __attribute__((always_inline)) static inline void scores_tile(const key_block *block,
                                                                          const block_scratch *scratch, int d0, int d1,
                                                                          int j0, const int KEYS, const int VECTORS) {
    __m512 acc[4][BLOCK_Q_VECTORS];
    const float *key[4];
    for (int t = 0; t < KEYS; t++) {
        key[t] = block->k + (j0 + t) * block->k_row_stride;
        for (int v = 0; v < VECTORS; v++) {
            acc[t][v] = d0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(scratch->s_t + (j0 + t) * BLOCK_Q + v * LANES);
        }
    }
    for (int d = d0; d < d1; d++) {
        __m512 q[BLOCK_Q_VECTORS];
        for (int v = 0; v < VECTORS; v++) q[v] = _mm512_loadu_ps(scratch->q_t + d * BLOCK_Q + v * LANES);
        for (int t = 0; t < KEYS; t++) {
            const __m512 k = _mm512_set1_ps(key[t][d]);
            for (int v = 0; v < VECTORS; v++) acc[t][v] = _mm512_fmadd_ps(k, q[v], acc[t][v]);
        }
    }
    for (int t = 0; t < KEYS; t++) {
        for (int v = 0; v < VECTORS; v++) _mm512_storeu_ps(scratch->s_t + (j0 + t) * BLOCK_Q + v * LANES, acc[t][v]);
    }
}

#define SCORES_FOR_KEYS(keys)                                                                        \
    switch (vectors) {                                                                               \
    case 1: scores_tile(block, scratch, d0, d1, j, keys, 1); break;                                  \
    case 2: scores_tile(block, scratch, d0, d1, j, keys, 2); break;                                  \
    case 3: scores_tile(block, scratch, d0, d1, j, keys, 3); break;                                  \
    default: scores_tile(block, scratch, d0, d1, j, keys, 4); break;                                 \
    }

/* d is split into SCORES_D_CHUNK slices so the slice of q_t (64 x BLOCK_Q floats, 16 KB) stays in
 * L1 while all keys of the block pass over it (d_qk 576 would otherwise stream q_t from L2). */
#define SCORES_D_CHUNK 64

DMLLM_AVX512 static void scores_avx512(const key_block *block, const block_scratch *scratch, int d_qk, int vectors) {
    for (int d0 = 0; d0 < d_qk; d0 += SCORES_D_CHUNK) {
        const int d1 = d0 + SCORES_D_CHUNK < d_qk ? d0 + SCORES_D_CHUNK : d_qk;
        int j = 0;
        for (; j + 4 <= block->n_keys; j += 4) SCORES_FOR_KEYS(4)
        switch (block->n_keys - j) {
        case 3: SCORES_FOR_KEYS(3) break;
        case 2: SCORES_FOR_KEYS(2) break;
        case 1: SCORES_FOR_KEYS(1) break;
        default: break;
        }
    }
}

DMLLM_AVX512 static void softmax_avx512(const key_block *block, const block_scratch *scratch, int d_v, int vectors) {
    for (int v = 0; v < vectors; v++) {
        const int lane0 = v * LANES;
        const __m512i last_key = _mm512_loadu_si512(scratch->last_key + lane0);
        __m512 block_max = _mm512_set1_ps(-FLT_MAX);
        for (int j = 0; j < block->n_keys; j++) {
            const __mmask16 visible = block->masked ? _mm512_cmple_epi32_mask(_mm512_set1_epi32(block->key0 + j), last_key)
                                                    : (__mmask16)0xffff;
            block_max = _mm512_mask_max_ps(block_max, visible, block_max, _mm512_loadu_ps(scratch->s_t + j * BLOCK_Q + lane0));
        }
        const __m512 old_max = _mm512_loadu_ps(scratch->row_max + lane0);
        const __m512 new_max = _mm512_max_ps(old_max, block_max);
        const __m512 correction = dmllm_exp512(_mm512_sub_ps(old_max, new_max));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < block->n_keys; j++) {
            float *s = scratch->s_t + j * BLOCK_Q + lane0;
            const __mmask16 visible = block->masked ? _mm512_cmple_epi32_mask(_mm512_set1_epi32(block->key0 + j), last_key)
                                                    : (__mmask16)0xffff;
            const __m512 p = _mm512_maskz_mov_ps(visible, dmllm_exp512(_mm512_sub_ps(_mm512_loadu_ps(s), new_max)));
            _mm512_storeu_ps(s, p);
            sum = _mm512_add_ps(sum, p);
        }
        _mm512_storeu_ps(scratch->row_max + lane0, new_max);
        _mm512_storeu_ps(scratch->row_sum + lane0,
                         _mm512_fmadd_ps(_mm512_loadu_ps(scratch->row_sum + lane0), correction, sum));
        for (int c = 0; c < d_v; c++) {
            float *acc = scratch->acc_t + c * BLOCK_Q + lane0;
            _mm512_storeu_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(acc), correction));
        }
    }
}

/* acc_t[c0 + t][lanes] += sum_j v[j][c0 + t] p_t[j][lanes] for COLUMNS value columns. */
DMLLM_AVX512 __attribute__((always_inline)) static inline void accumulate_tile(const key_block *block,
                                                                              const block_scratch *scratch, int c0,
                                                                              const int COLUMNS, const int VECTORS) {
    __m512 acc[4][BLOCK_Q_VECTORS];
    for (int t = 0; t < COLUMNS; t++) {
        for (int v = 0; v < VECTORS; v++) acc[t][v] = _mm512_loadu_ps(scratch->acc_t + (c0 + t) * BLOCK_Q + v * LANES);
    }
    for (int j = 0; j < block->n_keys; j++) {
        const float *value = block->v + j * block->v_row_stride + c0;
        __m512 p[BLOCK_Q_VECTORS];
        for (int v = 0; v < VECTORS; v++) p[v] = _mm512_loadu_ps(scratch->s_t + j * BLOCK_Q + v * LANES);
        for (int t = 0; t < COLUMNS; t++) {
            const __m512 x = _mm512_set1_ps(value[t]);
            for (int v = 0; v < VECTORS; v++) acc[t][v] = _mm512_fmadd_ps(x, p[v], acc[t][v]);
        }
    }
    for (int t = 0; t < COLUMNS; t++) {
        for (int v = 0; v < VECTORS; v++) _mm512_storeu_ps(scratch->acc_t + (c0 + t) * BLOCK_Q + v * LANES, acc[t][v]);
    }
}

#define ACCUMULATE_FOR_COLUMNS(columns)                                                              \
    switch (vectors) {                                                                               \
    case 1: accumulate_tile(block, scratch, c, columns, 1); break;                                   \
    case 2: accumulate_tile(block, scratch, c, columns, 2); break;                                   \
    case 3: accumulate_tile(block, scratch, c, columns, 3); break;                                   \
    default: accumulate_tile(block, scratch, c, columns, 4); break;                                  \
    }

DMLLM_AVX512 static void accumulate_avx512(const key_block *block, const block_scratch *scratch, int d_v, int vectors) {
    int c = 0;
    for (; c + 4 <= d_v; c += 4) ACCUMULATE_FOR_COLUMNS(4)
    switch (d_v - c) {
    case 3: ACCUMULATE_FOR_COLUMNS(3) break;
    case 2: ACCUMULATE_FOR_COLUMNS(2) break;
    case 1: ACCUMULATE_FOR_COLUMNS(1) break;
    default: break;
    }
}

static const attention_kernels avx512_kernels = {scores_avx512, softmax_avx512, accumulate_avx512};

/* ---- driver ---------------------------------------------------------------------------------- */

/* Rows of the attention: shared keys put all heads' queries in one sequence of n_heads * n_q rows;
 * otherwise each head is its own sequence of n_q rows. */
typedef struct row_layout {
    bool shared_kv;
    int rows_per_group, n_groups, blocks_per_group;
} row_layout;

static void row_position(const dmllm_attention_args *a, const row_layout *layout, int group, int row, int *head,
                         int *query) {
    *head = layout->shared_kv ? row / a->n_q : group;
    *query = layout->shared_kv ? row % a->n_q : row;
}

static void attend_block(const dmllm_attention_args *a, const row_layout *layout, int task, const block_scratch *scratch,
                         const attention_kernels *kernels) {
    const int group = task / layout->blocks_per_group;
    const int row0 = (task % layout->blocks_per_group) * BLOCK_Q;
    const int rows = layout->rows_per_group - row0 < BLOCK_Q ? layout->rows_per_group - row0 : BLOCK_Q;
    const int vectors = (rows + LANES - 1) / LANES;

    /* Gather the queries transposed and scaled; unused lanes are zero and see every key. */
    const float *q_rows[BLOCK_Q];
    float *out_rows[BLOCK_Q];
    int first_last_key = a->n_k - 1, max_last_key = 0;
    for (int lane = 0; lane < BLOCK_Q; lane++) {
        int last_key = a->n_k - 1;
        if (lane < rows) {
            int head, query;
            row_position(a, layout, group, row0 + lane, &head, &query);
            q_rows[lane] = a->q + head * a->q_head_stride + query * a->q_row_stride;
            out_rows[lane] = a->out + head * a->out_head_stride + query * a->out_row_stride;
            if (a->causal && (int64_t)a->q_pos0 + query < a->n_k) last_key = a->q_pos0 + query;
            if (last_key < first_last_key) first_last_key = last_key;
            if (last_key > max_last_key) max_last_key = last_key;
        }
        scratch->last_key[lane] = last_key;
        scratch->row_max[lane] = -FLT_MAX;
        scratch->row_sum[lane] = 0.0f;
    }
    memset(scratch->q_t, 0, sizeof(float) * (size_t)a->d_qk * BLOCK_Q);
    /* In slices of TRANSPOSE_SLICE columns, so the written part of q_t stays in L1. */
    for (int d0 = 0; d0 < a->d_qk; d0 += TRANSPOSE_SLICE) {
        const int d1 = d0 + TRANSPOSE_SLICE < a->d_qk ? d0 + TRANSPOSE_SLICE : a->d_qk;
        for (int lane = 0; lane < rows; lane++) {
            for (int d = d0; d < d1; d++) scratch->q_t[d * BLOCK_Q + lane] = q_rows[lane][d] * a->scale;
        }
    }
    memset(scratch->acc_t, 0, sizeof(float) * (size_t)a->d_v * BLOCK_Q);

    int head0, query0;
    row_position(a, layout, group, row0, &head0, &query0);
    const int64_t kv_head = layout->shared_kv ? 0 : head0;
    for (int key0 = 0; key0 <= max_last_key; key0 += BLOCK_K) {
        const int n_keys = max_last_key + 1 - key0 < BLOCK_K ? max_last_key + 1 - key0 : BLOCK_K;
        const key_block block = {
            .k = a->k + kv_head * a->k_head_stride + (int64_t)key0 * a->k_row_stride,
            .v = a->v + kv_head * a->v_head_stride + (int64_t)key0 * a->v_row_stride,
            .k_row_stride = a->k_row_stride, .v_row_stride = a->v_row_stride,
            .key0 = key0, .n_keys = n_keys, .masked = key0 + n_keys - 1 > first_last_key};
        kernels->scores(&block, scratch, a->d_qk, vectors);
        kernels->softmax(&block, scratch, a->d_v, vectors);
        kernels->accumulate(&block, scratch, a->d_v, vectors);
    }

    float inverse_sum[BLOCK_Q];
    for (int lane = 0; lane < rows; lane++) inverse_sum[lane] = 1.0f / scratch->row_sum[lane];
    for (int c0 = 0; c0 < a->d_v; c0 += TRANSPOSE_SLICE) {
        const int c1 = c0 + TRANSPOSE_SLICE < a->d_v ? c0 + TRANSPOSE_SLICE : a->d_v;
        for (int lane = 0; lane < rows; lane++) {
            for (int c = c0; c < c1; c++) out_rows[lane][c] = scratch->acc_t[c * BLOCK_Q + lane] * inverse_sum[lane];
        }
    }
}

static dmllm_status check_args(const dmllm_attention_args *a) {
    if (!a || !a->q || !a->k || !a->v || !a->out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "attention: NULL buffer");
    if (a->n_heads < 1 || a->n_q < 0 || a->n_k < 1 || a->d_qk < 1 || a->d_v < 1) {
        return dmllm_fail(DMLLM_ERR_SHAPE, "attention: bad sizes heads=%d n_q=%d n_k=%d d_qk=%d d_v=%d", a->n_heads,
                          a->n_q, a->n_k, a->d_qk, a->d_v);
    }
    if (a->causal && a->q_pos0 < 0) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "attention: q_pos0 %d < 0", a->q_pos0);
    if ((int64_t)a->n_heads * a->n_q > INT32_MAX) {
        return dmllm_fail(DMLLM_ERR_SHAPE, "attention: %d heads x %d queries overflow", a->n_heads, a->n_q);
    }
    return DMLLM_OK;
}

dmllm_status dmllm_attention(const dmllm_attention_args *args) {
    DMLLM_TRY(check_args(args));
    if (args->n_q == 0) return DMLLM_OK;
    row_layout layout;
    layout.shared_kv = args->k_head_stride == 0 && args->v_head_stride == 0;
    layout.rows_per_group = layout.shared_kv ? args->n_heads * args->n_q : args->n_q;
    layout.n_groups = layout.shared_kv ? 1 : args->n_heads;
    layout.blocks_per_group = (layout.rows_per_group + BLOCK_Q - 1) / BLOCK_Q;
    const int n_tasks = layout.n_groups * layout.blocks_per_group;
    const int n_threads = omp_get_max_threads() < n_tasks ? omp_get_max_threads() : n_tasks;
    const size_t per_thread = scratch_floats_per_thread(args);
    float *scratch_memory; /* [n_threads][per_thread] */
    DMLLM_TRY(dmllm_alloc(&scratch_memory, per_thread * (size_t)n_threads, sizeof(float), "attention scratch"));
    const attention_kernels *kernels = dmllm_kernels_use_avx512() ? &avx512_kernels : &generic_kernels;

    #pragma omp parallel num_threads(n_threads)
    {
        float *base = scratch_memory + per_thread * (size_t)omp_get_thread_num();
        const block_scratch scratch = {
            .q_t = base,
            .s_t = base + (size_t)args->d_qk * BLOCK_Q,
            .acc_t = base + (size_t)(args->d_qk + BLOCK_K) * BLOCK_Q,
            .row_max = base + (size_t)(args->d_qk + BLOCK_K + args->d_v) * BLOCK_Q,
            .row_sum = base + (size_t)(args->d_qk + BLOCK_K + args->d_v + 1) * BLOCK_Q,
            .last_key = (int32_t *)(base + (size_t)(args->d_qk + BLOCK_K + args->d_v + 2) * BLOCK_Q)};
        #pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < n_tasks; task++) attend_block(args, &layout, task, &scratch, kernels);
    }
    free(scratch_memory);
    return DMLLM_OK;
}
