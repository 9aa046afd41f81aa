//! Reports as bytes: the training trace (CSV) and its plot (SVG). Nothing here prints or
//! touches files; the CLI writes the bytes (atomically).

pub mod plot;
pub mod trace;
