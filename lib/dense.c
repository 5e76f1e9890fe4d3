/*
 * dense.c: dmllm_predict_dense() (model-spec 6.3, report 9.2-9.3). Resolves the label token ids
 * (tokenizer + readout profile), has prefix.c encode and prefill the image prefix unless the
 * session already holds it, reads the label logits at the image tokens (never the full vocabulary)
 * and turns them into maps with readout.c (in evaluation through the dense CRF, crf.c). Writes only
 * the session, through its API, and the result it returns.
 */
#include "crf.h"
#include "masktext.h"
#include "prefix.h"
#include "readout.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dmllm_dense_params_init(dmllm_dense_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->task = DMLLM_TASK_SEMANTIC;
    params->layout = DMLLM_LAYOUT_IMAGE_FIRST;
    params->alignment = DMLLM_FROM_PROFILE;
    params->readout = DMLLM_FROM_PROFILE;
    params->evaluation = DMLLM_FROM_PROFILE;
}

size_t dmllm_dense_params_sizeof(void) { return sizeof(dmllm_dense_params); }

void dmllm_dense_result_free(dmllm_dense_result *result) {
    if (!result) return;
    free(result->labels);
    free(result->confidence);
    free(result->depth_m);
    free(result->depth_grid_bins);
    free(result->token_scores);
    dmllm_reply_names_free(result->class_names, result->class_names ? result->n_classes : 0);
    free(result->prompt_index);
    free(result->reply);
    free((void *)result->label_names);
    free(result);
}

/* ---- labels ---------------------------------------------------------------------------------- */

/* Label k reads the logits of ids[offsets[k] .. offsets[k+1]-1]. */
typedef struct label_set {
    int n_labels;
    int *offsets;  /* [n_labels + 1] */
    int32_t *ids;  /* [offsets[n_labels]] */
} label_set;

static void label_set_free(label_set *set) {
    free(set->offsets);
    free(set->ids);
}

static dmllm_status label_set_alloc(label_set *set, int n_labels, size_t n_ids) {
    set->n_labels = n_labels;
    DMLLM_TRY(dmllm_alloc(&set->offsets, (size_t)n_labels + 1, sizeof *set->offsets, "the label offsets"));
    return dmllm_alloc(&set->ids, n_ids ? n_ids : 1, sizeof *set->ids, "the label token ids");
}

static dmllm_status require_tokenizer(const dmllm_model *model, const char *what) {
    if (model->tokenizer) return DMLLM_OK;
    return dmllm_fail(DMLLM_ERR_STATE, "%s needs the model's tokenizer.json, and the model directory has none", what);
}

static dmllm_status find_token(const dmllm_model *model, const char *content, int32_t *id) {
    *id = dmllm_tokenizer_find(model->tokenizer, content);
    if (*id < 0 || *id >= model->config->text.vocab_size)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "the vocabulary has no token \"%s\" (check the readout profile)", content);
    return DMLLM_OK;
}

/* Class names through the tokenizer: label k = the sub-tokens of profile prefix + names[k] (Eq. 6),
 * or only the first of them when the profile says so. */
static dmllm_status labels_from_names(const dmllm_model *model, char *const *names, int n_classes, label_set *set) {
    const dmllm_readout_profile *profile = &model->profile;
    DMLLM_TRY(require_tokenizer(model, "reading class names"));
    int32_t **pieces = NULL; /* [n_classes] token ids of each name */
    size_t *counts = NULL;   /* [n_classes] */
    dmllm_status status = dmllm_alloc(&pieces, (size_t)n_classes, sizeof *pieces, "the class tokens");
    if (status == DMLLM_OK) status = dmllm_alloc(&counts, (size_t)n_classes, sizeof *counts, "the class tokens");
    size_t total = 0;
    for (int k = 0; status == DMLLM_OK && k < n_classes; k++) {
        pieces[k] = NULL;
        const char *name = names[k];
        char *text = NULL;
        const size_t length = strlen(profile->class_name_prefix) + strlen(name);
        status = dmllm_alloc(&text, length + 1, 1, "a class name");
        if (status != DMLLM_OK) break;
        snprintf(text, length + 1, "%s%s", profile->class_name_prefix, name);
        status = dmllm_tokenizer_encode(model->tokenizer, text, length, false, &pieces[k], &counts[k]);
        free(text);
        if (status == DMLLM_OK && counts[k] == 0)
            status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "class %d (\"%s\") has no tokens", k, name);
        if (status == DMLLM_OK && profile->first_subtoken_only) counts[k] = 1;
        total += status == DMLLM_OK ? counts[k] : 0;
    }
    if (status == DMLLM_OK) status = label_set_alloc(set, n_classes, total);
    if (status == DMLLM_OK) {
        set->offsets[0] = 0;
        for (int k = 0; k < n_classes; k++) {
            memcpy(set->ids + set->offsets[k], pieces[k], counts[k] * sizeof *set->ids);
            set->offsets[k + 1] = set->offsets[k] + (int)counts[k];
        }
    }
    for (int k = 0; pieces && k < n_classes; k++) free(pieces[k]);
    free(pieces);
    free(counts);
    return status;
}

static dmllm_status labels_from_ids(const dmllm_model *model, const dmllm_dense_params *p, label_set *set) {
    const int *offsets = p->label_offsets;
    if (!offsets || offsets[0] != 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "label_offsets must be given and start at 0");
    for (int k = 0; k < p->n_classes; k++)
        if (offsets[k + 1] <= offsets[k])
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "label %d has no token ids (label_offsets must increase)", k);
    const int n_ids = offsets[p->n_classes];
    for (int i = 0; i < n_ids; i++)
        if (p->label_token_ids[i] < 0 || p->label_token_ids[i] >= model->config->text.vocab_size)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "label token id %d is outside the vocabulary (0..%d)",
                              (int)p->label_token_ids[i], model->config->text.vocab_size - 1);
    DMLLM_TRY(label_set_alloc(set, p->n_classes, (size_t)n_ids));
    memcpy(set->offsets, offsets, ((size_t)p->n_classes + 1) * sizeof *offsets);
    memcpy(set->ids, p->label_token_ids, (size_t)n_ids * sizeof *set->ids);
    return DMLLM_OK;
}

/* One single-token label per content string. */
static dmllm_status labels_from_tokens(const dmllm_model *model, const char *const *contents, int n, label_set *set) {
    DMLLM_TRY(label_set_alloc(set, n, (size_t)n));
    for (int k = 0; k < n; k++) {
        set->offsets[k] = k;
        DMLLM_TRY(find_token(model, contents[k], &set->ids[k]));
    }
    set->offsets[n] = n;
    return DMLLM_OK;
}

static dmllm_status depth_labels(const dmllm_model *model, label_set *set) {
    const dmllm_readout_profile *profile = &model->profile;
    DMLLM_TRY(label_set_alloc(set, profile->depth_bins, (size_t)profile->depth_bins));
    for (int k = 0; k < profile->depth_bins; k++) {
        char content[DMLLM_PROFILE_NAME + 16];
        snprintf(content, sizeof content, profile->depth_token_format, profile->depth_first_bin + k);
        set->offsets[k] = k;
        DMLLM_TRY(find_token(model, content, &set->ids[k]));
    }
    set->offsets[profile->depth_bins] = profile->depth_bins;
    return DMLLM_OK;
}

/* The labels of a query; a semantic one reads the classes the result lists (query_classes()). */
static dmllm_status resolve_labels(const dmllm_model *model, const dmllm_dense_params *p,
                                   const dmllm_dense_result *r, label_set *set) {
    switch (p->task) {
    case DMLLM_TASK_SEMANTIC:
        if (p->label_token_ids) return labels_from_ids(model, p, set);
        return labels_from_names(model, r->class_names, r->n_classes, set);
    case DMLLM_TASK_FGBG: {
        DMLLM_TRY(require_tokenizer(model, "foreground/background segmentation"));
        const char *const tokens[2] = {model->profile.bg_token, model->profile.fg_token};
        return labels_from_tokens(model, tokens, 2, set);
    }
    case DMLLM_TASK_DEPTH:
        DMLLM_TRY(require_tokenizer(model, "depth"));
        return depth_labels(model, set);
    }
    return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dense task %d is not a dmllm_dense_task", (int)p->task);
}

/* ---- the query ------------------------------------------------------------------------------- */

/* The instruction text of a query: the caller's, or the profile's with {classes} expanded. */
static dmllm_status instruction_text(const dmllm_model *model, const dmllm_dense_params *p, char **out) {
    const dmllm_readout_profile *profile = &model->profile;
    const char *template = p->prompt;
    if (!template)
        template = p->task == DMLLM_TASK_DEPTH  ? profile->prompt_depth
                   : p->task == DMLLM_TASK_FGBG ? profile->prompt_fgbg
                   : p->background              ? profile->prompt_semantic_background
                                                : profile->prompt_semantic;
    size_t classes_length = 0;
    for (int k = 0; p->task == DMLLM_TASK_SEMANTIC && p->class_names && k < p->n_classes; k++)
        classes_length += strlen(p->class_names[k]) + 2;
    const char *slot = p->prompt ? NULL : strstr(template, "{classes}");
    DMLLM_TRY(dmllm_alloc(out, strlen(template) + classes_length + 1, 1, "the instruction"));
    char *w = *out;
    if (!slot) {
        strcpy(w, template);
        return DMLLM_OK;
    }
    w += sprintf(w, "%.*s", (int)(slot - template), template);
    for (int k = 0; p->class_names && k < p->n_classes; k++) w += sprintf(w, "%s%s", k ? ", " : "", p->class_names[k]);
    strcpy(w, slot + strlen("{classes}"));
    return DMLLM_OK;
}

/* The image the model sees: the caller's, or for metric open-world depth the one resized to a
 * 2000 px focal length (report 9.3). *owned is set when a resized copy was made. */
static dmllm_status model_input(const dmllm_session *s, const dmllm_image *image, const dmllm_dense_params *p,
                                dmllm_image **owned) {
    *owned = NULL;
    if (p->task != DMLLM_TASK_DEPTH || p->focal_length_px == 0.0f) return DMLLM_OK;
    if (!(p->focal_length_px > 0.0f) || !isfinite(p->focal_length_px))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "focal_length_px = %g must be positive", (double)p->focal_length_px);
    const double scale = 2000.0 / p->focal_length_px;
    const double w = round(dmllm_image_width(image) * scale), h = round(dmllm_image_height(image) * scale);
    if (w < 1 || h < 1 || w > 65536 || h > 65536)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "focal_length_px = %g scales the image to %.0fx%.0f",
                          (double)p->focal_length_px, w, h);
    return dmllm_image_resize(image, (int)w, (int)h, dmllm_session_get_params(s)->resize_mode, owned);
}

/* ---- the classes of a semantic query (report 9.2) -------------------------------------------- */

enum { REPLY_MARGIN_TOKENS = 64 }; /* the reply's words around its <ref> list */

/* Collects the streamed reply and stops generation once its <ref> list is over: after a "</ref>",
 * text other than blanks, commas or the start of another "<ref>". */
typedef struct reply_watch {
    char *text; /* [capacity] the reply so far, NUL-terminated */
    size_t length, capacity;
    bool out_of_memory;
} reply_watch;

static int watch_reply(int32_t id, const char *piece, size_t length, void *user_data) {
    (void)id;
    reply_watch *w = user_data;
    if (w->length + length + 1 > w->capacity) {
        const size_t capacity = 2 * (w->length + length + 1);
        char *grown = realloc(w->text, capacity);
        if (!grown) return w->out_of_memory = true;
        w->text = grown;
        w->capacity = capacity;
    }
    memcpy(w->text + w->length, piece, length);
    w->length += length;
    w->text[w->length] = '\0';
    const char *after = NULL;
    for (const char *close = strstr(w->text, "</ref>"); close; close = strstr(close + 1, "</ref>"))
        after = close + strlen("</ref>");
    if (!after) return 0;
    after += strspn(after, " \t\r\n,");
    const size_t rest = strlen(after);
    return rest > 0 && strncmp(after, "<ref>", rest < 5 ? rest : 5) != 0;
}

/* Step one: the reply to the instruction, generated after the image prefix with the official
 * decoding (greedy, repetition penalty 1.05) until the category list is over, at <mask> or at the
 * end of text, and at most REPLY_MARGIN_TOKENS + 2 per class + the bytes of the class names (every
 * token holds at least one byte): each class named once fits. The caller cuts the context back. */
static dmllm_status generate_reply(dmllm_session *s, const dmllm_dense_params *p, const char *instruction,
                                   dmllm_dense_result *r) {
    const dmllm_model *model = dmllm_session_model(s);
    int32_t *ids = NULL; /* [n_ids] the rest of the user turn and the assistant's header */
    size_t n_ids = 0;
    DMLLM_TRY(dmllm_prefix_reply_ids(model, instruction, true, p->layout, &ids, &n_ids));
    dmllm_generate_params g;
    dmllm_generate_params_init(&g);
    const int32_t stops[2] = {model->config->eos_token_id, dmllm_tokenizer_find(model->tokenizer, "<mask>")};
    g.stop_ids = stops;
    g.n_stop_ids = stops[1] >= 0 ? 2 : 1;
    size_t cap = REPLY_MARGIN_TOKENS;
    for (int k = 0; k < p->n_classes; k++) cap += strlen(p->class_names[k]) + 2;
    g.max_new_tokens = cap < (size_t)INT32_MAX ? (int)cap : INT32_MAX;
    reply_watch watch = {0};
    g.on_token = watch_reply;
    g.user_data = &watch;
    dmllm_generate_result *reply = NULL;
    const double t0 = dmllm_now_seconds();
    dmllm_status status = dmllm_generate(s, ids, (int)n_ids, &g, &reply);
    r->seconds_generate = dmllm_now_seconds() - t0;
    if (status == DMLLM_OK && watch.out_of_memory)
        status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the category reply");
    if (status == DMLLM_OK) {
        r->reply = reply->text;
        reply->text = NULL;
    }
    dmllm_generate_result_free(reply);
    free(watch.text);
    free(ids);
    return status;
}

static bool equal_ignoring_ascii_case(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b) || ((*a | *b) & 0x80 && *a != *b)) return false;
    return *a == *b;
}

/* The prompt class a printed name stands for: the same text, else the same up to ASCII case; -1. */
static int prompt_class(const dmllm_dense_params *p, const char *name) {
    for (int k = 0; k < p->n_classes; k++)
        if (!strcmp(p->class_names[k], name)) return k;
    for (int k = 0; k < p->n_classes; k++)
        if (equal_ignoring_ascii_case(p->class_names[k], name)) return k;
    return -1;
}

/* Step two's classes into the result: the names of the reply (NAMED), or the prompt's (ALL, or a
 * reply that names none), with each one's prompt index. */
static dmllm_status query_classes(const dmllm_dense_params *p, dmllm_semantic_readout readout, dmllm_dense_result *r) {
    r->readout = readout;
    if (readout == DMLLM_READOUT_NAMED) {
        DMLLM_TRY(dmllm_reply_names(r->reply, "<OTHERS>", &r->class_names, &r->n_classes));
        r->named_fallback = r->n_classes == 0;
        if (r->n_classes > 65534)
            return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "the reply names %d classes, more than 65534", r->n_classes);
    }
    const bool named = r->n_classes > 0;
    if (!named && p->class_names) {
        r->class_names = dmllm_calloc((size_t)p->n_classes, sizeof *r->class_names);
        if (!r->class_names) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the class names");
        r->n_classes = p->n_classes;
        for (int k = 0; k < p->n_classes; k++)
            if (!(r->class_names[k] = strdup(p->class_names[k])))
                return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the class names");
    }
    r->n_classes = named ? r->n_classes : p->n_classes;
    DMLLM_TRY(dmllm_alloc(&r->prompt_index, (size_t)r->n_classes, sizeof *r->prompt_index, "the class indices"));
    for (int k = 0; k < r->n_classes; k++) r->prompt_index[k] = named ? prompt_class(p, r->class_names[k]) : k;
    return DMLLM_OK;
}

/* ---- maps ------------------------------------------------------------------------------------ */

/* Each pixel's most probable channel (the first of equals, so a background channel, which is last,
 * wins only when strictly more probable) and its probability. */
static void labels_from_probabilities(const float *probabilities /* [n_pixels][n] */, size_t n_pixels, int n,
                                      uint16_t *labels, float *confidence) {
    for (size_t i = 0; i < n_pixels; i++) {
        const float *q = probabilities + i * n;
        int best = 0;
        for (int k = 1; k < n; k++)
            if (q[k] > q[best]) best = k;
        labels[i] = (uint16_t)best;
        confidence[i] = q[best];
    }
}

/* Report App. A.1.5: in evaluation the probabilities at full resolution go through the dense CRF
 * before the argmax. */
static dmllm_status crf_maps(const dmllm_image *image, const float *scores, int th, int tw, int n_labels,
                             const dmllm_score_transform *transform, const dmllm_crf_params *crf,
                             dmllm_dense_result *r) {
    const size_t n_pixels = (size_t)r->width * r->height;
    float *probabilities = NULL; /* [height][width][r->n_labels] */
    DMLLM_TRY(dmllm_alloc(&probabilities, n_pixels * r->n_labels, sizeof *probabilities, "the probability maps"));
    dmllm_status status =
        dmllm_readout_probabilities(scores, th, tw, n_labels, transform, r->height, r->width, probabilities);
    const double t0 = dmllm_now_seconds();
    if (status == DMLLM_OK) status = dmllm_crf_refine(image, probabilities, r->n_labels, crf, probabilities);
    r->seconds_crf = dmllm_now_seconds() - t0;
    if (status == DMLLM_OK) labels_from_probabilities(probabilities, n_pixels, r->n_labels, r->labels, r->confidence);
    free(probabilities);
    return status;
}

/* The score transform of a SEMANTIC or FGBG readout. */
static dmllm_score_transform class_transform(const dmllm_readout_profile *profile,
                                             const dmllm_dense_params *p) {
    return (dmllm_score_transform){
        .kind = p->background ? DMLLM_SCORE_SIGMOID_BACKGROUND : DMLLM_SCORE_SOFTMAX,
        .temperature = profile->softmax_temperature,
        .sigmoid_scale = profile->sigmoid_scale,
        .background_level = profile->background_level,
        .probability_space = profile->interpolate_probabilities,
    };
}

/* The dense CRF's parameters in evaluation (checked also when iterations = 0 skips the CRF); depth
 * has none. */
static dmllm_status class_crf(const dmllm_dense_params *p, dmllm_crf_params *crf) {
    dmllm_crf_params_init(crf);
    if (p->task == DMLLM_TASK_DEPTH) return DMLLM_OK;
    if (p->evaluation && p->crf)
        DMLLM_TRY(dmllm_copy_versioned(crf, sizeof *crf, p->crf, "dmllm_dense_params.crf"));
    return p->evaluation ? dmllm_crf_check_params(crf) : DMLLM_OK;
}

/* Bytes class_maps allocates for a width x height result: the label map, the confidence map in
 * evaluation, then the streamed argmax, or the probability maps [pixels][channels] with the larger
 * of their upsampling and the CRF. */
static size_t class_maps_bytes(const dmllm_dense_params *p, const dmllm_score_transform *transform,
                               const dmllm_crf_params *crf, int th, int tw, int n_labels, int width,
                               int height) {
    const size_t n_pixels = (size_t)width * height;
    const int channels = dmllm_readout_channels(transform, n_labels);
    const size_t maps = n_pixels * (sizeof(uint16_t) + (p->evaluation ? sizeof(float) : 0));
    const size_t upsample = dmllm_readout_bytes(th, tw, n_labels, transform, height, width);
    if (!(p->evaluation && crf->iterations > 0)) return maps + upsample;
    const size_t refine = dmllm_crf_bytes(width, height, channels, crf);
    return maps + n_pixels * channels * sizeof(float) + (upsample > refine ? upsample : refine);
}

static dmllm_status class_maps(const dmllm_image *image, const dmllm_dense_params *p,
                               const dmllm_score_transform *transform, const dmllm_crf_params *crf,
                               const float *scores, int th, int tw, int n_labels,
                               dmllm_dense_result *r) {
    const size_t n_pixels = (size_t)r->width * r->height;
    r->n_labels = dmllm_readout_channels(transform, n_labels);
    DMLLM_TRY(dmllm_alloc(&r->labels, n_pixels, sizeof *r->labels, "the label map"));
    if (p->evaluation) DMLLM_TRY(dmllm_alloc(&r->confidence, n_pixels, sizeof *r->confidence, "the confidence map"));
    r->crf = p->evaluation && crf->iterations > 0;
    if (r->crf) return crf_maps(image, scores, th, tw, n_labels, transform, crf, r);
    return dmllm_readout_argmax(scores, th, tw, n_labels, transform, r->height, r->width, r->labels,
                                r->confidence);
}

/* The shapes of depth_maps: the upsampled bin grid, the demo's (H//16) x (W//16) grid, the
 * image. */
typedef struct depth_shape {
    int uh, uw, grid_h, grid_w;
    size_t n_up, n_grid, n_pixels;
} depth_shape;

static depth_shape depth_shape_of(const dmllm_readout_profile *profile, int th, int tw, int width,
                                  int height) {
    depth_shape d = {.uh = th * profile->depth_upsample,
                     .uw = tw * profile->depth_upsample,
                     .grid_h = height / 16 > 0 ? height / 16 : 1,
                     .grid_w = width / 16 > 0 ? width / 16 : 1};
    d.n_up = (size_t)d.uh * d.uw;
    d.n_grid = (size_t)d.grid_h * d.grid_w;
    d.n_pixels = (size_t)width * height;
    return d;
}

/* The bin argmax on the token grid: plain scores, in probability space if the profile says so. */
static dmllm_score_transform depth_transform(const dmllm_readout_profile *profile) {
    return (dmllm_score_transform){.kind = DMLLM_SCORE_SOFTMAX,
                                   .temperature = 1.0f,
                                   .probability_space = profile->interpolate_probabilities};
}

/* Bytes depth_maps allocates (its buffers below, the result's maps) plus the largest of its
 * readout calls' own. */
static size_t depth_maps_bytes(const dmllm_readout_profile *profile, int th, int tw, int width,
                               int height) {
    const depth_shape d = depth_shape_of(profile, th, tw, width, height);
    const dmllm_score_transform plain = depth_transform(profile);
    const size_t resized = d.n_grid > d.n_pixels ? d.n_grid : d.n_pixels;
    const size_t probabilities = profile->depth_refine_bins > 0 ? (size_t)profile->depth_bins : 0;
    const size_t buffers = d.n_up * (sizeof(uint16_t) + (probabilities + 2) * sizeof(float)) +
                           resized * 2 * sizeof(float) + d.n_grid * sizeof(uint16_t) +
                           d.n_pixels * (sizeof(uint16_t) + sizeof(float));
    size_t readout = dmllm_readout_bytes(th, tw, profile->depth_bins, &plain, d.uh, d.uw);
    const size_t to_grid = dmllm_readout_bytes(d.uh, d.uw, 2, NULL, d.grid_h, d.grid_w);
    const size_t to_image = dmllm_readout_bytes(d.uh, d.uw, 2, NULL, height, width);
    if (to_grid > readout) readout = to_grid;
    if (to_image > readout) readout = to_image;
    return buffers + readout;
}

/* The bin index of every upsampled cell into bins[uh][uw][0] (fractional when refined): the argmax
 * (report 9.3), or with the profile's depth_refine_bins = w the mean bin under the cell's softmax
 * within w bins of the argmax. The argmax alone steps by whole bins from token to token, so the
 * full-size map shows the token grid as plateaus; the mean follows the blend of neighbouring tokens
 * (x2 cells between two tokens of bins a and b get values between a and b), while a window narrower
 * than the gap between two surfaces' bins keeps their edge: the other surface's mode stays out. */
static dmllm_status depth_cell_bins(const dmllm_readout_profile *profile, const float *scores, int th,
                                    int tw, int uh, int uw, float *bins) {
    const dmllm_score_transform plain = depth_transform(profile);
    const int n = profile->depth_bins, w = profile->depth_refine_bins;
    const size_t n_up = (size_t)uh * uw;
    if (w == 0) {
        uint16_t *argmax = NULL; /* [uh][uw] */
        DMLLM_TRY(dmllm_alloc(&argmax, n_up, sizeof *argmax, "the depth argmax"));
        const dmllm_status status = dmllm_readout_argmax(scores, th, tw, n, &plain, uh, uw, argmax, NULL);
        for (size_t i = 0; status == DMLLM_OK && i < n_up; i++) bins[2 * i] = (float)argmax[i];
        free(argmax);
        return status;
    }
    float *p = NULL; /* [uh][uw][n] softmax of the upsampled bin scores */
    DMLLM_TRY(dmllm_alloc(&p, n_up * n, sizeof *p, "the depth bin probabilities"));
    const dmllm_status status = dmllm_readout_probabilities(scores, th, tw, n, &plain, uh, uw, p);
    for (size_t i = 0; status == DMLLM_OK && i < n_up; i++) {
        const float *cell = p + i * n;
        int best = 0;
        for (int k = 1; k < n; k++)
            if (cell[k] > cell[best]) best = k;
        const int lo = best > w ? best - w : 0, hi = best + w < n - 1 ? best + w : n - 1;
        double mass = 0.0, moment = 0.0;
        for (int k = lo; k <= hi; k++) {
            mass += cell[k];
            moment += (double)k * cell[k];
        }
        bins[2 * i] = (float)(moment / mass);
    }
    free(p);
    return status;
}

/* Report 9.3: bin logits upsampled by depth_upsample, argmax (no softmax, no CRF; see
 * depth_cell_bins for the refinement), then the bin map resized bilinearly to the demo's
 * (H//16) x (W//16) grid and to full size. */
static dmllm_status depth_maps(const dmllm_model *model, const dmllm_dense_params *p, const float *scores, int th,
                               int tw, dmllm_dense_result *r) {
    const dmllm_readout_profile *profile = &model->profile;
    const char *name = p->depth_profile ? p->depth_profile : profile->depth_profile;
    const dmllm_depth_quantisation *q = dmllm_profile_depth(profile, name);
    if (!q) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "depth profile \"%s\" is not in the readout profile", name);
    const depth_shape d = depth_shape_of(profile, th, tw, r->width, r->height);
    const int uh = d.uh, uw = d.uw;
    const size_t n_up = d.n_up, n_pixels = d.n_pixels, n_grid = d.n_grid;
    r->n_labels = profile->depth_first_bin + profile->depth_bins;
    r->depth_grid_w = d.grid_w;
    r->depth_grid_h = d.grid_h;

    float *bins = NULL;       /* [uh][uw][2]: bin number and metres, interleaved per pixel */
    float *resized = NULL;    /* [max(n_grid, n_pixels)][2] */
    dmllm_status status = dmllm_alloc(&bins, n_up * 2, sizeof *bins, "the depth bins");
    if (status == DMLLM_OK)
        status = dmllm_alloc(&resized, (n_grid > n_pixels ? n_grid : n_pixels) * 2, sizeof *resized, "the depth maps");
    if (status == DMLLM_OK) status = dmllm_alloc(&r->depth_grid_bins, n_grid, sizeof *r->depth_grid_bins, "the depth grid");
    if (status == DMLLM_OK) status = dmllm_alloc(&r->labels, n_pixels, sizeof *r->labels, "the depth bin map");
    if (status == DMLLM_OK) status = dmllm_alloc(&r->depth_m, n_pixels, sizeof *r->depth_m, "the depth map");
    if (status == DMLLM_OK) status = depth_cell_bins(profile, scores, th, tw, uh, uw, bins);
    if (status == DMLLM_OK) {
        for (size_t i = 0; i < n_up; i++) {
            const double bin = profile->depth_first_bin + (double)bins[2 * i];
            bins[2 * i] = (float)bin;
            bins[2 * i + 1] = (float)dmllm_depth_bin_metres(profile, q, bin);
        }
        status = dmllm_readout_resize(bins, uh, uw, 2, r->depth_grid_h, r->depth_grid_w, resized);
    }
    if (status == DMLLM_OK) {
        for (size_t i = 0; i < n_grid; i++) r->depth_grid_bins[i] = (uint16_t)lrintf(resized[2 * i]);
        status = dmllm_readout_resize(bins, uh, uw, 2, r->height, r->width, resized);
    }
    if (status == DMLLM_OK)
        for (size_t i = 0; i < n_pixels; i++) {
            r->labels[i] = (uint16_t)lrintf(resized[2 * i]);
            r->depth_m[i] = resized[2 * i + 1];
        }
    free(bins);
    free(resized);
    return status;
}

/* ---- the call -------------------------------------------------------------------------------- */

/* Refuses a readout whose buffers exceed the session's memory limit before any is allocated: the
 * label logits and scores [tokens][ids], [tokens][labels], then the larger of the selected LM-head
 * rows [ids][hidden] and the maps. */
static dmllm_status check_readout_memory(const dmllm_session *s, const dmllm_dense_params *p,
                                         const dmllm_score_transform *transform,
                                         const dmllm_crf_params *crf, int th, int tw, int n_labels,
                                         size_t n_ids, const dmllm_dense_result *r) {
    const dmllm_model *model = dmllm_session_model(s);
    const size_t n_tokens = (size_t)th * tw;
    const size_t rows = n_ids * (size_t)model->config->text.hidden_size * sizeof(float);
    const size_t maps =
        p->task == DMLLM_TASK_DEPTH
            ? depth_maps_bytes(&model->profile, th, tw, r->width, r->height)
            : class_maps_bytes(p, transform, crf, th, tw, n_labels, r->width, r->height);
    const bool crf_runs = p->task != DMLLM_TASK_DEPTH && p->evaluation && crf->iterations > 0;
    char stage[128];
    snprintf(stage, sizeof stage, "%s of a %dx%d image (%d labels)",
             crf_runs ? "the dense CRF" : "the dense readout", r->width, r->height, n_labels);
    return dmllm_session_check_memory(
        s, stage, n_tokens * (n_ids + n_labels) * sizeof(float) + (rows > maps ? rows : maps));
}

static dmllm_status check_params(const dmllm_dense_params *p) {
    if (p->task < DMLLM_TASK_SEMANTIC || p->task > DMLLM_TASK_DEPTH)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_dense_params.task = %d is not a dmllm_dense_task", (int)p->task);
    if (p->layout != DMLLM_LAYOUT_IMAGE_FIRST && p->layout != DMLLM_LAYOUT_PROMPT_FIRST)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_dense_params.layout = %d is not a dmllm_prompt_layout",
                          (int)p->layout);
    if (p->alignment != DMLLM_FROM_PROFILE && p->alignment != DMLLM_ALIGN_OWN && p->alignment != DMLLM_ALIGN_PREVIOUS)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_dense_params.alignment = %d", p->alignment);
    if (p->readout != DMLLM_FROM_PROFILE && p->readout != DMLLM_READOUT_ALL && p->readout != DMLLM_READOUT_NAMED)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_dense_params.readout = %d is not a dmllm_semantic_readout",
                          p->readout);
    if (p->task == DMLLM_TASK_SEMANTIC && p->readout == DMLLM_READOUT_NAMED && p->label_token_ids)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "the named readout reads the names the model prints; it needs "
                                                      "class_names, not label_token_ids");
    if (p->task == DMLLM_TASK_SEMANTIC) {
        if (p->n_classes <= 0 || p->n_classes > 65534)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "semantic segmentation needs 1..65534 classes, got %d", p->n_classes);
        if (!p->class_names && !p->label_token_ids)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "semantic segmentation needs class_names or label_token_ids");
        for (int k = 0; p->class_names && k < p->n_classes; k++)
            if (!p->class_names[k] || !p->class_names[k][0])
                return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "class %d has an empty name", k);
    }
    return DMLLM_OK;
}

/* A model trained on a closed set of classes reads noise for any other name: say so once a call,
 * naming each such class (the query still runs: the caller may know better). */
static void warn_unknown_classes(const dmllm_readout_profile *profile, const dmllm_dense_params *p) {
    char unknown[512] = "";
    int n_unknown = 0;
    for (int k = 0; k < p->n_classes; k++)
        if (!dmllm_profile_knows_class(profile, p->class_names[k]) && n_unknown++ < 8)
            snprintf(unknown + strlen(unknown), sizeof unknown - strlen(unknown), "%s\"%.48s\"",
                     n_unknown > 1 ? ", " : "", p->class_names[k]);
    if (n_unknown)
        dmllm_log(DMLLM_LOG_WARN, "%d class name%s not among the %d the model's readout profile lists, so %s "
                  "label%s no trained meaning: %s%s", n_unknown, n_unknown > 1 ? "s are" : " is",
                  profile->n_known_classes, n_unknown > 1 ? "their" : "its", n_unknown > 1 ? "s have" : " has",
                  unknown, n_unknown > 8 ? ", ..." : "");
}

/* What each label value of a class readout stands for: label_names and background_label. */
static dmllm_status name_labels(const dmllm_dense_params *p, dmllm_dense_result *r) {
    static const char *const fgbg[] = {"background", "foreground"}; /* FGBG label values 0, 1 */
    const bool semantic = p->task == DMLLM_TASK_SEMANTIC;
    r->background_label = !semantic ? 0 : p->background ? r->n_classes : -1;
    int n = 0;
    DMLLM_TRY(dmllm_label_names(NULL, semantic ? (const char *const *)r->class_names : fgbg,
                                semantic ? r->n_classes : 2, semantic && p->background ? "background" : NULL,
                                &r->label_names, &n));
    if (n == r->n_labels) return DMLLM_OK;
    return dmllm_fail(DMLLM_ERR_SHAPE, "the readout has %d labels but %d label names", r->n_labels, n);
}

static dmllm_status predict(dmllm_session *s, const dmllm_image *image, const dmllm_dense_params *given,
                            dmllm_dense_result *r) {
    const dmllm_model *model = dmllm_session_model(s);
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    DMLLM_TRY(dmllm_copy_versioned(&p, sizeof p, given, "dmllm_dense_params"));
    DMLLM_TRY(check_params(&p));
    if (p.task == DMLLM_TASK_SEMANTIC && p.class_names) warn_unknown_classes(&model->profile, &p);
    if (p.evaluation == DMLLM_FROM_PROFILE) p.evaluation = model->profile.crf;
    r->task = p.task;
    r->background_label = -1;
    r->width = dmllm_image_width(image);
    r->height = dmllm_image_height(image);

    const bool semantic = p.task == DMLLM_TASK_SEMANTIC, prompt_first = p.layout == DMLLM_LAYOUT_PROMPT_FIRST;
    const dmllm_semantic_readout readout = !semantic || p.label_token_ids ? DMLLM_READOUT_ALL
                                           : p.readout == DMLLM_FROM_PROFILE ? model->profile.semantic_readout
                                                                             : (dmllm_semantic_readout)p.readout;
    const bool named = semantic && readout == DMLLM_READOUT_NAMED;
    label_set labels = {0};
    char *instruction = NULL;
    dmllm_image *resized = NULL;
    float *logits = NULL; /* [n_tokens][labels.offsets[n_labels]] */
    float *scores = NULL; /* [n_tokens][n_labels] */
    dmllm_status status = DMLLM_OK;
    if (prompt_first || named) status = instruction_text(model, &p, &instruction);
    if (status == DMLLM_OK) status = model_input(s, image, &p, &resized);
    dmllm_prefix_info prefix;
    if (status == DMLLM_OK)
        status = dmllm_prefix_ensure(s, resized ? resized : image, prompt_first ? instruction : NULL, &prefix);
    if (status == DMLLM_OK) {
        r->reused_prefix = prefix.reused;
        r->seconds_encode = prefix.seconds_encode;
        r->seconds_prefill = prefix.seconds_prefill;
    }
    /* The image states do not depend on the reply (causal LLM), so the reply is dropped again and
     * the prefix stays reusable. */
    if (status == DMLLM_OK && named) status = generate_reply(s, &p, instruction, r);
    if (status == DMLLM_OK && named) status = dmllm_session_truncate(s, prefix.length);
    if (status == DMLLM_OK && semantic) status = query_classes(&p, readout, r);
    if (status == DMLLM_OK) status = resolve_labels(model, &p, r, &labels);

    const double t0 = dmllm_now_seconds();
    const dmllm_image_grid *grid = status == DMLLM_OK ? dmllm_session_evaluated_grid(s) : NULL;
    const int th = grid ? grid->tokens_h : 0, tw = grid ? grid->tokens_w : 0;
    const size_t n_tokens = (size_t)th * tw, n_ids = labels.offsets ? (size_t)labels.offsets[labels.n_labels] : 0;
    const dmllm_score_transform transform = class_transform(&model->profile, &p);
    dmllm_crf_params crf;
    if (status == DMLLM_OK) status = class_crf(&p, &crf);
    if (status == DMLLM_OK)
        status = check_readout_memory(s, &p, &transform, &crf, th, tw, labels.n_labels, n_ids, r);
    if (status == DMLLM_OK) status = dmllm_alloc(&logits, n_tokens * n_ids, sizeof *logits, "the label logits");
    if (status == DMLLM_OK) status = dmllm_alloc(&scores, n_tokens * labels.n_labels, sizeof *scores, "the label scores");
    if (status == DMLLM_OK) {
        const int alignment = p.alignment == DMLLM_FROM_PROFILE ? (int)model->profile.alignment : p.alignment;
        status = dmllm_session_image_logits(s, (dmllm_alignment)alignment, labels.ids, (int)n_ids, logits,
                                            n_tokens * n_ids, NULL, NULL);
    }
    if (status == DMLLM_OK) {
        dmllm_readout_label_scores(logits, (int)n_tokens, (int)n_ids, labels.offsets, labels.n_labels, scores);
        r->tokens_h = th;
        r->tokens_w = tw;
        r->n_scores = labels.n_labels;
        status = p.task == DMLLM_TASK_DEPTH
                     ? depth_maps(model, &p, scores, th, tw, r)
                     : class_maps(image, &p, &transform, &crf, scores, th, tw, labels.n_labels, r);
    }
    if (status == DMLLM_OK && p.task != DMLLM_TASK_DEPTH) status = name_labels(&p, r);
    if (status == DMLLM_OK && p.keep_token_scores) {
        r->token_scores = scores;
        scores = NULL;
    }
    r->seconds_readout = dmllm_now_seconds() - t0;
    label_set_free(&labels);
    free(instruction);
    dmllm_image_free(resized);
    free(logits);
    free(scores);
    return status;
}

dmllm_status dmllm_predict_dense(dmllm_session *session, const dmllm_image *image, const dmllm_dense_params *params,
                                 dmllm_dense_result **out_result) {
    if (!out_result)
        return dmllm_session_reject(session,
                                    dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_predict_dense: out_result is NULL"));
    *out_result = NULL;
    if (!session) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_predict_dense: session is NULL");
    const int saved = dmllm_session_enter(session);
    dmllm_status status = DMLLM_OK;
    if (!image || !params) status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_predict_dense: image or params is NULL");
    dmllm_dense_result *result = NULL;
    if (status == DMLLM_OK) status = dmllm_alloc(&result, 1, sizeof *result, "the dense result");
    if (status == DMLLM_OK) {
        memset(result, 0, sizeof *result);
        status = predict(session, image, params, result);
    }
    if (status == DMLLM_OK) *out_result = result;
    else dmllm_dense_result_free(result);
    return dmllm_session_leave(session, saved, status);
}
