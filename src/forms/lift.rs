//! The lift of a graph to z = (θ, u) and its ℓ1 penalty (P1), as ordinary graph transformations.

use std::collections::{HashMap, HashSet};

use super::{AutoOrigin, Betas, Block, Group, Layout, Lifted};
use crate::diag::Span;
use crate::graph::{ElemBinary, ElemUnary, Graph, LayerSlot, Node, NodeId, Op, ParamSlot};
use crate::graph::{ReduceKind, Shape};
use crate::registry::Registry;

/// The lifted problem (P0) of `graph`: its nodes in order, where each node of a θ-dependent
/// layer instance is preceded by a leaf reading u_ℓ from z and becomes ψ_{ℓ−1} (its children
/// mapped), every later use reads the leaf, and each block gets a residual node u_ℓ − ψ_{ℓ−1}.
/// Only `layer` declarations become blocks ([`LiftMode::Layers`]).
pub fn lift(graph: &Graph) -> Lifted {
    lift_slots(graph, &[])
}

/// Which terms become blocks of z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LiftMode {
    /// The `layer` declarations, and every kink of the objective outside them that depends on
    /// θ ([`outer_kinks`]): its argument and its value become blocks, as if written as layers.
    #[default]
    Auto,
    /// The `layer` declarations only.
    Layers,
}

/// A kink of the objective outside the layers that depends on θ: SRPA's linearization sees it
/// only through a gradient selection unless it is lifted.
#[derive(Debug, Clone, PartialEq)]
pub struct OuterKink {
    /// The kink's node in the graph.
    pub node: NodeId,
    /// `abs`, `max`, `min`, `norm1` or the piecewise function's name.
    pub term: String,
    /// The source span of the term.
    pub span: Span,
}

/// The lifted problem of `graph` in `mode`. With [`LiftMode::Auto`] and kinks outside the
/// layers, the graph is first rewritten with one layer per kink argument and per kink value
/// (see [`outer_kinks`] and docs/srpa.md): [`Lifted::source`] holds that graph, which the
/// blocks' `original` nodes index and which [`Lifted::complete`] must evaluate. Without such
/// kinks this is [`lift`] exactly.
pub fn lift_with(graph: &Graph, registry: &Registry, mode: LiftMode) -> Lifted {
    let kinks = match mode {
        LiftMode::Layers => Vec::new(),
        LiftMode::Auto => outer_kinks(graph, registry),
    };
    if kinks.is_empty() {
        return lift(graph);
    }
    let (source, origins) = with_kink_layers(graph, &kinks);
    let mut lifted = lift_slots(&source, &origins);
    lifted.source = Some(source);
    lifted
}

/// The kinks of the objective that lie outside every lifted layer and depend on θ, in node
/// order: `abs`, binary `max`/`min`, `max`/`min`/`norminf` over entries (an n-ary max),
/// `norm1`, and registry functions with breakpoints (`relu`, `leaky_relu`, plugin piecewise
/// functions).
pub fn outer_kinks(graph: &Graph, registry: &Registry) -> Vec<OuterKink> {
    let region = objective_region(graph);
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|&(i, n)| region[i] && n.varies)
        .filter_map(|(i, n)| {
            let term = match &n.op {
                Op::Unary(ElemUnary::Abs, _) => "abs".to_owned(),
                Op::Binary(ElemBinary::Max, ..) => "max".to_owned(),
                Op::Binary(ElemBinary::Min, ..) => "min".to_owned(),
                Op::Reduce(ReduceKind::Max, a) if graph.node(*a).group_len() > 1 => {
                    "max".to_owned()
                }
                Op::Reduce(ReduceKind::Norm1, _) => "norm1".to_owned(),
                Op::Call { func, .. } if !registry.info(*func).breakpoints.is_empty() => {
                    registry.info(*func).name.clone()
                }
                _ => return None,
            };
            Some(OuterKink {
                node: NodeId(i as u32),
                term,
                span: n.span,
            })
        })
        .collect()
}

/// The nodes the objective reads without passing through a lifted layer (F's own nodes).
fn objective_region(graph: &Graph) -> Vec<bool> {
    let layers: HashSet<NodeId> = lifted_layers(graph)
        .into_iter()
        .map(|i| graph.layers[i].node)
        .collect();
    let mut seen = vec![false; graph.nodes.len()];
    let mut stack = vec![graph.objective];
    while let Some(id) = stack.pop() {
        if seen[id.index()] || layers.contains(&id) {
            continue;
        }
        seen[id.index()] = true;
        stack.extend(graph.children(id));
    }
    seen
}

/// `graph` with every kink of `kinks` rewritten into layers, as a user would write them: the
/// argument of the kink test becomes a layer (a copy `1·x` when it is a parameter; nothing new
/// when it is already a layer), and so does the kink's value, whose piece the linearization
/// then bounds like a layer's activation:
/// - `abs(a)`, `f(a)` (f with breakpoints): `K.arg = a`, `K = abs(K.arg)`;
/// - `max(a, c)` with c constant: `K.arg = a`, `K = max(K.arg, c)` (likewise `min`, either side);
/// - `max(a, b)` with both varying: `K.arg = a − b`, `K = b + max(K.arg, 0)`;
/// - `max(v)` over n entries: a tournament of n − 1 pairwise maxima, round j pairing the first
///   and second half of the m entries left (a − b and b + max(a − b, 0) entrywise, as above):
///   `K.roundj.arg = a − b`, `K.roundj = b + max(K.roundj.arg, 0)`; when m is odd the last
///   entry sits the round out and meets the winner in a round of its own at the end;
/// - `norm1(v)`: `K.arg = v`, `K = abs(K.arg)`, and the term reads `sum(K)`.
///
/// K is the term and its number in source order (`abs#1`); a term with several nodes (one per
/// time step under `mean(t, …)`) names its instances `K.arg[i]`, `K[i]`, one group each, like
/// an indexed layer. Returns the graph and, per layer slot, where an automatic one comes from.
fn with_kink_layers(graph: &Graph, kinks: &[OuterKink]) -> (Graph, Vec<Option<AutoOrigin>>) {
    let mut r = Rewrite {
        out: Graph {
            nodes: Vec::with_capacity(graph.nodes.len() + 4 * kinks.len()),
            lists: Vec::with_capacity(graph.lists.len()),
            layers: Vec::new(),
            ..graph.clone()
        },
        slots: graph
            .layers
            .iter()
            .map(|s| LayerSlot {
                node: NodeId(u32::MAX),
                ..s.clone()
            })
            .collect(),
        origins: vec![None; graph.layers.len()],
        layer_nodes: HashSet::new(),
        zero: None,
        suffix: String::new(),
    };
    r.out.nodes.clear();
    r.out.lists.clear();
    let user: HashSet<usize> = lifted_layers(graph).into_iter().collect();
    let mut slots_of: HashMap<NodeId, Vec<usize>> = HashMap::new();
    for (i, s) in graph.layers.iter().enumerate() {
        slots_of.entry(s.node).or_default().push(i);
    }
    let kink_of: HashMap<NodeId, usize> =
        kinks.iter().enumerate().map(|(k, x)| (x.node, k)).collect();
    // One number per term of the source (its span and kind); the nodes of one term (its time
    // steps, under `mean(t, …)`) are its instances `[1]`, `[2]`, …, like an indexed layer's.
    let mut terms: HashMap<(usize, usize, &str), (usize, usize)> = HashMap::new();
    for x in kinks {
        let next = terms.len() + 1;
        terms
            .entry((x.span.start, x.span.end, x.term.as_str()))
            .or_insert((next, 0))
            .1 += 1;
    }
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut map: Vec<NodeId> = Vec::with_capacity(graph.nodes.len());
    let mut list_of = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        let op = remap_op(&node.op, &map, graph, &mut r.out, &mut list_of);
        let new = match kink_of.get(&id) {
            Some(&k) => {
                let origin = AutoOrigin {
                    term: kinks[k].term.clone(),
                    span: kinks[k].span,
                };
                let x = &kinks[k];
                let (number, count) = terms[&(x.span.start, x.span.end, x.term.as_str())];
                let instance = seen.entry(number).or_default();
                *instance += 1;
                r.suffix = if count > 1 {
                    format!("[{instance}]")
                } else {
                    String::new()
                };
                let name = format!("{}#{number}", origin.term);
                r.kink(op, node, &name, &origin)
            }
            None => push(&mut r.out, op, node.clone()),
        };
        for &s in slots_of.get(&id).into_iter().flatten() {
            r.slots[s].node = new;
            if user.contains(&s) {
                r.layer_nodes.insert(new);
            }
        }
        map.push(new);
    }
    let Rewrite {
        mut out,
        slots,
        origins,
        ..
    } = r;
    for p in out.params.iter_mut() {
        p.node = map[p.node.index()];
    }
    for input in out.inputs.iter_mut() {
        for step in input.steps.iter_mut() {
            step.1 = map[step.1.index()];
        }
    }
    out.objective = map[graph.objective.index()];
    out.loss = map[graph.loss.index()];
    out.layers = slots;
    (out, origins)
}

/// The state of [`with_kink_layers`]: the graph being built and its layer slots.
struct Rewrite {
    out: Graph,
    slots: Vec<LayerSlot>,
    origins: Vec<Option<AutoOrigin>>,
    /// Nodes of `out` that are lifted layers (a kink argument that is one is not copied).
    layer_nodes: HashSet<NodeId>,
    /// The constant 0 that `b + max(a − b, 0)` reads, made once.
    zero: Option<NodeId>,
    /// `[i]` for the i-th instance of a term with several (its time steps), else empty.
    suffix: String,
}

impl Rewrite {
    /// The replacement of one kink whose operation `op` has its children mapped.
    fn kink(&mut self, op: Op, node: &Node, name: &str, origin: &AutoOrigin) -> NodeId {
        let arg = format!("{name}.arg");
        match op {
            Op::Unary(ElemUnary::Abs, a) => {
                let a = self.layer_arg(a, &arg, origin);
                self.value(Op::Unary(ElemUnary::Abs, a), node, name, origin)
            }
            Op::Call {
                func,
                params,
                arg: a,
            } => {
                let a = self.layer_arg(a, &arg, origin);
                let op = Op::Call {
                    func,
                    params,
                    arg: a,
                };
                self.value(op, node, name, origin)
            }
            Op::Binary(kind, a, b) => match (self.out.node(a).varies, self.out.node(b).varies) {
                (true, false) => {
                    let a = self.layer_arg(a, &arg, origin);
                    self.value(Op::Binary(kind, a, b), node, name, origin)
                }
                (false, true) => {
                    let b = self.layer_arg(b, &arg, origin);
                    self.value(Op::Binary(kind, a, b), node, name, origin)
                }
                _ => self.pair(kind, a, b, node, (&arg, name), origin),
            },
            Op::Reduce(ReduceKind::Norm1, v) => {
                let v = self.layer_arg(v, &arg, origin);
                let nv = self.out.node(v).clone();
                let abs = self.value(Op::Unary(ElemUnary::Abs, v), &nv, name, origin);
                push(
                    &mut self.out,
                    Op::Reduce(ReduceKind::Sum, abs),
                    node.clone(),
                )
            }
            Op::Reduce(ReduceKind::Max, v) => {
                // Entries `start..start + len` of each group of `of`, as a node.
                let gather = |r: &mut Rewrite, of: NodeId, start: usize, len: usize| {
                    let n = r.out.node(of).clone();
                    let op = Op::Gather {
                        arg: of,
                        start,
                        step: 1,
                        len,
                    };
                    let cols = if n.batched { n.cols } else { 1 };
                    let template = Node {
                        rows: len,
                        cols,
                        span: node.span,
                        ..n
                    };
                    push(&mut r.out, op, template)
                };
                let mut round = 1;
                let mut pair = |r: &mut Rewrite, a: NodeId, b: NodeId, rows: usize| {
                    let names = (
                        format!("{name}.round{round}.arg"),
                        format!("{name}.round{round}"),
                    );
                    round += 1;
                    let template = Node {
                        rows,
                        ..node.clone()
                    };
                    let names = (names.0.as_str(), names.1.as_str());
                    r.pair(ElemBinary::Max, a, b, &template, names, origin)
                };
                let (mut cur, mut m) = (v, self.out.node(v).group_len());
                // An odd count leaves its last entry out of the round; the entries left out
                // meet the winner at the end, so no entry is compared with itself.
                let mut left_out = Vec::new();
                while m > 1 {
                    if m % 2 == 1 {
                        left_out.push(gather(self, cur, m - 1, 1));
                        m -= 1;
                    }
                    let h = m / 2;
                    let (a, b) = (gather(self, cur, 0, h), gather(self, cur, h, h));
                    cur = pair(self, a, b, h);
                    m = h;
                }
                for last in left_out {
                    cur = pair(self, cur, last, 1);
                }
                cur
            }
            other => push(&mut self.out, other, node.clone()),
        }
    }

    /// `max(a, b)` (or `min`) of two varying sides as `b + max(w, 0)` over the layer
    /// `w = a − b`, itself a layer; `node` gives the shape and flags.
    fn pair(
        &mut self,
        kind: ElemBinary,
        a: NodeId,
        b: NodeId,
        node: &Node,
        (arg, name): (&str, &str),
        origin: &AutoOrigin,
    ) -> NodeId {
        let affine = self.out.node(a).affine && self.out.node(b).affine;
        let w = push(
            &mut self.out,
            Op::Binary(ElemBinary::Sub, a, b),
            Node {
                affine,
                varies: true,
                ..node.clone()
            },
        );
        self.slot(w, arg, origin);
        let zero = self.zero(node.span);
        let m = push(&mut self.out, Op::Binary(kind, w, zero), node.clone());
        self.value(Op::Binary(ElemBinary::Add, b, m), node, name, origin)
    }

    /// A kink's value as a layer.
    fn value(&mut self, op: Op, node: &Node, name: &str, origin: &AutoOrigin) -> NodeId {
        let t = push(&mut self.out, op, node.clone());
        self.slot(t, name, origin);
        t
    }

    /// The argument `a` of a kink as a layer: itself when it is one already, a copy `1·a` when
    /// it is a parameter, otherwise its node.
    fn layer_arg(&mut self, a: NodeId, name: &str, origin: &AutoOrigin) -> NodeId {
        let n = self.out.node(a).clone();
        if self.layer_nodes.contains(&a) || !n.varies {
            return a;
        }
        let a = match n.op {
            Op::Param(_) => push(
                &mut self.out,
                Op::Unary(ElemUnary::Scale(1.0), a),
                Node { affine: true, ..n },
            ),
            _ => a,
        };
        self.slot(a, name, origin);
        a
    }

    fn slot(&mut self, node: NodeId, name: &str, origin: &AutoOrigin) {
        self.layer_nodes.insert(node);
        self.slots.push(LayerSlot {
            name: format!("{name}{}", self.suffix),
            layer: usize::MAX,
            time: None,
            node,
        });
        self.origins.push(Some(origin.clone()));
    }

    fn zero(&mut self, span: Span) -> NodeId {
        if let Some(z) = self.zero {
            return z;
        }
        let start = self.out.consts.len();
        self.out.consts.push(0.0);
        let node = Node {
            op: Op::Const(start..start + 1),
            rows: 1,
            cols: 1,
            batched: false,
            varies: false,
            affine: true,
            span,
        };
        let id = push(&mut self.out, node.op.clone(), node);
        self.zero = Some(id);
        id
    }
}

/// [`lift`] with the origin of every automatic layer slot (`None` for a declared layer).
fn lift_slots(graph: &Graph, origins: &[Option<AutoOrigin>]) -> Lifted {
    let lifted_slots = lifted_layers(graph);
    // Slots by node, in slot order, so aliases (`layer a = b`) chain leaf to leaf.
    let mut slots_of: HashMap<NodeId, Vec<usize>> = HashMap::new();
    for &i in &lifted_slots {
        slots_of.entry(graph.layers[i].node).or_default().push(i);
    }

    let mut out = Graph {
        nodes: Vec::with_capacity(graph.nodes.len() + 3 * lifted_slots.len()),
        lists: Vec::with_capacity(graph.lists.len()),
        params: graph.params.clone(),
        inputs: Vec::new(),
        ..graph.clone()
    };
    out.nodes.clear();
    out.lists.clear();
    let mut map: Vec<NodeId> = Vec::with_capacity(graph.nodes.len());
    let mut groups: Vec<Group> = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    let mut offset = graph.n_params();
    let mut list_of: HashMap<std::ops::Range<usize>, std::ops::Range<usize>> = HashMap::new();

    for (i, node) in graph.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        let mut op = remap_op(&node.op, &map, graph, &mut out, &mut list_of);
        let Some(slots) = slots_of.get(&id) else {
            map.push(push(&mut out, op, node.clone()));
            continue;
        };
        let mut last_leaf = None;
        for &s in slots {
            let slot = &graph.layers[s];
            if let Some(prev) = last_leaf {
                // `layer a = b`: ψ of the later alias is the earlier layer's leaf.
                op = Op::Unary(ElemUnary::Scale(1.0), prev);
            }
            let psi = push(&mut out, op.clone(), node.clone());
            let leaf = push_leaf(&mut out, &slot.name, node);
            let residual = push(
                &mut out,
                Op::Binary(ElemBinary::Sub, leaf, psi),
                Node {
                    affine: false,
                    ..node.clone()
                },
            );
            let group = group_of(&mut groups, &slot.name, blocks.len());
            blocks.push(Block {
                name: slot.name.clone(),
                group,
                offset,
                rows: node.rows,
                cols: node.cols,
                original: id,
                leaf,
                psi,
                residual,
                origin: origins.get(s).cloned().flatten(),
            });
            offset += node.len();
            last_leaf = Some(leaf);
        }
        // Later uses read the leaf of the last layer naming this node.
        map.push(last_leaf.unwrap_or(id));
    }
    for p in out.params.iter_mut().take(graph.params.len()) {
        p.node = map[p.node.index()];
    }
    out.objective = map[graph.objective.index()];
    out.loss = map[graph.loss.index()];
    // Layers no longer name nodes of this graph; the blocks do.
    out.layers = Vec::new();
    let layout = Layout {
        n_theta: graph.n_params(),
        n_z: offset,
        blocks,
        groups,
    };
    Lifted {
        graph: out,
        layout,
        source: None,
    }
}

/// The layer slots that become blocks of z, in order: those that vary with θ and are not a
/// parameter itself (`layer u = x` only renames x).
pub fn lifted_layers(graph: &Graph) -> Vec<usize> {
    (0..graph.layers.len())
        .filter(|&i| {
            let n = graph.node(graph.layers[i].node);
            n.varies && !matches!(n.op, Op::Param(_))
        })
        .collect()
}

impl Lifted {
    /// The (P1) graph: objective Θ(z) = F(z) + Σ_groups β_g Σ_{ℓ∈g} ‖r_ℓ‖₁ (each block's
    /// |r_ℓ| summed over all its entries, sequences included). Groups with β = 0 add nothing.
    pub fn penalized(&self, betas: &Betas) -> Graph {
        let mut g = self.graph.clone();
        let span = g.node(g.objective).span;
        let mut total = g.objective;
        for group in &self.layout.groups {
            let beta = betas.of(&group.name);
            if beta == 0.0 || group.blocks.is_empty() {
                continue;
            }
            let start = g.lists.len();
            for &b in &group.blocks {
                let r = self.layout.blocks[b].residual;
                let node = g.node(r).clone();
                let abs = push(&mut g, Op::Unary(ElemUnary::Abs, r), node);
                g.lists.push(abs);
            }
            let acc = Op::Accumulate {
                terms: start..g.lists.len(),
                scale: beta,
                per_column_mean: false,
            };
            let pen = push(&mut g, acc, scalar_node(span, false));
            let sum = Op::Binary(ElemBinary::Add, total, pen);
            let affine = g.node(total).affine;
            total = push(&mut g, sum, scalar_node(span, affine));
        }
        g.objective = total;
        g
    }
}

fn scalar_node(span: crate::diag::Span, affine: bool) -> Node {
    Node {
        op: Op::Const(0..0),
        rows: 1,
        cols: 1,
        batched: false,
        varies: true,
        affine,
        span,
    }
}

fn push(g: &mut Graph, op: Op, template: Node) -> NodeId {
    let id = NodeId(g.nodes.len() as u32);
    g.nodes.push(Node { op, ..template });
    id
}

/// A parameter leaf for one block, shaped like the layer node (rows × sequences when batched).
fn push_leaf(g: &mut Graph, name: &str, node: &Node) -> NodeId {
    let index = g.params.len();
    let offset = g.params.last().map_or(0, |p| p.offset + p.shape.len());
    let id = push(
        g,
        Op::Param(index),
        Node {
            affine: true,
            varies: true,
            ..node.clone()
        },
    );
    g.params.push(ParamSlot {
        name: name.to_owned(),
        shape: Shape::matrix(node.rows, node.cols),
        node: id,
        offset,
        span: node.span,
    });
    id
}

/// The group of a layer instance name (`h[3]` → `h`), created on first use.
fn group_of(groups: &mut Vec<Group>, instance: &str, block: usize) -> usize {
    let name = instance.split('[').next().unwrap_or(instance);
    let i = match groups.iter().position(|g| g.name == name) {
        Some(i) => i,
        None => {
            groups.push(Group {
                name: name.to_owned(),
                blocks: Vec::new(),
            });
            groups.len() - 1
        }
    };
    groups[i].blocks.push(block);
    i
}

/// `op` with its children mapped into the lifted graph; lists are copied once per range.
fn remap_op(
    op: &Op,
    map: &[NodeId],
    graph: &Graph,
    out: &mut Graph,
    list_of: &mut HashMap<std::ops::Range<usize>, std::ops::Range<usize>>,
) -> Op {
    match op {
        Op::Accumulate {
            terms,
            scale,
            per_column_mean,
        } => {
            let terms = list_of
                .entry(terms.clone())
                .or_insert_with(|| {
                    let start = out.lists.len();
                    out.lists
                        .extend(graph.lists[terms.clone()].iter().map(|&t| map[t.index()]));
                    start..out.lists.len()
                })
                .clone();
            Op::Accumulate {
                terms,
                scale: *scale,
                per_column_mean: *per_column_mean,
            }
        }
        _ => op.map_operands(|a| map[a.index()]),
    }
}
