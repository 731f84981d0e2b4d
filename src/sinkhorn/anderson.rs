//! Anderson acceleration of the alternating solver at the target eps (theory/sinkhorn.md §4d).
//!
//! One Sinkhorn iteration is the fixed-point map $F:f\mapsto T(T(f,\mu)\,,\nu)$ of the first
//! potential (a $g$-update, then an $f$-update). Type-II Anderson mixing with memory $m$
//! (Anderson 1965; Walker & Ni 2011) replaces the plain update $f\leftarrow F(f)$ by
//! $$f_{k+1}=F(f_k)-\sum_{j}\gamma_j\bigl(F(f_{j+1})-F(f_j)\bigr),\qquad
//! \gamma=\arg\min_\gamma\Bigl\lVert r_k-\sum_j\gamma_j(r_{j+1}-r_j)\Bigr\rVert_2^2+\lambda\lVert\gamma\rVert^2,$$
//! $r_j=F(f_j)-f_j$, over the last $m$ differences, with the Tikhonov weight
//! $\lambda=10^{-10}\operatorname{tr}(\Delta R^\top\Delta R)$ of regularised nonlinear
//! acceleration (Scieur, d'Aspremont & Bach 2016). The gauge direction (constants) is
//! harmless: $F(f+c)=F(f)+c$, so residuals do not see it.
//!
//! Safeguards: the memory is cleared when a residual exceeds 10 times the previous one; a
//! residual $10^3$ times above the best (or an extrapolation that is not finite) restores the
//! best iterate and ends the acceleration (plain Sinkhorn finishes the solve). Each iterate's
//! $g$ is the exact transform of its $f$, so the residual tested against `tol` is the first
//! marginal's violation of a pair with an exact second marginal: the returned pair has the
//! contract of the plain solve.

use nalgebra::{DMatrix, DVector};
use std::collections::VecDeque;

/// Tikhonov weight relative to the trace of the normal matrix.
const TIKHONOV: f64 = 1e-10;
/// A residual above this multiple of the previous one clears the memory.
const RESTART_JUMP: f64 = 10.0;
/// A residual above this multiple of the best one restores the best iterate and ends the
/// acceleration.
const BLOWUP: f64 = 1e3;
/// After this many restorations the acceleration ends.
const MAX_RESTORES: usize = 3;

/// State of the Anderson mixer of one solve.
pub(crate) struct Anderson {
    memory: usize,
    /// $F(f_j)$ of the last `memory + 1` iterates.
    images: VecDeque<Vec<f64>>,
    /// $r_j=F(f_j)-f_j$ of the same iterates.
    residuals: VecDeque<Vec<f64>>,
    last_err: f64,
    best: Option<(f64, Vec<f64>)>,
    /// Accelerated updates done.
    pub(crate) steps: usize,
    /// The blow-up safeguard fired.
    pub(crate) restored: bool,
    /// Times it fired.
    restores: usize,
    /// The acceleration has ended (safeguard); plain updates from here on.
    pub(crate) done: bool,
}

impl Anderson {
    pub(crate) fn new(memory: usize) -> Self {
        Anderson {
            memory,
            images: VecDeque::with_capacity(memory + 1),
            residuals: VecDeque::with_capacity(memory + 1),
            last_err: f64::INFINITY,
            best: None,
            steps: 0,
            restored: false,
            restores: 0,
            done: memory == 0,
        }
    }

    /// The next iterate from the current one `f`, its image `fp` $=F(f)$ and the marginal
    /// residual `err` of the pair $(f,T(f))$; written into `f`.
    pub(crate) fn update(&mut self, f: &mut [f64], fp: &[f64], err: f64) {
        if self.done {
            f.copy_from_slice(fp);
            return;
        }
        let best_err = self.best.as_ref().map_or(f64::INFINITY, |b| b.0);
        if !err.is_finite() || err > BLOWUP * best_err {
            match &self.best {
                Some((_, bf)) => f.copy_from_slice(bf),
                None => f.copy_from_slice(fp),
            }
            self.images.clear();
            self.residuals.clear();
            self.last_err = f64::INFINITY;
            self.restores += 1;
            self.restored = true;
            self.done = self.restores >= MAX_RESTORES;
            return;
        }
        if err < best_err {
            match &mut self.best {
                Some(b) => {
                    b.0 = err;
                    b.1.copy_from_slice(f);
                }
                None => self.best = Some((err, f.to_vec())),
            }
        }
        if err > RESTART_JUMP * self.last_err {
            self.images.clear();
            self.residuals.clear();
        }
        self.last_err = err;
        // The oldest pair's buffers are reused once the memory is full (no allocation per
        // iteration in the steady state).
        let (mut image, mut residual) = match (self.images.len() > self.memory)
            .then(|| self.images.pop_front().zip(self.residuals.pop_front()))
            .flatten()
        {
            Some(pair) => pair,
            None => (Vec::with_capacity(fp.len()), Vec::with_capacity(fp.len())),
        };
        image.clear();
        image.extend_from_slice(fp);
        residual.clear();
        residual.extend(fp.iter().zip(f.iter()).map(|(p, q)| p - q));
        self.images.push_back(image);
        self.residuals.push_back(residual);
        let k = self.residuals.len() - 1;
        if k == 0 {
            f.copy_from_slice(fp);
            return;
        }
        let n = f.len();
        let r = &self.residuals;
        let dr = DMatrix::from_fn(n, k, |i, j| r[j + 1][i] - r[j][i]);
        let mut normal = dr.transpose() * &dr;
        let lambda = TIKHONOV * normal.trace() + f64::MIN_POSITIVE;
        for j in 0..k {
            normal[(j, j)] += lambda;
        }
        let rhs = dr.transpose() * DVector::from_column_slice(&r[k]);
        let gamma = match normal.cholesky() {
            Some(c) => c.solve(&rhs),
            None => {
                f.copy_from_slice(fp);
                return;
            }
        };
        let g = &self.images;
        for (i, fi) in f.iter_mut().enumerate() {
            let mut v = fp[i];
            for (j, &gj) in gamma.iter().enumerate() {
                v -= gj * (g[j + 1][i] - g[j][i]);
            }
            *fi = v;
        }
        if f.iter().all(|v| v.is_finite()) {
            self.steps += 1;
        } else {
            f.copy_from_slice(fp);
            self.images.clear();
            self.residuals.clear();
        }
    }
}
