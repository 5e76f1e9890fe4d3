/* fuzz_safetensors.c: arbitrary bytes as a .safetensors file (length, header JSON, data). Every
 * tensor handed out must lie inside the mapping: its first and last bytes are read under ASan. */
#include "fuzz_support.h"
#include "safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("model.safetensors", data, size);
    dmllm_safetensors *file = NULL;
    if (dmllm_safetensors_open(path, &file) != DMLLM_OK) return 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < dmllm_safetensors_count(file); i++) {
        const dmllm_tensor *t = dmllm_safetensors_at(file, i);
        if (dmllm_safetensors_find(file, t->name) != t) abort();
        if (t->n_bytes == 0) continue;
        const uint8_t *bytes = t->data;
        sink ^= bytes[0] ^ bytes[t->n_bytes - 1];
    }
    (void)sink;
    dmllm_safetensors_close(file);
    return 0;
}
