//! The error type of the finite-space flow.

use crate::error::{Classify, ErrorClass};
use crate::sinkhorn::SinkhornError;

/// Everything that can go wrong in [`crate::finite`].
///
/// Bad input (CLI exit code 2): every variant except [`FiniteError::LcpNotSolved`],
/// [`FiniteError::SjkoNotConverged`], [`FiniteError::Breakdown`] and an engine failure of class
/// numerical (exit code 1). A refusal for conditioning ([`FiniteError::IllConditioned`]) is bad
/// input: the caller asked for an eps the double-precision kernel algebra cannot certify.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FiniteError {
    /// Fewer than two points.
    #[error("a finite space needs at least 2 points, got {n}")]
    TooFewPoints {
        /// Number of points given.
        n: usize,
    },
    /// Two points coincide (K would be singular).
    #[error(
        "points {i} and {j} coincide: a finite space needs distinct points (K would be singular)"
    )]
    DuplicatePoints {
        /// First index.
        i: usize,
        /// Second index.
        j: usize,
    },
    /// A NaN or infinite value.
    #[error("non-finite value in {what} at index {index}")]
    NonFinite {
        /// Which input.
        what: String,
        /// First offending index.
        index: usize,
    },
    /// Lengths that must agree do not.
    #[error("length mismatch: {what} (expected {expected}, got {got})")]
    LengthMismatch {
        /// What disagrees.
        what: String,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A negative entry of a measure.
    #[error("{what} has a negative entry {value} at index {index}")]
    Negative {
        /// Which measure.
        what: String,
        /// Index.
        index: usize,
        /// Value.
        value: f64,
    },
    /// A probability vector that does not sum to one.
    #[error("{what} sums to {sum:.17} instead of 1 (tolerance 1e-12 relative): a probability vector is required")]
    NotNormalised {
        /// Which measure.
        what: String,
        /// Its sum.
        sum: f64,
    },
    /// A measure of zero mass.
    #[error("{what} has zero mass")]
    ZeroMass {
        /// Which measure.
        what: String,
    },
    /// A parameter out of its documented range.
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A problem too large to allocate.
    #[error("problem too large: {what} would need {needed} entries (limit {limit})")]
    TooLarge {
        /// What would be allocated.
        what: String,
        /// Entries needed.
        needed: u128,
        /// The limit.
        limit: u128,
    },
    /// The Gibbs kernel is too ill-conditioned for double precision (refused by default).
    #[error(
        "the Gibbs kernel K = exp(-C/eps) is too ill-conditioned at eps = {eps}: cond(K) ~ {cond:.3e} > limit {limit:.1e}{chol}; the largest safe eps for this point set is {safe_eps:.6e} (cond(K) law: (exp(pi^2 s/4)/2)^d with s = eps/delta^2; the double-double path accepts cond(K) up to 1e26, about 2.5x the s range of double in 1-D; see theory/finite_flow.md)"
    )]
    IllConditioned {
        /// The eps asked for.
        eps: f64,
        /// The condition estimate (infinite when Cholesky failed).
        cond: f64,
        /// The limit in force.
        limit: f64,
        /// Largest eps whose estimate is within the limit.
        safe_eps: f64,
        /// Extra text (Cholesky failure).
        chol: String,
    },
    /// A vector that should lie in the cone {K a : a >= 0} does not.
    #[error(
        "{what} is not in the cone B(M+(X)) = {{K a : a >= 0}}: min a_i / max a_i = {ratio:.3e}"
    )]
    NotInCone {
        /// Which vector.
        what: String,
        /// The most negative scaled coefficient.
        ratio: f64,
    },
    /// The resolvent LCP could not be solved to the required KKT residual.
    #[error("LCP of the resolvent step {step} not solved: scale-free KKT residual {residual:.3e} > {tol:.1e} (solver path: {path})")]
    LcpNotSolved {
        /// Step index (1-based).
        step: usize,
        /// Best residual reached.
        residual: f64,
        /// Tolerance.
        tol: f64,
        /// Which solvers were tried.
        path: String,
    },
    /// An SJKO step did not reach its KKT tolerance.
    #[error("SJKO step {step} did not converge: scale-free KKT residual {residual:.3e} > {tol:.1e} after {iterations} Newton iterations")]
    SjkoNotConverged {
        /// Step index (1-based).
        step: usize,
        /// Residual reached.
        residual: f64,
        /// Tolerance.
        tol: f64,
        /// Newton iterations done.
        iterations: usize,
    },
    /// A non-finite number appeared in a computation on valid input.
    #[error("numerical breakdown: {what}")]
    Breakdown {
        /// Where.
        what: String,
    },
    /// The Sinkhorn engine failed.
    #[error("Sinkhorn engine: {0}")]
    Engine(#[from] SinkhornError),
    /// The caller asked the computation to stop ([`crate::interrupt`]) before this step.
    #[error("interrupted before step {step}")]
    Interrupted {
        /// The step that was about to run (1-based).
        step: usize,
    },
}

impl Classify for FiniteError {
    fn class(&self) -> ErrorClass {
        match self {
            FiniteError::LcpNotSolved { .. }
            | FiniteError::SjkoNotConverged { .. }
            | FiniteError::Breakdown { .. }
            | FiniteError::Interrupted { .. } => ErrorClass::Numerical,
            FiniteError::Engine(e) => e.class(),
            _ => ErrorClass::BadInput,
        }
    }
}

/// First non-finite entry of `v`.
pub(crate) fn check_finite(v: &[f64], what: &str) -> Result<(), FiniteError> {
    match v.iter().position(|t| !t.is_finite()) {
        Some(index) => Err(FiniteError::NonFinite {
            what: what.to_string(),
            index,
        }),
        None => Ok(()),
    }
}

/// Length check.
pub(crate) fn check_len(what: &str, expected: usize, got: usize) -> Result<(), FiniteError> {
    if expected == got {
        Ok(())
    } else {
        Err(FiniteError::LengthMismatch {
            what: what.to_string(),
            expected,
            got,
        })
    }
}

/// Validate a non-negative measure of positive mass (any total mass).
pub(crate) fn check_measure(mu: &[f64], n: usize, what: &str) -> Result<f64, FiniteError> {
    check_len(
        &format!("length of {what} vs number of points"),
        n,
        mu.len(),
    )?;
    check_finite(mu, what)?;
    if let Some(index) = mu.iter().position(|&t| t < 0.0) {
        return Err(FiniteError::Negative {
            what: what.to_string(),
            index,
            value: mu[index],
        });
    }
    let s: f64 = mu.iter().sum();
    if s <= 0.0 {
        return Err(FiniteError::ZeroMass {
            what: what.to_string(),
        });
    }
    Ok(s)
}

/// Validate a probability vector: a measure summing to one within `1e-12` relative.
pub fn check_probability(mu: &[f64], n: usize, what: &str) -> Result<(), FiniteError> {
    let s = check_measure(mu, n, what)?;
    if (s - 1.0).abs() > 1e-12 {
        return Err(FiniteError::NotNormalised {
            what: what.to_string(),
            sum: s,
        });
    }
    Ok(())
}

/// The per-step cancellation point of the finite-space flows ([`crate::interrupt`]).
pub(crate) fn check_interrupt(step: usize) -> Result<(), FiniteError> {
    if crate::interrupt::requested() {
        Err(FiniteError::Interrupted { step })
    } else {
        Ok(())
    }
}
