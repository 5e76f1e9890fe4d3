/*
 * segment.c: "densemllm segment" and "densemllm depth": dense prediction of images through
 * dmllm_predict_dense, written as files next to a JSON summary per input:
 *   segment  OUT/<stem>.labels.png (palette), OUT/<stem>.overlay.png (blend + legend),
 *            OUT/<stem>.mask.txt (the official <ref>..</ref><mask>(v,n)..</mask> text)
 *   depth    OUT/<stem>.depth16.png (millimetres), OUT/<stem>.depth.png (colour map),
 *            OUT/<stem>.depth.txt ("<depth><mask>..</mask>" over the (H//16) x (W//16) bin grid)
 * Several images in one run share the session, so each is encoded once per task.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct dense_job {
    dmllm_dense_params params;
    char **class_names;         /* semantic: the --classes list */
    const char **label_names;   /* names of the label values, for the legend and the text */
    int n_label_names;
    int write_png;
} dense_job;

/* Share of pixels per label, as a JSON object name -> fraction. */
static cJSON *label_shares(const dmllm_dense_result *r, const dense_job *job) {
    const size_t n = (size_t)r->width * r->height;
    size_t *counts = calloc((size_t)r->n_labels, sizeof *counts);
    cJSON *shares = cJSON_CreateObject();
    if (!counts || !shares) {
        free(counts);
        return shares;
    }
    for (size_t i = 0; i < n; i++) counts[r->labels[i]]++;
    for (int k = 0; k < r->n_labels; k++)
        if (counts[k]) cJSON_AddNumberToObject(shares, k < job->n_label_names ? job->label_names[k] : "?", (double)counts[k] / n);
    free(counts);
    return shares;
}

int cli_write_label_pngs(const cli_common *common, const dmllm_image *image, const char *stem, const uint16_t *labels,
                         int n_labels, const char *const *names) {
    dmllm_status status = dmllm_write_label_png(cli_output_path(common, stem, ".labels.png"), labels,
                                                dmllm_image_width(image), dmllm_image_height(image), n_labels);
    if (status == DMLLM_OK)
        status = dmllm_write_overlay_png(cli_output_path(common, stem, ".overlay.png"), image, labels, n_labels, names,
                                         0.5f);
    return status == DMLLM_OK ? 0 : cli_fail(status, "writing the PNG outputs");
}

static int outputs_segment(cli_context *c, const dmllm_image *image, const char *stem, const dmllm_dense_result *r,
                           const dense_job *job, cJSON *json) {
    if (job->write_png && cli_write_label_pngs(c->common, image, stem, r->labels, r->n_labels, job->label_names) != 0)
        return 1;
    char *text = NULL;
    const dmllm_status status = dmllm_mask_text_write(r->labels, r->width, r->height, job->label_names, r->n_labels, &text);
    if (status != DMLLM_OK) return cli_fail(status, "writing the mask text");
    int failed = cli_write_text(cli_output_path(c->common, stem, ".mask.txt"), text);
    dmllm_text_free(text);
    cJSON_AddItemToObject(json, "label_shares", label_shares(r, job));
    return failed;
}

static int outputs_depth(cli_context *c, const char *stem, const dmllm_dense_result *r, const dense_job *job,
                         cJSON *json) {
    dmllm_status status = DMLLM_OK;
    if (job->write_png) {
        status = dmllm_write_depth_png16(cli_output_path(c->common, stem, ".depth16.png"), r->depth_m, r->width,
                                         r->height, DMLLM_DEPTH_PNG_SCALE);
        if (status == DMLLM_OK)
            status = dmllm_write_depth_color_png(cli_output_path(c->common, stem, ".depth.png"), r->depth_m, r->width,
                                                 r->height, 0.0f, 0.0f);
        if (status != DMLLM_OK) return cli_fail(status, "writing the depth PNGs");
    }
    char *text = NULL;
    status = dmllm_mask_text_write(r->depth_grid_bins, r->depth_grid_w, r->depth_grid_h, NULL, r->n_labels, &text);
    if (status != DMLLM_OK) return cli_fail(status, "writing the depth text");
    char *tagged = malloc(strlen(text) + 16);
    int failed = 1;
    if (tagged) {
        sprintf(tagged, "<depth>%s", text);
        failed = cli_write_text(cli_output_path(c->common, stem, ".depth.txt"), tagged);
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
    return failed;
}

static int dense_one(cli_context *c, const char *path, const char *stem, void *user, char **json_out) {
    const dense_job *job = user;
    dmllm_image *image = NULL;
    dmllm_status status = dmllm_image_load_file(path, &image);
    if (status != DMLLM_OK) return cli_fail(status, path);
    dmllm_dense_result *r = NULL;
    status = dmllm_predict_dense(c->session, image, &job->params, &r);
    if (status != DMLLM_OK) {
        dmllm_image_free(image);
        return cli_fail_session(status, c->session, path);
    }
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "input", path);
    cJSON_AddNumberToObject(json, "width", r->width);
    cJSON_AddNumberToObject(json, "height", r->height);
    cJSON_AddNumberToObject(json, "tokens_w", r->tokens_w);
    cJSON_AddNumberToObject(json, "tokens_h", r->tokens_h);
    cJSON_AddBoolToObject(json, "reused_prefix", r->reused_prefix);
    cJSON_AddNumberToObject(json, "seconds_encode", r->seconds_encode);
    cJSON_AddNumberToObject(json, "seconds_prefill", r->seconds_prefill);
    cJSON_AddNumberToObject(json, "seconds_readout", r->seconds_readout);
    if (job->params.task != DMLLM_TASK_DEPTH) cJSON_AddBoolToObject(json, "crf", r->crf);
    const int failed = job->params.task == DMLLM_TASK_DEPTH ? outputs_depth(c, stem, r, job, json)
                                                            : outputs_segment(c, image, stem, r, job, json);
    *json_out = failed ? NULL : cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    dmllm_dense_result_free(r);
    dmllm_image_free(image);
    return failed;
}

static int run_parsed(cli_common *common, dense_job *job) {
    cli_context context;
    int exit_code = cli_open(common, &context);
    if (exit_code == 0) exit_code = cli_for_each_input(&context, dense_one, job);
    cli_close(&context);
    return exit_code;
}

static int run_segment(int argc, char **argv) {
    dense_job job = {0};
    dmllm_dense_params_init(&job.params);
    const char *classes = NULL;
    int no_png = 0;
    const cli_option options[] = {
        {"--classes", CLI_STRING, &classes, "A,B,...", "class names to segment (required)"},
        {"--background", CLI_FLAG, &job.params.background, NULL, "add a background label where no class is likely"},
        {"--evaluation", CLI_FLAG, &job.params.evaluation, NULL, "softmax, dense CRF and confidence (= --crf)"},
        CLI_CRF_OPTIONS(&job.params.evaluation),
        {"--prompt", CLI_STRING, &job.params.prompt, "TEXT", "instruction instead of the profile's"},
        {"--no-png", CLI_FLAG, &no_png, NULL, "write only the JSON summary and the mask text"},
        {0},
    };
    cli_common common;
    const int n = cli_parse(&cli_segment_command, argc, argv, options, &common);
    if (n < 0) return cli_parse_exit(n);
    char *storage = NULL;
    int n_classes = 0;
    if (!classes || cli_split_list(classes, &job.class_names, &n_classes, &storage) != 0) {
        fprintf(stderr, "densemllm segment: --classes needs a comma-separated list of names\n");
        free(job.class_names);
        free(storage);
        return 2;
    }
    /* Label values: the classes in order, then "background" when --background adds it. */
    const char **names = calloc((size_t)n_classes + 1, sizeof *names);
    int exit_code = 1;
    if (names) {
        for (int k = 0; k < n_classes; k++) names[k] = job.class_names[k];
        names[n_classes] = "background";
        job.params.task = DMLLM_TASK_SEMANTIC;
        job.params.class_names = (const char *const *)job.class_names;
        job.params.n_classes = n_classes;
        job.label_names = names;
        job.n_label_names = n_classes + 1;
        job.write_png = !no_png;
        exit_code = run_parsed(&common, &job);
    } else {
        fprintf(stderr, "densemllm: out of memory\n");
    }
    free(names);
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
        {0},
    };
    cli_common common;
    const int n = cli_parse(&cli_depth_command, argc, argv, options, &common);
    if (n < 0) return cli_parse_exit(n);
    job.params.layout = prompt_first ? DMLLM_LAYOUT_PROMPT_FIRST : DMLLM_LAYOUT_IMAGE_FIRST;
    job.write_png = !no_png;
    return run_parsed(&common, &job);
}

const cli_command cli_segment_command = {
    .name = "segment",
    .summary = "semantic segmentation for a list of class names: label/overlay PNGs, mask text",
    .synopsis = "densemllm segment --classes A,B,... [options] IMAGE...",
    .run = run_segment,
};

const cli_command cli_depth_command = {
    .name = "depth",
    .summary = "depth from the bin tokens: 16-bit and colour PNGs, the (H//16)x(W//16) bin text",
    .synopsis = "densemllm depth [options] IMAGE...",
    .run = run_depth,
};
