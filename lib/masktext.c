/*
 * masktext.c: the official dense text of Youtu-VL (model-spec 6.1), both ways: a label map to
 * "<ref>name</ref>...<mask>(v,n)(v,n)...</mask>" and such text (or the demo's expanded
 * "<mask>v,v,...</mask>") back to a map. Pure string work on caller buffers; no model, no files.
 */
#include "masktext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------------------------------- */

static size_t decimal_digits(uint32_t v) {
    size_t n = 1;
    for (; v >= 10; v /= 10) n++;
    return n;
}

/* End of the run of values equal to labels[start]. */
static size_t run_end(const uint16_t *labels, size_t n, size_t start) {
    size_t end = start + 1;
    while (end < n && labels[end] == labels[start]) end++;
    return end;
}

dmllm_status dmllm_mask_text_write(const uint16_t *labels, int width, int height, const char *const *names,
                                   int n_labels, char **out_text) {
    static const char fn[] = "dmllm_mask_text_write";
    if (!out_text) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: out_text is NULL", fn);
    *out_text = NULL;
    if (!labels) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: labels is NULL", fn);
    if (width <= 0 || height <= 0 || (int64_t)width * height > DMLLM_MASK_TEXT_MAX_VALUES)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: map size %dx%d is empty or above %lld values", fn, width,
                          height, (long long)DMLLM_MASK_TEXT_MAX_VALUES);
    if (n_labels < 1 || n_labels > DMLLM_MASK_TEXT_MAX_VALUE + 1)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: n_labels %d is outside 1..%d", fn, n_labels,
                          DMLLM_MASK_TEXT_MAX_VALUE + 1);
    const size_t n = (size_t)width * height;
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= n_labels)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: label %u at (x %zu, y %zu) is not below n_labels = %d", fn,
                              labels[i], i % (size_t)width, i / (size_t)width, n_labels);
    /* Sized exactly first, so the text is built in one allocation. */
    size_t length = strlen("<mask></mask>");
    for (int i = 0; names && i < n_labels; i++) {
        if (!names[i]) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: names[%d] is NULL", fn, i);
        if (strstr(names[i], "</ref>"))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: names[%d] \"%s\" holds \"</ref>\"", fn, i, names[i]);
        length += strlen("<ref></ref>") + strlen(names[i]);
    }
    for (size_t start = 0, end; start < n; start = end) {
        end = run_end(labels, n, start);
        length += strlen("(,)") + decimal_digits(labels[start]) + decimal_digits((uint32_t)(end - start));
    }
    char *text = malloc(length + 1); /* [length + 1] */
    if (!text) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of text", fn, length + 1);
    char *p = text;
    for (int i = 0; names && i < n_labels; i++) p += sprintf(p, "<ref>%s</ref>", names[i]);
    p += sprintf(p, "<mask>");
    for (size_t start = 0, end; start < n; start = end) {
        end = run_end(labels, n, start);
        p += sprintf(p, "(%u,%zu)", (unsigned)labels[start], end - start);
    }
    sprintf(p, "</mask>");
    *out_text = text;
    return DMLLM_OK;
}

/* ---- parsing ------------------------------------------------------------------------------------- */

typedef struct parser {
    const char *text;        /* whole input, for offsets in messages */
    const char *p;           /* cursor */
    const char *mask_end;    /* the "</mask>" closing the current mask body */
    uint16_t *labels;        /* [expected] being filled */
    size_t filled, expected;
} parser;

static dmllm_status parse_error(const parser *ps, const char *at, const char *what) {
    return dmllm_fail(DMLLM_ERR_FORMAT, "dense text, byte %td: %s", at - ps->text, what);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void skip_space(parser *ps) {
    while (ps->p < ps->mask_end && is_space(*ps->p)) ps->p++;
}

/* A decimal number no larger than limit. */
static dmllm_status parse_number(parser *ps, uint64_t limit, const char *what, uint64_t *out) {
    const char *start = ps->p;
    uint64_t v = 0;
    while (ps->p < ps->mask_end && *ps->p >= '0' && *ps->p <= '9') {
        v = v * 10 + (uint64_t)(*ps->p - '0');
        if (v > limit) {
            char message[96];
            snprintf(message, sizeof message, "%s above %llu", what, (unsigned long long)limit);
            return parse_error(ps, start, message);
        }
        ps->p++;
    }
    if (ps->p == start) {
        char message[96];
        snprintf(message, sizeof message, "expected a %s", what);
        return parse_error(ps, start, message);
    }
    *out = v;
    return DMLLM_OK;
}

static dmllm_status expect_char(parser *ps, char c, const char *what) {
    skip_space(ps);
    if (ps->p >= ps->mask_end || *ps->p != c) return parse_error(ps, ps->p, what);
    ps->p++;
    return DMLLM_OK;
}

static dmllm_status append_run(parser *ps, const char *at, uint64_t value, uint64_t length) {
    if (length > ps->expected - ps->filled) {
        char message[128];
        snprintf(message, sizeof message, "the runs cover more than the map's %zu values", ps->expected);
        return parse_error(ps, at, message);
    }
    for (uint64_t i = 0; i < length; i++) ps->labels[ps->filled++] = (uint16_t)value;
    return DMLLM_OK;
}

/* Mask body of runs "(v,n)", whitespace or commas between them. */
static dmllm_status parse_runs(parser *ps) {
    for (;;) {
        while (ps->p < ps->mask_end && (is_space(*ps->p) || *ps->p == ',')) ps->p++;
        if (ps->p == ps->mask_end) return DMLLM_OK;
        const char *at = ps->p;
        uint64_t value, length;
        DMLLM_TRY(expect_char(ps, '(', "expected '(' opening a run"));
        skip_space(ps);
        DMLLM_TRY(parse_number(ps, DMLLM_MASK_TEXT_MAX_VALUE, "value", &value));
        DMLLM_TRY(expect_char(ps, ',', "expected ',' inside a run"));
        skip_space(ps);
        DMLLM_TRY(parse_number(ps, UINT32_MAX, "run length", &length));
        DMLLM_TRY(expect_char(ps, ')', "expected ')' closing a run"));
        if (length == 0) return parse_error(ps, at, "run of length 0");
        DMLLM_TRY(append_run(ps, at, value, length));
    }
}

/* The demo's expanded body "v,v,v": one value each, commas between. */
static dmllm_status parse_values(parser *ps) {
    for (;;) {
        skip_space(ps);
        const char *at = ps->p;
        uint64_t value;
        DMLLM_TRY(parse_number(ps, DMLLM_MASK_TEXT_MAX_VALUE, "value", &value));
        DMLLM_TRY(append_run(ps, at, value, 1));
        skip_space(ps);
        if (ps->p == ps->mask_end) return DMLLM_OK;
        DMLLM_TRY(expect_char(ps, ',', "expected ',' between values"));
    }
}

static bool starts_with(const char *p, const char *prefix) { return strncmp(p, prefix, strlen(prefix)) == 0; }

void dmllm_mask_text_result_free(dmllm_mask_text_result *result) {
    if (!result) return;
    for (int i = 0; i < result->n_names; i++) free(result->names[i]);
    free(result->names);
    free(result->labels);
    free(result);
}

/* Appends a copy of name[length] to names[*n_names]. */
static dmllm_status append_name(char ***names, int *n_names, const char *name, size_t length) {
    char **grown = realloc(*names, ((size_t)*n_names + 1) * sizeof *grown);
    if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "dense text: out of memory for the names");
    *names = grown;
    char *copy = malloc(length + 1);
    if (!copy) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "dense text: out of memory for the names");
    memcpy(copy, name, length);
    copy[length] = '\0';
    (*names)[(*n_names)++] = copy;
    return DMLLM_OK;
}

static dmllm_status add_name(dmllm_mask_text_result *result, const char *name, size_t length) {
    return append_name(&result->names, &result->n_names, name, length);
}

/* ---- the names of a reply -------------------------------------------------------------------- */

void dmllm_reply_names_free(char **names, int n_names) {
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
}

dmllm_status dmllm_reply_names(const char *text, const char *skip, char ***names, int *n_names) {
    *names = NULL;
    *n_names = 0;
    const char *mask = text ? strstr(text, "<mask>") : NULL;
    const char *end = text ? (mask ? mask : text + strlen(text)) : NULL;
    dmllm_status status = DMLLM_OK;
    for (const char *at = text; status == DMLLM_OK && at && (at = strstr(at, "<ref>")) && at < end;) {
        const char *name = at + strlen("<ref>"), *close = strstr(name, "</ref>");
        if (!close || close > end) break; /* cut off by the length cap */
        at = close + strlen("</ref>");
        while (name < close && is_space(*name)) name++;
        while (close > name && is_space(close[-1])) close--;
        const size_t length = (size_t)(close - name);
        bool seen = length == 0 || (skip && strlen(skip) == length && !strncmp(skip, name, length));
        for (int k = 0; !seen && k < *n_names; k++)
            seen = strlen((*names)[k]) == length && !strncmp((*names)[k], name, length);
        if (!seen) status = append_name(names, n_names, name, length);
    }
    if (status != DMLLM_OK) {
        dmllm_reply_names_free(*names, *n_names);
        *names = NULL;
        *n_names = 0;
    }
    return status;
}

/* The whole text: tags and whitespace only, one mask. */
static dmllm_status parse_text(parser *ps, dmllm_mask_text_result *result) {
    const char *mask_at = NULL;
    const char *end = ps->text + strlen(ps->text);
    while (ps->p < end) {
        const char *at = ps->p;
        if (is_space(*at)) {
            ps->p++;
        } else if (starts_with(at, "<ref>")) {
            const char *name = at + strlen("<ref>");
            const char *close = strstr(name, "</ref>");
            if (!close) return parse_error(ps, at, "<ref> without </ref>");
            DMLLM_TRY(add_name(result, name, (size_t)(close - name)));
            ps->p = close + strlen("</ref>");
        } else if (starts_with(at, "<depth>")) {
            result->has_depth_tag = 1;
            ps->p = at + strlen("<depth>");
        } else if (starts_with(at, "<mask>")) {
            if (mask_at) return parse_error(ps, at, "a second <mask>");
            mask_at = at;
            ps->p = at + strlen("<mask>");
            ps->mask_end = strstr(ps->p, "</mask>");
            if (!ps->mask_end) return parse_error(ps, at, "<mask> without </mask>");
            skip_space(ps);
            if (ps->p == ps->mask_end) return parse_error(ps, at, "empty <mask>");
            DMLLM_TRY(*ps->p == '(' ? parse_runs(ps) : parse_values(ps));
            ps->p = ps->mask_end + strlen("</mask>");
        } else {
            size_t n = 0; /* the offending tag or word, for the message */
            while (at[n] && n < 24 && !is_space(at[n]) && (n == 0 || at[n - 1] != '>') && (n == 0 || at[n] != '<')) n++;
            char message[96];
            snprintf(message, sizeof message, "%s \"%.*s\"", *at == '<' ? "unknown tag" : "unexpected text", (int)n, at);
            return parse_error(ps, at, message);
        }
    }
    if (!mask_at) return parse_error(ps, end, "no <mask> block");
    if (ps->filled != ps->expected) {
        char message[128];
        snprintf(message, sizeof message, "<mask> holds %zu values, the %dx%d map needs %zu", ps->filled,
                 result->width, result->height, ps->expected);
        return parse_error(ps, mask_at, message);
    }
    if (result->n_names > 0)
        for (size_t i = 0; i < ps->expected; i++)
            if (ps->labels[i] >= result->n_names) {
                char message[128];
                snprintf(message, sizeof message, "value %u at map index %zu has no <ref> (there are %d)",
                         ps->labels[i], i, result->n_names);
                return parse_error(ps, mask_at, message);
            }
    return DMLLM_OK;
}

dmllm_status dmllm_mask_text_parse(const char *text, int width, int height, dmllm_mask_text_result **out_result) {
    static const char fn[] = "dmllm_mask_text_parse";
    if (!out_result) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: out_result is NULL", fn);
    *out_result = NULL;
    if (!text) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: text is NULL", fn);
    if (width <= 0 || height <= 0 || (int64_t)width * height > DMLLM_MASK_TEXT_MAX_VALUES)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: map size %dx%d is empty or above %lld values", fn, width,
                          height, (long long)DMLLM_MASK_TEXT_MAX_VALUES);
    dmllm_mask_text_result *result = calloc(1, sizeof *result);
    if (!result) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    result->width = width;
    result->height = height;
    parser ps = {.text = text, .p = text, .expected = (size_t)width * height};
    dmllm_status status = dmllm_alloc(&result->labels, ps.expected, sizeof *result->labels, "the parsed map");
    if (status == DMLLM_OK) {
        ps.labels = result->labels;
        status = parse_text(&ps, result);
    }
    if (status != DMLLM_OK) {
        dmllm_mask_text_result_free(result);
        return status;
    }
    *out_result = result;
    return DMLLM_OK;
}
