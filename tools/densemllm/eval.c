/*
 * eval.c: "densemllm eval": the report's dense benchmarks over a dataset, scored with the library's
 * metrics (header section "evaluation metrics"). Two passes through the batch runner: predictions
 * per sample (--shard, --resume; OUT/<id>.json marks a sample done), saved as files, then the
 * metrics over every saved prediction (of this shard with --shard), written to OUT/metrics.json
 * and printed as the command's one result (a line, or the JSON object with --json; per-sample
 * results only go to OUT/<id>.json). Shards run apart are combined by a run with --metrics-only.
 *   semantic  DATASET/images/<stem>.* + DATASET/annotations/<stem>.png (class indices),
 *             class names from --classes-file, one per line; predictions OUT/<stem>.labels.png
 *   depth     DATASET/images/<stem>.* + DATASET/depth/<stem>.png (16-bit, --depth-scale units per
 *             metre, default millimetres; 0 = no depth); predictions OUT/<stem>.depth.npy (metres);
 *             layout and valid range by default from the readout profile's "depth_evaluation"
 *   refseg    a JSON array or JSON-lines file of {"image", "phrase", "mask"} (paths relative to the
 *             file; mask PNG nonzero = the object), or a folder holding refs.jsonl / refs.json;
 *             sample k runs under the id sample-<k>; predictions OUT/<id>.mask.png
 * Files are named by the sample's id, without the task (one evaluation per --out); two images
 * of one stem keep their extensions (OUT/<stem>.jpg.labels.png) and share the ground truth.
 * Semantic and FG/BG readouts run as the report evaluates them: softmax, dense CRF, argmax; the
 * semantic one over the classes the model names first (--readout named, report 9.2).
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The name of the label value n_classes: a class the model named that the class file lacks. */
#define OUTSIDE_THE_CLASS_FILE "not in the class file"

typedef enum eval_task { TASK_SEMANTIC, TASK_DEPTH, TASK_REFSEG } eval_task;

typedef struct ref_sample {
    char *image, *phrase, *mask; /* paths resolved against the list file's folder */
} ref_sample;

typedef struct eval_job {
    eval_task task;
    const char *dataset;
    float scale; /* input up-scaling before the model (report: ADE20K x4, NYUv2 x3) */
    /* semantic */
    char **class_names; /* [n_classes] into class_storage */
    int n_classes;
    char *class_storage;
    int readout;       /* dmllm_semantic_readout; default NAMED, the report's protocol */
    dmllm_seg_metrics_params seg_params;
    dmllm_crf_params crf;
    dmllm_seg_metrics *seg;
    size_t *predicted; /* [n_classes + 1] scored pixels predicted per value of the label maps */
    /* depth */
    const char *depth_profile;
    int image_first, prompt_first; /* the flags; neither: the profile's layout */
    float depth_scale;
    dmllm_depth_metrics_params depth_params;
    dmllm_depth_metrics *depth;
    /* refseg */
    dmllm_generate_params generate; /* the grounding answer's decoding */
    ref_sample *samples;            /* [n_samples] */
    int n_samples;
    char **sample_ids; /* [n_samples] "sample-NNNNNNNN", the batch runner's inputs */
    dmllm_mask_metrics *masks;
} eval_job;

/* ---- files ----------------------------------------------------------------------------------- */

static char *join_path(const char *dir, const char *name) {
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    if (path) sprintf(path, "%s/%s", dir, name);
    return path;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (text = malloc((size_t)size + 1)) && fread(text, 1, (size_t)size, f) == (size_t)size) {
        text[size] = '\0';
    } else {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

/* float32 [h][w] as a NumPy .npy file (format 1.0, little-endian, C order). */
static int write_npy(const char *path, const float *values, int width, int height) {
    char header[128];
    int n =
        snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", height, width);
    const int padded = (10 + n + 1 + 63) / 64 * 64 - 10; /* header length incl. the final '\n' */
    const size_t n_values = (size_t)width * height, size = 10 + (size_t)padded + 4 * n_values;
    uint8_t *bytes = malloc(size);
    if (!bytes) return fprintf(stderr, "densemllm: out of memory\n"), 1;
    memcpy(bytes, "\x93NUMPY\x01\x00", 8);
    bytes[8] = (uint8_t)(padded & 0xff);
    bytes[9] = (uint8_t)(padded >> 8);
    memset(bytes + 10, ' ', (size_t)padded);
    memcpy(bytes + 10, header, (size_t)n);
    bytes[10 + padded - 1] = '\n';
    for (size_t i = 0; i < n_values; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], 4);
        for (int b = 0; b < 4; b++) bytes[10 + padded + 4 * i + b] = (uint8_t)(bits >> (8 * b));
    }
    const int failed = cli_write_file(path, bytes, size);
    free(bytes);
    return failed;
}

/* Reads back what write_npy writes; *values is malloc'ed [h][w]. */
static int read_npy(const char *path, float **values, int *width, int *height) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "densemllm eval: no prediction %s: %s\n", path, strerror(errno)), 1;
    uint8_t head[10];
    char header[1024];
    int failed = fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY\x01\x00", 8) != 0;
    const size_t length = failed ? 0 : (size_t)(head[8] | head[9] << 8);
    failed = failed || length >= sizeof header || fread(header, 1, length, f) != length;
    if (!failed) {
        header[length] = '\0';
        const char *shape = strstr(header, "'shape': (");
        failed = !strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False") || !shape ||
                 sscanf(shape, "'shape': (%d, %d)", height, width) != 2 || *width <= 0 || *height <= 0;
    }
    const size_t n = failed ? 0 : (size_t)*width * *height;
    uint8_t *bytes = failed ? NULL : malloc(4 * n);
    *values = failed ? NULL : malloc(sizeof **values * n);
    failed = failed || !bytes || !*values || fread(bytes, 4, n, f) != n;
    for (size_t i = 0; !failed && i < n; i++) {
        const uint32_t bits = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
                              (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
        memcpy(&(*values)[i], &bits, 4);
    }
    free(bytes);
    fclose(f);
    if (failed) {
        free(*values);
        *values = NULL;
        fprintf(stderr, "densemllm: %s: not a float32 .npy depth map written by densemllm eval\n", path);
    }
    return failed;
}

static int read_values(const char *path, dmllm_png_values **values) {
    const dmllm_status status = dmllm_read_png_values(path, values);
    return status == DMLLM_OK ? 0 : cli_fail(status, path);
}

/* ---- datasets -------------------------------------------------------------------------------- */

/* What each task reads, for the message about a dataset that does not hold it. */
static const char *const dataset_layouts[] = {
    "DATASET/images/<stem>.<image> and DATASET/annotations/<stem>.png (class indices)",
    "DATASET/images/<stem>.<image> and DATASET/depth/<stem>.png (16-bit, --depth-scale units "
    "per metre)",
    "a JSON array or JSON-lines file of {\"image\", \"phrase\", \"mask\"} objects, or a folder "
    "holding one as refs.jsonl or refs.json"};

static int bad_dataset(const eval_job *job, const char *problem) {
    static const char *const names[] = {"semantic", "depth", "refseg"};
    fprintf(stderr, "densemllm eval: %s; --task %s expects %s\n", problem, names[job->task],
            dataset_layouts[job->task]);
    return 2;
}

/* Ground truth of an image: DATASET/<folder>/<stem>.png. */
static char *truth_path(const eval_job *job, const char *folder, const char *stem) {
    char *path = malloc(strlen(job->dataset) + strlen(folder) + strlen(stem) + 8);
    if (path) sprintf(path, "%s/%s/%s.png", job->dataset, folder, stem);
    return path;
}

/* The files a dataset lacks, reported once with their count and the first of them. */
static int report_missing(const eval_job *job, int n_missing, int n_total, const char *what, const char *first) {
    if (n_missing == 0) return 0;
    char problem[1024];
    snprintf(problem, sizeof problem, "%d of the %d %s are missing (the first: %s)", n_missing, n_total, what, first);
    return bad_dataset(job, problem);
}

/* An image folder with the ground truth of every image, checked before any prediction: a dataset
 * laid out otherwise is reported once, with the count of what is missing, not file by file. */
static int check_image_folder(const eval_job *job) {
    const char *truth = job->task == TASK_SEMANTIC ? "annotations" : "depth";
    char problem[1024];
    char *images = join_path(job->dataset, "images");
    DIR *dir = images ? opendir(images) : NULL;
    if (!dir) {
        snprintf(problem, sizeof problem, "%s: %s", images ? images : job->dataset, strerror(errno));
        free(images);
        return bad_dataset(job, problem);
    }
    int n_images = 0, n_missing = 0;
    char first_missing[512] = "";
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (!cli_is_image_name(entry->d_name)) continue;
        n_images++;
        char *stem = strdup(entry->d_name), *path = NULL;
        if (stem) {
            *strrchr(stem, '.') = '\0';
            path = truth_path(job, truth, stem);
        }
        struct stat st;
        if (!path) n_images = -1;
        else if (stat(path, &st) != 0 && n_missing++ == 0) snprintf(first_missing, sizeof first_missing, "%s", path);
        free(path);
        free(stem);
        if (n_images < 0) break;
    }
    closedir(dir);
    int failed = n_images < 0 ? (fprintf(stderr, "densemllm: out of memory\n"), 1) : 0;
    if (!failed && n_images == 0) {
        snprintf(problem, sizeof problem, "%s holds no image (" CLI_IMAGE_EXTENSIONS ")", images);
        failed = bad_dataset(job, problem);
    }
    free(images);
    return failed ? failed : report_missing(job, n_missing, n_images, "ground-truth files", first_missing);
}

/* The image and mask files of every sample of a refseg list. */
static int check_samples(const eval_job *job) {
    int n_missing = 0;
    const char *first = NULL;
    for (int i = 0; i < job->n_samples; i++) {
        struct stat st;
        const char *files[2] = {job->samples[i].image, job->samples[i].mask};
        for (int k = 0; k < 2; k++)
            if (stat(files[k], &st) != 0 && n_missing++ == 0) first = files[k];
    }
    return report_missing(job, n_missing, 2 * job->n_samples, "image and mask files of the list", first);
}

/* One class name per line (line k = class k), surrounding blanks trimmed. */
static int read_classes(const char *path, eval_job *job) {
    job->class_storage = read_text(path);
    if (!job->class_storage)
        return fprintf(stderr, "densemllm eval: --classes-file %s: %s\n", path, strerror(errno)), 2;
    int capacity = 1;
    for (const char *c = job->class_storage; *c; c++) capacity += *c == '\n';
    job->class_names = calloc((size_t)capacity, sizeof *job->class_names);
    if (!job->class_names) return fprintf(stderr, "densemllm: out of memory\n"), 1;
    char *line = job->class_storage;
    for (int number = 1; line && *line; number++) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        while (isspace((unsigned char)*line)) line++;
        char *end = line + strlen(line);
        while (end > line && isspace((unsigned char)end[-1])) *--end = '\0';
        if (!*line) {
            if (!next || !*next) break; /* a final newline */
            fprintf(stderr, "densemllm eval: --classes-file %s: line %d is empty\n", path, number);
            return 2;
        }
        job->class_names[job->n_classes++] = line;
        line = next;
    }
    if (job->n_classes == 0) return fprintf(stderr, "densemllm eval: --classes-file %s holds no names\n", path), 2;
    return 0;
}

static char *string_field(const cJSON *item, const char *key) {
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(item, key);
    return cJSON_IsString(field) && field->valuestring[0] ? field->valuestring : NULL;
}

static int add_sample(eval_job *job, const cJSON *item, const char *dir, int number) {
    const char *image = string_field(item, "image"), *phrase = string_field(item, "phrase"),
               *mask = string_field(item, "mask");
    if (!image || !phrase || !mask) {
        char problem[96];
        snprintf(problem, sizeof problem, "sample %d has no \"image\", \"phrase\" or \"mask\" string", number);
        return bad_dataset(job, problem);
    }
    ref_sample *s = &job->samples[job->n_samples];
    char **id = &job->sample_ids[job->n_samples++]; /* counted now, so free_job frees what follows */
    s->image = image[0] == '/' ? strdup(image) : join_path(dir, image);
    s->mask = mask[0] == '/' ? strdup(mask) : join_path(dir, mask);
    s->phrase = strdup(phrase);
    *id = malloc(24);
    if (!s->image || !s->mask || !s->phrase || !*id) return fprintf(stderr, "densemllm: out of memory\n"), 1;
    /* zero-padded so that the runner's sorted order is the file's */
    snprintf(*id, 24, "sample-%08d", number);
    return 0;
}

/* The refseg list: a JSON array, or one JSON object per line. */
static int read_samples(eval_job *job) {
    struct stat st;
    char *path = NULL;
    if (stat(job->dataset, &st) == 0 && S_ISDIR(st.st_mode)) {
        path = join_path(job->dataset, "refs.jsonl");
        if (path && stat(path, &st) != 0) {
            free(path);
            path = join_path(job->dataset, "refs.json");
        }
    } else {
        path = strdup(job->dataset);
    }
    char *text = path ? read_text(path) : NULL;
    if (!text) {
        char problem[1024];
        snprintf(problem, sizeof problem, "%s: %s", path ? path : job->dataset, strerror(errno));
        free(path);
        return bad_dataset(job, problem);
    }
    char *slash = strrchr(path, '/');
    const char *dir = ".";
    if (slash) {
        *slash = '\0';
        dir = path;
    }
    int capacity = 1;
    for (const char *c = text; *c; c++) capacity += *c == '\n';
    cJSON *array = NULL;
    const char *start = text;
    while (isspace((unsigned char)*start)) start++;
    if (*start == '[') {
        array = cJSON_Parse(start);
        capacity = cJSON_GetArraySize(array);
    }
    job->samples = calloc((size_t)capacity + 1, sizeof *job->samples);
    job->sample_ids = calloc((size_t)capacity + 1, sizeof *job->sample_ids);
    int failed = !job->samples || !job->sample_ids ? (fprintf(stderr, "densemllm: out of memory\n"), 1) : 0;
    if (!failed && *start == '[') {
        if (!cJSON_IsArray(array))
            failed = bad_dataset(job, "the list is not valid JSON");
        for (int i = 0; !failed && i < capacity; i++) failed = add_sample(job, cJSON_GetArrayItem(array, i), dir, i);
    } else {
        int number = 0;
        for (char *line = text; !failed && line && *line;) {
            char *next = strchr(line, '\n');
            if (next) *next++ = '\0';
            const char *c = line;
            while (isspace((unsigned char)*c)) c++;
            if (*c) {
                cJSON *item = cJSON_Parse(c);
                char problem[64];
                snprintf(problem, sizeof problem, "line %d of the list is not a JSON object", number + 1);
                if (!cJSON_IsObject(item))
                    failed = bad_dataset(job, problem);
                else
                    failed = add_sample(job, item, dir, number);
                cJSON_Delete(item);
            }
            number++;
            line = next;
        }
    }
    if (!failed && job->n_samples == 0) failed = bad_dataset(job, "the list holds no samples");
    cJSON_Delete(array);
    free(text);
    free(path);
    return failed;
}

static void free_job(eval_job *job) {
    for (int i = 0; i < job->n_samples; i++) {
        free(job->samples[i].image);
        free(job->samples[i].phrase);
        free(job->samples[i].mask);
        free(job->sample_ids[i]);
    }
    free(job->samples);
    free(job->sample_ids);
    free(job->class_names);
    free(job->class_storage);
    free(job->predicted);
    dmllm_seg_metrics_free(job->seg);
    dmllm_depth_metrics_free(job->depth);
    dmllm_mask_metrics_free(job->masks);
}

static int compare_ids(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The sample run under an id; the ids are in increasing order. */
static const ref_sample *sample_of(const eval_job *job, const char *stem) {
    char *const *found = bsearch(&stem, job->sample_ids, (size_t)job->n_samples, sizeof *job->sample_ids, compare_ids);
    return found ? &job->samples[found - job->sample_ids] : NULL;
}

/* ---- predictions ----------------------------------------------------------------------------- */

/* The model input: the image, up-scaled by --scale. */
static int load_input(const cli_context *c, const eval_job *job, const char *path, dmllm_image **image,
                      dmllm_image **input) {
    *input = NULL;
    dmllm_status status = cli_load_image(c->common, path, image);
    if (status != DMLLM_OK) return cli_fail(status, path);
    if (job->scale == 1.0f) return 0;
    const int w = (int)lrint(dmllm_image_width(*image) * (double)job->scale),
              h = (int)lrint(dmllm_image_height(*image) * (double)job->scale);
    const dmllm_resize_mode mode = strcmp(c->common->resize, "pillow") ? DMLLM_RESIZE_HF : DMLLM_RESIZE_PILLOW;
    status = dmllm_image_resize(*image, w < 1 ? 1 : w, h < 1 ? 1 : h, mode, input);
    return status == DMLLM_OK ? 0 : cli_fail(status, "--scale");
}

/* What the semantic label maps' values stand for: names[n_classes + 1], the class file's lines,
 * then OUTSIDE_THE_CLASS_FILE (malloc'ed; NULL after cli_error). */
static const char **label_names(const eval_job *job) {
    const char **names = malloc(sizeof *names * ((size_t)job->n_classes + 1));
    if (!names) return cli_error("out of memory"), NULL;
    for (int k = 0; k < job->n_classes; k++) names[k] = job->class_names[k];
    names[job->n_classes] = OUTSIDE_THE_CLASS_FILE;
    return names;
}

static void add_timings(cJSON *json, const dmllm_dense_result *r) {
    cJSON_AddNumberToObject(json, "seconds_encode", r->seconds_encode);
    cJSON_AddNumberToObject(json, "seconds_prefill", r->seconds_prefill);
    cJSON_AddNumberToObject(json, "seconds_readout", r->seconds_readout);
    cJSON_AddNumberToObject(json, "seconds_crf", r->seconds_crf);
}

static int predict_semantic(cli_context *c, const eval_job *job, const cli_item *item,
                            cJSON *json) {
    const char *path = item->path;
    dmllm_image *image = NULL, *input = NULL;
    if (load_input(c, job, path, &image, &input) != 0) return 1;
    const int w = dmllm_image_width(image), h = dmllm_image_height(image);
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    p.class_names = (const char *const *)job->class_names;
    p.n_classes = job->n_classes;
    p.evaluation = 1;
    p.crf = &job->crf;
    p.readout = job->readout;
    dmllm_dense_result *r = NULL;
    dmllm_status status = dmllm_predict_dense(c->session, input ? input : image, &p, &r);
    int failed = status != DMLLM_OK ? cli_fail_session(status, c->session, path) : 0;
    uint16_t *labels = NULL; /* [h][w]: the prediction at the image's size (nearest neighbour) */
    if (!failed && !(labels = malloc(sizeof *labels * (size_t)w * h)))
        failed = cli_error("out of memory");
    /* Label values index the classes the model named; the map holds class-file indices, and
     * n_classes for a named class outside the file (wrong wherever it is). */
    for (int y = 0; !failed && y < h; y++)
        for (int x = 0; x < w; x++) {
            const int sy = (int)((y + 0.5) * r->height / h), sx = (int)((x + 0.5) * r->width / w);
            const int index = r->prompt_index[r->labels[(size_t)sy * r->width + sx]];
            labels[(size_t)y * w + x] = (uint16_t)(index < 0 ? job->n_classes : index);
        }
    if (!failed) {
        status = dmllm_write_label_png(cli_output_path(c->common, item->name, ".labels.png"),
                                       labels, w, h, job->n_classes + 1);
        if (status != DMLLM_OK) failed = cli_fail(status, "writing the label map");
    }
    if (!failed) {
        cJSON_AddStringToObject(json, "prediction",
                                cli_output_path(c->common, item->name, ".labels.png"));
        cli_add_semantic_classes(json, r);
        add_timings(json, r);
        const char **names = label_names(job);
        failed = !names || cli_add_label_map(json, labels, (size_t)w * h, job->n_classes + 1, names);
        cli_add_share_summary(json, "");
        free(names);
    }
    free(labels);
    dmllm_dense_result_free(r);
    dmllm_image_free(input);
    dmllm_image_free(image);
    return failed;
}

static int predict_depth(cli_context *c, const eval_job *job, const cli_item *item, cJSON *json) {
    const char *path = item->path, *npy = cli_output_path(c->common, item->name, ".depth.npy");
    dmllm_image *image = NULL, *input = NULL;
    if (load_input(c, job, path, &image, &input) != 0) return 1;
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    p.task = DMLLM_TASK_DEPTH;
    p.depth_profile = job->depth_profile;
    p.layout = job->image_first ? DMLLM_LAYOUT_IMAGE_FIRST : DMLLM_LAYOUT_PROMPT_FIRST;
    dmllm_dense_result *r = NULL;
    dmllm_status status = dmllm_predict_dense(c->session, input ? input : image, &p, &r);
    int failed = status != DMLLM_OK ? cli_fail_session(status, c->session, path) : 0;
    if (!failed) failed = write_npy(npy, r->depth_m, r->width, r->height);
    if (!failed) {
        cJSON_AddStringToObject(json, "prediction", npy);
        add_timings(json, r);
        cJSON_AddStringToObject(json, "summary", npy);
    }
    dmllm_dense_result_free(r);
    dmllm_image_free(input);
    dmllm_image_free(image);
    return failed;
}

static int predict_refseg(cli_context *c, const eval_job *job, const cli_item *item, cJSON *json) {
    const ref_sample *s = sample_of(job, item->id);
    if (!s) return fprintf(stderr, "densemllm eval: %s is not a sample of the list\n", item->id), 1;
    dmllm_image *image = NULL;
    dmllm_status status = cli_load_image(c->common, s->image, &image);
    if (status != DMLLM_OK) return cli_fail(status, s->image);
    dmllm_crop_params crop;
    dmllm_crop_params_init(&crop);
    crop.generate = &job->generate;
    crop.evaluation = 1;
    crop.crf = &job->crf;
    dmllm_refer_result *r = NULL;
    status = dmllm_refer_segment(c->session, image, s->phrase, &crop, &r);
    int failed = status != DMLLM_OK ? cli_fail_session(status, c->session, s->image) : 0;
    const size_t n = failed ? 0 : (size_t)r->width * r->height;
    uint16_t *labels = failed ? NULL : malloc(sizeof *labels * (n ? n : 1));
    if (!failed && !labels) failed = cli_error("out of memory");
    for (size_t i = 0; !failed && i < n; i++) labels[i] = r->mask[i];
    if (!failed) {
        status = dmllm_write_label_png(cli_output_path(c->common, item->name, ".mask.png"), labels,
                                       r->width, r->height, 2);
        if (status != DMLLM_OK) failed = cli_fail(status, "writing the mask");
    }
    if (!failed) {
        cJSON_AddStringToObject(json, "image", s->image);
        cJSON_AddStringToObject(json, "phrase", s->phrase);
        cJSON_AddStringToObject(json, "prediction",
                                cli_output_path(c->common, item->name, ".mask.png"));
        cJSON_AddBoolToObject(json, "found", r->found);
        cJSON_AddItemToObject(json, "box", cJSON_CreateIntArray(r->box, 4));
        cJSON_AddStringToObject(json, "answer", r->answer ? r->answer : "");
        const char *names[2] = {"background", s->phrase};
        failed = cli_add_label_map(json, labels, n, 2, names);
        cli_add_share_summary(json, r->found ? "found: " : "not found: ");
    }
    free(labels);
    dmllm_refer_result_free(r);
    dmllm_image_free(image);
    return failed;
}

static int predict_one(cli_context *c, const cli_item *item, void *user, cJSON *json) {
    const eval_job *job = user;
    cJSON_AddStringToObject(json, "id", item->id);
    return job->task == TASK_SEMANTIC ? predict_semantic(c, job, item, json)
           : job->task == TASK_DEPTH  ? predict_depth(c, job, item, json)
                                      : predict_refseg(c, job, item, json);
}

/* ---- metrics --------------------------------------------------------------------------------- */

static int same_size(const char *a, int aw, int ah, const char *b, int bw, int bh) {
    if (aw == bw && ah == bh) return 1;
    fprintf(stderr, "densemllm eval: %s is %dx%d but %s is %dx%d\n", a, aw, ah, b, bw, bh);
    return 0;
}

static int score_semantic(cli_context *c, eval_job *job, const cli_item *item) {
    char *truth = truth_path(job, "annotations", item->id);
    dmllm_png_values *pred = NULL, *gt = NULL;
    const char *pred_path = cli_output_path(c->common, item->name, ".labels.png");
    int failed = !truth || read_values(pred_path, &pred) || read_values(truth, &gt) ||
                 !same_size(pred_path, pred->width, pred->height, truth, gt->width, gt->height);
    if (!failed) {
        const dmllm_status status =
            dmllm_seg_metrics_add(job->seg, pred->values, gt->values, (size_t)gt->width * gt->height);
        failed = status != DMLLM_OK ? cli_fail(status, truth) : 0;
    }
    for (size_t i = 0; !failed && i < (size_t)pred->width * pred->height; i++)
        if (pred->values[i] <= job->n_classes) job->predicted[pred->values[i]]++;
    dmllm_png_values_free(pred);
    dmllm_png_values_free(gt);
    free(truth);
    return failed;
}

static int score_depth(cli_context *c, eval_job *job, const cli_item *item) {
    char *truth = truth_path(job, "depth", item->id);
    dmllm_png_values *gt = NULL;
    float *pred = NULL, *metres = NULL; /* [pred h][pred w], [gt h][gt w] */
    int pw = 0, ph = 0;
    int failed = !truth ||
                 read_npy(cli_output_path(c->common, item->name, ".depth.npy"), &pred, &pw, &ph) ||
                 read_values(truth, &gt);
    const size_t n = failed ? 0 : (size_t)gt->width * gt->height;
    if (!failed && !(metres = malloc(sizeof *metres * n))) failed = (fprintf(stderr, "densemllm: out of memory\n"), 1);
    for (size_t i = 0; !failed && i < n; i++) metres[i] = (float)(gt->values[i] / (double)job->depth_scale);
    if (!failed) {
        const dmllm_status status = dmllm_depth_metrics_add(job->depth, pred, pw, ph, metres, gt->width, gt->height);
        failed = status != DMLLM_OK ? cli_fail(status, truth) : 0;
    }
    dmllm_png_values_free(gt);
    free(pred);
    free(metres);
    free(truth);
    return failed;
}

static int score_refseg(cli_context *c, eval_job *job, const cli_item *item) {
    const ref_sample *s = sample_of(job, item->id);
    if (!s) return fprintf(stderr, "densemllm eval: %s is not a sample of the list\n", item->id), 1;
    dmllm_png_values *pred = NULL, *gt = NULL;
    const char *pred_path = cli_output_path(c->common, item->name, ".mask.png");
    int failed = read_values(pred_path, &pred) || read_values(s->mask, &gt) ||
                 !same_size(pred_path, pred->width, pred->height, s->mask, gt->width, gt->height);
    const size_t n = failed ? 0 : (size_t)gt->width * gt->height;
    uint8_t *p = failed ? NULL : malloc(n ? n : 1), *g = failed ? NULL : malloc(n ? n : 1);
    if (!failed && (!p || !g)) failed = (fprintf(stderr, "densemllm: out of memory\n"), 1);
    for (size_t i = 0; !failed && i < n; i++) {
        p[i] = pred->values[i] != 0;
        g[i] = gt->values[i] != 0;
    }
    if (!failed) {
        const dmllm_status status = dmllm_mask_metrics_add(job->masks, p, g, n);
        failed = status != DMLLM_OK ? cli_fail(status, s->mask) : 0;
    }
    free(p);
    free(g);
    dmllm_png_values_free(pred);
    dmllm_png_values_free(gt);
    return failed;
}

static int score_one(cli_context *c, const cli_item *item, void *user, cJSON *json) {
    (void)json; /* the scoring pass reports only the metrics */
    eval_job *job = user;
    return job->task == TASK_SEMANTIC ? score_semantic(c, job, item)
           : job->task == TASK_DEPTH  ? score_depth(c, job, item)
                                      : score_refseg(c, job, item);
}

static cJSON *number_or_null(double value) { return isfinite(value) ? cJSON_CreateNumber(value) : cJSON_CreateNull(); }

/* The metrics of a task into json, and its "summary"; 0, or 1 after printing what failed. */
static int semantic_summary(const eval_job *job, cJSON *json) {
    dmllm_seg_result *r = NULL;
    const dmllm_status status = dmllm_seg_metrics_result(job->seg, &r);
    if (status != DMLLM_OK) return cli_fail(status, "semantic metrics");
    cJSON_AddNumberToObject(json, "n_images", (double)r->n_images);
    cJSON_AddStringToObject(json, "readout", job->readout == DMLLM_READOUT_NAMED ? "named" : "all");
    cJSON_AddBoolToObject(json, "crf", job->crf.iterations > 0);
    cJSON_AddItemToObject(json, "mIoU", number_or_null(r->miou));
    cJSON_AddItemToObject(json, "mAcc", number_or_null(r->macc));
    cJSON_AddItemToObject(json, "aAcc", number_or_null(r->aacc));
    cJSON *classes = cJSON_AddArrayToObject(json, "classes");
    for (int k = 0; k < r->n_classes; k++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "name", job->class_names[k]);
        cJSON_AddItemToObject(item, "IoU", number_or_null(r->iou[k]));
        cJSON_AddItemToObject(item, "Acc", number_or_null(r->acc[k]));
        cJSON_AddItemToArray(classes, item);
    }
    char summary[96];
    snprintf(summary, sizeof summary, "mIoU %.4f, mAcc %.4f, aAcc %.4f over %lld images", r->miou,
             r->macc, r->aacc, (long long)r->n_images);
    cJSON_AddStringToObject(json, "summary", summary);
    dmllm_seg_result_free(r);
    const char **names = label_names(job);
    if (!names) return 1;
    cli_add_label_counts(json, job->predicted, job->n_classes + 1, names);
    free(names);
    return 0;
}

static int depth_summary(const eval_job *job, cJSON *json) {
    dmllm_depth_scores d = {.struct_size = sizeof d};
    const dmllm_status status = dmllm_depth_metrics_result(job->depth, &d);
    if (status != DMLLM_OK) return cli_fail(status, "depth metrics");
    cJSON_AddNumberToObject(json, "n_images", (double)d.n_images);
    cJSON_AddNumberToObject(json, "n_images_empty", (double)d.n_images_empty);
    const struct {
        const char *name;
        double value;
    } values[] = {{"delta1", d.delta1},     {"delta2", d.delta2}, {"delta3", d.delta3},
                  {"abs_rel", d.abs_rel},   {"sq_rel", d.sq_rel}, {"rmse", d.rmse},
                  {"rmse_log", d.rmse_log}, {"log10", d.log10},   {"silog", d.silog}};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        cJSON_AddItemToObject(json, values[i].name, number_or_null(values[i].value));
    char summary[96];
    snprintf(summary, sizeof summary, "delta1 %.4f, abs_rel %.4f over %lld images", d.delta1,
             d.abs_rel, (long long)d.n_images);
    cJSON_AddStringToObject(json, "summary", summary);
    return 0;
}

static int refseg_summary(const eval_job *job, cJSON *json) {
    dmllm_mask_scores m = {.struct_size = sizeof m};
    const dmllm_status status = dmllm_mask_metrics_result(job->masks, &m);
    if (status != DMLLM_OK) return cli_fail(status, "referring metrics");
    cJSON_AddNumberToObject(json, "n_samples", (double)m.n_samples);
    cJSON_AddNumberToObject(json, "cIoU", m.ciou);
    cJSON_AddNumberToObject(json, "gIoU", m.giou);
    char summary[96];
    snprintf(summary, sizeof summary, "cIoU %.4f, gIoU %.4f over %lld samples", m.ciou, m.giou,
             (long long)m.n_samples);
    cJSON_AddStringToObject(json, "summary", summary);
    return 0;
}

/* complete: every sample (of the shard) had a prediction and was scored. */
static int report_metrics(const cli_common *common, const eval_job *job, int complete) {
    static const char *const names[] = {"semantic", "depth", "refseg"};
    cJSON *json = cli_json_result("eval", job->dataset);
    if (!json) return cli_error("out of memory");
    const int failed_summary = job->task == TASK_SEMANTIC ? semantic_summary(job, json)
                               : job->task == TASK_DEPTH  ? depth_summary(job, json)
                                                          : refseg_summary(job, json);
    if (failed_summary) {
        cJSON_Delete(json);
        return 1;
    }
    cJSON_AddStringToObject(json, "task", names[job->task]);
    cJSON_AddStringToObject(json, "dataset", job->dataset);
    if (common->shard) cJSON_AddStringToObject(json, "shard", common->shard);
    cJSON_AddBoolToObject(json, "complete", complete);
    const char *path = cli_output_path(common, "metrics", ".json");
    cli_json_finish(json, &path, 1);
    char *text = cJSON_Print(json);
    int failed = text ? cli_write_text(path, text) : cli_error("out of memory");
    if (!failed) cli_print_result(common, json);
    cJSON_Delete(json);
    free(text);
    return failed;
}

/* ---- the command ----------------------------------------------------------------------------- */

static int parse_task(const char *name, eval_task *task) {
    static const char *const names[] = {"semantic", "depth", "refseg"};
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, names[i])) {
            *task = (eval_task)i;
            return 0;
        }
    fprintf(stderr, "densemllm eval: --task must be semantic, depth or refseg\n");
    return 2;
}

static int parse_crop(const char *name, dmllm_depth_crop *crop) {
    static const char *const names[] = {"none", "eigen", "garg"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *crop = (dmllm_depth_crop)i;
            return 0;
        }
    fprintf(stderr, "densemllm eval: --crop must be none, eigen or garg\n");
    return 2;
}

/* The depth options not given (min/max NaN, neither layout flag) from the readout profile's
 * "depth_evaluation" (lib/profile.h; the library checks its values when it loads the model), else
 * the report's NYUv2 protocol: prompt first, valid ground truth 0.001 .. 10 m. */
static int depth_defaults(eval_job *job, const char *model_dir) {
    if (job->image_first && job->prompt_first)
        return fprintf(stderr, "densemllm eval: --image-first and --prompt-first exclude each other\n"), 2;
    dmllm_depth_metrics_params protocol;
    dmllm_depth_metrics_params_init(&protocol);
    char *path = join_path(model_dir, "readout_profile.json");
    char *text = path ? read_text(path) : NULL;
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *given = cJSON_GetObjectItemCaseSensitive(root, "depth_evaluation");
    const cJSON *layout = cJSON_GetObjectItemCaseSensitive(given, "layout");
    const cJSON *range[2] = {cJSON_GetObjectItemCaseSensitive(given, "min_depth"),
                             cJSON_GetObjectItemCaseSensitive(given, "max_depth")};
    int failed = text && !root ? (fprintf(stderr, "densemllm eval: %s is not valid JSON\n", path), 2) : 0;
    if (!failed && ((given && !cJSON_IsObject(given)) || (layout && !cJSON_IsString(layout)) ||
                    (range[0] && !cJSON_IsNumber(range[0])) || (range[1] && !cJSON_IsNumber(range[1]))))
        failed = (fprintf(stderr, "densemllm eval: %s: \"depth_evaluation\" must be an object of a layout "
                                  "string and min_depth, max_depth numbers\n", path), 2);
    if (!failed && !job->image_first && !job->prompt_first)
        job->image_first = layout && !strcmp(layout->valuestring, "image_first");
    if (!failed && isnan(job->depth_params.min_depth))
        job->depth_params.min_depth = range[0] ? range[0]->valuedouble : protocol.min_depth;
    if (!failed && isnan(job->depth_params.max_depth))
        job->depth_params.max_depth = range[1] ? range[1]->valuedouble : protocol.max_depth;
    cJSON_Delete(root);
    free(text);
    free(path);
    return failed;
}

/* Checks the options of the task and opens its metrics accumulator. */
static int prepare(eval_job *job, const char *model_dir, const char *task, const char *classes_file,
                   const char *crop, int no_crf) {
    int failed = parse_task(task, &job->task);
    if (!failed && !(job->scale > 0.0f && job->scale <= 16.0f))
        failed = (fprintf(stderr, "densemllm eval: --scale must be in (0, 16]\n"), 2);
    if (!failed && (job->crf.iterations < 0 || job->crf.iterations > 1000))
        failed = (fprintf(stderr, "densemllm eval: --crf-iterations must be 0..1000\n"), 2);
    if (failed) return failed;
    if (no_crf) job->crf.iterations = 0;
    dmllm_status status = DMLLM_OK;
    switch (job->task) {
    case TASK_SEMANTIC:
        if (!classes_file) return fprintf(stderr, "densemllm eval: --task semantic needs --classes-file\n"), 2;
        if ((failed = read_classes(classes_file, job)) || (failed = check_image_folder(job))) return failed;
        job->seg_params.n_classes = job->n_classes;
        if (!(job->predicted = calloc((size_t)job->n_classes + 1, sizeof *job->predicted)))
            return cli_error("out of memory");
        status = dmllm_seg_metrics_create(&job->seg_params, &job->seg);
        break;
    case TASK_DEPTH:
        if ((failed = parse_crop(crop, &job->depth_params.crop))) return failed;
        if (!(job->depth_scale > 0.0f)) return fprintf(stderr, "densemllm eval: --depth-scale must be > 0\n"), 2;
        if ((failed = depth_defaults(job, model_dir)) || (failed = check_image_folder(job))) return failed;
        status = dmllm_depth_metrics_create(&job->depth_params, &job->depth);
        break;
    case TASK_REFSEG:
        if (job->generate.max_new_tokens < 1) return fprintf(stderr, "densemllm eval: --max-tokens must be >= 1\n"), 2;
        if ((failed = read_samples(job)) || (failed = check_samples(job))) return failed;
        status = dmllm_mask_metrics_create(&job->masks);
        break;
    }
    return status == DMLLM_OK ? 0 : (cli_fail(status, "the metrics options"), 2);
}

static int run_eval(int argc, char **argv) {
    eval_job job = {.scale = 1.0f, .depth_scale = 1000.0f, .readout = DMLLM_READOUT_NAMED};
    dmllm_seg_metrics_params_init(&job.seg_params);
    dmllm_depth_metrics_params_init(&job.depth_params);
    dmllm_crf_params_init(&job.crf);
    dmllm_generate_params_init(&job.generate);
    const char *task = NULL, *classes_file = NULL, *crop = "none", *readout = NULL;
    int no_crf = 0, metrics_only = 0;
    float min_depth = NAN, max_depth = NAN; /* not given: the profile's */
    const cli_option options[] = {
        {"--task", CLI_STRING, &task, "TASK", "semantic | depth | refseg (required)"},
        {"--metrics-only", CLI_FLAG, &metrics_only, NULL, "score the predictions already in --out"},
        {"--scale", CLI_FLOAT, &job.scale, "F", "up-scale inputs before the model (report: ADE20K 4, NYUv2 3); the CRF runs at that size"},
        {"--classes-file", CLI_STRING, &classes_file, "FILE", "semantic: class names, one per line, in GT order"},
        {"--reduce-zero-label", CLI_FLAG, &job.seg_params.reduce_zero_label, NULL,
         "semantic: GT 0 is ignored and v means class v-1 (raw ADE20K)"},
        {"--ignore-index", CLI_INT, &job.seg_params.ignore_index, "N", "semantic: GT value to ignore (default 255)"},
        {"--readout", CLI_STRING, &readout, "all|named",
         "semantic: argmax over the classes the model names first (default, the report's) or all"},
        {"--no-crf", CLI_FLAG, &no_crf, NULL, "semantic, refseg: argmax without the dense CRF"},
        {"--crf-iterations", CLI_INT, &job.crf.iterations, "N", "semantic, refseg: mean-field iterations (default 5)"},
        {"--depth-profile", CLI_STRING, &job.depth_profile, "NAME", "depth: bin quantisation (default: the profile's)"},
        {"--image-first", CLI_FLAG, &job.image_first, NULL,
         "depth: image before the prompt (default: the profile's depth_evaluation layout, else prompt first)"},
        {"--prompt-first", CLI_FLAG, &job.prompt_first, NULL, "depth: prompt before the image (the report's)"},
        {"--depth-scale", CLI_FLOAT, &job.depth_scale, "U", "depth: GT PNG units per metre (default 1000)"},
        {"--min-depth", CLI_FLOAT, &min_depth, "M", "depth: valid GT above this (default: the profile's, else 0.001)"},
        {"--max-depth", CLI_FLOAT, &max_depth, "M", "depth: valid GT below this (default: the profile's, else 10)"},
        {"--crop", CLI_STRING, &crop, "KIND", "depth: none | eigen (NYUv2 480x640) | garg (default none)"},
        {"--max-tokens", CLI_INT, &job.generate.max_new_tokens, "N", "refseg: longest grounding answer (default 4096)"},
        {0},
    };
    cli_common common;
    const int n = cli_parse(&cli_eval_command, argc, argv, options, &common);
    if (n < 0) return cli_parse_exit(n);
    if (n != 1) {
        fprintf(stderr, "densemllm eval: give exactly one DATASET (see --help)\n");
        return 2;
    }
    job.dataset = common.inputs[0];
    job.depth_params.min_depth = min_depth;
    job.depth_params.max_depth = max_depth;
    int exit_code = cli_parse_readout("eval", readout, &job.readout);
    if (!exit_code) exit_code = prepare(&job, common.model_dir, task, classes_file, crop, no_crf);
    /* The runner's inputs: the image folder, or the refseg sample ids. */
    char *images = exit_code ? NULL : join_path(job.dataset, "images");
    if (!exit_code && job.task == TASK_REFSEG) {
        common.inputs = job.sample_ids;
        common.n_inputs = job.n_samples;
    } else if (!exit_code) {
        common.inputs = &images;
        common.n_inputs = 1;
    }
    /* A sample's files: its JSON and prediction, named by its id (no task: one eval per --out). */
    static const char *const outputs[][3] = {{".json", ".labels.png", NULL},
                                             {".json", ".depth.npy", NULL},
                                             {".json", ".mask.png", NULL}};
    cli_context context = {.common = &common};
    if (!exit_code && !metrics_only) {
        const cli_batch predictions = {NULL, outputs[job.task], predict_one, &job, 1};
        exit_code = cli_open(&common, &context);
        if (!exit_code) exit_code = cli_for_each_input(&context, &predictions);
        cli_close(&context);
    }
    if (exit_code <= 1) {
        /* Scoring revisits every sample (of the shard) quietly and keeps no per-sample file. */
        cli_common scoring = common;
        scoring.resume = 0;
        scoring.quiet = 1;
        scoring.json = 0;
        context.common = &scoring;
        const cli_batch scores = {NULL, NULL, score_one, &job, 1};
        const int scoring_failed = cli_for_each_input(&context, &scores);
        const int reported = scoring_failed == 2 ? 2 : report_metrics(&common, &job, scoring_failed == 0);
        exit_code = reported ? reported : exit_code | scoring_failed;
    }
    free(images);
    free_job(&job);
    return exit_code;
}

const cli_command cli_eval_command = {
    .name = "eval",
    .summary = "dense benchmarks over a dataset (semantic mIoU, depth delta1/AbsRel, referring cIoU) as JSON",
    .synopsis = "densemllm eval --task semantic|depth|refseg [options] DATASET",
    .run = run_eval,
};
