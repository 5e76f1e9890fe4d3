/* fuzz_profile.c: arbitrary bytes as readout_profile.json text; an accepted profile's depth
 * quantisations are then evaluated at both range ends. */
#include "fuzz_support.h"
#include "profile.h"

#include <math.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    dmllm_readout_profile profile;
    dmllm_profile_defaults(&profile);
    if (dmllm_profile_parse((const char *)data, size, "readout_profile.json", &profile) != DMLLM_OK) return 0;
    if (!dmllm_profile_depth(&profile, profile.depth_profile)) abort(); /* the default must exist */
    for (int i = 0; i < profile.n_depth_profiles; i++) {
        const dmllm_depth_quantisation *q = &profile.depth_profiles[i];
        const int last = profile.depth_first_bin + profile.depth_bins - 1;
        if (!isfinite(dmllm_depth_bin_metres(&profile, q, profile.depth_first_bin)) ||
            !isfinite(dmllm_depth_bin_metres(&profile, q, last)))
            abort();
    }
    return 0;
}
