//! The standard solvers: gradient descent with Armijo backtracking (the reference solver that
//! exercises the solver interface; Adam and SRPA come from their own modules later).

pub mod srpa;

use mcopt_plugin_sdk::abi::{outcome, OptionDescriptor, OptionType, Progress, SolverResult};
use mcopt_plugin_sdk::{Observer, Problem, Solver};

/// Gradient descent x ← x − t g with Armijo backtracking: t starts at min(step, 2 t_prev) and
/// halves until f(x − t g) ≤ f(x) − 1e-4 t ‖g‖². Converges when ‖g‖ ≤ tol.
pub struct GradientDescent;

const ARMIJO: f64 = 1e-4;
const MIN_STEP: f64 = 1e-20;

impl Solver for GradientDescent {
    const NAME: &'static str = "gd";
    const DESCRIPTION: &'static str = "gradient descent with Armijo backtracking";
    const OPTIONS: &'static [OptionDescriptor] = &[
        OptionDescriptor::new(
            "max_iter",
            OptionType::Integer,
            1000.0,
            "maximum number of iterations",
        ),
        OptionDescriptor::new(
            "step",
            OptionType::Real,
            1.0,
            "initial (largest) step length",
        ),
        OptionDescriptor::new(
            "tol",
            OptionType::Real,
            1e-6,
            "stop when the gradient norm is at most tol",
        ),
    ];

    fn run(
        problem: &mut Problem<'_>,
        options: &[f64],
        x: &mut [f64],
        observer: &mut Observer<'_>,
    ) -> Result<SolverResult, String> {
        let (max_iter, step, tol) = (options[0], options[1], options[2]);
        if !(step > 0.0 && step.is_finite()) {
            return Err(format!("option step must be positive, found {step}"));
        }
        let mut g = vec![0.0; x.len()];
        let mut trial = vec![0.0; x.len()];
        let mut f = problem.gradient(x, &mut g).map_err(|e| e.to_string())?;
        let mut t = step;
        let mut k = 0u64;
        let outcome = loop {
            if (k as f64) >= max_iter {
                break outcome::MAX_ITERATIONS;
            }
            let gg: f64 = g.iter().map(|v| v * v).sum();
            if gg.sqrt() <= tol {
                break outcome::CONVERGED;
            }
            t = (2.0 * t).min(step);
            if armijo(problem, x, &g, gg, f, &mut t, &mut trial)?.is_none() {
                // No decrease along the gradient selection: a kink or the limit of precision.
                break outcome::STALLED;
            }
            x.copy_from_slice(&trial);
            f = problem.gradient(x, &mut g).map_err(|e| e.to_string())?;
            k += 1;
            let progress = Progress {
                iteration: k,
                value: f,
                step_norm: t * gg.sqrt(),
                grad_norm: g.iter().map(|v| v * v).sum::<f64>().sqrt(),
                evaluations: problem.evaluations(),
            };
            if observer.observe(&progress) {
                break outcome::STOPPED;
            }
        };
        Ok(SolverResult {
            outcome,
            iterations: k,
            evaluations: problem.evaluations(),
            value: f,
        })
    }
}

/// Backtrack from step `t` (halving) until f(x − t g) ≤ f − c t ‖g‖²; the accepted point is left
/// in `trial` and its value returned, `None` when the step underflows first.
fn armijo(
    problem: &mut Problem<'_>,
    x: &[f64],
    g: &[f64],
    gg: f64,
    f: f64,
    t: &mut f64,
    trial: &mut [f64],
) -> Result<Option<f64>, String> {
    while *t >= MIN_STEP {
        for ((y, xi), gi) in trial.iter_mut().zip(x).zip(g) {
            *y = xi - *t * gi;
        }
        let f_new = problem.value(trial).map_err(|e| e.to_string())?;
        if f_new <= f - ARMIJO * *t * gg {
            return Ok(Some(f_new));
        }
        *t *= 0.5;
    }
    Ok(None)
}
