//! The sparse (truncated-kernel) mode: stabilised sparse scaling with eps-scaling and a
//! multiscale warm start (Schmitzer 2019, Alg. 2–3 in the log domain; theory/sinkhorn.md §12).
//!
//! At small $\varepsilon$ almost every entry of the plan
//! $P_{ij}=a_ib_je^{(f_i+g_j-C_{ij})/\varepsilon}$ is below double-precision relevance. With
//! potentials $(\hat f,\hat g)$ at hand, the kernel is *truncated* to
//! $$K=\{(i,j):\ \hat f_i+\hat g_j-C_{ij}\ \ge\ -\theta\,\varepsilon\}$$
//! (Schmitzer 2019, eq. (4.1)), stored per row as runs of consecutive columns in the k-d tree
//! order of $\nu$ (kept columns a few positions apart share a run, see `RUN_GAP`), and both
//! half-steps run on $K$ only, as vector loops over the runs.
//!
//! **Stored values, then exact exponentials.** With the kernel, its values are stored in
//! single precision relative to each row's largest,
//! $\tilde K_{ij}=e^{a_{ij}-r_i}$, $a_{ij}=(\hat f_i+\hat g_j-C_{ij})/\hat\varepsilon$,
//! $r_i=\max_ja_{ij}$ (4 bytes per pair; Schmitzer's stabilised kernel), and the half-steps are
//! sparse products in the scaling domain with no exponential per pair:
//! $$f_i=\hat f_i-\varepsilon(V+r_i)-\varepsilon\log\textstyle\sum_j\tilde K_{ij}\,b_je^{(g_j-\hat g_j)/\varepsilon-V},\qquad
//! g_j=\hat g_j-\varepsilon U-\varepsilon\log\sum_i\tilde K_{ij}\,a_ie^{(f_i-\hat f_i)/\varepsilon+r_i-U}$$
//! ($V$, $U$ the maxima of the exponents, so nothing overflows; a row or column sum outside
//! the normal range falls back to the exponentials). Each stored entry is the exact one times
//! $1+\delta$, $\lvert\delta\rvert\le2^{-24}$, so every potential is within
//! $2^{-24}\varepsilon$ of the exact half-step's. The iteration on the stored values does not
//! decide convergence: once its residual is below the tolerance, the iteration goes on with the
//! exact half-steps (the exponentials recomputed from the coordinates, a row log-sum-exp for
//! $f$ and an accumulation over the rows for $g$), which alone may return a pair as converged;
//! the first iteration of the target stage is exact too, so that a warm start from a converged
//! pair stops at once. (An iteration stopped by `max_iters` on the stored values reports their
//! residual, which is within about $2^{-23}$ of the exact one.) Values that do not fit in
//! memory, or kept entries below single precision's normal range, are not stored: then every
//! iteration is exact. Measured (theory/sinkhorn.md §12): $N=M=10^5$, $\varepsilon=10^{-3}$ to
//! L1 $10^{-6}$ in 4 min 0.6 s instead of 31 min, 807 MiB peak.
//!
//! While the
//! iterates $(f,g)$ move away from $(\hat f,\hat g)$ the mass of every dropped entry is bounded
//! by
//! $$\sum_{(i,j)\notin K}P_{ij}\ \le\ e^{-\theta\hat\varepsilon/\varepsilon}
//! \Bigl(\sum_ia_ie^{(f_i-\hat f_i)/\varepsilon}\Bigr)\Bigl(\sum_jb_je^{(g_j-\hat g_j)/\varepsilon}\Bigr)
//! =:B$$
//! ($\hat\varepsilon$ the eps at truncation), which is computed after every $g$-update; when it
//! exceeds the requested bound the kernel is truncated again at the current potentials
//! (Schmitzer's absorption + re-truncation). At the target stage, while the residual `err` is
//! large, the trigger is relaxed to $10^{-3}\,$`err` (the dropped mass then perturbs the
//! iteration far less than its own error; measured: 77 → 32 re-truncations at
//! $N=2\cdot10^4$, $\varepsilon=10^{-3}$); a pair that converges on a kernel above the
//! requested bound is not returned: the kernel is re-truncated and the iteration goes on. The returned `truncation_bound` is $B$ at the
//! returned pair: a certified upper bound on the L1 mass the truncation removed from the plan,
//! hence on the extra violation of either marginal of the full plan of the returned potentials.
//!
//! The search for $K$ is exact (never a missed pair): a k-d tree over $y$ with per-node bounds
//! of $\hat g$ ([`super::neighbours`]). Rows whose best entry is below $-\theta\varepsilon$ keep
//! every entry within $\theta\varepsilon$ of their best, so no row is ever empty; columns are
//! never empty because truncation happens right after a $g$-update (then every column has an
//! entry with $f_i+g_j-C_{ij}\ge0$).
//!
//! eps-scaling is intrinsic: the schedule of [`EpsScaling`] (the one in the parameters, else
//! the default) from the cost scale down to the target. Stages at large eps run on coarse
//! clouds (consecutive blocks of $4^k$ points in k-d tree order, replaced by their weighted
//! centroid) as long as their median squared radius is below `eps / 8` (in cost units), and
//! in any case on a level coarse enough that the stage keeps no more pairs than the target
//! stage will ($\varepsilon_s n_k\le\varepsilon n_0$: the kept pairs per row grow like eps
//! times the number of points), so the memory peak is the target stage's; each change of
//! level carries the potentials over by soft c-transforms against the coarser level
//! (Schmitzer 2019 §4.2; Feydy 2020, §3.3.3). Only the final stage, at the target eps on the
//! original points, decides convergence; it is over-relaxed as the dense and streaming solves
//! are (the policy of `params`, Anderson mixing by default; theory/sinkhorn.md §4b, §4d).

use rayon::prelude::*;

use super::error::SinkhornError;
use super::kernel::{exp_in_place, exp_nonpositive, lse_row_dispatch, FastExp};
use super::measure::PointCloud;
use super::neighbours::{KdTree, NodeBounds};
use super::params::{AccelerationReport, EpsScalingReport, Mode, SinkhornParams, Termination};
use super::solve::{effective_tol, Relaxed, Relaxer, SinkhornOutput};
use crate::Cost;

/// Default relative truncation bound $e^{-\theta}$.
pub const DEFAULT_TRUNCATION: f64 = 1e-16;
/// Re-truncation slack: the kernel is built with $\theta+$`SLACK`, so that the potentials can
/// move by about `SLACK`$\cdot\varepsilon$ before the bound $B$ reaches $e^{-\theta}$. 4 rather
/// than 1: the over-relaxed target stage moves single potentials by several eps per iteration,
/// and with slack 1 it re-truncated (two tree searches per row) at most iterations of its
/// first phase; measured (theory/sinkhorn.md §12) 73 against about 180 re-truncations for
/// 6 % more kept pairs.
const SLACK: f64 = 4.0;
/// While the residual `err` of the target stage exceeds the requested bound by more than
/// 1/`LOOSE_TRUNCATION`, the kernel is re-truncated only once $B$ exceeds
/// `LOOSE_TRUNCATION * err` (module docs; theory/sinkhorn.md §12).
const LOOSE_TRUNCATION: f64 = 1e-3;
/// Smallest number of pairs $NM$ for which [`Mode::Auto`] considers the sparse mode: below it
/// the streaming kernel's iterations are cheap and the stages' fixed cost does not pay
/// (measured crossover, theory/sinkhorn.md §12).
pub const SPARSE_AUTO_MIN_PAIRS: usize = 16_000_000;
/// Largest point dimension for which [`Mode::Auto`] considers the sparse mode (the crossover
/// was measured in $d=2$ only; the k-d tree's pruning weakens as $d$ grows).
pub const SPARSE_AUTO_MAX_DIM: usize = 2;
/// [`Mode::Auto`] picks the sparse mode when the estimated kept fraction of pairs
/// ([`estimated_kept_fraction`]) is at most this: on the stored single-precision values an
/// iteration costs about a sixth of the streaming kernel's per pair (no exponential per pair),
/// and at $N=M=4000$ every measured case up to an estimate of 0.89 ran in at most 0.51 of
/// streaming's time, while at 0.99 it took 1.14 (theory/sinkhorn.md §12).
pub const SPARSE_AUTO_MAX_FRACTION: f64 = 0.8;
/// Probe points per cloud of [`estimated_kept_fraction`].
const SPARSE_AUTO_PROBES: usize = 64;

/// An upper estimate, before solving, of the fraction of the $NM$ pairs that the sparse
/// kernel keeps at the target eps (with the default truncation bound and the re-truncation
/// slack): the larger of the two clouds' *self* neighbour fractions within the squared radius
/// $r^2=(\theta+\texttt{SLACK})\,\varepsilon/\kappa$, each the mean over 64 evenly strided
/// probe points of the fraction of the cloud's points within $r$.
///
/// Why an upper estimate (theory/sinkhorn.md §12): near a smooth Brenier map $T$ the kept
/// pairs of row $i$ lie in the ellipsoid $(y-T(x_i))^\top(\nabla T)^{-1}(y-T(x_i))\le r^2$,
/// which holds $\approx\omega_dr^d\rho_\mu(x_i)\det(\nabla T)^{-1/2}$ points of $\nu$ per
/// unit of density; the self counts are $\omega_dr^d\rho_\mu$ and
/// $\omega_dr^d\rho_\mu\det(\nabla T)^{-1}$, and $\max(1,D^{-1})\ge D^{-1/2}$ for every
/// $D>0$. Deterministic (no sampling randomness); cost $O(64\,(N+M)\,d)$.
pub fn estimated_kept_fraction(x: &PointCloud, y: &PointCloud, eps: f64, cost: Cost) -> f64 {
    let r2 = (-DEFAULT_TRUNCATION.ln() + SLACK) * eps / cost.factor();
    self_fraction(x, r2).max(self_fraction(y, r2))
}

/// Mean over strided probes of the fraction of the cloud within squared radius `r2`.
fn self_fraction(c: &PointCloud, r2: f64) -> f64 {
    let (n, d, p) = (c.len(), c.dim(), c.points_flat());
    if n == 0 {
        return 0.0;
    }
    let probes = SPARSE_AUTO_PROBES.min(n);
    let within: usize = (0..probes)
        .into_par_iter()
        .map(|k| {
            let z = &p[(k * n / probes) * d..][..d];
            p.chunks_exact(d).filter(|q| dist2(z, q) <= r2).count()
        })
        .sum();
    within as f64 / (probes as f64 * n as f64)
}

/// The choice of [`Mode::Auto`] between the sparse mode and the dense/streaming kernels for two
/// point clouds: sparse when $NM\ge$ [`SPARSE_AUTO_MIN_PAIRS`], $d\le$
/// [`SPARSE_AUTO_MAX_DIM`], [`estimated_kept_fraction`] $\le$
/// [`SPARSE_AUTO_MAX_FRACTION`] (theory/sinkhorn.md §12 has the measured crossover), and the
/// single-precision values of that many pairs (4 bytes each) take at most a quarter of physical
/// memory (without them every sparse iteration recomputes its exponentials, and the sparse
/// mode does not pay at such fractions).
pub fn auto_picks_sparse(x: &PointCloud, y: &PointCloud, eps: f64, cost: Cost) -> bool {
    x.dim() <= SPARSE_AUTO_MAX_DIM
        && x.dim() == y.dim()
        && x.len().saturating_mul(y.len()) >= SPARSE_AUTO_MIN_PAIRS
        && x.len() < u32::MAX as usize
        && y.len() < u32::MAX as usize
        && eps.is_finite()
        && eps > 0.0
        && {
            let est = estimated_kept_fraction(x, y, eps, cost);
            est <= SPARSE_AUTO_MAX_FRACTION
                && est * x.len() as f64 * y.len() as f64 * 4.0
                    <= crate::error::physical_memory_bytes() as f64 / 4.0
        }
}

/// Coarsest level: at most this many points per cloud.
const COARSEST: usize = 1024;
/// A level of (median) squared cluster radius $h^2$ is accurate enough for the stages with
/// $\kappa h^2\le$ `LEVEL_RATIO`$\cdot\varepsilon$.
const LEVEL_RATIO: f64 = 0.125;
/// Relative accuracy of the soft c-transforms that carry potentials between levels:
/// terms below $e^{-40}$ of the largest are skipped (a warm start only).
const LSE_CUT: f64 = 40.0;

/// Parameters of the sparse mode beyond [`SinkhornParams`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseParams {
    /// Relative truncation bound $e^{-\theta}$ in $(0, 10^{-2}]$: a pair is dropped when its
    /// plan entry is below $e^{-\theta}a_ib_j$ at the truncating potentials. The reported
    /// `truncation_bound` never exceeds it. Default [`DEFAULT_TRUNCATION`] ($10^{-16}$).
    pub truncation: f64,
}

impl Default for SparseParams {
    fn default() -> Self {
        SparseParams {
            truncation: DEFAULT_TRUNCATION,
        }
    }
}

impl SparseParams {
    /// Check the documented range.
    pub fn validate(&self) -> Result<(), SinkhornError> {
        let t = self.truncation;
        if !(t.is_finite() && t > 0.0 && t <= 1e-2) {
            return Err(SinkhornError::InvalidParameter {
                name: "truncation",
                message: format!("must lie in (0, 1e-2], got {t}"),
            });
        }
        Ok(())
    }
}

/// One cloud at one level, in the order of its k-d tree.
struct Cloud {
    tree: KdTree,
    /// The coordinates in tree order, one coordinate after the other (`d × n`: coordinate
    /// `k` of position `p` at `k n + p`), so that a run of positions is contiguous per
    /// coordinate.
    soa: Vec<f64>,
    w: Vec<f64>,
    /// $\log w$ ($-\infty$ for a zero weight).
    log_w: Vec<f64>,
}

impl Cloud {
    fn new(pts: &[f64], d: usize, w: &[f64]) -> Cloud {
        let tree = KdTree::new(pts, d);
        let w: Vec<f64> = tree.perm().iter().map(|&i| w[i as usize]).collect();
        let log_w = w.iter().map(|t| t.ln()).collect();
        let n = w.len();
        let tp = tree.points();
        let soa = (0..d)
            .flat_map(|k| (0..n).map(move |p| tp[p * d + k]))
            .collect();
        Cloud {
            tree,
            soa,
            w,
            log_w,
        }
    }

    fn len(&self) -> usize {
        self.w.len()
    }

    /// The cloud of weighted centroids of consecutive blocks of `block` points (tree order)
    /// and the mass-weighted median over the blocks of the block's mean squared distance of
    /// its points to their centroid.
    ///
    /// A median, not a mean: the blocks of the sparse tails of a cloud are far wider than those
    /// of its dense core, and the mean is dominated by them (for $2\cdot10^4$ Gaussian points
    /// about eight times the median, judged by the stage at which each moves to the points),
    /// while the kept pairs per row that the level must bound are those of the dense core
    /// (theory/sinkhorn.md §12).
    fn coarsen(&self, d: usize, block: usize) -> (Vec<f64>, Vec<f64>, f64) {
        let pts = self.tree.points();
        let n = self.len();
        let nb = n.div_ceil(block);
        let mut c = vec![0.0; nb * d];
        let mut w = vec![0.0; nb];
        let mut spread = Vec::with_capacity(nb);
        for b in 0..nb {
            let r = b * block..((b + 1) * block).min(n);
            let mass: f64 = self.w[r.clone()].iter().sum();
            let cb = &mut c[b * d..(b + 1) * d];
            for i in r.clone() {
                let wi = if mass > 0.0 {
                    self.w[i] / mass
                } else {
                    1.0 / r.len() as f64
                };
                for k in 0..d {
                    cb[k] += wi * pts[i * d + k];
                }
            }
            let mut h2 = 0.0;
            for i in r.clone() {
                let s: f64 = (0..d).map(|k| (pts[i * d + k] - cb[k]).powi(2)).sum();
                let wi = if mass > 0.0 {
                    self.w[i] / mass
                } else {
                    1.0 / r.len() as f64
                };
                h2 += wi * s;
            }
            spread.push((h2, mass));
            w[b] = mass;
        }
        spread.sort_by(|p, q| p.0.total_cmp(&q.0));
        let total: f64 = spread.iter().map(|p| p.1).sum();
        let mut acc = 0.0;
        let mut median = spread.last().map_or(0.0, |p| p.0);
        for &(h2, m) in &spread {
            acc += m;
            if acc >= 0.5 * total {
                median = h2;
                break;
            }
        }
        (c, w, median)
    }
}

/// A level: both clouds and the (median) squared cluster radius (0 on the original points).
struct Level {
    x: Cloud,
    y: Cloud,
    h2: f64,
}

/// Two kept columns of a row with fewer than `RUN_GAP` tree positions between them are joined
/// into one run, and the pairs between are computed too (exact entries: the kernel only grows,
/// and the bound $B$ on the dropped mass still holds). Runs are contiguous in the coordinates
/// and potentials of $\nu$, so the half-steps run as vector loops without gathers or
/// scatters; measured at $N=M=2\cdot10^4$, $\varepsilon=10^{-3}$ (theory/sinkhorn.md §12):
/// 337 kept pairs per row in 32 runs exactly, 381 computed pairs in 10.5 runs with gap 8.
const RUN_GAP: u32 = 8;

/// The truncated kernel: each row (tree position of $x$) as runs of consecutive columns
/// (tree positions of $y$), and the potentials / eps it was truncated at.
struct Truncated {
    /// The runs of row `i` are `runs[ptr[i]..ptr[i + 1]]`.
    ptr: Vec<usize>,
    /// `(first column, length)`.
    runs: Vec<(u32, u32)>,
    /// Computed pairs of rows `0..i` (`n + 1` entries).
    pairs: Vec<usize>,
    /// Pairs above the truncation threshold (the computed pairs minus those inside the gaps).
    kept: usize,
    /// The kernel's values in single precision, in run order (empty when not stored):
    /// $\tilde K_{ij}=e^{a_{ij}-r_i}$, $a_{ij}=(\hat f_i+\hat g_j-C_{ij})/\hat\varepsilon$,
    /// $r_i=\max_ja_{ij}$ ([`Truncated::store_values`]).
    vals: Vec<f32>,
    /// $r_i$.
    shift: Vec<f64>,
    f_hat: Vec<f64>,
    g_hat: Vec<f64>,
    eps_hat: f64,
    /// $\theta$ used to build it (truncation slack included).
    theta: f64,
}

#[inline(always)]
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (&p, &q) in a.iter().zip(b) {
        let t = p - q;
        s += t * t;
    }
    s
}

/// Soft c-transform $-\varepsilon\log\sum_j e^{(h_j-\kappa\lvert z-y_j\rvert^2)/\varepsilon}$
/// ($h$ includes $\varepsilon\log$ of the weights) over the points of `tree`, skipping terms
/// below $e^{-40}$ of the largest.
fn soft_min(
    tree: &KdTree,
    h: &[f64],
    bounds: &NodeBounds,
    z: &[f64],
    kappa: f64,
    eps: f64,
    stack: &mut Vec<(u32, f64)>,
) -> f64 {
    let (mut mx, mut s) = (f64::NEG_INFINITY, 0.0);
    let cut = LSE_CUT * eps;
    tree.search(
        z,
        kappa,
        h,
        bounds,
        |best| best - cut,
        stack,
        |_, v| {
            if v > mx {
                s = s * ((mx - v) / eps).exp() + 1.0;
                mx = v;
            } else {
                s += ((v - mx) / eps).exp();
            }
        },
    );
    -(mx + eps * s.ln())
}

/// Soft c-transforms at every point of `at` against `from` with potential `pot` (tree
/// positions of `from`), in parallel; output in tree positions of `at`.
fn soft_transform(
    from: &Cloud,
    pot: &[f64],
    at: &Cloud,
    kappa: f64,
    eps: f64,
    d: usize,
) -> Vec<f64> {
    let h: Vec<f64> = pot
        .iter()
        .zip(&from.log_w)
        .map(|(&p, &lw)| p + eps * lw)
        .collect();
    let mut bounds = NodeBounds::default();
    from.tree.node_bounds(&h, &mut bounds);
    let pts = at.tree.points();
    (0..at.len())
        .into_par_iter()
        .map_init(Vec::new, |stack, i| {
            soft_min(
                &from.tree,
                &h,
                &bounds,
                &pts[i * d..(i + 1) * d],
                kappa,
                eps,
                stack,
            )
        })
        .collect()
}

/// `g_j * scale` for the atoms of positive weight, $-\infty$ for those of zero weight (which
/// carry no mass: never kept by a search, no term in a sum).
fn present_scaled(g: &[f64], w: &[f64], scale: f64) -> Vec<f64> {
    g.iter()
        .zip(w)
        .map(|(&gj, &wj)| {
            if wj > 0.0 {
                gj * scale
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect()
}

/// Truncate at $(\hat f,\hat g)$: per row a max search (the row's threshold) and an in-order
/// scan (its runs), both exact; then the values ([`Truncated::store_values`]).
fn truncate(
    lv: &Level,
    f: &[f64],
    g: &[f64],
    eps: f64,
    theta: f64,
    kappa: f64,
    d: usize,
) -> Result<Truncated, SinkhornError> {
    let n = lv.x.len();
    // Zero-weight columns are never kept (they carry no mass).
    let h = present_scaled(g, &lv.y.w, 1.0);
    let mut bounds = NodeBounds::default();
    lv.y.tree.node_bounds(&h, &mut bounds);
    let cut = theta * eps;
    let xp = lv.x.tree.points();
    // Pass 1: each row's best entry (a max search: nodes below the best so far are pruned),
    // hence its final threshold.
    let thresholds: Vec<f64> = (0..n)
        .into_par_iter()
        .map_init(Vec::new, |stack, i| {
            let z = &xp[i * d..(i + 1) * d];
            let (best, _) =
                lv.y.tree
                    .search(z, kappa, &h, &bounds, |b| b, stack, |_, _| {});
            (-cut - f[i]).min(best - cut)
        })
        .collect();
    // Pass 2: the runs, with the fixed final threshold of each row (positions in increasing
    // order, so runs are joined on the fly). The runs found so far are counted against the
    // memory budget of `check_allocation` (8 bytes per run) as the rows complete, and the
    // remaining rows are skipped once it is exceeded (a row holds at most m / RUN_GAP + 1).
    let budget = crate::error::physical_memory_bytes() / 16;
    let found = std::sync::atomic::AtomicUsize::new(0);
    let per_row: Vec<(Vec<(u32, u32)>, usize)> = (0..n)
        .into_par_iter()
        .map_init(Vec::new, |stack, i| {
            use std::sync::atomic::Ordering::Relaxed;
            let mut runs: Vec<(u32, u32)> = Vec::new();
            if found.load(Relaxed) > budget {
                return (runs, 0);
            }
            let z = &xp[i * d..(i + 1) * d];
            let mut kept = 0;
            lv.y.tree
                .scan_in_order(z, kappa, &h, &bounds, thresholds[i], stack, |p, _| {
                    kept += 1;
                    let p = p as u32;
                    match runs.last_mut() {
                        Some((s, l)) if p - (*s + *l) < RUN_GAP => *l = p - *s + 1,
                        _ => runs.push((p, 1)),
                    }
                });
            found.fetch_add(runs.len(), Relaxed);
            (runs, kept)
        })
        .collect();
    crate::error::check_allocation(
        "the sparse kernel (8 bytes per run of kept pairs)",
        &[found.into_inner()],
    )?;
    let kept = per_row.iter().map(|r| r.1).sum();
    let per_row: Vec<Vec<(u32, u32)>> = per_row.into_iter().map(|r| r.0).collect();
    let mut ptr = Vec::with_capacity(n + 1);
    let mut pairs = Vec::with_capacity(n + 1);
    let mut runs = Vec::with_capacity(per_row.iter().map(Vec::len).sum());
    ptr.push(0usize);
    pairs.push(0usize);
    for r in &per_row {
        runs.extend_from_slice(r);
        ptr.push(runs.len());
        let p: usize = r.iter().map(|q| q.1 as usize).sum();
        pairs.push(pairs[pairs.len() - 1] + p);
    }
    let mut k = Truncated {
        ptr,
        runs,
        pairs,
        kept,
        vals: Vec::new(),
        shift: Vec::new(),
        f_hat: f.to_vec(),
        g_hat: g.to_vec(),
        eps_hat: eps,
        theta,
    };
    k.store_values(lv, &thresholds, kappa, d);
    Ok(k)
}

impl Truncated {
    /// A placeholder holding nothing (frees the old kernel before a new one is built).
    fn empty() -> Truncated {
        Truncated {
            ptr: vec![0],
            runs: Vec::new(),
            pairs: vec![0],
            kept: 0,
            vals: Vec::new(),
            shift: Vec::new(),
            f_hat: Vec::new(),
            g_hat: Vec::new(),
            eps_hat: 1.0,
            theta: 0.0,
        }
    }

    /// Store the kernel's values $\tilde K_{ij}$ in single precision (field docs), unless
    /// they do not fit in memory or a kept value would fall below the normal range of single
    /// precision ($a_{ij}-r_i<\ln2^{-126}$; then the half-steps recompute the exponentials).
    /// `thresholds` are the rows' search thresholds on $\hat g_j-C_{ij}$ (a pair is kept
    /// above it); the pairs inside the gaps of a run may be anything below, even 0.
    fn store_values(&mut self, lv: &Level, thresholds: &[f64], kappa: f64, d: usize) {
        let n = self.ptr.len() - 1;
        let total = self.pairs[n];
        if crate::error::check_allocation("", &[total.div_ceil(2)]).is_err() {
            return;
        }
        let inv = 1.0 / self.eps_hat;
        let ki = kappa * inv;
        let hs = present_scaled(&self.g_hat, &lv.y.w, inv);
        let mut vals = vec![0f32; total];
        let mut rest: &mut [f32] = &mut vals;
        let mut slices = Vec::with_capacity(n);
        for i in 0..n {
            let (head, tail) = rest.split_at_mut(self.pairs[i + 1] - self.pairs[i]);
            slices.push(head);
            rest = tail;
        }
        let xp = lv.x.tree.points();
        let this = &*self;
        let rows: Vec<(f64, bool)> = slices
            .into_par_iter()
            .enumerate()
            .map_init(Vec::new, |buf, (i, out)| {
                let (runs, np) = this.row(i);
                let fi = this.f_hat[i] * inv;
                let z = exponents(
                    &xp[i * d..(i + 1) * d],
                    &lv.y,
                    d,
                    runs,
                    np,
                    ki,
                    &hs,
                    fi,
                    buf,
                );
                let r = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if !r.is_finite() {
                    return (r, np == 0);
                }
                let lowest_kept = fi + thresholds[i] * inv - r;
                for v in z.iter_mut() {
                    *v -= r;
                }
                exp_in_place(z);
                for (o, &v) in out.iter_mut().zip(z.iter()) {
                    *o = v as f32;
                }
                (r, lowest_kept >= (f32::MIN_POSITIVE as f64).ln())
            })
            .collect();
        if rows.iter().all(|r| r.1) {
            self.shift = rows.iter().map(|r| r.0).collect();
            self.vals = vals;
        }
    }

    /// Whether the single-precision values are stored, for the eps `eps`.
    fn has_vals(&self, eps: f64) -> bool {
        !self.vals.is_empty() && self.eps_hat == eps
    }

    /// The runs of row `i` and their number of pairs.
    #[inline(always)]
    fn row(&self, i: usize) -> (&[(u32, u32)], usize) {
        (
            &self.runs[self.ptr[i]..self.ptr[i + 1]],
            self.pairs[i + 1] - self.pairs[i],
        )
    }

    /// $\log B$ at $(f,g)$ and eps (module docs).
    fn log_bound(&self, lv: &Level, f: &[f64], g: &[f64], eps: f64) -> f64 {
        let lse = |w: &[f64], p: &[f64], p0: &[f64]| {
            let mx = p
                .iter()
                .zip(p0)
                .zip(w)
                .filter(|(_, &wi)| wi > 0.0)
                .map(|((&a, &b), _)| (a - b) / eps)
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = p
                .iter()
                .zip(p0)
                .zip(w)
                .map(|((&a, &b), &wi)| wi * ((a - b) / eps - mx).exp())
                .sum();
            mx + s.ln()
        };
        -self.theta * self.eps_hat / eps
            + lse(&lv.x.w, f, &self.f_hat)
            + lse(&lv.y.w, g, &self.g_hat)
    }
}

/// $f$-update on $K$: $f_i=-\varepsilon\log\sum_{j\in K_i}b_je^{(g_j-C_{ij})/\varepsilon}$.
///
/// Each row writes the exponents $(g_j+\varepsilon\log b_j-C_{ij})/\varepsilon$ of its runs into
/// a contiguous buffer ([`exponents`]) and takes their log-sum-exp with the engine's row kernel
/// ([`lse_row_dispatch`], zero costs; vectorised on the AVX2 / AVX-512 paths).
///
/// With `stored` and the kernel's values stored at this eps, each row is instead a product
/// with the single-precision values (module docs):
/// $f_i=\hat f_i-\varepsilon(V+r_i)-\varepsilon\log\sum_j\tilde K_{ij}w_j$,
/// $w_j=b_je^{(g_j-\hat g_j)/\varepsilon-V}$, $V=\max_j(g_j-\hat g_j)/\varepsilon$; a row whose
/// sum leaves the normal range is recomputed with the exponentials.
#[allow(clippy::too_many_arguments)]
fn rows_update(
    lv: &Level,
    k: &Truncated,
    g: &[f64],
    eps: f64,
    kappa: f64,
    d: usize,
    stored: bool,
    hb: &mut Vec<f64>,
    out: &mut [f64],
) {
    let inv = 1.0 / eps;
    if stored && k.has_vals(eps) {
        let b = &lv.y.w;
        let vmax = g
            .iter()
            .zip(&k.g_hat)
            .zip(b)
            .filter(|(_, &bj)| bj > 0.0)
            .map(|((&gj, &gh), _)| (gj - gh) * inv)
            .fold(f64::NEG_INFINITY, f64::max);
        hb.clear();
        hb.extend(g.iter().zip(&k.g_hat).zip(b).map(|((&gj, &gh), &bj)| {
            if bj > 0.0 {
                bj * exp_nonpositive((gj - gh) * inv - vmax)
            } else {
                0.0
            }
        }));
        let w = &hb[..];
        let redo = out
            .par_chunks_mut(256)
            .enumerate()
            .map(|(ch, chunk)| {
                let mut bad = false;
                for (r, o) in chunk.iter_mut().enumerate() {
                    let i = ch * 256 + r;
                    let q0 = k.pairs[i];
                    let (runs, np) = k.row(i);
                    let sum = stored_dot(runs, &k.vals[q0..q0 + np], w);
                    if sum > 1e-280 && sum.is_finite() {
                        *o = k.f_hat[i] - eps * (vmax + k.shift[i]) - eps * sum.ln();
                    } else {
                        *o = f64::NAN;
                        bad = true;
                    }
                }
                bad
            })
            .reduce(|| false, |p, q| p || q);
        if !redo {
            return;
        }
        // Only the rows whose sum left the normal range are recomputed exactly.
        let hx = exact_offsets(lv, g, eps);
        let mut scratch = Default::default();
        for (i, o) in out.iter_mut().enumerate().filter(|(_, o)| o.is_nan()) {
            *o = exact_row(lv, k, &hx, i, kappa * inv, eps, d, &mut scratch);
        }
        return;
    }
    hb.clear();
    hb.extend(exact_offsets(lv, g, eps));
    let hb = &hb[..];
    out.par_chunks_mut(64)
        .enumerate()
        .for_each_init(Default::default, |scratch, (ch, chunk)| {
            for (r, o) in chunk.iter_mut().enumerate() {
                *o = exact_row(lv, k, hb, ch * 64 + r, kappa * inv, eps, d, scratch);
            }
        });
}

/// $(g_j+\varepsilon\log b_j)/\varepsilon$, the offsets of the exact $f$-update.
fn exact_offsets(lv: &Level, g: &[f64], eps: f64) -> Vec<f64> {
    let inv = 1.0 / eps;
    g.iter()
        .zip(&lv.y.log_w)
        .map(|(&gj, &lb)| (gj + eps * lb) * inv)
        .collect()
}

/// The exact $f$-update of row `i`: its exponents ([`exponents`], offsets `hb` of
/// [`exact_offsets`], `ki` = $\kappa/\varepsilon$) handed to the engine's row log-sum-exp
/// (its summation order, its vector paths) with zero costs.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn exact_row(
    lv: &Level,
    k: &Truncated,
    hb: &[f64],
    i: usize,
    ki: f64,
    eps: f64,
    d: usize,
    (u, zero, z): &mut (Vec<f64>, Vec<f64>, Vec<f64>),
) -> f64 {
    let (runs, np) = k.row(i);
    let xp = lv.x.tree.points();
    let u = exponents(&xp[i * d..(i + 1) * d], &lv.y, d, runs, np, ki, hb, 0.0, u);
    if zero.len() < np {
        zero.resize(np, 0.0);
        z.resize(np, 0.0);
    }
    -eps * lse_row_dispatch::<FastExp>(u, &zero[..np], 1.0, &mut z[..np])
}

/// $\sum_q\tilde K_q w_{j_q}$ over the runs of a row (`vals` its values in run order), with
/// eight partial sums (so that the loop is a vector loop).
#[inline(always)]
fn stored_dot(runs: &[(u32, u32)], vals: &[f32], w: &[f64]) -> f64 {
    const L: usize = 8;
    let mut acc = [0.0f64; L];
    let mut q = 0;
    for &(s, l) in runs {
        let (s, l) = (s as usize, l as usize);
        let (kv, wv) = (&vals[q..q + l], &w[s..s + l]);
        let (kc, wc) = (kv.chunks_exact(L), wv.chunks_exact(L));
        let (kr, wr) = (kc.remainder(), wc.remainder());
        for (a, b) in kc.zip(wc) {
            for t in 0..L {
                acc[t] += a[t] as f64 * b[t];
            }
        }
        for (t, (&a, &b)) in kr.iter().zip(wr).enumerate() {
            acc[t] += a as f64 * b;
        }
        q += l;
    }
    acc.iter().sum()
}

/// `z_q = h_j + shift - ki |x - y_j|^2` for the `np` columns `j` of the runs `runs` of a row
/// at `x`, in run order (`cloud` is $\nu$'s, `h` indexed by its tree positions); returns the
/// first `np` entries of `z` (grown as needed). Each run is a vector loop over contiguous
/// coordinates; the point dimension 2 is written out.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn exponents<'a>(
    x: &[f64],
    cloud: &Cloud,
    d: usize,
    runs: &[(u32, u32)],
    np: usize,
    ki: f64,
    h: &[f64],
    shift: f64,
    z: &'a mut Vec<f64>,
) -> &'a mut [f64] {
    if z.len() < np {
        z.resize(np, 0.0);
    }
    let z = &mut z[..np];
    let (m, ys) = (cloud.len(), &cloud.soa[..]);
    let mut q = 0;
    for &(s, l) in runs {
        let (s, e) = (s as usize, (s + l) as usize);
        let out = &mut z[q..q + (e - s)];
        q += e - s;
        if d == 2 {
            let (x0, x1) = (x[0], x[1]);
            for (((o, &hj), &a), &b) in out
                .iter_mut()
                .zip(&h[s..e])
                .zip(&ys[s..e])
                .zip(&ys[m + s..m + e])
            {
                let (t0, t1) = (x0 - a, x1 - b);
                *o = hj + shift - ki * (t0 * t0 + t1 * t1);
            }
        } else {
            for o in out.iter_mut() {
                *o = 0.0;
            }
            for (kk, &xk) in x.iter().enumerate() {
                for (o, &yk) in out.iter_mut().zip(&ys[kk * m + s..kk * m + e]) {
                    let t = xk - yk;
                    *o += t * t;
                }
            }
            for (o, &hj) in out.iter_mut().zip(&h[s..e]) {
                *o = hj + shift - ki * *o;
            }
        }
    }
    z
}

/// The $g$-update on $K$ ([`cols_update`]), plain or over-relaxed by `omega` from `g_prev`
/// ($g\leftarrow(1-\omega)g_{\rm prev}+\omega T_K(f)$, `g == g_prev` on entry). Returns the
/// L1 violation of the second marginal of the new pair (0 for the plain update, exact on $K$).
#[allow(clippy::too_many_arguments)]
fn g_update(
    lv: &Level,
    k: &Truncated,
    f: &[f64],
    g: &mut [f64],
    g_prev: &[f64],
    omega: Option<f64>,
    t: &mut Vec<f64>,
    eps: f64,
    kappa: f64,
    d: usize,
    stored: bool,
) -> f64 {
    let Some(w) = omega else {
        cols_update(lv, k, f, g, eps, kappa, d, stored);
        return 0.0;
    };
    t.clear();
    t.extend_from_slice(g_prev);
    cols_update(lv, k, f, t, eps, kappa, d, stored);
    let inv = 1.0 / eps;
    let mut err = 0.0;
    for (((gj, &tj), &gp), &bj) in g.iter_mut().zip(t.iter()).zip(g_prev).zip(&lv.y.w) {
        if bj > 0.0 {
            *gj = (1.0 - w) * gp + w * tj;
            err += bj * ((*gj - tj) * inv).exp_m1().abs();
        }
    }
    err
}

/// Row ranges of about equal numbers of computed pairs, one per thread.
fn row_parts(k: &Truncated) -> Vec<(usize, usize)> {
    let n = k.pairs.len() - 1;
    let parts = rayon::current_num_threads().max(1);
    let nnz = k.pairs[n];
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 1..=parts {
        let target = nnz * p / parts;
        let end = if p == parts {
            n
        } else {
            start
                + k.pairs[start..]
                    .partition_point(|&q| q < target)
                    .min(n - start)
        };
        out.push((start, end));
        start = end;
    }
    out
}

/// $g$-update on $K$ by an accumulation over the rows, run by run (contiguous in the
/// columns):
/// $g_j\leftarrow g_j-\varepsilon\log\sum_{i:(i,j)\in K}a_ie^{(f_i+g_j-C_{ij})/\varepsilon}$
/// (shifted by the current $g_j$; if an exponent exceeds 600 or a column sum is not positive
/// and finite, the exact two-pass form with the column maxima is used instead).
#[allow(clippy::too_many_arguments)]
fn cols_update(
    lv: &Level,
    k: &Truncated,
    f: &[f64],
    g: &mut [f64],
    eps: f64,
    kappa: f64,
    d: usize,
    stored: bool,
) {
    let m = lv.y.len();
    let xp = lv.x.tree.points();
    let inv = 1.0 / eps;
    let ki = kappa * inv;
    let parts = row_parts(k);
    let a = &lv.x.w;
    if stored && k.has_vals(eps) && cols_stored(lv, k, f, g, eps, &parts) {
        return;
    }
    // Zero-weight columns (inside runs) get no terms.
    let gs = present_scaled(g, &lv.y.w, inv);
    // Fast path: shift by the current g.
    let partial: Vec<(Vec<f64>, f64)> = parts
        .par_iter()
        .map(|&(s, e)| {
            let mut acc = vec![0.0; m];
            let mut top = f64::NEG_INFINITY;
            let mut buf = Vec::new();
            for i in s..e {
                if a[i] == 0.0 {
                    continue;
                }
                let (runs, np) = k.row(i);
                let z = &xp[i * d..(i + 1) * d];
                let buf = exponents(z, &lv.y, d, runs, np, ki, &gs, f[i] * inv, &mut buf);
                for v in buf.iter_mut() {
                    top = top.max(*v);
                    *v = v.min(700.0);
                }
                exp_in_place(buf);
                let ai = a[i];
                let mut q = 0;
                for &(s, l) in runs {
                    let (s, l) = (s as usize, l as usize);
                    for (c, &t) in acc[s..s + l].iter_mut().zip(&buf[q..q + l]) {
                        *c += ai * t;
                    }
                    q += l;
                }
            }
            (acc, top)
        })
        .collect();
    let top = partial
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut sum = vec![0.0; m];
    for (acc, _) in &partial {
        for (s, &t) in sum.iter_mut().zip(acc) {
            *s += t;
        }
    }
    let ok = top <= 600.0
        && sum
            .iter()
            .zip(&lv.y.w)
            .all(|(&s, &b)| b == 0.0 || (s > 1e-280 && s.is_finite()));
    if ok {
        for ((gj, &s), &b) in g.iter_mut().zip(&sum).zip(&lv.y.w) {
            if b > 0.0 {
                *gj -= eps * s.ln();
            }
        }
        return;
    }
    // Exact path: column maxima of f_i + eps log a_i - C_ij, then shifted sums.
    let la = &lv.x.log_w;
    let yp = lv.y.tree.points();
    let value = |i: usize, j: usize| {
        f[i] + eps * la[i] - kappa * dist2(&xp[i * d..(i + 1) * d], &yp[j * d..(j + 1) * d])
    };
    let cols = |i: usize| {
        k.row(i)
            .0
            .iter()
            .flat_map(|&(s, l)| s as usize..(s + l) as usize)
    };
    let maxes: Vec<Vec<f64>> = parts
        .par_iter()
        .map(|&(s, e)| {
            let mut mx = vec![f64::NEG_INFINITY; m];
            for i in s..e {
                for j in cols(i) {
                    mx[j] = mx[j].max(value(i, j));
                }
            }
            mx
        })
        .collect();
    let mut mx = vec![f64::NEG_INFINITY; m];
    for p in &maxes {
        for (a, &b) in mx.iter_mut().zip(p) {
            *a = a.max(b);
        }
    }
    let mxr = &mx;
    let sums: Vec<Vec<f64>> = parts
        .par_iter()
        .map(|&(s, e)| {
            let mut acc = vec![0.0; m];
            for i in s..e {
                for j in cols(i) {
                    acc[j] += exp_nonpositive((value(i, j) - mxr[j]) * inv);
                }
            }
            acc
        })
        .collect();
    for (j, gj) in g.iter_mut().enumerate() {
        if lv.y.w[j] > 0.0 {
            let s: f64 = sums.iter().map(|p| p[j]).sum();
            *gj = -(mx[j] + eps * s.ln());
        }
    }
}

/// The $g$-update of [`cols_update`] as a product with the single-precision values (module
/// docs): $g_j=\hat g_j-\varepsilon U-\varepsilon\log\sum_i\tilde K_{ij}c_i$,
/// $c_i=a_ie^{z_i-U}$, $z_i=(f_i-\hat f_i)/\varepsilon+r_i$, $U=\max_iz_i$. Returns `false`
/// (and leaves `g` alone) if a column sum leaves the normal range.
fn cols_stored(
    lv: &Level,
    k: &Truncated,
    f: &[f64],
    g: &mut [f64],
    eps: f64,
    parts: &[(usize, usize)],
) -> bool {
    let m = lv.y.len();
    let inv = 1.0 / eps;
    let a = &lv.x.w;
    let z = |i: usize| (f[i] - k.f_hat[i]) * inv + k.shift[i];
    let umax = (0..a.len())
        .filter(|&i| a[i] > 0.0)
        .map(z)
        .fold(f64::NEG_INFINITY, f64::max);
    if !umax.is_finite() {
        return false;
    }
    let c: Vec<f64> = (0..a.len())
        .map(|i| {
            if a[i] > 0.0 {
                a[i] * exp_nonpositive(z(i) - umax)
            } else {
                0.0
            }
        })
        .collect();
    let partial: Vec<Vec<f64>> = parts
        .par_iter()
        .map(|&(s, e)| {
            let mut acc = vec![0.0; m];
            for (i, &ci) in c.iter().enumerate().take(e).skip(s) {
                if ci == 0.0 {
                    continue;
                }
                let mut q = k.pairs[i];
                for &(s, l) in k.row(i).0 {
                    let (s, l) = (s as usize, l as usize);
                    for (o, &v) in acc[s..s + l].iter_mut().zip(&k.vals[q..q + l]) {
                        *o += ci * v as f64;
                    }
                    q += l;
                }
            }
            acc
        })
        .collect();
    let mut sum = vec![0.0; m];
    for acc in &partial {
        for (s, &t) in sum.iter_mut().zip(acc) {
            *s += t;
        }
    }
    let b = &lv.y.w;
    if !sum
        .iter()
        .zip(b)
        .all(|(&s, &bj)| bj == 0.0 || (s > 1e-280 && s.is_finite()))
    {
        return false;
    }
    for (((gj, &s), &gh), &bj) in g.iter_mut().zip(&sum).zip(&k.g_hat).zip(b) {
        if bj > 0.0 {
            *gj = gh - eps * umax - eps * s.ln();
        }
    }
    true
}

/// $\langle P,C\rangle$, $\mathrm{KL}(P\mid a\otimes b)$ of the truncated plan ($P=0$ off $K$).
fn objectives(
    lv: &Level,
    k: &Truncated,
    f: &[f64],
    g: &[f64],
    eps: f64,
    kappa: f64,
    d: usize,
) -> (f64, f64) {
    let (xp, yp) = (lv.x.tree.points(), lv.y.tree.points());
    let (a, b) = (&lv.x.w, &lv.y.w);
    let inv = 1.0 / eps;
    let (tc, kl, ab) = (0..lv.x.len())
        .into_par_iter()
        .map(|i| {
            let (mut tc, mut kl, mut ab) = (0.0, 0.0, 0.0);
            if a[i] == 0.0 {
                return (tc, kl, ab);
            }
            let z = &xp[i * d..(i + 1) * d];
            for &(s, l) in k.row(i).0 {
                for j in s as usize..(s + l) as usize {
                    let c = kappa * dist2(z, &yp[j * d..(j + 1) * d]);
                    let l = (f[i] + g[j] - c) * inv;
                    let w = a[i] * b[j];
                    tc += w * l.exp() * c;
                    kl += w * (l * l.exp() - l.exp_m1());
                    ab += w;
                }
            }
            (tc, kl, ab)
        })
        .reduce(|| (0.0, 0.0, 0.0), |p, q| (p.0 + q.0, p.1 + q.1, p.2 + q.2));
    // Generalised KL over all pairs: the dropped ones contribute a_i b_j each.
    (tc, kl + (1.0 - ab).max(0.0))
}

/// Solve $\mathrm{OT}_\varepsilon$ between two point clouds with the sparse mode (module docs),
/// optionally warm-started from $g_0$ (then only the target stage runs, on the original
/// points). Acceleration follows `params` (Anderson mixing by default) at the target stage only.
///
/// # Errors
/// As [`crate::sinkhorn::solve`], plus [`SinkhornError::InvalidParameter`] for a truncation
/// bound out of range or clouds of $2^{32}$ points or more, and
/// [`SinkhornError::TooLarge`] if the kept pairs do not fit in memory.
pub fn solve_sparse(
    x: &PointCloud,
    y: &PointCloud,
    params: &SinkhornParams,
    sparse: &SparseParams,
) -> Result<SinkhornOutput, SinkhornError> {
    params.validate()?;
    run(x, y, params, sparse, None)
}

pub(crate) fn run(
    x: &PointCloud,
    y: &PointCloud,
    params: &SinkhornParams,
    sparse: &SparseParams,
    warm_g: Option<&[f64]>,
) -> Result<SinkhornOutput, SinkhornError> {
    sparse.validate()?;
    if x.dim() != y.dim() {
        return Err(SinkhornError::DimensionMismatch {
            what: "dimension of the points of y vs x".into(),
            expected: x.dim(),
            got: y.dim(),
        });
    }
    if x.len() >= u32::MAX as usize || y.len() >= u32::MAX as usize {
        return Err(SinkhornError::InvalidParameter {
            name: "mode",
            message: "the sparse mode indexes points with 32 bits (fewer than 2^32 points)".into(),
        });
    }
    let d = x.dim();
    let kappa = params.cost.factor();
    let eps = params.eps;
    let scale = kappa * x.bbox_sq_diameter(y);
    if !scale.is_finite() {
        return Err(SinkhornError::InvalidParameter {
            name: "points",
            message: format!(
                "squared distances overflow f64 (bounding-box diameter^2 = {scale}); rescale the coordinates"
            ),
        });
    }
    let theta = -sparse.truncation.ln() + SLACK;
    let log_target = sparse.truncation.ln();
    let tol = effective_tol(params.tol, eps, scale);

    // Levels: 0 = the points, k = blocks of 4^k points in tree order.
    let fine = Level {
        x: Cloud::new(x.points_flat(), d, x.weights()),
        y: Cloud::new(y.points_flat(), d, y.weights()),
        h2: 0.0,
    };
    let mut levels = vec![fine];
    if warm_g.is_none() {
        let mut block = 4;
        while x.len().max(y.len()).div_ceil(block / 4) > COARSEST {
            let (cx, wx, hx) = levels[0].x.coarsen(d, block);
            let (cy, wy, hy) = levels[0].y.coarsen(d, block);
            levels.push(Level {
                x: Cloud::new(&cx, d, &wx),
                y: Cloud::new(&cy, d, &wy),
                h2: hx.max(hy),
            });
            block *= 4;
        }
    }
    // The schedule: (eps, level, iterations or None for the target stage).
    let sched: Vec<(f64, usize)> = if warm_g.is_some() {
        Vec::new()
    } else {
        let es = params.eps_scaling.unwrap_or_default();
        let coarsest = levels.len() - 1;
        let n0 = levels[0].x.len().max(levels[0].y.len()) as f64;
        es.stages(eps, scale)
            .into_iter()
            .map(|e| {
                // Accuracy: the coarsest level whose clusters are small against eps.
                let acc = (0..=coarsest)
                    .rev()
                    .find(|&k| kappa * levels[k].h2 <= LEVEL_RATIO * e)
                    .unwrap_or(0);
                // Memory: the kept pairs per row grow like eps times the number of points
                // (§12), so the finest level with e · n_k <= eps · n_0 keeps no more pairs than
                // the target stage on the points will.
                let mem = (0..=coarsest)
                    .find(|&k| e * levels[k].x.len().max(levels[k].y.len()) as f64 <= eps * n0)
                    .unwrap_or(coarsest);
                (e, acc.max(mem))
            })
            .collect()
    };
    let per_stage = params.eps_scaling.unwrap_or_default().iters_per_stage;
    // Annealing iterations run; `max_iters` bounds the iterations of the target stage.
    let mut annealing = 0usize;

    let mut history = Vec::new();
    let mut iterations = 0usize;
    let mut hb = Vec::new();
    // Current state: level index, potentials in its tree order, and the kernel.
    let mut cur: Option<(usize, Vec<f64>, Vec<f64>, Truncated)> = None;
    let stages = sched.iter().copied().chain(std::iter::once((eps, 0)));
    let n_stages = sched.len() + 1;
    let mut result = None;
    // The acceleration of the target stage: the policy's choice (Anderson mixing by default).
    let scale_cold = warm_g.is_none();
    let (relaxation, _) = params.resolve_acceleration(scale, scale_cold);
    let mut relax = Relaxer::new(relaxation, !sched.is_empty());
    let (mut g_prev, mut t) = (Vec::new(), Vec::new());
    for (s, (e, li)) in stages.enumerate() {
        let target = s + 1 == n_stages;
        let lv = &levels[li];
        // Carry the potentials to this level (or start). On the same level the kernel of the
        // previous stage is kept for one g-update (it is a superset of the one at the smaller
        // eps) and re-truncated right after it, so that every column keeps an entry.
        let (mut f, mut g, mut kern, mut fresh) = match cur.take() {
            Some((pl, f, g, k)) if pl == li => (f, g, k, true),
            prev => {
                let g0 = match (prev, warm_g) {
                    (Some((pl, pf, _, _)), _) => {
                        soft_transform(&levels[pl].x, &pf, &lv.y, kappa, e, d)
                    }
                    (None, Some(g0)) => lv.y.tree.perm().iter().map(|&j| g0[j as usize]).collect(),
                    (None, None) => vec![0.0; lv.y.len()],
                };
                let f = soft_transform(&lv.y, &g0, &lv.x, kappa, e, d);
                let g = soft_transform(&lv.x, &f, &lv.y, kappa, e, d);
                let k = truncate(lv, &f, &g, e, theta, kappa, d)?;
                (f, g, k, false)
            }
        };
        let mut fnew = vec![0.0; lv.x.len()];
        let inv = 1.0 / e;
        let mut it = 0usize;
        // The bound that triggers a re-truncation: the requested one, relaxed at the target
        // stage to LOOSE_TRUNCATION times the last residual while that is larger (the dropped
        // mass then perturbs the iteration far less than its own error does); the returned
        // pair is always certified at the requested bound (see the convergence test below).
        let mut log_allowed = log_target;
        // Set at the target stage once the iteration on the stored values has converged.
        let mut exact = false;
        loop {
            // Over-relaxation (theory/sinkhorn.md §4b) only at the target stage.
            let omega = if target { relax.omega() } else { None };
            if omega.is_some() {
                g_prev.clear();
                g_prev.extend_from_slice(&g);
            }
            // The first iteration of the target stage is exact, so that a warm start from a
            // converged pair stops at once (its residual on the stored values can be above a
            // tight tolerance by their rounding).
            let stored = !(exact || (target && it == 0));
            let mut col_err = g_update(
                lv, &kern, &f, &mut g, &g_prev, omega, &mut t, e, kappa, d, stored,
            );
            if fresh || kern.log_bound(lv, &f, &g, e) > log_allowed {
                fresh = false;
                drop(std::mem::replace(&mut kern, Truncated::empty()));
                kern = truncate(lv, &f, &g, e, theta, kappa, d)?;
                if omega.is_some() {
                    g.copy_from_slice(&g_prev);
                }
                col_err = g_update(
                    lv, &kern, &f, &mut g, &g_prev, omega, &mut t, e, kappa, d, stored,
                );
            }
            rows_update(lv, &kern, &g, e, kappa, d, stored, &mut hb, &mut fnew);
            // Whether this iteration ran on the single-precision values (then it does not
            // decide convergence, see below).
            let approximate = stored && kern.has_vals(e);
            let err: f64 = col_err
                + lv.x
                    .w
                    .iter()
                    .zip(&f)
                    .zip(&fnew)
                    .map(|((&ai, &fi), &fo)| ai * ((fi - fo) * inv).exp_m1().abs())
                    .sum::<f64>();
            iterations += 1;
            it += 1;
            if !err.is_finite() {
                return Err(SinkhornError::Breakdown {
                    iteration: iterations,
                });
            }
            if crate::interrupt::requested() {
                return Err(SinkhornError::Interrupted { iterations });
            }
            if omega.is_some() {
                // A relaxed iteration never declares convergence: once its residual is below
                // tol the relaxation ends and the next (plain) iteration decides, as in the
                // dense and streaming solves.
                match relax.after_relaxed(err, tol, &mut f, &mut g) {
                    Relaxed::Restored | Relaxed::Restarted => continue,
                    Relaxed::Continue => {}
                }
                if params.record_history {
                    history.push(err);
                }
                log_allowed = log_target.max((LOOSE_TRUNCATION * err).ln());
                if it >= params.max_iters {
                    let log_b = kern.log_bound(lv, &f, &g, e);
                    result = Some((f, g, kern, err, false, log_b.exp()));
                    break;
                }
                // The factor after the decision (none once the relaxation has ended: then
                // the f-update is plain, as in the dense and streaming solves).
                match relax.omega() {
                    Some(w) => {
                        for (fi, &fo) in f.iter_mut().zip(&fnew) {
                            *fi = (1.0 - w) * *fi + w * fo;
                        }
                    }
                    None => std::mem::swap(&mut f, &mut fnew),
                }
                continue;
            }
            if params.record_history {
                history.push(err);
            }
            if target {
                let done = if err <= tol {
                    Some(true)
                } else if it >= params.max_iters {
                    Some(false)
                } else {
                    None
                };
                if let Some(true) = done.filter(|_| approximate) {
                    // Converged on the single-precision values: go on with the exact
                    // exponentials, which decide (module docs).
                    exact = true;
                    std::mem::swap(&mut f, &mut fnew);
                    continue;
                }
                if let Some(converged) = done {
                    let log_b = kern.log_bound(lv, &f, &g, e);
                    if converged && log_b > log_target {
                        // Converged on a kernel truncated at a relaxed bound: iterate on with a
                        // kernel re-truncated after the next g-update, so that the pair
                        // returned is certified at the requested bound.
                        log_allowed = log_target;
                        fresh = true;
                        std::mem::swap(&mut f, &mut fnew);
                        continue;
                    }
                    result = Some((f, g, kern, err, converged, log_b.exp()));
                    break;
                }
                log_allowed = log_target.max((LOOSE_TRUNCATION * err).ln());
                relax.after_plain(err, &f, &g);
                if relax.mixing() {
                    // Anderson mixing (theory/sinkhorn.md §4d): f from f and F(f) = fnew.
                    relax.mix(&mut f, &fnew, err);
                    continue;
                }
            } else if it >= per_stage {
                annealing += it;
                std::mem::swap(&mut f, &mut fnew);
                cur = Some((li, f, g, kern));
                break;
            }
            std::mem::swap(&mut f, &mut fnew);
        }
    }
    let Some((f, mut g, kern, err, converged, bound)) = result else {
        return Err(SinkhornError::Breakdown {
            iteration: iterations,
        });
    };
    if !converged && params.strict {
        return Err(SinkhornError::NotConverged {
            iterations,
            marginal_error: err,
        });
    }
    let lv = &levels[0];
    // Zero-weight atoms of nu: their potential is the c-transform (they carry no mass).
    if lv.y.w.contains(&0.0) {
        let ext = soft_transform(&lv.x, &f, &lv.y, kappa, eps, d);
        for (j, gj) in g.iter_mut().enumerate() {
            if lv.y.w[j] == 0.0 {
                *gj = ext[j];
            }
        }
    }
    let (tc, kl) = objectives(lv, &kern, &f, &g, eps, kappa, d);
    let ot = super::engine::dot(&lv.x.w, &f) + super::engine::dot(&lv.y.w, &g);
    let mut fo = vec![0.0; f.len()];
    for (p, &i) in lv.x.tree.perm().iter().enumerate() {
        fo[i as usize] = f[p];
    }
    let mut go = vec![0.0; g.len()];
    for (p, &j) in lv.y.tree.perm().iter().enumerate() {
        go[j as usize] = g[p];
    }
    Ok(SinkhornOutput {
        f: fo,
        g: go,
        ot,
        primal: tc + eps * kl,
        transport_cost: tc,
        iterations,
        marginal_error: err,
        converged,
        termination: if converged {
            Termination::Converged
        } else {
            Termination::MaxIterations
        },
        history,
        mode: Mode::Sparse,
        eps,
        cost: params.cost,
        // Over-relaxation at the target stage only; the multiscale eps-scaling runs from a
        // cold start.
        acceleration: AccelerationReport {
            policy: params.acceleration,
            over_relaxation: relax.report(),
            eps_scaling: sched.first().map(|&(start, _)| EpsScalingReport {
                stages: sched.len(),
                iterations: annealing,
                start,
            }),
        },
        truncation_bound: Some(bound),
    })
}

/// Number of kept pairs per row that the sparse kernel would hold (diagnostic for the
/// cost model in theory/sinkhorn.md §12): the potentials of a solved problem, the truncation
/// bound and the clouds.
#[doc(hidden)]
pub fn kept_pairs(
    x: &PointCloud,
    y: &PointCloud,
    out: &SinkhornOutput,
    sparse: &SparseParams,
) -> Result<usize, SinkhornError> {
    let d = x.dim();
    let lv = Level {
        x: Cloud::new(x.points_flat(), d, x.weights()),
        y: Cloud::new(y.points_flat(), d, y.weights()),
        h2: 0.0,
    };
    let f: Vec<f64> =
        lv.x.tree
            .perm()
            .iter()
            .map(|&i| out.f[i as usize])
            .collect();
    let g: Vec<f64> =
        lv.y.tree
            .perm()
            .iter()
            .map(|&j| out.g[j as usize])
            .collect();
    let k = truncate(
        &lv,
        &f,
        &g,
        out.eps,
        -sparse.truncation.ln(),
        out.cost.factor(),
        d,
    )?;
    Ok(k.kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Both half-steps on the stored single-precision values agree with the exact
    /// exponentials to the rounding of the values: each stored entry is the exact one times
    /// $(1+\delta)$ with $\lvert\delta\rvert\le2^{-24}$, so a sum of positive terms is off by at
    /// most that factor and the potential by $\varepsilon\,\lvert\log(1+\delta)\rvert\le
    /// 2^{-24}\varepsilon$ (plus the double-precision rounding of the two formulas, below
    /// $10^{-12}$ here).
    #[test]
    fn stored_values_agree_with_the_exponentials() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let nd = Normal::new(0.0, 1.0).unwrap();
        let n = 1500;
        let x: Vec<f64> = (0..2 * n).map(|_| nd.sample(&mut rng)).collect();
        let y: Vec<f64> = (0..2 * n)
            .map(|_| 1.0 + 0.7 * nd.sample(&mut rng))
            .collect();
        let d = 2;
        let (eps, kappa) = (0.01, 1.0);
        let lv = Level {
            x: Cloud::new(&x, d, &vec![1.0 / n as f64; n]),
            y: Cloud::new(&y, d, &vec![1.0 / n as f64; n]),
            h2: 0.0,
        };
        // A pair near the solution: plain iterations from g = 0 on a kernel truncated at it.
        let mut f = soft_transform(&lv.y, &vec![0.0; n], &lv.x, kappa, eps, d);
        let mut g = soft_transform(&lv.x, &f, &lv.y, kappa, eps, d);
        let mut hb = Vec::new();
        for _ in 0..30 {
            let k = truncate(&lv, &f, &g, eps, 40.0, kappa, d).unwrap();
            rows_update(&lv, &k, &g, eps, kappa, d, false, &mut hb, &mut f);
            cols_update(&lv, &k, &f, &mut g, eps, kappa, d, false);
        }
        // Move the pair away from the kernel's (f, g) as the iteration does between two
        // truncations, so that the scalings w, c are not all 1.
        let k = truncate(&lv, &f, &g, eps, 40.0, kappa, d).unwrap();
        assert!(k.has_vals(eps));
        for (j, gj) in g.iter_mut().enumerate() {
            *gj += eps * (0.5 * (j as f64 * 0.37).sin());
        }
        // The largest deviation of `stored` from `exact` as a fraction of the bound.
        let worst = |stored: &[f64], exact: &[f64]| {
            let tol = |v: f64| eps * 2f64.powi(-24) + 1e-12 * (1.0 + v.abs());
            stored
                .iter()
                .zip(exact)
                .map(|(a, b)| (a - b).abs() / tol(*b))
                .fold(0.0, f64::max)
        };
        let (mut fs, mut fe) = (vec![0.0; n], vec![0.0; n]);
        rows_update(&lv, &k, &g, eps, kappa, d, true, &mut hb, &mut fs);
        rows_update(&lv, &k, &g, eps, kappa, d, false, &mut hb, &mut fe);
        let wf = worst(&fs, &fe);
        assert!(wf <= 1.0, "f-update: {wf} of the bound");
        let (mut gs, mut ge) = (g.clone(), g.clone());
        cols_update(&lv, &k, &fe, &mut gs, eps, kappa, d, true);
        cols_update(&lv, &k, &fe, &mut ge, eps, kappa, d, false);
        let wg = worst(&gs, &ge);
        assert!(wg <= 1.0, "g-update: {wg} of the bound");
        // The two paths really differ (the stored one was taken).
        assert!(gs != ge && fs != fe);
    }
}
