//! The C ABI between mcopt and a plugin: `#[repr(C)]` descriptors, argument blocks and status codes.
//!
//! Everything here is plain data that both sides read. Layout rules that keep old plugins loadable:
//! the ABI version is the first field of [`PluginDescriptor`], new entry points are announced by a
//! bit in [`PluginDescriptor::capabilities`], and nothing allocated on one side is freed on the
//! other (the caller passes every buffer).
//!
//! # Threads and re-entrancy
//!
//! The host calls a plugin from one thread at a time, and a plugin must call the host back
//! the same way: the host callbacks of a [`ProblemTable`] are **neither re-entrant nor safe to
//! call concurrently**. A solver calls them from the thread that entered it (its `init`,
//! `step`, ... entry), one call at a time, and never from inside another callback (a callback
//! evaluates the model with buffers it owns for the duration of the call). A parallel solver
//! must serialise its callback calls itself; callbacks that may run concurrently would need a
//! new capability bit and a new ABI version.

use std::ffi::c_void;

/// The ABI version this SDK speaks. The host refuses a plugin whose descriptor says otherwise.
///
/// Version 2 made solvers step-wise (init / step / save / restore / drop), so the host owns the
/// loop, the stop rules, checkpoints and progress. Version 3 typed the options (choices in
/// [`OptionDescriptor`], [`OptionType::Choice`]) and gave the (P1) callbacks a message buffer
/// ([`crate::p1::P1_STRUCTURE_VERSION`] 2); plugins of an older version are refused with a
/// request to rebuild.
pub const ABI_VERSION: u32 = 3;

/// Name of the symbol every plugin library exports: `extern "C" fn() -> *const PluginDescriptor`.
pub const ENTRY_SYMBOL: &str = "mcopt_plugin_entry";

/// [`ENTRY_SYMBOL`] with its terminating NUL, as the dynamic loader wants it.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"mcopt_plugin_entry\0";

/// Type of the entry symbol.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;

/// Capability bit: the functions table is present.
pub const CAP_FUNCTIONS: u64 = 1 << 0;
/// Capability bit: the solvers table is present.
pub const CAP_SOLVERS: u64 = 1 << 1;
/// Capability bit: function entries carry a parameter check (`check_params`).
pub const CAP_CHECK_PARAMS: u64 = 1 << 2;

/// Status codes returned by every entry point.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// The plugin reported an error; the message buffer says which.
    pub const ERROR: i32 = 1;
    /// The plugin panicked; the export wrapper caught it and wrote the panic message.
    pub const PANIC: i32 = 2;
    /// The arguments were malformed (null pointer, wrong parameter count, unknown order).
    pub const BAD_ARGS: i32 = 3;
    /// The caller's buffer is too small; the required size was written (solver `save`).
    pub const TOO_SMALL: i32 = 4;
}

/// A borrowed UTF-8 string: pointer and length, no NUL. Strings in descriptors are `'static`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    /// Wrap a static string (usable in statics).
    pub const fn new(s: &'static str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Read the string back.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive the returned reference.
    pub unsafe fn as_str<'a>(&self) -> Result<&'a str, std::str::Utf8Error> {
        if self.ptr.is_null() || self.len == 0 {
            return Ok("");
        }
        // SAFETY: the caller guarantees `len` readable bytes at `ptr` (checked non-null above).
        std::str::from_utf8(unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
    }
}

/// What a plugin library exports (through [`ENTRY_SYMBOL`]).
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Must be first and equal to [`ABI_VERSION`].
    pub abi_version: u32,
    pub name: Str,
    pub version: Str,
    pub functions: *const FunctionDescriptor,
    pub n_functions: usize,
    pub solvers: *const SolverDescriptor,
    pub n_solvers: usize,
    /// `CAP_*` bits.
    pub capabilities: u64,
}

// SAFETY: a descriptor is immutable static data (strings, tables and function pointers).
unsafe impl Sync for PluginDescriptor {}

impl PluginDescriptor {
    /// The functions table.
    ///
    /// # Safety
    /// The descriptor must have been built by this SDK (or follow the same layout) and be alive.
    pub unsafe fn functions(&self) -> &[FunctionDescriptor] {
        if self.functions.is_null() || self.n_functions == 0 {
            return &[];
        }
        // SAFETY: a well-formed, live descriptor has `n_functions` entries at `functions`.
        unsafe { std::slice::from_raw_parts(self.functions, self.n_functions) }
    }

    /// The solvers table.
    ///
    /// # Safety
    /// As for [`PluginDescriptor::functions`].
    pub unsafe fn solvers(&self) -> &[SolverDescriptor] {
        if self.solvers.is_null() || self.n_solvers == 0 || self.capabilities & CAP_SOLVERS == 0 {
            return &[];
        }
        // SAFETY: a well-formed, live descriptor has `n_solvers` entries at `solvers`.
        unsafe { std::slice::from_raw_parts(self.solvers, self.n_solvers) }
    }
}

/// Activation (applied elementwise inside a model) or penalty (summed by the caller).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Activation = 0,
    Penalty = 1,
}

impl Kind {
    pub fn from_u32(k: u32) -> Option<Kind> {
        match k {
            0 => Some(Kind::Activation),
            1 => Some(Kind::Penalty),
            _ => None,
        }
    }
}

/// Smoothness class, for diagnostics and for the self-test.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smoothness {
    /// C∞ (or at least C²) everywhere: tanh, sigmoid, softplus, swish.
    Smooth = 0,
    /// C¹, piecewise C² with breakpoints where the second derivative jumps: elu (α = 1), huber.
    C1 = 1,
    /// Continuous, piecewise smooth with kinks: relu, leaky_relu, l1, mcp, scad, capped_l1.
    Piecewise = 2,
}

impl Smoothness {
    pub fn from_u32(k: u32) -> Option<Smoothness> {
        match k {
            0 => Some(Smoothness::Smooth),
            1 => Some(Smoothness::C1),
            2 => Some(Smoothness::Piecewise),
            _ => None,
        }
    }
}

/// A constant parameter of a function, e.g. the slope of `leaky_relu(x, 0.01)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ParamDescriptor {
    pub name: Str,
    pub default: f64,
    /// 1 if `default` is meaningful, 0 if the parameter must be given.
    pub has_default: u32,
}

/// Arguments of one vectorized ray-Taylor call. Slices of length `n`; `a[k]` and `f[k]` for
/// `k > order` may be null and are not touched.
#[repr(C)]
#[derive(Debug)]
pub struct EvalArgs {
    pub params: *const f64,
    pub n_params: usize,
    /// 0: value only; 1: value and first coefficient; 2: all three.
    pub order: u32,
    /// |a0 − breakpoint| ≤ ztol counts as a tie (0 = exact ties only).
    pub ztol: f64,
    pub n: usize,
    pub a: [*const f64; 3],
    pub f: [*mut f64; 3],
}

/// A caller-owned buffer the plugin writes an error message into (truncated to `cap`).
///
/// The fields are public because the struct crosses the C ABI, so nothing stops safe code
/// from putting any pointer in `ptr`: writing is therefore [`MsgBuf::write`], an `unsafe fn`
/// whose caller vouches for the buffer. Safe code cannot write through a made-up pointer:
///
/// ```compile_fail,E0133
/// use mcopt_plugin_sdk::abi::MsgBuf;
/// let mut m = MsgBuf { ptr: 8 as *mut u8, cap: 64, len: 0 };
/// m.write("undefined behaviour, if this compiled");
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct MsgBuf {
    pub ptr: *mut u8,
    pub cap: usize,
    /// Set by the plugin to the number of bytes written.
    pub len: usize,
}

impl MsgBuf {
    /// Write `msg` (truncated at a char boundary to the capacity).
    ///
    /// # Safety
    /// `ptr` must be null or point to `cap` writable bytes that do not overlap `msg`, as in
    /// a buffer the host passed to an entry point.
    pub unsafe fn write(&mut self, msg: &str) {
        if self.ptr.is_null() {
            return;
        }
        let mut end = msg.len().min(self.cap);
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        // SAFETY: the caller guarantees `cap` writable bytes at `ptr` (non-null here), and
        // `end ≤ cap`; the regions do not overlap, as the caller guarantees.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.ptr, end) };
        self.len = end;
    }

    /// The message written so far.
    ///
    /// # Safety
    /// `ptr` must point to `min(len, cap)` initialized bytes.
    pub unsafe fn message(&self) -> String {
        let len = self.len.min(self.cap);
        if self.ptr.is_null() || len == 0 {
            return String::new();
        }
        // SAFETY: the caller guarantees `min(len, cap)` initialized bytes at `ptr` (non-null).
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(self.ptr, len) }).into_owned()
    }
}

/// Outputs of one call besides the coefficient slices.
#[repr(C)]
#[derive(Debug)]
pub struct EvalOut {
    /// Number of elements whose argument sat on a breakpoint (exactly or within ztol).
    pub active_kinks: usize,
    pub message: MsgBuf,
}

/// The vectorized ray-Taylor entry point.
pub type EvalFn = unsafe extern "C" fn(args: *const EvalArgs, out: *mut EvalOut) -> i32;

/// Arguments of a proximal map: out_i = argmin_z p(z) + (z − v_i)² / (2 step).
#[repr(C)]
#[derive(Debug)]
pub struct ProxArgs {
    pub params: *const f64,
    pub n_params: usize,
    pub step: f64,
    pub n: usize,
    pub v: *const f64,
    pub out: *mut f64,
}

/// The proximal-map entry point of a penalty.
pub type ProxFn = unsafe extern "C" fn(args: *const ProxArgs, message: *mut MsgBuf) -> i32;

/// Checks constant parameter values once, before any call (e.g. `huber` needs delta > 0).
pub type CheckParamsFn =
    unsafe extern "C" fn(params: *const f64, n_params: usize, message: *mut MsgBuf) -> i32;

/// One elementwise function (activation or penalty).
#[repr(C)]
#[derive(Debug)]
pub struct FunctionDescriptor {
    pub name: Str,
    /// A [`Kind`] as `u32` (plain integers, so a bad value is a diagnostic, not undefined behaviour).
    pub kind: u32,
    /// A [`Smoothness`] as `u32`.
    pub smoothness: u32,
    pub params: *const ParamDescriptor,
    pub n_params: usize,
    /// Breakpoints at the default parameters, ascending (the self-test samples them).
    pub breakpoints: *const f64,
    pub n_breakpoints: usize,
    pub eval: EvalFn,
    pub prox: Option<ProxFn>,
    pub check_params: Option<CheckParamsFn>,
}

// SAFETY: immutable static data.
unsafe impl Sync for FunctionDescriptor {}

impl FunctionDescriptor {
    /// The parameter table.
    ///
    /// # Safety
    /// The descriptor must be alive and well formed.
    pub unsafe fn params(&self) -> &[ParamDescriptor] {
        if self.params.is_null() || self.n_params == 0 {
            return &[];
        }
        // SAFETY: a well-formed, live descriptor has `n_params` entries at `params`.
        unsafe { std::slice::from_raw_parts(self.params, self.n_params) }
    }

    /// The breakpoints table.
    ///
    /// # Safety
    /// As for [`FunctionDescriptor::params`].
    pub unsafe fn breakpoints(&self) -> &[f64] {
        if self.breakpoints.is_null() || self.n_breakpoints == 0 {
            return &[];
        }
        // SAFETY: a well-formed, live descriptor has `n_breakpoints` entries at `breakpoints`.
        unsafe { std::slice::from_raw_parts(self.breakpoints, self.n_breakpoints) }
    }
}

/// Type of a solver option (values always travel as `f64`; integers and booleans are exact, a
/// choice travels as the index of the chosen name in [`OptionDescriptor::choices`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionType {
    Real = 0,
    Integer = 1,
    Bool = 2,
    Choice = 3,
}

impl OptionType {
    pub fn from_u32(k: u32) -> Option<OptionType> {
        match k {
            0 => Some(OptionType::Real),
            1 => Some(OptionType::Integer),
            2 => Some(OptionType::Bool),
            3 => Some(OptionType::Choice),
            _ => None,
        }
    }
}

/// One entry of a solver's options schema.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OptionDescriptor {
    pub name: Str,
    /// An [`OptionType`] as `u32`.
    pub ty: u32,
    pub default: f64,
    pub description: Str,
    /// The allowed range: `lo ≤ v ≤ hi` (infinite bounds for none); [`OPEN_LO`] / [`OPEN_HI`]
    /// bits in `open` make a bound strict. The host checks it before a run starts.
    pub lo: f64,
    pub hi: f64,
    pub open: u32,
    /// The names a [`OptionType::Choice`] option may take (`n_choices` of them; none for the
    /// other types). The run file writes a name; the value is its index.
    pub choices: *const Str,
    pub n_choices: usize,
}

impl OptionDescriptor {
    /// The names of a choice option (empty for the other types).
    ///
    /// # Safety
    /// The descriptor must be alive and well formed (`n_choices` names at `choices`).
    pub unsafe fn choice_names(&self) -> &[Str] {
        if self.choices.is_null() || self.n_choices == 0 {
            return &[];
        }
        // SAFETY: a well-formed, live descriptor has `n_choices` names at `choices`.
        unsafe { std::slice::from_raw_parts(self.choices, self.n_choices) }
    }
}

/// [`OptionDescriptor::open`] bit: the lower bound is strict.
pub const OPEN_LO: u32 = 1;
/// [`OptionDescriptor::open`] bit: the upper bound is strict.
pub const OPEN_HI: u32 = 2;

/// Problem capability bit: [`ProblemTable::structure`] points to the (P1) structure, laid out
/// as [`ProblemTable::structure_version`] says (the layout is defined next to the solver that
/// reads it; the SDK only carries the pointer).
pub const PROBLEM_CAP_STRUCTURE: u64 = 1 << 0;
/// Problem capability bit: [`ProblemTable::batch_gradient`] is present and
/// [`ProblemTable::n_batches`] says how many minibatches one epoch has.
pub const PROBLEM_CAP_BATCHES: u64 = 1 << 1;

/// The problem a solver minimizes, as host callbacks. `ctx` is opaque to the plugin. The host
/// counts every call (the solver does not need to).
///
/// The callbacks are neither re-entrant nor safe to call concurrently (see the module
/// documentation): one call at a time, from the thread that entered the solver.
#[repr(C)]
#[derive(Debug)]
pub struct ProblemTable {
    pub ctx: *mut c_void,
    pub dim: usize,
    /// value(ctx, x, &mut f) → status.
    pub value: unsafe extern "C" fn(ctx: *mut c_void, x: *const f64, out: *mut f64) -> i32,
    /// directional(ctx, x, d, order (1 or 2), out) → status, writing out = (f, f′(x; d), f″(x; d)).
    pub directional: unsafe extern "C" fn(
        ctx: *mut c_void,
        x: *const f64,
        d: *const f64,
        order: u32,
        out: *mut f64,
    ) -> i32,
    /// gradient(ctx, x, g, &mut f) → status: a gradient where f is differentiable, else the
    /// host's documented selection (right derivatives at kinks).
    pub gradient:
        unsafe extern "C" fn(ctx: *mut c_void, x: *const f64, g: *mut f64, value: *mut f64) -> i32,
    /// `PROBLEM_CAP_*` bits: which of the optional fields below are meaningful.
    pub capabilities: u64,
    /// Number of minibatches in the current epoch (1 without [`PROBLEM_CAP_BATCHES`]).
    pub n_batches: usize,
    /// batch_gradient(ctx, k, x, g, &mut f) → status: like `gradient`, on minibatch `k` (0-based,
    /// below `n_batches`) of the current epoch; the host draws the batches from the run's seed
    /// and the epoch number. Present with [`PROBLEM_CAP_BATCHES`].
    pub batch_gradient: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            batch: usize,
            x: *const f64,
            g: *mut f64,
            value: *mut f64,
        ) -> i32,
    >,
    /// Layout version of `structure` (meaningful with [`PROBLEM_CAP_STRUCTURE`]).
    pub structure_version: u32,
    /// Opaque pointer to the (P1) structure; null without [`PROBLEM_CAP_STRUCTURE`].
    pub structure: *const c_void,
}

/// How a step ended, written to [`StepOut::signal`].
pub mod signal {
    /// Keep iterating.
    pub const CONTINUE: u32 = 0;
    /// The solver's own stationarity test holds.
    pub const CONVERGED: u32 = 1;
    /// No progress is possible (a line search found no decrease, a kink, the limit of precision).
    pub const STALLED: u32 = 2;
    /// The iterate or the objective is no longer finite.
    pub const DIVERGED: u32 = 3;
}

/// What one step reports besides the new iterate.
#[repr(C)]
#[derive(Debug)]
pub struct StepOut {
    /// A [`signal`] code.
    pub signal: u32,
    /// The solver's own stationarity measure at the new iterate (e.g. a gradient norm), or NaN
    /// when it has none; the host's `tol` stop rule compares it.
    pub stationarity: f64,
    /// Values of the solver's metrics, in the order of [`SolverDescriptor::metrics`]; the host
    /// passes `n_metrics` writable entries, initialised to NaN.
    pub metrics: *mut f64,
    pub n_metrics: usize,
}

/// Arguments of [`InitFn`] and [`RestoreFn`]: options, problem and the starting point.
#[repr(C)]
#[derive(Debug)]
pub struct InitArgs {
    pub problem: *const ProblemTable,
    /// Option values in schema order (the host fills defaults and checks types).
    pub options: *const f64,
    pub n_options: usize,
    /// The starting point (for `restore`: the iterate saved with the state).
    pub x: *const f64,
    pub n: usize,
    /// The run's seed, for solvers that draw random numbers.
    pub seed: u64,
}

/// An opaque solver state, allocated by the plugin in `init` / `restore` and freed by the
/// plugin's [`DropFn`] (never by the host).
pub type StateHandle = *mut c_void;

/// init(args, &mut state, msg) → status: build the state at the starting point.
pub type InitFn =
    unsafe extern "C" fn(args: *const InitArgs, state: *mut StateHandle, msg: *mut MsgBuf) -> i32;

/// step(state, problem, x, out, msg) → status: one iteration (an epoch for minibatch solvers).
/// `x` (length `dim`) receives the new iterate. On an error status `msg` holds the error; on OK
/// with a signal other than [`signal::CONTINUE`], `msg` may hold why the run ends (the host
/// reports it with the run's status).
pub type StepFn = unsafe extern "C" fn(
    state: StateHandle,
    problem: *const ProblemTable,
    x: *mut f64,
    out: *mut StepOut,
    msg: *mut MsgBuf,
) -> i32;

/// save(state, buf, cap, &mut len, msg) → status: serialize the state into `buf`; `len`
/// receives the size needed. When `cap < len` nothing is written and the status is
/// [`status::TOO_SMALL`]; the host retries with a larger buffer.
pub type SaveFn = unsafe extern "C" fn(
    state: StateHandle,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    msg: *mut MsgBuf,
) -> i32;

/// restore(args, bytes, len, &mut state, msg) → status: rebuild a state from a blob that
/// `save` wrote (same options and problem).
pub type RestoreFn = unsafe extern "C" fn(
    args: *const InitArgs,
    bytes: *const u8,
    len: usize,
    state: *mut StateHandle,
    msg: *mut MsgBuf,
) -> i32;

/// Free a state made by `init` or `restore`.
pub type DropFn = unsafe extern "C" fn(state: StateHandle);

/// One solver: the four step-wise entry points (plus `drop`), its options schema and the names
/// of the metrics each step reports.
#[repr(C)]
#[derive(Debug)]
pub struct SolverDescriptor {
    pub name: Str,
    pub description: Str,
    pub options: *const OptionDescriptor,
    pub n_options: usize,
    /// Metric names, one per value of [`StepOut::metrics`].
    pub metrics: *const Str,
    pub n_metrics: usize,
    /// `PROBLEM_CAP_*` bits the solver cannot run without (the host refuses before `init`).
    pub requires: u64,
    pub init: InitFn,
    pub step: StepFn,
    pub save: SaveFn,
    pub restore: RestoreFn,
    pub drop: DropFn,
}

// SAFETY: immutable static data.
unsafe impl Sync for SolverDescriptor {}

impl SolverDescriptor {
    /// The options schema.
    ///
    /// # Safety
    /// The descriptor must be alive and well formed.
    pub unsafe fn options(&self) -> &[OptionDescriptor] {
        if self.options.is_null() || self.n_options == 0 {
            return &[];
        }
        // SAFETY: a well-formed, live descriptor has `n_options` entries at `options`.
        unsafe { std::slice::from_raw_parts(self.options, self.n_options) }
    }

    /// The metric names.
    ///
    /// # Safety
    /// As for [`SolverDescriptor::options`].
    pub unsafe fn metrics(&self) -> &[Str] {
        if self.metrics.is_null() || self.n_metrics == 0 {
            return &[];
        }
        // SAFETY: a well-formed, live descriptor has `n_metrics` entries at `metrics`.
        unsafe { std::slice::from_raw_parts(self.metrics, self.n_metrics) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_buf_truncates_at_a_char_boundary_and_reads_back() {
        let mut store = [0u8; 5];
        let mut m = MsgBuf {
            ptr: store.as_mut_ptr(),
            cap: store.len(),
            len: 0,
        };
        // "né": n (1 byte), é (2 bytes); 5 bytes fit "abc" + "n", not the é after it.
        // SAFETY: `store` holds `cap` writable bytes and outlives `m`.
        unsafe { m.write("abcné") };
        assert_eq!(m.len, 4);
        // SAFETY: `write` initialised `len` bytes of `store`.
        assert_eq!(unsafe { m.message() }, "abcn");
        let mut null = MsgBuf {
            ptr: std::ptr::null_mut(),
            cap: 8,
            len: 0,
        };
        // SAFETY: a null buffer is allowed and left alone.
        unsafe { null.write("ignored") };
        assert_eq!(null.len, 0);
    }
}
