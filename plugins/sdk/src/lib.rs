//! SDK for mcopt plugins: the C ABI, the author-facing traits and the export macro.
//!
//! A plugin is a `cdylib` crate that writes its activations and penalties once, generically
//! ([`Smooth`], [`Piecewise`], or the low-level [`Elementwise`]), optionally solvers
//! ([`Solver`]), and exports them with [`export_plugin!`]. Start with the [`guide`]: it walks
//! through the complete swish example plugin, from writing it to using it in a model.
//!
//! The crate has no dependency on mcopt; mcopt depends on it and reads the same
//! [`abi::PluginDescriptor`].

// Every unsafe operation sits in its own `unsafe` block with a SAFETY note, also inside an
// `unsafe fn`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod abi;
pub mod elementwise;
pub mod export;
pub mod guide;
pub mod p1;
pub mod solver;
pub mod testing;

pub use abi::{Kind, ParamDescriptor, Smoothness};
pub use elementwise::{
    locate, Breakpoints, Coeffs, CoeffsMut, Elementwise, Num, Order, Piecewise, PiecewiseFn,
    Smooth, SmoothFn, MAX_BREAKPOINTS,
};
pub use export::{function, piecewise, smooth};
pub use num_dual::{Dual2_64, Dual64, DualNum};
pub use solver::{
    norm, solver, Batch, Blob, BlobReader, HostError, Metrics, Options, Problem, Signal, Solver,
    Start, Step, OBJECTIVE_METRIC,
};
