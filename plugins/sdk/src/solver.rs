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
use crate::p1::{P1Structure, P1Table, RemoteP1, P1_STRUCTURE_VERSION};
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
            choices: std::ptr::null(),
            n_choices: 0,
        }
    }

    /// A real option.
    pub const fn real(name: &'static str, default: f64, description: &'static str) -> Self {
        Self::new(name, OptionType::Real, default, description)
    }

    /// An integer option.
    pub const fn integer(name: &'static str, default: i64, description: &'static str) -> Self {
        Self::new(name, OptionType::Integer, default as f64, description)
    }

    /// A boolean option.
    pub const fn bool(name: &'static str, default: bool, description: &'static str) -> Self {
        let d = if default { 1.0 } else { 0.0 };
        Self::new(name, OptionType::Bool, d, description)
    }

    /// An option that takes one of `names` (written as the name in a run file); the default is
    /// `names[default]`.
    pub const fn choice(
        name: &'static str,
        names: &'static [Str],
        default: usize,
        description: &'static str,
    ) -> Self {
        let mut d = Self::new(name, OptionType::Choice, default as f64, description);
        d.choices = names.as_ptr();
        d.n_choices = names.len();
        d.range(0.0, names.len() as f64, OPEN_HI)
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
    pub(crate) table: &'a ProblemTable,
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

    /// The (P1) structure and callbacks, when the host offers them in this SDK's layout
    /// ([`P1_STRUCTURE_VERSION`]); reads the structure from the host's table (copies its
    /// pattern: a solver that steps many times keeps it and calls [`Problem::p1_reusing`]).
    pub fn p1(&self) -> Result<RemoteP1<'a>, String> {
        let table = self.p1_table()?;
        // SAFETY: `p1_table` returned the host's live table of this layout version.
        Ok(unsafe { RemoteP1::new(table) })
    }

    /// Like [`Problem::p1`] with a structure read earlier from the same host (by `p1` and
    /// [`RemoteP1::into_structure`]), so the pattern is not copied again. A structure whose
    /// sizes differ from the host's table is refused.
    pub fn p1_reusing(&self, structure: P1Structure) -> Result<RemoteP1<'a>, String> {
        let t = self.p1_table()?;
        let fits = structure.n_theta == t.n_theta
            && structure.n_z == t.n_z
            && structure.rows() == t.rows
            && structure.col_idx.len() == t.nnz
            && structure.n_pieces == t.n_pieces
            && structure.beta.len() == t.rows
            && structure.group_of_row.len() == t.rows
            && structure.group_scale.len() == t.n_groups
            && structure.params.len() == t.n_params;
        if !fits {
            return Err("the kept (P1) structure does not match the host's".to_string());
        }
        // SAFETY: `p1_table` returned the host's live table; the structure's sizes are the
        // table's (checked above), which is all `RemoteP1` relies on.
        Ok(unsafe { RemoteP1::with_structure(t, structure) })
    }

    fn p1_table(&self) -> Result<&'a P1Table, String> {
        let t = self.table;
        let offered = t.capabilities & PROBLEM_CAP_STRUCTURE != 0 && !t.structure.is_null();
        if !offered {
            return Err("the problem offers no (P1) structure".to_string());
        }
        if t.structure_version != P1_STRUCTURE_VERSION {
            return Err(format!(
                "the host's (P1) structure has layout version {}, this SDK reads version {}",
                t.structure_version, P1_STRUCTURE_VERSION
            ));
        }
        // SAFETY: with PROBLEM_CAP_STRUCTURE and this layout version, the host's `structure`
        // points to a P1Table valid while the problem table is (abi::ProblemTable).
        Ok(unsafe { &*t.structure.cast::<P1Table>() })
    }

    /// One epoch of a minibatch method: for every minibatch, the gradient at `x` and then
    /// `update(problem, x, batch)`, which moves `x`. Stops early as [`Signal::Diverged`] when
    /// f or the gradient is not finite, or with the step `update` returns; at the end, goes on
    /// (diverged if `x` is not finite) with the last gradient norm as stationarity measure.
    pub fn epoch(
        &mut self,
        x: &mut [f64],
        grad: &mut [f64],
        mut update: impl FnMut(&mut Problem<'a>, &mut [f64], Batch<'_>) -> Result<Option<Step>, String>,
    ) -> Result<Step, String> {
        let mut gnorm = 0.0;
        for b in 0..self.n_batches() {
            let value = self.batch_gradient(b, x, grad)?;
            gnorm = norm(grad);
            if !value.is_finite() || !gnorm.is_finite() {
                return Ok(Step::diverged(gnorm));
            }
            let batch = Batch {
                index: b,
                value,
                grad: &mut *grad,
                grad_norm: gnorm,
            };
            if let Some(step) = update(self, x, batch)? {
                return Ok(step);
            }
        }
        Ok(if x.iter().all(|v| v.is_finite()) {
            Step::next(gnorm)
        } else {
            Step::diverged(gnorm)
        })
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

/// ‖v‖₂.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// One minibatch of [`Problem::epoch`]: its index, f and gradient on it (the update may change
/// the gradient, e.g. clip it) and the gradient's norm before any change.
#[derive(Debug)]
pub struct Batch<'g> {
    pub index: usize,
    pub value: f64,
    pub grad: &'g mut [f64],
    pub grad_norm: f64,
}

/// A solver's option values, resolved by the host by name against [`Solver::OPTIONS`]
/// (defaults filled, types and ranges checked before `init`), read by name and type.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    schema: &'static [OptionDescriptor],
    values: &'a [f64],
}

impl<'a> Options<'a> {
    /// Values in the order of `schema` (the host's side of the boundary, and
    /// [`crate::testing`]); `values` must have one entry per schema entry.
    pub fn new(schema: &'static [OptionDescriptor], values: &'a [f64]) -> Result<Self, String> {
        if schema.len() != values.len() {
            return Err(format!(
                "{} option values for a schema of {} options",
                values.len(),
                schema.len()
            ));
        }
        Ok(Options { schema, values })
    }

    /// The values in schema order.
    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    fn get(&self, name: &str, ty: OptionType) -> Result<(f64, &'static OptionDescriptor), String> {
        for (d, v) in self.schema.iter().zip(self.values) {
            // SAFETY: schema strings are the solver's own `'static` descriptors.
            if unsafe { d.name.as_str() } == Ok(name) {
                if d.ty != ty as u32 {
                    return Err(format!("option `{name}` is not declared as {ty:?}"));
                }
                return Ok((*v, d));
            }
        }
        Err(format!("no option `{name}` in the solver's schema"))
    }

    /// A real option.
    pub fn number(&self, name: &str) -> Result<f64, String> {
        self.get(name, OptionType::Real).map(|(v, _)| v)
    }

    /// An integer option.
    pub fn integer(&self, name: &str) -> Result<i64, String> {
        self.get(name, OptionType::Integer).map(|(v, _)| v as i64)
    }

    /// A boolean option.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        self.get(name, OptionType::Bool).map(|(v, _)| v != 0.0)
    }

    /// A choice option: the chosen name (one of those declared).
    pub fn choice(&self, name: &str) -> Result<&'static str, String> {
        let (v, d) = self.get(name, OptionType::Choice)?;
        // SAFETY: schema strings and choice tables are the solver's own `'static` descriptors.
        let names = unsafe { d.choice_names() };
        let k = v as usize;
        let Some(s) = names.get(k).filter(|_| v >= 0.0 && v.fract() == 0.0) else {
            return Err(format!("option `{name}` has no choice number {v}"));
        };
        // SAFETY: as above, the solver's own `'static` strings.
        unsafe { s.as_str() }.map_err(|_| format!("choice names of `{name}` are not UTF-8"))
    }
}

/// Where a run starts: the options, the starting point and the run's seed.
#[derive(Clone, Copy, Debug)]
pub struct Start<'a> {
    pub options: Options<'a>,
    pub x: &'a [f64],
    pub seed: u64,
}

/// The metric a solver that iterates on another objective than the problem's f (SRPA: Θ of
/// (P1)) reports that objective under: the trace's `objective` column, the report's and the
/// best iterate's objective are then this metric instead of f.
pub const OBJECTIVE_METRIC: &str = "objective";

/// The values of one step's metrics, set by name (one per [`Solver::METRICS`], NaN until set).
#[derive(Debug)]
pub struct Metrics<'a> {
    names: &'static [Str],
    values: &'a mut [f64],
}

impl<'a> Metrics<'a> {
    /// Slots for `names` (the host's side, and [`crate::testing`]).
    pub fn new(names: &'static [Str], values: &'a mut [f64]) -> Result<Self, String> {
        if names.len() != values.len() {
            return Err("metric count mismatch".to_string());
        }
        Ok(Metrics { names, values })
    }

    /// Set metric `name`; a name the solver did not declare is an error.
    pub fn set(&mut self, name: &str, value: f64) -> Result<(), String> {
        for (n, v) in self.names.iter().zip(self.values.iter_mut()) {
            // SAFETY: metric names are the solver's own `'static` strings.
            if unsafe { n.as_str() } == Ok(name) {
                *v = value;
                return Ok(());
            }
        }
        Err(format!("no metric `{name}` declared by the solver"))
    }

    /// The values in declaration order.
    pub fn values(&self) -> &[f64] {
        self.values
    }
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

    /// Stop: f, the gradient or the iterate is not finite (stationarity measure `s`).
    pub fn diverged(s: f64) -> Step {
        Step {
            signal: Signal::Diverged,
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
    /// Names of the values [`Solver::step`] sets in its [`Metrics`] (trace columns). A solver
    /// that minimizes another objective than f reports it as [`OBJECTIVE_METRIC`].
    const METRICS: &'static [Str] = &[];
    /// `PROBLEM_CAP_*` bits the solver cannot run without.
    const REQUIRES: u64 = 0;

    /// Check the options and build the state at `start.x`.
    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String>;

    /// One iteration: write the new iterate into `x` (which holds the current one) and set the
    /// metrics (those not set stay NaN).
    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut Metrics<'_>,
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
    // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
    let table = unsafe { args.problem.as_ref() }.ok_or_else(|| bad("null problem"))?;
    if args.n_options != T::OPTIONS.len() || args.n != table.dim {
        return Err(bad("option count or dimension mismatch"));
    }
    // SAFETY: valid arguments hold `n_options` option values and `n` entries of x.
    let values = unsafe { slice(args.options, args.n_options) };
    let start = Start {
        options: Options::new(T::OPTIONS, values).map_err(|e| bad(&e))?,
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
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
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
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
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
        let bytes = unsafe { slice(bytes, len) };
        let s = T::restore(&mut Problem { table }, start, bytes).map_err(|e| (status::ERROR, e))?;
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
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
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
        let table = unsafe { problem.as_ref() }.ok_or_else(|| bad("null problem"))?;
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
        let out = unsafe { out.as_mut() }.ok_or_else(|| bad("null step output"))?;
        if out.n_metrics != T::METRICS.len() {
            return Err(bad("metric count mismatch"));
        }
        // SAFETY: the host passes `dim` writable entries of x and `n_metrics` writable
        // metrics, neither aliasing the other.
        let x = unsafe { slice_mut(x, table.dim) };
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
        let values = unsafe { slice_mut(out.metrics, out.n_metrics) };
        let mut metrics = Metrics::new(T::METRICS, values).map_err(|e| bad(&e))?;
        let step = s
            .step(&mut Problem { table }, x, &mut metrics)
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
        // SAFETY: the host passes valid pointers (or nulls, refused) as the ABI documents.
        let len = unsafe { len.as_mut() }.ok_or_else(|| bad("null length"))?;
        // reserved at the host's buffer size (the last state's length): no regrowth copies
        let mut bytes = Vec::with_capacity(cap);
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
