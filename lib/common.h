/*
 * common.h: what every stage shares: error reporting, logging, progress, dtypes, checked allocation.
 *
 * Error convention: internal functions return dmllm_status. A failing function records its message
 * with dmllm_fail() (thread-local, read back by dmllm_last_error()) and returns the status; callers
 * propagate it unchanged with DMLLM_TRY. Public entry points that take a session copy the message
 * into the session (session.c). Nothing here touches model or session state.
 */
#ifndef DMLLM_COMMON_H
#define DMLLM_COMMON_H

#include "densemllm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DMLLM_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))

/* Records "message" as the calling thread's last error and returns status. */
dmllm_status dmllm_fail(dmllm_status status, const char *fmt, ...) DMLLM_PRINTF(2, 3);
/* Prefixes the thread's last error with "context: " and returns status unchanged. */
dmllm_status dmllm_fail_context(dmllm_status status, const char *fmt, ...) DMLLM_PRINTF(2, 3);
void dmllm_clear_error(void);

void dmllm_log(dmllm_log_level level, const char *fmt, ...) DMLLM_PRINTF(2, 3);

#define DMLLM_TRY(expr)                             \
    do {                                            \
        dmllm_status dmllm_try_status_ = (expr);    \
        if (dmllm_try_status_ != DMLLM_OK) return dmllm_try_status_; \
    } while (0)

/* Progress reporting shared by long calls. A NULL callback never aborts. */
typedef struct dmllm_progress {
    dmllm_progress_callback callback;
    void *user_data;
} dmllm_progress;

/* Reports a step; returns DMLLM_ERR_ABORTED (with a message naming the stage) when asked to stop. */
dmllm_status dmllm_progress_report(const dmllm_progress *progress, const char *stage, int done, int total);

/* Checked allocation: NULL on failure or size overflow; the caller reports OUT_OF_MEMORY. */
void *dmllm_malloc(size_t count, size_t size);
void *dmllm_calloc(size_t count, size_t size);
/* 64-byte aligned; free with free(). */
void *dmllm_malloc_aligned(size_t count, size_t size);
/* Allocates or fails with a message naming what the memory was for. */
dmllm_status dmllm_alloc(void *out_ptr, size_t count, size_t size, const char *what);
/* dmllm_alloc for large buffers filled once at load (packed weights, stacked projections): from
 * 2 MiB on, 2 MiB-aligned and advised as transparent huge pages, so filling them takes one page
 * fault per 2 MiB instead of one per 4 KiB (the 4B model's load took ~3.7 M faults, 12-14 s of
 * system time). Free with free(). */
dmllm_status dmllm_alloc_large(void *out_ptr, size_t count, size_t size, const char *what);

/* ---- element types --------------------------------------------------------------------------- */
typedef enum dmllm_dtype {
    DMLLM_DTYPE_F32 = 0,
    DMLLM_DTYPE_F16,
    DMLLM_DTYPE_BF16,
    DMLLM_DTYPE_I64,
    DMLLM_DTYPE_I32,
    DMLLM_DTYPE_U8,
    DMLLM_DTYPE_COUNT
} dmllm_dtype;

size_t dmllm_dtype_size(dmllm_dtype dtype);
const char *dmllm_dtype_name(dmllm_dtype dtype); /* safetensors spelling: "F32", "BF16", ... */

float dmllm_bf16_to_f32(uint16_t value);
uint16_t dmllm_f32_to_bf16(float value); /* round to nearest even, NaN preserved */
float dmllm_f16_to_f32(uint16_t value);
/* Converts n floating-point elements (F32, F16 or BF16) to f32. */
void dmllm_convert_to_f32(dmllm_dtype dtype, const void *src, float *dst, size_t n);

/* Copies a caller's versioned params struct (first member: uint32_t struct_size) over dst, which
 * holds the defaults: only the caller's first struct_size bytes are read, so callers built against
 * an older, shorter struct keep working. Fails when struct_size is too small or larger than ours. */
dmllm_status dmllm_copy_versioned(void *dst, size_t dst_size, const void *src, const char *what);
/* Checks a caller's versioned output struct before the library fills its first struct_size bytes:
 * it may be older (shorter) than ours, never longer. */
dmllm_status dmllm_check_versioned_out(const void *out, size_t full_size, const char *what);

/* The label_names table of a result, in one block freed with free(): [*out_n] pointers to copies of
 * before (left out when NULL), names[0 .. n_names-1] (entries stay NULL where names or names[k] is
 * NULL) and after (left out when NULL). */
dmllm_status dmllm_label_names(const char *before, const char *const *names, int n_names, const char *after,
                               const char *const **out, int *out_n);

/* bytes / 2^20, for messages about memory. */
double dmllm_mib(int64_t bytes);

/* The memory-limit refusal: DMLLM_ERR_OUT_OF_MEMORY with "<stage> needs X MiB, memory limit Y MiB
 * (held: Z MiB)" when held + needed exceeds limit (> 0), else DMLLM_OK. */
dmllm_status dmllm_check_memory(int64_t limit, const char *stage, size_t needed, size_t held);

/* Monotonic clock in seconds, for the timings results report. */
double dmllm_now_seconds(void);

/* FNV-1a 64 over size bytes, continuing from hash (start with DMLLM_FNV1A_INIT): the library's
 * one non-cryptographic hash (prefix tags, the vocabulary table, packed-weight cache keys). */
#define DMLLM_FNV1A_INIT 0xcbf29ce484222325ull
uint64_t dmllm_fnv1a(uint64_t hash, const void *data, size_t size);

/* Number of threads a call should use: n_threads if > 0, else the number of cores. */
int dmllm_resolve_threads(int n_threads);

#endif
