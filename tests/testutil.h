/*
 * testutil.h: the minimal harness of the C tests: CHECK macros that count and report failures,
 * paths to the source tree and ../shared, and small file helpers.
 */
#ifndef DMLLM_TESTUTIL_H
#define DMLLM_TESTUTIL_H

#include <stddef.h>
#include <stdio.h>

extern int test_failures, test_checks;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        test_checks++;                                                                       \
        if (!(cond)) {                                                                       \
            test_failures++;                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        test_checks++;                                                                       \
        if (!(cond)) {                                                                       \
            test_failures++;                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

/* Checks a dmllm_status equals the expected one and prints dmllm_last_error() when not. */
#define CHECK_STATUS(expr, expected) test_check_status((expr), (expected), #expr, __FILE__, __LINE__)
#define CHECK_OK(expr) CHECK_STATUS(expr, 0)

void test_check_status(int got, int expected, const char *expr, const char *file, int line);
/* Prints "<name>: N checks, M failed" and returns the process exit code. */
int test_finish(const char *name);
/* Exit status of a test that cannot run in this build (CTest SKIP_RETURN_CODE). */
#define TEST_SKIPPED 77

/* $DMLLM_SOURCE_DIR/<relative> (the repository root), or ../shared/<relative>. */
const char *test_source_path(const char *relative);
const char *test_shared_path(const char *relative);
/* A fresh empty directory under the system temp dir, removed by test_finish(). */
const char *test_temp_dir(void);

/* Reads a whole file; returns a malloc'd buffer or NULL. */
void *test_read_file(const char *path, size_t *size);
/* Peak resident memory of the process so far, in kB (getrusage). */
long test_peak_rss_kb(void);
int test_write_file(const char *path, const void *data, size_t size);

#endif
