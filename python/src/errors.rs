//! `mcopt.DiagnosticError`: a diagnostic of the library (`mcopt::diag::Diags`) as a Python
//! exception, a `ValueError` carrying the first diagnostic's code, message, place and help, with
//! every diagnostic rendered (miette, no colour, as the command line prints them) as its text.

use mcopt::diag::{render_plain, Diag, Diags};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pyo3::create_exception!(
    mcopt,
    DiagnosticError,
    PyValueError,
    "A diagnostic of mcopt: `code`, `message`, `file`, `line`, `column` (1-based) and `help` of \
     the first problem found; `str()` is every problem rendered as the command line prints it."
);

/// The 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The Python exception of `diags` (attributes from the first diagnostic).
pub fn to_py(diags: Diags) -> PyErr {
    Python::attach(|py| {
        let rendered = render_plain(&diags);
        let err = DiagnosticError::new_err(rendered.trim_end().to_owned());
        let Some(d) = diags.0.first() else {
            return err;
        };
        if let Err(e) = set_attributes(py, &err, d) {
            return e;
        }
        err
    })
}

fn set_attributes(py: Python<'_>, err: &PyErr, d: &Diag) -> PyResult<()> {
    let v = err.value(py);
    let (file, line, column) = match (&d.source, d.primary()) {
        (Some(src), Some(span)) => {
            let (l, c) = line_column(&src.text, span.start);
            (Some(src.name.clone()), Some(l), Some(c))
        }
        (Some(src), None) => (Some(src.name.clone()), None, None),
        (None, _) => (d.path.clone(), None, None),
    };
    v.setattr("code", d.code)?;
    v.setattr("message", &d.message)?;
    v.setattr("file", file)?;
    v.setattr("line", line)?;
    v.setattr("column", column)?;
    v.setattr("help", d.help.clone())?;
    Ok(())
}

/// A diagnostic of the Python package (`mcopt::python::*`) as the exception.
pub fn diag(code: &'static str, message: impl Into<String>, help: &str) -> PyErr {
    to_py(Diag::new(code, message).help(help).into())
}

/// `Result<T, Diags>` into `PyResult<T>`.
pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Diags> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
