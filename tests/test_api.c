/*
 * test_api.c: the public API contract that needs no model: versions, status strings, params
 * initialisation and struct_size versioning, NULL handling of every entry point, free(NULL),
 * error messages per thread and per session.
 */
#include "densemllm.h"
#include "testutil.h"

#include <pthread.h>
#include <string.h>

static void test_versions(void) {
    CHECK(dmllm_version_number() == DMLLM_VERSION_NUMBER);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", DMLLM_VERSION_MAJOR, DMLLM_VERSION_MINOR, DMLLM_VERSION_PATCH);
    CHECK_MSG(strcmp(dmllm_version_string(), expected) == 0, "%s vs %s", dmllm_version_string(), expected);
}

static void test_status_strings(void) {
    for (int s = DMLLM_ERR_CONTEXT_FULL; s <= DMLLM_OK; s++) {
        const char *text = dmllm_status_str((dmllm_status)s);
        CHECK(text && text[0] && strcmp(text, "unknown status") != 0);
    }
    CHECK(strcmp(dmllm_status_str((dmllm_status)-999), "unknown status") == 0);
}

static void test_params(void) {
    dmllm_model_params mp;
    memset(&mp, 0x7f, sizeof mp);
    dmllm_model_params_init(&mp);
    CHECK(mp.struct_size == sizeof mp && dmllm_model_params_sizeof() == sizeof mp);
    CHECK(mp.compute == DMLLM_COMPUTE_AUTO && mp.progress == NULL && mp.check_only == 0);
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    CHECK(sp.struct_size == sizeof sp && dmllm_session_params_sizeof() == sizeof sp);
    CHECK(sp.max_num_patches == DMLLM_DEFAULT_MAX_NUM_PATCHES && sp.resize_mode == DMLLM_RESIZE_HF);
    dmllm_model_params_init(NULL);
    dmllm_session_params_init(NULL);

    dmllm_model *model = (dmllm_model *)&mp; /* must be overwritten with NULL on failure */
    mp.struct_size = sizeof mp + 8;          /* a newer header than the library */
    CHECK_STATUS(dmllm_model_load("/nonexistent", &mp, &model), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(model == NULL);
    CHECK(strstr(dmllm_last_error(), "struct_size") != NULL);
    mp.struct_size = 2;
    CHECK_STATUS(dmllm_model_load("/nonexistent", &mp, &model), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_model_params_init(&mp);
    mp.compute = (dmllm_compute_type)42;
    CHECK_STATUS(dmllm_model_load("/nonexistent", &mp, &model), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(dmllm_last_error(), "compute") != NULL);
}

static void test_null_arguments(void) {
    dmllm_model *model = NULL;
    CHECK_STATUS(dmllm_model_load(NULL, NULL, &model), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_model_load("/x", NULL, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_model_load("/nonexistent/densemllm", NULL, &model), DMLLM_ERR_IO);
    CHECK(strstr(dmllm_last_error(), "/nonexistent/densemllm") != NULL);
    dmllm_model_info info = {.struct_size = sizeof info};
    CHECK_STATUS(dmllm_model_get_info(NULL, &info), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_session *session = NULL;
    CHECK_STATUS(dmllm_session_create(NULL, NULL, &session), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(session == NULL);
    int32_t id = 0;
    float out[4];
    size_t rows, cols;
    CHECK_STATUS(dmllm_session_eval(NULL, &id, 1), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_encode_image(NULL, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_encode_pixels(NULL, out, 2, 2), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_truncate(NULL, 0), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_logits(NULL, out, 4, &rows), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_image_logits(NULL, DMLLM_ALIGN_OWN, &id, 1, out, 4, &rows, &cols),
                 DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_image_hidden(NULL, DMLLM_ALIGN_OWN, out, 4, &rows, &cols), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_pixel_values(NULL, out, 4, &rows, &cols), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_image_embeddings(NULL, out, 4, &rows, &cols), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_image_grid grid = {.struct_size = sizeof grid};
    CHECK_STATUS(dmllm_session_image_grid(NULL, &grid), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(dmllm_session_n_past(NULL) == 0);
    CHECK(strlen(dmllm_session_errmsg(NULL)) > 0);
    dmllm_image *image = NULL;
    CHECK_STATUS(dmllm_image_load_file(NULL, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_image_load_memory(NULL, 10, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_image_from_rgb(NULL, 2, 2, 0, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(image == NULL);
    int w, h;
    CHECK_STATUS(dmllm_target_size(0, 10, 100, &w, &h), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_image_resize(NULL, 4, 4, DMLLM_RESIZE_HF, &image), DMLLM_ERR_INVALID_ARGUMENT);
    /* Every free function accepts NULL. */
    dmllm_model_free(NULL);
    dmllm_session_free(NULL);
    dmllm_image_free(NULL);
}

static void *fail_in_thread(void *arg) {
    (void)arg;
    dmllm_model *model = NULL;
    dmllm_model_load("/nonexistent/thread-b", NULL, &model);
    return strstr(dmllm_last_error(), "thread-b") ? (void *)1 : NULL;
}

/* The last-error message is per thread: a failure elsewhere does not overwrite ours. */
static void test_thread_local_errors(void) {
    dmllm_model *model = NULL;
    dmllm_model_load("/nonexistent/thread-a", NULL, &model);
    pthread_t thread;
    void *result = NULL;
    CHECK(pthread_create(&thread, NULL, fail_in_thread, NULL) == 0);
    CHECK(pthread_join(thread, &result) == 0);
    CHECK(result == (void *)1);
    CHECK(strstr(dmllm_last_error(), "thread-a") != NULL);
}

static int log_calls;
static void count_logs(dmllm_log_level level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    *(int *)user_data += 1;
}

static void test_log_callback(void) {
    dmllm_log_set(count_logs, &log_calls);
    dmllm_model *model = NULL;
    dmllm_model_load("/nonexistent/log", NULL, &model); /* failures are logged at debug level */
    CHECK(log_calls > 0);
    dmllm_log_set(NULL, NULL);
    int before = log_calls;
    dmllm_model_load("/nonexistent/log", NULL, &model);
    CHECK(log_calls == before);
}

int main(void) {
    test_versions();
    test_status_strings();
    test_params();
    test_null_arguments();
    test_thread_local_errors();
    test_log_callback();
    return test_finish("test_api");
}
