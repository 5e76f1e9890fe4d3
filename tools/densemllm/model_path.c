/*
 * model_path.c: the model the densemllm tool runs when neither --model nor $DMLLM_MODEL names one.
 * Both places it looks are relative to the running executable, never absolute paths compiled in,
 * so an installed prefix keeps working when it is moved and a checkout can move with its build.
 */
#include "cli.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* From the executable's directory: the installed model (cmake/install.cmake sets both). */
#ifndef DMLLM_MODEL_FROM_BINDIR
#define DMLLM_MODEL_FROM_BINDIR "../share/densemllm/models/tiny"
#endif
/* From the executable's directory in the build tree: the source tree's models/tiny; "" if none. */
#ifndef DMLLM_SOURCE_MODEL_FROM_BUILD
#define DMLLM_SOURCE_MODEL_FROM_BUILD ""
#endif

const char *const cli_default_model_help =
    "model directory (default: $DMLLM_MODEL, else " DMLLM_MODEL_FROM_BINDIR
    " from this program's folder, else a build tree's source models/tiny)";

/* "<dir>/<relative>" resolved to an absolute path in out[PATH_MAX] when it is a directory. */
static int existing_dir(const char *dir, const char *relative, char out[PATH_MAX]) {
    char joined[2 * PATH_MAX]; /* dir (< PATH_MAX) + "/" + a short compiled-in relative path */
    struct stat st;
    if (!*relative) return 0;
    snprintf(joined, sizeof joined, "%s/%s", dir, relative);
    return stat(joined, &st) == 0 && S_ISDIR(st.st_mode) && realpath(joined, out) != NULL;
}

const char *cli_default_model_dir(void) {
    static char found[PATH_MAX];  /* the answer, kept for the process's life */
    char exe_dir[PATH_MAX];       /* directory of /proc/self/exe */
    ssize_t n = readlink("/proc/self/exe", exe_dir, sizeof exe_dir - 1);
    if (n <= 0) return DMLLM_MODEL_FROM_BINDIR; /* no /proc: the error will name this path */
    exe_dir[n] = '\0';
    char *slash = strrchr(exe_dir, '/');
    if (slash) *slash = '\0';
    if (existing_dir(exe_dir, DMLLM_MODEL_FROM_BINDIR, found) ||
        existing_dir(exe_dir, DMLLM_SOURCE_MODEL_FROM_BUILD, found))
        return found;
    /* Neither exists: loading fails with the installed location in the message. */
    int length = snprintf(found, sizeof found, "%s/%s", exe_dir, DMLLM_MODEL_FROM_BINDIR);
    return length > 0 && (size_t)length < sizeof found ? found : DMLLM_MODEL_FROM_BINDIR;
}
