/*
 * test_image.c: the image decoders against PIL 9.4 (tests/fixtures/images/expected.txt, written
 * by make_fixtures.py: every PNG colour type and depth, interlaced, tRNS, short palettes; PNG
 * orientation from eXIf (before or after the pixels) or XMP, as PIL's getexif() finds it; JPEG
 * 4:2:0/4:2:2/4:4:4, progressive, gray, CMYK, EXIF orientations 1-8 in both byte orders; WebP
 * lossless, lossy, with alpha, animated, with EXIF orientation; TIFF raw/LZW/deflate/PackBits,
 * RGBA, gray, palette, bilevel, multi-page, oriented; BMP 1/8/24/32-bit and RLE8; the shared
 * photos), the refusal of corrupt, truncated, empty, zero-size, huge and foreign files,
 * truncation and bit-flip sweeps (no crash, no leak under ASan, clean errors), the decode limits
 * (decompression bombs, endless devices, memory) and the handle API.
 */
#include "image.h"
#include "support_images.h"
#include "common.h"
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
    CHECK(n_decodes >= 100 && n_errors >= 18);
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
    static const char *const huge[][2] = {
        {"fixtures/huge.webp", "WebP size 16384x16384"}, {"fixtures/huge.tif", "TIFF size 30000x30000"},
        {"fixtures/huge.bmp", "BMP size 30000x30000"},
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        CHECK_STATUS(dmllm_image_load_file(image_fixture_path(huge[i][0]), &image), DMLLM_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(dmllm_last_error(), huge[i][1]) && strstr(dmllm_last_error(), huge[i][0] + 9),
                  "format, size or file not named: %s", dmllm_last_error());
    }
    CHECK_STATUS(dmllm_image_load_file(image_fixture_path("fixtures/truncated.bmp"), &image), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), "truncated BMP: the data ends after 16 of 19 rows"), "%s", dmllm_last_error());
    CHECK_STATUS(dmllm_image_load_file(image_fixture_path("fixtures/truncated.tif"), &image), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), "TIFF") && strstr(dmllm_last_error(), "Read error"), "libtiff's reason "
              "missing: %s", dmllm_last_error());
    CHECK_STATUS(dmllm_image_load_memory("RIFF\0\0\0\0WEBP", 12, &image), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_image_load_memory("II*\0", 4, &image), DMLLM_ERR_FORMAT);
    CHECK_STATUS(dmllm_image_load_memory("BM", 2, &image), DMLLM_ERR_FORMAT);
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
    sweep_damage("fixtures/lossless_rgba.webp", true);
    sweep_damage("fixtures/lossy_alpha.webp", true);
    sweep_damage("fixtures/animated.webp", false);
    sweep_damage("fixtures/exif6.webp", true);
    sweep_damage("fixtures/rgb8_tiff_lzw.tif", true);
    sweep_damage("fixtures/palette8.tif", false);
    sweep_damage("fixtures/orient6.tif", false);
    sweep_damage("fixtures/rgb24.bmp", false);
    sweep_damage("fixtures/palette8.bmp", false);
    sweep_damage("fixtures/rle8.bmp", true);
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

static void put_u16_be(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put_u32_be(uint8_t *p, uint32_t v) { put_u16_be(p, v >> 16); put_u16_be(p + 2, v & 0xFFFF); }

/* PNG's CRC-32 (ISO 3309, bitwise). */
static uint32_t png_crc(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c >> 1 ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* A decode that must fail fast (well under the seconds a real decode of its header's size takes)
 * with the expected status and a message holding `needle`. */
static void check_refused(const char *what, dmllm_status got, double seconds, dmllm_status expected,
                          const char *needle) {
    CHECK_STATUS(got, expected);
    CHECK_MSG(strstr(dmllm_last_error(), needle) != NULL, "%s: message lacks \"%s\": %s", what, needle,
              dmllm_last_error());
    CHECK_MSG(seconds < 2.0, "%s: took %.2f s to fail", what, seconds);
    printf("  %-34s %.3f s -> %s\n", what, seconds, dmllm_last_error());
}

/* Decompression bombs (issue 20, item 7): tiny valid files whose headers claim 16000 x 16000
 * (256 M pixels, under the 2^28 hard limit but over PIL's 178,956,970), a device that never ends,
 * and the memory limit of a decode. */
static void test_limits(void) {
    dmllm_image *image = NULL;
    size_t size = 0;
    uint8_t *jpeg = test_read_file(image_fixture_path("fixtures/rgb_420.jpg"), &size);
    CHECK(jpeg != NULL);
    size_t sof = 2;
    while (jpeg && sof + 9 < size && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) sof++;
    CHECK_MSG(jpeg && sof + 9 < size, "no SOF0 marker in rgb_420.jpg");
    if (jpeg && sof + 9 < size) {
        put_u16_be(jpeg + sof + 5, 16000); /* height */
        put_u16_be(jpeg + sof + 7, 16000); /* width */
        const double t0 = dmllm_now_seconds();
        const dmllm_status status = dmllm_image_load_memory(jpeg, size, &image);
        check_refused("JPEG with a 16000x16000 SOF", status, dmllm_now_seconds() - t0, DMLLM_ERR_UNSUPPORTED,
                      "16000x16000 (256000000 pixels) exceeds the limit of 178956970 pixels");
        CHECK(image == NULL);
        /* Allowed through a larger cap, the same header reaches the memory limit instead. */
        dmllm_image_params ip;
        dmllm_image_params_init(&ip);
        ip.max_pixels = 300000000;
        ip.memory_limit_bytes = (int64_t)1 << 30;
        const double t1 = dmllm_now_seconds();
        const dmllm_status oom = dmllm_image_load_memory_ex(jpeg, size, &ip, &image);
        check_refused("the same under a 1 GiB memory limit", oom, dmllm_now_seconds() - t1, DMLLM_ERR_OUT_OF_MEMORY,
                      "MiB, memory limit 1024.00 MiB");
    }
    free(jpeg);

    /* Signature, IHDR 16000 x 16000 RGB 8-bit, an empty IDAT, IEND (each with its CRC): the size
     * alone must refuse it. */
    uint8_t png[8 + 25 + 12 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    put_u32_be(png + 8, 13);
    memcpy(png + 12, "IHDR", 4);
    put_u32_be(png + 16, 16000);
    put_u32_be(png + 20, 16000);
    png[24] = 8;  /* bit depth */
    png[25] = 2;  /* RGB */
    put_u32_be(png + 29, png_crc(png + 12, 17));
    for (int chunk = 0; chunk < 2; chunk++) {
        uint8_t *at = png + 33 + 12 * chunk; /* length 0 (already), type, CRC */
        memcpy(at + 4, chunk ? "IEND" : "IDAT", 4);
        put_u32_be(at + 8, png_crc(at + 4, 4));
    }
    const double t2 = dmllm_now_seconds();
    const dmllm_status png_status = dmllm_image_load_memory(png, sizeof png, &image);
    check_refused("PNG with a 16000x16000 IHDR", png_status, dmllm_now_seconds() - t2, DMLLM_ERR_UNSUPPORTED,
                  "PNG size 16000x16000 (256000000 pixels) exceeds the limit of 178956970 pixels");

    /* A device is read no further than the byte limit. */
    dmllm_image_params small;
    dmllm_image_params_init(&small);
    small.max_encoded_bytes = 1 << 20;
    const double t3 = dmllm_now_seconds();
    const dmllm_status zero = dmllm_image_load_file_ex("/dev/zero", &small, &image);
    check_refused("/dev/zero, 1 MiB limit", zero, dmllm_now_seconds() - t3, DMLLM_ERR_UNSUPPORTED,
                  "/dev/zero: more than 1048576 bytes");
    const double t4 = dmllm_now_seconds();
    const dmllm_status zero_default = dmllm_image_load_file("/dev/zero", &image);
    check_refused("/dev/zero, default limit", zero_default, dmllm_now_seconds() - t4, DMLLM_ERR_UNSUPPORTED,
                  "more than 268435456 bytes (dmllm_image_params.max_encoded_bytes)");
    /* A regular file over the limit is refused by its size, unread. */
    small.max_encoded_bytes = 1000;
    const char *photo = image_fixture_path("fixtures/rgb_420.jpg");
    CHECK_STATUS(dmllm_image_load_file_ex(photo, &small, &image), DMLLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dmllm_last_error(), "more than the limit of 1000") != NULL, "%s", dmllm_last_error());
    CHECK_STATUS(dmllm_image_load_file(test_source_path("tests/fixtures/images"), &image), DMLLM_ERR_IO);
    CHECK_MSG(strstr(dmllm_last_error(), "is a directory") != NULL, "%s", dmllm_last_error());
    CHECK(image == NULL);

    /* Under generous limits the same file decodes; 0 switches a limit off; negatives are refused. */
    dmllm_image_params off;
    dmllm_image_params_init(&off);
    CHECK(off.max_pixels == DMLLM_DEFAULT_MAX_IMAGE_PIXELS && off.max_encoded_bytes == (int64_t)256 << 20 &&
          off.memory_limit_bytes == 0 && dmllm_image_params_sizeof() == sizeof off);
    off.max_pixels = off.max_encoded_bytes = 0;
    off.memory_limit_bytes = 64 << 20;
    CHECK_OK(dmllm_image_load_file_ex(photo, &off, &image));
    CHECK(image != NULL);
    dmllm_image_free(image);
    image = NULL;
    off.memory_limit_bytes = 1;
    CHECK_STATUS(dmllm_image_load_file_ex(photo, &off, &image), DMLLM_ERR_OUT_OF_MEMORY);
    off.memory_limit_bytes = -1;
    CHECK_STATUS(dmllm_image_load_file_ex(photo, &off, &image), DMLLM_ERR_INVALID_ARGUMENT);
    off.struct_size = 2;
    CHECK_STATUS(dmllm_image_load_memory_ex("x", 1, &off, &image), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(image == NULL);
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
    /* Its 201 M pixels are over the default pixel cap, which would refuse it first. */
    dmllm_image_params uncapped;
    dmllm_image_params_init(&uncapped);
    uncapped.max_pixels = 0;
    CHECK_STATUS(dmllm_image_load_memory_ex(data, size, &uncapped, &image), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), "truncated JPEG: 403 bytes") && strstr(dmllm_last_error(), "10752x18761"),
              "%s", dmllm_last_error());
    const long grown_mb = (test_peak_rss_kb() - before) / 1024;
    CHECK_MSG(grown_mb < 64, "refusing it raised the peak memory by %ld MB", grown_mb);
    free(data);
}

/* A fuzzer's input from tests/fuzz/regressions (bytes long) is refused from memory with status and
 * a message containing message. */
static void check_regression_refused(const char *file, size_t bytes, dmllm_status status, const char *message) {
    char path[256];
    snprintf(path, sizeof path, "tests/fuzz/regressions/%s", file);
    size_t size = 0;
    void *data = test_read_file(test_source_path(path), &size);
    CHECK_MSG(data != NULL && size == bytes, "%s: %zu bytes", file, size);
    if (!data) return;
    dmllm_image *image = NULL;
    CHECK_STATUS(dmllm_image_load_memory(data, size, &image), status);
    CHECK_MSG(strstr(dmllm_last_error(), message), "%s: %s", file, dmllm_last_error());
    free(data);
}

/* Fuzzer finding (tests/fuzz/regressions/annotation, through fuzz_annotation): 66 bytes of PNG
 * whose tEXt chunk declares 2 GB, which libpng allocated before failing. The memory decoder now
 * refuses a chunk running past the data before libpng sees it. */
static void test_chunk_past_end(void) {
    check_regression_refused("annotation/text_chunk_2gb.png", 66, DMLLM_ERR_FORMAT,
                             "truncated PNG: the \"tEXt\" chunk at byte 33 declares 2046820365 bytes");
}

/* Fuzzer finding (CI's fuzz_smoke): a TIFF header's sides, near 2^32 each, overflowed int64 when
 * multiplied; each side is now checked against the pixel cap first. */
static void test_tiff_sides_past_cap(void) {
    check_regression_refused("image/tiff_sides_product_overflow.tif", 161, DMLLM_ERR_UNSUPPORTED,
                             "TIFF size 3774863615x4278190099");
}

/* Fuzzer findings (tests/fuzz/regressions/image/bmp_*.bmp): gdk-pixbuf's BMP loader allocated
 * the declared info header size (2.9 GB for a 110-byte file), the declared palette (2.7 GB for a
 * negative count) and, for direct colour, the declared pixel offset before checking them. All
 * three are refused before the loader. */
static void test_bmp_declared_sizes(void) {
    check_regression_refused("image/bmp_huge_header_size_1.bmp", 110, DMLLM_ERR_UNSUPPORTED,
                             "BMP with a 2931463208-byte info header");
    check_regression_refused("image/bmp_negative_palette_size.bmp", 159, DMLLM_ERR_FORMAT,
                             "a palette of 3890735079 colours at 1 bits per pixel");
    dmllm_image *image = NULL;
    uint8_t bmp[54] = {'B', 'M'}; /* 2x1, 24-bit, pixels said to start at 0xF0000000 */
    const uint8_t info[] = {40, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 24, 0};
    memcpy(bmp + 14, info, sizeof info);
    bmp[13] = 0xF0;
    CHECK_STATUS(dmllm_image_load_memory(bmp, sizeof bmp, &image), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), "truncated BMP: its pixels start at byte 4026531840"), "%s",
              dmllm_last_error());
}

int main(void) {
    test_truncated_huge_frame();
    test_chunk_past_end();
    test_tiff_sides_past_cap();
    test_bmp_declared_sizes();
    test_limits();
    test_expected_decodes();
    test_error_messages();
    test_damage();
    test_handle();
    return test_finish("test_image");
}
