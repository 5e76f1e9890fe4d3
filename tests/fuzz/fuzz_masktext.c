/* fuzz_masktext.c: the dense mask text parser. The first two bytes choose the map size (1..64 on
 * each side), the rest is the text. An accepted map is written back and must parse to the same
 * labels. */
#include "densemllm.h"
#include "fuzz_support.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    if (size < 2) return 0;
    const int width = 1 + data[0] % 64, height = 1 + data[1] % 64;
    char *text = fuzz_text(data + 2, size - 2);
    dmllm_mask_text_result *parsed = NULL;
    if (dmllm_mask_text_parse(text, width, height, &parsed) == DMLLM_OK) {
        /* Without <ref> names the writer still needs a label count above every value. */
        int n_labels = parsed->n_names;
        for (int i = 0; parsed->n_names == 0 && i < width * height; i++)
            if (parsed->labels[i] >= n_labels) n_labels = parsed->labels[i] + 1;
        char *written = NULL;
        dmllm_mask_text_result *again = NULL;
        if (dmllm_mask_text_write(parsed->labels, width, height, (const char *const *)parsed->names,
                                  n_labels, &written) != DMLLM_OK ||
            dmllm_mask_text_parse(written, width, height, &again) != DMLLM_OK ||
            memcmp(again->labels, parsed->labels, (size_t)width * height * sizeof *parsed->labels) != 0)
            abort();
        dmllm_mask_text_result_free(again);
        dmllm_text_free(written);
    }
    dmllm_mask_text_result_free(parsed);
    free(text);
    return 0;
}
