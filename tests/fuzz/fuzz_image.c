/* fuzz_image.c: arbitrary bytes decoded as an image from memory (JPEG with EXIF orientation, PNG
 * of every type). A decoded image's pixel buffer is read end to end under ASan. */
#include "densemllm.h"
#include "fuzz_support.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    dmllm_image *image = NULL;
    if (dmllm_image_load_memory(data, size, &image) != DMLLM_OK) return 0;
    const int width = dmllm_image_width(image), height = dmllm_image_height(image);
    if (width <= 0 || height <= 0) abort();
    const uint8_t *pixels = dmllm_image_pixels(image);
    volatile uint8_t sink = pixels[0] ^ pixels[(size_t)width * height * 3 - 1];
    (void)sink;
    dmllm_image_free(image);
    return 0;
}
