/*
 * test_named_readout.c: the two-step semantic readout (report 9.2) on models/tiny and its sample
 * scene: label values follow the order of the model's own <ref> reply, a prompt class the reply
 * does not name gets no pixels, the named scores are the all-class scores of those names, the reply
 * leaves the image prefix reusable, names outside the prompt are kept and flagged, names match the
 * prompt's up to ASCII case, a reply without names falls back to every class, background mode adds
 * its label, and bad readout settings fail with a message.
 */
#include "support_model_dir.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define N_CLASSES 14
static const char *const CLASSES[N_CLASSES] = {"sky",  "wall", "grass", "sand",  "water", "road",   "ball",
                                                "box",  "tent", "star",  "ring",  "cross", "pillar", "traffic cone"};
static const char ALL_CLASSES_PROMPT[] = "Segment: sky, wall, grass, sand, water, road, ball, box, tent, star, ring, "
                                         "cross, pillar, traffic cone, without the background class.";

static dmllm_dense_result *predict(dmllm_session *s, const dmllm_image *img, const char *const *classes, int n,
                                   int readout, const char *prompt, int background) {
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    p.class_names = classes;
    p.n_classes = n;
    p.readout = readout;
    p.prompt = prompt;
    p.background = background;
    p.keep_token_scores = 1;
    dmllm_dense_result *r = NULL;
    CHECK_OK(dmllm_predict_dense(s, img, &p, &r));
    return r;
}

/* The i-th "<ref>name</ref>" of text, independently of the library's parser; NULL past the last. */
static char *nth_ref(const char *text, int i) {
    for (const char *at = strstr(text, "<ref>"); at; at = strstr(at, "<ref>")) {
        at += 5;
        const char *end = strstr(at, "</ref>");
        if (!end) return NULL;
        if (i-- == 0) {
            char *name = calloc((size_t)(end - at) + 1, 1);
            if (name) memcpy(name, at, (size_t)(end - at));
            return name;
        }
        at = end;
    }
    return NULL;
}

static void check_named(dmllm_session *s, const dmllm_image *img) {
    dmllm_dense_result *all = predict(s, img, CLASSES, N_CLASSES, DMLLM_READOUT_ALL, NULL, 0);
    dmllm_dense_result *named = predict(s, img, CLASSES, N_CLASSES, DMLLM_READOUT_NAMED, NULL, 0);
    dmllm_dense_result *again = predict(s, img, CLASSES, N_CLASSES, DMLLM_READOUT_ALL, NULL, 0);
    if (!all || !named || !again) goto done;
    CHECK(all->readout == DMLLM_READOUT_ALL && !all->reply && all->n_classes == N_CLASSES && all->class_names);
    for (int k = 0; all->class_names && k < N_CLASSES; k++)
        CHECK(!strcmp(all->class_names[k], CLASSES[k]) && all->prompt_index[k] == k);

    printf("reply: %s\n", named->reply ? named->reply : "(none)");
    CHECK(named->readout == DMLLM_READOUT_NAMED && named->reply && !named->named_fallback);
    CHECK(named->reused_prefix && named->seconds_generate > 0.0);
    CHECK_MSG(named->n_classes > 0 && named->n_classes < N_CLASSES, "the reply names %d of %d classes",
              named->n_classes, N_CLASSES);
    CHECK(named->n_labels == named->n_classes && named->n_scores == named->n_classes);
    /* label value v is the v-th name of the reply, and the scores are the all-class scores of it */
    int named_prompt[N_CLASSES] = {0};
    for (int v = 0; named->reply && v < named->n_classes; v++) {
        char *printed = nth_ref(named->reply, v);
        CHECK_MSG(printed && !strcmp(printed, named->class_names[v]), "label %d is \"%s\", the reply's %d-th name \"%s\"",
                  v, named->class_names[v], v, printed ? printed : "(none)");
        free(printed);
        const int k = named->prompt_index[v];
        CHECK_MSG(k >= 0 && k < N_CLASSES && !strcmp(CLASSES[k], named->class_names[v]), "label %d: prompt index %d", v, k);
        if (k < 0 || k >= N_CLASSES) continue;
        named_prompt[k] = 1;
        const size_t n_tokens = (size_t)named->tokens_w * named->tokens_h;
        for (size_t t = 0; t < n_tokens; t++)
            if (named->token_scores[t * named->n_scores + v] != all->token_scores[t * all->n_scores + k]) {
                CHECK_MSG(0, "token %zu: named score of \"%s\" differs from the all-class one", t, CLASSES[k]);
                break;
            }
    }
    /* every pixel is a named class; a prompt class the reply left out has pixels only under ALL */
    const size_t n_pixels = (size_t)named->width * named->height;
    int missing_with_pixels = 0;
    for (int k = 0; k < N_CLASSES; k++) {
        size_t under_all = 0, under_named = 0;
        for (size_t i = 0; i < n_pixels; i++) {
            under_all += all->labels[i] == k;
            under_named += named->labels[i] < named->n_classes && named->prompt_index[named->labels[i]] == k;
        }
        if (!named_prompt[k]) CHECK_MSG(under_named == 0, "\"%s\" is not named but has %zu pixels", CLASSES[k], under_named);
        missing_with_pixels += !named_prompt[k] && under_all > 0;
    }
    for (size_t i = 0; i < n_pixels; i++)
        if (named->labels[i] >= named->n_classes) {
            CHECK_MSG(0, "pixel %zu has label %u of %d classes", i, named->labels[i], named->n_classes);
            break;
        }
    /* on this scene the reply leaves out a class the all-class readout paints (grass) */
    CHECK_MSG(missing_with_pixels > 0, "no unnamed class had pixels under the all-class readout");
    /* the reply was dropped again: the next query reuses the prefix and reads the same states */
    CHECK(again->reused_prefix && memcmp(again->labels, all->labels, n_pixels * sizeof *all->labels) == 0);
done:
    dmllm_dense_result_free(all);
    dmllm_dense_result_free(named);
    dmllm_dense_result_free(again);
}

/* Background classes only in class_names, all classes in the prompt: the objects the model names
 * are kept as open vocabulary. Upper-case class names match the printed lower-case ones. */
static void check_matching(dmllm_session *s, const dmllm_image *img) {
    const char *const grounds[6] = {"sky", "wall", "grass", "sand", "water", "road"};
    dmllm_dense_result *r = predict(s, img, grounds, 6, DMLLM_READOUT_NAMED, ALL_CLASSES_PROMPT, 0);
    int open = 0;
    for (int v = 0; r && v < r->n_classes; v++) {
        const int k = r->prompt_index[v];
        int in_prompt = 0;
        for (int j = 0; j < 6; j++) in_prompt |= !strcmp(r->class_names[v], grounds[j]);
        CHECK_MSG(in_prompt ? k >= 0 && k < 6 && !strcmp(grounds[k], r->class_names[v]) : k == -1,
                  "\"%s\" has prompt index %d", r->class_names[v], k);
        open += k == -1;
    }
    CHECK_MSG(r && open > 0, "no printed name outside the class list (reply: %s)", r && r->reply ? r->reply : "");
    dmllm_dense_result_free(r);

    const char *upper[N_CLASSES] = {"SKY", "WALL", "GRASS", "SAND", "WATER", "ROAD", "BALL",
                                    "BOX", "TENT", "STAR",  "RING", "CROSS", "PILLAR", "TRAFFIC CONE"};
    r = predict(s, img, upper, N_CLASSES, DMLLM_READOUT_NAMED, ALL_CLASSES_PROMPT, 0);
    for (int v = 0; r && v < r->n_classes; v++) {
        const int k = r->prompt_index[v];
        CHECK_MSG(k >= 0 && k < N_CLASSES && !strcmp(CLASSES[k], r->class_names[v]), "\"%s\" matched %d",
                  r->class_names[v], k);
    }
    CHECK(r && r->n_classes > 0);
    dmllm_dense_result_free(r);
}

/* label_names names every label value, so callers never count them (issue 21, item 3): the classes
 * as read out (NULL entries for classes given as token ids), then the background label. */
static void check_label_names(const dmllm_dense_result *r, int background) {
    if (!r) return;
    CHECK_MSG(r->n_labels == r->n_classes + (background ? 1 : 0), "%d labels for %d classes", r->n_labels,
              r->n_classes);
    CHECK(r->label_names != NULL && r->background_label == (background ? r->n_classes : -1));
    for (int k = 0; r->label_names && k < r->n_classes; k++)
        CHECK_MSG(r->class_names ? r->label_names[k] && !strcmp(r->label_names[k], r->class_names[k])
                                 : r->label_names[k] == NULL,
                  "label %d is named \"%s\"", k, r->label_names[k] ? r->label_names[k] : "(null)");
    if (background && r->label_names)
        CHECK(r->label_names[r->n_classes] && !strcmp(r->label_names[r->n_classes], "background"));
}

/* FG/BG labels are background and foreground; depth labels are bin numbers without names. */
static void check_fgbg_depth_names(dmllm_session *s, const dmllm_image *img) {
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    p.task = DMLLM_TASK_FGBG;
    dmllm_dense_result *r = NULL;
    CHECK_OK(dmllm_predict_dense(s, img, &p, &r));
    CHECK(r && r->n_labels == 2 && r->background_label == 0 && r->label_names &&
          !strcmp(r->label_names[0], "background") && !strcmp(r->label_names[1], "foreground"));
    dmllm_dense_result_free(r);
    r = NULL;
    p.task = DMLLM_TASK_DEPTH;
    CHECK_OK(dmllm_predict_dense(s, img, &p, &r));
    CHECK(r && r->n_labels > 2 && !r->label_names && r->background_label == -1);
    dmllm_dense_result_free(r);
}

/* A reply that names nothing falls back to every prompt class, flagged; background mode adds its
 * label after the named classes. */
static void check_fallback_and_background(dmllm_session *s, const dmllm_image *img) {
    dmllm_dense_result *r = predict(s, img, CLASSES, N_CLASSES, DMLLM_READOUT_NAMED, "Estimate the depth.", 0);
    CHECK(r && r->named_fallback && r->reply && !strstr(r->reply, "<ref>"));
    CHECK(r && r->n_classes == N_CLASSES && r->n_labels == N_CLASSES);
    for (int k = 0; r && k < r->n_classes; k++) CHECK(!strcmp(r->class_names[k], CLASSES[k]) && r->prompt_index[k] == k);
    check_label_names(r, 0);
    dmllm_dense_result_free(r);

    r = predict(s, img, CLASSES, N_CLASSES, DMLLM_READOUT_NAMED, NULL, 1);
    CHECK(r && !r->named_fallback && r->n_classes > 0 && r->n_labels == r->n_classes + 1);
    check_label_names(r, 1);
    dmllm_dense_result_free(r);
}

static void check_bad_settings(dmllm_session *s, const dmllm_image *img) {
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    CHECK(p.readout == DMLLM_FROM_PROFILE);
    p.class_names = CLASSES;
    p.n_classes = N_CLASSES;
    p.readout = 2;
    dmllm_dense_result *r = NULL;
    CHECK_STATUS(dmllm_predict_dense(s, img, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(!r && strstr(dmllm_session_errmsg(s), "readout = 2"));
    const int32_t ids[2] = {1, 2};
    const int offsets[3] = {0, 1, 2};
    p.class_names = NULL;
    p.n_classes = 2;
    p.label_token_ids = ids;
    p.label_offsets = offsets;
    p.readout = DMLLM_READOUT_NAMED;
    CHECK_STATUS(dmllm_predict_dense(s, img, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_session_errmsg(s), "label_token_ids"));
    p.readout = DMLLM_FROM_PROFILE; /* token ids: the all-class readout whatever the profile says */
    CHECK_OK(dmllm_predict_dense(s, img, &p, &r));
    CHECK(r && r->readout == DMLLM_READOUT_ALL && !r->class_names && r->n_classes == 2 && r->prompt_index[1] == 1);
    check_label_names(r, 0);
    dmllm_dense_result_free(r);
    const char *empty[2] = {"sky", ""};
    dmllm_dense_params_init(&p);
    p.class_names = empty;
    p.n_classes = 2;
    CHECK_STATUS(dmllm_predict_dense(s, img, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_session_errmsg(s), "class 1 has an empty name"));
}

int main(void) {
    test_tiny_fixture tiny;
    test_tiny_fixture_open(&tiny);
    dmllm_session *s = tiny.session;
    dmllm_image *img = tiny.image;
    if (s && img) {
        check_named(s, img);
        check_matching(s, img);
        check_fallback_and_background(s, img);
        check_bad_settings(s, img);
        check_fgbg_depth_names(s, img);
    }
    test_tiny_fixture_close(&tiny);
    return test_finish("test_named_readout");
}
