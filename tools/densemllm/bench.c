/*
 * bench.c: "densemllm bench": where the time of a dense query goes, as ratios measured in one run.
 * Each repetition clears the session's context and runs a first semantic query (encode + prefill +
 * readout) and a second one with another label set on the same image (the prefix is reused: readout
 * only), optionally with the evaluation CRF. With --compare, the same is measured with bf16 and f32
 * matmuls (when the CPU has bf16) and their ratio printed. The image is --image or a generated one.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_REPEAT = 1000 };

typedef struct bench_job {
    dmllm_dense_params first, second; /* label sets A and B, same options */
    int repeat;
} bench_job;

typedef struct query_time {
    double total, encode, prefill, readout, crf;
} query_time;

typedef struct bench_result {
    char compute[32]; /* as the model reports it (a copy: the model is freed before printing) */
    char weights[8];  /* likewise */
    query_time first[MAX_REPEAT], second[MAX_REPEAT];
} bench_result;

/* A deterministic test picture: colour ramps with a disc and a bar, so segments have edges. */
static dmllm_image *generated_image(int width, int height) {
    uint8_t *rgb = malloc((size_t)width * height * 3); /* [height][width][3] */
    if (!rgb) return NULL;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            uint8_t *p = rgb + ((size_t)y * width + x) * 3;
            const int dx = x - width / 3, dy = y - height / 2, r = (width < height ? width : height) / 4;
            const int disc = dx * dx + dy * dy<r * r, bar = x> 2 * width / 3 && x < 5 * width / 6;
            p[0] = (uint8_t)(disc ? 220 : 255 * x / width);
            p[1] = (uint8_t)(bar ? 200 : 255 * y / height);
            p[2] = (uint8_t)(disc ? 40 : bar ? 60 : 150);
        }
    dmllm_image *image = NULL;
    dmllm_image_from_rgb(rgb, width, height, 0, &image);
    free(rgb);
    return image;
}

static int query(dmllm_session *s, const dmllm_image *image, const dmllm_dense_params *p, query_time *t) {
    dmllm_dense_result *r = NULL;
    const double t0 = cli_now_seconds();
    const dmllm_status status = dmllm_predict_dense(s, image, p, &r);
    if (status != DMLLM_OK) return cli_fail_session(status, s, "dense query");
    *t = (query_time){cli_now_seconds() - t0, r->seconds_encode, r->seconds_prefill, r->seconds_readout, r->seconds_crf};
    dmllm_dense_result_free(r);
    return 0;
}

static int measure(const cli_common *common, const dmllm_image *image, const bench_job *job, bench_result *out) {
    cli_context c;
    int failed = cli_open(common, &c);
    dmllm_model_info info = {.struct_size = sizeof info};
    if (!failed) failed = dmllm_model_get_info(c.model, &info) != DMLLM_OK;
    if (!failed) snprintf(out->compute, sizeof out->compute, "%s", info.compute);
    if (!failed) snprintf(out->weights, sizeof out->weights, "%s", info.weights);
    for (int i = 0; !failed && i < job->repeat; i++) {
        failed = dmllm_session_truncate(c.session, 0) != DMLLM_OK ||
                 query(c.session, image, &job->first, &out->first[i]) ||
                 query(c.session, image, &job->second, &out->second[i]);
        if (!common->quiet && !failed) cli_progress_clear();
        if (!common->quiet && !failed)
            fprintf(stderr, "%s repetition %d: first %.4f s, second %.4f s\n", out->compute, i + 1, out->first[i].total,
                    out->second[i].total);
    }
    cli_close(&c);
    cli_progress_end(); /* the stage bar, before the report on stdout */
    return failed;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over the repetitions of one field of query_time. */
static double median(const query_time *times, int n, size_t field) {
    double values[MAX_REPEAT];
    for (int i = 0; i < n; i++) memcpy(&values[i], (const char *)&times[i] + field, sizeof values[i]);
    qsort(values, (size_t)n, sizeof values[0], compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

static cJSON *query_json(const query_time *times, int n) {
    static const struct {
        const char *name;
        size_t field;
    } fields[] = {{"seconds", offsetof(query_time, total)},
                  {"seconds_encode", offsetof(query_time, encode)},
                  {"seconds_prefill", offsetof(query_time, prefill)},
                  {"seconds_readout", offsetof(query_time, readout)},
                  {"seconds_crf", offsetof(query_time, crf)}};
    cJSON *json = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cJSON_AddNumberToObject(json, fields[i].name, median(times, n, fields[i].field));
    return json;
}

static cJSON *result_json(const bench_result *r, int n) {
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "compute", r->compute);
    cJSON_AddStringToObject(json, "weights", r->weights);
    cJSON_AddItemToObject(json, "first_query", query_json(r->first, n));
    cJSON_AddItemToObject(json, "second_query", query_json(r->second, n));
    const double first = median(r->first, n, offsetof(query_time, total));
    cJSON_AddNumberToObject(json, "second_over_first", median(r->second, n, offsetof(query_time, total)) / first);
    return json;
}

static void print_result(const bench_result *r, int n) {
    const double first = median(r->first, n, offsetof(query_time, total));
    const double second = median(r->second, n, offsetof(query_time, total));
    printf("%s, %s weights, median of %d:\n", r->compute, r->weights, n);
    printf("  first query   %9.4f s  (encode %.4f, prefill %.4f, readout %.4f, crf %.4f)\n", first,
           median(r->first, n, offsetof(query_time, encode)), median(r->first, n, offsetof(query_time, prefill)),
           median(r->first, n, offsetof(query_time, readout)), median(r->first, n, offsetof(query_time, crf)));
    printf("  second query  %9.4f s  (readout %.4f, crf %.4f) = %.3f x first\n", second,
           median(r->second, n, offsetof(query_time, readout)), median(r->second, n, offsetof(query_time, crf)),
           second / first);
}

/* "--label-ids 5,17,42": one single-token label per id (models without a tokenizer). */
static int parse_ids(const char *text, int32_t **ids, int **offsets, int *count) {
    char **items = NULL, *storage = NULL;
    int failed = cli_split_list(text, &items, count, &storage) != 0;
    *ids = failed ? NULL : malloc(sizeof **ids * (size_t)*count);
    *offsets = failed ? NULL : malloc(sizeof **offsets * ((size_t)*count + 1));
    failed = failed || !*ids || !*offsets;
    for (int k = 0; !failed && k < *count; k++) {
        char *end = NULL;
        const long id = strtol(items[k], &end, 10);
        failed = *end != '\0' || id < 0 || id > INT32_MAX;
        (*ids)[k] = (int32_t)id;
        (*offsets)[k] = k;
    }
    if (!failed) (*offsets)[*count] = *count;
    free(items);
    free(storage);
    return failed;
}

static int run_bench(int argc, char **argv) {
    bench_job job = {.repeat = 3};
    const char *image_path = NULL, *size = "640x480", *classes_a = "sky, tree, road, person, car",
               *classes_b = "building, grass, water", *label_ids = NULL;
    int compare = 0, evaluation = 0;
    const cli_option options[] = {
        {"--image", CLI_STRING, &image_path, "FILE", "image to measure (default: a generated one)"},
        {"--size", CLI_STRING, &size, "WxH", "size of the generated image (default 640x480)"},
        {"--repeat", CLI_INT, &job.repeat, "N", "repetitions; medians are reported (default 3)"},
        {"--classes", CLI_STRING, &classes_a, "A,B,...", "label set of the first query"},
        {"--classes-second", CLI_STRING, &classes_b, "A,B,...", "label set of the second query"},
        {"--label-ids", CLI_STRING, &label_ids, "ID,ID,...",
         "token ids as labels instead of class names (both queries)"},
        {"--evaluation", CLI_FLAG, &evaluation, NULL, "evaluation readout: softmax and the dense CRF"},
        {"--compare", CLI_FLAG, &compare, NULL, "measure with bf16 and f32 matmuls and print their ratio"},
        {0},
    };
    cli_common common;
    const int n = cli_parse(&cli_bench_command, argc, argv, options, &common);
    if (n < 0) return cli_parse_exit(n);
    int width = 0, height = 0;
    char tail;
    if (n != 0) return fprintf(stderr, "densemllm bench: takes no positional arguments (see --help)\n"), 2;
    if (job.repeat < 1 || job.repeat > MAX_REPEAT)
        return fprintf(stderr, "densemllm bench: --repeat must be 1..%d\n", MAX_REPEAT), 2;
    if (!image_path && (sscanf(size, "%dx%d%c", &width, &height, &tail) != 2 || width < 1 || height < 1 ||
                        width > 16384 || height > 16384))
        return fprintf(stderr, "densemllm bench: --size %s: expected WxH, each 1..16384\n", size), 2;

    char **names_a = NULL, **names_b = NULL, *storage_a = NULL, *storage_b = NULL;
    int32_t *ids = NULL;
    int *offsets = NULL, n_a = 0, n_b = 0, exit_code = 0;
    dmllm_dense_params_init(&job.first);
    job.first.evaluation = evaluation;
    job.second = job.first;
    if (label_ids) {
        if (parse_ids(label_ids, &ids, &offsets, &n_a) != 0) {
            fprintf(stderr, "densemllm bench: --label-ids needs comma-separated token ids\n");
            exit_code = 2;
        }
        job.first.label_token_ids = job.second.label_token_ids = ids;
        job.first.label_offsets = job.second.label_offsets = offsets;
        job.first.n_classes = job.second.n_classes = n_a;
        job.second.background = 1; /* another readout of the same labels: sigmoid channels plus background */
    } else if (cli_split_list(classes_a, &names_a, &n_a, &storage_a) != 0 ||
               cli_split_list(classes_b, &names_b, &n_b, &storage_b) != 0) {
        fprintf(stderr, "densemllm bench: --classes and --classes-second need comma-separated names\n");
        exit_code = 2;
    } else {
        job.first.class_names = (const char *const *)names_a;
        job.first.n_classes = n_a;
        job.second.class_names = (const char *const *)names_b;
        job.second.n_classes = n_b;
    }
    dmllm_image *image = NULL;
    if (!exit_code && image_path) {
        const dmllm_status status = cli_load_image(&common, image_path, &image);
        if (status != DMLLM_OK) exit_code = cli_fail(status, image_path);
    } else if (!exit_code && !(image = generated_image(width, height))) {
        exit_code = cli_fail(DMLLM_ERR_OUT_OF_MEMORY, "generating the image");
    }
    bench_result *results = calloc(2, sizeof *results);
    if (!exit_code && !results) exit_code = cli_fail(DMLLM_ERR_OUT_OF_MEMORY, "the timings");
    int n_results = 0;
    if (!exit_code && !compare) {
        exit_code = measure(&common, image, &job, &results[0]);
        n_results = !exit_code;
    } else if (!exit_code) {
        static const char *const kinds[2] = {"bf16", "f32"};
        for (int k = 0; k < 2 && !exit_code; k++) {
            cli_common forced = common;
            forced.compute = kinds[k];
            if (measure(&forced, image, &job, &results[n_results]) == 0)
                n_results++;
            else if (k == 0)
                fprintf(stderr, "densemllm bench: no bf16 measurement (see above); f32 only\n");
            else
                exit_code = 1;
        }
    }
    char input[64]; /* the JSON's "input": the image, or what was generated */
    snprintf(input, sizeof input, "generated:%dx%d", width, height);
    cJSON *json = cli_json_result(cli_bench_command.name, image_path ? image_path : input);
    if (exit_code == 1 && common.json) {
        cJSON_AddStringToObject(json, "error", cli_last_error()[0] ? cli_last_error() : "failed");
        cli_json_finish(json, NULL, 0);
        cli_print_result(&common, json);
    }
    if (!exit_code) {
        if (!common.json)
            printf("image %dx%d, %d repetitions\n", dmllm_image_width(image), dmllm_image_height(image), job.repeat);
        cJSON_AddNumberToObject(json, "width", dmllm_image_width(image));
        cJSON_AddNumberToObject(json, "height", dmllm_image_height(image));
        cJSON_AddNumberToObject(json, "repeat", job.repeat);
        cJSON *runs = cJSON_AddArrayToObject(json, "runs");
        for (int i = 0; i < n_results; i++) {
            if (!common.json) print_result(&results[i], job.repeat);
            cJSON_AddItemToArray(runs, result_json(&results[i], job.repeat));
        }
        if (n_results == 2) {
            const double ratio = median(results[0].first, job.repeat, offsetof(query_time, total)) /
                                 median(results[1].first, job.repeat, offsetof(query_time, total));
            if (!common.json) printf("first query %s / %s = %.3f\n", results[0].compute, results[1].compute, ratio);
            cJSON_AddNumberToObject(json, "bf16_over_f32", ratio);
        }
        const double first = median(results[0].first, job.repeat, offsetof(query_time, total));
        const double second = median(results[0].second, job.repeat, offsetof(query_time, total));
        char summary[96];
        snprintf(summary, sizeof summary, "%s first query %.4f s, second %.3f x first",
                 results[0].compute, first, second / first);
        cJSON_AddStringToObject(json, "summary", summary);
        cli_json_finish(json, NULL, 0);
        if (common.json) cli_print_result(&common, json);
    }
    cJSON_Delete(json);
    free(results);
    dmllm_image_free(image);
    free(names_a);
    free(names_b);
    free(storage_a);
    free(storage_b);
    free(ids);
    free(offsets);
    return exit_code;
}

const cli_command cli_bench_command = {
    .name = "bench",
    .summary = "timings of encode, prefill and readout; second query vs first, bf16 vs f32",
    .synopsis = "densemllm bench [--image FILE | --size WxH] [--repeat N] [--compare] [options]",
    .run = run_bench,
};
