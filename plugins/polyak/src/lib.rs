//! A subgradient solver for nonsmooth problems, written from the SDK guide: the Polyak step
//! t = (f(x) − f_target) / ‖g‖² along a subgradient g, with heavy-ball momentum
//! (v ← μ v − t g, x ← x + v), full batch.
//!
//! The target is either known (`target: known`, `f_min`: the optimal value or a lower bound)
//! or adaptive (`target: adaptive`): f_target = f_best − δ, where f_best is the smallest f seen
//! and δ starts at `delta` and halves after every step that does not lower f_best (the
//! "target level" variant of Polyak's step). A subgradient method is not monotone: mcopt's
//! `best` in report.json says which iterate was lowest.

use mcopt_plugin_sdk::abi::{OptionDescriptor, Str, OPEN_HI};
use mcopt_plugin_sdk::{
    norm, solver, Blob, BlobReader, Metrics, Problem, Signal, Solver, Start, Step,
};

/// The names of the `target` choice.
const TARGETS: &[Str] = &[Str::new("known"), Str::new("adaptive")];

/// The solver's state.
pub struct Polyak {
    known: bool,
    f_min: f64,
    mu: f64,
    min_delta: f64,
    /// Velocity.
    v: Vec<f64>,
    g: Vec<f64>,
    /// Smallest f so far, and the adaptive gap δ.
    f_best: f64,
    delta: f64,
}

impl Solver for Polyak {
    const NAME: &'static str = "polyak";
    const DESCRIPTION: &'static str =
        "subgradient method with Polyak steps (known or adaptive target) and heavy-ball momentum";
    const OPTIONS: &'static [OptionDescriptor] = &[
        OptionDescriptor::choice(
            "target",
            TARGETS,
            1,
            "known: f_min is the optimal value; adaptive: f_best − δ",
        ),
        OptionDescriptor::real("f_min", 0.0, "the optimal value (or a lower bound) of f"),
        OptionDescriptor::real("delta", 1.0, "initial gap δ of the adaptive target").positive(),
        OptionDescriptor::real("momentum", 0.0, "heavy-ball momentum μ in [0, 1)")
            .range(0.0, 1.0, OPEN_HI),
        OptionDescriptor::real(
            "min_delta",
            1e-12,
            "stop (converged) when δ, or f − f_min, falls to this",
        )
        .positive(),
    ];
    const METRICS: &'static [Str] = &[Str::new("step"), Str::new("f_best"), Str::new("delta")];

    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String> {
        let o = start.options;
        let n = problem.dim();
        Ok(Polyak {
            known: o.choice("target")? == "known",
            f_min: o.number("f_min")?,
            mu: o.number("momentum")?,
            min_delta: o.number("min_delta")?,
            v: vec![0.0; n],
            g: vec![0.0; n],
            f_best: f64::INFINITY,
            delta: o.number("delta")?,
        })
    }

    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut Metrics<'_>,
    ) -> Result<Step, String> {
        let f = problem.gradient(x, &mut self.g)?;
        let gnorm = norm(&self.g);
        if !f.is_finite() || !gnorm.is_finite() {
            return Ok(Step::diverged(gnorm));
        }
        if f < self.f_best {
            self.f_best = f;
        } else if !self.known {
            self.delta *= 0.5;
        }
        let target = if self.known {
            self.f_min
        } else {
            self.f_best - self.delta
        };
        let gap = f - target;
        let done = if self.known {
            gap <= self.min_delta
        } else {
            self.delta <= self.min_delta
        };
        if done || gnorm == 0.0 {
            return Ok(Step {
                signal: Signal::Converged,
                stationarity: gnorm,
            });
        }
        let t = gap / (gnorm * gnorm);
        for ((xi, vi), gi) in x.iter_mut().zip(&mut self.v).zip(&self.g) {
            *vi = self.mu * *vi - t * gi;
            *xi += *vi;
        }
        metrics.set("step", t)?;
        metrics.set("f_best", self.f_best)?;
        metrics.set("delta", self.delta)?;
        Ok(Step::next(gnorm))
    }

    fn stop_reason(&self) -> Option<String> {
        Some(if self.known {
            format!("f − f_min fell to min_delta {:e}", self.min_delta)
        } else {
            format!("the adaptive gap δ fell to min_delta {:e}", self.min_delta)
        })
    }

    fn save(&self, out: &mut Vec<u8>) {
        // f_best starts at +∞, which a blob refuses: a flag says whether it is set.
        let set = self.f_best.is_finite();
        Blob::new(out)
            .u64(u64::from(set))
            .f64(if set { self.f_best } else { 0.0 })
            .f64(self.delta)
            .f64s(&self.v);
    }

    fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String> {
        let mut s = Self::init(problem, start)?;
        let mut r = BlobReader::new(bytes);
        let set = r.u64()? != 0;
        let f_best = r.f64()?;
        s.f_best = if set { f_best } else { f64::INFINITY };
        s.delta = r.f64()?;
        s.v = r.f64s(problem.dim())?;
        r.finish()?;
        Ok(s)
    }
}

mcopt_plugin_sdk::export_plugin! {
    name: "polyak",
    version: env!("CARGO_PKG_VERSION"),
    functions: [],
    solvers: [solver::<Polyak>()],
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcopt_plugin_sdk::testing::{check_resume, options, run, TestProblem};

    /// f(x) = |x₁| + 2 |x₂ − 1|, minimum 0 at (0, 1); the subgradient takes sign 0 at a kink.
    fn kinked() -> TestProblem {
        TestProblem::new(2, |x, g| {
            g[0] = x[0].signum() * f64::from(u8::from(x[0] != 0.0));
            let d = x[1] - 1.0;
            g[1] = 2.0 * d.signum() * f64::from(u8::from(d != 0.0));
            x[0].abs() + 2.0 * d.abs()
        })
    }

    fn f(x: &[f64]) -> f64 {
        x[0].abs() + 2.0 * (x[1] - 1.0).abs()
    }

    #[test]
    fn with_the_known_optimal_value_the_distance_to_the_solution_never_grows() {
        let mut p = kinked();
        let x0 = [3.0, -2.0];
        let mut dist = f64::INFINITY;
        for k in 1..40 {
            let r = run::<Polyak>(&mut p, &[("target", "known")], &x0, k).unwrap();
            let d = (r.x[0] * r.x[0] + (r.x[1] - 1.0).powi(2)).sqrt();
            assert!(d <= dist + 1e-12, "step {k}: {d} > {dist}");
            dist = d;
        }
        let r = run::<Polyak>(&mut p, &[("target", "known")], &x0, 200).unwrap();
        assert!(f(&r.x) < 1e-6, "{:?}", r.x);
    }

    #[test]
    fn the_adaptive_target_decreases_the_best_value_and_converges() {
        let mut p = kinked();
        let x0 = [3.0, -2.0];
        let r = run::<Polyak>(&mut p, &[("momentum", "0.3")], &x0, 500).unwrap();
        let last = r.steps.last().unwrap();
        assert_eq!(last.0.signal, Signal::Converged, "{:?}", r.steps.len());
        let best = r.steps.iter().rev().find(|s| !s.1[1].is_nan()).unwrap().1[1];
        assert!(best < 1e-3 * f(&x0), "{best}");
        // The best value never increases from one step to the next.
        let bests: Vec<f64> = r
            .steps
            .iter()
            .map(|s| s.1[1])
            .filter(|v| !v.is_nan())
            .collect();
        assert!(bests.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn resumes_bit_for_bit_through_its_blob() {
        let mut p = kinked();
        check_resume::<Polyak>(&mut p, &[("momentum", "0.5")], &[3.0, -2.0], 25).unwrap();
        check_resume::<Polyak>(&mut p, &[("target", "known")], &[3.0, -2.0], 10).unwrap();
    }

    #[test]
    fn options_are_read_by_name_and_checked() {
        let v = options::<Polyak>(&[("target", "known"), ("delta", "0.5")]).unwrap();
        assert_eq!(v, vec![0.0, 0.0, 0.5, 0.0, 1e-12]);
        let e = options::<Polyak>(&[("target", "exact")]).unwrap_err();
        assert!(e.contains("target"), "{e}");
        let e = options::<Polyak>(&[("momentum", "1")]).unwrap_err();
        assert!(e.contains("[0, 1)"), "{e}");
    }
}
