/*
 * test_tokenizer.c: lib/tokenizer.c and lib/regex.c.
 *  - parity with the npm package @huggingface/tokenizers (an independent implementation): the
 *    committed tests/fixtures/tokenizer/expected.json holds its ids and decoded text for 424
 *    adversarial strings on tokenizer.json (a BPE the project trained with
 *    tools/tokenizer/build_tokenizer.py, Youtu pre-tokenizer); tests/tokenizer_oracle/ regenerates it;
 *  - round trips, streaming decode across split UTF-8, special-token handling;
 *  - regex engine cases and refusals; malformed tokenizer.json files.
 */
#include "regex.h"
#include "tokenizer.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dmllm_tokenizer *load_fixture(void) {
    dmllm_tokenizer *t = NULL;
    CHECK_OK(dmllm_tokenizer_load(test_source_path("tests/fixtures/tokenizer/tokenizer.json"), &t));
    return t;
}

static char *stream_decode(const dmllm_tokenizer *t, const int32_t *ids, size_t n) {
    char *text = calloc(1, 16 * n + 16), piece[256];
    size_t length = 0, piece_length;
    dmllm_utf8_stream stream = {{0}, 0};
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(dmllm_tokenizer_stream(t, &stream, ids[i], false, piece, sizeof piece, &piece_length));
        memcpy(text + length, piece, piece_length);
        length += piece_length;
    }
    dmllm_tokenizer_stream_flush(&stream, piece, sizeof piece, &piece_length);
    memcpy(text + length, piece, piece_length + 1);
    return text;
}

static void test_oracle_parity(const dmllm_tokenizer *t) {
    size_t size = 0;
    char *json = test_read_file(test_source_path("tests/fixtures/tokenizer/expected.json"), &size);
    cJSON *root = json ? cJSON_ParseWithLength(json, size) : NULL;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases"), *c;
    CHECK_MSG(cJSON_GetArraySize(cases) >= 400, "expected.json holds the oracle's cases");
    int n_cases = 0, id_mismatches = 0, text_mismatches = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "ids");
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(dmllm_tokenizer_encode(t, text, strlen(text), true, &ids, &n));
        bool same = (int)n == cJSON_GetArraySize(want);
        for (int i = 0; same && i < (int)n; i++) same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
        if (!same && id_mismatches++ < 5) {
            fprintf(stderr, "ids differ for \"%s\": got", text);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, ", want");
            for (int i = 0; i < cJSON_GetArraySize(want); i++) fprintf(stderr, " %d", cJSON_GetArrayItem(want, i)->valueint);
            fprintf(stderr, "\n");
        }
        char *decoded = NULL, *skipped = NULL;
        CHECK_OK(dmllm_tokenizer_decode(t, ids, n, false, &decoded));
        CHECK_OK(dmllm_tokenizer_decode(t, ids, n, true, &skipped));
        char *streamed = stream_decode(t, ids, n);
        const char *want_decoded = cJSON_GetObjectItemCaseSensitive(c, "decoded")->valuestring;
        const char *want_skipped = cJSON_GetObjectItemCaseSensitive(c, "decoded_skip_special")->valuestring;
        const bool text_ok = decoded && skipped && strcmp(decoded, want_decoded) == 0 &&
                             strcmp(skipped, want_skipped) == 0 && strcmp(decoded, text) == 0 && strcmp(streamed, text) == 0;
        if (!text_ok && text_mismatches++ < 5)
            fprintf(stderr, "text differs for \"%s\": decoded \"%s\", skip \"%s\", streamed \"%s\"\n", text,
                    decoded ? decoded : "", skipped ? skipped : "", streamed);
        free(decoded);
        free(skipped);
        free(streamed);
        free(ids);
        n_cases++;
    }
    CHECK_MSG(id_mismatches == 0, "%d of %d strings encode differently from @huggingface/tokenizers", id_mismatches, n_cases);
    CHECK_MSG(text_mismatches == 0, "%d of %d strings do not decode / round-trip like the oracle", text_mismatches, n_cases);
    printf("oracle parity: %d strings, %d id mismatches, %d text mismatches\n", n_cases, id_mismatches, text_mismatches);
    cJSON_Delete(root);
    free(json);
}

static void test_specials(const dmllm_tokenizer *t) {
    const int32_t pad = dmllm_tokenizer_find(t, "<|image_pad|>"), fg = dmllm_tokenizer_find(t, "<FG>");
    CHECK(pad >= 0 && fg >= 0 && dmllm_tokenizer_is_special(t, pad) && !dmllm_tokenizer_is_special(t, fg));
    CHECK(dmllm_tokenizer_find(t, "<no such token>") == -1);
    int32_t *ids = NULL;
    size_t n = 0;
    const char *text = "a<|image_pad|><FG>";
    CHECK_OK(dmllm_tokenizer_encode(t, text, strlen(text), true, &ids, &n));
    CHECK(n == 3 && ids[1] == pad && ids[2] == fg);
    free(ids);
    /* Without parse_special the special token is plain text; non-special added tokens still match. */
    CHECK_OK(dmllm_tokenizer_encode(t, text, strlen(text), false, &ids, &n));
    bool has_pad = false;
    for (size_t i = 0; i < n; i++) has_pad |= ids[i] == pad;
    CHECK(!has_pad && n > 3 && ids[n - 1] == fg);
    char *decoded = NULL;
    CHECK_OK(dmllm_tokenizer_decode(t, ids, n, false, &decoded));
    CHECK(decoded && strcmp(decoded, text) == 0);
    free(decoded);
    free(ids);
    /* Invalid UTF-8 input is refused; out-of-range ids too. */
    CHECK_STATUS(dmllm_tokenizer_encode(t, "a\xff", 2, true, &ids, &n), DMLLM_ERR_INVALID_ARGUMENT);
    const int32_t bad = dmllm_tokenizer_vocab_size(t);
    CHECK_STATUS(dmllm_tokenizer_decode(t, &bad, 1, false, &decoded), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(dmllm_tokenizer_bytes(t, -1, NULL) == NULL);
}

/* A 4-byte character split over byte tokens decodes only when complete; a lone continuation byte
 * becomes U+FFFD (one per maximal invalid subpart, as Rust's from_utf8_lossy). */
static void test_streaming(const dmllm_tokenizer *t) {
    int32_t *ids = NULL;
    size_t n = 0;
    const char *emoji = "\xF0\x9F\x98\x80";
    CHECK_OK(dmllm_tokenizer_encode(t, emoji, 4, true, &ids, &n));
    dmllm_utf8_stream stream = {{0}, 0};
    char out[64];
    size_t length = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(dmllm_tokenizer_stream(t, &stream, ids[i], false, out, sizeof out, &length));
        total += length;
        if (i + 1 < n) CHECK(length == 0);
    }
    CHECK(total == 4 && strcmp(out, emoji) == 0 && stream.n_pending == 0);
    free(ids);
    /* Raw byte tokens 0xF0 0x9F 'a', looked up by their byte-level spelling: 0xF0 is printable
     * (U+00F0), 0x9F is not (mapped to U+0141). The incomplete prefix F0 9F is one U+FFFD. */
    const int32_t byte_ids[3] = {dmllm_tokenizer_find(t, "\xC3\xB0"), dmllm_tokenizer_find(t, "\xC5\x81"),
                                 dmllm_tokenizer_find(t, "a")};
    CHECK(byte_ids[0] >= 0 && byte_ids[1] >= 0 && byte_ids[2] >= 0);
    if (byte_ids[0] >= 0 && byte_ids[1] >= 0 && byte_ids[2] >= 0) {
        char *decoded = NULL;
        CHECK_OK(dmllm_tokenizer_decode(t, byte_ids, 3, false, &decoded));
        CHECK_MSG(decoded && strcmp(decoded, "\xEF\xBF\xBD" "a") == 0, "lossy decode: %s", decoded ? decoded : "");
        free(decoded);
        char *streamed = stream_decode(t, byte_ids, 2);
        CHECK(strcmp(streamed, "\xEF\xBF\xBD") == 0); /* flushed at the end */
        free(streamed);
    }
}

typedef struct regex_case {
    const char *pattern, *text;
    const char *matches; /* the matches joined by '|' */
} regex_case;

static void test_regex(void) {
    static const regex_case cases[] = {
        {"a+", "caaab", "aaa"},
        {"\\s+(?!\\S)|\\s+", "a   b  ", "  | |  "},
        {"\\p{N}", "a12", "1|2"},
        {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+", "hi there, Wörld", "hi| there| Wörld"},
        {"(?i:'s|'t)", "it'S what's", "'S|'s"},
        {"\\p{N}{1,3}", "1234567", "123|456|7"},
        {"[가-힣]+|[一-龥]+", "한국 中文", "한국|中文"},
        {"a*?b", "aab", "aab"},
        {"x(?=y)", "xz xy", "x"},
        {"\\x41\\u0042", "AB", "AB"},
        {"[\\s\\d]+", "a 1 b", " 1 "},
        {"\\P{L}+", "ab12cd", "12"},
        {"colou?r", "color colour", "color|colour"},
        {".", "\n", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dmllm_regex *re = NULL;
        CHECK_OK(dmllm_regex_compile(cases[i].pattern, &re));
        if (!re) continue;
        uint32_t cps[64];
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)cases[i].text; *p;) {
            uint32_t cp = *p++;
            if (cp >= 0x80) {
                int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : 1;
                cp &= 0x3F >> extra;
                while (extra--) cp = (cp << 6) | (*p++ & 0x3F);
            }
            cps[n++] = cp;
        }
        char got[256] = "";
        size_t from = 0, start, end;
        while (dmllm_regex_search(re, cps, n, from, &start, &end) == 1 && end > start) {
            if (got[0]) strcat(got, "|");
            for (size_t k = start; k < end; k++) {
                char utf8[5] = {0};
                if (cps[k] < 0x80) utf8[0] = (char)cps[k];
                else if (cps[k] < 0x800) utf8[0] = (char)(0xC0 | (cps[k] >> 6)), utf8[1] = (char)(0x80 | (cps[k] & 0x3F));
                else utf8[0] = (char)(0xE0 | (cps[k] >> 12)), utf8[1] = (char)(0x80 | ((cps[k] >> 6) & 0x3F)),
                    utf8[2] = (char)(0x80 | (cps[k] & 0x3F));
                strcat(got, utf8);
            }
            from = end;
        }
        CHECK_MSG(strcmp(got, cases[i].matches) == 0, "/%s/ on \"%s\": got \"%s\", want \"%s\"", cases[i].pattern,
                  cases[i].text, got, cases[i].matches);
        dmllm_regex_free(re);
    }
    static const char *const refused[] = {"(?<name>a)", "a**", "\\bword", "[[a]]", "^a", "(a", "a)", "[a-",
                                          "\\p{Greek}", "a{2,1}", "(?:)*", "\\"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        dmllm_regex *re = NULL;
        const dmllm_status status = dmllm_regex_compile(refused[i], &re);
        CHECK_MSG(status != DMLLM_OK && re == NULL && strstr(dmllm_last_error(), "regex"), "/%s/ should be refused",
                  refused[i]);
    }
}

/* A long pattern compiles without deep recursion: only nested groups (at most 100) nest the
 * compiler; sequences and alternatives are lists. 200,000 items overflowed the stack before. */
static void test_regex_long_patterns(void) {
    enum { ITEMS = 200000 };
    char *pattern = malloc(2 * ITEMS + 2);
    CHECK(pattern != NULL);
    if (!pattern) return;
    const struct { const char *item; size_t bytes; } shapes[] = {{"a", 1}, {"a|", 2}, {"(?:a)b", 6}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t n = 0;
        while (n + shapes[s].bytes < 2 * ITEMS) memcpy(pattern + n, shapes[s].item, shapes[s].bytes), n += shapes[s].bytes;
        pattern[n++] = 'z';
        pattern[n] = '\0';
        dmllm_regex *re = NULL;
        const dmllm_status status = dmllm_regex_compile(pattern, &re);
        CHECK_MSG(status == DMLLM_OK || (status == DMLLM_ERR_UNSUPPORTED && strstr(dmllm_last_error(), "too large")),
                  "shape %zu: %s", s, dmllm_last_error());
        if (re) {
            const uint32_t text[] = {'a', 'x'};
            size_t start = 0, end = 0;
            const int found = dmllm_regex_search(re, text, 2, 0, &start, &end);
            /* "aaa..z" and "(?:a)b..." need their whole run; "a|a|...|z" matches the first 'a'. */
            CHECK_MSG(s == 1 ? found == 1 && start == 0 && end == 1 : found == 0, "shape %zu: found %d at %zu-%zu",
                      s, found, start, end);
        }
        dmllm_regex_free(re);
    }
    free(pattern);
}

static void test_malformed(void) {
    static const struct { const char *json, *named; } cases[] = {
        {"{", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}", "BPE"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "empty"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", "valid id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", "twice"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "missing"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [3]}}", "merge 0"},
        {"{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": []}}", "byte_fallback"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\\u4e00\": 0}, \"merges\": []}}", "alphabet"},
        {"{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "normalizer"},
        {"{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "Metaspace"},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?<x>a)\"}, \"behavior\": \"Isolated\"},"
         " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "regex"},
        {"{\"added_tokens\": [{\"id\": 1, \"content\": \"<x>\", \"lstrip\": true}], \"model\": {\"type\": \"BPE\","
         " \"vocab\": {\"a\": 0}, \"merges\": []}}", "lstrip"},
        {"{\"added_tokens\": [{\"id\": 1}], \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "content"},
        {"{\"decoder\": {\"type\": \"WordPiece\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "decoder"},
    };
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer.json", test_temp_dir());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(test_write_file(path, cases[i].json, strlen(cases[i].json)) == 0);
        dmllm_tokenizer *t = NULL;
        const dmllm_status status = dmllm_tokenizer_load(path, &t);
        CHECK_MSG(status != DMLLM_OK && t == NULL && strstr(dmllm_last_error(), cases[i].named) &&
                      strstr(dmllm_last_error(), "tokenizer.json"),
                  "case %zu: %s", i, dmllm_last_error());
        dmllm_tokenizer_free(t);
    }
    dmllm_tokenizer *t = NULL;
    CHECK_STATUS(dmllm_tokenizer_load("/nonexistent/tokenizer.json", &t), DMLLM_ERR_IO);
    dmllm_tokenizer_free(NULL);
}

int main(void) {
    dmllm_tokenizer *t = load_fixture();
    if (t) {
        test_oracle_parity(t);
        test_specials(t);
        test_streaming(t);
    }
    dmllm_tokenizer_free(t);
    test_regex();
    test_regex_long_patterns();
    test_malformed();
    return test_finish("test_tokenizer");
}
