//! Reverse mode replayed: the first gradient pass of an evaluator runs the reverse loop of
//! `reverse.rs` and records what it does — which adjoints it zeroes, which backward steps it
//! runs and which operands they write rather than add to — and later passes run that list.
//!
//! What the loop decides (whether an adjoint has contributions yet, whether a node is a view,
//! the start of a cell) depends on the graph alone, except below an n-ary max, which passes
//! one entry down at a place chosen by the values: a graph with an n-ary max is not recorded.
//! A replayed pass runs the same steps on the same numbers in the same order, so the gradient
//! is the recorded loop's to the bit (`eval::replay::tests`); it only skips the loop's
//! bookkeeping (the per-node state, the preparation of children, the dispatch of views and
//! cells), which is a large part of the reverse pass of a model whose nodes hold 20 entries.
//! Once recorded, the list leaves out the acts that do nothing and turns the backward steps of
//! one sequence's output layer, loss terms and relu into small steps with their offsets
//! resolved (`Evaluator::specialize`), which do `node_backward`'s arithmetic for those nodes.

use super::{EvalError, EvalOptions, Evaluator};
use crate::graph::{ElemBinary, NodeId, Op, ReduceKind};
use crate::registry::FunctionId;

/// One recorded action of the reverse loop.
#[derive(Debug, Clone, Copy)]
pub(super) enum Act {
    /// Zero `len` adjoint entries from `at` (a child without contributions yet).
    Fill { at: usize, len: usize },
    /// The backward step of a node, writing (not adding to) its first two operands' adjoints
    /// where `fresh` says.
    Back(NodeId, [bool; 2]),
    /// A node without contributions (see `Evaluator::skip_untouched`).
    Skip(NodeId),
    /// The bias step of cell `k`, writing b's adjoint when `first`.
    Bias(u32, bool),
    /// The product step of a cell (see `Evaluator::cell_product`).
    Product {
        m: NodeId,
        wt: Option<usize>,
        su: usize,
    },
    /// The backward step of node `id`, the built-in relu of `x`: its adjoint (`len` entries
    /// at `g`) times the slope added to x's (at `y`), in one loop (`Calls::relu_backward`),
    /// or written as `0 + g · s` when `first` (the `Fill` before it left out); `Back` with a
    /// tolerance that is not exact ties.
    Relu {
        id: NodeId,
        func: FunctionId,
        x: NodeId,
        g: usize,
        y: usize,
        len: usize,
        first: bool,
    },
    /// The backward step of a product `a · b` with one entry (`a` a row of `len` entries whose
    /// weight gradient is staged, or constant): `b`'s adjoint (at `y`) gets `0 + aᵢ g` added.
    RowT {
        a: NodeId,
        g: usize,
        y: usize,
        len: usize,
    },
    /// The backward step of `sqnorm(a)` with one group: `2 aᵢ g` written (`fresh`) or added to
    /// a's adjoint (at `y`).
    SqNorm {
        a: NodeId,
        g: usize,
        y: usize,
        len: usize,
        fresh: bool,
    },
    /// The backward step of `a + b` of one shape where one operand shares the node's adjoint
    /// (or is constant) and the other has its own: `1 · g` written (`fresh`) or added to it.
    AddTo {
        g: usize,
        y: usize,
        len: usize,
        fresh: bool,
    },
}

/// The recording of an evaluator's reverse loop.
#[derive(Debug, Default)]
pub(super) struct Replay {
    state: State,
    acts: Vec<Act>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No gradient pass yet.
    #[default]
    Unrecorded,
    /// The current pass records.
    Recording,
    /// Later passes replay.
    Ready,
    /// The graph has an n-ary max (or replays are turned off): every pass runs the loop.
    Off,
}

impl Replay {
    /// A pass met an adjoint held as one entry (which a graph without n-ary maxes never
    /// has): stop recording, every pass runs the loop.
    pub(super) fn abandon(&mut self) {
        if self.state == State::Recording {
            self.state = State::Off;
            self.acts.clear();
        }
    }

    /// Note an action of the loop, when recording.
    #[inline]
    pub(super) fn note(&mut self, act: Act) {
        if self.state == State::Recording {
            self.acts.push(act);
        }
    }
}

impl Evaluator<'_> {
    /// Whether this pass replays the recording; if not, whether it records (the first pass of
    /// a graph without n-ary maxes).
    pub(super) fn start_replay(&mut self) -> bool {
        match self.replay.state {
            State::Ready => return true,
            State::Unrecorded => {
                let g = self.graph;
                let max = |id: &NodeId| matches!(g.node(*id).op, Op::Reduce(ReduceKind::Max, _));
                self.replay.state = if enabled() && !self.varying.iter().any(max) {
                    State::Recording
                } else {
                    State::Off
                };
                self.replay.acts.clear();
            }
            State::Recording | State::Off => {}
        }
        false
    }

    /// The end of a pass: a recording pass that failed is dropped (the next pass records).
    pub(super) fn end_replay(&mut self, ok: bool) {
        if self.replay.state == State::Recording {
            self.replay.state = if ok { State::Ready } else { State::Unrecorded };
        }
        if self.replay.state == State::Ready {
            let mut acts = std::mem::take(&mut self.replay.acts);
            acts.retain(|act| !self.does_nothing(act));
            for act in &mut acts {
                *act = self.specialize(*act);
            }
            self.replay.acts = first_writes(acts);
        }
    }

    /// Whether a recorded act has no effect: a cell's product with a constant right operand
    /// (`V x`), whose weight gradient reads its adjoint in place and which adds to no adjoint
    /// (`Evaluator::cell_product` returns at once).
    fn does_nothing(&self, act: &Act) -> bool {
        let g = self.graph;
        match *act {
            Act::Product { m, .. } => match g.node(m).op {
                Op::MatMul(_, b) => !g.node(b).varies,
                _ => true,
            },
            _ => false,
        }
    }

    /// A recorded backward step as one of the small steps that run without `node_backward`'s
    /// dispatch and setup (the output layer and loss terms of a one-sequence RNN: a node per
    /// step each, of one entry), with its adjoint offsets resolved; any other act unchanged.
    /// Each small step does the arithmetic of `node_backward` for that node in its order.
    fn specialize(&self, act: Act) -> Act {
        let Act::Back(id, fresh) = act else {
            return act;
        };
        let g = self.graph;
        let n = g.node(id);
        let aoff = |c: NodeId| self.adj_off[c.index()];
        let (gs, len) = (aoff(id), n.len());
        // Whether operand `c` shares the node's adjoint (what `node_backward` leaves alone).
        let shares = |c: NodeId| !n.is_empty() && aoff(c) == gs;
        match n.op {
            Op::Call {
                func,
                ref params,
                arg,
            } if fresh == [false; 2] && self.calls.is_relu(func, &g.fparams[params.clone()]) => {
                Act::Relu {
                    id,
                    func,
                    x: arg,
                    g: gs,
                    y: aoff(arg),
                    len,
                    first: false,
                }
            }
            Op::MatMul(a, b)
                if len == 1
                    && g.node(b).varies
                    && (self.wslot[id.index()].is_some() || !g.node(a).varies) =>
            {
                Act::RowT {
                    a,
                    g: gs,
                    y: aoff(b),
                    len: g.node(b).len(),
                }
            }
            Op::Reduce(ReduceKind::SqNorm, a)
                if len == 1 && g.node(a).group_len() == g.node(a).len() =>
            {
                Act::SqNorm {
                    a,
                    g: gs,
                    y: aoff(a),
                    len: g.node(a).len(),
                    fresh: fresh[0],
                }
            }
            Op::Binary(ElemBinary::Add, a, b)
                if len > 0 && g.node(a).len() == len && g.node(b).len() == len =>
            {
                // The one operand that stores a contribution, and whether it is written.
                let stores = |c: NodeId| g.node(c).varies && !shares(c);
                match (stores(a), stores(b)) {
                    (true, false) => Act::AddTo {
                        g: gs,
                        y: aoff(a),
                        len,
                        fresh: fresh[0],
                    },
                    (false, true) => Act::AddTo {
                        g: gs,
                        y: aoff(b),
                        len,
                        fresh: fresh[1],
                    },
                    _ => act,
                }
            }
            _ => act,
        }
    }

    /// Run the recorded actions.
    pub(super) fn run_replay(
        &mut self,
        grad: &mut [f64],
        opts: EvalOptions,
    ) -> Result<(), EvalError> {
        let acts = std::mem::take(&mut self.replay.acts);
        let out = self.replay_acts(&acts, grad, opts);
        self.replay.acts = acts;
        out
    }

    fn replay_acts(
        &mut self,
        acts: &[Act],
        grad: &mut [f64],
        opts: EvalOptions,
    ) -> Result<(), EvalError> {
        for act in acts {
            match *act {
                Act::Fill { at, len } => self.adj[at..at + len].fill(0.0),
                Act::Back(id, fresh) => self.node_backward(id, fresh, grad, opts)?,
                Act::Skip(id) => self.skip_untouched(id, grad),
                Act::Bias(k, first) => self.cell_bias(k as usize, first),
                Act::Product { m, wt, su } => self.cell_product(m, wt, su),
                Act::Relu {
                    id,
                    func,
                    x,
                    g,
                    y,
                    len,
                    first,
                } => {
                    let xs = &self.arena[self.voff[x.index()]..][..len];
                    let (left, right) = self.adj.split_at_mut(g);
                    let ya = &mut left[y..y + len];
                    let done = self.calls.relu_backward(
                        func,
                        &[],
                        opts.ztol,
                        xs,
                        &right[..len],
                        ya,
                        first,
                    );
                    if !done {
                        if first {
                            ya.fill(0.0);
                        }
                        self.node_backward(id, [false; 2], grad, opts)?;
                    }
                }
                Act::RowT { a, g, y, len } => {
                    let va = &self.arena[self.voff[a.index()]..][..len];
                    let (left, right) = self.adj.split_at_mut(g);
                    let gg = right[0];
                    for (y, ai) in left[y..y + len].iter_mut().zip(va) {
                        *y += 0.0 + ai * gg;
                    }
                }
                Act::SqNorm {
                    a,
                    g,
                    y,
                    len,
                    fresh,
                } => {
                    let va = &self.arena[self.voff[a.index()]..][..len];
                    let (left, right) = self.adj.split_at_mut(g);
                    let (gg, ya) = (right[0], &mut left[y..y + len]);
                    if fresh {
                        for (y, v) in ya.iter_mut().zip(va) {
                            *y = 2.0 * v * gg;
                        }
                    } else {
                        for (y, v) in ya.iter_mut().zip(va) {
                            *y += 2.0 * v * gg;
                        }
                    }
                }
                Act::AddTo { g, y, len, fresh } => {
                    let (left, right) = self.adj.split_at_mut(g);
                    let (gs, ya) = (&right[..len], &mut left[y..y + len]);
                    if fresh {
                        for (y, gg) in ya.iter_mut().zip(gs) {
                            *y = 1.0 * gg;
                        }
                    } else {
                        for (y, gg) in ya.iter_mut().zip(gs) {
                            *y += 1.0 * gg;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The acts with each `Fill` that a relu step's adjoint gets just before that step merged into
/// it (`Act::Relu` with `first`: written as `0 + g · s`, the same numbers without the zeroing).
fn first_writes(acts: Vec<Act>) -> Vec<Act> {
    let mut out: Vec<Act> = Vec::with_capacity(acts.len());
    for mut act in acts {
        if let Act::Relu {
            y,
            len,
            ref mut first,
            ..
        } = act
        {
            if matches!(out.last(), Some(&Act::Fill { at, len: l }) if (at, l) == (y, len)) {
                out.pop();
                *first = true;
            }
        }
        out.push(act);
    }
    out
}

/// Whether gradient passes may replay (the unit tests turn it off to compare).
#[inline(always)]
fn enabled() -> bool {
    #[cfg(test)]
    return !tests::OFF.get();
    #[cfg(not(test))]
    true
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use super::Act;
    use crate::diag::{render_plain, SourceFile};
    use crate::eval::plan::tests::{point, rnn};
    use crate::eval::{EvalOptions, Evaluator};
    use crate::graph::{self, Graph, LowerOptions, SeqData};
    use crate::registry::{Order, Registry};

    thread_local! {
        /// Turns replays off: every pass runs the reverse loop.
        pub(in crate::eval) static OFF: Cell<bool> = const { Cell::new(false) };
    }

    /// Records a replay at the test point x₀ of `g` and checks that at another point x (each
    /// entry moved by a tenth of the direction's) the replayed bits ([`bits_after`]) are the
    /// reverse loop's and the plain pass's; returns x and those bits.
    fn replayed_is_the_loops(g: &Graph, r: &Registry, what: &str) -> (Vec<f64>, Vec<u64>) {
        let (x0, d) = point(g);
        let x: Vec<f64> = x0
            .iter()
            .zip(&d)
            .map(|(a, b)| a * (1.0 + 0.1 * b))
            .collect();
        let replayed = bits_after(g, r, &x0, &x, false, false);
        assert_eq!(replayed, bits_after(g, r, &x0, &x, true, false), "{what}");
        assert_eq!(replayed, bits_after(g, r, &x0, &x, true, true), "{what}");
        (x, replayed)
    }

    /// f, ∇f and the kink count of a directional pass at `x`, as bits, after a first gradient
    /// at `x0` (the recording pass), with replays off and the reverse fast paths off when
    /// `plain`.
    fn bits_after(
        g: &Graph,
        r: &Registry,
        x0: &[f64],
        x: &[f64],
        off: bool,
        plain: bool,
    ) -> Vec<u64> {
        let o = EvalOptions::default();
        let mut ev = Evaluator::new(g, r, Order::One).unwrap_or_else(|e| panic!("{e}"));
        OFF.set(off);
        crate::eval::reverse::tests::PLAIN.set(plain);
        let mut grad = vec![f64::NAN; x.len()];
        let first = ev.gradient(x0, &mut grad, o).map(|_| ev.replay.state);
        let f = ev.gradient(x, &mut grad, o).map(|f| (f, ev.replay.state));
        OFF.set(false);
        crate::eval::reverse::tests::PLAIN.set(false);
        let (first, (f, state)) = (
            first.unwrap_or_else(|e| panic!("{e}")),
            f.unwrap_or_else(|e| panic!("{e}")),
        );
        let want = [if off {
            super::State::Off
        } else {
            super::State::Ready
        }; 2];
        assert_eq!([first, state], want);
        let d: Vec<f64> = (0..x.len()).map(|i| (i as f64 * 0.3).cos()).collect();
        let t = ev
            .directional(x, &d, Order::One, o)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut bits = vec![f.to_bits(), t.active_kinks as u64];
        bits.extend(grad.iter().map(|v| v.to_bits()));
        bits
    }

    /// A replayed gradient equals, bit for bit, the reverse loop's (replays off) and the plain
    /// reverse pass's (no shared adjoints, views, cells or written first contributions), on
    /// RNNs with relu at kinks (a hidden unit at u = 0 at every step) and tanh, over one, three
    /// and six sequences, at a point other than the recorded one.
    #[test]
    fn a_replayed_gradient_is_the_reverse_loops() {
        let r = Registry::with_standard();
        for act in ["relu", "tanh"] {
            for sequences in [1, 3, 6] {
                let g = rnn(act, sequences, &r);
                let what = format!("{act}, {sequences} sequences");
                let (_, replayed) = replayed_is_the_loops(&g, &r, &what);
                if act == "relu" {
                    assert!(
                        replayed[1] >= 6 * sequences as u64,
                        "kinks: {}",
                        replayed[1]
                    );
                }
                assert!(replayed[2..].iter().all(|&b| f64::from_bits(b).is_finite()));
            }
        }
    }

    /// sp500's shape, small: one sequence, a scalar output `A h + c` and its loss terms, whose
    /// backward steps a replay runs as small steps (`Act::Relu`, `RowT`, `SqNorm`, `AddTo`).
    fn scalar_rnn(act: &str, r: &Registry) -> Graph {
        let text = format!(
            "data x: seq(vec(3))
data y: seq(real)
param A: mat(1, 5)
param W: mat(5, 5)
param V: mat(5, 3)
param b: vec(5)
param c: real
layer h[0] = zeros(5)
layer u[t] = W * h[t-1] + V * x[t] + b
layer h[t] = {act}(u[t])
layer v[t] = A * h[t] + c
minimize mean(t, sqnorm(v[t] - y[t])) + 0.1 * sqnorm(W) + sqnorm(A) + c * c
"
        );
        let m = crate::session::compile(&SourceFile::new("rnn.mco", text), r)
            .unwrap_or_else(|d| panic!("{}", render_plain(&d)));
        let seq = |width: usize, phase: f64| SeqData {
            steps: 7,
            sequences: 1,
            values: (0..7 * width)
                .map(|i| (i as f64 * 0.61 + phase).sin())
                .collect(),
            warmup: 0,
        };
        let data = vec![seq(3, 0.0), seq(1, 1.0)];
        graph::lower(&m, &LowerOptions { data }).unwrap_or_else(|d| panic!("{}", render_plain(&d)))
    }

    /// On a one-sequence RNN with a scalar output the replay runs the output layer, the loss
    /// terms and relu as small steps, and its gradient is the loop's and the plain pass's to the
    /// bit, at kinks of relu and (with a tolerance) through `node_backward`'s relu.
    #[test]
    fn small_steps_give_the_loops_gradient() {
        let r = Registry::with_standard();
        for act in ["relu", "tanh"] {
            let g = scalar_rnn(act, &r);
            let (x, replayed) = replayed_is_the_loops(&g, &r, act);
            if act == "relu" {
                assert!(replayed[1] >= 7, "kinks: {}", replayed[1]);
            }
            // The recording holds the small steps (relu's only for relu).
            let mut ev = Evaluator::new(&g, &r, Order::One).unwrap_or_else(|e| panic!("{e}"));
            let mut grad = vec![0.0; x.len()];
            for ztol in [0.0, 1e-3] {
                let o = EvalOptions { ztol };
                ev.gradient(&x, &mut grad, o)
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut plain = vec![0.0; x.len()];
                OFF.set(true);
                let mut ev2 = Evaluator::new(&g, &r, Order::One).unwrap_or_else(|e| panic!("{e}"));
                ev2.gradient(&x, &mut plain, o)
                    .unwrap_or_else(|e| panic!("{e}"));
                OFF.set(false);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&grad), bits(&plain), "{act}, ztol {ztol}");
            }
            let count = |f: fn(&Act) -> bool| ev.replay.acts.iter().filter(|a| f(a)).count();
            assert_eq!(count(|a| matches!(a, Act::RowT { .. })), 7, "{act}");
            assert_eq!(count(|a| matches!(a, Act::SqNorm { .. })), 7 + 2, "{act}");
            assert!(count(|a| matches!(a, Act::AddTo { .. })) >= 7, "{act}");
            let relus = count(|a| matches!(a, Act::Relu { .. }));
            assert_eq!(relus, if act == "relu" { 7 } else { 0 }, "{act}");
            // Each relu's adjoint is written by its step (the zeroing before it merged).
            let first = count(|a| matches!(a, Act::Relu { first: true, .. }));
            assert_eq!(first, relus, "{act}");
        }
    }

    /// A graph with an n-ary max is not recorded: its loop decides at run time where the max
    /// passes its adjoint.
    #[test]
    fn a_graph_with_an_nary_max_runs_the_loop() {
        let (r, g) =
            crate::eval::test_models::graph_of("param x: vec(4)\nminimize max(x) + sqnorm(x)\n");
        let mut ev = Evaluator::new(&g, &r, Order::One).unwrap_or_else(|e| panic!("{e}"));
        let mut grad = vec![0.0; 4];
        for _ in 0..2 {
            ev.gradient(&[1.0, 2.0, 2.0, 0.0], &mut grad, EvalOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ev.replay.state, super::State::Off);
        }
        assert_eq!(grad, [2.0, 5.0, 4.0, 0.0]);
    }
}
