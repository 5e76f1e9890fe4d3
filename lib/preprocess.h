/*
 * preprocess.h: model-spec section 2 after decoding: target size, the antialiased bilinear resize
 * (hf and pillow variants), normalisation through a 256-entry table and the 2x2-merge-block patch
 * order with (py, px, c) features. Reads an image, writes pixel values; nothing else.
 */
#ifndef DMLLM_PREPROCESS_H
#define DMLLM_PREPROCESS_H

#include "image.h"

/* pixel_values[gh*gw][3*patch*patch] from an image whose sides are multiples of 2*patch:
 * gh = height/patch, gw = width/patch. */
dmllm_status dmllm_pixel_values(const dmllm_image *resized, int patch_size, float *pixel_values);

/* Upper bound of the bytes dmllm_image_resize allocates from in_width x in_height to width x height
 * with the calling thread's thread count, the result included. */
size_t dmllm_image_resize_bytes(int in_width, int in_height, int width, int height);

#endif
