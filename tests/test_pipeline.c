/*
 * test_pipeline.c: the box-prompted segmentation of lib/pipeline.c on the embedded tiny model with a
 * synthetic image (mask quality is the tiny-model test's business): the FG/BG mask stays inside the
 * padded crop rectangle, holds only 0/1, and bad boxes / params fail with messages and leave the
 * caller's mask untouched.
 */
#include "densemllm.h"
#include "support_model_dir.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

enum { W = 96, H = 64 };

static dmllm_image *test_image(void) {
    uint8_t *rgb = malloc((size_t)W * H * 3);
    for (int i = 0; rgb && i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 7 + (i / (W * 3)) * 13);
    dmllm_image *img = NULL;
    CHECK_OK(dmllm_image_from_rgb(rgb, W, H, (size_t)W * 3, &img));
    free(rgb);
    return img;
}

/* The box (20, 10, 50, 40) padded 1.2x about (35, 25): x 17..53, y 7..43. */
static void check_inside_crop(const uint8_t *mask) {
    size_t outside = 0, inside_fg = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int in = x >= 17 && x < 53 && y >= 7 && y < 43;
            if (!in) outside += mask[(size_t)y * W + x] != 0;
            else inside_fg += mask[(size_t)y * W + x] == 1;
        }
    CHECK_MSG(outside == 0, "%zu mask pixels outside the padded crop", outside);
    CHECK_MSG(inside_fg <= 36 * 36, "%zu foreground pixels in a 36x36 crop", inside_fg);
}

int main(void) {
    dmllm_model *model = test_load_model(test_source_path("models/tiny"), DMLLM_COMPUTE_F32);
    dmllm_session *s = NULL;
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    if (model) CHECK_OK(dmllm_session_create(model, &sp, &s));
    dmllm_image *img = test_image();
    if (!s || !img) return test_finish("test_pipeline");

    uint8_t *mask = malloc((size_t)W * H);
    const int box[4] = {20, 10, 50, 40};
    dmllm_crop_params p;
    dmllm_crop_params_init(&p);
    CHECK(p.struct_size == sizeof p && dmllm_crop_params_sizeof() == sizeof p);
    CHECK(p.padding == DMLLM_FROM_PROFILE && p.max_regions == 30 && p.box_rgb[0] == 255);
    memset(mask, 9, (size_t)W * H);
    if (mask && dmllm_segment_box(s, img, box, &p, mask, (size_t)W * H) == DMLLM_OK) {
        check_inside_crop(mask);
        size_t not_binary = 0;
        for (size_t i = 0; i < (size_t)W * H; i++) not_binary += mask[i] > 1;
        CHECK_MSG(not_binary == 0, "%zu mask values are neither 0 nor 1", not_binary);
    } else {
        CHECK_MSG(0, "dmllm_segment_box failed: %s", dmllm_session_errmsg(s));
    }

    /* Bad input: the mask is left as it was. */
    memset(mask, 7, (size_t)W * H);
    const int empty[4] = {30, 10, 30, 40}, outside[4] = {80, 10, 120, 40};
    CHECK_STATUS(dmllm_segment_box(s, img, empty, &p, mask, (size_t)W * H), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_session_errmsg(s), "empty or outside") != NULL);
    CHECK_STATUS(dmllm_segment_box(s, img, outside, &p, mask, (size_t)W * H), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_segment_box(s, img, box, &p, mask, (size_t)W * H - 1), DMLLM_ERR_BUFFER_TOO_SMALL);
    dmllm_crop_params bad = p;
    bad.padding = 0.5f;
    CHECK_STATUS(dmllm_segment_box(s, img, box, &bad, mask, (size_t)W * H), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_session_errmsg(s), "padding") != NULL);
    bad = p;
    bad.struct_size = 4;
    CHECK_STATUS(dmllm_segment_box(s, img, box, &bad, mask, (size_t)W * H), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_session_errmsg(s), "struct_size") != NULL);
    bad = p;
    bad.short_side = 8;
    CHECK_STATUS(dmllm_segment_box(s, img, box, &bad, mask, (size_t)W * H), DMLLM_ERR_INVALID_ARGUMENT);
    size_t untouched = 0;
    for (size_t i = 0; i < (size_t)W * H; i++) untouched += mask[i] == 7;
    CHECK_MSG(untouched == (size_t)W * H, "a failed call wrote %zu mask bytes", (size_t)W * H - untouched);

    dmllm_refer_result *r = (dmllm_refer_result *)1;
    CHECK_STATUS(dmllm_refer_segment(s, img, NULL, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(r == NULL);
    dmllm_openset_result *o = (dmllm_openset_result *)1;
    CHECK_STATUS(dmllm_openset_segment(s, img, NULL, 2, &p, &o), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(o == NULL);
    CHECK_STATUS(dmllm_segment_box(NULL, img, box, &p, mask, (size_t)W * H), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_refer_result_free(NULL);
    dmllm_openset_result_free(NULL);

    free(mask);
    dmllm_image_free(img);
    dmllm_session_free(s);
    dmllm_model_free(model);
    return test_finish("test_pipeline");
}
