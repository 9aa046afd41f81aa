//! Where `mcopt train` writes (`--out DIR` or the run file's `output:`, else
//! out/<run file stem>/): every output path checked writable before a run starts; and what it
//! writes at the end, atomically: `params.yaml`, `plot.svg`, the checkpoint and, last,
//! `report.json` ([`write_all`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::config::{self, RunFile};
use crate::diag::{Diag, Diags, SourceFile, Span};
use crate::registry::Evaluations;
use crate::report::plot::{self, Curves};
use crate::solve::{Checkpoint, Status};

use super::Session;

/// Output paths; `None` is not written.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub params: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
}

impl Outputs {
    /// `DIR/{params.yaml, trace.csv, plot.svg, report.json, checkpoint.json}` with `--out DIR`,
    /// else the run file's `output:` paths (relative to the current directory), else
    /// `DIR = out/<run file stem>` under the current directory.
    pub fn new(out: Option<&str>, run: &RunFile) -> Outputs {
        match out {
            Some(dir) => Outputs::in_dir(Path::new(dir)),
            None if run.output.any() => Outputs {
                params: run.output.params.clone(),
                trace: run.output.trace.clone(),
                plot: run.output.plot.clone(),
                report: run.output.json.clone(),
                checkpoint: run.output.checkpoint.clone(),
            },
            None => Outputs::in_dir(&default_dir(run)),
        }
    }

    /// [`Outputs::new`], refused before anything runs when `--out` is empty or an output
    /// cannot be written: a file where a directory is needed, a directory where a file is, or
    /// a directory in which no file can be created (probed by creating and removing one).
    pub fn checked(out: Option<&str>, run: &RunFile) -> Result<Outputs, Diags> {
        if out.is_some_and(|d| d.trim().is_empty()) {
            return Err(Diag::new("mcopt::train::out", "`--out` is empty")
                .in_file("<command line>")
                .help("give `--out DIR`, or omit it to write into out/<run file stem>/")
                .into());
        }
        let outputs = Outputs::new(out, run);
        // A path from the run file's `output:` is reported at its key's line.
        let place = |key: &'static str| -> Option<(Arc<SourceFile>, Span)> {
            let span = run
                .output
                .spans
                .get(key)
                .copied()
                .filter(|_| out.is_none())?;
            Some((Arc::clone(&run.source), span))
        };
        let mut diags = Diags::new();
        if let Some(dir) = out {
            if let Err(why) = writable_dir(Path::new(dir)) {
                diags.push(out_diag(Path::new(dir), &why.to_string(), None));
                return Err(diags);
            }
        }
        for (key, path) in outputs.all() {
            if let Err(why) = writable_file(path) {
                diags.push(out_diag(path, &why.to_string(), place(key)));
            }
        }
        diags.finish(outputs)
    }

    /// Every configured output with the run file's `output:` key that names it.
    fn all(&self) -> Vec<(&'static str, &Path)> {
        [
            ("params", &self.params),
            ("trace", &self.trace),
            ("plot", &self.plot),
            ("json", &self.report),
            ("checkpoint", &self.checkpoint),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_deref().map(|p| (k, p)))
        .collect()
    }

    fn in_dir(d: &Path) -> Outputs {
        Outputs {
            params: Some(d.join("params.yaml")),
            trace: Some(d.join("trace.csv")),
            plot: Some(d.join("plot.svg")),
            report: Some(d.join("report.json")),
            checkpoint: Some(d.join("checkpoint.json")),
        }
    }
}

/// `out/<run file stem>` (relative to the current directory).
fn default_dir(run: &RunFile) -> PathBuf {
    let stem = run
        .path
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    Path::new("out").join(stem)
}

/// The refusal of an output path, at the run file's `output:` key when it comes from there.
fn out_diag(path: &Path, why: &str, place: Option<(Arc<SourceFile>, Span)>) -> Diag {
    let d = Diag::new(
        "mcopt::train::out",
        format!("cannot write the output `{}`: {why}", path.display()),
    )
    .help("choose another place with --out DIR or the run file's `output:`; nothing was trained");
    match place {
        Some((source, span)) => d.at(&source, span, "this output"),
        None => d.in_file(path.display().to_string()),
    }
}

/// Why an output cannot be written where it is asked for; its `Display` is the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unwritable {
    EmptyPath,
    IsADirectory,
    /// An ancestor that exists and is not a directory.
    NotADirectory(PathBuf),
    /// The nearest existing directory refused a new file (the OS error).
    Refused(PathBuf, String),
}

impl std::fmt::Display for Unwritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unwritable::EmptyPath => f.write_str("the path is empty"),
            Unwritable::IsADirectory => f.write_str("it is a directory"),
            Unwritable::NotADirectory(p) => write!(f, "`{}` is not a directory", p.display()),
            Unwritable::Refused(p, e) => write!(f, "cannot write into `{}`: {e}", p.display()),
        }
    }
}

/// An output file can be written at `path`: it is not a directory, and its directory is
/// (or can be created as) a writable directory.
fn writable_file(path: &Path) -> Result<(), Unwritable> {
    if path.as_os_str().is_empty() {
        return Err(Unwritable::EmptyPath);
    }
    if path.is_dir() {
        return Err(Unwritable::IsADirectory);
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => writable_dir(dir),
        None => writable_dir(Path::new(".")),
    }
}

/// `dir` is a directory, or can be created below its nearest existing ancestor, and a file
/// can be created there (probed: created and removed at once).
fn writable_dir(dir: &Path) -> Result<(), Unwritable> {
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(Unwritable::NotADirectory(existing.to_path_buf())),
            Err(_) => match existing.parent() {
                Some(p) if !p.as_os_str().is_empty() => existing = p,
                _ => {
                    existing = Path::new(".");
                    break;
                }
            },
        }
    }
    let probe = existing.join(format!(".mcopt-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Unwritable::Refused(
            existing.to_path_buf(),
            crate::input::os_error(&e),
        )),
    }
}

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
    pub best: Option<crate::solve::Best>,
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
        .unwrap_or(crate::solve::checkpoint::NO_ROW);
    let mut written = BTreeMap::new();
    if let Some(p) = &outputs.params {
        let specs = session.param_specs();
        let mut values = Vec::with_capacity(specs.len());
        let mut at = 0;
        for s in &specs {
            values.push(state.x[at..at + s.len()].to_vec());
            at += s.len();
        }
        crate::atomic::write(p, config::write_point(&specs, &values).as_bytes())?;
        written.insert("params", p.display().to_string());
    }
    if let Some(p) = &outputs.trace {
        written.insert("trace", p.display().to_string());
    }
    if let Some(p) = &outputs.plot {
        let title = format!("{} ({})", cp.solver, session.model_path);
        let svg = plot::loss_svg(recorded.0, &title).map_err(|e| {
            Diags::from(
                Diag::new("mcopt::train::plot", e.to_string()).in_file(p.display().to_string()),
            )
        })?;
        crate::atomic::write(p, &svg)?;
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
        best: state.best.as_ref().map(crate::solve::Best::of),
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
        crate::atomic::write_with(p, |f| cp.write_to(f))?;
    }
    if let Some(p) = &outputs.report {
        let mut bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
        bytes.push(b'\n');
        crate::atomic::write(p, &bytes)?;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
