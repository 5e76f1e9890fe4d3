/*
 * image.h: the decoded 8-bit RGB image behind the public dmllm_image handle, and the decoders
 * (JPEG with EXIF orientation, PNG of every colour type and depth). Decoding only: no resizing.
 */
#ifndef DMLLM_IMAGE_H
#define DMLLM_IMAGE_H

#include "common.h"

#include <png.h>

struct dmllm_image {
    int width, height;
    uint8_t *pixels;   /* [height][width][3] */
};

/* Largest image decoded, resized or allocated: 2^28 pixels (768 MiB of RGB). Larger ones fail with
 * DMLLM_ERR_UNSUPPORTED before any pixel memory is allocated. */
#define DMLLM_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* Allocates an image with uninitialised pixels: DMLLM_ERR_FORMAT for an empty size,
 * DMLLM_ERR_UNSUPPORTED above DMLLM_IMAGE_MAX_PIXELS. */
dmllm_status dmllm_image_alloc(int width, int height, dmllm_image **out);

/* libpng callbacks of every PNG reader and writer of the library (image.c, render.c,
 * annotation.c): the error pointer given to png_create_*_struct is a char[DMLLM_PNG_MESSAGE] that
 * receives libpng's message before the longjmp; warnings go to the debug log. */
enum { DMLLM_PNG_MESSAGE = 200 };
void dmllm_png_on_error(png_structp png, png_const_charp message);
void dmllm_png_on_warning(png_structp png, png_const_charp message);

#endif
