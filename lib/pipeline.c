/*
 * pipeline.c: the box-prompted segmentation pipelines of the official demo and the report
 * (model-spec 6.1, 9.2): FG/BG inside a box (pad the box, crop, draw the box on the crop, resize
 * to a short side, "Segment the core target.", paste the mask back), referring segmentation
 * (grounding answer, or the demo's polygon answer -> that) and open-set segmentation (detection ->
 * that per box).
 * Composes the public task calls (dmllm_ground, dmllm_detect, dmllm_predict_dense); it must not
 * reach into the session or the model beyond the readout profile.
 */
#include "pipeline.h"

#include "common.h"
#include "image.h"
#include "masktext.h"
#include "model.h"
#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DISCOVERY_MAX_TOKENS = 512 }; /* the category list before <mask> */

/* demo.py's referring prompt, answered with an <ins> polygon (model-spec 6.1). */
static const char demo_refer_format[] = "Can you segment \"%s\" in this image?";

void dmllm_crop_params_init(dmllm_crop_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = (uint32_t)sizeof *p;
    p->padding = DMLLM_FROM_PROFILE;
    p->short_side = DMLLM_FROM_PROFILE;
    p->box_px = DMLLM_FROM_PROFILE;
    p->box_rgb[0] = 255;
    p->max_regions = 30;
    p->evaluation = DMLLM_FROM_PROFILE;
    p->variant = DMLLM_VARIANT_REPORT;
}

size_t dmllm_crop_params_sizeof(void) { return sizeof(dmllm_crop_params); }

/* The caller's params with DMLLM_FROM_PROFILE resolved. */
static dmllm_status resolve(const dmllm_session *s, const dmllm_crop_params *given, dmllm_crop_params *out) {
    dmllm_crop_params_init(out);
    if (given) DMLLM_TRY(dmllm_copy_versioned(out, sizeof *out, given, "dmllm_crop_params"));
    const dmllm_readout_profile *profile = &dmllm_session_model(s)->profile;
    if (out->padding == DMLLM_FROM_PROFILE) out->padding = profile->crop_padding;
    if (out->short_side == DMLLM_FROM_PROFILE) out->short_side = profile->crop_short_side;
    if (out->box_px == DMLLM_FROM_PROFILE) out->box_px = profile->crop_box_px;
    if (!(out->padding >= 1.0f && out->padding <= 10.0f))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "crop padding %g is outside [1, 10]", (double)out->padding);
    if (out->short_side < 32 || out->short_side > 16384)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "crop short side %d is outside [32, 16384]", out->short_side);
    if (out->box_px < 0 || out->box_px > 64)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "crop box thickness %d is outside [0, 64]", out->box_px);
    if (out->max_regions < 1) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "max_regions %d < 1", out->max_regions);
    if (out->variant != DMLLM_VARIANT_REPORT && out->variant != DMLLM_VARIANT_DEMO)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "crop variant %d is not a dmllm_crop_variant", (int)out->variant);
    return DMLLM_OK;
}

/* An edge within 1e-4 px of a whole pixel, as that pixel. The padding arrives as a float (1.2f is
 * 1.2000000477), and a 30 px box padded by it would reach 0.0000007 px past pixel 53 and take in a
 * column more on each side than the same box padded by 1.2 in double precision, as in training. */
static double snap_edge(double x) {
    const double whole = nearbyint(x);
    return fabs(x - whole) < 1e-4 ? whole : x;
}

/* The report variant rounds the padded edges outwards; the demo truncates both (int() in demo.py's
 * crop_and_resize), so its crop may miss the last fraction of a pixel. */
void dmllm_crop_rect(const int box[4], const dmllm_crop_params *p, int width, int height, int rect[4]) {
    const dmllm_crop_variant variant = p->variant;
    const float padding = p->padding;
    const double cx = (box[0] + box[2]) / 2.0, cy = (box[1] + box[3]) / 2.0;
    const double hw = (box[2] - box[0]) * (double)padding / 2.0, hh = (box[3] - box[1]) * (double)padding / 2.0;
    const double x1 = snap_edge(cx + hw), y1 = snap_edge(cy + hh);
    rect[0] = (int)fmax(0.0, floor(snap_edge(cx - hw)));
    rect[1] = (int)fmax(0.0, floor(snap_edge(cy - hh)));
    rect[2] = (int)fmin((double)width, variant == DMLLM_VARIANT_DEMO ? floor(x1) : ceil(x1));
    rect[3] = (int)fmin((double)height, variant == DMLLM_VARIANT_DEMO ? floor(y1) : ceil(y1));
}

/* The crop with the box outline drawn inside its edges (box_px wide); the demo's far edges are the
 * last columns and rows of the box, the report's the ones before. */
dmllm_status dmllm_crop_with_box(const dmllm_image *image, const int rect[4], const int box[4],
                                 const dmllm_crop_params *p, dmllm_image **out) {
    const int cw = rect[2] - rect[0], ch = rect[3] - rect[1];
    DMLLM_TRY(dmllm_image_alloc(cw, ch, out));
    for (int y = 0; y < ch; y++)
        memcpy((*out)->pixels + (size_t)y * cw * 3, image->pixels + ((size_t)(rect[1] + y) * image->width + rect[0]) * 3,
               (size_t)cw * 3);
    const int inclusive = p->variant == DMLLM_VARIANT_DEMO;
    const int x0 = box[0] - rect[0], y0 = box[1] - rect[1];
    const int x1 = box[2] - rect[0] - 1 + inclusive, y1 = box[3] - rect[1] - 1 + inclusive;
    const int t = p->box_px;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            const int edge = y < y0 + t || y > y1 - t || x < x0 + t || x > x1 - t;
            if (edge && x >= 0 && y >= 0 && x < cw && y < ch) memcpy((*out)->pixels + ((size_t)y * cw + x) * 3, p->box_rgb, 3);
        }
    return DMLLM_OK;
}

/* Short side to p->short_side, both sides rounded (half to even) to multiples of 32, at least 32. */
static int scaled_side(int side, double scale) {
    const double blocks = nearbyint(side * scale / 32.0);
    return blocks < 1.0 ? 32 : (int)blocks * 32;
}

/* Sets mask[][] (the image's size) to 1 where the box's FG/BG readout says foreground; *crf |= 1
 * when the dense CRF refined it. */
static dmllm_status segment_box(dmllm_session *s, const dmllm_image *image, const int box[4],
                                const dmllm_crop_params *p, uint8_t *mask, int *crf) {
    if (!(box[0] < box[2] && box[1] < box[3] && box[0] >= 0 && box[1] >= 0 && box[2] <= image->width &&
          box[3] <= image->height))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "box (%d, %d, %d, %d) is empty or outside the %dx%d image", box[0],
                          box[1], box[2], box[3], image->width, image->height);
    int rect[4];
    dmllm_crop_rect(box, p, image->width, image->height, rect);
    const int cw = rect[2] - rect[0], ch = rect[3] - rect[1];
    const double scale = (double)p->short_side / (cw < ch ? cw : ch);
    dmllm_image *crop = NULL, *resized = NULL;
    dmllm_dense_result *fgbg = NULL;
    dmllm_status status = dmllm_crop_with_box(image, rect, box, p, &crop);
    if (status == DMLLM_OK)
        status = dmllm_image_resize(crop, scaled_side(cw, scale), scaled_side(ch, scale),
                                    dmllm_session_get_params(s)->resize_mode, &resized);
    if (status == DMLLM_OK) {
        dmllm_dense_params dp;
        dmllm_dense_params_init(&dp);
        dp.task = DMLLM_TASK_FGBG;
        dp.evaluation = p->evaluation;
        dp.crf = p->crf;
        status = dmllm_predict_dense(s, resized, &dp, &fgbg);
    }
    if (status == DMLLM_OK) {
        *crf |= fgbg->crf;
        /* Nearest-neighbour back to the crop rectangle (pixel centres, as PIL's NEAREST). */
        for (int y = 0; y < ch; y++) {
            const int sy = (int)(((double)y + 0.5) * fgbg->height / ch);
            for (int x = 0; x < cw; x++) {
                const int sx = (int)(((double)x + 0.5) * fgbg->width / cw);
                if (fgbg->labels[(size_t)sy * fgbg->width + sx] == 1)
                    mask[(size_t)(rect[1] + y) * image->width + rect[0] + x] = 1;
            }
        }
    }
    dmllm_dense_result_free(fgbg);
    dmllm_image_free(resized);
    dmllm_image_free(crop);
    return status;
}

dmllm_status dmllm_segment_box(dmllm_session *session, const dmllm_image *image, const int box[4],
                               const dmllm_crop_params *params, uint8_t *mask, size_t capacity) {
    if (!session) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_segment_box: session is NULL");
    const int saved = dmllm_session_enter(session);
    dmllm_crop_params p;
    dmllm_status status = resolve(session, params, &p);
    if (status == DMLLM_OK && (!image || !box || !mask))
        status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_segment_box: image, box and mask must not be NULL");
    if (status == DMLLM_OK && capacity < (size_t)image->width * image->height)
        status = dmllm_fail(DMLLM_ERR_BUFFER_TOO_SMALL, "dmllm_segment_box: the mask needs %zu bytes, capacity is %zu",
                            (size_t)image->width * image->height, capacity);
    uint8_t *work = NULL;
    if (status == DMLLM_OK) status = dmllm_alloc(&work, (size_t)image->width * image->height, 1, "the box mask");
    if (status == DMLLM_OK) {
        memset(work, 0, (size_t)image->width * image->height);
        int crf = 0;
        status = segment_box(session, image, box, &p, work, &crf);
    }
    if (status == DMLLM_OK) memcpy(mask, work, (size_t)image->width * image->height);
    free(work);
    return dmllm_session_leave(session, saved, status);
}

/* ---- referring segmentation ------------------------------------------------------------------- */

void dmllm_refer_result_free(dmllm_refer_result *r) {
    if (!r) return;
    free(r->mask);
    free(r->answer);
    free((void *)r->label_names);
    free(r);
}

/* The first stage: the report's grounding answer, or the demo's polygon answer, parsed. */
static dmllm_status refer_regions(dmllm_session *s, const dmllm_image *image, const char *phrase,
                                  const dmllm_crop_params *p, dmllm_regions **out) {
    if (p->variant == DMLLM_VARIANT_REPORT) return dmllm_ground(s, image, phrase, p->generate, out);
    char *question = NULL;
    dmllm_generate_result *answer = NULL;
    const size_t length = strlen(phrase) + sizeof demo_refer_format;
    dmllm_status status = dmllm_alloc(&question, length, 1, "the referring question");
    if (status == DMLLM_OK) {
        snprintf(question, length, demo_refer_format, phrase);
        status = dmllm_ask(s, image, question, p->generate, &answer);
    }
    if (status == DMLLM_OK) status = dmllm_parse_regions(answer->text ? answer->text : "", out);
    if (status == DMLLM_OK) { /* the regions keep the answer, as dmllm_ground's do */
        (*out)->text = answer->text;
        answer->text = NULL;
    }
    dmllm_generate_result_free(answer);
    free(question);
    return status;
}

/* The region the second stage segments: the first box, or for the demo the first polygon. */
static const dmllm_region *refer_region(const dmllm_regions *regions, dmllm_crop_variant variant) {
    for (int i = 0; i < regions->n_regions; i++)
        if (variant == DMLLM_VARIANT_REPORT || regions->regions[i]->n_points > 0) return regions->regions[i];
    return NULL;
}

dmllm_status dmllm_refer_segment(dmllm_session *session, const dmllm_image *image, const char *phrase,
                                 const dmllm_crop_params *params, dmllm_refer_result **out) {
    if (out) *out = NULL;
    if (!session) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_refer_segment: session is NULL");
    const int saved = dmllm_session_enter(session);
    dmllm_crop_params p;
    dmllm_status status = resolve(session, params, &p);
    if (status == DMLLM_OK && (!image || !phrase || !out))
        status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_refer_segment: image, phrase and out must not be NULL");
    dmllm_refer_result *r = NULL;
    dmllm_regions *regions = NULL;
    if (status == DMLLM_OK) status = dmllm_alloc(&r, 1, sizeof *r, "the referring result");
    if (status == DMLLM_OK) {
        memset(r, 0, sizeof *r); /* found, box and message stay 0 / "" unless a box is segmented */
        r->width = image->width;
        r->height = image->height;
        status = dmllm_alloc(&r->mask, (size_t)image->width * image->height, 1, "the referring mask");
    }
    if (status == DMLLM_OK) /* the mask's values 0 and 1 */
        status = dmllm_label_names("background", &phrase, 1, NULL, &r->label_names, &r->n_labels);
    if (status == DMLLM_OK) status = refer_regions(session, image, phrase, &p, &regions);
    if (status == DMLLM_OK) {
        memset(r->mask, 0, (size_t)image->width * image->height);
        r->answer = regions->text; /* the result keeps the answer */
        regions->text = NULL;
        int box[4] = {0};
        const dmllm_region *region = refer_region(regions, p.variant);
        if (region) {
            memcpy(box, region->box, sizeof box);
            box[0] = box[0] < 0 ? 0 : box[0];
            box[1] = box[1] < 0 ? 0 : box[1];
            box[2] = box[2] > image->width ? image->width : box[2];
            box[3] = box[3] > image->height ? image->height : box[3];
        }
        if (!region || box[0] >= box[2] || box[1] >= box[3]) {
            snprintf(r->message, sizeof r->message, "the %s answer holds no usable %s%s%.180s",
                     p.variant == DMLLM_VARIANT_DEMO ? "demo's referring" : "grounding",
                     p.variant == DMLLM_VARIANT_DEMO ? "<ins> polygon" : "box", regions->message[0] ? ": " : "",
                     regions->message);
        } else {
            r->found = 1;
            memcpy(r->box, box, sizeof box);
            status = segment_box(session, image, box, &p, r->mask, &r->crf);
        }
    }
    dmllm_regions_free(regions);
    if (status == DMLLM_OK) *out = r;
    else dmllm_refer_result_free(r);
    return dmllm_session_leave(session, saved, status);
}

/* ---- open-set segmentation -------------------------------------------------------------------- */

void dmllm_openset_result_free(dmllm_openset_result *r) {
    if (!r) return;
    for (int k = 0; k < r->n_names; k++) free(r->names[k]);
    free(r->names);
    free(r->labels);
    dmllm_regions_free(r->regions);
    free((void *)r->label_names);
    free(r);
}

static int larger_box_first(const void *a, const void *b) {
    const dmllm_region *ra = *(const dmllm_region *const *)a, *rb = *(const dmllm_region *const *)b;
    const long long area_a = (long long)(ra->box[2] - ra->box[0]) * (ra->box[3] - ra->box[1]);
    const long long area_b = (long long)(rb->box[2] - rb->box[0]) * (rb->box[3] - rb->box[1]);
    return (area_a < area_b) - (area_a > area_b);
}

/* Label of a region's class: 1 + its index among the distinct names, added on first sight. */
static dmllm_status class_label(dmllm_openset_result *r, const char *name, uint16_t *label) {
    for (int k = 0; k < r->n_names; k++)
        if (!strcmp(r->names[k], name)) {
            *label = (uint16_t)(k + 1);
            return DMLLM_OK;
        }
    if (r->n_names >= 65534) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "more than 65534 open-set classes");
    char **names = realloc(r->names, sizeof *names * (size_t)(r->n_names + 1));
    if (!names) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the open-set class names");
    r->names = names;
    if (!(names[r->n_names] = strdup(name)))
        return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the open-set class names");
    *label = (uint16_t)++r->n_names;
    return DMLLM_OK;
}

/* The demo's first open-set step: the profile's openset prompt ("Segment all objects in this
 * image." for youtu_vl) names the categories as <ref>name</ref> before its <mask>; generation
 * stops at <mask> (the mask itself is not needed).
 * The names, without <OTHERS> and repeats, go to *names (dmllm_reply_names). */
static dmllm_status discover_categories(dmllm_session *s, const dmllm_image *image, const dmllm_crop_params *p,
                                        char ***names, int *n_names) {
    *names = NULL;
    *n_names = 0;
    const dmllm_model *model = dmllm_session_model(s);
    dmllm_generate_params g;
    if (p->generate) g = *p->generate;
    else dmllm_generate_params_init(&g);
    int32_t stops[2] = {dmllm_token_id(model, "<|end_of_text|>"), dmllm_token_id(model, "<mask>")};
    g.stop_ids = stops;
    g.n_stop_ids = stops[1] >= 0 ? 2 : 1;
    if (g.max_new_tokens > DISCOVERY_MAX_TOKENS) g.max_new_tokens = DISCOVERY_MAX_TOKENS;
    dmllm_generate_result *answer = NULL;
    DMLLM_TRY(dmllm_ask(s, image, model->profile.prompt_openset, &g, &answer));
    const dmllm_status status = dmllm_reply_names(answer->text, "<OTHERS>", names, n_names);
    dmllm_generate_result_free(answer);
    return status;
}

dmllm_status dmllm_openset_segment(dmllm_session *session, const dmllm_image *image, const char *const *classes,
                                   int n_classes, const dmllm_crop_params *params, dmllm_openset_result **out) {
    if (out) *out = NULL;
    if (!session) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_openset_segment: session is NULL");
    const int saved = dmllm_session_enter(session);
    dmllm_crop_params p;
    dmllm_status status = resolve(session, params, &p);
    if (status == DMLLM_OK && (!image || !out || n_classes < 0 || (n_classes > 0 && !classes)))
        status = dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                            "dmllm_openset_segment: image or out is NULL, or n_classes = %d with classes %s",
                            n_classes, classes ? "set" : "NULL");
    const size_t n_pixels = image ? (size_t)image->width * image->height : 0;
    dmllm_openset_result *r = NULL;
    const dmllm_region **order = NULL; /* [n_regions] largest box first */
    uint8_t *mask = NULL;              /* [height][width] one box's FG */
    if (status == DMLLM_OK) status = dmllm_alloc(&r, 1, sizeof *r, "the open-set result");
    if (status == DMLLM_OK) {
        memset(r, 0, sizeof *r); /* names and regions must be NULL for the free on failure */
        r->width = image->width;
        r->height = image->height;
        status = dmllm_alloc(&r->labels, n_pixels, sizeof *r->labels, "the open-set labels");
    }
    if (status == DMLLM_OK) status = dmllm_alloc(&mask, n_pixels, 1, "the open-set box mask");
    char **discovered = NULL; /* [n_discovered] when the caller gave no categories */
    int n_discovered = 0;
    const char *discovery = dmllm_session_model(session)->profile.prompt_openset;
    if (status == DMLLM_OK && n_classes == 0 && discovery[0])
        status = discover_categories(session, image, &p, &discovered, &n_discovered);
    if (status == DMLLM_OK && n_discovered > 0)
        status = dmllm_detect(session, image, (const char *const *)discovered, n_discovered, p.generate, &r->regions);
    else if (status == DMLLM_OK)
        status = dmllm_detect(session, image, classes, n_classes, p.generate, &r->regions);
    dmllm_reply_names_free(discovered, n_discovered);
    if (status == DMLLM_OK) status = dmllm_alloc(&order, (size_t)r->regions->n_regions + 1, sizeof *order, "the boxes");
    if (status == DMLLM_OK) {
        memset(r->labels, 0, n_pixels * sizeof *r->labels);
        for (int i = 0; i < r->regions->n_regions; i++) order[i] = r->regions->regions[i];
        qsort(order, (size_t)r->regions->n_regions, sizeof *order, larger_box_first);
        const int kept = r->regions->n_regions < p.max_regions ? r->regions->n_regions : p.max_regions;
        /* Smaller boxes are painted after larger ones, so objects in front of others keep their pixels. */
        for (int i = 0; i < kept && status == DMLLM_OK; i++) {
            int box[4];
            memcpy(box, order[i]->box, sizeof box);
            box[2] = box[2] > image->width ? image->width : box[2];
            box[3] = box[3] > image->height ? image->height : box[3];
            if (box[0] < 0 || box[1] < 0 || box[0] >= box[2] || box[1] >= box[3]) continue;
            uint16_t label = 0;
            status = class_label(r, order[i]->label, &label);
            if (status == DMLLM_OK) {
                memset(mask, 0, n_pixels);
                status = segment_box(session, image, box, &p, mask, &r->crf);
            }
            for (size_t j = 0; status == DMLLM_OK && j < n_pixels; j++)
                if (mask[j]) r->labels[j] = label;
        }
    }
    free(order);
    free(mask);
    if (status == DMLLM_OK)
        status = dmllm_label_names("background", (const char *const *)r->names, r->n_names, NULL, &r->label_names,
                                   &r->n_labels);
    if (status == DMLLM_OK) *out = r;
    else dmllm_openset_result_free(r);
    return dmllm_session_leave(session, saved, status);
}
