/*
 * metrics.c: the benchmark metrics of metrics.md as accumulators: segmentation areas summed over
 * images (mmsegmentation IoUMetric), depth errors averaged per image (BTS/AdaBins/ZoeDepth), LISA's
 * cIoU/gIoU, and box IoU. Pure computation on caller maps: touches no model, session or file.
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- semantic segmentation ------------------------------------------------------------------- */

struct dmllm_seg_metrics {
    dmllm_seg_metrics_params params;
    int64_t n_images;
    /* [3][n_classes]: intersect, pred, label areas summed over images. The union is derived at the
     * end: it is linear in these, so summing per-image unions gives the same numbers. */
    int64_t *areas;
};

void dmllm_seg_metrics_params_init(dmllm_seg_metrics_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->ignore_index = 255;
}

size_t dmllm_seg_metrics_params_sizeof(void) { return sizeof(dmllm_seg_metrics_params); }

dmllm_status dmllm_seg_metrics_create(const dmllm_seg_metrics_params *params, dmllm_seg_metrics **out) {
    if (!out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_seg_metrics_create: out is NULL");
    *out = NULL;
    dmllm_seg_metrics_params p;
    dmllm_seg_metrics_params_init(&p);
    DMLLM_TRY(dmllm_copy_versioned(&p, sizeof p, params, "dmllm_seg_metrics_params"));
    if (p.n_classes < 1 || p.n_classes > UINT16_MAX)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_seg_metrics_create: n_classes %d is not in 1..65535",
                          p.n_classes);
    if (p.ignore_index < p.n_classes || p.ignore_index > UINT16_MAX)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_seg_metrics_create: ignore_index %d must be a uint16 value outside the classes 0..%d",
                          p.ignore_index, p.n_classes - 1);
    p.reduce_zero_label = p.reduce_zero_label != 0;
    dmllm_seg_metrics *m = calloc(1, sizeof *m);
    if (!m) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "dmllm_seg_metrics_create: out of memory");
    m->params = p;
    m->areas = dmllm_calloc(3 * (size_t)p.n_classes, sizeof *m->areas);
    if (!m->areas) {
        free(m);
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "dmllm_seg_metrics_create: out of memory for %d classes",
                          p.n_classes);
    }
    *out = m;
    return DMLLM_OK;
}

void dmllm_seg_metrics_free(dmllm_seg_metrics *metrics) {
    if (!metrics) return;
    free(metrics->areas);
    free(metrics);
}

/* The class of a GT value, -1 for an ignored pixel, or -2 for a value that is neither. */
static int seg_gt_class(const dmllm_seg_metrics_params *p, uint16_t raw) {
    if (raw == p->ignore_index) return -1;
    int label = raw;
    if (p->reduce_zero_label) {
        if (raw == 0) return -1;
        label = raw - 1;
    }
    return label < p->n_classes ? label : -2;
}

dmllm_status dmllm_seg_metrics_add(dmllm_seg_metrics *metrics, const uint16_t *pred, const uint16_t *gt,
                                   size_t n_pixels) {
    if (!metrics || !pred || !gt)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_seg_metrics_add: NULL argument");
    if (n_pixels == 0) return dmllm_fail(DMLLM_ERR_SHAPE, "dmllm_seg_metrics_add: empty label map");
    const dmllm_seg_metrics_params *p = &metrics->params;
    /* Validate the whole map first so a failed add leaves the sums untouched. */
    for (size_t i = 0; i < n_pixels; i++)
        if (seg_gt_class(p, gt[i]) == -2)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "dmllm_seg_metrics_add: GT value %u at pixel %zu is neither a class value (%d..%d) "
                              "nor ignore_index %d%s",
                              gt[i], i, p->reduce_zero_label, p->n_classes - 1 + p->reduce_zero_label,
                              p->ignore_index, p->reduce_zero_label ? " (reduce_zero_label: 0 is ignored too)" : "");
    int64_t *intersect = metrics->areas, *area_pred = intersect + p->n_classes, *label = area_pred + p->n_classes;
    for (size_t i = 0; i < n_pixels; i++) {
        int c = seg_gt_class(p, gt[i]);
        if (c < 0) continue;
        label[c]++;
        if (pred[i] < p->n_classes) {
            area_pred[pred[i]]++;
            intersect[c] += pred[i] == c;
        }
    }
    metrics->n_images++;
    return DMLLM_OK;
}

void dmllm_seg_result_free(dmllm_seg_result *result) { free(result); }

dmllm_status dmllm_seg_metrics_result(const dmllm_seg_metrics *metrics, dmllm_seg_result **out) {
    if (!metrics || !out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_seg_metrics_result: NULL argument");
    *out = NULL;
    const size_t n = (size_t)metrics->params.n_classes;
    const int64_t *intersect = metrics->areas, *area_pred = intersect + n, *label = area_pred + n;
    int64_t sum_intersect = 0, sum_label = 0;
    for (size_t c = 0; c < n; c++) {
        sum_intersect += intersect[c];
        sum_label += label[c];
    }
    if (sum_label == 0)
        return dmllm_fail(DMLLM_ERR_STATE, "dmllm_seg_metrics_result: no labelled (non-ignored) pixel in %lld images",
                          (long long)metrics->n_images);
    /* One block: the struct, then iou[n], acc[n] (double), then the four int64 area arrays [n]. */
    dmllm_seg_result *r = dmllm_malloc(1, sizeof *r + n * (2 * sizeof(double) + 4 * sizeof(int64_t)));
    if (!r) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "dmllm_seg_metrics_result: out of memory");
    r->n_classes = (int)n;
    r->n_images = metrics->n_images;
    r->iou = (double *)(r + 1);
    r->acc = r->iou + n;
    r->area_intersect = (int64_t *)(r->acc + n);
    r->area_union = r->area_intersect + n;
    r->area_pred = r->area_union + n;
    r->area_label = r->area_pred + n;
    double sum_iou = 0.0, sum_acc = 0.0;
    r->n_iou_classes = r->n_acc_classes = 0;
    for (size_t c = 0; c < n; c++) {
        r->area_intersect[c] = intersect[c];
        r->area_pred[c] = area_pred[c];
        r->area_label[c] = label[c];
        r->area_union[c] = area_pred[c] + label[c] - intersect[c];
        r->iou[c] = r->area_union[c] ? (double)intersect[c] / (double)r->area_union[c] : NAN;
        r->acc[c] = label[c] ? (double)intersect[c] / (double)label[c] : NAN;
        if (r->area_union[c]) {
            sum_iou += r->iou[c];
            r->n_iou_classes++;
        }
        if (label[c]) {
            sum_acc += r->acc[c];
            r->n_acc_classes++;
        }
    }
    /* sum_label > 0 means some class has a label area, hence a union: both counts are >= 1. */
    r->miou = sum_iou / r->n_iou_classes;
    r->macc = sum_acc / r->n_acc_classes;
    r->aacc = (double)sum_intersect / (double)sum_label;
    *out = r;
    return DMLLM_OK;
}

/* ---- depth ----------------------------------------------------------------------------------- */

enum { DEPTH_D1, DEPTH_D2, DEPTH_D3, DEPTH_ABS_REL, DEPTH_SQ_REL, DEPTH_RMSE, DEPTH_RMSE_LOG, DEPTH_LOG10,
       DEPTH_SILOG, DEPTH_N_METRICS };

struct dmllm_depth_metrics {
    dmllm_depth_metrics_params params;
    int64_t n_images, n_images_empty, n_pixels;
    double sum[DEPTH_N_METRICS]; /* per-image metric values summed over the non-empty images */
};

void dmllm_depth_metrics_params_init(dmllm_depth_metrics_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->min_depth = 1e-3;
    params->max_depth = 10.0;
    params->crop = DMLLM_DEPTH_CROP_NONE;
}

size_t dmllm_depth_metrics_params_sizeof(void) { return sizeof(dmllm_depth_metrics_params); }

dmllm_status dmllm_depth_metrics_create(const dmllm_depth_metrics_params *params, dmllm_depth_metrics **out) {
    if (!out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_depth_metrics_create: out is NULL");
    *out = NULL;
    dmllm_depth_metrics_params p;
    dmllm_depth_metrics_params_init(&p);
    DMLLM_TRY(dmllm_copy_versioned(&p, sizeof p, params, "dmllm_depth_metrics_params"));
    if (!(p.min_depth > 0.0) || !(p.max_depth > p.min_depth) || !isfinite(p.max_depth))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_depth_metrics_create: depth range %g .. %g needs 0 < min_depth < max_depth < inf",
                          p.min_depth, p.max_depth);
    if (p.crop != DMLLM_DEPTH_CROP_NONE && p.crop != DMLLM_DEPTH_CROP_EIGEN && p.crop != DMLLM_DEPTH_CROP_GARG)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_depth_metrics_create: unknown crop %d", (int)p.crop);
    dmllm_depth_metrics *m = calloc(1, sizeof *m);
    if (!m) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "dmllm_depth_metrics_create: out of memory");
    m->params = p;
    *out = m;
    return DMLLM_OK;
}

void dmllm_depth_metrics_free(dmllm_depth_metrics *metrics) { free(metrics); }

dmllm_status dmllm_depth_crop_rect(dmllm_depth_crop crop, int gt_w, int gt_h, int *y0, int *y1, int *x0, int *x1) {
    switch (crop) {
    case DMLLM_DEPTH_CROP_NONE:
        *y0 = 0, *y1 = gt_h, *x0 = 0, *x1 = gt_w;
        return DMLLM_OK;
    case DMLLM_DEPTH_CROP_EIGEN:
        if (gt_w != 640 || gt_h != 480)
            return dmllm_fail(DMLLM_ERR_SHAPE, "the Eigen crop needs 640x480 NYUv2 ground truth, got %dx%d", gt_w,
                              gt_h);
        *y0 = 45, *y1 = 471, *x0 = 41, *x1 = 601;
        return DMLLM_OK;
    case DMLLM_DEPTH_CROP_GARG:
        /* Python's int() of the products, as the reference crops are written. */
        *y0 = (int)(0.40810811 * gt_h), *y1 = (int)(0.99189189 * gt_h);
        *x0 = (int)(0.03594771 * gt_w), *x1 = (int)(0.96405229 * gt_w);
        return DMLLM_OK;
    }
    return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "unknown depth crop %d", (int)crop);
}

/* A depth map of floats or doubles: the public add functions differ only in the element type. */
typedef struct depth_map {
    const void *data;
    int is_f64;
    int width, height;
} depth_map;

static inline double depth_at(const depth_map *map, size_t i) {
    return map->is_f64 ? ((const double *)map->data)[i] : (double)((const float *)map->data)[i];
}

/* Source coordinate of output index i for align_corners=True: the end pixels map onto each other. */
static inline void align_corners_source(int i, int n_out, int n_in, int *i0, int *i1, double *frac) {
    double src = n_out > 1 ? (double)i * (double)(n_in - 1) / (double)(n_out - 1) : 0.0;
    *i0 = (int)src;
    if (*i0 > n_in - 1) *i0 = n_in - 1;
    *i1 = *i0 + 1 < n_in ? *i0 + 1 : n_in - 1;
    *frac = src - *i0;
}

/* (1-f) a + f b, except that a zero weight drops its term, so an infinite neighbour it does not
 * reach stays out (0 * inf would be NaN, and the clamp would turn it into min_depth). */
static inline double lerp(double a, double b, double f) { return f == 0.0 ? a : (1.0 - f) * a + f * b; }

/* Pred at GT pixel (x, y): bilinearly resized when the sizes differ, NaN kept for the clamp. */
static double depth_pred_at(const depth_map *pred, int gt_w, int gt_h, int x, int y) {
    if (pred->width == gt_w && pred->height == gt_h) return depth_at(pred, (size_t)y * gt_w + x);
    int ya, yb, xa, xb;
    double fy, fx;
    align_corners_source(y, gt_h, pred->height, &ya, &yb, &fy);
    align_corners_source(x, gt_w, pred->width, &xa, &xb, &fx);
    size_t w = (size_t)pred->width;
    double top = lerp(depth_at(pred, ya * w + xa), depth_at(pred, ya * w + xb), fx);
    return fy == 0.0 ? top : lerp(top, lerp(depth_at(pred, yb * w + xa), depth_at(pred, yb * w + xb), fx), fy);
}

static dmllm_status depth_add(dmllm_depth_metrics *m, const depth_map *pred, const depth_map *gt) {
    if (!m || !pred->data || !gt->data)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_depth_metrics_add: NULL argument");
    if (pred->width < 1 || pred->height < 1 || gt->width < 1 || gt->height < 1)
        return dmllm_fail(DMLLM_ERR_SHAPE, "dmllm_depth_metrics_add: empty map (pred %dx%d, gt %dx%d)", pred->width,
                          pred->height, gt->width, gt->height);
    int y0, y1, x0, x1;
    DMLLM_TRY(dmllm_depth_crop_rect(m->params.crop, gt->width, gt->height, &y0, &y1, &x0, &x1));
    const double lo = m->params.min_depth, hi = m->params.max_depth;
    int64_t n = 0, within[3] = {0, 0, 0};
    double abs_rel = 0, sq_rel = 0, sq = 0, e_sq = 0, log10_sum = 0;
    /* SILog's mean(e^2) - mean(e)^2 cancels badly when e is nearly constant (a pure scale error):
     * the variance is accumulated with Welford's update instead (same value, stable rounding). */
    double e_mean = 0, e_m2 = 0;
    for (int y = y0; y < y1; y++) {
        for (int x = x0; x < x1; x++) {
            double g = depth_at(gt, (size_t)y * gt->width + x);
            if (!(g > lo && g < hi)) continue;
            double p = depth_pred_at(pred, gt->width, gt->height, x, y);
            p = isnan(p) || p < lo ? lo : p > hi ? hi : p;
            double ratio = g / p > p / g ? g / p : p / g;
            within[0] += ratio < 1.25;
            within[1] += ratio < 1.25 * 1.25;
            within[2] += ratio < 1.25 * 1.25 * 1.25;
            double d = g - p, e = log(p) - log(g);
            abs_rel += fabs(d) / g;
            sq_rel += d * d / g;
            sq += d * d;
            e_sq += e * e;
            log10_sum += fabs(log10(p) - log10(g));
            n++;
            double delta = e - e_mean;
            e_mean += delta / (double)n;
            e_m2 += delta * (e - e_mean);
        }
    }
    if (n == 0) {
        m->n_images_empty++;
        return DMLLM_OK;
    }
    const double inv = 1.0 / (double)n;
    m->sum[DEPTH_D1] += within[0] * inv;
    m->sum[DEPTH_D2] += within[1] * inv;
    m->sum[DEPTH_D3] += within[2] * inv;
    m->sum[DEPTH_ABS_REL] += abs_rel * inv;
    m->sum[DEPTH_SQ_REL] += sq_rel * inv;
    m->sum[DEPTH_RMSE] += sqrt(sq * inv);
    m->sum[DEPTH_RMSE_LOG] += sqrt(e_sq * inv);
    m->sum[DEPTH_LOG10] += log10_sum * inv;
    m->sum[DEPTH_SILOG] += 100.0 * sqrt(e_m2 * inv);
    m->n_images++;
    m->n_pixels += n;
    return DMLLM_OK;
}

dmllm_status dmllm_depth_metrics_add(dmllm_depth_metrics *metrics, const float *pred, int pred_w, int pred_h,
                                     const float *gt, int gt_w, int gt_h) {
    return depth_add(metrics, &(depth_map){pred, 0, pred_w, pred_h}, &(depth_map){gt, 0, gt_w, gt_h});
}

dmllm_status dmllm_depth_metrics_add_f64(dmllm_depth_metrics *metrics, const double *pred, int pred_w, int pred_h,
                                         const double *gt, int gt_w, int gt_h) {
    return depth_add(metrics, &(depth_map){pred, 1, pred_w, pred_h}, &(depth_map){gt, 1, gt_w, gt_h});
}

dmllm_status dmllm_depth_metrics_result(const dmllm_depth_metrics *metrics, dmllm_depth_scores *out) {
    if (!metrics) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_depth_metrics_result: metrics is NULL");
    DMLLM_TRY(dmllm_check_versioned_out(out, sizeof *out, "dmllm_depth_scores"));
    if (metrics->n_images == 0)
        return dmllm_fail(DMLLM_ERR_STATE, "dmllm_depth_metrics_result: no image with valid pixels (%lld empty)",
                          (long long)metrics->n_images_empty);
    const double inv = 1.0 / (double)metrics->n_images;
    dmllm_depth_scores s = {
        .struct_size = out->struct_size,
        .n_images = metrics->n_images,
        .n_images_empty = metrics->n_images_empty,
        .n_pixels = metrics->n_pixels,
        .delta1 = metrics->sum[DEPTH_D1] * inv,
        .delta2 = metrics->sum[DEPTH_D2] * inv,
        .delta3 = metrics->sum[DEPTH_D3] * inv,
        .abs_rel = metrics->sum[DEPTH_ABS_REL] * inv,
        .sq_rel = metrics->sum[DEPTH_SQ_REL] * inv,
        .rmse = metrics->sum[DEPTH_RMSE] * inv,
        .rmse_log = metrics->sum[DEPTH_RMSE_LOG] * inv,
        .log10 = metrics->sum[DEPTH_LOG10] * inv,
        .silog = metrics->sum[DEPTH_SILOG] * inv,
    };
    memcpy(out, &s, out->struct_size);
    return DMLLM_OK;
}

/* ---- referring segmentation ------------------------------------------------------------------ */

struct dmllm_mask_metrics {
    int64_t n_samples, sum_intersection, sum_union;
    double sum_iou; /* per-sample IoU, an empty union scoring 1 */
};

dmllm_status dmllm_mask_metrics_create(dmllm_mask_metrics **out) {
    if (!out) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_mask_metrics_create: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? DMLLM_OK : dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "dmllm_mask_metrics_create: out of memory");
}

void dmllm_mask_metrics_free(dmllm_mask_metrics *metrics) { free(metrics); }

dmllm_status dmllm_mask_metrics_add(dmllm_mask_metrics *metrics, const uint8_t *pred, const uint8_t *gt,
                                    size_t n_pixels) {
    if (!metrics || !pred || !gt)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_mask_metrics_add: NULL argument");
    if (n_pixels == 0) return dmllm_fail(DMLLM_ERR_SHAPE, "dmllm_mask_metrics_add: empty mask");
    int64_t intersection = 0, union_ = 0;
    for (size_t i = 0; i < n_pixels; i++) {
        if (pred[i] > 1)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "dmllm_mask_metrics_add: prediction %u at pixel %zu is not 0 or 1", pred[i], i);
        if (gt[i] > 1 && gt[i] != 255)
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "dmllm_mask_metrics_add: GT %u at pixel %zu is not 0, 1 or 255 (ignore)", gt[i], i);
        if (gt[i] == 255) continue;
        intersection += pred[i] & gt[i];
        union_ += pred[i] | gt[i];
    }
    metrics->n_samples++;
    metrics->sum_intersection += intersection;
    metrics->sum_union += union_;
    metrics->sum_iou += union_ ? (double)intersection / (double)union_ : 1.0;
    return DMLLM_OK;
}

dmllm_status dmllm_mask_metrics_result(const dmllm_mask_metrics *metrics, dmllm_mask_scores *out) {
    if (!metrics) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_mask_metrics_result: metrics is NULL");
    DMLLM_TRY(dmllm_check_versioned_out(out, sizeof *out, "dmllm_mask_scores"));
    if (metrics->n_samples == 0) return dmllm_fail(DMLLM_ERR_STATE, "dmllm_mask_metrics_result: no sample added");
    dmllm_mask_scores s = {
        .struct_size = out->struct_size,
        .n_samples = metrics->n_samples,
        .sum_intersection = metrics->sum_intersection,
        .sum_union = metrics->sum_union,
        .ciou = metrics->sum_union ? (double)metrics->sum_intersection / (double)metrics->sum_union : 0.0,
        .giou = metrics->sum_iou / (double)metrics->n_samples,
    };
    memcpy(out, &s, out->struct_size);
    return DMLLM_OK;
}

/* ---- boxes ----------------------------------------------------------------------------------- */

static dmllm_status check_box(const double *box, const char *name) {
    if (!box) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_box_iou: %s is NULL", name);
    for (int k = 0; k < 4; k++)
        if (!isfinite(box[k]))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_box_iou: %s[%d] is not finite", name, k);
    if (box[2] < box[0] || box[3] < box[1])
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_box_iou: %s (%g, %g, %g, %g) has x1 < x0 or y1 < y0",
                          name, box[0], box[1], box[2], box[3]);
    return DMLLM_OK;
}

dmllm_status dmllm_box_iou(const double box_a[4], const double box_b[4], double *out_iou) {
    DMLLM_TRY(check_box(box_a, "box_a"));
    DMLLM_TRY(check_box(box_b, "box_b"));
    if (!out_iou) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_box_iou: out_iou is NULL");
    double w = fmin(box_a[2], box_b[2]) - fmax(box_a[0], box_b[0]);
    double h = fmin(box_a[3], box_b[3]) - fmax(box_a[1], box_b[1]);
    double inter = w > 0.0 && h > 0.0 ? w * h : 0.0;
    double uni = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1]) + (box_b[2] - box_b[0]) * (box_b[3] - box_b[1]) - inter;
    *out_iou = uni > 0.0 ? inter / uni : 0.0;
    return DMLLM_OK;
}
