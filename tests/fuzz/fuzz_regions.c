/* fuzz_regions.c: arbitrary text through dmllm_parse_regions; every region's label and points are
 * read under ASan and its box must bound its polygon. */
#include "densemllm.h"
#include "fuzz_support.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    char *text = fuzz_text(data, size);
    dmllm_regions *regions = NULL;
    if (dmllm_parse_regions(text, &regions) == DMLLM_OK) {
        volatile size_t sink = 0;
        for (int i = 0; i < regions->n_regions; i++) {
            const dmllm_region *r = regions->regions[i];
            sink += strlen(r->label);
            for (int k = 0; k < r->n_points; k++) {
                const int x = r->points[2 * k], y = r->points[2 * k + 1];
                if (x < r->box[0] || x > r->box[2] || y < r->box[1] || y > r->box[3]) abort();
            }
        }
        (void)sink;
    }
    dmllm_regions_free(regions);
    free(text);
    return 0;
}
