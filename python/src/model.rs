//! `mcopt.Model`: a checked model with its bound data and the objective on the training split
//! (`mcopt::session::Objective`: the graph lowered and the evaluator's buffers allocated once),
//! so `value` and `gradient` cost one gather of the parameters into θ and one evaluation; the
//! rest are the session's typed calls (`inspect`, `reformulate`, `directional`, certificates).

use std::sync::Arc;

use mcopt::config::{self, ColumnSel, DataSpec, HeaderMode, RowSel, SeqLayout, Split};
use mcopt::diag::Diags;
use mcopt::forms::Betas;
use mcopt::registry::Order;
use mcopt::session::certify::{self, Point};
use mcopt::session::reformulate::{reformulate, ReformulateRequest};
use mcopt::session::{
    self, CertifyRequest, Direction, DirectionalRequest, FormSpec, Inputs, Objective, Session,
};
use mcopt::vars::VarSpec;
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::arrays::{keys, read_vars, to_dict};
use crate::errors::{diag, to_py, OrRaise};

/// A model loaded with its data: `Model.load(path, config=None, data=None, consts=None,
/// plugins=(), rows=None, test_rows=None)`.
#[pyclass(module = "mcopt._mcopt")]
pub struct Model {
    /// f on the training split, its evaluator kept between calls.
    obj: Objective,
    session: Arc<Session>,
    specs: Vec<VarSpec>,
    /// The parameter names as interned Python strings.
    keys: Vec<Py<PyString>>,
    theta: Vec<f64>,
    grad: Vec<f64>,
}

/// A string argument from `str` or `os.PathLike`.
pub fn path_arg(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let os = obj.py().import("os")?;
    os.call_method1("fspath", (obj,))?.extract()
}

/// The numbers of a data array-like as (rows, width, row-major values).
fn data_array(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<(usize, usize, Vec<f64>)> {
    let np = obj.py().import("numpy")?;
    let arr = np
        .call_method1("ascontiguousarray", (obj, "float64"))
        .map_err(|e| {
            diag(
                "mcopt::python::data",
                format!("data `{name}` is not an array of numbers: {e}"),
                "give a numpy array (rows × width, 1-D for width 1), a pandas DataFrame or Series, or \"FILE:COLUMNS\"",
            )
        })?;
    let arr: numpy::PyReadonlyArrayDyn<'_, f64> = arr.extract()?;
    let (rows, width) = match arr.shape() {
        [r] => (*r, 1),
        [r, w] => (*r, *w),
        s => {
            return Err(diag(
                "mcopt::python::data",
                format!("data `{name}` has {} dimensions", s.len()),
                "give one row per time step: a 1-D array for width 1, else rows × width",
            ))
        }
    };
    let values = arr
        .as_slice()
        .map_err(|e| diag("mcopt::python::data", e.to_string(), ""))?
        .to_vec();
    Ok((rows, width, values))
}

/// The in-memory table and its bindings for the arrays of `data` (name → array-like).
fn memory_data(data: &Bound<'_, PyDict>, input: &Inputs) -> PyResult<(config::Table, DataSpec)> {
    let mut columns = Vec::new();
    let mut bind = Vec::new();
    for (k, v) in data.iter() {
        let name: String = k.extract()?;
        let (rows, width, values) = data_array(&name, &v)?;
        let start = columns.len();
        for c in 0..width {
            let col: Vec<f64> = (0..rows).map(|r| values[r * width + c]).collect();
            columns.push((format!("{name}[{c}]"), col));
        }
        bind.push((
            name,
            ColumnSel::Range {
                start,
                end: start + width,
            },
        ));
    }
    let table = config::memory_table(columns).or_raise()?;
    let sel = |s: &Option<String>| -> PyResult<Option<RowSel>> {
        s.as_deref()
            .map(|r| config::parse_row_sel(r).map_err(|d| to_py(d.into())))
            .transpose()
    };
    let spec = DataSpec {
        file: config::MEMORY_NAME.into(),
        header: HeaderMode::Yes,
        bind,
        train: sel(&input.rows)?.unwrap_or(RowSel::All),
        test: sel(&input.test_rows)?,
        sequences: SeqLayout::Single,
        test_state: input.test_state.unwrap_or_default(),
        origin: None,
    };
    Ok((table, spec))
}

/// The session inputs of the keyword arguments shared by `Model.load` and `validate`, and with
/// `arrays` the table of data given as arrays (else such data are refused).
#[allow(clippy::too_many_arguments)]
pub fn inputs(
    config: Option<&Bound<'_, PyAny>>,
    data: Option<&Bound<'_, PyDict>>,
    consts: Option<&Bound<'_, PyDict>>,
    plugins: &[Bound<'_, PyAny>],
    rows: Option<String>,
    test_rows: Option<String>,
    arrays: bool,
) -> PyResult<(Inputs, Option<(config::Table, DataSpec)>)> {
    let mut input = Inputs {
        config: config.map(path_arg).transpose()?,
        rows,
        test_rows,
        ..Inputs::default()
    };
    for p in plugins {
        input.plugins.push(path_arg(p)?);
    }
    if let Some(c) = consts {
        for (k, v) in c.iter() {
            let name: String = k.extract()?;
            let value: f64 = v.extract().map_err(|_| {
                diag(
                    "mcopt::python::value",
                    format!("const `{name}` is not a number"),
                    "give consts as a dict name → number",
                )
            })?;
            input.consts.push(format!("{name}={value:?}"));
        }
    }
    let mut memory = None;
    if let Some(d) = data {
        let strings = d.values().iter().all(|v| v.is_instance_of::<PyString>());
        if strings {
            for (k, v) in d.iter() {
                input.data.push(format!(
                    "{}={}",
                    k.extract::<String>()?,
                    v.extract::<String>()?
                ));
            }
        } else if d.values().iter().any(|v| v.is_instance_of::<PyString>()) {
            return Err(diag(
                "mcopt::python::data",
                "`data` mixes \"FILE:COLUMNS\" strings and arrays",
                "give every data name an array, or every one a \"FILE:COLUMNS\" string",
            ));
        } else if !arrays {
            return Err(diag(
                "mcopt::python::data",
                "`validate` reads data from files: give `data` as \"FILE:COLUMNS\" strings",
                "or give a run file (`config`) that binds the data",
            ));
        } else {
            memory = Some(memory_data(d, &input)?);
        }
    }
    Ok((input, memory))
}

/// The form of `form="p"|"p0"|"p1"` with β (a number for every layer group, or a dict
/// group → number).
pub fn form_spec(form: &str, beta: Option<&Bound<'_, PyAny>>) -> PyResult<FormSpec> {
    let mut betas = Betas::uniform(1.0);
    if let Some(b) = beta {
        let check = |v: f64| certify::check_number("beta", v, v > 0.0, "a positive number");
        if let Ok(d) = b.cast::<PyDict>() {
            for (k, v) in d.iter() {
                let v = check(v.extract()?).or_raise()?;
                betas.per_group.insert(k.extract()?, v);
            }
        } else {
            betas.default = check(b.extract()?).or_raise()?;
        }
    }
    match form {
        "p" => Ok(FormSpec::P),
        "p0" => Ok(FormSpec::P0),
        "p1" => Ok(FormSpec::P1(betas)),
        other => Err(diag(
            "mcopt::python::value",
            format!("expected `form` to be \"p\", \"p0\" or \"p1\", found {other:?}"),
            "p: the original problem, p0: lifted with constraints, p1: the ℓ1 penalty",
        )),
    }
}

fn order_of(order: u8) -> PyResult<Order> {
    match order {
        1 => Ok(Order::One),
        2 => Ok(Order::Two),
        o => Err(diag(
            "mcopt::python::value",
            format!("expected `order` to be 1 or 2, found {o}"),
            "1: first-order; 2: first and second order",
        )),
    }
}

/// The value of a JSON tree as Python objects (through the json module).
pub fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).unwrap_or_default();
    py.import("json")?.call_method1("loads", (text,))
}

impl Model {
    fn open(py: Python<'_>, session: Session) -> PyResult<Model> {
        let session = Arc::new(session);
        let obj = Objective::new(Arc::clone(&session), Split::Train, 0.0).or_raise()?;
        let specs = obj.param_specs();
        let n = obj.n_params();
        Ok(Model {
            obj,
            keys: keys(py, &specs),
            specs,
            session,
            theta: vec![0.0; n],
            grad: vec![0.0; n],
        })
    }

    /// The parameters of `params` gathered into `self.theta`.
    fn gather(&mut self, params: &Bound<'_, PyAny>) -> PyResult<()> {
        read_vars(
            params,
            &self.specs,
            &self.keys,
            &mut self.theta,
            false,
            "params",
        )
    }
}

#[pymethods]
impl Model {
    /// Model.load(path, config=None, data=None, consts=None, plugins=(), rows=None, test_rows=None)
    ///
    /// Load a model (.mco). `config`: a run file (its data, consts and plugins, as `--config`).
    /// `data`: data name -> numpy array (rows × width; 1-D for width 1) or pandas DataFrame
    /// (all its columns, in order), or every one a "FILE:COLUMNS" string as `--data`.
    /// `rows`/`test_rows`: "a..b" as `--rows`/`--test-rows`. `consts`: name -> number as
    /// `--const`. `plugins`: paths or names as `--plugin`.
    #[staticmethod]
    #[pyo3(signature = (path, config=None, data=None, consts=None, plugins=Vec::new(), rows=None, test_rows=None))]
    fn load(
        path: &Bound<'_, PyAny>,
        config: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyDict>>,
        consts: Option<&Bound<'_, PyDict>>,
        plugins: Vec<Bound<'_, PyAny>>,
        rows: Option<String>,
        test_rows: Option<String>,
    ) -> PyResult<Model> {
        let path_py = path.py();
        let path = path_arg(path)?;
        let (input, memory) = inputs(config, data, consts, &plugins, rows, test_rows, true)?;
        let model_path = mcopt::session::model_path(Some(&path), &input).or_raise()?;
        let mut session = Session::load(&model_path, &input).or_raise()?;
        if let Some((table, spec)) = memory {
            session.data = Some(spec);
            session.memory = Some(Arc::new(table));
        }
        Model::open(path_py, session)
    }

    /// The model file's path.
    #[getter]
    fn path(&self) -> String {
        self.session.model_path.clone()
    }

    /// The parameter names, in declaration order.
    #[getter]
    fn param_names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    /// The initial values of the parameters (a fresh copy on each access).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let init: Vec<f64> = self
            .session
            .model
            .params
            .iter()
            .flat_map(|p| p.init.iter().copied())
            .collect();
        to_dict(py, &self.specs, &init)
    }

    /// The structure `mcopt check --json` prints: parameters, layer declarations and
    /// instances, data, objective terms.
    fn check<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let summary = session::inspect(&self.session).or_raise()?;
        json_to_py(py, &serde_json::to_value(&summary).unwrap_or_default())
    }

    /// What `mcopt reformulate --json` prints for `form` ("p0" or "p1", with `beta`).
    #[pyo3(signature = (form="p1", beta=None))]
    fn reformulate<'py>(
        &self,
        py: Python<'py>,
        form: &str,
        beta: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let form = match form_spec(form, beta)? {
            FormSpec::P => return Err(diag(
                "mcopt::python::value",
                "`reformulate` writes out the lifted problems: form \"p0\" or \"p1\", not \"p\"",
                "p0: lifted with constraints, p1: the ℓ1 penalty",
            )),
            f => f,
        };
        let r = reformulate(&self.session, &ReformulateRequest { form }).or_raise()?;
        json_to_py(py, &r.to_json())
    }

    /// f(θ) on the training split (the GIL released while it is evaluated).
    fn value(&mut self, py: Python<'_>, params: &Bound<'_, PyAny>) -> PyResult<f64> {
        self.gather(params)?;
        let (obj, theta) = (&mut self.obj, &self.theta);
        py.detach(|| obj.value(theta)).or_raise()
    }

    /// f at `params`, `reps` times, in Rust (the Rust call alone, for overhead measurements);
    /// returns the seconds per call.
    fn _time_value(&mut self, params: &Bound<'_, PyAny>, reps: usize) -> PyResult<f64> {
        self.gather(params)?;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(self.obj.value(&self.theta).or_raise()?);
        }
        Ok(start.elapsed().as_secs_f64() / reps.max(1) as f64)
    }

    /// ∇f(θ) where f is differentiable (the reverse pass of `mcopt eval --gradient`), as a
    /// dict of arrays (the GIL released while it is evaluated).
    fn gradient<'py>(
        &mut self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.gather(params)?;
        let (obj, theta, grad) = (&mut self.obj, &self.theta, &mut self.grad);
        py.detach(|| obj.gradient_into(theta, grad)).or_raise()?;
        to_dict(py, &self.specs, &self.grad)
    }

    /// (f, f′(θ; d), f″(θ; d) or None for order 1, active kinks), as `mcopt diff`; a
    /// direction's missing names are zero; in (P0)/(P1) it may name layer variables (`h[3]`).
    #[pyo3(signature = (params, direction, order=2, form="p", beta=None, ztol=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn directional(
        &mut self,
        py: Python<'_>,
        params: &Bound<'_, PyAny>,
        direction: &Bound<'_, PyAny>,
        order: u8,
        form: &str,
        beta: Option<&Bound<'_, PyAny>>,
        ztol: f64,
    ) -> PyResult<(f64, f64, Option<f64>, usize)> {
        let req = DirectionalRequest {
            form: form_spec(form, beta)?,
            order: order_of(order)?,
            ztol,
        };
        self.gather(params)?;
        let d = if req.form == FormSpec::P {
            let mut d = vec![0.0; self.theta.len()];
            read_vars(
                direction,
                &self.specs,
                &self.keys,
                &mut d,
                true,
                "direction",
            )?;
            d
        } else {
            // Over z = (θ, u): the variables of the form, as a certificate's point has them.
            let g = self.obj.graph();
            let specs = certify::all_specs(g, &mcopt::forms::lift(g));
            let mut d = vec![0.0; specs.iter().map(VarSpec::len).sum()];
            read_vars(
                direction,
                &specs,
                &keys(py, &specs),
                &mut d,
                true,
                "direction",
            )?;
            d
        };
        let (s, theta) = (&*self.session, &self.theta);
        let r = py
            .detach(|| {
                let at = Point::Theta(theta);
                session::directional(s, &at, &Direction::Values(&d), &req)
            })
            .or_raise()?;
        let t = r.taylor;
        let z = |x: Option<f64>| x.map(|x| x + 0.0);
        Ok((
            t.value,
            z(t.d1).unwrap_or(f64::NAN),
            z(t.d2),
            t.active_kinks,
        ))
    }
    /// The certificate of d-stationarity at `params`, as `mcopt stationarity --json`:
    /// `form` "p", "p0" or "p1" (β: a number for every layer group, or a dict group -> number),
    /// `order` 1 or 2, `tol`, `ztol`, `max_pieces`, `time_limit` as the CLI's flags. The GIL
    /// is released while it runs.
    #[pyo3(signature = (params, order=2, form="p", beta=None, tol=None, ztol=None, max_pieces=None, time_limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn stationarity<'py>(
        &mut self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        order: u8,
        form: &str,
        beta: Option<&Bound<'py, PyAny>>,
        tol: Option<f64>,
        ztol: Option<f64>,
        max_pieces: Option<usize>,
        time_limit: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let start = std::time::Instant::now();
        let req = CertifyRequest {
            tol,
            ztol: ztol.unwrap_or(0.0),
            max_pieces: max_pieces.unwrap_or(4096),
            time_limit,
            ..CertifyRequest::new(form_spec(form, beta)?, order_of(order)?)
        };
        let opts = req.options().or_raise()?;
        self.gather(params)?;
        let theta = &self.theta;
        let s = &*self.session;
        let out = py.detach(move || -> Result<_, Diags> {
            let prep = certify::prepare_at(s, &req.form, &Point::Theta(theta), opts.tol)?;
            let mut cert = prep.certify(s, &opts)?;
            cert.seconds = start.elapsed().as_secs_f64();
            let json = mcopt::report::json::certificate(prep.form, &cert, &prep.specs);
            Ok((cert, json, prep.specs))
        });
        let (cert, json, specs) = out.or_raise()?;
        crate::results::certificate(py, &json, &cert, &specs)
    }
}
