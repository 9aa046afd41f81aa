//! The value pass as a flat list of steps, built once per evaluator (on its first value pass,
//! and again after [`Evaluator::share`] moves the values of views): the common operations of a
//! recurrent model — matrix products, `+`, `−`, `×` of operands of the output's shape or of a
//! column broadcast over its columns, registry functions (the activation) and `sqnorm` — with
//! their operands' offsets resolved, so a step reads
//! no graph node, builds no coefficient slices and takes no branch per entry; every other node
//! goes through `Frame::node`. Each step runs the kernel the plain pass runs, on the same numbers
//! in the same order, and writes the node's own value buffer, so the values (and everything that
//! reads them: `coeff`, reverse mode, the certificates) are the same to the bit
//! (`eval::plan::tests::the_plan_computes_the_plain_values`).
//!
//! A recurrent cell `u = (W h₋ + V x) + b` (then `h = φ(u)`) is one step ([`Step::Cell`]): the
//! two products go to a scratch buffer that stays in the cache, their sum and `+ b` are formed
//! entry by entry into `u`'s buffer, and the activation reads `u` from there, so a step of a
//! batch writes two node buffers instead of five. The products and their sum (`p = W h₋`,
//! `q = V x`, `s = p + q`) are then not written ([`Plan::elided`]): each is read only by the
//! `+` that consumes it (its one consumer), and no rule of `+` reads its operands' values — not
//! reverse mode, the linearization or the kink tests — so no pass reads them; layers, the
//! objective and the loss are never elided, and [`Evaluator::value_written`] tells the readers
//! of arbitrary nodes (`check_finite`, the carried values of `carry.rs`) which to skip. The
//! numbers are those of the separate steps, in the same order, so every written value keeps its
//! bits.

use super::forward::Frame;
use super::linalg::{gemm, gemm_ahead, matvec, Mat};
use super::{load_param, EvalError, Evaluator};
use crate::graph::{ElemBinary, Graph, NodeId, Op, ReduceKind};
use crate::registry::{FunctionId, Order};

/// One step of the value pass.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    /// Parameter `p` copied from θ into node `id`.
    Param(NodeId, usize),
    /// `out = A B`: `A` (`rows × inner`) at `a`, `B` (`inner × cols`) at `b`.
    MatMul {
        a: usize,
        b: usize,
        out: usize,
        rows: usize,
        inner: usize,
        cols: usize,
    },
    /// `out = x op y` entrywise over `len` entries, `x` at `a` and `y` at `b`.
    Binary {
        op: Arith,
        a: usize,
        b: usize,
        out: usize,
        len: usize,
        shape: Broadcast,
    },
    /// Node `id`, an elementwise registry function: its value at `out` from its argument's at
    /// `a` (`len` entries), with the constant parameters `Graph::fparams[params]`.
    Call {
        id: NodeId,
        func: FunctionId,
        params: (usize, usize),
        a: usize,
        out: usize,
        len: usize,
    },
    /// `out[g] = Σ x²` over each group of `group` entries of `x` at `a` (`groups` groups), each
    /// sum from 0 in entry order, as `forward::entrywise_sum` does.
    SqNorm {
        a: usize,
        out: usize,
        group: usize,
        groups: usize,
    },
    /// A recurrent cell of a batch: [`Plan::cells`]`[k]`.
    Cell(usize),
    /// Anything else, through `Frame::node`.
    Node(NodeId),
}

/// A recurrent cell of a batch: `u = (p + q) + b` into `out` (`len` entries) with the
/// products `p` and `q` formed in the scratch buffer, `b` at `b` of `u`'s shape or a column of
/// `column` rows repeated over `u`'s columns, then the activation `act` of `u`, if it follows
/// `u`. `p`, `q` and `p + q` are not written.
#[derive(Debug, Clone, Copy)]
pub(super) struct CellStep {
    p: Prod,
    q: Prod,
    b: usize,
    column: Option<usize>,
    out: usize,
    len: usize,
    act: Option<Act>,
}

/// A matrix product `A B` of a cell: `A` (`rows × inner`) at `a`, `B` (`inner × cols`) at `b`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prod {
    a: usize,
    b: usize,
    rows: usize,
    inner: usize,
    cols: usize,
}

/// The activation `h = φ(u)` of a cell: node `id`, written at `out`, as [`Step::Call`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Act {
    id: NodeId,
    func: FunctionId,
    params: (usize, usize),
    out: usize,
}

/// The value pass's steps, and the nodes whose values it does not write.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    pub(super) steps: Vec<Step>,
    /// The cells of [`Step::Cell`] (kept out of [`Step`], which stays small).
    pub(super) cells: Vec<CellStep>,
    /// Per node: whether the plan's pass leaves its value unwritten (the products and their sum
    /// inside a [`Step::Cell`], read by nothing else).
    pub(super) elided: Vec<bool>,
}

/// The smooth elementwise operations a step runs itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
}

/// How the two operands of a [`Step::Binary`] cover the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Broadcast {
    /// Both of the output's shape.
    Same,
    /// The second is a column of `rows` entries, repeated over the output's columns.
    ColumnRight { rows: usize },
    /// The first is such a column.
    ColumnLeft { rows: usize },
}

/// Whether value passes run the plan (the unit tests compare it with the plain pass).
#[inline(always)]
pub(super) fn enabled() -> bool {
    #[cfg(test)]
    return !tests::PLAIN.get();
    #[cfg(not(test))]
    true
}

/// The steps of the value pass over `varying` (in order), with the offsets `off` (blocks) and
/// `voff` (values) of the evaluator.
pub(super) fn build(g: &Graph, varying: &[NodeId], off: &[usize], voff: &[usize]) -> Plan {
    let mut uses = vec![0u32; g.nodes.len()];
    for i in 0..g.nodes.len() as u32 {
        for c in g.children(NodeId(i)) {
            uses[c.index()] += 1;
        }
    }
    // Nodes read by name from outside the pass: never elided.
    for id in [g.objective, g.loss]
        .into_iter()
        .chain(g.layers.iter().map(|l| l.node))
    {
        uses[id.index()] = u32::MAX;
    }
    let mut plan = Plan {
        steps: Vec::with_capacity(varying.len()),
        cells: Vec::new(),
        elided: vec![false; g.nodes.len()],
    };
    // The cells first: their products and sums come before them in evaluation order.
    let cells: Vec<Option<CellStep>> = (0..varying.len())
        .map(|i| {
            let next = varying.get(i + 1).copied();
            let (step, inner) = cell_at(g, varying[i], next, &uses, off, voff)?;
            for c in inner {
                plan.elided[c.index()] = true;
            }
            Some(step)
        })
        .collect();
    let mut fused = None;
    for (&id, cell) in varying.iter().zip(cells) {
        if fused == Some(id) || plan.elided[id.index()] {
            continue;
        }
        match cell {
            Some(cell) => {
                fused = cell.act.map(|a| a.id);
                plan.steps.push(Step::Cell(plan.cells.len()));
                plan.cells.push(cell);
            }
            None => plan.steps.push(step_of(g, id, off, voff)),
        }
    }
    plan
}

/// The cell whose `u` is `id` (`next`: the node after it, the activation if it reads `u`),
/// with its products and their sum: `u = s + b`, `s = p + q` (all of `u`'s shape, `b` too or
/// a column), `p` and `q` matrix products, each of `p`, `q`, `s` varying and with `u` or `s`
/// its only reader. Products and sums come before `u` in evaluation order and nothing else
/// reads them, so computing them at `u` changes no value.
fn cell_at(
    g: &Graph,
    id: NodeId,
    next: Option<NodeId>,
    uses: &[u32],
    off: &[usize],
    voff: &[usize],
) -> Option<(CellStep, [NodeId; 3])> {
    let n = g.node(id);
    let Op::Binary(ElemBinary::Add, s, b) = n.op else {
        return None;
    };
    let Op::Binary(ElemBinary::Add, p, q) = g.node(s).op else {
        return None;
    };
    let prod = |m: NodeId| match g.node(m).op {
        Op::MatMul(a, b) => Some(Prod {
            a: off[a.index()],
            b: off[b.index()],
            rows: g.node(a).rows,
            inner: g.node(a).cols,
            cols: g.node(b).cols,
        }),
        _ => None,
    };
    let (pp, qp) = (prod(p)?, prod(q)?);
    let full = |c: NodeId| g.node(c).rows == n.rows && g.node(c).cols == n.cols;
    let nb = g.node(b);
    let column = if full(b) {
        None
    } else if nb.rows == n.rows && nb.cols == 1 {
        Some(n.rows)
    } else {
        return None;
    };
    let inner = [p, q, s];
    // One column (a single sequence): the separate steps are as fast.
    let ok = n.cols > 1
        && inner
            .iter()
            .all(|&c| full(c) && g.node(c).varies && uses[c.index()] == 1);
    if !ok {
        return None;
    }
    let act = next.and_then(|h| match g.node(h).op {
        Op::Call {
            func,
            ref params,
            arg,
        } if arg == id => Some(Act {
            id: h,
            func,
            params: (params.start, params.end),
            out: off[h.index()],
        }),
        _ => None,
    });
    let step = CellStep {
        p: pp,
        q: qp,
        b: voff[b.index()],
        column,
        out: off[id.index()],
        len: n.len(),
        act,
    };
    Some((step, inner))
}

fn step_of(g: &Graph, id: NodeId, off: &[usize], voff: &[usize]) -> Step {
    let n = g.node(id);
    let out = off[id.index()];
    match n.op {
        Op::Param(p) => Step::Param(id, p),
        // What `Frame::matmul` does in a value pass: one product of the operands' blocks
        // (never views), alpha = 1, beta = 0.
        Op::MatMul(a, b) => {
            let (na, nb) = (g.node(a), g.node(b));
            Step::MatMul {
                a: off[a.index()],
                b: off[b.index()],
                out,
                rows: na.rows,
                inner: na.cols,
                cols: nb.cols,
            }
        }
        Op::Binary(op, a, b) => {
            let op = match op {
                ElemBinary::Add => Arith::Add,
                ElemBinary::Sub => Arith::Sub,
                ElemBinary::Mul => Arith::Mul,
                _ => return Step::Node(id),
            };
            let (na, nb) = (g.node(a), g.node(b));
            let full = |r: usize, c: usize| r == n.rows && c == n.cols;
            let column = |r: usize, c: usize| r == n.rows && c == 1;
            let shape = if full(na.rows, na.cols) && full(nb.rows, nb.cols) {
                Broadcast::Same
            } else if full(na.rows, na.cols) && column(nb.rows, nb.cols) && n.rows > 0 {
                Broadcast::ColumnRight { rows: n.rows }
            } else if column(na.rows, na.cols) && full(nb.rows, nb.cols) && n.rows > 0 {
                Broadcast::ColumnLeft { rows: n.rows }
            } else {
                return Step::Node(id);
            };
            Step::Binary {
                op,
                a: voff[a.index()],
                b: voff[b.index()],
                out,
                len: n.len(),
                shape,
            }
        }
        Op::Call {
            func,
            ref params,
            arg,
        } => Step::Call {
            id,
            func,
            params: (params.start, params.end),
            a: voff[arg.index()],
            out,
            len: n.len(),
        },
        Op::Reduce(ReduceKind::SqNorm, a) => {
            let na = g.node(a);
            Step::SqNorm {
                a: voff[a.index()],
                out,
                group: na.group_len(),
                groups: n.len(),
            }
        }
        _ => Step::Node(id),
    }
}

impl Evaluator<'_> {
    /// Whether value passes write the value of `id` (see [`Plan::elided`]): what
    /// [`Evaluator::coeff`] gives for a node that is not written is not its value at the last
    /// point.
    pub(super) fn value_written(&self, id: NodeId) -> bool {
        self.plan.as_ref().is_none_or(|p| !p.elided[id.index()])
    }

    /// The value pass (as `run::<1>` without a direction) through the plan; returns the number
    /// of active kinks.
    pub(super) fn run_plan(&mut self, theta: &[f64], frame_ztol: f64) -> Result<usize, EvalError> {
        if self.plan.is_none() {
            self.plan = Some(build(self.graph, &self.varying, &self.off, &self.voff));
        }
        let plan = self.plan.take().unwrap_or_default();
        let out = self.run_steps(&plan.steps, &plan.cells, theta, frame_ztol);
        self.plan = Some(plan);
        out
    }

    fn run_steps(
        &mut self,
        plan: &[Step],
        cells: &[CellStep],
        theta: &[f64],
        ztol: f64,
    ) -> Result<usize, EvalError> {
        let (mut frame, arena, _) = self.frame(ztol);
        let mut kinks = 0;
        for step in plan {
            match *step {
                Step::Param(id, p) => {
                    load_param::<1>(frame.graph, frame.off, arena, id, p, theta, None)
                }
                Step::MatMul {
                    a,
                    b,
                    out,
                    rows,
                    inner,
                    cols,
                } => {
                    let (left, right) = arena.split_at_mut(out);
                    if cols == 1 {
                        let (a, x) = (&left[a..a + rows * inner], &left[b..b + inner]);
                        matvec(a, x, &mut right[..rows]);
                        continue;
                    }
                    gemm(
                        1.0,
                        Mat::new(&left[a..a + rows * inner], rows, inner),
                        Mat::new(&left[b..b + inner * cols], inner, cols),
                        0.0,
                        &mut right[..rows * cols],
                    );
                }
                Step::Binary {
                    op,
                    a,
                    b,
                    out,
                    len,
                    shape,
                } => {
                    let (left, right) = arena.split_at_mut(out);
                    let o = &mut right[..len];
                    match op {
                        Arith::Add => binary(left, a, b, o, shape, |x, y| x + y),
                        Arith::Sub => binary(left, a, b, o, shape, |x, y| x - y),
                        Arith::Mul => binary(left, a, b, o, shape, |x, y| x * y),
                    }
                }
                Step::Call {
                    id,
                    func,
                    params,
                    a,
                    out,
                    len,
                } => {
                    let (left, right) = arena.split_at_mut(out);
                    kinks += frame
                        .calls
                        .call(
                            func,
                            &frame.graph.fparams[params.0..params.1],
                            Order::Zero,
                            ztol,
                            [&left[a..a + len], &[][..], &[][..]],
                            [&mut right[..len], &mut [][..], &mut [][..]],
                        )
                        .map_err(|e| EvalError::call(id, e))?;
                }
                Step::SqNorm {
                    a,
                    out,
                    group,
                    groups,
                } => {
                    let (left, right) = arena.split_at_mut(out);
                    let x = &left[a..a + group * groups];
                    for (o, g) in right[..groups].iter_mut().zip(x.chunks_exact(group.max(1))) {
                        *o = g.iter().fold(0.0, |acc, &v| acc + v * v);
                    }
                    if group == 0 {
                        right[..groups].fill(0.0);
                    }
                }
                Step::Cell(k) => kinks += run_cell(&mut frame, arena, &cells[k], ztol)?,
                Step::Node(id) => kinks += frame.node::<1>(arena, id)?,
            }
        }
        Ok(kinks)
    }
}

/// One [`Step::Cell`] (kept out of the loop of `run_steps`, whose other steps are small);
/// returns the activation's kinks.
#[inline(never)]
fn run_cell(
    frame: &mut Frame<'_>,
    arena: &mut [f64],
    cell: &CellStep,
    ztol: f64,
) -> Result<usize, EvalError> {
    let CellStep {
        p,
        q,
        b,
        column,
        out,
        len,
        act,
    } = *cell;
    let mut kinks = 0;
    let (left, right) = arena.split_at_mut(out);
    let (ps, qs) = frame.scratch[..2 * len].split_at_mut(len);
    multiply(left, &q, qs);
    // While W h₋ runs, the lines of u and h (which a batch writes fresh at
    // every step) are asked for, so their first writes do not miss.
    let h_lines = act.map_or(&[][..], |h| &right[h.out - out..h.out - out + len]);
    let ahead = if p.cols > 1 {
        [&right[..len], h_lines]
    } else {
        [&[][..], &[][..]]
    };
    multiply_ahead(left, &p, ps, ahead);
    let u = &mut right[..len];
    for ((o, &x), &y) in u.iter_mut().zip(&*ps).zip(&*qs) {
        *o = x + y;
    }
    // u = s + b, in place: each entry read, then written, by the same step.
    add_in_place(u, left, b, column);
    if let Some(h) = act {
        let (left, right) = arena.split_at_mut(h.out);
        kinks += frame
            .calls
            .call(
                h.func,
                &frame.graph.fparams[h.params.0..h.params.1],
                Order::Zero,
                ztol,
                [&left[out..out + len], &[][..], &[][..]],
                [&mut right[..len], &mut [][..], &mut [][..]],
            )
            .map_err(|e| EvalError::call(h.id, e))?;
    }
    Ok(kinks)
}

/// `out = A B` for a product of the plan, `A` and `B` in `left`: what `Frame::matmul` does in a
/// value pass (one product of the operands' blocks, never views; alpha = 1, beta = 0), with
/// one right-hand column through the one-column kernel directly (the path `gemm` takes).
fn multiply(left: &[f64], p: &Prod, out: &mut [f64]) {
    multiply_ahead(left, p, out, [&[], &[]]);
}

/// [`multiply`], asking for the cache lines of `ahead` meanwhile (`gemm_ahead`; not with one
/// column).
fn multiply_ahead(left: &[f64], p: &Prod, out: &mut [f64], ahead: [&[f64]; 2]) {
    let (a, b) = (
        &left[p.a..p.a + p.rows * p.inner],
        &left[p.b..p.b + p.inner * p.cols],
    );
    if p.cols == 1 {
        matvec(a, b, out);
    } else {
        gemm_ahead(
            Mat::new(a, p.rows, p.inner),
            Mat::new(b, p.inner, p.cols),
            out,
            ahead,
        );
    }
}

/// `o ← o + y` entrywise, `y` at `b` in `left`, of `o`'s shape or a column of `column` rows.
fn add_in_place(o: &mut [f64], left: &[f64], b: usize, column: Option<usize>) {
    match column {
        Some(rows) => {
            let col = &left[b..b + rows];
            for oc in o.chunks_exact_mut(rows) {
                for (o, &y) in oc.iter_mut().zip(col) {
                    *o += y;
                }
            }
        }
        None => {
            let len = o.len();
            for (o, &y) in o.iter_mut().zip(&left[b..b + len]) {
                *o += y;
            }
        }
    }
}

/// `o = op(x, y)` entrywise, `x` at `a` and `y` at `b` in `left`, broadcast as `shape` says.
#[inline(always)]
fn binary(
    left: &[f64],
    a: usize,
    b: usize,
    o: &mut [f64],
    shape: Broadcast,
    op: impl Fn(f64, f64) -> f64,
) {
    let len = o.len();
    match shape {
        Broadcast::Same => {
            for ((o, &x), &y) in o.iter_mut().zip(&left[a..a + len]).zip(&left[b..b + len]) {
                *o = op(x, y);
            }
        }
        Broadcast::ColumnRight { rows } => {
            let col = &left[b..b + rows];
            for (oc, xc) in o
                .chunks_exact_mut(rows)
                .zip(left[a..a + len].chunks_exact(rows))
            {
                for ((o, &x), &y) in oc.iter_mut().zip(xc).zip(col) {
                    *o = op(x, y);
                }
            }
        }
        Broadcast::ColumnLeft { rows } => {
            let col = &left[a..a + rows];
            for (oc, yc) in o
                .chunks_exact_mut(rows)
                .zip(left[b..b + len].chunks_exact(rows))
            {
                for ((o, &x), &y) in oc.iter_mut().zip(col).zip(yc) {
                    *o = op(x, y);
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use crate::diag::{render_plain, SourceFile};
    use crate::eval::{EvalOptions, Evaluator};
    use crate::graph::{self, ElemBinary, Graph, LowerOptions, NodeId, Op, SeqData};
    use crate::registry::{Order, Registry};

    thread_local! {
        /// Turns the plan off: value passes run `Frame::node` for every node.
        pub(super) static PLAIN: Cell<bool> = const { Cell::new(false) };
    }

    /// An Elman RNN over `sequences` sequences of 6 steps with activation `act`.
    pub(in crate::eval) fn rnn(act: &str, sequences: usize, r: &Registry) -> Graph {
        let text = format!(
            "data x: batch(seq(vec(3)))
data y: batch(seq(vec(2)))
param A: mat(2, 5)
param W: mat(5, 5)
param V: mat(5, 3)
param b: vec(5)
param c: vec(2)
layer h[0] = zeros(5)
layer u[t] = W * h[t-1] + V * x[t] + b
layer h[t] = {act}(u[t])
layer v[t] = A * h[t] + c
minimize mean(t, sqnorm(v[t] - y[t])) + 0.1 * sqnorm(W) + sum(b .* b) - sum(c - 1)
"
        );
        let m = crate::session::compile(&SourceFile::new("rnn.mco", text), r)
            .unwrap_or_else(|d| panic!("{}", render_plain(&d)));
        let seq = |width: usize, phase: f64| SeqData {
            steps: 6,
            sequences,
            values: (0..6 * width * sequences)
                .map(|i| (i as f64 * 0.61 + phase).sin())
                .collect(),
            warmup: 0,
        };
        let data = vec![seq(3, 0.0), seq(2, 1.0)];
        graph::lower(&m, &LowerOptions { data }).unwrap_or_else(|d| panic!("{}", render_plain(&d)))
    }

    /// θ with hidden unit 0 at a kink of relu at every step (its rows of W and V and b₀ zero,
    /// so u₀ = 0 exactly), and a direction that moves it.
    pub(in crate::eval) fn point(g: &Graph) -> (Vec<f64>, Vec<f64>) {
        let mut x: Vec<f64> = (0..g.n_params())
            .map(|i| 0.4 * (i as f64 * 1.7).sin())
            .collect();
        for p in &g.params {
            let rows = p.shape.rows;
            match p.name.as_str() {
                "W" | "V" => (0..p.shape.cols).for_each(|j| x[p.offset + j * rows] = 0.0),
                "b" => x[p.offset] = 0.0,
                _ => {}
            }
        }
        let d = (0..g.n_params()).map(|i| (i as f64 * 0.9).cos()).collect();
        (x, d)
    }

    /// Every written node's value (`skip`: the nodes the plan leaves unwritten), f, ∇f, f′ and
    /// f″ along a ray and the kink counts, as bits.
    fn pass_bits(g: &Graph, r: &Registry, plain: bool, skip: &[bool]) -> Vec<u64> {
        let (x, d) = point(g);
        let o = EvalOptions::default();
        let mut ev = Evaluator::new(g, r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
        PLAIN.set(plain);
        crate::eval::reverse::tests::PLAIN.set(plain);
        let f = ev.value(&x, o);
        let mut bits: Vec<u64> = (0..g.nodes.len() as u32)
            .filter(|&i| !skip[i as usize])
            .flat_map(|i| ev.coeff(NodeId(i), 0).to_vec())
            .map(f64::to_bits)
            .collect();
        let mut grad = vec![f64::NAN; x.len()];
        let fg = ev.gradient(&x, &mut grad, o);
        let t0 = ev.directional(&x, &d, Order::Zero, o);
        PLAIN.set(false);
        crate::eval::reverse::tests::PLAIN.set(false);
        let (f, fg, t0) = (
            f.unwrap_or_else(|e| panic!("{e}")),
            fg.unwrap_or_else(|e| panic!("{e}")),
            t0.unwrap_or_else(|e| panic!("{e}")),
        );
        let t1 = ev.directional(&x, &d, Order::One, o);
        let t2 = ev.directional(&x, &d, Order::Two, o);
        let (t1, t2) = (
            t1.unwrap_or_else(|e| panic!("{e}")),
            t2.unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(t1.value.to_bits(), f.to_bits(), "f′ pass's value");
        bits.extend(
            [
                f,
                fg,
                t0.value,
                t2.value,
                t1.d1.unwrap_or(f64::NAN),
                t2.d2.unwrap_or(f64::NAN),
            ]
            .map(f64::to_bits),
        );
        bits.extend([t0.active_kinks, t1.active_kinks, t2.active_kinks].map(|k| k as u64));
        bits.extend(grad.iter().map(|v| v.to_bits()));
        bits
    }

    /// The nodes the plan of `g` leaves unwritten, each checked to have one reader, a `+` (whose
    /// rules read no operand's value).
    fn elided(g: &Graph, r: &Registry) -> Vec<bool> {
        let mut ev = Evaluator::new(g, r, Order::Zero).unwrap_or_else(|e| panic!("{e}"));
        ev.value(&point(g).0, EvalOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let skip = ev
            .plan
            .as_ref()
            .map(|p| p.elided.clone())
            .unwrap_or_default();
        for (i, _) in skip.iter().enumerate().filter(|(_, &e)| e) {
            let id = NodeId(i as u32);
            let readers: Vec<NodeId> = (0..g.nodes.len() as u32)
                .map(NodeId)
                .flat_map(|n| g.children(n).filter(move |&c| c == id).map(move |_| n))
                .collect();
            assert_eq!(readers.len(), 1, "node {i}");
            assert!(
                matches!(g.node(readers[0]).op, Op::Binary(ElemBinary::Add, ..)),
                "node {i}"
            );
            assert!(!ev.value_written(id));
        }
        skip
    }

    /// The value pass through the plan gives every node it writes the plain pass's value, bit
    /// for bit, and so the same f and kink counts, and the same ∇f as the plain reverse pass
    /// (adjoints zeroed and added to, not written by the first contribution), on RNNs with relu
    /// (at kinks) and tanh, over one sequence (one-column products), three (two-column kernels)
    /// and six (the batch kernels, and the column broadcast of b); in each, the recurrent cells
    /// of steps 2 to 6 of a batch (not of one sequence) run as [`super::Step::Cell`], which
    /// leaves their products and sums unwritten.
    #[test]
    fn the_plan_computes_the_plain_values() {
        let r = Registry::with_standard();
        for act in ["relu", "tanh"] {
            for sequences in [1, 3, 6] {
                let g = rnn(act, sequences, &r);
                let skip = elided(&g, &r);
                let cells = if sequences == 1 { 0 } else { 5 };
                assert_eq!(skip.iter().filter(|&&e| e).count(), 3 * cells);
                let plain = pass_bits(&g, &r, true, &skip);
                assert_eq!(
                    pass_bits(&g, &r, false, &skip),
                    plain,
                    "{act}, {sequences} sequences"
                );
                if act == "relu" {
                    let kinks = plain[plain.len() - g.n_params() - 3];
                    assert!(kinks >= 6 * sequences as u64, "kinks: {kinks}");
                }
            }
        }
    }

    /// The plan runs its own steps for the RNN's products, sums, activations and squared norms
    /// (not `Frame::node`), and reverse mode its cells (`cell.rs`) as one step each.
    #[test]
    fn the_rnn_cell_runs_as_plan_steps() {
        let r = Registry::with_standard();
        let g = rnn("relu", 6, &r);
        let mut ev = Evaluator::new(&g, &r, Order::One).unwrap_or_else(|e| panic!("{e}"));
        let (x, _) = point(&g);
        ev.value(&x, EvalOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = ev.plan.as_ref().map_or(&[][..], |p| &p.steps[..]);
        let count = |f: fn(&super::Step) -> bool| plan.iter().filter(|s| f(s)).count();
        // Step 1 (h₀ a column: W h₀ is broadcast over the sequences) is not a cell; steps 2 to
        // 6 are, with their activations; every step's output product A h is a product step.
        assert_eq!(count(|s| matches!(s, super::Step::MatMul { .. })), 2 + 6);
        assert_eq!(count(|s| matches!(s, super::Step::Cell(_))), 5);
        let cells = ev.plan.as_ref().map_or(&[][..], |p| &p.cells[..]);
        assert!(cells.iter().all(|c| c.column == Some(5) && c.act.is_some()));
        assert_eq!(count(|s| matches!(s, super::Step::Call { .. })), 1);
        assert_eq!(count(|s| matches!(s, super::Step::SqNorm { .. })), 6 + 1);
        let column = |s: &super::Step| {
            matches!(
                s,
                super::Step::Binary {
                    shape: super::Broadcast::ColumnRight { .. },
                    ..
                }
            )
        };
        assert_eq!(count(column), 6 + 1, "{plan:?}");
        // One sequence (b of u's shape): reverse mode runs the six cells as single steps.
        let g = rnn("relu", 1, &r);
        let mut ev = Evaluator::new(&g, &r, Order::One).unwrap_or_else(|e| panic!("{e}"));
        let mut grad = vec![0.0; g.n_params()];
        ev.gradient(&x, &mut grad, EvalOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev.cells.len(), 6);
    }
}
