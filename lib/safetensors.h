/*
 * safetensors.h: a memory-mapped .safetensors file. Parsing is defensive: header size, JSON,
 * dtypes, shapes and byte ranges are all checked against the file, so a malformed file fails with
 * a message and never makes a later read leave the mapping. Knows nothing of any model.
 */
#ifndef DMLLM_SAFETENSORS_H
#define DMLLM_SAFETENSORS_H

#include "common.h"

#define DMLLM_MAX_DIMS 8

typedef struct dmllm_tensor {
    const char *name;
    dmllm_dtype dtype;
    int ndim;
    int64_t shape[DMLLM_MAX_DIMS];
    int64_t n_elements;
    const void *data;   /* inside the read-only mapping */
    size_t n_bytes;
} dmllm_tensor;

typedef struct dmllm_safetensors dmllm_safetensors;

dmllm_status dmllm_safetensors_open(const char *path, dmllm_safetensors **out);
void dmllm_safetensors_close(dmllm_safetensors *file);
/* A cheap fingerprint of the file as opened: FNV-1a of its size, mtime (ns), inode and device and
 * of its header bytes (names, dtypes, shapes, offsets). Any rewrite by ordinary tools changes it; a
 * content hash would read every byte, which is what the packed-weight cache exists to avoid. */
uint64_t dmllm_safetensors_identity(const dmllm_safetensors *file);
int dmllm_safetensors_count(const dmllm_safetensors *file);
const dmllm_tensor *dmllm_safetensors_at(const dmllm_safetensors *file, int index);
const dmllm_tensor *dmllm_safetensors_find(const dmllm_safetensors *file, const char *name);

/* Drops the tensor's pages from memory once its data has been converted or packed, so loading
 * holds one tensor of the file at a time, not the whole mapping. The data stays readable (pages
 * are read from the file again if touched). */
void dmllm_tensor_release(const dmllm_tensor *tensor);

#endif
