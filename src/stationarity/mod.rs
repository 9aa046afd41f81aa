//! Certificates of first- and second-order d-stationarity for (P), (P0) and (P1), by the tiered
//! strategy of docs/math.md §4; the only module that solves LPs and QPs (Clarabel).
//!
//! # Public API
//!
//! - [`certify`]`(&Problem, &Options) -> Certificate`: the first-order [`Verdict`] and, with
//!   [`Order::Two`], the second-order one. A `not_stationary` verdict carries its witness
//!   direction (in the variables of the form: θ for (P), z for (P0) and (P1)) and its exact
//!   slope f′(x; d) or curvature f″(x; d) from the ray-Taylor evaluator.
//! - Tiers, cheapest first: `smooth` (no active kink: ‖∇f‖ and Lanczos on Hessian-vector
//!   products), `convex_outer` (every kink in a convex outer term: one QP; for (P1) above 1,000
//!   variables from the sparse (P1) structure, `p1`), `maxtype` (a convex
//!   piecewise-linear outer structure: one min-norm problem; second order on the critical
//!   subspace), `absnormal` (LIKQ in the abs-normal form: one least-squares solve and sign
//!   checks), `pieces` (nested or nonconvex kinks, 2^k ≤ `max_pieces`: one LP per piece),
//!   `search` (otherwise: a descent search that can refute but never certify; else
//!   `inconclusive` with its reason).
//!
//! Invariant: `stationary` is only returned by a tier that decides; a search that finds nothing
//! is `inconclusive`.

mod absnormal;
mod critical;
mod exact;
mod kinks;
mod lagrangian;
mod lp;
mod maxtype;
mod oracle;
mod p1;
mod pieces;
mod smooth;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub use kinks::{Kink, KinkOrder};
pub use oracle::{Form, Problem};

use crate::eval::EvalError;
use crate::registry::Order;
use oracle::Oracle;

/// Options of a certificate.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `Order::One` or `Order::Two`.
    pub order: Order,
    /// Tolerance on ‖∇f‖, slopes and curvatures.
    pub tol: f64,
    /// |a₀ − breakpoint| ≤ ztol counts as a kink.
    pub ztol: f64,
    /// Largest number of pieces enumerated (2^k for k kinks).
    pub max_pieces: usize,
    /// Set (e.g. by a stop signal) to stop: the tiers leave their loops and a verdict not
    /// reached before it was set is `interrupted`.
    pub interrupt: Option<&'static AtomicBool>,
    /// Seconds after which the tiers stop, as with [`Options::interrupt`]; a verdict not reached
    /// by then is `inconclusive` with the limit as its reason.
    pub time_limit: Option<f64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            order: Order::One,
            tol: 1e-6,
            ztol: 0.0,
            max_pieces: 4096,
            interrupt: None,
            time_limit: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Stationary,
    NotStationary,
    Inconclusive,
    /// Stopped by [`Options::interrupt`] before a tier decided.
    Interrupted,
}

impl Status {
    /// The contract spelling: `stationary`, `not_stationary`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stationary => "stationary",
            Status::NotStationary => "not_stationary",
            Status::Inconclusive => "inconclusive",
            Status::Interrupted => "interrupted",
        }
    }
}

/// One verdict (first or second order).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    /// The tier that decided: `gradient`, `lanczos`, `convex_qp`, `max_type`, `likq`, `pieces`,
    /// `search`.
    pub method: &'static str,
    pub active_kinks: usize,
    /// The witness (not stationary), in the form's variables.
    pub direction: Option<Vec<f64>>,
    /// f′(x; d) of the witness (first order).
    pub slope: Option<f64>,
    /// f″(x; d) of the witness (second order; f′(x; d) = 0 there).
    pub curvature: Option<f64>,
    /// Why a verdict is inconclusive, or what the tier measured.
    pub reason: Option<String>,
    /// Wall time of this verdict's tiers (and of its exact re-check).
    pub seconds: f64,
}

impl Verdict {
    fn new(status: Status, method: &'static str, kinks: usize) -> Verdict {
        Verdict {
            status,
            method,
            active_kinks: kinks,
            direction: None,
            slope: None,
            curvature: None,
            reason: None,
            seconds: 0.0,
        }
    }

    fn reason(mut self, r: impl Into<String>) -> Verdict {
        self.reason = Some(r.into());
        self
    }
}

/// The certificate of a point.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub first: Verdict,
    pub second: Option<Verdict>,
    /// The direction to plot: the witness, or the flattest direction checked (form variables).
    pub plot_direction: Vec<f64>,
    /// Wall time of the whole certificate: every tier of both orders and the exact re-check
    /// (the CLI adds the loading and completion of the point).
    pub seconds: f64,
    /// The tolerance on ‖∇f‖, slopes and curvatures the verdicts used.
    pub tol: f64,
    /// The kink tolerance the tiers used (`ztol > 0`: re-checked with exact slopes).
    pub ztol: f64,
}

thread_local! {
    /// When the certificate running on this thread reaches [`Options::time_limit`].
    static DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Whether [`Options::interrupt`] is set.
fn signalled(opts: &Options) -> bool {
    opts.interrupt.is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Whether the tiers must stop: [`Options::interrupt`] is set or the time limit has passed.
fn stopped(opts: &Options) -> bool {
    signalled(opts) || DEADLINE.get().is_some_and(|d| Instant::now() >= d)
}

/// `v`, or an `interrupted` verdict when the stop flag is set, or an `inconclusive` one when the
/// time limit has passed (the tier may have been cut short).
fn interrupted(v: Verdict, opts: &Options) -> Verdict {
    if signalled(opts) {
        return Verdict::new(Status::Interrupted, v.method, v.active_kinks)
            .reason("stopped by a signal before the certificate was complete");
    }
    if !stopped(opts) {
        return v;
    }
    Verdict::new(Status::Inconclusive, v.method, v.active_kinks).reason(format!(
        "time limit of {} s reached before the certificate was complete",
        opts.time_limit.unwrap_or(0.0)
    ))
}

/// An `interrupted` verdict reported as the `stationarity` command does: `inconclusive` with
/// the reason `interrupted`.
pub fn interrupted_as_inconclusive(v: &mut Verdict) {
    if v.status == Status::Interrupted {
        v.status = Status::Inconclusive;
        v.reason = Some("interrupted".into());
    }
}

/// Sets the thread's deadline for one certificate and clears it when dropped.
struct Deadline;

impl Deadline {
    fn start(start: Instant, opts: &Options) -> Deadline {
        let limit = opts
            .time_limit
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(std::time::Duration::from_secs_f64);
        DEADLINE.set(limit.and_then(|l| start.checked_add(l)));
        Deadline
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.set(None);
    }
}

/// Whether an exact slope `s` and curvature `c` along a direction make it a witness of
/// second-order non-stationarity: f(x + t d) = f(x) + t s + t² c / 2 + o(t²) decreases for
/// small t only when s ≤ 0. A slope above 0, however small, is not enough: the piece the
/// curvature belongs to was chosen by that positive slope and may stop being the active one
/// before the negative curvature overtakes it (a max of a piece curving down and one curving up).
pub(super) fn second_order_witness(s: f64, c: f64, tol: f64) -> bool {
    (-tol..=0.0).contains(&s) && c < -tol
}

/// The second-order verdict when first order is not `stationary`: the same status (second
/// order presupposes first) and, when not stationary, the first order's witness and slope (a
/// descent direction refutes second order too), with the first order's reason when it was
/// interrupted.
pub(super) fn second_after(first: &Verdict, active_kinks: usize) -> Verdict {
    let mut v = Verdict::new(first.status, first.method, active_kinks);
    if first.status == Status::NotStationary {
        v.direction = first.direction.clone();
        v.slope = first.slope;
    }
    v.reason = if first.status == Status::Interrupted {
        first.reason.clone()
    } else {
        Some("not first-order stationary".into())
    };
    v
}

/// `v` with why the tier before it (`likq`) did not decide, e.g. "LIKQ fails: …".
fn with_note(mut v: Verdict, note: Option<String>) -> Verdict {
    if let Some(n) = note {
        v.reason = Some(match v.reason.take() {
            Some(r) => format!("{r}; {n}"),
            None => n,
        });
    }
    v
}

/// Certify the point of `problem`.
pub fn certify(problem: &Problem<'_>, opts: &Options) -> Result<Certificate, EvalError> {
    let start = Instant::now();
    let _deadline = Deadline::start(start, opts);
    let mut o = Oracle::new(problem, opts)?;
    let first_kinks = o.first_order_kinks();
    let mut flattest = None;
    // Built when first order reaches the max-type tier; its second order reuses it.
    let mut max_type = None;
    let first = if first_kinks == 0 {
        smooth::first_order(&mut o, opts)?
    } else if let Some(v) = p1::convex_outer(&mut o, problem, opts)? {
        v
    } else if let Some(v) = pieces::convex_outer(&mut o, opts)? {
        v
    } else {
        max_type = maxtype::Tier::at(&mut o)?;
        let decided = match &max_type {
            Some(tier) => maxtype::first_order(&mut o, opts, tier)?,
            None => None,
        };
        match decided {
            Some(v) => v,
            None => match absnormal::first_order(&mut o, opts)? {
                (Some(v), _) => v,
                (None, note) => {
                    let v = match pieces::first_order(&mut o, opts)? {
                        Some(v) => v,
                        None => pieces::search(&mut o, opts, &mut flattest)?,
                    };
                    with_note(v, note)
                }
            },
        }
    };
    let mut first = interrupted(first, opts);
    first.seconds = start.elapsed().as_secs_f64();
    let second_start = Instant::now();
    let mut second = if opts.order != Order::Two {
        None
    } else if first.status != Status::Stationary {
        Some(second_after(&first, o.kinks.len()))
    } else if o.kinks.is_empty() {
        Some(interrupted(smooth::second_order(&mut o, opts)?, opts))
    } else {
        if max_type.is_none()
            && first.method == "convex_qp"
            && o.first_order_kinks() <= maxtype::MAX_CONVEX_KINKS
        {
            max_type = maxtype::Tier::at(&mut o)?;
        }
        let sharp = match &max_type {
            Some(tier) if matches!(first.method, "max_type" | "convex_qp") => {
                maxtype::second_order(&mut o, opts, tier)?
            }
            _ if first.method == "likq" => absnormal::second_order(&mut o, opts)?,
            _ => None,
        };
        // An undecided max-type verdict gives enumeration its chance, and is kept when that
        // cannot decide either (its reason says more).
        let v = match sharp {
            Some(v) if v.status != Status::Inconclusive => v,
            sharp => {
                let p = pieces::second_order(&mut o, opts)?;
                match sharp {
                    Some(m) if p.status == Status::Inconclusive => m,
                    _ => p,
                }
            }
        };
        Some(interrupted(v, opts))
    };
    if let Some(s) = &mut second {
        s.seconds = second_start.elapsed().as_secs_f64();
    }
    if opts.ztol > 0.0 {
        exact::recheck(problem, opts, &o, &mut first, &mut second)?;
    }
    let witness = second
        .as_ref()
        .and_then(|v| v.direction.clone())
        .or_else(|| first.direction.clone());
    let plot_direction = match witness.or(flattest) {
        Some(d) if stopped(opts) => d,
        None if stopped(opts) => vec![0.0; o.n],
        Some(d) => d,
        None => o.flattest()?,
    };
    o.map_to_form(&mut first)?;
    if let Some(s) = &mut second {
        o.map_to_form(s)?;
    }
    let plot_direction = o.form_direction(&plot_direction)?;
    for v in std::iter::once(&mut first).chain(second.as_mut()) {
        // Never a negative zero in a report.
        v.slope = v.slope.map(|x| x + 0.0);
        v.curvature = v.curvature.map(|x| x + 0.0);
    }
    Ok(Certificate {
        first,
        second,
        plot_direction,
        seconds: start.elapsed().as_secs_f64(),
        tol: opts.tol,
        ztol: opts.ztol,
    })
}
