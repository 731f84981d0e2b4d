//! Wasserstein mirror gradient flows (seed 002; Deb, Kim, Pal, Schiebinger 2023) in the Gaussian
//! class, beside the Wasserstein gradient flows of the same energies, and the Euclidean
//! mirror-descent examples of the seed (MATH.md §3, `theory/pma.md` §5).
//!
//! **Mirror flow.** Mirror $U(\rho) = \tfrac12W_2^2(\rho, e^{-g})$; with $\nabla u_t$ the Brenier map
//! $\rho_t\to e^{-g}$, $\partial_t\rho_t + \nabla\cdot(\rho_tv_t) = 0$,
//! $v_t = -(\nabla^2u_t)^{-1}\nabla\,\delta F/\delta\rho$. For $\rho_t = \mathcal N(0,S)$ and
//! $e^{-g} = \mathcal N(0,\Theta)$, $\nabla^2u_t = S^{-1/2}(S^{1/2}\Theta S^{1/2})^{1/2}S^{-1/2}$
//! (Bures map), whose inverse is $S^{1/2}(S^{1/2}\Theta S^{1/2})^{-1/2}S^{1/2}$, and $v(x) = Mx$ with
//!
//! | energy $F$ | $\nabla\,\delta F/\delta\rho$ | mirror $M$ | Wasserstein $M$ |
//! |---|---|---|---|
//! | entropy $\int\rho\log\rho$ | $-S^{-1}x$ | $(\nabla^2u)^{-1}S^{-1}$ | $S^{-1}$ (heat, $S' = 2I$) |
//! | $\mathrm{KL}(\rho\mid\mathcal N(0,\Sigma))$ | $(\Sigma^{-1}-S^{-1})x$ | $-(\nabla^2u)^{-1}(\Sigma^{-1}-S^{-1})$ | $-(\Sigma^{-1}-S^{-1})$ (Fokker–Planck) |
//!
//! and in both cases $S' = MS + SM^\top$. Seed example 1 (entropy, $\Theta = S_0 = 1$):
//! $S_t = (1+t)^2$; example 2 (KL to $\mathcal N(0,1)$, $S_0 = \Theta = \eta^2$):
//! $s' = -(2/\eta)(s^{3/2}-s^{1/2})$, linear rate $2/\eta$ against Fokker–Planck's 2.

use nalgebra::{DMatrix, DVector};
use ode_solvers::System;

use super::{integrate_segment, PmaError};
use crate::linalg::{symmetrize, SymEigen};

/// The energy $F$ of a mirror flow.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MirrorEnergy {
    /// $F(\rho) = \int\rho\log\rho$ (its Wasserstein gradient flow is the heat equation
    /// $\partial_t\rho = \Delta\rho$).
    Entropy,
    /// $F(\rho) = \mathrm{KL}(\rho\mid\mathcal N(0,\Sigma))$ with the given $\Sigma$ (its
    /// Wasserstein gradient flow is the Fokker–Planck equation).
    Kl(DMatrix<f64>),
}

/// Parameters of [`mirror_flow`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MirrorParams {
    /// Final time $T\ge0$. Default 1.
    pub t_end: f64,
    /// Number $K\ge1$ of output intervals ($K+1$ equally spaced times). Default 10.
    pub samples: usize,
    /// Relative tolerance of the integrator (entries of $S$), finite and $>0$. Default $10^{-12}$.
    pub rtol: f64,
    /// Absolute tolerance, finite and $>0$. Default $10^{-14}$.
    pub atol: f64,
}

impl Default for MirrorParams {
    fn default() -> Self {
        MirrorParams {
            t_end: 1.0,
            samples: 10,
            rtol: 1e-12,
            atol: 1e-14,
        }
    }
}

/// Both flows from the same start, at the output times.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorTrajectory {
    /// Output times $kT/K$.
    pub times: Vec<f64>,
    /// Covariances of the mirror flow.
    pub mirror: Vec<DMatrix<f64>>,
    /// Covariances of the Wasserstein gradient flow of the same energy.
    pub wasserstein: Vec<DMatrix<f64>>,
}

fn spd(m: &DMatrix<f64>, what: &str) -> Result<DMatrix<f64>, PmaError> {
    super::gaussian::validate_spd(m, what).map(|(s, _)| s)
}

/// $(\nabla^2u)^{-1} = S^{1/2}(S^{1/2}\Theta S^{1/2})^{-1/2}S^{1/2}$, the inverse Hessian of the
/// Brenier potential from $\mathcal N(0,S)$ to $\mathcal N(0,\Theta)$.
pub fn inverse_brenier_hessian(s: &DMatrix<f64>, theta: &DMatrix<f64>) -> DMatrix<f64> {
    let s_half = SymEigen::new(s).apply(|l| l.max(0.0).sqrt());
    let mid = symmetrize(&(&s_half * theta * &s_half));
    let mid_inv_half = SymEigen::new(&mid).apply(|l| 1.0 / l.max(f64::MIN_POSITIVE).sqrt());
    symmetrize(&(&s_half * mid_inv_half * &s_half))
}

/// The velocity matrices $(M_{\rm mirror}, M_{\rm W})$ at covariance $S$ (module table).
pub fn velocity_matrices(
    s: &DMatrix<f64>,
    theta: &DMatrix<f64>,
    energy: &MirrorEnergy,
) -> (DMatrix<f64>, DMatrix<f64>) {
    let s_inv = SymEigen::new(s).apply(|l| 1.0 / l.max(f64::MIN_POSITIVE));
    let grad = match energy {
        MirrorEnergy::Entropy => -s_inv,
        MirrorEnergy::Kl(sigma) => {
            SymEigen::new(sigma).apply(|l| 1.0 / l.max(f64::MIN_POSITIVE)) - s_inv
        }
    };
    let h_inv = inverse_brenier_hessian(s, theta);
    (-(h_inv * &grad), -grad)
}

struct MirrorSystem<'a> {
    d: usize,
    theta: &'a DMatrix<f64>,
    energy: &'a MirrorEnergy,
}

impl System<f64, DVector<f64>> for &MirrorSystem<'_> {
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        let n = self.d * self.d;
        let sm = symmetrize(&DMatrix::from_column_slice(
            self.d,
            self.d,
            &y.as_slice()[..n],
        ));
        let sw = symmetrize(&DMatrix::from_column_slice(
            self.d,
            self.d,
            &y.as_slice()[n..],
        ));
        let (mm, _) = velocity_matrices(&sm, self.theta, self.energy);
        let (_, mw) = velocity_matrices(&sw, self.theta, self.energy);
        let dm = &mm * &sm + &sm * mm.transpose();
        let dw = &mw * &sw + &sw * mw.transpose();
        dy.as_mut_slice()[..n].copy_from_slice(dm.as_slice());
        dy.as_mut_slice()[n..].copy_from_slice(dw.as_slice());
    }
}

/// The Gaussian mirror flow and the Wasserstein gradient flow of `energy` from
/// $\rho_0 = \mathcal N(0,S_0)$, mirror reference $e^{-g} = \mathcal N(0,\Theta)$, integrated
/// together with `ode_solvers`' DOP853 (module docs).
///
/// Errors: $S_0$, $\Theta$ or the KL covariance not symmetric positive definite or of different
/// sizes, bad `params` (bad input); integrator failure or a covariance that stops being positive
/// definite (numerical, with the time).
pub fn mirror_flow(
    s0: &DMatrix<f64>,
    theta: &DMatrix<f64>,
    energy: &MirrorEnergy,
    params: &MirrorParams,
) -> Result<MirrorTrajectory, PmaError> {
    let s0 = spd(s0, "S_0")?;
    let theta = spd(theta, "Theta")?;
    let d = s0.nrows();
    let energy = match energy {
        MirrorEnergy::Entropy => MirrorEnergy::Entropy,
        MirrorEnergy::Kl(sigma) => MirrorEnergy::Kl(spd(sigma, "KL target covariance")?),
    };
    let dims = [
        ("Theta", theta.nrows()),
        (
            "KL target covariance",
            match &energy {
                MirrorEnergy::Kl(s) => s.nrows(),
                MirrorEnergy::Entropy => d,
            },
        ),
    ];
    for (what, found) in dims {
        if found != d {
            return Err(PmaError::DimensionMismatch {
                what: what.to_string(),
                expected: d,
                found,
            });
        }
    }
    if !(params.t_end.is_finite() && params.t_end >= 0.0) {
        return Err(PmaError::InvalidTime(params.t_end));
    }
    if params.samples == 0 {
        return Err(PmaError::InvalidStep("samples must be >= 1".to_string()));
    }
    for (name, v) in [("rtol", params.rtol), ("atol", params.atol)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(PmaError::InvalidTolerance { name, value: v });
        }
    }
    let sys = MirrorSystem {
        d,
        theta: &theta,
        energy: &energy,
    };
    let k = params.samples;
    let times: Vec<f64> = (0..=k)
        .map(|i| params.t_end * i as f64 / k as f64)
        .collect();
    let mut y = DVector::zeros(2 * d * d);
    y.as_mut_slice()[..d * d].copy_from_slice(s0.as_slice());
    y.as_mut_slice()[d * d..].copy_from_slice(s0.as_slice());
    let mut out = MirrorTrajectory {
        times: times.clone(),
        mirror: Vec::with_capacity(k + 1),
        wasserstein: Vec::with_capacity(k + 1),
    };
    for i in 0..=k {
        if i > 0 && times[i] > times[i - 1] {
            let (t0, t1) = (times[i - 1], times[i]);
            y = integrate_segment(&sys, t0, t1, y, params.rtol, params.atol)?;
        }
        let sm = symmetrize(&DMatrix::from_column_slice(d, d, &y.as_slice()[..d * d]));
        let sw = symmetrize(&DMatrix::from_column_slice(d, d, &y.as_slice()[d * d..]));
        for (m, what) in [
            (&sm, "mirror-flow covariance"),
            (&sw, "Wasserstein-flow covariance"),
        ] {
            let lmin = SymEigen::new(m).values[0];
            if !m.iter().all(|v| v.is_finite()) || lmin.is_nan() || lmin <= 0.0 {
                return Err(PmaError::Integration {
                    t: times[i],
                    message: format!(
                        "the {what} lost positive definiteness (smallest eigenvalue {lmin:.3e})"
                    ),
                });
            }
        }
        out.mirror.push(sm);
        out.wasserstein.push(sw);
    }
    Ok(out)
}

/// The Euclidean mirror-descent examples of the seed for $F(x) = x^2/2$, $Z_0 = 1$
/// ($\tfrac{d}{dt}u'(Z_t) = -F'(Z_t)$).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EuclideanMirror {
    /// $u = x^2/2$: $Z_t = e^{-t}$ (plain gradient flow).
    Quadratic,
    /// $u = x^4$: $Z_t = \sqrt{(1-t/6)^+}$ (reaches 0 at $t = 6$).
    Quartic,
    /// $u = 1/x$ ($x>0$): $Z_t = (1+3t/2)^{-1/3}$.
    Reciprocal,
}

impl EuclideanMirror {
    /// The closed form $Z_t$ (seed 002; MATH.md §3).
    pub fn closed_form(self, t: f64) -> f64 {
        match self {
            EuclideanMirror::Quadratic => (-t).exp(),
            EuclideanMirror::Quartic => (1.0 - t / 6.0).max(0.0).sqrt(),
            EuclideanMirror::Reciprocal => (1.0 + 1.5 * t).powf(-1.0 / 3.0),
        }
    }

    /// The primal velocity $\dot Z = -F'(Z)/u''(Z)$: $-Z$, $-1/(12Z)$, $-Z^4/2$.
    pub fn velocity(self, z: f64) -> f64 {
        match self {
            EuclideanMirror::Quadratic => -z,
            EuclideanMirror::Quartic => -1.0 / (12.0 * z),
            EuclideanMirror::Reciprocal => -0.5 * z.powi(4),
        }
    }
}
