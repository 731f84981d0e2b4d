//! Distances and moments of empirical measures.
//!
//! * [`linear_assignment`] — the minimum-cost perfect matching of a square cost matrix
//!   (Hungarian method in the shortest-augmenting-path form of Jonker–Volgenant, with dual
//!   potentials; $O(n^3)$, comfortable up to $n\approx 10^3$).
//! * [`w2_squared_exact`] — $W_2^2(\frac1n\sum\delta_{x_i}, \frac1n\sum\delta_{y_j})$: for equal
//!   sizes and uniform weights an optimal plan is a permutation (Birkhoff–von Neumann), so
//!   $W_2^2 = \min_\sigma \frac1n\sum_i \lvert x_i - y_{\sigma(i)}\rvert^2$.
//! * [`w2_squared_1d`] — on the line, $W_2^2(\mu,\nu) = \int_0^1 \lvert F_\mu^{-1}(s) - F_\nu^{-1}(s)\rvert^2 ds$
//!   with the quantile functions (piecewise constant for discrete measures; any sizes/weights).
//! * [`empirical_mean`], [`empirical_cov`] — moments of the empirical measure (normalised by
//!   $1/n$, i.e. the covariance *of the measure*, not the unbiased estimator).
//!
//! The cost here is always $\lvert x-y\rvert^2$ (this is $W_2^2$, whatever cost a flow uses).

use nalgebra::{DMatrix, DVector};

use super::{check_cloud, ParticleError};

/// An optimal assignment: `col_of_row[i]` is the column matched to row `i`.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// The permutation (row → column).
    pub col_of_row: Vec<usize>,
    /// Total cost $\sum_i C_{i,\sigma(i)}$.
    pub cost: f64,
}

/// Minimum-cost perfect matching of a square cost matrix (Hungarian / Jonker–Volgenant
/// shortest augmenting paths with dual potentials $u_i + v_j \le C_{ij}$, tight on the matching).
///
/// # Errors
/// [`ParticleError::Empty`] for a 0×0 matrix, [`ParticleError::DimensionMismatch`] for a
/// non-square one, [`ParticleError::NonFinite`] for a NaN/inf entry.
pub fn linear_assignment(cost: &DMatrix<f64>) -> Result<Assignment, ParticleError> {
    let n = cost.nrows();
    if n == 0 {
        return Err(ParticleError::Empty {
            what: "cost matrix",
        });
    }
    if cost.ncols() != n {
        return Err(ParticleError::DimensionMismatch {
            what: "assignment needs a square cost matrix (rows vs columns)",
            left: n,
            right: cost.ncols(),
        });
    }
    check_cloud(cost, "cost matrix")?;
    // 1-based arrays; index 0 is the virtual column of the augmenting-path search.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; n + 1];
    let mut p = vec![0usize; n + 1]; // p[j] = row matched to column j
    let mut way = vec![0usize; n + 1];
    let mut minv = vec![0.0f64; n + 1];
    let mut used = vec![false; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|m| *m = f64::INFINITY);
        used.iter_mut().for_each(|b| *b = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[(i0 - 1, j - 1)] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut col_of_row = vec![0usize; n];
    for j in 1..=n {
        col_of_row[p[j] - 1] = j - 1;
    }
    let total = col_of_row
        .iter()
        .enumerate()
        .map(|(i, &j)| cost[(i, j)])
        .sum();
    Ok(Assignment {
        col_of_row,
        cost: total,
    })
}

/// Matrix of $\lvert x_i - y_j\rvert^2$ from coordinate differences (never through
/// $\lvert x\rvert^2+\lvert y\rvert^2-2x\cdot y$; MATH.md §2).
pub fn sq_distances(x: &DMatrix<f64>, y: &DMatrix<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(x.nrows(), y.nrows(), |i, j| {
        (0..x.ncols())
            .map(|k| (x[(i, k)] - y[(j, k)]).powi(2))
            .sum()
    })
}

/// Exact $W_2^2$ between two uniform clouds of the same size $n$ (rows are points):
/// $\min_\sigma \frac1n \sum_i \lvert x_i - y_{\sigma(i)}\rvert^2$ by [`linear_assignment`].
///
/// # Errors
/// Empty or non-finite clouds, different dimensions, or different sizes (use
/// [`w2_squared_1d`] in 1-D for unequal sizes).
pub fn w2_squared_exact(x: &DMatrix<f64>, y: &DMatrix<f64>) -> Result<f64, ParticleError> {
    check_cloud(x, "x")?;
    check_cloud(y, "y")?;
    if x.ncols() != y.ncols() {
        return Err(ParticleError::DimensionMismatch {
            what: "dimension of x vs y",
            left: x.ncols(),
            right: y.ncols(),
        });
    }
    if x.nrows() != y.nrows() {
        return Err(ParticleError::DimensionMismatch {
            what: "exact W2 by assignment needs equal sizes (x vs y)",
            left: x.nrows(),
            right: y.nrows(),
        });
    }
    let a = linear_assignment(&sq_distances(x, y))?;
    Ok(a.cost / x.nrows() as f64)
}

fn weights_or_uniform(
    w: Option<&[f64]>,
    n: usize,
    what: &'static str,
) -> Result<Vec<f64>, ParticleError> {
    match w {
        None => Ok(vec![1.0 / n as f64; n]),
        Some(w) => {
            if w.len() != n {
                return Err(ParticleError::DimensionMismatch {
                    what: "number of weights vs number of points",
                    left: w.len(),
                    right: n,
                });
            }
            if let Some(i) = w.iter().position(|v| !v.is_finite()) {
                return Err(ParticleError::NonFinite { what, row: i });
            }
            if let Some(i) = w.iter().position(|&v| v < 0.0) {
                return Err(ParticleError::InvalidWeights {
                    what,
                    reason: format!("weight {i} is negative ({})", w[i]),
                });
            }
            let s: f64 = w.iter().sum();
            // Sum-to-one within a relative 1e-10: far above the round-off of summing n
            // weights (n·1e-16) and far below any intended mass defect.
            if (s - 1.0).abs() > 1e-10 {
                return Err(ParticleError::InvalidWeights {
                    what,
                    reason: format!("weights sum to {s}, not 1"),
                });
            }
            Ok(w.to_vec())
        }
    }
}

/// $W_2^2$ between two weighted measures on the line,
/// $\int_0^1 \lvert F_\mu^{-1}(s) - F_\nu^{-1}(s)\rvert^2\,ds$, computed exactly for discrete
/// measures by merging the two piecewise-constant quantile functions ($O((n+m)\log(n+m))$).
/// `None` weights mean uniform.
///
/// # Errors
/// Empty inputs, non-finite values, negative weights, weights not summing to 1 (relative
/// 1e-10), or a weight vector of the wrong length.
pub fn w2_squared_1d(
    x: &[f64],
    wx: Option<&[f64]>,
    y: &[f64],
    wy: Option<&[f64]>,
) -> Result<f64, ParticleError> {
    if x.is_empty() {
        return Err(ParticleError::Empty { what: "x" });
    }
    if y.is_empty() {
        return Err(ParticleError::Empty { what: "y" });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(ParticleError::NonFinite { what: "x", row: i });
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(ParticleError::NonFinite { what: "y", row: i });
    }
    let wx = weights_or_uniform(wx, x.len(), "weights of x")?;
    let wy = weights_or_uniform(wy, y.len(), "weights of y")?;
    let sorted = |v: &[f64], w: &[f64]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let pts: Vec<f64> = idx.iter().map(|&i| v[i]).collect();
        let mut cum = Vec::with_capacity(v.len());
        let mut acc = 0.0;
        for &i in &idx {
            acc += w[i];
            cum.push(acc);
        }
        // The quantile function must end at level exactly 1 (sum-to-one was checked to 1e-10).
        let last = cum.len() - 1;
        cum[last] = 1.0;
        (pts, cum)
    };
    let (xs, fx) = sorted(x, &wx);
    let (ys, fy) = sorted(y, &wy);
    let (mut i, mut j, mut prev, mut total) = (0usize, 0usize, 0.0f64, 0.0f64);
    while i < xs.len() && j < ys.len() {
        let next = fx[i].min(fy[j]);
        if next > prev {
            total += (next - prev) * (xs[i] - ys[j]).powi(2);
            prev = next;
        }
        if fx[i] <= next {
            i += 1;
        }
        if fy[j] <= next {
            j += 1;
        }
    }
    Ok(total)
}

/// Mean $\frac1n\sum_i x_i$ of a cloud (rows are points).
///
/// # Errors
/// [`ParticleError::Empty`] / [`ParticleError::NonFinite`].
pub fn empirical_mean(x: &DMatrix<f64>) -> Result<DVector<f64>, ParticleError> {
    check_cloud(x, "point cloud")?;
    let n = x.nrows() as f64;
    Ok(DVector::from_fn(x.ncols(), |k, _| x.column(k).sum() / n))
}

/// Covariance of the empirical measure, $\frac1n\sum_i (x_i-\bar x)(x_i-\bar x)^\top$
/// (two-pass; exactly symmetric).
///
/// # Errors
/// [`ParticleError::Empty`] / [`ParticleError::NonFinite`].
pub fn empirical_cov(x: &DMatrix<f64>) -> Result<DMatrix<f64>, ParticleError> {
    let m = empirical_mean(x)?;
    let d = x.ncols();
    let n = x.nrows() as f64;
    let mut c = DMatrix::zeros(d, d);
    for i in 0..x.nrows() {
        for a in 0..d {
            let da = x[(i, a)] - m[a];
            for b in a..d {
                c[(a, b)] += da * (x[(i, b)] - m[b]);
            }
        }
    }
    for a in 0..d {
        for b in a..d {
            c[(a, b)] /= n;
            c[(b, a)] = c[(a, b)];
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_small_known() {
        // All 6 permutations enumerated by hand: the unique optimum is rows→cols (1,0,2), cost 1+2+2 = 5.
        let c = DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0]);
        let a = linear_assignment(&c).unwrap();
        assert_eq!(a.col_of_row, vec![1, 0, 2]);
        assert_eq!(a.cost, 5.0);
        assert!(linear_assignment(&DMatrix::zeros(2, 3)).is_err());
    }

    #[test]
    fn one_d_quantiles() {
        // W2^2(δ_0, (δ_0+δ_2)/2) = 2 exactly; uniform equal sizes match sorting.
        assert_eq!(w2_squared_1d(&[0.0], None, &[0.0, 2.0], None).unwrap(), 2.0);
        let w = w2_squared_1d(&[3.0, 1.0], None, &[0.0, 5.0], None).unwrap();
        assert_eq!(w, 0.5 * (1.0 + 4.0));
        assert!(w2_squared_1d(&[0.0], Some(&[0.5]), &[1.0], None).is_err());
        assert!(w2_squared_1d(&[0.0, 1.0], Some(&[1.5, -0.5]), &[1.0], None).is_err());
    }

    #[test]
    fn moments() {
        let x = DMatrix::from_row_slice(2, 2, &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(empirical_mean(&x).unwrap().as_slice(), &[1.0, 2.0]);
        assert_eq!(empirical_cov(&x).unwrap(), DMatrix::from_element(2, 2, 1.0));
        assert!(empirical_mean(&DMatrix::zeros(0, 2)).is_err());
    }
}
