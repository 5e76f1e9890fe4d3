/*
 * pipeline.h: internals of pipeline.c (box-prompted segmentation), exposed for the tests, which
 * check each published crop rule pixel by pixel (the tiny model's masks cannot show a column).
 */
#ifndef DMLLM_PIPELINE_H
#define DMLLM_PIPELINE_H

#include "densemllm.h"

/* The crop rectangle of a box (x0, y0, x1, y1, original pixels) under params->padding and
 * params->variant, clamped to width x height; rect's far edges are exclusive. */
void dmllm_crop_rect(const int box[4], const dmllm_crop_params *params, int width, int height, int rect[4]);

/* The image inside rect with the box outline drawn (params->box_px wide, params->box_rgb). */
dmllm_status dmllm_crop_with_box(const dmllm_image *image, const int rect[4], const int box[4],
                                 const dmllm_crop_params *params, dmllm_image **out);

#endif
