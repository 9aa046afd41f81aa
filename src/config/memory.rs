//! Data held in memory by an embedding program (the Python package's numpy arrays and pandas
//! frames) as a [`Table`], so it binds to the model's `data` declarations exactly as a CSV
//! file does ([`super::bind_table`]).

use super::data::Table;
use crate::diag::{Diag, Diags, SourceFile, Span};

/// The name a table in memory is reported under.
pub const MEMORY_NAME: &str = "<data in memory>";

/// A table of `rows` rows from `columns`: (column name, `rows` values). Every value must be
/// finite (as in a CSV file) and every column as long as the first.
pub fn memory_table(columns: Vec<(String, Vec<f64>)>) -> Result<Table, Diags> {
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    let mut diags = Diags::new();
    for (name, values) in &columns {
        if values.len() != rows {
            diags.push(
                Diag::new(
                    "mcopt::data::ragged",
                    format!(
                        "column `{name}` has {} rows, but `{}` has {rows}",
                        values.len(),
                        columns[0].0
                    ),
                )
                .in_file(MEMORY_NAME)
                .help("every data array must have one row per time step, the same number"),
            );
        } else if let Some(r) = values.iter().position(|v| !v.is_finite()) {
            diags.push(
                Diag::new(
                    "mcopt::data::not_finite",
                    format!("column `{name}` has {} in row {r}", values[r]),
                )
                .in_file(MEMORY_NAME)
                .help("data values must be finite numbers"),
            );
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let header = columns.iter().map(|(n, _)| n.clone()).collect();
    let table_rows = (0..rows)
        .map(|r| columns.iter().map(|(_, v)| v[r]).collect())
        .collect();
    Ok(Table {
        source: SourceFile::new(MEMORY_NAME, ""),
        header: Some(header),
        rows: table_rows,
        row_spans: vec![Span::new(0, 0); rows],
        header_span: Span::new(0, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_become_rows() {
        let t = memory_table(vec![
            ("a".into(), vec![1.0, 2.0]),
            ("b".into(), vec![3.0, 4.0]),
        ])
        .unwrap();
        assert_eq!(t.rows, vec![vec![1.0, 3.0], vec![2.0, 4.0]]);
        assert_eq!(t.column("b"), Some(1));
    }

    #[test]
    fn ragged_or_non_finite_columns_are_refused() {
        let e = memory_table(vec![("a".into(), vec![1.0]), ("b".into(), vec![])]).unwrap_err();
        assert_eq!(e.0[0].code, "mcopt::data::ragged");
        let e = memory_table(vec![("a".into(), vec![f64::NAN])]).unwrap_err();
        assert_eq!(e.0[0].code, "mcopt::data::not_finite");
    }
}
