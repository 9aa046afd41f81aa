//! The active kinks at a point: which elements sit on a breakpoint, how their argument moves
//! along a direction, whether they are nested, and their weight when they enter f linearly.

use crate::eval::Evaluator;
use crate::graph::{ElemBinary, ElemUnary, Graph, NodeId, Op, ReduceKind};
use crate::registry::{Order, Registry};

/// Whether a kink breaks the first derivative (abs, max, relu) or only the second (ELU at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinkOrder {
    First,
    Second,
}

/// The scalar whose sign picks the piece: an entry of a node, or a difference of two entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    One(NodeId, usize),
    Diff(NodeId, usize, NodeId, usize),
}

impl Arg {
    /// Coefficient k of the argument after an evaluation.
    pub fn coeff(self, ev: &Evaluator<'_>, k: usize) -> f64 {
        match self {
            Arg::One(n, i) => ev.coeff(n, k)[i],
            Arg::Diff(a, i, b, j) => ev.coeff(a, k)[i] - ev.coeff(b, k)[j],
        }
    }

    fn nodes(self) -> [Option<NodeId>; 2] {
        match self {
            Arg::One(n, _) => [Some(n), None],
            Arg::Diff(a, _, b, _) => [Some(a), Some(b)],
        }
    }
}

/// One active kink: an element whose argument sits on a breakpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Kink {
    pub node: NodeId,
    pub arg: Arg,
    pub order: KinkOrder,
    /// Slopes of the element in its argument left and right of the breakpoint.
    pub left: f64,
    pub right: f64,
    /// The weight w with which the element enters f linearly (f = w · element + terms that do
    /// not depend on it), if it does.
    pub weight: Option<f64>,
    /// No other active kink below its argument.
    pub clean: bool,
}

impl Kink {
    /// ρ = w (right − left): the jump of f's slope across the kink; ≥ 0 for a convex outer term.
    pub fn jump(&self) -> Option<f64> {
        self.weight.map(|w| w * (self.right - self.left))
    }
}

/// Every active kink at the last evaluation of `ev` (values must be current), in topological order.
pub fn scan(ev: &Evaluator<'_>, registry: &Registry, ztol: f64) -> Vec<Kink> {
    let g = ev.graph();
    let weights = linear_weights(g);
    let reach = reachable(g);
    let mut kinks = Vec::new();
    let mut below = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        let mut child_kinked = g.children(id).any(|c| below[c.index()]);
        if !node.varies || !reach[i] {
            continue;
        }
        let before = kinks.len();
        node_kinks(ev, registry, ztol, id, &mut kinks);
        // A tie of three or more entries of one n-ary max is one kink with that many pieces;
        // its pairwise differences below are not separately convex outer terms.
        let multi = matches!(node.op, Op::Reduce(ReduceKind::Max, _)) && kinks.len() > before + 1;
        for k in &mut kinks[before..] {
            k.weight = if multi { None } else { weights[i] };
            k.clean = !k.arg.nodes().iter().flatten().any(|c| below[c.index()]);
        }
        child_kinked |=
            kinks.len() > before && kinks[before..].iter().any(|k| k.order == KinkOrder::First);
        below[i] = child_kinked;
    }
    kinks
}

/// Nodes the objective depends on.
pub(super) fn reachable(g: &Graph) -> Vec<bool> {
    let mut r = vec![false; g.nodes.len()];
    r[g.objective.index()] = true;
    for i in (0..g.nodes.len()).rev() {
        if r[i] {
            for c in g.children(NodeId(i as u32)) {
                r[c.index()] = true;
            }
        }
    }
    r
}

fn kink(node: NodeId, arg: Arg, left: f64, right: f64) -> Kink {
    Kink {
        node,
        arg,
        order: KinkOrder::First,
        left,
        right,
        weight: None,
        clean: true,
    }
}

fn node_kinks(ev: &Evaluator<'_>, registry: &Registry, ztol: f64, id: NodeId, out: &mut Vec<Kink>) {
    let g = ev.graph();
    let at = |v: f64| v.abs() <= ztol;
    match &g.node(id).op {
        Op::Unary(ElemUnary::Abs, a) | Op::Reduce(ReduceKind::Norm1, a) => {
            for (i, v) in ev.coeff(*a, 0).iter().enumerate() {
                if at(*v) {
                    out.push(kink(id, Arg::One(*a, i), -1.0, 1.0));
                }
            }
        }
        Op::Binary(op @ (ElemBinary::Max | ElemBinary::Min), a, b) => {
            let n = g.node(id);
            let (na, nb) = (g.node(*a), g.node(*b));
            let (va, vb) = (ev.coeff(*a, 0), ev.coeff(*b, 0));
            for c in 0..n.cols {
                for r in 0..n.rows {
                    let ia = bidx(na.rows, na.cols, r, c);
                    let ib = bidx(nb.rows, nb.cols, r, c);
                    if at(va[ia] - vb[ib]) {
                        // max(a, b) = b + max(a − b, 0), min(a, b) = b + min(a − b, 0).
                        let (l, rt) = if *op == ElemBinary::Max {
                            (0.0, 1.0)
                        } else {
                            (1.0, 0.0)
                        };
                        out.push(kink(id, Arg::Diff(*a, ia, *b, ib), l, rt));
                    }
                }
            }
        }
        Op::Reduce(ReduceKind::Max, a) => {
            // One n-ary max: its pieces are the tied entries. Two tied entries are the kink
            // of max(a_i, a_j) = a_j + max(a_i − a_j, 0); more are described by the pairwise
            // differences (whose signs pick the piece), up to 64 tied entries, then the
            // differences with the first (enough to be seen as kinked and nested).
            for ties in max_ties(ev, id, ztol) {
                for (p, &i) in ties.iter().enumerate() {
                    let partners = if ties.len() <= 64 {
                        &ties[p + 1..]
                    } else {
                        &ties[..1]
                    };
                    for &j in partners.iter().filter(|&&j| j != i) {
                        out.push(kink(id, Arg::Diff(*a, i, *a, j), 0.0, 1.0));
                    }
                }
            }
        }
        Op::Call { func, params, arg } => call_kinks(
            ev,
            registry,
            ztol,
            id,
            (*func, &g.fparams[params.clone()]),
            *arg,
            out,
        ),
        _ => {}
    }
}

/// The tied entries of an n-ary max node (`Op::Reduce(ReduceKind::Max, a)`) at the last
/// evaluation, per group (a column when batched) with at least two: the indexes into `a`'s
/// values within ztol of the group's largest value. These are the pieces of the node's one
/// kink: on the cone where entry i has the largest (a₁, a₂) among them, f follows entry i.
pub fn max_ties(ev: &Evaluator<'_>, id: NodeId, ztol: f64) -> Vec<Vec<usize>> {
    let g = ev.graph();
    let Op::Reduce(ReduceKind::Max, a) = g.node(id).op else {
        return Vec::new();
    };
    let na = g.node(a);
    let group = na.group_len();
    let va = ev.coeff(a, 0);
    let mut out = Vec::new();
    for gi in 0..g.node(id).len() {
        let range = gi * group..(gi + 1) * group;
        let top = va[range.clone()]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let ties: Vec<usize> = range.filter(|&i| va[i] >= top - ztol).collect();
        if ties.len() > 1 {
            out.push(ties);
        }
    }
    out
}

/// Kinks of a plugin function: its slopes along ±1 differ (first order), or its curvatures do.
fn call_kinks(
    ev: &Evaluator<'_>,
    registry: &Registry,
    ztol: f64,
    id: NodeId,
    (func, params): (crate::registry::FunctionId, &[f64]),
    arg: NodeId,
    out: &mut Vec<Kink>,
) {
    let Some(s) = call_sides(ev, registry, ztol, (func, params), arg) else {
        return;
    };
    for i in 0..s.left.len() {
        let (right, left) = (s.right[i], s.left[i]);
        let scale = 1.0 + right.abs().max(left.abs());
        if (right - left).abs() > 1e-12 * scale {
            out.push(kink(id, Arg::One(arg, i), left, right));
        } else if (s.right2[i] - s.left2[i]).abs()
            > 1e-12 * (1.0 + s.right2[i].abs().max(s.left2[i].abs()))
        {
            out.push(Kink {
                order: KinkOrder::Second,
                ..kink(id, Arg::One(arg, i), left, right)
            });
        }
    }
}

/// The one-sided slopes (and curvatures) of a plugin function at each entry of its argument.
pub struct Sides {
    pub left: Vec<f64>,
    pub right: Vec<f64>,
    left2: Vec<f64>,
    right2: Vec<f64>,
}

/// The one-sided slopes of a plugin function at the argument's current values: along +1
/// (`right`) and −1 (`left`, sign-corrected); `None` when the function refuses.
pub fn call_sides(
    ev: &Evaluator<'_>,
    registry: &Registry,
    ztol: f64,
    (func, params): (crate::registry::FunctionId, &[f64]),
    arg: NodeId,
) -> Option<Sides> {
    let a0 = ev.coeff(arg, 0);
    let n = a0.len();
    let zeros = vec![0.0; n];
    let side = |s: f64| -> Option<(Vec<f64>, Vec<f64>)> {
        let a1 = vec![s; n];
        let (mut f0, mut f1, mut f2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        registry
            .call(
                func,
                params,
                Order::Two,
                ztol,
                [a0, &a1, &zeros],
                [&mut f0, &mut f1, &mut f2],
            )
            .ok()?;
        Some((f1, f2))
    };
    let (right, right2) = side(1.0)?;
    let (l1, left2) = side(-1.0)?;
    Some(Sides {
        left: l1.iter().map(|x| -x).collect(),
        right,
        left2,
        right2,
    })
}

/// Index of entry (r, c) of a broadcast operand of `rows × cols`.
pub(super) fn bidx(rows: usize, cols: usize, r: usize, c: usize) -> usize {
    let r = if rows == 1 { 0 } else { r };
    let c = if cols == 1 { 0 } else { c };
    r + c * rows
}

/// For each node, the weight w with which each of its entries enters the objective, when every
/// path from it to the objective is linear (sums, differences, scalings, reductions by sum);
/// `None` otherwise. Broadcast operands are not linear positions.
pub fn linear_weights(g: &Graph) -> Vec<Option<f64>> {
    // Some(w): linear so far; a nonlinear use poisons the node.
    let mut w: Vec<Option<f64>> = vec![Some(0.0); g.nodes.len()];
    let mut used = vec![false; g.nodes.len()];
    used[g.objective.index()] = true;
    w[g.objective.index()] = Some(1.0);
    for i in (0..g.nodes.len()).rev() {
        if !used[i] {
            continue;
        }
        let id = NodeId(i as u32);
        let n = g.node(id);
        let mine = w[i];
        let mut give = |c: NodeId, f: Option<f64>, w: &mut Vec<Option<f64>>| {
            used[c.index()] = true;
            let same = g.node(c).len() == n.len();
            w[c.index()] = match (w[c.index()], mine, f) {
                (Some(acc), Some(m), Some(f)) if same => Some(acc + m * f),
                _ => None,
            };
        };
        match &n.op {
            Op::Binary(ElemBinary::Add, a, b) => {
                give(*a, Some(1.0), &mut w);
                give(*b, Some(1.0), &mut w);
            }
            Op::Binary(ElemBinary::Sub, a, b) => {
                give(*a, Some(1.0), &mut w);
                give(*b, Some(-1.0), &mut w);
            }
            Op::Unary(ElemUnary::Neg, a) => give(*a, Some(-1.0), &mut w),
            Op::Unary(ElemUnary::Scale(s), a) => give(*a, Some(*s), &mut w),
            Op::Reduce(ReduceKind::Sum, a) => {
                used[a.index()] = true;
                w[a.index()] = match (w[a.index()], mine) {
                    (Some(acc), Some(m)) => Some(acc + m),
                    _ => None,
                };
            }
            Op::Accumulate {
                terms,
                scale,
                per_column_mean,
            } => {
                for &t in &g.lists[terms.clone()] {
                    let f = g.accumulate_weight(t, *scale, *per_column_mean);
                    used[t.index()] = true;
                    w[t.index()] = match (w[t.index()], mine) {
                        (Some(acc), Some(m)) => Some(acc + m * f),
                        _ => None,
                    };
                }
            }
            _ => {
                for c in g.children(id) {
                    give(c, None, &mut w);
                }
            }
        }
    }
    w
}
