/*
 * vecmath.h: AVX-512 elementary functions shared by kernels.c and attention.c. Each function is
 * compiled for AVX-512 only; callers must check dmllm_kernels_use_avx512() first.
 */
#ifndef DMLLM_VECMATH_H
#define DMLLM_VECMATH_H

#include <immintrin.h>

#define DMLLM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

/* e^x, max relative error 1.2e-7 measured over [-87, 88] (Cephes expf: reduction by ln2 in two
 * parts, degree-5 polynomial, then scalef). Overflows to +inf, underflows to 0. */
DMLLM_AVX512 static inline __m512 dmllm_exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.8f)), _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

#endif
