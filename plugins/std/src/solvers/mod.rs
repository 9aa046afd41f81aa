//! The standard solvers: gradient descent (momentum, Nesterov, clipping, optional Armijo
//! backtracking) and Adam. SRPA comes from its own module. One step is one epoch: a pass over
//! every minibatch the host offers (one, for the full batch).

pub mod adam;
pub mod gd;
pub mod srpa;

pub use adam::Adam;
pub use gd::GradientDescent;

use mcopt_plugin_sdk::{Signal, Step};

/// ‖v‖₂.
pub(crate) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Whether every entry is finite.
pub(crate) fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// A step that stopped because f or the gradient (norm `gnorm`) is not finite.
pub(crate) fn diverged(gnorm: f64) -> Step {
    Step {
        signal: Signal::Diverged,
        stationarity: gnorm,
    }
}

/// The end of an epoch at `x` with last gradient norm `gnorm`: go on, unless x is not finite.
pub(crate) fn end_of_epoch(x: &[f64], gnorm: f64) -> Step {
    Step {
        signal: if all_finite(x) {
            Signal::Continue
        } else {
            Signal::Diverged
        },
        stationarity: gnorm,
    }
}
