/*
 * test_packcache.c: the packed-weight cache (issue 18, deliverable 5) on a copy of models/tiny.
 * A cold load writes the cache file and the next load hits it with bit-identical outputs (image
 * embeddings through the vision tower and merger, logits through the LLM), for bf16 and f32; a
 * truncated file, a flipped header or index byte and a changed checkpoint are each detected and
 * rebuilt; two processes loading at once with an empty cache both succeed and leave one valid
 * file; "off" (parameter or DMLLM_CACHE_DIR) writes nothing; the default directory follows
 * XDG_CACHE_HOME; a cache directory that cannot be written is logged and the load goes on. int8
 * weights: the same hit and corruption checks, and a separate file from bf16 (the key has the
 * weights format), so neither load takes the other's.
 */
#include "densemllm.h"
#include "testutil.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_OUTPUT (1 << 20)

/* What a load logged about the cache: the last packed-weight cache message of each kind. */
static char hit_message[1024], miss_message[1024], warn_message[1024];

static void capture_log(dmllm_log_level level, const char *message, void *user_data) {
    (void)user_data;
    if (!strstr(message, "packed-weight cache")) return;
    if (strstr(message, "cache hit"))
        snprintf(hit_message, sizeof hit_message, "%s", message);
    else if (strstr(message, "packing and writing"))
        snprintf(miss_message, sizeof miss_message, "%s", message);
    else if (level == DMLLM_LOG_WARN)
        snprintf(warn_message, sizeof warn_message, "%s", message);
}

typedef struct outputs {
    size_t n;
    float values[MAX_OUTPUT]; /* image embeddings, then the last token's logits */
} outputs;

/* Loads dir with cache_dir and computes the outputs; false (after a CHECK) on failure. */
static bool run_model(const char *dir, const char *cache_dir, dmllm_compute_type compute,
                      dmllm_weights_type weights, outputs *out) {
    hit_message[0] = miss_message[0] = warn_message[0] = '\0';
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = compute;
    mp.weights = weights;
    mp.cache_dir = cache_dir;
    mp.n_threads = 2;
    dmllm_model *model = NULL;
    dmllm_session *session = NULL;
    dmllm_image *image = NULL;
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.n_threads = 2;
    sp.max_num_patches = 64;
    size_t rows = 0, cols = 0, count = 0;
    const int32_t ids[4] = {1, 100, 2000, 4000};
    bool ok =
        dmllm_model_load(dir, &mp, &model) == DMLLM_OK &&
        dmllm_session_create(model, &sp, &session) == DMLLM_OK &&
        dmllm_image_load_file(test_source_path("models/tiny/sample.png"), &image) == DMLLM_OK &&
        dmllm_session_encode_image(session, image) == DMLLM_OK &&
        dmllm_session_image_embeddings(session, out->values, MAX_OUTPUT, &rows, &cols) ==
            DMLLM_OK &&
        dmllm_session_eval(session, ids, 4) == DMLLM_OK &&
        dmllm_session_logits(session, out->values + rows * cols, MAX_OUTPUT - rows * cols,
                             &count) == DMLLM_OK;
    CHECK_MSG(ok, "loading and running %s with cache %s: %s", dir,
              cache_dir ? cache_dir : "(default)", dmllm_last_error());
    out->n = rows * cols + count;
    dmllm_image_free(image);
    dmllm_session_free(session);
    dmllm_model_free(model);
    return ok;
}

static bool same_outputs(const outputs *a, const outputs *b) {
    return a->n == b->n && a->n > 0 && memcmp(a->values, b->values, a->n * sizeof(float)) == 0;
}

/* The one cache file in dir ("" when none); counts *.tmp.* leftovers in *n_temp. */
static void find_cache_file(const char *dir, char *path, size_t size, int *n_files, int *n_temp) {
    path[0] = '\0';
    *n_files = *n_temp = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (strstr(e->d_name, ".tmp."))
            (*n_temp)++;
        else if (strstr(e->d_name, ".dmllm-pack")) {
            (*n_files)++;
            snprintf(path, size, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
}

static void copy_file(const char *from, const char *to) {
    size_t size;
    void *data = test_read_file(from, &size);
    CHECK_MSG(data && test_write_file(to, data, size) == 0, "copying %s to %s", from, to);
    free(data);
}

static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    const int c = fgetc(f);
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

/* The load hit (expect_hit) or rebuilt for a reason containing why, with the reference outputs. */
static void expect_load(const char *dir, const char *cache, dmllm_compute_type compute,
                        dmllm_weights_type weights, const outputs *reference, bool expect_hit,
                        const char *why, outputs *scratch) {
    if (!run_model(dir, cache, compute, weights, scratch)) return;
    CHECK_MSG(same_outputs(scratch, reference), "%s: outputs differ from a cold load", why);
    if (expect_hit) {
        CHECK_MSG(hit_message[0] && !miss_message[0], "%s: expected a hit, log: '%s'", why,
                  miss_message);
    } else {
        CHECK_MSG(!hit_message[0] && strstr(miss_message, why),
                  "%s: expected a rebuild for this reason, log: '%s'", why, miss_message);
    }
}

static void test_hit_and_corruption(const char *dir, const char *cache, dmllm_compute_type compute,
                                    dmllm_weights_type weights, outputs *cold, outputs *got) {
    if (!run_model(dir, "off", compute, weights, cold)) return;
    CHECK(!hit_message[0] && !miss_message[0]);
    expect_load(dir, cache, compute, weights, cold, false, "none yet", got);
    char file[4096];
    int n_files, n_temp;
    find_cache_file(cache, file, sizeof file, &n_files, &n_temp);
    CHECK_MSG(n_files == 1 && n_temp == 0, "%d cache files and %d temp files after a cold load",
              n_files, n_temp);
    expect_load(dir, cache, compute, weights, cold, true, "second load", got);

    struct stat st;
    CHECK(stat(file, &st) == 0);
    CHECK(truncate(file, st.st_size - 1) == 0);
    expect_load(dir, cache, compute, weights, cold, false, "truncated", got);
    CHECK(truncate(file, 100) == 0);
    expect_load(dir, cache, compute, weights, cold, false, "truncated", got);
    flip_byte(file, 0);
    expect_load(dir, cache, compute, weights, cold, false, "bad magic", got);
    flip_byte(file, 20); /* inside the header's checkpoint identity */
    expect_load(dir, cache, compute, weights, cold, false, "checksum mismatch", got);
    flip_byte(file, -3); /* inside the index at the end */
    expect_load(dir, cache, compute, weights, cold, false, "checksum mismatch", got);
    expect_load(dir, cache, compute, weights, cold, true, "after the rebuilds", got);
    find_cache_file(cache, file, sizeof file, &n_files, &n_temp);
    CHECK_MSG(n_files == 1 && n_temp == 0, "%d cache files and %d temp files after rebuilds",
              n_files, n_temp);
}

/* A checkpoint rewritten with other weights: the stale cache must not be used. */
static void test_changed_checkpoint(const char *dir, const char *cache, const outputs *before,
                                    outputs *cold, outputs *got) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t size;
    unsigned char *data = test_read_file(path, &size);
    CHECK(data && size > 4096);
    if (!data) return;
    /* The last tensor bytes of the file: halve a few bf16/f32 values by flipping exponent bits. */
    for (size_t i = size - 64; i < size; i += 2) data[i + 1] ^= 0x01;
    CHECK(unlink(path) == 0 && test_write_file(path, data, size) == 0);
    free(data);
    if (!run_model(dir, "off", DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold)) return;
    CHECK_MSG(!same_outputs(cold, before), "the changed checkpoint should change the outputs");
    expect_load(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold, false,
                "the checkpoint changed", got);
    expect_load(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold, true,
                "after the checkpoint change", got);
}

/* Two processes (this program with --child) loading with an empty cache at the same time. */
static void test_concurrent(const char *dir, const char *cache, const outputs *cold, outputs *got) {
    pid_t children[2];
    char out_paths[2][4096];
    for (int c = 0; c < 2; c++) {
        snprintf(out_paths[c], sizeof out_paths[c], "%s/child%d.bin", test_temp_dir(), c);
        children[c] = fork();
        if (children[c] == 0) {
            execl("/proc/self/exe", "test_packcache", "--child", dir, cache, out_paths[c],
                  (char *)NULL);
            _exit(127);
        }
        CHECK(children[c] > 0);
    }
    for (int c = 0; c < 2; c++) {
        int status = -1;
        CHECK(children[c] > 0 && waitpid(children[c], &status, 0) == children[c]);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d exited with status %d",
                  c, status);
        size_t size;
        float *values = test_read_file(out_paths[c], &size);
        CHECK_MSG(values && size == cold->n * sizeof(float) &&
                      memcmp(values, cold->values, size) == 0,
                  "child %d's outputs differ from a cold load", c);
        free(values);
    }
    char file[4096];
    int n_files, n_temp;
    find_cache_file(cache, file, sizeof file, &n_files, &n_temp);
    CHECK_MSG(n_files == 1 && n_temp == 0,
              "%d cache files and %d temp files after two concurrent loads", n_files, n_temp);
    expect_load(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold, true,
                "after concurrent loads", got);
}

static int child_main(const char *dir, const char *cache, const char *out_path) {
    static outputs out;
    if (!run_model(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, &out)) return 1;
    return test_write_file(out_path, out.values, out.n * sizeof(float)) == 0 ? 0 : 1;
}

static int count_entries(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* Whether this CPU runs int8 weights (VNNI); any other failure is one. */
static bool int8_supported(const char *dir) {
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.weights = DMLLM_WEIGHTS_INT8;
    mp.cache_dir = "off";
    dmllm_model *model = NULL;
    const dmllm_status status = dmllm_model_load(dir, &mp, &model);
    CHECK_MSG(status == DMLLM_OK || status == DMLLM_ERR_UNSUPPORTED, "int8 load: %s",
              dmllm_last_error());
    dmllm_model_free(model);
    return status == DMLLM_OK;
}

/* bf16 and int8 loads of one checkpoint in one cache directory: each weights format has its own
 * file (key), so the int8 load after a bf16 one misses instead of taking the bf16 file, and both
 * then hit. Every linear is adopted on a hit (the LM head unquantised), else the load would remove
 * the file as lacking an entry and the next load would miss. */
static void test_weights_keys(const char *dir, const char *cache, outputs *cold, outputs *got) {
    static outputs cold_int8;
    if (!run_model(dir, "off", DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold) ||
        !run_model(dir, "off", DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_INT8, &cold_int8))
        return;
    CHECK_MSG(!same_outputs(cold, &cold_int8), "int8 and bf16 outputs should differ");
    expect_load(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold, false, "none yet", got);
    expect_load(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_INT8, &cold_int8, false, "none yet",
                got);
    for (int round = 0; round < 2; round++) {
        expect_load(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_INT8, &cold_int8, true,
                    "int8 after bf16", got);
        expect_load(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold, true,
                    "bf16 after int8", got);
    }
    CHECK_MSG(count_entries(cache) == 2, "%d entries for a bf16 and an int8 file",
              count_entries(cache));
}

/* "off" writes nothing; the default directory is $XDG_CACHE_HOME/densemllm; a cache directory that
 * cannot be written: a log line. */
static void test_settings(const char *dir, const outputs *cold, outputs *got) {
    char xdg[2048], cache[4096], blocked[2048];
    snprintf(xdg, sizeof xdg, "%s/xdg", test_temp_dir());
    CHECK(mkdir(xdg, 0700) == 0);
    setenv("XDG_CACHE_HOME", xdg, 1);
    setenv("DMLLM_CACHE_DIR", "off", 1);
    if (run_model(dir, NULL, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, got))
        CHECK(same_outputs(got, cold));
    CHECK_MSG(count_entries(xdg) == 0, "DMLLM_CACHE_DIR=off wrote %d entries", count_entries(xdg));
    unsetenv("DMLLM_CACHE_DIR");
    snprintf(cache, sizeof cache, "%s/off-param", test_temp_dir());
    CHECK(mkdir(cache, 0700) == 0);
    if (run_model(dir, "off", DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, got))
        CHECK(same_outputs(got, cold));
    CHECK(count_entries(xdg) == 0 && count_entries(cache) == 0 && !miss_message[0]);
    expect_load(dir, NULL, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, cold, false, "none yet",
                got);
    snprintf(cache, sizeof cache, "%s/densemllm", xdg);
    CHECK_MSG(count_entries(cache) == 1, "the default directory %s holds %d entries", cache,
              count_entries(cache));
    unsetenv("XDG_CACHE_HOME");

    /* A directory below a regular file cannot be created, even by root. */
    snprintf(blocked, sizeof blocked, "%s/a-file", test_temp_dir());
    CHECK(test_write_file(blocked, "x", 1) == 0);
    snprintf(cache, sizeof cache, "%s/cache", blocked);
    if (run_model(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, got))
        CHECK(same_outputs(got, cold));
    CHECK_MSG(strstr(warn_message, "loading without it"), "unwritable cache dir: log '%s'",
              warn_message);
    if (geteuid() != 0) {
        snprintf(cache, sizeof cache, "%s/read-only", test_temp_dir());
        CHECK(mkdir(cache, 0500) == 0);
        warn_message[0] = '\0';
        if (run_model(dir, cache, DMLLM_COMPUTE_AUTO, DMLLM_WEIGHTS_AUTO, got))
            CHECK(same_outputs(got, cold));
        CHECK_MSG(strstr(warn_message, "loading without it"), "read-only cache dir: log '%s'",
                  warn_message);
        CHECK(count_entries(cache) == 0);
        chmod(cache, 0700);
    }
}

int main(int argc, char **argv) {
    dmllm_log_set(capture_log, NULL);
    if (argc == 5 && strcmp(argv[1], "--child") == 0) return child_main(argv[2], argv[3], argv[4]);
    static outputs cold, got;
    char dir[2048], cache[2048];
    snprintf(dir, sizeof dir, "%s/model", test_temp_dir());
    CHECK(mkdir(dir, 0700) == 0);
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        char from[64], to[4096];
        snprintf(from, sizeof from, "models/tiny/%s", files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        copy_file(test_source_path(from), to);
    }
    /* int8 on the compute AUTO chooses, f32, AUTO: bf16 where it can (last: the later tests use
     * its cache and cold outputs) */
    const dmllm_compute_type computes[3] = {DMLLM_COMPUTE_AUTO, DMLLM_COMPUTE_F32,
                                            DMLLM_COMPUTE_AUTO};
    const dmllm_weights_type weights[3] = {DMLLM_WEIGHTS_INT8, DMLLM_WEIGHTS_AUTO,
                                           DMLLM_WEIGHTS_AUTO};
    const bool int8 = int8_supported(dir);
    for (int c = int8 ? 0 : 1; c < 3; c++) {
        snprintf(cache, sizeof cache, "%s/cache-%d", test_temp_dir(), c);
        test_hit_and_corruption(dir, cache, computes[c], weights[c], &cold, &got);
    }
    if (int8) {
        char keys_cache[2048];
        snprintf(keys_cache, sizeof keys_cache, "%s/weights-keys", test_temp_dir());
        test_weights_keys(dir, keys_cache, &cold, &got);
    } else {
        printf("int8 weights not supported on this CPU, their cache tests skipped: %s\n",
               dmllm_last_error());
    }
    test_settings(dir, &cold, &got);
    static outputs before;
    before = cold;
    test_changed_checkpoint(dir, cache, &before, &cold, &got);
    snprintf(cache, sizeof cache, "%s/concurrent", test_temp_dir());
    test_concurrent(dir, cache, &cold, &got);
    return test_finish("test_packcache");
}
