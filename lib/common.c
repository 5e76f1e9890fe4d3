/*
 * common.c: thread-local error messages, the process-wide log sink, progress reporting, checked
 * allocation and dtype conversion. Touches no model or session state.
 */
#include "common.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define DMLLM_ERROR_CAPACITY 1024

static _Thread_local char thread_error[DMLLM_ERROR_CAPACITY];

dmllm_status dmllm_fail(dmllm_status status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(thread_error, sizeof thread_error, fmt, args);
    va_end(args);
    dmllm_log(DMLLM_LOG_DEBUG, "%s: %s", dmllm_status_str(status), thread_error);
    return status;
}

dmllm_status dmllm_fail_context(dmllm_status status, const char *fmt, ...) {
    char context[DMLLM_ERROR_CAPACITY];
    char previous[DMLLM_ERROR_CAPACITY];
    va_list args;
    va_start(args, fmt);
    vsnprintf(context, sizeof context, fmt, args);
    va_end(args);
    memcpy(previous, thread_error, sizeof previous);
    /* "context: previous", cut to the buffer (the context comes first so it always survives). */
    size_t used = strlen(context);
    memcpy(thread_error, context, used + 1);
    if (used + 2 < sizeof thread_error) {
        memcpy(thread_error + used, ": ", 3);
        used += 2;
        size_t room = sizeof thread_error - 1 - used;
        size_t n = strlen(previous) < room ? strlen(previous) : room;
        memcpy(thread_error + used, previous, n);
        thread_error[used + n] = '\0';
    }
    return status;
}

void dmllm_clear_error(void) { thread_error[0] = '\0'; }

const char *dmllm_last_error(void) { return thread_error; }

void dmllm_text_free(char *text) { free(text); }

const char *dmllm_status_str(dmllm_status status) {
    switch (status) {
    case DMLLM_OK: return "ok";
    case DMLLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case DMLLM_ERR_IO: return "I/O error";
    case DMLLM_ERR_FORMAT: return "malformed data";
    case DMLLM_ERR_UNSUPPORTED: return "unsupported";
    case DMLLM_ERR_SHAPE: return "wrong or missing shape";
    case DMLLM_ERR_OUT_OF_MEMORY: return "out of memory";
    case DMLLM_ERR_ABORTED: return "aborted";
    case DMLLM_ERR_BACKEND: return "compute backend error";
    case DMLLM_ERR_STATE: return "invalid session state";
    case DMLLM_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case DMLLM_ERR_CONTEXT_FULL: return "context full";
    }
    return "unknown status";
}

unsigned dmllm_version_number(void) { return DMLLM_VERSION_NUMBER; }

const char *dmllm_version_string(void) { return DMLLM_VERSION_STRING; }

/* ---- logging --------------------------------------------------------------------------------- */

static void log_to_stderr(dmllm_log_level level, const char *message, void *user_data) {
    (void)user_data;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level <= DMLLM_LOG_WARN) fprintf(stderr, "densemllm %s: %s\n", names[level], message);
}

static dmllm_log_callback log_callback = log_to_stderr;
static void *log_user_data;

void dmllm_log_set(dmllm_log_callback callback, void *user_data) {
    log_callback = callback;
    log_user_data = user_data;
}

void dmllm_log(dmllm_log_level level, const char *fmt, ...) {
    if (!log_callback) return;
    char message[DMLLM_ERROR_CAPACITY];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    log_callback(level, message, log_user_data);
}

/* ---- progress -------------------------------------------------------------------------------- */

dmllm_status dmllm_progress_report(const dmllm_progress *progress, const char *stage, int done, int total) {
    if (!progress || !progress->callback) return DMLLM_OK;
    if (progress->callback(stage, done, total, progress->user_data) != 0)
        return dmllm_fail(DMLLM_ERR_ABORTED, "aborted by the progress callback during %s (%d of %d)", stage,
                          done, total);
    return DMLLM_OK;
}

/* ---- allocation ------------------------------------------------------------------------------ */

static bool size_product(size_t count, size_t size, size_t *bytes) {
    if (size != 0 && count > SIZE_MAX / size) return false;
    *bytes = count * size;
    return true;
}

void *dmllm_malloc(size_t count, size_t size) {
    size_t bytes;
    if (!size_product(count, size, &bytes)) return NULL;
    return malloc(bytes ? bytes : 1);
}

void *dmllm_calloc(size_t count, size_t size) { return calloc(count ? count : 1, size ? size : 1); }

void *dmllm_malloc_aligned(size_t count, size_t size) {
    size_t bytes;
    if (!size_product(count, size, &bytes) || bytes > SIZE_MAX - 64) return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

dmllm_status dmllm_alloc(void *out_ptr, size_t count, size_t size, const char *what) {
    void *p = dmllm_malloc_aligned(count, size);
    if (!p) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    memcpy(out_ptr, &p, sizeof p);
    return DMLLM_OK;
}

#define HUGE_PAGE_BYTES ((size_t)2 << 20)

dmllm_status dmllm_alloc_large(void *out_ptr, size_t count, size_t size, const char *what) {
    size_t bytes;
    if (!size_product(count, size, &bytes) || bytes < HUGE_PAGE_BYTES)
        return dmllm_alloc(out_ptr, count, size, what);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE_BYTES, bytes) != 0)
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY,
                          "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    /* Whole huge pages only: a huge page over the tail would hold up to 2 MiB nobody uses. */
    madvise(p, bytes & ~(HUGE_PAGE_BYTES - 1), MADV_HUGEPAGE);
    memcpy(out_ptr, &p, sizeof p);
    return DMLLM_OK;
}

dmllm_status dmllm_copy_versioned(void *dst, size_t dst_size, const void *src, const char *what) {
    if (!src) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s is NULL", what);
    uint32_t size;
    memcpy(&size, src, sizeof size);
    if (size <= sizeof size || size > dst_size)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "%s.struct_size is %u, expected %zu (the sizeof of this header's struct, as its "
                          "*_params_init() sets it)",
                          what, size, dst_size);
    memcpy(dst, src, size);
    memcpy(dst, &(uint32_t){(uint32_t)dst_size}, sizeof size);
    return DMLLM_OK;
}

dmllm_status dmllm_check_versioned_out(const void *out, size_t full_size, const char *what) {
    if (!out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s is NULL", what);
    uint32_t size;
    memcpy(&size, out, sizeof size);
    if (size <= sizeof size || size > full_size)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s.struct_size is %u, expected %zu", what, size, full_size);
    return DMLLM_OK;
}

/* Entry k of the table dmllm_label_names() builds. */
static const char *label_source(const char *before, const char *const *names, int n_names, const char *after,
                                int k) {
    if (before && k-- == 0) return before;
    if (k < n_names) return names ? names[k] : NULL;
    return after;
}

dmllm_status dmllm_label_names(const char *before, const char *const *names, int n_names, const char *after,
                               const char *const **out, int *out_n) {
    const int n = (before != NULL) + n_names + (after != NULL);
    size_t bytes = (size_t)n * sizeof(char *);
    for (int k = 0; k < n; k++) {
        const char *name = label_source(before, names, n_names, after, k);
        bytes += name ? strlen(name) + 1 : 0;
    }
    const char **table = NULL; /* [n] pointers, then the strings */
    DMLLM_TRY(dmllm_alloc(&table, 1, bytes, "the label names"));
    char *w = (char *)(table + n);
    for (int k = 0; k < n; k++) {
        const char *name = label_source(before, names, n_names, after, k);
        table[k] = name ? w : NULL;
        if (name) w = stpcpy(w, name) + 1;
    }
    *out = table;
    *out_n = n;
    return DMLLM_OK;
}

double dmllm_mib(int64_t bytes) { return (double)bytes / (1 << 20); }

dmllm_status dmllm_check_memory(int64_t limit, const char *stage, size_t needed, size_t held) {
    if (limit <= 0 || (uint64_t)held + needed <= (uint64_t)limit) return DMLLM_OK;
    return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s needs %.2f MiB, memory limit %.2f MiB (held: %.2f MiB)", stage,
                      dmllm_mib((int64_t)needed), dmllm_mib(limit), dmllm_mib((int64_t)held));
}

double dmllm_now_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

uint64_t dmllm_fnv1a(uint64_t hash, const void *data, size_t size) {
    const unsigned char *bytes = data;
    for (size_t i = 0; i < size; i++) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
    return hash;
}

int dmllm_resolve_threads(int n_threads) { return n_threads > 0 ? n_threads : omp_get_num_procs(); }

/* ---- dtypes ---------------------------------------------------------------------------------- */

size_t dmllm_dtype_size(dmllm_dtype dtype) {
    switch (dtype) {
    case DMLLM_DTYPE_F32: case DMLLM_DTYPE_I32: return 4;
    case DMLLM_DTYPE_F16: case DMLLM_DTYPE_BF16: return 2;
    case DMLLM_DTYPE_I64: return 8;
    case DMLLM_DTYPE_U8: return 1;
    case DMLLM_DTYPE_COUNT: break;
    }
    return 0;
}

const char *dmllm_dtype_name(dmllm_dtype dtype) {
    static const char *const names[DMLLM_DTYPE_COUNT] = {"F32", "F16", "BF16", "I64", "I32", "U8"};
    return (unsigned)dtype < DMLLM_DTYPE_COUNT ? names[dtype] : "?";
}

float dmllm_bf16_to_f32(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t dmllm_f32_to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

float dmllm_f16_to_f32(uint16_t value) {
    uint32_t sign = (uint32_t)(value & 0x8000u) << 16;
    uint32_t exponent = (value >> 10) & 0x1fu;
    uint32_t mantissa = value & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { mantissa <<= 1; e++; } while (!(mantissa & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void dmllm_convert_to_f32(dmllm_dtype dtype, const void *src, float *dst, size_t n) {
    const uint16_t *half = src;
    switch (dtype) {
    case DMLLM_DTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case DMLLM_DTYPE_BF16: for (size_t i = 0; i < n; i++) dst[i] = dmllm_bf16_to_f32(half[i]); break;
    case DMLLM_DTYPE_F16: for (size_t i = 0; i < n; i++) dst[i] = dmllm_f16_to_f32(half[i]); break;
    default: for (size_t i = 0; i < n; i++) dst[i] = NAN; break;
    }
}
