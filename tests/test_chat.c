/*
 * test_chat.c: lib/chat.c against an independent renderer. tests/fixtures/chat/expected.json holds
 * what @huggingface/jinja renders from chat_template.jinja (model-spec 4.8 as a Hugging Face chat
 * template) for the conversations in conversations.json, with the processor's image-pad expansion,
 * and the ids @huggingface/tokenizers gives that text on the fixture tokenizer (the chat_oracle
 * ctest regenerates the file). Also: the image prefix offset, the public calls on a model, errors.
 */
#include "chat.h"
#include "support_model_dir.h"
#include "tokenizer.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 8

/* One oracle conversation as chat messages: string content is text only; a content list holds at
 * most one image and one text, in the order that decides the layout. */
static int to_messages(const cJSON *json, dmllm_chat_message *out) {
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, json) {
        dmllm_chat_message *msg = &out[n++];
        memset(msg, 0, sizeof *msg);
        msg->struct_size = sizeof *msg;
        msg->role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content"), *item;
        if (cJSON_IsString(content)) {
            msg->text = content->valuestring;
            continue;
        }
        cJSON_ArrayForEach(item, content) {
            const char *type = cJSON_GetObjectItemCaseSensitive(item, "type")->valuestring;
            if (strcmp(type, "image") == 0) {
                msg->has_image = 1;
                msg->layout = msg->text ? DMLLM_LAYOUT_PROMPT_FIRST : DMLLM_LAYOUT_IMAGE_FIRST;
            } else {
                msg->text = cJSON_GetObjectItemCaseSensitive(item, "text")->valuestring;
            }
        }
    }
    return n;
}

static cJSON *load_json(const char *relative) {
    size_t size = 0;
    char *text = test_read_file(test_source_path(relative), &size);
    cJSON *json = text ? cJSON_ParseWithLength(text, size) : NULL;
    free(text);
    CHECK_MSG(json != NULL, "cannot parse %s", relative);
    return json;
}

static void test_oracle_parity(const dmllm_tokenizer *tokenizer) {
    cJSON *conversations = load_json("tests/fixtures/chat/conversations.json");
    cJSON *expected = load_json("tests/fixtures/chat/expected.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(expected, "cases");
    CHECK(cJSON_GetArraySize(cases) == cJSON_GetArraySize(conversations) && cJSON_GetArraySize(cases) >= 12);
    int n_cases = 0, text_ok = 0, ids_ok = 0;
    for (int i = 0; i < cJSON_GetArraySize(cases); i++) {
        const cJSON *conv = cJSON_GetArrayItem(conversations, i), *want = cJSON_GetArrayItem(cases, i);
        const char *name = cJSON_GetObjectItemCaseSensitive(want, "name")->valuestring;
        const char *want_text = cJSON_GetObjectItemCaseSensitive(want, "text")->valuestring;
        const cJSON *want_ids = cJSON_GetObjectItemCaseSensitive(want, "ids");
        dmllm_chat_message messages[MAX_MESSAGES];
        const int n = to_messages(cJSON_GetObjectItemCaseSensitive(conv, "messages"), messages);
        const int add = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(conv, "add_generation_prompt"));
        const int n_image = cJSON_GetObjectItemCaseSensitive(conv, "n_image_tokens")->valueint;
        n_cases++;

        char *text = NULL;
        CHECK_OK(dmllm_chat_apply(messages, n, add, n_image, &text));
        const bool same = text && strcmp(text, want_text) == 0;
        CHECK_MSG(same, "case \"%s\": got\n%s\nwant\n%s", name, text ? text : "(null)", want_text);
        text_ok += same;
        dmllm_text_free(text);

        /* The span of the last image block, found in the oracle's text. */
        size_t length = 0, span[2] = {1, 1};
        CHECK_OK(dmllm_chat_render(messages, n, add, n_image, &text, &length, span));
        const char *last_start = NULL, *last_end = NULL;
        for (const char *p = strstr(want_text, "<|vision_start|>"); p; p = strstr(p + 1, "<|vision_start|>")) last_start = p;
        for (const char *p = strstr(want_text, "<|vision_end|>"); p; p = strstr(p + 1, "<|vision_end|>")) last_end = p;
        const size_t want_start = last_start ? (size_t)(last_start - want_text) : 0;
        const size_t want_end = last_end ? (size_t)(last_end - want_text) + strlen("<|vision_end|>") : 0;
        CHECK_MSG(span[0] == want_start && span[1] == want_end, "case \"%s\": image span %zu..%zu, want %zu..%zu", name,
                  span[0], span[1], want_start, want_end);
        CHECK(length == strlen(want_text));

        int32_t *ids = NULL;
        size_t n_ids = 0;
        CHECK_OK(dmllm_tokenizer_encode(tokenizer, text, length, true, &ids, &n_ids));
        bool same_ids = (int)n_ids == cJSON_GetArraySize(want_ids);
        for (int k = 0; same_ids && k < (int)n_ids; k++) same_ids = ids[k] == cJSON_GetArrayItem(want_ids, k)->valueint;
        CHECK_MSG(same_ids, "case \"%s\": ids differ from @huggingface/tokenizers", name);
        ids_ok += same_ids;
        free(ids);
        free(text);
    }
    printf("chat oracle parity: %d conversations, %d texts and %d id lists identical\n", n_cases, text_ok, ids_ok);
    cJSON_Delete(conversations);
    cJSON_Delete(expected);
}

/* dmllm_chat_tokenize on a model directory made of a golden checkpoint plus the fixture tokenizer;
 * a directory without tokenizer.json refuses. */
static void test_public_tokenize(void) {
    const dmllm_chat_message user = {.struct_size = sizeof user, .role = "user", .text = "Describe this image.",
                                     .has_image = 1};
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = DMLLM_COMPUTE_F32;
    dmllm_model *model = NULL;
    size_t n_ids = 0;
    int32_t ids[128];
    const char *dir = test_model_dir("no_tokenizer", "one_window", NULL);
    CHECK_OK(dmllm_model_load(dir, &mp, &model));
    CHECK_STATUS(dmllm_chat_tokenize(model, &user, 1, 1, 6, ids, sizeof ids / sizeof ids[0], &n_ids), DMLLM_ERR_STATE);
    CHECK(strstr(dmllm_last_error(), "tokenizer.json") != NULL);
    dmllm_model_free(model);

    dir = test_model_dir("with_tokenizer", "one_window", test_source_path("tests/fixtures/tokenizer/tokenizer.json"));
    CHECK_OK(dmllm_model_load(dir, &mp, &model));
    CHECK_STATUS(dmllm_chat_tokenize(model, &user, 1, 1, 6, NULL, 0, &n_ids), DMLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(n_ids == 60); /* the first oracle case: 60 ids */
    CHECK_STATUS(dmllm_chat_tokenize(model, &user, 1, 1, 6, ids, 59, &n_ids), DMLLM_ERR_BUFFER_TOO_SMALL);
    CHECK_OK(dmllm_chat_tokenize(model, &user, 1, 1, 6, ids, sizeof ids / sizeof ids[0], &n_ids));
    int pads = 0;
    for (size_t i = 0; i < n_ids; i++) pads += ids[i] == dmllm_token_id(model, "<|image_pad|>");
    CHECK(pads == 6);
    CHECK(ids[0] == dmllm_token_id(model, "<|begin_of_text|>") && ids[n_ids - 1] == 10 /* "\n" */);
    CHECK_STATUS(dmllm_chat_tokenize(NULL, &user, 1, 1, 6, ids, 128, &n_ids), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_model_free(model);
}

static void test_errors(void) {
    char *text = NULL;
    dmllm_chat_message m = {.struct_size = sizeof m, .role = "user", .text = "hi"};
    CHECK_STATUS(dmllm_chat_apply(&m, 1, 1, 1, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_chat_apply(NULL, 1, 1, 1, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(text == NULL);
    CHECK_STATUS(dmllm_chat_apply(&m, -1, 1, 1, &text), DMLLM_ERR_INVALID_ARGUMENT);
    m.role = "tool";
    CHECK_STATUS(dmllm_chat_apply(&m, 1, 1, 1, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "\"tool\"") != NULL);
    m.role = NULL;
    CHECK_STATUS(dmllm_chat_apply(&m, 1, 1, 1, &text), DMLLM_ERR_INVALID_ARGUMENT);
    m.role = "user";
    m.has_image = 1;
    CHECK_STATUS(dmllm_chat_apply(&m, 1, 1, 0, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "n_image_tokens") != NULL);
    m.layout = (dmllm_prompt_layout)7;
    CHECK_STATUS(dmllm_chat_apply(&m, 1, 1, 1, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(text == NULL);
    /* No image: n_image_tokens is not used. NULL text is empty. */
    m = (dmllm_chat_message){.struct_size = sizeof m, .role = "system", .text = NULL};
    CHECK_OK(dmllm_chat_apply(&m, 1, 0, 0, &text));
    CHECK(text && strcmp(text, "<|begin_of_text|>system\n<|end_of_text|>\n") == 0);
    dmllm_text_free(text);
    dmllm_text_free(NULL);
}

/* Messages are versioned by struct_size, which is also the array's stride (issue 21, item 3): an
 * array of a shorter struct, as a caller built against an older header lays it out, renders as
 * the same turns with the missing fields at their defaults; a wrong size anywhere is refused. */
static void test_struct_size(void) {
    typedef struct older_message { /* dmllm_chat_message without has_image and layout */
        uint32_t struct_size;
        const char *role, *text;
    } older_message;
    const older_message older[2] = {{sizeof(older_message), "user", "hi"},
                                    {sizeof(older_message), "assistant", "hello"}};
    const dmllm_chat_message current[2] = {{.struct_size = sizeof current[0], .role = "user", .text = "hi"},
                                           {.struct_size = sizeof current[0], .role = "assistant",
                                            .text = "hello"}};
    char *want = NULL, *got = NULL;
    CHECK(sizeof(older_message) < sizeof(dmllm_chat_message));
    CHECK_OK(dmllm_chat_apply(current, 2, 1, 1, &want));
    CHECK_OK(dmllm_chat_apply((const dmllm_chat_message *)(const void *)older, 2, 1, 1, &got));
    CHECK(want && got && strcmp(want, got) == 0);
    dmllm_text_free(want);
    dmllm_text_free(got);

    dmllm_chat_message bad[2] = {current[0], current[1]};
    const uint32_t sizes[] = {0, 4, sizeof bad[0] + 8};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        bad[0].struct_size = sizes[i];
        got = NULL;
        CHECK_STATUS(dmllm_chat_apply(bad, 2, 1, 1, &got), DMLLM_ERR_INVALID_ARGUMENT);
        CHECK_MSG(strstr(dmllm_last_error(), "messages[0].struct_size") != NULL, "%s", dmllm_last_error());
        CHECK(got == NULL);
    }
    bad[0].struct_size = sizeof bad[0];
    bad[1].struct_size = sizeof(older_message); /* not the array's stride */
    CHECK_STATUS(dmllm_chat_apply(bad, 2, 1, 1, &got), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "messages[1].struct_size") != NULL, "%s", dmllm_last_error());
}

int main(void) {
    dmllm_tokenizer *tokenizer = NULL;
    CHECK_OK(dmllm_tokenizer_load(test_source_path("tests/fixtures/tokenizer/tokenizer.json"), &tokenizer));
    if (tokenizer) test_oracle_parity(tokenizer);
    dmllm_tokenizer_free(tokenizer);
    test_public_tokenize();
    test_errors();
    test_struct_size();
    return test_finish("test_chat");
}
