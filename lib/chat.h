/*
 * chat.h: the chat layout of Youtu-VL (model-spec 4.8, 2.6) as text: turns, the default system
 * turn, image blocks before or after a turn's text, the assistant's generation prompt. The one
 * place that knows the layout; dense.c, generation and the task helpers build prompts through it.
 */
#ifndef DMLLM_CHAT_H
#define DMLLM_CHAT_H

#include "common.h"

/* Renders messages as the chat template does, each image expanded to <|vision_start|>,
 * n_image_tokens x <|image_pad|>, <|vision_end|> (as the processor does). *out_text is malloc'ed
 * and NUL-terminated; *out_length = strlen. image_span (may be NULL) gets the byte offsets of the
 * last image block: [0] at its <|vision_start|>, [1] just past its <|vision_end|>; both 0 when there
 * is no image. Text [0, span[1]) is what an "encode once, query many" prefix holds. */
dmllm_status dmllm_chat_render(const dmllm_chat_message *messages, int n_messages, bool add_generation_prompt,
                               int n_image_tokens, char **out_text, size_t *out_length, size_t image_span[2]);

#endif
