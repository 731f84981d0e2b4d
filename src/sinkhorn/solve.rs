//! The alternating log-domain Sinkhorn solver for $\mathrm{OT}_\varepsilon(\mu,\nu)$.
//!
//! Iteration $k=1,2,\dots$ (two half-steps, starting with the $f$-update):
//! $$f_k=T(g_{k-1},\nu),\qquad g_k=T(f_k,\mu),\qquad
//! T(h,\rho)(x)=-\varepsilon\log\sum_j\rho_j\,e^{(h_j-c(x,y_j))/\varepsilon}.$$
//! After the $g$-update the second marginal of $P_{ij}=a_ib_je^{(f_i+g_j-C_{ij})/\varepsilon}$ is
//! exact and the first is $(P\mathbb 1)_i=a_i\,e^{(f_{k,i}-f_{k+1,i})/\varepsilon}$, so its
//! L1 violation $\sum_ia_i\lvert\operatorname{expm1}((f_{k,i}-f_{k+1,i})/\varepsilon)\rvert$
//! comes out of the next $f$-update for free. It is checked at every iteration; the pair
//! returned is $(f_k,g_k)$, the one whose violation is reported (the extra half-step
//! $f_{k+1}$ is discarded).

use nalgebra::DMatrix;

use super::anderson::Anderson;
use super::engine::{dot, Engine, Side};
use super::error::{check_finite, check_len, SinkhornError};
use super::kernel::ExpKernel;
use super::measure::{CostMatrix, Geometry, PointCloud};
use super::params::{
    AccelerationReport, EpsScaling, EpsScalingReport, Mode, OverRelaxation, RelaxationReport,
    SinkhornParams, Termination,
};
use super::plan as plans;
use crate::Cost;

/// The result of [`solve`].
///
/// `ot` is the dual value $\int f\,d\mu+\int g\,d\nu$ at the returned pair. Because
/// $g=T(f,\mu)$ exactly, the dual's mass term vanishes and `ot` is a certified lower bound of
/// $\mathrm{OT}_\varepsilon$ (weak duality), with error $O(\varepsilon\cdot$`marginal_error`$)$.
/// `primal` is $\langle P,C\rangle+\varepsilon\,\mathrm{KL}(P\mid a\otimes b)$ of the plan
/// built from the returned potentials (generalised KL $\sum P\log\frac{P}{ab}-\sum P+1$);
/// `primal - ot` is the duality-gap diagnostic, $\to0$ at convergence.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkhornOutput {
    /// $f$ on the support of $\mu$.
    pub f: Vec<f64>,
    /// $g$ on the support of $\nu$.
    pub g: Vec<f64>,
    /// Dual value $\sum_ia_if_i+\sum_jb_jg_j$ (this is $\mathrm{OT}_\varepsilon$).
    pub ot: f64,
    /// $\langle P,C\rangle+\varepsilon\,\mathrm{KL}(P\mid a\otimes b)$ of the final plan.
    pub primal: f64,
    /// $\langle P,C\rangle$ (what POT's `sinkhorn2` returns).
    pub transport_cost: f64,
    /// Iterations done (annealing ones included), one iteration = two half-steps.
    pub iterations: usize,
    /// $\lVert P\mathbb 1-a\rVert_1$ of the returned pair (its second marginal is exact).
    pub marginal_error: f64,
    /// `marginal_error <= tol` at the target eps.
    pub converged: bool,
    /// Why the iteration stopped.
    pub termination: Termination,
    /// `marginal_error` after every iteration (each at its stage's eps), if recorded.
    pub history: Vec<f64>,
    /// The mode actually used (never `Auto`).
    pub mode: Mode,
    /// The (target) regularisation.
    pub eps: f64,
    /// The cost.
    pub cost: Cost,
    /// What acceleration ran (policy, over-relaxation, eps-scaling; theory/sinkhorn.md §4c).
    pub acceleration: AccelerationReport,
    /// [`Mode::Sparse`] only: a certified upper bound on the L1 mass of the plan entries the
    /// truncated kernel dropped, at the returned pair (theory/sinkhorn.md §12); `None` for the
    /// other modes.
    pub truncation_bound: Option<f64>,
}

impl SinkhornOutput {
    /// Entropic map $T_{\mu,\nu}(x_i)=\int y\,d\pi(y\mid x_i)$ at every point of $\mu$
    /// (row-major `n × d`). `x`, `y` must be the clouds that were solved.
    pub fn map_x(&self, x: &PointCloud, y: &PointCloud) -> Vec<f64> {
        plans::barycentric_maps(&self.g, y, x, self.eps, self.cost)
    }
    /// Entropic map $T_{\mu,\nu}(z)$ at a new point `z` (uses $g$ and $\nu$).
    pub fn map_at(&self, y: &PointCloud, z: &[f64]) -> Vec<f64> {
        plans::barycentric_map(&self.g, y, z, self.eps, self.cost)
    }
    /// $f(z)=T(g,\nu)(z)$, the potential extended to a new point.
    pub fn f_at(&self, y: &PointCloud, z: &[f64]) -> f64 {
        plans::c_transform(&self.g, y, z, self.eps, self.cost)
    }
    /// $g(z)=T(f,\mu)(z)$, the potential extended to a new point.
    pub fn g_at(&self, x: &PointCloud, z: &[f64]) -> f64 {
        plans::c_transform(&self.f, x, z, self.eps, self.cost)
    }
    /// `primal - ot`, the duality gap (a convergence diagnostic).
    pub fn duality_gap(&self) -> f64 {
        self.primal - self.ot
    }
}

/// Solve $\mathrm{OT}_\varepsilon(\mu,\nu)$ for two point clouds from $f=g=0$.
///
/// For a self problem ($\nu=\mu$) use [`crate::sinkhorn::solve_symmetric`] instead: the
/// alternating iteration on $\mathrm{OT}_\varepsilon(\mu,\mu)$ can stall at small eps (more
/// than $2\cdot10^4$ sweeps for $\varepsilon\lesssim0.5\,\delta^2$, $\delta$ the point spacing;
/// theory/sinkhorn.md §5), while the averaged symmetric update contracts by at least 1/2.
///
/// # Errors
/// Bad parameters or mismatched dimensions ([`SinkhornError`], class bad input); in strict
/// mode, [`SinkhornError::NotConverged`].
pub fn solve(
    x: &PointCloud,
    y: &PointCloud,
    params: &SinkhornParams,
) -> Result<SinkhornOutput, SinkhornError> {
    solve_geometry(Geometry::Clouds { x, y }, params, None)
}

/// [`solve`] warm-started from potentials $(f_0,g_0)$ (e.g. those of a nearby problem).
///
/// The first half-step is $f_1=T(g_0,\nu)$, so only $g_0$ enters the iteration; $f_0$ is
/// validated (length, finiteness) so that a mismatched pair is caught.
pub fn solve_warm(
    x: &PointCloud,
    y: &PointCloud,
    params: &SinkhornParams,
    f0: &[f64],
    g0: &[f64],
) -> Result<SinkhornOutput, SinkhornError> {
    solve_geometry(Geometry::Clouds { x, y }, params, Some((f0, g0)))
}

/// Solve the problem of a given cost matrix (`params.cost` is ignored).
pub fn solve_matrix(
    c: &CostMatrix,
    params: &SinkhornParams,
) -> Result<SinkhornOutput, SinkhornError> {
    solve_geometry(Geometry::Matrix(c), params, None)
}

/// The general entry point: clouds or a cost matrix, optional warm start $(f_0,g_0)$.
pub fn solve_geometry(
    geom: Geometry<'_>,
    params: &SinkhornParams,
    warm: Option<(&[f64], &[f64])>,
) -> Result<SinkhornOutput, SinkhornError> {
    solve_with_exp_kernel(geom, params, warm, ExpKernel::default())
}

/// [`solve_geometry`] with an explicit choice of exponential in the kernel (the default is
/// [`ExpKernel::Fast`]; [`ExpKernel::Std`] is the libm reference path used to validate it).
pub fn solve_with_exp_kernel(
    geom: Geometry<'_>,
    params: &SinkhornParams,
    warm: Option<(&[f64], &[f64])>,
    exp: ExpKernel,
) -> Result<SinkhornOutput, SinkhornError> {
    params.validate()?;
    let (n, m) = geom.shape();
    let g0 = match warm {
        Some((f0, g0)) => {
            check_len("length of f0 vs number of points of x", n, f0.len())?;
            check_len("length of g0 vs number of points of y", m, g0.len())?;
            check_finite(f0, "f0")?;
            check_finite(g0, "g0")?;
            g0.to_vec()
        }
        None => vec![0.0; m],
    };
    if let Geometry::Clouds { x, y } = geom {
        // Auto takes the sparse mode where its measured crossover says it pays
        // (theory/sinkhorn.md §12), on the default (fast) exponential only.
        let sparse = match params.mode {
            Mode::Sparse => true,
            Mode::Auto => {
                exp == ExpKernel::Fast
                    && super::sparse::auto_picks_sparse(x, y, params.eps, params.cost)
            }
            Mode::Dense | Mode::Streaming => false,
        };
        if sparse {
            let warm_g = warm.map(|_| g0.as_slice());
            return super::sparse::run(x, y, params, &Default::default(), warm_g);
        }
    }
    let engine = Engine::new(geom, params.cost, params.mode, exp)?;
    let scale = cost_scale(geom, params.cost);
    // The acceleration policy (theory/sinkhorn.md §4c): explicit settings, else Auto's choice.
    let cold = g0.iter().all(|&v| v == 0.0);
    let (relax, scaling) = params.resolve_acceleration(scale, cold);
    run(&engine, params, g0, scale, relax, scaling.as_ref())
}

/// The cost scale $\varepsilon_0$ that starts eps-scaling.
pub(crate) fn cost_scale(geom: Geometry<'_>, cost: Cost) -> f64 {
    match geom {
        Geometry::Clouds { x, y } => cost.factor() * x.bbox_sq_diameter(y),
        Geometry::Matrix(c) => c.range(),
        Geometry::Grid(g) => g.cost_scale(cost.factor()),
    }
}

/// The over-relaxation state machine of [`run`] (`OverRelaxation`, theory/sinkhorn.md §4b):
/// plain → relaxed (once the residual is below `RELAX_START`) → plain (after the relaxed residual
/// reached `tol`, or after a blow-up restored the best relaxed pair).
pub(crate) struct Relaxer {
    mode: Option<OverRelaxation>,
    /// The factor in use while relaxing.
    omega: Option<f64>,
    /// Relaxation is over for this solve.
    done: bool,
    /// Residuals of the current phase (plain or relaxed), for the rate estimates.
    window: Vec<f64>,
    /// Best residual of the relaxed phase and its pair.
    best: Option<(f64, Vec<f64>, Vec<f64>)>,
    /// The last factor used (for the report).
    last_omega: Option<f64>,
    /// Relaxed iterations done.
    relaxed: usize,
    /// The blow-up safeguard fired.
    restored: bool,
    /// Relaxed iterations since the best residual last improved.
    stalled: usize,
    /// The solve annealed eps before the target eps (eps-scaling stages ran).
    annealed: bool,
    /// The pair (and its residual) at which the relaxed phase started, kept until the first
    /// rate window has been judged (the one restart of [`OverRelaxation::Adaptive`] after
    /// eps-scaling).
    start: Option<(f64, Vec<f64>, Vec<f64>)>,
    /// The Anderson mixer when that is the accelerator ([`OverRelaxation::Anderson`]).
    anderson: Option<Anderson>,
}

/// What [`Relaxer::after_relaxed`] decided.
pub(crate) enum Relaxed {
    /// Go on (relaxed or, if the residual reached `tol`, plain).
    Continue,
    /// The best pair was restored; redo the iteration plainly.
    Restored,
    /// The start pair was restored with a larger factor; redo the iteration relaxed.
    Restarted,
}

/// Window of the rate estimates of [`OverRelaxation::Adaptive`].
const RATE_WINDOW: usize = 30;
/// Upper bound of the adaptive factor.
const OMEGA_MAX: f64 = 1.99;
/// The first relaxed window restarts the relaxed phase when it gained less than this fraction
/// of the decades Young's rate $\omega-1$ predicts, i.e. when $\rho>(\omega-1)^{1/4}$
/// (theory/sinkhorn.md §4b).
const RESTART_GAIN: f64 = 0.25;
/// The restart divides the distance $2-\omega$ by this factor (at least; more if the inverted
/// rate asks for it): in Young's formula $2-\omega^\star\approx2\sqrt{1-\theta}$, so this is
/// the factor for a plain rate whose $1-\theta$ is 16 times smaller than estimated.
const RESTART_JUMP: f64 = 4.0;

/// Young's optimal factor for a plain rate `theta`.
fn young_omega(theta: f64) -> f64 {
    (2.0 / (1.0 + (1.0 - theta.clamp(0.0, 1.0)).sqrt())).clamp(1.0, OMEGA_MAX)
}

/// Geometric-mean ratio over the last `RATE_WINDOW` entries of `w`.
fn window_rate(w: &[f64]) -> Option<f64> {
    let n = w.len();
    (n > RATE_WINDOW)
        .then(|| (w[n - 1] / w[n - 1 - RATE_WINDOW]).powf(1.0 / RATE_WINDOW as f64))
        .filter(|r| r.is_finite())
}

impl Relaxer {
    pub(crate) fn new(mode: Option<OverRelaxation>, annealed: bool) -> Self {
        let done = matches!(
            mode,
            None | Some(OverRelaxation::Fixed(1.0)) | Some(OverRelaxation::Anderson { .. })
        );
        let anderson = match mode {
            Some(OverRelaxation::Anderson { memory }) => Some(Anderson::new(memory)),
            _ => None,
        };
        Relaxer {
            anderson,
            mode,
            omega: None,
            done,
            window: Vec::new(),
            best: None,
            last_omega: None,
            relaxed: 0,
            restored: false,
            stalled: 0,
            annealed,
            start: None,
        }
    }

    pub(crate) fn omega(&self) -> Option<f64> {
        self.omega
    }

    /// The over-relaxation part of the acceleration report.
    pub(crate) fn report(&self) -> Option<RelaxationReport> {
        self.mode.map(|kind| match &self.anderson {
            Some(a) => RelaxationReport {
                kind,
                omega: None,
                relaxed_iterations: a.steps,
                restored: a.restored,
            },
            None => RelaxationReport {
                kind,
                omega: self.last_omega,
                relaxed_iterations: self.relaxed,
                restored: self.restored,
            },
        })
    }

    /// Anderson mixing is the accelerator and has not ended.
    pub(crate) fn mixing(&self) -> bool {
        self.anderson.as_ref().is_some_and(|a| !a.done)
    }

    /// The $f$-update of a plain iteration at the target eps when [`Self::mixing`]: from the
    /// current `f`, its image `fp` $=F(f)$ and the residual `err` of $(f,T(f))$ (module
    /// `anderson`); otherwise `f = fp`.
    pub(crate) fn mix(&mut self, f: &mut [f64], fp: &[f64], err: f64) {
        match &mut self.anderson {
            Some(a) => a.update(f, fp, err),
            None => f.copy_from_slice(fp),
        }
    }

    /// After a plain iteration at the target eps with residual `err`: maybe start relaxing.
    pub(crate) fn after_plain(&mut self, err: f64, f: &[f64], g: &[f64]) {
        if self.done {
            return;
        }
        if matches!(self.mode, Some(OverRelaxation::Adaptive)) {
            // Only the last RATE_WINDOW + 1 residuals enter the rate estimate.
            if self.window.len() > RATE_WINDOW {
                self.window.remove(0);
            }
            self.window.push(err);
        }
        if err > RELAX_START {
            return;
        }
        let omega = match self.mode {
            Some(OverRelaxation::Fixed(w)) => w,
            Some(OverRelaxation::Adaptive) => match window_rate(&self.window) {
                Some(theta) => young_omega(theta),
                None => return,
            },
            Some(OverRelaxation::Anderson { .. }) | None => return,
        };
        self.omega = Some(omega);
        self.best = Some((err, f.to_vec(), g.to_vec()));
        if self.annealed && matches!(self.mode, Some(OverRelaxation::Adaptive)) {
            self.start = Some((err, f.to_vec(), g.to_vec()));
        }
        self.window.clear();
        self.window.push(err);
    }

    /// After a relaxed iteration with residual `err` (both marginals) of the pair `(f, g)`.
    pub(crate) fn after_relaxed(
        &mut self,
        err: f64,
        tol: f64,
        f: &mut Vec<f64>,
        g: &mut Vec<f64>,
    ) -> Relaxed {
        self.relaxed += 1;
        self.last_omega = self.omega;
        let best_err = self.best.as_ref().map_or(f64::INFINITY, |b| b.0);
        self.stalled = if err < best_err { 0 } else { self.stalled + 1 };
        // Blow-up, or no progress for as long as the rate ω − 1 would take to gain three decades
        // (at least RELAX_STALL_MIN iterations: a round-off floor of the two-marginal residual
        // above `tol`): back to the best pair, then plain Sinkhorn.
        let stall = self.omega.map_or(RELAX_STALL_MIN, |w| {
            ((1e-3f64).ln() / (w - 1.0).max(1e-3).ln()).ceil() as usize
        });
        if !err.is_finite()
            || err > RELAX_BLOWUP * best_err
            || self.stalled >= stall.max(RELAX_STALL_MIN)
        {
            if let Some((_, bf, bg)) = self.best.take() {
                *f = bf;
                *g = bg;
            }
            self.restored = true;
            self.finish();
            return Relaxed::Restored;
        }
        if err < best_err {
            if let Some(best) = &mut self.best {
                best.0 = err;
                best.1.copy_from_slice(f);
                best.2.copy_from_slice(g);
            }
        }
        if err <= tol {
            self.finish();
            return Relaxed::Continue;
        }
        self.window.push(err);
        if let (Some(OverRelaxation::Adaptive), Some(w)) = (self.mode, self.omega) {
            if self.window.len() > RATE_WINDOW {
                let rate = window_rate(&self.window);
                // Young's inversion for omega below the optimum: the plain rate theta that
                // explains the observed rate rho at omega, and its optimal factor.
                let young = |rho: f64| {
                    let sigma = (rho + w - 1.0) / (w * rho.sqrt());
                    young_omega(sigma * sigma)
                };
                // First window after eps-scaling: far slower than predicted means the plain rate
                // was grossly underestimated; restart from the start pair with a much larger
                // factor (theory/sinkhorn.md §4b).
                if let Some((start_err, sf, sg)) = self.start.take() {
                    if let Some(rho) = rate.filter(|&r| r < 1.0 && r > (w - 1.0).powf(RESTART_GAIN))
                    {
                        let next = young(rho).max(2.0 - (2.0 - w) / RESTART_JUMP);
                        self.omega = Some(next.min(OMEGA_MAX));
                        f.copy_from_slice(&sf);
                        g.copy_from_slice(&sg);
                        self.best = Some((start_err, sf, sg));
                        self.stalled = 0;
                        self.window.clear();
                        return Relaxed::Restarted;
                    }
                }
                // Later windows: raise omega when the window is clearly slower than the
                // omega - 1 of the optimum.
                if let Some(rho) = rate.filter(|&r| r < 1.0 && r > (w - 1.0).sqrt()) {
                    let next = young(rho);
                    if next > w {
                        self.omega = Some(next);
                    }
                }
                self.window.clear();
                self.window.push(err);
            }
        }
        Relaxed::Continue
    }

    fn finish(&mut self) {
        self.omega = None;
        self.done = true;
        self.best = None;
    }
}

/// Residual below which the over-relaxed phase starts (plain Sinkhorn before: far from the
/// solution a relaxed step can overshoot; `theory/sinkhorn.md` §4b).
const RELAX_START: f64 = 1e-1;
/// A relaxed residual above this multiple of the best one restores the best pair and ends
/// over-relaxation.
const RELAX_BLOWUP: f64 = 1e3;
/// No new best residual for $\max(100,\lceil\ln10^{-3}/\ln(\omega-1)\rceil)$ relaxed iterations
/// (the predicted rate $\omega-1$ would have gained three decades) also restores the best pair
/// and ends over-relaxation: a converging relaxed phase improves on its best within a few
/// oscillation periods of its complex pair (`theory/sinkhorn.md` §4b).
const RELAX_STALL_MIN: usize = 100;

/// Target eps of iteration `k` (0-based) under a schedule of `stages` × `per_stage`.
#[inline]
pub(crate) fn eps_at(k: usize, stages: &[f64], per_stage: usize, eps: f64) -> f64 {
    stages.get(k / per_stage.max(1)).copied().unwrap_or(eps)
}

/// The stopping logic shared by the alternating and the symmetric solvers: record the residual
/// of iteration `k` (1-based), fail on a non-finite residual, and say whether to stop
/// (`Some(converged)`) or continue (`None`). Convergence is only declared after the annealing
/// iterations of eps-scaling.
/// The tolerance the stop rule applies at `eps` for a problem whose costs spread over
/// `spread` (theory/sinkhorn.md §3b).
///
/// Both residuals (the L1 marginal violation, and $\max\lvert T(f)-f\rvert/\varepsilon$) are
/// relative to eps: they bound the error of the potentials by about $\varepsilon\times$
/// residual. Above the cost spread $S$ that is no longer small against the values, and any
/// start, the zero one included, passes `tol` at a large enough eps. So for
/// $\varepsilon>S$ the rule asks for `tol`$\cdot S/\varepsilon$, which keeps the error of the
/// potentials below `tol`$\cdot S$ at every eps.
pub(crate) fn effective_tol(tol: f64, eps: f64, spread: f64) -> f64 {
    if spread > 0.0 && spread < eps {
        tol * (spread / eps)
    } else {
        tol
    }
}

pub(crate) fn stop_rule(
    k: usize,
    residual: f64,
    tol: f64,
    annealing: usize,
    total_max: usize,
    params: &SinkhornParams,
    history: &mut Vec<f64>,
) -> Result<Option<bool>, SinkhornError> {
    if params.record_history {
        history.push(residual);
    }
    if !residual.is_finite() {
        return Err(SinkhornError::Breakdown { iteration: k });
    }
    if crate::interrupt::requested() {
        return Err(SinkhornError::Interrupted { iterations: k });
    }
    if k > annealing && residual <= tol {
        return Ok(Some(true));
    }
    if k >= total_max {
        return Ok(Some(false));
    }
    Ok(None)
}

fn run(
    engine: &Engine<'_>,
    params: &SinkhornParams,
    mut g: Vec<f64>,
    scale: f64,
    relaxation: Option<OverRelaxation>,
    eps_scaling: Option<&EpsScaling>,
) -> Result<SinkhornOutput, SinkhornError> {
    let eps = params.eps;
    let (stages, per_stage) = match eps_scaling {
        Some(s) => (s.stages(eps, scale), s.iters_per_stage),
        None => (Vec::new(), 1),
    };
    let annealing = stages.len() * per_stage;
    let total_max = annealing + params.max_iters;
    let tol = effective_tol(params.tol, eps, engine.cost_spread);
    let (a, b) = (engine.a, engine.b);
    let mut f = vec![0.0; engine.n];
    let mut lse = vec![0.0; engine.n];
    // T(f, mu) before relaxation (only used while over-relaxing).
    let mut t = vec![0.0; engine.m];
    engine.transform(Side::Rows, &g, eps_at(0, &stages, per_stage, eps), &mut f);
    let mut history = Vec::new();
    let mut k = 0;
    let mut relax = Relaxer::new(relaxation, annealing > 0);
    // F(f) for Anderson mixing (allocated on first use).
    let mut mix_buf: Option<Vec<f64>> = None;
    let (err, converged) = loop {
        let e = eps_at(k, &stages, per_stage, eps);
        let inv_e = 1.0 / e;
        // Over-relaxed g-update (theory/sinkhorn.md §4b): the second marginal of the new pair
        // is b_j exp((g_j - T(f)_j)/e); its L1 violation joins the residual.
        let omega = relax.omega();
        let mut col_err = 0.0;
        match omega {
            Some(w) => {
                engine.transform(Side::Cols, &f, e, &mut t);
                for ((gj, &tj), &bj) in g.iter_mut().zip(&t).zip(b) {
                    let gn = (1.0 - w) * *gj + w * tj;
                    col_err += bj * ((gn - tj) * inv_e).exp_m1().abs();
                    *gj = gn;
                }
            }
            None => engine.transform(Side::Cols, &f, e, &mut g),
        }
        engine.lse(Side::Rows, &g, e, &mut lse);
        let mut err = col_err;
        for ((&ai, &fi), &li) in a.iter().zip(&f).zip(&lse) {
            err += ai * (fi * inv_e + li).exp_m1().abs();
        }
        k += 1;
        if omega.is_some() {
            match relax.after_relaxed(err, tol, &mut f, &mut g) {
                Relaxed::Restored | Relaxed::Restarted => continue,
                Relaxed::Continue => {
                    if params.record_history {
                        history.push(err);
                    }
                    if crate::interrupt::requested() {
                        return Err(SinkhornError::Interrupted { iterations: k });
                    }
                    if k >= total_max {
                        break (err, false);
                    }
                }
            }
        } else {
            if let Some(converged) =
                stop_rule(k, err, tol, annealing, total_max, params, &mut history)?
            {
                break (err, converged);
            }
            if k > annealing {
                relax.after_plain(err, &f, &g);
            }
        }
        match relax.omega() {
            Some(w) => {
                for (fi, &li) in f.iter_mut().zip(&lse) {
                    *fi = (1.0 - w) * *fi + w * (li * -e);
                }
            }
            None if k > annealing && relax.mixing() => {
                let fp = mix_buf.get_or_insert_with(|| vec![0.0; engine.n]);
                for (p, &li) in fp.iter_mut().zip(&lse) {
                    *p = li * -e;
                }
                relax.mix(&mut f, fp, err);
            }
            None => {
                for (fi, &li) in f.iter_mut().zip(&lse) {
                    *fi = li * -e;
                }
            }
        }
    };
    if !converged && params.strict {
        return Err(SinkhornError::NotConverged {
            iterations: k,
            marginal_error: err,
        });
    }
    let ot = dot(engine.a, &f) + dot(engine.b, &g);
    let obj = plans::objectives_engine(engine, &f, &g, eps);
    Ok(SinkhornOutput {
        f,
        g,
        ot,
        primal: obj.primal,
        transport_cost: obj.transport_cost,
        iterations: k,
        marginal_error: err,
        converged,
        termination: if converged {
            Termination::Converged
        } else {
            Termination::MaxIterations
        },
        history,
        mode: engine.mode,
        eps,
        cost: params.cost,
        acceleration: AccelerationReport {
            policy: params.acceleration,
            over_relaxation: relax.report(),
            eps_scaling: eps_scaling.map(|_| EpsScalingReport {
                stages: stages.len(),
                iterations: annealing,
                start: stages.first().copied().unwrap_or(eps),
            }),
        },
        truncation_bound: None,
    })
}

/// The dense plan of a solved pair of clouds (see [`plans::plan_from_potentials`]).
#[track_caller]
pub fn plan(out: &SinkhornOutput, x: &PointCloud, y: &PointCloud) -> DMatrix<f64> {
    plans::plan_from_potentials(&out.f, &out.g, Geometry::Clouds { x, y }, out.eps, out.cost)
}

/// Marginals of the plan of a solved pair of clouds.
#[track_caller]
pub fn marginals(out: &SinkhornOutput, x: &PointCloud, y: &PointCloud) -> (Vec<f64>, Vec<f64>) {
    plans::marginals_from_potentials(&out.f, &out.g, Geometry::Clouds { x, y }, out.eps, out.cost)
}
