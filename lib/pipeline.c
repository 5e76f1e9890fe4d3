/*
 * pipeline.c: the box-prompted segmentation pipelines of the official demo and the report
 * (model-spec 6.1, 9.2): FG/BG inside a box (pad the box, crop, draw the box on the crop, resize
 * to a short side, "Segment the core target.", paste the mask back), referring segmentation
 * (grounding answer -> that) and open-set segmentation (detection -> that per box).
 * Composes the public task calls (dmllm_ground, dmllm_detect, dmllm_predict_dense); it must not
 * reach into the session or the model beyond the readout profile.
 */
#include "densemllm.h"

#include "common.h"
#include "image.h"
#include "model.h"
#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DISCOVERY_MAX_TOKENS = 512 }; /* the category list before <mask> */

void dmllm_crop_params_init(dmllm_crop_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = (uint32_t)sizeof *p;
    p->padding = DMLLM_FROM_PROFILE;
    p->short_side = DMLLM_FROM_PROFILE;
    p->box_px = DMLLM_FROM_PROFILE;
    p->box_rgb[0] = 255;
    p->max_regions = 30;
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
    return DMLLM_OK;
}

/* An edge within 1e-4 px of a whole pixel, as that pixel. The padding arrives as a float (1.2f is
 * 1.2000000477), and a 30 px box padded by it would reach 0.0000007 px past pixel 53 and take in a
 * column more on each side than the same box padded by 1.2 in double precision, as in training. */
static double snap_edge(double x) {
    const double whole = nearbyint(x);
    return fabs(x - whole) < 1e-4 ? whole : x;
}

/* The box (x0, y0, x1, y1; far edges exclusive) scaled by `padding` about its centre, clamped. */
static void crop_rect(const int box[4], float padding, int width, int height, int rect[4]) {
    const double cx = (box[0] + box[2]) / 2.0, cy = (box[1] + box[3]) / 2.0;
    const double hw = (box[2] - box[0]) * (double)padding / 2.0, hh = (box[3] - box[1]) * (double)padding / 2.0;
    rect[0] = (int)fmax(0.0, floor(snap_edge(cx - hw)));
    rect[1] = (int)fmax(0.0, floor(snap_edge(cy - hh)));
    rect[2] = (int)fmin((double)width, ceil(snap_edge(cx + hw)));
    rect[3] = (int)fmin((double)height, ceil(snap_edge(cy + hh)));
}

/* The crop with the box outline drawn inside its edges (box_px wide). */
static dmllm_status crop_with_box(const dmllm_image *image, const int rect[4], const int box[4],
                                  const dmllm_crop_params *p, dmllm_image **out) {
    const int cw = rect[2] - rect[0], ch = rect[3] - rect[1];
    DMLLM_TRY(dmllm_image_alloc(cw, ch, out));
    for (int y = 0; y < ch; y++)
        memcpy((*out)->pixels + (size_t)y * cw * 3, image->pixels + ((size_t)(rect[1] + y) * image->width + rect[0]) * 3,
               (size_t)cw * 3);
    const int x0 = box[0] - rect[0], y0 = box[1] - rect[1], x1 = box[2] - rect[0] - 1, y1 = box[3] - rect[1] - 1;
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

/* Sets mask[][] (the image's size) to 1 where the box's FG/BG readout says foreground. */
static dmllm_status segment_box(dmllm_session *s, const dmllm_image *image, const int box[4],
                                const dmllm_crop_params *p, uint8_t *mask) {
    if (!(box[0] < box[2] && box[1] < box[3] && box[0] >= 0 && box[1] >= 0 && box[2] <= image->width &&
          box[3] <= image->height))
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "box (%d, %d, %d, %d) is empty or outside the %dx%d image", box[0],
                          box[1], box[2], box[3], image->width, image->height);
    int rect[4];
    crop_rect(box, p->padding, image->width, image->height, rect);
    const int cw = rect[2] - rect[0], ch = rect[3] - rect[1];
    const double scale = (double)p->short_side / (cw < ch ? cw : ch);
    dmllm_image *crop = NULL, *resized = NULL;
    dmllm_dense_result *fgbg = NULL;
    dmllm_status status = crop_with_box(image, rect, box, p, &crop);
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
        status = segment_box(session, image, box, &p, work);
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
    free(r);
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
    if (status == DMLLM_OK) status = dmllm_ground(session, image, phrase, p.generate, &regions);
    if (status == DMLLM_OK) {
        memset(r->mask, 0, (size_t)image->width * image->height);
        r->answer = regions->text; /* the result keeps the answer */
        regions->text = NULL;
        int box[4] = {0};
        if (regions->n_regions > 0) {
            memcpy(box, regions->regions[0].box, sizeof box);
            box[0] = box[0] < 0 ? 0 : box[0];
            box[1] = box[1] < 0 ? 0 : box[1];
            box[2] = box[2] > image->width ? image->width : box[2];
            box[3] = box[3] > image->height ? image->height : box[3];
        }
        if (regions->n_regions == 0 || box[0] >= box[2] || box[1] >= box[3]) {
            snprintf(r->message, sizeof r->message, "the grounding answer holds no usable box%s%.200s",
                     regions->message[0] ? ": " : "", regions->message);
        } else {
            r->found = 1;
            memcpy(r->box, box, sizeof box);
            status = segment_box(session, image, box, &p, r->mask);
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
 * The names, without <OTHERS> and repeats, go to *names (a malloc'ed array of malloc'ed strings). */
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
    dmllm_status status = DMLLM_OK;
    for (const char *at = answer->text ? strstr(answer->text, "<ref>") : NULL; at && status == DMLLM_OK;
         at = strstr(at, "<ref>")) {
        at += 5;
        const char *end = strstr(at, "</ref>");
        if (!end) break;
        const size_t length = (size_t)(end - at);
        int seen = length == 0 || (length == 8 && !strncmp(at, "<OTHERS>", 8));
        for (int k = 0; !seen && k < *n_names; k++) seen = strlen((*names)[k]) == length && !strncmp((*names)[k], at, length);
        if (!seen) {
            char **grown = realloc(*names, sizeof *grown * (size_t)(*n_names + 1));
            char *name = strndup(at, length);
            if (grown) *names = grown;
            if (!grown || !name) {
                free(name);
                status = dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory for the discovered categories");
            } else {
                (*names)[(*n_names)++] = name;
            }
        }
        at = end;
    }
    dmllm_generate_result_free(answer);
    return status;
}

static void free_names(char **names, int n) {
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
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
    free_names(discovered, n_discovered);
    if (status == DMLLM_OK) status = dmllm_alloc(&order, (size_t)r->regions->n_regions + 1, sizeof *order, "the boxes");
    if (status == DMLLM_OK) {
        memset(r->labels, 0, n_pixels * sizeof *r->labels);
        for (int i = 0; i < r->regions->n_regions; i++) order[i] = &r->regions->regions[i];
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
                status = segment_box(session, image, box, &p, mask);
            }
            for (size_t j = 0; status == DMLLM_OK && j < n_pixels; j++)
                if (mask[j]) r->labels[j] = label;
        }
    }
    free(order);
    free(mask);
    if (status == DMLLM_OK) *out = r;
    else dmllm_openset_result_free(r);
    return dmllm_session_leave(session, saved, status);
}
