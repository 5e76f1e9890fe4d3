/*
 * packcache.h: the packed-weight cache, one file per (model directory, compute path) holding every
 * linear's packed bytes, so a second load maps them instead of repacking 10 GB. The file format
 * knows nothing of oneDNN: an entry is a name, a small "meta" record and up to
 * DMLLM_PACK_MAX_ARRAYS byte arrays (backend.c decides what they mean). Entries are read and
 * written by name, from any thread.
 */
#ifndef DMLLM_PACKCACHE_H
#define DMLLM_PACKCACHE_H

#include "common.h"

#define DMLLM_PACK_MAX_ARRAYS 4

typedef struct dmllm_pack_cache dmllm_pack_cache;

typedef struct dmllm_pack_array {
    const void *data; /* page-aligned inside the mapping when read from the cache */
    size_t bytes;
} dmllm_pack_array;

/* Opens the cache for a load. setting: dmllm_model_params.cache_dir (NULL or "": the
 * DMLLM_CACHE_DIR environment variable, else $XDG_CACHE_HOME/densemllm, else
 * ~/.cache/densemllm; "off" in either place: no cache). key: text naming everything the packed
 * bytes depend on besides the checkpoint (library, oneDNN version, ISA, compute path, weights
 * format); identity: dmllm_checkpoint_identity(). A valid file whose key and identity match is
 * mapped read-only (reads hit); otherwise a new file is started next to it (reads miss, puts are
 * written). Never fails: a cache that cannot be used is logged and NULL returned, and the load
 * packs as without. */
dmllm_pack_cache *dmllm_pack_cache_open(const char *setting, const char *model_dir, const char *key,
                                        uint64_t identity);
/* Whether the cache is the mapped file of an earlier load (every get may hit). */
bool dmllm_pack_cache_is_mapped(const dmllm_pack_cache *cache);
/* The entry called name: its meta record and arrays point into the mapping, valid until
 * dmllm_pack_cache_free(). False when absent (or cache is NULL). */
bool dmllm_pack_cache_get(const dmllm_pack_cache *cache, const char *name, const void **meta,
                          size_t *meta_bytes, dmllm_pack_array *arrays, int *n_arrays);
/* Appends an entry to the file being written (copied; thread-safe). On a mapped cache it records
 * that the file lacked an entry, so commit removes it and the next load rebuilds it. A write error
 * (disk full) is logged and abandons the new file; the load goes on. */
void dmllm_pack_cache_put(dmllm_pack_cache *cache, const char *name, const void *meta,
                          size_t meta_bytes, const dmllm_pack_array *arrays, int n_arrays);
/* After a successful load: the new file gets its index and header, is synced and renamed over the
 * old one (atomic: readers see the old file or the new one, never a partial one). */
void dmllm_pack_cache_commit(dmllm_pack_cache *cache);
/* Unmaps (the linears read from it must be freed first); an uncommitted new file is deleted. */
void dmllm_pack_cache_free(dmllm_pack_cache *cache);

#endif
