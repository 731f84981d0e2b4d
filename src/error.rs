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
