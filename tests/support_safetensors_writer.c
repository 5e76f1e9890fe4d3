/*
 * support_safetensors_writer.c: test-only safetensors and tiny-checkpoint writers (see the header).
 * Writes only below the directory or path it is given.
 */
#include "support_safetensors_writer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t tensor_bytes(const stw_tensor *tensor) {
    size_t n = dmllm_dtype_size(tensor->dtype);
    for (int d = 0; d < tensor->ndim; d++) n *= (size_t)tensor->shape[d];
    return n;
}

int stw_write_raw(const char *path, uint64_t header_length, const char *header, const void *data, size_t data_size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint8_t length_bytes[8];
    for (int i = 0; i < 8; i++) length_bytes[i] = (uint8_t)(header_length >> (8 * i));
    bool ok = fwrite(length_bytes, 1, 8, f) == 8;
    size_t text_length = strlen(header);
    ok = ok && fwrite(header, 1, text_length, f) == text_length;
    if (data_size) ok = ok && fwrite(data, 1, data_size, f) == data_size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int stw_write_file(const char *path, const stw_tensor *tensors, int n_tensors, const char *metadata_json) {
    cJSON *header = cJSON_CreateObject();
    if (metadata_json) cJSON_AddItemToObject(header, "__metadata__", cJSON_Parse(metadata_json));
    size_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        cJSON *entry = cJSON_AddObjectToObject(header, tensors[i].name);
        cJSON_AddStringToObject(entry, "dtype", dmllm_dtype_name(tensors[i].dtype));
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < tensors[i].ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)tensors[i].shape[d]));
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        size_t size = tensor_bytes(&tensors[i]);
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + size)));
        offset += size;
    }
    char *text = cJSON_PrintUnformatted(header);
    cJSON_Delete(header);
    if (!text) return -1;
    uint8_t *data = malloc(offset ? offset : 1); /* [offset] the concatenated tensor bytes */
    if (!data) {
        free(text);
        return -1;
    }
    offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        size_t size = tensor_bytes(&tensors[i]);
        if (size) memcpy(data + offset, tensors[i].data, size);
        offset += size;
    }
    /* Padded with spaces to a multiple of 8 bytes, as the reference writer does, so that data stays aligned. */
    size_t text_length = strlen(text), header_length = (text_length + 7) & ~(size_t)7;
    char *padded = malloc(header_length + 1); /* [header_length + 1] */
    int result = -1;
    if (padded) {
        memcpy(padded, text, text_length);
        memset(padded + text_length, ' ', header_length - text_length);
        padded[header_length] = '\0';
        result = stw_write_raw(path, header_length, padded, data, offset);
    }
    free(padded);
    free(text);
    free(data);
    return result;
}

/* ---- tiny checkpoints ------------------------------------------------------------------------ */

void stw_tiny_config(dmllm_config *config) {
    memset(config, 0, sizeof *config);
    snprintf(config->architecture, sizeof config->architecture, "YoutuVLForConditionalGeneration");
    snprintf(config->model_type, sizeof config->model_type, "youtu_vl");
    dmllm_text_config *t = &config->text;
    t->hidden_size = 48;
    t->intermediate_size = 64;
    t->num_layers = 2;
    t->num_heads = 2;
    t->q_lora_rank = 24;
    t->kv_lora_rank = 16;
    t->qk_nope_head_dim = 8;
    t->qk_rope_head_dim = 4;
    t->v_head_dim = 8;
    t->vocab_size = 300;
    t->max_position_embeddings = 4096;
    t->rms_norm_eps = 1e-6f;
    t->rope_theta = 500000.0;
    t->tie_word_embeddings = true;
    dmllm_vision_config *v = &config->vision;
    v->hidden_size = 32;
    v->intermediate_size = 40;
    v->num_layers = 2;
    v->num_heads = 2;
    v->num_channels = 3;
    v->patch_size = 4;
    v->spatial_merge_size = 2;
    v->window_size = 32;
    v->out_hidden_size = t->hidden_size;
    v->layer_norm_eps = 1e-6f;
    v->n_fullatt_blocks = 1;
    v->fullatt_block_indexes[0] = 1;
    config->image_token_id = 290;
    config->video_token_id = 291;
    config->vision_start_token_id = 288;
    config->vision_end_token_id = 289;
    config->bos_token_id = 1;
    config->eos_token_id = 2;
    config->pad_token_id = 2;
}

char *stw_config_json(const dmllm_config *config) {
    const dmllm_text_config *t = &config->text;
    const dmllm_vision_config *v = &config->vision;
    cJSON *root = cJSON_CreateObject();
    cJSON *architectures = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(architectures, cJSON_CreateString(config->architecture));
    cJSON_AddStringToObject(root, "model_type", config->model_type);
    cJSON_AddNumberToObject(root, "hidden_size", t->hidden_size);
    cJSON_AddNumberToObject(root, "intermediate_size", t->intermediate_size);
    cJSON_AddNumberToObject(root, "num_hidden_layers", t->num_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", t->num_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", t->num_heads);
    cJSON_AddNumberToObject(root, "q_lora_rank", t->q_lora_rank);
    cJSON_AddNumberToObject(root, "kv_lora_rank", t->kv_lora_rank);
    cJSON_AddNumberToObject(root, "qk_nope_head_dim", t->qk_nope_head_dim);
    cJSON_AddNumberToObject(root, "qk_rope_head_dim", t->qk_rope_head_dim);
    cJSON_AddNumberToObject(root, "v_head_dim", t->v_head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", t->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", t->max_position_embeddings);
    cJSON_AddNumberToObject(root, "rms_norm_eps", t->rms_norm_eps);
    cJSON_AddNumberToObject(root, "rope_theta", t->rope_theta);
    cJSON_AddNullToObject(root, "rope_scaling");
    cJSON_AddBoolToObject(root, "rope_interleave", true);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", t->tie_word_embeddings);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddNumberToObject(root, "image_token_id", config->image_token_id);
    cJSON_AddNumberToObject(root, "video_token_id", config->video_token_id);
    cJSON_AddNumberToObject(root, "vision_start_token_id", config->vision_start_token_id);
    cJSON_AddNumberToObject(root, "vision_end_token_id", config->vision_end_token_id);
    cJSON_AddNumberToObject(root, "bos_token_id", config->bos_token_id);
    cJSON_AddNumberToObject(root, "eos_token_id", config->eos_token_id);
    cJSON_AddNumberToObject(root, "pad_token_id", config->pad_token_id);
    cJSON *vision = cJSON_AddObjectToObject(root, "vision_config");
    cJSON_AddStringToObject(vision, "model_type", "siglip2_vision_model");
    cJSON_AddNumberToObject(vision, "hidden_size", v->hidden_size);
    cJSON_AddNumberToObject(vision, "intermediate_size", v->intermediate_size);
    cJSON_AddNumberToObject(vision, "num_hidden_layers", v->num_layers);
    cJSON_AddNumberToObject(vision, "num_attention_heads", v->num_heads);
    cJSON_AddNumberToObject(vision, "num_channels", v->num_channels);
    cJSON_AddNumberToObject(vision, "patch_size", v->patch_size);
    cJSON_AddNumberToObject(vision, "spatial_merge_size", v->spatial_merge_size);
    cJSON_AddNumberToObject(vision, "window_size", v->window_size);
    cJSON_AddNumberToObject(vision, "out_hidden_size", v->out_hidden_size);
    cJSON_AddNumberToObject(vision, "layer_norm_eps", v->layer_norm_eps);
    cJSON_AddStringToObject(vision, "hidden_act", "gelu_pytorch_tanh");
    cJSON *indexes = cJSON_AddArrayToObject(vision, "fullatt_block_indexes");
    for (int i = 0; i < v->n_fullatt_blocks; i++) cJSON_AddItemToArray(indexes, cJSON_CreateNumber(v->fullatt_block_indexes[i]));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* How a tensor's random values are drawn. */
typedef enum value_kind { VALUES_WEIGHT, VALUES_NORM, VALUES_BIAS } value_kind;

typedef struct planned_tensor {
    char name[128];
    int ndim;
    int64_t shape[2];
    value_kind kind;
} planned_tensor;

typedef struct tensor_plan {
    int count;
    planned_tensor entries[1024];
} tensor_plan;

static void plan(tensor_plan *p, value_kind kind, int64_t d0, int64_t d1, const char *fmt, ...) DMLLM_PRINTF(5, 6);

static void plan(tensor_plan *p, value_kind kind, int64_t d0, int64_t d1, const char *fmt, ...) {
    if (p->count == (int)(sizeof p->entries / sizeof p->entries[0])) return;
    planned_tensor *t = &p->entries[p->count++];
    va_list args;
    va_start(args, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, args);
    va_end(args);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->kind = kind;
}

/* model-spec 1.4, written out independently of lib/checkpoint.c. */
static void plan_checkpoint(const dmllm_config *config, const stw_checkpoint_options *options, tensor_plan *p) {
    const dmllm_vision_config *v = &config->vision;
    const dmllm_text_config *t = &config->text;
    const int64_t vh = v->hidden_size, th = t->hidden_size, vi = v->intermediate_size;
    const int64_t m = vh * v->spatial_merge_size * v->spatial_merge_size;
    p->count = 0;
    plan(p, VALUES_WEIGHT, vh, (int64_t)v->num_channels * v->patch_size * v->patch_size,
         "siglip2.vision_model.embeddings.patch_embedding.weight");
    plan(p, VALUES_BIAS, vh, 0, "siglip2.vision_model.embeddings.patch_embedding.bias");
    if (options->with_position_embedding)
        plan(p, VALUES_WEIGHT, 16, vh, "siglip2.vision_model.embeddings.position_embedding.weight");
    for (int l = 0; l < v->num_layers; l++) {
#define VL "siglip2.vision_model.encoder.layers.%d."
        plan(p, VALUES_NORM, vh, 0, VL "layer_norm1.weight", l);
        plan(p, VALUES_BIAS, vh, 0, VL "layer_norm1.bias", l);
        plan(p, VALUES_WEIGHT, vh, vh, VL "self_attn.q_proj.weight", l);
        plan(p, VALUES_BIAS, vh, 0, VL "self_attn.q_proj.bias", l);
        plan(p, VALUES_WEIGHT, vh, vh, VL "self_attn.k_proj.weight", l);
        plan(p, VALUES_BIAS, vh, 0, VL "self_attn.k_proj.bias", l);
        plan(p, VALUES_WEIGHT, vh, vh, VL "self_attn.v_proj.weight", l);
        plan(p, VALUES_BIAS, vh, 0, VL "self_attn.v_proj.bias", l);
        plan(p, VALUES_WEIGHT, vh, vh, VL "self_attn.out_proj.weight", l);
        plan(p, VALUES_BIAS, vh, 0, VL "self_attn.out_proj.bias", l);
        plan(p, VALUES_NORM, vh, 0, VL "layer_norm2.weight", l);
        plan(p, VALUES_BIAS, vh, 0, VL "layer_norm2.bias", l);
        plan(p, VALUES_WEIGHT, vi, vh, VL "mlp.fc1.weight", l);
        plan(p, VALUES_BIAS, vi, 0, VL "mlp.fc1.bias", l);
        plan(p, VALUES_WEIGHT, vh, vi, VL "mlp.fc2.weight", l);
        plan(p, VALUES_BIAS, vh, 0, VL "mlp.fc2.bias", l);
#undef VL
    }
    plan(p, VALUES_NORM, vh, 0, "siglip2.vision_model.post_layernorm.weight");
    plan(p, VALUES_BIAS, vh, 0, "siglip2.vision_model.post_layernorm.bias");
    plan(p, VALUES_NORM, vh, 0, "merger.ln_q.weight");
    plan(p, VALUES_WEIGHT, m, m, "merger.mlp.0.weight");
    plan(p, VALUES_BIAS, m, 0, "merger.mlp.0.bias");
    plan(p, VALUES_WEIGHT, th, m, "merger.mlp.2.weight");
    plan(p, VALUES_BIAS, th, 0, "merger.mlp.2.bias");
    plan(p, VALUES_WEIGHT, t->vocab_size, th, "model.embed_tokens.weight");
    plan(p, VALUES_NORM, th, 0, "model.norm.weight");
    if (options->with_lm_head) plan(p, VALUES_WEIGHT, t->vocab_size, th, "lm_head.weight");
    const int64_t h = t->num_heads;
    for (int l = 0; l < t->num_layers; l++) {
#define TL "model.layers.%d."
        plan(p, VALUES_NORM, th, 0, TL "input_layernorm.weight", l);
        plan(p, VALUES_WEIGHT, t->q_lora_rank, th, TL "self_attn.q_a_proj.weight", l);
        plan(p, VALUES_NORM, t->q_lora_rank, 0, TL "self_attn.q_a_layernorm.weight", l);
        plan(p, VALUES_WEIGHT, h * (t->qk_nope_head_dim + t->qk_rope_head_dim), t->q_lora_rank, TL "self_attn.q_b_proj.weight", l);
        plan(p, VALUES_WEIGHT, t->kv_lora_rank + t->qk_rope_head_dim, th, TL "self_attn.kv_a_proj_with_mqa.weight", l);
        plan(p, VALUES_NORM, t->kv_lora_rank, 0, TL "self_attn.kv_a_layernorm.weight", l);
        plan(p, VALUES_WEIGHT, h * (t->qk_nope_head_dim + t->v_head_dim), t->kv_lora_rank, TL "self_attn.kv_b_proj.weight", l);
        plan(p, VALUES_WEIGHT, th, h * t->v_head_dim, TL "self_attn.o_proj.weight", l);
        plan(p, VALUES_NORM, th, 0, TL "post_attention_layernorm.weight", l);
        plan(p, VALUES_WEIGHT, t->intermediate_size, th, TL "mlp.gate_proj.weight", l);
        plan(p, VALUES_WEIGHT, t->intermediate_size, th, TL "mlp.up_proj.weight", l);
        plan(p, VALUES_WEIGHT, th, t->intermediate_size, TL "mlp.down_proj.weight", l);
#undef TL
    }
    if (options->extra_tensor) plan(p, VALUES_BIAS, 4, 0, "%s", options->extra_tensor);
}

/* xorshift32: uniform in [-1, 1). */
static float next_uniform(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return (float)((double)x / 2147483648.0 - 1.0);
}

static uint16_t f32_to_f16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint32_t sign = (bits >> 16) & 0x8000u;
    float magnitude = fabsf(value);
    if (magnitude >= 65520.0f) return (uint16_t)(sign | 0x7c00u);
    if (magnitude < 6.103515625e-05f) /* subnormal: multiples of 2^-24, rounded to nearest even */
        return (uint16_t)(sign | (uint32_t)nearbyintf(magnitude * 16777216.0f));
    uint32_t exponent = ((bits >> 23) & 0xffu) - 127 + 15;
    uint32_t mantissa = bits & 0x7fffffu;
    uint32_t half = (exponent << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return (uint16_t)(sign | half);
}

/* Random values for one planned tensor in dtype; malloc'd. The stream depends only on the seed and
 * the tensor name, so a tensor has the same values whatever else the checkpoint holds. */
static void *make_values(const planned_tensor *t, dmllm_dtype dtype, uint32_t seed) {
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (const char *c = t->name; *c; c++) hash = (hash ^ (uint8_t)*c) * 16777619u;
    uint32_t state_value = (hash ^ seed) ? (hash ^ seed) : 1u;
    uint32_t *state = &state_value;
    size_t n = (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
    uint8_t *bytes = malloc(n * dmllm_dtype_size(dtype) + 1); /* [n * dtype size] */
    if (!bytes) return NULL;
    float scale = t->ndim == 2 ? 1.0f / sqrtf((float)t->shape[1]) : 0.1f;
    for (size_t i = 0; i < n; i++) {
        float value = next_uniform(state) * scale + (t->kind == VALUES_NORM ? 1.0f : 0.0f);
        if (dtype == DMLLM_DTYPE_F32) memcpy(bytes + 4 * i, &value, 4);
        else if (dtype == DMLLM_DTYPE_I32) {
            int32_t integer = (int32_t)(value * 1000);
            memcpy(bytes + 4 * i, &integer, 4);
        } else {
            uint16_t half = dtype == DMLLM_DTYPE_BF16 ? dmllm_f32_to_bf16(value) : f32_to_f16(value);
            memcpy(bytes + 2 * i, &half, 2);
        }
    }
    return bytes;
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t length = strlen(text);
    bool ok = fwrite(text, 1, length, f) == length;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void shard_name(char *buffer, size_t size, int shard, int n_shards) {
    snprintf(buffer, size, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

int stw_write_checkpoint(const char *dir, const dmllm_config *config, const stw_checkpoint_options *options) {
    char *config_text = stw_config_json(config);
    if (!config_text) return -1;
    int result = write_text(dir, "config.json", config_text);
    free(config_text);
    if (result != 0) return result;

    tensor_plan *p = malloc(sizeof *p);
    if (!p) return -1;
    plan_checkpoint(config, options, p);
    stw_tensor *tensors = calloc((size_t)p->count, sizeof *tensors); /* [p->count] */
    if (!tensors) {
        free(p);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < p->count && result == 0; i++) {
        planned_tensor *planned = &p->entries[i];
        if (options->omit_tensor && strcmp(planned->name, options->omit_tensor) == 0) continue;
        if (options->reshape_tensor && strcmp(planned->name, options->reshape_tensor) == 0) planned->shape[0]++;
        stw_tensor *t = &tensors[n++];
        t->name = planned->name;
        t->dtype = options->retype_tensor && strcmp(planned->name, options->retype_tensor) == 0 ? DMLLM_DTYPE_I32 : options->dtype;
        t->ndim = planned->ndim;
        t->shape[0] = planned->shape[0];
        t->shape[1] = planned->shape[1];
        t->data = make_values(planned, t->dtype, options->seed);
        if (!t->data) result = -1;
    }

    char path[1024], name[64];
    if (result == 0 && options->n_shards == 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        result = stw_write_file(path, tensors, n, "{\"format\": \"pt\"}");
    }
    if (result == 0 && options->n_shards > 0) {
        /* Shard s holds tensors s, s + n_shards, ...: every shard gets a mix of stages. */
        stw_tensor *shard_tensors = calloc((size_t)n, sizeof *shard_tensors); /* [n] */
        cJSON *index = cJSON_CreateObject();
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(index, "metadata"), "note");
        cJSON *weight_map = cJSON_AddObjectToObject(index, "weight_map");
        for (int s = 0; s < options->n_shards && shard_tensors && result == 0; s++) {
            int count = 0;
            shard_name(name, sizeof name, s, options->n_shards);
            for (int i = s; i < n; i += options->n_shards) {
                shard_tensors[count++] = tensors[i];
                cJSON_AddStringToObject(weight_map, tensors[i].name, name);
            }
            snprintf(path, sizeof path, "%s/%s", dir, name);
            result = stw_write_file(path, shard_tensors, count, NULL);
        }
        char *index_text = cJSON_Print(index);
        if (!shard_tensors || !index_text) result = -1;
        if (result == 0) result = write_text(dir, "model.safetensors.index.json", index_text);
        free(index_text);
        cJSON_Delete(index);
        free(shard_tensors);
    }
    for (int i = 0; i < n; i++) free((void *)tensors[i].data);
    free(tensors);
    free(p);
    return result;
}
