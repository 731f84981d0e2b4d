//! The Wasserstein gradient flow of $E(\mu)=\sum V\mu$ on the same 1-D points or 2-D tensor grid,
//! by upwind finite volumes, to put beside the Sinkhorn potential flow (theory/finite_flow.md §7,
//! §7b).
//!
//! **1-D** ([`wasserstein_upwind_1d`]):
//! $\partial_t\mu=\partial_x(\mu\,\partial_xV)$ (velocity $u=-\partial_xV$) with masses $m_i$ at
//! sorted points $x_1<\dots<x_N$: the flux through the interface between $x_i$ and $x_{i+1}$ is
//! $F=u\,m_{\text{up}}/\Delta_i$, $u=-(V_{i+1}-V_i)/(x_{i+1}-x_i)$, with $m_{\text{up}}=m_i$ if
//! $u>0$ else $m_{i+1}$, and $\Delta$ the mean of the two adjacent cell widths; no flux through
//! the ends. Explicit Euler under the CFL condition $\Delta t\,\lvert u\rvert/\Delta\le\frac12$, so
//! masses stay non-negative and the total mass is conserved to round-off. Upwinding never moves
//! mass out of a discrete local minimum of $V$: this is the trapping the seed contrasts with the
//! Sinkhorn flow.

use super::error::{check_finite, check_len, check_measure, FiniteError};

/// The result of [`wasserstein_upwind_1d`].
#[derive(Clone, Debug, PartialEq)]
pub struct UpwindOutput {
    /// Sample times.
    pub t: Vec<f64>,
    /// Masses at the sample times.
    pub mu: Vec<Vec<f64>>,
    /// Explicit steps taken.
    pub steps: usize,
}

/// Integrate from `mu0` and return the state at each of `times` (ascending, $\ge0$).
///
/// # Errors
/// Points not strictly increasing, wrong lengths, non-finite values, a negative `mu0`,
/// unsorted or negative times.
pub fn wasserstein_upwind_1d(
    x: &[f64],
    v: &[f64],
    mu0: &[f64],
    times: &[f64],
) -> Result<UpwindOutput, FiniteError> {
    let n = x.len();
    check_axis(x, "points")?;
    check_len("length of V vs number of points", n, v.len())?;
    check_finite(v, "V")?;
    check_measure(mu0, n, "mu0")?;
    check_times(times)?;
    let width = cell_widths(x);
    let u: Vec<f64> = (0..n - 1)
        .map(|i| -(v[i + 1] - v[i]) / (x[i + 1] - x[i]))
        .collect();
    let rate = (0..n - 1)
        .map(|i| u[i].abs() / width[i].min(width[i + 1]))
        .fold(0.0, f64::max);
    let dt_max = if rate > 0.0 {
        0.5 / rate
    } else {
        f64::INFINITY
    };
    let mut m = mu0.to_vec();
    let mut t = 0.0;
    let mut out = UpwindOutput {
        t: Vec::new(),
        mu: Vec::new(),
        steps: 0,
    };
    let mut flux = vec![0.0; n - 1];
    for &target in times {
        while t < target {
            let dt = dt_max.min(target - t);
            for i in 0..n - 1 {
                flux[i] = if u[i] > 0.0 {
                    u[i] * m[i] / width[i]
                } else {
                    u[i] * m[i + 1] / width[i + 1]
                };
            }
            for i in 0..n {
                let inflow = if i > 0 { flux[i - 1] } else { 0.0 };
                let outflow = if i + 1 < n { flux[i] } else { 0.0 };
                m[i] += dt * (inflow - outflow);
            }
            t += dt;
            out.steps += 1;
        }
        out.t.push(target);
        out.mu.push(m.clone());
    }
    Ok(out)
}

/// Validate a grid axis: at least 2 finite, strictly increasing values.
fn check_axis(x: &[f64], what: &'static str) -> Result<(), FiniteError> {
    let n = x.len();
    if n < 2 {
        return Err(FiniteError::TooFewPoints { n });
    }
    check_finite(x, what)?;
    if let Some(i) = (1..n).find(|&i| x[i] <= x[i - 1]) {
        return Err(FiniteError::InvalidParameter {
            name: what,
            message: format!("the upwind scheme needs strictly increasing coordinates (index {i})"),
        });
    }
    Ok(())
}

/// Validate sample times: finite, non-negative, ascending.
fn check_times(times: &[f64]) -> Result<(), FiniteError> {
    if times.iter().any(|t| !t.is_finite() || *t < 0.0) || times.windows(2).any(|w| w[1] < w[0]) {
        return Err(FiniteError::InvalidParameter {
            name: "times",
            message: "sample times must be finite, >= 0 and ascending".into(),
        });
    }
    Ok(())
}

/// Voronoi cell widths of sorted coordinates (half-cells at the ends mirrored: the end cell has
/// the width of its neighbouring interval).
fn cell_widths(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    (0..n)
        .map(|i| {
            let l = if i > 0 { x[i] - x[i - 1] } else { x[1] - x[0] };
            let r = if i + 1 < n {
                x[i + 1] - x[i]
            } else {
                x[n - 1] - x[n - 2]
            };
            0.5 * (l + r)
        })
        .collect()
}

/// Largest number of explicit cell updates (steps × cells) [`wasserstein_upwind_2d`] accepts
/// before starting: the CFL step can make a long horizon arbitrarily expensive.
pub const MAX_UPWIND_WORK: f64 = 1e11;

/// The upwind Wasserstein flow on the 2-D tensor grid `xs × ys` (point $k=j\,n_x+i$ is
/// $(x_i,y_j)$, the order of [`super::FiniteSpace::grid_2d`]); returns the masses at each of
/// `times` (ascending, $\ge0$). Mass is conserved to round-off and stays non-negative (CFL
/// $\Delta t\max_cr_c=\frac12$, module docs).
///
/// # Errors
/// Axes with fewer than 2 or not strictly increasing values, wrong lengths, non-finite values, a
/// negative or zero `mu0`, unsorted or negative times, a horizon needing more than
/// [`MAX_UPWIND_WORK`] cell updates.
pub fn wasserstein_upwind_2d(
    xs: &[f64],
    ys: &[f64],
    v: &[f64],
    mu0: &[f64],
    times: &[f64],
) -> Result<UpwindOutput, FiniteError> {
    check_axis(xs, "x axis")?;
    check_axis(ys, "y axis")?;
    let (nx, ny) = (xs.len(), ys.len());
    let n = nx
        .checked_mul(ny)
        .ok_or_else(|| FiniteError::InvalidParameter {
            name: "grid",
            message: format!("{nx} x {ny} points overflow"),
        })?;
    check_len("length of V vs number of grid points", n, v.len())?;
    check_finite(v, "V")?;
    check_measure(mu0, n, "mu0")?;
    check_times(times)?;
    let (wx, wy) = (cell_widths(xs), cell_widths(ys));
    // face velocities: ux[j*(nx-1)+i] between (i, j) and (i+1, j); uy[j*nx+i] between (i, j)
    // and (i, j+1)
    let ux: Vec<f64> = (0..ny)
        .flat_map(|j| {
            let v = &v;
            (0..nx - 1).map(move |i| -(v[j * nx + i + 1] - v[j * nx + i]) / (xs[i + 1] - xs[i]))
        })
        .collect();
    let uy: Vec<f64> = (0..ny - 1)
        .flat_map(|j| {
            let v = &v;
            (0..nx).map(move |i| -(v[(j + 1) * nx + i] - v[j * nx + i]) / (ys[j + 1] - ys[j]))
        })
        .collect();
    // outgoing rate of every cell
    let mut rate_max = 0.0f64;
    for j in 0..ny {
        for i in 0..nx {
            let mut r = 0.0;
            if i + 1 < nx {
                r += ux[j * (nx - 1) + i].max(0.0);
            }
            if i > 0 {
                r += (-ux[j * (nx - 1) + i - 1]).max(0.0);
            }
            let mut ry = 0.0;
            if j + 1 < ny {
                ry += uy[j * nx + i].max(0.0);
            }
            if j > 0 {
                ry += (-uy[(j - 1) * nx + i]).max(0.0);
            }
            rate_max = rate_max.max(r / wx[i] + ry / wy[j]);
        }
    }
    let dt_max = if rate_max > 0.0 {
        0.5 / rate_max
    } else {
        f64::INFINITY
    };
    let horizon = times.last().copied().unwrap_or(0.0);
    let work = (horizon / dt_max).ceil() * n as f64;
    if work > MAX_UPWIND_WORK {
        return Err(FiniteError::InvalidParameter {
            name: "times",
            message: format!(
                "the upwind flow to t = {horizon} with CFL step {dt_max:.3e} on {n} cells needs {work:.2e} cell updates (limit {MAX_UPWIND_WORK:.0e})"
            ),
        });
    }
    let mut m = mu0.to_vec();
    let mut t = 0.0;
    let mut out = UpwindOutput {
        t: Vec::new(),
        mu: Vec::new(),
        steps: 0,
    };
    let mut dm = vec![0.0; n];
    for &target in times {
        while t < target {
            let dt = dt_max.min(target - t);
            dm.iter_mut().for_each(|x| *x = 0.0);
            for j in 0..ny {
                for i in 0..nx - 1 {
                    let u = ux[j * (nx - 1) + i];
                    let (l, r) = (j * nx + i, j * nx + i + 1);
                    // flux from l to r (negative: from r to l)
                    let f = if u > 0.0 {
                        u * m[l] / wx[i]
                    } else {
                        u * m[r] / wx[i + 1]
                    };
                    dm[l] -= f;
                    dm[r] += f;
                }
            }
            for j in 0..ny - 1 {
                for i in 0..nx {
                    let u = uy[j * nx + i];
                    let (b, a) = (j * nx + i, (j + 1) * nx + i);
                    let f = if u > 0.0 {
                        u * m[b] / wy[j]
                    } else {
                        u * m[a] / wy[j + 1]
                    };
                    dm[b] -= f;
                    dm[a] += f;
                }
            }
            for (x, d) in m.iter_mut().zip(&dm) {
                *x += dt * d;
            }
            t += dt;
            out.steps += 1;
        }
        out.t.push(target);
        out.mu.push(m.clone());
    }
    Ok(out)
}
