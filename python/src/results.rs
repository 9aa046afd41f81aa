//! Results handed to the Python classes of `mcopt/_results.py` (`Certificate`, `Report`,
//! `Validation`): the command line's JSON object as a dict, plus the arrays it does not hold
//! as arrays (a witness keyed by variable name).

use mcopt::stationarity::Certificate;
use mcopt::vars::VarSpec;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::to_dict;
use crate::model::json_to_py;

/// A class of `mcopt._results`.
pub fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("mcopt._results")?.getattr(name)
}

/// `mcopt.Certificate` of `cert` (`json` is the CLI's object, `specs` the form's variables).
pub fn certificate<'py>(
    py: Python<'py>,
    json: &serde_json::Value,
    cert: &Certificate,
    specs: &[VarSpec],
) -> PyResult<Bound<'py, PyAny>> {
    let witnesses = PyDict::new(py);
    for (key, v) in [
        ("first_order", Some(&cert.first)),
        ("second_order", cert.second.as_ref()),
    ] {
        if let Some(d) = v.and_then(|v| v.direction.as_ref()) {
            witnesses.set_item(key, to_dict(py, specs, d)?)?;
        }
    }
    class(py, "Certificate")?.call1((json_to_py(py, json)?, witnesses))
}
