/*
 * refseg.c: referring segmentation, the demo's two stages: the model answers a grounding question
 * with a box for the phrase, then the box (padded, outlined, cropped) is segmented as <FG>/<BG>
 * and the mask pasted back at the image size.
 *
 *   refseg MODEL_DIR IMAGE "PHRASE" [MASK.png]
 *
 * Prints the grounding answer, the box and the mask area; writes the mask as a two-label PNG.
 */
#include <densemllm.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE \"PHRASE\" [MASK.png]\n", argv[0]);
        return 2;
    }
    dmllm_model *model = NULL;
    dmllm_session *session = NULL;
    dmllm_image *image = NULL;
    dmllm_refer_result *result = NULL;
    uint16_t *labels = NULL;
    int exit_code = 1;

    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    if (dmllm_model_load(argv[1], &mp, &model) != DMLLM_OK || dmllm_session_create(model, &sp, &session) != DMLLM_OK ||
        dmllm_image_load_file(argv[2], &image) != DMLLM_OK) {
        fprintf(stderr, "refseg: %s\n", dmllm_last_error());
        goto done;
    }

    /* Crop padding, crop size and outline come from the readout profile; the grounding answer is
     * decoded greedily (the official decoding) but kept short. */
    dmllm_generate_params gp;
    dmllm_generate_params_init(&gp);
    gp.max_new_tokens = 64;
    dmllm_crop_params cp;
    dmllm_crop_params_init(&cp);
    cp.generate = &gp;
    if (dmllm_refer_segment(session, image, argv[3], &cp, &result) != DMLLM_OK) {
        fprintf(stderr, "refseg: %s\n", dmllm_session_errmsg(session));
        goto done;
    }

    printf("answer: %s\n", result->answer);
    if (!result->found) {
        /* Not an error: the model simply gave no usable box. */
        printf("found: no (%s)\n", result->message);
        exit_code = 0;
        goto done;
    }
    /* result->mask: [height][width] 1 on the referred object. */
    const size_t n_pixels = (size_t)result->width * result->height;
    labels = malloc(n_pixels * sizeof *labels);
    if (!labels) {
        fprintf(stderr, "refseg: out of memory\n");
        goto done;
    }
    size_t area = 0;
    for (size_t i = 0; i < n_pixels; i++) area += labels[i] = result->mask[i];
    printf("found: yes, box %d,%d,%d,%d, mask %.1f%% of the image\n", result->box[0], result->box[1], result->box[2],
           result->box[3], 100.0 * area / n_pixels);
    if (argc == 5 && dmllm_write_label_png(argv[4], labels, result->width, result->height, 2) != DMLLM_OK) {
        fprintf(stderr, "refseg: %s\n", dmllm_last_error());
        goto done;
    }
    exit_code = 0;

done:
    free(labels);
    dmllm_refer_result_free(result);
    dmllm_image_free(image);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return exit_code;
}
