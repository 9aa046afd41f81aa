//! Writing a solver: the [`Solver`] trait, safe wrappers over the host's problem and observer
//! callbacks, and the `extern "C"` entry that runs a solver inside `catch_unwind`.

use crate::abi::{
    status, MsgBuf, ObserverTable, OptionDescriptor, OptionType, ProblemTable, Progress,
    SolverArgs, SolverDescriptor, SolverFn, SolverResult, Str, OBSERVE_STOP,
};
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

/// The problem being minimized, as seen by a solver.
pub struct Problem<'a> {
    table: &'a ProblemTable,
    evaluations: u64,
}

impl<'a> Problem<'a> {
    /// Number of variables.
    pub fn dim(&self) -> usize {
        self.table.dim
    }

    /// Number of host evaluations so far (value, directional or gradient calls).
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// Opaque pointer to the (P1) structure; null when the host offers none.
    pub fn structure(&self) -> *const c_void {
        self.table.structure
    }

    /// f(x). `x` must have [`Problem::dim`] entries.
    pub fn value(&mut self, x: &[f64]) -> Result<f64, HostError> {
        self.check_len(x, "value")?;
        self.evaluations += 1;
        let mut out = 0.0;
        // SAFETY: the host gave a valid table; x has dim entries.
        let st = unsafe { (self.table.value)(self.table.ctx, x.as_ptr(), &mut out) };
        ok(st, "value").map(|()| out)
    }

    /// (f(x), f′(x; d), f″(x; d)); the last is 0 unless `second` is true.
    pub fn directional(
        &mut self,
        x: &[f64],
        d: &[f64],
        second: bool,
    ) -> Result<[f64; 3], HostError> {
        self.check_len(x, "directional")?;
        self.check_len(d, "directional")?;
        self.evaluations += 1;
        let mut out = [0.0; 3];
        let order = if second { 2 } else { 1 };
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
        self.evaluations += 1;
        let mut value = 0.0;
        // SAFETY: as in `value`; g has dim writable entries.
        let st = unsafe {
            (self.table.gradient)(self.table.ctx, x.as_ptr(), g.as_mut_ptr(), &mut value)
        };
        ok(st, "gradient").map(|()| value)
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

/// The host's progress observer.
pub struct Observer<'a> {
    table: Option<&'a ObserverTable>,
}

impl Observer<'_> {
    /// Report progress; returns true when the host asks the solver to stop.
    pub fn observe(&mut self, progress: &Progress) -> bool {
        match self.table {
            // SAFETY: the host gave a valid observer table.
            Some(t) => unsafe { (t.observe)(t.ctx, progress) == OBSERVE_STOP },
            None => false,
        }
    }
}

/// A solver plugin. `options` holds the values of [`Solver::OPTIONS`] in schema order (the host
/// fills defaults and checks types); `x` holds the start and receives the result.
pub trait Solver {
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    const OPTIONS: &'static [OptionDescriptor];

    /// Run to completion. Non-convergence is an outcome in the result, not an error; `Err` is
    /// for failures (a host callback failing, a malformed option).
    fn run(
        problem: &mut Problem<'_>,
        options: &[f64],
        x: &mut [f64],
        observer: &mut Observer<'_>,
    ) -> Result<SolverResult, String>;
}

/// The descriptor of a [`Solver`] (usable in a `static`).
pub const fn solver<T: Solver>() -> SolverDescriptor {
    SolverDescriptor {
        name: Str::new(T::NAME),
        description: Str::new(T::DESCRIPTION),
        options: T::OPTIONS.as_ptr(),
        n_options: T::OPTIONS.len(),
        run: solver_entry::<T> as SolverFn,
    }
}

/// The `extern "C"` entry of solver `T`.
///
/// # Safety
/// `args` must be valid with tables and slices as documented in [`SolverArgs`].
pub unsafe extern "C" fn solver_entry<T: Solver>(
    args: *const SolverArgs,
    result: *mut SolverResult,
    msg: *mut MsgBuf,
) -> i32 {
    let body = || {
        let bad = |t: &str| (status::BAD_ARGS, t.to_string());
        // SAFETY: the caller passes valid arguments, problem table and result, or nulls.
        let args = unsafe { args.as_ref() }.ok_or_else(|| bad("null arguments"))?;
        let table = unsafe { args.problem.as_ref() }.ok_or_else(|| bad("null problem"))?;
        let result = unsafe { result.as_mut() }.ok_or_else(|| bad("null result"))?;
        if args.n_options != T::OPTIONS.len() || args.n != table.dim {
            return Err(bad("option count or dimension mismatch"));
        }
        let options = if args.n_options == 0 {
            &[][..]
        } else {
            // SAFETY: valid arguments hold `n_options` option values.
            unsafe { std::slice::from_raw_parts(args.options, args.n_options) }
        };
        let x: &mut [f64] = if args.n == 0 {
            &mut []
        } else {
            // SAFETY: valid arguments hold `n` writable entries of x, aliased by nothing else.
            unsafe { std::slice::from_raw_parts_mut(args.x, args.n) }
        };
        let mut problem = Problem {
            table,
            evaluations: 0,
        };
        let mut observer = Observer {
            // SAFETY: the observer table is valid or null.
            table: unsafe { args.observer.as_ref() },
        };
        *result =
            T::run(&mut problem, options, x, &mut observer).map_err(|e| (status::ERROR, e))?;
        Ok(())
    };
    // SAFETY: the caller passes a valid message buffer or null.
    unsafe { guarded(msg, body) }
}
