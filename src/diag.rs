//! Diagnostics: the one error type every stage returns, rendered by miette in the CLI layer.
//!
//! A [`Diag`] is data: a stable code, a lowercase message, labelled spans into one
//! [`SourceFile`] (the model, a YAML file, a CSV file), and optional help. Stages collect
//! them into [`Diags`] so a user sees every problem the stage could find, not only the first.

use std::fmt;
use std::sync::Arc;

/// A half-open byte range `start..end` into a [`SourceFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A named text that diagnostics point into (a model, a YAML file, a CSV file).
#[derive(Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
        })
    }

    /// The span of the whole 1-based line `line` (without its newline); empty span past the end.
    pub fn line_span(&self, line: usize) -> Span {
        let mut start = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let trimmed = l.trim_end_matches(['\n', '\r']);
                return Span::new(start, start + trimmed.len());
            }
            start += l.len();
        }
        Span::new(self.text.len(), self.text.len())
    }

    /// The 1-based line number of byte offset `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
}

/// One diagnostic. The first label is the primary one.
#[derive(Debug, Clone)]
pub struct Diag {
    /// Stable code, e.g. `mcopt::parse::syntax`; tests and users may match on it.
    pub code: &'static str,
    /// Lowercase, no trailing period: what was expected and what was found.
    pub message: String,
    pub source: Option<Arc<SourceFile>>,
    /// A diagnostic about a whole file that has no text to point into (missing file, unreadable).
    pub path: Option<String>,
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diag {
    pub fn new(code: &'static str, message: impl Into<String>) -> Diag {
        Diag {
            code,
            message: message.into(),
            source: None,
            path: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// Point into `source`; the label text may be empty.
    pub fn at(mut self, source: &Arc<SourceFile>, span: Span, label: impl Into<String>) -> Diag {
        self.source = Some(Arc::clone(source));
        self.labels.push((span, label.into()));
        self
    }

    /// Add a secondary label into the same source as the primary one.
    pub fn label(mut self, span: Span, label: impl Into<String>) -> Diag {
        self.labels.push((span, label.into()));
        self
    }

    /// The diagnostic concerns a file as a whole (for example one that could not be read).
    pub fn in_file(mut self, path: impl Into<String>) -> Diag {
        self.path = Some(path.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    /// The primary span, if any.
    pub fn primary(&self) -> Option<Span> {
        self.labels.first().map(|(s, _)| *s)
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, &self.path) {
            (None, Some(path)) => write!(f, "{}: {}", path, self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Diag {}

impl miette::Diagnostic for Diag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let len = self.source.as_ref().map_or(0, |s| s.text.len());
        Some(Box::new(self.labels.iter().enumerate().map(
            move |(i, (span, text))| {
                let start = span.start.min(len);
                let end = span.end.clamp(start, len);
                let label = (!text.is_empty()).then(|| text.clone());
                let labeled = miette::LabeledSpan::new(label, start, end - start);
                if i == 0 {
                    miette::LabeledSpan::new_primary_with_span(
                        labeled.label().map(str::to_owned),
                        *labeled.inner(),
                    )
                } else {
                    labeled
                }
            },
        )))
    }
}

impl miette::SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// A non-empty collection of diagnostics: what a stage returns when it fails.
#[derive(Debug, Clone, Default)]
pub struct Diags(pub Vec<Diag>);

impl Diags {
    pub fn new() -> Diags {
        Diags(Vec::new())
    }

    pub fn push(&mut self, d: Diag) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diag> {
        self.0.iter()
    }

    /// `Ok(value)` if no diagnostic was collected, else all of them.
    pub fn finish<T>(self, value: T) -> Result<T, Diags> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Diag> for Diags {
    fn from(d: Diag) -> Diags {
        Diags(vec![d])
    }
}

impl fmt::Display for Diags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Render diagnostics as text without colours (used by tests' expected-output files and by
/// the CLI when stderr is not a terminal).
pub fn render_plain(diags: &Diags) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut out = String::new();
    for d in diags.iter() {
        // Rendering into a String cannot fail except through fmt errors we do not produce.
        let _ = handler.render_report(&mut out, d);
    }
    out
}
