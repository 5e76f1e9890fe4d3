/*
 * tasks.c: the text task helpers: dmllm_ask (VQA), dmllm_ground and dmllm_detect with the official
 * demo prompts. Each builds the chat prompt (chat.c), reuses or evaluates the image prefix
 * (prefix.c), generates (generate.c) and, for boxes, parses the answer (regions.c). Works on the
 * session through its API only.
 */
#include "prefix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Demo prompts (TencentCloudADP/youtu-vl demo/demo.py, model-spec 6.1). */
static const char ground_prompt[] = "Please provide the bounding box coordinate of the region this sentence describes: ";
static const char detect_all_prompt[] = "Detect all objects in the provided image.";
static const char detect_classes_prompt[] = "Detect every objects that belongs to the following categories: ";

/* The ids that follow the context: with an image, the rest of the user turn after the image block
 * (the context then holds the prefix); without, the whole conversation (the context is emptied). */
static dmllm_status question_ids(dmllm_session *s, const dmllm_image *image, const char *question, int32_t **ids,
                                 size_t *n_ids) {
    const dmllm_model *model = dmllm_session_model(s);
    if (!model->tokenizer)
        return dmllm_fail(DMLLM_ERR_STATE, "asking in text needs the model's tokenizer.json, and the model directory "
                                           "has none");
    dmllm_prefix_info prefix;
    if (image) DMLLM_TRY(dmllm_prefix_ensure(s, image, NULL, &prefix));
    else DMLLM_TRY(dmllm_session_truncate(s, 0));
    return dmllm_prefix_reply_ids(model, question, image != NULL, DMLLM_LAYOUT_IMAGE_FIRST, ids, n_ids);
}

static dmllm_status answer(dmllm_session *s, const dmllm_image *image, const char *question,
                           const dmllm_generate_params *params, dmllm_generate_result **out) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    dmllm_status status = question_ids(s, image, question, &ids, &n_ids);
    if (status == DMLLM_OK) status = dmllm_generate(s, ids, (int)n_ids, params, out);
    free(ids);
    return status;
}

dmllm_status dmllm_ask(dmllm_session *session, const dmllm_image *image, const char *question,
                       const dmllm_generate_params *params, dmllm_generate_result **out_result) {
    if (!out_result)
        return dmllm_session_reject(session, dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_ask: out_result is NULL"));
    *out_result = NULL;
    if (!session) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_ask: session is NULL");
    const int saved = dmllm_session_enter(session);
    const dmllm_status status = question ? answer(session, image, question, params, out_result)
                                         : dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_ask: question is NULL");
    return dmllm_session_leave(session, saved, status);
}

static int clamp_coordinate(int v, int size) { return v < 0 ? 0 : v > size ? size : v; }

/* The model may name a coordinate past the image's edge (HF maps <x_k> with a clamp to 2047 only);
 * boxes and polygon points in original pixels are kept inside [0, width] x [0, height] (continuous
 * coordinates: the far edge equals the size). The answer's text stays as the model wrote it. */
static void clamp_to_image(dmllm_regions *regions, int width, int height) {
    for (int i = 0; i < regions->n_regions; i++) {
        dmllm_region *r = regions->regions[i];
        for (int c = 0; c < 4; c++) r->box[c] = clamp_coordinate(r->box[c], c % 2 ? height : width);
        int *points = (int *)r->points; /* allocated by dmllm_parse_regions for this result */
        for (int k = 0; k < 2 * r->n_points; k++) points[k] = clamp_coordinate(points[k], k % 2 ? height : width);
    }
}

/* Asks, parses the answer into regions that keep the answer's text. */
static dmllm_status regions_of(dmllm_session *s, const dmllm_image *image, const char *question,
                               const dmllm_generate_params *params, dmllm_regions **out) {
    dmllm_generate_result *result = NULL;
    DMLLM_TRY(answer(s, image, question, params, &result));
    dmllm_status status = dmllm_parse_regions(result->text, out);
    if (status == DMLLM_OK) {
        (*out)->text = result->text;
        result->text = NULL;
        dmllm_generate_params p; /* the caller's, read up to its struct_size (generate checked it) */
        dmllm_generate_params_init(&p);
        if (params) dmllm_copy_versioned(&p, sizeof p, params, "dmllm_generate_params");
        if (p.rescale_coordinates)
            clamp_to_image(*out, dmllm_image_width(image), dmllm_image_height(image));
    }
    dmllm_generate_result_free(result);
    return status;
}

/* prefix + the items joined by separator, malloc'ed. */
static dmllm_status join(const char *prefix, const char *const *items, int n, const char *separator, char **out) {
    size_t length = strlen(prefix) + 1;
    for (int i = 0; i < n; i++) {
        if (!items[i]) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "class %d is NULL", i);
        length += strlen(items[i]) + strlen(separator);
    }
    DMLLM_TRY(dmllm_alloc(out, length, 1, "the prompt"));
    char *w = *out + sprintf(*out, "%s", prefix);
    for (int i = 0; i < n; i++) w += sprintf(w, "%s%s", i ? separator : "", items[i]);
    return DMLLM_OK;
}

static dmllm_status check_task(dmllm_session *session, const dmllm_image *image, dmllm_regions **out, const char *fn) {
    if (!out)
        return dmllm_session_reject(session, dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: out_regions is NULL", fn));
    *out = NULL;
    if (!session || !image)
        return dmllm_session_reject(session,
                                    dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: session or image is NULL", fn));
    return DMLLM_OK;
}

dmllm_status dmllm_ground(dmllm_session *session, const dmllm_image *image, const char *phrase,
                          const dmllm_generate_params *params, dmllm_regions **out_regions) {
    DMLLM_TRY(check_task(session, image, out_regions, "dmllm_ground"));
    const int saved = dmllm_session_enter(session);
    char *question = NULL;
    dmllm_status status = phrase ? join(ground_prompt, &phrase, 1, "", &question)
                                 : dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_ground: phrase is NULL");
    if (status == DMLLM_OK) status = regions_of(session, image, question, params, out_regions);
    free(question);
    return dmllm_session_leave(session, saved, status);
}

dmllm_status dmllm_detect(dmllm_session *session, const dmllm_image *image, const char *const *classes, int n_classes,
                          const dmllm_generate_params *params, dmllm_regions **out_regions) {
    DMLLM_TRY(check_task(session, image, out_regions, "dmllm_detect"));
    const int saved = dmllm_session_enter(session);
    char *question = NULL;
    dmllm_status status = DMLLM_OK;
    if (n_classes < 0 || (n_classes > 0 && !classes))
        status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_detect: n_classes = %d with classes %s", n_classes,
                            classes ? "set" : "NULL");
    else if (n_classes > 0) status = join(detect_classes_prompt, classes, n_classes, ",", &question);
    if (status == DMLLM_OK)
        status = regions_of(session, image, question ? question : detect_all_prompt, params, out_regions);
    free(question);
    return dmllm_session_leave(session, saved, status);
}
