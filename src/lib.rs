//! mcopt: nonconvex nonsmooth multicomposite optimization.
//!
//! Data flows one way: text → [`syntax`] → [`check`] → [`graph`] → [`eval`]; see `ARCHITECTURE.md`.

pub mod diag;
pub mod plugin_host;
pub mod registry;
pub mod syntax;
