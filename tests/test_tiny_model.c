/*
 * test_tiny_model.c: the embedded tiny DenseMLLM (models/tiny, trained by tools/train/) end to end
 * through the public API on synthetic scenes of seeds never used in training (tools/train/heldout.py,
 * written by CTest fixtures): 32 fresh scenes in $DMLLM_FRESH_DIR, the committed held-out set of 24
 * in $DMLLM_HELDOUT_DIR.
 *
 * On the default compute path and the 32 fresh scenes: floors (a ceiling for AbsRel) under the
 * means that scripts/eval-tiny.py measured over four fresh draws of 32 (README.md), by the spread
 * of those draws and a margin, so that any fair draw passes and a regression fails.
 *
 * Parity with the PyTorch model on the f32 path and the held-out set: the numbers of
 * models/tiny/eval_pytorch.json (tools/train/evaluate.py on the same scenes, plain readout, depth
 * as the argmax bin) within 0.01 (0.03 for the generated boxes and what follows from them), the
 * per-token argmax maps equal on >= 99% of the tokens and the grounding boxes equal on >= 90% of
 * the scenes.
 */
#include "densemllm.h"
#include "support_model_dir.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TOKEN_PX = 32, MAX_CLASSES = 32, MAX_SCENES = 32, MAX_SCENE_TOKENS = 127 };
static const double MIN_COVERAGE = 0.08; /* tools/train/data.py: a class is a token's positive from 8% */
static const char SYMBOLS[] = "0123456789abcdefghijklmnopqrstuvwxyz";
static const int INT8_AGREEMENT_PERMILLE = 990; /* measured: 1788 of 1792 tokens (2026-12-07) */

/* Floors (a ceiling for AbsRel) under scripts/eval-tiny.py's means over seeds 9001-9004, 32 scenes
 * each, bf16 (README.md; mean, min-max there): token accuracy 0.998 (0.996-0.999), mIoU with the
 * CRF 0.811 (0.794-0.819), plain 0.734 (0.730-0.743), delta1 0.916 (0.904-0.922), AbsRel 0.077
 * (0.076-0.081), referring cIoU 0.671 (0.590-0.724), box IoU 0.822 (0.800-0.844), FG/BG given the
 * true box 0.721 (0.636-0.785). Each floor is under the lowest draw by a margin. */
static const double TOKEN_ACCURACY_FLOOR = 0.99;
static const double MIOU_CRF_FLOOR = 0.77;
static const double MIOU_PLAIN_FLOOR = 0.71;
static const double DELTA1_FLOOR = 0.89;
static const double ABS_REL_CEILING = 0.086; /* the argmax depth readout (no refinement) gives 0.090 */
static const double REFSEG_FLOOR = 0.55;
static const double BOX_IOU_FLOOR = 0.77;
static const double TRUE_BOX_FLOOR = 0.60;

typedef struct scores {
    double token_accuracy, miou, miou_evaluation, delta1, abs_rel, refseg_ciou, box_iou, true_box_ciou;
    size_t tokens_same_as_pytorch, tokens; /* or as the reference run's, when there is one */
    int boxes_same_as_pytorch, scenes;
    char token_argmax[MAX_SCENES][MAX_SCENE_TOKENS + 1]; /* per scene, the argmax class of each token as
                                                            SYMBOLS[k], row-major (as eval_pytorch.json) */
} scores;

static cJSON *read_json(const char *path) {
    size_t size = 0;
    char *text = test_read_file(path, &size);
    cJSON *json = text ? cJSON_ParseWithLength(text, size) : NULL;
    free(text);
    CHECK_MSG(json != NULL, "cannot read %s", path);
    return json;
}

/* The values of a grayscale label PNG (class indices, 0/1 masks); *w, *h its size. */
static uint16_t *load_labels(const char *path, int *w, int *h) {
    dmllm_png_values *png = NULL;
    CHECK_OK(dmllm_read_png_values(path, &png));
    if (!png) return NULL;
    uint16_t *labels = png->values;
    *w = png->width;
    *h = png->height;
    png->values = NULL; /* kept by the caller */
    dmllm_png_values_free(png);
    return labels;
}

/* NAME.depth.f32: raw little-endian float32 metres (x86-64 is little-endian). */
static float *load_depth(const char *path, size_t n) {
    size_t size = 0;
    float *depth = test_read_file(path, &size);
    CHECK_MSG(depth && size == n * sizeof(float), "%s: %zu bytes, expected %zu", path, size, n * sizeof(float));
    return depth;
}

/* Is `label` a positive of the token at (r, c): covers >= MIN_COVERAGE of its area, or the most. */
static int token_positive(const uint16_t *labels, int w, int r, int c, int label, int n_classes) {
    int counts[MAX_CLASSES] = {0};
    for (int y = r * TOKEN_PX; y < (r + 1) * TOKEN_PX; y++)
        for (int x = c * TOKEN_PX; x < (c + 1) * TOKEN_PX; x++) counts[labels[(size_t)y * w + x]]++;
    int most = 0;
    for (int k = 1; k < n_classes; k++)
        if (counts[k] > counts[most]) most = k;
    return label == most || counts[label] >= MIN_COVERAGE * TOKEN_PX * TOKEN_PX;
}

/* Referring segmentation of the scene's phrase: mask into the cIoU accumulator, box IoU summed. */
static void refer_scene(dmllm_session *s, const dmllm_image *img, const char *heldout, cJSON *scene, cJSON *want,
                        dmllm_mask_metrics *refer, dmllm_mask_metrics *true_box, scores *out) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.target.png", heldout, cJSON_GetObjectItem(scene, "name")->valuestring);
    int w = 0, h = 0;
    uint16_t *target16 = load_labels(path, &w, &h);
    uint8_t *target = malloc((size_t)w * h);
    /* Without the dense CRF that the profile turns on by default: PyTorch's evaluate.py, which
     * the f32 run is compared with, reads the masks plain. */
    dmllm_crop_params plain;
    dmllm_crop_params_init(&plain);
    plain.evaluation = 0;
    dmllm_refer_result *r = NULL;
    CHECK_OK(dmllm_refer_segment(s, img, cJSON_GetObjectItem(scene, "phrase")->valuestring, &plain, &r));
    if (target16 && target && r && r->width == w && r->height == h) {
        for (size_t j = 0; j < (size_t)w * h; j++) target[j] = (uint8_t)target16[j];
        CHECK_OK(dmllm_mask_metrics_add(refer, r->mask, target, (size_t)w * h));
        cJSON *gt = cJSON_GetObjectItem(scene, "box");
        double a[4], b[4], iou = 0.0;
        int gt_box[4];
        for (int k = 0; k < 4; k++) {
            a[k] = r->box[k];
            b[k] = cJSON_GetArrayItem(gt, k)->valuedouble;
            gt_box[k] = cJSON_GetArrayItem(gt, k)->valueint;
        }
        uint8_t *mask = malloc((size_t)w * h);
        if (mask) {
            CHECK_OK(dmllm_segment_box(s, img, gt_box, &plain, mask, (size_t)w * h));
            CHECK_OK(dmllm_mask_metrics_add(true_box, mask, target, (size_t)w * h));
        }
        free(mask);
        if (r->found) CHECK_OK(dmllm_box_iou(a, b, &iou));
        out->box_iou += iou;
        out->scenes++;
        cJSON *want_box = want ? cJSON_GetObjectItem(want, "box") : NULL;
        int same = r->found == cJSON_IsArray(want_box);
        for (int k = 0; same && r->found && k < 4; k++) same = r->box[k] == cJSON_GetArrayItem(want_box, k)->valueint;
        out->boxes_same_as_pytorch += same;
    }
    dmllm_refer_result_free(r);
    free(target);
    free(target16);
}

static dmllm_dense_result *predict(dmllm_session *s, const dmllm_image *img, dmllm_dense_task task,
                                   const char *const *classes, int n_classes, int evaluation) {
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    p.task = task;
    p.evaluation = evaluation;
    p.class_names = classes;
    p.n_classes = n_classes;
    p.keep_token_scores = 1;
    p.readout = DMLLM_READOUT_ALL; /* scores and labels over every class, as tools/train/evaluate.py */
    dmllm_dense_result *r = NULL;
    CHECK_OK(dmllm_predict_dense(s, img, &p, &r));
    return r;
}

/* Scores model on the held-out scenes; token argmaxes are compared with PyTorch's, else with those
 * of reference (when not NULL). */
static void run_scenes(dmllm_model *model, const char *heldout, cJSON *index, cJSON *pytorch, const scores *reference,
                       scores *out) {
    cJSON *classes = cJSON_GetObjectItem(index, "classes");
    const char *names[MAX_CLASSES];
    const int n_classes = cJSON_GetArraySize(classes);
    CHECK(n_classes > 0 && n_classes <= MAX_CLASSES && n_classes <= (int)sizeof SYMBOLS - 1);
    for (int k = 0; k < n_classes && k < MAX_CLASSES; k++) names[k] = cJSON_GetArrayItem(classes, k)->valuestring;

    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    dmllm_session *s = NULL;
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    dmllm_seg_metrics_params mp;
    dmllm_seg_metrics_params_init(&mp);
    mp.n_classes = n_classes;
    dmllm_seg_metrics *seg = NULL, *seg_eval = NULL;
    CHECK_OK(dmllm_seg_metrics_create(&mp, &seg));
    CHECK_OK(dmllm_seg_metrics_create(&mp, &seg_eval));
    dmllm_depth_metrics_params dp;
    dmllm_depth_metrics_params_init(&dp);
    dp.max_depth = 25.0; /* above every depth of the scenes (tools/train/evaluate.py DEPTH_VALID) */
    dmllm_depth_metrics *depth = NULL;
    CHECK_OK(dmllm_depth_metrics_create(&dp, &depth));
    dmllm_mask_metrics *refer = NULL, *true_box = NULL;
    CHECK_OK(dmllm_mask_metrics_create(&refer));
    CHECK_OK(dmllm_mask_metrics_create(&true_box));
    if (!s || !seg || !seg_eval || !depth || !refer || !true_box) return;

    size_t token_hits = 0;
    memset(out, 0, sizeof *out);
    cJSON *scene;
    int i = 0;
    cJSON_ArrayForEach(scene, cJSON_GetObjectItem(index, "scenes")) {
        const char *name = cJSON_GetObjectItem(scene, "name")->valuestring;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.png", heldout, name);
        dmllm_image *img = NULL;
        CHECK_OK(dmllm_image_load_file(path, &img));
        snprintf(path, sizeof path, "%s/%s.labels.png", heldout, name);
        int w = 0, h = 0;
        uint16_t *labels = load_labels(path, &w, &h);
        snprintf(path, sizeof path, "%s/%s.depth.f32", heldout, name);
        float *gt_depth = load_depth(path, (size_t)w * h);
        dmllm_dense_result *sem = img ? predict(s, img, DMLLM_TASK_SEMANTIC, names, n_classes, 0) : NULL;
        dmllm_dense_result *dep = img ? predict(s, img, DMLLM_TASK_DEPTH, NULL, 0, 0) : NULL;
        dmllm_dense_result *sem_eval = img && !pytorch ? predict(s, img, DMLLM_TASK_SEMANTIC, names, n_classes, 1) : NULL;
        if (sem_eval && labels && sem_eval->width == w && sem_eval->height == h)
            CHECK_OK(dmllm_seg_metrics_add(seg_eval, sem_eval->labels, labels, (size_t)w * h));
        dmllm_dense_result_free(sem_eval);
        if (labels && gt_depth && sem && dep && sem->width == w && sem->height == h) {
            const char *want = pytorch ? cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(pytorch, "per_scene"), i),
                                                             "token_argmax")->valuestring
                               : reference && i < MAX_SCENES ? reference->token_argmax[i]
                                                             : NULL;
            CHECK(i < MAX_SCENES && sem->tokens_h * sem->tokens_w <= MAX_SCENE_TOKENS);
            for (int r = 0; r < sem->tokens_h; r++)
                for (int c = 0; c < sem->tokens_w; c++) {
                    const float *t = sem->token_scores + ((size_t)r * sem->tokens_w + c) * sem->n_scores;
                    int best = 0;
                    for (int k = 1; k < sem->n_scores; k++)
                        if (t[k] > t[best]) best = k;
                    token_hits += (size_t)token_positive(labels, w, r, c, best, n_classes);
                    const size_t t_index = (size_t)r * sem->tokens_w + c;
                    out->tokens++;
                    if (want && t_index < strlen(want)) out->tokens_same_as_pytorch += want[t_index] == SYMBOLS[best];
                    if (i < MAX_SCENES && t_index < MAX_SCENE_TOKENS) out->token_argmax[i][t_index] = SYMBOLS[best];
                }
            CHECK_OK(dmllm_seg_metrics_add(seg, sem->labels, labels, (size_t)w * h));
            CHECK_OK(dmllm_depth_metrics_add(depth, dep->depth_m, w, h, gt_depth, w, h));
            refer_scene(s, img, heldout, scene, pytorch ? cJSON_GetArrayItem(cJSON_GetObjectItem(pytorch, "per_scene"), i)
                                                        : NULL, refer, true_box, out);
        }
        dmllm_dense_result_free(sem);
        dmllm_dense_result_free(dep);
        free(labels);
        free(gt_depth);
        dmllm_image_free(img);
        i++;
    }
    dmllm_seg_result *seg_result = NULL;
    CHECK_OK(dmllm_seg_metrics_result(seg, &seg_result));
    dmllm_depth_scores depth_scores = {.struct_size = sizeof depth_scores};
    CHECK_OK(dmllm_depth_metrics_result(depth, &depth_scores));
    out->token_accuracy = out->tokens ? (double)token_hits / out->tokens : 0.0;
    out->miou = seg_result ? seg_result->miou : 0.0;
    out->delta1 = depth_scores.delta1;
    out->abs_rel = depth_scores.abs_rel;
    dmllm_mask_scores mask_scores = {.struct_size = sizeof mask_scores};
    CHECK_OK(dmllm_mask_metrics_result(refer, &mask_scores));
    out->refseg_ciou = mask_scores.ciou;
    CHECK_OK(dmllm_mask_metrics_result(true_box, &mask_scores));
    out->true_box_ciou = mask_scores.ciou;
    dmllm_mask_metrics_free(true_box);
    if (!pytorch) {
        dmllm_seg_result *eval_result = NULL;
        CHECK_OK(dmllm_seg_metrics_result(seg_eval, &eval_result));
        out->miou_evaluation = eval_result ? eval_result->miou : 0.0;
        dmllm_seg_result_free(eval_result);
    }
    dmllm_seg_metrics_free(seg_eval);
    out->box_iou = out->scenes ? out->box_iou / out->scenes : 0.0;
    dmllm_mask_metrics_free(refer);
    dmllm_seg_result_free(seg_result);
    dmllm_seg_metrics_free(seg);
    dmllm_depth_metrics_free(depth);
    dmllm_session_free(s);
}

/* Open-set segmentation by detection on a few scenes: every discovered class is one of the model's
 * classes, labels index them, and some pixels are segmented. */
static void check_openset(dmllm_model *model, const char *heldout, cJSON *index) {
    cJSON *classes = cJSON_GetObjectItem(index, "classes");
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    dmllm_session *s = NULL;
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    size_t labelled = 0, pixels = 0;
    for (int i = 0; s && i < 4; i++) {
        cJSON *scene = cJSON_GetArrayItem(cJSON_GetObjectItem(index, "scenes"), i);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.png", heldout, cJSON_GetObjectItem(scene, "name")->valuestring);
        dmllm_image *img = NULL;
        CHECK_OK(dmllm_image_load_file(path, &img));
        dmllm_openset_result *r = NULL;
        if (img) CHECK_OK(dmllm_openset_segment(s, img, NULL, 0, NULL, &r));
        for (int k = 0; r && k < r->n_names; k++) {
            int known = 0;
            for (int c = 0; c < cJSON_GetArraySize(classes); c++)
                known |= !strcmp(r->names[k], cJSON_GetArrayItem(classes, c)->valuestring);
            CHECK_MSG(known, "open-set class \"%s\" is not a class of the model", r->names[k]);
        }
        size_t out_of_range = 0;
        for (size_t j = 0; r && j < (size_t)r->width * r->height; j++) {
            out_of_range += r->labels[j] > r->n_names;
            labelled += r->labels[j] != 0;
            pixels++;
        }
        CHECK_MSG(out_of_range == 0, "%zu labels beyond the %d names", out_of_range, r ? r->n_names : 0);
        /* label_names: the background, then the names (issue 21, item 3). */
        CHECK(!r || (r->n_labels == r->n_names + 1 && r->label_names && !strcmp(r->label_names[0], "background")));
        for (int k = 0; r && r->label_names && k < r->n_names; k++)
            CHECK(r->label_names[k + 1] && !strcmp(r->label_names[k + 1], r->names[k]));
        dmllm_openset_result_free(r);
        dmllm_image_free(img);
    }
    printf("open-set: %.1f%% of the pixels of 4 scenes segmented\n", pixels ? 100.0 * labelled / pixels : 0.0);
    CHECK_MSG(labelled > 0, "open-set segmentation labelled no pixel");
    dmllm_session_free(s);
}

static double number(cJSON *json, const char *key) {
    cJSON *item = cJSON_GetObjectItem(json, key);
    CHECK_MSG(cJSON_IsNumber(item), "eval_pytorch.json has no number %s", key);
    return cJSON_IsNumber(item) ? item->valuedouble : NAN;
}

/* int8 weights (W8A8) against the default path on the same scenes: the bf16 floors still hold, and
 * the token argmax of the semantic readout agrees on nearly every token. */
static void check_int8(const char *model_dir, const char *scenes_dir, cJSON *index, const char *reference_name,
                       const scores *reference) {
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.weights = DMLLM_WEIGHTS_INT8;
    dmllm_model *model = NULL;
    const dmllm_status status = dmllm_model_load(model_dir, &mp, &model);
    if (status == DMLLM_ERR_UNSUPPORTED) {
        printf("int8 weights not supported on this CPU, skipped: %s\n", dmllm_last_error());
        return;
    }
    CHECK_OK(status);
    if (!model || !reference->tokens) {
        dmllm_model_free(model);
        return;
    }
    static scores got;
    run_scenes(model, scenes_dir, index, NULL, reference, &got);
    printf("%-12s token accuracy %.4f  mIoU %.4f (evaluation protocol %.4f)  delta1 %.4f  refseg cIoU %.4f  "
           "box IoU %.4f; token argmax equal to %s on %zu of %zu\n", "int8", got.token_accuracy, got.miou,
           got.miou_evaluation, got.delta1, got.refseg_ciou, got.box_iou, reference_name, got.tokens_same_as_pytorch,
           got.tokens);
    CHECK(got.tokens == reference->tokens);
    CHECK_MSG(got.tokens_same_as_pytorch * 1000 >= got.tokens * INT8_AGREEMENT_PERMILLE,
              "int8 token argmax equal to %s on %zu of %zu", reference_name, got.tokens_same_as_pytorch, got.tokens);
    CHECK_MSG(got.token_accuracy >= TOKEN_ACCURACY_FLOOR, "int8 token accuracy %.4f < %.3f", got.token_accuracy,
              TOKEN_ACCURACY_FLOOR);
    CHECK_MSG(got.miou_evaluation >= MIOU_CRF_FLOOR, "int8 mIoU (softmax + CRF) %.4f < %.3f", got.miou_evaluation,
              MIOU_CRF_FLOOR);
    CHECK_MSG(got.delta1 >= DELTA1_FLOOR, "int8 delta1 %.4f < %.3f", got.delta1, DELTA1_FLOOR);
    dmllm_model_free(model);
}

/* The tiny model read out as tools/train/evaluate.py reads it (depth: the argmax bin, report 9.3),
 * for the comparison with eval_pytorch.json; NULL after a failed CHECK. */
static const char *argmax_depth_model(const char *model_dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/readout_profile.json", model_dir);
    cJSON *profile = read_json(path);
    if (!profile) return NULL;
    cJSON_ReplaceItemInObject(profile, "depth_refine_bins", cJSON_CreateNumber(0));
    char *text = cJSON_Print(profile);
    const char *dir = text ? test_model_variant("tiny_argmax_depth", model_dir, text) : NULL;
    CHECK_MSG(dir != NULL, "cannot write the argmax-depth variant of %s", model_dir);
    free(text);
    cJSON_Delete(profile);
    return dir;
}

int main(void) {
    const char *heldout = getenv("DMLLM_HELDOUT_DIR"), *fresh = getenv("DMLLM_FRESH_DIR");
    CHECK_MSG(heldout && fresh, "DMLLM_HELDOUT_DIR or DMLLM_FRESH_DIR is not set (CTest fixtures write the scenes)");
    if (!heldout || !fresh) return test_finish("test_tiny_model");
    char path[1024];
    snprintf(path, sizeof path, "%s/index.json", heldout);
    cJSON *index = read_json(path);
    snprintf(path, sizeof path, "%s/index.json", fresh);
    cJSON *fresh_index = read_json(path);
    const char *model_dir = test_source_path("models/tiny");
    snprintf(path, sizeof path, "%s/eval_pytorch.json", model_dir);
    cJSON *pytorch = read_json(path);
    if (!index || !fresh_index || !pytorch) return test_finish("test_tiny_model");
    CHECK_MSG(cJSON_GetArraySize(cJSON_GetObjectItem(index, "scenes")) ==
                  cJSON_GetArraySize(cJSON_GetObjectItem(pytorch, "per_scene")),
              "the held-out set and eval_pytorch.json disagree on the number of scenes");

    dmllm_model *model = test_load_model(model_dir, DMLLM_COMPUTE_AUTO);
    dmllm_model_info info = {.struct_size = sizeof info};
    static scores got, automatic; /* automatic: the default path's, the int8 run's reference */
    if (model) {
        CHECK_OK(dmllm_model_get_info(model, &info));
        run_scenes(model, fresh, fresh_index, NULL, NULL, &got);
        automatic = got;
        printf("%-12s %d fresh scenes: tokens %zu  token accuracy %.4f  mIoU %.4f (evaluation protocol %.4f)  "
               "delta1 %.4f  AbsRel %.4f\n%-12s refseg cIoU %.4f  box IoU %.4f  FG/BG cIoU given the true box %.4f\n",
               info.compute, got.scenes, got.tokens, got.token_accuracy, got.miou, got.miou_evaluation, got.delta1,
               got.abs_rel, "", got.refseg_ciou, got.box_iou, got.true_box_ciou);
        CHECK_MSG(got.scenes >= 32, "%d fresh scenes, expected at least 32", got.scenes);
        CHECK_MSG(got.token_accuracy >= TOKEN_ACCURACY_FLOOR, "token accuracy %.4f < %.3f", got.token_accuracy,
                  TOKEN_ACCURACY_FLOOR);
        CHECK_MSG(got.miou_evaluation >= MIOU_CRF_FLOOR, "mIoU (softmax + CRF) %.4f < %.3f", got.miou_evaluation,
                  MIOU_CRF_FLOOR);
        CHECK_MSG(got.miou >= MIOU_PLAIN_FLOOR, "plain-readout mIoU %.4f < %.3f", got.miou, MIOU_PLAIN_FLOOR);
        CHECK_MSG(got.delta1 >= DELTA1_FLOOR, "delta1 %.4f < %.3f", got.delta1, DELTA1_FLOOR);
        CHECK_MSG(got.abs_rel <= ABS_REL_CEILING, "AbsRel %.4f > %.3f", got.abs_rel, ABS_REL_CEILING);
        CHECK_MSG(got.refseg_ciou >= REFSEG_FLOOR, "referring cIoU %.4f < %.3f", got.refseg_ciou, REFSEG_FLOOR);
        CHECK_MSG(got.box_iou >= BOX_IOU_FLOOR, "grounding box IoU %.4f < %.3f", got.box_iou, BOX_IOU_FLOOR);
        CHECK_MSG(got.true_box_ciou >= TRUE_BOX_FLOOR, "FG/BG cIoU with the true box %.4f < %.3f", got.true_box_ciou,
                  TRUE_BOX_FLOOR);
        check_openset(model, heldout, index);
        dmllm_model_free(model);
    }

    const char *argmax_dir = argmax_depth_model(model_dir);
    model = argmax_dir ? test_load_model(argmax_dir, DMLLM_COMPUTE_F32) : NULL;
    if (model) {
        run_scenes(model, heldout, index, pytorch, NULL, &got);
        const double want_acc = number(pytorch, "token_accuracy"), want_miou = number(pytorch, "miou");
        const double want_d1 = number(pytorch, "depth_delta1");
        const double want_ciou = number(pytorch, "refseg_ciou"), want_box = number(pytorch, "grounding_box_iou");
        printf("%-12s token accuracy %.4f (PyTorch %.4f)  mIoU %.4f (%.4f)  delta1 %.4f (%.4f)  "
               "token argmax equal to PyTorch on %zu of %zu\n", "onednn-f32", got.token_accuracy, want_acc, got.miou,
               want_miou, got.delta1, want_d1, got.tokens_same_as_pytorch, got.tokens);
        CHECK_MSG(fabs(got.token_accuracy - want_acc) <= 0.01, "token accuracy %.4f vs PyTorch %.4f", got.token_accuracy,
                  want_acc);
        CHECK_MSG(fabs(got.miou - want_miou) <= 0.01, "mIoU %.4f vs PyTorch %.4f", got.miou, want_miou);
        CHECK_MSG(fabs(got.delta1 - want_d1) <= 0.01, "delta1 %.4f vs PyTorch %.4f", got.delta1, want_d1);
        CHECK_MSG(got.tokens_same_as_pytorch * 100 >= got.tokens * 99, "token argmax equal on %zu of %zu",
                  got.tokens_same_as_pytorch, got.tokens);
        printf("%-12s refseg cIoU %.4f (PyTorch %.4f)  box IoU %.4f (%.4f)  boxes equal to PyTorch on %d of %d\n",
               "onednn-f32", got.refseg_ciou, want_ciou, got.box_iou, want_box, got.boxes_same_as_pytorch, got.scenes);
        CHECK_MSG(fabs(got.refseg_ciou - want_ciou) <= 0.03, "cIoU %.4f vs PyTorch %.4f", got.refseg_ciou, want_ciou);
        CHECK_MSG(fabs(got.box_iou - want_box) <= 0.03, "box IoU %.4f vs PyTorch %.4f", got.box_iou, want_box);
        CHECK_MSG(got.boxes_same_as_pytorch * 10 >= got.scenes * 9, "boxes equal on %d of %d scenes",
                  got.boxes_same_as_pytorch, got.scenes);
        dmllm_model_free(model);
    }
    check_int8(model_dir, fresh, fresh_index, info.compute, &automatic);
    cJSON_Delete(index);
    cJSON_Delete(fresh_index);
    cJSON_Delete(pytorch);
    return test_finish("test_tiny_model");
}
