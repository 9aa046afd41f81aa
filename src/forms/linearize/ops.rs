//! The per-node rules of the linearization: sparsity patterns, values, and the choice of pieces.

use super::{Csr, Linearization, LinearizeError, Linearizer};
use crate::forms::Lifted;
use crate::graph::{ElemBinary, ElemUnary, Node, NodeId, Op, ReduceKind};
use crate::registry::Order;

/// The varying nodes the residuals depend on, in topological order.
pub(super) fn needed_nodes(lifted: &Lifted) -> Vec<NodeId> {
    let g = &lifted.graph;
    let mut seen = vec![false; g.nodes.len()];
    let mut stack: Vec<NodeId> = lifted.layout.blocks.iter().map(|b| b.residual).collect();
    while let Some(id) = stack.pop() {
        if seen[id.index()] || !g.node(id).varies {
            continue;
        }
        seen[id.index()] = true;
        if !matches!(g.node(id).op, Op::Param(_)) {
            stack.extend(g.children(id));
        }
    }
    (0..g.nodes.len() as u32)
        .map(NodeId)
        .filter(|id| seen[id.index()])
        .collect()
}

/// The entry of its operand that entry `e` of a gather or element node reads (per column when
/// batched, as the evaluator does).
pub(super) fn picked(g: &crate::graph::Graph, node: &Node, e: usize) -> usize {
    match node.op {
        Op::Gather {
            arg, start, step, ..
        } => {
            let (k, j) = (e % node.rows, e / node.rows);
            j * g.node(arg).group_len() + crate::graph::gather_index(start, step, k)
        }
        Op::Element { arg, row, col } => {
            if node.batched {
                row + e * g.node(arg).rows
            } else {
                row + col * g.node(arg).rows
            }
        }
        _ => e,
    }
}

/// The pairs of entries (of `na`, of `nb`) that group `g` of the inner product `n` multiplies,
/// with broadcasting of dimensions of size 1: the evaluator's own pairing.
pub(super) use crate::eval::dot_pairs;

/// A matrix shape: a node's, or the part of it one worker of a pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    pub rows: usize,
    pub cols: usize,
}

impl Shape {
    pub fn len(self) -> usize {
        self.rows * self.cols
    }
}

impl From<&Node> for Shape {
    fn from(n: &Node) -> Shape {
        Shape {
            rows: n.rows,
            cols: n.cols,
        }
    }
}

/// Index of output entry `e` of `out` in a broadcast operand `arg`.
pub(super) fn bcast(out: impl Into<Shape>, arg: impl Into<Shape>, e: usize) -> usize {
    let (out, arg) = (out.into(), arg.into());
    let (i, j) = (e % out.rows, e / out.rows);
    let i = if arg.rows == 1 { 0 } else { i };
    let j = if arg.cols == 1 { 0 } else { j };
    i + j * arg.rows
}

impl Linearizer<'_> {
    /// Whether `id` is one of the needed nodes (those the residuals depend on).
    fn varying(&self, id: NodeId) -> bool {
        self.graph().node(id).varies && self.prod.needed(id)
    }

    /// The contributions (child, child entry, weight) to output entry `e` of `id`; weights
    /// use the last evaluation and the chosen pieces (inactive pieces get weight 0).
    pub(super) fn contributions(&self, id: NodeId, e: usize, out: &mut Vec<(NodeId, usize, f64)>) {
        let g = self.graph();
        let node = g.node(id);
        let value = |n: NodeId, i: usize| self.ev.coeff(n, 0)[i];
        out.clear();
        match &node.op {
            Op::Binary(op, a, b) => {
                let (ea, eb) = (bcast(node, g.node(*a), e), bcast(node, g.node(*b), e));
                let (wa, wb) = match op {
                    ElemBinary::Add => (1.0, 1.0),
                    ElemBinary::Sub => (1.0, -1.0),
                    ElemBinary::Mul => (value(*b, eb), value(*a, ea)),
                    ElemBinary::Div => {
                        let den = value(*b, eb);
                        (1.0 / den, -value(*a, ea) / (den * den))
                    }
                    ElemBinary::Max | ElemBinary::Min => {
                        let site = &self.sites[self.site_of[&id]];
                        let right = self.side[site.first + e] == Some(1);
                        // right: a − b > 0, so max takes a and min takes b
                        if right == (*op == ElemBinary::Max) {
                            (1.0, 0.0)
                        } else {
                            (0.0, 1.0)
                        }
                    }
                };
                if self.varying(*a) {
                    out.push((*a, ea, wa));
                }
                if self.varying(*b) {
                    out.push((*b, eb, wb));
                }
            }
            Op::MatMul(a, b) => {
                let (na, nb) = (g.node(*a), g.node(*b));
                let (i, j) = (e % node.rows, e / node.rows);
                for l in 0..na.cols {
                    let (ia, ib) = (i + l * na.rows, l + j * nb.rows);
                    if self.varying(*a) {
                        out.push((*a, ia, value(*b, ib)));
                    }
                    if self.varying(*b) {
                        out.push((*b, ib, value(*a, ia)));
                    }
                }
            }
            Op::Reduce(kind, a) if self.varying(*a) => {
                let group = g.node(*a).group_len();
                for i in e * group..(e + 1) * group {
                    let w = match kind {
                        ReduceKind::SqNorm => 2.0 * value(*a, i),
                        _ => 1.0,
                    };
                    out.push((*a, i, w));
                }
            }
            Op::Dot(a, b) => {
                let (na, nb) = (g.node(*a), g.node(*b));
                for (ia, ib) in dot_pairs(na, nb, node, e) {
                    if self.varying(*a) {
                        out.push((*a, ia, value(*b, ib)));
                    }
                    if self.varying(*b) {
                        out.push((*b, ib, value(*a, ia)));
                    }
                }
            }
            _ => {}
        }
    }

    /// The Jacobian pattern of `id` (its varying children are done).
    pub(super) fn symbolic(
        &self,
        id: NodeId,
        mark: &mut [usize],
        stamp: &mut usize,
    ) -> Result<Csr, LinearizeError> {
        let g = self.graph();
        let node = g.node(id);
        let mut csr = Csr {
            ptr: vec![0],
            idx: Vec::new(),
        };
        match &node.op {
            Op::Param(k) => {
                let off = g.params[*k].offset;
                for e in 0..node.len() {
                    csr.idx.push(off + e);
                    csr.ptr.push(csr.idx.len());
                }
            }
            Op::Unary(_, a) | Op::Call { arg: a, .. } => return Ok(self.pat[a].clone()),
            Op::Transpose(a) => {
                let child = &self.pat[a];
                for e in 0..node.len() {
                    let (i, j) = (e % node.rows, e / node.rows);
                    let src = j + i * node.cols;
                    csr.idx
                        .extend_from_slice(&child.idx[child.ptr[src]..child.ptr[src + 1]]);
                    csr.ptr.push(csr.idx.len());
                }
            }
            Op::Gather { arg: a, .. } | Op::Element { arg: a, .. } => {
                let child = &self.pat[a];
                for e in 0..node.len() {
                    let src = picked(g, node, e);
                    csr.idx
                        .extend_from_slice(&child.idx[child.ptr[src]..child.ptr[src + 1]]);
                    csr.ptr.push(csr.idx.len());
                }
            }
            Op::Binary(..)
            | Op::MatMul(..)
            | Op::Dot(..)
            | Op::Reduce(ReduceKind::Sum | ReduceKind::SqNorm, _) => {
                let mut parts = Vec::new();
                for e in 0..node.len() {
                    *stamp += 1;
                    self.contributions(id, e, &mut parts);
                    for &(c, ce, _) in &parts {
                        let child = &self.pat[&c];
                        for &col in &child.idx[child.ptr[ce]..child.ptr[ce + 1]] {
                            if mark[col] != *stamp {
                                mark[col] = *stamp;
                                csr.idx.push(col);
                            }
                        }
                    }
                    csr.ptr.push(csr.idx.len());
                }
            }
            other => {
                return Err(LinearizeError::Unsupported {
                    node: id,
                    what: op_name(other).to_owned(),
                })
            }
        }
        Ok(csr)
    }

    /// The Jacobian values of `id` at the last evaluation, on the chosen pieces, into `vals`
    /// (its pattern's; the node's own values are out of [`Linearizer::vals`] meanwhile, its
    /// children's in it), with `work` (n_z, zero on entry and on return) for the sums.
    pub(super) fn numeric(
        &self,
        id: NodeId,
        vals: &mut [f64],
        work: &mut [f64],
    ) -> Result<(), LinearizeError> {
        let g = self.graph();
        let node = g.node(id);
        match &node.op {
            Op::Param(_) => vals.iter_mut().for_each(|v| *v = 1.0),
            Op::Unary(_, a) | Op::Call { arg: a, .. } => {
                let coef = self.unary_coefficients(id)?;
                let csr = &self.pat[&id];
                let child = &self.vals[a];
                for (e, c) in coef.iter().enumerate() {
                    for p in csr.ptr[e]..csr.ptr[e + 1] {
                        vals[p] = c * child[p];
                    }
                }
            }
            Op::Transpose(a) => {
                let (csr, child, cpat) = (&self.pat[&id], &self.vals[a], &self.pat[a]);
                for e in 0..node.len() {
                    let (i, j) = (e % node.rows, e / node.rows);
                    let src = j + i * node.cols;
                    let n = csr.ptr[e + 1] - csr.ptr[e];
                    vals[csr.ptr[e]..csr.ptr[e] + n]
                        .copy_from_slice(&child[cpat.ptr[src]..cpat.ptr[src] + n]);
                }
            }
            Op::Gather { arg: a, .. } | Op::Element { arg: a, .. } => {
                let (csr, child, cpat) = (&self.pat[&id], &self.vals[a], &self.pat[a]);
                for e in 0..node.len() {
                    let src = picked(g, node, e);
                    let n = csr.ptr[e + 1] - csr.ptr[e];
                    vals[csr.ptr[e]..csr.ptr[e] + n]
                        .copy_from_slice(&child[cpat.ptr[src]..cpat.ptr[src] + n]);
                }
            }
            Op::Binary(..)
            | Op::MatMul(..)
            | Op::Dot(..)
            | Op::Reduce(ReduceKind::Sum | ReduceKind::SqNorm, _) => self.combine(id, vals, work),
            _ => {}
        }
        Ok(())
    }

    /// Binary and matrix-product nodes: scatter the weighted child rows, gather the pattern.
    fn combine(&self, id: NodeId, vals: &mut [f64], work: &mut [f64]) {
        let g = self.graph();
        let node = g.node(id);
        let mut parts = Vec::new();
        // the children's patterns and values, found once rather than per contribution
        let children: Vec<(NodeId, &Csr, &[f64])> = match &node.op {
            Op::Binary(_, a, b) | Op::MatMul(a, b) | Op::Dot(a, b) => vec![*a, *b],
            Op::Reduce(_, a) => vec![*a],
            _ => Vec::new(),
        }
        .into_iter()
        .filter_map(|c| Some((c, self.pat.get(&c)?, self.vals.get(&c)?.as_slice())))
        .collect();
        let csr = &self.pat[&id];
        for e in 0..node.len() {
            self.contributions(id, e, &mut parts);
            for &(c, ce, w) in &parts {
                if w == 0.0 {
                    continue;
                }
                let (_, cp, cv) = *children
                    .iter()
                    .find(|x| x.0 == c)
                    .expect("contributions name varying children, whose Jacobians are done");
                for p in cp.ptr[ce]..cp.ptr[ce + 1] {
                    work[cp.idx[p]] += w * cv[p];
                }
            }
            for p in csr.ptr[e]..csr.ptr[e + 1] {
                vals[p] = work[csr.idx[p]];
                work[csr.idx[p]] = 0.0;
            }
        }
    }

    /// Per-entry derivative of an elementwise node on its chosen piece.
    pub(super) fn unary_coefficients(&self, id: NodeId) -> Result<Vec<f64>, LinearizeError> {
        let g = self.graph();
        let node = g.node(id);
        let out0 = self.ev.coeff(id, 0);
        let side = |e: usize| {
            let s = &self.sites[self.site_of[&id]];
            self.side[s.first + e]
        };
        Ok(match &node.op {
            Op::Unary(u, a) => {
                let a0 = self.ev.coeff(*a, 0);
                (0..node.len())
                    .map(|e| match u {
                        ElemUnary::Neg => -1.0,
                        ElemUnary::Scale(c) => *c,
                        ElemUnary::Abs => {
                            if side(e) == Some(1) {
                                1.0
                            } else {
                                -1.0
                            }
                        }
                        ElemUnary::Exp => out0[e],
                        ElemUnary::Log => 1.0 / a0[e],
                        ElemUnary::Sqrt => 0.5 / out0[e],
                        ElemUnary::PowI(k) => *k as f64 * a0[e].powi(k - 1),
                        ElemUnary::Pow(p) if a0[e] == 0.0 && *p > 1.0 => 0.0,
                        ElemUnary::Pow(p) => *p * a0[e].powf(p - 1.0),
                    })
                    .collect()
            }
            Op::Call { func, params, arg } => {
                let a0 = self.ev.coeff(*arg, 0);
                let n = a0.len();
                let fp = &g.fparams[params.clone()];
                let (mut f0, mut right, mut left) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                let plus = vec![1.0; n];
                let minus = vec![-1.0; n];
                let reg = self.registry;
                let order = Order::One;
                let z = self.ztol;
                reg.call(
                    *func,
                    fp,
                    order,
                    z,
                    [a0, &plus, &[]],
                    [&mut f0, &mut right, &mut []],
                )?;
                reg.call(
                    *func,
                    fp,
                    order,
                    z,
                    [a0, &minus, &[]],
                    [&mut f0, &mut left, &mut []],
                )?;
                match self.site_of.get(&id) {
                    None => right,
                    Some(&s) => {
                        let site = &self.sites[s];
                        (0..n)
                            .map(|e| {
                                let on_right = self.piece_is_right(site, e, a0[e]);
                                if on_right {
                                    right[e]
                                } else {
                                    -left[e]
                                }
                            })
                            .collect()
                    }
                }
            }
            _ => vec![0.0; node.len()],
        })
    }

    /// Whether the chosen piece of a function site lies to the right of its argument.
    fn piece_is_right(&self, site: &super::Site, e: usize, a: f64) -> bool {
        let k = self.side[site.first + e].unwrap_or(0) as usize;
        // the piece is the interval (bp[k-1], bp[k]); it lies right of a if its lower end is ≥ a
        k > 0 && site.breakpoints[k - 1] >= a - self.ztol
    }

    /// Choose the piece of every site entry (tie rule of docs/math.md §5) and set the bounds.
    pub(super) fn choose_pieces(
        &mut self,
        multipliers: Option<&[f64]>,
        out: &mut Linearization,
    ) -> Result<(), LinearizeError> {
        for s in 0..self.sites.len() {
            let site = self.sites[s].clone();
            let args = self.site_arguments(site.node);
            for (e, &a) in args.iter().enumerate() {
                let bps = &site.breakpoints;
                let tie = bps.iter().position(|bp| (a - bp).abs() <= self.ztol);
                let slot = site.first + e;
                let leaf = site
                    .leaf
                    .map(|l| (l, l.offset + self.leaf_entry(site.node, l, e)));
                let k = match tie {
                    None => bps.iter().filter(|&&bp| bp < a).count() as u32,
                    Some(j) => {
                        out.ties += 1;
                        let j = j as u32;
                        let pushed = match (leaf, multipliers) {
                            (Some((_, z)), Some(m)) => m[z] > self.multiplier_tol,
                            _ => false,
                        };
                        match self.side[slot] {
                            Some(p) if p == j || p == j + 1 => {
                                if pushed {
                                    out.switched += 1;
                                    if p == j {
                                        j + 1
                                    } else {
                                        j
                                    }
                                } else {
                                    p
                                }
                            }
                            _ => j + 1,
                        }
                    }
                };
                self.side[slot] = Some(k);
                if let Some((l, z)) = leaf {
                    // the piece bp[k−1] ≤ a + sign·s ≤ bp[k], as bounds on s
                    let k = k as usize;
                    let lo = if k > 0 {
                        bps[k - 1] - a
                    } else {
                        f64::NEG_INFINITY
                    };
                    let hi = if k < bps.len() {
                        bps[k] - a
                    } else {
                        f64::INFINITY
                    };
                    let (lo, hi) = if l.sign > 0.0 { (lo, hi) } else { (-hi, -lo) };
                    out.lower[z] = out.lower[z].max(lo);
                    out.upper[z] = out.upper[z].min(hi);
                }
            }
        }
        Ok(())
    }

    /// The entry of a site's leaf argument that site entry `e` reads.
    fn leaf_entry(&self, site: NodeId, leaf: super::Leaf, e: usize) -> usize {
        let g = self.graph();
        bcast(g.node(site), g.node(leaf.node), e)
    }

    /// The argument of a site's kink test at every entry (a − b for max and min).
    fn site_arguments(&self, id: NodeId) -> Vec<f64> {
        let g = self.graph();
        let node = g.node(id);
        match &node.op {
            Op::Unary(_, a) | Op::Call { arg: a, .. } => self.ev.coeff(*a, 0).to_vec(),
            Op::Binary(_, a, b) => {
                let (na, nb) = (g.node(*a), g.node(*b));
                let (va, vb) = (self.ev.coeff(*a, 0), self.ev.coeff(*b, 0));
                (0..node.len())
                    .map(|e| va[bcast(node, na, e)] - vb[bcast(node, nb, e)])
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

pub(super) fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Reduce(..) => "a reduction",
        Op::Dot(..) => "an inner product",
        Op::Element { .. } => "indexing",
        Op::Accumulate { .. } => "a sum over time",
        _ => "this operation",
    }
}
