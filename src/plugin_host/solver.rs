//! Running a plugin solver: the host implements [`SolverProblem`], this module turns it into the
//! ABI's callback table (each callback catching panics on the host side), checks options against
//! the solver's schema, and maps the outcome back.

use crate::diag::{Diag, Diags};
use crate::registry::{OptionType, Registry, SolverId, SolverInfo};
use mcopt_plugin_sdk::abi::{
    outcome, status, MsgBuf, ObserverTable, ProblemTable, SolverArgs, SolverFn, SolverResult,
    OBSERVE_CONTINUE, OBSERVE_STOP,
};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use mcopt_plugin_sdk::abi::Progress;

/// The problem a solver minimizes, implemented by the host's evaluator.
pub trait SolverProblem {
    fn dim(&self) -> usize;
    /// f(x).
    fn value(&mut self, x: &[f64]) -> Result<f64, String>;
    /// (f(x), f′(x; d), f″(x; d)); f″ only when `second`, else 0.
    fn directional(&mut self, x: &[f64], d: &[f64], second: bool) -> Result<[f64; 3], String>;
    /// f(x), with the gradient selection written into `g`.
    fn gradient(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64, String>;
    /// Opaque (P1) structure for solvers that use it; null by default.
    fn structure(&self) -> *const c_void {
        std::ptr::null()
    }
}

/// What the observer tells the solver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObserverAction {
    Continue,
    Stop,
}

/// How a run ended (non-convergence is a status, not an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SolverStatus {
    Converged,
    MaxIterations,
    StoppedByObserver,
    /// No decrease found along the search direction.
    Stalled,
}

/// The result of a run besides the final point (written into `x`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SolverOutcome {
    pub status: SolverStatus,
    pub iterations: u64,
    pub evaluations: u64,
    pub value: f64,
}

/// A failed solver run: the solver, and what went wrong (its own message, or the host
/// callback's error that made it stop).
#[derive(Clone, Debug, PartialEq)]
pub struct SolverError {
    pub solver: String,
    pub plugin: String,
    pub message: String,
}

impl std::fmt::Display for SolverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "solver `{}` of plugin {} failed: {}",
            self.solver, self.plugin, self.message
        )
    }
}

impl From<SolverError> for Diag {
    fn from(e: SolverError) -> Diag {
        Diag::new("mcopt::plugin::solver", e.to_string())
    }
}

impl SolverInfo {
    /// Option values in schema order from `given` (name, value) pairs, defaults for the rest;
    /// unknown names and ill-typed values are diagnostics.
    pub fn resolve_options(&self, given: &[(String, f64)]) -> Result<Vec<f64>, Diags> {
        let mut diags = Diags::new();
        let mut values: Vec<f64> = self.options.iter().map(|o| o.default).collect();
        for (name, v) in given {
            let Some(k) = self.options.iter().position(|o| &o.name == name) else {
                let known: Vec<&str> = self.options.iter().map(|o| o.name.as_str()).collect();
                diags.push(
                    Diag::new(
                        "mcopt::plugin::option",
                        format!("solver `{}` has no option `{name}`", self.name),
                    )
                    .help(format!("known options are {}", known.join(", "))),
                );
                continue;
            };
            let ty = self.options[k].ty;
            let ok = match ty {
                OptionType::Real => v.is_finite(),
                OptionType::Integer => v.is_finite() && v.fract() == 0.0,
                OptionType::Bool => *v == 0.0 || *v == 1.0,
            };
            if !ok {
                diags.push(Diag::new(
                    "mcopt::plugin::option",
                    format!(
                        "option `{name}` of solver `{}` expected {}, found {v}",
                        self.name,
                        match ty {
                            OptionType::Real => "a finite real number",
                            OptionType::Integer => "an integer",
                            OptionType::Bool => "a boolean (0 or 1)",
                        }
                    ),
                ));
            }
            values[k] = *v;
        }
        diags.finish(values)
    }
}

struct Ctx<'a> {
    problem: &'a mut dyn SolverProblem,
    observer: &'a mut dyn FnMut(&Progress) -> ObserverAction,
    /// The first host-side error, reported instead of the solver's generic message.
    error: Option<String>,
}

impl Registry {
    /// The solver called `name`.
    pub fn solver(&self, name: &str) -> Option<SolverId> {
        self.solvers
            .iter()
            .position(|s| s.info.name == name)
            .map(|k| SolverId(k as u32))
    }

    pub fn solver_info(&self, id: SolverId) -> &SolverInfo {
        &self.solvers[id.0 as usize].info
    }

    /// Every solver name, sorted.
    pub fn solver_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.solvers.iter().map(|s| s.info.name.as_str()).collect();
        v.sort_unstable();
        v
    }

    /// Run solver `id` from `x` (overwritten with the result); `options` in schema order (see
    /// [`SolverInfo::resolve_options`]).
    pub fn run_solver(
        &self,
        id: SolverId,
        problem: &mut dyn SolverProblem,
        options: &[f64],
        x: &mut [f64],
        observer: &mut dyn FnMut(&Progress) -> ObserverAction,
    ) -> Result<SolverOutcome, SolverError> {
        let entry = &self.solvers[id.0 as usize];
        let fail = |message: String| SolverError {
            solver: entry.info.name.clone(),
            plugin: entry.info.source.plugin.clone(),
            message,
        };
        if options.len() != entry.info.options.len() || x.len() != problem.dim() {
            return Err(fail("option count or dimension mismatch".to_string()));
        }
        let mut ctx = Ctx {
            problem,
            observer,
            error: None,
        };
        let (st, result, text) = invoke(entry.run, &mut ctx, options, x);
        if st != status::OK {
            return Err(fail(match ctx.error.take() {
                Some(host) => format!("{text} ({host})"),
                None => text,
            }));
        }
        let status = match result.outcome {
            outcome::CONVERGED => SolverStatus::Converged,
            outcome::MAX_ITERATIONS => SolverStatus::MaxIterations,
            outcome::STOPPED => SolverStatus::StoppedByObserver,
            outcome::STALLED => SolverStatus::Stalled,
            other => return Err(fail(format!("unknown outcome code {other}"))),
        };
        Ok(SolverOutcome {
            status,
            iterations: result.iterations,
            evaluations: result.evaluations,
            value: result.value,
        })
    }
}

/// Call the solver entry with the callback tables over `ctx`: (status, result, message).
fn invoke(
    run: SolverFn,
    ctx: &mut Ctx<'_>,
    options: &[f64],
    x: &mut [f64],
) -> (i32, SolverResult, String) {
    let structure = ctx.problem.structure();
    let dim = ctx.problem.dim();
    let ctx_ptr: *mut c_void = (ctx as *mut Ctx<'_>).cast();
    let table = ProblemTable {
        ctx: ctx_ptr,
        dim,
        value: value_cb,
        directional: directional_cb,
        gradient: gradient_cb,
        structure,
    };
    let obs = ObserverTable {
        ctx: ctx_ptr,
        observe: observe_cb,
    };
    let args = SolverArgs {
        problem: &table,
        options: options.as_ptr(),
        n_options: options.len(),
        x: x.as_mut_ptr(),
        n: x.len(),
        observer: &obs,
    };
    let mut result = SolverResult::default();
    let mut store = [0u8; 1024];
    let mut msg = MsgBuf {
        ptr: store.as_mut_ptr(),
        cap: store.len(),
        len: 0,
    };
    // SAFETY: every pointer in `args` is valid for the call; `ctx` outlives it.
    let st = unsafe { run(&args, &mut result, &mut msg) };
    // SAFETY: the plugin wrote at most `cap` bytes into `store`.
    let text = unsafe { msg.message() };
    (st, result, text)
}

/// Run a host callback with panics caught; errors are stashed in the context.
///
/// # Safety
/// `ctx` must be the `Ctx` built by `run_solver`, alive for the call.
unsafe fn host_call(
    ctx: *mut c_void,
    body: impl FnOnce(&mut Ctx<'_>) -> Result<(), String>,
) -> i32 {
    // SAFETY: the caller passes the `Ctx` that `run_solver` built and keeps alive for the
    // solver run; callbacks are not re-entrant or concurrent (abi.rs), so this is the only
    // reference to it while the callback runs.
    let ctx = unsafe { &mut *ctx.cast::<Ctx<'_>>() };
    match catch_unwind(AssertUnwindSafe(|| body(ctx))) {
        Ok(Ok(())) => status::OK,
        Ok(Err(e)) => {
            ctx.error.get_or_insert(e);
            status::ERROR
        }
        Err(_) => {
            ctx.error
                .get_or_insert_with(|| "the host panicked in a solver callback".to_string());
            status::PANIC
        }
    }
}

unsafe extern "C" fn value_cb(ctx: *mut c_void, x: *const f64, out: *mut f64) -> i32 {
    let body = |c: &mut Ctx<'_>| {
        // SAFETY: the ABI has the solver pass `dim` readable values at `x`.
        let x = unsafe { std::slice::from_raw_parts(x, c.problem.dim()) };
        let v = c.problem.value(x)?;
        // SAFETY: the ABI has the solver pass one writable f64 at `out`.
        unsafe { *out = v };
        Ok(())
    };
    // SAFETY: `ctx` is the table's context, the `Ctx` of `run_solver`.
    unsafe { host_call(ctx, body) }
}

unsafe extern "C" fn directional_cb(
    ctx: *mut c_void,
    x: *const f64,
    d: *const f64,
    order: u32,
    out: *mut f64,
) -> i32 {
    let body = |c: &mut Ctx<'_>| {
        let n = c.problem.dim();
        // SAFETY: the ABI has the solver pass `dim` readable values at `x` and at `d`.
        let (x, d) = unsafe {
            (
                std::slice::from_raw_parts(x, n),
                std::slice::from_raw_parts(d, n),
            )
        };
        let r = c.problem.directional(x, d, order >= 2)?;
        // SAFETY: the ABI has the solver pass three writable f64 at `out`, apart from x, d.
        unsafe { std::slice::from_raw_parts_mut(out, 3) }.copy_from_slice(&r);
        Ok(())
    };
    // SAFETY: `ctx` is the table's context, the `Ctx` of `run_solver`.
    unsafe { host_call(ctx, body) }
}

unsafe extern "C" fn gradient_cb(
    ctx: *mut c_void,
    x: *const f64,
    g: *mut f64,
    value: *mut f64,
) -> i32 {
    let body = |c: &mut Ctx<'_>| {
        let n = c.problem.dim();
        // SAFETY: the ABI has the solver pass `dim` readable values at `x` and `dim`
        // writable ones at `g`, not overlapping.
        let x = unsafe { std::slice::from_raw_parts(x, n) };
        let g = unsafe { std::slice::from_raw_parts_mut(g, n) };
        let v = c.problem.gradient(x, g)?;
        // SAFETY: the ABI has the solver pass one writable f64 at `value`.
        unsafe { *value = v };
        Ok(())
    };
    // SAFETY: `ctx` is the table's context, the `Ctx` of `run_solver`.
    unsafe { host_call(ctx, body) }
}

unsafe extern "C" fn observe_cb(ctx: *mut c_void, progress: *const Progress) -> i32 {
    let mut stop = false;
    let body = |c: &mut Ctx<'_>| {
        // SAFETY: the ABI has the solver pass a valid progress report.
        let progress = unsafe { &*progress };
        stop = (c.observer)(progress) == ObserverAction::Stop;
        Ok(())
    };
    // SAFETY: `ctx` is the observer table's context, the `Ctx` of `run_solver`.
    let st = unsafe { host_call(ctx, body) };
    if st != status::OK || stop {
        OBSERVE_STOP
    } else {
        OBSERVE_CONTINUE
    }
}
