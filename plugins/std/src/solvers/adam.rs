//! Adam (Kingma and Ba), with bias correction: m ← b1 m + (1 − b1) g, v ← b2 v + (1 − b2) g²,
//! x ← x − lr m̂ / (√v̂ + eps) with m̂ = m / (1 − b1ᵏ), v̂ = v / (1 − b2ᵏ).

use mcopt_plugin_sdk::abi::{OptionDescriptor, Str, OPEN_HI};
use mcopt_plugin_sdk::{Blob, BlobReader, Metrics, Problem, Solver, Start, Step};

/// Adam; see the module docs. One step is one epoch (one update per minibatch).
pub struct Adam {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    g: Vec<f64>,
    /// Updates taken so far (k in the bias correction).
    k: u64,
}

impl Solver for Adam {
    const NAME: &'static str = "adam";
    const DESCRIPTION: &'static str = "Adam with bias correction";
    const OPTIONS: &'static [OptionDescriptor] = &[
        OptionDescriptor::real("lr", 0.001, "step size").positive(),
        OptionDescriptor::real("b1", 0.9, "first-moment decay in [0, 1)").range(0.0, 1.0, OPEN_HI),
        OptionDescriptor::real("b2", 0.999, "second-moment decay in [0, 1)")
            .range(0.0, 1.0, OPEN_HI),
        OptionDescriptor::real("eps", 1e-8, "denominator offset").positive(),
    ];
    const METRICS: &'static [Str] = &[Str::new("grad_norm")];

    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String> {
        let o = start.options;
        let n = problem.dim();
        Ok(Adam {
            lr: o.number("lr")?,
            b1: o.number("b1")?,
            b2: o.number("b2")?,
            eps: o.number("eps")?,
            m: vec![0.0; n],
            v: vec![0.0; n],
            g: vec![0.0; n],
            k: 0,
        })
    }

    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut Metrics<'_>,
    ) -> Result<Step, String> {
        let mut g = std::mem::take(&mut self.g);
        let step = problem.epoch(x, &mut g, |_, x, batch| {
            self.update(x, batch.grad);
            Ok(None)
        });
        self.g = g;
        let step = step?;
        if step.signal != mcopt_plugin_sdk::Signal::Diverged {
            metrics.set("grad_norm", step.stationarity)?;
        }
        Ok(step)
    }

    fn save(&self, out: &mut Vec<u8>) {
        Blob::new(out).u64(self.k).f64s(&self.m).f64s(&self.v);
    }

    fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String> {
        let mut s = Self::init(problem, start)?;
        let n = problem.dim();
        let mut r = BlobReader::new(bytes);
        s.k = r.u64()?;
        s.m = r.f64s(n)?;
        s.v = r.f64s(n)?;
        r.finish()?;
        Ok(s)
    }
}

impl Adam {
    /// One Adam update of `x` with the gradient `g`.
    fn update(&mut self, x: &mut [f64], g: &[f64]) {
        self.k += 1;
        let k = self.k.min(i32::MAX as u64) as i32;
        let c1 = 1.0 / (1.0 - self.b1.powi(k));
        let c2 = 1.0 / (1.0 - self.b2.powi(k));
        let (b1, b2, lr, eps) = (self.b1, self.b2, self.lr, self.eps);
        for (((xi, g), m), v) in x.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *xi -= lr * (*m * c1) / ((*v * c2).sqrt() + eps);
        }
    }
}
