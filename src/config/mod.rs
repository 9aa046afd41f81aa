//! Configuration files: YAML point and direction files, YAML run files, CSV data and its
//! binding to the model's `data` declarations.
//!
//! This is the only module that knows the YAML crate (serde_norway). Every error is a
//! [`Diag`] pointing into the file it came from (a YAML key or value, a CSV field or line),
//! or naming the file when it cannot be read.

mod bind;
mod data;
mod fields;
mod point;
mod run;
mod yaml;

pub use bind::{
    bind, parse_cli_binding, parse_columns, parse_row_sel, BoundData, ColumnSel, DataSlot,
    DataSpec, RowSel, SeqLayout, SpecOrigin, Split,
};
pub use data::{parse_csv, read_csv, HeaderMode, Table};
pub use point::{
    load_point, parse_point, write_point, PointMode, PointValues, ShapeKind, VarRole, VarSpec,
};
pub use run::{
    load_run, parse_run, InitSpec, OutputPaths, RunFile, SolverSpec, StopRules, Thresholds,
};

use std::path::Path;
use std::sync::Arc;

use crate::diag::{Diag, Diags, SourceFile};

/// Read a text file into a [`SourceFile`] named by its path; failures name the file and the OS error.
pub(crate) fn read_source(path: &Path) -> Result<Arc<SourceFile>, Diag> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Diag::new(
            "mcopt::config::read",
            format!("cannot read file: {}", os_error(&e)),
        )
        .in_file(name.clone())
        .help(
            "check the path; relative paths in a run file are relative to the run file's directory",
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Diag::new(
            "mcopt::config::encoding",
            format!(
                "expected UTF-8 text, found invalid bytes at byte {}",
                e.utf8_error().valid_up_to()
            ),
        )
        .in_file(name.clone())
    })?;
    Ok(SourceFile::new(name, text))
}

/// Collects diagnostics up to a limit; the rest are counted and mentioned in the last one's help.
pub(crate) struct Capped {
    diags: Diags,
    max: usize,
    hidden: usize,
}

impl Capped {
    pub(crate) fn new(max: usize) -> Capped {
        Capped {
            diags: Diags::new(),
            max,
            hidden: 0,
        }
    }

    /// Whether another diagnostic would still be shown (check before costly span look-ups).
    pub(crate) fn has_room(&self) -> bool {
        self.diags.len() < self.max
    }

    pub(crate) fn push(&mut self, d: Diag) {
        if self.has_room() {
            self.diags.push(d);
        } else {
            self.hidden += 1;
        }
    }

    /// Count one problem that was not even built (no room for it).
    pub(crate) fn skip(&mut self) {
        self.hidden += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.diags.is_empty()
    }

    pub(crate) fn finish(mut self) -> Diags {
        if self.hidden > 0 {
            if let Some(last) = self.diags.0.last_mut() {
                let note = format!("{} more problems in this file are not shown", self.hidden);
                last.help = Some(match last.help.take() {
                    Some(h) => format!("{h}\n{note}"),
                    None => note,
                });
            }
        }
        self.diags
    }
}

/// An OS error in lowercase words ("no such file or directory (os error 2)").
fn os_error(e: &std::io::Error) -> String {
    yaml::lowercase_first(&e.to_string())
}

/// "did you mean `x`? " when one of `names` is close to `name`, else an empty string.
pub fn suggest(name: &str, names: &[&str]) -> String {
    let best = names
        .iter()
        .map(|n| (edit_distance(&name.to_lowercase(), &n.to_lowercase()), *n))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, n)) if d <= suggest_limit(name.chars().count()) => {
            format!("did you mean `{n}`? ")
        }
        _ => String::new(),
    }
}

/// How many edits a suggestion may be away: none for one-letter names, then a third of the length.
fn suggest_limit(len: usize) -> usize {
    match len {
        0 | 1 => 0,
        _ => (len / 3).max(1),
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Names as a readable list: `a`, `b`, `c` (at most 16, then "and N more").
pub(crate) fn list_names<S: AsRef<str>>(names: &[S]) -> String {
    const MAX: usize = 16;
    let shown: Vec<String> = names
        .iter()
        .take(MAX)
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    let more = names.len().saturating_sub(MAX);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(suggest("W1", &["W", "V", "b"]), "did you mean `W`? ");
        assert_eq!(suggest("ep", &["DP", "EP", "MKT"]), "did you mean `EP`? ");
        assert_eq!(suggest("zzzz", &["DP", "EP"]), "");
        assert_eq!(suggest("z", &["x", "y"]), "");
        assert_eq!(suggest("B", &["A", "b"]), "did you mean `b`? ");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
