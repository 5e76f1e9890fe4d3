/*
 * kernels.h: element-wise and row-wise kernels (norms, activations, RoPE). AVX-512 versions are
 * chosen at run time; a portable C version is used on other CPUs or when the environment sets
 * DMLLM_MAX_ISA=generic (tests run both). Pure functions on caller buffers; no allocation.
 * In-place use (y == x) is allowed everywhere unless noted.
 */
#ifndef DMLLM_KERNELS_H
#define DMLLM_KERNELS_H

#include "common.h"

/* true when the AVX-512 kernels are in use (CPU support and not disabled by DMLLM_MAX_ISA). */
bool dmllm_kernels_use_avx512(void);
/* Tests: true forces the portable kernels (as DMLLM_MAX_ISA=generic does), false restores the
 * run-time choice. Not for use while other threads run kernels. */
void dmllm_kernels_force_generic(bool force);

/* y[r] = w * x[r] / sqrt(mean(x[r]^2) + eps), rows of dim floats, row strides in elements. */
void dmllm_rmsnorm(const float *x, int64_t x_stride, const float *w, float *y, int64_t y_stride,
                   int64_t rows, int dim, float eps);
/* y[r] = w * (x[r] - mean) / sqrt(var + eps) + b (biased variance). */
void dmllm_layernorm(const float *x, const float *w, const float *b, float *y, int64_t rows, int dim,
                     float eps);

void dmllm_gelu_tanh(float *x, int64_t n);  /* 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))) */
void dmllm_gelu_erf(float *x, int64_t n);   /* 0.5x(1+erf(x/sqrt(2))) */
/* out[i] = silu(gate[i]) * up[i]; out may alias gate or up. */
void dmllm_silu_mul(const float *gate, const float *up, float *out, int64_t n);
/* y[i] += x[i] */
void dmllm_add(float *y, const float *x, int64_t n);

typedef enum dmllm_rope_style {
    DMLLM_ROPE_ROTATE_HALF = 0,  /* pairs (i, i + dim/2): vision tower (NeoX style) */
    DMLLM_ROPE_INTERLEAVED = 1   /* pairs (2i, 2i + 1): LLM k_pe / q_pe (GPT-J style) */
} dmllm_rope_style;

/* Rotates, for each of rows, n_heads vectors of dim floats starting at
 * x + r*row_stride + h*head_stride, by the angles whose cos/sin are cos[r*(dim/2) + i],
 * sin[r*(dim/2) + i], i < dim/2. */
void dmllm_rope_apply(float *x, int64_t rows, int64_t row_stride, int n_heads, int64_t head_stride, int dim,
                      const float *cos, const float *sin, dmllm_rope_style style);

#endif
