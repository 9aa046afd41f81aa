//! Reports as bytes: the training trace (CSV) and its plot (SVG); certificates and validation
//! results as JSON, validation results as JUnit XML, and the SVG plot along a witness. Nothing
//! here prints or touches files; the CLI writes the bytes (atomically).

pub mod json;
pub mod junit;
pub mod line;
pub mod plot;
pub mod trace;
mod validation;

pub use validation::{Check, CheckStatus, Validation};
