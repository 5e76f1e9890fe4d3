/*
 * llm.c: the Youtu-LLM decoder (model-spec 4): token embeddings, MLA + SwiGLU layers, final RMSNorm,
 * the tied LM head, and the per-session latent KV cache. Weights are packed once at load into
 * dmllm_linear objects (backend.c); this file never calls oneDNN or BLAS itself and knows nothing
 * of the vision tower or of sessions.
 *
 * Layout of the work: a forward call runs layer by layer over all its new tokens (the residual
 * stream lives in the caller's output buffer), each layer in chunks of at most LLM_CHUNK_TOKENS
 * queries so the per-token intermediates (MLP 2*inter wide) stay bounded. Running layer-major lets
 * the EXPANDED attention form expand every cached latent once per layer and call.
 *
 * KV cache: per layer and token one f32 row [c (kv_lora) | roped k_pe (rope)], 576 floats =
 * 2304 bytes per layer and token for the real model (92 KB per token over 40 layers).
 */
#include "llm.h"

#include "attention.h"
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queries per chunk: bounds the per-token buffers (gate_up alone is 78 KB per token). */
#define LLM_CHUNK_TOKENS 512

typedef struct llm_layer {
    float *input_norm;          /* [hidden] */
    float *post_attention_norm; /* [hidden] */
    float *q_a_norm;            /* [q_lora] */
    float *kv_a_norm;           /* [kv_lora] */
    dmllm_linear *qkv_a;        /* [q_lora + kv_lora + rope, hidden]: q_a_proj stacked on kv_a_proj_with_mqa */
    dmllm_linear *q_b;          /* [heads * (nope + rope), q_lora] */
    dmllm_linear *kv_b;         /* [heads * (nope + v), kv_lora], EXPANDED form */
    dmllm_linear **k_absorb;    /* [heads] of W_UK[h]^T [kv_lora, nope], ABSORBED form */
    dmllm_linear **v_unabsorb;  /* [heads] of W_UV[h] [v, kv_lora], ABSORBED form */
    dmllm_linear *o;            /* [hidden, heads * v] */
    dmllm_linear *gate_up;      /* [2 * inter, hidden]: gate_proj stacked on up_proj */
    dmllm_linear *down;         /* [hidden, inter] */
} llm_layer;

struct dmllm_llm {
    dmllm_text_config text;
    dmllm_dtype embed_dtype;
    const void *embed;          /* [vocab, hidden] of embed_dtype, in the checkpoint's mapping: a lookup
                                   pages in only the rows it reads */
    float *final_norm;          /* [hidden] */
    double *rope_inv_freq;      /* [rope / 2]: rope_theta^(-2i/rope) */
    llm_layer *layers;          /* [num_layers] */
    dmllm_linear *lm_head;      /* [vocab, hidden], tied to embed_tokens */
};

struct dmllm_kv_cache {
    int n_layers, row_width;    /* row_width = kv_lora + rope */
    int capacity, length;
    float *rows;                /* [n_layers, capacity, row_width] */
};

/* ---- load ------------------------------------------------------------------------------------ */

/* Looks up a floating-point tensor of shape [rows, cols] (cols == 0: a vector of rows). */
static dmllm_status get_tensor(const dmllm_checkpoint *checkpoint, const char *name, int64_t rows, int64_t cols,
                               const dmllm_tensor **out) {
    const dmllm_tensor *t = dmllm_checkpoint_tensor(checkpoint, name);
    if (!t) return dmllm_fail(DMLLM_ERR_SHAPE, "LLM tensor %s is missing from the checkpoint", name);
    bool shape_ok = cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols)
                         : (t->ndim == 1 && t->shape[0] == rows);
    if (!shape_ok)
        return dmllm_fail(DMLLM_ERR_SHAPE, "LLM tensor %s has the wrong shape (expected [%lld%s%lld])", name,
                          (long long)rows, cols ? ", " : "", cols ? (long long)cols : 0LL);
    if (t->dtype != DMLLM_DTYPE_F32 && t->dtype != DMLLM_DTYPE_F16 && t->dtype != DMLLM_DTYPE_BF16)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "LLM tensor %s has dtype %s, expected F32, F16 or BF16", name,
                          dmllm_dtype_name(t->dtype));
    *out = t;
    return DMLLM_OK;
}

static dmllm_status get_layer_tensor(const dmllm_checkpoint *checkpoint, int layer, const char *suffix,
                                     int64_t rows, int64_t cols, const dmllm_tensor **out) {
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.%s", layer, suffix);
    return get_tensor(checkpoint, name, rows, cols, out);
}

static dmllm_status load_norm(const dmllm_checkpoint *checkpoint, int layer, const char *suffix, int64_t dim,
                              float **out) {
    const dmllm_tensor *t = NULL;
    if (layer < 0) DMLLM_TRY(get_tensor(checkpoint, suffix, dim, 0, &t));
    else DMLLM_TRY(get_layer_tensor(checkpoint, layer, suffix, dim, 0, &t));
    DMLLM_TRY(dmllm_alloc(out, (size_t)dim, sizeof(float), t->name));
    dmllm_convert_to_f32(t->dtype, t->data, *out, (size_t)dim);
    dmllm_tensor_release(t);
    return DMLLM_OK;
}

/* quantisable: int8 when the backend's weights are (dmllm_linear_create), else never. */
static dmllm_status linear_from_tensor(const dmllm_backend *backend, const dmllm_tensor *t, bool quantisable,
                                       dmllm_linear **out) {
    dmllm_status status =
        dmllm_linear_find(backend, t->name, t->shape[0], t->shape[1], false, quantisable, out);
    if (status == DMLLM_OK && !*out)
        status = dmllm_linear_create_named(backend, t->name, t->dtype, t->data, t->shape[0],
                                           t->shape[1], t->shape[1], NULL, quantisable, out);
    dmllm_tensor_release(t);
    return status == DMLLM_OK ? status : dmllm_fail_context(status, "packing %s", t->name);
}

/* One linear whose rows are the rows of parts[0], then parts[1], ... (all with the same columns),
 * so projections of the same input run as one GEMM. Mixed dtypes are widened to f32. */
static dmllm_status linear_stacked(const dmllm_backend *backend, const dmllm_tensor *const *parts, int n_parts,
                                   dmllm_linear **out) {
    int64_t cols = parts[0]->shape[1], rows = 0;
    dmllm_dtype dtype = parts[0]->dtype;
    for (int p = 0; p < n_parts; p++) {
        rows += parts[p]->shape[0];
        if (parts[p]->dtype != dtype) dtype = DMLLM_DTYPE_F32;
    }
    char name[192];
    snprintf(name, sizeof name, "%s+%d", parts[0]->name, n_parts - 1);
    DMLLM_TRY(dmllm_linear_find(backend, name, rows, cols, false, true, out));
    if (*out) return DMLLM_OK;
    size_t element = dmllm_dtype_size(dtype);
    char *stacked; /* [rows, cols] of dtype */
    DMLLM_TRY(dmllm_alloc_large(&stacked, (size_t)(rows * cols), element,
                                "a stacked LLM projection"));
    char *dst = stacked;
    for (int p = 0; p < n_parts; p++) {
        size_t n = (size_t)parts[p]->n_elements;
        if (parts[p]->dtype == dtype) memcpy(dst, parts[p]->data, n * element);
        else dmllm_convert_to_f32(parts[p]->dtype, parts[p]->data, (float *)dst, n);
        dst += n * element;
    }
    dmllm_status status =
        dmllm_linear_create_named(backend, name, dtype, stacked, rows, cols, cols, NULL, true, out);
    for (int p = 0; p < n_parts; p++) dmllm_tensor_release(parts[p]);
    free(stacked);
    return status == DMLLM_OK ? status : dmllm_fail_context(status, "packing the stack of %s", parts[0]->name);
}

/* W_UK[h]^T [kv_lora, nope] and W_UV[h] [v, kv_lora] from kv_b_proj [heads*(nope+v), kv_lora]
 * (per head rows [nope k rows | v rows], model-spec 1.4). */
static dmllm_status load_absorbed(const dmllm_backend *backend, const dmllm_text_config *c, const dmllm_tensor *kv_b,
                                  llm_layer *layer) {
    int heads = c->num_heads, nope = c->qk_nope_head_dim, v = c->v_head_dim, kv_lora = c->kv_lora_rank;
    size_t element = dmllm_dtype_size(kv_b->dtype);
    const char *w = kv_b->data;
    DMLLM_TRY(dmllm_alloc(&layer->k_absorb, (size_t)heads, sizeof *layer->k_absorb, "absorbed MLA keys"));
    DMLLM_TRY(dmllm_alloc(&layer->v_unabsorb, (size_t)heads, sizeof *layer->v_unabsorb, "absorbed MLA values"));
    memset(layer->k_absorb, 0, (size_t)heads * sizeof *layer->k_absorb);
    memset(layer->v_unabsorb, 0, (size_t)heads * sizeof *layer->v_unabsorb);
    char *uk_t; /* [kv_lora, nope] of kv_b's dtype */
    DMLLM_TRY(dmllm_alloc(&uk_t, (size_t)kv_lora * (size_t)nope, element, "a transposed W_UK"));
    dmllm_status status = DMLLM_OK;
    /* The heads stay in the compute type with int8 weights too: a decoding step then runs all 32 side
     * by side through gemv.c (56 us a layer and projection in bench_matmul on Zen 5) instead of 32
     * int8 matmuls one after another (218 us), for 168 MB more than int8 over the 40 layers. */
    const bool per_head_int8 = false;
    for (int h = 0; h < heads && status == DMLLM_OK; h++) {
        const char *uk = w + (size_t)h * (size_t)(nope + v) * (size_t)kv_lora * element; /* [nope, kv_lora] */
        char k_name[192], v_name[192];
        snprintf(k_name, sizeof k_name, "%s:k_absorb.%d", kv_b->name, h);
        snprintf(v_name, sizeof v_name, "%s:v_unabsorb.%d", kv_b->name, h);
        const char *uv = uk + (size_t)nope * kv_lora * element; /* [v, kv_lora] */
        status =
            dmllm_linear_find(backend, k_name, kv_lora, nope, false, per_head_int8, &layer->k_absorb[h]);
        if (status == DMLLM_OK && !layer->k_absorb[h]) {
            for (int i = 0; i < nope; i++)
                for (int j = 0; j < kv_lora; j++)
                    memcpy(uk_t + ((size_t)j * nope + i) * element,
                           uk + ((size_t)i * kv_lora + j) * element, element);
            status = dmllm_linear_create_named(backend, k_name, kv_b->dtype, uk_t, kv_lora, nope,
                                               nope, NULL, per_head_int8, &layer->k_absorb[h]);
        }
        if (status == DMLLM_OK)
            status = dmllm_linear_find(backend, v_name, v, kv_lora, false, per_head_int8,
                                       &layer->v_unabsorb[h]);
        if (status == DMLLM_OK && !layer->v_unabsorb[h])
            status = dmllm_linear_create_named(backend, v_name, kv_b->dtype, uv, v, kv_lora,
                                               kv_lora, NULL, per_head_int8, &layer->v_unabsorb[h]);
    }
    free(uk_t);
    return status == DMLLM_OK ? status : dmllm_fail_context(status, "absorbing %s", kv_b->name);
}

static dmllm_status load_layer(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint,
                               const dmllm_text_config *c, int l, llm_layer *layer) {
    int64_t hidden = c->hidden_size, heads = c->num_heads, q_lora = c->q_lora_rank, kv_lora = c->kv_lora_rank;
    int64_t nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim, v = c->v_head_dim;
    int64_t inter = c->intermediate_size;
    const dmllm_tensor *q_a, *kv_a, *q_b, *kv_b, *o, *gate, *up, *down;
    DMLLM_TRY(load_norm(checkpoint, l, "input_layernorm.weight", hidden, &layer->input_norm));
    DMLLM_TRY(load_norm(checkpoint, l, "post_attention_layernorm.weight", hidden, &layer->post_attention_norm));
    DMLLM_TRY(load_norm(checkpoint, l, "self_attn.q_a_layernorm.weight", q_lora, &layer->q_a_norm));
    DMLLM_TRY(load_norm(checkpoint, l, "self_attn.kv_a_layernorm.weight", kv_lora, &layer->kv_a_norm));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "self_attn.q_a_proj.weight", q_lora, hidden, &q_a));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "self_attn.kv_a_proj_with_mqa.weight", kv_lora + rope, hidden, &kv_a));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "self_attn.q_b_proj.weight", heads * (nope + rope), q_lora, &q_b));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "self_attn.kv_b_proj.weight", heads * (nope + v), kv_lora, &kv_b));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "self_attn.o_proj.weight", hidden, heads * v, &o));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "mlp.gate_proj.weight", inter, hidden, &gate));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "mlp.up_proj.weight", inter, hidden, &up));
    DMLLM_TRY(get_layer_tensor(checkpoint, l, "mlp.down_proj.weight", hidden, inter, &down));
    const dmllm_tensor *qkv_a_parts[2] = {q_a, kv_a}, *gate_up_parts[2] = {gate, up};
    DMLLM_TRY(linear_stacked(backend, qkv_a_parts, 2, &layer->qkv_a));
    DMLLM_TRY(linear_from_tensor(backend, q_b, true, &layer->q_b));
    DMLLM_TRY(linear_from_tensor(backend, kv_b, true, &layer->kv_b));
    DMLLM_TRY(load_absorbed(backend, c, kv_b, layer));
    DMLLM_TRY(linear_from_tensor(backend, o, true, &layer->o));
    DMLLM_TRY(linear_stacked(backend, gate_up_parts, 2, &layer->gate_up));
    DMLLM_TRY(linear_from_tensor(backend, down, true, &layer->down));
    return DMLLM_OK;
}

static dmllm_status load_all(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint, dmllm_llm *llm) {
    const dmllm_text_config *c = &llm->text;
    if (!c->tie_word_embeddings)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: tie_word_embeddings must be true for youtu_vl");
    if (c->qk_rope_head_dim % 2 != 0)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "config.json: qk_rope_head_dim %d must be even", c->qk_rope_head_dim);
    const dmllm_tensor *embed;
    DMLLM_TRY(get_tensor(checkpoint, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, &embed));
    llm->embed_dtype = embed->dtype;
    llm->embed = embed->data;
    /* With int8 weights the LM head stays in the compute type: it only scores generated tokens. */
    DMLLM_TRY(linear_from_tensor(backend, embed, false, &llm->lm_head));
    DMLLM_TRY(load_norm(checkpoint, -1, "model.norm.weight", c->hidden_size, &llm->final_norm));

    int half = c->qk_rope_head_dim / 2;
    DMLLM_TRY(dmllm_alloc(&llm->rope_inv_freq, (size_t)half, sizeof(double), "the LLM RoPE frequencies"));
    for (int i = 0; i < half; i++) llm->rope_inv_freq[i] = pow(c->rope_theta, -2.0 * i / c->qk_rope_head_dim);

    llm->layers = dmllm_calloc((size_t)c->num_layers, sizeof *llm->layers);
    if (!llm->layers) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for %d LLM layers", c->num_layers);
    for (int l = 0; l < c->num_layers; l++) DMLLM_TRY(load_layer(backend, checkpoint, c, l, &llm->layers[l]));
    return DMLLM_OK;
}

dmllm_status dmllm_llm_load(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint, dmllm_llm **out) {
    if (!backend || !checkpoint || !out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_llm_load: NULL argument");
    *out = NULL;
    dmllm_llm *llm = dmllm_calloc(1, sizeof *llm);
    if (!llm) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the LLM");
    llm->text = dmllm_checkpoint_config(checkpoint)->text;
    dmllm_status status = load_all(backend, checkpoint, llm);
    if (status != DMLLM_OK) {
        dmllm_llm_free(llm);
        return status;
    }
    *out = llm;
    return DMLLM_OK;
}

static void free_layer(llm_layer *layer, int heads) {
    free(layer->input_norm);
    free(layer->post_attention_norm);
    free(layer->q_a_norm);
    free(layer->kv_a_norm);
    dmllm_linear_free(layer->qkv_a);
    dmllm_linear_free(layer->q_b);
    dmllm_linear_free(layer->kv_b);
    for (int h = 0; h < heads; h++) {
        if (layer->k_absorb) dmllm_linear_free(layer->k_absorb[h]);
        if (layer->v_unabsorb) dmllm_linear_free(layer->v_unabsorb[h]);
    }
    free(layer->k_absorb);
    free(layer->v_unabsorb);
    dmllm_linear_free(layer->o);
    dmllm_linear_free(layer->gate_up);
    dmllm_linear_free(layer->down);
}

void dmllm_llm_free(dmllm_llm *llm) {
    if (!llm) return;
    if (llm->layers)
        for (int l = 0; l < llm->text.num_layers; l++) free_layer(&llm->layers[l], llm->text.num_heads);
    free(llm->layers);
    free(llm->final_norm);
    free(llm->rope_inv_freq);
    dmllm_linear_free(llm->lm_head);
    free(llm);
}

/* ---- KV cache -------------------------------------------------------------------------------- */

dmllm_status dmllm_kv_cache_create(const dmllm_llm *llm, int capacity, dmllm_kv_cache **out) {
    if (!llm || !out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_kv_cache_create: NULL argument");
    *out = NULL;
    if (capacity <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "KV cache capacity %d must be positive", capacity);
    dmllm_kv_cache *cache = dmllm_calloc(1, sizeof *cache);
    if (!cache) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the KV cache");
    cache->n_layers = llm->text.num_layers;
    cache->row_width = llm->text.kv_lora_rank + llm->text.qk_rope_head_dim;
    cache->capacity = capacity;
    size_t rows = (size_t)cache->n_layers * (size_t)capacity;
    dmllm_status status = dmllm_alloc(&cache->rows, rows, (size_t)cache->row_width * sizeof(float), "the KV cache");
    if (status != DMLLM_OK) {
        free(cache);
        return status;
    }
    *out = cache;
    return DMLLM_OK;
}

void dmllm_kv_cache_free(dmllm_kv_cache *cache) {
    if (!cache) return;
    free(cache->rows);
    free(cache);
}

int dmllm_kv_cache_length(const dmllm_kv_cache *cache) { return cache ? cache->length : 0; }
int dmllm_kv_cache_capacity(const dmllm_kv_cache *cache) { return cache ? cache->capacity : 0; }

void dmllm_kv_cache_truncate(dmllm_kv_cache *cache, int n_keep) {
    if (cache && n_keep < cache->length) cache->length = n_keep > 0 ? n_keep : 0;
}

/* ---- embeddings and LM head ------------------------------------------------------------------ */

static dmllm_status check_ids(const dmllm_llm *llm, const int32_t *ids, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= llm->text.vocab_size)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "%s: token id %d at index %d is outside the vocabulary [0, %d)", what, (int)ids[i], i,
                              llm->text.vocab_size);
    return DMLLM_OK;
}

static const void *embed_row(const dmllm_llm *llm, int32_t id) {
    size_t row_bytes = (size_t)llm->text.hidden_size * dmllm_dtype_size(llm->embed_dtype);
    return (const char *)llm->embed + (size_t)id * row_bytes;
}

dmllm_status dmllm_llm_embed(const dmllm_llm *llm, const int32_t *ids, int n, float *out) {
    if (!llm || n < 0 || (n > 0 && (!ids || !out)))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_llm_embed: NULL argument or negative count");
    DMLLM_TRY(check_ids(llm, ids, n, "dmllm_llm_embed"));
    int hidden = llm->text.hidden_size;
    for (int i = 0; i < n; i++)
        dmllm_convert_to_f32(llm->embed_dtype, embed_row(llm, ids[i]), out + (size_t)i * hidden, (size_t)hidden);
    return DMLLM_OK;
}

dmllm_status dmllm_llm_logits(const dmllm_llm *llm, const float *normed_hidden, int n, float *logits) {
    if (!llm || n < 0 || (n > 0 && (!normed_hidden || !logits)))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_llm_logits: NULL argument or negative count");
    if (n == 0) return DMLLM_OK;
    return dmllm_linear_forward(llm->lm_head, normed_hidden, n, logits);
}

/* Eight partial sums so the loop vectorises without reassociation flags. */
static float dot(const float *a, const float *b, int n) {
    float partial[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) partial[j] += a[i + j] * b[i + j];
    float sum = 0.0f;
    for (; i < n; i++) sum += a[i] * b[i];
    for (int j = 0; j < 8; j++) sum += partial[j];
    return sum;
}

dmllm_status dmllm_llm_logits_select(const dmllm_llm *llm, const float *normed_hidden, int n, const int32_t *ids,
                                     int n_ids, float *out) {
    if (!llm || n < 0 || n_ids < 0 || (n > 0 && n_ids > 0 && (!normed_hidden || !ids || !out)))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_llm_logits_select: NULL argument or negative count");
    if (n == 0 || n_ids == 0) return DMLLM_OK;
    int hidden = llm->text.hidden_size;
    float *rows; /* [n_ids, hidden] */
    DMLLM_TRY(dmllm_alloc(&rows, (size_t)n_ids * (size_t)hidden, sizeof(float), "the selected LM-head rows"));
    dmllm_status status = dmllm_llm_embed(llm, ids, n_ids, rows);
    if (status == DMLLM_OK) {
#pragma omp parallel for schedule(static) if ((int64_t)n * n_ids * hidden > 1000000)
        for (int r = 0; r < n; r++)
            for (int k = 0; k < n_ids; k++)
                out[(size_t)r * n_ids + k] = dot(normed_hidden + (size_t)r * hidden, rows + (size_t)k * hidden, hidden);
    }
    free(rows);
    return status;
}

/* ---- forward --------------------------------------------------------------------------------- */

dmllm_mla_form dmllm_llm_pick_form(const dmllm_llm *llm, int n_past, int n_new) {
    const dmllm_text_config *c = &llm->text;
    double heads = c->num_heads, kv_lora = c->kv_lora_rank, nope = c->qk_nope_head_dim;
    double rope = c->qk_rope_head_dim, v = c->v_head_dim;
    /* FLOPs (model-spec 4.4). Expanding one latent through kv_b_proj costs the same as absorbing one
     * query through W_UK plus un-absorbing its output through W_UV: 2*heads*kv_lora*(nope+v). Each
     * causal (query, key) pair costs 2*heads*(d_qk + d_v): (nope+rope) + v expanded, (kv_lora+rope)
     * + kv_lora absorbed. Real model: 8.4 MFLOP per latent, 20 vs 70 kFLOP per pair, so absorbed
     * wins for chunks shorter than about 170 tokens. */
    double per_latent = 2.0 * heads * kv_lora * (nope + v);
    double pairs = (double)n_new * n_past + (double)n_new * (n_new + 1) / 2.0;
    double expanded = (double)(n_past + n_new) * per_latent + pairs * 2.0 * heads * (nope + rope + v);
    double absorbed = (double)n_new * per_latent + pairs * 2.0 * heads * (2.0 * kv_lora + rope);
    return absorbed < expanded ? DMLLM_MLA_ABSORBED : DMLLM_MLA_EXPANDED;
}

/* Scratch of one forward call; widths from the config, rows = chunk (at most LLM_CHUNK_TOKENS). */
typedef struct llm_scratch {
    float *normed;      /* [chunk, hidden] */
    float *qkv_a;       /* [chunk, q_lora + kv_lora + rope] */
    float *cq;          /* [chunk, q_lora] */
    float *q;           /* [chunk, heads * (nope + rope)], per head [q_nope | q_pe] */
    float *heads_v;     /* [chunk, heads * v]: attention output before o_proj */
    float *proj;        /* [chunk, hidden]: o_proj or down_proj output */
    float *gate_up;     /* [chunk, 2 * inter] */
    float *act;         /* [chunk, inter] */
    float *rope_cos;    /* [n, rope / 2] for the call's positions */
    float *rope_sin;    /* [n, rope / 2] */
    /* ABSORBED form */
    float *q_absorbed;  /* [chunk, heads, kv_lora + rope], per head [W_UK^T q_nope | q_pe] */
    float *latent_out;  /* [heads, chunk, kv_lora]: attention-weighted latents, head-major */
    /* EXPANDED form */
    float *latents;     /* [min(n_ctx, LLM_CHUNK_TOKENS), kv_lora]: latents gathered for kv_b_proj */
    float *kv;          /* [n_ctx, heads * (nope + v)], per head [k_nope | v] */
    float *keys;        /* [n_ctx, heads * (nope + rope)], per head [k_nope | k_pe] */
} llm_scratch;

static void free_scratch(llm_scratch *s) {
    float **buffers[] = {&s->normed, &s->qkv_a, &s->cq, &s->q, &s->heads_v, &s->proj, &s->gate_up, &s->act,
                         &s->rope_cos, &s->rope_sin, &s->q_absorbed, &s->latent_out,
                         &s->latents, &s->kv, &s->keys};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) {
        free(*buffers[i]);
        *buffers[i] = NULL;
    }
}

/* One scratch buffer of a forward call: where it goes, rows x row_bytes, and what it is for. */
typedef struct scratch_buffer {
    float **buffer;
    size_t rows, row_bytes;
    const char *what;
} scratch_buffer;

enum { LLM_SCRATCH_MAX_BUFFERS = 13 };

/* The buffers of a call of n tokens (chunk rows at a time, n_ctx positions after it) in form;
 * one table serves the allocation and dmllm_llm_forward_bytes. Returns how many. */
static int scratch_plan(const dmllm_text_config *c, int n, int chunk, int n_ctx, dmllm_mla_form form,
                        llm_scratch *s, scratch_buffer plan[LLM_SCRATCH_MAX_BUFFERS]) {
    size_t m = (size_t)chunk, heads = (size_t)c->num_heads, kv_lora = (size_t)c->kv_lora_rank;
    size_t nope = (size_t)c->qk_nope_head_dim, rope = (size_t)c->qk_rope_head_dim, v = (size_t)c->v_head_dim;
    size_t hidden = (size_t)c->hidden_size, inter = (size_t)c->intermediate_size, q_lora = (size_t)c->q_lora_rank;
    const size_t f = sizeof(float);
    int k = 0;
    plan[k++] = (scratch_buffer){&s->normed, m, hidden * f, "LLM normed activations"};
    plan[k++] = (scratch_buffer){&s->qkv_a, m, (q_lora + kv_lora + rope) * f, "MLA down-projections"};
    plan[k++] = (scratch_buffer){&s->cq, m, q_lora * f, "MLA query latents"};
    plan[k++] = (scratch_buffer){&s->q, m, heads * (nope + rope) * f, "MLA queries"};
    plan[k++] = (scratch_buffer){&s->heads_v, m, heads * v * f, "MLA head outputs"};
    plan[k++] = (scratch_buffer){&s->proj, m, hidden * f, "LLM projections"};
    plan[k++] = (scratch_buffer){&s->gate_up, m, 2 * inter * f, "MLP gate and up"};
    plan[k++] = (scratch_buffer){&s->act, m, inter * f, "MLP activations"};
    plan[k++] = (scratch_buffer){&s->rope_cos, (size_t)n, rope / 2 * f, "LLM RoPE table"};
    plan[k++] = (scratch_buffer){&s->rope_sin, (size_t)n, rope / 2 * f, "LLM RoPE table"};
    if (form == DMLLM_MLA_ABSORBED) {
        plan[k++] = (scratch_buffer){&s->q_absorbed, m, heads * (kv_lora + rope) * f, "absorbed MLA queries"};
        plan[k++] = (scratch_buffer){&s->latent_out, m, heads * kv_lora * f, "absorbed MLA outputs"};
    } else {
        size_t latent_rows = n_ctx < LLM_CHUNK_TOKENS ? (size_t)n_ctx : LLM_CHUNK_TOKENS;
        plan[k++] = (scratch_buffer){&s->latents, latent_rows, kv_lora * f, "MLA latents"};
        plan[k++] = (scratch_buffer){&s->kv, (size_t)n_ctx, heads * (nope + v) * f, "expanded MLA keys and values"};
        plan[k++] = (scratch_buffer){&s->keys, (size_t)n_ctx, heads * (nope + rope) * f, "expanded MLA keys"};
    }
    return k;
}

static dmllm_status alloc_scratch(const dmllm_text_config *c, int n, int chunk, int n_ctx, dmllm_mla_form form,
                                  llm_scratch *s) {
    scratch_buffer plan[LLM_SCRATCH_MAX_BUFFERS];
    const int count = scratch_plan(c, n, chunk, n_ctx, form, s, plan);
    for (int i = 0; i < count; i++)
        DMLLM_TRY(dmllm_alloc(plan[i].buffer, plan[i].rows, plan[i].row_bytes, plan[i].what));
    return DMLLM_OK;
}

/* EXPANDED form, step 1: kv_b_proj of the cached latents of positions [first, end) into s->kv and
 * the per-head keys [k_nope | k_pe] into s->keys, in GEMMs of up to LLM_CHUNK_TOKENS rows. */
static dmllm_status expand_latents(const dmllm_text_config *c, const llm_layer *layer, const float *layer_cache,
                                   int row_width, int first, int end, llm_scratch *s) {
    int heads = c->num_heads, kv_lora = c->kv_lora_rank, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim;
    int kv_width = heads * (nope + c->v_head_dim), key_width = heads * (nope + rope);
    for (int start = first; start < end; start += LLM_CHUNK_TOKENS) {
        int m = end - start < LLM_CHUNK_TOKENS ? end - start : LLM_CHUNK_TOKENS;
        for (int i = 0; i < m; i++)
            memcpy(s->latents + (size_t)i * kv_lora, layer_cache + (size_t)(start + i) * row_width,
                   (size_t)kv_lora * sizeof(float));
        DMLLM_TRY(dmllm_linear_forward(layer->kv_b, s->latents, m, s->kv + (size_t)start * kv_width));
    }
    for (int t = first; t < end; t++) {
        const float *kv = s->kv + (size_t)t * kv_width;
        const float *k_pe = layer_cache + (size_t)t * row_width + kv_lora;
        float *keys = s->keys + (size_t)t * key_width;
        for (int h = 0; h < heads; h++) {
            memcpy(keys + (size_t)h * (nope + rope), kv + (size_t)h * (nope + c->v_head_dim),
                   (size_t)nope * sizeof(float));
            memcpy(keys + (size_t)h * (nope + rope) + nope, k_pe, (size_t)rope * sizeof(float));
        }
    }
    return DMLLM_OK;
}

/* EXPANDED form, step 2: m queries at positions pos0.. against keys [0, pos0 + m). */
static dmllm_status attend_expanded(const dmllm_text_config *c, int pos0, int m, llm_scratch *s) {
    int heads = c->num_heads, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim, v = c->v_head_dim;
    dmllm_attention_args a = {
        .n_heads = heads, .n_q = m, .n_k = pos0 + m, .d_qk = nope + rope, .d_v = v,
        .scale = (float)(1.0 / sqrt((double)(nope + rope))),
        .q = s->q, .q_row_stride = (int64_t)heads * (nope + rope), .q_head_stride = nope + rope,
        .k = s->keys, .k_row_stride = (int64_t)heads * (nope + rope), .k_head_stride = nope + rope,
        .v = s->kv + nope, .v_row_stride = (int64_t)heads * (nope + v), .v_head_stride = nope + v,
        .out = s->heads_v, .out_row_stride = (int64_t)heads * v, .out_head_stride = v,
        .causal = true, .q_pos0 = pos0};
    return dmllm_attention(&a);
}

/* ABSORBED form: q~_h = W_UK[h]^T q_nope_h; all heads attend to the cached rows [c | k_pe] (shared
 * keys, values = their c part); o_h = W_UV[h] c^_h. */
static dmllm_status attend_absorbed(const dmllm_text_config *c, const llm_layer *layer, const float *layer_cache,
                                    int row_width, int pos0, int m, llm_scratch *s) {
    int heads = c->num_heads, kv_lora = c->kv_lora_rank, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim;
    int v = c->v_head_dim, q_width = heads * (nope + rope), qa_width = heads * (kv_lora + rope);
    DMLLM_TRY(dmllm_linear_forward_each(layer->k_absorb, heads, m, s->q, nope + rope, q_width, s->q_absorbed,
                                        kv_lora + rope, qa_width));
    for (int i = 0; i < m; i++)
        for (int h = 0; h < heads; h++)
            memcpy(s->q_absorbed + (size_t)i * qa_width + (size_t)h * (kv_lora + rope) + kv_lora,
                   s->q + (size_t)i * q_width + (size_t)h * (nope + rope) + nope, (size_t)rope * sizeof(float));
    dmllm_attention_args a = {
        .n_heads = heads, .n_q = m, .n_k = pos0 + m, .d_qk = kv_lora + rope, .d_v = kv_lora,
        .scale = (float)(1.0 / sqrt((double)(nope + rope))),
        .q = s->q_absorbed, .q_row_stride = qa_width, .q_head_stride = kv_lora + rope,
        .k = layer_cache, .k_row_stride = row_width, .k_head_stride = 0,
        .v = layer_cache, .v_row_stride = row_width, .v_head_stride = 0,
        .out = s->latent_out, .out_row_stride = kv_lora, .out_head_stride = (int64_t)m * kv_lora,
        .causal = true, .q_pos0 = pos0};
    DMLLM_TRY(dmllm_attention(&a));
    return dmllm_linear_forward_each(layer->v_unabsorb, heads, m, s->latent_out, (int64_t)m * kv_lora, kv_lora,
                                     s->heads_v, v, (int64_t)heads * v);
}

/* One layer on the m rows x at positions pos0.. (x += MLA(norm x); x += MLP(norm x)); writes the
 * cache rows of those positions. rope_row indexes the call's RoPE table. */
static dmllm_status layer_chunk(const dmllm_text_config *c, const llm_layer *layer, float *layer_cache,
                                int row_width, dmllm_mla_form form, int pos0, int m, int rope_row, float *x,
                                llm_scratch *s) {
    int hidden = c->hidden_size, q_lora = c->q_lora_rank, kv_lora = c->kv_lora_rank, rope = c->qk_rope_head_dim;
    int heads = c->num_heads, nope = c->qk_nope_head_dim, inter = c->intermediate_size;
    int qa_width = q_lora + kv_lora + rope;
    float eps = c->rms_norm_eps;
    const float *rope_cos = s->rope_cos + (size_t)rope_row * (rope / 2);
    const float *rope_sin = s->rope_sin + (size_t)rope_row * (rope / 2);
    float *cache_rows = layer_cache + (size_t)pos0 * row_width;

    dmllm_rmsnorm(x, hidden, layer->input_norm, s->normed, hidden, m, hidden, eps);
    DMLLM_TRY(dmllm_linear_forward(layer->qkv_a, s->normed, m, s->qkv_a));
    dmllm_rmsnorm(s->qkv_a, qa_width, layer->q_a_norm, s->cq, q_lora, m, q_lora, eps);
    dmllm_rmsnorm(s->qkv_a + q_lora, qa_width, layer->kv_a_norm, cache_rows, row_width, m, kv_lora, eps);
    for (int i = 0; i < m; i++)
        memcpy(cache_rows + (size_t)i * row_width + kv_lora, s->qkv_a + (size_t)i * qa_width + q_lora + kv_lora,
               (size_t)rope * sizeof(float));
    dmllm_rope_apply(cache_rows + kv_lora, m, row_width, 1, 0, rope, rope_cos, rope_sin, DMLLM_ROPE_INTERLEAVED);
    DMLLM_TRY(dmllm_linear_forward(layer->q_b, s->cq, m, s->q));
    dmllm_rope_apply(s->q + nope, m, (int64_t)heads * (nope + rope), heads, nope + rope, rope, rope_cos, rope_sin,
                     DMLLM_ROPE_INTERLEAVED);
    if (form == DMLLM_MLA_ABSORBED) {
        DMLLM_TRY(attend_absorbed(c, layer, layer_cache, row_width, pos0, m, s));
    } else {
        DMLLM_TRY(expand_latents(c, layer, layer_cache, row_width, pos0, pos0 + m, s));
        DMLLM_TRY(attend_expanded(c, pos0, m, s));
    }
    DMLLM_TRY(dmllm_linear_forward(layer->o, s->heads_v, m, s->proj));
    dmllm_add(x, s->proj, (int64_t)m * hidden);

    dmllm_rmsnorm(x, hidden, layer->post_attention_norm, s->normed, hidden, m, hidden, eps);
    DMLLM_TRY(dmllm_linear_forward(layer->gate_up, s->normed, m, s->gate_up));
    for (int i = 0; i < m; i++) {
        const float *gate = s->gate_up + (size_t)i * 2 * inter;
        dmllm_silu_mul(gate, gate + inter, s->act + (size_t)i * inter, inter);
    }
    DMLLM_TRY(dmllm_linear_forward(layer->down, s->act, m, s->proj));
    dmllm_add(x, s->proj, (int64_t)m * hidden);
    return DMLLM_OK;
}

static dmllm_status forward_layers(const dmllm_llm *llm, dmllm_kv_cache *cache, int n, float *x,
                                   const dmllm_progress *progress, dmllm_mla_form form, llm_scratch *s) {
    const dmllm_text_config *c = &llm->text;
    int n_past = cache->length, chunk = n < LLM_CHUNK_TOKENS ? n : LLM_CHUNK_TOKENS, half = c->qk_rope_head_dim / 2;
    DMLLM_TRY(alloc_scratch(c, n, chunk, n_past + n, form, s));
    for (int t = 0; t < n; t++)
        for (int i = 0; i < half; i++) {
            double angle = (double)(n_past + t) * llm->rope_inv_freq[i];
            s->rope_cos[(size_t)t * half + i] = (float)cos(angle);
            s->rope_sin[(size_t)t * half + i] = (float)sin(angle);
        }
    for (int l = 0; l < c->num_layers; l++) {
        float *layer_cache = cache->rows + (size_t)l * cache->capacity * cache->row_width;
        if (form == DMLLM_MLA_EXPANDED)
            DMLLM_TRY(expand_latents(c, &llm->layers[l], layer_cache, cache->row_width, 0, n_past, s));
        for (int start = 0; start < n; start += chunk) {
            int m = n - start < chunk ? n - start : chunk;
            DMLLM_TRY(layer_chunk(c, &llm->layers[l], layer_cache, cache->row_width, form, n_past + start, m, start,
                                  x + (size_t)start * c->hidden_size, s));
        }
        DMLLM_TRY(dmllm_progress_report(progress, "llm", l + 1, c->num_layers));
    }
    dmllm_rmsnorm(x, c->hidden_size, llm->final_norm, x, c->hidden_size, n, c->hidden_size, c->rms_norm_eps);
    return DMLLM_OK;
}

dmllm_status dmllm_llm_forward_form(const dmllm_llm *llm, dmllm_kv_cache *cache, const float *embeddings, int n,
                                    float *normed_hidden, const dmllm_progress *progress, dmllm_mla_form form) {
    if (!llm || !cache || n < 0 || (n > 0 && (!embeddings || !normed_hidden)))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_llm_forward: NULL argument or negative count");
    if (cache->n_layers != llm->text.num_layers ||
        cache->row_width != llm->text.kv_lora_rank + llm->text.qk_rope_head_dim)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_llm_forward: the KV cache was made for another model");
    if (n > cache->capacity - cache->length)
        return dmllm_fail(DMLLM_ERR_CONTEXT_FULL, "%d new tokens do not fit the KV cache (%d of %d positions used)", n,
                          cache->length, cache->capacity);
    if (n == 0) return DMLLM_OK;
    if (form == DMLLM_MLA_AUTO) form = dmllm_llm_pick_form(llm, cache->length, n);
    memmove(normed_hidden, embeddings, (size_t)n * (size_t)llm->text.hidden_size * sizeof(float));
    llm_scratch scratch = {0};
    /* The cache rows at length .. length+n-1 are written layer by layer, but the length moves only
     * on success, so a failed or aborted call leaves the cache as it was. */
    dmllm_status status = forward_layers(llm, cache, n, normed_hidden, progress, form, &scratch);
    free_scratch(&scratch);
    if (status == DMLLM_OK) cache->length += n;
    return status;
}

size_t dmllm_llm_forward_bytes(const dmllm_llm *llm, int n_past, int n) {
    if (n <= 0) return 0;
    const dmllm_text_config *c = &llm->text;
    const dmllm_mla_form form = dmllm_llm_pick_form(llm, n_past, n);
    const int chunk = n < LLM_CHUNK_TOKENS ? n : LLM_CHUNK_TOKENS;
    llm_scratch unused;
    scratch_buffer plan[LLM_SCRATCH_MAX_BUFFERS];
    const int count = scratch_plan(c, n, chunk, n_past + n, form, &unused, plan);
    size_t bytes = 0;
    for (int i = 0; i < count; i++) bytes += plan[i].rows * plan[i].row_bytes;
    /* Inside a layer one of these runs at a time: attention or one matmul (kv_b_proj takes up to
     * LLM_CHUNK_TOKENS cached rows, the others a chunk). */
    const bool absorbed = form == DMLLM_MLA_ABSORBED;
    const dmllm_attention_args attention = {
        .d_qk = absorbed ? c->kv_lora_rank + c->qk_rope_head_dim : c->qk_nope_head_dim + c->qk_rope_head_dim,
        .d_v = absorbed ? c->kv_lora_rank : c->v_head_dim};
    size_t nested = dmllm_attention_scratch_bytes(&attention);
    const llm_layer *layer = &llm->layers[0];
    const dmllm_linear *linears[] = {layer->qkv_a, layer->q_b, layer->kv_b, layer->o, layer->gate_up, layer->down};
    for (size_t i = 0; i < sizeof linears / sizeof linears[0]; i++) {
        const size_t b = dmllm_linear_forward_bytes(linears[i], linears[i] == layer->kv_b ? LLM_CHUNK_TOKENS : chunk);
        if (b > nested) nested = b;
    }
    if (absorbed) {
        const size_t per_head[] = {dmllm_linear_forward_each_bytes(layer->k_absorb, c->num_heads, chunk),
                                   dmllm_linear_forward_each_bytes(layer->v_unabsorb, c->num_heads, chunk)};
        for (int i = 0; i < 2; i++)
            if (per_head[i] > nested) nested = per_head[i];
    }
    return bytes + nested;
}

size_t dmllm_kv_cache_bytes(const dmllm_llm *llm, int capacity) {
    const size_t row_width = (size_t)(llm->text.kv_lora_rank + llm->text.qk_rope_head_dim);
    return sizeof(dmllm_kv_cache) + (size_t)llm->text.num_layers * (size_t)capacity * row_width * sizeof(float);
}

dmllm_status dmllm_llm_forward(const dmllm_llm *llm, dmllm_kv_cache *cache, const float *embeddings, int n,
                               float *normed_hidden, const dmllm_progress *progress) {
    return dmllm_llm_forward_form(llm, cache, embeddings, n, normed_hidden, progress, DMLLM_MLA_AUTO);
}
