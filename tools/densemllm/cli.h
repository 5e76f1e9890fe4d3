/*
 * cli.h: the densemllm command-line tool: a table of subcommands, each in its own file, sharing
 * option parsing, model/session set-up with progress bars (progress.c), the batch runner (inputs
 * from files, folders or lists; --shard i/n; resumable output) and the JSON result every input
 * gets (result.c). Commands use only the public header.
 */
#ifndef DMLLM_CLI_H
#define DMLLM_CLI_H

#include "densemllm.h"

#include <stdio.h>

typedef struct cli_command {
    const char *name;
    const char *summary;
    const char *synopsis;               /* "densemllm NAME ..." line of the usage */
    int (*run)(int argc, char **argv);  /* argv[0] is the command name; returns the exit code */
    const char *outputs;                /* --help: the files one input writes, or NULL */
} cli_command;

extern const cli_command cli_info_command, cli_readout_command, cli_segment_command, cli_depth_command,
    cli_ask_command, cli_ground_command, cli_detect_command, cli_refseg_command, cli_openseg_command,
    cli_features_command;
extern const cli_command cli_eval_command, cli_bench_command;

/* ---- options --------------------------------------------------------------------------------- */
/* CLI_FLAG sets 1, CLI_FLAG_OFF 0; CLI_PATCHES: an int, or "hf" for DMLLM_HF_MAX_NUM_PATCHES;
 * CLI_SIZE: bytes as an int64_t, written N, NK, NM or NG (binary units). */
typedef enum cli_option_kind {
    CLI_STRING, CLI_INT, CLI_FLOAT, CLI_FLAG, CLI_FLAG_OFF, CLI_PATCHES, CLI_INT64, CLI_SIZE
} cli_option_kind;

typedef struct cli_option {
    const char *name;       /* "--classes" */
    cli_option_kind kind;
    void *target;           /* const char **, int *, float *, int * (flag, patches), int64_t * */
    const char *metavar;    /* "LIST"; NULL for flags */
    const char *help;
} cli_option;

/* --crf / --no-crf of the segmentation commands, on an int that starts as DMLLM_FROM_PROFILE
 * (the model's profile decides: on where the official demo refines with the CRF). */
#define CLI_CRF_OPTIONS(target)                                                                     \
    {"--crf", CLI_FLAG, (target), NULL, "refine with the dense CRF (default: the profile's; on for youtu_vl)"}, \
    {"--no-crf", CLI_FLAG_OFF, (target), NULL, "no dense CRF: plain argmax, faster"}
/* --alpha of the commands that blend colours over the photo; cli_check_alpha() checks the value. */
#define CLI_ALPHA_OPTION(target) \
    {"--alpha", CLI_FLOAT, (target), "A", "weight of the colours over the photo, 0..1 (default 0.5)"}

/* Options of every command that runs the model. */
typedef struct cli_common {
    const char *command;    /* the command's name, set by cli_parse (JSON "command") */
    const char *model_dir;  /* --model; default: $DMLLM_MODEL, else cli_default_model_dir() */
    int n_threads;          /* --threads; 0 = all cores */
    int max_num_patches;    /* --max-patches N | hf */
    int64_t max_image_pixels; /* --max-image-pixels: dmllm_image_params.max_pixels */
    int64_t memory_limit;   /* --memory-limit: the model's, sessions' and decoding memory_limit_bytes */
    const char *compute;    /* --compute auto|bf16|f32|openblas */
    const char *weights;    /* --weights auto|bf16|f32|int8 */
    const char *cache_dir;  /* --cache-dir: dmllm_model_params.cache_dir; NULL: the default */
    const char *resize;     /* --resize hf|pillow */
    const char *out_dir;    /* --out; default "." */
    const char *shard;      /* --shard i/n */
    int resume;             /* --resume: skip inputs whose outputs all exist */
    int json;               /* --json: one JSON object per input on stdout */
    int quiet;              /* --quiet: no progress bars */
    int n_inputs;           /* positional arguments */
    char **inputs;
} cli_common;

enum { CLI_HELP_SHOWN = -1, CLI_USAGE_ERROR = -2 };

/* Parses argv against the command's own options (ended by a zeroed entry) plus the common ones
 * when common != NULL. Positional arguments are moved to argv[1 .. n] (and common->inputs).
 * Returns n >= 0, CLI_HELP_SHOWN after printing --help, or CLI_USAGE_ERROR after printing what is
 * wrong; cli_parse_exit() turns the negative ones into exit codes. */
int cli_parse(const cli_command *command, int argc, char **argv, const cli_option *own, cli_common *common);

static inline int cli_parse_exit(int parsed) { return parsed == CLI_HELP_SHOWN ? 0 : 2; }

/* Decodes an input image within --max-image-pixels and --memory-limit (other limits: defaults). */
dmllm_status cli_load_image(const cli_common *common, const char *path, dmllm_image **out);
/* The default model when neither --model nor $DMLLM_MODEL is given: the installed one,
 * <dir of the executable>/../share/densemllm/models/tiny, else (a build tree) the source tree's
 * models/tiny, whichever exists first; the installed location when neither does. */
const char *cli_default_model_dir(void);
extern const char *const cli_default_model_help; /* --model's line of --help: this order */

/* Prints "densemllm: <message>" to stderr (clearing the live progress bars first) and keeps the
 * message for the failed input's JSON ("error"); returns exit code 1. */
int cli_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* The message of the last cli_error since cli_error_reset(), "" for none. */
const char *cli_last_error(void);
void cli_error_reset(void);
/* cli_error("<what>: <status text>: <library message>"); returns exit code 1. */
int cli_fail(dmllm_status status, const char *what);
/* Same with the session's message. */
int cli_fail_session(dmllm_status status, const dmllm_session *session, const char *what);

/* ---- model, session, batch ------------------------------------------------------------------- */
typedef struct cli_context {
    const cli_common *common;
    dmllm_model *model;
    dmllm_session *session;
    int line_printed; /* set by an item function that printed the input's stdout line itself
                         (ask --stream); the runner then prints none */
} cli_context;

int cli_open(const cli_common *common, cli_context *context);
void cli_close(cli_context *context);

/* One input of a batch. */
typedef struct cli_item {
    const char *path; /* the image (eval refseg: the sample id) */
    const char *id;   /* its file name without the extension: "photo" for "in/photo.jpg" */
    const char *name; /* the start of its output names, OUT/<name><suffix>: "<id>.<task>", or
                         "<file name>.<task>" ("photo.jpg.segment") when another input of the
                         batch has the same id */
} cli_item;

/* Runs one input: adds the command's fields to json, an object that already holds "schema",
 * "command" and "input" (see CLI_JSON_SCHEMA_HELP), among them "summary" and, for a label map,
 * cli_add_label_map's "labels" and "shares". Returns 0 on success (then the runner adds "files",
 * writes OUT/<name>.json and prints the object with --json, else "<input>: <summary>"). */
struct cJSON;
typedef int (*cli_item_fn)(cli_context *context, const cli_item *item, void *user,
                           struct cJSON *json);

typedef struct cli_batch {
    const char *task;           /* part of every output name; NULL: the names are the ids (eval) */
    const char *const *outputs; /* suffixes of every file fn writes for one input, ".json"
                                   included, NULL-ended; NULL: the batch writes no files */
    cli_item_fn fn;
    void *user;
    int silent;                 /* 1: nothing on stdout per input (eval: its one result is the
                                   dataset's metrics) */
} cli_batch;

/* Expands the inputs (image files, folders of images, @list files with one path per line) into a
 * sorted list, names their outputs (refusing, exit code 2, when two inputs would write the same
 * files), keeps the inputs of this shard (index k belongs to shard k mod n), removes the temporary
 * files that interrupted runs left of their outputs, with --resume skips the inputs whose outputs
 * all exist, and runs fn on each with a progress counter. An input fails when fn fails or its
 * JSON cannot be written. SIGINT, SIGTERM and SIGHUP remove the temporary files being written
 * before the process ends. Returns the exit code: 0 all done, 1 an input failed, 2 usage. */
int cli_for_each_input(cli_context *context, const cli_batch *batch);
/* Whether a folder entry is an image the batch takes: not hidden, extension CLI_IMAGE_EXTENSIONS
 * (any case). */
int cli_is_image_name(const char *name);
#define CLI_IMAGE_EXTENSIONS ".jpg, .jpeg, .png, .webp, .tif, .tiff or .bmp"

/* OUT/<name><suffix>; returns a static buffer. */
const char *cli_output_path(const cli_common *common, const char *name, const char *suffix);

/* OUT/<name>.labels.png (palette label map) and OUT/<name>.overlay.png (the image blended with the
 * label colours, legend from names; alpha, background label and boxes from overlay); prints what
 * failed and returns 1, else 0. */
int cli_write_label_pngs(const cli_common *common, const dmllm_image *image, const char *name,
                         const uint16_t *labels, int n_labels, const char *const *names,
                         const dmllm_overlay_params *overlay);

/* The --alpha option's check: prints the problem and returns 2 (usage) when alpha is outside
 * [0, 1], else 0. */
int cli_check_alpha(const char *command, float alpha);

/* --readout all|named of segment and eval into dmllm_dense_params.readout (a NULL text leaves it);
 * prints what is wrong and returns 2, else 0. */
int cli_parse_readout(const char *command, const char *text, int *readout);
/* What a semantic result's label values stand for, as JSON fields: "readout", "classes" (name and
 * prompt_index, -1 for a name outside the prompt, per label value), "named_fallback", "reply". */
void cli_add_semantic_classes(struct cJSON *json, const dmllm_dense_result *r);

/* ---- JSON results ---------------------------------------------------------------------------- */
/* Version of the shape every JSON result of the CLI has; raised when a field changes meaning or
 * goes away (new fields do not raise it). */
enum { CLI_JSON_SCHEMA = 1 };
/* The shape, for --help (options.c) and docs/cli-json.md. */
extern const char *const cli_json_schema_help;
/* {"schema": CLI_JSON_SCHEMA, "command": command, "input": input}: the start of every result. */
struct cJSON *cli_json_result(const char *command, const char *input);
/* Adds "files" (paths, in order; n_files may be 0) and "labels" / "shares" as {} when the command
 * made no label map, so every result has them. */
void cli_json_finish(struct cJSON *json, const char *const *files, int n_files);
/* "labels": {"<value>": name} for the label values 0 .. n_labels-1 of a map, and "shares":
 * {"<value>": fraction of the n entries of labels[n] holding it}, every value, 0 included.
 * Returns 0, or 1 after cli_error (out of memory). */
int cli_add_label_map(struct cJSON *json, const uint16_t *labels, size_t n, int n_labels,
                      const char *const *names);
/* The same from counts[n_labels] of each value (shares: fractions of their sum). */
void cli_add_label_counts(struct cJSON *json, const size_t *counts, int n_labels,
                          const char *const *names);
/* "summary": "name 61.0%, name 12.5%, ..." the labels with a nonzero share, largest first, after
 * prefix (may be ""). */
void cli_add_share_summary(struct cJSON *json, const char *prefix);
/* Prints the result on stdout: the JSON object on one line with --json, else
 * "<input>: <summary>" with line breaks of the summary as spaces (one line either way). */
void cli_print_result(const cli_common *common, const struct cJSON *json);

/* ---- progress (progress.c) ------------------------------------------------------------------- */
/* Decides the display from --quiet, DMLLM_PROGRESS (0: none, 1: one plain line per input when
 * stderr is not a terminal) and whether stderr is a terminal (live bars). */
void cli_progress_init(const cli_common *common);
int cli_progress_live(void);
/* The library's progress callback: the stage bar under the batch bar. */
int cli_progress_stage(const char *stage, int done, int total, void *user_data);
/* A batch of total inputs starts; input current starts; an input ends (ran: 0 when skipped). */
void cli_progress_batch(int total);
void cli_progress_item(const char *current);
void cli_progress_finished(const char *input, int ran, int failed);
/* Erases the live bars (before other output on the terminal); they return at the next update. */
void cli_progress_clear(void);
/* Erases the bars for good at the end of a batch. */
void cli_progress_end(void);

/* Monotonic clock in seconds, for the timings commands print. */
double cli_now_seconds(void);

/* Write a file through "<path>.tmp.<pid>" and a rename (a crash never leaves half a file, a signal
 * removes the temporary file); print what failed and return 1, else 0. cli_write_text ends the
 * text with a newline. */
int cli_write_file(const char *path, const void *bytes, size_t size);
int cli_write_text(const char *path, const char *text);

/* Splits "a, b ,c" at commas into trimmed names (malloc'ed array of pointers into a malloc'ed copy). */
int cli_split_list(const char *text, char ***names, int *count, char **storage);

#endif
