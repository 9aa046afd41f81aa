//! `mcopt.Model`: a checked model with its bound data, the training split's graph and one
//! evaluator kept between calls (its buffers allocated once), so `value`, `gradient` and
//! `directional` cost one gather of the parameters into θ and one evaluation.

use std::sync::Arc;

use mcopt::config::{self, ColumnSel, DataSpec, HeaderMode, RowSel, SeqLayout, Split};
use mcopt::diag::{Diag, Diags};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::forms::Betas;
use mcopt::graph::Graph;
use mcopt::registry::Order;
use mcopt::session::certify::{self, Point};
use mcopt::session::{CertifyRequest, FormSpec, Inputs, Session};
use mcopt::vars::VarSpec;
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::arrays::{read_vars, to_dict};
use crate::errors::{diag, to_py, OrRaise};

/// What a model's evaluator borrows: the session (registry, checked model) and the graph.
pub struct Core {
    pub session: Session,
    pub graph: Graph,
    pub specs: Vec<VarSpec>,
}

/// A model loaded with its data: `Model.load(path, config=None, data=None, consts=None,
/// plugins=(), rows=None, test_rows=None)`.
#[pyclass(module = "mcopt._mcopt", unsendable)]
pub struct Model {
    // Declared before `core`, so dropped before it: it borrows `core`'s graph and registry.
    ev: Evaluator<'static>,
    theta: Vec<f64>,
    dir: Vec<f64>,
    grad: Vec<f64>,
    core: Arc<Core>,
}

/// A string argument from `str` or `os.PathLike`.
fn path_arg(obj: &Bound<'_, PyAny>) -> PyResult<String> {
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
fn memory_data(
    data: &Bound<'_, PyDict>,
    input: &Inputs,
) -> PyResult<(config::Table, DataSpec)> {
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

fn eval_err(g: &Graph) -> impl Fn(mcopt::eval::EvalError) -> PyErr + '_ {
    move |e| to_py(e.to_diag(g).into())
}

/// The value of a JSON tree as Python objects (through the json module).
pub fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).unwrap_or_default();
    py.import("json")?.call_method1("loads", (text,))
}

impl Model {
    fn open(session: Session) -> PyResult<Model> {
        let graph = match session.graph(Split::Train).or_raise()? {
            Some(g) => g,
            None => {
                return Err(to_py(
                    Diag::new("mcopt::data::unbound", "no data are bound for this split")
                        .in_file(&session.model_path)
                        .into(),
                ))
            }
        };
        let specs = session.param_specs();
        let n = graph.n_params();
        let core = Arc::new(Core {
            session,
            graph,
            specs,
        });
        // SAFETY: `core` is kept in the same `Model` as `ev`, behind an `Arc` whose contents
        // never move nor change, and `ev` is declared (so dropped) before `core`: the
        // references outlive every use of the evaluator.
        let (graph, registry) = unsafe {
            let c: &'static Core = &*Arc::as_ptr(&core);
            (&c.graph, &c.session.registry)
        };
        let ev = Evaluator::new(graph, registry, Order::Two).map_err(eval_err(graph))?;
        Ok(Model {
            ev,
            theta: vec![0.0; n],
            dir: vec![0.0; n],
            grad: vec![0.0; n],
            core,
        })
    }

    /// The parameters of `params` gathered into `self.theta`.
    fn gather(&mut self, params: &Bound<'_, PyAny>) -> PyResult<()> {
        read_vars(params, &self.core.specs, &mut self.theta, false, "params")
    }

    fn value_now(&mut self) -> PyResult<f64> {
        let g = &self.core.graph;
        let v = self
            .ev
            .value(&self.theta, EvalOptions::default())
            .map_err(eval_err(g))?;
        self.ev.check_finite(Order::Zero).map_err(eval_err(g))?;
        Ok(v)
    }

    pub fn session(&self) -> &Session {
        &self.core.session
    }
}

#[pymethods]
impl Model {
    /// Load a model (.mco) with its data, constants and plugins (see the package docs).
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
        let path = path_arg(path)?;
        let mut input = Inputs {
            config: config.map(path_arg).transpose()?,
            rows,
            test_rows,
            ..Inputs::default()
        };
        for p in &plugins {
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
                    input
                        .data
                        .push(format!("{}={}", k.extract::<String>()?, v.extract::<String>()?));
                }
            } else if d.values().iter().any(|v| v.is_instance_of::<PyString>()) {
                return Err(diag(
                    "mcopt::python::data",
                    "`data` mixes \"FILE:COLUMNS\" strings and arrays",
                    "give every data name an array, or every one a \"FILE:COLUMNS\" string",
                ));
            } else {
                memory = Some(memory_data(d, &input)?);
            }
        }
        let model_path = mcopt::session::model_path(Some(&path), &input).or_raise()?;
        let mut session = Session::load(&model_path, &input).or_raise()?;
        if let Some((table, spec)) = memory {
            session.data = Some(spec);
            session.memory = Some(Arc::new(table));
        }
        Model::open(session)
    }

    /// The model file's path.
    #[getter]
    fn path(&self) -> String {
        self.core.session.model_path.clone()
    }

    /// The parameter names, in declaration order.
    #[getter]
    fn param_names(&self) -> Vec<String> {
        self.core.specs.iter().map(|s| s.name.clone()).collect()
    }

    /// The initial values of the parameters (a fresh copy on each access).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let init: Vec<f64> = self
            .core
            .session
            .model
            .params
            .iter()
            .flat_map(|p| p.init.iter().copied())
            .collect();
        to_dict(py, &self.core.specs, &init)
    }

    /// f(θ) on the training split.
    fn value(&mut self, params: &Bound<'_, PyAny>) -> PyResult<f64> {
        self.gather(params)?;
        self.value_now()
    }

    /// f at `params`, `reps` times, in Rust (the Rust call alone, for overhead measurements);
    /// returns the seconds per call.
    fn _time_value(&mut self, params: &Bound<'_, PyAny>, reps: usize) -> PyResult<f64> {
        self.gather(params)?;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(self.value_now()?);
        }
        Ok(start.elapsed().as_secs_f64() / reps.max(1) as f64)
    }

    /// ∇f(θ) where f is differentiable (the reverse pass of `bench`), as a dict of arrays.
    fn gradient<'py>(
        &mut self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.gather(params)?;
        let g = &self.core.graph;
        self.ev
            .gradient(&self.theta, &mut self.grad, EvalOptions::default())
            .map_err(eval_err(g))?;
        self.ev.check_finite(Order::Zero).map_err(eval_err(g))?;
        to_dict(py, &self.core.specs, &self.grad)
    }

    /// (f, f′(θ; d), f″(θ; d) or None for order 1, active kinks), as `mcopt diff`.
    #[pyo3(signature = (params, direction, order=2, form="p", beta=None, ztol=0.0))]
    fn directional(
        &mut self,
        params: &Bound<'_, PyAny>,
        direction: &Bound<'_, PyAny>,
        order: u8,
        form: &str,
        beta: Option<&Bound<'_, PyAny>>,
        ztol: f64,
    ) -> PyResult<(f64, f64, Option<f64>, usize)> {
        let order = order_of(order)?;
        certify::check_number("ztol", ztol, ztol >= 0.0, "a number ≥ 0").or_raise()?;
        let spec = form_spec(form, beta)?;
        self.gather(params)?;
        let opts = EvalOptions { ztol };
        let t = if spec == FormSpec::P {
            read_vars(direction, &self.core.specs, &mut self.dir, true, "direction")?;
            let g = &self.core.graph;
            let t = self
                .ev
                .directional(&self.theta, &self.dir, order, opts)
                .map_err(eval_err(g))?;
            self.ev.check_finite(order).map_err(eval_err(g))?;
            t
        } else {
            let s = &self.core.session;
            let prep =
                certify::prepare_at(s, &spec, Point::Theta(&self.theta), 1e-6).or_raise()?;
            let mut d = vec![0.0; prep.specs.iter().map(VarSpec::len).sum()];
            read_vars(direction, &prep.specs, &mut d, true, "direction")?;
            let (graph, x) = prep.objective();
            let mut ev =
                Evaluator::new(graph, &s.registry, Order::Two).map_err(eval_err(graph))?;
            let t = ev
                .directional(x, &d, order, opts)
                .map_err(eval_err(graph))?;
            ev.check_finite(order).map_err(eval_err(graph))?;
            t
        };
        let z = |x: Option<f64>| x.map(|x| x + 0.0);
        Ok((t.value, z(t.d1).unwrap_or(f64::NAN), z(t.d2), t.active_kinks))
    }

    /// The certificate of d-stationarity at `params` (see `mcopt stationarity`).
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
        let theta = self.theta.clone();
        let core = Arc::clone(&self.core);
        let out = py.detach(move || -> Result<_, Diags> {
            let s = &core.session;
            let prep = certify::prepare_at(s, &req.form, Point::Theta(&theta), opts.tol)?;
            let mut cert = prep.certify(s, &opts)?;
            cert.seconds = start.elapsed().as_secs_f64();
            let json = mcopt::report::json::certificate(prep.form, &cert, &prep.specs);
            Ok((cert, json, prep.specs))
        });
        let (cert, json, specs) = out.or_raise()?;
        crate::results::certificate(py, &json, &cert, &specs)
    }
}
