//! The linear complementarity problem of the resolvent step (theory/finite_flow.md §3):
//! find $a\ge0$ with $w=Ma-b\ge0$ and $a^\top w=0$, for a P-matrix $M$ (the resolvent matrix
//! $M=K+\frac{2h}{\varepsilon}(\mathrm{diag}(V)K-K\,\mathrm{diag}(V))$ has symmetric part $K\succ0$,
//! so it is positive definite, hence a P-matrix, and the LCP has exactly one solution for every
//! $b$; Cottle–Pang–Stone, *The Linear Complementarity Problem*, Thm 3.3.7).
//!
//! Solver chain (MATH.md §2):
//! 1. **active set** — the semismooth Newton method on $\min(a,w)=0$ (Hintermüller–Ito–Kunisch
//!    2002, "primal-dual active set"): guess the support $S$, solve $M_{SS}a_S=b_S$, set $a=0$
//!    off $S$, and take the next support $\{i\in S:a_i>0\}\cup\{i\notin S:w_i<0\}$. Warm-started from
//!    the previous step's support, so an unchanged support costs one cached solve;
//! 2. on a repeated support (a cycle) or no fixed point within the iteration limit, the
//!    infeasible primal-dual **interior-point** method with Mehrotra's predictor–corrector for
//!    the monotone LCP (Wright 1997, ch. 8): it follows the central path whatever the skew part
//!    of $M$ (theory/finite_flow.md §8f);
//! 3. **Fischer–Burmeister** semismooth Newton
//!    on $\varphi(a_i,w_i)=a_i+w_i-\sqrt{a_i^2+w_i^2}=0$ with an Armijo line search on
//!    $\tfrac12\lVert\Phi\rVert^2$ (De Luca–Facchinei–Kanzow 1996);
//! 4. **Lemke**'s complementary pivoting with covering vector $\mathbb1$ (terminates for a
//!    P-matrix; Cottle–Pang–Stone §4.4).
//!
//! The result of 2, 3 or 4 is **polished**: the active-set iteration restarted from its support,
//! so the accepted solution always solves $M_{SS}a_S=b_S$ on its support. Accepted only if the
//! scale-free KKT residual
//! $$r=\max_i\Bigl\lvert\min\Bigl(\frac{a_i}{\lVert a\rVert_\infty},\ \frac{w_i}{\lVert M\rVert_\infty\lVert a\rVert_\infty+\lVert b\rVert_\infty}\Bigr)\Bigr\rvert$$
//! (zero iff $(a,w)$ solves the LCP; invariant under $b\mapsto\lambda b$ and $M\mapsto\lambda M$)
//! is at most `tol`.
//!
//! **Support solves.** Each active-set iterate needs $M_{SS}^{-1}b_S$. A support with
//! $\lvert S\rvert<N/2$ (or any support below [`LcpParams::complement_min`] points, or a banded $M$
//! whose exact zeros the direct solves skip) uses an LU of
//! $M_{SS}$, cached and bordered for nearby supports. A support missing at most half of the
//! indices, complement $R$, uses $W=M^{-1}$ (one LU of $M$, formed once: $M$ is fixed for a fixed
//! step) and the bordered system with the whole index set as base:
//! $$x=y-W_{:R}\,W_{RR}^{-1}y_R,\qquad y=W\tilde b,\quad\tilde b=b\text{ on }S,\ 0\text{ on }R,$$
//! which gives $x_R=0$ and $(Mx)_S=b_S$. $W_{RR}$ is non-singular: the inverse of a P-matrix is a
//! P-matrix, and so are its principal submatrices. Its LU is cached and bordered like that of
//! $M_{SS}$, so a support change costs an LU of size $\min(\lvert S\rvert,\lvert R\rvert)$ at most
//! instead of $\lvert S\rvert$. Solves through $W$ are refined with products by $M$ itself until
//! the rows of $S$ are at $10^{-15}$ relative (at most three corrections), else $M_{SS}$ is
//! factorised: the accepted solution is as accurate as the direct path's
//! (theory/finite_flow.md §8b).
//!
//! **Bordering by Schur complements over a universe of indices** (theory/finite_flow.md §8d).
//! A support $S$ near the cached base $B$ (at most $\max(4,\lvert B\rvert/2)$ changes, and fewer
//! than $\lvert S\rvert$) is solved by block elimination on the LU of $M_{BB}$. The columns
//! $M_{BB}^{-1}M_{Bj}$, $M_{BB}^{-1}e_j$ and the Schur entries it needs depend only on the indices
//! involved, not on $S$: they are computed once per index by blocked solves and products and
//! shared by every later support of the same base, so an iterate costs the LU of a $k\times k$
//! block of the Schur matrix instead of an LU of $M_{SS}$.
//!
//! **Intermediate iterates are not refined.** An iterate only decides the next support; its
//! solve is used as it is when the rows of $S$ are within $10^{-9}$ of the scale of $w$. A
//! candidate fixed point is refined to round-off (above) and its support decided again before it
//! is accepted: the accepted solution meets the same criteria as when every iterate is refined.

use std::collections::HashSet;

use faer::linalg::solvers::{DenseSolveCore, Solve};
use faer::Mat;

use super::rkhs::{solve_lu, BandedLu};
use super::space::{axpy_columns, col_ranges, col_slice, dot, matvec_ranged};

/// Parameters of [`LcpSolver::solve`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LcpParams {
    /// Accept a solution whose scale-free KKT residual is at most this. Default `1e-9`.
    pub tol: f64,
    /// Maximal active-set iterations before the fallback (default 60).
    pub max_active_set: usize,
    /// Maximal Fischer–Burmeister Newton iterations (default 200).
    pub max_fb: usize,
    /// Maximal interior-point iterations, all stages together (default 100).
    pub max_ip: usize,
    /// An active-set iterate changes only the indices whose violation ($-a_i/\lVert a\rVert_\infty$
    /// in the support, $-w_i$ over the scale of $w$ outside it) is at least this fraction of the
    /// largest; `0` is the plain semismooth Newton step, which changes all of them. Default
    /// `1e-3` (theory/finite_flow.md §8g); must lie in 0..=1.
    pub change_ratio: f64,
    /// From this size $N$ on, a support $S$ that misses at most half of the indices
    /// ($\lvert R\rvert\le\lvert S\rvert$, $R$ the complement) is solved through the inverse
    /// $W=M^{-1}$ (formed once, $M$ being fixed) and an LU of the $\lvert R\rvert\times\lvert R\rvert$ block
    /// $W_{RR}$, instead of an LU of $M_{SS}$ (module docs, theory/finite_flow.md §8b), unless $M$
    /// has a band of exact zeros (then the direct path skips them). Default 1000; `usize::MAX`
    /// disables it.
    pub complement_min: usize,
}

impl Default for LcpParams {
    fn default() -> Self {
        LcpParams {
            tol: 1e-9,
            max_active_set: 60,
            max_fb: 200,
            max_ip: 100,
            change_ratio: 1e-3,
            complement_min: 1000,
        }
    }
}

/// Which method produced the accepted solution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LcpMethod {
    /// The active-set (semismooth Newton on min) iteration.
    ActiveSet,
    /// Fischer–Burmeister Newton, then polished.
    FischerBurmeister,
    /// Lemke's pivoting, then polished.
    Lemke,
    /// The primal-dual interior-point method, then polished.
    InteriorPoint,
}

impl LcpMethod {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            LcpMethod::ActiveSet => "active-set",
            LcpMethod::FischerBurmeister => "fischer-burmeister",
            LcpMethod::Lemke => "lemke",
            LcpMethod::InteriorPoint => "interior-point",
        }
    }
}

/// A solved LCP.
#[derive(Clone, Debug, PartialEq)]
pub struct LcpSolution {
    /// $a\ge0$.
    pub a: Vec<f64>,
    /// $w=Ma-b$.
    pub w: Vec<f64>,
    /// The scale-free KKT residual.
    pub residual: f64,
    /// The method that produced it.
    pub method: LcpMethod,
    /// Active-set iterations (all phases).
    pub iterations: usize,
    /// The support $\{i:a_i>0\}$, sorted.
    pub support: Vec<usize>,
}

/// Failure: the best residual reached and the path tried.
#[derive(Clone, Debug, PartialEq)]
pub struct LcpFailure {
    /// Smallest residual reached by any method.
    pub residual: f64,
    /// The methods tried, e.g. `active-set(cycle) > fischer-burmeister > lemke`.
    pub path: String,
}

/// $a\mapsto Ma$.
pub(crate) type ProductFn = Box<dyn Fn(&[f64]) -> Vec<f64> + Send>;

/// A product $a\mapsto Ma$ by the same matrix up to rounding, cheaper than the dense one for
/// vectors with many nonzeros (the tensor-grid product of the resolvent matrix,
/// theory/finite_flow.md §8e).
pub(crate) struct Product {
    /// The product.
    pub apply: ProductFn,
    /// Its cost in columns of the dense product: used for vectors with more nonzeros.
    pub columns: usize,
}

/// A dense LCP matrix with a cache of the last support's LU factorisation.
pub struct LcpSolver {
    m: Mat<f64>,
    /// A structured product for $w=Ma-b$ (else the dense one).
    product: Option<Product>,
    /// Row ranges of the nonzeros of each column of $M$ (exact zeros skipped in products).
    ranges: Vec<(usize, usize)>,
    norm_inf: f64,
    /// The LU of a base support's $M_{BB}$ (band-aware solves), bordered for nearby supports.
    cache: Option<SupportLu>,
    factorisations: usize,
    /// $W=M^{-1}$ for the complement solves (formed on first use).
    inverse: Inverse,
    /// The LU of $W_{RR}$ for the last complement $R$.
    comp: Option<ComplementLu>,
    complement_factorisations: usize,
    /// Complement solves that did not refine to round-off (then $M_{SS}$ was factorised).
    complement_fallbacks: usize,
    /// [`LcpParams::complement_min`] of the current call.
    complement_min: usize,
    /// [`LcpParams::change_ratio`] of the current call.
    change_ratio: f64,
    /// Whether the last support solve went through $W$.
    last_complement: bool,
    /// $Wb$ and $W_{:R}b_R$ for the right-hand side of the current step ([`RhsProducts`]).
    rhs_products: Option<RhsProducts>,
}

/// Products by $W$ kept across the complement solves of one right-hand side $b$ (every iterate
/// of a step solves for the same $b$): $Wb$, and $u=W_{:R}b_R$ for the last complement $R$,
/// updated by the columns of the indices that join or leave $R$.
struct RhsProducts {
    b: Vec<f64>,
    wb: Vec<f64>,
    /// Membership of the last complement $R$.
    in_r: Vec<bool>,
    u: Vec<f64>,
    /// Columns added to or removed from `u` since it was formed in one pass.
    updates: usize,
}

/// The iterates of the interior-point method ([`LcpSolver::interior_point`]).
struct IpState {
    x: Vec<f64>,
    s: Vec<f64>,
    iterations: usize,
    /// The iteration cannot make progress.
    stalled: bool,
}

/// State of the explicit inverse $W=M^{-1}$.
enum Inverse {
    Untried,
    Ready(Mat<f64>),
    /// $M$'s LU gave a non-finite inverse: complement solves are off.
    Unavailable,
}

/// The complement $R$ of the last support and the (bordered) LU of $W_{RR}$.
struct ComplementLu {
    removed: Vec<usize>,
    lu: Option<SupportLu>,
}

impl LcpSolver {
    /// Wrap a square matrix.
    ///
    /// # Panics
    /// A non-square matrix (a caller bug).
    #[track_caller]
    pub fn new(m: Mat<f64>) -> LcpSolver {
        assert_eq!(m.nrows(), m.ncols(), "LCP matrix must be square");
        let n = m.nrows();
        let norm_inf = (0..n)
            .map(|i| (0..n).map(|j| m[(i, j)].abs()).sum::<f64>())
            .fold(0.0, f64::max);
        LcpSolver {
            ranges: col_ranges(m.as_ref()),
            m,
            product: None,
            norm_inf,
            cache: None,
            factorisations: 0,
            inverse: Inverse::Untried,
            comp: None,
            complement_factorisations: 0,
            complement_fallbacks: 0,
            complement_min: usize::MAX,
            change_ratio: 0.0,
            last_complement: false,
            rhs_products: None,
        }
    }

    /// Compute the residuals $w=Ma-b$ of intermediate active-set iterates by `product`, which
    /// must be a product by the same matrix up to rounding. Candidates, refinement, acceptance
    /// and the fallbacks keep the dense $M$, so the accepted solution is that of the dense $M$
    /// (theory/finite_flow.md §8e).
    pub(crate) fn with_product(mut self, product: Product) -> LcpSolver {
        self.product = Some(product);
        self
    }

    /// The matrix.
    pub fn matrix(&self) -> &Mat<f64> {
        &self.m
    }

    /// LU factorisations done so far: of principal submatrices $M_{SS}$, of the full $M$ (once,
    /// for $W=M^{-1}$) and of the blocks $W_{RR}$ of the complement solves (the cache avoids one
    /// per step when the support does not change).
    pub fn factorisations(&self) -> usize {
        self.factorisations + self.complement_factorisations
    }

    /// Of [`LcpSolver::factorisations`], those of the complement path ($M$ once, then
    /// $W_{RR}$, of size $\lvert R\rvert=N-\lvert S\rvert$).
    pub fn complement_factorisations(&self) -> usize {
        self.complement_factorisations
    }

    /// Complement solves that did not refine to round-off and were replaced by a fresh LU of
    /// $M_{SS}$.
    pub fn complement_fallbacks(&self) -> usize {
        self.complement_fallbacks
    }

    /// $W=M^{-1}$ from the LU of $M$, formed once; `false` when it is not finite.
    fn ensure_inverse(&mut self) -> bool {
        if matches!(self.inverse, Inverse::Untried) {
            let w = self.m.partial_piv_lu().inverse();
            self.complement_factorisations += 1;
            let finite = (0..w.ncols()).all(|j| col_slice(&w, j).iter().all(|t| t.is_finite()));
            self.inverse = if finite {
                Inverse::Ready(w)
            } else {
                Inverse::Unavailable
            };
        }
        matches!(self.inverse, Inverse::Ready(_))
    }

    /// Whether support `s` goes through the complement path.
    ///
    /// Only for a matrix without a band of exact zeros (at least half of the entries inside the
    /// column ranges): on a banded $M$ the direct path's solves and bordered updates skip the
    /// zeros (theory/finite_flow.md §8), while $W$ is dense.
    fn use_complement(&mut self, s: &[usize]) -> bool {
        let n = self.m.nrows();
        if n < self.complement_min || 2 * s.len() < n || s.is_empty() {
            return false;
        }
        let inside: usize = self.ranges.iter().map(|&(lo, hi)| hi - lo).sum();
        2 * inside >= n * n && self.ensure_inverse()
    }

    /// Prepare $W_{RR}^{-1}$ for the complement $R$ of `s`: the cached LU of a base block
    /// $W_{R_0R_0}$, bordered when $R$ differs from $R_0$ by few indices (as [`SupportLu`] does
    /// for $M_{SS}$, with the columns of $W$ read directly), else a fresh LU ($R$ becomes the base).
    fn prepare_complement(&mut self, s: &[usize]) {
        let n = self.m.nrows();
        let mut removed = Vec::with_capacity(n - s.len());
        let mut p = 0;
        for i in 0..n {
            if p < s.len() && s[p] == i {
                p += 1;
            } else {
                removed.push(i);
            }
        }
        let Inverse::Ready(w) = &self.inverse else {
            unreachable!("complement path without an inverse")
        };
        let comp = self.comp.get_or_insert_with(|| ComplementLu {
            removed: Vec::new(),
            lu: None,
        });
        if !removed.is_empty() {
            let usable = match &mut comp.lu {
                Some(c) => c.prepare(w, &removed),
                None => false,
            };
            if !usable {
                comp.lu = Some(SupportLu::new(w, &removed));
                self.complement_factorisations += 1;
            }
        }
        comp.removed = removed;
    }

    /// $M_{SS}^{-1}g_S$ through $W$: with $\tilde g=g$ on $S$ and 0 on $R$, $y=W\tilde g$,
    /// $\lambda=W_{RR}^{-1}y_R$ and $x=y-W_{:R}\lambda$, so that $x_R=0$ and
    /// $Mx=\tilde g-E_R\lambda$ (the bordered system with base the whole index set); ordered as
    /// `s`. Cost $O(N^2)$ per right-hand side.
    fn complement_solve(&self, s: &[usize], g: &[f64]) -> Vec<f64> {
        let Inverse::Ready(w) = &self.inverse else {
            unreachable!("complement path without an inverse")
        };
        let comp = self.comp.as_ref().expect("complement prepared");
        let n = self.m.nrows();
        let mut y = vec![0.0; n];
        let terms: Vec<(&[f64], f64, usize, usize)> = s
            .iter()
            .filter(|&&j| g[j] != 0.0)
            .map(|&j| (col_slice(w, j), g[j], 0, n))
            .collect();
        axpy_columns(&mut y, &terms);
        if !comp.removed.is_empty() {
            let lu = comp.lu.as_ref().expect("complement prepared");
            let lam = lu.solve(&comp.removed, &y);
            let terms: Vec<(&[f64], f64, usize, usize)> = comp
                .removed
                .iter()
                .zip(&lam)
                .filter(|(_, &l)| l != 0.0)
                .map(|(&j, &l)| (col_slice(w, j), -l, 0, n))
                .collect();
            axpy_columns(&mut y, &terms);
        }
        s.iter().map(|&i| y[i]).collect()
    }

    /// [`LcpSolver::complement_solve`] for the step's right-hand side $b$, with the products of
    /// [`RhsProducts`]: $y=W\tilde b=Wb-W_{:R}b_R$ and $x=y-W_{:R}\lambda$, so that a solve costs
    /// $O(N\lvert R\rvert)$ plus $O(N)$ per index that joined or left $R$, instead of $O(N^2)$
    /// (theory/finite_flow.md §8h).
    fn complement_solve_rhs(&mut self, s: &[usize], b: &[f64]) -> Vec<f64> {
        let Inverse::Ready(w) = &self.inverse else {
            unreachable!("complement path without an inverse")
        };
        let comp = self.comp.as_ref().expect("complement prepared");
        let n = self.m.nrows();
        let mut in_r = vec![false; n];
        comp.removed.iter().for_each(|&j| in_r[j] = true);
        let columns =
            |set: &mut dyn Iterator<Item = (usize, f64)>| -> Vec<(&[f64], f64, usize, usize)> {
                set.filter(|&(_, c)| c != 0.0)
                    .map(|(j, c)| (col_slice(w, j), c, 0, n))
                    .collect()
            };
        let fresh = match &self.rhs_products {
            Some(p) => p.b.as_slice() != b || p.updates > n / 2,
            None => true,
        };
        if fresh {
            let mut wb = vec![0.0; n];
            axpy_columns(&mut wb, &columns(&mut (0..n).map(|j| (j, b[j]))));
            let mut u = vec![0.0; n];
            axpy_columns(
                &mut u,
                &columns(&mut comp.removed.iter().map(|&j| (j, b[j]))),
            );
            self.rhs_products = Some(RhsProducts {
                b: b.to_vec(),
                wb,
                in_r,
                u,
                updates: 0,
            });
        } else {
            let p = self.rhs_products.as_mut().expect("checked above");
            let changed: Vec<(usize, f64)> = (0..n)
                .filter(|&j| p.in_r[j] != in_r[j])
                .map(|j| (j, if in_r[j] { b[j] } else { -b[j] }))
                .collect();
            p.updates += changed.len();
            axpy_columns(&mut p.u, &columns(&mut changed.into_iter()));
            p.in_r = in_r;
        }
        let p = self.rhs_products.as_ref().expect("formed above");
        let mut y: Vec<f64> = p.wb.iter().zip(&p.u).map(|(a, c)| a - c).collect();
        if !comp.removed.is_empty() {
            let lu = comp.lu.as_ref().expect("complement prepared");
            let lam = lu.solve(&comp.removed, &y);
            axpy_columns(
                &mut y,
                &columns(&mut comp.removed.iter().zip(&lam).map(|(&j, &l)| (j, -l))),
            );
        }
        s.iter().map(|&i| y[i]).collect()
    }

    /// Keep the parameters of the current call that the iteration reads.
    fn take_params(&mut self, params: &LcpParams) {
        self.complement_min = params.complement_min;
        // out of [0, 1] (a caller that skipped the checks of `Resolvent::new`): the plain step
        self.change_ratio = if (0.0..=1.0).contains(&params.change_ratio) {
            params.change_ratio
        } else {
            0.0
        };
    }

    /// The scale-free KKT residual of `(a, w)` for right-hand side `b` (module docs).
    pub fn residual(&self, a: &[f64], w: &[f64], b: &[f64]) -> f64 {
        kkt_residual(a, w, b, self.norm_inf)
    }

    /// $a_S=M_{SS}^{-1}b_S$: with the cached LU of the base support $B$ when $S=B$, by the
    /// bordered solve on it when $S$ differs from $B$ by a few indices, else after a fresh
    /// factorisation ($S$ becomes the base).
    fn solve_support(&mut self, s: &[usize], b: &[f64], allow_complement: bool) -> Vec<f64> {
        if allow_complement && self.use_complement(s) {
            self.prepare_complement(s);
            self.last_complement = true;
            return self.complement_solve_rhs(s, b);
        }
        self.last_complement = false;
        let usable = match &mut self.cache {
            Some(c) => c.prepare(&self.m, s),
            None => false,
        };
        if !usable {
            self.refactor(s);
        }
        self.cache.as_ref().expect("cache filled above").solve(s, b)
    }

    /// Factorise $M_{SS}$ afresh and make $S$ the base support.
    fn refactor(&mut self, s: &[usize]) {
        self.cache = Some(SupportLu::new(&self.m, s));
        self.factorisations += 1;
    }

    /// One correction $a_S\leftarrow a_S+M_{SS}^{-1}(b_S-(Ma)_S)$ with the cached factorisation
    /// (iterative refinement; the residual rows are those of $w$ on $S$, so no extra product is
    /// needed).
    fn refine(&self, s: &[usize], a: &mut [f64], w: &[f64]) {
        let r: Vec<f64> = w.iter().map(|x| -x).collect();
        let dx = if self.last_complement {
            self.complement_solve(s, &r)
        } else if let Some(c) = &self.cache {
            c.solve(s, &r)
        } else {
            return;
        };
        for (k, &i) in s.iter().enumerate() {
            a[i] += dx[k];
        }
    }

    /// The iterate of support `s`: $a_S=M_{SS}^{-1}b_S$, $a=0$ off $S$, and $w=Ma-b$. A solve whose
    /// rows of $S$ are within $10^{-9}$ of the scale is returned as it is (an intermediate iterate
    /// only decides the next support; a candidate fixed point is made precise by
    /// [`LcpSolver::refine_to_roundoff`] before it is accepted).
    fn iterate_from(&mut self, s: &[usize], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
        self.iterate_from_with(s, b, true, false)
    }

    fn iterate_from_with(
        &mut self,
        s: &[usize],
        b: &[f64],
        allow_complement: bool,
        precise: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let n = b.len();
        let mut a = vec![0.0; n];
        self.last_complement = false;
        if !s.is_empty() {
            let x = self.solve_support(s, b, allow_complement);
            for (k, &i) in s.iter().enumerate() {
                a[i] = x[k];
            }
        }
        if !precise {
            let w = self.lcp_residual_fast(&a, b);
            let scale = self.scale(&a, b);
            if s.iter().all(|&i| w[i].abs() <= 1e-9 * scale) {
                return (a, w);
            }
        }
        let w = self.lcp_residual(&a, b);
        self.refine_to_roundoff(s, b, a, w)
    }

    /// $w=Ma-b$ with the dense $M$ (exact zeros skipped).
    fn lcp_residual(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut w = matvec_ranged(&self.m, &self.ranges, a);
        w.iter_mut().zip(b).for_each(|(wi, bi)| *wi -= bi);
        w
    }

    /// The structured product, when it is cheaper than the dense one for `a`.
    fn fast_product(&self, a: &[f64]) -> Option<&Product> {
        self.product
            .as_ref()
            .filter(|p| a.iter().filter(|&&t| t != 0.0).count() > p.columns)
    }

    /// $w=Ma-b$ by the structured product when it pays (for intermediate iterates, which only
    /// decide the next support: it agrees with the dense product to a few $10^{-15}$ of the
    /// scale, below the threshold $Nu/2$ of an index joining the support but not below the
    /// $10^{-15}$ of [`LcpSolver::refine_to_roundoff`], whose callers pass a dense $w$).
    fn lcp_residual_fast(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        let Some(p) = self.fast_product(a) else {
            return self.lcp_residual(a, b);
        };
        let mut w = (p.apply)(a);
        w.iter_mut().zip(b).for_each(|(wi, bi)| *wi -= bi);
        w
    }

    /// The scale of $w$ ([`w_scale`]).
    fn scale(&self, a: &[f64], b: &[f64]) -> f64 {
        w_scale(a, b, self.norm_inf)
    }

    /// Refine the iterate `(a, w)` of support `s` (solved by the last [`LcpSolver::solve_support`])
    /// to round-off: once when the rows of $S$ are not at $10^{-13}$ relative; a bordered or
    /// complement solve until they are at $10^{-15}$ (round-off of a backward-stable direct
    /// solve), at most twice (three times through $W$), otherwise $M_{SS}$ is factorised afresh,
    /// so the accuracy is never below that of a direct LU.
    fn refine_to_roundoff(
        &mut self,
        s: &[usize],
        b: &[f64],
        mut a: Vec<f64>,
        mut w: Vec<f64>,
    ) -> (Vec<f64>, Vec<f64>) {
        let scale = self.scale(&a, b);
        if s.iter().any(|&i| w[i].abs() > 1e-13 * scale) {
            self.refine(s, &mut a, &w);
            w = self.lcp_residual(&a, b);
        }
        let complement = self.last_complement;
        let bordered =
            complement || matches!(&self.cache, Some(c) if c.base.as_slice() != s && !s.is_empty());
        if bordered {
            let off = |w: &[f64]| s.iter().any(|&i| w[i].abs() > 1e-15 * scale);
            for _ in 0..if complement { 3 } else { 2 } {
                if !off(&w) {
                    break;
                }
                self.refine(s, &mut a, &w);
                w = self.lcp_residual(&a, b);
            }
            if off(&w) {
                if complement {
                    self.complement_fallbacks += 1;
                }
                self.refactor(s);
                return self.iterate_from_with(s, b, false, true);
            }
        }
        (a, w)
    }

    /// The active-set iteration from support `s`. Returns the last iterate, its residual,
    /// iterations, and whether it stopped on a fixed point (`true`) or a cycle / the limit.
    fn active_set(
        &mut self,
        mut s: Vec<usize>,
        b: &[f64],
        max_iter: usize,
    ) -> (Vec<f64>, Vec<f64>, f64, usize, bool) {
        let change_ratio = self.change_ratio;
        let mut seen: HashSet<Vec<usize>> = HashSet::new();
        let mut best: Option<(Vec<f64>, Vec<f64>, f64)> = None;
        let mut it = 0;
        while it < max_iter {
            it += 1;
            if !seen.insert(s.clone()) {
                break;
            }
            let in_s: Vec<bool> = {
                let mut v = vec![false; b.len()];
                s.iter().for_each(|&i| v[i] = true);
                v
            };
            // An index joins the support only for a violation above the round-off level
            // N u of the solve (theory/finite_flow.md §8c): below it, which indices w < 0
            // picks is decided by rounding errors, and chasing them costs a factorisation
            // per iterate on scattered supports.
            //
            // Only the indices whose violation is at least `change_ratio` times the largest change
            // (theory/finite_flow.md §8g): the smaller ones mostly follow the large ones, and
            // flipping them now makes changes that later iterates undo. A fixed point is still
            // an iterate without any violation.
            let norm_inf = self.norm_inf;
            let next_support = |a: &[f64], w: &[f64]| -> Vec<usize> {
                let add_below = -(b.len() as f64) * 0.5 * f64::EPSILON * w_scale(a, b, norm_inf);
                // violations on the scales of the KKT residual: a_i <= 0 in S (an exact 0 is a
                // violation too), w_i below the round-off level off S
                let (sa, sw) = (
                    amax(a).max(f64::MIN_POSITIVE),
                    w_scale(a, b, norm_inf).max(f64::MIN_POSITIVE),
                );
                let viol = |i: usize| {
                    if in_s[i] {
                        if a[i] > 0.0 {
                            0.0
                        } else {
                            -a[i] / sa + f64::MIN_POSITIVE
                        }
                    } else if w[i] < add_below {
                        -w[i] / sw
                    } else {
                        0.0
                    }
                };
                let vmax = (0..b.len()).map(viol).fold(0.0, f64::max);
                (0..b.len())
                    .filter(|&i| {
                        let v = viol(i);
                        let change = v > 0.0 && v >= change_ratio * vmax;
                        in_s[i] != change
                    })
                    .collect()
            };
            let (mut a, mut w) = self.iterate_from(&s, b);
            let mut next = next_support(&a, &w);
            if next == s {
                // a candidate fixed point: decided again on the iterate refined to round-off
                // (from the dense residual: the iterate's may come from the structured product)
                if self.fast_product(&a).is_some() {
                    w = self.lcp_residual(&a, b);
                }
                (a, w) = self.refine_to_roundoff(&s, b, a, w);
                next = next_support(&a, &w);
            }
            let r = self.residual(&a, &w, b);
            if next == s {
                // a fixed point: a > 0 on S, a = 0 off S, w >= 0 off S (not an earlier iterate
                // with a smaller residual, which may carry tiny negative coefficients)
                return (a, w, r, it, true);
            }
            if best.as_ref().is_none_or(|(_, _, rb)| r < *rb) {
                best = Some((a, w, r));
            }
            s = next;
        }
        let (a, w, r) = best.unwrap_or_else(|| {
            let n = b.len();
            (vec![0.0; n], b.iter().map(|x| -x).collect(), f64::INFINITY)
        });
        (a, w, r, it, false)
    }

    /// Solve the LCP for right-hand side `b`, warm-started from `warm` (a support guess; `None`
    /// starts from the full index set).
    ///
    /// # Errors
    /// [`LcpFailure`] with the smallest residual reached when no method reaches `params.tol`.
    pub fn solve(
        &mut self,
        b: &[f64],
        warm: Option<&[usize]>,
        params: &LcpParams,
    ) -> Result<LcpSolution, LcpFailure> {
        crate::linalg::flush_subnormals(|| self.solve_flushed(b, warm, params))
    }

    /// [`LcpSolver::solve`] with subnormals flushed (far-field entries of the kernel make the
    /// LU and the products slow otherwise; theory/finite_flow.md §8c).
    fn solve_flushed(
        &mut self,
        b: &[f64],
        warm: Option<&[usize]>,
        params: &LcpParams,
    ) -> Result<LcpSolution, LcpFailure> {
        let n = self.m.nrows();
        assert_eq!(b.len(), n, "LCP right-hand side of the wrong length");
        self.take_params(params);
        let start: Vec<usize> = match warm {
            Some(s) => s.to_vec(),
            None => (0..n).collect(),
        };
        let mut path = Vec::new();
        let (a, w, r, it, fixed) = self.active_set(start, b, params.max_active_set);
        let mut iterations = it;
        if fixed && r <= params.tol {
            return Ok(self.finish(a, w, r, LcpMethod::ActiveSet, iterations));
        }
        let mut best_r = r;
        path.push(format!(
            "active-set({}, residual {r:.2e})",
            if fixed { "fixed point" } else { "cycle/limit" }
        ));
        if let Some((a, w, r, it)) = self.interior_point_polished(b, params) {
            iterations += it;
            best_r = best_r.min(r);
            if r <= params.tol {
                return Ok(self.finish(a, w, r, LcpMethod::InteriorPoint, iterations));
            }
        }
        path.push(format!("interior-point(residual {best_r:.2e})"));
        // Fischer–Burmeister from the clamped active-set iterate.
        let a0: Vec<f64> = a.iter().map(|x| x.max(0.0)).collect();
        let a_fb = self.fischer_burmeister(a0, b, params.max_fb);
        if let Some((a, w, r, it)) = self.polish(&a_fb, b, params.max_active_set) {
            iterations += it;
            best_r = best_r.min(r);
            if r <= params.tol {
                return Ok(self.finish(a, w, r, LcpMethod::FischerBurmeister, iterations));
            }
        }
        path.push(format!("fischer-burmeister(residual {best_r:.2e})"));
        if let Some(a_l) = self.lemke(b) {
            if let Some((a, w, r, it)) = self.polish(&a_l, b, params.max_active_set) {
                iterations += it;
                best_r = best_r.min(r);
                if r <= params.tol {
                    return Ok(self.finish(a, w, r, LcpMethod::Lemke, iterations));
                }
            }
            path.push(format!("lemke(residual {best_r:.2e})"));
        } else {
            path.push("lemke(ray termination)".into());
        }
        Err(LcpFailure {
            residual: best_r,
            path: path.join(" > "),
        })
    }

    /// Solve with one method forced (for cross-checks): the active set from the full index set,
    /// or interior point / Fischer–Burmeister / Lemke from scratch, each polished as in
    /// [`LcpSolver::solve`].
    ///
    /// # Errors
    /// [`LcpFailure`] when the method does not reach `params.tol`.
    pub fn solve_by(
        &mut self,
        b: &[f64],
        method: LcpMethod,
        params: &LcpParams,
    ) -> Result<LcpSolution, LcpFailure> {
        let n = self.m.nrows();
        assert_eq!(b.len(), n, "LCP right-hand side of the wrong length");
        self.take_params(params);
        let approx = match method {
            LcpMethod::ActiveSet => {
                let (a, w, r, it, _) = self.active_set((0..n).collect(), b, params.max_active_set);
                return if r <= params.tol {
                    Ok(self.finish(a, w, r, method, it))
                } else {
                    Err(LcpFailure {
                        residual: r,
                        path: "active-set".into(),
                    })
                };
            }
            LcpMethod::FischerBurmeister => {
                Some(self.fischer_burmeister(vec![0.0; n], b, params.max_fb))
            }
            LcpMethod::Lemke => self.lemke(b),
            LcpMethod::InteriorPoint => None,
        };
        let polished = if method == LcpMethod::InteriorPoint {
            self.interior_point_polished(b, params)
        } else {
            approx.and_then(|x| self.polish(&x, b, params.max_active_set))
        };
        match polished {
            Some((a, w, r, it)) if r <= params.tol => Ok(self.finish(a, w, r, method, it)),
            other => Err(LcpFailure {
                residual: other.map_or(f64::INFINITY, |o| o.2),
                path: method.name().into(),
            }),
        }
    }

    /// The accepted solution. Coefficients are clamped at 0 (a no-op for a fixed point of the
    /// active set), so that $\mu=a\odot Ka\ge0$ holds exactly downstream; the residual was
    /// computed by the caller on the same iterate and bounds the clamped amount.
    fn finish(
        &self,
        mut a: Vec<f64>,
        w: Vec<f64>,
        r: f64,
        method: LcpMethod,
        iterations: usize,
    ) -> LcpSolution {
        a.iter_mut().for_each(|x| *x = x.max(0.0));
        let support = (0..a.len()).filter(|&i| a[i] > 0.0).collect();
        LcpSolution {
            a,
            w,
            residual: r,
            method,
            iterations,
            support,
        }
    }

    /// Restart the active set from the support of an approximate solution.
    fn polish(
        &mut self,
        approx: &[f64],
        b: &[f64],
        max_iter: usize,
    ) -> Option<(Vec<f64>, Vec<f64>, f64, usize)> {
        if approx.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let w = self.lcp_residual(approx, b);
        let s: Vec<usize> = (0..b.len()).filter(|&i| approx[i] > w[i]).collect();
        let (a, w, r, it, _) = self.active_set(s, b, max_iter);
        Some((a, w, r, it))
    }

    /// Fischer–Burmeister semismooth Newton with Armijo line search; returns the last iterate.
    fn fischer_burmeister(&self, mut a: Vec<f64>, b: &[f64], max_iter: usize) -> Vec<f64> {
        let n = b.len();
        let phi = |a: &[f64]| -> (Vec<f64>, Vec<f64>) {
            let w = self.lcp_residual(a, b);
            let p = a
                .iter()
                .zip(&w)
                .map(|(&x, &y)| x + y - x.hypot(y))
                .collect();
            (p, w)
        };
        let theta = |p: &[f64]| 0.5 * p.iter().map(|t| t * t).sum::<f64>();
        let (mut p, mut w) = phi(&a);
        for _ in 0..max_iter {
            let th = theta(&p);
            if th == 0.0 {
                break;
            }
            let (da, dw): (Vec<f64>, Vec<f64>) = (0..n)
                .map(|i| {
                    let r = a[i].hypot(w[i]);
                    if r > 0.0 {
                        (1.0 - a[i] / r, 1.0 - w[i] / r)
                    } else {
                        (
                            1.0 - std::f64::consts::FRAC_1_SQRT_2,
                            1.0 - std::f64::consts::FRAC_1_SQRT_2,
                        )
                    }
                })
                .unzip();
            let j = Mat::from_fn(n, n, |i, k| {
                let d = if i == k { da[i] } else { 0.0 };
                d + dw[i] * self.m[(i, k)]
            });
            // gradient of theta: J^T p
            let grad: Vec<f64> = (0..n)
                .map(|k| (0..n).map(|i| j[(i, k)] * p[i]).sum())
                .collect();
            let rhs = faer::Col::<f64>::from_fn(n, |i| -p[i]);
            let dcol = j.partial_piv_lu().solve(&rhs);
            let mut d: Vec<f64> = (0..n).map(|i| dcol[i]).collect();
            let gd: f64 = grad.iter().zip(&d).map(|(g, x)| g * x).sum();
            let dn2: f64 = d.iter().map(|x| x * x).sum();
            if !gd.is_finite() || gd > -1e-12 * dn2 {
                d = grad.iter().map(|g| -g).collect();
            }
            let gd: f64 = grad.iter().zip(&d).map(|(g, x)| g * x).sum();
            let mut t = 1.0;
            let mut accepted = false;
            for _ in 0..40 {
                let trial: Vec<f64> = a.iter().zip(&d).map(|(x, y)| x + t * y).collect();
                let (pt, wt) = phi(&trial);
                if theta(&pt) <= th + 1e-4 * t * gd {
                    a = trial;
                    p = pt;
                    w = wt;
                    accepted = true;
                    break;
                }
                t *= 0.5;
            }
            if !accepted {
                break;
            }
        }
        a
    }

    /// The infeasible primal-dual interior-point method with Mehrotra's predictor–corrector for
    /// the monotone LCP ($x^\top Mx=x^\top Kx>0$; Wright, *Primal-Dual Interior-Point Methods*,
    /// SIAM 1997, ch. 8 and 10), each stage polished: the iterates are driven to
    /// $\mu\le10^{-16}$, $10^{-20}$, $10^{-24}$ (relative to $\lVert x\rVert_\infty$ times the scale of
    /// $w$) in turn, and after each stage the active set restarts from the support $\{x_i>w_i\}$;
    /// the next stage only runs when that polish fails (near-degenerate indices, with $x_i$ and
    /// $w_i$ both of order $\sqrt\mu$, are classified only at small $\mu$; theory/finite_flow.md
    /// §8f). Returns the best polished result.
    fn interior_point_polished(
        &mut self,
        b: &[f64],
        params: &LcpParams,
    ) -> Option<(Vec<f64>, Vec<f64>, f64, usize)> {
        let mut st = self.ip_start(b);
        let mut best: Option<(Vec<f64>, Vec<f64>, f64, usize)> = None;
        let mut iterations = 0;
        for target in [1e-16, 1e-20, 1e-24] {
            self.interior_point(b, &mut st, target, params.max_ip);
            if let Some((a, w, r, it)) = self.polish(&st.x, b, params.max_active_set) {
                iterations += it;
                if best.as_ref().is_none_or(|bst| r < bst.2) {
                    best = Some((a, w, r, iterations));
                }
                if r <= params.tol {
                    break;
                }
            }
            if st.stalled {
                break;
            }
        }
        best
    }

    /// The interior-point start: $x$ of the size $M^{-1}b$ has row by row, $s$ of the size of $b$.
    fn ip_start(&self, b: &[f64]) -> IpState {
        let n = b.len();
        let bmax = amax(b);
        let (x0, s0) = if bmax > 0.0 && self.norm_inf > 0.0 {
            (bmax / self.norm_inf, bmax)
        } else {
            (1.0, 1.0)
        };
        IpState {
            x: vec![x0; n],
            s: vec![s0; n],
            iterations: 0,
            stalled: false,
        }
    }

    /// Interior-point iterations on `st` until $\mu\le$ `target` $\lVert x\rVert_\infty$ times the
    /// scale of $w$ with the residual $r=s-(Mx-b)$ at $10^{-15}$ of the scale, or a stall (a step
    /// below $10^{-12}$, a non-finite direction, or the larger of these two scale-free measures
    /// not halved in 15 iterations), or
    /// `max_iter` iterations in all. The Newton system of $s-Mx+b=0$,
    /// $x\odot s=\sigma\mu\mathbb1$ reduces to $(M+X^{-1}S)\,dx=X^{-1}r_c+r$, $ds=M\,dx-r$: one
    /// dense LU per iteration and two solves (predictor with $\sigma=0$; corrector with
    /// $\sigma=(\mu_{\rm aff}/\mu)^3$ and the second-order term), steps at 0.99 of the boundary.
    fn interior_point(&self, b: &[f64], st: &mut IpState, target: f64, max_iter: usize) {
        let n = b.len();
        let step_to_boundary = |v: &[f64], dv: &[f64]| {
            v.iter()
                .zip(dv)
                .filter(|(_, &d)| d < 0.0)
                .map(|(&t, &d)| -t / d)
                .fold(1.0f64, f64::min)
        };
        let mut history: Vec<f64> = Vec::new();
        while !st.stalled && st.iterations < max_iter {
            let (x, s) = (&st.x, &st.s);
            let w = self.lcp_residual(x, b);
            let r: Vec<f64> = s.iter().zip(&w).map(|(si, wi)| si - wi).collect();
            let mu = dot(x, s) / n as f64;
            let scale = w_scale(x, b, self.norm_inf);
            let xmax = amax(x);
            let rmax = amax(&r);
            if mu <= target * xmax * scale && rmax <= 1e-15 * scale {
                return;
            }
            // progress of the larger of the scale-free complementarity gap and residual
            history.push((mu / (xmax * scale)).max(rmax / scale));
            let h = history.len();
            if h > 15 && history[h - 1] > 0.5 * history[h - 16] {
                st.stalled = true;
                return;
            }
            st.iterations += 1;
            let j = Mat::from_fn(n, n, |i, k| {
                self.m[(i, k)] + if i == k { s[i] / x[i] } else { 0.0 }
            });
            let lu = j.partial_piv_lu();
            // r_c = -x s + sigma mu - corr: dx = J^{-1}(r_c / x + r), ds = M dx - r
            let direction = |rc: &[f64]| -> (Vec<f64>, Vec<f64>) {
                let rhs: Vec<f64> = (0..n).map(|i| rc[i] / x[i] + r[i]).collect();
                let dx = solve_lu(&lu, &rhs);
                let mdx = matvec_ranged(&self.m, &self.ranges, &dx);
                let ds = mdx.iter().zip(&r).map(|(m, ri)| m - ri).collect();
                (dx, ds)
            };
            let rc_aff: Vec<f64> = x.iter().zip(s).map(|(xi, si)| -xi * si).collect();
            let (dxa, dsa) = direction(&rc_aff);
            let alpha_a = step_to_boundary(x, &dxa).min(step_to_boundary(s, &dsa));
            let mu_aff = (0..n)
                .map(|i| (x[i] + alpha_a * dxa[i]) * (s[i] + alpha_a * dsa[i]))
                .sum::<f64>()
                / n as f64;
            let sigma = (mu_aff / mu).clamp(0.0, 1.0).powi(3);
            let rc: Vec<f64> = (0..n)
                .map(|i| -x[i] * s[i] + sigma * mu - dxa[i] * dsa[i])
                .collect();
            let (dx, ds) = direction(&rc);
            let alpha = (0.99 * step_to_boundary(x, &dx).min(step_to_boundary(s, &ds))).min(1.0);
            if alpha.is_nan() || alpha <= 1e-12 || dx.iter().chain(&ds).any(|t| !t.is_finite()) {
                st.stalled = true;
                return;
            }
            st.x.iter_mut().zip(&dx).for_each(|(t, d)| *t += alpha * d);
            st.s.iter_mut().zip(&ds).for_each(|(t, d)| *t += alpha * d);
        }
    }

    /// Lemke's method with covering vector 1 on the tableau $w-Mz-\mathbb1z_0=q$, $q=-b$.
    /// Returns `None` on ray termination or the pivot limit.
    fn lemke(&self, b: &[f64]) -> Option<Vec<f64>> {
        let n = b.len();
        let cols = 2 * n + 2;
        let rhs = 2 * n + 1;
        let z0 = 2 * n;
        // row-major tableau
        let mut t = vec![0.0; n * cols];
        for i in 0..n {
            t[i * cols + i] = 1.0;
            for j in 0..n {
                t[i * cols + n + j] = -self.m[(i, j)];
            }
            t[i * cols + z0] = -1.0;
            t[i * cols + rhs] = -b[i];
        }
        let mut basis: Vec<usize> = (0..n).collect();
        // q >= 0: z = 0 solves it
        let (r0, qmin) =
            (0..n)
                .map(|i| (i, t[i * cols + rhs]))
                .fold(
                    (0, f64::INFINITY),
                    |acc, x| if x.1 < acc.1 { x } else { acc },
                );
        if qmin >= 0.0 {
            return Some(vec![0.0; n]);
        }
        let pivot = |t: &mut Vec<f64>, r: usize, c: usize| {
            let p = t[r * cols + c];
            for k in 0..cols {
                t[r * cols + k] /= p;
            }
            for i in 0..n {
                if i != r {
                    let f = t[i * cols + c];
                    if f != 0.0 {
                        for k in 0..cols {
                            t[i * cols + k] -= f * t[r * cols + k];
                        }
                    }
                }
            }
        };
        pivot(&mut t, r0, z0);
        let mut leaving = basis[r0];
        basis[r0] = z0;
        let max_pivots = 50 * n + 100;
        for _ in 0..max_pivots {
            let entering = if leaving < n {
                leaving + n
            } else {
                leaving - n
            };
            // ratio test: rows with positive coefficient limit the entering variable
            let mut best: Option<(usize, f64, f64)> = None;
            for i in 0..n {
                let c = t[i * cols + entering];
                if c > 1e-12 {
                    let ratio = t[i * cols + rhs] / c;
                    let better = match best {
                        None => true,
                        Some((bi, br, bc)) => {
                            ratio < br - 1e-14 * br.abs().max(1e-300)
                                || ((ratio - br).abs() <= 1e-14 * br.abs().max(1e-300)
                                    && (basis[i] == z0 || (basis[bi] != z0 && c > bc)))
                        }
                    };
                    if better {
                        best = Some((i, ratio, c));
                    }
                }
            }
            let (r, _, _) = best?;
            pivot(&mut t, r, entering);
            leaving = basis[r];
            basis[r] = entering;
            if leaving == z0 {
                let mut z = vec![0.0; n];
                for (i, &v) in basis.iter().enumerate() {
                    if (n..2 * n).contains(&v) {
                        z[v - n] = t[i * cols + rhs].max(0.0);
                    }
                }
                return Some(z);
            }
        }
        None
    }
}

/// $\lVert M\rVert_\infty\lVert a\rVert_\infty+\lVert b\rVert_\infty$ (with
/// $\lVert M\rVert_\infty$ = `norm_m`), the scale of $w=Ma-b$.
fn w_scale(a: &[f64], b: &[f64], norm_m: f64) -> f64 {
    norm_m * amax(a) + amax(b)
}

/// $\lVert x\rVert_\infty$.
fn amax(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, t| m.max(t.abs()))
}

/// The scale-free KKT residual (module docs).
pub fn kkt_residual(a: &[f64], w: &[f64], b: &[f64], norm_m: f64) -> f64 {
    let sa = match amax(a) {
        m if m > 0.0 => m,
        _ => 1.0,
    };
    let sw = w_scale(a, b, norm_m);
    let sw = if sw > 0.0 { sw } else { 1.0 };
    let r = a
        .iter()
        .zip(w)
        .map(|(&x, &y)| (x / sa).min(y / sw).abs())
        .fold(0.0f64, f64::max);
    if a.iter().chain(w).any(|t| !t.is_finite()) {
        f64::INFINITY
    } else {
        r
    }
}

/// The most indices a base's universe holds ([`SupportLu`]): $\max(8,\lvert B\rvert)$, so that $G$
/// and $Z$ take at most about the memory of the LU.
fn universe_cap(nb: usize) -> usize {
    8usize.max(nb)
}

/// From this size $k$ of the Schur block on, it is solved by nested bordering
/// ([`SupportLu::inner`]) rather than factorised afresh.
const NESTED_MIN: usize = 128;

/// The LU of $M_{BB}$ for a base support $B$ and, for a support $S=B\setminus R\cup A$ near it,
/// the bordered system
/// $$\begin{pmatrix}M_{BB}&M_{BA}&E_R\\M_{AB}&M_{AA}&0\\E_R^\top&0&0\end{pmatrix}
/// \begin{pmatrix}x_B\\x_A\\\lambda\end{pmatrix}=\begin{pmatrix}b_B\\b_A\\0\end{pmatrix}$$
/// ($x_R=0$; the multipliers $\lambda$ free the rows of $R$), whose solution is $M_{SS}^{-1}b_S$.
/// Block elimination on the cached LU needs the columns $G_{:j}=M_{BB}^{-1}M_{Bj}$ ($j\in A$) and
/// $M_{BB}^{-1}e_{\mathrm{pos}(j)}$ ($j\in R$) and the $k\times k$ Schur complement
/// $Z_{PP}=\bigl(\begin{smallmatrix}M_{AA}&0\\0&0\end{smallmatrix}\bigr)-\bigl(\begin{smallmatrix}M_{AB}\\E_R^\top\end{smallmatrix}\bigr)G_{:P}$,
/// $P=A\cup R$, $k=\lvert P\rvert$ (non-singular: $\det$ of the bordered matrix is
/// $\pm\det M_{SS}\ne0$ for a P-matrix); then per right-hand side one cached solve,
/// $O(k\lvert B\rvert)$ and a $k\times k$ solve (theory/finite_flow.md §8, §8d).
///
/// Neither a column of $G$ nor an entry of $Z$ depends on the support, only on $M$, $B$ and the
/// indices involved: they are computed once per index, for all the indices met so far
/// ([`Universe`]), by blocked solves and products (BLAS-3), and every later support of the same
/// base (the next active-set iterate, the next step) costs only the LU of its $k\times k$ block
/// of $Z$ — or, from $k\ge$ [`NESTED_MIN`] on, a bordered solve of that block on the LU of an
/// earlier Schur block $Z_{P_0P_0}$ of the same base ([`SupportLu::inner`], the same structure one
/// level down; consecutive iterates change $P$ by a few dozen of its hundreds of indices,
/// theory/finite_flow.md §8h). Used while $k\le\max(4,\lvert B\rvert/2)$ and at most $\max(8,\lvert B\rvert)$ indices
/// have been met; beyond, $M_{SS}$ is factorised afresh and becomes the base.
struct SupportLu {
    base: Vec<usize>,
    lu: BandedLu,
    /// Position in `base` of every index of the full set (`usize::MAX` outside $B$).
    pos: Vec<usize>,
    uni: Universe,
    bord: Option<Bordered>,
    /// The bordered factorisation of the Schur blocks $Z_{PP}$: a [`SupportLu`] over the members'
    /// $Z$, whose base is an earlier Schur set $P_0$ (nested bordering, for large $k$).
    inner: Option<Box<SupportLu>>,
    /// The last right-hand side on $B$ of a bordered solve and $M_{BB}^{-1}$ of it.
    last: std::cell::RefCell<Option<(Vec<f64>, Vec<f64>)>>,
}

/// The indices met so far in supports near the base $B$ (outside $B$: "added", inside:
/// "removed"), with the columns of $G$ and the Schur matrix $Z$ over them ([`SupportLu`]).
struct Universe {
    /// Full-set index of each member, in order of arrival.
    idx: Vec<usize>,
    /// Member slot of every full-set index (`usize::MAX` if not a member).
    slot: Vec<usize>,
    /// $G$, column-major with $\lvert B\rvert$ rows, a column per member.
    g: Vec<f64>,
    /// The rows $M_{jB}$ of the added members, each contiguous, in order of arrival.
    rows: Vec<f64>,
    /// Slots of the added members, in the order of `rows`.
    added_slots: Vec<usize>,
    /// Index into `rows` of every member (`usize::MAX` for a removed one).
    row_of: Vec<usize>,
    /// $Z$ over the members: row $t$ of an added member $j$ is
    /// $[M_{jj'}]_{j'\text{ added}}-M_{jB}G_{:t'}$, of a removed one $-G_{\mathrm{pos}(j),t'}$.
    z: Mat<f64>,
}

struct Bordered {
    support: Vec<usize>,
    /// Indices of $A=S\setminus B$ (sorted).
    added: Vec<usize>,
    /// Member slots of $A$, then of $R=B\setminus S$.
    slots: Vec<usize>,
    /// Positions in $B$ of $R$.
    removed: Vec<usize>,
    schur: SchurLu,
}

/// How a bordered solve solves its Schur block $Z_{PP}$ ([`SupportLu`]).
enum SchurLu {
    /// An LU of $Z_{PP}$.
    Direct(faer::linalg::solvers::PartialPivLu<f64>),
    /// Through [`SupportLu::inner`], prepared for the sorted slots `sorted`; `order[c]` is the
    /// position in `sorted` of the `c`-th slot of [`Bordered::slots`].
    Nested {
        sorted: Vec<usize>,
        order: Vec<usize>,
    },
}

impl SupportLu {
    /// Factorise $M_{BB}$ for the base `base` (sorted).
    fn new(m: &Mat<f64>, base: &[usize]) -> SupportLu {
        let n = m.nrows();
        let sub = Mat::from_fn(base.len(), base.len(), |i, j| m[(base[i], base[j])]);
        let mut pos = vec![usize::MAX; n];
        base.iter().enumerate().for_each(|(p, &i)| pos[i] = p);
        SupportLu {
            base: base.to_vec(),
            lu: BandedLu::new(sub.as_ref()),
            pos,
            uni: Universe {
                idx: Vec::new(),
                slot: vec![usize::MAX; n],
                g: Vec::new(),
                rows: Vec::new(),
                added_slots: Vec::new(),
                row_of: Vec::new(),
                z: {
                    // the universe's cap, so that growing Z never moves it
                    let mut z = Mat::zeros(0, 0);
                    z.reserve(universe_cap(base.len()), universe_cap(base.len()));
                    z
                },
            },
            bord: None,
            inner: None,
            last: std::cell::RefCell::new(None),
        }
    }

    /// Make `s` solvable with the cached LU (bordering when it is near the base); `false` when a
    /// fresh factorisation is needed.
    fn prepare(&mut self, m: &Mat<f64>, s: &[usize]) -> bool {
        if self.base.as_slice() == s {
            return true;
        }
        if matches!(&self.bord, Some(bd) if bd.support.as_slice() == s) {
            return true;
        }
        let nb = self.base.len();
        if nb == 0 {
            return false;
        }
        // both lists are sorted
        let added: Vec<usize> = s
            .iter()
            .copied()
            .filter(|&i| self.pos[i] == usize::MAX)
            .collect();
        let removed: Vec<usize> = (0..nb)
            .filter(|&p| s.binary_search(&self.base[p]).is_err())
            .collect();
        let k = added.len() + removed.len();
        // past half the base, or at least |S|, a fresh LU of M_SS is the cheaper (and the more
        // accurate: with more changes than kept indices the bordered system is larger than M_SS)
        if k > 4usize.max(nb / 2) || k >= s.len() {
            return false;
        }
        let fresh: Vec<usize> = added
            .iter()
            .copied()
            .chain(removed.iter().map(|&p| self.base[p]))
            .filter(|&j| self.uni.slot[j] == usize::MAX)
            .collect();
        if self.uni.idx.len() + fresh.len() > universe_cap(nb) {
            return false;
        }
        self.extend(m, &fresh);
        let uni = &self.uni;
        let slots: Vec<usize> = added
            .iter()
            .chain(removed.iter().map(|&p| &self.base[p]))
            .map(|&j| uni.slot[j])
            .collect();
        let schur = if k >= NESTED_MIN {
            let mut sorted = slots.clone();
            sorted.sort_unstable();
            let order = slots
                .iter()
                .map(|t| sorted.binary_search(t).expect("a member slot"))
                .collect();
            let members = uni.z.nrows();
            let usable = match &mut self.inner {
                Some(inner) => {
                    inner.grow(members);
                    inner.prepare(&uni.z, &sorted)
                }
                None => false,
            };
            if !usable {
                self.inner = Some(Box::new(SupportLu::new(&uni.z, &sorted)));
            }
            SchurLu::Nested { sorted, order }
        } else {
            let mut z = Mat::<f64>::zeros(k, k);
            for (c, &tc) in slots.iter().enumerate() {
                let src = col_slice(&uni.z, tc);
                let dst = z.col_mut(c).try_as_col_major_mut().expect("column-major");
                for (d, &tr) in dst.as_slice_mut().iter_mut().zip(&slots) {
                    *d = src[tr];
                }
            }
            SchurLu::Direct(z.partial_piv_lu())
        };
        self.bord = Some(Bordered {
            support: s.to_vec(),
            added,
            slots,
            removed,
            schur,
        });
        true
    }

    /// Widen the index maps to a full set of `n` indices (the members' $Z$ of an outer
    /// [`SupportLu`] grows as its universe does; earlier entries are unchanged).
    fn grow(&mut self, n: usize) {
        if self.pos.len() < n {
            self.pos.resize(n, usize::MAX);
            self.uni.slot.resize(n, usize::MAX);
        }
    }

    /// Add the indices `fresh` (not yet members) to the universe: their columns of $G$ by one
    /// blocked solve, their rows and columns of $Z$ by two products.
    fn extend(&mut self, m: &Mat<f64>, fresh: &[usize]) {
        let q = fresh.len();
        if q == 0 {
            return;
        }
        let nb = self.base.len();
        let uni = &mut self.uni;
        let t0 = uni.idx.len();
        let t1 = t0 + q;
        let mut rhs = Mat::<f64>::zeros(nb, q);
        for (c, &j) in fresh.iter().enumerate() {
            let dst = rhs.col_mut(c).try_as_col_major_mut().expect("column-major");
            let dst = dst.as_slice_mut();
            if self.pos[j] != usize::MAX {
                dst[self.pos[j]] = 1.0;
            } else {
                let col = col_slice(m, j);
                dst.iter_mut()
                    .zip(&self.base)
                    .for_each(|(d, &i)| *d = col[i]);
            }
        }
        self.lu.solve_many(&mut rhs);
        let na0 = uni.added_slots.len();
        for (c, &j) in fresh.iter().enumerate() {
            uni.g.extend_from_slice(col_slice(&rhs, c));
            uni.slot[j] = t0 + c;
            uni.idx.push(j);
            if self.pos[j] == usize::MAX {
                uni.row_of.push(uni.added_slots.len());
                uni.added_slots.push(t0 + c);
                uni.rows.extend(self.base.iter().map(|&i| m[(j, i)]));
            } else {
                uni.row_of.push(usize::MAX);
            }
        }
        let na1 = uni.added_slots.len();
        uni.z.resize_with(t1, t1, |_, _| 0.0);
        let g = faer::MatRef::from_column_major_slice(&uni.g, nb, t1);
        let rows = faer::MatRef::from_column_major_slice(&uni.rows, nb, na1);
        // every added row against the new columns, the new added rows against the old columns
        let new_cols = rows.transpose() * g.subcols(t0, q);
        let old_cols = rows.subcols(na0, na1 - na0).transpose() * g.subcols(0, t0);
        // column by column (Z and M are column-major): the new columns for every added row, the
        // old columns for the new added rows; then the removed rows
        for c in 0..t1 {
            let jc = uni.idx[c];
            let mcol = (self.pos[jc] == usize::MAX).then(|| col_slice(m, jc));
            let (from, prod, pc) = if c >= t0 {
                (0, &new_cols, c - t0)
            } else {
                (na0, &old_cols, c)
            };
            let zc = uni
                .z
                .col_mut(c)
                .try_as_col_major_mut()
                .expect("column-major");
            let zc = zc.as_slice_mut();
            for ra in from..na1 {
                let t = uni.added_slots[ra];
                let direct = mcol.map_or(0.0, |col| col[uni.idx[t]]);
                zc[t] = direct - prod[(ra - from, pc)];
            }
        }
        for t in 0..t1 {
            let p = self.pos[uni.idx[t]];
            if p == usize::MAX {
                continue;
            }
            let from = if t < t0 { t0 } else { 0 };
            for c in from..t1 {
                uni.z[(t, c)] = -uni.g[c * nb + p];
            }
        }
    }

    /// $M_{SS}^{-1}g_S$ for a prepared `s` (`g` of full length), ordered as `s`.
    fn solve(&self, s: &[usize], g: &[f64]) -> Vec<f64> {
        let rhs_b: Vec<f64> = self.base.iter().map(|&i| g[i]).collect();
        if self.base.as_slice() == s {
            return self.lu.solve(&rhs_b);
        }
        let bd = self
            .bord
            .as_ref()
            .filter(|bd| bd.support.as_slice() == s)
            .expect("support prepared");
        let uni = &self.uni;
        let nb = self.base.len();
        // every iterate of a step has the same right-hand side: its base solve is kept
        let y0 = {
            let mut last = self.last.borrow_mut();
            match &*last {
                Some((r, y)) if *r == rhs_b => y.clone(),
                _ => {
                    let y = self.lu.solve(&rhs_b);
                    *last = Some((rhs_b, y.clone()));
                    y
                }
            }
        };
        let na = bd.added.len();
        let r: Vec<f64> = bd.slots[..na]
            .iter()
            .zip(&bd.added)
            .map(|(&t, &a)| {
                let ra = uni.row_of[t];
                let row = &uni.rows[ra * nb..(ra + 1) * nb];
                g[a] - row.iter().zip(&y0).map(|(m, y)| m * y).sum::<f64>()
            })
            .chain(bd.removed.iter().map(|&p| -y0[p]))
            .collect();
        let z = match &bd.schur {
            SchurLu::Direct(lu) => solve_lu(lu, &r),
            SchurLu::Nested { sorted, order } => {
                let mut full = vec![0.0; uni.z.nrows()];
                for (&t, &rc) in bd.slots.iter().zip(&r) {
                    full[t] = rc;
                }
                let inner = self.inner.as_ref().expect("nested Schur prepared");
                let x = inner.solve(sorted, &full);
                order.iter().map(|&o| x[o]).collect()
            }
        };
        let mut xb = y0;
        let terms: Vec<(&[f64], f64, usize, usize)> = bd
            .slots
            .iter()
            .zip(&z)
            .filter(|(_, &zc)| zc != 0.0)
            .map(|(&t, &zc)| (&uni.g[t * nb..(t + 1) * nb], -zc, 0, nb))
            .collect();
        axpy_columns(&mut xb, &terms);
        s.iter()
            .map(|&i| match self.pos[i] {
                usize::MAX => {
                    let q = bd.added.binary_search(&i).expect("an added index");
                    z[q]
                }
                p => xb[p],
            })
            .collect()
    }
}

#[cfg(test)]
mod bordered_tests {
    use super::*;

    /// A non-symmetric positive definite (P-) matrix of the resolvent type:
    /// $M_{ij}=K_{ij}(1+0.8(V_i-V_j))$, $K$ a Gaussian kernel on a 1-D grid, $V_i=\sin(\omega i)$.
    fn resolvent_type(n: usize, omega: f64) -> Mat<f64> {
        Mat::from_fn(n, n, |i, j| {
            let d = (i as f64 - j as f64) / 1.5;
            let (vi, vj) = ((i as f64 * omega).sin(), (j as f64 * omega).sin());
            (-d * d).exp() * (1.0 + 0.8 * (vi - vj))
        })
    }

    /// The largest deviation of `x` from a direct solve of $M_{SS}x=b_S$, and the solution's scale.
    fn deviation(m: &Mat<f64>, b: &[f64], s: &[usize], x: &[f64]) -> (f64, f64) {
        let sub = Mat::from_fn(s.len(), s.len(), |i, j| m[(s[i], s[j])]);
        let rhs: Vec<f64> = s.iter().map(|&i| b[i]).collect();
        let x0 = solve_lu(&sub.partial_piv_lu(), &rhs);
        let scale = x0.iter().fold(0.0f64, |a, t| a.max(t.abs()));
        let err = x
            .iter()
            .zip(&x0)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        (err, scale)
    }

    #[test]
    fn bordered_solve_matches_a_direct_factorisation() {
        let n = 60;
        let m = resolvent_type(n, 0.1);
        let mut solver = LcpSolver::new(m.clone());
        let b: Vec<f64> = (0..n).map(|i| 1.0 + (i as f64 * 0.3).cos()).collect();
        let base: Vec<usize> = (5..55).collect();
        solver.solve_support(&base, &b, true);
        assert_eq!(solver.factorisations(), 1);
        // S = B without {10, 30}, with {2, 57, 58} (k = 5 <= |B|/8 = 6): bordered, no new LU
        let s: Vec<usize> = (2..3)
            .chain((5..55).filter(|&i| i != 10 && i != 30))
            .chain(57..59)
            .collect();
        let x = solver.solve_support(&s, &b, true);
        assert_eq!(solver.factorisations(), 1, "the bordered path factorised");
        let (err, scale) = deviation(&m, &b, &s, &x);
        // two backward-stable solves of a matrix with cond ~ 1e3: agreement to ~cond u
        assert!(err <= 1e-11 * scale, "{err:e} vs {scale:e}");
        // a sequence of supports with up to |B|/2 = 25 changes, sharing indices: all bordered on
        // the same base, the Schur data of an index computed once
        let seq: Vec<Vec<usize>> = vec![
            (0..5).chain((5..55).filter(|i| i % 5 != 0)).collect(),
            (0..3)
                .chain((5..55).filter(|i| i % 5 != 0 && i % 7 != 0))
                .chain(56..60)
                .collect(),
            (0..5)
                .chain((5..55).filter(|i| i % 7 != 0))
                .chain(55..60)
                .collect(),
        ];
        let mut members = 0;
        for (q, s) in seq.iter().enumerate() {
            let x = solver.solve_support(s, &b, true);
            assert_eq!(solver.factorisations(), 1, "support {q} factorised");
            let (err, scale) = deviation(&m, &b, s, &x);
            assert!(err <= 1e-11 * scale, "support {q}: {err:e} vs {scale:e}");
            let now = solver.cache.as_ref().unwrap().uni.idx.len();
            assert!(now >= members);
            members = now;
        }
        // the union of the changes: {0..5} ∪ {55..60} added, multiples of 5 and 7 in 5..55 removed
        let union = 5 + 5 + (5..55).filter(|i| i % 5 == 0 || i % 7 == 0).count();
        assert_eq!(members, union, "an index was solved for twice");
        // too many changes: a fresh factorisation
        let far: Vec<usize> = (0..30).collect();
        solver.solve_support(&far, &b, true);
        assert_eq!(solver.factorisations(), 2);
    }

    #[test]
    fn nested_bordering_matches_a_direct_factorisation() {
        // the matrix type of the test above at n = 600, base |B| = 400: supports with
        // k >= NESTED_MIN changes solve their Schur block by a bordered solve of its own
        let n = 600;
        let m = resolvent_type(n, 0.03);
        let b: Vec<f64> = (0..n).map(|i| 1.0 + (i as f64 * 0.1).cos()).collect();
        let mut solver = LcpSolver::new(m.clone());
        let base: Vec<usize> = (0..400).collect();
        solver.solve_support(&base, &b, true);
        // k = 134 removed + 20 added = 154 >= NESTED_MIN: the inner base is this Schur set
        let s1: Vec<usize> = (0..400).filter(|i| i % 3 != 0).chain(400..420).collect();
        // then 12 more removals (i = 22 mod 33), 10 more additions (420..430), and 5 of the first
        // additions (400..405) back out: a bordered solve on the inner base
        let s2: Vec<usize> = (0..400)
            .filter(|i| i % 3 != 0 && (i % 3 != 1 || i % 11 != 0))
            .chain(405..430)
            .collect();
        for (q, s) in [s1, s2].iter().enumerate() {
            let x = solver.solve_support(s, &b, true);
            assert_eq!(solver.factorisations(), 1, "support {q} factorised M_SS");
            let lu = solver.cache.as_ref().unwrap();
            assert!(matches!(
                lu.bord.as_ref().unwrap().schur,
                SchurLu::Nested { .. }
            ));
            let inner = lu.inner.as_ref().expect("nested Schur");
            assert_eq!(inner.bord.is_some(), q == 1, "support {q}");
            let (err, scale) = deviation(&m, &b, s, &x);
            // backward-stable solves of a matrix with cond ~ 1e2, bordered twice
            assert!(err <= 1e-11 * scale, "support {q}: {err:e} vs {scale:e}");
        }
    }
}
