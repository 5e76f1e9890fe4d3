/*
 * support_model_dir.h: a model directory for tests that need a tokenizer: a golden checkpoint's
 * config.json and weights (symlinked) plus a tokenizer.json of the test's choosing; loading a
 * model directory with a given compute path.
 */
#ifndef DMLLM_SUPPORT_MODEL_DIR_H
#define DMLLM_SUPPORT_MODEL_DIR_H

/* Makes <temp>/<name>/ with symlinks to tests/fixtures/golden/<golden_case>/{config.json,
 * model.safetensors} and, unless tokenizer_json is NULL, to that file as tokenizer.json. Returns
 * the directory (static storage, valid until the next call) or NULL after printing why. */
const char *test_model_dir(const char *name, const char *golden_case, const char *tokenizer_json);

/* Makes <temp>/<name>/ with symlinks to model_dir's config.json, model.safetensors and
 * tokenizer.json, and profile_json written as its readout_profile.json: the model read out
 * otherwise. Returns the directory (static storage, valid until the next call) or NULL. */
const char *test_model_variant(const char *name, const char *model_dir, const char *profile_json);

#include "densemllm.h"

/* Loads a model with the given compute path, counting a failure as a CHECK; NULL on failure. */
dmllm_model *test_load_model(const char *dir, dmllm_compute_type compute);

/* A session with the golden cases' preprocessing (max_num_patches, resize_mode 1 = pillow) and 2
 * threads, counting a failure as a CHECK; NULL on failure. */
dmllm_session *test_new_session(const dmllm_model *model, int max_num_patches, int resize_mode);

/* The one_window golden case behind the text-side tests: its image and preprocessing settings, and
 * an f32 model over its checkpoint with the fixture tokenizer (model dir <temp>/<name>). */
typedef struct test_golden_fixture {
    dmllm_model *model;
    dmllm_image *image;
    int max_patches, resize_mode;
} test_golden_fixture;

/* Fills *f, counting failures as CHECKs; the caller proceeds when f->model and f->image are set. */
void test_golden_fixture_open(const char *name, test_golden_fixture *f);
void test_golden_fixture_close(test_golden_fixture *f);

/* models/tiny (compute AUTO), its sample.png and a session with default parameters. */
typedef struct test_tiny_fixture {
    dmllm_model *model;
    dmllm_image *image;
    dmllm_session *session;
} test_tiny_fixture;

/* Fills *f, counting failures as CHECKs; the caller proceeds when f->session and f->image are set. */
void test_tiny_fixture_open(test_tiny_fixture *f);
void test_tiny_fixture_close(test_tiny_fixture *f);

#endif
