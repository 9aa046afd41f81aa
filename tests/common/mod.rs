//! Helpers shared by the integration tests: an s-expression printer for the AST, model
//! generators, and the expected-file comparison used by the data-driven tests.
#![allow(dead_code)]

pub mod alloc;
pub mod cert;
pub mod eval;
pub mod gen;
pub mod golden;
pub mod linearize;
pub mod plugins;
pub mod products;
pub mod sexp;
