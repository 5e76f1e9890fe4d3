/*
 * bench_matmul.c: matmul throughput ratios in one run, at the LLM MLP shape K=2560 N=9728 (or
 * another K, N) for M = 1 (decode) and M = 512 (prefill chunk): the library's pre-packed
 * onednn-bf16 and onednn-f32 linears, openblas-f32, int8 weights (W8A8; the time includes
 * quantising x and dequantising y, as forward runs them), and a oneDNN bf16 matmul on plain (`ba`,
 * not pre-packed) weights, which is what skipping the pre-pack would cost. The last one calls
 * oneDNN directly: it measures an alternative the library deliberately does not implement.
 * Usage: bench_matmul [repeats_m512 [K N]]   (threads from OMP_NUM_THREADS)
 */
#include "backend.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int K = 2560, N = 9728; /* y[M, N] = x[M, K] W^T */

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Best time per call over repeats, after one warm-up call (primitive creation, page faults). */
static double time_linear(const dmllm_linear *linear, const float *x, int m, float *y, int repeats) {
    if (dmllm_linear_forward(linear, x, m, y) != DMLLM_OK) return -1.0;
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        const double start = now_seconds();
        dmllm_linear_forward(linear, x, m, y);
        const double elapsed = now_seconds() - start;
        if (elapsed < best) best = elapsed;
    }
    return best;
}

static double gflops(int m, double seconds) { return seconds > 0 ? 2.0 * m * K * N / seconds * 1e-9 : 0.0; }

#define DNNL_CHECK(call)                                                                             \
    do {                                                                                             \
        dnnl_status_t s_ = (call);                                                                   \
        if (s_ != dnnl_success) {                                                                    \
            fprintf(stderr, "%s failed: %d\n", #call, (int)s_);                                      \
            return -1.0;                                                                             \
        }                                                                                            \
    } while (0)

/* oneDNN bf16 matmul with plain weights W [N, K] = (K, N) tag ba, best seconds per call. */
static double time_unpacked_bf16(const uint16_t *w, const uint16_t *x, int m, float *y, int repeats) {
    dnnl_engine_t engine;
    DNNL_CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    dnnl_memory_desc_t src_md, weights_md, dst_md;
    const dnnl_dims_t src_dims = {m, K}, weights_dims = {K, N}, dst_dims = {m, N};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dnnl_bf16, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&weights_md, 2, weights_dims, dnnl_bf16, dnnl_ba));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &src_md, &weights_md, NULL, &dst_md));
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
    const char *implementation = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &implementation);
    printf("  unpacked bf16 M=%d uses %s\n", m, implementation ? implementation : "?");
    dnnl_primitive_t primitive;
    DNNL_CHECK(dnnl_primitive_create(&primitive, pd));
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_t src, weights, dst;
    DNNL_CHECK(dnnl_memory_create(&src, &src_md, engine, (void *)x));
    DNNL_CHECK(dnnl_memory_create(&weights, &weights_md, engine, (void *)w));
    DNNL_CHECK(dnnl_memory_create(&dst, &dst_md, engine, y));
    dnnl_stream_t stream;
    DNNL_CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    double best = 1e30;
    for (int r = 0; r <= repeats; r++) {
        const double start = now_seconds();
        DNNL_CHECK(dnnl_primitive_execute(primitive, stream, 3, args));
        DNNL_CHECK(dnnl_stream_wait(stream));
        const double elapsed = now_seconds() - start;
        if (r > 0 && elapsed < best) best = elapsed; /* r = 0 warms up */
    }
    dnnl_stream_destroy(stream);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(weights);
    dnnl_memory_destroy(dst);
    dnnl_primitive_destroy(primitive);
    dnnl_engine_destroy(engine);
    return best;
}

/* The absorbed-MLA step of one token and layer: W_UK^T of 32 heads (512 x 128 each) through
 * dmllm_linear_forward_each, best seconds of repeats, with the given weights; < 0 if unavailable. */
static double time_heads(dmllm_weights_type weights, const float *w, const float *x, float *y, int repeats) {
    enum { HEADS = 32, NOPE = 128, KV_LORA = 512 };
    dmllm_backend *backend = NULL;
    dmllm_linear *heads[HEADS] = {NULL};
    double best = -1.0;
    if (dmllm_backend_create_with_weights(DMLLM_COMPUTE_AUTO, weights, &backend) != DMLLM_OK) return best;
    int made = 0;
    while (made < HEADS &&
           dmllm_linear_create(backend, DMLLM_DTYPE_F32, w + (size_t)made * KV_LORA * NOPE, KV_LORA, NOPE, NOPE, NULL,
                               &heads[made]) == DMLLM_OK)
        made++;
    if (made == HEADS && dmllm_linear_forward_each(heads, HEADS, 1, x, NOPE, HEADS * NOPE, y, KV_LORA,
                                                   HEADS * KV_LORA) == DMLLM_OK) {
        best = 1e30;
        for (int r = 0; r < repeats; r++) {
            const double start = now_seconds();
            dmllm_linear_forward_each(heads, HEADS, 1, x, NOPE, HEADS * NOPE, y, KV_LORA, HEADS * KV_LORA);
            const double elapsed = now_seconds() - start;
            if (elapsed < best) best = elapsed;
        }
    }
    for (int h = 0; h < made; h++) dmllm_linear_free(heads[h]);
    dmllm_backend_free(backend);
    return best;
}

int main(int argc, char **argv) {
    const int repeats_large = argc > 1 ? atoi(argv[1]) : 5, repeats_small = 50;
    if (argc > 3) {
        K = atoi(argv[2]);
        N = atoi(argv[3]);
        if (K <= 0 || N <= 0) return 2;
    }
    enum { M_LARGE = 512, N_PATHS = 4 };
    printf("bench_matmul: K=%d N=%d, %d OpenMP threads, OpenBLAS core %s\n", K, N, omp_get_max_threads(),
           openblas_get_corename());
    float *w = malloc(sizeof(float) * (size_t)K * N);        /* [N, K] */
    uint16_t *w_bf16 = malloc(sizeof(uint16_t) * (size_t)K * N);
    float *x = malloc(sizeof(float) * (size_t)M_LARGE * K);  /* [M, K] */
    uint16_t *x_bf16 = malloc(sizeof(uint16_t) * (size_t)M_LARGE * K);
    float *y = malloc(sizeof(float) * (size_t)M_LARGE * N);  /* [M, N] */
    if (!w || !w_bf16 || !x || !x_bf16 || !y) return 1;
    uint32_t state = 1;
    for (size_t i = 0; i < (size_t)K * N; i++) {
        state = state * 1664525u + 1013904223u;
        w[i] = (float)(state >> 8) / 16777216.0f - 0.5f;
        w_bf16[i] = dmllm_f32_to_bf16(w[i]);
    }
    for (size_t i = 0; i < (size_t)M_LARGE * K; i++) {
        x[i] = (float)(i % 97) / 97.0f - 0.5f;
        x_bf16[i] = dmllm_f32_to_bf16(x[i]);
    }

    static const dmllm_compute_type paths[N_PATHS] = {DMLLM_COMPUTE_BF16, DMLLM_COMPUTE_F32, DMLLM_COMPUTE_OPENBLAS,
                                                      DMLLM_COMPUTE_BF16};
    static const dmllm_weights_type weights[N_PATHS] = {DMLLM_WEIGHTS_AUTO, DMLLM_WEIGHTS_AUTO, DMLLM_WEIGHTS_AUTO,
                                                        DMLLM_WEIGHTS_INT8};
    static const int weight_bytes[N_PATHS] = {2, 4, 4, 1};
    double rate[N_PATHS][2] = {{0}}; /* [path][M=1, M=512] GFLOP/s (GOP/s for int8) */
    for (int p = 0; p < N_PATHS; p++) {
        dmllm_backend *backend = NULL;
        dmllm_linear *linear = NULL;
        if (dmllm_backend_create_with_weights(paths[p], weights[p], &backend) != DMLLM_OK ||
            dmllm_linear_create(backend, DMLLM_DTYPE_F32, w, N, K, K, NULL, &linear) != DMLLM_OK) {
            fprintf(stderr, "path %d: %s\n", (int)paths[p], dmllm_last_error());
            dmllm_backend_free(backend);
            continue;
        }
        const double t1 = time_linear(linear, x, 1, y, repeats_small);
        const double t512 = time_linear(linear, x, M_LARGE, y, repeats_large);
        rate[p][0] = gflops(1, t1);
        rate[p][1] = gflops(M_LARGE, t512);
        printf("%-14s M=1: %8.3f ms %7.1f GFLOP/s (%5.1f GB/s of weights)   M=512: %8.2f ms %7.1f GFLOP/s\n",
               weights[p] == DMLLM_WEIGHTS_INT8 ? "int8-weights" : dmllm_backend_name(backend), t1 * 1e3, rate[p][0],
               (double)K * N * weight_bytes[p] / t1 * 1e-9, t512 * 1e3, rate[p][1]);
        dmllm_linear_free(linear);
        dmllm_backend_free(backend);
    }
    const double unpacked[2] = {gflops(1, time_unpacked_bf16(w_bf16, x_bf16, 1, y, repeats_small)),
                                gflops(M_LARGE, time_unpacked_bf16(w_bf16, x_bf16, M_LARGE, y, repeats_large))};
    printf("%-14s M=1: %7.1f GFLOP/s   M=512: %7.1f GFLOP/s\n", "unpacked-bf16", unpacked[0], unpacked[1]);
    for (int s = 0; s < 2; s++) {
        printf("ratios M=%-3d bf16/f32 %.2f  bf16/openblas %.2f  f32/openblas %.2f  packed/unpacked bf16 %.2f  "
               "int8/bf16 %.2f\n", s ? M_LARGE : 1, rate[0][s] / rate[1][s], rate[0][s] / rate[2][s],
               rate[1][s] / rate[2][s], rate[0][s] / unpacked[s], rate[3][s] / rate[0][s]);
    }
    const bool heads_fit = (size_t)K * N >= (size_t)32 * 512 * 128; /* x and y are larger still */
    const double heads_bf16 = heads_fit ? time_heads(DMLLM_WEIGHTS_AUTO, w, x, y, repeats_small) : -1.0,
                 heads_int8 = heads_fit ? time_heads(DMLLM_WEIGHTS_INT8, w, x, y, repeats_small) : -1.0;
    if (heads_fit)
        printf("32 MLA heads 128 -> 512, M=1 (forward_each): compute-type weights %.1f us, int8 weights %.1f us\n",
               heads_bf16 * 1e6, heads_int8 * 1e6);
    free(w);
    free(w_bf16);
    free(x);
    free(x_bf16);
    free(y);
    return 0;
}
