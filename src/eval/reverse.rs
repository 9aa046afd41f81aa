//! Reverse mode: a gradient selection over the same graph, for solvers.
//!
//! Where f is differentiable this is ∇f. At a kink it is the derivative of the piece that the
//! lexicographic rule picks for a zero direction: abs and norm1 take sign +1 at 0, `max` and
//! `min` take their first argument at a tie, and plugin functions return their right
//! derivative φ′(a; +1) (so relu′(0) = 1). This is a selection, not a directional derivative.

use super::forward::{bstrides, coeffs, dot_pairs, gather_index};
use super::linalg::{gemm, Mat};
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
        let g = self.graph;
        // Adjoints are zeroed lazily, just before a node first receives a contribution, so the
        // zeroing happens in cache instead of as one pass over the whole arena.
        self.touched.fill(false);
        grad.fill(0.0);
        let value = self.coeff(g.objective, 0)[0];
        if !g.node(g.objective).varies {
            return Ok(value);
        }
        self.adj[self.adj_off[g.objective.index()]] = 1.0;
        self.touched[g.objective.index()] = true;
        for i in (0..self.varying.len()).rev() {
            let id = self.varying[i];
            if self.touched[id.index()] {
                self.prepare_children(id);
                self.node_backward(id, grad, opts)?;
            } else {
                self.skip_untouched(id, grad);
            }
        }
        Ok(value)
    }

    /// Zero the adjoints of the varying children of `id` that have not been touched yet.
    fn prepare_children(&mut self, id: NodeId) {
        let g = self.graph;
        for c in g.children(id) {
            let ci = c.index();
            if g.node(c).varies && !self.touched[ci] {
                let s = self.adj_off[ci];
                self.adj[s..s + g.node(c).len()].fill(0.0);
                self.touched[ci] = true;
            }
        }
    }

    /// A node with a zero adjoint contributes nothing, except that a staged weight product
    /// must stage zeros and a parameter must still collect its staged products.
    fn skip_untouched(&mut self, id: NodeId, grad: &mut [f64]) {
        let n = self.graph.node(id);
        if let Some((p, col)) = self.wslot[id.index()] {
            self.wbatch[p].g[col * n.rows..(col + n.cols) * n.rows].fill(0.0);
        }
        if let Op::Param(p) = n.op {
            let o = self.graph.params[p].offset;
            self.wbatch[p].add_to(&mut grad[o..o + n.len()]);
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
        let touched = memory::filled(self.graph.nodes.len(), false).map_err(oom)?;
        let ones = memory::filled(max_len, 1.0).map_err(oom)?;
        let tmp = [
            memory::filled(max_len, 0.0).map_err(oom)?,
            memory::filled(max_len, 0.0).map_err(oom)?,
        ];
        (self.adj, self.touched, self.ones, self.tmp) = (adj, touched, ones, tmp);
        self.adj_off.push(total);
        self.stage_weight_products()
    }

    /// Give every product `P · B` with a parameter `P` its columns in P's staging buffers.
    fn stage_weight_products(&mut self) -> Result<(), EvalError> {
        let g = self.graph;
        self.wbatch = g
            .params
            .iter()
            .map(|p| WeightBatch {
                rows: p.shape.rows,
                inner: p.shape.cols,
                cols: 0,
                g: Vec::new(),
                b: Vec::new(),
            })
            .collect();
        self.wslot = vec![None; g.nodes.len()];
        for (i, n) in g.nodes.iter().enumerate() {
            if let Op::MatMul(a, b) = n.op {
                if let Op::Param(p) = g.node(a).op {
                    let wb = &mut self.wbatch[p];
                    self.wslot[i] = Some((p, wb.cols));
                    wb.cols += g.node(b).cols;
                }
            }
        }
        for k in 0..self.wbatch.len() {
            let (rows, inner, cols) = {
                let wb = &self.wbatch[k];
                (wb.rows, wb.inner, wb.cols)
            };
            let oom = |e: AllocError| self.out_of_memory(e, "the weight gradients");
            let g = memory::filled(rows * cols, 0.0).map_err(oom)?;
            let b = memory::filled(inner * cols, 0.0).map_err(oom)?;
            (self.wbatch[k].g, self.wbatch[k].b) = (g, b);
        }
        Ok(())
    }

    fn node_backward(
        &mut self,
        id: NodeId,
        grad: &mut [f64],
        opts: EvalOptions,
    ) -> Result<(), EvalError> {
        let g = self.graph;
        let n = g.node(id);
        let (left, right) = self.adj.split_at_mut(self.adj_off[id.index()]);
        let gout = &right[..n.len()];
        let val = |c: NodeId| coeffs(&self.arena, self.off[c.index()], 1, g.node(c).len())[0];
        let aoff = &self.adj_off;
        let adj_of = |c: NodeId| -> (usize, usize) { (aoff[c.index()], g.node(c).len()) };
        let err = |m: String| EvalError {
            node: id,
            kind: EvalErrorKind::Domain(m),
        };
        match &n.op {
            Op::Const(_) => {}
            Op::Param(p) => {
                let o = g.params[*p].offset;
                for (gr, x) in grad[o..o + gout.len()].iter_mut().zip(gout) {
                    *gr += x;
                }
                self.wbatch[*p].add_to(&mut grad[o..o + gout.len()]);
            }
            Op::Unary(op, a) => {
                let (s, l) = adj_of(*a);
                unary_back(*op, val(*a), val(id), gout, &mut left[s..s + l]).map_err(err)?;
            }
            Op::Binary(op, a, b) => binary_back(
                g,
                *op,
                (*a, val(*a)),
                (*b, val(*b)),
                n,
                gout,
                Adjoints { left, off: aoff },
            ),
            Op::MatMul(a, b) => {
                let (na, nb) = (g.node(*a), g.node(*b));
                let gm = Mat::new(gout, n.rows, n.cols);
                if let Some((p, col)) = self.wslot[id.index()] {
                    let wb = &mut self.wbatch[p];
                    wb.g[col * n.rows..(col + n.cols) * n.rows].copy_from_slice(gout);
                    wb.b[col * nb.rows..(col + nb.cols) * nb.rows].copy_from_slice(val(*b));
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
                if nb.varies {
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
                let group = if na.batched { na.rows } else { na.len() };
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
                    left[s + gi * group + at] += gg;
                }
            }
            Op::Reduce(kind, a) => {
                let na = g.node(*a);
                let group = if na.batched { na.rows } else { na.len() };
                let (s, l) = adj_of(*a);
                let (va, vo) = (val(*a), val(id));
                if *kind == ReduceKind::Sum && group > 0 {
                    // ∂Σ/∂a = 1: each group's adjoint added to its entries.
                    for (ga, gg) in left[s..s + l].chunks_exact_mut(group).zip(gout) {
                        for x in ga {
                            *x += gg;
                        }
                    }
                    return Ok(());
                }
                for (i, ga) in left[s..s + l].iter_mut().enumerate() {
                    let gg = gout[i / group];
                    *ga += match kind {
                        ReduceKind::Sum => gg,
                        ReduceKind::SqNorm => 2.0 * va[i] * gg,
                        ReduceKind::Norm1 => sign_sel(va[i]) * gg,
                        // a / ‖a‖; at a = 0 the selection is 0, the least-norm subgradient.
                        ReduceKind::Norm2 if vo[i / group] > 0.0 => va[i] / vo[i / group] * gg,
                        ReduceKind::Norm2 | ReduceKind::Max => 0.0,
                    };
                }
            }
            Op::Dot(a, b) => dot_back(
                g,
                (*a, val(*a)),
                (*b, val(*b)),
                n,
                gout,
                Adjoints { left, off: aoff },
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
                let group = if na.batched { na.rows } else { na.len() };
                let (s, _) = adj_of(*arg);
                if *step == 1 {
                    // A contiguous range: a slice add per column.
                    for (j, gj) in gout.chunks_exact(*m).enumerate() {
                        let at = s + j * group + start;
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
                let [t0, t1] = &mut self.tmp;
                let a = [va, &self.ones[..l], &[][..]];
                let f = [&mut t0[..l], &mut t1[..l], &mut [][..]];
                self.registry
                    .call(
                        *func,
                        &g.fparams[params.clone()],
                        Order::One,
                        opts.ztol,
                        a,
                        f,
                    )
                    .map_err(|e| EvalError::call(id, e))?;
                let (s, _) = adj_of(*arg);
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

/// Staging for the weight gradient of one parameter `P` (rows × inner): the adjoints G and
/// right operands B of every product `P · B`, side by side, so Σ G Bᵀ is one product.
#[derive(Debug, Clone)]
pub(super) struct WeightBatch {
    rows: usize,
    inner: usize,
    cols: usize,
    g: Vec<f64>,
    b: Vec<f64>,
}

impl WeightBatch {
    /// `out += Σ G Bᵀ` over the staged products.
    fn add_to(&self, out: &mut [f64]) {
        if self.cols > 0 {
            let gs = Mat::new(&self.g, self.rows, self.cols);
            let bs = Mat::new(&self.b, self.inner, self.cols).t();
            gemm(1.0, gs, bs, 1.0, out);
        }
    }
}

/// The sign selection at 0 is +1 (the right derivative of |x|).
fn sign_sel(x: f64) -> f64 {
    if x < 0.0 {
        -1.0
    } else {
        1.0
    }
}

fn unary_back(
    op: ElemUnary,
    va: &[f64],
    vo: &[f64],
    gout: &[f64],
    ga: &mut [f64],
) -> Result<(), String> {
    // The common operations in loops of their own (the operation hoisted out of the loop).
    match op {
        ElemUnary::Neg => slope_loop(ga, va, gout, |_| -1.0),
        ElemUnary::Scale(s) => slope_loop(ga, va, gout, |_| s),
        ElemUnary::Abs => slope_loop(ga, va, gout, sign_sel),
        ElemUnary::PowI(2) => slope_loop(ga, va, gout, |a| 2.0 * a),
        _ => return unary_back_each(op, va, vo, gout, ga),
    }
    Ok(())
}

/// The other operations, one entry at a time.
fn unary_back_each(
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
        ga[i] += d * gout[i];
    }
    Ok(())
}

/// `ga += d(a) · gout` entrywise, monomorphized per slope `d`.
#[inline(always)]
fn slope_loop(ga: &mut [f64], va: &[f64], gout: &[f64], d: impl Fn(f64) -> f64) {
    for ((x, &a), gg) in ga.iter_mut().zip(va).zip(gout) {
        *x += d(a) * gg;
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
    let ctx = (g, a, b, n, gout);
    match op {
        ElemBinary::Add => binary_back_with(ctx, adj, |_, _| (1.0, 1.0)),
        ElemBinary::Sub => binary_back_with(ctx, adj, |_, _| (1.0, -1.0)),
        ElemBinary::Mul => binary_back_with(ctx, adj, |x, y| (y, x)),
        ElemBinary::Div => binary_back_with(ctx, adj, |x, y| (1.0 / y, -x / (y * y))),
        ElemBinary::Max => binary_back_with(
            ctx,
            adj,
            |x, y| if x >= y { (1.0, 0.0) } else { (0.0, 1.0) },
        ),
        ElemBinary::Min => binary_back_with(
            ctx,
            adj,
            |x, y| if x <= y { (1.0, 0.0) } else { (0.0, 1.0) },
        ),
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
fn binary_back_with(ctx: BinaryBack<'_>, adj: Adjoints<'_>, d: impl Fn(f64, f64) -> (f64, f64)) {
    let (g, (a, va), (b, vb), n, gout) = ctx;
    let (na, nb) = (g.node(a), g.node(b));
    let (sa, sb) = (adj.off[a.index()], adj.off[b.index()]);
    let left = adj.left;
    if na.len() == n.len() && nb.len() == n.len() {
        for (i, gg) in gout.iter().enumerate() {
            let (da, db) = d(va[i], vb[i]);
            if na.varies {
                left[sa + i] += da * gg;
            }
            if nb.varies {
                left[sb + i] += db * gg;
            }
        }
        return;
    }
    if na.len() == n.len() && nb.len() == 1 && !nb.varies {
        // A constant scalar operand: only a's adjoint, read contiguously.
        for (i, gg) in gout.iter().enumerate() {
            left[sa + i] += d(va[i], vb[0]).0 * gg;
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
