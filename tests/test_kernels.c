/*
 * test_kernels.c: every kernel of kernels.h against a double reference, on both the AVX-512 and
 * the portable path in one run (dmllm_kernels_force_generic), with odd sizes for the vector tails,
 * strided rows, in-place use and the activations over their whole useful range.
 *
 * Activation error measure: |y - ref| / max(|ref|, 1e-3 |x|): relative where the output is not
 * vanishingly small, and relative to the input scale in the far negative tail, where the float
 * argument's own rounding dominates any implementation. Measured (Zen 5): AVX-512 gelu_tanh
 * 9.6e-7, gelu_erf 1.06e-6, silu 1.5e-7; portable (libm expf/erfcf) gelu_tanh 1.05e-6, gelu_erf
 * 8.6e-7, silu 1.4e-7. The ~1e-6 of the gelus is the float rounding of the tanh/erf argument
 * (about 3 ulp of z times |2z|), which no float evaluation of the formula avoids.
 */
#include "testutil.h"

#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 777;
static float random_uniform(void) { /* [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) * (1.0 / 8388608.0)) - 1.0f;
}

static double max_relative(const float *y, const double *reference, int64_t n) {
    double max_reference = 0.0, max_difference = 0.0;
    for (int64_t i = 0; i < n; i++) {
        max_reference = fmax(max_reference, fabs(reference[i]));
        max_difference = fmax(max_difference, fabs(reference[i] - y[i]));
    }
    return max_difference / max_reference;
}

static void test_norms(const char *path) {
    enum { ROWS = 37, DIM = 1155, STRIDE = 1200 };
    float *x = malloc(sizeof(float) * ROWS * STRIDE), *y = malloc(sizeof(float) * ROWS * STRIDE);
    float w[DIM], b[DIM];
    double *reference = malloc(sizeof(double) * ROWS * DIM);
    float *y_packed = malloc(sizeof(float) * ROWS * DIM);
    for (int i = 0; i < ROWS * STRIDE; i++) x[i] = 3.0f + 2.0f * random_uniform(); /* offset mean: tests centring */
    for (int i = 0; i < DIM; i++) w[i] = random_uniform(), b[i] = random_uniform();
    const float eps = 1e-6f;

    for (int r = 0; r < ROWS; r++) {
        double ss = 0.0;
        for (int i = 0; i < DIM; i++) ss += (double)x[r * STRIDE + i] * x[r * STRIDE + i];
        const double scale = 1.0 / sqrt(ss / DIM + eps);
        for (int i = 0; i < DIM; i++) reference[r * DIM + i] = x[r * STRIDE + i] * scale * w[i];
    }
    dmllm_rmsnorm(x, STRIDE, w, y, STRIDE, ROWS, DIM, eps);
    for (int r = 0; r < ROWS; r++) memcpy(y_packed + r * DIM, y + r * STRIDE, sizeof(float) * DIM);
    double error = max_relative(y_packed, reference, ROWS * DIM);
    printf("%s rmsnorm: max relative error %.3g\n", path, error);
    CHECK_MSG(error < 1e-6, "%s rmsnorm error %.3g", path, error);
    /* in place, contiguous rows */
    float *z = malloc(sizeof(float) * ROWS * DIM);
    for (int r = 0; r < ROWS; r++) memcpy(z + r * DIM, x + r * STRIDE, sizeof(float) * DIM);
    dmllm_rmsnorm(z, DIM, w, z, DIM, ROWS, DIM, eps);
    CHECK(max_relative(z, reference, ROWS * DIM) < 1e-6);

    for (int r = 0; r < ROWS; r++) memcpy(z + r * DIM, x + r * STRIDE, sizeof(float) * DIM);
    for (int r = 0; r < ROWS; r++) {
        const float *row = z + r * DIM;
        double mean = 0.0, variance = 0.0;
        for (int i = 0; i < DIM; i++) mean += row[i];
        mean /= DIM;
        for (int i = 0; i < DIM; i++) variance += (row[i] - mean) * (row[i] - mean);
        variance /= DIM;
        for (int i = 0; i < DIM; i++) reference[r * DIM + i] = (row[i] - mean) / sqrt(variance + eps) * w[i] + b[i];
    }
    dmllm_layernorm(z, w, b, z, ROWS, DIM, eps); /* in place */
    error = max_relative(z, reference, ROWS * DIM);
    printf("%s layernorm: max relative error %.3g\n", path, error);
    CHECK_MSG(error < 1e-6, "%s layernorm error %.3g", path, error);
    free(x);
    free(y);
    free(z);
    free(y_packed);
    free(reference);
}

typedef enum { GELU_TANH, GELU_ERF, SILU } activation;

static double activation_reference(activation kind, double x) {
    switch (kind) {
    case GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case GELU_ERF: return 0.5 * x * erfc(-x / sqrt(2.0));
    case SILU: break;
    }
    return x / (1.0 + exp(-x));
}

/* Sweeps x over [-range, range] (odd count: vector tails) and returns the max error as defined above. */
static double activation_error(activation kind, double range) {
    enum { N = 200003 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N), *ones = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = (float)(-range + 2.0 * range * i / (N - 1)), ones[i] = 1.0f;
    memcpy(y, x, sizeof(float) * N);
    if (kind == GELU_TANH) dmllm_gelu_tanh(y, N);
    else if (kind == GELU_ERF) dmllm_gelu_erf(y, N);
    else dmllm_silu_mul(y, ones, y, N); /* out aliases gate */
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        const double reference = activation_reference(kind, x[i]);
        const double error = fabs(y[i] - reference) / fmax(fabs(reference), 1e-3 * fabs(x[i]));
        if (x[i] != 0.0f) worst = fmax(worst, error);
        else worst = fmax(worst, fabs(y[i]));
    }
    free(x);
    free(y);
    free(ones);
    return worst;
}

static void test_activations(const char *path) {
    static const char *const names[] = {"gelu_tanh", "gelu_erf", "silu"};
    for (int kind = GELU_TANH; kind <= SILU; kind++) {
        const double core = activation_error((activation)kind, 4.0);
        const double wide = activation_error((activation)kind, 90.0);
        printf("%s %s: max error %.3g on [-4, 4], %.3g on [-90, 90]\n", path, names[kind], core, wide);
        CHECK_MSG(core < 1.5e-6, "%s %s error %.3g on [-4, 4]", path, names[kind], core);
        CHECK_MSG(wide < 1.5e-6, "%s %s error %.3g on [-90, 90]", path, names[kind], wide);
    }
    /* silu_mul with distinct gate and up, out aliasing up */
    enum { N = 1001 };
    float gate[N], up[N];
    double reference[N];
    for (int i = 0; i < N; i++) {
        gate[i] = 8.0f * random_uniform(), up[i] = random_uniform();
        reference[i] = activation_reference(SILU, gate[i]) * up[i];
    }
    dmllm_silu_mul(gate, up, up, N);
    CHECK(max_relative(up, reference, N) < 1e-6);

    float y[N], x[N];
    for (int i = 0; i < N; i++) y[i] = random_uniform(), x[i] = random_uniform(), reference[i] = (double)y[i] + x[i];
    dmllm_add(y, x, N);
    bool exact = true;
    for (int i = 0; i < N; i++) exact = exact && y[i] == (float)reference[i];
    CHECK(exact);
}

static void test_rope(const char *path, dmllm_rope_style style, int dim) {
    enum { ROWS = 5, HEADS = 3 };
    const int half = dim / 2;
    const int64_t head_stride = dim + 3, row_stride = HEADS * head_stride + 1;
    float *x = malloc(sizeof(float) * ROWS * row_stride), *original = malloc(sizeof(float) * ROWS * row_stride);
    float *cos_table = malloc(sizeof(float) * ROWS * half), *sin_table = malloc(sizeof(float) * ROWS * half);
    for (int i = 0; i < ROWS * row_stride; i++) original[i] = x[i] = random_uniform();
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < half; i++) {
            const double angle = (r + 1) * pow(10000.0, -2.0 * i / dim);
            cos_table[r * half + i] = (float)cos(angle);
            sin_table[r * half + i] = (float)sin(angle);
        }
    }
    dmllm_rope_apply(x, ROWS, row_stride, HEADS, head_stride, dim, cos_table, sin_table, style);
    double max_error = 0.0;
    bool untouched = true;
    for (int r = 0; r < ROWS; r++) {
        for (int h = 0; h < HEADS; h++) {
            const float *in = original + r * row_stride + h * head_stride, *got = x + r * row_stride + h * head_stride;
            for (int i = 0; i < half; i++) {
                const int a = style == DMLLM_ROPE_ROTATE_HALF ? i : 2 * i;
                const int b = style == DMLLM_ROPE_ROTATE_HALF ? i + half : 2 * i + 1;
                const double c = cos_table[r * half + i], s = sin_table[r * half + i];
                max_error = fmax(max_error, fabs(got[a] - (in[a] * c - in[b] * s)));
                max_error = fmax(max_error, fabs(got[b] - (in[b] * c + in[a] * s)));
            }
            for (int i = dim; i < head_stride && h * head_stride + i < row_stride; i++) untouched = untouched && got[i] == in[i];
        }
    }
    CHECK_MSG(max_error < 1e-6, "%s rope style %d dim %d: error %.3g", path, (int)style, dim, max_error);
    CHECK(untouched);
    free(x);
    free(original);
    free(cos_table);
    free(sin_table);
}

static void run_all(const char *path) {
    test_norms(path);
    test_activations(path);
    static const int dims[] = {2, 30, 64, 72, 128};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        test_rope(path, DMLLM_ROPE_ROTATE_HALF, dims[i]);
        test_rope(path, DMLLM_ROPE_INTERLEAVED, dims[i]);
    }
}

int main(void) {
    const bool avx512 = dmllm_kernels_use_avx512();
    printf("AVX-512 kernels available: %s\n", avx512 ? "yes" : "no");
    if (avx512) run_all("avx512");
    dmllm_kernels_force_generic(true);
    CHECK(!dmllm_kernels_use_avx512());
    run_all("generic");
    dmllm_kernels_force_generic(false);
    CHECK(dmllm_kernels_use_avx512() == avx512);
    return test_finish("test_kernels");
}
