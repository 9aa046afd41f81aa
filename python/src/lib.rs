//! `mcopt._mcopt`: the native module of the Python package. Every function calls the library's
//! session layer (`mcopt::session`), so Python and the command line run the same code; the
//! public names are re-exported, with docstrings and stubs, by `python/mcopt/__init__.py`.

mod arrays;
mod errors;
mod model;
mod results;
mod train;
mod validate;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _mcopt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DiagnosticError", py.get_type::<errors::DiagnosticError>())?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validate, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
