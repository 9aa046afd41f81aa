//! Solver callback tables: the host implements [`SolverProblem`], this module turns it into the
//! ABI's [`ProblemTable`] (each callback catching panics on the host side and counting
//! evaluations), checks options against the solver's schema, and drives one solver instance
//! through `init` / `step` / `save` / `restore` (the loop itself lives in `crate::solve`).

use crate::diag::Diag;
use crate::registry::{OptionType, Order, Registry, SolverId, SolverInfo};
use mcopt_plugin_sdk::abi::{
    signal, status, InitArgs, MsgBuf, ProblemTable, SolverDescriptor, StateHandle, StepOut,
};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use mcopt_plugin_sdk::abi::{PROBLEM_CAP_BATCHES, PROBLEM_CAP_STRUCTURE};

/// The problem a solver minimizes, implemented by the host's evaluator.
pub trait SolverProblem {
    fn dim(&self) -> usize;
    /// f(x).
    fn value(&mut self, x: &[f64]) -> Result<f64, String>;
    /// (f(x), f′(x; d), f″(x; d)); f″ only at [`Order::Two`], else 0 (`Order::Zero` is
    /// computed as `Order::One`: a directional derivative has at least f′).
    fn directional(&mut self, x: &[f64], d: &[f64], order: Order) -> Result<[f64; 3], String>;
    /// f(x), with the gradient selection written into `g`.
    fn gradient(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64, String>;
    /// Whether the problem offers minibatches (then `n_batches` and `batch_gradient` are used,
    /// even for a single batch); false by default.
    fn batched(&self) -> bool {
        false
    }
    /// Minibatches in the current epoch; 1 (the default) offers only the full batch.
    fn n_batches(&self) -> usize {
        1
    }
    /// Like [`SolverProblem::gradient`] on minibatch `k` of the current epoch.
    fn batch_gradient(&mut self, _k: usize, x: &[f64], g: &mut [f64]) -> Result<f64, String> {
        self.gradient(x, g)
    }
    /// The (P1) structure: its layout version and an opaque pointer, valid while the problem
    /// lives; `None` (the default) when the problem has none.
    fn structure(&self) -> Option<(u32, *const c_void)> {
        None
    }
}

/// Host evaluations made on behalf of a solver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Evaluations {
    pub value: u64,
    pub directional: u64,
    pub gradient: u64,
}

impl Evaluations {
    pub fn total(&self) -> u64 {
        self.value + self.directional + self.gradient
    }
}

/// What a step asks of the host loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepSignal {
    Continue,
    Converged,
    Stalled,
    Diverged,
}

/// One step's report: the signal, the solver's stationarity measure and its metrics (in the
/// order of [`SolverInfo::metrics`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub signal: StepSignal,
    pub stationarity: f64,
    pub metrics: Vec<f64>,
    /// Why the step ends the run (a signal other than continue), when the solver says.
    pub reason: Option<String>,
}

/// A failed solver call: the solver, and what went wrong (its own message, or the host
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

/// An option value as written in a run file.
#[derive(Clone, Debug, PartialEq)]
pub enum OptionValue {
    Number(f64),
    Bool(bool),
    /// A string (the name of a choice).
    Text(String),
    /// Anything else, described ("a string", "a list").
    Other(&'static str),
}

/// A problem with one given option (the caller attaches the place it was written).
#[derive(Clone, Debug, PartialEq)]
pub struct OptionProblem {
    pub option: String,
    pub message: String,
    pub help: Option<String>,
}

impl SolverInfo {
    /// Option values in schema order from `given` (name, value) pairs, defaults for the rest;
    /// every unknown name, ill-typed or out-of-range value is reported.
    pub fn resolve_options(
        &self,
        given: &[(String, OptionValue)],
    ) -> Result<Vec<f64>, Vec<OptionProblem>> {
        let mut problems = Vec::new();
        let mut values: Vec<f64> = self.options.iter().map(|o| o.default).collect();
        for (name, v) in given {
            let Some(k) = self.options.iter().position(|o| &o.name == name) else {
                let known: Vec<&str> = self.options.iter().map(|o| o.name.as_str()).collect();
                problems.push(OptionProblem {
                    option: name.clone(),
                    message: format!("solver `{}` has no option `{name}`", self.name),
                    help: Some(format!(
                        "{}known options: {}",
                        crate::text::did_you_mean(name, &known),
                        known.join(", ")
                    )),
                });
                continue;
            };
            match self.option_value(k, v) {
                Ok(x) => values[k] = x,
                Err(e) => problems.push(OptionProblem {
                    option: name.clone(),
                    message: format!(
                        "option `{}` of solver `{}` {e}",
                        self.options[k].name, self.name
                    ),
                    help: Some(self.options[k].description.clone()),
                }),
            }
        }
        if problems.is_empty() {
            Ok(values)
        } else {
            Err(problems)
        }
    }

    fn option_value(&self, k: usize, v: &OptionValue) -> Result<f64, OptionError> {
        let o = &self.options[k];
        let expected = match o.ty {
            OptionType::Real => "a finite real number",
            OptionType::Integer => "an integer",
            OptionType::Bool => "a boolean",
            OptionType::Choice => "one of",
        };
        if o.ty == OptionType::Choice {
            let k = match v {
                OptionValue::Text(t) => o.choices.iter().position(|c| c == t),
                _ => None,
            };
            return k.map(|k| k as f64).ok_or_else(|| {
                let found = match v {
                    OptionValue::Number(x) => format!("{x}"),
                    OptionValue::Bool(b) => format!("{b}"),
                    OptionValue::Text(t) => format!("`{t}`"),
                    OptionValue::Other(what) => what.to_string(),
                };
                OptionError::NotAChoice {
                    choices: o.choices.join(", "),
                    found,
                }
            });
        }
        let x = match (o.ty, v) {
            (OptionType::Bool, OptionValue::Bool(b)) => f64::from(u8::from(*b)),
            (OptionType::Real, OptionValue::Number(x)) if x.is_finite() => *x,
            (OptionType::Integer, OptionValue::Number(x)) if x.is_finite() && x.fract() == 0.0 => {
                *x
            }
            (_, found) => {
                let found = match found {
                    OptionValue::Number(x) => format!("{x}"),
                    OptionValue::Bool(b) => format!("{b}"),
                    OptionValue::Text(_) => "a string".to_string(),
                    OptionValue::Other(what) => what.to_string(),
                };
                return Err(OptionError::Type { expected, found });
            }
        };
        if !o.admits(x) {
            return Err(OptionError::Range {
                range: o.range.to_string(),
                found: short_number(x),
            });
        }
        Ok(x)
    }
}

/// Why a run file's value does not fit a solver option; its `Display` completes "option `NAME`
/// of solver `SOLVER` …".
#[derive(Debug, Clone, PartialEq, Eq)]
enum OptionError {
    /// A choice option given something that is not one of its choices.
    NotAChoice { choices: String, found: String },
    /// A value of the wrong type (`expected` says which).
    Type {
        expected: &'static str,
        found: String,
    },
    /// A value of the right type outside the option's range.
    Range { range: String, found: String },
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionError::NotAChoice { choices, found } => {
                write!(f, "expected one of {choices}, found {found}")
            }
            OptionError::Type { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            OptionError::Range { range, found } => write!(f, "must be {range}, found {found}"),
        }
    }
}

/// A number as a message shows it: exponent notation when it is very large or small.
fn short_number(x: f64) -> String {
    if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// The host side of one solver run: the callbacks' context.
struct Ctx<'a> {
    problem: &'a mut dyn SolverProblem,
    counts: Evaluations,
    /// The first host-side error, reported instead of the solver's generic message.
    error: Option<String>,
}

/// A live solver state, owned by the plugin and freed through its `drop` entry.
pub struct SolverInstance<'r> {
    desc: &'static SolverDescriptor,
    info: &'r SolverInfo,
    options: Vec<f64>,
    state: StateHandle,
    counts: Evaluations,
    metrics: Vec<f64>,
    /// The length of the last saved state: the next save's first buffer, so a state of tens
    /// of megabytes is computed once per checkpoint rather than once to learn its size.
    saved_len: std::cell::Cell<usize>,
}

impl Drop for SolverInstance<'_> {
    fn drop(&mut self) {
        if !self.state.is_null() {
            // SAFETY: made by this solver's init or restore, not used afterwards.
            unsafe { (self.desc.drop)(self.state) };
        }
    }
}

/// Where a solver starts: options in schema order (see [`SolverInfo::resolve_options`]), the
/// starting (or saved) iterate and the run's seed.
#[derive(Clone, Copy, Debug)]
pub struct SolverStart<'a> {
    pub options: &'a [f64],
    pub x: &'a [f64],
    pub seed: u64,
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

    /// Initialise solver `id` at `start.x`.
    pub fn init_solver(
        &self,
        id: SolverId,
        problem: &mut dyn SolverProblem,
        start: SolverStart<'_>,
    ) -> Result<SolverInstance<'_>, SolverError> {
        self.instance(id, problem, start, None)
    }

    /// Rebuild solver `id` from a state blob saved by [`SolverInstance::save`]; `start.x` is
    /// the saved iterate.
    pub fn restore_solver(
        &self,
        id: SolverId,
        problem: &mut dyn SolverProblem,
        start: SolverStart<'_>,
        blob: &[u8],
    ) -> Result<SolverInstance<'_>, SolverError> {
        self.instance(id, problem, start, Some(blob))
    }

    fn instance(
        &self,
        id: SolverId,
        problem: &mut dyn SolverProblem,
        start: SolverStart<'_>,
        blob: Option<&[u8]>,
    ) -> Result<SolverInstance<'_>, SolverError> {
        let entry = &self.solvers[id.0 as usize];
        let mut inst = SolverInstance {
            desc: entry.desc,
            info: &entry.info,
            options: start.options.to_vec(),
            state: std::ptr::null_mut(),
            counts: Evaluations::default(),
            metrics: vec![f64::NAN; entry.info.metrics.len()],
            saved_len: std::cell::Cell::new(0),
        };
        if start.options.len() != entry.info.options.len() || start.x.len() != problem.dim() {
            return Err(inst.fail("option count or dimension mismatch".to_string()));
        }
        let missing = entry.info.requires & !capabilities(problem);
        if missing != 0 {
            return Err(inst.fail(format!(
                "it needs {} from the problem, which this problem does not offer",
                capability_names(missing)
            )));
        }
        let mut ctx = Ctx {
            problem,
            counts: Evaluations::default(),
            error: None,
        };
        let table = table(&mut ctx);
        let args = InitArgs {
            problem: &table,
            options: inst.options.as_ptr(),
            n_options: inst.options.len(),
            x: start.x.as_ptr(),
            n: start.x.len(),
            seed: start.seed,
        };
        let mut state: StateHandle = std::ptr::null_mut();
        let (st, text) = with_msg(|msg| match blob {
            // SAFETY: every pointer in `args` is valid for the call; `ctx` outlives it.
            None => unsafe { (entry.desc.init)(&args, &mut state, msg) },
            // SAFETY: as above; the blob is a valid slice.
            Some(b) => unsafe { (entry.desc.restore)(&args, b.as_ptr(), b.len(), &mut state, msg) },
        });
        inst.state = state;
        inst.counts = ctx.counts;
        if st != status::OK {
            return Err(inst.fail(host_message(text, ctx.error)));
        }
        Ok(inst)
    }
}

impl<'r> SolverInstance<'r> {
    pub fn info(&self) -> &'r SolverInfo {
        self.info
    }

    /// Host evaluations made for this solver so far (since init or restore).
    pub fn evaluations(&self) -> Evaluations {
        self.counts
    }

    /// One step from the iterate in `x`, which receives the new one.
    pub fn step(
        &mut self,
        problem: &mut dyn SolverProblem,
        x: &mut [f64],
    ) -> Result<StepReport, SolverError> {
        if x.len() != problem.dim() {
            return Err(self.fail("dimension mismatch".to_string()));
        }
        self.metrics.fill(f64::NAN);
        let mut out = StepOut {
            signal: signal::CONTINUE,
            stationarity: f64::NAN,
            metrics: self.metrics.as_mut_ptr(),
            n_metrics: self.metrics.len(),
        };
        let mut ctx = Ctx {
            problem,
            counts: self.counts,
            error: None,
        };
        let table = table(&mut ctx);
        let (desc, state) = (self.desc, self.state);
        // SAFETY: `state` is live, the table and `x` are valid for the call.
        let (st, text) =
            with_msg(|msg| unsafe { (desc.step)(state, &table, x.as_mut_ptr(), &mut out, msg) });
        self.counts = ctx.counts;
        if st != status::OK {
            return Err(self.fail(host_message(text, ctx.error)));
        }
        let signal = match out.signal {
            signal::CONTINUE => StepSignal::Continue,
            signal::CONVERGED => StepSignal::Converged,
            signal::STALLED => StepSignal::Stalled,
            signal::DIVERGED => StepSignal::Diverged,
            other => return Err(self.fail(format!("unknown step signal {other}"))),
        };
        let reason = (signal != StepSignal::Continue && !text.trim().is_empty())
            .then(|| text.trim().to_string());
        Ok(StepReport {
            signal,
            stationarity: out.stationarity,
            metrics: self.metrics.clone(),
            reason,
        })
    }

    /// The solver's state as an opaque blob (for checkpoints).
    pub fn save(&self) -> Result<Vec<u8>, SolverError> {
        let mut buf = vec![0u8; self.saved_len.get().max(4096)];
        for _ in 0..2 {
            let mut len = 0usize;
            let (desc, state) = (self.desc, self.state);
            let cap = buf.len();
            // SAFETY: `state` is live; `buf` has `cap` writable bytes.
            let (st, text) =
                with_msg(|msg| unsafe { (desc.save)(state, buf.as_mut_ptr(), cap, &mut len, msg) });
            match st {
                status::OK if len <= cap => {
                    buf.truncate(len);
                    self.saved_len.set(len);
                    return Ok(buf);
                }
                status::TOO_SMALL if len > cap => buf.resize(len, 0),
                status::OK | status::TOO_SMALL => break,
                _ => return Err(self.fail(text)),
            }
        }
        Err(self.fail("save reported inconsistent sizes".to_string()))
    }

    fn fail(&self, message: String) -> SolverError {
        SolverError {
            solver: self.info.name.clone(),
            plugin: self.info.source.plugin.clone(),
            message,
        }
    }
}

fn capabilities(problem: &dyn SolverProblem) -> u64 {
    let mut caps = 0;
    if problem.structure().is_some() {
        caps |= PROBLEM_CAP_STRUCTURE;
    }
    if problem.batched() {
        caps |= PROBLEM_CAP_BATCHES;
    }
    caps
}

fn capability_names(bits: u64) -> String {
    let mut v = Vec::new();
    if bits & PROBLEM_CAP_STRUCTURE != 0 {
        v.push("the (P1) structure");
    }
    if bits & PROBLEM_CAP_BATCHES != 0 {
        v.push("minibatches");
    }
    if v.is_empty() {
        return format!("capabilities {bits:#x}");
    }
    v.join(" and ")
}

fn host_message(text: String, host: Option<String>) -> String {
    match host {
        Some(h) => format!("{text} ({h})"),
        None => text,
    }
}

/// Call `f` with a message buffer: (status, message).
fn with_msg(f: impl FnOnce(&mut MsgBuf) -> i32) -> (i32, String) {
    let mut store = [0u8; 1024];
    let mut msg = MsgBuf {
        ptr: store.as_mut_ptr(),
        cap: store.len(),
        len: 0,
    };
    let st = f(&mut msg);
    // SAFETY: the plugin wrote at most `cap` bytes into `store`.
    let text = unsafe { msg.message() };
    (st, text)
}

/// The ABI table over `ctx` (valid while `ctx` is).
fn table(ctx: &mut Ctx<'_>) -> ProblemTable {
    let (structure_version, structure) = ctx.problem.structure().unwrap_or((0, std::ptr::null()));
    let n_batches = ctx.problem.n_batches().max(1);
    let caps = capabilities(&*ctx.problem);
    ProblemTable {
        ctx: (ctx as *mut Ctx<'_>).cast::<c_void>(),
        dim: ctx.problem.dim(),
        value: value_cb,
        directional: directional_cb,
        gradient: gradient_cb,
        capabilities: caps,
        n_batches,
        batch_gradient: (caps & PROBLEM_CAP_BATCHES != 0).then_some(batch_gradient_cb as _),
        structure_version,
        structure,
    }
}

/// Run a host callback with panics caught; errors are stashed in the context.
///
/// # Safety
/// `ctx` must be the `Ctx` behind the table, alive for the call.
unsafe fn host_call(
    ctx: *mut c_void,
    body: impl FnOnce(&mut Ctx<'_>) -> Result<(), String>,
) -> i32 {
    // SAFETY: the caller passes the `Ctx` behind the table, alive for the call; callbacks are
    // neither re-entrant nor concurrent (abi.rs), so this is the only reference to it while
    // the callback runs.
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
        c.counts.value += 1;
        // SAFETY: the ABI has the solver pass `dim` readable values at `x`.
        let x = unsafe { std::slice::from_raw_parts(x, c.problem.dim()) };
        let v = c.problem.value(x)?;
        // SAFETY: the ABI has the solver pass one writable f64 at `out`.
        unsafe { *out = v };
        Ok(())
    };
    // SAFETY: `ctx` is the table's context, the `Ctx` behind it.
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
        c.counts.directional += 1;
        let n = c.problem.dim();
        // SAFETY: the ABI has the solver pass `dim` readable values at `x` and at `d`.
        let (x, d) = unsafe {
            (
                std::slice::from_raw_parts(x, n),
                std::slice::from_raw_parts(d, n),
            )
        };
        let order = if order >= 2 { Order::Two } else { Order::One };
        let r = c.problem.directional(x, d, order)?;
        // SAFETY: the ABI has the solver pass three writable f64 at `out`, apart from x, d.
        unsafe { std::slice::from_raw_parts_mut(out, 3) }.copy_from_slice(&r);
        Ok(())
    };
    // SAFETY: `ctx` is the table's context, the `Ctx` behind it.
    unsafe { host_call(ctx, body) }
}

unsafe extern "C" fn gradient_cb(
    ctx: *mut c_void,
    x: *const f64,
    g: *mut f64,
    value: *mut f64,
) -> i32 {
    let body = |c: &mut Ctx<'_>| {
        c.counts.gradient += 1;
        let n = c.problem.dim();
        // SAFETY: the ABI has the solver pass `dim` readable values at `x` and `dim` writable
        // ones at `g`, not overlapping.
        let x = unsafe { std::slice::from_raw_parts(x, n) };
        // SAFETY: as above: `dim` writable values at `g`, apart from `x`.
        let g = unsafe { std::slice::from_raw_parts_mut(g, n) };
        let v = c.problem.gradient(x, g)?;
        // SAFETY: the ABI has the solver pass one writable f64 at `value`.
        unsafe { *value = v };
        Ok(())
    };
    // SAFETY: `ctx` is the table's context, the `Ctx` behind it.
    unsafe { host_call(ctx, body) }
}

unsafe extern "C" fn batch_gradient_cb(
    ctx: *mut c_void,
    batch: usize,
    x: *const f64,
    g: *mut f64,
    value: *mut f64,
) -> i32 {
    let body = |c: &mut Ctx<'_>| {
        c.counts.gradient += 1;
        if batch >= c.problem.n_batches() {
            return Err(format!(
                "minibatch {batch} requested, the epoch has {}",
                c.problem.n_batches()
            ));
        }
        let n = c.problem.dim();
        // SAFETY: the ABI has the solver pass `dim` readable values at `x` and `dim` writable
        // ones at `g`, not overlapping.
        let x = unsafe { std::slice::from_raw_parts(x, n) };
        // SAFETY: as above: `dim` writable values at `g`, apart from `x`.
        let g = unsafe { std::slice::from_raw_parts_mut(g, n) };
        let v = c.problem.batch_gradient(batch, x, g)?;
        // SAFETY: the ABI has the solver pass one writable f64 at `value`.
        unsafe { *value = v };
        Ok(())
    };
    // SAFETY: `ctx` is the table's context, the `Ctx` behind it.
    unsafe { host_call(ctx, body) }
}
