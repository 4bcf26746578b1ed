#include "bench_support.h"
#include <execinfo.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEPTH 24
static void *sites[BENCH_MAX_SITES][DEPTH];
static int depths[BENCH_MAX_SITES];
static size_t sizes[BENCH_MAX_SITES];
static long counts[BENCH_MAX_SITES];
static int used;
static __thread int inside;

void bench_sites_init(void) {
    void *warm[4];
    (void)backtrace(warm, 4);
}

void bench_record_site(size_t size) {
    if (inside) return;
    inside = 1;
    void *frames[DEPTH];
    int n = backtrace(frames, DEPTH);
    int i;
    for (i = 0; i < used; i++) {
        if (depths[i] == n && memcmp(sites[i], frames, sizeof(void *) * (size_t)n) == 0) { counts[i]++; break; }
    }
    if (i == used && used < BENCH_MAX_SITES) {
        memcpy(sites[used], frames, sizeof(void *) * (size_t)n);
        depths[used] = n;
        sizes[used] = size;
        counts[used] = 1;
        used++;
    }
    inside = 0;
}

void bench_print_sites(void) {
    for (int i = 0; i < used; i++) {
        dprintf(2, "allocation site %d: %ld allocation(s), first of %zu bytes\n", i + 1, counts[i], sizes[i]);
        backtrace_symbols_fd(sites[i], depths[i], 2);
    }
}

void bench_sites_reset(void) {
    used = 0;
}
