/*
 * render.h: the pieces under the public PNG writers of render.c that are checked on their own:
 * the atomic PNG writer, the depth colour map and the three-component PCA.
 */
#ifndef DMLLM_RENDER_H
#define DMLLM_RENDER_H

#include "common.h"

typedef enum dmllm_png_kind {
    DMLLM_PNG_PALETTE8 = 0, /* one index byte per pixel, with a palette */
    DMLLM_PNG_GRAY16 = 1,   /* one big-endian uint16 per pixel */
    DMLLM_PNG_RGB8 = 2      /* three bytes per pixel */
} dmllm_png_kind;

/* Writes a PNG to "<path>.tmp.<pid>", then renames it over path; the temporary file is removed on
 * any failure. pixels: [height][width * bytes per pixel of kind]. palette: [n_palette][3] RGB,
 * 1 <= n_palette <= 256, for DMLLM_PNG_PALETTE8 only (else NULL). */
dmllm_status dmllm_png_write(const char *path, dmllm_png_kind kind, const uint8_t *pixels, int width, int height,
                             const uint8_t *palette, int n_palette);

/* Colour of the depth map at t (clamped to [0, 1]; 0 = near): the public five-stop ramp. */
void dmllm_depth_color(float t, uint8_t rgb[3]);

/* Top three principal components of features [rows][cols] (centred here): components [3][cols]
 * unit vectors, scores [rows][3] the centred rows projected on them, variances [3] with the
 * rows-1 denominator. A component beyond the data's rank is all zeros, with zero scores and
 * variance. Deterministic for a given input, whatever the thread count. */
dmllm_status dmllm_pca3(const float *features, int rows, int cols, double *components, double *scores,
                        double *variances);

#endif
