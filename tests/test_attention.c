/*
 * test_attention.c: the tiled attention against a naive softmax attention in double, on the
 * AVX-512 and the portable path: bidirectional (vision), causal with q_pos0 > 0 (LLM prefill),
 * keys and values shared by all heads (absorbed MLA, d_qk 576 / d_v 512, incl. decode), odd
 * sizes, n_k = 1, and a long n_k = 3000 whose memory must stay bounded.
 */
#include "testutil.h"

#include "attention.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static uint32_t rng_state = 4242;
static float random_uniform(void) { /* [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) * (1.0 / 8388608.0)) - 1.0f;
}

typedef struct attention_case {
    const char *name;
    int n_heads, n_q, n_k, d_qk, d_v;
    bool causal, shared_kv;
    int q_pos0;
    float scale_factor; /* scale = scale_factor / sqrt(d_qk) */
    int query_step;     /* check every query_step-th query against the reference */
} attention_case;

/* Max |out - ref| / max |ref| over the checked queries. */
static double reference_error(const dmllm_attention_args *a, int query_step) {
    double *scores = malloc(sizeof(double) * (size_t)a->n_k);
    double *expected = malloc(sizeof(double) * (size_t)a->d_v);
    double max_difference = 0.0, max_reference = 0.0;
    for (int h = 0; h < a->n_heads; h++) {
        for (int i = 0; i < a->n_q; i += query_step) {
            const float *q = a->q + h * a->q_head_stride + i * a->q_row_stride;
            const int visible = a->causal ? (a->q_pos0 + i + 1 < a->n_k ? a->q_pos0 + i + 1 : a->n_k) : a->n_k;
            double max_score = -INFINITY, sum = 0.0;
            for (int j = 0; j < visible; j++) {
                const float *k = a->k + h * a->k_head_stride + j * a->k_row_stride;
                double dot = 0.0;
                for (int d = 0; d < a->d_qk; d++) dot += (double)q[d] * k[d];
                scores[j] = dot * a->scale;
                max_score = fmax(max_score, scores[j]);
            }
            for (int c = 0; c < a->d_v; c++) expected[c] = 0.0;
            for (int j = 0; j < visible; j++) {
                const double p = exp(scores[j] - max_score);
                const float *v = a->v + h * a->v_head_stride + j * a->v_row_stride;
                sum += p;
                for (int c = 0; c < a->d_v; c++) expected[c] += p * v[c];
            }
            const float *out = a->out + h * a->out_head_stride + i * a->out_row_stride;
            for (int c = 0; c < a->d_v; c++) {
                max_reference = fmax(max_reference, fabs(expected[c] / sum));
                max_difference = fmax(max_difference, fabs(expected[c] / sum - out[c]));
            }
        }
    }
    free(scores);
    free(expected);
    return max_difference / max_reference;
}

static long peak_rss_kb(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

/* Runs one case; q/k/v are interleaved by head ([token][head][d]) as the projections produce them,
 * or one shared K whose first d_v columns are V (absorbed MLA). Returns the relative error. */
static double run_case(const attention_case *c, size_t *scratch_bytes, long *rss_growth_kb) {
    const int64_t q_row = (int64_t)c->n_heads * c->d_qk;
    const int64_t k_row = c->shared_kv ? c->d_qk : (int64_t)c->n_heads * c->d_qk;
    const int64_t v_row = c->shared_kv ? c->d_qk : (int64_t)c->n_heads * c->d_v;
    const int64_t out_row = (int64_t)c->n_heads * c->d_v + 5; /* padded rows: strides are honoured */
    float *q = malloc(sizeof(float) * (size_t)(c->n_q * q_row));
    float *k = malloc(sizeof(float) * (size_t)(c->n_k * k_row));
    float *v = c->shared_kv ? k : malloc(sizeof(float) * (size_t)(c->n_k * v_row));
    float *out = malloc(sizeof(float) * (size_t)(c->n_q * out_row));
    for (int64_t i = 0; i < c->n_q * q_row; i++) q[i] = random_uniform();
    for (int64_t i = 0; i < c->n_k * k_row; i++) k[i] = random_uniform();
    if (!c->shared_kv) for (int64_t i = 0; i < c->n_k * v_row; i++) v[i] = random_uniform();
    for (int64_t i = 0; i < c->n_q * out_row; i++) out[i] = NAN;

    const dmllm_attention_args args = {
        .n_heads = c->n_heads, .n_q = c->n_q, .n_k = c->n_k, .d_qk = c->d_qk, .d_v = c->d_v,
        .scale = c->scale_factor / sqrtf((float)c->d_qk),
        .q = q, .q_row_stride = q_row, .q_head_stride = c->d_qk,
        .k = k, .k_row_stride = k_row, .k_head_stride = c->shared_kv ? 0 : c->d_qk,
        .v = v, .v_row_stride = v_row, .v_head_stride = c->shared_kv ? 0 : c->d_v,
        .out = out, .out_row_stride = out_row, .out_head_stride = c->d_v,
        .causal = c->causal, .q_pos0 = c->q_pos0};
    const long rss_before = peak_rss_kb();
    CHECK_OK(dmllm_attention(&args));
    if (rss_growth_kb) *rss_growth_kb = peak_rss_kb() - rss_before;
    if (scratch_bytes) *scratch_bytes = dmllm_attention_scratch_bytes(&args);
    bool padding_untouched = true;
    for (int i = 0; i < c->n_q; i++) padding_untouched = padding_untouched && isnan(out[i * out_row + out_row - 1]);
    CHECK_MSG(padding_untouched, "%s: wrote outside the output rows", c->name);
    const double error = reference_error(&args, c->query_step);
    free(q);
    free(k);
    if (!c->shared_kv) free(v);
    free(out);
    return error;
}

static const attention_case cases[] = {
    {"vision window", 16, 64, 64, 72, 72, false, false, 0, 1.0f, 1},
    {"bidirectional odd", 3, 131, 259, 33, 17, false, false, 0, 3.0f, 1},
    {"causal q_pos0 130", 4, 70, 200, 64, 48, true, false, 130, 2.0f, 1},
    {"causal from 0", 2, 150, 150, 40, 40, true, false, 0, 1.0f, 1},
    {"causal n_q > n_k - q_pos0", 2, 50, 40, 24, 24, true, false, 10, 1.0f, 1},
    {"shared kv MLA prefill", 5, 37, 170, 576, 512, true, true, 133, 1.0f, 1},
    {"shared kv MLA decode", 16, 1, 301, 576, 512, true, true, 300, 1.0f, 1},
    {"n_k = 1", 3, 9, 1, 20, 30, false, false, 0, 1.0f, 1},
    {"causal single query", 2, 1, 1, 16, 16, true, false, 0, 1.0f, 1},
};

static void run_all(const char *path) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double error = run_case(&cases[i], NULL, NULL);
        printf("%s %s: relative error %.3g\n", path, cases[i].name, error);
        CHECK_MSG(error < 2e-6, "%s %s: relative error %.3g", path, cases[i].name, error);
    }
}

/* n_k = 3000 causal: scratch is independent of n_k and the peak RSS does not grow by anything
 * like a score matrix (4 heads x 3000 x 3000 floats = 144 MB). */
static void test_long_sequence(void) {
    const attention_case short_case = {"causal 300", 4, 300, 300, 64, 64, true, false, 0, 1.0f, 7};
    const attention_case long_case = {"causal 3000", 4, 3000, 3000, 64, 64, true, false, 0, 1.0f, 97};
    size_t short_scratch = 0, long_scratch = 0;
    long rss_growth_kb = 0;
    CHECK(run_case(&short_case, &short_scratch, NULL) < 2e-6);
    const double error = run_case(&long_case, &long_scratch, &rss_growth_kb);
    printf("n_k = 3000: relative error %.3g, scratch %zu bytes, peak RSS growth %ld kB\n", error, long_scratch,
           rss_growth_kb);
    CHECK(error < 2e-6);
    CHECK(long_scratch == short_scratch);
    CHECK(long_scratch < 4u << 20);
    CHECK(rss_growth_kb < 16 * 1024);
}

static void test_bad_arguments(void) {
    float buffer[16] = {0};
    dmllm_attention_args args = {.n_heads = 1, .n_q = 1, .n_k = 1, .d_qk = 4, .d_v = 4, .scale = 1.0f,
                                 .q = buffer, .k = buffer, .v = buffer, .out = buffer};
    args.n_k = 0;
    CHECK_STATUS(dmllm_attention(&args), DMLLM_ERR_SHAPE);
    args.n_k = 1;
    args.causal = true;
    args.q_pos0 = -1;
    CHECK_STATUS(dmllm_attention(&args), DMLLM_ERR_INVALID_ARGUMENT);
    args.q_pos0 = 0;
    args.k = NULL;
    CHECK_STATUS(dmllm_attention(&args), DMLLM_ERR_INVALID_ARGUMENT);
    args.k = buffer;
    args.n_q = 0;
    CHECK_OK(dmllm_attention(&args));
}

int main(void) {
    const bool avx512 = dmllm_kernels_use_avx512();
    if (avx512) run_all("avx512");
    dmllm_kernels_force_generic(true);
    run_all("generic");
    dmllm_kernels_force_generic(false);
    test_long_sequence();
    test_bad_arguments();
    return test_finish("test_attention");
}
