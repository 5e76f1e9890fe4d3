/*
 * fuzz_support.h: what every libFuzzer harness of tests/fuzz shares: a quiet log, inputs copied
 * to NUL-terminated text, and one scratch directory per process for parsers that only take a path.
 */
#ifndef DMLLM_FUZZ_SUPPORT_H
#define DMLLM_FUZZ_SUPPORT_H
#include <stddef.h>
#include <stdint.h>

/* Silences the library log (every rejected input would print a warning) and makes the scratch
 * directory; cheap after the first call, so harnesses call it at every input. Aborts if the
 * directory cannot be made. */
void fuzz_init(void);
/* The input as a malloc'ed NUL-terminated string (an embedded NUL ends the text early, as it
 * would for any C caller). Aborts on out of memory: that is the harness's fault, not a finding. */
char *fuzz_text(const uint8_t *data, size_t size);
/* dir/name inside the scratch directory, in a static buffer. */
const char *fuzz_path(const char *name);
/* Replaces the file at fuzz_path(name) with the input; aborts on I/O errors. */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);
/* The source tree (DMLLM_SOURCE_DIR, compiled in) joined with a relative path, in a static buffer. */
const char *fuzz_source_path(const char *relative);
#endif
