//! `sinkflow.pma`: the Gaussian PMA / IPFP problem (seed 002), in closed form.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{dict, dmat, dmats, run, square};
use crate::pma::gaussian::GaussianPma;
use crate::pma::PmaError;

fn problem(
    sigma: &Bound<'_, PyAny>,
    theta: &Bound<'_, PyAny>,
) -> PyResult<(nalgebra::DMatrix<f64>, nalgebra::DMatrix<f64>)> {
    Ok((square(sigma, "sigma")?, square(theta, "theta")?))
}

/// A_t, the Hessian of the PMA solution φ_t (Riccati closed form), at each time of `times`.
#[pyfunction]
fn riccati<'py>(
    py: Python<'py>,
    sigma: &Bound<'py, PyAny>,
    theta: &Bound<'py, PyAny>,
    times: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let (s, t) = problem(sigma, theta)?;
    let d = s.nrows();
    let times = super::vector(times, "times")?;
    let out = run(py, move || {
        let g = GaussianPma::new(&s, &t)?;
        times
            .iter()
            .map(|&t| g.riccati(t))
            .collect::<Result<Vec<_>, PmaError>>()
    })?;
    dmats(py, &out, d, d)
}

/// The IPFP iterates P_0, ..., P_k (Hessians of φ_k) at regularisation eps.
#[pyfunction]
fn ipfp<'py>(
    py: Python<'py>,
    sigma: &Bound<'py, PyAny>,
    theta: &Bound<'py, PyAny>,
    eps: f64,
    k: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (s, t) = problem(sigma, theta)?;
    let d = s.nrows();
    let out = run(py, move || GaussianPma::new(&s, &t)?.ipfp_sequence(eps, k))?;
    dmats(py, &out, d, d)
}

/// The IPFP iterate at k = round(T/eps) beside the PMA at time T.
#[pyfunction]
fn compare<'py>(
    py: Python<'py>,
    sigma: &Bound<'py, PyAny>,
    theta: &Bound<'py, PyAny>,
    eps: f64,
    t_end: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (s, t) = problem(sigma, theta)?;
    let c = run(py, move || GaussianPma::new(&s, &t)?.compare(eps, t_end))?;
    dict(
        py,
        vec![
            ("k", c.k.into_pyobject(py)?.into_any()),
            ("t", c.t.into_pyobject(py)?.into_any()),
            ("eps", c.eps.into_pyobject(py)?.into_any()),
            ("p", dmat(py, &c.p)?),
            ("p_prev", dmat(py, &c.p_prev)?),
            ("a", dmat(py, &c.a)?),
            ("rho_k_cov", dmat(py, &c.rho_k_cov)?),
            ("rho_t_cov", dmat(py, &c.rho_t_cov)?),
            ("w2", c.w2.into_pyobject(py)?.into_any()),
            ("correction", dmat(py, &c.correction)?),
            ("correction_limit", dmat(py, &c.correction_limit)?),
            ("seed_correction", dmat(py, &c.seed_correction)?),
        ],
    )
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(riccati, m)?)?;
    m.add_function(wrap_pyfunction!(ipfp, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    Ok(())
}
