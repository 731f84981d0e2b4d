//! The half-step operator $h\mapsto T(h,\rho)$ on a prepared problem (dense or streaming),
//! shared by the solvers and the step API.

use rayon::prelude::*;

use super::error::SinkhornError;
use super::grid::TensorGrid;
use std::cell::RefCell;

use super::kernel::{
    current_path, fill_cost_row_dispatch, log_weights, lse_row_dispatch, lse_rows, padded,
    scaled_potential, AlignedBuf, ExpFn, ExpKernel, FastExp, SimdPath, StdExp, TileSource, TILE,
};
use super::measure::{CostMatrix, Geometry, PointCloud};
use super::params::Mode;
use crate::Cost;

/// Rows handled by one rayon task (a multiple of the row tile).
const ROWS_PER_TASK: usize = 16;
const _: () = assert!(ROWS_PER_TASK.is_multiple_of(TILE));

thread_local! {
    /// Each thread's scratch for the row kernels (`TILE` rows of $z$, or a cost row and a $z$
    /// row), 64-byte aligned, allocated once per thread and grown to the longest rows seen
    /// (`TILE` × 8 × m bytes: 128 KB at m = 4000), never per task.
    static SCRATCH: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// Run `f` with at least `len` doubles of this thread's scratch (a fresh buffer in the
/// unexpected case that the thread's own is already borrowed).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.ensure(len);
            f(&mut buf.as_mut_slice()[..len])
        }
        Err(_) => f(AlignedBuf::new(len, 0.0).as_mut_slice()),
    })
}
/// Below this many pairs a half-step runs on the calling thread (same arithmetic).
const PAR_MIN_PAIRS: usize = 1 << 15;

/// Which potential a half-step updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Output over the $n$ atoms of $\mu$ (the $f$-update, input $g$ weighted by $b$).
    Rows,
    /// Output over the $m$ atoms of $\nu$ (the $g$-update, input $f$ weighted by $a$).
    Cols,
}

/// Where the cost rows of one side come from.
enum RowSource<'a> {
    /// Row-major matrix with `len` columns, row `r` at `r * stride`.
    Slice { s: &'a [f64], stride: usize },
    /// Rows are the points `pts` (row-major, dimension `d`) against the cloud `coords`
    /// (coordinate-major, coordinate `k` at `k * stride`, aligned: the row tiles read it);
    /// `plain` is the same cloud at stride `len` (the cost rows of plans and objectives).
    Cloud {
        pts: &'a [f64],
        d: usize,
        coords: &'a [f64],
        stride: usize,
        plain: &'a [f64],
        factor: f64,
    },
    /// Columns of a row-major `rows × len` matrix `c` (gathered, strided).
    Column { c: &'a [f64], stride: usize },
    /// Rows of the cost of a tensor grid (plans and objectives; the iteration itself runs the
    /// separable log-sum-exp).
    Grid {
        grid: &'a TensorGrid,
        transpose: bool,
        factor: f64,
    },
}

impl RowSource<'_> {
    /// The row-tile form of this source, where there is one (stored rows and clouds).
    fn tile(&self) -> Option<TileSource<'_>> {
        match *self {
            RowSource::Slice { s, stride } => Some(TileSource::Rows { c: s, stride }),
            RowSource::Cloud {
                pts,
                d,
                coords,
                stride,
                factor,
                ..
            } => Some(TileSource::Cloud {
                pts,
                d,
                coords,
                stride,
                factor,
            }),
            _ => None,
        }
    }

    #[inline]
    fn row<'s>(&'s self, r: usize, len: usize, buf: &'s mut [f64]) -> &'s [f64] {
        match self {
            RowSource::Slice { s, stride } => &s[r * stride..r * stride + len],
            RowSource::Cloud {
                pts,
                d,
                plain,
                factor,
                ..
            } => {
                fill_cost_row_dispatch(&pts[r * d..(r + 1) * d], plain, len, *factor, buf);
                &buf[..len]
            }
            RowSource::Column { c, stride } => {
                for (i, o) in buf[..len].iter_mut().enumerate() {
                    *o = c[i * stride + r];
                }
                &buf[..len]
            }
            RowSource::Grid {
                grid,
                transpose,
                factor,
            } => {
                grid.fill_row(r, *transpose, *factor, buf);
                &buf[..len]
            }
        }
    }
}

/// The sparse mode has its own solver (`super::sparse`), for the alternating solve of two
/// point clouds only.
fn refuse_sparse(mode: Mode) -> Result<(), SinkhornError> {
    if mode == Mode::Sparse {
        return Err(SinkhornError::InvalidParameter {
            name: "mode",
            message: "the sparse mode solves OT_eps between two point clouds (solve, solve_warm); use dense or streaming for cost matrices, grids, symmetric/self problems and the step API".into(),
        });
    }
    Ok(())
}

/// A prepared problem: weights, their logs, and the cost in the resolved mode.
pub(crate) struct Engine<'a> {
    pub n: usize,
    pub m: usize,
    pub a: &'a [f64],
    pub b: &'a [f64],
    log_a: Vec<f64>,
    log_b: Vec<f64>,
    pub mode: Mode,
    pub exp: ExpKernel,
    kind: Kind<'a>,
    /// Dense mode: $C$ (`n × m`, rows at a stride of `padded(m)`, 64-byte aligned) unless
    /// borrowed from a cost matrix / symmetric.
    dense_rows: Option<AlignedBuf>,
    /// Dense mode: $C^\top$ (`m × n`, stride `padded(n)`), absent for a symmetric problem.
    dense_cols: Option<AlignedBuf>,
    /// Clouds: 64-byte-aligned coordinate-major copies of x and y (`d × padded(n)` and
    /// `d × padded(m)`, zero padding) that the streaming row tiles read.
    coords_x: Option<AlignedBuf>,
    coords_y: Option<AlignedBuf>,
    /// An upper bound of $\max C-\min C$ over any row or column (the spread the centred
    /// large-eps path needs, see [`Engine::lse`]).
    pub cost_spread: f64,
}

enum Kind<'a> {
    Clouds {
        x: &'a PointCloud,
        y: &'a PointCloud,
        factor: f64,
        symmetric: bool,
    },
    Matrix(&'a CostMatrix),
    Grid {
        grid: &'a TensorGrid,
        factor: f64,
    },
}

impl<'a> Engine<'a> {
    /// Prepare `geom`, checking that the costs are finite.
    pub fn new(
        geom: Geometry<'a>,
        cost: Cost,
        mode: Mode,
        exp: ExpKernel,
    ) -> Result<Engine<'a>, SinkhornError> {
        refuse_sparse(mode)?;
        match geom {
            Geometry::Clouds { x, y } => Engine::clouds(x, y, cost, mode, exp, false),
            Geometry::Matrix(c) => {
                let (n, m) = (c.nrows(), c.ncols());
                let mode = mode.resolve(n * m * 8, None);
                if mode == Mode::Dense {
                    crate::error::check_allocation("the transposed dense cost matrix", &[n, m])?;
                }
                let dense_cols = (mode == Mode::Dense).then(|| {
                    let np = padded(n);
                    let mut buf = AlignedBuf::new(m * np, 0.0);
                    let t = buf.as_mut_slice();
                    for i in 0..n {
                        for j in 0..m {
                            t[j * np + i] = c.costs()[i * m + j];
                        }
                    }
                    buf
                });
                Ok(Engine {
                    n,
                    m,
                    a: c.a(),
                    b: c.b(),
                    log_a: log_weights(c.a()),
                    log_b: log_weights(c.b()),
                    mode,
                    exp,
                    kind: Kind::Matrix(c),
                    dense_rows: None,
                    dense_cols,
                    coords_x: None,
                    coords_y: None,
                    cost_spread: c.range(),
                })
            }
            Geometry::Grid(g) => {
                let factor = cost.factor();
                if !g.cost_scale(factor).is_finite() {
                    return Err(SinkhornError::InvalidParameter {
                        name: "grid",
                        message: "squared distances overflow f64; rescale the coordinates".into(),
                    });
                }
                // The separable kernel is the grid's only mode: O(N) memory plus the axis tables.
                Ok(Engine {
                    n: g.len_x(),
                    m: g.len_y(),
                    a: g.a(),
                    b: g.b(),
                    log_a: log_weights(g.a()),
                    log_b: log_weights(g.b()),
                    mode: Mode::Streaming,
                    exp,
                    kind: Kind::Grid { grid: g, factor },
                    dense_rows: None,
                    dense_cols: None,
                    coords_x: None,
                    coords_y: None,
                    cost_spread: g.cost_scale(factor),
                })
            }
        }
    }

    /// Prepare the symmetric problem $\mu$ against itself.
    pub fn symmetric(
        x: &'a PointCloud,
        cost: Cost,
        mode: Mode,
        exp: ExpKernel,
    ) -> Result<Engine<'a>, SinkhornError> {
        refuse_sparse(mode)?;
        Engine::clouds(x, x, cost, mode, exp, true)
    }

    fn clouds(
        x: &'a PointCloud,
        y: &'a PointCloud,
        cost: Cost,
        mode: Mode,
        exp: ExpKernel,
        symmetric: bool,
    ) -> Result<Engine<'a>, SinkhornError> {
        if x.dim() != y.dim() {
            return Err(SinkhornError::DimensionMismatch {
                what: "dimension of the points of y vs x".into(),
                expected: x.dim(),
                got: y.dim(),
            });
        }
        let scale = cost.factor() * x.bbox_sq_diameter(y);
        if !scale.is_finite() {
            return Err(SinkhornError::InvalidParameter {
                name: "points",
                message: format!(
                    "squared distances overflow f64 (bounding-box diameter^2 = {scale}); rescale the coordinates"
                ),
            });
        }
        let (n, m) = (x.len(), y.len());
        let bytes = if symmetric { n * n * 8 } else { 2 * n * m * 8 };
        let mode = mode.resolve(bytes, Some(x.dim()));
        if mode == Mode::Dense {
            let copies = if symmetric { 1 } else { 2 };
            crate::error::check_allocation(
                &format!("dense mode ({copies} cost matrices of {n} x {m})"),
                &[copies, n, m],
            )?;
        }
        let factor = cost.factor();
        let mut e = Engine {
            n,
            m,
            a: x.weights(),
            b: y.weights(),
            log_a: log_weights(x.weights()),
            log_b: log_weights(y.weights()),
            mode,
            exp,
            kind: Kind::Clouds {
                x,
                y,
                factor,
                symmetric,
            },
            dense_rows: None,
            dense_cols: None,
            coords_x: Some(aligned_coords(x)),
            coords_y: (!symmetric).then(|| aligned_coords(y)),
            cost_spread: scale,
        };
        if mode == Mode::Dense {
            e.dense_rows = Some(e.materialise(Side::Rows));
            if !symmetric {
                e.dense_cols = Some(e.materialise(Side::Cols));
            }
        }
        Ok(e)
    }

    /// `(rows, len)` of a side: number of outputs and length of each cost row.
    #[inline]
    pub fn dims(&self, side: Side) -> (usize, usize) {
        match side {
            Side::Rows => (self.n, self.m),
            Side::Cols => (self.m, self.n),
        }
    }

    /// The aligned coordinate-major copy of x (`Rows`) or y (`Cols`) with its stride.
    fn coords(&self, of_x: bool) -> (&[f64], usize) {
        // A symmetric problem keeps one copy (y is x).
        let (buf, len) = match (of_x, &self.coords_y) {
            (false, Some(c)) => (Some(c), self.m),
            (false, None) => (self.coords_x.as_ref(), self.m),
            (true, _) => (self.coords_x.as_ref(), self.n),
        };
        buf.map_or((&[][..], 0), |b| (b.as_slice(), padded(len)))
    }

    fn streaming_source(&self, side: Side) -> RowSource<'_> {
        match (&self.kind, side) {
            (Kind::Clouds { x, y, factor, .. }, Side::Rows) => {
                let (coords, stride) = self.coords(false);
                RowSource::Cloud {
                    pts: x.points_flat(),
                    d: x.dim(),
                    coords,
                    stride,
                    plain: y.coords(),
                    factor: *factor,
                }
            }
            (Kind::Clouds { x, y, factor, .. }, Side::Cols) => {
                let (coords, stride) = self.coords(true);
                RowSource::Cloud {
                    pts: y.points_flat(),
                    d: y.dim(),
                    coords,
                    stride,
                    plain: x.coords(),
                    factor: *factor,
                }
            }
            (Kind::Matrix(c), Side::Rows) => RowSource::Slice {
                s: c.costs(),
                stride: c.ncols(),
            },
            (Kind::Matrix(c), Side::Cols) => RowSource::Column {
                c: c.costs(),
                stride: c.ncols(),
            },
            (Kind::Grid { grid, factor }, side) => RowSource::Grid {
                grid,
                transpose: side == Side::Cols,
                factor: *factor,
            },
        }
    }

    fn source(&self, side: Side) -> RowSource<'_> {
        let symmetric = matches!(
            self.kind,
            Kind::Clouds {
                symmetric: true,
                ..
            }
        );
        let (_, len) = self.dims(side);
        fn slice(d: &AlignedBuf, len: usize) -> RowSource<'_> {
            RowSource::Slice {
                s: d.as_slice(),
                stride: padded(len),
            }
        }
        match side {
            Side::Rows => match &self.dense_rows {
                Some(d) => slice(d, len),
                None => self.streaming_source(side),
            },
            Side::Cols => match (&self.dense_cols, &self.dense_rows) {
                (Some(d), _) => slice(d, len),
                (None, Some(d)) if symmetric => slice(d, len),
                _ => self.streaming_source(side),
            },
        }
    }

    /// The cost rows of a side, each at a stride of `padded(len)` (zero padding), aligned.
    fn materialise(&self, side: Side) -> AlignedBuf {
        let (rows, len) = self.dims(side);
        let stride = padded(len);
        let src = self.streaming_source(side);
        let mut out = AlignedBuf::new(rows * stride, 0.0);
        out.as_mut_slice()
            .par_chunks_mut(stride.max(1))
            .enumerate()
            .for_each_init(
                || vec![0.0; len],
                |buf, (r, row)| {
                    let c = src.row(r, len, buf);
                    row[..len].copy_from_slice(c);
                },
            );
        out
    }

    /// The input weights' logs of a side (the measure integrated over).
    fn log_w(&self, side: Side) -> &[f64] {
        match side {
            Side::Rows => &self.log_b,
            Side::Cols => &self.log_a,
        }
    }

    /// The input weights of a side (the measure integrated over).
    fn w(&self, side: Side) -> &[f64] {
        match side {
            Side::Rows => self.b,
            Side::Cols => self.a,
        }
    }

    /// `lse[r] = log Σ_j exp(h_j/eps + log w_j - C_rj/eps)` for every output row `r`, so that
    /// $T(h)_r=-\varepsilon\,\mathrm{lse}_r$.
    ///
    /// When every exponent of a row lies within 1 of every other one (a priori:
    /// $(\operatorname{ptp}h+\operatorname{ptp}C)/\varepsilon\le1$, the large-eps regime) the
    /// row is computed in the centred form of [`lse_centred_row`], which keeps full relative
    /// accuracy of $T(h)-\bar z$ up to the largest finite eps; the max-shifted kernel would
    /// lose everything below $10^{-16}\varepsilon$ in absolute terms (theory/sinkhorn.md §3b).
    pub fn lse(&self, side: Side, h: &[f64], eps: f64, lse: &mut [f64]) {
        let (lo, hi) = h
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, u), &t| {
                (l.min(t), u.max(t))
            });
        if (hi - lo) + self.cost_spread <= eps {
            return self.lse_centred(side, h, eps, lse);
        }
        match self.exp {
            ExpKernel::Fast => self.lse_impl::<FastExp>(side, h, eps, lse),
            ExpKernel::Std => self.lse_impl::<StdExp>(side, h, eps, lse),
        }
    }

    fn lse_impl<E: ExpFn>(&self, side: Side, h: &[f64], eps: f64, lse: &mut [f64]) {
        let (rows, len) = self.dims(side);
        debug_assert_eq!(h.len(), len);
        debug_assert_eq!(lse.len(), rows);
        let inv_eps = 1.0 / eps;
        let mut u = AlignedBuf::new(len, 0.0);
        scaled_potential(h, self.log_w(side), inv_eps, u.as_mut_slice());
        let u = u.as_slice();
        if let Kind::Grid { grid, factor } = &self.kind {
            grid.separable_lse::<E>(side == Side::Cols, u, inv_eps, *factor, lse);
            return;
        }
        // The path is read once per half-step: every row of it runs the same code.
        let path = current_path();
        let src = self.source(side);
        if rows * len < PAR_MIN_PAIRS {
            rows_lse::<E>(path, &src, 0, len, u, inv_eps, lse);
            return;
        }
        lse.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(t, chunk)| {
                rows_lse::<E>(path, &src, t * ROWS_PER_TASK, len, u, inv_eps, chunk);
            });
    }

    /// The large-eps form of [`Engine::lse`], row by row with [`lse_centred_row`].
    fn lse_centred(&self, side: Side, h: &[f64], eps: f64, lse: &mut [f64]) {
        let (_, len) = self.dims(side);
        let src = self.source(side);
        let w = self.w(side);
        let mass: f64 = w.iter().sum();
        lse.par_iter_mut().enumerate().for_each_init(
            || vec![0.0; len],
            |buf, (r, o)| *o = lse_centred_row(h, src.row(r, len, buf), w, mass, eps),
        );
    }

    /// $T(h,\rho)$ into `out`; returns nothing. `lse` is scratch of the output length.
    pub fn transform(&self, side: Side, h: &[f64], eps: f64, out: &mut [f64]) {
        self.lse(side, h, eps, out);
        for o in out.iter_mut() {
            *o *= -eps;
        }
    }

    /// `visit(r, costs_of_row_r)` for every row of a side, in parallel, results in row order
    /// (used by plan and objective computations, not by the iteration).
    pub fn map_rows<T, F>(&self, side: Side, visit: F) -> Vec<T>
    where
        T: Send,
        F: Fn(usize, &[f64]) -> T + Sync + Send,
    {
        let (rows, len) = self.dims(side);
        let src = self.source(side);
        (0..rows)
            .into_par_iter()
            .map_init(|| vec![0.0; len], |buf, r| visit(r, src.row(r, len, buf)))
            .collect()
    }
}

/// `out[k]` = the row log-sum-exp of row `r0 + k` of `src` against `u`: row tiles
/// ([`lse_rows`]) for stored rows and clouds, else one cost row at a time; in this thread's
/// scratch.
fn rows_lse<E: ExpFn>(
    path: SimdPath,
    src: &RowSource<'_>,
    r0: usize,
    len: usize,
    u: &[f64],
    inv_eps: f64,
    out: &mut [f64],
) {
    let lp = padded(len);
    match src.tile() {
        Some(tile) => with_scratch(TILE * lp, |z| {
            lse_rows::<E>(path, tile, r0, u, len, inv_eps, z, out)
        }),
        None => with_scratch(2 * lp, |buf| {
            let (cbuf, zbuf) = buf.split_at_mut(lp);
            for (k, o) in out.iter_mut().enumerate() {
                let c = src.row(r0 + k, len, cbuf);
                *o = lse_row_dispatch::<E>(u, c, inv_eps, zbuf);
            }
        }),
    }
}

/// A 64-byte-aligned coordinate-major copy of a cloud, each coordinate at a stride of
/// `padded(n)` (zero padding).
fn aligned_coords(x: &PointCloud) -> AlignedBuf {
    let (n, d) = (x.len(), x.dim());
    let np = padded(n);
    let mut buf = AlignedBuf::new(d * np, 0.0);
    let out = buf.as_mut_slice();
    for k in 0..d {
        out[k * np..k * np + n].copy_from_slice(&x.coords()[k * n..(k + 1) * n]);
    }
    buf
}

/// $\sum_i w_iv_i$, in index order.
#[inline]
pub(crate) fn dot(w: &[f64], v: &[f64]) -> f64 {
    w.iter().zip(v).map(|(a, b)| a * b).sum()
}

/// $\log\sum_jp_je^{z_j}$ with $z_j=(h_j-c_j)/\varepsilon$ and the probability weights
/// $p_j=w_j/m$, $m=\sum_jw_j=$ `mass`, in the centred form
/// $$\log\sum_jp_je^{z_j}=\bar z+\log\Bigl(1+\sum_jp_j\,\mathrm{expm1}(z_j-\bar z)\Bigr),
/// \qquad\bar z=\sum_jp_jz_j .$$
/// The weights are taken as exactly normalised: validated weights sum to one within
/// $10^{-12}n$, and the rounding defect $m-1$ would otherwise shift $T$ by
/// $-\varepsilon\log m$, which is not small at large eps.
/// The first-order terms of the sum cancel exactly ($\sum_jw_j(z_j-\bar z)=0$), so the
/// correction to $\bar z$, of order $\operatorname{Var}(z)/2$, is computed to full relative
/// accuracy; the max-shifted form rounds it away once $\operatorname{ptp}z<10^{-16}$. Used
/// when $\operatorname{ptp}z\le1$ (no overflow of `expm1`).
pub(crate) fn lse_centred_row(h: &[f64], c: &[f64], w: &[f64], mass: f64, eps: f64) -> f64 {
    let inv_m = 1.0 / mass;
    let zbar = h
        .iter()
        .zip(c)
        .zip(w)
        .map(|((&hj, &cj), &wj)| wj * ((hj - cj) / eps))
        .sum::<f64>()
        * inv_m;
    let s = h
        .iter()
        .zip(c)
        .zip(w)
        .filter(|(_, &wj)| wj > 0.0)
        .map(|((&hj, &cj), &wj)| wj * ((hj - cj) / eps - zbar).exp_m1())
        .sum::<f64>()
        * inv_m;
    zbar + s.ln_1p()
}

#[cfg(test)]
mod tests {
    use super::lse_centred_row;
    use crate::sinkhorn::kernel::{lse_row, StdExp};

    /// Where both forms are accurate (exponents spread over at most 1, values O(1)), the centred
    /// form equals the max-shifted kernel to round-off; where the spread is 1e-12 of eps, only
    /// the centred one keeps the O(Var z) correction, checked against its series.
    #[test]
    fn centred_lse_matches_the_kernel_and_keeps_the_variance_term() {
        let m = 37;
        let w: Vec<f64> = (0..m).map(|j| 1.0 + (j % 5) as f64).collect();
        let mass: f64 = w.iter().sum();
        let p: Vec<f64> = w.iter().map(|t| t / mass).collect();
        let h: Vec<f64> = (0..m).map(|j| ((j * 7) % 11) as f64 * 0.03).collect();
        let c: Vec<f64> = (0..m).map(|j| ((j * 3) % 13) as f64 * 0.05).collect();
        let eps = 1.0;
        let u: Vec<f64> = h
            .iter()
            .zip(&p)
            .map(|(hj, pj)| hj / eps + pj.ln())
            .collect();
        let mut z = vec![0.0; m];
        let kernel = lse_row::<StdExp>(&u, &c, 1.0 / eps, &mut z);
        let centred = lse_centred_row(&h, &c, &w, mass, eps);
        assert!(
            (kernel - centred).abs() < 1e-15 * 4.0,
            "{kernel} vs {centred}"
        );
        // eps = 1e12: z = (h − c)/eps, lse = z̄ + Var_p(z)/2 + O(z³).
        let eps = 1e12;
        let zs: Vec<f64> = h.iter().zip(&c).map(|(a, b)| (a - b) / eps).collect();
        let zbar: f64 = zs.iter().zip(&p).map(|(a, b)| a * b).sum();
        let var: f64 = zs.iter().zip(&p).map(|(a, b)| b * (a - zbar).powi(2)).sum();
        let expect = zbar + var / 2.0;
        let centred = lse_centred_row(&h, &c, &w, mass, eps);
        // Right to a few ulps of the value (~1e-12): the max-shifted kernel has an absolute
        // error ~1e-16 here, 1e-4 of the value, i.e. eps × 1e-16 in T.
        let ulp = expect.abs() * f64::EPSILON;
        assert!(
            (centred - expect).abs() <= 4.0 * ulp,
            "{centred:e} vs {expect:e}"
        );
    }
}
