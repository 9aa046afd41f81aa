//! The standard solvers: gradient descent with Armijo backtracking (the reference solver that
//! exercises the solver interface; Adam and SRPA come from their own modules later).

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
        let n = x.len();
        let mut g = vec![0.0; n];
        let mut trial = vec![0.0; n];
        let mut f = problem.gradient(x, &mut g).map_err(|e| e.to_string())?;
        let mut t = step;
        let mut result = SolverResult {
            outcome: outcome::MAX_ITERATIONS,
            iterations: 0,
            evaluations: 0,
            value: f,
        };
        let mut k = 0u64;
        while (k as f64) < max_iter {
            let gg: f64 = g.iter().map(|v| v * v).sum();
            if gg.sqrt() <= tol {
                result.outcome = outcome::CONVERGED;
                break;
            }
            t = (2.0 * t).min(step);
            let f_new = loop {
                for i in 0..n {
                    trial[i] = x[i] - t * g[i];
                }
                let f_new = problem.value(&trial).map_err(|e| e.to_string())?;
                if f_new <= f - ARMIJO * t * gg || t < MIN_STEP {
                    break f_new;
                }
                t *= 0.5;
            };
            if t < MIN_STEP && f_new > f - ARMIJO * t * gg {
                // No decrease along the gradient selection: a kink or the limit of precision.
                result.outcome = outcome::STALLED;
                break;
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
                result.outcome = outcome::STOPPED;
                break;
            }
        }
        result.iterations = k;
        result.evaluations = problem.evaluations();
        result.value = f;
        Ok(result)
    }
}
