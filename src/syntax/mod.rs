//! The syntax stage: `.mco` text to an [`ast::Program`] with spans. Pest stays inside this module.
//!
//! The language is described for users in `docs/language.md`; the grammar is
//! `grammar/mcopt.pest`.

pub mod ast;
mod errors;
mod grammar;
mod parse;
mod scan;

pub use parse::{parse, MAX_DEPTH, MAX_NESTING};
