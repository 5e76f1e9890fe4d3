/*
 * masktext.h: limits of the dense text format (masktext.c), shared with its tests.
 */
#ifndef DMLLM_MASKTEXT_H
#define DMLLM_MASKTEXT_H

#include "common.h"

/* Largest map written or parsed, in values: the image limit, so every map of a decodable image fits. */
#define DMLLM_MASK_TEXT_MAX_VALUES ((int64_t)1 << 28)
/* Largest value a mask may hold: the maps are uint16. */
#define DMLLM_MASK_TEXT_MAX_VALUE 65535

#endif
