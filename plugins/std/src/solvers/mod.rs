//! The standard solvers: gradient descent (momentum, Nesterov, clipping, optional Armijo
//! backtracking) and Adam. SRPA comes from its own module. One step is one epoch: a pass over
//! every minibatch the host offers (one, for the full batch).

pub mod adam;
pub mod gd;
pub mod srpa;

pub use adam::Adam;
pub use gd::GradientDescent;

/// ‖v‖₂.
pub(crate) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Whether every entry is finite.
pub(crate) fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}
