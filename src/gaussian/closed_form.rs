//! Closed forms: entropic OT, Sinkhorn divergence, plan, maps, potentials, Bures–Wasserstein,
//! and the Wasserstein gradient of $S_\varepsilon(\cdot,\mu^*)$ (MATH.md §1, `theory/gaussian.md`).

use nalgebra::{DMatrix, DVector};

use super::{finite, same_dim, sq_eps, Gaussian, GaussianError};
use crate::cost::Cost;
use crate::linalg::{symmetrize, SymEigen};

// ---------------------------------------------------------------------------------------------
// Scalar kernels (cancellation-free, see theory/gaussian.md §2)
// ---------------------------------------------------------------------------------------------

/// $m-\delta = \sqrt{\lambda+\delta^2}-\delta = \lambda/(\sqrt{\lambda+\delta^2}+\delta)$, no cancellation.
#[inline]
pub(crate) fn m_minus_delta(lam: f64, delta: f64) -> f64 {
    let lam = lam.max(0.0);
    lam / (lam.sqrt().hypot(delta) + delta)
}

/// $\log(1+x/y)$ for $x\ge0$, $y>0$, also where $x/y$ overflows (tiny eps against a large
/// spectrum): then $\log x-\log y$, exact to rounding since $1/(x/y)<10^{-308}$.
#[inline]
pub(crate) fn log1p_ratio(x: f64, y: f64) -> f64 {
    let r = x / y;
    if r.is_finite() {
        r.ln_1p()
    } else {
        x.ln() - y.ln()
    }
}

/// Per-eigenvalue contribution to $\mathrm{OT}_\varepsilon$ (squared cost):
/// $h(\lambda) = -2(m-\delta) + 2\delta\,\mathrm{log1p}((m-\delta)/(2\delta))$.
#[inline]
pub(crate) fn h_term(lam: f64, delta: f64) -> f64 {
    let x = m_minus_delta(lam, delta);
    -2.0 * x + 2.0 * delta * log1p_ratio(x, 2.0 * delta)
}

/// $\phi(t) = 1/(\sqrt{t+\delta^2}+\delta)$: the spectral function of $(M+\delta I)^{-1}$.
#[inline]
fn phi(t: f64, delta: f64) -> f64 {
    1.0 / (t.max(0.0).sqrt().hypot(delta) + delta)
}

/// Eigenvalues of $A^{1/2}BA^{1/2}$ as squared singular values of $F_A^\top F_B$.
pub(crate) fn cross_eigenvalues(mu: &Gaussian, nu: &Gaussian) -> DVector<f64> {
    let x = mu.factor().transpose() * nu.factor();
    x.singular_values().map(|s| s * s)
}

/// Sum of $h$ over the eigenvalues of $A^2$, i.e. $\lambda_i(A)^2$.
fn self_h_sum(g: &Gaussian, delta: f64) -> f64 {
    g.eigenvalues().iter().map(|&l| h_term(l * l, delta)).sum()
}

/// $\mathrm{OT}_\varepsilon(\mu,\mu)$ (squared cost) eigenvalue by eigenvalue, without
/// cancelling $2\operatorname{tr}A$ against $\sum h$ ([`direction_terms`] with $a=b$).
fn self_value(g: &Gaussian, delta: f64) -> f64 {
    g.eigenvalues()
        .iter()
        .map(|&a| direction_terms(a, a, delta).0)
        .sum()
}

/// $(x^\top x)$ with $x = a - b$.
fn mean_gap_sq(mu: &Gaussian, nu: &Gaussian) -> f64 {
    (mu.mean() - nu.mean()).norm_squared()
}

/// Scalars of the squared-cost problem at regularisation `eps_sq`.
struct Scalars {
    /// $\lvert a-b\rvert^2 + \operatorname{tr}A + \operatorname{tr}B + \sum h(\lambda_i)$.
    value: f64,
    /// $\lvert a-b\rvert^2 + \operatorname{tr}A + \operatorname{tr}B - 2\sum(m_i-\delta)$.
    transport: f64,
    /// $\sum \mathrm{log1p}((m_i-\delta)/(2\delta))$ = $\log\det((2/\varepsilon)M + I/2)$.
    sum_log: f64,
    /// $\sum h(\lambda_i)$.
    sum_h: f64,
}

/// Per common eigen-direction with variances $a$, $b$ (commuting covariances): the value
/// term $a+b-2x+2\delta\ell$, the transport term $a+b-2x$ and $\ell$, where $\lambda=ab$,
/// $r=\sqrt{\lambda+\delta^2}$, $x=m-\delta=\lambda/(r+\delta)$, $\ell=\mathrm{log1p}(x/(2\delta))$.
/// Written without cancellation (theory/gaussian.md §2b):
/// $a+b-2x=(\sqrt a-\sqrt b)^2+2\sqrt\lambda\,\frac{\delta+\delta^2/(r+\sqrt\lambda)}{r+\delta}$,
/// a sum of non-negative terms, so each is right to a few ulps of itself.
fn direction_terms(a: f64, b: f64, delta: f64) -> (f64, f64, f64) {
    let (a, b) = (a.max(0.0), b.max(0.0));
    let (sa, sb) = (a.sqrt(), b.sqrt());
    let sl = sa * sb;
    let r = sl.hypot(delta);
    let x = m_minus_delta(a * b, delta);
    // delta^2/(r + √λ) as delta · (delta/(r + √λ)): no overflow of delta^2 at huge eps.
    let gap = (sa - sb) * (sa - sb) + 2.0 * sl * (delta + delta * (delta / (r + sl))) / (r + delta);
    let lg = log1p_ratio(x, 2.0 * delta);
    (gap + 2.0 * delta * lg, gap, lg)
}

/// The variances of $\mu$ and $\nu$ along a common eigenbasis known exactly: identical
/// covariances (the self problem), or two diagonal covariances. `None` otherwise: a rotated
/// commuting pair has a common basis only up to the eigensolver's $O(u\lVert A\rVert)$, which
/// is no better than the general path (theory/gaussian.md §2b).
pub(crate) fn commuting_spectra(mu: &Gaussian, nu: &Gaussian) -> Option<Vec<(f64, f64)>> {
    if mu.cov() == nu.cov() {
        return Some(mu.eigenvalues().iter().map(|&a| (a, a)).collect());
    }
    let is_diag = |m: &DMatrix<f64>| {
        (0..m.nrows()).all(|i| (0..m.ncols()).all(|j| i == j || m[(i, j)] == 0.0))
    };
    (is_diag(mu.cov()) && is_diag(nu.cov())).then(|| {
        (0..mu.dim())
            .map(|i| (mu.cov()[(i, i)], nu.cov()[(i, i)]))
            .collect()
    })
}

fn scalars(mu: &Gaussian, nu: &Gaussian, eps_sq: f64) -> Scalars {
    let delta = eps_sq / 4.0;
    if let Some(pairs) = commuting_spectra(mu, nu) {
        let gap = mean_gap_sq(mu, nu);
        let (mut value, mut transport, mut sum_log) = (gap, gap, 0.0);
        for &(a, b) in &pairs {
            let (v, t, lg) = direction_terms(a, b, delta);
            value += v;
            transport += t;
            sum_log += lg;
        }
        // sum_h = value − base, needed only by the divergence, which handles its own
        // cancellation; here from the same per-direction terms.
        let sum_h = pairs
            .iter()
            .map(|&(a, b)| h_term(a.max(0.0) * b.max(0.0), delta))
            .sum();
        return Scalars {
            value,
            transport,
            sum_log,
            sum_h,
        };
    }
    let lam = cross_eigenvalues(mu, nu);
    let mut sum_x = 0.0;
    let mut sum_log = 0.0;
    let mut sum_h = 0.0;
    for &l in lam.iter() {
        let x = m_minus_delta(l, delta);
        let lg = log1p_ratio(x, 2.0 * delta);
        sum_x += x;
        sum_log += lg;
        sum_h += -2.0 * x + 2.0 * delta * lg;
    }
    let base = mean_gap_sq(mu, nu) + mu.cov().trace() + nu.cov().trace();
    Scalars {
        value: base + sum_h,
        transport: base - 2.0 * sum_x,
        sum_log,
        sum_h,
    }
}

// ---------------------------------------------------------------------------------------------
// Matrix kernels (spectral functions of symmetric matrices)
// ---------------------------------------------------------------------------------------------

/// $K(A\to B) = B^{1/2}\big((B^{1/2}AB^{1/2}+\delta^2I)^{1/2}+\delta I\big)^{-1}B^{1/2}$, symmetric.
///
/// `a` is the source covariance, `b_sqrt` the PSD root of the target covariance.
pub(crate) fn k_map(a: &DMatrix<f64>, b_sqrt: &DMatrix<f64>, delta: f64) -> DMatrix<f64> {
    let g = symmetrize(&(b_sqrt * a * b_sqrt));
    let inner = SymEigen::new(&g).apply(|t| phi(t, delta));
    symmetrize(&(b_sqrt * inner * b_sqrt))
}

/// $K(A\to A) = A\,((A^2+\delta^2 I)^{1/2}+\delta I)^{-1}$ (spectral, symmetric, PSD).
pub(crate) fn k_self(a: &DMatrix<f64>, delta: f64) -> DMatrix<f64> {
    SymEigen::new(a).apply(|l| {
        let l = l.max(0.0);
        l / (l.hypot(delta) + delta)
    })
}

/// $K(A\to A)$ from an existing decomposition.
fn k_self_eig(eig: &SymEigen, delta: f64) -> DMatrix<f64> {
    eig.apply(|l| {
        let l = l.max(0.0);
        l / (l.hypot(delta) + delta)
    })
}

/// $C(A,B) = A^{1/2}(M+\delta I)^{-1}A^{1/2}B$, $M = (A^{1/2}BA^{1/2}+\delta^2 I)^{1/2}$.
pub(crate) fn cross_cov(a_sqrt: &DMatrix<f64>, b: &DMatrix<f64>, delta: f64) -> DMatrix<f64> {
    let g = symmetrize(&(a_sqrt * b * a_sqrt));
    let inner = SymEigen::new(&g).apply(|t| phi(t, delta));
    a_sqrt * inner * a_sqrt * b
}

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// A quadratic function $q(x) = x^\top Q x + \ell^\top x + k$ ($Q$ symmetric).
///
/// Used for the Schrödinger potentials of Gaussian entropic OT ([`EntropicOt::potentials`]).
#[derive(Clone, Debug, PartialEq)]
pub struct QuadraticPotential {
    /// The symmetric matrix $Q$ (the Hessian is $2Q$).
    pub quad: DMatrix<f64>,
    /// The linear coefficient $\ell$.
    pub lin: DVector<f64>,
    /// The constant $k$.
    pub constant: f64,
}

impl QuadraticPotential {
    /// $q(x) = x^\top Q x + \ell^\top x + k$.
    ///
    /// # Panics
    /// If `x` has the wrong dimension (a caller bug).
    #[track_caller]
    pub fn eval(&self, x: &DVector<f64>) -> f64 {
        assert_eq!(
            x.len(),
            self.lin.len(),
            "potential: point of wrong dimension"
        );
        (x.transpose() * &self.quad * x)[(0, 0)] + self.lin.dot(x) + self.constant
    }

    /// $\nabla q(x) = 2Qx + \ell$.
    ///
    /// # Panics
    /// If `x` has the wrong dimension (a caller bug).
    #[track_caller]
    pub fn gradient(&self, x: &DVector<f64>) -> DVector<f64> {
        assert_eq!(
            x.len(),
            self.lin.len(),
            "potential: point of wrong dimension"
        );
        &self.quad * x * 2.0 + &self.lin
    }
}

/// An affine vector field $v(x) = v(m) + L(x - m)$ on $\mathbb R^d$.
///
/// The Wasserstein velocity of a Gaussian flow is of this form ([`velocity`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AffineField {
    /// $v(m)$, the value at the centre.
    pub at: DVector<f64>,
    /// The linear part $L$ (symmetric for the fields produced by this module).
    pub linear: DMatrix<f64>,
    /// The centre $m$ (the mean of the measure the field was computed at).
    pub center: DVector<f64>,
}

impl AffineField {
    /// $v(x) = v(m) + L(x-m)$.
    ///
    /// # Panics
    /// If `x` has the wrong dimension (a caller bug).
    #[track_caller]
    pub fn eval(&self, x: &DVector<f64>) -> DVector<f64> {
        assert_eq!(x.len(), self.at.len(), "field: point of wrong dimension");
        &self.at + &self.linear * (x - &self.center)
    }
}

/// The four numbers of a Sinkhorn divergence (all for the same eps and cost).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DivergenceParts {
    /// $\mathrm{OT}_\varepsilon(\mu,\nu)$.
    pub ot_ab: f64,
    /// $\mathrm{OT}_\varepsilon(\mu,\mu)$.
    pub ot_aa: f64,
    /// $\mathrm{OT}_\varepsilon(\nu,\nu)$.
    pub ot_bb: f64,
    /// $S_\varepsilon(\mu,\nu)$, computed without subtracting the three values (see
    /// [`sinkhorn_divergence`]).
    pub divergence: f64,
}

/// One entropic OT problem between Gaussians, solved in closed form.
///
/// For the squared cost, with $\delta=\varepsilon/4$ and $M=(A^{1/2}BA^{1/2}+\delta^2I)^{1/2}$
/// (MATH.md §1; Janati–Muzellec–Peyré–Cuturi 2020, Thm 1 with $\sigma^2=\varepsilon/2$;
/// Mallasto–Gerolin–Minh 2021; `theory/gaussian.md` §1–4):
///
/// * value $\mathrm{OT}_\varepsilon = \lvert a-b\rvert^2+\operatorname{tr}A+\operatorname{tr}B-2\operatorname{tr}M+\tfrac\varepsilon2\big[d+\log\det(\tfrac2\varepsilon M+\tfrac12 I)\big]$;
/// * plan $\pi = \mathcal N\big((a,b), \begin{pmatrix}A & C\\ C^\top & B\end{pmatrix}\big)$,
///   $C = A^{1/2}(M+\delta I)^{-1}A^{1/2}B$, which solves $C^2+\tfrac\varepsilon2C=AB$;
/// * barycentric map $T(x)=\mathbb E_\pi[Y\mid X=x] = b+K(x-a)$,
///   $K = B^{1/2}\big((B^{1/2}AB^{1/2}+\delta^2I)^{1/2}+\delta I\big)^{-1}B^{1/2}$ (symmetric; $C = AK$).
///
/// For the half cost every quantity is the squared-cost one at $2\varepsilon$, with value,
/// transport part and potentials multiplied by $\tfrac12$.
#[derive(Clone, Debug)]
pub struct EntropicOt {
    mu: Gaussian,
    nu: Gaussian,
    eps: f64,
    cost: Cost,
    kappa: f64,
    delta: f64,
    value: f64,
    transport: f64,
    mutual_information: f64,
    sum_log: f64,
    cross: DMatrix<f64>,
    k_ab: DMatrix<f64>,
    k_ba: DMatrix<f64>,
}

impl EntropicOt {
    /// Solve $\mathrm{OT}_\varepsilon(\mu,\nu)$ for `cost` in closed form.
    ///
    /// Errors: [`GaussianError::InvalidEps`] unless $\varepsilon$ is finite and $>0$;
    /// [`GaussianError::DimensionMismatch`]; [`GaussianError::NonFiniteResult`] on overflow.
    pub fn new(
        mu: &Gaussian,
        nu: &Gaussian,
        eps: f64,
        cost: Cost,
    ) -> Result<EntropicOt, GaussianError> {
        same_dim(mu, nu, "nu")?;
        let (eps_sq, kappa) = sq_eps(eps, cost)?;
        let delta = eps_sq / 4.0;
        let sc = scalars(mu, nu, eps_sq);
        let value = finite(kappa * sc.value, "OT_eps")?;
        let transport = finite(kappa * sc.transport, "transport cost")?;
        let mutual_information = finite(0.5 * sc.sum_log, "mutual information")?;
        let cross = cross_cov(mu.cov_sqrt(), nu.cov(), delta);
        let k_ab = k_map(mu.cov(), nu.cov_sqrt(), delta);
        let k_ba = k_map(nu.cov(), mu.cov_sqrt(), delta);
        for (m, what) in [
            (&cross, "cross-covariance"),
            (&k_ab, "map matrix"),
            (&k_ba, "reverse map matrix"),
        ] {
            if m.iter().any(|v| !v.is_finite()) {
                return Err(GaussianError::NonFiniteResult {
                    what: what.to_string(),
                });
            }
        }
        Ok(EntropicOt {
            mu: mu.clone(),
            nu: nu.clone(),
            eps,
            cost,
            kappa,
            delta,
            value,
            transport,
            mutual_information,
            sum_log: sc.sum_log,
            cross,
            k_ab,
            k_ba,
        })
    }

    /// The regularisation $\varepsilon$ (as given, for [`Self::cost`]).
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The ground cost.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// $\mathrm{OT}_\varepsilon(\mu,\nu) = \int c\,d\pi + \varepsilon\,\mathrm{KL}(\pi\mid\mu\otimes\nu)$,
    /// computed as $\kappa\big(\lvert a-b\rvert^2+\operatorname{tr}A+\operatorname{tr}B+\sum_i h(\lambda_i)\big)$
    /// (module docs; $\kappa$ the cost factor, $\lambda_i$ at $\varepsilon/\kappa$).
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The transport part $\int c\,d\pi = \kappa\big(\lvert a-b\rvert^2+\operatorname{tr}A+\operatorname{tr}B-2\operatorname{tr}C\big)$,
    /// $\operatorname{tr}C = \operatorname{tr}(M-\delta I) = \sum_i\lambda_i/(m_i+\delta)$.
    /// This is what POT's `sinkhorn2` returns.
    pub fn transport_cost(&self) -> f64 {
        self.transport
    }

    /// $\mathrm{KL}(\pi\mid\mu\otimes\nu) = \tfrac12\log\det(\tfrac{2}{\varepsilon'}M+\tfrac12I)
    /// = \tfrac12\sum_i\mathrm{log1p}\big((m_i-\delta)/(2\delta)\big)$ ($\varepsilon'=\varepsilon/\kappa$).
    pub fn mutual_information(&self) -> f64 {
        self.mutual_information
    }

    /// The cross-covariance $C = \mathrm{Cov}_\pi(X, Y) = A^{1/2}(M+\delta I)^{-1}A^{1/2}B$
    /// (inverse-free; solves $C^2 + \tfrac{\varepsilon'}{2} C = AB$).
    pub fn cross_covariance(&self) -> &DMatrix<f64> {
        &self.cross
    }

    /// The optimal plan, a Gaussian on $\mathbb R^{2d}$ with mean $(a,b)$ and covariance
    /// $\begin{pmatrix}A & C\\ C^\top & B\end{pmatrix}$ (singular when $A$ or $B$ is).
    pub fn plan(&self) -> Gaussian {
        let d = self.mu.dim();
        let mut mean = DVector::zeros(2 * d);
        mean.rows_mut(0, d).copy_from(self.mu.mean());
        mean.rows_mut(d, d).copy_from(self.nu.mean());
        let mut cov = DMatrix::zeros(2 * d, 2 * d);
        cov.view_mut((0, 0), (d, d)).copy_from(self.mu.cov());
        cov.view_mut((d, d), (d, d)).copy_from(self.nu.cov());
        cov.view_mut((0, d), (d, d)).copy_from(&self.cross);
        cov.view_mut((d, 0), (d, d))
            .copy_from(&self.cross.transpose());
        Gaussian::new_unchecked(mean, cov)
    }

    /// The symmetric matrix $K = K(A\to B)$ of the entropic barycentric map
    /// $T(x) = \mathbb E_\pi[Y\mid X=x] = b + K(x-a)$ ($K = A^{-1}C$ when $A$ is invertible; the
    /// formula with $B^{1/2}$ needs no inverse and holds for singular $A$).
    pub fn map_matrix(&self) -> &DMatrix<f64> {
        &self.k_ab
    }

    /// The entropic barycentric map $T(x) = b + K(x-a)$.
    ///
    /// # Panics
    /// If `x` has the wrong dimension (a caller bug).
    #[track_caller]
    pub fn map(&self, x: &DVector<f64>) -> DVector<f64> {
        assert_eq!(x.len(), self.mu.dim(), "map: point of wrong dimension");
        self.nu.mean() + &self.k_ab * (x - self.mu.mean())
    }

    /// The Schrödinger potentials $(f, g)$.
    ///
    /// Squared cost (MATH.md §1, `theory/gaussian.md` §4), $K=K(A\to B)$, $\tilde K = K(B\to A)$:
    /// $f(x) = \lvert x\rvert^2 - (x-a)^\top K(x-a) - 2b\cdot x + a\cdot b + k_f$,
    /// $g(y) = \lvert y\rvert^2 - (y-b)^\top \tilde K(y-b) - 2a\cdot y + a\cdot b + k_g$,
    /// with the symmetric split $k_f = k_g = \tfrac\varepsilon4\log\det(\tfrac2\varepsilon M+\tfrac12 I)$.
    /// Then $\mathrm{OT}_\varepsilon = \int f\,d\mu + \int g\,d\nu$,
    /// $d\pi/d(\mu\otimes\nu) = \exp((f\oplus g - c)/\varepsilon)$ and $T(x) = x - \nabla f(x)/2$.
    /// Half cost: both potentials are halved (and computed at $2\varepsilon$), so that
    /// $T(x) = x - \nabla f(x)$.
    pub fn potentials(&self) -> (QuadraticPotential, QuadraticPotential) {
        let k_const = self.delta * self.sum_log;
        let f = quadratic_potential(self.mu.mean(), self.nu.mean(), &self.k_ab, k_const);
        let g = quadratic_potential(self.nu.mean(), self.mu.mean(), &self.k_ba, k_const);
        (
            scale_potential(f, self.kappa),
            scale_potential(g, self.kappa),
        )
    }
}

/// $\lvert x\rvert^2 - (x-a)^\top K(x-a) - 2b\cdot x + a\cdot b + k$ in expanded form.
fn quadratic_potential(
    a: &DVector<f64>,
    b: &DVector<f64>,
    k: &DMatrix<f64>,
    k_const: f64,
) -> QuadraticPotential {
    let d = a.len();
    let ka = k * a;
    QuadraticPotential {
        quad: DMatrix::identity(d, d) - k,
        lin: (&ka - b) * 2.0,
        constant: -a.dot(&ka) + a.dot(b) + k_const,
    }
}

fn scale_potential(p: QuadraticPotential, s: f64) -> QuadraticPotential {
    QuadraticPotential {
        quad: p.quad * s,
        lin: p.lin * s,
        constant: p.constant * s,
    }
}

// ---------------------------------------------------------------------------------------------
// Free functions
// ---------------------------------------------------------------------------------------------

/// $\mathrm{OT}_\varepsilon(\mu,\nu)$ for `cost` (see [`EntropicOt::value`]; only the
/// eigenvalues of $A^{1/2}BA^{1/2}$ are computed).
pub fn ot_eps(mu: &Gaussian, nu: &Gaussian, eps: f64, cost: Cost) -> Result<f64, GaussianError> {
    same_dim(mu, nu, "nu")?;
    let (eps_sq, kappa) = sq_eps(eps, cost)?;
    finite(kappa * scalars(mu, nu, eps_sq).value, "OT_eps")
}

/// The debiased Sinkhorn divergence
/// $S_\varepsilon(\mu,\nu) = \mathrm{OT}_\varepsilon(\mu,\nu)-\tfrac12\mathrm{OT}_\varepsilon(\mu,\mu)-\tfrac12\mathrm{OT}_\varepsilon(\nu,\nu)$.
///
/// Computed without cancelling the traces (MATH.md §1, `theory/gaussian.md` §5): squared cost,
/// $S_\varepsilon = \lvert a-b\rvert^2 + \sum_i h(\lambda_i(A^{1/2}BA^{1/2})) - \tfrac12\sum_i h(\lambda_i(A)^2) - \tfrac12\sum_i h(\lambda_i(B)^2)$;
/// half cost: $\tfrac12 S_{2\varepsilon}$. $S_\varepsilon\ge0$ with equality iff $\mu=\nu$; a
/// rounding-level negative value (when $\mu\approx\nu$) is returned as 0.
pub fn sinkhorn_divergence(
    mu: &Gaussian,
    nu: &Gaussian,
    eps: f64,
    cost: Cost,
) -> Result<f64, GaussianError> {
    same_dim(mu, nu, "nu")?;
    let (eps_sq, kappa) = sq_eps(eps, cost)?;
    let delta = eps_sq / 4.0;
    let sc = scalars(mu, nu, eps_sq);
    let s =
        mean_gap_sq(mu, nu) + sc.sum_h - 0.5 * self_h_sum(mu, delta) - 0.5 * self_h_sum(nu, delta);
    finite((kappa * s).max(0.0), "S_eps")
}

/// $\mathrm{OT}_\varepsilon(\mu,\nu)$, $\mathrm{OT}_\varepsilon(\mu,\mu)$, $\mathrm{OT}_\varepsilon(\nu,\nu)$
/// and $S_\varepsilon(\mu,\nu)$ (the latter as in [`sinkhorn_divergence`], not by subtraction).
///
/// $\mathrm{OT}_\varepsilon(\mu,\mu) = \kappa\big(2\operatorname{tr}A + \sum_i h(\lambda_i(A)^2)\big)$, summed
/// eigenvalue by eigenvalue without that cancellation.
pub fn divergence_parts(
    mu: &Gaussian,
    nu: &Gaussian,
    eps: f64,
    cost: Cost,
) -> Result<DivergenceParts, GaussianError> {
    same_dim(mu, nu, "nu")?;
    let (eps_sq, kappa) = sq_eps(eps, cost)?;
    let delta = eps_sq / 4.0;
    let sc = scalars(mu, nu, eps_sq);
    let ha = self_h_sum(mu, delta);
    let hb = self_h_sum(nu, delta);
    let s = mean_gap_sq(mu, nu) + sc.sum_h - 0.5 * ha - 0.5 * hb;
    Ok(DivergenceParts {
        ot_ab: finite(kappa * sc.value, "OT_eps(mu, nu)")?,
        ot_aa: finite(kappa * self_value(mu, delta), "OT_eps(mu, mu)")?,
        ot_bb: finite(kappa * self_value(nu, delta), "OT_eps(nu, nu)")?,
        divergence: finite((kappa * s).max(0.0), "S_eps")?,
    })
}

/// Squared Bures–Wasserstein distance
/// $W_2^2(\mu,\nu) = \lvert a-b\rvert^2 + \operatorname{tr}A + \operatorname{tr}B - 2\operatorname{tr}(A^{1/2}BA^{1/2})^{1/2}$
/// (cost $\lvert x-y\rvert^2$; the $\varepsilon\to0$ limit of $\mathrm{OT}_\varepsilon$ and $S_\varepsilon$).
///
/// $\operatorname{tr}(A^{1/2}BA^{1/2})^{1/2}$ is the nuclear norm of $F_A^\top F_B$ (sum of
/// singular values). A rounding-level negative result is returned as 0.
pub fn bures_wasserstein_sq(mu: &Gaussian, nu: &Gaussian) -> Result<f64, GaussianError> {
    same_dim(mu, nu, "nu")?;
    let nuclear: f64 = (mu.factor().transpose() * nu.factor())
        .singular_values()
        .sum();
    let w = mean_gap_sq(mu, nu) + mu.cov().trace() + nu.cov().trace() - 2.0 * nuclear;
    finite(w.max(0.0), "W2^2")
}

/// Relative threshold under which an eigenvalue of $A$ counts as zero for the pseudo-inverse of
/// [`brenier_map`]: $\lambda \le 64\,d\,u\,\lambda_{\max}$ ($u$ the unit round-off). Eigenvalues
/// that small are below the backward error of the symmetric eigensolver.
pub(crate) fn pinv_threshold(eig: &SymEigen) -> f64 {
    let d = eig.values.len() as f64;
    64.0 * d * (f64::EPSILON / 2.0) * eig.values.max().max(0.0)
}

/// The Bures (Brenier) map matrix $T$ with $x \mapsto b + T(x-a)$ optimal for $W_2$:
/// $T = A^{-1/2}(A^{1/2}BA^{1/2})^{1/2}A^{-1/2}$ (MATH.md §1; symmetric PSD).
///
/// For singular $A$ the inverse is the Moore–Penrose pseudo-inverse $A^{+1/2}$ (eigenvalues below
/// $64\,d\,u\,\lambda_{\max}$ count as zero): $T$ is then the Brenier map from $\mu$ onto
/// $\mathcal N(b, PBP)$, $P$ the orthogonal projector on $\operatorname{range}A$ — the map "on
/// $\operatorname{supp}\mu$"; it pushes $\mu$ to $\nu$ only if $\operatorname{range}B\subset\operatorname{range}A$
/// and $PBP = B$. No map from a singular $\mu$ to a non-degenerate $\nu$ exists.
pub fn brenier_map(mu: &Gaussian, nu: &Gaussian) -> Result<DMatrix<f64>, GaussianError> {
    same_dim(mu, nu, "nu")?;
    let eig = mu.eigen();
    let tol = pinv_threshold(eig);
    let a_pinv_sqrt = eig.apply(|l| if l > tol { 1.0 / l.sqrt() } else { 0.0 });
    let g = symmetrize(&(mu.cov_sqrt() * nu.cov() * mu.cov_sqrt()));
    let mid = SymEigen::new(&g).apply(|t| t.max(0.0).sqrt());
    let t = symmetrize(&(&a_pinv_sqrt * mid * &a_pinv_sqrt));
    if t.iter().any(|v| !v.is_finite()) {
        return Err(GaussianError::NonFiniteResult {
            what: "Brenier map".to_string(),
        });
    }
    Ok(t)
}

/// The velocity of the Wasserstein gradient flow of $F = S_\varepsilon(\cdot,\mu^*)$ at
/// $\mu = \mathcal N(m,S)$, $\mu^* = \mathcal N(m^*,S^*)$: $v = -\nabla\,\delta F/\delta\mu$.
///
/// Squared cost (MATH.md §1; seed 001; `theory/gaussian.md` §6):
/// $v = 2(T_{\mu,\mu^*} - T_{\mu,\mu})$, affine, $v(x) = 2(m^*-m) + L(x-m)$ with
/// $L = 2\big(K(S\to S^*) - K(S\to S)\big)$, $K(S\to S) = S((S^2+\delta^2I)^{1/2}+\delta I)^{-1}$.
/// Half cost: $v = T_{\mu,\mu^*} - T_{\mu,\mu}$ with the maps at $2\varepsilon$, i.e. one half of
/// the squared-cost velocity at $2\varepsilon$.
///
/// Sign convention: for the perturbation $\mu_s = (x\mapsto x+s\,w(x))_\#\mu$,
/// $\tfrac{d}{ds}F(\mu_s)|_{s=0} = -\int\langle v, w\rangle\,d\mu$.
pub fn velocity(
    mu: &Gaussian,
    target: &Gaussian,
    eps: f64,
    cost: Cost,
) -> Result<AffineField, GaussianError> {
    same_dim(mu, target, "target")?;
    let (eps_sq, kappa) = sq_eps(eps, cost)?;
    let delta = eps_sq / 4.0;
    let k_cross = k_map(mu.cov(), target.cov_sqrt(), delta);
    let k_own = k_self_eig(mu.eigen(), delta);
    let linear = (k_cross - k_own) * (2.0 * kappa);
    let at = (target.mean() - mu.mean()) * (2.0 * kappa);
    if linear.iter().chain(at.iter()).any(|v| !v.is_finite()) {
        return Err(GaussianError::NonFiniteResult {
            what: "velocity".to_string(),
        });
    }
    Ok(AffineField {
        at,
        linear,
        center: mu.mean().clone(),
    })
}

/// The dissipation $\int\lvert v\rvert^2\,d\mu = \lvert v(m)\rvert^2 + \operatorname{tr}(LSL)$ of the
/// velocity of [`velocity`]; along the flow $\tfrac{d}{dt}S_\varepsilon(\mu_t,\mu^*) = -\int\lvert v\rvert^2d\mu_t$
/// (energy identity, `theory/gaussian.md` §7).
pub fn dissipation(
    mu: &Gaussian,
    target: &Gaussian,
    eps: f64,
    cost: Cost,
) -> Result<f64, GaussianError> {
    let v = velocity(mu, target, eps, cost)?;
    Ok(field_energy(&v, mu.cov()))
}

/// $\int\lvert v\rvert^2 d\mathcal N(m,S) = \lvert v(m)\rvert^2 + \operatorname{tr}(L S L^\top)$.
pub(crate) fn field_energy(v: &AffineField, s: &DMatrix<f64>) -> f64 {
    let ls = &v.linear * s;
    v.at.norm_squared() + ls.component_mul(&v.linear).sum()
}

/// Linearised exponential rate of the commuting flow at $s = s^* > 0$ (squared cost, per
/// eigen-direction with target variance $s^*$): $\dfrac{2s^*}{\sqrt{s^{*2}+\varepsilon^2/16}}$.
///
/// It is $-\partial_s$ of [`super::flow::commuting_rhs`] at $s=s^*$ (`theory/gaussian.md` §8);
/// it tends to 2 as $\varepsilon\to0$ and to $8s^*/\varepsilon$ as $\varepsilon\to\infty$.
/// Meant for $s^*\ge0$, $\varepsilon>0$ (returns 0 at $s^*=0$).
pub fn linearised_rate(s_star: f64, eps: f64) -> f64 {
    if s_star == 0.0 {
        return 0.0;
    }
    2.0 * s_star / s_star.hypot(eps / 4.0)
}
