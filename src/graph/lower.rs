//! Lowering: a checked [`Model`] plus bound data to a flat [`Graph`] in topological order.
//!
//! Indexed layers are unrolled over the time steps of the data; every layer instance becomes
//! a node, created before anything that uses it. Shared subexpressions (lets) are lowered once
//! per time step. All errors found are reported.
//!
//! Lowering reads the shape of the data (steps, sequences, warm-up), never their values except
//! to fill the data nodes ([`Graph::inputs`]): a graph lowered with one batch serves every batch
//! of the same shape once an evaluator binds that batch (`Evaluator::bind`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{
    DataInput, ElemBinary, ElemUnary, Graph, LayerSlot, Node, NodeId, Op, ParamSlot, ReduceKind,
};
use crate::check::{Binary, CExpr, CKind, LayerBody, Model, TermClass, TimeRef, Unary};
use crate::diag::{Diag, Diags, Span};
use crate::registry::FunctionKind;

/// The data bound to one `data` declaration: `steps` time steps, each a column-major
/// `width × sequences` matrix.
#[derive(Debug, Clone, Default)]
pub struct SeqData {
    /// All bound time steps, the warm-up included.
    pub steps: usize,
    pub sequences: usize,
    pub values: Vec<f64>,
    /// The first `warmup` steps run the recurrence (the layers are unrolled over them) but
    /// are left out of the reductions over time `sum(t, ..)` and `mean(t, ..)`: a test split
    /// that follows the training steps starts from the state the training steps leave.
    /// The same for every declaration of a model.
    pub warmup: usize,
}

/// What lowering needs besides the model.
#[derive(Debug, Clone, Default)]
pub struct LowerOptions {
    /// One entry per data declaration of the model, in order.
    pub data: Vec<SeqData>,
}

/// Whether a node holds one value per sequence of a batch (its columns are the sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    Shared,
    PerSequence,
}

impl Batch {
    fn of(node: &Node) -> Batch {
        if node.batched {
            Batch::PerSequence
        } else {
            Batch::Shared
        }
    }

    fn either(self, other: Batch) -> Batch {
        if self == Batch::PerSequence || other == Batch::PerSequence {
            Batch::PerSequence
        } else {
            Batch::Shared
        }
    }
}

/// How a node depends on the parameters θ, from least to most general.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dep {
    /// Does not depend on θ (a₁ = a₂ = 0).
    Constant,
    /// Affine in θ (a₂ = 0 along every ray).
    Affine,
    /// Anything else.
    Nonlinear,
}

impl Dep {
    fn of(node: &Node) -> Dep {
        match (node.varies, node.affine) {
            (false, _) => Dep::Constant,
            (true, true) => Dep::Affine,
            (true, false) => Dep::Nonlinear,
        }
    }

    /// A product (or quotient by a constant) of two operands: affine only when one factor is constant.
    fn product(self, other: Dep) -> Dep {
        match (self, other) {
            (Dep::Constant, d) | (d, Dep::Constant) => d,
            _ => Dep::Nonlinear,
        }
    }

    /// A function of something depending on θ this way that does not keep affinity.
    fn nonlinear(self) -> Dep {
        match self {
            Dep::Constant => Dep::Constant,
            Dep::Affine | Dep::Nonlinear => Dep::Nonlinear,
        }
    }
}

/// Lower `model` with its data into a graph.
pub fn lower(model: &Model, options: &LowerOptions) -> Result<Graph, Diags> {
    let mut l = Lowerer::new(model, options)?;
    l.params();
    l.layers();
    let (objective, loss) = l.objective();
    let Lowerer { graph, diags, .. } = l;
    let graph = Graph {
        objective,
        loss,
        ..graph
    };
    diags.finish(graph)
}

type Key = (usize, Option<u64>);

struct Lowerer<'m> {
    model: &'m Model,
    data: &'m [SeqData],
    steps: usize,
    sequences: usize,
    graph: Graph,
    memo: HashMap<Key, NodeId>,
    layer_nodes: HashMap<Key, NodeId>,
    in_progress: HashSet<Key>,
    data_nodes: HashMap<(usize, u64), NodeId>,
    diags: Diags,
}

/// Lowering of one expression failed; the diagnostic is recorded.
struct Failed;

type Lowered = Result<NodeId, Failed>;

impl<'m> Lowerer<'m> {
    fn new(model: &'m Model, options: &'m LowerOptions) -> Result<Self, Diags> {
        let (steps, sequences, warmup) = data_dims(model, &options.data)?;
        let graph = Graph {
            source: Arc::clone(&model.source),
            nodes: Vec::new(),
            consts: Vec::new(),
            fparams: Vec::new(),
            lists: Vec::new(),
            params: Vec::new(),
            layers: Vec::new(),
            objective: NodeId(0),
            loss: NodeId(0),
            steps,
            sequences,
            warmup,
            inputs: model
                .data
                .iter()
                .map(|d| DataInput {
                    name: d.name.clone(),
                    width: d.shape.rows,
                    span: d.span,
                    steps: Vec::new(),
                })
                .collect(),
        };
        Ok(Lowerer {
            model,
            data: &options.data,
            steps,
            sequences,
            graph,
            memo: HashMap::new(),
            layer_nodes: HashMap::new(),
            in_progress: HashSet::new(),
            data_nodes: HashMap::new(),
            diags: Diags::new(),
        })
    }

    /// Record a diagnostic once: the same problem met again at another time step is not repeated.
    fn error(&mut self, d: Diag) -> Failed {
        let seen = self
            .diags
            .iter()
            .any(|e| e.code == d.code && e.primary() == d.primary());
        if !seen {
            self.diags.push(d);
        }
        Failed
    }

    fn push(
        &mut self,
        op: Op,
        rows: usize,
        cols: usize,
        (batch, dep): (Batch, Dep),
        span: Span,
    ) -> NodeId {
        let id = NodeId(self.graph.nodes.len() as u32);
        self.graph.nodes.push(Node {
            op,
            rows,
            cols,
            batched: batch == Batch::PerSequence,
            varies: dep != Dep::Constant,
            affine: dep != Dep::Nonlinear,
            span,
        });
        id
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.graph.nodes[id.index()]
    }

    fn constant(
        &mut self,
        values: &[f64],
        (rows, cols): (usize, usize),
        batch: Batch,
        span: Span,
    ) -> NodeId {
        let start = self.graph.consts.len();
        self.graph.consts.extend_from_slice(values);
        let range = start..self.graph.consts.len();
        self.push(Op::Const(range), rows, cols, (batch, Dep::Constant), span)
    }

    fn params(&mut self) {
        let mut offset = 0;
        for (i, p) in self.model.params.iter().enumerate() {
            let node = self.push(
                Op::Param(i),
                p.shape.rows,
                p.shape.cols,
                (Batch::Shared, Dep::Affine),
                p.span,
            );
            let slot = ParamSlot {
                name: p.name.clone(),
                shape: p.shape,
                node,
                offset,
                span: p.span,
            };
            self.graph.params.push(slot);
            offset += p.shape.len();
        }
    }

    /// Every layer instance, indexed layers step by step first (so a reference to a fixed step
    /// like `h[1000]` never recurses through the steps before it), then the plain layers that
    /// were not already lowered on demand by an indexed one.
    fn layers(&mut self) {
        let model = self.model;
        for t in 0..=self.steps as u64 {
            for (id, layer) in model.layers.iter().enumerate() {
                if layer_defined_at(&layer.body, t, self.steps) {
                    let _ = self.layer_node(id, Some(t), layer.span);
                }
            }
        }
        for (id, layer) in model.layers.iter().enumerate() {
            if !layer.body.is_indexed() {
                let _ = self.layer_node(id, None, layer.span);
            }
        }
    }

    fn objective(&mut self) -> (NodeId, NodeId) {
        let span = self.model.objective_span;
        let (mut loss, mut reg): (Option<NodeId>, Option<NodeId>) = (None, None);
        for term in &self.model.terms {
            let Ok(node) = self.lower(&term.expr, None) else {
                continue;
            };
            let node = self.unbatched_scalar(node, term.expr.span);
            let scaled = if term.coef == 1.0 {
                node
            } else {
                self.unary(ElemUnary::Scale(term.coef), node, term.expr.span)
            };
            let acc = if term.class == TermClass::Loss {
                &mut loss
            } else {
                &mut reg
            };
            *acc = Some(match *acc {
                None => scaled,
                Some(prev) => self.binary_node(ElemBinary::Add, prev, scaled, span),
            });
        }
        let loss = loss.unwrap_or_else(|| self.constant(&[0.0], (1, 1), Batch::Shared, span));
        let objective = match reg {
            Some(r) => self.binary_node(ElemBinary::Add, loss, r, span),
            None => loss,
        };
        (objective, loss)
    }

    /// A term of the objective must be one number, not one per sequence.
    fn unbatched_scalar(&mut self, node: NodeId, span: Span) -> NodeId {
        if self.node(node).len() != 1 {
            let d = Diag::new(
                "mcopt::lower::batch",
                "this term has one value per sequence, but the objective must be one number",
            )
            .at(&self.graph.source.clone(), span, "per-sequence value")
            .help("average it over time and sequences with mean(t, ..)");
            self.diags.push(d);
        }
        node
    }

    fn layer_node(&mut self, id: usize, time: Option<u64>, use_span: Span) -> Lowered {
        let key = (id, time);
        if let Some(&n) = self.layer_nodes.get(&key) {
            return Ok(n);
        }
        let layer = &self.model.layers[id];
        let name = match time {
            Some(t) => format!("{}[{}]", layer.name, t),
            None => layer.name.clone(),
        };
        if !self.in_progress.insert(key) {
            let d = Diag::new(
                "mcopt::lower::cycle",
                format!("layer `{name}` depends on itself"),
            )
            .at(&self.graph.source.clone(), use_span, "used here")
            .label(layer.span, "defined here");
            return Err(self.error(d));
        }
        let body = match (&layer.body, time) {
            (LayerBody::Plain(e), _) => Some(e),
            (LayerBody::Indexed { bases, general }, Some(t)) => bases
                .iter()
                .find(|(b, _)| *b == t)
                .map(|(_, e)| e)
                .or_else(|| {
                    general
                        .as_ref()
                        .filter(|_| layer_defined_at(&layer.body, t, self.steps))
                }),
            _ => None,
        };
        let result = match body {
            Some(e) => self.lower(e, time),
            None => {
                let help = match &layer.body {
                    LayerBody::Indexed { general: None, .. } => format!(
                        "`{}` has base cases only; add a general case like `layer {}[t] = ...`",
                        layer.name, layer.name
                    ),
                    _ => format!(
                        "the data have {} time steps; add a base case like `layer {}[0] = ...`",
                        self.steps, layer.name
                    ),
                };
                let d = Diag::new("mcopt::lower::time", format!("`{name}` is not defined"))
                    .at(&self.graph.source.clone(), use_span, "used here")
                    .label(layer.span, "layer declared here")
                    .help(help);
                Err(self.error(d))
            }
        };
        self.in_progress.remove(&key);
        let node = result?;
        self.layer_nodes.insert(key, node);
        self.graph.layers.push(LayerSlot {
            name,
            layer: id,
            time,
            node,
        });
        Ok(node)
    }

    fn lower(&mut self, e: &CExpr, time: Option<u64>) -> Lowered {
        let key = (e as *const CExpr as usize, time);
        if let Some(&n) = self.memo.get(&key) {
            return Ok(n);
        }
        let n = self.lower_uncached(e, time)?;
        self.memo.insert(key, n);
        Ok(n)
    }

    fn lower_uncached(&mut self, e: &CExpr, time: Option<u64>) -> Lowered {
        match &e.kind {
            CKind::Literal(v) => {
                Ok(self.constant(v, (e.shape.rows, e.shape.cols), Batch::Shared, e.span))
            }
            CKind::Param(p) => Ok(self.graph.params[*p].node),
            CKind::Data { id, time: r } => self.data_ref(*id, *r, time, e.span),
            CKind::Layer { id, time: r } => {
                let at = self.resolve_time(*r, time, e.span)?;
                self.layer_node(*id, at, e.span)
            }
            CKind::Unary(op, a) => {
                let a = self.lower(a, time)?;
                self.lower_unary(*op, a, e.span)
            }
            CKind::Binary(op, a, b) => {
                let (a, b) = (self.lower(a, time), self.lower(b, time));
                self.lower_binary(*op, a?, b?, e.span)
            }
            CKind::Call {
                func,
                kind,
                params,
                arg,
            } => {
                let a = self.lower(arg, time)?;
                let start = self.graph.fparams.len();
                self.graph.fparams.extend_from_slice(params);
                let range = start..self.graph.fparams.len();
                let n = self.node(a).clone();
                let call = self.push(
                    Op::Call {
                        func: *func,
                        params: range,
                        arg: a,
                    },
                    n.rows,
                    n.cols,
                    (Batch::of(&n), Dep::of(&n).nonlinear()),
                    e.span,
                );
                Ok(match kind {
                    FunctionKind::Penalty => self.reduce(ReduceKind::Sum, call, e.span),
                    FunctionKind::Activation => call,
                })
            }
            CKind::Element { base, row, col } => {
                let a = self.lower(base, time)?;
                let n = self.node(a).clone();
                let cols = if n.batched { n.cols } else { 1 };
                Ok(self.push(
                    Op::Element {
                        arg: a,
                        row: *row,
                        col: *col,
                    },
                    1,
                    cols,
                    (Batch::of(&n), Dep::of(&n)),
                    e.span,
                ))
            }
            CKind::Gather { base, start, step } => {
                let a = self.lower(base, time)?;
                let n = self.node(a).clone();
                let cols = if n.batched { n.cols } else { 1 };
                let len = e.shape.rows;
                let op = Op::Gather {
                    arg: a,
                    start: *start,
                    step: *step,
                    len,
                };
                Ok(self.push(op, len, cols, (Batch::of(&n), Dep::of(&n)), e.span))
            }
            CKind::TimeReduce { mean, body } => self.time_reduce(*mean, body, e.span),
        }
    }

    fn resolve_time(
        &mut self,
        r: TimeRef,
        time: Option<u64>,
        span: Span,
    ) -> Result<Option<u64>, Failed> {
        match (r, time) {
            (TimeRef::None, _) => Ok(None),
            (TimeRef::Abs(k), _) => Ok(Some(k)),
            (TimeRef::Rel(k), Some(t)) if k <= t => Ok(Some(t - k)),
            (TimeRef::Rel(k), t) => {
                let msg = match t {
                    Some(t) => format!(
                        "at time {t} this refers to time {}, before the start",
                        t as i64 - k as i64
                    ),
                    None => "a relative time index outside a time-indexed context".to_owned(),
                };
                Err(self.error(Diag::new("mcopt::lower::time", msg).at(
                    &self.graph.source.clone(),
                    span,
                    "here",
                )))
            }
        }
    }

    fn data_ref(&mut self, id: usize, r: TimeRef, time: Option<u64>, span: Span) -> Lowered {
        let at = self.resolve_time(r, time, span)?.unwrap_or(0);
        if at == 0 || at as usize > self.steps {
            let msg = format!(
                "data `{}` has time steps 1 to {}, this refers to step {}",
                self.model.data[id].name, self.steps, at
            );
            return Err(self.error(Diag::new("mcopt::lower::time", msg).at(
                &self.graph.source.clone(),
                span,
                "here",
            )));
        }
        if let Some(&n) = self.data_nodes.get(&(id, at)) {
            return Ok(n);
        }
        let width = self.model.data[id].shape.rows;
        let n = self.sequences;
        let d = &self.data[id];
        let start = (at as usize - 1) * width * n;
        let values = d.values[start..start + width * n].to_vec();
        let batch = if n > 1 {
            Batch::PerSequence
        } else {
            Batch::Shared
        };
        let node = self.constant(&values, (width, n), batch, span);
        self.data_nodes.insert((id, at), node);
        self.graph.inputs[id].steps.push((at as usize, node));
        Ok(node)
    }

    fn time_reduce(&mut self, mean: bool, body: &CExpr, span: Span) -> Lowered {
        if self.steps == 0 {
            let d = Diag::new(
                "mcopt::lower::time",
                "a reduction over time needs bound data",
            )
            .at(&self.graph.source.clone(), span, "reduction here")
            .help("bind data with --data or a run file");
            return Err(self.error(d));
        }
        let first = self.graph.warmup + 1;
        let mut terms = Vec::with_capacity(self.steps + 1 - first);
        let mut failed = false;
        for t in first as u64..=self.steps as u64 {
            match self.lower(body, Some(t)) {
                Ok(n) => terms.push(n),
                Err(Failed) => failed = true,
            }
            if failed {
                return Err(Failed);
            }
        }
        let dep = if terms.iter().any(|&t| self.node(t).varies) {
            Dep::Nonlinear
        } else {
            Dep::Constant
        };
        let start = self.graph.lists.len();
        self.graph.lists.extend_from_slice(&terms);
        let scale = if mean { 1.0 / terms.len() as f64 } else { 1.0 };
        let op = Op::Accumulate {
            terms: start..self.graph.lists.len(),
            scale,
            per_column_mean: mean,
        };
        Ok(self.push(op, 1, 1, (Batch::Shared, dep), span))
    }

    fn lower_unary(&mut self, op: Unary, a: NodeId, span: Span) -> Lowered {
        let elem = match op {
            Unary::Neg => ElemUnary::Neg,
            Unary::Abs => ElemUnary::Abs,
            Unary::Exp => ElemUnary::Exp,
            Unary::Log => ElemUnary::Log,
            Unary::Sqrt => ElemUnary::Sqrt,
            Unary::PowI(k) => ElemUnary::PowI(k),
            Unary::Pow(p) => ElemUnary::Pow(p),
            Unary::Max => return Ok(self.reduce(ReduceKind::Max, a, span)),
            Unary::Min => {
                let neg = self.unary(ElemUnary::Neg, a, span);
                let m = self.reduce(ReduceKind::Max, neg, span);
                return Ok(self.unary(ElemUnary::Neg, m, span));
            }
            Unary::NormInf => {
                let abs = self.unary(ElemUnary::Abs, a, span);
                return Ok(self.reduce(ReduceKind::Max, abs, span));
            }
            Unary::Sum => return Ok(self.reduce(ReduceKind::Sum, a, span)),
            Unary::SqNorm => return Ok(self.reduce(ReduceKind::SqNorm, a, span)),
            Unary::Norm1 => return Ok(self.reduce(ReduceKind::Norm1, a, span)),
            Unary::Norm2 => return Ok(self.reduce(ReduceKind::Norm2, a, span)),
            Unary::Mean => {
                let n = self.node(a);
                let len = n.group_len();
                let s = self.reduce(ReduceKind::Sum, a, span);
                return Ok(self.unary(ElemUnary::Scale(1.0 / len as f64), s, span));
            }
            Unary::Transpose => {
                let n = self.node(a).clone();
                if n.batched && self.sequences > 1 {
                    return Err(self.batch_unsupported("transpose", span));
                }
                return Ok(self.push(
                    Op::Transpose(a),
                    n.cols,
                    n.rows,
                    (Batch::of(&n), Dep::of(&n)),
                    span,
                ));
            }
        };
        Ok(self.unary(elem, a, span))
    }

    fn unary(&mut self, op: ElemUnary, a: NodeId, span: Span) -> NodeId {
        let n = self.node(a).clone();
        let keeps_affine = matches!(op, ElemUnary::Neg | ElemUnary::Abs | ElemUnary::Scale(_));
        let dep = if keeps_affine {
            Dep::of(&n)
        } else {
            Dep::of(&n).nonlinear()
        };
        let flags = (Batch::of(&n), dep);
        self.push(Op::Unary(op, a), n.rows, n.cols, flags, span)
    }

    fn reduce(&mut self, kind: ReduceKind, a: NodeId, span: Span) -> NodeId {
        let n = self.node(a).clone();
        let cols = if n.batched { n.cols } else { 1 };
        let dep = if matches!(kind, ReduceKind::SqNorm | ReduceKind::Norm2) {
            Dep::of(&n).nonlinear()
        } else {
            Dep::of(&n)
        };
        self.push(Op::Reduce(kind, a), 1, cols, (Batch::of(&n), dep), span)
    }

    fn batch_unsupported(&mut self, what: &str, span: Span) -> Failed {
        let d = Diag::new(
            "mcopt::lower::batch",
            format!("{what} of a per-sequence value is not supported with several sequences"),
        )
        .at(&self.graph.source.clone(), span, "here")
        .help("per-sequence values must be reals or vectors; matrices must not depend on the data");
        self.error(d)
    }

    fn lower_binary(&mut self, op: Binary, a: NodeId, b: NodeId, span: Span) -> Lowered {
        let elem = match op {
            Binary::Add => ElemBinary::Add,
            Binary::Sub => ElemBinary::Sub,
            Binary::ElemMul => ElemBinary::Mul,
            Binary::Div => ElemBinary::Div,
            Binary::Max => ElemBinary::Max,
            Binary::Min => ElemBinary::Min,
            Binary::MatMul => return self.matmul(a, b, span),
            Binary::Dot => {
                let (na, nb) = (self.node(a).clone(), self.node(b).clone());
                let batch = Batch::of(&na).either(Batch::of(&nb));
                let cols = match batch {
                    Batch::PerSequence => na.cols.max(nb.cols),
                    Batch::Shared => 1,
                };
                let dep = Dep::of(&na).product(Dep::of(&nb));
                return Ok(self.push(Op::Dot(a, b), 1, cols, (batch, dep), span));
            }
        };
        Ok(self.binary_node(elem, a, b, span))
    }

    fn binary_node(&mut self, op: ElemBinary, a: NodeId, b: NodeId, span: Span) -> NodeId {
        let (na, nb) = (self.node(a).clone(), self.node(b).clone());
        let (da, db) = (Dep::of(&na), Dep::of(&nb));
        let dep = match op {
            ElemBinary::Add | ElemBinary::Sub | ElemBinary::Max | ElemBinary::Min => da.max(db),
            ElemBinary::Mul => da.product(db),
            ElemBinary::Div if db == Dep::Constant => da,
            ElemBinary::Div => da.max(db).max(Dep::Nonlinear),
        };
        let flags = (Batch::of(&na).either(Batch::of(&nb)), dep);
        self.push(
            Op::Binary(op, a, b),
            na.rows.max(nb.rows),
            na.cols.max(nb.cols),
            flags,
            span,
        )
    }

    fn matmul(&mut self, a: NodeId, b: NodeId, span: Span) -> Lowered {
        let (na, nb) = (self.node(a).clone(), self.node(b).clone());
        if na.batched && self.sequences > 1 {
            return Err(
                self.batch_unsupported("a matrix product with a per-sequence left operand", span)
            );
        }
        let flags = (Batch::of(&nb), Dep::of(&na).product(Dep::of(&nb)));
        Ok(self.push(Op::MatMul(a, b), na.rows, nb.cols, flags, span))
    }
}

fn layer_defined_at(body: &LayerBody, t: u64, steps: usize) -> bool {
    match body {
        LayerBody::Plain(_) => false,
        LayerBody::Indexed { bases, general } => {
            let max_base = bases.iter().map(|(b, _)| *b).max();
            bases.iter().any(|(b, _)| *b == t)
                || (general.is_some()
                    && t >= 1
                    && t as usize <= steps
                    && max_base.is_none_or(|m| t > m))
        }
    }
}

/// The number of time steps, sequences and warm-up steps shared by all bound data.
fn data_dims(model: &Model, data: &[SeqData]) -> Result<(usize, usize, usize), Diags> {
    let source = &model.source;
    if data.len() != model.data.len() {
        let d = Diag::new(
            "mcopt::lower::data",
            format!(
                "the model declares {} data sequence(s), {} were bound",
                model.data.len(),
                data.len()
            ),
        )
        .at(source, Span::new(0, 0), "")
        .help("bind every `data` declaration with --data or a run file");
        return Err(d.into());
    }
    let Some(first) = data.first() else {
        return Ok((0, 1, 0));
    };
    let mut diags = Diags::new();
    for (decl, d) in model.data.iter().zip(data) {
        let width = decl.shape.rows;
        if d.steps != first.steps
            || d.sequences != first.sequences
            || d.warmup != first.warmup
            || d.values.len() != d.steps * d.sequences * width
        {
            let msg = format!(
                "data `{}` has {} step(s) of {} sequence(s) ({} values); expected {} step(s) of {} sequence(s) of width {}",
                decl.name, d.steps, d.sequences, d.values.len(), first.steps, first.sequences, width
            );
            diags.push(Diag::new("mcopt::lower::data", msg).at(source, decl.span, "declared here"));
        }
        if let Some(Some(count)) = decl.batch {
            if count as usize != d.sequences {
                let msg = format!(
                    "data `{}` is declared with {} sequences, the bound data have {}",
                    decl.name, count, d.sequences
                );
                diags.push(Diag::new("mcopt::lower::data", msg).at(
                    source,
                    decl.span,
                    "declared here",
                ));
            }
        }
    }
    if first.warmup >= first.steps && diags.is_empty() {
        let msg = format!(
            "the {} warm-up step(s) leave none of the {} bound step(s) for the reductions over time",
            first.warmup, first.steps
        );
        diags.push(Diag::new("mcopt::lower::data", msg).at(
            source,
            model.data[0].span,
            "declared here",
        ));
    }
    diags.finish((first.steps, first.sequences.max(1), first.warmup))
}
