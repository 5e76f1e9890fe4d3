/*
 * bench_attention.c: tiled attention throughput and scratch memory for the shapes the model runs:
 * a vision window (256 tokens, 16 heads x 72), vision full attention (4096 tokens), LLM causal
 * prefill in the absorbed MLA form (keys/values shared by heads, d_qk 576, d_v 512) and one
 * decode step of it; AVX-512 and portable kernels in the same run.
 * Usage: bench_attention   (threads from OMP_NUM_THREADS)
 */
#include "attention.h"
#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct bench_case {
    const char *name;
    int n_heads, n_q, n_k, d_qk, d_v;
    bool causal, shared_kv;
    int repeats;
} bench_case;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Multiply-adds actually needed: q.k and p.v over the visible (query, key) pairs. */
static double flops(const bench_case *c) {
    double pairs = 0.0;
    for (int i = 0; i < c->n_q; i++) {
        const int visible = c->causal ? (c->n_k - c->n_q + i + 1) : c->n_k;
        pairs += visible;
    }
    return 2.0 * pairs * c->n_heads * (c->d_qk + c->d_v);
}

static void run(const bench_case *c) {
    const int64_t q_row = (int64_t)c->n_heads * c->d_qk;
    const int64_t k_row = c->shared_kv ? c->d_qk : q_row;
    const int64_t v_row = c->shared_kv ? c->d_qk : (int64_t)c->n_heads * c->d_v;
    float *q = malloc(sizeof(float) * (size_t)(c->n_q * q_row));   /* [n_q, heads, d_qk] */
    float *k = malloc(sizeof(float) * (size_t)(c->n_k * k_row));   /* [n_k, (heads,) d_qk] */
    float *v = c->shared_kv ? k : malloc(sizeof(float) * (size_t)(c->n_k * v_row));
    float *out = malloc(sizeof(float) * (size_t)c->n_q * c->n_heads * c->d_v); /* [n_q, heads, d_v] */
    for (int64_t i = 0; i < c->n_q * q_row; i++) q[i] = sinf((float)i);
    for (int64_t i = 0; i < c->n_k * k_row; i++) k[i] = cosf((float)i);
    if (!c->shared_kv) for (int64_t i = 0; i < c->n_k * v_row; i++) v[i] = sinf(0.5f * (float)i);
    const dmllm_attention_args args = {
        .n_heads = c->n_heads, .n_q = c->n_q, .n_k = c->n_k, .d_qk = c->d_qk, .d_v = c->d_v,
        .scale = 1.0f / sqrtf((float)c->d_qk),
        .q = q, .q_row_stride = q_row, .q_head_stride = c->d_qk,
        .k = k, .k_row_stride = k_row, .k_head_stride = c->shared_kv ? 0 : c->d_qk,
        .v = v, .v_row_stride = v_row, .v_head_stride = c->shared_kv ? 0 : c->d_v,
        .out = out, .out_row_stride = (int64_t)c->n_heads * c->d_v, .out_head_stride = c->d_v,
        .causal = c->causal, .q_pos0 = c->causal ? c->n_k - c->n_q : 0};
    for (int generic = 0; generic < 2; generic++) {
        dmllm_kernels_force_generic(generic);
        if (dmllm_attention(&args) != DMLLM_OK) { /* warm-up */
            fprintf(stderr, "%s: %s\n", c->name, dmllm_last_error());
            break;
        }
        double best = 1e30;
        for (int r = 0; r < c->repeats; r++) {
            const double start = now_seconds();
            dmllm_attention(&args);
            const double elapsed = now_seconds() - start;
            if (elapsed < best) best = elapsed;
        }
        printf("%-34s %-8s %9.3f ms %7.1f GFLOP/s  scratch %zu bytes\n", c->name,
               dmllm_kernels_use_avx512() ? "avx512" : "generic", best * 1e3, flops(c) / best * 1e-9,
               dmllm_attention_scratch_bytes(&args));
    }
    dmllm_kernels_force_generic(false);
    free(q);
    free(k);
    if (!c->shared_kv) free(v);
    free(out);
}

int main(void) {
    printf("bench_attention: %d OpenMP threads\n", omp_get_max_threads());
    static const bench_case cases[] = {
        {"vision window 256 x 16h x 72", 16, 256, 256, 72, 72, false, false, 20},
        {"vision full 4096 x 16h x 72", 16, 4096, 4096, 72, 72, false, false, 2},
        {"MLA prefill 1024 causal x 16h", 16, 1024, 1024, 576, 512, true, true, 2},
        {"MLA decode 1 q x 16h, 2048 keys", 16, 1, 2048, 576, 512, true, true, 20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(&cases[i]);
    return 0;
}
