//! `mcopt.train`: `mcopt train` from Python, on the same session code (`TrainPlan`), with the
//! GIL released while the run goes. An observer takes the GIL back after every iteration to
//! call the callback and `PyErr::check_signals` (Ctrl-C); a `False` from the callback, an
//! exception or a signal sets the run's stop flag, so the executor stops after that step and
//! the outputs are written as for a stopped command-line run; then the exception is raised.
//! No process signal handler is installed (`mcopt::signals` is the command line's).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use mcopt::config::{self, RunFile};
use mcopt::diag::{Diags, SourceFile};
use mcopt::report::trace;
use mcopt::session::outputs::Outputs;
use mcopt::session::record::{self, Recorder, RunIdentity};
use mcopt::session::train::{finish, Started, TrainOverrides, TrainPlan};
use mcopt::session::Inputs;
use mcopt::solve::{Observer, Row, RunState};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::arrays::{keys, read_vars, to_dict};
use crate::errors::OrRaise;
use crate::model::json_to_py;
use crate::results::class;

/// The name a run given as a dict is reported under.
const DICT_RUN: &str = "<run dict>";

/// Calls the callback after every row and looks for Ctrl-C; keeps the trace.
struct PyObserver {
    callback: Option<Py<PyAny>>,
    columns: Vec<String>,
    metrics: Vec<String>,
    rows: Vec<Vec<f64>>,
    stop: &'static AtomicBool,
    /// The callback returned False.
    stopped: bool,
    /// The exception that stopped the run (the callback's, or KeyboardInterrupt).
    error: Option<PyErr>,
}

impl Observer for PyObserver {
    fn row(&mut self, row: &Row) {
        let values: Vec<f64> = trace::parse_line(&trace::line(row, &self.metrics))
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        Python::attach(|py| {
            if self.error.is_none() && !self.stopped {
                if let Some(cb) = &self.callback {
                    let outcome = (|| -> PyResult<bool> {
                        let d = PyDict::new(py);
                        for (k, v) in self.columns.iter().zip(&values) {
                            d.set_item(k, v)?;
                        }
                        d.set_item("iter", row.iter)?;
                        let r = cb.call1(py, (d,))?;
                        let r = r.bind(py);
                        // Only `False` stops the run (None, the usual return, goes on).
                        Ok(!r.is_instance_of::<pyo3::types::PyBool>() || r.is_truthy()?)
                    })();
                    match outcome {
                        Ok(true) => {}
                        Ok(false) => self.stopped = true,
                        Err(e) => self.error = Some(e),
                    }
                }
            }
            if self.error.is_none() {
                if let Err(e) = py.check_signals() {
                    self.error = Some(e);
                }
            }
        });
        if self.error.is_some() || self.stopped {
            self.stop.store(true, Ordering::SeqCst);
        }
        self.rows.push(values);
    }
}

/// The run file: a path (read with its cap), or a dict of its keys (through JSON, which YAML
/// reads; relative paths resolved against the current directory).
fn run_file(py: Python<'_>, run: &Bound<'_, PyAny>) -> PyResult<(RunFile, String, bool)> {
    if run.is_instance_of::<PyDict>() {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (run,))?
            .extract()?;
        let source = SourceFile::new(DICT_RUN, text);
        let r = config::parse_run(&source, Path::new(DICT_RUN)).or_raise()?;
        return Ok((r, DICT_RUN.to_owned(), true));
    }
    let path: String = if run.is_instance_of::<PyString>() {
        run.extract()?
    } else {
        py.import("os")?.call_method1("fspath", (run,))?.extract()?
    };
    let r = config::load_run(Path::new(&path)).or_raise()?;
    Ok((r, path, false))
}

/// train(run, init=None, max_iter=None, out=None, callback=None) -> Report
///
/// Train as `mcopt train RUN` does. `run`: a run file, or a dict of its keys (relative paths
/// resolved against the current directory). `init`: a point file or a dict of arrays (the
/// start instead of the run file's `init`). `max_iter` as `--max-iter`. `out`: the output
/// directory as `--out` (default: the run file's own, as the CLI; for a dict run, no files).
/// `callback(metrics)` gets every iteration's trace row (column -> float, "iter" an int);
/// returning False stops the run (status "stopped"); an exception raised in it, or Ctrl-C,
/// stops the run, writes the outputs, and is raised again. The GIL is released while the run
/// goes, but for the callback.
#[pyfunction]
#[pyo3(signature = (run, init=None, max_iter=None, out=None, callback=None))]
pub fn train<'py>(
    py: Python<'py>,
    run: &Bound<'py, PyAny>,
    init: Option<&Bound<'py, PyAny>>,
    max_iter: Option<u64>,
    out: Option<&Bound<'py, PyAny>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (run, runfile, is_dict) = run_file(py, run)?;
    let fspath = |o: &Bound<'py, PyAny>| -> PyResult<String> {
        py.import("os")?.call_method1("fspath", (o,))?.extract()
    };
    let out: Option<String> = out.map(fspath).transpose()?;
    let init_file = match init {
        Some(i) if !i.is_instance_of::<PyDict>() => Some(fspath(i)?),
        _ => None,
    };
    let input = Inputs {
        config: Some(runfile.clone()),
        ..Inputs::default()
    };
    let overrides = TrainOverrides {
        init: init_file,
        max_iter,
        ..TrainOverrides::default()
    };
    let plan = TrainPlan::from_run(&run, &input, overrides).or_raise()?;
    let outputs = match (&out, is_dict) {
        (None, true) => Outputs::default(),
        _ => Outputs::checked(out.as_deref(), &run).or_raise()?,
    };
    let specs = plan.session.param_specs();
    let x0 = match init {
        Some(d) if d.is_instance_of::<PyDict>() => {
            let mut x = vec![0.0; plan.session.model.n_params()];
            read_vars(d, &specs, &keys(py, &specs), &mut x, false, "init")?;
            x
        }
        _ => plan.start_point(None).or_raise()?,
    };
    let info = plan.solver_info();
    let identity = RunIdentity {
        solver: info.name.clone(),
        options: plan.options.clone(),
        seed: plan.seed,
        fingerprint: plan.fingerprint,
        metrics: info.metrics.clone(),
    };
    // One flag per run (a byte, never freed): the executor polls a `&'static` flag.
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let mut observer = PyObserver {
        callback,
        columns: trace::header(&info.metrics)
            .split(',')
            .map(str::to_owned)
            .collect(),
        metrics: info.metrics.clone(),
        rows: Vec::new(),
        stop,
        stopped: false,
        error: None,
    };
    let ran = py.detach(|| -> Result<_, Diags> {
        let trained = plan.run(&x0, None, &mut observer, || {
            record::clear_previous(&outputs)?;
            let recorder = Recorder::start(identity.clone(), &outputs, run.checkpoint)?;
            Ok(Started {
                state: RunState::start(x0.clone()),
                recorder,
                interrupt: Some(stop),
            })
        })?;
        let done = finish(&plan, &outputs, &identity, trained, Some(stop))?;
        Ok((done.report, done.x))
    });
    let (report, x) = ran.or_raise()?;
    if let Some(e) = observer.error.take() {
        return Err(e);
    }
    let report_json = serde_json::to_value(&report).unwrap_or_default();
    let status = if observer.stopped {
        "stopped"
    } else {
        report.status
    };
    let columns = observer.columns;
    let rows = observer.rows;
    let np = py.import("numpy")?;
    let dtype: Vec<(String, &str)> = columns
        .iter()
        .map(|c| (c.clone(), if c == "iter" { "i8" } else { "f8" }))
        .collect();
    let trace = np.call_method1("zeros", (rows.len(), dtype))?;
    for (j, c) in columns.iter().enumerate() {
        let col: Vec<f64> = rows
            .iter()
            .map(|r| r.get(j).copied().unwrap_or(f64::NAN))
            .collect();
        trace.set_item(c, numpy::PyArray1::from_vec(py, col))?;
    }
    let certificate = match &report.certificate {
        Some(c) => Some(class(py, "Certificate")?.call1((json_to_py(py, c)?, witnesses(py, c)?))?),
        None => None,
    };
    let out_dir = out.or_else(|| {
        outputs
            .report
            .as_ref()
            .and_then(|p| p.parent())
            .map(|p| p.display().to_string())
    });
    class(py, "Report")?.call1((
        json_to_py(py, &report_json)?,
        status,
        to_dict(py, &specs, &x)?,
        trace,
        certificate,
        out_dir,
    ))
}

/// The witnesses of a certificate's JSON (directions as written: lists of rows) as arrays.
fn witnesses<'py>(py: Python<'py>, c: &serde_json::Value) -> PyResult<Bound<'py, PyDict>> {
    let np = py.import("numpy")?;
    let out = PyDict::new(py);
    for key in ["first_order", "second_order"] {
        if let Some(serde_json::Value::Object(dir)) = c.get(key).and_then(|v| v.get("direction")) {
            let d = PyDict::new(py);
            for (name, v) in dir {
                d.set_item(
                    name,
                    np.call_method1("asarray", (json_to_py(py, v)?, "float64"))?,
                )?;
            }
            out.set_item(key, d)?;
        }
    }
    Ok(out)
}
