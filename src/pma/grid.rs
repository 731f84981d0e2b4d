//! PMA on one-dimensional grids (torus $\mathbb T^1 = [0,1)$ and interval $0\le x\le1$) and the
//! seed's IPFP on the same grids through the engine's half-step API (`theory/pma.md` §4).
//!
//! ## The scheme
//!
//! Unknown $\varphi = x^2/2 + u$ at the nodes ($u$ periodic on the torus), $h = 1/n$. Torus nodes
//! $x_j = j/n$; interval nodes are the cell centres $x_j = (j+\tfrac12)/n$ with the second boundary
//! condition $\nabla\varphi(\{0,1\}) = \{0,1\}$ imposed as $u' = 0$ by mirrored ghost values
//! $u_{-1} = u_0$, $u_n = u_{n-1}$ (the Neumann condition at the cell faces). With the centred
//! differences $D^2u_j = (u_{j+1}-2u_j+u_{j-1})/h^2$ and $D^1u_j = (u_{j+1}-u_{j-1})/(2h)$,
//! $$\partial_tu_j = r_j(u) := f_j - \mathcal I g\big(x_j + D^1u_j\big) + \log\big(1 + D^2u_j\big),$$
//! where $\mathcal Ig$ is the 4-point (cubic Lagrange) interpolant of the nodal values of $g$,
//! periodic on the torus (the lift $y\mapsto y \bmod 1$), clamped to the end stencils on the
//! interval. Formal order $O(h^2)$ in space (centred differences; the interpolant is $O(h^4)$).
//! **Monotone** (degenerate elliptic, Oberman 2006) where
//! $\partial r_j/\partial u_{j\pm1} = 1/(h^2\varphi''_j) \mp (\mathcal Ig)'/(2h)\ge0$, i.e.
//! $h\,\lvert(\mathcal Ig)'\rvert\,\varphi''_j\le 2$: on fine enough grids.
//!
//! * **Explicit** (forward Euler): $u^{n+1} = u^n + \Delta t\,r(u^n)$, monotone hence stable in
//!   $\max$-norm under the CFL bound $\Delta t\le\tfrac{h^2}{2}\min_j\varphi''_j$ (the diagonal
//!   coefficient $1-2\Delta t/(h^2\varphi''_j)\ge0$), checked before every step
//!   ([`PmaError::Cfl`] names the largest stable $\Delta t$).
//! * **Implicit** (backward Euler): $u^{n+1} - \Delta t\,r(u^{n+1}) = u^n$, solved by Newton with
//!   the exact (tridiagonal, cyclic on the torus) Jacobian and faer's dense LU; unconditionally
//!   stable, first order in time.
//!
//! Convexity $\varphi''_j = 1 + D^2u_j > 0$ is checked at every step ([`PmaError::NotConvex`]
//! names the step). Outputs: $\varphi$, $\nabla\varphi = x + D^1u$ (the lift, not reduced mod 1),
//! $\rho = \exp(-\mathcal Ig(\nabla\varphi) + \log\varphi'')$ and the stationary residual
//! $\max_j\lvert r_j\rvert$ (at a steady state $f + \log\rho = 0$).

use faer::prelude::*;

use super::PmaError;
use crate::sinkhorn::{Geometry, SinkhornParams, Stepper, TensorGrid};
use crate::Cost;

/// Largest number of grid nodes of a 1-D PMA / IPFP run.
pub const MAX_NODES: usize = 1 << 14;

/// Largest grid of the implicit scheme (its dense Newton matrix takes $8n^2$ bytes: 32 MiB).
pub const MAX_IMPLICIT_NODES: usize = 2048;

/// Largest number of time steps $T/\Delta t$ of a grid run ($10^8$).
pub const MAX_STEPS: usize = 100_000_000;

/// Tolerance on the grid mean of $e^{-f}$ (must be 1 within it unless normalised).
pub const MASS_TOL: f64 = 1e-6;

/// The spatial domain of a 1-D grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// $\mathbb T^1 = [0,1)$, nodes $j/n$, periodic $u$.
    Torus,
    /// The interval $0\le x\le 1$, cell-centred nodes $(j+1/2)/n$, $\nabla\varphi$ maps it onto itself.
    Interval,
}

impl std::str::FromStr for Domain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "torus" => Ok(Domain::Torus),
            "interval" => Ok(Domain::Interval),
            other => Err(format!(
                "unknown or unsupported domain '{other}' (this build supports 'torus' and 'interval' in 1-D)"
            )),
        }
    }
}

/// A uniform 1-D grid on a [`Domain`].
#[derive(Clone, Debug, PartialEq)]
pub struct Grid1d {
    domain: Domain,
    x: Vec<f64>,
}

impl Grid1d {
    /// $n$ nodes, $4\le n\le$ [`MAX_NODES`].
    pub fn new(domain: Domain, n: usize) -> Result<Grid1d, PmaError> {
        if !(4..=MAX_NODES).contains(&n) {
            return Err(PmaError::InvalidGrid(format!(
                "n must be between 4 and {MAX_NODES}, got {n}"
            )));
        }
        let x = (0..n)
            .map(|j| match domain {
                Domain::Torus => j as f64 / n as f64,
                Domain::Interval => (j as f64 + 0.5) / n as f64,
            })
            .collect();
        Ok(Grid1d { domain, x })
    }
    /// The domain.
    pub fn domain(&self) -> Domain {
        self.domain
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.x.len()
    }
    /// Always false (grids have at least 4 nodes).
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
    /// The spacing $h = 1/n$.
    pub fn h(&self) -> f64 {
        1.0 / self.x.len() as f64
    }
    /// The nodes.
    pub fn x(&self) -> &[f64] {
        &self.x
    }

    /// Neighbour indices $(j-1, j+1)$ (periodic, or mirrored ghosts on the interval).
    #[inline]
    fn nbrs(&self, j: usize) -> (usize, usize) {
        let n = self.x.len();
        match self.domain {
            Domain::Torus => ((j + n - 1) % n, (j + 1) % n),
            Domain::Interval => (j.saturating_sub(1), (j + 1).min(n - 1)),
        }
    }

    /// Validate the nodal values of a potential $f$ of a density $e^{-f}$: length $n$, no NaN,
    /// no $+\infty$ (a zero of the density), and grid mean of $e^{-f}$ equal to 1 within
    /// [`MASS_TOL`] unless `normalise` (then $f$ is shifted by $\log$ of the mean).
    pub fn check_density(
        &self,
        f: &[f64],
        what: &str,
        normalise: bool,
    ) -> Result<Vec<f64>, PmaError> {
        super::check_potential(f, self.len(), what, normalise, |j| {
            format!("x = {}", self.x[j])
        })
    }

    /// [`Self::interp`] without the derivative (the explicit scheme's hot loop).
    #[inline]
    fn interp_value(&self, v: &[f64], y: f64) -> f64 {
        let n = self.x.len() as isize;
        let h = self.h();
        let s = match self.domain {
            Domain::Torus => y * n as f64,
            Domain::Interval => y * n as f64 - 0.5,
        };
        let mut j0 = s.floor() as isize - 1;
        if self.domain == Domain::Interval {
            j0 = j0.clamp(0, n - 4);
        }
        let _ = h;
        let t = s - j0 as f64;
        let base = j0.rem_euclid(n) as usize;
        let nu = n as usize;
        let at = |k: usize| {
            let j = base + k;
            v[if j >= nu { j - nu } else { j }]
        };
        let (a, b) = (t - 1.0, t - 2.0);
        let c = t - 3.0;
        -at(0) * a * b * c / 6.0 + at(1) * t * b * c / 2.0 - at(2) * t * a * c / 2.0
            + at(3) * t * a * b / 6.0
    }

    /// The 4-point Lagrange interpolant of nodal values `v` at `y` and its derivative (periodic
    /// lift on the torus; end stencils on the interval).
    fn interp(&self, v: &[f64], y: f64) -> (f64, f64) {
        let n = self.x.len() as isize;
        let h = self.h();
        let s = match self.domain {
            Domain::Torus => y / h,
            Domain::Interval => y / h - 0.5,
        };
        let mut j0 = s.floor() as isize - 1;
        if self.domain == Domain::Interval {
            j0 = j0.clamp(0, n - 4);
        }
        let t = s - j0 as f64; // position within the stencil j0..j0+3, nodes at 0,1,2,3
        let idx = |k: isize| -> f64 {
            let j = j0 + k;
            v[j.rem_euclid(n) as usize]
        };
        let (v0, v1, v2, v3) = (idx(0), idx(1), idx(2), idx(3));
        // Lagrange basis on nodes 0..3
        let l0 = -(t - 1.0) * (t - 2.0) * (t - 3.0) / 6.0;
        let l1 = t * (t - 2.0) * (t - 3.0) / 2.0;
        let l2 = -t * (t - 1.0) * (t - 3.0) / 2.0;
        let l3 = t * (t - 1.0) * (t - 2.0) / 6.0;
        let d0 = -((t - 2.0) * (t - 3.0) + (t - 1.0) * (t - 3.0) + (t - 1.0) * (t - 2.0)) / 6.0;
        let d1 = ((t - 2.0) * (t - 3.0) + t * (t - 3.0) + t * (t - 2.0)) / 2.0;
        let d2 = -((t - 1.0) * (t - 3.0) + t * (t - 3.0) + t * (t - 1.0)) / 2.0;
        let d3 = ((t - 1.0) * (t - 2.0) + t * (t - 2.0) + t * (t - 1.0)) / 6.0;
        (
            v0 * l0 + v1 * l1 + v2 * l2 + v3 * l3,
            (v0 * d0 + v1 * d1 + v2 * d2 + v3 * d3) / h,
        )
    }
}

/// Time stepping of [`solve_pma`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// Forward Euler under the CFL bound (default: $10^6$ cheap steps take about a second).
    #[default]
    Explicit,
    /// Backward Euler, Newton with faer's LU.
    Implicit,
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "explicit" => Ok(Scheme::Explicit),
            "implicit" => Ok(Scheme::Implicit),
            other => Err(format!(
                "unknown scheme '{other}' (expected 'explicit' or 'implicit')"
            )),
        }
    }
}

/// Parameters of [`solve_pma`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PmaParams {
    /// Final time $T\ge0$.
    pub t_end: f64,
    /// Fixed step $\Delta t>0$; $T/\Delta t$ must be a whole number within $10^{-9}$ relative.
    pub dt: f64,
    /// Number $K\ge1$ of output intervals; each output time must fall on a step.
    pub samples: usize,
    /// The time scheme.
    pub scheme: Scheme,
    /// Newton tolerance on $\max_j\lvert$residual$\rvert$ of the implicit step. Default $10^{-12}$.
    pub newton_tol: f64,
    /// Newton iterations per step. Default 30.
    pub max_newton: usize,
}

impl Default for PmaParams {
    fn default() -> Self {
        PmaParams {
            t_end: 1.0,
            dt: 1e-3,
            samples: 1,
            scheme: Scheme::Explicit,
            newton_tol: 1e-12,
            max_newton: 30,
        }
    }
}

/// One output time of a grid run.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSnapshot {
    /// The time (PMA) or $k\varepsilon$ (IPFP).
    pub t: f64,
    /// $\varphi = x^2/2 + u$ at the nodes.
    pub phi: Vec<f64>,
    /// $\nabla\varphi$ (the lift $x + u'$).
    pub grad_phi: Vec<f64>,
    /// $\rho$ at the nodes (a density: grid mean $\approx 1$).
    pub rho: Vec<f64>,
    /// $\max_j\lvert f_j + \log\rho_j\rvert$, the residual of the stationary equation.
    pub residual: f64,
}

/// The number of steps $T/\Delta t$ (a whole number within $10^{-9}$ relative, else bad input).
pub fn whole_steps(t_end: f64, dt: f64) -> Result<usize, PmaError> {
    if !(dt.is_finite() && dt > 0.0) {
        return Err(PmaError::InvalidStep(format!(
            "dt must be finite and > 0, got {dt}"
        )));
    }
    if !(t_end.is_finite() && t_end >= 0.0) {
        return Err(PmaError::InvalidTime(t_end));
    }
    let r = t_end / dt;
    let k = r.round();
    if k > MAX_STEPS as f64 {
        return Err(PmaError::InvalidStep(format!(
            "T/dt = {r:e} steps exceeds the limit {MAX_STEPS:e}; increase dt"
        )));
    }
    if (r - k).abs() > 1e-9 * r.max(1.0) {
        return Err(PmaError::InvalidStep(format!(
            "T/dt = {r} is not a whole number (within 1e-9 relative); choose dt = T/{}",
            k.max(1.0)
        )));
    }
    Ok(k as usize)
}

fn output_steps(steps: usize, samples: usize) -> Result<Vec<usize>, PmaError> {
    if samples == 0 || (steps > 0 && !steps.is_multiple_of(samples)) {
        return Err(PmaError::InvalidStep(format!(
            "the {samples} output intervals must divide the {steps} steps"
        )));
    }
    Ok((0..=samples).map(|i| i * steps / samples).collect())
}

/// $(\varphi''_j, \nabla\varphi_j)$ at every node.
fn derivatives(grid: &Grid1d, u: &[f64], d2: &mut [f64], d1: &mut [f64]) {
    let h = grid.h();
    let (ih2, ih) = (1.0 / (h * h), 0.5 / h);
    let n = u.len();
    let mut node = |j: usize, l: usize, r: usize| {
        d2[j] = 1.0 + (u[r] - 2.0 * u[j] + u[l]) * ih2;
        d1[j] = grid.x[j] + (u[r] - u[l]) * ih;
    };
    for j in 1..n - 1 {
        node(j, j - 1, j + 1);
    }
    let (l0, r0) = grid.nbrs(0);
    node(0, l0, r0);
    let (l1, r1) = grid.nbrs(n - 1);
    node(n - 1, l1, r1);
}

/// The right-hand side $r(u)$; errors if $\varphi''\le0$ somewhere.
fn rhs(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    u: &[f64],
    step: usize,
    out: &mut [f64],
) -> Result<(), PmaError> {
    let n = u.len();
    let mut d2 = vec![0.0; n];
    let mut d1 = vec![0.0; n];
    derivatives(grid, u, &mut d2, &mut d1);
    for j in 0..n {
        if d2[j].is_nan() || d2[j] <= 0.0 {
            return Err(PmaError::NotConvex {
                step,
                index: j,
                x: grid.x[j],
                second_derivative: d2[j],
            });
        }
        out[j] = f[j] - grid.interp(g, d1[j]).0 + d2[j].ln();
    }
    Ok(())
}

fn snapshot(grid: &Grid1d, f: &[f64], g: &[f64], u: &[f64], t: f64) -> GridSnapshot {
    let n = u.len();
    let mut d2 = vec![0.0; n];
    let mut d1 = vec![0.0; n];
    derivatives(grid, u, &mut d2, &mut d1);
    let rho: Vec<f64> = (0..n)
        .map(|j| (-grid.interp(g, d1[j]).0 + d2[j].ln()).exp())
        .collect();
    let residual = rho
        .iter()
        .zip(f)
        .map(|(r, fj)| (fj + r.ln()).abs())
        .fold(0.0, f64::max);
    GridSnapshot {
        t,
        phi: grid
            .x
            .iter()
            .zip(u)
            .map(|(x, uj)| 0.5 * x * x + uj)
            .collect(),
        grad_phi: d1,
        rho,
        residual,
    }
}

/// Solve the 1-D PMA from $\varphi_0 = x^2/2$ (module docs). `f`, `g` are the nodal values of
/// the potentials of the two densities (validated with [`Grid1d::check_density`] first).
pub fn solve_pma(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    params: &PmaParams,
) -> Result<Vec<GridSnapshot>, PmaError> {
    solve_pma_from(grid, f, g, &vec![0.0; grid.len()], params)
}

/// [`solve_pma`] from another initial potential $\varphi_0 = x^2/2 + u_0$ (nodal `u0`, periodic
/// on the torus). $\varphi_0$ must be discretely convex, $1 + D^2u_0 > 0$ at every node, else
/// [`PmaError::NonConvexInitial`] (bad input) names the first offending node. The Sinkhorn
/// comparison of the seed assumes $u_0 = 0$.
pub fn solve_pma_from(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    u0: &[f64],
    params: &PmaParams,
) -> Result<Vec<GridSnapshot>, PmaError> {
    solve_pma_observed(grid, f, g, u0, params, &mut |_, _| {})
}

/// [`solve_pma_from`] calling `observe(step, steps)` after every step (a progress hook).
pub fn solve_pma_observed(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    u0: &[f64],
    params: &PmaParams,
    observe: &mut dyn FnMut(usize, usize),
) -> Result<Vec<GridSnapshot>, PmaError> {
    let f = grid.check_density(f, "f", false)?;
    let g = grid.check_density(g, "g", false)?;
    let steps = whole_steps(params.t_end, params.dt)?;
    let outs = output_steps(steps, params.samples)?;
    let n = grid.len();
    if u0.len() != n {
        return Err(PmaError::DimensionMismatch {
            what: "number of values of u0".to_string(),
            expected: n,
            found: u0.len(),
        });
    }
    if let Some(j) = u0.iter().position(|v| !v.is_finite()) {
        return Err(PmaError::InvalidDensity(format!(
            "u0 has a non-finite value {} at node {j}",
            u0[j]
        )));
    }
    {
        let (mut d2, mut d1) = (vec![0.0; n], vec![0.0; n]);
        derivatives(grid, u0, &mut d2, &mut d1);
        if let Some(j) = d2.iter().position(|v| *v <= 0.0) {
            return Err(PmaError::NonConvexInitial {
                index: j,
                x: grid.x[j],
                second_derivative: d2[j],
            });
        }
    }
    if params.scheme == Scheme::Implicit && n > MAX_IMPLICIT_NODES {
        return Err(PmaError::InvalidGrid(format!(
            "the implicit scheme (dense n x n Newton matrix) supports n <= {MAX_IMPLICIT_NODES}, got {n}; use --scheme explicit"
        )));
    }
    let dt = params.dt;
    let h = grid.h();
    let mut u = u0.to_vec();
    let mut r = vec![0.0; n];
    let mut d2 = vec![0.0; n];
    let mut d1 = vec![0.0; n];
    let mut snaps = vec![snapshot(grid, &f, &g, &u, 0.0)];
    let mut next_out = 1;
    for step in 1..=steps {
        super::check_interrupt(step)?;
        match params.scheme {
            Scheme::Explicit => {
                // one pass: phi'', grad phi, the CFL bound and r(u), then the update
                derivatives(grid, &u, &mut d2, &mut d1);
                let mut min2 = f64::INFINITY;
                for (j, &v) in d2.iter().enumerate() {
                    if v.is_nan() || v <= 0.0 {
                        return Err(PmaError::NotConvex {
                            step,
                            index: j,
                            x: grid.x[j],
                            second_derivative: v,
                        });
                    }
                    min2 = min2.min(v);
                }
                let dt_max = 0.5 * h * h * min2;
                if dt > dt_max {
                    return Err(PmaError::Cfl { step, dt, dt_max });
                }
                for j in 0..n {
                    r[j] = f[j] - grid.interp_value(&g, d1[j]) + d2[j].ln();
                }
                for (uj, rj) in u.iter_mut().zip(&r) {
                    *uj += dt * rj;
                }
            }
            Scheme::Implicit => {
                u = implicit_step(grid, &f, &g, &u, dt, step, params)?;
            }
        }
        if u.iter().any(|v| !v.is_finite()) {
            return Err(PmaError::NonFiniteResult {
                what: format!("u at step {step}"),
            });
        }
        if next_out < outs.len() && step == outs[next_out] {
            snaps.push(snapshot(grid, &f, &g, &u, step as f64 * dt));
            next_out += 1;
        }
        observe(step, steps);
    }
    // convexity of the final state
    rhs(grid, &f, &g, &u, steps, &mut r)?;
    while snaps.len() < outs.len() {
        snaps.push(snapshot(grid, &f, &g, &u, params.t_end));
    }
    Ok(snaps)
}

/// One backward-Euler step by Newton (exact Jacobian, faer dense LU).
fn implicit_step(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    u0: &[f64],
    dt: f64,
    step: usize,
    params: &PmaParams,
) -> Result<Vec<f64>, PmaError> {
    let n = u0.len();
    let h = grid.h();
    let mut w = u0.to_vec();
    let mut r = vec![0.0; n];
    let mut d2 = vec![0.0; n];
    let mut d1 = vec![0.0; n];
    let mut res: f64;
    for _ in 0..params.max_newton {
        rhs(grid, f, g, &w, step, &mut r)?;
        let gres: Vec<f64> = (0..n).map(|j| w[j] - u0[j] - dt * r[j]).collect();
        res = gres.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        if res <= params.newton_tol {
            return Ok(w);
        }
        derivatives(grid, &w, &mut d2, &mut d1);
        let mut jac = Mat::<f64>::zeros(n, n);
        for j in 0..n {
            let (l, rr) = grid.nbrs(j);
            let gp = grid.interp(g, d1[j]).1;
            let a = 1.0 / (h * h * d2[j]);
            // d r_j / d u: log term a (u_l - 2 u_j + u_r), g term -g'(y) (u_r - u_l)/(2h)
            jac[(j, j)] += 1.0 + dt * 2.0 * a;
            jac[(j, l)] -= dt * (a + gp / (2.0 * h));
            jac[(j, rr)] -= dt * (a - gp / (2.0 * h));
        }
        let rhs_m = Mat::<f64>::from_fn(n, 1, |i, _| -gres[i]);
        let delta = jac.partial_piv_lu().solve(&rhs_m);
        // damped update keeping phi'' > 0
        let mut lam = 1.0;
        loop {
            let trial: Vec<f64> = (0..n).map(|i| w[i] + lam * delta[(i, 0)]).collect();
            derivatives(grid, &trial, &mut d2, &mut d1);
            if d2.iter().all(|v| *v > 0.0) && trial.iter().all(|v| v.is_finite()) {
                w = trial;
                break;
            }
            lam *= 0.5;
            if lam < 1e-6 {
                return Err(PmaError::NewtonFailed {
                    step,
                    residual: res,
                });
            }
        }
    }
    rhs(grid, f, g, &w, step, &mut r)?;
    let final_res = (0..n)
        .map(|j| (w[j] - u0[j] - dt * r[j]).abs())
        .fold(0.0f64, f64::max);
    if final_res <= params.newton_tol.max(1e3 * f64::EPSILON) {
        Ok(w)
    } else {
        Err(PmaError::NewtonFailed {
            step,
            residual: final_res,
        })
    }
}

/// The transient $h_t$ of the first-order IPFP correction on a 1-D grid (`theory/pma.md` §4.8):
/// the seed's expansion $\varphi^\varepsilon_{t/\varepsilon} = \varphi_t + \varepsilon\psi_t + O(\varepsilon^2)$
/// has $\psi$ solving the linearised PMA $\partial_t\psi = L_t\psi + S_t$ ($L_t$ = the Jacobian of
/// $r$ at $\varphi_t$) with $\psi_0 = 0$; if $f/2 + \log\rho_t$ is a particular solution (the seed's
/// form, exact in the Gaussian case, §3.4), then $\psi_t = f/2 + \log\rho_t + h_t$ with
/// $\partial_t h = L_t h$, $h_0 = g - f/2$ (as $\rho_0 = e^{-g}$ for $\varphi_0 = x^2/2$). Returns the
/// nodal $h_t$ (up to a constant), integrated by forward Euler with the exact tridiagonal
/// $L_t$ alongside the explicit PMA (same `dt`, same CFL check, same convexity check).
pub fn correction_transient(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    t_end: f64,
    dt: f64,
) -> Result<Vec<f64>, PmaError> {
    let f = grid.check_density(f, "f", false)?;
    let g = grid.check_density(g, "g", false)?;
    let steps = whole_steps(t_end, dt)?;
    let n = grid.len();
    let h = grid.h();
    let mut u = vec![0.0; n];
    let mut hv: Vec<f64> = (0..n).map(|j| g[j] - 0.5 * f[j]).collect();
    let (mut d2, mut d1) = (vec![0.0; n], vec![0.0; n]);
    let (mut r, mut lh) = (vec![0.0; n], vec![0.0; n]);
    for step in 1..=steps {
        super::check_interrupt(step)?;
        derivatives(grid, &u, &mut d2, &mut d1);
        let mut min2 = f64::INFINITY;
        for j in 0..n {
            if d2[j].is_nan() || d2[j] <= 0.0 {
                return Err(PmaError::NotConvex {
                    step,
                    index: j,
                    x: grid.x[j],
                    second_derivative: d2[j],
                });
            }
            min2 = min2.min(d2[j]);
            let (l, rr) = grid.nbrs(j);
            let (gv, gp) = grid.interp(&g, d1[j]);
            let a = 1.0 / (h * h * d2[j]);
            r[j] = f[j] - gv + d2[j].ln();
            lh[j] = a * (hv[l] - 2.0 * hv[j] + hv[rr]) - gp * (hv[rr] - hv[l]) / (2.0 * h);
        }
        let dt_max = 0.5 * h * h * min2;
        if dt > dt_max {
            return Err(PmaError::Cfl { step, dt, dt_max });
        }
        for j in 0..n {
            u[j] += dt * r[j];
            hv[j] += dt * lh[j];
        }
    }
    if hv.iter().any(|v| !v.is_finite()) {
        return Err(PmaError::NonFiniteResult {
            what: "correction transient".to_string(),
        });
    }
    Ok(hv)
}

/// The Brenier map $e^{-f}\to e^{-g}$ at the nodes, from the CDFs (`theory/pma.md` §4.3):
/// on the interval $T = G^{-1}\circ F$; on the circle $T(x) = G^{-1}(F(x)-\theta)$ with $G^{-1}$
/// extended by $G^{-1}(s+1) = G^{-1}(s)+1$ and the rotation $\theta$ fixed by
/// $\int_0^1(T(x)-x)\,dx = 0$ (so that $T = x + u'$ with $u$ periodic). $F$, $G$ are the CDFs of
/// the piecewise-linear interpolants of the densities (exact quadratics per cell), so $T$ is
/// second-order accurate; $\theta$ is found by bisection (the mean of $T - x$ is decreasing
/// in $\theta$).
pub fn brenier_map(grid: &Grid1d, f: &[f64], g: &[f64]) -> Result<Vec<f64>, PmaError> {
    let f = grid.check_density(f, "f", true)?;
    let g = grid.check_density(g, "g", true)?;
    let n = grid.len();
    let h = grid.h();
    // node-to-node CDF of the piecewise-linear density (torus: cells [x_j, x_{j+1}], periodic;
    // interval: half cells at the ends with constant extension)
    let cdf = |pot: &[f64]| -> Vec<(f64, f64, f64)> {
        // returns per cell: (left position, left density, right density)
        let dens: Vec<f64> = pot.iter().map(|v| (-v).exp()).collect();
        let mut cells = Vec::with_capacity(n + 1);
        match grid.domain {
            Domain::Torus => {
                for j in 0..n {
                    cells.push((grid.x[j], dens[j], dens[(j + 1) % n]));
                }
            }
            Domain::Interval => {
                cells.push((0.0, dens[0], dens[0]));
                for j in 0..n - 1 {
                    cells.push((grid.x[j], dens[j], dens[j + 1]));
                }
                cells.push((grid.x[n - 1], dens[n - 1], dens[n - 1]));
            }
        }
        cells
    };
    let cell_width = |k: usize, cells: &[(f64, f64, f64)]| -> f64 {
        match grid.domain {
            Domain::Torus => h,
            Domain::Interval => {
                if k == 0 || k == cells.len() - 1 {
                    h / 2.0
                } else {
                    h
                }
            }
        }
    };
    let fc = cdf(&f);
    let gc = cdf(&g);
    let masses = |cells: &[(f64, f64, f64)]| -> Vec<f64> {
        let mut acc = vec![0.0];
        for (k, c) in cells.iter().enumerate() {
            let w = cell_width(k, cells);
            acc.push(acc[k] + 0.5 * w * (c.1 + c.2));
        }
        acc
    };
    let fm = masses(&fc);
    let gm = masses(&gc);
    let (ftot, gtot) = (fm[fm.len() - 1], gm[gm.len() - 1]);
    // F at the nodes (normalised to total mass 1)
    let f_at: Vec<f64> = (0..n)
        .map(|j| match grid.domain {
            Domain::Torus => fm[j] / ftot,
            Domain::Interval => fm[j + 1] / ftot,
        })
        .collect();
    // G^{-1}(s) for s in [0,1): invert the quadratic in the cell containing s
    let g_inv = |s: f64| -> f64 {
        let target = s * gtot;
        let k = match gm.binary_search_by(|v| v.total_cmp(&target)) {
            Ok(k) => k.min(gc.len() - 1),
            Err(k) => k.saturating_sub(1).min(gc.len() - 1),
        };
        let (x0, d0, d1) = gc[k];
        let w = cell_width(k, &gc);
        let m = target - gm[k];
        // m = d0 z + (d1 - d0) z^2 / (2 w), z in [0, w]
        let a = (d1 - d0) / (2.0 * w);
        let z = if a.abs() < 1e-14 * d0.max(1.0) {
            m / d0
        } else {
            2.0 * m / (d0 + (d0 * d0 + 4.0 * a * m).max(0.0).sqrt())
        };
        x0 + z.clamp(0.0, w)
    };
    let lift = |s: f64| -> f64 {
        let fl = s.floor();
        g_inv(s - fl) + fl
    };
    match grid.domain {
        Domain::Interval => Ok(f_at.iter().map(|&s| g_inv(s.clamp(0.0, 1.0))).collect()),
        Domain::Torus => {
            let mean_gap = |theta: f64| -> f64 {
                (0..n)
                    .map(|j| lift(f_at[j] - theta) - grid.x[j])
                    .sum::<f64>()
                    / n as f64
            };
            let (mut lo, mut hi) = (-1.0, 1.0);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if mean_gap(mid) > 0.0 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let theta = 0.5 * (lo + hi);
            Ok((0..n).map(|j| lift(f_at[j] - theta)).collect())
        }
    }
}

/// The seed's IPFP on a 1-D grid through the engine's [`Stepper`] (`theory/pma.md` §4.4).
///
/// Kernel $e^{\langle x,y\rangle/\varepsilon}$ $\Leftrightarrow$ cost $\lvert x-y\rvert^2/2$ (periodic
/// $d(x,y)^2/2$ on the torus, via [`TensorGrid::periodic`] and the separable kernel), weights
/// $a_j = h\,e^{-f_j}$, $b_j = h\,e^{-g_j}$. With $\varphi = x^2/2 + u$ and $\psi = y^2/2 + v$ the
/// engine's potentials are $f^{\rm e} = -u$, $g^{\rm e} = -v$; from $\varphi_0 = x^2/2$ each IPFP
/// step is one $g$-half-step then one $f$-half-step. Reported at $k = \mathrm{round}(T/\varepsilon)$
/// (and at the sample times $k_i\varepsilon$): $\varphi_k$, $\nabla\varphi_k = x - (f^{\rm e})'$ (exact
/// derivative: the barycentric projection of $\pi_{k-1}$, with $y$ lifted next to $x$ on the
/// torus), $\rho_k = e^{(\varphi_k-\varphi_{k-1})/\varepsilon - f}$, residual $\max\lvert f+\log\rho_k\rvert$.
///
/// Bad input: the checks of [`Grid1d::check_density`], and a grid too coarse for $\varepsilon$:
/// $\sqrt\varepsilon$ must span two cells, $\varepsilon\ge 4h^2$ (the message names it).
pub fn ipfp(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    eps: f64,
    t_end: f64,
    samples: usize,
) -> Result<(usize, Vec<GridSnapshot>), PmaError> {
    ipfp_observed(grid, f, g, eps, t_end, samples, &mut |_, _| {})
}

/// [`ipfp`] calling `observe(iteration, k)` after every IPFP iteration (a progress hook).
pub fn ipfp_observed(
    grid: &Grid1d,
    f: &[f64],
    g: &[f64],
    eps: f64,
    t_end: f64,
    samples: usize,
    observe: &mut dyn FnMut(usize, usize),
) -> Result<(usize, Vec<GridSnapshot>), PmaError> {
    let f = grid.check_density(f, "f", false)?;
    let g = grid.check_density(g, "g", false)?;
    let k = super::gaussian::iterations_for(t_end, eps)?;
    let h = grid.h();
    check_resolved(eps, h, grid.len())?;
    if samples == 0 {
        return Err(PmaError::InvalidStep("samples must be >= 1".to_string()));
    }
    let n = grid.len();
    let a: Vec<f64> = f.iter().map(|v| h * (-v).exp()).collect();
    let b: Vec<f64> = g.iter().map(|v| h * (-v).exp()).collect();
    let axes = vec![grid.x.clone()];
    let tg = match grid.domain {
        Domain::Torus => {
            TensorGrid::periodic(axes.clone(), axes, vec![1.0], Some(a), Some(b), true)
        }
        Domain::Interval => TensorGrid::new(axes.clone(), axes, Some(a), Some(b), true),
    }
    .map_err(|e| PmaError::InvalidGrid(e.to_string()))?;
    // The IPFP iterates phi_k, k = t/eps, are the iterates of plain Sinkhorn by definition
    // (seed 002): plain explicitly (the `Stepper` is plain Sinkhorn in any case).
    let params = SinkhornParams::new(eps)
        .with_cost(Cost::HalfSqEuclidean)
        .plain();
    let mut st = Stepper::from_geometry(Geometry::Grid(&tg), &params, &vec![0.0; n], &vec![0.0; n])
        .map_err(|e| PmaError::InvalidGrid(e.to_string()))?;
    let outs = sample_iterations(k, samples);
    let mut snaps = Vec::with_capacity(samples + 1);
    snaps.push(ipfp_snapshot(
        grid,
        &tg,
        &f,
        &[0.0; 0],
        &vec![0.0; n],
        st.g(),
        eps,
        0,
    )?);
    let mut prev_f = vec![0.0; n];
    for it in 1..=k {
        super::check_interrupt(it)?;
        prev_f.copy_from_slice(st.f());
        st.step_g();
        st.step_f();
        while snaps.len() < outs.len() && outs[snaps.len()] == it {
            snaps.push(ipfp_snapshot(
                grid,
                &tg,
                &f,
                &prev_f,
                st.f(),
                st.g(),
                eps,
                it,
            )?);
        }
        observe(it, k);
    }
    Ok((k, snaps))
}

/// Rejects a grid too coarse for `eps`: $\sqrt\varepsilon$ must span two cells,
/// $\varepsilon\ge 4h^2$ (the error names $4h^2$ and the grid size `n`).
pub(super) fn check_resolved(eps: f64, h: f64, n: usize) -> Result<(), PmaError> {
    let safe = 4.0 * h * h;
    if eps < safe {
        return Err(PmaError::GridTooCoarse {
            eps,
            smallest_safe_eps: safe,
            n,
        });
    }
    Ok(())
}

/// The IPFP iterations reported for `samples` output intervals of `k` iterations:
/// $\mathrm{round}(ik/K)$, $i = 0..=K$, at least 1 after the first.
pub(super) fn sample_iterations(k: usize, samples: usize) -> Vec<usize> {
    (0..=samples)
        .map(|i| ((i as f64 * k as f64 / samples as f64).round() as usize).max(usize::from(i > 0)))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn ipfp_snapshot(
    grid: &Grid1d,
    tg: &TensorGrid,
    f: &[f64],
    prev_fe: &[f64],
    fe: &[f64],
    ge: &[f64],
    eps: f64,
    k: usize,
) -> Result<GridSnapshot, PmaError> {
    let n = grid.len();
    let x = &grid.x;
    let phi: Vec<f64> = (0..n).map(|i| 0.5 * x[i] * x[i] - fe[i]).collect();
    if k == 0 {
        let rho: Vec<f64> = f.iter().map(|v| (-v).exp()).collect();
        return Ok(GridSnapshot {
            t: 0.0,
            phi,
            grad_phi: x.clone(),
            rho,
            residual: 0.0,
        });
    }
    // barycentric projection: sum_j pi(j|i) * lifted y_j
    let b = tg.b();
    let mut grad = vec![0.0; n];
    for i in 0..n {
        let mut zs = Vec::with_capacity(n);
        let mut mx = f64::NEG_INFINITY;
        for j in 0..n {
            let c = tg.cost(i, j, 0.5);
            let z = (ge[j] - c) / eps + b[j].ln();
            mx = mx.max(z);
            zs.push(z);
        }
        let (mut s, mut sy) = (0.0, 0.0);
        for (j, z) in zs.iter().enumerate() {
            let w = (z - mx).exp();
            let dy = match grid.domain {
                Domain::Torus => {
                    let d = grid.x[j] - x[i];
                    d - d.round()
                }
                Domain::Interval => grid.x[j] - x[i],
            };
            s += w;
            sy += w * (x[i] + dy);
        }
        grad[i] = sy / s;
    }
    let h = grid.h();
    let rho: Vec<f64> = (0..n)
        .map(|i| ((prev_fe[i] - fe[i]) / eps - f[i]).exp())
        .collect();
    // the engine's weights carry h and the normalisation: rho is a density w.r.t. dx
    let mass: f64 = rho.iter().sum::<f64>() * h;
    let residual = rho
        .iter()
        .zip(f)
        .map(|(r, fj)| (fj + r.ln()).abs())
        .fold(0.0, f64::max);
    if !(mass.is_finite() && grad.iter().all(|v| v.is_finite())) {
        return Err(PmaError::NonFiniteResult {
            what: format!("IPFP iterate {k}"),
        });
    }
    Ok(GridSnapshot {
        t: k as f64 * eps,
        phi,
        grad_phi: grad,
        rho,
        residual,
    })
}

/// Potentials $f$ (nodal values, densities $e^{-f}$ normalised to grid mean 1) from the
/// catalogue, by name:
///
/// * `uniform` — $e^{-f} = 1$;
/// * `cos:A:K` — $e^{-f}\propto 1 + A\cos(2\pi Kx)$, $\lvert A\rvert<1$, $K\ge1$ an integer (torus);
/// * `gauss:M:S` — $e^{-f}\propto e^{-(x-M)^2/(2S^2)}$ restricted to the domain (interval), or
///   wrapped (sum over the images $x+k$, torus);
/// * `mix:W:M:S[:W:M:S...]` — the Gaussian mixture $\sum_i W_i N(M_i, S_i^2)$ (groups of three),
///   restricted or wrapped like `gauss` (the "large window" of the issue: the widths are small
///   against the domain, so the restriction cuts off a negligible mass);
/// * `pushed:C:G` — the density whose Brenier map onto the catalogue density `G` (a name above,
///   with `_` for `:`, e.g. `pushed:0.3:cos_0.4_1`) is $T(x) = x + \tfrac{C}{2\pi}\sin(2\pi x)$
///   ($\lvert C\rvert<1$): $f = g\circ T - \log T'$ (the manufactured family with a known map).
pub fn catalogue(grid: &Grid1d, name: &str) -> Result<Vec<f64>, PmaError> {
    let parts: Vec<&str> = name.split(':').collect();
    let raw: Vec<f64> = if parts[0] == "pushed" {
        let bad = |m: &str| PmaError::InvalidDensity(format!("catalogue entry '{name}': {m}"));
        if parts.len() != 3 {
            return Err(bad("expected pushed:C:G"));
        }
        let c = parse_num(name, parts[1])?;
        if c.abs() >= 1.0 {
            return Err(bad("needs |C| < 1"));
        }
        if grid.domain != Domain::Torus {
            return Err(bad("the pushed family is defined on the torus"));
        }
        let inner = parts[2].replace('_', ":");
        let inner_parts: Vec<&str> = inner.split(':').collect();
        let tau = std::f64::consts::TAU;
        grid.x
            .iter()
            .map(|&x| {
                let t = x + c / tau * (tau * x).sin();
                let tp = 1.0 + c * (tau * x).cos();
                Ok(raw_potential(&inner, &inner_parts, grid.domain, t)? - tp.ln())
            })
            .collect::<Result<_, PmaError>>()?
    } else {
        grid.x
            .iter()
            .map(|&x| raw_potential(name, &parts, grid.domain, x))
            .collect::<Result<_, _>>()?
    };
    // normalise the grid mean of e^{-f} to 1 (for the pushed family the shift is the
    // normalisation of the inner density: e^{-f} = e^{-g(T)} T' has the mass of e^{-g})
    let mean = raw.iter().map(|v| (-v).exp()).sum::<f64>() / raw.len() as f64;
    Ok(raw.iter().map(|v| v + mean.ln()).collect())
}

fn parse_num(name: &str, s: &str) -> Result<f64, PmaError> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            PmaError::InvalidDensity(format!(
                "catalogue entry '{name}': '{s}' is not a finite number"
            ))
        })
}

/// The unnormalised catalogue potential at a point.
fn raw_potential(name: &str, parts: &[&str], domain: Domain, x: f64) -> Result<f64, PmaError> {
    let bad = |m: &str| PmaError::InvalidDensity(format!("catalogue entry '{name}': {m}"));
    match parts[0] {
        "uniform" if parts.len() == 1 => Ok(0.0),
        "cos" if parts.len() == 3 => {
            let (a, k) = (parse_num(name, parts[1])?, parse_num(name, parts[2])?);
            if a.abs() >= 1.0 || k < 1.0 || k.fract() != 0.0 {
                return Err(bad("needs |A| < 1 and an integer K >= 1"));
            }
            Ok(-(1.0 + a * (std::f64::consts::TAU * k * x).cos()).ln())
        }
        "gauss" if parts.len() == 3 => {
            let (m, s) = (parse_num(name, parts[1])?, parse_num(name, parts[2])?);
            if s <= 0.0 {
                return Err(bad("needs S > 0"));
            }
            match domain {
                Domain::Interval => Ok((x - m).powi(2) / (2.0 * s * s)),
                Domain::Torus => {
                    let dens: f64 = (-20..=20)
                        .map(|k| (-(x + k as f64 - m).powi(2) / (2.0 * s * s)).exp())
                        .sum();
                    Ok(-dens.ln())
                }
            }
        }
        "mix" if parts.len() >= 4 && (parts.len() - 1).is_multiple_of(3) => {
            let mut dens = 0.0;
            for c in parts[1..].chunks(3) {
                let (w, m, s) = (
                    parse_num(name, c[0])?,
                    parse_num(name, c[1])?,
                    parse_num(name, c[2])?,
                );
                if !(w > 0.0 && s > 0.0) {
                    return Err(bad("needs weights W > 0 and widths S > 0"));
                }
                let norm = w / (s * std::f64::consts::TAU.sqrt());
                dens += match domain {
                    Domain::Interval => norm * (-(x - m).powi(2) / (2.0 * s * s)).exp(),
                    Domain::Torus => (-20..=20)
                        .map(|k| norm * (-(x + k as f64 - m).powi(2) / (2.0 * s * s)).exp())
                        .sum(),
                };
            }
            if dens.is_nan() || dens <= 0.0 {
                return Err(bad("the density underflows to 0 on the grid; widen it"));
            }
            Ok(-dens.ln())
        }
        _ => Err(bad(
            "unknown entry (expected uniform, cos:A:K, gauss:M:S, mix:W:M:S[:W:M:S...] or pushed:C:G)",
        )),
    }
}

/// The Jacobian $\partial r/\partial u$ of the discrete PMA right-hand side at the nodal values
/// `phi` of $\varphi$ (dense $n\times n$; tridiagonal, cyclic on the torus). At a steady state its
/// spectrum gives the linearised exponential rate of $\nabla\varphi_t\to\nabla\varphi_\infty$: the
/// eigenvalue 0 belongs to the constants (the additive constant of $\varphi$), the rate is the
/// smallest $\lvert\mathrm{Re}\,\lambda\rvert$ of the others (the Gaussian analogue is
/// $2\sqrt{\lambda_{\min}(Q)}$). Errors if $\varphi$ is not convex at a node.
pub fn jacobian(grid: &Grid1d, g: &[f64], phi: &[f64]) -> Result<nalgebra::DMatrix<f64>, PmaError> {
    let n = grid.len();
    if phi.len() != n || g.len() != n {
        return Err(PmaError::DimensionMismatch {
            what: "number of nodal values".to_string(),
            expected: n,
            found: phi.len().min(g.len()),
        });
    }
    let u: Vec<f64> = (0..n)
        .map(|j| phi[j] - 0.5 * grid.x[j] * grid.x[j])
        .collect();
    let (mut d2, mut d1) = (vec![0.0; n], vec![0.0; n]);
    derivatives(grid, &u, &mut d2, &mut d1);
    let h = grid.h();
    let mut jac = nalgebra::DMatrix::zeros(n, n);
    for j in 0..n {
        if d2[j].is_nan() || d2[j] <= 0.0 {
            return Err(PmaError::NotConvex {
                step: 0,
                index: j,
                x: grid.x[j],
                second_derivative: d2[j],
            });
        }
        let (l, r) = grid.nbrs(j);
        let gp = grid.interp(g, d1[j]).1;
        let a = 1.0 / (h * h * d2[j]);
        jac[(j, j)] -= 2.0 * a;
        jac[(j, l)] += a + gp / (2.0 * h);
        jac[(j, r)] += a - gp / (2.0 * h);
    }
    Ok(jac)
}

/// $W_2(\rho_a,\rho_b)$ between two positive densities given by their nodal values
/// (`theory/pma.md` §4.3): on the interval with the monotone map $G^{-1}\circ F$, on the circle
/// with $T(x) = G^{-1}(F(x)-\theta)$, $\int(T-x)\,dx = 0$ — which is also the minimiser over
/// rotations $\theta$ of $\int\lvert T-x\rvert^2d\rho_a$ (its derivative in $\theta$ is
/// $-2\int(T-x)T'\,dx = -2\int(T-x)\,dx$ by periodicity of $T-x$). Then
/// $W_2^2 = \int\lvert T(x)-x\rvert^2\rho_a(x)\,dx$ (trapezoid rule on the nodes, $O(h^2)$; zero
/// to round-off for equal inputs). The densities are normalised to unit mass first.
pub fn wasserstein2(grid: &Grid1d, rho_a: &[f64], rho_b: &[f64]) -> Result<f64, PmaError> {
    let pot = |rho: &[f64], what: &str| -> Result<Vec<f64>, PmaError> {
        if rho.len() != grid.len() {
            return Err(PmaError::DimensionMismatch {
                what: format!("number of values of {what}"),
                expected: grid.len(),
                found: rho.len(),
            });
        }
        if let Some(j) = rho
            .iter()
            .position(|r| r.is_nan() || *r <= 0.0 || r.is_infinite())
        {
            return Err(PmaError::InvalidDensity(format!(
                "{what} must be finite and > 0, got {} at node {j}",
                rho[j]
            )));
        }
        Ok(rho.iter().map(|r| -r.ln()).collect())
    };
    let fa = pot(rho_a, "rho_a")?;
    let fb = pot(rho_b, "rho_b")?;
    let t = brenier_map(grid, &fa, &fb)?;
    let mass: f64 = rho_a.iter().sum();
    let w2sq: f64 = t
        .iter()
        .zip(&grid.x)
        .zip(rho_a)
        .map(|((tj, xj), r)| (tj - xj).powi(2) * r)
        .sum::<f64>()
        / mass;
    Ok(w2sq.sqrt())
}
