//! mcopt: nonconvex nonsmooth multicomposite optimization.
//!
//! Data flows one way: text → [`syntax`] → [`check`] → [`graph`] → [`eval`]; see `ARCHITECTURE.md`.

// Every unsafe operation sits in its own `unsafe` block with a SAFETY note, also inside an
// `unsafe fn`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod atomic;
pub mod check;
pub mod config;
pub mod diag;
pub mod eval;
pub mod forms;
pub mod graph;
pub mod input;
pub mod memory;
pub mod plugin_host;
pub mod registry;
pub mod report;
pub mod rng;
pub mod session;
pub mod signals;
pub mod solve;
pub mod stationarity;
pub mod sweep;
pub mod syntax;
pub mod text;
pub mod vars;
