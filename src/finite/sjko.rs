//! The Sinkhorn JKO scheme (SJKO, seed 000) in the log domain (theory/finite_flow.md §5):
//! $$\mu_{k+1}\in\operatorname*{argmin}_{\mu\in\Delta_N}\ F(\mu)=\sum_iV_i\mu_i+\frac{S_\varepsilon(\mu,\mu_k)}{2\tau}.$$
//!
//! No $K$ and no $K^{-1}$ are formed: every quantity comes from Schrödinger potentials of the
//! engine (the cross solve [`crate::sinkhorn::solve_warm`] for $(f_{\mu,\nu},g_{\mu,\nu})$, the
//! symmetric solve for $f_{\mu,\mu}$) and kernels $e^{(f_i+g_j-C_{ij})/\varepsilon}$ evaluated in
//! the log domain, so the step runs at any $s=\varepsilon/\delta^2$.
//!
//! * Gradient (first variation, MATH.md §2): $G=V+(f_{\mu,\nu}-f_{\mu,\mu})/(2\tau)$.
//! * Hessian on zero-mass directions:
//!   $\nabla^2F=\frac{\varepsilon}{2\tau}\bigl[(I-PQ)^{-1}Pk^\top+(I+K_\mu)^{-1}H_\mu\bigr]$ with
//!   $k=e^{(f\oplus g-C)/\varepsilon}$, $P=k\,\mathrm{diag}(\nu)$, $Q=k^\top\mathrm{diag}(\mu)$,
//!   $K_\mu=k_s\mathrm{diag}(\mu)$, $H_\mu=k_s=e^{(f_s\oplus f_s-C)/\varepsilon}$; $(I-PQ)$ is
//!   inverted as $(I-PQ+\mathbb1\mu^\top)$ on zero-$\mu$-mass right-hand sides (left null vector
//!   $\mu$, right null vector $\mathbb1$).
//! * Newton on the face $\{\mu_i=0,i\notin F\}$ of the simplex with an equality-constrained KKT
//!   system, regularised à la Levenberg–Marquardt ($\nabla^2F+\rho I$, $\rho$ divided by 4 after
//!   an accepted step and multiplied by 4 after a rejected one); steps are cut at the boundary
//!   (the blocking index leaves $F$), and an index $i\notin F$ with $G_i<\lambda$ joins $F$.
//!   At large $s$ the Hessian is nearly singular along oscillating directions the kernel cannot
//!   see, so a plain Newton active set stalls there; $\rho$ keeps the steps bounded.
//! * Tail points: a positive mass $\mu_i\le$ `tol`$\cdot\max\mu$ whose KKT term holds is held
//!   fixed for the direction (an ε-active set, Bertsekas 1982), and the cross potentials are
//!   polished to a pointwise residual after the engine's L1-stopped solve, so that $G_i$ is
//!   right at points of small mass (theory/finite_flow.md §5).
//! * Scale-free KKT residual:
//!   $r=\max_i\lvert\min(\mu_i/\lVert\mu\rVert_\infty,(G_i-\lambda)/\gamma)\rvert$ with $\lambda$
//!   the $\mu$-mean of $G$ and $\gamma=\max(\mathrm{ptp}\,V,\varepsilon/(2\tau))$ the scale of $G$;
//!   for a zero mass with $G_i<\lambda$ the term is the smaller of the gap and the mass that
//!   would close it (relative to $\max\mu$; computed from the potentials, `kkt_terms`), which is
//!   below double precision far from the mass at small $\varepsilon$. The index released onto the
//!   face is the one of largest term; the Hessian is computed on the face only.

use faer::linalg::solvers::Solve;
use faer::{Col, Mat, Side};

use super::error::{check_finite, check_len, check_probability, FiniteError};
use super::flow::check_trajectory_size;
use super::rkhs::symmetric_potential;
use super::space::{dot, FiniteSpace};
use crate::sinkhorn::{solve_warm, Geometry, Mode, PointCloud, SinkhornParams, Stepper};

/// Iterations of the polish of the cross potentials ([`Problem::polish`]).
const MAX_POLISH: usize = 100_000;

/// Parameters of [`sjko_flow`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SjkoParams {
    /// Step $\tau>0$.
    pub tau: f64,
    /// Number of steps.
    pub steps: usize,
    /// Accept a step when its scale-free KKT residual is at most this (default `1e-10`).
    pub tol: f64,
    /// Maximal Newton iterations per step (default 300).
    pub max_newton: usize,
    /// Tolerance of the Sinkhorn solves (default `1e-13`): the L1 marginal error of the cross
    /// solve, then $\max\lvert\Delta f\rvert/\varepsilon$ and $\max\lvert\Delta g\rvert/\varepsilon$ of
    /// its polish at every point (see [`sjko_step`]), and the symmetric residual.
    pub sinkhorn_tol: f64,
    /// `true` (default): a step that does not reach `tol` within `max_newton` iterations is
    /// [`FiniteError::SjkoNotConverged`]. `false`: the step returns the iterate of smallest
    /// KKT residual it visited, with that residual (above `tol`, so the flow's
    /// `kkt_residual` shows it), and the flow goes on.
    pub strict: bool,
}

impl Default for SjkoParams {
    fn default() -> Self {
        SjkoParams {
            tau: 0.05,
            steps: 1,
            tol: 1e-10,
            max_newton: 300,
            sinkhorn_tol: 1e-13,
            strict: true,
        }
    }
}

/// One solved SJKO step.
#[derive(Clone, Debug, PartialEq)]
pub struct SjkoStep {
    /// $\mu_{k+1}$.
    pub mu: Vec<f64>,
    /// Scale-free KKT residual.
    pub residual: f64,
    /// Newton iterations (accepted and rejected).
    pub iterations: usize,
    /// Condition number of the Hessian on the tangent space of the final face
    /// (largest / smallest eigenvalue in absolute value).
    pub hessian_cond: f64,
    /// The objective $F(\mu_{k+1})$.
    pub objective: f64,
    /// `residual <= tol` (always true when [`SjkoParams::strict`]).
    pub converged: bool,
}

/// A trajectory of SJKO; row $k$ after $k$ steps.
#[derive(Clone, Debug, PartialEq)]
pub struct SjkoOutput {
    /// $t_k=k\tau$.
    pub t: Vec<f64>,
    /// $\mu_k$ (probabilities).
    pub mu: Vec<Vec<f64>>,
    /// $\sum V\mu_k$.
    pub energy: Vec<f64>,
    /// $\sum\mu_k$.
    pub mass: Vec<f64>,
    /// KKT residual per step (0 at $k=0$).
    pub kkt_residual: Vec<f64>,
    /// Newton iterations per step (0 at $k=0$).
    pub newton_iterations: Vec<usize>,
    /// Hessian condition per step (NaN at $k=0$: no step).
    pub hessian_cond: Vec<f64>,
    /// Steps returned above the KKT tolerance (only when [`SjkoParams::strict`] is false).
    pub unconverged: usize,
}

struct Eval {
    obj: f64,
    grad: Vec<f64>,
    f: Vec<f64>,
    g: Vec<f64>,
    fs: Vec<f64>,
}

struct Problem<'a> {
    space: &'a FiniteSpace,
    eps: f64,
    v: &'a [f64],
    nu: &'a [f64],
    nu_cloud: PointCloud,
    ot_nu: f64,
    tau: f64,
    sp: SinkhornParams,
}

impl Problem<'_> {
    fn cloud(&self, w: &[f64]) -> Result<PointCloud, FiniteError> {
        self.space.weighted_cloud(w)
    }

    fn eval(&self, mu: &[f64], warm: Option<&Eval>) -> Result<Eval, FiniteError> {
        let n = mu.len();
        let x = self.cloud(mu)?;
        let zeros = vec![0.0; n];
        let (f0, g0, fs0) = match warm {
            Some(e) => (&e.f, &e.g, &e.fs),
            None => (&zeros, &zeros, &zeros),
        };
        let mut cross = solve_warm(&x, &self.nu_cloud, &self.sp, f0, g0)?;
        self.polish(&x, &mut cross.f, &mut cross.g)?;
        cross.ot = dot(mu, &cross.f) + dot(self.nu, &cross.g);
        let sym = symmetric_potential(self.space, mu, &self.sp, Some(fs0))?;
        let s = cross.ot - 0.5 * sym.ot - 0.5 * self.ot_nu;
        let obj = dot(self.v, mu) + s / (2.0 * self.tau);
        let grad = (0..n)
            .map(|i| self.v[i] + (cross.f[i] - sym.f[i]) / (2.0 * self.tau))
            .collect();
        Ok(Eval {
            obj,
            grad,
            f: cross.f,
            g: cross.g,
            fs: sym.f,
        })
    }

    /// Alternate the two c-transforms of the cross problem (the engine's [`Stepper`]) until
    /// $\max_i\lvert\Delta f_i\rvert/\varepsilon$ and $\max_j\lvert\Delta g_j\rvert/\varepsilon$ are at most
    /// `sinkhorn_tol` (or the rounding floor of a transform, four ulps of the largest
    /// $\lvert h\rvert+C$ over $\varepsilon$). The engine stops on the L1 marginal error, which
    /// weighs the error at point $i$ by its mass: at a point of mass $10^{-11}$ the potential
    /// may still be off by $10^{-2}\varepsilon$, and the gradient $G_i$ with it. Measured at
    /// $s=16$, $\tau=2.8\cdot10^{-4}$: the same $\mu$ solved cold and warm gave scale-free
    /// gradients differing by $1.5\cdot10^{-7}$, above the KKT tolerance. The polish makes $G$
    /// right to about `sinkhorn_tol`$\cdot\varepsilon/(2\tau)$ at every point (theory/finite_flow.md §5).
    fn polish(&self, x: &PointCloud, f: &mut [f64], g: &mut [f64]) -> Result<(), FiniteError> {
        let cmax = self.space.costs().iter().cloned().fold(0.0, f64::max);
        let geom = Geometry::Clouds {
            x,
            y: &self.nu_cloud,
        };
        let mut st = Stepper::from_geometry(geom, &self.sp, f, g)?;
        let amax = |v: &[f64]| v.iter().fold(0.0_f64, |m, t| m.max(t.abs()));
        let change = |new: &[f64], old: &[f64]| {
            new.iter()
                .zip(old)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        };
        for k in 1..=MAX_POLISH {
            // g <- T(f, mu), then f <- T(g, nu): one round of the engine's alternation
            st.step_g();
            st.step_f();
            let (fn_, gn) = (st.f(), st.g());
            let floor = 4.0 * f64::EPSILON * (amax(gn).max(amax(fn_)) + cmax) / self.eps;
            let r = change(gn, g).max(change(fn_, f)) / self.eps;
            f.copy_from_slice(fn_);
            g.copy_from_slice(gn);
            if !r.is_finite() {
                return Err(FiniteError::Breakdown {
                    what: "SJKO: non-finite potential in the polish of the cross solve".into(),
                });
            }
            if r <= self.sp.tol.max(floor) {
                return Ok(());
            }
            if k == MAX_POLISH {
                return Err(FiniteError::Breakdown {
                    what: format!(
                        "SJKO: the polish of the cross potentials stopped at a change of \
                         {r:.3e} (max |change| / eps) after {k} rounds"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The Hessian (module docs), symmetrised, on the indices `face` (a superset of the support
    /// of $\mu$; zero elsewhere). Restricting is exact: the columns of $I-PQ+\mathbb1\mu^\top$ and
    /// of $I+K_\mu$ outside the support are those of the identity, so the rows of the face form
    /// a closed system. It also keeps out the entries $e^{(f_i+f_j-C_{ij})/\varepsilon}$ of two
    /// points far from the mass, which overflow ($e^{2C/\varepsilon}$) and turned the whole
    /// Hessian into NaN from a Dirac start at small $\varepsilon$.
    fn hessian(&self, mu: &[f64], e: &Eval, face: &[usize]) -> Mat<f64> {
        let n = mu.len();
        let m = face.len();
        let inv = 1.0 / self.eps;
        let c = |i: usize, j: usize| self.space.c(i, j);
        let k = Mat::from_fn(m, n, |a, j| {
            ((e.f[face[a]] + e.g[j] - c(face[a], j)) * inv).exp()
        });
        let ks = Mat::from_fn(m, m, |a, b| {
            ((e.fs[face[a]] + e.fs[face[b]] - c(face[a], face[b])) * inv).exp()
        });
        let p = Mat::from_fn(m, n, |a, j| k[(a, j)] * self.nu[j]);
        let q = Mat::from_fn(n, m, |j, b| k[(b, j)] * mu[face[b]]);
        let pq = &p * &q;
        let a1 = Mat::from_fn(m, m, |a, b| {
            (if a == b { 1.0 } else { 0.0 }) - pq[(a, b)] + mu[face[b]]
        });
        let pkt = &p * k.transpose();
        let x1 = a1.partial_piv_lu().solve(&pkt);
        let a2 = Mat::from_fn(m, m, |a, b| {
            (if a == b { 1.0 } else { 0.0 }) + ks[(a, b)] * mu[face[b]]
        });
        let x2 = a2.partial_piv_lu().solve(&ks);
        let s = self.eps / (2.0 * self.tau);
        let mut h = Mat::zeros(n, n);
        for a in 0..m {
            for b in 0..m {
                h[(face[a], face[b])] =
                    s * (x1[(a, b)] + x2[(a, b)] + x1[(b, a)] + x2[(b, a)]) * 0.5;
            }
        }
        h
    }
}

fn scale_of(v: &[f64], eps: f64, tau: f64) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &t| {
            (l.min(t), h.max(t))
        });
    (hi - lo).max(eps / (2.0 * tau))
}

/// $\lambda$ ($\mu$-mean of $G$) and the scale-free KKT term of every index:
/// $\lvert\min(\mu_i/\lVert\mu\rVert_\infty,(G_i-\lambda)/\gamma)\rvert$, except that a zero mass with
/// $G_i<\lambda$ counts $\min((\lambda-G_i)/\gamma,\,t^*_i/\lVert\mu\rVert_\infty)$, with $t^*_i$ the mass
/// that brings $G_i$ up to $\lambda$ (theory/finite_flow.md §5). Adding a mass $t$ at $x_i$
/// changes $f_{\mu,\mu}(x_i)$ through its own term: $y=e^{-f_i/\varepsilon}$ solves $y=t/y+Z_i$ with
/// $Z_i=e^{-f_i(0)/\varepsilon}$, while the other potentials move by $O(t)$; so
/// $G_i(t)=G_i(0)+\frac{\varepsilon}{2\tau}\log(y/Z_i)$ and
/// $t^*_i=Z_i^2e^{L}(e^{L}-1)$, $L=2\tau(\lambda-G_i)/\varepsilon$. Far from the mass
/// ($f_i\approx C$) $t^*_i\sim e^{-2C/\varepsilon}$ is below any representable mass: such an index
/// satisfies the KKT conditions to the tolerance although its gradient gap is of order $\gamma$.
fn kkt_terms(mu: &[f64], e: &Eval, scale: f64, eps: f64, tau: f64) -> (f64, Vec<f64>) {
    let m: f64 = mu.iter().sum();
    let lambda = dot(mu, &e.grad) / m;
    let mmax = mu.iter().cloned().fold(0.0, f64::max);
    let terms = mu
        .iter()
        .zip(&e.grad)
        .zip(&e.fs)
        .map(|((&x, &g), &fs)| {
            let gap = (g - lambda) / scale;
            if x > 0.0 || gap >= 0.0 {
                return (x / mmax).min(gap).abs();
            }
            let l = 2.0 * tau * (lambda - g) / eps;
            let ln_expm1 = if l > 30.0 { l } else { l.exp_m1().ln() };
            let ln_t = -2.0 * fs / eps + l + ln_expm1 - mmax.ln();
            (-gap).min(ln_t.min(0.0).exp())
        })
        .collect();
    (lambda, terms)
}

/// The regularised Newton direction on the face `fidx`: the KKT system
/// $\begin{pmatrix}H_{FF}+\rho I&\mathbb1\\\mathbb1^\top&0\end{pmatrix}\binom{d}{l}=\binom{-G_F}{0}$.
fn face_direction(h: &Mat<f64>, grad: &[f64], fidx: &[usize], rho: f64, n: usize) -> Vec<f64> {
    let m = fidx.len();
    let kk = Mat::from_fn(m + 1, m + 1, |i, j| {
        if i < m && j < m {
            h[(fidx[i], fidx[j])] + if i == j { rho } else { 0.0 }
        } else if i == m && j == m {
            0.0
        } else {
            1.0
        }
    });
    let rhs = Col::<f64>::from_fn(m + 1, |i| if i < m { -grad[fidx[i]] } else { 0.0 });
    let sol = kk.partial_piv_lu().solve(&rhs);
    let mut d = vec![0.0; n];
    for (k, &i) in fidx.iter().enumerate() {
        d[i] = sol[k];
    }
    d
}

/// Condition number of the Hessian on the tangent space of the face `free`.
fn tangent_cond(h: &Mat<f64>, free: &[usize]) -> f64 {
    let m = free.len();
    if m < 2 {
        return 1.0;
    }
    // Pi H_FF Pi with Pi = I - 11^T/m: the constant direction gives one (round-off) zero
    let hf = Mat::from_fn(m, m, |i, j| h[(free[i], free[j])]);
    let rm: Vec<f64> = (0..m)
        .map(|i| (0..m).map(|j| hf[(i, j)]).sum::<f64>() / m as f64)
        .collect();
    let tot: f64 = rm.iter().sum::<f64>() / m as f64;
    let ph = Mat::from_fn(m, m, |i, j| hf[(i, j)] - rm[i] - rm[j] + tot);
    match ph.self_adjoint_eigenvalues(Side::Lower) {
        Ok(mut ev) => {
            ev.iter_mut().for_each(|x| *x = x.abs());
            ev.sort_by(f64::total_cmp);
            let max = ev[m - 1];
            let min = ev[1];
            if min > 0.0 {
                max / min
            } else {
                f64::INFINITY
            }
        }
        Err(_) => f64::NAN,
    }
}

/// One SJKO step from $\nu=\mu_k$ (a probability), warm-started from `start` (a probability,
/// e.g. $\mu_k$).
///
/// # Errors
/// Bad input, an engine failure, or [`FiniteError::SjkoNotConverged`] with the residual.
pub fn sjko_step(
    space: &FiniteSpace,
    eps: f64,
    v: &[f64],
    nu: &[f64],
    start: &[f64],
    params: &SjkoParams,
    step: usize,
) -> Result<SjkoStep, FiniteError> {
    let n = space.len();
    check_len("length of V vs number of points", n, v.len())?;
    check_finite(v, "V")?;
    check_probability(nu, n, "mu_k")?;
    check_probability(start, n, "start")?;
    super::space::check_eps(eps)?;
    for (name, x) in [
        ("tau", params.tau),
        ("tol", params.tol),
        ("sinkhorn_tol", params.sinkhorn_tol),
    ] {
        if !(x.is_finite() && x > 0.0) {
            return Err(FiniteError::InvalidParameter {
                name,
                message: format!("must be finite and > 0, got {x}"),
            });
        }
    }
    let sp = SinkhornParams {
        eps,
        cost: space.cost(),
        tol: params.sinkhorn_tol,
        max_iters: 1_000_000,
        mode: Mode::Dense,
        strict: true,
        record_history: false,
        // Each SJKO step needs converged potentials, not the iterates: the engine's default
        // acceleration applies to the cross solve (theory/sinkhorn.md §4c; the self solves are
        // symmetric and ignore it).
        ..SinkhornParams::default()
    };
    let nu_cloud = space.weighted_cloud(nu)?;
    let ot_nu = symmetric_potential(space, nu, &sp, None)?.ot;
    let pb = Problem {
        space,
        eps,
        v,
        nu,
        nu_cloud,
        ot_nu,
        tau: params.tau,
        sp,
    };
    let scale = scale_of(v, eps, params.tau);
    let mut mu = start.to_vec();
    let mut e = pb.eval(&mu, None)?;
    let mut free: Vec<bool> = mu.iter().map(|&x| x > 0.0).collect();
    let mut rho = 1e-8 * scale;
    // the Hessian and the face it was computed on
    let mut last_h: Option<(Mat<f64>, Vec<usize>)> = None;
    let face_of = |mu: &[f64], free: &[bool]| -> Vec<usize> {
        (0..n).filter(|&i| mu[i] > 0.0 || free[i]).collect()
    };
    let mut it = 0;
    // the iterate of smallest residual (returned by a non-strict step that stalls)
    let mut best: Option<(f64, Vec<f64>, f64)> = None;
    loop {
        let (lambda, terms) = kkt_terms(&mu, &e, scale, eps, params.tau);
        let r = terms.iter().cloned().fold(0.0, f64::max);
        if r <= params.tol {
            let fidx: Vec<usize> = (0..n).filter(|&i| mu[i] > 0.0).collect();
            let h = match last_h {
                Some((h, _)) => h,
                None => pb.hessian(&mu, &e, &fidx),
            };
            return Ok(SjkoStep {
                hessian_cond: tangent_cond(&h, &fidx),
                mu,
                residual: r,
                iterations: it,
                objective: e.obj,
                converged: true,
            });
        }
        if best.as_ref().is_none_or(|b| r < b.0) {
            best = Some((r, mu.clone(), e.obj));
        }
        if it >= params.max_newton {
            let (rb, mb, ob) = best.expect("set above");
            if params.strict {
                return Err(FiniteError::SjkoNotConverged {
                    step,
                    residual: rb,
                    tol: params.tol,
                    iterations: it,
                });
            }
            let fidx: Vec<usize> = (0..n).filter(|&i| mb[i] > 0.0).collect();
            let eb = pb.eval(&mb, Some(&e))?;
            let h = pb.hessian(&mb, &eb, &fidx);
            return Ok(SjkoStep {
                hessian_cond: tangent_cond(&h, &fidx),
                mu: mb,
                residual: rb,
                iterations: it,
                objective: ob,
                converged: false,
            });
        }
        it += 1;
        // ε-active set (Bertsekas 1982): a positive mass at most `tol` · max μ whose gradient
        // satisfies its KKT term is held fixed for this direction. Near such tail points the
        // gradient varies like log μ_i; a Newton direction through them (cond ~1e18 at s = 16)
        // zeroed them, which the next iterations undid: a cycle measured at s = 16, τ = 2.8e-4
        // (theory/finite_flow.md §5).
        let mmax = mu.iter().cloned().fold(0.0, f64::max);
        for i in 0..n {
            if mu[i] > 0.0
                && mu[i] <= params.tol * mmax
                && e.grad[i] - lambda >= -params.tol * scale
            {
                free[i] = false;
            }
        }
        // release the most violating index outside the face
        let worst_out = (0..n)
            .filter(|&i| !free[i])
            .filter(|&i| terms[i] > params.tol && e.grad[i] - lambda < 0.0)
            .map(|i| (i, terms[i]))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = worst_out {
            free[i] = true;
        }
        let face = face_of(&mu, &free);
        let h = match last_h.take() {
            // a Hessian on a larger face is exact on this one (see `Problem::hessian`)
            Some((h, f)) if face.iter().all(|i| f.binary_search(i).is_ok()) => h,
            _ => pb.hessian(&mu, &e, &face),
        };
        // Newton direction on the face; an index at zero whose direction points outwards
        // leaves the face and the system is solved again (at most n times)
        let d = loop {
            let fidx: Vec<usize> = (0..n).filter(|&i| free[i]).collect();
            let d = face_direction(&h, &e.grad, &fidx, rho, n);
            let outward: Vec<usize> = fidx
                .iter()
                .copied()
                .filter(|&i| mu[i] == 0.0 && d[i] < 0.0)
                .collect();
            if outward.is_empty() || d.iter().any(|x| !x.is_finite()) {
                break d;
            }
            outward.iter().for_each(|&i| free[i] = false);
        };
        let fidx: Vec<usize> = (0..n).filter(|&i| free[i]).collect();
        last_h = Some((h, face));
        if d.iter().any(|x| !x.is_finite()) {
            rho = (rho * 16.0).max(1e-12 * scale);
            continue;
        }
        // Step. (i) the projected full step max(mu + d, 0), renormalised, which drops every
        // index that the direction sends below zero at once (fast identification of the face
        // when many tiny masses vanish); (ii) if Armijo rejects it, the step cut at the first
        // boundary hit (ratio test). Armijo has a floor for the round-off of F near convergence.
        let noise = 1e-13 * (e.obj.abs() + scale);
        let gd_full = dot(&e.grad, &d);
        let mut accepted = None;
        if fidx.iter().any(|&i| mu[i] + d[i] < 0.0) {
            let mut trial: Vec<f64> = mu.iter().zip(&d).map(|(x, y)| (x + y).max(0.0)).collect();
            let ts: f64 = trial.iter().sum();
            trial.iter_mut().for_each(|x| *x /= ts);
            let step: Vec<f64> = trial.iter().zip(&mu).map(|(a, b)| a - b).collect();
            let gd = dot(&e.grad, &step);
            if gd < 0.0 {
                let et = pb.eval(&trial, Some(&e))?;
                if et.obj <= e.obj + 1e-4 * gd + noise {
                    accepted = Some((trial, et));
                }
            }
        }
        if accepted.is_none() {
            let mut alpha: f64 = 1.0;
            let mut block = None;
            for &i in &fidx {
                if d[i] < 0.0 {
                    let a = -mu[i] / d[i];
                    if a < alpha {
                        alpha = a;
                        block = Some(i);
                    }
                }
            }
            let mut trial: Vec<f64> = mu
                .iter()
                .zip(&d)
                .map(|(x, y)| (x + alpha * y).max(0.0))
                .collect();
            if let Some(b) = block {
                trial[b] = 0.0;
            }
            let ts: f64 = trial.iter().sum();
            trial.iter_mut().for_each(|x| *x /= ts);
            let et = pb.eval(&trial, Some(&e))?;
            if et.obj <= e.obj + 1e-4 * gd_full * alpha + noise {
                accepted = Some((trial, et));
            }
        }
        match accepted {
            Some((trial, et)) => {
                mu = trial;
                e = et;
                rho = (rho / 4.0).max(1e-14 * scale);
                for (fi, &x) in free.iter_mut().zip(&mu) {
                    *fi = x > 0.0;
                }
                last_h = None;
            }
            None => rho = (rho * 4.0).max(1e-10 * scale),
        }
    }
}

/// Run SJKO from the probability `mu0`.
///
/// # Errors
/// As [`sjko_step`]; also `tau` not finite and positive, trajectory too large.
pub fn sjko_flow(
    space: &FiniteSpace,
    eps: f64,
    v: &[f64],
    mu0: &[f64],
    params: &SjkoParams,
) -> Result<SjkoOutput, FiniteError> {
    super::space::check_eps(eps)?;
    if !(params.tau.is_finite() && params.tau > 0.0) {
        return Err(FiniteError::InvalidParameter {
            name: "tau",
            message: format!("must be finite and > 0, got {}", params.tau),
        });
    }
    check_len("length of V vs number of points", space.len(), v.len())?;
    check_finite(v, "V")?;
    check_probability(mu0, space.len(), "mu0")?;
    check_trajectory_size(params.steps, space.len())?;
    let mut out = SjkoOutput {
        t: vec![0.0],
        mu: vec![mu0.to_vec()],
        energy: vec![dot(v, mu0)],
        mass: vec![mu0.iter().sum()],
        kkt_residual: vec![0.0],
        newton_iterations: vec![0],
        hessian_cond: vec![f64::NAN],
        unconverged: 0,
    };
    for k in 1..=params.steps {
        let prev = out.mu.last().expect("row 0").clone();
        super::error::check_interrupt(k)?;
        let st = sjko_step(space, eps, v, &prev, &prev, params, k)?;
        out.t.push(k as f64 * params.tau);
        out.energy.push(dot(v, &st.mu));
        out.mass.push(st.mu.iter().sum());
        out.kkt_residual.push(st.residual);
        out.newton_iterations.push(st.iterations);
        out.hessian_cond.push(st.hessian_cond);
        out.unconverged += usize::from(!st.converged);
        out.mu.push(st.mu);
    }
    Ok(out)
}
