/*
 * test_generate.c: lib/generate.c.
 *  - the logits processing on hand-made logits with hand-computed results: Hugging Face's
 *    repetition penalty, temperature, top-k, top-p (alone and in HF's order), the draw, the PRNG
 *    (values from an independent Python transcription of xoshiro256** / splitmix64);
 *  - coordinate rescaling (model-spec 4.9) as numbers and as token ids;
 *  - dmllm_generate on the golden checkpoints (tests/fixtures/golden, no tokenizer: ids only):
 *    20 greedy ids, plain and after a repetition penalty, equal the PyTorch reference's; stop ids,
 *    max tokens, context full, streaming callback stop, abort with roll-back, seeded sampling, bad
 *    params.
 */
#include "generate.h"
#include "safetensors.h"
#include "support_model_dir.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int near(double a, double b) { return fabs(a - b) <= 1e-6 * (1.0 + fabs(b)); }

/* ---- logits processing ----------------------------------------------------------------------- */

static void test_rng(void) {
    dmllm_rng a, b;
    dmllm_rng_seed(&a, 0);
    CHECK(dmllm_rng_next(&a) == 0x99ec5f36cb75f2b4ull);
    CHECK(dmllm_rng_next(&a) == 0xbf6e1f784956452aull);
    CHECK(dmllm_rng_next(&a) == 0x1a5f849d4933e6e0ull);
    dmllm_rng_seed(&a, 42);
    CHECK(dmllm_rng_next(&a) == 0x15780b2e0c2ec716ull);
    dmllm_rng_seed(&a, 42);
    CHECK(near(dmllm_rng_uniform(&a), 0.08386297105988216));
    dmllm_rng_seed(&a, 7);
    dmllm_rng_seed(&b, 7);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        const double u = dmllm_rng_uniform(&a);
        same += u == dmllm_rng_uniform(&b) && u >= 0.0 && u < 1.0;
    }
    CHECK(same == 1000);
}

static void test_repetition_penalty(void) {
    float logits[6] = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f};
    /* id 1 and 0 repeat (penalised once), 99 and -3 are outside the vocabulary */
    const int32_t history[] = {0, 1, 1, 4, 5, 0, 99, -3};
    uint8_t seen[6] = {0};
    dmllm_repetition_penalty(logits, 6, history, N(history), 2.0f, seen);
    const float want[6] = {1.0f, -2.0f, 0.5f, 3.0f, -4.0f, 0.0f};
    for (int i = 0; i < 6; i++) CHECK_MSG(logits[i] == want[i], "logit %d: %g, want %g", i, logits[i], want[i]);
    int clean = 1;
    for (int i = 0; i < 6; i++) clean &= seen[i] == 0;
    CHECK(clean);
}

/* Ids whose logit survived the warpers, as a bit mask. */
static unsigned kept_mask(const float *logits, int n) {
    unsigned mask = 0;
    for (int i = 0; i < n; i++)
        if (logits[i] != -INFINITY) mask |= 1u << i;
    return mask;
}

static void test_warpers(void) {
    dmllm_scored_id scratch[8];
    float t[3] = {1.0f, 2.0f, 3.0f};
    dmllm_warp_logits(t, 3, 0.5f, 0, 1.0f, scratch);
    CHECK(t[0] == 2.0f && t[1] == 4.0f && t[2] == 6.0f);

    /* top-k keeps every logit >= the k-th largest, ties included */
    const float base_k[5] = {1.0f, 3.0f, 2.0f, 3.0f, 0.5f};
    const struct { int k; unsigned mask; } cases_k[] = {{1, 0x0a}, {2, 0x0a}, {3, 0x0e}, {5, 0x1f}, {9, 0x1f}};
    for (int c = 0; c < N(cases_k); c++) {
        float l[5];
        memcpy(l, base_k, sizeof l);
        dmllm_warp_logits(l, 5, 1.0f, cases_k[c].k, 1.0f, scratch);
        CHECK_MSG(kept_mask(l, 5) == cases_k[c].mask, "top_k %d kept 0x%x", cases_k[c].k, kept_mask(l, 5));
        CHECK(l[1] == 3.0f); /* survivors are unchanged */
    }

    /* top-p over p = {0.3, 0.05, 0.5, 0.15}: ascending cumulative 0.05, 0.20, 0.50, 1.00; ids with
     * cumulative <= 1 - top_p go */
    const double p[4] = {0.3, 0.05, 0.5, 0.15};
    const struct { float temperature; int k; float top_p; unsigned mask; } cases_p[] = {
        {1.0f, 0, 0.70f, 0x5},  /* drop 0.05 (0.05) and 0.15 (0.20 <= 0.30) */
        {1.0f, 0, 0.85f, 0xd},  /* drop 0.05 only (0.05 <= 0.15 < 0.20) */
        {1.0f, 0, 0.001f, 0x4}, /* the official setting: only the most likely */
        {1.0f, 0, 1.0f, 0xf},
        /* temperature first: at T = 2 p ~ sqrt(p) = {0.2936, 0.1198, 0.3790, 0.2076}; cumulative
         * 0.1198, 0.3274: at top_p 0.7 only 0.1198 <= 0.3 goes */
        {2.0f, 0, 0.70f, 0xd},
        /* top-k first: k = 3 drops 0.05; renormalised {0.3158, -, 0.5263, 0.1579}; at top_p 0.8
         * 0.1579 <= 0.2 goes, 0.4737 stays */
        {1.0f, 3, 0.80f, 0x5},
    };
    for (int c = 0; c < N(cases_p); c++) {
        float l[4];
        for (int i = 0; i < 4; i++) l[i] = (float)log(p[i]);
        dmllm_warp_logits(l, 4, cases_p[c].temperature, cases_p[c].k, cases_p[c].top_p, scratch);
        CHECK_MSG(kept_mask(l, 4) == cases_p[c].mask, "case %d kept 0x%x, want 0x%x", c, kept_mask(l, 4),
                  cases_p[c].mask);
    }
}

static void test_draw(void) {
    float l[3] = {(float)log(0.2), (float)log(0.5), (float)log(0.3)};
    /* cumulative 0.2, 0.7, 1.0 */
    const struct { double u; int32_t id; } draws[] = {{0.0, 0}, {0.1, 0}, {0.25, 1}, {0.69, 1}, {0.71, 2}, {0.9999, 2}};
    for (int i = 0; i < N(draws); i++)
        CHECK_MSG(dmllm_sample_index(l, 3, draws[i].u) == draws[i].id, "u = %g", draws[i].u);
    float masked[3] = {-INFINITY, 0.0f, 0.0f};
    CHECK(dmllm_sample_index(masked, 3, 0.0) == 1);
    CHECK(dmllm_sample_index(masked, 3, 0.5) == 2);
    CHECK(dmllm_argmax(masked, 3) == 1); /* first of equal maxima */

    /* seeded draws: the same sequence twice, frequencies near p over 4000 draws */
    int counts[3] = {0}, same = 1;
    dmllm_rng a, b;
    dmllm_rng_seed(&a, 1234);
    dmllm_rng_seed(&b, 1234);
    for (int i = 0; i < 4000; i++) {
        const int32_t x = dmllm_sample_index(l, 3, dmllm_rng_uniform(&a));
        same &= x == dmllm_sample_index(l, 3, dmllm_rng_uniform(&b));
        counts[x]++;
    }
    CHECK(same);
    CHECK_MSG(fabs(counts[0] / 4000.0 - 0.2) < 0.03 && fabs(counts[1] / 4000.0 - 0.5) < 0.03 &&
                  fabs(counts[2] / 4000.0 - 0.3) < 0.03,
              "frequencies %d %d %d", counts[0], counts[1], counts[2]);
}

/* ---- coordinates ----------------------------------------------------------------------------- */

/* The fixture tokenizer plus <x_0>, <y_0>, ..., <x_9>, <y_9> interleaved from id 700 (model-spec 1.6
 * layout), written to the temp dir. */
static const char *coordinate_tokenizer(void) {
    size_t size = 0;
    char *text = test_read_file(test_source_path("tests/fixtures/tokenizer/tokenizer.json"), &size);
    cJSON *root = text ? cJSON_ParseWithLength(text, size) : NULL;
    free(text);
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (int k = 0; k < 20; k++) {
        char content[16];
        snprintf(content, sizeof content, "<%c_%d>", k % 2 ? 'y' : 'x', k / 2);
        cJSON *token = cJSON_CreateObject();
        cJSON_AddNumberToObject(token, "id", 700 + k);
        cJSON_AddStringToObject(token, "content", content);
        cJSON_AddBoolToObject(token, "single_word", 0);
        cJSON_AddBoolToObject(token, "lstrip", 0);
        cJSON_AddBoolToObject(token, "rstrip", 0);
        cJSON_AddBoolToObject(token, "normalized", 0);
        cJSON_AddBoolToObject(token, "special", 0);
        cJSON_AddItemToArray(added, token);
    }
    char *json = cJSON_PrintUnformatted(root);
    static char path[1024];
    snprintf(path, sizeof path, "%s/coordinates.json", test_temp_dir());
    CHECK(json && test_write_file(path, json, strlen(json)) == 0);
    free(json);
    cJSON_Delete(root);
    return path;
}

static void test_coordinates(void) {
    int k = -1;
    CHECK_OK(dmllm_coordinate_to_original(100, 1000, 512, &k));
    CHECK(k == 195); /* 195.3125 */
    CHECK_OK(dmllm_coordinate_to_original(1, 5, 2, &k));
    CHECK(k == 2); /* 2.5: half to even */
    CHECK_OK(dmllm_coordinate_to_original(3, 5, 2, &k));
    CHECK(k == 8); /* 7.5: half to even */
    CHECK_OK(dmllm_coordinate_to_original(2047, 4000, 1024, &k));
    CHECK(k == 2047); /* clamped */
    CHECK_STATUS(dmllm_coordinate_to_original(-1, 5, 2, &k), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_coordinate_to_original(2048, 5, 2, &k), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_coordinate_to_original(1, 5, 0, &k), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_coordinate_to_original(1, 5, 2, NULL), DMLLM_ERR_INVALID_ARGUMENT);

    dmllm_tokenizer *t = NULL;
    CHECK_OK(dmllm_tokenizer_load(coordinate_tokenizer(), &t));
    if (!t) return;
    const dmllm_image_grid grid = {.resized_w = 6, .original_w = 9, .resized_h = 8, .original_h = 4};
    CHECK(dmllm_rescale_coordinate_id(t, 700 + 2 * 4, &grid) == 700 + 2 * 6);     /* <x_4> -> <x_6> */
    CHECK(dmllm_rescale_coordinate_id(t, 700 + 2 * 5 + 1, &grid) == 700 + 2 * 2 + 1); /* <y_5> -> 2.5 -> <y_2> */
    CHECK(dmllm_rescale_coordinate_id(t, 700 + 2 * 7, &grid) == 700 + 2 * 7);     /* 10.5 -> <x_10>, absent: unchanged */
    CHECK(dmllm_rescale_coordinate_id(t, 700, &grid) == 700);                      /* <x_0> -> <x_0> */
    CHECK(dmllm_rescale_coordinate_id(t, 606, &grid) == 606);                      /* <ref> */
    CHECK(dmllm_rescale_coordinate_id(t, 65, &grid) == 65);                        /* a byte */
    CHECK(dmllm_rescale_coordinate_id(t, 100000, &grid) == 100000);                /* not an id */
    dmllm_tokenizer_free(t);
}

/* ---- on the golden checkpoints --------------------------------------------------------------- */

typedef struct golden {
    dmllm_safetensors *file;
    const dmllm_tensor *image_rgb, *max_patches, *resize_mode, *input_ids, *greedy_ids, *penalty, *penalty_ids;
} golden;

static int open_golden(const char *name, golden *g) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/golden.safetensors", test_source_path("tests/fixtures/golden"), name);
    memset(g, 0, sizeof *g);
    CHECK_OK(dmllm_safetensors_open(path, &g->file));
    if (!g->file) return -1;
    g->image_rgb = dmllm_safetensors_find(g->file, "image_rgb");
    g->max_patches = dmllm_safetensors_find(g->file, "max_num_patches");
    g->resize_mode = dmllm_safetensors_find(g->file, "resize_mode");
    g->input_ids = dmllm_safetensors_find(g->file, "input_ids");
    g->greedy_ids = dmllm_safetensors_find(g->file, "greedy_ids");
    g->penalty = dmllm_safetensors_find(g->file, "repetition_penalty");
    g->penalty_ids = dmllm_safetensors_find(g->file, "penalty_ids");
    const int ok = g->image_rgb && g->max_patches && g->resize_mode && g->input_ids && g->greedy_ids && g->penalty &&
                   g->penalty_ids;
    CHECK_MSG(ok, "golden %s incomplete", name);
    return ok ? 0 : -1;
}

/* A session with the golden's image encoded (nothing evaluated yet). */
static dmllm_session *golden_session(dmllm_model *model, const golden *g, int n_ctx, dmllm_progress_callback progress,
                                     void *user_data) {
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.max_num_patches = *(const int32_t *)g->max_patches->data;
    sp.resize_mode = *(const int32_t *)g->resize_mode->data == 1 ? DMLLM_RESIZE_PILLOW : DMLLM_RESIZE_HF;
    sp.n_threads = 2;
    sp.n_ctx = n_ctx;
    sp.progress = progress;
    sp.progress_user_data = user_data;
    dmllm_session *s = NULL;
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_from_rgb(g->image_rgb->data, (int)g->image_rgb->shape[1], (int)g->image_rgb->shape[0], 0, &image));
    if (s) CHECK_OK(dmllm_session_encode_image(s, image));
    dmllm_image_free(image);
    return s;
}

static const int32_t never_stop = -1;

/* Plain greedy parameters: no penalty, no stop id the model can produce. */
static dmllm_generate_params greedy_params(int max_new_tokens) {
    dmllm_generate_params p;
    dmllm_generate_params_init(&p);
    p.max_new_tokens = max_new_tokens;
    p.repetition_penalty = 1.0f;
    p.stop_ids = &never_stop;
    p.n_stop_ids = 1;
    return p;
}

/* Generates from the golden prompt and compares with the reference's ids. */
static void check_run(dmllm_model *model, const golden *g, const char *name, const char *what,
                      const dmllm_tensor *want_ids, float penalty) {
    const int n_prompt = (int)g->input_ids->shape[0], steps = (int)want_ids->shape[0];
    const int32_t *want = want_ids->data;
    dmllm_session *s = golden_session(model, g, 0, NULL, NULL);
    dmllm_generate_result *r = NULL;
    dmllm_generate_params p = greedy_params(steps);
    p.repetition_penalty = penalty;
    if (s) CHECK_OK(dmllm_generate(s, g->input_ids->data, n_prompt, &p, &r));
    if (r) {
        int same = 0;
        while (same < r->n_ids && same < steps && r->ids[same] == want[same]) same++;
        CHECK_MSG(same == steps && r->n_ids == steps, "%s %s: ids differ from the reference from step %d", name, what, same);
        CHECK(r->stop_reason == DMLLM_STOP_MAX_TOKENS && r->stop_id == -1 && r->n_prompt == n_prompt);
        CHECK(r->text == NULL); /* no tokenizer */
        CHECK(dmllm_session_n_past(s) == n_prompt + steps - 1);
        printf("%s: %s: %d of %d ids identical to the reference\n", name, what, same, steps);
    }
    dmllm_generate_result_free(r);
    dmllm_session_free(s);
}

/* Plain greedy (the reference's greedy_ids) and greedy after HF's repetition penalty, whose tokens
 * vary, so every step also checks that the right token was fed back (penalty_ids). */
static void test_golden_runs(const char *name) {
    golden g;
    if (open_golden(name, &g) != 0) return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", test_source_path("tests/fixtures/golden"), name);
    dmllm_model *model = test_load_model(dir, DMLLM_COMPUTE_F32);
    if (model) {
        check_run(model, &g, name, "greedy", g.greedy_ids, 1.0f);
        const float penalty = *(const float *)g.penalty->data;
        CHECK(penalty > 1.0f);
        check_run(model, &g, name, "repetition penalty", g.penalty_ids, penalty);
    }
    dmllm_model_free(model);
    dmllm_safetensors_close(g.file);
}

typedef struct stream_log {
    int calls, stop_after;
    int32_t ids[16];
} stream_log;

static int on_token(int32_t id, const char *text, size_t length, void *user_data) {
    stream_log *log = user_data;
    CHECK(text != NULL && length == 0 && text[0] == '\0'); /* no tokenizer: ids only */
    if (log->calls < 16) log->ids[log->calls] = id;
    log->calls++;
    return log->stop_after > 0 && log->calls >= log->stop_after;
}

static int abort_at_generate(const char *stage, int done, int total, void *user_data) {
    (void)total;
    (void)user_data;
    return strcmp(stage, "generate") == 0 && done >= 2;
}

static void test_stops(dmllm_model *model, const golden *g) {
    const int n_prompt = (int)g->input_ids->shape[0];
    const int32_t *prompt = g->input_ids->data, *want = g->greedy_ids->data;
    dmllm_generate_result *r = NULL;
    dmllm_session *s = golden_session(model, g, 0, NULL, NULL);
    if (!s) return;

    /* a stop id ends generation before it is output */
    dmllm_generate_params p = greedy_params(5);
    p.stop_ids = &want[0];
    CHECK_OK(dmllm_generate(s, prompt, n_prompt, &p, &r));
    CHECK(r && r->n_ids == 0 && r->stop_reason == DMLLM_STOP_TOKEN && r->stop_id == want[0]);
    CHECK(dmllm_session_n_past(s) == n_prompt);
    dmllm_generate_result_free(r);

    /* continue from the evaluated context (n_prompt = 0), one token */
    p = greedy_params(1);
    CHECK_OK(dmllm_generate(s, NULL, 0, &p, &r));
    CHECK(r && r->n_ids == 1 && r->ids[0] == want[0] && r->stop_reason == DMLLM_STOP_MAX_TOKENS && r->n_prompt == 0);
    CHECK(dmllm_session_n_past(s) == n_prompt);
    dmllm_generate_result_free(r);

    /* streaming: every id is handed over in order; a non-zero return stops */
    CHECK_OK(dmllm_session_truncate(s, 0));
    stream_log log = {.stop_after = 3};
    p = greedy_params(5);
    p.on_token = on_token;
    p.user_data = &log;
    CHECK_OK(dmllm_generate(s, prompt, n_prompt, &p, &r));
    CHECK(r && r->n_ids == 3 && r->stop_reason == DMLLM_STOP_CALLBACK && log.calls == 3);
    for (int i = 0; r && i < 3; i++) CHECK(log.ids[i] == want[i] && r->ids[i] == want[i]);
    CHECK(dmllm_session_n_past(s) == n_prompt + 2);
    dmllm_generate_result_free(r);

    /* the model's eos is the default stop id: the golden never generates it */
    p = greedy_params(4);
    p.stop_ids = NULL;
    p.n_stop_ids = 0;
    CHECK_OK(dmllm_session_truncate(s, 0));
    CHECK_OK(dmllm_generate(s, prompt, n_prompt, &p, &r));
    CHECK(r && r->n_ids == 4 && r->stop_reason == DMLLM_STOP_MAX_TOKENS);
    dmllm_generate_result_free(r);
    dmllm_session_free(s);

    /* a full context stops generation, keeping what was generated */
    s = golden_session(model, g, n_prompt + 2, NULL, NULL);
    p = greedy_params(10);
    if (s) CHECK_OK(dmllm_generate(s, prompt, n_prompt, &p, &r));
    CHECK(r && r->n_ids == 3 && r->stop_reason == DMLLM_STOP_CONTEXT_FULL);
    dmllm_generate_result_free(r);
    dmllm_session_free(s);

    /* abort through the progress callback: an error, nothing returned, the context rolled back */
    s = golden_session(model, g, 0, abort_at_generate, NULL);
    p = greedy_params(10);
    r = (dmllm_generate_result *)&p; /* must be reset to NULL */
    if (s) CHECK_STATUS(dmllm_generate(s, prompt, n_prompt, &p, &r), DMLLM_ERR_ABORTED);
    CHECK(r == NULL);
    CHECK(s && dmllm_session_n_past(s) == 0);
    CHECK(s && strstr(dmllm_session_errmsg(s), "generate") != NULL);
    dmllm_session_free(s);
}

/* A list eos_token_id in config.json (as transformers allows): every id in it is a default stop
 * id, not only the first. The one_window checkpoint with eos_token_id = [281, first greedy id]
 * stops at once. */
static void test_eos_list(const golden *g) {
    const int32_t *want = g->greedy_ids->data;
    const char *dir = test_model_dir("eos_list", "one_window", NULL);
    if (!dir) return;
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t size = 0;
    char *text = test_read_file(path, &size);
    cJSON *config = text ? cJSON_ParseWithLength(text, size) : NULL;
    free(text);
    CHECK(config != NULL);
    if (!config) return;
    const int first_eos = cJSON_GetObjectItem(config, "eos_token_id")->valueint;
    CHECK(first_eos != want[0]);
    const int ids[2] = {first_eos, want[0]};
    cJSON_ReplaceItemInObject(config, "eos_token_id", cJSON_CreateIntArray(ids, 2));
    char *edited = cJSON_PrintUnformatted(config);
    cJSON_Delete(config);
    CHECK(unlink(path) == 0 && test_write_file(path, edited, strlen(edited)) == 0);
    free(edited);
    dmllm_model *model = test_load_model(dir, DMLLM_COMPUTE_F32);
    dmllm_session *s = model ? golden_session(model, g, 0, NULL, NULL) : NULL;
    dmllm_generate_params p = greedy_params(4);
    p.stop_ids = NULL;
    p.n_stop_ids = 0;
    dmllm_generate_result *r = NULL;
    if (s) CHECK_OK(dmllm_generate(s, g->input_ids->data, (int)g->input_ids->shape[0], &p, &r));
    CHECK_MSG(r && r->n_ids == 0 && r->stop_reason == DMLLM_STOP_TOKEN && r->stop_id == want[0],
              "eos_token_id [%d, %d]: %d ids, stop reason %d, stop id %d", ids[0], ids[1], r ? r->n_ids : -1,
              r ? (int)r->stop_reason : -1, r ? r->stop_id : -1);
    dmllm_generate_result_free(r);
    dmllm_session_free(s);
    dmllm_model_free(model);
}

static void test_sampling_on_golden(dmllm_model *model, const golden *g) {
    const int n_prompt = (int)g->input_ids->shape[0];
    dmllm_generate_params p = greedy_params(8);
    p.do_sample = 1;
    p.temperature = 5.0f; /* flat enough that draws differ between seeds */
    p.top_k = 50;
    p.top_p = 0.95f;
    int32_t runs[3][8];
    const uint64_t seeds[3] = {11, 11, 12};
    for (int run = 0; run < 3; run++) {
        p.seed = seeds[run];
        dmllm_session *s = golden_session(model, g, 0, NULL, NULL);
        dmllm_generate_result *r = NULL;
        if (s) CHECK_OK(dmllm_generate(s, g->input_ids->data, n_prompt, &p, &r));
        CHECK(r && r->n_ids == 8);
        for (int i = 0; i < 8; i++) runs[run][i] = r && i < r->n_ids ? r->ids[i] : -1;
        dmllm_generate_result_free(r);
        dmllm_session_free(s);
    }
    CHECK_MSG(memcmp(runs[0], runs[1], sizeof runs[0]) == 0, "the same seed gave different ids");
    CHECK_MSG(memcmp(runs[0], runs[2], sizeof runs[0]) != 0, "seeds 11 and 12 gave the same 8 ids");
}

static void test_bad_params(dmllm_model *model, const golden *g) {
    dmllm_session *s = golden_session(model, g, 0, NULL, NULL);
    if (!s) return;
    const int32_t *prompt = g->input_ids->data;
    const int n_prompt = (int)g->input_ids->shape[0];
    dmllm_generate_result *r = NULL;
    dmllm_generate_params p;
    const struct { const char *field; int which; } bad[] = {
        {"max_new_tokens", 0}, {"temperature", 1}, {"top_p", 2}, {"top_p", 3}, {"repetition_penalty", 4},
        {"stop_ids", 5}, {"top_k", 6}, {"struct_size", 7},
    };
    for (int i = 0; i < N(bad); i++) {
        dmllm_generate_params_init(&p);
        switch (bad[i].which) {
        case 0: p.max_new_tokens = 0; break;
        case 1: p.temperature = 0.0f; break;
        case 2: p.top_p = 0.0f; break;
        case 3: p.top_p = 1.5f; break;
        case 4: p.repetition_penalty = NAN; break;
        case 5: p.n_stop_ids = 2; break;
        case 6: p.top_k = -1; break;
        case 7: p.struct_size = 2; break;
        }
        CHECK_STATUS(dmllm_generate(s, prompt, n_prompt, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
        CHECK_MSG(strstr(dmllm_session_errmsg(s), bad[i].field) != NULL, "message \"%s\" does not name %s",
                  dmllm_session_errmsg(s), bad[i].field);
        CHECK(r == NULL && dmllm_session_n_past(s) == 0);
    }
    CHECK_STATUS(dmllm_generate(s, NULL, 3, NULL, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_generate(s, NULL, 0, NULL, &r), DMLLM_ERR_STATE); /* nothing evaluated: no logits */
    CHECK_STATUS(dmllm_generate(s, prompt, n_prompt, NULL, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_generate(NULL, prompt, n_prompt, NULL, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_generate_text(s, "hello", NULL, &r), DMLLM_ERR_STATE); /* no tokenizer */
    CHECK(strstr(dmllm_session_errmsg(s), "tokenizer.json") != NULL);
    int32_t bad_id = 1 << 30;
    CHECK_STATUS(dmllm_generate(s, &bad_id, 1, NULL, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(dmllm_session_n_past(s) == 0);
    dmllm_generate_params_init(&p);
    CHECK(p.struct_size == dmllm_generate_params_sizeof() && p.max_new_tokens == 4096 && p.do_sample == 0 &&
          p.repetition_penalty == 1.05f && p.top_p == 1.0f && p.skip_special == 1 && p.rescale_coordinates == 1);
    dmllm_generate_result_free(NULL);
    dmllm_session_free(s);
}

int main(void) {
    test_rng();
    test_repetition_penalty();
    test_warpers();
    test_draw();
    test_coordinates();
    const char *cases[] = {"one_window", "ragged", "bf16"};
    for (int i = 0; i < N(cases); i++) test_golden_runs(cases[i]);

    golden g;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/one_window", test_source_path("tests/fixtures/golden"));
    dmllm_model *model = test_load_model(dir, DMLLM_COMPUTE_F32);
    if (model && open_golden("one_window", &g) == 0) {
        test_stops(model, &g);
        test_eos_list(&g);
        test_sampling_on_golden(model, &g);
        test_bad_params(model, &g);
        dmllm_safetensors_close(g.file);
    }
    dmllm_model_free(model);
    return test_finish("test_generate");
}
