/* fuzz_tokenizer_json.c: arbitrary bytes as tokenizer.json text. An accepted tokenizer encodes a
 * fixed mixed text (both ways of treating special tokens), decodes it, and streams every id. */
#include "fuzz_support.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char sample[] = "Hello, world! 123 <|im_start|>user\n\xe4\xb8\x80 caf\xc3\xa9  \t<mask>(0,4)</mask>";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    dmllm_tokenizer *t = NULL;
    if (dmllm_tokenizer_parse((const char *)data, size, "tokenizer.json", &t) != DMLLM_OK) return 0;
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (dmllm_tokenizer_encode(t, sample, sizeof sample - 1, special, &ids, &n) != DMLLM_OK) continue;
        char *text = NULL;
        if (dmllm_tokenizer_decode(t, ids, n, special, &text) == DMLLM_OK) free(text);
        dmllm_utf8_stream stream = {0};
        for (size_t i = 0; i < n; i++) {
            size_t length = 0, piece = 0;
            if (!dmllm_tokenizer_bytes(t, ids[i], &length)) abort(); /* encode gave an unknown id */
            char *out = malloc(3 * (3 + length) + 1);
            if (!out) abort();
            if (dmllm_tokenizer_stream(t, &stream, ids[i], special, out, 3 * (3 + length) + 1, &piece) != DMLLM_OK)
                abort();
            free(out);
        }
        free(ids);
    }
    dmllm_tokenizer_free(t);
    return 0;
}
