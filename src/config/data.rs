//! CSV data files: comma-separated finite numbers, an optional header line, every problem
//! reported with its line and field.

use std::path::Path;
use std::sync::Arc;

use super::{list_names, Capped};
use crate::diag::{Diag, Diags, SourceFile, Span};
use crate::input::{read_source, InputKind};
use crate::text::clip;

/// Whether the first line of a CSV file is a header of column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMode {
    /// A header if the first line has a non-empty field that is not a number.
    #[default]
    Auto,
    Yes,
    No,
}

/// A CSV file read into numbers: `rows[r][c]` is data row `r` (0-based, after the header).
#[derive(Debug, Clone)]
pub struct Table {
    pub source: Arc<SourceFile>,
    pub header: Option<Vec<String>>,
    pub rows: Vec<Vec<f64>>,
    /// The span of each data row's line.
    pub row_spans: Vec<Span>,
    /// The span of the header line (empty at 0 when there is none).
    pub header_span: Span,
}

impl Table {
    /// The number of columns (every row has it).
    pub fn ncols(&self) -> usize {
        match &self.header {
            Some(h) => h.len(),
            None => self.rows.first().map_or(0, Vec::len),
        }
    }

    /// The index of the column called `name`, if there is a header with that name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.as_ref()?.iter().position(|h| h == name)
    }

    /// The column names for help texts (`0`, `1`, ... when there is no header).
    pub fn column_names(&self) -> String {
        match &self.header {
            Some(h) => {
                let shown: Vec<String> = h
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        if n.is_empty() {
                            format!("(unnamed column {i})")
                        } else {
                            n.clone()
                        }
                    })
                    .collect();
                list_names(&shown)
            }
            None => format!("no header: columns are numbered 0..{}", self.ncols()),
        }
    }
}

/// Read a CSV file of numbers; empty lines are skipped.
pub fn read_csv(path: &Path, header: HeaderMode) -> Result<Table, Diags> {
    let source = read_source(path, InputKind::Data)?;
    parse_csv(&source, header)
}

/// At most this many problems are reported per file.
const MAX_DIAGS: usize = 20;

/// Parse CSV text (see [`read_csv`]).
pub fn parse_csv(source: &Arc<SourceFile>, header: HeaderMode) -> Result<Table, Diags> {
    let mut lines = lines(&source.text).peekable();
    let Some(&(first_span, first)) = lines.peek() else {
        let d = Diag::new(
            "mcopt::data::empty",
            "expected CSV data, found an empty file",
        );
        return Err(d.in_file(source.name.clone()).into());
    };
    let first_fields = split_fields(first, first_span.start);
    let mut table = Table {
        source: Arc::clone(source),
        header: None,
        rows: Vec::new(),
        row_spans: Vec::new(),
        header_span: Span::default(),
    };
    if is_header(header, &first_fields) {
        lines.next();
        table.header = Some(first_fields.into_iter().map(|(f, _)| f).collect());
        table.header_span = first_span;
    }
    let mut diags = Capped::new(MAX_DIAGS);
    for (span, line) in lines {
        let fields = split_fields(line, span.start);
        let width_from = match (&table.header, table.row_spans.first()) {
            (Some(h), _) => (h.len(), table.header_span),
            (None, Some(&s)) => (table.rows[0].len(), s),
            (None, None) => (fields.len(), span),
        };
        let row = parse_row(source, &fields, span, width_from, &mut diags);
        if table.rows.try_reserve(1).is_err() || table.row_spans.try_reserve(1).is_err() {
            let bytes = (table.rows.len() + 1) * (std::mem::size_of::<Vec<f64>>() + row.len() * 8);
            let e = crate::memory::AllocError { bytes };
            let d = Diag::new(
                "mcopt::data::memory",
                e.message("the rows of the data file"),
            )
            .at(source, span, "reading this row")
            .help(crate::memory::AllocError::HELP);
            return Err(d.into());
        }
        table.rows.push(row);
        table.row_spans.push(span);
    }
    if diags.is_empty() && table.rows.is_empty() {
        let msg = "expected data rows after the header, found none";
        diags.push(Diag::new("mcopt::data::no_rows", msg).at(
            source,
            table.header_span,
            "only a header",
        ));
    }
    diags.finish().finish(table)
}

/// Whether the first line is a header under `mode`.
fn is_header(mode: HeaderMode, first: &[(String, Span)]) -> bool {
    match mode {
        HeaderMode::Yes => true,
        HeaderMode::No => false,
        HeaderMode::Auto => first
            .iter()
            .any(|(f, _)| !f.is_empty() && f.parse::<f64>().is_err()),
    }
}

/// Parse the fields of one line; problems go to `problems`, bad fields become NaN.
fn parse_row(
    source: &Arc<SourceFile>,
    fields: &[(String, Span)],
    line: Span,
    (width, width_line): (usize, Span),
    problems: &mut Capped,
) -> Vec<f64> {
    if fields.len() != width {
        let d = Diag::new(
            "mcopt::data::ragged",
            format!("expected {width} fields, found {}", fields.len()),
        )
        .at(source, line, format!("{} fields", fields.len()))
        .label(width_line, format!("{width} fields here"))
        .help("every line of a data file must have the same number of comma-separated fields");
        problems.push(d);
    }
    fields
        .iter()
        .map(|(text, span)| parse_field(source, text, *span, problems))
        .collect()
}

fn parse_field(source: &Arc<SourceFile>, text: &str, span: Span, problems: &mut Capped) -> f64 {
    let (code, message, label) = match text.parse::<f64>() {
        Ok(x) if x.is_finite() => return x,
        _ if text.is_empty() => (
            "mcopt::data::empty_field",
            "expected a number, found an empty field".to_string(),
            "empty",
        ),
        Ok(_) => (
            "mcopt::data::not_finite",
            format!("expected a finite number, found `{}`", clip(text)),
            "not finite",
        ),
        Err(_) => (
            "mcopt::data::not_numeric",
            format!("expected a number, found `{}`", clip(text)),
            "not a number",
        ),
    };
    let d = Diag::new(code, message).at(source, span, label);
    problems.push(match code {
        "mcopt::data::not_numeric" => {
            d.help("data files hold numbers only; a first line of names is read as a header")
        }
        _ => d.help("missing or non-finite values must be removed or filled before training"),
    });
    f64::NAN
}

/// The non-blank lines of `text` with their spans (without line endings).
fn lines(text: &str) -> impl Iterator<Item = (Span, &str)> {
    let mut start = 0;
    text.split_inclusive('\n').filter_map(move |raw| {
        let s = start;
        start += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        (!line.trim().is_empty()).then_some((Span::new(s, s + line.len()), line))
    })
}

/// Split one line into trimmed fields with their spans; `"..."` quotes may hold commas.
fn split_fields(line: &str, offset: usize) -> Vec<(String, Span)> {
    let bytes = line.as_bytes();
    let mut fields = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                fields.push(field(line, start, i, offset));
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(field(line, start, line.len(), offset));
    fields
}

fn field(line: &str, start: usize, end: usize, offset: usize) -> (String, Span) {
    let raw = &line[start..end];
    let lead = raw.len() - raw.trim_start().len();
    let text = raw.trim();
    let span = Span::new(offset + start + lead, offset + start + lead + text.len());
    let unquoted = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => text.to_string(),
    };
    (unquoted, span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, mode: HeaderMode) -> Result<Table, Diags> {
        parse_csv(&SourceFile::new("t.csv", text), mode)
    }

    #[test]
    fn auto_header_and_numbers() {
        let t = parse(",a,b\n0,1.5,-2\n1,3e2,4\n", HeaderMode::Auto).unwrap();
        assert_eq!(
            t.header.as_deref(),
            Some(&["".to_string(), "a".into(), "b".into()][..])
        );
        assert_eq!(t.rows, vec![vec![0.0, 1.5, -2.0], vec![1.0, 300.0, 4.0]]);
        assert_eq!(t.column("b"), Some(2));
        let t = parse("1,2\n3,4", HeaderMode::Auto).unwrap();
        assert!(t.header.is_none());
        assert_eq!(t.rows.len(), 2);
    }

    #[test]
    fn field_spans_point_at_the_field() {
        let src = "1,2\n3, x \n";
        let e = parse(src, HeaderMode::No).unwrap_err();
        let span = e.0[0].primary().unwrap();
        assert_eq!(&src[span.start..span.end], "x");
        assert_eq!(e.0[0].code, "mcopt::data::not_numeric");
    }

    #[test]
    fn all_problems_are_reported() {
        let e = parse("1,2\n3\nnan,4\n,5\n", HeaderMode::No).unwrap_err();
        let codes: Vec<&str> = e.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                "mcopt::data::ragged",
                "mcopt::data::not_finite",
                "mcopt::data::empty_field"
            ]
        );
    }

    #[test]
    fn problems_are_capped_and_counted() {
        let text = "1,2\n".to_string() + &"x,y\n".repeat(15);
        let e = parse(&text, HeaderMode::No).unwrap_err();
        assert_eq!(e.len(), MAX_DIAGS);
        let help = e.0[MAX_DIAGS - 1].help.as_deref().unwrap_or("");
        assert!(
            help.ends_with("10 more problems in this file are not shown"),
            "{help}"
        );
    }
}
