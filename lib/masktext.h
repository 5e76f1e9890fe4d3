/*
 * masktext.h: limits of the dense text format (masktext.c), shared with its tests, and the
 * <ref> names of a generated reply (dense.c, pipeline.c).
 */
#ifndef DMLLM_MASKTEXT_H
#define DMLLM_MASKTEXT_H

#include "common.h"

/* Largest map written or parsed, in values: the image limit, so every map of a decodable image fits. */
#define DMLLM_MASK_TEXT_MAX_VALUES ((int64_t)1 << 28)
/* Largest value a mask may hold: the maps are uint16. */
#define DMLLM_MASK_TEXT_MAX_VALUE 65535

/* The names of the <ref>name</ref> entries of a generated reply before its <mask> (all of the text
 * when it has none; an entry cut off by the text's end is left out), in order, each trimmed of
 * blanks; empty names, the name skip (NULL: none) and repeats are left out. *names is a malloc'ed
 * array of malloc'ed strings, freed by dmllm_reply_names_free(). */
dmllm_status dmllm_reply_names(const char *text, const char *skip, char ***names, int *n_names);
void dmllm_reply_names_free(char **names, int n_names);

#endif
