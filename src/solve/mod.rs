//! The executor: the loop around a step-wise solver, its stop rules (iterations, the solver's
//! stationarity measure, a time limit, an interrupt flag), the observers (trace, progress,
//! checkpoints) and the resumable run state.
//!
//! Invariant: `solve` never prints and never touches files; observers and the CLI do.

pub mod batch;
pub mod checkpoint;
pub mod init;
pub mod problem;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::registry::{Evaluations, SolverError, SolverInstance, SolverProblem, StepSignal};

pub use batch::{Batcher, Draws, Layout};
pub use checkpoint::{Checkpoint, CheckpointError, Fingerprint, TraceMark};
pub use init::{initial_point, Scheme};
pub use problem::{GraphProblem, Measures};

/// When the host stops a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StopRules {
    /// Iterations (counted from the start of the run, also across a resume).
    pub max_iter: u64,
    /// Stop as converged when the solver's stationarity measure is at most this.
    pub tol: Option<f64>,
    /// Stop after this many seconds of this process (a status, not an error).
    pub max_seconds: Option<f64>,
}

/// How a run ended. Non-convergence is a status, not an error. `Diverged` leaves the run
/// state at the last iterate whose objective was finite (see [`Executor::run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Converged,
    MaxIter,
    Interrupted,
    Diverged,
    /// The solver could make no further progress (e.g. a line search found no decrease).
    Stalled,
    /// `max_seconds` ran out.
    TimeLimit,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Converged => "converged",
            Status::MaxIter => "max_iter",
            Status::Interrupted => "interrupted",
            Status::Diverged => "diverged",
            Status::Stalled => "stalled",
            Status::TimeLimit => "time_limit",
        }
    }
}

/// One trace row: the iterate after `iter` steps (row 0 is the start).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub iter: u64,
    pub objective: f64,
    pub train_loss: f64,
    pub test_loss: Option<f64>,
    /// Wall-clock seconds since row 0 was measured (summed across resumes).
    pub seconds: f64,
    /// The solver's stationarity measure from this step (NaN for row 0 and when it has none).
    pub stationarity: f64,
    /// The solver's metrics from this step (NaN for row 0).
    pub metrics: Vec<f64>,
}

/// Everything a resumed run needs besides the solver's own state: the iterate, the newest trace
/// row, the clocks and the evaluation counts. The trace itself is not kept (memory stays
/// bounded however long the run): observers see every row as it is made.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    pub iter: u64,
    pub x: Vec<f64>,
    /// The row of iteration `iter` (`None` before row 0 is measured).
    pub last: Option<Row>,
    /// The row with the smallest objective so far (the trace's `objective`: the solver's
    /// `objective` metric when it reports one, else f); the earliest among equals.
    pub best: Option<Row>,
    pub seconds: f64,
    /// Seconds spent inside solver steps only (the time per epoch that benchmarks compare).
    pub step_seconds: f64,
    pub evaluations: Evaluations,
}

impl RunState {
    /// A fresh run at `x0`.
    pub fn start(x0: Vec<f64>) -> RunState {
        RunState {
            iter: 0,
            x: x0,
            last: None,
            best: None,
            seconds: 0.0,
            step_seconds: 0.0,
            evaluations: Evaluations::default(),
        }
    }
}

/// A problem the executor can train: the solver's problem, plus the host's own measurements
/// at an iterate (objective, train and test loss) and the epoch number (minibatch draws).
pub trait TrainProblem: SolverProblem {
    /// Called before step `epoch` (0-based); minibatch draws depend only on it and the seed.
    fn begin_epoch(&mut self, _epoch: u64) {}
    fn measure(&mut self, x: &[f64]) -> Result<Measures, String>;
    /// The objective and the training loss at `x`, for an iterate whose row is not a trace row
    /// (`trace: {every: k}`): the test loss may be left out (`None`). Default: [`measure`].
    ///
    /// [`measure`]: TrainProblem::measure
    fn measure_train(&mut self, x: &[f64]) -> Result<Measures, String> {
        self.measure(x)
    }
    /// The test loss at `x` (`None` without a test split), for an iterate measured by
    /// [`measure_train`](TrainProblem::measure_train) that becomes a trace row after all (the
    /// final iterate, a checkpoint's, the best one). Default: [`measure`]'s.
    ///
    /// [`measure`]: TrainProblem::measure
    fn test_loss(&mut self, x: &[f64]) -> Result<Option<f64>, String> {
        self.measure(x).map(|m| m.test_loss)
    }
}

/// Watches a run. Every method has a default that does nothing.
pub trait Observer {
    /// After each trace row (row 0 included).
    fn row(&mut self, _row: &Row) {}
    /// For each iteration whose row is not a trace row (`trace: {every: k}` with k > 1), once
    /// the next row is made: its test loss is not measured, and it is not written. Every row
    /// reaches the observers once, by [`Observer::row`] or by this.
    fn skipped(&mut self, _row: &Row) {}
    /// Whether a checkpoint should be taken after iteration `iter`.
    fn wants_checkpoint(&self, _iter: u64) -> bool {
        false
    }
    /// A checkpoint taken because [`Observer::wants_checkpoint`] said so.
    fn checkpoint(&mut self, _state: &RunState, _solver_state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// The best iterate of a run as `report.json` shows it (see [`RunState::best`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Best {
    pub iteration: u64,
    pub objective: f64,
    pub train_loss: f64,
    pub test_loss: Option<f64>,
}

impl Best {
    pub fn of(row: &Row) -> Best {
        Best {
            iteration: row.iter,
            objective: row.objective,
            train_loss: row.train_loss,
            test_loss: row.test_loss,
        }
    }
}

/// Runs a solver instance to a stop rule.
pub struct Executor<'a> {
    pub stop: StopRules,
    /// Set (e.g. by a Ctrl-C handler) to finish the current iteration and stop.
    pub interrupt: Option<&'a AtomicBool>,
    pub observers: Vec<&'a mut dyn Observer>,
    /// Why the last [`Executor::run`] stopped, beyond its status (the solver's reason for
    /// `stalled`, what diverged, the measure under `tol`); set by `run`.
    pub reason: Option<String>,
}

/// What went wrong in a run.
#[derive(Debug)]
pub enum RunError {
    Solver(SolverError),
    /// The host's measurement at an iterate failed (objective, losses).
    Measure(String),
    /// An observer failed to take a checkpoint.
    Checkpoint(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Solver(e) => write!(f, "{e}"),
            RunError::Measure(e) => write!(f, "evaluating the iterate failed: {e}"),
            RunError::Checkpoint(e) => write!(f, "writing a checkpoint failed: {e}"),
        }
    }
}

impl From<SolverError> for RunError {
    fn from(e: SolverError) -> RunError {
        RunError::Solver(e)
    }
}

/// What [`Executor::run_every`] keeps between iterations besides the run state.
struct Track {
    /// A trace row every this many iterations.
    every: u64,
    /// Whether the newest row (`RunState::last`) was given to the observers as a trace row.
    traced: bool,
    /// Whether the run has a test loss (row 0's, or the resumed state's newest row's).
    has_test: bool,
    /// The best row's test loss is not measured yet: its iterate is `best_x`.
    best_pending: bool,
    best_x: Vec<f64>,
    /// The row replaced by the newest one, whose buffers the next row reuses.
    spare: Option<Row>,
}

/// What a step reported, for its row.
struct Step<'m> {
    stationarity: f64,
    metrics: &'m [f64],
    seconds: f64,
}

impl Executor<'_> {
    /// Step `solver` from `state` until a stop rule fires; `state` is updated in place (so the
    /// caller can checkpoint it afterwards, whatever the status). Every iterate is a trace row.
    pub fn run(
        &mut self,
        problem: &mut dyn TrainProblem,
        solver: &mut SolverInstance<'_>,
        state: &mut RunState,
    ) -> Result<Status, RunError> {
        self.run_every(problem, solver, state, 1)
    }

    /// [`Executor::run`] with a trace row, and the test loss, every `every` iterations
    /// (`trace: {every: k}`): rows 0, k, 2k, … and always the final iterate's and the one of
    /// each checkpoint, so a checkpoint's newest row is a trace row (a resumed `state`'s must
    /// be). The other iterations are measured without the test loss and given to
    /// [`Observer::skipped`]; the best iterate is followed at every iteration, and its test
    /// loss measured when it is needed (at a checkpoint and at the end). `every` ≤ 1 is
    /// [`Executor::run`].
    pub fn run_every(
        &mut self,
        problem: &mut dyn TrainProblem,
        solver: &mut SolverInstance<'_>,
        state: &mut RunState,
        every: u64,
    ) -> Result<Status, RunError> {
        let mut track = Track {
            every: every.max(1),
            traced: true,
            has_test: false,
            best_pending: false,
            best_x: Vec::new(),
            spare: None,
        };
        let status = self.steps(problem, solver, state, &mut track)?;
        self.settle(problem, state, &mut track)?;
        Ok(status)
    }

    fn steps(
        &mut self,
        problem: &mut dyn TrainProblem,
        solver: &mut SolverInstance<'_>,
        state: &mut RunState,
        track: &mut Track,
    ) -> Result<Status, RunError> {
        self.reason = None;
        // `max_seconds` counts from here, the trace's clock from row 0 (below).
        let started = Instant::now();
        let mut clock = started;
        let base = state.seconds;
        let base_counts = state.evaluations;
        let own = solver.info().metrics.iter().position(|m| m == "objective");
        if state.last.is_none() {
            let nan = vec![f64::NAN; solver.info().metrics.len()];
            let step = Step {
                stationarity: f64::NAN,
                metrics: &nan,
                seconds: base,
            };
            let row = measure(problem, state, &step, own, true, None)?;
            self.record(state, row, true, track);
            // Row 0 is at `base` seconds: the clock starts once it is measured and recorded,
            // so the first pass's one-time work (buffers, the evaluator's plan) and the first
            // trace row's are not counted as iterations.
            clock = Instant::now();
        }
        track.has_test = state.last.as_ref().is_some_and(|r| r.test_loss.is_some());
        // The last iterate whose objective was finite, restored when a step diverges.
        let mut last_finite = state.x.clone();
        loop {
            if let Some(status) = self.should_stop(state, started) {
                return Ok(status);
            }
            last_finite.copy_from_slice(&state.x);
            problem.begin_epoch(state.iter);
            let t0 = Instant::now();
            let report = solver.step(problem, &mut state.x)?;
            let t1 = Instant::now();
            state.step_seconds += t1.duration_since(t0).as_secs_f64();
            state.iter += 1;
            state.evaluations = add(base_counts, solver.evaluations());
            state.seconds = base + t1.duration_since(clock).as_secs_f64();
            let traced = state.iter % track.every == 0;
            let step = Step {
                stationarity: report.stationarity,
                metrics: &report.metrics,
                seconds: state.seconds,
            };
            let row = match measure(problem, state, &step, own, traced, track.spare.take()) {
                Ok(row) => row,
                // The new iterate is outside the domain (an overflow, log of 0): diverged.
                Err(RunError::Measure(e)) => {
                    self.reason = Some(format!("iteration {}: {e}", state.iter));
                    return Ok(diverged(state, &last_finite));
                }
                Err(e) => return Err(e),
            };
            // A non-finite iterate or objective, or the solver's own verdict, is divergence:
            // the state goes back to the last finite iterate before any observer sees the row,
            // so the trace and the checkpoints hold finite iterates only.
            let finite = row.objective.is_finite() && state.x.iter().all(|v| v.is_finite());
            if !finite || report.signal == StepSignal::Diverged {
                self.reason = Some(match report.reason {
                    Some(r) => format!("iteration {}: {r}", state.iter),
                    None if !finite => format!(
                        "iteration {}: the objective or the iterate is not finite",
                        state.iter
                    ),
                    None => format!("iteration {}: the solver diverged", state.iter),
                });
                return Ok(diverged(state, &last_finite));
            }
            self.record(state, row, traced, track);
            if self
                .observers
                .iter()
                .any(|o| o.wants_checkpoint(state.iter))
            {
                self.settle(problem, state, track)?;
                let blob = solver.save()?;
                for o in self.observers.iter_mut() {
                    if o.wants_checkpoint(state.iter) {
                        o.checkpoint(state, &blob).map_err(RunError::Checkpoint)?;
                    }
                }
            }
            match report.signal {
                StepSignal::Converged => {
                    self.reason = report.reason;
                    return Ok(Status::Converged);
                }
                StepSignal::Stalled => {
                    self.reason = report.reason;
                    return Ok(Status::Stalled);
                }
                StepSignal::Diverged | StepSignal::Continue => {}
            }
            if let Some(tol) = self.stop.tol.filter(|&t| report.stationarity <= t) {
                self.reason = Some(format!(
                    "stationarity measure {:e} ≤ tol {tol:e}",
                    report.stationarity
                ));
                return Ok(Status::Converged);
            }
        }
    }

    fn should_stop(&self, state: &RunState, started: Instant) -> Option<Status> {
        if state.iter >= self.stop.max_iter {
            return Some(Status::MaxIter);
        }
        if self.interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) {
            return Some(Status::Interrupted);
        }
        if self
            .stop
            .max_seconds
            .is_some_and(|s| started.elapsed().as_secs_f64() >= s)
        {
            return Some(Status::TimeLimit);
        }
        None
    }

    /// Make `row` the newest: keep it when it is the best so far, and hand it to the observers
    /// (as a trace row when `traced`).
    fn record(&mut self, state: &mut RunState, row: Row, traced: bool, track: &mut Track) {
        let better = state
            .best
            .as_ref()
            .is_none_or(|b| row.objective < b.objective || b.objective.is_nan());
        if better {
            match state.best.as_mut() {
                Some(b) => copy_row(b, &row),
                None => state.best = Some(row.clone()),
            }
            // Between trace rows the test loss is not measured: keep the iterate for it.
            track.best_pending = track.has_test && row.test_loss.is_none();
            if track.best_pending {
                track.best_x.clear();
                track.best_x.extend_from_slice(&state.x);
            }
        }
        // The previous row, unless it became a trace row after all, is skipped: each row
        // reaches the observers once, as a trace row or not.
        if let Some(prev) = state.last.as_ref().filter(|_| !track.traced) {
            for o in self.observers.iter_mut() {
                o.skipped(prev);
            }
        }
        if traced {
            for o in self.observers.iter_mut() {
                o.row(&row);
            }
        }
        track.traced = traced;
        track.spare = state.last.replace(row);
    }

    /// Before a checkpoint and at the end: the newest row becomes a trace row (its test loss
    /// measured) if it is not one, and the best row gets its test loss.
    fn settle(
        &mut self,
        problem: &mut dyn TrainProblem,
        state: &mut RunState,
        track: &mut Track,
    ) -> Result<(), RunError> {
        if !track.traced {
            if let Some(row) = state.last.as_mut() {
                if track.has_test && row.test_loss.is_none() {
                    row.test_loss = problem.test_loss(&state.x).map_err(RunError::Measure)?;
                }
                for o in self.observers.iter_mut() {
                    o.row(row);
                }
            }
            track.traced = true;
        }
        if track.best_pending {
            if let Some(best) = state.best.as_mut() {
                best.test_loss = match &state.last {
                    Some(last) if last.iter == best.iter => last.test_loss,
                    _ => problem
                        .test_loss(&track.best_x)
                        .map_err(RunError::Measure)?,
                };
            }
            track.best_pending = false;
        }
        Ok(())
    }
}

/// The row of the iterate `state.x` after a step: measured in full for a trace row, without the
/// test loss otherwise; in `spare`'s buffers when given.
fn measure(
    problem: &mut dyn TrainProblem,
    state: &RunState,
    step: &Step<'_>,
    objective_metric: Option<usize>,
    traced: bool,
    spare: Option<Row>,
) -> Result<Row, RunError> {
    let m = if traced {
        problem.measure(&state.x)
    } else {
        problem.measure_train(&state.x)
    }
    .map_err(RunError::Measure)?;
    // A solver that iterates on another objective than f(θ) (SRPA: Θ of (P1)) reports it
    // as its metric `objective`, which the row then shows.
    let own = objective_metric.and_then(|i| step.metrics.get(i).copied());
    let mut metrics = spare.map(|r| r.metrics).unwrap_or_default();
    metrics.clear();
    metrics.extend_from_slice(step.metrics);
    Ok(Row {
        iter: state.iter,
        objective: own.filter(|v| !v.is_nan()).unwrap_or(m.objective),
        train_loss: m.train_loss,
        test_loss: m.test_loss,
        seconds: step.seconds,
        stationarity: step.stationarity,
        metrics,
    })
}

/// `*dst = src.clone()`, reusing `dst`'s buffer.
fn copy_row(dst: &mut Row, src: &Row) {
    dst.iter = src.iter;
    dst.objective = src.objective;
    dst.train_loss = src.train_loss;
    dst.test_loss = src.test_loss;
    dst.seconds = src.seconds;
    dst.stationarity = src.stationarity;
    dst.metrics.clone_from(&src.metrics);
}

/// A run that diverged at iteration `state.iter`: the state goes back to the last finite
/// iterate (`x`, one iteration fewer; its row, never replaced by the diverged one, stays
/// last), which the outputs then hold.
fn diverged(state: &mut RunState, last_finite: &[f64]) -> Status {
    state.x.copy_from_slice(last_finite);
    state.iter = state.iter.saturating_sub(1);
    Status::Diverged
}

fn add(a: Evaluations, b: Evaluations) -> Evaluations {
    Evaluations {
        value: a.value + b.value,
        directional: a.directional + b.directional,
        gradient: a.gradient + b.gradient,
    }
}
