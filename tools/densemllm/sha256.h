/* sha256.h: SHA-256 (FIPS 180-4) of a file, to recognise official checkpoint files. */
#ifndef DMLLM_CLI_SHA256_H
#define DMLLM_CLI_SHA256_H

/* Writes the 64-character lowercase hex digest of the file at path; returns 0, or -1 if unreadable. */
int sha256_file_hex(const char *path, char hex[65]);

#endif
