/*
 * readout.c: "densemllm readout": the whole pipeline on token ids: encode an image, evaluate
 * <|vision_start|> image <|vision_end|>, read the logits of the given label ids at the image tokens
 * and print the per-token argmax map with per-stage timings. The tokenizer-based commands
 * (segment, depth, ...) build on the same calls.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_LABELS = 4096 };

typedef struct readout_options {
    const char *model_dir, *image_path;
    int32_t labels[MAX_LABELS];
    int n_labels;
    int max_num_patches, n_threads;
    dmllm_alignment alignment;
    dmllm_compute_type compute;
} readout_options;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int parse_labels(const char *text, readout_options *o) {
    char *end;
    for (const char *p = text; *p; p = end + (*end == ',')) {
        long id = strtol(p, &end, 10);
        if (end == p || id < 0 || id > INT32_MAX || (*end && *end != ',') || o->n_labels == MAX_LABELS) return -1;
        o->labels[o->n_labels++] = (int32_t)id;
        if (!*end) break;
    }
    return o->n_labels > 0 ? 0 : -1;
}

static int parse_options(int argc, char **argv, readout_options *o) {
    memset(o, 0, sizeof *o);
    o->max_num_patches = DMLLM_DEFAULT_MAX_NUM_PATCHES;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) return -1;
        if (!strcmp(argv[i], "--model")) o->model_dir = value;
        else if (!strcmp(argv[i], "--image")) o->image_path = value;
        else if (!strcmp(argv[i], "--labels")) { if (parse_labels(value, o)) return -1; }
        else if (!strcmp(argv[i], "--max-patches")) o->max_num_patches = atoi(value);
        else if (!strcmp(argv[i], "--threads")) o->n_threads = atoi(value);
        else if (!strcmp(argv[i], "--alignment")) {
            if (!strcmp(value, "own")) o->alignment = DMLLM_ALIGN_OWN;
            else if (!strcmp(value, "previous")) o->alignment = DMLLM_ALIGN_PREVIOUS;
            else return -1;
        } else if (!strcmp(argv[i], "--compute")) {
            if (!strcmp(value, "bf16")) o->compute = DMLLM_COMPUTE_BF16;
            else if (!strcmp(value, "f32")) o->compute = DMLLM_COMPUTE_F32;
            else if (!strcmp(value, "openblas")) o->compute = DMLLM_COMPUTE_OPENBLAS;
            else return -1;
        } else return -1;
        i++;
    }
    return o->model_dir && o->image_path && o->n_labels > 0 ? 0 : -1;
}

/* Prints, per label, the share of image tokens where it wins, and the argmax map as digits/letters. */
static void print_argmax(const float *logits, size_t rows, int n_labels, const dmllm_image_grid *grid,
                         const readout_options *o) {
    int *wins = calloc((size_t)n_labels, sizeof *wins);
    char *map = malloc(rows);
    if (!wins || !map) {
        free(wins);
        free(map);
        return;
    }
    static const char symbols[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (size_t t = 0; t < rows; t++) {
        int best = 0;
        for (int k = 1; k < n_labels; k++)
            if (logits[t * n_labels + k] > logits[t * n_labels + best]) best = k;
        wins[best]++;
        map[t] = best < (int)sizeof symbols - 1 ? symbols[best] : '+';
    }
    for (int k = 0; k < n_labels; k++)
        printf("label %-3d id %-8d argmax on %5.1f%% of tokens\n", k, o->labels[k], 100.0 * wins[k] / (double)rows);
    if (grid->tokens_w <= 120) {
        printf("argmax map (%d x %d tokens):\n", grid->tokens_h, grid->tokens_w);
        for (int r = 0; r < grid->tokens_h; r++) printf("  %.*s\n", grid->tokens_w, map + (size_t)r * grid->tokens_w);
    }
    free(wins);
    free(map);
}

static int run_readout(int argc, char **argv) {
    readout_options o;
    if (parse_options(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: %s\n", cli_readout_command.usage);
        return 2;
    }
    int exit_code = 1;
    dmllm_model *model = NULL;
    dmllm_session *session = NULL;
    dmllm_image *image = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = o.compute;
    mp.n_threads = o.n_threads;
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.n_threads = o.n_threads;
    sp.max_num_patches = o.max_num_patches;

    double t0 = now_seconds();
    dmllm_status status = dmllm_model_load(o.model_dir, &mp, &model);
    if (status != DMLLM_OK) { cli_fail(status, o.model_dir); goto done; }
    dmllm_model_info info = {.struct_size = sizeof info};
    dmllm_model_get_info(model, &info);
    double t1 = now_seconds();
    if ((status = dmllm_session_create(model, &sp, &session)) != DMLLM_OK) { cli_fail(status, "session"); goto done; }
    if ((status = dmllm_image_load_file(o.image_path, &image)) != DMLLM_OK) { cli_fail(status, o.image_path); goto done; }
    double t2 = now_seconds();
    if ((status = dmllm_session_encode_image(session, image)) != DMLLM_OK) { cli_fail(status, "encode image"); goto done; }
    double t3 = now_seconds();
    dmllm_image_grid grid;
    dmllm_session_image_grid(session, &grid);
    const int n_tokens = grid.tokens_h * grid.tokens_w;
    ids = malloc((size_t)(n_tokens + 2) * sizeof *ids);
    if (!ids) { fprintf(stderr, "densemllm: out of memory\n"); goto done; }
    ids[0] = info.vision_start_token_id;
    for (int i = 0; i < n_tokens; i++) ids[1 + i] = info.image_token_id;
    ids[n_tokens + 1] = info.vision_end_token_id;
    if ((status = dmllm_session_eval(session, ids, n_tokens + 2)) != DMLLM_OK) { cli_fail(status, "LLM"); goto done; }
    double t4 = now_seconds();
    size_t rows = 0, cols = 0;
    dmllm_session_image_logits(session, o.alignment, o.labels, o.n_labels, NULL, 0, &rows, &cols);
    logits = malloc(rows * cols * sizeof *logits);
    if (!logits) { fprintf(stderr, "densemllm: out of memory\n"); goto done; }
    status = dmllm_session_image_logits(session, o.alignment, o.labels, o.n_labels, logits, rows * cols, &rows, &cols);
    if (status != DMLLM_OK) { cli_fail(status, "readout"); goto done; }
    double t5 = now_seconds();

    printf("model: %s (%s, %.1f M parameters)\n", o.model_dir, info.compute, info.n_params / 1e6);
    printf("image: %s %dx%d -> %dx%d, %d x %d patches, %d tokens\n", o.image_path, grid.original_w, grid.original_h,
           grid.resized_w, grid.resized_h, grid.grid_h, grid.grid_w, n_tokens);
    printf("time: load %.3f s, vision+merger %.3f s, LLM %.3f s (%d tokens), readout %.4f s\n", t1 - t0, t3 - t2,
           t4 - t3, n_tokens + 2, t5 - t4);
    print_argmax(logits, rows, o.n_labels, &grid, &o);
    exit_code = 0;
done:
    free(logits);
    free(ids);
    dmllm_image_free(image);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return exit_code;
}

const cli_command cli_readout_command = {
    .name = "readout",
    .summary = "encode an image and read label logits at its tokens (token ids)",
    .usage = "densemllm readout --model DIR --image FILE --labels ID[,ID...] [--alignment own|previous]\n"
             "                  [--max-patches N] [--threads N] [--compute bf16|f32|openblas]",
    .run = run_readout,
};
