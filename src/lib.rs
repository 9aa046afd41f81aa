//! mcopt: nonconvex nonsmooth multicomposite optimization.
//!
//! Data flows one way: text → [`syntax`] → [`check`] → [`graph`] → [`eval`]; see `ARCHITECTURE.md`.

pub mod check;
pub mod config;
pub mod diag;
pub mod eval;
pub mod forms;
pub mod graph;
pub mod input;
pub mod pipeline;
pub mod plugin_host;
pub mod registry;
pub mod report;
pub mod rng;
pub mod solve;
pub mod stationarity;
pub mod sweep;
pub mod syntax;
pub mod text;
