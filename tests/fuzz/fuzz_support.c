/* fuzz_support.c: see fuzz_support.h. */
#include "fuzz_support.h"

#include "densemllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char scratch[256]; /* the process's scratch directory, "" before fuzz_init */

static void quiet(dmllm_log_level level, const char *message, void *user_data) {
    (void)level, (void)message, (void)user_data;
}

/* Removes the scratch directory and its files at exit (libFuzzer exits through exit()). */
static void remove_scratch(void) {
    char command[300];
    snprintf(command, sizeof command, "rm -rf '%s'", scratch);
    if (system(command) != 0) fprintf(stderr, "fuzz: could not remove %s\n", scratch);
}

void fuzz_init(void) {
    if (scratch[0]) return;
    dmllm_log_set(quiet, NULL);
    /* /dev/shm keeps the per-input writes off the disk. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof scratch, "%s/dmllm-fuzz-XXXXXX", base);
    if (!mkdtemp(scratch)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_scratch);
}

char *fuzz_text(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

const char *fuzz_path(const char *name) {
    static char path[512];
    fuzz_init();
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    return path;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

const char *fuzz_source_path(const char *relative) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", DMLLM_SOURCE_DIR, relative);
    return path;
}
