/*
 * test_tasks.c: lib/regions.c and lib/tasks.c.
 *  - dmllm_parse_regions on answers in the official formats (demo / model-spec 6.1: <ref> + <box>
 *    detection and grounding, <ins> polygons with and without <poly>, text around them), on 24
 *    malformed ones (each: what survives and that the message says so), on every truncation of
 *    the official strings and on 2000 boxes;
 *  - dmllm_ask / dmllm_ground / dmllm_detect on a golden checkpoint with the fixture tokenizer:
 *    the ids equal dmllm_generate on a prompt spelled out here from model-spec 4.8 and the demo's
 *    prompt strings, the image prefix is reused, streamed text adds up to the answer, errors;
 *  - dmllm_detect on models/tiny's 320-px-wide sample, whose ball the model boxes to x = 321: boxes
 *    in original pixels stay inside the image, while the answer's text keeps the model's coordinate.
 */
#include "densemllm.h"
#include "support_model_dir.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static dmllm_regions *parse(const char *text) {
    dmllm_regions *r = NULL;
    CHECK_OK(dmllm_parse_regions(text, &r));
    return r;
}

static int box_is(const dmllm_region *r, const char *label, int x0, int y0, int x1, int y1) {
    return strcmp(r->label, label) == 0 && r->box[0] == x0 && r->box[1] == y0 && r->box[2] == x1 && r->box[3] == y1;
}

static void test_official_formats(void) {
    dmllm_regions *r = parse("<ref>person</ref><box><x_12><y_34><x_56><y_78></box><box><x_100><y_110><x_200><y_220></box>"
                             "<ref>dog</ref><box><x_5><y_6><x_7><y_8></box>");
    CHECK(r && r->n_regions == 3 && r->message[0] == '\0' && r->text == NULL);
    if (r && r->n_regions == 3) {
        CHECK(box_is(r->regions[0], "person", 12, 34, 56, 78) && r->regions[0]->n_points == 0 && !r->regions[0]->points);
        CHECK(box_is(r->regions[1], "person", 100, 110, 200, 220));
        CHECK(box_is(r->regions[2], "dog", 5, 6, 7, 8));
    }
    dmllm_regions_free(r);

    r = parse("<ref>the a black and white cat sitting on the edge of the bathtub</ref><box><x_320><y_48><x_1020><y_700></box>");
    CHECK(r && r->n_regions == 1 &&
          box_is(r->regions[0], "the a black and white cat sitting on the edge of the bathtub", 320, 48, 1020, 700));
    dmllm_regions_free(r);

    r = parse("<box><x_1><y_2><x_3><y_4></box>"); /* grounding without a <ref> */
    CHECK(r && r->n_regions == 1 && box_is(r->regions[0], "", 1, 2, 3, 4));
    dmllm_regions_free(r);

    r = parse("<ins><x_10><y_20><x_30><y_5><x_25><y_40></ins>");
    CHECK(r && r->n_regions == 1 && r->regions[0]->n_points == 3 && box_is(r->regions[0], "", 10, 5, 30, 40));
    if (r && r->n_regions == 1 && r->regions[0]->n_points == 3) {
        const int want[6] = {10, 20, 30, 5, 25, 40};
        CHECK(memcmp(r->regions[0]->points, want, sizeof want) == 0);
    }
    dmllm_regions_free(r);

    r = parse("<ref>hotdog on left</ref><ins><poly><x_1><y_1><x_9><y_2><x_4><y_8></poly></ins>");
    CHECK(r && r->n_regions == 1 && r->regions[0]->n_points == 3 && box_is(r->regions[0], "hotdog on left", 1, 1, 9, 8));
    dmllm_regions_free(r);

    r = parse("The objects are <ref> cat\n</ref> at <box> <x_0> <y_0>\n<x_2047><y_2047> </box>.");
    CHECK(r && r->n_regions == 1 && box_is(r->regions[0], "cat", 0, 0, 2047, 2047) && r->message[0] == '\0');
    dmllm_regions_free(r);

    r = parse("<ref>猫</ref><box><x_7><y_8><x_9><y_10></box>");
    CHECK(r && r->n_regions == 1 && box_is(r->regions[0], "猫", 7, 8, 9, 10));
    dmllm_regions_free(r);

    /* a segmentation answer, a plain answer and nothing: no regions, nothing malformed */
    const char *no_regions[] = {
        "The target categories include <ref>cat</ref><ref>dog</ref>, numbered sequentially starting from 0."
        "<mask>(0,5)(1,3)</mask>",
        "There are two dogs in the image.", "", "<x_1><y_2> outside a box", "a < b > c <",
    };
    for (int i = 0; i < N(no_regions); i++) {
        r = parse(no_regions[i]);
        CHECK_MSG(r && r->n_regions == 0 && r->message[0] == '\0', "\"%s\"", no_regions[i]);
        dmllm_regions_free(r);
    }
}

static void test_malformed(void) {
    const struct { const char *text; int n_regions; const char *message_part; } cases[] = {
        {"<ref>cat</ref><box><x_1><y_2><x_3></box>", 0, "an <x_N> without its <y_N>"},
        {"<ref>cat</ref><box><x_1><y_2></box>", 0, "2 coordinates instead of 4"},
        {"<box><x_1><y_2><x_3><y_4><x_5><y_6></box>", 0, "6 coordinates instead of 4"},
        {"<box><y_1><x_2><y_3><x_4></box>", 0, "order"},
        {"<box><x_1><y_2><x_3><y_4>", 0, "<box> without its closing tag"},
        {"<box><x_1><y_2><x_3><y_4></box", 0, "<box> without its closing tag"},
        {"<ref>cat<box><x_1><y_2><x_3><y_4></box>", 1, "<ref> without </ref>"},
        {"<box><x_2048><y_0><x_1><y_1></box>", 0, "beyond 2047"},
        {"<box><x_99999999999999999999><y_0><x_1><y_1></box>", 0, "beyond 2047"},
        {"<box><x_><y_0><x_1><y_1></box>", 0, "text other than"},
        {"<box><x_-1><y_0><x_1><y_1></box>", 0, "text other than"},
        {"<box>1,2,3,4</box>", 0, "text other than"},
        {"<box><x_1><y_2><x_3><y_4</box>", 0, "text other than"},
        {"<box></box>", 0, "0 coordinates instead of 4"},
        {"<ins></ins>", 0, "without points"},
        {"<ins><poly></poly></ins>", 0, "without points"},
        {"<ins><x_1><y_2><x_3></ins>", 0, "an <x_N> without its <y_N>"},
        {"<ins><x_1><y_2>", 0, "<ins> without its closing tag"},
        {"<ins><poly><x_1><y_2></poly>junk</ins>", 0, "text other than"},
        {"<ref><ref><ref>", 0, "<ref> without </ref>"},
        {"<ref>a</ref><box><x_1><y_1><x_2><y_2></box><box><x_1></box><box><x_3><y_3><x_4><y_4></box>", 2,
         "1 malformed item skipped; the first, at byte 43"},
        {"<box><x_1><y_1></box><box><x_2></box><ins></ins>", 0, "3 malformed items skipped; the first, at byte 0"},
        {"<box><x_1><y_2><x_3><y_4></box><box><x_1><y_2><x_3><y_4>", 1, "at byte 31"},
        {"<box><x_1><box><x_1><y_2><x_3><y_4></box>", 0, "text other than"},
    };
    for (int i = 0; i < N(cases); i++) {
        dmllm_regions *r = parse(cases[i].text);
        CHECK_MSG(r && r->n_regions == cases[i].n_regions && strstr(r->message, cases[i].message_part) != NULL,
                  "case %d \"%s\": %d regions, message \"%s\"", i, cases[i].text, r ? r->n_regions : -1,
                  r ? r->message : "");
        dmllm_regions_free(r);
    }
    /* stray closers and invalid UTF-8 are text */
    dmllm_regions *r = parse("</box></ref></ins><<<<>>>\xff\xfe<ref>\xc3</ref><box><x_1><y_1><x_2><y_2></box>");
    CHECK(r && r->n_regions == 1 && strcmp(r->regions[0]->label, "\xc3") == 0 && r->message[0] == '\0');
    dmllm_regions_free(r);
    CHECK_STATUS(dmllm_parse_regions(NULL, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(r == NULL);
    CHECK_STATUS(dmllm_parse_regions("<box></box>", NULL), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_regions_free(NULL);
}

/* Every prefix of the official strings parses; what survives are whole items within range. */
static void test_truncations(void) {
    const char *official[] = {
        "<ref>person</ref><box><x_12><y_34><x_56><y_78></box><box><x_100><y_110><x_200><y_220></box>",
        "<ref>hotdog on left</ref><ins><poly><x_1><y_1><x_9><y_2><x_4><y_8></poly></ins>",
    };
    int n_parsed = 0, bad = 0;
    for (int s = 0; s < N(official); s++) {
        const size_t length = strlen(official[s]);
        char *copy = malloc(length + 1);
        for (size_t cut = 0; cut <= length; cut++) {
            memcpy(copy, official[s], cut);
            copy[cut] = '\0';
            dmllm_regions *r = parse(copy);
            if (!r) continue;
            n_parsed++;
            for (int i = 0; i < r->n_regions; i++)
                for (int k = 0; k < 4; k++) bad += r->regions[i]->box[k] < 0 || r->regions[i]->box[k] > 2047;
            bad += r->n_regions > 2;
            dmllm_regions_free(r);
        }
        free(copy);
    }
    CHECK(bad == 0);
    printf("truncations: %d prefixes parsed without an out-of-range item\n", n_parsed);

    /* many regions (the result grows) */
    const char box[] = "<box><x_1><y_2><x_3><y_4></box>";
    char *many = malloc(2000 * (sizeof box - 1) + 32);
    char *w = many + sprintf(many, "<ref>x</ref>");
    for (int i = 0; i < 2000; i++) w += sprintf(w, "%s", box);
    dmllm_regions *r = parse(many);
    CHECK(r && r->n_regions == 2000 && box_is(r->regions[1999], "x", 1, 2, 3, 4));
    dmllm_regions_free(r);
    free(many);
}

/* ---- the task helpers on a golden checkpoint ------------------------------------------------- */

typedef test_golden_fixture fixture;

static dmllm_session *new_session(const fixture *f) {
    return test_new_session(f->model, f->max_patches, f->resize_mode);
}

static dmllm_generate_params short_greedy(void) {
    static const int32_t never = -1;
    dmllm_generate_params p;
    dmllm_generate_params_init(&p);
    p.max_new_tokens = 6;
    p.stop_ids = &never;
    p.n_stop_ids = 1;
    return p;
}

static size_t tokenize(const dmllm_model *model, const char *text, int32_t *ids, size_t capacity) {
    size_t n = 0;
    CHECK_OK(dmllm_tokenize(model, text, 1, ids, capacity, &n));
    return n;
}

/* The ids dmllm_ask should evaluate, spelled out from model-spec 4.8 with config.json's image ids
 * (296 vision start, 300 pad, 297 vision end), and what dmllm_generate makes of them. */
static dmllm_generate_result *reference_answer(const fixture *f, const char *question) {
    dmllm_session *s = new_session(f);
    if (!s) return NULL;
    CHECK_OK(dmllm_session_encode_image(s, f->image));
    dmllm_image_grid grid = {.struct_size = sizeof grid};
    CHECK_OK(dmllm_session_image_grid(s, &grid));
    const int n_image = grid.tokens_h * grid.tokens_w;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n_image + 1024));
    size_t n = tokenize(f->model, "<|begin_of_text|>system\nYou are a helpful assistant.<|end_of_text|>\n"
                                  "<|begin_of_text|>user\n", ids, 512);
    ids[n++] = 296;
    for (int i = 0; i < n_image; i++) ids[n++] = 300;
    ids[n++] = 297;
    char tail[512];
    snprintf(tail, sizeof tail, "%s<|end_of_text|>\n<|begin_of_text|>assistant\n", question);
    n += tokenize(f->model, tail, ids + n, 512);
    const dmllm_generate_params p = short_greedy();
    dmllm_generate_result *r = NULL;
    CHECK_OK(dmllm_generate(s, ids, (int)n, &p, &r));
    free(ids);
    dmllm_session_free(s);
    return r;
}

static int same_answer(const dmllm_generate_result *a, const dmllm_generate_result *b) {
    if (!a || !b || a->n_ids != b->n_ids || !a->text || !b->text || strcmp(a->text, b->text) != 0) return 0;
    return memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n_ids) == 0;
}

typedef struct collected {
    char text[4096];
    size_t length;
    int calls, flushes;
} collected;

static int collect(int32_t token_id, const char *text, size_t length, void *user_data) {
    collected *c = user_data;
    c->calls++;
    c->flushes += token_id == -1;
    if (c->length + length < sizeof c->text) {
        memcpy(c->text + c->length, text, length);
        c->length += length;
        c->text[c->length] = '\0';
    }
    return 0;
}

/* The streamed pieces put together are the answer's text, also when random ids split UTF-8
 * characters and include special tokens. */
static void test_streaming(const fixture *f) {
    dmllm_session *s = new_session(f);
    if (!s) return;
    int checked = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        dmllm_generate_params p = short_greedy();
        p.max_new_tokens = 40;
        p.do_sample = 1;
        p.temperature = 20.0f; /* nearly uniform: many byte tokens and specials */
        p.seed = seed;
        p.skip_special = seed % 2 == 0;
        collected c = {.length = 0};
        p.on_token = collect;
        p.user_data = &c;
        dmllm_generate_result *r = NULL;
        CHECK_OK(dmllm_ask(s, f->image, "Describe this image.", &p, &r));
        if (!r) continue;
        CHECK_MSG(r->text && strcmp(c.text, r->text) == 0, "seed %d: streamed \"%s\", text \"%s\"", (int)seed, c.text,
                  r->text ? r->text : "");
        CHECK(c.calls == r->n_ids + c.flushes && c.flushes <= 1);
        checked++;
        dmllm_generate_result_free(r);
    }
    CHECK(checked == 4);
    dmllm_session_free(s);
}

static void test_ask(const fixture *f) {
    dmllm_session *s = new_session(f);
    if (!s) return;
    const dmllm_generate_params p = short_greedy();
    const char *questions[] = {"Describe this image.", "How many dogs in the image?"};
    for (int q = 0; q < 2; q++) {
        dmllm_generate_result *got = NULL, *want = reference_answer(f, questions[q]);
        CHECK_OK(dmllm_ask(s, f->image, questions[q], &p, &got));
        CHECK_MSG(same_answer(got, want), "dmllm_ask(\"%s\") differs from the spelled-out prompt", questions[q]);
        /* the second question reuses the prefix: the context is prefix + question + answer - 1 */
        if (got) CHECK(dmllm_session_n_past(s) > got->n_prompt && got->n_prompt < 32);
        dmllm_generate_result_free(got);
        dmllm_generate_result_free(want);
    }

    /* text only: the whole conversation, as dmllm_generate_text on dmllm_chat_apply's text */
    const dmllm_chat_message user = {.struct_size = sizeof user, .role = "user", .text = "What is 2 + 2?"};
    char *text = NULL;
    CHECK_OK(dmllm_chat_apply(&user, 1, 1, 1, &text));
    dmllm_session *fresh = new_session(f);
    dmllm_generate_result *got = NULL, *want = NULL;
    if (fresh && text) CHECK_OK(dmllm_generate_text(fresh, text, &p, &want));
    CHECK_OK(dmllm_ask(s, NULL, "What is 2 + 2?", &p, &got));
    CHECK(same_answer(got, want));
    CHECK(got && dmllm_session_n_past(s) == got->n_prompt + got->n_ids - 1);
    dmllm_generate_result_free(got);
    dmllm_generate_result_free(want);
    dmllm_text_free(text);
    dmllm_session_free(fresh);

    CHECK_STATUS(dmllm_ask(s, f->image, NULL, &p, &got), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_ask(s, f->image, "x", &p, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_ask(NULL, f->image, "x", &p, &got), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_session_free(s);
}

/* Grounding and detection are dmllm_ask with the demo's prompts, parsed. */
static void check_task_prompt(const fixture *f, dmllm_session *s, const dmllm_regions *r, const char *prompt) {
    const dmllm_generate_params p = short_greedy();
    dmllm_generate_result *want = NULL;
    CHECK_OK(dmllm_ask(s, f->image, prompt, &p, &want));
    CHECK_MSG(r && r->text && want && strcmp(r->text, want->text) == 0, "answer differs from dmllm_ask(\"%s\")", prompt);
    dmllm_regions *parsed = NULL;
    if (r && r->text) CHECK_OK(dmllm_parse_regions(r->text, &parsed));
    CHECK(parsed && r && parsed->n_regions == r->n_regions && strcmp(parsed->message, r->message) == 0);
    dmllm_regions_free(parsed);
    dmllm_generate_result_free(want);
}

static void test_ground_detect(const fixture *f) {
    dmllm_session *s = new_session(f);
    if (!s) return;
    const dmllm_generate_params p = short_greedy();
    dmllm_regions *r = NULL;
    CHECK_OK(dmllm_ground(s, f->image, "the cat on the left", &p, &r));
    check_task_prompt(f, s, r,
                      "Please provide the bounding box coordinate of the region this sentence describes: the cat on the left");
    dmllm_regions_free(r);

    CHECK_OK(dmllm_detect(s, f->image, NULL, 0, &p, &r));
    check_task_prompt(f, s, r, "Detect all objects in the provided image.");
    dmllm_regions_free(r);

    const char *classes[] = {"cat", "dog", "traffic light"};
    CHECK_OK(dmllm_detect(s, f->image, classes, 3, &p, &r));
    check_task_prompt(f, s, r, "Detect every objects that belongs to the following categories: cat,dog,traffic light");
    dmllm_regions_free(r);

    r = (dmllm_regions *)&p; /* must be reset */
    CHECK_STATUS(dmllm_ground(s, NULL, "x", &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(r == NULL);
    CHECK_STATUS(dmllm_ground(s, f->image, NULL, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_detect(s, f->image, NULL, 2, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_detect(s, f->image, classes, -1, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    const char *with_null[] = {"cat", NULL};
    CHECK_STATUS(dmllm_detect(s, f->image, with_null, 2, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_session_errmsg(s), "class 1") != NULL);
    CHECK_STATUS(dmllm_detect(s, f->image, NULL, 0, &p, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_session_free(s);
}

/* Without tokenizer.json the text tasks refuse with DMLLM_ERR_STATE. */
static void test_without_tokenizer(const fixture *f) {
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = DMLLM_COMPUTE_F32;
    dmllm_model *model = NULL;
    CHECK_OK(dmllm_model_load(test_model_dir("bare", "one_window", NULL), &mp, &model));
    fixture bare = *f;
    bare.model = model;
    dmllm_session *s = model ? new_session(&bare) : NULL;
    dmllm_generate_result *r = NULL;
    dmllm_regions *regions = NULL;
    if (s) {
        CHECK_STATUS(dmllm_ask(s, f->image, "x", NULL, &r), DMLLM_ERR_STATE);
        CHECK(strstr(dmllm_session_errmsg(s), "tokenizer.json") != NULL);
        CHECK_STATUS(dmllm_ask(s, NULL, "x", NULL, &r), DMLLM_ERR_STATE);
        CHECK_STATUS(dmllm_detect(s, f->image, NULL, 0, NULL, &regions), DMLLM_ERR_STATE);
    }
    dmllm_session_free(s);
    dmllm_model_free(model);
}

/* The tiny model answers "ball" with <x_321> on its 320x256 sample; the box is clamped to the
 * image's edge and the text is left as the model wrote it. */
static void test_boxes_inside_image(void) {
    test_tiny_fixture tiny;
    test_tiny_fixture_open(&tiny);
    dmllm_regions *r = NULL;
    if (tiny.session && tiny.image) CHECK_OK(dmllm_detect(tiny.session, tiny.image, NULL, 0, NULL, &r));
    if (r) {
        const int width = dmllm_image_width(tiny.image), height = dmllm_image_height(tiny.image);
        CHECK(r->n_regions >= 3);
        for (int i = 0; i < r->n_regions; i++) {
            const int *b = r->regions[i]->box;
            CHECK_MSG(b[0] >= 0 && b[1] >= 0 && b[2] <= width && b[3] <= height && b[0] <= b[2] && b[1] <= b[3],
                      "region %d (%s) [%d, %d, %d, %d] leaves the %dx%d image", i, r->regions[i]->label, b[0], b[1],
                      b[2], b[3], width, height);
        }
        CHECK(strstr(r->text, "<x_321>") != NULL);
    }
    dmllm_regions_free(r);
    test_tiny_fixture_close(&tiny);
}

int main(void) {
    test_official_formats();
    test_malformed();
    test_truncations();
    test_boxes_inside_image();

    fixture f;
    test_golden_fixture_open("tasks", &f);
    if (f.model && f.image) {
        test_ask(&f);
        test_streaming(&f);
        test_ground_detect(&f);
        test_without_tokenizer(&f);
    }
    test_golden_fixture_close(&f);
    return test_finish("test_tasks");
}
