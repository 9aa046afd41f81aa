//! Minibatches: each epoch the host draws batches of sequences or of time windows from the
//! run's seed and the epoch number only (so a resumed run draws the same batches), lowers the
//! batch's data into a graph and evaluates the gradient there.
//!
//! Draws: the generator is [`Rng`] seeded with `seed ^ (epoch + 1) · 0x9E3779B97F4A7C15`.
//! `{sequences: k}` shuffles the N sequences (Fisher–Yates) and cuts them into batches of k (the
//! last one may be smaller). `{window: w, per_step: m}` draws ⌊T / w⌋ windows per sequence,
//! each a uniform start in 0..=T − w of that sequence, in sequence order, and groups them m per
//! batch; every window starts from the model's base case (h₀ = 0).

use crate::check::Model;
use crate::config::BatchSpec;
use crate::eval::{EvalOptions, Evaluator};
use crate::graph::{self, LowerOptions, SeqData};
use crate::registry::{Order, Registry};
use crate::rng::Rng;

/// One window: sequence, first step, number of steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    seq: usize,
    start: usize,
    len: usize,
}

/// Draws the batches of an epoch and evaluates gradients on them.
pub struct Batcher<'m> {
    model: &'m Model,
    data: Vec<SeqData>,
    spec: BatchSpec,
    seed: u64,
    steps: usize,
    sequences: usize,
    plan: Vec<Vec<Window>>,
}

impl<'m> Batcher<'m> {
    /// Batches over the training `data` (one entry per data declaration); an error when the
    /// layout does not fit the data (no data, a window longer than the sequences).
    pub fn new(
        model: &'m Model,
        data: Vec<SeqData>,
        spec: BatchSpec,
        seed: u64,
    ) -> Result<Batcher<'m>, String> {
        let Some(first) = data.first() else {
            return Err("minibatches need bound data, and the model reads none".to_string());
        };
        let (steps, sequences) = (first.steps, first.sequences);
        if let BatchSpec::Windows { window, .. } = spec {
            if window > steps {
                return Err(format!(
                    "a window of {window} time steps is longer than the sequences ({steps} steps)"
                ));
            }
        }
        let mut b = Batcher {
            model,
            data,
            spec,
            seed,
            steps,
            sequences,
            plan: Vec::new(),
        };
        b.begin_epoch(0);
        Ok(b)
    }

    pub fn n_batches(&self) -> usize {
        self.plan.len()
    }

    /// Draw the batches of `epoch`.
    pub fn begin_epoch(&mut self, epoch: u64) {
        let mut rng = Rng::new(self.seed ^ (epoch + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (t, n) = (self.steps, self.sequences);
        self.plan = match self.spec {
            BatchSpec::Sequences(k) => {
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                    order.swap(i, j);
                }
                order
                    .chunks(k.max(1))
                    .map(|c| {
                        c.iter()
                            .map(|&seq| Window {
                                seq,
                                start: 0,
                                len: t,
                            })
                            .collect()
                    })
                    .collect()
            }
            BatchSpec::Windows { window, per_step } => {
                let starts = (t - window + 1) as u64;
                let windows: Vec<Window> = (0..n)
                    .flat_map(|seq| (0..t / window).map(move |_| seq))
                    .map(|seq| Window {
                        seq,
                        start: (rng.next_u64() % starts) as usize,
                        len: window,
                    })
                    .collect();
                windows
                    .chunks(per_step.max(1))
                    .map(<[Window]>::to_vec)
                    .collect()
            }
        };
    }

    /// f on batch `k` with the gradient selection in `g`.
    pub fn gradient(
        &self,
        k: usize,
        registry: &Registry,
        x: &[f64],
        g: &mut [f64],
        opts: EvalOptions,
    ) -> Result<f64, String> {
        let windows = self.plan.get(k).ok_or("no such minibatch")?;
        let data = self.data.iter().map(|d| slice(d, windows)).collect();
        let graph = graph::lower(self.model, &LowerOptions { data })
            .map_err(|d| crate::diag::render_plain(&d))?;
        let mut ev = Evaluator::new(&graph, registry, Order::Zero).map_err(|e| e.to_string())?;
        ev.gradient(x, g, opts).map_err(|e| e.to_string())
    }
}

/// Sequences `seqs` of `d` (all time steps), in that order.
pub fn select_sequences(d: &SeqData, seqs: std::ops::Range<usize>) -> SeqData {
    let w: Vec<Window> = seqs
        .map(|seq| Window {
            seq,
            start: 0,
            len: d.steps,
        })
        .collect();
    SeqData {
        warmup: d.warmup,
        ..slice(d, &w)
    }
}

/// The windows of `d` as a new batch: steps `len`, one sequence per window.
fn slice(d: &SeqData, windows: &[Window]) -> SeqData {
    let width = d.values.len() / (d.steps * d.sequences).max(1);
    let len = windows.first().map_or(0, |w| w.len);
    let mut values = Vec::with_capacity(len * windows.len() * width);
    for t in 0..len {
        for w in windows {
            let at = ((w.start + t) * d.sequences + w.seq) * width;
            values.extend_from_slice(&d.values[at..at + width]);
        }
    }
    SeqData {
        steps: len,
        sequences: windows.len(),
        values,
        warmup: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(steps: usize, sequences: usize) -> SeqData {
        // value = 100 t + s, width 1.
        let values = (0..steps)
            .flat_map(|t| (0..sequences).map(move |s| (100 * t + s) as f64))
            .collect();
        SeqData {
            steps,
            sequences,
            values,
            warmup: 0,
        }
    }

    #[test]
    fn windows_copy_the_right_steps_and_sequences() {
        let d = data(10, 3);
        let w = [
            Window {
                seq: 2,
                start: 4,
                len: 3,
            },
            Window {
                seq: 0,
                start: 7,
                len: 3,
            },
        ];
        let s = slice(&d, &w);
        assert_eq!((s.steps, s.sequences), (3, 2));
        assert_eq!(s.values, vec![402.0, 700.0, 502.0, 800.0, 602.0, 900.0]);
    }
}
