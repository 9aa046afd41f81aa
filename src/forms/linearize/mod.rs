//! The linearization of the (P1) residuals at z on a fixed activation piece, as a sparse matrix
//! with a fixed pattern, for SRPA's subproblem (docs/math.md §5).
//!
//! [`Linearizer::new`] walks the lifted graph once: for every node that a residual depends on it
//! computes the sparsity pattern of the node's Jacobian with respect to z (the union over all
//! pieces, so inactive pieces are explicit zeros and the pattern never changes). Then
//! [`Linearizer::linearize`] at each z evaluates the values, the residuals r, the gradient of the
//! smooth part F, and the piece constraints.
//!
//! J need not be stored: [`Linearizer::with_jacobian`] with [`Jacobian::Products`] skips the
//! symbolic pass and the per-node Jacobians, and `linearize` then writes everything but J's
//! values. Either way the products with J at the last linearization ([`Linearizer::jac_mul`],
//! [`Linearizer::jac_tmul`], [`Linearizer::lifted_solve`], [`Linearizer::lifted_tsolve`], and
//! the solves fused with θ's columns; `products.rs`) run as passes over the needed nodes with the stored J's weights, in memory of
//! the order of the graph's values.
//!
//! Pieces. Every entry of a piecewise node (a registry function with breakpoints such as `relu`,
//! `leaky_relu`; `abs`; `max`, `min`) is a *site*; its piece is the interval between consecutive
//! breakpoints its argument lies in. Away from a breakpoint that is fixed by z. At a tie
//! (|a − breakpoint| ≤ `ztol`) the rule of docs/math.md §5 applies: keep the previous piece, unless the
//! previous subproblem's multiplier of that piece's constraint is positive (the step pushed
//! against the kink), then switch to the other piece. Where a site's argument is a lifted layer
//! entry u_j, staying on the piece is the bound `bp_lo − u_j ≤ s_j ≤ bp_hi − u_j`; for `max(a, b)`
//! and `min(a, b)` the argument is a − b, a bound when one side is a layer entry and the other
//! does not vary (with the sign of the side: `max(0, u)` bounds −s_j). Where it is not (an
//! activation of an expression, a `max` of two varying sides), the piece is fixed for the
//! linearization but not enforced as a constraint (write the pre-activation as its own layer to
//! get the constraint).
//! Smooth functions (`tanh`, …) are linearized, which makes SRPA prox-linear on them.

use std::collections::HashMap;

pub mod memory;
mod ops;
mod products;

use super::Lifted;
use crate::eval::{EvalError, EvalOptions, Evaluator};
use crate::graph::{ElemBinary, ElemUnary, Graph, NodeId, Op};
use crate::registry::{CallError, Order, Registry};
use mcopt_plugin_sdk::p1::copy_large;
pub use mcopt_plugin_sdk::p1::{Linearization, NO_PIECE};

/// Why a model cannot be linearized.
#[derive(Debug, Clone)]
pub enum LinearizeError {
    /// A node kind the linearization does not handle inside a layer body.
    Unsupported {
        node: NodeId,
        what: String,
    },
    Eval(EvalError),
    Call(CallError),
    /// A product with J asked for wrongly (before any linearization, or with wrong sizes).
    Product(String),
}

impl std::fmt::Display for LinearizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinearizeError::Unsupported { what, .. } => {
                write!(f, "cannot linearize a layer that uses {what}")
            }
            LinearizeError::Eval(e) => write!(f, "evaluation failed: {:?}", e.kind),
            LinearizeError::Call(e) => write!(f, "{e}"),
            LinearizeError::Product(e) => write!(f, "{e}"),
        }
    }
}

impl From<EvalError> for LinearizeError {
    fn from(e: EvalError) -> Self {
        LinearizeError::Eval(e)
    }
}

impl From<CallError> for LinearizeError {
    fn from(e: CallError) -> Self {
        LinearizeError::Call(e)
    }
}

/// How a [`Linearizer`] holds J.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jacobian {
    /// J's pattern is built once and every [`Linearizer::linearize`] writes its values.
    Stored,
    /// No pattern and no values: J is reached only through the products
    /// ([`Linearizer::jac_mul`] and the others), which need memory of the order of the graph's
    /// values, nothing of the size of J.
    Products,
}

/// The fixed sparsity pattern of J, by rows.
#[derive(Debug, Clone, Default)]
pub struct Pattern {
    pub row_ptr: Vec<usize>,
    pub col_idx: Vec<usize>,
}

/// The entries of one piecewise node.
#[derive(Debug, Clone)]
struct Site {
    node: NodeId,
    breakpoints: Vec<f64>,
    /// The lifted layer leaf the argument moves with, when it is one (then the piece is a
    /// bound on the step of that leaf).
    leaf: Option<Leaf>,
    /// First entry of this node in [`Linearizer::side`].
    first: usize,
}

/// A site's argument as a lifted layer leaf: entry e of the site has argument
/// `sign · u[offset + i] + constant`, i the entry of `node` that e reads (broadcasting).
#[derive(Debug, Clone, Copy)]
struct Leaf {
    node: NodeId,
    offset: usize,
    sign: f64,
}

/// Per-node Jacobian pattern (rows = node entries, CSR).
#[derive(Debug, Clone, Default)]
struct Csr {
    ptr: Vec<usize>,
    idx: Vec<usize>,
}

/// Linearizes the residuals of one lifted graph at many points.
pub struct Linearizer<'g> {
    lifted: &'g Lifted,
    registry: &'g Registry,
    ev: Evaluator<'g>,
    /// Needed nodes in topological order.
    order: Vec<NodeId>,
    pat: HashMap<NodeId, Csr>,
    vals: HashMap<NodeId, Vec<f64>>,
    sites: Vec<Site>,
    site_of: HashMap<NodeId, usize>,
    /// The piece (interval index) of every site entry; `None` before the first linearization.
    side: Vec<Option<u32>>,
    pattern: Pattern,
    /// The needed nodes by depth above θ's and the lifted leaves (a node's children lie in
    /// lower levels): the nodes of a level are independent.
    levels: Vec<Level>,
    /// Scratch of [`Linearizer::numeric`]'s sums (n_z, zero between nodes), one per thread.
    work: Vec<f64>,
    work2: Vec<f64>,
    /// Whether J's pattern and values are kept ([`Jacobian::Stored`]).
    stored: bool,
    /// The products with J at the last linearization.
    prod: products::Products,
    /// |a − breakpoint| ≤ ztol is a tie.
    pub ztol: f64,
    /// A bound multiplier above this counts as positive for the tie rule.
    pub multiplier_tol: f64,
    /// Values of a level of nodes from which the Jacobian's values go by two parts on two
    /// threads ([`LEVEL_HALVES_MIN`]; the numbers are the same either way).
    pub level_halves_min: usize,
}

impl<'g> Linearizer<'g> {
    /// Analyse the lifted graph: which nodes the residuals depend on, and their patterns.
    pub fn new(lifted: &'g Lifted, registry: &'g Registry) -> Result<Self, LinearizeError> {
        Self::with_jacobian(lifted, registry, Jacobian::Stored)
    }

    /// [`Linearizer::new`], or with [`Jacobian::Products`] without J's pattern (no symbolic
    /// pass, no per-node Jacobians): `linearize` then writes no values of J.
    pub fn with_jacobian(
        lifted: &'g Lifted,
        registry: &'g Registry,
        jacobian: Jacobian,
    ) -> Result<Self, LinearizeError> {
        let g = &lifted.graph;
        let ev = Evaluator::new(g, registry, Order::Zero)?;
        let order = ops::needed_nodes(lifted);
        let n_z = lifted.layout.n_z;
        let stored = jacobian == Jacobian::Stored;
        let prod = products::Products::new(lifted, &order)?;
        let mut lin = Linearizer {
            lifted,
            registry,
            ev,
            order,
            pat: HashMap::new(),
            vals: HashMap::new(),
            sites: Vec::new(),
            site_of: HashMap::new(),
            side: Vec::new(),
            pattern: Pattern::default(),
            levels: Vec::new(),
            work: if stored { vec![0.0; n_z] } else { Vec::new() },
            work2: Vec::new(),
            stored,
            prod,
            ztol: 1e-12,
            multiplier_tol: 1e-9,
            level_halves_min: LEVEL_HALVES_MIN,
        };
        let mut mark = vec![0usize; n_z];
        let mut stamp = 0usize;
        for k in 0..lin.order.len() {
            let id = lin.order[k];
            // a site first: the pattern of `max` and `min` reads its pieces
            lin.add_site(id);
            if !stored {
                continue;
            }
            let csr = lin.symbolic(id, &mut mark, &mut stamp)?;
            lin.vals.insert(id, vec![0.0; csr.idx.len()]);
            lin.pat.insert(id, csr);
        }
        if !stored {
            return Ok(lin);
        }
        lin.levels = levels(g, &lin.order, &lin.pat);
        let mut pattern = Pattern {
            row_ptr: vec![0],
            col_idx: Vec::new(),
        };
        for b in &lifted.layout.blocks {
            let csr = &lin.pat[&b.residual];
            for e in 0..b.len() {
                pattern
                    .col_idx
                    .extend_from_slice(&csr.idx[csr.ptr[e]..csr.ptr[e + 1]]);
                pattern.row_ptr.push(pattern.col_idx.len());
            }
        }
        lin.pattern = pattern;
        Ok(lin)
    }

    /// The fixed pattern of J (rows: residual entries in block order; columns: z); empty
    /// when J is not stored.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Whether J's pattern and values are kept ([`Jacobian::Stored`]).
    pub fn stored(&self) -> bool {
        self.stored
    }

    /// Number of piecewise site entries.
    pub fn sites(&self) -> usize {
        self.side.len()
    }

    /// Linearize at z. `pieces` (one per site, [`NO_PIECE`] where none was chosen yet) holds
    /// the previous pieces and receives the new ones; `multipliers` are the bound multipliers
    /// (n_z entries, ≥ 0) of the previous subproblem, for the tie rule.
    pub fn linearize(
        &mut self,
        z: &[f64],
        multipliers: Option<&[f64]>,
        pieces: &mut [u32],
        out: &mut Linearization,
    ) -> Result<(), LinearizeError> {
        if pieces.len() != self.side.len() {
            return Err(LinearizeError::Unsupported {
                node: self.lifted.graph.objective,
                what: format!("{} pieces for {} sites", pieces.len(), self.side.len()),
            });
        }
        self.prod.set_valid(false);
        for (s, &p) in self.side.iter_mut().zip(pieces.iter()) {
            *s = (p != NO_PIECE).then_some(p);
        }
        let n_z = self.lifted.layout.n_z;
        out.grad.resize(n_z, 0.0);
        out.smooth = self.ev.gradient(z, &mut out.grad, EvalOptions::default())?;
        out.lower.clear();
        out.lower.resize(n_z, f64::NEG_INFINITY);
        out.upper.clear();
        out.upper.resize(n_z, f64::INFINITY);
        out.ties = 0;
        out.switched = 0;
        self.choose_pieces(multipliers, out)?;
        for (p, s) in pieces.iter_mut().zip(&self.side) {
            *p = s.unwrap_or(NO_PIECE);
        }
        if self.stored {
            self.numeric_by_levels()?;
        }
        out.residual.clear();
        let blocks = &self.lifted.layout.blocks;
        if self.stored {
            // J's values block after block, each by [`copy_large`] into the kept buffer (the
            // TIMIT shape's 6.47 M values)
            let nnz = blocks.iter().map(|b| self.vals[&b.residual].len()).sum();
            out.jac.resize(nnz, 0.0);
            let mut at = 0;
            for b in blocks {
                let v = &self.vals[&b.residual];
                copy_large(&mut out.jac[at..at + v.len()], v);
                at += v.len();
            }
        } else {
            out.jac.clear();
        }
        for b in blocks {
            out.residual.extend_from_slice(self.ev.coeff(b.residual, 0));
        }
        self.prod.set_valid(true);
        Ok(())
    }

    fn graph(&self) -> &'g Graph {
        &self.lifted.graph
    }

    /// Every needed node's Jacobian values, level after level; a level with at least
    /// `level_halves_min` values in all goes in two parts of about equal values on two
    /// threads (on the TIMIT shape a level holds a node per time step). Each node's values are
    /// computed as in one pass, so the result does not depend on the threads. Nodes that call
    /// a plugin's function stay on the calling thread.
    fn numeric_by_levels(&mut self) -> Result<(), LinearizeError> {
        let levels = std::mem::take(&mut self.levels);
        let mut work = std::mem::take(&mut self.work);
        let mut work2 = std::mem::take(&mut self.work2);
        let two = products::cores() > 1;
        let mut result = Ok(());
        for level in &levels {
            let mut nodes: Vec<(NodeId, Vec<f64>)> = level
                .nodes
                .iter()
                .map(|&id| (id, self.vals.remove(&id).unwrap_or_default()))
                .collect();
            let split = two && level.values >= self.level_halves_min;
            let cut = if split { level.cut } else { nodes.len() };
            let this = &*self;
            let run = |part: &mut [(NodeId, Vec<f64>)], work: &mut [f64]| {
                part.iter_mut()
                    .try_for_each(|(id, v)| this.numeric(*id, v, work))
            };
            let (first, second) = nodes.split_at_mut(cut);
            let done = if second.is_empty() {
                run(first, &mut work)
            } else {
                work2.resize(work.len(), 0.0);
                std::thread::scope(|scope| {
                    let helper = scope.spawn(|| run(second, &mut work2));
                    let a = run(first, &mut work);
                    match helper.join() {
                        Ok(b) => a.and(b),
                        Err(e) => std::panic::resume_unwind(e),
                    }
                })
            };
            // every node's values go back, also after an error
            self.vals.extend(nodes);
            if done.is_err() {
                result = done;
                break;
            }
        }
        self.levels = levels;
        self.work = work;
        self.work2 = work2;
        result
    }

    /// Register the entries of `id` as sites if it is piecewise.
    fn add_site(&mut self, id: NodeId) {
        let g = self.graph();
        let node = g.node(id);
        let (bps, leaf) = match &node.op {
            Op::Unary(ElemUnary::Abs, a) => (vec![0.0], self.leaf(*a, 1.0)),
            // the argument of the kink test is a − b: a leaf against a side that does not vary
            Op::Binary(ElemBinary::Max | ElemBinary::Min, a, b) => {
                let leaf = match (g.node(*a).varies, g.node(*b).varies) {
                    (true, false) => self.leaf(*a, 1.0),
                    (false, true) => self.leaf(*b, -1.0),
                    _ => None,
                };
                (vec![0.0], leaf)
            }
            Op::Call { func, arg, .. } => {
                let bps = self.registry.info(*func).breakpoints.clone();
                if bps.is_empty() {
                    return;
                }
                (bps, self.leaf(*arg, 1.0))
            }
            _ => return,
        };
        self.site_of.insert(id, self.sites.len());
        self.sites.push(Site {
            node: id,
            breakpoints: bps,
            leaf,
            first: self.side.len(),
        });
        self.side.extend(std::iter::repeat_n(None, node.len()));
    }

    /// `arg` as a lifted layer leaf entering a site's argument with `sign`, if it is one.
    fn leaf(&self, arg: NodeId, sign: f64) -> Option<Leaf> {
        let g = self.graph();
        match g.node(arg).op {
            Op::Param(k) if g.params[k].offset >= self.lifted.layout.n_theta => Some(Leaf {
                node: arg,
                offset: g.params[k].offset,
                sign,
            }),
            _ => None,
        }
    }
}

/// Values of a level of needed nodes from which [`Linearizer::numeric_by_levels`] splits it
/// over two threads by default (the TIMIT shape's levels hold hundreds of thousands; syn's and sp500's a
/// few thousand, computed in one pass as before).
pub const LEVEL_HALVES_MIN: usize = 200_000;

/// A level of [`Linearizer::levels`]: its nodes (those that call a plugin's function first),
/// their values in all, and where two parts of about equal values split them (the first part
/// holding the plugin calls).
struct Level {
    nodes: Vec<NodeId>,
    values: usize,
    cut: usize,
}

/// The needed nodes `order` (children before parents, patterns `pat`) by level: 0 for nodes
/// without needed children (the leaves), else one more than their highest needed child.
fn levels(g: &Graph, order: &[NodeId], pat: &HashMap<NodeId, Csr>) -> Vec<Level> {
    let mut level = vec![usize::MAX; g.nodes.len()];
    let mut by_level: Vec<Vec<NodeId>> = Vec::new();
    for &id in order {
        let l = if matches!(g.node(id).op, Op::Param(_)) {
            0
        } else {
            g.children(id)
                .filter(|c| level[c.index()] != usize::MAX)
                .map(|c| level[c.index()] + 1)
                .max()
                .unwrap_or(0)
        };
        level[id.index()] = l;
        if by_level.len() <= l {
            by_level.resize_with(l + 1, Vec::new);
        }
        by_level[l].push(id);
    }
    let call = |id: &NodeId| matches!(g.node(*id).op, Op::Call { .. });
    by_level
        .into_iter()
        .map(|mut nodes| {
            nodes.sort_by_key(|id| !call(id));
            let len = |id: &NodeId| pat.get(id).map_or(0, |p| p.idx.len());
            let values: usize = nodes.iter().map(len).sum();
            let calls = nodes.iter().filter(|id| call(id)).count();
            let mut acc = 0;
            let cut = nodes
                .iter()
                .position(|id| {
                    acc += len(id);
                    2 * acc > values
                })
                .map_or(nodes.len(), |k| k + 1)
                .clamp(calls.max(1), nodes.len().max(1));
            Level { nodes, values, cut }
        })
        .collect()
}
