/* fuzz_tokenizer_encode.c: arbitrary bytes encoded by the tokenizer of models/tiny. The first
 * byte chooses whether special tokens are parsed; the rest is the text (NULs included). Byte-level
 * BPE loses nothing, so valid UTF-8 must decode back to itself (invalid UTF-8 is refused); every id
 * must stream. */
#include "fuzz_support.h"
#include "tokenizer.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dmllm_tokenizer *tokenizer;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    if (dmllm_tokenizer_load(fuzz_source_path("models/tiny/tokenizer.json"), &tokenizer) != DMLLM_OK) {
        fprintf(stderr, "fuzz: cannot load the models/tiny tokenizer\n");
        abort();
    }
    return 0;
}

/* Whether s[0..n) is valid UTF-8, and whether it holds a NUL (decode returns a C string). */
static bool valid_utf8(const unsigned char *s, size_t n, bool *has_nul) {
    *has_nul = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const int length = dmllm_utf8_decode(s + i, n - i, &cp);
        if (length == 0) return false;
        *has_nul |= cp == 0;
        i += (size_t)length;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const bool parse_special = data[0] & 1;
    const char *text = (const char *)data + 1;
    const size_t length = size - 1;
    bool has_nul;
    const bool valid = valid_utf8(data + 1, length, &has_nul);
    int32_t *ids = NULL;
    size_t n = 0;
    /* Invalid UTF-8 is refused with a message; valid text always encodes. */
    if (dmllm_tokenizer_encode(tokenizer, text, length, parse_special, &ids, &n) != DMLLM_OK) {
        if (valid) abort();
        return 0;
    }
    if (!valid) abort();
    char *decoded = NULL;
    if (dmllm_tokenizer_decode(tokenizer, ids, n, false, &decoded) != DMLLM_OK) abort();
    if (!has_nul && (strlen(decoded) != length || memcmp(decoded, text, length) != 0)) {
        fprintf(stderr, "fuzz: decode(encode(text)) differs from the text\n");
        abort();
    }
    free(decoded);
    dmllm_utf8_stream stream = {0};
    char out[3 * (3 + 256) + 1];
    for (size_t i = 0; i < n; i++) {
        size_t bytes = 0, piece = 0;
        if (!dmllm_tokenizer_bytes(tokenizer, ids[i], &bytes) || bytes > 256) abort();
        if (dmllm_tokenizer_stream(tokenizer, &stream, ids[i], false, out, sizeof out, &piece) != DMLLM_OK) abort();
    }
    dmllm_tokenizer_stream_flush(&stream, out, sizeof out, &(size_t){0});
    free(ids);
    return 0;
}
