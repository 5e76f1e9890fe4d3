/*
 * unicode.h: the Unicode facts the tokenizer needs: general category and White_Space of a code
 * point (tables generated into unicode_tables.c from Debian's unicode-data), and UTF-8 decoding.
 * Pure lookups; no state.
 */
#ifndef DMLLM_UNICODE_H
#define DMLLM_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum dmllm_unicode_category {
    DMLLM_UC_OTHER = 0,
    DMLLM_UC_Lu, DMLLM_UC_Ll, DMLLM_UC_Lt, DMLLM_UC_Lm, DMLLM_UC_Lo,
    DMLLM_UC_Mn, DMLLM_UC_Mc, DMLLM_UC_Me,
    DMLLM_UC_Nd, DMLLM_UC_Nl, DMLLM_UC_No,
} dmllm_unicode_category;

typedef struct dmllm_unicode_range {
    uint32_t first, last;
    int category; /* dmllm_unicode_category (0 in the White_Space table) */
} dmllm_unicode_range;

extern const dmllm_unicode_range dmllm_unicode_categories[];
extern const int dmllm_unicode_n_categories;
extern const dmllm_unicode_range dmllm_unicode_white_space[];
extern const int dmllm_unicode_n_white_space;

dmllm_unicode_category dmllm_unicode_category_of(uint32_t cp);
bool dmllm_unicode_is_white_space(uint32_t cp);

/* Decodes one UTF-8 character at s[0..len); returns its length (1..4), or 0 when the bytes are not
 * a valid, shortest-form sequence (then *cp is U+FFFD and one byte should be skipped). */
int dmllm_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
/* Writes cp as UTF-8 (1..4 bytes) and returns the length. */
int dmllm_utf8_encode(uint32_t cp, char *out);

#endif
