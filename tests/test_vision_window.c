/*
 * test_vision_window.c: the vision window partition (model-spec 3.2) on ragged and square grids
 * against a brute-force construction (sort every merged token by (window row, window col, row, col)),
 * the inverse permutation, and the tower's activation memory on a 64x64 patch grid of a random
 * checkpoint written by tests/support_safetensors_writer.c (peak RSS growth of one forward call).
 */
#include "checkpoint.h"
#include "support_safetensors_writer.h"
#include "testutil.h"
#include "vision.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
static const bool address_sanitizer = true;
#else
static const bool address_sanitizer = false;
#endif

typedef struct token_key {
    int window_row, window_col, row, col;
} token_key;

static int compare_keys(const void *a, const void *b) {
    const token_key *x = a, *y = b;
    if (x->window_row != y->window_row) return x->window_row < y->window_row ? -1 : 1;
    if (x->window_col != y->window_col) return x->window_col < y->window_col ? -1 : 1;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

static void check_window_order(int merged_h, int merged_w, int window_tokens) {
    const int n = merged_h * merged_w;
    const int windows_down = (merged_h + window_tokens - 1) / window_tokens;
    const int windows_across = (merged_w + window_tokens - 1) / window_tokens;
    token_key *keys = malloc((size_t)n * sizeof *keys);      /* [n] sorted into window order */
    int *index = malloc((size_t)n * sizeof *index);           /* [n] */
    int *inverse = malloc((size_t)n * sizeof *inverse);       /* [n] window position of each token */
    int *starts = malloc((size_t)(windows_down * windows_across + 1) * sizeof *starts);
    CHECK(keys && index && inverse && starts);
    if (!keys || !index || !inverse || !starts) goto done;
    for (int t = 0; t < n; t++)
        keys[t] = (token_key){t / merged_w / window_tokens, t % merged_w / window_tokens, t / merged_w, t % merged_w};
    qsort(keys, (size_t)n, sizeof *keys, compare_keys);

    const int n_windows = dmllm_vision_window_order(merged_h, merged_w, window_tokens, index, starts);
    CHECK_MSG(n_windows == windows_down * windows_across, "%dx%d: %d windows", merged_h, merged_w, n_windows);
    int mismatches = 0, boundary_errors = 0, window = 0;
    for (int i = 0; i < n; i++) {
        mismatches += index[i] != keys[i].row * merged_w + keys[i].col;
        const bool new_window = i == 0 || keys[i].window_row != keys[i - 1].window_row ||
                                keys[i].window_col != keys[i - 1].window_col;
        if (new_window) boundary_errors += window >= n_windows || starts[window++] != i;
    }
    boundary_errors += window != n_windows || starts[n_windows] != n;
    CHECK_MSG(mismatches == 0, "%dx%d window %d: %d positions differ from the sorted order", merged_h, merged_w,
              window_tokens, mismatches);
    CHECK_MSG(boundary_errors == 0, "%dx%d window %d: %d window boundaries wrong", merged_h, merged_w, window_tokens,
              boundary_errors);

    /* The restore step scatters row i back to token index[i]: a bijection whose inverse composes to
     * the identity both ways. */
    for (int t = 0; t < n; t++) inverse[t] = -1;
    int out_of_range = 0, repeated = 0, not_identity = 0;
    for (int i = 0; i < n; i++) {
        if (index[i] < 0 || index[i] >= n) out_of_range++;
        else if (inverse[index[i]] >= 0) repeated++;
        else inverse[index[i]] = i;
    }
    for (int t = 0; t < n && out_of_range + repeated == 0; t++) not_identity += index[inverse[t]] != t;
    for (int i = 0; i < n && out_of_range + repeated == 0; i++) not_identity += inverse[index[i]] != i;
    CHECK_MSG(out_of_range + repeated + not_identity == 0, "%dx%d: %d out of range, %d repeated, %d not inverted",
              merged_h, merged_w, out_of_range, repeated, not_identity);
done:
    free(keys);
    free(index);
    free(inverse);
    free(starts);
}

static void test_window_orders(void) {
    static const int grids[][3] = {{10, 9, 8}, {1, 1, 8}, {8, 8, 8}, {17, 3, 8}, {3, 17, 8}, {6, 10, 8},
                                   {16, 16, 8}, {9, 9, 8}, {5, 7, 2}, {7, 5, 1}, {64, 40, 8}, {2, 2, 4}};
    for (size_t g = 0; g < sizeof grids / sizeof grids[0]; g++) check_window_order(grids[g][0], grids[g][1], grids[g][2]);

    /* The golden "ragged" layout from model-spec 3.2: merged 10x9 -> windows of 64, 8, 16 and 2 tokens. */
    int index[90], starts[5];
    CHECK(dmllm_vision_window_order(10, 9, 8, index, starts) == 4);
    CHECK(starts[0] == 0 && starts[1] == 64 && starts[2] == 72 && starts[3] == 88 && starts[4] == 90);
    CHECK(index[0] == 0 && index[7] == 7 && index[8] == 9 && index[64] == 8 && index[65] == 17 && index[72] == 72 &&
          index[89] == 89);
}

/* Resident-set figures of this process in kB from /proc/self/status ("VmRSS:" or "VmHWM:"), -1 if unknown. */
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long value = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) value = strtol(line + strlen(key), NULL, 10);
    fclose(f);
    return value;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); false when the kernel refuses. */
static bool reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static void test_activation_memory(void) {
    dmllm_config config;
    stw_tiny_config(&config);
    dmllm_vision_config *v = &config.vision;
    v->hidden_size = 256;
    v->num_heads = 4;            /* head_dim 64 */
    v->intermediate_size = 4096; /* an unchunked [Np, intermediate] MLP buffer would be 64 MiB */
    v->num_layers = 2;
    v->patch_size = 4;
    v->window_size = 32;         /* 4x4 merged-token windows */
    const int gh = 64, gw = 64;
    const size_t np = (size_t)gh * gw, h = (size_t)v->hidden_size, f = (size_t)v->intermediate_size;
    const size_t head_dim = h / (size_t)v->num_heads, chunk = 1024;
    const size_t patch_dim = (size_t)v->num_channels * v->patch_size * v->patch_size;

    const char *dir = test_temp_dir();
    stw_checkpoint_options options = {.dtype = DMLLM_DTYPE_F32, .seed = 7};
    CHECK(stw_write_checkpoint(dir, &config, &options) == 0);
    dmllm_checkpoint *checkpoint = NULL;
    dmllm_backend *backend = NULL;
    dmllm_vision *vision = NULL;
    CHECK_OK(dmllm_checkpoint_open(dir, &checkpoint));
    CHECK_OK(dmllm_backend_create(DMLLM_COMPUTE_F32, &backend));
    if (checkpoint && backend) CHECK_OK(dmllm_vision_load(backend, checkpoint, &vision));
    float *pixels = malloc(np * patch_dim * sizeof(float)); /* [Np, patch_dim] */
    float *out = malloc(np * h * sizeof(float));             /* [Np, hidden] */
    if (vision && pixels && out) {
        for (size_t i = 0; i < np * patch_dim; i++) pixels[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
        memset(out, 0, np * h * sizeof(float));
        /* A first call creates the OpenMP team and the backend's primitives for these row counts. */
        CHECK_OK(dmllm_vision_forward(vision, pixels, gh, gw, out, NULL));
        const long before_kb = status_kb("VmRSS:");
        if (address_sanitizer) {
            printf("activation memory: RSS bound skipped under AddressSanitizer (redzones and quarantine)\n");
        } else if (!reset_peak_rss() || before_kb < 0) {
            printf("activation memory: skipped (cannot reset the peak RSS through /proc/self/clear_refs)\n");
        } else {
            CHECK_OK(dmllm_vision_forward(vision, pixels, gh, gw, out, NULL));
            const long growth_kb = status_kb("VmHWM:") - before_kb;
            const double formula_mib = 4.0 * (np * h + np * 3 * h + np * head_dim + chunk * (h + f)) / 1048576.0;
            const double unchunked_mlp_mib = 4.0 * np * f / 1048576.0;
            printf("activation memory, 64x64 patches, hidden %zu, intermediate %zu: peak RSS growth %.1f MiB, "
                   "formula %.1f MiB (an [Np, intermediate] buffer alone would be %.1f MiB)\n",
                   h, f, growth_kb / 1024.0, formula_mib, unchunked_mlp_mib);
            CHECK_MSG(growth_kb / 1024.0 <= formula_mib + 16.0, "peak RSS growth %.1f MiB > formula %.1f + 16 MiB",
                      growth_kb / 1024.0, formula_mib);
        }
        bool finite = true;
        for (size_t i = 0; i < np * h; i++) finite = finite && out[i] == out[i] && out[i] - out[i] == 0.0f;
        CHECK(finite);
    }
    free(out);
    free(pixels);
    dmllm_vision_free(vision);
    dmllm_backend_free(backend);
    dmllm_checkpoint_close(checkpoint);
}

int main(void) {
    /* A fixed threshold keeps glibc from raising it after the first free, so every large buffer is
     * mapped per call and returned on free, and the peak RSS growth of a call counts its buffers. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    test_window_orders();
    test_activation_memory();
    return test_finish("test_vision_window");
}
