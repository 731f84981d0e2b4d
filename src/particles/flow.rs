//! The particle Wasserstein gradient flow of $S_\tau(\cdot,p)$ and the drift flows
//! (seed 003 Prop. 3.1, Prop. 3.3, §5.1; MATH.md §4; DESIGN.md conventions).
//!
//! Particles $x_i(t)$ of $q_t=\frac1n\sum_i\delta_{x_i(t)}$ follow
//! $$\dot x_i = v(x_i),\qquad v = 2\kappa\,V = 2\kappa\,(T_{\rm cross}-T_{\rm self}),$$
//! with $V$ the drift of [`super::drift`] and $c=\kappa\lvert x-y\rvert^2$. For the converged
//! (Sinkhorn) drift this is the Wasserstein gradient flow of $S_\tau(\cdot,p)$:
//! $\delta S_\tau/\delta q = f_{q,p}-f_{q,q}$ and
//! $\nabla_x f_{q,p}(x) = 2\kappa\,(x-T_{q,p}(x))$, so $v=-\nabla(f_{q,p}-f_{q,q})=2\kappa(T_{q,p}-T_{q,q})$:
//! velocity $2(T_{\rm cross}-T_{\rm self})$ for $\lvert x-y\rvert^2$ and
//! $T_{\rm cross}-T_{\rm self}$ for $\lvert x-y\rvert^2/2$ (the seed's convention, in which the
//! Euler step is $x\leftarrow x+\eta V$, Prop. 3.1). The finite kinds give the drifting
//! dynamics with the same scaling (Prop. 3.3: $L=1$ is Deng et al.'s drift).
//!
//! Integrators ([`Integrator`]), fixed step $h=T/\lceil T/\Delta t\rceil$: explicit Euler
//! (order 1) and Heun (explicit trapezoidal RK2, order 2). The converged solves of each
//! evaluation are warm-started from the potentials of the previous one.
//!
//! Monitors at the output times: empirical mean and covariance, $S_\tau(q_t,p)$ by the
//! engine's debiased divergence (same $\tau$ and cost), and $W_2^2(q_t,p)$ — exact by
//! assignment when $n=m$, by sorting when $d=1$.

use nalgebra::{DMatrix, DVector};

use super::drift::{drift_warm, DriftOutput, DriftParams, Potentials};
use super::metrics::{empirical_cov, empirical_mean, w2_squared_1d, w2_squared_exact};
use super::{check_cloud, ParticleError};
use crate::sinkhorn::{divergence, Acceleration, PointCloud, SinkhornParams};
use crate::Classify;

/// Time integrator of [`particle_flow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Integrator {
    /// $x_{k+1}=x_k+h\,v(x_k)$ (order 1; seed 003 eq. (14)).
    Euler,
    /// Heun: $\tilde x=x_k+h\,v(x_k)$, $x_{k+1}=x_k+\tfrac h2\,(v(x_k)+v(\tilde x))$ (order 2).
    Heun,
}

/// Parameters of [`particle_flow`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowParams {
    /// The drift (kind, temperature, cost, masking, solver tolerances).
    pub drift: DriftParams,
    /// Final time $T\ge0$, finite. Default 1.
    pub t_end: f64,
    /// Requested step $\Delta t>0$, finite; the step used is $T/\lceil T/\Delta t\rceil$. Default 0.01.
    pub dt: f64,
    /// Number $K\ge1$ of output intervals: outputs at the steps nearest to $kT/K$, $k=0..=K$.
    /// Default 10.
    pub samples: usize,
    /// Integrator. Default [`Integrator::Heun`].
    pub integrator: Integrator,
    /// Warm-start the converged solves from the previous evaluation. Default `true`.
    pub warm_start: bool,
    /// Keep the particle positions at the output times. Default `true`.
    pub keep_positions: bool,
    /// Record $S_\tau(q_t,p)$ at the output times (three converged solves each). Default `true`.
    pub monitor_divergence: bool,
    /// Record $W_2^2(q_t,p)$ at the output times (when $n=m$ or $d=1$). Default `false`.
    pub monitor_w2: bool,
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams {
            drift: DriftParams::default(),
            t_end: 1.0,
            dt: 0.01,
            samples: 10,
            integrator: Integrator::Heun,
            warm_start: true,
            keep_positions: true,
            monitor_divergence: true,
            monitor_w2: false,
        }
    }
}

impl FlowParams {
    /// Check every field's range (and the drift's).
    ///
    /// # Errors
    /// [`ParticleError::InvalidParameter`].
    pub fn validate(&self) -> Result<(), ParticleError> {
        self.drift.validate()?;
        if !(self.t_end.is_finite() && self.t_end >= 0.0) {
            return Err(ParticleError::InvalidParameter {
                name: "t_end",
                value: self.t_end,
                reason: "the final time must be finite and >= 0",
            });
        }
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return Err(ParticleError::InvalidParameter {
                name: "dt",
                value: self.dt,
                reason: "the time step must be finite and > 0",
            });
        }
        if self.samples == 0 {
            return Err(ParticleError::InvalidParameter {
                name: "samples",
                value: 0.0,
                reason: "at least one output interval",
            });
        }
        if self.t_end / self.dt > 1e8 {
            return Err(ParticleError::InvalidParameter {
                name: "dt",
                value: self.dt,
                reason: "more than 1e8 steps requested (t_end / dt too large)",
            });
        }
        Ok(())
    }
}

/// A particle trajectory sampled at output times.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowOutput {
    /// Output times (ascending, first 0, last $T$).
    pub times: Vec<f64>,
    /// Positions at the output times (`keep_positions`), each $n\times d$.
    pub positions: Vec<DMatrix<f64>>,
    /// Empirical means.
    pub means: Vec<DVector<f64>>,
    /// Empirical covariances ($1/n$ normalisation).
    pub covs: Vec<DMatrix<f64>>,
    /// $S_\tau(q_t,p)$ (empty unless `monitor_divergence`).
    pub divergence: Vec<f64>,
    /// $W_2^2(q_t,p)$ (empty unless `monitor_w2` and $n=m$ or $d=1$).
    pub w2: Vec<f64>,
    /// The step actually used.
    pub dt: f64,
    /// Number of time steps.
    pub steps: usize,
    /// Drift evaluations.
    pub drift_evaluations: usize,
    /// Sinkhorn iterations / half-steps summed over all evaluations.
    pub sinkhorn_iterations: usize,
    /// Drift evaluations whose converged solves stopped at `max_iters` (reported, not hidden).
    pub unconverged_evaluations: usize,
    /// The largest final residual of an unconverged drift evaluation (see
    /// [`super::drift::DriftOutput::residual`]); 0 when every evaluation converged.
    pub max_unconverged_residual: f64,
    /// Divergence monitor solves (three per output time) that stopped at `max_iters`.
    pub unconverged_monitor_solves: usize,
}

/// The flow velocity $v=2\kappa\,V$ at the particles, with the drift's output (for the
/// potentials and diagnostics).
///
/// # Errors
/// As [`super::drift::drift`].
pub fn velocity(
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    params: &DriftParams,
    warm: Option<&Potentials>,
) -> Result<(DMatrix<f64>, DriftOutput), ParticleError> {
    let out = drift_warm(x, y, params, warm)?;
    Ok((&out.v * (2.0 * params.cost.factor()), out))
}

fn engine_err(e: crate::sinkhorn::SinkhornError) -> ParticleError {
    ParticleError::Engine {
        class: e.class(),
        message: e.to_string(),
    }
}

struct Recorder<'a> {
    y: &'a DMatrix<f64>,
    yc: Option<PointCloud>,
    params: &'a FlowParams,
    out: FlowOutput,
}

impl Recorder<'_> {
    fn record(&mut self, t: f64, x: &DMatrix<f64>) -> Result<(), ParticleError> {
        self.out.times.push(t);
        self.out.means.push(empirical_mean(x)?);
        self.out.covs.push(empirical_cov(x)?);
        if self.params.keep_positions {
            self.out.positions.push(x.clone());
        }
        if let Some(yc) = &self.yc {
            let xc = PointCloud::uniform(x).map_err(engine_err)?;
            let sp = SinkhornParams {
                eps: self.params.drift.tau,
                cost: self.params.drift.cost,
                tol: self.params.drift.tol,
                max_iters: self.params.drift.max_iters,
                mode: self.params.drift.mode,
                eps_scaling: None,
                strict: false,
                record_history: false,
                over_relaxation: None,
                // A monitored value (S_eps at convergence), not the iterates: the engine's
                // default acceleration (theory/sinkhorn.md §4c).
                acceleration: Acceleration::Auto,
            };
            let d = divergence(&xc, yc, &sp).map_err(engine_err)?;
            self.out.unconverged_monitor_solves += [d.xy.converged, d.xx.converged, d.yy.converged]
                .iter()
                .filter(|c| !**c)
                .count();
            self.out.divergence.push(d.divergence);
        }
        if self.params.monitor_w2 {
            if x.ncols() == 1 {
                self.out
                    .w2
                    .push(w2_squared_1d(x.as_slice(), None, self.y.as_slice(), None)?);
            } else if x.nrows() == self.y.nrows() {
                self.out.w2.push(w2_squared_exact(x, self.y)?);
            }
        }
        Ok(())
    }
}

/// The number of time steps of [`particle_flow`]: $\lceil T/\Delta t\rceil$ (with a relative
/// slack of $10^{-12}$, so that $T/\Delta t$ a whole number up to rounding is not rounded up),
/// 0 when $T=0$. Valid for parameters that pass [`FlowParams::validate`].
pub fn step_count(t_end: f64, dt: f64) -> usize {
    if t_end > 0.0 {
        ((t_end / dt) * (1.0 - 1e-12)).ceil().max(1.0) as usize
    } else {
        0
    }
}

/// Integrate $\dot x_i=2\kappa V(x_i)$ from `x0` towards the target `y` (rows are points).
///
/// # Errors
/// Bad input (empty / non-finite clouds, dimension mismatch, invalid parameters) or a
/// numerical breakdown (non-finite positions, with the time).
pub fn particle_flow(
    x0: &DMatrix<f64>,
    y: &DMatrix<f64>,
    params: &FlowParams,
) -> Result<FlowOutput, ParticleError> {
    params.validate()?;
    check_cloud(x0, "initial particles")?;
    check_cloud(y, "target")?;
    if x0.ncols() != y.ncols() {
        return Err(ParticleError::DimensionMismatch {
            what: "dimension of the particles vs the target",
            left: x0.ncols(),
            right: y.ncols(),
        });
    }
    let steps = step_count(params.t_end, params.dt);
    let h = if steps > 0 {
        params.t_end / steps as f64
    } else {
        0.0
    };
    let k = params.samples;
    if steps > 0 && k > steps {
        return Err(ParticleError::InvalidParameter {
            name: "samples",
            value: k as f64,
            reason: "more output intervals than time steps (each output time must be a distinct step); use at most ceil(t_end / dt)",
        });
    }
    let (n, d) = x0.shape();
    let per_output = d * d + d + 1 + if params.keep_positions { n * d } else { 0 };
    crate::error::check_allocation(
        &format!("a trajectory of {} output times", k as u128 + 1),
        &[k.saturating_add(1), per_output],
    )?;
    let marks: Vec<usize> = (0..=k)
        .map(|i| ((i as f64) * (steps as f64) / (k as f64)).round() as usize)
        .collect();
    let yc = if params.monitor_divergence {
        Some(PointCloud::uniform(y).map_err(engine_err)?)
    } else {
        None
    };
    let mut rec = Recorder {
        y,
        yc,
        params,
        out: FlowOutput {
            times: Vec::new(),
            positions: Vec::new(),
            means: Vec::new(),
            covs: Vec::new(),
            divergence: Vec::new(),
            w2: Vec::new(),
            dt: h,
            steps,
            drift_evaluations: 0,
            sinkhorn_iterations: 0,
            unconverged_evaluations: 0,
            max_unconverged_residual: 0.0,
            unconverged_monitor_solves: 0,
        },
    };
    let mut x = x0.clone();
    let mut warm: Option<Potentials> = None;
    let mut next_mark = 0usize;
    while next_mark < marks.len() && marks[next_mark] == 0 {
        rec.record(0.0, &x)?;
        next_mark += 1;
    }
    let evaluate = |x: &DMatrix<f64>,
                    warm: &mut Option<Potentials>,
                    out: &mut FlowOutput|
     -> Result<DMatrix<f64>, ParticleError> {
        let start = if params.warm_start {
            warm.as_ref()
        } else {
            None
        };
        let (v, d) = velocity(x, y, &params.drift, start)?;
        out.drift_evaluations += 1;
        out.sinkhorn_iterations += d.iterations;
        if !d.converged {
            out.unconverged_evaluations += 1;
            out.max_unconverged_residual = out.max_unconverged_residual.max(d.residual);
        }
        *warm = d.potentials;
        Ok(v)
    };
    for s in 1..=steps {
        if crate::interrupt::requested() {
            return Err(ParticleError::Interrupted {
                at: (s - 1) as f64 * h,
            });
        }
        let v1 = evaluate(&x, &mut warm, &mut rec.out)?;
        let xn = match params.integrator {
            Integrator::Euler => &x + &v1 * h,
            Integrator::Heun => {
                let xt = &x + &v1 * h;
                let v2 = evaluate(&xt, &mut warm, &mut rec.out)?;
                &x + (&v1 + &v2) * (0.5 * h)
            }
        };
        let t = s as f64 * h;
        if xn.iter().any(|v| !v.is_finite()) {
            return Err(ParticleError::Breakdown {
                at: Some(t),
                what: "non-finite particle position".into(),
            });
        }
        x = xn;
        while next_mark < marks.len() && marks[next_mark] == s {
            let tm = if s == steps { params.t_end } else { t };
            rec.record(tm, &x)?;
            next_mark += 1;
        }
    }
    Ok(rec.out)
}
