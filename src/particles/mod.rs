//! Particle Sinkhorn flows and drifting fields (seed 003, MATH.md §4).
//!
//! Empirical measures $q=\frac1n\sum_i\delta_{x_i}$ (the particles, rows of an $n\times d$
//! matrix) and $p=\frac1m\sum_j\delta_{y_j}$ (the target). The pieces:
//!
//! * [`metrics`] — exact $W_2^2$ between equal-size uniform clouds (assignment solver),
//!   1-D $W_2^2$ by quantile functions, empirical mean and covariance.
//! * [`targets`] — seeded 2-D toy targets (8-Gaussians, checkerboard, 2-moons, spiral).
//! * [`interval`] — a small interval type with outward rounding, used for computer-assisted
//!   sign proofs.
//! * [`lemma_a1`] — seed 003 Lemma A.1 (a zero of the one-sided drift with $q\ne p$), proved
//!   by interval arithmetic and Miranda's theorem, then located by Newton's method.
//!
//! Conventions (theory/particles.md): the cost is a [`crate::Cost`]; the temperature $\tau$
//! plays the role of $\varepsilon$; with $c=\lvert x-y\rvert^2/2$ the converged drift is the
//! Wasserstein gradient-flow velocity of $S_\tau(\cdot,p)$, with $c=\lvert x-y\rvert^2$ the
//! velocity is twice the drift.

pub mod drift;
pub mod flow;
pub mod interval;
pub mod lemma_a1;
pub mod metrics;
pub mod targets;

use crate::error::{Classify, ErrorClass};

/// Errors of the particle module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParticleError {
    /// A point cloud (or weight vector) with no points.
    #[error("{what} is empty")]
    Empty {
        /// Which input.
        what: &'static str,
    },
    /// A NaN or infinite coordinate / weight.
    #[error("{what} has a non-finite value at row {row}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Offending row (0-based).
        row: usize,
    },
    /// Two inputs whose dimensions must agree do not.
    #[error("dimension mismatch: {what} ({left} vs {right})")]
    DimensionMismatch {
        /// What is being compared.
        what: &'static str,
        /// First size.
        left: usize,
        /// Second size.
        right: usize,
    },
    /// A parameter outside its admissible range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Offending value.
        value: f64,
        /// What the admissible range is.
        reason: &'static str,
    },
    /// Weights that are negative or do not sum to one.
    #[error("invalid weights for {what}: {reason}")]
    InvalidWeights {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A request too large for this machine's memory (refused before allocating).
    #[error(transparent)]
    TooLarge(#[from] crate::error::TooLarge),
    /// The Sinkhorn engine reported an error.
    #[error("Sinkhorn engine: {message}")]
    Engine {
        /// The engine's message.
        message: String,
        /// The engine error's policy class.
        class: ErrorClass,
    },
    /// The flow was stopped by the caller's interrupt check ([`crate::interrupt`]).
    #[error("interrupted at t = {at}")]
    Interrupted {
        /// Time of the flow reached.
        at: f64,
    },
    /// A computation on valid input broke down (non-finite state, no convergence).
    #[error("numerical breakdown{}: {what}", at.map(|t| format!(" at t = {t}")).unwrap_or_default())]
    Breakdown {
        /// Time of the flow at which it happened, if any.
        at: Option<f64>,
        /// What happened.
        what: String,
    },
}

impl Classify for ParticleError {
    fn class(&self) -> ErrorClass {
        match self {
            ParticleError::Engine { class, .. } => *class,
            ParticleError::Breakdown { .. } | ParticleError::Interrupted { .. } => {
                ErrorClass::Numerical
            }
            _ => ErrorClass::BadInput,
        }
    }
}

/// Check that a point cloud (rows are points) is non-empty and finite.
pub(crate) fn check_cloud(
    x: &nalgebra::DMatrix<f64>,
    what: &'static str,
) -> Result<(), ParticleError> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(ParticleError::Empty { what });
    }
    for i in 0..x.nrows() {
        if x.row(i).iter().any(|v| !v.is_finite()) {
            return Err(ParticleError::NonFinite { what, row: i });
        }
    }
    Ok(())
}
