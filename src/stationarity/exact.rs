//! The exact re-check of verdicts reached with `ztol > 0`.
//!
//! With `ztol > 0` the tiers treat every argument within `ztol` of a breakpoint as sitting on it,
//! so the slopes they read are those of a nearby nonsmooth function, not of f at x. Every
//! direction the tiers examined (the witness, the probes of the convex QP, the points and LP
//! minimizers of each piece, the search's directions, the Lanczos vector, the face generators)
//! is evaluated again with the exact one-sided derivative (ray-Taylor with ztol = 0): a slope
//! below −tol refutes stationarity, and a witness whose exact slope is not below −tol is no
//! witness.

use super::oracle::Oracle;
use super::smooth::norm2;
use super::{Options, Status, Verdict};
use crate::eval::EvalError;
use crate::registry::Order;
use crate::text::plural;

/// What the exact evaluation found along the examined directions.
#[derive(Default)]
struct Found {
    /// The steepest exact first-order descent: (d, f′(x; d)) with f′ < −tol.
    descent: Option<(Vec<f64>, f64)>,
    /// The most negative exact curvature along a critical direction: (d, f′, f″), |f′| ≤ tol.
    curved: Option<(Vec<f64>, f64, f64)>,
    /// Directions evaluated.
    count: usize,
}

/// Re-check `first` (and `second`) with exact slopes along every direction the tiers examined;
/// the verdicts are changed in place. Call only with `opts.ztol > 0`, before
/// [`Oracle::map_to_form`].
pub(super) fn recheck(
    problem: &super::Problem<'_>,
    opts: &Options,
    o: &Oracle<'_>,
    first: &mut Verdict,
    second: &mut Option<Verdict>,
) -> Result<(), EvalError> {
    let start = std::time::Instant::now();
    let exact_opts = Options { ztol: 0.0, ..*opts };
    let mut ex = Oracle::new(problem, &exact_opts)?;
    let order = if second.is_some() {
        Order::Two
    } else {
        Order::One
    };
    let (tol, z) = (opts.tol, opts.ztol);
    let within = o.kinks.len().saturating_sub(ex.kinks.len());
    let exact_at = |ex: &mut Oracle<'_>, d: &[f64]| -> Option<(Vec<f64>, f64, f64)> {
        let n = norm2(d);
        if !(n > 0.0 && n.is_finite()) {
            return None;
        }
        let d: Vec<f64> = d.iter().map(|x| x / n).collect();
        // A direction the exact evaluation cannot follow (a domain edge) decides nothing.
        let t = ex.eval(&d, order).ok()?;
        let s = t.d1.filter(|s| s.is_finite())?;
        Some((d, s, t.d2.unwrap_or(f64::NAN)))
    };
    let mut found = Found::default();
    let mut consider = |ex: &mut Oracle<'_>, d: &[f64]| -> Option<(Vec<f64>, f64, f64)> {
        let r = exact_at(ex, d)?;
        found.count += 1;
        let (dd, s, c) = &r;
        if *s < -tol && found.descent.as_ref().is_none_or(|b| *s < b.1) {
            found.descent = Some((dd.clone(), *s));
        }
        if super::second_order_witness(*s, *c, tol)
            && found.curved.as_ref().is_none_or(|b| *c < b.2)
        {
            found.curved = Some((dd.clone(), *s, *c));
        }
        Some(r)
    };
    let w1 = match &first.direction {
        Some(d) => consider(&mut ex, d),
        None => None,
    };
    let w2 = match second.as_ref().and_then(|v| v.direction.as_ref()) {
        Some(d) => consider(&mut ex, d),
        None => None,
    };
    for d in &o.examined {
        consider(&mut ex, d);
    }
    let mut e = vec![0.0; o.n];
    for j in 0..o.examined_units.min(o.n) {
        for s in [1.0, -1.0] {
            e[j] = s;
            consider(&mut ex, &e);
        }
        e[j] = 0.0;
    }
    let count = found.count;
    let checked = format!(
        "reached with ztol = {z} ({} counted only within ztol); exact slopes along {} examined: none below −tol",
        plural(within, "kink", "kinks"),
        plural(count, "direction", "directions"),
    );
    let before = first.status;
    match (first.status, w1.clone()) {
        (Status::NotStationary, Some((_, s, _))) if s < -tol => {
            first.slope = Some(s);
            append(
                first,
                &format!("exact slope along the witness (ztol = {z}) {s:.6e}"),
            );
        }
        _ => match found.descent.take() {
            Some((d, s)) => {
                let was = first.status.as_str();
                first.status = Status::NotStationary;
                first.reason = Some(format!(
                    "with ztol = {z} the tier `{}` found `{was}`{}; the exact one-sided slope along a direction it examined is {s:.6e} < −tol",
                    first.method,
                    first.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                ));
                first.direction = Some(d);
                first.slope = Some(s);
                first.curvature = None;
            }
            None if first.status == Status::NotStationary => {
                let s = first
                    .slope
                    .map(|s| format!(" (slope {s:.6e} within ztol)"))
                    .unwrap_or_default();
                let e = w1
                    .as_ref()
                    .map(|w| format!(" {:.6e}", w.1 + 0.0))
                    .unwrap_or_default();
                first.status = Status::Inconclusive;
                first.reason = Some(format!(
                    "the witness found with ztol = {z}{s} is not a descent direction of f: its exact slope{e} is ≥ −tol, and no direction examined has an exact slope below −tol"
                ));
                first.direction = None;
                first.slope = None;
                first.curvature = None;
            }
            None if first.status == Status::Stationary => append(first, &checked),
            None => {}
        },
    }
    first.seconds += start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let Some(v) = second else {
        return Ok(());
    };
    if first.status != before || first.status != Status::Stationary {
        if first.status != before {
            let seconds = v.seconds;
            *v = super::second_after(first, v.active_kinks);
            v.seconds = seconds;
        }
        return Ok(());
    }
    match (v.status, w2) {
        (Status::NotStationary, Some((_, s, c))) if super::second_order_witness(s, c, tol) => {
            v.slope = Some(s);
            v.curvature = Some(c);
            append(
                v,
                &format!("exact curvature along the witness (ztol = {z}) {c:.6e}"),
            );
        }
        _ => match found.curved.take() {
            Some((d, s, c)) => {
                let was = v.status.as_str();
                v.status = Status::NotStationary;
                v.reason = Some(format!(
                    "with ztol = {z} the tier `{}` found `{was}`; the exact curvature along a critical direction it examined is {c:.6e} < −tol",
                    v.method
                ));
                v.direction = Some(d);
                v.slope = Some(s);
                v.curvature = Some(c);
            }
            None if v.status == Status::NotStationary => {
                v.status = Status::Inconclusive;
                v.reason = Some(format!(
                    "the witness found with ztol = {z} is not confirmed by the exact slope and curvature, and no direction examined has an exact curvature below −tol"
                ));
                v.direction = None;
                v.slope = None;
                v.curvature = None;
            }
            None if v.status == Status::Stationary => {
                append(v, &checked.replace("slopes", "curvatures"))
            }
            None => {}
        },
    }
    v.seconds += start.elapsed().as_secs_f64();
    Ok(())
}

fn append(v: &mut Verdict, more: &str) {
    v.reason = Some(match v.reason.take() {
        Some(r) => format!("{r}; {more}"),
        None => more.to_owned(),
    });
}
