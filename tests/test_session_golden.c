/*
 * test_session_golden.c: the whole pipeline through the public API against the PyTorch reference's
 * goldens (tests/fixtures/golden/<case>/): image -> pixel values -> vision + merger -> LLM hidden
 * states -> restricted image logits (both alignments) -> last logits -> greedy steps, a prompt
 * with text before the image, and "encode once, query many" via truncation. Runs every compute
 * path the machine supports with the tolerances.
 */
#include "densemllm.h"
#include "safetensors.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct path_tolerance {
    dmllm_compute_type compute;
    dmllm_weights_type weights;
    const char *name; /* the model info's compute */
    double tolerance; /* max|c - ref| / max|ref| */
} path_tolerance;

/* The bf16 tolerance is the 2e-2 for checkpoints stored in BF16 (the released weights are),
 * where only activations are rounded. Checkpoints stored in F32 also get their weights rounded to
 * bf16 at load, an error the reference does not make; there the bound is doubled (seen: 2.4e-2 on
 * AMX hosts, 1.4e-2 on AVX512-BF16 hosts for the one_window image logits). */
/* int8 weights (W8A8, every linear but the LM head, on the bf16 path): measured up to 8.7e-2
 * (one_window image logits; hidden states up to 6.0e-2, 2026-12-07, AVX512-VNNI), as expected of
 * int8 activations through 5 random-weight layers. */
static const path_tolerance paths[] = {
    {DMLLM_COMPUTE_F32, DMLLM_WEIGHTS_AUTO, "onednn-f32", 1e-4},
    {DMLLM_COMPUTE_OPENBLAS, DMLLM_WEIGHTS_AUTO, "openblas-f32", 1e-4},
    {DMLLM_COMPUTE_BF16, DMLLM_WEIGHTS_AUTO, "onednn-bf16", 2e-2},
    {DMLLM_COMPUTE_BF16, DMLLM_WEIGHTS_INT8, "onednn-bf16", 0.12},
};

static const int INT8_GREEDY_TENTHS = 9; /* measured: 20 of 20 greedy tokens on each golden case */

static const dmllm_tensor *golden(const dmllm_safetensors *file, const char *name) {
    const dmllm_tensor *t = dmllm_safetensors_find(file, name);
    if (!t) fprintf(stderr, "golden tensor %s missing\n", name);
    return t;
}

/* max|a - b| / max|b| over n floats. */
static double relative_error(const float *a, const float *b, size_t n) {
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        max_diff = fmax(max_diff, fabs((double)a[i] - b[i]));
        max_ref = fmax(max_ref, fabs((double)b[i]));
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

static void check_close(const char *what, const char *where, const float *got, const float *want, size_t n,
                        double tolerance) {
    double err = relative_error(got, want, n);
    printf("  %-28s %-26s rel err %.2e (tol %.0e)\n", where, what, err, tolerance);
    CHECK_MSG(err <= tolerance, "%s %s: %.3e > %.0e", where, what, err, tolerance);
}

static int argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* Label argmax of every image token against the reference: on the f32 paths >= 99 % must agree
 * (issue 3); on every path a differing argmax must be a near tie of the reference (gap within
 * twice the tolerance, relative to max |logit|), since bf16 rounding legitimately flips those. */
static void check_label_argmax(const char *where, const char *what, const float *got, const float *want, size_t rows,
                               int k, double tolerance) {
    double scale = 0.0;
    for (size_t i = 0; i < rows * (size_t)k; i++) scale = fmax(scale, fabs(want[i]));
    size_t same = 0;
    for (size_t r = 0; r < rows; r++) {
        const int g = argmax(got + r * k, k), w = argmax(want + r * k, k);
        if (g == w) {
            same++;
            continue;
        }
        const double gap = ((double)want[r * k + w] - want[r * k + g]) / scale;
        CHECK_MSG(gap <= 2.0 * tolerance, "%s %s token %zu: argmax %d instead of %d away from a tie (gap %.3g)", where,
                  what, r, g, w, gap);
    }
    printf("  %-28s %-26s argmax agreement %zu / %zu\n", where, what, same, rows);
    if (tolerance < 1e-3) CHECK_MSG(same * 100 >= rows * 99, "%s %s: argmax agrees on %zu of %zu", where, what, same, rows);
}

typedef struct golden_case {
    const char *name;
    char dir[1024];
    dmllm_safetensors *file;
    const dmllm_tensor *image_rgb, *max_patches, *resize_mode, *pixel_values, *image_embeds, *input_ids, *hidden,
        *label_ids, *logits_own, *logits_prev, *last_logits, *greedy_ids, *greedy_logits, *ids_text_first,
        *hidden_text_first;
} golden_case;

static int open_case(golden_case *c) {
    char path[1200];
    snprintf(path, sizeof path, "%s/golden.safetensors", c->dir);
    if (dmllm_safetensors_open(path, &c->file) != DMLLM_OK) return -1;
    c->image_rgb = golden(c->file, "image_rgb");
    c->max_patches = golden(c->file, "max_num_patches");
    c->resize_mode = golden(c->file, "resize_mode");
    c->pixel_values = golden(c->file, "pixel_values");
    c->image_embeds = golden(c->file, "image_embeds");
    c->input_ids = golden(c->file, "input_ids");
    c->hidden = golden(c->file, "hidden");
    c->label_ids = golden(c->file, "label_ids");
    c->logits_own = golden(c->file, "image_logits_own");
    c->logits_prev = golden(c->file, "image_logits_prev");
    c->last_logits = golden(c->file, "last_logits");
    c->greedy_ids = golden(c->file, "greedy_ids");
    c->greedy_logits = golden(c->file, "greedy_logits");
    c->ids_text_first = golden(c->file, "input_ids_text_first");
    c->hidden_text_first = golden(c->file, "hidden_text_first");
    return c->image_rgb && c->max_patches && c->resize_mode && c->pixel_values && c->image_embeds && c->input_ids &&
                   c->hidden && c->label_ids && c->logits_own && c->logits_prev && c->last_logits && c->greedy_ids &&
                   c->greedy_logits && c->ids_text_first && c->hidden_text_first
               ? 0
               : -1;
}

/* Index of the first image pad in ids. */
static int first_pad(const int32_t *ids, int n, int image_id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == image_id) return i;
    return -1;
}

static dmllm_session *new_session(dmllm_model *model, const golden_case *c) {
    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.max_num_patches = *(const int32_t *)c->max_patches->data;
    sp.resize_mode = *(const int32_t *)c->resize_mode->data == 1 ? DMLLM_RESIZE_PILLOW : DMLLM_RESIZE_HF;
    sp.n_threads = 2;
    dmllm_session *s = NULL;
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    return s;
}

static void encode_golden_image(dmllm_session *s, const golden_case *c) {
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_from_rgb(c->image_rgb->data, (int)c->image_rgb->shape[1], (int)c->image_rgb->shape[0], 0,
                                  &image));
    CHECK_OK(dmllm_session_encode_image(s, image));
    dmllm_image_free(image);
}

static void run_path(const golden_case *c, const path_tolerance *p, dmllm_model *model) {
    const char *where = p->weights == DMLLM_WEIGHTS_INT8 ? "int8 weights" : p->name;
    dmllm_model_info info = {.struct_size = sizeof info};
    CHECK_OK(dmllm_model_get_info(model, &info));
    const int weights_rounded = p->compute == DMLLM_COMPUTE_BF16 && p->weights == DMLLM_WEIGHTS_AUTO &&
                                strcmp(info.weights_dtype, "BF16") != 0;
    const double tol = weights_rounded ? 2.0 * p->tolerance : p->tolerance;
    const int hidden = info.text_hidden_size, vocab = info.vocab_size;
    const int n_ids = (int)c->input_ids->shape[0];
    const int32_t *ids = c->input_ids->data;
    const int n_tokens = (int)c->image_embeds->shape[0];
    const int k = (int)c->label_ids->shape[0];
    const int pad0 = first_pad(ids, n_ids, info.image_token_id);
    CHECK(pad0 > 0);
    if (pad0 <= 0) return;

    dmllm_session *s = new_session(model, c);
    if (!s) return;
    encode_golden_image(s, c);
    size_t rows = 0, cols = 0;
    float *buffer = malloc(sizeof(float) * (size_t)(n_ids + 8) * (hidden > vocab ? hidden : vocab) * 2 +
                           c->pixel_values->n_bytes);
    CHECK_STATUS(dmllm_session_pixel_values(s, NULL, 0, &rows, &cols), DMLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(rows == (size_t)c->pixel_values->shape[0] && cols == (size_t)c->pixel_values->shape[1]);
    CHECK_OK(dmllm_session_pixel_values(s, buffer, rows * cols, &rows, &cols));
    check_close("pixel_values", where, buffer, c->pixel_values->data, rows * cols, 1e-6);
    CHECK_OK(dmllm_session_image_embeddings(s, buffer, (size_t)n_tokens * hidden, &rows, &cols));
    CHECK(rows == (size_t)n_tokens && cols == (size_t)hidden);
    check_close("image_embeds", where, buffer, c->image_embeds->data, rows * cols, tol);

    /* Image-first prompt: hidden states at the image, restricted logits, last logits. */
    CHECK_OK(dmllm_session_eval(s, ids, n_ids));
    CHECK(dmllm_session_n_past(s) == n_ids);
    const float *ref_hidden = c->hidden->data;
    CHECK_OK(dmllm_session_image_hidden(s, DMLLM_ALIGN_OWN, buffer, (size_t)n_tokens * hidden, &rows, &cols));
    check_close("hidden (own)", where, buffer, ref_hidden + (size_t)pad0 * hidden, (size_t)n_tokens * hidden, tol);
    CHECK_OK(dmllm_session_image_hidden(s, DMLLM_ALIGN_PREVIOUS, buffer, (size_t)n_tokens * hidden, &rows, &cols));
    check_close("hidden (previous)", where, buffer, ref_hidden + (size_t)(pad0 - 1) * hidden,
                (size_t)n_tokens * hidden, tol);
    const int32_t *labels = c->label_ids->data;
    CHECK_OK(dmllm_session_image_logits(s, DMLLM_ALIGN_OWN, labels, k, buffer, (size_t)n_tokens * k, &rows, &cols));
    check_close("image_logits_own", where, buffer, c->logits_own->data, (size_t)n_tokens * k, tol);
    check_label_argmax(where, "labels (own)", buffer, c->logits_own->data, (size_t)n_tokens, k, tol);
    CHECK_OK(dmllm_session_image_logits(s, DMLLM_ALIGN_PREVIOUS, labels, k, buffer, (size_t)n_tokens * k, &rows, &cols));
    check_close("image_logits_prev", where, buffer, c->logits_prev->data, (size_t)n_tokens * k, tol);
    check_label_argmax(where, "labels (previous)", buffer, c->logits_prev->data, (size_t)n_tokens, k, tol);
    CHECK_OK(dmllm_session_logits(s, buffer, (size_t)vocab, &rows));
    check_close("last_logits", where, buffer, c->last_logits->data, (size_t)vocab, tol);

    /* Greedy decoding, one token per step; bf16 and int8 may only differ at near-ties. */
    const int steps = (int)c->greedy_ids->shape[0];
    const int32_t *greedy = c->greedy_ids->data;
    const float *greedy_logits = c->greedy_logits->data;
    int same_tokens = 0;
    for (int i = 0; i < steps; i++) {
        CHECK_OK(dmllm_session_logits(s, buffer, (size_t)vocab, &rows));
        check_close("greedy step logits", where, buffer, greedy_logits + (size_t)i * vocab, (size_t)vocab, tol);
        same_tokens += argmax(buffer, vocab) == greedy[i];
        CHECK_OK(dmllm_session_eval(s, &greedy[i], 1)); /* teacher forcing keeps the comparison aligned */
    }
    printf("  %-28s %-26s %d of %d greedy tokens identical\n", where, "greedy", same_tokens, steps);
    if (p->compute != DMLLM_COMPUTE_BF16) CHECK(same_tokens == steps);
    if (p->weights == DMLLM_WEIGHTS_INT8) CHECK_MSG(same_tokens * 10 >= steps * INT8_GREEDY_TENTHS,
                                                    "int8: %d of %d greedy tokens", same_tokens, steps);

    /* Encode once, query many: keep the prefix through the image and evaluate the suffix again. */
    const int prefix = pad0 + n_tokens + 1; /* through <|vision_end|> */
    CHECK_OK(dmllm_session_truncate(s, prefix));
    CHECK(dmllm_session_n_past(s) == prefix);
    CHECK_OK(dmllm_session_eval(s, ids + prefix, n_ids - prefix));
    CHECK_OK(dmllm_session_logits(s, buffer, (size_t)vocab, &rows));
    check_close("last_logits after reuse", where, buffer, c->last_logits->data, (size_t)vocab, tol);
    CHECK_OK(dmllm_session_image_logits(s, DMLLM_ALIGN_OWN, labels, k, buffer, (size_t)n_tokens * k, &rows, &cols));
    check_close("image logits after reuse", where, buffer, c->logits_own->data, (size_t)n_tokens * k, tol);
    /* Truncating into the image forgets it. */
    CHECK_OK(dmllm_session_truncate(s, pad0 + 1));
    CHECK_STATUS(dmllm_session_image_logits(s, DMLLM_ALIGN_OWN, labels, k, buffer, (size_t)n_tokens * k, &rows, &cols),
                 DMLLM_ERR_STATE);
    CHECK(strstr(dmllm_session_errmsg(s), "image") != NULL);
    dmllm_session_free(s);

    /* Text before the image: the image states now depend on the prompt. */
    s = new_session(model, c);
    encode_golden_image(s, c);
    const int n_text_first = (int)c->ids_text_first->shape[0];
    const int32_t *ids_text_first = c->ids_text_first->data;
    const int pad_text_first = first_pad(ids_text_first, n_text_first, info.image_token_id);
    CHECK_OK(dmllm_session_eval(s, ids_text_first, n_text_first));
    CHECK_OK(dmllm_session_image_hidden(s, DMLLM_ALIGN_OWN, buffer, (size_t)n_tokens * hidden, &rows, &cols));
    check_close("hidden (text first)", where, buffer,
                (const float *)c->hidden_text_first->data + (size_t)pad_text_first * hidden,
                (size_t)n_tokens * hidden, tol);
    dmllm_session_free(s);
    free(buffer);
}

/* Bad inputs on a real session: wrong pad counts, ids out of range, context overflow, buffers. */
static void check_session_errors(dmllm_model *model, const golden_case *c) {
    dmllm_model_info info = {.struct_size = sizeof info};
    CHECK_OK(dmllm_model_get_info(model, &info));
    dmllm_session *s = new_session(model, c);
    if (!s) return;
    int32_t pads[3] = {info.image_token_id, info.image_token_id, info.image_token_id};
    CHECK_STATUS(dmllm_session_eval(s, pads, 3), DMLLM_ERR_STATE); /* no image yet */
    CHECK(strstr(dmllm_session_errmsg(s), "no image") != NULL);
    encode_golden_image(s, c);
    CHECK_STATUS(dmllm_session_eval(s, pads, 3), DMLLM_ERR_SHAPE); /* wrong pad count */
    int32_t bad_id = info.vocab_size + 5;
    CHECK_STATUS(dmllm_session_eval(s, &bad_id, 1), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(dmllm_session_n_past(s) == 0);
    float logits[4];
    size_t count = 0;
    CHECK_STATUS(dmllm_session_logits(s, logits, 4, &count), DMLLM_ERR_STATE);
    int32_t bos = info.bos_token_id;
    CHECK_OK(dmllm_session_eval(s, &bos, 1));
    CHECK_STATUS(dmllm_session_logits(s, logits, 4, &count), DMLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(count == (size_t)info.vocab_size);
    CHECK_STATUS(dmllm_session_truncate(s, 2), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_session_encode_pixels(s, logits, 3, 2), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_session_free(s);

    dmllm_session_params sp;
    dmllm_session_params_init(&sp);
    sp.n_ctx = 4;
    CHECK_OK(dmllm_session_create(model, &sp, &s));
    int32_t five[5] = {bos, bos, bos, bos, bos};
    CHECK_STATUS(dmllm_session_eval(s, five, 5), DMLLM_ERR_CONTEXT_FULL);
    CHECK(dmllm_session_n_past(s) == 0);
    CHECK_OK(dmllm_session_eval(s, five, 4));
    CHECK_STATUS(dmllm_session_eval(s, five, 1), DMLLM_ERR_CONTEXT_FULL);
    dmllm_session_free(s);
}

int main(void) {
    const char *root = test_source_path("tests/fixtures/golden");
    DIR *dir = opendir(root);
    CHECK_MSG(dir != NULL, "cannot open %s", root);
    if (!dir) return test_finish("test_session_golden");
    int n_cases = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.') continue;
        golden_case c = {.name = entry->d_name};
        snprintf(c.dir, sizeof c.dir, "%s/%s", root, entry->d_name);
        char probe[1200];
        snprintf(probe, sizeof probe, "%s/golden.safetensors", c.dir);
        FILE *f = fopen(probe, "rb");
        if (!f) continue;
        fclose(f);
        n_cases++;
        printf("case %s\n", c.name);
        CHECK_MSG(open_case(&c) == 0, "case %s: golden.safetensors incomplete: %s", c.name, dmllm_last_error());
        for (size_t i = 0; c.file && i < sizeof paths / sizeof paths[0]; i++) {
            dmllm_model_params mp;
            dmllm_model_params_init(&mp);
            mp.compute = paths[i].compute;
            mp.weights = paths[i].weights;
            dmllm_model *model = NULL;
            dmllm_status status = dmllm_model_load(c.dir, &mp, &model);
            if (status == DMLLM_ERR_UNSUPPORTED && (paths[i].compute == DMLLM_COMPUTE_BF16 ||
                                                    paths[i].weights == DMLLM_WEIGHTS_INT8)) {
                printf("  %s: not supported on this CPU, skipped\n", paths[i].name);
                continue;
            }
            CHECK_OK(status);
            if (!model) continue;
            dmllm_model_info info = {.struct_size = sizeof info};
            CHECK_OK(dmllm_model_get_info(model, &info));
            CHECK_MSG(strcmp(info.compute, paths[i].name) == 0, "compute %s, expected %s", info.compute, paths[i].name);
            CHECK_MSG(strcmp(info.weights, paths[i].weights == DMLLM_WEIGHTS_INT8 ? "int8"
                                           : paths[i].compute == DMLLM_COMPUTE_BF16 ? "bf16" : "f32") == 0,
                      "weights %s for %s", info.weights, paths[i].name);
            run_path(&c, &paths[i], model);
            if (i == 0) check_session_errors(model, &c);
            dmllm_model_free(model);
        }
        dmllm_safetensors_close(c.file);
    }
    closedir(dir);
    CHECK_MSG(n_cases >= 3, "found %d golden cases, expected at least 3", n_cases);
    return test_finish("test_session_golden");
}
