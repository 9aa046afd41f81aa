//! `mcopt.validate`: the checks of `mcopt validate` (`mcopt::session::validate`) from Python.
//! A point given as arrays (or none: the model's initial values) is written to a temporary
//! point file, which the checks read as the command line's `--params` (its numbers in the
//! shortest form that reads back to the same floats), and removed afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use mcopt::config;
use mcopt::session::validate::{validate as run_validate, ValidateRequest};
use mcopt::session::{Inputs, Session};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::{keys, read_vars};
use crate::errors::{diag, OrRaise};
use crate::model::json_to_py;
use crate::results::class;

/// A temporary file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A point file of `values` (a dict of arrays, or the initial values when None) for the model
/// of `model_path` with `input`.
fn temp_point(
    model_path: &str,
    input: &Inputs,
    values: Option<&Bound<'_, PyAny>>,
) -> PyResult<TempFile> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let s = Session::load(model_path, input).or_raise()?;
    let specs = s.param_specs();
    let mut theta = s.point(None).or_raise()?;
    if let Some(v) = values {
        read_vars(v, &specs, &keys(v.py(), &specs), &mut theta, false, "point")?;
    }
    let vals = mcopt::session::certify::split(&specs, &theta);
    let name = format!(
        "mcopt-validate-{}-{}.yaml",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    );
    let path = std::env::temp_dir().join(name);
    mcopt::atomic::write(&path, config::write_point(&specs, &vals).as_bytes()).or_raise()?;
    Ok(TempFile(path))
}

/// validate(model, config=None, data=None, consts=None, plugins=(), at=None, order=None,
///          tol=None, ztol=0.0, allow_not_stationary=False, allow_inconclusive=False,
///          rows=None, test_rows=None) -> Validation
///
/// The checks of `mcopt validate MODEL --params AT` (parse and check, the plugins' self-test,
/// a finite objective, the certificates, the losses against the run file's `validate:`).
/// `at`: a point file, a dict of arrays, or None for the model's initial values; `data` as
/// "FILE:COLUMNS" strings (or through `config`). Bad input raises DiagnosticError (the CLI's
/// exit 2); a failed check is `Validation.passed == False` (exit 1).
#[pyfunction]
#[pyo3(signature = (model, config=None, data=None, consts=None, plugins=Vec::new(), at=None, order=None, tol=None, ztol=0.0, allow_not_stationary=false, allow_inconclusive=false, rows=None, test_rows=None))]
#[allow(clippy::too_many_arguments)]
pub fn validate<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    data: Option<&Bound<'py, PyDict>>,
    consts: Option<&Bound<'py, PyDict>>,
    plugins: Vec<Bound<'py, PyAny>>,
    at: Option<&Bound<'py, PyAny>>,
    order: Option<u8>,
    tol: Option<f64>,
    ztol: f64,
    allow_not_stationary: bool,
    allow_inconclusive: bool,
    rows: Option<String>,
    test_rows: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    if order.is_some_and(|o| !(1..=2).contains(&o)) {
        return Err(diag(
            "mcopt::python::value",
            format!(
                "expected `order` to be 1 or 2, found {}",
                order.unwrap_or(0)
            ),
            "1: first-order; 2: first and second order",
        ));
    }
    let (input, _) = crate::model::inputs(config, data, consts, &plugins, rows, test_rows, false)?;
    let model = crate::model::path_arg(model)?;
    let model_path = mcopt::session::model_path(Some(&model), &input).or_raise()?;
    let (_temp, params) = match at {
        Some(p) if !p.is_instance_of::<PyDict>() => (None, crate::model::path_arg(p)?),
        _ => {
            let t = temp_point(&model_path, &input, at)?;
            let p = t.0.display().to_string();
            (Some(t), p)
        }
    };
    let req = ValidateRequest {
        params,
        order,
        tol,
        ztol,
        allow_not_stationary,
        allow_inconclusive,
    };
    let (validation, result) = py.detach(|| run_validate(&model_path, &input, &req));
    result.or_raise()?;
    let json = mcopt::report::json::validation(&validation);
    class(py, "Validation")?.call1((json_to_py(py, &json)?,))
}
