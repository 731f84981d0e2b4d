//! `sinkflow.finite`: the Sinkhorn potential flow on a finite space (seed 000) and SJKO.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::{dict, parse_cost, points as read_points, run, vector, InputError};
use crate::finite::{
    reflected_flow, reflected_flow_dd, resolvent_flow, resolvent_flow_dd, sjko_flow,
    wasserstein_upwind_1d, wasserstein_upwind_2d, ExtendedKernel, FiniteError, FiniteSpace,
    FlowParams, Kernel, KernelParams, MuOperators, SjkoParams, DD_MAX_CONDITION,
};

fn rows(v: Vec<Vec<f64>>, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(v.len() * n);
    for r in v {
        out.extend(r);
    }
    out
}

/// The implicit (or reflected) resolvent flow of E(μ) = Σ V μ in the b-variable.
#[pyfunction]
#[pyo3(signature = (points, v, mu0, eps, dt, steps, *, cost="sq", scheme="implicit", precision="double", max_condition=None))]
#[allow(clippy::too_many_arguments)]
fn flow<'py>(
    py: Python<'py>,
    points: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    mu0: &Bound<'py, PyAny>,
    eps: f64,
    dt: f64,
    steps: usize,
    cost: &str,
    scheme: &str,
    precision: &str,
    max_condition: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (n, d, x) = read_points(points, "points")?;
    let v = vector(v, "v")?;
    let mu0 = vector(mu0, "mu0")?;
    let c = parse_cost(cost)?;
    let reflected = match scheme {
        "implicit" => false,
        "reflected" => true,
        other => {
            return Err(InputError::new_err(format!(
                "unknown scheme '{other}' (expected 'implicit' or 'reflected')"
            )))
        }
    };
    let double_double = match precision {
        "double" => false,
        "double-double" => true,
        other => {
            return Err(InputError::new_err(format!(
                "unknown precision '{other}' (expected 'double' or 'double-double')"
            )))
        }
    };
    let params = FlowParams {
        dt,
        steps,
        lcp: Default::default(),
        bmap: Default::default(),
    };
    let out = run(py, move || {
        let space = FiniteSpace::new(x, d, c)?;
        if double_double {
            let limit = max_condition.unwrap_or(DD_MAX_CONDITION);
            let kernel = ExtendedKernel::new(&space, eps, limit)?;
            return if reflected {
                reflected_flow_dd(&space, &kernel, &v, &mu0, &params)
            } else {
                resolvent_flow_dd(&space, &kernel, &v, &mu0, &params)
            };
        }
        let max_condition = max_condition.unwrap_or(KernelParams::default().max_condition);
        let kernel = Kernel::new(&space, eps, &KernelParams { max_condition })?;
        if reflected {
            reflected_flow(&space, &kernel, &v, &mu0, &params)
        } else {
            resolvent_flow(&space, &kernel, &v, &mu0, &params)
        }
    })?;
    let k = out.t.len();
    dict(
        py,
        vec![
            ("t", super::arr1(py, out.t)),
            ("mu", super::arr_nd(py, rows(out.mu, n), &[k, n])?),
            ("a", super::arr_nd(py, rows(out.a, n), &[k, n])?),
            ("energy", super::arr1(py, out.energy)),
            ("mass", super::arr1(py, out.mass)),
            ("kkt_residual", super::arr1(py, out.kkt_residual)),
            ("cond_k", out.cond_k.into_pyobject(py)?.into_any()),
            (
                "initial_error",
                out.initial_error.into_pyobject(py)?.into_any(),
            ),
        ],
    )
}

/// The Sinkhorn JKO scheme (log domain) of E(μ) = Σ V μ.
#[pyfunction]
#[pyo3(signature = (points, v, mu0, eps, tau, steps, *, cost="sq", tol=1e-10, max_newton=300, sinkhorn_tol=1e-13))]
#[allow(clippy::too_many_arguments)]
fn sjko<'py>(
    py: Python<'py>,
    points: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    mu0: &Bound<'py, PyAny>,
    eps: f64,
    tau: f64,
    steps: usize,
    cost: &str,
    tol: f64,
    max_newton: usize,
    sinkhorn_tol: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (n, d, x) = read_points(points, "points")?;
    let v = vector(v, "v")?;
    let mu0 = vector(mu0, "mu0")?;
    let c = parse_cost(cost)?;
    let params = SjkoParams {
        tau,
        steps,
        tol,
        max_newton,
        sinkhorn_tol,
        strict: true,
    };
    let out = run(py, move || {
        let space = FiniteSpace::new(x, d, c)?;
        sjko_flow(&space, eps, &v, &mu0, &params)
    })?;
    let k = out.t.len();
    let newton: Vec<usize> = out.newton_iterations;
    dict(
        py,
        vec![
            ("t", super::arr1(py, out.t)),
            ("mu", super::arr_nd(py, rows(out.mu, n), &[k, n])?),
            ("energy", super::arr1(py, out.energy)),
            ("mass", super::arr1(py, out.mass)),
            ("kkt_residual", super::arr1(py, out.kkt_residual)),
            ("newton_iterations", newton.into_pyobject(py)?.into_any()),
            ("hessian_cond", super::arr1(py, out.hessian_cond)),
        ],
    )
}

/// cond(K) of the Gibbs kernel of `points` at eps, and the largest eps with cond(K) ≤ limit.
#[pyfunction]
#[pyo3(signature = (points, eps, *, cost="sq", limit=1e10))]
fn kernel_condition(
    py: Python<'_>,
    points: &Bound<'_, PyAny>,
    eps: f64,
    cost: &str,
    limit: f64,
) -> PyResult<(f64, f64)> {
    let (_, d, x) = read_points(points, "points")?;
    let c = parse_cost(cost)?;
    if !(eps.is_finite() && eps > 0.0) {
        return Err(InputError::new_err(format!(
            "eps must be finite and > 0, got {eps}"
        )));
    }
    run(py, move || {
        let space = FiniteSpace::new(x, d, c)?;
        Ok::<_, FiniteError>((
            crate::finite::kernel_condition(&space, eps),
            crate::finite::largest_safe_eps(&space, limit),
        ))
    })
}

/// The metric tensor g_mu(sigma, sigma) of S_eps at mu (the CLI's `finite metric`).
#[pyfunction]
#[pyo3(signature = (points, mu, sigma, eps, *, cost="sq"))]
fn metric(
    py: Python<'_>,
    points: &Bound<'_, PyAny>,
    mu: &Bound<'_, PyAny>,
    sigma: &Bound<'_, PyAny>,
    eps: f64,
    cost: &str,
) -> PyResult<f64> {
    let (n, d, x) = read_points(points, "points")?;
    let mu = vector(mu, "mu")?;
    let sigma = vector(sigma, "sigma")?;
    let c = parse_cost(cost)?;
    if !(eps.is_finite() && eps > 0.0) {
        return Err(InputError::new_err(format!(
            "eps must be finite and > 0, got {eps}"
        )));
    }
    if let Some(i) = sigma.iter().position(|t| !t.is_finite()) {
        return Err(InputError::new_err(format!(
            "sigma: non-finite value at index {i}"
        )));
    }
    if sigma.len() != n {
        return Err(InputError::new_err(format!(
            "sigma has {} values but there are {n} points",
            sigma.len()
        )));
    }
    run(py, move || {
        let space = FiniteSpace::new(x, d, c)?;
        let ops = MuOperators::new(&space, eps, &mu, &Default::default())?;
        ops.metric(&sigma)
    })
}

/// The Wasserstein gradient flow of E(μ) = Σ V μ by upwind finite volumes (1-D points or a 2-D
/// tensor grid).
#[pyfunction]
fn wasserstein_flow<'py>(
    py: Python<'py>,
    points: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    mu0: &Bound<'py, PyAny>,
    times: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let times = vector(times, "times")?;
    let (_, v) = super::to_f64(v, "v")?;
    let (_, mu0) = super::to_f64(mu0, "mu0")?;
    let axes: Option<(Vec<f64>, Vec<f64>)> = match points.cast::<PyTuple>() {
        Ok(t) if t.len() == 2 => Some((
            vector(&t.get_item(0)?, "points[0]")?,
            vector(&t.get_item(1)?, "points[1]")?,
        )),
        _ => None,
    };
    let (shape, out) = match axes {
        Some((xs, ys)) => {
            let shape = vec![ys.len(), xs.len()];
            let out = run(py, move || {
                wasserstein_upwind_2d(&xs, &ys, &v, &mu0, &times)
            })?;
            (shape, out)
        }
        None => {
            let x = vector(points, "points")?;
            let shape = vec![x.len()];
            let out = run(py, move || wasserstein_upwind_1d(&x, &v, &mu0, &times))?;
            (shape, out)
        }
    };
    let k = out.t.len();
    let n: usize = shape.iter().product();
    let mut full = vec![k];
    full.extend(shape);
    dict(
        py,
        vec![
            ("t", super::arr1(py, out.t)),
            ("mu", super::arr_nd(py, rows(out.mu, n), &full)?),
            ("steps", out.steps.into_pyobject(py)?.into_any()),
        ],
    )
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(flow, m)?)?;
    m.add_function(wrap_pyfunction!(sjko, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_condition, m)?)?;
    m.add_function(wrap_pyfunction!(metric, m)?)?;
    m.add_function(wrap_pyfunction!(wasserstein_flow, m)?)?;
    Ok(())
}
