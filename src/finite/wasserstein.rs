//! The Wasserstein gradient flow of $E(\mu)=\sum V\mu$ on the same 1-D points, by upwind finite
//! volumes, to put beside the Sinkhorn potential flow (theory/finite_flow.md §7).
//!
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
    if n < 2 {
        return Err(FiniteError::TooFewPoints { n });
    }
    check_finite(x, "points")?;
    check_len("length of V vs number of points", n, v.len())?;
    check_finite(v, "V")?;
    check_measure(mu0, n, "mu0")?;
    if let Some(i) = (1..n).find(|&i| x[i] <= x[i - 1]) {
        return Err(FiniteError::InvalidParameter {
            name: "points",
            message: format!("the upwind scheme needs strictly increasing 1-D points (index {i})"),
        });
    }
    if times.iter().any(|t| !t.is_finite() || *t < 0.0) || times.windows(2).any(|w| w[1] < w[0]) {
        return Err(FiniteError::InvalidParameter {
            name: "times",
            message: "sample times must be finite, >= 0 and ascending".into(),
        });
    }
    // cell widths (Voronoi cells, half-cells at the ends)
    let width: Vec<f64> = (0..n)
        .map(|i| {
            let l = if i > 0 { x[i] - x[i - 1] } else { x[1] - x[0] };
            let r = if i + 1 < n {
                x[i + 1] - x[i]
            } else {
                x[n - 1] - x[n - 2]
            };
            0.5 * (l + r)
        })
        .collect();
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
