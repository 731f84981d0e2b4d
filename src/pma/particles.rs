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
    for _ in 0..k {
        st.step_g();
        st.step_f();
    }
    let grad = barycentric_maps(st.g(), y, x, eps, Cost::HalfSqEuclidean);
    if grad.iter().any(|v| !v.is_finite()) {
        return Err(PmaError::NonFiniteResult {
            what: "barycentric projection".to_string(),
        });
    }
    Ok((k, grad))
}
