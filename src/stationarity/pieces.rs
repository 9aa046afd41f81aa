//! Tiers 2 to 4 at a point with active kinks: one QP when every kink is a convex outer term,
//! piece enumeration (one LP per piece) while 2^k ≤ `max_pieces`, and otherwise a descent search.
//!
//! A piece is a sign pattern σ of the kink arguments' slopes; on its cone
//! { d : σ_i b_i·d ≥ 0 } the map d ↦ f′(x; d) is linear, d ↦ L_σ·d. Kinks are visited in
//! topological order, so the argument of a nested kink is linear once the kinks below it are
//! fixed; its row b_i and L_σ are read off exact directional derivatives at a point inside the
//! cone ("probing": n + 1 forward passes), never from finite differences of values.

use super::kinks::KinkOrder;
use super::lp;
use super::oracle::Oracle;
use super::smooth::{dot, norm2};
use super::{Options, Status, Verdict};
use crate::eval::EvalError;
use crate::registry::Order;
use crate::text::plural;

/// Tier 2: every first-order kink enters f linearly with a nonnegative jump and has a smooth
/// argument, so f′(x; d) = c·d + Σ ρ_i (v_i·d)⁺ is sublinear and x is d-stationary iff
/// 0 ∈ c + Σ ρ_i [0, 1] v_i: one QP for the min-norm element y; a nonzero y gives d = −y.
pub(super) fn convex_outer(
    o: &mut Oracle<'_>,
    opts: &Options,
) -> Result<Option<Verdict>, EvalError> {
    let first: Vec<usize> = (0..o.kinks.len())
        .filter(|&i| o.kinks[i].order == KinkOrder::First)
        .collect();
    let convex = first.iter().all(|&i| {
        let k = &o.kinks[i];
        k.clean && k.jump().is_some_and(|r| r >= 0.0)
    });
    if !convex {
        return Ok(None);
    }
    let kinks = o.kinks.len();
    let (n, rho): (usize, Vec<f64>) = (
        o.n,
        first
            .iter()
            .map(|&i| o.kinks[i].jump().unwrap_or(0.0))
            .collect(),
    );
    // Probe the unit directions: v_i·e_j is the a₁ of argument i, and c_j = f′(x; e_j) − Σ ρ_i (v_ij)⁺.
    let mut cols: Vec<lp::Row> = vec![Vec::new(); first.len()];
    let mut c = vec![0.0; n];
    let mut e = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        let f1 = o.eval(&e, Order::One)?.d1.unwrap_or(f64::NAN);
        let slopes = o.kink_slopes();
        let mut cj = f1;
        for (col, (&i, &r)) in cols.iter_mut().zip(first.iter().zip(&rho)) {
            let v = slopes[i];
            if v != 0.0 {
                col.push((j, r * v));
                cj -= r * v.max(0.0);
            }
        }
        c[j] = cj;
        e[j] = 0.0;
    }
    o.examined_units = o.examined_units.max(n);
    let Some(y) = lp::min_norm_in_box(&c, &cols) else {
        return Ok(None);
    };
    nearest_point_verdict(o, &y, first.len(), kinks, opts)
}

/// The convex tier's verdict from y, the element of the subdifferential nearest to 0 over
/// `active` convex outer kinks: `stationary` when ‖y‖ ≤ tol, `not_stationary` along −y/‖y‖
/// when its exact slope confirms it (< −tol), else `None` for the next tier to decide.
pub(super) fn nearest_point_verdict(
    o: &mut Oracle<'_>,
    y: &[f64],
    active: usize,
    kinks: usize,
    opts: &Options,
) -> Result<Option<Verdict>, EvalError> {
    let ny = norm2(y);
    let reason = format!(
        "{}; distance from 0 to the subdifferential {ny:.3e}",
        plural(active, "convex outer kink", "convex outer kinks")
    );
    if ny <= opts.tol {
        return Ok(Some(
            Verdict::new(Status::Stationary, "convex_qp", kinks)
                .reason(format!("{reason} ≤ tol = {:e}", opts.tol)),
        ));
    }
    let d: Vec<f64> = y.iter().map(|x| -x / ny).collect();
    o.remember(&d);
    let slope = o.eval(&d, Order::One)?.d1.unwrap_or(f64::NAN);
    if slope < -opts.tol {
        let mut v = Verdict::new(Status::NotStationary, "convex_qp", kinks).reason(reason);
        v.direction = Some(d);
        v.slope = Some(slope);
        return Ok(Some(v));
    }
    // The answer is not confirmed by the exact slope: let the next tier decide.
    Ok(None)
}

/// One leaf of the enumeration: its cone rows σ_i b_i and the gradient L of f′ on it.
struct Leaf {
    cone: Vec<Vec<f64>>,
    grad: Vec<f64>,
    inner: Vec<f64>,
    margin: f64,
}

/// Why the enumeration stopped.
enum Enum {
    Done(Vec<Leaf>),
    TooMany(usize),
}

/// Tier 3, first order: one LP per piece. `None` when there are more than `max_pieces` pieces.
pub(super) fn first_order(
    o: &mut Oracle<'_>,
    opts: &Options,
) -> Result<Option<Verdict>, EvalError> {
    let leaves = match enumerate(o, opts, KinkOrder::First)? {
        Enum::Done(l) => l,
        Enum::TooMany(_) => return Ok(None),
    };
    let kinks = o.kinks.len();
    let count = leaves.len();
    for leaf in &leaves {
        o.remember(&leaf.inner);
    }
    for leaf in &leaves {
        if super::stopped(opts) {
            break;
        }
        let Some(d) = lp::min_on_cone(&leaf.grad, &leaf.cone, &[]) else {
            continue;
        };
        o.remember(&d);
        if dot(&leaf.grad, &d) < -opts.tol {
            let slope = o.eval(&d, Order::One)?.d1.unwrap_or(f64::NAN);
            if slope < -opts.tol {
                let mut v = Verdict::new(Status::NotStationary, "pieces", kinks)
                    .reason(format!("{count} pieces enumerated"));
                v.direction = Some(d);
                v.slope = Some(slope);
                return Ok(Some(v));
            }
        }
    }
    Ok(Some(
        Verdict::new(Status::Stationary, "pieces", kinks).reason(format!(
            "{} enumerated, f′ ≥ −tol on each piece (tol = {:e})",
            plural(count, "piece", "pieces"),
            opts.tol
        )),
    ))
}

/// Second order at a first-order stationary point with kinks: on each piece, the critical face
/// { d in the cone : L·d = 0 }. A face that is one ray or one line is decided by the exact f″
/// along its generators (exact for curved kinks too); otherwise the Hessian H of the piece (by
/// exact curvatures at interior points): H ⪰ 0 on the face's span decides a piece, a negative
/// direction inside the face confirmed by the exact f″ refutes, anything else is inconclusive.
pub(super) fn second_order(o: &mut Oracle<'_>, opts: &Options) -> Result<Verdict, EvalError> {
    let kinks = o.kinks.len();
    let leaves = match enumerate(o, opts, KinkOrder::Second)? {
        Enum::Done(l) => l,
        Enum::TooMany(k) => {
            return Ok(
                Verdict::new(Status::Inconclusive, "pieces", kinks).reason(format!(
                    "{}, 2^{k} pieces > --max-pieces {}",
                    plural(k, "active kink", "active kinks"),
                    opts.max_pieces
                )),
            )
        }
    };
    let mut undecided = 0;
    let mut off_ray = 0;
    for leaf in &leaves {
        if super::stopped(opts) {
            break;
        }
        let gens = face_generators(&leaf.grad, &leaf.cone, opts.tol);
        if gens.is_empty() {
            continue;
        }
        // Exact curvature of the face generators first: a negative one refutes.
        let mut bent = false;
        for g in &gens {
            o.remember(g);
            match refute(o, g, opts, kinks)? {
                Ok(v) => return Ok(v),
                Err(curvature) => bent |= curvature < -opts.tol,
            }
        }
        let basis = orthonormal(&gens);
        if basis.len() <= 1 {
            // The face is one ray or one line: its generators are all its directions, and
            // f″(x; t g) = t² f″(x; g), so their exact curvatures decide the piece, however the
            // kink's argument curves along them. A negative curvature that did not refute (the
            // LP's generator is off the critical ray by rounding, so its exact slope is
            // slightly positive) decides nothing.
            if bent {
                off_ray += 1;
            }
            continue;
        }
        let h = piece_hessian(o, leaf, &basis)?;
        let eig = nalgebra::SymmetricEigen::new(h);
        let (i, lam) = eig
            .eigenvalues
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        if lam >= -opts.tol {
            continue;
        }
        let y = eig.eigenvectors.column(i);
        let mut d = vec![0.0; o.n];
        for (c, b) in y.iter().zip(&basis) {
            d.iter_mut().zip(b).for_each(|(x, bi)| *x += c * bi);
        }
        for s in [1.0, -1.0] {
            let ds: Vec<f64> = d.iter().map(|x| s * x).collect();
            o.remember(&ds);
            if in_face(&ds, &leaf.grad, &leaf.cone, opts.tol) {
                if let Ok(v) = refute(o, &ds, opts, kinks)? {
                    return Ok(v);
                }
            }
        }
        undecided += 1;
    }
    if undecided > 0 {
        return Ok(Verdict::new(Status::Inconclusive, "pieces", kinks).reason(format!(
            "on {undecided} piece(s) the Hessian is indefinite on a critical cone that is not a subspace (copositivity not decided)"
        )));
    }
    if off_ray > 0 {
        return Ok(Verdict::new(Status::Inconclusive, "pieces", kinks).reason(format!(
            "on {off_ray} piece(s) the critical ray has negative curvature, but the exact slope along the computed ray is not within [−tol, 0] (no witness)"
        )));
    }
    Ok(
        Verdict::new(Status::Stationary, "pieces", kinks).reason(format!(
            "{} enumerated, f″ ≥ −tol on each critical face (tol = {:e})",
            plural(leaves.len(), "piece", "pieces"),
            opts.tol
        )),
    )
}

/// Tier 4: search for a descent direction; a find refutes, no find is inconclusive.
pub(super) fn search(
    o: &mut Oracle<'_>,
    opts: &Options,
    flattest: &mut Option<Vec<f64>>,
) -> Result<Verdict, EvalError> {
    let kinks = o.kinks.len();
    let k = o.first_order_kinks();
    let n = o.n;
    let mut candidates: Vec<Vec<f64>> = Vec::new();
    let g = o.gradient()?;
    candidates.push(g.iter().map(|x| -x).collect());
    for j in 0..n.min(2000) {
        for s in [1.0, -1.0] {
            let mut e = vec![0.0; n];
            e[j] = s;
            candidates.push(e);
        }
    }
    let mut rng = crate::rng::Rng::new(0x5eed);
    for _ in 0..200 {
        candidates.push((0..n).map(|_| rng.normal()).collect());
    }
    o.examined_units = o.examined_units.max(n.min(2000));
    if let Some(g) = candidates.first() {
        o.remember(g);
    }
    let mut best = (f64::INFINITY, None);
    for d in candidates {
        if super::stopped(opts) {
            break;
        }
        let nd = norm2(&d);
        if nd == 0.0 {
            continue;
        }
        let d: Vec<f64> = d.iter().map(|x| x / nd).collect();
        let s = o.eval(&d, Order::One)?.d1.unwrap_or(f64::NAN);
        if s < best.0 {
            best = (s, Some(d));
        }
    }
    let (slope, d) = best;
    if slope < -opts.tol {
        let mut v = Verdict::new(Status::NotStationary, "search", kinks)
            .reason("descent direction found by search".to_string());
        v.direction = d;
        v.slope = Some(slope);
        return Ok(v);
    }
    if let Some(d) = &d {
        o.remember(d);
    }
    *flattest = d;
    Ok(Verdict::new(Status::Inconclusive, "search", kinks).reason(format!(
        "{} inside compositions, 2^{k} pieces > --max-pieces {}; no descent direction found by search",
        plural(k, "active kink", "active kinks"),
        opts.max_pieces
    )))
}

/// The witness `d` gives when its exact slope and curvature make one, else its exact curvature.
fn refute(
    o: &mut Oracle<'_>,
    d: &[f64],
    opts: &Options,
    kinks: usize,
) -> Result<Result<Verdict, f64>, EvalError> {
    let t = o.eval(d, Order::Two)?;
    let (s, c) = (t.d1.unwrap_or(f64::NAN), t.d2.unwrap_or(f64::NAN));
    if super::second_order_witness(s, c, opts.tol) {
        let mut v = Verdict::new(Status::NotStationary, "pieces", kinks)
            .reason("negative curvature on a critical face".to_string());
        v.direction = Some(d.to_vec());
        v.slope = Some(s);
        v.curvature = Some(c);
        return Ok(Ok(v));
    }
    Ok(Err(c))
}

/// Depth-first over the kinks of order ≤ `upto` in topological order; a kink whose argument
/// slope vanishes on the current cone does not split it.
fn enumerate(o: &mut Oracle<'_>, opts: &Options, upto: KinkOrder) -> Result<Enum, EvalError> {
    let active: Vec<usize> = (0..o.kinks.len())
        .filter(|&i| upto == KinkOrder::Second || o.kinks[i].order == KinkOrder::First)
        .collect();
    let k = active.len();
    if k >= usize::BITS as usize || (1usize << k) > opts.max_pieces {
        return Ok(Enum::TooMany(k));
    }
    let n = o.n;
    let mut leaves = Vec::new();
    // Stack of (next kink position, cone rows, interior point, margin).
    let mut stack = vec![(0usize, Vec::<Vec<f64>>::new(), vec![0.0; n], 1.0f64)];
    while let Some((pos, cone, inner, margin)) = stack.pop() {
        if super::stopped(opts) {
            break;
        }
        if pos == k {
            let (grad, _) = probe(o, &inner, margin, &cone)?;
            leaves.push(Leaf {
                cone,
                grad,
                inner,
                margin,
            });
            continue;
        }
        let (_, rows) = probe(o, &inner, margin, &cone)?;
        let b = rows[active[pos]].clone();
        if norm2(&b) <= 1e-12 {
            stack.push((pos + 1, cone, inner, margin));
            continue;
        }
        for s in [1.0, -1.0] {
            let mut c2 = cone.clone();
            c2.push(b.iter().map(|x| s * x).collect());
            if let Some((d, t)) = lp::interior(n, &c2) {
                if t > 1e-9 {
                    stack.push((pos + 1, c2, d, t));
                }
            }
        }
    }
    Ok(Enum::Done(leaves))
}

/// At an interior point `inner` of `cone`: the gradient of d ↦ f′(x; d) and the gradient of
/// each kink argument's slope, by n + 1 exact directional derivatives inside the cone.
fn probe(
    o: &mut Oracle<'_>,
    inner: &[f64],
    margin: f64,
    cone: &[Vec<f64>],
) -> Result<(Vec<f64>, Vec<Vec<f64>>), EvalError> {
    let n = o.n;
    let tau = step_inside(margin, cone);
    let f0 = o.eval(inner, Order::One)?.d1.unwrap_or(f64::NAN);
    let s0 = o.kink_slopes();
    let mut grad = vec![0.0; n];
    let mut rows = vec![vec![0.0; n]; s0.len()];
    let mut d = inner.to_vec();
    for j in 0..n {
        d[j] = inner[j] + tau;
        let f = o.eval(&d, Order::One)?.d1.unwrap_or(f64::NAN);
        grad[j] = (f - f0) / tau;
        for (r, (s, s0)) in rows.iter_mut().zip(o.kink_slopes().iter().zip(&s0)) {
            r[j] = (s - s0) / tau;
        }
        d[j] = inner[j];
    }
    Ok((grad, rows))
}

/// A step that keeps `inner ± τ e_j` inside the cone (rows normalized as in [`lp::interior`]).
fn step_inside(margin: f64, cone: &[Vec<f64>]) -> f64 {
    let worst = cone
        .iter()
        .map(|r| r.iter().fold(0.0f64, |m, v| m.max(v.abs())) / norm2(r).max(1e-300))
        .fold(0.0f64, f64::max);
    if worst == 0.0 {
        0.5
    } else {
        (0.25 * margin / worst).min(0.5)
    }
}

/// Nonzero points of the critical face { R d ≥ 0, L·d = 0, −1 ≤ d ≤ 1 }: maximizers of ±d_j.
fn face_generators(grad: &[f64], cone: &[Vec<f64>], tol: f64) -> Vec<Vec<f64>> {
    let n = grad.len();
    let mut gens: Vec<Vec<f64>> = Vec::new();
    for j in 0..n {
        for s in [1.0, -1.0] {
            let mut c = vec![0.0; n];
            c[j] = -s;
            if let Some(d) = lp::min_on_cone(&c, cone, std::slice::from_ref(&grad.to_vec())) {
                if s * d[j] > 1e-7 && !gens.iter().any(|g| close(g, &d, tol)) {
                    gens.push(d);
                }
            }
        }
    }
    gens
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol.max(1e-9))
}

fn in_face(d: &[f64], grad: &[f64], cone: &[Vec<f64>], tol: f64) -> bool {
    let scale = 1.0 + norm2(d);
    dot(grad, d).abs() <= tol * scale && cone.iter().all(|r| dot(r, d) >= -tol * scale)
}

/// An orthonormal basis of the span of `v` (Gram–Schmidt, dropping dependent vectors).
fn orthonormal(v: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for x in v {
        let mut w = x.clone();
        for b in &basis {
            let c = dot(&w, b);
            w.iter_mut().zip(b).for_each(|(wi, bi)| *wi -= c * bi);
        }
        let nw = norm2(&w);
        if nw > 1e-8 {
            basis.push(w.iter().map(|x| x / nw).collect());
        }
    }
    basis
}

/// Qᵀ H Q for the Hessian H of the piece, from exact curvatures q(d) = f″(x; d) at points
/// inside its cone: uᵀHu = (q(p + τu) + q(p − τu) − 2 q(p)) / (2τ²), exact for a quadratic q.
fn piece_hessian(
    o: &mut Oracle<'_>,
    leaf: &Leaf,
    basis: &[Vec<f64>],
) -> Result<nalgebra::DMatrix<f64>, EvalError> {
    let m = basis.len();
    let tau = step_inside(leaf.margin, &leaf.cone) / (m as f64).sqrt().max(1.0);
    let q0 = o.eval(&leaf.inner, Order::Two)?.d2.unwrap_or(f64::NAN);
    let quad = |o: &mut Oracle<'_>, u: &[f64]| -> Result<f64, EvalError> {
        let p: Vec<f64> = leaf.inner.iter().zip(u).map(|(x, y)| x + tau * y).collect();
        let mm: Vec<f64> = leaf.inner.iter().zip(u).map(|(x, y)| x - tau * y).collect();
        let qp = o.eval(&p, Order::Two)?.d2.unwrap_or(f64::NAN);
        let qm = o.eval(&mm, Order::Two)?.d2.unwrap_or(f64::NAN);
        Ok((qp + qm - 2.0 * q0) / (2.0 * tau * tau))
    };
    let mut h = nalgebra::DMatrix::zeros(m, m);
    for a in 0..m {
        h[(a, a)] = quad(o, &basis[a])?;
    }
    for a in 0..m {
        for b in a + 1..m {
            let u: Vec<f64> = basis[a].iter().zip(&basis[b]).map(|(x, y)| x + y).collect();
            let v = (quad(o, &u)? - h[(a, a)] - h[(b, b)]) / 2.0;
            h[(a, b)] = v;
            h[(b, a)] = v;
        }
    }
    Ok(h)
}
