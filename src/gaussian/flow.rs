//! Gaussian Wasserstein gradient flows: the flow of $S_\varepsilon(\cdot,\mu^*)$ (an ODE for
//! mean and covariance, integrated with `ode_solvers`) and its $\varepsilon\to0$ limit, the flow of
//! $W_2^2(\cdot,\mu^*)$ (closed form).
//!
//! ## The $S_\varepsilon$ flow (MATH.md §1, seed 001, `theory/gaussian.md` §6–10)
//!
//! Started from a Gaussian, the flow stays Gaussian, $\mu_t = \mathcal N(m_t, S_t)$, and its
//! velocity is affine, $v_t(x) = 2(m^*-m_t) + L_t(x-m_t)$ with
//! $L = 2(K(S\to S^*)-K(S\to S))$ ([`super::velocity`]). Hence, for the squared cost,
//! $$m' = 2(m^*-m),\qquad S' = LS+SL = 2(C+C^\top) - 4\big[(S^2+\delta^2I)^{1/2}-\delta I\big],\quad \delta=\varepsilon/4,$$
//! with $C = C(S,S^*)$ the cross-covariance of the entropic plan (inverse-free, valid for
//! singular $S$ and $S^*$; [`covariance_rhs`] evaluates it). Half cost: the right-hand sides are
//! halved and computed at $2\varepsilon$.
//!
//! **Integrated state.** Particles move by $x' = v_t(x)$, so $S_t = X_tS_0X_t^\top$ with
//! $X' = L_tX$. [`sinkhorn_flow`] integrates the *factor* $F_t = X_tF_0$ ($F_0F_0^\top = S_0$,
//! $F_0$ built from the eigenpairs of $S_0$ with eigenvalues above $64\,d\,u\,\lambda_{\max}$), i.e.
//! $$F' = L(FF^\top)\,F,\qquad S = FF^\top,$$
//! which is the same ODE as $S' = LS+SL$ but keeps $S_t$ PSD and of rank $\le\operatorname{rank}S_0$
//! *exactly*. Integrating $S$ itself does not: the singular set $\{\ker S\ne0\}$ is invariant but
//! repelling, an eigenvalue $s\ll\delta^2/s^*$ grows like $e^{8s^*t/\varepsilon}$
//! (`theory/gaussian.md` §9), so round-off of size $10^{-16}$ in a null direction becomes $O(1)$
//! by $t\approx 4.6\,\varepsilon/s^*$ and the computed flow would leave the singular set. In the
//! factor form a zero column of $F$ stays exactly zero.
//!
//! The tolerances `rtol`, `atol` of [`FlowParams`] apply to the state (mean, entries of $F$).

use nalgebra::{DMatrix, DVector};
use ode_solvers::dop_shared::{IntegrationError, Stats};
use ode_solvers::{Dop853, Dopri5, OutputType, System};

use super::closed_form::{cross_cov, field_energy, k_map, k_self, pinv_threshold};
use super::{
    brenier_map, bures_wasserstein_sq, same_dim, sinkhorn_divergence, sq_eps, velocity, Gaussian,
    GaussianError,
};
use crate::cost::Cost;
use crate::linalg::symmetrize;

/// Explicit Runge–Kutta method of `ode_solvers` (adaptive step, Hairer–Wanner controllers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    /// Dormand–Prince 5(4) (`ode_solvers::Dopri5`).
    #[default]
    Dopri5,
    /// Dormand–Prince 8(5,3) (`ode_solvers::Dop853`): fewer steps at tight tolerances.
    Dop853,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "dopri5" => Ok(Method::Dopri5),
            "dop853" => Ok(Method::Dop853),
            other => Err(format!(
                "unknown method '{other}' (expected 'dopri5' or 'dop853')"
            )),
        }
    }
}

/// Parameters of [`sinkhorn_flow`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowParams {
    /// Regularisation $\varepsilon$, finite and $>0$. Default 0.1.
    pub eps: f64,
    /// Ground cost. Default [`Cost::SqEuclidean`].
    pub cost: Cost,
    /// Final time $T \ge 0$ (finite). Default 1.
    pub t_end: f64,
    /// Number $K\ge1$ of output intervals: the trajectory is reported at the $K+1$ equally
    /// spaced times $t_k = kT/K$, $k = 0..=K$ (exact grid, hit by the integrator). Default 100.
    pub samples: usize,
    /// Relative tolerance of the step-size control, finite and $>0$. Default $10^{-10}$.
    pub rtol: f64,
    /// Absolute tolerance of the step-size control, finite and $>0$. Default $10^{-12}$.
    pub atol: f64,
    /// Runge–Kutta method. Default [`Method::Dopri5`].
    pub method: Method,
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams {
            eps: 0.1,
            cost: Cost::SqEuclidean,
            t_end: 1.0,
            samples: 100,
            rtol: 1e-10,
            atol: 1e-12,
            method: Method::Dopri5,
        }
    }
}

impl FlowParams {
    /// Check every field (ranges in the field docs).
    pub fn validate(&self) -> Result<(), GaussianError> {
        sq_eps(self.eps, self.cost)?;
        if !(self.t_end.is_finite() && self.t_end >= 0.0) {
            return Err(GaussianError::InvalidTime(self.t_end));
        }
        if self.samples == 0 {
            return Err(GaussianError::InvalidSampleCount {
                name: "samples".to_string(),
                value: 0,
            });
        }
        for (name, value) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(GaussianError::InvalidTolerance {
                    name: name.to_string(),
                    value,
                });
            }
        }
        Ok(())
    }
}

/// A Gaussian trajectory $\mu_t = \mathcal N(m_t, S_t)$ sampled at output times.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowTrajectory {
    /// Output times (ascending for [`sinkhorn_flow`]; as given for [`bures_flow`]).
    pub times: Vec<f64>,
    /// Means $m_t$.
    pub means: Vec<DVector<f64>>,
    /// Covariances $S_t$ (symmetric PSD).
    pub covs: Vec<DMatrix<f64>>,
    /// The energy along the flow: $S_\varepsilon(\mu_t,\mu^*)$ for [`sinkhorn_flow`],
    /// $W_2^2(\mu_t,\mu^*)$ for [`bures_flow`].
    pub divergence: Vec<f64>,
    /// $\int\lvert v_t\rvert^2\,d\mu_t$, $v_t$ the velocity of the flow.
    pub dissipation: Vec<f64>,
    /// Right-hand-side evaluations (0 for closed forms).
    pub evaluations: usize,
    /// Accepted steps (0 for closed forms).
    pub accepted_steps: usize,
    /// Rejected steps (0 for closed forms).
    pub rejected_steps: usize,
}

/// The covariance velocity $S' = \kappa\big(2(C+C^\top) - 4[(S^2+\delta^2I)^{1/2}-\delta I]\big)$ of the
/// $S_\varepsilon(\cdot,\mu^*)$ flow at covariance `cov` (inverse-free form of MATH.md §1;
/// $\delta = \varepsilon'/4$, $\varepsilon'=\varepsilon/\kappa$, $C = C(S,S^*)$ at $\varepsilon'$).
///
/// $(S^2+\delta^2)^{1/2}-\delta$ is evaluated as $S^2((S^2+\delta^2)^{1/2}+\delta)^{-1}$. `cov` is
/// validated like a covariance (finite, symmetric, PSD within tolerance; singular allowed).
pub fn covariance_rhs(
    cov: &DMatrix<f64>,
    target: &Gaussian,
    eps: f64,
    cost: Cost,
) -> Result<DMatrix<f64>, GaussianError> {
    let g = Gaussian::new(target.mean().clone(), cov.clone())?;
    same_dim(target, &g, "covariance")?;
    let (eps_sq, kappa) = sq_eps(eps, cost)?;
    let delta = eps_sq / 4.0;
    let c = cross_cov(g.cov_sqrt(), target.cov(), delta);
    let self_term = g.eigen().apply(|l| {
        let l2 = l * l;
        l2 / (l2.sqrt().hypot(delta) + delta)
    });
    let rhs = ((&c + c.transpose()) * 2.0 - self_term * 4.0) * kappa;
    if rhs.iter().any(|v| !v.is_finite()) {
        return Err(GaussianError::NonFiniteResult {
            what: "covariance velocity".to_string(),
        });
    }
    Ok(symmetrize(&rhs))
}

/// Scalar commuting / 1D right-hand side (squared cost), per common eigen-direction with
/// variances $s$, $s^*$: $s' = 4\big(\sqrt{ss^*+\varepsilon^2/16}-\sqrt{s^2+\varepsilon^2/16}\big)$,
/// evaluated as $4s(s^*-s)/\big(\sqrt{ss^*+\delta^2}+\sqrt{s^2+\delta^2}\big)$ (no cancellation).
///
/// $s=0$ is a fixed point (rank preservation); $s=s^*$ is the attracting one with rate
/// [`super::linearised_rate`]. Meant for $s, s^*\ge0$, $\varepsilon>0$.
pub fn commuting_rhs(s: f64, s_star: f64, eps: f64) -> f64 {
    let delta = eps / 4.0;
    let den = (s * s_star).max(0.0).sqrt().hypot(delta) + s.hypot(delta);
    4.0 * s * (s_star - s) / den
}

/// The ODE system in factor form: state $= m \oplus \operatorname{vec}(F)$, $F$ of size $d\times r$.
struct FactorSystem<'a> {
    d: usize,
    r: usize,
    target_mean: &'a DVector<f64>,
    target_sqrt: &'a DMatrix<f64>,
    delta: f64,
    kappa: f64,
}

impl FactorSystem<'_> {
    fn split(&self, y: &DVector<f64>) -> (DVector<f64>, DMatrix<f64>) {
        let m = DVector::from_column_slice(&y.as_slice()[..self.d]);
        let f = DMatrix::from_column_slice(self.d, self.r, &y.as_slice()[self.d..]);
        (m, f)
    }

    fn join(&self, m: &DVector<f64>, f: &DMatrix<f64>) -> DVector<f64> {
        let mut y = DVector::zeros(self.d + self.d * self.r);
        y.rows_mut(0, self.d).copy_from(m);
        y.as_mut_slice()[self.d..].copy_from_slice(f.as_slice());
        y
    }
}

impl System<f64, DVector<f64>> for &FactorSystem<'_> {
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        let (m, f) = self.split(y);
        let s = symmetrize(&(&f * f.transpose()));
        // L = 2 kappa (K(S -> S*) - K(S -> S)); negative round-off eigenvalues are clamped
        // inside k_map / k_self.
        let l =
            (k_map(&s, self.target_sqrt, self.delta) - k_self(&s, self.delta)) * (2.0 * self.kappa);
        let dm = (self.target_mean - m) * (2.0 * self.kappa);
        let df = l * f;
        dy.rows_mut(0, self.d).copy_from(&dm);
        dy.as_mut_slice()[self.d..].copy_from_slice(df.as_slice());
    }
}

fn integration_error(e: IntegrationError) -> GaussianError {
    let t = match e {
        IntegrationError::MaxNumStepReached { x, .. }
        | IntegrationError::StepSizeUnderflow { x }
        | IntegrationError::StiffnessDetected { x } => x,
    };
    GaussianError::Integration {
        t,
        message: e.to_string(),
    }
}

/// Step budget of one output interval (the crates' default).
const N_MAX: u32 = 100_000;

/// Integrate one output interval of the covariance ODE with the chosen method.
fn integrate_segment(
    sys: &FactorSystem<'_>,
    t0: f64,
    t1: f64,
    y0: DVector<f64>,
    params: &FlowParams,
) -> Result<(DVector<f64>, Stats), GaussianError> {
    integrate_ode(sys, t0, t1, y0, params.rtol, params.atol, params.method)
}

/// The crate's one ODE integration path: one `ode_solvers` run of `sys` from `y0` at `t0` to
/// `t1` (sparse output) with the chosen method; the end state and the statistics, or
/// [`GaussianError::Integration`] with the time reached (also for a non-finite end state).
/// Used by the Gaussian flows here and by the PMA Riccati and mirror-flow ODEs.
pub(crate) fn integrate_ode<F: System<f64, DVector<f64>>>(
    sys: F,
    t0: f64,
    t1: f64,
    y0: DVector<f64>,
    rtol: f64,
    atol: f64,
    method: Method,
) -> Result<(DVector<f64>, Stats), GaussianError> {
    macro_rules! integrate_with {
        ($solver:ident, $beta:expr, $fac_min:expr, $fac_max:expr) => {{
            let mut solver = $solver::from_param(
                sys,
                t0,
                t1,
                t1 - t0,
                y0,
                rtol,
                atol,
                0.9,
                $beta,
                $fac_min,
                $fac_max,
                t1 - t0,
                0.0,
                N_MAX,
                u32::MAX,
                OutputType::Sparse,
            );
            let stats = solver.integrate().map_err(integration_error)?;
            (solver.y_out().last().cloned(), stats)
        }};
    }
    let (y, stats) = match method {
        // The crates' default controllers (Hairer–Wanner's DOPRI5 / DOP853 constants, as in
        // `Dopri5::new` / `Dop853::new`: beta, fac_min, fac_max), with the stiffness test
        // switched off: near the equilibrium of this dissipative flow the step is limited by
        // stability, not accuracy, which the test reads as stiffness after ~1000 steps (a flow
        // run to t = 1500 failed so although it had converged); a genuinely stiff run still stops
        // at `N_MAX` steps.
        Method::Dopri5 => integrate_with!(Dopri5, 0.04, 0.2, 10.0),
        Method::Dop853 => integrate_with!(Dop853, 0.0, 0.333, 6.0),
    };
    let y = y.ok_or_else(|| GaussianError::Integration {
        t: t0,
        message: "the integrator returned no state".to_string(),
    })?;
    if y.iter().any(|v| !v.is_finite()) {
        return Err(GaussianError::Integration {
            t: t1,
            message: "the state became non-finite".to_string(),
        });
    }
    Ok((y, stats))
}

/// Initial factor $F_0 = V_r\operatorname{diag}(\sqrt{\lambda_r})$ over the eigenvalues of $S_0$ above
/// $64\,d\,u\,\lambda_{\max}$ (smaller ones are below the eigensolver's backward error and are
/// treated as exact zeros, so that a singular $S_0$ has an exactly rank-deficient factor).
fn initial_factor(mu0: &Gaussian) -> DMatrix<f64> {
    let eig = mu0.eigen();
    let tol = pinv_threshold(eig);
    let keep: Vec<usize> = (0..eig.values.len())
        .filter(|&i| eig.values[i] > tol)
        .collect();
    let mut f = DMatrix::zeros(mu0.dim(), keep.len());
    for (k, &i) in keep.iter().enumerate() {
        f.set_column(k, &(eig.vectors.column(i) * eig.values[i].sqrt()));
    }
    f
}

/// The Wasserstein gradient flow of $S_\varepsilon(\cdot,\mu^*)$ started at `mu0`, reported at
/// the $K+1$ times $kT/K$ (module docs; MATH.md §1; seed 001).
///
/// Works for singular $S_0$ (the rank is preserved exactly) and singular targets. Each output
/// interval is integrated by its own adaptive run (so output times are hit exactly); the
/// statistics are summed. At every output time the trajectory records $S_\varepsilon(\mu_t,\mu^*)$
/// and $\int\lvert v_t\rvert^2d\mu_t$, which satisfy the energy identity
/// $\tfrac{d}{dt}S_\varepsilon(\mu_t,\mu^*) = -\int\lvert v_t\rvert^2d\mu_t$.
///
/// Errors: bad parameters ([`FlowParams::validate`]), dimension mismatch, and
/// [`GaussianError::Integration`] if the integrator fails.
pub fn sinkhorn_flow(
    mu0: &Gaussian,
    target: &Gaussian,
    params: &FlowParams,
) -> Result<FlowTrajectory, GaussianError> {
    params.validate()?;
    same_dim(mu0, target, "target")?;
    let (eps_sq, kappa) = sq_eps(params.eps, params.cost)?;
    let d = mu0.dim();
    // K + 1 outputs of a mean, a covariance and two scalars (plus the times).
    crate::error::check_allocation(
        &format!(
            "a trajectory of {} output times (samples + 1)",
            params.samples as u128 + 1
        ),
        &[params.samples.saturating_add(1), d * d + d + 3],
    )?;
    let f0 = initial_factor(mu0);
    let sys = FactorSystem {
        d,
        r: f0.ncols(),
        target_mean: target.mean(),
        target_sqrt: target.cov_sqrt(),
        delta: eps_sq / 4.0,
        kappa,
    };
    let k = params.samples;
    let times: Vec<f64> = (0..=k)
        .map(|i| {
            if i == k {
                params.t_end
            } else {
                params.t_end * i as f64 / k as f64
            }
        })
        .collect();
    let mut traj = FlowTrajectory {
        times: times.clone(),
        means: Vec::with_capacity(k + 1),
        covs: Vec::with_capacity(k + 1),
        divergence: Vec::with_capacity(k + 1),
        dissipation: Vec::with_capacity(k + 1),
        evaluations: 0,
        accepted_steps: 0,
        rejected_steps: 0,
    };
    let mut y = sys.join(mu0.mean(), &f0);
    for i in 0..=k {
        if i > 0 && times[i] > times[i - 1] {
            let (y_next, stats) = integrate_segment(&sys, times[i - 1], times[i], y, params)?;
            y = y_next;
            traj.evaluations += stats.num_eval as usize;
            traj.accepted_steps += stats.accepted_steps as usize;
            traj.rejected_steps += stats.rejected_steps as usize;
        }
        let (m, f) = sys.split(&y);
        let s = symmetrize(&(&f * f.transpose()));
        let mu_t = Gaussian::new_unchecked(m.clone(), s.clone());
        traj.divergence
            .push(sinkhorn_divergence(&mu_t, target, params.eps, params.cost)?);
        let v = velocity(&mu_t, target, params.eps, params.cost)?;
        traj.dissipation.push(field_energy(&v, &s));
        traj.means.push(m);
        traj.covs.push(s);
    }
    Ok(traj)
}

/// The $\varepsilon\to0$ limit: the Wasserstein gradient flow of $W_2^2(\cdot,\mu^*)$, in closed
/// form (MATH.md §1, `theory/gaussian.md` §11), at the given times (finite, $\ge0$, any order).
///
/// Particles move on straight lines, $x_t = T(x_0) + e^{-2t}(x_0 - T(x_0))$ with the Bures map
/// $T(x) = m^* + T_{\rm B}(x-m_0)$ ([`brenier_map`]), hence with $s = 1-e^{-2t}$:
/// $m_t = m^* + e^{-2t}(m_0-m^*)$, $S_t = ((1-s)I+sT_{\rm B})\,S_0\,((1-s)I+sT_{\rm B})$.
/// Recorded: `divergence` $= W_2^2(\mu_t,\mu^*)$ and `dissipation` $= \int\lvert v_t\rvert^2d\mu_t$ with
/// $v_t(x_t) = \dot x_t = 2(T(x_0)-x_t)$, i.e.
/// $4e^{-4t}\big(\lvert m_0-m^*\rvert^2 + \operatorname{tr}((T_{\rm B}-I)S_0(T_{\rm B}-I))\big)$, which
/// equals $4W_2^2(\mu_t,\mu^*) = 4e^{-4t}W_2^2(\mu_0,\mu^*)$ when $S_0$ is invertible.
///
/// For singular $S_0$ the pseudo-inverse map of [`brenier_map`] is used: the curve stays on
/// $\operatorname{range}S_0$ and tends to $\mathcal N(m^*, PS^*P)$, which is *not* $\mu^*$ unless
/// $\operatorname{range}S^*\subset\operatorname{range}S_0$; the dissipation is then the kinetic
/// energy of this curve, not $4W_2^2(\mu_t,\mu^*)$.
pub fn bures_flow(
    mu0: &Gaussian,
    target: &Gaussian,
    times: &[f64],
) -> Result<FlowTrajectory, GaussianError> {
    same_dim(mu0, target, "target")?;
    if let Some(&t) = times.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        return Err(GaussianError::InvalidTime(t));
    }
    let d = mu0.dim();
    crate::error::check_allocation(
        &format!("a trajectory of {} output times", times.len()),
        &[times.len(), d * d + d + 2],
    )?;
    let tb = brenier_map(mu0, target)?;
    let id = DMatrix::<f64>::identity(d, d);
    let gap0 = mu0.mean() - target.mean();
    let tmi = &tb - &id;
    let kinetic0 = gap0.norm_squared() + (&tmi * mu0.cov()).component_mul(&tmi).sum();
    let mut traj = FlowTrajectory {
        times: times.to_vec(),
        means: Vec::with_capacity(times.len()),
        covs: Vec::with_capacity(times.len()),
        divergence: Vec::with_capacity(times.len()),
        dissipation: Vec::with_capacity(times.len()),
        evaluations: 0,
        accepted_steps: 0,
        rejected_steps: 0,
    };
    for &t in times {
        let e = (-2.0 * t).exp();
        let s = -(-2.0 * t).exp_m1();
        let g = &id * e + &tb * s;
        let cov = symmetrize(&(&g * mu0.cov() * &g));
        let mean = target.mean() + &gap0 * e;
        let mu_t = Gaussian::new_unchecked(mean.clone(), cov.clone());
        traj.divergence.push(bures_wasserstein_sq(&mu_t, target)?);
        traj.dissipation.push(4.0 * e * e * kinetic0);
        traj.means.push(mean);
        traj.covs.push(cov);
    }
    Ok(traj)
}

/// The $\varepsilon\to\infty$ limit of the $S_\varepsilon$ flow (squared cost), in the slow time
/// $\tau = t/\varepsilon$, in closed form (`theory/gaussian.md`, "Large eps").
///
/// Expanding the inverse-free right-hand side for $\delta=\varepsilon/4\to\infty$,
/// $C(S,S^*) = \tfrac{2}{\varepsilon}SS^*\,(1+O(\varepsilon^{-2}))$ and
/// $(S^2+\delta^2)^{1/2}-\delta = \tfrac{2}{\varepsilon}S^2(1+O(\varepsilon^{-2}))$, so that
/// $$\frac{dS}{d\tau} = 4\,(SS^*+S^*S-2S^2) + O(\varepsilon^{-2}),$$
/// the Wasserstein gradient flow (in $\tau$) of $\lVert S-S^*\rVert_F^2 = \lim \varepsilon\,(S_\varepsilon-\lvert m-m^*\rvert^2)$.
/// This is a matrix Riccati equation $S' = AS+SA^\top-SBS$ with $A=4S^*$, $B=8I$; by Radon's
/// lemma $S = YZ^{-1}$ with $Y = e^{4S^*\tau}S_0$, $Z = e^{-4S^*\tau}(I+\Phi S_0)$, and in the
/// eigenbasis $S^* = P\Lambda P^\top$:
/// $$S_\tau = P\,E\,\tilde S_0\,(I+\Phi\tilde S_0)^{-1}E\,P^\top,\quad E=e^{4\Lambda\tau},\
/// \Phi=\operatorname{diag}\Big(\tfrac{e^{8\lambda_i\tau}-1}{\lambda_i}\Big),\ \tilde S_0=P^\top S_0P,$$
/// valid for singular $S_0$ and $S^*$ ($I+\Phi\tilde S_0$ is similar to an SPD matrix;
/// $\Phi_{ii}=8\tau$ when $\lambda_i=0$). The mean relaxes on the fast time $t$ (rate 2,
/// independent of $\varepsilon$), so in the slow time it equals $m^*$ for every $\tau>0$.
///
/// The returned `divergence` is the limit energy $\lVert S_\tau-S^*\rVert_F^2$ and `dissipation`
/// is $\int\lvert v\rvert^2d\mu = 16\operatorname{tr}((S-S^*)S(S-S^*))$ (velocity
/// $v(x) = -4(S-S^*)(x-m)$ in the slow time). Errors: [`GaussianError::InvalidTime`] for a
/// negative or non-finite $\tau$, [`GaussianError::NonFiniteResult`] when $8\lambda_{\max}\tau$
/// overflows double precision (beyond $\approx 700$). Checked against the integrated flow at
/// large $\varepsilon$ (experiment `gaussian-eps-limits`, predicted order $\varepsilon^{-2}$) and by the
/// test `large_eps_limit_solves_its_riccati_equation`.
pub fn large_eps_limit_flow(
    mu0: &Gaussian,
    target: &Gaussian,
    taus: &[f64],
) -> Result<FlowTrajectory, GaussianError> {
    same_dim(mu0, target, "target")?;
    if let Some(&t) = taus.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        return Err(GaussianError::InvalidTime(t));
    }
    let d = mu0.dim();
    let eig = target.eigen();
    let p = &eig.vectors;
    let lam = eig.clamped_values();
    let s0 = symmetrize(&(p.transpose() * mu0.cov() * p));
    let id = DMatrix::<f64>::identity(d, d);
    let mut traj = FlowTrajectory {
        times: taus.to_vec(),
        means: Vec::with_capacity(taus.len()),
        covs: Vec::with_capacity(taus.len()),
        divergence: Vec::with_capacity(taus.len()),
        dissipation: Vec::with_capacity(taus.len()),
        evaluations: 0,
        accepted_steps: 0,
        rejected_steps: 0,
    };
    for &tau in taus {
        let e = DVector::from_fn(d, |i, _| (4.0 * lam[i] * tau).exp());
        let phi = DVector::from_fn(d, |i, _| {
            if lam[i] > 0.0 {
                (8.0 * lam[i] * tau).exp_m1() / lam[i]
            } else {
                8.0 * tau
            }
        });
        let m = &id + DMatrix::from_diagonal(&phi) * &s0;
        let inv = m
            .lu()
            .try_inverse()
            .ok_or_else(|| GaussianError::NonFiniteResult {
                what: "large-eps limit flow (I + Φ S_0 singular)".into(),
            })?;
        let e_diag = DMatrix::from_diagonal(&e);
        let s_tilde = symmetrize(&(&e_diag * &s0 * inv * &e_diag));
        let cov = symmetrize(&(p * s_tilde * p.transpose()));
        if cov.iter().any(|v| !v.is_finite()) {
            return Err(GaussianError::NonFiniteResult {
                what: format!("large-eps limit covariance at tau = {tau}"),
            });
        }
        let gap = &cov - target.cov();
        traj.divergence.push(gap.norm_squared());
        traj.dissipation.push(16.0 * (&gap * &cov * &gap).trace());
        traj.means.push(if tau > 0.0 {
            target.mean().clone()
        } else {
            mu0.mean().clone()
        });
        traj.covs.push(cov);
    }
    Ok(traj)
}

#[cfg(test)]
mod large_eps_tests {
    use super::*;
    use crate::gaussian::catalog;

    /// The closed form satisfies dS/dτ = 4(SS* + S*S − 2S²): 4th-order central differences
    /// (step 1e-3, truncation ~1e-12·|S'''''|) against the right-hand side, singular S_0 and S*
    /// included; tolerance 1e-8 relative to the scale of S'.
    #[test]
    fn large_eps_limit_solves_its_riccati_equation() {
        let mut rng = catalog::seeded(9);
        for (rank0, rank_star) in [(3, 3), (2, 3), (3, 2), (1, 2)] {
            let s0 = if rank0 == 3 {
                catalog::random_spd(3, 10.0, &mut rng)
            } else {
                catalog::random_psd_rank(3, rank0, &mut rng)
            };
            let ss = if rank_star == 3 {
                catalog::random_spd(3, 10.0, &mut rng)
            } else {
                catalog::random_psd_rank(3, rank_star, &mut rng)
            };
            let mu0 = Gaussian::new(DVector::zeros(3), s0).unwrap();
            let target = Gaussian::new(DVector::zeros(3), ss.clone()).unwrap();
            let h = 1e-3;
            let tau = 0.2;
            let taus: Vec<f64> = (-2..=2).map(|k| tau + k as f64 * h).collect();
            let tr = large_eps_limit_flow(&mu0, &target, &taus).unwrap();
            let c = &tr.covs;
            let fd = (&c[0] - &c[1] * 8.0 + &c[3] * 8.0 - &c[4]) / (12.0 * h);
            let s = &c[2];
            let rhs = (s * &ss + &ss * s - s * s * 2.0) * 4.0;
            let err = (&fd - &rhs).amax() / rhs.amax().max(1.0);
            assert!(err < 1e-8, "ranks ({rank0},{rank_star}): residual {err:e}");
            // τ = 0 returns S_0 exactly (up to the rotation round-off).
            let t0 = large_eps_limit_flow(&mu0, &target, &[0.0]).unwrap();
            assert!((&t0.covs[0] - mu0.cov()).amax() < 1e-13 * mu0.cov().amax().max(1.0));
        }
    }
}
