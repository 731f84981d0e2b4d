//! The Sinkhorn potential flow in the b-variable by the implicit resolvent
//! (theory/finite_flow.md §3; MATH.md §2).
//!
//! The flow $b'+Ab+p=0$, $p\in N_{\mathcal C}(b)$, $\mathcal C=\{Ka:a\ge0\}$,
//! $A=\frac2\varepsilon(M_V-M_V^*)$ skew-adjoint in $H_c$, is discretised by the resolvent
//! $b_{k+1}=J_hb_k=(I+hA+N_{\mathcal C})^{-1}b_k$. Writing $b_{k+1}=Ka$, one step is the LCP
//! $a\ge0$, $w=Ma-b_k\ge0$, $a^\top w=0$ with
//! $$M=(I+hA)K=K+\tfrac{2h}{\varepsilon}\bigl(\mathrm{diag}(V)K-K\,\mathrm{diag}(V)\bigr),$$
//! which needs no $K^{-1}$; then $\mu_{k+1}=a\odot Ka\ge0$ exactly. The coefficients $a$ are
//! stored, never $b$ ($b=Ka$ is recomputed by one product). $M$ does not depend on the step,
//! and the LU of $M_{SS}$ is cached for the support $S$, so a step with an unchanged support
//! costs $O(N^2)$.
//!
//! Properties measured by the tests: $\mu_k\ge0$; the mass identity
//! $\lVert b_{k+1}\rVert_H^2=\lVert b_k\rVert_H^2-\lVert b_{k+1}-b_k\rVert_H^2$; firm
//! non-expansiveness of $J_h$; $\sum(V-\min V)\mu_k$ non-increasing.

use faer::Mat;

use super::error::{check_finite, check_len, check_probability, FiniteError};
use super::lcp::{LcpMethod, LcpParams, LcpSolution, LcpSolver, Product};
use super::rkhs::{b_map, BMapParams};
use super::space::{dot, FiniteSpace, Kernel, KernelFactors};

/// Largest number of stored values (steps + 1) × N of a trajectory.
pub const MAX_TRAJECTORY_ENTRIES: u128 = 50_000_000;

/// The resolvent matrix $M=K+\frac{2h}{\varepsilon}(\mathrm{diag}(V)K-K\mathrm{diag}(V))$,
/// i.e. $M_{ij}=K_{ij}\bigl(1+\frac{2h}{\varepsilon}(V_i-V_j)\bigr)$.
pub fn resolvent_matrix(kernel: &Kernel, v: &[f64], h: f64) -> Mat<f64> {
    let n = kernel.len();
    let c = 2.0 * h / kernel.eps();
    Mat::from_fn(n, n, |i, j| kernel.get(i, j) * (1.0 + c * (v[i] - v[j])))
}

/// $a\mapsto Ma=Ka+c\,(V'\odot Ka-K(V'\odot a))$, $c=2h/\varepsilon$, by the tensor factors of
/// $K$ (theory/finite_flow.md §8e). $V'=V-(\max V+\min V)/2$ gives the same $M$ (a constant
/// shift of $V$ cancels in the commutator) and halves the terms whose difference is taken. The
/// rounding error, about $u\,c\max\lvert V'\rvert\,(K\lvert a\rvert)_i$, is still larger than the
/// dense product's, whose factors $1+c(V_i-V_j)$ only involve nearby points: the solver uses this
/// product for intermediate iterates only.
fn separable_product(f: KernelFactors, v: &[f64], c: f64) -> Product {
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &t| {
            (l.min(t), h.max(t))
        });
    let mid = 0.5 * (lo + hi);
    let v: Vec<f64> = v.iter().map(|t| t - mid).collect();
    // two products K_x Z K_y of N (n_x + n_y) multiply-adds each
    let columns = 2 * f.axes_sum();
    let apply = Box::new(move |a: &[f64]| {
        let ka = f.apply(a);
        let va: Vec<f64> = v.iter().zip(a).map(|(x, y)| x * y).collect();
        let kva = f.apply(&va);
        ka.iter()
            .zip(&kva)
            .zip(&v)
            .map(|((&k, &kv), &vi)| k + c * (vi * k - kv))
            .collect()
    });
    Product { apply, columns }
}

/// One resolvent map $J_h$ with its cached factorisations.
pub struct Resolvent<'k> {
    kernel: &'k Kernel,
    solver: LcpSolver,
    h: f64,
    support: Option<Vec<usize>>,
    params: LcpParams,
}

impl<'k> Resolvent<'k> {
    /// Prepare $J_h$ for the potential `v`.
    ///
    /// # Errors
    /// `v` of the wrong length or non-finite, `h` not finite and positive.
    pub fn new(
        kernel: &'k Kernel,
        v: &[f64],
        h: f64,
        params: LcpParams,
    ) -> Result<Resolvent<'k>, FiniteError> {
        check_len("length of V vs number of points", kernel.len(), v.len())?;
        check_finite(v, "V")?;
        if !(h.is_finite() && h > 0.0) {
            return Err(FiniteError::InvalidParameter {
                name: "dt",
                message: format!("must be finite and > 0, got {h}"),
            });
        }
        if !(params.tol.is_finite() && params.tol > 0.0) {
            return Err(FiniteError::InvalidParameter {
                name: "lcp.tol",
                message: format!("must be finite and > 0, got {}", params.tol),
            });
        }
        if !(0.0..=1.0).contains(&params.change_ratio) {
            return Err(FiniteError::InvalidParameter {
                name: "lcp.change_ratio",
                message: format!("must lie in [0, 1], got {}", params.change_ratio),
            });
        }
        let mut solver = LcpSolver::new(resolvent_matrix(kernel, v, h));
        if let Some(f) = kernel.factors() {
            solver = solver.with_product(separable_product(f.clone(), v, 2.0 * h / kernel.eps()));
        }
        Ok(Resolvent {
            kernel,
            solver,
            h,
            support: None,
            params,
        })
    }

    /// The step $h$.
    pub fn h(&self) -> f64 {
        self.h
    }

    /// LU factorisations done so far.
    pub fn factorisations(&self) -> usize {
        self.solver.factorisations()
    }

    /// Of [`Resolvent::factorisations`], those of the complement path
    /// ([`LcpSolver::complement_factorisations`]).
    pub fn complement_factorisations(&self) -> usize {
        self.solver.complement_factorisations()
    }

    /// Complement solves replaced by a fresh LU ([`LcpSolver::complement_fallbacks`]).
    pub fn complement_fallbacks(&self) -> usize {
        self.solver.complement_fallbacks()
    }

    /// $J_hb$ for any $b$ (the coefficients $a$ of $J_hb=Ka$, with $w$ and the residual),
    /// warm-started from the support of the previous call.
    ///
    /// # Errors
    /// [`FiniteError::LcpNotSolved`] with the best residual (step index 0 here).
    pub fn apply(&mut self, b: &[f64]) -> Result<LcpSolution, FiniteError> {
        self.apply_step(b, 0)
    }

    fn apply_step(&mut self, b: &[f64], step: usize) -> Result<LcpSolution, FiniteError> {
        let sol = self
            .solver
            .solve(b, self.support.as_deref(), &self.params)
            .map_err(|f| FiniteError::LcpNotSolved {
                step,
                residual: f.residual,
                tol: self.params.tol,
                path: f.path,
            })?;
        self.support = Some(sol.support.clone());
        Ok(sol)
    }

    /// One flow step from coefficients $a_k$: $b_k=Ka_k$, then $a_{k+1}$.
    pub fn step(&mut self, a_k: &[f64], step: usize) -> Result<LcpSolution, FiniteError> {
        let b = crate::linalg::flush_subnormals(|| self.kernel.apply(a_k));
        self.apply_step(&b, step)
    }
}

/// Parameters of [`resolvent_flow`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowParams {
    /// Time step $h>0$.
    pub dt: f64,
    /// Number of steps.
    pub steps: usize,
    /// LCP solver parameters.
    pub lcp: LcpParams,
    /// The b-map of $\mu_0$.
    pub bmap: BMapParams,
}

/// A trajectory of the resolvent flow. Row $k$ is the state after $k$ steps ($t_k=kh$).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowOutput {
    /// $t_k=kh$.
    pub t: Vec<f64>,
    /// $\mu_k=a_k\odot Ka_k$ (not renormalised: $\sum\mu_k$ decreases, MATH.md §2).
    pub mu: Vec<Vec<f64>>,
    /// The coefficients $a_k$ ($b_k=Ka_k$).
    pub a: Vec<Vec<f64>>,
    /// $E_k=\sum_iV_i\mu_{k,i}$.
    pub energy: Vec<f64>,
    /// $\sum_i\mu_{k,i}=\lVert b_k\rVert_H^2$.
    pub mass: Vec<f64>,
    /// Scale-free KKT residual of step $k$ (0 at $k=0$).
    pub kkt_residual: Vec<f64>,
    /// LCP method of each step (`None` at $k=0$).
    pub method: Vec<Option<LcpMethod>>,
    /// Condition estimate of $K$.
    pub cond_k: f64,
    /// Relative error $\max_i\lvert\mu_{0,i}-(a_0\odot Ka_0)_i\rvert$ of the initial b-map.
    pub initial_error: f64,
    /// LU factorisations done over the run.
    pub factorisations: usize,
}

/// The coefficients $a_0=\mu_0\oslash B(\mu_0)$ of an initial probability.
pub fn initial_coefficients(
    space: &FiniteSpace,
    kernel: &Kernel,
    mu0: &[f64],
    bmap: &BMapParams,
) -> Result<(Vec<f64>, f64), FiniteError> {
    check_probability(mu0, space.len(), "mu0")?;
    let bm = b_map(space, kernel.eps(), mu0, bmap)?;
    let mu_back = super::rkhs::mu_from_a(kernel, &bm.a);
    let err = mu0
        .iter()
        .zip(&mu_back)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    Ok((bm.a, err))
}

/// Check a trajectory size before allocating it.
pub(crate) fn check_trajectory_size(steps: usize, n: usize) -> Result<(), FiniteError> {
    let needed = (steps as u128 + 1) * n as u128;
    if needed > MAX_TRAJECTORY_ENTRIES {
        return Err(FiniteError::TooLarge {
            what: format!("trajectory of {steps} steps x {n} points"),
            needed,
            limit: MAX_TRAJECTORY_ENTRIES,
        });
    }
    Ok(())
}

/// The input checks of [`resolvent_flow`], [`reflected_flow`] and the double-double flow (before
/// any allocation).
pub(crate) fn check_flow_input(
    space: &FiniteSpace,
    v: &[f64],
    params: &FlowParams,
) -> Result<(), FiniteError> {
    check_len("length of V vs number of points", space.len(), v.len())?;
    check_finite(v, "V")?;
    check_trajectory_size(params.steps, space.len())
}

/// Fills a [`FlowOutput`] row by row from the coefficients $a_k$ (shared by [`resolvent_flow`]
/// and [`reflected_flow`]).
struct Recorder<'a> {
    kernel: &'a Kernel,
    v: &'a [f64],
    dt: f64,
    out: FlowOutput,
}

impl<'a> Recorder<'a> {
    fn new(kernel: &'a Kernel, v: &'a [f64], params: &FlowParams, initial_error: f64) -> Self {
        let rows = params.steps + 1;
        Recorder {
            kernel,
            v,
            dt: params.dt,
            out: FlowOutput {
                t: Vec::with_capacity(rows),
                mu: Vec::with_capacity(rows),
                a: Vec::with_capacity(rows),
                energy: Vec::with_capacity(rows),
                mass: Vec::with_capacity(rows),
                kkt_residual: Vec::with_capacity(rows),
                method: Vec::with_capacity(rows),
                cond_k: kernel.cond(),
                initial_error,
                factorisations: 0,
            },
        }
    }

    /// Append row $k$: $\mu_k=a\odot Ka$, its energy and mass, the residual and the method.
    fn push(&mut self, k: usize, a: Vec<f64>, r: f64, m: Option<LcpMethod>) {
        let out = &mut self.out;
        let b = crate::linalg::flush_subnormals(|| self.kernel.apply(&a));
        let mu: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
        out.t.push(k as f64 * self.dt);
        out.energy.push(dot(self.v, &mu));
        out.mass.push(mu.iter().sum());
        out.mu.push(mu);
        out.a.push(a);
        out.kkt_residual.push(r);
        out.method.push(m);
    }

    /// The coefficients of the last row.
    fn last_a(&self) -> &[f64] {
        self.out.a.last().expect("row 0 pushed")
    }

    fn finish(mut self, factorisations: usize) -> FlowOutput {
        self.out.factorisations = factorisations;
        self.out
    }
}

/// Run the resolvent flow from the probability `mu0` with potential `v`.
///
/// # Errors
/// Bad input (lengths, non-finite, `mu0` not a probability, `dt <= 0`, size), or a step whose
/// LCP is not solved to `params.lcp.tol` ([`FiniteError::LcpNotSolved`]).
pub fn resolvent_flow(
    space: &FiniteSpace,
    kernel: &Kernel,
    v: &[f64],
    mu0: &[f64],
    params: &FlowParams,
) -> Result<FlowOutput, FiniteError> {
    check_flow_input(space, v, params)?;
    let mut res = Resolvent::new(kernel, v, params.dt, params.lcp)?;
    let (a0, initial_error) = initial_coefficients(space, kernel, mu0, &params.bmap)?;
    let mut rec = Recorder::new(kernel, v, params, initial_error);
    rec.push(0, a0, 0.0, None);
    for k in 1..=params.steps {
        let sol = res.step(rec.last_a(), k)?;
        super::error::check_interrupt(k)?;
        rec.push(k, sol.a, sol.residual, Some(sol.method));
    }
    Ok(rec.finish(res.factorisations()))
}

/// The reflected resolvent (implicit midpoint / Crank–Nicolson on the active face), a
/// second-order scheme (theory/finite_flow.md §3b):
/// $$b_{k+1/2}=J_{h/2}b_k,\qquad\tilde b=2b_{k+1/2}-b_k,\qquad b_{k+1}=P_{\mathcal C}\tilde b .$$
/// Without active constraints $2J_{h/2}-I=(I-\tfrac h2A)(I+\tfrac h2A)^{-1}$ is the Cayley
/// transform of the skew-adjoint $A$, unitary in $H$: the mass $\lVert b\rVert_H^2$ is conserved
/// exactly (the implicit resolvent loses $O(h)$), and the step is the implicit midpoint rule
/// (order 2). The reflection can leave the cone; $P_{\mathcal C}$, the $H$-projection onto
/// $\{Ka:a\ge0\}$, is the LCP $a\ge0$, $Ka-\tilde b\ge0$, $a^\top(Ka-\tilde b)=0$ (the resolvent
/// with $h=0$), which only removes mass. Row $k$ of the output reports the larger of the two
/// LCP residuals of step $k$ and the method of the half step.
///
/// # Errors
/// As [`resolvent_flow`].
pub fn reflected_flow(
    space: &FiniteSpace,
    kernel: &Kernel,
    v: &[f64],
    mu0: &[f64],
    params: &FlowParams,
) -> Result<FlowOutput, FiniteError> {
    check_flow_input(space, v, params)?;
    let mut half = Resolvent::new(kernel, v, 0.5 * params.dt, params.lcp)?;
    let mut proj = LcpSolver::new(kernel.matrix().clone());
    let mut proj_support: Option<Vec<usize>> = None;
    let (a0, initial_error) = initial_coefficients(space, kernel, mu0, &params.bmap)?;
    let mut rec = Recorder::new(kernel, v, params, initial_error);
    rec.push(0, a0, 0.0, None);
    for k in 1..=params.steps {
        let a_k = rec.last_a();
        super::error::check_interrupt(k)?;
        let b_k = kernel.apply(a_k);
        let mid = half.apply_step(&b_k, k)?;
        let kb = kernel.apply(&mid.a);
        let reflected: Vec<f64> = kb.iter().zip(&b_k).map(|(x, y)| 2.0 * x - y).collect();
        let p = proj
            .solve(&reflected, proj_support.as_deref(), &params.lcp)
            .map_err(|f| FiniteError::LcpNotSolved {
                step: k,
                residual: f.residual,
                tol: params.lcp.tol,
                path: format!("projection: {}", f.path),
            })?;
        proj_support = Some(p.support.clone());
        rec.push(k, p.a, mid.residual.max(p.residual), Some(mid.method));
    }
    Ok(rec.finish(half.factorisations() + proj.factorisations()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cost;

    /// The tensor-grid product is the product by the dense resolvent matrix up to rounding, on a
    /// non-square grid (a transposed layout would fail) with the half-squared cost.
    #[test]
    fn separable_product_matches_the_dense_matrix() {
        let space =
            FiniteSpace::grid_2d((-1.0, 1.0, 7), (0.0, 3.0, 11), Cost::HalfSqEuclidean).unwrap();
        let n = space.len();
        let eps = 2.0 * space.min_dist2();
        let kernel = Kernel::new(&space, eps, &Default::default()).unwrap();
        let v: Vec<f64> = (0..n)
            .map(|i| {
                let p = space.point(i);
                (p[0] * p[0] - 0.5).powi(2) + 0.3 * p[1]
            })
            .collect();
        let a: Vec<f64> = (0..n)
            .map(|i| ((i * 37 % 17) as f64 - 5.0).max(0.0))
            .collect();
        let h = 0.05;
        let m = resolvent_matrix(&kernel, &v, h);
        let dense = super::super::space::matvec(&m, &a);
        let f = kernel
            .factors()
            .expect("a 2-D grid has tensor factors")
            .clone();
        let fast = (separable_product(f.clone(), &v, 2.0 * h / eps).apply)(&a);
        let norm_m = (0..n)
            .map(|i| (0..n).map(|j| m[(i, j)].abs()).sum::<f64>())
            .fold(0.0, f64::max);
        let amax = a.iter().cloned().fold(0.0, f64::max);
        let dev = dense
            .iter()
            .zip(&fast)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        // rounding of two short sums and of the commutator's difference: a few ulps of the scale
        assert!(dev <= 1e-14 * norm_m * amax, "deviation {dev:e}");
        let kd = kernel.apply(&a);
        let kf = f.apply(&a);
        let kdev = kd
            .iter()
            .zip(&kf)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let kmax = kd.iter().cloned().fold(0.0, f64::max);
        assert!(kdev <= 1e-15 * kmax, "kernel deviation {kdev:e}");
    }
}
