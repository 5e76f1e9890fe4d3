/*
 * test_bad_input.c: the bad-input matrix over the whole public API (issue 20, item 13). Every
 * DMLLM_API function of include/densemllm.h has a row here (checked against the header at run
 * time, so a new export without a row fails): NULL handles and pointers, wrong struct_size,
 * absurd values (0, negative and huge sizes, patch cap 0, empty and 100,000-entry label lists,
 * non-UTF-8 text, NaN and inf floats). Each bad call must return the header's documented status
 * with a message naming the problem, write no file, and leave the session as usable as before:
 * after every bad call on the session, one dense prediction on models/tiny's sample image must
 * still give exactly the labels it gave first. The ASan pass of scripts/test.sh runs this too, so
 * LeakSanitizer checks that no failing path leaks.
 */
#define _GNU_SOURCE /* strcasestr */
#include "densemllm.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_HUGE_LABELS 100000

static dmllm_model *model;     /* models/tiny, f32 */
static dmllm_session *session; /* small patch cap so the health check stays cheap */
static dmllm_image *image;     /* models/tiny/sample.png */
static uint16_t *base_labels;  /* [h][w] FG/BG labels of the first prediction */
static size_t base_pixels;
static const char *row_name; /* function of the current row */
static const char *rows_done[256]; /* row() calls, repeats included */
static int n_rows, n_cases;
static char out_png[512];        /* <temp>/out.png: the writers' target */

/* A row of the matrix: all cases below it exercise `name` until the next row. */
static void row(const char *name) {
    row_name = name;
    const int capacity = (int)(sizeof rows_done / sizeof *rows_done);
    CHECK_MSG(n_rows < capacity, "more than %d rows: enlarge rows_done", capacity);
    if (n_rows < capacity) rows_done[n_rows++] = name;
}

static int no_files_left(void) {
    DIR *dir = opendir(test_temp_dir());
    if (!dir) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dir);
    return n == 0;
}

static dmllm_dense_result *predict_fgbg(void) {
    dmllm_dense_params dp;
    dmllm_dense_params_init(&dp);
    dp.task = DMLLM_TASK_FGBG;
    dmllm_dense_result *r = NULL;
    CHECK_OK(dmllm_predict_dense(session, image, &dp, &r));
    return r;
}

/* The session still works and answers exactly as before the bad call. */
static void check_session_usable(const char *expr, int line) {
    dmllm_dense_result *r = predict_fgbg();
    int same = r && (size_t)r->width * (size_t)r->height == base_pixels &&
               memcmp(r->labels, base_labels, base_pixels * sizeof *base_labels) == 0;
    CHECK_MSG(same, "line %d (%s): the session answers differently after %s", line, row_name, expr);
    dmllm_dense_result_free(r);
}

/* One case: the status is the expected one and a failure's message is non-empty and names
 * `needle` (case-insensitively; NULL: any non-empty message); the session message agrees. */
static void expect(int got, int expected, const char *needle, const char *expr, int line,
                   int on_session) {
    n_cases++;
    test_checks++;
    const char *msg = dmllm_last_error();
    int ok = got == expected;
    if (ok && expected != DMLLM_OK) ok = msg[0] && (!needle || strcasestr(msg, needle));
    if (ok && expected != DMLLM_OK && on_session)
        ok = strcmp(dmllm_session_errmsg(session), msg) == 0;
    if (!ok) {
        test_failures++;
        fprintf(
            stderr,
            "line %d: %s: %s returned %d (%s), expected %d (%s) naming \"%s\"; message: \"%s\"\n",
            line, row_name, expr, got, dmllm_status_str((dmllm_status)got), expected,
            dmllm_status_str((dmllm_status)expected), needle ? needle : "", msg);
    }
    test_checks++;
    if (!no_files_left() && expected != DMLLM_OK) {
        test_failures++;
        fprintf(stderr, "line %d: %s: %s left a file behind\n", line, row_name, expr);
        char command[300];
        snprintf(command, sizeof command, "rm -rf '%s'/*", test_temp_dir());
        if (system(command) != 0) fprintf(stderr, "could not empty %s\n", test_temp_dir());
    }
    if (expected == DMLLM_OK) remove(out_png); /* a valid call's file */
    if (on_session) check_session_usable(expr, line);
}

/* A call without a session, and one on the session (health-checked afterwards). */
#define BAD(expr, expected, needle) expect((expr), (expected), (needle), #expr, __LINE__, 0)
#define BAD_S(expr, expected, needle) expect((expr), (expected), (needle), #expr, __LINE__, 1)
/* A call that cannot fail (getters, free(NULL), init(NULL)): it must simply not crash. */
#define SAFE(stmt)                                                                                 \
    do {                                                                                           \
        stmt;                                                                                      \
        n_cases++;                                                                                 \
        test_checks++;                                                                             \
    } while (0)

static const char bad_utf8[] =
    "caf\xc3 \xff\xfe\x80 \xed\xa0\x80"; /* truncated, stray, surrogate */

/* ---- library-wide -----------------------------------------------------------------------------
 */

static int log_calls;
static void count_log(dmllm_log_level level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    (void)user_data;
    log_calls++;
}

static void rows_library(void) {
    row("dmllm_version_number");
    SAFE(CHECK(dmllm_version_number() == DMLLM_VERSION_NUMBER));
    row("dmllm_version_string");
    SAFE(CHECK(dmllm_version_string() && dmllm_version_string()[0]));
    row("dmllm_status_str");
    SAFE(CHECK(strcmp(dmllm_status_str((dmllm_status)1), "unknown status") == 0));
    SAFE(CHECK(strcmp(dmllm_status_str((dmllm_status)INT32_MIN), "unknown status") == 0));
    SAFE(CHECK(strcmp(dmllm_status_str((dmllm_status)-12), "unknown status") == 0));
    row("dmllm_last_error");
    BAD(dmllm_image_load_file(NULL, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    SAFE(CHECK(dmllm_last_error()[0] != 0));
    row("dmllm_text_free");
    SAFE(dmllm_text_free(NULL));
    row("dmllm_log_set");
    SAFE(dmllm_log_set(count_log, NULL)); /* a NULL user_data is the caller's business */
    dmllm_image *none = NULL;
    BAD(dmllm_image_load_file("/nonexistent/x.png", &none), DMLLM_ERR_IO, "/nonexistent/x.png");
    SAFE(CHECK(log_calls > 0));
    SAFE(dmllm_log_set(NULL, &log_calls)); /* silence; the user_data is then never used */
}

/* ---- params init / sizeof and every free function with NULL -----------------------------------
 */

static void rows_init_sizeof_free(void) {
    row("dmllm_model_params_init");
    SAFE(dmllm_model_params_init(NULL));
    row("dmllm_session_params_init");
    SAFE(dmllm_session_params_init(NULL));
    row("dmllm_dense_params_init");
    SAFE(dmllm_dense_params_init(NULL));
    row("dmllm_generate_params_init");
    SAFE(dmllm_generate_params_init(NULL));
    row("dmllm_crop_params_init");
    SAFE(dmllm_crop_params_init(NULL));
    row("dmllm_crf_params_init");
    SAFE(dmllm_crf_params_init(NULL));
    row("dmllm_seg_metrics_params_init");
    SAFE(dmllm_seg_metrics_params_init(NULL));
    row("dmllm_depth_metrics_params_init");
    SAFE(dmllm_depth_metrics_params_init(NULL));
    row("dmllm_image_params_init");
    SAFE(dmllm_image_params_init(NULL));
    row("dmllm_overlay_params_init");
    SAFE(dmllm_overlay_params_init(NULL));
    row("dmllm_image_params_sizeof");
    SAFE(CHECK(dmllm_image_params_sizeof() == sizeof(dmllm_image_params)));
    row("dmllm_overlay_params_sizeof");
    SAFE(CHECK(dmllm_overlay_params_sizeof() == sizeof(dmllm_overlay_params)));
    row("dmllm_model_params_sizeof");
    SAFE(CHECK(dmllm_model_params_sizeof() == sizeof(dmllm_model_params)));
    row("dmllm_session_params_sizeof");
    SAFE(CHECK(dmllm_session_params_sizeof() == sizeof(dmllm_session_params)));
    row("dmllm_dense_params_sizeof");
    SAFE(CHECK(dmllm_dense_params_sizeof() == sizeof(dmllm_dense_params)));
    row("dmllm_generate_params_sizeof");
    SAFE(CHECK(dmllm_generate_params_sizeof() == sizeof(dmllm_generate_params)));
    row("dmllm_crop_params_sizeof");
    SAFE(CHECK(dmllm_crop_params_sizeof() == sizeof(dmllm_crop_params)));
    row("dmllm_crf_params_sizeof");
    SAFE(CHECK(dmllm_crf_params_sizeof() == sizeof(dmllm_crf_params)));
    row("dmllm_seg_metrics_params_sizeof");
    SAFE(CHECK(dmllm_seg_metrics_params_sizeof() == sizeof(dmllm_seg_metrics_params)));
    row("dmllm_depth_metrics_params_sizeof");
    SAFE(CHECK(dmllm_depth_metrics_params_sizeof() == sizeof(dmllm_depth_metrics_params)));
    row("dmllm_model_free");
    SAFE(dmllm_model_free(NULL));
    row("dmllm_session_free");
    SAFE(dmllm_session_free(NULL));
    row("dmllm_image_free");
    SAFE(dmllm_image_free(NULL));
    row("dmllm_dense_result_free");
    SAFE(dmllm_dense_result_free(NULL));
    row("dmllm_generate_result_free");
    SAFE(dmllm_generate_result_free(NULL));
    row("dmllm_regions_free");
    SAFE(dmllm_regions_free(NULL));
    row("dmllm_refer_result_free");
    SAFE(dmllm_refer_result_free(NULL));
    row("dmllm_openset_result_free");
    SAFE(dmllm_openset_result_free(NULL));
    row("dmllm_seg_metrics_free");
    SAFE(dmllm_seg_metrics_free(NULL));
    row("dmllm_seg_result_free");
    SAFE(dmllm_seg_result_free(NULL));
    row("dmllm_depth_metrics_free");
    SAFE(dmllm_depth_metrics_free(NULL));
    row("dmllm_mask_metrics_free");
    SAFE(dmllm_mask_metrics_free(NULL));
    row("dmllm_mask_text_result_free");
    SAFE(dmllm_mask_text_result_free(NULL));
    row("dmllm_png_values_free");
    SAFE(dmllm_png_values_free(NULL));
}

/* ---- model ------------------------------------------------------------------------------------
 */

static void rows_model(void) {
    const char *dir = test_source_path("models/tiny");
    dmllm_model *m = NULL;
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    row("dmllm_model_load");
    BAD(dmllm_model_load(NULL, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_model_load(dir, &mp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_model_load("", &mp, &m), DMLLM_ERR_IO, "config.json");
    BAD(dmllm_model_load(bad_utf8, &mp, &m), DMLLM_ERR_IO, "config.json");
    BAD(dmllm_model_load(test_source_path("models/tiny/sample.png"), &mp, &m), DMLLM_ERR_IO,
        "sample.png");
    mp.struct_size = 0;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    mp.struct_size = 3;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    struct {
        dmllm_model_params p;
        uint64_t tail;
    } big = {.tail = 1};
    dmllm_model_params_init(&big.p);
    big.p.struct_size = sizeof big;
    BAD(dmllm_model_load(dir, &big.p, &m), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    dmllm_model_params_init(&mp);
    mp.compute = (dmllm_compute_type)-1;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "compute");
    mp.compute = (dmllm_compute_type)99;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "compute");
    dmllm_model_params_init(&mp);
    mp.weights = (dmllm_weights_type)-1;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "weights = -1");
    mp.weights = (dmllm_weights_type)4;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "weights = 4");
    mp.weights = DMLLM_WEIGHTS_BF16;
    mp.compute = DMLLM_COMPUTE_F32;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "bf16 weights conflict with compute onednn-f32");
    mp.weights = DMLLM_WEIGHTS_INT8;
    mp.compute = DMLLM_COMPUTE_OPENBLAS;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_UNSUPPORTED, "int8 weights run on oneDNN only");
    dmllm_model_params_init(&mp);
    mp.memory_limit_bytes = -1;
    BAD(dmllm_model_load(dir, &mp, &m), DMLLM_ERR_INVALID_ARGUMENT, "memory_limit_bytes");
    CHECK(m == NULL);

    row("dmllm_model_get_info");
    dmllm_model_info info = {.struct_size = sizeof info};
    BAD(dmllm_model_get_info(NULL, &info), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_model_get_info(model, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    info.struct_size = 0;
    BAD(dmllm_model_get_info(model, &info), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    info.struct_size = 2;
    BAD(dmllm_model_get_info(model, &info), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    info.struct_size = sizeof info + 8;
    BAD(dmllm_model_get_info(model, &info), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
}

/* ---- images and preprocessing -----------------------------------------------------------------
 */

/* The limits of dmllm_image_params on both loaders: sample.png (320x256) must pass neither a bad
 * struct nor a negative limit, and the smallest limits must refuse it with their own status. */
static void image_params_case(const dmllm_image_params *ip, const void *png, size_t png_size,
                              int expected, const char *needle, int line) {
    dmllm_image *im = NULL;
    row("dmllm_image_load_file_ex");
    expect(dmllm_image_load_file_ex(test_source_path("models/tiny/sample.png"), ip, &im),
           expected, needle, "dmllm_image_load_file_ex(sample.png, ip, &im)", line, 0);
    dmllm_image_free(im);
    im = NULL;
    row("dmllm_image_load_memory_ex");
    expect(dmllm_image_load_memory_ex(png, png_size, ip, &im), expected, needle,
           "dmllm_image_load_memory_ex(png, png_size, ip, &im)", line, 0);
    dmllm_image_free(im);
}

static void rows_image_params(const void *png, size_t png_size) {
    dmllm_image_params ip;
    dmllm_image_params_init(&ip);
    ip.struct_size = 0;
    image_params_case(&ip, png, png_size, DMLLM_ERR_INVALID_ARGUMENT, "struct_size", __LINE__);
    ip.struct_size = 4;
    image_params_case(&ip, png, png_size, DMLLM_ERR_INVALID_ARGUMENT, "struct_size", __LINE__);
    struct {
        dmllm_image_params p;
        uint64_t tail;
    } big = {.tail = 1};
    dmllm_image_params_init(&big.p);
    big.p.struct_size = sizeof big;
    image_params_case(&big.p, png, png_size, DMLLM_ERR_INVALID_ARGUMENT, "struct_size", __LINE__);
    dmllm_image_params_init(&ip);
    ip.max_pixels = -1;
    image_params_case(&ip, png, png_size, DMLLM_ERR_INVALID_ARGUMENT, "max_pixels -1", __LINE__);
    dmllm_image_params_init(&ip);
    ip.max_encoded_bytes = -5;
    image_params_case(&ip, png, png_size, DMLLM_ERR_INVALID_ARGUMENT, "max_encoded_bytes -5",
                      __LINE__);
    dmllm_image_params_init(&ip);
    ip.memory_limit_bytes = INT64_MIN;
    image_params_case(&ip, png, png_size, DMLLM_ERR_INVALID_ARGUMENT,
                      "memory_limit_bytes -9223372036854775808", __LINE__);
    dmllm_image_params_init(&ip);
    ip.max_pixels = 320 * 256 - 1;
    image_params_case(&ip, png, png_size, DMLLM_ERR_UNSUPPORTED, "max_pixels", __LINE__);
    dmllm_image_params_init(&ip);
    ip.max_encoded_bytes = 10;
    image_params_case(&ip, png, png_size, DMLLM_ERR_UNSUPPORTED, "max_encoded_bytes", __LINE__);
    dmllm_image_params_init(&ip);
    ip.memory_limit_bytes = 1;
    image_params_case(&ip, png, png_size, DMLLM_ERR_OUT_OF_MEMORY, "needs", __LINE__);
    image_params_case(NULL, png, png_size, DMLLM_OK, NULL, __LINE__); /* NULL: the defaults */
    row("dmllm_image_load_file_ex");
    dmllm_image *im = NULL;
    BAD(dmllm_image_load_file_ex(NULL, &ip, &im), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_file_ex(test_source_path("models/tiny/sample.png"), &ip, NULL),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_file_ex(test_source_path("models/tiny"), NULL, &im), DMLLM_ERR_IO,
        "directory");
    CHECK(im == NULL);
}

static void rows_images(void) {
    dmllm_image *im = NULL;
    row("dmllm_image_load_file");
    BAD(dmllm_image_load_file(NULL, &im), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_file(test_source_path("models/tiny/sample.png"), NULL),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_file("", &im), DMLLM_ERR_IO, NULL);
    BAD(dmllm_image_load_file(bad_utf8, &im), DMLLM_ERR_IO, "caf");
    BAD(dmllm_image_load_file(test_source_path("models/tiny"), &im), DMLLM_ERR_IO, "models/tiny");
    BAD(dmllm_image_load_file(test_source_path("models/tiny/config.json"), &im),
        DMLLM_ERR_UNSUPPORTED, "config.json");
    CHECK(im == NULL);

    row("dmllm_image_load_memory");
    size_t png_size = 0;
    uint8_t *png = test_read_file(test_source_path("models/tiny/sample.png"), &png_size);
    CHECK(png && png_size > 100);
    BAD(dmllm_image_load_memory(NULL, 10, &im), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_memory(png, png_size, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_memory(png, 0, &im), DMLLM_ERR_FORMAT, NULL);
    BAD(dmllm_image_load_memory(png, 60, &im), DMLLM_ERR_FORMAT, NULL); /* truncated PNG */
    BAD(dmllm_image_load_memory(bad_utf8, sizeof bad_utf8, &im), DMLLM_ERR_UNSUPPORTED, "format");

    row("dmllm_image_load_memory_ex");
    dmllm_image_params ip;
    dmllm_image_params_init(&ip);
    BAD(dmllm_image_load_memory_ex(NULL, 10, &ip, &im), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_memory_ex(png, png_size, &ip, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_load_memory_ex(png, 0, &ip, &im), DMLLM_ERR_FORMAT, "0 bytes");
    rows_image_params(png, png_size);
    free(png);

    row("dmllm_image_from_rgb");
    static const uint8_t rgb[4 * 4 * 3];
    BAD(dmllm_image_from_rgb(NULL, 2, 2, 0, &im), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_from_rgb(rgb, 2, 2, 0, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_from_rgb(rgb, 0, 2, 0, &im), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_image_from_rgb(rgb, 2, -1, 0, &im), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD(dmllm_image_from_rgb(rgb, INT32_MAX, INT32_MAX, 0, &im), DMLLM_ERR_UNSUPPORTED,
        "2147483647");
    BAD(dmllm_image_from_rgb(rgb, 4, 4, 5, &im), DMLLM_ERR_INVALID_ARGUMENT, "stride");
    CHECK(im == NULL);

    row("dmllm_image_width");
    SAFE(CHECK(dmllm_image_width(NULL) == 0));
    row("dmllm_image_height");
    SAFE(CHECK(dmllm_image_height(NULL) == 0));
    row("dmllm_image_pixels");
    SAFE(CHECK(dmllm_image_pixels(NULL) == NULL));

    row("dmllm_target_size");
    int w = 0, h = 0;
    BAD(dmllm_target_size(0, 10, 100, &w, &h), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_target_size(10, -5, 100, &w, &h), DMLLM_ERR_INVALID_ARGUMENT, "-5");
    BAD(dmllm_target_size(10, 10, 0, &w, &h), DMLLM_ERR_INVALID_ARGUMENT, "max_num_patches");
    BAD(dmllm_target_size(10, 10, 3, &w, &h), DMLLM_ERR_INVALID_ARGUMENT, "max_num_patches");
    BAD(dmllm_target_size(10, 10, -1, &w, &h), DMLLM_ERR_INVALID_ARGUMENT, "max_num_patches");
    BAD(dmllm_target_size(10, 10, 100, NULL, &h), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_target_size(10, 10, 100, &w, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_target_size(INT32_MAX, INT32_MAX, INT32_MAX, &w, &h), DMLLM_ERR_INVALID_ARGUMENT,
        "268435456");

    row("dmllm_image_resize");
    BAD(dmllm_image_resize(NULL, 4, 4, DMLLM_RESIZE_HF, &im), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_resize(image, 4, 4, DMLLM_RESIZE_HF, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_image_resize(image, 0, 4, DMLLM_RESIZE_HF, &im), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_image_resize(image, 4, -4, DMLLM_RESIZE_HF, &im), DMLLM_ERR_INVALID_ARGUMENT, "-4");
    BAD(dmllm_image_resize(image, 4, 4, (dmllm_resize_mode)7, &im), DMLLM_ERR_INVALID_ARGUMENT,
        "mode");
    BAD(dmllm_image_resize(image, INT32_MAX, INT32_MAX, DMLLM_RESIZE_HF, &im),
        DMLLM_ERR_UNSUPPORTED, "2147483647");
    CHECK(im == NULL);

    row("dmllm_read_png_values");
    dmllm_png_values *v = NULL;
    BAD(dmllm_read_png_values(NULL, &v), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_read_png_values(test_source_path("models/tiny/sample.png"), NULL),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_read_png_values(bad_utf8, &v), DMLLM_ERR_IO, "caf");
    BAD(dmllm_read_png_values(test_source_path("models/tiny/config.json"), &v), DMLLM_ERR_FORMAT,
        "config.json");
    BAD(dmllm_read_png_values(test_source_path("models/tiny/sample.png"), &v),
        DMLLM_ERR_UNSUPPORTED, "RGB");
    CHECK(v == NULL);
}

/* ---- sessions ---------------------------------------------------------------------------------
 */

static void rows_session(void) {
    dmllm_session *s = NULL;
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    row("dmllm_session_create");
    BAD(dmllm_session_create(NULL, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_session_create(model, &sp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    sp.struct_size = 0;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    sp.struct_size = sizeof sp + 4;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    dmllm_session_params_init(&sp);
    sp.max_num_patches = 0;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "max_num_patches");
    sp.max_num_patches = -7;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "max_num_patches");
    dmllm_session_params_init(&sp);
    sp.resize_mode = (dmllm_resize_mode)5;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "resize_mode");
    dmllm_session_params_init(&sp);
    sp.n_ctx = INT32_MAX; /* an explicit n_ctx beyond the model's positions */
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT,
        "max_position_embeddings");
    sp.n_ctx = 32768 + 1; /* models/tiny: max_position_embeddings 32768 */
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT,
        "max_position_embeddings 32768");
    dmllm_session_params_init(&sp);
    sp.memory_limit_bytes = -1;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "memory_limit_bytes");
    sp.memory_limit_bytes = INT64_MIN;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_INVALID_ARGUMENT, "memory_limit_bytes");
    sp.memory_limit_bytes = 1;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_ERR_OUT_OF_MEMORY, "needs");
    CHECK(s == NULL);
    /* The model's limit is its sessions' default; loading is not checked against it. */
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.memory_limit_bytes = 1;
    dmllm_model *limited = NULL;
    CHECK_OK(dmllm_model_load(test_source_path("models/tiny"), &mp, &limited));
    dmllm_session_params_init(&sp);
    if (limited) BAD(dmllm_session_create(limited, &sp, &s), DMLLM_ERR_OUT_OF_MEMORY, "needs");
    dmllm_model_free(limited);
    CHECK(s == NULL);
    /* The derived n_ctx max_num_patches/4 + 4096 neither overflows nor exceeds the model's
     * positions: the session is made, and an image beyond its context is refused at encode. */
    dmllm_session_params_init(&sp);
    sp.max_num_patches = INT32_MAX;
    BAD(dmllm_session_create(model, &sp, &s), DMLLM_OK, NULL);
    dmllm_session_free(s);
    s = NULL;
    sp.n_ctx = 64; /* sample.png at its own 320x256: 20 x 16 patches, 80 tokens */
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    if (s) {
        row("dmllm_session_encode_image");
        BAD(dmllm_session_encode_image(s, image), DMLLM_ERR_CONTEXT_FULL, "max_num_patches");
        CHECK(strcmp(dmllm_session_errmsg(s), dmllm_last_error()) == 0);
        /* The session still works: an image that fits, then its tokens. */
        static const uint8_t small_rgb[32 * 32 * 3];
        dmllm_image *small = NULL;
        CHECK_OK(dmllm_image_from_rgb(small_rgb, 32, 32, 0, &small));
        CHECK_OK(dmllm_session_encode_image(s, small));
        const int32_t image_ids[3] = {dmllm_token_id(model, "<|vision_start|>"),
                                      dmllm_token_id(model, "<|image_pad|>"),
                                      dmllm_token_id(model, "<|vision_end|>")};
        CHECK_OK(dmllm_session_eval(s, image_ids, 3));
        CHECK(dmllm_session_n_past(s) == 3);
        dmllm_image_free(small);
        dmllm_session_free(s);
        s = NULL;
    }
    row("dmllm_session_create");
    dmllm_model_params_init(&mp);
    mp.check_only = 1;
    dmllm_model *checked = NULL;
    CHECK_OK(dmllm_model_load(test_source_path("models/tiny"), &mp, &checked));
    dmllm_session_params_init(&sp);
    BAD(dmllm_session_create(checked, &sp, &s), DMLLM_ERR_STATE, "check_only");
    dmllm_model_free(checked);

    row("dmllm_session_errmsg");
    SAFE(CHECK(dmllm_session_errmsg(NULL)[0] != 0));
    row("dmllm_session_n_past");
    SAFE(CHECK(dmllm_session_n_past(NULL) == 0));

    row("dmllm_session_encode_image");
    BAD(dmllm_session_encode_image(NULL, image), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_encode_image(session, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");

    row("dmllm_session_encode_pixels");
    static float pixels[4 * 3 * 16 * 16];
    BAD(dmllm_session_encode_pixels(NULL, pixels, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_encode_pixels(session, NULL, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_encode_pixels(session, pixels, 0, 2), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD_S(dmllm_session_encode_pixels(session, pixels, 2, -2), DMLLM_ERR_INVALID_ARGUMENT, "-2");
    BAD_S(dmllm_session_encode_pixels(session, pixels, 3, 2), DMLLM_ERR_INVALID_ARGUMENT, "even");
    BAD_S(dmllm_session_encode_pixels(session, pixels, INT32_MAX - 1, INT32_MAX - 1),
          DMLLM_ERR_INVALID_ARGUMENT, "max_num_patches");
    pixels[5] = NAN;
    BAD_S(dmllm_session_encode_pixels(session, pixels, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "finite");
    pixels[5] = INFINITY;
    BAD_S(dmllm_session_encode_pixels(session, pixels, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "finite");
    pixels[5] = 0;

    row("dmllm_session_image_grid");
    dmllm_image_grid grid = {.struct_size = sizeof grid};
    BAD(dmllm_session_image_grid(NULL, &grid), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    /* A const session cannot keep the message: dmllm_last_error() has it. */
    BAD(dmllm_session_image_grid(session, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    const uint32_t bad_grid_sizes[] = {0, 4, sizeof grid + 8};
    for (size_t i = 0; i < sizeof bad_grid_sizes / sizeof *bad_grid_sizes; i++) {
        grid.struct_size = bad_grid_sizes[i];
        BAD(dmllm_session_image_grid(session, &grid), DMLLM_ERR_INVALID_ARGUMENT, "dmllm_image_grid.struct_size");
    }

    int32_t ids[4] = {1, 2, 3, 4};
    const int vocab = 4721;
    row("dmllm_session_eval");
    BAD(dmllm_session_eval(NULL, ids, 1), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_eval(session, NULL, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_eval(session, ids, -1), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD_S(dmllm_session_eval(session, ids, INT32_MAX), DMLLM_ERR_CONTEXT_FULL, "2147483647");
    ids[2] = -1;
    BAD_S(dmllm_session_eval(session, ids, 4), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    ids[2] = vocab;
    BAD_S(dmllm_session_eval(session, ids, 4), DMLLM_ERR_INVALID_ARGUMENT, "4721");
    ids[2] = INT32_MAX;
    BAD_S(dmllm_session_eval(session, ids, 4), DMLLM_ERR_INVALID_ARGUMENT, "2147483647");
    int32_t pads[100]; /* <|image_pad|> slots beyond the encoded image's tokens */
    for (int i = 0; i < 100; i++) pads[i] = 511;
    BAD_S(dmllm_session_eval(session, pads, 100), DMLLM_ERR_SHAPE, "image pads");

    row("dmllm_session_truncate");
    BAD(dmllm_session_truncate(NULL, 0), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_truncate(session, -1), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD_S(dmllm_session_truncate(session, INT32_MIN), DMLLM_ERR_INVALID_ARGUMENT, "-2147483648");

    float out[64]; /* capacity 8 for the too-small cases, 64 where the call must reach its checks */
    size_t n = 0, rows = 0, cols = 0;
    row("dmllm_session_logits");
    BAD(dmllm_session_logits(NULL, out, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    /* Count pointers are optional and a NULL buffer has capacity 0 (header, size queries). */
    BAD_S(dmllm_session_logits(session, out, 8, NULL), DMLLM_ERR_BUFFER_TOO_SMALL, "capacity");
    BAD_S(dmllm_session_logits(session, NULL, 8, &n), DMLLM_ERR_BUFFER_TOO_SMALL, "capacity is 0");
    BAD_S(dmllm_session_logits(session, out, 8, &n), DMLLM_ERR_BUFFER_TOO_SMALL, "4721");
    CHECK(n == (size_t)vocab);

    row("dmllm_session_pixel_values");
    BAD(dmllm_session_pixel_values(NULL, out, 8, &rows, &cols), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_pixel_values(session, out, 8, NULL, &cols), DMLLM_ERR_BUFFER_TOO_SMALL,
          "capacity");
    BAD_S(dmllm_session_pixel_values(session, out, 8, &rows, NULL), DMLLM_ERR_BUFFER_TOO_SMALL,
          "capacity");
    BAD_S(dmllm_session_pixel_values(session, NULL, 8, &rows, &cols), DMLLM_ERR_BUFFER_TOO_SMALL,
          "capacity is 0");
    BAD_S(dmllm_session_pixel_values(session, out, 8, &rows, &cols), DMLLM_ERR_BUFFER_TOO_SMALL,
          "capacity");
    CHECK(rows > 0 && cols == 3 * 16 * 16);

    row("dmllm_session_image_embeddings");
    BAD(dmllm_session_image_embeddings(NULL, out, 8, &rows, &cols), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD_S(dmllm_session_image_embeddings(session, out, 8, NULL, &cols), DMLLM_ERR_BUFFER_TOO_SMALL,
          "capacity");
    BAD_S(dmllm_session_image_embeddings(session, NULL, 8, &rows, &cols),
          DMLLM_ERR_BUFFER_TOO_SMALL, "capacity is 0");
    BAD_S(dmllm_session_image_embeddings(session, out, 8, &rows, &cols), DMLLM_ERR_BUFFER_TOO_SMALL,
          "capacity");
    CHECK(cols == 128);

    row("dmllm_session_image_hidden");
    BAD(dmllm_session_image_hidden(NULL, DMLLM_ALIGN_OWN, out, 8, &rows, &cols),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_image_hidden(session, (dmllm_alignment)9, out, 8, &rows, &cols),
          DMLLM_ERR_INVALID_ARGUMENT, "alignment");
    BAD_S(dmllm_session_image_hidden(session, (dmllm_alignment)-1, out, 8, &rows, &cols),
          DMLLM_ERR_INVALID_ARGUMENT, "alignment");
    BAD_S(dmllm_session_image_hidden(session, DMLLM_ALIGN_OWN, out, 8, NULL, &cols),
          DMLLM_ERR_BUFFER_TOO_SMALL, "capacity");
    BAD_S(dmllm_session_image_hidden(session, DMLLM_ALIGN_OWN, out, 8, &rows, &cols),
          DMLLM_ERR_BUFFER_TOO_SMALL, "capacity");

    row("dmllm_session_image_logits");
    int32_t label_ids[2] = {1, 2};
    BAD(dmllm_session_image_logits(NULL, DMLLM_ALIGN_OWN, label_ids, 2, out, 8, &rows, &cols),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_image_logits(session, DMLLM_ALIGN_OWN, NULL, 2, out, 8, &rows, &cols),
          DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_session_image_logits(session, DMLLM_ALIGN_OWN, label_ids, 0, out, 8, &rows, &cols),
          DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD_S(dmllm_session_image_logits(session, DMLLM_ALIGN_OWN, label_ids, -3, out, 8, &rows, &cols),
          DMLLM_ERR_INVALID_ARGUMENT, "-3");
    BAD_S(
        dmllm_session_image_logits(session, (dmllm_alignment)4, label_ids, 2, out, 8, &rows, &cols),
        DMLLM_ERR_INVALID_ARGUMENT, "alignment");
    label_ids[1] = vocab;
    BAD_S(dmllm_session_image_logits(session, DMLLM_ALIGN_OWN, label_ids, 2, out, 64, &rows, &cols),
          DMLLM_ERR_INVALID_ARGUMENT, "4721");
    label_ids[1] = -5;
    BAD_S(dmllm_session_image_logits(session, DMLLM_ALIGN_OWN, label_ids, 2, out, 64, &rows, &cols),
          DMLLM_ERR_INVALID_ARGUMENT, "-5");
    label_ids[1] = 2;
    BAD_S(dmllm_session_image_logits(session, DMLLM_ALIGN_OWN, label_ids, 2, out, 8, NULL, &cols),
          DMLLM_ERR_BUFFER_TOO_SMALL, "capacity");
    BAD_S(dmllm_session_image_logits(session, DMLLM_ALIGN_OWN, label_ids, 2, out, 8, &rows, &cols),
          DMLLM_ERR_BUFFER_TOO_SMALL, "capacity");
}

/* ---- tokenizer and chat template --------------------------------------------------------------
 */

static void rows_tokenizer(void) {
    int32_t ids[8];
    size_t n = 0;
    char text[8];
    row("dmllm_tokenize");
    BAD(dmllm_tokenize(NULL, "a", 0, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_tokenize(model, NULL, 0, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_tokenize(model, "a", 0, ids, 8, NULL), DMLLM_OK, NULL); /* the count is optional */
    BAD(dmllm_tokenize(model, "a b c d e f g h i j", 0, NULL, 8, &n), DMLLM_ERR_BUFFER_TOO_SMALL,
        "capacity is 0");
    BAD(dmllm_tokenize(model, "a b c d e f g h i j", 0, ids, 8, &n), DMLLM_ERR_BUFFER_TOO_SMALL,
        "capacity");
    CHECK(n > 8);
    BAD(dmllm_tokenize(model, bad_utf8, 0, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "UTF-8");

    row("dmllm_detokenize");
    int32_t some[3] = {1, 2, 3};
    BAD(dmllm_detokenize(NULL, some, 3, 0, text, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_detokenize(model, NULL, 3, 0, text, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_detokenize(model, some, 3, 0, text, 8, NULL), DMLLM_OK,
        NULL); /* the length is optional */
    some[1] = -2;
    BAD(dmllm_detokenize(model, some, 3, 0, text, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "-2");
    some[1] = 4721;
    BAD(dmllm_detokenize(model, some, 3, 0, text, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "4721");
    some[1] = 2;
    BAD(dmllm_detokenize(model, some, 3, 0, text, 0, &n), DMLLM_ERR_BUFFER_TOO_SMALL, "capacity");

    row("dmllm_token_id");
    SAFE(CHECK(dmllm_token_id(NULL, "<FG>") == -1));
    SAFE(CHECK(dmllm_token_id(model, NULL) == -1));
    SAFE(CHECK(dmllm_token_id(model, "") == -1));
    SAFE(CHECK(dmllm_token_id(model, bad_utf8) == -1));

    row("dmllm_token_bytes");
    BAD(dmllm_token_bytes(NULL, 1, text, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_token_bytes(model, 1, text, 8, NULL), DMLLM_OK, NULL); /* the length is optional */
    BAD(dmllm_token_bytes(model, -1, text, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD(dmllm_token_bytes(model, INT32_MAX, text, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "2147483647");
    BAD(dmllm_token_bytes(model, 1, NULL, 8, &n), DMLLM_ERR_BUFFER_TOO_SMALL, "capacity is 0");
    BAD(dmllm_token_bytes(model, 507, text, 0, &n), DMLLM_ERR_BUFFER_TOO_SMALL, "capacity");

    char *out = NULL;
    dmllm_chat_message msg[2] = {{sizeof msg[0], "user", "hi", 1, DMLLM_LAYOUT_IMAGE_FIRST},
                                 {sizeof msg[0], "assistant", bad_utf8, 0, 0}};
    /* Wrong sizes: messages[0]'s (the array's stride) out of range, or another element's not equal
     * to it. */
    static const struct {
        int element;
        uint32_t size;
        const char *needle;
    } bad_sizes[] = {{0, 0, "messages[0].struct_size is 0"},
                     {0, 4, "messages[0].struct_size is 4"},
                     {0, sizeof(dmllm_chat_message) + 8, "messages[0].struct_size"},
                     {1, sizeof(dmllm_chat_message) - 8, "messages[1].struct_size"}};
    row("dmllm_chat_apply");
    for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
        msg[bad_sizes[i].element].struct_size = bad_sizes[i].size;
        BAD(dmllm_chat_apply(msg, 2, 1, 4, &out), DMLLM_ERR_INVALID_ARGUMENT, bad_sizes[i].needle);
        msg[bad_sizes[i].element].struct_size = sizeof msg[0];
    }
    BAD(dmllm_chat_apply(NULL, 1, 1, 4, &out), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_chat_apply(msg, 1, 1, 4, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_chat_apply(msg, -1, 1, 4, &out), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD(dmllm_chat_apply(msg, 0, 1, 4, &out), DMLLM_OK, NULL); /* the system prompt alone */
    dmllm_text_free(out);
    out = NULL;
    BAD(dmllm_chat_apply(msg, 1, 1, 0, &out), DMLLM_ERR_INVALID_ARGUMENT, "n_image_tokens");
    BAD(dmllm_chat_apply(msg, 1, 1, -4, &out), DMLLM_ERR_INVALID_ARGUMENT, "n_image_tokens");
    BAD(dmllm_chat_apply(msg, 1, 1, INT32_MAX, &out), DMLLM_ERR_INVALID_ARGUMENT, "262144");
    msg[0].role = NULL;
    BAD(dmllm_chat_apply(msg, 1, 1, 4, &out), DMLLM_ERR_INVALID_ARGUMENT, "role");
    msg[0].role = "robot";
    BAD(dmllm_chat_apply(msg, 1, 1, 4, &out), DMLLM_ERR_INVALID_ARGUMENT, "robot");
    msg[0].role = "user";
    msg[0].layout = (dmllm_prompt_layout)3;
    BAD(dmllm_chat_apply(msg, 1, 1, 4, &out), DMLLM_ERR_INVALID_ARGUMENT, "layout");
    msg[0].layout = DMLLM_LAYOUT_IMAGE_FIRST;
    BAD(dmllm_chat_apply(msg, 2, 1, 4, &out), DMLLM_OK, NULL); /* text is copied byte for byte */
    dmllm_text_free(out);
    CHECK(out != NULL);
    out = NULL;

    row("dmllm_chat_tokenize");
    BAD(dmllm_chat_tokenize(NULL, msg, 1, 1, 4, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_chat_tokenize(model, NULL, 1, 1, 4, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_chat_tokenize(model, msg, 1, 1, 4, ids, 8, NULL), DMLLM_ERR_BUFFER_TOO_SMALL,
        "capacity");
    BAD(dmllm_chat_tokenize(model, msg, -2, 1, 4, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, "-2");
    BAD(dmllm_chat_tokenize(model, msg, 1, 1, -1, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT,
        "n_image_tokens");
    BAD(dmllm_chat_tokenize(model, msg, 1, 1, 4, ids, 8, &n), DMLLM_ERR_BUFFER_TOO_SMALL,
        "capacity");
    BAD(dmllm_chat_tokenize(model, msg, 1, 1, 4, NULL, 8, &n), DMLLM_ERR_BUFFER_TOO_SMALL,
        "capacity is 0");
    for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
        msg[bad_sizes[i].element].struct_size = bad_sizes[i].size;
        BAD(dmllm_chat_tokenize(model, msg, 2, 1, 4, ids, 8, &n), DMLLM_ERR_INVALID_ARGUMENT, bad_sizes[i].needle);
        msg[bad_sizes[i].element].struct_size = sizeof msg[0];
    }
}

/* ---- generation and the text tasks ------------------------------------------------------------
 */

static void bad_generate_params(dmllm_generate_params *gp, int which) {
    dmllm_generate_params_init(gp);
    gp->do_sample = 1;
    switch (which) {
    case 0:
        gp->struct_size = 0;
        break;
    case 1:
        gp->struct_size = sizeof *gp + 16;
        break;
    case 2:
        gp->max_new_tokens = 0;
        break;
    case 3:
        gp->max_new_tokens = -1;
        break;
    case 4:
        gp->temperature = NAN;
        break;
    case 5:
        gp->temperature = 0;
        break;
    case 6:
        gp->temperature = -INFINITY;
        break;
    case 7:
        gp->top_p = 0;
        break;
    case 8:
        gp->top_p = NAN;
        break;
    case 9:
        gp->top_p = 1.5f;
        break;
    case 10:
        gp->repetition_penalty = 0;
        break;
    case 11:
        gp->repetition_penalty = INFINITY;
        break;
    case 12:
        gp->repetition_penalty = NAN;
        break;
    case 13:
        gp->top_k = -1;
        break;
    case 14:
        gp->n_stop_ids = -1;
        break;
    case 15:
        gp->n_stop_ids = 2;
        break; /* stop_ids NULL */
    }
}
static const char *const generate_needles[] = {"struct_size",
                                               "struct_size",
                                               "max_new_tokens",
                                               "max_new_tokens",
                                               "temperature",
                                               "temperature",
                                               "temperature",
                                               "top_p",
                                               "top_p",
                                               "top_p",
                                               "repetition_penalty",
                                               "repetition_penalty",
                                               "repetition_penalty",
                                               "top_k",
                                               "n_stop_ids",
                                               "stop_ids"};
#define N_BAD_GENERATE ((int)(sizeof generate_needles / sizeof *generate_needles))

static void rows_generate(void) {
    dmllm_generate_params gp;
    dmllm_generate_params_init(&gp);
    gp.max_new_tokens = 2;
    dmllm_generate_result *r = NULL;
    int32_t prompt[3] = {507, 20, 30};
    row("dmllm_generate");
    BAD(dmllm_generate(NULL, prompt, 3, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_generate(session, prompt, 3, &gp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_generate(session, NULL, 3, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_generate(session, prompt, -3, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "-3");
    prompt[1] = 99999;
    BAD_S(dmllm_generate(session, prompt, 3, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "99999");
    prompt[1] = 20;
    for (int k = 0; k < N_BAD_GENERATE; k++) {
        bad_generate_params(&gp, k);
        BAD_S(dmllm_generate(session, prompt, 3, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT,
              generate_needles[k]);
    }
    CHECK(r == NULL);

    row("dmllm_generate_text");
    dmllm_generate_params_init(&gp);
    gp.max_new_tokens = 2;
    BAD(dmllm_generate_text(NULL, "hi", &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_generate_text(session, NULL, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_generate_text(session, "hi", &gp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    for (int k = 0; k < N_BAD_GENERATE; k++) {
        bad_generate_params(&gp, k);
        BAD_S(dmllm_generate_text(session, "hi", &gp, &r), DMLLM_ERR_INVALID_ARGUMENT,
              generate_needles[k]);
    }
    dmllm_generate_params_init(&gp);
    BAD_S(dmllm_generate_text(session, bad_utf8, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "UTF-8");

    row("dmllm_coordinate_to_original");
    int k = 0;
    BAD(dmllm_coordinate_to_original(10, 100, 50, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_coordinate_to_original(10, 0, 50, &k), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_coordinate_to_original(10, 100, 0, &k), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_coordinate_to_original(10, -100, 50, &k), DMLLM_ERR_INVALID_ARGUMENT, "-100");
    BAD(dmllm_coordinate_to_original(-1, 100, 50, &k), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD(dmllm_coordinate_to_original(INT32_MAX, INT32_MAX, 1, &k), DMLLM_ERR_INVALID_ARGUMENT,
        "2147483647");

    row("dmllm_parse_regions");
    dmllm_regions *regions = NULL;
    BAD(dmllm_parse_regions(NULL, &regions), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_parse_regions("<ref>a</ref>", NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    /* Malformed answers parse with a message, never fail. */
    BAD(dmllm_parse_regions(bad_utf8, &regions), DMLLM_OK, NULL);
    dmllm_regions_free(regions);
    regions = NULL;
    BAD(dmllm_parse_regions("<ref>\xff</ref><box><x_1><y_99999></box><ins><poly><x_5>", &regions),
        DMLLM_OK, NULL);
    CHECK(regions && regions->message[0]);
    dmllm_regions_free(regions);
    regions = NULL;

    dmllm_generate_params_init(&gp);
    gp.max_new_tokens = 2;
    row("dmllm_ask");
    BAD(dmllm_ask(NULL, image, "what?", &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_ask(session, image, NULL, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_ask(session, image, "what?", &gp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    for (int c = 0; c < N_BAD_GENERATE; c++) {
        bad_generate_params(&gp, c);
        BAD_S(dmllm_ask(session, image, "what?", &gp, &r), DMLLM_ERR_INVALID_ARGUMENT,
              generate_needles[c]);
    }
    dmllm_generate_params_init(&gp);
    BAD_S(dmllm_ask(session, image, bad_utf8, &gp, &r), DMLLM_ERR_INVALID_ARGUMENT, "UTF-8");

    dmllm_generate_params_init(&gp);
    gp.max_new_tokens = 2;
    row("dmllm_ground");
    BAD(dmllm_ground(NULL, image, "the cat", &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_ground(session, NULL, "the cat", &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_ground(session, image, NULL, &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_ground(session, image, "the cat", &gp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    bad_generate_params(&gp, 4);
    BAD_S(dmllm_ground(session, image, "the cat", &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT,
          "temperature");

    dmllm_generate_params_init(&gp);
    gp.max_new_tokens = 2;
    row("dmllm_detect");
    const char *classes[2] = {"cat", NULL};
    BAD(dmllm_detect(NULL, image, classes, 1, &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_detect(session, NULL, classes, 1, &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_detect(session, image, classes, 1, &gp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_detect(session, image, NULL, 2, &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_detect(session, image, classes, -1, &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT,
          "-1");
    BAD_S(dmllm_detect(session, image, classes, 2, &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    bad_generate_params(&gp, 8);
    BAD_S(dmllm_detect(session, image, classes, 1, &gp, &regions), DMLLM_ERR_INVALID_ARGUMENT,
          "top_p");
    CHECK(regions == NULL);
}

/* ---- dense prediction, box segmentation, CRF --------------------------------------------------
 */

static void rows_dense(const char *const *huge_names) {
    dmllm_dense_params dp;
    dmllm_dense_result *r = NULL;
    const char *names[3] = {"cat", "grass", NULL};
    row("dmllm_predict_dense");
    dmllm_dense_params_init(&dp);
    dp.class_names = names;
    dp.n_classes = 2;
    BAD(dmllm_predict_dense(NULL, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_predict_dense(session, NULL, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_predict_dense(session, image, &dp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_predict_dense(session, image, NULL, &r), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    dp.struct_size = 1;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    dp.struct_size = sizeof dp + 8;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    dp.struct_size = sizeof dp;
    dp.task = (dmllm_dense_task)3;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "task");
    dp.task = DMLLM_TASK_SEMANTIC;
    dp.n_classes = 0;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "classes");
    dp.n_classes = -2;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "-2");
    dp.n_classes = N_HUGE_LABELS;
    dp.class_names = huge_names;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "100000");
    dp.class_names = names;
    dp.n_classes = 3; /* names[2] is NULL */
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "class 2");
    dp.class_names = NULL;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "class_names");
    const char *empty[1] = {""};
    dp.class_names = empty;
    dp.n_classes = 1;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "empty");
    dp.class_names = names;
    dp.n_classes = 2;
    int32_t label_ids[2] = {5, 9999};
    int offsets[3] = {0, 1, 2};
    dp.class_names = NULL;
    dp.label_token_ids = label_ids;
    dp.label_offsets = offsets;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "9999");
    label_ids[1] = 6;
    offsets[1] = 2, offsets[2] = 1; /* decreasing */
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "offsets");
    offsets[1] = 1, offsets[2] = 2;
    dp.label_offsets = NULL;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "offsets");
    dp.label_token_ids = NULL;
    dp.class_names = names;
    dp.layout = (dmllm_prompt_layout)2;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "layout");
    dp.layout = DMLLM_LAYOUT_IMAGE_FIRST;
    dp.alignment = 2;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "alignment");
    dp.alignment = DMLLM_FROM_PROFILE;
    dp.task = DMLLM_TASK_DEPTH;
    dp.depth_profile = "no_such_profile";
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT,
          "no_such_profile");
    dp.depth_profile = bad_utf8;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "depth");
    dp.depth_profile = NULL;
    dp.focal_length_px = NAN;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT,
          "focal_length_px");
    dp.focal_length_px = -1;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT,
          "focal_length_px");
    dp.focal_length_px = INFINITY;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT,
          "focal_length_px");
    dp.focal_length_px = 0;
    dp.task = DMLLM_TASK_FGBG;
    dp.evaluation = 1;
    dmllm_crf_params crf;
    dmllm_crf_params_init(&crf);
    crf.iterations = -1;
    dp.crf = &crf;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "iterations");
    dmllm_crf_params_init(&crf);
    crf.struct_size = 0;
    BAD_S(dmllm_predict_dense(session, image, &dp, &r), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(r == NULL);

    row("dmllm_segment_box");
    dmllm_crop_params cp;
    dmllm_crop_params_init(&cp);
    const int w = dmllm_image_width(image), h = dmllm_image_height(image);
    uint8_t *mask = malloc((size_t)w * h);
    const size_t cap = (size_t)w * h;
    int box[4] = {10, 10, 100, 100};
    BAD(dmllm_segment_box(NULL, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_segment_box(session, NULL, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_segment_box(session, image, NULL, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_segment_box(session, image, box, &cp, NULL, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap - 1), DMLLM_ERR_BUFFER_TOO_SMALL,
          "capacity");
    int inverted[4] = {100, 10, 10, 100}, outside[4] = {w + 5, 0, w + 50, 10},
        empty_box[4] = {10, 10, 10, 50};
    BAD_S(dmllm_segment_box(session, image, inverted, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "box");
    BAD_S(dmllm_segment_box(session, image, outside, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "box");
    BAD_S(dmllm_segment_box(session, image, empty_box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "box");
    cp.struct_size = 0;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "struct_size");
    dmllm_crop_params_init(&cp);
    cp.padding = NAN;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "padding");
    cp.padding = 0.5f;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "padding");
    cp.padding = INFINITY;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "padding");
    dmllm_crop_params_init(&cp);
    cp.short_side = 0;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "short side");
    cp.short_side = INT32_MAX;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "short side");
    dmllm_crop_params_init(&cp);
    cp.box_px = 65;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "box thickness");
    cp.box_px = -5;
    BAD_S(dmllm_segment_box(session, image, box, &cp, mask, cap), DMLLM_ERR_INVALID_ARGUMENT,
          "box thickness");
    free(mask);

    row("dmllm_refer_segment");
    dmllm_refer_result *rr = NULL;
    dmllm_crop_params_init(&cp);
    BAD(dmllm_refer_segment(NULL, image, "the cat", &cp, &rr), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_refer_segment(session, NULL, "the cat", &cp, &rr), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_refer_segment(session, image, NULL, &cp, &rr), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD_S(dmllm_refer_segment(session, image, "the cat", &cp, NULL), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    cp.max_regions = -1;
    cp.short_side = 7;
    BAD_S(dmllm_refer_segment(session, image, bad_utf8, &cp, &rr), DMLLM_ERR_INVALID_ARGUMENT,
          "short side");
    dmllm_crop_params_init(&cp);
    cp.struct_size = sizeof cp + 8;
    BAD_S(dmllm_refer_segment(session, image, "the cat", &cp, &rr), DMLLM_ERR_INVALID_ARGUMENT,
          "struct_size");
    CHECK(rr == NULL);

    row("dmllm_openset_segment");
    dmllm_openset_result *orr = NULL;
    dmllm_crop_params_init(&cp);
    BAD(dmllm_openset_segment(NULL, image, names, 2, &cp, &orr), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD_S(dmllm_openset_segment(session, NULL, names, 2, &cp, &orr), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_openset_segment(session, image, names, 2, &cp, NULL), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_openset_segment(session, image, NULL, 2, &cp, &orr), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_openset_segment(session, image, names, -1, &cp, &orr), DMLLM_ERR_INVALID_ARGUMENT,
          "-1");
    BAD_S(dmllm_openset_segment(session, image, names, 3, &cp, &orr), DMLLM_ERR_INVALID_ARGUMENT,
          "NULL");
    BAD_S(dmllm_openset_segment(session, image, huge_names, N_HUGE_LABELS, &cp, &orr),
          DMLLM_ERR_CONTEXT_FULL, "context");
    cp.max_regions = -1;
    BAD_S(dmllm_openset_segment(session, image, names, 2, &cp, &orr), DMLLM_ERR_INVALID_ARGUMENT,
          "max_regions");
    dmllm_crop_params_init(&cp);
    cp.padding = -INFINITY;
    BAD_S(dmllm_openset_segment(session, image, names, 2, &cp, &orr), DMLLM_ERR_INVALID_ARGUMENT,
          "padding");
    CHECK(orr == NULL);

    row("dmllm_crf_refine");
    const int n_labels = 2;
    float *probs = calloc((size_t)w * h * n_labels, sizeof *probs);
    float *out = calloc((size_t)w * h * n_labels, sizeof *out);
    for (size_t i = 0; probs && i < (size_t)w * h; i++) probs[2 * i] = 1;
    dmllm_crf_params_init(&crf);
    BAD(dmllm_crf_refine(NULL, probs, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_crf_refine(image, NULL, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_crf_refine(image, probs, n_labels, &crf, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_crf_refine(image, probs, 0, &crf, out), DMLLM_ERR_INVALID_ARGUMENT, "0 labels");
    BAD(dmllm_crf_refine(image, probs, -1, &crf, out), DMLLM_ERR_INVALID_ARGUMENT, "-1 labels");
    crf.struct_size = 0;
    BAD(dmllm_crf_refine(image, probs, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT,
        "struct_size");
    float *fields[] = {&crf.gaussian_sxy, &crf.gaussian_compat, &crf.bilateral_sxy,
                       &crf.bilateral_srgb, &crf.bilateral_compat};
    const char *field_names[] = {"gaussian_sxy", "gaussian_compat", "bilateral_sxy",
                                 "bilateral_srgb", "bilateral_compat"};
    const float bad_values[] = {NAN, INFINITY, -1};
    for (int f = 0; f < 5; f++) {
        for (int v = 0; v < 3; v++) {
            dmllm_crf_params_init(&crf);
            *fields[f] = bad_values[v];
            BAD(dmllm_crf_refine(image, probs, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT,
                field_names[f]);
        }
    }
    dmllm_crf_params_init(&crf);
    crf.iterations = 1001;
    BAD(dmllm_crf_refine(image, probs, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT,
        "iterations");
    dmllm_crf_params_init(&crf);
    probs[7] = NAN;
    BAD(dmllm_crf_refine(image, probs, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT,
        "probabilit");
    probs[7] = -0.5f;
    BAD(dmllm_crf_refine(image, probs, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT,
        "probabilit");
    probs[7] = INFINITY;
    BAD(dmllm_crf_refine(image, probs, n_labels, &crf, out), DMLLM_ERR_INVALID_ARGUMENT,
        "probabilit");
    free(probs);
    free(out);
}

/* ---- metrics ----------------------------------------------------------------------------------
 */

static void rows_metrics(void) {
    dmllm_seg_metrics_params sp;
    dmllm_seg_metrics *seg = NULL;
    row("dmllm_seg_metrics_create");
    dmllm_seg_metrics_params_init(&sp);
    sp.n_classes = 3;
    BAD(dmllm_seg_metrics_create(NULL, &seg), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_seg_metrics_create(&sp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    sp.struct_size = 0;
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    sp.struct_size = sizeof sp + 4;
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    dmllm_seg_metrics_params_init(&sp);
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT,
        "n_classes"); /* no default */
    sp.n_classes = -1;
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT, "n_classes");
    sp.n_classes = 65536;
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT, "n_classes");
    sp.n_classes = N_HUGE_LABELS;
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT, "n_classes");
    sp.n_classes = 10;
    sp.ignore_index = 5;
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT, "ignore_index");
    sp.ignore_index = 65536;
    BAD(dmllm_seg_metrics_create(&sp, &seg), DMLLM_ERR_INVALID_ARGUMENT, "ignore_index");
    CHECK(seg == NULL);
    sp.ignore_index = 255;
    CHECK_OK(dmllm_seg_metrics_create(&sp, &seg));

    row("dmllm_seg_metrics_result");
    dmllm_seg_result *sr = NULL;
    BAD(dmllm_seg_metrics_result(NULL, &sr), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_seg_metrics_result(seg, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_seg_metrics_result(seg, &sr), DMLLM_ERR_STATE, "image");

    row("dmllm_seg_metrics_add");
    uint16_t pred[4] = {0, 1, 2, 3}, gt[4] = {0, 1, 255, 9};
    BAD(dmllm_seg_metrics_add(NULL, pred, gt, 4), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_seg_metrics_add(seg, NULL, gt, 4), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_seg_metrics_add(seg, pred, NULL, 4), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_seg_metrics_add(seg, pred, NULL, SIZE_MAX), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    gt[3] = 10;
    BAD(dmllm_seg_metrics_add(seg, pred, gt, 4), DMLLM_ERR_INVALID_ARGUMENT, "pixel 3");
    gt[3] = 65535;
    BAD(dmllm_seg_metrics_add(seg, pred, gt, 4), DMLLM_ERR_INVALID_ARGUMENT, "pixel 3");
    BAD(dmllm_seg_metrics_add(seg, pred, gt, 0), DMLLM_ERR_SHAPE, "empty");
    BAD(dmllm_seg_metrics_result(seg, &sr), DMLLM_ERR_STATE,
        "image"); /* the failed adds left it empty */
    dmllm_seg_metrics_free(seg);

    row("dmllm_seg_result_free");
    SAFE(dmllm_seg_result_free(NULL));

    dmllm_depth_metrics_params dp;
    dmllm_depth_metrics *depth = NULL;
    row("dmllm_depth_metrics_create");
    dmllm_depth_metrics_params_init(&dp);
    BAD(dmllm_depth_metrics_create(NULL, &depth), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_depth_metrics_create(&dp, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    dp.struct_size = 2;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    dmllm_depth_metrics_params_init(&dp);
    dp.min_depth = 0;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "min_depth");
    dp.min_depth = NAN;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "min_depth");
    dp.min_depth = -1;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "min_depth");
    dmllm_depth_metrics_params_init(&dp);
    dp.max_depth = dp.min_depth;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "max_depth");
    dp.max_depth = NAN;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "max_depth");
    dp.max_depth = INFINITY;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "max_depth");
    dmllm_depth_metrics_params_init(&dp);
    dp.crop = (dmllm_depth_crop)3;
    BAD(dmllm_depth_metrics_create(&dp, &depth), DMLLM_ERR_INVALID_ARGUMENT, "crop");
    CHECK(depth == NULL);
    dmllm_depth_metrics_params_init(&dp);
    CHECK_OK(dmllm_depth_metrics_create(&dp, &depth));

    row("dmllm_depth_metrics_result");
    dmllm_depth_scores ds = {.struct_size = sizeof ds};
    BAD(dmllm_depth_metrics_result(NULL, &ds), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_depth_metrics_result(depth, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_depth_metrics_result(depth, &ds), DMLLM_ERR_STATE, "image");
    ds.struct_size = 0;
    BAD(dmllm_depth_metrics_result(depth, &ds), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    ds.struct_size = sizeof ds + 8;
    BAD(dmllm_depth_metrics_result(depth, &ds), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");

    float pf[4] = {1, 2, NAN, INFINITY}, gf[4] = {1, 2, 3, 4};
    double pd[4] = {1, 2, NAN, -INFINITY}, gd[4] = {1, 2, 3, 4};
    row("dmllm_depth_metrics_add");
    BAD(dmllm_depth_metrics_add(NULL, pf, 2, 2, gf, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_depth_metrics_add(depth, NULL, 2, 2, gf, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_depth_metrics_add(depth, pf, 2, 2, NULL, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_depth_metrics_add(depth, pf, 0, 2, gf, 2, 2), DMLLM_ERR_SHAPE, "0x2");
    BAD(dmllm_depth_metrics_add(depth, pf, 2, 2, gf, -2, 2), DMLLM_ERR_SHAPE, "-2x2");
    BAD(dmllm_depth_metrics_add(depth, pf, 2, 2, gf, 2, 2), DMLLM_OK, NULL); /* NaN, inf: clamped */
    row("dmllm_depth_metrics_add_f64");
    BAD(dmllm_depth_metrics_add_f64(NULL, pd, 2, 2, gd, 2, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_depth_metrics_add_f64(depth, NULL, 2, 2, gd, 2, 2), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_depth_metrics_add_f64(depth, pd, 2, -1, gd, 2, 2), DMLLM_ERR_SHAPE, "2x-1");
    BAD(dmllm_depth_metrics_add_f64(depth, pd, 2, 2, gd, 2, 2), DMLLM_OK, NULL);
    dmllm_depth_metrics_free(depth);
    dmllm_depth_metrics_params_init(&dp);
    dp.crop = DMLLM_DEPTH_CROP_EIGEN;
    CHECK_OK(dmllm_depth_metrics_create(&dp, &depth));
    row("dmllm_depth_metrics_add");
    BAD(dmllm_depth_metrics_add(depth, pf, 2, 2, gf, 2, 2), DMLLM_ERR_SHAPE, "480");
    dmllm_depth_metrics_free(depth);

    dmllm_mask_metrics *mm = NULL;
    row("dmllm_mask_metrics_create");
    BAD(dmllm_mask_metrics_create(NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    CHECK_OK(dmllm_mask_metrics_create(&mm));
    row("dmllm_mask_metrics_result");
    dmllm_mask_scores ms = {.struct_size = sizeof ms};
    BAD(dmllm_mask_metrics_result(NULL, &ms), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_mask_metrics_result(mm, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_mask_metrics_result(mm, &ms), DMLLM_ERR_STATE, "sample");
    ms.struct_size = 3;
    BAD(dmllm_mask_metrics_result(mm, &ms), DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    row("dmllm_mask_metrics_add");
    uint8_t mp[3] = {0, 1, 1}, mg[3] = {0, 1, 255};
    BAD(dmllm_mask_metrics_add(NULL, mp, mg, 3), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_mask_metrics_add(mm, NULL, mg, 3), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_mask_metrics_add(mm, mp, NULL, SIZE_MAX), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    mp[2] = 2;
    BAD(dmllm_mask_metrics_add(mm, mp, mg, 3), DMLLM_ERR_INVALID_ARGUMENT, "pixel 2");
    mp[2] = 1, mg[1] = 7;
    BAD(dmllm_mask_metrics_add(mm, mp, mg, 3), DMLLM_ERR_INVALID_ARGUMENT, "pixel 1");
    dmllm_mask_metrics_free(mm);

    row("dmllm_box_iou");
    double a[4] = {0, 0, 10, 10}, b[4] = {5, 5, 15, 15}, iou = 0;
    BAD(dmllm_box_iou(NULL, b, &iou), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_box_iou(a, NULL, &iou), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_box_iou(a, b, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    b[2] = NAN;
    BAD(dmllm_box_iou(a, b, &iou), DMLLM_ERR_INVALID_ARGUMENT, "finite");
    b[2] = INFINITY;
    BAD(dmllm_box_iou(a, b, &iou), DMLLM_ERR_INVALID_ARGUMENT, "finite");
    b[2] = 1;
    BAD(dmllm_box_iou(a, b, &iou), DMLLM_ERR_INVALID_ARGUMENT, "x0");
}

/* ---- outputs ----------------------------------------------------------------------------------
 */

/* <temp>/no/such/dir/out.png: a target whose directory is missing. */
static const char *missing_dir_png(void) {
    static char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/out.png", test_temp_dir());
    return path;
}

/* dmllm_write_overlay_png_v2: its arguments, then every field of dmllm_overlay_params. */
static void rows_overlay_v2(uint16_t *labels, const char *const *huge_names) {
    const char *path = out_png;
    const char *names[2] = {"background", bad_utf8};
    dmllm_overlay_params op;
    dmllm_overlay_params_init(&op);
    row("dmllm_write_overlay_png_v2");
    BAD(dmllm_write_overlay_png_v2(NULL, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_overlay_png_v2(path, NULL, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_overlay_png_v2(path, image, NULL, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 0, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "n_labels");
    BAD(dmllm_write_overlay_png_v2(path, image, labels, -1, names, &op),
        DMLLM_ERR_INVALID_ARGUMENT, "n_labels");
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 65537, names, &op),
        DMLLM_ERR_INVALID_ARGUMENT, "n_labels");
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 1, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "not below n_labels");
    BAD(dmllm_write_overlay_png_v2(path, image, labels, N_HUGE_LABELS, huge_names, &op),
        DMLLM_ERR_INVALID_ARGUMENT, "100000");
    op.struct_size = 0;
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "struct_size");
    op.struct_size = 4;
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "struct_size");
    struct {
        dmllm_overlay_params p;
        uint64_t tail;
    } big = {.tail = 1};
    dmllm_overlay_params_init(&big.p);
    big.p.struct_size = sizeof big;
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &big.p),
        DMLLM_ERR_INVALID_ARGUMENT, "struct_size");
    const float bad_alpha[3] = {NAN, -0.1f, INFINITY};
    for (int i = 0; i < 3; i++) {
        dmllm_overlay_params_init(&op);
        op.alpha = bad_alpha[i];
        BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op),
            DMLLM_ERR_INVALID_ARGUMENT, "alpha");
    }
    /* background_label: -1 .. n_labels - 1; outline_px: 0 .. 64 or DMLLM_AUTO; legend: 0 or 1. */
    static const struct {
        size_t offset; /* of an int field of dmllm_overlay_params */
        int value;
        const char *needle;
    } bad_ints[] = {
        {offsetof(dmllm_overlay_params, background_label), -2, "background_label -2"},
        {offsetof(dmllm_overlay_params, background_label), 2, "background_label 2"},
        {offsetof(dmllm_overlay_params, background_label), INT32_MAX, "background_label 2147"},
        {offsetof(dmllm_overlay_params, outline_px), -2, "outline_px -2"},
        {offsetof(dmllm_overlay_params, outline_px), 65, "outline_px 65"},
        {offsetof(dmllm_overlay_params, outline_px), INT32_MIN, "outline_px -2147483648"},
        {offsetof(dmllm_overlay_params, legend), 2, "legend 2"},
    };
    for (size_t i = 0; i < sizeof bad_ints / sizeof *bad_ints; i++) {
        dmllm_overlay_params_init(&op);
        memcpy((char *)&op + bad_ints[i].offset, &bad_ints[i].value, sizeof(int));
        BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op),
            DMLLM_ERR_INVALID_ARGUMENT, bad_ints[i].needle);
    }
    dmllm_overlay_params_init(&op);
    op.background_label = 0; /* no label map: no label to leave out */
    BAD(dmllm_write_overlay_png_v2(path, image, NULL, 0, NULL, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "background_label");
    dmllm_overlay_params_init(&op);
    op.n_boxes = 3; /* boxes NULL */
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "n_boxes 3");
    dmllm_region boxes[3] = {
        {sizeof boxes[0], .label = NULL, .box = {INT32_MIN, INT32_MIN, INT32_MAX, INT32_MAX}},
        {sizeof boxes[0], .label = bad_utf8, .box = {300, 250, -5, 4}}, /* corners swapped, partly outside */
        {sizeof boxes[0], .label = "background", .box = {7, 7, 7, 9}},  /* empty */
    };
    const dmllm_region *box_ptrs[3] = {&boxes[0], NULL, &boxes[2]};
    op.boxes = box_ptrs;
    op.n_boxes = 3; /* boxes[1] NULL */
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "boxes[1] is NULL");
    box_ptrs[1] = &boxes[1];
    const uint32_t bad_box_sizes[] = {0, 4, sizeof boxes[2] + 8};
    for (size_t i = 0; i < sizeof bad_box_sizes / sizeof *bad_box_sizes; i++) {
        boxes[2].struct_size = bad_box_sizes[i];
        BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
            "boxes[2].struct_size");
    }
    boxes[2].struct_size = sizeof boxes[2];
    op.n_boxes = -1;
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "n_boxes -1");
    op.n_boxes = INT32_MIN;
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_ERR_INVALID_ARGUMENT,
        "n_boxes -2147483648");
    BAD(dmllm_write_overlay_png_v2(missing_dir_png(), image, labels, 2, names, NULL), DMLLM_ERR_IO,
        "no/such/dir");
    /* Valid extremes: boxes beyond the image with a NULL and a non-ASCII label, boxes only. */
    op.n_boxes = 3;
    BAD(dmllm_write_overlay_png_v2(path, image, labels, 2, names, &op), DMLLM_OK, NULL);
    BAD(dmllm_write_overlay_png_v2(path, image, NULL, 0, NULL, &op), DMLLM_OK, NULL);
    BAD(dmllm_write_overlay_png_v2(path, image, NULL, 0, NULL, NULL), DMLLM_OK, NULL);
}

static void rows_outputs(const char *const *huge_names) {
    const int w = dmllm_image_width(image), h = dmllm_image_height(image);
    const size_t n = (size_t)w * h;
    uint16_t *labels = calloc(n, sizeof *labels);
    float *depth = malloc(n * sizeof *depth);
    for (size_t i = 0; depth && i < n; i++) depth[i] = 1.0f + (float)(i % 7);
    const char *path = out_png;
    const char *missing_dir = missing_dir_png();

    row("dmllm_label_color");
    uint8_t rgb[3];
    BAD(dmllm_label_color(-1, rgb), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD(dmllm_label_color(1 << 24, rgb), DMLLM_ERR_INVALID_ARGUMENT, "16777216");
    BAD(dmllm_label_color(3, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");

    row("dmllm_overlay_color");
    BAD(dmllm_overlay_color(-1, rgb), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD(dmllm_overlay_color(65536, rgb), DMLLM_ERR_INVALID_ARGUMENT, "65536");
    BAD(dmllm_overlay_color(INT32_MIN, rgb), DMLLM_ERR_INVALID_ARGUMENT, "-2147483648");
    BAD(dmllm_overlay_color(3, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");

    row("dmllm_write_label_png");
    BAD(dmllm_write_label_png(NULL, labels, w, h, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_label_png(path, NULL, w, h, 2), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_label_png(path, labels, 0, h, 2), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_write_label_png(path, labels, w, -h, 2), DMLLM_ERR_INVALID_ARGUMENT, "-256");
    BAD(dmllm_write_label_png(path, labels, w, h, 0), DMLLM_ERR_INVALID_ARGUMENT, "n_labels");
    BAD(dmllm_write_label_png(path, labels, w, h, 65537), DMLLM_ERR_INVALID_ARGUMENT, "n_labels");
    labels[n - 1] = 2;
    BAD(dmllm_write_label_png(path, labels, w, h, 2), DMLLM_ERR_INVALID_ARGUMENT, "2");
    labels[n - 1] = 1;
    BAD(dmllm_write_label_png(missing_dir, labels, w, h, 2), DMLLM_ERR_IO, "no/such/dir");

    row("dmllm_write_overlay_png");
    const char *names[2] = {"background", bad_utf8}; /* non-ASCII bytes show as '?' */
    BAD(dmllm_write_overlay_png(NULL, image, labels, 2, names, 0.5f), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_overlay_png(path, NULL, labels, 2, names, 0.5f), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_overlay_png(path, image, NULL, 2, names, 0.5f), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_overlay_png(path, image, labels, 2, names, NAN), DMLLM_ERR_INVALID_ARGUMENT,
        "alpha");
    BAD(dmllm_write_overlay_png(path, image, labels, 2, names, -0.1f), DMLLM_ERR_INVALID_ARGUMENT,
        "alpha");
    BAD(dmllm_write_overlay_png(path, image, labels, 2, names, INFINITY),
        DMLLM_ERR_INVALID_ARGUMENT, "alpha");
    BAD(dmllm_write_overlay_png(path, image, labels, 0, names, 0.5f), DMLLM_ERR_INVALID_ARGUMENT,
        "n_labels");
    BAD(dmllm_write_overlay_png(path, image, labels, -3, names, 0.5f), DMLLM_ERR_INVALID_ARGUMENT,
        "n_labels");
    BAD(dmllm_write_overlay_png(path, image, labels, 1, names, 0.5f), DMLLM_ERR_INVALID_ARGUMENT,
        "1");
    BAD(dmllm_write_overlay_png(missing_dir, image, labels, 2, names, 0.5f), DMLLM_ERR_IO,
        "no/such/dir");
    BAD(dmllm_write_overlay_png(path, image, labels, N_HUGE_LABELS, huge_names, 0.5f),
        DMLLM_ERR_INVALID_ARGUMENT, "100000");
    BAD(dmllm_write_overlay_png(path, image, labels, 2, names, 0.5f), DMLLM_OK, NULL);

    rows_overlay_v2(labels, huge_names);

    row("dmllm_write_depth_png16");
    BAD(dmllm_write_depth_png16(NULL, depth, w, h, 0), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_depth_png16(path, NULL, w, h, 0), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_depth_png16(path, depth, 0, h, 0), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_write_depth_png16(path, depth, w, h, -1), DMLLM_ERR_INVALID_ARGUMENT, "scale");
    BAD(dmllm_write_depth_png16(path, depth, w, h, NAN), DMLLM_ERR_INVALID_ARGUMENT, "scale");
    BAD(dmllm_write_depth_png16(path, depth, w, h, INFINITY), DMLLM_ERR_INVALID_ARGUMENT, "scale");
    BAD(dmllm_write_depth_png16(missing_dir, depth, w, h, 0), DMLLM_ERR_IO, "no/such/dir");

    row("dmllm_write_depth_color_png");
    BAD(dmllm_write_depth_color_png(NULL, depth, w, h, 0, 0), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_depth_color_png(path, NULL, w, h, 0, 0), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_depth_color_png(path, depth, -1, h, 0, 0), DMLLM_ERR_INVALID_ARGUMENT, "-1");
    BAD(dmllm_write_depth_color_png(path, depth, w, h, 5, 2), DMLLM_ERR_INVALID_ARGUMENT, "range");
    BAD(dmllm_write_depth_color_png(path, depth, w, h, NAN, 2), DMLLM_ERR_INVALID_ARGUMENT,
        "range");
    BAD(dmllm_write_depth_color_png(path, depth, w, h, 1, INFINITY), DMLLM_ERR_INVALID_ARGUMENT,
        "range");
    BAD(dmllm_write_depth_color_png(missing_dir, depth, w, h, 0, 0), DMLLM_ERR_IO, "no/such/dir");

    row("dmllm_write_depth_colorbar_png");
    BAD(dmllm_write_depth_colorbar_png(NULL, depth, w, h, 0, 0), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_depth_colorbar_png(path, NULL, w, h, 0, 0), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_write_depth_colorbar_png(path, depth, w, 0, 0, 0), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_write_depth_colorbar_png(path, depth, INT32_MAX, INT32_MAX, 0, 0),
        DMLLM_ERR_INVALID_ARGUMENT, "2147483647");
    BAD(dmllm_write_depth_colorbar_png(path, depth, w, h, 5, 2), DMLLM_ERR_INVALID_ARGUMENT,
        "range");
    BAD(dmllm_write_depth_colorbar_png(path, depth, w, h, NAN, 2), DMLLM_ERR_INVALID_ARGUMENT,
        "range");
    BAD(dmllm_write_depth_colorbar_png(path, depth, w, h, -INFINITY, 2),
        DMLLM_ERR_INVALID_ARGUMENT, "range");
    BAD(dmllm_write_depth_colorbar_png(path, depth, w, h, 1, INFINITY), DMLLM_ERR_INVALID_ARGUMENT,
        "range");
    BAD(dmllm_write_depth_colorbar_png(missing_dir, depth, w, h, 0, 0), DMLLM_ERR_IO,
        "no/such/dir");
    /* Extreme but valid: a range up to FLT_MAX (labels wider than the tick text), and a map
     * without one valid depth (the range cannot come from it). */
    BAD(dmllm_write_depth_colorbar_png(path, depth, w, h, 1, 3.4028235e38f), DMLLM_OK, NULL);
    float invalid[4] = {NAN, -1, 0, INFINITY};
    BAD(dmllm_write_depth_colorbar_png(path, invalid, 2, 2, 0, 0), DMLLM_OK, NULL);

    row("dmllm_write_pca_png");
    float features[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    BAD(dmllm_write_pca_png(NULL, features, 4, 3, 2, 2, 0, 0), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_pca_png(path, NULL, 4, 3, 2, 2, 0, 0), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_pca_png(path, features, 4, 3, 3, 2, 0, 0), DMLLM_ERR_SHAPE, "grid");
    BAD(dmllm_write_pca_png(path, features, 4, 0, 2, 2, 0, 0), DMLLM_ERR_SHAPE, "0 features");
    BAD(dmllm_write_pca_png(path, features, -4, 3, 2, 2, 0, 0), DMLLM_ERR_SHAPE, "-4 rows");
    BAD(dmllm_write_pca_png(path, features, 4, 3, 2, 2, INT32_MAX, INT32_MAX),
        DMLLM_ERR_INVALID_ARGUMENT, "2147483647");
    features[4] = NAN;
    BAD(dmllm_write_pca_png(path, features, 4, 3, 2, 2, 0, 0), DMLLM_ERR_INVALID_ARGUMENT,
        "finite");
    features[4] = 5;
    BAD(dmllm_write_pca_png(missing_dir, features, 4, 3, 2, 2, 0, 0), DMLLM_ERR_IO, "no/such/dir");

    row("dmllm_write_pca_overlay_png");
    BAD(dmllm_write_pca_overlay_png(NULL, image, features, 4, 3, 2, 2, 0.5f),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_pca_overlay_png(path, NULL, features, 4, 3, 2, 2, 0.5f),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_pca_overlay_png(path, image, NULL, 4, 3, 2, 2, 0.5f),
        DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_write_pca_overlay_png(path, image, features, 4, 3, 4, 2, 0.5f), DMLLM_ERR_SHAPE,
        "grid");
    BAD(dmllm_write_pca_overlay_png(path, image, features, 4, 0, 2, 2, 0.5f), DMLLM_ERR_SHAPE,
        "0 features");
    BAD(dmllm_write_pca_overlay_png(path, image, features, -4, 3, -2, 2, 0.5f), DMLLM_ERR_SHAPE,
        "-4 rows");
    BAD(dmllm_write_pca_overlay_png(path, image, features, 4, 3, 2, 2, NAN),
        DMLLM_ERR_INVALID_ARGUMENT, "alpha");
    BAD(dmllm_write_pca_overlay_png(path, image, features, 4, 3, 2, 2, -INFINITY),
        DMLLM_ERR_INVALID_ARGUMENT, "alpha");
    BAD(dmllm_write_pca_overlay_png(path, image, features, 4, 3, 2, 2, 1.5f),
        DMLLM_ERR_INVALID_ARGUMENT, "alpha");
    features[7] = INFINITY;
    BAD(dmllm_write_pca_overlay_png(path, image, features, 4, 3, 2, 2, 0.5f),
        DMLLM_ERR_INVALID_ARGUMENT, "finite");
    features[7] = 8;
    BAD(dmllm_write_pca_overlay_png(missing_dir, image, features, 4, 3, 2, 2, 0.5f), DMLLM_ERR_IO,
        "no/such/dir");
    BAD(dmllm_write_pca_overlay_png(path, image, features, 4, 3, 2, 2, 1), DMLLM_OK, NULL);

    row("dmllm_mask_text_write");
    char *text = NULL;
    uint16_t small[4] = {0, 1, 1, 0};
    const char *ref_names[2] = {"a", "b</ref>"};
    BAD(dmllm_mask_text_write(NULL, 2, 2, NULL, 0, &text), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_mask_text_write(small, 2, 2, NULL, 0, NULL), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_mask_text_write(small, 0, 2, NULL, 0, &text), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_mask_text_write(small, 2, INT32_MIN, NULL, 0, &text), DMLLM_ERR_INVALID_ARGUMENT,
        "-2147483648");
    BAD(dmllm_mask_text_write(small, 2, 2, ref_names, 2, &text), DMLLM_ERR_INVALID_ARGUMENT,
        "</ref>");
    BAD(dmllm_mask_text_write(small, 2, 2, ref_names, -1, &text), DMLLM_ERR_INVALID_ARGUMENT,
        "n_labels");
    ref_names[1] = NULL;
    BAD(dmllm_mask_text_write(small, 2, 2, ref_names, 2, &text), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    CHECK(text == NULL);

    row("dmllm_mask_text_parse");
    dmllm_mask_text_result *mt = NULL;
    BAD(dmllm_mask_text_parse(NULL, 2, 2, &mt), DMLLM_ERR_INVALID_ARGUMENT, "NULL");
    BAD(dmllm_mask_text_parse("<mask>(0,4)</mask>", 2, 2, NULL), DMLLM_ERR_INVALID_ARGUMENT,
        "NULL");
    BAD(dmllm_mask_text_parse("<mask>(0,4)</mask>", 0, 2, &mt), DMLLM_ERR_INVALID_ARGUMENT, "0");
    BAD(dmllm_mask_text_parse("<mask>(0,4)</mask>", 2, -2, &mt), DMLLM_ERR_INVALID_ARGUMENT, "-2");
    BAD(dmllm_mask_text_parse("<mask>(0,4)</mask>", INT32_MAX, INT32_MAX, &mt),
        DMLLM_ERR_INVALID_ARGUMENT, "2147483647");
    BAD(dmllm_mask_text_parse(bad_utf8, 2, 2, &mt), DMLLM_ERR_FORMAT, "byte");
    BAD(dmllm_mask_text_parse("", 2, 2, &mt), DMLLM_ERR_FORMAT, "mask");
    BAD(dmllm_mask_text_parse("<mask>(0,3)</mask>", 2, 2, &mt), DMLLM_ERR_FORMAT, "byte");
    BAD(dmllm_mask_text_parse("<mask>(70000,4)</mask>", 2, 2, &mt), DMLLM_ERR_FORMAT, "byte");
    BAD(dmllm_mask_text_parse("<mask>(0,99999999999999999999)</mask>", 2, 2, &mt), DMLLM_ERR_FORMAT,
        "byte");
    CHECK(mt == NULL);
    free(labels);
    free(depth);
}

/* ---- coverage: every DMLLM_API function of the header has a row -------------------------------
 */

static void check_every_export_has_a_row(void) {
    size_t size = 0;
    char *header = test_read_file(test_source_path("include/densemllm.h"), &size);
    CHECK(header != NULL);
    if (!header) return;
    int n_declared = 0;
    /* A declaration: DMLLM_API at the start of a line, the name is the identifier before '('. */
    for (char *p = header; (p = strstr(p, "\nDMLLM_API ")); p++) {
        char *paren = strchr(p, '(');
        if (!paren) break;
        char *end = paren;
        while (end > p && end[-1] == ' ') end--;
        char *start = end;
        while (start > p && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                             (start[-1] >= '0' && start[-1] <= '9')))
            start--;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(end - start), start);
        n_declared++;
        int found = 0;
        for (int i = 0; i < n_rows && !found; i++) found = strcmp(rows_done[i], name) == 0;
        CHECK_MSG(found, "%s is exported by include/densemllm.h but has no row in test_bad_input.c",
                  name);
    }
    CHECK_MSG(n_declared >= 90, "only %d DMLLM_API declarations found in the header", n_declared);
    int distinct = 0;
    for (int i = 0; i < n_rows; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = strcmp(rows_done[i], rows_done[j]) == 0;
        distinct += !seen;
    }
    printf("bad-input matrix: %d functions (%d declared), %d cases\n", distinct, n_declared,
           n_cases);
    free(header);
}

int main(void) {
    snprintf(out_png, sizeof out_png, "%s/out.png", test_temp_dir());
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = DMLLM_COMPUTE_F32;
    CHECK_OK(dmllm_model_load(test_source_path("models/tiny"), &mp, &model));
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.max_num_patches = 64;
    sp.n_threads = 2;
    if (model) CHECK_OK(dmllm_session_create(model, &sp, &session));
    CHECK_OK(dmllm_image_load_file(test_source_path("models/tiny/sample.png"), &image));
    if (!session || !image) return test_finish("test_bad_input");
    dmllm_dense_result *first = predict_fgbg();
    if (!first) return test_finish("test_bad_input");
    base_pixels = (size_t)first->width * first->height;
    base_labels = malloc(base_pixels * sizeof *base_labels);
    memcpy(base_labels, first->labels, base_pixels * sizeof *base_labels);
    dmllm_dense_result_free(first);

    /* 100,000 distinct class names; every list longer than 65534 labels must be refused. */
    const char **huge_names = malloc(N_HUGE_LABELS * sizeof *huge_names);
    char *name_store = malloc((size_t)N_HUGE_LABELS * 8);
    for (int i = 0; i < N_HUGE_LABELS; i++) {
        snprintf(name_store + (size_t)i * 8, 8, "c%d", i);
        huge_names[i] = name_store + (size_t)i * 8;
    }

    rows_library();
    rows_init_sizeof_free();
    rows_model();
    rows_images();
    rows_session();
    rows_tokenizer();
    rows_generate();
    rows_dense(huge_names);
    rows_metrics();
    rows_outputs(huge_names);
    check_every_export_has_a_row();

    free(huge_names);
    free(name_store);
    free(base_labels);
    dmllm_image_free(image);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return test_finish("test_bad_input");
}
