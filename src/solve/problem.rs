//! The training problem over lowered graphs: the solver's callbacks (value, directional
//! derivatives, gradient) on the training graph, and the host's measurements (objective, train
//! and test loss) at each iterate.

use crate::eval::{EvalOptions, Evaluator};
use crate::graph::Graph;
use crate::registry::{Order, Registry, SolverProblem};
use mcopt_plugin_sdk::p1::{P1Table, P1_STRUCTURE_VERSION};

use super::batch::Batcher;
use super::TrainProblem;

/// The host's measurements at an iterate: f, the loss part g on the training data, and the
/// loss on the test data when there is one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measures {
    pub objective: f64,
    pub train_loss: f64,
    pub test_loss: Option<f64>,
}

/// A model's training graph (and test graph) as a [`TrainProblem`]. Evaluators are built once;
/// the one for directional derivatives only on first use (it needs three coefficient blocks).
pub struct GraphProblem<'g> {
    registry: &'g Registry,
    train: Evaluator<'g>,
    test: Option<Evaluator<'g>>,
    directional: Option<Evaluator<'g>>,
    batches: Option<Batcher<'g>>,
    /// The sequences split across threads: f = Σ wᵢ fᵢ (see [`GraphProblem::with_split`]).
    split: Option<Split<'g>>,
    opts: EvalOptions,
    /// The (P1) structure offered to solvers that need it (borrowed for as long as the
    /// problem lives, so it cannot move or go away while offered).
    structure: Option<&'g P1Table>,
    /// The gradient at the last measured point (see [`Memo`]).
    memo: Memo,
    /// Whether the training evaluator's last pass was at the last measured point (`memo.x`),
    /// so the test split can read its warm-up from it.
    train_fresh: bool,
}

/// The measurement's gradient, handed to the solver's next step. A solver that starts its step
/// with ∇f at the iterate (Adam, gradient descent) would compute the same f the measurement just
/// computed; so once a step has asked for the gradient at the measured point, the next
/// measurements compute f by a gradient pass and keep ∇f for the step that follows. Values are
/// bit for bit those of separate passes (the same evaluator at the same point).
#[derive(Default)]
struct Memo {
    /// The last measured point.
    x: Vec<f64>,
    /// Whether `g` and `f` hold ∇f and f at `x`, not yet handed out.
    ready: bool,
    g: Vec<f64>,
    f: f64,
    /// Whether measurements compute the gradient: set at the start (unless the problem offers
    /// minibatches, a split or the (P1) structure, whose solvers take their derivatives
    /// elsewhere) and when a step asked for ∇f at the measured point, cleared when a
    /// measurement's gradient went unused.
    prefetch: bool,
}

/// Evaluators of disjoint groups of sequences, their weights and gradient buffers.
struct Split<'g> {
    evs: Vec<Evaluator<'g>>,
    weights: Vec<f64>,
    grads: Vec<Vec<f64>>,
    /// Each part's f at the last gradient (kept so a gradient allocates nothing).
    values: Vec<f64>,
}

impl<'g> GraphProblem<'g> {
    pub fn new(
        registry: &'g Registry,
        train: &'g Graph,
        test: Option<&'g Graph>,
        opts: EvalOptions,
    ) -> Result<GraphProblem<'g>, String> {
        let ev = |g: &'g Graph| Evaluator::new(g, registry, Order::Zero).map_err(|e| e.to_string());
        let mut test = test.map(ev).transpose()?;
        // The test split's warm-up repeats the training steps: read them from the training pass.
        if let Some(t) = test.as_mut() {
            t.share(train);
        }
        Ok(GraphProblem {
            registry,
            train: ev(train)?,
            test,
            directional: None,
            batches: None,
            split: None,
            opts,
            structure: None,
            // Until a solver shows otherwise, its step starts with ∇f at the iterate (see
            // [`Memo`]): row 0 is measured by a gradient pass.
            memo: Memo {
                prefetch: true,
                ..Memo::default()
            },
            train_fresh: false,
        })
    }

    /// Evaluate value and gradient on `parts` in parallel (one thread each) and combine them as
    /// f = Σ wᵢ fᵢ, ∇f = Σ wᵢ ∇fᵢ. Correct when each part holds a group of the sequences and
    /// the objective is a mean over sequences plus parameter-only terms, with wᵢ = Nᵢ / N (the
    /// caller checks, e.g. `session::train::splittable`); the training graph is still used for
    /// the host's measurements.
    pub fn with_split(mut self, parts: &[(&'g Graph, f64)]) -> Result<GraphProblem<'g>, String> {
        let n = self.train.graph().n_params();
        let mut evs = Vec::with_capacity(parts.len());
        for (g, _) in parts {
            evs.push(Evaluator::new(g, self.registry, Order::Zero).map_err(|e| e.to_string())?);
        }
        self.memo.prefetch = false;
        self.split = Some(Split {
            evs,
            weights: parts.iter().map(|p| p.1).collect(),
            grads: vec![vec![0.0; n]; parts.len()],
            values: vec![0.0; parts.len()],
        });
        Ok(self)
    }

    /// Offer minibatches to the solver (see [`Batcher`]).
    pub fn with_batches(mut self, batches: Batcher<'g>) -> GraphProblem<'g> {
        self.batches = Some(batches);
        self.memo.prefetch = false;
        self
    }

    /// Offer the (P1) structure (the table of a published host, e.g.
    /// `mcopt_plugin_sdk::p1::Published::table`) to solvers that need it.
    pub fn set_structure(&mut self, table: &'g P1Table) {
        self.structure = Some(table);
        // Such a solver (SRPA) takes its derivatives from the structure.
        self.memo.prefetch = false;
    }
}

impl SolverProblem for GraphProblem<'_> {
    fn dim(&self) -> usize {
        self.train.graph().n_params()
    }

    fn value(&mut self, x: &[f64]) -> Result<f64, String> {
        self.train_fresh = false;
        self.train.value(x, self.opts).map_err(|e| e.to_string())
    }

    fn directional(&mut self, x: &[f64], d: &[f64], order: Order) -> Result<[f64; 3], String> {
        if self.directional.is_none() {
            let ev = Evaluator::new(self.train.graph(), self.registry, Order::Two)
                .map_err(|e| e.to_string())?;
            self.directional = Some(ev);
        }
        let Some(ev) = self.directional.as_mut() else {
            return Err("no evaluator for directional derivatives".to_string());
        };
        let order = match order {
            Order::Zero | Order::One => Order::One,
            Order::Two => Order::Two,
        };
        let t = ev
            .directional(x, d, order, self.opts)
            .map_err(|e| e.to_string())?;
        Ok([t.value, t.d1.unwrap_or(0.0), t.d2.unwrap_or(0.0)])
    }

    fn gradient(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64, String> {
        let memo = &mut self.memo;
        if self.split.is_none() && memo.x == x {
            memo.prefetch = true;
            if std::mem::take(&mut memo.ready) && g.len() == memo.g.len() {
                g.copy_from_slice(&memo.g);
                return Ok(memo.f);
            }
        }
        match self.split.as_mut() {
            Some(split) => split.gradient(x, g, self.opts),
            None => {
                self.train_fresh = false;
                self.train
                    .gradient(x, g, self.opts)
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn batched(&self) -> bool {
        self.batches.is_some()
    }

    fn n_batches(&self) -> usize {
        self.batches.as_ref().map_or(1, Batcher::n_batches)
    }

    fn batch_gradient(&mut self, k: usize, x: &[f64], g: &mut [f64]) -> Result<f64, String> {
        match self.batches.as_mut() {
            Some(b) => b.gradient(k, x, g, self.opts),
            None => self.gradient(x, g),
        }
    }

    fn structure(&self) -> Option<(u32, *const std::ffi::c_void)> {
        self.structure.map(|t| {
            let ptr = (t as *const P1Table).cast::<std::ffi::c_void>();
            (P1_STRUCTURE_VERSION, ptr)
        })
    }
}

impl Split<'_> {
    /// f and ∇f combined from the parts, each on its own thread (the first on this one).
    fn gradient(&mut self, x: &[f64], g: &mut [f64], opts: EvalOptions) -> Result<f64, String> {
        std::thread::scope(|scope| {
            let mut jobs = self
                .evs
                .iter_mut()
                .zip(self.grads.iter_mut())
                .zip(self.values.iter_mut());
            let first = jobs.next();
            let handles: Vec<_> = jobs
                .map(|((ev, gb), v)| {
                    scope.spawn(move || -> Result<(), String> {
                        *v = ev.gradient(x, gb, opts).map_err(|e| e.to_string())?;
                        Ok(())
                    })
                })
                .collect();
            if let Some(((ev, gb), v)) = first {
                *v = ev.gradient(x, gb, opts).map_err(|e| e.to_string())?;
            }
            for h in handles {
                h.join()
                    .map_err(|_| "a gradient thread panicked".to_string())??;
            }
            Ok::<(), String>(())
        })?;
        g.fill(0.0);
        let mut f = 0.0;
        for ((gb, w), v) in self.grads.iter().zip(&self.weights).zip(&self.values) {
            f += w * v;
            g.iter_mut().zip(gb).for_each(|(gi, bi)| *gi += w * bi);
        }
        Ok(f)
    }
}

impl TrainProblem for GraphProblem<'_> {
    fn begin_epoch(&mut self, epoch: u64) {
        if let Some(b) = self.batches.as_mut() {
            b.begin_epoch(epoch);
        }
    }

    fn measure(&mut self, x: &[f64]) -> Result<Measures, String> {
        self.measure_at(x, true)
    }

    fn measure_train(&mut self, x: &[f64]) -> Result<Measures, String> {
        self.measure_at(x, false)
    }

    fn test_loss(&mut self, x: &[f64]) -> Result<Option<f64>, String> {
        let Some(ev) = self.test.as_mut() else {
            return Ok(None);
        };
        // The test split's warm-up is read from the training pass: one at `x` is needed.
        if !(self.train_fresh && self.memo.x == x) {
            self.train.value(x, self.opts).map_err(|e| e.to_string())?;
            self.train_fresh = self.memo.x == x;
        }
        ev.value_after(&self.train, x, self.opts)
            .map_err(|e| e.to_string())?;
        Ok(Some(ev.loss()))
    }
}

impl GraphProblem<'_> {
    /// f and the training loss at `x` by one pass of the training graph (a gradient pass when
    /// the next step will ask for ∇f here, see [`Memo`]), and the test loss when `test`.
    fn measure_at(&mut self, x: &[f64], test: bool) -> Result<Measures, String> {
        let memo = &mut self.memo;
        // A gradient measured last time and never asked for: stop computing it.
        if std::mem::take(&mut memo.ready) {
            memo.prefetch = false;
        }
        memo.x.clear();
        memo.x.extend_from_slice(x);
        self.train_fresh = false;
        let mut objective = None;
        if memo.prefetch && self.split.is_none() {
            memo.g.resize(x.len(), 0.0);
            // A failed gradient pass leaves the verdict to the value pass below.
            if let Ok(f) = self.train.gradient(x, &mut memo.g, self.opts) {
                (memo.f, memo.ready, objective) = (f, true, Some(f));
            }
        }
        let objective = match objective {
            Some(f) => f,
            None => self.train.value(x, self.opts).map_err(|e| e.to_string())?,
        };
        self.train_fresh = true;
        let train_loss = self.train.loss();
        let test_loss = match self.test.as_mut() {
            Some(ev) if test => {
                ev.value_after(&self.train, x, self.opts)
                    .map_err(|e| e.to_string())?;
                Some(ev.loss())
            }
            _ => None,
        };
        Ok(Measures {
            objective,
            train_loss,
            test_loss,
        })
    }
}
