//! Running dense kernel algebra with subnormal numbers flushed to zero.
//!
//! Gaussian kernel matrices $K_{ij}=e^{-c(x_i,x_j)/\varepsilon}$ at small $\varepsilon$ hold
//! entries between the smallest normal double ($2.2\cdot10^{-308}$) and the smallest subnormal
//! one, and an LU or a product of such matrices creates many more (products of two far-field
//! entries). On x86-64 every arithmetic operation with a subnormal operand or result takes a
//! microcode assist of ~100 cycles: measured on the 2500-point resolvent matrix of the 50 × 50
//! grid (theory/finite_flow.md §8c), faer's LU ran 5× slower than with subnormals flushed.
//!
//! [`flush_subnormals`] runs a closure on a dedicated rayon pool whose threads have the MXCSR
//! flags FTZ (results below the normal range become 0) and DAZ (subnormal inputs read as 0) set,
//! so that faer's parallel kernels and the code around them see the same mode. The change to
//! the results is absolute and below $2.2\cdot10^{-308}$ per operation: against values of order
//! one it is far below the unit round-off $1.1\cdot10^{-16}$, so it is invisible at the accuracy
//! of any double-precision computation on such matrices (it is not used on the double-double
//! path, whose low words may be legitimately small). On other architectures the closure runs
//! as is.

use std::sync::OnceLock;

/// The MXCSR bits FTZ (bit 15) and DAZ (bit 6).
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

/// Set FTZ and DAZ on the calling thread.
#[cfg(target_arch = "x86_64")]
fn set_flush_mode() {
    let mut csr: u32 = 0;
    // SAFETY: `stmxcsr`/`ldmxcsr` read and write the SSE control/status register of the
    // calling thread through a valid 4-byte location; setting FTZ and DAZ changes only how
    // subnormal numbers are treated (no exception is unmasked).
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        csr |= FTZ_DAZ;
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
    }
}

/// Whether the calling thread flushes subnormals (FTZ and DAZ both set).
#[cfg(target_arch = "x86_64")]
pub fn flushing() -> bool {
    let mut csr: u32 = 0;
    // SAFETY: as in `set_flush_mode`, read only.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    csr & FTZ_DAZ == FTZ_DAZ
}

/// Whether the calling thread flushes subnormals (never, off x86-64).
#[cfg(not(target_arch = "x86_64"))]
pub fn flushing() -> bool {
    false
}

/// The pool: as many threads as rayon's global pool, each with FTZ and DAZ set.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        if !cfg!(target_arch = "x86_64") {
            return None;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|i| format!("sinkflow-ftz-{i}"))
            .start_handler(|_| {
                #[cfg(target_arch = "x86_64")]
                set_flush_mode();
            })
            .build()
            .ok()
    })
    .as_ref()
}

/// Run `f` with subnormal numbers flushed to zero (module docs), on the calling thread when it
/// already flushes, else on the flushing pool (rayon work inside `f` runs on that pool too).
/// Without x86-64 or when the pool cannot be built, `f` runs as is.
pub fn flush_subnormals<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if flushing() {
        return f();
    }
    match pool() {
        Some(p) => p.install(f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormal_products_flush_to_zero_inside_only() {
        let tiny = std::hint::black_box(1e-200f64);
        // outside: the product is the subnormal 1e-310 (gradual underflow)
        let outside = std::hint::black_box(tiny) * std::hint::black_box(1e-110);
        assert!(outside > 0.0 && outside < f64::MIN_POSITIVE);
        let inside = flush_subnormals(|| std::hint::black_box(tiny) * std::hint::black_box(1e-110));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(inside, 0.0);
            assert!(flush_subnormals(flushing));
        } else {
            assert_eq!(inside, outside);
        }
        // the caller's mode is untouched
        assert!(!flushing());
        // normal numbers are unaffected
        let (x, y) = (
            std::hint::black_box(1e-300f64),
            std::hint::black_box(1e-7f64),
        );
        assert_eq!(flush_subnormals(|| x * y), x * y);
    }
}
