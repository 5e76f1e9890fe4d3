/*
 * generate.c: text generation on a session (dmllm_generate): evaluate the prompt, then per step
 * read the last logits, apply Hugging Face's logits processing (repetition penalty; with sampling
 * its temperature, top-k, top-p warpers), pick a token, stream its text, evaluate it. Drives the
 * session only through its API and session.h; never writes the model.
 */
#include "generate.h"
#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG ------------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dmllm_rng_seed(dmllm_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dmllm_rng_next(dmllm_rng *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dmllm_rng_uniform(dmllm_rng *rng) { return (double)(dmllm_rng_next(rng) >> 11) * 0x1.0p-53; }

/* ---- logits processing ----------------------------------------------------------------------- */

void dmllm_repetition_penalty(float *logits, int vocab, const int32_t *history, size_t n_history, float penalty,
                              uint8_t *seen) {
    for (size_t i = 0; i < n_history; i++) {
        const int32_t id = history[i];
        if (id < 0 || id >= vocab || seen[id]) continue;
        seen[id] = 1;
        logits[id] = logits[id] < 0 ? logits[id] * penalty : logits[id] / penalty;
    }
    for (size_t i = 0; i < n_history; i++)
        if (history[i] >= 0 && history[i] < vocab) seen[history[i]] = 0;
}

/* Descending logit, ties by ascending id: the order of torch.topk / argmax on ties. */
static int by_logit_descending(const void *a, const void *b) {
    const dmllm_scored_id *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

void dmllm_warp_logits(float *logits, int vocab, float temperature, int top_k, float top_p, dmllm_scored_id *scratch) {
    if (temperature != 1.0f)
        for (int i = 0; i < vocab; i++) logits[i] /= temperature;
    const bool use_top_k = top_k > 0 && top_k < vocab, use_top_p = top_p < 1.0f;
    if (!use_top_k && !use_top_p) return;
    for (int i = 0; i < vocab; i++) scratch[i] = (dmllm_scored_id){logits[i], i};
    qsort(scratch, (size_t)vocab, sizeof *scratch, by_logit_descending);
    int kept = vocab; /* scratch[0 .. kept-1] survive */
    if (use_top_k) {
        const float threshold = scratch[top_k - 1].logit;
        while (kept > top_k && scratch[kept - 1].logit < threshold) kept--;
    }
    if (use_top_p) {
        /* softmax over the survivors, accumulated from the least likely as HF's ascending cumsum */
        const double max = scratch[0].logit;
        double sum = 0.0;
        for (int r = 0; r < kept; r++) sum += exp((double)scratch[r].logit - max);
        double cumulative = 0.0;
        int first_kept = 0;
        for (int r = kept - 1; r > 0; r--) {
            cumulative += exp((double)scratch[r].logit - max) / sum;
            if (cumulative > 1.0 - (double)top_p) {
                first_kept = r;
                break;
            }
        }
        kept = first_kept + 1;
    }
    for (int r = kept; r < vocab; r++) logits[scratch[r].id] = -INFINITY;
}

int32_t dmllm_argmax(const float *logits, int vocab) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int32_t dmllm_sample_index(const float *logits, int vocab, double u) {
    const int32_t best = dmllm_argmax(logits, vocab);
    const double max = logits[best];
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - max);
    const double target = u * sum;
    double cumulative = 0.0;
    for (int32_t i = 0; i < vocab; i++) {
        if (logits[i] == -INFINITY) continue;
        cumulative += exp((double)logits[i] - max);
        if (cumulative > target) return i;
    }
    return best; /* u * sum rounded up to the total */
}

/* ---- coordinates ----------------------------------------------------------------------------- */

#define DMLLM_MAX_COORDINATE 2047

static int rescale(int k, int original, int resized) {
    const double v = rint((double)k * original / resized);
    return v < 0 ? 0 : v > DMLLM_MAX_COORDINATE ? DMLLM_MAX_COORDINATE : (int)v;
}

dmllm_status dmllm_coordinate_to_original(int k, int original_size, int resized_size, int *out_k) {
    if (!out_k) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_coordinate_to_original: out_k is NULL");
    if (k < 0 || k > DMLLM_MAX_COORDINATE || original_size <= 0 || resized_size <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_coordinate_to_original: k = %d (0..%d), original %d and resized %d (> 0)", k,
                          DMLLM_MAX_COORDINATE, original_size, resized_size);
    *out_k = rescale(k, original_size, resized_size);
    return DMLLM_OK;
}

int32_t dmllm_rescale_coordinate_id(const dmllm_tokenizer *tokenizer, int32_t id, const dmllm_image_grid *grid) {
    size_t length = 0;
    const char *bytes = dmllm_tokenizer_bytes(tokenizer, id, &length);
    char content[16];
    if (!bytes || length < 5 || length >= sizeof content || bytes[0] != '<' || (bytes[1] != 'x' && bytes[1] != 'y') ||
        bytes[2] != '_')
        return id;
    memcpy(content, bytes, length);
    content[length] = '\0';
    int k = -1, consumed = 0;
    if (sscanf(content + 3, "%4d>%n", &k, &consumed) != 1 || consumed != (int)length - 3 || k < 0 ||
        k > DMLLM_MAX_COORDINATE || dmllm_tokenizer_find(tokenizer, content) != id)
        return id;
    const bool is_x = content[1] == 'x';
    const int mapped = is_x ? rescale(k, grid->original_w, grid->resized_w) : rescale(k, grid->original_h, grid->resized_h);
    snprintf(content, sizeof content, "<%c_%d>", content[1], mapped);
    const int32_t mapped_id = dmllm_tokenizer_find(tokenizer, content);
    return mapped_id >= 0 ? mapped_id : id;
}

/* ---- the decode loop ------------------------------------------------------------------------- */

void dmllm_generate_params_init(dmllm_generate_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->max_new_tokens = 4096;
    params->temperature = 1.0f;
    params->top_p = 1.0f;
    params->repetition_penalty = 1.05f;
    params->skip_special = 1;
    params->rescale_coordinates = 1;
}

size_t dmllm_generate_params_sizeof(void) { return sizeof(dmllm_generate_params); }

void dmllm_generate_result_free(dmllm_generate_result *result) {
    if (!result) return;
    free(result->ids);
    free(result->text);
    free(result);
}

static dmllm_status check_params(const dmllm_generate_params *p) {
    if (p->max_new_tokens < 1)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_params.max_new_tokens = %d; at least 1",
                          p->max_new_tokens);
    if (!(p->temperature > 0.0f) || !isfinite(p->temperature))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_params.temperature = %g must be > 0",
                          (double)p->temperature);
    if (p->top_k < 0) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_params.top_k = %d is negative", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_params.top_p = %g outside (0, 1]", (double)p->top_p);
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_params.repetition_penalty = %g must be > 0",
                          (double)p->repetition_penalty);
    if (p->n_stop_ids < 0 || (p->n_stop_ids > 0 && !p->stop_ids))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_params.n_stop_ids = %d with stop_ids %s",
                          p->n_stop_ids, p->stop_ids ? "set" : "NULL");
    return DMLLM_OK;
}

/* What one call works with besides the session. */
typedef struct decoder {
    const dmllm_generate_params *p;
    const dmllm_tokenizer *tokenizer;  /* NULL: ids only */
    const dmllm_image_grid *grid;      /* the image whose coordinates are rescaled, or NULL */
    int vocab;
    const dmllm_config *config;        /* its eos_token_ids stop unless the caller gives stop_ids */
    float *logits;                     /* [vocab] */
    uint8_t *seen;                     /* [vocab] zeroed scratch of the repetition penalty */
    dmllm_scored_id *order;            /* [vocab] scratch of the warpers, when sampling */
    char *piece;                       /* [piece_capacity] streamed text of one token */
    size_t piece_capacity;
    dmllm_utf8_stream stream;
    dmllm_rng rng;
} decoder;

static bool is_stop(const decoder *d, int32_t id) {
    if (!d->p->stop_ids) {
        for (int i = 0; i < d->config->n_eos_token_ids; i++)
            if (d->config->eos_token_ids[i] == id) return true;
        return false;
    }
    for (int i = 0; i < d->p->n_stop_ids; i++)
        if (d->p->stop_ids[i] == id) return true;
    return false;
}

static dmllm_status next_token(decoder *d, dmllm_session *s, int32_t *out) {
    DMLLM_TRY(dmllm_session_logits(s, d->logits, (size_t)d->vocab, NULL));
    const dmllm_generate_params *p = d->p;
    if (p->repetition_penalty != 1.0f)
        dmllm_repetition_penalty(d->logits, d->vocab, dmllm_session_context_ids(s), (size_t)dmllm_session_n_past(s),
                                 p->repetition_penalty, d->seen);
    if (!p->do_sample) {
        *out = dmllm_argmax(d->logits, d->vocab);
        return DMLLM_OK;
    }
    dmllm_warp_logits(d->logits, d->vocab, p->temperature, p->top_k, p->top_p, d->order);
    *out = dmllm_sample_index(d->logits, d->vocab, dmllm_rng_uniform(&d->rng));
    return DMLLM_OK;
}

/* Hands the text id completes to the callback; *stop when it asks to stop. */
static dmllm_status stream_token(decoder *d, int32_t id, bool *stop) {
    size_t length = 0;
    if (d->tokenizer) {
        size_t n_bytes = 0;
        if (!dmllm_tokenizer_bytes(d->tokenizer, id, &n_bytes))
            return dmllm_fail(DMLLM_ERR_STATE, "generated id %d is not in the tokenizer's vocabulary", (int)id);
        const size_t need = 3 * (3 + n_bytes) + 1;
        if (need > d->piece_capacity) {
            char *grown = realloc(d->piece, need);
            if (!grown) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory streaming a token of %zu bytes", n_bytes);
            d->piece = grown;
            d->piece_capacity = need;
        }
        DMLLM_TRY(dmllm_tokenizer_stream(d->tokenizer, &d->stream, id, d->p->skip_special != 0, d->piece,
                                         d->piece_capacity, &length));
    }
    d->piece[length] = '\0';
    *stop = d->p->on_token && d->p->on_token(id, d->piece, length, d->p->user_data) != 0;
    return DMLLM_OK;
}

static dmllm_status decode_loop(decoder *d, dmllm_session *s, dmllm_generate_result *r) {
    const dmllm_generate_params *p = d->p;
    const dmllm_session_params *sp = dmllm_session_get_params(s);
    const dmllm_progress progress = {sp->progress, sp->progress_user_data};
    r->stop_reason = DMLLM_STOP_MAX_TOKENS;
    for (int step = 0; step < p->max_new_tokens; step++) {
        int32_t id = 0;
        DMLLM_TRY(next_token(d, s, &id));
        if (is_stop(d, id)) {
            r->stop_reason = DMLLM_STOP_TOKEN;
            r->stop_id = id;
            return DMLLM_OK;
        }
        r->ids[r->n_ids++] = d->grid ? dmllm_rescale_coordinate_id(d->tokenizer, id, d->grid) : id;
        bool stop = false;
        DMLLM_TRY(stream_token(d, r->ids[r->n_ids - 1], &stop));
        DMLLM_TRY(dmllm_progress_report(&progress, "generate", r->n_ids, p->max_new_tokens));
        if (stop) {
            r->stop_reason = DMLLM_STOP_CALLBACK;
            return DMLLM_OK;
        }
        if (step + 1 == p->max_new_tokens) return DMLLM_OK;
        if (dmllm_session_n_past(s) >= sp->n_ctx) {
            r->stop_reason = DMLLM_STOP_CONTEXT_FULL;
            return DMLLM_OK;
        }
        DMLLM_TRY(dmllm_session_eval(s, &id, 1));
    }
    return DMLLM_OK;
}

static dmllm_status finish_text(decoder *d, dmllm_generate_result *r) {
    if (!d->tokenizer) return DMLLM_OK;
    char tail[16];
    size_t length = 0;
    dmllm_tokenizer_stream_flush(&d->stream, tail, sizeof tail, &length);
    if (length > 0 && d->p->on_token) d->p->on_token(-1, tail, length, d->p->user_data);
    return dmllm_tokenizer_decode(d->tokenizer, r->ids, (size_t)r->n_ids, d->p->skip_special != 0, &r->text);
}

static dmllm_status generate(dmllm_session *s, const int32_t *prompt, int n_prompt, const dmllm_generate_params *given,
                             dmllm_generate_result *r) {
    dmllm_generate_params p;
    dmllm_generate_params_init(&p);
    if (given) DMLLM_TRY(dmllm_copy_versioned(&p, sizeof p, given, "dmllm_generate_params"));
    DMLLM_TRY(check_params(&p));
    if (n_prompt < 0 || (n_prompt > 0 && !prompt))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate: n_prompt = %d with prompt_ids %s", n_prompt,
                          prompt ? "set" : "NULL");
    const dmllm_model *model = dmllm_session_model(s);
    decoder d = {
        .p = &p,
        .tokenizer = model->tokenizer,
        .vocab = model->config->text.vocab_size,
        .config = model->config,
    };
    dmllm_rng_seed(&d.rng, p.seed);
    r->stop_id = -1;

    double t0 = dmllm_now_seconds();
    dmllm_status status = n_prompt > 0 ? dmllm_session_eval(s, prompt, n_prompt) : DMLLM_OK;
    r->n_prompt = n_prompt;
    r->seconds_prompt = dmllm_now_seconds() - t0;
    t0 = dmllm_now_seconds();
    if (p.rescale_coordinates && d.tokenizer) d.grid = dmllm_session_evaluated_grid(s);
    d.piece_capacity = 64;
    if (status == DMLLM_OK) status = dmllm_alloc(&d.piece, d.piece_capacity, 1, "the streamed text");
    /* every generated token but the last takes a context position */
    const int room = dmllm_session_get_params(s)->n_ctx - dmllm_session_n_past(s) + 1;
    const int max_ids = p.max_new_tokens < room ? p.max_new_tokens : room;
    if (status == DMLLM_OK) status = dmllm_alloc(&r->ids, (size_t)max_ids, sizeof *r->ids, "the generated ids");
    if (status == DMLLM_OK) status = dmllm_alloc(&d.logits, (size_t)d.vocab, sizeof *d.logits, "the logits");
    if (status == DMLLM_OK && p.repetition_penalty != 1.0f) {
        d.seen = dmllm_calloc((size_t)d.vocab, 1);
        if (!d.seen) status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the repetition penalty");
    }
    if (status == DMLLM_OK && p.do_sample)
        status = dmllm_alloc(&d.order, (size_t)d.vocab, sizeof *d.order, "the sampling order");
    if (status == DMLLM_OK) status = decode_loop(&d, s, r);
    if (status == DMLLM_OK) status = finish_text(&d, r);
    r->seconds_generate = dmllm_now_seconds() - t0;
    free(d.piece);
    free(d.logits);
    free(d.seen);
    free(d.order);
    return status;
}

dmllm_status dmllm_generate(dmllm_session *session, const int32_t *prompt_ids, int n_prompt,
                            const dmllm_generate_params *params, dmllm_generate_result **out_result) {
    if (!out_result)
        return dmllm_session_reject(session,
                                    dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate: out_result is NULL"));
    *out_result = NULL;
    if (!session) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate: session is NULL");
    const int saved = dmllm_session_enter(session);
    const int n_start = dmllm_session_n_past(session);
    dmllm_generate_result *result = NULL;
    dmllm_status status = dmllm_alloc(&result, 1, sizeof *result, "the generation result");
    if (status == DMLLM_OK) {
        memset(result, 0, sizeof *result);
        status = generate(session, prompt_ids, n_prompt, params, result);
    }
    if (status == DMLLM_OK) {
        *out_result = result;
    } else {
        dmllm_generate_result_free(result);
        if (dmllm_session_n_past(session) > n_start) dmllm_session_truncate(session, n_start);
    }
    return dmllm_session_leave(session, saved, status);
}

dmllm_status dmllm_generate_text(dmllm_session *session, const char *prompt, const dmllm_generate_params *params,
                                 dmllm_generate_result **out_result) {
    if (!out_result)
        return dmllm_session_reject(session,
                                    dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_text: out_result is NULL"));
    *out_result = NULL;
    if (!session || !prompt)
        return dmllm_session_reject(
            session, dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_text: session or prompt is NULL"));
    const dmllm_model *model = dmllm_session_model(session);
    const int saved = dmllm_session_enter(session);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    dmllm_status status =
        model->tokenizer ? dmllm_tokenizer_encode(model->tokenizer, prompt, strlen(prompt), true, &ids, &n_ids)
                         : dmllm_fail(DMLLM_ERR_STATE, "dmllm_generate_text: the model directory %s has no tokenizer.json",
                                      dmllm_checkpoint_dir(model->checkpoint));
    if (status == DMLLM_OK && n_ids > (size_t)INT32_MAX)
        status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_generate_text: the prompt has %zu ids", n_ids);
    if (status == DMLLM_OK) status = dmllm_generate(session, ids, (int)n_ids, params, out_result);
    free(ids);
    return dmllm_session_leave(session, saved, status);
}
