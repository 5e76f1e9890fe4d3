/*
 * bench_crf.c: where the time of the dense CRF goes on one image: building the two lattices
 * (Gaussian 2-D, bilateral 5-D) and the whole dmllm_crf_refine with the default parameters, for a
 * label count of FG/BG (2) or a class list. The picture is generated (ramps, a disc and a bar, so
 * the bilateral lattice sees edges), the probabilities follow its regions with some noise.
 * Compare the CRF time with the first dense query (densemllm bench) at the same size.
 * Usage: bench_crf [WIDTH [HEIGHT [LABELS [REPEAT]]]]   (defaults 1024 1024 2 3)
 */
#include "crf.h"
#include "image.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static void fill_picture(dmllm_image *image) {
    const int w = image->width, h = image->height, r = (w < h ? w : h) / 4;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = image->pixels + ((size_t)y * w + x) * 3;
            const int dx = x - w / 3, dy = y - h / 2;
            const int disc = dx * dx + dy * dy < r * r, bar = x > 2 * w / 3 && x < 5 * w / 6;
            p[0] = (uint8_t)(disc ? 220 : 255 * x / w);
            p[1] = (uint8_t)(bar ? 30 : 255 * y / h);
            p[2] = (uint8_t)(disc ? 40 : bar ? 200 : 90);
        }
}

/* Region k of pixel i gets most of the mass, the rest spread with a deterministic wobble. */
static void fill_probabilities(const dmllm_image *image, int n_labels, float *probabilities) {
    const int w = image->width, h = image->height, r = (w < h ? w : h) / 4;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int dx = x - w / 3, dy = y - h / 2;
            const int region = dx * dx + dy * dy < r * r ? 1 : x > 2 * w / 3 && x < 5 * w / 6 ? 2 : 0;
            float *q = probabilities + ((size_t)y * w + x) * n_labels;
            float sum = 0.0f;
            for (int k = 0; k < n_labels; k++) {
                const unsigned noise = (unsigned)(x * 73856093u ^ y * 19349663u ^ k * 83492791u) % 1000u;
                q[k] = (k == region % n_labels ? 2.0f : 0.5f) + noise / 1000.0f;
                sum += q[k];
            }
            for (int k = 0; k < n_labels; k++) q[k] /= sum;
        }
}

/* Builds the lattice of the default Gaussian (2-D) or bilateral (5-D) kernel; returns seconds. */
static double time_lattice(const dmllm_image *image, int bilateral) {
    const int d = bilateral ? 5 : 2, n = image->width * image->height;
    float *features = malloc((size_t)n * d * sizeof *features); /* [n][d] */
    if (!features) return -1.0;
    for (int i = 0; i < n; i++) {
        float *f = features + (size_t)i * d;
        const float sxy = bilateral ? 80.0f : 3.0f;
        f[0] = (float)(i % image->width) / sxy;
        f[1] = (float)(i / image->width) / sxy;
        for (int c = 0; c < d - 2; c++) f[2 + c] = image->pixels[3 * (size_t)i + c] / 13.0f;
    }
    dmllm_lattice lattice;
    const double t0 = omp_get_wtime();
    const dmllm_status status = dmllm_lattice_build(features, n, d, &lattice);
    const double seconds = omp_get_wtime() - t0;
    if (status == DMLLM_OK) dmllm_lattice_free(&lattice);
    free(features);
    return status == DMLLM_OK ? seconds : -1.0;
}

int main(int argc, char **argv) {
    const int width = argc > 1 ? atoi(argv[1]) : 1024, height = argc > 2 ? atoi(argv[2]) : 1024;
    const int n_labels = argc > 3 ? atoi(argv[3]) : 2, repeat = argc > 4 ? atoi(argv[4]) : 3;
    if (width < 1 || height < 1 || n_labels < 1 || repeat < 1 || (size_t)width * height > (1u << 26)) {
        fprintf(stderr, "usage: bench_crf [WIDTH [HEIGHT [LABELS [REPEAT]]]]\n");
        return 2;
    }
    dmllm_image *image = NULL;
    float *probabilities = malloc((size_t)width * height * n_labels * sizeof *probabilities); /* [h][w][n] */
    float *refined = malloc((size_t)width * height * n_labels * sizeof *refined);             /* [h][w][n] */
    if (!probabilities || !refined || dmllm_image_alloc(width, height, &image) != DMLLM_OK) {
        fprintf(stderr, "bench_crf: out of memory\n");
        return 1;
    }
    fill_picture(image);
    fill_probabilities(image, n_labels, probabilities);
    printf("%dx%d, %d labels, %d threads\n", width, height, n_labels, omp_get_max_threads());
    for (int r = 0; r < repeat; r++) {
        const double gaussian = time_lattice(image, 0), bilateral = time_lattice(image, 1);
        const double t0 = omp_get_wtime();
        const dmllm_status status = dmllm_crf_refine(image, probabilities, n_labels, NULL, refined);
        const double total = omp_get_wtime() - t0;
        if (status != DMLLM_OK || gaussian < 0.0 || bilateral < 0.0) {
            fprintf(stderr, "bench_crf: %s\n", dmllm_last_error());
            return 1;
        }
        printf("lattice 2-D %.3f s, lattice 5-D %.3f s, dmllm_crf_refine %.3f s (lattices %.0f %%)\n", gaussian,
               bilateral, total, 100.0 * (gaussian + bilateral) / total);
    }
    dmllm_image_free(image);
    free(probabilities);
    free(refined);
    return 0;
}
