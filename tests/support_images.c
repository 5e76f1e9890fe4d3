/*
 * support_images.c: helpers of the image tests (see support_images.h). Test-only.
 */
#include "support_images.h"

#include "testutil.h"

#include <string.h>

uint64_t image_fnv1a64(const uint8_t *data, size_t size) {
    uint64_t hash = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < size; i++) hash = (hash ^ data[i]) * 0x100000001B3ull;
    return hash;
}

uint64_t image_hash(const dmllm_image *image) {
    if (!image) return 0;
    return image_fnv1a64(dmllm_image_pixels(image), (size_t)dmllm_image_width(image) * dmllm_image_height(image) * 3);
}

const char *image_fixture_path(const char *file) {
    static _Thread_local char buffer[4][1024];
    static _Thread_local int next;
    char *out = buffer[next++ & 3];
    if (strncmp(file, "fixtures/", 9) == 0)
        snprintf(out, sizeof buffer[0], "%s/%s", test_source_path("tests/fixtures/images"), file + 9);
    else if (strncmp(file, "shared/", 7) == 0)
        snprintf(out, sizeof buffer[0], "%s", test_shared_path(file + 7));
    else
        snprintf(out, sizeof buffer[0], "%s", file);
    return out;
}

char *image_expected_text(void) {
    size_t size;
    return test_read_file(test_source_path("tests/fixtures/images/expected.txt"), &size);
}
