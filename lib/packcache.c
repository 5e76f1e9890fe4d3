/*
 * packcache.c: the packed-weight cache file (packcache.h). It owns the file's format, naming,
 * validation and atomic replacement, and nothing else: what an entry's bytes mean is backend.c's.
 *
 * File layout (native byte order, checked by a marker):
 *   file_header | key text | zero padding to 4 KiB | arrays, each 4 KiB-aligned | index
 * The index (at the end, since it is known only once every entry is written) holds per entry an
 * index_entry, then its name (NUL-terminated) and meta record, padded to 8 bytes. The header's
 * checksum covers the header, the key and the index; the arrays are only size-checked (the file
 * must be exactly file_bytes long and every array inside it): hashing gigabytes on every load would
 * cost what the cache saves, and they are as trustworthy as the checkpoint they came from.
 *
 * A file is valid when magic, version, byte order, size, checksum, key and checkpoint identity all
 * match; anything else (truncated, corrupt, stale, from another oneDNN or CPU) is replaced by a new
 * file written during the load. A new file is written as <name>.tmp.XXXXXX next to the final one,
 * synced and renamed over it, so a concurrent reader maps either the old or the new file, and two
 * concurrent writers each rename a complete file. The file is never modified in place.
 */
#include "packcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PACK_MAGIC "DMLLMPK\n"
/* Bump when the layout or the meaning of entries changes. */
#define PACK_VERSION 1u
#define PACK_BYTE_ORDER 0x01020304u
#define PACK_ALIGN 4096
#define PACK_SUFFIX ".dmllm-pack"

typedef struct file_header {
    char magic[8];         /* PACK_MAGIC */
    uint32_t version;      /* PACK_VERSION */
    uint32_t byte_order;   /* PACK_BYTE_ORDER as the writer stored it */
    uint64_t identity;     /* dmllm_checkpoint_identity() of the checkpoint packed */
    uint64_t key_bytes;    /* key text right after the header, without a NUL */
    uint64_t index_offset; /* 8-aligned, after the last array */
    uint64_t index_bytes;
    uint64_t n_entries;
    uint64_t file_bytes; /* the whole file: a truncated file fails this */
    uint64_t checksum;   /* FNV-1a of this header (checksum 0), the key and the index */
} file_header;

typedef struct index_entry {
    uint32_t name_bytes; /* including the NUL */
    uint32_t meta_bytes;
    uint32_t n_arrays;
    uint32_t reserved; /* 0 */
    uint64_t offset[DMLLM_PACK_MAX_ARRAYS], bytes[DMLLM_PACK_MAX_ARRAYS];
} index_entry;

/* An entry as parsed from the mapping (read) or as put (write, name and meta then owned). */
typedef struct entry {
    const char *name;
    const void *meta;
    index_entry record;
} entry;

struct dmllm_pack_cache {
    char path[PATH_MAX];           /* the final file */
    char temp_path[PATH_MAX + 16]; /* the file being written; "" when reading */
    /* reading */
    const uint8_t *mapping; /* [mapping_bytes], PROT_READ */
    size_t mapping_bytes;
    bool missed; /* a put on a mapped cache: the file lacks an entry */
    /* writing */
    pthread_mutex_t lock; /* put from several threads */
    int fd;               /* temp file, -1 when not writing (or abandoned) */
    uint64_t identity;
    char *key;
    uint64_t end; /* next free byte of the temp file */
    /* both */
    size_t n_entries, capacity;
    entry *entries; /* [n_entries], sorted by name once read */
};

static uint64_t align_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

/* ---- where ----------------------------------------------------------------------------------- */

/* The cache directory for setting, or false (logged) when the cache is off or has no home. */
static bool resolve_dir(const char *setting, char *dir, size_t size) {
    const char *env = getenv("DMLLM_CACHE_DIR");
    const char *chosen = setting && setting[0] ? setting : env && env[0] ? env : NULL;
    int written;
    if (chosen && strcmp(chosen, "off") == 0) return false;
    if (chosen) {
        written = snprintf(dir, size, "%s", chosen);
    } else if (getenv("XDG_CACHE_HOME") && getenv("XDG_CACHE_HOME")[0] == '/') {
        written = snprintf(dir, size, "%s/densemllm", getenv("XDG_CACHE_HOME"));
    } else if (getenv("HOME") && getenv("HOME")[0]) {
        written = snprintf(dir, size, "%s/.cache/densemllm", getenv("HOME"));
    } else {
        dmllm_log(
            DMLLM_LOG_INFO,
            "packed-weight cache off: neither DMLLM_CACHE_DIR, XDG_CACHE_HOME nor HOME is set");
        return false;
    }
    if (written < 0 || (size_t)written >= size) {
        dmllm_log(DMLLM_LOG_WARN, "packed-weight cache off: directory path %.200s... is too long",
                  chosen);
        return false;
    }
    return true;
}

/* mkdir -p with mode 0700 for what it creates (XDG's rule for cache directories). */
static bool make_dirs(char *dir) {
    for (char *slash = strchr(dir + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash) *slash = '\0';
        const bool ok = mkdir(dir, 0700) == 0 || errno == EEXIST;
        if (slash) *slash = '/';
        if (!ok) return false;
        if (!slash) return true;
    }
}

/* <dir>/<model dir name>-<hash of its real path and the key>.dmllm-pack: one file per model and
 * compute path, so a stale file is replaced rather than joined by another. */
static bool cache_path(const char *dir, const char *model_dir, const char *key, char *path,
                       size_t size) {
    char real[PATH_MAX];
    if (!realpath(model_dir, real)) snprintf(real, sizeof real, "%s", model_dir);
    const char *base = strrchr(real, '/');
    base = base && base[1] ? base + 1 : "model";
    const uint64_t hash =
        dmllm_fnv1a(dmllm_fnv1a(DMLLM_FNV1A_INIT, real, strlen(real) + 1), key, strlen(key));
    const int written = snprintf(path, size, "%s/%.64s-%016llx%s", dir, base,
                                 (unsigned long long)hash, PACK_SUFFIX);
    return written > 0 && (size_t)written < size;
}

/* ---- reading --------------------------------------------------------------------------------- */

static int compare_entries(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static uint64_t header_checksum(const file_header *header, const void *key, const void *index) {
    file_header copy = *header;
    copy.checksum = 0;
    uint64_t hash = dmllm_fnv1a(DMLLM_FNV1A_INIT, &copy, sizeof copy);
    hash = dmllm_fnv1a(hash, key, (size_t)header->key_bytes);
    return dmllm_fnv1a(hash, index, (size_t)header->index_bytes);
}

/* Parses and bounds-checks the index; NULL when valid, else why not. */
static const char *parse_index(dmllm_pack_cache *cache, const file_header *header) {
    const uint64_t data_start = align_up(sizeof *header + header->key_bytes, PACK_ALIGN);
    if (header->n_entries > header->index_bytes / sizeof(index_entry))
        return "impossible entry count";
    cache->entries = dmllm_calloc((size_t)header->n_entries ? (size_t)header->n_entries : 1,
                                  sizeof *cache->entries);
    if (!cache->entries) return "out of memory for its index";
    const uint8_t *at = cache->mapping + header->index_offset, *end = at + header->index_bytes;
    for (uint64_t i = 0; i < header->n_entries; i++) {
        entry *e = &cache->entries[i];
        if ((size_t)(end - at) < sizeof e->record) return "index entry out of range";
        memcpy(&e->record, at, sizeof e->record);
        at += sizeof e->record;
        const index_entry *r = &e->record;
        if (r->n_arrays > DMLLM_PACK_MAX_ARRAYS || r->name_bytes == 0 ||
            (uint64_t)r->name_bytes + r->meta_bytes > (uint64_t)(end - at))
            return "index entry out of range";
        e->name = (const char *)at;
        if (e->name[r->name_bytes - 1] != '\0') return "index name not terminated";
        e->meta = at + r->name_bytes;
        at += align_up((uint64_t)r->name_bytes + r->meta_bytes, 8);
        for (uint32_t a = 0; a < r->n_arrays; a++)
            if (r->offset[a] < data_start || r->offset[a] % PACK_ALIGN ||
                r->bytes[a] > header->index_offset ||
                r->offset[a] > header->index_offset - r->bytes[a])
                return "array out of range";
        cache->n_entries++;
    }
    qsort(cache->entries, cache->n_entries, sizeof *cache->entries, compare_entries);
    for (size_t i = 1; i < cache->n_entries; i++)
        if (strcmp(cache->entries[i - 1].name, cache->entries[i].name) == 0)
            return "duplicate entry";
    return NULL;
}

/* Maps cache->path when it is a valid cache for key and identity: NULL when mapped, else why
 * not. */
/* Reads every page now rather than at its first use: a query must not stall on the disk midway
 * (the pack may have left the page cache since it was written), and the load's time then says
 * what reading the cache costs. MADV_POPULATE_READ needs Linux 5.14; before, MADV_WILLNEED starts
 * the same reads in the background. */
static void populate(const uint8_t *mapping, size_t bytes) {
#ifdef MADV_POPULATE_READ
    if (madvise((void *)mapping, bytes, MADV_POPULATE_READ) == 0) return;
#endif
    madvise((void *)mapping, bytes, MADV_WILLNEED);
}

static const char *map_existing(dmllm_pack_cache *cache, const char *key, uint64_t identity) {
    int fd = open(cache->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? "none yet" : strerror(errno);
    struct stat info;
    file_header header;
    const char *problem = NULL;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode))
        problem = "not a readable regular file";
    else if ((size_t)info.st_size < sizeof header ||
             pread(fd, &header, sizeof header, 0) != (ssize_t)sizeof header)
        problem = "shorter than its header";
    else if (memcmp(header.magic, PACK_MAGIC, sizeof header.magic) != 0)
        problem = "bad magic";
    else if (header.version != PACK_VERSION || header.byte_order != PACK_BYTE_ORDER)
        problem = "another format version";
    else if (header.file_bytes != (uint64_t)info.st_size)
        problem = "truncated or extended (size differs from its header)";
    else if (header.key_bytes > header.file_bytes || header.index_offset > header.file_bytes ||
             header.index_bytes != header.file_bytes - header.index_offset ||
             header.index_offset % 8 ||
             header.index_offset < align_up(sizeof header + header.key_bytes, PACK_ALIGN))
        problem = "inconsistent header";
    if (!problem) {
        void *mapping = mmap(NULL, (size_t)info.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (mapping == MAP_FAILED)
            problem = strerror(errno);
        else {
            cache->mapping = mapping;
            cache->mapping_bytes = (size_t)info.st_size;
        }
    }
    close(fd);
    if (problem) return problem;
    const uint8_t *key_text = cache->mapping + sizeof header,
                  *index = cache->mapping + header.index_offset;
    if (header_checksum(&header, key_text, index) != header.checksum)
        return "checksum mismatch (corrupt)";
    if (header.key_bytes != strlen(key) || memcmp(key_text, key, strlen(key)) != 0)
        return "stale (another library, oneDNN, CPU or compute path)";
    if (header.identity != identity) return "stale (the checkpoint changed)";
    const char *index_problem = parse_index(cache, &header);
    if (!index_problem) populate(cache->mapping, cache->mapping_bytes);
    return index_problem;
}

/* ---- writing --------------------------------------------------------------------------------- */

static bool write_all(int fd, const void *data, size_t bytes, uint64_t offset) {
    const char *at = data;
    while (bytes) {
        const ssize_t n = pwrite(fd, at, bytes, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        at += n;
        bytes -= (size_t)n;
        offset += (uint64_t)n;
    }
    return true;
}

/* Stops writing the new file (logged once); the load continues without it. The caller holds the
 * lock. */
static void abandon(dmllm_pack_cache *cache, const char *what) {
    if (cache->fd < 0) return;
    dmllm_log(DMLLM_LOG_WARN, "packed-weight cache %s: %s failed (%s); loading without writing it",
              cache->temp_path, what, strerror(errno));
    close(cache->fd);
    cache->fd = -1;
    unlink(cache->temp_path);
}

static bool start_file(dmllm_pack_cache *cache, const char *key) {
    snprintf(cache->temp_path, sizeof cache->temp_path, "%s.tmp.XXXXXX", cache->path);
    cache->fd = mkstemp(cache->temp_path);
    if (cache->fd < 0) {
        dmllm_log(DMLLM_LOG_WARN, "packed-weight cache: cannot create %s (%s); loading without it",
                  cache->temp_path, strerror(errno));
        return false;
    }
    fchmod(cache->fd, 0644);
    cache->key = strdup(key);
    cache->end = align_up(sizeof(file_header) + strlen(key), PACK_ALIGN);
    /* The header is written last: until then the file has no magic and cannot pass as valid. */
    if (!cache->key || !write_all(cache->fd, key, strlen(key), sizeof(file_header))) {
        abandon(cache, "writing the key");
        return false;
    }
    return true;
}

/* ---- public ---------------------------------------------------------------------------------- */

dmllm_pack_cache *dmllm_pack_cache_open(const char *setting, const char *model_dir, const char *key,
                                        uint64_t identity) {
    char dir[PATH_MAX];
    if (!resolve_dir(setting, dir, sizeof dir)) return NULL;
    dmllm_pack_cache *cache = dmllm_calloc(1, sizeof *cache);
    if (!cache) {
        dmllm_log(DMLLM_LOG_WARN, "packed-weight cache off: out of memory");
        return NULL;
    }
    cache->fd = -1;
    cache->identity = identity;
    pthread_mutex_init(&cache->lock, NULL);
    if (!cache_path(dir, model_dir, key, cache->path, sizeof cache->path)) {
        dmllm_log(DMLLM_LOG_WARN, "packed-weight cache off: path in %s is too long", dir);
        dmllm_pack_cache_free(cache);
        return NULL;
    }
    const char *problem = map_existing(cache, key, identity);
    if (!problem) {
        dmllm_log(DMLLM_LOG_INFO, "packed-weight cache hit: %s (%zu entries, %.1f MiB)",
                  cache->path, cache->n_entries, dmllm_mib((int64_t)cache->mapping_bytes));
        return cache;
    }
    dmllm_log(DMLLM_LOG_INFO, "packed-weight cache %s: %s; packing and writing it", cache->path,
              problem);
    if (cache->mapping) munmap((void *)cache->mapping, cache->mapping_bytes);
    cache->mapping = NULL;
    free(cache->entries);
    cache->entries = NULL;
    cache->n_entries = 0;
    if (!make_dirs(dir)) {
        dmllm_log(DMLLM_LOG_WARN,
                  "packed-weight cache: cannot create directory %s (%s); loading without it", dir,
                  strerror(errno));
        dmllm_pack_cache_free(cache);
        return NULL;
    }
    if (!start_file(cache, key)) {
        dmllm_pack_cache_free(cache);
        return NULL;
    }
    return cache;
}

bool dmllm_pack_cache_is_mapped(const dmllm_pack_cache *cache) { return cache && cache->mapping; }

bool dmllm_pack_cache_get(const dmllm_pack_cache *cache, const char *name, const void **meta,
                          size_t *meta_bytes, dmllm_pack_array *arrays, int *n_arrays) {
    if (!cache || !cache->mapping) return false;
    const entry key = {.name = name};
    const entry *found =
        bsearch(&key, cache->entries, cache->n_entries, sizeof *cache->entries, compare_entries);
    if (!found) return false;
    *meta = found->meta;
    *meta_bytes = found->record.meta_bytes;
    *n_arrays = (int)found->record.n_arrays;
    for (uint32_t a = 0; a < found->record.n_arrays; a++)
        arrays[a] = (dmllm_pack_array){cache->mapping + found->record.offset[a],
                                       (size_t)found->record.bytes[a]};
    return true;
}

/* Adds the entry to the in-memory index (name and meta copied into one block). */
static bool index_add(dmllm_pack_cache *cache, const char *name, const void *meta,
                      size_t meta_bytes, const index_entry *record) {
    if (cache->n_entries == cache->capacity) {
        const size_t capacity = cache->capacity ? 2 * cache->capacity : 256;
        entry *entries = realloc(cache->entries, capacity * sizeof *entries);
        if (!entries) return false;
        cache->entries = entries;
        cache->capacity = capacity;
    }
    char *copy = dmllm_malloc(record->name_bytes + meta_bytes, 1);
    if (!copy) return false;
    memcpy(copy, name, record->name_bytes);
    memcpy(copy + record->name_bytes, meta, meta_bytes);
    cache->entries[cache->n_entries++] = (entry){copy, copy + record->name_bytes, *record};
    return true;
}

void dmllm_pack_cache_put(dmllm_pack_cache *cache, const char *name, const void *meta,
                          size_t meta_bytes, const dmllm_pack_array *arrays, int n_arrays) {
    if (!cache) return;
    pthread_mutex_lock(&cache->lock);
    if (cache->mapping) cache->missed = true;
    if (cache->fd >= 0) {
        index_entry record = {.name_bytes = (uint32_t)strlen(name) + 1,
                              .meta_bytes = (uint32_t)meta_bytes,
                              .n_arrays = (uint32_t)n_arrays};
        bool ok = n_arrays >= 0 && n_arrays <= DMLLM_PACK_MAX_ARRAYS && meta_bytes <= UINT32_MAX;
        for (int a = 0; ok && a < n_arrays; a++) {
            record.offset[a] = align_up(cache->end, PACK_ALIGN);
            record.bytes[a] = arrays[a].bytes;
            ok = write_all(cache->fd, arrays[a].data, arrays[a].bytes, record.offset[a]);
            cache->end = record.offset[a] + arrays[a].bytes;
        }
        if (!ok)
            abandon(cache, "writing packed weights");
        else if (!index_add(cache, name, meta, meta_bytes, &record))
            abandon(cache, "growing the index in memory");
    }
    pthread_mutex_unlock(&cache->lock);
}

/* Writes index and header, syncs and renames; false (after abandoning) on an I/O error. */
static bool finish_file(dmllm_pack_cache *cache) {
    file_header header = {.version = PACK_VERSION,
                          .byte_order = PACK_BYTE_ORDER,
                          .identity = cache->identity,
                          .key_bytes = strlen(cache->key),
                          .index_offset = align_up(cache->end, 8),
                          .n_entries = cache->n_entries};
    memcpy(header.magic, PACK_MAGIC, sizeof header.magic);
    size_t index_bytes = 0;
    for (size_t i = 0; i < cache->n_entries; i++) {
        const index_entry *r = &cache->entries[i].record;
        index_bytes += sizeof *r + align_up((uint64_t)r->name_bytes + r->meta_bytes, 8);
    }
    uint8_t *index = dmllm_calloc(index_bytes ? index_bytes : 1, 1); /* [index_bytes] as on disk */
    if (!index) {
        abandon(cache, "building the index");
        return false;
    }
    uint8_t *at = index;
    for (size_t i = 0; i < cache->n_entries; i++) {
        const entry *e = &cache->entries[i];
        memcpy(at, &e->record, sizeof e->record);
        memcpy(at + sizeof e->record, e->name, e->record.name_bytes + (size_t)e->record.meta_bytes);
        at += sizeof e->record + align_up((uint64_t)e->record.name_bytes + e->record.meta_bytes, 8);
    }
    header.index_bytes = index_bytes;
    header.file_bytes = header.index_offset + index_bytes;
    header.checksum = header_checksum(&header, cache->key, index);
    bool ok = write_all(cache->fd, index, index_bytes, header.index_offset);
    free(index);
    /* The header goes last and the data is synced before the rename, so a crash at any point
     * leaves either no file or the old one under the final name. */
    ok = ok && write_all(cache->fd, &header, sizeof header, 0) && fsync(cache->fd) == 0;
    if (!ok || rename(cache->temp_path, cache->path) != 0) {
        abandon(cache, "finishing the file");
        return false;
    }
    close(cache->fd);
    cache->fd = -1;
    dmllm_log(DMLLM_LOG_INFO, "packed-weight cache written: %s (%zu entries, %.1f MiB)",
              cache->path, cache->n_entries, dmllm_mib((int64_t)header.file_bytes));
    return true;
}

void dmllm_pack_cache_commit(dmllm_pack_cache *cache) {
    if (!cache) return;
    if (cache->missed) {
        /* The mapped file stays valid for this process (unlinking keeps the inode alive). */
        dmllm_log(DMLLM_LOG_INFO,
                  "packed-weight cache %s lacked entries this load needed; removed for a rebuild",
                  cache->path);
        unlink(cache->path);
        cache->missed = false;
    }
    if (cache->fd >= 0 && finish_file(cache)) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", cache->path);
        *strrchr(dir, '/') = '\0';
        const int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd >= 0) {
            fsync(dir_fd); /* makes the rename itself durable */
            close(dir_fd);
        }
    }
}

void dmllm_pack_cache_free(dmllm_pack_cache *cache) {
    if (!cache) return;
    if (cache->fd >= 0) {
        close(cache->fd);
        unlink(cache->temp_path);
    }
    if (cache->mapping)
        munmap((void *)cache->mapping, cache->mapping_bytes);
    else
        for (size_t i = 0; i < cache->n_entries; i++) free((void *)cache->entries[i].name);
    free(cache->entries);
    free(cache->key);
    pthread_mutex_destroy(&cache->lock);
    free(cache);
}
