//! Example third-party solver plugin: plain momentum SGD (v ← μ v − lr g, x ← x + v), one
//! update per minibatch, written against the SDK's step-wise [`Solver`] trait. The SDK guide
//! (section 8) walks through it; the tests build it and train with it from a run file.

use mcopt_plugin_sdk::abi::{OptionDescriptor, Str, OPEN_HI};
use mcopt_plugin_sdk::{solver, Blob, BlobReader, Metrics, Problem, Signal, Solver, Start, Step};

/// The solver's state: its options and the velocity.
pub struct Momentum {
    lr: f64,
    mu: f64,
    v: Vec<f64>,
    g: Vec<f64>,
}

impl Solver for Momentum {
    const NAME: &'static str = "momentum_sgd";
    const DESCRIPTION: &'static str = "plain momentum SGD (an example third-party solver)";
    const OPTIONS: &'static [OptionDescriptor] = &[
        OptionDescriptor::real("lr", 0.01, "step size").positive(),
        OptionDescriptor::real("mu", 0.9, "momentum in [0, 1)").range(0.0, 1.0, OPEN_HI),
    ];
    const METRICS: &'static [Str] = &[Str::new("speed")];

    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String> {
        let n = problem.dim();
        Ok(Momentum {
            lr: start.options.number("lr")?,
            mu: start.options.number("mu")?,
            v: vec![0.0; n],
            g: vec![0.0; n],
        })
    }

    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut Metrics<'_>,
    ) -> Result<Step, String> {
        let (lr, mu, v) = (self.lr, self.mu, &mut self.v);
        let step = problem.epoch(x, &mut self.g, |_, x, batch| {
            for ((xi, vi), gi) in x.iter_mut().zip(v.iter_mut()).zip(batch.grad.iter()) {
                *vi = mu * *vi - lr * gi;
                *xi += *vi;
            }
            Ok(None)
        })?;
        if step.signal == Signal::Continue {
            metrics.set("speed", self.v.iter().map(|v| v * v).sum::<f64>().sqrt())?;
        }
        Ok(step)
    }

    fn save(&self, out: &mut Vec<u8>) {
        Blob::new(out).f64s(&self.v);
    }

    fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String> {
        let mut s = Self::init(problem, start)?;
        let mut r = BlobReader::new(bytes);
        s.v = r.f64s(problem.dim())?;
        r.finish()?;
        Ok(s)
    }
}

mcopt_plugin_sdk::export_plugin! {
    name: "momentum",
    version: env!("CARGO_PKG_VERSION"),
    functions: [],
    solvers: [solver::<Momentum>()],
}
