//! The parabolic Monge–Ampère (PMA) flow and the Sinkhorn/IPFP iterates that discretise it
//! (seed 002: Berman 2020; Deb, Kim, Pal, Schiebinger 2023; Deb & Liang 2025).
//!
//! ## The objects (MATH.md §3, derivations in `theory/pma.md`)
//!
//! Two densities $e^{-f}$ (the $X$-marginal) and $e^{-g}$ (the $Y$-marginal) on $\mathbb R^d$.
//!
//! * **PMA.** $\partial_t\varphi = f(x) - g(\nabla\varphi(x)) + \log\det\nabla^2\varphi(x)$,
//!   $\varphi_0 = \lvert x\rvert^2/2$. With $\rho_t = (\nabla\varphi_t^*)_\#e^{-g}$,
//!   $\partial_t\varphi = f + \log\rho_t$; stationary points are the Brenier potentials
//!   $e^{-f}\to e^{-g}$, and $\nabla\varphi_t$ tends to the Brenier map.
//! * **IPFP in the seed's form** (kernel $e^{\langle x,y\rangle/\varepsilon}$, equivalently the
//!   cost $\lvert x-y\rvert^2/2$ — *not* the crate's default $\lvert x-y\rvert^2$):
//!   $\psi_k(y) = \varepsilon\log\int e^{\langle x,y\rangle/\varepsilon-\varphi_{k-1}(x)/\varepsilon-f(x)}dx$,
//!   $\varphi_k(x) = \varepsilon\log\int e^{\langle x,y\rangle/\varepsilon-\psi_k(y)/\varepsilon-g(y)}dy$,
//!   and the $X$-marginal of the $k$-th coupling is $\rho_k = e^{(\varphi_k-\varphi_{k-1})/\varepsilon-f}$.
//!   Seed claim: $\varphi_{t/\varepsilon}\to\varphi_t$ as $\varepsilon\to0$.
//!
//! ## Map of the module
//!
//! * [`gaussian`] — the exact Gaussian case in any dimension: the IPFP matrix recursion
//!   $P_k$, the Riccati solution $A_t$ of the PMA in closed form (stable for all $t$) and by
//!   the crate's ODE path, the marginals $\rho_k$, $\rho_t$, their Bures distance, the
//!   first-order correction, the fixed point $P_\infty$ and the linear rate of $P_k\to P_\infty$.
//! * [`grid`] — the PMA on 1-D grids (torus and interval; explicit under a CFL bound, implicit
//!   by Newton with faer), the transient of the first-order IPFP correction, the Brenier map
//!   from the CDFs, and the seed's IPFP on the same grids
//!   through the engine's [`crate::sinkhorn::Stepper`] and separable grid kernel.
//! * [`grid2d`] — the PMA (explicit, or implicit by Newton with faer's sparse LU) on the 2-D
//!   torus and box, the seed's IPFP on the same grids, a manufactured pair whose Brenier map is
//!   known, Gaussian and mixture catalogue entries, and the linearised 2-D $W_2$.
//! * [`mirror`] — Wasserstein mirror gradient flows of Gaussians (seed 002, examples 1–3) beside
//!   the Wasserstein gradient flows of the same energies, and the Euclidean mirror examples.
//! * [`particles`] — the seed's IPFP on samples (the engine's point clouds) and the barycentric
//!   projection $\nabla\varphi_k$ at the samples.
//! * [`PmaError`] — the typed errors (bad input vs numerical failure, [`crate::Classify`]).
//!
//! Dependency direction: `linalg` ← `gaussian` ← `pma` (the closed forms of
//! [`crate::gaussian`] are the oracle of the fixed point $P_\infty$ and of the Bures distances).

pub mod gaussian;
pub mod grid;
pub mod grid2d;
pub mod mirror;
pub mod particles;

use thiserror::Error;

use crate::error::{Classify, ErrorClass};
use crate::gaussian::GaussianError;
use crate::linalg::LinalgError;

/// Largest number of IPFP iterations $k = \mathrm{round}(T/\varepsilon)$ the Gaussian recursion
/// accepts ($10^7$: a few seconds for $d\le 4$); larger requests are bad input.
pub const MAX_IPFP_ITERATIONS: usize = 10_000_000;

/// Errors of the PMA module.
///
/// Bad input (CLI exit code 2): everything except [`PmaError::Integration`],
/// [`PmaError::NonFiniteResult`] and [`PmaError::NotPositiveDefinite`] raised on a computed
/// matrix (`computed = true`), which are numerical failures on valid input (exit code 1).
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum PmaError {
    /// A covariance failed validation (non-finite, not square, not symmetric).
    #[error(transparent)]
    Linalg(#[from] LinalgError),
    /// An error of the Gaussian closed forms used as oracle.
    #[error(transparent)]
    Gaussian(#[from] GaussianError),
    /// The regularisation must be finite and $>0$.
    #[error("eps must be finite and > 0, got {0}")]
    InvalidEps(f64),
    /// A matrix must have at least one row.
    #[error("{0} is empty (dimension 0)")]
    EmptyDimension(String),
    /// A time must be finite and $\ge 0$.
    #[error("time must be finite and >= 0, got {0}")]
    InvalidTime(f64),
    /// A tolerance must be finite and $>0$.
    #[error("{name} must be finite and > 0, got {value}")]
    InvalidTolerance {
        /// Which tolerance.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// Two matrices that must have the same size do not.
    #[error("dimension mismatch: {what} has dimension {found}, expected {expected}")]
    DimensionMismatch {
        /// What was mismatched.
        what: String,
        /// Expected dimension.
        expected: usize,
        /// Dimension found.
        found: usize,
    },
    /// A matrix that must be symmetric positive definite is not (smallest eigenvalue shown).
    #[error("{what} is not positive definite: smallest eigenvalue {min_eig:.6e}")]
    NotPositiveDefinite {
        /// Which matrix.
        what: String,
        /// Its smallest eigenvalue.
        min_eig: f64,
        /// `true` if the matrix was computed (a numerical failure), `false` if given.
        computed: bool,
    },
    /// Too many iterations requested.
    #[error(
        "T/eps = {ratio:.6e} asks for more than {max} IPFP iterations; increase eps or decrease T"
    )]
    TooManyIterations {
        /// $T/\varepsilon$.
        ratio: f64,
        /// The limit ([`MAX_IPFP_ITERATIONS`]).
        max: usize,
    },
    /// A grid that cannot be built (size out of range).
    #[error("invalid grid: {0}")]
    InvalidGrid(String),
    /// Nodal density values that are not acceptable (zero, NaN, not normalised, unknown name).
    #[error("invalid density: {0}")]
    InvalidDensity(String),
    /// The caller asked the computation to stop ([`crate::interrupt`]) before this step
    /// (time step or IPFP iteration).
    #[error("interrupted before step {step}")]
    Interrupted {
        /// The step that was about to run (1-based).
        step: usize,
    },
    /// A time step that is not acceptable (dt <= 0, T/dt not whole, outputs off the steps).
    #[error("invalid time step: {0}")]
    InvalidStep(String),
    /// An explicit step beyond the CFL bound $\Delta t\le\tfrac{h^2}{2}\min_j\varphi''_j$.
    #[error("explicit step {step}: dt = {dt:e} exceeds the stability bound; the largest stable dt is {dt_max:e} (h^2 min phi''/2 in 1-D, h^2 min det H/(2 tr H) in 2-D), or use --scheme implicit")]
    Cfl {
        /// The step about to be taken (1-based).
        step: usize,
        /// The step size asked for.
        dt: f64,
        /// The largest stable step at that state.
        dt_max: f64,
    },
    /// $\varphi$ stopped being convex.
    #[error(
        "phi is not convex at step {step}: phi'' = {second_derivative:e} at node {index} (x = {x})"
    )]
    NotConvex {
        /// The step (1-based; 0 = initial state).
        step: usize,
        /// Node index.
        index: usize,
        /// Node position.
        x: f64,
        /// The discrete second derivative found.
        second_derivative: f64,
    },
    /// The initial potential given by the caller is not convex (bad input).
    #[error(
        "the initial phi_0 is not convex: phi'' = {second_derivative:e} at node {index} (x = {x})"
    )]
    NonConvexInitial {
        /// Node index.
        index: usize,
        /// Node position.
        x: f64,
        /// The discrete second derivative found.
        second_derivative: f64,
    },
    /// Newton did not converge in an implicit step.
    #[error("Newton did not converge at step {step}: residual {residual:e}")]
    NewtonFailed {
        /// The step.
        step: usize,
        /// The last residual.
        residual: f64,
    },
    /// The kernel width $\sqrt\varepsilon$ does not span two grid cells.
    #[error("grid too coarse for eps = {eps:e}: sqrt(eps) must span two cells of the {n}-node grid; the smallest safe eps is {smallest_safe_eps:e} (= 4 h^2)")]
    GridTooCoarse {
        /// The eps given.
        eps: f64,
        /// $4h^2$.
        smallest_safe_eps: f64,
        /// Number of nodes.
        n: usize,
    },
    /// The ODE integrator failed at time `t`.
    #[error("integration failed at t = {t}: {message}")]
    Integration {
        /// Time reached.
        t: f64,
        /// The integrator's diagnosis.
        message: String,
    },
    /// A result overflowed or is NaN although the input was valid.
    #[error("{what} is not finite (input entries too large for double precision?)")]
    NonFiniteResult {
        /// Which quantity.
        what: String,
    },
}

impl Classify for PmaError {
    fn class(&self) -> ErrorClass {
        match self {
            PmaError::Linalg(e) => e.class(),
            PmaError::Gaussian(e) => e.class(),
            PmaError::Integration { .. }
            | PmaError::NonFiniteResult { .. }
            | PmaError::NotConvex { .. }
            | PmaError::NewtonFailed { .. }
            | PmaError::Interrupted { .. } => ErrorClass::Numerical,
            PmaError::NotPositiveDefinite { computed, .. } => {
                if *computed {
                    ErrorClass::Numerical
                } else {
                    ErrorClass::BadInput
                }
            }
            _ => ErrorClass::BadInput,
        }
    }
}

/// One DOP853 run of `sys` from the state `y` at `t0` to `t1` through the crate's ODE path
/// ([`crate::gaussian::flow`]'s integrator): the state at `t1`, or a [`PmaError::Integration`].
pub(crate) fn integrate_segment<F: ode_solvers::System<f64, nalgebra::DVector<f64>>>(
    sys: F,
    t0: f64,
    t1: f64,
    y: nalgebra::DVector<f64>,
    rtol: f64,
    atol: f64,
) -> Result<nalgebra::DVector<f64>, PmaError> {
    crate::gaussian::flow::integrate_ode(
        sys,
        t0,
        t1,
        y,
        rtol,
        atol,
        crate::gaussian::flow::Method::Dop853,
    )
    .map(|(y, _)| y)
    .map_err(|e| match e {
        crate::gaussian::GaussianError::Integration { t, message } => {
            PmaError::Integration { t, message }
        }
        other => PmaError::Integration {
            t: t0,
            message: other.to_string(),
        },
    })
}

/// Validate nodal values of a potential $f$ of a density $e^{-f}$ on a grid of `len` nodes:
/// no NaN or $-\infty$, no $+\infty$ (a zero of the density; `locate(j)` names node `j`), and
/// grid mean of $e^{-f}$ equal to 1 within `grid::MASS_TOL` unless `normalise` (then $f$ is
/// shifted by $\log$ of the mean). Shared by the 1-D and 2-D grids.
pub(crate) fn check_potential(
    f: &[f64],
    len: usize,
    what: &str,
    normalise: bool,
    locate: impl Fn(usize) -> String,
) -> Result<Vec<f64>, PmaError> {
    if f.len() != len {
        return Err(PmaError::DimensionMismatch {
            what: format!("number of values of {what}"),
            expected: len,
            found: f.len(),
        });
    }
    if let Some(j) = f.iter().position(|v| v.is_nan() || *v == f64::NEG_INFINITY) {
        return Err(PmaError::InvalidDensity(format!(
            "{what} has a non-finite value {} at node {j}",
            f[j]
        )));
    }
    if let Some(j) = f.iter().position(|v| *v == f64::INFINITY) {
        return Err(PmaError::InvalidDensity(format!(
            "the density e^-{what} vanishes at node {j} ({}); PMA needs positive densities",
            locate(j)
        )));
    }
    let mean = f.iter().map(|v| (-v).exp()).sum::<f64>() / f.len() as f64;
    if !(mean.is_finite() && mean > 0.0) {
        return Err(PmaError::InvalidDensity(format!(
            "the grid mean of e^-{what} is {mean}"
        )));
    }
    let tol = grid::MASS_TOL;
    if normalise {
        let lm = mean.ln();
        Ok(f.iter().map(|v| v + lm).collect())
    } else if (mean - 1.0).abs() > tol {
        Err(PmaError::InvalidDensity(format!(
            "the grid mean of e^-{what} is {mean:.9}, not 1 within {tol:e}; normalise it (CLI: --normalise)"
        )))
    } else {
        Ok(f.to_vec())
    }
}

/// The per-step cancellation point of the PMA solvers and grid IPFP ([`crate::interrupt`]).
pub(crate) fn check_interrupt(step: usize) -> Result<(), PmaError> {
    if crate::interrupt::requested() {
        Err(PmaError::Interrupted { step })
    } else {
        Ok(())
    }
}
