/*
 * options.c: option tables and usage text shared by every densemllm command, and error printing.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char last_error[1024]; /* the message of the last cli_error, for the input's JSON */

int cli_error(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    cli_progress_clear();
    fprintf(stderr, "densemllm: %s\n", last_error);
    return 1;
}

const char *cli_last_error(void) { return last_error; }

void cli_error_reset(void) { last_error[0] = '\0'; }

int cli_fail(dmllm_status status, const char *what) {
    return cli_error("%s: %s: %s", what, dmllm_status_str(status), dmllm_last_error());
}

int cli_fail_session(dmllm_status status, const dmllm_session *session, const char *what) {
    return cli_error("%s: %s: %s", what, dmllm_status_str(status), dmllm_session_errmsg(session));
}

/* Standard input read to its end, but never more than max_encoded_bytes + 1 (0: no limit): one
 * byte past the limit is enough for dmllm_image_load_memory_ex to refuse it with its own message. */
static dmllm_status load_stdin(const dmllm_image_params *params, dmllm_image **out) {
    const size_t ceiling = params->max_encoded_bytes > 0 ? (size_t)params->max_encoded_bytes + 1 : SIZE_MAX;
    uint8_t *data = NULL; /* [capacity] the bytes read so far */
    size_t size = 0, capacity = 0;
    while (size < ceiling && !feof(stdin) && !ferror(stdin)) {
        if (size == capacity) {
            const size_t grown_capacity = capacity > ceiling / 2 ? ceiling : capacity ? 2 * capacity : 1 << 16;
            uint8_t *grown = realloc(data, grown_capacity);
            if (!grown) break;
            data = grown;
            capacity = grown_capacity;
        }
        size += fread(data + size, 1, capacity - size, stdin);
    }
    if (ferror(stdin) || (size == capacity && size < ceiling && !feof(stdin))) {
        fprintf(stderr, "densemllm: -: cannot read standard input: %s\n",
                ferror(stdin) ? strerror(errno) : "out of memory");
        free(data);
        return ferror(stdin) ? DMLLM_ERR_IO : DMLLM_ERR_OUT_OF_MEMORY;
    }
    const dmllm_status status = dmllm_image_load_memory_ex(data ? data : (const void *)"", size, params, out);
    free(data);
    return status;
}

dmllm_status cli_load_image(const cli_common *common, const char *path, dmllm_image **out) {
    dmllm_image_params params;
    dmllm_image_params_init(&params);
    params.max_pixels = common->max_image_pixels;
    params.memory_limit_bytes = common->memory_limit;
    if (strcmp(path, "-") == 0) return load_stdin(&params, out);
    return dmllm_image_load_file_ex(path, &params, out);
}

/* The common options plus the zeroed terminator. */
enum { COMMON_TABLE_SIZE = 15 };

static void common_table(cli_common *c, cli_option table[COMMON_TABLE_SIZE]) {
    const cli_option options[] = {
        {"--model", CLI_STRING, &c->model_dir, "DIR", cli_default_model_help},
        {"--out", CLI_STRING, &c->out_dir, "DIR", "output directory (default: .)"},
        {"--threads", CLI_INT, &c->n_threads, "N", "threads (default: all cores)"},
        {"--max-patches", CLI_PATCHES, &c->max_num_patches, "N|hf",
         "patch cap of the resize rule (default 8192, CPU-friendly; hf = 36864, the HF processor's)"},
        {"--max-image-pixels", CLI_INT64, &c->max_image_pixels, "N",
         "refuse images with more pixels, from their header (default 178956970, as PIL; 0: 2^28)"},
        {"--memory-limit", CLI_SIZE, &c->memory_limit, "SIZE",
         "refuse a step needing more memory: bytes, or 512M, 4G (default: none)"},
        {"--compute", CLI_STRING, &c->compute, "KIND", "auto|bf16|f32|openblas (default auto)"},
        {"--weights", CLI_STRING, &c->weights, "KIND", "auto|bf16|f32|int8 packed weights (default auto)"},
        {"--cache-dir", CLI_STRING, &c->cache_dir, "DIR",
         "packed-weight cache dir, or off (default: $DMLLM_CACHE_DIR, else ~/.cache/densemllm)"},
        {"--resize", CLI_STRING, &c->resize, "MODE", "hf|pillow resize filter (default hf)"},
        {"--shard", CLI_STRING, &c->shard, "I/N", "process only inputs k with k mod N = I"},
        {"--resume", CLI_FLAG, &c->resume, NULL, "skip inputs whose output files all exist"},
        {"--json", CLI_FLAG, &c->json, NULL, "print one JSON object per input on stdout"},
        {"--quiet", CLI_FLAG, &c->quiet, NULL,
         "no progress (on a terminal: a batch bar and a stage bar; elsewhere none, or with\n"
         "                         DMLLM_PROGRESS=1 one line per input; DMLLM_PROGRESS=0: none)"},
    };
    _Static_assert(sizeof options / sizeof options[0] < COMMON_TABLE_SIZE,
                   "COMMON_TABLE_SIZE has no room for the terminator");
    memcpy(table, options, sizeof options);
    memset(&table[sizeof options / sizeof options[0]], 0, sizeof table[0]);
}

static void print_options(FILE *out, const cli_option *options) {
    for (const cli_option *o = options; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(out, "  %-22s %s\n", left, o->help);
    }
}

static void print_usage(FILE *out, const cli_command *command, const cli_option *own, const cli_option *common) {
    fprintf(out, "usage: %s\n%s\n", command->synopsis, command->summary);
    if (own && own->name) {
        fprintf(out, "\noptions:\n");
        print_options(out, own);
    }
    if (common) {
        fprintf(out, "\ncommon options:\n");
        print_options(out, common);
    }
    if (command->outputs)
        fprintf(out,
                "\nfiles per input, in --out:\n  %s\n"
                "  <name> is the image's file name without its extension, or with it when two\n"
                "  inputs share that stem (photo.jpg.%s.json, photo.png.%s.json); `stdin` for -,\n"
                "  the image read from standard input; inputs that\n"
                "  would still write the same files (one file name in two folders) stop the run\n"
                "  before it starts. --resume skips an input when all its files exist; a run\n"
                "  removes the *.tmp.<pid> files that an interrupted run left.\n",
                command->outputs, command->name, command->name);
    fprintf(out, "\nresults:\n  %s\n", cli_json_schema_help);
    fprintf(out, "\nexit status: 0 every input done (or skipped), 1 an input or one of its files\n"
                 "failed, 2 bad usage; a signal ends the run and removes the files being written\n");
}

static const cli_option *find_option(const cli_option *options, const char *name) {
    for (const cli_option *o = options; o && o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

static int set_int(int *target, const char *value) {
    char *end = NULL;
    errno = 0;
    const long v = strtol(value, &end, 10);
    if (end == value || *end || errno || v < INT_MIN || v > INT_MAX) return -1;
    *target = (int)v;
    return 0;
}

static int set_value(const cli_option *o, const char *value) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_STRING: *(const char **)o->target = value; return 0;
    case CLI_FLAG: *(int *)o->target = 1; return 0;
    case CLI_FLAG_OFF: *(int *)o->target = 0; return 0;
    case CLI_INT: return set_int(o->target, value);
    case CLI_PATCHES:
        if (strcmp(value, "hf") != 0) return set_int(o->target, value);
        *(int *)o->target = DMLLM_HF_MAX_NUM_PATCHES;
        return 0;
    case CLI_INT64: {
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno || v < 0) return -1;
        *(int64_t *)o->target = v;
        return 0;
    }
    case CLI_SIZE: {
        long long v = strtoll(value, &end, 10);
        if (v < 0) return -1; /* before the unit's shift, which a negative value must not take */
        const char *units = "KMG";
        const char *unit = *end ? strchr(units, *end) : NULL;
        if (unit && end[1] == '\0') {
            int shift = 10 * (int)(unit - units + 1);
            if (v > (LLONG_MAX >> shift)) return -1;
            v <<= shift;
            end++;
        }
        if (end == value || *end || errno) return -1;
        *(int64_t *)o->target = v;
        return 0;
    }
    case CLI_FLOAT: {
        float v = strtof(value, &end);
        if (end == value || *end || errno || !isfinite(v)) return -1;
        *(float *)o->target = v;
        return 0;
    }
    }
    return -1;
}

int cli_parse(const cli_command *command, int argc, char **argv, const cli_option *own, cli_common *common) {
    cli_option common_options[COMMON_TABLE_SIZE];
    if (common) {
        memset(common, 0, sizeof *common);
        common->command = command->name;
        const char *from_env = getenv("DMLLM_MODEL");
        common->model_dir = from_env && *from_env ? from_env : cli_default_model_dir();
        common->out_dir = ".";
        common->max_num_patches = DMLLM_DEFAULT_MAX_NUM_PATCHES;
        common->max_image_pixels = DMLLM_DEFAULT_MAX_IMAGE_PIXELS;
        common->compute = "auto";
        common->weights = "auto";
        common->resize = "hf";
        common_table(common, common_options);
    }
    const cli_option *shared = common ? common_options : NULL;
    char **positional = argv + 1; /* compacted in place: argv[1 .. n_positional] */
    int n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            print_usage(stdout, command, own, shared);
            return CLI_HELP_SHOWN;
        }
        if (arg[0] != '-' || arg[1] == '\0') {
            positional[n_positional++] = argv[i];
            continue;
        }
        const cli_option *o = find_option(own, arg);
        if (!o) o = find_option(shared, arg);
        if (!o) {
            fprintf(stderr, "densemllm %s: unknown option %s (see --help)\n", command->name, arg);
            return CLI_USAGE_ERROR;
        }
        const char *value = NULL;
        if (o->kind != CLI_FLAG && o->kind != CLI_FLAG_OFF) {
            if (i + 1 >= argc) {
                fprintf(stderr, "densemllm %s: %s needs a value (%s)\n", command->name, arg, o->metavar);
                return CLI_USAGE_ERROR;
            }
            value = argv[++i];
        }
        if (set_value(o, value) != 0) {
            fprintf(stderr, "densemllm %s: %s %s: not a valid %s\n", command->name, arg, value, o->metavar);
            return CLI_USAGE_ERROR;
        }
    }
    if (common) {
        common->inputs = positional;
        common->n_inputs = n_positional;
    }
    return n_positional;
}

int cli_split_list(const char *text, char ***names, int *count, char **storage) {
    *names = NULL;
    *count = 0;
    *storage = strdup(text);
    if (!*storage) return -1;
    int capacity = 1;
    for (const char *c = text; *c; c++) capacity += *c == ',';
    *names = calloc((size_t)capacity, sizeof **names);
    if (!*names) return -1;
    for (char *item = strtok(*storage, ","); item; item = strtok(NULL, ",")) {
        while (*item == ' ') item++;
        char *end = item + strlen(item);
        while (end > item && end[-1] == ' ') *--end = '\0';
        if (*item) (*names)[(*count)++] = item;
    }
    return *count > 0 ? 0 : -1;
}
