//! The function registry: every activation, penalty and solver mcopt knows, from the standard
//! plugin (linked in) and from loaded libraries, looked up by name once and called by id on
//! whole slices.
//!
//! The standard plugin goes through the same [`PluginDescriptor`] as a loaded one; the only
//! difference is that its outputs are trusted (a loaded plugin's outputs are checked for NaN).
//! Loading libraries lives in [`crate::plugin_host`]; this module never touches libloading and
//! never imports `plugin_host`. Descriptor decoding is [`read`], solver callback tables [`solver`].

pub mod read;
pub mod solver;

pub use solver::{
    Evaluations, OptionProblem, OptionValue, SolverError, SolverInstance, SolverProblem,
    SolverStart, StepReport, StepSignal, PROBLEM_CAP_BATCHES, PROBLEM_CAP_STRUCTURE,
};

use crate::diag::{Diag, Diags};
use mcopt_plugin_sdk::abi::{
    status, CheckParamsFn, EvalArgs, EvalFn, EvalOut, MsgBuf, PluginDescriptor, ProxArgs, ProxFn,
    SolverDescriptor, ABI_VERSION, CAP_CHECK_PARAMS,
};
use std::collections::HashMap;
use std::fmt;
use std::mem::MaybeUninit;
use std::path::PathBuf;

pub use mcopt_plugin_sdk::abi::{Kind as FunctionKind, OptionDescriptor, OptionType, Smoothness};
pub use mcopt_plugin_sdk::Order;

/// Most constant parameters a function may declare.
pub const MAX_PARAMS: usize = 8;
/// Size of the message buffer a plugin may write an error into.
const MSG_CAP: usize = 512;

/// A function, found once by [`Registry::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FunctionId(pub u32);

/// A solver, found once by [`Registry::solver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SolverId(pub u32);

/// A constant parameter: `leaky_relu(x, 0.01)`, `elu(x, 1.0)`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ParamInfo {
    pub name: String,
    pub default: Option<f64>,
}

/// Where a function or solver comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PluginSource {
    pub plugin: String,
    pub version: String,
    /// The shared library it was loaded from; `None` for the built-in standard plugin.
    pub library: Option<PathBuf>,
}

impl PluginSource {
    /// "plugin std 0.1.0 (built in)" or "plugin swish 0.1.0 (/path/libmcopt_swish.so)".
    pub fn describe(&self) -> String {
        match &self.library {
            None => format!("plugin {} {} (built in)", self.plugin, self.version),
            Some(p) => format!("plugin {} {} ({})", self.plugin, self.version, p.display()),
        }
    }
}

/// What the rest of mcopt knows about a function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionInfo {
    pub name: String,
    pub kind: FunctionKind,
    pub smoothness: Smoothness,
    pub params: Vec<ParamInfo>,
    /// Breakpoints at the default parameters, ascending.
    pub breakpoints: Vec<f64>,
    pub has_prox: bool,
    pub source: PluginSource,
}

/// One option of a solver's schema.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OptionInfo {
    pub name: String,
    #[serde(serialize_with = "serialize_option_type")]
    pub ty: OptionType,
    pub default: f64,
    pub description: String,
    /// The allowed range as text ("> 0", "in [0, 1)"), empty when unbounded.
    pub range: String,
    /// Bounds as declared: (lo, hi, `OPEN_*` bits).
    #[serde(skip)]
    pub(crate) bounds: (f64, f64, u32),
    /// The names a choice option takes (its value is the index); empty for other types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

impl OptionInfo {
    /// Whether `v` lies in the declared range.
    pub fn admits(&self, v: f64) -> bool {
        let (lo, hi, open) = self.bounds;
        let mut d = OptionDescriptor::new("", self.ty, self.default, "");
        d.lo = lo;
        d.hi = hi;
        d.open = open;
        d.admits(v)
    }
}

fn serialize_option_type<S: serde::Serializer>(t: &OptionType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(option_type_name(*t))
}

/// What a plugin of ABI version `v` (not ours) was built for, in words.
pub fn abi_age(v: u32) -> &'static str {
    match v {
        v if v > ABI_VERSION => "built by a newer mcopt-plugin-sdk",
        2 => "built by an older mcopt-plugin-sdk, with positional solver options and (P1) callbacks without messages",
        1 => "built by an older mcopt-plugin-sdk, before step-wise solvers",
        _ => "built by an older mcopt-plugin-sdk",
    }
}

/// "real", "integer", "bool" or "choice".
pub fn option_type_name(t: OptionType) -> &'static str {
    match t {
        OptionType::Real => "real",
        OptionType::Integer => "integer",
        OptionType::Bool => "bool",
        OptionType::Choice => "choice",
    }
}

/// What the rest of mcopt knows about a solver.
#[derive(Clone, Debug, PartialEq)]
pub struct SolverInfo {
    pub name: String,
    pub description: String,
    pub options: Vec<OptionInfo>,
    /// Names of the metrics each step reports (trace columns).
    pub metrics: Vec<String>,
    /// `PROBLEM_CAP_*` bits the solver needs from the problem.
    pub requires: u64,
    pub source: PluginSource,
}

pub(crate) struct FunctionEntry {
    pub(crate) info: FunctionInfo,
    eval: EvalFn,
    prox: Option<ProxFn>,
    check: Option<CheckParamsFn>,
    /// Outputs of untrusted (loaded) plugins are checked for NaN.
    trusted: bool,
}

pub(crate) struct SolverEntry {
    pub(crate) info: SolverInfo,
    pub(crate) desc: &'static SolverDescriptor,
}

/// Every function and solver mcopt can call.
#[derive(Default)]
pub struct Registry {
    functions: Vec<FunctionEntry>,
    by_name: HashMap<String, FunctionId>,
    pub(crate) solvers: Vec<SolverEntry>,
    /// Plugins registered so far (for duplicate and listing diagnostics).
    pub(crate) plugins: Vec<PluginSource>,
}

/// What went wrong in a call into a plugin function.
#[derive(Clone, Debug, PartialEq)]
pub enum CallErrorKind {
    /// The function panicked (caught inside the plugin); the panic message.
    Panicked(String),
    /// The function returned an error status with this message.
    Failed(String),
    /// The arguments were malformed (slice lengths, parameter count).
    BadArguments(String),
    /// Element `index` of coefficient `coefficient` came back NaN from a non-NaN argument.
    NotANumber {
        index: usize,
        coefficient: usize,
        argument: f64,
    },
    /// `prox` was called on a function without a proximal map.
    NoProx,
}

/// A failed call: which function, from which plugin, and what went wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct CallError {
    pub function: String,
    pub plugin: String,
    pub kind: CallErrorKind,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "function `{}` of plugin {} ", self.function, self.plugin)?;
        match &self.kind {
            CallErrorKind::Panicked(m) => f.write_str(m),
            CallErrorKind::Failed(m) => write!(f, "reported an error: {m}"),
            CallErrorKind::BadArguments(m) => write!(f, "was called with bad arguments: {m}"),
            CallErrorKind::NotANumber { index, coefficient, argument } => write!(
                f,
                "returned NaN for coefficient f{coefficient} of element {index} (argument {argument})"
            ),
            CallErrorKind::NoProx => write!(f, "has no proximal map"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<CallError> for Diag {
    fn from(e: CallError) -> Diag {
        Diag::new("mcopt::plugin::call", e.to_string())
    }
}

/// Whether the slices up to `order` all have the length of `a[0]`.
#[inline]
pub(crate) fn lengths_ok(order: Order, a: &[&[f64]; 3], f: &[&mut [f64]; 3]) -> bool {
    let n = a[0].len();
    (0..=order.as_u32() as usize).all(|k| a[k].len() == n && f[k].len() == n)
}

impl Registry {
    /// A registry with no functions.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// A registry holding the standard plugin, linked into the binary and registered through the
    /// same descriptor a loaded library exports.
    pub fn with_standard() -> Registry {
        let mut r = Registry::empty();
        // SAFETY: the standard plugin's descriptor is static data built by the SDK.
        let done = unsafe { r.register(mcopt_std::descriptor(), None, true) };
        if let Err(e) = done {
            // The standard plugin is ours: a failure here is a bug, not a user error.
            panic!("the standard plugin does not register: {e}");
        }
        r
    }

    /// The id of function `name`.
    pub fn lookup(&self, name: &str) -> Option<FunctionId> {
        self.by_name.get(name).copied()
    }

    /// Everything known about function `id`.
    pub fn info(&self, id: FunctionId) -> &FunctionInfo {
        &self.functions[id.0 as usize].info
    }

    /// Every function name, sorted (for "unknown function" diagnostics).
    pub fn function_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .functions
            .iter()
            .map(|e| e.info.name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Every function id, in registration order.
    pub fn function_ids(&self) -> impl Iterator<Item = FunctionId> {
        (0..self.functions.len() as u32).map(FunctionId)
    }

    /// The plugins registered so far, in order.
    pub fn plugins(&self) -> &[PluginSource] {
        &self.plugins
    }

    /// Check constant parameter values once (count, defaults, the plugin's own check), before
    /// any call; returns the full parameter vector with defaults filled in.
    pub fn check_params(&self, id: FunctionId, params: &[f64]) -> Result<Vec<f64>, CallError> {
        let e = &self.functions[id.0 as usize];
        let mut buf = [0.0; MAX_PARAMS];
        let full = fill_params(e, params, &mut buf)?.to_vec();
        if let Some(check) = e.check {
            let mut store = [MaybeUninit::<u8>::uninit(); MSG_CAP];
            let mut msg = msg_buf(&mut store);
            // SAFETY: `full` has the declared number of parameters; msg is a valid buffer.
            let st = unsafe { check(full.as_ptr(), full.len(), &mut msg) };
            if st != status::OK {
                return Err(call_error(e, st, &msg));
            }
        }
        Ok(full)
    }

    /// Elementwise ray-Taylor evaluation along x + t d: inputs `a = [a0, a1, a2]`, outputs
    /// `f = [f0, f1, f2]`, each of length n; slices beyond `order` may be empty and are not
    /// touched. Returns the number of active kinks (arguments on a breakpoint, exactly or within
    /// `ztol`). For a penalty, f0..f2 are the per-element values p(a_i); the caller sums them.
    ///
    /// `params` may omit trailing parameters that have defaults. No allocation, no lookup.
    #[inline]
    pub fn call(
        &self,
        id: FunctionId,
        params: &[f64],
        order: Order,
        ztol: f64,
        a: [&[f64]; 3],
        f: [&mut [f64]; 3],
    ) -> Result<usize, CallError> {
        let e = &self.functions[id.0 as usize];
        if !lengths_ok(order, &a, &f) {
            return Err(bad_args(e, "coefficient slices of different lengths"));
        }
        let mut buf = [0.0; MAX_PARAMS];
        let params = fill_params(e, params, &mut buf)?;
        let [f0, f1, f2] = f;
        let args = EvalArgs {
            params: params.as_ptr(),
            n_params: params.len(),
            order: order.as_u32(),
            // A negative or NaN tolerance means exact ties only.
            ztol: if ztol > 0.0 { ztol } else { 0.0 },
            n: a[0].len(),
            a: [a[0].as_ptr(), a[1].as_ptr(), a[2].as_ptr()],
            f: [f0.as_mut_ptr(), f1.as_mut_ptr(), f2.as_mut_ptr()],
        };
        let mut store = [MaybeUninit::<u8>::uninit(); MSG_CAP];
        let mut out = EvalOut {
            active_kinks: 0,
            message: msg_buf(&mut store),
        };
        // SAFETY: the slices are valid for n elements up to `order` and do not alias (they are
        // distinct Rust borrows); the entry point was validated at registration.
        let st = unsafe { (e.eval)(&args, &mut out) };
        if st != status::OK {
            return Err(call_error(e, st, &out.message));
        }
        if !e.trusted {
            check_nan(e, order, &a, [&*f0, &*f1, &*f2])?;
        }
        Ok(out.active_kinks)
    }

    /// Proximal map of a penalty, elementwise: `out_i = argmin_z p(z) + (z − v_i)² / (2 step)`.
    pub fn prox(
        &self,
        id: FunctionId,
        params: &[f64],
        step: f64,
        v: &[f64],
        out: &mut [f64],
    ) -> Result<(), CallError> {
        let e = &self.functions[id.0 as usize];
        let Some(prox) = e.prox else {
            return Err(error(e, CallErrorKind::NoProx));
        };
        if v.len() != out.len() {
            return Err(bad_args(e, "input and output of different lengths"));
        }
        let mut buf = [0.0; MAX_PARAMS];
        let params = fill_params(e, params, &mut buf)?;
        let args = ProxArgs {
            params: params.as_ptr(),
            n_params: params.len(),
            step,
            n: v.len(),
            v: v.as_ptr(),
            out: out.as_mut_ptr(),
        };
        let mut store = [MaybeUninit::<u8>::uninit(); MSG_CAP];
        let mut msg = msg_buf(&mut store);
        // SAFETY: slices valid for n elements; entry validated at registration.
        let st = unsafe { prox(&args, &mut msg) };
        if st != status::OK {
            return Err(call_error(e, st, &msg));
        }
        Ok(())
    }

    /// Register every function and solver of a plugin, or nothing if any diagnostic arises
    /// (ABI mismatch, malformed table, a name already registered by another plugin).
    ///
    /// # Safety
    /// `desc` must point to a descriptor laid out as the SDK's, alive for the rest of the process.
    pub(crate) unsafe fn register(
        &mut self,
        desc: &'static PluginDescriptor,
        library: Option<PathBuf>,
        trusted: bool,
    ) -> Result<(), Diags> {
        let where_ = library
            .as_ref()
            .map_or("the built-in plugin".to_string(), |p| {
                p.display().to_string()
            });
        if desc.abi_version != ABI_VERSION {
            return Err(Diag::new(
                "mcopt::plugin::abi",
                format!(
                    "plugin ABI version {} expected, found {} in {where_} ({})",
                    ABI_VERSION,
                    desc.abi_version,
                    abi_age(desc.abi_version)
                ),
            )
            .help("rebuild the plugin against this mcopt's mcopt-plugin-sdk")
            .into());
        }
        // SAFETY (the strings and tables read here): the caller guarantees an SDK-layout
        // descriptor alive for the rest of the process, and its strings and tables with it.
        let source = PluginSource {
            // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process.
            plugin: unsafe { read_str(desc.name, "plugin name", &where_) }?,
            // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process.
            version: unsafe { read_str(desc.version, "plugin version", &where_) }?,
            library,
        };
        // SAFETY: as above, the descriptor and its tables are alive for the process.
        let functions = unsafe { read::functions(desc, &source, &where_) }?;
        // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process.
        let solvers = unsafe { read::solvers(desc, &source, &where_) }?;
        self.check_duplicates(&functions, &solvers, &source)?;
        let check_caps = desc.capabilities & CAP_CHECK_PARAMS != 0;
        for (info, fd) in functions {
            let id = FunctionId(self.functions.len() as u32);
            self.by_name.insert(info.name.clone(), id);
            self.functions.push(FunctionEntry {
                info,
                eval: fd.eval,
                prox: fd.prox,
                check: if check_caps { fd.check_params } else { None },
                trusted,
            });
        }
        for (info, desc) in solvers {
            self.solvers.push(SolverEntry { info, desc });
        }
        self.plugins.push(source);
        Ok(())
    }

    fn check_duplicates(
        &self,
        functions: &[(FunctionInfo, &mcopt_plugin_sdk::abi::FunctionDescriptor)],
        solvers: &[(SolverInfo, &'static SolverDescriptor)],
        source: &PluginSource,
    ) -> Result<(), Diags> {
        let mut diags = Diags::new();
        for (info, _) in functions {
            if let Some(id) = self.lookup(&info.name) {
                diags.push(duplicate(
                    "function",
                    &info.name,
                    &self.info(id).source,
                    source,
                ));
            }
        }
        for (info, _) in solvers {
            if let Some(old) = self.solvers.iter().find(|s| s.info.name == info.name) {
                diags.push(duplicate("solver", &info.name, &old.info.source, source));
            }
        }
        diags.finish(())
    }
}

fn duplicate(what: &str, name: &str, old: &PluginSource, new: &PluginSource) -> Diag {
    Diag::new(
        "mcopt::plugin::duplicate",
        format!(
            "{what} `{name}` is defined twice: by {} and by {}",
            old.describe(),
            new.describe()
        ),
    )
    .help("load only one of the two plugins, or rename the function in one of them")
}

/// Read a descriptor string (UTF-8).
///
/// # Safety
/// As for [`Registry::register`].
pub(crate) unsafe fn read_str(
    s: mcopt_plugin_sdk::abi::Str,
    what: &str,
    where_: &str,
) -> Result<String, Diag> {
    // SAFETY: the caller guarantees a live descriptor string (`len` bytes at `ptr`).
    unsafe { s.as_str() }.map(str::to_string).map_err(|_| {
        Diag::new(
            "mcopt::plugin::descriptor",
            format!("{what} in {where_} is not valid UTF-8"),
        )
    })
}

fn msg_buf(store: &mut [MaybeUninit<u8>; MSG_CAP]) -> MsgBuf {
    MsgBuf {
        ptr: store.as_mut_ptr().cast(),
        cap: MSG_CAP,
        len: 0,
    }
}

/// `params` with missing trailing parameters replaced by their defaults (the slow path of a
/// call that omits parameters).
#[cold]
fn fill_params<'a>(
    e: &FunctionEntry,
    params: &'a [f64],
    buf: &'a mut [f64; MAX_PARAMS],
) -> Result<&'a [f64], CallError> {
    let declared = &e.info.params;
    if params.len() == declared.len() {
        return Ok(params);
    }
    if params.len() > declared.len() {
        return Err(bad_args(
            e,
            &format!(
                "{} parameter(s) expected, found {}",
                declared.len(),
                params.len()
            ),
        ));
    }
    buf[..params.len()].copy_from_slice(params);
    for (k, p) in declared.iter().enumerate().skip(params.len()) {
        buf[k] = p.default.ok_or_else(|| {
            bad_args(
                e,
                &format!("parameter {} has no default and was not given", p.name),
            )
        })?;
    }
    Ok(&buf[..declared.len()])
}

#[inline(never)]
fn check_nan(
    e: &FunctionEntry,
    order: Order,
    a: &[&[f64]; 3],
    f: [&[f64]; 3],
) -> Result<(), CallError> {
    for (k, fk) in f.iter().enumerate().take(order.as_u32() as usize + 1) {
        // A NaN output is the plugin's fault only where no input coefficient was NaN.
        let bad = fk
            .iter()
            .enumerate()
            .position(|(i, v)| v.is_nan() && !(0..=k).any(|j| a[j][i].is_nan()));
        if let Some(i) = bad {
            return Err(error(
                e,
                CallErrorKind::NotANumber {
                    index: i,
                    coefficient: k,
                    argument: a[0][i],
                },
            ));
        }
    }
    Ok(())
}

fn error(e: &FunctionEntry, kind: CallErrorKind) -> CallError {
    CallError {
        function: e.info.name.clone(),
        plugin: e.info.source.plugin.clone(),
        kind,
    }
}

#[cold]
#[inline(never)]
fn bad_args(e: &FunctionEntry, text: &str) -> CallError {
    error(e, CallErrorKind::BadArguments(text.to_string()))
}

#[cold]
#[inline(never)]
fn call_error(e: &FunctionEntry, st: i32, msg: &MsgBuf) -> CallError {
    // SAFETY: the plugin wrote `len` bytes into our buffer (MsgBuf::write never exceeds cap).
    let text = unsafe { msg.message() };
    let kind = match st {
        status::PANIC => CallErrorKind::Panicked(text),
        status::BAD_ARGS => CallErrorKind::BadArguments(text),
        status::ERROR => CallErrorKind::Failed(text),
        other => CallErrorKind::Failed(format!("unknown status {other}: {text}")),
    };
    error(e, kind)
}
