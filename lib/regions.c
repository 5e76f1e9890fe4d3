/*
 * regions.c: dmllm_parse_regions(), a pure text -> struct parser of grounding / detection /
 * polygon answers (model-spec 6.1; the demo's formats). The text may be anything a model emits:
 * every read is bounded by the NUL terminator, malformed items are skipped and reported in the
 * result's message. Touches no model or session.
 */
#include "common.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COORDINATE 2047

typedef struct parser {
    dmllm_regions *out;
    int capacity;       /* of out->regions */
    int n_skipped;
    const char *text;   /* start, for byte offsets in messages */
    ptrdiff_t first_at; /* the first skipped item: its byte offset and the problem */
    char first[160];
} parser;

static void skipped(parser *p, const char *at, const char *fmt, ...) DMLLM_PRINTF(3, 4);
static void skipped(parser *p, const char *at, const char *fmt, ...) {
    if (p->n_skipped++ > 0) return;
    p->first_at = at - p->text;
    va_list args;
    va_start(args, fmt);
    vsnprintf(p->first, sizeof p->first, fmt, args);
    va_end(args);
}

static bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static const char *skip_space(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return s;
}

/* One <x_N> or <y_N> token at s: *axis = 'x' | 'y', *value = N; returns the byte after it, or NULL. */
static const char *coordinate(const char *s, char *axis, int *value) {
    if (s[0] != '<' || (s[1] != 'x' && s[1] != 'y') || s[2] != '_') return NULL;
    int v = 0, digits = 0;
    const char *q = s + 3;
    for (; *q >= '0' && *q <= '9'; q++)
        if (++digits <= 5) v = v * 10 + (*q - '0');
    if (digits == 0 || *q != '>') return NULL;
    *axis = s[1];
    *value = digits <= 5 ? v : MAX_COORDINATE + 1;
    return q + 1;
}

/* Reads coordinate tokens in [s, end), each pair <x_><y_>, with whitespace and (for polygons)
 * <poly>/</poly> between them allowed. xy: [max_pairs][2]. Returns the number of pairs, or -1 with
 * *problem set. */
static int read_pairs(const char *s, const char *end, bool allow_poly, int *xy, int max_pairs, const char **problem) {
    int n_values = 0;
    for (s = skip_space(s); s < end; s = skip_space(s)) {
        if (allow_poly && (starts(s, "<poly>") || starts(s, "</poly>"))) {
            s += s[1] == '/' ? 7 : 6;
            continue;
        }
        char axis = 0;
        int value = 0;
        const char *next = coordinate(s, &axis, &value);
        if (!next || next > end) {
            *problem = "text other than <x_N><y_N> tokens";
            return -1;
        }
        if (axis != (n_values % 2 ? 'y' : 'x')) {
            *problem = "coordinates not in <x_N><y_N> order";
            return -1;
        }
        if (value > MAX_COORDINATE) {
            *problem = "a coordinate beyond 2047";
            return -1;
        }
        if (n_values / 2 >= max_pairs) {
            *problem = "too many coordinates";
            return -1;
        }
        xy[n_values++] = value;
        s = next;
    }
    if (n_values % 2) {
        *problem = "an <x_N> without its <y_N>";
        return -1;
    }
    return n_values / 2;
}

/* Appends one region, allocated on its own (the public array holds pointers, so dmllm_region can
 * grow) in one block: the struct, then its points [n_points][2], then its label. */
static dmllm_status add_region(parser *p, const char *label, size_t label_length, const int box[4], const int *points,
                               int n_points) {
    dmllm_regions *r = p->out;
    if (r->n_regions == p->capacity) {
        const int capacity = p->capacity ? 2 * p->capacity : 8;
        dmllm_region **grown = realloc(r->regions, (size_t)capacity * sizeof *grown);
        if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for %d regions", capacity);
        r->regions = grown;
        p->capacity = capacity;
    }
    const size_t points_bytes = (size_t)n_points * 2 * sizeof *points;
    dmllm_region *region = NULL;
    DMLLM_TRY(dmllm_alloc(&region, 1, sizeof *region + points_bytes + label_length + 1, "a region"));
    int *copy = (int *)(region + 1);                /* [n_points][2] */
    char *name = (char *)copy + points_bytes;       /* [label_length + 1] */
    if (n_points > 0) memcpy(copy, points, points_bytes);
    memcpy(name, label, label_length);
    name[label_length] = '\0';
    region->struct_size = sizeof *region;
    region->label = name;
    memcpy(region->box, box, sizeof region->box);
    region->n_points = n_points;
    region->points = n_points > 0 ? copy : NULL;
    r->regions[r->n_regions++] = region;
    return DMLLM_OK;
}

static dmllm_status parse(parser *p, const char *s) {
    const char *label = "";
    size_t label_length = 0;
    int *xy = NULL; /* [max_pairs][2]: a pair "<x_N><y_N>" takes at least 10 bytes, so this bounds any item */
    const int max_pairs = (int)(strlen(s) / 6 + 2);
    DMLLM_TRY(dmllm_alloc(&xy, (size_t)max_pairs * 2, sizeof *xy, "the coordinates"));
    dmllm_status status = DMLLM_OK;
    while (status == DMLLM_OK && (s = strchr(s, '<')) != NULL) {
        if (starts(s, "<ref>")) {
            const char *close = strstr(s + 5, "</ref>"), *reopen = strstr(s + 5, "<ref>");
            if (!close || (reopen && reopen < close)) {
                skipped(p, s, "<ref> without </ref>");
                s += 5;
                continue;
            }
            const char *a = skip_space(s + 5), *b = close;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n' || b[-1] == '\r')) b--;
            label = a;
            label_length = (size_t)(b - a);
            s = close + 6;
        } else if (starts(s, "<box>") || starts(s, "<ins>")) {
            const bool polygon = s[1] == 'i';
            const char *close = strstr(s + 5, polygon ? "</ins>" : "</box>");
            if (!close) {
                skipped(p, s, "%s without its closing tag", polygon ? "<ins>" : "<box>");
                break;
            }
            const char *problem = NULL;
            const int n = read_pairs(s + 5, close, polygon, xy, max_pairs, &problem);
            if (n < 0) {
                skipped(p, s, "%s with %s", polygon ? "a polygon" : "a box", problem);
            } else if (!polygon && n != 2) {
                skipped(p, s, "a box with %d coordinates instead of 4", 2 * n);
            } else if (polygon && n == 0) {
                skipped(p, s, "a polygon without points");
            } else {
                int box[4] = {xy[0], xy[1], xy[0], xy[1]};
                for (int i = 1; polygon && i < n; i++) {
                    box[0] = xy[2 * i] < box[0] ? xy[2 * i] : box[0];
                    box[1] = xy[2 * i + 1] < box[1] ? xy[2 * i + 1] : box[1];
                    box[2] = xy[2 * i] > box[2] ? xy[2 * i] : box[2];
                    box[3] = xy[2 * i + 1] > box[3] ? xy[2 * i + 1] : box[3];
                }
                if (!polygon) memcpy(box, xy, sizeof box);
                status = add_region(p, label, label_length, box, polygon ? xy : NULL, polygon ? n : 0);
            }
            s = close + 6;
        } else {
            s++;
        }
    }
    free(xy);
    return status;
}

void dmllm_regions_free(dmllm_regions *regions) {
    if (!regions) return;
    for (int i = 0; i < regions->n_regions; i++) free(regions->regions[i]); /* one block each */
    free(regions->regions);
    free(regions->text);
    free(regions);
}

dmllm_status dmllm_parse_regions(const char *text, dmllm_regions **out_regions) {
    if (!out_regions) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_parse_regions: out_regions is NULL");
    *out_regions = NULL;
    if (!text) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_parse_regions: text is NULL");
    dmllm_regions *r = calloc(1, sizeof *r);
    if (!r) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the regions");
    parser p = {.out = r, .text = text};
    const dmllm_status status = parse(&p, text);
    if (status != DMLLM_OK) {
        dmllm_regions_free(r);
        return status;
    }
    if (p.n_skipped > 0)
        snprintf(r->message, sizeof r->message, "%d malformed item%s skipped; the first, at byte %td: %s", p.n_skipped,
                 p.n_skipped > 1 ? "s" : "", p.first_at, p.first);
    *out_regions = r;
    return DMLLM_OK;
}
