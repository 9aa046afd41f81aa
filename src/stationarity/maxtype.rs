//! Tier `max_type`: d ↦ f′(x; d) as a convex piecewise-linear outer function of linear forms,
//! decided by one min-norm problem over the active pieces, never by enumeration.
//!
//! Along a ray, the first-order coefficient of every node that has no active kink at or below it
//! is linear in d (a *leaf*, whose gradient is read off n exact directional derivatives). Every
//! other node entry is an [`Outer`]: σ · max over its active pieces of a linear combination of
//! leaves and other outer entries (sums, scalings, smooth elementwise maps through their
//! derivative at x, ties of `max`/`min`, `abs` and `norm1` entries at zero, plugin kinks through
//! their one-sided slopes). When every multi-piece outer entry enters f with a nonnegative total
//! weight (a sign fixed by the structure, checked statically), f′(x; ·) is sublinear and its
//! subdifferential at 0 is the set of Σ μ_leaf ∇leaf over the *flows*: weight 1 at the
//! objective, split among a node's pieces by λ ≥ 0 and passed to children by the pieces'
//! coefficients. x is d-stationary iff the min-norm element y of that set is 0; otherwise −y is
//! a descent direction (the dual witness), confirmed by its exact slope. The problem has one
//! variable per active piece, so it is polynomial in their number.
//!
//! Second order: when the critical cone { d : f′(x; d) ≤ 0 } is {0} (a sharp minimum, decided by
//! n + 1 LPs over the epigraph of the same structure), second-order stationarity holds vacuously.

use std::collections::HashMap;

use super::kinks::{bidx, reachable, KinkOrder};
use super::lp::{Program, Row};
use super::oracle::Oracle;
use super::smooth::norm2;
use super::{Options, Status, Verdict};
use crate::eval::EvalError;
use crate::graph::{gather_index, ElemBinary, ElemUnary, NodeId, Op, ReduceKind};
use crate::registry::Order;
use crate::text::plural;

/// A scalar of d ↦ f′(x; d): a leaf (linear in d) or an outer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ref {
    Leaf(usize),
    Outer(usize),
}

/// One convex piecewise-linear outer node entry with its active pieces:
/// φ = σ · max_p Σ_{(r, c) ∈ p} c · φ_r. One piece is a linear combination; σ = −1 is a concave
/// entry (a `min` tie, a concave plugin kink) written as −max(−·).
#[derive(Debug, Clone)]
struct Outer {
    sigma: f64,
    pieces: Vec<Vec<(Ref, f64)>>,
}

impl Outer {
    fn linear(terms: Vec<(Ref, f64)>) -> Outer {
        Outer {
            sigma: 1.0,
            pieces: vec![terms],
        }
    }

    fn max(sigma: f64, pieces: Vec<Vec<(Ref, f64)>>) -> Outer {
        Outer { sigma, pieces }
    }
}

/// The outer structure of f′(x; ·): entries in topological order (children first), the root
/// last, and the leaves as (node, entry).
struct Structure {
    outers: Vec<Outer>,
    leaves: Vec<(NodeId, usize)>,
    root: usize,
    /// Sign of the total weight with which each outer entry enters f (0: it does not).
    sign: Vec<f64>,
}

struct Builder<'o, 'a> {
    o: &'o Oracle<'a>,
    kinked: Vec<bool>,
    outer_of: HashMap<(NodeId, usize), usize>,
    leaf_of: HashMap<(NodeId, usize), usize>,
    outers: Vec<Outer>,
    leaves: Vec<(NodeId, usize)>,
}

impl Builder<'_, '_> {
    /// The scalar of entry `i` of `id`, `None` when it does not vary.
    fn r(&mut self, id: NodeId, i: usize) -> Option<Ref> {
        if !self.o.graph().node(id).varies {
            return None;
        }
        if self.kinked[id.index()] {
            return self.outer_of.get(&(id, i)).map(|&k| Ref::Outer(k));
        }
        let next = self.leaves.len();
        let k = *self.leaf_of.entry((id, i)).or_insert(next);
        if k == next {
            self.leaves.push((id, i));
        }
        Some(Ref::Leaf(k))
    }

    fn terms(&mut self, parts: &[(NodeId, usize, f64)]) -> Option<Vec<(Ref, f64)>> {
        let mut out = Vec::new();
        for &(id, i, c) in parts {
            if !c.is_finite() {
                return None;
            }
            if c != 0.0 {
                if let Some(r) = self.r(id, i) {
                    out.push((r, c));
                }
            }
        }
        Some(out)
    }

    /// The outer entry `i` of the kinked node `id`; `None` for an operation whose first-order
    /// map is not of max type here (then the tier does not apply).
    fn entry(&mut self, id: NodeId, i: usize) -> Option<Outer> {
        let o = self.o;
        let g = o.graph();
        let n = g.node(id);
        let ztol = o.opts.ztol;
        let at = |v: f64| v.abs() <= ztol;
        let val = |a: NodeId, j: usize| o.values(a)[j];
        match &n.op {
            Op::Unary(u, a) => {
                let a0 = val(*a, i);
                let c = match u {
                    ElemUnary::Neg => -1.0,
                    ElemUnary::Scale(s) => *s,
                    ElemUnary::Exp => a0.exp(),
                    ElemUnary::Log => 1.0 / a0,
                    ElemUnary::Sqrt if a0 > 0.0 => 0.5 / a0.sqrt(),
                    ElemUnary::Sqrt => return None,
                    ElemUnary::PowI(0) => 0.0,
                    ElemUnary::PowI(k) => f64::from(*k) * a0.powi(k - 1),
                    ElemUnary::Pow(p) if *p == 0.0 => 0.0,
                    ElemUnary::Pow(p) if a0 != 0.0 => p * a0.powf(p - 1.0),
                    // At a = 0 the slope is 0 for p > 1 and a itself for p = 1; below, infinite.
                    ElemUnary::Pow(p) if *p > 1.0 => 0.0,
                    ElemUnary::Pow(p) if *p == 1.0 => 1.0,
                    ElemUnary::Pow(_) => return None,
                    ElemUnary::Abs if at(a0) => {
                        let p = self.terms(&[(*a, i, 1.0)])?;
                        let m = self.terms(&[(*a, i, -1.0)])?;
                        return Some(Outer::max(1.0, vec![p, m]));
                    }
                    ElemUnary::Abs => a0.signum(),
                };
                Some(Outer::linear(self.terms(&[(*a, i, c)])?))
            }
            Op::Binary(op, a, b) => {
                let (r, c) = (i % n.rows.max(1), i / n.rows.max(1));
                let (na, nb) = (g.node(*a), g.node(*b));
                let ia = bidx(na.rows, na.cols, r, c);
                let ib = bidx(nb.rows, nb.cols, r, c);
                let (a0, b0) = (val(*a, ia), val(*b, ib));
                let parts = match op {
                    ElemBinary::Add => [(*a, ia, 1.0), (*b, ib, 1.0)],
                    ElemBinary::Sub => [(*a, ia, 1.0), (*b, ib, -1.0)],
                    ElemBinary::Mul => [(*a, ia, b0), (*b, ib, a0)],
                    ElemBinary::Div => [(*a, ia, 1.0 / b0), (*b, ib, -a0 / (b0 * b0))],
                    ElemBinary::Max | ElemBinary::Min => {
                        let s = if *op == ElemBinary::Max { 1.0 } else { -1.0 };
                        if at(a0 - b0) {
                            let pa = self.terms(&[(*a, ia, s)])?;
                            let pb = self.terms(&[(*b, ib, s)])?;
                            return Some(Outer::max(s, vec![pa, pb]));
                        }
                        let pick_a = (s * (a0 - b0)) > 0.0;
                        if pick_a {
                            [(*a, ia, 1.0), (*b, ib, 0.0)]
                        } else {
                            [(*a, ia, 0.0), (*b, ib, 1.0)]
                        }
                    }
                };
                Some(Outer::linear(self.terms(&parts)?))
            }
            Op::Reduce(kind, a) => {
                let na = g.node(*a);
                let group = na.group_len();
                let entries = i * group..(i + 1) * group;
                let a0 = o.values(*a);
                let mut parts = Vec::new();
                let mut atoms = Vec::new();
                match kind {
                    ReduceKind::Sum => parts.extend(entries.map(|j| (*a, j, 1.0))),
                    ReduceKind::SqNorm => parts.extend(entries.map(|j| (*a, j, 2.0 * a0[j]))),
                    ReduceKind::Norm1 => {
                        for j in entries {
                            if at(a0[j]) {
                                atoms.push(j);
                            } else {
                                parts.push((*a, j, a0[j].signum()));
                            }
                        }
                    }
                    ReduceKind::Max => {
                        // One n-ary max: its tied entries are the pieces of one outer max.
                        let top = entries
                            .clone()
                            .map(|j| a0[j])
                            .fold(f64::NEG_INFINITY, f64::max);
                        let tied: Vec<usize> = entries.filter(|&j| at(a0[j] - top)).collect();
                        if let [j] = tied[..] {
                            parts.push((*a, j, 1.0));
                        } else {
                            let mut pieces = Vec::with_capacity(tied.len());
                            for j in tied {
                                pieces.push(self.terms(&[(*a, j, 1.0)])?);
                            }
                            return Some(Outer::max(1.0, pieces));
                        }
                    }
                    ReduceKind::Norm2 => {
                        let norm = entries.clone().map(|j| a0[j] * a0[j]).sum::<f64>().sqrt();
                        if at(norm) {
                            return None;
                        }
                        parts.extend(entries.map(|j| (*a, j, a0[j] / norm)));
                    }
                }
                let mut terms = self.terms(&parts)?;
                for j in atoms {
                    // |a_j| at zero: an abs atom of its own, entering the sum with weight 1.
                    let p = self.terms(&[(*a, j, 1.0)])?;
                    let m = self.terms(&[(*a, j, -1.0)])?;
                    self.outers.push(Outer::max(1.0, vec![p, m]));
                    terms.push((Ref::Outer(self.outers.len() - 1), 1.0));
                }
                Some(Outer::linear(terms))
            }
            Op::Element { arg, row, col } => {
                let na = g.node(*arg);
                let src = if n.batched {
                    row + i * na.rows
                } else {
                    row + col * na.rows
                };
                Some(Outer::linear(self.terms(&[(*arg, src, 1.0)])?))
            }
            Op::Gather {
                arg,
                start,
                step,
                len,
            } => {
                let na = g.node(*arg);
                let group = na.group_len();
                let (k, c) = (i % (*len).max(1), i / (*len).max(1));
                let src = c * group + gather_index(*start, *step, k);
                Some(Outer::linear(self.terms(&[(*arg, src, 1.0)])?))
            }
            Op::Transpose(a) => {
                let (r, c) = (i % n.rows.max(1), i / n.rows.max(1));
                let na = g.node(*a);
                Some(Outer::linear(self.terms(&[(*a, c + r * na.rows, 1.0)])?))
            }
            Op::Call { func, params, arg } => {
                let sides = o.call_sides((*func, &g.fparams[params.clone()]), *arg)?;
                let (l, r) = (sides.left[i], sides.right[i]);
                let scale = 1.0 + r.abs().max(l.abs());
                if (r - l).abs() > 1e-12 * scale {
                    // max(l·a, r·a) when r ≥ l (convex), −max(−l·a, −r·a) otherwise.
                    let s = if r >= l { 1.0 } else { -1.0 };
                    let pl = self.terms(&[(*arg, i, s * l)])?;
                    let pr = self.terms(&[(*arg, i, s * r)])?;
                    return Some(Outer::max(s, vec![pl, pr]));
                }
                Some(Outer::linear(self.terms(&[(*arg, i, r)])?))
            }
            Op::Accumulate {
                terms,
                scale,
                per_column_mean,
            } => {
                let mut parts = Vec::new();
                for &t in &g.lists[terms.clone()] {
                    let w = g.accumulate_weight(t, *scale, *per_column_mean);
                    parts.extend((0..g.node(t).len()).map(|j| (t, j, w)));
                }
                Some(Outer::linear(self.terms(&parts)?))
            }
            Op::Const(_) | Op::Param(_) | Op::MatMul(..) | Op::Dot(..) => None,
        }
    }
}

/// The outer structure at x, or `None` when some kinked node is not of max type or a
/// multi-piece entry enters f with a negative or mixed weight.
fn structure(o: &Oracle<'_>) -> Option<Structure> {
    let g = o.graph();
    let reach = reachable(g);
    let mut kinked = vec![false; g.nodes.len()];
    for k in o.kinks.iter().filter(|k| k.order == KinkOrder::First) {
        kinked[k.node.index()] = true;
    }
    for i in 0..g.nodes.len() {
        let id = NodeId(i as u32);
        if g.children(id).any(|c| kinked[c.index()]) {
            kinked[i] = true;
        }
    }
    let root_node = g.objective;
    if !kinked[root_node.index()] {
        return None;
    }
    let mut b = Builder {
        o,
        kinked,
        outer_of: HashMap::new(),
        leaf_of: HashMap::new(),
        outers: Vec::new(),
        leaves: Vec::new(),
    };
    for (i, (node, &live)) in g.nodes.iter().zip(&reach).enumerate() {
        if !b.kinked[i] || !live || !node.varies {
            continue;
        }
        let id = NodeId(i as u32);
        for e in 0..node.len() {
            let outer = b.entry(id, e)?;
            b.outers.push(outer);
            b.outer_of.insert((id, e), b.outers.len() - 1);
        }
    }
    let root = *b.outer_of.get(&(root_node, 0))?;
    // Signs of the total weights, from the root down (parents come after their children).
    let mut sign = vec![0.0f64; b.outers.len()];
    sign[root] = 1.0;
    for v in (0..=root).rev() {
        if sign[v] == 0.0 {
            continue;
        }
        let nu = b.outers[v].sigma * sign[v];
        if b.outers[v].pieces.len() > 1 && nu < 0.0 {
            return None;
        }
        for p in &b.outers[v].pieces {
            for &(r, c) in p {
                if let Ref::Outer(u) = r {
                    let s = nu * c.signum();
                    if sign[u] != 0.0 && sign[u] != s {
                        return None;
                    }
                    sign[u] = s;
                }
            }
        }
    }
    Some(Structure {
        outers: b.outers,
        leaves: b.leaves,
        root,
        sign,
    })
}

/// The gradients of the leaves (sparse columns), by n exact directional derivatives.
fn leaf_gradients(o: &mut Oracle<'_>, leaves: &[(NodeId, usize)]) -> Result<Vec<Row>, EvalError> {
    let n = o.n;
    let mut cols: Vec<Row> = vec![Vec::new(); leaves.len()];
    let mut e = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        o.eval(&e, Order::One)?;
        for (col, &(id, i)) in cols.iter_mut().zip(leaves) {
            let v = o.slopes_of(id)[i];
            if v != 0.0 {
                col.push((j, v));
            }
        }
        e[j] = 0.0;
    }
    o.examined_units = o.examined_units.max(n);
    Ok(cols)
}

/// Variables of the flow problem: μ of each live outer entry and leaf, λ of each piece of a
/// live multi-piece entry.
struct Flows {
    mu: Vec<Option<usize>>,
    lambda: Vec<Option<usize>>,
    leaf_mu: Vec<usize>,
    count: usize,
}

fn flows(s: &Structure) -> Flows {
    let mut count = 0;
    let mut next = |k: usize| {
        let v = count;
        count += k;
        v
    };
    let mut mu = vec![None; s.outers.len()];
    let mut lambda = vec![None; s.outers.len()];
    for (v, o) in s.outers.iter().enumerate() {
        if s.sign[v] != 0.0 {
            mu[v] = Some(next(1));
            if o.pieces.len() > 1 {
                lambda[v] = Some(next(o.pieces.len()));
            }
        }
    }
    let leaf_mu = (0..s.leaves.len()).map(|_| next(1)).collect();
    Flows {
        mu,
        lambda,
        leaf_mu,
        count,
    }
}

/// The tier at a point: the outer structure and the gradients of its leaves (n exact
/// directional derivatives), built once and used by both orders.
pub(super) struct Tier {
    s: Structure,
    cols: Vec<Row>,
}

impl Tier {
    /// `None` when the objective's kinks are not of max type at x (the tier does not apply).
    pub(super) fn at(o: &mut Oracle<'_>) -> Result<Option<Tier>, EvalError> {
        let Some(s) = structure(o) else {
            return Ok(None);
        };
        let cols = leaf_gradients(o, &s.leaves)?;
        Ok(Some(Tier { s, cols }))
    }
}

/// Tier `max_type`, first order; `None` when its answer is not confirmed.
pub(super) fn first_order(
    o: &mut Oracle<'_>,
    opts: &Options,
    tier: &Tier,
) -> Result<Option<Verdict>, EvalError> {
    let Tier { s, cols } = tier;
    let n = o.n;
    let f = flows(s);
    // Variables: the flows, y (n), t.
    let (y0, t) = (f.count, f.count + n);
    let mut prog = Program::new(f.count + n + 1);
    prog.q[t] = 1.0;
    prog.soc = std::iter::once(t).chain(y0..y0 + n).collect();
    // μ_u − Σ (flows into u) = [u is the root].
    let mut into: Vec<Row> =
        f.mu.iter()
            .map(|m| m.map_or(Vec::new(), |m| vec![(m, 1.0)]))
            .collect();
    let mut into_leaf: Vec<Row> = f.leaf_mu.iter().map(|&m| vec![(m, 1.0)]).collect();
    let mut pieces = 0;
    for (v, outer) in s.outers.iter().enumerate() {
        let Some(mu) = f.mu[v] else { continue };
        pieces += outer.pieces.len();
        if let Some(l0) = f.lambda[v] {
            // Σ_p λ_p = σ μ, λ ≥ 0.
            let mut row: Row = (0..outer.pieces.len()).map(|p| (l0 + p, 1.0)).collect();
            row.push((mu, -outer.sigma));
            prog.eq.push((row, 0.0));
            prog.le
                .extend((l0..l0 + outer.pieces.len()).map(|j| (vec![(j, -1.0)], 0.0)));
        }
        for (p, piece) in outer.pieces.iter().enumerate() {
            // The weight of this piece: λ_p, or σ μ for a linear entry.
            let (var, w) = match f.lambda[v] {
                Some(l0) => (l0 + p, 1.0),
                None => (mu, outer.sigma),
            };
            for &(r, c) in piece {
                let row = match r {
                    Ref::Outer(u) => &mut into[u],
                    Ref::Leaf(k) => &mut into_leaf[k],
                };
                row.push((var, -c * w));
            }
        }
    }
    for (u, row) in into.into_iter().enumerate() {
        if f.mu[u].is_some() {
            prog.eq.push((row, if u == s.root { 1.0 } else { 0.0 }));
        }
    }
    prog.eq.extend(into_leaf.into_iter().map(|r| (r, 0.0)));
    // y − Σ μ_leaf ∇leaf = 0.
    let mut yrows: Vec<Row> = (0..n).map(|j| vec![(y0 + j, 1.0)]).collect();
    for (k, col) in cols.iter().enumerate() {
        for &(j, v) in col {
            yrows[j].push((f.leaf_mu[k], -v));
        }
    }
    prog.eq.extend(yrows.into_iter().map(|r| (r, 0.0)));
    let Some(x) = prog.solve() else {
        return Ok(None);
    };
    let y = x[y0..y0 + n].to_vec();
    let kinks = o.kinks.len();
    let ny = norm2(&y);
    let reason = format!(
        "max-type outer structure, {} over {}; distance from 0 to the subdifferential {ny:.3e}",
        plural(pieces, "active piece", "active pieces"),
        plural(s.leaves.len(), "linear form", "linear forms"),
    );
    if ny <= opts.tol {
        return Ok(Some(
            Verdict::new(Status::Stationary, "max_type", kinks)
                .reason(format!("{reason} ≤ tol = {:e}", opts.tol)),
        ));
    }
    let d: Vec<f64> = y.iter().map(|v| -v / ny).collect();
    o.remember(&d);
    let slope = o.eval(&d, Order::One)?.d1.unwrap_or(f64::NAN);
    if slope < -opts.tol {
        let mut v = Verdict::new(Status::NotStationary, "max_type", kinks).reason(reason);
        v.direction = Some(d);
        v.slope = Some(slope);
        return Ok(Some(v));
    }
    Ok(None)
}

/// Second order after a `max_type` first order: when the critical cone
/// { d : f′(x; d) ≤ 0 } is {0} (a sharp minimum), f″ has nothing to check and x is
/// second-order stationary. The cone is the projection of the epigraph of the outer structure
/// (w_v ≥ each piece of a multi-piece entry, w_v = its combination for a linear one, the root
/// ≤ 0), which is exact because every multi-piece entry enters f with a nonnegative weight; it is
/// {0} iff max a·d over it and the box is 0 for a = e_1, …, e_n, −Σ e_j (n + 1 LPs). `None`: not
/// sharp; the next tier decides.
pub(super) fn second_order(
    o: &mut Oracle<'_>,
    opts: &Options,
    tier: &Tier,
) -> Result<Option<Verdict>, EvalError> {
    let Tier { s, cols } = tier;
    let n = o.n;
    // Variables: d (n), then w of each live outer entry.
    let mut w = vec![None; s.outers.len()];
    let mut count = n;
    for (v, slot) in w.iter_mut().enumerate() {
        if s.sign[v] != 0.0 {
            *slot = Some(count);
            count += 1;
        }
    }
    let mut prog = Program::new(count);
    prog.bounds(0..n, -1.0, 1.0);
    for (v, outer) in s.outers.iter().enumerate() {
        let Some(wv) = w[v] else { continue };
        for piece in &outer.pieces {
            // Σ c·φ_r − w_v (= 0 for a linear entry, ≤ 0 for each piece of a multi-piece one).
            let mut row: Row = vec![(wv, -1.0)];
            for &(r, c) in piece {
                match r {
                    Ref::Leaf(k) => row.extend(cols[k].iter().map(|&(j, g)| (j, c * g))),
                    Ref::Outer(u) => match w[u] {
                        Some(wu) => row.push((wu, c * s.outers[u].sigma)),
                        None => return Ok(None),
                    },
                }
            }
            if outer.pieces.len() == 1 {
                prog.eq.push((row, 0.0));
            } else {
                prog.le.push((row, 0.0));
            }
        }
    }
    let Some(root) = w[s.root] else {
        return Ok(None);
    };
    prog.le.push((vec![(root, s.outers[s.root].sigma)], 0.0));
    let kinks = o.kinks.len();
    // e_1, …, e_n and −Σ e_j positively span Rⁿ: a nonzero d in the cone has a·d > 0 for one of
    // them, so n + 1 LPs (max a·d over the cone and the box) decide whether the cone is {0}.
    for j in 0..=n {
        if super::stopped(opts) {
            return Ok(None);
        }
        let mut p = prog.clone();
        if j < n {
            p.q[j] = -1.0;
        } else {
            p.q[..n].iter_mut().for_each(|q| *q = 1.0);
        }
        let Some(x) = p.solve() else {
            return Ok(None);
        };
        let ad = if j < n {
            x[j]
        } else {
            -x[..n].iter().sum::<f64>()
        };
        if ad > 1e-6 {
            return Ok(None);
        }
    }
    Ok(Some(Verdict::new(Status::Stationary, "max_type", kinks).reason(
        "the critical cone { d : f′(x; d) ≤ 0 } is {0} (a sharp minimum, n + 1 LPs over the max-type structure): no direction to check f″ along",
    )))
}
