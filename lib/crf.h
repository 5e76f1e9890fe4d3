/*
 * crf.h: internals of crf.c, the fully connected CRF of the public header (dmllm_crf_refine):
 * a permutohedral-lattice Gaussian filter over per-pixel features. Exposed for the tests, which
 * compare the filter with exact Gaussian sums.
 */
#ifndef DMLLM_CRF_H
#define DMLLM_CRF_H

#include "common.h"

enum { DMLLM_CRF_MAX_FEATURES = 5 }; /* bilateral: x, y, r, g, b */

/* The permutohedral lattice of n_points feature vectors (Adams, Baek & Davis 2010). Filtering
 * approximates out_i = sum_j exp(-|f_i - f_j|^2 / 2) in_j up to one global scale factor (more
 * loosely as d grows: its kernel gets wider than the Gaussian). */
typedef struct dmllm_lattice {
    int d; /* feature dimensions, 1 .. DMLLM_CRF_MAX_FEATURES */
    int n_points, n_vertices;
    int32_t *point_vertex; /* [n_points][d+1] the corners of each point's enclosing simplex */
    float *point_weight;   /* [n_points][d+1] barycentric weights of those corners */
    int32_t *vertex_start; /* [n_vertices+1] CSR rows of the splat: the points touching a vertex */
    int32_t *splat_point;  /* [n_points*(d+1)] point of each CSR entry */
    float *splat_weight;   /* [n_points*(d+1)] its weight */
    int32_t *neighbours;   /* [n_vertices][d+1][2] vertex one step back / forward along each lattice
                              direction, -1 where the lattice has no vertex */
} dmllm_lattice;

/* Checks dmllm_crf_params' ranges (the header's), naming the field; dmllm_crf_refine and the dense
 * readout's evaluation path both call it, the latter also when iterations = 0 skips the CRF. */
dmllm_status dmllm_crf_check_params(const dmllm_crf_params *params);

/* Bytes dmllm_crf_refine allocates beyond its input and output for a width x height image of
 * n_labels (params checked): the energies and marginals, each term's lattice (its vertices bounded
 * from the feature ranges), the filter blocks. The memory budget's estimate of the dense CRF. */
size_t dmllm_crf_bytes(int width, int height, int n_labels, const dmllm_crf_params *params);

/* features [n_points][d]. */
dmllm_status dmllm_lattice_build(const float *features, int n_points, int d, dmllm_lattice *lattice);
void dmllm_lattice_free(dmllm_lattice *lattice);

/* out[n_points][n_channels] = the lattice filter of in[n_points][n_channels] (out != in).
 * scratch: [2][n_vertices][n_channels] floats. */
void dmllm_lattice_filter(const dmllm_lattice *lattice, const float *in, int n_channels, float *out, float *scratch);

#endif
