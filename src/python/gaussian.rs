//! `sinkflow.gaussian`: closed-form Gaussian entropic OT and the Gaussian flows.

use nalgebra::{DMatrix, DVector};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{dict, dmat, dmats, dvec, dvecs, parse_cost, run, square, vector, InputError};
use crate::gaussian::flow::{self, FlowParams, FlowTrajectory, Method};
use crate::gaussian::{self as g, EntropicOt, Gaussian, GaussianError, QuadraticPotential};

/// A validated Gaussian from Python arrays (mean (d,) or scalar, covariance (d, d) or scalar).
fn gaussian(
    mean: &Bound<'_, PyAny>,
    cov: &Bound<'_, PyAny>,
    mn: &str,
    cn: &str,
) -> PyResult<(DVector<f64>, DMatrix<f64>)> {
    let m = DVector::from_vec(vector(mean, mn)?);
    let s = square(cov, cn)?;
    Ok((m, s))
}

type Pair = ((DVector<f64>, DMatrix<f64>), (DVector<f64>, DMatrix<f64>));

fn pair(
    m1: &Bound<'_, PyAny>,
    s1: &Bound<'_, PyAny>,
    m2: &Bound<'_, PyAny>,
    s2: &Bound<'_, PyAny>,
) -> PyResult<Pair> {
    Ok((gaussian(m1, s1, "m1", "S1")?, gaussian(m2, s2, "m2", "S2")?))
}

fn build(p: Pair) -> Result<(Gaussian, Gaussian), GaussianError> {
    let ((a, sa), (b, sb)) = p;
    Ok((Gaussian::new(a, sa)?, Gaussian::new(b, sb)?))
}

fn potential<'py>(py: Python<'py>, p: &QuadraticPotential) -> PyResult<Bound<'py, PyDict>> {
    dict(
        py,
        vec![
            ("quad", dmat(py, &p.quad)?),
            ("lin", dvec(py, &p.lin)),
            ("constant", p.constant.into_pyobject(py)?.into_any()),
        ],
    )
}

/// Closed-form entropic OT between two Gaussians (see the stub).
#[pyclass(module = "sinkflow.gaussian", name = "GaussianOT", frozen)]
pub struct GaussianOt {
    inner: EntropicOt,
    mu_mean: DVector<f64>,
}

#[pymethods]
impl GaussianOt {
    /// OT_eps(μ, ν) = ⟨π, c⟩ + eps KL(π | μ⊗ν).
    #[getter]
    fn value(&self) -> f64 {
        self.inner.value()
    }
    /// ⟨π, c⟩ (POT's `sinkhorn2`).
    #[getter]
    fn transport_cost(&self) -> f64 {
        self.inner.transport_cost()
    }
    /// KL(π | μ⊗ν).
    #[getter]
    fn mutual_information(&self) -> f64 {
        self.inner.mutual_information()
    }
    /// eps.
    #[getter]
    fn eps(&self) -> f64 {
        self.inner.eps()
    }
    /// The cost name.
    #[getter]
    fn cost(&self) -> &'static str {
        self.inner.cost().name()
    }
    /// The symmetric map matrix K: T(x) = b + K (x − a).
    #[getter]
    fn map_matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        dmat(py, self.inner.map_matrix())
    }
    /// The cross-covariance C = Cov_π(X, Y).
    #[getter]
    fn cross_covariance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        dmat(py, self.inner.cross_covariance())
    }
    /// The potentials (f, g) as dicts {"quad": Q, "lin": l, "constant": k}: f(x) = xᵀQx + lᵀx + k.
    #[getter]
    fn potentials<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let (f, g) = self.inner.potentials();
        Ok((potential(py, &f)?, potential(py, &g)?))
    }
    /// The plan as (mean (2d,), cov (2d, 2d)).
    #[getter]
    fn plan<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let p = self.inner.plan();
        Ok((dvec(py, p.mean()), dmat(py, p.cov())?))
    }
    /// The entropic map T(x) = b + K (x − a) at points x of shape (n, d) or (d,).
    fn map<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        map_points(py, &self.inner, &self.mu_mean, x)
    }
    fn __repr__(&self) -> String {
        format!(
            "GaussianOT(value={}, transport_cost={}, mutual_information={}, eps={}, cost='{}')",
            self.inner.value(),
            self.inner.transport_cost(),
            self.inner.mutual_information(),
            self.inner.eps(),
            self.inner.cost().name()
        )
    }
}

fn map_points<'py>(
    py: Python<'py>,
    ot: &EntropicOt,
    a: &DVector<f64>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let d = a.len();
    let (shape, data) = super::to_f64(x, "x")?;
    let rows = match shape.as_slice() {
        [k] if *k == d => None,
        [n, k] if *k == d => Some(*n),
        _ => {
            return Err(InputError::new_err(format!(
                "x: expected points of shape (n, {d}) or ({d},), got shape {shape:?}"
            )))
        }
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(InputError::new_err(format!(
            "x: non-finite value at index {i}"
        )));
    }
    let n = rows.unwrap_or(1);
    let mut out = Vec::with_capacity(n * d);
    for i in 0..n {
        let p = ot.map(&DVector::from_row_slice(&data[i * d..(i + 1) * d]));
        out.extend_from_slice(p.as_slice());
    }
    match rows {
        None => Ok(super::arr1(py, out)),
        Some(n) => super::arr_nd(py, out, &[n, d]),
    }
}

/// Entropic OT between N(m1, S1) and N(m2, S2) in closed form (S PSD, singular allowed).
///
/// OT_eps = <pi, c> + eps KL(pi | mu x nu) with cost "sq" (|x-y|^2, default) or "half-sq"
/// (|x-y|^2/2: the "sq" quantities at 2 eps, halved). Means (d,), covariances (d, d); scalars
/// for d = 1. Returns a GaussianOT: .value (OT_eps; OTT-JAX's reg_ot_cost), .transport_cost
/// (<pi, c>; POT's sinkhorn2), .mutual_information (KL), .potentials (f, g as
/// {"quad", "lin", "constant"}), .map_matrix K (T(x) = m2 + K (x - m1)), .plan, .map(x).
/// Raises InputError on bad input.
#[pyfunction]
#[pyo3(signature = (m1, S1, m2, S2, eps, cost="sq"))]
#[allow(non_snake_case)]
fn ot(
    py: Python<'_>,
    m1: &Bound<'_, PyAny>,
    S1: &Bound<'_, PyAny>,
    m2: &Bound<'_, PyAny>,
    S2: &Bound<'_, PyAny>,
    eps: f64,
    cost: &str,
) -> PyResult<GaussianOt> {
    let c = parse_cost(cost)?;
    let p = pair(m1, S1, m2, S2)?;
    let (inner, mu_mean) = run(py, move || {
        let (mu, nu) = build(p)?;
        let ot = EntropicOt::new(&mu, &nu, eps, c)?;
        Ok::<_, GaussianError>((ot, mu.mean().clone()))
    })?;
    Ok(GaussianOt { inner, mu_mean })
}

/// The Sinkhorn divergence S_eps(mu, nu) = OT_eps(mu,nu) - OT_eps(mu,mu)/2 - OT_eps(nu,nu)/2
/// between Gaussians, in closed form (cost and eps as in ot).
#[pyfunction]
#[pyo3(signature = (m1, S1, m2, S2, eps, cost="sq"))]
#[allow(non_snake_case)]
fn divergence(
    py: Python<'_>,
    m1: &Bound<'_, PyAny>,
    S1: &Bound<'_, PyAny>,
    m2: &Bound<'_, PyAny>,
    S2: &Bound<'_, PyAny>,
    eps: f64,
    cost: &str,
) -> PyResult<f64> {
    let c = parse_cost(cost)?;
    let p = pair(m1, S1, m2, S2)?;
    run(py, move || {
        let (mu, nu) = build(p)?;
        g::sinkhorn_divergence(&mu, &nu, eps, c)
    })
}

/// The three OT_eps terms and S_eps, as the CLI's `gaussian divergence --json`.
#[pyfunction]
#[pyo3(signature = (m1, S1, m2, S2, eps, cost="sq"))]
#[allow(non_snake_case)]
fn divergence_parts<'py>(
    py: Python<'py>,
    m1: &Bound<'py, PyAny>,
    S1: &Bound<'py, PyAny>,
    m2: &Bound<'py, PyAny>,
    S2: &Bound<'py, PyAny>,
    eps: f64,
    cost: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let c = parse_cost(cost)?;
    let p = pair(m1, S1, m2, S2)?;
    let parts = run(py, move || {
        let (mu, nu) = build(p)?;
        g::divergence_parts(&mu, &nu, eps, c)
    })?;
    dict(
        py,
        vec![
            ("divergence", parts.divergence.into_pyobject(py)?.into_any()),
            ("ot_ab", parts.ot_ab.into_pyobject(py)?.into_any()),
            ("ot_aa", parts.ot_aa.into_pyobject(py)?.into_any()),
            ("ot_bb", parts.ot_bb.into_pyobject(py)?.into_any()),
        ],
    )
}

/// Squared Bures–Wasserstein distance W2²(μ, ν).
#[pyfunction]
#[pyo3(signature = (m1, S1, m2, S2))]
#[allow(non_snake_case)]
fn w2(
    py: Python<'_>,
    m1: &Bound<'_, PyAny>,
    S1: &Bound<'_, PyAny>,
    m2: &Bound<'_, PyAny>,
    S2: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let p = pair(m1, S1, m2, S2)?;
    run(py, move || {
        let (mu, nu) = build(p)?;
        g::bures_wasserstein_sq(&mu, &nu)
    })
}

/// The entropic plan π as (mean (2d,), cov (2d, 2d)).
#[pyfunction]
#[pyo3(signature = (m1, S1, m2, S2, eps, cost="sq"))]
#[allow(non_snake_case)]
fn plan<'py>(
    py: Python<'py>,
    m1: &Bound<'py, PyAny>,
    S1: &Bound<'py, PyAny>,
    m2: &Bound<'py, PyAny>,
    S2: &Bound<'py, PyAny>,
    eps: f64,
    cost: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    ot(py, m1, S1, m2, S2, eps, cost)?.plan(py)
}

/// The entropic map: the matrix K (x=None) or T(x) = m2 + K (x − m1).
#[pyfunction]
#[pyo3(signature = (m1, S1, m2, S2, eps, cost="sq", x=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn map<'py>(
    py: Python<'py>,
    m1: &Bound<'py, PyAny>,
    S1: &Bound<'py, PyAny>,
    m2: &Bound<'py, PyAny>,
    S2: &Bound<'py, PyAny>,
    eps: f64,
    cost: &str,
    x: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let o = ot(py, m1, S1, m2, S2, eps, cost)?;
    match x {
        Some(x) if !x.is_none() => o.map(py, x),
        _ => o.map_matrix(py),
    }
}

fn trajectory<'py>(py: Python<'py>, t: FlowTrajectory) -> PyResult<Bound<'py, PyDict>> {
    let d = t.means.first().map_or(0, |m| m.len());
    dict(
        py,
        vec![
            ("t", super::arr1(py, t.times)),
            ("means", dvecs(py, &t.means, d)?),
            ("covs", dmats(py, &t.covs, d, d)?),
            ("divergence", super::arr1(py, t.divergence)),
            ("dissipation", super::arr1(py, t.dissipation)),
            ("evaluations", t.evaluations.into_pyobject(py)?.into_any()),
            (
                "accepted_steps",
                t.accepted_steps.into_pyobject(py)?.into_any(),
            ),
            (
                "rejected_steps",
                t.rejected_steps.into_pyobject(py)?.into_any(),
            ),
        ],
    )
}

/// The Wasserstein gradient flow of S_eps(., N(m_target, S_target)) among Gaussians.
///
/// mu_t = N(m_t, S_t) with velocity v = 2 (T_{mu,target} - T_{mu,mu}) for cost "sq"
/// (T_{mu,target} - T_{mu,mu} at 2 eps for "half-sq"): m' = 2 (m* - m) and the covariance ODE,
/// integrated adaptively (method "dopri5" or "dop853", rtol, atol) and reported at the
/// samples + 1 times k t_end / samples. Returns {"t", "means" (K+1, d), "covs" (K+1, d, d),
/// "divergence" (S_eps(mu_t, target)), "dissipation" (int |v|^2 dmu_t), counters}.
#[pyfunction]
#[pyo3(name = "flow", signature = (m0, S0, m_target, S_target, eps, t_end, samples=100, *, cost="sq", rtol=1e-10, atol=1e-12, method="dopri5"))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn flow_<'py>(
    py: Python<'py>,
    m0: &Bound<'py, PyAny>,
    S0: &Bound<'py, PyAny>,
    m_target: &Bound<'py, PyAny>,
    S_target: &Bound<'py, PyAny>,
    eps: f64,
    t_end: f64,
    samples: usize,
    cost: &str,
    rtol: f64,
    atol: f64,
    method: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let params = FlowParams {
        eps,
        cost: parse_cost(cost)?,
        t_end,
        samples,
        rtol,
        atol,
        method: method.parse::<Method>().map_err(InputError::new_err)?,
    };
    let p = pair(m0, S0, m_target, S_target)?;
    let t = run(py, move || {
        let (mu, nu) = build(p)?;
        flow::sinkhorn_flow(&mu, &nu, &params)
    })?;
    trajectory(py, t)
}

/// The eps → 0 limit: the W2² gradient flow (closed form) at the given times.
#[pyfunction]
#[pyo3(signature = (m0, S0, m_target, S_target, times))]
#[allow(non_snake_case)]
fn bures_flow<'py>(
    py: Python<'py>,
    m0: &Bound<'py, PyAny>,
    S0: &Bound<'py, PyAny>,
    m_target: &Bound<'py, PyAny>,
    S_target: &Bound<'py, PyAny>,
    times: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let times = vector(times, "times")?;
    let p = pair(m0, S0, m_target, S_target)?;
    let t = run(py, move || {
        let (mu, nu) = build(p)?;
        flow::bures_flow(&mu, &nu, &times)
    })?;
    trajectory(py, t)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<GaussianOt>()?;
    m.add_function(wrap_pyfunction!(ot, m)?)?;
    m.add_function(wrap_pyfunction!(divergence, m)?)?;
    m.add_function(wrap_pyfunction!(divergence_parts, m)?)?;
    m.add_function(wrap_pyfunction!(w2, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(map, m)?)?;
    m.add_function(wrap_pyfunction!(flow_, m)?)?;
    m.add_function(wrap_pyfunction!(bures_flow, m)?)?;
    Ok(())
}
