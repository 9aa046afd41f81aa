//! The composition root: the stages (syntax → check → graph → eval → forms → stationarity /
//! solve → report) chained for callers that start from text and files — parse and check a
//! model, bind its data declarations to a data file, lower it to a graph, read θ from a point
//! file — and what needs the checked model and its data together (the exact-penalty
//! [`thresholds`]). The command line, and any embedding program, starts here; no stage below
//! imports this module.

pub mod bench;
pub mod certify;
pub mod evaluate;
pub mod inspect;
mod open;
pub mod outputs;
pub mod record;
pub mod reformulate;
pub mod resume;
pub mod sweep;
pub mod thresholds;
pub mod train;
pub mod validate;

pub use certify::{CertifyRequest, FormSpec, Point};
pub use evaluate::{
    directional, evaluate, Direction, Directional, DirectionalRequest, EvalRequest, Evaluated,
    Objective,
};
pub use inspect::{inspect, CheckSummary};
pub use open::{model_path, parse_const_arg, registry, resolve, Inputs, Session};

use std::path::Path;
use std::sync::Arc;

use crate::check::{self, Model};
use crate::config::{self, DataSlot, DataSpec, PointMode, RunFile, Split, VarRole, VarSpec};
use crate::diag::{Diags, SourceFile};
use crate::graph::{self, Graph, LowerOptions, SeqData};
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
    Ok(seq_data(config::bind(
        spec,
        base_dir,
        split,
        &data_slots(model),
    )?))
}

/// [`bind_data`] on a table in memory (an embedding program's arrays) instead of `spec`'s file.
pub fn bind_memory(
    model: &Model,
    spec: &DataSpec,
    table: &config::Table,
    split: Split,
) -> Result<Vec<SeqData>, Diags> {
    Ok(seq_data(config::bind_table(
        spec,
        table,
        split,
        &data_slots(model),
    )?))
}

/// Bound columns as the graph's per-sequence data.
fn seq_data(bound: Vec<config::BoundData>) -> Vec<SeqData> {
    bound
        .into_iter()
        .map(|b| SeqData {
            steps: b.steps,
            sequences: b.sequences,
            values: b.values,
            warmup: b.warmup,
        })
        .collect()
}

/// The specs of a graph's parameters θ, in order, for point and direction files.
pub fn param_specs(graph: &Graph) -> Vec<VarSpec> {
    graph
        .params
        .iter()
        .map(|p| VarSpec::new(&p.name, p.shape.rows, p.shape.cols, VarRole::Param))
        .collect()
}

/// θ from a point file, in `graph`'s parameter order (a missing parameter is refused).
pub fn read_theta(graph: &Graph, path: &Path) -> Result<Vec<f64>, Diags> {
    let v = config::load_point(path, &param_specs(graph), PointMode::Point)?;
    Ok(v.values.into_iter().flatten().flatten().collect())
}

/// The model a run file names (read with its input cap), checked against `registry`, and its
/// graph on the training split.
pub fn train_graph(run: &RunFile, registry: &Registry) -> Result<(Model, Graph), Diags> {
    let source = crate::input::read_source(&run.model, crate::input::InputKind::Model)?;
    let model = compile(&source, registry)?;
    let data = match &run.data {
        Some(spec) => bind_data(&model, spec, &run.dir, Split::Train)?,
        None => Vec::new(),
    };
    let graph = graph::lower(&model, &LowerOptions { data })?;
    Ok((model, graph))
}
