/*
 * gemv.h: y = x W^T for one to four rows of x (decoding), straight from the bf16 weights in the
 * pair-interleaved layout oneDNN packs them into for AVX512-BF16 and AMX (backend.c decides when).
 * One token's step reads every weight once and does two flops per weight, so it is bound by memory
 * bandwidth; oneDNN 2.6's matmul reached ~70 % of the measured read bandwidth at M = 1 on Zen 5,
 * this loop streams each column block once from start to end. Pure function on caller buffers.
 */
#ifndef DMLLM_GEMV_H
#define DMLLM_GEMV_H

#include "common.h"

enum { DMLLM_GEMV_MAX_ROWS = 4 };

/* Whether dmllm_gemv_bf16_pairs can run here (AVX512-BF16, and the AVX-512 kernels not disabled by
 * DMLLM_MAX_ISA=generic). */
bool dmllm_gemv_available(void);

/* y[r, j] = sum_k x[r, k] W[j, k] (+ bias[j]) for r < rows (1..DMLLM_GEMV_MAX_ROWS), j < n.
 * w: the (K, N) matrix W^T in oneDNN's layout BA16a64b2a: blocks of 64 columns, each one run over
 * the k_padded / 2 pairs of k, a pair being 64 x 2 bf16 ([column][k & 1]); k_padded is K rounded up
 * to 32, N is rounded up to 64, and the padding is zero.
 * x: rows x k_padded bf16, zero beyond K (0 x NaN would poison the sums). y: rows of n f32, row r
 * at y + r * y_stride. Splits the columns between the OpenMP threads when the matrix is large. */
void dmllm_gemv_bf16_pairs(const uint16_t *w, int64_t k_padded, int64_t n, const uint16_t *x, int rows,
                           const float *bias, float *y, int64_t y_stride);

#endif
