//! The expression graph: a flat, topologically ordered list of tensor-level nodes.
//!
//! Children always come before parents, ids are small `Copy` indices, and evaluation is one
//! forward loop ([`crate::eval`]). A node's value is a column-major matrix of `rows × cols`
//! entries, where for batched data (N sequences) a per-sequence vector is stored as the N
//! columns of a `rows × N` matrix, so a matrix–vector product becomes one matrix product.

mod lower;

use std::ops::Range;
use std::sync::Arc;

pub use lower::{lower, LowerOptions, SeqData};

pub use crate::check::Shape;
use crate::diag::{Diag, SourceFile, Span};
use crate::registry::FunctionId;

/// Index of a node in [`Graph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    SqNorm,
    Norm1,
    /// The Euclidean norm ‖a‖ (exact to second order at a = 0; docs/math.md, docs/derivatives.md).
    Norm2,
    /// The largest entry of each group: ONE n-ary max whose pieces are the entries (not a tree
    /// of binary maxes). Forward mode picks, among the entries within ztol of the largest a₀
    /// (the tied entries), the lexicographically largest (a₁, a₂): an exact one-sided
    /// derivative; a tie of two or more entries counts as one kink. Reverse mode selects the
    /// first entry with the largest a₀. `min(v)` lowers to −max(−v), `norminf(v)` to
    /// max(|v|). In the certificates, the tied entries at a point are the pieces of this one
    /// kink (`stationarity::kinks::max_ties`).
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemBinary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ElemUnary {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    PowI(i32),
    /// `pow(a, p)` for a real constant p: any a when p is an integer (a ≠ 0 when p < 0),
    /// else a > 0, or a = 0 with p > 0 (one-sided rules at 0 in docs/derivatives.md).
    Pow(f64),
    /// Multiplication by a constant.
    Scale(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A constant: `Graph::consts[range]`, column-major.
    Const(Range<usize>),
    /// Parameter `index`: `Graph::params[index]`.
    Param(usize),
    Unary(ElemUnary, NodeId),
    /// Elementwise with broadcasting of dimensions of size 1.
    Binary(ElemBinary, NodeId, NodeId),
    MatMul(NodeId, NodeId),
    Transpose(NodeId),
    /// Reduce each group (a column when `batched`, else everything) to one number.
    Reduce(ReduceKind, NodeId),
    /// Inner product per group.
    Dot(NodeId, NodeId),
    /// Entry `(row, col)` of each sequence (col is 0 for batched vectors).
    Element {
        arg: NodeId,
        row: usize,
        col: usize,
    },
    /// Entries `start + k·step`, k = 0..len, of `arg` (column-major, 0-based; per column when
    /// batched) as a `len`-vector (`len × sequences` when batched): the entries `x[i + c]` a
    /// reduction over an index range takes, in one node whatever the length of the range.
    Gather {
        arg: NodeId,
        start: usize,
        step: isize,
        len: usize,
    },
    /// Elementwise registry function with constant parameters `Graph::fparams[params]`.
    Call {
        func: FunctionId,
        params: Range<usize>,
        arg: NodeId,
    },
    /// `Σ_k w_k Σ_j v_k[j]` over nodes `Graph::lists[terms]`, with `w_k = scale / cols_k` for
    /// means over sequences and `w_k = scale` for sums.
    Accumulate {
        terms: Range<usize>,
        scale: f64,
        per_column_mean: bool,
    },
}

impl Op {
    /// The same operation with every operand `a` replaced by `f(a)`. An `Accumulate` keeps its
    /// range of `Graph::lists`: whoever renumbers the nodes renumbers the lists too.
    pub fn map_operands(&self, f: impl Fn(NodeId) -> NodeId) -> Op {
        match self {
            Op::Const(_) | Op::Param(_) | Op::Accumulate { .. } => self.clone(),
            Op::Unary(u, a) => Op::Unary(*u, f(*a)),
            Op::Binary(b, x, y) => Op::Binary(*b, f(*x), f(*y)),
            Op::MatMul(x, y) => Op::MatMul(f(*x), f(*y)),
            Op::Dot(x, y) => Op::Dot(f(*x), f(*y)),
            Op::Transpose(a) => Op::Transpose(f(*a)),
            Op::Reduce(k, a) => Op::Reduce(*k, f(*a)),
            Op::Element { arg, row, col } => Op::Element {
                arg: f(*arg),
                row: *row,
                col: *col,
            },
            Op::Gather {
                arg,
                start,
                step,
                len,
            } => Op::Gather {
                arg: f(*arg),
                start: *start,
                step: *step,
                len: *len,
            },
            Op::Call { func, params, arg } => Op::Call {
                func: *func,
                params: params.clone(),
                arg: f(*arg),
            },
        }
    }
}

/// Entry k of an [`Op::Gather`]: `start + k·step` (inside the operand, as the checker proved).
#[inline(always)]
pub fn gather_index(start: usize, step: isize, k: usize) -> usize {
    start.wrapping_add_signed(step * k as isize)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub rows: usize,
    pub cols: usize,
    /// Columns are sequences of a batch.
    pub batched: bool,
    /// Depends on the parameters (its Taylor coefficients a₁, a₂ may be nonzero).
    pub varies: bool,
    /// Affine in the parameters, so a₂ = 0 along any ray.
    pub affine: bool,
    pub span: Span,
}

impl Node {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries of one sequence: a column of a batched node, all entries otherwise (what a
    /// gather indexes and a per-sequence reduction reduces).
    pub fn group_len(&self) -> usize {
        if self.batched {
            self.rows
        } else {
            self.len()
        }
    }
}

/// A parameter of the model, with where its entries live in the flat vector θ.
#[derive(Debug, Clone)]
pub struct ParamSlot {
    pub name: String,
    pub shape: Shape,
    pub node: NodeId,
    pub offset: usize,
    pub span: Span,
}

/// One layer u_ℓ of the multicomposite structure (one time step of an indexed layer).
#[derive(Debug, Clone)]
pub struct LayerSlot {
    /// `u`, or `h[3]` for time step 3 of an indexed layer.
    pub name: String,
    pub layer: usize,
    pub time: Option<u64>,
    pub node: NodeId,
}

/// A `data` declaration as an input of the graph: the nodes holding the time steps the graph
/// reads, each an [`Op::Const`] of `width × sequences` entries (in [`Graph::consts`], the data
/// bound at lowering). An evaluator binds other data of the same shape into these nodes
/// (`Evaluator::bind`), so one graph serves every batch of that shape.
#[derive(Debug, Clone)]
pub struct DataInput {
    pub name: String,
    pub width: usize,
    pub span: Span,
    /// (time step, 1-based with the warm-up counted; node) for every step the graph reads.
    pub steps: Vec<(usize, NodeId)>,
}

/// The lowered model.
#[derive(Debug, Clone)]
pub struct Graph {
    pub source: Arc<SourceFile>,
    pub nodes: Vec<Node>,
    pub consts: Vec<f64>,
    pub fparams: Vec<f64>,
    pub lists: Vec<NodeId>,
    pub params: Vec<ParamSlot>,
    pub layers: Vec<LayerSlot>,
    /// The objective f (loss plus regularization).
    pub objective: NodeId,
    /// The data-dependent part g of the objective (the training or test loss).
    pub loss: NodeId,
    /// Number of time steps and sequences of the bound data (0 and 1 without data); `steps`
    /// counts the warm-up steps.
    pub steps: usize,
    pub sequences: usize,
    /// Leading time steps that run the recurrence but are left out of the reductions over
    /// time (a test split carried over from the training steps; see [`SeqData::warmup`]).
    pub warmup: usize,
    /// One entry per data declaration of the model, in order (empty for a graph whose nodes
    /// are not the lowering's, e.g. a lifted problem's).
    pub inputs: Vec<DataInput>,
}

impl Graph {
    /// Whether `data` can be bound to the graph's inputs: one entry per data declaration, each
    /// with the graph's time steps, sequences and warm-up and `steps × sequences × width` values.
    pub fn check_data(&self, data: &[SeqData]) -> Result<(), Diag> {
        if data.len() != self.inputs.len() {
            let msg = format!(
                "the graph reads {} data sequence(s), {} were bound",
                self.inputs.len(),
                data.len()
            );
            return Err(Diag::new("mcopt::lower::data", msg).in_file(&self.source.name));
        }
        for (input, d) in self.inputs.iter().zip(data) {
            let (steps, seqs) = (self.steps, self.sequences);
            if d.steps != steps
                || d.sequences != seqs
                || d.warmup != self.warmup
                || d.values.len() != steps * seqs * input.width
            {
                let msg = format!(
                    "data `{}` has {} step(s) of {} sequence(s) ({} values, warm-up {}); this graph was lowered for {steps} step(s) of {seqs} sequence(s) of width {} (warm-up {})",
                    input.name, d.steps, d.sequences, d.values.len(), d.warmup, input.width, self.warmup
                );
                return Err(Diag::new("mcopt::lower::data", msg).at(
                    &self.source,
                    input.span,
                    "declared here",
                ));
            }
        }
        Ok(())
    }

    /// Number of scalar parameters n = dim θ.
    pub fn n_params(&self) -> usize {
        self.params.iter().map(|p| p.shape.len()).sum()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The weight of term `t` in an `Op::Accumulate { scale, per_column_mean, .. }`:
    /// `scale / cols` for a mean over sequences, else `scale`.
    pub fn accumulate_weight(&self, t: NodeId, scale: f64, per_column_mean: bool) -> f64 {
        if per_column_mean {
            scale / self.node(t).cols as f64
        } else {
            scale
        }
    }

    /// The children of a node, in order.
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let (small, list): ([Option<NodeId>; 2], &[NodeId]) = match &self.node(id).op {
            Op::Const(_) | Op::Param(_) => ([None, None], &[]),
            Op::Unary(_, a) | Op::Transpose(a) | Op::Reduce(_, a) => ([Some(*a), None], &[]),
            Op::Element { arg, .. } | Op::Call { arg, .. } | Op::Gather { arg, .. } => {
                ([Some(*arg), None], &[])
            }
            Op::Binary(_, a, b) | Op::MatMul(a, b) | Op::Dot(a, b) => ([Some(*a), Some(*b)], &[]),
            Op::Accumulate { terms, .. } => ([None, None], &self.lists[terms.clone()]),
        };
        small.into_iter().flatten().chain(list.iter().copied())
    }
}
