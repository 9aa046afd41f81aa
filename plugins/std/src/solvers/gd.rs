//! Gradient descent with heavy-ball or Nesterov momentum, clipping by norm and optional Armijo
//! backtracking (PyTorch's SGD update: v ← μ v + g, d = g + μ v with Nesterov, else v;
//! x ← x − lr d).

use mcopt_plugin_sdk::abi::{OptionDescriptor, Str, OPEN_HI};
use mcopt_plugin_sdk::{Blob, BlobReader, Metrics, Problem, Signal, Solver, Start, Step};

/// Gradient descent; see the module docs. With `armijo`, the step length starts at
/// min(lr, 2 t_prev) and halves until f(x − t d) < f(x) and f(x − t d) ≤ f(x) − 1e-4 t ⟨g, d⟩
/// (full batch only). A trial point outside the domain (an evaluation error, a value that is
/// not finite) is a failed trial; when t falls below 1e-15 lr the step is `stalled`.
pub struct GradientDescent {
    opts: Opts,
    /// Momentum buffer.
    v: Vec<f64>,
    /// The epoch's gradient buffer, and the (clipped) gradient of the current minibatch.
    batch: Vec<f64>,
    g: Vec<f64>,
    trial: Vec<f64>,
    /// The search direction while backtracking (allocated once).
    dir: Vec<f64>,
    /// Last accepted Armijo step length.
    t: f64,
    /// The last step stalled (for [`Solver::stop_reason`]).
    stalled: bool,
}

/// Why gd stalls: no trial step above the floor decreased f.
fn stall_reason(lr: f64) -> String {
    format!(
        "no Armijo step down to {:e} (1e-15 lr) decreased f",
        MIN_STEP * lr
    )
}

#[derive(Clone, Copy)]
struct Opts {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    clip: f64,
    armijo: bool,
}

const ARMIJO: f64 = 1e-4;
/// The smallest Armijo step length, relative to `lr`: below it, no step decreases f.
const MIN_STEP: f64 = 1e-15;

impl Solver for GradientDescent {
    const NAME: &'static str = "gd";
    const DESCRIPTION: &'static str =
        "gradient descent with momentum, Nesterov, clipping and optional Armijo backtracking";
    const OPTIONS: &'static [OptionDescriptor] = &[
        OptionDescriptor::real("lr", 0.01, "step length (the largest one with armijo)").positive(),
        OptionDescriptor::real("momentum", 0.0, "momentum μ in [0, 1)").range(0.0, 1.0, OPEN_HI),
        OptionDescriptor::bool("nesterov", false, "Nesterov momentum"),
        OptionDescriptor::real(
            "clip",
            0.0,
            "clip the gradient to this norm (0: no clipping)",
        )
        .nonnegative(),
        OptionDescriptor::bool("armijo", false, "Armijo backtracking from lr (full batch)"),
    ];
    const METRICS: &'static [Str] = &[Str::new("grad_norm"), Str::new("step")];

    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String> {
        let o = start.options;
        let opts = Opts {
            lr: o.number("lr")?,
            momentum: o.number("momentum")?,
            nesterov: o.bool("nesterov")?,
            clip: o.number("clip")?,
            armijo: o.bool("armijo")?,
        };
        if opts.armijo && problem.n_batches() > 1 {
            return Err("option armijo needs the full batch (remove `batch`)".to_string());
        }
        let n = problem.dim();
        Ok(GradientDescent {
            opts,
            v: vec![0.0; n],
            batch: vec![0.0; n],
            g: vec![0.0; n],
            trial: vec![0.0; n],
            dir: vec![0.0; n],
            t: opts.lr,
            stalled: false,
        })
    }

    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut Metrics<'_>,
    ) -> Result<Step, String> {
        let mut g = std::mem::take(&mut self.batch);
        let step = problem.epoch(x, &mut g, |problem, x, batch| {
            self.update(problem, x, batch)
        });
        self.batch = g;
        let step = step?;
        // A step that stopped inside the epoch reports no metrics.
        if step.signal == Signal::Continue {
            metrics.set("grad_norm", step.stationarity)?;
            let t = if self.opts.armijo {
                self.t
            } else {
                self.opts.lr
            };
            metrics.set("step", t)?;
        }
        Ok(step)
    }

    fn stop_reason(&self) -> Option<String> {
        self.stalled.then(|| stall_reason(self.opts.lr))
    }

    fn save(&self, out: &mut Vec<u8>) {
        Blob::new(out).f64(self.t).f64s(&self.v);
    }

    fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String> {
        let mut s = Self::init(problem, start)?;
        let mut r = BlobReader::new(bytes);
        s.t = r.f64()?;
        s.v = r.f64s(problem.dim())?;
        r.finish()?;
        Ok(s)
    }
}

impl GradientDescent {
    /// One update of `x` on a minibatch (`Some` when the run stops: no Armijo step).
    fn update(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        batch: mcopt_plugin_sdk::Batch<'_>,
    ) -> Result<Option<Step>, String> {
        let gnorm = batch.grad_norm;
        if self.opts.clip > 0.0 && gnorm > self.opts.clip {
            let s = self.opts.clip / gnorm;
            batch.grad.iter_mut().for_each(|v| *v *= s);
        }
        self.g.copy_from_slice(batch.grad);
        self.direction();
        if self.opts.armijo {
            match self.armijo(problem, x, batch.value)? {
                Some(()) => x.copy_from_slice(&self.trial),
                None => {
                    self.stalled = true;
                    return Ok(Some(Step {
                        signal: Signal::Stalled,
                        stationarity: gnorm,
                    }));
                }
            }
        } else {
            let lr = self.opts.lr;
            x.iter_mut()
                .zip(&self.trial)
                .for_each(|(xi, d)| *xi -= lr * d);
        }
        Ok(None)
    }

    /// The search direction d (into `trial`) from the gradient in `g`, updating the momentum.
    fn direction(&mut self) {
        let mu = self.opts.momentum;
        if mu == 0.0 {
            self.trial.copy_from_slice(&self.g);
            return;
        }
        for ((v, g), d) in self.v.iter_mut().zip(&self.g).zip(self.trial.iter_mut()) {
            *v = mu * *v + g;
            *d = if self.opts.nesterov { g + mu * *v } else { *v };
        }
    }

    /// Backtrack along −d (d in `trial`); the accepted point is left in `trial`.
    fn armijo(
        &mut self,
        problem: &mut Problem<'_>,
        x: &[f64],
        f: f64,
    ) -> Result<Option<()>, String> {
        let mut slope: f64 = self.g.iter().zip(&self.trial).map(|(g, d)| g * d).sum();
        if slope <= 0.0 {
            // The momentum direction is not a descent direction: restart from the gradient.
            self.v.iter_mut().for_each(|v| *v = 0.0);
            self.trial.copy_from_slice(&self.g);
            slope = self.g.iter().map(|g| g * g).sum();
        }
        // The direction moves to `dir`; trial points are built in `trial`.
        std::mem::swap(&mut self.dir, &mut self.trial);
        let mut t = (2.0 * self.t).min(self.opts.lr);
        let mut accepted = None;
        while t >= MIN_STEP * self.opts.lr {
            self.trial
                .iter_mut()
                .zip(x)
                .zip(&self.dir)
                .for_each(|((y, xi), di)| *y = xi - t * di);
            // An error (log of 0) or a value that is not finite: outside the domain, shrink.
            let ok = problem
                .value(&self.trial)
                .is_ok_and(|v| v.is_finite() && v < f && v <= f - ARMIJO * t * slope);
            if ok {
                accepted = Some(());
                break;
            }
            t *= 0.5;
        }
        if accepted.is_some() {
            self.t = t;
        }
        Ok(accepted)
    }
}
