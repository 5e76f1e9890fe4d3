/*
 * segment.c: "densemllm segment" and "densemllm depth": dense prediction of images through
 * dmllm_predict_dense, written as files next to a JSON summary per input (<name> as in cli_item):
 *   segment  OUT/<name>.labels.png (palette), OUT/<name>.overlay.png (blend + legend),
 *            OUT/<name>.mask.txt (the official <ref>..</ref><mask>(v,n)..</mask> text)
 *   depth    OUT/<name>.mm.png (16-bit millimetres), OUT/<name>.png (colour map),
 *            OUT/<name>.txt ("<depth><mask>..</mask>" over the (H//16) x (W//16) bin grid)
 * Several images in one run share the session, so each is encoded once per task.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct dense_job {
    dmllm_dense_params params;
    char **class_names;         /* semantic: the --classes list */
    int write_png;
    dmllm_overlay_params overlay; /* segment: --alpha, and --background left as the photo */
    float min_depth, max_depth;   /* depth: --min-depth / --max-depth of the colour map (0: 2nd /
                                     98th percentile of each image) */
} dense_job;

int cli_parse_readout(const char *command, const char *text, int *readout) {
    if (!text) return 0;
    if (!strcmp(text, "all") || !strcmp(text, "named")) {
        *readout = !strcmp(text, "all") ? DMLLM_READOUT_ALL : DMLLM_READOUT_NAMED;
        return 0;
    }
    fprintf(stderr, "densemllm %s: --readout must be all or named, not \"%s\"\n", command, text);
    return 2;
}

void cli_add_semantic_classes(cJSON *json, const dmllm_dense_result *r) {
    cJSON_AddStringToObject(json, "readout", r->readout == DMLLM_READOUT_NAMED ? "named" : "all");
    cJSON *classes = cJSON_AddArrayToObject(json, "classes");
    for (int k = 0; k < r->n_classes; k++) {
        cJSON *item = cJSON_CreateObject();
        if (r->class_names) cJSON_AddStringToObject(item, "name", r->class_names[k]);
        cJSON_AddNumberToObject(item, "prompt_index", r->prompt_index[k]);
        cJSON_AddItemToArray(classes, item);
    }
    cJSON_AddBoolToObject(json, "named_fallback", r->named_fallback);
    if (r->reply) cJSON_AddStringToObject(json, "reply", r->reply);
    cJSON_AddNumberToObject(json, "seconds_generate", r->seconds_generate);
}

int cli_write_label_pngs(const cli_common *common, const dmllm_image *image, const char *name,
                         const uint16_t *labels, int n_labels, const char *const *names,
                         const dmllm_overlay_params *overlay) {
    dmllm_status status =
        dmllm_write_label_png(cli_output_path(common, name, ".labels.png"), labels,
                              dmllm_image_width(image), dmllm_image_height(image), n_labels);
    if (status == DMLLM_OK)
        status = dmllm_write_overlay_png_v2(cli_output_path(common, name, ".overlay.png"), image,
                                            labels, n_labels, names, overlay);
    return status == DMLLM_OK ? 0 : cli_fail(status, "writing the PNG outputs");
}

int cli_check_alpha(const char *command, float alpha) {
    if (alpha >= 0.0f && alpha <= 1.0f) return 0;
    fprintf(stderr, "densemllm %s: --alpha %g is outside 0 .. 1\n", command, (double)alpha);
    return 2;
}

static int outputs_segment(cli_context *c, const dmllm_image *image, const char *name,
                           const dmllm_dense_result *r, const dense_job *job, cJSON *json) {
    /* Label values: the classes the result lists, then "background" in background mode. */
    const char **names = calloc((size_t)r->n_classes + 1, sizeof *names);
    if (!names) return cli_error("out of memory");
    for (int k = 0; k < r->n_classes; k++) names[k] = r->class_names[k];
    names[r->n_classes] = "background";
    /* The background's value follows the classes this result lists (named readout). */
    dmllm_overlay_params overlay = job->overlay;
    if (job->params.background) overlay.background_label = r->n_classes;
    if (job->write_png &&
        cli_write_label_pngs(c->common, image, name, r->labels, r->n_labels, names, &overlay) != 0) {
        free(names);
        return 1;
    }
    char *text = NULL;
    const dmllm_status status =
        dmllm_mask_text_write(r->labels, r->width, r->height, names, r->n_labels, &text);
    int failed = status != DMLLM_OK ? cli_fail(status, "writing the mask text") : 0;
    if (!failed) failed = cli_write_text(cli_output_path(c->common, name, ".mask.txt"), text);
    dmllm_text_free(text);
    cli_add_semantic_classes(json, r);
    failed = failed ||
             cli_add_label_map(json, r->labels, (size_t)r->width * r->height, r->n_labels, names);
    cli_add_share_summary(json, "");
    free(names);
    return failed;
}

static int outputs_depth(cli_context *c, const char *name, const dmllm_dense_result *r,
                         const dense_job *job, cJSON *json) {
    dmllm_status status = DMLLM_OK;
    if (job->write_png) {
        status = dmllm_write_depth_png16(cli_output_path(c->common, name, ".mm.png"), r->depth_m,
                                         r->width, r->height, DMLLM_DEPTH_PNG_SCALE);
        if (status == DMLLM_OK)
            status = dmllm_write_depth_colorbar_png(cli_output_path(c->common, name, ".png"), r->depth_m,
                                                    r->width, r->height, job->min_depth, job->max_depth);
        if (status != DMLLM_OK) return cli_fail(status, "writing the depth PNGs");
    }
    char *text = NULL;
    status = dmllm_mask_text_write(r->depth_grid_bins, r->depth_grid_w, r->depth_grid_h, NULL, r->n_labels, &text);
    if (status != DMLLM_OK) return cli_fail(status, "writing the depth text");
    char *tagged = malloc(strlen(text) + 16);
    int failed = 1;
    if (tagged) {
        sprintf(tagged, "<depth>%s", text);
        failed = cli_write_text(cli_output_path(c->common, name, ".txt"), tagged);
    }
    free(tagged);
    dmllm_text_free(text);
    double lo = 0, hi = 0, sum = 0;
    const size_t n = (size_t)r->width * r->height;
    for (size_t i = 0; i < n; i++) {
        const double d = r->depth_m[i];
        lo = i == 0 || d < lo ? d : lo;
        hi = i == 0 || d > hi ? d : hi;
        sum += d;
    }
    cJSON_AddNumberToObject(json, "depth_min_m", lo);
    cJSON_AddNumberToObject(json, "depth_max_m", hi);
    cJSON_AddNumberToObject(json, "depth_mean_m", sum / (double)n);
    cJSON_AddNumberToObject(json, "depth_grid_w", r->depth_grid_w);
    cJSON_AddNumberToObject(json, "depth_grid_h", r->depth_grid_h);
    char summary[128];
    snprintf(summary, sizeof summary, "depth %.2f .. %.2f m, mean %.2f m", lo, hi, sum / (double)n);
    cJSON_AddStringToObject(json, "summary", summary);
    return failed;
}

static int dense_one(cli_context *c, const cli_item *item, void *user, cJSON *json) {
    const dense_job *job = user;
    const char *path = item->path;
    dmllm_image *image = NULL;
    dmllm_status status = cli_load_image(c->common, path, &image);
    if (status != DMLLM_OK) return cli_fail(status, path);
    dmllm_dense_result *r = NULL;
    status = dmllm_predict_dense(c->session, image, &job->params, &r);
    if (status != DMLLM_OK) {
        dmllm_image_free(image);
        return cli_fail_session(status, c->session, path);
    }
    cJSON_AddNumberToObject(json, "width", r->width);
    cJSON_AddNumberToObject(json, "height", r->height);
    cJSON_AddNumberToObject(json, "tokens_w", r->tokens_w);
    cJSON_AddNumberToObject(json, "tokens_h", r->tokens_h);
    cJSON_AddBoolToObject(json, "reused_prefix", r->reused_prefix);
    cJSON_AddNumberToObject(json, "seconds_encode", r->seconds_encode);
    cJSON_AddNumberToObject(json, "seconds_prefill", r->seconds_prefill);
    cJSON_AddNumberToObject(json, "seconds_readout", r->seconds_readout);
    if (job->params.task != DMLLM_TASK_DEPTH) cJSON_AddBoolToObject(json, "crf", r->crf);
    const int failed = job->params.task == DMLLM_TASK_DEPTH
                           ? outputs_depth(c, item->name, r, job, json)
                           : outputs_segment(c, image, item->name, r, job, json);
    dmllm_dense_result_free(r);
    dmllm_image_free(image);
    return failed;
}

/* outputs: the suffixes of the files one input writes, PNGs last (left out with --no-png). */
static int run_parsed(const cli_command *command, cli_common *common, dense_job *job,
                      const char **outputs, int first_png) {
    if (!job->write_png) outputs[first_png] = NULL;
    const cli_batch batch = {command->name, outputs, dense_one, job, 0};
    cli_context context;
    int exit_code = cli_open(common, &context);
    if (exit_code == 0) exit_code = cli_for_each_input(&context, &batch);
    cli_close(&context);
    return exit_code;
}

static int run_segment(int argc, char **argv) {
    dense_job job = {0};
    dmllm_dense_params_init(&job.params);
    dmllm_overlay_params_init(&job.overlay);
    const char *classes = NULL, *readout = NULL;
    int no_png = 0;
    const cli_option options[] = {
        {"--classes", CLI_STRING, &classes, "A,B,...", "class names to segment (required)"},
        {"--readout", CLI_STRING, &readout, "all|named",
         "argmax over every class, or over those the model names first (default: the profile's)"},
        {"--background", CLI_FLAG, &job.params.background, NULL, "add a background label where no class is likely"},
        {"--evaluation", CLI_FLAG, &job.params.evaluation, NULL, "softmax, dense CRF and confidence (= --crf)"},
        CLI_CRF_OPTIONS(&job.params.evaluation),
        {"--prompt", CLI_STRING, &job.params.prompt, "TEXT", "instruction instead of the profile's"},
        {"--no-png", CLI_FLAG, &no_png, NULL, "write only the JSON summary and the mask text"},
        CLI_ALPHA_OPTION(&job.overlay.alpha),
        {0},
    };
    cli_common common;
    const int n = cli_parse(&cli_segment_command, argc, argv, options, &common);
    if (n < 0) return cli_parse_exit(n);
    if (cli_parse_readout("segment", readout, &job.params.readout)) return 2;
    if (cli_check_alpha("segment", job.overlay.alpha)) return 2;
    char *storage = NULL;
    int n_classes = 0;
    if (!classes || cli_split_list(classes, &job.class_names, &n_classes, &storage) != 0) {
        fprintf(stderr, "densemllm segment: --classes needs a comma-separated list of names\n");
        free(job.class_names);
        free(storage);
        return 2;
    }
    job.params.task = DMLLM_TASK_SEMANTIC;
    job.params.class_names = (const char *const *)job.class_names;
    job.params.n_classes = n_classes;
    job.write_png = !no_png;
    const char *outputs[] = {".json", ".mask.txt", ".labels.png", ".overlay.png", NULL};
    const int exit_code = run_parsed(&cli_segment_command, &common, &job, outputs, 2);
    free(job.class_names);
    free(storage);
    return exit_code;
}

static int run_depth(int argc, char **argv) {
    dense_job job = {0};
    dmllm_dense_params_init(&job.params);
    job.params.task = DMLLM_TASK_DEPTH;
    int no_png = 0, prompt_first = 0;
    const cli_option options[] = {
        {"--depth-profile", CLI_STRING, &job.params.depth_profile, "NAME",
         "bin quantisation (nyuv2, cityscapes, ddad, open_world, or the model's own; default: the profile's)"},
        {"--focal", CLI_FLOAT, &job.params.focal_length_px, "PX",
         "camera focal length in pixels: resizes to 2000 px focal length for metric open-world depth"},
        {"--prompt", CLI_STRING, &job.params.prompt, "TEXT", "instruction instead of the profile's"},
        {"--prompt-first", CLI_FLAG, &prompt_first, NULL, "put the instruction before the image (benchmark layout)"},
        {"--no-png", CLI_FLAG, &no_png, NULL, "write only the JSON summary and the bin-grid text"},
        {"--min-depth", CLI_FLOAT, &job.min_depth, "M",
         "metres at the near end of the colour map (default: each image's 2nd percentile)"},
        {"--max-depth", CLI_FLOAT, &job.max_depth, "M",
         "metres at the far end of the colour map (default: each image's 98th percentile)"},
        {0},
    };
    cli_common common;
    const int n = cli_parse(&cli_depth_command, argc, argv, options, &common);
    if (n < 0) return cli_parse_exit(n);
    if (job.min_depth < 0.0f || job.max_depth < 0.0f ||
        (job.min_depth > 0.0f && job.max_depth > 0.0f && job.min_depth >= job.max_depth)) {
        fprintf(stderr, "densemllm depth: --min-depth %g and --max-depth %g must be >= 0 (0: per image) and"
                        " min below max\n", (double)job.min_depth, (double)job.max_depth);
        return 2;
    }
    job.params.layout = prompt_first ? DMLLM_LAYOUT_PROMPT_FIRST : DMLLM_LAYOUT_IMAGE_FIRST;
    job.write_png = !no_png;
    const char *outputs[] = {".json", ".txt", ".mm.png", ".png", NULL};
    return run_parsed(&cli_depth_command, &common, &job, outputs, 2);
}

const cli_command cli_segment_command = {
    .name = "segment",
    .summary = "semantic segmentation for a list of class names: label/overlay PNGs, mask text",
    .synopsis = "densemllm segment --classes A,B,... [options] IMAGE...",
    .run = run_segment,
    .outputs =
        "<name>.segment.json (summary), .labels.png (palette label map), .overlay.png (image\n"
        "  and label colours, outlines, legend), .mask.txt (<ref>class</ref><mask>..</mask> text)",
};

const cli_command cli_depth_command = {
    .name = "depth",
    .summary = "depth from the bin tokens: 16-bit and colour PNGs, the (H//16)x(W//16) bin text",
    .synopsis = "densemllm depth [options] IMAGE...",
    .run = run_depth,
    .outputs = "<name>.depth.json (summary), .mm.png (16-bit millimetres), .png (colour map\n"
               "  with a colour bar in metres),\n"
               "  .txt (<depth><mask>..</mask> over the (H//16)x(W//16) bin grid)",
};
