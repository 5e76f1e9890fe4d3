/* fuzz_checkpoint_index.c: arbitrary bytes as model.safetensors.index.json of a model directory
 * that otherwise holds models/tiny (config.json copied, its one shard linked under two names), so
 * a well-formed index reaches the shape checks of every tensor. */
#include "checkpoint.h"
#include "fuzz_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void link_shard(const char *name) {
    if (symlink(fuzz_source_path("models/tiny/model.safetensors"), fuzz_path(name)) != 0) {
        perror("fuzz: symlink");
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    FILE *f = fopen(fuzz_source_path("models/tiny/config.json"), "rb");
    static uint8_t config[1 << 16];
    size_t n = f ? fread(config, 1, sizeof config, f) : 0;
    if (!f || n == 0 || n == sizeof config) abort();
    fclose(f);
    fuzz_write("config.json", config, n);
    link_shard("model.safetensors");
    link_shard("model-00002-of-00002.safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("model.safetensors.index.json", data, size);
    dmllm_checkpoint *checkpoint = NULL;
    if (dmllm_checkpoint_open(fuzz_path(""), &checkpoint) == DMLLM_OK &&
        !dmllm_checkpoint_tensor(checkpoint, "model.embed_tokens.weight"))
        abort(); /* an opened checkpoint has every tensor the config implies */
    dmllm_checkpoint_close(checkpoint);
    return 0;
}
