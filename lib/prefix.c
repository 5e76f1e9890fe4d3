/*
 * prefix.c: builds, evaluates and recognises the image prefix of a query (prefix.h). The prompt
 * text comes from chat.c; the tag that recognises a prefix hashes what decides its states (the
 * pixels and an instruction placed before the image). Writes only the session, through its API.
 */
#include "chat.h"
#include "prefix.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a of the image size, pixels and instruction_first; never 0 (the session's "no prefix"). */
static uint64_t prefix_tag(const dmllm_image *image, const char *instruction_first) {
    uint64_t hash = DMLLM_FNV1A_INIT;
    const int size[2] = {dmllm_image_width(image), dmllm_image_height(image)};
    hash = dmllm_fnv1a(hash, size, sizeof size);
    hash = dmllm_fnv1a(hash, dmllm_image_pixels(image), (size_t)size[0] * size[1] * 3);
    if (instruction_first)
        hash = dmllm_fnv1a(hash, instruction_first, strlen(instruction_first) + 1);
    return hash ? hash : 1;
}

/* Token ids of the chat text before the image block (model-spec 4.8), through the tokenizer. */
static dmllm_status prefix_text_ids(const dmllm_model *model, const char *instruction_first, int32_t **out_ids,
                                    size_t *out_count) {
    const dmllm_chat_message user = {
        .struct_size = sizeof user,
        .role = "user",
        .text = instruction_first,
        .has_image = 1,
        .layout = instruction_first ? DMLLM_LAYOUT_PROMPT_FIRST : DMLLM_LAYOUT_IMAGE_FIRST,
    };
    char *text = NULL;
    size_t span[2];
    DMLLM_TRY(dmllm_chat_render(&user, 1, false, 1, &text, NULL, span));
    dmllm_status status = dmllm_tokenizer_encode(model->tokenizer, text, span[0], true, out_ids, out_count);
    free(text);
    return status;
}

dmllm_status dmllm_prefix_reply_ids(const dmllm_model *model, const char *instruction, bool has_image,
                                    dmllm_prompt_layout layout, int32_t **ids, size_t *n_ids) {
    const dmllm_chat_message user = {
        .struct_size = sizeof user, .role = "user", .text = instruction, .has_image = has_image, .layout = layout};
    char *text = NULL;
    size_t length = 0, span[2];
    DMLLM_TRY(dmllm_chat_render(&user, 1, true, 1, &text, &length, span));
    dmllm_status status = dmllm_tokenizer_encode(model->tokenizer, text + span[1], length - span[1], true, ids, n_ids);
    free(text);
    if (status == DMLLM_OK && *n_ids > (size_t)INT32_MAX)
        status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "the instruction has %zu ids", *n_ids);
    return status;
}

/* The text ids followed by the image block, built from config.json's ids, which the evaluation
 * keys on. */
static dmllm_status prefix_ids(const dmllm_model *model, const int32_t *text_ids, size_t n_text, int n_image_tokens,
                               int32_t **out_ids, size_t *out_count) {
    const size_t total = n_text + (size_t)n_image_tokens + 2;
    DMLLM_TRY(dmllm_alloc(out_ids, total, sizeof **out_ids, "the prompt ids"));
    int32_t *w = *out_ids;
    memcpy(w, text_ids, n_text * sizeof *w);
    w += n_text;
    *w++ = model->config->vision_start_token_id;
    for (int i = 0; i < n_image_tokens; i++) *w++ = model->config->image_token_id;
    *w = model->config->vision_end_token_id;
    *out_count = total;
    return DMLLM_OK;
}

dmllm_status dmllm_prefix_ensure(dmllm_session *s, const dmllm_image *image, const char *instruction_first,
                                 dmllm_prefix_info *info) {
    const dmllm_model *model = dmllm_session_model(s);
    const uint64_t tag = prefix_tag(image, instruction_first);
    memset(info, 0, sizeof *info);
    if (dmllm_session_prefix_tag(s) == tag && dmllm_session_evaluated_grid(s)) {
        info->reused = true;
        info->length = dmllm_session_prefix_length(s);
        return dmllm_session_truncate(s, info->length);
    }
    if (!model->tokenizer)
        return dmllm_fail(DMLLM_ERR_STATE, "building the image prompt needs the model's tokenizer.json, and the model "
                                           "directory has none");
    double t0 = dmllm_now_seconds();
    int32_t *text_ids = NULL;
    size_t n_text = 0;
    DMLLM_TRY(prefix_text_ids(model, instruction_first, &text_ids, &n_text));
    dmllm_status status = dmllm_session_truncate(s, 0);
    /* The text ids and the two image markers: an image that cannot fit is refused before encoding. */
    if (status == DMLLM_OK) status = dmllm_session_encode_for_prompt(s, image, (int)n_text + 2);
    dmllm_image_grid grid = {.struct_size = sizeof grid};
    if (status == DMLLM_OK) status = dmllm_session_image_grid(s, &grid);
    info->seconds_encode = dmllm_now_seconds() - t0;
    t0 = dmllm_now_seconds();
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (status == DMLLM_OK) status = prefix_ids(model, text_ids, n_text, grid.tokens_h * grid.tokens_w, &ids, &n_ids);
    free(text_ids);
    if (status == DMLLM_OK) status = dmllm_session_eval(s, ids, (int)n_ids);
    free(ids);
    if (status == DMLLM_OK) {
        dmllm_session_set_prefix_tag(s, tag, (int)n_ids);
        info->length = (int)n_ids;
    }
    info->seconds_prefill = dmllm_now_seconds() - t0;
    return status;
}
