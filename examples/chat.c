/*
 * chat.c: a multi-turn conversation about one image, with the answers streamed as they are
 * generated. It shows the lower-level calls under dmllm_ask: the chat template, one image
 * encoding, and reuse of the evaluated image prefix across turns.
 *
 *   chat MODEL_DIR IMAGE "QUESTION" ["FOLLOW-UP" ...]
 */
#include <densemllm.h>

#include <stdio.h>
#include <stdlib.h>

#define MAX_TURNS 16
#define MAX_NEW_TOKENS 128

/* Streams each piece of the answer; pieces are whole UTF-8 characters. */
static int print_piece(int32_t token_id, const char *text, size_t length, void *user_data) {
    (void)token_id;
    (void)user_data;
    fwrite(text, 1, length, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop the generation */
}

int main(int argc, char **argv) {
    if (argc < 4 || argc - 3 > MAX_TURNS) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE \"QUESTION\" [\"FOLLOW-UP\" ...] (at most %d)\n", argv[0],
                MAX_TURNS);
        return 2;
    }
    dmllm_model *model = NULL;
    dmllm_session *session = NULL;
    dmllm_image *image = NULL;
    int32_t *ids = NULL;
    /* The conversation: user and assistant turns alternate; answers[t] is owned by the library. */
    dmllm_chat_message messages[2 * MAX_TURNS];
    dmllm_generate_result *answers[MAX_TURNS] = {0};
    int exit_code = 1;

    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    if (dmllm_model_load(argv[1], &mp, &model) != DMLLM_OK || dmllm_session_create(model, &sp, &session) != DMLLM_OK ||
        dmllm_image_load_file(argv[2], &image) != DMLLM_OK) {
        fprintf(stderr, "chat: %s\n", dmllm_last_error());
        goto done;
    }
    /* The image is encoded once; its token count sizes the <|image_pad|> run of the template. */
    dmllm_image_grid grid = {.struct_size = sizeof grid};
    dmllm_model_info info = {.struct_size = sizeof info};
    if (dmllm_session_encode_image(session, image) != DMLLM_OK ||
        dmllm_session_image_grid(session, &grid) != DMLLM_OK || dmllm_model_get_info(model, &info) != DMLLM_OK) {
        fprintf(stderr, "chat: %s\n", dmllm_last_error());
        goto done;
    }

    dmllm_generate_params gp;
    dmllm_generate_params_init(&gp); /* the official greedy decoding */
    gp.max_new_tokens = MAX_NEW_TOKENS;
    gp.on_token = print_piece;

    int n_messages = 0;
    for (int turn = 0; turn < argc - 3; turn++) {
        /* Only the first question carries the image, placed before its text (the official layout). */
        messages[n_messages++] = (dmllm_chat_message){
            .struct_size = sizeof *messages, .role = "user", .text = argv[3 + turn], .has_image = turn == 0};
        size_t n_ids = 0;
        dmllm_chat_tokenize(model, messages, n_messages, 1, grid.tokens_h * grid.tokens_w, NULL, 0, &n_ids);
        free(ids);
        ids = malloc(n_ids * sizeof *ids); /* [n_ids] the whole conversation so far */
        if (!ids || dmllm_chat_tokenize(model, messages, n_messages, 1, grid.tokens_h * grid.tokens_w, ids, n_ids,
                                        &n_ids) != DMLLM_OK) {
            fprintf(stderr, "chat: %s\n", ids ? dmllm_last_error() : "out of memory");
            goto done;
        }
        /* The tokens through <|vision_end|> are the same in every turn: keep them evaluated and
         * evaluate only the rest of the conversation. */
        int keep = 0;
        while (keep < (int)n_ids && ids[keep] != info.vision_end_token_id) keep++;
        keep = keep < (int)n_ids && dmllm_session_n_past(session) > keep ? keep + 1 : 0;
        if (dmllm_session_truncate(session, keep) != DMLLM_OK) {
            fprintf(stderr, "chat: %s\n", dmllm_session_errmsg(session));
            goto done;
        }
        printf("user: %s\nassistant: ", argv[3 + turn]);
        if (dmllm_generate(session, ids + keep, (int)n_ids - keep, &gp, &answers[turn]) != DMLLM_OK) {
            fprintf(stderr, "\nchat: %s\n", dmllm_session_errmsg(session));
            goto done;
        }
        printf("\n[%d tokens, %.2f s prompt, %.2f s generation]\n", answers[turn]->n_ids,
               answers[turn]->seconds_prompt, answers[turn]->seconds_generate);
        messages[n_messages++] =
            (dmllm_chat_message){.struct_size = sizeof *messages, .role = "assistant", .text = answers[turn]->text};
    }
    exit_code = 0;

done:
    for (int t = 0; t < MAX_TURNS; t++) dmllm_generate_result_free(answers[t]);
    free(ids);
    dmllm_image_free(image);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return exit_code;
}
