/*
 * crf.c: the fully connected CRF of Kraehenbuehl & Koltun (2011) over per-pixel label probabilities
 * (dmllm_crf_refine): unary -log p, a Gaussian kernel on positions and a bilateral kernel on
 * positions and colour, Potts compatibility, mean-field updates. Each update's message passing is a
 * Gaussian filter in feature space, done on a permutohedral lattice (Adams, Baek & Davis 2010:
 * splat onto the enclosing simplex's vertices, blur along the d+1 lattice directions, slice back).
 * Pure computation on caller buffers: touches no model or session.
 *
 * Semantics follow pydensecrf's DenseCRF2D, the pipeline model-spec 6.5 assumes: unary
 * -log(max(p, 1e-5)); features x/sxy, y/sxy (and r/srgb, g/srgb, b/srgb); symmetric kernel
 * normalisation D^-1/2 K D^-1/2 with D = K 1; update Q_i(l) ~ exp(-U_i(l) + sum_m w_m [K~_m Q](i, l)),
 * which is the Potts model's update up to a per-pixel constant.
 */
#include "crf.h"

#include "image.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define MIN_PROBABILITY 1e-5f /* pydensecrf's unary_from_softmax clip: keeps -log p finite */

enum { CHANNEL_BLOCK = 16 }; /* labels filtered together: bounds the lattice buffers, not the result */

/* Channels of the filter blocks for n_labels: fewer labels need no wider blocks. */
static int block_channels(int n_labels) {
    return n_labels < CHANNEL_BLOCK ? n_labels : CHANNEL_BLOCK;
}

void dmllm_crf_params_init(dmllm_crf_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->iterations = 5;
    params->gaussian_sxy = 3.0f;
    params->gaussian_compat = 3.0f;
    params->bilateral_sxy = 80.0f;
    params->bilateral_srgb = 13.0f;
    params->bilateral_compat = 10.0f;
}

size_t dmllm_crf_params_sizeof(void) { return sizeof(dmllm_crf_params); }

/* ---- the lattice's hash table ---------------------------------------------------------------- */

/* Open addressing over vertex keys (the first d coordinates of a remainder-0 .. d lattice point;
 * the last one follows from their sum being 0). */
typedef struct vertex_table {
    int d;
    size_t capacity; /* power of two */
    int32_t *slots;  /* [capacity] vertex index or -1 */
    int32_t *keys;   /* [key_capacity][d] key of each vertex */
    size_t n_keys, key_capacity;
} vertex_table;

static uint32_t hash_key(const int32_t *key, int d) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < d; i++) h = (h ^ (uint32_t)key[i]) * 16777619u;
    return h ^ (h >> 15);
}

static int32_t table_find(const vertex_table *t, const int32_t *key) {
    for (size_t s = hash_key(key, t->d) & (t->capacity - 1);; s = (s + 1) & (t->capacity - 1)) {
        const int32_t v = t->slots[s];
        if (v < 0 || memcmp(t->keys + (size_t)v * t->d, key, (size_t)t->d * sizeof *key) == 0) return v;
    }
}

static dmllm_status table_rehash(vertex_table *t, size_t capacity) {
    int32_t *slots = NULL; /* [capacity] */
    DMLLM_TRY(dmllm_alloc(&slots, capacity, sizeof *slots, "the lattice hash table"));
    memset(slots, 0xff, capacity * sizeof *slots);
    for (size_t v = 0; v < t->n_keys; v++) {
        size_t s = hash_key(t->keys + v * t->d, t->d) & (capacity - 1);
        while (slots[s] >= 0) s = (s + 1) & (capacity - 1);
        slots[s] = (int32_t)v;
    }
    free(t->slots);
    t->slots = slots;
    t->capacity = capacity;
    return DMLLM_OK;
}

/* The index of key's vertex, added when new. Keeps the load factor at most 1/2. */
static dmllm_status table_insert(vertex_table *t, const int32_t *key, int32_t *index) {
    if (2 * (t->n_keys + 1) > t->capacity) DMLLM_TRY(table_rehash(t, 2 * t->capacity));
    size_t s = hash_key(key, t->d) & (t->capacity - 1);
    for (; t->slots[s] >= 0; s = (s + 1) & (t->capacity - 1))
        if (memcmp(t->keys + (size_t)t->slots[s] * t->d, key, (size_t)t->d * sizeof *key) == 0) {
            *index = t->slots[s];
            return DMLLM_OK;
        }
    if (t->n_keys == t->key_capacity) {
        const size_t grown = 2 * t->key_capacity;
        int32_t *keys = realloc(t->keys, grown * (size_t)t->d * sizeof *keys);
        if (!keys)
            return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory growing the lattice to %zu vertices", grown);
        t->keys = keys;
        t->key_capacity = grown;
    }
    if (t->n_keys >= INT32_MAX) return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "the lattice has more than 2^31 vertices");
    memcpy(t->keys + t->n_keys * t->d, key, (size_t)t->d * sizeof *key);
    *index = t->slots[s] = (int32_t)t->n_keys++;
    return DMLLM_OK;
}

/* ---- building the lattice -------------------------------------------------------------------- */

/* Embeds f (d values) in the hyperplane sum = 0 of R^(d+1) with the paper's E matrix and per-axis
 * scale sqrt(2/3) (d+1) / sqrt((i+1)(i+2)), meant to make splat + blur + slice a unit-variance
 * Gaussian (measured in tests/test_crf.c: close in 2-D, somewhat wider in 5-D, as in pydensecrf,
 * which uses the same scale), and finds the enclosing simplex: its remainder-0 corner, the rank of
 * each coordinate's offset from it, and the barycentric weights. */
static void locate(const float *f, int d, int32_t *rem0, int *rank, double *barycentric) {
    double elevated[DMLLM_CRF_MAX_FEATURES + 1];
    const double inv_std = sqrt(2.0 / 3.0) * (d + 1);
    double sum_scaled = 0.0;
    for (int i = d; i > 0; i--) {
        const double scaled = f[i - 1] * inv_std / sqrt((double)i * (i + 1));
        elevated[i] = sum_scaled - i * scaled;
        sum_scaled += scaled;
    }
    elevated[0] = sum_scaled;

    /* Nearest point whose coordinates are all multiples of d+1; its coordinate sum / (d+1) says how
     * far it is off the hyperplane, fixed below by moving the coordinates with extreme offsets. */
    int sum = 0;
    for (int i = 0; i <= d; i++) {
        const double v = elevated[i] / (d + 1);
        const double up = ceil(v) * (d + 1), down = floor(v) * (d + 1);
        rem0[i] = (int32_t)(up - elevated[i] < elevated[i] - down ? up : down);
        sum += rem0[i] / (d + 1);
    }
    for (int i = 0; i <= d; i++) rank[i] = 0;
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j <= d; j++) {
            if (elevated[i] - rem0[i] < elevated[j] - rem0[j])
                rank[i]++;
            else
                rank[j]++;
        }
    for (int i = 0; i <= d; i++) {
        if (sum > 0 && rank[i] >= d + 1 - sum) {
            rem0[i] -= d + 1;
            rank[i] += sum - (d + 1);
        } else if (sum < 0 && rank[i] < -sum) {
            rem0[i] += d + 1;
            rank[i] += d + 1 + sum;
        } else {
            rank[i] += sum;
        }
    }
    for (int i = 0; i <= d + 1; i++) barycentric[i] = 0.0;
    for (int i = 0; i <= d; i++) {
        const double delta = (elevated[i] - rem0[i]) / (d + 1);
        barycentric[d - rank[i]] += delta;
        barycentric[d + 1 - rank[i]] -= delta;
    }
    barycentric[0] += 1.0 + barycentric[d + 1];
}

/* Finds each point's simplex and registers its d+1 corners. */
static dmllm_status insert_points(const float *features, int n_points, int d, vertex_table *table, dmllm_lattice *l) {
    for (int p = 0; p < n_points; p++) {
        int32_t rem0[DMLLM_CRF_MAX_FEATURES + 1], key[DMLLM_CRF_MAX_FEATURES];
        int rank[DMLLM_CRF_MAX_FEATURES + 1];
        double barycentric[DMLLM_CRF_MAX_FEATURES + 2];
        const float *f = features + (size_t)p * d;
        for (int i = 0; i < d; i++)
            if (!isfinite(f[i]) || fabsf(f[i]) > 1e7f) /* lattice keys are int32 */
                return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                                  "CRF feature %d of pixel %d is %g (too large or not finite)", i, p, (double)f[i]);
        locate(f, d, rem0, rank, barycentric);
        for (int k = 0; k <= d; k++) {
            /* Corner k of the canonical simplex, shifted to rem0. */
            for (int i = 0; i < d; i++) key[i] = rem0[i] + (rank[i] <= d - k ? k : k - (d + 1));
            const size_t slot = (size_t)p * (d + 1) + k;
            DMLLM_TRY(table_insert(table, key, &l->point_vertex[slot]));
            l->point_weight[slot] = (float)barycentric[k];
        }
    }
    return DMLLM_OK;
}

/* The splat as a gather: for each vertex, the (point, weight) pairs that land on it. */
static dmllm_status build_splat(dmllm_lattice *l) {
    const size_t n_entries = (size_t)l->n_points * (l->d + 1);
    DMLLM_TRY(dmllm_alloc(&l->vertex_start, (size_t)l->n_vertices + 1, sizeof *l->vertex_start, "the lattice splat"));
    DMLLM_TRY(dmllm_alloc(&l->splat_point, n_entries, sizeof *l->splat_point, "the lattice splat"));
    DMLLM_TRY(dmllm_alloc(&l->splat_weight, n_entries, sizeof *l->splat_weight, "the lattice splat"));
    memset(l->vertex_start, 0, ((size_t)l->n_vertices + 1) * sizeof *l->vertex_start);
    for (size_t e = 0; e < n_entries; e++) l->vertex_start[l->point_vertex[e] + 1]++;
    for (int v = 0; v < l->n_vertices; v++) l->vertex_start[v + 1] += l->vertex_start[v];
    int32_t *fill = NULL; /* [n_vertices] next free entry of each row */
    DMLLM_TRY(dmllm_alloc(&fill, (size_t)l->n_vertices, sizeof *fill, "the lattice splat"));
    memcpy(fill, l->vertex_start, (size_t)l->n_vertices * sizeof *fill);
    for (size_t e = 0; e < n_entries; e++) {
        const int32_t at = fill[l->point_vertex[e]]++;
        l->splat_point[at] = (int32_t)(e / (size_t)(l->d + 1));
        l->splat_weight[at] = l->point_weight[e];
    }
    free(fill);
    return DMLLM_OK;
}

/* Neighbours along lattice direction j differ by +-1 in every coordinate but j, which moves by -+d;
 * only the first d coordinates are keys, so for j = d every key coordinate moves by the same +-1. */
static dmllm_status build_neighbours(dmllm_lattice *l, const vertex_table *table) {
    const int d = l->d;
    DMLLM_TRY(dmllm_alloc(&l->neighbours, (size_t)l->n_vertices * (d + 1) * 2, sizeof *l->neighbours,
                          "the lattice neighbours"));
    for (int v = 0; v < l->n_vertices; v++) {
        const int32_t *key = table->keys + (size_t)v * d;
        for (int j = 0; j <= d; j++)
            for (int side = 0; side < 2; side++) {
                const int step = side ? 1 : -1;
                int32_t other[DMLLM_CRF_MAX_FEATURES];
                for (int i = 0; i < d; i++) other[i] = key[i] + (i == j ? -step * d : step);
                l->neighbours[((size_t)v * (d + 1) + j) * 2 + side] = table_find(table, other);
            }
    }
    return DMLLM_OK;
}

dmllm_status dmllm_lattice_build(const float *features, int n_points, int d, dmllm_lattice *l) {
    memset(l, 0, sizeof *l);
    if (!features || n_points <= 0 || d < 1 || d > DMLLM_CRF_MAX_FEATURES)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "lattice: %d points of %d features", n_points, d);
    if ((size_t)n_points * (d + 1) > INT32_MAX)
        return dmllm_fail(DMLLM_ERR_UNSUPPORTED, "lattice: %d points of %d features exceed 2^31 simplex corners",
                          n_points, d);
    l->d = d;
    l->n_points = n_points;
    vertex_table table = {.d = d, .capacity = 1024, .key_capacity = 512};
    const size_t n_entries = (size_t)n_points * (d + 1);
    dmllm_status status = dmllm_alloc(&table.keys, table.key_capacity * d, sizeof *table.keys, "the lattice vertices");
    if (status == DMLLM_OK) status = table_rehash(&table, table.capacity);
    if (status == DMLLM_OK) status = dmllm_alloc(&l->point_vertex, n_entries, sizeof *l->point_vertex, "the lattice");
    if (status == DMLLM_OK) status = dmllm_alloc(&l->point_weight, n_entries, sizeof *l->point_weight, "the lattice");
    if (status == DMLLM_OK) status = insert_points(features, n_points, d, &table, l);
    l->n_vertices = (int)table.n_keys;
    if (status == DMLLM_OK) status = build_splat(l);
    if (status == DMLLM_OK) status = build_neighbours(l, &table);
    free(table.slots);
    free(table.keys);
    if (status != DMLLM_OK) dmllm_lattice_free(l);
    return status;
}

/* Bytes of dmllm_lattice_build's peak and of the lattice it returns, for n points of d features
 * and n_vertices vertices. The table's slots (load <= 1/2, doubling from 1024) and keys (doubling
 * from 512) are counted at their last growth, old and new block together. */
static size_t lattice_held_bytes(size_t n, int d, size_t n_vertices) {
    const size_t n_entries = n * (d + 1);
    return n_entries * (sizeof(int32_t) + sizeof(float)) * 2 + (n_vertices + 1) * sizeof(int32_t) +
           n_vertices * (d + 1) * 2 * sizeof(int32_t);
}

static size_t lattice_build_bytes(size_t n, int d, size_t n_vertices) {
    const size_t slots = 4 * n_vertices + 4 > 1024 ? 4 * n_vertices + 4 : 1024;
    const size_t keys = 2 * n_vertices > 512 ? 2 * n_vertices : 512;
    return (slots + slots / 2) * sizeof(int32_t) + (keys + keys / 2) * d * sizeof(int32_t) +
           n_vertices * sizeof(int32_t) /* build_splat's fill */ +
           lattice_held_bytes(n, d, n_vertices);
}

/* At most how many vertices a lattice over n points has whose feature i lies in [0, extent[i]]:
 * each point adds at most d+1; and a vertex of remainder k has coordinates = k mod (d+1) within
 * 2.5 (d+1) of its point's elevated ones (rounding, the sum fix, the corner offset), so the key
 * coordinates (the first d) of each remainder span the elevated range plus 5 (d+1). */
static size_t lattice_vertex_bound(size_t n, int d, const double *extent) {
    const double inv_std = sqrt(2.0 / 3.0) * (d + 1), step = d + 1;
    double scaled[DMLLM_CRF_MAX_FEATURES + 1] = {0}; /* [1..d] the range of locate()'s scaled[i] */
    for (int i = 1; i <= d; i++) scaled[i] = extent[i - 1] * inv_std / sqrt((double)i * (i + 1));
    double count = step; /* the remainders */
    for (int j = 0; j < d; j++) {
        /* elevated[j] = sum_{i>j} scaled[i] - j scaled[j] (elevated[0]: the whole sum) */
        double range = j * scaled[j];
        for (int i = j + 1; i <= d; i++) range += scaled[i];
        count *= floor((range + 5 * step) / step) + 1;
    }
    const double bound = (double)n * (d + 1);
    return (size_t)(count < bound ? count : bound);
}

void dmllm_lattice_free(dmllm_lattice *l) {
    free(l->point_vertex);
    free(l->point_weight);
    free(l->vertex_start);
    free(l->splat_point);
    free(l->splat_weight);
    free(l->neighbours);
    memset(l, 0, sizeof *l);
}

/* ---- filtering ------------------------------------------------------------------------------- */

void dmllm_lattice_filter(const dmllm_lattice *l, const float *in, int n_channels, float *out, float *scratch) {
    const int d = l->d, nv = l->n_vertices, c = n_channels;
    float *values = scratch, *blurred = scratch + (size_t)nv * c; /* [n_vertices][n_channels] each */
#pragma omp parallel for schedule(static)
    for (int v = 0; v < nv; v++) {
        float *dst = values + (size_t)v * c;
        for (int k = 0; k < c; k++) dst[k] = 0.0f;
        for (int e = l->vertex_start[v]; e < l->vertex_start[v + 1]; e++) {
            const float w = l->splat_weight[e], *src = in + (size_t)l->splat_point[e] * c;
            for (int k = 0; k < c; k++) dst[k] += w * src[k];
        }
    }
    /* [1 2 1]/4 along each direction; a missing neighbour holds nothing. */
    for (int j = 0; j <= d; j++) {
#pragma omp parallel for schedule(static)
        for (int v = 0; v < nv; v++) {
            const int32_t *n = l->neighbours + ((size_t)v * (d + 1) + j) * 2;
            const float *self = values + (size_t)v * c;
            const float *back = n[0] >= 0 ? values + (size_t)n[0] * c : NULL;
            const float *ahead = n[1] >= 0 ? values + (size_t)n[1] * c : NULL;
            float *dst = blurred + (size_t)v * c;
            for (int k = 0; k < c; k++) dst[k] = 0.5f * self[k];
            if (back)
                for (int k = 0; k < c; k++) dst[k] += 0.25f * back[k];
            if (ahead)
                for (int k = 0; k < c; k++) dst[k] += 0.25f * ahead[k];
        }
        float *swap = values;
        values = blurred;
        blurred = swap;
    }
#pragma omp parallel for schedule(static)
    for (int p = 0; p < l->n_points; p++) {
        float *dst = out + (size_t)p * c;
        for (int k = 0; k < c; k++) dst[k] = 0.0f;
        for (int corner = 0; corner <= d; corner++) {
            const size_t e = (size_t)p * (d + 1) + corner;
            const float w = l->point_weight[e], *src = values + (size_t)l->point_vertex[e] * c;
            for (int k = 0; k < c; k++) dst[k] += w * src[k];
        }
    }
}

/* ---- the CRF --------------------------------------------------------------------------------- */

/* One pairwise term: its lattice and the symmetric normalisation 1/sqrt(K 1). */
typedef struct pairwise {
    float compat;
    dmllm_lattice lattice;
    float *norm; /* [n_pixels] */
} pairwise;

static void pairwise_free(pairwise *t) {
    dmllm_lattice_free(&t->lattice);
    free(t->norm);
}

/* features [n_pixels][2 or 5]: position / sxy, then colour / srgb when srgb > 0. */
static dmllm_status pairwise_build(const dmllm_image *image, float sxy, float srgb, float compat, pairwise *t) {
    memset(t, 0, sizeof *t);
    t->compat = compat;
    const int w = image->width, d = srgb > 0.0f ? 5 : 2;
    const size_t n = (size_t)image->width * image->height;
    float *features = NULL; /* [n][d] */
    float *ones = NULL;     /* [n] */
    float *scratch = NULL;  /* [2][n_vertices] */
    DMLLM_TRY(dmllm_alloc(&features, n, (size_t)d * sizeof *features, "the CRF features"));
    for (size_t i = 0; i < n; i++) {
        float *f = features + i * d;
        f[0] = (float)(i % w) / sxy;
        f[1] = (float)(i / w) / sxy;
        for (int c = 0; c < d - 2; c++) f[2 + c] = image->pixels[3 * i + c] / srgb;
    }
    dmllm_status status = dmllm_lattice_build(features, (int)n, d, &t->lattice);
    free(features);
    if (status == DMLLM_OK) status = dmllm_alloc(&t->norm, n, sizeof *t->norm, "the CRF normalisation");
    if (status == DMLLM_OK) status = dmllm_alloc(&ones, n, sizeof *ones, "the CRF normalisation");
    if (status == DMLLM_OK)
        status = dmllm_alloc(&scratch, 2 * (size_t)t->lattice.n_vertices, sizeof *scratch, "the CRF lattice values");
    if (status == DMLLM_OK) {
        for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
        dmllm_lattice_filter(&t->lattice, ones, 1, t->norm, scratch);
        for (size_t i = 0; i < n; i++) t->norm[i] = 1.0f / sqrtf(t->norm[i] + 1e-20f);
    }
    free(ones);
    free(scratch);
    if (status != DMLLM_OK) pairwise_free(t);
    return status;
}

/* The vertex bound of pairwise_build's lattice for a width x height image and its held and peak
 * bytes (features, the lattice build, then norm, ones and the filter scratch). */
static size_t pairwise_vertices(int width, int height, float sxy, float srgb) {
    const double extent[DMLLM_CRF_MAX_FEATURES] = {(width - 1) / sxy, (height - 1) / sxy,
                                                   255.0 / srgb, 255.0 / srgb, 255.0 / srgb};
    return lattice_vertex_bound((size_t)width * height, srgb > 0.0f ? 5 : 2, extent);
}

static size_t pairwise_held_bytes(size_t n, int d, size_t n_vertices) {
    return lattice_held_bytes(n, d, n_vertices) + n * sizeof(float);
}

static size_t pairwise_peak_bytes(size_t n, int d, size_t n_vertices) {
    const size_t build = n * d * sizeof(float) + lattice_build_bytes(n, d, n_vertices);
    const size_t filter =
        pairwise_held_bytes(n, d, n_vertices) + n * sizeof(float) + 2 * n_vertices * sizeof(float);
    return build > filter ? build : filter;
}

/* energy += compat * D^-1/2 K D^-1/2 q, one block of labels at a time. block_in, block_out:
 * [n][block_channels(n_labels)]; scratch: [2][n_vertices][block_channels(n_labels)]. */
static void pairwise_add(const pairwise *t, const float *q, int n_labels, float *energy, float *block_in,
                         float *block_out, float *scratch) {
    const int n = t->lattice.n_points;
    for (int first = 0; first < n_labels; first += CHANNEL_BLOCK) {
        const int c = n_labels - first < CHANNEL_BLOCK ? n_labels - first : CHANNEL_BLOCK;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < c; k++) block_in[(size_t)i * c + k] = t->norm[i] * q[(size_t)i * n_labels + first + k];
        dmllm_lattice_filter(&t->lattice, block_in, c, block_out, scratch);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < c; k++)
                energy[(size_t)i * n_labels + first + k] += t->compat * t->norm[i] * block_out[(size_t)i * c + k];
    }
}

/* q[i] = softmax(energy[i]) over the labels. */
static void normalise(const float *energy, size_t n, int n_labels, float *q) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *e = energy + i * n_labels;
        float *p = q + i * n_labels;
        float top = e[0], sum = 0.0f;
        for (int k = 1; k < n_labels; k++) top = fmaxf(top, e[k]);
        for (int k = 0; k < n_labels; k++) sum += p[k] = expf(e[k] - top);
        for (int k = 0; k < n_labels; k++) p[k] /= sum;
    }
}

dmllm_status dmllm_crf_check_params(const dmllm_crf_params *p) {
    if (p->iterations < 0 || p->iterations > 1000)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_crf_params.iterations = %d is outside 0..1000",
                          p->iterations);
    const struct {
        const char *name;
        float value;
        int may_be_zero;
    } values[] = {
        {"gaussian_sxy", p->gaussian_sxy, 0},         {"gaussian_compat", p->gaussian_compat, 1},
        {"bilateral_sxy", p->bilateral_sxy, 0},       {"bilateral_srgb", p->bilateral_srgb, 0},
        {"bilateral_compat", p->bilateral_compat, 1},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        if (!isfinite(values[i].value) || values[i].value < 0.0f || (values[i].value == 0.0f && !values[i].may_be_zero))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_crf_params.%s = %g must be %s", values[i].name,
                              (double)values[i].value, values[i].may_be_zero ? "finite and >= 0" : "finite and > 0");
    return DMLLM_OK;
}

static dmllm_status check_crf(const dmllm_image *image, const float *probabilities, int n_labels,
                              const dmllm_crf_params *p, const float *out) {
    if (!image || !probabilities || !out)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                          "dmllm_crf_refine: image, probabilities and out must not be NULL");
    if (n_labels < 1)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_crf_refine: %d labels (need >= 1)", n_labels);
    DMLLM_TRY(dmllm_crf_check_params(p));
    const size_t n = (size_t)image->width * image->height * n_labels;
    for (size_t i = 0; i < n; i++)
        if (!(probabilities[i] >= 0.0f) || !isfinite(probabilities[i]))
            return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT,
                              "dmllm_crf_refine: probability %g at pixel (%zu, %zu), label %zu is not finite and >= 0",
                              (double)probabilities[i], i / n_labels % image->width, i / n_labels / image->width,
                              i % n_labels);
    return DMLLM_OK;
}

/* energy = log max(p, MIN_PROBABILITY) = -U. Recomputed each update rather than kept: the input
 * stays intact until the last update writes out (which may be the input), and a third n x n_labels
 * array is saved. */
static void set_unary(const float *probabilities, size_t nk, float *energy) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nk; i++) energy[i] = logf(fmaxf(probabilities[i], MIN_PROBABILITY));
}

static dmllm_status refine(const dmllm_image *image, const float *probabilities, int n_labels,
                           const dmllm_crf_params *p, float *out) {
    const size_t n = (size_t)image->width * image->height, nk = n * n_labels;
    pairwise terms[2];
    int n_terms = 0;
    float *energy = NULL;  /* [n][n_labels] -U + messages */
    float *q = NULL;       /* [n][n_labels] the current marginals */
    const int block = block_channels(n_labels);
    float *blocks = NULL;  /* [2][n][block] one block of labels in and out of the filter */
    float *scratch = NULL; /* [2][max n_vertices][block] */
    dmllm_status status = dmllm_alloc(&energy, nk, sizeof *energy, "the CRF energies");
    if (status == DMLLM_OK && p->iterations > 0) status = dmllm_alloc(&q, nk, sizeof *q, "the CRF marginals");
    if (status == DMLLM_OK && p->iterations > 0 && p->gaussian_compat > 0.0f) {
        status = pairwise_build(image, p->gaussian_sxy, 0.0f, p->gaussian_compat, &terms[n_terms]);
        n_terms += status == DMLLM_OK;
    }
    if (status == DMLLM_OK && p->iterations > 0 && p->bilateral_compat > 0.0f) {
        status = pairwise_build(image, p->bilateral_sxy, p->bilateral_srgb, p->bilateral_compat, &terms[n_terms]);
        n_terms += status == DMLLM_OK;
    }
    size_t max_vertices = 0;
    for (int t = 0; t < n_terms; t++)
        if ((size_t)terms[t].lattice.n_vertices > max_vertices) max_vertices = terms[t].lattice.n_vertices;
    if (status == DMLLM_OK && n_terms > 0)
        status = dmllm_alloc(&blocks, 2 * n, block * sizeof *blocks, "the CRF blocks");
    if (status == DMLLM_OK && n_terms > 0)
        status = dmllm_alloc(&scratch, 2 * max_vertices, block * sizeof *scratch,
                             "the CRF lattice values");
    if (status == DMLLM_OK) {
        set_unary(probabilities, nk, energy);
        normalise(energy, n, n_labels, p->iterations > 0 ? q : out);
        for (int it = 0; it < p->iterations; it++) {
            set_unary(probabilities, nk, energy);
            for (int t = 0; t < n_terms; t++)
                pairwise_add(&terms[t], q, n_labels, energy, blocks, blocks + n * block, scratch);
            normalise(energy, n, n_labels, it + 1 < p->iterations ? q : out);
        }
    }
    for (int t = 0; t < n_terms; t++) pairwise_free(&terms[t]);
    free(energy);
    free(q);
    free(blocks);
    free(scratch);
    return status;
}

size_t dmllm_crf_bytes(int width, int height, int n_labels, const dmllm_crf_params *p) {
    const size_t n = (size_t)width * height, nk = n * n_labels;
    size_t held = nk * sizeof(float) * (p->iterations > 0 ? 2 : 1), peak = held, max_vertices = 0;
    int n_terms = 0;
    const struct {
        float compat, sxy, srgb;
    } terms[2] = {{p->gaussian_compat, p->gaussian_sxy, 0.0f},
                  {p->bilateral_compat, p->bilateral_sxy, p->bilateral_srgb}};
    for (int t = 0; t < 2 && p->iterations > 0; t++) {
        if (!(terms[t].compat > 0.0f)) continue;
        const int d = terms[t].srgb > 0.0f ? 5 : 2;
        const size_t vertices = pairwise_vertices(width, height, terms[t].sxy, terms[t].srgb);
        const size_t term_peak = held + pairwise_peak_bytes(n, d, vertices);
        if (term_peak > peak) peak = term_peak;
        held += pairwise_held_bytes(n, d, vertices);
        if (vertices > max_vertices) max_vertices = vertices;
        n_terms++;
    }
    if (n_terms > 0) /* the blocks and the filter scratch */
        held += (2 * n + 2 * max_vertices) * block_channels(n_labels) * sizeof(float);
    return held > peak ? held : peak;
}

dmllm_status dmllm_crf_refine(const dmllm_image *image, const float *probabilities, int n_labels,
                              const dmllm_crf_params *params, float *out_probabilities) {
    dmllm_crf_params p;
    dmllm_crf_params_init(&p);
    if (params) DMLLM_TRY(dmllm_copy_versioned(&p, sizeof p, params, "dmllm_crf_params"));
    DMLLM_TRY(check_crf(image, probabilities, n_labels, &p, out_probabilities));
    return refine(image, probabilities, n_labels, &p, out_probabilities);
}
