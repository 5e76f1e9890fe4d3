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

#include "densemllm.h"

/* Loads a model with the given compute path, counting a failure as a CHECK; NULL on failure. */
dmllm_model *test_load_model(const char *dir, dmllm_compute_type compute);

/* A session with the golden cases' preprocessing (max_num_patches, resize_mode 1 = pillow) and 2
 * threads, counting a failure as a CHECK; NULL on failure. */
dmllm_session *test_new_session(const dmllm_model *model, int max_num_patches, int resize_mode);

#endif
