//! SDK for mcopt plugins: the C ABI, author-facing traits and the export macro.
//!
//! See the [`guide`] module for the plugin author's guide.

pub mod abi;
pub mod elementwise;
pub mod export;
pub mod guide;
pub mod solver;

pub use abi::{Kind, ParamDescriptor, Smoothness};
pub use elementwise::{
    locate, Breakpoints, Coeffs, CoeffsMut, Elementwise, Num, Order, Piecewise, PiecewiseFn,
    Smooth, SmoothFn, MAX_BREAKPOINTS,
};
pub use export::{function, piecewise, smooth};
pub use num_dual::{Dual2_64, Dual64, DualNum};
pub use solver::{solver, HostError, Observer, Problem, Solver};
