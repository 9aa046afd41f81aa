//! What `mcopt train` writes (where: `mcopt::session::outputs`): the progress bar (indicatif,
//! on a terminal only), and the outputs, each written atomically (temporary
//! file in the same directory, fsync, rename): `params.yaml`, `plot.svg`, the checkpoint and,
//! last, `report.json` (`trace.csv` is appended to as the run goes: `mcopt::session::record`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mcopt::config;
use mcopt::diag::{Diag, Diags};
use mcopt::registry::Evaluations;
use mcopt::report::plot::{self, Curves};
use mcopt::solve::{Checkpoint, Observer, Row, Status};
use serde::Serialize;

use mcopt::session::outputs::Outputs;
use mcopt::session::Session;

/// `report.json` (and `--json` on stdout).
#[derive(Debug, Serialize)]
pub struct Report {
    pub status: &'static str,
    pub solver: String,
    /// Iterations of the saved point (for `diverged`, the last finite iterate).
    pub iterations: u64,
    /// `diverged`: the iteration whose iterate was not finite (`iterations` + 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged_at: Option<u64>,
    /// Why the run stopped, beyond its status: the solver's reason for `stalled` (ρ at its
    /// cap, steps rejected in a row, a step under its floor), what was not finite for
    /// `diverged`, the measure under `tol` for `converged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub objective: f64,
    pub train_loss: f64,
    pub test_loss: Option<f64>,
    /// The iterate with the smallest objective of the run (docs/run-files.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<mcopt::solve::Best>,
    pub seconds: f64,
    pub seconds_per_iteration: f64,
    /// Time inside solver steps only, per iteration (the epoch time benchmarks compare).
    pub step_seconds_per_iteration: f64,
    /// The solver's stationarity measure at the last step.
    pub stationarity: Option<f64>,
    pub evaluations: Evaluations,
    pub seed: u64,
    pub outputs: BTreeMap<&'static str, String>,
    /// The solver's own final metrics.
    #[serde(flatten)]
    pub metrics: BTreeMap<String, Option<f64>>,
    /// SRPA (solvers reporting an `accepted` metric): the numbers of accepted and rejected
    /// steps (the final `feasibility` is one of its metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<u64>,
    /// The d-stationarity certificate of the final point (form, order and tolerance from the
    /// run file's `validate:`), as `mcopt stationarity --json` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<serde_json::Value>,
}

/// The progress bar: iteration, objective, train and test loss, time left.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar drawn on stderr only when `show` and stderr is a terminal (hidden in CI and pipes).
    pub fn new(max_iter: u64, show: bool) -> Progress {
        let target = if show && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(max_iter), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30} {pos}/{len} iterations  {msg}  [{elapsed_precise} elapsed, {eta} left]",
        ) {
            bar.set_style(style);
        }
        Progress { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn row(&mut self, row: &Row) {
        let test = row
            .test_loss
            .map_or(String::new(), |t| format!("  test {t:.6e}"));
        self.bar.set_position(row.iter);
        self.bar.set_message(format!(
            "objective {:.6e}  train {:.6e}{test}",
            row.objective, row.train_loss
        ));
    }
}

/// The certificate of the final point, given the written `params.yaml`; `None` when not wanted.
pub type Certify<'a> = &'a dyn Fn(&Path) -> Result<Option<serde_json::Value>, Diags>;

/// Write every configured output (the trace was written as the run went; `recorded` is what the
/// recorder kept: the curves and the accepted and rejected steps); the report
/// is returned for `--json` and the summary. When `params.yaml` is written, `certify` adds the
/// final point's certificate to the report. report.json is written last, also when the
/// certificate fails (the error is returned after it).
pub fn write_all(
    outputs: &Outputs,
    session: &Session,
    cp: &Checkpoint,
    recorded: (&Curves, (Option<u64>, Option<u64>)),
    (status, reason): (Status, Option<&str>),
    certify: Certify<'_>,
) -> Result<Report, Diags> {
    let state = &cp.state;
    let last = state
        .last
        .clone()
        .unwrap_or(mcopt::solve::checkpoint::NO_ROW);
    let mut written = BTreeMap::new();
    if let Some(p) = &outputs.params {
        let specs = session.param_specs();
        let mut values = Vec::with_capacity(specs.len());
        let mut at = 0;
        for s in &specs {
            values.push(state.x[at..at + s.len()].to_vec());
            at += s.len();
        }
        mcopt::atomic::write(p, config::write_point(&specs, &values).as_bytes())?;
        written.insert("params", p.display().to_string());
    }
    if let Some(p) = &outputs.trace {
        written.insert("trace", p.display().to_string());
    }
    if let Some(p) = &outputs.plot {
        let title = format!("{} ({})", cp.solver, session.model_path);
        let svg = plot::loss_svg(recorded.0, &title).map_err(|e| {
            Diags::from(Diag::new("mcopt::train::plot", e).in_file(p.display().to_string()))
        })?;
        mcopt::atomic::write(p, &svg)?;
        written.insert("plot", p.display().to_string());
    }
    if let Some(p) = &outputs.checkpoint {
        written.insert("checkpoint", p.display().to_string());
    }
    if let Some(p) = &outputs.report {
        written.insert("report", p.display().to_string());
    }
    let iters = state.iter.max(1) as f64;
    let (certificate, failed) = match &outputs.params {
        Some(p) => match certify(p) {
            Ok(c) => (c, None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let report = Report {
        status: status.as_str(),
        solver: cp.solver.clone(),
        iterations: state.iter,
        diverged_at: (status == Status::Diverged).then_some(state.iter + 1),
        reason: reason.map(str::to_string),
        objective: last.objective,
        train_loss: last.train_loss,
        test_loss: last.test_loss,
        best: state.best.as_ref().map(mcopt::solve::Best::of),
        seconds: state.seconds,
        seconds_per_iteration: state.seconds / iters,
        step_seconds_per_iteration: state.step_seconds / iters,
        stationarity: Some(last.stationarity).filter(|v| !v.is_nan()),
        evaluations: state.evaluations,
        seed: cp.seed,
        outputs: written,
        metrics: cp
            .metrics
            .iter()
            .zip(last.metrics.iter().chain(std::iter::repeat(&f64::NAN)))
            .map(|(k, v)| (k.clone(), Some(*v).filter(|v| !v.is_nan())))
            .collect(),
        accepted: None,
        rejected: None,
        certificate,
    };
    let (accepted, rejected) = recorded.1;
    let mut report = Report {
        accepted,
        rejected,
        ..report
    };
    if accepted.is_some() {
        report.metrics.remove("accepted");
    }
    // a solver's own `objective` metric is the report's objective already
    report.metrics.remove("objective");
    if let Some(p) = &outputs.checkpoint {
        mcopt::atomic::write(p, &cp.to_bytes())?;
    }
    if let Some(p) = &outputs.report {
        let mut bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
        bytes.push(b'\n');
        mcopt::atomic::write(p, &bytes)?;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// The certificate of the final point in a few lines: each verdict with its method and, when
/// not stationary, the slope or curvature of its witness (the whole witness is in report.json).
fn certificate_lines(c: &serde_json::Value) -> String {
    let form = c["form"].as_str().unwrap_or("p");
    let mut s = format!(
        "certificate of the final point, form ({}):\n",
        form.to_uppercase()
    );
    for key in ["first_order", "second_order"] {
        let v = &c[key];
        let Some(status) = v["status"].as_str() else {
            continue;
        };
        s.push_str(&format!(
            "  {key:<13} {status}  (method {}, {})",
            v["method"].as_str().unwrap_or("?"),
            mcopt::text::plural(
                usize::try_from(v["active_kinks"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX),
                "active kink",
                "active kinks"
            )
        ));
        if let Some(x) = v["slope"].as_f64() {
            s.push_str(&format!(
                ", slope {x:.6e} along the witness (in the report)"
            ));
        }
        if let Some(x) = v["curvature"].as_f64() {
            s.push_str(&format!(
                ", curvature {x:.6e} along the witness (in the report)"
            ));
        }
        if let Some(r) = v["reason"].as_str() {
            s.push_str(&format!("; {r}"));
        }
        s.push('\n');
    }
    s
}

/// The text summary printed after a run (without `--json`).
pub fn summary(r: &Report) -> String {
    let mut s = format!(
        "{}: {} after {} iterations ({:.3} s, {:.3e} s per iteration)\n",
        r.solver, r.status, r.iterations, r.seconds, r.seconds_per_iteration
    );
    if let Some(k) = r.diverged_at {
        s.push_str(&format!(
            "iteration {k} was not finite; the outputs hold iteration {}\n",
            r.iterations
        ));
    }
    if let Some(why) = &r.reason {
        s.push_str(&format!("reason      {why}\n"));
    }
    s.push_str(&format!("objective   {:.12}\n", r.objective));
    s.push_str(&format!("train_loss  {:.12}\n", r.train_loss));
    if let Some(t) = r.test_loss {
        s.push_str(&format!("test_loss   {t:.12}\n"));
    }
    for (name, path) in &r.outputs {
        s.push_str(&format!("{name:<11} {path}\n"));
    }
    if let Some(c) = &r.certificate {
        s.push_str(&certificate_lines(c));
    }
    s
}
