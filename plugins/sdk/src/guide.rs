//! The plugin author's guide: how to add an activation, a penalty or a solver to mcopt.
//!
//! # 1. What a plugin is
//!
//! A plugin is a Rust crate built as a shared library (`cdylib`) that exports one symbol,
//! `mcopt_plugin_entry` ([`ENTRY_SYMBOL`](crate::abi::ENTRY_SYMBOL)), returning a static
//! [`PluginDescriptor`](crate::abi::PluginDescriptor): the ABI version (first, so mcopt can refuse a
//! mismatch before reading anything else), the plugin's name and version, a table of elementwise
//! functions, a table of solvers, and a capability bitset. You never write the descriptor by
//! hand: [`export_plugin!`](crate::export_plugin) writes it and the entry symbol for you.
//!
//! mcopt's own activations and penalties are a plugin too (`mcopt-std`); it is linked into the
//! binary through the very same descriptor, so every model exercises this interface.
//!
//! # 2. Walk-through: the swish plugin
//!
//! `plugins/swish` in the mcopt repository is a complete plugin; the tests build it and load it
//! at run time. To write your own, start a crate:
//!
//! ```toml
//! # Cargo.toml
//! [package]
//! name = "mcopt-swish"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! mcopt-plugin-sdk = { path = "../sdk" }   # or the version matching your mcopt
//! ```
//!
//! and write the functions once, generically over the number type ([`Num`](crate::Num): `f64`,
//! and the dual numbers the SDK uses to derive φ′ and φ″). This is `plugins/swish/src/lib.rs`:
//!
//! ```ignore
//! use mcopt_plugin_sdk::{smooth, Num, Smooth};
//!
//! /// swish(x) = x · sigmoid(x) = x / (1 + e⁻ˣ).
//! pub struct Swish;
//!
//! impl Smooth for Swish {
//!     const NAME: &'static str = "swish";
//!
//!     fn phi<D: Num>(x: D, _params: &[f64]) -> D {
//!         x * ((-x).exp() + 1.0).recip()
//!     }
//! }
//!
//! /// mish(x) = x · tanh(softplus(x)) = x · tanh(ln(1 + eˣ)).
//! pub struct Mish;
//!
//! impl Smooth for Mish {
//!     const NAME: &'static str = "mish";
//!
//!     fn phi<D: Num>(x: D, _params: &[f64]) -> D {
//!         x * x.exp().ln_1p().tanh()
//!     }
//! }
//!
//! mcopt_plugin_sdk::export_plugin! {
//!     name: "swish",
//!     version: env!("CARGO_PKG_VERSION"),
//!     functions: [smooth::<Swish>(), smooth::<Mish>()],
//!     solvers: [],
//! }
//! ```
//!
//! Inside `phi`, use the methods of [`DualNum`](crate::DualNum) (`exp`, `ln_1p`, `tanh`, `recip`,
//! `powi`, `sqrt`, …) and arithmetic with `f64` constants on the right (`x * 0.5`, `x + 1.0`).
//! The SDK evaluates `phi` with `f64` for values, with a first-order dual number when only f′
//! is needed and with a second-order one for f″, so a call that asks only for values pays for
//! values only.
//!
//! Build it:
//!
//! ```text
//! cargo build --release -p mcopt-swish
//! # → target/release/libmcopt_swish.so (libmcopt_swish.dylib on macOS, mcopt_swish.dll on Windows)
//! ```
//!
//! Check it before using it: `mcopt plugins check` loads the library on its own and runs the
//! self-test (section 6):
//!
//! ```text
//! mcopt plugins check target/release/libmcopt_swish.so
//! ```
//!
//! Before the library reaches the system loader, mcopt reads its ELF headers and refuses a
//! file for another machine (`mcopt::plugin::not_a_library`) or one cut short, whose headers
//! name bytes past its end (`mcopt::plugin::truncated`); a directory or device is named for
//! what it is (`mcopt::plugin::not_a_file`). `mcopt plugins check std` runs the same
//! self-test on the standard plugin linked into mcopt.
//!
//! Use it by name in a model, for instance `examples/swish.mco`:
//!
//! ```text
//! param x: real = 0.5
//! minimize swish(x)^2 + 0.1*x^2
//! ```
//!
//! and tell mcopt where the library is, in one of three ways:
//!
//! - `--plugin PATH_OR_NAME` on the command line (repeatable): a path
//!   (`--plugin target/release/libmcopt_swish.so`) or a bare name (`--plugin swish`);
//! - a `plugins:` list in a run file, with paths relative to the run file's directory;
//! - the environment variable `MCOPT_PLUGIN_PATH`, a colon-separated list of directories.
//!
//! A bare name `swish` is looked up as `libswish.so`, `libmcopt_swish.so` and `swish.so` (with
//! the platform's prefix and suffix) in the `MCOPT_PLUGIN_PATH` directories, then in the
//! directory of the mcopt executable (where a `cargo build` of the workspace puts the plugins).
//! It is never looked up in the current directory: loading a library runs its code, so mcopt
//! loads only what you named. When nothing is found, the diagnostic lists every path tried.
//! A spec containing `/` or ending in `.so`, `.dylib` or `.dll` is always a path (relative to
//! the current directory, or to the run file's directory in a run file), never searched for.
//! The name `std` (also `mcopt_std`) is the standard plugin, which is linked into mcopt:
//! asking for it loads nothing, and no library on the search path can take that name.
//! `mcopt plugins list` shows every function and solver with its plugin, version and library.
//!
//! # 3. What a function computes: ray-Taylor coefficients
//!
//! mcopt evaluates models along rays x + t·d and needs one-sided directional derivatives, also
//! at kinks. Every node carries a truncated expansion a(t) = a0 + a1 t + a2 t²/2. For an
//! elementwise function φ, a call receives slices of (a0, a1, a2) and must return the
//! coefficients of f(t) = φ(a(t)) = f0 + f1 t + f2 t²/2 + o(t²) for small **t > 0**:
//!
//! - smooth φ: f0 = φ(a0), f1 = φ′(a0) a1, f2 = φ″(a0) a1² + φ′(a0) a2;
//! - at a kink (a0 on a breakpoint b) the piece is the one that a(t) enters for small t > 0,
//!   decided by the **lexicographic sign** of (a0 − b, a1, a2): the first nonzero entry wins.
//!   So relu at a0 = 0 with a1 = −1 gives (0, 0, 0), with a1 = 0 and a2 = 3 gives (0, 0, 3).
//!
//! A call also reports how many elements sat on a breakpoint ("active kinks"). With a tolerance
//! `ztol > 0` (the user's choice; 0, exact ties only, by default) an argument within `ztol` of a
//! breakpoint counts as a tie.
//!
//! `order` says how many coefficients are wanted: 0 (f0 only), 1 (f0, f1) or 2; slices beyond
//! `order` are empty. Penalties return per-element values; the caller sums them.
//!
//! **Gradients.** Solvers also need gradients. mcopt's reverse mode asks each function for its
//! derivative by calling it with order 1 and a1 = 1, so at a kink it uses the **right
//! derivative** (the piece to the right of the breakpoint). That is a selection, not a
//! directional derivative; your function needs nothing special for it.
//!
//! # 4. Piecewise functions
//!
//! A function with kinks lists its breakpoints (ascending) and its pieces, each a smooth
//! function written generically; the SDK picks the piece lexicographically, counts active kinks
//! and applies the smooth rule on the chosen piece. Pieces must agree at the breakpoints (the
//! function is continuous). ELU from the standard plugin, abridged:
//!
//! ```ignore
//! use mcopt_plugin_sdk::{piecewise, Num, ParamDescriptor, Piecewise};
//!
//! pub struct Elu;
//!
//! impl Piecewise for Elu {
//!     const NAME: &'static str = "elu";
//!     const PARAMS: &'static [ParamDescriptor] = &[ParamDescriptor::with_default("alpha", 1.0)];
//!     const BREAKPOINTS: &'static [f64] = &[0.0];
//!
//!     fn piece<D: Num>(i: usize, x: D, p: &[f64]) -> D {
//!         if i == 0 { x.exp_m1() * p[0] } else { x }   // piece 0 left of 0, piece 1 right
//!     }
//! }
//! // in export_plugin!: functions: [piecewise::<Elu>()]
//! ```
//!
//! Because each piece supplies its own φ″, C¹ joins come out right: at 0, ELU (α = 1) gives
//! f2 = a2 on the right piece and a1² + a2 on the left one. When breakpoints depend on the
//! parameters, override [`Piecewise::breakpoints`](crate::Piecewise::breakpoints); `BREAKPOINTS`
//! then lists them at the default parameters (the self-test samples those).
//!
//! # 5. Parameters, closed forms, penalties, the low-level trait
//!
//! - **Constant parameters** (`leaky_relu(x, 0.01)`, `elu(x, 1.0)`): declare them in `PARAMS`
//!   with [`ParamDescriptor::with_default`](crate::ParamDescriptor::with_default) or
//!   [`ParamDescriptor::required`](crate::ParamDescriptor::required); they arrive in `params` in
//!   declaration order, defaults filled in by mcopt. Validate them once in `check_params`
//!   (mcopt calls it when it checks the model) rather than in every call.
//! - **Closed-form derivatives**: a smooth function on the hot path may override
//!   [`Smooth::value`](crate::Smooth::value), [`Smooth::d1`](crate::Smooth::d1) and
//!   [`Smooth::d2`](crate::Smooth::d2) (the standard tanh and sigmoid do); pieces likewise
//!   override `piece_value`, `piece_d1`, `piece_d2`.
//! - **Penalties**: set `KIND = Kind::Penalty` and, if you can, provide the proximal map
//!   `out_i = argmin_z p(z) + (z − v_i)²/(2·step)` (`HAS_PROX = true` and `prox`).
//! - **The low-level trait** [`Elementwise`](crate::Elementwise) receives whole slices; implement
//!   it directly only for the cheapest closed forms (the standard relu does), and register it with
//!   [`function`](crate::function).
//!
//! # 6. The self-test
//!
//! mcopt tests every function of a plugin when it loads it (and `mcopt plugins check` does the
//! same): at sample points and at every declared breakpoint, along rays in both directions and
//! with nonzero a2, it compares f1 and f2 with one-sided differences of t ↦ φ(a(t)), checks
//! that orders 0, 1 and 2 agree, that no NaN comes back, that the kink count is 1 exactly on a
//! breakpoint and 0 elsewhere, and that a proximal map beats nearby points on its own objective.
//! A failure refuses the whole plugin with one diagnostic per failing function, naming the
//! plugin, the function, the ray, the expected and the found value.
//!
//! # 7. Safety rules the SDK enforces for you
//!
//! - Every entry point runs your code inside `catch_unwind`: a panic becomes an error status
//!   and a diagnostic (`mcopt::plugin::call`) naming the function and the panic message and
//!   location; it never crosses the `extern "C"` boundary (that would abort mcopt).
//! - mcopt checks a loaded plugin's outputs for NaN where the inputs were not NaN.
//! - Memory: mcopt passes every buffer (coefficient slices, output slices, message buffers);
//!   nothing allocated on one side is freed on the other. mcopt never unloads a library.
//! - ABI: [`ABI_VERSION`](crate::abi::ABI_VERSION) is checked before anything else; rebuild your
//!   plugin against the SDK of the mcopt you use (a plugin of an older version is refused with
//!   a diagnostic saying so). New entry points come with new
//!   capability bits, so old plugins keep loading.
//!
//! # 8. Solvers
//!
//! Solvers are step-wise: mcopt owns the loop, so it can stop on its rules (`max_iter`, a
//! tolerance on your stationarity measure, a time limit, Ctrl-C), draw the progress bar, write
//! the trace, keep the best iterate, and checkpoint and resume a run bit for bit. A solver
//! implements [`Solver`](crate::Solver):
//!
//! - `NAME`, `DESCRIPTION` and `OPTIONS`, the options schema: one
//!   [`OptionDescriptor`](crate::abi::OptionDescriptor) per option, made with
//!   `OptionDescriptor::real(name, default, description)`, `::integer`, `::bool` or
//!   `::choice(name, &[Str::new("a"), Str::new("b")], default index, description)`, with an
//!   optional range via `.positive()`, `.nonnegative()` or `.range(lo, hi, open)`. mcopt checks
//!   a run file's options against it before anything runs (unknown names, wrong types, values
//!   out of range, a name that is not one of the choices are diagnostics at the run file's
//!   line), and `mcopt plugins list` shows every option's type, default and range.
//! - In `init` and `restore`, read the values by name and type from
//!   [`start.options`](crate::Options): `number("lr")?`, `integer("n")?`, `bool("nesterov")?`,
//!   `choice("target")?` (the chosen name). Asking for a name or a type the schema does not
//!   declare is an error, not a wrong value.
//! - `METRICS`: names of the values each step reports, set by name with
//!   [`metrics.set("speed", v)?`](crate::Metrics::set); they become columns of `trace.csv` and
//!   fields of `report.json`. One name has a meaning: a solver that minimizes another
//!   objective than the problem's f (SRPA minimizes Θ of (P1)) reports it as
//!   [`OBJECTIVE_METRIC`](crate::OBJECTIVE_METRIC) (`objective`), and the trace's `objective`
//!   column, the report's objective and its best iterate then use it instead of f.
//! - `REQUIRES`: problem capabilities the solver cannot run without
//!   ([`PROBLEM_CAP_STRUCTURE`](crate::abi::PROBLEM_CAP_STRUCTURE) for the (P1) structure); mcopt
//!   refuses the run before `init` if the problem lacks one.
//! - `init(problem, start)`: build the state at `start.x` (and `start.seed` if you draw random
//!   numbers).
//! - `step(&mut self, problem, x, metrics)`: one iteration. A minibatch method runs one epoch
//!   with [`Problem::epoch`](crate::Problem::epoch): it computes the gradient of each of the
//!   host's minibatches in turn, hands it to your update as a [`Batch`](crate::Batch), and
//!   returns the [`Step`](crate::Step) (diverged as soon as f or a gradient is not finite). A
//!   full-batch method calls `value`, `directional` or `gradient` itself. Write the new iterate
//!   into `x`; return a [`Step`](crate::Step): a [`Signal`](crate::Signal) (`Continue`,
//!   `Converged`, `Stalled`, `Diverged`; non-convergence is a signal, not an error) and your
//!   stationarity measure (mcopt's `tol` rule compares it; NaN if you have none).
//! - `save(&self, out)` and `restore(problem, start, bytes)`: your state as bytes and back. A
//!   resumed run must equal an uninterrupted one bit for bit, so save everything a step reads
//!   (moments, step sizes, counters, random state); [`Blob`](crate::Blob) and
//!   [`BlobReader`](crate::BlobReader) write floats as their exact bits. The iterate itself is
//!   saved by mcopt and comes back as `start.x`.
//!
//! A solver that needs (P1) (`REQUIRES = PROBLEM_CAP_STRUCTURE`) gets it safely with
//! [`problem.p1()?`](crate::Problem::p1): a [`P1Problem`](crate::p1::P1Problem) whose callbacks
//! report the host's error messages; keep its structure
//! ([`into_structure`](crate::p1::RemoteP1::into_structure)) and pass it back with
//! [`Problem::p1_reusing`](crate::Problem::p1_reusing) to avoid copying the pattern every step.
//!
//! The host's callbacks behind a `Problem` are **neither re-entrant nor safe to call
//! concurrently**: call them one at a time, from the thread that called your entry point, and
//! not from inside another callback. A parallel solver must serialise its calls to them (see
//! [`abi`](crate::abi), "Threads and re-entrancy").
//!
//! mcopt counts the evaluations; the SDK catches panics in every entry point and frees your
//! state through the plugin's own `drop` entry (nothing crosses the allocator boundary).
//!
//! ## Testing a solver without mcopt
//!
//! [`testing`](crate::testing) runs a solver the way mcopt does, on a problem given by a
//! closure: [`TestProblem::new(dim, |x, g| f)`](crate::testing::TestProblem::new) (the closure
//! returns f(x) and writes the gradient, or at a kink the element your solver should see),
//! [`TestProblem::batched`](crate::testing::TestProblem::batched) for minibatches,
//! [`run::<S>(problem, options, x0, steps)`](crate::testing::run) with options written as in a
//! run file (`&[("lr", "0.1"), ("target", "adaptive")]`), and
//! [`check_resume::<S>(problem, options, x0, steps)`](crate::testing::check_resume), which
//! checks that your state round-trips through its blob and that a run resumed after every step
//! equals a straight one bit for bit. `plugins/polyak` is a solver written from this guide with
//! its unit tests done this way (`cargo test -p mcopt-polyak`).
//!
//! ## Example
//!
//! A complete third-party example is `plugins/momentum` (plain momentum SGD), which the tests
//! build and train with from a run file:
//!
//! ```ignore
//!
//! use mcopt_plugin_sdk::abi::{OptionDescriptor, Str, OPEN_HI};
//! use mcopt_plugin_sdk::{solver, Blob, BlobReader, Metrics, Problem, Signal, Solver, Start, Step};
//!
//! /// The solver's state: its options and the velocity.
//! pub struct Momentum {
//!     lr: f64,
//!     mu: f64,
//!     v: Vec<f64>,
//!     g: Vec<f64>,
//! }
//!
//! impl Solver for Momentum {
//!     const NAME: &'static str = "momentum_sgd";
//!     const DESCRIPTION: &'static str = "plain momentum SGD (an example third-party solver)";
//!     const OPTIONS: &'static [OptionDescriptor] = &[
//!         OptionDescriptor::real("lr", 0.01, "step size").positive(),
//!         OptionDescriptor::real("mu", 0.9, "momentum in [0, 1)").range(0.0, 1.0, OPEN_HI),
//!     ];
//!     const METRICS: &'static [Str] = &[Str::new("speed")];
//!
//!     fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String> {
//!         let n = problem.dim();
//!         Ok(Momentum {
//!             lr: start.options.number("lr")?,
//!             mu: start.options.number("mu")?,
//!             v: vec![0.0; n],
//!             g: vec![0.0; n],
//!         })
//!     }
//!
//!     fn step(
//!         &mut self,
//!         problem: &mut Problem<'_>,
//!         x: &mut [f64],
//!         metrics: &mut Metrics<'_>,
//!     ) -> Result<Step, String> {
//!         let (lr, mu, v) = (self.lr, self.mu, &mut self.v);
//!         let step = problem.epoch(x, &mut self.g, |_, x, batch| {
//!             for ((xi, vi), gi) in x.iter_mut().zip(v.iter_mut()).zip(batch.grad.iter()) {
//!                 *vi = mu * *vi - lr * gi;
//!                 *xi += *vi;
//!             }
//!             Ok(None)
//!         })?;
//!         if step.signal == Signal::Continue {
//!             metrics.set("speed", self.v.iter().map(|v| v * v).sum::<f64>().sqrt())?;
//!         }
//!         Ok(step)
//!     }
//!
//!     fn save(&self, out: &mut Vec<u8>) {
//!         Blob::new(out).f64s(&self.v);
//!     }
//!
//!     fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String> {
//!         let mut s = Self::init(problem, start)?;
//!         let mut r = BlobReader::new(bytes);
//!         s.v = r.f64s(problem.dim())?;
//!         r.finish()?;
//!         Ok(s)
//!     }
//! }
//!
//! mcopt_plugin_sdk::export_plugin! {
//!     name: "momentum",
//!     version: env!("CARGO_PKG_VERSION"),
//!     functions: [],
//!     solvers: [solver::<Momentum>()],
//! }
//! ```
//!
//! Use it with `plugins: [path/to/libmcopt_momentum.so]` and `solver: {name: momentum_sgd}` in a
//! run file, or `--plugin`. The standard `gd` and `adam` (`plugins/std/src/solvers/`) are fuller
//! examples (clipping, Nesterov, Armijo backtracking), and `plugins/polyak` shows choice options
//! and tests through `testing`.
