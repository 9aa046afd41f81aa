//! The standard solvers: gradient descent (momentum, Nesterov, clipping, optional Armijo
//! backtracking) and Adam. SRPA comes from its own module. One step is one epoch: a pass over
//! every minibatch the host offers (one, for the full batch), through the SDK's
//! `Problem::epoch`.

pub mod adam;
pub mod gd;
pub mod srpa;

pub use adam::Adam;
pub use gd::GradientDescent;
