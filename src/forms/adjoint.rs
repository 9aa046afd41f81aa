//! The transpose of the tangent map T : d_θ ↦ (d_θ, d_u) of (P0), as a graph: Tᵀ w is the
//! gradient of θ ↦ w_θ·θ + Σ_ℓ w_ℓ·u_ℓ(θ), so one reverse pass gives it (exactly where the
//! layers are differentiable; the documented gradient selection at kinks).

use super::Lifted;
use crate::graph::Shape;
use crate::graph::{ElemBinary, Graph, Node, NodeId, Op, ParamSlot};

/// The graph of θ ↦ Σ_ℓ w_ℓ·u_ℓ(θ) over the variables (θ, w): the original graph, one leaf w_ℓ
/// per block, and the sum of the elementwise products as its objective.
pub fn transpose_graph(graph: &Graph, lifted: &Lifted) -> Graph {
    let mut g = graph.clone();
    let span = g.node(g.objective).span;
    let start = g.lists.len();
    let mut offset = graph.n_params();
    for b in &lifted.layout.blocks {
        let layer = g.node(b.original).clone();
        let index = g.params.len();
        let leaf = push(
            &mut g,
            Op::Param(index),
            Node {
                affine: true,
                varies: true,
                ..layer.clone()
            },
        );
        g.params.push(ParamSlot {
            name: format!("adjoint of {}", b.name),
            shape: Shape::matrix(layer.rows, layer.cols),
            node: leaf,
            offset,
            span: layer.span,
        });
        offset += layer.len();
        let prod = push(
            &mut g,
            Op::Binary(ElemBinary::Mul, leaf, b.original),
            Node {
                affine: false,
                varies: true,
                ..layer
            },
        );
        g.lists.push(prod);
    }
    let acc = Op::Accumulate {
        terms: start..g.lists.len(),
        scale: 1.0,
        per_column_mean: false,
    };
    let node = Node {
        op: Op::Const(0..0),
        rows: 1,
        cols: 1,
        batched: false,
        varies: true,
        affine: false,
        span,
    };
    let out = push(&mut g, acc, node);
    g.objective = out;
    g.loss = out;
    g
}

fn push(g: &mut Graph, op: Op, template: Node) -> NodeId {
    let id = NodeId(g.nodes.len() as u32);
    g.nodes.push(Node { op, ..template });
    id
}
