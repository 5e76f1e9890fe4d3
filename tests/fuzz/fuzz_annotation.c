/* fuzz_annotation.c: arbitrary bytes as an annotation PNG read as raw sample values; an accepted
 * map's values are read end to end under ASan. */
#include "densemllm.h"
#include "fuzz_support.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dmllm_png_values *values = NULL;
    if (dmllm_read_png_values(fuzz_write("annotation.png", data, size), &values) != DMLLM_OK) return 0;
    if (values->width <= 0 || values->height <= 0) abort();
    volatile uint16_t sink = values->values[0] ^ values->values[(size_t)values->width * values->height - 1];
    (void)sink;
    dmllm_png_values_free(values);
    return 0;
}
