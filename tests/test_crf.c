/*
 * test_crf.c: lib/crf.c against an independent naive dense CRF (exact Gaussian sums over every
 * pixel pair, double precision, written here from the model's equations), plus the permutohedral
 * filter alone against exact Gaussian sums, sanity cases (a noisy label map on an image with clean
 * edges gets cleaner, 0 iterations return the input, no kernels leave it unchanged, in place),
 * argument errors, and the evaluation path of dmllm_predict_dense on a golden checkpoint (its maps
 * equal the CRF applied to the upsampled probabilities of its own token scores) and of
 * dmllm_segment_box.
 */
#include "crf.h"
#include "readout.h"
#include "safetensors.h"
#include "support_model_dir.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- deterministic random numbers -------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform(void) { /* [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double gaussian_noise(void) {
    const double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- the naive CRF ------------------------------------------------------------------------------ */

/* Features of one kernel, as the public header defines them. f: [n][5]. */
static int naive_features(const dmllm_image *image, double sxy, double srgb, double *f) {
    const int w = dmllm_image_width(image), h = dmllm_image_height(image), d = srgb > 0 ? 5 : 2;
    const uint8_t *rgb = dmllm_image_pixels(image);
    for (int i = 0; i < w * h; i++) {
        f[i * 5 + 0] = (i % w) / sxy;
        f[i * 5 + 1] = (i / w) / sxy;
        for (int c = 0; c < 3; c++) f[i * 5 + 2 + c] = d == 5 ? rgb[3 * i + c] / srgb : 0.0;
    }
    return d;
}

/* kernel[n][n] = exp(-|f_i - f_j|^2 / 2) / sqrt(D_i D_j), D = the row sums. */
static void naive_kernel(const double *f, int n, double *kernel) {
    double *row_sum = calloc((size_t)n, sizeof *row_sum);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double dist2 = 0.0;
            for (int c = 0; c < 5; c++) dist2 += (f[i * 5 + c] - f[j * 5 + c]) * (f[i * 5 + c] - f[j * 5 + c]);
            kernel[(size_t)i * n + j] = exp(-0.5 * dist2);
            row_sum[i] += kernel[(size_t)i * n + j];
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) kernel[(size_t)i * n + j] /= sqrt(row_sum[i] * row_sum[j]);
    free(row_sum);
}

static void naive_crf(const dmllm_image *image, const float *prob, int k, const dmllm_crf_params *p, double *q) {
    const int n = dmllm_image_width(image) * dmllm_image_height(image);
    double *f = malloc(sizeof *f * n * 5), *kg = malloc(sizeof *kg * n * n), *kb = malloc(sizeof *kb * n * n);
    double *unary = malloc(sizeof *unary * n * k), *energy = malloc(sizeof *energy * n * k);
    naive_features(image, p->gaussian_sxy, 0.0, f);
    naive_kernel(f, n, kg);
    naive_features(image, p->bilateral_sxy, p->bilateral_srgb, f);
    naive_kernel(f, n, kb);
    for (int i = 0; i < n * k; i++) unary[i] = log(fmax(prob[i], 1e-5));
    for (int it = 0; it <= p->iterations; it++) {
        for (int i = 0; i < n; i++)
            for (int l = 0; l < k; l++) {
                double message = 0.0;
                for (int j = 0; it > 0 && j < n; j++)
                    message +=
                        (p->gaussian_compat * kg[(size_t)i * n + j] + p->bilateral_compat * kb[(size_t)i * n + j]) *
                        q[j * k + l];
                energy[i * k + l] = unary[i * k + l] + message;
            }
        for (int i = 0; i < n; i++) {
            double top = energy[i * k], sum = 0.0;
            for (int l = 1; l < k; l++) top = fmax(top, energy[i * k + l]);
            for (int l = 0; l < k; l++) sum += q[i * k + l] = exp(energy[i * k + l] - top);
            for (int l = 0; l < k; l++) q[i * k + l] /= sum;
        }
    }
    free(f);
    free(kg);
    free(kb);
    free(unary);
    free(energy);
}

/* ---- test data ------------------------------------------------------------------------------- */

/* A w x h image of flat regions (a disc and a diagonal split, three colours) plus noise, its true
 * labels, and probabilities that favour the true label with noise: flip_rate of the pixels favour
 * a wrong label instead. */
static dmllm_image *scene(int w, int h, int k, double colour_noise, double flip_rate, uint16_t *truth, float *prob) {
    static const uint8_t colours[3][3] = {{200, 40, 40}, {40, 180, 60}, {50, 60, 210}};
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int i = y * w + x;
            const double dx = x - 0.35 * w, dy = y - 0.4 * h;
            const int label = dx * dx + dy * dy < 0.06 * w * h ? 2 : (x + y < 0.9 * (w + h) / 2 ? 0 : 1);
            truth[i] = (uint16_t)(label % k);
            for (int c = 0; c < 3; c++) {
                const double v = colours[label][c] + colour_noise * gaussian_noise();
                rgb[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
            const int favoured = uniform() < flip_rate ? (truth[i] + 1 + (int)(uniform() * (k - 1))) % k : truth[i];
            double sum = 0.0;
            for (int l = 0; l < k; l++)
                sum += prob[i * k + l] = (float)exp((l == favoured ? 1.0 : 0.0) + 0.5 * gaussian_noise());
            for (int l = 0; l < k; l++) prob[i * k + l] = (float)(prob[i * k + l] / sum);
        }
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_from_rgb(rgb, w, h, 0, &image));
    free(rgb);
    return image;
}

static uint16_t argmax(const float *p, int k) {
    int best = 0;
    for (int l = 1; l < k; l++)
        if (p[l] > p[best]) best = l;
    return (uint16_t)best;
}

static double label_error(const float *prob, const uint16_t *truth, int n, int k) {
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += argmax(prob + (size_t)i * k, k) != truth[i];
    return (double)wrong / n;
}

/* ---- the lattice alone ----------------------------------------------------------------------- */

/* The lattice filter of random values at random features against exact Gaussian sums, after
 * removing the lattice's global scale (fitted by least squares; the CRF's normalisation cancels
 * it). In 5-D the lattice's kernel is wider than the Gaussian (as in pydensecrf, built on the same
 * lattice), hence the looser bound. */
static void test_lattice_filter(int d, double spread, double max_rms_error) {
    enum { N = 600 };
    float *features = malloc(sizeof *features * N * d), *in = malloc(sizeof *in * N), *out = malloc(sizeof *out * N);
    double *exact = malloc(sizeof *exact * N);
    for (int i = 0; i < N * d; i++) features[i] = (float)(spread * uniform());
    for (int i = 0; i < N; i++) in[i] = (float)(0.5 + uniform());
    for (int i = 0; i < N; i++) {
        exact[i] = 0.0;
        for (int j = 0; j < N; j++) {
            double dist2 = 0.0;
            for (int c = 0; c < d; c++)
                dist2 += (features[i * d + c] - features[j * d + c]) * (features[i * d + c] - features[j * d + c]);
            exact[i] += exp(-0.5 * dist2) * in[j];
        }
    }
    dmllm_lattice lattice;
    CHECK_OK(dmllm_lattice_build(features, N, d, &lattice));
    float *scratch = malloc(sizeof *scratch * 2 * lattice.n_vertices);
    dmllm_lattice_filter(&lattice, in, 1, out, scratch);
    double xy = 0.0, xx = 0.0;
    for (int i = 0; i < N; i++) {
        xy += out[i] * exact[i];
        xx += (double)out[i] * out[i];
    }
    const double scale = xy / xx;
    double squares = 0.0;
    for (int i = 0; i < N; i++) squares += pow((scale * out[i] - exact[i]) / exact[i], 2.0);
    const double rms = sqrt(squares / N);
    printf("lattice d=%d spread %.0f: %d vertices, rms relative error %.4f\n", d, spread, lattice.n_vertices, rms);
    CHECK_MSG(rms <= max_rms_error, "d=%d: rms relative error %.4f > %.4f", d, rms, max_rms_error);
    free(scratch);
    dmllm_lattice_free(&lattice);
    free(features);
    free(in);
    free(out);
    free(exact);
}

/* ---- the CRF --------------------------------------------------------------------------------- */

/* Both CRFs on a w x h scene with k labels: the labels agree on >= 95% of the pixels, the mean
 * |probability difference| is <= mean_tolerance, and on pixels whose labels agree the largest
 * difference is <= max_tolerance. */
static void test_against_naive(int w, int h, int k, double colour_noise, double mean_tolerance, double max_tolerance) {
    const int n = w * h;
    uint16_t *truth = malloc(sizeof *truth * n);
    float *prob = malloc(sizeof *prob * n * k), *got = malloc(sizeof *got * n * k),
          *want = malloc(sizeof *want * n * k);
    double *exact = malloc(sizeof *exact * n * k);
    dmllm_image *image = scene(w, h, k, colour_noise, 0.3, truth, prob);
    dmllm_crf_params p;
    dmllm_crf_params_init(&p);
    p.gaussian_sxy = 2.0f; /* kernels narrower than the image, so positions matter */
    p.bilateral_sxy = 8.0f;
    CHECK_OK(dmllm_crf_refine(image, prob, k, &p, got));
    naive_crf(image, prob, k, &p, exact);
    for (int i = 0; i < n * k; i++) want[i] = (float)exact[i];
    int agree = 0;
    double worst = 0.0, mean = 0.0;
    for (int i = 0; i < n; i++) {
        const int same = argmax(got + i * k, k) == argmax(want + i * k, k);
        agree += same;
        for (int l = 0; l < k; l++) {
            const double difference = fabs(got[i * k + l] - exact[i * k + l]);
            mean += difference / (n * k);
            if (same) worst = fmax(worst, difference);
        }
    }
    printf("crf %dx%d k=%d colour noise %.0f: labels agree on %.2f%%, |dp| mean %.4f, max %.4f; error vs truth "
           "%.3f -> %.3f (naive %.3f)\n",
           w, h, k, colour_noise, 100.0 * agree / n, mean, worst, label_error(prob, truth, n, k),
           label_error(got, truth, n, k), label_error(want, truth, n, k));
    CHECK_MSG(agree >= 0.95 * n, "labels agree on %d of %d pixels", agree, n);
    CHECK_MSG(mean <= mean_tolerance, "mean probability difference %.4f > %.4f", mean, mean_tolerance);
    CHECK_MSG(worst <= max_tolerance, "largest probability difference %.4f > %.4f", worst, max_tolerance);
    dmllm_image_free(image);
    free(truth);
    free(prob);
    free(got);
    free(want);
    free(exact);
}

/* Defaults on a larger scene with clean edges: 30% of the pixels favour a wrong label, the CRF
 * fixes nearly all of them. */
static void test_cleans_noisy_labels(void) {
    enum { W = 96, H = 72, K = 3, N = W * H };
    uint16_t *truth = malloc(sizeof *truth * N);
    float *prob = malloc(sizeof *prob * N * K), *out = malloc(sizeof *out * N * K);
    dmllm_image *image = scene(W, H, K, 4.0, 0.3, truth, prob);
    CHECK_OK(dmllm_crf_refine(image, prob, K, NULL, out));
    const double before = label_error(prob, truth, N, K), after = label_error(out, truth, N, K);
    printf("defaults on %dx%d: error vs truth %.3f -> %.3f\n", W, H, before, after);
    CHECK_MSG(before > 0.25 && after < 0.05, "error %.3f -> %.3f", before, after);
    dmllm_image_free(image);
    free(truth);
    free(prob);
    free(out);
}

static float max_difference(const float *a, const float *b, size_t n) {
    float worst = 0.0f;
    for (size_t i = 0; i < n; i++) worst = fmaxf(worst, fabsf(a[i] - b[i]));
    return worst;
}

/* Without updates or without kernels the output is the input (it sums to 1 and is above the
 * 1e-5 clip); in place gives the same bytes as a separate output. */
static void test_identities(void) {
    enum { W = 17, H = 11, K = 4, N = W * H };
    uint16_t *truth = malloc(sizeof *truth * N);
    float *prob = malloc(sizeof *prob * N * K), *out = malloc(sizeof *out * N * K),
          *copy = malloc(sizeof *copy * N * K);
    dmllm_image *image = scene(W, H, K, 10.0, 0.2, truth, prob);
    dmllm_crf_params p;
    dmllm_crf_params_init(&p);
    p.iterations = 0;
    CHECK_OK(dmllm_crf_refine(image, prob, K, &p, out));
    CHECK_MSG(max_difference(out, prob, N * K) < 1e-6f, "0 iterations: %g", (double)max_difference(out, prob, N * K));
    dmllm_crf_params_init(&p);
    p.gaussian_compat = p.bilateral_compat = 0.0f;
    CHECK_OK(dmllm_crf_refine(image, prob, K, &p, out));
    CHECK_MSG(max_difference(out, prob, N * K) < 1e-6f, "no kernels: %g", (double)max_difference(out, prob, N * K));
    CHECK_OK(dmllm_crf_refine(image, prob, K, NULL, out));
    memcpy(copy, prob, sizeof *copy * N * K);
    CHECK_OK(dmllm_crf_refine(image, copy, K, NULL, copy));
    CHECK(memcmp(copy, out, sizeof *copy * N * K) == 0);
    CHECK(max_difference(out, prob, N * K) > 0.1f);
    /* one pixel, one label: a lattice of one simplex, and the only label has probability 1 */
    const uint8_t grey[3] = {128, 128, 128};
    dmllm_image *pixel = NULL;
    float one = 0.25f;
    CHECK_OK(dmllm_image_from_rgb(grey, 1, 1, 0, &pixel));
    CHECK_OK(dmllm_crf_refine(pixel, &one, 1, NULL, &one));
    CHECK(one == 1.0f);
    dmllm_image_free(pixel);
    dmllm_image_free(image);
    free(truth);
    free(prob);
    free(out);
    free(copy);
}

static void check_error(dmllm_status status, const char *needle) {
    CHECK_STATUS(status, DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), needle) != NULL, "\"%s\" does not name %s", dmllm_last_error(), needle);
}

static void test_errors(void) {
    enum { W = 5, H = 4, K = 2, N = W * H };
    uint8_t rgb[N * 3] = {0};
    float prob[N * K], out[N * K];
    for (int i = 0; i < N * K; i++) prob[i] = 0.5f;
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_from_rgb(rgb, W, H, 0, &image));
    check_error(dmllm_crf_refine(NULL, prob, K, NULL, out), "NULL");
    check_error(dmllm_crf_refine(image, NULL, K, NULL, out), "NULL");
    check_error(dmllm_crf_refine(image, prob, K, NULL, NULL), "NULL");
    check_error(dmllm_crf_refine(image, prob, 0, NULL, out), "labels");
    dmllm_crf_params p;
    const struct {
        float *field;
        float value;
        const char *name;
    } bad[] = {
        {&p.gaussian_sxy, 0.0f, "gaussian_sxy"},
        {&p.gaussian_compat, -1.0f, "gaussian_compat"},
        {&p.bilateral_sxy, -3.0f, "bilateral_sxy"},
        {&p.bilateral_srgb, NAN, "bilateral_srgb"},
        {&p.bilateral_compat, INFINITY, "bilateral_compat"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dmllm_crf_params_init(&p);
        *bad[i].field = bad[i].value;
        check_error(dmllm_crf_refine(image, prob, K, &p, out), bad[i].name);
    }
    dmllm_crf_params_init(&p);
    p.gaussian_sxy = 1e-9f; /* positions beyond the lattice's integer keys */
    check_error(dmllm_crf_refine(image, prob, K, &p, out), "too large");
    dmllm_crf_params_init(&p);
    p.iterations = -1;
    check_error(dmllm_crf_refine(image, prob, K, &p, out), "iterations");
    p.iterations = 1001;
    check_error(dmllm_crf_refine(image, prob, K, &p, out), "iterations");
    dmllm_crf_params_init(&p);
    p.struct_size = (uint32_t)sizeof p + 4;
    check_error(dmllm_crf_refine(image, prob, K, &p, out), "struct_size");
    prob[7] = NAN;
    check_error(dmllm_crf_refine(image, prob, K, NULL, out), "pixel (3, 0), label 1");
    prob[7] = -0.25f;
    check_error(dmllm_crf_refine(image, prob, K, NULL, out), "pixel (3, 0), label 1");
    CHECK(dmllm_crf_params_sizeof() == sizeof(dmllm_crf_params));
    dmllm_crf_params_init(&p);
    CHECK(p.struct_size == sizeof p && p.iterations == 5 && p.gaussian_sxy == 3.0f && p.gaussian_compat == 3.0f &&
          p.bilateral_sxy == 80.0f && p.bilateral_srgb == 13.0f && p.bilateral_compat == 10.0f);
    dmllm_image_free(image);
}

/* ---- through dmllm_predict_dense --------------------------------------------------------------- */

static dmllm_dense_result *predict(dmllm_session *s, const dmllm_image *image, int evaluation,
                                   const dmllm_crf_params *crf, int background) {
    static const int32_t ids[3] = {5, 17, 42};
    static const int offsets[4] = {0, 1, 2, 3};
    dmllm_dense_params p;
    dmllm_dense_params_init(&p);
    p.n_classes = 3;
    p.label_token_ids = ids;
    p.label_offsets = offsets;
    p.keep_token_scores = 1;
    p.evaluation = evaluation;
    p.crf = crf;
    p.background = background;
    dmllm_dense_result *r = NULL;
    CHECK_OK(dmllm_predict_dense(s, image, &p, &r));
    return r;
}

/* Labels and confidence of the evaluation path against the CRF run here on the probabilities of
 * the result's own token scores (softmax at the youtu_vl profile's temperature 0.2, or the sigmoid
 * channels with the 0.5 background). */
static void check_evaluation(dmllm_session *s, const dmllm_image *image, int background) {
    dmllm_crf_params crf;
    dmllm_crf_params_init(&crf);
    crf.bilateral_sxy = 20.0f;
    dmllm_dense_result *r = predict(s, image, 1, &crf, background);
    if (!r) return;
    const dmllm_score_transform transform = {.kind = background ? DMLLM_SCORE_SIGMOID_BACKGROUND : DMLLM_SCORE_SOFTMAX,
                                             .temperature = 0.2f,
                                             .sigmoid_scale = 0.25f,
                                             .background_level = 0.5f};
    const int channels = 3 + background;
    const size_t n = (size_t)r->width * r->height;
    float *prob = malloc(sizeof *prob * n * channels);
    CHECK_OK(dmllm_readout_probabilities(r->token_scores, r->tokens_h, r->tokens_w, 3, &transform, r->height, r->width,
                                         prob));
    CHECK_OK(dmllm_crf_refine(image, prob, channels, &crf, prob));
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t want = argmax(prob + i * channels, channels);
        wrong += r->labels[i] != want || r->confidence[i] != prob[i * channels + want];
    }
    CHECK_MSG(r->n_labels == channels && wrong == 0, "background %d: %zu of %zu pixels differ", background, wrong, n);
    CHECK(r->seconds_crf > 0.0);
    free(prob);
    dmllm_dense_result_free(r);
}

/* dmllm_segment_box hands evaluation and the CRF to its FG/BG readout (the profile makes two
 * in-vocabulary pieces the FG/BG tokens of the test vocabulary). */
static void test_segment_box(const dmllm_image *image) {
    const char *dir =
        test_model_dir("crf_fgbg", "one_window", test_source_path("tests/fixtures/tokenizer/tokenizer.json"));
    char path[1200];
    snprintf(path, sizeof path, "%s/readout_profile.json", dir ? dir : ".");
    static const char profile[] = "{\"fg_token\": \"a\", \"bg_token\": \"b\", \"crop_short_side\": 64}";
    CHECK(dir && test_write_file(path, profile, sizeof profile - 1) == 0);
    dmllm_model *model = NULL;
    dmllm_session *s = NULL;
    CHECK_OK(dmllm_model_load(dir, NULL, &model));
    if (model) CHECK_OK(dmllm_session_create(model, NULL, &s));
    const int w = dmllm_image_width(image), h = dmllm_image_height(image),
              box[4] = {w / 8, h / 8, w - w / 8, h - h / 8};
    uint8_t *plain = calloc((size_t)w * h, 1), *evaluated = calloc((size_t)w * h, 1);
    dmllm_crop_params p;
    dmllm_crop_params_init(&p);
    p.evaluation = 0; /* the plain readout; the default is the profile's CRF (issue 19) */
    dmllm_crf_params crf;
    dmllm_crf_params_init(&crf);
    crf.iterations = 0;
    if (s) {
        CHECK_OK(dmllm_segment_box(s, image, box, &p, plain, (size_t)w * h));
        p.evaluation = 1;
        p.crf = &crf;
        CHECK_OK(dmllm_segment_box(s, image, box, &p, evaluated, (size_t)w * h));
        CHECK(memcmp(plain, evaluated, (size_t)w * h) == 0);
        crf.struct_size = 2;
        CHECK_STATUS(dmllm_segment_box(s, image, box, &p, evaluated, (size_t)w * h), DMLLM_ERR_INVALID_ARGUMENT);
        CHECK(strstr(dmllm_last_error(), "dmllm_dense_params.crf") != NULL);
        p.crf = NULL;
        CHECK_OK(dmllm_segment_box(s, image, box, &p, evaluated, (size_t)w * h));
    }
    free(plain);
    free(evaluated);
    dmllm_session_free(s);
    dmllm_model_free(model);
}

static void test_dense_readout(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/one_window/golden.safetensors", test_source_path("tests/fixtures/golden"));
    dmllm_safetensors *golden = NULL;
    CHECK_OK(dmllm_safetensors_open(path, &golden));
    const dmllm_tensor *rgb = golden ? dmllm_safetensors_find(golden, "image_rgb") : NULL;
    dmllm_image *image = NULL;
    dmllm_model *model = NULL;
    dmllm_session *s = NULL;
    dmllm_model_params mp;
    dmllm_model_params_init(&mp);
    mp.compute = DMLLM_COMPUTE_F32;
    CHECK(rgb != NULL);
    if (rgb) CHECK_OK(dmllm_image_from_rgb(rgb->data, (int)rgb->shape[1], (int)rgb->shape[0], 0, &image));
    CHECK_OK(dmllm_model_load(
        test_model_dir("crf", "one_window", test_source_path("tests/fixtures/tokenizer/tokenizer.json")), &mp, &model));
    if (model) CHECK_OK(dmllm_session_create(model, NULL, &s));
    if (image && s) {
        check_evaluation(s, image, 0);
        check_evaluation(s, image, 1);
        /* iterations 0 and evaluation off give the plain argmax; a bad CRF struct fails the call */
        dmllm_crf_params off;
        dmllm_crf_params_init(&off);
        off.iterations = 0;
        dmllm_dense_result *plain = predict(s, image, 0, NULL, 0), *skipped = predict(s, image, 1, &off, 0);
        const size_t n = (size_t)dmllm_image_width(image) * dmllm_image_height(image);
        CHECK(plain && skipped && memcmp(plain->labels, skipped->labels, n * sizeof *plain->labels) == 0 &&
              skipped->seconds_crf == 0.0);
        dmllm_dense_result_free(plain);
        dmllm_dense_result_free(skipped);
        off.struct_size = 2;
        dmllm_dense_params p;
        dmllm_dense_params_init(&p);
        dmllm_dense_result *r = NULL;
        static const int32_t ids[2] = {1, 2};
        static const int offsets[3] = {0, 1, 2};
        p.n_classes = 2;
        p.label_token_ids = ids;
        p.label_offsets = offsets;
        p.evaluation = 1;
        p.crf = &off;
        CHECK_STATUS(dmllm_predict_dense(s, image, &p, &r), DMLLM_ERR_INVALID_ARGUMENT);
        CHECK(r == NULL && strstr(dmllm_last_error(), "dmllm_dense_params.crf") != NULL);
        test_segment_box(image);
    }
    dmllm_session_free(s);
    dmllm_model_free(model);
    dmllm_image_free(image);
    dmllm_safetensors_close(golden);
}

int main(void) {
    test_lattice_filter(2, 10.0, 0.04);
    test_lattice_filter(5, 4.0, 0.2);
    /* Colour noise makes the 5-D features sparse, where the lattice's wider kernel shows. */
    test_against_naive(24, 20, 3, 0.0, 1e-4, 1e-3);
    test_against_naive(24, 20, 3, 10.0, 0.005, 0.02);
    test_against_naive(24, 20, 3, 20.0, 0.015, 0.3);
    test_against_naive(24, 20, 3, 25.0, 0.035, 0.6);
    test_against_naive(24, 20, 20, 5.0, 0.001, 0.01); /* two label blocks */
    test_cleans_noisy_labels();
    test_identities();
    test_errors();
    test_dense_readout();
    return test_finish("test_crf");
}
