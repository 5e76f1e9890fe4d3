/*
 * backend.c: dense y = x W^T + b through oneDNN 2.6 (bf16, f32 or int8, weights pre-packed once)
 * or OpenBLAS sgemm (f32, for comparison). Every oneDNN and OpenBLAS call of the library lives here,
 * so a oneDNN v3 port touches this file only. It must not touch model or session state: a linear
 * is immutable after creation and shared by sessions running on different threads.
 *
 * Decoding skips oneDNN: 1-4 rows over bf16 weights that oneDNN packed as BA16a64b2a (its
 * AVX512-BF16 layout) run through gemv.c, which streams the same packed bytes (oneDNN's matmul
 * reached ~70 % of the read bandwidth at M = 1; gemv.c ~90 %).
 *
 * oneDNN primitives are specialised for a concrete M and the creating thread count, so forward
 * chunks M into at most LINEAR_CHUNK_ROWS rows and keeps primitives in a per-backend cache keyed
 * by (shape, data type, bias, rows, threads). Cached primitives are never destroyed before the
 * backend, so a primitive found in the cache stays valid while another thread executes it.
 *
 * int8 (W8A8): W is quantised at load per output channel (symmetric, scale = max|row| / 127) and
 * each chunk of x per token at run time, both s8 (s8 and u8 sources ran at the same speed on
 * AVX512-VNNI). oneDNN 2.6 returns the exact s32 sums as f32; the per-row and per-column scales
 * and the bias are applied afterwards in one pass, because its per-row binary post-op falls back
 * to the reference implementation (ref_int8:any, orders of magnitude slower).
 *
 * The packed-weight cache (packcache.c, a file) stores a linear as a linear_record plus its arrays;
 * a linear found there points into the read-only mapping instead of owning its weights.
 */
#include "backend.h"
#include "gemv.h"
#include "kernels.h"
#include "packcache.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Rows per oneDNN call: large enough for ~92 % of peak, small enough to bound the bf16 copy of
 * the activations (rows x in x 2 bytes) and the scratchpad. */
#define LINEAR_CHUNK_ROWS 512
/* Distinct (shape, rows, threads) primitives kept; beyond this, primitives are made per call
 * (oneDNN's own cache still avoids the JIT cost). */
#define PRIMITIVE_CACHE_CAPACITY 512

typedef struct cached_primitive {
    int64_t in_features, out_features, rows;
    int n_threads;
    dnnl_data_type_t weights_type;
    bool has_bias;
    dnnl_primitive_t primitive;
    size_t scratchpad_bytes;
} cached_primitive;

typedef struct primitive_cache {
    pthread_mutex_t lock;
    int count;
    cached_primitive entries[PRIMITIVE_CACHE_CAPACITY];
} primitive_cache;

struct dmllm_backend {
    dmllm_compute_type compute; /* resolved: BF16, F32 or OPENBLAS */
    dmllm_weights_type weights; /* resolved: BF16, F32 (as compute) or INT8 */
    dnnl_engine_t engine;       /* CPU engine, NULL for OPENBLAS */
    primitive_cache *cache;     /* mutable through a const backend */
    dmllm_pack_cache *packed;   /* the packed-weight cache of the load in progress, or NULL */
};

struct dmllm_linear {
    const dmllm_backend *backend;
    int64_t out_features, in_features;
    float *bias;                    /* [out_features] or NULL */
    /* oneDNN paths */
    dnnl_data_type_t weights_type;  /* dnnl_bf16, dnnl_f32 or dnnl_s8 (also the source type) */
    dnnl_memory_desc_t packed_md;   /* the layout the matmul chose for W^T (K, N) */
    void *packed_weights;           /* dnnl_memory_desc_get_size(packed_md) bytes */
    float *weight_scales;           /* [out_features] W[o, :] ~= scale[o] * W_s8[o, :]; s8 only */
    int64_t gemv_k_padded;          /* > 0: packed_md is bf16 BA16a64b2a with K padded to this, so
                                       up to DMLLM_GEMV_MAX_ROWS rows run through gemv.c */
    /* OpenBLAS path */
    float *weights_f32;             /* [out_features, in_features] */
    bool mapped;                    /* weights and bias point into the packed-weight cache */
};

/* A linear as the packed-weight cache stores it: this record, then the arrays [0] the weights
 * (packed per packed_md, or f32 rows for OpenBLAS), with has_bias [1] the bias [out_features]
 * f32, and for s8 weights last the weight_scales [out_features] f32. */
enum { LINEAR_RECORD_ONEDNN = 1, LINEAR_RECORD_OPENBLAS = 2 };
typedef struct linear_record {
    uint32_t kind;                  /* LINEAR_RECORD_* */
    uint32_t weights_type;          /* dnnl_data_type_t of the packed weights; 0 for OpenBLAS */
    int64_t out_features, in_features;
    uint32_t has_bias, reserved;    /* reserved: 0 */
    dnnl_memory_desc_t packed_md;   /* ONEDNN: the layout of array 0; zero for OpenBLAS */
} linear_record;

static const char *dnnl_status_name(dnnl_status_t status) {
    switch (status) {
    case dnnl_success: return "dnnl_success";
    case dnnl_out_of_memory: return "dnnl_out_of_memory";
    case dnnl_invalid_arguments: return "dnnl_invalid_arguments";
    case dnnl_unimplemented: return "dnnl_unimplemented";
    case dnnl_iterator_ends: return "dnnl_iterator_ends";
    case dnnl_runtime_error: return "dnnl_runtime_error";
    case dnnl_not_required: return "dnnl_not_required";
    }
    return "unknown dnnl status";
}

/* Turns a failed oneDNN call into DMLLM_ERR_BACKEND naming the call and what it was for. */
#define DNNL_TRY(call, ...)                                                                          \
    do {                                                                                             \
        dnnl_status_t dnnl_try_status_ = (call);                                                     \
        if (dnnl_try_status_ != dnnl_success) {                                                      \
            char dnnl_try_what_[256];                                                                \
            snprintf(dnnl_try_what_, sizeof dnnl_try_what_, __VA_ARGS__);                            \
            return dmllm_fail(DMLLM_ERR_BACKEND, "oneDNN %s failed (%s) while %s", #call,            \
                              dnnl_status_name(dnnl_try_status_), dnnl_try_what_);                   \
        }                                                                                            \
    } while (0)

/* ---- f32 -> bf16 activations ---------------------------------------------------------------- */

/* Round to nearest even with vcvtneps2bf16 (inputs that are denormal become zero). */
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))
static void convert_row_to_bf16_avx512(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh packed = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)packed);
    }
    if (i < n) {
        __mmask16 tail = (__mmask16)((1u << (n - i)) - 1u);
        __m256bh packed = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, src + i));
        _mm256_mask_storeu_epi16(dst + i, tail, (__m256i)packed);
    }
}

/* dst[r] = bf16(src[r]) for rows of n floats, both contiguous. DMLLM_MAX_ISA=generic (via
 * dmllm_kernels_use_avx512) selects the scalar rounding here too. */
static void convert_rows_to_bf16(const float *src, uint16_t *dst, int64_t rows, int64_t n) {
    const bool vectorised = dmllm_kernels_use_avx512() && __builtin_cpu_supports("avx512bf16");
    #pragma omp parallel for schedule(static) if (rows * n >= (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        if (vectorised) {
            convert_row_to_bf16_avx512(src + r * n, dst + r * n, n);
        } else {
            for (int64_t i = 0; i < n; i++) dst[r * n + i] = dmllm_f32_to_bf16(src[r * n + i]);
        }
    }
}

/* ---- f32 -> int8, symmetric per row ----------------------------------------------------------- */

/* q[i] = round(x[i] * 127 / max|x|) (nearest even, as lrintf); returns the scale max|x| / 127
 * (0 for a zero row, whose q is then 0). */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static float quantise_row_avx512(const float *x, int8_t *q, int64_t n) {
    __m512 amax = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 live = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_maskz_loadu_ps(live, x + i)));
    }
    const float max_abs = _mm512_reduce_max_ps(amax);
    const __m512 inverse = _mm512_set1_ps(max_abs > 0.0f ? 127.0f / max_abs : 0.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 live = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        const __m512i rounded = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(live, x + i), inverse));
        _mm512_mask_cvtsepi32_storeu_epi8(q + i, live, rounded);
    }
    return max_abs / 127.0f;
}

static float quantise_row_scalar(const float *x, int8_t *q, int64_t n) {
    float max_abs = 0.0f;
    for (int64_t i = 0; i < n; i++) max_abs = fmaxf(max_abs, fabsf(x[i]));
    const float inverse = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
    for (int64_t i = 0; i < n; i++) q[i] = (int8_t)fminf(127.0f, fmaxf(-128.0f, (float)lrintf(x[i] * inverse)));
    return max_abs / 127.0f;
}

/* One row through the AVX-512 or the portable kernel (vectorised: dmllm_kernels_use_avx512()). */
static float quantise_row(const float *x, int8_t *q, int64_t n, bool vectorised) {
    return vectorised ? quantise_row_avx512(x, q, n) : quantise_row_scalar(x, q, n);
}

/* q[r] = int8 of x[r] for rows of n floats, both contiguous, scales[r] their scales. */
static void quantise_rows(const float *x, int8_t *q, float *scales, int64_t rows, int64_t n) {
    const bool vectorised = dmllm_kernels_use_avx512();
    #pragma omp parallel for schedule(static) if (rows * n >= (1 << 16))
    for (int64_t r = 0; r < rows; r++) scales[r] = quantise_row(x + r * n, q + r * n, n, vectorised);
}

/* y[r, c] = y[r, c] * row_scales[r] * column_scales[c] + bias[c]: the exact int32 sums to floats. */
static void dequantise_rows(float *y, const float *row_scales, const float *column_scales, const float *bias,
                            int64_t rows, int64_t n) {
    #pragma omp parallel for schedule(static) if (rows * n >= (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        float *row = y + r * n;
        const float s = row_scales[r];
        if (bias) {
            for (int64_t c = 0; c < n; c++) row[c] = row[c] * s * column_scales[c] + bias[c];
        } else {
            for (int64_t c = 0; c < n; c++) row[c] = row[c] * s * column_scales[c];
        }
    }
}

/* ---- matmul primitive descriptors ------------------------------------------------------------ */

/* A matmul pd for rows x in -> rows x out with the given weights layout (NULL: format any). */
static dnnl_status_t create_matmul_pd(dnnl_engine_t engine, dnnl_data_type_t type, int64_t rows, int64_t in,
                                      int64_t out, bool has_bias, const dnnl_memory_desc_t *weights_layout,
                                      dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t src_md, weights_md, bias_md, dst_md;
    dnnl_matmul_desc_t matmul;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t status;
    const dnnl_dims_t src_dims = {rows, in}, weights_dims = {in, out}, bias_dims = {1, out}, dst_dims = {rows, out};
    *pd = NULL;
    if ((status = dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, type, dnnl_ab)) != dnnl_success) return status;
    if (weights_layout) {
        weights_md = *weights_layout;
    } else if ((status = dnnl_memory_desc_init_by_tag(&weights_md, 2, weights_dims, type, dnnl_format_tag_any)) !=
               dnnl_success) {
        return status;
    }
    if ((status = dnnl_memory_desc_init_by_tag(&bias_md, 2, bias_dims, dnnl_f32, dnnl_ab)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab)) != dnnl_success) return status;
    if ((status = dnnl_matmul_desc_init(&matmul, &src_md, &weights_md, has_bias ? &bias_md : NULL, &dst_md)) !=
        dnnl_success) {
        return status;
    }
    /* The scratchpad is passed by forward, so concurrent executions never share one. */
    if ((status = dnnl_primitive_attr_create(&attr)) != dnnl_success) return status;
    status = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (status == dnnl_success) status = dnnl_primitive_desc_create(pd, &matmul, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    return status;
}

/* int8 linears add their bias while dequantising, after the matmul. */
static bool matmul_takes_bias(dnnl_data_type_t weights_type, bool has_bias) {
    return has_bias && weights_type != dnnl_s8;
}

static bool bias_in_matmul(const dmllm_linear *linear) {
    return matmul_takes_bias(linear->weights_type, linear->bias != NULL);
}

/* Creates the primitive for one chunk of rows, with weights in the linear's packed layout. */
static dmllm_status create_chunk_primitive(const dmllm_linear *linear, int64_t rows, cached_primitive *entry) {
    dnnl_engine_t engine = linear->backend->engine;
    dnnl_primitive_desc_t pd;
    const bool has_bias = bias_in_matmul(linear);
    DNNL_TRY(create_matmul_pd(engine, linear->weights_type, rows, linear->in_features, linear->out_features, has_bias,
                              NULL, &pd),
             "creating a %s matmul for %lld x %lld -> %lld", dnnl_dt2str(linear->weights_type), (long long)rows,
             (long long)linear->in_features, (long long)linear->out_features);
    if (!dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &linear->packed_md)) {
        /* This M prefers another blocking; ask for the one the weights were packed in. */
        dnnl_primitive_desc_destroy(pd);
        DNNL_TRY(create_matmul_pd(engine, linear->weights_type, rows, linear->in_features, linear->out_features,
                                  has_bias, &linear->packed_md, &pd),
                 "creating a matmul for %lld rows on weights packed for another M", (long long)rows);
    }
    entry->in_features = linear->in_features;
    entry->out_features = linear->out_features;
    entry->rows = rows;
    entry->n_threads = omp_get_max_threads();
    entry->weights_type = linear->weights_type;
    entry->has_bias = has_bias;
    entry->scratchpad_bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    dnnl_status_t status = dnnl_primitive_create(&entry->primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    DNNL_TRY(status, "creating the matmul primitive for %lld rows", (long long)rows);
    return DMLLM_OK;
}

static bool entry_matches(const cached_primitive *entry, const dmllm_linear *linear, int64_t rows, int n_threads) {
    return entry->rows == rows && entry->n_threads == n_threads && entry->in_features == linear->in_features &&
           entry->out_features == linear->out_features && entry->weights_type == linear->weights_type &&
           entry->has_bias == bias_in_matmul(linear);
}

/* Finds or creates the primitive for rows; *owned tells the caller to destroy it after use
 * (only when the cache is full). */
static dmllm_status get_chunk_primitive(const dmllm_linear *linear, int64_t rows, cached_primitive *out, bool *owned) {
    primitive_cache *cache = linear->backend->cache;
    const int n_threads = omp_get_max_threads();
    pthread_mutex_lock(&cache->lock);
    for (int i = 0; i < cache->count; i++) {
        if (entry_matches(&cache->entries[i], linear, rows, n_threads)) {
            *out = cache->entries[i];
            *owned = false;
            pthread_mutex_unlock(&cache->lock);
            return DMLLM_OK;
        }
    }
    /* Created under the lock: a second thread wanting the same primitive waits instead of JITting twice. */
    dmllm_status status = create_chunk_primitive(linear, rows, out);
    *owned = true;
    if (status == DMLLM_OK && cache->count < PRIMITIVE_CACHE_CAPACITY) {
        cache->entries[cache->count++] = *out;
        *owned = false;
    }
    pthread_mutex_unlock(&cache->lock);
    return status;
}

/* ---- backend --------------------------------------------------------------------------------- */

static const char *compute_name(dmllm_compute_type compute) {
    switch (compute) {
    case DMLLM_COMPUTE_BF16: return "onednn-bf16";
    case DMLLM_COMPUTE_F32: return "onednn-f32";
    case DMLLM_COMPUTE_OPENBLAS: return "openblas-f32";
    case DMLLM_COMPUTE_AUTO: break;
    }
    return "auto";
}

static const char *weights_name(dmllm_weights_type weights) {
    switch (weights) {
    case DMLLM_WEIGHTS_BF16: return "bf16";
    case DMLLM_WEIGHTS_F32: return "f32";
    case DMLLM_WEIGHTS_INT8: return "int8";
    case DMLLM_WEIGHTS_AUTO: break;
    }
    return "auto";
}

static dmllm_status compute_from_environment(dmllm_compute_type *compute) {
    const char *value = getenv("DMLLM_COMPUTE");
    if (!value || !value[0]) return DMLLM_OK;
    if (strcmp(value, "bf16") == 0) *compute = DMLLM_COMPUTE_BF16;
    else if (strcmp(value, "f32") == 0) *compute = DMLLM_COMPUTE_F32;
    else if (strcmp(value, "openblas") == 0) *compute = DMLLM_COMPUTE_OPENBLAS;
    else return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "DMLLM_COMPUTE=%s: expected bf16, f32 or openblas", value);
    return DMLLM_OK;
}

/* Whether oneDNN implements a bf16 matmul here at all, and whether natively (brgemm on
 * avx512_core_bf16) rather than by slower emulation. */
static dmllm_status probe_bf16(dnnl_engine_t engine, bool *implemented, bool *native) {
    dnnl_primitive_desc_t pd;
    dnnl_status_t status = create_matmul_pd(engine, dnnl_bf16, 1, 64, 64, false, NULL, &pd);
    *implemented = status == dnnl_success;
    *native = false;
    if (status == dnnl_unimplemented) return DMLLM_OK;
    DNNL_TRY(status, "probing for a bf16 matmul");
    dnnl_primitive_desc_destroy(pd);
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    *native = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    return DMLLM_OK;
}

static dmllm_status resolve_compute(dmllm_backend *backend, dmllm_compute_type requested) {
    dmllm_compute_type compute = requested;
    if (compute == DMLLM_COMPUTE_AUTO) DMLLM_TRY(compute_from_environment(&compute));
    const bool automatic = compute == DMLLM_COMPUTE_AUTO;
    if (compute == DMLLM_COMPUTE_OPENBLAS) {
        backend->compute = compute;
        return DMLLM_OK;
    }
    DNNL_TRY(dnnl_engine_create(&backend->engine, dnnl_cpu, 0), "creating the oneDNN CPU engine");
    if (compute == DMLLM_COMPUTE_F32) {
        backend->compute = compute;
        return DMLLM_OK;
    }
    bool implemented, native;
    DMLLM_TRY(probe_bf16(backend->engine, &implemented, &native));
    if (automatic && !native) {
        dmllm_log(DMLLM_LOG_INFO, "oneDNN has no native bf16 matmul on this CPU (ISA 0x%x); using onednn-f32",
                  (unsigned)dnnl_get_effective_cpu_isa());
        backend->compute = DMLLM_COMPUTE_F32;
        return DMLLM_OK;
    }
    if (!implemented) {
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED,
                          "bf16 compute requested but oneDNN has no bf16 matmul on this CPU "
                          "(dnnl_unimplemented, ISA 0x%x); use f32",
                          (unsigned)dnnl_get_effective_cpu_isa());
    }
    backend->compute = DMLLM_COMPUTE_BF16;
    return DMLLM_OK;
}

/* Whether oneDNN runs an s8 x s8 matmul here with VNNI (or AMX) dot products; without them it
 * would be slower than f32, so int8 weights are refused rather than emulated. */
static dmllm_status probe_int8(dnnl_engine_t engine) {
    dnnl_primitive_desc_t pd;
    dnnl_status_t status = create_matmul_pd(engine, dnnl_s8, 1, 64, 64, false, NULL, &pd);
    if (status == dnnl_success) dnnl_primitive_desc_destroy(pd);
    else if (status != dnnl_unimplemented) DNNL_TRY(status, "probing for an int8 matmul");
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    const bool vnni = (isa & dnnl_cpu_isa_avx512_core_vnni) == dnnl_cpu_isa_avx512_core_vnni ||
                      (isa & dnnl_cpu_isa_avx2_vnni) == dnnl_cpu_isa_avx2_vnni;
    if (status == dnnl_success && vnni) return DMLLM_OK;
    return dmllm_fail(DMLLM_ERR_UNSUPPORTED,
                      "int8 weights requested but oneDNN has no VNNI int8 matmul on this CPU (ISA 0x%x%s); "
                      "use bf16 or f32 weights", isa, status == dnnl_unimplemented ? ", dnnl_unimplemented" : "");
}

/* The compute type the requested weights imply (bf16 and f32 weights pick their own oneDNN path);
 * fails when both were given and disagree. */
static dmllm_status compute_for_weights(dmllm_compute_type *compute, dmllm_weights_type weights) {
    const dmllm_compute_type wanted = weights == DMLLM_WEIGHTS_BF16 ? DMLLM_COMPUTE_BF16
                                      : weights == DMLLM_WEIGHTS_F32 ? DMLLM_COMPUTE_F32
                                                                     : DMLLM_COMPUTE_AUTO;
    const bool f32_compute = *compute == DMLLM_COMPUTE_F32 || *compute == DMLLM_COMPUTE_OPENBLAS;
    if (weights == DMLLM_WEIGHTS_INT8 && *compute == DMLLM_COMPUTE_OPENBLAS)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "int8 weights run on oneDNN only, not with compute openblas");
    if (wanted == DMLLM_COMPUTE_AUTO || *compute == wanted || (wanted == DMLLM_COMPUTE_F32 && f32_compute))
        return DMLLM_OK;
    if (*compute != DMLLM_COMPUTE_AUTO)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s weights conflict with compute %s", weights_name(weights),
                          compute_name(*compute));
    *compute = wanted;
    return DMLLM_OK;
}

dmllm_status dmllm_backend_create(dmllm_compute_type requested, dmllm_backend **out) {
    return dmllm_backend_create_with_weights(requested, DMLLM_WEIGHTS_AUTO, out);
}

dmllm_status dmllm_backend_create_with_weights(dmllm_compute_type requested, dmllm_weights_type weights,
                                               dmllm_backend **out) {
    *out = NULL;
    if ((unsigned)requested > DMLLM_COMPUTE_OPENBLAS) {
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "unknown compute type %d", (int)requested);
    }
    if ((unsigned)weights > DMLLM_WEIGHTS_INT8) {
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "unknown weights type %d", (int)weights);
    }
    DMLLM_TRY(compute_for_weights(&requested, weights));
    dmllm_backend *backend = dmllm_calloc(1, sizeof *backend);
    primitive_cache *cache = dmllm_calloc(1, sizeof *cache);
    if (!backend || !cache) {
        free(backend);
        free(cache);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating the compute backend");
    }
    pthread_mutex_init(&cache->lock, NULL);
    backend->cache = cache;
    dmllm_status status = resolve_compute(backend, requested);
    backend->weights = backend->compute == DMLLM_COMPUTE_BF16 ? DMLLM_WEIGHTS_BF16 : DMLLM_WEIGHTS_F32;
    if (status == DMLLM_OK && weights == DMLLM_WEIGHTS_INT8) {
        status = probe_int8(backend->engine);
        backend->weights = DMLLM_WEIGHTS_INT8;
    }
    if (status != DMLLM_OK) {
        dmllm_backend_free(backend);
        return status;
    }
    const dnnl_version_t *version = dnnl_version();
    dmllm_log(DMLLM_LOG_INFO, "compute backend %s, %s weights (oneDNN %d.%d.%d, OpenBLAS %s)",
              compute_name(backend->compute), weights_name(backend->weights), version->major, version->minor,
              version->patch, openblas_get_corename());
    *out = backend;
    return DMLLM_OK;
}

void dmllm_backend_free(dmllm_backend *backend) {
    if (!backend) return;
    for (int i = 0; i < backend->cache->count; i++) dnnl_primitive_destroy(backend->cache->entries[i].primitive);
    pthread_mutex_destroy(&backend->cache->lock);
    free(backend->cache);
    if (backend->engine) dnnl_engine_destroy(backend->engine);
    free(backend);
}

dmllm_compute_type dmllm_backend_compute(const dmllm_backend *backend) { return backend->compute; }

const char *dmllm_backend_name(const dmllm_backend *backend) { return compute_name(backend->compute); }

dmllm_weights_type dmllm_backend_weights(const dmllm_backend *backend) { return backend->weights; }

const char *dmllm_backend_weights_name(const dmllm_backend *backend) { return weights_name(backend->weights); }

/* ---- linear creation ------------------------------------------------------------------------- */

/* Sets linear->packed_md to the weights layout the matmul chooses for the linear's shape and
 * weights_type. */
static dmllm_status choose_layout(dmllm_linear *linear, bool has_bias) {
    const int64_t in = linear->in_features, out = linear->out_features;
    dnnl_primitive_desc_t matmul_pd;
    DNNL_TRY(create_matmul_pd(linear->backend->engine, linear->weights_type, LINEAR_CHUNK_ROWS, in,
                              out, matmul_takes_bias(linear->weights_type, has_bias), NULL,
                              &matmul_pd),
             "choosing the packed layout of a %lld x %lld %s weight", (long long)out, (long long)in,
             dnnl_dt2str(linear->weights_type));
    linear->packed_md = *dnnl_primitive_desc_query_md(matmul_pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(matmul_pd);
    dnnl_memory_desc_t pairs_md;
    const dnnl_dims_t dims = {in, out};
    linear->gemv_k_padded =
        linear->weights_type == dnnl_bf16 &&
                dnnl_memory_desc_init_by_tag(&pairs_md, 2, dims, dnnl_bf16, dnnl_BA16a64b2a) == dnnl_success &&
                dnnl_memory_desc_equal(&pairs_md, &linear->packed_md)
            ? pairs_md.padded_dims[0]
            : 0;
    return DMLLM_OK;
}

/* Reorders W [out, in] (row stride ld, type source_type) into the packed layout chosen by the
 * matmul. */
static dmllm_status pack_weights(dmllm_linear *linear, dnnl_data_type_t source_type, const void *w,
                                 int64_t ld) {
    dnnl_engine_t engine = linear->backend->engine;
    const int64_t in = linear->in_features, out = linear->out_features;
    DMLLM_TRY(choose_layout(linear, linear->bias != NULL));

    /* W [out, in] is the matmul's (K = in, N = out) matrix with strides (1, ld): tag ba when ld == in. */
    dnnl_memory_desc_t source_md;
    const dnnl_dims_t dims = {in, out}, strides = {1, ld};
    DNNL_TRY(dnnl_memory_desc_init_by_strides(&source_md, 2, dims, source_type, strides), "describing a weight");
    const size_t packed_bytes = dnnl_memory_desc_get_size(&linear->packed_md);
    DMLLM_TRY(dmllm_alloc_large(&linear->packed_weights, packed_bytes, 1, "packed weights"));

    dnnl_primitive_desc_t reorder_pd;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&reorder_pd, &source_md, engine, &linear->packed_md, engine, NULL),
             "creating the %s -> %s weight reorder", dnnl_dt2str(source_type), dnnl_dt2str(linear->weights_type));
    dnnl_primitive_t reorder;
    dnnl_status_t status = dnnl_primitive_create(&reorder, reorder_pd);
    dnnl_primitive_desc_destroy(reorder_pd);
    DNNL_TRY(status, "creating the weight reorder primitive");

    dnnl_memory_t source = NULL, packed = NULL;
    dnnl_stream_t stream = NULL;
    status = dnnl_memory_create(&source, &source_md, engine, (void *)w);
    if (status == dnnl_success) status = dnnl_memory_create(&packed, &linear->packed_md, engine, linear->packed_weights);
    if (status == dnnl_success) status = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
    if (status == dnnl_success) {
        const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, packed}};
        status = dnnl_primitive_execute(reorder, stream, 2, args);
        if (status == dnnl_success) status = dnnl_stream_wait(stream);
    }
    if (stream) dnnl_stream_destroy(stream);
    if (packed) dnnl_memory_destroy(packed);
    if (source) dnnl_memory_destroy(source);
    dnnl_primitive_destroy(reorder);
    DNNL_TRY(status, "packing a %lld x %lld weight", (long long)out, (long long)in);
    return DMLLM_OK;
}

static dnnl_data_type_t weights_type_of(const dmllm_backend *backend) {
    return backend->compute == DMLLM_COMPUTE_BF16 ? dnnl_bf16 : dnnl_f32;
}

/* Quantises W [out, in] (row stride ld) per output channel and packs the s8 matrix. */
static dmllm_status fill_int8_weights(dmllm_linear *linear, dmllm_dtype dtype, const void *w, int64_t ld) {
    const int64_t in = linear->in_features, out = linear->out_features;
    const size_t element = dmllm_dtype_size(dtype);
    linear->weights_type = dnnl_s8;
    DMLLM_TRY(dmllm_alloc(&linear->weight_scales, (size_t)out, sizeof(float), "int8 weight scales"));
    int8_t *quantised; /* [out, in] */
    float *widened;    /* [threads, in]: one f32 row per thread */
    const int threads = omp_get_max_threads();
    DMLLM_TRY(dmllm_alloc(&quantised, (size_t)(out * in), 1, "int8 weights before packing"));
    dmllm_status status = dmllm_alloc(&widened, (size_t)threads * (size_t)in, sizeof(float), "a widened weight row");
    if (status != DMLLM_OK) {
        free(quantised);
        return status;
    }
    const bool vectorised = dmllm_kernels_use_avx512();
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < out; r++) {
        float *row = widened + (size_t)omp_get_thread_num() * (size_t)in;
        dmllm_convert_to_f32(dtype, (const char *)w + (size_t)(r * ld) * element, row, (size_t)in);
        linear->weight_scales[r] = quantise_row(row, quantised + r * in, in, vectorised);
    }
    free(widened);
    status = pack_weights(linear, dnnl_s8, quantised, in);
    free(quantised);
    return status;
}

static dmllm_status fill_weights(dmllm_linear *linear, bool int8, dmllm_dtype dtype, const void *w, int64_t ld) {
    const int64_t in = linear->in_features, out = linear->out_features;
    const size_t element = dmllm_dtype_size(dtype);
    if (int8) return fill_int8_weights(linear, dtype, w, ld);
    if (linear->backend->compute == DMLLM_COMPUTE_OPENBLAS) {
        DMLLM_TRY(dmllm_alloc_large(&linear->weights_f32, (size_t)(out * in), sizeof(float),
                                    "f32 weights"));
        for (int64_t r = 0; r < out; r++) {
            dmllm_convert_to_f32(dtype, (const char *)w + (size_t)(r * ld) * element, linear->weights_f32 + r * in,
                                 (size_t)in);
        }
        return DMLLM_OK;
    }
    linear->weights_type = weights_type_of(linear->backend);
    if (dtype != DMLLM_DTYPE_F16) return pack_weights(linear, dtype == DMLLM_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32, w, ld);
    /* oneDNN 2.6 has no f16 reorders on most CPUs: widen to f32 [out, in] first. */
    float *widened; /* [out, in] */
    DMLLM_TRY(dmllm_alloc(&widened, (size_t)(out * in), sizeof(float), "f16 weights widened to f32"));
    for (int64_t r = 0; r < out; r++) {
        dmllm_convert_to_f32(dtype, (const uint16_t *)w + r * ld, widened + r * in, (size_t)in);
    }
    dmllm_status status = pack_weights(linear, dnnl_f32, widened, in);
    free(widened);
    return status;
}

static dmllm_status create_linear(const dmllm_backend *backend, bool int8, dmllm_dtype dtype, const void *w,
                                  int64_t out_features, int64_t in_features, int64_t ld, const float *bias,
                                  dmllm_linear **out) {
    *out = NULL;
    if (!backend || !w) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "linear: NULL backend or weights");
    if (dtype != DMLLM_DTYPE_F32 && dtype != DMLLM_DTYPE_F16 && dtype != DMLLM_DTYPE_BF16) {
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "linear: weights of dtype %s are not supported", dmllm_dtype_name(dtype));
    }
    if (out_features <= 0 || in_features <= 0 || ld < in_features || out_features > INT32_MAX ||
        in_features > INT32_MAX) {
        return dmllm_fail(DMLLM_ERR_SHAPE, "linear: bad weight shape [%lld, %lld] with row stride %lld",
                          (long long)out_features, (long long)in_features, (long long)ld);
    }
    dmllm_linear *linear = dmllm_calloc(1, sizeof *linear);
    if (!linear) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating a linear");
    linear->backend = backend;
    linear->out_features = out_features;
    linear->in_features = in_features;
    dmllm_status status = DMLLM_OK;
    if (bias) {
        status = dmllm_alloc(&linear->bias, (size_t)out_features, sizeof(float), "linear bias");
        if (status == DMLLM_OK) memcpy(linear->bias, bias, (size_t)out_features * sizeof(float));
    }
    if (status == DMLLM_OK) status = fill_weights(linear, int8, dtype, w, ld);
    if (status != DMLLM_OK) {
        dmllm_fail_context(status, "linear [%lld, %lld] (%s) on %s%s", (long long)out_features, (long long)in_features,
                           dmllm_dtype_name(dtype), dmllm_backend_name(backend), int8 ? " with int8 weights" : "");
        dmllm_linear_free(linear);
        return status;
    }
    *out = linear;
    return DMLLM_OK;
}

/* Whether a linear gets s8 weights: a quantisable one when the backend's weights are int8. */
static bool quantised(const dmllm_backend *backend, bool quantisable) {
    return backend && quantisable && backend->weights == DMLLM_WEIGHTS_INT8;
}

dmllm_status dmllm_linear_create(const dmllm_backend *backend, dmllm_dtype dtype, const void *w,
                                 int64_t out_features, int64_t in_features, int64_t ld, const float *bias,
                                 dmllm_linear **out) {
    return create_linear(backend, quantised(backend, true), dtype, w, out_features, in_features, ld,
                         bias, out);
}

dmllm_status dmllm_linear_create_unquantised(const dmllm_backend *backend, dmllm_dtype dtype, const void *w,
                                             int64_t out_features, int64_t in_features, int64_t ld,
                                             const float *bias, dmllm_linear **out) {
    return create_linear(backend, false, dtype, w, out_features, in_features, ld, bias, out);
}

void dmllm_linear_free(dmllm_linear *linear) {
    if (!linear) return;
    if (!linear->mapped) {
        free(linear->bias);
        free(linear->packed_weights);
        free(linear->weight_scales);
        free(linear->weights_f32);
    }
    free(linear);
}

/* ---- packed-weight cache --------------------------------------------------------------------- */

void dmllm_backend_set_pack_cache(dmllm_backend *backend, dmllm_pack_cache *cache) {
    backend->packed = cache;
}

dmllm_status dmllm_backend_cache_key(const dmllm_backend *backend, char *key, size_t size) {
    const dnnl_version_t *version = dnnl_version();
    const int written =
        snprintf(key, size,
                 "densemllm %s packed weights; oneDNN %d.%d.%d (%s), ISA 0x%x; compute %s; "
                 "weights %s; memory desc %zu bytes",
                 dmllm_version_string(), version->major, version->minor, version->patch,
                 version->hash, (unsigned)dnnl_get_effective_cpu_isa(),
                 compute_name(backend->compute), weights_name(backend->weights),
                 sizeof(dnnl_memory_desc_t));
    if (written < 0 || (size_t)written >= size)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "packed-weight cache key needs %d bytes, have %zu", written, size);
    return DMLLM_OK;
}

/* Whether a cached record and its arrays are exactly what packing this linear would produce
 * here (int8: with s8 weights); fills the linear's weights (pointing into the mapping) when they
 * are. */
static dmllm_status adopt_record(dmllm_linear *linear, const linear_record *record,
                                 const dmllm_pack_array *arrays, int n_arrays, bool has_bias,
                                 bool int8, bool *adopted) {
    const dmllm_backend *backend = linear->backend;
    const bool openblas = backend->compute == DMLLM_COMPUTE_OPENBLAS;
    const int64_t out = linear->out_features, in = linear->in_features;
    const size_t vector_bytes = (size_t)out * sizeof(float); /* the bias or the weight scales */
    *adopted = false;
    if (record->kind != (openblas ? LINEAR_RECORD_OPENBLAS : LINEAR_RECORD_ONEDNN) ||
        record->out_features != out || record->in_features != in || record->has_bias != has_bias ||
        n_arrays != 1 + (int)has_bias + (int)int8 ||
        (has_bias && arrays[1].bytes != vector_bytes) ||
        (int8 && arrays[n_arrays - 1].bytes != vector_bytes))
        return DMLLM_OK;
    if (openblas) {
        if (arrays[0].bytes != (size_t)(out * in) * sizeof(float)) return DMLLM_OK;
        linear->weights_f32 = (float *)arrays[0].data;
    } else {
        linear->weights_type = int8 ? dnnl_s8 : weights_type_of(backend);
        if (record->weights_type != (uint32_t)linear->weights_type || record->packed_md.ndims != 2)
            return DMLLM_OK;
        DMLLM_TRY(choose_layout(linear, has_bias));
        if (!dnnl_memory_desc_equal(&linear->packed_md, &record->packed_md) ||
            arrays[0].bytes != dnnl_memory_desc_get_size(&linear->packed_md))
            return DMLLM_OK;
        linear->packed_weights = (void *)arrays[0].data;
    }
    linear->bias = has_bias ? (float *)arrays[1].data : NULL;
    linear->weight_scales = int8 ? (float *)arrays[n_arrays - 1].data : NULL;
    linear->mapped = true;
    *adopted = true;
    return DMLLM_OK;
}

dmllm_status dmllm_linear_find(const dmllm_backend *backend, const char *name, int64_t out_features,
                               int64_t in_features, bool has_bias, bool quantisable,
                               dmllm_linear **out) {
    *out = NULL;
    const void *meta;
    size_t meta_bytes;
    dmllm_pack_array arrays[DMLLM_PACK_MAX_ARRAYS];
    int n_arrays;
    if (!dmllm_pack_cache_get(backend->packed, name, &meta, &meta_bytes, arrays, &n_arrays) ||
        meta_bytes != sizeof(linear_record))
        return DMLLM_OK;
    linear_record record; /* copied: the meta record is not aligned in the mapping */
    memcpy(&record, meta, sizeof record);
    dmllm_linear *linear = dmllm_calloc(1, sizeof *linear);
    if (!linear) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating a linear");
    linear->backend = backend;
    linear->out_features = out_features;
    linear->in_features = in_features;
    bool adopted;
    dmllm_status status = adopt_record(linear, &record, arrays, n_arrays, has_bias,
                                       quantised(backend, quantisable), &adopted);
    if (status != DMLLM_OK || !adopted) {
        free(linear);
        return status;
    }
    *out = linear;
    return DMLLM_OK;
}

dmllm_status dmllm_linear_create_named(const dmllm_backend *backend, const char *name,
                                       dmllm_dtype dtype, const void *w, int64_t out_features,
                                       int64_t in_features, int64_t ld, const float *bias,
                                       bool quantisable, dmllm_linear **out) {
    DMLLM_TRY(create_linear(backend, quantised(backend, quantisable), dtype, w, out_features,
                            in_features, ld, bias, out));
    if (!backend->packed) return DMLLM_OK;
    const dmllm_linear *linear = *out;
    const bool openblas = backend->compute == DMLLM_COMPUTE_OPENBLAS;
    linear_record record;
    memset(&record, 0, sizeof record); /* padding too: the file's bytes are deterministic */
    record.kind = openblas ? LINEAR_RECORD_OPENBLAS : LINEAR_RECORD_ONEDNN;
    record.out_features = out_features;
    record.in_features = in_features;
    record.has_bias = bias != NULL;
    const size_t f32_bytes = (size_t)(out_features * in_features) * sizeof(float);
    const size_t vector_bytes = (size_t)out_features * sizeof(float);
    dmllm_pack_array arrays[3] = {{linear->weights_f32, f32_bytes}};
    int n_arrays = 1;
    if (!openblas) {
        record.weights_type = (uint32_t)linear->weights_type;
        record.packed_md = linear->packed_md;
        arrays[0] = (dmllm_pack_array){linear->packed_weights,
                                       dnnl_memory_desc_get_size(&linear->packed_md)};
    }
    if (bias) arrays[n_arrays++] = (dmllm_pack_array){linear->bias, vector_bytes};
    if (linear->weight_scales)
        arrays[n_arrays++] = (dmllm_pack_array){linear->weight_scales, vector_bytes};
    dmllm_pack_cache_put(backend->packed, name, &record, sizeof record, arrays, n_arrays);
    return DMLLM_OK;
}

int64_t dmllm_linear_out_features(const dmllm_linear *linear) { return linear->out_features; }
int64_t dmllm_linear_in_features(const dmllm_linear *linear) { return linear->in_features; }

/* ---- forward --------------------------------------------------------------------------------- */

/* Runs one chunk: y[rows, out] = source[rows, in] W^T + b, source already in the weights' type. */
static dmllm_status execute_chunk(const dmllm_linear *linear, const cached_primitive *entry, dnnl_stream_t stream,
                                  const void *source, float *y, void *scratchpad) {
    dnnl_engine_t engine = linear->backend->engine;
    const int64_t rows = entry->rows;
    const dnnl_dims_t src_dims = {rows, linear->in_features}, dst_dims = {rows, linear->out_features},
                      bias_dims = {1, linear->out_features}, scratch_dims = {(int64_t)entry->scratchpad_bytes};
    dnnl_memory_desc_t src_md, dst_md, bias_md, scratch_md;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, linear->weights_type, dnnl_ab), "describing the input");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab), "describing the output");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 2, bias_dims, dnnl_f32, dnnl_ab), "describing the bias");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&scratch_md, 1, scratch_dims, dnnl_u8, dnnl_a), "describing the scratchpad");

    enum { SRC, WEIGHTS, DST, BIAS, SCRATCH, N_MEMORIES };
    dnnl_memory_t memories[N_MEMORIES] = {NULL};
    dnnl_status_t status = dnnl_memory_create(&memories[SRC], &src_md, engine, (void *)source);
    if (status == dnnl_success)
        status = dnnl_memory_create(&memories[WEIGHTS], &linear->packed_md, engine, linear->packed_weights);
    if (status == dnnl_success) status = dnnl_memory_create(&memories[DST], &dst_md, engine, y);
    if (status == dnnl_success && bias_in_matmul(linear))
        status = dnnl_memory_create(&memories[BIAS], &bias_md, engine, linear->bias);
    if (status == dnnl_success && entry->scratchpad_bytes)
        status = dnnl_memory_create(&memories[SCRATCH], &scratch_md, engine, scratchpad);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[N_MEMORIES] = {
            {DNNL_ARG_SRC, memories[SRC]}, {DNNL_ARG_WEIGHTS, memories[WEIGHTS]}, {DNNL_ARG_DST, memories[DST]}};
        int n_args = 3;
        if (memories[BIAS]) args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, memories[BIAS]};
        if (memories[SCRATCH]) args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, memories[SCRATCH]};
        status = dnnl_primitive_execute(entry->primitive, stream, n_args, args);
        if (status == dnnl_success) status = dnnl_stream_wait(stream);
    }
    for (int i = 0; i < N_MEMORIES; i++) {
        if (memories[i]) dnnl_memory_destroy(memories[i]);
    }
    DNNL_TRY(status, "running a %lld x %lld -> %lld matmul", (long long)rows, (long long)linear->in_features,
             (long long)linear->out_features);
    return DMLLM_OK;
}

/* Where the f32 row scales follow the s8 rows [chunk_rows, in] in forward's buffer (64-aligned). */
static size_t row_scales_offset(int64_t chunk_rows, int64_t in) {
    return ((size_t)(chunk_rows * in) + 63) & ~(size_t)63;
}

bool dmllm_linear_runs_as_gemv(const dmllm_linear *linear, int64_t m) {
    return linear->gemv_k_padded > 0 && m <= DMLLM_GEMV_MAX_ROWS && dmllm_gemv_available();
}

/* Rows r < m of x (row stride x_stride) into [m, k_padded] bf16, zero-padded past in: what
 * dmllm_gemv_bf16_pairs reads. */
static void convert_rows_padded(const float *x, int64_t x_stride, int64_t m, int64_t in, int64_t k_padded,
                                uint16_t *converted) {
    for (int64_t r = 0; r < m; r++) {
        convert_rows_to_bf16(x + r * x_stride, converted + r * k_padded, 1, in);
        memset(converted + r * k_padded + in, 0, (size_t)(k_padded - in) * sizeof *converted);
    }
}

/* A few rows straight from the packed weights (gemv.h). */
static dmllm_status forward_gemv(const dmllm_linear *linear, const float *x, int64_t m, float *y) {
    const int64_t k_padded = linear->gemv_k_padded;
    uint16_t *converted; /* [m, k_padded] */
    DMLLM_TRY(dmllm_alloc(&converted, dmllm_linear_forward_bytes(linear, m), 1, "converted activations"));
    convert_rows_padded(x, linear->in_features, m, linear->in_features, k_padded, converted);
    dmllm_gemv_bf16_pairs(linear->packed_weights, k_padded, linear->out_features, converted, (int)m, linear->bias, y,
                          linear->out_features);
    free(converted);
    return DMLLM_OK;
}

static dmllm_status forward_onednn(const dmllm_linear *linear, const float *x, int64_t m, float *y) {
    if (dmllm_linear_runs_as_gemv(linear, m)) return forward_gemv(linear, x, m, y);
    const int64_t in = linear->in_features, out = linear->out_features;
    const int64_t chunk_rows = m < LINEAR_CHUNK_ROWS ? m : LINEAR_CHUNK_ROWS;
    const bool bf16 = linear->weights_type == dnnl_bf16, int8 = linear->weights_type == dnnl_s8;
    dnnl_stream_t stream;
    DNNL_TRY(dnnl_stream_create(&stream, linear->backend->engine, dnnl_stream_default_flags), "creating a stream");
    void *converted = NULL;    /* [chunk_rows, in] of the weights' type (bf16 or s8), then for s8
                                  [chunk_rows] f32 row scales; NULL for f32 */
    void *scratchpad = NULL;   /* the largest chunk primitive's scratchpad */
    size_t scratchpad_capacity = 0;
    const size_t converted_bytes = dmllm_linear_forward_bytes(linear, m);
    dmllm_status status = converted_bytes ? dmllm_alloc(&converted, converted_bytes, 1, "converted activations")
                                          : DMLLM_OK;
    float *row_scales = int8 && converted ? (float *)((char *)converted + row_scales_offset(chunk_rows, in)) : NULL;
    for (int64_t row0 = 0; status == DMLLM_OK && row0 < m; row0 += chunk_rows) {
        const int64_t rows = m - row0 < chunk_rows ? m - row0 : chunk_rows;
        cached_primitive entry;
        bool owned;
        status = get_chunk_primitive(linear, rows, &entry, &owned);
        if (status != DMLLM_OK) break;
        if (entry.scratchpad_bytes > scratchpad_capacity) {
            free(scratchpad);
            scratchpad = NULL;
            scratchpad_capacity = entry.scratchpad_bytes;
            status = dmllm_alloc(&scratchpad, scratchpad_capacity, 1, "matmul scratchpad");
        }
        if (status == DMLLM_OK) {
            if (bf16) convert_rows_to_bf16(x + row0 * in, converted, rows, in);
            if (int8) quantise_rows(x + row0 * in, converted, row_scales, rows, in);
            status = execute_chunk(linear, &entry, stream, converted ? converted : (const void *)(x + row0 * in),
                                   y + row0 * out, scratchpad);
        }
        if (status == DMLLM_OK && int8)
            dequantise_rows(y + row0 * out, row_scales, linear->weight_scales, linear->bias, rows, out);
        if (owned) dnnl_primitive_destroy(entry.primitive);
    }
    free(scratchpad);
    free(converted);
    dnnl_stream_destroy(stream);
    return status;
}

size_t dmllm_linear_forward_bytes(const dmllm_linear *linear, int64_t m) {
    const int64_t chunk_rows = m < LINEAR_CHUNK_ROWS ? m : LINEAR_CHUNK_ROWS;
    if (linear->backend->compute == DMLLM_COMPUTE_OPENBLAS) return 0;
    if (dmllm_linear_runs_as_gemv(linear, m)) return (size_t)(m * linear->gemv_k_padded) * sizeof(uint16_t);
    if (linear->weights_type == dnnl_bf16) return (size_t)(chunk_rows * linear->in_features) * sizeof(uint16_t);
    if (linear->weights_type == dnnl_s8)
        return row_scales_offset(chunk_rows, linear->in_features) + (size_t)chunk_rows * sizeof(float);
    return 0;
}

/* pthread OpenBLAS: its thread count is set from serial code only, never inside an OpenMP region
 * (it would warn and may hang); nested calls use one thread. */
static dmllm_status forward_openblas(const dmllm_linear *linear, const float *x, int64_t m, float *y) {
    const int in = (int)linear->in_features, out = (int)linear->out_features;
    if (m > INT32_MAX) return dmllm_fail(DMLLM_ERR_SHAPE, "openblas linear: %lld rows exceed int", (long long)m);
    openblas_set_num_threads(omp_in_parallel() ? 1 : omp_get_max_threads());
    float beta = 0.0f;
    if (linear->bias) {
        for (int64_t r = 0; r < m; r++) memcpy(y + r * out, linear->bias, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    if (m == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, linear->weights_f32, in, x, 1, beta, y, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, out, in, 1.0f, x, in, linear->weights_f32, in,
                    beta, y, out);
    }
    return DMLLM_OK;
}

dmllm_status dmllm_linear_forward(const dmllm_linear *linear, const float *x, int64_t m, float *y) {
    if (!linear || (m > 0 && (!x || !y)) || m < 0) {
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "linear forward: NULL linear or buffers, or m = %lld",
                          (long long)m);
    }
    if (m == 0) return DMLLM_OK;
    if (linear->backend->compute == DMLLM_COMPUTE_OPENBLAS) return forward_openblas(linear, x, m, y);
    return forward_onednn(linear, x, m, y);
}

/* Whether dmllm_linear_forward_each runs the linears side by side, each through gemv.c. */
static bool runs_side_by_side(dmllm_linear *const *linears, int count, int64_t m) {
    for (int i = 0; i < count; i++)
        if (!dmllm_linear_runs_as_gemv(linears[i], m) || linears[i]->gemv_k_padded != linears[0]->gemv_k_padded)
            return false;
    return true;
}

size_t dmllm_linear_forward_each_bytes(dmllm_linear *const *linears, int count, int64_t m) {
    if (count <= 0 || m <= 0) return 0;
    if (runs_side_by_side(linears, count, m)) return (size_t)(count * m * linears[0]->gemv_k_padded) * sizeof(uint16_t);
    size_t widest = 0, nested = 0;
    for (int i = 0; i < count; i++) {
        if ((size_t)linears[i]->out_features > widest) widest = (size_t)linears[i]->out_features;
        const size_t b = dmllm_linear_forward_bytes(linears[i], m);
        if (b > nested) nested = b;
    }
    return (size_t)m * ((size_t)linears[0]->in_features + widest) * sizeof(float) + nested;
}

/* Gathers each linear's rows into contiguous buffers for dmllm_linear_forward, one linear after
 * another: the path for many rows, or where gemv.c does not apply. */
static dmllm_status forward_each_in_turn(dmllm_linear *const *linears, int count, int64_t m, const float *x,
                                         int64_t x_step, int64_t x_row_stride, float *y, int64_t y_step,
                                         int64_t y_row_stride) {
    const int64_t in = linears[0]->in_features;
    int64_t widest = 0;
    for (int i = 0; i < count; i++)
        if (linears[i]->out_features > widest) widest = linears[i]->out_features;
    float *rows_in, *rows_out; /* [m, in], [m, widest] */
    DMLLM_TRY(dmllm_alloc(&rows_in, (size_t)(m * in), sizeof *rows_in, "gathered linear inputs"));
    dmllm_status status = dmllm_alloc(&rows_out, (size_t)(m * widest), sizeof *rows_out, "gathered linear outputs");
    for (int i = 0; status == DMLLM_OK && i < count; i++) {
        const int64_t out = linears[i]->out_features;
        for (int64_t r = 0; r < m; r++)
            memcpy(rows_in + r * in, x + i * x_step + r * x_row_stride, (size_t)in * sizeof *rows_in);
        status = dmllm_linear_forward(linears[i], rows_in, m, rows_out);
        for (int64_t r = 0; status == DMLLM_OK && r < m; r++)
            memcpy(y + i * y_step + r * y_row_stride, rows_out + r * out, (size_t)out * sizeof *rows_out);
    }
    free(rows_in);
    free(rows_out);
    return status;
}

dmllm_status dmllm_linear_forward_each(dmllm_linear *const *linears, int count, int64_t m, const float *x,
                                       int64_t x_step, int64_t x_row_stride, float *y, int64_t y_step,
                                       int64_t y_row_stride) {
    if (!linears || count < 0 || m < 0 || (count > 0 && m > 0 && (!x || !y)))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "linear forward_each: NULL linears or buffers, or a negative count");
    if (count == 0 || m == 0) return DMLLM_OK;
    for (int i = 0; i < count; i++) {
        if (!linears[i]) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "linear forward_each: linear %d is NULL", i);
        if (linears[i]->in_features != linears[0]->in_features)
            return dmllm_fail(DMLLM_ERR_SHAPE, "linear forward_each: linear %d takes %lld inputs, linear 0 %lld", i,
                              (long long)linears[i]->in_features, (long long)linears[0]->in_features);
    }
    if (!runs_side_by_side(linears, count, m))
        return forward_each_in_turn(linears, count, m, x, x_step, x_row_stride, y, y_step, y_row_stride);
    /* Each linear is too small to split between threads (a head's 128 KB), so the threads share out
     * the linears instead; every input is converted first, so nothing inside can fail. */
    const int64_t in = linears[0]->in_features, k_padded = linears[0]->gemv_k_padded;
    uint16_t *converted; /* [count, m, k_padded] */
    DMLLM_TRY(dmllm_alloc(&converted, (size_t)(count * m * k_padded), sizeof *converted, "converted activations"));
    for (int i = 0; i < count; i++)
        convert_rows_padded(x + i * x_step, x_row_stride, m, in, k_padded, converted + i * m * k_padded);
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < count; i++)
        dmllm_gemv_bf16_pairs(linears[i]->packed_weights, k_padded, linears[i]->out_features,
                              converted + i * m * k_padded, (int)m, linears[i]->bias, y + i * y_step, y_row_stride);
    free(converted);
    return DMLLM_OK;
}
