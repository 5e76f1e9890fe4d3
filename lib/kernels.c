/*
 * kernels.c: element-wise and row-wise kernels (norms, activations, RoPE): an AVX-512 version
 * chosen at run time and a portable C version of each. Pure functions on caller buffers; nothing
 * here allocates or keeps state beyond the ISA choice.
 *
 * Accuracy: activations are written so that no step cancels. gelu_tanh(x) = x * sigmoid(2z) and
 * silu(g) = g * sigmoid(g) use one exp; gelu_erf(x) = 0.5 x erfc(-x/sqrt2) uses the Numerical
 * Recipes erfc (fractional error < 1.2e-7) with the exp(-t^2) factor split so t^2 is exact.
 * Max errors measured by test_kernels against double references are listed there.
 */
#include "kernels.h"
#include "vecmath.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements a row loop runs on the calling thread. */
#define PARALLEL_MIN_ELEMENTS 32768

/* ---- ISA choice ------------------------------------------------------------------------------ */

static bool cpu_avx512_allowed;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static atomic_bool forced_generic;

static void detect_isa(void) {
    const char *max_isa = getenv("DMLLM_MAX_ISA");
    const bool generic_requested = max_isa && strcmp(max_isa, "generic") == 0;
    cpu_avx512_allowed = !generic_requested && __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512vl");
}

bool dmllm_kernels_use_avx512(void) {
    pthread_once(&isa_once, detect_isa);
    return cpu_avx512_allowed && !atomic_load(&forced_generic);
}

void dmllm_kernels_force_generic(bool force) { atomic_store(&forced_generic, force); }

static __mmask16 tail_mask(int64_t remaining) {
    return remaining >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << remaining) - 1u);
}

/* ---- norms ----------------------------------------------------------------------------------- */

DMLLM_AVX512 static float sum_avx512(const float *x, int dim) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 64 <= dim; i += 64) {
        for (int k = 0; k < 4; k++) acc[k] = _mm512_add_ps(acc[k], _mm512_loadu_ps(x + i + 16 * k));
    }
    for (; i < dim; i += 16) acc[0] = _mm512_add_ps(acc[0], _mm512_maskz_loadu_ps(tail_mask(dim - i), x + i));
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

/* sum((x - center)^2) */
DMLLM_AVX512 static float sum_squares_avx512(const float *x, int dim, float center) {
    const __m512 c = _mm512_set1_ps(center);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 64 <= dim; i += 64) {
        for (int k = 0; k < 4; k++) {
            const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16 * k), c);
            acc[k] = _mm512_fmadd_ps(d, d, acc[k]);
        }
    }
    for (; i < dim; i += 16) {
        const __mmask16 m = tail_mask(dim - i);
        const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), c);
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

/* y = (x - center) * scale * w (+ b when b != NULL) */
DMLLM_AVX512 static void normalize_row_avx512(const float *x, float center, float scale, const float *w,
                                              const float *b, float *y, int dim) {
    const __m512 c = _mm512_set1_ps(center), s = _mm512_set1_ps(scale);
    for (int i = 0; i < dim; i += 16) {
        const __mmask16 m = tail_mask(dim - i);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), c), s),
                                 _mm512_maskz_loadu_ps(m, w + i));
        if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void rmsnorm_row(const float *x, const float *w, float *y, int dim, float eps, bool avx512) {
    double sum_squares = 0.0;
    if (avx512) {
        sum_squares = sum_squares_avx512(x, dim, 0.0f);
    } else {
        for (int i = 0; i < dim; i++) sum_squares += (double)x[i] * x[i];
    }
    const float scale = (float)(1.0 / sqrt(sum_squares / dim + eps));
    if (avx512) {
        normalize_row_avx512(x, 0.0f, scale, w, NULL, y, dim);
    } else {
        for (int i = 0; i < dim; i++) y[i] = x[i] * scale * w[i];
    }
}

static void layernorm_row(const float *x, const float *w, const float *b, float *y, int dim, float eps, bool avx512) {
    double mean, variance = 0.0;
    if (avx512) {
        mean = (double)sum_avx512(x, dim) / dim;
        variance = (double)sum_squares_avx512(x, dim, (float)mean) / dim;
    } else {
        double sum = 0.0;
        for (int i = 0; i < dim; i++) sum += x[i];
        mean = sum / dim;
        for (int i = 0; i < dim; i++) variance += (x[i] - mean) * (x[i] - mean);
        variance /= dim;
    }
    const float scale = (float)(1.0 / sqrt(variance + eps));
    if (avx512) {
        normalize_row_avx512(x, (float)mean, scale, w, b, y, dim);
    } else {
        for (int i = 0; i < dim; i++) y[i] = (float)((x[i] - mean) * scale) * w[i] + b[i];
    }
}

void dmllm_rmsnorm(const float *x, int64_t x_stride, const float *w, float *y, int64_t y_stride, int64_t rows, int dim,
                   float eps) {
    const bool avx512 = dmllm_kernels_use_avx512();
    #pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < rows; r++) rmsnorm_row(x + r * x_stride, w, y + r * y_stride, dim, eps, avx512);
}

void dmllm_layernorm(const float *x, const float *w, const float *b, float *y, int64_t rows, int dim, float eps) {
    const bool avx512 = dmllm_kernels_use_avx512();
    #pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < rows; r++) layernorm_row(x + r * dim, w, b, y + r * dim, dim, eps, avx512);
}

/* ---- activations ----------------------------------------------------------------------------- */

#define GELU_TANH_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_TANH_K 0.044715f

/* x * sigmoid(a) = x / (1 + e^-a): e^-a overflowing to inf gives the correct limit (-)0. */
DMLLM_AVX512 static inline __m512 mul_sigmoid512(__m512 x, __m512 a) {
    const __m512 e = dmllm_exp512(_mm512_sub_ps(_mm512_setzero_ps(), a));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

DMLLM_AVX512 static void gelu_tanh_avx512(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 v2 = _mm512_mul_ps(v, v);
        const __m512 z = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(2.0f * GELU_TANH_C)),
                                       _mm512_fmadd_ps(v2, _mm512_set1_ps(GELU_TANH_K), _mm512_set1_ps(1.0f)));
        _mm512_mask_storeu_ps(x + i, m, mul_sigmoid512(v, z));
    }
}

/* erfc(t) for t >= 0 (Numerical Recipes erfcc): u exp(-t^2 + P(u)), u = 1/(1 + t/2). t^2 is split
 * into hi + lo exactly so large t keeps full relative accuracy. */
DMLLM_AVX512 static inline __m512 erfc_nonnegative512(__m512 t) {
    const __m512 u = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(t, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    static const float coefficients[] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                         -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f};
    __m512 p = _mm512_set1_ps(coefficients[0]);
    for (int k = 1; k < 10; k++) p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(coefficients[k]));
    const __m512 hi = _mm512_mul_ps(t, t);
    const __m512 lo = _mm512_fmsub_ps(t, t, hi);
    const __m512 tail = dmllm_exp512(_mm512_sub_ps(p, lo));
    return _mm512_mul_ps(_mm512_mul_ps(u, dmllm_exp512(_mm512_sub_ps(_mm512_setzero_ps(), hi))), tail);
}

DMLLM_AVX512 static void gelu_erf_avx512(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 t = _mm512_abs_ps(_mm512_mul_ps(v, _mm512_set1_ps((float)M_SQRT1_2)));
        const __m512 e = erfc_nonnegative512(t); /* erfc(|x|/sqrt2) */
        const __mmask16 positive = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        /* 1 + erf(x/sqrt2) = 2 - erfc(|.|) for x > 0, erfc(|.|) otherwise */
        const __m512 one_plus_erf = _mm512_mask_sub_ps(e, positive, _mm512_set1_ps(2.0f), e);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.5f)), one_plus_erf));
    }
}

DMLLM_AVX512 static void silu_mul_avx512(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(mul_sigmoid512(g, g), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

DMLLM_AVX512 static void add_avx512(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* This thread's part [begin, end) of n elements, in whole 16-float vectors; call inside a parallel region. */
static void thread_slice(int64_t n, int64_t *begin, int64_t *end) {
    const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
    const int64_t step = ((n + threads - 1) / threads + 15) / 16 * 16;
    *begin = thread * step < n ? thread * step : n;
    *end = *begin + step < n ? *begin + step : n;
}

void dmllm_gelu_tanh(float *x, int64_t n) {
    const bool avx512 = dmllm_kernels_use_avx512();
    #pragma omp parallel if (n >= PARALLEL_MIN_ELEMENTS)
    {
        int64_t begin, end;
        thread_slice(n, &begin, &end);
        if (avx512) {
            gelu_tanh_avx512(x + begin, end - begin);
        } else {
            for (int64_t i = begin; i < end; i++) {
                const float v = x[i];
                const float z = 2.0f * GELU_TANH_C * v * (1.0f + GELU_TANH_K * v * v);
                x[i] = v / (1.0f + expf(-z));
            }
        }
    }
}

void dmllm_gelu_erf(float *x, int64_t n) {
    const bool avx512 = dmllm_kernels_use_avx512();
    #pragma omp parallel if (n >= PARALLEL_MIN_ELEMENTS)
    {
        int64_t begin, end;
        thread_slice(n, &begin, &end);
        if (avx512) {
            gelu_erf_avx512(x + begin, end - begin);
        } else {
            for (int64_t i = begin; i < end; i++) x[i] = 0.5f * x[i] * erfcf(-x[i] * (float)M_SQRT1_2);
        }
    }
}

void dmllm_silu_mul(const float *gate, const float *up, float *out, int64_t n) {
    const bool avx512 = dmllm_kernels_use_avx512();
    #pragma omp parallel if (n >= PARALLEL_MIN_ELEMENTS)
    {
        int64_t begin, end;
        thread_slice(n, &begin, &end);
        if (avx512) {
            silu_mul_avx512(gate + begin, up + begin, out + begin, end - begin);
        } else {
            for (int64_t i = begin; i < end; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
        }
    }
}

void dmllm_add(float *y, const float *x, int64_t n) {
    const bool avx512 = dmllm_kernels_use_avx512();
    #pragma omp parallel if (n >= PARALLEL_MIN_ELEMENTS)
    {
        int64_t begin, end;
        thread_slice(n, &begin, &end);
        if (avx512) {
            add_avx512(y + begin, x + begin, end - begin);
        } else {
            for (int64_t i = begin; i < end; i++) y[i] += x[i];
        }
    }
}

/* ---- RoPE ------------------------------------------------------------------------------------ */

/* Pairs (i, i + half): first' = first c - second s, second' = second c + first s. */
DMLLM_AVX512 static void rope_rotate_half_avx512(float *x, const float *cos, const float *sin, int half) {
    for (int i = 0; i < half; i += 16) {
        const __mmask16 m = tail_mask(half - i);
        const __m512 c = _mm512_maskz_loadu_ps(m, cos + i), s = _mm512_maskz_loadu_ps(m, sin + i);
        const __m512 first = _mm512_maskz_loadu_ps(m, x + i), second = _mm512_maskz_loadu_ps(m, x + half + i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_fmsub_ps(first, c, _mm512_mul_ps(second, s)));
        _mm512_mask_storeu_ps(x + half + i, m, _mm512_fmadd_ps(second, c, _mm512_mul_ps(first, s)));
    }
}

/* Pairs (2i, 2i + 1): 8 pairs per vector, cos/sin duplicated into both lanes of a pair. */
DMLLM_AVX512 static void rope_interleaved_avx512(float *x, const float *cos, const float *sin, int half) {
    const __m512i duplicate = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (int i = 0; i < half; i += 8) {
        const int pairs = half - i < 8 ? half - i : 8;
        const __mmask16 m = (__mmask16)((1u << (2 * pairs)) - 1u);
        const __mmask8 mh = (__mmask8)((1u << pairs) - 1u);
        const __m512 c = _mm512_permutexvar_ps(duplicate, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(mh, cos + i)));
        const __m512 s = _mm512_permutexvar_ps(duplicate, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(mh, sin + i)));
        const __m512 v = _mm512_maskz_loadu_ps(m, x + 2 * i);
        const __m512 swapped = _mm512_permute_ps(v, 0xB1); /* (x1, x0) per pair */
        /* even lanes: x0 c - x1 s; odd lanes: x1 c + x0 s */
        _mm512_mask_storeu_ps(x + 2 * i, m, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s)));
    }
}

static void rope_vector_generic(float *x, const float *cos, const float *sin, int half, dmllm_rope_style style) {
    for (int i = 0; i < half; i++) {
        const int a = style == DMLLM_ROPE_ROTATE_HALF ? i : 2 * i;
        const int b = style == DMLLM_ROPE_ROTATE_HALF ? i + half : 2 * i + 1;
        const float first = x[a], second = x[b];
        x[a] = first * cos[i] - second * sin[i];
        x[b] = second * cos[i] + first * sin[i];
    }
}

void dmllm_rope_apply(float *x, int64_t rows, int64_t row_stride, int n_heads, int64_t head_stride, int dim,
                      const float *cos, const float *sin, dmllm_rope_style style) {
    const bool avx512 = dmllm_kernels_use_avx512();
    const int half = dim / 2;
    #pragma omp parallel for schedule(static) if (rows > 1 && rows * n_heads * dim >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < rows; r++) {
        const float *row_cos = cos + r * half, *row_sin = sin + r * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + r * row_stride + h * head_stride;
            if (!avx512) rope_vector_generic(v, row_cos, row_sin, half, style);
            else if (style == DMLLM_ROPE_ROTATE_HALF) rope_rotate_half_avx512(v, row_cos, row_sin, half);
            else rope_interleaved_avx512(v, row_cos, row_sin, half);
        }
    }
}
