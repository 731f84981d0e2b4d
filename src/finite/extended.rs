//! The double-double path (theory/finite_flow.md §6b): the Gibbs kernel, its Cholesky
//! factorisation and condition estimate, and the resolvent LCP in `faer::fx128` (a double-double,
//! unit round-off $u_{dd}\approx2.5\cdot10^{-32}$), so that runs past the double-precision safe
//! range are still certified.
//!
//! Everything the double path does is repeated with 106-bit significands: $C_{ij}$ from
//! coordinate differences and $K_{ij}=e^{-C_{ij}/\varepsilon}$ in double-double, the condition
//! estimate by power / inverse iteration, the active-set LCP on $\min(a,w)=0$ (after a cycle,
//! Murty's least-index principal pivoting, finite for P-matrices) with LU
//! factorisations of $M_{SS}$ in double-double, and the scale-free KKT residual evaluated in
//! double-double. The default limit is $\mathrm{cond}(K)\le10^{26}$ (the same margin
//! $10^{-6}/u$ as the double path's $10^{10}$): by the grid law
//! $\mathrm{cond}(K)\approx(e^{\pi^2s/4}/2)^d$ this is $s\le24.4$ in 1-D and $s\le12.4$ in 2-D
//! (double: 9.6 and 4.9). The initial coefficients come from the double-precision b-map
//! (relative accuracy $10^{-13}$; exact for a Dirac), so the path certifies the *steps*, not
//! $B(\mu_0)$.

use std::collections::HashSet;

use faer::linalg::solvers::Solve;
use faer::{fx128, Col, Mat, Side};

use super::error::FiniteError;
use super::flow::{check_flow_input, initial_coefficients, FlowOutput, FlowParams};
use super::lcp::{LcpMethod, LcpParams, LcpSolver};
use super::space::{check_eps, largest_eps_within, FiniteSpace, Kernel, MAX_POINTS};

/// Default limit of the double-double path on the condition estimate of $K$: $10^{26}$.
pub const DD_MAX_CONDITION: f64 = 1e26;

/// Largest number of points of the double-double path (its $O(N^3)$ factorisations run at
/// about a twentieth of the double speed).
pub const DD_MAX_POINTS: usize = 600;

type Dd = fx128;

fn dd(x: f64) -> Dd {
    Dd::from(x)
}

/// The Gibbs kernel in double-double, factorised, with its condition estimate.
pub struct ExtendedKernel {
    eps: f64,
    k: Mat<Dd>,
    cond: f64,
}

impl std::fmt::Debug for ExtendedKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtendedKernel")
            .field("n", &self.k.nrows())
            .field("eps", &self.eps)
            .field("cond", &self.cond)
            .finish()
    }
}

fn gibbs_dd(space: &FiniteSpace, eps: f64) -> Mat<Dd> {
    let n = space.len();
    let d = space.dim();
    let kappa = dd(space.cost().factor());
    let inv = Dd::ONE / dd(eps);
    Mat::from_fn(n, n, |i, j| {
        let mut c = Dd::ZERO;
        for k in 0..d {
            let t = dd(space.point(i)[k]) - dd(space.point(j)[k]);
            c += t * t;
        }
        (-(kappa * c * inv)).exp()
    })
}

fn norm2(v: &Col<Dd>) -> Dd {
    let mut s = Dd::ZERO;
    for i in 0..v.nrows() {
        s += v[i] * v[i];
    }
    s.sqrt()
}

fn dot_dd(a: &Col<Dd>, b: &Col<Dd>) -> Dd {
    let mut s = Dd::ZERO;
    for i in 0..a.nrows() {
        s += a[i] * b[i];
    }
    s
}

/// Condition estimate in double-double (as the double path: 40 power + 40 inverse iterations).
fn factor_dd(k: &Mat<Dd>) -> f64 {
    let n = k.nrows();
    let Ok(llt) = k.llt(Side::Lower) else {
        return f64::INFINITY;
    };
    let start = |i: usize| {
        let sgn = if i.is_multiple_of(2) { 1.0 } else { -1.0 };
        sgn + 0.3 * ((i as f64 * 12.9898).sin() * 43758.5453).fract()
    };
    let mut v = Col::<Dd>::from_fn(n, |i| dd(1.0 + 0.1 * start(i)));
    let mut lmax = Dd::ZERO;
    for _ in 0..40 {
        let nv = norm2(&v);
        v = Col::from_fn(n, |i| v[i] / nv);
        let w: Col<Dd> = k * &v;
        lmax = dot_dd(&v, &w);
        v = w;
    }
    let mut v = Col::<Dd>::from_fn(n, |i| dd(start(i)));
    let mut inv_lmin = Dd::ZERO;
    for _ in 0..40 {
        let nv = norm2(&v);
        v = Col::from_fn(n, |i| v[i] / nv);
        let w = llt.solve(&v);
        inv_lmin = dot_dd(&v, &w);
        v = w;
    }
    let c = (lmax * inv_lmin).0.abs();
    if c.is_finite() {
        c
    } else {
        f64::INFINITY
    }
}

/// The largest eps whose double-double condition estimate is at most `limit` (bisection in
/// $\log\varepsilon$ to 1%, started from the grid law).
pub fn largest_safe_eps_dd(space: &FiniteSpace, limit: f64) -> f64 {
    largest_eps_within(space, limit, |e| factor_dd(&gibbs_dd(space, e)))
}

impl ExtendedKernel {
    /// Build $K$ in double-double and check its condition estimate against `max_condition`
    /// (range $[1, 10^{30}]$; [`DD_MAX_CONDITION`] by default).
    ///
    /// # Errors
    /// eps out of range, more than [`DD_MAX_POINTS`] points, or
    /// [`FiniteError::IllConditioned`] naming the largest safe eps of the double-double path.
    pub fn new(
        space: &FiniteSpace,
        eps: f64,
        max_condition: f64,
    ) -> Result<ExtendedKernel, FiniteError> {
        check_eps(eps)?;
        if space.len() > DD_MAX_POINTS.min(MAX_POINTS) {
            return Err(FiniteError::TooLarge {
                what: format!("double-double path with {} points", space.len()),
                needed: space.len() as u128,
                limit: DD_MAX_POINTS as u128,
            });
        }
        if !(max_condition.is_finite() && (1.0..=1e30).contains(&max_condition)) {
            return Err(FiniteError::InvalidParameter {
                name: "max_condition",
                message: format!(
                    "must lie in [1, 1e30] for the double-double path, got {max_condition}"
                ),
            });
        }
        let k = gibbs_dd(space, eps);
        let cond = factor_dd(&k);
        if cond <= max_condition {
            Ok(ExtendedKernel { eps, k, cond })
        } else {
            Err(FiniteError::IllConditioned {
                eps,
                cond,
                limit: max_condition,
                safe_eps: largest_safe_eps_dd(space, max_condition),
                chol: " in double-double".into(),
            })
        }
    }
    /// The condition estimate.
    pub fn cond(&self) -> f64 {
        self.cond
    }
    /// $\varepsilon$.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

fn matvec_dd(a: &Mat<Dd>, x: &[Dd]) -> Vec<Dd> {
    let n = a.nrows();
    let mut y = vec![Dd::ZERO; n];
    for (j, &xj) in x.iter().enumerate() {
        if xj == Dd::ZERO {
            continue;
        }
        for (i, yi) in y.iter_mut().enumerate() {
            *yi += a[(i, j)] * xj;
        }
    }
    y
}

/// Scale-free KKT residual (as [`super::kkt_residual`]) evaluated in double-double.
fn kkt_dd(a: &[Dd], w: &[Dd], b: &[Dd], norm_m: Dd) -> f64 {
    let absmax = |v: &[Dd]| {
        v.iter()
            .map(|t| t.abs())
            .fold(Dd::ZERO, |m, t| if t > m { t } else { m })
    };
    let amax = absmax(a);
    let sa = if amax > Dd::ZERO { amax } else { Dd::ONE };
    let sw = norm_m * amax + absmax(b);
    let sw = if sw > Dd::ZERO { sw } else { Dd::ONE };
    a.iter()
        .zip(w)
        .map(|(&x, &y)| {
            let (p, q) = (x / sa, y / sw);
            (if p < q { p } else { q }).abs().0
        })
        .fold(0.0, f64::max)
}

/// The resolvent flow of [`super::resolvent_flow`] with the kernel algebra and the LCP in
/// double-double. Each step starts the double-double active set from the support found by the
/// double chain on the rounded problem; after a cycle it switches to least-index pivoting. The
/// output is rounded to double; `kkt_residual` is evaluated in double-double.
///
/// # Errors
/// As [`super::resolvent_flow`].
pub fn resolvent_flow_dd(
    space: &FiniteSpace,
    kernel: &ExtendedKernel,
    v: &[f64],
    mu0: &[f64],
    params: &FlowParams,
) -> Result<FlowOutput, FiniteError> {
    let n = space.len();
    let a0 = dd_initial(space, kernel, v, mu0, params)?;
    let c = dd(2.0 * params.dt / kernel.eps);
    let vd: Vec<Dd> = v.iter().map(|&x| dd(x)).collect();
    let mut lcp = DdLcp::new(Mat::from_fn(n, n, |i, j| {
        kernel.k[(i, j)] * (Dd::ONE + c * (vd[i] - vd[j]))
    }));
    let mut a: Vec<Dd> = a0.iter().map(|&x| dd(x)).collect();
    let mut out = DdRecorder::new(kernel, &vd, params.dt);
    out.push(0, &a, 0.0);
    out.set_initial_error(mu0);
    let mut support: Vec<usize> = (0..n).filter(|&i| a[i] > Dd::ZERO).collect();
    for step in 1..=params.steps {
        let b = matvec_dd(&kernel.k, &a);
        super::error::check_interrupt(step)?;
        let (a_new, r) = lcp.solve(&b, &support, step, &params.lcp, "")?;
        support = (0..n).filter(|&i| a_new[i] > Dd::ZERO).collect();
        a = a_new;
        out.push(step, &a, r);
    }
    Ok(out.finish(lcp.factorisations))
}

/// The reflected resolvent of [`super::reflected_flow`] (theory/finite_flow.md §3b) in
/// double-double: $b_{k+1/2}=J_{h/2}b_k$, $\tilde b=2b_{k+1/2}-b_k$, $b_{k+1}=P_{\mathcal C}\tilde b$,
/// both LCPs (the half step with $M_{h/2}$, the projection with $M=K$) solved as in
/// [`resolvent_flow_dd`] and the reflection formed in double-double. Row $k$ reports the larger
/// of the two KKT residuals, evaluated in double-double.
///
/// # Errors
/// As [`resolvent_flow_dd`].
pub fn reflected_flow_dd(
    space: &FiniteSpace,
    kernel: &ExtendedKernel,
    v: &[f64],
    mu0: &[f64],
    params: &FlowParams,
) -> Result<FlowOutput, FiniteError> {
    let n = space.len();
    let a0 = dd_initial(space, kernel, v, mu0, params)?;
    let c = dd(params.dt / kernel.eps); // 2 (h/2) / eps
    let vd: Vec<Dd> = v.iter().map(|&x| dd(x)).collect();
    let mut half = DdLcp::new(Mat::from_fn(n, n, |i, j| {
        kernel.k[(i, j)] * (Dd::ONE + c * (vd[i] - vd[j]))
    }));
    let mut proj = DdLcp::new(kernel.k.clone());
    let mut a: Vec<Dd> = a0.iter().map(|&x| dd(x)).collect();
    let mut out = DdRecorder::new(kernel, &vd, params.dt);
    out.push(0, &a, 0.0);
    out.set_initial_error(mu0);
    let mut half_support: Vec<usize> = (0..n).filter(|&i| a[i] > Dd::ZERO).collect();
    let mut proj_support = half_support.clone();
    for step in 1..=params.steps {
        let b_k = matvec_dd(&kernel.k, &a);
        super::error::check_interrupt(step)?;
        let (mid, r1) = half.solve(&b_k, &half_support, step, &params.lcp, "half step: ")?;
        half_support = (0..n).filter(|&i| mid[i] > Dd::ZERO).collect();
        let kb = matvec_dd(&kernel.k, &mid);
        let reflected: Vec<Dd> = kb
            .iter()
            .zip(&b_k)
            .map(|(&x, &y)| dd(2.0) * x - y)
            .collect();
        let (a_new, r2) =
            proj.solve(&reflected, &proj_support, step, &params.lcp, "projection: ")?;
        proj_support = (0..n).filter(|&i| a_new[i] > Dd::ZERO).collect();
        a = a_new;
        out.push(step, &a, r1.max(r2));
    }
    Ok(out.finish(half.factorisations + proj.factorisations))
}

/// Check the input of a double-double flow and return $a_0$ from the double b-map (the double
/// kernel is only used for that, unchecked).
fn dd_initial(
    space: &FiniteSpace,
    kernel: &ExtendedKernel,
    v: &[f64],
    mu0: &[f64],
    params: &FlowParams,
) -> Result<Vec<f64>, FiniteError> {
    let n = space.len();
    check_flow_input(space, v, params)?;
    if !(params.dt.is_finite() && params.dt > 0.0) {
        return Err(FiniteError::InvalidParameter {
            name: "dt",
            message: format!("must be finite and > 0, got {}", params.dt),
        });
    }
    let k64 = Kernel::new(
        space,
        kernel.eps,
        &super::KernelParams {
            max_condition: 4.5e15,
        },
    )
    .ok();
    Ok(match &k64 {
        Some(k) => initial_coefficients(space, k, mu0, &params.bmap)?.0,
        None => {
            let bm = super::b_map(space, kernel.eps, mu0, &params.bmap)?;
            super::check_probability(mu0, n, "mu0")?;
            bm.a
        }
    })
}

/// Rows of a double-double trajectory: $\mu_k=a\odot Ka$, energy and mass in double-double,
/// rounded to double.
struct DdRecorder<'a> {
    kernel: &'a ExtendedKernel,
    vd: &'a [Dd],
    dt: f64,
    out: FlowOutput,
}

impl<'a> DdRecorder<'a> {
    fn new(kernel: &'a ExtendedKernel, vd: &'a [Dd], dt: f64) -> Self {
        DdRecorder {
            kernel,
            vd,
            dt,
            out: FlowOutput {
                t: Vec::new(),
                mu: Vec::new(),
                a: Vec::new(),
                energy: Vec::new(),
                mass: Vec::new(),
                kkt_residual: Vec::new(),
                method: Vec::new(),
                cond_k: kernel.cond,
                initial_error: 0.0,
                factorisations: 0,
            },
        }
    }

    fn push(&mut self, k: usize, a: &[Dd], r: f64) {
        let out = &mut self.out;
        let b = matvec_dd(&self.kernel.k, a);
        let mu: Vec<Dd> = a.iter().zip(&b).map(|(&x, &y)| x * y).collect();
        let mass = mu.iter().fold(Dd::ZERO, |s, &t| s + t);
        let e = mu
            .iter()
            .zip(self.vd)
            .fold(Dd::ZERO, |s, (&x, &y)| s + x * y);
        out.t.push(k as f64 * self.dt);
        out.mu.push(mu.iter().map(|t| t.0).collect());
        out.a.push(a.iter().map(|t| t.0).collect());
        out.energy.push(e.0);
        out.mass.push(mass.0);
        out.kkt_residual.push(r);
        out.method.push((k > 0).then_some(LcpMethod::ActiveSet));
    }

    fn set_initial_error(&mut self, mu0: &[f64]) {
        self.out.initial_error = self.out.mu[0]
            .iter()
            .zip(mu0)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
    }

    fn finish(mut self, factorisations: usize) -> FlowOutput {
        self.out.factorisations = factorisations;
        self.out
    }
}

/// The LCP $a\ge0$, $w=Ma-b\ge0$, $a^\top w=0$ in double-double for a fixed P-matrix $M$, with
/// the LU of the last support cached and the double chain on the rounded problem as a guide.
struct DdLcp {
    m: Mat<Dd>,
    norm_m: Dd,
    guide: LcpSolver,
    cache: Option<(Vec<usize>, faer::linalg::solvers::PartialPivLu<Dd>)>,
    factorisations: usize,
}

impl DdLcp {
    fn new(m: Mat<Dd>) -> DdLcp {
        let n = m.nrows();
        let norm_m = (0..n)
            .map(|i| (0..n).fold(Dd::ZERO, |s, j| s + m[(i, j)].abs()))
            .fold(Dd::ZERO, |a, b| if b > a { b } else { a });
        let guide = LcpSolver::new(Mat::from_fn(n, n, |i, j| m[(i, j)].0));
        DdLcp {
            m,
            norm_m,
            guide,
            cache: None,
            factorisations: 0,
        }
    }

    /// Solve for `b`, warm-started from `support`; returns $a$ and the KKT residual evaluated in
    /// double-double. `what` prefixes the failure path.
    fn solve(
        &mut self,
        b: &[Dd],
        support: &[usize],
        step: usize,
        params: &LcpParams,
        what: &str,
    ) -> Result<(Vec<Dd>, f64), FiniteError> {
        let n = b.len();
        let m = &self.m;
        // the start support: the double-precision chain (active set, interior point,
        // Fischer–Burmeister, Lemke) on the rounded problem; the double-double iteration then certifies or corrects
        let b64: Vec<f64> = b.iter().map(|t| t.0).collect();
        let guess = self
            .guide
            .solve(&b64, Some(support), &LcpParams::default())
            .map(|sol| sol.support)
            .unwrap_or_else(|_| support.to_vec());
        let mut seen: HashSet<Vec<usize>> = HashSet::new();
        let mut s = guess;
        // after a cycle: Murty's least-index principal pivoting (flip only the smallest
        // violating index), which terminates for every P-matrix (Murty 1974)
        let mut murty = false;
        let mut iters = 0usize;
        let max_iters = params.max_active_set + 50 * n;
        let mut best: Option<(Vec<Dd>, f64)> = None;
        let (mut a_new, r) = loop {
            iters += 1;
            if !murty && !seen.insert(s.clone()) {
                murty = true;
            }
            if iters > max_iters {
                // no exact sign pattern: a degenerate index (a_i and w_i both at round-off,
                // e.g. the projection of a reflection that lands on the cone's boundary) can
                // flip forever. Accept the best iterate if its KKT residual (a backward
                // error, evaluated in double-double) meets the tolerance, as the double path
                // accepts its polished iterate; its a is clamped at 0 below.
                match best.take() {
                    Some((x, r)) if r <= params.tol => break (x, r),
                    b => {
                        return Err(FiniteError::LcpNotSolved {
                            step,
                            residual: b.map_or(f64::NAN, |(_, r)| r),
                            tol: params.tol,
                            path: format!("{what}double-double active set then least-index pivoting: no fixed point in {max_iters} iterations"),
                        })
                    }
                }
            }
            if !matches!(&self.cache, Some((cs, _)) if *cs == s) {
                let sub = Mat::from_fn(s.len(), s.len(), |i, j| m[(s[i], s[j])]);
                self.cache = Some((s.clone(), sub.partial_piv_lu()));
                self.factorisations += 1;
            }
            let mut x = vec![Dd::ZERO; n];
            if !s.is_empty() {
                let (_, lu) = self.cache.as_ref().expect("set above");
                let rhs = Col::<Dd>::from_fn(s.len(), |i| b[s[i]]);
                let sol = lu.solve(&rhs);
                for (kk, &i) in s.iter().enumerate() {
                    x[i] = sol[kk];
                }
            }
            let mx = matvec_dd(m, &x);
            let w: Vec<Dd> = mx.iter().zip(b).map(|(&p, &q)| p - q).collect();
            let mut in_s = vec![false; n];
            s.iter().for_each(|&i| in_s[i] = true);
            let next: Vec<usize> = (0..n)
                .filter(|&i| {
                    if in_s[i] {
                        x[i] > Dd::ZERO
                    } else {
                        w[i] < Dd::ZERO
                    }
                })
                .collect();
            let r = kkt_dd(&x, &w, b, self.norm_m);
            if next == s {
                break (x, r);
            }
            if best.as_ref().is_none_or(|(_, rb)| r < *rb) {
                best = Some((x.clone(), r));
            }
            if murty {
                // flip the smallest index whose sign condition is violated
                let i = (0..n)
                    .find(|&i| {
                        if in_s[i] {
                            x[i] <= Dd::ZERO
                        } else {
                            w[i] < Dd::ZERO
                        }
                    })
                    .expect("next != s implies a violated index");
                if in_s[i] {
                    s.retain(|&j| j != i);
                } else {
                    s.push(i);
                    s.sort_unstable();
                }
            } else {
                s = next;
            }
        };
        if r > params.tol {
            return Err(FiniteError::LcpNotSolved {
                step,
                residual: r,
                tol: params.tol,
                path: format!("{what}double-double active set"),
            });
        }
        a_new.iter_mut().for_each(|x| {
            if *x < Dd::ZERO {
                *x = Dd::ZERO
            }
        });
        Ok((a_new, r))
    }
}
