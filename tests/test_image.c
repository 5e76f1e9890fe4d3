/*
 * test_image.c: the JPEG and PNG decoders against PIL 9.4 (tests/fixtures/images/expected.txt,
 * written by make_fixtures.py: every PNG colour type and depth, interlaced, tRNS, short palettes;
 * PNG orientation from eXIf (before or after the pixels) or XMP, as PIL's getexif() finds it;
 * JPEG 4:2:0/4:2:2/4:4:4, progressive, gray, CMYK, EXIF orientations 1-8 in both byte orders;
 * the shared photos), the refusal of corrupt, truncated, empty, zero-size, huge and foreign files,
 * truncation and bit-flip sweeps (no crash, no leak under ASan, clean errors), and the handle API.
 */
#include "image.h"
#include "support_images.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static dmllm_status status_from_name(const char *name) {
    if (strcmp(name, "FORMAT") == 0) return DMLLM_ERR_FORMAT;
    if (strcmp(name, "UNSUPPORTED") == 0) return DMLLM_ERR_UNSUPPORTED;
    return DMLLM_OK;
}

/* Every "decode" and "error" line of expected.txt, through the file and the memory entry points. */
static void test_expected_decodes(void) {
    char *text = image_expected_text();
    CHECK_MSG(text != NULL, "cannot read tests/fixtures/images/expected.txt");
    if (!text) return;
    int n_decodes = 0, n_errors = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char file[512], status_name[32];
        int width, height;
        unsigned long long hash;
        if (sscanf(line, "decode %511s %d %d %llx", file, &width, &height, &hash) == 4) {
            const char *path = image_fixture_path(file);
            dmllm_image *image = NULL;
            CHECK_OK(dmllm_image_load_file(path, &image));
            CHECK_MSG(image && dmllm_image_width(image) == width && dmllm_image_height(image) == height &&
                          image_hash(image) == hash,
                      "%s: got %dx%d %016llx, PIL gives %dx%d %016llx", file, dmllm_image_width(image),
                      dmllm_image_height(image), (unsigned long long)image_hash(image), width, height, hash);
            size_t size = 0;
            void *data = test_read_file(path, &size);
            dmllm_image *from_memory = NULL;
            CHECK_OK(dmllm_image_load_memory(data, size, &from_memory));
            CHECK_MSG(image_hash(from_memory) == hash, "%s: load_memory differs from PIL", file);
            dmllm_image_free(from_memory);
            dmllm_image_free(image);
            free(data);
            n_decodes++;
        } else if (sscanf(line, "error %511s %31s", file, status_name) == 2) {
            const char *path = image_fixture_path(file);
            dmllm_image *image = (dmllm_image *)&n_errors; /* must be reset to NULL */
            const dmllm_status expected = status_from_name(status_name);
            CHECK_STATUS(dmllm_image_load_file(path, &image), expected);
            CHECK(image == NULL);
            CHECK_MSG(strstr(dmllm_last_error(), path) != NULL, "%s: message does not name the file: %s", file,
                      dmllm_last_error());
            printf("  %-28s -> %s\n", file, dmllm_last_error() + strlen(path));
            n_errors++;
        }
    }
    printf("decoded %d files like PIL, %d refused\n", n_decodes, n_errors);
    CHECK(n_decodes >= 60 && n_errors >= 9);
    free(text);
}

static void test_error_messages(void) {
    dmllm_image *image = NULL;
    CHECK_STATUS(dmllm_image_load_file(image_fixture_path("fixtures/tiny.gif"), &image), DMLLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dmllm_last_error(), "GIF") != NULL, "format not named: %s", dmllm_last_error());
    CHECK_STATUS(dmllm_image_load_file(image_fixture_path("fixtures/huge.png"), &image), DMLLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dmllm_last_error(), "30000x30000") != NULL, "size not named: %s", dmllm_last_error());
    CHECK_STATUS(dmllm_image_load_file(image_fixture_path("fixtures/huge.jpg"), &image), DMLLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dmllm_last_error(), "65000x65000") != NULL, "size not named: %s", dmllm_last_error());
    CHECK_STATUS(dmllm_image_load_file(image_fixture_path("fixtures/no_such_file.png"), &image), DMLLM_ERR_IO);
    CHECK(strstr(dmllm_last_error(), "no_such_file.png") != NULL);
    CHECK_STATUS(dmllm_image_load_file(test_source_path("tests/fixtures/images"), &image), DMLLM_ERR_IO);
    CHECK_STATUS(dmllm_image_load_memory("x", 0, &image), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_image_load_memory("\xff\xd8", 2, &image), DMLLM_ERR_UNSUPPORTED);
    CHECK_STATUS(dmllm_image_load_memory("\xff\xd8\xff", 3, &image), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_image_load_memory("\x89PNG\r\n\x1a\n", 8, &image), DMLLM_ERR_FORMAT);
    CHECK(image == NULL);
    CHECK_STATUS(dmllm_image_load_file(NULL, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_image_load_memory("x", 1, NULL), DMLLM_ERR_INVALID_ARGUMENT);
}

/* Every prefix of the file, and the file with each byte inverted in turn, must decode or fail
 * cleanly (FORMAT, or UNSUPPORTED once the magic is gone), never crash or leak. */
static void sweep_damage(const char *file, bool every_flip) {
    size_t size = 0;
    uint8_t *data = test_read_file(image_fixture_path(file), &size);
    CHECK_MSG(data != NULL, "cannot read %s", file);
    if (!data) return;
    uint8_t *copy = malloc(size);
    int bad = 0, n_ok = 0, n_failed = 0;
    for (size_t cut = 0; cut < size; cut++) {
        dmllm_image *image = NULL;
        const dmllm_status status = dmllm_image_load_memory(data, cut, &image);
        if (status == DMLLM_OK) n_ok++; else n_failed++;
        if (!(status == DMLLM_OK || status == DMLLM_ERR_FORMAT || status == DMLLM_ERR_UNSUPPORTED) ||
            (status != DMLLM_OK && (image || !dmllm_last_error()[0])))
            bad++;
        dmllm_image_free(image);
    }
    const size_t step = every_flip ? 1 : 7;
    for (size_t at = 0; at < size; at += step) {
        memcpy(copy, data, size);
        copy[at] ^= 0xFF;
        dmllm_image *image = NULL;
        const dmllm_status status = dmllm_image_load_memory(copy, size, &image);
        if (status == DMLLM_OK) n_ok++; else n_failed++;
        if (!(status == DMLLM_OK || status == DMLLM_ERR_FORMAT || status == DMLLM_ERR_UNSUPPORTED) ||
            (status != DMLLM_OK && image) || (status == DMLLM_OK && !image))
            bad++;
        dmllm_image_free(image);
    }
    CHECK_MSG(bad == 0, "%s: %d damaged variants gave a wrong status or output", file, bad);
    CHECK_MSG(n_failed > (int)size / 2, "%s: only %d of the damaged variants were refused", file, n_failed);
    printf("  damage sweep %-26s %5zu bytes: %d decoded, %d refused\n", file, size, n_ok, n_failed);
    free(copy);
    free(data);
}

static void test_damage(void) {
    dmllm_log_set(NULL, NULL); /* bit flips make libjpeg warn on stderr by design */
    sweep_damage("fixtures/rgb8_interlaced.png", true);
    sweep_damage("fixtures/palette4.png", true);
    sweep_damage("fixtures/gray16.png", true);
    sweep_damage("fixtures/rgb_420.jpg", false);
    sweep_damage("fixtures/rgb_progressive.jpg", false);
    sweep_damage("fixtures/cmyk.jpg", false);
    sweep_damage("fixtures/orient6_be.jpg", true);
    sweep_damage("fixtures/exif3_after.png", true);
    sweep_damage("fixtures/xmp8_itxt.png", true);
}

static void test_handle(void) {
    /* 2x2 image, rows padded to 8 bytes. */
    const uint8_t padded[16] = {1, 2, 3, 4, 5, 6, 99, 99, 7, 8, 9, 10, 11, 12, 99, 99};
    dmllm_image *image = NULL;
    CHECK_OK(dmllm_image_from_rgb(padded, 2, 2, 8, &image));
    CHECK(dmllm_image_width(image) == 2 && dmllm_image_height(image) == 2);
    const uint8_t packed[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    CHECK(image && memcmp(dmllm_image_pixels(image), packed, 12) == 0);
    dmllm_image_free(image);
    CHECK_OK(dmllm_image_from_rgb(packed, 2, 2, 0, &image));
    CHECK(image && memcmp(dmllm_image_pixels(image), packed, 12) == 0);
    dmllm_image_free(image);
    CHECK_STATUS(dmllm_image_from_rgb(packed, 2, 2, 5, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_image_from_rgb(packed, 0, 2, 0, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_image_from_rgb(packed, 2, -1, 0, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(image == NULL);
    /* 16385 x 16384 = 2^28 + 16384 pixels: refused before allocating. */
    CHECK_STATUS(dmllm_image_alloc(16385, 16384, &image), DMLLM_ERR_UNSUPPORTED);
    CHECK_STATUS(dmllm_image_alloc(0, 5, &image), DMLLM_ERR_FORMAT);
    CHECK(dmllm_image_width(NULL) == 0 && dmllm_image_height(NULL) == 0 && dmllm_image_pixels(NULL) == NULL);
    dmllm_image_free(NULL);
}

/* Fuzzer finding (tests/fuzz/regressions/image): 403 bytes of CMYK JPEG whose frame claims
 * 10752x18761 pixels. It was refused as truncated only after decoding 1.4 GB of gray padding
 * (over 10 s under ASan); now it is refused from the frame header, before any pixel memory. Runs
 * first, while the process's peak memory is still small. */
static void test_truncated_huge_frame(void) {
    size_t size = 0;
    void *data = test_read_file(test_source_path("tests/fuzz/regressions/image/huge_truncated_cmyk.jpg"), &size);
    CHECK(data != NULL && size == 403);
    if (!data) return;
    const long before = test_peak_rss_kb();
    dmllm_image *image = NULL;
    CHECK_STATUS(dmllm_image_load_memory(data, size, &image), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), "truncated JPEG: 403 bytes") && strstr(dmllm_last_error(), "10752x18761"),
              "%s", dmllm_last_error());
    const long grown_mb = (test_peak_rss_kb() - before) / 1024;
    CHECK_MSG(grown_mb < 64, "refusing it raised the peak memory by %ld MB", grown_mb);
    free(data);
}

/* Fuzzer finding (tests/fuzz/regressions/annotation, through fuzz_annotation): 66 bytes of PNG
 * whose tEXt chunk declares 2 GB, which libpng allocated before failing. The memory decoder now
 * refuses a chunk running past the data before libpng sees it. */
static void test_chunk_past_end(void) {
    size_t size = 0;
    void *data = test_read_file(test_source_path("tests/fuzz/regressions/annotation/text_chunk_2gb.png"), &size);
    CHECK(data != NULL && size == 66);
    if (!data) return;
    dmllm_image *image = NULL;
    CHECK_STATUS(dmllm_image_load_memory(data, size, &image), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), "truncated PNG: the \"tEXt\" chunk at byte 33 declares 2046820365 bytes"),
              "%s", dmllm_last_error());
    free(data);
}

int main(void) {
    test_truncated_huge_frame();
    test_chunk_past_end();
    test_expected_decodes();
    test_error_messages();
    test_damage();
    test_handle();
    return test_finish("test_image");
}
