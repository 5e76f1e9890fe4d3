/*
 * replay_main.c: runs a libFuzzer harness of tests/fuzz without libFuzzer, over every file of the
 * directories (or files) given, so the normal build replays the seed corpora and the crash
 * reproducers of tests/fuzz/regressions as a CTest test. A finding aborts or crashes the process.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Feeds one file to the harness; returns 1 when it was read. */
static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        exit(1);
    }
    uint8_t *data = NULL; /* [size] the whole file */
    size_t size = 0, capacity = 0;
    for (;;) {
        if (size == capacity) {
            capacity = capacity ? 2 * capacity : 4096;
            if (!(data = realloc(data, capacity))) abort();
        }
        const size_t got = fread(data + size, 1, capacity - size, f);
        if (got == 0) break;
        size += got;
    }
    fclose(f);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 1;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays a directory's files in name order (so a failure log is reproducible). */
static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0; /* a target without reproducers has no regressions/ directory */
    char **names = NULL; /* [n] */
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (!(names = realloc(names, (n + 1) * sizeof *names)) || !(names[n] = strdup(e->d_name))) abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        count += replay_file(path);
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) count += replay_dir(argv[i]);
        else if (stat(argv[i], &st) == 0) count += replay_file(argv[i]);
    }
    /* The plain closing line: every input ran without a crash or an abort. */
    printf("%d passed, 0 failed\n", count);
    return count > 0 ? 0 : 1;
}
