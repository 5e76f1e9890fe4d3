/*
 * support_model_dir.c: see support_model_dir.h.
 */
#include "support_model_dir.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int link_into(const char *dir, const char *name, const char *target) {
    char path[1200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        return -1;
    }
    if (symlink(target, path) == 0) return 0;
    perror(path);
    return -1;
}

const char *test_model_dir(const char *name, const char *golden_case, const char *tokenizer_json) {
    static char dir[1024];
    char golden[1024], target[1100];
    snprintf(dir, sizeof dir, "%s/%s", test_temp_dir(), name);
    if (mkdir(dir, 0700) != 0) {
        perror(dir);
        return NULL;
    }
    snprintf(golden, sizeof golden, "%s/%s", test_source_path("tests/fixtures/golden"), golden_case);
    snprintf(target, sizeof target, "%s/config.json", golden);
    if (link_into(dir, "config.json", target) != 0) return NULL;
    snprintf(target, sizeof target, "%s/model.safetensors", golden);
    if (link_into(dir, "model.safetensors", target) != 0) return NULL;
    if (tokenizer_json && link_into(dir, "tokenizer.json", tokenizer_json) != 0) return NULL;
    return dir;
}

dmllm_model *test_load_model(const char *dir, dmllm_compute_type compute) {
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = compute;
    dmllm_model *model = NULL;
    CHECK_OK(dmllm_model_load(dir, &mp, &model));
    return model;
}

dmllm_session *test_new_session(const dmllm_model *model, int max_num_patches, int resize_mode) {
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.max_num_patches = max_num_patches;
    sp.resize_mode = resize_mode == 1 ? DMLLM_RESIZE_PILLOW : DMLLM_RESIZE_HF;
    sp.n_threads = 2;
    dmllm_session *s = NULL;
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    return s;
}
