//! Carrying values from one graph's evaluation into another's: the nodes two graphs of the same
//! model compute alike (a test split's warm-up steps repeat the training steps on the same data)
//! are evaluated once, in the training graph, and the test graph reads them from there.
//!
//! Two nodes are alike when they have the same operation, shape and constant payload over alike
//! children; parameters are alike by slot, constants by value. Matching is structural, so any
//! graph pair works; nodes that are not matched are evaluated as usual.

use std::collections::HashMap;

use super::{EvalError, EvalOptions, Evaluator};
use crate::graph::{Graph, NodeId, Op};

/// How an evaluator reads the nodes it shares with another graph (see [`Evaluator::share`]).
pub(super) struct Carry {
    /// The other graph's address (only an evaluator of that graph may be read from).
    from: usize,
    /// This graph's varying nodes that are not shared, in topological order.
    own: Vec<NodeId>,
    /// Shared varying nodes that an own node reads: (here, there).
    frontier: Vec<(NodeId, NodeId)>,
}

impl<'g> Evaluator<'g> {
    /// Match this graph's nodes with the alike nodes of `from`, so that
    /// [`Evaluator::value_after`] evaluates only the rest. Returns the number of shared
    /// varying nodes (none for an evaluator that was bound to other data, see
    /// [`Evaluator::bind`]).
    pub fn share(&mut self, from: &Graph) -> usize {
        let g = self.graph;
        if self.rebound {
            self.carry = None;
            return 0;
        }
        let mut index: HashMap<Vec<u64>, NodeId> = HashMap::with_capacity(from.nodes.len());
        for i in 0..from.nodes.len() as u32 {
            let id = NodeId(i);
            if let Some(k) = key(from, id, &|c| Some(c)) {
                index.entry(k).or_insert(id);
            }
        }
        // Children come before parents, so a child's match is known when its parent is keyed.
        let mut map: Vec<Option<NodeId>> = Vec::with_capacity(g.nodes.len());
        for i in 0..g.nodes.len() as u32 {
            let k = key(g, NodeId(i), &|c| map[c.index()]);
            map.push(k.and_then(|k| index.get(&k).copied()));
        }
        let own: Vec<NodeId> = self
            .varying
            .iter()
            .copied()
            .filter(|id| map[id.index()].is_none())
            .collect();
        let mut frontier: Vec<(NodeId, NodeId)> = Vec::new();
        for &id in &own {
            for c in g.children(id) {
                if let (true, Some(there)) = (g.node(c).varies, map[c.index()]) {
                    if !frontier.iter().any(|&(here, _)| here == c) {
                        frontier.push((c, there));
                    }
                }
            }
        }
        let shared = self.varying.len() - own.len();
        // Shared nodes are copied in, so no node reads its value inside another's.
        self.voff = self.off[..g.nodes.len()].to_vec();
        self.plan = None;
        self.carry = Some(Carry {
            from: from as *const Graph as usize,
            own,
            frontier,
        });
        shared
    }

    /// f(θ), reading the shared nodes (see [`Evaluator::share`]) from `from`, which must have
    /// just evaluated its graph at the same θ with the same options (its value or gradient).
    /// Without sharing, or from an evaluator of another graph or one bound to other data, a
    /// plain [`Evaluator::value`].
    pub fn value_after(
        &mut self,
        from: &Evaluator<'_>,
        theta: &[f64],
        opts: EvalOptions,
    ) -> Result<f64, EvalError> {
        let Some(carry) = self.carry.take() else {
            return self.value(theta, opts);
        };
        // Values `from`'s value pass left unwritten (a cell's products and sum, which only the
        // cell reads, so never a frontier in practice) are not copied: a plain pass instead.
        let unwritten = |c: &Carry| c.frontier.iter().any(|&(_, n)| !from.value_written(n));
        if carry.from != from.graph as *const Graph as usize || from.rebound || unwritten(&carry) {
            self.carry = Some(carry);
            return self.value(theta, opts);
        }
        for &(here, there) in &carry.frontier {
            let len = self.graph.node(here).len();
            let (a, b) = (self.voff[here.index()], from.voff[there.index()]);
            self.arena[a..a + len].copy_from_slice(&from.arena[b..b + len]);
        }
        let mut out = Ok(());
        for &id in &carry.own {
            if let Err(e) = self.node_forward::<1>(id, theta, None, opts) {
                out = Err(e);
                break;
            }
        }
        self.carry = Some(carry);
        out?;
        Ok(self.coeff(self.graph.objective, 0)[0])
    }
}

/// A node's identity up to its children: operation, shape and payload, with each child
/// translated by `child` (`None`: the node has no alike counterpart).
fn key(g: &Graph, id: NodeId, child: &dyn Fn(NodeId) -> Option<NodeId>) -> Option<Vec<u64>> {
    let n = g.node(id);
    let mut k = vec![n.rows as u64, n.cols as u64, u64::from(n.batched)];
    let kid = |c: NodeId, k: &mut Vec<u64>| -> Option<()> {
        k.push(u64::from(child(c)?.0));
        Some(())
    };
    match &n.op {
        Op::Const(r) => {
            k.push(0);
            k.extend(g.consts[r.clone()].iter().map(|v| v.to_bits()));
        }
        Op::Param(p) => k.extend([1, *p as u64]),
        Op::Unary(u, a) => {
            k.push(2);
            payload(&mut k, u);
            kid(*a, &mut k)?;
        }
        Op::Binary(b, x, y) => {
            k.push(3);
            payload(&mut k, b);
            kid(*x, &mut k)?;
            kid(*y, &mut k)?;
        }
        Op::MatMul(x, y) => {
            k.push(4);
            kid(*x, &mut k)?;
            kid(*y, &mut k)?;
        }
        Op::Transpose(a) => {
            k.push(5);
            kid(*a, &mut k)?;
        }
        Op::Reduce(r, a) => {
            k.push(6);
            payload(&mut k, r);
            kid(*a, &mut k)?;
        }
        Op::Dot(x, y) => {
            k.push(7);
            kid(*x, &mut k)?;
            kid(*y, &mut k)?;
        }
        Op::Element { arg, row, col } => {
            k.extend([8, *row as u64, *col as u64]);
            kid(*arg, &mut k)?;
        }
        Op::Call { func, params, arg } => {
            k.extend([9, u64::from(func.0), params.len() as u64]);
            k.extend(g.fparams[params.clone()].iter().map(|v| v.to_bits()));
            kid(*arg, &mut k)?;
        }
        // Reductions over time (and any other operation) differ between splits: not shared.
        _ => return None,
    }
    Some(k)
}

/// An operation's kind and constants, exactly (`Debug` prints floats so that they round-trip).
fn payload(k: &mut Vec<u64>, p: &dyn std::fmt::Debug) {
    let s = format!("{p:?}");
    k.push(s.len() as u64);
    k.extend(s.bytes().map(u64::from));
}
