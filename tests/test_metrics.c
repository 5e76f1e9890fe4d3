/*
 * test_metrics.c: the evaluation metrics against every test vector of metrics.md (A, B segmentation;
 * C1-C3, E depth; D referring), plus crops, resizing, clamping, empty and all-ignored inputs, and
 * the error of every bad argument.
 */
#include "densemllm.h"
#include "metrics.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* metrics.md tolerances: relative 1e-9 for toy vectors, 1e-6 for the real-data vector E. */
#define TOY_RTOL 1e-9
#define REAL_RTOL 1e-6

#define CHECK_CLOSE(got, want, rtol)                                                                  \
    CHECK_MSG(fabs((double)(got) - (double)(want)) <= (rtol) * fabs((double)(want)) + 1e-15,          \
              "%s = %.17g, want %.17g", #got, (double)(got), (double)(want))

/* ---- segmentation ---------------------------------------------------------------------------- */

static const uint16_t vector_a_gt_raw[16] = {0, 1, 1, 2, 3, 3, 2, 2, 1, 1, 3, 0, 2, 2, 2, 3};
static const uint16_t vector_a_pred[16] = {1, 0, 0, 1, 2, 3, 1, 1, 0, 2, 2, 2, 1, 1, 3, 3};
static const uint16_t vector_b_gt_raw[4] = {4, 4, 4, 1};
static const uint16_t vector_b_pred[4] = {3, 3, 0, 0};

static dmllm_seg_metrics *seg_create(int n_classes, int reduce_zero_label) {
    dmllm_seg_metrics_params p;
    dmllm_seg_metrics_params_init(&p);
    p.n_classes = n_classes;
    p.reduce_zero_label = reduce_zero_label;
    dmllm_seg_metrics *m = NULL;
    CHECK_OK(dmllm_seg_metrics_create(&p, &m));
    return m;
}

static void check_vector_a(const dmllm_seg_result *r) {
    static const int64_t intersect[5] = {3, 5, 2, 0, 0}, uni[5] = {4, 6, 5, 3, 0};
    static const int64_t pred[5] = {3, 5, 3, 3, 0}, label[5] = {4, 6, 4, 0, 0};
    for (int c = 0; c < 5; c++) {
        CHECK_MSG(r->area_intersect[c] == intersect[c] && r->area_union[c] == uni[c] && r->area_pred[c] == pred[c] &&
                      r->area_label[c] == label[c],
                  "class %d areas", c);
    }
    CHECK_CLOSE(r->iou[0], 0.75, TOY_RTOL);
    CHECK_CLOSE(r->iou[1], 5.0 / 6.0, TOY_RTOL);
    CHECK_CLOSE(r->iou[2], 0.4, TOY_RTOL);
    CHECK(r->iou[3] == 0.0);
    CHECK(isnan(r->iou[4]));
    CHECK_CLOSE(r->acc[0], 0.75, TOY_RTOL);
    CHECK_CLOSE(r->acc[1], 5.0 / 6.0, TOY_RTOL);
    CHECK_CLOSE(r->acc[2], 0.5, TOY_RTOL);
    CHECK(isnan(r->acc[3]) && isnan(r->acc[4]));
    CHECK(r->n_iou_classes == 4 && r->n_acc_classes == 3);
    CHECK_CLOSE(r->miou, 0.49583333333333335, TOY_RTOL);
    CHECK_CLOSE(r->macc, 0.6944444444444445, TOY_RTOL);
    CHECK_CLOSE(r->aacc, 0.7142857142857143, TOY_RTOL);
}

static double seg_miou_of(const uint16_t *pred, const uint16_t *gt, size_t n) {
    dmllm_seg_metrics *m = seg_create(5, 1);
    dmllm_seg_result *r = NULL;
    CHECK_OK(dmllm_seg_metrics_add(m, pred, gt, n));
    CHECK_OK(dmllm_seg_metrics_result(m, &r));
    double miou = r ? r->miou : NAN;
    dmllm_seg_result_free(r);
    dmllm_seg_metrics_free(m);
    return miou;
}

static void test_seg_vectors(void) {
    dmllm_seg_metrics *m = seg_create(5, 1);
    dmllm_seg_result *r = NULL;
    CHECK_OK(dmllm_seg_metrics_add(m, vector_a_pred, vector_a_gt_raw, 16));
    CHECK_OK(dmllm_seg_metrics_result(m, &r));
    if (r) {
        CHECK(r->n_classes == 5 && r->n_images == 1);
        check_vector_a(r);
    }
    dmllm_seg_result_free(r);

    /* Vector B: areas are summed over the two images before dividing. */
    CHECK_OK(dmllm_seg_metrics_add(m, vector_b_pred, vector_b_gt_raw, 4));
    CHECK_OK(dmllm_seg_metrics_result(m, &r));
    if (r) {
        CHECK(r->n_images == 2);
        const double iou[4] = {2.0 / 3.0, 5.0 / 6.0, 0.4, 1.0 / 3.0};
        for (int c = 0; c < 4; c++) CHECK_CLOSE(r->iou[c], iou[c], TOY_RTOL);
        CHECK(isnan(r->iou[4]));
        CHECK_CLOSE(r->miou, 0.5583333333333333, TOY_RTOL);
        CHECK_CLOSE(r->macc, 0.7, TOY_RTOL);
        CHECK_CLOSE(r->aacc, 0.7222222222222222, TOY_RTOL);
    }
    dmllm_seg_result_free(r);
    dmllm_seg_metrics_free(m);

    /* The wrong convention metrics.md warns about, to show the two differ as it says. */
    double per_image =
        0.5 * (seg_miou_of(vector_a_pred, vector_a_gt_raw, 16) + seg_miou_of(vector_b_pred, vector_b_gt_raw, 4));
    CHECK_CLOSE(per_image, 0.5395833333, 1e-9);

    /* The already-reduced GT of vector A without reduce_zero_label gives the same numbers. */
    const uint16_t gt[16] = {255, 0, 0, 1, 2, 2, 1, 1, 0, 0, 2, 255, 1, 1, 1, 2};
    m = seg_create(5, 0);
    CHECK_OK(dmllm_seg_metrics_add(m, vector_a_pred, gt, 16));
    CHECK_OK(dmllm_seg_metrics_result(m, &r));
    if (r) check_vector_a(r);
    dmllm_seg_result_free(r);
    dmllm_seg_metrics_free(m);
}

static void test_seg_edges(void) {
    dmllm_seg_metrics *m = seg_create(5, 1);
    dmllm_seg_result *r = (dmllm_seg_result *)&m; /* a failing call must overwrite it with NULL */
    /* Empty accumulator, then one made only of ignored pixels (raw 0 and raw 255). */
    CHECK_STATUS(dmllm_seg_metrics_result(m, &r), DMLLM_ERR_STATE);
    CHECK(r == NULL);
    const uint16_t ignored_gt[4] = {0, 255, 0, 255}, any_pred[4] = {1, 2, 3, 4};
    CHECK_OK(dmllm_seg_metrics_add(m, any_pred, ignored_gt, 4));
    CHECK_STATUS(dmllm_seg_metrics_result(m, &r), DMLLM_ERR_STATE);
    CHECK(strstr(dmllm_last_error(), "no labelled") != NULL);

    /* The all-ignored image changes nothing but the image count. */
    CHECK_OK(dmllm_seg_metrics_add(m, vector_a_pred, vector_a_gt_raw, 16));
    /* A GT value outside the classes fails naming the pixel and leaves the sums unchanged. */
    const uint16_t bad_gt[4] = {1, 2, 3, 6}; /* raw 6 -> class 5 of 5 */
    CHECK_STATUS(dmllm_seg_metrics_add(m, any_pred, bad_gt, 4), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "GT value 6 at pixel 3") != NULL, "%s", dmllm_last_error());
    CHECK_OK(dmllm_seg_metrics_result(m, &r));
    if (r) {
        CHECK(r->n_images == 2);
        check_vector_a(r);
    }
    dmllm_seg_result_free(r);
    dmllm_seg_metrics_free(m);

    /* Predictions outside the classes (a background label, 255) count as misses only. */
    m = seg_create(2, 0);
    const uint16_t gt[4] = {0, 0, 1, 255}, pred[4] = {2, 0, 255, 1};
    CHECK_OK(dmllm_seg_metrics_add(m, pred, gt, 4));
    CHECK_OK(dmllm_seg_metrics_result(m, &r));
    if (r) {
        CHECK(r->area_pred[0] == 1 && r->area_pred[1] == 0 && r->area_label[0] == 2 && r->area_label[1] == 1);
        CHECK_CLOSE(r->iou[0], 0.5, TOY_RTOL);
        CHECK(r->iou[1] == 0.0 && r->n_iou_classes == 2);
        CHECK_CLOSE(r->miou, 0.25, TOY_RTOL);
        CHECK_CLOSE(r->aacc, 1.0 / 3.0, TOY_RTOL);
    }
    dmllm_seg_result_free(r);

    /* Bad arguments. */
    CHECK_STATUS(dmllm_seg_metrics_add(m, pred, gt, 0), DMLLM_ERR_SHAPE);
    CHECK_STATUS(dmllm_seg_metrics_add(m, NULL, gt, 4), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_seg_metrics_add(NULL, pred, gt, 4), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_seg_metrics_result(m, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    const uint16_t bad[2] = {0, 2}; /* 2 is not a class of 2 and not 255 */
    CHECK_STATUS(dmllm_seg_metrics_add(m, pred, bad, 2), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "pixel 1") != NULL, "%s", dmllm_last_error());
    dmllm_seg_metrics_free(m);

    dmllm_seg_metrics_params p;
    dmllm_seg_metrics_params_init(&p);
    CHECK(p.struct_size == sizeof p && dmllm_seg_metrics_params_sizeof() == sizeof p);
    CHECK(p.n_classes == 0 && p.ignore_index == 255 && p.reduce_zero_label == 0);
    m = (dmllm_seg_metrics *)&p;
    CHECK_STATUS(dmllm_seg_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT); /* n_classes unset */
    CHECK(m == NULL);
    p.n_classes = 300; /* ignore_index 255 would be a class */
    CHECK_STATUS(dmllm_seg_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "ignore_index 255") != NULL);
    p.ignore_index = 70000;
    CHECK_STATUS(dmllm_seg_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    p.n_classes = 150, p.ignore_index = 255, p.struct_size = 2;
    CHECK_STATUS(dmllm_seg_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_seg_metrics_create(NULL, &m), DMLLM_ERR_INVALID_ARGUMENT);
    p.struct_size = sizeof p;
    CHECK_STATUS(dmllm_seg_metrics_create(&p, NULL), DMLLM_ERR_INVALID_ARGUMENT);

    /* ADE20K: raw 150 is class 149, raw 151 is an error, raw 255 stays ignored. */
    p.reduce_zero_label = 1;
    CHECK_OK(dmllm_seg_metrics_create(&p, &m));
    const uint16_t ade_gt[3] = {150, 255, 151}, ade_pred[3] = {149, 3, 0};
    CHECK_STATUS(dmllm_seg_metrics_add(m, ade_pred, ade_gt, 3), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "GT value 151 at pixel 2") != NULL, "%s", dmllm_last_error());
    CHECK_OK(dmllm_seg_metrics_add(m, ade_pred, ade_gt, 2));
    CHECK_OK(dmllm_seg_metrics_result(m, &r));
    if (r) CHECK(r->n_iou_classes == 1 && r->iou[149] == 1.0 && r->miou == 1.0 && r->aacc == 1.0);
    dmllm_seg_result_free(r);
    dmllm_seg_metrics_free(m);
    dmllm_seg_metrics_free(NULL);
    dmllm_seg_result_free(NULL);
}

/* ---- depth ----------------------------------------------------------------------------------- */

typedef struct depth_expect {
    double d1, d2, d3, abs_rel, sq_rel, rmse, rmse_log, log10, silog;
} depth_expect;

static const depth_expect vector_c1 = {0.5, 1.0, 1.0, 0.15, 0.1125, 0.6344288770224761, 0.17868413621319162,
                                       0.06306151261827958, 17.549034293019155};
static const depth_expect vector_c2 = {0.25, 0.5, 0.5, 0.5866747747747748, 0.898527627027027, 1.693672193784854,
                                       4.997442692374334, 1.5597857512006925, 358.6677942748227};

static void check_depth(const dmllm_depth_scores *s, const depth_expect *e, double rtol) {
    CHECK_CLOSE(s->delta1, e->d1, rtol);
    CHECK_CLOSE(s->delta2, e->d2, rtol);
    CHECK_CLOSE(s->delta3, e->d3, rtol);
    CHECK_CLOSE(s->abs_rel, e->abs_rel, rtol);
    CHECK_CLOSE(s->sq_rel, e->sq_rel, rtol);
    CHECK_CLOSE(s->rmse, e->rmse, rtol);
    CHECK_CLOSE(s->rmse_log, e->rmse_log, rtol);
    CHECK_CLOSE(s->log10, e->log10, rtol);
    CHECK_CLOSE(s->silog, e->silog, rtol);
}

static dmllm_depth_metrics *depth_create(double min_depth, double max_depth, dmllm_depth_crop crop) {
    dmllm_depth_metrics_params p;
    dmllm_depth_metrics_params_init(&p);
    p.min_depth = min_depth, p.max_depth = max_depth, p.crop = crop;
    dmllm_depth_metrics *m = NULL;
    CHECK_OK(dmllm_depth_metrics_create(&p, &m));
    return m;
}

static dmllm_status depth_result(const dmllm_depth_metrics *m, dmllm_depth_scores *s) {
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
    return dmllm_depth_metrics_result(m, s);
}

static const double c1_gt[6] = {1, 2, 4, 0, 12, 5}, c1_pred[6] = {1.1, 1.6, 5.2, 3, 3, 5};
static const double c2_gt[4] = {0.5, 8, 2.5, 9.99};

static void test_depth_vectors(void) {
    const double c2_pred[4] = {0, 11, NAN, 9};
    dmllm_depth_metrics *c1 = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    dmllm_depth_metrics *c2 = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    dmllm_depth_metrics *c3 = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    dmllm_depth_scores s;
    CHECK_OK(dmllm_depth_metrics_add_f64(c1, c1_pred, 3, 2, c1_gt, 3, 2));
    CHECK_OK(depth_result(c1, &s));
    CHECK(s.n_images == 1 && s.n_pixels == 4 && s.n_images_empty == 0);
    check_depth(&s, &vector_c1, TOY_RTOL);
    CHECK_OK(dmllm_depth_metrics_add_f64(c2, c2_pred, 2, 2, c2_gt, 2, 2));
    CHECK_OK(depth_result(c2, &s));
    CHECK(s.n_pixels == 4);
    check_depth(&s, &vector_c2, TOY_RTOL);

    /* C3: the dataset value is the mean of the per-image values. */
    CHECK_OK(dmllm_depth_metrics_add_f64(c3, c1_pred, 3, 2, c1_gt, 3, 2));
    CHECK_OK(dmllm_depth_metrics_add_f64(c3, c2_pred, 2, 2, c2_gt, 2, 2));
    CHECK_OK(depth_result(c3, &s));
    CHECK(s.n_images == 2 && s.n_pixels == 8);
    CHECK_CLOSE(s.delta1, 0.375, TOY_RTOL);
    CHECK_CLOSE(s.abs_rel, 0.3683373873873874, TOY_RTOL);
    CHECK_CLOSE(s.rmse, 1.164050535403665, TOY_RTOL);
    const double *a = &vector_c1.d1, *b = &vector_c2.d1;
    depth_expect mean;
    double *m = &mean.d1;
    for (int k = 0; k < 9; k++) m[k] = 0.5 * (a[k] + b[k]);
    check_depth(&s, &mean, TOY_RTOL);
    dmllm_depth_metrics_free(c1);
    dmllm_depth_metrics_free(c2);
    dmllm_depth_metrics_free(c3);
}

/* ../testdata/images/motorcycle_depth_m.npy: a v1.0 header of exactly 128 bytes, then 500 x 741
 * little-endian float32 (PROVENANCE.md). */
static float *load_motorcycle_depth(void) {
    size_t size = 0;
    unsigned char *bytes = test_read_file(test_shared_path("testdata/images/motorcycle_depth_m.npy"), &size);
    const size_t n = 500 * 741;
    if (!bytes || size != 128 + n * 4 || memcmp(bytes, "\x93NUMPY", 6) != 0 ||
        !strstr((const char *)bytes + 10, "'<f4'") || !strstr((const char *)bytes + 10, "(500, 741)")) {
        CHECK_MSG(0, "motorcycle_depth_m.npy missing or not the expected (500, 741) <f4 array");
        free(bytes);
        return NULL;
    }
    float *depth = malloc(n * sizeof *depth);
    if (depth) memcpy(depth, bytes + 128, n * sizeof *depth);
    free(bytes);
    return depth;
}

static void test_depth_real_data(void) {
    float *gt = load_motorcycle_depth(); /* [500][741] metres */
    if (!gt) return;
    const int w = 741, h = 500;
    const size_t n = (size_t)w * h;
    float *pred = malloc(n * sizeof *pred);          /* [500][741] */
    double *gt64 = malloc(n * sizeof *gt64);         /* [500][741] */
    double *pred64 = malloc(n * sizeof *pred64);     /* [500][741] */
    CHECK(pred && gt64 && pred64);
    if (!pred || !gt64 || !pred64) goto done;

    /* Vector E: a constant 3 m prediction. */
    for (size_t i = 0; i < n; i++) pred[i] = 3.0f;
    dmllm_depth_metrics *m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    dmllm_depth_scores s;
    CHECK_OK(dmllm_depth_metrics_add(m, pred, w, h, gt, w, h));
    CHECK_OK(depth_result(m, &s));
    CHECK_MSG(s.n_pixels == 343274, "n_pixels %lld", (long long)s.n_pixels);
    const depth_expect e = {0.4541619813909588, 0.9571974574246812, 1.0, 0.23529277937110646, 0.2032501080980242,
                            0.8465017920211416, 0.2591015479071293, 0.10357878105566454, 25.889088462223743};
    check_depth(&s, &e, REAL_RTOL);
    dmllm_depth_metrics_free(m);

    /* pred = 1.1 gt: a pure scale error, which SILog does not see. */
    for (size_t i = 0; i < n; i++) gt64[i] = gt[i], pred64[i] = 1.1 * gt64[i];
    m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    CHECK_OK(dmllm_depth_metrics_add_f64(m, pred64, w, h, gt64, w, h));
    CHECK_OK(depth_result(m, &s));
    CHECK_CLOSE(s.abs_rel, 0.1, TOY_RTOL);
    CHECK(s.delta1 == 1.0);
    CHECK_CLOSE(s.rmse_log, log(1.1), TOY_RTOL);
    CHECK_MSG(s.silog < 1e-9, "silog %g", s.silog);
    dmllm_depth_metrics_free(m);
done:
    free(gt);
    free(pred);
    free(gt64);
    free(pred64);
}

static void test_depth_crops(void) {
    int y0, y1, x0, x1;
    CHECK_OK(dmllm_depth_crop_rect(DMLLM_DEPTH_CROP_GARG, 1242, 375, &y0, &y1, &x0, &x1));
    CHECK(y0 == 153 && y1 == 371 && x0 == 44 && x1 == 1197); /* int(0.40810811*375) = 153, ... */
    CHECK_OK(dmllm_depth_crop_rect(DMLLM_DEPTH_CROP_EIGEN, 640, 480, &y0, &y1, &x0, &x1));
    CHECK(y0 == 45 && y1 == 471 && x0 == 41 && x1 == 601);

    /* NYUv2: GT 2 m everywhere, pred 2 m inside the Eigen crop and 4 m outside it. */
    const int w = 640, h = 480;
    float *gt = malloc((size_t)w * h * sizeof *gt);   /* [480][640] */
    float *pred = malloc((size_t)w * h * sizeof *pred); /* [480][640] */
    CHECK(gt && pred);
    if (gt && pred) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                gt[y * w + x] = 2.0f;
                pred[y * w + x] = y >= 45 && y <= 470 && x >= 41 && x <= 600 ? 2.0f : 4.0f;
            }
        dmllm_depth_metrics *m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_EIGEN);
        dmllm_depth_scores s;
        CHECK_OK(dmllm_depth_metrics_add(m, pred, w, h, gt, w, h));
        CHECK_OK(depth_result(m, &s));
        CHECK(s.n_pixels == 238560 && s.delta1 == 1.0 && s.abs_rel == 0.0 && s.silog == 0.0);
        CHECK_STATUS(dmllm_depth_metrics_add(m, pred, 320, 240, gt, 320, 240), DMLLM_ERR_SHAPE);
        CHECK(strstr(dmllm_last_error(), "640x480") != NULL);
        dmllm_depth_metrics_free(m);

        /* Garg on the same map: rows 195..475, cols 23..615 -> 281 x 593 pixels. */
        m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_GARG);
        CHECK_OK(dmllm_depth_metrics_add(m, pred, w, h, gt, w, h));
        CHECK_OK(depth_result(m, &s));
        CHECK_MSG(s.n_pixels == 281 * 593, "n_pixels %lld", (long long)s.n_pixels);
        dmllm_depth_metrics_free(m);
    }
    free(gt);
    free(pred);
}

static void test_depth_resize_clamp_edges(void) {
    /* A 2x2 prediction resized to the 3x3 GT (align_corners=True) is exactly the bilinear ramp. */
    const float pred[4] = {1, 2, 3, 4};
    const float ramp[9] = {1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4};
    dmllm_depth_metrics *m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    dmllm_depth_scores s;
    CHECK_OK(dmllm_depth_metrics_add(m, pred, 2, 2, ramp, 3, 3));
    CHECK_OK(depth_result(m, &s));
    CHECK(s.n_pixels == 9 && s.abs_rel == 0.0 && s.rmse == 0.0 && s.delta1 == 1.0);
    dmllm_depth_metrics_free(m);

    /* A 1x1 prediction covers any GT; +inf clamps to max, -inf to min; NaN and inf GT are invalid. */
    const double gt[4] = {5, 5, NAN, INFINITY};
    const double inf_pred[1] = {INFINITY}, neg_pred[1] = {-INFINITY};
    m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    CHECK_OK(dmllm_depth_metrics_add_f64(m, inf_pred, 1, 1, gt, 2, 2));
    CHECK_OK(depth_result(m, &s));
    CHECK(s.n_pixels == 2);
    CHECK_CLOSE(s.abs_rel, 1.0, TOY_RTOL); /* p = 10 */
    dmllm_depth_metrics_free(m);
    m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    CHECK_OK(dmllm_depth_metrics_add_f64(m, neg_pred, 1, 1, gt, 2, 2));
    CHECK_OK(depth_result(m, &s));
    CHECK_CLOSE(s.abs_rel, (5 - 1e-3) / 5, TOY_RTOL); /* p = 1e-3 */

    /* Images without valid pixels are counted apart and leave the mean alone. */
    const double empty_gt[2] = {0, 20};
    CHECK_OK(dmllm_depth_metrics_add_f64(m, neg_pred, 1, 1, empty_gt, 2, 1));
    CHECK_OK(depth_result(m, &s));
    CHECK(s.n_images == 1 && s.n_images_empty == 1);
    CHECK_CLOSE(s.abs_rel, (5 - 1e-3) / 5, TOY_RTOL);

    /* Bad arguments. */
    CHECK_STATUS(dmllm_depth_metrics_add_f64(m, NULL, 1, 1, gt, 2, 2), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_depth_metrics_add_f64(NULL, neg_pred, 1, 1, gt, 2, 2), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_depth_metrics_add_f64(m, neg_pred, 0, 1, gt, 2, 2), DMLLM_ERR_SHAPE);
    CHECK_STATUS(dmllm_depth_metrics_add(m, pred, 2, 2, ramp, 3, -1), DMLLM_ERR_SHAPE);
    s.struct_size = 0;
    CHECK_STATUS(dmllm_depth_metrics_result(m, &s), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_depth_metrics_result(m, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_depth_metrics_result(NULL, &s), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_depth_metrics_free(m);

    m = depth_create(1e-3, 10, DMLLM_DEPTH_CROP_NONE);
    CHECK_STATUS(depth_result(m, &s), DMLLM_ERR_STATE);
    CHECK_OK(dmllm_depth_metrics_add_f64(m, neg_pred, 1, 1, empty_gt, 2, 1));
    CHECK_STATUS(depth_result(m, &s), DMLLM_ERR_STATE);
    dmllm_depth_metrics_free(m);

    dmllm_depth_metrics_params p;
    dmllm_depth_metrics_params_init(&p);
    CHECK(p.struct_size == sizeof p && dmllm_depth_metrics_params_sizeof() == sizeof p);
    CHECK(p.min_depth == 1e-3 && p.max_depth == 10.0 && p.crop == DMLLM_DEPTH_CROP_NONE);
    m = (dmllm_depth_metrics *)&p;
    p.min_depth = 0;
    CHECK_STATUS(dmllm_depth_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(m == NULL);
    p.min_depth = 5, p.max_depth = 5;
    CHECK_STATUS(dmllm_depth_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    p.min_depth = NAN, p.max_depth = 10;
    CHECK_STATUS(dmllm_depth_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    p.min_depth = 1e-3, p.max_depth = INFINITY;
    CHECK_STATUS(dmllm_depth_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    p.max_depth = 10, p.crop = (dmllm_depth_crop)7;
    CHECK_STATUS(dmllm_depth_metrics_create(&p, &m), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_depth_metrics_create(NULL, &m), DMLLM_ERR_INVALID_ARGUMENT);
    p.crop = DMLLM_DEPTH_CROP_NONE;
    CHECK_STATUS(dmllm_depth_metrics_create(&p, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_depth_metrics_free(NULL);
}

/* ---- referring segmentation and boxes -------------------------------------------------------- */

/* A 10x10 mask that is 1 on rows [r0, r1) and columns [c0, c1). */
static void fill_rect(uint8_t *mask, int r0, int r1, int c0, int c1) {
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 10; x++) mask[y * 10 + x] = y >= r0 && y < r1 && x >= c0 && x < c1;
}

static dmllm_status mask_result(const dmllm_mask_metrics *m, dmllm_mask_scores *s) {
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
    return dmllm_mask_metrics_result(m, s);
}

static void test_mask_vector_d(void) {
    uint8_t gt[100], pred[100]; /* [10][10] */
    dmllm_mask_metrics *m = NULL;
    dmllm_mask_scores s;
    CHECK_OK(dmllm_mask_metrics_create(&m));
    CHECK_STATUS(mask_result(m, &s), DMLLM_ERR_STATE);
    fill_rect(gt, 0, 5, 0, 10), fill_rect(pred, 0, 4, 0, 10);
    CHECK_OK(dmllm_mask_metrics_add(m, pred, gt, 100));
    fill_rect(gt, 0, 2, 0, 5), fill_rect(pred, 8, 10, 0, 5);
    CHECK_OK(dmllm_mask_metrics_add(m, pred, gt, 100));
    fill_rect(gt, 0, 10, 0, 10), fill_rect(pred, 0, 9, 0, 10);
    CHECK_OK(dmllm_mask_metrics_add(m, pred, gt, 100));
    CHECK_OK(mask_result(m, &s));
    CHECK(s.n_samples == 3 && s.sum_intersection == 130 && s.sum_union == 170);
    CHECK_CLOSE(s.ciou, 0.7647058823529411, TOY_RTOL);
    CHECK_CLOSE(s.giou, 0.5666666666666667, TOY_RTOL);
    /* LISA's epsilons stay within the 1e-6 metrics.md allows for them. */
    CHECK_CLOSE(s.ciou, 0.7647058823524914, 1e-6);
    CHECK_CLOSE(s.giou, 0.566666583333347, 1e-6);

    /* Ignored GT pixels drop out; no target and nothing predicted scores gIoU 1. */
    memset(pred, 0, sizeof pred);
    memset(gt, 0, sizeof gt);
    gt[0] = 255, pred[0] = 1;
    CHECK_OK(dmllm_mask_metrics_add(m, pred, gt, 100));
    CHECK_OK(mask_result(m, &s));
    CHECK(s.n_samples == 4 && s.sum_intersection == 130 && s.sum_union == 170);
    CHECK_CLOSE(s.giou, (0.8 + 0.0 + 0.9 + 1.0) / 4, TOY_RTOL);

    /* Bad values name the pixel and change nothing. */
    pred[7] = 255;
    CHECK_STATUS(dmllm_mask_metrics_add(m, pred, gt, 100), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "prediction 255 at pixel 7") != NULL, "%s", dmllm_last_error());
    pred[7] = 0, gt[9] = 2;
    CHECK_STATUS(dmllm_mask_metrics_add(m, pred, gt, 100), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "GT 2 at pixel 9") != NULL, "%s", dmllm_last_error());
    CHECK_STATUS(dmllm_mask_metrics_add(m, pred, gt, 0), DMLLM_ERR_SHAPE);
    CHECK_STATUS(dmllm_mask_metrics_add(m, NULL, gt, 100), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_metrics_add(NULL, pred, gt, 100), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_OK(mask_result(m, &s));
    CHECK(s.n_samples == 4);
    s.struct_size = 4;
    CHECK_STATUS(dmllm_mask_metrics_result(m, &s), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_metrics_result(NULL, &s), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_mask_metrics_free(m);

    /* Only empty samples: no union at all gives cIoU 0 (LISA), gIoU 1. */
    CHECK_OK(dmllm_mask_metrics_create(&m));
    gt[9] = 0;
    CHECK_OK(dmllm_mask_metrics_add(m, pred, gt, 100));
    CHECK_OK(mask_result(m, &s));
    CHECK(s.ciou == 0.0 && s.giou == 1.0);
    dmllm_mask_metrics_free(m);
    dmllm_mask_metrics_free(NULL);
    CHECK_STATUS(dmllm_mask_metrics_create(NULL), DMLLM_ERR_INVALID_ARGUMENT);
}

static void test_box_iou(void) {
    const double a[4] = {0, 0, 10, 10}, b[4] = {5, 5, 15, 15}, far[4] = {20, 20, 30, 30}, touching[4] = {10, 0, 20, 10};
    const double inside[4] = {2.5, 2.5, 7.5, 7.5}, point[4] = {3, 3, 3, 3};
    double iou = -1;
    CHECK_OK(dmllm_box_iou(a, b, &iou));
    CHECK_CLOSE(iou, 25.0 / 175.0, TOY_RTOL);
    CHECK_OK(dmllm_box_iou(a, a, &iou));
    CHECK(iou == 1.0);
    CHECK_OK(dmllm_box_iou(a, inside, &iou));
    CHECK_CLOSE(iou, 0.25, TOY_RTOL);
    CHECK_OK(dmllm_box_iou(a, far, &iou));
    CHECK(iou == 0.0);
    CHECK_OK(dmllm_box_iou(a, touching, &iou));
    CHECK(iou == 0.0);
    CHECK_OK(dmllm_box_iou(point, point, &iou));
    CHECK(iou == 0.0);
    const double flipped[4] = {10, 0, 0, 10}, nan_box[4] = {0, NAN, 1, 1};
    CHECK_STATUS(dmllm_box_iou(a, flipped, &iou), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "box_b") != NULL);
    CHECK_STATUS(dmllm_box_iou(nan_box, a, &iou), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "box_a[1]") != NULL);
    CHECK_STATUS(dmllm_box_iou(NULL, a, &iou), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_box_iou(a, b, NULL), DMLLM_ERR_INVALID_ARGUMENT);
}

int main(void) {
    test_seg_vectors();
    test_seg_edges();
    test_depth_vectors();
    test_depth_real_data();
    test_depth_crops();
    test_depth_resize_clamp_edges();
    test_mask_vector_d();
    test_box_iou();
    return test_finish("test_metrics");
}
