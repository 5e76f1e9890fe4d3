/*
 * test_safetensors.c: lib/safetensors.c reads valid files exactly (every dtype, metadata, scalars,
 * empty tensors, sorted lookup) and rejects malformed ones with the right status and a message
 * naming the file and the problem. Writes only under test_temp_dir().
 */
#include "safetensors.h"
#include "support_safetensors_writer.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int malformed_cases;

static const char *temp_path(const char *name) {
    static char buffer[1024];
    snprintf(buffer, sizeof buffer, "%s/%s", test_temp_dir(), name);
    return buffer;
}

static void test_valid_file(void) {
    float f32[6] = {1.5f, -2.0f, 0.25f, 3.0f, -0.0f, 1e-3f};            /* [2, 3] */
    uint16_t bf16[4] = {0x3f80, 0xc000, 0x3e80, 0x0000};                  /* [4]: 1, -2, 0.25, 0 */
    uint16_t f16[2] = {0x3c00, 0xb800};                                   /* [2]: 1, -0.5 */
    int64_t i64[3] = {-1, 0, INT64_MAX};                                  /* [3] */
    int32_t i32[1] = {42};                                                /* scalar */
    uint8_t u8[5] = {1, 2, 3, 4, 5};                                      /* [5, 1] */
    const stw_tensor tensors[] = {
        {"z.weight", DMLLM_DTYPE_F32, 2, {2, 3}, f32},
        {"a.bf16", DMLLM_DTYPE_BF16, 1, {4}, bf16},
        {"m.f16", DMLLM_DTYPE_F16, 1, {2}, f16},
        {"b.i64", DMLLM_DTYPE_I64, 1, {3}, i64},
        {"scalar", DMLLM_DTYPE_I32, 0, {0}, i32},
        {"c.u8", DMLLM_DTYPE_U8, 2, {5, 1}, u8},
        {"empty", DMLLM_DTYPE_F32, 2, {0, 7}, NULL},
    };
    const int n = (int)(sizeof tensors / sizeof tensors[0]);
    const char *path = temp_path("valid.safetensors");
    CHECK(stw_write_file(path, tensors, n, "{\"format\": \"pt\", \"note\": \"x\"}") == 0);

    dmllm_safetensors *file = NULL;
    CHECK_OK(dmllm_safetensors_open(path, &file));
    if (!file) return;
    CHECK(dmllm_safetensors_count(file) == n);
    for (int i = 1; i < n; i++) CHECK(strcmp(dmllm_safetensors_at(file, i - 1)->name, dmllm_safetensors_at(file, i)->name) < 0);
    CHECK(dmllm_safetensors_at(file, -1) == NULL);
    CHECK(dmllm_safetensors_at(file, n) == NULL);
    CHECK(dmllm_safetensors_find(file, "__metadata__") == NULL);
    CHECK(dmllm_safetensors_find(file, "absent") == NULL);
    CHECK(dmllm_safetensors_find(file, "z.weigh") == NULL);

    for (int i = 0; i < n; i++) {
        const dmllm_tensor *t = dmllm_safetensors_find(file, tensors[i].name);
        CHECK_MSG(t != NULL, "tensor %s not found", tensors[i].name);
        if (!t) continue;
        CHECK(strcmp(t->name, tensors[i].name) == 0);
        CHECK(t->dtype == tensors[i].dtype);
        CHECK(t->ndim == tensors[i].ndim);
        int64_t elements = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == tensors[i].shape[d]);
            elements *= tensors[i].shape[d];
        }
        CHECK(t->n_elements == elements);
        CHECK(t->n_bytes == (size_t)elements * dmllm_dtype_size(t->dtype));
        if (t->n_bytes) CHECK_MSG(memcmp(t->data, tensors[i].data, t->n_bytes) == 0, "data of %s differs", t->name);
    }
    const dmllm_tensor *bf = dmllm_safetensors_find(file, "a.bf16");
    float converted[4];
    if (bf) {
        dmllm_convert_to_f32(bf->dtype, bf->data, converted, 4);
        CHECK(converted[0] == 1.0f && converted[1] == -2.0f && converted[2] == 0.25f && converted[3] == 0.0f);
    }
    dmllm_safetensors_close(file);
}

static void test_empty_header(void) {
    const char *path = temp_path("no_tensors.safetensors");
    CHECK(stw_write_raw(path, 8, "{}      ", NULL, 0) == 0);
    dmllm_safetensors *file = NULL;
    CHECK_OK(dmllm_safetensors_open(path, &file));
    CHECK(dmllm_safetensors_count(file) == 0);
    CHECK(dmllm_safetensors_find(file, "x") == NULL);
    dmllm_safetensors_close(file);
}

/* Writes header + data_size bytes of data and expects opening to fail with status and a message
 * containing the file name and every given fragment. */
static void expect_failure(const char *case_name, uint64_t header_length, const char *header, size_t data_size,
                           dmllm_status expected, const char *fragment1, const char *fragment2) {
    malformed_cases++;
    char name[128];
    snprintf(name, sizeof name, "%s.safetensors", case_name);
    const char *path = temp_path(name);
    uint8_t *data = calloc(data_size ? data_size : 1, 1); /* [data_size] */
    CHECK(stw_write_raw(path, header_length, header, data, data_size) == 0);
    free(data);
    dmllm_safetensors *file = (dmllm_safetensors *)1;
    dmllm_status status = dmllm_safetensors_open(path, &file);
    const char *message = dmllm_last_error();
    CHECK_MSG(status == expected, "%s: status %d, expected %d (%s)", case_name, status, expected, message);
    CHECK_MSG(file == NULL, "%s: output not cleared", case_name);
    CHECK_MSG(strstr(message, name) != NULL, "%s: message does not name the file: %s", case_name, message);
    CHECK_MSG(!fragment1 || strstr(message, fragment1), "%s: message lacks \"%s\": %s", case_name, fragment1, message);
    CHECK_MSG(!fragment2 || strstr(message, fragment2), "%s: message lacks \"%s\": %s", case_name, fragment2, message);
    if (status == DMLLM_OK) dmllm_safetensors_close(file);
}

static void expect_header_failure(const char *case_name, const char *header, size_t data_size, dmllm_status expected,
                                  const char *fragment1, const char *fragment2) {
    expect_failure(case_name, strlen(header), header, data_size, expected, fragment1, fragment2);
}

static void test_short_files(void) {
    malformed_cases++;
    const char *path = temp_path("empty.safetensors");
    CHECK(test_write_file(path, "", 0) == 0);
    dmllm_safetensors *file = NULL;
    CHECK_STATUS(dmllm_safetensors_open(path, &file), DMLLM_ERR_FORMAT);
    CHECK(strstr(dmllm_last_error(), "empty.safetensors") && strstr(dmllm_last_error(), "too short"));

    malformed_cases++;
    path = temp_path("seven.safetensors");
    CHECK(test_write_file(path, "\x02\0\0\0\0\0\0", 7) == 0);
    CHECK_STATUS(dmllm_safetensors_open(path, &file), DMLLM_ERR_FORMAT);
    CHECK(strstr(dmllm_last_error(), "seven.safetensors") && strstr(dmllm_last_error(), "7 bytes"));

    malformed_cases++;
    CHECK_STATUS(dmllm_safetensors_open(temp_path("does_not_exist.safetensors"), &file), DMLLM_ERR_IO);
    CHECK(strstr(dmllm_last_error(), "does_not_exist.safetensors") != NULL);
    CHECK(file == NULL);
    CHECK_STATUS(dmllm_safetensors_open(test_temp_dir(), &file), DMLLM_ERR_IO);
}

/* A header length within the file but above the 100 MB sanity limit (a sparse file, no disk use). */
static void test_header_over_limit(void) {
    malformed_cases++;
    const char *path = temp_path("huge_header.safetensors");
    const uint64_t length = ((uint64_t)100 << 20) + 1;
    CHECK(stw_write_raw(path, length, "{", NULL, 0) == 0);
    CHECK(truncate(path, (off_t)(length + 8 + 64)) == 0);
    dmllm_safetensors *file = NULL;
    CHECK_STATUS(dmllm_safetensors_open(path, &file), DMLLM_ERR_FORMAT);
    CHECK(strstr(dmllm_last_error(), "huge_header.safetensors") && strstr(dmllm_last_error(), "header length 104857601"));
    CHECK(file == NULL);
}

static void test_malformed_headers(void) {
    /* Header length field versus file size. */
    expect_failure("length_past_end", 64, "{}", 0, DMLLM_ERR_FORMAT, "header length 64", NULL);
    expect_failure("length_absurd", (uint64_t)1 << 63, "{}", 0, DMLLM_ERR_FORMAT, "header length 9223372036854775808", NULL);

    /* JSON structure. */
    expect_header_failure("not_json", "{\"a\": {\"dtype\": \"F32\",", 0, DMLLM_ERR_FORMAT, "not valid JSON", NULL);
    expect_header_failure("not_object", "[1, 2, 3]", 0, DMLLM_ERR_FORMAT, "not a JSON object", NULL);
    expect_header_failure("trailing_junk", "{} xyz", 0, DMLLM_ERR_FORMAT, "trailing bytes", NULL);
    expect_header_failure("entry_not_object", "{\"w\": 5}", 0, DMLLM_ERR_FORMAT, "\"w\"", "not an object");
    expect_header_failure("no_dtype", "{\"w.a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, DMLLM_ERR_FORMAT,
                          "\"w.a\"", "no dtype");
    expect_header_failure("no_shape", "{\"w.b\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, DMLLM_ERR_FORMAT,
                          "\"w.b\"", "no shape");
    expect_header_failure("no_offsets", "{\"w.c\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, DMLLM_ERR_FORMAT, "\"w.c\"",
                          "no data_offsets");
    expect_header_failure("metadata_not_strings", "{\"__metadata__\": {\"format\": 1}}", 0, DMLLM_ERR_FORMAT,
                          "__metadata__", "\"format\"");

    /* dtype and shape. */
    expect_header_failure("unknown_dtype", "{\"w.fp8\": {\"dtype\": \"F8_E4M3\", \"shape\": [4], \"data_offsets\": [0, 4]}}", 4,
                          DMLLM_ERR_UNSUPPORTED, "F8_E4M3", "\"w.fp8\"");
    expect_header_failure("negative_dim", "{\"w.neg\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 0]}}", 0,
                          DMLLM_ERR_FORMAT, "\"w.neg\"", "dimension 1");
    expect_header_failure("fractional_dim", "{\"w.frac\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4,
                          DMLLM_ERR_FORMAT, "\"w.frac\"", "dimension 0");
    expect_header_failure("too_many_dims",
                          "{\"w.9d\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1,
                          DMLLM_ERR_UNSUPPORTED, "\"w.9d\"", "9 dimensions");
    expect_header_failure("shape_overflow",
                          "{\"w.big\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 4,
                          DMLLM_ERR_FORMAT, "\"w.big\"", "overflow");

    /* Byte ranges. */
    expect_header_failure("byte_count_mismatch", "{\"w.n\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 16,
                          DMLLM_ERR_FORMAT, "\"w.n\"", "byte count mismatch");
    expect_header_failure("offsets_past_end", "{\"w.t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 12,
                          DMLLM_ERR_FORMAT, "\"w.t\"", "past the end");
    expect_header_failure("begin_after_end", "{\"w.r\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8,
                          DMLLM_ERR_FORMAT, "\"w.r\"", "begin > end");
    expect_header_failure("offsets_not_pair", "{\"w.p\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 8,
                          DMLLM_ERR_FORMAT, "\"w.p\"", "data_offsets");
    expect_header_failure("negative_offset", "{\"w.m\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 8,
                          DMLLM_ERR_FORMAT, "\"w.m\"", "data_offsets");
    expect_header_failure("overlap",
                          "{\"w.one\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                          " \"w.two\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                          12, DMLLM_ERR_FORMAT, "overlapping", "\"w.one\"");
    expect_header_failure("duplicate",
                          "{\"w.dup\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                          " \"w.dup\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                          8, DMLLM_ERR_FORMAT, "duplicate", "\"w.dup\"");
}

/* Zero-byte tensors may share an offset with anything; that is not an overlap. */
static void test_empty_tensors_do_not_overlap(void) {
    const char *path = temp_path("zero_sized.safetensors");
    const char *header = "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]},"
                         " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                         " \"c\": {\"dtype\": \"I64\", \"shape\": [4294967296, 0, 4294967296], \"data_offsets\": [8, 8]}}";
    uint8_t data[8] = {0};
    CHECK(stw_write_raw(path, strlen(header), header, data, sizeof data) == 0);
    dmllm_safetensors *file = NULL;
    CHECK_OK(dmllm_safetensors_open(path, &file));
    CHECK(dmllm_safetensors_count(file) == 3);
    const dmllm_tensor *c = dmllm_safetensors_find(file, "c");
    CHECK(c && c->ndim == 3 && c->n_elements == 0 && c->n_bytes == 0 && c->shape[2] == 4294967296LL);
    dmllm_safetensors_close(file);
}

int main(void) {
    test_valid_file();
    test_empty_header();
    test_empty_tensors_do_not_overlap();
    test_short_files();
    test_header_over_limit();
    test_malformed_headers();
    printf("test_safetensors: %d malformed cases\n", malformed_cases);
    CHECK(malformed_cases >= 20);
    return test_finish("test_safetensors");
}
