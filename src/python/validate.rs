//! `sinkflow.validate` and `sinkflow.experiments`: the validation campaign of `sinkflow validate`.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use pyo3::prelude::*;

use super::{InputError, PENDING};
use crate::validation::spec::Spec;
use crate::validation::{experiments, report, run_experiment, Profile};

fn specs() -> PyResult<Vec<Spec>> {
    experiments::registry()
        .iter()
        .map(|e| Spec::parse(e.spec_text()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("invalid experiment spec: {m}"))
        })
}

/// `[(id, title, source)]` of the experiments, in campaign order.
#[pyfunction]
fn _experiments() -> PyResult<Vec<(String, String, String)>> {
    Ok(specs()?
        .into_iter()
        .map(|s| (s.id, s.title, s.source))
        .collect())
}

/// Run the campaign (or the `only` experiments) and write REPORT.md, summary.json and the
/// plots to `out`; returns the path of summary.json.
#[pyfunction]
#[pyo3(signature = (only, profile, out, seed))]
fn _validate(
    py: Python<'_>,
    only: Vec<String>,
    profile: &str,
    out: PathBuf,
    seed: u64,
) -> PyResult<String> {
    let profile = match profile {
        "quick" => Profile::Quick,
        "full" => Profile::Full,
        other => {
            return Err(InputError::new_err(format!(
                "unknown profile '{other}' (expected 'quick' or 'full')"
            )))
        }
    };
    let registry = experiments::registry();
    let ids: Vec<String> = specs()?.into_iter().map(|s| s.id).collect();
    for id in &only {
        if !ids.contains(id) {
            return Err(InputError::new_err(format!(
                "unknown experiment id '{id}' (known: {})",
                ids.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(out.join("plots"))
        .map_err(|e| InputError::new_err(format!("cannot create {}: {e}", out.display())))?;
    let start = Instant::now();
    let mut results = Vec::new();
    for (exp, id) in registry.iter().zip(&ids) {
        if !(only.is_empty() || only.contains(id)) {
            continue;
        }
        let exp = exp.as_ref();
        let res = py.detach(|| {
            crate::interrupt::with_check(super::poll_signals, || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_experiment(exp, profile, &out, ProgressBar::hidden(), seed)
                }))
            })
        });
        if let Some(e) = PENDING.with(|p| p.borrow_mut().take()) {
            return Err(e);
        }
        let res = res
            .map_err(super::panic_err)?
            .map_err(pyo3::exceptions::PyRuntimeError::new_err)?;
        results.push(res);
        // Between experiments: Ctrl-C also stops experiments that never enter the engine.
        py.check_signals()?;
    }
    let total = start.elapsed().as_secs_f64();
    report::write(&out, profile, &results, total).map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("writing the report: {e}"))
    })?;
    Ok(out.join("summary.json").display().to_string())
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_experiments, m)?)?;
    m.add_function(wrap_pyfunction!(_validate, m)?)?;
    Ok(())
}
