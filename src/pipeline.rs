//! The stages chained for callers that start from text and files: parse and check a model,
//! bind its data declarations to a data file, lower it to a graph.

use std::path::Path;
use std::sync::Arc;

use crate::check::{self, Model};
use crate::config::{self, DataSlot, DataSpec, Split};
use crate::diag::{Diags, SourceFile};
use crate::graph::SeqData;
use crate::registry::Registry;
use crate::syntax;

/// Parse and check model text against the functions of `registry`.
pub fn compile(source: &Arc<SourceFile>, registry: &Registry) -> Result<Model, Diags> {
    compile_with(source, registry, &[])
}

/// [`compile`] with `const` values given from outside (run file `consts:`, `--const`).
pub fn compile_with(
    source: &Arc<SourceFile>,
    registry: &Registry,
    overrides: &[check::ConstOverride],
) -> Result<Model, Diags> {
    let program = syntax::parse(source)?;
    check::check_with(source, &program, registry, overrides)
}

/// The model's `data` declarations as binding slots.
pub fn data_slots(model: &Model) -> Vec<DataSlot> {
    model
        .data
        .iter()
        .map(|d| DataSlot {
            name: d.name.clone(),
            width: d.shape.rows,
        })
        .collect()
}

/// Bind the model's data declarations to the columns and rows of `split` in `spec`'s file
/// (relative paths resolved against `base_dir`), in declaration order. A test split that
/// follows the training steps carries their state over (see [`config::TestState`]).
pub fn bind_data(
    model: &Model,
    spec: &DataSpec,
    base_dir: &Path,
    split: Split,
) -> Result<Vec<SeqData>, Diags> {
    let bound = config::bind(spec, base_dir, split, &data_slots(model))?;
    Ok(bound
        .into_iter()
        .map(|b| SeqData {
            steps: b.steps,
            sequences: b.sequences,
            values: b.values,
            warmup: b.warmup,
        })
        .collect())
}
