//! Evaluation of the expression graph: values, exact one-sided directional derivatives of
//! first and second order (ray-Taylor forward mode), and reverse-mode gradient selections.
//!
//! An [`Evaluator`] owns every buffer it needs, allocated once in [`Evaluator::new`] and reused
//! across evaluations. Nodes that do not depend on the parameters are evaluated once, there,
//! and again when [`Evaluator::bind`] binds other data to the graph's inputs.

mod backprod;
mod bind;
mod carry;
mod cell;
mod forward;
mod kernels;
pub(crate) mod linalg;
mod plan;
mod replay;
mod reverse;

/// How an inner product pairs its operands' entries (for the linearization's rules).
pub(crate) use forward::dot_pairs;

use std::fmt;

use crate::diag::Diag;
use crate::graph::{Graph, NodeId, Op};
use crate::memory::{self, AllocError};
use crate::registry::{CallError, Order, Registry};

/// Largest total size of an evaluator's buffers (16 GiB), checked before allocating.
pub const MAX_BUFFER_BYTES: usize = 16 << 30;

/// Options of one evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// |a₀ − breakpoint| ≤ ztol counts as a kink (0: exact ties only).
    pub ztol: f64,
}

/// f(x), f′(x; d) and f″(x; d) along a ray.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taylor {
    pub value: f64,
    pub d1: Option<f64>,
    pub d2: Option<f64>,
    /// Elements evaluated at a kink (argument at a breakpoint, within ztol).
    pub active_kinks: usize,
}

/// An evaluation failed at one node.
#[derive(Debug, Clone)]
pub struct EvalError {
    pub node: NodeId,
    pub kind: EvalErrorKind,
}

#[derive(Debug, Clone)]
pub enum EvalErrorKind {
    /// A point outside a function's domain (log of a non-positive number, division by 0, ...).
    Domain(String),
    /// A plugin function failed (panicked, returned NaN or an error status).
    Call(String),
    /// The buffers would not fit in memory.
    TooLarge(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EvalErrorKind::Domain(m) | EvalErrorKind::Call(m) | EvalErrorKind::TooLarge(m) => {
                f.write_str(m)
            }
        }
    }
}

impl EvalError {
    /// A diagnostic pointing at the expression that failed.
    pub fn to_diag(&self, graph: &Graph) -> Diag {
        let span = graph.node(self.node).span;
        match &self.kind {
            EvalErrorKind::Domain(m) => Diag::new("mcopt::eval::domain", m.clone())
                .at(&graph.source, span, "evaluated here")
                .help("choose a point inside the domain of every function"),
            EvalErrorKind::Call(m) => {
                Diag::new("mcopt::plugin::call", m.clone()).at(&graph.source, span, "called here")
            }
            EvalErrorKind::TooLarge(m) => Diag::new("mcopt::eval::memory", m.clone())
                .at(&graph.source, span, "this objective")
                .help("use fewer time steps or sequences, or smaller layers"),
        }
    }

    fn call(node: NodeId, e: CallError) -> EvalError {
        EvalError {
            node,
            kind: EvalErrorKind::Call(e.to_string()),
        }
    }
}

/// Evaluates one graph at many points, reusing its buffers.
pub struct Evaluator<'g> {
    graph: &'g Graph,
    /// The registry's functions (the built-in relu inline, `kernels::Calls`).
    calls: kernels::Calls<'g>,
    /// Coefficient blocks per node: 1 + the highest order this evaluator was built for.
    stride: usize,
    off: Vec<usize>,
    /// Where each node's value (coefficient 0) lives: `off`, or for a contiguous gather (a
    /// view) inside its operand's value (`forward::value_offsets`).
    voff: Vec<usize>,
    arena: Vec<f64>,
    /// Nodes that depend on the parameters, in topological order.
    varying: Vec<NodeId>,
    /// Matrix-product temporary, big enough for two coefficients of any node.
    scratch: Vec<f64>,
    /// Adjoints for reverse mode (allocated on the first gradient).
    adj: Vec<f64>,
    adj_off: Vec<usize>,
    /// Reverse mode, per node, computed once with the offsets: the operand and start of a
    /// gather whose adjoint is a view of its operand's (`reverse::adj_view`), and which of its
    /// first two children its backward step writes at every entry (`writes_every_entry`).
    adj_views: Vec<Option<(NodeId, usize)>>,
    covers: Vec<[bool; 2]>,
    /// Reverse mode: the varying children of node i, what `prepare_children` does with each,
    /// at `preps[prep_off[i]..prep_off[i + 1]]` (fixed with the offsets).
    preps: Vec<reverse::Prep>,
    prep_off: Vec<usize>,
    /// Reverse mode: the state of each node's adjoint (none, one entry, in storage).
    touched: Vec<reverse::Adj>,
    /// Reverse-mode helpers: ones and derivative selections for plugin calls.
    ones: Vec<f64>,
    tmp: [Vec<f64>; 2],
    /// Reverse mode: weight gradients of products `P · B` with a parameter `P`, staged so
    /// that Σ G Bᵀ over all such products is one wide matrix product per parameter.
    wbatch: Vec<reverse::WeightBatch>,
    /// For each node: its parameter and first staged column, if it is such a product.
    wslot: Vec<Option<(usize, usize)>>,
    /// What the current pass computes a₂ for, and where a first-order pass needed it.
    a2_use: forward::A2Use,
    needs_a2: Option<NodeId>,
    /// The nodes read from another graph's evaluator (see [`Evaluator::share`]).
    carry: Option<carry::Carry>,
    /// The constant nodes computed from data inputs, recomputed on [`Evaluator::bind`] (found
    /// on the first bind).
    derived: Option<Vec<NodeId>>,
    /// Whether data other than the lowering's were bound (see [`Evaluator::bind`]).
    rebound: bool,
    /// The value pass's steps (`plan.rs`), built on the first value pass.
    plan: Option<plan::Plan>,
    /// Reverse mode: the recurrent cells run as one step (`cell.rs`), and for each node the
    /// cell it is the activation of (`u32::MAX`: none), found with the adjoint offsets.
    cells: Vec<cell::Cell>,
    cell_index: Vec<u32>,
    /// Reverse mode: the cells' recurrent weights transposed, once per pass.
    cell_wt: cell::Transposed,
    /// Reverse mode: the first pass's actions, which later passes replay (`replay.rs`).
    replay: replay::Replay,
}

impl<'g> Evaluator<'g> {
    /// Allocate buffers for evaluations up to `max_order` and evaluate the constant nodes.
    pub fn new(
        graph: &'g Graph,
        registry: &'g Registry,
        max_order: Order,
    ) -> Result<Self, EvalError> {
        let stride = order_terms(max_order);
        let mut off = Vec::with_capacity(graph.nodes.len() + 1);
        let mut total = 0;
        let mut max_len = 1;
        for n in &graph.nodes {
            off.push(total);
            total += stride * n.len();
            max_len = max_len.max(n.len());
        }
        off.push(total);
        // Refuse before allocating: the arena, the adjoints of reverse mode and their staging.
        let needed = (total + 3 * total / stride).saturating_mul(std::mem::size_of::<f64>());
        if needed > MAX_BUFFER_BYTES {
            let msg = format!(
                "evaluating this model needs about {} GiB of buffers, more than the limit of {} GiB",
                needed >> 30,
                MAX_BUFFER_BYTES >> 30
            );
            return Err(EvalError {
                node: graph.objective,
                kind: EvalErrorKind::TooLarge(msg),
            });
        }
        let oom = |e: AllocError, what: &str| EvalError {
            node: graph.objective,
            kind: EvalErrorKind::TooLarge(e.message(what)),
        };
        let varying = (0..graph.nodes.len() as u32)
            .map(NodeId)
            .filter(|&id| graph.node(id).varies)
            .collect();
        let voff = forward::value_offsets(graph, &off);
        let mut ev = Evaluator {
            graph,
            calls: kernels::Calls::new(registry),
            stride,
            off,
            voff,
            arena: memory::filled(total, 0.0).map_err(|e| oom(e, "the evaluator's values"))?,
            varying,
            scratch: memory::filled(2 * max_len, 0.0).map_err(|e| oom(e, "scratch buffers"))?,
            adj: Vec::new(),
            adj_off: Vec::new(),
            adj_views: Vec::new(),
            covers: Vec::new(),
            preps: Vec::new(),
            prep_off: Vec::new(),
            touched: Vec::new(),
            ones: Vec::new(),
            tmp: [Vec::new(), Vec::new()],
            wbatch: Vec::new(),
            wslot: Vec::new(),
            a2_use: forward::A2Use::SecondOrder,
            needs_a2: None,
            carry: None,
            derived: None,
            rebound: false,
            plan: None,
            cells: Vec::new(),
            cell_index: Vec::new(),
            cell_wt: cell::Transposed::default(),
            replay: replay::Replay::default(),
        };
        ev.init_constants()?;
        Ok(ev)
    }

    pub fn graph(&self) -> &'g Graph {
        self.graph
    }

    /// f(θ).
    pub fn value(&mut self, theta: &[f64], opts: EvalOptions) -> Result<f64, EvalError> {
        self.run::<1>(theta, None, opts)?;
        Ok(self.coeff(self.graph.objective, 0)[0])
    }

    /// f, f′(θ; d) and (with `Order::Two`) f″(θ; d), with the number of active kinks.
    pub fn directional(
        &mut self,
        theta: &[f64],
        dir: &[f64],
        order: Order,
        opts: EvalOptions,
    ) -> Result<Taylor, EvalError> {
        assert!(
            order_terms(order) <= self.stride,
            "evaluator built for a lower order"
        );
        let kinks = match order {
            Order::Zero => self.run::<1>(theta, Some(dir), opts)?,
            Order::One => self.first_order(theta, dir, opts)?,
            Order::Two => self.run::<3>(theta, Some(dir), opts)?,
        };
        let out = self.graph.objective;
        Ok(Taylor {
            value: self.coeff(out, 0)[0],
            d1: (order != Order::Zero).then(|| self.coeff(out, 1)[0]),
            d2: (order == Order::Two).then(|| self.coeff(out, 2)[0]),
            active_kinks: kinks,
        })
    }

    /// A first-order pass; when it meets `sqrt` at a₀ = a₁ = 0, whose f′ = √(a₂/2) needs the
    /// second coefficient, a pass with three coefficients (if the buffers hold them) that
    /// computes a₂ for that purpose only.
    fn first_order(
        &mut self,
        theta: &[f64],
        dir: &[f64],
        opts: EvalOptions,
    ) -> Result<usize, EvalError> {
        self.needs_a2 = None;
        match self.run::<2>(theta, Some(dir), opts) {
            Err(_) if self.needs_a2.take().is_some() && self.stride >= 3 => {
                self.a2_use = forward::A2Use::FirstOrderOnly;
                let kinks = self.run::<3>(theta, Some(dir), opts);
                self.a2_use = forward::A2Use::SecondOrder;
                kinks
            }
            other => other,
        }
    }

    /// Coefficient `k` of node `id` from the last evaluation (k = 0: its value). A value pass
    /// (`value`, `gradient`) does not write the values of the products and their sum inside a
    /// recurrent cell, which only the cell reads (`plan.rs`).
    pub fn coeff(&self, id: NodeId, k: usize) -> &[f64] {
        let len = self.graph.node(id).len();
        let start = match k {
            0 => self.voff[id.index()],
            _ => self.off[id.index()] + k * len,
        };
        &self.arena[start..start + len]
    }

    /// After an evaluation to `order`: an error at the first node (in evaluation order) whose
    /// coefficients are not finite, if the objective's are not (an overflow, say).
    pub fn check_finite(&self, order: Order) -> Result<(), EvalError> {
        let terms = order_terms(order).min(self.stride);
        let out = self.graph.objective;
        if (0..terms).all(|k| self.coeff(out, k)[0].is_finite()) {
            return Ok(());
        }
        let bad = (0..self.graph.nodes.len() as u32)
            .map(NodeId)
            .filter(|&id| self.value_written(id))
            .find(|&id| (0..terms).any(|k| self.coeff(id, k).iter().any(|v| !v.is_finite())))
            .unwrap_or(out);
        let what = if self.coeff(bad, 0).iter().any(|v| !v.is_finite()) {
            "value"
        } else {
            "derivative"
        };
        let msg = format!("the objective is not finite at this point: this {what} overflows");
        Err(EvalError {
            node: bad,
            kind: EvalErrorKind::Domain(msg),
        })
    }

    /// The value of the loss part g after the last evaluation.
    pub fn loss(&self) -> f64 {
        self.coeff(self.graph.loss, 0)[0]
    }

    fn init_constants(&mut self) -> Result<(), EvalError> {
        let constant: Vec<NodeId> = (0..self.graph.nodes.len() as u32)
            .map(NodeId)
            .filter(|&id| !self.graph.node(id).varies)
            .collect();
        for id in constant {
            self.node_forward::<1>(id, &[], None, EvalOptions::default())?;
        }
        Ok(())
    }

    fn run<const K: usize>(
        &mut self,
        theta: &[f64],
        dir: Option<&[f64]>,
        opts: EvalOptions,
    ) -> Result<usize, EvalError> {
        assert_eq!(theta.len(), self.graph.n_params(), "θ has the wrong length");
        if let Some(d) = dir {
            assert_eq!(d.len(), theta.len(), "the direction has the wrong length");
        }
        if K == 1 && plan::enabled() {
            return self.run_plan(theta, opts.ztol);
        }
        // One frame for the whole pass, not one per node.
        let (mut frame, arena, varying) = self.frame(opts.ztol);
        let mut kinks = 0;
        for &id in varying {
            match frame.graph.node(id).op {
                Op::Param(p) => load_param::<K>(frame.graph, frame.off, arena, id, p, theta, dir),
                _ => kinks += frame.node::<K>(arena, id)?,
            }
        }
        Ok(kinks)
    }

    fn node_forward<const K: usize>(
        &mut self,
        id: NodeId,
        theta: &[f64],
        dir: Option<&[f64]>,
        opts: EvalOptions,
    ) -> Result<usize, EvalError> {
        if let Op::Param(p) = self.graph.node(id).op {
            load_param::<K>(self.graph, &self.off, &mut self.arena, id, p, theta, dir);
            return Ok(0);
        }
        let (mut frame, arena, _) = self.frame(opts.ztol);
        frame.node::<K>(arena, id)
    }

    /// The evaluator split for a pass: the frame its nodes read (one per pass, not per node),
    /// its values, and the varying nodes in order.
    fn frame(&mut self, ztol: f64) -> (forward::Frame<'_>, &mut [f64], &[NodeId]) {
        let frame = forward::Frame {
            graph: self.graph,
            calls: self.calls,
            off: &self.off,
            voff: &self.voff,
            stride: self.stride,
            ztol,
            scratch: &mut self.scratch,
            a2_use: self.a2_use,
            needs_a2: &mut self.needs_a2,
        };
        (frame, &mut self.arena[..], &self.varying)
    }
}

/// Copy parameter `p` (node `id`) from θ, and its direction (or zeros) when K > 1.
fn load_param<const K: usize>(
    graph: &Graph,
    off: &[usize],
    arena: &mut [f64],
    id: NodeId,
    p: usize,
    theta: &[f64],
    dir: Option<&[f64]>,
) {
    let slot = &graph.params[p];
    let (start, len) = (off[id.index()], slot.shape.len());
    arena[start..start + len].copy_from_slice(&theta[slot.offset..slot.offset + len]);
    if K > 1 {
        let d = dir.map(|d| &d[slot.offset..slot.offset + len]);
        let a1 = &mut arena[start + len..start + 2 * len];
        match d {
            Some(d) => a1.copy_from_slice(d),
            None => a1.fill(0.0),
        }
    }
}

fn order_terms(order: Order) -> usize {
    match order {
        Order::Zero => 1,
        Order::One => 2,
        Order::Two => 3,
    }
}

#[cfg(test)]
/// What the evaluator's unit tests share: a model lowered from text, and a point with kinks.
mod test_models {
    use crate::diag::{render_plain, SourceFile};
    use crate::graph::{self, Graph, LowerOptions};
    use crate::registry::Registry;

    /// The graph of model `text` (no data), with the standard registry it was checked against.
    pub(super) fn graph_of(text: &str) -> (Registry, Graph) {
        let r = Registry::with_standard();
        let src = SourceFile::new("fast.mco", text);
        let m =
            crate::session::compile(&src, &r).unwrap_or_else(|d| panic!("{}", render_plain(&d)));
        let g = graph::lower(&m, &LowerOptions { data: Vec::new() })
            .unwrap_or_else(|d| panic!("{}", render_plain(&d)));
        (r, g)
    }

    /// A point of `n` entries with zeros (kinks of abs), ±1.25 (ties of maxes of squares and of
    /// |x|) and generic entries, and a direction with no zero entry.
    pub(super) fn point_with_kinks(n: usize) -> (Vec<f64>, Vec<f64>) {
        let x = (0..n)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => 1.25,
                2 => -1.25,
                _ => (i as f64 * 0.37).sin(),
            })
            .collect();
        let d = (0..n).map(|i| (i as f64 * 1.3).cos()).collect();
        (x, d)
    }
}
