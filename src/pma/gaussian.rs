//! The exact Gaussian case of PMA and IPFP, in any dimension (MATH.md §3; `theory/pma.md` §3).
//!
//! Densities $e^{-f} = \mathcal N(0,\Sigma)$ and $e^{-g} = \mathcal N(0,\Theta)$, $\Sigma,\Theta$
//! symmetric positive **definite** (the PMA needs densities). Every potential stays quadratic.
//!
//! * **IPFP** (seed 002's form, kernel $e^{\langle x,y\rangle/\varepsilon}$, i.e. cost
//!   $\lvert x-y\rvert^2/2$): $\varphi_k = x^\top P_kx/2 + c_k$, $P_0 = I$,
//!   $$R_k = (P_{k-1}+\varepsilon\Sigma^{-1})^{-1},\qquad P_k = (R_k+\varepsilon\Theta^{-1})^{-1}$$
//!   ($\psi_k = y^\top R_ky/2 + e_k$; completing the square in the two Gaussian integrals of the
//!   recursion). The $X$-marginal of the $k$-th coupling is
//!   $\rho_k = \mathcal N\big(0, (\Sigma^{-1}-(P_k-P_{k-1})/\varepsilon)^{-1}\big)$.
//! * **PMA** for Gaussians: $\varphi_t = x^\top A_tx/2 + c(t)$ with the matrix Riccati equation
//!   $A' = \Sigma^{-1} - A\Theta^{-1}A$, $A_0 = I$, and $\rho_t = \mathcal N(0, A_t^{-1}\Theta A_t^{-1})$.
//!   With $X = \Theta^{-1/2}A\Theta^{-1/2}$ and $Q = \Theta^{-1/2}\Sigma^{-1}\Theta^{-1/2}$ it reads
//!   $X' = Q - X^2$. Radon's lemma linearises it: $X = VU^{-1}$ with
//!   $U = \cosh(Q^{1/2}t) + Q^{-1/2}\sinh(Q^{1/2}t)X_0$, $V = Q^{1/2}\sinh(Q^{1/2}t)+\cosh(Q^{1/2}t)X_0$
//!   ([`GaussianPma::riccati_radon`], overflows once $\sqrt{q_{\max}}\,t\gtrsim 700$). The
//!   production form [`GaussianPma::riccati`] is the same solution rewritten around the
//!   stationary point $R = Q^{1/2}$ (`theory/pma.md` §3.2): $Z = X - R$ satisfies
//!   $(Z^{-1})' = RZ^{-1} + Z^{-1}R + I$, a linear Lyapunov equation, whence
//!   $$X(t) = R + e^{-Rt}\,(I + Z_0G_t)^{-1}Z_0\,e^{-Rt},\qquad G_t = (2R)^{-1}(I - e^{-2Rt}),$$
//!   which only ever evaluates decaying exponentials and needs no inverse of $Z_0$ (valid for
//!   every $t\ge 0$, since $I + Z_0G_t$ is similar to a positive definite matrix when $X_0\succeq0$).
//!   $A_\infty = \Theta^{1/2}Q^{1/2}\Theta^{1/2} = \Sigma^{-1/2}(\Sigma^{1/2}\Theta\Sigma^{1/2})^{1/2}\Sigma^{-1/2}$,
//!   the Brenier map, approached at the rate $2\sqrt{\lambda_{\min}(Q)}$.
//! * **Fixed eps, $k\to\infty$:** $P_\infty = \Theta^{1/2}\big((\Theta^{1/2}\Sigma\Theta^{1/2}+\tfrac{\varepsilon^2}4I)^{1/2}+\tfrac\varepsilon2I\big)^{-1}\Theta^{1/2}$,
//!   the entropic barycentric map of [`crate::gaussian::EntropicOt`] at $2\varepsilon$ (squared
//!   cost), reached linearly with factor $\lambda_{\max}(P_\infty R_\infty)^2$ (linearising the
//!   recursion: $dP_k = M\,dP_{k-1}M^\top$, $M = P_\infty R_\infty$).
//! * **First-order correction:** the seed's $(1/\varepsilon)\nabla(\varphi^\varepsilon_{t/\varepsilon}-\varphi_t)\to\nabla f/2+\nabla\log\rho_t$
//!   reads $(P_{t/\varepsilon}-A_t)/\varepsilon\to\Sigma^{-1}/2 - A_t\Theta^{-1}A_t$ for Gaussians. It
//!   holds "under appropriate initialization" (seed): from $P_0 = A_0 = I$ the exact limit
//!   ([`GaussianPma::correction_limit`]) carries a transient that vanishes iff
//!   $\Sigma^{-1}/2 = \Theta^{-1}$ and decays at the rate $2\sqrt{\lambda_{\min}(Q)}$.

use nalgebra::{DMatrix, DVector};
use ode_solvers::System;

use super::{integrate_segment, PmaError, MAX_IPFP_ITERATIONS};
use crate::gaussian::{bures_wasserstein_sq, Gaussian};
use crate::linalg::{symmetrize, validate_psd, SymEigen};

/// Smallest admissible eigenvalue ratio $\lambda_{\min}/\lambda_{\max}$ of $\Sigma$ and $\Theta$:
/// $64\,d\,u$ ($u$ the unit round-off), below which the matrix is numerically singular (the
/// backward error of the symmetric eigensolver) and has no density.
fn spd_threshold(d: usize, lmax: f64) -> f64 {
    64.0 * d as f64 * (f64::EPSILON / 2.0) * lmax
}

/// Validate a given covariance as symmetric positive definite.
pub(crate) fn validate_spd(
    m: &DMatrix<f64>,
    what: &str,
) -> Result<(DMatrix<f64>, SymEigen), PmaError> {
    if m.nrows() == 0 || m.ncols() == 0 {
        return Err(PmaError::EmptyDimension(what.to_string()));
    }
    let (s, eig) = validate_psd(m, what)?;
    let d = eig.values.len();
    let (lmin, lmax) = (eig.values[0], eig.values[d - 1]);
    if lmin.is_nan() || lmin <= spd_threshold(d, lmax) {
        return Err(PmaError::NotPositiveDefinite {
            what: what.to_string(),
            min_eig: lmin,
            computed: false,
        });
    }
    Ok((s, eig))
}

/// Inverse of a symmetric positive definite matrix computed in this module (spectral; a
/// non-positive eigenvalue is a numerical failure naming `what`).
fn spd_inverse(m: &DMatrix<f64>, what: &str) -> Result<DMatrix<f64>, PmaError> {
    let eig = SymEigen::new(m);
    let lmin = eig.values[0];
    if lmin.is_nan() || lmin <= 0.0 {
        return Err(PmaError::NotPositiveDefinite {
            what: what.to_string(),
            min_eig: lmin,
            computed: true,
        });
    }
    Ok(eig.apply(|l| 1.0 / l))
}

fn check_finite(m: &DMatrix<f64>, what: &str) -> Result<(), PmaError> {
    if m.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(PmaError::NonFiniteResult {
            what: what.to_string(),
        })
    }
}

/// The number of IPFP iterations for a time $T$: $k = \mathrm{round}(T/\varepsilon)$, half up,
/// at least 1 (issue 11's contract).
///
/// Ties are decided with a relative slack of $10^{-9}$, so that a decimal tie such as
/// $T = 0.25$, $\varepsilon = 0.1$ (whose binary quotient is $2.4999999999999996$) rounds up to
/// 3 as typed. Errors: $\varepsilon$ not finite and $>0$, $T$ not finite and $\ge0$, or $k$
/// above [`MAX_IPFP_ITERATIONS`].
pub fn iterations_for(t_end: f64, eps: f64) -> Result<usize, PmaError> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(PmaError::InvalidEps(eps));
    }
    if !(t_end.is_finite() && t_end >= 0.0) {
        return Err(PmaError::InvalidTime(t_end));
    }
    let ratio = t_end / eps;
    if !(ratio.is_finite() && ratio <= MAX_IPFP_ITERATIONS as f64) {
        return Err(PmaError::TooManyIterations {
            ratio,
            max: MAX_IPFP_ITERATIONS,
        });
    }
    let k = (ratio + 0.5 + 1e-9 * ratio).floor() as usize;
    Ok(k.max(1))
}

/// The Gaussian PMA / IPFP problem $e^{-f} = \mathcal N(0,\Sigma)$, $e^{-g} = \mathcal N(0,\Theta)$
/// with $\varphi_0 = \lvert x\rvert^2/2$ (module docs). Built once; every method is cheap.
#[derive(Clone, Debug)]
pub struct GaussianPma {
    d: usize,
    sigma: DMatrix<f64>,
    theta: DMatrix<f64>,
    sigma_inv: DMatrix<f64>,
    theta_inv: DMatrix<f64>,
    theta_sqrt: DMatrix<f64>,
    /// Eigen-decomposition of $Q = \Theta^{-1/2}\Sigma^{-1}\Theta^{-1/2}$.
    q_eig: SymEigen,
    /// $X_0 = \Theta^{-1/2}A_0\Theta^{-1/2} = \Theta^{-1}$.
    x0: DMatrix<f64>,
}

/// The IPFP iterate at $k = \mathrm{round}(T/\varepsilon)$ beside the PMA at time $T$
/// ([`GaussianPma::compare`]).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianComparison {
    /// Number of IPFP iterations $k$.
    pub k: usize,
    /// The time $T$.
    pub t: f64,
    /// The regularisation $\varepsilon$.
    pub eps: f64,
    /// $P_k$ (Hessian of $\varphi_k$).
    pub p: DMatrix<f64>,
    /// $P_{k-1}$.
    pub p_prev: DMatrix<f64>,
    /// $A_T$ (Hessian of $\varphi_T$), closed form.
    pub a: DMatrix<f64>,
    /// Covariance of $\rho_k$.
    pub rho_k_cov: DMatrix<f64>,
    /// Covariance of $\rho_T$.
    pub rho_t_cov: DMatrix<f64>,
    /// $W_2(\rho_k,\rho_T)$ (Bures; the distance, not its square; cost $\lvert x-y\rvert^2$).
    pub w2: f64,
    /// $(P_k - A_T)/\varepsilon$.
    pub correction: DMatrix<f64>,
    /// Its exact $\varepsilon\to0$ limit ([`GaussianPma::correction_limit`]).
    pub correction_limit: DMatrix<f64>,
    /// The seed's form of the limit, $\Sigma^{-1}/2 - A_T\Theta^{-1}A_T$
    /// ([`GaussianPma::seed_correction`]; equal to the exact limit only when
    /// $\Sigma^{-1}/2 = \Theta^{-1}$).
    pub seed_correction: DMatrix<f64>,
}

impl GaussianPma {
    /// Validate $\Sigma$ and $\Theta$ (finite, square, symmetric within
    /// [`crate::linalg::SYM_REL_TOL`], positive definite with
    /// $\lambda_{\min} > 64\,d\,u\,\lambda_{\max}$, same size).
    pub fn new(sigma: &DMatrix<f64>, theta: &DMatrix<f64>) -> Result<GaussianPma, PmaError> {
        let (sigma, s_eig) = validate_spd(sigma, "Sigma")?;
        let (theta, t_eig) = validate_spd(theta, "Theta")?;
        if sigma.nrows() != theta.nrows() {
            return Err(PmaError::DimensionMismatch {
                what: "Theta".to_string(),
                expected: sigma.nrows(),
                found: theta.nrows(),
            });
        }
        let d = sigma.nrows();
        let sigma_inv = s_eig.apply(|l| 1.0 / l);
        let theta_inv = t_eig.apply(|l| 1.0 / l);
        let theta_sqrt = t_eig.apply(f64::sqrt);
        let theta_inv_sqrt = t_eig.apply(|l| 1.0 / l.sqrt());
        let q = symmetrize(&(&theta_inv_sqrt * &sigma_inv * &theta_inv_sqrt));
        let q_eig = SymEigen::new(&q);
        let x0 = theta_inv.clone();
        let out = GaussianPma {
            d,
            sigma,
            theta,
            sigma_inv,
            theta_inv,
            theta_sqrt,
            q_eig,
            x0,
        };
        if out.q_eig.values[0] <= 0.0 {
            return Err(PmaError::NotPositiveDefinite {
                what: "Q = Theta^{-1/2} Sigma^{-1} Theta^{-1/2}".to_string(),
                min_eig: out.q_eig.values[0],
                computed: true,
            });
        }
        for (m, what) in [
            (&out.sigma_inv, "Sigma^{-1}"),
            (&out.theta_inv, "Theta^{-1}"),
        ] {
            check_finite(m, what)?;
        }
        Ok(out)
    }

    /// The dimension $d$.
    pub fn dim(&self) -> usize {
        self.d
    }
    /// $\Sigma$ (symmetrised).
    pub fn sigma(&self) -> &DMatrix<f64> {
        &self.sigma
    }
    /// $\Theta$ (symmetrised).
    pub fn theta(&self) -> &DMatrix<f64> {
        &self.theta
    }
    /// $\Sigma^{-1}$.
    pub fn sigma_inv(&self) -> &DMatrix<f64> {
        &self.sigma_inv
    }
    /// $\Theta^{-1}$.
    pub fn theta_inv(&self) -> &DMatrix<f64> {
        &self.theta_inv
    }

    /// One IPFP step $P\mapsto\big((P+\varepsilon\Sigma^{-1})^{-1}+\varepsilon\Theta^{-1}\big)^{-1}$
    /// (module docs). `eps` is validated.
    pub fn ipfp_step(&self, p: &DMatrix<f64>, eps: f64) -> Result<DMatrix<f64>, PmaError> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(PmaError::InvalidEps(eps));
        }
        if p.nrows() != self.d || p.ncols() != self.d {
            return Err(PmaError::DimensionMismatch {
                what: "P".to_string(),
                expected: self.d,
                found: p.nrows(),
            });
        }
        let r = spd_inverse(
            &symmetrize(&(p + &self.sigma_inv * eps)),
            "P + eps Sigma^{-1}",
        )?;
        let p_next = spd_inverse(
            &symmetrize(&(r + &self.theta_inv * eps)),
            "R + eps Theta^{-1}",
        )?;
        check_finite(&p_next, "P_k")?;
        Ok(p_next)
    }

    /// $(P_{k-1}, P_k)$ from $P_0 = I$ ($k\ge1$, at most [`MAX_IPFP_ITERATIONS`]).
    pub fn ipfp_pair(&self, eps: f64, k: usize) -> Result<(DMatrix<f64>, DMatrix<f64>), PmaError> {
        if k == 0 || k > MAX_IPFP_ITERATIONS {
            return Err(PmaError::TooManyIterations {
                ratio: k as f64,
                max: MAX_IPFP_ITERATIONS,
            });
        }
        let mut prev = DMatrix::identity(self.d, self.d);
        let mut p = self.ipfp_step(&prev, eps)?;
        for _ in 1..k {
            let next = self.ipfp_step(&p, eps)?;
            prev = std::mem::replace(&mut p, next);
        }
        Ok((prev, p))
    }

    /// $P_0, P_1, \dots, P_k$ (all of them; $k\le 10^6$ to bound the memory).
    pub fn ipfp_sequence(&self, eps: f64, k: usize) -> Result<Vec<DMatrix<f64>>, PmaError> {
        const MAX_KEPT: usize = 1_000_000;
        if k > MAX_KEPT {
            return Err(PmaError::TooManyIterations {
                ratio: k as f64,
                max: MAX_KEPT,
            });
        }
        let mut out = Vec::with_capacity(k + 1);
        out.push(DMatrix::identity(self.d, self.d));
        for i in 0..k {
            let next = self.ipfp_step(&out[i], eps)?;
            out.push(next);
        }
        Ok(out)
    }

    /// The fixed point of the IPFP recursion at fixed $\varepsilon$,
    /// $P_\infty = \Theta^{1/2}\big((\Theta^{1/2}\Sigma\Theta^{1/2}+\tfrac{\varepsilon^2}4I)^{1/2}+\tfrac\varepsilon2I\big)^{-1}\Theta^{1/2}$
    /// (MATH.md §3; equal to the entropic barycentric map $K(\Sigma\to\Theta)$ of MATH.md §1 at
    /// $2\varepsilon$, squared cost — `tests/pma_gaussian.rs` checks both).
    pub fn ipfp_fixed_point(&self, eps: f64) -> Result<DMatrix<f64>, PmaError> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(PmaError::InvalidEps(eps));
        }
        let h = eps / 2.0;
        let inner = symmetrize(&(&self.theta_sqrt * &self.sigma * &self.theta_sqrt));
        let mid = SymEigen::new(&inner).apply(|t| 1.0 / (t.max(0.0).sqrt().hypot(h) + h));
        let p = symmetrize(&(&self.theta_sqrt * mid * &self.theta_sqrt));
        check_finite(&p, "P_inf")?;
        Ok(p)
    }

    /// The predicted linear convergence factor of $P_k\to P_\infty$ at fixed $\varepsilon$:
    /// $\lambda_{\max}(M)^2$, $M = P_\infty R_\infty$, $R_\infty = (P_\infty+\varepsilon\Sigma^{-1})^{-1}$
    /// (the recursion's derivative at the fixed point is $dP\mapsto M\,dP\,M^\top$; the
    /// eigenvalues of $M$ are those of $R_\infty^{1/2}P_\infty R_\infty^{1/2}$, in $(0,1)$).
    pub fn ipfp_linear_factor(&self, eps: f64) -> Result<f64, PmaError> {
        let p = self.ipfp_fixed_point(eps)?;
        let r = spd_inverse(&symmetrize(&(&p + &self.sigma_inv * eps)), "R_inf")?;
        let r_half = SymEigen::new(&r).apply(|l| l.max(0.0).sqrt());
        let m = symmetrize(&(&r_half * p * &r_half));
        let lmax = SymEigen::new(&m).values.max();
        Ok(lmax * lmax)
    }

    /// $A_t$ in closed form, stable for every $t\ge0$ (module docs:
    /// $X = R + e^{-Rt}(I+Z_0G_t)^{-1}Z_0e^{-Rt}$, $A = \Theta^{1/2}X\Theta^{1/2}$), computed in the
    /// eigenbasis of $Q$.
    pub fn riccati(&self, t: f64) -> Result<DMatrix<f64>, PmaError> {
        if !(t.is_finite() && t >= 0.0) {
            return Err(PmaError::InvalidTime(t));
        }
        let d = self.d;
        let w = &self.q_eig.vectors;
        let r: Vec<f64> = self.q_eig.values.iter().map(|q| q.sqrt()).collect();
        // Z0 in the eigenbasis: W^T (X0 - R) W = W^T X0 W - diag(r)
        let mut z0 = w.transpose() * &self.x0 * w;
        for i in 0..d {
            z0[(i, i)] -= r[i];
        }
        let z0 = symmetrize(&z0);
        // G = (2R)^{-1} (I - e^{-2Rt}) = -expm1(-2 r t) / (2 r), diagonal
        let g: Vec<f64> = r
            .iter()
            .map(|&ri| -(-2.0 * ri * t).exp_m1() / (2.0 * ri))
            .collect();
        let e: Vec<f64> = r.iter().map(|&ri| (-ri * t).exp()).collect();
        let mut lhs = DMatrix::<f64>::identity(d, d);
        for i in 0..d {
            for j in 0..d {
                lhs[(i, j)] += z0[(i, j)] * g[j];
            }
        }
        let m = lhs
            .lu()
            .solve(&z0)
            .ok_or_else(|| PmaError::NonFiniteResult {
                what: "Riccati solution (I + Z0 G singular)".to_string(),
            })?;
        let m = symmetrize(&m);
        let mut x = DMatrix::<f64>::zeros(d, d);
        for i in 0..d {
            for j in 0..d {
                x[(i, j)] = e[i] * m[(i, j)] * e[j];
            }
            x[(i, i)] += r[i];
        }
        let x = w * x * w.transpose();
        let a = symmetrize(&(&self.theta_sqrt * x * &self.theta_sqrt));
        check_finite(&a, "A_t")?;
        Ok(a)
    }

    /// $A_t$ by Radon's lemma as written in MATH.md §3, $X = VU^{-1}$ with hyperbolic functions of
    /// $Q^{1/2}t$: the textbook form, kept as an independent check of [`Self::riccati`]. It
    /// overflows once $\sqrt{\lambda_{\max}(Q)}\,t\gtrsim 700$ (then
    /// [`PmaError::NonFiniteResult`]) and loses accuracy well before.
    pub fn riccati_radon(&self, t: f64) -> Result<DMatrix<f64>, PmaError> {
        if !(t.is_finite() && t >= 0.0) {
            return Err(PmaError::InvalidTime(t));
        }
        let cosh = self.q_eig.apply(|q| (q.sqrt() * t).cosh());
        let sinh_over = self.q_eig.apply(|q| (q.sqrt() * t).sinh() / q.sqrt());
        let sinh_times = self.q_eig.apply(|q| (q.sqrt() * t).sinh() * q.sqrt());
        let u = &cosh + &sinh_over * &self.x0;
        let v = &sinh_times + &cosh * &self.x0;
        check_finite(&u, "Radon U")?;
        check_finite(&v, "Radon V")?;
        // X = V U^{-1}  <=>  U^T X^T = V^T
        let xt =
            u.transpose()
                .lu()
                .solve(&v.transpose())
                .ok_or_else(|| PmaError::NonFiniteResult {
                    what: "Radon U^{-1}".to_string(),
                })?;
        let a = symmetrize(&(&self.theta_sqrt * xt.transpose() * &self.theta_sqrt));
        check_finite(&a, "A_t (Radon)")?;
        Ok(a)
    }

    /// $A_t$ at the given times (ascending, finite, $\ge0$) by integrating
    /// $A' = \Sigma^{-1}-A\Theta^{-1}A$, $A_0 = I$, with `ode_solvers`' Dormand–Prince 8(5,3)
    /// (the crate's ODE path, as in [`crate::gaussian::flow`]); `rtol`, `atol` apply to the
    /// entries of $A$.
    pub fn riccati_ode(
        &self,
        times: &[f64],
        rtol: f64,
        atol: f64,
    ) -> Result<Vec<DMatrix<f64>>, PmaError> {
        for (name, v) in [("rtol", rtol), ("atol", atol)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(PmaError::InvalidTolerance { name, value: v });
            }
        }
        if let Some(&t) = times.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(PmaError::InvalidTime(t));
        }
        if let Some(w) = times.windows(2).find(|w| w[1] < w[0]) {
            return Err(PmaError::InvalidTime(w[1]));
        }
        let d = self.d;
        let sys = RiccatiSystem {
            d,
            sigma_inv: &self.sigma_inv,
            theta_inv: &self.theta_inv,
        };
        let mut y = DVector::from_column_slice(DMatrix::<f64>::identity(d, d).as_slice());
        let mut t0 = 0.0;
        let mut out = Vec::with_capacity(times.len());
        for &t1 in times {
            if t1 > t0 {
                y = integrate_segment(&sys, t0, t1, y, rtol, atol)?;
                t0 = t1;
            }
            let a = symmetrize(&DMatrix::from_column_slice(d, d, y.as_slice()));
            check_finite(&a, "A_t (ODE)")?;
            out.push(a);
        }
        Ok(out)
    }

    /// $A_\infty = \Theta^{1/2}Q^{1/2}\Theta^{1/2}$, the Brenier map $e^{-f}\to e^{-g}$
    /// ($=\Sigma^{-1/2}(\Sigma^{1/2}\Theta\Sigma^{1/2})^{1/2}\Sigma^{-1/2}$, [`crate::gaussian::brenier_map`]).
    pub fn brenier(&self) -> DMatrix<f64> {
        let r = self.q_eig.apply(|q| q.max(0.0).sqrt());
        symmetrize(&(&self.theta_sqrt * r * &self.theta_sqrt))
    }

    /// The local exponential rate of $A_t\to A_\infty$: $2\sqrt{\lambda_{\min}(Q)}$ (MATH.md §3;
    /// the closed form decays like $e^{-Rt}(\cdot)e^{-Rt}$).
    pub fn brenier_rate(&self) -> f64 {
        2.0 * self.q_eig.values[0].sqrt()
    }

    /// Covariance of $\rho_k = e^{(\varphi_k-\varphi_{k-1})/\varepsilon - f}$:
    /// $(\Sigma^{-1}-(P_k-P_{k-1})/\varepsilon)^{-1}$.
    pub fn rho_ipfp_cov(
        &self,
        p: &DMatrix<f64>,
        p_prev: &DMatrix<f64>,
        eps: f64,
    ) -> Result<DMatrix<f64>, PmaError> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(PmaError::InvalidEps(eps));
        }
        let prec = symmetrize(&(&self.sigma_inv - (p - p_prev) / eps));
        spd_inverse(&prec, "precision of rho_k")
    }

    /// Covariance of $\rho_t = (\nabla\varphi_t^*)_\#e^{-g} = \mathcal N(0, A_t^{-1}\Theta A_t^{-1})$.
    pub fn rho_pma_cov(&self, a: &DMatrix<f64>) -> Result<DMatrix<f64>, PmaError> {
        let a_inv = spd_inverse(a, "A_t")?;
        Ok(symmetrize(&(&a_inv * &self.theta * &a_inv)))
    }

    /// The seed's first-order correction in Gaussian form, $\Sigma^{-1}/2 - A_t\Theta^{-1}A_t$
    /// ($=\nabla f/2+\nabla\log\rho_t$, MATH.md §3). It is the limit of
    /// $(P_{t/\varepsilon}-A_t)/\varepsilon$ only under the seed's "appropriate initialization",
    /// which for $\varphi_0 = \lvert x\rvert^2/2$ means $\Sigma^{-1}/2 = \Theta^{-1}$; in general the
    /// limit is [`Self::correction_limit`].
    pub fn seed_correction(&self, a: &DMatrix<f64>) -> DMatrix<f64> {
        symmetrize(&(&self.sigma_inv * 0.5 - a * &self.theta_inv * a))
    }

    /// The exact limit $C_t$ of $(P_{t/\varepsilon}-A_t)/\varepsilon$ from $P_0 = A_0 = I$
    /// (`theory/pma.md` §3.4): the modified-equation analysis of the recursion gives
    /// $C' = -C\Theta^{-1}A - A\Theta^{-1}C - \tfrac12(A\Theta^{-1}\Sigma^{-1}+\Sigma^{-1}\Theta^{-1}A)$,
    /// $C_0 = 0$, whose solution is the seed's term plus a decaying transient,
    /// $$C_t = \Sigma^{-1}/2 - A_t\Theta^{-1}A_t + \Theta^{1/2}U_t^{-\top}H_0U_t^{-1}\Theta^{1/2},\qquad
    /// H_0 = \Theta^{-1/2}(\Theta^{-1}-\Sigma^{-1}/2)\Theta^{-1/2},$$
    /// with Radon's $U_t$ (module docs), evaluated as
    /// $U_t^{-1} = (I+\tanh(Rt)R^{-1}X_0)^{-1}\cosh(Rt)^{-1}$ in the eigenbasis of $Q$ (no
    /// overflow). The transient vanishes iff $\Sigma^{-1}/2 = \Theta^{-1}$ and decays like
    /// $e^{-2\sqrt{\lambda_{\min}(Q)}t}$.
    pub fn correction_limit(&self, t: f64) -> Result<DMatrix<f64>, PmaError> {
        let a = self.riccati(t)?;
        let d = self.d;
        let w = &self.q_eig.vectors;
        let r: Vec<f64> = self.q_eig.values.iter().map(|q| q.sqrt()).collect();
        let x0 = w.transpose() * &self.x0 * w;
        // B = I + tanh(Rt) R^{-1} X0 (eigenbasis), U^{-1} = B^{-1} sech(Rt)
        let mut b = DMatrix::<f64>::identity(d, d);
        for i in 0..d {
            let th = (r[i] * t).tanh() / r[i];
            for j in 0..d {
                b[(i, j)] += th * x0[(i, j)];
            }
        }
        let mut u_inv = b
            .lu()
            .try_inverse()
            .ok_or_else(|| PmaError::NonFiniteResult {
                what: "Radon U^{-1}".to_string(),
            })?;
        for j in 0..d {
            let sech = 1.0 / (r[j] * t).cosh();
            for i in 0..d {
                u_inv[(i, j)] *= sech;
            }
        }
        // the transient in the X variable: U^{-T} H0 U^{-1}, with U = W Ũ W^T
        let u_inv = w * u_inv * w.transpose();
        let theta_inv_sqrt = SymEigen::new(&self.theta).apply(|l| 1.0 / l.sqrt());
        let h0 = &theta_inv_sqrt * (&self.theta_inv - &self.sigma_inv * 0.5) * &theta_inv_sqrt;
        let h = u_inv.transpose() * h0 * &u_inv;
        let c = self.seed_correction(&a) + &self.theta_sqrt * h * &self.theta_sqrt;
        let c = symmetrize(&c);
        check_finite(&c, "correction limit")?;
        Ok(c)
    }

    /// IPFP at $k = \mathrm{round}(T/\varepsilon)$ ([`iterations_for`]) against the PMA at $T$:
    /// $P_k$, $A_T$ (closed form), $\rho_k$, $\rho_T$, $W_2(\rho_k,\rho_T)$ and the correction.
    pub fn compare(&self, eps: f64, t_end: f64) -> Result<GaussianComparison, PmaError> {
        let k = iterations_for(t_end, eps)?;
        let (p_prev, p) = self.ipfp_pair(eps, k)?;
        let a = self.riccati(t_end)?;
        let rho_k_cov = self.rho_ipfp_cov(&p, &p_prev, eps)?;
        let rho_t_cov = self.rho_pma_cov(&a)?;
        let zero = DVector::zeros(self.d);
        let w2sq = bures_wasserstein_sq(
            &Gaussian::new_unchecked(zero.clone(), rho_k_cov.clone()),
            &Gaussian::new_unchecked(zero, rho_t_cov.clone()),
        )?;
        let correction = (&p - &a) / eps;
        check_finite(&correction, "correction")?;
        let correction_limit = self.correction_limit(t_end)?;
        let seed_correction = self.seed_correction(&a);
        Ok(GaussianComparison {
            k,
            t: t_end,
            eps,
            p,
            p_prev,
            a,
            rho_k_cov,
            rho_t_cov,
            w2: w2sq.sqrt(),
            correction,
            correction_limit,
            seed_correction,
        })
    }
}

/// $A' = \Sigma^{-1} - A\Theta^{-1}A$ on $\operatorname{vec}(A)$ (column-major).
struct RiccatiSystem<'a> {
    d: usize,
    sigma_inv: &'a DMatrix<f64>,
    theta_inv: &'a DMatrix<f64>,
}

impl System<f64, DVector<f64>> for &RiccatiSystem<'_> {
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        let a = DMatrix::from_column_slice(self.d, self.d, y.as_slice());
        let rhs = self.sigma_inv - &a * self.theta_inv * &a;
        dy.as_mut_slice().copy_from_slice(rhs.as_slice());
    }
}

/// The scalar (commuting, $d = 1$) Riccati solution $a' = 1/s - a^2/\theta$, $a(0) = a_0 > 0$
/// (MATH.md §3): $a = \sqrt{\theta/s}\tanh\big(t/\sqrt{s\theta}+\operatorname{artanh}(a_0\sqrt{s/\theta})\big)$
/// when $a_0\sqrt{s/\theta}<1$, the $\coth$ branch (with $\operatorname{arcoth}$) when it is $>1$,
/// and the constant $\sqrt{\theta/s}$ when it equals 1. Meant for $s,\theta,a_0>0$.
pub fn scalar_riccati(s: f64, theta: f64, a0: f64, t: f64) -> f64 {
    let scale = (theta / s).sqrt();
    let c = a0 / scale;
    let tau = t / (s * theta).sqrt();
    if c < 1.0 {
        scale * (tau + c.atanh()).tanh()
    } else if c > 1.0 {
        // arcoth(c) = artanh(1/c); coth(x) = 1/tanh(x)
        scale / (tau + (1.0 / c).atanh()).tanh()
    } else {
        scale
    }
}
