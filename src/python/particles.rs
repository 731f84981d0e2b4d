//! `sinkflow.particles`: Sinkhorn drifts and particle Sinkhorn flows (seed 003).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{
    convergence_err, dict, dmat, dmats, dvecs, parse_cost, points_matrix, run, InputError,
};
use crate::particles::drift::{drift as drift_fn, DriftKind, DriftParams};
use crate::particles::flow::{particle_flow, FlowParams, Integrator};
use crate::sinkhorn::Mode;

fn kind(name: &str, l: Option<usize>) -> PyResult<DriftKind> {
    match (name, l) {
        ("sinkhorn", _) => Ok(DriftKind::Sinkhorn),
        ("one-sided", _) => Ok(DriftKind::OneSided),
        ("two-sided", _) => Ok(DriftKind::TwoSided),
        ("l-step", Some(l)) => Ok(DriftKind::LStep(l)),
        ("l-step", None) => Err(InputError::new_err(
            "drift 'l-step' needs L (an odd number of half-steps)",
        )),
        (other, _) => Err(InputError::new_err(format!(
            "unknown drift '{other}' (expected 'sinkhorn', 'one-sided', 'two-sided' or 'l-step')"
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn drift_params(
    eps: f64,
    kind_name: &str,
    l: Option<usize>,
    cost: &str,
    mask_self: bool,
    tol: f64,
    max_iters: usize,
    mode: &str,
) -> PyResult<DriftParams> {
    Ok(DriftParams {
        tau: eps,
        cost: parse_cost(cost)?,
        kind: kind(kind_name, l)?,
        mask_self,
        tol,
        max_iters,
        mode: mode.parse::<Mode>().map_err(InputError::new_err)?,
    })
}

/// The drift V = T_cross − T_self at the particles x (see the stub).
#[pyfunction]
#[pyo3(signature = (x, y, eps, *, kind="sinkhorn", L=None, cost="sq", mask_self=false, tol=1e-9, max_iters=10_000, mode="auto", allow_nonconvergence=false))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn drift<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    eps: f64,
    kind: &str,
    L: Option<usize>,
    cost: &str,
    mask_self: bool,
    tol: f64,
    max_iters: usize,
    mode: &str,
    allow_nonconvergence: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let params = drift_params(eps, kind, L, cost, mask_self, tol, max_iters, mode)?;
    let xm = points_matrix(x, "x")?;
    let ym = points_matrix(y, "y")?;
    let out = run(py, move || drift_fn(&xm, &ym, &params))?;
    let res = dict(
        py,
        vec![
            ("v", dmat(py, &out.v)?),
            ("t_cross", dmat(py, &out.t_cross)?),
            ("t_self", dmat(py, &out.t_self)?),
            ("iterations", out.iterations.into_pyobject(py)?.into_any()),
            (
                "converged",
                pyo3::types::PyBool::new(py, out.converged)
                    .to_owned()
                    .into_any(),
            ),
            ("residual", out.residual.into_pyobject(py)?.into_any()),
        ],
    )?;
    if !out.converged && !allow_nonconvergence {
        return Err(convergence_err(
            py,
            format!("drift: the converged Sinkhorn solves did not reach tol {tol:e} (residual {:.3e}); loosen tol, raise eps, or pass allow_nonconvergence=True", out.residual),
            Some(out.residual),
            Some(res.into_any().unbind()),
        ));
    }
    Ok(res)
}

/// The particle flow driven by the drift (see the stub).
#[pyfunction]
#[pyo3(signature = (x0, y, eps, t_end, dt=0.01, samples=10, *, kind="sinkhorn", L=None, cost="sq", mask_self=false, tol=1e-9, max_iters=10_000, mode="auto", integrator="heun", warm_start=true, keep_positions=true, monitor_divergence=true, monitor_w2=false, allow_nonconvergence=false))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn flow<'py>(
    py: Python<'py>,
    x0: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    eps: f64,
    t_end: f64,
    dt: f64,
    samples: usize,
    kind: &str,
    L: Option<usize>,
    cost: &str,
    mask_self: bool,
    tol: f64,
    max_iters: usize,
    mode: &str,
    integrator: &str,
    warm_start: bool,
    keep_positions: bool,
    monitor_divergence: bool,
    monitor_w2: bool,
    allow_nonconvergence: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let params = FlowParams {
        drift: drift_params(eps, kind, L, cost, mask_self, tol, max_iters, mode)?,
        t_end,
        dt,
        samples,
        integrator: match integrator {
            "euler" => Integrator::Euler,
            "heun" => Integrator::Heun,
            other => {
                return Err(InputError::new_err(format!(
                    "unknown integrator '{other}' (expected 'euler' or 'heun')"
                )))
            }
        },
        warm_start,
        keep_positions,
        monitor_divergence,
        monitor_w2,
    };
    let xm = points_matrix(x0, "x0")?;
    let ym = points_matrix(y, "y")?;
    let (n, d) = xm.shape();
    let out = run(py, move || particle_flow(&xm, &ym, &params))?;
    let unconverged = out.unconverged_evaluations + out.unconverged_monitor_solves;
    let res = dict(
        py,
        vec![
            ("t", super::arr1(py, out.times)),
            ("positions", dmats(py, &out.positions, n, d)?),
            ("means", dvecs(py, &out.means, d)?),
            ("covs", dmats(py, &out.covs, d, d)?),
            ("divergence", super::arr1(py, out.divergence)),
            ("w2", super::arr1(py, out.w2)),
            ("dt", out.dt.into_pyobject(py)?.into_any()),
            ("steps", out.steps.into_pyobject(py)?.into_any()),
            (
                "drift_evaluations",
                out.drift_evaluations.into_pyobject(py)?.into_any(),
            ),
            (
                "sinkhorn_iterations",
                out.sinkhorn_iterations.into_pyobject(py)?.into_any(),
            ),
            (
                "unconverged_evaluations",
                out.unconverged_evaluations.into_pyobject(py)?.into_any(),
            ),
            (
                "max_unconverged_residual",
                out.max_unconverged_residual.into_pyobject(py)?.into_any(),
            ),
            (
                "unconverged_monitor_solves",
                out.unconverged_monitor_solves.into_pyobject(py)?.into_any(),
            ),
            (
                "converged",
                pyo3::types::PyBool::new(py, unconverged == 0)
                    .to_owned()
                    .into_any(),
            ),
        ],
    )?;
    if unconverged > 0 && !allow_nonconvergence {
        return Err(convergence_err(
            py,
            format!(
                "particle flow: {} of {} drift evaluations and {} divergence-monitor solves did not reach tol {:e} (largest drift residual {:.3e}); loosen tol, raise eps, or pass allow_nonconvergence=True",
                out.unconverged_evaluations, out.drift_evaluations, out.unconverged_monitor_solves, tol, out.max_unconverged_residual
            ),
            Some(out.max_unconverged_residual),
            Some(res.into_any().unbind()),
        ));
    }
    Ok(res)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(drift, m)?)?;
    m.add_function(wrap_pyfunction!(flow, m)?)?;
    Ok(())
}
