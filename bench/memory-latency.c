// Load-to-use latency of this machine's memory hierarchy: a random pointer chase (one
// dependent load per 64-byte line, every line of the buffer visited once per cycle) over
// buffers from 16 KiB to 256 MiB, with transparent huge pages advised or refused. What a
// cache miss costs here is the yardstick for the flow-table figures in
// bench/results/lb-fastpath-analysis.md.
//
//     gcc -O2 -o /tmp/memory-latency bench/memory-latency.c
//     taskset -c 1 /tmp/memory-latency 1     # THP (MADV_HUGEPAGE, as the flow table)
//     taskset -c 1 /tmp/memory-latency 0     # 4 KiB pages (MADV_NOHUGEPAGE)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    int huge = argc > 1 && atoi(argv[1]);
    const size_t sizes[] = {16 << 10, 128 << 10, 1 << 20, 3 << 20, 16 << 20, 64 << 20, 256 << 20};
    const size_t align = 2 << 20;
    srand(1);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s] / 64;
        char *m = mmap(0, sizes[s] + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 1;
        char *b = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
        madvise(b, sizes[s], huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        size_t *perm = malloc(n * sizeof *perm);
        for (size_t i = 0; i < n; i++) perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = ((size_t)rand() * RAND_MAX + (size_t)rand()) % (i + 1);
            size_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (size_t i = 0; i < n; i++) *(void **)(b + perm[i] * 64) = b + perm[(i + 1) % n] * 64;
        void *p = b + perm[0] * 64;
        for (size_t i = 0; i < n; i++) p = *(void **)p;   // warm: every line once
        const long iterations = 20000000;
        double t0 = cpu_ns();
        for (long i = 0; i < iterations; i++) p = *(void **)p;
        double t1 = cpu_ns();
        printf("%s %8zu KiB: %6.1f ns per dependent load%s\n", huge ? "THP" : "4K ", sizes[s] >> 10,
               (t1 - t0) / iterations, p ? "" : " ");
        free(perm);
        munmap(m, sizes[s] + align);
    }
    return 0;
}
