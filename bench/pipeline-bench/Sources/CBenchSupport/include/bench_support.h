#ifndef BENCH_SUPPORT_H
#define BENCH_SUPPORT_H
#include <stddef.h>
#include <stdint.h>

/// The time-stamp counter (`rdtsc`; 0 on other architectures).
static inline __attribute__((always_inline)) uint64_t bench_rdtsc(void) {
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    return 0;
#endif
}

/// Allocation call sites: `bench_record_site` (an allocation hook) keeps the first
/// `BENCH_MAX_SITES` distinct backtraces with a count each; `bench_print_sites` writes them to
/// stderr (mangled symbols: pipe through swift-demangle). Call `bench_sites_init` first, outside
/// any counted region (backtrace's first call loads libgcc and allocates).
#define BENCH_MAX_SITES 16
void bench_sites_init(void);
void bench_record_site(size_t size);
void bench_print_sites(void);
void bench_sites_reset(void);
#endif
