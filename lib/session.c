/*
 * session.c: the public session functions. A session owns all mutable state of one conversation:
 * the encoded image (pixel values and merger output), the latent KV cache, the hidden states of the
 * last evaluated image and of the last token. It drives the stages (preprocess -> vision -> merger
 * -> LLM) and never writes to the model.
 *
 * Every public call runs between call_begin() and call_end(): the session's thread count is set
 * for OpenMP (and so oneDNN) and restored afterwards, and a failure's message is kept in the session.
 */
#include "preprocess.h"
#include "session.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dmllm_session {
    const dmllm_model *model;
    dmllm_session_params params;  /* resolved: n_threads > 0, n_ctx > 0 */
    char errmsg[1024];
    dmllm_kv_cache *cache;
    int hidden_size;              /* text hidden size */

    /* The encoded image: consumed by the <|image_pad|> slots of the next evaluation. */
    bool has_image;
    dmllm_image_grid grid;
    int n_image_tokens;           /* tokens_h * tokens_w */
    int patch_dim;                /* 3 * patch * patch */
    float *pixel_values;          /* [grid_h * grid_w, patch_dim] */
    float *image_embeds;          /* [n_image_tokens, hidden_size] */

    /* The most recently evaluated image, while all its positions are in the context. */
    int image_pos0;               /* position of its first token; -1 when there is none */
    bool image_has_previous;      /* image_pos0 > 0: row 0 below is a real position */
    dmllm_image_grid evaluated_grid;  /* its grid; n = tokens_h * tokens_w */
    float *image_hidden;          /* [n + 1, hidden_size]: row 0 = position image_pos0 - 1,
                                     row 1 + i = image token i (final-normed) */

    uint64_t prefix_tag;          /* see dmllm_session_prefix_tag(); 0 = none */
    int prefix_length;            /* positions the tag covers */

    int32_t *context_ids;         /* [n_ctx]: the id at each position, the first n_past valid */
    bool has_last;                /* last_hidden is the state of position n_past - 1 */
    float *last_hidden;           /* [hidden_size] */
};

/* ---- call scope ------------------------------------------------------------------------------ */

static int call_begin(const dmllm_session *s) {
    dmllm_clear_error();
    int saved = omp_get_max_threads();
    omp_set_num_threads(s->params.n_threads);
    return saved;
}

static dmllm_status remember_failure(dmllm_session *s, dmllm_status status) {
    if (status != DMLLM_OK) snprintf(s->errmsg, sizeof s->errmsg, "%s", dmllm_last_error());
    return status;
}

static dmllm_status call_end(dmllm_session *s, int saved_threads, dmllm_status status) {
    omp_set_num_threads(saved_threads);
    return remember_failure(s, status);
}

/* Fails without touching the session's message when the session itself is missing. */
#define REQUIRE_SESSION(s, fn) \
    if (!(s)) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, fn ": session is NULL")

/* Reports rows x cols and copies src when out can hold it (size-query convention of the header). */
static dmllm_status copy_matrix_out(const float *src, size_t rows, size_t cols, float *out, size_t capacity,
                                    size_t *out_rows, size_t *out_cols, const char *what) {
    if (out_rows) *out_rows = rows;
    if (out_cols) *out_cols = cols;
    if (!out || capacity < rows * cols)
        return dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "%s needs %zu floats (%zu x %zu), capacity is %zu", what,
                          rows * cols, rows, cols, out ? capacity : 0);
    memcpy(out, src, rows * cols * sizeof *out);
    return DMLLM_OK;
}

/* ---- for the task layers (session.h) ------------------------------------------------------- */

const dmllm_model *dmllm_session_model(const dmllm_session *session) { return session->model; }
const dmllm_session_params *dmllm_session_get_params(const dmllm_session *session) { return &session->params; }
const dmllm_image_grid *dmllm_session_evaluated_grid(const dmllm_session *session) {
    return session->image_pos0 >= 0 ? &session->evaluated_grid : NULL;
}

int dmllm_session_enter(dmllm_session *session) { return call_begin(session); }

dmllm_status dmllm_session_leave(dmllm_session *session, int saved_threads, dmllm_status status) {
    return call_end(session, saved_threads, status);
}

dmllm_status dmllm_session_reject(dmllm_session *session, dmllm_status status) {
    return session ? remember_failure(session, status) : status;
}

uint64_t dmllm_session_prefix_tag(const dmllm_session *session) { return session->prefix_tag; }
int dmllm_session_prefix_length(const dmllm_session *session) { return session->prefix_length; }
const int32_t *dmllm_session_context_ids(const dmllm_session *session) { return session->context_ids; }

void dmllm_session_set_prefix_tag(dmllm_session *session, uint64_t tag, int prefix_length) {
    session->prefix_tag = tag;
    session->prefix_length = prefix_length;
}

/* ---- params, create, free -------------------------------------------------------------------- */

void dmllm_session_params_init(dmllm_session_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->max_num_patches = DMLLM_DEFAULT_MAX_NUM_PATCHES;
    params->resize_mode = DMLLM_RESIZE_HF;
}

size_t dmllm_session_params_sizeof(void) { return sizeof(dmllm_session_params); }

void dmllm_session_free(dmllm_session *session) {
    if (!session) return;
    dmllm_kv_cache_free(session->cache);
    free(session->pixel_values);
    free(session->image_embeds);
    free(session->image_hidden);
    free(session->last_hidden);
    free(session->context_ids);
    free(session);
}

/* ---- memory limit ------------------------------------------------------------------------------ */

/* Allowance of every estimate for what is not worth a formula: the allocator's per-block overhead,
 * oneDNN's stream and memory objects, small index buffers. */
#define SMALL_ALLOCATIONS_BYTES ((size_t)64 << 10)

/* What a session of n_ctx positions holds from creation on: itself, the KV cache, the context ids
 * and the last hidden state. */
static size_t fixed_bytes(const dmllm_model *model, int n_ctx) {
    return SMALL_ALLOCATIONS_BYTES + sizeof(dmllm_session) + dmllm_kv_cache_bytes(model->llm, n_ctx) +
           (size_t)n_ctx * sizeof(int32_t) + (size_t)model->config->text.hidden_size * sizeof(float);
}

/* What the session holds between calls: the fixed part, the encoded image and the image states. */
static size_t held_bytes(const dmllm_session *s) {
    size_t bytes = fixed_bytes(s->model, s->params.n_ctx);
    const size_t h = (size_t)s->hidden_size * sizeof(float);
    if (s->has_image)
        bytes += (size_t)s->grid.grid_h * s->grid.grid_w * s->patch_dim * sizeof(float) + s->n_image_tokens * h;
    if (s->image_hidden) bytes += (size_t)(s->evaluated_grid.tokens_h * s->evaluated_grid.tokens_w + 1) * h;
    return bytes;
}

dmllm_status dmllm_session_check_memory(const dmllm_session *s, const char *stage, size_t needed) {
    return dmllm_check_memory(s->params.memory_limit_bytes, stage, SMALL_ALLOCATIONS_BYTES + needed,
                              held_bytes(s));
}

/* Peak bytes of encode_owned_pixels for grid: the pixel values it takes over, the vision output and
 * the embeddings, plus the larger of the vision tower's and the merger's working memory. */
static size_t encode_bytes(const dmllm_session *s, const dmllm_image_grid *grid) {
    const dmllm_model *m = s->model;
    const size_t n_patches = (size_t)grid->grid_h * grid->grid_w, n_tokens = (size_t)grid->tokens_h * grid->tokens_w;
    const size_t vision = dmllm_vision_forward_bytes(m->vision, grid->grid_h, grid->grid_w);
    const size_t merger = dmllm_merger_forward_bytes(m->merger, (int)n_tokens);
    return SMALL_ALLOCATIONS_BYTES +
           (n_patches * s->patch_dim + n_patches * m->config->vision.hidden_size + n_tokens * s->hidden_size) *
           sizeof(float) + (vision > merger ? vision : merger);
}

static dmllm_status check_encode_memory(const dmllm_session *s, const dmllm_image_grid *grid, size_t preprocess) {
    const size_t encode = encode_bytes(s, grid);
    char stage[160];
    snprintf(stage, sizeof stage, "encoding a %dx%d image (resized %dx%d, %d x %d patches)", grid->original_w,
             grid->original_h, grid->resized_w, grid->resized_h, grid->grid_h, grid->grid_w);
    return dmllm_check_memory(s->params.memory_limit_bytes, stage, preprocess > encode ? preprocess : encode,
                              held_bytes(s));
}

/* max_positions: the model's max_position_embeddings (<= 0: not given). A derived n_ctx is capped
 * by it (no position past it can be evaluated, so no cache row past it is ever needed); an
 * explicit one beyond it is refused. */
static dmllm_status resolve_params(const dmllm_session_params *given, int max_positions, dmllm_session_params *p) {
    dmllm_session_params_init(p);
    if (given) DMLLM_TRY(dmllm_copy_versioned(p, sizeof *p, given, "dmllm_session_params"));
    if (p->max_num_patches < 4)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_session_params.max_num_patches = %d; at least 4",
                          p->max_num_patches);
    if (p->resize_mode != DMLLM_RESIZE_HF && p->resize_mode != DMLLM_RESIZE_PILLOW)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_session_params.resize_mode = %d is not a dmllm_resize_mode",
                          (int)p->resize_mode);
    if (p->memory_limit_bytes < 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_session_params.memory_limit_bytes = %lld; 0 (none) or more",
                          (long long)p->memory_limit_bytes);
    p->n_threads = dmllm_resolve_threads(p->n_threads);
    if (max_positions > 0 && p->n_ctx > max_positions)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_session_params.n_ctx = %d exceeds the model's max_position_embeddings %d",
                          p->n_ctx, max_positions);
    if (p->n_ctx <= 0) {
        p->n_ctx = p->max_num_patches / 4 + 4096;
        if (max_positions > 0 && p->n_ctx > max_positions) p->n_ctx = max_positions;
    }
    return DMLLM_OK;
}

dmllm_status dmllm_session_create(const dmllm_model *model, const dmllm_session_params *params,
                                  dmllm_session **out_session) {
    if (!out_session) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_session_create: out_session is NULL");
    *out_session = NULL;
    if (!model) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_session_create: model is NULL");
    if (!model->llm)
        return dmllm_fail(DMLLM_ERR_STATE, "dmllm_session_create: the model was loaded with check_only");
    dmllm_session_params p;
    DMLLM_TRY(resolve_params(params, model->config->text.max_position_embeddings, &p));
    if (p.memory_limit_bytes == 0) p.memory_limit_bytes = model->memory_limit_bytes;
    char stage[96];
    snprintf(stage, sizeof stage, "a session with a KV cache of %d positions", p.n_ctx);
    DMLLM_TRY(dmllm_check_memory(p.memory_limit_bytes, stage, fixed_bytes(model, p.n_ctx), 0));

    dmllm_session *s = calloc(1, sizeof *s);
    if (!s) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating a session");
    s->model = model;
    s->params = p;
    s->hidden_size = model->config->text.hidden_size;
    s->image_pos0 = -1;
    s->patch_dim = model->config->vision.num_channels * model->config->vision.patch_size *
                   model->config->vision.patch_size;
    dmllm_status status = dmllm_alloc(&s->last_hidden, (size_t)s->hidden_size, sizeof(float), "the last hidden state");
    if (status == DMLLM_OK) status = dmllm_alloc(&s->context_ids, (size_t)p.n_ctx, sizeof(int32_t), "the context ids");
    if (status == DMLLM_OK) status = dmllm_kv_cache_create(model->llm, p.n_ctx, &s->cache);
    if (status != DMLLM_OK) {
        dmllm_session_free(s);
        return status;
    }
    *out_session = s;
    return DMLLM_OK;
}

const char *dmllm_session_errmsg(const dmllm_session *session) {
    return session ? session->errmsg : "session is NULL";
}

/* ---- images ---------------------------------------------------------------------------------- */

/* Runs vision + merger on pixel values the session will own on success (freed on failure). */
static dmllm_status encode_owned_pixels(dmllm_session *s, float *pixel_values, const dmllm_image_grid *grid) {
    const dmllm_config *c = s->model->config;
    const int n_patches = grid->grid_h * grid->grid_w;
    const int n_tokens = grid->tokens_h * grid->tokens_w;
    const dmllm_progress progress = {s->params.progress, s->params.progress_user_data};
    float *vision_out = NULL;   /* [n_patches, vision hidden] */
    float *embeds = NULL;       /* [n_tokens, text hidden] */
    dmllm_status status = dmllm_alloc(&vision_out, (size_t)n_patches * c->vision.hidden_size, sizeof(float),
                                      "the vision tower output");
    if (status == DMLLM_OK)
        status = dmllm_alloc(&embeds, (size_t)n_tokens * s->hidden_size, sizeof(float), "the image embeddings");
    if (status == DMLLM_OK)
        status = dmllm_vision_forward(s->model->vision, pixel_values, grid->grid_h, grid->grid_w, vision_out, &progress);
    if (status == DMLLM_OK) status = dmllm_merger_forward(s->model->merger, vision_out, n_tokens, embeds);
    free(vision_out);
    if (status != DMLLM_OK) {
        free(pixel_values);
        free(embeds);
        return status;
    }
    free(s->pixel_values);
    free(s->image_embeds);
    s->pixel_values = pixel_values;
    s->image_embeds = embeds;
    s->grid = *grid;
    s->n_image_tokens = n_tokens;
    s->has_image = true;
    return DMLLM_OK;
}

static dmllm_status check_grid(const dmllm_session *s, int grid_h, int grid_w) {
    if (grid_h <= 0 || grid_w <= 0 || grid_h % 2 || grid_w % 2)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "patch grid %d x %d: both sides must be positive and even",
                          grid_h, grid_w);
    if ((int64_t)grid_h * grid_w > s->params.max_num_patches)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "patch grid %d x %d exceeds max_num_patches %d", grid_h,
                          grid_w, s->params.max_num_patches);
    return DMLLM_OK;
}

/* Refuses, before any vision work, an image whose tokens and the n_text prompt tokens around them
 * cannot fit the context: n_ctx, which never exceeds max_position_embeddings. */
static dmllm_status check_image_fits(const dmllm_session *s, const dmllm_image_grid *grid, int n_text) {
    const int n_image = grid->tokens_h * grid->tokens_w, n_ctx = s->params.n_ctx;
    if ((int64_t)n_image + n_text <= n_ctx) return DMLLM_OK;
    const int max_positions = s->model->config->text.max_position_embeddings;
    const int room = n_ctx - n_text;
    char limit[96];
    if (n_ctx == max_positions) snprintf(limit, sizeof limit, "the model's max_position_embeddings %d", n_ctx);
    else snprintf(limit, sizeof limit, "the session's n_ctx %d (max_position_embeddings %d)", n_ctx, max_positions);
    if (room < 1)
        return dmllm_fail(DMLLM_ERR_CONTEXT_FULL, "%d prompt tokens leave no room for an image within %s", n_text,
                          limit);
    return dmllm_fail(DMLLM_ERR_CONTEXT_FULL,
                      "the image needs %d tokens (%d x %d patches, max_num_patches %d) and the prompt %d: %lld "
                      "positions, more than %s; set max_num_patches to %lld or less", n_image, grid->grid_h,
                      grid->grid_w, s->params.max_num_patches, n_text, (long long)n_image + n_text, limit,
                      4LL * room);
}

static dmllm_status encode_image(dmllm_session *s, const dmllm_image *image, int n_text) {
    const int patch = s->model->config->vision.patch_size;
    dmllm_image_grid grid = {0};
    grid.original_w = dmllm_image_width(image);
    grid.original_h = dmllm_image_height(image);
    DMLLM_TRY(dmllm_target_size(grid.original_w, grid.original_h, s->params.max_num_patches, &grid.resized_w,
                                &grid.resized_h));
    grid.grid_h = grid.resized_h / patch;
    grid.grid_w = grid.resized_w / patch;
    grid.tokens_h = grid.grid_h / 2;
    grid.tokens_w = grid.grid_w / 2;
    DMLLM_TRY(check_grid(s, grid.grid_h, grid.grid_w));
    DMLLM_TRY(check_image_fits(s, &grid, n_text));
    /* Preprocessing holds the resized image (with the resize buffers) and the pixel values. */
    const size_t pixel_bytes = (size_t)grid.grid_h * grid.grid_w * s->patch_dim * sizeof(float);
    const size_t resize = dmllm_image_resize_bytes(grid.original_w, grid.original_h, grid.resized_w, grid.resized_h);
    DMLLM_TRY(check_encode_memory(s, &grid, SMALL_ALLOCATIONS_BYTES + resize + pixel_bytes));

    dmllm_image *resized = NULL;
    DMLLM_TRY(dmllm_image_resize(image, grid.resized_w, grid.resized_h, s->params.resize_mode, &resized));
    float *pixel_values = NULL; /* [grid_h * grid_w, patch_dim] */
    dmllm_status status = dmllm_alloc(&pixel_values, (size_t)grid.grid_h * grid.grid_w * s->patch_dim,
                                      sizeof(float), "the pixel values");
    if (status == DMLLM_OK) status = dmllm_pixel_values(resized, patch, pixel_values);
    dmllm_image_free(resized);
    if (status != DMLLM_OK) {
        free(pixel_values);
        return status;
    }
    return encode_owned_pixels(s, pixel_values, &grid);
}

/* <|vision_start|> and <|vision_end|>: the least text an image comes with. */
enum { IMAGE_MARKER_TOKENS = 2 };

dmllm_status dmllm_session_encode_for_prompt(dmllm_session *session, const dmllm_image *image, int n_text) {
    REQUIRE_SESSION(session, "dmllm_session_encode_image");
    int saved = call_begin(session);
    dmllm_status status = image ? encode_image(session, image, n_text)
                                : dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_session_encode_image: image is NULL");
    return call_end(session, saved, status);
}

dmllm_status dmllm_session_encode_image(dmllm_session *session, const dmllm_image *image) {
    return dmllm_session_encode_for_prompt(session, image, IMAGE_MARKER_TOKENS);
}

static dmllm_status encode_pixels(dmllm_session *s, const float *pixel_values, int grid_h, int grid_w) {
    if (!pixel_values) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_session_encode_pixels: pixel_values is NULL");
    DMLLM_TRY(check_grid(s, grid_h, grid_w));
    const int patch = s->model->config->vision.patch_size;
    dmllm_image_grid grid = {
        .grid_h = grid_h, .grid_w = grid_w, .tokens_h = grid_h / 2, .tokens_w = grid_w / 2,
        .resized_w = grid_w * patch, .resized_h = grid_h * patch,
        .original_w = grid_w * patch, .original_h = grid_h * patch,
    };
    DMLLM_TRY(check_image_fits(s, &grid, IMAGE_MARKER_TOKENS));
    DMLLM_TRY(check_encode_memory(s, &grid, 0));
    const size_t count = (size_t)grid_h * grid_w * s->patch_dim;
    for (size_t i = 0; i < count; i++) /* a NaN would spread through attention to every token */
        if (!isfinite(pixel_values[i]))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "dmllm_session_encode_pixels: pixel_values[%zu] = %g is not finite", i,
                              (double)pixel_values[i]);
    float *copy = NULL; /* [grid_h * grid_w, patch_dim] */
    DMLLM_TRY(dmllm_alloc(&copy, count, sizeof(float), "the pixel values"));
    memcpy(copy, pixel_values, count * sizeof *copy);
    return encode_owned_pixels(s, copy, &grid);
}

dmllm_status dmllm_session_encode_pixels(dmllm_session *session, const float *pixel_values, int grid_h, int grid_w) {
    REQUIRE_SESSION(session, "dmllm_session_encode_pixels");
    int saved = call_begin(session);
    return call_end(session, saved, encode_pixels(session, pixel_values, grid_h, grid_w));
}

dmllm_status dmllm_session_image_grid(const dmllm_session *session, dmllm_image_grid *grid) {
    REQUIRE_SESSION(session, "dmllm_session_image_grid");
    DMLLM_TRY(dmllm_check_versioned_out(grid, sizeof *grid, "dmllm_image_grid"));
    if (!session->has_image) return dmllm_fail(DMLLM_ERR_STATE, "no image has been encoded in this session");
    /* The caller's struct may be older (shorter) than ours: only its struct_size bytes are written. */
    dmllm_image_grid full = session->grid;
    full.struct_size = grid->struct_size;
    memcpy(grid, &full, grid->struct_size);
    return DMLLM_OK;
}

/* ---- evaluation ------------------------------------------------------------------------------ */

/* Finds the image pads of a call: they must form one run of exactly n_image_tokens. */
static dmllm_status locate_image(const dmllm_session *s, const int32_t *ids, int n, int *first_pad) {
    const int image_id = s->model->config->image_token_id;
    int first = -1, count = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] != image_id) continue;
        if (first < 0) first = i;
        else if (ids[i - 1] != image_id)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "the <|image_pad|> tokens (id %d) must form one contiguous run; a second run starts at %d",
                              image_id, i);
        count++;
    }
    *first_pad = first;
    if (count == 0) return DMLLM_OK;
    if (!s->has_image)
        return dmllm_fail(DMLLM_ERR_STATE, "the tokens hold %d image pads but no image has been encoded", count);
    if (count != s->n_image_tokens)
        return dmllm_fail(DMLLM_ERR_SHAPE, "the tokens hold %d image pads but the encoded image has %d tokens (%d x %d)",
                          count, s->n_image_tokens, s->grid.tokens_h, s->grid.tokens_w);
    return DMLLM_OK;
}

/* Keeps the final-normed states of the image just evaluated (see image_hidden in the struct). */
static void record_image_hidden(dmllm_session *s, float *image_hidden, const float *normed, int first_pad, int n_past) {
    const size_t h = (size_t)s->hidden_size;
    free(s->image_hidden);
    s->image_hidden = image_hidden;
    s->prefix_tag = 0;
    s->evaluated_grid = s->grid;
    s->image_pos0 = n_past + first_pad;
    /* The state before the image is known if it is in this call, or was the last one evaluated
     * (not after a truncation, whose new last position was never kept). */
    s->image_has_previous = first_pad > 0 || (s->image_pos0 > 0 && s->has_last);
    if (first_pad > 0) memcpy(s->image_hidden, normed + (first_pad - 1) * h, h * sizeof(float));
    else if (s->image_has_previous) memcpy(s->image_hidden, s->last_hidden, h * sizeof(float));
    else memset(s->image_hidden, 0, h * sizeof(float));
    memcpy(s->image_hidden + h, normed + first_pad * h, (size_t)s->n_image_tokens * h * sizeof(float));
}

static dmllm_status eval_tokens(dmllm_session *s, const int32_t *ids, int n) {
    if (!ids || n <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_session_eval: n_tokens = %d with token_ids %s (need >= 1)",
                          n, ids ? "set" : "NULL");
    const int n_past = dmllm_kv_cache_length(s->cache);
    const int capacity = dmllm_kv_cache_capacity(s->cache);
    if (n > capacity - n_past)
        return dmllm_fail(DMLLM_ERR_CONTEXT_FULL, "%d new tokens do not fit: %d of %d context positions are used", n,
                          n_past, capacity);
    int first_pad = -1;
    DMLLM_TRY(locate_image(s, ids, n, &first_pad));

    const size_t h = (size_t)s->hidden_size;
    const size_t states = (2 * (size_t)n + (first_pad >= 0 ? (size_t)s->n_image_tokens + 1 : 0)) * h * sizeof(float);
    char stage[64];
    snprintf(stage, sizeof stage, "evaluating %d tokens after %d", n, n_past);
    DMLLM_TRY(dmllm_check_memory(s->params.memory_limit_bytes, stage, SMALL_ALLOCATIONS_BYTES + states +
                                 dmllm_llm_forward_bytes(s->model->llm, n_past, n), held_bytes(s)));
    float *embeddings = NULL;   /* [n, hidden] */
    float *normed = NULL;       /* [n, hidden] final-normed states */
    float *image_hidden = NULL; /* [n_image_tokens + 1, hidden] */
    dmllm_status status = dmllm_alloc(&embeddings, (size_t)n * h, sizeof(float), "the token embeddings");
    if (status == DMLLM_OK) status = dmllm_alloc(&normed, (size_t)n * h, sizeof(float), "the hidden states");
    if (status == DMLLM_OK && first_pad >= 0)
        status = dmllm_alloc(&image_hidden, (size_t)(s->n_image_tokens + 1) * h, sizeof(float), "the image states");
    if (status == DMLLM_OK) status = dmllm_llm_embed(s->model->llm, ids, n, embeddings);
    if (status == DMLLM_OK && first_pad >= 0)
        memcpy(embeddings + first_pad * h, s->image_embeds, (size_t)s->n_image_tokens * h * sizeof(float));
    const dmllm_progress progress = {s->params.progress, s->params.progress_user_data};
    if (status == DMLLM_OK) status = dmllm_llm_forward(s->model->llm, s->cache, embeddings, n, normed, &progress);
    free(embeddings);
    if (status == DMLLM_OK && first_pad >= 0) {
        record_image_hidden(s, image_hidden, normed, first_pad, n_past);
        image_hidden = NULL;
    }
    if (status == DMLLM_OK) {
        memcpy(s->last_hidden, normed + (size_t)(n - 1) * h, h * sizeof(float));
        memcpy(s->context_ids + n_past, ids, (size_t)n * sizeof *ids);
        s->has_last = true;
    }
    free(image_hidden);
    free(normed);
    return status;
}

dmllm_status dmllm_session_eval(dmllm_session *session, const int32_t *token_ids, int n_tokens) {
    REQUIRE_SESSION(session, "dmllm_session_eval");
    int saved = call_begin(session);
    return call_end(session, saved, eval_tokens(session, token_ids, n_tokens));
}

int dmllm_session_n_past(const dmllm_session *session) {
    return session ? dmllm_kv_cache_length(session->cache) : 0;
}

dmllm_status dmllm_session_truncate(dmllm_session *session, int n_keep) {
    REQUIRE_SESSION(session, "dmllm_session_truncate");
    const int n_past = dmllm_kv_cache_length(session->cache);
    if (n_keep < 0 || n_keep > n_past)
        return remember_failure(session, dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                                                    "dmllm_session_truncate: n_keep = %d outside 0..%d", n_keep, n_past));
    if (n_keep == n_past) return DMLLM_OK;
    dmllm_kv_cache_truncate(session->cache, n_keep);
    if (n_keep < session->prefix_length) session->prefix_tag = 0;
    const int n_evaluated = session->evaluated_grid.tokens_h * session->evaluated_grid.tokens_w;
    if (session->image_pos0 >= 0 && session->image_pos0 + n_evaluated > n_keep) session->image_pos0 = -1;
    session->has_last = false;
    return DMLLM_OK;
}

static dmllm_status last_logits(dmllm_session *s, float *out, size_t capacity, size_t *out_count) {
    const size_t vocab = (size_t)s->model->config->text.vocab_size;
    if (out_count) *out_count = vocab;
    if (!s->has_last)
        return dmllm_fail(DMLLM_ERR_STATE, "no logits: evaluate at least one token after creating or truncating the session");
    if (!out || capacity < vocab)
        return dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "the logits need %zu floats, capacity is %zu", vocab,
                          out ? capacity : 0);
    return dmllm_llm_logits(s->model->llm, s->last_hidden, 1, out);
}

dmllm_status dmllm_session_logits(dmllm_session *session, float *out, size_t capacity, size_t *out_count) {
    REQUIRE_SESSION(session, "dmllm_session_logits");
    int saved = call_begin(session);
    return call_end(session, saved, last_logits(session, out, capacity, out_count));
}

/* ---- intermediate results -------------------------------------------------------------------- */

static dmllm_status require_image(const dmllm_session *s) {
    return s->has_image ? DMLLM_OK : dmllm_fail(DMLLM_ERR_STATE, "no image has been encoded in this session");
}

dmllm_status dmllm_session_pixel_values(dmllm_session *session, float *out, size_t capacity, size_t *rows,
                                        size_t *cols) {
    REQUIRE_SESSION(session, "dmllm_session_pixel_values");
    dmllm_status status = require_image(session);
    if (status == DMLLM_OK)
        status = copy_matrix_out(session->pixel_values, (size_t)session->grid.grid_h * session->grid.grid_w,
                                 (size_t)session->patch_dim, out, capacity, rows, cols, "the pixel values");
    return remember_failure(session, status);
}

dmllm_status dmllm_session_image_embeddings(dmllm_session *session, float *out, size_t capacity, size_t *rows,
                                            size_t *cols) {
    REQUIRE_SESSION(session, "dmllm_session_image_embeddings");
    dmllm_status status = require_image(session);
    if (status == DMLLM_OK)
        status = copy_matrix_out(session->image_embeds, (size_t)session->n_image_tokens, (size_t)session->hidden_size,
                                 out, capacity, rows, cols, "the image embeddings");
    return remember_failure(session, status);
}

static int evaluated_tokens(const dmllm_session *s) {
    return s->evaluated_grid.tokens_h * s->evaluated_grid.tokens_w;
}

/* Rows of image_hidden that hold the states read for the image tokens under an alignment. */
static dmllm_status aligned_image_rows(const dmllm_session *s, dmllm_alignment alignment, const float **rows) {
    if (s->image_pos0 < 0)
        return dmllm_fail(DMLLM_ERR_STATE, "no evaluated image is in the context (evaluate its <|image_pad|> tokens first)");
    switch (alignment) {
    case DMLLM_ALIGN_OWN:
        *rows = s->image_hidden + s->hidden_size;
        return DMLLM_OK;
    case DMLLM_ALIGN_PREVIOUS:
        if (!s->image_has_previous)
            return dmllm_fail(DMLLM_ERR_STATE, "DMLLM_ALIGN_PREVIOUS needs the state of the token before the image; "
                                               "evaluate that token in the same call as the image");
        *rows = s->image_hidden;
        return DMLLM_OK;
    }
    return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "alignment %d is not a dmllm_alignment", (int)alignment);
}

dmllm_status dmllm_session_image_hidden(dmllm_session *session, dmllm_alignment alignment, float *out,
                                        size_t capacity, size_t *rows, size_t *cols) {
    REQUIRE_SESSION(session, "dmllm_session_image_hidden");
    const float *src = NULL;
    dmllm_status status = aligned_image_rows(session, alignment, &src);
    if (status == DMLLM_OK)
        status = copy_matrix_out(src, (size_t)evaluated_tokens(session), (size_t)session->hidden_size, out, capacity,
                                 rows, cols, "the image hidden states");
    return remember_failure(session, status);
}

static dmllm_status image_logits(dmllm_session *s, dmllm_alignment alignment, const int32_t *ids, int n_ids,
                                 float *out, size_t capacity, size_t *rows, size_t *cols) {
    if (!ids || n_ids <= 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_session_image_logits: n_ids = %d with token_ids %s (need >= 1)", n_ids,
                          ids ? "set" : "NULL");
    const float *src = NULL;
    DMLLM_TRY(aligned_image_rows(s, alignment, &src));
    const size_t n = (size_t)evaluated_tokens(s);
    if (rows) *rows = n;
    if (cols) *cols = (size_t)n_ids;
    if (!out || capacity < n * (size_t)n_ids)
        return dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "the image logits need %zu floats (%zu x %d), capacity is %zu",
                          n * (size_t)n_ids, n, n_ids, out ? capacity : 0);
    return dmllm_llm_logits_select(s->model->llm, src, (int)n, ids, n_ids, out);
}

dmllm_status dmllm_session_image_logits(dmllm_session *session, dmllm_alignment alignment, const int32_t *token_ids,
                                        int n_ids, float *out, size_t capacity, size_t *rows, size_t *cols) {
    REQUIRE_SESSION(session, "dmllm_session_image_logits");
    int saved = call_begin(session);
    return call_end(session, saved, image_logits(session, alignment, token_ids, n_ids, out, capacity, rows, cols));
}
