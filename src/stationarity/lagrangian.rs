//! The Lagrangian of a max-type structure at a point: the objective's graph with every active
//! kink replaced by the combination of its pieces that the multipliers give. It is smooth near x
//! (the kinks that are not tied keep the piece they select there), so its Hessian-vector products
//! are central differences of exact reverse-mode gradients, as for a smooth objective.
//!
//! On the critical subspace every piece of every active kink has the same slope, so the exact f″
//! picks, at each kink, the piece with the largest curvature (the smallest for a kink entering
//! with a negative weight): f″(x; d) ≥ dᵀ ∇²L d there. L ⪰ 0 on the subspace is therefore
//! sufficient for second order.

use std::collections::HashMap;

use super::kinks::{bidx, Arg, KinkOrder};
use super::oracle::Oracle;
use crate::graph::{ElemBinary, ElemUnary, Graph, Node, NodeId, Op, ReduceKind};

/// The kink a multi-piece outer entry comes from; its pieces in this order.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// |a_i| at 0 (entry i of the node): pieces a_i, −a_i.
    Abs(NodeId, usize),
    /// An ℓ1 atom |a_j| at 0 (entry j of the operand): pieces a_j, −a_j.
    Norm1(NodeId, usize),
    /// A tie of a binary max or min at entry i: pieces a, b.
    Max2(NodeId, usize),
    /// A tie of an n-ary max: pieces the tied operand entries.
    MaxN(NodeId, Vec<usize>),
    /// A plugin kink at entry i with its one-sided slopes (left, right): pieces left·a, right·a.
    Call(NodeId, usize, f64, f64),
}

/// What replaces one kinked node.
#[derive(Debug, Clone)]
enum Repl {
    /// max/min(a, b) → wa ⊙ a + wb ⊙ b (weights shaped like the node).
    Pair(Vec<f64>, Vec<f64>),
    /// abs(a) → s ⊙ a.
    Scale(Vec<f64>),
    /// norm1(a), max(a) → per group Σ w ⊙ a (weights shaped like the operand).
    Sum(Vec<f64>),
    /// φ(a) → mask ⊙ φ(a) + s ⊙ a (the kinked entries replaced by their combined slope).
    Call(Vec<f64>, Vec<f64>),
}

/// The weights of every node with an active first-order kink.
pub(super) struct Weights {
    repl: HashMap<NodeId, Repl>,
}

fn sign(v: f64, ztol: f64) -> f64 {
    if v.abs() <= ztol {
        0.0
    } else {
        v.signum()
    }
}

impl Weights {
    /// The selection at x for entries that do not tie, an even split for those that do.
    pub(super) fn at(o: &Oracle<'_>) -> Weights {
        let g = o.graph();
        let ztol = o.opts.ztol;
        let mut repl = HashMap::new();
        for k in o.kinks.iter().filter(|k| k.order == KinkOrder::First) {
            if repl.contains_key(&k.node) {
                if let (Some(Repl::Call(mask, s)), Arg::One(_, i)) = (repl.get_mut(&k.node), k.arg)
                {
                    mask[i] = 0.0;
                    s[i] = 0.5 * (k.left + k.right);
                }
                continue;
            }
            let n = g.node(k.node);
            let r = match &n.op {
                Op::Unary(ElemUnary::Abs, a) => {
                    Repl::Scale(o.values(*a).iter().map(|&v| sign(v, ztol)).collect())
                }
                Op::Reduce(ReduceKind::Norm1, a) => {
                    Repl::Sum(o.values(*a).iter().map(|&v| sign(v, ztol)).collect())
                }
                Op::Binary(op @ (ElemBinary::Max | ElemBinary::Min), a, b) => {
                    let s = if *op == ElemBinary::Max { 1.0 } else { -1.0 };
                    let (na, nb) = (g.node(*a), g.node(*b));
                    let (va, vb) = (o.values(*a), o.values(*b));
                    let (mut wa, mut wb) = (vec![0.0; n.len()], vec![0.0; n.len()]);
                    for c in 0..n.cols {
                        for r in 0..n.rows {
                            let e = r + c * n.rows;
                            let diff =
                                va[bidx(na.rows, na.cols, r, c)] - vb[bidx(nb.rows, nb.cols, r, c)];
                            (wa[e], wb[e]) = match sign(s * diff, ztol) {
                                x if x > 0.0 => (1.0, 0.0),
                                x if x < 0.0 => (0.0, 1.0),
                                _ => (0.5, 0.5),
                            };
                        }
                    }
                    Repl::Pair(wa, wb)
                }
                Op::Reduce(ReduceKind::Max, a) => {
                    let va = o.values(*a);
                    let group = g.node(*a).group_len().max(1);
                    let mut w = vec![0.0; va.len()];
                    for (vg, wg) in va.chunks(group).zip(w.chunks_mut(group)) {
                        let top = vg.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let ties = vg.iter().filter(|&&v| v >= top - ztol).count() as f64;
                        for (x, &v) in wg.iter_mut().zip(vg) {
                            *x = if v >= top - ztol { 1.0 / ties } else { 0.0 };
                        }
                    }
                    Repl::Sum(w)
                }
                Op::Call { .. } => {
                    let (mut mask, mut s) = (vec![1.0; n.len()], vec![0.0; n.len()]);
                    if let Arg::One(_, i) = k.arg {
                        mask[i] = 0.0;
                        s[i] = 0.5 * (k.left + k.right);
                    }
                    Repl::Call(mask, s)
                }
                _ => continue,
            };
            repl.insert(k.node, r);
        }
        Weights { repl }
    }

    /// The multipliers `w` (normalized, one per piece) of one multi-piece entry.
    pub(super) fn set(&mut self, origin: &Origin, w: &[f64]) {
        let w0 = w.first().copied().unwrap_or(0.0);
        let w1 = w.get(1).copied().unwrap_or(0.0);
        match (origin, self.repl.get_mut(&node_of(origin))) {
            (Origin::Abs(_, i), Some(Repl::Scale(s))) => s[*i] = w0 - w1,
            (Origin::Norm1(_, j), Some(Repl::Sum(s))) => s[*j] = w0 - w1,
            (Origin::Max2(_, i), Some(Repl::Pair(wa, wb))) => (wa[*i], wb[*i]) = (w0, w1),
            (Origin::MaxN(_, tied), Some(Repl::Sum(s))) => {
                for (&j, &x) in tied.iter().zip(w) {
                    s[j] = x;
                }
            }
            (Origin::Call(_, i, l, r), Some(Repl::Call(mask, s))) => {
                mask[*i] = 0.0;
                s[*i] = w0 * l + w1 * r;
            }
            _ => {}
        }
    }
}

fn node_of(origin: &Origin) -> NodeId {
    match origin {
        Origin::Abs(id, _)
        | Origin::Norm1(id, _)
        | Origin::Max2(id, _)
        | Origin::MaxN(id, _)
        | Origin::Call(id, ..) => *id,
    }
}

/// The graph of L: `g` with every node of `w` replaced, ids renumbered in topological order.
pub(super) fn graph(g: &Graph, w: &Weights) -> Graph {
    let mut out = g.clone();
    out.nodes = Vec::with_capacity(g.nodes.len() + 5 * w.repl.len());
    let mut map: Vec<NodeId> = Vec::with_capacity(g.nodes.len());
    for (i, node) in g.nodes.iter().enumerate() {
        let mut n = node.clone();
        n.op = node.op.map_operands(|a| map[a.index()]);
        let id = match (w.repl.get(&NodeId(i as u32)), &n.op) {
            (Some(r), op) => replace(&mut out, &n, op.clone(), r),
            (None, _) => push(&mut out, n),
        };
        map.push(id);
    }
    let m = |id: NodeId| map[id.index()];
    out.lists = g.lists.iter().map(|&id| m(id)).collect();
    out.params.iter_mut().for_each(|p| p.node = m(p.node));
    out.layers.iter_mut().for_each(|l| l.node = m(l.node));
    for input in &mut out.inputs {
        input.steps.iter_mut().for_each(|s| s.1 = m(s.1));
    }
    out.objective = m(g.objective);
    out.loss = m(g.loss);
    out
}

fn push(g: &mut Graph, n: Node) -> NodeId {
    g.nodes.push(n);
    NodeId(g.nodes.len() as u32 - 1)
}

/// A constant node of `like`'s shape holding `values`.
fn konst(g: &mut Graph, like: &Node, values: &[f64]) -> NodeId {
    let start = g.consts.len();
    g.consts.extend_from_slice(values);
    push(
        g,
        Node {
            op: Op::Const(start..g.consts.len()),
            varies: false,
            affine: true,
            ..like.clone()
        },
    )
}

/// A varying node of `like`'s shape computing `op`.
fn derived(g: &mut Graph, like: &Node, op: Op) -> NodeId {
    push(
        g,
        Node {
            op,
            varies: true,
            affine: false,
            ..like.clone()
        },
    )
}

fn replace(g: &mut Graph, n: &Node, op: Op, r: &Repl) -> NodeId {
    let mul = |g: &mut Graph, like: &Node, w: &[f64], a: NodeId| {
        let c = konst(g, like, w);
        derived(g, like, Op::Binary(ElemBinary::Mul, c, a))
    };
    match (r, op) {
        (Repl::Pair(wa, wb), Op::Binary(_, a, b)) => {
            let ma = mul(g, n, wa, a);
            let mb = mul(g, n, wb, b);
            derived(g, n, Op::Binary(ElemBinary::Add, ma, mb))
        }
        (Repl::Scale(s), Op::Unary(_, a)) => mul(g, n, s, a),
        (Repl::Sum(w), Op::Reduce(_, a)) => {
            let like = g.node(a).clone();
            let m = mul(g, &like, w, a);
            derived(g, n, Op::Reduce(ReduceKind::Sum, m))
        }
        (Repl::Call(mask, s), op @ Op::Call { arg, .. }) => {
            let call = derived(g, n, op);
            let kept = mul(g, n, mask, call);
            let lin = mul(g, n, s, arg);
            derived(g, n, Op::Binary(ElemBinary::Add, kept, lin))
        }
        (_, op) => push(g, Node { op, ..n.clone() }),
    }
}
