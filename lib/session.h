/*
 * session.h: what the task layers (dense.c, generation) need of a session beyond the public API:
 * its model and parameters, a call scope for work they do between public calls, and a tag that
 * names what the context holds from position 0, so a later call can reuse an encoded image prefix,
 * and the token ids the context holds.
 * The session itself stays private to session.c.
 */
#ifndef DMLLM_SESSION_H
#define DMLLM_SESSION_H

#include "model.h"

const dmllm_model *dmllm_session_model(const dmllm_session *session);
const dmllm_session_params *dmllm_session_get_params(const dmllm_session *session);

/* Grid of the most recently evaluated image (the one dmllm_session_image_logits reads), or NULL. */
const dmllm_image_grid *dmllm_session_evaluated_grid(const dmllm_session *session);

/* dmllm_session_encode_image for a prompt of n_text tokens besides the image's: fails with
 * DMLLM_ERR_CONTEXT_FULL before any vision work when image and text cannot fit the context. */
dmllm_status dmllm_session_encode_for_prompt(dmllm_session *session, const dmllm_image *image, int n_text);

/* dmllm_check_memory under the session's memory_limit_bytes, with what it holds between calls:
 * for a task layer's own buffers (needed bytes plus an allowance for small blocks). */
dmllm_status dmllm_session_check_memory(const dmllm_session *session, const char *stage,
                                        size_t needed);

/* Brackets a public call made of several steps: sets the session's thread count (restored by
 * leave) and keeps a failure's message in the session. */
int dmllm_session_enter(dmllm_session *session);
dmllm_status dmllm_session_leave(dmllm_session *session, int saved_threads, dmllm_status status);
/* Keeps the message of a failure found before enter (an argument check) in the session, so that
 * dmllm_session_errmsg() tells it as the header promises; session may be NULL. */
dmllm_status dmllm_session_reject(dmllm_session *session, dmllm_status status);

/* The tag a task layer gave to the first prefix_length positions of the context, or 0 when none
 * or when they have changed since (truncation into them, another image evaluated, a new KV state). */
uint64_t dmllm_session_prefix_tag(const dmllm_session *session);
int dmllm_session_prefix_length(const dmllm_session *session);
void dmllm_session_set_prefix_tag(dmllm_session *session, uint64_t tag, int prefix_length);

/* The ids of the context, [dmllm_session_n_past()] (image tokens as image_token_id): what
 * generation's repetition penalty runs over, as Hugging Face's does over input_ids. */
const int32_t *dmllm_session_context_ids(const dmllm_session *session);

#endif
