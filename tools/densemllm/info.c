/*
 * info.c: "densemllm info DIR": architecture, sizes and parameter count of a checkpoint (validated
 * without packing weights), and whether its files are the official Youtu-VL-4B-Instruct release;
 * a text report, or with --json one JSON result (result.c) holding the same.
 */
#include "cli.h"
#include "sha256.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

/* SHA-256 of the official files at HF revision 8d30a0e49662a1d628a472b12df264dbcd768753
 * (the same data as shared/ref/youtu-vl/hf_files_sha256.json). */
static const char official_revision[] = "8d30a0e49662a1d628a472b12df264dbcd768753";
static const struct { const char *file, *sha256; } official_files[] = {
    {"config.json", "8f6115914aa33b7b48c92efb077c0976bec71407db65c4daa39961793ac4009a"},
    {"tokenizer.json", "41998384e9cea31ab97207e2ed59fed66b5481bf0c85fd04f8c7bbd3f7648a6d"},
    {"chat_template.json", "172d9ec2636e63f13326ae4a6da2053a7c031ce829be1e7859a0b2f16b2bd088"},
    {"generation_config.json", "8666c5875737011451ad9874fa297adbb5d6c3de47ef647a17c41ccee5af7e90"},
    {"preprocessor_config.json", "eb41cbafe9513f75c79c6f7c1d64f0d8f7419f98cc6e097e63b9467aee6dd6d7"},
    {"special_tokens_map.json", "03d62862d41de30db9e05cb4865de4f36c48ab3032327139fcdfacc5798a4828"},
    {"tokenizer_config.json", "da4d16d9ba9de8afb26c3eb28b474450c2dbd2a647b7159fbbd87d61e78f98a6"},
    {"model.safetensors.index.json", "8617dad368bb394a9de5f24f08b5b0ecdd8a68b2b8588d2baf2cc8f2bc5b6b7c"},
    {"model-00001-of-00003.safetensors", "107939f0c4aaf5fdc7c5d9f4ad741546e4ebaef32fcd93d36a462f1e5ea04d0b"},
    {"model-00002-of-00003.safetensors", "f7898bdeb9c5cbc996c0a2789c7b3495c3faa179c9690cb2c01bad65b615250e"},
    {"model-00003-of-00003.safetensors", "548ebf9f8deea536596d6dffc3fed769a60f15e414e6fb9f735a7bb7fa627340"},
};
enum { N_OFFICIAL = sizeof official_files / sizeof official_files[0] };

/* Hashes the official file names found in dir. Shards are hashed only when config.json already
 * matches, so checking a random checkpoint does not read gigabytes. Fills "official":
 * {"revision", "match": every present file matches, "files": {name: true|false}}; prints the
 * same unless quiet (--json). */
static void report_official_files(const char *dir, int quiet, cJSON *json) {
    char path[4096], hex[65];
    cJSON *official = cJSON_AddObjectToObject(json, "official");
    cJSON_AddStringToObject(official, "revision", official_revision);
    cJSON *files = cJSON_AddObjectToObject(official, "files");
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (sha256_file_hex(path, hex) != 0 || strcmp(hex, official_files[0].sha256) != 0) {
        if (!quiet)
            printf("official files:      no (config.json differs from Youtu-VL-4B-Instruct "
                   "revision %.8s)\n",
                   official_revision);
        cJSON_AddBoolToObject(official, "match", 0);
        return;
    }
    int matching = 0, present = 0;
    for (int i = 0; i < N_OFFICIAL; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, official_files[i].file);
        if (stat(path, &st) != 0) continue;
        present++;
        int ok = sha256_file_hex(path, hex) == 0 && strcmp(hex, official_files[i].sha256) == 0;
        matching += ok;
        cJSON_AddBoolToObject(files, official_files[i].file, ok);
        if (!quiet) printf("  %-34s %s\n", official_files[i].file, ok ? "matches" : "DIFFERS");
    }
    cJSON_AddBoolToObject(official, "match", matching == present);
    if (quiet) return;
    if (matching == present)
        printf("official files:      yes, %d of %d files match Youtu-VL-4B-Instruct revision %s\n", matching,
               N_OFFICIAL, official_revision);
    else
        printf("official files:      no, %d of %d present files differ from revision %.8s\n", present - matching,
               present, official_revision);
}

/* The model_info fields as JSON (the text report's numbers under their C names). */
static void info_json(const dmllm_model_info *info, cJSON *json) {
    cJSON_AddStringToObject(json, "architecture", info->architecture);
    cJSON_AddStringToObject(json, "weights_dtype", info->weights_dtype);
    cJSON_AddNumberToObject(json, "n_params", (double)info->n_params);
    const struct {
        const char *name;
        int value;
    } ints[] = {{"vision_layers", info->vision_layers},
                {"vision_hidden_size", info->vision_hidden_size},
                {"vision_heads", info->vision_heads},
                {"vision_intermediate_size", info->vision_intermediate_size},
                {"patch_size", info->patch_size},
                {"spatial_merge_size", info->spatial_merge_size},
                {"text_layers", info->text_layers},
                {"text_hidden_size", info->text_hidden_size},
                {"text_heads", info->text_heads},
                {"text_intermediate_size", info->text_intermediate_size},
                {"vocab_size", info->vocab_size},
                {"q_lora_rank", info->q_lora_rank},
                {"kv_lora_rank", info->kv_lora_rank},
                {"qk_nope_head_dim", info->qk_nope_head_dim},
                {"qk_rope_head_dim", info->qk_rope_head_dim},
                {"v_head_dim", info->v_head_dim},
                {"image_token_id", info->image_token_id},
                {"vision_start_token_id", info->vision_start_token_id},
                {"vision_end_token_id", info->vision_end_token_id},
                {"bos_token_id", info->bos_token_id},
                {"eos_token_id", info->eos_token_id}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        cJSON_AddNumberToObject(json, ints[i].name, ints[i].value);
    cJSON_AddNumberToObject(json, "rope_theta", info->rope_theta);
}

/* The text report. */
static void print_info(const dmllm_model_info *info) {
    printf("model directory:     %s\n", info->model_dir);
    printf("architecture:        %s\n", info->architecture);
    printf("weights dtype:       %s\n", info->weights_dtype);
    printf("parameters:          %lld (%.3f B)\n", (long long)info->n_params, info->n_params / 1e9);
    printf("vision tower:        %d layers, hidden %d, %d heads, MLP %d, patch %d, merge %dx%d\n",
           info->vision_layers, info->vision_hidden_size, info->vision_heads,
           info->vision_intermediate_size, info->patch_size, info->spatial_merge_size,
           info->spatial_merge_size);
    printf("language model:      %d layers, hidden %d, %d heads, MLP %d, vocab %d\n",
           info->text_layers, info->text_hidden_size, info->text_heads,
           info->text_intermediate_size, info->vocab_size);
    printf("MLA:                 q_lora %d, kv_lora %d, qk_nope %d, qk_rope %d, v_head %d, "
           "rope_theta %g\n",
           info->q_lora_rank, info->kv_lora_rank, info->qk_nope_head_dim, info->qk_rope_head_dim,
           info->v_head_dim, info->rope_theta);
    printf("special tokens:      image %d, vision start %d / end %d, bos %d, eos %d\n",
           info->image_token_id, info->vision_start_token_id, info->vision_end_token_id,
           info->bos_token_id, info->eos_token_id);
}

static int run_info(int argc, char **argv) {
    int json_wanted = 0;
    const cli_option options[] = {
        {"--json", CLI_FLAG, &json_wanted, NULL, "print the description as one JSON object"},
        {0},
    };
    const int n = cli_parse(&cli_info_command, argc, argv, options, NULL);
    if (n < 0) return cli_parse_exit(n);
    if (n != 1) {
        fprintf(stderr, "usage: %s\n", cli_info_command.synopsis);
        return 2;
    }
    dmllm_model_params params;
    dmllm_model_params_init(&params);
    params.check_only = 1;
    dmllm_model *model = NULL;
    dmllm_model_info info = {.struct_size = sizeof info};
    dmllm_status status = dmllm_model_load(argv[1], &params, &model);
    int failed = status != DMLLM_OK ? cli_fail(status, argv[1]) : 0;
    if (!failed && (status = dmllm_model_get_info(model, &info)) != DMLLM_OK)
        failed = cli_fail(status, "model info");
    cJSON *json = cli_json_result(cli_info_command.name, argv[1]);
    if (failed) {
        cJSON_AddStringToObject(json, "error", cli_last_error());
    } else if (!json_wanted) {
        print_info(&info);
    } else {
        info_json(&info, json);
        char summary[160];
        snprintf(summary, sizeof summary, "%s, %s, %.3f B parameters", info.architecture,
                 info.weights_dtype, info.n_params / 1e9);
        cJSON_AddStringToObject(json, "summary", summary);
    }
    if (!failed) report_official_files(argv[1], json_wanted, json);
    cli_json_finish(json, NULL, 0);
    if (json_wanted) cli_print_result(&(cli_common){.json = 1}, json);
    cJSON_Delete(json);
    dmllm_model_free(model);
    return failed;
}

const cli_command cli_info_command = {
    .name = "info",
    .summary = "describe a checkpoint directory and check it against the official release",
    .synopsis = "densemllm info [--json] MODEL_DIR",
    .run = run_info,
};
