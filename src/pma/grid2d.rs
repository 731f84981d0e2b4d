//! PMA and the seed's IPFP on the two-dimensional torus $\mathbb T^2 = [0,1)^2$, and the PMA on
//! the box $\lbrack 0,1\rbrack^2$ (`theory/pma.md` §4.6, §4.10).
//!
//! Torus nodes $(x_i, y_j) = (i/n, j/n)$, box nodes the cell centres $((i+\frac12)/n, (j+\frac12)/n)$,
//! flattened row-major (index $in + j$), $\varphi = \lvert x\rvert^2/2 + u$ with $u$ periodic on the
//! torus; on the box the second boundary condition $\nabla\varphi(\lbrack 0,1\rbrack^2) = \lbrack 0,1\rbrack^2$ is imposed as
//! $\partial_\nu u = 0$ by mirrored ghost values ($u_{-1,j} = u_{0,j}$, $u_{n,j} = u_{n-1,j}$, and
//! the same in $j$ and at the corners), as on the 1-D interval. Centred differences: $D_{11}u$, $D_{22}u$ (three-point), $D_{12}u$ (the
//! four-corner cross difference), $D_1u$, $D_2u$; $H = I + D^2u$ and
//! $$\partial_tu = f - \mathcal Ig(x + Du) + \log\det H,$$
//! $\mathcal Ig$ the tensor 4×4-point Lagrange interpolant of the nodal $g$ (periodic on the torus, end
//! stencils on the box). Formal order $O(h^2)$.
//!
//! * **Explicit** (forward Euler): the diagonal coefficient of the step is
//!   $1 - 2\Delta t\,(a_{11}+a_{22})/h^2$ with $a = H^{-1}$, so the stated CFL bound is
//!   $\Delta t\le\tfrac{h^2}{2}\min\det H/\operatorname{tr}H$, checked before every step.
//! * **Implicit** (backward Euler): $u^{n+1} - \Delta t\,r(u^{n+1}) = u^n$ by Newton with the exact
//!   9-point Jacobian ($\partial\log\det H = \operatorname{tr}(H^{-1}\partial H)$, and the
//!   gradient of the interpolant for the $g$ term), assembled as a sparse matrix and factorised by
//!   faer's sparse LU (partial pivoting, fill-reducing ordering); damped so that convexity holds
//!   at every Newton iterate. Unconditionally stable, first order in time.
//!
//! The cross
//! term makes the scheme monotone only where $\lvert a_{12}\rvert$ is small against $a_{11}$,
//! $a_{22}$ (not enforced). Convexity ($H_{11}>0$, $\det H>0$) is checked every step.

use faer::prelude::*;
use faer::sparse::linalg::solvers::{Lu, SymbolicLu};
use faer::sparse::{SparseColMat, Triplet};

use super::grid::{PmaParams, Scheme};
use super::PmaError;
use crate::sinkhorn::{Geometry, SinkhornParams, Stepper, TensorGrid};
use crate::Cost;

/// Largest $n$ of the 2-D IPFP ([`ipfp_2d`]; the barycentric projection is $O(n^4)$).
pub const MAX_IPFP_SIDE: usize = 128;

/// Largest $n$ of an $n\times n$ grid.
pub const MAX_SIDE: usize = 512;

/// The spatial domain of a 2-D grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Domain2d {
    /// $\mathbb T^2 = [0,1)^2$, nodes $(i/n, j/n)$, periodic $u$.
    #[default]
    Torus,
    /// The box $\lbrack 0,1\rbrack^2$, cell-centred nodes, $\nabla\varphi$ maps the box onto itself.
    Box,
}

/// An $n\times n$ grid of the torus $[0,1)^2$ or of the box $\lbrack 0,1\rbrack^2$.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid2d {
    n: usize,
    domain: Domain2d,
}

/// One output time on a 2-D grid (the fields of [`super::grid::GridSnapshot`], gradients as pairs).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot2d {
    /// Time.
    pub t: f64,
    /// $\varphi$ at the nodes (row-major).
    pub phi: Vec<f64>,
    /// $\nabla\varphi$ at the nodes (the lift, not reduced mod 1).
    pub grad_phi: Vec<[f64; 2]>,
    /// $\rho$ at the nodes.
    pub rho: Vec<f64>,
    /// $\max\lvert f + \log\rho\rvert$.
    pub residual: f64,
}

impl Grid2d {
    /// $n\times n$ nodes of the torus, $4\le n\le$ [`MAX_SIDE`].
    pub fn new(n: usize) -> Result<Grid2d, PmaError> {
        Grid2d::with_domain(Domain2d::Torus, n)
    }
    /// $n\times n$ nodes of the given domain, $4\le n\le$ [`MAX_SIDE`].
    pub fn with_domain(domain: Domain2d, n: usize) -> Result<Grid2d, PmaError> {
        if !(4..=MAX_SIDE).contains(&n) {
            return Err(PmaError::InvalidGrid(format!(
                "n must be between 4 and {MAX_SIDE} in 2-D, got {n}"
            )));
        }
        Ok(Grid2d { n, domain })
    }
    /// The domain.
    pub fn domain(&self) -> Domain2d {
        self.domain
    }
    /// Nodes per side.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Spacing $1/n$.
    pub fn h(&self) -> f64 {
        1.0 / self.n as f64
    }
    /// Node coordinates (row-major).
    pub fn point(&self, k: usize) -> [f64; 2] {
        let off = match self.domain {
            Domain2d::Torus => 0.0,
            Domain2d::Box => 0.5,
        };
        [
            ((k / self.n) as f64 + off) * self.h(),
            ((k % self.n) as f64 + off) * self.h(),
        ]
    }

    /// Validate nodal values of a potential (length $n^2$, no NaN, no $+\infty$, grid mean of
    /// $e^{-f}$ equal to 1 within [`super::grid::MASS_TOL`] unless `normalise`).
    pub fn check_density(
        &self,
        f: &[f64],
        what: &str,
        normalise: bool,
    ) -> Result<Vec<f64>, PmaError> {
        super::check_potential(f, self.n * self.n, what, normalise, |k| {
            format!("x = {:?}", self.point(k))
        })
    }

    /// Node index of $(i, j)$: periodic on the torus, mirrored ghosts (clamped) on the box.
    #[inline]
    fn idx(&self, i: isize, j: isize) -> usize {
        let n = self.n as isize;
        match self.domain {
            Domain2d::Torus => (i.rem_euclid(n) * n + j.rem_euclid(n)) as usize,
            Domain2d::Box => (i.clamp(0, n - 1) * n + j.clamp(0, n - 1)) as usize,
        }
    }

    /// First stencil index and the 4-point Lagrange weights and their derivatives (per unit of
    /// the index) at the coordinate `y` (periodic lift on the torus, end stencils on the box).
    fn stencil(&self, y: f64) -> (isize, [f64; 4], [f64; 4]) {
        let n = self.n as f64;
        let s = match self.domain {
            Domain2d::Torus => y * n,
            Domain2d::Box => y * n - 0.5,
        };
        let mut j0 = s.floor() as isize - 1;
        if self.domain == Domain2d::Box {
            j0 = j0.clamp(0, self.n as isize - 4);
        }
        let t = s - j0 as f64;
        let (a, b, c) = (t - 1.0, t - 2.0, t - 3.0);
        (
            j0,
            [
                -a * b * c / 6.0,
                t * b * c / 2.0,
                -t * a * c / 2.0,
                t * a * b / 6.0,
            ],
            [
                -(b * c + a * c + a * b) / 6.0,
                (b * c + t * c + t * b) / 2.0,
                -(a * c + t * c + t * a) / 2.0,
                (a * b + t * b + t * a) / 6.0,
            ],
        )
    }

    /// Tensor 4-point Lagrange interpolation of nodal `v` at `(y1, y2)`.
    fn interp(&self, v: &[f64], y1: f64, y2: f64) -> f64 {
        let (i0, wi, _) = self.stencil(y1);
        let (j0, wj, _) = self.stencil(y2);
        let mut s = 0.0;
        for (a, wa) in wi.iter().enumerate() {
            let mut row = 0.0;
            for (b, wb) in wj.iter().enumerate() {
                row += wb * v[self.idx(i0 + a as isize, j0 + b as isize)];
            }
            s += wa * row;
        }
        s
    }

    /// The gradient of [`Self::interp`] at `(y1, y2)`.
    fn interp_grad(&self, v: &[f64], y1: f64, y2: f64) -> [f64; 2] {
        let n = self.n as f64;
        let (i0, wi, di) = self.stencil(y1);
        let (j0, wj, dj) = self.stencil(y2);
        let (mut g1, mut g2) = (0.0, 0.0);
        for a in 0..4 {
            for b in 0..4 {
                let val = v[self.idx(i0 + a as isize, j0 + b as isize)];
                g1 += di[a] * wj[b] * val;
                g2 += wi[a] * dj[b] * val;
            }
        }
        [g1 * n, g2 * n]
    }

    /// $(H_{11}, H_{22}, H_{12}, \nabla\varphi)$ at node $(i,j)$.
    fn local(&self, u: &[f64], i: usize, j: usize) -> (f64, f64, f64, [f64; 2]) {
        let h = self.h();
        let (i, j) = (i as isize, j as isize);
        let at = |a: isize, b: isize| u[self.idx(i + a, j + b)];
        let c = at(0, 0);
        let h11 = 1.0 + (at(1, 0) - 2.0 * c + at(-1, 0)) / (h * h);
        let h22 = 1.0 + (at(0, 1) - 2.0 * c + at(0, -1)) / (h * h);
        let h12 = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4.0 * h * h);
        let p = self.point((i * self.n as isize + j) as usize);
        let g1 = p[0] + (at(1, 0) - at(-1, 0)) / (2.0 * h);
        let g2 = p[1] + (at(0, 1) - at(0, -1)) / (2.0 * h);
        (h11, h22, h12, [g1, g2])
    }

    fn snapshot(&self, f: &[f64], g: &[f64], u: &[f64], t: f64) -> Snapshot2d {
        let n = self.n;
        let mut phi = Vec::with_capacity(n * n);
        let mut grad = Vec::with_capacity(n * n);
        let mut rho = Vec::with_capacity(n * n);
        let mut residual: f64 = 0.0;
        for i in 0..n {
            for j in 0..n {
                let k = i * n + j;
                let (a, b, c, gr) = self.local(u, i, j);
                let p = self.point(k);
                phi.push(0.5 * (p[0] * p[0] + p[1] * p[1]) + u[k]);
                let r = (-self.interp(g, gr[0], gr[1]) + (a * b - c * c).ln()).exp();
                residual = residual.max((f[k] + r.ln()).abs());
                rho.push(r);
                grad.push(gr);
            }
        }
        Snapshot2d {
            t,
            phi,
            grad_phi: grad,
            rho,
            residual,
        }
    }
}

/// Largest number of unknowns $n^2$ of the implicit 2-D scheme (sparse LU of a 9-point matrix;
/// $256^2$ keeps the factor within a few hundred MiB).
pub const MAX_IMPLICIT_UNKNOWNS: usize = 256 * 256;

/// Solve the 2-D PMA by forward Euler from $\varphi_0 = \lvert x\rvert^2/2$ (module docs).
/// `t_end / dt` must be whole and `samples` must divide the number of steps.
pub fn solve_pma_2d(
    grid: &Grid2d,
    f: &[f64],
    g: &[f64],
    t_end: f64,
    dt: f64,
    samples: usize,
) -> Result<Vec<Snapshot2d>, PmaError> {
    let params = PmaParams {
        t_end,
        dt,
        samples,
        ..PmaParams::default()
    };
    solve_pma_2d_from(grid, f, g, None, &params)
}

/// Solve the 2-D PMA with the scheme of `params` (explicit or implicit, module docs) from
/// $\varphi_0 = \lvert x\rvert^2/2 + u_0$ (`u0` nodal, row-major; `None` for $u_0 = 0$, the seed's
/// start). $\varphi_0$ must be discretely convex ($H_{11} > 0$, $\det H > 0$ at every node), else
/// [`PmaError::NonConvexInitial`] (bad input). Convexity is checked at every step
/// ([`PmaError::NotConvex`] names the step); the explicit scheme checks its CFL bound
/// ([`PmaError::Cfl`]); the implicit one reports Newton failure with its residual.
pub fn solve_pma_2d_from(
    grid: &Grid2d,
    f: &[f64],
    g: &[f64],
    u0: Option<&[f64]>,
    params: &PmaParams,
) -> Result<Vec<Snapshot2d>, PmaError> {
    solve_pma_2d_observed(grid, f, g, u0, params, &mut |_, _| {})
}

/// [`solve_pma_2d_from`] calling `observe(step, steps)` after every step (a progress hook).
pub fn solve_pma_2d_observed(
    grid: &Grid2d,
    f: &[f64],
    g: &[f64],
    u0: Option<&[f64]>,
    params: &PmaParams,
    observe: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Snapshot2d>, PmaError> {
    let f = grid.check_density(f, "f", false)?;
    let g = grid.check_density(g, "g", false)?;
    let (t_end, dt, samples) = (params.t_end, params.dt, params.samples);
    let steps = super::grid::whole_steps(t_end, dt)?;
    if samples == 0 || (steps > 0 && !steps.is_multiple_of(samples)) {
        return Err(PmaError::InvalidStep(format!(
            "the {samples} output intervals must divide the {steps} steps"
        )));
    }
    let n = grid.n;
    if params.scheme == Scheme::Implicit && n * n > MAX_IMPLICIT_UNKNOWNS {
        return Err(PmaError::InvalidGrid(format!(
            "the implicit 2-D scheme (sparse LU) supports n <= 256, got {n}; use --scheme explicit"
        )));
    }
    let h = grid.h();
    let mut u = match u0 {
        None => vec![0.0; n * n],
        Some(u0) => {
            if u0.len() != n * n {
                return Err(PmaError::DimensionMismatch {
                    what: "number of values of u0".to_string(),
                    expected: n * n,
                    found: u0.len(),
                });
            }
            if let Some(k) = u0.iter().position(|v| !v.is_finite()) {
                return Err(PmaError::InvalidDensity(format!(
                    "u0 has a non-finite value {} at node {k}",
                    u0[k]
                )));
            }
            if let Some((k, det)) = grid.first_non_convex(u0) {
                return Err(PmaError::NonConvexInitial {
                    index: k,
                    x: grid.point(k)[0],
                    second_derivative: det,
                });
            }
            u0.to_vec()
        }
    };
    let mut r = vec![0.0; n * n];
    let mut out = vec![grid.snapshot(&f, &g, &u, 0.0)];
    let every = (steps / samples).max(1);
    // the Jacobian's sparsity pattern is the same at every Newton iterate and step: one
    // symbolic LU analysis (fill-reducing ordering, elimination tree) serves the whole run
    let mut symbolic: Option<SymbolicLu<usize>> = None;
    for step in 1..=steps {
        super::check_interrupt(step)?;
        match params.scheme {
            Scheme::Explicit => {
                let mut bound = f64::INFINITY;
                for i in 0..n {
                    for j in 0..n {
                        let k = i * n + j;
                        let (a, b, c, gr) = grid.local(&u, i, j);
                        let det = a * b - c * c;
                        if a.is_nan() || a <= 0.0 || det.is_nan() || det <= 0.0 {
                            return Err(PmaError::NotConvex {
                                step,
                                index: k,
                                x: grid.point(k)[0],
                                second_derivative: det,
                            });
                        }
                        bound = bound.min(det / (a + b));
                        r[k] = f[k] - grid.interp(&g, gr[0], gr[1]) + det.ln();
                    }
                }
                let dt_max = 0.5 * h * h * bound;
                if dt > dt_max {
                    return Err(PmaError::Cfl { step, dt, dt_max });
                }
                for (uk, rk) in u.iter_mut().zip(&r) {
                    *uk += dt * rk;
                }
            }
            Scheme::Implicit => {
                u = implicit_step_2d(grid, &f, &g, &u, dt, step, params, &mut symbolic)?;
                if let Some((k, det)) = grid.first_non_convex(&u) {
                    return Err(PmaError::NotConvex {
                        step,
                        index: k,
                        x: grid.point(k)[0],
                        second_derivative: det,
                    });
                }
            }
        }
        if u.iter().any(|v| !v.is_finite()) {
            return Err(PmaError::NonFiniteResult {
                what: format!("u at step {step}"),
            });
        }
        if step % every == 0 && out.len() <= samples {
            out.push(grid.snapshot(&f, &g, &u, step as f64 * dt));
        }
        observe(step, steps);
    }
    while out.len() <= samples {
        out.push(grid.snapshot(&f, &g, &u, t_end));
    }
    Ok(out)
}

impl Grid2d {
    /// The first node where $\varphi = \lvert x\rvert^2/2 + u$ is not discretely convex
    /// ($H_{11}\le0$ or $\det H\le0$, or NaN), with $\det H$ there.
    fn first_non_convex(&self, u: &[f64]) -> Option<(usize, f64)> {
        let n = self.n;
        for i in 0..n {
            for j in 0..n {
                let (a, b, c, _) = self.local(u, i, j);
                let det = a * b - c * c;
                if a.is_nan() || a <= 0.0 || det.is_nan() || det <= 0.0 {
                    return Some((i * n + j, det));
                }
            }
        }
        None
    }

    /// $w - u^n - \Delta t\,r(w)$ at every node, or the first non-convex node.
    fn be_residual(
        &self,
        f: &[f64],
        g: &[f64],
        w: &[f64],
        u0: &[f64],
        dt: f64,
        out: &mut [f64],
    ) -> Result<(), (usize, f64)> {
        let n = self.n;
        for i in 0..n {
            for j in 0..n {
                let k = i * n + j;
                let (a, b, c, gr) = self.local(w, i, j);
                let det = a * b - c * c;
                if a.is_nan() || a <= 0.0 || det.is_nan() || det <= 0.0 {
                    return Err((k, det));
                }
                out[k] = w[k] - u0[k] - dt * (f[k] - self.interp(g, gr[0], gr[1]) + det.ln());
            }
        }
        Ok(())
    }

    /// The Jacobian $I - \Delta t\,\partial r/\partial w$ as triplets (duplicates, from the
    /// mirrored ghosts of the box or the wrap of small tori, are summed by the assembly).
    fn be_jacobian(&self, g: &[f64], w: &[f64], dt: f64) -> Vec<Triplet<usize, usize, f64>> {
        let n = self.n;
        let h = self.h();
        let (ih2, i4h2, i2h) = (1.0 / (h * h), 0.25 / (h * h), 0.5 / h);
        let mut t = Vec::with_capacity(10 * n * n);
        for i in 0..n {
            for j in 0..n {
                let k = i * n + j;
                let (a, b, c, gr) = self.local(w, i, j);
                let det = a * b - c * c;
                // d log det H = a11 dH11 + a22 dH22 + 2 a12 dH12, (a) = H^{-1}
                let (a11, a22, a12) = (b / det, a / det, -c / det);
                let dg = self.interp_grad(g, gr[0], gr[1]);
                let (ii, jj) = (i as isize, j as isize);
                let mut add = |di: isize, dj: isize, v: f64| {
                    t.push(Triplet::new(k, self.idx(ii + di, jj + dj), -dt * v));
                };
                add(1, 0, a11 * ih2 - dg[0] * i2h);
                add(-1, 0, a11 * ih2 + dg[0] * i2h);
                add(0, 1, a22 * ih2 - dg[1] * i2h);
                add(0, -1, a22 * ih2 + dg[1] * i2h);
                add(0, 0, -2.0 * (a11 + a22) * ih2);
                let x = 2.0 * a12 * i4h2;
                add(1, 1, x);
                add(1, -1, -x);
                add(-1, 1, -x);
                add(-1, -1, x);
                t.push(Triplet::new(k, k, 1.0));
            }
        }
        t
    }
}

/// One backward-Euler step by Newton with the exact sparse Jacobian (faer sparse LU, the
/// symbolic analysis cached in `symbolic`), damped so that every accepted iterate is convex.
#[allow(clippy::too_many_arguments)]
fn implicit_step_2d(
    grid: &Grid2d,
    f: &[f64],
    g: &[f64],
    u0: &[f64],
    dt: f64,
    step: usize,
    params: &PmaParams,
    symbolic: &mut Option<SymbolicLu<usize>>,
) -> Result<Vec<f64>, PmaError> {
    let m = u0.len();
    let mut w = u0.to_vec();
    let mut res = vec![0.0; m];
    let mut trial_res = vec![0.0; m];
    let not_convex = |(k, det): (usize, f64)| PmaError::NotConvex {
        step,
        index: k,
        x: grid.point(k)[0],
        second_derivative: det,
    };
    grid.be_residual(f, g, &w, u0, dt, &mut res)
        .map_err(not_convex)?;
    let norm = |v: &[f64]| v.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let mut rn = norm(&res);
    for _ in 0..params.max_newton {
        if rn <= params.newton_tol {
            return Ok(w);
        }
        let trip = grid.be_jacobian(g, &w, dt);
        let jac = SparseColMat::<usize, f64>::try_new_from_triplets(m, m, &trip)
            .map_err(|_| PmaError::NewtonFailed { step, residual: rn })?;
        let failed = PmaError::NewtonFailed { step, residual: rn };
        let sym = match symbolic {
            Some(s) => s.clone(),
            None => {
                let s = SymbolicLu::try_new(jac.symbolic()).map_err(|_| failed.clone())?;
                *symbolic = Some(s.clone());
                s
            }
        };
        let lu = Lu::try_new_with_symbolic(sym, jac.as_ref()).map_err(|_| failed)?;
        let mut delta = Mat::<f64>::from_fn(m, 1, |i, _| -res[i]);
        lu.solve_in_place(delta.as_mut());
        if (0..m).any(|i| !delta[(i, 0)].is_finite()) {
            return Err(PmaError::NewtonFailed { step, residual: rn });
        }
        // converged to round-off: the Newton correction is at the level of the unknowns' ulps
        // (the residual's floor is then set by the conditioning, dt/(h^2 phi'') times ulps)
        let dmax = (0..m).fold(0.0f64, |a, i| a.max(delta[(i, 0)].abs()));
        if dmax <= 1e-13 * (1.0 + norm(&w)) && rn <= 1e3 * params.newton_tol.max(1e-15) {
            return Ok(w);
        }
        // damped update: convex iterate with a smaller residual (or the full step if it is)
        let mut lam = 1.0;
        loop {
            let trial: Vec<f64> = (0..m).map(|i| w[i] + lam * delta[(i, 0)]).collect();
            if grid
                .be_residual(f, g, &trial, u0, dt, &mut trial_res)
                .is_ok()
            {
                let tn = norm(&trial_res);
                if tn.is_finite() && (tn < rn || lam == 1.0 && tn < 10.0 * rn) {
                    w = trial;
                    std::mem::swap(&mut res, &mut trial_res);
                    rn = tn;
                    break;
                }
            }
            lam *= 0.5;
            if lam < 1e-6 {
                return Err(PmaError::NewtonFailed { step, residual: rn });
            }
        }
    }
    if rn <= params.newton_tol.max(1e3 * f64::EPSILON) {
        Ok(w)
    } else {
        Err(PmaError::NewtonFailed { step, residual: rn })
    }
}

/// The seed's IPFP on the 2-D grid through the engine's [`Stepper`] and the separable kernel
/// (cost $d(x,y)^2/2$, periodic on the torus; $\lvert x-y\rvert^2/2$ on the box), as [`super::grid::ipfp`] in 1-D: $\varphi_k$, the exact
/// $\nabla\varphi_k$ (barycentric projection, $y$ lifted next to $x$), $\rho_k$, at the $K+1$
/// iterations $\mathrm{round}(ik/K)$. Coarse grids ($\varepsilon < 4h^2$) are rejected naming $4h^2$.
pub fn ipfp_2d(
    grid: &Grid2d,
    f: &[f64],
    g: &[f64],
    eps: f64,
    t_end: f64,
    samples: usize,
) -> Result<(usize, Vec<Snapshot2d>), PmaError> {
    ipfp_2d_observed(grid, f, g, eps, t_end, samples, &mut |_, _| {})
}

/// [`ipfp_2d`] calling `observe(iteration, k)` after every IPFP iteration (a progress hook).
pub fn ipfp_2d_observed(
    grid: &Grid2d,
    f: &[f64],
    g: &[f64],
    eps: f64,
    t_end: f64,
    samples: usize,
    observe: &mut dyn FnMut(usize, usize),
) -> Result<(usize, Vec<Snapshot2d>), PmaError> {
    let f = grid.check_density(f, "f", false)?;
    let g = grid.check_density(g, "g", false)?;
    let k = super::gaussian::iterations_for(t_end, eps)?;
    let h = grid.h();
    super::grid::check_resolved(eps, h, grid.n)?;
    if grid.n > MAX_IPFP_SIDE {
        return Err(PmaError::InvalidGrid(format!(
            "2-D IPFP supports n <= {MAX_IPFP_SIDE} (its barycentric projection costs n^4), got {}",
            grid.n
        )));
    }
    if samples == 0 {
        return Err(PmaError::InvalidStep("samples must be >= 1".to_string()));
    }
    let n = grid.n;
    let axis: Vec<f64> = (0..n).map(|i| grid.point(i * n)[0]).collect();
    let a: Vec<f64> = f.iter().map(|v| h * h * (-v).exp()).collect();
    let b: Vec<f64> = g.iter().map(|v| h * h * (-v).exp()).collect();
    let axes = vec![axis.clone(), axis];
    let tg = match grid.domain {
        Domain2d::Torus => {
            TensorGrid::periodic(axes.clone(), axes, vec![1.0, 1.0], Some(a), Some(b), true)
        }
        Domain2d::Box => TensorGrid::new(axes.clone(), axes, Some(a), Some(b), true),
    }
    .map_err(|e| PmaError::InvalidGrid(e.to_string()))?;
    // The IPFP iterates phi_k, k = t/eps, are the iterates of plain Sinkhorn by definition
    // (seed 002): plain explicitly (the `Stepper` is plain Sinkhorn in any case).
    let params = SinkhornParams::new(eps)
        .with_cost(Cost::HalfSqEuclidean)
        .plain();
    let zeros = vec![0.0; n * n];
    let mut st = Stepper::from_geometry(Geometry::Grid(&tg), &params, &zeros, &zeros)
        .map_err(|e| PmaError::InvalidGrid(e.to_string()))?;
    let outs = super::grid::sample_iterations(k, samples);
    let mut snaps = vec![Snapshot2d {
        t: 0.0,
        phi: (0..n * n)
            .map(|i| {
                let p = grid.point(i);
                0.5 * (p[0] * p[0] + p[1] * p[1])
            })
            .collect(),
        grad_phi: (0..n * n).map(|i| grid.point(i)).collect(),
        rho: f.iter().map(|v| (-v).exp()).collect(),
        residual: 0.0,
    }];
    let mut prev = zeros.clone();
    for it in 1..=k {
        super::check_interrupt(it)?;
        prev.copy_from_slice(st.f());
        st.step_g();
        st.step_f();
        while snaps.len() < outs.len() && outs[snaps.len()] == it {
            snaps.push(ipfp_snapshot_2d(
                grid,
                &tg,
                &f,
                &prev,
                st.f(),
                st.g(),
                eps,
                it,
            ));
        }
        observe(it, k);
    }
    Ok((k, snaps))
}

#[allow(clippy::too_many_arguments)]
fn ipfp_snapshot_2d(
    grid: &Grid2d,
    tg: &TensorGrid,
    f: &[f64],
    prev: &[f64],
    fe: &[f64],
    ge: &[f64],
    eps: f64,
    k: usize,
) -> Snapshot2d {
    let n = grid.n;
    let lb: Vec<f64> = tg.b().iter().map(|v| v.ln()).collect();
    let mut grad = Vec::with_capacity(n * n);
    let mut phi = Vec::with_capacity(n * n);
    let mut z = vec![0.0; n * n];
    for (i, fe_i) in fe.iter().enumerate() {
        let p = grid.point(i);
        let mut mx = f64::NEG_INFINITY;
        for j in 0..n * n {
            z[j] = (ge[j] - tg.cost(i, j, 0.5)) / eps + lb[j];
            mx = mx.max(z[j]);
        }
        let (mut s, mut s1, mut s2) = (0.0, 0.0, 0.0);
        for (j, zj) in z.iter().enumerate() {
            let w = (zj - mx).exp();
            let q = grid.point(j);
            let (mut d1, mut d2) = (q[0] - p[0], q[1] - p[1]);
            if grid.domain == Domain2d::Torus {
                d1 -= d1.round();
                d2 -= d2.round();
            }
            s += w;
            s1 += w * (p[0] + d1);
            s2 += w * (p[1] + d2);
        }
        grad.push([s1 / s, s2 / s]);
        phi.push(0.5 * (p[0] * p[0] + p[1] * p[1]) - fe_i);
    }
    let rho: Vec<f64> = (0..n * n)
        .map(|i| ((prev[i] - fe[i]) / eps - f[i]).exp())
        .collect();
    let residual = rho
        .iter()
        .zip(f)
        .map(|(r, fi)| (fi + r.ln()).abs())
        .fold(0.0, f64::max);
    Snapshot2d {
        t: k as f64 * eps,
        phi,
        grad_phi: grad,
        rho,
        residual,
    }
}

/// 2-D catalogue (densities normalised to grid mean 1):
/// * `uniform`;
/// * `gauss:M1:M2:S11:S12:S22` — the Gaussian $N(M, S)$ (any positive definite $S$), restricted
///   to the box or wrapped (sum over the images $x + k$, $k\in\{-3..3\}^2$) on the torus;
/// * `mix:W:M1:M2:S11:S12:S22[:W:...]` — the mixture $\sum_i W_i N(M_i, S_i)$ (same restriction
///   or wrapping), groups of six numbers;
/// * `cos:A:K` — $e^{-f}\propto 1 + A\cos(2\pi Kx_1)\cos(2\pi Kx_2)$, $\lvert A\rvert<1$;
/// * `pushed:C:G` — the manufactured pair: $u^* = -\tfrac{C}{4\pi^2}\cos(2\pi x_1)\cos(2\pi x_2)$,
///   $\lvert C\rvert<1/2$ (then $I + \nabla^2u^*\succ0$), $T = x + \nabla u^*$ the Brenier map onto
///   the catalogue density `G` (`_` for `:`), $f = g\circ T - \log\det\nabla T$.
pub fn catalogue_2d(grid: &Grid2d, name: &str) -> Result<Vec<f64>, PmaError> {
    let n = grid.n;
    let parts: Vec<&str> = name.split(':').collect();
    let tau = std::f64::consts::TAU;
    let bad = |m: &str| PmaError::InvalidDensity(format!("catalogue entry '{name}': {m}"));
    let num = |s: &str| -> Result<f64, PmaError> {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(&format!("'{s}' is not a finite number")))
    };
    let periodic = grid.domain == Domain2d::Torus;
    let raw_at = |parts: &[&str], p: [f64; 2]| -> Result<f64, PmaError> {
        match parts {
            ["uniform"] => Ok(0.0),
            ["cos", a, k] => {
                let (a, k) = (num(a)?, num(k)?);
                if a.abs() >= 1.0 || k < 1.0 || k.fract() != 0.0 {
                    return Err(bad("needs |A| < 1 and an integer K >= 1"));
                }
                Ok(-(1.0 + a * (tau * k * p[0]).cos() * (tau * k * p[1]).cos()).ln())
            }
            ["gauss", rest @ ..] | ["mix", rest @ ..] => {
                let vals: Vec<f64> = rest.iter().map(|v| num(v)).collect::<Result<_, _>>()?;
                let comps: Vec<(f64, &[f64])> = if parts[0] == "gauss" {
                    if vals.len() != 5 {
                        return Err(bad("expected gauss:M1:M2:S11:S12:S22"));
                    }
                    vec![(1.0, &vals[..])]
                } else {
                    if vals.is_empty() || !vals.len().is_multiple_of(6) {
                        return Err(bad("expected mix:W:M1:M2:S11:S12:S22[:W:M1:M2:S11:S12:S22...]"));
                    }
                    vals.chunks(6).map(|c| (c[0], &c[1..])).collect()
                };
                let mut dens = 0.0;
                for (w, c) in comps {
                    let (s11, s12, s22) = (c[2], c[3], c[4]);
                    let det = s11 * s22 - s12 * s12;
                    if !(w > 0.0 && s11 > 0.0 && det > 0.0) {
                        return Err(bad("needs weights > 0 and positive definite covariances"));
                    }
                    dens += w * gaussian_2d(p, [c[0], c[1]], [s11, s12, s22], periodic);
                }
                if dens.is_nan() || dens <= 0.0 {
                    return Err(bad("the density underflows to 0 on the grid; widen it"));
                }
                Ok(-dens.ln())
            }
            _ => Err(bad(
                "unknown 2-D entry (expected uniform, cos:A:K, gauss:M1:M2:S11:S12:S22, mix:W:M1:M2:S11:S12:S22[:...] or pushed:C:G)",
            )),
        }
    };
    let raw: Vec<f64> = if parts[0] == "pushed" {
        if parts.len() != 3 {
            return Err(bad("expected pushed:C:G"));
        }
        let c = num(parts[1])?;
        if c.abs() >= 0.5 {
            return Err(bad("needs |C| < 1/2"));
        }
        let inner = parts[2].replace('_', ":");
        let inner: Vec<&str> = inner.split(':').collect();
        (0..n * n)
            .map(|k| {
                let p = grid.point(k);
                let (t, det) = manufactured_map(c, p);
                Ok(raw_at(&inner, t)? - det.ln())
            })
            .collect::<Result<_, PmaError>>()?
    } else {
        (0..n * n)
            .map(|k| raw_at(&parts, grid.point(k)))
            .collect::<Result<_, _>>()?
    };
    let mean = raw.iter().map(|v| (-v).exp()).sum::<f64>() / raw.len() as f64;
    Ok(raw.iter().map(|v| v + mean.ln()).collect())
}

/// The manufactured map $T = x + \nabla u^*$ of [`catalogue_2d`]'s `pushed` family and
/// $\det\nabla T$.
pub fn manufactured_map(c: f64, p: [f64; 2]) -> ([f64; 2], f64) {
    let tau = std::f64::consts::TAU;
    let (s1, c1) = (tau * p[0]).sin_cos();
    let (s2, c2) = (tau * p[1]).sin_cos();
    let t = [p[0] + c / tau * s1 * c2, p[1] + c / tau * c1 * s2];
    let (a, b, x) = (1.0 + c * c1 * c2, 1.0 + c * c1 * c2, -c * s1 * s2);
    (t, a * b - x * x)
}

/// The density of $N(m, S)$, $S = ((s_{11}, s_{12}), (s_{12}, s_{22}))$, at `p` (wrapped over the
/// images $p + k$, $k\in\{-3..3\}^2$, if `periodic`).
fn gaussian_2d(p: [f64; 2], m: [f64; 2], s: [f64; 3], periodic: bool) -> f64 {
    let det = s[0] * s[2] - s[1] * s[1];
    let (i11, i12, i22) = (s[2] / det, -s[1] / det, s[0] / det);
    let norm = 1.0 / (std::f64::consts::TAU * det.sqrt());
    let at = |d1: f64, d2: f64| {
        norm * (-0.5 * (i11 * d1 * d1 + 2.0 * i12 * d1 * d2 + i22 * d2 * d2)).exp()
    };
    let (d1, d2) = (p[0] - m[0], p[1] - m[1]);
    if !periodic {
        return at(d1, d2);
    }
    let mut sum = 0.0;
    for k1 in -3..=3 {
        for k2 in -3..=3 {
            sum += at(d1 + k1 as f64, d2 + k2 as f64);
        }
    }
    sum
}

/// $W_2(\rho_a,\rho_b)$ on a 2-D grid, **linearised** about the midpoint $\bar\rho = (\rho_a+\rho_b)/2$
/// (`theory/pma.md` §4.6): $W_2^2 = \lVert\rho_a-\rho_b\rVert^2_{\dot H^{-1}(\bar\rho)} + O(\lVert\rho_a-\rho_b\rVert^3)$
/// with $\lVert\sigma\rVert^2_{\dot H^{-1}(\bar\rho)} = \int\bar\rho\lvert\nabla\psi\rvert^2 = \int\psi\,\sigma$,
/// $-\nabla\cdot(\bar\rho\nabla\psi) = \sigma$ (Otto's metric tensor; Peyre 2018 for the bound). The
/// elliptic problem is the 5-point finite-volume scheme (face values of $\bar\rho$ averaged, periodic
/// on the torus, no flux through the box's walls), solved by faer's sparse LU with $\psi$ pinned at
/// one node. Second order in $h$; meant for nearby densities (the IPFP-vs-PMA gaps), not for
/// arbitrary pairs. Both inputs are normalised to grid mean 1 first.
pub fn wasserstein2_linearised(
    grid: &Grid2d,
    rho_a: &[f64],
    rho_b: &[f64],
) -> Result<f64, PmaError> {
    let n = grid.n;
    let m = n * n;
    let norm = |rho: &[f64], what: &str| -> Result<Vec<f64>, PmaError> {
        if rho.len() != m {
            return Err(PmaError::DimensionMismatch {
                what: format!("number of values of {what}"),
                expected: m,
                found: rho.len(),
            });
        }
        if let Some(k) = rho
            .iter()
            .position(|r| r.is_nan() || *r <= 0.0 || r.is_infinite())
        {
            return Err(PmaError::InvalidDensity(format!(
                "{what} must be finite and > 0, got {} at node {k}",
                rho[k]
            )));
        }
        let mean = rho.iter().sum::<f64>() / m as f64;
        Ok(rho.iter().map(|r| r / mean).collect())
    };
    let (a, b) = (norm(rho_a, "rho_a")?, norm(rho_b, "rho_b")?);
    let bar: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 0.5 * (x + y)).collect();
    let sigma: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let h = grid.h();
    let mut trip = Vec::with_capacity(5 * m);
    for i in 0..n {
        for j in 0..n {
            let k = i * n + j;
            if k == 0 {
                trip.push(Triplet::new(0, 0, 1.0));
                continue;
            }
            for (di, dj) in [(1isize, 0isize), (-1, 0), (0, 1), (0, -1)] {
                let (ii, jj) = (i as isize + di, j as isize + dj);
                let inside = (0..n as isize).contains(&ii) && (0..n as isize).contains(&jj);
                if !inside && grid.domain == Domain2d::Box {
                    continue; // no flux through the wall
                }
                let q = grid.idx(ii, jj);
                let c = 0.5 * (bar[k] + bar[q]) / (h * h);
                trip.push(Triplet::new(k, k, c));
                trip.push(Triplet::new(k, q, -c));
            }
        }
    }
    let failed = || PmaError::NonFiniteResult {
        what: "the linearised W2 (elliptic solve)".to_string(),
    };
    let mat =
        SparseColMat::<usize, f64>::try_new_from_triplets(m, m, &trip).map_err(|_| failed())?;
    let lu = mat.sp_lu().map_err(|_| failed())?;
    let mut psi = Mat::<f64>::from_fn(m, 1, |k, _| if k == 0 { 0.0 } else { sigma[k] });
    lu.solve_in_place(psi.as_mut());
    let w2sq: f64 = (0..m).map(|k| psi[(k, 0)] * sigma[k]).sum::<f64>() * h * h;
    if !w2sq.is_finite() {
        return Err(failed());
    }
    Ok(w2sq.max(0.0).sqrt())
}
