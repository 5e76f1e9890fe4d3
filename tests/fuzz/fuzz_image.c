/* fuzz_image.c: arbitrary bytes decoded as an image from memory (JPEG with EXIF orientation, PNG
 * of every type, WebP still and animated, TIFF, BMP). A decoded image's pixel buffer is read end
 * to end under ASan. The pixel cap is 2^22 rather than the default 178,956,970: arithmetic-coded
 * JPEG data has no size bound, and a 2.3 KB raw TIFF may declare 37 x 327,699 pixels (1.8 s under
 * ASan on an idle core), so a few hundred bytes may legitimately decode (slowly) to any size under
 * the cap, and the fuzzer's 10 s limit on a busy machine would report that as a finding;
 * test_image covers the cap itself. libwebp, libtiff and gdk-pixbuf are Debian's uninstrumented
 * builds: ASan sees their allocations (and libFuzzer's malloc limit), coverage only our code. */
#include "densemllm.h"
#include "fuzz_support.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    dmllm_image_params params;
    dmllm_image_params_init(&params);
    params.max_pixels = 1 << 22;
    dmllm_image *image = NULL;
    if (dmllm_image_load_memory_ex(data, size, &params, &image) != DMLLM_OK) return 0;
    const int width = dmllm_image_width(image), height = dmllm_image_height(image);
    if (width <= 0 || height <= 0) abort();
    const uint8_t *pixels = dmllm_image_pixels(image);
    volatile uint8_t sink = pixels[0] ^ pixels[(size_t)width * height * 3 - 1];
    (void)sink;
    dmllm_image_free(image);
    return 0;
}
