//! A small public catalog of Gaussian problems with known structure, shared by the tests, the
//! validation campaign and the benches (STYLE.md practice 10).
//!
//! All generators take an explicit RNG; use [`seeded`] for reproducible streams. Covariances are
//! built as $Q\,\operatorname{diag}(\lambda)\,Q^\top$ with $Q$ Haar-distributed orthogonal
//! ([`random_orthogonal`]) and then symmetrised, so their spectrum is known (up to round-off of
//! order $u\lambda_{\max}$).

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Gaussian;
use crate::linalg::symmetrize;

/// A reproducible RNG (ChaCha8) from a 64-bit seed.
pub fn seeded(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn std_normal<R: Rng>(rng: &mut R) -> f64 {
    rng.sample(rand_distr::StandardNormal)
}

/// A Haar-distributed random orthogonal $d\times d$ matrix (QR of a Gaussian matrix with the
/// sign of $\operatorname{diag}R$ fixed, Mezzadri 2007).
pub fn random_orthogonal<R: Rng>(d: usize, rng: &mut R) -> DMatrix<f64> {
    let g = DMatrix::<f64>::from_fn(d, d, |_, _| std_normal(rng));
    let qr = g.qr();
    let mut q = qr.q();
    let r = qr.r();
    for j in 0..d {
        if r[(j, j)] < 0.0 {
            q.column_mut(j).neg_mut();
        }
    }
    q
}

/// $Q\operatorname{diag}(\lambda)Q^\top$, symmetrised.
pub fn with_spectrum(q: &DMatrix<f64>, eigenvalues: &[f64]) -> DMatrix<f64> {
    let d = DMatrix::from_diagonal(&DVector::from_column_slice(eigenvalues));
    symmetrize(&(q * d * q.transpose()))
}

/// Eigenvalues log-spaced from `lo` to `hi` (both $>0$), `n` of them (`lo` alone when `n = 1`).
pub fn log_spaced(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    let (a, b) = (lo.ln(), hi.ln());
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// A random SPD matrix with condition number `cond` ($\ge1$): eigenvalues log-spaced in
/// $[\mathrm{cond}^{-1/2}, \mathrm{cond}^{1/2}]$ (geometric mean 1), random eigenvectors.
/// For $d = 1$ the single eigenvalue is log-uniform in that interval.
pub fn random_spd<R: Rng>(d: usize, cond: f64, rng: &mut R) -> DMatrix<f64> {
    let c = cond.max(1.0).sqrt();
    let q = random_orthogonal(d, rng);
    if d == 1 {
        let l = rng.random_range(-1.0..=1.0) * c.ln();
        return with_spectrum(&q, &[l.exp()]);
    }
    with_spectrum(&q, &log_spaced(1.0 / c, c, d))
}

/// A random PSD matrix of rank `rank` ($\le d$): `rank` eigenvalues uniform in $[0.5, 2]$, the
/// others exactly 0 before rotation (after rotation they are $O(u)$ in magnitude).
pub fn random_psd_rank<R: Rng>(d: usize, rank: usize, rng: &mut R) -> DMatrix<f64> {
    let q = random_orthogonal(d, rng);
    let mut lam = vec![0.0; d];
    for l in lam.iter_mut().take(rank.min(d)) {
        *l = rng.random_range(0.5..2.0);
    }
    with_spectrum(&q, &lam)
}

/// A random SPD matrix whose eigenvalues are log-spaced over $[10^{-8}, 10^{4}]$ (for
/// $d\ge2$; $d=1$ gives $10^{-8}$): the stress test of the closed forms.
pub fn wide_spectrum<R: Rng>(d: usize, rng: &mut R) -> DMatrix<f64> {
    let q = random_orthogonal(d, rng);
    with_spectrum(&q, &log_spaced(1e-8, 1e4, d))
}

/// Two covariances that commute: $Q\operatorname{diag}(a)Q^\top$ and $Q\operatorname{diag}(b)Q^\top$
/// with a common random rotation $Q$ (returned third). Every closed form then reduces to 1D
/// formulas per eigen-direction, e.g. the flow to [`super::flow::commuting_rhs`].
///
/// # Panics
/// If `a` and `b` have different lengths (a caller bug).
#[track_caller]
pub fn commuting_pair<R: Rng>(
    a: &[f64],
    b: &[f64],
    rng: &mut R,
) -> (DMatrix<f64>, DMatrix<f64>, DMatrix<f64>) {
    assert_eq!(
        a.len(),
        b.len(),
        "commuting_pair: spectra of different lengths"
    );
    let q = random_orthogonal(a.len(), rng);
    (with_spectrum(&q, a), with_spectrum(&q, b), q)
}

/// A random mean with independent $\mathcal N(0, \text{scale}^2)$ entries.
pub fn random_mean<R: Rng>(d: usize, scale: f64, rng: &mut R) -> DVector<f64> {
    DVector::from_fn(d, |_, _| scale * std_normal(rng))
}

/// A random non-degenerate Gaussian: mean with unit-variance entries, covariance
/// [`random_spd`] with condition number `cond`.
pub fn random_gaussian<R: Rng>(d: usize, cond: f64, rng: &mut R) -> Gaussian {
    let m = random_mean(d, 1.0, rng);
    let c = random_spd(d, cond, rng);
    Gaussian::new_unchecked(m, c)
}
