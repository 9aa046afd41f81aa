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
//!
//! Second order ([`second_order`]): one LP puts 0 in the relative interior of the
//! subdifferential, and then the critical cone is the subspace on which every piece of every
//! active entry has the same slope (sparse elimination, [`critical::Subspace`]): {0} (a sharp
//! minimum), a line (exact f″ along it) or larger (the Hessian of the Lagrangian, whose
//! multipliers are the LP's flows, on it: [`lagrangian`], [`critical::decide`]).

use std::collections::HashMap;

use super::critical::{self, Subspace};
use super::kinks::{bidx, reachable, KinkOrder};
use super::lagrangian::{self, Origin};
use super::lp::{Program, Row};
use super::oracle::Oracle;
use super::smooth::norm2;
use super::{Options, Status, Verdict};
use crate::eval::EvalError;
use crate::graph::{gather_index, ElemBinary, ElemUnary, Graph, NodeId, Op, ReduceKind};
use crate::registry::Order;
use crate::text::plural;

/// A scalar of d ↦ f′(x; d): a leaf (linear in d) or an outer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ref {
    Leaf(usize),
    Outer(usize),
}

/// One convex piecewise-linear outer node entry with its active pieces:
/// φ = σ · max_p Σ_{(r, c) ∈ p} c · φ_r. One piece is a linear combination; σ = −1 is a concave
/// entry (a `min` tie, a concave plugin kink) written as −max(−·).
#[derive(Debug, Clone)]
pub(super) struct Outer {
    pub(super) sigma: f64,
    pub(super) pieces: Vec<Vec<(Ref, f64)>>,
    /// The kink a multi-piece entry comes from (for the Lagrangian of second order).
    pub(super) origin: Option<Origin>,
}

impl Outer {
    fn linear(terms: Vec<(Ref, f64)>) -> Outer {
        Outer {
            sigma: 1.0,
            pieces: vec![terms],
            origin: None,
        }
    }

    fn max(sigma: f64, pieces: Vec<Vec<(Ref, f64)>>, origin: Origin) -> Outer {
        Outer {
            sigma,
            pieces,
            origin: Some(origin),
        }
    }
}

/// The outer structure of f′(x; ·): entries in topological order (children first), the root
/// last, and the leaves as (node, entry).
pub(super) struct Structure {
    pub(super) outers: Vec<Outer>,
    pub(super) leaves: Vec<(NodeId, usize)>,
    pub(super) root: usize,
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
                        return Some(Outer::max(1.0, vec![p, m], Origin::Abs(id, i)));
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
                            return Some(Outer::max(s, vec![pa, pb], Origin::Max2(id, i)));
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
                            for &j in &tied {
                                pieces.push(self.terms(&[(*a, j, 1.0)])?);
                            }
                            return Some(Outer::max(1.0, pieces, Origin::MaxN(id, tied)));
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
                    self.outers
                        .push(Outer::max(1.0, vec![p, m], Origin::Norm1(id, j)));
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
                    return Some(Outer::max(s, vec![pl, pr], Origin::Call(id, i, l, r)));
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

/// The outer structure at x whatever the signs (`sign` all 0), or `None` when some kinked node
/// is not of max type (a matrix product or inner product above a kink, a norm at 0).
pub(super) fn build(o: &Oracle<'_>) -> Option<Structure> {
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
    Some(Structure {
        sign: vec![0.0; b.outers.len()],
        outers: b.outers,
        leaves: b.leaves,
        root,
    })
}

/// The outer structure at x, or `None` when some kinked node is not of max type or a
/// multi-piece entry enters f with a negative or mixed weight.
fn structure(o: &Oracle<'_>) -> Option<Structure> {
    let mut s = build(o)?;
    // Signs of the total weights, from the root down (parents come after their children).
    let root = s.root;
    s.sign[root] = 1.0;
    for v in (0..=root).rev() {
        if s.sign[v] == 0.0 {
            continue;
        }
        let nu = s.outers[v].sigma * s.sign[v];
        if s.outers[v].pieces.len() > 1 && nu < 0.0 {
            return None;
        }
        for p in &s.outers[v].pieces {
            for &(r, c) in p {
                if let Ref::Outer(u) = r {
                    let sg = nu * c.signum();
                    if s.sign[u] != 0.0 && s.sign[u] != sg {
                        return None;
                    }
                    s.sign[u] = sg;
                }
            }
        }
    }
    Some(s)
}

/// The gradients of the leaves (sparse columns), by n exact directional derivatives.
pub(super) fn leaf_gradients(
    o: &mut Oracle<'_>,
    leaves: &[(NodeId, usize)],
) -> Result<Vec<Row>, EvalError> {
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

/// The flow constraints of `f` in `prog`: μ_u − Σ (flows into u) = [u is the root],
/// Σ_p λ_p = σ μ with λ ≥ 0, and y − Σ μ_leaf ∇leaf = 0 with y the n variables from `y0` (or
/// Σ μ_leaf ∇leaf = 0 without them). Returns the number of live pieces.
fn add_flows(
    s: &Structure,
    f: &Flows,
    cols: &[Row],
    n: usize,
    prog: &mut Program,
    y0: Option<usize>,
) -> usize {
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
    let mut yrows: Vec<Row> = (0..n)
        .map(|j| y0.map_or(Vec::new(), |y0| vec![(y0 + j, 1.0)]))
        .collect();
    for (k, col) in cols.iter().enumerate() {
        for &(j, v) in col {
            yrows[j].push((f.leaf_mu[k], -v));
        }
    }
    prog.eq.extend(yrows.into_iter().map(|r| (r, 0.0)));
    pieces
}

/// Most first-order kinks for which a `convex_qp` first order hands its second order to this tier
/// (the structure costs n more exact directional derivatives and one LP over the pieces; beyond
/// this, a (P1) certificate over a large network would spend minutes in that LP).
pub(super) const MAX_CONVEX_KINKS: usize = 5000;

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
    let pieces = add_flows(s, &f, cols, n, &mut prog, Some(y0));
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

/// Second order at a first-order stationary point of a max-type structure. One LP finds flows
/// with y = 0 whose smallest piece weight t is largest. t > 0 puts 0 in the relative interior of
/// the subdifferential S, and then the critical cone { d : f′(x; d) ≤ 0 } is the subspace
/// S^⊥ = { d : every piece of every live entry has the same slope }, found by sparse
/// elimination ([`critical::Subspace`]): {0} is a sharp minimum (nothing to check), a line is
/// decided by the exact f″ along it, a larger subspace by the Lagrangian with those flows as
/// multipliers ([`lagrangian`]). `None` (t = 0: the cone is not a subspace, or a solver
/// failure): the next tier decides.
pub(super) fn second_order(
    o: &mut Oracle<'_>,
    opts: &Options,
    tier: &Tier,
) -> Result<Option<Verdict>, EvalError> {
    let Tier { s, cols } = tier;
    let n = o.n;
    let f = flows(s);
    // Variables: the flows, t.
    let t = f.count;
    let mut prog = Program::new(f.count + 1);
    prog.q[t] = -1.0;
    add_flows(s, &f, cols, n, &mut prog, None);
    for (v, outer) in s.outers.iter().enumerate() {
        if let Some(l0) = f.lambda[v] {
            prog.le
                .extend((l0..l0 + outer.pieces.len()).map(|j| (vec![(j, -1.0), (t, 1.0)], 0.0)));
        }
    }
    prog.le.push((vec![(t, 1.0)], 1.0));
    let Some(x) = prog.solve() else {
        return Ok(None);
    };
    if x[t] <= 1e-7 {
        return Ok(None);
    }
    let k = Subspace::of(n, lineality_rows(s, cols, n));
    let kinks = o.kinks.len();
    if k.dim() == 0 {
        return Ok(Some(Verdict::new(Status::Stationary, "max_type", kinks).reason(
            "the critical cone { d : f′(x; d) ≤ 0 } is {0} (0 inside the subdifferential: one LP and the rank of the pieces' slopes), a sharp minimum: no direction to check f″ along",
        )));
    }
    let lg = lagrangian_graph(o, s, &f, &x);
    Ok(Some(critical::decide(
        o,
        opts,
        &k,
        lg.as_ref(),
        "max_type",
    )?))
}

/// The graph of the Lagrangian with the flows `x` as multipliers; `None` for (P0) (whose f″ is
/// the lifted objective's) or with a kink of the second derivative only (its curvature jumps
/// along the subspace).
fn lagrangian_graph(o: &Oracle<'_>, s: &Structure, f: &Flows, x: &[f64]) -> Option<Graph> {
    if o.lifted() || o.kinks.iter().any(|k| k.order == KinkOrder::Second) {
        return None;
    }
    let mut w = lagrangian::Weights::at(o);
    for (v, outer) in s.outers.iter().enumerate() {
        let (Some(l0), Some(origin)) = (f.lambda[v], &outer.origin) else {
            continue;
        };
        let lam = &x[l0..l0 + outer.pieces.len()];
        let total: f64 = lam.iter().map(|l| l.max(0.0)).sum();
        if total > 0.0 {
            let norm: Vec<f64> = lam.iter().map(|l| l.max(0.0) / total).collect();
            w.set(origin, &norm);
        }
    }
    Some(lagrangian::graph(o.graph(), &w))
}

/// The rows of S^⊥ when every live multi-piece entry has all its pieces equal: each entry's
/// slope (its first piece, as a sparse row over d), and piece p minus piece 0 of every live
/// multi-piece entry, and the root's slope (which is then 0).
fn lineality_rows<'s>(
    s: &'s Structure,
    cols: &'s [Row],
    n: usize,
) -> impl Iterator<Item = Row> + 's {
    let mut acc = Acc::new(n);
    let mut val: Vec<Row> = vec![Vec::new(); s.outers.len()];
    let mut rows = Vec::new();
    let combine = |piece: &[(Ref, f64)], val: &[Row], sign: f64, acc: &mut Acc| {
        for &(r, c) in piece {
            let src = match r {
                Ref::Leaf(k) => &cols[k],
                Ref::Outer(u) => &val[u],
            };
            src.iter().for_each(|&(j, g)| acc.add(j, sign * c * g));
        }
    };
    for (v, outer) in s.outers.iter().enumerate() {
        if s.sign[v] == 0.0 {
            continue;
        }
        combine(&outer.pieces[0], &val, outer.sigma, &mut acc);
        val[v] = acc.drain();
        for piece in &outer.pieces[1..] {
            combine(piece, &val, 1.0, &mut acc);
            combine(&outer.pieces[0], &val, -1.0, &mut acc);
            rows.push(acc.drain());
        }
    }
    rows.push(val[s.root].clone());
    rows.into_iter()
}

/// A sparse accumulator over n coordinates.
pub(super) struct Acc {
    v: Vec<f64>,
    on: Vec<bool>,
    idx: Vec<usize>,
}

impl Acc {
    pub(super) fn new(n: usize) -> Acc {
        Acc {
            v: vec![0.0; n],
            on: vec![false; n],
            idx: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, j: usize, x: f64) {
        if !self.on[j] {
            self.on[j] = true;
            self.idx.push(j);
        }
        self.v[j] += x;
    }

    /// The nonzero entries as a sparse row; the accumulator is left empty.
    pub(super) fn drain(&mut self) -> Row {
        let mut row = Vec::with_capacity(self.idx.len());
        self.idx.sort_unstable();
        for &j in &self.idx {
            if self.v[j] != 0.0 {
                row.push((j, self.v[j]));
            }
            self.v[j] = 0.0;
            self.on[j] = false;
        }
        self.idx.clear();
        row
    }
}
