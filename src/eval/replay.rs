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

use super::{EvalError, EvalOptions, Evaluator};
use crate::graph::{NodeId, Op, ReduceKind};

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
            }
        }
        Ok(())
    }
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

    use crate::eval::plan::tests::{point, rnn};
    use crate::eval::{EvalOptions, Evaluator};
    use crate::graph::Graph;
    use crate::registry::{Order, Registry};

    thread_local! {
        /// Turns replays off: every pass runs the reverse loop.
        pub(in crate::eval) static OFF: Cell<bool> = const { Cell::new(false) };
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
                let (x0, d) = point(&g);
                let x: Vec<f64> = x0
                    .iter()
                    .zip(&d)
                    .map(|(a, b)| a * (1.0 + 0.1 * b))
                    .collect();
                let replayed = bits_after(&g, &r, &x0, &x, false, false);
                let what = format!("{act}, {sequences} sequences");
                assert_eq!(replayed, bits_after(&g, &r, &x0, &x, true, false), "{what}");
                assert_eq!(replayed, bits_after(&g, &r, &x0, &x, true, true), "{what}");
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
