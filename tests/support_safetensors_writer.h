/*
 * support_safetensors_writer.h: test-only writers of .safetensors files and of complete tiny random
 * Youtu-VL checkpoints (config.json + weights, optionally sharded, F32/F16/BF16), so tests build
 * their inputs in test_temp_dir() instead of needing the real 9 GB model. The tensor list is written
 * here from model-spec 1.4 on its own, not taken from lib/checkpoint.c, so each checks the other.
 */
#ifndef DMLLM_SUPPORT_SAFETENSORS_WRITER_H
#define DMLLM_SUPPORT_SAFETENSORS_WRITER_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct stw_tensor {
    const char *name;
    dmllm_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data;   /* product(shape) * dtype size bytes */
} stw_tensor;

/* Writes a valid safetensors file (header padded to 8 bytes). metadata_json is the text of the
 * "__metadata__" object or NULL. Returns 0 on success. */
int stw_write_file(const char *path, const stw_tensor *tensors, int n_tensors, const char *metadata_json);

/* Writes exactly: u64 little-endian header_length, the strlen(header) bytes of header, data. For
 * malformed files, so header_length need not match the header written. */
int stw_write_raw(const char *path, uint64_t header_length, const char *header, const void *data, size_t data_size);

/* A small valid Youtu-VL config: 2 vision layers (hidden 32, 2 heads of 16), 2 LLM layers
 * (hidden 48), vocab 300 with the special ids below it. */
void stw_tiny_config(dmllm_config *config);

/* The config.json text for config (malloc'd; free it). */
char *stw_config_json(const dmllm_config *config);

typedef struct stw_checkpoint_options {
    dmllm_dtype dtype;            /* F32, F16 or BF16 for every tensor */
    int n_shards;                 /* 0: one model.safetensors; n >= 1: an index and n shards */
    bool with_lm_head;            /* also write the (tied) lm_head.weight */
    bool with_position_embedding; /* also write the unused vision position embedding */
    uint32_t seed;
    /* Faults for negative tests (NULL: none). */
    const char *omit_tensor;      /* leave this tensor out */
    const char *reshape_tensor;   /* write this tensor with its first dimension + 1 */
    const char *retype_tensor;    /* write this tensor as I32 */
    const char *extra_tensor;     /* add an unknown [4] tensor of this name */
} stw_checkpoint_options;

/* Writes config.json and the weights of a random checkpoint for config into dir. Weights are
 * uniform in +-1/sqrt(fan_in), norm weights near 1, biases small. Returns 0 on success. */
int stw_write_checkpoint(const char *dir, const dmllm_config *config, const stw_checkpoint_options *options);

#endif
