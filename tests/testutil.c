#include "testutil.h"

#include "densemllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int test_failures, test_checks;
static char temp_dir[256];

void test_check_status(int got, int expected, const char *expr, const char *file, int line) {
    test_checks++;
    if (got != expected) {
        test_failures++;
        fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s); last error: %s\n", file, line, expr, got,
                dmllm_status_str((dmllm_status)got), expected, dmllm_status_str((dmllm_status)expected),
                dmllm_last_error());
    }
}

int test_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    if (temp_dir[0]) {
        char command[300];
        snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
        if (system(command) != 0) fprintf(stderr, "could not remove %s\n", temp_dir);
    }
    return test_failures == 0 && test_checks > 0 ? 0 : 1;
}

static const char *join(char *buffer, size_t size, const char *base, const char *relative) {
    snprintf(buffer, size, "%s/%s", base, relative);
    return buffer;
}

const char *test_source_path(const char *relative) {
    static _Thread_local char buffer[4][1024];
    static _Thread_local int next;
    const char *root = getenv("DMLLM_SOURCE_DIR");
    return join(buffer[next++ & 3], sizeof buffer[0], root ? root : ".", relative);
}

const char *test_shared_path(const char *relative) {
    static _Thread_local char buffer[4][1024];
    static _Thread_local int next;
    const char *root = getenv("DMLLM_SHARED_DIR");
    return join(buffer[next++ & 3], sizeof buffer[0], root ? root : "../shared", relative);
}

const char *test_temp_dir(void) {
    if (!temp_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(temp_dir, sizeof temp_dir, "%s/dmllm-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(temp_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return temp_dir;
}

void *test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data) {
        data[n] = '\0';
        *size = (size_t)n;
    }
    return data;
}

int test_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t written = fwrite(data, 1, size, f);
    return fclose(f) == 0 && written == size ? 0 : -1;
}

long test_peak_rss_kb(void) {
    struct rusage usage;
    return getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_maxrss : 0;
}
