/*
 * profile.h: the readout profile: every choice of the dense readout that the technical report
 * leaves open (model-spec section 6.3, 9.2-9.3), read from `readout_profile.json` in the model
 * directory, with the defaults below for youtu_vl when the file is absent. Parsing only.
 *
 * File format (every key optional; an unknown key is an error naming it):
 *   {
 *     "alignment": "previous" | "own",          which position's logits carry image token i
 *     "class_name_prefix": "" | " ",            prepended to a class name before tokenising it
 *     "class_score": "mean" | "first",          Eq. 6 mean of sub-token logits, or the first only
 *     "interpolation": "logits" | "probabilities",   bilinear upsampling of the label scores (Eq. 6)
 *                                               or of their sigmoids, read back as logits
 *     "semantic_readout": "named" | "all",      the classes the model names first (report 9.2),
 *                                               or every class of the prompt
 *     "crf": true,                              whether semantic and FG/BG maps (and the box-prompted
 *                                               masks) go through evaluation mode, softmax + dense CRF,
 *                                               when the caller does not say: the demo's use_crf
 *     "softmax_temperature": 0.2,               evaluation mode (App. A.1.5)
 *     "sigmoid_scale": 0.25, "background_level": 0.5,   background mode (App. A.1.5)
 *     "fg_token": "<FG>", "bg_token": "<BG>",
 *     "depth_token_format": "<custom_%d>",      one %d: the bin number
 *     "depth_first_bin": 1, "depth_bins": 1000,
 *     "depth_upsample": 2,                      token grid -> argmax grid factor (App. A.1.7)
 *     "depth_refine_bins": 0,                   0: each cell's value is its argmax bin (report 9.3);
 *                                               w > 0: the probability-weighted mean bin within w
 *                                               bins of the argmax, a value between bins that
 *                                               follows the blend across cells (no plateaus)
 *     "depth_profile": "open_world",            the default quantisation
 *     "depth_profiles": { "name": {"kind": "linear" | "log", "min": m, "max": M}, ... },
 *     "depth_evaluation": {"layout": "prompt_first", "min_depth": 0.001, "max_depth": 10},
 *                                               the defaults of `densemllm eval --task depth`: where
 *                                               the instruction goes, the valid ground truth (strict)
 *                                               (only checked here; youtu_vl: the report's NYUv2 ones)
 *     "crop_padding": 1.2,                      box-prompted FG/BG (referring, open-set): the box
 *     "crop_short_side": 1280,                  scaled about its centre, cropped, the box drawn
 *     "crop_box_px": 1,                         (px, 0 = not drawn), the crop resized to this short side
 *     "prompts": { "semantic": "...{classes}...", "semantic_background": "...", "fgbg": "...",
 *                  "depth": "...", "openset": "..." },
 *     "classes": ["sky", ...]                   a closed vocabulary: the class names the model was
 *                                               trained to read out; a semantic query naming another
 *                                               one is logged as a warning. Absent: open vocabulary
 *   }
 * Bin k of n maps to metres as  linear: min + (k - first) * (max - min) / (n - 1)
 *                               log:    min * (max / min) ^ ((k - first) / (n - 1)),
 * i.e. the first and last bins are the range ends (the report gives ranges, not the formula).
 */
#ifndef DMLLM_PROFILE_H
#define DMLLM_PROFILE_H

#include "common.h"

#define DMLLM_PROFILE_FILE "readout_profile.json"
#define DMLLM_MAX_DEPTH_PROFILES 16
#define DMLLM_PROFILE_NAME 48
#define DMLLM_PROFILE_PROMPT 256
#define DMLLM_PROFILE_CLASSES 4096

typedef enum dmllm_depth_scale { DMLLM_DEPTH_LINEAR = 0, DMLLM_DEPTH_LOG } dmllm_depth_scale;

typedef struct dmllm_depth_quantisation {
    char name[DMLLM_PROFILE_NAME];
    dmllm_depth_scale scale;
    double min_m, max_m;
} dmllm_depth_quantisation;

typedef struct dmllm_readout_profile {
    dmllm_alignment alignment;
    char class_name_prefix[8];
    bool first_subtoken_only;
    bool interpolate_probabilities;
    dmllm_semantic_readout semantic_readout;
    bool crf;                                  /* evaluation mode by default (the demo's use_crf) */
    float softmax_temperature, sigmoid_scale, background_level;
    char fg_token[DMLLM_PROFILE_NAME], bg_token[DMLLM_PROFILE_NAME];
    char depth_token_format[DMLLM_PROFILE_NAME];
    int depth_first_bin, depth_bins, depth_upsample;
    int depth_refine_bins;                     /* 0: argmax bin; w: mean bin within w of it */
    char depth_profile[DMLLM_PROFILE_NAME];
    int n_depth_profiles;
    dmllm_depth_quantisation depth_profiles[DMLLM_MAX_DEPTH_PROFILES];
    char prompt_semantic[DMLLM_PROFILE_PROMPT];            /* "{classes}" = the comma-separated list */
    char prompt_semantic_background[DMLLM_PROFILE_PROMPT];
    char prompt_fgbg[DMLLM_PROFILE_PROMPT];
    char prompt_depth[DMLLM_PROFILE_PROMPT];
    char prompt_openset[DMLLM_PROFILE_PROMPT];              /* names the categories as <ref>s;
                                                               "": no discovery, detect all objects */
    float crop_padding;
    int crop_short_side, crop_box_px;
    int n_known_classes;                        /* 0: an open vocabulary */
    char known_classes[DMLLM_PROFILE_CLASSES];  /* n_known_classes NUL-terminated names back to back */
} dmllm_readout_profile;

/* The youtu_vl defaults (see the comment above and readout_profile.json in docs). */
void dmllm_profile_defaults(dmllm_readout_profile *profile);

/* Defaults overridden by model_dir/readout_profile.json when that file exists. */
dmllm_status dmllm_profile_load(const char *model_dir, dmllm_readout_profile *profile);

/* Parses profile JSON text over the values already in *profile; `source` names it in errors. */
dmllm_status dmllm_profile_parse(const char *json, size_t length, const char *source, dmllm_readout_profile *profile);

/* A named depth quantisation, or NULL. */
const dmllm_depth_quantisation *dmllm_profile_depth(const dmllm_readout_profile *profile, const char *name);

/* Whether a class name is in the profile's closed vocabulary (always, when it has none). */
bool dmllm_profile_knows_class(const dmllm_readout_profile *profile, const char *name);

/* Metres of bin k under a quantisation of the profile's bins. */
double dmllm_depth_bin_metres(const dmllm_readout_profile *profile, const dmllm_depth_quantisation *q, double bin);

#endif
