//! Step-by-step Sinkhorn: every half-step's potentials are observable.
//!
//! Half-steps are numbered $1,2,\dots$ from the initial pair $(f_0,g_0)$.
//! [`Stepper::half_step`] alternates, starting with the $f$-update (row scaling):
//! half-step $2k-1$ is $f_k=T(g_{k-1},\nu)$ and half-step $2k$ is $g_k=T(f_k,\mu)$, exactly the
//! order of [`crate::sinkhorn::solve`], so that after $2K$ half-steps the pair equals the
//! output of the *plain* solver ([`crate::sinkhorn::Acceleration::Plain`]) with
//! `iterations = K` bit for bit (same engine, same arithmetic; test
//! `stepper_reproduces_solver` in `tests/sinkhorn_stepper.rs`). The default solver accelerates
//! (over-relaxation, eps-scaling) and only agrees with the stepper's limit to the tolerance.
//!
//! From $f_0=g_0=0$, the plan after one half-step is the row-softmax of $-C/\varepsilon$ (the
//! one-sided coupling of Deng et al.), and after $L$ (odd) half-steps the row-normalised plan
//! is seed 003's "L-step Sinkhorn" coupling (Algorithm 1: odd steps scale rows, even steps
//! columns).

use nalgebra::DMatrix;

use super::engine::dot;
use super::engine::{Engine, Side};
use super::error::{check_eps, check_finite, check_len, SinkhornError};
use super::kernel::ExpKernel;
use super::measure::{Geometry, PointCloud};
use super::params::{Mode, SinkhornParams};
use super::plan;
use crate::Cost;

/// Which potential a half-step updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HalfStep {
    /// $f\leftarrow T(g,\nu)$ (row scaling; first marginal becomes exact).
    F,
    /// $g\leftarrow T(f,\mu)$ (column scaling; second marginal becomes exact).
    G,
}

/// One recorded half-step of [`Stepper::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct Iterate {
    /// 1-based half-step number since the stepper was created.
    pub index: usize,
    /// Which potential it updated.
    pub kind: HalfStep,
    /// $f$ after the half-step.
    pub f: Vec<f64>,
    /// $g$ after the half-step.
    pub g: Vec<f64>,
    /// L1 violation, *before* this half-step, of the marginal it then enforced
    /// (first marginal for an $f$-update, second for a $g$-update): a free by-product.
    pub violation_before: f64,
}

/// A Sinkhorn iteration driven one half-step at a time.
pub struct Stepper<'a> {
    engine: Engine<'a>,
    geom: Geometry<'a>,
    eps: f64,
    cost: Cost,
    f: Vec<f64>,
    g: Vec<f64>,
    lse_f: Vec<f64>,
    lse_g: Vec<f64>,
    half_steps: usize,
    last: Option<HalfStep>,
}

impl<'a> Stepper<'a> {
    /// A stepper on two clouds from $(f_0,g_0)$ (mode [`Mode::Auto`]).
    pub fn new(
        x: &'a PointCloud,
        y: &'a PointCloud,
        eps: f64,
        cost: Cost,
        f0: &[f64],
        g0: &[f64],
    ) -> Result<Stepper<'a>, SinkhornError> {
        let params = SinkhornParams::new(eps).with_cost(cost).plain();
        Stepper::from_geometry(Geometry::Clouds { x, y }, &params, f0, g0)
    }

    /// A stepper on two clouds from $f_0=g_0=0$ (the Gibbs kernel itself).
    pub fn cold(
        x: &'a PointCloud,
        y: &'a PointCloud,
        eps: f64,
        cost: Cost,
    ) -> Result<Stepper<'a>, SinkhornError> {
        Stepper::new(x, y, eps, cost, &vec![0.0; x.len()], &vec![0.0; y.len()])
    }

    /// The general constructor: any geometry; `params.eps`, `params.cost` and `params.mode`
    /// are used (tolerances, scaling, acceleration and history are not: the caller drives the
    /// iteration, which is plain Sinkhorn).
    pub fn from_geometry(
        geom: Geometry<'a>,
        params: &SinkhornParams,
        f0: &[f64],
        g0: &[f64],
    ) -> Result<Stepper<'a>, SinkhornError> {
        let eps = check_eps(params.eps)?;
        let (n, m) = geom.shape();
        check_len("length of f0 vs first measure", n, f0.len())?;
        check_len("length of g0 vs second measure", m, g0.len())?;
        check_finite(f0, "f0")?;
        check_finite(g0, "g0")?;
        let engine = Engine::new(geom, params.cost, params.mode, ExpKernel::default())?;
        Ok(Stepper {
            engine,
            geom,
            eps,
            cost: params.cost,
            f: f0.to_vec(),
            g: g0.to_vec(),
            lse_f: vec![0.0; n],
            lse_g: vec![0.0; m],
            half_steps: 0,
            last: None,
        })
    }

    /// $f\leftarrow T(g,\nu)$. Returns $\lVert P\mathbb1-a\rVert_1$ of the pair *before* the
    /// update (after it, the first marginal is exact).
    pub fn step_f(&mut self) -> f64 {
        let e = self.eps;
        self.engine.lse(Side::Rows, &self.g, e, &mut self.lse_f);
        let v = violation(self.engine.a, &self.f, &self.lse_f, e);
        for (fi, &l) in self.f.iter_mut().zip(&self.lse_f) {
            *fi = l * -e;
        }
        self.half_steps += 1;
        self.last = Some(HalfStep::F);
        v
    }

    /// $g\leftarrow T(f,\mu)$. Returns $\lVert P^\top\mathbb1-b\rVert_1$ of the pair *before*
    /// the update.
    pub fn step_g(&mut self) -> f64 {
        let e = self.eps;
        self.engine.lse(Side::Cols, &self.f, e, &mut self.lse_g);
        let v = violation(self.engine.b, &self.g, &self.lse_g, e);
        for (gj, &l) in self.g.iter_mut().zip(&self.lse_g) {
            *gj = l * -e;
        }
        self.half_steps += 1;
        self.last = Some(HalfStep::G);
        v
    }

    /// The next half-step of the alternation: the $f$-update if none was done yet or the last
    /// one was a $g$-update, else the $g$-update. Returns which one it did.
    pub fn half_step(&mut self) -> HalfStep {
        match self.last {
            None | Some(HalfStep::G) => {
                self.step_f();
                HalfStep::F
            }
            Some(HalfStep::F) => {
                self.step_g();
                HalfStep::G
            }
        }
    }

    /// Exactly `l` half-steps of the alternation; with `keep`, every iterate is returned
    /// (`l` entries), else an empty vector.
    pub fn run(&mut self, l: usize, keep: bool) -> Vec<Iterate> {
        let mut out = Vec::with_capacity(if keep { l } else { 0 });
        for _ in 0..l {
            let kind = match self.last {
                None | Some(HalfStep::G) => HalfStep::F,
                Some(HalfStep::F) => HalfStep::G,
            };
            let v = match kind {
                HalfStep::F => self.step_f(),
                HalfStep::G => self.step_g(),
            };
            if keep {
                out.push(Iterate {
                    index: self.half_steps,
                    kind,
                    f: self.f.clone(),
                    g: self.g.clone(),
                    violation_before: v,
                });
            }
        }
        out
    }

    /// Current $f$.
    pub fn f(&self) -> &[f64] {
        &self.f
    }
    /// Current $g$.
    pub fn g(&self) -> &[f64] {
        &self.g
    }
    /// Half-steps done so far.
    pub fn half_steps(&self) -> usize {
        self.half_steps
    }
    /// The last half-step done, if any.
    pub fn last(&self) -> Option<HalfStep> {
        self.last
    }
    /// The regularisation.
    pub fn eps(&self) -> f64 {
        self.eps
    }
    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.engine.mode
    }
    /// Replace the potentials (e.g. to restart from a modified pair); lengths must match.
    pub fn set_potentials(&mut self, f: &[f64], g: &[f64]) -> Result<(), SinkhornError> {
        check_len("length of f", self.f.len(), f.len())?;
        check_len("length of g", self.g.len(), g.len())?;
        check_finite(f, "f")?;
        check_finite(g, "g")?;
        self.f.copy_from_slice(f);
        self.g.copy_from_slice(g);
        Ok(())
    }

    /// L1 violations $(\lVert P\mathbb1-a\rVert_1,\lVert P^\top\mathbb1-b\rVert_1)$ of the
    /// current pair (two log-sum-exp passes).
    pub fn marginal_errors(&self) -> (f64, f64) {
        let (r, c) = plan::marginals_engine(&self.engine, &self.f, &self.g, self.eps);
        let l1 = |p: &[f64], w: &[f64]| p.iter().zip(w).map(|(a, b)| (a - b).abs()).sum();
        (l1(&r, self.engine.a), l1(&c, self.engine.b))
    }

    /// Both marginals of the current plan.
    pub fn marginals(&self) -> (Vec<f64>, Vec<f64>) {
        plan::marginals_engine(&self.engine, &self.f, &self.g, self.eps)
    }

    /// Dual value $\sum a_if_i+\sum b_jg_j$ of the current pair.
    pub fn dual_value(&self) -> f64 {
        dot(self.engine.a, &self.f) + dot(self.engine.b, &self.g)
    }

    /// The dense plan $a_ib_je^{(f_i+g_j-C_{ij})/\varepsilon}$ of the current pair.
    pub fn plan(&self) -> DMatrix<f64> {
        plan::plan_from_potentials(&self.f, &self.g, self.geom, self.eps, self.cost)
    }

    /// The row-normalised plan $P_{ij}/\sum_kP_{ik}$ of the current pair (the conditional law
    /// of $y$ given $x_i$; it depends on $g$ only).
    pub fn row_normalised_plan(&self) -> DMatrix<f64> {
        plan::row_normalise(&self.plan())
    }
}

impl std::fmt::Debug for Stepper<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepper")
            .field("n", &self.engine.n)
            .field("m", &self.engine.m)
            .field("eps", &self.eps)
            .field("cost", &self.cost)
            .field("mode", &self.engine.mode)
            .field("half_steps", &self.half_steps)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

/// $\sum_iw_i\lvert\operatorname{expm1}(h_i/\varepsilon+\mathrm{lse}_i)\rvert$.
fn violation(w: &[f64], h: &[f64], lse: &[f64], eps: f64) -> f64 {
    let inv = 1.0 / eps;
    let mut s = 0.0;
    for ((&wi, &hi), &li) in w.iter().zip(h).zip(lse) {
        s += wi * (hi * inv + li).exp_m1().abs();
    }
    s
}
