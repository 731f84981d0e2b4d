//! Python bindings (feature `python`): the extension module `sinkflow._sinkflow`, wrapped by the
//! pure-Python package in `src/python/sinkflow/` (stubs, docstrings, `validate`).
//!
//! Conventions shared by every binding:
//! * arrays in: any float64/float32 array-like; a C-contiguous float64 array is read in place
//!   (the library then copies it into its own layout once), anything else goes through
//!   `numpy.asarray(x, dtype=float64)` first (float32 is computed in float64);
//! * arrays out: numpy arrays that own the Rust buffer (no copy);
//! * errors: bad input → `InputError` (a `ValueError`), numerical failure → `ConvergenceError`
//!   (a `RuntimeError`) with `.residual` and `.result` where a partial result exists; a panic is
//!   caught and reported as `RuntimeError`, never as `PanicException`;
//! * long calls release the GIL and install an interrupt check ([`crate::interrupt`]) that
//!   polls Python's signal handlers every [`SIGNAL_POLL`] so that Ctrl-C stops them.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nalgebra::{DMatrix, DVector};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{Classify, ErrorClass};
use crate::Cost;

mod finite;
mod gaussian;
mod particles;
mod pma;
mod sinkhorn;
mod validate;

create_exception!(
    sinkflow,
    InputError,
    PyValueError,
    "Bad input (NaN/inf, shapes, eps <= 0, invalid covariance or weights, unknown option): the library's message."
);
create_exception!(
    sinkflow,
    ConvergenceError,
    PyRuntimeError,
    "A numerical failure on valid input (non-convergence, breakdown, integration failure). Attributes: `residual` (float or None) and `result` (the partial result, or None)."
);

/// How often a long call polls Python's signal handlers.
pub(crate) const SIGNAL_POLL: Duration = Duration::from_millis(50);

thread_local! {
    static LAST_POLL: Cell<Option<Instant>> = const { Cell::new(None) };
    pub(crate) static PENDING: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// The interrupt check installed during long calls: at most every [`SIGNAL_POLL`], take the GIL
/// and run Python's signal handlers; a raised exception (KeyboardInterrupt) is kept to be
/// re-raised when the call returns.
pub(crate) fn poll_signals() -> bool {
    let now = Instant::now();
    let due = LAST_POLL.with(|l| match l.get() {
        Some(t) if now.duration_since(t) < SIGNAL_POLL => false,
        _ => {
            l.set(Some(now));
            true
        }
    });
    if !due {
        return PENDING.with(|p| p.borrow().is_some());
    }
    let err = Python::attach(|py| py.check_signals().err());
    match err {
        Some(e) => {
            PENDING.with(|p| *p.borrow_mut() = Some(e));
            true
        }
        None => PENDING.with(|p| p.borrow().is_some()),
    }
}

/// A library error, as the Python exception of its class.
pub(crate) fn lib_err<E: std::fmt::Display + Classify>(e: E) -> PyErr {
    match e.class() {
        ErrorClass::BadInput => InputError::new_err(e.to_string()),
        ErrorClass::Numerical => ConvergenceError::new_err(e.to_string()),
    }
}

/// A `ConvergenceError` with its residual and partial result attached.
pub(crate) fn convergence_err(
    py: Python<'_>,
    message: String,
    residual: Option<f64>,
    result: Option<Py<PyAny>>,
) -> PyErr {
    let err = ConvergenceError::new_err(message);
    let value = err.value(py);
    let _ = value.setattr("residual", residual);
    let _ = value.setattr("result", result);
    err
}

/// Run `f` without the GIL, with the interrupt check installed, panics caught and the library's
/// error mapped to its exception. A pending KeyboardInterrupt wins over the library's error.
pub(crate) fn run<T, E, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    E: std::fmt::Display + Classify + Send,
    F: FnOnce() -> Result<T, E> + Send,
{
    LAST_POLL.with(|l| l.set(Some(Instant::now())));
    let out = py.detach(|| {
        crate::interrupt::with_check(poll_signals, || catch_unwind(AssertUnwindSafe(f)))
    });
    if let Some(e) = PENDING.with(|p| p.borrow_mut().take()) {
        return Err(e);
    }
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(lib_err(e)),
        Err(panic) => Err(panic_err(panic)),
    }
}

/// Like [`run`] for a closure that cannot fail (still GIL-free, interruptible only through the
/// library, and panic-safe).
pub(crate) fn run_infallible<T: Send, F: FnOnce() -> T + Send>(
    py: Python<'_>,
    f: F,
) -> PyResult<T> {
    let out = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    out.map_err(panic_err)
}

pub(crate) fn panic_err(panic: Box<dyn std::any::Any + Send>) -> PyErr {
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    PyRuntimeError::new_err(format!("sinkflow internal error (please report): {msg}"))
}

/// Parse a cost name (`"sq"` for |x−y|², `"half-sq"` for |x−y|²/2).
pub(crate) fn parse_cost(cost: &str) -> PyResult<Cost> {
    cost.parse::<Cost>().map_err(InputError::new_err)
}

/// A float64 view of any array-like: `(shape, row-major data)`. A C-contiguous float64 array
/// is read in place (one copy into the returned `Vec`, which the library keeps).
pub(crate) fn to_f64(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(Vec<usize>, Vec<f64>)> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        let ro = a.readonly();
        let shape = ro.shape().to_vec();
        // `as_slice` also accepts Fortran-contiguous memory: only C order is row-major.
        if ro.is_c_contiguous() {
            if let Ok(s) = ro.as_slice() {
                return Ok((shape, s.to_vec()));
            }
        }
        // Fortran order or strided: logical (row-major) order.
        return Ok((shape, ro.as_array().iter().copied().collect()));
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj, np.getattr("float64")?))
        .map_err(|e| {
            InputError::new_err(format!("{name}: cannot be read as a float64 array ({e})"))
        })?;
    let a = arr
        .cast_into::<PyArrayDyn<f64>>()
        .map_err(|_| InputError::new_err(format!("{name}: cannot be read as a float64 array")))?;
    let ro = a.readonly();
    let shape = ro.shape().to_vec();
    Ok((shape, ro.as_array().iter().copied().collect()))
}

/// Points `(n, d)` or `(n,)` (d = 1): `(n, d, row-major)`.
pub(crate) fn points(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(usize, usize, Vec<f64>)> {
    let (shape, data) = to_f64(obj, name)?;
    match shape.as_slice() {
        [n] => Ok((*n, 1, data)),
        [n, d] => Ok((*n, *d, data)),
        _ => Err(InputError::new_err(format!(
            "{name}: expected an array of shape (n, d) or (n,), got shape {shape:?}"
        ))),
    }
}

/// A 1-D vector (a 0-d scalar counts as length 1).
pub(crate) fn vector(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<f64>> {
    let (shape, data) = to_f64(obj, name)?;
    if shape.len() > 1 {
        return Err(InputError::new_err(format!(
            "{name}: expected a 1-D array, got shape {shape:?}"
        )));
    }
    Ok(data)
}

/// Optional 1-D vector.
pub(crate) fn opt_vector(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Vec<f64>>> {
    match obj {
        Some(o) if !o.is_none() => vector(o, name).map(Some),
        _ => Ok(None),
    }
}

/// Points as an `n × d` nalgebra matrix.
pub(crate) fn points_matrix(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<DMatrix<f64>> {
    let (n, d, data) = points(obj, name)?;
    Ok(DMatrix::from_row_slice(n, d, &data))
}

/// A square matrix (a 0-d scalar is 1 × 1).
pub(crate) fn square(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<DMatrix<f64>> {
    let (shape, data) = to_f64(obj, name)?;
    match shape.as_slice() {
        [] => Ok(DMatrix::from_element(1, 1, data[0])),
        [r, c] if r == c => Ok(DMatrix::from_row_slice(*r, *c, &data)),
        _ => Err(InputError::new_err(format!(
            "{name}: expected a square matrix (d, d) (or a scalar for d = 1), got shape {shape:?}"
        ))),
    }
}

/// A `Vec` as a 1-D numpy array owning the buffer (no copy).
pub(crate) fn arr1<'py>(py: Python<'py>, v: Vec<f64>) -> Bound<'py, PyAny> {
    PyArray1::from_vec(py, v).into_any()
}

/// Row-major data as an n-D numpy array owning the buffer (no copy).
pub(crate) fn arr_nd<'py>(
    py: Python<'py>,
    v: Vec<f64>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, v).reshape(shape)?.into_any())
}

/// A nalgebra vector as a 1-D array.
pub(crate) fn dvec<'py>(py: Python<'py>, v: &DVector<f64>) -> Bound<'py, PyAny> {
    arr1(py, v.as_slice().to_vec())
}

/// A nalgebra matrix as a 2-D C-ordered array.
pub(crate) fn dmat<'py>(py: Python<'py>, m: &DMatrix<f64>) -> PyResult<Bound<'py, PyAny>> {
    let (r, c) = m.shape();
    let mut v = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            v.push(m[(i, j)]);
        }
    }
    arr_nd(py, v, &[r, c])
}

/// Stacked nalgebra matrices `(k, r, c)`.
pub(crate) fn dmats<'py>(
    py: Python<'py>,
    ms: &[DMatrix<f64>],
    r: usize,
    c: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let mut v = Vec::with_capacity(ms.len() * r * c);
    for m in ms {
        for i in 0..r {
            for j in 0..c {
                v.push(m[(i, j)]);
            }
        }
    }
    arr_nd(py, v, &[ms.len(), r, c])
}

/// Stacked nalgebra vectors `(k, d)`.
pub(crate) fn dvecs<'py>(
    py: Python<'py>,
    vs: &[DVector<f64>],
    d: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let mut v = Vec::with_capacity(vs.len() * d);
    for x in vs {
        v.extend_from_slice(x.as_slice());
    }
    arr_nd(py, v, &[vs.len(), d])
}

/// A dict with string keys.
pub(crate) fn dict<'py>(
    py: Python<'py>,
    items: Vec<(&str, Bound<'py, PyAny>)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        d.set_item(k, v)?;
    }
    Ok(d)
}

fn add_sub(
    parent: &Bound<'_, PyModule>,
    name: &str,
    build: fn(&Bound<'_, PyModule>) -> PyResult<()>,
) -> PyResult<()> {
    let m = PyModule::new(parent.py(), name)?;
    build(&m)?;
    parent.add_submodule(&m)
}

/// The extension module.
#[pymodule]
#[pyo3(name = "_sinkflow")]
fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("ConvergenceError", py.get_type::<ConvergenceError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    add_sub(m, "gaussian", gaussian::register)?;
    add_sub(m, "sinkhorn", sinkhorn::register)?;
    add_sub(m, "particles", particles::register)?;
    add_sub(m, "finite", finite::register)?;
    add_sub(m, "pma", pma::register)?;
    validate::register(m)?;
    Ok(())
}
