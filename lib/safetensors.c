/*
 * safetensors.c: maps a .safetensors file read-only and validates its header completely before any
 * tensor is handed out: header length, JSON structure, dtypes, shapes, byte ranges (inside the data
 * section, matching the shape, not overlapping) and unique names. Never writes to or reads past the
 * mapping; knows nothing of any model.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is treated as corrupt (the real ones are a few hundred kB). */
#define MAX_HEADER_BYTES ((uint64_t)100 * 1024 * 1024)
/* JSON numbers are doubles; offsets beyond 2^53 cannot be represented exactly. */
#define MAX_EXACT_JSON_INTEGER 9007199254740992.0

struct dmllm_safetensors {
    char *path;
    const uint8_t *mapping;   /* [mapping_size] */
    size_t mapping_size;
    int n_tensors;
    dmllm_tensor *tensors;    /* [n_tensors], sorted by name */
    char *names;              /* every tensor name, NUL-separated; tensors[i].name points here */
    uint64_t identity;        /* dmllm_safetensors_identity() */
};

/* One header entry during validation: its data range relative to the data section. */
typedef struct byte_range {
    uint64_t begin, end;
    const char *name;
} byte_range;

static int compare_tensor_names(const void *a, const void *b) {
    return strcmp(((const dmllm_tensor *)a)->name, ((const dmllm_tensor *)b)->name);
}

static int compare_ranges(const void *a, const void *b) {
    const byte_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static bool parse_dtype(const char *text, dmllm_dtype *dtype) {
    for (int d = 0; d < DMLLM_DTYPE_COUNT; d++)
        if (strcmp(text, dmllm_dtype_name((dmllm_dtype)d)) == 0) {
            *dtype = (dmllm_dtype)d;
            return true;
        }
    return false;
}

/* A JSON number that is an exactly representable integer in [0, 2^53]. */
static bool json_uint(const cJSON *item, uint64_t *value) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0) || v > MAX_EXACT_JSON_INTEGER || v != floor(v)) return false;
    *value = (uint64_t)v;
    return true;
}

/* Fills tensor (except name and data) from one header entry; range gets its offsets. */
static dmllm_status parse_entry(const char *path, const cJSON *entry, uint64_t data_size, dmllm_tensor *tensor,
                                byte_range *range) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: header entry for tensor \"%s\" is not an object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype)) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" has no dtype string", path, name);
    if (!cJSON_IsArray(shape)) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" has no shape list", path, name);
    if (!cJSON_IsArray(offsets)) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" has no data_offsets list", path, name);
    if (!parse_dtype(dtype->valuestring, &tensor->dtype))
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%s: tensor \"%s\" has unsupported dtype %.32s", path, name, dtype->valuestring);

    int ndim = cJSON_GetArraySize(shape);
    if (ndim > DMLLM_MAX_DIMS)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "%s: tensor \"%s\" has %d dimensions (at most %d supported)", path, name,
                          ndim, DMLLM_MAX_DIMS);
    tensor->ndim = ndim;
    int d = 0;
    bool empty = false;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t extent;
        if (!json_uint(dim, &extent))
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" dimension %d is not a non-negative integer", path, name, d);
        tensor->shape[d++] = (int64_t)extent;
        if (extent == 0) empty = true;
    }
    /* Counted in bytes so that the overflow check covers the final size too; a zero extent anywhere
     * makes the tensor empty whatever the other extents are. */
    uint64_t n_elements = empty ? 0 : 1;
    uint64_t n_bytes = empty ? 0 : dmllm_dtype_size(tensor->dtype);
    for (int i = 0; i < ndim && !empty; i++) {
        uint64_t extent = (uint64_t)tensor->shape[i];
        if (n_bytes > UINT64_MAX / extent)
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" shape overflows a 64-bit byte count", path, name);
        n_bytes *= extent;
        n_elements *= extent;
    }

    if (cJSON_GetArraySize(offsets) != 2 || !json_uint(cJSON_GetArrayItem(offsets, 0), &range->begin) ||
        !json_uint(cJSON_GetArrayItem(offsets, 1), &range->end))
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" data_offsets is not a pair of non-negative integers", path, name);
    if (range->begin > range->end)
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" data_offsets [%llu, %llu] has begin > end", path, name,
                          (unsigned long long)range->begin, (unsigned long long)range->end);
    if (range->end > data_size)
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" data_offsets end %llu is past the end of the data (%llu bytes; truncated file?)",
                          path, name, (unsigned long long)range->end, (unsigned long long)data_size);
    if (range->end - range->begin != n_bytes)
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" byte count mismatch: data_offsets span %llu bytes, shape and dtype %s need %llu",
                          path, name, (unsigned long long)(range->end - range->begin), dmllm_dtype_name(tensor->dtype),
                          (unsigned long long)n_bytes);
    tensor->n_elements = (int64_t)n_elements;
    tensor->n_bytes = (size_t)n_bytes;
    return DMLLM_OK;
}

static dmllm_status check_metadata(const char *path, const cJSON *metadata) {
    if (!cJSON_IsObject(metadata)) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: __metadata__ is not an object", path);
    const cJSON *item;
    cJSON_ArrayForEach(item, metadata) {
        if (!cJSON_IsString(item))
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: __metadata__ value \"%s\" is not a string", path, item->string);
    }
    return DMLLM_OK;
}

/* Rejects two tensors whose non-empty byte ranges share a byte. ranges is sorted here. */
static dmllm_status check_overlaps(const char *path, byte_range *ranges, int n) {
    qsort(ranges, (size_t)n, sizeof *ranges, compare_ranges);
    const byte_range *previous = NULL;
    for (int i = 0; i < n; i++) {
        if (ranges[i].begin == ranges[i].end) continue;
        if (previous && ranges[i].begin < previous->end)
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensors \"%s\" and \"%s\" have overlapping data_offsets", path,
                              previous->name, ranges[i].name);
        previous = &ranges[i];
    }
    return DMLLM_OK;
}

/* Parses the header JSON into file->tensors (sorted, names copied) and validates every entry. */
static dmllm_status parse_header(dmllm_safetensors *file, const char *header, size_t header_size, uint64_t data_size) {
    const char *path = file->path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, header_size, &end, false);
    if (!root) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: header is not valid JSON", path);
    dmllm_status status = DMLLM_OK;
    /* Writers pad the header with spaces to an aligned length; anything else after the object is junk. */
    for (const char *p = end; p < header + header_size && status == DMLLM_OK; p++)
        if (!isspace((unsigned char)*p) && *p != '\0')
            status = dmllm_fail(DMLLM_ERR_FORMAT, "%s: header has trailing bytes after the JSON object", path);
    if (status == DMLLM_OK && !cJSON_IsObject(root))
        status = dmllm_fail(DMLLM_ERR_FORMAT, "%s: header is not a JSON object", path);

    size_t names_size = 0;
    int n = 0;
    const cJSON *entry;
    if (status == DMLLM_OK) cJSON_ArrayForEach(entry, root) {
        if (strcmp(entry->string, "__metadata__") == 0) {
            status = check_metadata(path, entry);
            if (status != DMLLM_OK) break;
            continue;
        }
        n++;
        names_size += strlen(entry->string) + 1;
    }
    byte_range *ranges = NULL; /* [n] */
    if (status == DMLLM_OK) {
        file->tensors = dmllm_calloc((size_t)n, sizeof *file->tensors);
        file->names = dmllm_malloc(names_size, 1);
        ranges = dmllm_calloc((size_t)n, sizeof *ranges);
        if (!file->tensors || !file->names || !ranges)
            status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory for the index of %d tensors", path, n);
    }
    if (status == DMLLM_OK) {
        const uint8_t *data = file->mapping + 8 + header_size;
        char *name = file->names;
        int i = 0;
        cJSON_ArrayForEach(entry, root) {
            if (strcmp(entry->string, "__metadata__") == 0) continue;
            dmllm_tensor *tensor = &file->tensors[i];
            status = parse_entry(path, entry, data_size, tensor, &ranges[i]);
            if (status != DMLLM_OK) break;
            size_t length = strlen(entry->string) + 1;
            memcpy(name, entry->string, length);
            tensor->name = ranges[i].name = name;
            tensor->data = data + ranges[i].begin;
            name += length;
            i++;
        }
        file->n_tensors = i;
    }
    if (status == DMLLM_OK) {
        qsort(file->tensors, (size_t)n, sizeof *file->tensors, compare_tensor_names);
        for (int i = 1; i < n && status == DMLLM_OK; i++)
            if (strcmp(file->tensors[i - 1].name, file->tensors[i].name) == 0)
                status = dmllm_fail(DMLLM_ERR_FORMAT, "%s: duplicate tensor name \"%s\"", path, file->tensors[i].name);
    }
    if (status == DMLLM_OK) status = check_overlaps(path, ranges, n);
    free(ranges);
    cJSON_Delete(root);
    return status;
}

static dmllm_status map_and_parse(dmllm_safetensors *file) {
    const char *path = file->path;
    /* O_NONBLOCK so that a FIFO given by mistake is rejected below instead of blocking the open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return dmllm_fail(DMLLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int error = errno;
        close(fd);
        return dmllm_fail(DMLLM_ERR_IO, "cannot stat %s: %s", path, strerror(error));
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return dmllm_fail(DMLLM_ERR_IO, "%s is not a regular file", path);
    }
    if (info.st_size < 8) {
        close(fd);
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: file is %lld bytes, too short for the 8-byte header length", path,
                          (long long)info.st_size);
    }
    void *mapping = mmap(NULL, (size_t)info.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int error = errno;
    close(fd);
    if (mapping == MAP_FAILED) return dmllm_fail(DMLLM_ERR_IO, "cannot map %s: %s", path, strerror(error));
    file->mapping = mapping;
    file->mapping_size = (size_t)info.st_size;

    uint64_t header_size = 0;
    for (int i = 7; i >= 0; i--) header_size = header_size << 8 | file->mapping[i];
    uint64_t available = file->mapping_size - 8;
    if (header_size > MAX_HEADER_BYTES || header_size > available)
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: header length %llu is impossible (file has %llu bytes after the length; limit %llu)",
                          path, (unsigned long long)header_size, (unsigned long long)available,
                          (unsigned long long)MAX_HEADER_BYTES);
    const int64_t stamp[5] = {(int64_t)info.st_size, (int64_t)info.st_mtim.tv_sec,
                              (int64_t)info.st_mtim.tv_nsec, (int64_t)info.st_ino,
                              (int64_t)info.st_dev};
    file->identity = dmllm_fnv1a(dmllm_fnv1a(DMLLM_FNV1A_INIT, stamp, sizeof stamp), file->mapping,
                                 8 + header_size);
    return parse_header(file, (const char *)file->mapping + 8, (size_t)header_size, available - header_size);
}

dmllm_status dmllm_safetensors_open(const char *path, dmllm_safetensors **out) {
    if (!path || !out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_safetensors_open: NULL argument");
    *out = NULL;
    dmllm_safetensors *file = dmllm_calloc(1, sizeof *file);
    if (file) file->path = strdup(path);
    if (!file || !file->path) {
        free(file);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory opening %s", path);
    }
    dmllm_status status = map_and_parse(file);
    if (status != DMLLM_OK) {
        dmllm_safetensors_close(file);
        return status;
    }
    *out = file;
    return DMLLM_OK;
}

void dmllm_safetensors_close(dmllm_safetensors *file) {
    if (!file) return;
    if (file->mapping) munmap((void *)file->mapping, file->mapping_size);
    free(file->tensors);
    free(file->names);
    free(file->path);
    free(file);
}

uint64_t dmllm_safetensors_identity(const dmllm_safetensors *file) { return file->identity; }

int dmllm_safetensors_count(const dmllm_safetensors *file) { return file ? file->n_tensors : 0; }

const dmllm_tensor *dmllm_safetensors_at(const dmllm_safetensors *file, int index) {
    if (!file || index < 0 || index >= file->n_tensors) return NULL;
    return &file->tensors[index];
}

const dmllm_tensor *dmllm_safetensors_find(const dmllm_safetensors *file, const char *name) {
    if (!file || !name) return NULL;
    dmllm_tensor key = {.name = name};
    return bsearch(&key, file->tensors, (size_t)file->n_tensors, sizeof *file->tensors, compare_tensor_names);
}

void dmllm_tensor_release(const dmllm_tensor *tensor) {
    if (!tensor || tensor->n_bytes == 0) return;
    /* Rounded outward to whole pages: a neighbour sharing a page is simply read again if needed. */
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t start = (uintptr_t)tensor->data & ~(page - 1);
    const uintptr_t end = ((uintptr_t)tensor->data + tensor->n_bytes + page - 1) & ~(page - 1);
    madvise((void *)start, end - start, MADV_DONTNEED);
}
