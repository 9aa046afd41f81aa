//! The lifted (P0) and ℓ1-penalty (P1) forms of a lowered model, and the tangent cone of (P0).
//!
//! # Public API
//!
//! - [`lift`]`(&Graph) -> Lifted`: the lifted problem as an ordinary [`Graph`] over
//!   z = (θ, u). Every layer instance that depends on θ (`graph.layers`, e.g. `h[3]`) becomes a
//!   parameter-like leaf reading its block of z, and gets a node ψ computing its original
//!   expression with its layer children replaced by those leaves. `Lifted::graph`'s objective is
//!   F(z) = g(u) + Tikhonov; each [`Block`] holds the node of its residual r = u − ψ. The
//!   existing [`crate::eval::Evaluator`] gives values, exact directional derivatives and
//!   gradient selections of F and of each residual (read them with `Evaluator::coeff`).
//! - [`Lifted::penalized`]`(&Betas) -> Graph`: the same graph with objective
//!   Θ(z) = F(z) + Σ_ℓ β_ℓ ‖r_ℓ‖₁ (P1); [`Betas`] gives one β per layer group (an indexed
//!   layer `h[t]` is one group, named `h`) or one β for all.
//! - [`lift_with`]`(&Graph, &Registry, LiftMode)`: the same, and with [`LiftMode::Auto`] every
//!   kink of the objective outside the layers ([`outer_kinks`]: `abs`, `max`, `min`, `norm1`,
//!   piecewise functions) gets blocks too, its argument and its value, as if written as layers
//!   (their [`Block::origin`] gives the term and its span; docs/srpa.md says why this cut).
//! - [`lifted_layers`]`(&Graph)`: the layer slots that become blocks, without lifting.
//! - [`Layout`]: where θ and every block u_ℓ live in z (offsets and sizes), with the groups.
//! - [`Lifted::complete`]: a θ-only point completed by a forward pass (a feasible z), and
//!   [`Lifted::residuals`]: the residual of every block at a z.
//! - [`tangent`]: completion of a θ-direction to a tangent direction of (P0) by forward
//!   propagation, and the test of whether a direction is tangent (docs/math.md §3).
//!
//! Layers whose value does not depend on θ (a base case `h[0] = zeros(4)`) stay constants:
//! they are not variables of z. A layer that is literally another layer (`layer a = b`) shares
//! its node with it; references to that node read the later layer's leaf, and the later
//! layer's ψ is the earlier one's leaf.

pub mod adjoint;
mod lift;
pub mod linearize;
pub mod p1host;
pub mod tangent;

pub use lift::{lift, lift_with, lifted_layers, outer_kinks, LiftMode, OuterKink};

use std::collections::HashMap;

use crate::eval::{EvalError, EvalOptions, Evaluator};
use crate::graph::{Graph, NodeId};

/// One lifted layer instance u_ℓ: its place in z and its nodes in [`Lifted::graph`].
#[derive(Debug, Clone)]
pub struct Block {
    /// `u`, or `h[3]` for time step 3 of an indexed layer.
    pub name: String,
    /// Index into [`Layout::groups`].
    pub group: usize,
    /// Offset of u_ℓ in z (after θ) and its number of entries (rows × cols; the columns are the
    /// sequences of a batch).
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    /// The original layer node in the unlifted graph.
    pub original: NodeId,
    /// The leaf reading u_ℓ from z.
    pub leaf: NodeId,
    /// ψ_{ℓ−1}(θ, u_{<ℓ}).
    pub psi: NodeId,
    /// r_ℓ = u_ℓ − ψ_{ℓ−1}(θ, u_{<ℓ}).
    pub residual: NodeId,
    /// Where an automatic block comes from ([`lift_with`]); `None` for a `layer` declaration.
    pub origin: Option<AutoOrigin>,
}

/// The term of the objective an automatic block was lifted from.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoOrigin {
    /// `abs`, `max`, `min`, `norm1` or the piecewise function's name.
    pub term: String,
    /// The term's span in the model source.
    pub span: crate::diag::Span,
}

impl Block {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries of this block in z.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// A layer group: the instances of one layer declaration (`h` for every `h[t]`).
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Indices into [`Layout::blocks`], in order.
    pub blocks: Vec<usize>,
}

/// Where the variables live in z = (θ, u).
#[derive(Debug, Clone)]
pub struct Layout {
    /// n = dim θ; θ is z[..n_theta], in the order of the original graph's parameters.
    pub n_theta: usize,
    /// dim z.
    pub n_z: usize,
    pub blocks: Vec<Block>,
    pub groups: Vec<Group>,
}

impl Layout {
    /// The group of a layer name, if it has lifted instances.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// The names of the layer groups (the layers with lifted instances), in order.
    pub fn group_names(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.name.as_str()).collect()
    }

    /// The block of an instance name (`u`, `h[3]`).
    pub fn block(&self, name: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

/// The penalty weights β of (P1).
#[derive(Debug, Clone, PartialEq)]
pub struct Betas {
    /// β for groups not named in `per_group`.
    pub default: f64,
    /// β by layer name (`h` for every `h[t]`).
    pub per_group: HashMap<String, f64>,
}

impl Betas {
    /// One β for every group.
    pub fn uniform(beta: f64) -> Betas {
        Betas {
            default: beta,
            per_group: HashMap::new(),
        }
    }

    /// The β of a group.
    pub fn of(&self, group: &str) -> f64 {
        self.per_group.get(group).copied().unwrap_or(self.default)
    }
}

/// The lifted problem (P0) of a graph.
#[derive(Debug, Clone)]
pub struct Lifted {
    /// Objective F(z) = g(u) + Tikhonov; `loss` is g(u). Its parameters are θ's followed by
    /// one leaf per block.
    pub graph: Graph,
    pub layout: Layout,
    /// The graph the blocks' `original` nodes belong to when [`lift_with`] rewrote the kinks of
    /// the objective into layers (the same values as the model's graph); `None` when it is the
    /// graph passed to the lift. [`Lifted::complete`] evaluates this one.
    pub source: Option<Graph>,
}

/// Largest absolute residual entry of a z.
#[derive(Debug, Clone, PartialEq)]
pub struct Residual {
    /// Index into [`Layout::blocks`] (`None` when there are no blocks).
    pub block: Option<usize>,
    /// Entry (row, column) within the block.
    pub row: usize,
    pub col: usize,
    pub value: f64,
}

impl Lifted {
    /// The graph a forward completion evaluates: [`Lifted::source`], else `graph` (the one
    /// this was lifted from).
    pub fn source_of<'a>(&'a self, graph: &'a Graph) -> &'a Graph {
        self.source.as_ref().unwrap_or(graph)
    }

    /// A feasible z from θ: every block's value by a forward pass of the original graph
    /// (`ev` must evaluate the graph this was lifted from, or [`Lifted::source`] when it is
    /// `Some`: see [`Lifted::source_of`]).
    pub fn complete(&self, ev: &mut Evaluator<'_>, theta: &[f64]) -> Result<Vec<f64>, EvalError> {
        ev.value(theta, EvalOptions::default())?;
        Ok(self.with_blocks(ev, theta, 0))
    }

    /// `head` (θ or a θ-direction) followed by Taylor coefficient `k` of every block's node in
    /// the original graph, as `ev` left them: z (k = 0) or a tangent direction (k = 1).
    pub(crate) fn with_blocks(&self, ev: &Evaluator<'_>, head: &[f64], k: usize) -> Vec<f64> {
        let mut z = head.to_vec();
        z.resize(self.layout.n_z, 0.0);
        for b in &self.layout.blocks {
            z[b.range()].copy_from_slice(ev.coeff(b.original, k));
        }
        z
    }

    /// Fill the blocks of `z` that are `None` in `given` by a forward pass over the lifted graph,
    /// block by block in order, so each uses the given values of earlier blocks.
    /// `ev` must evaluate [`Lifted::graph`] (or a penalized graph of it).
    pub fn fill_missing(
        &self,
        ev: &mut Evaluator<'_>,
        z: &mut [f64],
        given: &[bool],
    ) -> Result<(), EvalError> {
        for (i, b) in self.layout.blocks.iter().enumerate() {
            if !given[i] {
                ev.value(z, EvalOptions::default())?;
                let psi = ev.coeff(b.psi, 0).to_vec();
                z[b.range()].copy_from_slice(&psi);
            }
        }
        Ok(())
    }

    /// The residual r_ℓ = u_ℓ − ψ_{ℓ−1} of every block at z, concatenated in block order
    /// (`ev` must evaluate [`Lifted::graph`] or a penalized graph of it).
    pub fn residuals(&self, ev: &mut Evaluator<'_>, z: &[f64]) -> Result<Vec<f64>, EvalError> {
        ev.value(z, EvalOptions::default())?;
        let mut out = Vec::with_capacity(self.layout.n_z - self.layout.n_theta);
        for b in &self.layout.blocks {
            out.extend_from_slice(ev.coeff(b.residual, 0));
        }
        Ok(out)
    }

    /// The largest absolute residual entry at z.
    pub fn max_residual(&self, ev: &mut Evaluator<'_>, z: &[f64]) -> Result<Residual, EvalError> {
        ev.value(z, EvalOptions::default())?;
        Ok(self.largest_residual(ev, 0))
    }

    /// The entry of largest magnitude (NaN first) of Taylor coefficient `k` of the residuals,
    /// as `ev` left them: the residuals (k = 0) or their derivatives along a ray (k = 1).
    pub(crate) fn largest_residual(&self, ev: &Evaluator<'_>, k: usize) -> Residual {
        let mut best = Residual {
            block: None,
            row: 0,
            col: 0,
            value: 0.0,
        };
        for (i, b) in self.layout.blocks.iter().enumerate() {
            for (j, v) in ev.coeff(b.residual, k).iter().enumerate() {
                if best.block.is_none() || v.abs() > best.value.abs() || v.is_nan() {
                    best = Residual {
                        block: Some(i),
                        row: j % b.rows,
                        col: j / b.rows,
                        value: *v,
                    };
                }
            }
        }
        best
    }
}
