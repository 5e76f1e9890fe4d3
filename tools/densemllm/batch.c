/*
 * batch.c: model and session set-up from the common options (with progress bars), and the batch
 * runner: input expansion, --shard, --resume, one JSON result per input written atomically.
 */
#include "cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- progress bars --------------------------------------------------------------------------- */

static int progress_bar(const char *stage, int done, int total, void *user_data) {
    (void)user_data;
    if (total <= 0) return 0;
    enum { WIDTH = 30 };
    const int filled = (int)((long long)WIDTH * done / total);
    fprintf(stderr, "\r%-8s [%.*s%*s] %3d%%", stage, filled, "##############################", WIDTH - filled, "",
            (int)(100LL * done / total));
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
    return 0;
}

static int progress_wanted(const cli_common *common) {
    const char *forced = getenv("DMLLM_PROGRESS");
    return !common->quiet && ((forced && *forced == '1') || isatty(STDERR_FILENO));
}

double cli_now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- model and session ----------------------------------------------------------------------- */

static int parse_compute(const char *name, dmllm_compute_type *out) {
    static const struct { const char *name; dmllm_compute_type type; } kinds[] = {
        {"auto", DMLLM_COMPUTE_AUTO}, {"bf16", DMLLM_COMPUTE_BF16}, {"f32", DMLLM_COMPUTE_F32},
        {"openblas", DMLLM_COMPUTE_OPENBLAS}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(name, kinds[i].name)) {
            *out = kinds[i].type;
            return 0;
        }
    return -1;
}

int cli_open(const cli_common *common, cli_context *context) {
    memset(context, 0, sizeof *context);
    context->common = common;
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    if (parse_compute(common->compute, &mp.compute) != 0) {
        fprintf(stderr, "densemllm: --compute %s: expected auto, bf16, f32 or openblas\n", common->compute);
        return 2;
    }
    if (strcmp(common->resize, "hf") && strcmp(common->resize, "pillow")) {
        fprintf(stderr, "densemllm: --resize %s: expected hf or pillow\n", common->resize);
        return 2;
    }
    sp.resize_mode = strcmp(common->resize, "hf") ? DMLLM_RESIZE_PILLOW : DMLLM_RESIZE_HF;
    mp.n_threads = sp.n_threads = common->n_threads;
    sp.max_num_patches = common->max_num_patches;
    if (progress_wanted(common)) mp.progress = sp.progress = progress_bar;
    dmllm_status status = dmllm_model_load(common->model_dir, &mp, &context->model);
    if (status != DMLLM_OK) return cli_fail(status, common->model_dir);
    status = dmllm_session_create(context->model, &sp, &context->session);
    if (status != DMLLM_OK) {
        cli_close(context);
        return cli_fail(status, "creating a session");
    }
    return 0;
}

void cli_close(cli_context *context) {
    dmllm_session_free(context->session);
    dmllm_model_free(context->model);
    context->session = NULL;
    context->model = NULL;
}

/* ---- inputs ---------------------------------------------------------------------------------- */

typedef struct path_list {
    char **paths;
    int count, capacity;
} path_list;

static int add_path(path_list *list, const char *path) {
    if (list->count == list->capacity) {
        int capacity = list->capacity ? 2 * list->capacity : 64;
        char **grown = realloc(list->paths, (size_t)capacity * sizeof *grown);
        if (!grown) return -1;
        list->paths = grown;
        list->capacity = capacity;
    }
    if (!(list->paths[list->count] = strdup(path))) return -1;
    list->count++;
    return 0;
}

static void free_paths(path_list *list) {
    for (int i = 0; i < list->count; i++) free(list->paths[i]);
    free(list->paths);
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int add_directory(path_list *list, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *entry;
    int status = 0;
    while (status == 0 && (entry = readdir(d)))
        if (entry->d_name[0] != '.' && is_image_name(entry->d_name)) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
            status = add_path(list, path);
        }
    closedir(d);
    return status;
}

static int add_list_file(path_list *list, const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    char line[4096];
    int status = 0;
    while (status == 0 && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n && line[0] != '#') status = add_path(list, line);
    }
    fclose(f);
    return status;
}

static int compare_paths(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int expand_inputs(const cli_common *common, path_list *list) {
    for (int i = 0; i < common->n_inputs; i++) {
        const char *input = common->inputs[i];
        struct stat st;
        int status;
        if (input[0] == '@') status = add_list_file(list, input + 1);
        else if (stat(input, &st) == 0 && S_ISDIR(st.st_mode)) status = add_directory(list, input);
        else status = add_path(list, input);
        if (status != 0) {
            fprintf(stderr, "densemllm: %s: %s\n", input, strerror(errno ? errno : ENOMEM));
            return -1;
        }
    }
    qsort(list->paths, (size_t)list->count, sizeof *list->paths, compare_paths);
    return 0;
}

static int parse_shard(const char *text, int *index, int *count) {
    *index = 0;
    *count = 1;
    if (!text) return 0;
    char tail;
    if (sscanf(text, "%d/%d%c", index, count, &tail) != 2 || *count < 1 || *index < 0 || *index >= *count) return -1;
    return 0;
}

const char *cli_output_path(const cli_common *common, const char *stem, const char *suffix) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", common->out_dir, stem, suffix);
    return path;
}

/* Writes through "<path>.tmp.<pid>" and a rename, so a crash never leaves half a file. */
static int write_through_temporary(const char *path, const void *bytes, size_t size, int end_line) {
    char temporary[4200];
    snprintf(temporary, sizeof temporary, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(temporary, "wb");
    int ok = f && fwrite(bytes, 1, size, f) == size && (!end_line || fputc('\n', f) != EOF);
    if (f) ok = (fclose(f) == 0) && ok;
    if (!ok || rename(temporary, path) != 0) {
        fprintf(stderr, "densemllm: cannot write %s: %s\n", path, strerror(errno));
        remove(temporary);
        return 1;
    }
    return 0;
}

int cli_write_file(const char *path, const void *bytes, size_t size) {
    return write_through_temporary(path, bytes, size, 0);
}

int cli_write_text(const char *path, const char *text) { return write_through_temporary(path, text, strlen(text), 1); }

static void stem_of(const char *path, char *stem, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(stem, size, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
}

/* mkdir -p: every missing directory of the path. */
static int make_directories(const char *path) {
    char partial[4096];
    if (snprintf(partial, sizeof partial, "%s", path) >= (int)sizeof partial) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *slash = strchr(partial + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash) *slash = '\0';
        if (mkdir(partial, 0777) != 0 && errno != EEXIST) return -1;
        if (!slash) return 0;
        *slash = '/';
    }
}

int cli_for_each_input(cli_context *context, cli_item_fn fn, void *user) {
    const cli_common *common = context->common;
    int shard, n_shards;
    if (parse_shard(common->shard, &shard, &n_shards) != 0) {
        fprintf(stderr, "densemllm: --shard %s: expected I/N with 0 <= I < N\n", common->shard);
        return 2;
    }
    if (common->n_inputs == 0) {
        fprintf(stderr, "densemllm: no input images given\n");
        return 2;
    }
    if (make_directories(common->out_dir) != 0) {
        fprintf(stderr, "densemllm: --out %s: %s\n", common->out_dir, strerror(errno));
        return 1;
    }
    path_list list = {0};
    if (expand_inputs(common, &list) != 0) {
        free_paths(&list);
        return 1;
    }
    int mine = 0, done = 0, failed = 0, skipped = 0;
    for (int k = shard; k < list.count; k += n_shards) mine++;
    const int show = progress_wanted(common) && mine > 1;
    for (int k = shard; k < list.count; k += n_shards) {
        char stem[1024];
        stem_of(list.paths[k], stem, sizeof stem);
        const char *marker = cli_output_path(common, stem, ".json");
        struct stat st;
        if (common->resume && stat(marker, &st) == 0) {
            skipped++;
            continue;
        }
        if (show) fprintf(stderr, "[%d/%d] %s\n", done + failed + skipped + 1, mine, list.paths[k]);
        char *json = NULL;
        if (fn(context, list.paths[k], stem, user, &json) != 0) {
            failed++;
        } else {
            done++;
            if (json && common->json) printf("%s\n", json);
            if (json) cli_write_text(cli_output_path(common, stem, ".json"), json);
        }
        free(json);
    }
    if (mine > 1 || skipped || failed)
        fprintf(stderr, "densemllm: %d done, %d skipped (already done), %d failed, shard %d/%d of %d inputs\n", done,
                skipped, failed, shard, n_shards, list.count);
    free_paths(&list);
    return failed ? 1 : 0;
}
