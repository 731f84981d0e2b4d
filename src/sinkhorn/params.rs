//! Parameters of the Sinkhorn solvers and the termination report.

use serde::{Deserialize, Serialize};

use super::error::{check_eps, SinkhornError};
use crate::Cost;

/// How the cost enters the inner log-sum-exp.
///
/// * [`Mode::Dense`] materialises the cost matrix once ($C$ and $C^\top$, row-major, so that
///   both half-steps stream contiguous rows): memory $2NM$ doubles ($N^2$ for a symmetric
///   problem). The cost of the problem is computed exactly once.
/// * [`Mode::Streaming`] recomputes each row of costs from coordinate differences just before
///   its log-sum-exp, into a per-thread buffer: memory $O(N+M)$.
/// * [`Mode::Auto`] picks [`Mode::Dense`] when the dense matrices take at most a quarter of
///   physical memory **and** at most [`DENSE_AUTO_MAX_BYTES`] **and** the points have
///   dimension $d\ge$ [`DENSE_AUTO_MIN_DIM`] (for small $d$ recomputing a cost, $3d$ flops,
///   is cheaper than reading it back from memory); otherwise [`Mode::Streaming`]. For a
///   given cost matrix, `Auto` is dense when the transposed copy fits in a quarter of memory.
///   For two point clouds, [`crate::sinkhorn::solve`] and [`crate::sinkhorn::solve_warm`]
///   first ask [`crate::sinkhorn::auto_picks_sparse`]: [`Mode::Sparse`] when
///   $NM\ge1.6\cdot10^7$, $d\le2$, the estimated kept fraction of pairs is at most 80 % and
///   the kernel's stored values fit in a quarter of physical memory (the measured crossover of
///   theory/sinkhorn.md §12). The step API, symmetric problems
///   and cost matrices never run sparse.
///
/// * [`Mode::Sparse`] truncates the kernel to the pairs whose plan entry is above a relative
///   bound and iterates on them only, with intrinsic eps-scaling and a multiscale start
///   (Schmitzer 2019; [`crate::sinkhorn::solve_sparse`], theory/sinkhorn.md §12). Point clouds
///   and the alternating solver only (other solvers refuse it).
///
/// Dense and streaming feed the *same* row kernel with bit-identical cost rows, so they return
/// bit-identical potentials (test `dense_equals_streaming` in `tests/sinkhorn_engine.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Decide from the problem size (rule above).
    #[default]
    Auto,
    /// Materialised cost matrices.
    Dense,
    /// Costs recomputed on the fly, memory $O(N+M)$.
    Streaming,
    /// Truncated kernel (small eps), memory $O(N+M+\#\text{kept pairs})$.
    Sparse,
}

/// Largest dense footprint `Mode::Auto` accepts: 512 MiB.
pub const DENSE_AUTO_MAX_BYTES: usize = 512 << 20;
/// Smallest point dimension for which `Mode::Auto` considers the dense mode.
pub const DENSE_AUTO_MIN_DIM: usize = 8;

impl Mode {
    /// Stable lower-case name (`auto`, `dense`, `streaming`), used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Dense => "dense",
            Mode::Streaming => "streaming",
            Mode::Sparse => "sparse",
        }
    }

    /// Resolve `Auto` for a problem whose dense form takes `dense_bytes` and whose points have
    /// dimension `dim` (`None` for a given cost matrix).
    pub(crate) fn resolve(self, dense_bytes: usize, dim: Option<usize>) -> Mode {
        match self {
            Mode::Dense | Mode::Streaming | Mode::Sparse => self,
            Mode::Auto => {
                let fits = dense_bytes <= physical_memory_bytes() / 4;
                let pays = match dim {
                    Some(d) => d >= DENSE_AUTO_MIN_DIM && dense_bytes <= DENSE_AUTO_MAX_BYTES,
                    None => true,
                };
                if fits && pays {
                    Mode::Dense
                } else {
                    Mode::Streaming
                }
            }
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Mode::Auto),
            "dense" => Ok(Mode::Dense),
            "streaming" | "online" => Ok(Mode::Streaming),
            "sparse" => Ok(Mode::Sparse),
            other => Err(format!(
                "unknown mode '{other}' (expected auto, dense, streaming or sparse)"
            )),
        }
    }
}

pub use crate::error::physical_memory_bytes;

/// Geometric annealing of the regularisation ("eps-scaling", Schmitzer 2019 §3.2; Feydy 2020
/// thesis §3.3).
///
/// Schedule: $\varepsilon_s=\max(\varepsilon,\ \varepsilon_0\,\theta^s)$, $s=0,1,\dots$, with
/// `iters_per_stage` full iterations at each $\varepsilon_s>\varepsilon$, then the ordinary
/// iteration at the target $\varepsilon$ until the tolerance is met. $\varepsilon_0$ is
/// `start` if given, else the cost scale of the problem: $\kappa\,\mathrm{diam}^2$ with
/// $\mathrm{diam}$ the diagonal of the bounding box of both supports and $\kappa$ the factor
/// of the cost (for a cost matrix, $\max C-\min C$). The potentials are carried from stage to
/// stage (they are in the units of the cost, so no rescaling is needed).
///
/// The annealing iterations are counted in `SinkhornOutput::iterations` and appear in the
/// history, but do not count against `max_iters` (which bounds the iterations at the target
/// eps).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpsScaling {
    /// Ratio $\theta\in(0,1)$ between consecutive stages. Default 0.5.
    pub factor: f64,
    /// Full iterations per stage ($\ge 1$). Default 3.
    pub iters_per_stage: usize,
    /// $\varepsilon_0$; `None` (default) = the cost scale of the problem (see above).
    pub start: Option<f64>,
}

impl Default for EpsScaling {
    fn default() -> Self {
        EpsScaling {
            factor: 0.5,
            iters_per_stage: 3,
            start: None,
        }
    }
}

impl EpsScaling {
    /// Check the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), SinkhornError> {
        if !(self.factor.is_finite() && self.factor > 0.0 && self.factor < 1.0) {
            return Err(SinkhornError::InvalidParameter {
                name: "eps_scaling.factor",
                message: format!("must lie in (0, 1), got {}", self.factor),
            });
        }
        if self.iters_per_stage == 0 {
            return Err(SinkhornError::InvalidParameter {
                name: "eps_scaling.iters_per_stage",
                message: "must be at least 1".into(),
            });
        }
        if let Some(s) = self.start {
            check_eps(s).map_err(|_| SinkhornError::InvalidParameter {
                name: "eps_scaling.start",
                message: format!("must be finite and > 0, got {s}"),
            })?;
        }
        Ok(())
    }

    /// The annealing stages strictly above `eps`, from `scale` (used when `start` is `None`).
    pub fn stages(&self, eps: f64, scale: f64) -> Vec<f64> {
        let e0 = self.start.unwrap_or(scale);
        let mut out = Vec::new();
        let mut e = e0;
        // at most 200 stages (factor 0.5 spans 60 decades)
        while e > eps && e.is_finite() && out.len() < 200 {
            out.push(e);
            e *= self.factor;
        }
        out
    }
}

/// Parameters of [`crate::sinkhorn::solve`] and friends.
///
/// `eps` has no meaningful default: build with [`SinkhornParams::new`] and adjust fields, or
/// `SinkhornParams { eps, ..Default::default() }` (whose `eps` placeholder 1.0 is then
/// overwritten). Defaults: `cost` [`Cost::SqEuclidean`], `tol` `1e-9`, `max_iters` `10_000`,
/// `mode` [`Mode::Auto`], `acceleration` [`Acceleration::Auto`] (no explicit eps-scaling or
/// over-relaxation), `strict` false, `record_history` true.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinkhornParams {
    /// Regularisation $\varepsilon>0$, in the units of the cost.
    pub eps: f64,
    /// Ground cost (ignored for a [`crate::sinkhorn::CostMatrix`]).
    pub cost: Cost,
    /// Stop when the L1 violation of the first marginal $\lVert P\mathbb 1-a\rVert_1$ of the
    /// current pair $(f,g)$ with $g=T(f,\mu)$ is $\le$ `tol`. Range $(0,\infty)$, default
    /// `1e-9`. For the symmetric solver: $\max_i\lvert T(f,\mu)_i-f_i\rvert/\varepsilon$.
    /// Both residuals are relative to eps; above the cost spread $S$ (bounding-box diameter²
    /// times the cost factor, or the range of a cost matrix) the solvers ask for
    /// `tol`$\cdot S/\varepsilon$ instead, so that the potentials are right to about
    /// `tol`$\cdot S$ at every eps (theory/sinkhorn.md §3b).
    pub tol: f64,
    /// Maximal number of iterations at the target eps ($\ge 1$). Default 10 000.
    pub max_iters: usize,
    /// Dense or streaming kernels.
    pub mode: Mode,
    /// Explicit eps-scaling (overrides the choice of `acceleration`; `None`, the default,
    /// leaves it to `acceleration`).
    pub eps_scaling: Option<EpsScaling>,
    /// `true`: hitting `max_iters` is `Err(NotConverged)`. `false`: `Ok` with
    /// `converged = false` and the residual.
    pub strict: bool,
    /// Keep the residual of every iteration in `history`.
    pub record_history: bool,
    /// Explicit over-relaxation of both half-steps (alternating solver only; overrides the
    /// choice of `acceleration`; `None`, the default, leaves it to `acceleration`). See
    /// [`OverRelaxation`] and `theory/sinkhorn.md` §4b.
    pub over_relaxation: Option<OverRelaxation>,
    /// The acceleration policy of the alternating solver for whatever `eps_scaling` and
    /// `over_relaxation` leave unset: [`Acceleration::Auto`] (default) or
    /// [`Acceleration::Plain`]. What ran is reported in `SinkhornOutput::acceleration`.
    pub acceleration: Acceleration,
}

impl Default for SinkhornParams {
    fn default() -> Self {
        SinkhornParams {
            eps: 1.0,
            cost: Cost::SqEuclidean,
            tol: 1e-9,
            max_iters: 10_000,
            mode: Mode::Auto,
            eps_scaling: None,
            strict: false,
            record_history: true,
            over_relaxation: None,
            acceleration: Acceleration::Auto,
        }
    }
}

impl SinkhornParams {
    /// Defaults with the given `eps`.
    pub fn new(eps: f64) -> Self {
        SinkhornParams {
            eps,
            ..Default::default()
        }
    }
    /// Set the cost.
    pub fn with_cost(mut self, cost: Cost) -> Self {
        self.cost = cost;
        self
    }
    /// Set the tolerance.
    pub fn with_tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
    /// Set `max_iters`.
    pub fn with_max_iters(mut self, max_iters: usize) -> Self {
        self.max_iters = max_iters;
        self
    }
    /// Set the mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// Turn on eps-scaling with the default schedule.
    pub fn with_eps_scaling(mut self) -> Self {
        self.eps_scaling = Some(EpsScaling::default());
        self
    }
    /// Over-relax both half-steps with a fixed factor `omega` in `[1, 2)`
    /// ([`OverRelaxation::Fixed`]).
    pub fn with_over_relaxation(mut self, omega: f64) -> Self {
        self.over_relaxation = Some(OverRelaxation::Fixed(omega));
        self
    }
    /// Over-relax both half-steps with the factor chosen from the measured rate
    /// ([`OverRelaxation::Adaptive`]).
    pub fn with_adaptive_over_relaxation(mut self) -> Self {
        self.over_relaxation = Some(OverRelaxation::Adaptive);
        self
    }
    /// Plain Sinkhorn (no automatic acceleration; explicit `eps_scaling` /
    /// `over_relaxation` still apply): [`Acceleration::Plain`].
    pub fn plain(mut self) -> Self {
        self.acceleration = Acceleration::Plain;
        self
    }
    /// Strict mode (non-convergence is an error).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Check every field's documented range.
    pub fn validate(&self) -> Result<(), SinkhornError> {
        crate::sinkhorn::kernel::simd_path()?;
        check_eps(self.eps)?;
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(SinkhornError::InvalidTolerance { tol: self.tol });
        }
        if self.max_iters == 0 {
            return Err(SinkhornError::InvalidParameter {
                name: "max_iters",
                message: "must be at least 1".into(),
            });
        }
        if let Some(s) = &self.eps_scaling {
            s.validate()?;
        }
        if let Some(OverRelaxation::Anderson { memory }) = self.over_relaxation {
            if !(1..=ANDERSON_MAX_MEMORY).contains(&memory) {
                return Err(SinkhornError::InvalidParameter {
                    name: "over_relaxation",
                    message: format!(
                        "the Anderson memory must lie in 1..={ANDERSON_MAX_MEMORY}, got {memory}"
                    ),
                });
            }
        }
        if let Some(OverRelaxation::Fixed(w)) = self.over_relaxation {
            if !(w.is_finite() && (1.0..2.0).contains(&w)) {
                return Err(SinkhornError::InvalidParameter {
                    name: "over_relaxation",
                    message: format!("omega must lie in [1, 2), got {w}"),
                });
            }
        }
        Ok(())
    }
}

/// Over-relaxation of the alternating solver (`theory/sinkhorn.md` §4b).
///
/// Both half-steps are relaxed, $g\leftarrow(1-\omega)g+\omega T(f,\mu)$ then
/// $f\leftarrow(1-\omega)f+\omega T(g,\nu)$, $\omega\in[1,2)$. Near the solution this is
/// successive over-relaxation of a consistently ordered two-block system (Young): with $\theta$
/// the linear rate of plain Sinkhorn, $\omega^\star=2/(1+\sqrt{1-\theta})$ gives the rate
/// $\omega^\star-1\approx1-2\sqrt{1-\theta}$ instead of $\theta\approx1-(1-\theta)$; any
/// $\omega>\omega^\star$ gives exactly $\omega-1$ (so a fixed $\omega$ that is too large slows
/// an easy problem down), a smaller one sits in between.
///
/// Safeguards, both variants: plain iterations run until the marginal residual is below
/// $10^{-1}$; the best pair of the relaxed phase is kept, and a residual $10^3$ times above the
/// best (or non-finite) restores it and finishes with plain Sinkhorn. The relaxed phase ends
/// when its residual (both marginals) is below `tol`; plain iterations then finish the solve,
/// so the returned pair has the same contract as without relaxation (exact second marginal,
/// `ot` a dual lower bound). Not used during eps-scaling stages.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OverRelaxation {
    /// A fixed factor $\omega\in[1,2)$; $\omega=1$ is plain Sinkhorn, bit for bit.
    Fixed(f64),
    /// $\omega$ from the measured rate: $\theta$ is the geometric-mean residual ratio of the last
    /// 30 plain iterations when relaxation starts, and every 30 relaxed iterations the observed
    /// rate $\rho$ is inverted through Young's formula,
    /// $\sqrt\theta=(\rho+\omega-1)/(\omega\sqrt\rho)$, to raise $\omega$ when $\rho>\sqrt{\omega-1}$
    /// (clearly slower than the $\omega-1$ of the optimum: $\theta$ has grown, as it does when
    /// the slow modes of small-mass outliers dominate the tail). $\omega\le1.99$. After
    /// eps-scaling, a first relaxed window that gains less than a quarter of the decades
    /// predicted ($\rho>(\omega-1)^{1/4}$) restarts the relaxed phase once from its start
    /// pair with $2-\omega$ divided by 4 (or the inverted factor if larger): the rate measured
    /// right after annealing can underestimate the slow modes grossly (`theory/sinkhorn.md` §4b).
    Adaptive,
    /// Not an over-relaxation but the same slot of the solver: Anderson mixing of the
    /// $f$-updates at the target eps with this memory (1 to [`ANDERSON_MAX_MEMORY`]; [`ANDERSON_DEFAULT_MEMORY`] is
    /// the measured choice), safeguarded (`theory/sinkhorn.md` §4d). Both half-steps stay
    /// exact transforms, so every residual is that of a pair with an exact second marginal.
    /// The sparse mode supports it too.
    Anderson {
        /// Number of past differences in the least-squares mixing.
        memory: usize,
    },
}

/// Largest memory of [`OverRelaxation::Anderson`].
pub const ANDERSON_MAX_MEMORY: usize = 32;
/// The memory of `--over-relaxation anderson` (measured, `theory/sinkhorn.md` §4d).
pub const ANDERSON_DEFAULT_MEMORY: usize = 7;

/// The acceleration policy of the alternating solver ([`crate::sinkhorn::solve`] and
/// friends; `theory/sinkhorn.md` §4c). Explicit `eps_scaling` / `over_relaxation` in
/// [`SinkhornParams`] always win; the policy decides only what they leave unset.
///
/// * [`Acceleration::Auto`] (default): Anderson mixing of the $f$-updates
///   ([`OverRelaxation::Anderson`] with memory [`ANDERSON_DEFAULT_MEMORY`], safeguarded; its
///   first update at the target eps is plain, so a solve that converges within two iterations
///   there is plain Sinkhorn bit for bit; `theory/sinkhorn.md` §4d), and eps-scaling with
///   the default schedule when the solve starts cold ($g_0\equiv0$) and
///   $\varepsilon<$ [`AUTO_EPS_SCALING_BELOW`] $\times$ the cost scale $\varepsilon_0$ of
///   [`EpsScaling`] (a warm start is assumed to be close to the target eps already).
/// * [`Acceleration::Plain`]: plain Sinkhorn, the iterates of Cuturi (2013) in the log domain.
///   Use it wherever the iterates themselves are studied (IPFP iterates, iteration counts as a
///   time discretisation, claims about plain Sinkhorn).
///
/// The symmetric solver ([`crate::sinkhorn::solve_symmetric`]) and the step API
/// ([`crate::sinkhorn::Stepper`]) ignore the policy: the former has its own averaged update,
/// the latter is plain Sinkhorn by definition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Acceleration {
    /// Over-relaxation and eps-scaling where they pay (rule above).
    #[default]
    Auto,
    /// Plain Sinkhorn unless explicitly asked otherwise.
    Plain,
}

/// [`Acceleration::Auto`] turns on eps-scaling below this fraction of the cost scale
/// (measured: `theory/sinkhorn.md` §4c).
pub const AUTO_EPS_SCALING_BELOW: f64 = 5e-4;

impl Acceleration {
    /// Stable lower-case name (`auto`, `plain`), used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Acceleration::Auto => "auto",
            Acceleration::Plain => "plain",
        }
    }
}

/// What the alternating solver actually ran (`SinkhornOutput::acceleration`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccelerationReport {
    /// The policy of the parameters.
    pub policy: Acceleration,
    /// Over-relaxation in effect (requested explicitly or chosen by the policy), if any.
    pub over_relaxation: Option<RelaxationReport>,
    /// eps-scaling that ran (requested explicitly or chosen by the policy), if any.
    pub eps_scaling: Option<EpsScalingReport>,
}

/// The over-relaxation part of an [`AccelerationReport`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelaxationReport {
    /// The variant in effect.
    pub kind: OverRelaxation,
    /// The last factor used; `None` if the relaxed phase never started (the problem converged
    /// before the start conditions of §4b were met, i.e. the solve was plain Sinkhorn).
    pub omega: Option<f64>,
    /// Relaxed iterations done.
    pub relaxed_iterations: usize,
    /// A blow-up restored the best relaxed pair (the safeguard of §4b).
    pub restored: bool,
}

/// The eps-scaling part of an [`AccelerationReport`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpsScalingReport {
    /// Annealing stages run (strictly above the target eps).
    pub stages: usize,
    /// Annealing iterations (`stages × iters_per_stage`, included in `iterations`).
    pub iterations: usize,
    /// The first stage's eps ($\varepsilon_0$).
    pub start: f64,
}

impl OverRelaxation {
    /// Stable lower-case name (`fixed`, `adaptive`), used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            OverRelaxation::Fixed(_) => "fixed",
            OverRelaxation::Adaptive => "adaptive",
            OverRelaxation::Anderson { .. } => "anderson",
        }
    }
}

impl SinkhornParams {
    /// The over-relaxation and eps-scaling that the alternating solver runs for this problem:
    /// explicit settings, else the choice of `acceleration` (see [`Acceleration`]). `scale` is
    /// the cost scale $\varepsilon_0$ and `cold` says whether the solve starts from $g_0\equiv0$.
    pub fn resolve_acceleration(
        &self,
        scale: f64,
        cold: bool,
    ) -> (Option<OverRelaxation>, Option<EpsScaling>) {
        match self.acceleration {
            Acceleration::Plain => (self.over_relaxation, self.eps_scaling),
            Acceleration::Auto => {
                let relax = self.over_relaxation.or(Some(OverRelaxation::Anderson {
                    memory: ANDERSON_DEFAULT_MEMORY,
                }));
                let scaling = self.eps_scaling.or_else(|| {
                    (cold && scale.is_finite() && self.eps < AUTO_EPS_SCALING_BELOW * scale)
                        .then(EpsScaling::default)
                });
                (relax, scaling)
            }
        }
    }
}

/// Why an iteration stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Termination {
    /// The residual fell below `tol`.
    Converged,
    /// `max_iters` was reached first (the output carries the residual).
    MaxIterations,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Auto rule (module docs): dense only when the N×M matrix fits in a quarter of the
    /// physical memory, and, for point clouds, only for d ≥ DENSE_AUTO_MIN_DIM and at most
    /// DENSE_AUTO_MAX_BYTES.
    #[test]
    fn auto_never_picks_dense_beyond_a_quarter_of_memory() {
        let quarter = physical_memory_bytes() / 4;
        for dim in [None, Some(2), Some(16), Some(1000)] {
            assert_eq!(Mode::Auto.resolve(quarter + 1, dim), Mode::Streaming);
            assert_eq!(Mode::Auto.resolve(usize::MAX, dim), Mode::Streaming);
        }
        let small = (1usize << 20).min(quarter);
        assert_eq!(Mode::Auto.resolve(small, Some(16)), Mode::Dense);
        assert_eq!(Mode::Auto.resolve(small, Some(2)), Mode::Streaming);
        assert_eq!(Mode::Auto.resolve(small, None), Mode::Dense);
        assert_eq!(
            Mode::Auto.resolve(DENSE_AUTO_MAX_BYTES + 1, Some(16)),
            Mode::Streaming
        );
        // Explicit modes are obeyed.
        assert_eq!(Mode::Dense.resolve(usize::MAX, Some(2)), Mode::Dense);
        assert_eq!(Mode::Streaming.resolve(1, Some(16)), Mode::Streaming);
    }
}
