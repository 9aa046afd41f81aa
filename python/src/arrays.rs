//! Parameters and directions between Python and the model: a dict of float64 arrays keyed by
//! variable name, shaped as declared (`vec(n)` → `(n,)`, `mat(r, c)` → `(r, c)` row-major, a
//! scalar → `()`), and the model's flat vector θ (each variable's entries column-major, in
//! declaration order). Reading gathers each array once into θ (a strided or non-float64
//! array-like is converted by numpy first); nothing is transposed in meaning: entry `[i, j]`
//! of the array is the model's entry `[i+1, j+1]`.

use mcopt::vars::{ShapeKind, VarSpec};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::diag;

/// The shape a variable has in Python.
pub fn py_shape(s: &VarSpec) -> Vec<usize> {
    match s.kind {
        ShapeKind::Scalar => vec![],
        ShapeKind::Vector => vec![s.rows * s.cols],
        ShapeKind::Matrix => vec![s.rows, s.cols],
    }
}

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether a given shape fits the variable: its shape, and for a scalar also `(1,)`.
fn fits(spec: &VarSpec, given: &[usize]) -> bool {
    let want = py_shape(spec);
    given == want.as_slice() || (spec.kind == ShapeKind::Scalar && given == [1])
}

/// Write the values of `obj` (shaped as `spec`) column-major into `out` (its `spec.len()` entries).
fn gather(obj: &Bound<'_, PyAny>, spec: &VarSpec, out: &mut [f64]) -> PyResult<()> {
    let converted;
    let arr: &Bound<'_, PyArrayDyn<f64>> = match obj.cast::<PyArrayDyn<f64>>() {
        Ok(a) => a,
        Err(_) => {
            let np = obj.py().import("numpy")?;
            converted = np.call_method1("asarray", (obj, "float64")).map_err(|e| {
                diag(
                    "mcopt::python::value",
                    format!("`{}` is not an array of numbers: {e}", spec.name),
                    "give a numpy array, a list of numbers or a float",
                )
            })?;
            converted.cast::<PyArrayDyn<f64>>()?
        }
    };
    let shape = arr.shape();
    if !fits(spec, shape) {
        return Err(diag(
            "mcopt::python::shape",
            format!(
                "`{}` has shape {}, but the model declares it with shape {}",
                spec.name,
                shape_text(shape),
                shape_text(&py_shape(spec))
            ),
            "give each variable as an array shaped as declared: vec(n) as (n,), mat(r, c) as (r, c), a scalar as a float",
        ));
    }
    // SAFETY: the GIL is held and no Python code runs until the view is dropped at the end of
    // this function, so nothing writes to the array while it is read (the numpy crate's
    // borrow tracking, which this skips, guards against Rust-side writers only).
    let view = unsafe { arr.as_array() };
    if spec.kind == ShapeKind::Matrix {
        let rows = spec.rows;
        let view = view
            .into_dimensionality::<numpy::Ix2>()
            .map_err(|e| diag("mcopt::python::shape", e.to_string(), ""))?;
        for ((i, j), v) in view.indexed_iter() {
            out[i + j * rows] = *v;
        }
    } else {
        match view.as_slice() {
            Some(s) => out.copy_from_slice(s),
            None => {
                for (o, v) in out.iter_mut().zip(view.iter()) {
                    *o = *v;
                }
            }
        }
    }
    Ok(())
}

/// The first name of `dict` that is not a variable, as a diagnostic.
fn unknown_name(dict: &Bound<'_, PyDict>, specs: &[VarSpec], what: &str) -> PyResult<()> {
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for k in dict.keys() {
        let name = k.str()?.to_string();
        if !names.contains(&name.as_str()) {
            return Err(diag(
                "mcopt::python::name",
                format!("{what} names `{name}`, which is not a variable of the model"),
                &format!(
                    "{}the variables are {}",
                    mcopt::text::did_you_mean(&name, &names),
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// θ (or z) from a dict keyed by the names of `specs`, into `out` (length Σ spec.len()).
/// With `missing_zero` (a direction) an absent name is zero; otherwise it is refused.
pub fn read_vars(
    obj: &Bound<'_, PyAny>,
    specs: &[VarSpec],
    keys: &[Py<PyString>],
    out: &mut [f64],
    missing_zero: bool,
    what: &str,
) -> PyResult<()> {
    let dict = obj.cast::<PyDict>().map_err(|_| {
        diag(
            "mcopt::python::value",
            format!(
                "expected the {what} as a dict of arrays keyed by variable name, found {}",
                obj.get_type()
                    .name()
                    .map_or("?".to_owned(), |n| n.to_string())
            ),
            "write e.g. {\"W\": np.zeros((2, 3)), \"b\": np.zeros(2)}",
        )
    })?;
    let mut off = 0;
    let mut found = 0;
    for (s, key) in specs.iter().zip(keys) {
        let len = s.len();
        let slot = &mut out[off..off + len];
        match dict.get_item(key.bind(obj.py()))? {
            Some(v) => {
                gather(&v, s, slot)?;
                found += 1;
            }
            None if missing_zero => slot.fill(0.0),
            None => {
                return Err(diag(
                    "mcopt::python::missing",
                    format!("the {what} has no value for `{}`", s.name),
                    &format!(
                        "give every parameter; `{}` has shape {}",
                        s.name,
                        shape_text(&py_shape(s))
                    ),
                ))
            }
        }
        off += len;
    }
    if found != dict.len() {
        unknown_name(dict, specs, what)?;
    }
    Ok(())
}

/// The variables' names as interned Python strings (the keys [`read_vars`] looks up).
pub fn keys(py: Python<'_>, specs: &[VarSpec]) -> Vec<Py<PyString>> {
    specs
        .iter()
        .map(|s| PyString::intern(py, &s.name).unbind())
        .collect()
}

/// One variable's column-major values as a numpy array shaped as declared.
pub fn to_array<'py>(py: Python<'py>, s: &VarSpec, v: &[f64]) -> PyResult<Bound<'py, PyAny>> {
    let shape = py_shape(s);
    let data: Vec<f64> = if s.kind == ShapeKind::Matrix {
        let (r, c) = (s.rows, s.cols);
        (0..r * c).map(|k| v[(k / c) + (k % c) * r]).collect()
    } else {
        v.to_vec()
    };
    let arr = ArrayD::from_shape_vec(IxDyn(&shape), data)
        .map_err(|e| diag("mcopt::python::shape", e.to_string(), ""))?;
    Ok(PyArrayDyn::from_owned_array(py, arr).into_any())
}

/// A dict of arrays from values in spec order (`flat` column-major, Σ spec.len() entries).
pub fn to_dict<'py>(
    py: Python<'py>,
    specs: &[VarSpec],
    flat: &[f64],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let mut off = 0;
    for s in specs {
        d.set_item(&s.name, to_array(py, s, &flat[off..off + s.len()])?)?;
        off += s.len();
    }
    Ok(d)
}
