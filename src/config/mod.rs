//! Configuration files: YAML point and direction files, YAML run files, CSV data and its
//! binding to the model's `data` declarations.
//!
//! This is the only module that knows the YAML crate (serde_norway). Every error is a
//! [`Diag`] pointing into the file it came from (a YAML key or value, a CSV field or line),
//! or naming the file when it cannot be read.

mod bind;
mod data;
mod fields;
mod memory;
mod point;
mod run;
mod sweep;
mod yaml;

pub use bind::{
    bind, bind_table, parse_cli_binding, parse_columns, parse_row_sel, BoundData, ColumnSel,
    DataSlot, DataSpec, RowSel, SeqLayout, SpecOrigin, Split, TestState,
};
pub use data::{parse_csv, read_csv, HeaderMode, Table};
pub use memory::{memory_table, MEMORY_NAME};
pub use point::{
    load_point, parse_point, write_point, PointMode, PointValues, ShapeKind, VarRole, VarSpec,
};
pub use run::{
    beta_conflict, beta_deprecated, load_run, parse_run, BatchSpec, BetaSpec, CertificateOrder,
    CheckpointEvery, FormSettings, InitSpec, JacobianChoice, LiftChoice, OutputPaths, P1Beta,
    ProblemForm, RunFile, SolverSpec, StopRules, Thresholds, TraceEvery,
};
pub use sweep::{
    base_tree, load_sweep, parse_sweep, render_entry, setting_object, yaml_text, Axis,
    Distribution, RandomSearch, Setting, SweepFile,
};

use crate::diag::{Diag, Diags};

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

/// "did you mean `x`? " when one of `names` is close to `name`, else an empty string.
pub fn suggest(name: &str, names: &[&str]) -> String {
    crate::text::did_you_mean(name, names)
}

pub(crate) use crate::text::list_names;
