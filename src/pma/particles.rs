//! The seed's IPFP on samples (`theory/pma.md` §4.7): $e^{-f}dx$ and $e^{-g}dy$ replaced by the
//! empirical measures of `x` and `y`, the same half-steps of the engine's [`Stepper`] (cost
//! $\lvert x-y\rvert^2/2$, `step_g` then `step_f` per IPFP step from $\varphi_0 = \lvert x\rvert^2/2$),
//! and $\nabla\varphi_k$ at the samples: the barycentric projection
//! $\nabla\varphi_k(x_i) = \sum_j\pi(j\mid x_i)\,y_j$ of the coupling built from
//! $(\varphi_{k-1},\psi_k)$ ([`crate::sinkhorn::barycentric_maps`]). In the Gaussian case it is
//! compared with $P_kx$ (the exact IPFP iterate) and $A_tx$ (the PMA).

use super::gaussian::iterations_for;
use super::PmaError;
use crate::sinkhorn::{barycentric_maps, PointCloud, Stepper};
use crate::Cost;

/// $k = \mathrm{round}(T/\varepsilon)$ IPFP steps on the samples; returns $k$ and
/// $\nabla\varphi_k(x_i)$, row-major $n\times d$.
pub fn particle_ipfp(
    x: &PointCloud,
    y: &PointCloud,
    eps: f64,
    t_end: f64,
) -> Result<(usize, Vec<f64>), PmaError> {
    particle_ipfp_full(x, y, eps, t_end).map(|r| (r.k, r.grad_phi))
}

/// The output of [`particle_ipfp_full`] (the fields of a grid snapshot that are defined on
/// samples).
#[derive(Clone, Debug, PartialEq)]
pub struct ParticleIpfp {
    /// $k = \mathrm{round}(T/\varepsilon)$.
    pub k: usize,
    /// $\varphi_k(x_i) = \lvert x_i\rvert^2/2 - f^{\rm e}_i$ (the engine's potential, $\varphi_0 = \lvert x\rvert^2/2$).
    pub phi: Vec<f64>,
    /// $\nabla\varphi_k(x_i)$, row-major $n\times d$.
    pub grad_phi: Vec<f64>,
    /// $\rho_k/e^{-f} = e^{(\varphi_k-\varphi_{k-1})/\varepsilon}$ at the samples: the density of the
    /// $X$-marginal of the $k$-th coupling against the empirical measure of `x` (1 at a fixed point).
    pub rho_ratio: Vec<f64>,
    /// $\max_i\lvert(\varphi_k-\varphi_{k-1})(x_i)\rvert/\varepsilon = \max_i\lvert f + \log\rho_k\rvert$, the
    /// residual of the stationary equation on the samples.
    pub residual: f64,
}

/// [`particle_ipfp`] with $\varphi_k$, the marginal ratio and the residual at the samples.
pub fn particle_ipfp_full(
    x: &PointCloud,
    y: &PointCloud,
    eps: f64,
    t_end: f64,
) -> Result<ParticleIpfp, PmaError> {
    let k = iterations_for(t_end, eps)?;
    if x.dim() != y.dim() {
        return Err(PmaError::DimensionMismatch {
            what: "dimension of the y samples".to_string(),
            expected: x.dim(),
            found: y.dim(),
        });
    }
    let mut st = Stepper::cold(x, y, eps, Cost::HalfSqEuclidean)
        .map_err(|e| PmaError::InvalidGrid(e.to_string()))?;
    let mut prev = st.f().to_vec();
    for _ in 0..k {
        prev.copy_from_slice(st.f());
        st.step_g();
        st.step_f();
    }
    let grad = barycentric_maps(st.g(), y, x, eps, Cost::HalfSqEuclidean);
    if grad.iter().any(|v| !v.is_finite()) {
        return Err(PmaError::NonFiniteResult {
            what: "barycentric projection".to_string(),
        });
    }
    let fe = st.f();
    let phi = (0..x.len())
        .map(|i| 0.5 * x.point(i).iter().map(|v| v * v).sum::<f64>() - fe[i])
        .collect();
    let logs: Vec<f64> = prev.iter().zip(fe).map(|(p, c)| (p - c) / eps).collect();
    let residual = logs.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    Ok(ParticleIpfp {
        k,
        phi,
        grad_phi: grad,
        rho_ratio: logs.iter().map(|v| v.exp()).collect(),
        residual,
    })
}
