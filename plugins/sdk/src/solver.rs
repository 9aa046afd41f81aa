//! Writing a solver: the step-wise [`Solver`] trait, a safe wrapper over the host's problem
//! callbacks ([`Problem`]), helpers for the state blob ([`Blob`], [`BlobReader`]), and the
//! `extern "C"` entries that run each method inside `catch_unwind`.
//!
//! The host owns the loop (stop rules, evaluation counts, progress, checkpoints); a solver only
//! says how to start ([`Solver::init`]), how to take one iteration ([`Solver::step`]) and how to
//! turn its state into bytes and back ([`Solver::save`], [`Solver::restore`]).

use crate::abi::{
    signal, status, InitArgs, MsgBuf, OptionDescriptor, OptionType, ProblemTable, SolverDescriptor,
    StateHandle, StepOut, Str, OPEN_HI, OPEN_LO, PROBLEM_CAP_BATCHES, PROBLEM_CAP_STRUCTURE,
};
use crate::elementwise::Order;
use crate::export::guarded;
use std::ffi::c_void;

impl OptionDescriptor {
    /// One entry of an options schema (usable in a `static`).
    pub const fn new(
        name: &'static str,
        ty: OptionType,
        default: f64,
        description: &'static str,
    ) -> OptionDescriptor {
        OptionDescriptor {
            name: Str::new(name),
            ty: ty as u32,
            default,
            description: Str::new(description),
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
            open: 0,
        }
    }

    /// Restrict to `lo ≤ v ≤ hi`; `open` is a combination of [`OPEN_LO`] and [`OPEN_HI`].
    pub const fn range(mut self, lo: f64, hi: f64, open: u32) -> OptionDescriptor {
        self.lo = lo;
        self.hi = hi;
        self.open = open;
        self
    }

    /// Restrict to v > 0.
    pub const fn positive(self) -> OptionDescriptor {
        self.range(0.0, f64::INFINITY, OPEN_LO)
    }

    /// Restrict to v ≥ 0.
    pub const fn nonnegative(self) -> OptionDescriptor {
        self.range(0.0, f64::INFINITY, 0)
    }

    /// Whether `v` lies in the declared range.
    pub fn admits(&self, v: f64) -> bool {
        let lo_ok = if self.open & OPEN_LO != 0 {
            v > self.lo
        } else {
            v >= self.lo
        };
        let hi_ok = if self.open & OPEN_HI != 0 {
            v < self.hi
        } else {
            v <= self.hi
        };
        lo_ok && hi_ok
    }

    /// The range in words: "> 0", "in [0, 1)", "" for none.
    pub fn range_text(&self) -> String {
        let (lo_inf, hi_inf) = (self.lo == f64::NEG_INFINITY, self.hi == f64::INFINITY);
        let lo_b = if self.open & OPEN_LO != 0 { "(" } else { "[" };
        let hi_b = if self.open & OPEN_HI != 0 { ")" } else { "]" };
        // exponent notation for bounds like 1e10
        let num = |x: f64| {
            if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
                format!("{x:e}")
            } else {
                format!("{x}")
            }
        };
        let (lo, hi) = (num(self.lo), num(self.hi));
        match (lo_inf, hi_inf) {
            (true, true) => String::new(),
            (false, true) if self.open & OPEN_LO != 0 => format!("> {lo}"),
            (false, true) => format!("≥ {lo}"),
            (true, false) if self.open & OPEN_HI != 0 => format!("< {hi}"),
            (true, false) => format!("≤ {hi}"),
            (false, false) => format!("in {lo_b}{lo}, {hi}{hi_b}"),
        }
    }
}

/// An error from the host's callbacks (the host keeps the details and reports them itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub &'static str);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host's {} callback failed", self.0)
    }
}

impl From<HostError> for String {
    fn from(e: HostError) -> String {
        e.to_string()
    }
}

/// The problem being minimized, as seen by a solver.
pub struct Problem<'a> {
    table: &'a ProblemTable,
}

impl<'a> Problem<'a> {
    /// Number of variables.
    pub fn dim(&self) -> usize {
        self.table.dim
    }

    /// The host's `PROBLEM_CAP_*` bits.
    pub fn capabilities(&self) -> u64 {
        self.table.capabilities
    }

    /// The (P1) structure pointer when the host offers it in layout `version`, else `None`.
    pub fn structure(&self, version: u32) -> Option<*const c_void> {
        let ok = self.table.capabilities & PROBLEM_CAP_STRUCTURE != 0
            && self.table.structure_version == version
            && !self.table.structure.is_null();
        ok.then_some(self.table.structure)
    }

    /// Minibatches in the current epoch (1 when the host offers only the full batch).
    pub fn n_batches(&self) -> usize {
        if self.table.capabilities & PROBLEM_CAP_BATCHES != 0 && self.table.batch_gradient.is_some()
        {
            self.table.n_batches.max(1)
        } else {
            1
        }
    }

    /// f(x). `x` must have [`Problem::dim`] entries.
    pub fn value(&mut self, x: &[f64]) -> Result<f64, HostError> {
        self.check_len(x, "value")?;
        let mut out = 0.0;
        // SAFETY: the host gave a valid table; x has dim entries.
        let st = unsafe { (self.table.value)(self.table.ctx, x.as_ptr(), &mut out) };
        ok(st, "value").map(|()| out)
    }

    /// (f(x), f′(x; d), f″(x; d)); the last is 0 unless `order` is [`Order::Two`]
    /// (`Order::Zero` is computed as `Order::One`: a directional derivative has at least f′).
    pub fn directional(
        &mut self,
        x: &[f64],
        d: &[f64],
        order: Order,
    ) -> Result<[f64; 3], HostError> {
        self.check_len(x, "directional")?;
        self.check_len(d, "directional")?;
        let mut out = [0.0; 3];
        let order = order.as_u32().max(1);
        // SAFETY: as in `value`; out has 3 entries.
        let st = unsafe {
            (self.table.directional)(
                self.table.ctx,
                x.as_ptr(),
                d.as_ptr(),
                order,
                out.as_mut_ptr(),
            )
        };
        ok(st, "directional").map(|()| out)
    }

    /// f(x), writing the host's gradient selection into `g` (a gradient where f is
    /// differentiable; at kinks the host documents which element it returns).
    pub fn gradient(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64, HostError> {
        self.check_len(x, "gradient")?;
        self.check_len(g, "gradient")?;
        let mut value = 0.0;
        // SAFETY: as in `value`; g has dim writable entries.
        let st = unsafe {
            (self.table.gradient)(self.table.ctx, x.as_ptr(), g.as_mut_ptr(), &mut value)
        };
        ok(st, "gradient").map(|()| value)
    }

    /// Like [`Problem::gradient`] on minibatch `batch` (below [`Problem::n_batches`]) of the
    /// current epoch; the full batch when the host offers no minibatches.
    pub fn batch_gradient(
        &mut self,
        batch: usize,
        x: &[f64],
        g: &mut [f64],
    ) -> Result<f64, HostError> {
        let f = match self.table.batch_gradient {
            Some(f) if self.table.capabilities & PROBLEM_CAP_BATCHES != 0 => f,
            _ => return self.gradient(x, g),
        };
        self.check_len(x, "batch gradient")?;
        self.check_len(g, "batch gradient")?;
        let mut value = 0.0;
        // SAFETY: as in `gradient`.
        let st = unsafe {
            f(
                self.table.ctx,
                batch,
                x.as_ptr(),
                g.as_mut_ptr(),
                &mut value,
            )
        };
        ok(st, "batch gradient").map(|()| value)
    }

    fn check_len(&self, v: &[f64], what: &'static str) -> Result<(), HostError> {
        if v.len() == self.table.dim {
            Ok(())
        } else {
            Err(HostError(what))
        }
    }
}

fn ok(st: i32, what: &'static str) -> Result<(), HostError> {
    if st == status::OK {
        Ok(())
    } else {
        Err(HostError(what))
    }
}

/// Where a run starts: option values in schema order (the host fills defaults and checks
/// types), the starting point and the run's seed.
#[derive(Clone, Copy, Debug)]
pub struct Start<'a> {
    pub options: &'a [f64],
    pub x: &'a [f64],
    pub seed: u64,
}

/// What a step tells the host (see [`crate::abi::signal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Continue,
    Converged,
    Stalled,
    Diverged,
}

/// The result of one step besides the new iterate and the metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub signal: Signal,
    /// The solver's stationarity measure at the new iterate (NaN when it has none).
    pub stationarity: f64,
}

impl Step {
    /// Keep going, with stationarity measure `s`.
    pub fn next(s: f64) -> Step {
        Step {
            signal: Signal::Continue,
            stationarity: s,
        }
    }
}

/// A step-wise solver. The host calls [`Solver::init`] (or [`Solver::restore`] on resume), then
/// [`Solver::step`] until a stop rule or the returned [`Signal`] ends the run, saving the state
/// with [`Solver::save`] for checkpoints. Non-convergence is a signal, not an error; `Err` is for
/// failures (a host callback failing, an option out of range).
///
/// Determinism: a resumed run must equal an uninterrupted one bit for bit, so everything a step
/// depends on (moments, step sizes, counters, random state) belongs in the saved state.
pub trait Solver: Sized + 'static {
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    const OPTIONS: &'static [OptionDescriptor];
    /// Names of the values [`Solver::step`] writes into `metrics` (trace columns).
    const METRICS: &'static [Str] = &[];
    /// `PROBLEM_CAP_*` bits the solver cannot run without.
    const REQUIRES: u64 = 0;

    /// Check the options and build the state at `start.x`.
    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String>;

    /// One iteration: write the new iterate into `x` (which holds the current one) and the
    /// metric values into `metrics` (one per [`Solver::METRICS`], NaN-initialised).
    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut [f64],
    ) -> Result<Step, String>;

    /// Why the last step ended the run, when it returned [`Signal::Stalled`],
    /// [`Signal::Converged`] or [`Signal::Diverged`] (e.g. "ρ reached its cap 5e5"); the host
    /// writes it into the run's report. None: no reason beyond the signal.
    fn stop_reason(&self) -> Option<String> {
        None
    }

    /// Append the state to `out` (the host stores it in checkpoints as an opaque blob).
    fn save(&self, out: &mut Vec<u8>);

    /// Rebuild the state from `bytes` written by [`Solver::save`]; `start.x` is the saved iterate.
    fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String>;
}

/// A little-endian writer for state blobs (floats as their exact bits).
#[derive(Debug, Default)]
pub struct Blob<'a>(pub Option<&'a mut Vec<u8>>);

impl<'a> Blob<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Blob<'a> {
        Blob(Some(out))
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        if let Some(o) = self.0.as_deref_mut() {
            o.extend_from_slice(&v.to_le_bytes());
        }
        self
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.u64(v.to_bits())
    }

    /// A length, then the values.
    pub fn f64s(&mut self, v: &[f64]) -> &mut Self {
        self.u64(v.len() as u64);
        for x in v {
            self.f64(*x);
        }
        self
    }
}

/// Reads what a [`Blob`] wrote; every read checks the remaining length.
#[derive(Debug)]
pub struct BlobReader<'a> {
    bytes: &'a [u8],
}

impl<'a> BlobReader<'a> {
    pub fn new(bytes: &'a [u8]) -> BlobReader<'a> {
        BlobReader { bytes }
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        if self.bytes.len() < 8 {
            return Err("the saved solver state is truncated".to_string());
        }
        let (head, rest) = self.bytes.split_at(8);
        self.bytes = rest;
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        Ok(u64::from_le_bytes(b))
    }

    /// A finite float: NaN and ±∞ are refused (a state holding them cannot be resumed).
    pub fn f64(&mut self) -> Result<f64, String> {
        let v = f64::from_bits(self.u64()?);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!(
                "the saved solver state holds a non-finite number ({v})"
            ))
        }
    }

    /// A vector of exactly `n` values (written by [`Blob::f64s`]).
    pub fn f64s(&mut self, n: usize) -> Result<Vec<f64>, String> {
        let len = self.u64()?;
        if len != n as u64 {
            return Err(format!(
                "the saved solver state has a vector of length {len}, expected {n}"
            ));
        }
        (0..n).map(|_| self.f64()).collect()
    }

    /// Whether every byte was read.
    pub fn finish(&self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err("the saved solver state has trailing bytes".to_string())
        }
    }
}

/// The descriptor of a [`Solver`] (usable in a `static`).
pub const fn solver<T: Solver>() -> SolverDescriptor {
    SolverDescriptor {
        name: Str::new(T::NAME),
        description: Str::new(T::DESCRIPTION),
        options: T::OPTIONS.as_ptr(),
        n_options: T::OPTIONS.len(),
        metrics: T::METRICS.as_ptr(),
        n_metrics: T::METRICS.len(),
        requires: T::REQUIRES,
        init: init_entry::<T>,
        step: step_entry::<T>,
        save: save_entry::<T>,
        restore: restore_entry::<T>,
        drop: drop_entry::<T>,
    }
}

type Failure = (i32, String);

fn bad(t: &str) -> Failure {
    (status::BAD_ARGS, t.to_string())
}

/// Slice from a raw pointer, empty for n = 0 (the pointer may then be dangling or null).
///
/// # Safety
/// Unless null or `n == 0`, `p` must point to `n` readable values for `'a`.
unsafe fn slice<'a, U>(p: *const U, n: usize) -> &'a [U] {
    if n == 0 || p.is_null() {
        &[]
    } else {
        // SAFETY: non-null, and the caller guarantees `n` readable values for `'a`.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

/// Mutable counterpart of [`slice`].
///
/// # Safety
/// Unless null or `n == 0`, `p` must point to `n` writable, unaliased values for `'a`.
unsafe fn slice_mut<'a, U>(p: *mut U, n: usize) -> &'a mut [U] {
    if n == 0 || p.is_null() {
        &mut []
    } else {
        // SAFETY: non-null, and the caller guarantees `n` writable, unaliased values.
        unsafe { std::slice::from_raw_parts_mut(p, n) }
    }
}

/// The problem table and the start from init/restore arguments, checked against `T`.
///
/// # Safety
/// `args` must be null or valid as documented in [`crate::abi::InitFn`], for `'a`.
unsafe fn start_args<'a, T: Solver>(
    args: *const InitArgs,
) -> Result<(&'a ProblemTable, Start<'a>), Failure> {
    // SAFETY: the caller passes valid arguments (with a valid problem table) or nulls.
    let args = unsafe { args.as_ref() }.ok_or_else(|| bad("null arguments"))?;
    let table = unsafe { args.problem.as_ref() }.ok_or_else(|| bad("null problem"))?;
    if args.n_options != T::OPTIONS.len() || args.n != table.dim {
        return Err(bad("option count or dimension mismatch"));
    }
    // SAFETY: valid arguments hold `n_options` option values and `n` entries of x.
    let start = Start {
        options: unsafe { slice(args.options, args.n_options) },
        x: unsafe { slice(args.x, args.n) },
        seed: args.seed,
    };
    Ok((table, start))
}

/// Box `s` and hand it to the host through `state`.
///
/// # Safety
/// `state` must be null or point to a writable handle.
unsafe fn store<T: Solver>(state: *mut StateHandle, s: T) -> Result<(), Failure> {
    // SAFETY: the caller passes a writable handle or null.
    let out = unsafe { state.as_mut() }.ok_or_else(|| bad("null state pointer"))?;
    *out = Box::into_raw(Box::new(s)).cast::<c_void>();
    Ok(())
}

/// # Safety
/// The host passes valid arguments as documented in [`crate::abi::InitFn`].
unsafe extern "C" fn init_entry<T: Solver>(
    args: *const InitArgs,
    state: *mut StateHandle,
    msg: *mut MsgBuf,
) -> i32 {
    let body = || {
        // SAFETY: the host passes valid arguments and a writable state handle.
        let (table, start) = unsafe { start_args::<T>(args) }?;
        let s = T::init(&mut Problem { table }, start).map_err(|e| (status::ERROR, e))?;
        unsafe { store(state, s) }
    };
    // SAFETY: the host passes a valid message buffer or null.
    unsafe { guarded(msg, body) }
}

/// # Safety
/// As documented in [`crate::abi::RestoreFn`].
unsafe extern "C" fn restore_entry<T: Solver>(
    args: *const InitArgs,
    bytes: *const u8,
    len: usize,
    state: *mut StateHandle,
    msg: *mut MsgBuf,
) -> i32 {
    let body = || {
        // SAFETY: the host passes valid arguments, `len` readable bytes and a writable
        // state handle.
        let (table, start) = unsafe { start_args::<T>(args) }?;
        let bytes = unsafe { slice(bytes, len) };
        let s = T::restore(&mut Problem { table }, start, bytes).map_err(|e| (status::ERROR, e))?;
        unsafe { store(state, s) }
    };
    // SAFETY: the host passes a valid message buffer or null.
    unsafe { guarded(msg, body) }
}

/// # Safety
/// As documented in [`crate::abi::StepFn`]; `state` was made by `init_entry::<T>` or
/// `restore_entry::<T>`.
unsafe extern "C" fn step_entry<T: Solver>(
    state: StateHandle,
    problem: *const ProblemTable,
    x: *mut f64,
    out: *mut StepOut,
    msg: *mut MsgBuf,
) -> i32 {
    let body = || {
        // SAFETY: `state` is the `T` that init/restore boxed (or null), used by one call at a
        // time; the host passes a valid problem table and step output (or nulls).
        let s = unsafe { state.cast::<T>().as_mut() }.ok_or_else(|| bad("null state"))?;
        let table = unsafe { problem.as_ref() }.ok_or_else(|| bad("null problem"))?;
        let out = unsafe { out.as_mut() }.ok_or_else(|| bad("null step output"))?;
        if out.n_metrics != T::METRICS.len() {
            return Err(bad("metric count mismatch"));
        }
        // SAFETY: the host passes `dim` writable entries of x and `n_metrics` writable
        // metrics, neither aliasing the other.
        let x = unsafe { slice_mut(x, table.dim) };
        let metrics = unsafe { slice_mut(out.metrics, out.n_metrics) };
        let step = s
            .step(&mut Problem { table }, x, metrics)
            .map_err(|e| (status::ERROR, e))?;
        out.signal = match step.signal {
            Signal::Continue => signal::CONTINUE,
            Signal::Converged => signal::CONVERGED,
            Signal::Stalled => signal::STALLED,
            Signal::Diverged => signal::DIVERGED,
        };
        out.stationarity = step.stationarity;
        if step.signal != Signal::Continue {
            // SAFETY: the host passes a valid message buffer or null; on OK it reads the text
            // as the reason the run ended (see `abi::StepFn`).
            if let (Some(reason), Some(m)) = (s.stop_reason(), unsafe { msg.as_mut() }) {
                // SAFETY: a valid MsgBuf from the host has `cap` writable bytes at `ptr` (or a
                // null `ptr`), which cannot overlap `reason`, a string of ours.
                unsafe { m.write(&reason) };
            }
        }
        Ok(())
    };
    // SAFETY: the host passes a valid message buffer or null.
    unsafe { guarded(msg, body) }
}

/// # Safety
/// As documented in [`crate::abi::SaveFn`].
unsafe extern "C" fn save_entry<T: Solver>(
    state: StateHandle,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    msg: *mut MsgBuf,
) -> i32 {
    let mut too_small = false;
    let body = || {
        // SAFETY: `state` is the `T` that init/restore boxed (or null); `len` is writable.
        let s = unsafe { state.cast::<T>().as_ref() }.ok_or_else(|| bad("null state"))?;
        let len = unsafe { len.as_mut() }.ok_or_else(|| bad("null length"))?;
        let mut bytes = Vec::new();
        s.save(&mut bytes);
        *len = bytes.len();
        if bytes.len() > cap {
            too_small = true;
            return Ok(());
        }
        // SAFETY: the host passes `cap` writable bytes at `buf`, and `bytes.len() ≤ cap`.
        unsafe { slice_mut(buf, bytes.len()) }.copy_from_slice(&bytes);
        Ok(())
    };
    // SAFETY: the host passes a valid message buffer or null.
    let st = unsafe { guarded(msg, body) };
    if st == status::OK && too_small {
        status::TOO_SMALL
    } else {
        st
    }
}

/// # Safety
/// `state` was made by this solver's init or restore and is not used afterwards.
unsafe extern "C" fn drop_entry<T: Solver>(state: StateHandle) {
    if !state.is_null() {
        // A panicking Drop must not unwind across the boundary.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: `state` is the box init/restore made for `T`, dropped only here, once.
            drop(unsafe { Box::from_raw(state.cast::<T>()) });
        }));
    }
}
