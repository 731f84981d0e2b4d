//! Closed-form entropic optimal transport between Gaussians, and Gaussian gradient flows.
//!
//! Everything here is an exact (closed-form or ODE-level) object: the oracle the Sinkhorn
//! engine is checked against. Nothing here calls the engine. Derivations, sources and the
//! test that checks each formula are in `theory/gaussian.md`; conventions are in
//! `theory/conventions.md` and MATH.md §1.
//!
//! ## Notation and conventions
//!
//! $\mu = \mathcal N(a, A)$, $\nu = \mathcal N(b, B)$ on $\mathbb R^d$, $A, B$ symmetric positive
//! **semi**-definite (singular allowed everywhere unless a function says otherwise).
//! For the cost $c(x,y) = \lvert x-y\rvert^2$ ([`Cost::SqEuclidean`]),
//! $$\mathrm{OT}_\varepsilon(\mu,\nu)=\min_{\pi\in\Pi(\mu,\nu)}\int c\,d\pi+\varepsilon\,\mathrm{KL}(\pi\mid\mu\otimes\nu),$$
//! $S_\varepsilon = \mathrm{OT}_\varepsilon(\mu,\nu)-\tfrac12\mathrm{OT}_\varepsilon(\mu,\mu)-\tfrac12\mathrm{OT}_\varepsilon(\nu,\nu)$,
//! and with $\delta = \varepsilon/4$ the core matrix is
//! $M = (A^{1/2} B A^{1/2} + \delta^2 I)^{1/2}$ (MATH.md §1; Janati et al. 2020, Thm 1 with
//! $\sigma^2=\varepsilon/2$; Mallasto–Gerolin–Minh 2021).
//! For the half cost $c = \lvert x-y\rvert^2/2$ ([`Cost::HalfSqEuclidean`]) every quantity is
//! obtained from the squared cost at $2\varepsilon$: $\mathrm{OT}^{\rm half}_\varepsilon =
//! \tfrac12\mathrm{OT}_{2\varepsilon}$, same plan, same maps, potentials halved.
//!
//! ## Numerics
//!
//! Every formula is a spectral function of a symmetric matrix, evaluated through
//! [`SymEigen`] (or, for the eigenvalues $\lambda_i$ of $A^{1/2}BA^{1/2}$, as the squared
//! singular values of $F_A^\top F_B$ with $A = F_AF_A^\top$, which keeps small $\lambda_i$ to
//! relative accuracy $\approx u\sqrt{\lambda_{\max}/\lambda_i}$ instead of $u\lambda_{\max}/\lambda_i$).
//! No inverse of $A$ or $B$ is ever formed, except the documented pseudo-inverse of
//! [`brenier_map`]. The value is accumulated per eigenvalue in the cancellation-free form
//! $$h(\lambda)=-2(m-\delta)+2\delta\,\mathrm{log1p}\!\Big(\frac{m-\delta}{2\delta}\Big),\qquad m=\sqrt{\lambda+\delta^2},\quad m-\delta=\frac{\lambda}{m+\delta},$$
//! so that $\mathrm{OT}_\varepsilon = \lvert a-b\rvert^2+\operatorname{tr}A+\operatorname{tr}B+\sum_i h(\lambda_i)$
//! stays accurate from $\varepsilon = 10^{-3}$ to $10^{2}$ and for eigenvalues spanning
//! $10^{-8}\ldots10^{4}$ (checked at $10^{-9}$ relative against a 50-digit reference in
//! `tests/gaussian_reference.rs`).
//!
//! ## Map of the module
//!
//! * [`Gaussian`] — a validated $\mathcal N(m,\Sigma)$ with cached spectral data.
//! * [`EntropicOt`] — everything about one entropic problem: value, transport part, mutual
//!   information, plan, cross-covariance, barycentric map, potentials.
//! * free functions [`ot_eps`], [`sinkhorn_divergence`], [`divergence_parts`],
//!   [`bures_wasserstein_sq`], [`brenier_map`], [`velocity`], [`dissipation`],
//!   [`linearised_rate`].
//! * [`flow`] — the Wasserstein gradient flows of $S_\varepsilon(\cdot,\mu^*)$ (ODE) and of
//!   $W_2^2(\cdot,\mu^*)$ (closed form).
//! * [`catalog`] — generators of problems with known answers (tests, validation, benches).

pub mod catalog;
mod closed_form;
pub mod flow;

pub use closed_form::{
    brenier_map, bures_wasserstein_sq, dissipation, divergence_parts, linearised_rate, ot_eps,
    sinkhorn_divergence, velocity, AffineField, DivergenceParts, EntropicOt, QuadraticPotential,
};

use nalgebra::{DMatrix, DVector};
use thiserror::Error;

use crate::cost::Cost;
use crate::error::{positive_finite, Classify, ErrorClass};
use crate::linalg::{self, LinalgError, SymEigen};

/// Errors of the Gaussian module.
///
/// Bad input (CLI exit code 2): everything except [`GaussianError::Integration`] and
/// [`GaussianError::NonFiniteResult`], which are numerical failures on valid input (exit 1).
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum GaussianError {
    /// A mean or covariance failed validation (non-finite, not square, not symmetric,
    /// not positive semi-definite).
    #[error(transparent)]
    Linalg(#[from] LinalgError),
    /// The regularisation must be finite and $> 0$ (and $\varepsilon/\kappa$ finite for the
    /// cost factor $\kappa$).
    #[error("eps must be finite and > 0, got {}", crate::error::fmt_num(*.0))]
    InvalidEps(f64),
    /// A positive eps so small that eps/4 (or eps²/4 of the half cost) underflows to 0.
    #[error("eps = {} is too small for double precision: eps/4 underflows to 0 (use eps >= 1e-300; OT_eps then equals W2^2 to every printed digit)", crate::error::fmt_num(*.0))]
    EpsUnderflow(f64),
    /// Two objects that must live in the same dimension do not.
    #[error("dimension mismatch: {what} has dimension {found}, expected {expected}")]
    DimensionMismatch {
        /// What was mismatched, in the caller's words.
        what: String,
        /// The dimension that was expected.
        expected: usize,
        /// The dimension that was found.
        found: usize,
    },
    /// A Gaussian must live in dimension $d \ge 1$.
    #[error("a Gaussian needs dimension >= 1, got an empty mean")]
    EmptyDimension,
    /// A time (final time, output time) must be finite and $\ge 0$.
    #[error("time must be finite and >= 0, got {}", crate::error::fmt_num(*.0))]
    InvalidTime(f64),
    /// A tolerance must be finite and $> 0$.
    #[error("{name} must be finite and > 0, got {value}")]
    InvalidTolerance {
        /// Which tolerance (`rtol`, `atol`, ...).
        name: String,
        /// The value that was given.
        value: f64,
    },
    /// A number of samples / output intervals must be $\ge 1$.
    #[error("{name} must be >= 1, got {value}")]
    InvalidSampleCount {
        /// Which count.
        name: String,
        /// The value that was given.
        value: usize,
    },
    /// A request too large for this machine's memory (refused before allocating).
    #[error(transparent)]
    TooLarge(#[from] crate::error::TooLarge),
    /// The ODE integrator failed (step-size underflow, too many steps, stiffness) at time `t`.
    #[error("integration failed at t = {t}: {message}")]
    Integration {
        /// Time reached when the integrator stopped.
        t: f64,
        /// The integrator's diagnosis.
        message: String,
    },
    /// A result overflowed or is not a number although the input was valid (entries too
    /// large for double precision).
    #[error("{what} is not finite (input entries too large for double precision?)")]
    NonFiniteResult {
        /// Which quantity.
        what: String,
    },
}

impl Classify for GaussianError {
    fn class(&self) -> ErrorClass {
        match self {
            GaussianError::Integration { .. } | GaussianError::NonFiniteResult { .. } => {
                ErrorClass::Numerical
            }
            _ => ErrorClass::BadInput,
        }
    }
}

/// A Gaussian measure $\mathcal N(m, \Sigma)$ on $\mathbb R^d$, $\Sigma$ symmetric PSD
/// (singular allowed: the measure then lives on the affine subspace $m + \operatorname{range}\Sigma$).
///
/// Fields are private; the constructor validates and caches the eigen-decomposition of
/// $\Sigma$, the factor $F = V\operatorname{diag}(\sqrt{\lambda_i})$ with $FF^\top = \Sigma$, and the
/// PSD root $\Sigma^{1/2}$. Cached eigenvalues are clamped at 0, and eigenvalues
/// $\le 64\,d\,u\,\lambda_{\max}$ ($u$ the unit round-off; below the backward error of the
/// eigensolver) are set to exactly 0, so that an exactly singular $\Sigma$ has an exactly
/// singular root.
#[derive(Clone, Debug)]
pub struct Gaussian {
    mean: DVector<f64>,
    cov: DMatrix<f64>,
    eig: SymEigen,
    factor: DMatrix<f64>,
    cov_sqrt: DMatrix<f64>,
}

impl Gaussian {
    /// Validated constructor.
    ///
    /// Checks: $d \ge 1$; all entries finite; `cov` square with `cov.nrows() == mean.len()`;
    /// symmetric within [`linalg::SYM_REL_TOL`]; positive semi-definite within
    /// [`linalg::PSD_REL_TOL`] (via [`linalg::validate_psd`]). Singular covariances are accepted.
    /// The stored covariance is the symmetric part $(\Sigma+\Sigma^\top)/2$.
    pub fn new(mean: DVector<f64>, cov: DMatrix<f64>) -> Result<Gaussian, GaussianError> {
        if mean.is_empty() {
            return Err(GaussianError::EmptyDimension);
        }
        linalg::validate_finite_vec(&mean, "mean")?;
        let (sym, eig) = linalg::validate_psd(&cov, "covariance")?;
        if sym.nrows() != mean.len() {
            return Err(GaussianError::DimensionMismatch {
                what: "covariance".to_string(),
                expected: mean.len(),
                found: sym.nrows(),
            });
        }
        Ok(Self::from_parts(mean, sym, eig))
    }

    /// Constructor without validation (symmetrises and decomposes `cov`, nothing else).
    ///
    /// The caller guarantees finite entries and a PSD covariance; negative eigenvalues are
    /// clamped to 0 silently.
    ///
    /// # Panics
    /// If `cov` is not square or its size differs from `mean.len()` (a caller bug).
    #[track_caller]
    pub fn new_unchecked(mean: DVector<f64>, cov: DMatrix<f64>) -> Gaussian {
        assert!(
            cov.is_square() && cov.nrows() == mean.len(),
            "Gaussian::new_unchecked: covariance {}x{} does not match mean of length {}",
            cov.nrows(),
            cov.ncols(),
            mean.len()
        );
        let sym = linalg::symmetrize(&cov);
        let eig = SymEigen::new(&sym);
        Self::from_parts(mean, sym, eig)
    }

    fn from_parts(mean: DVector<f64>, cov: DMatrix<f64>, mut eig: SymEigen) -> Gaussian {
        eig.values = eig.clamped_values();
        // Eigenvalues below the eigensolver's backward error are indistinguishable from 0:
        // make them exact zeros, so that an exactly singular covariance gets an exactly
        // rank-deficient factor (otherwise sqrt(1e-16 lambda_max) ~ 1e-8 sqrt(lambda_max) leaks
        // into every square root, e.g. W2^2 of singular pairs; theory/gaussian.md §2).
        // An exactly diagonal covariance is decomposed exactly (no rotation, no backward error):
        // its small variances are data, not round-off, and are kept (a spectrum 1e8 .. 1e-6
        // would otherwise lose its small direction; theory/gaussian.md §2b).
        let diagonal =
            (0..cov.nrows()).all(|i| (0..cov.ncols()).all(|j| i == j || cov[(i, j)] == 0.0));
        let tol = if diagonal {
            0.0
        } else {
            closed_form::pinv_threshold(&eig)
        };
        eig.values.iter_mut().for_each(|l| {
            if *l <= tol {
                *l = 0.0;
            }
        });
        let d = mean.len();
        let mut factor = eig.vectors.clone();
        for j in 0..d {
            let s = eig.values[j].sqrt();
            factor.column_mut(j).scale_mut(s);
        }
        let cov_sqrt = linalg::symmetrize(&(&factor * eig.vectors.transpose()));
        Gaussian {
            mean,
            cov,
            eig,
            factor,
            cov_sqrt,
        }
    }

    /// The dimension $d$.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean $m$.
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// The (symmetrised) covariance $\Sigma$.
    pub fn cov(&self) -> &DMatrix<f64> {
        &self.cov
    }

    /// The cached PSD square root $\Sigma^{1/2} = V\operatorname{diag}(\sqrt{\max(\lambda_i,0)})V^\top$.
    pub fn cov_sqrt(&self) -> &DMatrix<f64> {
        &self.cov_sqrt
    }

    /// Eigenvalues of $\Sigma$ (ascending; clamped at 0, round-off-level ones set to 0).
    pub fn eigenvalues(&self) -> &DVector<f64> {
        &self.eig.values
    }

    /// The factor $F = V\operatorname{diag}(\sqrt{\lambda_i})$, $FF^\top = \Sigma$ (not symmetric).
    pub(crate) fn factor(&self) -> &DMatrix<f64> {
        &self.factor
    }

    pub(crate) fn eigen(&self) -> &SymEigen {
        &self.eig
    }

    /// Numerical rank: the number of eigenvalues $\lambda_i > \text{rel\_tol}\cdot\lambda_{\max}$.
    ///
    /// `rel_tol` should be finite and $\ge 0$; a negative or NaN value is treated as 0 (the
    /// number of strictly positive eigenvalues). The zero covariance has rank 0.
    pub fn rank(&self, rel_tol: f64) -> usize {
        let tol = if rel_tol.is_finite() && rel_tol > 0.0 {
            rel_tol
        } else {
            0.0
        };
        let lmax = self.eig.values.max();
        if lmax <= 0.0 {
            return 0;
        }
        self.eig.values.iter().filter(|&&l| l > tol * lmax).count()
    }

    /// `n` independent samples, one per row of the returned $n\times d$ matrix:
    /// $x_i = m + \Sigma^{1/2} z_i$, $z_i \sim \mathcal N(0, I_d)$. Works for singular $\Sigma$
    /// (the samples then lie on $m + \operatorname{range}\Sigma$).
    pub fn sample<R: rand::Rng>(&self, n: usize, rng: &mut R) -> DMatrix<f64> {
        let d = self.dim();
        let z = DMatrix::<f64>::from_fn(n, d, |_, _| rng.sample(rand_distr::StandardNormal));
        // rows: z_i^T Sigma^{1/2} (Sigma^{1/2} symmetric)
        let mut x = z * &self.cov_sqrt;
        for mut row in x.row_iter_mut() {
            row += self.mean.transpose();
        }
        x
    }

    /// Log-density with respect to Lebesgue measure, for a non-singular covariance
    /// (`None` if $\Sigma$ is singular, where no density exists).
    ///
    /// $\log p(x) = -\tfrac12\big[d\log 2\pi + \log\det\Sigma + (x-m)^\top\Sigma^{-1}(x-m)\big]$,
    /// evaluated spectrally.
    ///
    /// # Panics
    /// If `x.len() != self.dim()` (a caller bug).
    #[track_caller]
    pub fn log_density(&self, x: &DVector<f64>) -> Option<f64> {
        assert_eq!(x.len(), self.dim(), "log_density: point of wrong dimension");
        if self.eig.values.iter().any(|&l| l <= 0.0) {
            return None;
        }
        let y = self.eig.vectors.transpose() * (x - &self.mean);
        let quad: f64 = y
            .iter()
            .zip(self.eig.values.iter())
            .map(|(yi, li)| yi * yi / li)
            .sum();
        let logdet: f64 = self.eig.values.iter().map(|l| l.ln()).sum();
        Some(-0.5 * (self.dim() as f64 * (2.0 * std::f64::consts::PI).ln() + logdet + quad))
    }
}

/// Validate eps for `cost` and return $(\varepsilon', \kappa)$: the equivalent
/// regularisation under $\lvert x-y\rvert^2$ and the cost factor ($c = \kappa\lvert x-y\rvert^2$).
pub(crate) fn sq_eps(eps: f64, cost: Cost) -> Result<(f64, f64), GaussianError> {
    positive_finite(eps).map_err(GaussianError::InvalidEps)?;
    let e = cost.sq_equivalent_eps(eps);
    if !e.is_finite() {
        return Err(GaussianError::InvalidEps(eps));
    }
    if e / 4.0 <= 0.0 {
        return Err(GaussianError::EpsUnderflow(eps));
    }
    Ok((e, cost.factor()))
}

/// Check that two Gaussians live in the same dimension.
pub(crate) fn same_dim(mu: &Gaussian, nu: &Gaussian, what: &str) -> Result<(), GaussianError> {
    if mu.dim() != nu.dim() {
        return Err(GaussianError::DimensionMismatch {
            what: what.to_string(),
            expected: mu.dim(),
            found: nu.dim(),
        });
    }
    Ok(())
}

/// Turn a non-finite result into a typed numerical error.
pub(crate) fn finite(x: f64, what: &str) -> Result<f64, GaussianError> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(GaussianError::NonFiniteResult {
            what: what.to_string(),
        })
    }
}
