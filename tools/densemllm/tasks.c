/*
 * tasks.c: the text and box-prompted commands of "densemllm": ask (VQA), ground (a phrase's box),
 * detect (boxes with classes), refseg (referring segmentation), openseg (open-set segmentation by
 * detection) and features (PCA picture of the image-token hidden states, the paper's Figure 4).
 * Each writes a JSON summary per input; the segmentation commands and features also write PNGs.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct task_job {
    const char *text;        /* ask: the question; ground / refseg: the phrase */
    char **classes;          /* detect / openseg: optional category list */
    int n_classes;
    int max_tokens;
    int stream;              /* ask: print the answer as it is generated */
    int no_png;              /* commands with pictures: only the JSON summary */
    int crf;                 /* refseg / openseg: dmllm_crop_params.evaluation (--crf / --no-crf) */
    int demo;                /* refseg / openseg: DMLLM_VARIANT_DEMO (--demo) */
    float alpha;             /* --alpha: weight of the colours over the photo */
} task_job;

static void generate_params(const task_job *job, dmllm_generate_params *p) {
    dmllm_generate_params_init(p);
    if (job->max_tokens > 0) p->max_new_tokens = job->max_tokens;
}

/* The box-prompted commands' settings: the profile's crop, the job's decoding for the answer. */
static void crop_params(const task_job *job, dmllm_crop_params *p, dmllm_generate_params *g) {
    dmllm_crop_params_init(p);
    generate_params(job, g);
    p->generate = g;
    p->evaluation = job->crf;
    p->variant = job->demo ? DMLLM_VARIANT_DEMO : DMLLM_VARIANT_REPORT;
}

/* Which published path and whether the CRF ran, for the JSON summary. */
static void crop_json(const dmllm_crop_params *p, int crf, cJSON *json) {
    cJSON_AddStringToObject(json, "variant", p->variant == DMLLM_VARIANT_DEMO ? "demo" : "report");
    cJSON_AddBoolToObject(json, "crf", crf);
}

static cJSON *box_json(const int box[4]) {
    return cJSON_CreateIntArray(box, 4);
}

static cJSON *regions_json(const dmllm_regions *regions) {
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; i < regions->n_regions; i++) {
        const dmllm_region *region = regions->regions[i];
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "label", region->label);
        cJSON_AddItemToObject(item, "box", box_json(region->box));
        if (region->n_points > 0)
            cJSON_AddItemToObject(item, "polygon", cJSON_CreateIntArray(region->points, 2 * region->n_points));
        cJSON_AddItemToArray(list, item);
    }
    return list;
}

/* ask --stream: the input's stdout line, "<input>: " and the answer's pieces with line breaks
 * as spaces; the prefix comes with the first piece, once the stage bars are gone. */
typedef struct stream_line {
    const char *input;
    int started; /* the prefix is printed */
} stream_line;

static int print_piece(int32_t token_id, const char *text, size_t length, void *user_data) {
    (void)token_id;
    stream_line *line = user_data;
    cli_progress_clear();
    if (!line->started) printf("%s: ", line->input);
    line->started = 1;
    for (size_t i = 0; i < length; i++) putchar(text[i] == '\n' || text[i] == '\r' ? ' ' : text[i]);
    fflush(stdout);
    return 0;
}

/* Loads the input and runs fn, which adds its results to json. */
typedef int (*task_fn)(cli_context *c, const dmllm_image *image, const char *name,
                       const task_job *job, cJSON *json);

typedef struct task_run {
    task_fn fn;
    const task_job *job;
} task_run;

static int task_one(cli_context *c, const cli_item *item, void *user, cJSON *json) {
    const task_run *run = user;
    const char *path = item->path;
    dmllm_image *image = NULL;
    dmllm_status status = cli_load_image(c->common, path, &image);
    if (status != DMLLM_OK) return cli_fail(status, path);
    const int failed = run->fn(c, image, item->name, run->job, json);
    dmllm_image_free(image);
    return failed;
}

static int ask_fn(cli_context *c, const dmllm_image *image, const char *name, const task_job *job,
                  cJSON *json) {
    (void)name;
    dmllm_generate_params p;
    generate_params(job, &p);
    const int stream = job->stream && !c->common->json; /* --json: the answer in the JSON only */
    stream_line line = {cJSON_GetStringValue(cJSON_GetObjectItem(json, "input")), 0};
    if (stream) {
        p.on_token = print_piece;
        p.user_data = &line;
    }
    dmllm_generate_result *r = NULL;
    dmllm_status status = dmllm_ask(c->session, image, job->text, &p, &r);
    if (line.started) putchar('\n');
    c->line_printed = line.started; /* else (an error, no token) the runner prints the line */
    if (status != DMLLM_OK) return cli_fail_session(status, c->session, "ask");
    cJSON_AddStringToObject(json, "summary", r->text ? r->text : "");
    cJSON_AddStringToObject(json, "question", job->text);
    cJSON_AddStringToObject(json, "answer", r->text ? r->text : "");
    cJSON_AddNumberToObject(json, "tokens", r->n_ids);
    cJSON_AddNumberToObject(json, "seconds_prompt", r->seconds_prompt);
    cJSON_AddNumberToObject(json, "seconds_generate", r->seconds_generate);
    dmllm_generate_result_free(r);
    return 0;
}

/* "2 regions: cat [1, 2, 30, 40], dog [...]" and the parser's message, if any. */
static cJSON *regions_summary(const dmllm_regions *r) {
    const size_t size = 64 + strlen(r->message) + (size_t)r->n_regions * 64;
    char *text = malloc(size);
    if (!text) return NULL;
    size_t length =
        (size_t)snprintf(text, size, "%d region%s", r->n_regions, r->n_regions == 1 ? "" : "s");
    for (int i = 0; i < r->n_regions; i++) {
        const int *b = r->regions[i]->box;
        length += (size_t)snprintf(text + length, size - length, "%s%.24s [%d, %d, %d, %d]",
                                   i ? ", " : ": ", r->regions[i]->label, b[0], b[1], b[2], b[3]);
    }
    if (r->message[0]) snprintf(text + length, size - length, " (%s)", r->message);
    cJSON *summary = cJSON_CreateString(text);
    free(text);
    return summary;
}

static int regions_fn(cli_context *c, const dmllm_image *image, const char *name,
                      const task_job *job, cJSON *json, int grounding) {
    dmllm_generate_params p;
    generate_params(job, &p);
    dmllm_regions *r = NULL;
    dmllm_status status = grounding ? dmllm_ground(c->session, image, job->text, &p, &r)
                                    : dmllm_detect(c->session, image, (const char *const *)job->classes,
                                                   job->n_classes, &p, &r);
    if (status != DMLLM_OK) return cli_fail_session(status, c->session, grounding ? "ground" : "detect");
    cJSON_AddItemToObject(json, "summary", regions_summary(r));
    cJSON_AddStringToObject(json, "answer", r->text ? r->text : "");
    cJSON_AddItemToObject(json, "regions", regions_json(r));
    if (r->message[0]) cJSON_AddStringToObject(json, "message", r->message);
    int failed = 0;
    if (!job->no_png) {
        dmllm_overlay_params overlay;
        dmllm_overlay_params_init(&overlay);
        overlay.boxes = (const dmllm_region *const *)r->regions;
        overlay.n_boxes = r->n_regions;
        status = dmllm_write_overlay_png_v2(cli_output_path(c->common, name, ".boxes.png"), image, NULL, 0, NULL,
                                            &overlay);
        if (status != DMLLM_OK) failed = cli_fail(status, "writing the boxes PNG");
    }
    dmllm_regions_free(r);
    return failed;
}

static int ground_fn(cli_context *c, const dmllm_image *image, const char *name,
                     const task_job *job, cJSON *json) {
    return regions_fn(c, image, name, job, json, 1);
}

static int detect_fn(cli_context *c, const dmllm_image *image, const char *name,
                     const task_job *job, cJSON *json) {
    return regions_fn(c, image, name, job, json, 0);
}

static int refseg_fn(cli_context *c, const dmllm_image *image, const char *name,
                     const task_job *job, cJSON *json) {
    dmllm_crop_params p;
    dmllm_generate_params g;
    crop_params(job, &p, &g);
    dmllm_refer_result *r = NULL;
    dmllm_status status = dmllm_refer_segment(c->session, image, job->text, &p, &r);
    if (status != DMLLM_OK) return cli_fail_session(status, c->session, "refseg");
    const size_t n = (size_t)r->width * r->height;
    uint16_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; labels && i < n; i++) labels[i] = r->mask[i];
    int failed = labels ? 0 : cli_error("out of memory");
    const char *names[2] = {"background", job->text};
    const dmllm_region box = {
        .struct_size = sizeof box, .label = job->text, .box = {r->box[0], r->box[1], r->box[2], r->box[3]}};
    const dmllm_region *const boxes[1] = {&box};
    dmllm_overlay_params overlay;
    dmllm_overlay_params_init(&overlay);
    overlay.alpha = job->alpha;
    overlay.background_label = 0;
    overlay.boxes = boxes;
    overlay.n_boxes = r->found;
    if (!failed && !job->no_png)
        failed = cli_write_label_pngs(c->common, image, name, labels, 2, names, &overlay);
    failed = failed || cli_add_label_map(json, labels, n, 2, names);
    char prefix[sizeof r->message + 64];
    if (r->found)
        snprintf(prefix, sizeof prefix, "found, box [%d, %d, %d, %d]: ", r->box[0], r->box[1],
                 r->box[2], r->box[3]);
    else
        snprintf(prefix, sizeof prefix, "not found (%s): ", r->message);
    cli_add_share_summary(json, prefix);
    cJSON_AddStringToObject(json, "phrase", job->text);
    cJSON_AddBoolToObject(json, "found", r->found);
    cJSON_AddItemToObject(json, "box", box_json(r->box));
    cJSON_AddStringToObject(json, "answer", r->answer ? r->answer : "");
    if (r->message[0]) cJSON_AddStringToObject(json, "message", r->message);
    crop_json(&p, r->crf, json);
    free(labels);
    dmllm_refer_result_free(r);
    return failed;
}

static int openseg_fn(cli_context *c, const dmllm_image *image, const char *name,
                      const task_job *job, cJSON *json) {
    dmllm_crop_params p;
    dmllm_generate_params g;
    crop_params(job, &p, &g);
    dmllm_openset_result *r = NULL;
    dmllm_status status = dmllm_openset_segment(c->session, image, (const char *const *)job->classes, job->n_classes,
                                                &p, &r);
    if (status != DMLLM_OK) return cli_fail_session(status, c->session, "openseg");
    const char **names = calloc((size_t)r->n_names + 1, sizeof *names);
    int failed = names ? 0 : cli_error("out of memory");
    if (names) {
        names[0] = "background";
        for (int k = 0; k < r->n_names; k++) names[k + 1] = r->names[k];
    }
    dmllm_overlay_params overlay;
    dmllm_overlay_params_init(&overlay);
    overlay.alpha = job->alpha;
    overlay.background_label = 0;
    overlay.boxes = (const dmllm_region *const *)r->regions->regions;
    overlay.n_boxes = r->regions->n_regions;
    if (!failed && !job->no_png)
        failed = cli_write_label_pngs(c->common, image, name, r->labels, r->n_names + 1, names, &overlay);
    cJSON *classes = cJSON_CreateArray();
    for (int k = 0; k < r->n_names; k++) cJSON_AddItemToArray(classes, cJSON_CreateString(r->names[k]));
    cJSON_AddItemToObject(json, "classes", classes);
    cJSON_AddItemToObject(json, "regions", regions_json(r->regions));
    crop_json(&p, r->crf, json);
    failed = failed || cli_add_label_map(json, r->labels, (size_t)r->width * r->height,
                                         r->n_names + 1, names);
    if (!failed) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%d classes: ", r->n_names);
        cli_add_share_summary(json, prefix);
    }
    free(names);
    dmllm_openset_result_free(r);
    return failed;
}

/* Hidden states at the image tokens after the image prefix (any dense query evaluates it). */
static int features_fn(cli_context *c, const dmllm_image *image, const char *name,
                       const task_job *job, cJSON *json) {
    dmllm_dense_params dp;
    dmllm_dense_params_init(&dp);
    dp.task = DMLLM_TASK_FGBG;
    dmllm_dense_result *r = NULL;
    dmllm_status status = dmllm_predict_dense(c->session, image, &dp, &r);
    size_t rows = 0, cols = 0;
    float *hidden = NULL;
    if (status == DMLLM_OK) {
        dmllm_session_image_hidden(c->session, DMLLM_ALIGN_OWN, NULL, 0, &rows, &cols); /* size query */
        hidden = malloc(rows * cols * sizeof *hidden);
        status = hidden ? dmllm_session_image_hidden(c->session, DMLLM_ALIGN_OWN, hidden, rows * cols, &rows, &cols)
                        : DMLLM_ERR_OUT_OF_MEMORY;
    }
    if (status == DMLLM_OK && !job->no_png)
        status = dmllm_write_pca_png(cli_output_path(c->common, name, ".png"), hidden, (int)rows,
                                     (int)cols, r->tokens_w, r->tokens_h, dmllm_image_width(image),
                                     dmllm_image_height(image));
    if (status == DMLLM_OK && !job->no_png)
        status = dmllm_write_pca_overlay_png(cli_output_path(c->common, name, ".overlay.png"), image,
                                             hidden, (int)rows, (int)cols, r->tokens_w, r->tokens_h,
                                             job->alpha);
    int failed = status == DMLLM_OK ? 0 : cli_fail_session(status, c->session, "features");
    if (!failed) {
        cJSON_AddNumberToObject(json, "tokens_w", r->tokens_w);
        cJSON_AddNumberToObject(json, "tokens_h", r->tokens_h);
        cJSON_AddNumberToObject(json, "hidden_size", (double)cols);
        char summary[96];
        snprintf(summary, sizeof summary, "%d x %d tokens, hidden size %zu", r->tokens_w,
                 r->tokens_h, cols);
        cJSON_AddStringToObject(json, "summary", summary);
    }
    free(hidden);
    dmllm_dense_result_free(r);
    return failed;
}

/* ---- command entry points ---------------------------------------------------------------------- */

/* outputs: the suffixes of the files one input writes, PNGs last (left out with --no-png). */
static int run_task(const cli_command *command, task_fn fn, task_job *job, const cli_option *own,
                    int argc, char **argv, const char *required_name, const char *const *list,
                    const char **outputs) {
    cli_common common;
    const int n = cli_parse(command, argc, argv, own, &common);
    if (n < 0) return cli_parse_exit(n);
    if (cli_check_alpha(command->name, job->alpha)) return 2;
    if (required_name && !job->text) {
        fprintf(stderr, "densemllm %s: %s is required\n", command->name, required_name);
        return 2;
    }
    char *storage = NULL;
    if (list && *list && cli_split_list(*list, &job->classes, &job->n_classes, &storage) != 0) {
        fprintf(stderr, "densemllm %s: --classes needs a comma-separated list of names\n", command->name);
        free(job->classes);
        free(storage);
        return 2;
    }
    task_run run = {fn, job};
    if (job->no_png) outputs[1] = NULL;
    const cli_batch batch = {command->name, outputs, task_one, &run, 0};
    cli_context context;
    int exit_code = cli_open(&common, &context);
    if (exit_code == 0) exit_code = cli_for_each_input(&context, &batch);
    cli_close(&context);
    free(job->classes);
    free(storage);
    return exit_code;
}

static int run_ask(int argc, char **argv) {
    task_job job = {.alpha = 0.5f};
    const cli_option options[] = {
        {"--question", CLI_STRING, &job.text, "TEXT", "the question about the image (required)"},
        {"--max-tokens", CLI_INT, &job.max_tokens, "N", "at most N generated tokens (default 4096)"},
        {"--stream", CLI_FLAG, &job.stream, NULL, "print the answer while it is generated"},
        {0},
    };
    const char *outputs[] = {".json", NULL};
    return run_task(&cli_ask_command, ask_fn, &job, options, argc, argv, "--question", NULL,
                    outputs);
}

static int run_ground(int argc, char **argv) {
    task_job job = {.alpha = 0.5f};
    const cli_option options[] = {
        {"--phrase", CLI_STRING, &job.text, "TEXT", "the referring expression (required)"},
        {"--max-tokens", CLI_INT, &job.max_tokens, "N", "at most N generated tokens (default 4096)"},
        {"--no-png", CLI_FLAG, &job.no_png, NULL, "write only the JSON summary"},
        {0},
    };
    const char *outputs[] = {".json", ".boxes.png", NULL};
    return run_task(&cli_ground_command, ground_fn, &job, options, argc, argv, "--phrase", NULL,
                    outputs);
}

static int run_detect(int argc, char **argv) {
    task_job job = {.alpha = 0.5f};
    const char *classes = NULL;
    const cli_option options[] = {
        {"--classes", CLI_STRING, &classes, "A,B,...", "only these categories (default: all objects)"},
        {"--max-tokens", CLI_INT, &job.max_tokens, "N", "at most N generated tokens (default 4096)"},
        {"--no-png", CLI_FLAG, &job.no_png, NULL, "write only the JSON summary"},
        {0},
    };
    const char *outputs[] = {".json", ".boxes.png", NULL};
    return run_task(&cli_detect_command, detect_fn, &job, options, argc, argv, NULL, &classes,
                    outputs);
}

#define DEMO_HELP "the demo's path: polygon prompt for refseg, crop edges truncated, box far edges inclusive"

static int run_refseg(int argc, char **argv) {
    task_job job = {.crf = DMLLM_FROM_PROFILE, .alpha = 0.5f};
    const cli_option options[] = {
        {"--phrase", CLI_STRING, &job.text, "TEXT", "the referring expression (required)"},
        {"--max-tokens", CLI_INT, &job.max_tokens, "N", "at most N tokens for the grounding answer"},
        {"--no-png", CLI_FLAG, &job.no_png, NULL, "write only the JSON summary"},
        {"--demo", CLI_FLAG, &job.demo, NULL, DEMO_HELP " (default: the report's grounding box)"},
        CLI_CRF_OPTIONS(&job.crf),
        CLI_ALPHA_OPTION(&job.alpha),
        {0},
    };
    const char *outputs[] = {".json", ".labels.png", ".overlay.png", NULL};
    return run_task(&cli_refseg_command, refseg_fn, &job, options, argc, argv, "--phrase", NULL,
                    outputs);
}

static int run_openseg(int argc, char **argv) {
    task_job job = {.crf = DMLLM_FROM_PROFILE, .alpha = 0.5f};
    const char *classes = NULL;
    const cli_option options[] = {
        {"--classes", CLI_STRING, &classes, "A,B,...", "only these categories (default: all objects)"},
        {"--max-tokens", CLI_INT, &job.max_tokens, "N", "at most N tokens for the detection answer"},
        {"--no-png", CLI_FLAG, &job.no_png, NULL, "write only the JSON summary"},
        {"--demo", CLI_FLAG, &job.demo, NULL, DEMO_HELP},
        CLI_CRF_OPTIONS(&job.crf),
        CLI_ALPHA_OPTION(&job.alpha),
        {0},
    };
    const char *outputs[] = {".json", ".labels.png", ".overlay.png", NULL};
    return run_task(&cli_openseg_command, openseg_fn, &job, options, argc, argv, NULL, &classes,
                    outputs);
}

static int run_features(int argc, char **argv) {
    task_job job = {.alpha = 0.5f};
    const cli_option options[] = {
        {"--no-png", CLI_FLAG, &job.no_png, NULL, "write only the JSON summary"},
        CLI_ALPHA_OPTION(&job.alpha),
        {0},
    };
    const char *outputs[] = {".json", ".png", ".overlay.png", NULL};
    return run_task(&cli_features_command, features_fn, &job, options, argc, argv, NULL, NULL,
                    outputs);
}

const cli_command cli_ask_command = {"ask", "answer a question about an image",
                                     "densemllm ask --question TEXT [options] IMAGE...", run_ask,
                                     "<name>.ask.json (question, answer, timings)"};
const cli_command cli_ground_command = {"ground", "the box of the region a phrase describes",
                                        "densemllm ground --phrase TEXT [options] IMAGE...",
                                        run_ground,
                                        "<name>.ground.json (answer, regions with boxes), .boxes.png"};
const cli_command cli_detect_command = {
    "detect", "boxes and classes of the objects in an image",
    "densemllm detect [--classes A,B,...] [options] IMAGE...", run_detect,
    "<name>.detect.json (answer, regions with labels and boxes), .boxes.png (image, boxes)"};
const cli_command cli_refseg_command = {
    "refseg", "referring segmentation: grounding box, then FG/BG inside it",
    "densemllm refseg --phrase TEXT [options] IMAGE...", run_refseg,
    "<name>.refseg.json (box, answer), .labels.png (mask), .overlay.png (mask, box, phrase)"};
const cli_command cli_openseg_command = {
    "openseg", "open-set segmentation: detection, then FG/BG per box",
    "densemllm openseg [--classes A,B,...] [options] IMAGE...", run_openseg,
    "<name>.openseg.json (classes, regions), .labels.png, .overlay.png (masks, boxes)"};
const cli_command cli_features_command = {"features",
                                          "PCA picture of the image-token hidden states (Figure 4)",
                                          "densemllm features [options] IMAGE...", run_features,
                                          "<name>.features.json (token grid), .png (PCA picture),\n"
                                          "  .overlay.png (PCA picture over the image)"};
