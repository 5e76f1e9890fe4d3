/*
 * vision.c: the SigLIP2-style vision tower (model-spec 3.1-3.5): linear patch embedding (no position
 * embedding), reorder of merge blocks into windows, 2-D rotate-half RoPE, pre-LN encoder blocks with
 * window or full bidirectional attention, restore of the merge-block order, post-LayerNorm.
 * Matrix products go through backend.h only, attention through attention.h; the checkpoint's mapped
 * tensors are only read (and converted or packed at load). Keeps no state between calls.
 *
 * Activation memory of one forward call, Np patches, hidden h, intermediate f, head_dim d,
 * chunk C = VISION_ROW_CHUNK rows (besides the caller's out, which serves as attention output):
 *   4 * (Np*h [residual] + Np*3h [q,k,v] + Np*d [RoPE cos+sin] + C*(h + f) [chunk scratch]) bytes.
 * Real model (h 1152, f 4304, d 72), 2048x2048 image (Np 16384): 75.5 + 226.5 + 4.7 + 22.3 = 329 MB
 * (314 MiB); measured peak RSS growth of a warm call with these widths: 314 MiB (the first call of a
 * process adds ~70 MiB of one-time backend and OpenMP setup).
 */
#include "vision.h"

#include "attention.h"
#include "kernels.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VISION_PREFIX "siglip2.vision_model."
/* Rows handled at once by the QKV projection, out_proj and the MLP, so that the [rows, intermediate]
 * MLP scratch stays bounded however large the image is. */
#define VISION_ROW_CHUNK 1024
#define VISION_ROPE_THETA 10000.0

typedef struct vision_layer {
    dmllm_linear *qkv;       /* [3*hidden, hidden]: q, k, v weights stacked, one GEMM */
    dmllm_linear *out_proj;  /* [hidden, hidden] */
    dmllm_linear *fc1;       /* [intermediate, hidden] */
    dmllm_linear *fc2;       /* [hidden, intermediate] */
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;  /* [hidden] each, inside dmllm_vision.norms */
    bool full_attention;
} vision_layer;

struct dmllm_vision {
    dmllm_vision_config config;
    int head_dim;
    int window_tokens;               /* window side in merged tokens */
    dmllm_linear *patch_embedding;   /* [hidden, channels*patch*patch] */
    vision_layer *layers;            /* [num_layers] */
    float *norms;                    /* [4*num_layers + 2, hidden]: per layer ln1 w, b, ln2 w, b; post w, b */
    const float *post_w, *post_b;    /* [hidden] each, inside norms */
};

/* ---- loading --------------------------------------------------------------------------------- */

static dmllm_status require_tensor(const dmllm_checkpoint *checkpoint, const char *name, int64_t rows,
                                   int64_t cols, const dmllm_tensor **out) {
    const dmllm_tensor *t = dmllm_checkpoint_tensor(checkpoint, name);
    if (!t) return dmllm_fail(DMLLM_ERR_SHAPE, "checkpoint: missing tensor %s", name);
    const bool matrix_ok = cols > 0 && t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols;
    const bool vector_ok = cols == 0 && t->ndim == 1 && t->shape[0] == rows;
    if (!matrix_ok && !vector_ok)
        return dmllm_fail(DMLLM_ERR_SHAPE, "checkpoint: tensor %s has %d dims (first %lld), expected [%lld%s%lld]",
                          name, t->ndim, t->ndim > 0 ? (long long)t->shape[0] : 0LL, (long long)rows,
                          cols > 0 ? ", " : "", (long long)cols);
    *out = t;
    return DMLLM_OK;
}

dmllm_status dmllm_load_vector_f32(const dmllm_checkpoint *checkpoint, const char *name, int64_t n, float *out) {
    const dmllm_tensor *t = NULL;
    DMLLM_TRY(require_tensor(checkpoint, name, n, 0, &t));
    dmllm_convert_to_f32(t->dtype, t->data, out, (size_t)n);
    dmllm_tensor_release(t);
    return DMLLM_OK;
}

dmllm_status dmllm_linear_from_checkpoint(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint,
                                          const char *const *weight_names, const char *const *bias_names,
                                          const int64_t *part_rows, int n_parts, int64_t in_features,
                                          dmllm_linear **out) {
    const dmllm_tensor *weights[DMLLM_MAX_LINEAR_PARTS] = {NULL};
    if (n_parts < 1 || n_parts > DMLLM_MAX_LINEAR_PARTS)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "linear for %s: %d stacked parts", weight_names[0], n_parts);
    int64_t out_features = 0;
    bool same_dtype = true;
    for (int p = 0; p < n_parts; p++) {
        DMLLM_TRY(require_tensor(checkpoint, weight_names[p], part_rows[p], in_features, &weights[p]));
        same_dtype = same_dtype && weights[p]->dtype == weights[0]->dtype;
        out_features += part_rows[p];
    }
    char name[192]; /* the packed-weight cache's name: the first part's, "+N" for N more stacked */
    if (n_parts == 1) snprintf(name, sizeof name, "%s", weight_names[0]);
    else snprintf(name, sizeof name, "%s+%d", weight_names[0], n_parts - 1);
    DMLLM_TRY(dmllm_linear_find(backend, name, out_features, in_features, bias_names != NULL, true,
                                out));
    if (*out) return DMLLM_OK;
    float *bias = NULL;    /* [out_features] */
    void *stacked = NULL;  /* [out_features, in_features] of the weights' dtype (F32 when they differ) */
    dmllm_status status = DMLLM_OK;
    if (bias_names) {
        status = dmllm_alloc(&bias, (size_t)out_features, sizeof(float), weight_names[0]);
        for (int64_t p = 0, row = 0; status == DMLLM_OK && p < n_parts; row += part_rows[p], p++)
            status = dmllm_load_vector_f32(checkpoint, bias_names[p], part_rows[p], bias + row);
    }
    dmllm_dtype dtype = weights[0]->dtype;
    const void *w = weights[0]->data;
    if (status == DMLLM_OK && n_parts > 1) {
        dtype = same_dtype ? dtype : DMLLM_DTYPE_F32;
        const size_t element = dmllm_dtype_size(dtype);
        status = dmllm_alloc_large(&stacked, (size_t)(out_features * in_features), element,
                                   weight_names[0]);
        for (int64_t p = 0, row = 0; status == DMLLM_OK && p < n_parts; row += part_rows[p], p++) {
            char *dst = (char *)stacked + (size_t)(row * in_features) * element;
            const size_t n = (size_t)(part_rows[p] * in_features);
            if (same_dtype) memcpy(dst, weights[p]->data, n * element);
            else dmllm_convert_to_f32(weights[p]->dtype, weights[p]->data, (float *)dst, n);
        }
        w = stacked;
    }
    if (status == DMLLM_OK)
        status = dmllm_linear_create_named(backend, name, dtype, w, out_features, in_features,
                                           in_features, bias, true, out);
    if (status != DMLLM_OK) status = dmllm_fail_context(status, "linear %s", weight_names[0]);
    for (int p = 0; p < n_parts; p++) dmllm_tensor_release(weights[p]);
    free(stacked);
    free(bias);
    return status;
}

static dmllm_status linear_single(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint,
                                  const char *weight_name, const char *bias_name, int64_t out_features,
                                  int64_t in_features, dmllm_linear **out) {
    return dmllm_linear_from_checkpoint(backend, checkpoint, &weight_name, &bias_name, &out_features, 1,
                                        in_features, out);
}

static dmllm_status load_layer(dmllm_vision *v, const dmllm_backend *backend, const dmllm_checkpoint *checkpoint,
                               int l) {
    const dmllm_vision_config *c = &v->config;
    const int64_t h = c->hidden_size, f = c->intermediate_size;
    vision_layer *layer = &v->layers[l];
    char names[8][160];  /* q, k, v weights, q, k, v biases, two scratch names */
    static const char *const qkv_parts[3] = {"q_proj", "k_proj", "v_proj"};
    for (int p = 0; p < 3; p++) {
        snprintf(names[p], sizeof names[p], VISION_PREFIX "encoder.layers.%d.self_attn.%s.weight", l, qkv_parts[p]);
        snprintf(names[3 + p], sizeof names[3 + p], VISION_PREFIX "encoder.layers.%d.self_attn.%s.bias", l,
                 qkv_parts[p]);
    }
    const char *const weight_names[3] = {names[0], names[1], names[2]};
    const char *const bias_names[3] = {names[3], names[4], names[5]};
    const int64_t part_rows[3] = {h, h, h};
    DMLLM_TRY(dmllm_linear_from_checkpoint(backend, checkpoint, weight_names, bias_names, part_rows, 3, h,
                                           &layer->qkv));

    static const char *const matrices[3] = {"self_attn.out_proj", "mlp.fc1", "mlp.fc2"};
    dmllm_linear **targets[3] = {&layer->out_proj, &layer->fc1, &layer->fc2};
    const int64_t outs[3] = {h, f, h}, ins[3] = {h, h, f};
    for (int m = 0; m < 3; m++) {
        snprintf(names[6], sizeof names[6], VISION_PREFIX "encoder.layers.%d.%s.weight", l, matrices[m]);
        snprintf(names[7], sizeof names[7], VISION_PREFIX "encoder.layers.%d.%s.bias", l, matrices[m]);
        DMLLM_TRY(linear_single(backend, checkpoint, names[6], names[7], outs[m], ins[m], targets[m]));
    }

    static const char *const norm_names[4] = {"layer_norm1.weight", "layer_norm1.bias", "layer_norm2.weight",
                                              "layer_norm2.bias"};
    float *norms = v->norms + (size_t)4 * l * h;
    for (int n = 0; n < 4; n++) {
        snprintf(names[6], sizeof names[6], VISION_PREFIX "encoder.layers.%d.%s", l, norm_names[n]);
        DMLLM_TRY(dmllm_load_vector_f32(checkpoint, names[6], h, norms + n * h));
    }
    layer->ln1_w = norms;
    layer->ln1_b = norms + h;
    layer->ln2_w = norms + 2 * h;
    layer->ln2_b = norms + 3 * h;
    for (int i = 0; i < c->n_fullatt_blocks; i++)
        if (c->fullatt_block_indexes[i] == l) layer->full_attention = true;
    return DMLLM_OK;
}

static dmllm_status vision_load(dmllm_vision *v, const dmllm_backend *backend, const dmllm_checkpoint *checkpoint) {
    const dmllm_vision_config *c = &v->config;
    const int64_t h = c->hidden_size;
    const int64_t patch_dim = (int64_t)c->num_channels * c->patch_size * c->patch_size;
    if (c->num_heads <= 0 || h % c->num_heads != 0 || (h / c->num_heads) % 4 != 0 || v->window_tokens <= 0 ||
        c->spatial_merge_size <= 0)
        return dmllm_fail(DMLLM_ERR_FORMAT, "vision config: hidden %lld, %d heads, window %d merged tokens, merge %d "
                          "(need head_dim divisible by 4 and positive window and merge)",
                          (long long)h, c->num_heads, v->window_tokens, c->spatial_merge_size);
    v->head_dim = (int)(h / c->num_heads);
    DMLLM_TRY(linear_single(backend, checkpoint, VISION_PREFIX "embeddings.patch_embedding.weight",
                            VISION_PREFIX "embeddings.patch_embedding.bias", h, patch_dim, &v->patch_embedding));
    DMLLM_TRY(dmllm_alloc(&v->layers, (size_t)c->num_layers, sizeof *v->layers, "the vision layers"));
    memset(v->layers, 0, (size_t)c->num_layers * sizeof *v->layers);
    DMLLM_TRY(dmllm_alloc(&v->norms, (size_t)(4 * c->num_layers + 2) * (size_t)h, sizeof(float),
                          "the vision LayerNorm weights"));
    for (int l = 0; l < c->num_layers; l++) DMLLM_TRY(load_layer(v, backend, checkpoint, l));
    float *post = v->norms + (size_t)4 * c->num_layers * h;
    DMLLM_TRY(dmllm_load_vector_f32(checkpoint, VISION_PREFIX "post_layernorm.weight", h, post));
    DMLLM_TRY(dmllm_load_vector_f32(checkpoint, VISION_PREFIX "post_layernorm.bias", h, post + h));
    v->post_w = post;
    v->post_b = post + h;
    return DMLLM_OK;
}

dmllm_status dmllm_vision_load(const dmllm_backend *backend, const dmllm_checkpoint *checkpoint, dmllm_vision **out) {
    *out = NULL;
    dmllm_vision *v = NULL;
    DMLLM_TRY(dmllm_alloc(&v, 1, sizeof *v, "the vision tower"));
    memset(v, 0, sizeof *v);
    v->config = dmllm_checkpoint_config(checkpoint)->vision;
    v->window_tokens = dmllm_config_window_tokens(&v->config);
    dmllm_status status = vision_load(v, backend, checkpoint);
    if (status != DMLLM_OK) {
        dmllm_vision_free(v);
        return dmllm_fail_context(status, "loading the vision tower");
    }
    *out = v;
    return DMLLM_OK;
}

void dmllm_vision_free(dmllm_vision *vision) {
    if (!vision) return;
    if (vision->layers) {
        for (int l = 0; l < vision->config.num_layers; l++) {
            dmllm_linear_free(vision->layers[l].qkv);
            dmllm_linear_free(vision->layers[l].out_proj);
            dmllm_linear_free(vision->layers[l].fc1);
            dmllm_linear_free(vision->layers[l].fc2);
        }
        free(vision->layers);
    }
    dmllm_linear_free(vision->patch_embedding);
    free(vision->norms);
    free(vision);
}

/* ---- window partition and RoPE table --------------------------------------------------------- */

int dmllm_vision_window_order(int merged_h, int merged_w, int window_tokens, int *window_index,
                              int *window_starts) {
    int n_windows = 0, position = 0;
    for (int r0 = 0; r0 < merged_h; r0 += window_tokens) {
        for (int c0 = 0; c0 < merged_w; c0 += window_tokens) {
            window_starts[n_windows++] = position;
            for (int r = r0; r < merged_h && r < r0 + window_tokens; r++)
                for (int c = c0; c < merged_w && c < c0 + window_tokens; c++) window_index[position++] = r * merged_w + c;
        }
    }
    window_starts[n_windows] = position;
    return n_windows;
}

/* cos/sin [n_patches, head_dim/2] in window order: the first head_dim/4 angles rotate by the patch row,
 * the next head_dim/4 by the patch column (model-spec 3.3). */
static void build_rope_table(const dmllm_vision *v, const int *window_index, int n_merged, int merged_w,
                             float *cos_table, float *sin_table) {
    const int merge = v->config.spatial_merge_size, unit = merge * merge;
    const int half = v->head_dim / 2, quarter = v->head_dim / 4;
    for (int k = 0; k < quarter; k++) {
        const double inv_freq = pow(VISION_ROPE_THETA, -2.0 * k / half);
        for (int i = 0; i < n_merged; i++) {
            const int token = window_index[i];
            for (int u = 0; u < unit; u++) {
                const double y = (double)(token / merged_w * merge + u / merge);
                const double x = (double)(token % merged_w * merge + u % merge);
                const size_t row = ((size_t)i * unit + u) * (size_t)half;
                cos_table[row + k] = (float)cos(y * inv_freq);
                sin_table[row + k] = (float)sin(y * inv_freq);
                cos_table[row + quarter + k] = (float)cos(x * inv_freq);
                sin_table[row + quarter + k] = (float)sin(x * inv_freq);
            }
        }
    }
}

/* ---- forward --------------------------------------------------------------------------------- */

typedef struct vision_scratch {
    int *window_index;   /* [n_merged] row-major merged token at each window position */
    int *window_starts;  /* [n_windows + 1] in merged tokens */
    float *x;            /* [n_patches, hidden] residual stream, window order */
    float *qkv;          /* [n_patches, 3*hidden] roped q, k and v of the current layer */
    float *rope_cos;     /* [n_patches, head_dim/2] window order */
    float *rope_sin;     /* [n_patches, head_dim/2] */
    float *rows;         /* [VISION_ROW_CHUNK, hidden] normed input or projection output of a chunk */
    float *mlp;          /* [VISION_ROW_CHUNK, intermediate] */
} vision_scratch;

static void scratch_free(vision_scratch *s) {
    free(s->window_index);
    free(s->window_starts);
    free(s->x);
    free(s->qkv);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->rows);
    free(s->mlp);
}

/* Element counts of the scratch buffers, in the order of scratch_buffers(); one table serves the
 * allocation and dmllm_vision_forward_bytes. */
enum { VISION_SCRATCH_BUFFERS = 8 };
static void scratch_counts(const dmllm_vision *v, int n_merged, int max_windows, int64_t n_patches,
                           size_t counts[VISION_SCRATCH_BUFFERS]) {
    const size_t np = (size_t)n_patches, h = (size_t)v->config.hidden_size;
    const size_t chunk = (size_t)(n_patches < VISION_ROW_CHUNK ? n_patches : VISION_ROW_CHUNK);
    const size_t sizes[VISION_SCRATCH_BUFFERS] = {
        (size_t)n_merged, (size_t)max_windows + 1, np * h, np * 3 * h, np * (size_t)(v->head_dim / 2),
        np * (size_t)(v->head_dim / 2), chunk * h, chunk * (size_t)v->config.intermediate_size};
    memcpy(counts, sizes, sizeof sizes);
}

static dmllm_status scratch_alloc(vision_scratch *s, const dmllm_vision *v, int n_merged, int max_windows,
                                  int64_t n_patches) {
    size_t n[VISION_SCRATCH_BUFFERS];
    scratch_counts(v, n_merged, max_windows, n_patches, n);
    DMLLM_TRY(dmllm_alloc(&s->window_index, n[0], sizeof(int), "the vision window order"));
    DMLLM_TRY(dmllm_alloc(&s->window_starts, n[1], sizeof(int), "the vision windows"));
    DMLLM_TRY(dmllm_alloc(&s->x, n[2], sizeof(float), "the vision hidden states"));
    DMLLM_TRY(dmllm_alloc(&s->qkv, n[3], sizeof(float), "the vision q, k, v"));
    DMLLM_TRY(dmllm_alloc(&s->rope_cos, n[4], sizeof(float), "the vision RoPE table"));
    DMLLM_TRY(dmllm_alloc(&s->rope_sin, n[5], sizeof(float), "the vision RoPE table"));
    DMLLM_TRY(dmllm_alloc(&s->rows, n[6], sizeof(float), "the vision row chunk"));
    DMLLM_TRY(dmllm_alloc(&s->mlp, n[7], sizeof(float), "the vision MLP chunk"));
    return DMLLM_OK;
}

/* LN1 -> QKV -> RoPE on q and k, VISION_ROW_CHUNK rows at a time. */
static dmllm_status project_qkv(const dmllm_vision *v, const vision_layer *layer, vision_scratch *s,
                                int64_t n_patches) {
    const int64_t h = v->config.hidden_size, half = v->head_dim / 2;
    for (int64_t r0 = 0; r0 < n_patches; r0 += VISION_ROW_CHUNK) {
        const int64_t n = n_patches - r0 < VISION_ROW_CHUNK ? n_patches - r0 : VISION_ROW_CHUNK;
        float *qkv = s->qkv + r0 * 3 * h;
        dmllm_layernorm(s->x + r0 * h, layer->ln1_w, layer->ln1_b, s->rows, n, (int)h, v->config.layer_norm_eps);
        DMLLM_TRY(dmllm_linear_forward(layer->qkv, s->rows, n, qkv));
        for (int part = 0; part < 2; part++)  /* q, then k */
            dmllm_rope_apply(qkv + part * h, n, 3 * h, v->config.num_heads, v->head_dim, v->head_dim,
                             s->rope_cos + r0 * half, s->rope_sin + r0 * half, DMLLM_ROPE_ROTATE_HALF);
    }
    return DMLLM_OK;
}

/* Bidirectional attention of the patches [begin, end) (window order) among themselves. */
static dmllm_status attend_segment(const dmllm_vision *v, const vision_scratch *s, int64_t begin, int64_t end,
                                   float *attn_out) {
    const int64_t h = v->config.hidden_size;
    dmllm_attention_args args = {
        .n_heads = v->config.num_heads,
        .n_q = (int)(end - begin), .n_k = (int)(end - begin),
        .d_qk = v->head_dim, .d_v = v->head_dim,
        .scale = (float)(1.0 / sqrt((double)v->head_dim)),
        .q = s->qkv + begin * 3 * h, .q_row_stride = 3 * h, .q_head_stride = v->head_dim,
        .k = s->qkv + begin * 3 * h + h, .k_row_stride = 3 * h, .k_head_stride = v->head_dim,
        .v = s->qkv + begin * 3 * h + 2 * h, .v_row_stride = 3 * h, .v_head_stride = v->head_dim,
        .out = attn_out + begin * h, .out_row_stride = h, .out_head_stride = v->head_dim,
        .causal = false, .q_pos0 = 0,
    };
    return dmllm_attention(&args);
}

/* out_proj + residual, then LN2 -> fc1 -> tanh-GELU -> fc2 + residual, VISION_ROW_CHUNK rows at a time. */
static dmllm_status project_and_mlp(const dmllm_vision *v, const vision_layer *layer, vision_scratch *s,
                                    const float *attn_out, int64_t n_patches) {
    const int64_t h = v->config.hidden_size, f = v->config.intermediate_size;
    for (int64_t r0 = 0; r0 < n_patches; r0 += VISION_ROW_CHUNK) {
        const int64_t n = n_patches - r0 < VISION_ROW_CHUNK ? n_patches - r0 : VISION_ROW_CHUNK;
        float *x = s->x + r0 * h;
        DMLLM_TRY(dmllm_linear_forward(layer->out_proj, attn_out + r0 * h, n, s->rows));
        dmllm_add(x, s->rows, n * h);
        dmllm_layernorm(x, layer->ln2_w, layer->ln2_b, s->rows, n, (int)h, v->config.layer_norm_eps);
        DMLLM_TRY(dmllm_linear_forward(layer->fc1, s->rows, n, s->mlp));
        dmllm_gelu_tanh(s->mlp, n * f);
        DMLLM_TRY(dmllm_linear_forward(layer->fc2, s->mlp, n, s->rows));
        dmllm_add(x, s->rows, n * h);
    }
    return DMLLM_OK;
}

/* Moves groups of `unit` rows: to_window != 0 gathers dst[window i] = src[token window_index[i]],
 * otherwise scatters back to the merge-block order. */
static void permute_groups(const int *window_index, int n_merged, int unit, int64_t hidden, const float *src,
                           float *dst, bool to_window) {
    const size_t group = (size_t)unit * (size_t)hidden;
    for (int i = 0; i < n_merged; i++) {
        const size_t window_row = (size_t)i * group, token_row = (size_t)window_index[i] * group;
        if (to_window) memcpy(dst + window_row, src + token_row, group * sizeof(float));
        else memcpy(dst + token_row, src + window_row, group * sizeof(float));
    }
}

static dmllm_status vision_run(const dmllm_vision *v, vision_scratch *s, const float *pixel_values, int gh, int gw,
                               float *out, const dmllm_progress *progress) {
    const dmllm_vision_config *c = &v->config;
    const int merge = c->spatial_merge_size, unit = merge * merge;
    const int merged_h = gh / merge, merged_w = gw / merge, n_merged = merged_h * merged_w;
    const int64_t n_patches = (int64_t)gh * gw, h = c->hidden_size;
    const int n_windows = dmllm_vision_window_order(merged_h, merged_w, v->window_tokens, s->window_index,
                                                    s->window_starts);
    build_rope_table(v, s->window_index, n_merged, merged_w, s->rope_cos, s->rope_sin);

    /* The caller's out holds the merge-block-order embedding, then each layer's attention output. */
    const int64_t patch_dim = dmllm_linear_in_features(v->patch_embedding);
    for (int64_t r0 = 0; r0 < n_patches; r0 += VISION_ROW_CHUNK) {  /* chunked: bounds the backend's scratch */
        const int64_t n = n_patches - r0 < VISION_ROW_CHUNK ? n_patches - r0 : VISION_ROW_CHUNK;
        DMLLM_TRY(dmllm_linear_forward(v->patch_embedding, pixel_values + r0 * patch_dim, n, out + r0 * h));
    }
    permute_groups(s->window_index, n_merged, unit, h, out, s->x, true);

    for (int l = 0; l < c->num_layers; l++) {
        const vision_layer *layer = &v->layers[l];
        DMLLM_TRY(project_qkv(v, layer, s, n_patches));
        if (layer->full_attention) {
            DMLLM_TRY(attend_segment(v, s, 0, n_patches, out));
        } else {
            for (int w = 0; w < n_windows; w++)
                DMLLM_TRY(attend_segment(v, s, (int64_t)s->window_starts[w] * unit,
                                         (int64_t)s->window_starts[w + 1] * unit, out));
        }
        DMLLM_TRY(project_and_mlp(v, layer, s, out, n_patches));
        DMLLM_TRY(dmllm_progress_report(progress, "vision", l + 1, c->num_layers));
    }

    permute_groups(s->window_index, n_merged, unit, h, s->x, out, false);
    dmllm_layernorm(out, v->post_w, v->post_b, out, n_patches, (int)h, c->layer_norm_eps);
    return DMLLM_OK;
}

/* Windows of a gh x gw patch grid (the partition's upper bound: ragged edges included). */
static int count_windows(const dmllm_vision *v, int gh, int gw) {
    const int merge = v->config.spatial_merge_size, ws = v->window_tokens;
    return ((gh / merge + ws - 1) / ws) * ((gw / merge + ws - 1) / ws);
}

size_t dmllm_vision_forward_bytes(const dmllm_vision *vision, int gh, int gw) {
    const int merge = vision->config.spatial_merge_size;
    const int64_t n_patches = (int64_t)gh * gw, chunk = n_patches < VISION_ROW_CHUNK ? n_patches : VISION_ROW_CHUNK;
    size_t n[VISION_SCRATCH_BUFFERS];
    scratch_counts(vision, (gh / merge) * (gw / merge), count_windows(vision, gh, gw), n_patches, n);
    size_t bytes = (n[0] + n[1]) * sizeof(int);
    for (int i = 2; i < VISION_SCRATCH_BUFFERS; i++) bytes += n[i] * sizeof(float);
    /* Inside the layers one of these runs at a time: attention or one chunk's matmul. */
    const dmllm_attention_args attention = {.d_qk = vision->head_dim, .d_v = vision->head_dim};
    size_t nested = dmllm_attention_scratch_bytes(&attention);
    const vision_layer *layer = &vision->layers[0];
    const dmllm_linear *linears[] = {vision->patch_embedding, layer->qkv, layer->out_proj, layer->fc1, layer->fc2};
    for (size_t i = 0; i < sizeof linears / sizeof linears[0]; i++) {
        const size_t b = dmllm_linear_forward_bytes(linears[i], chunk);
        if (b > nested) nested = b;
    }
    return bytes + nested;
}

dmllm_status dmllm_vision_forward(const dmllm_vision *vision, const float *pixel_values, int gh, int gw,
                                  float *out, const dmllm_progress *progress) {
    if (!vision || !pixel_values || !out)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "vision forward: NULL vision, pixel_values or out");
    const int merge = vision->config.spatial_merge_size;
    if (gh <= 0 || gw <= 0 || gh % merge != 0 || gw % merge != 0 || (int64_t)gh * gw > INT_MAX)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "vision forward: patch grid %dx%d must be positive multiples of the merge size %d", gh, gw,
                          merge);
    const int merged_h = gh / merge, merged_w = gw / merge, max_windows = count_windows(vision, gh, gw);
    vision_scratch scratch = {0};
    dmllm_status status = scratch_alloc(&scratch, vision, merged_h * merged_w, max_windows, (int64_t)gh * gw);
    if (status == DMLLM_OK) status = vision_run(vision, &scratch, pixel_values, gh, gw, out, progress);
    scratch_free(&scratch);
    return status;
}
