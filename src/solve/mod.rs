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
    /// Wall-clock seconds since the run started (summed across resumes).
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
}

/// Watches a run. Every method has a default that does nothing.
pub trait Observer {
    /// After each row (row 0 included).
    fn row(&mut self, _row: &Row) {}
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

impl Executor<'_> {
    /// Step `solver` from `state` until a stop rule fires; `state` is updated in place (so the
    /// caller can checkpoint it afterwards, whatever the status).
    pub fn run(
        &mut self,
        problem: &mut dyn TrainProblem,
        solver: &mut SolverInstance<'_>,
        state: &mut RunState,
    ) -> Result<Status, RunError> {
        self.reason = None;
        let clock = Instant::now();
        let base = state.seconds;
        let base_counts = state.evaluations;
        let own = solver.info().metrics.iter().position(|m| m == "objective");
        if state.last.is_none() {
            let nan = vec![f64::NAN; solver.info().metrics.len()];
            let row = self.measure(problem, state, f64::NAN, &nan, base, own)?;
            self.record(state, &row);
            state.last = Some(row);
        }
        // The last iterate whose objective was finite, restored when a step diverges.
        let mut last_finite = state.x.clone();
        loop {
            if let Some(status) = self.should_stop(state, clock) {
                return Ok(status);
            }
            last_finite.copy_from_slice(&state.x);
            problem.begin_epoch(state.iter);
            let t0 = Instant::now();
            let report = solver.step(problem, &mut state.x)?;
            state.step_seconds += t0.elapsed().as_secs_f64();
            state.iter += 1;
            state.evaluations = add(base_counts, solver.evaluations());
            state.seconds = base + clock.elapsed().as_secs_f64();
            let row = match self.measure(
                problem,
                state,
                report.stationarity,
                &report.metrics,
                state.seconds,
                own,
            ) {
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
            self.record(state, &row);
            state.last = Some(row);
            if self
                .observers
                .iter()
                .any(|o| o.wants_checkpoint(state.iter))
            {
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

    fn should_stop(&self, state: &RunState, clock: Instant) -> Option<Status> {
        if state.iter >= self.stop.max_iter {
            return Some(Status::MaxIter);
        }
        if self.interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) {
            return Some(Status::Interrupted);
        }
        if self
            .stop
            .max_seconds
            .is_some_and(|s| clock.elapsed().as_secs_f64() >= s)
        {
            return Some(Status::TimeLimit);
        }
        None
    }

    fn measure(
        &mut self,
        problem: &mut dyn TrainProblem,
        state: &RunState,
        stationarity: f64,
        metrics: &[f64],
        seconds: f64,
        objective_metric: Option<usize>,
    ) -> Result<Row, RunError> {
        let m = problem.measure(&state.x).map_err(RunError::Measure)?;
        // A solver that iterates on another objective than f(θ) (SRPA: Θ of (P1)) reports it
        // as its metric `objective`, which the row then shows.
        let own = objective_metric.and_then(|i| metrics.get(i).copied());
        let row = Row {
            iter: state.iter,
            objective: own.filter(|v| !v.is_nan()).unwrap_or(m.objective),
            train_loss: m.train_loss,
            test_loss: m.test_loss,
            seconds,
            stationarity,
            metrics: metrics.to_vec(),
        };
        Ok(row)
    }

    /// Hand a row to the observers (trace, progress), and keep it when it is the best so far.
    fn record(&mut self, state: &mut RunState, row: &Row) {
        let better = state
            .best
            .as_ref()
            .is_none_or(|b| row.objective < b.objective || b.objective.is_nan());
        if better {
            state.best = Some(row.clone());
        }
        for o in self.observers.iter_mut() {
            o.row(row);
        }
    }
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
