/*
 * support_images.h: what test_image.c and test_preprocess.c share: the 64-bit FNV-1a hash that
 * tests/fixtures/images/expected.txt uses, path resolution of its file references, and loading
 * the images they name. Test-only; touches nothing outside the test.
 */
#ifndef DMLLM_SUPPORT_IMAGES_H
#define DMLLM_SUPPORT_IMAGES_H

#include "densemllm.h"

#include <stddef.h>
#include <stdint.h>

uint64_t image_fnv1a64(const uint8_t *data, size_t size);
/* Hash of an image's RGB bytes (0 for NULL). */
uint64_t image_hash(const dmllm_image *image);
/* "fixtures/<name>" -> tests/fixtures/images/<name>; "shared/<path>" -> ../shared/<path>. */
const char *image_fixture_path(const char *file);
/* The text of tests/fixtures/images/expected.txt (malloc'd, NUL-terminated) or NULL. */
char *image_expected_text(void);

#endif
