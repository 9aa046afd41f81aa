//! Reverse mode: a gradient selection over the same graph, for solvers.
//!
//! Where f is differentiable this is ∇f. At a kink it is the derivative of the piece that the
//! lexicographic rule picks for a zero direction: abs and norm1 take sign +1 at 0, `max` and
//! `min` take their first argument at a tie, and plugin functions return their right
//! derivative φ′(a; +1) (so relu′(0) = 1). This is a selection, not a directional derivative.

use super::backprod;
use super::forward::{bstrides, coeffs, dot_pairs, gather_index};
use super::linalg::{gemm, Mat};
use super::replay::Act;
use super::{EvalError, EvalErrorKind, EvalOptions, Evaluator};
use crate::graph::{ElemBinary, ElemUnary, Graph, Node, NodeId, Op, ReduceKind};
use crate::memory::{self, AllocError};
use crate::registry::Order;

impl Evaluator<'_> {
    /// f(θ) and the gradient selection written to `grad` (length n).
    pub fn gradient(
        &mut self,
        theta: &[f64],
        grad: &mut [f64],
        opts: EvalOptions,
    ) -> Result<f64, EvalError> {
        assert_eq!(
            grad.len(),
            self.graph.n_params(),
            "gradient buffer has the wrong length"
        );
        self.run::<1>(theta, None, opts)?;
        self.ensure_adjoints()?;
        self.transpose_cell_weights();
        let g = self.graph;
        // Adjoints are written by their first contribution (or zeroed just before it, in
        // cache), and below an n-ary max held as one entry, so no pass zeroes the whole arena.
        self.touched.fill(Adj::Zero);
        grad.fill(0.0);
        let value = self.coeff(g.objective, 0)[0];
        if !g.node(g.objective).varies {
            return Ok(value);
        }
        self.adj[self.adj_off[g.objective.index()]] = 1.0;
        self.touched[g.objective.index()] = Adj::Dense;
        if self.start_replay() {
            self.run_replay(grad, opts)?;
            return Ok(value);
        }
        let out = self.reverse_loop(grad, opts);
        self.end_replay(out.is_ok());
        out.map(|()| value)
    }

    /// The reverse loop: every varying node, from the objective down, its children prepared
    /// (what a replay records, `replay.rs`).
    fn reverse_loop(&mut self, grad: &mut [f64], opts: EvalOptions) -> Result<(), EvalError> {
        let mut next = self.varying.len();
        while next > 0 {
            next -= 1;
            let id = self.varying[next];
            if let Some(k) = self.cell_at(id) {
                if self.touched[id.index()] == Adj::Dense {
                    // The recurrent cell ending at `id`, in one step (`cell.rs`).
                    self.cell_backward(k, grad, opts)?;
                    next -= 4;
                    continue;
                }
            }
            if self.adj_view(id).is_some() {
                // Its consumer has added to its operand's adjoint already.
                continue;
            }
            let state = self.touched[id.index()];
            match state {
                Adj::Zero => {
                    self.replay.note(Act::Skip(id));
                    self.skip_untouched(id, grad);
                }
                Adj::One(at, v) => {
                    self.replay.abandon();
                    if !self.one_backward(id, at, v, grad) {
                        self.densify(id, at, v);
                        let fresh = self.prepare_children(id);
                        self.node_backward(id, fresh, grad, opts)?;
                    }
                }
                Adj::Dense => {
                    let fresh = self.prepare_children(id);
                    if !self.passes_by_sharing(id) {
                        self.replay.note(Act::Back(id, fresh));
                    }
                    self.node_backward(id, fresh, grad, opts)?;
                }
            }
        }
        Ok(())
    }

    /// Make the varying children of `id` ready for its contributions: a child without one yet
    /// is written by them (`fresh`, for the first two children) when `id` writes every entry
    /// of it, else zeroed; a child held as one entry is written out. A single-group n-ary max
    /// over a child without contributions leaves it to `node_backward` (one entry).
    pub(super) fn prepare_children(&mut self, id: NodeId) -> [bool; 2] {
        let g = self.graph;
        let n = g.node(id);
        let mut fresh = [false; 2];
        let fast = fast_paths();
        if let Op::Reduce(ReduceKind::Max, a) = n.op {
            if self.max_passes_one(a) {
                return fresh;
            }
        }
        let covers = if fast {
            self.covers[id.index()]
        } else {
            [false; 2]
        };
        for k in self.prep_off[id.index()]..self.prep_off[id.index() + 1] {
            match self.preps[k] {
                Prep::Alias(c) => self.touched[c.index()] = Adj::Dense,
                Prep::View(c, a) => {
                    match self.touched[a.index()] {
                        Adj::Zero => {
                            let (at, len) = (self.adj_off[a.index()], g.node(a).len());
                            self.replay.note(Act::Fill { at, len });
                            self.adj[at..at + len].fill(0.0);
                            self.touched[a.index()] = Adj::Dense;
                        }
                        Adj::One(at, v) => self.densify(a, at, v),
                        Adj::Dense => {}
                    }
                    self.touched[c.index()] = Adj::Dense;
                }
                Prep::Own(c, slot) => {
                    if self.prepare_own(c, slot < 2 && covers[slot]) {
                        fresh[slot] = true;
                    }
                }
            }
        }
        fresh
    }

    /// Put the own adjoint of child `c` in storage: written by the step (true) when it has no
    /// contribution yet and the step `covers` every entry, else zeroed or written out.
    pub(super) fn prepare_own(&mut self, c: NodeId, covers: bool) -> bool {
        let ci = c.index();
        match self.touched[ci] {
            Adj::Zero if covers => {
                self.touched[ci] = Adj::Dense;
                return true;
            }
            Adj::Zero => {
                let (at, len) = (self.adj_off[ci], self.graph.node(c).len());
                self.replay.note(Act::Fill { at, len });
                self.adj[at..at + len].fill(0.0);
                self.touched[ci] = Adj::Dense;
            }
            Adj::One(at, v) => self.densify(c, at, v),
            Adj::Dense => {}
        }
        false
    }

    /// What `prepare_children` does with each varying child, in order (see [`Prep`]).
    fn find_preps(&mut self) {
        let g = self.graph;
        let (mut preps, mut prep_off) = (Vec::new(), Vec::with_capacity(g.nodes.len() + 1));
        for (i, n) in g.nodes.iter().enumerate() {
            prep_off.push(preps.len());
            for (slot, c) in g.children(NodeId(i as u32)).enumerate() {
                if !g.node(c).varies {
                    continue;
                }
                preps.push(
                    if !n.is_empty() && self.adj_off[c.index()] == self.adj_off[i] {
                        // It shares this node's adjoint (see `unit_slope_aliases`): nothing to write.
                        Prep::Alias(c)
                    } else if let Some((a, _)) = self.adj_view(c) {
                        // Its consumer adds to the operand's adjoint, which must be in storage.
                        Prep::View(c, a)
                    } else {
                        Prep::Own(c, slot)
                    },
                );
            }
        }
        prep_off.push(preps.len());
        (self.preps, self.prep_off) = (preps, prep_off);
    }

    /// Whether the backward step of `id` does nothing: a `+` or `−` whose varying operands
    /// all share its adjoint (`unit_slope_aliases`), so a replay leaves it out.
    fn passes_by_sharing(&self, id: NodeId) -> bool {
        let g = self.graph;
        let n = g.node(id);
        let shares = |c: NodeId| {
            !g.node(c).varies
                || !n.is_empty() && self.adj_off[c.index()] == self.adj_off[id.index()]
        };
        matches!(n.op, Op::Binary(ElemBinary::Add | ElemBinary::Sub, a, b) if shares(a) && shares(b))
    }

    /// Write out an adjoint held as one entry: zeros, and `v` at `at`.
    fn densify(&mut self, id: NodeId, at: usize, v: f64) {
        let s = self.adj_off[id.index()];
        let a = &mut self.adj[s..s + self.graph.node(id).len()];
        a.fill(0.0);
        a[at] = v;
        self.touched[id.index()] = Adj::Dense;
    }

    /// Whether an n-ary max over `a` (one group) passes its adjoint down as one entry: when
    /// `a` has no contribution yet and is not a view.
    fn max_passes_one(&self, a: NodeId) -> bool {
        fast_paths()
            && !self.graph.node(a).batched
            && self.touched[a.index()] == Adj::Zero
            && self.adj_view(a).is_none()
    }

    /// The operand and start of a gather whose adjoint is a view of its operand's (see
    /// `adjoint_views`): its adjoint offset lies inside the operand's adjoint, where a node's
    /// own block always lies after its children's.
    #[inline]
    pub(super) fn adj_view(&self, id: NodeId) -> Option<(NodeId, usize)> {
        self.adj_views[id.index()]
    }

    /// What `adj_view` returns, from the offsets (while `adjoint_views` sets them).
    fn find_adj_view(&self, id: NodeId) -> Option<(NodeId, usize)> {
        match self.graph.node(id).op {
            Op::Gather { arg, start, .. }
                if self.adj_off[id.index()]
                    < self.adj_off[arg.index()] + self.graph.node(arg).len() =>
            {
                Some((arg, start))
            }
            _ => None,
        }
    }

    /// Let an operand `a` of `a + b` (both of the output's shape), of `a − b` (`b` of the
    /// output's shape or a constant scalar) or of `a + c` (`c` a constant scalar) share the
    /// node's adjoint when that node is its only consumer: `a`'s adjoint is then 1 · g = g,
    /// written by nobody else, so its offset is moved onto the node's (parents first, so
    /// chains share one block) and neither writing nor reading a copy is needed. Gathers are
    /// left to `adjoint_views`.
    fn unit_slope_aliases(&mut self) {
        let g = self.graph;
        if !fast_paths() {
            return;
        }
        let mut uses = vec![0u32; g.nodes.len()];
        for i in 0..g.nodes.len() as u32 {
            for c in g.children(NodeId(i)) {
                uses[c.index()] += 1;
            }
        }
        for (i, n) in g.nodes.iter().enumerate().rev() {
            let Op::Binary(op, a, b) = n.op else { continue };
            let (na, nb) = (g.node(a), g.node(b));
            let full = |m: &Node| m.len() == n.len();
            let const_scalar = |m: &Node| m.len() == 1 && !m.varies;
            let slots = match op {
                ElemBinary::Add if full(na) && full(nb) => [Some(a), Some(b)],
                ElemBinary::Add | ElemBinary::Sub if full(na) && const_scalar(nb) => {
                    [Some(a), None]
                }
                ElemBinary::Sub if full(na) && full(nb) => [Some(a), None],
                _ => [None, None],
            };
            for c in slots.into_iter().flatten() {
                let nc = g.node(c);
                let gather = matches!(nc.op, Op::Gather { .. });
                if uses[c.index()] == 1 && nc.varies && !n.is_empty() && !gather {
                    self.adj_off[c.index()] = self.adj_off[i];
                }
            }
        }
    }

    /// Let a contiguous gather `G` of a vector `a` share `a`'s adjoint (its offset moved into
    /// it) when its consumer `C` adds to `G`'s adjoint and `G`'s backward step would then add
    /// that to `a`'s: when `G` has exactly one consumer edge, no node after `G` up to `C`
    /// reads `a` (so nothing else adds to `a` in between, or in `C`'s loop in another order),
    /// and `a` is not such a view itself.
    /// `C` then adds to `a`'s adjoint directly: the same sums in the same order (a + (0 + c)
    /// becomes a + c), without writing and reading `G`'s adjoint.
    fn adjoint_views(&mut self) {
        let g = self.graph;
        if !fast_paths() {
            return;
        }
        let mut readers: Vec<Vec<u32>> = vec![Vec::new(); g.nodes.len()];
        for i in 0..g.nodes.len() as u32 {
            for c in g.children(NodeId(i)) {
                readers[c.index()].push(i);
            }
        }
        for (i, n) in g.nodes.iter().enumerate() {
            let Op::Gather {
                arg,
                start,
                step: 1,
                ..
            } = n.op
            else {
                continue;
            };
            let [c] = readers[i][..] else { continue };
            let ra = &readers[arg.index()];
            let next = ra[ra.partition_point(|&r| r <= i as u32)..].first();
            let quiet = next.is_none_or(|&r| r > c);
            if quiet
                && n.varies
                && n.cols == 1
                && !g.node(arg).batched
                && self.find_adj_view(arg).is_none()
            {
                self.adj_off[i] = self.adj_off[arg.index()] + start;
            }
        }
    }

    /// Add `w` to entry `at` of the adjoint of `id` (as `0 + w` when it had no contribution).
    fn add_one(&mut self, id: NodeId, at: usize, w: f64) {
        if let Some((a, start)) = self.adj_view(id) {
            return self.add_one(a, start + at, w);
        }
        let (i, s) = (id.index(), self.adj_off[id.index()]);
        match self.touched[i] {
            Adj::Zero => self.touched[i] = Adj::One(at, 0.0 + w),
            Adj::One(a, v) => {
                self.densify(id, a, v);
                self.adj[s + at] += w;
            }
            Adj::Dense => self.adj[s + at] += w,
        }
    }

    /// The backward step of a node whose adjoint is `v` at entry `at` and zero elsewhere,
    /// touching one entry, for the operations that pass one entry on to one entry (a
    /// parameter, a gather, and the unary operations with a finite slope wherever their value
    /// is finite); false for the others, which take the dense path. The dense step would add
    /// slope · 0 to the other entries: the same bits, except that an infinite slope there
    /// would make a NaN.
    fn one_backward(&mut self, id: NodeId, at: usize, v: f64, grad: &mut [f64]) -> bool {
        let g = self.graph;
        let n = g.node(id);
        match n.op {
            Op::Param(p) => {
                let o = g.params[p].offset;
                grad[o + at] += v;
                self.add_weight_gradient(p, &mut grad[o..o + n.len()]);
            }
            Op::Unary(op, a) => {
                let x = self.arena[self.voff[a.index()] + at];
                let Some(d) = one_slope(op, x) else {
                    return false;
                };
                self.add_one(a, at, d * v);
            }
            Op::Gather {
                arg,
                start,
                step,
                len: m,
            } => {
                let na = g.node(arg);
                let group = na.group_len();
                let src = at / m * group + gather_index(start, step, at % m);
                self.add_one(arg, src, v);
            }
            _ => return false,
        }
        true
    }

    /// A node with a zero adjoint contributes nothing, except that a staged weight product
    /// must hold zeros and a parameter must still collect its staged products.
    pub(super) fn skip_untouched(&mut self, id: NodeId, grad: &mut [f64]) {
        let n = self.graph.node(id);
        if self.wslot[id.index()].is_some() {
            // Its adjoint is a column block of the weight gradient: zeros (every node sharing
            // this storage has no contribution either).
            let s = self.adj_off[id.index()];
            self.adj[s..s + n.len()].fill(0.0);
        }
        if let Op::Param(p) = n.op {
            let o = self.graph.params[p].offset;
            self.add_weight_gradient(p, &mut grad[o..o + n.len()]);
        }
    }

    /// An allocation the system refused, reported at the objective.
    fn out_of_memory(&self, e: AllocError, what: &str) -> EvalError {
        EvalError {
            node: self.graph.objective,
            kind: EvalErrorKind::TooLarge(e.message(what)),
        }
    }

    fn ensure_adjoints(&mut self) -> Result<(), EvalError> {
        if !self.adj_off.is_empty() {
            return Ok(());
        }
        let mut total = 0;
        let mut max_len = 1;
        for n in &self.graph.nodes {
            self.adj_off.push(total);
            total += n.len();
            max_len = max_len.max(n.len());
        }
        let oom = |e: AllocError| self.out_of_memory(e, "the adjoints of reverse mode");
        let adj = memory::filled(total, 0.0).map_err(oom)?;
        let touched = memory::filled(self.graph.nodes.len(), Adj::Zero).map_err(oom)?;
        let ones = memory::filled(max_len, 1.0).map_err(oom)?;
        let tmp = [
            memory::filled(max_len, 0.0).map_err(oom)?,
            memory::filled(max_len, 0.0).map_err(oom)?,
        ];
        (self.adj, self.touched, self.ones, self.tmp) = (adj, touched, ones, tmp);
        self.adj_off.push(total);
        self.unit_slope_aliases();
        self.adjoint_views();
        let g = self.graph;
        self.adj_views = (0..g.nodes.len() as u32)
            .map(|i| self.find_adj_view(NodeId(i)))
            .collect();
        self.covers = g.nodes.iter().map(|n| writes_every_entry(g, n)).collect();
        self.find_preps();
        self.stage_weight_products()?;
        self.find_cells();
        Ok(())
    }

    /// Give every product `P · B` with a parameter `P` its place among P's staged products,
    /// whose adjoints and right operands the weight gradient reads in place at the end of the
    /// pass (`add_weight_gradient`).
    fn stage_weight_products(&mut self) -> Result<(), EvalError> {
        let g = self.graph;
        self.wbatch = g
            .params
            .iter()
            .map(|p| WeightBatch {
                rows: p.shape.rows,
                inner: p.shape.cols,
                products: Vec::new(),
                cols: Vec::new(),
                acc: Vec::new(),
            })
            .collect();
        self.wslot = vec![None; g.nodes.len()];
        let mut ncols = vec![0usize; g.params.len()];
        for (i, n) in g.nodes.iter().enumerate() {
            if let Op::MatMul(a, b) = n.op {
                if let Op::Param(p) = g.node(a).op {
                    self.wslot[i] = Some((p, ncols[p]));
                    self.wbatch[p].products.push((NodeId(i as u32), b));
                    ncols[p] += g.node(b).cols;
                }
            }
        }
        for (k, &cols) in ncols.iter().enumerate() {
            let wb = &self.wbatch[k];
            let len = if cols > 0 { wb.rows * wb.inner } else { 0 };
            let oom = |e: AllocError| self.out_of_memory(e, "the weight gradients");
            let acc = memory::filled(len, 0.0).map_err(oom)?;
            let cols = memory::with_capacity(cols).map_err(oom)?;
            (self.wbatch[k].acc, self.wbatch[k].cols) = (acc, cols);
        }
        Ok(())
    }

    /// `out += Σ G Bᵀ` over the products `P · B` of parameter `p`: each product's adjoint G
    /// (final once its backward step ran) and value B read in place, column by column
    /// (`backprod::weight_gradient`).
    fn add_weight_gradient(&mut self, p: usize, out: &mut [f64]) {
        let g = self.graph;
        let wb = &mut self.wbatch[p];
        if wb.products.is_empty() {
            return;
        }
        wb.cols.clear();
        for &(m, b) in &wb.products {
            let (gm, bm) = (self.adj_off[m.index()], self.voff[b.index()]);
            wb.cols
                .extend((0..g.node(b).cols).map(|c| (gm + c * wb.rows, bm + c * wb.inner)));
        }
        backprod::weight_gradient(
            (wb.rows, wb.inner),
            &wb.cols,
            (&self.adj, &self.arena),
            &mut wb.acc,
            out,
        );
    }

    /// The backward step of `id` (its children prepared by `prepare_children`, which says
    /// which of the first two are `fresh`: written, not added to).
    pub(super) fn node_backward(
        &mut self,
        id: NodeId,
        fresh: [bool; 2],
        grad: &mut [f64],
        opts: EvalOptions,
    ) -> Result<(), EvalError> {
        let g = self.graph;
        let n = g.node(id);
        if let Op::Param(p) = n.op {
            let (o, s) = (g.params[p].offset, self.adj_off[id.index()]);
            for (gr, x) in grad[o..o + n.len()]
                .iter_mut()
                .zip(&self.adj[s..s + n.len()])
            {
                *gr += x;
            }
            self.add_weight_gradient(p, &mut grad[o..o + n.len()]);
            return Ok(());
        }
        let max_one = matches!(n.op, Op::Reduce(ReduceKind::Max, a) if self.max_passes_one(a));
        let (left, right) = self.adj.split_at_mut(self.adj_off[id.index()]);
        let gout = &right[..n.len()];
        let val = |c: NodeId| {
            let (ci, len) = (c.index(), g.node(c).len());
            coeffs(&self.arena, self.voff[ci], self.off[ci], 1, len)[0]
        };
        let aoff = &self.adj_off;
        let adj_of = |c: NodeId| -> (usize, usize) { (aoff[c.index()], g.node(c).len()) };
        let err = |m: String| EvalError {
            node: id,
            kind: EvalErrorKind::Domain(m),
        };
        match &n.op {
            Op::Const(_) | Op::Param(_) => {}
            Op::Unary(op, a) => {
                let (s, l) = adj_of(*a);
                let ga = &mut left[s..s + l];
                let back = if fresh[0] {
                    unary_back::<Set>(*op, val(*a), val(id), gout, ga)
                } else {
                    unary_back::<Acc>(*op, val(*a), val(id), gout, ga)
                };
                back.map_err(err)?;
            }
            Op::Binary(op, a, b) => binary_back(
                g,
                *op,
                (*a, val(*a)),
                (*b, val(*b)),
                n,
                gout,
                Adjoints {
                    left,
                    off: aoff,
                    fresh,
                    alias: [*a, *b].map(|c| !n.is_empty() && aoff[c.index()] == aoff[id.index()]),
                },
            ),
            Op::MatMul(a, b) => {
                let (na, nb) = (g.node(*a), g.node(*b));
                let gm = Mat::new(gout, n.rows, n.cols);
                if self.wslot[id.index()].is_some() {
                    // Staged: the weight gradient reads this adjoint and B's value in place.
                } else if na.varies {
                    let (s, l) = adj_of(*a);
                    gemm(
                        1.0,
                        gm,
                        Mat::new(val(*b), nb.rows, nb.cols).t(),
                        1.0,
                        &mut left[s..s + l],
                    );
                }
                if nb.varies && n.len() == 1 {
                    // A one-row `A` and one column: `Aᵀ g` is `(0 + aᵢ g) + yᵢ` per entry,
                    // what the one-column kernel computes (inner products of one term).
                    let (s, l) = adj_of(*b);
                    let (va, gg) = (val(*a), gout[0]);
                    for (y, ai) in left[s..s + l].iter_mut().zip(va) {
                        *y += 0.0 + ai * gg;
                    }
                } else if nb.varies {
                    let (s, l) = adj_of(*b);
                    gemm(
                        1.0,
                        Mat::new(val(*a), na.rows, na.cols).t(),
                        gm,
                        1.0,
                        &mut left[s..s + l],
                    );
                }
            }
            Op::Transpose(a) => {
                let na = g.node(*a);
                let (s, _) = adj_of(*a);
                for i in 0..na.rows {
                    for j in 0..na.cols {
                        left[s + i + j * na.rows] += gout[j + i * na.cols];
                    }
                }
            }
            Op::Reduce(ReduceKind::Max, a) => {
                // The first entry with the largest value (ties to the first, as max(a, b)).
                let na = g.node(*a);
                let group = na.group_len();
                let (s, _) = adj_of(*a);
                let va = val(*a);
                for (gi, gg) in gout.iter().enumerate() {
                    let entries = &va[gi * group..(gi + 1) * group];
                    let mut at = 0;
                    for (i, v) in entries.iter().enumerate() {
                        if *v > entries[at] {
                            at = i;
                        }
                    }
                    if max_one {
                        // The only contribution so far: held as one entry.
                        self.touched[a.index()] = Adj::One(at, 0.0 + gg);
                        continue;
                    }
                    left[s + gi * group + at] += gg;
                }
            }
            Op::Reduce(kind, a) => {
                let na = g.node(*a);
                let group = na.group_len();
                let (s, l) = adj_of(*a);
                let (va, vo) = (val(*a), val(id));
                if *kind == ReduceKind::Sum && group > 0 {
                    // ∂Σ/∂a = 1: each group's adjoint added to its entries.
                    for (ga, gg) in left[s..s + l].chunks_exact_mut(group).zip(gout) {
                        if fresh[0] {
                            ga.fill(*gg);
                        } else {
                            for x in ga {
                                *x += gg;
                            }
                        }
                    }
                    return Ok(());
                }
                for (i, ga) in left[s..s + l].iter_mut().enumerate() {
                    let gg = gout[i / group];
                    let d = match kind {
                        ReduceKind::Sum => gg,
                        ReduceKind::SqNorm => 2.0 * va[i] * gg,
                        ReduceKind::Norm1 => sign_sel(va[i]) * gg,
                        // a / ‖a‖; at a = 0 the selection is 0, the least-norm subgradient.
                        ReduceKind::Norm2 if vo[i / group] > 0.0 => va[i] / vo[i / group] * gg,
                        ReduceKind::Norm2 | ReduceKind::Max => 0.0,
                    };
                    if fresh[0] {
                        *ga = d;
                    } else {
                        *ga += d;
                    }
                }
            }
            Op::Dot(a, b) => dot_back(
                g,
                (*a, val(*a)),
                (*b, val(*b)),
                n,
                gout,
                Adjoints {
                    left,
                    off: aoff,
                    fresh: [false; 2],
                    alias: [false; 2],
                },
            ),
            Op::Element { arg, row, col } => {
                let na = g.node(*arg);
                let (s, _) = adj_of(*arg);
                for (j, gg) in gout.iter().enumerate() {
                    let src = if n.batched {
                        row + j * na.rows
                    } else {
                        row + col * na.rows
                    };
                    left[s + src] += gg;
                }
            }
            Op::Gather {
                arg,
                start,
                step,
                len: m,
            } => {
                let na = g.node(*arg);
                let group = na.group_len();
                let (s, _) = adj_of(*arg);
                if *step == 1 {
                    // A contiguous range: a slice add per column.
                    for (j, gj) in gout.chunks_exact(*m).enumerate() {
                        let at = s + j * group + start;
                        if fresh[0] {
                            left[at..at + m].copy_from_slice(gj);
                            continue;
                        }
                        for (x, gg) in left[at..at + m].iter_mut().zip(gj) {
                            *x += gg;
                        }
                    }
                    return Ok(());
                }
                for j in 0..n.cols {
                    for k in 0..*m {
                        left[s + j * group + gather_index(*start, *step, k)] += gout[k + j * m];
                    }
                }
            }
            Op::Call { func, params, arg } => {
                let va = val(*arg);
                let l = va.len();
                let (s, _) = adj_of(*arg);
                let fp = &g.fparams[params.clone()];
                if self.calls.relu_backward(
                    *func,
                    fp,
                    opts.ztol,
                    va,
                    gout,
                    &mut left[s..s + l],
                    false,
                ) {
                    return Ok(());
                }
                let [t0, t1] = &mut self.tmp;
                let a = [va, &self.ones[..l], &[][..]];
                let f = [&mut t0[..l], &mut t1[..l], &mut [][..]];
                self.calls
                    .call(*func, fp, Order::One, opts.ztol, a, f)
                    .map_err(|e| EvalError::call(id, e))?;
                for i in 0..l {
                    left[s + i] += gout[i] * t1[i];
                }
            }
            Op::Accumulate {
                terms,
                scale,
                per_column_mean,
            } => {
                for &t in &g.lists[terms.clone()] {
                    let nt = g.node(t);
                    if !nt.varies {
                        continue;
                    }
                    let w = g.accumulate_weight(t, *scale, *per_column_mean);
                    let (s, l) = adj_of(t);
                    for x in &mut left[s..s + l] {
                        *x += w * gout[0];
                    }
                }
            }
        }
        Ok(())
    }
}

/// The weight gradient of one parameter `P` (rows × inner): the products `P · B` that use it,
/// whose adjoints G and right operands B it reads in place, so Σ G Bᵀ is one product.
#[derive(Debug, Clone)]
pub(super) struct WeightBatch {
    rows: usize,
    inner: usize,
    /// The products and their right operands, in graph order.
    products: Vec<(NodeId, NodeId)>,
    /// Their columns in the current pass: (offset in the adjoints, offset in the values).
    cols: Vec<(usize, usize)>,
    /// The sums before they are added to the gradient (rows × inner).
    acc: Vec<f64>,
}

/// What `prepare_children` does with a varying child, fixed once the adjoint offsets are.
#[derive(Debug, Clone, Copy)]
pub(super) enum Prep {
    /// The child shares its consumer's adjoint: marked as in storage.
    Alias(NodeId),
    /// The child's adjoint is a view of its operand's (the second): the operand's is put in
    /// storage.
    View(NodeId, NodeId),
    /// The child's own adjoint, its slot among the children: written, zeroed or densified.
    Own(NodeId, usize),
}

/// The state of a node's adjoint during one reverse pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Adj {
    /// No contribution yet: the adjoint is zero (its storage holds stale numbers).
    Zero,
    /// Zero except `v` at entry `at` (its storage stale): what an n-ary max passes down.
    One(usize, f64),
    /// In storage.
    Dense,
}

/// Whether `prepare_children` lets children be written rather than zeroed and added to, and
/// an n-ary max pass one entry down (the unit tests compare with the plain pass).
#[inline(always)]
pub(super) fn fast_paths() -> bool {
    #[cfg(test)]
    return !tests::PLAIN.get();
    #[cfg(not(test))]
    true
}

/// Which of the first two children of `n` its backward step writes at every entry (so a
/// child without contributions yet can be written instead of zeroed and added to).
fn writes_every_entry(g: &Graph, n: &Node) -> [bool; 2] {
    match n.op {
        Op::Unary(..) => [true, false],
        Op::Binary(_, a, b) => {
            let (na, nb) = (g.node(a), g.node(b));
            if na.len() == n.len() && nb.len() == n.len() {
                [true, true]
            } else {
                [na.len() == n.len() && nb.len() == 1 && !nb.varies, false]
            }
        }
        Op::Reduce(kind, _) => [kind != ReduceKind::Max, false],
        Op::Gather {
            arg,
            start,
            step,
            len,
        } => {
            let na = g.node(arg);
            let group = na.group_len();
            [start == 0 && step == 1 && len == group, false]
        }
        _ => [false, false],
    }
}

/// The slope of a unary operation at `x` when it is finite wherever the value is (the
/// operations an adjoint held as one entry passes through); `None` for the others.
fn one_slope(op: ElemUnary, x: f64) -> Option<f64> {
    match op {
        ElemUnary::Neg => Some(-1.0),
        ElemUnary::Scale(s) if s.is_finite() => Some(s),
        ElemUnary::Abs => Some(sign_sel(x)),
        ElemUnary::PowI(2) => Some(2.0 * x),
        ElemUnary::PowI(k) if k >= 0 => super::kernels::powi_parts(x, k).map(|p| p.1),
        _ => None,
    }
}

/// How a backward step stores a contribution: added, or written (the first one).
trait Put {
    /// False for [`Skip`], whose operand's storage is not even indexed.
    const STORES: bool = true;
    fn put(x: &mut f64, v: f64);
}

/// `x += v`.
struct Acc;

/// `x = v`: the first contribution (the same number as 0 + v, up to the sign of a zero,
/// which adjoints only pass on to sums that start from +0).
struct Set;

impl Put for Acc {
    #[inline(always)]
    fn put(x: &mut f64, v: f64) {
        *x += v;
    }
}

impl Put for Set {
    #[inline(always)]
    fn put(x: &mut f64, v: f64) {
        *x = v;
    }
}

/// Nothing: the operand shares the node's adjoint, which is its contribution 1 · g already.
struct Skip;

impl Put for Skip {
    const STORES: bool = false;
    #[inline(always)]
    fn put(_: &mut f64, _: f64) {}
}

/// The sign selection at 0 is +1 (the right derivative of |x|).
fn sign_sel(x: f64) -> f64 {
    if x < 0.0 {
        -1.0
    } else {
        1.0
    }
}

fn unary_back<P: Put>(
    op: ElemUnary,
    va: &[f64],
    vo: &[f64],
    gout: &[f64],
    ga: &mut [f64],
) -> Result<(), String> {
    // The common operations in loops of their own (the operation hoisted out of the loop).
    match op {
        ElemUnary::Neg => slope_loop::<P>(ga, va, gout, |_| -1.0),
        ElemUnary::Scale(s) => slope_loop::<P>(ga, va, gout, |_| s),
        ElemUnary::Abs => slope_loop::<P>(ga, va, gout, sign_sel),
        ElemUnary::PowI(2) => slope_loop::<P>(ga, va, gout, |a| 2.0 * a),
        _ => return unary_back_each::<P>(op, va, vo, gout, ga),
    }
    Ok(())
}

/// The other operations, one entry at a time.
fn unary_back_each<P: Put>(
    op: ElemUnary,
    va: &[f64],
    vo: &[f64],
    gout: &[f64],
    ga: &mut [f64],
) -> Result<(), String> {
    for i in 0..ga.len() {
        let d = match op {
            ElemUnary::Neg => -1.0,
            ElemUnary::Scale(s) => s,
            ElemUnary::Abs => sign_sel(va[i]),
            ElemUnary::Exp => vo[i],
            ElemUnary::Log => 1.0 / va[i],
            ElemUnary::Sqrt if vo[i] > 0.0 => 0.5 / vo[i],
            ElemUnary::Sqrt => return Err("sqrt has no derivative at 0".to_owned()),
            ElemUnary::PowI(k) => super::kernels::powi_parts(va[i], k).map_or(f64::NAN, |p| p.1),
            ElemUnary::Pow(p) => pow_slope(va[i], p)?,
        };
        P::put(&mut ga[i], d * gout[i]);
    }
    Ok(())
}

/// `ga += d(a) · gout` (or `=`) entrywise, monomorphized per slope `d`.
#[inline(always)]
fn slope_loop<P: Put>(ga: &mut [f64], va: &[f64], gout: &[f64], d: impl Fn(f64) -> f64) {
    for ((x, &a), gg) in ga.iter_mut().zip(va).zip(gout) {
        P::put(x, d(a) * gg);
    }
}

/// d/da of `pow(a, p)`: p·a^(p−1); at a = 0 (non-integer p) 0 for p > 1, else refused.
fn pow_slope(a: f64, p: f64) -> Result<f64, String> {
    if p.fract() == 0.0 && p.abs() <= i32::MAX as f64 {
        return Ok(super::kernels::powi_parts(a, p as i32).map_or(f64::NAN, |q| q.1));
    }
    match a {
        a if a > 0.0 => Ok(p * a.powf(p - 1.0)),
        a if a == 0.0 && p > 1.0 => Ok(0.0),
        _ => Err(format!("pow(a, {p}) has no derivative at a = {a}")),
    }
}

/// The adjoint arena below the current node, and every node's offset in it.
struct Adjoints<'a> {
    left: &'a mut [f64],
    off: &'a [usize],
    /// Which of the first two operands' adjoints the step writes instead of adding to.
    fresh: [bool; 2],
    /// Which of them share the node's adjoint (see `unit_slope_aliases`): left alone.
    alias: [bool; 2],
}

fn binary_back(
    g: &Graph,
    op: ElemBinary,
    a: (NodeId, &[f64]),
    b: (NodeId, &[f64]),
    n: &Node,
    gout: &[f64],
    adj: Adjoints<'_>,
) {
    let mode = |k: usize| match (adj.alias[k], adj.fresh[k]) {
        (true, _) => 2,
        (false, fresh) => u8::from(fresh),
    };
    match (mode(0), mode(1)) {
        (0, 0) => binary_back_op::<Acc, Acc>(g, op, a, b, n, gout, adj),
        (1, 0) => binary_back_op::<Set, Acc>(g, op, a, b, n, gout, adj),
        (0, 1) => binary_back_op::<Acc, Set>(g, op, a, b, n, gout, adj),
        (1, 1) => binary_back_op::<Set, Set>(g, op, a, b, n, gout, adj),
        (2, 0) => binary_back_op::<Skip, Acc>(g, op, a, b, n, gout, adj),
        (2, 1) => binary_back_op::<Skip, Set>(g, op, a, b, n, gout, adj),
        (0, 2) => binary_back_op::<Acc, Skip>(g, op, a, b, n, gout, adj),
        (1, 2) => binary_back_op::<Set, Skip>(g, op, a, b, n, gout, adj),
        _ => binary_back_op::<Skip, Skip>(g, op, a, b, n, gout, adj),
    }
}

/// `binary_back` with the stores of the two operands' contributions chosen (see [`Put`]).
fn binary_back_op<PA: Put, PB: Put>(
    g: &Graph,
    op: ElemBinary,
    a: (NodeId, &[f64]),
    b: (NodeId, &[f64]),
    n: &Node,
    gout: &[f64],
    adj: Adjoints<'_>,
) {
    let ctx = (g, a, b, n, gout);
    match op {
        ElemBinary::Add => binary_back_with::<PA, PB>(ctx, adj, |_, _| (1.0, 1.0)),
        ElemBinary::Sub => binary_back_with::<PA, PB>(ctx, adj, |_, _| (1.0, -1.0)),
        ElemBinary::Mul => binary_back_with::<PA, PB>(ctx, adj, |x, y| (y, x)),
        ElemBinary::Div => binary_back_with::<PA, PB>(ctx, adj, |x, y| (1.0 / y, -x / (y * y))),
        ElemBinary::Max => {
            binary_back_with::<PA, PB>(
                ctx,
                adj,
                |x, y| if x >= y { (1.0, 0.0) } else { (0.0, 1.0) },
            )
        }
        ElemBinary::Min => {
            binary_back_with::<PA, PB>(
                ctx,
                adj,
                |x, y| if x <= y { (1.0, 0.0) } else { (0.0, 1.0) },
            )
        }
    }
}

type BinaryBack<'a> = (
    &'a Graph,
    (NodeId, &'a [f64]),
    (NodeId, &'a [f64]),
    &'a Node,
    &'a [f64],
);

/// The adjoint loop of one elementwise operation with partial derivatives `d(x, y)`,
/// monomorphized per operation; operands of the output's shape take a flat loop.
#[inline(always)]
fn binary_back_with<PA: Put, PB: Put>(
    ctx: BinaryBack<'_>,
    adj: Adjoints<'_>,
    d: impl Fn(f64, f64) -> (f64, f64),
) {
    let (g, (a, va), (b, vb), n, gout) = ctx;
    let (na, nb) = (g.node(a), g.node(b));
    let (sa, sb) = (adj.off[a.index()], adj.off[b.index()]);
    let left = adj.left;
    if na.len() == n.len() && nb.len() == n.len() {
        for (i, gg) in gout.iter().enumerate() {
            let (da, db) = d(va[i], vb[i]);
            if na.varies && PA::STORES {
                PA::put(&mut left[sa + i], da * gg);
            }
            if nb.varies && PB::STORES {
                PB::put(&mut left[sb + i], db * gg);
            }
        }
        return;
    }
    if na.len() == n.len() && nb.len() == 1 && !nb.varies {
        if !PA::STORES {
            return;
        }
        // A constant scalar operand: only a's adjoint, read contiguously.
        for (i, gg) in gout.iter().enumerate() {
            PA::put(&mut left[sa + i], d(va[i], vb[0]).0 * gg);
        }
        return;
    }
    let ((ars, acs), (brs, bcs)) = (bstrides(na), bstrides(nb));
    for j in 0..n.cols {
        for i in 0..n.rows {
            let (ia, ib) = (i * ars + j * acs, i * brs + j * bcs);
            let gg = gout[i + j * n.rows];
            let (da, db) = d(va[ia], vb[ib]);
            if na.varies {
                left[sa + ia] += da * gg;
            }
            if nb.varies {
                left[sb + ib] += db * gg;
            }
        }
    }
}

fn dot_back(
    g: &Graph,
    (a, va): (NodeId, &[f64]),
    (b, vb): (NodeId, &[f64]),
    n: &Node,
    gout: &[f64],
    adj: Adjoints<'_>,
) {
    let (na, nb) = (g.node(a), g.node(b));
    let (sa, sb) = (adj.off[a.index()], adj.off[b.index()]);
    let left = adj.left;
    for (gi, gg) in gout.iter().enumerate() {
        for (ia, ib) in dot_pairs(na, nb, n, gi) {
            if na.varies {
                left[sa + ia] += gg * vb[ib];
            }
            if nb.varies {
                left[sb + ib] += gg * va[ia];
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use crate::eval::test_models::{graph_of, point_with_kinks};
    use crate::eval::{EvalOptions, Evaluator};
    use crate::registry::Order;

    thread_local! {
        /// Turns the fast paths of the reverse pass off (see `fast_paths`).
        pub(in crate::eval) static PLAIN: Cell<bool> = const { Cell::new(false) };
    }

    /// The gradient with written-not-added adjoints, one-entry adjoints below n-ary maxes and
    /// gathers as views must equal, bit for bit, the plain pass (zeroed adjoints, dense
    /// adjoints, copied gathers), at ties of the maxes and at zeros of abs.
    #[test]
    fn fast_paths_match_the_plain_pass() {
        let text = "const n = 41
param x: vec(n)
let chain = sum(i in 1..n-1, max(-x[i] - x[i+1], -x[i] - x[i+1] + x[i]^2 + x[i+1]^2 - 1))
let tops = max(i in 1..n, x[i]^2) + norminf(x) + max(i in 2..n, -2 * x[i]^3) + max(x) + min(x)
let smooth = max(i in 1..n, exp(x[i])) + sqnorm(x) + norm1(x) + sum(i in 1..n, abs(x[i]))
let diffs = sum(i in 1..n, x[i]^2 - abs(x[i])) - norm1(x) + (sqnorm(x) - 1)
minimize chain + tops + smooth + diffs + sum(i in 1..n-1, min(x[i], 0.5 * x[i+1]))
";
        let (r, g) = graph_of(text);
        let (x, d) = point_with_kinks(41);
        let opts = EvalOptions::default();
        let run = |views: bool, plain: bool| {
            let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
            if !views {
                ev.voff = ev.off[..g.nodes.len()].to_vec();
            }
            assert_eq!(ev.voff != ev.off[..g.nodes.len()], views);
            PLAIN.set(plain);
            let mut grad = vec![f64::NAN; x.len()];
            let f = ev.gradient(&x, &mut grad, opts);
            PLAIN.set(false);
            let f = f.unwrap_or_else(|e| panic!("{e}"));
            let t1 = ev.directional(&x, &d, Order::One, opts);
            let t2 = ev.directional(&x, &d, Order::Two, opts);
            let (t1, t2) = (
                t1.unwrap_or_else(|e| panic!("{e}")),
                t2.unwrap_or_else(|e| panic!("{e}")),
            );
            let mut bits = vec![f.to_bits(), t1.value.to_bits(), t2.value.to_bits()];
            bits.extend([t1.d1, t2.d1, t2.d2].map(|v| v.unwrap_or(f64::NAN).to_bits()));
            bits.extend([t1.active_kinks as u64, t2.active_kinks as u64]);
            bits.extend(grad.iter().map(|v| v.to_bits()));
            bits
        };
        let plain = run(false, true);
        assert_eq!(run(true, false), plain);
        assert_eq!(run(true, true), plain);
        assert_eq!(run(false, false), plain);
        // The point has ties: the gradient selection is not the zero vector.
        assert!(plain[8..].iter().any(|&b| f64::from_bits(b) != 0.0));
        assert!(plain[6] > 0, "kinks: {}", plain[6]);
    }
}
