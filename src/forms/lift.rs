//! The lift of a graph to z = (θ, u) and its ℓ1 penalty (P1), as ordinary graph transformations.

use std::collections::HashMap;

use super::{Betas, Block, Group, Layout, Lifted};
use crate::graph::Shape;
use crate::graph::{ElemBinary, ElemUnary, Graph, Node, NodeId, Op, ParamSlot};

/// The lifted problem (P0) of `graph`: its nodes in order, where each node of a θ-dependent
/// layer instance is preceded by a leaf reading u_ℓ from z and becomes ψ_{ℓ−1} (its children
/// mapped), every later use reads the leaf, and each block gets a residual node u_ℓ − ψ_{ℓ−1}.
pub fn lift(graph: &Graph) -> Lifted {
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
    Lifted { graph: out, layout }
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
    let m = |id: &NodeId| map[id.index()];
    match op {
        Op::Const(r) => Op::Const(r.clone()),
        Op::Param(p) => Op::Param(*p),
        Op::Unary(u, a) => Op::Unary(*u, m(a)),
        Op::Binary(b, x, y) => Op::Binary(*b, m(x), m(y)),
        Op::MatMul(x, y) => Op::MatMul(m(x), m(y)),
        Op::Transpose(a) => Op::Transpose(m(a)),
        Op::Reduce(k, a) => Op::Reduce(*k, m(a)),
        Op::Dot(x, y) => Op::Dot(m(x), m(y)),
        Op::Element { arg, row, col } => Op::Element {
            arg: m(arg),
            row: *row,
            col: *col,
        },
        Op::Gather {
            arg,
            start,
            step,
            len,
        } => Op::Gather {
            arg: m(arg),
            start: *start,
            step: *step,
            len: *len,
        },
        Op::Call { func, params, arg } => Op::Call {
            func: *func,
            params: params.clone(),
            arg: m(arg),
        },
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
    }
}
