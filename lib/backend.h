/*
 * backend.h: dense matrix multiplication, the only place that talks to oneDNN or OpenBLAS.
 * A dmllm_linear is a weight matrix W [out, in] (PyTorch Linear layout) converted and pre-packed
 * once at load for the chosen path, plus an optional f32 bias; forward computes y = x W^T + b.
 * Linears are immutable after creation and may be used by several sessions at once.
 * Keep every oneDNN call in backend.c so a oneDNN v3 port touches one file.
 */
#ifndef DMLLM_BACKEND_H
#define DMLLM_BACKEND_H

#include "common.h"

typedef struct dmllm_backend dmllm_backend;
typedef struct dmllm_linear dmllm_linear;
typedef struct dmllm_pack_cache dmllm_pack_cache;

/* Resolves AUTO (and the DMLLM_COMPUTE environment override) to a concrete path and probes it:
 * bf16 falls back to f32 with a log message when oneDNN has no bf16 matmul on this CPU
 * (dnnl_unimplemented), unless BF16 was requested explicitly, which then fails. */
dmllm_status dmllm_backend_create(dmllm_compute_type requested, dmllm_backend **out);
/* As dmllm_backend_create, with the weights' format: BF16 and F32 weights imply that compute
 * (and conflict with another one); INT8 makes dmllm_linear_create quantise, with the compute
 * type for the linears kept in floating point, and fails with DMLLM_ERR_UNSUPPORTED where oneDNN
 * has no VNNI/AMX int8 matmul or with OPENBLAS. */
dmllm_status dmllm_backend_create_with_weights(dmllm_compute_type requested, dmllm_weights_type weights,
                                               dmllm_backend **out);
void dmllm_backend_free(dmllm_backend *backend);
dmllm_compute_type dmllm_backend_compute(const dmllm_backend *backend);
const char *dmllm_backend_name(const dmllm_backend *backend); /* "onednn-bf16", "onednn-f32", "openblas-f32" */
dmllm_weights_type dmllm_backend_weights(const dmllm_backend *backend); /* BF16, F32 or INT8 */
const char *dmllm_backend_weights_name(const dmllm_backend *backend);  /* "bf16", "f32", "int8" */

/* w: out_features rows of in_features elements of dtype (F32/F16/BF16), row stride ld elements.
 * bias: out_features floats or NULL. Neither is referenced after the call. On a backend with
 * INT8 weights, W is quantised per output channel (symmetric, scale max|W[o, :]| / 127) and x
 * per row at each forward; the bias stays f32. */
dmllm_status dmllm_linear_create(const dmllm_backend *backend, dmllm_dtype dtype, const void *w,
                                 int64_t out_features, int64_t in_features, int64_t ld, const float *bias,
                                 dmllm_linear **out);
/* As dmllm_linear_create, but never int8: for the layers int8 weights leave in the compute type. */
dmllm_status dmllm_linear_create_unquantised(const dmllm_backend *backend, dmllm_dtype dtype, const void *w,
                                             int64_t out_features, int64_t in_features, int64_t ld,
                                             const float *bias, dmllm_linear **out);
void dmllm_linear_free(dmllm_linear *linear);
int64_t dmllm_linear_out_features(const dmllm_linear *linear);
int64_t dmllm_linear_in_features(const dmllm_linear *linear);

/* ---- packed-weight cache (packcache.h) ----
 * A load attaches its cache to the backend, then asks dmllm_linear_find for each linear by a name
 * unique within the model, and builds the ones not found with dmllm_linear_create_named, which
 * stores them. Detach (NULL) before the load ends; linears found keep pointing into the cache's
 * mapping, which must outlive them. */
void dmllm_backend_set_pack_cache(dmllm_backend *backend, dmllm_pack_cache *cache);
/* What the packed bytes depend on besides the checkpoint: library and oneDNN versions, the ISA
 * oneDNN dispatches to, the compute path, the weights' format. */
dmllm_status dmllm_backend_cache_key(const dmllm_backend *backend, char *key, size_t size);
/* The linear stored under name when its record is exactly what packing would produce here (kind,
 * shape, bias, weights type, and oneDNN's packed layout, compared with the one it chooses now);
 * else *out is NULL (no cache, absent, stale) and the caller packs it. quantisable: as for
 * dmllm_linear_create_named. Fails only on oneDNN or memory errors. */
dmllm_status dmllm_linear_find(const dmllm_backend *backend, const char *name, int64_t out_features,
                               int64_t in_features, bool has_bias, bool quantisable,
                               dmllm_linear **out);
/* dmllm_linear_create (quantisable) or dmllm_linear_create_unquantised (not), then stores the
 * linear under name in the attached cache (if any). */
dmllm_status dmllm_linear_create_named(const dmllm_backend *backend, const char *name,
                                       dmllm_dtype dtype, const void *w, int64_t out_features,
                                       int64_t in_features, int64_t ld, const float *bias,
                                       bool quantisable, dmllm_linear **out);

/* y[m, out] = x[m, in] W^T + b. x and y must not overlap. Uses the calling thread's OpenMP
 * thread count (the session sets it). */
dmllm_status dmllm_linear_forward(const dmllm_linear *linear, const float *x, int64_t m, float *y);
/* y_i = x_i W_i^T (+ b_i) for count linears of equal in_features, each on its own m rows: row r of
 * x_i at x + i * x_step + r * x_row_stride, of y_i at y + i * y_step + r * y_row_stride (floats).
 * For a few rows through gemv.c the linears run side by side on the threads (the per-head
 * projections of absorbed MLA attention), else one after another. */
dmllm_status dmllm_linear_forward_each(dmllm_linear *const *linears, int count, int64_t m, const float *x,
                                       int64_t x_step, int64_t x_row_stride, float *y, int64_t y_step,
                                       int64_t y_row_stride);
/* Bytes dmllm_linear_forward_each allocates for m rows a linear (the linears checked as it does). */
size_t dmllm_linear_forward_each_bytes(dmllm_linear *const *linears, int count, int64_t m);
/* Whether a forward of m rows reads the packed weights through gemv.c instead of a oneDNN matmul
 * (bf16 weights in the layout gemv.c reads, m <= DMLLM_GEMV_MAX_ROWS, an AVX512-BF16 CPU). */
bool dmllm_linear_runs_as_gemv(const dmllm_linear *linear, int64_t m);
/* Bytes dmllm_linear_forward allocates for m rows besides oneDNN's scratchpad (whose size is
 * known only once the chunk's primitive exists): the bf16 or int8 copy of a chunk of x (with its
 * row scales). */
size_t dmllm_linear_forward_bytes(const dmllm_linear *linear, int64_t m);

#endif
