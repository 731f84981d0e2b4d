//! PMA and the seed's IPFP on the two-dimensional torus $\mathbb T^2 = [0,1)^2$
//! (`theory/pma.md` §4.6).
//!
//! Nodes $(x_i, y_j) = (i/n, j/n)$, flattened row-major (index $in + j$), $\varphi = \lvert x\rvert^2/2 + u$
//! with $u$ periodic. Centred differences: $D_{11}u$, $D_{22}u$ (three-point), $D_{12}u$ (the
//! four-corner cross difference), $D_1u$, $D_2u$; $H = I + D^2u$ and
//! $$\partial_tu = f - \mathcal Ig(x + Du) + \log\det H,$$
//! $\mathcal Ig$ the tensor 4×4-point periodic Lagrange interpolant of the nodal $g$. Formal order
//! $O(h^2)$. Explicit forward Euler only; the diagonal coefficient of the step is
//! $1 - 2\Delta t\,(a_{11}+a_{22})/h^2$ with $a = H^{-1}$, so the stated CFL bound is
//! $\Delta t\le\tfrac{h^2}{2}\min\det H/\operatorname{tr}H$, checked before every step. The cross
//! term makes the scheme monotone only where $\lvert a_{12}\rvert$ is small against $a_{11}$,
//! $a_{22}$ (not enforced). Convexity ($H_{11}>0$, $\det H>0$) is checked every step.

use super::PmaError;
use crate::sinkhorn::{Geometry, SinkhornParams, Stepper, TensorGrid};
use crate::Cost;

/// Largest $n$ of the 2-D IPFP ([`ipfp_2d`]; the barycentric projection is $O(n^4)$).
pub const MAX_IPFP_SIDE: usize = 128;

/// Largest $n$ of an $n\times n$ grid.
pub const MAX_SIDE: usize = 512;

/// An $n\times n$ grid of the torus $[0,1)^2$.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid2d {
    n: usize,
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
    /// $n\times n$ nodes, $4\le n\le$ [`MAX_SIDE`].
    pub fn new(n: usize) -> Result<Grid2d, PmaError> {
        if !(4..=MAX_SIDE).contains(&n) {
            return Err(PmaError::InvalidGrid(format!(
                "n must be between 4 and {MAX_SIDE} in 2-D, got {n}"
            )));
        }
        Ok(Grid2d { n })
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
        [
            (k / self.n) as f64 * self.h(),
            (k % self.n) as f64 * self.h(),
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

    #[inline]
    fn idx(&self, i: isize, j: isize) -> usize {
        let n = self.n as isize;
        (i.rem_euclid(n) * n + j.rem_euclid(n)) as usize
    }

    /// Periodic tensor 4-point Lagrange interpolation of nodal `v` at `(y1, y2)`.
    fn interp(&self, v: &[f64], y1: f64, y2: f64) -> f64 {
        let n = self.n as f64;
        let weights = |s: f64| -> (isize, [f64; 4]) {
            let j0 = s.floor() as isize - 1;
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
            )
        };
        let (i0, wi) = weights(y1 * n);
        let (j0, wj) = weights(y2 * n);
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

    /// $(H_{11}, H_{22}, H_{12}, \nabla\varphi)$ at node $(i,j)$.
    fn local(&self, u: &[f64], i: usize, j: usize) -> (f64, f64, f64, [f64; 2]) {
        let h = self.h();
        let (i, j) = (i as isize, j as isize);
        let at = |a: isize, b: isize| u[self.idx(i + a, j + b)];
        let c = at(0, 0);
        let h11 = 1.0 + (at(1, 0) - 2.0 * c + at(-1, 0)) / (h * h);
        let h22 = 1.0 + (at(0, 1) - 2.0 * c + at(0, -1)) / (h * h);
        let h12 = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4.0 * h * h);
        let g1 = i as f64 * h + (at(1, 0) - at(-1, 0)) / (2.0 * h);
        let g2 = j as f64 * h + (at(0, 1) - at(0, -1)) / (2.0 * h);
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

/// Solve the 2-D PMA on the torus by forward Euler from $\varphi_0 = \lvert x\rvert^2/2$ (module
/// docs). `t_end / dt` must be whole and `samples` must divide the number of steps.
pub fn solve_pma_2d(
    grid: &Grid2d,
    f: &[f64],
    g: &[f64],
    t_end: f64,
    dt: f64,
    samples: usize,
) -> Result<Vec<Snapshot2d>, PmaError> {
    let f = grid.check_density(f, "f", false)?;
    let g = grid.check_density(g, "g", false)?;
    let steps = super::grid::whole_steps(t_end, dt)?;
    if samples == 0 || (steps > 0 && !steps.is_multiple_of(samples)) {
        return Err(PmaError::InvalidStep(format!(
            "the {samples} output intervals must divide the {steps} steps"
        )));
    }
    let n = grid.n;
    let h = grid.h();
    let mut u = vec![0.0; n * n];
    let mut r = vec![0.0; n * n];
    let mut out = vec![grid.snapshot(&f, &g, &u, 0.0)];
    let every = (steps / samples).max(1);
    for step in 1..=steps {
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
        if step % every == 0 && out.len() <= samples {
            out.push(grid.snapshot(&f, &g, &u, step as f64 * dt));
        }
    }
    while out.len() <= samples {
        out.push(grid.snapshot(&f, &g, &u, t_end));
    }
    Ok(out)
}

/// The seed's IPFP on the 2-D torus grid through the engine's [`Stepper`] and the separable
/// periodic kernel (cost $d(x,y)^2/2$), as [`super::grid::ipfp`] in 1-D: $\varphi_k$, the exact
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
    let axis: Vec<f64> = (0..n).map(|i| i as f64 * h).collect();
    let a: Vec<f64> = f.iter().map(|v| h * h * (-v).exp()).collect();
    let b: Vec<f64> = g.iter().map(|v| h * h * (-v).exp()).collect();
    let axes = vec![axis.clone(), axis];
    let tg = TensorGrid::periodic(axes.clone(), axes, vec![1.0, 1.0], Some(a), Some(b), true)
        .map_err(|e| PmaError::InvalidGrid(e.to_string()))?;
    let params = SinkhornParams::new(eps).with_cost(Cost::HalfSqEuclidean);
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
            let d1 = q[0] - p[0];
            let d2 = q[1] - p[1];
            s += w;
            s1 += w * (p[0] + d1 - d1.round());
            s2 += w * (p[1] + d2 - d2.round());
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
            _ => Err(bad(
                "unknown 2-D entry (expected uniform, cos:A:K or pushed:C:G)",
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
