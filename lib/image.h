/*
 * image.h: the decoded 8-bit RGB image behind the public dmllm_image handle, and the decoders
 * (JPEG with EXIF orientation, PNG of every colour type and depth). Decoding only: no resizing.
 */
#ifndef DMLLM_IMAGE_H
#define DMLLM_IMAGE_H

#include "common.h"

struct dmllm_image {
    int width, height;
    uint8_t *pixels;   /* [height][width][3] */
};

/* Allocates an image with uninitialised pixels. */
dmllm_status dmllm_image_alloc(int width, int height, dmllm_image **out);

#endif
