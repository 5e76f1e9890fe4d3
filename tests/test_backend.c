/*
 * test_backend.c: every matmul path (onednn-bf16, onednn-f32, openblas-f32, int8 weights) against a
 * double reference for several M, shapes (incl. sizes that are not multiples of 16), weight dtypes,
 * row strides and with/without bias; compute selection and its fallback. Run a second time by
 * tests/backend.cmake with ONEDNN_MAX_CPU_ISA=AVX2 (DMLLM_EXPECT_NO_BF16=1), where AUTO must
 * fall back to onednn-f32 and explicit bf16 and int8 requests must fail.
 */
#include "testutil.h"

#include "backend.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 12345;
static float random_uniform(void) { /* [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) * (1.0 / 8388608.0)) - 1.0f;
}

static void store_weight(dmllm_dtype dtype, void *w, size_t index, float value) {
    if (dtype == DMLLM_DTYPE_F32) {
        ((float *)w)[index] = value;
    } else if (dtype == DMLLM_DTYPE_BF16) {
        ((uint16_t *)w)[index] = dmllm_f32_to_bf16(value);
    } else { /* F16 bits drawn directly: sign, exponent 2^-5..2^0, random mantissa */
        const uint32_t bits = (uint32_t)((value + 1.0f) * 32768.0f);
        ((uint16_t *)w)[index] = (uint16_t)(((bits & 1u) << 15) | ((10u + bits % 6u) << 10) | ((bits >> 3) & 0x3ffu));
    }
}

static float load_weight(dmllm_dtype dtype, const void *w, size_t index) {
    if (dtype == DMLLM_DTYPE_F32) return ((const float *)w)[index];
    if (dtype == DMLLM_DTYPE_BF16) return dmllm_bf16_to_f32(((const uint16_t *)w)[index]);
    return dmllm_f16_to_f32(((const uint16_t *)w)[index]);
}

/* v[i] = round(v[i] * 127 / max|v|) for n floats (nearest even, as the library); returns the scale
 * max|v| / 127 that brings them back. */
static double quantise(float *v, int64_t n) {
    float max_abs = 0.0f;
    for (int64_t i = 0; i < n; i++) max_abs = fmaxf(max_abs, fabsf(v[i]));
    const float inverse = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
    for (int64_t i = 0; i < n; i++) v[i] = (float)lrintf(v[i] * inverse);
    return max_abs / 127.0f;
}

/* max |y - ref| / max|ref| over the output, with ref in double from the (converted) weights and
 * the inputs rounded as the path rounds them (bf16 path: x rounded to bf16; int8 weights: W per
 * row and x per row quantised to int8, so only the float rounding of the scales differs). */
static double check_linear(const dmllm_backend *backend, dmllm_dtype dtype, int64_t m, int64_t out, int64_t in,
                           int64_t ld, bool with_bias, bool *ran_gemv) {
    const size_t element = dmllm_dtype_size(dtype);
    void *w = malloc((size_t)(out * ld) * element); /* [out, ld] */
    float *x = malloc((size_t)(m * in) * sizeof(float));
    float *y = malloc((size_t)(m * out) * sizeof(float));
    float *bias = malloc((size_t)out * sizeof(float));
    for (int64_t i = 0; i < out * ld; i++) store_weight(dtype, w, (size_t)i, random_uniform());
    for (int64_t i = 0; i < m * in; i++) x[i] = random_uniform();
    for (int64_t i = 0; i < out; i++) bias[i] = random_uniform();
    const bool int8 = dmllm_backend_weights(backend) == DMLLM_WEIGHTS_INT8;
    const bool bf16 = !int8 && dmllm_backend_compute(backend) == DMLLM_COMPUTE_BF16;
    double max_error = INFINITY;
    float *w_row = malloc((size_t)in * sizeof(float)), *x_row = malloc((size_t)in * sizeof(float)); /* [in] */
    dmllm_linear *linear = NULL;
    CHECK_OK(dmllm_linear_create(backend, dtype, w, out, in, ld, with_bias ? bias : NULL, &linear));
    if (linear) {
        CHECK(dmllm_linear_out_features(linear) == out && dmllm_linear_in_features(linear) == in);
        if (ran_gemv) *ran_gemv = dmllm_linear_runs_as_gemv(linear, m);
        CHECK_OK(dmllm_linear_forward(linear, x, m, y));
        double max_reference = 0.0, max_difference = 0.0;
        for (int64_t r = 0; r < m; r++) {
            memcpy(x_row, x + r * in, (size_t)in * sizeof(float));
            const double x_scale = int8 ? quantise(x_row, in) : 1.0;
            for (int64_t o = 0; o < out; o++) {
                for (int64_t i = 0; i < in; i++) w_row[i] = load_weight(dtype, w, (size_t)(o * ld + i));
                const double w_scale = int8 ? quantise(w_row, in) : 1.0;
                double sum = 0.0;
                for (int64_t i = 0; i < in; i++) {
                    float weight = w_row[i], input = x_row[i];
                    if (bf16) {
                        weight = dmllm_bf16_to_f32(dmllm_f32_to_bf16(weight));
                        input = dmllm_bf16_to_f32(dmllm_f32_to_bf16(input));
                    }
                    sum += (double)weight * input;
                }
                const double reference = sum * x_scale * w_scale + (with_bias ? bias[o] : 0.0);
                max_reference = fmax(max_reference, fabs(reference));
                max_difference = fmax(max_difference, fabs(reference - y[r * out + o]));
            }
        }
        max_error = max_difference / max_reference;
    }
    dmllm_linear_free(linear);
    free(w_row);
    free(x_row);
    free(w);
    free(x);
    free(y);
    free(bias);
    return max_error;
}

static void test_path(dmllm_compute_type compute, dmllm_weights_type weights, const char *name) {
    dmllm_backend *backend = NULL;
    CHECK_OK(dmllm_backend_create_with_weights(compute, weights, &backend));
    if (!backend) return;
    CHECK(strcmp(dmllm_backend_name(backend), name) == 0);
    CHECK(weights == DMLLM_WEIGHTS_AUTO || dmllm_backend_weights(backend) == weights);
    /* bf16: the reference rounds the inputs as the path does, so only accumulation order differs. */
    const double tolerance = 1e-5;
    static const int64_t ms[] = {1, 3, 17, 64, 300};
    static const int64_t shapes[][3] = {{37, 53, 53}, {64, 96, 100}, {130, 257, 260}};
    static const dmllm_dtype dtypes[] = {DMLLM_DTYPE_F32, DMLLM_DTYPE_F16, DMLLM_DTYPE_BF16};
    double worst = 0.0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            const dmllm_dtype dtype = dtypes[(s + mi) % 3];
            const bool with_bias = (s + mi) % 2 == 0;
            const int64_t ld = mi % 2 ? shapes[s][2] : shapes[s][1];
            const double error =
                check_linear(backend, dtype, ms[mi], shapes[s][0], shapes[s][1], ld, with_bias, NULL);
            CHECK_MSG(error < tolerance, "%s %s m=%lld out=%lld in=%lld ld=%lld bias=%d: relative error %.3g", name,
                      dmllm_dtype_name(dtype), (long long)ms[mi], (long long)shapes[s][0], (long long)shapes[s][1],
                      (long long)ld, with_bias, error);
            worst = fmax(worst, error);
        }
    }
    /* M above the internal chunk (512 rows): chunked execution with a remainder chunk */
    const double error = check_linear(backend, DMLLM_DTYPE_BF16, 1100, 24, 40, 40, true, NULL);
    CHECK_MSG(error < tolerance, "%s m=1100: relative error %.3g", name, error);
    worst = fmax(worst, error);
    /* Decoding shapes: 1-4 rows, which bf16 weights on an AVX512-BF16 CPU run through gemv.c (N past
     * a 64-column block, K padded to 32, the model's K = 2560, a bias or none). */
    static const int64_t decode_shapes[][2] = {{200, 2560}, {70, 100}, {512, 128}, {64, 31}};
    int gemv_runs = 0;
    for (size_t s = 0; s < sizeof decode_shapes / sizeof decode_shapes[0]; s++) {
        for (int64_t m = 1; m <= 5; m++) {
            bool ran_gemv = false;
            const double decode_error = check_linear(backend, dtypes[(s + (size_t)m) % 3], m, decode_shapes[s][0],
                                                     decode_shapes[s][1], decode_shapes[s][1], m % 2 == 1, &ran_gemv);
            CHECK_MSG(decode_error < tolerance, "%s m=%lld out=%lld in=%lld (gemv %d): relative error %.3g", name,
                      (long long)m, (long long)decode_shapes[s][0], (long long)decode_shapes[s][1], ran_gemv,
                      decode_error);
            CHECK_MSG(!ran_gemv || m <= 4, "%s: %lld rows ran as a gemv", name, (long long)m);
            gemv_runs += ran_gemv;
            worst = fmax(worst, decode_error);
        }
    }
    const bool gemv_expected = strcmp(name, "onednn-bf16") == 0 && dmllm_backend_weights(backend) != DMLLM_WEIGHTS_INT8 &&
                               dmllm_kernels_use_avx512() && __builtin_cpu_supports("avx512bf16");
    CHECK_MSG(gemv_expected ? gemv_runs == 16 : gemv_runs == 0, "%s: %d of 16 decoding shapes ran as a gemv%s", name,
              gemv_runs, gemv_expected ? "" : " (none expected here)");
    printf("%s, %s weights: max relative error %.3g, %d decoding shapes through gemv.c\n", name,
           dmllm_backend_weights_name(backend), worst, gemv_runs);
    dmllm_backend_free(backend);
}

/* dmllm_linear_forward_each on strided inputs and outputs (the per-head projections of MLA) equals
 * dmllm_linear_forward on gathered rows, for 1-5 rows: side by side through gemv.c where it applies,
 * else one after another. Heads of 96 -> 128 with a 32-float gap between inputs and outputs. */
static void test_forward_each(dmllm_compute_type compute) {
    enum { HEADS = 5, IN = 96, OUT = 128, X_STEP = IN + 32, Y_STEP = OUT + 32, MAX_ROWS = 5 };
    dmllm_backend *backend = NULL;
    CHECK_OK(dmllm_backend_create(compute, &backend));
    if (!backend) return;
    dmllm_linear *linears[HEADS] = {NULL};
    static float w[OUT * IN], bias[OUT], x[MAX_ROWS * HEADS * X_STEP], y[MAX_ROWS * HEADS * Y_STEP], one[MAX_ROWS * OUT],
        gathered[MAX_ROWS * IN];
    for (int h = 0; h < HEADS; h++) {
        for (int i = 0; i < OUT * IN; i++) w[i] = random_uniform();
        for (int i = 0; i < OUT; i++) bias[i] = random_uniform();
        CHECK_OK(dmllm_linear_create(backend, DMLLM_DTYPE_F32, w, OUT, IN, IN, h % 2 ? bias : NULL, &linears[h]));
    }
    for (int i = 0; i < MAX_ROWS * HEADS * X_STEP; i++) x[i] = random_uniform();
    int side_by_side = 0;
    for (int64_t m = 1; m <= MAX_ROWS; m++) {
        memset(y, 0, sizeof y);
        CHECK_OK(dmllm_linear_forward_each(linears, HEADS, m, x, X_STEP, HEADS * X_STEP, y, Y_STEP, HEADS * Y_STEP));
        side_by_side += dmllm_linear_runs_as_gemv(linears[0], m);
        double worst = 0.0;
        for (int h = 0; h < HEADS; h++) {
            for (int64_t r = 0; r < m; r++) memcpy(gathered + r * IN, x + r * HEADS * X_STEP + h * X_STEP, sizeof(float) * IN);
            CHECK_OK(dmllm_linear_forward(linears[h], gathered, m, one));
            for (int64_t r = 0; r < m; r++)
                for (int o = 0; o < OUT; o++)
                    worst = fmax(worst, fabs(one[r * OUT + o] - y[r * HEADS * Y_STEP + h * Y_STEP + o]));
        }
        /* The gaps stay untouched. */
        CHECK(y[Y_STEP - 1] == 0.0f && y[HEADS * Y_STEP - 1] == 0.0f);
        CHECK_MSG(worst == 0.0, "%s forward_each m=%lld: differs from forward by %.3g", dmllm_backend_name(backend),
                  (long long)m, worst);
    }
    printf("%s forward_each: 5 row counts, %d side by side\n", dmllm_backend_name(backend), side_by_side);
    for (int h = 0; h < HEADS; h++) dmllm_linear_free(linears[h]);
    CHECK_STATUS(dmllm_linear_forward_each(NULL, 1, 1, x, 0, 0, y, 0, 0), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_backend_free(backend);
}

/* Without rounding x in the reference, bf16 activations cost ~2^-9 relative per product. */
static void test_bf16_against_f32_reference(void) {
    dmllm_backend *backend = NULL;
    CHECK_OK(dmllm_backend_create(DMLLM_COMPUTE_BF16, &backend));
    if (!backend) return;
    float w[48 * 80], x[5 * 80], y[5 * 48];
    for (int i = 0; i < 48 * 80; i++) w[i] = random_uniform();
    for (int i = 0; i < 5 * 80; i++) x[i] = random_uniform();
    dmllm_linear *linear = NULL;
    CHECK_OK(dmllm_linear_create(backend, DMLLM_DTYPE_F32, w, 48, 80, 80, NULL, &linear));
    if (linear) {
        CHECK_OK(dmllm_linear_forward(linear, x, 5, y));
        double max_difference = 0.0, max_reference = 0.0;
        for (int r = 0; r < 5; r++) {
            for (int o = 0; o < 48; o++) {
                double reference = 0.0;
                for (int i = 0; i < 80; i++) reference += (double)w[o * 80 + i] * x[r * 80 + i];
                max_reference = fmax(max_reference, fabs(reference));
                max_difference = fmax(max_difference, fabs(reference - y[r * 48 + o]));
            }
        }
        printf("onednn-bf16 vs unrounded f32 reference: relative error %.3g\n", max_difference / max_reference);
        CHECK(max_difference / max_reference < 1e-2);
    }
    dmllm_linear_free(linear);
    dmllm_backend_free(backend);
}

static void test_bad_arguments(void) {
    dmllm_backend *backend = NULL;
    CHECK_OK(dmllm_backend_create(DMLLM_COMPUTE_F32, &backend));
    if (!backend) return;
    float w[4] = {1, 2, 3, 4}, x[2] = {1, 1}, y[2];
    dmllm_linear *linear = NULL;
    CHECK_STATUS(dmllm_linear_create(backend, DMLLM_DTYPE_F32, w, 2, 2, 1, NULL, &linear), DMLLM_ERR_SHAPE);
    CHECK(linear == NULL);
    CHECK_STATUS(dmllm_linear_create(backend, DMLLM_DTYPE_I32, w, 2, 2, 2, NULL, &linear), DMLLM_ERR_UNSUPPORTED);
    CHECK_STATUS(dmllm_backend_create((dmllm_compute_type)7, &(dmllm_backend *){NULL}), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_backend *other = NULL;
    CHECK_STATUS(dmllm_backend_create_with_weights(DMLLM_COMPUTE_F32, (dmllm_weights_type)9, &other),
                 DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "weights type 9"));
    CHECK_STATUS(dmllm_backend_create_with_weights(DMLLM_COMPUTE_F32, DMLLM_WEIGHTS_BF16, &other),
                 DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "bf16 weights conflict with compute onednn-f32"));
    CHECK_STATUS(dmllm_backend_create_with_weights(DMLLM_COMPUTE_BF16, DMLLM_WEIGHTS_F32, &other),
                 DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_backend_create_with_weights(DMLLM_COMPUTE_OPENBLAS, DMLLM_WEIGHTS_INT8, &other),
                 DMLLM_ERR_UNSUPPORTED);
    CHECK(other == NULL && strstr(dmllm_last_error(), "openblas"));
    CHECK_OK(dmllm_backend_create_with_weights(DMLLM_COMPUTE_OPENBLAS, DMLLM_WEIGHTS_F32, &other));
    CHECK(other && dmllm_backend_weights(other) == DMLLM_WEIGHTS_F32);
    dmllm_backend_free(other);
    CHECK_OK(dmllm_linear_create(backend, DMLLM_DTYPE_F32, w, 2, 2, 2, NULL, &linear));
    CHECK_STATUS(dmllm_linear_forward(linear, x, -1, y), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_OK(dmllm_linear_forward(linear, x, 0, y));
    CHECK_OK(dmllm_linear_forward(linear, x, 1, y));
    CHECK(y[0] == 3.0f && y[1] == 7.0f);
    dmllm_linear_free(linear);
    dmllm_backend_free(backend);
}

/* int8 weights: exact int32 sums of the quantised operands (vectorised and scalar quantisation,
 * with bf16 and f32 for the unquantised linears); refused without VNNI (the AVX2 run). */
static void test_int8(bool expect_no_vnni) {
    dmllm_backend *backend = NULL;
    if (expect_no_vnni) {
        CHECK_STATUS(dmllm_backend_create_with_weights(DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_INT8, &backend),
                     DMLLM_ERR_UNSUPPORTED);
        CHECK(backend == NULL && strstr(dmllm_last_error(), "int8") && strstr(dmllm_last_error(), "VNNI"));
        return;
    }
    test_path(DMLLM_COMPUTE_F32, DMLLM_WEIGHTS_INT8, "onednn-f32");
    dmllm_kernels_force_generic(true); /* the scalar quantisation */
    test_path(DMLLM_COMPUTE_F32, DMLLM_WEIGHTS_INT8, "onednn-f32");
    dmllm_kernels_force_generic(false);
    CHECK_OK(dmllm_backend_create_with_weights(DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_INT8, &backend));
    if (!backend) return;
    /* the unquantised twin keeps the compute type: exact on f32-representable inputs */
    float w[4] = {1, 2, 3, 4}, x[2] = {1, 1}, y[2];
    dmllm_linear *linear = NULL;
    CHECK_OK(dmllm_linear_create_unquantised(backend, DMLLM_DTYPE_F32, w, 2, 2, 2, NULL, &linear));
    if (linear) CHECK_OK(dmllm_linear_forward(linear, x, 1, y));
    CHECK(linear && y[0] == 3.0f && y[1] == 7.0f);
    dmllm_linear_free(linear);
    dmllm_backend_free(backend);
}

static void test_environment_override(void) {
    const char *saved = getenv("DMLLM_COMPUTE");
    dmllm_backend *backend = NULL;
    setenv("DMLLM_COMPUTE", "openblas", 1);
    CHECK_OK(dmllm_backend_create(DMLLM_COMPUTE_AUTO, &backend));
    CHECK(backend && strcmp(dmllm_backend_name(backend), "openblas-f32") == 0);
    dmllm_backend_free(backend);
    /* an explicit request wins over the environment */
    CHECK_OK(dmllm_backend_create(DMLLM_COMPUTE_F32, &backend));
    CHECK(backend && dmllm_backend_compute(backend) == DMLLM_COMPUTE_F32);
    dmllm_backend_free(backend);
    setenv("DMLLM_COMPUTE", "fp8", 1);
    CHECK_STATUS(dmllm_backend_create(DMLLM_COMPUTE_AUTO, &backend), DMLLM_ERR_INVALID_ARGUMENT);
    if (saved) setenv("DMLLM_COMPUTE", saved, 1);
    else unsetenv("DMLLM_COMPUTE");
}

int main(void) {
    const bool expect_no_bf16 = getenv("DMLLM_EXPECT_NO_BF16") != NULL;
    const bool native_bf16 = !expect_no_bf16 && __builtin_cpu_supports("avx512bf16");
    dmllm_backend *backend = NULL;
    CHECK_OK(dmllm_backend_create(DMLLM_COMPUTE_AUTO, &backend));
    if (backend) {
        printf("AUTO resolved to %s\n", dmllm_backend_name(backend));
        CHECK(strcmp(dmllm_backend_name(backend), native_bf16 ? "onednn-bf16" : "onednn-f32") == 0);
    }
    dmllm_backend_free(backend);

    if (expect_no_bf16) {
        backend = NULL;
        CHECK_STATUS(dmllm_backend_create(DMLLM_COMPUTE_BF16, &backend), DMLLM_ERR_UNSUPPORTED);
        CHECK(backend == NULL);
    } else {
        test_path(DMLLM_COMPUTE_BF16, DMLLM_WEIGHTS_AUTO, "onednn-bf16");
        dmllm_kernels_force_generic(true); /* the scalar f32 -> bf16 activation rounding */
        test_path(DMLLM_COMPUTE_BF16, DMLLM_WEIGHTS_AUTO, "onednn-bf16");
        dmllm_kernels_force_generic(false);
        test_bf16_against_f32_reference();
        test_forward_each(DMLLM_COMPUTE_BF16);
    }
    test_forward_each(DMLLM_COMPUTE_F32);
    test_path(DMLLM_COMPUTE_F32, DMLLM_WEIGHTS_AUTO, "onednn-f32");
    test_path(DMLLM_COMPUTE_OPENBLAS, DMLLM_WEIGHTS_AUTO, "openblas-f32");
    test_int8(expect_no_bf16);
    test_bad_arguments();
    test_environment_override();
    return test_finish("test_backend");
}
