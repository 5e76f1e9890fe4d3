/*
 * config.c: parses and validates a Youtu-VL config.json (model-spec 1.2): LLM keys at the root,
 * the vision tower in "vision_config". Every required key is read from the file; defaults exist
 * only where Hugging Face documents one. Touches no tensors and no files.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define YOUTU_VL_ARCHITECTURE "YoutuVLForConditionalGeneration"
#define YOUTU_VL_MODEL_TYPE "youtu_vl"
/* Hugging Face defaults of the Youtu text config for the special ids (model-spec 1.2). */
#define DEFAULT_BOS_TOKEN_ID 128000
#define DEFAULT_EOS_TOKEN_ID 128001

/*
 * Allowed ranges (inclusive) of the config.json integers, checked as each key is read, before any
 * arithmetic uses it. The bounds are far above every published model (hidden sizes up to ~20k,
 * MLPs up to ~74k, up to ~130 layers, a few hundred heads of at most 256, vocabularies up to
 * ~300k, contexts up to 10M) yet small enough that every product of them the loader forms fits an
 * int (asserted below) and that the tensor schema of checkpoint.c (12 to 16 entries a layer) is
 * built in milliseconds.
 */
#define MAX_HIDDEN (1 << 16)        /* hidden_size, out_hidden_size, q/kv_lora_rank */
#define MAX_INTERMEDIATE (1 << 18)
#define MAX_LAYERS 4096
#define MAX_HEADS 1024              /* num_attention_heads, num_key_value_heads */
#define MAX_HEAD_DIM 4096           /* qk_nope_head_dim, qk_rope_head_dim, v_head_dim */
#define MAX_VOCAB (1 << 24)
#define MAX_POSITIONS (1 << 24)     /* max_position_embeddings */
#define MAX_PATCH 1024              /* vision patch side in pixels */
#define MAX_WINDOW (1 << 16)        /* vision window side in pixels */
/* The image preprocessing (preprocess.c, session.c) builds RGB patches in 2x2 merge blocks, so
 * other values would make it read or write past the pixel and embedding buffers. */
#define RGB_CHANNELS 3
#define MERGE_SIZE 2
/* The epsilons are used as floats and must not round to 0 there (below ~1e-45; a zero row would
 * then normalise to NaN); published ones are 1e-12 .. 1e-5, and above 1 an epsilon would swamp
 * the statistics it guards. */
#define MIN_EPS 1e-30
#define MAX_EPS 1.0
/* RoPE frequencies theta^(-2i/d) must not grow with i, hence theta >= 1; published bases are
 * 1e4 .. 1e8. */
#define MIN_ROPE_THETA 1.0
#define MAX_ROPE_THETA 1e12

/* Products of config values the loader and the stages keep in int: merged vision rows, patch
 * features, the window unit, attention widths such as heads * (kv_lora_rank + qk_rope_head_dim). */
_Static_assert((int64_t)MAX_HIDDEN * MERGE_SIZE * MERGE_SIZE <= INT32_MAX, "merged vision rows");
_Static_assert((int64_t)RGB_CHANNELS * MAX_PATCH * MAX_PATCH <= INT32_MAX, "patch features");
_Static_assert((int64_t)MAX_PATCH * MERGE_SIZE <= INT32_MAX, "window unit");
_Static_assert((int64_t)MAX_HEADS * (MAX_HIDDEN + MAX_HEAD_DIM) <= INT32_MAX, "attention widths");
_Static_assert((int64_t)MAX_HEADS * 2 * MAX_HEAD_DIM <= INT32_MAX, "q and kv_b rows");

/* A JSON object plus the dotted prefix used to name its keys in messages ("vision_config."). */
typedef struct json_scope {
    const cJSON *object;
    const char *prefix;
} json_scope;

static dmllm_status missing_key(const json_scope *scope, const char *key) {
    return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s missing", scope->prefix, key);
}

/* Reads an integer in [min_value, max_value]; an absent key is an error unless default_value is
 * given (has_default). */
static dmllm_status read_int_range(const json_scope *scope, const char *key, long min_value, long max_value,
                                   bool has_default, int default_value, int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(scope->object, key);
    if (!item || cJSON_IsNull(item)) {
        if (!has_default) return missing_key(scope, key);
        *out = default_value;
        return DMLLM_OK;
    }
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble))
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s must be an integer", scope->prefix, key);
    if (item->valuedouble < (double)min_value || item->valuedouble > (double)max_value)
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s = %.17g is out of range [%ld, %ld]", scope->prefix,
                          key, item->valuedouble, min_value, max_value);
    *out = (int)item->valuedouble;
    return DMLLM_OK;
}

/* A required size in [1, max_value]. */
static dmllm_status read_size(const json_scope *scope, const char *key, int max_value, int *out) {
    return read_int_range(scope, key, 1, max_value, false, 0, out);
}

/* Reads a number in [min_value, max_value] (NaN and infinities fail); absent -> default_value when
 * has_default. */
static dmllm_status read_number_range(const json_scope *scope, const char *key, double min_value,
                                      double max_value, bool has_default, double default_value,
                                      double *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(scope->object, key);
    if (!item || cJSON_IsNull(item)) {
        if (!has_default) return missing_key(scope, key);
        *out = default_value;
        return DMLLM_OK;
    }
    if (!cJSON_IsNumber(item))
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s must be a number", scope->prefix,
                          key);
    if (!(item->valuedouble >= min_value && item->valuedouble <= max_value))
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s = %g is out of range [%g, %g]",
                          scope->prefix, key, item->valuedouble, min_value, max_value);
    *out = item->valuedouble;
    return DMLLM_OK;
}

static dmllm_status read_eps(const json_scope *scope, const char *key, float *out) {
    double eps = 0; /* set on success; initialised for the compiler's flow analysis */
    DMLLM_TRY(read_number_range(scope, key, MIN_EPS, MAX_EPS, true, 1e-6, &eps));
    *out = (float)eps;
    return DMLLM_OK;
}

static dmllm_status read_token_id(const json_scope *scope, const char *key, bool has_default, int default_value,
                                  int *out) {
    return read_int_range(scope, key, 0, INT32_MAX, has_default, default_value, out);
}

/* eos_token_id: one id, or a list of ids (as transformers accepts it), every one of which ends
 * generation; out[0] is the first. */
static dmllm_status read_eos_ids(const json_scope *scope, int default_value, int *out, int *n_out) {
    const char *key = "eos_token_id";
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(scope->object, key);
    *n_out = 1;
    if (!cJSON_IsArray(list)) return read_token_id(scope, key, true, default_value, out);
    const int n = cJSON_GetArraySize(list);
    if (n < 1 || n > DMLLM_MAX_EOS_IDS)
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s lists %d ids (1..%d supported)", scope->prefix,
                          key, n, DMLLM_MAX_EOS_IDS);
    int i = 0;
    const cJSON *id;
    cJSON_ArrayForEach(id, list) {
        const double v = cJSON_IsNumber(id) ? id->valuedouble : -1.0;
        if (v != floor(v) || v < 0 || v > INT32_MAX)
            return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s[%d] must be a non-negative integer",
                              scope->prefix, key, i);
        out[i++] = (int)v;
    }
    *n_out = n;
    return DMLLM_OK;
}

static dmllm_status read_bool(const json_scope *scope, const char *key, bool default_value, bool *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(scope->object, key);
    if (!item || cJSON_IsNull(item)) {
        *out = default_value;
        return DMLLM_OK;
    }
    if (!cJSON_IsBool(item)) return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s%s must be true or false", scope->prefix, key);
    *out = cJSON_IsTrue(item);
    return DMLLM_OK;
}

/* The model must name itself Youtu-VL through "architectures" and/or "model_type"; whichever is
 * present must match, and at least one must be. */
static dmllm_status check_architecture(const cJSON *root, dmllm_config *config) {
    const cJSON *architectures = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *model_type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (architectures && !cJSON_IsArray(architectures))
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: architectures must be a list of strings");
    if (model_type && !cJSON_IsString(model_type))
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: model_type must be a string");
    if (!architectures && !model_type)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json names no architecture and no model_type; expected %s",
                          YOUTU_VL_ARCHITECTURE);
    if (model_type) {
        if (strcmp(model_type->valuestring, YOUTU_VL_MODEL_TYPE) != 0)
            return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: model_type \"%.64s\" is not supported (expected \"%s\")",
                              model_type->valuestring, YOUTU_VL_MODEL_TYPE);
        snprintf(config->model_type, sizeof config->model_type, "%s", model_type->valuestring);
    }
    if (architectures) {
        const cJSON *name;
        const char *first = NULL;
        bool found = false;
        cJSON_ArrayForEach(name, architectures) {
            if (!cJSON_IsString(name)) return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: architectures must be a list of strings");
            if (!first) first = name->valuestring;
            if (strcmp(name->valuestring, YOUTU_VL_ARCHITECTURE) == 0) found = true;
        }
        if (!found)
            return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: architecture \"%.64s\" is not supported (expected %s)",
                              first ? first : "(empty list)", YOUTU_VL_ARCHITECTURE);
    }
    snprintf(config->architecture, sizeof config->architecture, "%s", YOUTU_VL_ARCHITECTURE);
    return DMLLM_OK;
}

static dmllm_status parse_text(const cJSON *root, dmllm_text_config *text) {
    const json_scope scope = {root, ""};
    DMLLM_TRY(read_size(&scope, "hidden_size", MAX_HIDDEN, &text->hidden_size));
    DMLLM_TRY(read_size(&scope, "intermediate_size", MAX_INTERMEDIATE, &text->intermediate_size));
    DMLLM_TRY(read_size(&scope, "num_hidden_layers", MAX_LAYERS, &text->num_layers));
    DMLLM_TRY(read_size(&scope, "num_attention_heads", MAX_HEADS, &text->num_heads));
    DMLLM_TRY(read_size(&scope, "q_lora_rank", MAX_HIDDEN, &text->q_lora_rank));
    DMLLM_TRY(read_size(&scope, "kv_lora_rank", MAX_HIDDEN, &text->kv_lora_rank));
    DMLLM_TRY(read_size(&scope, "qk_nope_head_dim", MAX_HEAD_DIM, &text->qk_nope_head_dim));
    DMLLM_TRY(read_size(&scope, "qk_rope_head_dim", MAX_HEAD_DIM, &text->qk_rope_head_dim));
    DMLLM_TRY(read_size(&scope, "v_head_dim", MAX_HEAD_DIM, &text->v_head_dim));
    DMLLM_TRY(read_size(&scope, "vocab_size", MAX_VOCAB, &text->vocab_size));
    DMLLM_TRY(read_size(&scope, "max_position_embeddings", MAX_POSITIONS,
                        &text->max_position_embeddings));
    DMLLM_TRY(read_eps(&scope, "rms_norm_eps", &text->rms_norm_eps));
    /* No default: the ports disagree (500000 for youtu_vl in MLX, 1.6e6 for Youtu-LLM-2B,
     * model-spec 1.2), and a guess would silently change every position's rotation. */
    DMLLM_TRY(read_number_range(&scope, "rope_theta", MIN_ROPE_THETA, MAX_ROPE_THETA, false, 0.0,
                                &text->rope_theta));
    DMLLM_TRY(read_bool(&scope, "tie_word_embeddings", true, &text->tie_word_embeddings));
    bool interleaved;
    DMLLM_TRY(read_bool(&scope, "rope_interleave", true, &interleaved));
    if (!interleaved)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED,
                          "config.json: rope_interleave = false is not supported; only the interleaved "
                          "MLA RoPE of Youtu-VL (rope_interleave true or absent) is implemented");

    int kv_heads;
    DMLLM_TRY(read_int_range(&scope, "num_key_value_heads", 1, MAX_HEADS, true, text->num_heads,
                             &kv_heads));
    if (kv_heads != text->num_heads)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: num_key_value_heads = %d differs from num_attention_heads = %d "
                          "(MLA uses one key/value head per query head)", kv_heads, text->num_heads);
    if (!text->tie_word_embeddings)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: tie_word_embeddings = false (an untied lm_head) is not supported");
    const cJSON *rope_scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rope_scaling && !cJSON_IsNull(rope_scaling))
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: rope_scaling is set; only plain RoPE (rope_scaling null) is supported");
    const cJSON *experts = cJSON_GetObjectItemCaseSensitive(root, "n_routed_experts");
    if (experts && !cJSON_IsNull(experts))
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: n_routed_experts is set; only the dense MLP is supported");
    return DMLLM_OK;
}

static dmllm_status parse_vision(const cJSON *root, dmllm_vision_config *vision) {
    const cJSON *object = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (!object) return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: vision_config missing");
    if (!cJSON_IsObject(object)) return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: vision_config must be an object");
    const json_scope scope = {object, "vision_config."};
    DMLLM_TRY(read_size(&scope, "hidden_size", MAX_HIDDEN, &vision->hidden_size));
    DMLLM_TRY(read_size(&scope, "intermediate_size", MAX_INTERMEDIATE, &vision->intermediate_size));
    DMLLM_TRY(read_size(&scope, "num_hidden_layers", MAX_LAYERS, &vision->num_layers));
    DMLLM_TRY(read_size(&scope, "num_attention_heads", MAX_HEADS, &vision->num_heads));
    DMLLM_TRY(read_int_range(&scope, "num_channels", RGB_CHANNELS, RGB_CHANNELS, true, RGB_CHANNELS,
                             &vision->num_channels));
    DMLLM_TRY(read_size(&scope, "patch_size", MAX_PATCH, &vision->patch_size));
    DMLLM_TRY(read_int_range(&scope, "spatial_merge_size", MERGE_SIZE, MERGE_SIZE, false, 0,
                             &vision->spatial_merge_size));
    DMLLM_TRY(read_size(&scope, "window_size", MAX_WINDOW, &vision->window_size));
    DMLLM_TRY(read_size(&scope, "out_hidden_size", MAX_HIDDEN, &vision->out_hidden_size));
    DMLLM_TRY(read_eps(&scope, "layer_norm_eps", &vision->layer_norm_eps));

    const cJSON *indexes = cJSON_GetObjectItemCaseSensitive(object, "fullatt_block_indexes");
    if (!indexes) return missing_key(&scope, "fullatt_block_indexes");
    if (!cJSON_IsArray(indexes))
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: vision_config.fullatt_block_indexes must be a list of integers");
    int count = cJSON_GetArraySize(indexes);
    if (count > DMLLM_MAX_FULLATT_BLOCKS)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: vision_config.fullatt_block_indexes has %d entries (at most %d supported)",
                          count, DMLLM_MAX_FULLATT_BLOCKS);
    vision->n_fullatt_blocks = 0;
    const cJSON *index;
    cJSON_ArrayForEach(index, indexes) {
        if (!cJSON_IsNumber(index) || index->valuedouble != floor(index->valuedouble) || index->valuedouble < 0 ||
            index->valuedouble >= vision->num_layers)
            return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: vision_config.fullatt_block_indexes[%d] is not a layer index in [0, %d)",
                              vision->n_fullatt_blocks, vision->num_layers);
        vision->fullatt_block_indexes[vision->n_fullatt_blocks++] = (int)index->valuedouble;
    }
    return DMLLM_OK;
}

static dmllm_status parse_token_ids(const cJSON *root, dmllm_config *config) {
    const json_scope scope = {root, ""};
    DMLLM_TRY(read_token_id(&scope, "image_token_id", false, 0, &config->image_token_id));
    DMLLM_TRY(read_token_id(&scope, "vision_start_token_id", false, 0, &config->vision_start_token_id));
    DMLLM_TRY(read_token_id(&scope, "vision_end_token_id", false, 0, &config->vision_end_token_id));
    /* Only images are supported, so a missing video id is recorded as -1 rather than rejected. */
    DMLLM_TRY(read_token_id(&scope, "video_token_id", true, -1, &config->video_token_id));
    DMLLM_TRY(read_token_id(&scope, "bos_token_id", true, DEFAULT_BOS_TOKEN_ID, &config->bos_token_id));
    DMLLM_TRY(read_eos_ids(&scope, DEFAULT_EOS_TOKEN_ID, config->eos_token_ids,
                           &config->n_eos_token_ids));
    config->eos_token_id = config->eos_token_ids[0];
    DMLLM_TRY(read_token_id(&scope, "pad_token_id", true, config->eos_token_id, &config->pad_token_id));
    const struct { const char *key; int id; } ids[] = {
        {"image_token_id", config->image_token_id},       {"vision_start_token_id", config->vision_start_token_id},
        {"vision_end_token_id", config->vision_end_token_id}, {"video_token_id", config->video_token_id},
        {"bos_token_id", config->bos_token_id},           {"eos_token_id", config->eos_token_id},
        {"pad_token_id", config->pad_token_id},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id >= config->text.vocab_size)
            return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: %s = %d is outside the vocabulary (vocab_size %d)", ids[i].key,
                              ids[i].id, config->text.vocab_size);
    for (int i = 1; i < config->n_eos_token_ids; i++)
        if (config->eos_token_ids[i] >= config->text.vocab_size)
            return dmllm_fail(DMLLM_ERR_FORMAT,
                              "config.json: eos_token_id[%d] = %d is outside the vocabulary (vocab_size %d)", i,
                              config->eos_token_ids[i], config->text.vocab_size);
    return DMLLM_OK;
}

/* Relations between keys that the vision and LLM code rely on. */
static dmllm_status check_consistency(const dmllm_config *config) {
    const dmllm_text_config *text = &config->text;
    const dmllm_vision_config *vision = &config->vision;
    if (vision->hidden_size % vision->num_heads != 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: vision_config.hidden_size %d is not divisible by vision_config.num_attention_heads %d",
                          vision->hidden_size, vision->num_heads);
    int vision_head_dim = vision->hidden_size / vision->num_heads;
    if (vision_head_dim % 4 != 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: vision head_dim %d (vision_config.hidden_size / num_attention_heads) "
                          "is not divisible by 4 as 2-D RoPE needs", vision_head_dim);
    int64_t window_unit = (int64_t)vision->patch_size * vision->spatial_merge_size;
    if (vision->window_size % window_unit != 0)
        return dmllm_fail(DMLLM_ERR_FORMAT,
                          "config.json: vision_config.window_size %d is not divisible by "
                          "patch_size * spatial_merge_size = %lld",
                          vision->window_size, (long long)window_unit);
    if (vision->out_hidden_size != text->hidden_size)
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: vision_config.out_hidden_size %d differs from hidden_size %d",
                          vision->out_hidden_size, text->hidden_size);
    if (text->qk_rope_head_dim % 2 != 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "config.json: qk_rope_head_dim %d is odd; RoPE rotates pairs", text->qk_rope_head_dim);
    return DMLLM_OK;
}

dmllm_status dmllm_config_parse(const char *json, size_t length, dmllm_config *out) {
    if (!json || !out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_config_parse: NULL argument");
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, length);
    if (!root) return dmllm_fail(DMLLM_ERR_FORMAT, "config.json is not valid JSON");
    dmllm_status status = DMLLM_OK;
    if (!cJSON_IsObject(root)) status = dmllm_fail(DMLLM_ERR_FORMAT, "config.json is not a JSON object");
    if (status == DMLLM_OK) status = check_architecture(root, out);
    if (status == DMLLM_OK) status = parse_text(root, &out->text);
    if (status == DMLLM_OK) status = parse_vision(root, &out->vision);
    if (status == DMLLM_OK) status = parse_token_ids(root, out);
    if (status == DMLLM_OK) status = check_consistency(out);
    cJSON_Delete(root);
    return status;
}

int dmllm_config_window_tokens(const dmllm_vision_config *vision) {
    return vision->window_size / (vision->spatial_merge_size * vision->patch_size);
}
