/*
 * readout.c: "densemllm readout": the pipeline on raw token ids, for checkpoints without a
 * tokenizer: encode an image, evaluate <|vision_start|> image <|vision_end|>, read the logits of
 * the given label ids at the image tokens and print the per-token argmax map with stage timings
 * (a diagnostic report per image), or with --json each image's JSON result (result.c).
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_LABELS = 4096 };

typedef struct readout_job {
    int32_t labels[MAX_LABELS];
    int n_labels;
    dmllm_alignment alignment;
} readout_job;

static int parse_labels(const char *text, readout_job *job) {
    char *end;
    for (const char *p = text; *p; p = end + (*end == ',')) {
        long id = strtol(p, &end, 10);
        if (end == p || id < 0 || id > INT32_MAX || (*end && *end != ',') || job->n_labels == MAX_LABELS) return -1;
        job->labels[job->n_labels++] = (int32_t)id;
        if (!*end) break;
    }
    return job->n_labels > 0 ? 0 : -1;
}

/* The argmax label of every image token: best[rows] from logits[rows][n_labels]. */
static void argmax_labels(const float *logits, size_t rows, int n_labels, uint16_t *best) {
    for (size_t t = 0; t < rows; t++) {
        int k_best = 0;
        for (int k = 1; k < n_labels; k++)
            if (logits[t * n_labels + k] > logits[t * n_labels + k_best]) k_best = k;
        best[t] = (uint16_t)k_best;
    }
}

/* Each label's share of tokens and, for grids up to 120 tokens wide, the argmax map as
 * digits/letters (from the JSON's "shares" and best[rows]). */
static void print_argmax(const cJSON *json, const uint16_t *best, size_t rows,
                         const readout_job *job, const dmllm_image_grid *grid) {
    static const char symbols[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const cJSON *shares = cJSON_GetObjectItem(json, "shares");
    int k = 0;
    for (const cJSON *share = shares ? shares->child : NULL; share; share = share->next, k++)
        printf("label %-3d id %-8d argmax on %5.1f%% of tokens\n", k, job->labels[k],
               100.0 * share->valuedouble);
    if (grid->tokens_w > 120) return;
    printf("argmax map (%d x %d tokens):\n", grid->tokens_h, grid->tokens_w);
    for (int r = 0; r < grid->tokens_h; r++) {
        fputs("  ", stdout);
        for (int x = 0; x < grid->tokens_w && (size_t)r * grid->tokens_w + x < rows; x++) {
            const int label = best[(size_t)r * grid->tokens_w + x];
            putchar(label < (int)sizeof symbols - 1 ? symbols[label] : '+');
        }
        putchar('\n');
    }
}

static int readout_one(cli_context *context, const cli_item *item, void *user, cJSON *json) {
    const readout_job *job = user;
    const char *path = item->path;
    dmllm_session *session = context->session;
    dmllm_model_info info = {.struct_size = sizeof info};
    dmllm_model_get_info(context->model, &info);
    dmllm_image *image = NULL;
    int32_t *ids = NULL;     /* [n_tokens + 2] the prompt */
    float *logits = NULL;    /* [n_tokens][n_labels] */
    uint16_t *best = NULL;   /* [n_tokens] argmax label */
    char (*names)[24] = NULL; /* [n_labels] "id <token id>" */
    int exit_code = 1;
    dmllm_status status = cli_load_image(context->common, path, &image);
    if (status != DMLLM_OK) return cli_fail(status, path);
    const double t0 = cli_now_seconds();
    dmllm_image_grid grid = {.struct_size = sizeof grid};
    if ((status = dmllm_session_truncate(session, 0)) != DMLLM_OK ||
        (status = dmllm_session_encode_image(session, image)) != DMLLM_OK ||
        (status = dmllm_session_image_grid(session, &grid)) != DMLLM_OK) {
        cli_fail_session(status, session, "encoding the image");
        goto done;
    }
    const double t1 = cli_now_seconds();
    const int n_tokens = grid.tokens_h * grid.tokens_w;
    ids = malloc((size_t)(n_tokens + 2) * sizeof *ids);
    logits = malloc((size_t)n_tokens * job->n_labels * sizeof *logits);
    best = malloc((size_t)n_tokens * sizeof *best);
    names = malloc((size_t)job->n_labels * sizeof *names);
    const char **name_list = malloc((size_t)job->n_labels * sizeof *name_list);
    if (!ids || !logits || !best || !names || !name_list) {
        free(name_list);
        cli_error("out of memory");
        goto done;
    }
    ids[0] = info.vision_start_token_id;
    for (int i = 0; i < n_tokens; i++) ids[1 + i] = info.image_token_id;
    ids[n_tokens + 1] = info.vision_end_token_id;
    if ((status = dmllm_session_eval(session, ids, n_tokens + 2)) != DMLLM_OK) {
        cli_fail_session(status, session, "LLM");
        goto done;
    }
    const double t2 = cli_now_seconds();
    size_t rows, cols;
    status = dmllm_session_image_logits(session, job->alignment, job->labels, job->n_labels, logits,
                                        (size_t)n_tokens * job->n_labels, &rows, &cols);
    if (status != DMLLM_OK) {
        cli_fail_session(status, session, "readout");
        goto done;
    }
    const double t3 = cli_now_seconds();
    argmax_labels(logits, rows, job->n_labels, best);
    for (int k = 0; k < job->n_labels; k++) {
        snprintf(names[k], sizeof names[k], "id %d", (int)job->labels[k]);
        name_list[k] = names[k];
    }
    const int no_map = cli_add_label_map(json, best, rows, job->n_labels, name_list);
    free(name_list);
    if (no_map) goto done;
    cli_add_share_summary(json, "");
    cJSON_AddNumberToObject(json, "tokens_w", grid.tokens_w);
    cJSON_AddNumberToObject(json, "tokens_h", grid.tokens_h);
    cJSON_AddNumberToObject(json, "seconds_encode", t1 - t0);
    cJSON_AddNumberToObject(json, "seconds_prefill", t2 - t1);
    cJSON_AddNumberToObject(json, "seconds_readout", t3 - t2);
    if (!context->common->json) { /* a diagnostic report instead of the one line */
        cli_progress_clear();
        printf("model: %s (%s, %s weights, %.1f M parameters)\n", info.model_dir, info.compute,
               info.weights, info.n_params / 1e6);
        printf("image: %s %dx%d -> %dx%d, %d x %d patches, %d tokens\n", path, grid.original_w,
               grid.original_h, grid.resized_w, grid.resized_h, grid.grid_h, grid.grid_w, n_tokens);
        printf("time: vision+merger %.3f s, LLM %.3f s (%d tokens), readout %.4f s\n", t1 - t0,
               t2 - t1, n_tokens + 2, t3 - t2);
        print_argmax(json, best, rows, job, &grid);
        context->line_printed = 1;
    }
    exit_code = 0;
done:
    free(names);
    free(best);
    free(logits);
    free(ids);
    dmllm_image_free(image);
    return exit_code;
}

static int run_readout(int argc, char **argv) {
    readout_job job = {.alignment = DMLLM_ALIGN_OWN};
    const char *labels = NULL, *alignment = "own";
    const cli_option options[] = {
        {"--labels", CLI_STRING, &labels, "ID,ID...", "token ids to read at the image tokens (required)"},
        {"--alignment", CLI_STRING, &alignment, "own|previous", "which position carries a token's labels"},
        {0},
    };
    cli_common common;
    const int n = cli_parse(&cli_readout_command, argc, argv, options, &common);
    if (n < 0) return cli_parse_exit(n);
    if (!labels || parse_labels(labels, &job) != 0) {
        fprintf(stderr, "densemllm readout: --labels needs 1..%d comma-separated token ids\n", MAX_LABELS);
        return 2;
    }
    if (strcmp(alignment, "own") && strcmp(alignment, "previous")) {
        fprintf(stderr, "densemllm readout: --alignment %s: expected own or previous\n", alignment);
        return 2;
    }
    job.alignment = strcmp(alignment, "own") ? DMLLM_ALIGN_PREVIOUS : DMLLM_ALIGN_OWN;
    const cli_batch batch = {cli_readout_command.name, NULL, readout_one, &job, 0}; /* no files */
    cli_context context;
    int exit_code = cli_open(&common, &context);
    if (exit_code == 0) exit_code = cli_for_each_input(&context, &batch);
    cli_close(&context);
    return exit_code;
}

const cli_command cli_readout_command = {
    .name = "readout",
    .summary = "encode images and read the logits of given token ids at their image tokens",
    .synopsis = "densemllm readout --labels ID[,ID...] [options] IMAGE...",
    .run = run_readout,
};
