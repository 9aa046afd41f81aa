//! The record `mcopt train` keeps as a run goes, in memory bounded however long it runs: the
//! trace appended to `trace.csv` (buffered, flushed at every checkpoint), the bucketed curves
//! of the plot, the counts the report needs, and the periodic checkpoints (every 60 s by
//! default, or the run file's `checkpoint: {every_seconds, every_iterations}`). On `--resume`
//! the trace file is cut back to the rows the checkpoint counts and continued.
//!
//! Also the rule that an output directory is never left mixed: a fresh run first removes the
//! previous run's outputs ([`clear_previous`]), and report.json is written last, whatever the
//! outcome ([`write_failure`] for a run that failed).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::CheckpointEvery;
use crate::diag::{Diag, Diags};
use crate::report::plot::Curves;
use crate::report::trace;
use crate::solve::checkpoint::fnv1a;
use crate::solve::{Checkpoint, Fingerprint, Observer, Row, RunState, TraceMark};

use super::outputs::Outputs;

/// What every checkpoint of a run repeats: the solver, its options, the seed, the inputs'
/// fingerprints and the metric names.
#[derive(Clone, Debug)]
pub struct RunIdentity {
    pub solver: String,
    pub options: Vec<f64>,
    pub seed: u64,
    pub fingerprint: Fingerprint,
    pub metrics: Vec<String>,
}

impl RunIdentity {
    /// The checkpoint of `state` with the solver's saved state.
    pub fn checkpoint<S>(
        &self,
        state: &RunState,
        solver_state: S,
        trace: Option<TraceMark>,
    ) -> Checkpoint<S> {
        Checkpoint {
            solver: self.solver.clone(),
            options: self.options.clone(),
            seed: self.seed,
            fingerprint: self.fingerprint,
            metrics: self.metrics.clone(),
            state: state.clone(),
            solver_state,
            trace,
        }
    }
}

/// The trace file being appended to.
struct TraceFile {
    path: PathBuf,
    out: BufWriter<File>,
    rows: u64,
    /// The hash of the last row's text, when `line` does not hold that row (a resumed trace).
    last_line: u64,
    /// Iterations not written (`trace: {every: k}`).
    skipped: u64,
    /// The last row written, with its newline (kept, so a row allocates nothing and is hashed
    /// only when a checkpoint needs it).
    line: Vec<u8>,
}

impl TraceFile {
    fn last_hash(&self) -> u64 {
        match self.line.split_last() {
            Some((_, text)) => fnv1a(text),
            None => self.last_line,
        }
    }
}

/// The trace's write buffer: rows are written to the file in blocks of this many bytes.
const TRACE_BUFFER: usize = 1 << 16;

/// The periodic checkpoint: where, how often, and when the last one was taken.
struct Periodic {
    path: PathBuf,
    every: CheckpointEvery,
    since: Instant,
}

/// The observer that records a run (see the module docs).
pub struct Recorder {
    id: RunIdentity,
    trace: Option<TraceFile>,
    periodic: Option<Periodic>,
    /// The plot's curves.
    pub curves: Curves,
    /// Index of the solver's `accepted` metric, if it has one.
    accepted_metric: Option<usize>,
    /// Accepted and rejected steps (solvers with an `accepted` metric).
    pub accepted: u64,
    pub rejected: u64,
    /// The first failed write of the trace (reported at the next checkpoint or at the end).
    error: Option<String>,
}

impl Recorder {
    /// The record of a fresh run: the trace file (if configured) created with its header.
    pub fn start(
        id: RunIdentity,
        outputs: &Outputs,
        every: CheckpointEvery,
    ) -> Result<Recorder, Diags> {
        let mut rec = Recorder::new(id, outputs, every);
        if let Some(path) = &outputs.trace {
            let file = create(path)?;
            let mut out = BufWriter::with_capacity(TRACE_BUFFER, file);
            let header = trace::header(&rec.id.metrics);
            writeln!(out, "{header}").map_err(|e| write_error(path, &e))?;
            rec.trace = Some(TraceFile {
                path: path.clone(),
                out,
                rows: 0,
                last_line: 0,
                skipped: 0,
                line: Vec::new(),
            });
        }
        Ok(rec)
    }

    /// The record of a resumed run: the trace file cut back to the `mark` of the checkpoint
    /// (its rows replayed into the curves and counts) and continued.
    pub fn resume(
        id: RunIdentity,
        outputs: &Outputs,
        every: CheckpointEvery,
        mark: Option<TraceMark>,
    ) -> Result<Recorder, Diags> {
        let mut rec = Recorder::new(id, outputs, every);
        let (Some(path), Some(mark)) = (&outputs.trace, mark) else {
            return match &outputs.trace {
                // No trace was kept before: this part of the run starts a new one.
                Some(_) => Recorder::start(rec.id, outputs, every),
                None => Ok(rec),
            };
        };
        let end = rec.replay(path, mark)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| write_error(path, &e))?;
        file.set_len(end)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(|_| ()))
            .map_err(|e| write_error(path, &e))?;
        rec.trace = Some(TraceFile {
            path: path.clone(),
            out: BufWriter::with_capacity(TRACE_BUFFER, file),
            rows: mark.rows,
            last_line: mark.last_line,
            skipped: mark.skipped,
            line: Vec::new(),
        });
        Ok(rec)
    }

    fn new(id: RunIdentity, outputs: &Outputs, every: CheckpointEvery) -> Recorder {
        let accepted_metric = id.metrics.iter().position(|m| m == "accepted");
        Recorder {
            id,
            trace: None,
            periodic: outputs.checkpoint.as_ref().map(|p| Periodic {
                path: p.clone(),
                every,
                since: Instant::now(),
            }),
            curves: Curves::new(),
            accepted_metric,
            accepted: 0,
            rejected: 0,
            error: None,
        }
    }

    /// Read the header and the first `mark.rows` rows of the trace at `path` into the curves
    /// and counts (the mark's counts when rows were skipped); the byte offset where they end.
    fn replay(&mut self, path: &Path, mark: TraceMark) -> Result<u64, Diags> {
        let shown = path.display().to_string();
        let refuse = |msg: String| -> Diags {
            Diag::new("mcopt::train::resume", msg)
                .in_file(&shown)
                .help("the trace must be the one written with the checkpoint; start again without --resume")
                .into()
        };
        let file = File::open(path)
            .map_err(|e| refuse(format!("cannot read the trace to continue it: {e}")))?;
        let mut lines = BufReader::new(file);
        let mut buf = String::new();
        let mut offset = 0u64;
        let mut last = None;
        let accepted_col = trace::column(&self.id.metrics, "accepted");
        for k in 0..=mark.rows {
            buf.clear();
            let n = lines
                .read_line(&mut buf)
                .map_err(|e| refuse(format!("cannot read the trace to continue it: {e}")))?;
            if n == 0 || !buf.ends_with('\n') {
                return Err(refuse(format!(
                    "the trace has {} complete rows, the checkpoint counts {}",
                    k.saturating_sub(1),
                    mark.rows
                )));
            }
            offset += n as u64;
            let text = buf.trim_end_matches('\n');
            if k == 0 {
                if text != trace::header(&self.id.metrics) {
                    return Err(refuse("the trace's header is not this solver's".into()));
                }
                continue;
            }
            let Some(v) = trace::parse_line(text) else {
                return Err(refuse(format!("row {k} of the trace is not numbers")));
            };
            let at = |i: usize| v.get(i).copied().flatten();
            let iter = at(0).map_or(0, |i| i as u64);
            self.curves.push(iter, [at(1), at(2), at(3)]);
            if iter > 0 && mark.skipped == 0 {
                self.tally(accepted_col.and_then(at));
            }
            last = Some(fnv1a(text.as_bytes()));
        }
        if mark.skipped > 0 {
            (self.accepted, self.rejected) = (mark.accepted, mark.rejected);
        }
        if mark.rows > 0 && last != Some(mark.last_line) {
            return Err(refuse(format!(
                "row {} of the trace is not the one the checkpoint was written with",
                mark.rows
            )));
        }
        Ok(offset)
    }

    fn tally(&mut self, accepted: Option<f64>) {
        if accepted == Some(1.0) {
            self.accepted += 1;
        } else if accepted == Some(0.0) {
            self.rejected += 1;
        }
    }

    /// The trace as written so far (`None`: no trace).
    pub fn mark(&self) -> Option<TraceMark> {
        self.trace.as_ref().map(|t| TraceMark {
            rows: t.rows,
            last_line: t.last_hash(),
            skipped: t.skipped,
            accepted: if t.skipped > 0 { self.accepted } else { 0 },
            rejected: if t.skipped > 0 { self.rejected } else { 0 },
        })
    }

    /// Accepted and rejected steps, for solvers with an `accepted` metric.
    pub fn steps(&self) -> (Option<u64>, Option<u64>) {
        match self.accepted_metric {
            Some(_) => (Some(self.accepted), Some(self.rejected)),
            None => (None, None),
        }
    }

    /// Write the buffered trace rows to the file and to the disk.
    pub fn flush(&mut self) -> Result<(), Diags> {
        if let Some(e) = self.error.take() {
            let path = self
                .trace
                .as_ref()
                .map_or(String::new(), |t| t.path.display().to_string());
            return Err(Diag::new("mcopt::io::write", e).in_file(path).into());
        }
        if let Some(t) = &mut self.trace {
            t.out
                .flush()
                .and_then(|()| t.out.get_ref().sync_data())
                .map_err(|e| write_error(&t.path, &e))?;
        }
        Ok(())
    }

    fn take_checkpoint(&mut self, state: &RunState, solver_state: &[u8]) -> Result<(), Diags> {
        self.flush()?;
        let Some(p) = &self.periodic else {
            return Ok(());
        };
        let cp = self.id.checkpoint(state, solver_state, self.mark());
        crate::atomic::write_with(&p.path, |f| cp.write_to(f))?;
        Ok(())
    }
}

impl Recorder {
    fn count_step(&mut self, row: &Row) {
        if row.iter > 0 {
            let flag = self
                .accepted_metric
                .and_then(|i| row.metrics.get(i).copied());
            self.tally(flag);
        }
    }
}

impl Observer for Recorder {
    fn row(&mut self, row: &Row) {
        self.curves.push_row(row);
        self.count_step(row);
        let Some(t) = &mut self.trace else {
            return;
        };
        t.line.clear();
        trace::write_line(&mut t.line, row, &self.id.metrics);
        t.line.push(b'\n');
        // After a failed write no checkpoint is taken (`flush` reports the error first), so
        // the mark of an unwritten row is never used.
        if let Err(e) = t.out.write_all(&t.line) {
            self.error.get_or_insert(e.to_string());
            return;
        }
        t.rows += 1;
    }

    fn skipped(&mut self, row: &Row) {
        self.count_step(row);
        if let Some(t) = &mut self.trace {
            t.skipped += 1;
        }
    }

    fn wants_checkpoint(&self, iter: u64) -> bool {
        let Some(p) = &self.periodic else {
            return false;
        };
        p.every.every_iterations.is_some_and(|k| iter % k == 0)
            || p.every
                .every_seconds
                .is_some_and(|s| p.since.elapsed().as_secs_f64() >= s)
    }

    fn checkpoint(&mut self, state: &RunState, solver_state: &[u8]) -> Result<(), String> {
        self.take_checkpoint(state, solver_state).map_err(|d| {
            d.iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        if let Some(p) = &mut self.periodic {
            p.since = Instant::now();
        }
        Ok(())
    }
}

/// Remove the outputs of a previous run (params, trace, plot, report, checkpoint) before a
/// fresh run writes its own, so the directory never holds files of two runs.
pub fn clear_previous(outputs: &Outputs) -> Result<(), Diags> {
    let all = [
        &outputs.params,
        &outputs.trace,
        &outputs.plot,
        &outputs.report,
        &outputs.checkpoint,
    ];
    for path in all.into_iter().flatten() {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Diag::new(
                    "mcopt::io::write",
                    format!("cannot remove the previous run's output: {e}"),
                )
                .in_file(path.display().to_string())
                .into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// report.json of a run that failed (an error, not a status): the status `failed`, the
/// iterations done and the error; the trace so far is flushed.
pub fn write_failure(
    outputs: &Outputs,
    rec: &mut Recorder,
    state: &RunState,
    error: &str,
) -> Result<(), Diags> {
    rec.flush()?;
    let Some(path) = &outputs.report else {
        return Ok(());
    };
    let report = serde_json::json!({
        "status": "failed",
        "solver": rec.id.solver,
        "iterations": state.iter,
        "seed": rec.id.seed,
        "error": error,
    });
    let mut bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
    bytes.push(b'\n');
    crate::atomic::write(path, &bytes)?;
    Ok(())
}

/// Create (or empty) the trace file, with its directory.
fn create(path: &Path) -> Result<File, Diags> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_error(path, &e))?;
    }
    File::create(path).map_err(|e| write_error(path, &e))
}

fn write_error(path: &Path, e: &std::io::Error) -> Diags {
    Diag::new("mcopt::io::write", format!("cannot write the trace: {e}"))
        .in_file(path.display().to_string())
        .into()
}
