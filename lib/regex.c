/*
 * regex.c: a compact backtracking regex engine for pre-tokenizer patterns (regex.h).
 *
 * The pattern is parsed into a small tree, then emitted as a program for a backtracking machine
 * (Cox, "Regular Expression Matching: the Virtual Machine Approach"): CHAR / CLASS / ANY consume
 * one code point, SPLIT tries its first branch before its second (leftmost-first priority),
 * LOOK runs a sub-program without consuming. Loops over a single character or class, which is
 * what tokenizer patterns are made of, run as one REPEAT instruction that counts the run and backs
 * off one code point at a time, so long inputs do not deepen the recursion. A step budget bounds
 * pathological patterns. Touches nothing outside the regex object.
 */
#include "regex.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { UNBOUNDED = -1, MAX_EXPANDED_COPIES = 1000 };

/* ---- character classes ----------------------------------------------------------------------- */

typedef enum item_kind { ITEM_RANGE, ITEM_CATEGORIES, ITEM_SPACE } item_kind;

typedef struct class_item {
    item_kind kind;
    uint32_t first, last;  /* ITEM_RANGE */
    uint32_t categories;   /* ITEM_CATEGORIES: bit per dmllm_unicode_category */
    bool negated;          /* \P{..}, \S, \D */
} class_item;

typedef struct char_class {
    class_item *items;
    int n_items, capacity;
    bool negated;          /* [^...] */
} char_class;

#define CAT(c) (1u << DMLLM_UC_##c)
#define CATS_L (CAT(Lu) | CAT(Ll) | CAT(Lt) | CAT(Lm) | CAT(Lo))
#define CATS_M (CAT(Mn) | CAT(Mc) | CAT(Me))
#define CATS_N (CAT(Nd) | CAT(Nl) | CAT(No))

static bool item_matches(const class_item *item, uint32_t cp) {
    bool hit;
    switch (item->kind) {
    case ITEM_RANGE: hit = cp >= item->first && cp <= item->last; break;
    case ITEM_CATEGORIES: hit = (item->categories >> dmllm_unicode_category_of(cp)) & 1u; break;
    case ITEM_SPACE: hit = dmllm_unicode_is_white_space(cp); break;
    default: hit = false;
    }
    return hit != item->negated;
}

static bool class_matches(const char_class *c, uint32_t cp) {
    bool hit = false;
    for (int i = 0; i < c->n_items && !hit; i++) hit = item_matches(&c->items[i], cp);
    return hit != c->negated;
}

/* ---- program --------------------------------------------------------------------------------- */

typedef enum op { OP_ATOM, OP_SPLIT, OP_JMP, OP_REPEAT, OP_LOOK, OP_MATCH } op;
typedef enum atom_kind { ATOM_CHAR, ATOM_CLASS, ATOM_ANY } atom_kind;

typedef struct atom {
    atom_kind kind;
    uint32_t ch;   /* ATOM_CHAR */
    bool icase;    /* ATOM_CHAR: ASCII case-insensitive */
    int cls;       /* ATOM_CLASS: index into classes */
} atom;

typedef struct inst {
    op op;
    atom atom;         /* OP_ATOM, OP_REPEAT */
    int x, y;          /* OP_SPLIT: preferred, other; OP_JMP: x; OP_LOOK: sub-program x, continue at y */
    int min, max;      /* OP_REPEAT (max UNBOUNDED) */
    bool greedy;       /* OP_REPEAT */
    bool negative;     /* OP_LOOK */
} inst;

struct dmllm_regex {
    inst *program;
    int n_insts, capacity;
    char_class *classes;
    int n_classes, class_capacity;
};

static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static bool atom_matches(const dmllm_regex *re, const atom *a, uint32_t cp) {
    switch (a->kind) {
    case ATOM_CHAR: return a->icase ? ascii_lower(cp) == ascii_lower(a->ch) : cp == a->ch;
    case ATOM_CLASS: return class_matches(&re->classes[a->cls], cp);
    case ATOM_ANY: return cp != '\n';
    }
    return false;
}

/* ---- parsing --------------------------------------------------------------------------------- */

typedef enum node_kind { N_EMPTY, N_ATOM, N_CONCAT, N_ALT, N_REPEAT, N_LOOK } node_kind;

typedef struct node {
    node_kind kind;
    atom atom;               /* N_ATOM */
    int min, max;            /* N_REPEAT */
    bool greedy, negative;   /* N_REPEAT, N_LOOK */
    struct node *child;      /* N_CONCAT/N_ALT: the first of the list; N_REPEAT/N_LOOK: the operand */
    struct node *next;       /* the next item of the N_CONCAT or N_ALT this node belongs to */
} node;

typedef struct parser {
    dmllm_regex *re;
    const char *source;      /* the pattern, for messages */
    uint32_t *p;             /* pattern code points */
    size_t n, pos;
    node *pool;
    int n_nodes, pool_capacity;
    int depth;
} parser;

static dmllm_status refuse(const parser *ps, const char *what) {
    return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "regex /%s/: %s at position %zu", ps->source, what, ps->pos);
}

static dmllm_status new_node(parser *ps, node_kind kind, node **out) {
    if (ps->n_nodes == ps->pool_capacity) {
        /* Nodes point at each other, so the pool is never moved: patterns are bounded instead. */
        return refuse(ps, "pattern too long");
    }
    node *nd = &ps->pool[ps->n_nodes++];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    *out = nd;
    return DMLLM_OK;
}

static dmllm_status new_class(parser *ps, int *index) {
    dmllm_regex *re = ps->re;
    if (re->n_classes == re->class_capacity) {
        int capacity = re->class_capacity ? 2 * re->class_capacity : 8;
        char_class *grown = realloc(re->classes, (size_t)capacity * sizeof *grown);
        if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory compiling a regex");
        re->classes = grown;
        re->class_capacity = capacity;
    }
    *index = re->n_classes++;
    memset(&re->classes[*index], 0, sizeof re->classes[*index]);
    return DMLLM_OK;
}

static dmllm_status add_item(parser *ps, int cls, class_item item) {
    char_class *c = &ps->re->classes[cls];
    if (c->n_items == c->capacity) {
        int capacity = c->capacity ? 2 * c->capacity : 4;
        class_item *grown = realloc(c->items, (size_t)capacity * sizeof *grown);
        if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory compiling a regex");
        c->items = grown;
        c->capacity = capacity;
    }
    c->items[c->n_items++] = item;
    return DMLLM_OK;
}

static bool at(const parser *ps, uint32_t c) { return ps->pos < ps->n && ps->p[ps->pos] == c; }

/* \p{Name} / \P{Name} after the 'p' or 'P'; sets item->categories. */
static dmllm_status parse_property(parser *ps, class_item *item) {
    static const struct { const char *name; uint32_t mask; } names[] = {
        {"L", CATS_L}, {"Lu", CAT(Lu)}, {"Ll", CAT(Ll)}, {"Lt", CAT(Lt)}, {"Lm", CAT(Lm)}, {"Lo", CAT(Lo)},
        {"M", CATS_M}, {"Mn", CAT(Mn)}, {"Mc", CAT(Mc)}, {"Me", CAT(Me)},
        {"N", CATS_N}, {"Nd", CAT(Nd)}, {"Nl", CAT(Nl)}, {"No", CAT(No)},
        {"Letter", CATS_L}, {"Mark", CATS_M}, {"Number", CATS_N},
    };
    char name[16];
    size_t len = 0;
    if (!at(ps, '{')) {
        if (ps->pos >= ps->n) return refuse(ps, "\\p without a property");
        name[len++] = (char)ps->p[ps->pos++]; /* one-letter form \pL */
    } else {
        ps->pos++;
        while (ps->pos < ps->n && ps->p[ps->pos] != '}' && len + 1 < sizeof name)
            name[len++] = ps->p[ps->pos] < 128 ? (char)ps->p[ps->pos++] : (ps->pos++, '?');
        if (!at(ps, '}')) return refuse(ps, "unterminated \\p{...}");
        ps->pos++;
    }
    name[len] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            item->kind = ITEM_CATEGORIES;
            item->categories = names[i].mask;
            return DMLLM_OK;
        }
    char what[64];
    snprintf(what, sizeof what, "unsupported property \\p{%s}", name);
    return refuse(ps, what);
}

static dmllm_status parse_hex(parser *ps, int digits, uint32_t *out) {
    uint32_t v = 0;
    const bool braced = digits == 0;
    if (braced) {
        if (!at(ps, '{')) return refuse(ps, "expected {hex}");
        ps->pos++;
    }
    int count = 0;
    while (ps->pos < ps->n && (braced ? ps->p[ps->pos] != '}' : count < digits)) {
        uint32_t c = ps->p[ps->pos++], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return refuse(ps, "bad hex escape");
        v = v * 16 + d;
        if (++count > 6) return refuse(ps, "hex escape too long");
    }
    if (braced) {
        if (!at(ps, '}')) return refuse(ps, "unterminated \\x{...}");
        ps->pos++;
    }
    if (count == 0 || v > 0x10FFFF) return refuse(ps, "bad hex escape");
    *out = v;
    return DMLLM_OK;
}

/* After a backslash: either a class escape (then *is_class and *item are set) or one code point. */
static dmllm_status parse_escape(parser *ps, bool *is_class, class_item *item, uint32_t *ch) {
    if (ps->pos >= ps->n) return refuse(ps, "trailing backslash");
    const uint32_t c = ps->p[ps->pos++];
    *is_class = false;
    memset(item, 0, sizeof *item);
    switch (c) {
    case 's': case 'S':
        *is_class = true;
        item->kind = ITEM_SPACE;
        item->negated = c == 'S';
        return DMLLM_OK;
    case 'd': case 'D':
        *is_class = true;
        item->kind = ITEM_CATEGORIES;
        item->categories = CAT(Nd);
        item->negated = c == 'D';
        return DMLLM_OK;
    case 'p': case 'P':
        *is_class = true;
        item->negated = c == 'P';
        return parse_property(ps, item);
    case 'r': *ch = '\r'; return DMLLM_OK;
    case 'n': *ch = '\n'; return DMLLM_OK;
    case 't': *ch = '\t'; return DMLLM_OK;
    case 'f': *ch = '\f'; return DMLLM_OK;
    case 'v': *ch = '\v'; return DMLLM_OK;
    case 'x': return at(ps, '{') ? parse_hex(ps, 0, ch) : parse_hex(ps, 2, ch);
    case 'u': return parse_hex(ps, 4, ch);
    }
    if (c < 128 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
        char what[48];
        snprintf(what, sizeof what, "unsupported escape \\%c", (char)c);
        ps->pos--;
        return refuse(ps, what);
    }
    *ch = c; /* an escaped punctuation character stands for itself */
    return DMLLM_OK;
}

/* Adds [first, last], plus the other ASCII case of any letters in it when icase. */
static dmllm_status add_range(parser *ps, int cls, uint32_t first, uint32_t last, bool icase) {
    DMLLM_TRY(add_item(ps, cls, (class_item){.kind = ITEM_RANGE, .first = first, .last = last}));
    if (!icase) return DMLLM_OK;
    for (uint32_t c = first; c <= last && c < 128; c++) {
        const uint32_t other = c >= 'a' && c <= 'z' ? c - 32 : c >= 'A' && c <= 'Z' ? c + 32 : c;
        if (other != c) DMLLM_TRY(add_item(ps, cls, (class_item){.kind = ITEM_RANGE, .first = other, .last = other}));
    }
    return DMLLM_OK;
}

static dmllm_status parse_class(parser *ps, bool icase, node **out) {
    int cls = 0;
    DMLLM_TRY(new_class(ps, &cls));
    if (at(ps, '^')) {
        ps->re->classes[cls].negated = true;
        ps->pos++;
    }
    bool first = true;
    while (ps->pos < ps->n && (!at(ps, ']') || first)) {
        first = false;
        if (at(ps, '[')) return refuse(ps, "nested character classes");
        if (at(ps, '&') && ps->pos + 1 < ps->n && ps->p[ps->pos + 1] == '&') return refuse(ps, "class intersection");
        uint32_t lo = ps->p[ps->pos++];
        if (lo == '\\') {
            bool is_class;
            class_item item;
            DMLLM_TRY(parse_escape(ps, &is_class, &item, &lo));
            if (is_class) {
                DMLLM_TRY(add_item(ps, cls, item));
                continue;
            }
        }
        uint32_t hi = lo;
        if (at(ps, '-') && ps->pos + 1 < ps->n && ps->p[ps->pos + 1] != ']') {
            ps->pos++;
            hi = ps->p[ps->pos++];
            if (hi == '\\') {
                bool is_class;
                class_item item;
                DMLLM_TRY(parse_escape(ps, &is_class, &item, &hi));
                if (is_class) return refuse(ps, "a class escape as a range end");
            }
            if (hi < lo) return refuse(ps, "reversed range in a class");
        }
        DMLLM_TRY(add_range(ps, cls, lo, hi, icase));
    }
    if (!at(ps, ']')) return refuse(ps, "unterminated character class");
    ps->pos++;
    DMLLM_TRY(new_node(ps, N_ATOM, out));
    (*out)->atom = (atom){.kind = ATOM_CLASS, .cls = cls};
    return DMLLM_OK;
}

static dmllm_status parse_alternation(parser *ps, bool icase, node **out);

static dmllm_status parse_group(parser *ps, bool icase, node **out) {
    node_kind kind = N_EMPTY; /* plain group */
    bool negative = false;
    if (at(ps, '?')) {
        ps->pos++;
        if (at(ps, ':')) ps->pos++;
        else if (at(ps, '!') || at(ps, '=')) {
            kind = N_LOOK;
            negative = at(ps, '!');
            ps->pos++;
        } else if (at(ps, 'i') && ps->pos + 1 < ps->n && ps->p[ps->pos + 1] == ':') {
            icase = true;
            ps->pos += 2;
        } else {
            return refuse(ps, "unsupported group (only (?:, (?i:, (?! and (?= are)");
        }
    }
    if (++ps->depth > 100) return refuse(ps, "groups nested too deeply");
    node *inner = NULL;
    DMLLM_TRY(parse_alternation(ps, icase, &inner));
    ps->depth--;
    if (!at(ps, ')')) return refuse(ps, "missing )");
    ps->pos++;
    if (kind != N_LOOK) {
        *out = inner;
        return DMLLM_OK;
    }
    DMLLM_TRY(new_node(ps, N_LOOK, out));
    (*out)->child = inner;
    (*out)->negative = negative;
    return DMLLM_OK;
}

static dmllm_status parse_atom(parser *ps, bool icase, node **out) {
    const uint32_t c = ps->p[ps->pos++];
    switch (c) {
    case '(': return parse_group(ps, icase, out);
    case '[': return parse_class(ps, icase, out);
    case '.':
        DMLLM_TRY(new_node(ps, N_ATOM, out));
        (*out)->atom.kind = ATOM_ANY;
        return DMLLM_OK;
    case '*': case '+': case '?': case '{': ps->pos--; return refuse(ps, "nothing to repeat");
    case '^': case '$': ps->pos--; return refuse(ps, "anchors are not supported");
    case '\\': {
        bool is_class;
        class_item item;
        uint32_t ch = 0;
        DMLLM_TRY(parse_escape(ps, &is_class, &item, &ch));
        DMLLM_TRY(new_node(ps, N_ATOM, out));
        if (!is_class) {
            (*out)->atom = (atom){.kind = ATOM_CHAR, .ch = ch, .icase = icase};
            return DMLLM_OK;
        }
        int cls = 0;
        DMLLM_TRY(new_class(ps, &cls));
        DMLLM_TRY(add_item(ps, cls, item));
        (*out)->atom = (atom){.kind = ATOM_CLASS, .cls = cls};
        return DMLLM_OK;
    }
    }
    DMLLM_TRY(new_node(ps, N_ATOM, out));
    (*out)->atom = (atom){.kind = ATOM_CHAR, .ch = c, .icase = icase};
    return DMLLM_OK;
}

static dmllm_status parse_count(parser *ps, int *value) {
    long v = 0;
    bool any = false;
    while (ps->pos < ps->n && ps->p[ps->pos] >= '0' && ps->p[ps->pos] <= '9') {
        v = v * 10 + (long)(ps->p[ps->pos++] - '0');
        if (v > MAX_EXPANDED_COPIES) return refuse(ps, "repetition count too large");
        any = true;
    }
    *value = any ? (int)v : -2;
    return DMLLM_OK;
}

static dmllm_status parse_repeat(parser *ps, bool icase, node **out) {
    node *item = NULL;
    DMLLM_TRY(parse_atom(ps, icase, &item));
    if (ps->pos >= ps->n) {
        *out = item;
        return DMLLM_OK;
    }
    int min = 0, max = 0;
    const uint32_t q = ps->p[ps->pos];
    if (q == '*') min = 0, max = UNBOUNDED, ps->pos++;
    else if (q == '+') min = 1, max = UNBOUNDED, ps->pos++;
    else if (q == '?') min = 0, max = 1, ps->pos++;
    else if (q == '{') {
        ps->pos++;
        DMLLM_TRY(parse_count(ps, &min));
        max = min;
        if (at(ps, ',')) {
            ps->pos++;
            DMLLM_TRY(parse_count(ps, &max));
            if (max == -2) max = UNBOUNDED;
        }
        if (min < 0 || !at(ps, '}') || (max != UNBOUNDED && max < min)) return refuse(ps, "bad {n,m} repetition");
        ps->pos++;
    } else {
        *out = item;
        return DMLLM_OK;
    }
    bool greedy = true;
    if (at(ps, '?')) {
        greedy = false;
        ps->pos++;
    } else if (at(ps, '+')) {
        return refuse(ps, "possessive quantifiers");
    }
    if (ps->pos < ps->n && (at(ps, '*') || at(ps, '+') || at(ps, '?') || at(ps, '{')))
        return refuse(ps, "a repetition of a repetition");
    DMLLM_TRY(new_node(ps, N_REPEAT, out));
    (*out)->child = item;
    (*out)->min = min;
    (*out)->max = max;
    (*out)->greedy = greedy;
    return DMLLM_OK;
}

/* A sequence or a choice is one node with a list of items, never a chain of pairs: a long pattern
 * must not deepen the recursion of compile_node or nullable, only nested groups may (at most 100). */
static dmllm_status append_item(parser *ps, node_kind kind, node **list, node **tail, node *item) {
    if (!*list) {
        *list = *tail = item;
        return DMLLM_OK;
    }
    if (*list == *tail) {
        node *head = NULL;
        DMLLM_TRY(new_node(ps, kind, &head));
        head->child = *list;
        *list = head;
    }
    (*tail)->next = item;
    *tail = item;
    return DMLLM_OK;
}

static dmllm_status parse_concatenation(parser *ps, bool icase, node **out) {
    node *result = NULL, *tail = NULL;
    while (ps->pos < ps->n && !at(ps, '|') && !at(ps, ')')) {
        node *item = NULL;
        DMLLM_TRY(parse_repeat(ps, icase, &item));
        DMLLM_TRY(append_item(ps, N_CONCAT, &result, &tail, item));
    }
    if (!result) DMLLM_TRY(new_node(ps, N_EMPTY, &result));
    *out = result;
    return DMLLM_OK;
}

static dmllm_status parse_alternation(parser *ps, bool icase, node **out) {
    node *result = NULL, *tail = NULL;
    DMLLM_TRY(parse_concatenation(ps, icase, &result));
    tail = result;
    while (at(ps, '|')) {
        ps->pos++;
        node *right = NULL;
        DMLLM_TRY(parse_concatenation(ps, icase, &right));
        DMLLM_TRY(append_item(ps, N_ALT, &result, &tail, right));
    }
    *out = result;
    return DMLLM_OK;
}

/* ---- emission -------------------------------------------------------------------------------- */

static dmllm_status emit(dmllm_regex *re, inst instruction, int *index) {
    if (re->n_insts == re->capacity) {
        int capacity = re->capacity ? 2 * re->capacity : 64;
        if (capacity > 1 << 20) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "regex program too large");
        inst *grown = realloc(re->program, (size_t)capacity * sizeof *grown);
        if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory compiling a regex");
        re->program = grown;
        re->capacity = capacity;
    }
    if (index) *index = re->n_insts;
    re->program[re->n_insts++] = instruction;
    return DMLLM_OK;
}

static bool nullable(const node *nd) {
    switch (nd->kind) {
    case N_EMPTY: case N_LOOK: return true;
    case N_ATOM: return false;
    case N_CONCAT:
        for (const node *item = nd->child; item; item = item->next)
            if (!nullable(item)) return false;
        return true;
    case N_ALT:
        for (const node *item = nd->child; item; item = item->next)
            if (nullable(item)) return true;
        return false;
    case N_REPEAT: return nd->min == 0 || nullable(nd->child);
    }
    return true;
}

static dmllm_status compile_node(dmllm_regex *re, const node *nd);

/* A loop over a sub-expression: min copies, then optional copies (or a loop when unbounded). */
static dmllm_status compile_general_repeat(dmllm_regex *re, const node *nd) {
    const int copies = nd->max == UNBOUNDED ? nd->min + 1 : nd->max;
    if (copies > MAX_EXPANDED_COPIES) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "regex repetition expands too far");
    if (nd->max == UNBOUNDED && nullable(nd->child))
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "regex: an unbounded repetition of something that can match empty");
    for (int i = 0; i < nd->min; i++) DMLLM_TRY(compile_node(re, nd->child));
    if (nd->max == UNBOUNDED) {
        int split = 0;
        DMLLM_TRY(emit(re, (inst){.op = OP_SPLIT}, &split));
        DMLLM_TRY(compile_node(re, nd->child));
        DMLLM_TRY(emit(re, (inst){.op = OP_JMP, .x = split}, NULL));
        re->program[split].x = nd->greedy ? split + 1 : re->n_insts;
        re->program[split].y = nd->greedy ? re->n_insts : split + 1;
        return DMLLM_OK;
    }
    int splits[MAX_EXPANDED_COPIES];
    const int optional = nd->max - nd->min;
    for (int i = 0; i < optional; i++) {
        DMLLM_TRY(emit(re, (inst){.op = OP_SPLIT}, &splits[i]));
        DMLLM_TRY(compile_node(re, nd->child));
    }
    for (int i = 0; i < optional; i++) {
        inst *s = &re->program[splits[i]];
        s->x = nd->greedy ? splits[i] + 1 : re->n_insts;
        s->y = nd->greedy ? re->n_insts : splits[i] + 1;
    }
    return DMLLM_OK;
}

static dmllm_status compile_node(dmllm_regex *re, const node *nd) {
    switch (nd->kind) {
    case N_EMPTY: return DMLLM_OK;
    case N_ATOM: return emit(re, (inst){.op = OP_ATOM, .atom = nd->atom}, NULL);
    case N_CONCAT:
        for (const node *item = nd->child; item; item = item->next) DMLLM_TRY(compile_node(re, item));
        return DMLLM_OK;
    case N_ALT: {
        /* Each alternative but the last: SPLIT (try it, else the next one), its code, JMP to the end;
         * the JMPs are chained through x until the end is known. */
        int jumps = -1;
        for (const node *item = nd->child; item; item = item->next) {
            int split = 0;
            if (item->next) DMLLM_TRY(emit(re, (inst){.op = OP_SPLIT}, &split));
            DMLLM_TRY(compile_node(re, item));
            if (!item->next) break;
            DMLLM_TRY(emit(re, (inst){.op = OP_JMP, .x = jumps}, &jumps));
            re->program[split].x = split + 1;
            re->program[split].y = re->n_insts;
        }
        while (jumps >= 0) {
            const int previous = re->program[jumps].x;
            re->program[jumps].x = re->n_insts;
            jumps = previous;
        }
        return DMLLM_OK;
    }
    case N_REPEAT:
        if (nd->child->kind == N_ATOM)
            return emit(re, (inst){.op = OP_REPEAT, .atom = nd->child->atom, .min = nd->min, .max = nd->max,
                                   .greedy = nd->greedy}, NULL);
        return compile_general_repeat(re, nd);
    case N_LOOK: {
        int look = 0;
        DMLLM_TRY(emit(re, (inst){.op = OP_LOOK, .negative = nd->negative}, &look));
        DMLLM_TRY(compile_node(re, nd->child));
        DMLLM_TRY(emit(re, (inst){.op = OP_MATCH}, NULL));
        re->program[look].x = look + 1;
        re->program[look].y = re->n_insts;
        return DMLLM_OK;
    }
    }
    return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "regex: unknown node");
}

void dmllm_regex_free(dmllm_regex *re) {
    if (!re) return;
    for (int i = 0; i < re->n_classes; i++) free(re->classes[i].items);
    free(re->classes);
    free(re->program);
    free(re);
}

dmllm_status dmllm_regex_compile(const char *pattern, dmllm_regex **out) {
    *out = NULL;
    if (!pattern) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "regex: NULL pattern");
    const size_t bytes = strlen(pattern);
    parser ps = {.source = pattern};
    dmllm_regex *re = calloc(1, sizeof *re);
    dmllm_status status = re ? DMLLM_OK : dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory compiling a regex");
    ps.re = re;
    if (status == DMLLM_OK) status = dmllm_alloc(&ps.p, bytes + 1, sizeof *ps.p, "a regex");
    for (size_t i = 0; status == DMLLM_OK && i < bytes;) {
        uint32_t cp;
        const int len = dmllm_utf8_decode((const unsigned char *)pattern + i, bytes - i, &cp);
        if (len == 0) status = dmllm_fail(DMLLM_ERR_FORMAT, "regex /%s/: invalid UTF-8", pattern);
        ps.p[ps.n++] = cp;
        i += len ? (size_t)len : 1;
    }
    /* Every code point makes at most a few nodes. */
    ps.pool_capacity = (int)(4 * ps.n + 8);
    if (status == DMLLM_OK) status = dmllm_alloc(&ps.pool, (size_t)ps.pool_capacity, sizeof *ps.pool, "a regex");
    node *root = NULL;
    if (status == DMLLM_OK) status = parse_alternation(&ps, false, &root);
    if (status == DMLLM_OK && ps.pos < ps.n) status = refuse(&ps, "unbalanced )");
    if (status == DMLLM_OK) status = compile_node(re, root);
    if (status == DMLLM_OK) status = emit(re, (inst){.op = OP_MATCH}, NULL);
    free(ps.pool);
    free(ps.p);
    if (status != DMLLM_OK) {
        dmllm_regex_free(re);
        return status;
    }
    *out = re;
    return DMLLM_OK;
}

/* ---- matching -------------------------------------------------------------------------------- */

typedef struct run_context {
    const dmllm_regex *re;
    const uint32_t *text;
    size_t n;
    long long budget;   /* steps left */
    size_t end;         /* where the match ended */
} run_context;

/* 1 = the program from pc matches at sp (end in ctx->end), 0 = no match, < 0 = budget exhausted. */
static int run(run_context *ctx, int pc, size_t sp, int depth) {
    const dmllm_regex *re = ctx->re;
    if (depth > 10000) return DMLLM_ERR_UNSUPPORTED;
    for (;;) {
        if (--ctx->budget < 0) return DMLLM_ERR_UNSUPPORTED;
        const inst *in = &re->program[pc];
        switch (in->op) {
        case OP_ATOM:
            if (sp >= ctx->n || !atom_matches(re, &in->atom, ctx->text[sp])) return 0;
            sp++;
            pc++;
            break;
        case OP_JMP: pc = in->x; break;
        case OP_SPLIT: {
            const int r = run(ctx, in->x, sp, depth + 1);
            if (r != 0) return r;
            pc = in->y;
            break;
        }
        case OP_REPEAT: {
            size_t count = 0;
            const size_t left = ctx->n - sp;
            const size_t limit = in->max == UNBOUNDED || (size_t)in->max > left ? left : (size_t)in->max;
            while (count < limit && atom_matches(re, &in->atom, ctx->text[sp + count])) count++;
            ctx->budget -= (long long)count;
            if (count < (size_t)in->min) return 0;
            if (in->greedy) {
                for (size_t k = count + 1; k-- > (size_t)in->min;) {
                    const int r = run(ctx, pc + 1, sp + k, depth + 1);
                    if (r != 0) return r;
                }
            } else {
                for (size_t k = (size_t)in->min; k <= count; k++) {
                    const int r = run(ctx, pc + 1, sp + k, depth + 1);
                    if (r != 0) return r;
                }
            }
            return 0;
        }
        case OP_LOOK: {
            const size_t saved_end = ctx->end;
            const int r = run(ctx, in->x, sp, depth + 1);
            ctx->end = saved_end;
            if (r < 0) return r;
            if ((r == 1) == in->negative) return 0;
            pc = in->y;
            break;
        }
        case OP_MATCH: ctx->end = sp; return 1;
        }
    }
}

int dmllm_regex_search(const dmllm_regex *re, const uint32_t *text, size_t n, size_t from, size_t *match_start,
                       size_t *match_end) {
    /* Generous: ~100 steps per code point plus a floor; real tokenizer patterns use a few. */
    run_context ctx = {.re = re, .text = text, .n = n, .budget = 100LL * (long long)n + 100000};
    for (size_t start = from; start <= n; start++) {
        const int r = run(&ctx, 0, start, 0);
        if (r < 0) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "regex: backtracking budget exhausted on a %zu-character input", n);
        if (r == 1) {
            *match_start = start;
            *match_end = ctx.end;
            return 1;
        }
    }
    return 0;
}
