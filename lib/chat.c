/*
 * chat.c: the chat layout (model-spec 4.8) and the public dmllm_chat_apply / dmllm_chat_tokenize.
 * Every turn is <|begin_of_text|>ROLE\n CONTENT <|end_of_text|>\n; a conversation that does not
 * start with a system turn gets the default one; an image is one block placed before or after the
 * turn's text. Text only: the model is read for its tokenizer, nothing else is touched.
 */
#include "chat.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

static const char turn_start[] = "<|begin_of_text|>";
static const char turn_end[] = "<|end_of_text|>\n";
static const char vision_start[] = "<|vision_start|>";
static const char image_pad[] = "<|image_pad|>";
static const char vision_end[] = "<|vision_end|>";

/* Appends to out when it is non-NULL; always advances the length, so a NULL pass measures. */
typedef struct text_writer {
    char *out;
    size_t length;
} text_writer;

static void put(text_writer *w, const char *text, size_t n) {
    if (w->out) memcpy(w->out + w->length, text, n);
    w->length += n;
}

static void put_text(text_writer *w, const char *text) { put(w, text, strlen(text)); }

static void put_image(text_writer *w, int n_image_tokens, size_t span[2]) {
    span[0] = w->length;
    put_text(w, vision_start);
    for (int i = 0; i < n_image_tokens; i++) put(w, image_pad, sizeof image_pad - 1);
    put_text(w, vision_end);
    span[1] = w->length;
}

static void put_turn_header(text_writer *w, const char *role) {
    put_text(w, turn_start);
    put_text(w, role);
    put_text(w, "\n");
}

/* The tokens of the largest image the library decodes: 2^28 pixels in 32 x 32 px merged tokens. A
 * larger count cannot come from an image and would only ask for gigabytes of "<|image_pad|>". */
#define DMLLM_CHAT_MAX_IMAGE_TOKENS (1 << 18)

static bool known_role(const char *role) {
    return strcmp(role, "system") == 0 || strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0;
}

/* The caller's messages as this library's structs in *out ([n], NULL for none, freed by the
 * caller): element i lies i * messages[0].struct_size bytes in, as the caller's compiler laid the
 * array out (an older, shorter struct), and fields beyond that size keep their zero defaults. */
static dmllm_status copy_messages(const dmllm_chat_message *messages, int n, dmllm_chat_message **out) {
    *out = NULL;
    if (n < 0 || (n > 0 && !messages))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "chat: n_messages = %d with messages %s", n,
                          messages ? "set" : "NULL");
    if (n == 0) return DMLLM_OK;
    dmllm_chat_message *copy = dmllm_calloc((size_t)n, sizeof *copy);
    if (!copy) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for %d chat messages", n);
    dmllm_status status = dmllm_copy_versioned(&copy[0], sizeof *copy, messages, "messages[0]");
    const uint32_t stride = messages[0].struct_size; /* checked by the copy of messages[0] */
    for (int i = 1; status == DMLLM_OK && i < n; i++) {
        const char *element = (const char *)messages + (size_t)i * stride;
        uint32_t size;
        memcpy(&size, element, sizeof size);
        if (size != stride)
            status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                                "messages[%d].struct_size is %u, messages[0].struct_size %u: every element "
                                "of the array must carry the same size", i, size, stride);
        else
            memcpy(&copy[i], element, size);
    }
    if (status != DMLLM_OK) {
        free(copy);
        return status;
    }
    *out = copy;
    return DMLLM_OK;
}

static dmllm_status check_messages(const dmllm_chat_message *messages, int n, int n_image_tokens) {
    for (int i = 0; i < n; i++) {
        const dmllm_chat_message *m = &messages[i];
        if (!m->role || !known_role(m->role))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "chat message %d: role \"%s\" is not system, user or assistant",
                              i, m->role ? m->role : "(null)");
        if (!m->has_image) continue;
        if (m->layout != DMLLM_LAYOUT_IMAGE_FIRST && m->layout != DMLLM_LAYOUT_PROMPT_FIRST)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "chat message %d: layout %d is not a dmllm_prompt_layout", i,
                              (int)m->layout);
        if (n_image_tokens < 1 || n_image_tokens > DMLLM_CHAT_MAX_IMAGE_TOKENS)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "chat message %d has an image but n_image_tokens = %d (1 .. %d)", i,
                              n_image_tokens, DMLLM_CHAT_MAX_IMAGE_TOKENS);
    }
    return DMLLM_OK;
}

static void render(text_writer *w, const dmllm_chat_message *messages, int n, bool add_generation_prompt,
                   int n_image_tokens, size_t span[2]) {
    if (n > 0 && strcmp(messages[0].role, "system") != 0) {
        put_turn_header(w, "system");
        put_text(w, DMLLM_DEFAULT_SYSTEM_PROMPT);
        put_text(w, turn_end);
    }
    span[0] = span[1] = 0;
    for (int i = 0; i < n; i++) {
        const dmllm_chat_message *m = &messages[i];
        const char *text = m->text ? m->text : "";
        put_turn_header(w, m->role);
        const bool image_first = m->has_image && m->layout == DMLLM_LAYOUT_IMAGE_FIRST;
        if (image_first) put_image(w, n_image_tokens, span);
        put_text(w, text);
        if (m->has_image && !image_first) put_image(w, n_image_tokens, span);
        put_text(w, turn_end);
    }
    if (add_generation_prompt) put_turn_header(w, "assistant");
}

dmllm_status dmllm_chat_render(const dmllm_chat_message *messages, int n_messages, bool add_generation_prompt,
                               int n_image_tokens, char **out_text, size_t *out_length, size_t image_span[2]) {
    dmllm_chat_message *copy = NULL; /* [n_messages] */
    DMLLM_TRY(copy_messages(messages, n_messages, &copy));
    dmllm_status status = check_messages(copy, n_messages, n_image_tokens);
    size_t span[2];
    text_writer w = {NULL, 0};
    if (status == DMLLM_OK) render(&w, copy, n_messages, add_generation_prompt, n_image_tokens, span);
    char *text = NULL; /* [length + 1] */
    if (status == DMLLM_OK) status = dmllm_alloc(&text, w.length + 1, 1, "the chat text");
    if (status == DMLLM_OK) {
        w = (text_writer){text, 0};
        render(&w, copy, n_messages, add_generation_prompt, n_image_tokens, span);
        text[w.length] = '\0';
        *out_text = text;
        if (out_length) *out_length = w.length;
        if (image_span) memcpy(image_span, span, sizeof span);
    }
    free(copy);
    return status;
}

/* ---- public ---------------------------------------------------------------------------------- */

dmllm_status dmllm_chat_apply(const dmllm_chat_message *messages, int n_messages, int add_generation_prompt,
                              int n_image_tokens, char **out_text) {
    dmllm_clear_error();
    if (!out_text) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_chat_apply: out_text is NULL");
    *out_text = NULL;
    return dmllm_chat_render(messages, n_messages, add_generation_prompt != 0, n_image_tokens, out_text, NULL, NULL);
}

dmllm_status dmllm_chat_tokenize(const dmllm_model *model, const dmllm_chat_message *messages, int n_messages,
                                 int add_generation_prompt, int n_image_tokens, int32_t *ids, size_t capacity,
                                 size_t *n_ids) {
    dmllm_clear_error();
    if (!model) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_chat_tokenize: model is NULL");
    if (!model->tokenizer)
        return dmllm_fail(DMLLM_ERR_STATE, "dmllm_chat_tokenize: the model directory %s has no tokenizer.json",
                          dmllm_checkpoint_dir(model->checkpoint));
    char *text = NULL;
    size_t length = 0;
    DMLLM_TRY(dmllm_chat_render(messages, n_messages, add_generation_prompt != 0, n_image_tokens, &text, &length, NULL));
    int32_t *all = NULL;
    size_t count = 0;
    dmllm_status status = dmllm_tokenizer_encode(model->tokenizer, text, length, true, &all, &count);
    free(text);
    if (status != DMLLM_OK) return status;
    if (n_ids) *n_ids = count;
    if (!ids || capacity < count)
        status = dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "dmllm_chat_tokenize: %zu ids, capacity is %zu", count,
                            ids ? capacity : 0);
    else memcpy(ids, all, count * sizeof *ids);
    free(all);
    return status;
}
