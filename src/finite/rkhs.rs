//! The b-variable: $\mu\mapsto b=B(\mu)=e^{-f_{\mu,\mu}/\varepsilon}$, its inverse, the RKHS
//! $H_c$, the cone $\{Ka:a\ge0\}$, and the operators $K_\mu$, $H_\mu$, the metric tensor and the
//! derivatives of the potentials at $\nu=\mu$ (MATH.md §2; theory/finite_flow.md §2–§4).
//!
//! Conventions: $c$ is the [`crate::Cost`] of the space, $K=e^{-C/\varepsilon}$,
//! $f_{\mu,\mu}$ the symmetric Schrödinger potential $f=T(f,\mu)$ of DESIGN.md, computed by the
//! engine's averaged symmetric solve ([`crate::sinkhorn::solve_symmetric`]) and stopped on
//! $\max_i\lvert T(f)_i-f_i\rvert/\varepsilon$.

use faer::{Mat, MatRef};

use super::error::{check_measure, FiniteError};
use super::space::{check_eps, dot, FiniteSpace, Kernel};
use crate::sinkhorn::{c_transforms, solve_symmetric_warm, Mode, PointCloud, SinkhornParams};

/// Parameters of the b-map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BMapParams {
    /// Stop the symmetric solve when $\max_i\lvert T(f)_i-f_i\rvert/\varepsilon\le$ `tol`
    /// (this is the relative error of $b$). Range $(0,\infty)$, default `1e-13`.
    pub tol: f64,
    /// Maximal averaged iterations (default 100 000).
    pub max_iters: usize,
}

impl Default for BMapParams {
    fn default() -> Self {
        BMapParams {
            tol: 1e-13,
            max_iters: 100_000,
        }
    }
}

/// The result of [`b_map`].
#[derive(Clone, Debug, PartialEq)]
pub struct BMap {
    /// $f_{\hat\mu,\hat\mu}$ of the normalised measure $\hat\mu=\mu/\sum\mu$, at every point.
    pub f: Vec<f64>,
    /// $b=\sqrt{m}\,e^{-f/\varepsilon}$ with $m=\sum\mu$ ($B$ is positively homogeneous of
    /// degree 1/2: $b=K(\mu\oslash b)$ scales so).
    pub b: Vec<f64>,
    /// $a=\mu\oslash b$ (0 off the support): $b=Ka$ and $\mu=a\odot Ka$.
    pub a: Vec<f64>,
    /// $\max_i\lvert T(f)_i-f_i\rvert/\varepsilon$ over the support of $\mu$ (off the support
    /// $f=T(f)$ is computed by one transform, not iterated).
    pub residual: f64,
    /// Averaged iterations done.
    pub iterations: usize,
}

/// $\mu\mapsto B(\mu)$ for a non-negative measure of positive mass (any total mass).
///
/// # Errors
/// Wrong length, negative or non-finite entries, zero mass, eps out of range; engine
/// non-convergence (numerical, with the residual).
pub fn b_map(
    space: &FiniteSpace,
    eps: f64,
    mu: &[f64],
    params: &BMapParams,
) -> Result<BMap, FiniteError> {
    check_eps(eps)?;
    let m = check_measure(mu, space.len(), "mu")?;
    let sp = SinkhornParams {
        eps,
        cost: space.cost(),
        tol: params.tol,
        max_iters: params.max_iters,
        mode: Mode::Dense,
        strict: true,
        record_history: false,
        ..SinkhornParams::default()
    };
    let sym = symmetric_potential(space, mu, &sp, None)?;
    let (f, residual, iterations) = (sym.f, sym.residual, sym.iterations);
    let sq = m.sqrt();
    let b: Vec<f64> = f.iter().map(|&f| sq * (-f / eps).exp()).collect();
    let a: Vec<f64> = mu
        .iter()
        .zip(&b)
        .map(|(&u, &bi)| if u > 0.0 { u / bi } else { 0.0 })
        .collect();
    if a.iter().chain(&b).any(|t| !t.is_finite()) {
        return Err(FiniteError::Breakdown {
            what: "b = exp(-f/eps) under- or overflowed on the support (eps too small for the diameter)".into(),
        });
    }
    Ok(BMap {
        f,
        b,
        a,
        residual,
        iterations,
    })
}

/// The symmetric potential $f_{\hat\mu,\hat\mu}$ of the normalised measure at every point of the
/// space, with $\mathrm{OT}_\varepsilon(\hat\mu,\hat\mu)$, from the engine's symmetric solve
/// (`params`; warm start `f0` of full length, optional).
pub(crate) struct SymmetricPotential {
    pub(crate) f: Vec<f64>,
    pub(crate) ot: f64,
    pub(crate) residual: f64,
    pub(crate) iterations: usize,
}

/// [`SymmetricPotential`]: the fixed point $f=T(f,\mu)$ is iterated on the support of $\mu$
/// only and extended to the other points by one transform (exact: points of zero mass do not
/// enter $T$), so each iteration costs transforms at the support's points only. (The engine's
/// symmetric solve also stops on the support: over all points the stop rule
/// $\max_i\lvert T(f)_i-f_i\rvert/\varepsilon\le$ `tol` cannot pass for a measure of small
/// support, since far from it $f_i$ is about the cost to the support and the residual does not
/// fall below one ulp of that cost over eps — 1.8e-13 at $C=16$, $\varepsilon=0.01$ —
/// theory/finite_flow.md §2.)
pub(crate) fn symmetric_potential(
    space: &FiniteSpace,
    mu: &[f64],
    params: &SinkhornParams,
    f0: Option<&[f64]>,
) -> Result<SymmetricPotential, FiniteError> {
    let n = mu.len();
    let support: Vec<usize> = (0..n).filter(|&i| mu[i] > 0.0).collect();
    let zeros;
    let f0 = match f0 {
        Some(f0) => f0,
        None => {
            zeros = vec![0.0; n];
            &zeros
        }
    };
    if support.len() == n {
        let out = solve_symmetric_warm(&space.weighted_cloud(mu)?, params, f0)?;
        return Ok(SymmetricPotential {
            f: out.f,
            ot: out.ot,
            residual: out.residual,
            iterations: out.iterations,
        });
    }
    let flat: Vec<f64> = support
        .iter()
        .flat_map(|&i| space.point(i).iter().copied())
        .collect();
    let w: Vec<f64> = support.iter().map(|&i| mu[i]).collect();
    let cloud = PointCloud::from_flat(flat, space.dim(), Some(w), true)?;
    let warm: Vec<f64> = support.iter().map(|&i| f0[i]).collect();
    let out = solve_symmetric_warm(&cloud, params, &warm)?;
    let all = space.weighted_cloud(&vec![1.0; n])?;
    let mut f = c_transforms(&out.f, &cloud, &all, params.eps, space.cost());
    for (k, &i) in support.iter().enumerate() {
        f[i] = out.f[k];
    }
    Ok(SymmetricPotential {
        f,
        ot: out.ot,
        residual: out.residual,
        iterations: out.iterations,
    })
}

/// The inverse map on the cone: $\mu=b\odot a$ with $b=Ka$ (no $K^{-1}$ needed when the
/// coefficients $a\ge0$ are stored, which is what the flow does).
pub fn mu_from_a(kernel: &Kernel, a: &[f64]) -> Vec<f64> {
    let b = kernel.apply(a);
    a.iter().zip(&b).map(|(x, y)| x * y).collect()
}

/// The inverse map from $b$: $a=K^{-1}b$ (Cholesky), $\mu=b\odot a$.
///
/// # Errors
/// [`FiniteError::NotInCone`] when $\min_ia_i<-$`tol`$\,\max_ia_i$ ($b$ is not the image of a
/// measure).
pub fn mu_from_b(kernel: &Kernel, b: &[f64], tol: f64) -> Result<Vec<f64>, FiniteError> {
    let (ok, a, ratio) = cone_test(kernel, b, tol);
    if !ok {
        return Err(FiniteError::NotInCone {
            what: "b".into(),
            ratio,
        });
    }
    Ok(a.iter().zip(b).map(|(x, y)| x.max(0.0) * y).collect())
}

/// The cone test: is $b\in\{Ka:a\ge0\}$? Returns `(inside, a, min_i a_i / max_i |a_i|)`;
/// inside iff that ratio is $\ge-$`tol` (round-off of the Cholesky solve is about
/// $\mathrm{cond}(K)\,u$ relative, so `tol` should exceed it).
pub fn cone_test(kernel: &Kernel, b: &[f64], tol: f64) -> (bool, Vec<f64>, f64) {
    let a = kernel.solve(b);
    let amax = a.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    let amin = a.iter().fold(f64::INFINITY, |m, &t| m.min(t));
    let ratio = if amax > 0.0 { amin / amax } else { 0.0 };
    (ratio >= -tol, a, ratio)
}

/// $\langle u,w\rangle_H=u^\top K^{-1}w$ (Cholesky solve; $K^{-1}$ is never formed).
pub fn h_inner(kernel: &Kernel, u: &[f64], w: &[f64]) -> f64 {
    dot(u, &kernel.solve(w))
}

/// $\lVert b\rVert_H^2$ from the coefficients: $a^\top Ka$ ($=\sum\mu$ for $b=B(\mu)$).
pub fn h_norm2_from_a(kernel: &Kernel, a: &[f64]) -> f64 {
    kernel.quad(a, a)
}

/// The operators of a probability $\mu$ at $\nu=\mu$ (MATH.md §2, "mu-form"):
/// $k_{\mu,\mu}(x_i,x_j)=e^{(f_i+f_j-C_{ij})/\varepsilon}=K_{ij}/(b_ib_j)$ computed in the log
/// domain (never as $K\oslash bb^\top$, which loses up to 10 digits where $b$ is tiny),
/// $K_\mu\varphi=k\,(\mu\odot\varphi)$ (Markov: $K_\mu\mathbb1=\mathbb1$), $H_\mu\sigma=k\sigma$.
pub struct MuOperators {
    eps: f64,
    mu: Vec<f64>,
    f: Vec<f64>,
    k: Mat<f64>,
    /// LU of $I-K_\mu^2+\mathbb1\mu^\top$.
    lu_minus: faer::linalg::solvers::PartialPivLu<f64>,
    /// LU of $I+K_\mu$.
    lu_plus: faer::linalg::solvers::PartialPivLu<f64>,
}

impl MuOperators {
    /// Build the operators of a probability vector `mu` (sum one within 1e-12 relative).
    pub fn new(
        space: &FiniteSpace,
        eps: f64,
        mu: &[f64],
        params: &BMapParams,
    ) -> Result<MuOperators, FiniteError> {
        super::error::check_probability(mu, space.len(), "mu")?;
        let bm = b_map(space, eps, mu, params)?;
        let n = space.len();
        let f = bm.f;
        let inv = 1.0 / eps;
        let k = Mat::from_fn(n, n, |i, j| ((f[i] + f[j] - space.c(i, j)) * inv).exp());
        let km = Mat::from_fn(n, n, |i, j| k[(i, j)] * mu[j]);
        let km2 = &km * &km;
        let minus = Mat::from_fn(n, n, |i, j| {
            let id = if i == j { 1.0 } else { 0.0 };
            id - km2[(i, j)] + mu[j]
        });
        let plus = Mat::from_fn(n, n, |i, j| if i == j { 1.0 } else { 0.0 } + km[(i, j)]);
        Ok(MuOperators {
            eps,
            mu: mu.to_vec(),
            f,
            lu_minus: minus.partial_piv_lu(),
            lu_plus: plus.partial_piv_lu(),
            k,
        })
    }
    /// $f_{\mu,\mu}$.
    pub fn potential(&self) -> &[f64] {
        &self.f
    }
    /// The kernel $k_{\mu,\mu}$ ($N\times N$).
    pub fn kernel(&self) -> MatRef<'_, f64> {
        self.k.as_ref()
    }
    /// $K_\mu\varphi=k(\mu\odot\varphi)$.
    pub fn k_mu(&self, phi: &[f64]) -> Vec<f64> {
        let v: Vec<f64> = phi.iter().zip(&self.mu).map(|(p, m)| p * m).collect();
        super::space::matvec(&self.k, &v)
    }
    /// $H_\mu\sigma=k\sigma=B^{-1}KB^{-1}\sigma$.
    pub fn h_mu(&self, sigma: &[f64]) -> Vec<f64> {
        super::space::matvec(&self.k, sigma)
    }
    fn check_zero_mass(&self, sigma: &[f64]) -> Result<(), FiniteError> {
        super::error::check_len("length of sigma", self.mu.len(), sigma.len())?;
        super::error::check_finite(sigma, "sigma")?;
        let s: f64 = sigma.iter().sum();
        let l1: f64 = sigma.iter().map(|t| t.abs()).sum();
        if s.abs() > 1e-12 * l1.max(f64::MIN_POSITIVE) {
            return Err(FiniteError::InvalidParameter {
                name: "sigma",
                message: format!("a tangent direction must have zero mass, got sum {s:e}"),
            });
        }
        Ok(())
    }
    /// $(I-K_\mu^2)^{-1}r$ for a right-hand side of zero $\mu$-mass, normalised by
    /// $\sum\mu x=0$ (solved as $(I-K_\mu^2+\mathbb1\mu^\top)x=r$; the constant mode of
    /// $I-K_\mu^2$ has left null vector $\mu$).
    fn solve_minus(&self, r: &[f64]) -> Vec<f64> {
        solve_lu(&self.lu_minus, r)
    }
    /// $\partial_\nu f_{\mu,\nu}\rvert_{\nu=\mu}[\sigma]=-\varepsilon(I-K_\mu^2)^{-1}H_\mu\sigma$ for
    /// zero-mass $\sigma$, the representative with $\sum\mu x=0$ (potentials are defined modulo
    /// constants).
    pub fn d_nu_f(&self, sigma: &[f64]) -> Result<Vec<f64>, FiniteError> {
        self.check_zero_mass(sigma)?;
        let x = self.solve_minus(&self.h_mu(sigma));
        Ok(x.iter().map(|t| -self.eps * t).collect())
    }
    /// $\partial_\mu f_{\mu,\nu}\rvert_{\nu=\mu}[\sigma]=\varepsilon(I-K_\mu^2)^{-1}K_\mu H_\mu\sigma$
    /// (zero-mass $\sigma$, representative with $\sum\mu x=0$).
    pub fn d_mu_f(&self, sigma: &[f64]) -> Result<Vec<f64>, FiniteError> {
        self.check_zero_mass(sigma)?;
        let x = self.solve_minus(&self.k_mu(&self.h_mu(sigma)));
        Ok(x.iter().map(|t| self.eps * t).collect())
    }
    /// $\frac{d}{d\mu}f_{\mu,\mu}[\sigma]=-\varepsilon(I+K_\mu)^{-1}H_\mu\sigma$ (no constant
    /// freedom; any $\sigma$ that keeps $\mu+t\sigma$ a probability, i.e. zero mass).
    pub fn d_sym_f(&self, sigma: &[f64]) -> Result<Vec<f64>, FiniteError> {
        self.check_zero_mass(sigma)?;
        let x = solve_lu(&self.lu_plus, &self.h_mu(sigma));
        Ok(x.iter().map(|t| -self.eps * t).collect())
    }
    /// The metric tensor $g_\mu(\sigma,\sigma)=\frac\varepsilon2\langle\sigma,(I-K_\mu^2)^{-1}H_\mu\sigma\rangle$
    /// (seed 000: $S_\varepsilon(\mu,\mu+t\sigma)=t^2g_\mu(\sigma,\sigma)+O(t^3)$).
    pub fn metric(&self, sigma: &[f64]) -> Result<f64, FiniteError> {
        self.check_zero_mass(sigma)?;
        let x = self.solve_minus(&self.h_mu(sigma));
        Ok(0.5 * self.eps * dot(sigma, &x))
    }
}

/// $x=A^{-1}r$ from a partial-pivoting LU, on the calling thread: the solve is memory-bound
/// (BLAS-2), and a parallel triangular solve costs more in synchronisation than it saves at the
/// sizes of this module (measured 4x slower at N = 1000 on 2 cores).
pub(crate) fn solve_lu(lu: &faer::linalg::solvers::PartialPivLu<f64>, r: &[f64]) -> Vec<f64> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::lu::partial_pivoting::solve::{
        solve_in_place_scratch, solve_in_place_with_conj,
    };
    let n = r.len();
    let mut x = faer::Col::<f64>::from_fn(n, |i| r[i]);
    let mut buf = MemBuffer::new(solve_in_place_scratch::<usize, f64>(n, 1, faer::Par::Seq));
    solve_in_place_with_conj(
        lu.L(),
        lu.U(),
        lu.P(),
        faer::Conj::No,
        x.as_mat_mut(),
        faer::Par::Seq,
        MemStack::new(&mut buf),
    );
    (0..n).map(|i| x[i]).collect()
}

/// A partial-pivoting LU $PA=LU$ (faer) with the nonzero row range of every column of $L$ and
/// $U$, so that the two triangular solves skip the exact zeros outside the band
/// ([`super::space::col_ranges`]): $O(\mathrm{nnz}(L)+\mathrm{nnz}(U))$ per solve.
pub(crate) struct BandedLu {
    lu: faer::linalg::solvers::PartialPivLu<f64>,
    l_hi: Vec<usize>,
    u_lo: Vec<usize>,
}

impl BandedLu {
    /// Factorise `a`.
    pub(crate) fn new(a: faer::MatRef<'_, f64>) -> BandedLu {
        let lu = a.partial_piv_lu();
        let n = a.nrows();
        let (l, u) = (lu.L(), lu.U());
        // column j of the unit lower L: rows j+1..l_hi[j]; of U: rows u_lo[j]..=j
        let l_hi = (0..n)
            .map(|j| {
                ((j + 1)..n)
                    .rev()
                    .find(|&i| l[(i, j)] != 0.0)
                    .map_or(j + 1, |i| i + 1)
            })
            .collect();
        let u_lo = (0..n)
            .map(|j| (0..j).find(|&i| u[(i, j)] != 0.0).unwrap_or(j))
            .collect();
        BandedLu { lu, l_hi, u_lo }
    }

    /// $A^{-1}r=U^{-1}L^{-1}Pr$.
    pub(crate) fn solve(&self, r: &[f64]) -> Vec<f64> {
        let n = r.len();
        let (l, u) = (self.lu.L(), self.lu.U());
        let fwd = self.lu.P().arrays().0;
        let mut y: Vec<f64> = (0..n).map(|i| r[fwd[i]]).collect();
        for j in 0..n {
            let yj = y[j];
            if yj == 0.0 {
                continue;
            }
            let col = l.col(j).try_as_col_major().expect("column-major factor");
            let hi = self.l_hi[j];
            for (yi, &c) in y[j + 1..hi].iter_mut().zip(&col.as_slice()[j + 1..hi]) {
                *yi -= c * yj;
            }
        }
        for j in (0..n).rev() {
            y[j] /= u[(j, j)];
            let xj = y[j];
            if xj == 0.0 {
                continue;
            }
            let col = u.col(j).try_as_col_major().expect("column-major factor");
            let lo = self.u_lo[j];
            let (head, _) = y.split_at_mut(j);
            for (yi, &c) in head[lo..].iter_mut().zip(&col.as_slice()[lo..j]) {
                *yi -= c * xj;
            }
        }
        y
    }

    /// $A^{-1}R$ in place on the calling thread.
    fn solve_seq(&self, r: faer::MatMut<'_, f64>) {
        use faer::dyn_stack::{MemBuffer, MemStack};
        use faer::linalg::lu::partial_pivoting::solve::{
            solve_in_place_scratch, solve_in_place_with_conj,
        };
        let (n, q) = (r.nrows(), r.ncols());
        let mut buf = MemBuffer::new(solve_in_place_scratch::<usize, f64>(n, q, faer::Par::Seq));
        solve_in_place_with_conj(
            self.lu.L(),
            self.lu.U(),
            self.lu.P(),
            faer::Conj::No,
            r,
            faer::Par::Seq,
            MemStack::new(&mut buf),
        );
    }

    /// $A^{-1}R$ for the columns of `r`, in place: the blocked triangular solves of faer (BLAS-3;
    /// two halves of the columns on two threads) when the factors have no band of exact zeros,
    /// else [`BandedLu::solve`] per column.
    pub(crate) fn solve_many(&self, r: &mut faer::Mat<f64>) {
        use faer::linalg::solvers::SolveCore;
        let n = self.l_hi.len();
        let nnz: usize = (0..n)
            .map(|j| (self.l_hi[j] - j - 1) + (j - self.u_lo[j] + 1))
            .sum();
        if 2 * nnz >= n * n {
            // two halves of the columns on the two threads of the pool, each solved
            // sequentially: faster than faer's parallel solve for the few dozen columns of a
            // universe extension (measured at n = 260–1500, theory/finite_flow.md §8h)
            let q = r.ncols();
            if q >= 2 && rayon::current_num_threads() >= 2 {
                let (left, right) = r.as_mut().split_at_col_mut(q / 2);
                rayon::join(|| self.solve_seq(left), || self.solve_seq(right));
            } else {
                self.lu.solve_in_place_with_conj(faer::Conj::No, r.as_mut());
            }
        } else {
            for c in 0..r.ncols() {
                let col: Vec<f64> = (0..n).map(|i| r[(i, c)]).collect();
                let x = self.solve(&col);
                (0..n).for_each(|i| r[(i, c)] = x[i]);
            }
        }
    }
}

#[cfg(test)]
mod banded_tests {
    use super::*;

    #[test]
    fn banded_lu_matches_the_dense_solve() {
        // a banded non-symmetric matrix (pivoting happens) and a dense one
        for band in [2usize, 40] {
            let n = 40;
            let a = faer::Mat::from_fn(n, n, |i, j| {
                let d = i.abs_diff(j);
                if d > band {
                    0.0
                } else {
                    ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.4 + if i == j { 0.3 } else { 0.0 }
                }
            });
            let r: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let x = BandedLu::new(a.as_ref()).solve(&r);
            let x0 = solve_lu(&a.partial_piv_lu(), &r);
            let err = x
                .iter()
                .zip(&x0)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            let scale = x0.iter().fold(0.0f64, |m, t| m.max(t.abs()));
            assert!(err <= 1e-10 * scale, "band {band}: {err:e} vs {scale:e}");
        }
    }
}
