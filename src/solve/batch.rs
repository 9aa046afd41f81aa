//! Minibatches: each epoch the host draws batches of sequences or of time windows from the
//! run's seed and the epoch number only (so a resumed run draws the same batches), binds the
//! batch's data to an evaluator of a graph of the batch's shape and evaluates the gradient there.
//!
//! Draws: the generator is [`Rng`] seeded with `seed ^ (epoch + 1) · 0x9E3779B97F4A7C15`.
//! `{sequences: k}` shuffles the N sequences (Fisher–Yates) and cuts them into batches of k (the
//! last one may be smaller). `{window: w, per_step: m}` draws ⌊T / w⌋ windows per sequence,
//! each a uniform start in 0..=T − w of that sequence, in sequence order, and groups them m per
//! batch; every window starts from the model's base case (h₀ = 0).
//!
//! Shapes: the batches of an epoch have at most two shapes (time steps, sequences): the full
//! batches and the last one. They depend on the layout and the data only, not on the epoch, so
//! the caller lowers one graph per shape ([`Draws::shapes`]) once, and [`Batcher`] binds each
//! batch to the evaluator of its shape (`Evaluator::bind`): no lowering, no allocation per batch.

use crate::eval::{EvalOptions, Evaluator};
use crate::graph::{Graph, SeqData};
use crate::registry::{Order, Registry};
use crate::rng::Rng;

/// How an epoch is cut into minibatches (the run file's `batch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `{sequences: k}`: the sequences shuffled and split into batches of k (all time steps).
    Sequences(usize),
    /// `{window: w, per_step: m}`: windows of w consecutive time steps at random starts, m of
    /// them per batch; an epoch draws ⌊T / w⌋ windows per sequence.
    Windows { window: usize, per_step: usize },
}

/// One window: sequence, first step, number of steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    seq: usize,
    start: usize,
    len: usize,
}

/// The batches of an epoch over the training data.
pub struct Draws {
    data: Vec<SeqData>,
    layout: Layout,
    seed: u64,
    steps: usize,
    sequences: usize,
    plan: Vec<Vec<Window>>,
}

impl Draws {
    /// Batches over the training `data` (one entry per data declaration); an error when the
    /// layout does not fit the data (no data, a window longer than the sequences).
    pub fn new(data: Vec<SeqData>, layout: Layout, seed: u64) -> Result<Draws, String> {
        let Some(first) = data.first() else {
            return Err("minibatches need bound data, and the model reads none".to_string());
        };
        let (steps, sequences) = (first.steps, first.sequences);
        if let Layout::Windows { window, .. } = layout {
            if window > steps {
                return Err(format!(
                    "a window of {window} time steps is longer than the sequences ({steps} steps)"
                ));
            }
        }
        let mut d = Draws {
            data,
            layout,
            seed,
            steps,
            sequences,
            plan: Vec::new(),
        };
        d.begin_epoch(0);
        Ok(d)
    }

    pub fn n_batches(&self) -> usize {
        self.plan.len()
    }

    /// Draw the batches of `epoch`.
    pub fn begin_epoch(&mut self, epoch: u64) {
        let mut rng = Rng::new(self.seed ^ (epoch + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (t, n) = (self.steps, self.sequences);
        self.plan = match self.layout {
            Layout::Sequences(k) => {
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
            Layout::Windows { window, per_step } => {
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

    /// The data of the first batch of each shape (time steps, sequences) the batches take,
    /// in the order [`Batcher::new`] expects their graphs: lower one graph from each.
    pub fn shapes(&self) -> Vec<Vec<SeqData>> {
        let mut seen: Vec<(usize, usize)> = Vec::new();
        let mut out = Vec::new();
        for windows in &self.plan {
            let shape = shape(windows);
            if !seen.contains(&shape) {
                seen.push(shape);
                out.push(self.data.iter().map(|d| slice(d, windows)).collect());
            }
        }
        out
    }

    /// The data of batch `k` into `out` (its buffers reused).
    fn fill(&self, k: usize, out: &mut Vec<SeqData>) -> Result<(), String> {
        let windows = self.plan.get(k).ok_or("no such minibatch")?;
        out.resize_with(self.data.len(), SeqData::default);
        for (d, o) in self.data.iter().zip(out.iter_mut()) {
            slice_into(d, windows, o);
        }
        Ok(())
    }
}

/// A batch's time steps and sequences.
fn shape(windows: &[Window]) -> (usize, usize) {
    (windows.first().map_or(0, |w| w.len), windows.len())
}

/// Draws the batches of an epoch and evaluates gradients on them: one evaluator per batch
/// shape, bound to each batch of that shape in turn.
pub struct Batcher<'g> {
    draws: Draws,
    /// (shape, its evaluator), in the order of [`Draws::shapes`].
    evals: Vec<((usize, usize), Evaluator<'g>)>,
    /// The current batch's data.
    batch: Vec<SeqData>,
}

impl<'g> Batcher<'g> {
    /// Gradients of the batches of `draws` on `graphs`, lowered from [`Draws::shapes`] in its
    /// order.
    pub fn new(
        draws: Draws,
        graphs: &'g [Graph],
        registry: &'g Registry,
    ) -> Result<Batcher<'g>, String> {
        let mut evals = Vec::with_capacity(graphs.len());
        for g in graphs {
            let ev = Evaluator::new(g, registry, Order::Zero).map_err(|e| e.to_string())?;
            evals.push(((g.steps, g.sequences), ev));
        }
        Ok(Batcher {
            draws,
            evals,
            batch: Vec::new(),
        })
    }

    pub fn n_batches(&self) -> usize {
        self.draws.n_batches()
    }

    /// Draw the batches of `epoch`.
    pub fn begin_epoch(&mut self, epoch: u64) {
        self.draws.begin_epoch(epoch);
    }

    /// f on batch `k` with the gradient selection in `g`.
    pub fn gradient(
        &mut self,
        k: usize,
        x: &[f64],
        g: &mut [f64],
        opts: EvalOptions,
    ) -> Result<f64, String> {
        self.draws.fill(k, &mut self.batch)?;
        let want = self
            .batch
            .first()
            .map_or((0, 0), |d| (d.steps, d.sequences));
        let Some((_, ev)) = self.evals.iter_mut().find(|(s, _)| *s == want) else {
            return Err(format!(
                "no graph was lowered for a batch of {} sequence(s) of {} step(s)",
                want.1, want.0
            ));
        };
        ev.bind(&self.batch)
            .map_err(|d| crate::diag::render_plain(&crate::diag::Diags::from(d)))?;
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
    let mut out = SeqData::default();
    slice_into(d, windows, &mut out);
    out
}

/// [`slice`] into `out`, reusing its buffer.
fn slice_into(d: &SeqData, windows: &[Window], out: &mut SeqData) {
    let width = d.values.len() / (d.steps * d.sequences).max(1);
    let (len, sequences) = shape(windows);
    out.values.clear();
    out.values.reserve(len * sequences * width);
    for t in 0..len {
        for w in windows {
            let at = ((w.start + t) * d.sequences + w.seq) * width;
            out.values.extend_from_slice(&d.values[at..at + width]);
        }
    }
    (out.steps, out.sequences, out.warmup) = (len, sequences, 0);
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
