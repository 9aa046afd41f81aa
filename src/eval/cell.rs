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

use super::backprod;
use super::linalg::{gemm, Mat};
use super::replay::Act;
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
    /// Where the transposed copy of each product's weight lies (`Transposed`), if it has one.
    wt: [Option<usize>; 2],
}

impl Evaluator<'_> {
    /// Find the cells (with the adjoint offsets, the views and the weight staging fixed).
    pub(super) fn find_cells(&mut self) {
        self.cells.clear();
        self.cell_index.clear();
        self.cell_wt = Transposed::default();
        if !fast_paths() {
            return;
        }
        self.cell_index = vec![u32::MAX; self.graph.nodes.len()];
        for i in 4..self.varying.len() {
            if let Some(mut c) = self.cell_ending(i) {
                c.wt = c.products.map(|m| self.transposed_place(m));
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
            wt: [None; 2],
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
        self.replay.note(Act::Back(c.h, fresh));
        self.node_backward(c.h, fresh, grad, opts)?;
        let first = self.prepare_own(c.b, true);
        self.replay.note(Act::Bias(k as u32, first));
        self.cell_bias(k, first);
        for id in [c.s, c.products[0], c.products[1]] {
            self.touched[id.index()] = super::reverse::Adj::Dense;
        }
        let su = self.adj_off[c.u.index()];
        for (m, wt) in c.products.into_iter().zip(c.wt) {
            self.staged_backward(m, wt, su);
        }
        Ok(())
    }

    /// u = s + b of cell `k`: s shares u's adjoint; b's adjoint gets 1 · g (written when
    /// `first`).
    pub(super) fn cell_bias(&mut self, k: usize, first: bool) {
        let c = self.cells[k];
        let len = self.graph.node(c.u).len();
        let (su, sb) = (self.adj_off[c.u.index()], self.adj_off[c.b.index()]);
        for i in 0..len {
            let v = 1.0 * self.adj[su + i];
            if first {
                self.adj[sb + i] = v;
            } else {
                self.adj[sb + i] += v;
            }
        }
    }

    /// A product `P · B` of a cell: `P`'s adjoint put in storage (the weight gradient reads the
    /// product's adjoint, at `su`, in place), and `Pᵀ g` added to B's adjoint when B varies,
    /// from the transposed copy of `P` (`backprod::tdots_add`, the same bits as `gemm`).
    fn staged_backward(&mut self, m: NodeId, wt: Option<usize>, su: usize) {
        let g = self.graph;
        let n = g.node(m);
        let Op::MatMul(a, b) = n.op else { return };
        self.prepare_own(a, false);
        if g.node(b).varies {
            self.prepare_own(b, false);
        }
        self.replay.note(Act::Product { m, wt, su });
        self.cell_product(m, wt, su);
    }

    /// The arithmetic of `staged_backward`: `Pᵀ g` added to B's adjoint when B varies.
    pub(super) fn cell_product(&mut self, m: NodeId, wt: Option<usize>, su: usize) {
        let g = self.graph;
        let n = g.node(m);
        let Op::MatMul(a, b) = n.op else { return };
        let (na, nb) = (g.node(a), g.node(b));
        if !nb.varies {
            return;
        }
        let sb = self.adj_off[b.index()];
        let (left, right) = self.adj.split_at_mut(su);
        let (gout, hadj) = (&right[..n.len()], &mut left[sb..sb + nb.len()]);
        match wt {
            Some(o) => backprod::tdots_add(&self.cell_wt.data[o..o + na.len()], gout, hadj),
            None => {
                let va = &self.arena[self.voff[a.index()]..self.voff[a.index()] + na.len()];
                let gm = Mat::new(gout, n.rows, n.cols);
                gemm(1.0, Mat::new(va, na.rows, na.cols).t(), gm, 1.0, hadj);
            }
        }
    }

    /// Copy the recurrent weights of the cells, transposed, for `staged_backward` (once per
    /// pass, before the first cell).
    pub(super) fn transpose_cell_weights(&mut self) {
        let t = &mut self.cell_wt;
        for &(w, o) in &t.src {
            let nw = self.graph.node(w);
            let (rows, cols) = (nw.rows, nw.cols);
            let v = &self.arena[self.voff[w.index()]..self.voff[w.index()] + nw.len()];
            let out = &mut t.data[o..o + v.len()];
            for (j, col) in v.chunks_exact(rows.max(1)).enumerate() {
                for (i, x) in col.iter().enumerate() {
                    out[i * cols + j] = *x;
                }
            }
        }
    }

    /// Where the transposed copy of the weight of product `m` lies in `cell_wt`, for a product
    /// with one right-hand column and a varying right operand (given a place on first use).
    fn transposed_place(&mut self, m: NodeId) -> Option<usize> {
        let g = self.graph;
        let Op::MatMul(a, b) = g.node(m).op else {
            return None;
        };
        if !g.node(b).varies || g.node(m).cols != 1 {
            return None;
        }
        let t = &mut self.cell_wt;
        if let Some(&(_, o)) = t.src.iter().find(|&&(w, _)| w == a) {
            return Some(o);
        }
        let o = t.data.len();
        t.src.push((a, o));
        t.data.resize(o + g.node(a).len(), 0.0);
        Some(o)
    }
}

/// The cells' recurrent weights, transposed (see `Evaluator::transpose_cell_weights`).
#[derive(Debug, Default)]
pub(super) struct Transposed {
    /// Each weight's node and the offset of its copy in `data`.
    src: Vec<(NodeId, usize)>,
    data: Vec<f64>,
}
