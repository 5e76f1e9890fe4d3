/*
 * test_config.c: lib/config.c reads the real Youtu-VL config.json layout (LLM keys at the root, the
 * vision tower nested), applies only the documented defaults, and rejects unknown architectures,
 * missing or mistyped keys and inconsistent values with messages naming the key.
 */
#include "config.h"
#include "support_safetensors_writer.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The released model's values (model-spec 1.2), laid out as the Hugging Face file is. */
static const char *const youtu_vl_config =
    "{\n"
    "  \"architectures\": [\"YoutuVLForConditionalGeneration\"],\n"
    "  \"model_type\": \"youtu_vl\",\n"
    "  \"hidden_size\": 2560, \"intermediate_size\": 9728, \"num_hidden_layers\": 40,\n"
    "  \"num_attention_heads\": 32, \"num_key_value_heads\": 32,\n"
    "  \"q_lora_rank\": 1536, \"kv_lora_rank\": 512, \"qk_nope_head_dim\": 128, \"qk_rope_head_dim\": 64,\n"
    "  \"v_head_dim\": 128, \"vocab_size\": 283386, \"max_position_embeddings\": 32768,\n"
    "  \"rms_norm_eps\": 1e-06, \"rope_theta\": 500000.0, \"rope_interleave\": true, \"rope_scaling\": null,\n"
    "  \"tie_word_embeddings\": true, \"attention_bias\": false, \"hidden_act\": \"silu\",\n"
    "  \"image_token_id\": 128264, \"video_token_id\": 128265,\n"
    "  \"vision_start_token_id\": 128262, \"vision_end_token_id\": 128263,\n"
    "  \"bos_token_id\": 128000, \"eos_token_id\": 128001, \"pad_token_id\": 128001,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"vision_config\": {\n"
    "    \"model_type\": \"siglip2_vision_model\", \"hidden_size\": 1152, \"intermediate_size\": 4304,\n"
    "    \"num_hidden_layers\": 27, \"num_attention_heads\": 16, \"num_channels\": 3, \"patch_size\": 16,\n"
    "    \"hidden_act\": \"gelu_pytorch_tanh\", \"layer_norm_eps\": 1e-06, \"spatial_merge_size\": 2,\n"
    "    \"window_size\": 256, \"fullatt_block_indexes\": [7, 15, 23, 26], \"out_hidden_size\": 2560,\n"
    "    \"num_patches\": 4096, \"tokens_per_second\": 2\n"
    "  }\n"
    "}\n";

static int malformed_cases;

static void test_released_config(void) {
    dmllm_config config;
    CHECK_OK(dmllm_config_parse(youtu_vl_config, strlen(youtu_vl_config), &config));
    CHECK(strcmp(config.architecture, "YoutuVLForConditionalGeneration") == 0);
    CHECK(strcmp(config.model_type, "youtu_vl") == 0);
    const dmllm_text_config *t = &config.text;
    CHECK(t->hidden_size == 2560 && t->intermediate_size == 9728 && t->num_layers == 40 && t->num_heads == 32);
    CHECK(t->q_lora_rank == 1536 && t->kv_lora_rank == 512);
    CHECK(t->qk_nope_head_dim == 128 && t->qk_rope_head_dim == 64 && t->v_head_dim == 128);
    CHECK(t->vocab_size == 283386 && t->max_position_embeddings == 32768);
    CHECK(t->rms_norm_eps == 1e-6f && t->rope_theta == 500000.0 && t->tie_word_embeddings);
    const dmllm_vision_config *v = &config.vision;
    CHECK(v->hidden_size == 1152 && v->intermediate_size == 4304 && v->num_layers == 27 && v->num_heads == 16);
    CHECK(v->num_channels == 3 && v->patch_size == 16 && v->spatial_merge_size == 2 && v->window_size == 256);
    CHECK(v->out_hidden_size == 2560 && v->layer_norm_eps == 1e-6f);
    CHECK(v->n_fullatt_blocks == 4);
    CHECK(v->fullatt_block_indexes[0] == 7 && v->fullatt_block_indexes[1] == 15 && v->fullatt_block_indexes[2] == 23 &&
          v->fullatt_block_indexes[3] == 26);
    CHECK(config.image_token_id == 128264 && config.video_token_id == 128265);
    CHECK(config.vision_start_token_id == 128262 && config.vision_end_token_id == 128263);
    CHECK(config.bos_token_id == 128000 && config.eos_token_id == 128001 && config.pad_token_id == 128001);
    CHECK(dmllm_config_window_tokens(v) == 8);
}

/* Parses youtu_vl_config after setting key (dotted, one level of nesting) to value_json, or
 * deleting it when value_json is NULL. */
static dmllm_status parse_edited(const char *key, const char *value_json, dmllm_config *config) {
    cJSON *root = cJSON_Parse(youtu_vl_config);
    cJSON *parent = root;
    const char *leaf = key;
    char parent_key[64];
    const char *dot = strchr(key, '.');
    if (dot) {
        snprintf(parent_key, sizeof parent_key, "%.*s", (int)(dot - key), key);
        parent = cJSON_GetObjectItemCaseSensitive(root, parent_key);
        leaf = dot + 1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(parent, leaf);
    if (value_json) cJSON_AddItemToObject(parent, leaf, cJSON_Parse(value_json));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    dmllm_status status = dmllm_config_parse(text, strlen(text), config);
    free(text);
    return status;
}

static void expect_edit_failure(const char *key, const char *value_json, dmllm_status expected, const char *fragment) {
    malformed_cases++;
    dmllm_config config;
    dmllm_status status = parse_edited(key, value_json, &config);
    const char *message = dmllm_last_error();
    CHECK_MSG(status == expected, "%s = %s: status %d, expected %d (%s)", key, value_json ? value_json : "(deleted)", status,
              expected, message);
    CHECK_MSG(strstr(message, fragment) != NULL, "%s = %s: message lacks \"%s\": %s", key,
              value_json ? value_json : "(deleted)", fragment, message);
}

/* Parses youtu_vl_config with its one occurrence of from replaced by to, expecting a format error
 * whose message contains fragment. */
static void expect_text_failure(const char *from, const char *to, const char *fragment) {
    malformed_cases++;
    const char *at = strstr(youtu_vl_config, from);
    CHECK_MSG(at != NULL, "%s not in the config", from);
    if (!at) return;
    char text[4096];
    int length = snprintf(text, sizeof text, "%.*s%s%s", (int)(at - youtu_vl_config),
                          youtu_vl_config, to, at + strlen(from));
    CHECK(length > 0 && (size_t)length < sizeof text);
    dmllm_config config;
    CHECK_STATUS(dmllm_config_parse(text, (size_t)length, &config), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), fragment) != NULL, "%s: message lacks \"%s\": %s", to,
              fragment, dmllm_last_error());
}

static int warnings;
static char last_warning[512];

static void count_warnings(dmllm_log_level level, const char *message, void *user_data) {
    (void)user_data;
    if (level == DMLLM_LOG_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", message);
    }
}

static void test_defaults(void) {
    dmllm_config config;
    CHECK_OK(parse_edited("rms_norm_eps", NULL, &config));
    CHECK(config.text.rms_norm_eps == 1e-6f);
    CHECK_OK(parse_edited("vision_config.layer_norm_eps", NULL, &config));
    CHECK(config.vision.layer_norm_eps == 1e-6f);
    CHECK_OK(parse_edited("vision_config.num_channels", NULL, &config));
    CHECK(config.vision.num_channels == 3);
    CHECK_OK(parse_edited("tie_word_embeddings", NULL, &config));
    CHECK(config.text.tie_word_embeddings);
    CHECK_OK(parse_edited("rms_norm_eps", "1e-5", &config));
    CHECK(config.text.rms_norm_eps == 1e-5f);
    CHECK_OK(parse_edited("rope_theta", "1600000", &config));
    CHECK(config.text.rope_theta == 1600000.0);
    CHECK_OK(parse_edited("eos_token_id", "[128001, 128009]", &config));
    CHECK(config.eos_token_id == 128001 && config.n_eos_token_ids == 2);
    CHECK(config.eos_token_ids[0] == 128001 && config.eos_token_ids[1] == 128009);
    CHECK_OK(parse_edited("eos_token_id", "128002", &config));
    CHECK(config.eos_token_id == 128002 && config.n_eos_token_ids == 1 && config.eos_token_ids[0] == 128002);
    CHECK_OK(parse_edited("rope_interleave", NULL, &config)); /* absent: the interleaved RoPE */
    CHECK_OK(parse_edited("architectures", NULL, &config)); /* model_type alone identifies the model */
    CHECK_OK(parse_edited("model_type", NULL, &config));    /* and so does the architecture alone */

    dmllm_log_set(count_warnings, NULL);
    warnings = 0;
    CHECK_OK(dmllm_config_parse(youtu_vl_config, strlen(youtu_vl_config), &config));
    CHECK(warnings == 0);
    dmllm_log_set(NULL, NULL);
}

static void test_tiny_config_round_trip(void) {
    dmllm_config written, read;
    stw_tiny_config(&written);
    char *text = stw_config_json(&written);
    CHECK_OK(dmllm_config_parse(text, strlen(text), &read));
    free(text);
    CHECK(memcmp(&written.text, &read.text, sizeof read.text) == 0);
    CHECK(memcmp(&written.vision, &read.vision, sizeof read.vision) == 0);
    CHECK(read.image_token_id == written.image_token_id && read.eos_token_id == written.eos_token_id);
    CHECK(dmllm_config_window_tokens(&read.vision) == 4);
}

static void test_malformed(void) {
    dmllm_config config;
    malformed_cases++;
    CHECK_STATUS(dmllm_config_parse("{\"hidden_size\": 12", 18, &config), DMLLM_ERR_FORMAT);
    CHECK(strstr(dmllm_last_error(), "not valid JSON") != NULL);
    malformed_cases++;
    CHECK_STATUS(dmllm_config_parse("[1]", 3, &config), DMLLM_ERR_FORMAT);
    CHECK(strstr(dmllm_last_error(), "not a JSON object") != NULL);
    malformed_cases++;
    CHECK_STATUS(dmllm_config_parse("{}", 2, &config), DMLLM_ERR_UNSUPPORTED);
    CHECK(strstr(dmllm_last_error(), "no architecture") != NULL);
    /* Only the first length bytes count: a config cut short is not valid JSON. */
    malformed_cases++;
    CHECK_STATUS(dmllm_config_parse(youtu_vl_config, strlen(youtu_vl_config) / 2, &config), DMLLM_ERR_FORMAT);

    /* Architecture. */
    expect_edit_failure("architectures", "[\"LlamaForCausalLM\"]", DMLLM_ERR_UNSUPPORTED, "LlamaForCausalLM");
    expect_edit_failure("model_type", "\"qwen2_5_vl\"", DMLLM_ERR_UNSUPPORTED, "qwen2_5_vl");
    expect_edit_failure("architectures", "\"YoutuVLForConditionalGeneration\"", DMLLM_ERR_FORMAT, "architectures");
    /* Missing, mistyped and out-of-range keys. */
    expect_edit_failure("hidden_size", NULL, DMLLM_ERR_FORMAT, "config.json: hidden_size missing");
    expect_edit_failure("vision_config.hidden_size", NULL, DMLLM_ERR_FORMAT, "config.json: vision_config.hidden_size missing");
    expect_edit_failure("vision_config", NULL, DMLLM_ERR_FORMAT, "vision_config missing");
    expect_edit_failure("vision_config", "[]", DMLLM_ERR_FORMAT, "vision_config must be an object");
    expect_edit_failure("kv_lora_rank", "\"512\"", DMLLM_ERR_FORMAT, "kv_lora_rank must be an integer");
    expect_edit_failure("num_hidden_layers", "40.5", DMLLM_ERR_FORMAT, "num_hidden_layers must be an integer");
    expect_edit_failure("vocab_size", "0", DMLLM_ERR_FORMAT, "vocab_size = 0 is out of range");
    expect_edit_failure("vision_config.patch_size", "-16", DMLLM_ERR_FORMAT, "vision_config.patch_size = -16");
    expect_edit_failure("q_lora_rank", "1e12", DMLLM_ERR_FORMAT, "q_lora_rank");
    expect_edit_failure("rms_norm_eps", "-1", DMLLM_ERR_FORMAT,
                        "rms_norm_eps = -1 is out of range");
    expect_edit_failure("tie_word_embeddings", "1", DMLLM_ERR_FORMAT, "tie_word_embeddings must be true or false");
    expect_edit_failure("image_token_id", NULL, DMLLM_ERR_FORMAT, "image_token_id missing");
    expect_edit_failure("vision_config.fullatt_block_indexes", NULL, DMLLM_ERR_FORMAT, "fullatt_block_indexes missing");
    /* Consistency. */
    expect_edit_failure("vision_config.num_attention_heads", "7", DMLLM_ERR_FORMAT, "not divisible by vision_config.num_attention_heads");
    expect_edit_failure("vision_config.num_attention_heads", "64", DMLLM_ERR_FORMAT, "head_dim 18");
    expect_edit_failure("vision_config.window_size", "200", DMLLM_ERR_FORMAT, "window_size 200");
    expect_edit_failure("vision_config.out_hidden_size", "2048", DMLLM_ERR_FORMAT, "out_hidden_size 2048 differs from hidden_size 2560");
    expect_edit_failure("vision_config.fullatt_block_indexes", "[7, 27]", DMLLM_ERR_FORMAT, "fullatt_block_indexes[1]");
    expect_edit_failure("tie_word_embeddings", "false", DMLLM_ERR_UNSUPPORTED, "tie_word_embeddings");
    expect_edit_failure("num_key_value_heads", "8", DMLLM_ERR_UNSUPPORTED, "num_key_value_heads = 8");
    expect_edit_failure("rope_scaling", "{\"type\": \"yarn\", \"factor\": 4}", DMLLM_ERR_UNSUPPORTED, "rope_scaling");
    expect_edit_failure("n_routed_experts", "64", DMLLM_ERR_UNSUPPORTED, "n_routed_experts");
    expect_edit_failure("image_token_id", "283386", DMLLM_ERR_FORMAT, "image_token_id = 283386 is outside the vocabulary");
    expect_edit_failure("eos_token_id", "300000", DMLLM_ERR_FORMAT, "eos_token_id = 300000");
    expect_edit_failure("eos_token_id", "[128001, 300000]", DMLLM_ERR_FORMAT, "eos_token_id[1] = 300000");
    expect_edit_failure("eos_token_id", "[128001, -2]", DMLLM_ERR_FORMAT, "eos_token_id[1] must be");
    expect_edit_failure("eos_token_id", "[]", DMLLM_ERR_FORMAT, "eos_token_id lists 0 ids");
    /* What the LLM implements (issue 19): a missing rope_theta is no longer guessed, and a
     * non-interleaved RoPE is refused rather than run with the wrong rotation. */
    expect_edit_failure("rope_theta", NULL, DMLLM_ERR_FORMAT, "config.json: rope_theta missing");
    expect_edit_failure("rope_interleave", "false", DMLLM_ERR_UNSUPPORTED, "rope_interleave = false");
    expect_edit_failure("rope_interleave", "\"yes\"", DMLLM_ERR_FORMAT, "rope_interleave must be true or false");
    expect_edit_failure("vision_start_token_id", "-1", DMLLM_ERR_FORMAT, "vision_start_token_id");
}

/* Issue 20: every integer and float of config.json has an allowed range, checked before any
 * arithmetic; the message names the key, its value and the range. patch_size * spatial_merge_size
 * = 65536 * 65536 used to wrap to 0 and divide by it (SIGFPE), 2147483647 overflowed an int. */
static void test_ranges(void) {
    static const struct {
        const char *key, *value, *message;
    } cases[] = {
        {"vision_config.patch_size", "65536",
         "vision_config.patch_size = 65536 is out of range [1, 1024]"},
        {"vision_config.patch_size", "2147483647",
         "vision_config.patch_size = 2147483647 is out of range [1, 1024]"},
        {"vision_config.spatial_merge_size", "65536",
         "vision_config.spatial_merge_size = 65536 is out of range [2, 2]"},
        /* The image preprocessing builds RGB patches in 2x2 merge blocks. */
        {"vision_config.spatial_merge_size", "1",
         "vision_config.spatial_merge_size = 1 is out of range [2, 2]"},
        {"vision_config.num_channels", "1",
         "vision_config.num_channels = 1 is out of range [3, 3]"},
        {"num_hidden_layers", "1000000000",
         "num_hidden_layers = 1000000000 is out of range [1, 4096]"},
        {"vision_config.num_hidden_layers", "4097",
         "vision_config.num_hidden_layers = 4097 is out of range [1, 4096]"},
        {"hidden_size", "65537", "hidden_size = 65537 is out of range [1, 65536]"},
        {"vision_config.hidden_size", "1e9",
         "vision_config.hidden_size = 1000000000 is out of range [1, 65536]"},
        {"intermediate_size", "262145", "intermediate_size = 262145 is out of range [1, 262144]"},
        {"num_attention_heads", "1025", "num_attention_heads = 1025 is out of range [1, 1024]"},
        {"num_key_value_heads", "0", "num_key_value_heads = 0 is out of range [1, 1024]"},
        {"kv_lora_rank", "65537", "kv_lora_rank = 65537 is out of range [1, 65536]"},
        {"qk_rope_head_dim", "2147483647",
         "qk_rope_head_dim = 2147483647 is out of range [1, 4096]"},
        {"v_head_dim", "4097", "v_head_dim = 4097 is out of range [1, 4096]"},
        {"vocab_size", "16777217", "vocab_size = 16777217 is out of range [1, 16777216]"},
        {"max_position_embeddings", "2147483647",
         "max_position_embeddings = 2147483647 is out of range [1, 16777216]"},
        {"vision_config.window_size", "131072",
         "vision_config.window_size = 131072 is out of range [1, 65536]"},
        {"vision_config.out_hidden_size", "-2560",
         "vision_config.out_hidden_size = -2560 is out of range"},
        /* Floats: 1e-50 rounds to a zero float epsilon, 1e400 parses as infinity. */
        {"rms_norm_eps", "1e-50", "rms_norm_eps = 1e-50 is out of range [1e-30, 1]"},
        {"vision_config.layer_norm_eps", "2",
         "vision_config.layer_norm_eps = 2 is out of range [1e-30, 1]"},
        {"rms_norm_eps", "\"small\"", "rms_norm_eps must be a number"},
        {"rope_theta", "0.5", "rope_theta = 0.5 is out of range [1, 1e+12]"},
        {"rope_theta", "-500000", "rope_theta = -500000 is out of range [1, 1e+12]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_edit_failure(cases[i].key, cases[i].value, DMLLM_ERR_FORMAT, cases[i].message);
    /* 1e400 parses as infinity; cJSON would print it back as null, so it is edited in as text. */
    expect_text_failure("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e400",
                        "rms_norm_eps = inf is out of range [1e-30, 1]");
    expect_text_failure("\"rope_theta\": 500000.0", "\"rope_theta\": -1e400",
                        "rope_theta = -inf is out of range [1, 1e+12]");
    expect_text_failure("\"num_hidden_layers\": 40", "\"num_hidden_layers\": 1e400",
                        "num_hidden_layers = inf is out of range [1, 4096]");

    /* The bounds themselves are allowed. */
    dmllm_config config;
    CHECK_OK(parse_edited("num_hidden_layers", "4096", &config));
    CHECK(config.text.num_layers == 4096);
    CHECK_OK(parse_edited("vocab_size", "16777216", &config));
    CHECK_OK(parse_edited("rope_theta", "1e12", &config));
    CHECK_OK(parse_edited("rms_norm_eps", "1", &config));
    CHECK_OK(parse_edited("vision_config.layer_norm_eps", "1e-30", &config));
    CHECK(config.vision.layer_norm_eps > 0);
}

int main(void) {
    test_released_config();
    test_defaults();
    test_tiny_config_round_trip();
    test_malformed();
    test_ranges();
    printf("test_config: %d malformed cases\n", malformed_cases);
    CHECK(malformed_cases >= 25);
    return test_finish("test_config");
}
