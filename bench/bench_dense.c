/*
 * bench_dense.c: "encode once, query many" measured as ratios in one run. On one image and one
 * session: a first semantic query (encodes and prefills the image), a second semantic query with
 * another class list, an FG/BG query and a depth query (all reusing the prefix), then the same
 * second query in a fresh session for comparison, and a prompt-before-image depth query (which
 * must re-run the LLM). Prints each time and its ratio to the first query.
 * Usage: bench_dense [MODEL_DIR [IMAGE [CLASSES_A [CLASSES_B]]]]   (defaults: models/tiny, its sample)
 */
#include "densemllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

enum { MAX_CLASSES = 64 };

typedef struct class_list {
    char storage[1024];
    const char *names[MAX_CLASSES];
    int count;
} class_list;

static void split(const char *text, class_list *list) {
    snprintf(list->storage, sizeof list->storage, "%s", text);
    list->count = 0;
    for (char *item = strtok(list->storage, ","); item && list->count < MAX_CLASSES; item = strtok(NULL, ",")) {
        while (*item == ' ') item++;
        list->names[list->count++] = item;
    }
}

/* Runs one query; returns its wall time or a negative value after printing the failure. */
static double query(dmllm_session *session, const dmllm_image *image, const dmllm_dense_params *params,
                    const char *label, double first) {
    dmllm_dense_result *result = NULL;
    const double t0 = now_seconds();
    dmllm_status status = dmllm_predict_dense(session, image, params, &result);
    const double seconds = now_seconds() - t0;
    if (status != DMLLM_OK) {
        fprintf(stderr, "%s: %s: %s\n", label, dmllm_status_str(status), dmllm_session_errmsg(session));
        return -1.0;
    }
    printf("%-36s %8.4f s  (encode %.4f, prefill %.4f, readout %.4f)  %s", label, seconds, result->seconds_encode,
           result->seconds_prefill, result->seconds_readout, result->reused_prefix ? "reused" : "encoded");
    if (first > 0.0) printf("  = %.3f x first", seconds / first);
    printf("\n");
    dmllm_dense_result_free(result);
    return seconds;
}

int main(int argc, char **argv) {
    const char *model_dir = argc > 1 ? argv[1] : "models/tiny";
    const char *image_path = argc > 2 ? argv[2] : "models/tiny/sample.png";
    class_list a, b;
    split(argc > 3 ? argv[3] : "circle, square, triangle, sky, grass", &a);
    split(argc > 4 ? argv[4] : "star, wall, floor, water", &b);

    dmllm_model *model = NULL;
    dmllm_session *session = NULL, *fresh = NULL;
    dmllm_image *image = NULL;
    if (dmllm_model_load(model_dir, NULL, &model) != DMLLM_OK || dmllm_session_create(model, NULL, &session) != DMLLM_OK ||
        dmllm_session_create(model, NULL, &fresh) != DMLLM_OK || dmllm_image_load_file(image_path, &image) != DMLLM_OK) {
        fprintf(stderr, "bench_dense: %s\n", dmllm_last_error());
        return 1;
    }
    printf("model %s, image %s (%dx%d)\n", model_dir, image_path, dmllm_image_width(image), dmllm_image_height(image));
    dmllm_dense_params semantic_a, semantic_b, fgbg, depth, depth_prompt_first;
    dmllm_dense_params_init(&semantic_a);
    semantic_a.class_names = a.names;
    semantic_a.n_classes = a.count;
    semantic_b = semantic_a;
    semantic_b.class_names = b.names;
    semantic_b.n_classes = b.count;
    dmllm_dense_params_init(&fgbg);
    fgbg.task = DMLLM_TASK_FGBG;
    dmllm_dense_params_init(&depth);
    depth.task = DMLLM_TASK_DEPTH;
    depth_prompt_first = depth;
    depth_prompt_first.layout = DMLLM_LAYOUT_PROMPT_FIRST;

    int failed = 0;
    const double first = query(session, image, &semantic_a, "first query (semantic A)", 0.0);
    failed |= first < 0.0;
    failed |= query(session, image, &semantic_b, "second query (semantic B), same session", first) < 0.0;
    failed |= query(session, image, &fgbg, "FG/BG, same session", first) < 0.0;
    failed |= query(session, image, &depth, "depth, same session", first) < 0.0;
    failed |= query(fresh, image, &semantic_b, "semantic B in a fresh session", first) < 0.0;
    failed |= query(session, image, &depth_prompt_first, "depth, prompt before image", first) < 0.0;
    failed |= query(session, image, &depth_prompt_first, "same prompt-first depth again", first) < 0.0;
    dmllm_image_free(image);
    dmllm_session_free(fresh);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return failed;
}
