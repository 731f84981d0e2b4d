//! Tensor grids and the separable log-sum-exp (`theory/pma.md` §6).
//!
//! A [`TensorGrid`] holds two measures supported on tensor grids
//! $X = X^{(1)}\times\dots\times X^{(d)}$, $Y = Y^{(1)}\times\dots\times Y^{(d)}$ (flattened
//! row-major: the last axis runs fastest) with weights $a$, $b$, and a cost that is a sum over
//! axes, $c(x,y) = \kappa\sum_k\delta_k(x_k,y_k)^2$, where $\delta_k(s,t) = s-t$ (squared
//! Euclidean, $\kappa$ from [`crate::Cost`]) or the periodic distance
//! $\delta_k(s,t) = (s-t) - L_k\,\mathrm{round}((s-t)/L_k)$ on a torus of periods $L_k$.
//!
//! Because $e^{-c/\varepsilon}$ is a tensor product, the half-step's log-sum-exp factorises
//! axis by axis, *exactly*:
//! $$\mathrm{lse}_{i}=\log\sum_{j_1}e^{-c_1(x_{i_1},y_{j_1})/\varepsilon}\cdots\log\sum_{j_d}e^{u_{j_1\dots j_d}-c_d(x_{i_d},y_{j_d})/\varepsilon},$$
//! each inner sum being a one-dimensional log-sum-exp along one axis of a $d$-way array. A
//! half-step costs $O(N\sum_k m_k) = O(N^{1+1/d})$ for $N = \prod n_k$ points instead of the
//! dense $O(NM)$, and no $N\times M$ cost is ever formed. Each one-dimensional pass runs the
//! engine's row kernel in its tiles of four output rows (the rows share the line, so each load
//! of it serves four rows; every value equals the one-row call [`super::kernel::lse_row_dispatch`]
//! bit for bit) on a precomputed, 64-byte-aligned $n_k\times m_k$ axis cost table. The engine uses this path for [`super::Geometry::Grid`] automatically;
//! `tests/pma_separable.rs` checks it against the dense kernel.

use rayon::prelude::*;

use super::error::{check_finite, SinkhornError};
use super::kernel::{current_path, lse_rows, padded, AlignedBuf, ExpFn, TileSource, TILE};
use super::measure::validate_weights;

/// Largest number of grid points per measure (the product of the axis lengths): $2^{28}$.
pub const MAX_GRID_POINTS: usize = 1 << 28;

/// Two measures on tensor grids with an axis-separable quadratic (or periodic quadratic) cost
/// (module docs). Built only through validating constructors.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorGrid {
    x_axes: Vec<Vec<f64>>,
    y_axes: Vec<Vec<f64>>,
    a: Vec<f64>,
    b: Vec<f64>,
    period: Option<Vec<f64>>,
    n: usize,
    m: usize,
}

fn axes_len(axes: &[Vec<f64>], which: &str) -> Result<usize, SinkhornError> {
    if axes.is_empty() {
        return Err(SinkhornError::ZeroDimension);
    }
    let mut n: usize = 1;
    for (k, ax) in axes.iter().enumerate() {
        if ax.is_empty() {
            return Err(SinkhornError::EmptyCloud);
        }
        check_finite(ax, &format!("{which} axis {k}"))?;
        n = n
            .checked_mul(ax.len())
            .filter(|&n| n <= MAX_GRID_POINTS)
            .ok_or_else(|| SinkhornError::InvalidParameter {
                name: "grid",
                message: format!(
                    "{which} grid has more than {MAX_GRID_POINTS} points (product of the axis lengths)"
                ),
            })?;
    }
    Ok(n)
}

impl TensorGrid {
    /// Two grids with the squared-Euclidean cost of the parameters (`Cost`), weights uniform when
    /// `None`, validated like [`super::PointCloud`] weights (`normalise` rescales them).
    pub fn new(
        x_axes: Vec<Vec<f64>>,
        y_axes: Vec<Vec<f64>>,
        a: Option<Vec<f64>>,
        b: Option<Vec<f64>>,
        normalise: bool,
    ) -> Result<TensorGrid, SinkhornError> {
        TensorGrid::build(x_axes, y_axes, None, a, b, normalise)
    }

    /// Two grids on the torus $\prod_k\mathbb R/L_k\mathbb Z$ with the periodic cost
    /// $\kappa\sum_k\delta_k^2$ (module docs); `period[k]` $= L_k$, finite and $>0$.
    pub fn periodic(
        x_axes: Vec<Vec<f64>>,
        y_axes: Vec<Vec<f64>>,
        period: Vec<f64>,
        a: Option<Vec<f64>>,
        b: Option<Vec<f64>>,
        normalise: bool,
    ) -> Result<TensorGrid, SinkhornError> {
        TensorGrid::build(x_axes, y_axes, Some(period), a, b, normalise)
    }

    fn build(
        x_axes: Vec<Vec<f64>>,
        y_axes: Vec<Vec<f64>>,
        period: Option<Vec<f64>>,
        a: Option<Vec<f64>>,
        b: Option<Vec<f64>>,
        normalise: bool,
    ) -> Result<TensorGrid, SinkhornError> {
        let n = axes_len(&x_axes, "x")?;
        let m = axes_len(&y_axes, "y")?;
        if x_axes.len() != y_axes.len() {
            return Err(SinkhornError::DimensionMismatch {
                what: "number of axes of y vs x".into(),
                expected: x_axes.len(),
                got: y_axes.len(),
            });
        }
        if let Some(p) = &period {
            if p.len() != x_axes.len() {
                return Err(SinkhornError::DimensionMismatch {
                    what: "number of periods vs number of axes".into(),
                    expected: x_axes.len(),
                    got: p.len(),
                });
            }
            if let Some(&l) = p.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
                return Err(SinkhornError::InvalidParameter {
                    name: "period",
                    message: format!("periods must be finite and > 0, got {l}"),
                });
            }
        }
        let a = validate_weights(a, n, normalise)?;
        let b = validate_weights(b, m, normalise)?;
        Ok(TensorGrid {
            x_axes,
            y_axes,
            a,
            b,
            period,
            n,
            m,
        })
    }

    /// Number of axes $d$.
    pub fn dim(&self) -> usize {
        self.x_axes.len()
    }
    /// Number of points of the first grid, $\prod_k n_k$.
    pub fn len_x(&self) -> usize {
        self.n
    }
    /// Number of points of the second grid.
    pub fn len_y(&self) -> usize {
        self.m
    }
    /// Axes of the first grid.
    pub fn x_axes(&self) -> &[Vec<f64>] {
        &self.x_axes
    }
    /// Axes of the second grid.
    pub fn y_axes(&self) -> &[Vec<f64>] {
        &self.y_axes
    }
    /// Weights $a$ of the first grid (flattened row-major).
    pub fn a(&self) -> &[f64] {
        &self.a
    }
    /// Weights $b$ of the second grid.
    pub fn b(&self) -> &[f64] {
        &self.b
    }
    /// The periods of a periodic grid.
    pub fn period(&self) -> Option<&[f64]> {
        self.period.as_deref()
    }

    /// The multi-index of flat index `i` of a grid with the given axes (row-major).
    fn unravel(axes: &[Vec<f64>], mut i: usize, out: &mut [usize]) {
        for k in (0..axes.len()).rev() {
            let nk = axes[k].len();
            out[k] = i % nk;
            i /= nk;
        }
    }

    /// Point `i` of the first grid (coordinates).
    ///
    /// # Panics
    /// If `i >= len_x()` (a caller bug).
    #[track_caller]
    pub fn x_point(&self, i: usize) -> Vec<f64> {
        assert!(i < self.n, "grid index out of range");
        let mut idx = vec![0; self.dim()];
        Self::unravel(&self.x_axes, i, &mut idx);
        idx.iter().zip(&self.x_axes).map(|(&j, ax)| ax[j]).collect()
    }

    /// Point `j` of the second grid.
    ///
    /// # Panics
    /// If `j >= len_y()`.
    #[track_caller]
    pub fn y_point(&self, j: usize) -> Vec<f64> {
        assert!(j < self.m, "grid index out of range");
        let mut idx = vec![0; self.dim()];
        Self::unravel(&self.y_axes, j, &mut idx);
        idx.iter().zip(&self.y_axes).map(|(&i, ax)| ax[i]).collect()
    }

    /// $\delta_k(s,t)^2$ along axis `k` (without the factor $\kappa$).
    #[inline]
    fn axis_sq(&self, k: usize, s: f64, t: f64) -> f64 {
        let d = s - t;
        let d = match &self.period {
            Some(p) => d - p[k] * (d / p[k]).round(),
            None => d,
        };
        d * d
    }

    /// $c(x_i, y_j) = \kappa\sum_k\delta_k^2$, the axes summed in order $k = 0..d$.
    pub fn cost(&self, i: usize, j: usize, factor: f64) -> f64 {
        let d = self.dim();
        let mut ii = vec![0; d];
        let mut jj = vec![0; d];
        Self::unravel(&self.x_axes, i, &mut ii);
        Self::unravel(&self.y_axes, j, &mut jj);
        let mut s = 0.0;
        for k in 0..d {
            s += self.axis_sq(k, self.x_axes[k][ii[k]], self.y_axes[k][jj[k]]);
        }
        s * factor
    }

    /// One row of costs: `out[j] = c(x_r, y_j)` (`transpose = false`) or
    /// `out[i] = c(x_i, y_r)` (`transpose = true`).
    pub(crate) fn fill_row(&self, r: usize, transpose: bool, factor: f64, out: &mut [f64]) {
        let len = if transpose { self.n } else { self.m };
        for (j, o) in out[..len].iter_mut().enumerate() {
            *o = if transpose {
                self.cost(j, r, factor)
            } else {
                self.cost(r, j, factor)
            };
        }
    }

    /// Cost scale for eps-scaling: $\kappa\sum_k\mathrm{diam}_k^2$ (the axis range of the union, or
    /// $L_k/2$ on a torus), $\ge\max c$.
    pub(crate) fn cost_scale(&self, factor: f64) -> f64 {
        let mut s = 0.0;
        for k in 0..self.dim() {
            let w = match &self.period {
                Some(p) => p[k] / 2.0,
                None => {
                    let (lo, hi) = self.x_axes[k]
                        .iter()
                        .chain(&self.y_axes[k])
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &t| {
                            (l.min(t), h.max(t))
                        });
                    hi - lo
                }
            };
            s += w * w;
        }
        factor * s
    }

    /// The separable log-sum-exp of one half-step: `lse[r] = log Σ_j exp(u_j - c(·,·)/eps)` over
    /// the input grid (`transpose = false`: outputs on the x grid, input `u` on the y grid;
    /// `true`: the reverse), computed axis by axis (module docs).
    pub(crate) fn separable_lse<E: ExpFn>(
        &self,
        transpose: bool,
        u: &[f64],
        inv_eps: f64,
        factor: f64,
        lse: &mut [f64],
    ) {
        let (out_axes, in_axes) = if transpose {
            (&self.y_axes, &self.x_axes)
        } else {
            (&self.x_axes, &self.y_axes)
        };
        let d = self.dim();
        let path = current_path();
        // current array: shape `shape`, flattened row-major
        let mut shape: Vec<usize> = in_axes.iter().map(|a| a.len()).collect();
        let mut cur = u.to_vec();
        for k in (0..d).rev() {
            let (mk, nk) = (in_axes[k].len(), out_axes[k].len());
            // axis cost table C_k[i][j] = kappa delta_k(out_i, in_j)^2 (argument order: x - y),
            // rows at the aligned stride `ts`
            let ts = padded(mk);
            let mut table = AlignedBuf::new(nk * ts, 0.0);
            let tab = table.as_mut_slice();
            for i in 0..nk {
                for j in 0..mk {
                    let (s, t) = if transpose {
                        (in_axes[k][j], out_axes[k][i])
                    } else {
                        (out_axes[k][i], in_axes[k][j])
                    };
                    tab[i * ts + j] = factor * self.axis_sq(k, s, t);
                }
            }
            let src = TileSource::Rows {
                c: table.as_slice(),
                stride: ts,
            };
            let pre: usize = shape[..k].iter().product();
            let post: usize = shape[k + 1..].iter().product();
            let mut next = vec![0.0; pre * nk * post];
            // per-task scratch: the gathered line (aligned) and the tile's z rows
            let scratch = || (AlignedBuf::new(mk, 0.0), AlignedBuf::new(TILE * ts, 0.0));
            let cur_ref = &cur;
            let line_task =
                |p: usize, q: usize, (line, z): &mut (AlignedBuf, AlignedBuf), o: &mut [f64]| {
                    let l = line.as_mut_slice();
                    for (jj, v) in l.iter_mut().enumerate() {
                        *v = cur_ref[(p * mk + jj) * post + q];
                    }
                    lse_rows::<E>(
                        path,
                        src,
                        0,
                        line.as_slice(),
                        mk,
                        inv_eps,
                        z.as_mut_slice(),
                        o,
                    );
                };
            // results of line (p, q) land at next[(p * nk + i) * post + q]; compute per line into a
            // small buffer, then scatter (parallel over p when the pass is large)
            let work = pre * post * nk * mk;
            if work >= (1 << 16) && pre == 1 && post > 1 {
                // first axis: one block, so parallel over the lines q into a q-major buffer,
                // then transpose (each line's arithmetic is unchanged, so the result is too)
                let mut by_line = vec![0.0; post * nk];
                by_line
                    .par_chunks_mut(nk)
                    .enumerate()
                    .for_each_init(scratch, |sc, (q, o)| line_task(0, q, sc, o));
                for (q, o) in by_line.chunks_exact(nk).enumerate() {
                    for (i, &v) in o.iter().enumerate() {
                        next[i * post + q] = v;
                    }
                }
            } else if work < (1 << 16) || pre == 1 {
                let mut sc = scratch();
                let mut o = vec![0.0; nk];
                for p in 0..pre {
                    for q in 0..post {
                        line_task(p, q, &mut sc, &mut o);
                        for (i, &v) in o.iter().enumerate() {
                            next[(p * nk + i) * post + q] = v;
                        }
                    }
                }
            } else {
                next.par_chunks_mut(nk * post).enumerate().for_each_init(
                    || (scratch(), vec![0.0; nk]),
                    |(sc, o), (p, chunk)| {
                        if post == 1 {
                            // contiguous output line: write it in place
                            return line_task(p, 0, sc, chunk);
                        }
                        for q in 0..post {
                            line_task(p, q, sc, o);
                            for (i, &v) in o.iter().enumerate() {
                                chunk[i * post + q] = v;
                            }
                        }
                    },
                );
            }
            cur = next;
            shape[k] = nk;
        }
        lse.copy_from_slice(&cur);
    }
}
