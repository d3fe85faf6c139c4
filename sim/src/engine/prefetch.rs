//! Software prefetch: asks the CPU to start loading a cache line now, without waiting for it.
//!
//! At 10 000 nodes almost every event lands on memory no recent event touched, and a miss
//! costs hundreds of nanoseconds (page walks included). Misses issued together overlap, so
//! the engine names the lines the next few events will touch before running the current one
//! (`Sim::warm`): by the time an event runs, its lines are on their way or there.

/// Hints that the cache line holding `p` will be read soon. Never faults and has no effect
/// the program can observe, whatever `p` is.
#[inline(always)]
pub fn line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is only a hint: it does not dereference `p` in the language's sense,
    // never faults (not even on an unmapped address) and changes no program-visible state. SSE,
    // the feature it needs, is part of the x86_64 baseline.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`line`] for every cache line of `bytes` bytes starting at `p`.
#[inline(always)]
pub fn lines<T>(p: *const T, bytes: usize) {
    let p = p.cast::<u8>();
    let mut off = 0;
    while off < bytes {
        line(p.wrapping_add(off));
        off += 64;
    }
}

/// [`lines`] over the whole of `*v`.
#[inline(always)]
pub fn object<T>(v: &T) {
    lines(v as *const T, std::mem::size_of::<T>());
}
