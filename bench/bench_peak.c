/*
 * bench_peak.c: the machine's arithmetic peak and memory read bandwidth, measured, so that
 * bench/run_full.py can state the library's GFLOP/s as a share of what the cores can do and its
 * decode rate against what the memory can feed. Peaks come from register-only loops (independent
 * accumulator chains, no loads or stores inside the loop) of one instruction each:
 *   AVX-512 FMA f32 (vfmadd231ps, 32 flop), AVX512-BF16 vdpbf16ps (64 flop), AVX512-VNNI
 *   vpdpbusd (128 int8 ops), and AMX tdpbf16ps (16384 flop) / tdpbssd (32768 ops) when CPUID
 *   reports AMX and the kernel grants the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM).
 * An instruction set the CPU lacks is printed as null (JSON) / "n/a" (text). The read bandwidth is
 * a streaming read of a buffer much larger than the last-level cache, every thread its own slice.
 * Each figure is the best of a few runs (other processes only ever make a run slower).
 * Usage: bench_peak [--json] [--read]   (threads from OMP_NUM_THREADS, default all cores)
 * --read measures the read bandwidth alone (a second or two), e.g. right before each timed run.
 */
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum {
    CHAINS = 16,        /* independent accumulators: more than latency x issue width of any core */
    RUNS = 10,          /* best of */
    ARCH_REQ_XCOMP_PERM = 0x1023,
    XFEATURE_XTILEDATA = 18,
};
#define READ_BYTES ((size_t)1 << 30) /* 1 GiB: >= 32x the LLC of current server parts */

/* CPU time of the calling thread. */
static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Sink for the accumulators, so that no loop can be removed as dead. */
static volatile float sink_f32;
static volatile int32_t sink_i32;

/* One loop: CHAINS accumulators x iterations, each step one instruction per chain. */
__attribute__((target("avx512f"))) static void loop_fma_f32(long iterations) {
    __m512 acc[CHAINS];
    const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iterations; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    __m512 sum = acc[0];
    for (int c = 1; c < CHAINS; c++) sum = _mm512_add_ps(sum, acc[c]);
    sink_f32 = _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f,avx512bf16"))) static void loop_dpbf16(long iterations) {
    __m512 acc[CHAINS];
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iterations; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
    __m512 sum = acc[0];
    for (int c = 1; c < CHAINS; c++) sum = _mm512_add_ps(sum, acc[c]);
    sink_f32 = _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f,avx512vnni"))) static void loop_dpbusd(long iterations) {
    __m512i acc[CHAINS];
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
    for (long i = 0; i < iterations; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
    __m512i sum = acc[0];
    for (int c = 1; c < CHAINS; c++) sum = _mm512_add_epi32(sum, acc[c]);
    sink_i32 = _mm512_reduce_add_epi32(sum);
}

/* AMX palette 1: 8 tiles; all are configured 16 rows x 64 bytes. */
typedef struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Configures all 8 tiles as 16 rows x 64 bytes, zeroes the accumulators 0-3 and loads the sources
 * 4-7 (once, from memory: the loops that follow touch only tiles). */
__attribute__((target("amx-tile"))) static void amx_setup(void) {
    uint8_t source[16 * 64]; /* [16 rows][64 bytes]: bf16 0x3f3f = 0.746, or int8 63 */
    memset(source, 0x3f, sizeof source);
    tile_config cfg = {.palette_id = 1};
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
    _tile_zero(0); /* the tile intrinsics take literal tile numbers */
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, source, 64);
    _tile_loadd(5, source, 64);
    _tile_loadd(6, source, 64);
    _tile_loadd(7, source, 64);
}

/* Stores accumulator 0 (so that the loop is not dead) and releases the tiles. */
__attribute__((target("amx-tile"))) static void amx_finish(void) {
    int32_t out[16 * 16]; /* [16][16] of accumulator 0, f32 or i32 bits */
    _tile_stored(0, out, 64);
    _tile_release();
    sink_i32 = out[0];
}

/* Four accumulators (tiles 0-3) fed by the four (A, B) source pairs, so that consecutive
 * instructions never wait on each other. */
__attribute__((target("amx-tile,amx-bf16"))) static void loop_amx_bf16(long iterations) {
    amx_setup();
    for (long i = 0; i < iterations; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    amx_finish();
}

__attribute__((target("amx-tile,amx-int8"))) static void loop_amx_int8(long iterations) {
    amx_setup();
    for (long i = 0; i < iterations; i++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    amx_finish();
}

/* AMX needs the CPUID bits (leaf 7: EDX 22 AMX-BF16, 24 AMX-TILE, 25 AMX-INT8) and, on Linux,
 * permission for the large tile data state, which the kernel may refuse. */
static int amx_usable(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned need = 1u << 22 | 1u << 24 | 1u << 25;
    if ((edx & need) != need) return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* Best operations per second of `loop` run by every thread at once; ops = per instruction. Each
 * thread's rate is taken over its own CPU time, so that time the 2 cores spend on other processes
 * (this is a shared machine) does not count against the hardware; the rates add up. */
static double peak(void (*loop)(long), long iterations, int instructions_per_iteration,
                   double ops) {
    double best = 0;
    for (int r = 0; r < RUNS; r++) {
        double rate = 0;
#pragma omp parallel reduction(+ : rate)
        {
            const double start = thread_seconds();
            loop(iterations);
            const double seconds = thread_seconds() - start;
            rate = (double)iterations * instructions_per_iteration * ops / seconds;
        }
        if (rate > best) best = rate;
    }
    return best;
}

/* XOR of every 64-bit word of the slice: the compiler vectorises it with the widest loads. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static uint64_t read_slice(
    const uint64_t *words, size_t n) {
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x ^= words[i];
    return x;
}

/* Bytes per second of a streaming read of READ_BYTES, each thread its own contiguous slice (first
 * touched by that thread, so that it is local to it); per thread over its CPU time, as peak(). */
static double read_bandwidth(void) {
    const size_t n_words = READ_BYTES / sizeof(uint64_t);
    uint64_t *buffer = aligned_alloc(64, READ_BYTES); /* [n_words] */
    if (!buffer) return -1;
    double best = 0;
    uint64_t checksum = 0;
    for (int r = -1; r < RUNS; r++) { /* run -1 writes the buffer (page faults), untimed */
        double rate = 0;
#pragma omp parallel reduction(^ : checksum) reduction(+ : rate)
        {
            const int t = omp_get_thread_num(), n = omp_get_num_threads();
            const size_t begin = n_words * t / n, end = n_words * (t + 1) / n;
            const double start = thread_seconds();
            if (r < 0)
                for (size_t i = begin; i < end; i++) buffer[i] = i * 0x9e3779b97f4a7c15ull;
            else
                checksum ^= read_slice(buffer + begin, end - begin);
            rate = (end - begin) * sizeof *buffer / (thread_seconds() - start);
        }
        if (r >= 0 && rate > best) best = rate;
    }
    free(buffer);
    sink_i32 = (int32_t)checksum;
    return best;
}

static void print_figure(int json, const char *key, const char *label, double value,
                         const char *unit, const char *separator) {
    if (json)
        value > 0 ? printf("\"%s\": %.1f%s", key, value * 1e-9, separator)
                  : printf("\"%s\": null%s", key, separator);
    else
        value > 0 ? printf("%-26s %10.1f %s\n", label, value * 1e-9, unit)
                  : printf("%-26s %10s\n", label, "n/a");
}

int main(int argc, char **argv) {
    int json = 0, read_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--read")) read_only = 1;
        else {
            fprintf(stderr, "usage: bench_peak [--json] [--read]\n");
            return 2;
        }
    }
    if (read_only) {
        const double bandwidth = read_bandwidth();
        if (json) printf("{");
        print_figure(json, "read_gbytes_per_s", "read bandwidth", bandwidth, "GB/s", json ? "}\n" : "");
        return bandwidth > 0 ? 0 : 1;
    }
    __builtin_cpu_init();
    const int avx512 = __builtin_cpu_supports("avx512f");
    const long n = 10000000; /* iterations of CHAINS instructions: ~0.05 s per run at 3 GHz */
    const double fma = avx512 ? peak(loop_fma_f32, n, CHAINS, 32) : 0;
    const int has_bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
    const int has_vnni = avx512 && __builtin_cpu_supports("avx512vnni");
    const double bf16 = has_bf16 ? peak(loop_dpbf16, n, CHAINS, 64) : 0;
    const double vnni = has_vnni ? peak(loop_dpbusd, n, CHAINS, 128) : 0;
    const int amx = amx_usable();
    const long n_amx = 2000000; /* iterations of 4 tile instructions */
    const double amx_bf16 = amx ? peak(loop_amx_bf16, n_amx, 4, 2.0 * 16 * 16 * 32) : 0;
    const double amx_int8 = amx ? peak(loop_amx_int8, n_amx, 4, 2.0 * 16 * 16 * 64) : 0;
    const double bandwidth = read_bandwidth();
    if (json) printf("{\"threads\": %d, ", omp_get_max_threads());
    else printf("threads                    %10d\n", omp_get_max_threads());
    print_figure(json, "avx512_fma_f32_gflops", "AVX-512 FMA f32", fma, "GFLOP/s", ", ");
    print_figure(json, "avx512_bf16_gflops", "AVX512-BF16 vdpbf16ps", bf16, "GFLOP/s", ", ");
    print_figure(json, "avx512_vnni_gops", "AVX512-VNNI vpdpbusd", vnni, "GOP/s (int8)", ", ");
    print_figure(json, "amx_bf16_gflops", "AMX tdpbf16ps", amx_bf16, "GFLOP/s", ", ");
    print_figure(json, "amx_int8_gops", "AMX tdpbssd", amx_int8, "GOP/s (int8)", ", ");
    print_figure(json, "read_gbytes_per_s", "read bandwidth", bandwidth, "GB/s", "}\n");
    return bandwidth > 0 ? 0 : 1;
}
