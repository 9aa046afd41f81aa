//! The syntax stage: `.mco` text to an [`ast::Program`] with spans. Pest stays inside this module.

pub mod ast;
mod parse;

pub use parse::{parse, MAX_NESTING};
