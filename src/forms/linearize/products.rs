//! Products with J at the last linearization, by passes over the lifted graph: J s (a forward
//! tangent pass), Jᵀ y (a reverse adjoint pass), and the solves with J_L, the lifted columns of
//! J (docs/srpa.md, "Products"). Nothing of the size of J is held: one tangent or adjoint per
//! entry of the needed nodes, and one slope per entry of the elementwise nodes, computed once
//! per linearization. The weights are the stored J's: the same values of the last evaluation,
//! the same chosen pieces, the same rules ([`Linearizer::contributions`] and
//! [`Linearizer::unary_coefficients`]).
//!
//! Kernels by node: parameters and lifted leaves read their entries of the operand; matrix
//! products go through the evaluator's `gemm`; elementwise binary operations (with
//! broadcasting, `max` and `min` by their chosen piece), elementwise functions (one slope per
//! entry), transposes, gathers, element reads and sums have their own loops; every other
//! operation the linearizer handles (inner products) goes entry by entry through
//! [`Linearizer::contributions`], the rule the stored J is built by.
//!
//! The solves. r_ℓ = u_ℓ − ψ_ℓ(θ, u_{<ℓ}) (a `Sub` of the block's leaf and ψ), so J_L = I − N
//! with N strictly lower triangular by blocks, N_{ℓk} = ∂ψ_ℓ/∂u_k. Every needed node gets a
//! *stage*: 1 + the last block whose leaf it depends on (0: θ only). J_L x = y is a forward
//! substitution: x_ℓ = y_ℓ + (tangent of ψ_ℓ), where ψ_ℓ has a stage ≤ ℓ, so it is known once
//! the nodes of stages ≤ ℓ are, with the leaves of blocks < ℓ carrying x and θ's tangent 0.
//! J_Lᵀ x = y is the transposed, backward by stages: x_ℓ = y_ℓ + (adjoint of leaf ℓ) once the
//! stages > ℓ are propagated, and ψ_ℓ is then seeded with x_ℓ.
//!
//! Fused with θ's columns J_θ (one pass each, where two products were): the forward solve with
//! θ's nodes (stage 0) carrying the tangent of a step s_θ instead of 0 solves J_L x = y −
//! J_θ s_θ ([`Linearizer::lifted_solve_theta`]); the backward solve with the adjoints carried
//! on into θ's nodes gives J_θᵀ x beside x ([`Linearizer::lifted_tsolve_theta`]).
//!
//! Threads over the batch. When every node of stage ≥ 1 is batched (its columns are the
//! sequences, S of them) and made by operations that keep the columns apart (elementwise
//! functions and binary operations, with broadcast operands of one column; products W X with W
//! not batched), a pass splits into workers, each computing a contiguous window of the S
//! columns of every batched node in its own buffer ([`Window`]). In a forward pass every
//! worker computes θ's nodes (stage 0) in full; in a reverse pass each worker accumulates its
//! share of θ's adjoints, and the shares are summed before the adjoint pass through θ's nodes,
//! so a split changes J_θᵀ x and Jᵀ y by rounding only.

use std::ops::Range;
use std::sync::OnceLock;

use super::ops::{bcast, picked, Shape};
use super::{LinearizeError, Linearizer};
use crate::eval::linalg::{gemm, gemm_sum, Mat};
use crate::forms::{Block, Lifted};
use crate::graph::{ElemBinary, Node, NodeId, Op, ReduceKind};

/// Not a needed node.
const NONE: u32 = u32::MAX;

/// The products' precomputed order and their buffers (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Products {
    /// Position of every graph node in the linearizer's `order` ([`NONE`] when not needed).
    pos: Vec<u32>,
    /// Offset and length of every needed node (by position) in `work`, and its length: the
    /// nodes read outside their own stage first, in order, then those of each stage read in it
    /// alone, every stage's from the same offset (see [`Products::new`]).
    off: Vec<usize>,
    len: Vec<usize>,
    size: usize,
    /// Σ len: the entries a pass computes, whatever the layout.
    entries: usize,
    /// Positions of the needed nodes by (stage, position), and where each stage starts
    /// (blocks + 2 entries).
    by_stage: Vec<u32>,
    stage_start: Vec<usize>,
    /// Stage of every needed node (by position).
    stage: Vec<u32>,
    /// The first (or only) worker's buffer (allocated at the first product).
    own: Buffer,
    /// Slopes of the elementwise-function nodes at the last linearization, and where each
    /// node's start (by position; `usize::MAX` for other nodes; the total at the end).
    slopes: Vec<f64>,
    slope_off: Vec<usize>,
    /// Whether `slopes` belong to the last linearization.
    fresh: bool,
    /// Whether the last linearization succeeded (products are at its point).
    valid: bool,
    /// Every node through the per-entry rules (tests compare the kernels with them).
    generic: bool,
    /// The batch columns S when the passes can split over them (module docs, "Threads over
    /// the batch").
    batch: Option<usize>,
    /// Whether a worker's sweep computes the node (by position), in its window: the batched
    /// nodes where the graph splits, else the nodes of stage ≥ 1. The others (θ's) are whole:
    /// every worker computes them in a forward pass; after a reverse pass's sweep, their
    /// adjoints (the workers' shares summed) go through them on one thread.
    swept: Vec<bool>,
    /// Whether the node (by position) is a block's residual r = u − ψ: read by J s alone,
    /// never by the solves, which skip it.
    residual: Vec<bool>,
    /// Workers set by tests (`None`: by the graph's size and the machine's cores).
    forced_workers: Option<usize>,
    /// The other workers' buffers (allocated at the first split pass).
    extra: Vec<Buffer>,
    /// Entries a worker's deferred weight adjoints hold at most ([`Deferred`]).
    deferred: usize,
}

/// One worker's buffer for a pass.
#[derive(Debug, Default)]
struct Buffer {
    /// Tangents or adjoints of the needed nodes.
    work: Vec<f64>,
    /// Whether a node's tangent or adjoint is identically zero in the current pass.
    zero: Vec<bool>,
    /// A reverse pass's deferred weight adjoints (empty between passes; its columns' storage
    /// is kept from one pass to the next).
    defer: Deferred,
}

/// The most workers a pass splits into.
const MAX_WORKERS: usize = 8;
/// A pass over fewer tangent entries than this runs on one thread: a split costs a thread
/// start and join (tens of microseconds), a pass of this size about a millisecond.
const SPLIT_MIN_ENTRIES: usize = 1 << 17;
/// A pass whose needed nodes hold fewer entries than this on average runs on one thread:
/// every worker pays every node's dispatch, so small nodes gain nothing. Measured on the
/// large RNN's shape (8 sequences, one SRPA iteration, wall): N_h = 16 (about 100 entries a
/// node) 2.62 s on one thread, 2.63 s on two (with 1.7× the CPU time); N_h = 32 (about 190)
/// 6.06 s and 4.32 s.
const SPLIT_MIN_NODE_ENTRIES: usize = 150;

/// The columns of the batched nodes that one worker of a pass computes (module docs, "Threads
/// over the batch"): columns `lo..hi` of every batched node, every other node whole.
#[derive(Clone, Copy, Debug)]
struct Window {
    lo: usize,
    hi: usize,
}

impl Window {
    /// Every node whole: the pass on one thread.
    const ALL: Window = Window {
        lo: 0,
        hi: usize::MAX,
    };

    /// Whether `n` is cut to the window (a batched node, in a split pass).
    fn cuts(self, n: &Node) -> bool {
        n.batched && self.hi != usize::MAX
    }

    /// The entries of `n` in the window (column-major).
    fn range(self, n: &Node) -> Range<usize> {
        if self.cuts(n) {
            self.lo * n.rows..self.hi * n.rows
        } else {
            0..n.len()
        }
    }

    /// The shape of `n`'s entries in the window.
    fn shape(self, n: &Node) -> Shape {
        let cols = if self.cuts(n) {
            self.hi - self.lo
        } else {
            n.cols
        };
        Shape { rows: n.rows, cols }
    }
}

/// The batch columns S (≥ 2) when every pass can split over them: every needed batched node
/// has S columns and is made by an operation that keeps the columns apart, reading batched
/// operands of S columns or unbatched ones of one column (a `MatMul`'s left operand: unbatched,
/// any shape); every needed node of stage ≥ 1 (every block's leaf and ψ) is batched; and no
/// unbatched needed node reads a batched one (so θ's unbatched nodes are whole in every worker).
fn batch_columns(lifted: &Lifted, order: &[NodeId], stage: &[u32]) -> Option<usize> {
    let g = &lifted.graph;
    let first = order.iter().zip(stage).find(|(_, &s)| s > 0)?;
    let s = g.node(*first.0).cols;
    let mut needed = vec![false; g.nodes.len()];
    for id in order {
        needed[id.index()] = true;
    }
    let batched = |id: NodeId| {
        let n = g.node(id);
        n.batched && n.cols == s
    };
    let operand = |id: NodeId, rows: usize| {
        let n = g.node(id);
        (n.rows == rows || n.rows == 1) && if n.batched { n.cols == s } else { n.cols == 1 }
    };
    let nodes_split = order.iter().zip(stage).all(|(&id, &st)| {
        let n = g.node(id);
        if !n.batched {
            return st == 0
                && !g
                    .children(id)
                    .any(|c| needed[c.index()] && g.node(c).batched);
        }
        batched(id)
            && match &n.op {
                Op::Param(_) => st > 0,
                Op::Unary(_, a) | Op::Call { arg: a, .. } => {
                    batched(*a) && g.node(*a).rows == n.rows
                }
                Op::Binary(_, a, b) => operand(*a, n.rows) && operand(*b, n.rows),
                Op::MatMul(a, b) => !g.node(*a).batched && batched(*b),
                _ => false,
            }
    });
    let blocks_split =
        lifted.layout.blocks.iter().all(|b| {
            batched(b.leaf) && batched(b.psi) && g.node(b.psi).rows == g.node(b.leaf).rows
        });
    (s >= 2 && nodes_split && blocks_split).then_some(s)
}

/// The offsets and lengths of the needed nodes in a pass's buffer, and its size. A node of a
/// stage ≥ 1 that only nodes of its own stage read (not a leaf, a ψ or a residual, which the
/// passes read across stages) is dead once its stage is done, so every stage's such nodes
/// share one region after the others: a pass then writes its intermediate products (W h,
/// W h + V x, A h of an RNN step) into a few cache-resident kilobytes instead of a buffer
/// the size of the graph, which it would stream to memory.
fn layout(
    lifted: &Lifted,
    order: &[NodeId],
    pos: &[u32],
    stage: &[u32],
    residual: &[bool],
) -> (Vec<usize>, Vec<usize>, usize) {
    let g = &lifted.graph;
    let mut local: Vec<bool> = order
        .iter()
        .zip(stage)
        .zip(residual)
        .map(|((&id, &st), &res)| st > 0 && !res && !matches!(g.node(id).op, Op::Param(_)))
        .collect();
    for b in &lifted.layout.blocks {
        if pos[b.psi.index()] != NONE {
            local[pos[b.psi.index()] as usize] = false;
        }
    }
    for (p, &id) in order.iter().enumerate() {
        for c in g.children(id) {
            let q = pos[c.index()];
            if q != NONE && stage[q as usize] != stage[p] {
                local[q as usize] = false;
            }
        }
    }
    let len: Vec<usize> = order.iter().map(|&id| g.node(id).len()).collect();
    let mut off = vec![0; order.len()];
    let mut at = 0;
    for p in (0..order.len()).filter(|&p| !local[p]) {
        off[p] = at;
        at += len[p];
    }
    let shared = at;
    let mut stage_at = vec![shared; stage.iter().max().map_or(1, |&s| s as usize + 1)];
    let mut size = shared;
    for p in (0..order.len()).filter(|&p| local[p]) {
        let s = stage[p] as usize;
        off[p] = stage_at[s];
        stage_at[s] += len[p];
        size = size.max(stage_at[s]);
    }
    (off, len, size)
}

/// Bytes the products over the needed nodes `order` of `lifted` will hold once used
/// ([`Products::bytes`], for the memory estimate).
pub(super) fn pass_bytes(lifted: &Lifted, order: &[NodeId]) -> Result<usize, LinearizeError> {
    Ok(Products::new(lifted, order)?.bytes())
}

/// The machine's cores (read once).
pub(super) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Where a pass's parameter leaves read their tangent, and what it skips.
#[derive(Clone, Copy)]
enum Pass<'a> {
    /// J s: every leaf reads its entries of s.
    Mul(&'a [f64]),
    /// A solve: θ's tangent is 0, the lifted leaves are set stage by stage.
    Solve,
}

impl Products {
    /// The positions and stages of the needed nodes `order` of `lifted` (no buffers yet).
    pub(super) fn new(lifted: &Lifted, order: &[NodeId]) -> Result<Products, LinearizeError> {
        let g = &lifted.graph;
        let mut pos = vec![NONE; g.nodes.len()];
        for (p, id) in order.iter().enumerate() {
            pos[id.index()] = p as u32;
        }
        let mut block_of_leaf = vec![NONE; g.nodes.len()];
        for (b, blk) in lifted.layout.blocks.iter().enumerate() {
            block_of_leaf[blk.leaf.index()] = b as u32;
        }
        let mut stage = vec![0u32; order.len()];
        let mut slope_off = vec![usize::MAX; order.len()];
        let mut slopes = 0usize;
        for (p, &id) in order.iter().enumerate() {
            let node = g.node(id);
            stage[p] = match node.op {
                Op::Param(_) => match block_of_leaf[id.index()] {
                    NONE => 0,
                    b => b + 1,
                },
                _ => g
                    .children(id)
                    .filter(|c| pos[c.index()] != NONE)
                    .map(|c| stage[pos[c.index()] as usize])
                    .max()
                    .unwrap_or(0),
            };
            if matches!(node.op, Op::Unary(..) | Op::Call { .. }) {
                slope_off[p] = slopes;
                slopes += node.len();
            }
        }
        slope_off.push(slopes);
        let batch = batch_columns(lifted, order, &stage);
        let mut residual = vec![false; order.len()];
        for b in &lifted.layout.blocks {
            if pos[b.residual.index()] != NONE {
                residual[pos[b.residual.index()] as usize] = true;
            }
        }
        let (off, len, size) = layout(lifted, order, &pos, &stage, &residual);
        let swept = order
            .iter()
            .zip(&stage)
            .map(|(&id, &st)| match batch {
                Some(_) => g.node(id).batched,
                None => st > 0,
            })
            .collect();
        let stages = lifted.layout.blocks.len() + 1;
        let mut by_stage: Vec<u32> = (0..order.len() as u32).collect();
        by_stage.sort_by_key(|&p| (stage[p as usize], p));
        let mut stage_start = vec![0usize; stages + 1];
        for &s in &stage {
            stage_start[s as usize + 1] += 1;
        }
        for s in 0..stages {
            stage_start[s + 1] += stage_start[s];
        }
        // a worker's deferred weight adjoints: Ḡ's and X's columns per θ node read by a
        // product of a later stage
        let mut targets: Vec<NodeId> = order
            .iter()
            .zip(&stage)
            .filter_map(|(&id, &st)| match g.node(id).op {
                Op::MatMul(a, _) if st > 0 && pos[a.index()] != NONE => {
                    (stage[pos[a.index()] as usize] == 0).then_some(a)
                }
                _ => None,
            })
            .collect();
        targets.sort();
        targets.dedup();
        let deferred = targets
            .iter()
            .map(|&a| (g.node(a).rows + g.node(a).cols) * DEFER_COLUMNS)
            .sum();
        Ok(Products {
            pos,
            off,
            entries: len.iter().sum(),
            len,
            size,
            by_stage,
            stage_start,
            stage,
            slope_off,
            slopes: Vec::new(),
            own: Buffer::default(),
            fresh: false,
            valid: false,
            generic: false,
            batch,
            swept,
            residual,
            forced_workers: None,
            extra: Vec::new(),
            deferred,
        })
    }

    /// Workers of a pass: one unless the graph splits over its batch and is large enough
    /// (or tests set them).
    pub(super) fn workers(&self) -> usize {
        let Some(s) = self.batch.filter(|_| !self.generic) else {
            return 1;
        };
        match self.forced_workers {
            Some(k) => k.clamp(1, s),
            None if self.entries < SPLIT_MIN_ENTRIES => 1,
            None if self.entries < SPLIT_MIN_NODE_ENTRIES * self.stage.len() => 1,
            None => cores().min(s).min(MAX_WORKERS),
        }
    }

    /// The workers' windows: contiguous runs of the S columns, or [`Window::ALL`].
    fn windows(&self) -> Vec<Window> {
        let k = self.workers();
        match self.batch {
            Some(s) if k > 1 => (0..k)
                .map(|i| Window {
                    lo: i * s / k,
                    hi: (i + 1) * s / k,
                })
                .collect(),
            _ => vec![Window::ALL],
        }
    }

    /// Whether `id` is one of the needed nodes.
    pub(super) fn needed(&self, id: NodeId) -> bool {
        self.pos.get(id.index()).is_some_and(|&p| p != NONE)
    }

    /// A linearization started (`false`: the products are not at a point) or finished.
    pub(super) fn set_valid(&mut self, valid: bool) {
        self.valid = valid;
        self.fresh = false;
    }

    /// Bytes of the buffers the products hold once used: each worker's tangents or adjoints,
    /// their zero flags and deferred weight adjoints, and the slopes.
    pub(super) fn bytes(&self) -> usize {
        let values = (self.size + self.deferred) * self.workers();
        let slopes = *self.slope_off.last().unwrap_or(&0);
        (values + slopes) * 8 + self.stage.len() * self.workers()
    }
}

/// A needed node's slice of the buffer: (offset, length).
type Span = (usize, usize);

/// The adjoint slice of a child (offset and length in the buffer around a node's window),
/// zeroed on its first contribution; `None` where the child takes none.
type Target<'a> = dyn FnMut(NodeId, &mut Around<'_>) -> Option<Span> + 'a;

/// Columns of the stages a reverse pass went through, per product `W X` with W of θ (stage 0)
/// and X batched: W̄ += Ḡ Xᵀ summed over the stages by one product per [`DEFER_COLUMNS`]
/// columns, where one product per stage of 4 or 8 columns read and wrote all of W̄ for
/// each (a 128 × 128 W̄ at every step of the large RNN: matrixmultiply's kernel and packing
/// were 20% of a profile of its SRPA iteration).
#[derive(Debug, Default)]
struct Deferred {
    pending: Vec<Pending>,
}

/// One θ node's deferred adjoint: its slice in the buffer, Ḡ's and X's columns so far.
#[derive(Debug)]
struct Pending {
    /// The slice of W̄ (offset and length in the worker's buffer), W̄'s rows and columns.
    at: usize,
    len: usize,
    rows: usize,
    inner: usize,
    /// Ḡ (rows × cols) and X (inner × cols), column-major, `cols` of them.
    g: Vec<f64>,
    x: Vec<f64>,
    cols: usize,
}

/// Columns a deferred weight adjoint gathers before its product (16 stages of 4 columns).
const DEFER_COLUMNS: usize = 64;

impl Deferred {
    /// Adds Ḡ Xᵀ to the slice `at..at + len` (W̄, `rows` × `inner`, zeroed or holding
    /// earlier contributions) later: `g` is Ḡ's columns, `x` X's (as many).
    fn push(
        &mut self,
        w: &mut Around<'_>,
        at: usize,
        len: usize,
        rows: usize,
        g: &[f64],
        x: &[f64],
    ) {
        let inner = len / rows;
        let cols = g.len() / rows;
        let k = match self.pending.iter().position(|p| p.at == at) {
            Some(k) => k,
            None => {
                self.pending.push(Pending {
                    at,
                    len,
                    rows,
                    inner,
                    g: Vec::with_capacity(rows * DEFER_COLUMNS),
                    x: Vec::with_capacity(inner * DEFER_COLUMNS),
                    cols: 0,
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[k];
        if p.cols + cols > DEFER_COLUMNS {
            p.flush(w.get_mut(at, len));
        }
        p.g.extend_from_slice(g);
        p.x.extend_from_slice(x);
        p.cols += cols;
    }

    /// Every deferred product into `w` (the worker's whole buffer); the slices stay known,
    /// with their columns' storage, for the next pass.
    fn flush(&mut self, w: &mut [f64]) {
        for p in &mut self.pending {
            p.flush(&mut w[p.at..p.at + p.len]);
        }
    }
}

impl Pending {
    fn flush(&mut self, out: &mut [f64]) {
        if self.cols == 0 {
            return;
        }
        let g = Mat::new(&self.g, self.rows, self.cols);
        let xt = Mat::new(&self.x, self.inner, self.cols).t();
        gemm(1.0, g, xt, 1.0, out);
        self.g.clear();
        self.x.clear();
        self.cols = 0;
    }
}

/// A pass's buffer around one node's window, addressed by offsets in the whole buffer: a
/// child's slot lies wholly before the window or wholly after it (slots of the nodes one node
/// reads never overlap its own, see [`layout`]).
struct Around<'a> {
    before: &'a mut [f64],
    after: &'a mut [f64],
    /// Where `after` starts in the buffer.
    end: usize,
}

impl Around<'_> {
    /// `w` cut into the entries `range` (a node's window) and the rest.
    fn cut(w: &mut [f64], range: Range<usize>) -> (&mut [f64], Around<'_>) {
        let (before, rest) = w.split_at_mut(range.start);
        let (own, after) = rest.split_at_mut(range.len());
        let end = range.end;
        (own, Around { before, after, end })
    }

    fn get(&self, o: usize, l: usize) -> &[f64] {
        if o + l <= self.before.len() {
            &self.before[o..o + l]
        } else {
            &self.after[o - self.end..o - self.end + l]
        }
    }

    fn get_mut(&mut self, o: usize, l: usize) -> &mut [f64] {
        if o + l <= self.before.len() {
            &mut self.before[o..o + l]
        } else {
            &mut self.after[o - self.end..o - self.end + l]
        }
    }
}

impl Linearizer<'_> {
    /// Every node's products through the per-entry rules of the stored J instead of the
    /// kernels (slow; for tests that compare the two).
    pub fn set_generic_products(&mut self, generic: bool) {
        self.prod.generic = generic;
    }

    /// Splits every pass into `workers` windows of the batch wherever the graph allows it, at
    /// any size (tests compare split passes with whole ones); whether it does.
    pub fn set_product_workers(&mut self, workers: usize) -> bool {
        self.prod.forced_workers = Some(workers);
        self.prod.workers() > 1
    }

    /// Bytes the products hold once used (of the order of the graph's values).
    pub fn product_bytes(&self) -> usize {
        self.prod.bytes()
    }

    /// `out` = J s at the point and pieces of the last [`Linearizer::linearize`] (`s`: n_z
    /// entries, `out`: one per residual row, in block order).
    pub fn jac_mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), LinearizeError> {
        let m = self.rows();
        self.ready("J s", s.len(), self.lifted.layout.n_z, out.len(), m)?;
        let wins = self.prod.windows();
        let mut bufs = self.take(wins.len());
        let outs = self.row_windows(out, &wins);
        self.run_windows(&wins, &mut bufs, outs, |win, mut outs, buf| {
            let Buffer { work: w, zero, .. } = buf;
            // by stages: the nodes read in their stage alone share their slots across stages
            for &p in &self.prod.by_stage {
                let p = p as usize;
                self.tangent(p, Pass::Mul(s), w, zero, self.window_of(p, win));
            }
            self.read_rows(w, zero, &mut outs, win);
        });
        self.put(bufs);
        Ok(())
    }

    /// `out` = Jᵀ y (`y`: one entry per residual row, `out`: n_z entries).
    pub fn jac_tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), LinearizeError> {
        let m = self.rows();
        self.ready("Jᵀ y", y.len(), m, out.len(), self.lifted.layout.n_z)?;
        let wins = self.prod.windows();
        let mut bufs = self.take(wins.len());
        out.fill(0.0);
        let n_theta = self.lifted.layout.n_theta;
        let (theta, lifted) = out.split_at_mut(n_theta);
        let outs = self.row_windows(lifted, &wins);
        let g = self.graph();
        self.run_windows(&wins, &mut bufs, outs, |win, mut outs, buf| {
            let Buffer {
                work: w,
                zero,
                defer,
            } = buf;
            zero.fill(true);
            for b in &self.lifted.layout.blocks {
                if let Some(p) = self.position(b.residual) {
                    let (o, _) = self.span(p);
                    let r = win.range(g.node(b.residual));
                    let at = b.offset - n_theta;
                    w[o + r.start..o + r.end].copy_from_slice(&y[at + r.start..at + r.end]);
                    zero[p] = false;
                }
            }
            // the swept nodes; θ's others after the workers' shares of their adjoints are summed
            for &p in self.prod.by_stage.iter().rev() {
                let p = p as usize;
                if zero[p] || !self.prod.swept[p] {
                    continue;
                }
                let stage = self.prod.stage[p] as usize;
                if matches!(g.node(self.order[p]).op, Op::Param(_)) {
                    // the leaf of block stage − 1 (θ's parameters are never swept)
                    let (o, _) = self.span(p);
                    let r = win.range(g.node(self.order[p]));
                    for (v, a) in outs[stage - 1].iter_mut().zip(&w[o + r.start..o + r.end]) {
                        *v += a;
                    }
                } else {
                    self.adjoint(p, false, w, zero, win, defer);
                }
            }
            defer.flush(w);
        });
        self.theta_adjoints(&mut bufs, theta, 1.0);
        self.put(bufs);
        Ok(())
    }

    /// x with J_L x = y, J_L the lifted columns of J (unit lower triangular by blocks; `y` and
    /// `x` one entry per residual row).
    pub fn lifted_solve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), LinearizeError> {
        let m = self.rows();
        self.ready("J_L⁻¹ y", y.len(), m, x.len(), m)?;
        self.solve_stages(None, y, x);
        Ok(())
    }

    /// x with J_θ s_θ + J_L x = y, for `input` = (s_θ, y) (n_z entries: θ's step, then one
    /// entry per residual row): the lifted step that completes s_θ, J_L⁻¹ (y − J_θ s_θ), in one
    /// pass (the solve's, with θ's nodes carrying the tangent of s_θ instead of 0).
    pub fn lifted_solve_theta(
        &mut self,
        input: &[f64],
        x: &mut [f64],
    ) -> Result<(), LinearizeError> {
        let (m, n_theta) = (self.rows(), self.lifted.layout.n_theta);
        self.ready("J_L⁻¹ (y − J_θ s_θ)", input.len(), n_theta + m, x.len(), m)?;
        let (theta, y) = input.split_at(n_theta);
        self.solve_stages(Some(theta), y, x);
        Ok(())
    }

    /// The forward substitution by stages; θ's nodes (stage 0) carry the tangent of `theta`,
    /// or 0.
    fn solve_stages(&mut self, theta: Option<&[f64]>, y: &[f64], x: &mut [f64]) {
        let wins = self.prod.windows();
        let mut bufs = self.take(wins.len());
        let xs = self.row_windows(x, &wins);
        self.run_windows(&wins, &mut bufs, xs, |win, mut xs, buf| {
            self.solve_window(win, theta, y, &mut xs, &mut buf.work, &mut buf.zero);
        });
        self.put(bufs);
    }

    /// One worker's forward substitution: its window of every block's rows `xs`.
    fn solve_window(
        &self,
        win: Window,
        theta: Option<&[f64]>,
        y: &[f64],
        xs: &mut [&mut [f64]],
        w: &mut [f64],
        zero: &mut [bool],
    ) {
        let pr = &self.prod;
        for &p in &pr.by_stage[..pr.stage_start[1]] {
            match theta {
                // θ's parameter nodes read their entries of s_θ (offsets < n_θ)
                Some(s) => {
                    let p = p as usize;
                    self.tangent(p, Pass::Mul(s), w, zero, self.window_of(p, win));
                }
                None => zero[p as usize] = true,
            }
        }
        let g = self.graph();
        for (b, blk) in self.lifted.layout.blocks.iter().enumerate() {
            // x_ℓ = y_ℓ + ψ_ℓ′ (ψ_ℓ of stage ≤ ℓ is known)
            // (one sweep over the block's rows: a pass is a few of them over all m)
            let xb = &mut *xs[b];
            let r = self.block_rows(blk.psi, blk, win, y, w, zero, xb);
            for &p in &pr.by_stage[pr.stage_start[b + 1]..pr.stage_start[b + 2]] {
                let p = p as usize;
                if pr.residual[p] {
                    continue;
                }
                if matches!(g.node(self.order[p]).op, Op::Param(_)) {
                    // the leaf of block b (the only leaf of this stage)
                    let (o, _) = self.span(p);
                    w[o + r.start..o + r.end].copy_from_slice(xb);
                    zero[p] = false;
                } else {
                    self.tangent(p, Pass::Solve, w, zero, win);
                }
            }
        }
    }

    /// x with J_Lᵀ x = y.
    pub fn lifted_tsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), LinearizeError> {
        let m = self.rows();
        self.ready("J_L⁻ᵀ y", y.len(), m, x.len(), m)?;
        self.tsolve_stages(y, x, None);
        Ok(())
    }

    /// x with J_Lᵀ x = y and J_θᵀ x, in one pass (the transposed solve, with the adjoints
    /// carried on into θ's nodes): `out` = (J_θᵀ x, x), n_z entries.
    pub fn lifted_tsolve_theta(
        &mut self,
        y: &[f64],
        out: &mut [f64],
    ) -> Result<(), LinearizeError> {
        let (m, n_theta) = (self.rows(), self.lifted.layout.n_theta);
        self.ready("(J_θᵀ x, x = J_L⁻ᵀ y)", y.len(), m, out.len(), n_theta + m)?;
        let (theta, x) = out.split_at_mut(n_theta);
        self.tsolve_stages(y, x, Some(theta));
        Ok(())
    }

    /// The backward substitution by stages; with `theta`, the adjoints go on into θ's nodes
    /// and `theta` receives J_θᵀ x.
    fn tsolve_stages(&mut self, y: &[f64], x: &mut [f64], theta: Option<&mut [f64]>) {
        let lifted_only = theta.is_none();
        let wins = self.prod.windows();
        let mut bufs = self.take(wins.len());
        let xs = self.row_windows(x, &wins);
        self.run_windows(&wins, &mut bufs, xs, |win, mut xs, buf| {
            self.tsolve_window(win, lifted_only, y, &mut xs, buf);
        });
        if let Some(theta) = theta {
            // ψ reads θ with the sign opposite to r = u − ψ: J_θᵀ x = −(θ's adjoints)
            theta.fill(0.0);
            self.theta_adjoints(&mut bufs, theta, -1.0);
        }
        self.put(bufs);
    }

    /// After a reverse pass's sweep: the workers' shares of θ's unswept adjoints summed, the
    /// adjoint pass through those nodes, and `sign` × θ's adjoints added into `theta`.
    fn theta_adjoints(&self, bufs: &mut [Buffer], theta: &mut [f64], sign: f64) {
        self.merge_theta(bufs);
        let Buffer {
            work: w,
            zero,
            defer,
        } = &mut bufs[0];
        let g = self.graph();
        let pr = &self.prod;
        for &p in pr.by_stage[..pr.stage_start[1]].iter().rev() {
            let p = p as usize;
            if zero[p] || pr.swept[p] {
                continue;
            }
            if let Op::Param(k) = g.node(self.order[p]).op {
                let (o, l) = self.span(p);
                let at = g.params[k].offset;
                for (v, a) in theta[at..at + l].iter_mut().zip(&w[o..o + l]) {
                    *v += sign * a;
                }
            } else {
                // θ's nodes alone: nothing is deferred
                self.adjoint(p, false, w, zero, Window::ALL, defer);
            }
        }
    }

    /// One worker's backward substitution through the blocks, then (unless `lifted_only`) on
    /// through θ's swept nodes.
    fn tsolve_window(
        &self,
        win: Window,
        lifted_only: bool,
        y: &[f64],
        xs: &mut [&mut [f64]],
        buf: &mut Buffer,
    ) {
        let Buffer {
            work: w,
            zero,
            defer,
        } = buf;
        zero.fill(true);
        let g = self.graph();
        let pr = &self.prod;
        for (b, blk) in self.lifted.layout.blocks.iter().enumerate().rev() {
            for &p in pr.by_stage[pr.stage_start[b + 1]..pr.stage_start[b + 2]]
                .iter()
                .rev()
            {
                let p = p as usize;
                if !zero[p] && !matches!(g.node(self.order[p]).op, Op::Param(_)) {
                    self.adjoint(p, lifted_only, w, zero, win, defer);
                }
            }
            // x_ℓ = y_ℓ + (Nᵀ x)_ℓ, the adjoint of leaf ℓ
            let xb = &mut *xs[b];
            let r = self.block_rows(blk.leaf, blk, win, y, w, zero, xb);
            // ψ_ℓ carries x_ℓ back to the earlier blocks
            if let Some(p) = self.position(blk.psi) {
                let (o, _) = self.span(p);
                let a = &mut w[o + r.start..o + r.end];
                if zero[p] {
                    a.copy_from_slice(xb);
                    zero[p] = false;
                } else {
                    for (v, xv) in a.iter_mut().zip(xb.iter()) {
                        *v += xv;
                    }
                }
            }
        }
        if !lifted_only {
            for &p in pr.by_stage[..pr.stage_start[1]].iter().rev() {
                let p = p as usize;
                if pr.swept[p] && !zero[p] && !matches!(g.node(self.order[p]).op, Op::Param(_)) {
                    self.adjoint(p, false, w, zero, win, defer);
                }
            }
        }
        defer.flush(w);
    }

    /// `xb` = block `blk`'s rows of y in the window `win` (entries `r` of its nodes, which it
    /// returns), plus the same entries of node `from`'s tangent or adjoint unless it is zero:
    /// the substitutions' x_ℓ = y_ℓ + ψ_ℓ′ and x_ℓ = y_ℓ + (Nᵀ x)_ℓ.
    #[allow(clippy::too_many_arguments)]
    fn block_rows(
        &self,
        from: NodeId,
        blk: &Block,
        win: Window,
        y: &[f64],
        w: &[f64],
        zero: &[bool],
        xb: &mut [f64],
    ) -> Range<usize> {
        let r = win.range(self.graph().node(blk.leaf));
        let at = blk.offset - self.lifted.layout.n_theta;
        let yb = &y[at + r.start..at + r.end];
        match self.position(from).filter(|&p| !zero[p]) {
            Some(p) => {
                let (o, _) = self.span(p);
                for ((v, yv), t) in xb.iter_mut().zip(yb).zip(&w[o + r.start..o + r.end]) {
                    *v = yv + t;
                }
            }
            None => xb.copy_from_slice(yb),
        }
        r
    }

    /// Runs `f` once per window: the first on this thread with `bufs[0]`, the others on scoped
    /// threads with their own buffers; `rows` holds each window's part of the pass's output.
    fn run_windows<'r>(
        &self,
        wins: &[Window],
        bufs: &mut [Buffer],
        rows: Vec<Vec<&'r mut [f64]>>,
        f: impl Fn(Window, Vec<&'r mut [f64]>, &mut Buffer) + Sync,
    ) {
        let mut rows = rows.into_iter();
        let (first, others) = bufs.split_first_mut().expect("one buffer per window");
        let own = rows.next().expect("one row set per window");
        if wins.len() == 1 {
            return f(wins[0], own, first);
        }
        let f = &f;
        std::thread::scope(|scope| {
            for ((&win, part), b) in wins[1..].iter().zip(rows).zip(others) {
                scope.spawn(move || f(win, part, b));
            }
            f(wins[0], own, first);
        });
    }

    /// The adjoints of θ's nodes that no sweep went through, summed over the workers into
    /// `bufs[0]`.
    fn merge_theta(&self, bufs: &mut [Buffer]) {
        let (first, others) = bufs.split_first_mut().expect("one buffer per window");
        let (w, zero) = (&mut first.work, &mut first.zero);
        let pr = &self.prod;
        for &p in &pr.by_stage[..pr.stage_start[1]] {
            let p = p as usize;
            if pr.swept[p] {
                continue;
            }
            let (o, l) = self.span(p);
            for Buffer {
                work: wk, zero: zk, ..
            } in others.iter()
            {
                if zk[p] {
                    continue;
                }
                if zero[p] {
                    w[o..o + l].fill(0.0);
                    zero[p] = false;
                }
                for (v, a) in w[o..o + l].iter_mut().zip(&wk[o..o + l]) {
                    *v += a;
                }
            }
        }
    }

    /// `rows` (one entry per residual row, in block order) cut into each window's part of
    /// every block: `parts[k][b]`.
    fn row_windows<'r>(&self, rows: &'r mut [f64], wins: &[Window]) -> Vec<Vec<&'r mut [f64]>> {
        let n_theta = self.lifted.layout.n_theta;
        let blocks = &self.lifted.layout.blocks;
        let mut parts: Vec<Vec<&mut [f64]>> = wins
            .iter()
            .map(|_| Vec::with_capacity(blocks.len()))
            .collect();
        let (mut rest, mut at) = (rows, 0);
        for blk in blocks {
            // blocks are in row order, windows in column order
            let leaf = self.graph().node(blk.leaf);
            let start = blk.offset - n_theta;
            rest = &mut std::mem::take(&mut rest)[start - at..];
            at = start;
            for (k, win) in wins.iter().enumerate() {
                let len = win.range(leaf).len();
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
                parts[k].push(head);
                rest = tail;
                at += len;
            }
        }
        parts
    }

    /// Residual rows m.
    fn rows(&self) -> usize {
        self.lifted.layout.n_z - self.lifted.layout.n_theta
    }

    /// Refuse a product before a linearization or with wrong sizes; compute the slopes of the
    /// last linearization if they are not yet.
    fn ready(
        &mut self,
        what: &str,
        n_in: usize,
        want_in: usize,
        n_out: usize,
        want_out: usize,
    ) -> Result<(), LinearizeError> {
        if !self.prod.valid {
            return Err(LinearizeError::Product(format!(
                "{what} asked for before a linearization"
            )));
        }
        if n_in != want_in || n_out != want_out {
            return Err(LinearizeError::Product(format!(
                "{what}: operand of {n_in} and result of {n_out} entries, expected {want_in} and {want_out}"
            )));
        }
        if self.prod.own.work.is_empty() && !self.order.is_empty() {
            let n = self.prod.size;
            self.prod.own.work = vec![0.0; n];
            self.prod.own.zero = vec![true; self.order.len()];
        }
        if !self.prod.fresh {
            let n = *self.prod.slope_off.last().unwrap_or(&0);
            let mut slopes = std::mem::take(&mut self.prod.slopes);
            slopes.resize(n, 0.0);
            for p in 0..self.order.len() {
                let at = self.prod.slope_off[p];
                if at != usize::MAX {
                    let c = self.unary_coefficients(self.order[p])?;
                    slopes[at..at + c.len()].copy_from_slice(&c);
                }
            }
            self.prod.slopes = slopes;
            self.prod.fresh = true;
        }
        Ok(())
    }

    /// The buffers of a pass with `workers` windows: the products' own, then the other
    /// workers' (allocated at their first use).
    fn take(&mut self, workers: usize) -> Vec<Buffer> {
        let pr = &mut self.prod;
        let (n, nodes) = (pr.own.work.len(), pr.own.zero.len());
        while pr.extra.len() + 1 < workers {
            pr.extra.push(Buffer {
                work: vec![0.0; n],
                zero: vec![true; nodes],
                defer: Deferred::default(),
            });
        }
        let mut bufs = Vec::with_capacity(workers);
        bufs.push(std::mem::take(&mut pr.own));
        bufs.extend(pr.extra.iter_mut().take(workers - 1).map(std::mem::take));
        bufs
    }

    fn put(&mut self, bufs: Vec<Buffer>) {
        let mut bufs = bufs.into_iter();
        let pr = &mut self.prod;
        pr.own = bufs.next().expect("the products' own buffers");
        for (slot, buf) in pr.extra.iter_mut().zip(bufs) {
            *slot = buf;
        }
    }

    /// The window a worker computes node `p` in: its own for a swept node, else the whole.
    fn window_of(&self, p: usize, win: Window) -> Window {
        if self.prod.swept[p] {
            win
        } else {
            Window::ALL
        }
    }

    fn position(&self, id: NodeId) -> Option<usize> {
        match self.prod.pos[id.index()] {
            NONE => None,
            p => Some(p as usize),
        }
    }

    fn span(&self, p: usize) -> Span {
        (self.prod.off[p], self.prod.len[p])
    }

    /// Each block's residual rows in the window (`outs`, one per block) from the buffer (0
    /// where zero).
    fn read_rows(&self, w: &[f64], zero: &[bool], outs: &mut [&mut [f64]], win: Window) {
        let g = self.graph();
        for (b, rows) in self.lifted.layout.blocks.iter().zip(outs) {
            match self.position(b.residual).filter(|&p| !zero[p]) {
                Some(p) => {
                    let (o, _) = self.span(p);
                    let r = win.range(g.node(b.residual));
                    rows.copy_from_slice(&w[o + r.start..o + r.end]);
                }
                None => rows.fill(0.0),
            }
        }
    }

    /// The tangent of needed node `p` from its children's (which are done), in the window
    /// `win` ([`Window::ALL`] for θ's nodes; any other window only where the graph splits).
    fn tangent(&self, p: usize, pass: Pass<'_>, w: &mut [f64], zero: &mut [bool], win: Window) {
        let g = self.graph();
        let id = self.order[p];
        let node = g.node(id);
        let (o, _) = self.span(p);
        let r = win.range(node);
        let (t, lo) = Around::cut(w, o + r.start..o + r.end);
        // a child's tangent in the window, None where it is zero or not needed
        let child = |c: NodeId| -> Option<&[f64]> {
            let q = self.position(c)?;
            if zero[q] {
                return None;
            }
            let (co, _) = self.span(q);
            let cr = win.range(g.node(c));
            Some(lo.get(co + cr.start, cr.len()))
        };
        let val = |c: NodeId| &self.ev.coeff(c, 0)[win.range(g.node(c))];
        let shape = |c: NodeId| win.shape(g.node(c));
        let nonzero = match &node.op {
            Op::Param(k) => match pass {
                Pass::Mul(s) => {
                    let at = g.params[*k].offset;
                    t.copy_from_slice(&s[at + r.start..at + r.end]);
                    true
                }
                Pass::Solve => false,
            },
            _ if self.prod.generic => generic_tangent(self, id, &child, t),
            Op::Unary(_, a) | Op::Call { arg: a, .. } => match child(*a) {
                Some(ta) => {
                    let at = self.prod.slope_off[p];
                    let sl = &self.prod.slopes[at + r.start..at + r.end];
                    for ((v, s), x) in t.iter_mut().zip(sl).zip(ta) {
                        *v = s * x;
                    }
                    true
                }
                None => false,
            },
            Op::Binary(op, a, b) => {
                let (ta, tb) = (child(*a), child(*b));
                if ta.is_none() && tb.is_none() {
                    false
                } else {
                    self.binary_tangent(id, *op, (*a, ta), (*b, tb), t, win);
                    true
                }
            }
            Op::MatMul(a, b) => {
                let (na, nb) = (shape(*a), shape(*b));
                let (ma, mb) = (
                    |v| Mat::new(v, na.rows, na.cols),
                    |v| Mat::new(v, nb.rows, nb.cols),
                );
                match (child(*a), child(*b)) {
                    // dA B + A dB (dW h + W dh in a forward pass with θ's tangents)
                    (Some(ta), Some(tb)) => {
                        gemm_sum(ma(ta), mb(val(*b)), ma(val(*a)), mb(tb), t);
                        true
                    }
                    (Some(ta), None) => {
                        gemm(1.0, ma(ta), mb(val(*b)), 0.0, t);
                        true
                    }
                    (None, Some(tb)) => {
                        gemm(1.0, ma(val(*a)), mb(tb), 0.0, t);
                        true
                    }
                    (None, None) => false,
                }
            }
            Op::Transpose(a) => match child(*a) {
                Some(ta) => {
                    for (e, v) in t.iter_mut().enumerate() {
                        let (i, j) = (e % node.rows, e / node.rows);
                        *v = ta[j + i * node.cols];
                    }
                    true
                }
                None => false,
            },
            Op::Gather { arg: a, .. } | Op::Element { arg: a, .. } => match child(*a) {
                Some(ta) => {
                    for (e, v) in t.iter_mut().enumerate() {
                        *v = ta[picked(g, node, e)];
                    }
                    true
                }
                None => false,
            },
            Op::Reduce(kind @ (ReduceKind::Sum | ReduceKind::SqNorm), a) => match child(*a) {
                Some(ta) => {
                    let group = g.node(*a).group_len();
                    let va = val(*a);
                    for (e, v) in t.iter_mut().enumerate() {
                        let r = e * group..(e + 1) * group;
                        *v = match kind {
                            ReduceKind::SqNorm => {
                                2.0 * ta[r.clone()]
                                    .iter()
                                    .zip(&va[r])
                                    .map(|(x, y)| x * y)
                                    .sum::<f64>()
                            }
                            _ => ta[r].iter().sum(),
                        };
                    }
                    true
                }
                None => false,
            },
            _ => generic_tangent(self, id, &child, t),
        };
        zero[p] = !nonzero;
    }

    /// The tangent of an elementwise binary node from its operands' (at least one nonzero).
    fn binary_tangent(
        &self,
        id: NodeId,
        op: ElemBinary,
        (a, ta): (NodeId, Option<&[f64]>),
        (b, tb): (NodeId, Option<&[f64]>),
        t: &mut [f64],
        win: Window,
    ) {
        let g = self.graph();
        let (na, nb) = (g.node(a), g.node(b));
        let (va, vb) = (
            &self.ev.coeff(a, 0)[win.range(na)],
            &self.ev.coeff(b, 0)[win.range(nb)],
        );
        let e0 = win.range(g.node(id)).start;
        let (node, na, nb) = (win.shape(g.node(id)), win.shape(na), win.shape(nb));
        let same = na.len() == node.len() && nb.len() == node.len();
        let ia = |e: usize| if same { e } else { bcast(node, na, e) };
        let ib = |e: usize| if same { e } else { bcast(node, nb, e) };
        let right = |e: usize| {
            let site = &self.sites[self.site_of[&id]];
            self.side[site.first + e0 + e] == Some(1)
        };
        match (op, ta, tb) {
            (ElemBinary::Add, Some(x), Some(y)) if same => {
                for ((v, x), y) in t.iter_mut().zip(x).zip(y) {
                    *v = x + y;
                }
            }
            (ElemBinary::Sub, Some(x), Some(y)) if same => {
                for ((v, x), y) in t.iter_mut().zip(x).zip(y) {
                    *v = x - y;
                }
            }
            (ElemBinary::Mul, Some(x), Some(y)) if same => {
                for e in 0..t.len() {
                    t[e] = vb[e] * x[e] + va[e] * y[e];
                }
            }
            (ElemBinary::Add | ElemBinary::Sub, _, _) => {
                // a broadcast operand (a bias column) or a zero one: the per-entry sums below,
                // 0 + x then ± y, in the same order, without the per-entry weights
                let sign = if op == ElemBinary::Sub { -1.0 } else { 1.0 };
                match ta {
                    Some(x) => spread(node, na, x, 1.0, t, false),
                    None => t.fill(0.0),
                }
                if let Some(y) = tb {
                    spread(node, nb, y, sign, t, true);
                }
            }
            _ => {
                let weights = |e: usize| -> (f64, f64) {
                    match op {
                        ElemBinary::Add => (1.0, 1.0),
                        ElemBinary::Sub => (1.0, -1.0),
                        ElemBinary::Mul => (vb[ib(e)], va[ia(e)]),
                        ElemBinary::Div => {
                            let den = vb[ib(e)];
                            (1.0 / den, -va[ia(e)] / (den * den))
                        }
                        ElemBinary::Max | ElemBinary::Min => {
                            if right(e) == (op == ElemBinary::Max) {
                                (1.0, 0.0)
                            } else {
                                (0.0, 1.0)
                            }
                        }
                    }
                };
                for (e, v) in t.iter_mut().enumerate() {
                    let (wa, wb) = weights(e);
                    let mut s = 0.0;
                    if let Some(x) = ta {
                        s += wa * x[ia(e)];
                    }
                    if let Some(y) = tb {
                        s += wb * y[ib(e)];
                    }
                    *v = s;
                }
            }
        }
    }

    /// Propagate the adjoint of needed node `p` (nonzero, every parent done) to its children;
    /// `lifted_only`: not to the nodes of θ alone (a solve needs no adjoint of θ).
    /// In the window `win` ([`Window::ALL`] for θ's nodes; any other window only where the
    /// graph splits).
    fn adjoint(
        &self,
        p: usize,
        lifted_only: bool,
        w: &mut [f64],
        zero: &mut [bool],
        win: Window,
        defer: &mut Deferred,
    ) {
        let g = self.graph();
        let id = self.order[p];
        let node = g.node(id);
        if self.prod.stage[p] == 0 {
            // θ's adjoints are read from here on: the deferred products first
            defer.flush(w);
        }
        let (o, _) = self.span(p);
        let r = win.range(node);
        let len = r.len();
        let (gout, mut lo) = Around::cut(w, o + r.start..o + r.end);
        let gout = &*gout;
        let lo = &mut lo;
        // the child's adjoint slice in the window and whether this first contribution sets it
        // (None where not wanted): a kernel that `sets` writes every entry of a first
        // contribution, any other gets the slice zeroed (the memset was 5% of a profile)
        let mut slot =
            |c: NodeId, lo: &mut Around<'_>, sets: bool| -> Option<(usize, usize, bool)> {
                let q = self.position(c)?;
                if lifted_only && self.prod.stage[q] == 0 {
                    return None;
                }
                let (co, _) = self.span(q);
                let cr = win.range(g.node(c));
                let (co, cl) = (co + cr.start, cr.len());
                let first = zero[q];
                if first {
                    zero[q] = false;
                    if !sets {
                        lo.get_mut(co, cl).fill(0.0);
                    }
                }
                Some((co, cl, first && sets))
            };
        let mut target =
            |c: NodeId, lo: &mut Around<'_>| slot(c, lo, false).map(|(co, cl, _)| (co, cl));
        let val = |c: NodeId| &self.ev.coeff(c, 0)[win.range(g.node(c))];
        if self.prod.generic {
            return generic_adjoint(self, id, gout, lo, &mut target);
        }
        match &node.op {
            Op::Param(_) => {}
            Op::Unary(_, a) | Op::Call { arg: a, .. } => {
                if let Some((co, cl, set)) = slot(*a, lo, true) {
                    let at = self.prod.slope_off[p];
                    let sl = &self.prod.slopes[at + r.start..at + r.end];
                    let terms = lo.get_mut(co, cl).iter_mut().zip(sl).zip(gout);
                    if set {
                        terms.for_each(|((v, s), x)| *v = s * x);
                    } else {
                        terms.for_each(|((v, s), x)| *v += s * x);
                    }
                }
            }
            Op::Binary(op, a, b) => {
                let (va, vb) = (val(*a), val(*b));
                let (node, na, nb) = (
                    win.shape(node),
                    win.shape(g.node(*a)),
                    win.shape(g.node(*b)),
                );
                let same = na.len() == len && nb.len() == len;
                let right = |e: usize| {
                    let site = &self.sites[self.site_of[&id]];
                    self.side[site.first + r.start + e] == Some(1)
                };
                // the same-shape sums and products set a first contribution
                let sets =
                    same && matches!(op, ElemBinary::Add | ElemBinary::Sub | ElemBinary::Mul);
                for (first, c) in [(true, *a), (false, *b)] {
                    let Some((co, cl, set)) = slot(c, lo, sets) else {
                        continue;
                    };
                    let ac = lo.get_mut(co, cl);
                    let nc = if first { na } else { nb };
                    let weight = |e: usize| -> f64 {
                        let (ia, ib) = if same {
                            (e, e)
                        } else {
                            (bcast(node, na, e), bcast(node, nb, e))
                        };
                        match op {
                            ElemBinary::Add => 1.0,
                            ElemBinary::Sub => {
                                if first {
                                    1.0
                                } else {
                                    -1.0
                                }
                            }
                            ElemBinary::Mul => {
                                if first {
                                    vb[ib]
                                } else {
                                    va[ia]
                                }
                            }
                            ElemBinary::Div => {
                                let den = vb[ib];
                                if first {
                                    1.0 / den
                                } else {
                                    -va[ia] / (den * den)
                                }
                            }
                            ElemBinary::Max | ElemBinary::Min => {
                                let takes_a = right(e) == (*op == ElemBinary::Max);
                                if takes_a == first {
                                    1.0
                                } else {
                                    0.0
                                }
                            }
                        }
                    };
                    match (op, same) {
                        (ElemBinary::Add, true) if set => ac.copy_from_slice(gout),
                        (ElemBinary::Add, true) => {
                            for (v, x) in ac.iter_mut().zip(gout) {
                                *v += x;
                            }
                        }
                        (ElemBinary::Sub, true) => {
                            let s = if first { 1.0 } else { -1.0 };
                            let terms = ac.iter_mut().zip(gout);
                            if set {
                                terms.for_each(|(v, x)| *v = s * x);
                            } else {
                                terms.for_each(|(v, x)| *v += s * x);
                            }
                        }
                        (ElemBinary::Mul, true) => {
                            let other = if first { vb } else { va };
                            let terms = ac.iter_mut().zip(gout).zip(other);
                            if set {
                                terms.for_each(|((v, x), y)| *v = x * y);
                            } else {
                                terms.for_each(|((v, x), y)| *v += x * y);
                            }
                        }
                        (ElemBinary::Add | ElemBinary::Sub, false) => {
                            let s = if first || *op == ElemBinary::Add {
                                1.0
                            } else {
                                -1.0
                            };
                            gather_into(node, nc, gout, s, ac);
                        }
                        _ => {
                            for (e, x) in gout.iter().enumerate() {
                                let i = if same { e } else { bcast(node, nc, e) };
                                ac[i] += weight(e) * x;
                            }
                        }
                    }
                }
            }
            Op::MatMul(a, b) => {
                let (na, nb) = (win.shape(g.node(*a)), win.shape(g.node(*b)));
                let wn = win.shape(node);
                let gm = Mat::new(gout, wn.rows, wn.cols);
                // W̄ += Ḡ Xᵀ of a θ node W through a few columns: deferred, summed over
                // stages by one product (the slice zeroed now if this is its first)
                let deferred = self.prod.stage[p] > 0
                    && nb.cols <= DEFER_COLUMNS / 2
                    && self.position(*a).is_some_and(|q| self.prod.stage[q] == 0);
                if deferred {
                    if let Some((co, cl, _)) = slot(*a, lo, false) {
                        defer.push(lo, co, cl, na.rows, gout, val(*b));
                    }
                } else if let Some((co, cl, set)) = slot(*a, lo, true) {
                    // a first contribution sets its slice (beta 0: the slice is not read)
                    let vbt = Mat::new(val(*b), nb.rows, nb.cols).t();
                    let beta = if set { 0.0 } else { 1.0 };
                    gemm(1.0, gm, vbt, beta, lo.get_mut(co, cl));
                }
                if let Some((co, cl, set)) = slot(*b, lo, true) {
                    let vat = Mat::new(val(*a), na.rows, na.cols).t();
                    let beta = if set { 0.0 } else { 1.0 };
                    gemm(1.0, vat, gm, beta, lo.get_mut(co, cl));
                }
            }
            Op::Transpose(a) => {
                if let Some((co, cl)) = target(*a, lo) {
                    let ac = lo.get_mut(co, cl);
                    for (e, x) in gout.iter().enumerate() {
                        let (i, j) = (e % node.rows, e / node.rows);
                        ac[j + i * node.cols] += x;
                    }
                }
            }
            Op::Gather { arg: a, .. } | Op::Element { arg: a, .. } => {
                if let Some((co, cl)) = target(*a, lo) {
                    let ac = lo.get_mut(co, cl);
                    for (e, x) in gout.iter().enumerate() {
                        ac[picked(g, node, e)] += x;
                    }
                }
            }
            Op::Reduce(kind @ (ReduceKind::Sum | ReduceKind::SqNorm), a) => {
                let group = g.node(*a).group_len();
                let va = val(*a);
                if let Some((co, cl)) = target(*a, lo) {
                    let ac = lo.get_mut(co, cl);
                    for (e, x) in gout.iter().enumerate() {
                        for i in e * group..(e + 1) * group {
                            let wgt = match kind {
                                ReduceKind::SqNorm => 2.0 * va[i],
                                _ => 1.0,
                            };
                            ac[i] += wgt * x;
                        }
                    }
                }
            }
            _ => generic_adjoint(self, id, gout, lo, &mut target),
        }
    }
}

/// `dst` (the entries of `out`) = w · `src` (`arg`'s, broadcast to `out`'s shape as [`bcast`]
/// does), or += with `add`; entries in column-major order.
fn spread(out: Shape, arg: Shape, src: &[f64], w: f64, dst: &mut [f64], add: bool) {
    let (ri, cj) = (usize::from(arg.rows != 1), usize::from(arg.cols != 1));
    for j in 0..out.cols {
        let col = &mut dst[j * out.rows..(j + 1) * out.rows];
        let base = j * cj * arg.rows;
        for (i, v) in col.iter_mut().enumerate() {
            let x = w * src[base + i * ri];
            if add {
                *v += x;
            } else {
                *v = x;
            }
        }
    }
}

/// `dst` (`arg`'s entries) += w · `src` (`out`'s), each entry of `out` onto the one of `arg` it
/// broadcasts from ([`bcast`]), in column-major order of `out`.
fn gather_into(out: Shape, arg: Shape, src: &[f64], w: f64, dst: &mut [f64]) {
    let (ri, cj) = (usize::from(arg.rows != 1), usize::from(arg.cols != 1));
    for j in 0..out.cols {
        let col = &src[j * out.rows..(j + 1) * out.rows];
        let base = j * cj * arg.rows;
        for (i, x) in col.iter().enumerate() {
            dst[base + i * ri] += w * x;
        }
    }
}

/// The tangent of `id` entry by entry through [`Linearizer::contributions`]; whether it is
/// nonzero. Elementwise functions (which have no contributions) go by their slopes.
fn generic_tangent<'a>(
    lin: &Linearizer<'_>,
    id: NodeId,
    child: &dyn Fn(NodeId) -> Option<&'a [f64]>,
    t: &mut [f64],
) -> bool {
    let g = lin.graph();
    let node: &Node = g.node(id);
    match &node.op {
        Op::Unary(_, a) | Op::Call { arg: a, .. } => {
            let Some(ta) = child(*a) else {
                return false;
            };
            let p = lin.prod.pos[id.index()] as usize;
            let at = lin.prod.slope_off[p];
            for (e, v) in t.iter_mut().enumerate() {
                *v = lin.prod.slopes[at + e] * ta[e];
            }
            return true;
        }
        Op::Transpose(a) | Op::Gather { arg: a, .. } | Op::Element { arg: a, .. } => {
            let Some(ta) = child(*a) else {
                return false;
            };
            for (e, v) in t.iter_mut().enumerate() {
                *v = match node.op {
                    Op::Transpose(_) => {
                        let (i, j) = (e % node.rows, e / node.rows);
                        ta[j + i * node.cols]
                    }
                    _ => ta[picked(g, node, e)],
                };
            }
            return true;
        }
        _ => {}
    }
    let mut parts = Vec::new();
    let mut any = false;
    for (e, v) in t.iter_mut().enumerate() {
        lin.contributions(id, e, &mut parts);
        let mut s = 0.0;
        for &(c, ce, wgt) in &parts {
            if let Some(tc) = child(c) {
                s += wgt * tc[ce];
                any = true;
            }
        }
        *v = s;
    }
    any
}

/// The adjoint of `id` propagated entry by entry through [`Linearizer::contributions`] (by
/// slopes and index maps for elementwise functions, transposes and gathers).
fn generic_adjoint(
    lin: &Linearizer<'_>,
    id: NodeId,
    gout: &[f64],
    lo: &mut Around<'_>,
    target: &mut Target<'_>,
) {
    let g = lin.graph();
    let node: &Node = g.node(id);
    match &node.op {
        Op::Param(_) => {}
        Op::Unary(_, a) | Op::Call { arg: a, .. } => {
            if let Some((co, cl)) = target(*a, lo) {
                let p = lin.prod.pos[id.index()] as usize;
                let at = lin.prod.slope_off[p];
                let ac = lo.get_mut(co, cl);
                for (e, x) in gout.iter().enumerate() {
                    ac[e] += lin.prod.slopes[at + e] * x;
                }
            }
        }
        Op::Transpose(a) | Op::Gather { arg: a, .. } | Op::Element { arg: a, .. } => {
            if let Some((co, cl)) = target(*a, lo) {
                let ac = lo.get_mut(co, cl);
                for (e, x) in gout.iter().enumerate() {
                    let i = match node.op {
                        Op::Transpose(_) => {
                            let (i, j) = (e % node.rows, e / node.rows);
                            j + i * node.cols
                        }
                        _ => picked(g, node, e),
                    };
                    ac[i] += x;
                }
            }
        }
        _ => {
            let mut parts = Vec::new();
            for (e, x) in gout.iter().enumerate() {
                lin.contributions(id, e, &mut parts);
                for &(c, ce, wgt) in &parts {
                    if let Some((co, cl)) = target(c, lo) {
                        lo.get_mut(co, cl)[ce] += wgt * x;
                    }
                }
            }
        }
    }
}
