//! The finite space $X=\{x_1,\dots,x_N\}\subset\mathbb R^d$, its cost matrix and its Gibbs
//! kernel $K=e^{-C/\varepsilon}$ with the conditioning check (theory/finite_flow.md §1, §6).
//!
//! Costs are computed from coordinate differences ([`crate::Cost::eval`]); the expansion
//! $\lvert x\rvert^2+\lvert y\rvert^2-2x\cdot y$ is never used: its absolute error
//! $\sim10^{-16}\lvert x\rvert^2$ becomes a relative error $\sim10^{-16}\lvert x\rvert^2/\varepsilon$
//! in $K$ (MATH.md §2).

use faer::linalg::solvers::Solve;
use faer::{Col, Mat, Side};

use super::error::{check_finite, FiniteError};
use crate::sinkhorn::PointCloud;
use crate::Cost;

/// Largest number of points accepted (each dense $N\times N$ matrix then takes 200 MB).
pub const MAX_POINTS: usize = 5000;

/// Default limit on the condition estimate of $K$: $10^{10}$.
///
/// With unit round-off $u\approx1.1\cdot10^{-16}$, solves with $K$ (and with the resolvent
/// matrix $M$, whose symmetric part is $K$) lose up to $\log_{10}\mathrm{cond}(K)$ digits, so at
/// $10^{10}$ the coefficients $a=K^{-1}b$ keep about 6 correct digits: enough for the support
/// decisions of the LCP on the problems of the campaign. On a 1-D grid this is
/// $s=\varepsilon/\delta^2\le 9.6$, on a 2-D grid $s\le4.9$ (law
/// $\mathrm{cond}(K)\approx(e^{\pi^2s/4}/2)^d$, MATH.md §2).
pub const DEFAULT_MAX_CONDITION: f64 = 1e10;

/// A finite point set with its ground cost.
#[derive(Clone, Debug, PartialEq)]
pub struct FiniteSpace {
    n: usize,
    d: usize,
    points: Vec<f64>,
    cost: Cost,
    /// Row-major $N\times N$ cost matrix.
    c: Vec<f64>,
    min_dist2: f64,
    /// The axes $(x_i)$, $(y_j)$ of a 2-D tensor grid built by [`FiniteSpace::grid_2d`] (point
    /// $j\,n_x+i$ is $(x_i,y_j)$), so that the kernel factors as $K=K_y\otimes K_x$.
    axes: Option<(Vec<f64>, Vec<f64>)>,
}

impl FiniteSpace {
    /// A space from row-major coordinates (`points.len() = n d`).
    ///
    /// # Errors
    /// Non-finite coordinates, fewer than two points, coinciding points, more than
    /// [`MAX_POINTS`] points, `d = 0`.
    pub fn new(points: Vec<f64>, d: usize, cost: Cost) -> Result<FiniteSpace, FiniteError> {
        if d == 0 {
            return Err(FiniteError::InvalidParameter {
                name: "d",
                message: "points need at least one coordinate".into(),
            });
        }
        if !points.len().is_multiple_of(d) {
            return Err(FiniteError::LengthMismatch {
                what: format!("number of coordinates (not a multiple of d = {d})"),
                expected: points.len().div_ceil(d) * d,
                got: points.len(),
            });
        }
        check_finite(&points, "coordinates")?;
        let n = points.len() / d;
        if n < 2 {
            return Err(FiniteError::TooFewPoints { n });
        }
        if n > MAX_POINTS {
            return Err(FiniteError::TooLarge {
                what: format!("{n} points (N x N dense matrices)"),
                needed: (n as u128) * (n as u128),
                limit: (MAX_POINTS as u128) * (MAX_POINTS as u128),
            });
        }
        let mut c = vec![0.0; n * n];
        let mut min_dist2 = f64::INFINITY;
        for i in 0..n {
            for j in 0..n {
                let cij = cost.eval(&points[i * d..(i + 1) * d], &points[j * d..(j + 1) * d]);
                c[i * n + j] = cij;
                if i < j {
                    if cij == 0.0 {
                        return Err(FiniteError::DuplicatePoints { i, j });
                    }
                    min_dist2 = min_dist2.min(cij / cost.factor());
                }
            }
        }
        if let Some(index) = c.iter().position(|t| !t.is_finite()) {
            return Err(FiniteError::NonFinite {
                what: "squared distances (coordinates too large)".into(),
                index,
            });
        }
        Ok(FiniteSpace {
            n,
            d,
            points,
            cost,
            c,
            min_dist2,
            axes: None,
        })
    }

    /// The uniform 1-D grid of `count` points from `lo` to `hi` (both included).
    pub fn grid_1d(lo: f64, hi: f64, count: usize, cost: Cost) -> Result<FiniteSpace, FiniteError> {
        let xs = grid_axis(lo, hi, count)?;
        FiniteSpace::new(xs, 1, cost)
    }

    /// The tensor grid $\{lo_x..hi_x\}\times\{lo_y..hi_y\}$ with `nx × ny` points, row-major with
    /// the x index fastest (point $k = j\,n_x + i$ is $(x_i, y_j)$).
    pub fn grid_2d(
        (lo_x, hi_x, nx): (f64, f64, usize),
        (lo_y, hi_y, ny): (f64, f64, usize),
        cost: Cost,
    ) -> Result<FiniteSpace, FiniteError> {
        let xs = grid_axis(lo_x, hi_x, nx)?;
        let ys = grid_axis(lo_y, hi_y, ny)?;
        if (nx as u128) * (ny as u128) > MAX_POINTS as u128 {
            return Err(FiniteError::TooLarge {
                what: format!("{nx} x {ny} grid"),
                needed: (nx as u128) * (ny as u128),
                limit: MAX_POINTS as u128,
            });
        }
        let mut p = Vec::with_capacity(2 * nx * ny);
        for &y in &ys {
            for &x in &xs {
                p.push(x);
                p.push(y);
            }
        }
        let mut space = FiniteSpace::new(p, 2, cost)?;
        space.axes = Some((xs, ys));
        Ok(space)
    }

    /// Number of points $N$.
    pub fn len(&self) -> usize {
        self.n
    }
    /// Always false (at least two points).
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Dimension $d$.
    pub fn dim(&self) -> usize {
        self.d
    }
    /// The cost convention.
    pub fn cost(&self) -> Cost {
        self.cost
    }
    /// Point $x_i$.
    ///
    /// # Panics
    /// `i >= len()` (a caller bug).
    #[track_caller]
    pub fn point(&self, i: usize) -> &[f64] {
        &self.points[i * self.d..(i + 1) * self.d]
    }
    /// Row-major coordinates.
    pub fn points_flat(&self) -> &[f64] {
        &self.points
    }
    /// The points as a [`PointCloud`] with the weights `w` (for the Sinkhorn engine).
    pub(crate) fn weighted_cloud(&self, w: &[f64]) -> Result<PointCloud, FiniteError> {
        Ok(PointCloud::from_flat(
            self.points.clone(),
            self.d,
            Some(w.to_vec()),
            true,
        )?)
    }
    /// $C_{ij}$.
    #[inline]
    pub fn c(&self, i: usize, j: usize) -> f64 {
        self.c[i * self.n + j]
    }
    /// Row-major cost matrix.
    pub fn costs(&self) -> &[f64] {
        &self.c
    }
    /// Smallest squared distance $\delta^2=\min_{i\ne j}\lvert x_i-x_j\rvert^2$ (the grid step
    /// squared on a grid).
    pub fn min_dist2(&self) -> f64 {
        self.min_dist2
    }
    /// $s=\varepsilon/(\kappa\delta^2)$, the kernel width in grid cells squared, with $\kappa$ the
    /// cost factor (so that $C/\varepsilon=\lvert x-y\rvert^2/(\delta^2 s)$ whatever the cost).
    pub fn s_of_eps(&self, eps: f64) -> f64 {
        eps / (self.cost.factor() * self.min_dist2)
    }
}

fn grid_axis(lo: f64, hi: f64, count: usize) -> Result<Vec<f64>, FiniteError> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Err(FiniteError::InvalidParameter {
            name: "grid",
            message: format!("bounds must be finite with lo < hi, got {lo}:{hi}"),
        });
    }
    if count < 2 {
        return Err(FiniteError::TooFewPoints { n: count });
    }
    if count > MAX_POINTS {
        return Err(FiniteError::TooLarge {
            what: format!("grid axis of {count} points"),
            needed: count as u128,
            limit: MAX_POINTS as u128,
        });
    }
    let h = (hi - lo) / (count - 1) as f64;
    Ok((0..count)
        .map(|i| {
            if i + 1 == count {
                hi
            } else {
                lo + h * i as f64
            }
        })
        .collect())
}

/// Parameters of the conditioning check of [`Kernel::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelParams {
    /// Refuse when the condition estimate exceeds this (range $[1, 4.5\cdot10^{15}]$, default
    /// [`DEFAULT_MAX_CONDITION`]). A failed Cholesky factorisation is always refused.
    pub max_condition: f64,
}

impl Default for KernelParams {
    fn default() -> Self {
        KernelParams {
            max_condition: DEFAULT_MAX_CONDITION,
        }
    }
}

/// The Gibbs kernel $K_{ij}=e^{-C_{ij}/\varepsilon}$ of a [`FiniteSpace`], its Cholesky factor and
/// a condition estimate.
///
/// $K$ is the Gram matrix of the reproducing kernel of $H_c$: $\langle u,w\rangle_H=u^\top K^{-1}w$
/// (MATH.md §2). It is positive definite for distinct points but badly conditioned:
/// $\mathrm{cond}(K)\approx(e^{\pi^2s/4}/2)^d$ on a tensor grid with $s=\varepsilon/\delta^2$.
pub struct Kernel {
    eps: f64,
    k: Mat<f64>,
    ranges: Vec<(usize, usize)>,
    llt: faer::linalg::solvers::Llt<f64>,
    cond: f64,
    /// $K=K_y\otimes K_x$ on a 2-D tensor grid.
    factors: Option<KernelFactors>,
}

/// The tensor factors of the kernel of a 2-D grid: $K_{(i,j),(i',j')}=(K_x)_{ii'}(K_y)_{jj'}$
/// with $K_x=e^{-\kappa(x_i-x_{i'})^2/\varepsilon}$ and likewise $K_y$, so that $Kz$ for $z$ laid
/// out as the $n_x\times n_y$ matrix $Z$ (x index fastest) is $K_xZK_y$: $O(N^{3/2})$ instead of
/// $O(N^2)$ (theory/finite_flow.md §8e). The entries agree with those of $K$ to a few ulps
/// ($e^{-a}e^{-b}$ against $e^{-(a+b)}$).
#[derive(Clone, Debug)]
pub(crate) struct KernelFactors {
    kx: Mat<f64>,
    ky: Mat<f64>,
}

impl KernelFactors {
    fn new(xs: &[f64], ys: &[f64], inv_eps: f64) -> KernelFactors {
        let axis = |t: &[f64]| {
            Mat::from_fn(t.len(), t.len(), |i, j| {
                (-(t[i] - t[j]) * (t[i] - t[j]) * inv_eps).exp()
            })
        };
        KernelFactors {
            kx: axis(xs),
            ky: axis(ys),
        }
    }

    /// $n_x+n_y$ ($K_xZK_y$ costs $N(n_x+n_y)$ multiply-adds).
    pub(crate) fn axes_sum(&self) -> usize {
        self.kx.nrows() + self.ky.nrows()
    }

    /// $Kz$ as $K_xZK_y$ ($K_y$ is symmetric).
    pub(crate) fn apply(&self, z: &[f64]) -> Vec<f64> {
        let (nx, ny) = (self.kx.nrows(), self.ky.nrows());
        use faer::linalg::matmul::matmul;
        use faer::{Accum, Par};
        let zm = faer::MatRef::from_column_major_slice(z, nx, ny);
        // small products: on the calling thread (a parallel split costs more than it saves)
        let mut t = Mat::<f64>::zeros(nx, ny);
        matmul(
            t.as_mut(),
            Accum::Replace,
            self.kx.as_ref(),
            zm,
            1.0,
            Par::Seq,
        );
        let mut out = vec![0.0; nx * ny];
        let om = faer::MatMut::from_column_major_slice_mut(&mut out, nx, ny);
        matmul(
            om,
            Accum::Replace,
            t.as_ref(),
            self.ky.as_ref(),
            1.0,
            Par::Seq,
        );
        out
    }
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("n", &self.k.nrows())
            .field("eps", &self.eps)
            .field("cond", &self.cond)
            .finish()
    }
}

/// $K=e^{-C/\varepsilon}$ (entries from coordinate differences).
fn gibbs(space: &FiniteSpace, eps: f64) -> Mat<f64> {
    let inv = 1.0 / eps;
    Mat::from_fn(space.n, space.n, |i, j| (-space.c(i, j) * inv).exp())
}

/// Condition estimate $\lambda_{\max}/\lambda_{\min}$ of an SPD matrix with its Cholesky factor:
/// 40 power iterations for $\lambda_{\max}$, 40 inverse iterations (Cholesky solves) for
/// $\lambda_{\min}$, Rayleigh quotients. Both are inner estimates, so the result is a lower bound
/// of the 2-norm condition number, accurate to a factor well below 2 on the kernels of grids
/// (checked against a full eigen-decomposition in `tests/finite_space.rs`).
fn condition_estimate(k: &Mat<f64>, llt: &faer::linalg::solvers::Llt<f64>) -> f64 {
    let n = k.nrows();
    // Start vector: alternating signs (the least smooth mode, the smallest eigenvalue on a grid)
    // plus a deterministic irregular part so no eigenvector is missed by symmetry.
    let start = |i: usize| {
        let sgn = if i.is_multiple_of(2) { 1.0 } else { -1.0 };
        sgn + 0.3 * ((i as f64 * 12.9898).sin() * 43758.5453).fract()
    };
    let normalise = |v: &mut Col<f64>| {
        let nv = v.norm_l2();
        if nv > 0.0 {
            *v = &*v * (1.0 / nv);
        }
    };
    let mut v = Col::<f64>::from_fn(n, |i| 1.0 + 0.1 * start(i));
    normalise(&mut v);
    let mut lmax = 0.0;
    for _ in 0..40 {
        let w: Col<f64> = k * &v;
        lmax = (v.transpose() * &w).abs();
        v = w;
        normalise(&mut v);
    }
    let mut v = Col::<f64>::from_fn(n, start);
    normalise(&mut v);
    let mut inv_lmin = 0.0;
    for _ in 0..40 {
        let w = llt.solve(&v);
        inv_lmin = (v.transpose() * &w).abs();
        v = w;
        normalise(&mut v);
    }
    lmax * inv_lmin
}

/// Factorise and estimate: `(Some(llt), cond)` or `(None, inf)` when Cholesky fails.
/// Subnormals flushed (theory/finite_flow.md §8c).
fn factor(k: &Mat<f64>) -> (Option<faer::linalg::solvers::Llt<f64>>, f64) {
    crate::linalg::flush_subnormals(|| match k.llt(Side::Lower) {
        Ok(llt) => {
            let c = condition_estimate(k, &llt);
            (Some(llt), if c.is_finite() { c } else { f64::INFINITY })
        }
        Err(_) => (None, f64::INFINITY),
    })
}

/// The condition estimate of $K$ at `eps` (infinite when Cholesky fails).
pub fn kernel_condition(space: &FiniteSpace, eps: f64) -> f64 {
    factor(&gibbs(space, eps)).1
}

/// The largest eps whose condition estimate is at most `limit`, to 1% (bisection in
/// $\log\varepsilon$ started from the grid law $s^\star=\frac4{\pi^2}\ln(2\,L^{1/d})$).
pub fn largest_safe_eps(space: &FiniteSpace, limit: f64) -> f64 {
    largest_eps_within(space, limit, |e| kernel_condition(space, e))
}

/// The largest eps with `cond(eps) <= limit`, to 1%: bisection in $\log\varepsilon$ started
/// from the grid law (shared by [`largest_safe_eps`] and the double-double path).
pub(crate) fn largest_eps_within(
    space: &FiniteSpace,
    limit: f64,
    cond: impl Fn(f64) -> f64,
) -> f64 {
    let law_s = 4.0 / std::f64::consts::PI.powi(2) * (2.0 * limit.powf(1.0 / space.d as f64)).ln();
    let guess = law_s.max(0.05) * space.cost.factor() * space.min_dist2;
    let ok = |e: f64| cond(e) <= limit;
    let (mut lo, mut hi) = (guess, guess);
    let mut tries = 0;
    while !ok(lo) && tries < 40 {
        hi = lo;
        lo *= 0.5;
        tries += 1;
    }
    if hi == lo {
        tries = 0;
        while ok(hi) && tries < 40 {
            lo = hi;
            hi *= 2.0;
            tries += 1;
        }
    }
    while hi / lo > 1.01 {
        let mid = (lo * hi).sqrt();
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

impl Kernel {
    /// Build $K$, factorise it and check its conditioning.
    ///
    /// # Errors
    /// `eps` not finite and positive, a `max_condition` out of range, or
    /// [`FiniteError::IllConditioned`] (with the largest safe eps) when the estimate exceeds the
    /// limit or Cholesky fails. Nothing is regularised.
    pub fn new(
        space: &FiniteSpace,
        eps: f64,
        params: &KernelParams,
    ) -> Result<Kernel, FiniteError> {
        check_eps(eps)?;
        let limit = params.max_condition;
        if !(limit.is_finite() && (1.0..=4.5e15).contains(&limit)) {
            return Err(FiniteError::InvalidParameter {
                name: "max_condition",
                message: format!("must lie in [1, 4.5e15], got {limit}"),
            });
        }
        let k = gibbs(space, eps);
        let (llt, cond) = factor(&k);
        match llt {
            Some(llt) if cond <= limit => Ok(Kernel {
                eps,
                ranges: col_ranges(k.as_ref()),
                k,
                llt,
                cond,
                factors: space
                    .axes
                    .as_ref()
                    .map(|(xs, ys)| KernelFactors::new(xs, ys, space.cost.factor() / eps)),
            }),
            other => Err(FiniteError::IllConditioned {
                eps,
                cond,
                limit,
                safe_eps: largest_safe_eps(space, limit),
                chol: if other.is_none() {
                    " (Cholesky failed: K is not numerically positive definite)".into()
                } else {
                    String::new()
                },
            }),
        }
    }

    /// $\varepsilon$.
    pub fn eps(&self) -> f64 {
        self.eps
    }
    /// $N$.
    pub fn len(&self) -> usize {
        self.k.nrows()
    }
    /// Always false.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// The condition estimate of $K$.
    pub fn cond(&self) -> f64 {
        self.cond
    }
    /// The matrix $K$.
    pub fn matrix(&self) -> &Mat<f64> {
        &self.k
    }
    /// The tensor factors of $K$ on a 2-D grid.
    pub(crate) fn factors(&self) -> Option<&KernelFactors> {
        self.factors.as_ref()
    }
    /// $K_{ij}$.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.k[(i, j)]
    }
    /// $Kx$.
    ///
    /// # Panics
    /// Wrong length (a caller bug).
    #[track_caller]
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        matvec_ranged(&self.k, &self.ranges, x)
    }
    /// $K^{-1}y$ by the Cholesky factor (never an explicit inverse).
    #[track_caller]
    pub fn solve(&self, y: &[f64]) -> Vec<f64> {
        assert_eq!(y.len(), self.len(), "vector of the wrong length");
        let c = Col::<f64>::from_fn(y.len(), |i| y[i]);
        let z = self.llt.solve(&c);
        (0..y.len()).map(|i| z[i]).collect()
    }
    /// $x^\top K y$.
    pub fn quad(&self, x: &[f64], y: &[f64]) -> f64 {
        dot(x, &self.apply(y))
    }
}

pub(crate) fn check_eps(eps: f64) -> Result<f64, FiniteError> {
    crate::error::positive_finite(eps).map_err(|e| FiniteError::InvalidParameter {
        name: "eps",
        message: format!("must be finite and > 0, got {e}"),
    })
}

/// $y=Ax$ for a dense faer matrix: column-wise axpy ([`axpy_columns`]).
#[track_caller]
pub(crate) fn matvec(a: &Mat<f64>, x: &[f64]) -> Vec<f64> {
    assert_eq!(a.ncols(), x.len(), "matvec: length mismatch");
    let n = a.nrows();
    let mut y = vec![0.0; n];
    let terms: Vec<(&[f64], f64, usize, usize)> = x
        .iter()
        .enumerate()
        .filter(|(_, &xj)| xj != 0.0)
        .map(|(j, &xj)| (col_slice(a, j), xj, 0, n))
        .collect();
    axpy_columns(&mut y, &terms);
    y
}

/// Column `j` of an owned (column-major) matrix as a slice.
#[inline]
pub(crate) fn col_slice(a: &Mat<f64>, j: usize) -> &[f64] {
    a.col(j)
        .try_as_col_major()
        .expect("owned matrices are column-major")
        .as_slice()
}

/// $y_{lo..hi}\mathrel{+}=c\cdot\mathrm{col}_{lo..hi}$ for every term `(col, c, lo, hi)`, in the
/// given order, on the calling thread (memory-bound: splitting the rows over two threads gave no
/// gain on the 2500-point grid, 1.13 vs 1.20 ms per product on 2 shared cores).
pub(crate) fn axpy_columns(y: &mut [f64], terms: &[(&[f64], f64, usize, usize)]) {
    for &(col, c, lo, hi) in terms {
        for (yi, &m) in y[lo..hi].iter_mut().zip(&col[lo..hi]) {
            *yi += m * c;
        }
    }
}

/// For every column of `a`, the row range `lo..hi` outside which its entries are exactly 0.
///
/// On grids $K=e^{-C/\varepsilon}$ underflows to exactly 0 in double beyond
/// $\lvert x_i-x_j\rvert^2/\varepsilon>745$ (about $\sqrt{745s}$ cells), and so do $M$ and the
/// LU factors of $M_{SS}$ (fill-in stays inside the band): products and triangular solves that
/// skip these entries do the same floating-point operations on the others, in $O(\mathrm{nnz})$
/// instead of $O(N^2)$ (theory/finite_flow.md §8). A dense matrix gets full ranges.
pub(crate) fn col_ranges(a: faer::MatRef<'_, f64>) -> Vec<(usize, usize)> {
    (0..a.ncols())
        .map(|j| {
            let lo = (0..a.nrows()).find(|&i| a[(i, j)] != 0.0);
            match lo {
                None => (0, 0),
                Some(lo) => {
                    let hi = (lo..a.nrows())
                        .rev()
                        .find(|&i| a[(i, j)] != 0.0)
                        .unwrap_or(lo)
                        + 1;
                    (lo, hi)
                }
            }
        })
        .collect()
}

/// $y=Ax$ skipping the exact zeros of each column outside `ranges` ([`col_ranges`]).
pub(crate) fn matvec_ranged(a: &Mat<f64>, ranges: &[(usize, usize)], x: &[f64]) -> Vec<f64> {
    assert_eq!(a.ncols(), x.len(), "matvec: length mismatch");
    let mut y = vec![0.0; a.nrows()];
    let terms: Vec<(&[f64], f64, usize, usize)> = x
        .iter()
        .enumerate()
        .filter(|&(j, &xj)| xj != 0.0 && ranges[j].0 < ranges[j].1)
        .map(|(j, &xj)| (col_slice(a, j), xj, ranges[j].0, ranges[j].1))
        .collect();
    axpy_columns(&mut y, &terms);
    y
}

/// $\sum_i x_iy_i$.
#[inline]
pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}
