//! Diagnostics: the one error type every stage returns, rendered by miette in the CLI layer.
//!
//! A [`Diag`] is data: a stable code, a lowercase message, labelled spans into one
//! [`SourceFile`] (the model, a YAML file, a CSV file), and optional help. Stages collect
//! them into [`Diags`] so a user sees every problem the stage could find, not only the first.

pub mod codes;

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

/// How [`render`] draws diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderStyle {
    /// No colours, 100 columns: expected-output files, and stderr when it is not a terminal.
    Plain,
    /// miette's default theme (colours when the terminal supports them).
    Terminal,
}

/// Render diagnostics as text without colours (used by tests' expected-output files and by
/// the CLI when stderr is not a terminal).
pub fn render_plain(diags: &Diags) -> String {
    render(diags, RenderStyle::Plain)
}

/// Render diagnostics. Each is drawn through a [`View`]: long source lines are cut to a
/// window around the label and long texts are clipped, so the output stays small whatever
/// the input (a label past column 65,535 would otherwise make miette panic).
pub fn render(diags: &Diags, style: RenderStyle) -> String {
    render_as(diags, style, false)
}

/// [`render`] as warnings: reported, but the command goes on (for example an old spelling
/// that is still accepted).
pub fn render_warnings(diags: &Diags, style: RenderStyle) -> String {
    render_as(diags, style, true)
}

fn render_as(diags: &Diags, style: RenderStyle, warning: bool) -> String {
    let handler = match style {
        RenderStyle::Plain => {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100)
        }
        RenderStyle::Terminal => miette::GraphicalReportHandler::new(),
    };
    let mut out = String::new();
    for d in diags.iter() {
        // Rendering into a String cannot fail except through fmt errors we do not produce.
        let mut view = View::of(d);
        view.warning = warning;
        let _ = handler.render_report(&mut out, &view);
    }
    out
}

/// The widest source line a rendered snippet shows, in bytes.
pub const SNIPPET_WIDTH: usize = 200;
/// The most characters of a message or help text that are rendered.
const TEXT_CHARS: usize = 2000;
/// The most characters of a label that are rendered.
const LABEL_CHARS: usize = 200;

/// A diagnostic as it is rendered: texts clipped, and, when a line near a label is wider
/// than [`SNIPPET_WIDTH`], the source replaced by an [`Excerpt`] of the primary label's line.
#[derive(Debug)]
pub struct View<'a> {
    diag: &'a Diag,
    message: String,
    help: Option<String>,
    excerpt: Option<Excerpt>,
    labels: Vec<(Span, String)>,
    /// Rendered as a warning ([`render_warnings`]).
    warning: bool,
}

/// A window of one source line, with where it sits in the file (for the line:column header).
#[derive(Debug)]
struct Excerpt {
    name: String,
    text: String,
    /// 0-based line of the window in the file.
    line: usize,
    /// Byte column in the file of the excerpt's byte 0 (may be negative by the "…" prefix).
    column_shift: isize,
}

impl<'a> View<'a> {
    pub fn of(diag: &'a Diag) -> View<'a> {
        let clip = |s: &str, n| crate::text::clip_to(s, n).into_owned();
        let mut view = View {
            diag,
            message: clip(&diag.message, TEXT_CHARS),
            help: diag.help.as_deref().map(|h| clip(h, TEXT_CHARS)),
            excerpt: None,
            labels: diag
                .labels
                .iter()
                .map(|(s, l)| (*s, clip(l, LABEL_CHARS)))
                .collect(),
            warning: false,
        };
        if let (Some(src), Some(primary)) = (&diag.source, diag.primary()) {
            if diag.labels.iter().any(|(s, _)| too_wide(&src.text, *s)) {
                view.window(src, primary);
            }
        }
        view
    }

    /// The message as rendered (clipped).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The help as rendered (clipped).
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// Replace the source by a window of the primary label's line; keep the labels inside it.
    fn window(&mut self, src: &SourceFile, primary: Span) {
        let text = &src.text;
        let at = floor_char(text, primary.start.min(text.len()));
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let start = floor_char(text, at.saturating_sub(SNIPPET_WIDTH / 3).max(line_start));
        let end = floor_char(text, (start + SNIPPET_WIDTH).min(line_end));
        let body = text[start..end].trim_end_matches('\r');
        let prefix = if start > line_start { "…" } else { "" };
        let suffix = if end < line_end { "…" } else { "" };
        let shift = start as isize - prefix.len() as isize;
        self.labels = std::mem::take(&mut self.labels)
            .into_iter()
            .filter(|(s, _)| s.start >= start && s.start <= start + body.len())
            .map(|(s, l)| {
                let a = s.start - start + prefix.len();
                let b = s.end.clamp(s.start, start + body.len()) - start + prefix.len();
                (Span::new(a, b), l)
            })
            .collect();
        self.excerpt = Some(Excerpt {
            name: src.name.clone(),
            text: format!("{prefix}{body}{suffix}"),
            line: src.line_of(at) - 1,
            column_shift: shift - line_start as isize,
        });
    }
}

/// Whether the lines a label's snippet shows (its own lines and one on each side) include
/// one wider than [`SNIPPET_WIDTH`], or the label itself is longer than that.
fn too_wide(text: &str, span: Span) -> bool {
    if span.end.saturating_sub(span.start) > SNIPPET_WIDTH {
        return true;
    }
    let (a, b) = (span.start.min(text.len()), span.end.min(text.len()));
    let bytes = text.as_bytes();
    let before = bytes[..a].iter().rposition(|&c| c == b'\n').unwrap_or(0);
    let before = bytes[..before]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let mut end = b;
    for _ in 0..2 {
        match bytes[end.min(bytes.len())..]
            .iter()
            .position(|&c| c == b'\n')
        {
            Some(i) => end = end + i + 1,
            None => {
                end = bytes.len();
                break;
            }
        }
    }
    bytes[before..end.min(bytes.len())]
        .split(|&c| c == b'\n')
        .any(|l| l.len() > SNIPPET_WIDTH)
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.diag.source, &self.diag.path) {
            (None, Some(path)) => write!(f, "{}: {}", path, self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for View<'_> {}

impl miette::Diagnostic for View<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.warning.then_some(miette::Severity::Warning)
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match &self.excerpt {
            Some(e) => Some(e),
            None => self
                .diag
                .source
                .as_ref()
                .map(|s| s as &dyn miette::SourceCode),
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let len = match &self.excerpt {
            Some(e) => e.text.len(),
            None => self.diag.source.as_ref()?.text.len(),
        };
        Some(Box::new(self.labels.iter().enumerate().map(
            move |(i, (span, text))| miette_label(i == 0, *span, text, len),
        )))
    }
}

fn miette_label(primary: bool, span: Span, text: &str, len: usize) -> miette::LabeledSpan {
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    let label = (!text.is_empty()).then(|| text.to_owned());
    if primary {
        miette::LabeledSpan::new_primary_with_span(label, (start, end - start))
    } else {
        miette::LabeledSpan::new(label, start, end - start)
    }
}

impl miette::SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.read_span(span, before, after)?;
        let column = if inner.line() == 0 && inner.column() > 0 {
            (inner.column() as isize + self.column_shift).max(0) as usize
        } else {
            inner.column()
        };
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.line,
            column,
            inner.line_count(),
        )))
    }
}
