/*
 * tokenizer.c: a Hugging Face tokenizer.json, byte-level BPE (tokenizer.h, model-spec section 5).
 *
 * Encoding: added tokens are cut out first (leftmost-longest; special ones only when asked), the
 * rest goes through the file's pre-tokenizer steps (Split by regex or string with any of HF's
 * delimiter behaviours; ByteLevel, optionally with the GPT-2 split), each piece is mapped byte by
 * byte to the GPT-2 byte alphabet, looked up whole when ignore_merges says so, and otherwise merged
 * by rank (lowest rank first, leftmost among equals) with a heap. Decoding maps pieces back to bytes
 * and replaces invalid UTF-8 like Rust's from_utf8_lossy. Reads only the file; immutable after load.
 */
#include "tokenizer.h"
#include "regex.h"
#include "unicode.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The GPT-2 split that ByteLevel applies when its use_regex is true. */
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- string -> id hash table ----------------------------------------------------------------- */

typedef struct string_table {
    uint32_t mask;        /* capacity - 1 */
    const char **keys;    /* [capacity] pointers to NUL-terminated strings owned elsewhere, NULL = empty */
    int32_t *values;      /* [capacity] */
} string_table;

static dmllm_status string_table_init(string_table *t, size_t n) {
    size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    t->mask = (uint32_t)(capacity - 1);
    DMLLM_TRY(dmllm_alloc(&t->keys, capacity, sizeof *t->keys, "the vocabulary index"));
    memset(t->keys, 0, capacity * sizeof *t->keys);
    return dmllm_alloc(&t->values, capacity, sizeof *t->values, "the vocabulary index");
}

static void string_table_free(string_table *t) {
    free(t->keys);
    free(t->values);
}

/* Slot holding key, or the empty slot where it would go. */
static uint32_t string_table_slot(const string_table *t, const char *key, size_t n) {
    uint32_t i = (uint32_t)dmllm_fnv1a(DMLLM_FNV1A_INIT, key, n) & t->mask;
    while (t->keys[i] && (strncmp(t->keys[i], key, n) != 0 || t->keys[i][n] != '\0')) i = (i + 1) & t->mask;
    return i;
}

static int32_t string_table_get(const string_table *t, const char *key, size_t n) {
    const uint32_t i = string_table_slot(t, key, n);
    return t->keys[i] ? t->values[i] : -1;
}

/* ---- merges: (left id, right id) -> rank and result ------------------------------------------ */

typedef struct merge_entry {
    uint64_t pair;        /* left << 32 | right; UINT64_MAX = empty */
    int32_t rank, merged;
} merge_entry;

typedef struct merge_table {
    uint32_t mask;
    merge_entry *entries;
} merge_table;

static uint32_t pair_slot(const merge_table *t, uint64_t pair) {
    uint32_t i = (uint32_t)((pair * 0x9E3779B97F4A7C15ull) >> 32) & t->mask;
    while (t->entries[i].pair != UINT64_MAX && t->entries[i].pair != pair) i = (i + 1) & t->mask;
    return i;
}

/* ---- the tokenizer --------------------------------------------------------------------------- */

typedef enum split_behaviour {
    SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_WITH_PREVIOUS, SPLIT_MERGED_WITH_NEXT, SPLIT_CONTIGUOUS
} split_behaviour;

typedef struct pretokenize_step {
    dmllm_regex *regex;          /* Split by regex, or ByteLevel's GPT-2 split; NULL otherwise */
    uint32_t *literal;           /* Split by string: its code points */
    size_t literal_length;
    split_behaviour behaviour;
    bool invert;
} pretokenize_step;

typedef struct token_info {
    char *piece;                 /* the file's spelling (byte-level for the base vocabulary) */
    unsigned char *bytes;        /* what the id decodes to */
    size_t n_bytes;
    bool special;                /* an added token marked special */
} token_info;

struct dmllm_tokenizer {
    int32_t vocab_size;          /* largest id + 1 */
    token_info *tokens;          /* [vocab_size]; piece NULL for unused ids */
    string_table pieces;         /* spelling -> id (added tokens win over the base vocabulary) */
    merge_table merges;
    bool ignore_merges;
    int32_t byte_token[256];     /* id of the one-character piece of each byte, or -1 */
    uint32_t byte_to_char[256];  /* GPT-2 bytes_to_unicode */
    int char_to_byte[324];       /* its inverse over code points 0..323, -1 elsewhere */
    int32_t *added;              /* [n_added] added token ids, longest content first */
    int n_added;
    pretokenize_step *steps;
    int n_steps;
};

static void build_byte_alphabet(dmllm_tokenizer *t) {
    for (int c = 0; c < 324; c++) t->char_to_byte[c] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        t->byte_to_char[b] = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
        t->char_to_byte[t->byte_to_char[b]] = b;
    }
}

void dmllm_tokenizer_free(dmllm_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; t->tokens && i < t->vocab_size; i++) {
        free(t->tokens[i].piece);
        free(t->tokens[i].bytes);
    }
    free(t->tokens);
    string_table_free(&t->pieces);
    free(t->merges.entries);
    free(t->added);
    for (int i = 0; i < t->n_steps; i++) {
        dmllm_regex_free(t->steps[i].regex);
        free(t->steps[i].literal);
    }
    free(t->steps);
    free(t);
}

int32_t dmllm_tokenizer_vocab_size(const dmllm_tokenizer *t) { return t->vocab_size; }

/* ---- loading --------------------------------------------------------------------------------- */

typedef struct load_context {
    const char *path;
    dmllm_tokenizer *t;
} load_context;

static dmllm_status bad_file(const load_context *lc, dmllm_status status, const char *what) {
    return dmllm_fail(status, "%s: %s", lc->path, what);
}

/* Bytes a piece of the base vocabulary stands for: each character is one byte of the alphabet. */
static dmllm_status piece_to_bytes(const load_context *lc, const char *piece, token_info *info) {
    const size_t n = strlen(piece);
    DMLLM_TRY(dmllm_alloc(&info->bytes, n + 1, 1, "a token"));
    info->n_bytes = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const int len = dmllm_utf8_decode((const unsigned char *)piece + i, n - i, &cp);
        if (len == 0 || cp >= 324 || lc->t->char_to_byte[cp] < 0) {
            char what[160];
            snprintf(what, sizeof what, "vocabulary piece \"%.60s\" has a character outside the byte-level alphabet",
                     piece);
            return bad_file(lc, DMLLM_ERR_FORMAT, what);
        }
        info->bytes[info->n_bytes++] = (unsigned char)lc->t->char_to_byte[cp];
        i += (size_t)len;
    }
    return DMLLM_OK;
}

static dmllm_status set_token(const load_context *lc, int32_t id, const char *piece, bool added, bool special) {
    token_info *info = &lc->t->tokens[id];
    if (info->piece && !added) {
        char what[96];
        snprintf(what, sizeof what, "id %d is used twice in the vocabulary", (int)id);
        return bad_file(lc, DMLLM_ERR_FORMAT, what);
    }
    free(info->piece);
    free(info->bytes);
    info->bytes = NULL;
    if (!(info->piece = strdup(piece))) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory loading %s", lc->path);
    info->special = special;
    if (!added) return piece_to_bytes(lc, piece, info);
    info->n_bytes = strlen(piece);
    DMLLM_TRY(dmllm_alloc(&info->bytes, info->n_bytes + 1, 1, "a token"));
    memcpy(info->bytes, piece, info->n_bytes);
    return DMLLM_OK;
}

static bool json_true(const cJSON *object, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(object, key));
}

/* The model section: type BPE, vocab, merges, ignore_merges; no byte fallback, no affixes. */
static dmllm_status check_model(const load_context *lc, const cJSON *model) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsObject(model)) return bad_file(lc, DMLLM_ERR_FORMAT, "no \"model\" object");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0))
        return bad_file(lc, DMLLM_ERR_UNSUPPORTED, "model.type is not \"BPE\"");
    if (json_true(model, "byte_fallback")) return bad_file(lc, DMLLM_ERR_UNSUPPORTED, "model.byte_fallback is true");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *affix = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (affix && !cJSON_IsNull(affix) && !(cJSON_IsString(affix) && affix->valuestring[0] == '\0')) {
            char what[96];
            snprintf(what, sizeof what, "model.%s is not supported", affixes[i]);
            return bad_file(lc, DMLLM_ERR_UNSUPPORTED, what);
        }
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout)) return bad_file(lc, DMLLM_ERR_UNSUPPORTED, "model.dropout is set");
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(model, "vocab")))
        return bad_file(lc, DMLLM_ERR_FORMAT, "model.vocab is not an object");
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(model, "merges")))
        return bad_file(lc, DMLLM_ERR_FORMAT, "model.merges is not an array");
    return DMLLM_OK;
}

static dmllm_status read_id(const load_context *lc, const cJSON *item, const char *what, int32_t *id) {
    if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 16777216 ||
        item->valuedouble != (double)(int32_t)item->valuedouble) {
        char message[160];
        snprintf(message, sizeof message, "%s has no valid id (0..16777216)", what);
        return bad_file(lc, DMLLM_ERR_FORMAT, message);
    }
    *id = (int32_t)item->valuedouble;
    return DMLLM_OK;
}

/* Sizes the id space from the vocabulary and the added tokens. */
static dmllm_status count_ids(const load_context *lc, const cJSON *vocab, const cJSON *added, int32_t *vocab_size) {
    int32_t largest = -1, id = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, vocab) {
        DMLLM_TRY(read_id(lc, item, "a vocabulary entry", &id));
        largest = id > largest ? id : largest;
    }
    cJSON_ArrayForEach(item, added) {
        DMLLM_TRY(read_id(lc, cJSON_GetObjectItemCaseSensitive(item, "id"), "an added token", &id));
        largest = id > largest ? id : largest;
    }
    if (largest < 0) return bad_file(lc, DMLLM_ERR_FORMAT, "the vocabulary is empty");
    *vocab_size = largest + 1;
    return DMLLM_OK;
}

static dmllm_status load_added(const load_context *lc, const cJSON *added) {
    dmllm_tokenizer *t = lc->t;
    if (added && !cJSON_IsArray(added)) return bad_file(lc, DMLLM_ERR_FORMAT, "added_tokens is not an array");
    const int n = added ? cJSON_GetArraySize(added) : 0;
    DMLLM_TRY(dmllm_alloc(&t->added, (size_t)n + 1, sizeof *t->added, "the added tokens"));
    const cJSON *item;
    cJSON_ArrayForEach(item, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
        int32_t id = 0;
        DMLLM_TRY(read_id(lc, cJSON_GetObjectItemCaseSensitive(item, "id"), "an added token", &id));
        if (!cJSON_IsString(content) || content->valuestring[0] == '\0')
            return bad_file(lc, DMLLM_ERR_FORMAT, "an added token has no content");
        static const char *const unsupported[] = {"lstrip", "rstrip", "single_word"};
        for (int i = 0; i < 3; i++)
            if (json_true(item, unsupported[i])) {
                char what[160];
                snprintf(what, sizeof what, "added token \"%.40s\" sets %s, which is not supported", content->valuestring,
                         unsupported[i]);
                return bad_file(lc, DMLLM_ERR_UNSUPPORTED, what);
            }
        DMLLM_TRY(set_token(lc, id, content->valuestring, true, json_true(item, "special")));
        t->added[t->n_added++] = id;
    }
    return DMLLM_OK;
}

static int longer_content_first(const void *a, const void *b, void *tokens) {
    const token_info *info = tokens;
    const size_t la = info[*(const int32_t *)a].n_bytes, lb = info[*(const int32_t *)b].n_bytes;
    return la < lb ? 1 : la > lb ? -1 : 0;
}

static dmllm_status load_vocab(const load_context *lc, const cJSON *vocab) {
    const cJSON *item;
    cJSON_ArrayForEach(item, vocab) {
        int32_t id = 0;
        DMLLM_TRY(read_id(lc, item, "a vocabulary entry", &id));
        DMLLM_TRY(set_token(lc, id, item->string, false, false));
    }
    return DMLLM_OK;
}

static dmllm_status index_pieces(const load_context *lc) {
    dmllm_tokenizer *t = lc->t;
    DMLLM_TRY(string_table_init(&t->pieces, (size_t)t->vocab_size));
    for (int pass = 0; pass < 2; pass++) /* base vocabulary first, so added tokens win */
        for (int32_t id = 0; id < t->vocab_size; id++) {
            const token_info *info = &t->tokens[id];
            bool is_added = false;
            for (int i = 0; i < t->n_added && !is_added; i++) is_added = t->added[i] == id;
            if (!info->piece || is_added != (pass == 1)) continue;
            const uint32_t slot = string_table_slot(&t->pieces, info->piece, strlen(info->piece));
            t->pieces.keys[slot] = info->piece;
            t->pieces.values[slot] = id;
        }
    for (int b = 0; b < 256; b++) {
        char piece[4];
        const int n = dmllm_utf8_encode(t->byte_to_char[b], piece);
        t->byte_token[b] = string_table_get(&t->pieces, piece, (size_t)n);
    }
    return DMLLM_OK;
}

/* Merges are "a b" strings (older files) or ["a", "b"] pairs; rank = position in the list. */
static dmllm_status load_merges(const load_context *lc, const cJSON *merges) {
    dmllm_tokenizer *t = lc->t;
    const int n = cJSON_GetArraySize(merges);
    size_t capacity = 16;
    while (capacity < 2 * (size_t)n + 2) capacity *= 2;
    t->merges.mask = (uint32_t)(capacity - 1);
    DMLLM_TRY(dmllm_alloc(&t->merges.entries, capacity, sizeof *t->merges.entries, "the merge table"));
    for (size_t i = 0; i < capacity; i++) t->merges.entries[i].pair = UINT64_MAX;
    char *joined = NULL;
    size_t joined_capacity = 0;
    int rank = 0;
    const cJSON *item;
    dmllm_status status = DMLLM_OK;
    cJSON_ArrayForEach(item, merges) {
        const char *left, *right;
        size_t left_length;
        char *space = NULL;
        if (cJSON_IsString(item) && (space = strchr(item->valuestring, ' ')) && strchr(space + 1, ' ') == NULL) {
            left = item->valuestring;
            left_length = (size_t)(space - left);
            right = space + 1;
        } else if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2 && cJSON_IsString(item->child) &&
                   cJSON_IsString(item->child->next)) {
            left = item->child->valuestring;
            left_length = strlen(left);
            right = item->child->next->valuestring;
        } else {
            char what[96];
            snprintf(what, sizeof what, "merge %d is neither \"a b\" nor [\"a\", \"b\"]", rank);
            status = bad_file(lc, DMLLM_ERR_FORMAT, what);
            break;
        }
        const size_t right_length = strlen(right);
        if (left_length + right_length + 1 > joined_capacity) {
            joined_capacity = 2 * (left_length + right_length + 1);
            char *grown = realloc(joined, joined_capacity);
            if (!grown) {
                status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory loading %s", lc->path);
                break;
            }
            joined = grown;
        }
        memcpy(joined, left, left_length);
        memcpy(joined + left_length, right, right_length + 1);
        const int32_t a = string_table_get(&t->pieces, left, left_length);
        const int32_t b = string_table_get(&t->pieces, right, right_length);
        const int32_t merged = string_table_get(&t->pieces, joined, left_length + right_length);
        if (a < 0 || b < 0 || merged < 0) {
            char what[200];
            snprintf(what, sizeof what, "merge %d (\"%.40s\" + \"%.40s\") names a piece missing from the vocabulary", rank,
                     cJSON_IsString(item) ? item->valuestring : left, right);
            status = bad_file(lc, DMLLM_ERR_FORMAT, what);
            break;
        }
        const uint64_t pair = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        merge_entry *e = &t->merges.entries[pair_slot(&t->merges, pair)];
        if (e->pair == UINT64_MAX) *e = (merge_entry){pair, rank, merged}; /* the first (lowest) rank wins */
        rank++;
    }
    free(joined);
    return status;
}

static dmllm_status add_step(const load_context *lc, pretokenize_step **step) {
    dmllm_tokenizer *t = lc->t;
    pretokenize_step *grown = realloc(t->steps, (size_t)(t->n_steps + 1) * sizeof *grown);
    if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory loading %s", lc->path);
    t->steps = grown;
    *step = &t->steps[t->n_steps++];
    memset(*step, 0, sizeof **step);
    return DMLLM_OK;
}

static dmllm_status load_split(const load_context *lc, const cJSON *split) {
    static const struct { const char *name; split_behaviour behaviour; } behaviours[] = {
        {"Removed", SPLIT_REMOVED}, {"Isolated", SPLIT_ISOLATED}, {"MergedWithPrevious", SPLIT_MERGED_WITH_PREVIOUS},
        {"MergedWithNext", SPLIT_MERGED_WITH_NEXT}, {"Contiguous", SPLIT_CONTIGUOUS}};
    pretokenize_step *step = NULL;
    DMLLM_TRY(add_step(lc, &step));
    const cJSON *behaviour = cJSON_GetObjectItemCaseSensitive(split, "behavior");
    int found = -1;
    for (int i = 0; i < 5 && cJSON_IsString(behaviour); i++)
        if (strcmp(behaviour->valuestring, behaviours[i].name) == 0) found = i;
    if (found < 0) return bad_file(lc, DMLLM_ERR_UNSUPPORTED, "a Split pre-tokenizer has an unknown behavior");
    step->behaviour = behaviours[found].behaviour;
    step->invert = json_true(split, "invert");
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(split, "pattern");
    const cJSON *regex = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
    const cJSON *literal = cJSON_GetObjectItemCaseSensitive(pattern, "String");
    if (cJSON_IsString(regex)) {
        dmllm_status status = dmllm_regex_compile(regex->valuestring, &step->regex);
        return status == DMLLM_OK ? status : dmllm_fail_context(status, "%s: pre_tokenizer Split", lc->path);
    }
    if (!cJSON_IsString(literal) || literal->valuestring[0] == '\0')
        return bad_file(lc, DMLLM_ERR_FORMAT, "a Split pre-tokenizer has no Regex or String pattern");
    const size_t n = strlen(literal->valuestring);
    DMLLM_TRY(dmllm_alloc(&step->literal, n, sizeof *step->literal, "a Split pattern"));
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const int len = dmllm_utf8_decode((const unsigned char *)literal->valuestring + i, n - i, &cp);
        if (!len) return bad_file(lc, DMLLM_ERR_FORMAT, "a Split pattern is not valid UTF-8");
        step->literal[step->literal_length++] = cp;
        i += (size_t)len;
    }
    return DMLLM_OK;
}

static dmllm_status load_pretokenizer(const load_context *lc, const cJSON *pre) {
    if (!pre || cJSON_IsNull(pre)) return DMLLM_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (!cJSON_IsString(type)) return bad_file(lc, DMLLM_ERR_FORMAT, "pre_tokenizer has no type");
    if (strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers"), *item;
        if (!cJSON_IsArray(items)) return bad_file(lc, DMLLM_ERR_FORMAT, "pre_tokenizer Sequence has no pretokenizers");
        cJSON_ArrayForEach(item, items) DMLLM_TRY(load_pretokenizer(lc, item));
        return DMLLM_OK;
    }
    if (strcmp(type->valuestring, "Split") == 0) return load_split(lc, pre);
    if (strcmp(type->valuestring, "ByteLevel") == 0) {
        if (json_true(pre, "add_prefix_space"))
            return bad_file(lc, DMLLM_ERR_UNSUPPORTED, "ByteLevel add_prefix_space = true is not supported");
        const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(pre, "use_regex");
        if (use_regex && !cJSON_IsTrue(use_regex)) return DMLLM_OK; /* byte mapping only: always done */
        pretokenize_step *step = NULL;
        DMLLM_TRY(add_step(lc, &step));
        step->behaviour = SPLIT_ISOLATED;
        return dmllm_regex_compile(gpt2_pattern, &step->regex);
    }
    char what[120];
    snprintf(what, sizeof what, "pre_tokenizer type \"%.40s\" is not supported", type->valuestring);
    return bad_file(lc, DMLLM_ERR_UNSUPPORTED, what);
}

static dmllm_status check_sections(const load_context *lc, const cJSON *root) {
    const cJSON *normalizer = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (normalizer && !cJSON_IsNull(normalizer)) return bad_file(lc, DMLLM_ERR_UNSUPPORTED, "a normalizer is not supported");
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(decoder, "type");
    if (decoder && !cJSON_IsNull(decoder) && !(cJSON_IsString(type) && strcmp(type->valuestring, "ByteLevel") == 0))
        return bad_file(lc, DMLLM_ERR_UNSUPPORTED, "decoder is not ByteLevel");
    return DMLLM_OK;
}

static dmllm_status parse(const load_context *lc, const cJSON *root) {
    dmllm_tokenizer *t = lc->t;
    if (!cJSON_IsObject(root)) return bad_file(lc, DMLLM_ERR_FORMAT, "not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    DMLLM_TRY(check_sections(lc, root));
    DMLLM_TRY(check_model(lc, model));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    t->ignore_merges = json_true(model, "ignore_merges");
    DMLLM_TRY(count_ids(lc, vocab, added, &t->vocab_size));
    DMLLM_TRY(dmllm_alloc(&t->tokens, (size_t)t->vocab_size, sizeof *t->tokens, "the vocabulary"));
    memset(t->tokens, 0, (size_t)t->vocab_size * sizeof *t->tokens);
    DMLLM_TRY(load_vocab(lc, vocab));
    DMLLM_TRY(load_added(lc, added));
    qsort_r(t->added, (size_t)t->n_added, sizeof *t->added, longer_content_first, t->tokens);
    DMLLM_TRY(index_pieces(lc));
    DMLLM_TRY(load_merges(lc, cJSON_GetObjectItemCaseSensitive(model, "merges")));
    return load_pretokenizer(lc, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
}

static dmllm_status read_whole_file(const char *path, char **out, size_t *size) {
    struct stat st;
    if (stat(path, &st) != 0) return dmllm_fail(DMLLM_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size > (1ll << 31)) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: not a regular file under 2 GiB", path);
    FILE *f = fopen(path, "rb");
    if (!f) return dmllm_fail(DMLLM_ERR_IO, "%s: %s", path, strerror(errno));
    dmllm_status status = dmllm_alloc(out, (size_t)st.st_size + 1, 1, "the tokenizer file");
    if (status == DMLLM_OK && fread(*out, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        status = dmllm_fail(DMLLM_ERR_IO, "%s: short read", path);
    fclose(f);
    *size = (size_t)st.st_size;
    return status;
}

dmllm_status dmllm_tokenizer_parse(const char *json, size_t size, const char *source, dmllm_tokenizer **out) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, size);
    if (!root) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: not valid JSON", source);
    dmllm_status status = DMLLM_OK;
    dmllm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory");
    if (status == DMLLM_OK) {
        build_byte_alphabet(t);
        const load_context lc = {source, t};
        status = parse(&lc, root);
    }
    cJSON_Delete(root);
    if (status != DMLLM_OK) {
        dmllm_tokenizer_free(t);
        return status;
    }
    *out = t;
    return DMLLM_OK;
}

dmllm_status dmllm_tokenizer_load(const char *path, dmllm_tokenizer **out) {
    *out = NULL;
    char *text = NULL;
    size_t size = 0;
    dmllm_status status = read_whole_file(path, &text, &size);
    if (status == DMLLM_OK) status = dmllm_tokenizer_parse(text, size, path, out);
    free(text);
    return status;
}

/* ---- lookups --------------------------------------------------------------------------------- */

int32_t dmllm_tokenizer_find(const dmllm_tokenizer *t, const char *content) {
    return content ? string_table_get(&t->pieces, content, strlen(content)) : -1;
}

const char *dmllm_tokenizer_bytes(const dmllm_tokenizer *t, int32_t id, size_t *out_len) {
    if (id < 0 || id >= t->vocab_size || !t->tokens[id].piece) return NULL;
    if (out_len) *out_len = t->tokens[id].n_bytes;
    return (const char *)t->tokens[id].bytes;
}

bool dmllm_tokenizer_is_special(const dmllm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && t->tokens[id].special;
}

/* ---- encoding -------------------------------------------------------------------------------- */

typedef struct id_list {
    int32_t *ids;
    size_t count, capacity;
} id_list;

static dmllm_status push_id(id_list *list, int32_t id) {
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        int32_t *grown = realloc(list->ids, capacity * sizeof *grown);
        if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory encoding text");
        list->ids = grown;
        list->capacity = capacity;
    }
    list->ids[list->count++] = id;
    return DMLLM_OK;
}

/* A merge candidate: symbols left and its right neighbour, as they were when it was queued. */
typedef struct candidate {
    int32_t rank;
    int left;
    int32_t left_id, right_id, merged;
} candidate;

static bool before(const candidate *a, const candidate *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void heap_push(candidate *heap, int *n, candidate c) {
    int i = (*n)++;
    while (i > 0 && before(&c, &heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = c;
}

static candidate heap_pop(candidate *heap, int *n) {
    const candidate top = heap[0], last = heap[--(*n)];
    int i = 0;
    for (;;) {
        int child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && before(&heap[child + 1], &heap[child])) child++;
        if (!before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0) heap[i] = last;
    return top;
}

typedef struct symbol {
    int32_t id;
    int prev, next;   /* neighbours, -1 at the ends */
} symbol;

static void queue_pair(const dmllm_tokenizer *t, const symbol *symbols, int left, candidate *heap, int *n_heap) {
    if (left < 0 || symbols[left].next < 0) return;
    const int right = symbols[left].next;
    const uint64_t pair = (uint64_t)(uint32_t)symbols[left].id << 32 | (uint32_t)symbols[right].id;
    const merge_entry *e = &t->merges.entries[pair_slot(&t->merges, pair)];
    if (e->pair == UINT64_MAX) return;
    heap_push(heap, n_heap, (candidate){e->rank, left, symbols[left].id, symbols[right].id, e->merged});
}

/* BPE over one pre-token given as raw bytes. */
static dmllm_status encode_piece(const dmllm_tokenizer *t, const unsigned char *bytes, size_t n, id_list *out) {
    if (n == 0) return DMLLM_OK;
    if (t->ignore_merges || n == 1) {
        char stack_buffer[256];
        char *spelled = n * 2 <= sizeof stack_buffer ? stack_buffer : malloc(2 * n);
        if (!spelled) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory encoding text");
        size_t length = 0;
        for (size_t i = 0; i < n; i++) length += (size_t)dmllm_utf8_encode(t->byte_to_char[bytes[i]], spelled + length);
        const int32_t whole = string_table_get(&t->pieces, spelled, length);
        if (spelled != stack_buffer) free(spelled);
        if (whole >= 0 && !t->tokens[whole].special) return push_id(out, whole);
    }
    symbol *symbols = NULL;   /* [n] */
    candidate *heap = NULL;   /* [2n]: at most n-1 initial pairs plus two per merge */
    dmllm_status status = dmllm_alloc(&symbols, n, sizeof *symbols, "BPE symbols");
    if (status == DMLLM_OK) status = dmllm_alloc(&heap, 2 * n + 2, sizeof *heap, "BPE candidates");
    int count = 0, n_heap = 0;
    for (size_t i = 0; status == DMLLM_OK && i < n; i++) {
        const int32_t id = t->byte_token[bytes[i]];
        if (id < 0) continue; /* a byte without a token is dropped, as HF does without an unk token */
        symbols[count] = (symbol){id, count - 1, -1};
        if (count > 0) symbols[count - 1].next = count;
        count++;
    }
    for (int i = 0; status == DMLLM_OK && i + 1 < count; i++) queue_pair(t, symbols, i, heap, &n_heap);
    while (status == DMLLM_OK && n_heap > 0) {
        const candidate c = heap_pop(heap, &n_heap);
        const int right = symbols[c.left].next;
        if (symbols[c.left].id != c.left_id || right < 0 || symbols[right].id != c.right_id) continue; /* stale */
        symbols[c.left].id = c.merged;
        symbols[c.left].next = symbols[right].next;
        if (symbols[right].next >= 0) symbols[symbols[right].next].prev = c.left;
        symbols[right].id = -1;
        queue_pair(t, symbols, symbols[c.left].prev, heap, &n_heap);
        queue_pair(t, symbols, c.left, heap, &n_heap);
    }
    for (int i = count ? 0 : -1; status == DMLLM_OK && i >= 0; i = symbols[i].next) status = push_id(out, symbols[i].id);
    free(symbols);
    free(heap);
    return status;
}

/* A pre-token: code points [start, end) of the segment. */
typedef struct span {
    size_t start, end;
} span;

typedef struct span_list {
    span *items;
    size_t count, capacity;
} span_list;

static dmllm_status push_span(span_list *list, size_t start, size_t end) {
    if (start >= end) return DMLLM_OK;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 32;
        span *grown = realloc(list->items, capacity * sizeof *grown);
        if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory pre-tokenizing");
        list->items = grown;
        list->capacity = capacity;
    }
    list->items[list->count++] = (span){start, end};
    return DMLLM_OK;
}

/* Next match of a step inside cps[from .. n): 1 found, 0 none, < 0 error. */
static int find_match(const pretokenize_step *step, const uint32_t *cps, size_t n, size_t from, span *match) {
    if (step->regex) {
        int r = dmllm_regex_search(step->regex, cps, n, from, &match->start, &match->end);
        while (r == 1 && match->end == match->start) { /* empty matches split nothing */
            if (match->start >= n) return 0;
            r = dmllm_regex_search(step->regex, cps, n, match->start + 1, &match->start, &match->end);
        }
        return r;
    }
    for (size_t i = from; i + step->literal_length <= n; i++)
        if (memcmp(cps + i, step->literal, step->literal_length * sizeof *cps) == 0) {
            *match = (span){i, i + step->literal_length};
            return 1;
        }
    return 0;
}

/* Splits one piece by a step, appending the resulting pieces to out (HF SplitDelimiterBehavior). */
static dmllm_status split_piece(const pretokenize_step *step, const uint32_t *cps, span piece, span_list *out) {
    const uint32_t *text = cps + piece.start;
    const size_t n = piece.end - piece.start;
    span pending = {0, 0};   /* a piece waiting for MergedWithNext or Contiguous */
    bool pending_is_match = false;
    size_t position = 0;
    for (;;) {
        span m;
        const int found = find_match(step, text, n, position, &m);
        if (found < 0) return (dmllm_status)found;
        const span gap = {position, found ? m.start : n};
        /* Segments in order: the gap (not a match) then the match; invert swaps their roles. */
        for (int part = 0; part < (found ? 2 : 1); part++) {
            const span segment = part == 0 ? gap : m;
            if (segment.start >= segment.end) continue;
            const bool is_match = (part == 1) != step->invert;
            span emit = {0, 0};
            bool have_emit = false;
            switch (step->behaviour) {
            case SPLIT_ISOLATED: emit = segment, have_emit = true; break;
            case SPLIT_REMOVED: if (!is_match) emit = segment, have_emit = true; break;
            case SPLIT_MERGED_WITH_PREVIOUS:
                if (is_match && pending.end == segment.start && pending.end > pending.start) pending.end = segment.end;
                else {
                    if (pending.end > pending.start) emit = pending, have_emit = true;
                    pending = segment;
                }
                break;
            case SPLIT_MERGED_WITH_NEXT:
                if (pending_is_match && pending.end == segment.start) {
                    pending.end = segment.end;
                    pending_is_match = is_match;
                } else {
                    if (pending.end > pending.start) emit = pending, have_emit = true;
                    pending = segment;
                    pending_is_match = is_match;
                }
                break;
            case SPLIT_CONTIGUOUS:
                if (is_match && pending_is_match && pending.end == segment.start) pending.end = segment.end;
                else {
                    if (pending.end > pending.start) emit = pending, have_emit = true;
                    pending = segment;
                    pending_is_match = is_match;
                }
                break;
            }
            if (have_emit) DMLLM_TRY(push_span(out, piece.start + emit.start, piece.start + emit.end));
        }
        if (!found) break;
        position = m.end;
    }
    if (pending.end > pending.start) DMLLM_TRY(push_span(out, piece.start + pending.start, piece.start + pending.end));
    return DMLLM_OK;
}

/* Text without added tokens: pre-tokenize, then BPE each piece. */
static dmllm_status encode_segment(const dmllm_tokenizer *t, const char *text, size_t length, id_list *out) {
    if (length == 0) return DMLLM_OK;
    uint32_t *cps = NULL;     /* [length] code points */
    size_t *offsets = NULL;   /* [length + 1] byte offset of each code point */
    span_list pieces = {0}, next = {0};
    size_t n = 0;
    dmllm_status status = dmllm_alloc(&cps, length, sizeof *cps, "the text");
    if (status == DMLLM_OK) status = dmllm_alloc(&offsets, length + 1, sizeof *offsets, "the text");
    for (size_t i = 0; status == DMLLM_OK && i < length;) {
        const int len = dmllm_utf8_decode((const unsigned char *)text + i, length - i, &cps[n]);
        if (!len) {
            status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "text is not valid UTF-8 (byte %zu)", i);
            break;
        }
        offsets[n++] = i;
        i += (size_t)len;
    }
    if (status == DMLLM_OK) {
        offsets[n] = length;
        status = push_span(&pieces, 0, n);
    }
    for (int s = 0; status == DMLLM_OK && s < t->n_steps; s++) {
        next.count = 0;
        for (size_t p = 0; status == DMLLM_OK && p < pieces.count; p++)
            status = split_piece(&t->steps[s], cps, pieces.items[p], &next);
        const span_list swap = pieces;
        pieces = next;
        next = swap;
    }
    for (size_t p = 0; status == DMLLM_OK && p < pieces.count; p++) {
        const size_t from = offsets[pieces.items[p].start], to = offsets[pieces.items[p].end];
        status = encode_piece(t, (const unsigned char *)text + from, to - from, out);
    }
    free(cps);
    free(offsets);
    free(pieces.items);
    free(next.items);
    return status;
}

/* The longest added token at text[0..], or -1. */
static int32_t match_added(const dmllm_tokenizer *t, const char *text, size_t length, bool parse_special, size_t *matched) {
    for (int i = 0; i < t->n_added; i++) { /* longest first */
        const token_info *info = &t->tokens[t->added[i]];
        if ((info->special && !parse_special) || info->n_bytes > length) continue;
        if (memcmp(text, info->bytes, info->n_bytes) == 0) {
            *matched = info->n_bytes;
            return t->added[i];
        }
    }
    return -1;
}

dmllm_status dmllm_tokenizer_encode(const dmllm_tokenizer *t, const char *text, size_t len, bool parse_special,
                                    int32_t **out_ids, size_t *out_count) {
    *out_ids = NULL;
    *out_count = 0;
    if (!text && len) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "tokenize: NULL text");
    id_list ids = {0};
    dmllm_status status = DMLLM_OK;
    size_t segment = 0;
    /* Added tokens can only start where their first byte does; a table of first bytes skips the rest. */
    bool starts[256] = {false};
    for (int i = 0; i < t->n_added; i++) starts[t->tokens[t->added[i]].bytes[0]] = true;
    for (size_t pos = 0; status == DMLLM_OK && pos < len;) {
        size_t matched = 0;
        const int32_t id = starts[(unsigned char)text[pos]] ? match_added(t, text + pos, len - pos, parse_special, &matched) : -1;
        if (id < 0) {
            pos++;
            continue;
        }
        status = encode_segment(t, text + segment, pos - segment, &ids);
        if (status == DMLLM_OK) status = push_id(&ids, id);
        pos += matched;
        segment = pos;
    }
    if (status == DMLLM_OK) status = encode_segment(t, text + segment, len - segment, &ids);
    if (status != DMLLM_OK) {
        free(ids.ids);
        return status;
    }
    if (!ids.ids) status = dmllm_alloc(&ids.ids, 1, sizeof *ids.ids, "the token ids");
    *out_ids = ids.ids;
    *out_count = ids.count;
    return status;
}

/* ---- decoding -------------------------------------------------------------------------------- */

/* Length of the longest prefix of s that could still start a valid UTF-8 sequence (the "maximal
 * subpart" that Rust's from_utf8_lossy and WHATWG decoders replace by one U+FFFD), and the length
 * the sequence needs in full. */
static void utf8_prefix(const unsigned char *s, size_t len, size_t *valid_prefix, size_t *needed) {
    const unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) *needed = 2;
    else if (c >= 0xE0 && c <= 0xEF) *needed = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) *needed = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else {
        *needed = 1;
        *valid_prefix = c < 0x80 ? 1 : 0;
        return;
    }
    size_t k = 1;
    if (k < len && s[1] >= lo && s[1] <= hi) {
        k++;
        while (k < len && k < *needed && (s[k] & 0xC0) == 0x80) k++;
    }
    *valid_prefix = k;
}

/* Appends bytes as UTF-8 with invalid parts replaced; with keep_tail, an incomplete but so far
 * valid sequence at the end is left unconsumed. Returns the bytes consumed. */
static size_t append_lossy(const unsigned char *bytes, size_t n, bool keep_tail, char *out, size_t *out_len) {
    size_t i = 0;
    while (i < n) {
        size_t prefix, needed;
        utf8_prefix(bytes + i, n - i, &prefix, &needed);
        if (prefix == needed) {
            memcpy(out + *out_len, bytes + i, needed);
            *out_len += needed;
            i += needed;
            continue;
        }
        if (keep_tail && prefix > 0 && i + prefix == n) break; /* may be completed by the next bytes */
        memcpy(out + *out_len, "\xEF\xBF\xBD", 3);
        *out_len += 3;
        i += prefix ? prefix : 1;
    }
    return i;
}

dmllm_status dmllm_tokenizer_decode(const dmllm_tokenizer *t, const int32_t *ids, size_t count, bool skip_special,
                                    char **out_text) {
    *out_text = NULL;
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size || !t->tokens[ids[i]].piece)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "detokenize: id %d is not in the vocabulary", (int)ids[i]);
        total += t->tokens[ids[i]].n_bytes;
    }
    unsigned char *bytes = NULL; /* [total] raw bytes */
    DMLLM_TRY(dmllm_alloc(&bytes, total + 1, 1, "the decoded bytes"));
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        const token_info *info = &t->tokens[ids[i]];
        if (skip_special && info->special) continue;
        memcpy(bytes + n, info->bytes, info->n_bytes);
        n += info->n_bytes;
    }
    char *text = NULL; /* each invalid byte becomes at most 3 bytes */
    dmllm_status status = dmllm_alloc(&text, 3 * n + 1, 1, "the decoded text");
    if (status == DMLLM_OK) {
        size_t length = 0;
        append_lossy(bytes, n, false, text, &length);
        text[length] = '\0';
        *out_text = text;
    }
    free(bytes);
    return status;
}

dmllm_status dmllm_tokenizer_stream(const dmllm_tokenizer *t, dmllm_utf8_stream *stream, int32_t id, bool skip_special,
                                    char *out, size_t capacity, size_t *out_len) {
    *out_len = 0;
    if (id < 0 || id >= t->vocab_size || !t->tokens[id].piece)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "detokenize: id %d is not in the vocabulary", (int)id);
    const token_info *info = &t->tokens[id];
    if (skip_special && info->special) {
        if (capacity) out[0] = '\0';
        return DMLLM_OK;
    }
    const size_t n = (size_t)stream->n_pending + info->n_bytes;
    if (capacity < 3 * n + 1)
        return dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "detokenize: token %d needs %zu bytes of output", (int)id, 3 * n + 1);
    unsigned char stack_buffer[64];
    unsigned char *bytes = n <= sizeof stack_buffer ? stack_buffer : malloc(n);
    if (!bytes) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory decoding");
    memcpy(bytes, stream->pending, (size_t)stream->n_pending);
    memcpy(bytes + stream->n_pending, info->bytes, info->n_bytes);
    const size_t consumed = append_lossy(bytes, n, true, out, out_len);
    stream->n_pending = (int)(n - consumed);
    memcpy(stream->pending, bytes + consumed, (size_t)stream->n_pending);
    out[*out_len] = '\0';
    if (bytes != stack_buffer) free(bytes);
    return DMLLM_OK;
}

void dmllm_tokenizer_stream_flush(dmllm_utf8_stream *stream, char *out, size_t capacity, size_t *out_len) {
    *out_len = 0;
    if (stream->n_pending && capacity >= 4) {
        memcpy(out, "\xEF\xBF\xBD", 3);
        *out_len = 3;
    }
    if (capacity) out[*out_len] = '\0';
    stream->n_pending = 0;
}
