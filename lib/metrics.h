/*
 * metrics.h: internals of metrics.c (the evaluation accumulators of the public header).
 */
#ifndef DMLLM_METRICS_H
#define DMLLM_METRICS_H

#include "common.h"

/* Rows [*y0, *y1) and columns [*x0, *x1) a depth crop keeps on a gt_w x gt_h map. The Eigen crop
 * is defined on 480 x 640 NYUv2 ground truth only; other sizes fail with DMLLM_ERR_SHAPE. */
dmllm_status dmllm_depth_crop_rect(dmllm_depth_crop crop, int gt_w, int gt_h, int *y0, int *y1, int *x0, int *x1);

#endif
