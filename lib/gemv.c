/*
 * gemv.c: y = x W^T for a few rows of x from oneDNN's pair-interleaved bf16 weights (gemv.h).
 * Each thread takes a contiguous share of the 64-column blocks and streams every block once: per
 * pair of k, four 64-byte loads of weights and one vdpbf16ps per row and load. Touches only the
 * caller's buffers; knows nothing of oneDNN beyond the layout documented in gemv.h.
 */
#include "gemv.h"
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

/* The layout BA16a64b2a: a pair of k holds 64 columns x 2 bf16, i.e. four 512-bit vectors. */
enum { BLOCK_COLUMNS = 64, VECTORS_PER_PAIR = BLOCK_COLUMNS / 16 };

bool dmllm_gemv_available(void) {
    return dmllm_kernels_use_avx512() && __builtin_cpu_supports("avx512bf16");
}

#define GEMV_TARGET __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))

/* One column block for a compile-time number of rows (the accumulators stay in registers). */
GEMV_TARGET static inline __attribute__((always_inline)) void column_block(
    const uint16_t *w, int64_t k_padded, const uint16_t *x, const int rows, int64_t first_column, int64_t n,
    const float *bias, float *y, int64_t y_stride) {
    __m512 sums[DMLLM_GEMV_MAX_ROWS][VECTORS_PER_PAIR];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < VECTORS_PER_PAIR; v++) sums[r][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < k_padded; k += 2, w += 2 * BLOCK_COLUMNS) {
        __m512i weights[VECTORS_PER_PAIR];
        for (int v = 0; v < VECTORS_PER_PAIR; v++) weights[v] = _mm512_loadu_si512(w + 32 * v);
        for (int r = 0; r < rows; r++) {
            uint32_t pair;
            memcpy(&pair, x + r * k_padded + k, sizeof pair);
            const __m512bh broadcast = (__m512bh)_mm512_set1_epi32((int)pair);
            for (int v = 0; v < VECTORS_PER_PAIR; v++)
                sums[r][v] = _mm512_dpbf16_ps(sums[r][v], (__m512bh)weights[v], broadcast);
        }
    }
    for (int v = 0; v < VECTORS_PER_PAIR; v++) {
        const int64_t column = first_column + 16 * v;
        if (column >= n) break;
        const __mmask16 valid = n - column >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - column)) - 1u);
        const __m512 b = bias ? _mm512_maskz_loadu_ps(valid, bias + column) : _mm512_setzero_ps();
        for (int r = 0; r < rows; r++)
            _mm512_mask_storeu_ps(y + r * y_stride + column, valid, _mm512_add_ps(sums[r][v], b));
    }
}

/* The row count as a constant, so that each case keeps its sums in registers. */
GEMV_TARGET static void column_block_of_rows(const uint16_t *w, int64_t k_padded, const uint16_t *x, int rows,
                                             int64_t first_column, int64_t n, const float *bias, float *y,
                                             int64_t y_stride) {
    switch (rows) {
    case 1: column_block(w, k_padded, x, 1, first_column, n, bias, y, y_stride); break;
    case 2: column_block(w, k_padded, x, 2, first_column, n, bias, y, y_stride); break;
    case 3: column_block(w, k_padded, x, 3, first_column, n, bias, y, y_stride); break;
    default: column_block(w, k_padded, x, 4, first_column, n, bias, y, y_stride); break;
    }
}

/* No target attribute here: clang outlines the OpenMP loop into a function without it. */
void dmllm_gemv_bf16_pairs(const uint16_t *w, int64_t k_padded, int64_t n, const uint16_t *x, int rows,
                           const float *bias, float *y, int64_t y_stride) {
    const int64_t blocks = (n + BLOCK_COLUMNS - 1) / BLOCK_COLUMNS, block_elements = k_padded * BLOCK_COLUMNS;
    /* Below ~256 KB of weights, waking the second thread costs more than it saves. */
    const bool parallel = blocks > 1 && block_elements * blocks >= (1 << 17);
    #pragma omp parallel for schedule(static) if (parallel)
    for (int64_t b = 0; b < blocks; b++)
        column_block_of_rows(w + b * block_elements, k_padded, x, rows, b * BLOCK_COLUMNS, n, bias, y, y_stride);
}
