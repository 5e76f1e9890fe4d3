/*
 * result.c: the JSON result every densemllm command gives per input (printed with --json, kept
 * as OUT/<name>.json) and its one-line text form; the shape is CLI_JSON_SCHEMA, described in
 * cli_json_schema_help (each command's --help) and docs/cli-json.md.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *const cli_json_schema_help =
    "--json prints one JSON object per input on one line (kept as <name>.json too); each has\n"
    "  \"schema\" (1), \"command\", \"input\", \"files\" (paths written), \"labels\"\n"
    "  ({\"<label value>\": class name}), \"shares\" ({\"<label value>\": share of the pixels, 0\n"
    "  included}; both {} without a label map) and \"summary\", or \"error\" for a failed input.\n"
    "  Without --json, stdout has one line per input, \"<input>: <summary>\" (\"<input>: error:\n"
    "  <message>\"); eval's one input is the dataset (its metrics); readout, info and bench\n"
    "  print a report. Details: docs/cli-json.md.";

cJSON *cli_json_result(const char *command, const char *input) {
    cJSON *json = cJSON_CreateObject();
    cJSON_AddNumberToObject(json, "schema", CLI_JSON_SCHEMA);
    cJSON_AddStringToObject(json, "command", command);
    cJSON_AddStringToObject(json, "input", input);
    return json;
}

void cli_json_finish(cJSON *json, const char *const *files, int n_files) {
    cJSON *list = cJSON_AddArrayToObject(json, "files");
    for (int i = 0; i < n_files; i++) cJSON_AddItemToArray(list, cJSON_CreateString(files[i]));
    if (!cJSON_HasObjectItem(json, "labels")) cJSON_AddObjectToObject(json, "labels");
    if (!cJSON_HasObjectItem(json, "shares")) cJSON_AddObjectToObject(json, "shares");
}

void cli_add_label_counts(cJSON *json, const size_t *counts, int n_labels,
                          const char *const *names) {
    cJSON *map = cJSON_AddObjectToObject(json, "labels");
    cJSON *shares = cJSON_AddObjectToObject(json, "shares");
    size_t total = 0;
    for (int k = 0; k < n_labels; k++) total += counts[k];
    for (int k = 0; k < n_labels; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        cJSON_AddStringToObject(map, key, names[k] ? names[k] : "");
        cJSON_AddNumberToObject(shares, key, total ? (double)counts[k] / (double)total : 0.0);
    }
}

int cli_add_label_map(cJSON *json, const uint16_t *labels, size_t n, int n_labels,
                      const char *const *names) {
    size_t *counts = calloc((size_t)(n_labels > 0 ? n_labels : 1), sizeof *counts); /* [n_labels] */
    if (!counts) return cli_error("out of memory");
    for (size_t i = 0; i < n; i++)
        if (labels[i] < n_labels) counts[labels[i]]++;
    cli_add_label_counts(json, counts, n_labels, names);
    free(counts);
    return 0;
}

/* Larger share first; equal shares by label value. */
static int by_share(const void *a, const void *b) {
    const cJSON *p = *(cJSON *const *)a, *q = *(cJSON *const *)b;
    const double x = p->valuedouble, y = q->valuedouble;
    const int order = (x < y) - (x > y);
    return order ? order : (atoi(p->string) > atoi(q->string)) - (atoi(p->string) < atoi(q->string));
}

/* The name of a label value (a key of "labels"). */
static const char *label_name(const cJSON *map, const char *key) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(map, key));
    return name ? name : "";
}

void cli_add_share_summary(cJSON *json, const char *prefix) {
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(json, "labels");
    const cJSON *shares = cJSON_GetObjectItemCaseSensitive(json, "shares");
    const int n = cJSON_GetArraySize(shares);
    cJSON **order = malloc(sizeof *order * (size_t)(n > 0 ? n : 1)); /* [n] nonzero shares */
    size_t size = strlen(prefix) + 1;
    int used = 0;
    for (const cJSON *s = shares ? shares->child : NULL; order && s; s = s->next)
        if (s->valuedouble > 0.0) {
            order[used++] = (cJSON *)s;
            size += strlen(label_name(map, s->string)) + 16;
        }
    char *text = order ? malloc(size) : NULL;
    if (text) {
        qsort(order, (size_t)used, sizeof *order, by_share);
        size_t length = (size_t)snprintf(text, size, "%s", prefix);
        for (int i = 0; i < used; i++)
            length += (size_t)snprintf(text + length, size - length, "%s%s %.1f%%", i ? ", " : "",
                                       label_name(map, order[i]->string),
                                       100.0 * order[i]->valuedouble);
        cJSON_AddStringToObject(json, "summary", text);
    }
    free(text);
    free(order);
}

void cli_print_result(const cli_common *common, const cJSON *json) {
    cli_progress_clear(); /* stdout and stderr may be one terminal */
    if (common->json) {
        char *text = cJSON_PrintUnformatted(json);
        if (text) printf("%s\n", text);
        free(text);
    } else {
        const char *input = cJSON_GetStringValue(cJSON_GetObjectItem(json, "input"));
        const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(json, "error"));
        const char *summary = cJSON_GetStringValue(cJSON_GetObjectItem(json, "summary"));
        printf("%s: %s", input ? input : "", error ? "error: " : "");
        for (const char *c = error ? error : summary ? summary : ""; *c; c++)
            putchar(*c == '\n' || *c == '\r' ? ' ' : *c);
        putchar('\n');
    }
    fflush(stdout);
}
