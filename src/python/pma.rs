//! `sinkflow.pma`: the Gaussian PMA / IPFP problem (seed 002) in closed form, and the PMA and
//! its IPFP on 1-D and 2-D grids (the CLI's `pma grid` / `pma ipfp`).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{arr1, arr_nd, dict, dmat, dmats, lib_err, run, square, to_f64, InputError};
use crate::pma::gaussian::GaussianPma;
use crate::pma::grid::{self as grid1d, Domain, Grid1d, GridSnapshot, PmaParams, Scheme};
use crate::pma::grid2d::{self, Domain2d, Grid2d, Snapshot2d};
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

/// A potential given as an array (its shape and row-major values) or a catalogue name.
enum Potential {
    Values(Vec<usize>, Vec<f64>),
    Name(String),
}

fn read_potential(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Potential> {
    if let Ok(s) = obj.extract::<String>() {
        return Ok(Potential::Name(s));
    }
    let (shape, data) = to_f64(obj, name)?;
    Ok(Potential::Values(shape, data))
}

impl Potential {
    /// The dimension the array's shape implies: (n,) is 1-D, (n, n) is 2-D.
    fn dim(&self, name: &str) -> PyResult<Option<usize>> {
        match self {
            Potential::Name(_) => Ok(None),
            Potential::Values(shape, _) => match shape.as_slice() {
                [_] => Ok(Some(1)),
                [r, c] if r == c => Ok(Some(2)),
                _ => Err(InputError::new_err(format!(
                    "{name}: expected an array of shape (n,) (1-D) or (n, n) (2-D), got shape {shape:?}"
                ))),
            },
        }
    }
    /// Nodes per side implied by the array.
    fn side(&self) -> Option<usize> {
        match self {
            Potential::Name(_) => None,
            Potential::Values(shape, _) => shape.first().copied(),
        }
    }
    fn values(
        self,
        name: &str,
        catalogue: impl Fn(&str) -> Result<Vec<f64>, PmaError>,
    ) -> PyResult<Vec<f64>> {
        match self {
            Potential::Values(_, v) => Ok(v),
            Potential::Name(spec) => catalogue(&spec).map_err(|e| {
                InputError::new_err(format!("{name}: '{spec}' is not a catalogue entry ({e})"))
            }),
        }
    }
}

/// A grid problem, validated as the CLI does (`pma grid`, `pma ipfp`).
enum Problem {
    One(Grid1d, Vec<f64>, Vec<f64>),
    Two(Grid2d, Vec<f64>, Vec<f64>),
}

fn problem_grid(
    f: &Bound<'_, PyAny>,
    g: &Bound<'_, PyAny>,
    domain: &str,
    n: Option<usize>,
    dim: Option<usize>,
    normalise: bool,
) -> PyResult<Problem> {
    let f = read_potential(f, "f")?;
    let g = read_potential(g, "g")?;
    let implied = match (f.dim("f")?, g.dim("g")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(InputError::new_err(format!(
                "f is {a}-D and g is {b}-D: they must be on the same grid"
            )))
        }
        (a, b) => a.or(b),
    };
    let dim = match (dim, implied) {
        (Some(d @ (1 | 2)), Some(i)) if d != i => {
            return Err(InputError::new_err(format!(
                "dim = {d} but the arrays are {i}-D"
            )))
        }
        (Some(d @ (1 | 2)), _) => d,
        (Some(d), _) => return Err(InputError::new_err(format!("dim must be 1 or 2, got {d}"))),
        (None, Some(i)) => i,
        (None, None) if domain == "box" => 2,
        (None, None) => 1,
    };
    let n = match (n, f.side().or(g.side())) {
        (Some(n), _) => n,
        (None, Some(n)) => n,
        (None, None) => {
            return Err(InputError::new_err(
                "n is required when f and g are both catalogue names",
            ))
        }
    };
    if dim == 2 {
        let domain = match domain {
            "torus" => Domain2d::Torus,
            "box" => Domain2d::Box,
            other => {
                return Err(InputError::new_err(format!(
                    "2-D grids support domain 'torus' or 'box', got '{other}'"
                )))
            }
        };
        let grid = Grid2d::with_domain(domain, n).map_err(lib_err)?;
        let cat = |s: &str| grid2d::catalogue_2d(&grid, s);
        let f = f.values("f", cat)?;
        let g = g.values("g", cat)?;
        let f = grid.check_density(&f, "f", normalise).map_err(lib_err)?;
        let g = grid.check_density(&g, "g", normalise).map_err(lib_err)?;
        return Ok(Problem::Two(grid, f, g));
    }
    // the 1-D box is the interval
    let domain: Domain = if domain == "box" {
        Domain::Interval
    } else {
        domain.parse().map_err(InputError::new_err)?
    };
    let grid = Grid1d::new(domain, n).map_err(lib_err)?;
    let cat = |s: &str| grid1d::catalogue(&grid, s);
    let f = f.values("f", cat)?;
    let g = g.values("g", cat)?;
    let f = grid.check_density(&f, "f", normalise).map_err(lib_err)?;
    let g = grid.check_density(&g, "g", normalise).map_err(lib_err)?;
    Ok(Problem::One(grid, f, g))
}

/// `u_0 = phi_0 - |x|^2/2` from nodal values of phi_0 (`points`: the nodes).
fn initial_u(phi0: &Bound<'_, PyAny>, points: &[Vec<f64>]) -> PyResult<Vec<f64>> {
    let (_, phi0) = to_f64(phi0, "phi0")?;
    if phi0.len() != points.len() {
        return Err(InputError::new_err(format!(
            "phi0: {} values, expected {} (one per node)",
            phi0.len(),
            points.len()
        )));
    }
    Ok(phi0
        .iter()
        .zip(points)
        .map(|(v, p)| v - 0.5 * p.iter().map(|c| c * c).sum::<f64>())
        .collect())
}

fn stack(rows: impl Iterator<Item = Vec<f64>>) -> Vec<f64> {
    rows.flatten().collect()
}

fn out_1d<'py>(
    py: Python<'py>,
    grid: &Grid1d,
    snaps: Vec<GridSnapshot>,
    k: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let n = grid.len();
    let m = snaps.len();
    let t: Vec<f64> = snaps.iter().map(|s| s.t).collect();
    let residual: Vec<f64> = snaps.iter().map(|s| s.residual).collect();
    let phi = stack(snaps.iter().map(|s| s.phi.clone()));
    let grad_phi = stack(snaps.iter().map(|s| s.grad_phi.clone()));
    let rho = stack(snaps.into_iter().map(|s| s.rho));
    let mut items = vec![
        ("x", arr1(py, grid.x().to_vec())),
        ("t", arr1(py, t)),
        ("phi", arr_nd(py, phi, &[m, n])?),
        ("grad_phi", arr_nd(py, grad_phi, &[m, n])?),
        ("rho", arr_nd(py, rho, &[m, n])?),
        ("residual", arr1(py, residual)),
    ];
    if let Some(k) = k {
        items.push(("k", k.into_pyobject(py)?.into_any()));
    }
    dict(py, items)
}

fn out_2d<'py>(
    py: Python<'py>,
    grid: &Grid2d,
    snaps: Vec<Snapshot2d>,
    k: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let n = grid.n();
    let m = snaps.len();
    let x = stack((0..n * n).map(|i| grid.point(i).to_vec()));
    let t: Vec<f64> = snaps.iter().map(|s| s.t).collect();
    let residual: Vec<f64> = snaps.iter().map(|s| s.residual).collect();
    let phi = stack(snaps.iter().map(|s| s.phi.clone()));
    let grad_phi = stack(
        snaps
            .iter()
            .map(|s| s.grad_phi.iter().flat_map(|g| g.to_vec()).collect()),
    );
    let rho = stack(snaps.into_iter().map(|s| s.rho));
    let mut items = vec![
        ("x", arr_nd(py, x, &[n, n, 2])?),
        ("t", arr1(py, t)),
        ("phi", arr_nd(py, phi, &[m, n, n])?),
        ("grad_phi", arr_nd(py, grad_phi, &[m, n, n, 2])?),
        ("rho", arr_nd(py, rho, &[m, n, n])?),
        ("residual", arr1(py, residual)),
    ];
    if let Some(k) = k {
        items.push(("k", k.into_pyobject(py)?.into_any()));
    }
    dict(py, items)
}

/// The PMA on a 1-D or 2-D grid (the CLI's `pma grid`).
#[pyfunction]
#[pyo3(name = "grid", signature = (f, g, domain, t_end, dt, *, scheme="explicit", samples=1, phi0=None, n=None, dim=None, normalise=false))]
#[allow(clippy::too_many_arguments)]
fn grid_pma<'py>(
    py: Python<'py>,
    f: &Bound<'py, PyAny>,
    g: &Bound<'py, PyAny>,
    domain: &str,
    t_end: f64,
    dt: f64,
    scheme: &str,
    samples: usize,
    phi0: Option<&Bound<'py, PyAny>>,
    n: Option<usize>,
    dim: Option<usize>,
    normalise: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let scheme: Scheme = scheme.parse().map_err(InputError::new_err)?;
    let params = PmaParams {
        t_end,
        dt,
        samples,
        scheme,
        ..PmaParams::default()
    };
    let phi0 = phi0.filter(|p| !p.is_none());
    match problem_grid(f, g, domain, n, dim, normalise)? {
        Problem::Two(grid, f, g) => {
            let nodes: Vec<Vec<f64>> = (0..grid.n() * grid.n())
                .map(|k| grid.point(k).to_vec())
                .collect();
            let u0 = phi0.map(|p| initial_u(p, &nodes)).transpose()?;
            let (grid, snaps) = run(py, move || {
                grid2d::solve_pma_2d_from(&grid, &f, &g, u0.as_deref(), &params).map(|s| (grid, s))
            })?;
            out_2d(py, &grid, snaps, None)
        }
        Problem::One(grid, f, g) => {
            let nodes: Vec<Vec<f64>> = grid.x().iter().map(|x| vec![*x]).collect();
            let u0 = match phi0 {
                Some(p) => initial_u(p, &nodes)?,
                None => vec![0.0; grid.len()],
            };
            let (grid, snaps) = run(py, move || {
                grid1d::solve_pma_from(&grid, &f, &g, &u0, &params).map(|s| (grid, s))
            })?;
            out_1d(py, &grid, snaps, None)
        }
    }
}

/// The seed's IPFP on a 1-D or 2-D grid (the CLI's `pma ipfp`).
#[pyfunction]
#[pyo3(signature = (f, g, domain, eps, t_end, *, samples=1, n=None, dim=None, normalise=false))]
#[allow(clippy::too_many_arguments)]
fn grid_ipfp<'py>(
    py: Python<'py>,
    f: &Bound<'py, PyAny>,
    g: &Bound<'py, PyAny>,
    domain: &str,
    eps: f64,
    t_end: f64,
    samples: usize,
    n: Option<usize>,
    dim: Option<usize>,
    normalise: bool,
) -> PyResult<Bound<'py, PyDict>> {
    match problem_grid(f, g, domain, n, dim, normalise)? {
        Problem::Two(grid, f, g) => {
            let (grid, (k, snaps)) = run(py, move || {
                grid2d::ipfp_2d(&grid, &f, &g, eps, t_end, samples).map(|s| (grid, s))
            })?;
            out_2d(py, &grid, snaps, Some(k))
        }
        Problem::One(grid, f, g) => {
            let (grid, (k, snaps)) = run(py, move || {
                grid1d::ipfp(&grid, &f, &g, eps, t_end, samples).map(|s| (grid, s))
            })?;
            out_1d(py, &grid, snaps, Some(k))
        }
    }
}

/// A library error about one argument, prefixed with its name, as the exception of its class.
fn arg_err<E: std::fmt::Display + crate::error::Classify>(what: &str, e: E) -> PyErr {
    match e.class() {
        crate::error::ErrorClass::BadInput => InputError::new_err(format!("{what}: {e}")),
        crate::error::ErrorClass::Numerical => {
            super::ConvergenceError::new_err(format!("{what}: {e}"))
        }
    }
}

/// The seed's IPFP on samples (the CLI's `pma particles`).
#[pyfunction]
fn particle_ipfp<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    eps: f64,
    t_end: f64,
) -> PyResult<Bound<'py, PyDict>> {
    use crate::sinkhorn::PointCloud;
    let (n, d, xs) = super::points(x, "x")?;
    let (_, dy, ys) = super::points(y, "y")?;
    let xc = PointCloud::from_flat(xs.clone(), d, None, false).map_err(|e| arg_err("x", e))?;
    let yc = PointCloud::from_flat(ys, dy, None, false).map_err(|e| arg_err("y", e))?;
    let r = run(py, move || {
        crate::pma::particles::particle_ipfp_full(&xc, &yc, eps, t_end)
    })?;
    let k = r.k;
    dict(
        py,
        vec![
            ("k", k.into_pyobject(py)?.into_any()),
            ("t", arr1(py, vec![k as f64 * eps])),
            ("x", arr_nd(py, xs, &[n, d])?),
            ("phi", arr_nd(py, r.phi, &[1, n])?),
            ("grad_phi", arr_nd(py, r.grad_phi, &[1, n, d])?),
            ("rho_ratio", arr_nd(py, r.rho_ratio, &[1, n])?),
            ("residual", arr1(py, vec![r.residual])),
        ],
    )
}

/// The Wasserstein mirror flow beside the Wasserstein gradient flow (the CLI's `pma mirror`).
#[pyfunction]
#[pyo3(signature = (energy, t_end, *, s0=None, theta=None, target=None, mirror=None, samples=10))]
#[allow(clippy::too_many_arguments)]
fn mirror<'py>(
    py: Python<'py>,
    energy: &str,
    t_end: f64,
    s0: Option<&Bound<'py, PyAny>>,
    theta: Option<&Bound<'py, PyAny>>,
    target: Option<&Bound<'py, PyAny>>,
    mirror: Option<&str>,
    samples: usize,
) -> PyResult<Bound<'py, PyDict>> {
    use crate::pma::mirror::{mirror_flow, EuclideanMirror, MirrorEnergy, MirrorParams};
    let s0 = s0.filter(|o| !o.is_none());
    let theta = theta.filter(|o| !o.is_none());
    let target = target.filter(|o| !o.is_none());
    if energy == "euclidean" {
        if s0.is_some() || theta.is_some() || target.is_some() {
            return Err(InputError::new_err(
                "energy='euclidean' takes mirror=, not s0/theta/target",
            ));
        }
        let m = match mirror {
            Some("quadratic") => EuclideanMirror::Quadratic,
            Some("quartic") => EuclideanMirror::Quartic,
            Some("reciprocal") => EuclideanMirror::Reciprocal,
            Some(other) => {
                return Err(InputError::new_err(format!(
                    "unknown mirror '{other}' (expected quadratic, quartic or reciprocal)"
                )))
            }
            None => return Err(InputError::new_err("energy='euclidean' needs mirror=")),
        };
        if !(t_end.is_finite() && t_end >= 0.0) {
            return Err(InputError::new_err(format!(
                "t_end must be finite and >= 0, got {t_end}"
            )));
        }
        if samples == 0 {
            return Err(InputError::new_err("samples must be >= 1"));
        }
        let times: Vec<f64> = (0..=samples)
            .map(|i| t_end * i as f64 / samples as f64)
            .collect();
        let z: Vec<f64> = times.iter().map(|t| m.closed_form(*t)).collect();
        let gf: Vec<f64> = times.iter().map(|t| (-t).exp()).collect();
        return dict(
            py,
            vec![
                ("t", arr1(py, times)),
                ("mirror_z", arr1(py, z)),
                ("gradient_flow_z", arr1(py, gf)),
            ],
        );
    }
    if mirror.is_some() {
        return Err(InputError::new_err(
            "mirror= is only used with energy='euclidean'",
        ));
    }
    let s0 = square(
        s0.ok_or_else(|| InputError::new_err("s0 is required"))?,
        "s0",
    )?;
    let theta = square(
        theta.ok_or_else(|| InputError::new_err("theta is required"))?,
        "theta",
    )?;
    let energy = match energy {
        "entropy" => {
            if target.is_some() {
                return Err(InputError::new_err("target is only used with energy='kl'"));
            }
            MirrorEnergy::Entropy
        }
        "kl" => {
            let t = target.ok_or_else(|| InputError::new_err("energy='kl' needs target="))?;
            MirrorEnergy::Kl(square(t, "target")?)
        }
        other => {
            return Err(InputError::new_err(format!(
                "unknown energy '{other}' (expected 'entropy', 'kl' or 'euclidean')"
            )))
        }
    };
    let d = s0.nrows();
    let params = MirrorParams {
        t_end,
        samples,
        ..MirrorParams::default()
    };
    let out = run(py, move || mirror_flow(&s0, &theta, &energy, &params))?;
    dict(
        py,
        vec![
            ("t", arr1(py, out.times)),
            ("mirror_cov", dmats(py, &out.mirror, d, d)?),
            ("wasserstein_cov", dmats(py, &out.wasserstein, d, d)?),
        ],
    )
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(riccati, m)?)?;
    m.add_function(wrap_pyfunction!(ipfp, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(grid_pma, m)?)?;
    m.add_function(wrap_pyfunction!(grid_ipfp, m)?)?;
    m.add_function(wrap_pyfunction!(particle_ipfp, m)?)?;
    m.add_function(wrap_pyfunction!(mirror, m)?)?;
    Ok(())
}
