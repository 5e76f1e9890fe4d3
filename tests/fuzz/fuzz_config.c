/* fuzz_config.c: arbitrary bytes as config.json text (not NUL-terminated: the parser must keep
 * to the length it is given). */
#include "config.h"
#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    dmllm_config config;
    if (dmllm_config_parse((const char *)data, size, &config) == DMLLM_OK)
        (void)dmllm_config_window_tokens(&config.vision);
    return 0;
}
