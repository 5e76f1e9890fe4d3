/*
 * test_prefix.c: lib/prefix.c through its users. The image prefix dmllm_predict_dense evaluates
 * (image first and prompt first) gives the same label logits as the prefix spelled out here from
 * model-spec 4.8 with config.json's image ids; a second query on the same pixels reuses it, a new
 * instruction before the image does not; dmllm_ask and the dense readout share one prefix.
 */
#include "densemllm.h"
#include "support_model_dir.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char header[] = "<|begin_of_text|>system\nYou are a helpful assistant.<|end_of_text|>\n"
                             "<|begin_of_text|>user\n";
static const int32_t label_ids[3] = {5, 17, 42};
static const int label_offsets[4] = {0, 1, 2, 3};

typedef test_golden_fixture fixture;

static dmllm_session *new_session(const fixture *f) {
    return test_new_session(f->model, f->max_patches, f->resize_mode);
}

/* Label logits at the image tokens (own positions) after evaluating header + instruction_first +
 * the image block: out[n_tokens][3]; returns n_tokens. */
static int reference_logits(const fixture *f, const char *instruction_first, float *out, size_t capacity) {
    dmllm_session *s = new_session(f);
    if (!s) return 0;
    CHECK_OK(dmllm_session_encode_image(s, f->image));
    dmllm_image_grid grid = {.struct_size = sizeof grid};
    CHECK_OK(dmllm_session_image_grid(s, &grid));
    const int n_image = grid.tokens_h * grid.tokens_w;
    char text[512];
    snprintf(text, sizeof text, "%s%s", header, instruction_first ? instruction_first : "");
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n_image + 512));
    size_t n = 0;
    CHECK_OK(dmllm_tokenize(f->model, text, 1, ids, 512, &n));
    ids[n++] = 296; /* config.json: vision_start_token_id */
    for (int i = 0; i < n_image; i++) ids[n++] = 300; /* image_token_id */
    ids[n++] = 297; /* vision_end_token_id */
    CHECK_OK(dmllm_session_eval(s, ids, (int)n));
    CHECK_OK(dmllm_session_image_logits(s, DMLLM_ALIGN_OWN, label_ids, 3, out, capacity, NULL, NULL));
    free(ids);
    dmllm_session_free(s);
    return n_image;
}

static dmllm_dense_result *dense(dmllm_session *s, const fixture *f, dmllm_prompt_layout layout, const char *prompt) {
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    p.n_classes = 3;
    p.label_token_ids = label_ids;
    p.label_offsets = label_offsets;
    p.keep_token_scores = 1;
    p.alignment = DMLLM_ALIGN_OWN;
    p.layout = layout;
    p.prompt = prompt;
    dmllm_dense_result *r = NULL;
    CHECK_OK(dmllm_predict_dense(s, f->image, &p, &r));
    return r;
}

static void check_scores(const char *what, const dmllm_dense_result *r, const float *want, int n_tokens) {
    double max_diff = 0.0;
    const int ok = r && r->token_scores && r->tokens_h * r->tokens_w == n_tokens && r->n_scores == 3;
    for (int i = 0; ok && i < n_tokens * 3; i++) max_diff = fmax(max_diff, fabs((double)r->token_scores[i] - want[i]));
    CHECK_MSG(ok && max_diff <= 1e-5, "%s: token scores differ from the spelled-out prefix by %g", what, max_diff);
}

static void test_layouts(const fixture *f) {
    float *want = malloc(sizeof(float) * 3 * 4096);
    dmllm_session *s = new_session(f);
    if (!s || !want) return;

    const int n = reference_logits(f, NULL, want, 3 * 4096);
    dmllm_dense_result *r = dense(s, f, DMLLM_LAYOUT_IMAGE_FIRST, NULL);
    check_scores("image first", r, want, n);
    CHECK(r && !r->reused_prefix);
    dmllm_dense_result_free(r);
    r = dense(s, f, DMLLM_LAYOUT_IMAGE_FIRST, "another question");
    check_scores("image first, again", r, want, n);
    CHECK(r && r->reused_prefix && r->seconds_encode == 0.0);
    dmllm_dense_result_free(r);

    /* dmllm_ask continues the same prefix; the readout afterwards still reuses it */
    dmllm_generate_params gp;
    dmllm_generate_params_init(&gp);
    gp.max_new_tokens = 3;
    dmllm_generate_result *answer = NULL;
    CHECK_OK(dmllm_ask(s, f->image, "What is this?", &gp, &answer));
    dmllm_generate_result_free(answer);
    r = dense(s, f, DMLLM_LAYOUT_IMAGE_FIRST, NULL);
    check_scores("image first, after dmllm_ask", r, want, n);
    CHECK(r && r->reused_prefix);
    dmllm_dense_result_free(r);

    const char *depth = "Please estimate the depth of this image from the NYUv2 dataset. ";
    reference_logits(f, depth, want, 3 * 4096);
    r = dense(s, f, DMLLM_LAYOUT_PROMPT_FIRST, depth);
    check_scores("prompt first", r, want, n);
    CHECK(r && !r->reused_prefix);
    dmllm_dense_result_free(r);
    r = dense(s, f, DMLLM_LAYOUT_PROMPT_FIRST, depth);
    CHECK(r && r->reused_prefix);
    dmllm_dense_result_free(r);
    r = dense(s, f, DMLLM_LAYOUT_PROMPT_FIRST, "Estimate the depth. ");
    CHECK(r && !r->reused_prefix); /* the image states depend on the new instruction */
    dmllm_dense_result_free(r);
    dmllm_session_free(s);
    free(want);
}

int main(void) {
    fixture f;
    test_golden_fixture_open("prefix", &f);
    if (f.model && f.image) test_layouts(&f);
    test_golden_fixture_close(&f);
    return test_finish("test_prefix");
}
