//! The error type of the Sinkhorn engine and of the file readers ([`crate::io`]).

use crate::error::{Classify, ErrorClass};

/// Everything that can go wrong in [`crate::sinkhorn`] and [`crate::io`].
///
/// Bad input (exit code 2 in the CLI) is every variant except [`SinkhornError::NotConverged`]
/// (a numerical failure on valid input, exit code 1), see [`Classify`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkhornError {
    /// A measure with no point.
    #[error("empty point cloud: a measure needs at least one point")]
    EmptyCloud,
    /// Points of dimension zero.
    #[error("points of dimension 0: every point needs at least one coordinate")]
    ZeroDimension,
    /// Two objects that must agree in size do not.
    #[error("dimension mismatch: {what} (expected {expected}, got {got})")]
    DimensionMismatch {
        /// What disagrees (e.g. "dimension of y vs x", "length of weights").
        what: String,
        /// The size required.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// A NaN or infinite value.
    #[error("non-finite value in {which} at index {index}")]
    NonFinite {
        /// Which input ("coordinates", "weights", "f0", ...).
        which: String,
        /// Flat index of the first offending entry (row-major for points: point `index / d`).
        index: usize,
    },
    /// A weight below zero.
    #[error("negative weight {value} at index {index}")]
    NegativeWeight {
        /// Index of the first negative weight.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// Weights that do not sum to one (within `1e-12 n`) and normalisation was not asked for.
    #[error(
        "weights sum to {sum:.17} instead of 1 (tolerance 1e-12 * n); pass normalise = true (CLI: --normalise) to rescale them"
    )]
    WeightsNotNormalised {
        /// The sum of the weights.
        sum: f64,
    },
    /// Weights that are all zero.
    #[error("weights have zero total mass")]
    ZeroMass,
    /// A regularisation that is not finite and strictly positive.
    #[error("eps must be finite and > 0, got {}", crate::error::fmt_num(*.eps))]
    InvalidEps {
        /// The value given.
        eps: f64,
    },
    /// A stopping tolerance that is not finite and strictly positive.
    #[error("tolerance must be finite and > 0, got {tol}")]
    InvalidTolerance {
        /// The value given.
        tol: f64,
    },
    /// Any other parameter out of its documented range.
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The iteration hit `max_iters` before the residual (the L1 marginal violation; for the
    /// symmetric solver $\max_i\lvert T(f)_i-f_i\rvert/\varepsilon$) fell below `tol` (strict mode
    /// only; otherwise the output says `converged = false`).
    #[error(
        "Sinkhorn did not converge: residual {marginal_error:.3e} after {iterations} iterations (L1 marginal violation; for the symmetric solver max|T(f) - f|/eps)"
    )]
    NotConverged {
        /// Iterations performed.
        iterations: usize,
        /// The residual at the last iterate.
        marginal_error: f64,
    },
    /// A non-finite residual appeared during the iteration (cannot happen for validated input;
    /// reported rather than returned as NaN).
    #[error("Sinkhorn broke down: non-finite residual at iteration {iteration}")]
    Breakdown {
        /// The iteration at which it happened.
        iteration: usize,
    },
    /// The computation was stopped by the caller's interrupt check ([`crate::interrupt`]).
    #[error("interrupted after {iterations} Sinkhorn iterations")]
    Interrupted {
        /// Iterations performed.
        iterations: usize,
    },
    /// A request too large for this machine's memory (refused before allocating).
    #[error(transparent)]
    TooLarge(#[from] crate::error::TooLarge),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating-system or format message.
        message: String,
    },
    /// A file was read but its content is not what was expected.
    #[error("{path}{}: {message}", if *line > 0 { format!(", line {line}") } else { String::new() })]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number (0 for binary formats or whole-file problems: then not printed).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Classify for SinkhornError {
    fn class(&self) -> ErrorClass {
        match self {
            SinkhornError::NotConverged { .. }
            | SinkhornError::Breakdown { .. }
            | SinkhornError::Interrupted { .. } => ErrorClass::Numerical,
            _ => ErrorClass::BadInput,
        }
    }
}

/// `Ok(eps)` if `eps` is finite and `> 0`.
pub(crate) fn check_eps(eps: f64) -> Result<f64, SinkhornError> {
    crate::error::positive_finite(eps).map_err(|eps| SinkhornError::InvalidEps { eps })
}

/// First non-finite entry of `v`, as an error naming `which`.
pub(crate) fn check_finite(v: &[f64], which: &str) -> Result<(), SinkhornError> {
    match v.iter().position(|t| !t.is_finite()) {
        Some(index) => Err(SinkhornError::NonFinite {
            which: which.to_string(),
            index,
        }),
        None => Ok(()),
    }
}

/// Check a length.
pub(crate) fn check_len(what: &str, expected: usize, got: usize) -> Result<(), SinkhornError> {
    if expected == got {
        Ok(())
    } else {
        Err(SinkhornError::DimensionMismatch {
            what: what.to_string(),
            expected,
            got,
        })
    }
}
