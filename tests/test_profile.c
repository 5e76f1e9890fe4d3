/*
 * test_profile.c: the readout profile (lib/profile.c): youtu_vl defaults, overrides from JSON,
 * depth bin -> metres, malformed files rejected with the key named, and a closed class vocabulary
 * ("classes": models/tiny lists its 14) warning about a semantic query for any other class.
 */
#include "profile.h"
#include "support_model_dir.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static dmllm_status parse(const char *json, dmllm_readout_profile *p) {
    dmllm_profile_defaults(p);
    return dmllm_profile_parse(json, strlen(json), "test.json", p);
}

static void test_defaults(void) {
    dmllm_readout_profile p;
    dmllm_profile_defaults(&p);
    CHECK(p.alignment == DMLLM_ALIGN_PREVIOUS && !p.first_subtoken_only && p.depth_bins == 1000);
    CHECK(!p.interpolate_probabilities && p.semantic_readout == DMLLM_READOUT_NAMED);
    CHECK(p.crf); /* the demo refines with the dense CRF */
    CHECK(p.depth_refine_bins == 0); /* report 9.3: the argmax bin */
    CHECK(p.softmax_temperature == 0.2f && p.sigmoid_scale == 0.25f && p.background_level == 0.5f);
    CHECK(strcmp(p.depth_token_format, "<custom_%d>") == 0 && strcmp(p.fg_token, "<FG>") == 0);
    const dmllm_depth_quantisation *nyu = dmllm_profile_depth(&p, "nyuv2"), *open = dmllm_profile_depth(&p, "open_world");
    CHECK(nyu && open && dmllm_profile_depth(&p, "ddad") && dmllm_profile_depth(&p, "cityscapes"));
    CHECK(!dmllm_profile_depth(&p, "kitti"));
    if (nyu && open) {
        CHECK(dmllm_depth_bin_metres(&p, nyu, 1) == 0.0 && fabs(dmllm_depth_bin_metres(&p, nyu, 1000) - 10.0) < 1e-12);
        CHECK(fabs(dmllm_depth_bin_metres(&p, nyu, 500.5) - 5.0) < 1e-12);
        CHECK(fabs(dmllm_depth_bin_metres(&p, open, 1) - 0.5) < 1e-12);
        CHECK(fabs(dmllm_depth_bin_metres(&p, open, 1000) - 100.0) < 1e-9);
        /* log-uniform: the middle bin is the geometric mean of the range, sqrt(0.5 * 100) */
        CHECK(fabs(dmllm_depth_bin_metres(&p, open, 500.5) - sqrt(50.0)) < 1e-9);
    }
}

static void test_overrides(void) {
    dmllm_readout_profile p;
    CHECK_OK(parse("{\"alignment\": \"own\", \"class_name_prefix\": \" \", \"class_score\": \"first\","
                   " \"depth_bins\": 64, \"depth_first_bin\": 0, \"depth_token_format\": \"<d%d>\","
                   " \"depth_profiles\": {\"room\": {\"kind\": \"linear\", \"min\": 1, \"max\": 9}},"
                   " \"depth_profile\": \"room\", \"prompts\": {\"depth\": \"How far?\"}, \"_comment\": 1,"
                   " \"semantic_readout\": \"all\"}",
                   &p));
    CHECK(p.semantic_readout == DMLLM_READOUT_ALL);
    CHECK(p.alignment == DMLLM_ALIGN_OWN && p.first_subtoken_only && strcmp(p.class_name_prefix, " ") == 0);
    CHECK(p.depth_bins == 64 && p.depth_first_bin == 0 && strcmp(p.depth_token_format, "<d%d>") == 0);
    CHECK(strcmp(p.prompt_depth, "How far?") == 0 && strcmp(p.prompt_fgbg, "Segment the core target.") == 0);
    CHECK(strcmp(p.prompt_openset, "Segment all objects in this image.") == 0);
    CHECK(p.crop_padding == 1.2f && p.crop_short_side == 1280 && p.crop_box_px == 1);
    const dmllm_depth_quantisation *room = dmllm_profile_depth(&p, "room");
    CHECK(room && p.n_depth_profiles == 5);
    if (room) CHECK(fabs(dmllm_depth_bin_metres(&p, room, 63) - 9.0) < 1e-12 && dmllm_depth_bin_metres(&p, room, 0) == 1.0);
    CHECK_OK(parse("{\"interpolation\": \"probabilities\"}", &p));
    CHECK(p.interpolate_probabilities);
    CHECK_OK(parse("{\"interpolation\": \"logits\"}", &p));
    CHECK(!p.interpolate_probabilities);
    CHECK_OK(parse("{\"crf\": false}", &p));
    CHECK(!p.crf);
    CHECK_OK(parse("{\"depth_refine_bins\": 12, \"depth_evaluation\": {\"layout\": \"image_first\","
                   " \"min_depth\": 0.001, \"max_depth\": 25}}", &p));
    CHECK(p.depth_refine_bins == 12);
    CHECK_OK(parse("{\"prompts\": {\"openset\": \"\"}, \"crop_short_side\": 256, \"crop_box_px\": 2, \"crop_padding\": 1.5}", &p));
    CHECK(p.prompt_openset[0] == '\0' && p.crop_short_side == 256 && p.crop_box_px == 2 && p.crop_padding == 1.5f);
    /* Redefining a built-in replaces it instead of adding one. */
    CHECK_OK(parse("{\"depth_profiles\": {\"nyuv2\": {\"kind\": \"log\", \"min\": 0.1, \"max\": 10}}}", &p));
    CHECK(p.n_depth_profiles == 4 && dmllm_profile_depth(&p, "nyuv2")->scale == DMLLM_DEPTH_LOG);
}

static void test_malformed(void) {
    static const struct {
        const char *json, *named;
    } cases[] = {
        {"", "not valid JSON"},
        {"[1, 2]", "top level"},
        {"{\"alignment\": \"left\"}", "\"alignment\""},
        {"{\"aligment\": \"own\"}", "\"aligment\""},
        {"{\"class_score\": 3}", "\"class_score\""},
        {"{\"interpolation\": \"sigmoid\"}", "\"interpolation\""},
        {"{\"semantic_readout\": \"prompt\"}", "\"semantic_readout\""},
        {"{\"softmax_temperature\": 0}", "\"softmax_temperature\""},
        {"{\"background_level\": 1}", "\"background_level\""},
        {"{\"depth_bins\": 1}", "\"depth_bins\""},
        {"{\"depth_bins\": 2.5}", "\"depth_bins\""},
        {"{\"depth_token_format\": \"<custom_%s>\"}", "\"depth_token_format\""},
        {"{\"depth_token_format\": \"<custom>\"}", "\"depth_token_format\""},
        {"{\"depth_token_format\": \"<%d_%d>\"}", "\"depth_token_format\""},
        {"{\"depth_profile\": \"mars\"}", "\"mars\""},
        {"{\"depth_profiles\": {\"x\": {\"kind\": \"log\", \"min\": 0, \"max\": 9}}}", "\"x\""},
        {"{\"depth_profiles\": {\"x\": {\"kind\": \"linear\", \"min\": 5, \"max\": 1}}}", "\"x\""},
        {"{\"depth_profiles\": {\"x\": {\"kind\": \"linear\", \"min\": 0}}}", "\"x\""},
        {"{\"depth_profiles\": {\"x\": {\"kind\": \"cubic\", \"min\": 0, \"max\": 1}}}", "\"kind\""},
        {"{\"prompts\": {\"depthh\": \"x\"}}", "\"depthh\""},
        {"{\"crop_short_side\": 16}", "\"crop_short_side\""},
        {"{\"crop_padding\": 0.5}", "\"crop_padding\""},
        {"{\"crop_box_px\": -1}", "\"crop_box_px\""},
        {"{\"crf\": 1}", "\"crf\""},
        {"{\"classes\": \"sky\"}", "\"classes\""},
        {"{\"classes\": []}", "\"classes\""},
        {"{\"classes\": [\"sky\", 3]}", "\"classes\""},
        {"{\"classes\": [\"sky\", \"\"]}", "\"classes\""},
        {"{\"depth_refine_bins\": -1}", "\"depth_refine_bins\""},
        {"{\"depth_evaluation\": {\"layout\": \"sideways\"}}", "\"layout\""},
        {"{\"depth_evaluation\": {\"max_depth\": \"far\"}}", "\"max_depth\""},
        {"{\"depth_evaluation\": {\"min_depth\": 5, \"max_depth\": 1}}", "\"depth_evaluation\""},
        {"{\"depth_evaluation\": {\"range\": [1, 2]}}", "\"range\""},
        {"{\"depth_evaluation\": 10}", "\"depth_evaluation\""},
        {"{\"fg_token\": \"" "0123456789012345678901234567890123456789012345678901234567890\"}", "\"fg_token\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dmllm_readout_profile p;
        CHECK_STATUS(parse(cases[i].json, &p), DMLLM_ERR_FORMAT);
        CHECK_MSG(strstr(dmllm_last_error(), cases[i].named) && strstr(dmllm_last_error(), "test.json"),
                  "case %zu: \"%s\" does not name %s", i, dmllm_last_error(), cases[i].named);
    }
}

static void test_load(void) {
    dmllm_readout_profile p;
    const char *dir = test_temp_dir();
    CHECK_OK(dmllm_profile_load(dir, &p)); /* no file: the defaults */
    CHECK(p.alignment == DMLLM_ALIGN_PREVIOUS);
    char path[1200];
    snprintf(path, sizeof path, "%s/readout_profile.json", dir);
    CHECK(test_write_file(path, "{\"alignment\": \"own\"}", 20) == 0);
    CHECK_OK(dmllm_profile_load(dir, &p));
    CHECK(p.alignment == DMLLM_ALIGN_OWN);
    CHECK(test_write_file(path, "{\"alignment\": ", 14) == 0);
    CHECK_STATUS(dmllm_profile_load(dir, &p), DMLLM_ERR_FORMAT);
    CHECK(strstr(dmllm_last_error(), "readout_profile.json") != NULL);
}

static void test_known_classes(void) {
    dmllm_readout_profile p;
    CHECK_OK(parse("{}", &p));
    CHECK(p.n_known_classes == 0 && dmllm_profile_knows_class(&p, "anything at all"));
    CHECK_OK(parse("{\"classes\": [\"sky\", \"traffic cone\"]}", &p));
    CHECK(p.n_known_classes == 2 && dmllm_profile_knows_class(&p, "sky") &&
          dmllm_profile_knows_class(&p, "traffic cone"));
    CHECK(!dmllm_profile_knows_class(&p, "traffic") && !dmllm_profile_knows_class(&p, "Sky") &&
          !dmllm_profile_knows_class(&p, "dog"));

    char json[8000] = "{\"classes\": [";
    for (int k = 0; k < 500; k++) /* 500 x 9 bytes > 4096 */
        snprintf(json + strlen(json), sizeof json - strlen(json), "%s\"class%03d\"", k ? ", " : "", k);
    strcat(json, "]}");
    CHECK_STATUS(parse(json, &p), DMLLM_ERR_FORMAT);
    CHECK(strstr(dmllm_last_error(), "\"classes\"") && strstr(dmllm_last_error(), "4096 bytes"));
}

static char warnings[2048];
static void keep_warnings(dmllm_log_level level, const char *message, void *user_data) {
    (void)user_data;
    if (level == DMLLM_LOG_WARN)
        snprintf(warnings + strlen(warnings), sizeof warnings - strlen(warnings), "%s\n", message);
}

static void test_unknown_class_warning(void) {
    test_tiny_fixture tiny;
    test_tiny_fixture_open(&tiny);
    dmllm_session *s = tiny.session;
    dmllm_image *image = tiny.image;
    if (!s || !image) goto done;
    dmllm_log_set(keep_warnings, NULL);
    const char *const known[] = {"sky", "traffic cone"}, *const unknown[] = {"sky", "dog", "catz"};
    dmllm_dense_params params;
    dmllm_dense_params_init(&params);
    params.evaluation = 0;
    params.class_names = known;
    params.n_classes = 2;
    dmllm_dense_result *r = NULL;
    CHECK_OK(dmllm_predict_dense(s, image, &params, &r));
    dmllm_dense_result_free(r);
    CHECK_MSG(warnings[0] == '\0', "known classes warned: %s", warnings);
    params.class_names = unknown;
    params.n_classes = 3;
    CHECK_OK(dmllm_predict_dense(s, image, &params, &r));
    dmllm_dense_result_free(r);
    CHECK_MSG(strstr(warnings, "2 class names") && strstr(warnings, "\"dog\", \"catz\"") &&
                  strstr(warnings, "14") && !strstr(warnings, "\"sky\""),
              "warning: %s", warnings);
    dmllm_log_set(NULL, NULL);
done:
    test_tiny_fixture_close(&tiny);
}

int main(void) {
    test_defaults();
    test_overrides();
    test_malformed();
    test_load();
    test_known_classes();
    test_unknown_class_warning();
    return test_finish("test_profile");
}
