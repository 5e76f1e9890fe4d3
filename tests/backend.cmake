# test_backend again with oneDNN capped at AVX2 (no bf16 matmul) and the portable kernels:
# AUTO must fall back to onednn-f32 and an explicit bf16 request must fail.
add_test(NAME test_backend_avx2 COMMAND test_backend)
set_tests_properties(test_backend_avx2 PROPERTIES TIMEOUT 900
  ENVIRONMENT "${DMLLM_TEST_ENV};ONEDNN_MAX_CPU_ISA=AVX2;DMLLM_MAX_ISA=generic;DMLLM_EXPECT_NO_BF16=1")
