//! Testing a solver without mcopt: a problem given by a closure ([`TestProblem`]), option
//! values written as in a run file ([`options`]), a runner that steps a solver like the host
//! does ([`run`]), and [`check_resume`], which checks that a solver's state round-trips through
//! its blob and that a resumed run equals a straight one bit for bit.
//!
//! ```
//! use mcopt_plugin_sdk::testing::{check_resume, run, TestProblem};
//! # use mcopt_plugin_sdk::abi::{OptionDescriptor, Str};
//! # use mcopt_plugin_sdk::{Metrics, Problem, Solver, Start, Step, Blob, BlobReader};
//! # struct Gd { lr: f64 }
//! # impl Solver for Gd {
//! #     const NAME: &'static str = "gd";
//! #     const DESCRIPTION: &'static str = "gd";
//! #     const OPTIONS: &'static [OptionDescriptor] = &[OptionDescriptor::real("lr", 0.1, "step")];
//! #     fn init(_: &mut Problem<'_>, s: Start<'_>) -> Result<Self, String> {
//! #         Ok(Gd { lr: s.options.number("lr")? })
//! #     }
//! #     fn step(&mut self, p: &mut Problem<'_>, x: &mut [f64], _: &mut Metrics<'_>)
//! #         -> Result<Step, String> {
//! #         let lr = self.lr;
//! #         p.epoch(x, &mut vec![0.0; x.len()], |_, x, b| {
//! #             x.iter_mut().zip(b.grad.iter()).for_each(|(x, g)| *x -= lr * g);
//! #             Ok(None)
//! #         })
//! #     }
//! #     fn save(&self, _: &mut Vec<u8>) {}
//! #     fn restore(p: &mut Problem<'_>, s: Start<'_>, _: &[u8]) -> Result<Self, String> {
//! #         Self::init(p, s)
//! #     }
//! # }
//! // f(x) = ½‖x‖², ∇f(x) = x
//! let mut p = TestProblem::new(2, |x, g| {
//!     g.copy_from_slice(x);
//!     0.5 * x.iter().map(|v| v * v).sum::<f64>()
//! });
//! let r = run::<Gd>(&mut p, &[("lr", "0.5")], &[1.0, -2.0], 3).unwrap();
//! assert_eq!(r.x, vec![0.125, -0.25]);
//! check_resume::<Gd>(&mut p, &[("lr", "0.5")], &[1.0, -2.0], 4).unwrap();
//! ```

use crate::abi::{status, OptionType, ProblemTable, PROBLEM_CAP_BATCHES};
use crate::solver::{Metrics, Options, Problem, Signal, Solver, Start, Step};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

type BatchFn = Box<dyn FnMut(usize, &[f64], &mut [f64]) -> f64>;

/// The closure and its scratch, behind the table's `ctx`.
struct Host {
    dim: usize,
    n_batches: usize,
    /// f_k(x) with ∇f_k written into the slice; k is the minibatch (0 without batches).
    f: BatchFn,
    scratch: Vec<f64>,
    evaluations: u64,
}

impl Host {
    /// Full-batch f and gradient: the mean over the minibatches.
    fn full(&mut self, x: &[f64], g: &mut [f64]) -> f64 {
        if self.n_batches <= 1 {
            return (self.f)(0, x, g);
        }
        g.fill(0.0);
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut value = 0.0;
        for k in 0..self.n_batches {
            value += (self.f)(k, x, &mut scratch);
            g.iter_mut().zip(&scratch).for_each(|(a, b)| *a += b);
        }
        self.scratch = scratch;
        let w = 1.0 / self.n_batches as f64;
        g.iter_mut().for_each(|v| *v *= w);
        value * w
    }
}

/// A problem given by a closure that returns f(x) and writes ∇f(x) (or the element of the
/// subdifferential a solver should see at a kink). Directional derivatives are ⟨∇f(x), d⟩
/// (exact where f is differentiable) and a zero second-order term.
pub struct TestProblem {
    host: Box<Host>,
    table: ProblemTable,
}

impl TestProblem {
    /// A full-batch problem of `dim` variables.
    pub fn new(dim: usize, mut f: impl FnMut(&[f64], &mut [f64]) -> f64 + 'static) -> Self {
        Self::build(dim, 1, Box::new(move |_, x, g| f(x, g)))
    }

    /// A problem with `n_batches` minibatches per epoch, f = the mean of the f_k; `f(k, x, g)`
    /// returns f_k(x) and writes ∇f_k(x).
    pub fn batched(
        dim: usize,
        n_batches: usize,
        f: impl FnMut(usize, &[f64], &mut [f64]) -> f64 + 'static,
    ) -> Self {
        Self::build(dim, n_batches.max(1), Box::new(f))
    }

    fn build(dim: usize, n_batches: usize, f: BatchFn) -> Self {
        let mut host = Box::new(Host {
            dim,
            n_batches,
            f,
            scratch: vec![0.0; dim],
            evaluations: 0,
        });
        let table = ProblemTable {
            ctx: (&mut *host as *mut Host).cast::<c_void>(),
            dim,
            value: value_cb,
            directional: directional_cb,
            gradient: gradient_cb,
            capabilities: if n_batches > 1 {
                PROBLEM_CAP_BATCHES
            } else {
                0
            },
            n_batches,
            batch_gradient: (n_batches > 1).then_some(batch_gradient_cb as _),
            structure_version: 0,
            structure: std::ptr::null(),
        };
        TestProblem { host, table }
    }

    /// The problem as a solver sees it.
    pub fn problem(&mut self) -> Problem<'_> {
        Problem { table: &self.table }
    }

    /// Calls of the closure so far (one per minibatch evaluated).
    pub fn evaluations(&self) -> u64 {
        self.host.evaluations
    }

    /// f(x) (not counted).
    pub fn value(&mut self, x: &[f64]) -> f64 {
        let mut g = vec![0.0; self.host.dim];
        self.host.full(x, &mut g)
    }
}

/// Run `body` on the host behind `ctx`, a panic becoming an error status.
///
/// # Safety
/// `ctx` must be the `Host` of a live [`TestProblem`], used by no one else during the call.
unsafe fn with_host(ctx: *mut c_void, body: impl FnOnce(&mut Host)) -> i32 {
    // SAFETY: the caller passes the live, unshared host behind the table.
    let Some(h) = (unsafe { ctx.cast::<Host>().as_mut() }) else {
        return status::BAD_ARGS;
    };
    match catch_unwind(AssertUnwindSafe(|| body(h))) {
        Ok(()) => status::OK,
        Err(_) => status::PANIC,
    }
}

unsafe extern "C" fn value_cb(ctx: *mut c_void, x: *const f64, out: *mut f64) -> i32 {
    // SAFETY: `ctx` is the table's host; the SDK's `Problem` passes `dim` values at `x` and one
    // writable value at `out`.
    unsafe {
        with_host(ctx, |h| {
            h.evaluations += h.n_batches as u64;
            let x = std::slice::from_raw_parts(x, h.dim);
            let mut g = vec![0.0; h.dim];
            *out = h.full(x, &mut g);
        })
    }
}

unsafe extern "C" fn directional_cb(
    ctx: *mut c_void,
    x: *const f64,
    d: *const f64,
    _order: u32,
    out: *mut f64,
) -> i32 {
    // SAFETY: `ctx` is the table's host; the SDK's `Problem` passes `dim` values at `x` and `d`
    // and three writable values at `out`.
    unsafe {
        with_host(ctx, |h| {
            h.evaluations += h.n_batches as u64;
            let x = std::slice::from_raw_parts(x, h.dim);
            let d = std::slice::from_raw_parts(d, h.dim);
            let mut g = vec![0.0; h.dim];
            let f = h.full(x, &mut g);
            let slope = g.iter().zip(d).map(|(a, b)| a * b).sum::<f64>();
            std::slice::from_raw_parts_mut(out, 3).copy_from_slice(&[f, slope, 0.0]);
        })
    }
}

unsafe extern "C" fn gradient_cb(
    ctx: *mut c_void,
    x: *const f64,
    g: *mut f64,
    value: *mut f64,
) -> i32 {
    // SAFETY: `ctx` is the table's host; the SDK's `Problem` passes `dim` values at `x`, `dim`
    // writable ones at `g` and one at `value`.
    unsafe {
        with_host(ctx, |h| {
            h.evaluations += h.n_batches as u64;
            let x = std::slice::from_raw_parts(x, h.dim);
            let g = std::slice::from_raw_parts_mut(g, h.dim);
            *value = h.full(x, g);
        })
    }
}

unsafe extern "C" fn batch_gradient_cb(
    ctx: *mut c_void,
    batch: usize,
    x: *const f64,
    g: *mut f64,
    value: *mut f64,
) -> i32 {
    // SAFETY: as in `gradient_cb`.
    unsafe {
        with_host(ctx, |h| {
            h.evaluations += 1;
            let x = std::slice::from_raw_parts(x, h.dim);
            let g = std::slice::from_raw_parts_mut(g, h.dim);
            *value = (h.f)(batch.min(h.n_batches - 1), x, g);
        })
    }
}

/// Option values of `S` in schema order: the defaults, with `given` (name, value as a run file
/// writes it: `0.5`, `10`, `true`, a choice's name) resolved by name and type and checked
/// against the declared range.
pub fn options<S: Solver>(given: &[(&str, &str)]) -> Result<Vec<f64>, String> {
    let mut values: Vec<f64> = S::OPTIONS.iter().map(|o| o.default).collect();
    for (name, text) in given {
        let k = S::OPTIONS
            .iter()
            // SAFETY: the solver's own `'static` schema strings.
            .position(|o| unsafe { o.name.as_str() } == Ok(*name))
            .ok_or_else(|| format!("solver `{}` has no option `{name}`", S::NAME))?;
        let o = &S::OPTIONS[k];
        let bad = || format!("option `{name}`: cannot read `{text}` as its type");
        let v = match OptionType::from_u32(o.ty) {
            Some(OptionType::Real) => text.parse::<f64>().map_err(|_| bad())?,
            Some(OptionType::Integer) => text.parse::<i64>().map_err(|_| bad())? as f64,
            Some(OptionType::Bool) => match *text {
                "true" => 1.0,
                "false" => 0.0,
                _ => return Err(bad()),
            },
            Some(OptionType::Choice) => {
                // SAFETY: the solver's own `'static` choice table.
                let names = unsafe { o.choice_names() };
                names
                    .iter()
                    // SAFETY: as above.
                    .position(|s| unsafe { s.as_str() } == Ok(*text))
                    .ok_or_else(bad)? as f64
            }
            None => return Err(format!("option `{name}` has an unknown type")),
        };
        if !o.admits(v) {
            return Err(format!(
                "option `{name}` must be {}, found {text}",
                o.range_text()
            ));
        }
        values[k] = v;
    }
    Ok(values)
}

/// A run of [`run`]: the solver, the final iterate, and every step with its metrics (stopping
/// at the first signal other than continue).
pub struct Run<S> {
    pub solver: S,
    pub x: Vec<f64>,
    pub steps: Vec<(Step, Vec<f64>)>,
}

/// Initialise `S` at `x0` (seed 0) and take up to `steps` steps, as the host would.
pub fn run<S: Solver>(
    problem: &mut TestProblem,
    given: &[(&str, &str)],
    x0: &[f64],
    steps: usize,
) -> Result<Run<S>, String> {
    let values = options::<S>(given)?;
    let start = Start {
        options: Options::new(S::OPTIONS, &values)?,
        x: x0,
        seed: 0,
    };
    let solver = S::init(&mut problem.problem(), start)?;
    go_on(problem, solver, x0.to_vec(), steps)
}

fn go_on<S: Solver>(
    problem: &mut TestProblem,
    mut solver: S,
    mut x: Vec<f64>,
    steps: usize,
) -> Result<Run<S>, String> {
    let mut taken = Vec::new();
    for _ in 0..steps {
        let mut values = vec![f64::NAN; S::METRICS.len()];
        let mut metrics = Metrics::new(S::METRICS, &mut values)?;
        let step = solver.step(&mut problem.problem(), &mut x, &mut metrics)?;
        taken.push((step, values));
        if step.signal != Signal::Continue {
            break;
        }
    }
    Ok(Run {
        solver,
        x,
        steps: taken,
    })
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Check that `S` resumes exactly: for every split k of a `steps`-step run from `x0`, saving
/// after k steps, restoring from the blob (at the saved iterate) and taking the remaining steps
/// gives the straight run's iterates, signals, stationarity measures and metrics bit for bit;
/// and a restored state saves to the same blob.
pub fn check_resume<S: Solver>(
    problem: &mut TestProblem,
    given: &[(&str, &str)],
    x0: &[f64],
    steps: usize,
) -> Result<(), String> {
    let straight = run::<S>(problem, given, x0, steps)?;
    let values = options::<S>(given)?;
    for k in 1..straight.steps.len() {
        let head = run::<S>(problem, given, x0, k)?;
        let mut blob = Vec::new();
        head.solver.save(&mut blob);
        let start = Start {
            options: Options::new(S::OPTIONS, &values)?,
            x: &head.x,
            seed: 0,
        };
        let restored = S::restore(&mut problem.problem(), start, &blob)
            .map_err(|e| format!("restore after {k} steps: {e}"))?;
        let mut again = Vec::new();
        restored.save(&mut again);
        if again != blob {
            return Err(format!(
                "after {k} steps, the restored state saves to another blob"
            ));
        }
        let tail = go_on(problem, restored, head.x.clone(), straight.steps.len() - k)?;
        let resumed = head.steps.iter().chain(&tail.steps);
        for (i, ((a, ma), (b, mb))) in straight.steps.iter().zip(resumed).enumerate() {
            let same = a.signal == b.signal
                && a.stationarity.to_bits() == b.stationarity.to_bits()
                && bits(ma) == bits(mb);
            if !same {
                return Err(format!(
                    "resumed after {k} steps, step {} differs: {a:?} {ma:?} vs {b:?} {mb:?}",
                    i + 1
                ));
            }
        }
        if bits(&straight.x) != bits(&tail.x) || straight.steps.len() != k + tail.steps.len() {
            return Err(format!(
                "resumed after {k} steps, the run ends elsewhere: {:?} vs {:?}",
                straight.x, tail.x
            ));
        }
    }
    Ok(())
}
