/*
 * test_vision_golden.c: the vision tower and the merger against the PyTorch reference's goldens
 * (tests/fixtures/golden/<case>/: vision_out and image_embeds from pixel_values), on every compute
 * path the machine has, with the tolerances (f32 paths 1e-4, bf16 2e-2, relative to max|ref|).
 * Also checks the per-layer "vision" progress reports and that an abort fails cleanly.
 */
#include "checkpoint.h"
#include "merger.h"
#include "safetensors.h"
#include "testutil.h"
#include "vision.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct path_tolerance {
    dmllm_compute_type compute;
    const char *name;
    double tolerance; /* max|c - ref| / max|ref| */
} path_tolerance;

static const path_tolerance paths[] = {
    {DMLLM_COMPUTE_F32, "onednn-f32", 1e-4},
    {DMLLM_COMPUTE_OPENBLAS, "openblas-f32", 1e-4},
    {DMLLM_COMPUTE_BF16, "onednn-bf16", 2e-2},
};

static double relative_error(const float *got, const float *want, size_t n) {
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        max_diff = fmax(max_diff, fabs((double)got[i] - want[i]));
        max_ref = fmax(max_ref, fabs((double)want[i]));
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

static const dmllm_tensor *golden_tensor(const dmllm_safetensors *file, const char *name, dmllm_dtype dtype,
                                         int64_t n_elements) {
    const dmllm_tensor *t = dmllm_safetensors_find(file, name);
    CHECK_MSG(t && t->dtype == dtype && t->n_elements == n_elements, "golden %s: missing or not %lld elements of %s",
              name, (long long)n_elements, dmllm_dtype_name(dtype));
    return t && t->dtype == dtype && t->n_elements == n_elements ? t : NULL;
}

typedef struct progress_log {
    int calls, last_done, total;
    int abort_at;   /* abort when done reaches this (0: never) */
} progress_log;

static int record_progress(const char *stage, int done, int total, void *user_data) {
    progress_log *log = user_data;
    CHECK(strcmp(stage, "vision") == 0);
    CHECK(done == log->last_done + 1);
    log->calls++;
    log->last_done = done;
    log->total = total;
    return log->abort_at > 0 && done >= log->abort_at;
}

typedef struct golden_case {
    const char *name;
    const dmllm_checkpoint *checkpoint;
    int gh, gw;
    const float *pixel_values;  /* [gh*gw, patch_dim] */
    const float *vision_out;    /* [gh*gw, vision hidden] */
    const float *image_embeds;  /* [gh*gw/4, text hidden] */
} golden_case;

/* Runs the tower and merger on one compute path; false when the path is not available here. */
static bool run_path(const golden_case *gc, const path_tolerance *path, bool check_progress) {
    dmllm_backend *backend = NULL;
    if (dmllm_backend_create(path->compute, &backend) != DMLLM_OK) {
        printf("  %-12s %-14s not available: %s\n", gc->name, path->name, dmllm_last_error());
        return false;
    }
    const dmllm_config *config = dmllm_checkpoint_config(gc->checkpoint);
    const size_t n_patches = (size_t)gc->gh * gc->gw, n_tokens = n_patches / 4;
    float *vision_out = malloc(n_patches * config->vision.hidden_size * sizeof(float)); /* [Np, vision hidden] */
    float *embeds = malloc(n_tokens * config->text.hidden_size * sizeof(float));        /* [N, text hidden] */
    dmllm_vision *vision = NULL;
    dmllm_merger *merger = NULL;
    CHECK(vision_out && embeds);
    CHECK_OK(dmllm_vision_load(backend, gc->checkpoint, &vision));
    CHECK_OK(dmllm_merger_load(backend, gc->checkpoint, &merger));
    if (vision && merger && vision_out && embeds) {
        progress_log log = {0};
        dmllm_progress progress = {record_progress, &log};
        CHECK_OK(dmllm_vision_forward(vision, gc->pixel_values, gc->gh, gc->gw, vision_out, &progress));
        CHECK(log.calls == config->vision.num_layers && log.total == config->vision.num_layers);
        CHECK_OK(dmllm_merger_forward(merger, vision_out, (int)n_tokens, embeds));
        const double vision_err = relative_error(vision_out, gc->vision_out, n_patches * config->vision.hidden_size);
        const double merger_err = relative_error(embeds, gc->image_embeds, n_tokens * config->text.hidden_size);
        printf("  %-12s %-14s vision_out rel err %.2e, image_embeds rel err %.2e (tol %.0e)\n", gc->name, path->name,
               vision_err, merger_err, path->tolerance);
        CHECK_MSG(vision_err <= path->tolerance, "%s %s vision_out %.3e", gc->name, path->name, vision_err);
        CHECK_MSG(merger_err <= path->tolerance, "%s %s image_embeds %.3e", gc->name, path->name, merger_err);
        if (check_progress && config->vision.num_layers > 1) {
            progress_log stop = {.abort_at = 1};
            dmllm_progress aborting = {record_progress, &stop};
            CHECK_STATUS(dmllm_vision_forward(vision, gc->pixel_values, gc->gh, gc->gw, vision_out, &aborting),
                         DMLLM_ERR_ABORTED);
            CHECK(stop.calls == 1);
        }
        /* A grid that is not a multiple of the merge size is refused, not read past. */
        CHECK_STATUS(dmllm_vision_forward(vision, gc->pixel_values, gc->gh - 1, gc->gw, vision_out, NULL),
                     DMLLM_ERR_INVALID_ARGUMENT);
    }
    dmllm_merger_free(merger);
    dmllm_vision_free(vision);
    dmllm_backend_free(backend);
    free(embeds);
    free(vision_out);
    return true;
}

static int run_case(const char *case_name, const char *case_dir) {
    char golden_path[1500];
    snprintf(golden_path, sizeof golden_path, "%s/golden.safetensors", case_dir);
    dmllm_checkpoint *checkpoint = NULL;
    dmllm_safetensors *golden = NULL;
    CHECK_OK(dmllm_checkpoint_open(case_dir, &checkpoint));
    CHECK_OK(dmllm_safetensors_open(golden_path, &golden));
    int n_paths = 0;
    if (checkpoint && golden) {
        const dmllm_config *config = dmllm_checkpoint_config(checkpoint);
        const dmllm_tensor *grid = golden_tensor(golden, "grid", DMLLM_DTYPE_I32, 2);
        int32_t gh = 0, gw = 0;
        if (grid) {
            memcpy(&gh, grid->data, sizeof gh);
            memcpy(&gw, (const char *)grid->data + sizeof gh, sizeof gw);
        }
        const int64_t np = (int64_t)gh * gw;
        const int64_t patch_dim = (int64_t)config->vision.num_channels * config->vision.patch_size *
                                  config->vision.patch_size;
        const dmllm_tensor *pixels = golden_tensor(golden, "pixel_values", DMLLM_DTYPE_F32, np * patch_dim);
        const dmllm_tensor *vision_out = golden_tensor(golden, "vision_out", DMLLM_DTYPE_F32,
                                                       np * config->vision.hidden_size);
        const dmllm_tensor *embeds = golden_tensor(golden, "image_embeds", DMLLM_DTYPE_F32,
                                                   np / 4 * config->text.hidden_size);
        if (grid && pixels && vision_out && embeds && gh > 0 && gw > 0) {
            golden_case gc = {case_name, checkpoint, gh, gw, pixels->data, vision_out->data, embeds->data};
            printf("case %s: grid %dx%d, vision hidden %d, %d layers\n", case_name, gh, gw, config->vision.hidden_size,
                   config->vision.num_layers);
            for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++)
                n_paths += run_path(&gc, &paths[p], p == 0);
        }
    }
    dmllm_safetensors_close(golden);
    dmllm_checkpoint_close(checkpoint);
    return n_paths;
}

int main(void) {
    char root[1024];
    snprintf(root, sizeof root, "%s", test_source_path("tests/fixtures/golden"));
    DIR *dir = opendir(root);
    CHECK_MSG(dir != NULL, "cannot list %s", root);
    int n_cases = 0;
    for (struct dirent *entry; dir && (entry = readdir(dir)) != NULL;) {
        char case_dir[1400], golden_path[1500];
        struct stat info;
        snprintf(case_dir, sizeof case_dir, "%s/%s", root, entry->d_name);
        snprintf(golden_path, sizeof golden_path, "%s/golden.safetensors", case_dir);
        if (entry->d_name[0] == '.' || stat(golden_path, &info) != 0) continue;
        CHECK_MSG(run_case(entry->d_name, case_dir) >= 2, "case %s: fewer than the two f32 paths ran", entry->d_name);
        n_cases++;
    }
    if (dir) closedir(dir);
    CHECK_MSG(n_cases >= 3, "found %d golden cases under %s", n_cases, root);
    return test_finish("test_vision_golden");
}
