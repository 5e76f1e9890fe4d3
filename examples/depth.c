/*
 * depth.c: monocular depth with DenseMLLM's readout: depth bins (<custom_N> tokens) read out of the
 * LM head at the image tokens and turned into metres by the model's quantisation profile.
 *
 *   depth MODEL_DIR IMAGE [COLORMAP.png]
 *
 * Prints the nearest, median and farthest depth; writes a colour map (near = warm) when asked.
 */
#include <densemllm.h>

#include <stdio.h>
#include <stdlib.h>

static int compare_floats(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE [COLORMAP.png]\n", argv[0]);
        return 2;
    }
    dmllm_model *model = NULL;
    dmllm_session *session = NULL;
    dmllm_image *image = NULL;
    dmllm_dense_result *result = NULL;
    float *sorted = NULL;
    int exit_code = 1;

    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    if (dmllm_model_load(argv[1], &mp, &model) != DMLLM_OK || dmllm_session_create(model, &sp, &session) != DMLLM_OK ||
        dmllm_image_load_file(argv[2], &image) != DMLLM_OK) {
        fprintf(stderr, "depth: %s\n", dmllm_last_error());
        goto done;
    }

    dmllm_dense_params dp;
    dmllm_dense_params_init(&dp);
    dp.task = DMLLM_TASK_DEPTH; /* bins and their metres come from the profile's default quantisation */
    if (dmllm_predict_dense(session, image, &dp, &result) != DMLLM_OK) {
        fprintf(stderr, "depth: %s\n", dmllm_session_errmsg(session));
        goto done;
    }

    /* result->depth_m: [height][width] metres; a sorted copy gives the median. */
    const size_t n_pixels = (size_t)result->width * result->height;
    sorted = malloc(n_pixels * sizeof *sorted);
    if (!sorted) {
        fprintf(stderr, "depth: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < n_pixels; i++) sorted[i] = result->depth_m[i];
    qsort(sorted, n_pixels, sizeof *sorted, compare_floats);
    printf("image %dx%d, %d depth bins\n", result->width, result->height, result->n_labels);
    printf("depth: min %.3f m, median %.3f m, max %.3f m\n", sorted[0], sorted[n_pixels / 2], sorted[n_pixels - 1]);

    /* min_m = max_m = 0: the colour range is the 2nd..98th percentile of the map. */
    if (argc == 4 &&
        dmllm_write_depth_color_png(argv[3], result->depth_m, result->width, result->height, 0.0f, 0.0f) != DMLLM_OK) {
        fprintf(stderr, "depth: %s\n", dmllm_last_error());
        goto done;
    }
    exit_code = 0;

done:
    free(sorted);
    dmllm_dense_result_free(result);
    dmllm_image_free(image);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return exit_code;
}
