/*
 * support_model_dir.c: see support_model_dir.h.
 */
#include "safetensors.h"
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

const char *test_model_variant(const char *name, const char *model_dir, const char *profile_json) {
    static char dir[1024];
    char target[1100];
    snprintf(dir, sizeof dir, "%s/%s", test_temp_dir(), name);
    if (mkdir(dir, 0700) != 0) {
        perror(dir);
        return NULL;
    }
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(target, sizeof target, "%s/%s", model_dir, files[i]);
        if (link_into(dir, files[i], target) != 0) return NULL;
    }
    snprintf(target, sizeof target, "%s/readout_profile.json", dir);
    return test_write_file(target, profile_json, strlen(profile_json)) == 0 ? dir : NULL;
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

void test_golden_fixture_open(const char *name, test_golden_fixture *f) {
    memset(f, 0, sizeof *f);
    char path[1024];
    snprintf(path, sizeof path, "%s/one_window/golden.safetensors", test_source_path("tests/fixtures/golden"));
    dmllm_safetensors *golden = NULL;
    CHECK_OK(dmllm_safetensors_open(path, &golden));
    const dmllm_tensor *rgb = golden ? dmllm_safetensors_find(golden, "image_rgb") : NULL;
    const dmllm_tensor *patches = golden ? dmllm_safetensors_find(golden, "max_num_patches") : NULL;
    const dmllm_tensor *mode = golden ? dmllm_safetensors_find(golden, "resize_mode") : NULL;
    CHECK(rgb && patches && mode);
    if (rgb && patches && mode) {
        f->max_patches = *(const int32_t *)patches->data;
        f->resize_mode = *(const int32_t *)mode->data;
        CHECK_OK(dmllm_image_from_rgb(rgb->data, (int)rgb->shape[1], (int)rgb->shape[0], 0, &f->image));
        const char *dir = test_model_dir(name, "one_window", test_source_path("tests/fixtures/tokenizer/tokenizer.json"));
        if (dir) f->model = test_load_model(dir, DMLLM_COMPUTE_F32);
    }
    dmllm_safetensors_close(golden);
}

void test_golden_fixture_close(test_golden_fixture *f) {
    dmllm_model_free(f->model);
    dmllm_image_free(f->image);
}

void test_tiny_fixture_open(test_tiny_fixture *f) {
    memset(f, 0, sizeof *f);
    f->model = test_load_model(test_source_path("models/tiny"), DMLLM_COMPUTE_AUTO);
    CHECK_OK(dmllm_image_load_file(test_source_path("models/tiny/sample.png"), &f->image));
    if (f->model) CHECK_OK(dmllm_session_create(f->model, NULL, &f->session));
}

void test_tiny_fixture_close(test_tiny_fixture *f) {
    dmllm_session_free(f->session);
    dmllm_image_free(f->image);
    dmllm_model_free(f->model);
}
