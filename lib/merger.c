/*
 * merger.c: the patch merger (model-spec 3.6, Qwen2.5-VL style): RMSNorm of every vision row, each
 * merge block's merge^2 consecutive rows read as one row, Linear, erf-GELU, Linear to the text
 * hidden size. Works in chunks of merged tokens so its scratch stays bounded. Only reads the
 * checkpoint; matrix products go through backend.h.
 */
#include "merger.h"

#include "kernels.h"
#include "vision.h"

#include <stdlib.h>
#include <string.h>

/* Merged tokens per chunk: bounds the two [chunk, merge^2 * vision hidden] scratch buffers. */
#define MERGER_TOKEN_CHUNK 512
/* The Qwen2.5-VL-style merger builds its RMSNorm with a fixed eps; config.json has no key for it. */
#define MERGER_RMS_EPS 1e-6f

struct dmllm_merger {
    int vision_hidden;   /* vision rows are this wide */
    int unit;            /* vision rows per merged token: merge^2 */
    int merged_hidden;   /* unit * vision_hidden */
    int text_hidden;
    float *ln_q;         /* [vision_hidden] RMSNorm weight */
    dmllm_linear *fc0;   /* [merged_hidden, merged_hidden] merger.mlp.0 */
    dmllm_linear *fc2;   /* [text_hidden, merged_hidden] merger.mlp.2 */
};

static dmllm_status merger_load(dmllm_merger *m, const dmllm_backend *backend, const dmllm_checkpoint *checkpoint) {
    const dmllm_config *config = dmllm_checkpoint_config(checkpoint);
    m->vision_hidden = config->vision.hidden_size;
    m->unit = config->vision.spatial_merge_size * config->vision.spatial_merge_size;
    m->merged_hidden = m->unit * m->vision_hidden;
    m->text_hidden = config->text.hidden_size;
    DMLLM_TRY(dmllm_alloc(&m->ln_q, (size_t)m->vision_hidden, sizeof(float), "merger.ln_q.weight"));
    DMLLM_TRY(dmllm_load_vector_f32(checkpoint, "merger.ln_q.weight", m->vision_hidden, m->ln_q));
    const char *weight = "merger.mlp.0.weight", *bias = "merger.mlp.0.bias";
    int64_t rows = m->merged_hidden;
    DMLLM_TRY(dmllm_linear_from_checkpoint(backend, checkpoint, &weight, &bias, &rows, 1, m->merged_hidden, &m->fc0));
    weight = "merger.mlp.2.weight";
    bias = "merger.mlp.2.bias";
    rows = m->text_hidden;
    DMLLM_TRY(dmllm_linear_from_checkpoint(backend, checkpoint, &weight, &bias, &rows, 1, m->merged_hidden, &m->fc2));
    return DMLLM_OK;
}

dmllm_status dmllm_merger_load(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint, dmllm_merger **out) {
    *out = NULL;
    dmllm_merger *m = NULL;
    DMLLM_TRY(dmllm_alloc(&m, 1, sizeof *m, "the merger"));
    memset(m, 0, sizeof *m);
    dmllm_status status = merger_load(m, backend, checkpoint);
    if (status != DMLLM_OK) {
        dmllm_merger_free(m);
        return dmllm_fail_context(status, "loading the merger");
    }
    *out = m;
    return DMLLM_OK;
}

void dmllm_merger_free(dmllm_merger *merger) {
    if (!merger) return;
    dmllm_linear_free(merger->fc0);
    dmllm_linear_free(merger->fc2);
    free(merger->ln_q);
    free(merger);
}

static dmllm_status merger_run(const dmllm_merger *m, const float *vision_out, int n_tokens, float *out,
                               float *normed, float *hidden) {
    const int64_t mh = m->merged_hidden;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += MERGER_TOKEN_CHUNK) {
        const int64_t n = n_tokens - t0 < MERGER_TOKEN_CHUNK ? n_tokens - t0 : MERGER_TOKEN_CHUNK;
        /* [n*unit, vision hidden] normed rows are already laid out as [n, unit*vision hidden]. */
        dmllm_rmsnorm(vision_out + t0 * mh, m->vision_hidden, m->ln_q, normed, m->vision_hidden, n * m->unit,
                      m->vision_hidden, MERGER_RMS_EPS);
        DMLLM_TRY(dmllm_linear_forward(m->fc0, normed, n, hidden));
        dmllm_gelu_erf(hidden, n * mh);
        DMLLM_TRY(dmllm_linear_forward(m->fc2, hidden, n, out + t0 * m->text_hidden));
    }
    return DMLLM_OK;
}

size_t dmllm_merger_forward_bytes(const dmllm_merger *merger, int n_tokens) {
    const int64_t chunk = n_tokens < MERGER_TOKEN_CHUNK ? n_tokens : MERGER_TOKEN_CHUNK;
    const size_t fc0 = dmllm_linear_forward_bytes(merger->fc0, chunk);
    const size_t fc2 = dmllm_linear_forward_bytes(merger->fc2, chunk);
    return 2 * (size_t)chunk * (size_t)merger->merged_hidden * sizeof(float) + (fc0 > fc2 ? fc0 : fc2);
}

dmllm_status dmllm_merger_forward(const dmllm_merger *merger, const float *vision_out, int n_tokens, float *out) {
    if (!merger || !vision_out || !out || n_tokens <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "merger forward: NULL argument or %d tokens", n_tokens);
    const size_t chunk = (size_t)(n_tokens < MERGER_TOKEN_CHUNK ? n_tokens : MERGER_TOKEN_CHUNK);
    float *normed = NULL;  /* [chunk, merged_hidden] */
    float *hidden = NULL;  /* [chunk, merged_hidden] */
    dmllm_status status = dmllm_alloc(&normed, chunk * (size_t)merger->merged_hidden, sizeof(float),
                                      "the merger input chunk");
    if (status == DMLLM_OK)
        status = dmllm_alloc(&hidden, chunk * (size_t)merger->merged_hidden, sizeof(float), "the merger hidden chunk");
    if (status == DMLLM_OK) status = merger_run(merger, vision_out, n_tokens, out, normed, hidden);
    free(hidden);
    free(normed);
    return status;
}
