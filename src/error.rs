//! Error policy shared by every module.
//!
//! Each module has its own typed, `#[non_exhaustive]` error enum (thiserror). Every error
//! knows which of the two policy classes of DESIGN.md ("Bad input") it belongs to, so that
//! the CLI can map it to an exit code without string matching:
//!
//! * [`ErrorClass::BadInput`] — the caller gave something the mathematics does not accept
//!   (NaN, eps <= 0, an indefinite covariance, mismatched dimensions, ...). CLI exit code 2.
//! * [`ErrorClass::Numerical`] — the input was valid but a computation failed or did not
//!   converge (the error carries the residual). CLI exit code 1.

/// The policy class of an error (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Invalid input: CLI exit code 2.
    BadInput,
    /// Numerical failure on valid input: CLI exit code 1.
    Numerical,
}

/// Implemented by every error enum of the crate.
pub trait Classify {
    /// Which policy class this error belongs to.
    fn class(&self) -> ErrorClass;
}

/// Check that a scalar parameter is finite and strictly positive.
///
/// Returns the offending value in `Err` so that each module can wrap it in its own error type.
#[inline]
pub fn positive_finite(x: f64) -> Result<f64, f64> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(x)
    }
}

/// A request whose memory would not fit: refused before anything is allocated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{what} would need {} of memory, more than half of this machine's {} (reduce the size)", human_bytes(*.bytes), human_bytes(*.physical))]
pub struct TooLarge {
    /// What was to be allocated.
    pub what: String,
    /// Bytes it would take (as f64: the product may not fit in `usize`).
    pub bytes: f64,
    /// Physical memory of the machine, bytes.
    pub physical: f64,
}

impl Classify for TooLarge {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u + 1 == UNITS.len() && v >= 1024.0 {
        format!("{b:.3e} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Physical memory in bytes (`MemTotal` of `/proc/meminfo`; 8 GiB where that is unavailable).
pub fn physical_memory_bytes() -> usize {
    const FALLBACK: usize = 8 << 30;
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map(|kb| kb.saturating_mul(1024))
        .unwrap_or(FALLBACK)
}

/// Check, before allocating, that `Π dims` values of 8 bytes fit in half the physical memory
/// (the product is formed in f64, so no size can overflow).
pub fn check_allocation(what: &str, dims: &[usize]) -> Result<(), TooLarge> {
    let bytes = dims.iter().fold(8.0, |acc, &d| acc * d as f64);
    let physical = physical_memory_bytes() as f64;
    if bytes > physical / 2.0 {
        Err(TooLarge {
            what: what.to_string(),
            bytes,
            physical,
        })
    } else {
        Ok(())
    }
}

/// A number as a person reads it in a message: plain decimals between 1e-4 and 1e15,
/// scientific notation outside (never 320 zeros for 5e-324).
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() || (1e-4..1e15).contains(&a) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}
