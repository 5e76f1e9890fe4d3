/*
 * checkpoint.c: opens a Hugging Face model directory (config.json plus model.safetensors or the
 * shards listed in model.safetensors.index.json) and checks every tensor the config implies
 * (model-spec 1.4) for presence, float dtype and exact shape. It neither converts nor copies
 * weights: tensors stay in the read-only mappings owned by safetensors.c.
 */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_FILE "config.json"
#define SINGLE_FILE "model.safetensors"
#define INDEX_FILE "model.safetensors.index.json"
/* Larger JSON files than this are corrupt, not checkpoints (the real index is ~100 kB). */
#define MAX_JSON_BYTES ((long)64 * 1024 * 1024)
#define MAX_TENSOR_NAME 128

#define VISION_PREFIX "siglip2.vision_model."
#define LM_HEAD_NAME "lm_head.weight"
#define POSITION_EMBEDDING_NAME VISION_PREFIX "embeddings.position_embedding.weight"

/* One tensor the config implies: its name and exact shape. */
typedef struct schema_entry {
    char name[MAX_TENSOR_NAME];
    int ndim;
    int64_t shape[2];
} schema_entry;

typedef struct schema {
    size_t count, capacity;
    schema_entry *entries; /* [capacity], sorted by name once built */
} schema;

struct dmllm_checkpoint {
    char *dir;
    dmllm_config config;
    int n_files;
    dmllm_safetensors **files;    /* [n_files] */
    char **file_names;            /* [n_files], shard names as the index spells them */
    int n_tensors;
    const dmllm_tensor **tensors; /* [n_tensors], sorted by name; point into files */
    int64_t n_params;
    uint64_t json_hash;           /* FNV-1a of config.json and, when sharded, the index */
};

/* ---- files ----------------------------------------------------------------------------------- */

static dmllm_status join_path(char *buffer, size_t size, const char *dir, const char *name) {
    if ((size_t)snprintf(buffer, size, "%s/%s", dir, name) >= size)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "path %s/%s is too long", dir, name);
    return DMLLM_OK;
}

static bool file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Reads a whole (small) text file into a NUL-terminated malloc'd buffer. */
static dmllm_status read_text_file(const char *path, char **out, size_t *out_size) {
    FILE *f = fopen(path, "rb");
    if (!f) return dmllm_fail(DMLLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return dmllm_fail(DMLLM_ERR_IO, "cannot read %s", path);
    }
    if (size > MAX_JSON_BYTES) {
        fclose(f);
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s is %ld bytes, too large for a JSON file of a checkpoint", path, size);
    }
    char *text = dmllm_malloc((size_t)size + 1, 1);
    if (!text) {
        fclose(f);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    }
    size_t got = fread(text, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(text);
        return dmllm_fail(DMLLM_ERR_IO, "short read of %s", path);
    }
    text[size] = '\0';
    *out = text;
    *out_size = (size_t)size;
    return DMLLM_OK;
}

static dmllm_status load_config(dmllm_checkpoint *checkpoint) {
    char path[PATH_MAX];
    DMLLM_TRY(join_path(path, sizeof path, checkpoint->dir, CONFIG_FILE));
    char *text;
    size_t size;
    DMLLM_TRY(read_text_file(path, &text, &size));
    checkpoint->json_hash = dmllm_fnv1a(checkpoint->json_hash, text, size);
    dmllm_status status = dmllm_config_parse(text, size, &checkpoint->config);
    free(text);
    if (status != DMLLM_OK) return dmllm_fail_context(status, "%s", checkpoint->dir);
    return DMLLM_OK;
}

/* Opens dir/name once; returns its index in checkpoint->files. */
static dmllm_status open_shard(dmllm_checkpoint *checkpoint, const char *name, int *index) {
    for (int i = 0; i < checkpoint->n_files; i++)
        if (strcmp(checkpoint->file_names[i], name) == 0) {
            *index = i;
            return DMLLM_OK;
        }
    char path[PATH_MAX];
    DMLLM_TRY(join_path(path, sizeof path, checkpoint->dir, name));
    int n = checkpoint->n_files;
    dmllm_safetensors **files = realloc(checkpoint->files, (size_t)(n + 1) * sizeof *files);
    if (files) checkpoint->files = files;
    char **names = realloc(checkpoint->file_names, (size_t)(n + 1) * sizeof *names);
    if (names) checkpoint->file_names = names;
    char *copy = strdup(name);
    if (!files || !names || !copy) {
        free(copy);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory opening %s", path);
    }
    dmllm_safetensors *file;
    dmllm_status status = dmllm_safetensors_open(path, &file);
    if (status != DMLLM_OK) {
        free(copy);
        return status;
    }
    checkpoint->files[n] = file;
    checkpoint->file_names[n] = copy;
    checkpoint->n_files = n + 1;
    *index = n;
    return DMLLM_OK;
}

static int compare_tensor_pointers(const void *a, const void *b) {
    return strcmp((*(const dmllm_tensor *const *)a)->name, (*(const dmllm_tensor *const *)b)->name);
}

/* A shard name is a plain file name inside the model directory. */
static bool is_plain_file_name(const char *name) {
    return name[0] != '\0' && !strchr(name, '/') && !strstr(name, "..");
}

static dmllm_status load_index(dmllm_checkpoint *checkpoint, const char *index_path, const cJSON *root) {
    const cJSON *weight_map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(weight_map)) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: weight_map missing or not an object", index_path);
    int n = cJSON_GetArraySize(weight_map);
    checkpoint->tensors = dmllm_calloc((size_t)n, sizeof *checkpoint->tensors);
    if (!checkpoint->tensors) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the index of %d tensors", n);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, weight_map) {
        if (!cJSON_IsString(entry))
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: weight_map entry for tensor \"%s\" is not a file name", index_path, entry->string);
        const char *shard = entry->valuestring;
        if (!is_plain_file_name(shard))
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" names shard \"%.200s\", which is not a plain file name in the model directory",
                              index_path, entry->string, shard);
        int file;
        DMLLM_TRY(open_shard(checkpoint, shard, &file));
        const dmllm_tensor *tensor = dmllm_safetensors_find(checkpoint->files[file], entry->string);
        if (!tensor)
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" is listed in shard %s, which does not contain it", index_path,
                              entry->string, shard);
        checkpoint->tensors[checkpoint->n_tensors++] = tensor;
    }
    qsort(checkpoint->tensors, (size_t)checkpoint->n_tensors, sizeof *checkpoint->tensors, compare_tensor_pointers);
    for (int i = 1; i < checkpoint->n_tensors; i++)
        if (strcmp(checkpoint->tensors[i - 1]->name, checkpoint->tensors[i]->name) == 0)
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s: tensor \"%s\" is listed twice in weight_map", index_path,
                              checkpoint->tensors[i]->name);
    return DMLLM_OK;
}

/* Opens the sharded set if an index exists, else the single file; fills checkpoint->tensors. */
static dmllm_status load_tensors(dmllm_checkpoint *checkpoint) {
    char index_path[PATH_MAX], single_path[PATH_MAX];
    DMLLM_TRY(join_path(index_path, sizeof index_path, checkpoint->dir, INDEX_FILE));
    DMLLM_TRY(join_path(single_path, sizeof single_path, checkpoint->dir, SINGLE_FILE));
    if (file_exists(index_path)) {
        char *text;
        size_t size;
        DMLLM_TRY(read_text_file(index_path, &text, &size));
        checkpoint->json_hash = dmllm_fnv1a(checkpoint->json_hash, text, size);
        cJSON *root = cJSON_ParseWithLength(text, size);
        free(text);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return dmllm_fail(DMLLM_ERR_FORMAT, "%s is not a JSON object", index_path);
        }
        dmllm_status status = load_index(checkpoint, index_path, root);
        cJSON_Delete(root);
        return status;
    }
    if (!file_exists(single_path))
        return dmllm_fail(DMLLM_ERR_IO, "%s has neither %s nor %s", checkpoint->dir, INDEX_FILE, SINGLE_FILE);
    int file;
    DMLLM_TRY(open_shard(checkpoint, SINGLE_FILE, &file));
    int n = dmllm_safetensors_count(checkpoint->files[file]);
    checkpoint->tensors = dmllm_calloc((size_t)n, sizeof *checkpoint->tensors);
    if (!checkpoint->tensors) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the index of %d tensors", n);
    /* safetensors.c hands them out sorted by name already. */
    for (int i = 0; i < n; i++) checkpoint->tensors[i] = dmllm_safetensors_at(checkpoint->files[file], i);
    checkpoint->n_tensors = n;
    return DMLLM_OK;
}

/* ---- schema ---------------------------------------------------------------------------------- */

static dmllm_status schema_add(schema *s, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) DMLLM_PRINTF(5, 6);

static dmllm_status schema_add(schema *s, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) {
    if (s->count == s->capacity) {
        /* config.c bounds the layers, so the schema stays near 10^5 entries; the byte count is
         * checked anyway, which also keeps the doubling below SIZE_MAX. */
        size_t capacity = s->capacity ? 2 * s->capacity : 256;
        schema_entry *entries = capacity <= SIZE_MAX / sizeof *entries
                                    ? realloc(s->entries, capacity * sizeof *entries)
                                    : NULL;
        if (!entries)
            return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY,
                              "out of memory for a tensor schema of %zu entries", capacity);
        s->entries = entries;
        s->capacity = capacity;
    }
    schema_entry *entry = &s->entries[s->count++];
    va_list args;
    va_start(args, fmt);
    vsnprintf(entry->name, sizeof entry->name, fmt, args);
    va_end(args);
    entry->ndim = ndim;
    entry->shape[0] = d0;
    entry->shape[1] = d1;
    return DMLLM_OK;
}

static int compare_schema_names(const void *a, const void *b) {
    return strcmp(((const schema_entry *)a)->name, ((const schema_entry *)b)->name);
}

/* Every tensor inference reads, with the shape the config implies (model-spec 1.4). */
static dmllm_status build_schema(const dmllm_config *config, schema *s) {
    const dmllm_vision_config *v = &config->vision;
    const dmllm_text_config *t = &config->text;
    const int64_t vh = v->hidden_size, th = t->hidden_size;
    const int64_t merged = vh * v->spatial_merge_size * v->spatial_merge_size;
    const int64_t patch_features = (int64_t)v->num_channels * v->patch_size * v->patch_size;

    DMLLM_TRY(schema_add(s, 2, vh, patch_features, VISION_PREFIX "embeddings.patch_embedding.weight"));
    DMLLM_TRY(schema_add(s, 1, vh, 0, VISION_PREFIX "embeddings.patch_embedding.bias"));
    static const char *const vision_projections[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int l = 0; l < v->num_layers; l++) {
        const char *layer = VISION_PREFIX "encoder.layers.%d.%s.%s";
        for (int norm = 1; norm <= 2; norm++) {
            char module[16];
            snprintf(module, sizeof module, "layer_norm%d", norm);
            DMLLM_TRY(schema_add(s, 1, vh, 0, layer, l, module, "weight"));
            DMLLM_TRY(schema_add(s, 1, vh, 0, layer, l, module, "bias"));
        }
        for (int p = 0; p < 4; p++) {
            DMLLM_TRY(schema_add(s, 2, vh, vh, VISION_PREFIX "encoder.layers.%d.self_attn.%s.weight", l, vision_projections[p]));
            DMLLM_TRY(schema_add(s, 1, vh, 0, VISION_PREFIX "encoder.layers.%d.self_attn.%s.bias", l, vision_projections[p]));
        }
        DMLLM_TRY(schema_add(s, 2, v->intermediate_size, vh, layer, l, "mlp.fc1", "weight"));
        DMLLM_TRY(schema_add(s, 1, v->intermediate_size, 0, layer, l, "mlp.fc1", "bias"));
        DMLLM_TRY(schema_add(s, 2, vh, v->intermediate_size, layer, l, "mlp.fc2", "weight"));
        DMLLM_TRY(schema_add(s, 1, vh, 0, layer, l, "mlp.fc2", "bias"));
    }
    DMLLM_TRY(schema_add(s, 1, vh, 0, VISION_PREFIX "post_layernorm.weight"));
    DMLLM_TRY(schema_add(s, 1, vh, 0, VISION_PREFIX "post_layernorm.bias"));

    DMLLM_TRY(schema_add(s, 1, vh, 0, "merger.ln_q.weight"));
    DMLLM_TRY(schema_add(s, 2, merged, merged, "merger.mlp.0.weight"));
    DMLLM_TRY(schema_add(s, 1, merged, 0, "merger.mlp.0.bias"));
    DMLLM_TRY(schema_add(s, 2, th, merged, "merger.mlp.2.weight"));
    DMLLM_TRY(schema_add(s, 1, th, 0, "merger.mlp.2.bias"));

    const int64_t q_rows = (int64_t)t->num_heads * (t->qk_nope_head_dim + t->qk_rope_head_dim);
    const int64_t kv_rows = (int64_t)t->num_heads * (t->qk_nope_head_dim + t->v_head_dim);
    const int64_t o_cols = (int64_t)t->num_heads * t->v_head_dim;
    DMLLM_TRY(schema_add(s, 2, t->vocab_size, th, "model.embed_tokens.weight"));
    DMLLM_TRY(schema_add(s, 1, th, 0, "model.norm.weight"));
    for (int l = 0; l < t->num_layers; l++) {
        const char *layer = "model.layers.%d.%s.weight";
        DMLLM_TRY(schema_add(s, 1, th, 0, layer, l, "input_layernorm"));
        DMLLM_TRY(schema_add(s, 2, t->q_lora_rank, th, layer, l, "self_attn.q_a_proj"));
        DMLLM_TRY(schema_add(s, 1, t->q_lora_rank, 0, layer, l, "self_attn.q_a_layernorm"));
        DMLLM_TRY(schema_add(s, 2, q_rows, t->q_lora_rank, layer, l, "self_attn.q_b_proj"));
        DMLLM_TRY(schema_add(s, 2, (int64_t)t->kv_lora_rank + t->qk_rope_head_dim, th, layer, l, "self_attn.kv_a_proj_with_mqa"));
        DMLLM_TRY(schema_add(s, 1, t->kv_lora_rank, 0, layer, l, "self_attn.kv_a_layernorm"));
        DMLLM_TRY(schema_add(s, 2, kv_rows, t->kv_lora_rank, layer, l, "self_attn.kv_b_proj"));
        DMLLM_TRY(schema_add(s, 2, th, o_cols, layer, l, "self_attn.o_proj"));
        DMLLM_TRY(schema_add(s, 1, th, 0, layer, l, "post_attention_layernorm"));
        DMLLM_TRY(schema_add(s, 2, t->intermediate_size, th, layer, l, "mlp.gate_proj"));
        DMLLM_TRY(schema_add(s, 2, t->intermediate_size, th, layer, l, "mlp.up_proj"));
        DMLLM_TRY(schema_add(s, 2, th, t->intermediate_size, layer, l, "mlp.down_proj"));
    }
    qsort(s->entries, (size_t)s->count, sizeof *s->entries, compare_schema_names);
    return DMLLM_OK;
}

/* "[a, b]" for messages. */
static const char *format_shape(char *buffer, size_t size, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buffer, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buffer + used, size - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < size) snprintf(buffer + used, size - used, "]");
    return buffer;
}

static dmllm_status check_shape(const dmllm_tensor *tensor, int ndim, const int64_t *shape) {
    bool same = tensor->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = tensor->shape[d] == shape[d];
    if (same) return DMLLM_OK;
    char got[160], want[64];
    return dmllm_fail(DMLLM_ERR_SHAPE, "tensor %s has shape %s, config implies %s", tensor->name,
                      format_shape(got, sizeof got, tensor->ndim, tensor->shape), format_shape(want, sizeof want, ndim, shape));
}

static bool is_float_dtype(dmllm_dtype dtype) {
    return dtype == DMLLM_DTYPE_F32 || dtype == DMLLM_DTYPE_F16 || dtype == DMLLM_DTYPE_BF16;
}

/* Checks the schema tensors, the optional ones, and reports the rest once. */
static dmllm_status validate_tensors(dmllm_checkpoint *checkpoint, const schema *s) {
    checkpoint->n_params = 0;
    for (size_t i = 0; i < s->count; i++) {
        const schema_entry *entry = &s->entries[i];
        const dmllm_tensor *tensor = dmllm_checkpoint_tensor(checkpoint, entry->name);
        if (!tensor) return dmllm_fail(DMLLM_ERR_SHAPE, "missing tensor %s", entry->name);
        if (!is_float_dtype(tensor->dtype))
            return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "tensor %s has dtype %s; only F32, F16 and BF16 are supported", entry->name,
                              dmllm_dtype_name(tensor->dtype));
        DMLLM_TRY(check_shape(tensor, entry->ndim, entry->shape));
        checkpoint->n_params += tensor->n_elements;
    }
    const dmllm_tensor *lm_head = dmllm_checkpoint_tensor(checkpoint, LM_HEAD_NAME);
    if (lm_head) {
        const int64_t tied_shape[2] = {checkpoint->config.text.vocab_size, checkpoint->config.text.hidden_size};
        DMLLM_TRY(check_shape(lm_head, 2, tied_shape));
    }
    int n_unknown = 0;
    const char *first_unknown = NULL;
    for (int i = 0; i < checkpoint->n_tensors; i++) {
        const char *name = checkpoint->tensors[i]->name;
        if (strcmp(name, LM_HEAD_NAME) == 0 || strcmp(name, POSITION_EMBEDDING_NAME) == 0) continue;
        schema_entry key;
        snprintf(key.name, sizeof key.name, "%s", name);
        bool fits_key = strlen(name) < sizeof key.name;
        if (fits_key && bsearch(&key, s->entries, (size_t)s->count, sizeof *s->entries, compare_schema_names)) continue;
        if (!first_unknown) first_unknown = name;
        n_unknown++;
    }
    if (n_unknown)
        dmllm_log(DMLLM_LOG_WARN, "%s: ignoring %d tensor%s the model does not use (first: %s)", checkpoint->dir, n_unknown,
                  n_unknown == 1 ? "" : "s", first_unknown);
    return DMLLM_OK;
}

/* ---- public ---------------------------------------------------------------------------------- */

static dmllm_status open_checkpoint(dmllm_checkpoint *checkpoint) {
    DMLLM_TRY(load_config(checkpoint));
    DMLLM_TRY(load_tensors(checkpoint));
    schema s = {0};
    dmllm_status status = build_schema(&checkpoint->config, &s);
    if (status == DMLLM_OK) status = validate_tensors(checkpoint, &s);
    free(s.entries);
    return status;
}

dmllm_status dmllm_checkpoint_open(const char *model_dir, dmllm_checkpoint **out) {
    if (!model_dir || !out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_checkpoint_open: NULL argument");
    *out = NULL;
    dmllm_checkpoint *checkpoint = dmllm_calloc(1, sizeof *checkpoint);
    if (checkpoint) checkpoint->dir = strdup(model_dir);
    if (checkpoint) checkpoint->json_hash = DMLLM_FNV1A_INIT;
    if (!checkpoint || !checkpoint->dir) {
        free(checkpoint);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory opening %s", model_dir);
    }
    dmllm_status status = open_checkpoint(checkpoint);
    if (status != DMLLM_OK) {
        dmllm_checkpoint_close(checkpoint);
        return status;
    }
    *out = checkpoint;
    return DMLLM_OK;
}

void dmllm_checkpoint_close(dmllm_checkpoint *checkpoint) {
    if (!checkpoint) return;
    for (int i = 0; i < checkpoint->n_files; i++) {
        dmllm_safetensors_close(checkpoint->files[i]);
        free(checkpoint->file_names[i]);
    }
    free(checkpoint->files);
    free(checkpoint->file_names);
    free(checkpoint->tensors);
    free(checkpoint->dir);
    free(checkpoint);
}

const dmllm_config *dmllm_checkpoint_config(const dmllm_checkpoint *checkpoint) { return &checkpoint->config; }

const char *dmllm_checkpoint_dir(const dmllm_checkpoint *checkpoint) { return checkpoint->dir; }

const dmllm_tensor *dmllm_checkpoint_tensor(const dmllm_checkpoint *checkpoint, const char *name) {
    if (!checkpoint || !name) return NULL;
    const dmllm_tensor key = {.name = name};
    const dmllm_tensor *key_pointer = &key;
    const dmllm_tensor *const *found = bsearch(&key_pointer, checkpoint->tensors, (size_t)checkpoint->n_tensors,
                                               sizeof *checkpoint->tensors, compare_tensor_pointers);
    return found ? *found : NULL;
}

const dmllm_tensor *dmllm_checkpoint_tensorf(const dmllm_checkpoint *checkpoint, const char *fmt, ...) {
    char name[256];
    va_list args;
    va_start(args, fmt);
    int length = vsnprintf(name, sizeof name, fmt, args);
    va_end(args);
    if (length < 0 || (size_t)length >= sizeof name) return NULL;
    return dmllm_checkpoint_tensor(checkpoint, name);
}

int64_t dmllm_checkpoint_n_params(const dmllm_checkpoint *checkpoint) { return checkpoint->n_params; }

uint64_t dmllm_checkpoint_identity(const dmllm_checkpoint *checkpoint) {
    uint64_t hash = checkpoint->json_hash;
    for (int i = 0; i < checkpoint->n_files; i++) {
        const uint64_t file = dmllm_safetensors_identity(checkpoint->files[i]);
        hash = dmllm_fnv1a(hash, checkpoint->file_names[i], strlen(checkpoint->file_names[i]) + 1);
        hash = dmllm_fnv1a(hash, &file, sizeof file);
    }
    return hash;
}
