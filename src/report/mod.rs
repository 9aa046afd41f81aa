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

/// Why a report's bytes cannot be produced: the drawing or XML backend's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// plotters could not draw an SVG.
    Svg(String),
    /// quick-junit could not serialize the XML.
    Xml(String),
}

impl RenderError {
    fn svg(e: impl std::fmt::Display) -> RenderError {
        RenderError::Svg(e.to_string())
    }
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Svg(m) | RenderError::Xml(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RenderError {}
