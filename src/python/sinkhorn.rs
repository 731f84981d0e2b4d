//! `sinkflow.sinkhorn`: the log-domain Sinkhorn engine on weighted point clouds.

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{arr1, arr_nd, convergence_err, parse_cost, points, run, to_f64, InputError};
use crate::sinkhorn::{
    self as sk, AccelerationReport, HalfStep, Mode, OverRelaxation, PointCloud, SinkhornError,
    SinkhornOutput, SinkhornParams, Stepper, ANDERSON_DEFAULT_MEMORY,
};
use crate::Cost;

/// The solver options shared by `solve`, `divergence` and `iterate`.
struct Options {
    params: SinkhornParams,
    normalise: bool,
}

#[allow(clippy::too_many_arguments)]
fn options(
    eps: f64,
    tol: f64,
    max_iters: usize,
    cost: &str,
    eps_scaling: bool,
    over_relaxation: Option<&Bound<'_, PyAny>>,
    plain: bool,
    mode: &str,
    normalise: bool,
) -> PyResult<Options> {
    let has_relaxation = over_relaxation.is_some_and(|o| !o.is_none());
    if plain && (eps_scaling || has_relaxation) {
        return Err(InputError::new_err(
            "plain=True excludes eps_scaling and over_relaxation (plain Sinkhorn)",
        ));
    }
    let mut params = SinkhornParams::new(eps)
        .with_cost(parse_cost(cost)?)
        .with_tol(tol)
        .with_max_iters(max_iters)
        .with_mode(mode.parse::<Mode>().map_err(InputError::new_err)?);
    if plain {
        params = params.plain();
    }
    if eps_scaling {
        params = params.with_eps_scaling();
    }
    match over_relaxation {
        None => {}
        Some(o) if o.is_none() => {}
        Some(o) => {
            if let Ok(s) = o.extract::<String>() {
                params.over_relaxation = Some(match s.as_str() {
                    "auto" => OverRelaxation::Adaptive,
                    "anderson" => OverRelaxation::Anderson {
                        memory: ANDERSON_DEFAULT_MEMORY,
                    },
                    _ => {
                        return Err(InputError::new_err(format!(
                            "over_relaxation must be None, a number in (1, 2), 'auto' or \
                             'anderson', got '{s}'"
                        )))
                    }
                });
            } else {
                let w: f64 = o.extract().map_err(|_| {
                    InputError::new_err("over_relaxation must be None, a number or 'auto'")
                })?;
                params.over_relaxation = Some(OverRelaxation::Fixed(w));
            }
        }
    }
    Ok(Options { params, normalise })
}

/// The row-major data of a cloud and its weights, read from Python.
struct CloudInput {
    n: usize,
    d: usize,
    data: Vec<f64>,
    w: Option<Vec<f64>>,
}

fn cloud_input(
    x: &Bound<'_, PyAny>,
    w: Option<&Bound<'_, PyAny>>,
    name: &str,
    wname: &str,
) -> PyResult<CloudInput> {
    let (n, d, data) = points(x, name)?;
    let w = super::opt_vector(w, wname)?;
    Ok(CloudInput { n, d, data, w })
}

impl CloudInput {
    fn build(self, normalise: bool) -> Result<PointCloud, SinkhornError> {
        if self.n == 0 {
            return Err(SinkhornError::EmptyCloud);
        }
        PointCloud::from_flat(self.data, self.d, self.w, normalise)
    }
}

/// The result of `solve`: see the stub `sinkflow/sinkhorn.pyi` for the fields.
#[pyclass(module = "sinkflow.sinkhorn", name = "SinkhornResult", frozen)]
pub struct SinkhornResult {
    #[pyo3(get)]
    ot: f64,
    #[pyo3(get)]
    transport_cost: f64,
    #[pyo3(get)]
    primal: f64,
    #[pyo3(get)]
    f: Py<PyAny>,
    #[pyo3(get)]
    g: Py<PyAny>,
    #[pyo3(get)]
    iterations: usize,
    #[pyo3(get)]
    marginal_error: f64,
    #[pyo3(get)]
    converged: bool,
    #[pyo3(get)]
    history: Py<PyAny>,
    #[pyo3(get)]
    mode: &'static str,
    #[pyo3(get)]
    truncation_bound: Option<f64>,
    #[pyo3(get)]
    eps: f64,
    #[pyo3(get)]
    acceleration: Py<PyDict>,
    cost_: Cost,
    x: PointCloud,
    y: PointCloud,
}

impl SinkhornResult {
    fn new(py: Python<'_>, out: SinkhornOutput, x: PointCloud, y: PointCloud) -> PyResult<Self> {
        Ok(SinkhornResult {
            ot: out.ot,
            transport_cost: out.transport_cost,
            primal: out.primal,
            f: arr1(py, out.f).unbind(),
            g: arr1(py, out.g).unbind(),
            iterations: out.iterations,
            marginal_error: out.marginal_error,
            converged: out.converged,
            history: arr1(py, out.history).unbind(),
            mode: out.mode.name(),
            truncation_bound: out.truncation_bound,
            eps: out.eps,
            acceleration: acceleration_dict(py, &out.acceleration)?.unbind(),
            cost_: out.cost,
            x,
            y,
        })
    }

    fn potential(&self, py: Python<'_>, which: &Py<PyAny>) -> PyResult<Vec<f64>> {
        let a = which.bind(py).cast::<PyArray1<f64>>()?.readonly();
        Ok(a.as_slice()?.to_vec())
    }

    fn new_points(&self, z: &Bound<'_, PyAny>) -> PyResult<PointCloud> {
        let (_, k, data) = points(z, "z")?;
        let d = self.x.dim();
        if k != d {
            return Err(InputError::new_err(format!(
                "z: points of dimension {k}, the solved clouds have dimension {d}"
            )));
        }
        PointCloud::from_flat(data, d, None, true).map_err(super::lib_err)
    }
}

#[pymethods]
impl SinkhornResult {
    /// The cost name (`"sq"` for |x−y|², `"half-sq"` for |x−y|²/2).
    #[getter]
    fn cost(&self) -> &'static str {
        self.cost_.name()
    }

    /// `primal - ot`, the duality gap (a convergence diagnostic).
    #[getter]
    fn duality_gap(&self) -> f64 {
        self.primal - self.ot
    }

    /// The dense plan P (n, m), P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps).
    fn plan<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let f = self.potential(py, &self.f)?;
        let g = self.potential(py, &self.g)?;
        let (x, y, eps, cost) = (&self.x, &self.y, self.eps, self.cost_);
        let p = super::run_infallible(py, || {
            sk::plan_from_potentials(&f, &g, sk::Geometry::Clouds { x, y }, eps, cost)
        })?;
        super::dmat(py, &p)
    }

    /// The entropic (barycentric) map T(z) = ∫ y dπ(y|z) at new points z (k, d) or (k,).
    fn barycentric_map<'py>(
        &self,
        py: Python<'py>,
        z: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let zc = self.new_points(z)?;
        let g = self.potential(py, &self.g)?;
        let (y, eps, cost) = (&self.y, self.eps, self.cost_);
        let k = zc.len();
        let d = zc.dim();
        let m = super::run_infallible(py, || sk::barycentric_maps(&g, y, &zc, eps, cost))?;
        arr_nd(py, m, &[k, d])
    }

    /// f extended to new points: f(z) = T(g, ν)(z).
    fn f_at<'py>(&self, py: Python<'py>, z: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let zc = self.new_points(z)?;
        let g = self.potential(py, &self.g)?;
        let (y, eps, cost) = (&self.y, self.eps, self.cost_);
        let v = super::run_infallible(py, || sk::c_transforms(&g, y, &zc, eps, cost))?;
        Ok(arr1(py, v))
    }

    /// g extended to new points: g(z) = T(f, μ)(z).
    fn g_at<'py>(&self, py: Python<'py>, z: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let zc = self.new_points(z)?;
        let f = self.potential(py, &self.f)?;
        let (x, eps, cost) = (&self.x, self.eps, self.cost_);
        let v = super::run_infallible(py, || sk::c_transforms(&f, x, &zc, eps, cost))?;
        Ok(arr1(py, v))
    }

    fn __repr__(&self) -> String {
        format!(
            "SinkhornResult(ot={}, transport_cost={}, iterations={}, marginal_error={:.3e}, converged={})",
            self.ot, self.transport_cost, self.iterations, self.marginal_error, py_bool(self.converged)
        )
    }
}

/// The acceleration report as a dict with the keys and values of the CLI's `"acceleration"`
/// JSON object (`src/cli/sinkhorn.rs`, README): `policy`, `over_relaxation` (None or
/// `kind`, `omega`, `relaxed_iterations`, `restored`), `eps_scaling` (None or `stages`,
/// `iterations`, `start`).
fn acceleration_dict<'py>(py: Python<'py>, r: &AccelerationReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("policy", r.policy.name())?;
    match r.over_relaxation {
        Some(o) => {
            let od = PyDict::new(py);
            od.set_item("kind", o.kind.name())?;
            od.set_item("omega", o.omega)?;
            od.set_item("relaxed_iterations", o.relaxed_iterations)?;
            od.set_item("restored", o.restored)?;
            d.set_item("over_relaxation", od)?;
        }
        None => d.set_item("over_relaxation", py.None())?,
    }
    match r.eps_scaling {
        Some(s) => {
            let sd = PyDict::new(py);
            sd.set_item("stages", s.stages)?;
            sd.set_item("iterations", s.iterations)?;
            sd.set_item("start", s.start)?;
            d.set_item("eps_scaling", sd)?;
        }
        None => d.set_item("eps_scaling", py.None())?,
    }
    Ok(d)
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn not_converged(py: Python<'_>, res: SinkhornResult) -> PyErr {
    let msg = SinkhornError::NotConverged {
        iterations: res.iterations,
        marginal_error: res.marginal_error,
    }
    .to_string();
    let residual = res.marginal_error;
    match Py::new(py, res) {
        Ok(obj) => convergence_err(py, msg, Some(residual), Some(obj.into_any())),
        Err(e) => e,
    }
}

/// Solve entropic OT between two weighted point clouds with the log-domain Sinkhorn engine.
///
/// OT_eps(mu, nu) = min_P <P, C> + eps KL(P | a x b), C_ij = c(x_i, y_j) with cost "sq"
/// (|x-y|^2, the default) or "half-sq" (|x-y|^2/2); eps is in the units of the cost.
///
/// x (n, d) or (n,), y (m, d) or (m,): float64 or float32 (computed in float64), C or Fortran
/// order. wx, wy: weights summing to 1 (normalise=True rescales), uniform when None.
///
/// Returns a SinkhornResult: .ot = OT_eps (dual value; OTT-JAX's reg_ot_cost), .transport_cost
/// = <P, C> (POT's ot.sinkhorn2(a, b, M, reg=eps)), .f, .g (P = exp((f+g-C)/eps) a x b),
/// .iterations, .marginal_error (L1, first marginal), .converged; .plan(), .barycentric_map(z).
/// GeomLoss's SamplesLoss("sinkhorn", p=2, blur=b) corresponds to eps = b**2, cost="half-sq".
///
/// Raises InputError on bad input; ConvergenceError (with .residual and .result) when tol is not
/// reached in max_iters iterations, unless allow_nonconvergence=True. Releases the GIL; Ctrl-C
/// stops it.
#[pyfunction]
#[pyo3(signature = (x, y, eps, wx=None, wy=None, *, tol=1e-9, max_iters=10_000, cost="sq",
    eps_scaling=false, over_relaxation=None, plain=false, mode="auto", normalise=false,
    allow_nonconvergence=false, f0=None, g0=None))]
#[allow(clippy::too_many_arguments)]
fn solve(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    eps: f64,
    wx: Option<&Bound<'_, PyAny>>,
    wy: Option<&Bound<'_, PyAny>>,
    tol: f64,
    max_iters: usize,
    cost: &str,
    eps_scaling: bool,
    over_relaxation: Option<&Bound<'_, PyAny>>,
    plain: bool,
    mode: &str,
    normalise: bool,
    allow_nonconvergence: bool,
    f0: Option<&Bound<'_, PyAny>>,
    g0: Option<&Bound<'_, PyAny>>,
) -> PyResult<SinkhornResult> {
    let o = options(
        eps,
        tol,
        max_iters,
        cost,
        eps_scaling,
        over_relaxation,
        plain,
        mode,
        normalise,
    )?;
    let xi = cloud_input(x, wx, "x", "wx")?;
    let yi = cloud_input(y, wy, "y", "wy")?;
    let f0 = super::opt_vector(f0, "f0")?;
    let g0 = super::opt_vector(g0, "g0")?;
    if f0.is_some() != g0.is_some() {
        return Err(InputError::new_err("a warm start needs both f0 and g0"));
    }
    let (out, xc, yc) = run(py, move || {
        let xc = xi.build(o.normalise)?;
        let yc = yi.build(o.normalise)?;
        let out = match (&f0, &g0) {
            (Some(f0), Some(g0)) => sk::solve_warm(&xc, &yc, &o.params, f0, g0)?,
            _ => sk::solve(&xc, &yc, &o.params)?,
        };
        Ok::<_, SinkhornError>((out, xc, yc))
    })?;
    let res = SinkhornResult::new(py, out, xc, yc)?;
    if !res.converged && !allow_nonconvergence {
        return Err(not_converged(py, res));
    }
    Ok(res)
}

/// The result of `divergence`.
#[pyclass(module = "sinkflow.sinkhorn", name = "DivergenceResult", frozen)]
pub struct DivergenceResult {
    #[pyo3(get)]
    divergence: f64,
    #[pyo3(get)]
    ot_xy: f64,
    #[pyo3(get)]
    ot_xx: f64,
    #[pyo3(get)]
    ot_yy: f64,
    #[pyo3(get)]
    converged: bool,
    #[pyo3(get)]
    iterations: (usize, usize, usize),
    #[pyo3(get)]
    marginal_error: f64,
    #[pyo3(get)]
    xy: Py<SinkhornResult>,
    /// The cross solve's acceleration report (the CLI's `"acceleration"` with `--debias`).
    #[pyo3(get)]
    acceleration: Py<PyDict>,
    #[pyo3(get)]
    f_xx: Py<PyAny>,
    #[pyo3(get)]
    f_yy: Py<PyAny>,
}

#[pymethods]
impl DivergenceResult {
    fn __repr__(&self) -> String {
        format!(
            "DivergenceResult(divergence={}, ot_xy={}, ot_xx={}, ot_yy={}, converged={})",
            self.divergence,
            self.ot_xy,
            self.ot_xx,
            self.ot_yy,
            py_bool(self.converged)
        )
    }
}

/// The debiased Sinkhorn divergence S_eps = OT_eps(mu,nu) - OT_eps(mu,mu)/2 - OT_eps(nu,nu)/2 >= 0.
///
/// Same inputs, conventions and options as solve (the self terms use the averaged symmetric
/// solver). GeomLoss's SamplesLoss("sinkhorn", p=2, blur=b, debias=True) is
/// divergence(x, y, b**2, cost="half-sq").divergence at convergence. Returns a
/// DivergenceResult (.divergence, .ot_xy, .ot_xx, .ot_yy, .converged, .xy).
#[pyfunction]
#[pyo3(signature = (x, y, eps, wx=None, wy=None, *, tol=1e-9, max_iters=10_000, cost="sq",
    eps_scaling=false, over_relaxation=None, plain=false, mode="auto", normalise=false,
    allow_nonconvergence=false))]
#[allow(clippy::too_many_arguments)]
fn divergence(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    eps: f64,
    wx: Option<&Bound<'_, PyAny>>,
    wy: Option<&Bound<'_, PyAny>>,
    tol: f64,
    max_iters: usize,
    cost: &str,
    eps_scaling: bool,
    over_relaxation: Option<&Bound<'_, PyAny>>,
    plain: bool,
    mode: &str,
    normalise: bool,
    allow_nonconvergence: bool,
) -> PyResult<DivergenceResult> {
    let o = options(
        eps,
        tol,
        max_iters,
        cost,
        eps_scaling,
        over_relaxation,
        plain,
        mode,
        normalise,
    )?;
    let xi = cloud_input(x, wx, "x", "wx")?;
    let yi = cloud_input(y, wy, "y", "wy")?;
    let (out, xc, yc) = run(py, move || {
        let xc = xi.build(o.normalise)?;
        let yc = yi.build(o.normalise)?;
        let out = sk::divergence(&xc, &yc, &o.params)?;
        Ok::<_, SinkhornError>((out, xc, yc))
    })?;
    let converged = out.converged();
    let marginal_error = out
        .xy
        .marginal_error
        .max(out.xx.marginal_error)
        .max(out.yy.marginal_error);
    let (nx, ny, nxy) = (out.xx.iterations, out.yy.iterations, out.xy.iterations);
    let worst = [
        (out.xy.converged, out.xy.iterations, out.xy.marginal_error),
        (out.xx.converged, out.xx.iterations, out.xx.marginal_error),
        (out.yy.converged, out.yy.iterations, out.yy.marginal_error),
    ]
    .into_iter()
    .find(|c| !c.0);
    let res = DivergenceResult {
        divergence: out.divergence,
        ot_xy: out.ot_xy,
        ot_xx: out.ot_xx,
        ot_yy: out.ot_yy,
        converged,
        iterations: (nxy, nx, ny),
        marginal_error,
        f_xx: arr1(py, out.xx.f).unbind(),
        f_yy: arr1(py, out.yy.f).unbind(),
        acceleration: acceleration_dict(py, &out.xy.acceleration)?.unbind(),
        xy: Py::new(py, SinkhornResult::new(py, out.xy, xc, yc)?)?,
    };
    if let (Some((_, iterations, marginal_error)), false) = (worst, allow_nonconvergence) {
        let msg = SinkhornError::NotConverged {
            iterations,
            marginal_error,
        }
        .to_string();
        let obj = Py::new(py, res)?;
        return Err(convergence_err(
            py,
            msg,
            Some(marginal_error),
            Some(obj.into_any()),
        ));
    }
    Ok(res)
}

/// The dense plan of a solved pair (`result.plan()`).
#[pyfunction]
fn plan<'py>(py: Python<'py>, result: &Bound<'py, SinkhornResult>) -> PyResult<Bound<'py, PyAny>> {
    result.get().plan(py)
}

/// The entropic map at new points (`result.barycentric_map(z)`).
#[pyfunction]
fn barycentric_map<'py>(
    py: Python<'py>,
    result: &Bound<'py, SinkhornResult>,
    z: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    result.get().barycentric_map(py, z)
}

/// The half-step iterator (`iterate`): owns its clouds; the stepper borrows them.
#[pyclass(module = "sinkflow.sinkhorn", name = "Iterator", unsendable)]
pub struct PyStepper {
    // Declared first: dropped before the clouds it borrows.
    stepper: Stepper<'static>,
    _x: Box<PointCloud>,
    _y: Box<PointCloud>,
}

#[pymethods]
impl PyStepper {
    /// f ← T(g, ν); returns the L1 violation of the first marginal before the update.
    fn step_f(&mut self) -> f64 {
        self.stepper.step_f()
    }
    /// g ← T(f, μ); returns the L1 violation of the second marginal before the update.
    fn step_g(&mut self) -> f64 {
        self.stepper.step_g()
    }
    /// Current f (copy).
    #[getter]
    fn f<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        arr1(py, self.stepper.f().to_vec())
    }
    /// Current g (copy).
    #[getter]
    fn g<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        arr1(py, self.stepper.g().to_vec())
    }
    /// Half-steps done.
    #[getter]
    fn half_steps(&self) -> usize {
        self.stepper.half_steps()
    }
    /// L1 violations (first, second marginal) of the current pair.
    fn marginal_errors(&self) -> (f64, f64) {
        self.stepper.marginal_errors()
    }
    /// Dual value Σ a f + Σ b g of the current pair.
    fn dual_value(&self) -> f64 {
        self.stepper.dual_value()
    }
    /// Dense plan of the current pair.
    fn plan<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        super::dmat(py, &self.stepper.plan())
    }
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    /// Next half-step (alternating, starting with f): `(kind, f, g, violation_before)`.
    fn __next__<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(&'static str, Bound<'py, PyAny>, Bound<'py, PyAny>, f64)> {
        let before = match self.stepper.last() {
            Some(HalfStep::F) => self.stepper.step_g(),
            _ => self.stepper.step_f(),
        };
        let kind = match self.stepper.last() {
            Some(HalfStep::G) => "g",
            _ => "f",
        };
        Ok((kind, self.f(py), self.g(py), before))
    }
}

/// A Sinkhorn iteration driven one half-step at a time, from (f0, g0) (zeros by default).
///
/// Iterating yields (kind, f, g, violation_before) with kind "f" (f <- T(g, nu)) and "g"
/// (g <- T(f, mu)) alternating from "f"; after k pairs, (f, g) equals solve(..., max_iters=k,
/// allow_nonconvergence=True) bit for bit. Also .step_f(), .step_g(), .plan(), .dual_value().
#[pyfunction]
#[pyo3(signature = (x, y, eps, wx=None, wy=None, *, cost="sq", mode="auto", normalise=false, f0=None, g0=None))]
#[allow(clippy::too_many_arguments)]
fn iterate(
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    eps: f64,
    wx: Option<&Bound<'_, PyAny>>,
    wy: Option<&Bound<'_, PyAny>>,
    cost: &str,
    mode: &str,
    normalise: bool,
    f0: Option<&Bound<'_, PyAny>>,
    g0: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyStepper> {
    let o = options(eps, 1e-9, 1, cost, false, None, true, mode, normalise)?;
    let xc = Box::new(
        cloud_input(x, wx, "x", "wx")?
            .build(normalise)
            .map_err(super::lib_err)?,
    );
    let yc = Box::new(
        cloud_input(y, wy, "y", "wy")?
            .build(normalise)
            .map_err(super::lib_err)?,
    );
    let f0 = super::opt_vector(f0, "f0")?.unwrap_or_else(|| vec![0.0; xc.len()]);
    let g0 = super::opt_vector(g0, "g0")?.unwrap_or_else(|| vec![0.0; yc.len()]);
    // SAFETY: the clouds live in boxes owned by the returned object, which never moves or
    // drops them before the stepper (field order), so the references stay valid.
    let (xr, yr): (&'static PointCloud, &'static PointCloud) = unsafe {
        (
            &*(xc.as_ref() as *const PointCloud),
            &*(yc.as_ref() as *const PointCloud),
        )
    };
    let stepper =
        Stepper::from_geometry(sk::Geometry::Clouds { x: xr, y: yr }, &o.params, &f0, &g0)
            .map_err(super::lib_err)?;
    Ok(PyStepper {
        stepper,
        _x: xc,
        _y: yc,
    })
}

/// Internal: mean seconds of `reps` library solves (the bench's baseline, no Python in it).
#[pyfunction]
fn _time_solve(x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, eps: f64, reps: usize) -> PyResult<f64> {
    let (n, d, xd) = points(x, "x")?;
    let (m, _, yd) = points(y, "y")?;
    let _ = (n, m);
    let params = SinkhornParams::new(eps);
    let start = std::time::Instant::now();
    for _ in 0..reps {
        let xc = PointCloud::from_flat(xd.clone(), d, None, false).map_err(super::lib_err)?;
        let yc = PointCloud::from_flat(yd.clone(), d, None, false).map_err(super::lib_err)?;
        let out = sk::solve(&xc, &yc, &params).map_err(super::lib_err)?;
        std::hint::black_box(out);
    }
    Ok(start.elapsed().as_secs_f64() / reps.max(1) as f64)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = to_f64;
    m.add_class::<SinkhornResult>()?;
    m.add_class::<DivergenceResult>()?;
    m.add_class::<PyStepper>()?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(divergence, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(barycentric_map, m)?)?;
    m.add_function(wrap_pyfunction!(iterate, m)?)?;
    m.add_function(wrap_pyfunction!(_time_solve, m)?)?;
    Ok(())
}
