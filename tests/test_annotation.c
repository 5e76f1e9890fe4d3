/*
 * test_annotation.c: dmllm_read_png_values against PIL 9.4 (numpy.array(Image.open(path)); sums
 * and index-weighted sums of every grayscale and palette fixture, computed with numpy), round trips
 * through the library's label and depth writers, and errors.
 */
#include "densemllm.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

/* numpy: a = np.array(Image.open(f)).astype(np.int64) (gray channel of LA); a.sum(),
 * (a * np.arange(a.size).reshape(a.shape)).sum(). */
static const struct {
    const char *name;
    int width, height;
    long long sum, weighted;
} pil[] = {
    {"gray1", 13, 7, 48, 2413},
    {"gray16", 13, 7, 2995313, 140753420},
    {"gray16_interlaced", 13, 7, 2995313, 140753420},
    {"gray16_small_values", 13, 7, 26911, 1228367},
    {"gray16_trns", 13, 7, 3119476, 144745581},
    {"gray1_interlaced", 13, 7, 48, 2413},
    {"gray2", 13, 7, 11220, 546380},
    {"gray2_interlaced", 13, 7, 11220, 546380},
    {"gray4", 13, 7, 10761, 517327},
    {"gray4_interlaced", 13, 7, 10761, 517327},
    {"gray8", 13, 7, 11418, 516643},
    {"gray8_interlaced", 13, 7, 11418, 516643},
    {"gray8_trns", 13, 7, 11303, 518881},
    {"gray_alpha8", 13, 7, 9980, 452190},
    {"palette1", 13, 7, 43, 1923},
    {"palette1_interlaced", 13, 7, 43, 1923},
    {"palette2", 13, 7, 121, 5919},
    {"palette2_interlaced", 13, 7, 121, 5919},
    {"palette4", 13, 7, 695, 32260},
    {"palette4_interlaced", 13, 7, 695, 32260},
    {"palette8", 13, 7, 11759, 543898},
    {"palette8_interlaced", 13, 7, 11759, 543898},
    {"palette8_short_plte", 13, 7, 9557, 479179},
    {"palette8_trns", 13, 7, 670, 28962},
};

static const char *fixture(const char *name) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s.png", test_source_path("tests/fixtures/images"), name);
    return path;
}

static void test_against_pil(void) {
    for (size_t i = 0; i < sizeof pil / sizeof pil[0]; i++) {
        dmllm_png_values *v = NULL;
        CHECK_OK(dmllm_read_png_values(fixture(pil[i].name), &v));
        if (!v) continue;
        long long sum = 0, weighted = 0;
        for (long long p = 0; p < (long long)v->width * v->height; p++) {
            sum += v->values[p];
            weighted += p * v->values[p];
        }
        CHECK_MSG(v->width == pil[i].width && v->height == pil[i].height && sum == pil[i].sum &&
                      weighted == pil[i].weighted,
                  "%s: %dx%d sum %lld weighted %lld", pil[i].name, v->width, v->height, sum, weighted);
        CHECK(v->palette == (strncmp(pil[i].name, "palette", 7) == 0));
        dmllm_png_values_free(v);
    }
}

static void test_round_trips(void) {
    enum { W = 19, H = 6, N = W * H };
    uint16_t labels[N];
    float depth[N];
    for (int i = 0; i < N; i++) {
        labels[i] = (uint16_t)(i * 37 % 300);
        depth[i] = 0.001f * (float)(i * 523 % 65536);
    }
    char path[1024];
    dmllm_png_values *v = NULL;
    const int n_labels[2] = {300, 256};
    for (int t = 0; t < 2; t++) { /* 16-bit gray, then a palette PNG */
        for (int i = 0; t == 1 && i < N; i++) labels[i] %= 256;
        snprintf(path, sizeof path, "%s/labels%d.png", test_temp_dir(), t);
        CHECK_OK(dmllm_write_label_png(path, labels, W, H, n_labels[t]));
        CHECK_OK(dmllm_read_png_values(path, &v));
        CHECK(v && v->width == W && v->height == H && v->palette == t && v->bit_depth == (t ? 8 : 16) &&
              memcmp(v->values, labels, sizeof labels) == 0);
        dmllm_png_values_free(v);
    }
    snprintf(path, sizeof path, "%s/depth.png", test_temp_dir());
    CHECK_OK(dmllm_write_depth_png16(path, depth, W, H, 0.0f));
    CHECK_OK(dmllm_read_png_values(path, &v));
    int wrong = 0;
    for (int i = 0; v && i < N; i++) wrong += v->values[i] != i * 523 % 65536;
    CHECK(v && wrong == 0 && v->bit_depth == 16);
    dmllm_png_values_free(v);
}

static void test_errors(void) {
    dmllm_png_values *v = (dmllm_png_values *)1;
    CHECK_STATUS(dmllm_read_png_values(fixture("rgb8"), &v), DMLLM_ERR_UNSUPPORTED);
    CHECK(v == NULL && strstr(dmllm_last_error(), "RGB") != NULL);
    size_t size = 0;
    char *bytes = test_read_file(fixture("gray8"), &size), path[1024];
    snprintf(path, sizeof path, "%s/truncated.png", test_temp_dir());
    CHECK(bytes && test_write_file(path, bytes, size / 2) == 0);
    free(bytes);
    CHECK_STATUS(dmllm_read_png_values(path, &v), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_read_png_values(fixture("zero_width"), &v), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_read_png_values(fixture("bad_crc"), &v), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_read_png_values(fixture("no such file"), &v), DMLLM_ERR_IO);
    CHECK_STATUS(dmllm_read_png_values(test_source_path("tests/fixtures/images/gray.jpg"), &v), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_read_png_values(NULL, &v), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_read_png_values(fixture("gray8"), NULL), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_png_values_free(NULL);
}

/* Fuzzer finding (tests/fuzz/regressions/annotation): 66 bytes of RGB PNG whose tEXt chunk declares
 * 2 GB; libpng only warned about the chunk limit and allocated (and touched) 2 GB before failing.
 * Ancillary chunks are now skipped unread. Runs first, while the peak memory is still small. */
static void test_huge_text_chunk(void) {
    const long before = test_peak_rss_kb();
    dmllm_png_values *values = NULL;
    const dmllm_status status =
        dmllm_read_png_values(test_source_path("tests/fuzz/regressions/annotation/text_chunk_2gb.png"), &values);
    CHECK_MSG(status != DMLLM_OK && values == NULL && strstr(dmllm_last_error(), "text_chunk_2gb.png"), "%s",
              dmllm_last_error());
    const long grown_mb = (test_peak_rss_kb() - before) / 1024;
    CHECK_MSG(grown_mb < 64, "reading it raised the peak memory by %ld MB", grown_mb);
}

int main(void) {
    test_huge_text_chunk();
    test_against_pil();
    test_round_trips();
    test_errors();
    return test_finish("test_annotation");
}
