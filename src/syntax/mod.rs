//! The syntax stage: `.mco` text to an [`ast::Program`] with spans. Pest stays inside this module.
//!
//! The language is described for users in `docs/language.md`; the grammar is
//! `grammar/mcopt.pest`.

//!
//! Inside, the modules depend one way: `parse` (building the AST) uses `errors` (turning pest
//! errors and limit violations into diagnostics), and both use `scan` and `grammar`; the
//! limits below belong to the module, so `errors` never reaches back into `parse`.

pub mod ast;
mod errors;
mod grammar;
mod parse;
mod scan;

pub use parse::parse;

/// Deepest bracket/operator nesting accepted in one statement; deeper text is refused with a
/// diagnostic before pest runs.
pub const MAX_NESTING: usize = 256;

/// Deepest AST accepted (each node one level, so `1+1+...+1` with n terms is n levels deep).
pub const MAX_DEPTH: usize = 1024;
