//! What SRPA's (P1) structure will cost in memory, known from the lifted graph before any of it
//! is allocated (issue 19 item 1).
//!
//! [`estimate`] counts, node by node and entry by entry, how many columns of z each row of a
//! node's Jacobian reads, by the rules of [`Linearizer::new`](super::Linearizer::new)'s
//! symbolic pass but with counts instead of column lists (a sum of the children's counts: the
//! union of their columns is never larger, and for layers whose lifted children are leaves the
//! two are equal). From these and the sizes of z it prices the buffers the host and the solver
//! hold: the linearizer's per-node patterns and values, the copies of J's pattern and values on
//! both sides of the plugin boundary, the KKT matrix's analysis and its factor (about one dense
//! row of θ columns per residual row: the fill the θ columns shared by every row make), and on
//! the parameter-Schur path the dense n_θ × n_θ complement. The buffers of the evaluators are
//! included; small workspaces are not, so the estimate is a floor of the peak, within a few
//! tens of per cent on syn and sp500.
//!
//! It prices the products path too ([`Estimate::products`]: J never stored): the evaluators,
//! one tangent or adjoint per needed entry and one slope per elementwise-function entry
//! (`products.rs`), the matrix-free subproblem solver's vectors and the linearizations.

use super::ops::{needed_nodes, op_name};
use super::LinearizeError;
use crate::forms::Lifted;
use crate::graph::{Node, Op};

/// Bytes of one index or value (`usize` and `f64`).
const WORD: u64 = 8;
/// The SRPA subproblem solver's thresholds for the parameter-Schur path
/// (`solvers/srpa/subproblem.rs`: `SCHUR_MIN_FACTOR`, `SCHUR_MAX_DENSE`).
const SCHUR_MIN_FACTOR: u64 = 2_000_000;
const SCHUR_MAX_DENSE: u64 = 16_000_000;
/// Right-hand sides per blocked solve and threads when the Schur complement is formed.
const SCHUR_CHUNK: u64 = 48;
const SCHUR_THREADS: u64 = 4;
/// Values in one thread's block of right-hand sides when C is formed through B's augmented
/// matrix (`solvers/srpa/schur.rs`: `CHUNK_VALUES`).
const SCHUR_CHUNK_VALUES: u64 = 4_000_000;
/// A row of a block that no other residual reads is eliminated in closed form when it reads at
/// most this many other lifted columns (`solvers/srpa/schur.rs`: `ELIMINATE_MAX_COLUMNS`).
const ELIMINATE_MAX_COLUMNS: u64 = 8;

/// The sizes of the (P1) structure and the bytes it needs, by part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// dim θ and dim z.
    pub n_theta: usize,
    pub n_z: usize,
    /// Residual rows m (the lifted entries).
    pub rows: usize,
    /// Stored entries of J (an upper bound of the pattern's size; equal on layered RNNs).
    pub jac_nnz: u64,
    /// Values of the KKT factor (an estimate: see the module docs; 0 where the solver's
    /// automatic choice would not factor the KKT matrix).
    pub factor_nnz: u64,
    /// Whether the subproblem solver's automatic choice would take the parameter-Schur path.
    pub schur: bool,
    /// (what, bytes) of the path that stores J, largest first.
    pub parts: Vec<(&'static str, u64)>,
    /// (what, bytes) of the path that never stores J (the products, `Jacobian::Products`),
    /// largest first.
    pub products: Vec<(&'static str, u64)>,
}

impl Estimate {
    /// All bytes of the path that stores J.
    pub fn total(&self) -> u64 {
        sum(&self.parts)
    }

    /// All bytes of the products path.
    pub fn products_total(&self) -> u64 {
        sum(&self.products)
    }
}

fn sum(parts: &[(&'static str, u64)]) -> u64 {
    parts
        .iter()
        .fold(0u64, |acc, (_, b)| acc.saturating_add(*b))
}

/// The most entries of J the host stores: past this SRPA reaches J through the products even
/// when the stored path would fit in memory. The stored path holds J's pattern four times and
/// its values three times (about 56 bytes per entry: 2.8 GB at 50 M entries) and its factor or
/// preconditioner grows with it, while a product costs about one pass over the graph whatever
/// the entries (docs/srpa.md, "Products").
pub const STORED_MAX_ENTRIES: u64 = 50_000_000;

/// Vectors of n_z or m entries the matrix-free subproblem solver holds (Newton–CG: iterates,
/// multipliers, residuals, search directions, preconditioner diagonals), a generous count.
const SOLVER_VECTORS: u64 = 16;
/// The matrix-free solver forms its dense n_θ × n_θ Woodbury complement up to this n_θ, and
/// past it keeps this many directions of its inner solve (and one inner solve as many more),
/// 2 n_θ values each.
const WOODBURY_MAX_THETA: u64 = mcopt_plugin_sdk::p1::WOODBURY_MAX_THETA as u64;
const KRONECKER_RECYCLED_MAX: u64 = mcopt_plugin_sdk::p1::KRONECKER_RECYCLED_MAX as u64;
const BOUND_COLUMNS_MAX: u64 = mcopt_plugin_sdk::p1::BOUND_COLUMNS_MAX as u64;

/// Values of the Kronecker factors of the parameters in θ (both factors and their
/// eigenvectors: 2 (rows² + cols²) per parameter).
fn kronecker_factors(g: &crate::graph::Graph, n_theta: usize) -> u64 {
    g.params
        .iter()
        .filter(|p| p.offset < n_theta)
        .map(|p| 2 * ((p.shape.rows * p.shape.rows + p.shape.cols * p.shape.cols) as u64))
        .sum()
}

/// Per entry of a node: the θ columns and the lifted columns its Jacobian row reads.
type Counts = Vec<(u32, u32)>;

/// The estimate for `lifted`; an error where the linearizer would refuse the model (the same
/// error, so the caller can report it as it reports the linearizer's).
pub fn estimate(lifted: &Lifted) -> Result<Estimate, LinearizeError> {
    let g = &lifted.graph;
    let n_theta = lifted.layout.n_theta;
    let n_z = lifted.layout.n_z;
    let rows = n_z - n_theta;
    let order = needed_nodes(lifted);
    let mut counts: Vec<Option<Counts>> = vec![None; g.nodes.len()];
    let mut node_nnz: u64 = 0;
    let mut node_entries: u64 = 0;
    for &id in &order {
        let node = g.node(id);
        let c =
            node_counts(g, node, &counts, n_theta).ok_or_else(|| LinearizeError::Unsupported {
                node: id,
                what: op_name(&node.op).to_owned(),
            })?;
        node_nnz = node_nnz.saturating_add(c.iter().map(|&(a, b)| a as u64 + b as u64).sum());
        node_entries += c.len() as u64;
        counts[id.index()] = Some(c);
    }
    let mut jac_nnz: u64 = 0;
    let mut theta_rows: u64 = 0;
    for b in &lifted.layout.blocks {
        if let Some(c) = &counts[b.residual.index()] {
            jac_nnz = jac_nnz.saturating_add(c.iter().map(|&(a, b)| a as u64 + b as u64).sum());
            theta_rows += c.iter().filter(|&&(a, _)| a > 0).count() as u64;
        }
    }
    let (n, m, nt) = (n_z as u64, rows as u64, n_theta as u64);
    // every residual row that reads θ ends up with a dense row of θ columns in the factor
    // (measured on sp500: 12.0 M factor values against 11.1 M by this rule)
    let kkt = n + m;
    let fill = m
        .max(theta_rows)
        .saturating_mul(nt)
        .saturating_add(jac_nnz)
        .saturating_add(kkt);
    let small_dense = nt.saturating_mul(nt) <= SCHUR_MAX_DENSE && nt > 0 && nt < n;
    // the solver's `Method::Auto` skips the KKT matrix when it alone passes the threshold: it
    // then holds no KKT factor, and B goes through its augmented matrix
    let kkt_entries = (n + m).saturating_add(jac_nnz);
    let augmented = small_dense && kkt_entries >= SCHUR_MIN_FACTOR;
    let factor_nnz = if augmented {
        0
    } else {
        fill.min(kkt.saturating_mul(kkt + 1) / 2)
    };
    let schur = augmented || (factor_nnz >= SCHUR_MIN_FACTOR && small_dense);
    let values: u64 = g.nodes.iter().map(|x| x.len() as u64).sum();
    // the training problem's evaluators of the training and test graphs with their reverse-mode
    // buffers, and the data in the graphs (measured on the TIMIT shape: 193 MiB for a run that
    // does not lift, against 174 MiB by this rule)
    let training = (
        "the training problem and the data",
        values
            .saturating_mul(4)
            .saturating_add(3 * g.consts.len() as u64)
            .saturating_mul(WORD),
    );
    // r, ∇F and the bounds on both sides of the plugin boundary, and SRPA's iterates (z, the
    // trial z, the step, the multipliers, the pieces, …)
    let linearizations = (
        "the linearizations and iterates",
        (2 * (3 * n + m) + 8 * n).saturating_mul(WORD),
    );
    let pattern = |k: u64| {
        k.saturating_mul(jac_nnz.saturating_add(m + 1))
            .saturating_mul(WORD)
    };
    let mut parts = vec![
        (
            "the linearizer's per-node Jacobians",
            (2 * node_nnz + node_entries + order.len() as u64).saturating_mul(WORD),
        ),
        // the linearizer's, the host's structure and the solver's structure and matrix
        ("four copies of J's pattern", pattern(4)),
        // the host's and the solver's linearization, the solver's matrix
        (
            "three copies of J's values",
            jac_nnz.saturating_mul(3 * WORD),
        ),
        // the penalized, original and linearizer's evaluators, with the gradient's adjoints
        ("the evaluators", values.saturating_mul(4 * WORD)),
        training,
        linearizations,
    ];
    if augmented {
        parts.push((
            "the parameter-Schur preconditioner",
            augmented_schur(lifted, &order, &counts, jac_nnz).saturating_mul(WORD),
        ));
    } else {
        parts.push((
            "the KKT matrix's analysis",
            (n + jac_nnz + m).saturating_mul(3 * WORD),
        ));
        parts.push((
            "the KKT factor",
            factor_nnz.saturating_add(2 * kkt).saturating_mul(WORD),
        ));
    }
    if schur && !augmented {
        parts.push((
            "the parameter-Schur preconditioner",
            (2 * nt * nt + SCHUR_THREADS * 2 * SCHUR_CHUNK * m)
                .saturating_add(jac_nnz.saturating_mul(2))
                .saturating_mul(WORD),
        ));
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.1));
    let mut products = vec![
        ("the evaluators", values.saturating_mul(4 * WORD)),
        // the products' own buffers as they will lay them out: each pass worker's tangents or
        // adjoints, one slope per elementwise-function entry
        (
            "the products' tangents and slopes",
            super::products::pass_bytes(lifted, &order)? as u64,
        ),
        (
            "the subproblem solver's vectors",
            (SOLVER_VECTORS * (n + m)).saturating_mul(WORD),
        ),
        (
            "the matrix-free Woodbury complement",
            // with the bordered correction's two θ-vectors per column at a bound
            if nt <= WOODBURY_MAX_THETA {
                (nt * nt + 2 * BOUND_COLUMNS_MAX * nt).saturating_mul(WORD)
            } else {
                (4 * KRONECKER_RECYCLED_MAX * nt
                    + 2 * BOUND_COLUMNS_MAX * nt
                    + kronecker_factors(g, lifted.layout.n_theta))
                .saturating_mul(WORD)
            },
        ),
        training,
        linearizations,
    ];
    products.sort_by_key(|p| std::cmp::Reverse(p.1));
    Ok(Estimate {
        n_theta,
        n_z,
        rows,
        jac_nnz,
        factor_nnz,
        schur,
        parts,
        products,
    })
}

/// Words the parameter-Schur path holds with B through its augmented matrix
/// (`solvers/srpa/schur.rs`, `BForm::Augmented`): a block whose entries no other residual reads
/// (an output layer's) has single-entry columns, so its rows are eliminated in closed form when
/// they read at most [`ELIMINATE_MAX_COLUMNS`] other lifted columns, and the sparse factor only
/// sees the other blocks' columns and the rows kept. Priced: J's rows, columns and entry slots
/// (2 words per 4 entries), U compacted (1.5 words per θ entry, and its
/// rows), the eliminated rows with their columns and pairs, the factored matrix's analysis and
/// a factor of about twice its entries, the vectors of m, the blocks of right-hand sides C is
/// formed with, and C.
fn augmented_schur(
    lifted: &Lifted,
    order: &[crate::graph::NodeId],
    counts: &[Option<Counts>],
    jac_nnz: u64,
) -> u64 {
    let g = &lifted.graph;
    let blocks = &lifted.layout.blocks;
    let nt = lifted.layout.n_theta as u64;
    let m = (lifted.layout.n_z - lifted.layout.n_theta) as u64;
    // the blocks whose leaf a needed node other than their own residual reads
    let mut block_of_leaf = vec![usize::MAX; g.nodes.len()];
    for (b, blk) in blocks.iter().enumerate() {
        block_of_leaf[blk.leaf.index()] = b;
    }
    let mut read_elsewhere = vec![false; blocks.len()];
    for &id in order {
        for child in g.children(id) {
            let b = block_of_leaf[child.index()];
            if b != usize::MAX && blocks[b].residual != id {
                read_elsewhere[b] = true;
            }
        }
    }
    let (mut theta_nnz, mut columns, mut kept_rows, mut kept_entries) = (0u64, 0u64, 0u64, 0u64);
    let (mut elim_rows, mut elim_cols, mut elim_pairs) = (0u64, 0u64, 0u64);
    for (b, blk) in blocks.iter().enumerate() {
        let Some(c) = &counts[blk.residual.index()] else {
            continue;
        };
        let single = !read_elsewhere[b];
        if !single {
            columns += c.len() as u64;
        }
        for &(theta, lifted_cols) in c {
            theta_nnz += theta as u64;
            // the lifted columns besides the row's own
            let others = lifted_cols.saturating_sub(1) as u64;
            if single && others <= ELIMINATE_MAX_COLUMNS {
                elim_rows += 1;
                elim_cols += others;
                elim_pairs += others * (others + 1) / 2;
            } else {
                kept_rows += 1;
                kept_entries += if single { others } else { lifted_cols as u64 };
            }
        }
    }
    let dim = columns + kept_rows;
    let entries = dim + kept_entries + elim_pairs;
    let chunk = (SCHUR_CHUNK_VALUES).min(dim.saturating_mul(SCHUR_CHUNK));
    // (no copy of J: C is formed at each Newton system's own point, and a checkpoint keeps
    // the preconditioner on C itself)
    (jac_nnz / 2 * 3)
        .saturating_add(theta_nnz / 2 * 4 + 2 * (m + 1))
        .saturating_add(3 * elim_rows + 2 * elim_cols + elim_pairs / 2 * 3)
        .saturating_add(entries.saturating_mul(3 + 2))
        .saturating_add(4 * m + 2 * dim)
        .saturating_add(2 * nt * nt + SCHUR_THREADS * 2 * chunk)
}

/// Index of output entry `e` of `out` in a broadcast operand `arg`.
fn bcast(out: &Node, arg: &Node, e: usize) -> usize {
    let (i, j) = (e % out.rows, e / out.rows);
    let i = if arg.rows == 1 { 0 } else { i };
    let j = if arg.cols == 1 { 0 } else { j };
    i + j * arg.rows
}

fn add(a: (u32, u32), b: (u32, u32)) -> (u32, u32) {
    (a.0.saturating_add(b.0), a.1.saturating_add(b.1))
}

/// The counts of `node` from its children's, as [`super::Linearizer`]'s symbolic pass would
/// list them; `None` for an operation it does not handle.
fn node_counts(
    g: &crate::graph::Graph,
    node: &Node,
    counts: &[Option<Counts>],
    n_theta: usize,
) -> Option<Counts> {
    let of = |id: &crate::graph::NodeId| counts[id.index()].as_ref();
    let zero = (0u32, 0u32);
    Some(match &node.op {
        Op::Param(k) => {
            let one = if g.params[*k].offset < n_theta {
                (1, 0)
            } else {
                (0, 1)
            };
            vec![one; node.len()]
        }
        Op::Unary(_, a) | Op::Call { arg: a, .. } => of(a)?.clone(),
        Op::Transpose(a) => {
            let child = of(a)?;
            (0..node.len())
                .map(|e| {
                    let (i, j) = (e % node.rows, e / node.rows);
                    child[j + i * node.cols]
                })
                .collect()
        }
        Op::Gather { arg: a, .. } | Op::Element { arg: a, .. } => {
            let child = of(a)?;
            (0..node.len())
                .map(|e| child[super::ops::picked(g, node, e)])
                .collect()
        }
        // Reductions and inner products: the sum of the entries' counts, an upper bound of
        // their union.
        Op::Reduce(crate::graph::ReduceKind::Sum | crate::graph::ReduceKind::SqNorm, a) => {
            let child = of(a)?;
            let group = g.node(*a).group_len();
            (0..node.len())
                .map(|e| {
                    child[e * group..(e + 1) * group]
                        .iter()
                        .fold(zero, |s, &c| add(s, c))
                })
                .map(|c| (c.0.min(n_theta as u32), c.1))
                .collect()
        }
        Op::Dot(a, b) => {
            let (na, nb) = (g.node(*a), g.node(*b));
            (0..node.len())
                .map(|e| {
                    super::ops::dot_pairs(na, nb, node, e).fold(zero, |s, (ia, ib)| {
                        let ca = of(a).map_or(zero, |c| c[ia]);
                        let cb = of(b).map_or(zero, |c| c[ib]);
                        add(add(s, ca), cb)
                    })
                })
                .map(|c| (c.0.min(n_theta as u32), c.1))
                .collect()
        }
        Op::Binary(_, a, b) => {
            let (na, nb) = (g.node(*a), g.node(*b));
            (0..node.len())
                .map(|e| {
                    let ca = of(a).map_or(zero, |c| c[bcast(node, na, e)]);
                    let cb = of(b).map_or(zero, |c| c[bcast(node, nb, e)]);
                    add(ca, cb)
                })
                .collect()
        }
        Op::MatMul(a, b) => {
            let (na, nb) = (g.node(*a), g.node(*b));
            let (ca, cb) = (of(a), of(b));
            (0..node.len())
                .map(|e| {
                    let (i, j) = (e % node.rows, e / node.rows);
                    (0..na.cols).fold(zero, |acc, l| {
                        let x = ca.map_or(zero, |c| c[i + l * na.rows]);
                        let y = cb.map_or(zero, |c| c[l + j * nb.rows]);
                        add(add(acc, x), y)
                    })
                })
                .collect()
        }
        _ => return None,
    })
}
