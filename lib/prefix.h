/*
 * prefix.h: the image prefix shared by the task layers (dense.c, tasks.c): the chat text up to and
 * including the image block, evaluated once and reused by later queries on the same image
 * ("encode once, query many"). Works on a session through its API and session.h only.
 */
#ifndef DMLLM_PREFIX_H
#define DMLLM_PREFIX_H

#include "session.h"

typedef struct dmllm_prefix_info {
    bool reused;             /* the session already held this prefix */
    int length;              /* positions of the prefix */
    double seconds_encode;   /* vision tower + merger (0 when reused) */
    double seconds_prefill;  /* LLM over the prefix (0 when reused) */
} dmllm_prefix_info;

/* Makes the context hold exactly the prefix of a one-image user turn: the default system turn, the
 * user header, instruction_first when the instruction precedes the image (NULL: the image comes
 * first, the official layout), then the image block. Evaluated positions after a reused prefix are
 * dropped. Needs the model's tokenizer. */
dmllm_status dmllm_prefix_ensure(dmllm_session *session, const dmllm_image *image, const char *instruction_first,
                                 dmllm_prefix_info *info);

/* Ids of what follows the prefix of that turn up to the assistant's reply: the instruction (image
 * first; nothing when it precedes the image), the end of the turn, the assistant's header. Without
 * an image the whole conversation, system turn included. *ids is malloc'ed. */
dmllm_status dmllm_prefix_reply_ids(const dmllm_model *model, const char *instruction, bool has_image,
                                    dmllm_prompt_layout layout, int32_t **ids, size_t *n_ids);

#endif
