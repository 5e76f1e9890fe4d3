/*
 * generate.h: the pieces of text generation that work on one logits vector, so tests can check
 * them on hand-made values: Hugging Face's repetition penalty, its temperature / top-k / top-p
 * warpers (in its order), greedy choice, a draw from a seeded PRNG of our own, and the
 * resized -> original mapping of coordinate tokens (model-spec 4.9). No session state here; the
 * decode loop itself is dmllm_generate() in generate.c.
 */
#ifndef DMLLM_GENERATE_H
#define DMLLM_GENERATE_H

#include "tokenizer.h"

/* xoshiro256** seeded through splitmix64: the same seed gives the same draws on every platform. */
typedef struct dmllm_rng {
    uint64_t s[4];
} dmllm_rng;

void dmllm_rng_seed(dmllm_rng *rng, uint64_t seed);
uint64_t dmllm_rng_next(dmllm_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double dmllm_rng_uniform(dmllm_rng *rng);

/* HF RepetitionPenaltyLogitsProcessor: each DISTINCT id of history (prompt and generated ids) has
 * its logit multiplied by penalty when negative, divided by it otherwise. seen: [vocab] zeroed
 * scratch, zeroed again on return. */
void dmllm_repetition_penalty(float *logits, int vocab, const int32_t *history, size_t n_history, float penalty,
                              uint8_t *seen);

/* One (logit, id) pair of the sorted order the warpers work on. */
typedef struct dmllm_scored_id {
    float logit;
    int32_t id;
} dmllm_scored_id;

/* HF's sampling warpers in HF's order: divide by temperature (skipped at 1), keep logits >= the
 * top_k-th largest (0: off), then top-p (>= 1: off): sorted ascending, drop the ids whose
 * cumulative probability is <= 1 - top_p, always keeping the most likely. Dropped logits become
 * -INFINITY. scratch: [vocab]. */
void dmllm_warp_logits(float *logits, int vocab, float temperature, int top_k, float top_p, dmllm_scored_id *scratch);

/* First index of the largest logit (torch.argmax). */
int32_t dmllm_argmax(const float *logits, int vocab);
/* The id a uniform draw u in [0, 1) picks from softmax(logits): the first i whose cumulative
 * probability exceeds u. -INFINITY logits are never picked. */
int32_t dmllm_sample_index(const float *logits, int vocab, double u);

/* HF generate's coordinate rescaling with img_input: id of "<x_k'>" / "<y_k'>" for the token
 * "<x_k>" / "<y_k>", k' = clamp(round-half-even(k * original / resized), 0, 2047); any other id is
 * returned unchanged. */
int32_t dmllm_rescale_coordinate_id(const dmllm_tokenizer *tokenizer, int32_t id, const dmllm_image_grid *grid);

#endif
