/*
 * text.c: the public tokenizer calls (dmllm_tokenize, dmllm_detokenize, dmllm_token_id,
 * dmllm_token_bytes) over the model's tokenizer, with the header's size-query convention.
 * Reads the model only.
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

static dmllm_status model_tokenizer(const dmllm_model *model, const char *fn, const dmllm_tokenizer **out) {
    dmllm_clear_error();
    if (!model) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    if (!model->tokenizer)
        return dmllm_fail(DMLLM_ERR_STATE, "%s: the model directory %s has no tokenizer.json", fn,
                          dmllm_checkpoint_dir(model->checkpoint));
    *out = model->tokenizer;
    return DMLLM_OK;
}

dmllm_status dmllm_tokenize(const dmllm_model *model, const char *text, int parse_special, int32_t *ids,
                            size_t capacity, size_t *n_ids) {
    const dmllm_tokenizer *tokenizer = NULL;
    DMLLM_TRY(model_tokenizer(model, "dmllm_tokenize", &tokenizer));
    if (!text) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_tokenize: text is NULL");
    int32_t *all = NULL;
    size_t count = 0;
    DMLLM_TRY(dmllm_tokenizer_encode(tokenizer, text, strlen(text), parse_special != 0, &all, &count));
    if (n_ids) *n_ids = count;
    dmllm_status status = DMLLM_OK;
    if (!ids || capacity < count)
        status = dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "dmllm_tokenize: %zu ids, capacity is %zu", count, ids ? capacity : 0);
    else memcpy(ids, all, count * sizeof *ids);
    free(all);
    return status;
}

dmllm_status dmllm_detokenize(const dmllm_model *model, const int32_t *ids, size_t n_ids, int skip_special, char *text,
                              size_t capacity, size_t *length) {
    const dmllm_tokenizer *tokenizer = NULL;
    DMLLM_TRY(model_tokenizer(model, "dmllm_detokenize", &tokenizer));
    if (!ids && n_ids) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_detokenize: ids is NULL");
    char *decoded = NULL;
    DMLLM_TRY(dmllm_tokenizer_decode(tokenizer, ids, n_ids, skip_special != 0, &decoded));
    const size_t n = strlen(decoded);
    if (length) *length = n;
    dmllm_status status = DMLLM_OK;
    if (!text || capacity < n + 1)
        status = dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "dmllm_detokenize: the text needs %zu bytes, capacity is %zu",
                            n + 1, text ? capacity : 0);
    else memcpy(text, decoded, n + 1);
    free(decoded);
    return status;
}

int32_t dmllm_token_id(const dmllm_model *model, const char *content) {
    return model && model->tokenizer ? dmllm_tokenizer_find(model->tokenizer, content) : -1;
}

dmllm_status dmllm_token_bytes(const dmllm_model *model, int32_t id, char *bytes, size_t capacity, size_t *length) {
    const dmllm_tokenizer *tokenizer = NULL;
    DMLLM_TRY(model_tokenizer(model, "dmllm_token_bytes", &tokenizer));
    size_t n = 0;
    const char *piece = dmllm_tokenizer_bytes(tokenizer, id, &n);
    if (!piece) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_token_bytes: id %d is not in the vocabulary", (int)id);
    if (length) *length = n;
    if (!bytes || capacity < n)
        return dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "dmllm_token_bytes: %zu bytes, capacity is %zu", n, bytes ? capacity : 0);
    memcpy(bytes, piece, n);
    return DMLLM_OK;
}
