//! Binding CSV columns to the model's `data` declarations: column and row selections,
//! sequence layouts, the train/test split, and the command-line forms of bindings.
//!
//! Row selections apply to the time steps *within each sequence*: with 3 sequences of 10
//! steps, `train: 0..8` takes steps 0..8 of every sequence. With a single sequence (the
//! default) that is simply data rows 0..8 after the header.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::data::{read_csv, HeaderMode, Table};
use super::{list_names, suggest};
use crate::diag::{Diag, Diags, SourceFile, Span};

/// Which columns a binding takes (0-based).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSel {
    Indices(Vec<usize>),
    Names(Vec<String>),
    /// Columns `start..end`, half-open.
    Range {
        start: usize,
        end: usize,
    },
    /// Columns from `first` to `last` by header name, both included (`DP..IP`).
    NameRange {
        first: String,
        last: String,
    },
}

/// Which time steps of each sequence a split takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowSel {
    /// Steps `start..end`, 0-based, half-open.
    Range {
        start: usize,
        end: usize,
    },
    /// As `train`: the first `floor(f * steps)` steps. As `test`: the steps from
    /// `floor((1 - f) * steps)` on. A missing `test` after a fractional `train` is the rest.
    Fraction(f64),
    All,
}

/// How the rows of a data file form sequences.
#[derive(Debug, Clone, PartialEq)]
pub enum SeqLayout {
    /// One sequence: row r is time step r.
    Single,
    /// N consecutive blocks of equal length, one sequence each.
    Blocks(usize),
    /// Rows with equal values in this column form one sequence (in order of first
    /// appearance; rows keep their order within a sequence). All sequences must have equal length.
    Column(String),
}

/// Where the recurrence of the test split starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestState {
    /// When the test steps directly follow the training steps, one forward pass runs over
    /// the training steps and then the test steps, so the state at the first test step is
    /// the one the last training step leaves (the paper's TestErr). Otherwise as `Restart`.
    #[default]
    Carry,
    /// The test steps start from the base cases, as if they were a sequence of their own.
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Where a [`DataSpec`] was written, so binding errors can point at it (None for the command line).
#[derive(Debug, Clone)]
pub struct SpecOrigin {
    pub source: Arc<SourceFile>,
    /// The `data:` key.
    pub data: Span,
    /// The data file's name.
    pub file: Span,
    /// One span per binding (its column selection), in `bind` order.
    pub bind: Vec<Span>,
    pub train: Span,
    pub test: Option<Span>,
    pub sequences: Span,
}

/// A data file and what to take from it.
#[derive(Debug, Clone)]
pub struct DataSpec {
    /// As written; relative paths are resolved against `bind`'s `base_dir`.
    pub file: PathBuf,
    pub header: HeaderMode,
    /// Model data name → columns.
    pub bind: Vec<(String, ColumnSel)>,
    pub train: RowSel,
    pub test: Option<RowSel>,
    pub sequences: SeqLayout,
    /// Whether the test split starts from the state the training steps leave.
    pub test_state: TestState,
    pub origin: Option<SpecOrigin>,
}

impl DataSpec {
    /// Whether there is a test split: `test:` is given, or `train` is a fraction (the test
    /// split is then the rest).
    pub fn has_test(&self) -> bool {
        self.test.is_some() || matches!(self.train, RowSel::Fraction(_))
    }
}

/// A `data` declaration of the model: its name and the width of one time step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSlot {
    pub name: String,
    pub width: usize,
}

/// The values for one `data` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundData {
    pub name: String,
    pub width: usize,
    pub sequences: usize,
    /// All bound time steps, the warm-up included.
    pub steps: usize,
    /// For t in 0..steps, for s in 0..sequences, `width` values: per time step a
    /// column-major `width × sequences` matrix.
    pub values: Vec<f64>,
    /// Leading steps that only carry the state over (the training steps before a test
    /// split that follows them); they are not part of the split's loss.
    pub warmup: usize,
}

/// Read the data file of `spec` and cut out, for each slot, the columns bound to it and the
/// time steps of `split`. A test split that directly follows the training steps (and
/// [`TestState::Carry`]) also gets the training steps, as a warm-up before it.
pub fn bind(
    spec: &DataSpec,
    base_dir: &Path,
    split: Split,
    slots: &[DataSlot],
) -> Result<Vec<BoundData>, Diags> {
    let path = base_dir.join(&spec.file);
    let table = read_csv(&path, spec.header).map_err(|d| unreadable(d, spec))?;
    bind_table(spec, &table, split, slots)
}

/// [`bind`] on a table already in memory (an embedding program's arrays, see
/// [`super::memory_table`]) instead of `spec`'s file.
pub fn bind_table(
    spec: &DataSpec,
    table: &Table,
    split: Split,
    slots: &[DataSlot],
) -> Result<Vec<BoundData>, Diags> {
    let ctx = Ctx { spec, table };
    let mut diags = Diags::new();
    let columns = ctx.resolve_bindings(slots, &mut diags);
    let sequences = ctx.sequences().map_err(|d| diags.push(d)).ok();
    if !diags.is_empty() {
        return Err(diags);
    }
    let sequences = sequences.unwrap_or_default();
    let steps_total = sequences.first().map_or(0, Vec::len);
    let (mut start, end) = ctx.split_range(split, steps_total)?;
    let mut warmup = 0;
    if split == Split::Test && spec.test_state == TestState::Carry {
        let (train_start, train_end) = ctx.split_range(Split::Train, steps_total)?;
        if train_end == start && train_start < start {
            warmup = start - train_start;
            start = train_start;
        }
    }
    let out = slots
        .iter()
        .zip(columns)
        .map(|(slot, cols)| {
            let mut b = gather(table, slot, &cols, &sequences, start..end)?;
            b.warmup = warmup;
            Ok(b)
        })
        .collect::<Result<Vec<_>, Diag>>()?;
    Ok(out)
}

/// A data file that cannot be read is reported at its name in the run file, if there is one.
fn unreadable(mut diags: Diags, spec: &DataSpec) -> Diags {
    if let (Some(origin), [d]) = (&spec.origin, diags.0.as_mut_slice()) {
        if d.source.is_none() {
            let path = d.path.take().unwrap_or_default();
            let message = format!(
                "cannot read data file `{path}`: {}",
                d.message.trim_start_matches("cannot read the file: ")
            );
            let mut nd = Diag::new(d.code, message).at(&origin.source, origin.file, "this file");
            nd.help = d.help.take();
            *d = nd;
        }
    }
    diags
}

/// Parse a command-line binding `NAME=FILE:COLUMNS` (columns `a..b`, `1,2,5`, `DP,EP` or `DP..IP`).
pub fn parse_cli_binding(arg: &str) -> Result<(String, PathBuf, ColumnSel), Diag> {
    let source = SourceFile::new("--data", arg);
    let whole = Span::new(0, arg.len());
    let usage = "write `--data NAME=FILE:COLUMNS`, e.g. `--data x=data.csv:0..5` or `--data y=data.csv:RV_SP500`";
    let Some(eq) = arg.find('=') else {
        return Err(Diag::new(
            "mcopt::data::cli",
            "expected `NAME=FILE:COLUMNS`, found no `=`",
        )
        .at(&source, whole, "")
        .help(usage));
    };
    let name = arg[..eq].trim();
    if !is_name(name) {
        let d = Diag::new(
            "mcopt::data::cli",
            format!("expected a data name before `=`, found `{name}`"),
        );
        return Err(d.at(&source, Span::new(0, eq), "not a name").help(usage));
    }
    let rest = &arg[eq + 1..];
    let Some(colon) = rest.rfind(':') else {
        let d = Diag::new(
            "mcopt::data::cli",
            "expected `FILE:COLUMNS` after `=`, found no `:`",
        );
        return Err(d.at(&source, Span::new(eq + 1, arg.len()), "").help(usage));
    };
    let cols_at = eq + 1 + colon + 1;
    let cols = parse_columns(&rest[colon + 1..]).map_err(|m| {
        Diag::new("mcopt::data::columns", m)
            .at(&source, Span::new(cols_at, arg.len()), "columns")
            .help(usage)
    })?;
    Ok((name.to_string(), PathBuf::from(&rest[..colon]), cols))
}

/// Parse a row selection: `a..b` (0-based, half-open), a fraction like `0.9`, or `all`.
pub fn parse_row_sel(s: &str) -> Result<RowSel, Diag> {
    let source = SourceFile::new("rows", s);
    let t = s.trim();
    let fail = |m: String| {
        Diag::new("mcopt::data::rows", m)
            .at(&source, Span::new(0, s.len()), "")
            .help("write a range of time steps `start..end` (0-based, end excluded), a fraction like `0.9`, or `all`")
    };
    if t == "all" {
        return Ok(RowSel::All);
    }
    if let Some((a, b)) = t.split_once("..") {
        let (start, end) = parse_range(a, b).map_err(fail)?;
        if start >= end {
            return Err(fail(format!(
                "expected a non-empty range of time steps, found `{t}`"
            )));
        }
        return Ok(RowSel::Range { start, end });
    }
    match t.parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(RowSel::Fraction(f)),
        Ok(_) => Err(fail(format!(
            "expected a fraction strictly between 0 and 1, found `{t}`"
        ))),
        Err(_) => Err(fail(format!(
            "expected a row range, a fraction or `all`, found `{t}`"
        ))),
    }
}

/// Parse a column selection: `a..b`, `1,2,5`, `DP,EP,...` or `DP..IP`; the message on failure.
pub fn parse_columns(s: &str) -> Result<ColumnSel, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("expected columns, found nothing".to_string());
    }
    if let Some((a, b)) = t.split_once("..") {
        if a.trim().parse::<usize>().is_err() && b.trim().parse::<usize>().is_err() {
            let (first, last) = (a.trim().to_string(), b.trim().to_string());
            if first.is_empty() || last.is_empty() {
                return Err(format!("expected a column range `a..b`, found `{t}`"));
            }
            return Ok(ColumnSel::NameRange { first, last });
        }
        let (start, end) = parse_range(a, b)?;
        if start >= end {
            return Err(format!("expected a non-empty column range, found `{t}`"));
        }
        return Ok(ColumnSel::Range { start, end });
    }
    let items: Vec<&str> = t.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(format!(
            "expected a comma-separated list of columns, found `{t}`"
        ));
    }
    let numbers: Result<Vec<usize>, _> = items.iter().map(|i| i.parse::<usize>()).collect();
    match numbers {
        Ok(idx) => Ok(ColumnSel::Indices(idx)),
        Err(_) => Ok(ColumnSel::Names(
            items.iter().map(|i| i.to_string()).collect(),
        )),
    }
}

fn parse_range(a: &str, b: &str) -> Result<(usize, usize), String> {
    let num = |x: &str| {
        x.trim().parse::<usize>().map_err(|_| {
            format!(
                "expected a range `start..end` of non-negative integers, found `{}..{}`",
                a.trim(),
                b.trim()
            )
        })
    };
    Ok((num(a)?, num(b)?))
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

struct Ctx<'a> {
    spec: &'a DataSpec,
    table: &'a Table,
}

impl Ctx<'_> {
    /// A diagnostic at `span` in the run file, or naming the data file when there is no run file.
    fn diag(&self, code: &'static str, message: String, span: Option<Span>, label: &str) -> Diag {
        match (&self.spec.origin, span) {
            (Some(o), Some(span)) => Diag::new(code, message).at(&o.source, span, label),
            _ => Diag::new(code, message).in_file(self.table.source.name.clone()),
        }
    }

    fn bind_span(&self, i: usize) -> Option<Span> {
        self.spec
            .origin
            .as_ref()
            .and_then(|o| o.bind.get(i).copied())
    }

    fn data_span(&self) -> Option<Span> {
        self.spec.origin.as_ref().map(|o| o.data)
    }

    /// Columns for each slot, in slot order; reports unbound slots, unused bindings, bad columns, wrong widths.
    fn resolve_bindings(&self, slots: &[DataSlot], diags: &mut Diags) -> Vec<Vec<usize>> {
        self.unused_bindings(slots, diags);
        slots
            .iter()
            .map(|slot| self.slot_columns(slot, diags).unwrap_or_default())
            .collect()
    }

    /// Report bindings that no `data` declaration uses.
    fn unused_bindings(&self, slots: &[DataSlot], diags: &mut Diags) {
        let known: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
        for (i, (name, _)) in self.spec.bind.iter().enumerate() {
            if known.contains(&name.as_str()) {
                continue;
            }
            let help = format!(
                "{}the model declares data {}",
                suggest(name, &known),
                list_names(&known)
            );
            let msg = format!("binding `{name}` has no `data {name}` declaration in the model");
            let d = self.diag(
                "mcopt::data::unused_binding",
                msg,
                self.bind_span(i),
                "not declared",
            );
            diags.push(d.help(help));
        }
    }

    /// The columns bound to `slot`, checked against its width.
    fn slot_columns(&self, slot: &DataSlot, diags: &mut Diags) -> Option<Vec<usize>> {
        let Some(i) = self.spec.bind.iter().position(|(n, _)| n == &slot.name) else {
            let msg = format!("`data {}` (width {}) has no binding", slot.name, slot.width);
            let (name, w) = (&slot.name, slot.width);
            let help = format!("bind it to {w} columns of the data file, e.g. `{name}: 0..{w}`");
            let d = self.diag(
                "mcopt::data::unbound",
                msg,
                self.data_span(),
                "no binding here",
            );
            diags.push(d.help(help));
            return None;
        };
        let cols = self.columns(i, diags)?;
        if cols.len() != slot.width {
            let (name, w, n) = (&slot.name, slot.width, cols.len());
            let msg = format!("`data {name}` has width {w}, but its binding selects {n} columns");
            let label = format!("{n} columns");
            diags.push(self.diag("mcopt::data::width", msg, self.bind_span(i), &label));
        }
        Some(cols)
    }

    /// The column indices of binding `i`, or None after reporting why not.
    fn columns(&self, i: usize, diags: &mut Diags) -> Option<Vec<usize>> {
        let (name, sel) = &self.spec.bind[i];
        let ncols = self.table.ncols();
        let out_of_range = |c: usize| {
            let msg = format!("binding `{name}` selects column {c}, but the data file has {ncols} columns (0..{ncols})");
            self.diag(
                "mcopt::data::column_range",
                msg,
                self.bind_span(i),
                "out of range",
            )
        };
        match sel {
            ColumnSel::Range { start, end } => {
                if *end > ncols || start >= end {
                    diags.push(out_of_range(end.saturating_sub(1).max(*start)));
                    return None;
                }
                Some((*start..*end).collect())
            }
            ColumnSel::Indices(idx) => match idx.iter().find(|&&c| c >= ncols) {
                Some(&c) => {
                    diags.push(out_of_range(c));
                    None
                }
                None => Some(idx.clone()),
            },
            ColumnSel::Names(names) => {
                let found: Vec<Option<usize>> =
                    names.iter().map(|n| self.named(i, n, diags)).collect();
                found.into_iter().collect()
            }
            ColumnSel::NameRange { first, last } => {
                let (a, b) = (self.named(i, first, diags)?, self.named(i, last, diags)?);
                if a > b {
                    let msg = format!(
                        "binding `{name}`: column `{first}` comes after `{last}` in the data file"
                    );
                    diags.push(self.diag(
                        "mcopt::data::column_range",
                        msg,
                        self.bind_span(i),
                        "reversed range",
                    ));
                    return None;
                }
                Some((a..=b).collect())
            }
        }
    }

    /// The index of the column called `col` for binding `i`, or None after reporting it.
    fn named(&self, i: usize, col: &str, diags: &mut Diags) -> Option<usize> {
        let name = &self.spec.bind[i].0;
        let span = self.bind_span(i);
        let Some(header) = &self.table.header else {
            let msg =
                format!("binding `{name}` names column `{col}`, but the data file has no header");
            let n = self.table.ncols();
            let help =
                format!("select columns by number (the file has {n} columns) or set `header: yes`");
            let d = self.diag("mcopt::data::no_header", msg, span, "a column name");
            diags.push(d.help(help));
            return None;
        };
        let found = self.table.column(col);
        if found.is_none() {
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let help = format!(
                "{}the columns are {}",
                suggest(col, &header),
                self.table.column_names()
            );
            let msg =
                format!("binding `{name}` names column `{col}`, which the data file does not have");
            let d = self.diag("mcopt::data::column_name", msg, span, "unknown column");
            diags.push(d.help(help));
        }
        found
    }

    /// The data rows of each sequence, in time order.
    fn sequences(&self) -> Result<Vec<Vec<usize>>, Diag> {
        let n = self.table.rows.len();
        let span = self.spec.origin.as_ref().map(|o| o.sequences);
        match &self.spec.sequences {
            SeqLayout::Single => Ok(vec![(0..n).collect()]),
            SeqLayout::Blocks(k) => {
                if *k == 0 || n % k != 0 {
                    let msg = format!(
                        "expected the {n} data rows to split into {k} blocks of equal length"
                    );
                    return Err(self.diag("mcopt::data::blocks", msg, span, "blocks"));
                }
                let len = n / k;
                Ok((0..*k)
                    .map(|b| (b * len..(b + 1) * len).collect())
                    .collect())
            }
            SeqLayout::Column(col) => self.sequences_by_column(col, span),
        }
    }

    fn sequences_by_column(&self, col: &str, span: Option<Span>) -> Result<Vec<Vec<usize>>, Diag> {
        let Some(c) = self.table.column(col) else {
            let msg = format!("expected a sequence-id column `{col}` in the data file, found none");
            return Err(self
                .diag("mcopt::data::column_name", msg, span, "unknown column")
                .help(format!("the columns are {}", self.table.column_names())));
        };
        let mut ids: Vec<u64> = Vec::new();
        let mut seqs: Vec<Vec<usize>> = Vec::new();
        for (r, row) in self.table.rows.iter().enumerate() {
            let id = row[c].to_bits();
            match ids.iter().position(|&x| x == id) {
                Some(s) => seqs[s].push(r),
                None => {
                    ids.push(id);
                    seqs.push(vec![r]);
                }
            }
        }
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        if lens.iter().any(|&l| l != lens[0]) {
            let msg = format!(
                "expected sequences of equal length, found lengths {}",
                short_list(&lens)
            );
            return Err(self.diag("mcopt::data::sequences", msg, span, "sequence-id column"));
        }
        Ok(seqs)
    }

    /// The time steps `start..end` of `split` within each sequence of `steps` steps.
    fn split_range(&self, split: Split, steps: usize) -> Result<(usize, usize), Diag> {
        let origin = self.spec.origin.as_ref();
        let (sel, span, what) = match split {
            Split::Train => (Some(self.spec.train), origin.map(|o| o.train), "train"),
            Split::Test => (self.spec.test, origin.and_then(|o| o.test), "test"),
        };
        let range = match (sel, split, self.spec.train) {
            (Some(RowSel::Range { start, end }), _, _) => (start, end),
            (Some(RowSel::All), _, _) => (0, steps),
            (Some(RowSel::Fraction(f)), Split::Train, _) => (0, floor_frac(f, steps)),
            (Some(RowSel::Fraction(f)), Split::Test, _) => (floor_frac(1.0 - f, steps), steps),
            (None, Split::Test, RowSel::Fraction(f)) => (floor_frac(f, steps), steps),
            (None, _, _) => {
                let msg = "expected a test split, found none".to_string();
                let d = self.diag(
                    "mcopt::data::no_test",
                    msg,
                    self.data_span(),
                    "no `test:` here",
                );
                return Err(d.help("add `test: a..b` (time steps) or give `train` as a fraction"));
            }
        };
        let (start, end) = range;
        if end > steps || start >= end {
            let msg = if start >= end {
                format!("the {what} split is empty (time steps {start}..{end} of {steps})")
            } else {
                format!("the {what} split takes time steps {start}..{end}, but the sequences have {steps} steps")
            };
            let code = if start >= end {
                "mcopt::data::empty_split"
            } else {
                "mcopt::data::row_range"
            };
            return Err(self.diag(code, msg, span, "out of range"));
        }
        Ok(range)
    }
}

/// floor(f * n) as Python's `int(f * n)` computes it.
fn floor_frac(f: f64, n: usize) -> usize {
    (f * n as f64).floor().max(0.0) as usize
}

fn short_list(v: &[usize]) -> String {
    let shown: Vec<String> = v.iter().take(8).map(usize::to_string).collect();
    if v.len() > 8 {
        format!("{}, ...", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn gather(
    table: &Table,
    slot: &DataSlot,
    cols: &[usize],
    seqs: &[Vec<usize>],
    steps: std::ops::Range<usize>,
) -> Result<BoundData, Diag> {
    let len = steps.len() * seqs.len() * cols.len();
    let mut values = crate::memory::with_capacity(len).map_err(|e| {
        Diag::new(
            "mcopt::data::memory",
            e.message(&format!("the values of `{}`", slot.name)),
        )
        .in_file(table.source.name.clone())
        .help(crate::memory::AllocError::HELP)
    })?;
    for t in steps.clone() {
        for seq in seqs {
            let row = &table.rows[seq[t]];
            values.extend(cols.iter().map(|&c| row[c]));
        }
    }
    Ok(BoundData {
        name: slot.name.clone(),
        width: slot.width,
        sequences: seqs.len(),
        steps: steps.len(),
        values,
        warmup: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_selections() {
        assert_eq!(
            parse_columns("0..5"),
            Ok(ColumnSel::Range { start: 0, end: 5 })
        );
        assert_eq!(
            parse_columns("1, 2,5"),
            Ok(ColumnSel::Indices(vec![1, 2, 5]))
        );
        assert_eq!(
            parse_columns("DP,EP"),
            Ok(ColumnSel::Names(vec!["DP".into(), "EP".into()]))
        );
        assert_eq!(
            parse_columns("DP..IP"),
            Ok(ColumnSel::NameRange {
                first: "DP".into(),
                last: "IP".into()
            })
        );
        assert!(parse_columns("5..2").is_err());
        assert!(parse_columns("1,,2").is_err());
    }

    #[test]
    fn cli_bindings() {
        let (n, p, c) = parse_cli_binding("x=examples/data/syn_T10.csv:0..5").unwrap();
        assert_eq!(
            (n.as_str(), p, c),
            (
                "x",
                PathBuf::from("examples/data/syn_T10.csv"),
                ColumnSel::Range { start: 0, end: 5 }
            )
        );
        assert!(parse_cli_binding("examples/data/syn_T10.csv:0..5").is_err());
        assert!(parse_cli_binding("x=data.csv").is_err());
        let e = parse_cli_binding("x=data.csv:3..1").unwrap_err();
        assert_eq!(e.primary(), Some(Span::new(11, 15)));
    }

    #[test]
    fn row_selections() {
        assert_eq!(
            parse_row_sel("8..10").unwrap(),
            RowSel::Range { start: 8, end: 10 }
        );
        assert_eq!(parse_row_sel("0.9").unwrap(), RowSel::Fraction(0.9));
        assert_eq!(parse_row_sel("all").unwrap(), RowSel::All);
        for bad in ["1.5", "3..3", "a..b", "-1..2", ""] {
            assert!(parse_row_sel(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fractions_floor_like_python() {
        assert_eq!(floor_frac(0.9, 437), 393);
        assert_eq!(floor_frac(1.0 - 0.1, 437), 393);
        assert_eq!(floor_frac(0.8, 10), 8);
    }
}
