//! Reverse mode over a recurrent cell `h = φ(W h₋ + V x + b)` in one step: the five nodes of
//! the cell — the activation `h` (a registry function), `u = s + b`, `s = p + q`, `p = W h₋`,
//! `q = V x` (x constant, W and V parameters whose weight gradients are staged) — when `s`,
//! `p` and `q` share `u`'s adjoint (`reverse::unit_slope_aliases`) and come right before `h`
//! in evaluation order. The step does what the five backward steps do, in their order, on the
//! same numbers: the activation's step, `b`'s adjoint (`1 · g`, written or added), nothing for
//! the shared adjoints, then for each product its staged columns and `W` `ᵀ g` added to the
//! adjoint of h₋, so the gradient is the same to the bit
//! (`eval::plan::tests::the_plan_computes_the_plain_values` compares it with the plain reverse
//! pass). It only saves the per-node work (the loop, the preparation of children, the dispatch),
//! which is most of the reverse pass of a model whose nodes hold 20 entries.

use super::linalg::{gemm, Mat};
use super::reverse::fast_paths;
use super::{EvalError, EvalOptions, Evaluator};
use crate::graph::{ElemBinary, NodeId, Op};

/// The nodes of one cell, found once with the adjoint offsets.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cell {
    h: NodeId,
    u: NodeId,
    s: NodeId,
    b: NodeId,
    /// The two products in the order reverse mode visits them (the later one first).
    products: [NodeId; 2],
}

impl Evaluator<'_> {
    /// Find the cells (with the adjoint offsets, the views and the weight staging fixed).
    pub(super) fn find_cells(&mut self) {
        self.cells.clear();
        self.cell_index.clear();
        if !fast_paths() {
            return;
        }
        self.cell_index = vec![u32::MAX; self.graph.nodes.len()];
        for i in 4..self.varying.len() {
            if let Some(c) = self.cell_ending(i) {
                self.cell_index[c.h.index()] = self.cells.len() as u32;
                self.cells.push(c);
            }
        }
    }

    /// The cell whose activation is `varying[i]`, if the four nodes before it make one.
    fn cell_ending(&self, i: usize) -> Option<Cell> {
        let g = self.graph;
        let v = &self.varying[i - 4..=i];
        let aoff = |id: NodeId| self.adj_off[id.index()];
        let Op::Call { arg: u, .. } = g.node(v[4]).op else {
            return None;
        };
        let Op::Binary(ElemBinary::Add, s, b) = g.node(u).op else {
            return None;
        };
        let Op::Binary(ElemBinary::Add, p, q) = g.node(s).op else {
            return None;
        };
        let (nu, nb) = (g.node(u), g.node(b));
        let own = |id: NodeId| aoff(id) != aoff(u) && self.adj_view(id).is_none();
        let cell = u == v[3]
            && s == v[2]
            && ([p, q] == [v[0], v[1]] || [p, q] == [v[1], v[0]])
            && !nu.is_empty()
            && [s, p, q].iter().all(|&c| aoff(c) == aoff(u))
            && matches!(nb.op, Op::Param(_))
            && nb.len() == nu.len()
            && own(b)
            && [p, q].iter().all(|&m| self.staged_product(m, &own));
        cell.then_some(Cell {
            h: v[4],
            u,
            s,
            b,
            products: [v[1], v[0]],
        })
    }

    /// Whether `m` is a product `P · B` with `P` a parameter whose weight gradient is staged and
    /// `B` constant, or varying with an adjoint of its own.
    fn staged_product(&self, m: NodeId, own: &dyn Fn(NodeId) -> bool) -> bool {
        let g = self.graph;
        let Op::MatMul(a, b) = g.node(m).op else {
            return false;
        };
        let before = |b: NodeId| self.adj_off[b.index()] < self.adj_off[m.index()];
        matches!(g.node(a).op, Op::Param(_))
            && self.wslot[m.index()].is_some()
            && a != b
            && (!g.node(b).varies || own(b) && before(b))
    }

    /// The cell whose activation is node `id`, if any.
    #[inline]
    pub(super) fn cell_at(&self, id: NodeId) -> Option<usize> {
        match self.cell_index.get(id.index()) {
            Some(&k) if k != u32::MAX => Some(k as usize),
            _ => None,
        }
    }

    /// The backward steps of cell `k`, whose activation's adjoint is in storage.
    pub(super) fn cell_backward(
        &mut self,
        k: usize,
        grad: &mut [f64],
        opts: EvalOptions,
    ) -> Result<(), EvalError> {
        let c = self.cells[k];
        let fresh = self.prepare_children(c.h);
        self.node_backward(c.h, fresh, grad, opts)?;
        // u = s + b: s shares u's adjoint; b's adjoint gets 1 · g.
        let g = self.graph;
        let len = g.node(c.u).len();
        let first = self.prepare_own(c.b, true);
        let (su, sb) = (self.adj_off[c.u.index()], self.adj_off[c.b.index()]);
        for i in 0..len {
            let v = 1.0 * self.adj[su + i];
            if first {
                self.adj[sb + i] = v;
            } else {
                self.adj[sb + i] += v;
            }
        }
        for id in [c.s, c.products[0], c.products[1]] {
            self.touched[id.index()] = super::reverse::Adj::Dense;
        }
        for m in c.products {
            self.staged_backward(m, su);
        }
        Ok(())
    }

    /// A product `P · B` of a cell: `P`'s adjoint put in storage (it is staged, not written),
    /// its columns staged (the adjoint at `su` and B's value), and `Pᵀ g` added to B's adjoint
    /// when B varies.
    fn staged_backward(&mut self, m: NodeId, su: usize) {
        let g = self.graph;
        let n = g.node(m);
        let Op::MatMul(a, b) = n.op else { return };
        let (na, nb) = (g.node(a), g.node(b));
        self.prepare_own(a, false);
        if nb.varies {
            self.prepare_own(b, false);
        }
        let Some((p, col)) = self.wslot[m.index()] else {
            return;
        };
        let gout = &self.adj[su..su + n.len()];
        let vb = &self.arena[self.voff[b.index()]..self.voff[b.index()] + nb.len()];
        let wb = &mut self.wbatch[p];
        wb.g[col * n.rows..(col + n.cols) * n.rows].copy_from_slice(gout);
        wb.b[col * nb.rows..(col + nb.cols) * nb.rows].copy_from_slice(vb);
        if nb.varies {
            let sb = self.adj_off[b.index()];
            let va = &self.arena[self.voff[a.index()]..self.voff[a.index()] + na.len()];
            let (left, right) = self.adj.split_at_mut(su);
            let gm = Mat::new(&right[..n.len()], n.rows, n.cols);
            gemm(
                1.0,
                Mat::new(va, na.rows, na.cols).t(),
                gm,
                1.0,
                &mut left[sb..sb + nb.len()],
            );
        }
    }
}
