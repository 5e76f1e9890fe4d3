/*
 * test_checkpoint.c: lib/checkpoint.c opens tiny random Youtu-VL checkpoints written by
 * support_safetensors_writer.c (single file, sharded with an index, F32/F16/BF16, tied lm_head and
 * unused tensors present) and rejects broken directories with the right status and a message that
 * names the file, tensor or key. Writes only under test_temp_dir().
 */
#include "checkpoint.h"
#include "support_safetensors_writer.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int malformed_cases;
static dmllm_config tiny;

/* A fresh directory test_temp_dir()/name. */
static const char *make_dir(const char *name) {
    static char buffer[8][1024];
    static int next;
    char *path = buffer[next++ & 7];
    snprintf(path, sizeof buffer[0], "%s/%s", test_temp_dir(), name);
    CHECK_MSG(mkdir(path, 0755) == 0, "cannot create %s", path);
    return path;
}

static const char *file_in(const char *dir, const char *name) {
    static char buffer[4][1024];
    static int next;
    char *path = buffer[next++ & 3];
    snprintf(path, sizeof buffer[0], "%s/%s", dir, name);
    return path;
}

static const char *write_checkpoint(const char *name, const stw_checkpoint_options *options) {
    const char *dir = make_dir(name);
    CHECK_MSG(stw_write_checkpoint(dir, &tiny, options) == 0, "cannot write checkpoint %s", dir);
    return dir;
}

/* The parameter count written out from model-spec 1.4 for the tiny config. */
static int64_t expected_n_params(const dmllm_config *config) {
    const dmllm_vision_config *v = &config->vision;
    const dmllm_text_config *t = &config->text;
    int64_t vh = v->hidden_size, vi = v->intermediate_size, th = t->hidden_size, ti = t->intermediate_size;
    int64_t m = vh * 4, h = t->num_heads;
    int64_t vision_layer = 4 * (vh * vh + vh) + 4 * vh + (vi * vh + vi) + (vh * vi + vh);
    int64_t vision = vh * v->num_channels * v->patch_size * v->patch_size + vh + v->num_layers * vision_layer + 2 * vh;
    int64_t merger = vh + m * m + m + th * m + th;
    int64_t text_layer = th + t->q_lora_rank * th + t->q_lora_rank + h * (t->qk_nope_head_dim + t->qk_rope_head_dim) * t->q_lora_rank +
                         (t->kv_lora_rank + t->qk_rope_head_dim) * th + t->kv_lora_rank +
                         h * (t->qk_nope_head_dim + t->v_head_dim) * t->kv_lora_rank + th * h * t->v_head_dim + th + 3 * ti * th;
    return vision + merger + (int64_t)t->vocab_size * th + th + t->num_layers * text_layer;
}

static int warnings;
static char last_warning[1024];

static void record_warning(dmllm_log_level level, const char *message, void *user_data) {
    (void)user_data;
    if (level == DMLLM_LOG_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", message);
    }
}

/* Every tensor of reference_file must be in checkpoint with the same name, dtype, shape, and
 * values equal within tolerance (relative to max(|value|, 1)). */
static void compare_values(const dmllm_checkpoint *checkpoint, const char *reference_file, float tolerance) {
    dmllm_safetensors *reference = NULL;
    CHECK_OK(dmllm_safetensors_open(reference_file, &reference));
    if (!reference) return;
    int compared = 0;
    for (int i = 0; i < dmllm_safetensors_count(reference); i++) {
        const dmllm_tensor *want = dmllm_safetensors_at(reference, i);
        const dmllm_tensor *got = dmllm_checkpoint_tensor(checkpoint, want->name);
        CHECK_MSG(got != NULL, "%s missing", want->name);
        if (!got) continue;
        CHECK(got->ndim == want->ndim && got->n_elements == want->n_elements);
        float *a = malloc((size_t)want->n_elements * sizeof *a); /* [n_elements] */
        float *b = malloc((size_t)want->n_elements * sizeof *b); /* [n_elements] */
        dmllm_convert_to_f32(want->dtype, want->data, a, (size_t)want->n_elements);
        dmllm_convert_to_f32(got->dtype, got->data, b, (size_t)got->n_elements);
        float worst = 0;
        for (int64_t j = 0; j < want->n_elements; j++) {
            float error = fabsf(a[j] - b[j]) / fmaxf(fabsf(a[j]), 1.0f);
            if (!(error <= worst)) worst = error;
        }
        CHECK_MSG(worst <= tolerance, "%s: error %g > %g", want->name, worst, tolerance);
        free(a);
        free(b);
        compared++;
    }
    CHECK(compared > 0);
    dmllm_safetensors_close(reference);
}

static void test_single_file(void) {
    const stw_checkpoint_options options = {.dtype = DMLLM_DTYPE_F32};
    const char *dir = write_checkpoint("single_f32", &options);
    dmllm_checkpoint *checkpoint = NULL;
    warnings = 0;
    CHECK_OK(dmllm_checkpoint_open(dir, &checkpoint));
    CHECK(warnings == 0);
    if (!checkpoint) return;
    CHECK(strcmp(dmllm_checkpoint_dir(checkpoint), dir) == 0);
    const dmllm_config *config = dmllm_checkpoint_config(checkpoint);
    CHECK(config->text.hidden_size == tiny.text.hidden_size && config->vision.hidden_size == tiny.vision.hidden_size);
    CHECK(dmllm_checkpoint_n_params(checkpoint) == expected_n_params(&tiny));

    const dmllm_tensor *q_b = dmllm_checkpoint_tensorf(checkpoint, "model.layers.%d.self_attn.q_b_proj.weight", 1);
    CHECK(q_b && q_b->ndim == 2 && q_b->shape[0] == 2 * (8 + 4) && q_b->shape[1] == 24 && q_b->dtype == DMLLM_DTYPE_F32);
    const dmllm_tensor *fc1 = dmllm_checkpoint_tensorf(checkpoint, "siglip2.vision_model.encoder.layers.%d.mlp.fc1.bias", 0);
    CHECK(fc1 && fc1->ndim == 1 && fc1->shape[0] == 40);
    const dmllm_tensor *norm = dmllm_checkpoint_tensor(checkpoint, "model.norm.weight");
    CHECK(norm && norm->n_elements == 48);
    if (norm) {
        float values[48];
        dmllm_convert_to_f32(norm->dtype, norm->data, values, 48);
        for (int i = 0; i < 48; i++) CHECK(values[i] > 0.85f && values[i] < 1.15f);
    }
    CHECK(dmllm_checkpoint_tensorf(checkpoint, "model.layers.%d.mlp.up_proj.weight", 2) == NULL);
    CHECK(dmllm_checkpoint_tensor(checkpoint, "lm_head.weight") == NULL);
    CHECK(dmllm_checkpoint_tensor(checkpoint, "") == NULL);
    compare_values(checkpoint, file_in(dir, "model.safetensors"), 0.0f);
    dmllm_checkpoint_close(checkpoint);
}

/* The same seed gives the same values in every layout, so each is compared with the F32 file. */
static void test_layouts(void) {
    const stw_checkpoint_options reference_options = {.dtype = DMLLM_DTYPE_F32, .seed = 7};
    char reference[1024];
    snprintf(reference, sizeof reference, "%s", file_in(write_checkpoint("reference_f32", &reference_options), "model.safetensors"));

    const struct {
        const char *name;
        stw_checkpoint_options options;
        float tolerance;
    } layouts[] = {
        {"sharded_f32_tied", {.dtype = DMLLM_DTYPE_F32, .n_shards = 3, .with_lm_head = true, .with_position_embedding = true, .seed = 7}, 0.0f},
        {"single_bf16", {.dtype = DMLLM_DTYPE_BF16, .seed = 7}, 1.0f / 256},
        {"sharded_bf16", {.dtype = DMLLM_DTYPE_BF16, .n_shards = 2, .seed = 7}, 1.0f / 256},
        {"one_shard_f16", {.dtype = DMLLM_DTYPE_F16, .n_shards = 1, .with_lm_head = true, .seed = 7}, 1.0f / 2048},
    };
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        const char *dir = write_checkpoint(layouts[i].name, &layouts[i].options);
        dmllm_checkpoint *checkpoint = NULL;
        warnings = 0;
        CHECK_OK(dmllm_checkpoint_open(dir, &checkpoint));
        CHECK_MSG(warnings == 0, "%s: unexpected warning %s", layouts[i].name, last_warning);
        if (!checkpoint) continue;
        CHECK(dmllm_checkpoint_n_params(checkpoint) == expected_n_params(&tiny));
        const dmllm_tensor *embed = dmllm_checkpoint_tensor(checkpoint, "model.embed_tokens.weight");
        CHECK(embed && embed->dtype == layouts[i].options.dtype);
        CHECK((dmllm_checkpoint_tensor(checkpoint, "lm_head.weight") != NULL) == layouts[i].options.with_lm_head);
        compare_values(checkpoint, reference, layouts[i].tolerance);
        dmllm_checkpoint_close(checkpoint);
    }
}

static void test_unknown_tensor_warns_once(void) {
    const stw_checkpoint_options options = {.dtype = DMLLM_DTYPE_BF16, .n_shards = 2, .extra_tensor = "model.layers.0.mlp.experts.0.weight"};
    const char *dir = write_checkpoint("extra_tensor", &options);
    dmllm_checkpoint *checkpoint = NULL;
    warnings = 0;
    CHECK_OK(dmllm_checkpoint_open(dir, &checkpoint));
    CHECK(warnings == 1);
    CHECK(strstr(last_warning, "1 tensor") && strstr(last_warning, "model.layers.0.mlp.experts.0.weight"));
    CHECK(dmllm_checkpoint_tensor(checkpoint, "model.layers.0.mlp.experts.0.weight") != NULL);
    dmllm_checkpoint_close(checkpoint);
}

/* Opens dir expecting failure with status and a message containing both fragments. */
static void expect_open_failure(const char *case_name, const char *dir, dmllm_status expected, const char *fragment1,
                                const char *fragment2) {
    malformed_cases++;
    dmllm_checkpoint *checkpoint = (dmllm_checkpoint *)1;
    dmllm_status status = dmllm_checkpoint_open(dir, &checkpoint);
    const char *message = dmllm_last_error();
    CHECK_MSG(status == expected, "%s: status %d, expected %d (%s)", case_name, status, expected, message);
    CHECK_MSG(checkpoint == NULL, "%s: output not cleared", case_name);
    CHECK_MSG(!fragment1 || strstr(message, fragment1), "%s: message lacks \"%s\": %s", case_name, fragment1, message);
    CHECK_MSG(!fragment2 || strstr(message, fragment2), "%s: message lacks \"%s\": %s", case_name, fragment2, message);
    if (status == DMLLM_OK) dmllm_checkpoint_close(checkpoint);
}

static void write_text(const char *path, const char *text) { CHECK(test_write_file(path, text, strlen(text)) == 0); }

/* Rewrites config.json of dir with key (at the root) set to value_json, or deleted when NULL;
 * nested keys are "vision_config.<key>". */
static void edit_config(const char *dir, const char *key, const char *value_json) {
    size_t size;
    char *text = test_read_file(file_in(dir, "config.json"), &size);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *parent = root;
    if (strncmp(key, "vision_config.", 14) == 0) {
        parent = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
        key += 14;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
    if (value_json) cJSON_AddItemToObject(parent, key, cJSON_Parse(value_json));
    text = cJSON_Print(root);
    write_text(file_in(dir, "config.json"), text);
    free(text);
    cJSON_Delete(root);
}

/* Points weight_map[tensor] of dir's index at shard. */
static void edit_index(const char *dir, const char *tensor, const char *shard) {
    size_t size;
    const char *path = file_in(dir, "model.safetensors.index.json");
    char *text = test_read_file(path, &size);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *weight_map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    CHECK(cJSON_ReplaceItemInObjectCaseSensitive(weight_map, tensor, cJSON_CreateString(shard)));
    text = cJSON_Print(root);
    write_text(path, text);
    free(text);
    cJSON_Delete(root);
}

static void test_broken_directories(void) {
    const stw_checkpoint_options f32 = {.dtype = DMLLM_DTYPE_F32};
    const stw_checkpoint_options sharded = {.dtype = DMLLM_DTYPE_BF16, .n_shards = 2};

    expect_open_failure("no directory", file_in(test_temp_dir(), "no_such_dir"), DMLLM_ERR_IO, "no_such_dir/config.json", NULL);
    const char *dir = write_checkpoint("no_config", &f32);
    CHECK(remove(file_in(dir, "config.json")) == 0);
    expect_open_failure("missing config.json", dir, DMLLM_ERR_IO, "no_config/config.json", NULL);

    dir = write_checkpoint("bad_config", &f32);
    write_text(file_in(dir, "config.json"), "{\"architectures\": [\"YoutuVLForConditionalGeneration\"], ");
    expect_open_failure("malformed config.json", dir, DMLLM_ERR_FORMAT, "bad_config", "config.json is not valid JSON");

    dir = write_checkpoint("llama", &f32);
    edit_config(dir, "architectures", "[\"LlamaForCausalLM\"]");
    expect_open_failure("unknown architecture", dir, DMLLM_ERR_UNSUPPORTED, "LlamaForCausalLM", NULL);

    dir = write_checkpoint("no_patch_size", &f32);
    edit_config(dir, "vision_config.patch_size", NULL);
    expect_open_failure("missing config key", dir, DMLLM_ERR_FORMAT, "vision_config.patch_size missing", NULL);

    dir = make_dir("no_weights");
    char *config_text = stw_config_json(&tiny);
    write_text(file_in(dir, "config.json"), config_text);
    free(config_text);
    expect_open_failure("no weights", dir, DMLLM_ERR_IO, "model.safetensors.index.json", "nor model.safetensors");

    stw_checkpoint_options fault = {.dtype = DMLLM_DTYPE_F32, .omit_tensor = "model.layers.1.mlp.up_proj.weight"};
    dir = write_checkpoint("missing_tensor", &fault);
    expect_open_failure("missing tensor", dir, DMLLM_ERR_SHAPE, "missing tensor model.layers.1.mlp.up_proj.weight", NULL);

    fault = (stw_checkpoint_options){.dtype = DMLLM_DTYPE_BF16, .n_shards = 2, .omit_tensor = "merger.ln_q.weight"};
    dir = write_checkpoint("missing_tensor_sharded", &fault);
    expect_open_failure("missing tensor (sharded)", dir, DMLLM_ERR_SHAPE, "missing tensor merger.ln_q.weight", NULL);

    fault = (stw_checkpoint_options){.dtype = DMLLM_DTYPE_F32, .reshape_tensor = "merger.mlp.2.weight"};
    dir = write_checkpoint("wrong_shape", &fault);
    expect_open_failure("wrong shape", dir, DMLLM_ERR_SHAPE, "tensor merger.mlp.2.weight has shape [49, 128], config implies [48, 128]", NULL);

    fault = (stw_checkpoint_options){.dtype = DMLLM_DTYPE_F32, .reshape_tensor = "model.layers.0.self_attn.kv_a_layernorm.weight"};
    dir = write_checkpoint("wrong_shape_1d", &fault);
    expect_open_failure("wrong 1-D shape", dir, DMLLM_ERR_SHAPE, "has shape [17], config implies [16]", "kv_a_layernorm");

    fault = (stw_checkpoint_options){.dtype = DMLLM_DTYPE_F32, .retype_tensor = "model.layers.0.self_attn.o_proj.weight"};
    dir = write_checkpoint("wrong_dtype", &fault);
    expect_open_failure("integer tensor", dir, DMLLM_ERR_UNSUPPORTED, "model.layers.0.self_attn.o_proj.weight", "dtype I32");

    fault = (stw_checkpoint_options){.dtype = DMLLM_DTYPE_F32, .with_lm_head = true, .reshape_tensor = "lm_head.weight"};
    dir = write_checkpoint("wrong_lm_head", &fault);
    expect_open_failure("lm_head shape", dir, DMLLM_ERR_SHAPE, "tensor lm_head.weight has shape [301, 48], config implies [300, 48]", NULL);

    /* Index faults. */
    dir = write_checkpoint("index_missing_shard", &sharded);
    edit_index(dir, "model.norm.weight", "model-00003-of-00003.safetensors");
    expect_open_failure("index names a missing shard", dir, DMLLM_ERR_IO, "model-00003-of-00003.safetensors", NULL);

    dir = write_checkpoint("index_wrong_shard", &sharded);
    /* The writer puts tensor 0 (patch embedding weight) in shard 1; the index now says shard 2. */
    edit_index(dir, "siglip2.vision_model.embeddings.patch_embedding.weight", "model-00002-of-00002.safetensors");
    expect_open_failure("shard lacks the tensor", dir, DMLLM_ERR_FORMAT, "patch_embedding.weight",
                        "model-00002-of-00002.safetensors, which does not contain it");

    dir = write_checkpoint("index_escape", &sharded);
    edit_index(dir, "model.norm.weight", "../index_wrong_shard/model-00001-of-00002.safetensors");
    expect_open_failure("shard name with ../", dir, DMLLM_ERR_FORMAT, "model.norm.weight", "not a plain file name");

    dir = write_checkpoint("index_dotdot", &sharded);
    edit_index(dir, "model.norm.weight", "..");
    expect_open_failure("shard name ..", dir, DMLLM_ERR_FORMAT, "not a plain file name", NULL);

    dir = write_checkpoint("index_not_json", &sharded);
    write_text(file_in(dir, "model.safetensors.index.json"), "{\"weight_map\": {");
    expect_open_failure("index not JSON", dir, DMLLM_ERR_FORMAT, "model.safetensors.index.json is not a JSON object", NULL);

    dir = write_checkpoint("index_no_map", &sharded);
    write_text(file_in(dir, "model.safetensors.index.json"), "{\"metadata\": {}}");
    expect_open_failure("index without weight_map", dir, DMLLM_ERR_FORMAT, "weight_map missing", NULL);

    dir = write_checkpoint("index_not_string", &sharded);
    write_text(file_in(dir, "model.safetensors.index.json"), "{\"weight_map\": {\"model.norm.weight\": 3}}");
    expect_open_failure("index entry not a string", dir, DMLLM_ERR_FORMAT, "model.norm.weight", "not a file name");

    dir = write_checkpoint("corrupt_shard", &sharded);
    CHECK(test_write_file(file_in(dir, "model-00002-of-00002.safetensors"), "\x10\0\0\0\0\0\0\0{}", 10) == 0);
    expect_open_failure("corrupt shard", dir, DMLLM_ERR_FORMAT, "model-00002-of-00002.safetensors", "header length 16");
}

/* Issue 20: a config.json with absurd sizes fails at once, naming the key, whichever way the
 * checkpoint is opened. patch_size = spatial_merge_size = 65536 used to kill the process with
 * SIGFPE inside dmllm_model_load(check_only); num_hidden_layers = 10^9 used to build a
 * 12-billion-entry tensor schema (3.4 GB after 8 s) before failing. */
static void test_config_ranges(void) {
    const stw_checkpoint_options f32 = {.dtype = DMLLM_DTYPE_F32};
    const char *dir = write_checkpoint("window_unit_wraps", &f32);
    edit_config(dir, "vision_config.patch_size", "65536");
    edit_config(dir, "vision_config.spatial_merge_size", "65536");
    dmllm_model_params params;
    dmllm_model_params_init(&params);
    params.check_only = 1;
    dmllm_model *model = (dmllm_model *)1;
    malformed_cases++;
    CHECK_STATUS(dmllm_model_load(dir, &params, &model), DMLLM_ERR_FORMAT);
    CHECK(model == NULL);
    CHECK_MSG(strstr(dmllm_last_error(), "vision_config.patch_size = 65536 is out of range"), "%s",
              dmllm_last_error());

    static const struct {
        const char *key, *value, *message;
    } cases[] = {
        {"num_hidden_layers", "1000000000",
         "num_hidden_layers = 1000000000 is out of range [1, 4096]"},
        {"vision_config.num_hidden_layers", "1000000000",
         "vision_config.num_hidden_layers = 1000000000"},
        {"vision_config.patch_size", "2147483647", "vision_config.patch_size = 2147483647"},
        {"intermediate_size", "1e15", "intermediate_size = 1000000000000000 is out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "huge_%zu", i);
        dir = write_checkpoint(name, &f32);
        edit_config(dir, cases[i].key, cases[i].value);
        const double start = dmllm_now_seconds();
        expect_open_failure(name, dir, DMLLM_ERR_FORMAT, cases[i].message, "config.json");
        const double seconds = dmllm_now_seconds() - start;
        CHECK_MSG(seconds < 0.25, "%s = %s: failed after %.2f s", cases[i].key, cases[i].value,
                  seconds);
    }

    /* At the bound the config is valid and the tensor schema (about 50,000 entries) is still
     * built in a blink before the missing layers are reported. */
    dir = write_checkpoint("layers_at_bound", &f32);
    edit_config(dir, "num_hidden_layers", "4096");
    const double start = dmllm_now_seconds();
    expect_open_failure("4096 layers", dir, DMLLM_ERR_SHAPE, "missing tensor model.layers.", NULL);
    const double seconds = dmllm_now_seconds() - start;
    CHECK_MSG(seconds < 1.0, "4096 layers: failed after %.2f s", seconds);
}

/* A download cut short at any point fails cleanly, naming the file. */
static void test_truncated_files(void) {
    const stw_checkpoint_options options = {.dtype = DMLLM_DTYPE_BF16};
    const char *dir = write_checkpoint("truncated", &options);
    const char *weights = file_in(dir, "model.safetensors");
    size_t size = 0;
    char *full = test_read_file(weights, &size); /* [size] the complete file */
    CHECK(full != NULL && size > 1000);
    if (!full) return;
    for (int eighth = 0; eighth < 8; eighth++) {
        size_t cut = size * (size_t)eighth / 8;
        CHECK(test_write_file(weights, full, cut) == 0);
        char case_name[64];
        snprintf(case_name, sizeof case_name, "cut at %d/8 (%zu of %zu bytes)", eighth, cut, size);
        expect_open_failure(case_name, dir, DMLLM_ERR_FORMAT, "truncated/model.safetensors", NULL);
    }
    CHECK(test_write_file(weights, full, size) == 0);
    dmllm_checkpoint *checkpoint = NULL;
    CHECK_OK(dmllm_checkpoint_open(dir, &checkpoint));
    dmllm_checkpoint_close(checkpoint);
    free(full);
}

int main(void) {
    stw_tiny_config(&tiny);
    dmllm_log_set(record_warning, NULL);
    test_single_file();
    test_layouts();
    test_unknown_tensor_warns_once();
    test_broken_directories();
    test_config_ranges();
    test_truncated_files();
    printf("test_checkpoint: %d malformed cases\n", malformed_cases);
    CHECK(malformed_cases >= 25);
    return test_finish("test_checkpoint");
}
