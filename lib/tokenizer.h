/*
 * tokenizer.h: the Hugging Face tokenizer.json of a model directory (model-spec section 5):
 * byte-level BPE with ignore_merges, added tokens matched first, the file's Split pre-tokenizer,
 * ByteLevel decoding. Text <-> ids only; knows nothing of images, sessions or the chat layout.
 * Immutable after loading, so one tokenizer serves many threads.
 */
#ifndef DMLLM_TOKENIZER_H
#define DMLLM_TOKENIZER_H

#include "common.h"

typedef struct dmllm_tokenizer dmllm_tokenizer;

/* Parses a tokenizer.json file. Anything it cannot honour exactly (a model type other than BPE, a
 * pre-tokenizer or normaliser it does not implement) is DMLLM_ERR_UNSUPPORTED naming the key. */
dmllm_status dmllm_tokenizer_load(const char *path, dmllm_tokenizer **out);
/* The same from tokenizer.json text in memory; `source` names it in errors. */
dmllm_status dmllm_tokenizer_parse(const char *json, size_t size, const char *source, dmllm_tokenizer **out);
void dmllm_tokenizer_free(dmllm_tokenizer *tokenizer);

/* Number of ids (base vocabulary plus added tokens; the largest id + 1). */
int32_t dmllm_tokenizer_vocab_size(const dmllm_tokenizer *tokenizer);

/* Encodes len bytes of UTF-8 text. With parse_special, added tokens marked special are recognised
 * in the text; non-special added tokens always are. *out_ids is malloc'ed (free()). */
dmllm_status dmllm_tokenizer_encode(const dmllm_tokenizer *tokenizer, const char *text, size_t len,
                                    bool parse_special, int32_t **out_ids, size_t *out_count);

/* Id of a token given by its exact content ("<|image_pad|>", "<custom_12>", a base-vocabulary piece
 * in byte-level spelling); -1 when absent. */
int32_t dmllm_tokenizer_find(const dmllm_tokenizer *tokenizer, const char *content);

/* Bytes one id decodes to (byte-level pieces mapped back to raw bytes, which may be an incomplete
 * UTF-8 sequence; added tokens give their content). NULL for an id out of range. */
const char *dmllm_tokenizer_bytes(const dmllm_tokenizer *tokenizer, int32_t id, size_t *out_len);
bool dmllm_tokenizer_is_special(const dmllm_tokenizer *tokenizer, int32_t id);

/* Decodes ids to a NUL-terminated malloc'ed UTF-8 string (invalid sequences become U+FFFD, as
 * Hugging Face does). skip_special drops added tokens marked special. */
dmllm_status dmllm_tokenizer_decode(const dmllm_tokenizer *tokenizer, const int32_t *ids, size_t count,
                                    bool skip_special, char **out_text);

/* Streaming decoder: feeds ids one at a time and emits only complete UTF-8 characters, holding an
 * incomplete sequence until the next id completes it (or flush gives it out as U+FFFD). */
typedef struct dmllm_utf8_stream {
    unsigned char pending[4]; /* bytes of an incomplete UTF-8 sequence */
    int n_pending;
} dmllm_utf8_stream;

/* Writes the complete characters that id adds to out (capacity bytes incl. NUL); *out_len gets
 * their byte count. 3 * (3 + the token's byte length) + 1 bytes always suffice (invalid bytes
 * become 3-byte U+FFFD). */
dmllm_status dmllm_tokenizer_stream(const dmllm_tokenizer *tokenizer, dmllm_utf8_stream *stream, int32_t id,
                                    bool skip_special, char *out, size_t capacity, size_t *out_len);
void dmllm_tokenizer_stream_flush(dmllm_utf8_stream *stream, char *out, size_t capacity, size_t *out_len);

#endif
