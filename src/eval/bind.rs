//! Data as evaluator input: binding another batch of data of the graph's shape to its data
//! nodes ([`Graph::inputs`]) without lowering, planning or allocating again.
//!
//! A bind writes the batch into the data nodes' values and recomputes, in topological order,
//! the constant nodes computed from them (`x[t] * 2`, a data-only term); nodes that depend on
//! θ are recomputed by every evaluation anyway. The result is bit for bit that of an evaluator
//! of a graph lowered with the batch: the same operations on the same values in the same order.

use super::{EvalOptions, Evaluator};
use crate::diag::Diag;
use crate::graph::{Graph, NodeId, Op, SeqData};

impl Evaluator<'_> {
    /// Bind `data` (one entry per data declaration, as for lowering) to the graph's inputs.
    /// An error, and nothing changed, when the data do not have the graph's shape (see
    /// [`Graph::check_data`]); an error when a constant computed from the data fails (a domain
    /// error): bind other data before evaluating again.
    ///
    /// A rebound evaluator no longer shares nodes with another graph (see
    /// [`Evaluator::share`]: the match compared the lowering's constants), and is no source of
    /// shared values for another evaluator.
    pub fn bind(&mut self, data: &[SeqData]) -> Result<(), Diag> {
        let g = self.graph;
        g.check_data(data)?;
        if self.derived.is_none() {
            self.derived = Some(derived_constants(g));
        }
        let width_of = |w: usize| w * g.sequences;
        for (input, d) in g.inputs.iter().zip(data) {
            let len = width_of(input.width);
            for &(t, node) in &input.steps {
                let start = self.off[node.index()];
                let from = (t - 1) * len;
                self.arena[start..start + len].copy_from_slice(&d.values[from..from + len]);
            }
        }
        self.carry = None;
        self.rebound = true;
        let derived = self.derived.take().unwrap_or_default();
        let mut out = Ok(());
        for &id in &derived {
            if let Err(e) = self.node_forward::<1>(id, &[], None, EvalOptions::default()) {
                out = Err(e.to_diag(g));
                break;
            }
        }
        self.derived = Some(derived);
        out
    }
}

/// The constant nodes that read a data input, directly or through other constant nodes, in
/// topological order.
fn derived_constants(g: &Graph) -> Vec<NodeId> {
    let mut from_data = vec![false; g.nodes.len()];
    for input in &g.inputs {
        for &(_, node) in &input.steps {
            from_data[node.index()] = true;
        }
    }
    let mut out = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        if n.varies || matches!(n.op, Op::Const(_)) {
            continue;
        }
        if g.children(id).any(|c| from_data[c.index()]) {
            from_data[i] = true;
            out.push(id);
        }
    }
    out
}
