// Compiler intrinsics that Swift cannot spell: cache prefetch hints.
//
// Every function is `static inline __attribute__((always_inline))`, so the Swift optimizer inlines
// it and the release binary contains the bare instruction (`prefetcht0` / `prefetchw` on x86-64,
// `prfm` on arm64), never a call. Nothing here touches DPDK; any module may depend on this target.
//
// Why a C target: `_mm_prefetch` is a macro in <xmmintrin.h> (not importable), clang's
// `_m_prefetch` builtin is dropped by the Swift importer, and declaring `llvm.prefetch` through
// `@_silgen_name` breaks ThreadSanitizer builds (the call becomes an `invoke` of an intrinsic).
#ifndef SLUICE_INTRINSICS_H
#define SLUICE_INTRINSICS_H

/// Prefetch the cache line holding `p` into all cache levels for reading (`_MM_HINT_T0`).
/// A hint: it never faults, even on an unmapped address, and has no architectural effect.
static inline __attribute__((always_inline)) void sluice_prefetch_read(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// Prefetch the cache line holding `p` with intent to write (`prefetchw` where the CPU has it).
static inline __attribute__((always_inline)) void sluice_prefetch_write(const void *p) {
    __builtin_prefetch(p, 1, 3);
}

#endif
