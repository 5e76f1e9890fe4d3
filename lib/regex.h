/*
 * regex.h: the small backtracking regex engine behind the tokenizer's pre-tokenizer patterns
 * (leftmost-first, like Oniguruma, Perl and JavaScript). It runs on code point arrays and supports
 * what tokenizer.json Split patterns use: alternation, (?:...) and (?i:...) groups, (?!...) and
 * (?=...) lookahead, classes with ranges and negation, \p{L} \p{Lu} \p{Ll} \p{Lt} \p{Lm} \p{Lo}
 * \p{M} \p{Mn} \p{Mc} \p{Me} \p{N} \p{Nd} \p{Nl} \p{No} and their \P{..} complements, \s \S \d \D,
 * escapes \r \n \t \f \v, the dot, and the quantifiers ? * + {n} {n,} {n,m} (greedy or lazy).
 * Anything else is refused at compile time with a message naming it. No state outside a regex.
 */
#ifndef DMLLM_REGEX_H
#define DMLLM_REGEX_H

#include "common.h"

typedef struct dmllm_regex dmllm_regex;

dmllm_status dmllm_regex_compile(const char *pattern, dmllm_regex **out);
void dmllm_regex_free(dmllm_regex *regex);

/* Finds the leftmost-first match in text[from .. n) (text is code points; lookahead sees up to n,
 * not beyond). Returns 1 with the match in [*match_start, *match_end), 0 when there is none, or
 * DMLLM_ERR_UNSUPPORTED when the backtracking budget for this input is exhausted. */
int dmllm_regex_search(const dmllm_regex *regex, const uint32_t *text, size_t n, size_t from, size_t *match_start,
                       size_t *match_end);

#endif
