/*
 * config.h: the model hyper-parameters read from a Hugging Face config.json (model-spec 1.2):
 * LLM keys at the root, the vision tower in a nested "vision_config". Parsing only; it does not
 * touch tensors.
 */
#ifndef DMLLM_CONFIG_H
#define DMLLM_CONFIG_H

#include "common.h"

#define DMLLM_MAX_FULLATT_BLOCKS 64
#define DMLLM_MAX_EOS_IDS 16

typedef struct dmllm_text_config {
    int hidden_size;          /* 2560 */
    int intermediate_size;    /* 9728 */
    int num_layers;           /* 40 */
    int num_heads;            /* 32 */
    int q_lora_rank;          /* 1536 */
    int kv_lora_rank;         /* 512 */
    int qk_nope_head_dim;     /* 128 */
    int qk_rope_head_dim;     /* 64 */
    int v_head_dim;           /* 128 */
    int vocab_size;           /* 283386 */
    int max_position_embeddings;
    float rms_norm_eps;       /* 1e-6 */
    double rope_theta;        /* from the file; 500000 expected */
    bool tie_word_embeddings; /* must be true for youtu_vl */
} dmllm_text_config;

typedef struct dmllm_vision_config {
    int hidden_size;          /* 1152 */
    int intermediate_size;    /* 4304 */
    int num_layers;           /* 27 */
    int num_heads;            /* 16 (head_dim 72) */
    int num_channels;         /* 3 */
    int patch_size;           /* 16 */
    int spatial_merge_size;   /* 2 */
    int window_size;          /* 256 pixels */
    int out_hidden_size;      /* = text hidden_size */
    float layer_norm_eps;     /* 1e-6 */
    int n_fullatt_blocks;
    int fullatt_block_indexes[DMLLM_MAX_FULLATT_BLOCKS]; /* {7, 15, 23, 26} */
} dmllm_vision_config;

typedef struct dmllm_config {
    char architecture[96];    /* "YoutuVLForConditionalGeneration" */
    char model_type[32];      /* "youtu_vl" */
    dmllm_text_config text;
    dmllm_vision_config vision;
    int image_token_id, video_token_id, vision_start_token_id, vision_end_token_id;
    int bos_token_id, eos_token_id, pad_token_id; /* eos_token_id: the first of eos_token_ids */
    int n_eos_token_ids;                  /* 1 for a number, the list's length for a list */
    int eos_token_ids[DMLLM_MAX_EOS_IDS]; /* every id that ends generation by default */
} dmllm_config;

/* Parses and validates config.json text. Unknown architectures and missing or out-of-range keys
 * fail with a message naming the key. */
dmllm_status dmllm_config_parse(const char *json, size_t length, dmllm_config *out);

/* Vision window side in merged tokens: window_size / merge / patch (8 for Youtu-VL). */
int dmllm_config_window_tokens(const dmllm_vision_config *vision);

#endif
