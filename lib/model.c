/*
 * model.c: the public model functions: load a checkpoint directory, pack every stage's weights
 * once, describe the model. After loading, the model is never written again.
 */
#include "model.h"
#include "packcache.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void dmllm_model_params_init(dmllm_model_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->compute = DMLLM_COMPUTE_AUTO;
}

size_t dmllm_model_params_sizeof(void) { return sizeof(dmllm_model_params); }

void dmllm_model_free(dmllm_model *model) {
    if (!model) return;
    dmllm_llm_free(model->llm);
    dmllm_merger_free(model->merger);
    dmllm_vision_free(model->vision);
    dmllm_pack_cache_free(model->pack_cache); /* after the linears pointing into it */
    dmllm_backend_free(model->backend);
    dmllm_checkpoint_close(model->checkpoint);
    dmllm_tokenizer_free(model->tokenizer);
    free(model);
}

/* DIR/tokenizer.json when present; a model without one still runs on token ids. */
static dmllm_status load_tokenizer(const char *model_dir, dmllm_tokenizer **out) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", model_dir) >= sizeof path)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "model directory path is too long");
    struct stat st;
    if (stat(path, &st) != 0) return DMLLM_OK;
    return dmllm_tokenizer_load(path, out);
}

/* Packs the three stages' weights; "load" progress counts the checkpoint plus each stage. */
static dmllm_status pack_stages(dmllm_model *model, const dmllm_progress *progress) {
    DMLLM_TRY(dmllm_progress_report(progress, "load", 1, 4));
    DMLLM_TRY(dmllm_vision_load(model->backend, model->checkpoint, &model->vision));
    DMLLM_TRY(dmllm_progress_report(progress, "load", 2, 4));
    DMLLM_TRY(dmllm_merger_load(model->backend, model->checkpoint, &model->merger));
    DMLLM_TRY(dmllm_progress_report(progress, "load", 3, 4));
    DMLLM_TRY(dmllm_llm_load(model->backend, model->checkpoint, &model->llm));
    return dmllm_progress_report(progress, "load", 4, 4);
}

/* Packs the weights, or maps them from the packed-weight cache (writing it when it misses). */
static dmllm_status pack_weights(dmllm_model *model, const dmllm_model_params *params,
                                 const dmllm_progress *progress) {
    DMLLM_TRY(dmllm_backend_create_with_weights(params->compute, params->weights, &model->backend));
    char key[512];
    DMLLM_TRY(dmllm_backend_cache_key(model->backend, key, sizeof key));
    model->pack_cache =
        dmllm_pack_cache_open(params->cache_dir, dmllm_checkpoint_dir(model->checkpoint), key,
                              dmllm_checkpoint_identity(model->checkpoint));
    dmllm_backend_set_pack_cache(model->backend, model->pack_cache);
    const dmllm_status status = pack_stages(model, progress);
    dmllm_backend_set_pack_cache(model->backend, NULL);
    if (status != DMLLM_OK) return status;
    dmllm_pack_cache_commit(model->pack_cache);
    if (!dmllm_pack_cache_is_mapped(model->pack_cache)) {
        /* Written (or unusable): the linears own their packed bytes; none points into it. */
        dmllm_pack_cache_free(model->pack_cache);
        model->pack_cache = NULL;
    }
    return DMLLM_OK;
}

dmllm_status dmllm_model_load(const char *model_dir, const dmllm_model_params *params, dmllm_model **out_model) {
    if (!out_model) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_model_load: out_model is NULL");
    *out_model = NULL;
    if (!model_dir) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_model_load: model_dir is NULL");
    dmllm_model_params p;
    dmllm_model_params_init(&p);
    if (params) DMLLM_TRY(dmllm_copy_versioned(&p, sizeof p, params, "dmllm_model_params"));
    if (p.compute < DMLLM_COMPUTE_AUTO || p.compute > DMLLM_COMPUTE_OPENBLAS)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_model_params.compute = %d is not a dmllm_compute_type",
                          (int)p.compute);
    if (p.weights < DMLLM_WEIGHTS_AUTO || p.weights > DMLLM_WEIGHTS_INT8)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_model_params.weights = %d is not a dmllm_weights_type",
                          (int)p.weights);

    if (p.memory_limit_bytes < 0)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_model_params.memory_limit_bytes = %lld; 0 (none) or more",
                          (long long)p.memory_limit_bytes);

    dmllm_model *model = calloc(1, sizeof *model);
    if (!model) return dmllm_fail(DMLLM_ERR_OUT_OF_MEMORY, "out of memory allocating the model");
    model->memory_limit_bytes = p.memory_limit_bytes;
    dmllm_progress progress = {p.progress, p.progress_user_data};
    dmllm_status status = dmllm_checkpoint_open(model_dir, &model->checkpoint);
    if (status == DMLLM_OK) {
        model->config = dmllm_checkpoint_config(model->checkpoint);
        status = dmllm_profile_load(model_dir, &model->profile);
    }
    if (status == DMLLM_OK) status = load_tokenizer(model_dir, &model->tokenizer);
    if (status == DMLLM_OK) status = dmllm_progress_report(&progress, "load", 0, 4);
    if (status == DMLLM_OK && !p.check_only) {
        int saved_threads = omp_get_max_threads();
        omp_set_num_threads(dmllm_resolve_threads(p.n_threads));
        status = pack_weights(model, &p, &progress);
        omp_set_num_threads(saved_threads);
    }
    if (status != DMLLM_OK) {
        dmllm_model_free(model);
        return dmllm_fail_context(status, "loading %s", model_dir);
    }
    dmllm_log(DMLLM_LOG_INFO, "loaded %s (%s, %s weights, %lld parameters)", model_dir,
              model->backend ? dmllm_backend_name(model->backend) : "check only",
              model->backend ? dmllm_backend_weights_name(model->backend) : "no",
              (long long)dmllm_checkpoint_n_params(model->checkpoint));
    *out_model = model;
    return DMLLM_OK;
}

dmllm_status dmllm_model_get_info(const dmllm_model *model, dmllm_model_info *info) {
    if (!model || !info) return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "dmllm_model_get_info: NULL argument");
    dmllm_model_info full;
    memset(&full, 0, sizeof full);
    /* The caller's struct may be older (shorter) than ours: fill ours, then copy its size back. */
    DMLLM_TRY(dmllm_check_versioned_out(info, sizeof full, "dmllm_model_info"));
    const uint32_t caller_size = info->struct_size;
    const dmllm_config *c = model->config;
    full.struct_size = caller_size;
    full.architecture = c->architecture;
    full.compute = model->backend ? dmllm_backend_name(model->backend) : "none";
    full.weights = model->backend ? dmllm_backend_weights_name(model->backend) : "none";
    full.model_dir = dmllm_checkpoint_dir(model->checkpoint);
    full.n_params = dmllm_checkpoint_n_params(model->checkpoint);
    full.vocab_size = c->text.vocab_size;
    full.text_hidden_size = c->text.hidden_size;
    full.text_layers = c->text.num_layers;
    full.text_heads = c->text.num_heads;
    full.vision_hidden_size = c->vision.hidden_size;
    full.vision_layers = c->vision.num_layers;
    full.vision_heads = c->vision.num_heads;
    full.patch_size = c->vision.patch_size;
    full.spatial_merge_size = c->vision.spatial_merge_size;
    full.image_token_id = c->image_token_id;
    full.vision_start_token_id = c->vision_start_token_id;
    full.vision_end_token_id = c->vision_end_token_id;
    full.bos_token_id = c->bos_token_id;
    full.eos_token_id = c->eos_token_id;
    full.text_intermediate_size = c->text.intermediate_size;
    full.vision_intermediate_size = c->vision.intermediate_size;
    full.q_lora_rank = c->text.q_lora_rank;
    full.kv_lora_rank = c->text.kv_lora_rank;
    full.qk_nope_head_dim = c->text.qk_nope_head_dim;
    full.qk_rope_head_dim = c->text.qk_rope_head_dim;
    full.v_head_dim = c->text.v_head_dim;
    full.rope_theta = c->text.rope_theta;
    const dmllm_tensor *embed = dmllm_checkpoint_tensor(model->checkpoint, "model.embed_tokens.weight");
    snprintf(full.weights_dtype, sizeof full.weights_dtype, "%s", embed ? dmllm_dtype_name(embed->dtype) : "?");
    memcpy(info, &full, caller_size);
    return DMLLM_OK;
}
