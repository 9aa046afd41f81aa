//! The training problem over lowered graphs: the solver's callbacks (value, directional
//! derivatives, gradient) on the training graph, and the host's measurements (objective, train
//! and test loss) at each iterate.

use crate::eval::{EvalOptions, Evaluator};
use crate::graph::Graph;
use crate::registry::{Order, Registry, SolverProblem};

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
    opts: EvalOptions,
    /// The (P1) structure offered to solvers that need it: layout version and table pointer.
    structure: Option<(u32, *const std::ffi::c_void)>,
}

impl<'g> GraphProblem<'g> {
    pub fn new(
        registry: &'g Registry,
        train: &'g Graph,
        test: Option<&'g Graph>,
        opts: EvalOptions,
    ) -> Result<GraphProblem<'g>, String> {
        let ev = |g: &'g Graph| Evaluator::new(g, registry, Order::Zero).map_err(|e| e.to_string());
        Ok(GraphProblem {
            registry,
            train: ev(train)?,
            test: test.map(ev).transpose()?,
            directional: None,
            opts,
            structure: None,
        })
    }

    /// Offer the (P1) structure (a table of layout `version` that must stay valid and unmoved
    /// while this problem is used).
    pub fn set_structure(&mut self, version: u32, table: *const std::ffi::c_void) {
        self.structure = Some((version, table));
    }
}

impl SolverProblem for GraphProblem<'_> {
    fn dim(&self) -> usize {
        self.train.graph().n_params()
    }

    fn value(&mut self, x: &[f64]) -> Result<f64, String> {
        self.train.value(x, self.opts).map_err(|e| e.to_string())
    }

    fn directional(&mut self, x: &[f64], d: &[f64], second: bool) -> Result<[f64; 3], String> {
        if self.directional.is_none() {
            let ev = Evaluator::new(self.train.graph(), self.registry, Order::Two)
                .map_err(|e| e.to_string())?;
            self.directional = Some(ev);
        }
        let Some(ev) = self.directional.as_mut() else {
            return Err("no evaluator for directional derivatives".to_string());
        };
        let order = if second { Order::Two } else { Order::One };
        let t = ev
            .directional(x, d, order, self.opts)
            .map_err(|e| e.to_string())?;
        Ok([t.value, t.d1.unwrap_or(0.0), t.d2.unwrap_or(0.0)])
    }

    fn gradient(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64, String> {
        self.train
            .gradient(x, g, self.opts)
            .map_err(|e| e.to_string())
    }

    fn structure(&self) -> Option<(u32, *const std::ffi::c_void)> {
        self.structure
    }
}

impl TrainProblem for GraphProblem<'_> {
    fn measure(&mut self, x: &[f64]) -> Result<Measures, String> {
        let objective = self.train.value(x, self.opts).map_err(|e| e.to_string())?;
        let train_loss = self.train.loss();
        let test_loss = match self.test.as_mut() {
            Some(ev) => {
                ev.value(x, self.opts).map_err(|e| e.to_string())?;
                Some(ev.loss())
            }
            None => None,
        };
        Ok(Measures {
            objective,
            train_loss,
            test_loss,
        })
    }
}
