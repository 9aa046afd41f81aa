//! Point and direction files: YAML maps from parameter (and layer) names to numbers, lists
//! and lists of rows, read against the model's variable specs and written back exactly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use super::yaml::{locate, locate_key, locate_or_parent, parse_node, Node, Seg};
use super::{list_names, suggest, Capped};
use crate::diag::{Diag, Diags, SourceFile, Span};
use crate::input::{read_source, InputKind};
use crate::text::{clip, plural};

pub use crate::vars::{ShapeKind, VarRole, VarSpec};

/// Whether a missing name is an error (a point) or zero (a direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointMode {
    /// Every parameter must be given; a missing layer is `None` (filled later by a forward pass).
    Point,
    /// A missing name is zero.
    Direction,
}

/// The values read from a point file: one entry per spec, in spec order, each column-major
/// with `rows * cols` values; `None` only for layers not given in [`PointMode::Point`].
#[derive(Debug, Clone, PartialEq)]
pub struct PointValues {
    pub values: Vec<Option<Vec<f64>>>,
}

/// Read a point or direction file; a missing or unreadable file is a diagnostic naming it.
pub fn load_point(path: &Path, specs: &[VarSpec], mode: PointMode) -> Result<PointValues, Diags> {
    let source = read_source(path, InputKind::Point)?;
    parse_point(&source, specs, mode)
}

/// Parse point-file text against `specs`, reporting every problem found.
pub fn parse_point(
    source: &Arc<SourceFile>,
    specs: &[VarSpec],
    mode: PointMode,
) -> Result<PointValues, Diags> {
    let root = parse_node(source, "mcopt::point::yaml")?;
    let entries = match root {
        Node::Map(entries) => entries,
        Node::Null => Vec::new(),
        other => {
            let span = locate_or_parent(source, &[]);
            let found = other.describe();
            let d = Diag::new(
                "mcopt::point::not_a_map",
                format!("expected a mapping from names to values, found {found}"),
            )
            .at(source, span, "not a mapping")
            .help("write one `name: value` line per parameter");
            return Err(d.into());
        }
    };
    let mut reader = Reader {
        source,
        specs,
        diags: Capped::new(MAX_DIAGS),
        values: vec![None; specs.len()],
        given: vec![false; specs.len()],
    };
    reader.read_entries(&entries);
    reader.fill_missing(mode);
    let Reader { diags, values, .. } = reader;
    diags.finish().finish(PointValues { values })
}

/// Write values (one column-major vector per spec) as a point file that [`parse_point`]
/// reads back to the same bits: matrices as lists of rows, floats in shortest round-trip form.
pub fn write_point(specs: &[VarSpec], values: &[Vec<f64>]) -> String {
    let mut out = String::new();
    for (spec, vals) in specs.iter().zip(values) {
        let key = yaml_key(&spec.name);
        match spec.kind {
            ShapeKind::Scalar => {
                let _ = writeln!(
                    out,
                    "{key}: {}",
                    fmt_f64(vals.first().copied().unwrap_or(0.0))
                );
            }
            ShapeKind::Vector => {
                let _ = writeln!(out, "{key}: {}", flow_list(vals.iter().copied()));
            }
            ShapeKind::Matrix => write_matrix(&mut out, &key, spec, vals),
        }
    }
    out
}

fn write_matrix(out: &mut String, key: &str, spec: &VarSpec, vals: &[f64]) {
    if spec.rows == 0 {
        let _ = writeln!(out, "{key}: []");
        return;
    }
    let _ = writeln!(out, "{key}:");
    for i in 0..spec.rows {
        let row = (0..spec.cols).map(|j| vals.get(i + j * spec.rows).copied().unwrap_or(0.0));
        let _ = writeln!(out, "  - {}", flow_list(row));
    }
}

fn flow_list(items: impl Iterator<Item = f64>) -> String {
    let parts: Vec<String> = items.map(fmt_f64).collect();
    format!("[{}]", parts.join(", "))
}

/// Shortest representation that parses back to the same bits, always read as a float by YAML.
/// Non-finite values (which a point file refuses) are written as YAML's `.nan` / `.inf`.
pub(crate) fn fmt_f64(x: f64) -> String {
    if x.is_nan() {
        ".nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { ".inf" } else { "-.inf" }.to_string()
    } else {
        format!("{x:?}")
    }
}

/// A key as written: plain if it is a simple name YAML reads as text, else double-quoted.
fn yaml_key(name: &str) -> String {
    let simple = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if simple {
        name.to_string()
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }
}

/// At most this many problems are reported per file (each costs a re-read of the file).
const MAX_DIAGS: usize = 20;

/// At most this many element-level problems are reported per value.
const MAX_ELEMENT_DIAGS: usize = 5;

struct Reader<'a> {
    source: &'a Arc<SourceFile>,
    specs: &'a [VarSpec],
    diags: Capped,
    values: Vec<Option<Vec<f64>>>,
    /// Whether each spec had an entry (even a bad one), so it is not also reported missing.
    given: Vec<bool>,
}

impl Reader<'_> {
    fn read_entries(&mut self, entries: &[(Node, Node)]) {
        let index: HashMap<&str, usize> = self
            .specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (key, value) in entries {
            let Node::Str(name) = key else {
                self.bad_key(key);
                continue;
            };
            let nth = *seen
                .entry(name.clone())
                .and_modify(|n| *n += 1)
                .or_insert(0);
            if nth > 0 {
                self.duplicate(name, nth);
                continue;
            }
            match index.get(name.as_str()) {
                Some(&i) => {
                    self.given[i] = true;
                    self.read_value(i, value);
                }
                None => self.unknown(name),
            }
        }
    }

    /// Whether another diagnostic fits (span look-ups re-read the file, so they are capped);
    /// counts the problem as not shown when not.
    fn room(&mut self) -> bool {
        if self.diags.has_room() {
            true
        } else {
            self.diags.skip();
            false
        }
    }

    fn bad_key(&mut self, key: &Node) {
        if !self.room() {
            return;
        }
        let span = locate_or_parent(self.source, &[]);
        let d = Diag::new(
            "mcopt::point::bad_key",
            format!(
                "expected a parameter or layer name as key, found {}",
                key.describe()
            ),
        )
        .at(self.source, span, "in this file");
        self.diags.push(d);
    }

    fn duplicate(&mut self, name: &str, nth: usize) {
        if !self.room() {
            return;
        }
        let first = locate_key(self.source, &[], name);
        let span = locate(self.source, &[Seg::Key(name.to_string(), nth)]).unwrap_or(first);
        let d = Diag::new(
            "mcopt::point::duplicate",
            format!("`{}` is given more than once", clip(name)),
        )
        .at(self.source, span, "given again here")
        .label(first, "first given here")
        .help("keep one entry per name");
        self.diags.push(d);
    }

    fn unknown(&mut self, name: &str) {
        if !self.room() {
            return;
        }
        let span = locate_key(self.source, &[], name);
        let names: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
        let mut help = suggest(name, &names);
        let _ = write!(help, "the model's names are {}", list_names(&names));
        let d = Diag::new(
            "mcopt::point::unknown_name",
            format!(
                "`{}` is neither a parameter nor a layer of the model",
                clip(name)
            ),
        )
        .at(self.source, span, "unknown name")
        .help(help);
        self.diags.push(d);
    }

    fn read_value(&mut self, i: usize, value: &Node) {
        let spec = &self.specs[i];
        let path = vec![Seg::val(&spec.name)];
        let mut out = vec![0.0; spec.len()];
        let ok = match spec.kind {
            ShapeKind::Scalar => self.read_scalar(spec, value, &path, &mut out),
            ShapeKind::Vector => self.read_vector(spec, value, &path, &mut out),
            ShapeKind::Matrix => self.read_matrix(spec, value, &path, &mut out),
        };
        if ok {
            self.values[i] = Some(out);
        }
    }

    fn read_scalar(&mut self, spec: &VarSpec, value: &Node, path: &[Seg], out: &mut [f64]) -> bool {
        match value {
            Node::Seq(_) | Node::Map(_) | Node::Null => {
                self.misshapen(spec, path, value.describe());
                false
            }
            _ => {
                let mut budget = MAX_ELEMENT_DIAGS;
                self.number(value, path, &mut out[0], &mut budget)
            }
        }
    }

    fn read_vector(&mut self, spec: &VarSpec, value: &Node, path: &[Seg], out: &mut [f64]) -> bool {
        match value {
            Node::Seq(items)
                if items.len() == spec.rows && !items.iter().any(|n| matches!(n, Node::Seq(_))) =>
            {
                self.read_row(items, path, out, 1)
            }
            _ => {
                self.misshapen(spec, path, found_shape(value));
                false
            }
        }
    }

    fn read_matrix(&mut self, spec: &VarSpec, value: &Node, path: &[Seg], out: &mut [f64]) -> bool {
        let rows = match value {
            Node::Seq(rows) if rows.len() == spec.rows => rows,
            _ => {
                self.misshapen(spec, path, found_shape(value));
                return false;
            }
        };
        let mut ok = true;
        let mut row_vals = vec![0.0; spec.cols];
        for (i, row) in rows.iter().enumerate() {
            let mut row_path = path.to_vec();
            row_path.push(Seg::Idx(i));
            match row {
                Node::Seq(items) if items.len() == spec.cols => {
                    if self.read_row(items, &row_path, &mut row_vals, 1) {
                        for (j, v) in row_vals.iter().enumerate() {
                            out[i + j * spec.rows] = *v;
                        }
                    } else {
                        ok = false;
                    }
                }
                _ => {
                    self.bad_row(spec, i, row, &row_path);
                    ok = false;
                }
            }
        }
        ok
    }

    /// Read a list of numbers into `out` with the given stride.
    fn read_row(&mut self, items: &[Node], path: &[Seg], out: &mut [f64], stride: usize) -> bool {
        let mut ok = true;
        let mut budget = MAX_ELEMENT_DIAGS;
        for (j, item) in items.iter().enumerate() {
            match item {
                Node::Num(x) if x.is_finite() => {
                    out[j * stride] = *x;
                    continue;
                }
                Node::Int(i) => {
                    out[j * stride] = *i as f64;
                    continue;
                }
                _ => {}
            }
            let mut p = path.to_vec();
            p.push(Seg::Idx(j));
            ok &= self.number(item, &p, &mut out[j * stride], &mut budget);
        }
        ok
    }

    /// Check one number; on failure report it (while `budget` lasts) and return false.
    fn number(&mut self, node: &Node, path: &[Seg], out: &mut f64, budget: &mut usize) -> bool {
        let (code, message, label) = match node {
            Node::Num(x) if x.is_finite() => {
                *out = *x;
                return true;
            }
            Node::Int(i) => {
                *out = *i as f64;
                return true;
            }
            Node::Num(x) => (
                "mcopt::point::not_finite",
                format!("expected a finite number, found {x}"),
                "not finite",
            ),
            Node::Str(s) if s.trim().parse::<f64>().is_ok_and(|x| !x.is_finite()) => (
                "mcopt::point::not_finite",
                format!("expected a finite number, found `{}`", clip(s)),
                "not finite",
            ),
            Node::Str(s) if s.trim().parse::<f64>().is_ok() => (
                "mcopt::point::not_numeric",
                format!("expected a number, found the quoted text `{}`", clip(s)),
                "quoted",
            ),
            other => (
                "mcopt::point::not_numeric",
                format!("expected a number, found {}", other.describe()),
                "not a number",
            ),
        };
        if *budget > 0 && self.room() {
            *budget -= 1;
            let span = locate_or_parent(self.source, path);
            self.diags
                .push(Diag::new(code, message).at(self.source, span, label));
        }
        false
    }

    fn misshapen(&mut self, spec: &VarSpec, path: &[Seg], found: String) {
        if !self.room() {
            return;
        }
        let span = locate_or_parent(self.source, path);
        let d = Diag::new(
            "mcopt::point::shape",
            format!("`{}` is {}, found {found}", spec.name, spec.shape_text()),
        )
        .at(self.source, span, format!("expected {}", spec.form_text()))
        .help(format!("write `{}` as {}", spec.name, spec.form_text()));
        self.diags.push(d);
    }

    fn bad_row(&mut self, spec: &VarSpec, i: usize, row: &Node, path: &[Seg]) {
        if !self.room() {
            return;
        }
        let span = locate_or_parent(self.source, path);
        let found = match row {
            Node::Seq(items) => plural(items.len(), "entry", "entries"),
            other => other.describe(),
        };
        let d = Diag::new(
            "mcopt::point::shape",
            format!(
                "row {} of `{}` ({}) should have {} entries, found {found}",
                i + 1,
                spec.name,
                spec.shape_text(),
                spec.cols
            ),
        )
        .at(
            self.source,
            span,
            format!("expected a list of {} numbers", spec.cols),
        );
        self.diags.push(d);
    }

    fn fill_missing(&mut self, mode: PointMode) {
        let missing_span = end_span(self.source);
        for (i, (spec, value)) in self.specs.iter().zip(self.values.iter_mut()).enumerate() {
            if self.given[i] {
                continue;
            }
            match (mode, spec.role) {
                (PointMode::Direction, _) => *value = Some(vec![0.0; spec.len()]),
                (PointMode::Point, VarRole::Layer) => {}
                (PointMode::Point, VarRole::Param) => {
                    let d = Diag::new(
                        "mcopt::point::missing",
                        format!(
                            "parameter `{}` ({}) is missing",
                            spec.name,
                            spec.shape_text()
                        ),
                    )
                    .at(
                        self.source,
                        missing_span,
                        format!("no entry for `{}`", spec.name),
                    )
                    .help(format!(
                        "add `{}:` with {}",
                        spec.name,
                        spec.form_text()
                    ));
                    self.diags.push(d);
                }
            }
        }
    }
}

/// An empty span at the end of the file's last non-blank line (line 1 of an empty file).
fn end_span(source: &SourceFile) -> Span {
    let end = source.text.trim_end().len();
    Span::new(end, end)
}

/// The shape of a value in words, for misshapen-value messages.
fn found_shape(node: &Node) -> String {
    match node {
        Node::Seq(items)
            if !items.is_empty() && items.iter().all(|n| matches!(n, Node::Seq(_))) =>
        {
            let cols: Vec<usize> = items
                .iter()
                .map(|n| if let Node::Seq(r) = n { r.len() } else { 0 })
                .collect();
            if cols.iter().all(|&c| c == cols[0]) {
                format!(
                    "a list of {} of {}",
                    plural(items.len(), "row", "rows"),
                    plural(cols[0], "entry", "entries")
                )
            } else {
                format!("a list of {} rows of unequal lengths", items.len())
            }
        }
        Node::Seq(items) => format!("a list of {}", plural(items.len(), "entry", "entries")),
        Node::Num(_) | Node::Int(_) => "a single number".to_string(),
        other => other.describe(),
    }
}
