/*
 * test_limits.c: requests too large for the model fail at once with a message that says what they
 * needed (issue 20, item 8), on models/tiny (max_position_embeddings 32768): an n_ctx beyond
 * max_position_embeddings, an image whose tokens cannot fit the context (encode and the dense
 * readout refuse it before any vision work).
 */
#include "common.h"
#include "densemllm.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static dmllm_model *load_tiny(void) {
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = DMLLM_COMPUTE_F32;
    mp.n_threads = 2;
    dmllm_model *model = NULL;
    CHECK_OK(dmllm_model_load(test_source_path("models/tiny"), &mp, &model));
    return model;
}

/* A gray image of the given size. */
static dmllm_image *gray_image(int width, int height) {
    uint8_t *rgb = malloc((size_t)width * height * 3);
    if (!rgb) return NULL;
    memset(rgb, 128, (size_t)width * height * 3);
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_from_rgb(rgb, width, height, 0, &image));
    free(rgb);
    return image;
}

static void check_message(const char *message, const char *needle) {
    CHECK_MSG(strstr(message, needle) != NULL, "message lacks \"%s\": %s", needle, message);
}

/* Issue 20, item 8: --max-patches 600000 on a 12000x12000 image used to start a run of 154,096
 * positions against max_position_embeddings 32768 with only a warning. */
static void test_context_overflow(dmllm_model *model) {
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.n_threads = 2;
    sp.n_ctx = 40000;
    dmllm_session *s = NULL;
    CHECK_STATUS(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT);
    check_message(dmllm_last_error(), "n_ctx = 40000 exceeds the model's max_position_embeddings 32768");
    CHECK(s == NULL);

    sp.n_ctx = 0;
    sp.max_num_patches = 600000;
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    if (!s) return;
    /* 5840 x 5840 pixels: 366 x 366 patches under the cap, 33,489 tokens. */
    dmllm_image *big = gray_image(5840, 5840);
    double t0 = dmllm_now_seconds();
    CHECK_STATUS(dmllm_session_encode_image(s, big), DMLLM_ERR_CONTEXT_FULL);
    double seconds = dmllm_now_seconds() - t0;
    printf("  encode 5840x5840, max_num_patches 600000: %.3f s -> %s\n", seconds, dmllm_session_errmsg(s));
    CHECK_MSG(seconds < 2.0, "took %.2f s to refuse", seconds);
    check_message(dmllm_session_errmsg(s), "more than the model's max_position_embeddings 32768");
    check_message(dmllm_session_errmsg(s), "set max_num_patches to 131064 or less");

    /* The dense readout counts its prompt tokens before encoding. */
    const char *classes[] = {"circle"};
    dmllm_dense_params dp;
    dmllm_dense_params_init(&dp);
    dp.class_names = classes;
    dp.n_classes = 1;
    dmllm_dense_result *result = NULL;
    t0 = dmllm_now_seconds();
    CHECK_STATUS(dmllm_predict_dense(s, big, &dp, &result), DMLLM_ERR_CONTEXT_FULL);
    seconds = dmllm_now_seconds() - t0;
    printf("  dense readout of the same: %.3f s -> %s\n", seconds, dmllm_session_errmsg(s));
    CHECK_MSG(seconds < 2.0, "took %.2f s to refuse", seconds);
    check_message(dmllm_session_errmsg(s), "and the prompt");
    CHECK(result == NULL);
    dmllm_image_free(big);

    /* A small image in the same session still works. */
    dmllm_image *small = gray_image(64, 48);
    CHECK_OK(dmllm_session_encode_image(s, small));
    dmllm_image_free(small);
    dmllm_session_free(s);
}

int main(void) {
    dmllm_model *model = load_tiny();
    if (model) test_context_overflow(model);
    dmllm_model_free(model);
    return test_finish("test_limits");
}
