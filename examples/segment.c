/*
 * segment.c: semantic segmentation with DenseMLLM's readout. The class names are read out of the
 * LM head at the image tokens, so no segmentation decoder is involved; the library upsamples the
 * label scores to the image size and takes the argmax.
 *
 *   segment MODEL_DIR IMAGE CLASS[,CLASS...] [OVERLAY.png]
 *
 * Prints the share of the image each class covers; writes the image blended with the label colours
 * (and a legend) when OVERLAY.png is given.
 */
#include <densemllm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASSES 64

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE CLASS[,CLASS...] [OVERLAY.png]\n", argv[0]);
        return 2;
    }
    /* Split the comma-separated class list in place. */
    const char *classes[MAX_CLASSES];
    int n_classes = 0;
    for (char *name = strtok(argv[3], ","); name && n_classes < MAX_CLASSES; name = strtok(NULL, ","))
        classes[n_classes++] = name;

    dmllm_model *model = NULL;
    dmllm_session *session = NULL;
    dmllm_image *image = NULL;
    dmllm_dense_result *result = NULL;
    int exit_code = 1;

    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    if (dmllm_model_load(argv[1], &mp, &model) != DMLLM_OK || dmllm_session_create(model, &sp, &session) != DMLLM_OK ||
        dmllm_image_load_file(argv[2], &image) != DMLLM_OK) {
        fprintf(stderr, "segment: %s\n", dmllm_last_error());
        goto done;
    }

    dmllm_dense_params dp;
    dmllm_dense_params_init(&dp); /* task SEMANTIC, prompt and alignment from the readout profile */
    dp.class_names = classes;
    dp.n_classes = n_classes;
    if (dmllm_predict_dense(session, image, &dp, &result) != DMLLM_OK) {
        fprintf(stderr, "segment: %s\n", dmllm_session_errmsg(session));
        goto done;
    }

    /* result->labels: [height][width] class indices at the original image size. */
    const size_t n_pixels = (size_t)result->width * result->height;
    printf("image %dx%d, %dx%d tokens\n", result->width, result->height, result->tokens_w, result->tokens_h);
    for (int k = 0; k < n_classes; k++) {
        size_t count = 0;
        for (size_t i = 0; i < n_pixels; i++) count += result->labels[i] == k;
        printf("%s: %.1f%%\n", classes[k], 100.0 * count / n_pixels);
    }
    if (argc == 5 &&
        dmllm_write_overlay_png(argv[4], image, result->labels, result->n_labels, classes, 0.5f) != DMLLM_OK) {
        fprintf(stderr, "segment: %s\n", dmllm_last_error());
        goto done;
    }
    exit_code = 0;

done:
    /* Every *_free accepts NULL, so one exit path serves all failures. */
    dmllm_dense_result_free(result);
    dmllm_image_free(image);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return exit_code;
}
