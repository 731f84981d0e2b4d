//! Discrete measures: weighted point clouds and user-given cost matrices.
//!
//! A [`PointCloud`] is $\mu=\sum_i a_i\delta_{x_i}$ with $x_i\in\mathbb R^d$ and $a\in\Delta_n$.
//! A [`CostMatrix`] is a pair of weight vectors $a\in\Delta_n$, $b\in\Delta_m$ with a given
//! $n\times m$ cost $C$ (no points). [`Geometry`] puts both behind one solver entry point
//! ([`crate::sinkhorn::solve_geometry`]).

use nalgebra::DMatrix;

use super::error::{check_finite, check_len, SinkhornError};

/// Validate weights of a measure with `n` atoms; normalise them if asked.
///
/// Rules (DESIGN.md "Bad input"): finite, `>= 0`, positive total mass, and summing to one
/// within `1e-12 * n` unless `normalise` (then divided by their sum).
pub(crate) fn validate_weights(
    weights: Option<Vec<f64>>,
    n: usize,
    normalise: bool,
) -> Result<Vec<f64>, SinkhornError> {
    let Some(mut w) = weights else {
        return Ok(vec![1.0 / n as f64; n]);
    };
    check_len("number of weights vs number of points", n, w.len())?;
    check_finite(&w, "weights")?;
    if let Some(index) = w.iter().position(|&t| t < 0.0) {
        return Err(SinkhornError::NegativeWeight {
            index,
            value: w[index],
        });
    }
    let sum: f64 = w.iter().sum();
    if sum <= 0.0 {
        return Err(SinkhornError::ZeroMass);
    }
    if normalise {
        // Finite weights whose sum overflows (e.g. 1e308 twice): scale by the largest first,
        // which is exact up to rounding and keeps the ratios.
        if !sum.is_finite() {
            let top = w.iter().copied().fold(0.0, f64::max);
            w.iter_mut().for_each(|t| *t /= top);
        }
        let sum: f64 = w.iter().sum();
        w.iter_mut().for_each(|t| *t /= sum);
    } else if (sum - 1.0).abs() > 1e-12 * n as f64 {
        return Err(SinkhornError::WeightsNotNormalised { sum });
    }
    Ok(w)
}

/// A weighted point cloud $\mu=\sum_{i<n} a_i\delta_{x_i}$ in $\mathbb R^d$.
///
/// Built only through validating constructors: no NaN/inf coordinates, at least one point of
/// dimension $\ge 1$, weights finite, non-negative, with positive mass, summing to one within
/// $10^{-12}n$ (or rescaled when `normalise` is true). Zero weights are allowed (the atom is
/// then invisible to the transport problem but potentials are still defined there).
///
/// The points are stored twice: row-major (`point(i)`) and coordinate-major (one contiguous
/// slice per coordinate), which is what the vectorised cost kernel streams through.
#[derive(Clone, Debug, PartialEq)]
pub struct PointCloud {
    n: usize,
    d: usize,
    /// Row-major `n × d`.
    points: Vec<f64>,
    /// Coordinate-major `d × n`: `coords[k * n + i] = x_i[k]`.
    coords: Vec<f64>,
    weights: Vec<f64>,
}

impl PointCloud {
    /// A cloud from an `n × d` matrix (one point per row) and optional weights
    /// (uniform `1/n` when `None`).
    pub fn new(
        points: &DMatrix<f64>,
        weights: Option<Vec<f64>>,
        normalise: bool,
    ) -> Result<PointCloud, SinkhornError> {
        let (n, d) = points.shape();
        let mut flat = Vec::with_capacity(n * d);
        for i in 0..n {
            for k in 0..d {
                flat.push(points[(i, k)]);
            }
        }
        PointCloud::from_flat(flat, d, weights, normalise)
    }

    /// A uniformly weighted cloud from an `n × d` matrix (one point per row).
    pub fn uniform(points: &DMatrix<f64>) -> Result<PointCloud, SinkhornError> {
        PointCloud::new(points, None, false)
    }

    /// A cloud from row-major coordinates (`points.len() = n d`).
    pub fn from_flat(
        points: Vec<f64>,
        d: usize,
        weights: Option<Vec<f64>>,
        normalise: bool,
    ) -> Result<PointCloud, SinkhornError> {
        if d == 0 {
            return Err(SinkhornError::ZeroDimension);
        }
        if points.is_empty() {
            return Err(SinkhornError::EmptyCloud);
        }
        if !points.len().is_multiple_of(d) {
            return Err(SinkhornError::DimensionMismatch {
                what: format!("number of coordinates is not a multiple of the dimension {d}"),
                expected: points.len().div_ceil(d) * d,
                got: points.len(),
            });
        }
        check_finite(&points, "coordinates")?;
        let n = points.len() / d;
        let weights = validate_weights(weights, n, normalise)?;
        let mut coords = vec![0.0; n * d];
        for i in 0..n {
            for k in 0..d {
                coords[k * n + i] = points[i * d + k];
            }
        }
        Ok(PointCloud {
            n,
            d,
            points,
            coords,
            weights,
        })
    }

    /// Number of points $n$.
    #[inline]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always `false` (empty clouds are rejected at construction); provided for clippy's
    /// `len_without_is_empty`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Dimension $d$ of the ambient space.
    #[inline]
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The weights $a$ (sum one).
    #[inline]
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Point $x_i$ as a slice of length $d$.
    ///
    /// # Panics
    /// If `i >= len()` (a caller bug).
    #[inline]
    #[track_caller]
    pub fn point(&self, i: usize) -> &[f64] {
        assert!(i < self.n, "point index {i} out of range 0..{}", self.n);
        &self.points[i * self.d..(i + 1) * self.d]
    }

    /// All points, row-major `n × d`.
    #[inline]
    pub fn points_flat(&self) -> &[f64] {
        &self.points
    }

    /// Coordinate-major copy: coordinate `k` of all points is `coords()[k*n..(k+1)*n]`.
    #[inline]
    pub(crate) fn coords(&self) -> &[f64] {
        &self.coords
    }

    /// The points as an `n × d` matrix.
    pub fn to_matrix(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.n, self.d, &self.points)
    }

    /// The same points with other weights (validated like [`PointCloud::new`]).
    pub fn with_weights(
        &self,
        weights: Vec<f64>,
        normalise: bool,
    ) -> Result<PointCloud, SinkhornError> {
        let weights = validate_weights(Some(weights), self.n, normalise)?;
        Ok(PointCloud {
            weights,
            ..self.clone()
        })
    }

    /// Squared diameter of the axis-aligned bounding box of the union of `self` and `other`:
    /// $\sum_k(\max_k-\min_k)^2\ge\max_{i,j}\lvert x_i-y_j\rvert^2$. Used as the cost scale
    /// that starts eps-scaling.
    pub(crate) fn bbox_sq_diameter(&self, other: &PointCloud) -> f64 {
        let mut s = 0.0;
        for k in 0..self.d.min(other.d) {
            let a = &self.coords[k * self.n..(k + 1) * self.n];
            let b = &other.coords[k * other.n..(k + 1) * other.n];
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &t in a.iter().chain(b) {
                lo = lo.min(t);
                hi = hi.max(t);
            }
            s += (hi - lo) * (hi - lo);
        }
        s
    }
}

/// A transport problem given by its cost: $C\in\mathbb R^{n\times m}$ and weights
/// $a\in\Delta_n$, $b\in\Delta_m$ (uniform when `None`).
///
/// Solved by the same engine as point clouds ([`crate::sinkhorn::solve_matrix`]). The
/// [`crate::Cost`] of the parameters is ignored for a cost matrix (the matrix *is* the
/// cost), and the output reports the parameter's value unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct CostMatrix {
    n: usize,
    m: usize,
    /// Row-major `n × m`.
    c: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl CostMatrix {
    /// Validate and store a cost matrix and its two marginals.
    pub fn new(
        c: &DMatrix<f64>,
        a: Option<Vec<f64>>,
        b: Option<Vec<f64>>,
        normalise: bool,
    ) -> Result<CostMatrix, SinkhornError> {
        let (n, m) = c.shape();
        let mut flat = Vec::with_capacity(n * m);
        for i in 0..n {
            for j in 0..m {
                flat.push(c[(i, j)]);
            }
        }
        CostMatrix::from_flat(flat, n, m, a, b, normalise)
    }

    /// From a row-major `n × m` slice.
    pub fn from_flat(
        c: Vec<f64>,
        n: usize,
        m: usize,
        a: Option<Vec<f64>>,
        b: Option<Vec<f64>>,
        normalise: bool,
    ) -> Result<CostMatrix, SinkhornError> {
        if n == 0 || m == 0 {
            return Err(SinkhornError::EmptyCloud);
        }
        check_len("number of cost entries vs n*m", n * m, c.len())?;
        check_finite(&c, "cost matrix")?;
        let a = validate_weights(a, n, normalise)?;
        let b = validate_weights(b, m, normalise)?;
        Ok(CostMatrix { n, m, c, a, b })
    }

    /// Rows $n$ (atoms of the first measure).
    pub fn nrows(&self) -> usize {
        self.n
    }
    /// Columns $m$ (atoms of the second measure).
    pub fn ncols(&self) -> usize {
        self.m
    }
    /// First marginal $a$.
    pub fn a(&self) -> &[f64] {
        &self.a
    }
    /// Second marginal $b$.
    pub fn b(&self) -> &[f64] {
        &self.b
    }
    /// Row-major cost entries.
    pub fn costs(&self) -> &[f64] {
        &self.c
    }
    /// Entry $C_{ij}$.
    ///
    /// # Panics
    /// Out-of-range indices (a caller bug).
    #[track_caller]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(i < self.n && j < self.m, "index out of range");
        self.c[i * self.m + j]
    }
    /// $\max C - \min C$, the cost scale that starts eps-scaling.
    pub(crate) fn range(&self) -> f64 {
        let (lo, hi) = self
            .c
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &t| {
                (l.min(t), h.max(t))
            });
        hi - lo
    }
}

/// Either of the two kinds of problem the engine solves.
#[derive(Clone, Copy, Debug)]
pub enum Geometry<'a> {
    /// Two point clouds $\mu$ (rows, potential $f$) and $\nu$ (columns, potential $g$); the
    /// cost is `params.cost`.
    Clouds {
        /// $\mu$.
        x: &'a PointCloud,
        /// $\nu$.
        y: &'a PointCloud,
    },
    /// A given cost matrix with its two marginals.
    Matrix(&'a CostMatrix),
    /// Two tensor grids with an axis-separable (squared-Euclidean or periodic) cost; the engine
    /// runs the separable log-sum-exp ([`super::TensorGrid`]), `params.cost` gives $\kappa$.
    Grid(&'a super::TensorGrid),
}

impl Geometry<'_> {
    /// Sizes `(n, m)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Geometry::Clouds { x, y } => (x.len(), y.len()),
            Geometry::Matrix(c) => (c.nrows(), c.ncols()),
            Geometry::Grid(g) => (g.len_x(), g.len_y()),
        }
    }
}
