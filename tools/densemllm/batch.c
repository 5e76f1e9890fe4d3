/*
 * batch.c: model and session set-up from the common options (with progress bars), and the batch
 * runner: input expansion, output names unique per input and task, --shard, --resume over each
 * input's complete outputs, files written atomically, temporary files removed on SIGINT/SIGTERM/
 * SIGHUP and after interrupted runs, one JSON result (result.c) or stdout line per input.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- clock ---------------------------------------------------------------------------------- */

double cli_now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- model and session ----------------------------------------------------------------------- */

typedef struct named_kind {
    const char *name;
    int value;
} named_kind;

/* The value of name in kinds (a {NULL} terminated list), or -1. */
static int parse_kind(const char *name, const named_kind *kinds) {
    for (; kinds->name; kinds++)
        if (!strcmp(name, kinds->name)) return kinds->value;
    return -1;
}

int cli_open(const cli_common *common, cli_context *context) {
    memset(context, 0, sizeof *context);
    context->common = common;
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    static const named_kind computes[] = {{"auto", DMLLM_COMPUTE_AUTO}, {"bf16", DMLLM_COMPUTE_BF16},
                                          {"f32", DMLLM_COMPUTE_F32}, {"openblas", DMLLM_COMPUTE_OPENBLAS}, {NULL, 0}};
    static const named_kind weights[] = {{"auto", DMLLM_WEIGHTS_AUTO}, {"bf16", DMLLM_WEIGHTS_BF16},
                                         {"f32", DMLLM_WEIGHTS_F32}, {"int8", DMLLM_WEIGHTS_INT8}, {NULL, 0}};
    const int compute = parse_kind(common->compute, computes), weight_kind = parse_kind(common->weights, weights);
    if (compute < 0) {
        fprintf(stderr, "densemllm: --compute %s: expected auto, bf16, f32 or openblas\n", common->compute);
        return 2;
    }
    if (weight_kind < 0) {
        fprintf(stderr, "densemllm: --weights %s: expected auto, bf16, f32 or int8\n", common->weights);
        return 2;
    }
    mp.compute = (dmllm_compute_type)compute;
    mp.weights = (dmllm_weights_type)weight_kind;
    if (strcmp(common->resize, "hf") && strcmp(common->resize, "pillow")) {
        fprintf(stderr, "densemllm: --resize %s: expected hf or pillow\n", common->resize);
        return 2;
    }
    sp.resize_mode = strcmp(common->resize, "hf") ? DMLLM_RESIZE_PILLOW : DMLLM_RESIZE_HF;
    mp.n_threads = sp.n_threads = common->n_threads;
    sp.max_num_patches = common->max_num_patches;
    mp.memory_limit_bytes = common->memory_limit; /* the session's 0 takes it */
    mp.cache_dir = common->cache_dir;
    cli_progress_init(common);
    mp.progress = sp.progress = cli_progress_stage;
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

int cli_is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    static const char *const extensions[] = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"};
    for (size_t i = 0; name[0] != '.' && dot && i < sizeof extensions / sizeof extensions[0]; i++)
        if (!strcasecmp(dot, extensions[i])) return 1;
    return 0;
}

static int add_directory(path_list *list, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *entry;
    int status = 0;
    while (status == 0 && (entry = readdir(d)))
        if (cli_is_image_name(entry->d_name)) {
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

/* The sorted inputs, each path once; a folder or list without images is an error. */
static int expand_inputs(const cli_common *common, path_list *list) {
    for (int i = 0; i < common->n_inputs; i++) {
        const char *input = common->inputs[i];
        const int before = list->count;
        struct stat st;
        int status, is_folder = 0;
        errno = 0;
        if (input[0] == '@') status = add_list_file(list, input + 1);
        else if (strcmp(input, "-") != 0 && stat(input, &st) == 0 && (is_folder = S_ISDIR(st.st_mode)))
            status = add_directory(list, input);
        else status = add_path(list, input);
        if (status != 0) {
            fprintf(stderr, "densemllm: %s: %s\n", input, strerror(errno ? errno : ENOMEM));
            return -1;
        }
        if (list->count == before) {
            fprintf(stderr, "densemllm: %s: %s\n", input,
                    is_folder ? "no images (.jpg, .jpeg, .png, .webp, .tif, .tiff, .bmp) in this folder"
                              : "the list names no images");
            return -1;
        }
    }
    qsort(list->paths, (size_t)list->count, sizeof *list->paths, compare_paths);
    int unique = 0;
    for (int k = 0; k < list->count; k++)
        if (unique > 0 && !strcmp(list->paths[k], list->paths[unique - 1])) free(list->paths[k]);
        else list->paths[unique++] = list->paths[k];
    list->count = unique;
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

const char *cli_output_path(const cli_common *common, const char *name, const char *suffix) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", common->out_dir, name, suffix);
    return path;
}

/* ---- temporary files ------------------------------------------------------------------------- */

/* The temporary files that may be being written, "<output>.tmp.<pid>" (the names of
 * write_through_temporary and of the library's PNG writers): a signal that ends the process
 * removes them. The handler, in whichever thread takes the signal, reads slots [0, n_in_flight);
 * a slot is written only while it lies outside that range, and never once a handler started. */
enum { MAX_IN_FLIGHT = 16 };
static char in_flight[MAX_IN_FLIGHT][4200]; /* [slot] "<output>.tmp.<pid>" */
static atomic_int n_in_flight, dying;

static void remove_in_flight_and_end(int sig) {
    atomic_store(&dying, 1);
    const int n = atomic_load(&n_in_flight);
    for (int i = 0; i < n; i++) unlink(in_flight[i]);
    raise(sig); /* SA_RESETHAND restored the default action: the process ends by the signal */
}

/* Signals ignored when the run started (nohup, a shell's background job) stay ignored. */
static void remove_in_flight_on_signals(void) {
    struct sigaction action, before;
    memset(&action, 0, sizeof action);
    action.sa_handler = remove_in_flight_and_end;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (sigaction(signals[i], NULL, &before) == 0 && before.sa_handler != SIG_IGN)
            sigaction(signals[i], &action, NULL);
}

/* Adds "<path>.tmp.<pid>" to the files a signal removes and returns it; NULL if it does not fit. */
static const char *hold_temporary(const char *path) {
    static int handling;
    if (!handling) remove_in_flight_on_signals();
    handling = 1;
    const int n = atomic_load(&n_in_flight);
    if (n == MAX_IN_FLIGHT) return NULL;
    while (atomic_load(&dying)) pause(); /* a handler may be reading the slot: the run is ending */
    const int length =
        snprintf(in_flight[n], sizeof in_flight[n], "%s.tmp.%ld", path, (long)getpid());
    if (length < 0 || length >= (int)sizeof in_flight[n]) return NULL;
    atomic_store(&n_in_flight, n + 1);
    return in_flight[n];
}

/* Forgets the temporary files held since n_in_flight was n. */
static void release_temporaries(int n) { atomic_store(&n_in_flight, n); }

/* Writes through "<path>.tmp.<pid>" and a rename, so a crash never leaves half a file. */
static int write_through_temporary(const char *path, const void *bytes, size_t size, int end_line) {
    const int held = atomic_load(&n_in_flight);
    const char *temporary = hold_temporary(path);
    if (!temporary) return cli_error("cannot write %s: %s", path, strerror(ENAMETOOLONG));
    FILE *f = fopen(temporary, "wb");
    int ok = f && fwrite(bytes, 1, size, f) == size && (!end_line || fputc('\n', f) != EOF);
    if (f) ok = (fclose(f) == 0) && ok;
    if (!ok || rename(temporary, path) != 0) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        remove(temporary);
        release_temporaries(held);
        return 1;
    }
    release_temporaries(held);
    return 0;
}

int cli_write_file(const char *path, const void *bytes, size_t size) {
    return write_through_temporary(path, bytes, size, 0);
}

int cli_write_text(const char *path, const char *text) { return write_through_temporary(path, text, strlen(text), 1); }

/* Removes OUT/<name><output>.tmp.<pid> of the given names (sorted) whose process is gone: what an
 * interrupted or killed run left. Files of a process still running (another shard) stay. */
static void remove_stale_temporaries(const cli_common *common, char **names, int n_names,
                                     const char *const *outputs) {
    DIR *d = opendir(common->out_dir);
    if (!d) return;
    int removed = 0;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        const char *mark = NULL; /* the last ".tmp." of the file name */
        for (const char *p = strstr(entry->d_name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) mark = p;
        char *end;
        const long pid = mark ? strtol(mark + 5, &end, 10) : 0;
        if (pid <= 0 || *end || !isdigit((unsigned char)mark[5])) continue;
        if (kill((pid_t)pid, 0) == 0 || errno == EPERM) continue;
        const size_t length = (size_t)(mark - entry->d_name); /* of the output's file name */
        for (const char *const *suffix = outputs; *suffix; suffix++) {
            const size_t n = strlen(*suffix);
            char name[1024];
            if (length <= n || length - n >= sizeof name || memcmp(mark - n, *suffix, n)) continue;
            memcpy(name, entry->d_name, length - n);
            name[length - n] = '\0';
            const char *key = name;
            if (!bsearch(&key, names, (size_t)n_names, sizeof *names, compare_paths)) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", common->out_dir, entry->d_name);
            removed += unlink(path) == 0;
            break;
        }
    }
    closedir(d);
    if (removed)
        fprintf(stderr, "densemllm: removed %d temporary file%s that an interrupted run left in %s\n",
                removed, removed == 1 ? "" : "s", common->out_dir);
}

/* ---- output names ---------------------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "-" (standard input) has no file name: its outputs are named "stdin". */
static char *stem_of(const char *path) {
    if (strcmp(path, "-") == 0) return strdup("stdin");
    char *stem = strdup(base_name(path));
    char *dot = stem ? strrchr(stem, '.') : NULL;
    if (dot && dot != stem) *dot = '\0';
    return stem;
}

typedef struct keyed_index {
    const char *key;
    int index;
} keyed_index;

static int compare_keyed(const void *a, const void *b) {
    const keyed_index *x = a, *y = b;
    const int order = strcmp(x->key, y->key);
    return order ? order : (x->index > y->index) - (x->index < y->index);
}

/* keys[k] of the n inputs sorted (ties by index) into order[n]. */
static void sort_keys(char *const *keys, int n, keyed_index *order) {
    for (int k = 0; k < n; k++) order[k] = (keyed_index){keys[k], k};
    qsort(order, (size_t)n, sizeof *order, compare_keyed);
}

/* ids[k] and names[k] of the sorted inputs (see cli_item), malloc'ed. Returns 0, 1 out of memory,
 * or 2 after naming two inputs that would write the same files. */
static int name_inputs(const path_list *list, const cli_common *common, const char *task,
                       char **ids, char **names) {
    const int n = list->count;
    keyed_index *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int status = order ? 0 : 1;
    for (int k = 0; !status && k < n; k++) status = (ids[k] = stem_of(list->paths[k])) ? 0 : 1;
    if (!status) sort_keys(ids, n, order);
    for (int i = 0; !status && i < n; i++) {
        const int k = order[i].index;
        const int shared = (i > 0 && !strcmp(order[i - 1].key, ids[k])) ||
                           (i + 1 < n && !strcmp(order[i + 1].key, ids[k]));
        const char *first = shared && strcmp(list->paths[k], "-") ? base_name(list->paths[k]) : ids[k];
        const size_t size = strlen(first) + (task ? strlen(task) + 1 : 0) + 1;
        if (!(names[k] = malloc(size))) status = 1;
        else snprintf(names[k], size, "%s%s%s", first, task ? "." : "", task ? task : "");
    }
    if (status) fprintf(stderr, "densemllm: out of memory\n");
    if (!status) sort_keys(names, n, order);
    for (int i = 1; !status && i < n; i++)
        if (!strcmp(order[i - 1].key, order[i].key)) {
            fprintf(stderr,
                    "densemllm: %s and %s would both write %s/%s.*: rename one or give them "
                    "different --out folders\n",
                    list->paths[order[i - 1].index], list->paths[order[i].index], common->out_dir,
                    order[i].key);
            status = 2;
        }
    free(order);
    return status;
}

static void free_names(char **names, int n) {
    for (int k = 0; names && k < n; k++) free(names[k]);
    free(names);
}

/* ---- the batch ------------------------------------------------------------------------------- */

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

/* Whether every output of the input is a complete file (temporary files are named apart). */
static int outputs_complete(const cli_common *common, const char *name,
                            const char *const *outputs) {
    for (const char *const *suffix = outputs; *suffix; suffix++) {
        struct stat st;
        if (stat(cli_output_path(common, name, *suffix), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    }
    return 1;
}

/* Runs one input with its outputs' temporary files held for the signal handler, and reports it
 * on stdout unless the batch is silent; 0 when done. */
static int run_item(cli_context *context, const cli_batch *batch, const cli_item *item) {
    const cli_common *common = context->common;
    const int held = atomic_load(&n_in_flight);
    enum { MAX_OUTPUTS = 8 };        /* the most files a command writes per input is 5 */
    const char *files[MAX_OUTPUTS]; /* the outputs' paths, malloc'ed */
    int n_files = 0;
    for (const char *const *suffix = batch->outputs; suffix && *suffix && n_files < MAX_OUTPUTS;
         suffix++) {
        const char *path = cli_output_path(common, item->name, *suffix);
        hold_temporary(path);
        files[n_files++] = strdup(path);
    }
    cli_error_reset();
    context->line_printed = 0;
    cJSON *json = cli_json_result(common->command, item->path);
    int failed = json ? 0 : cli_error("%s: out of memory", item->path);
    for (int i = 0; i < n_files && !failed; i++)
        if (!files[i]) failed = cli_error("%s: out of memory", item->path);
    if (!failed) failed = batch->fn(context, item, batch->user, json);
    char *text = NULL;
    if (!failed) {
        cli_json_finish(json, files, n_files);
        text = cJSON_PrintUnformatted(json);
        if (!text) failed = cli_error("%s: out of memory for the JSON result", item->path);
    }
    if (!failed && batch->outputs)
        failed = cli_write_text(cli_output_path(common, item->name, ".json"), text);
    if (failed && json) { /* the result fields so far are not the input's: only what failed */
        cJSON_Delete(json);
        json = cli_json_result(common->command, item->path);
        cJSON_AddStringToObject(json, "error", cli_last_error()[0] ? cli_last_error() : "failed");
        cli_json_finish(json, NULL, 0);
    }
    if (json && !batch->silent && !(context->line_printed && !common->json))
        cli_print_result(common, json);
    cJSON_Delete(json);
    free(text);
    for (int i = 0; i < n_files; i++) free((char *)files[i]);
    release_temporaries(held);
    return failed;
}

int cli_for_each_input(cli_context *context, const cli_batch *batch) {
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
    path_list list = {0};
    if (expand_inputs(common, &list) != 0) {
        free_paths(&list);
        return 1;
    }
    const int n = list.count;
    char **ids = calloc((size_t)n, sizeof *ids), **names = calloc((size_t)n, sizeof *names);
    char **mine = calloc((size_t)n, sizeof *mine); /* the names of this shard's inputs, sorted */
    int exit_code = ids && names && mine ? name_inputs(&list, common, batch->task, ids, names)
                                         : (fprintf(stderr, "densemllm: out of memory\n"), 1);
    if (exit_code == 0 && batch->outputs && make_directories(common->out_dir) != 0) {
        fprintf(stderr, "densemllm: --out %s: %s\n", common->out_dir, strerror(errno));
        exit_code = 1;
    }
    int n_mine = 0, done = 0, failed = 0, skipped = 0;
    for (int k = shard; exit_code == 0 && k < n; k += n_shards) mine[n_mine++] = names[k];
    if (exit_code == 0 && batch->outputs) {
        qsort(mine, (size_t)n_mine, sizeof *mine, compare_paths);
        remove_stale_temporaries(common, mine, n_mine, batch->outputs);
    }
    cli_progress_init(common);
    cli_progress_batch(n_mine);
    for (int k = shard; exit_code == 0 && k < n; k += n_shards) {
        if (common->resume && batch->outputs &&
            outputs_complete(common, names[k], batch->outputs)) {
            skipped++;
            cli_progress_finished(list.paths[k], 0, 0);
            continue;
        }
        cli_progress_item(list.paths[k]);
        const cli_item item = {list.paths[k], ids[k], names[k]};
        const int item_failed = run_item(context, batch, &item) != 0;
        failed += item_failed;
        done += !item_failed;
        cli_progress_finished(list.paths[k], 1, item_failed);
    }
    cli_progress_end();
    if (exit_code == 0 && (n_mine != 1 || skipped || failed))
        fprintf(stderr, "densemllm: %d done, %d skipped (already done), %d failed, shard %d/%d of %d "
                        "inputs\n", done, skipped, failed, shard, n_shards, n);
    if (exit_code == 0 && failed) exit_code = 1;
    free(mine);
    free_names(ids, n);
    free_names(names, n);
    free_paths(&list);
    return exit_code;
}
