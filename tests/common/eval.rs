//! Evaluation helpers: compile model text, bind the bundled data sets, evaluate along rays,
//! and one-sided finite differences.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcopt::check::Model;
use mcopt::config::{ColumnSel, DataSpec, HeaderMode, RowSel, SeqLayout, Split, TestState};
use mcopt::diag::{render_plain, SourceFile};
use mcopt::eval::{EvalOptions, Evaluator, Taylor};
use mcopt::graph::{self, Graph, LowerOptions, SeqData};
use mcopt::registry::{Order, Registry};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parse and check model text, panicking with the rendered diagnostics on failure.
pub fn model(text: &str, registry: &Registry) -> Model {
    let source = SourceFile::new("test.mco", text);
    mcopt::session::compile(&source, registry).unwrap_or_else(|d| panic!("{}", render_plain(&d)))
}

pub fn lower(model: &Model, data: Vec<SeqData>) -> Graph {
    graph::lower(model, &LowerOptions { data }).unwrap_or_else(|d| panic!("{}", render_plain(&d)))
}

/// Compile a model without data.
pub fn compile(text: &str, registry: &Registry) -> Graph {
    lower(&model(text, registry), Vec::new())
}

pub fn model_file(path: &str, registry: &Registry) -> Model {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    model(&text, registry)
}

/// Bind columns of a bundled CSV file to the model's data declarations.
pub fn bind(
    model: &Model,
    file: &str,
    header: HeaderMode,
    bind: Vec<(&str, ColumnSel)>,
    rows: RowSel,
    split: Split,
) -> Vec<SeqData> {
    let spec = DataSpec {
        file: PathBuf::from(file),
        header,
        bind: bind.into_iter().map(|(n, c)| (n.to_owned(), c)).collect(),
        train: rows,
        test: Some(rows),
        sequences: SeqLayout::Single,
        test_state: TestState::Carry,
        origin: None,
    };
    mcopt::session::bind_data(model, &spec, &repo(), split)
        .unwrap_or_else(|d| panic!("{}", render_plain(&d)))
}

/// The syn RNN (examples/syn/rnn.mco) on rows `rows` of syn_T10.csv.
pub fn syn_graph(registry: &Registry, rows: RowSel) -> Graph {
    syn_data_graph(&model_file("examples/syn/rnn.mco", registry), rows)
}

/// `m`, a model with `data x: seq(vec(5))` and `data y: seq(vec(3))`, on rows `rows` of
/// syn_T10.csv (x: columns 0..5, y: 5..8; no header).
pub fn syn_data_graph(m: &Model, rows: RowSel) -> Graph {
    let data = bind(
        m,
        "examples/data/syn_T10.csv",
        HeaderMode::No,
        vec![
            ("x", ColumnSel::Range { start: 0, end: 5 }),
            ("y", ColumnSel::Range { start: 5, end: 8 }),
        ],
        rows,
        Split::Train,
    );
    lower(m, data)
}

/// The sp500 RNN on its first 90% of rows.
pub fn sp500_graph(registry: &Registry) -> Graph {
    let m = model_file("examples/sp500/rnn.mco", registry);
    let data = bind(
        &m,
        "examples/data/sp500.csv",
        HeaderMode::Yes,
        vec![
            ("x", ColumnSel::Range { start: 1, end: 12 }),
            ("y", ColumnSel::Names(vec!["RV_SP500".into()])),
        ],
        RowSel::Range { start: 0, end: 393 },
        Split::Train,
    );
    lower(&m, data)
}

pub fn taylor(g: &Graph, r: &Registry, x: &[f64], d: &[f64], order: Order) -> Taylor {
    let mut ev = Evaluator::new(g, r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
    ev.directional(x, d, order, EvalOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn value(g: &Graph, r: &Registry, x: &[f64]) -> f64 {
    let mut ev = Evaluator::new(g, r, Order::Zero).unwrap_or_else(|e| panic!("{e}"));
    ev.value(x, EvalOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn gradient(g: &Graph, r: &Registry, x: &[f64]) -> Vec<f64> {
    let mut ev = Evaluator::new(g, r, Order::Zero).unwrap_or_else(|e| panic!("{e}"));
    let mut grad = vec![0.0; x.len()];
    ev.gradient(x, &mut grad, EvalOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    grad
}

pub fn axpy(x: &[f64], h: f64, d: &[f64]) -> Vec<f64> {
    x.iter().zip(d).map(|(a, b)| a + h * b).collect()
}

/// Check f′ and f″ along d against one-sided differences from the right.
///
/// A kink at distance below h along the ray spoils a difference quotient (an RNN has
/// thousands of ReLU units), so each order tries a ladder of step sizes and passes when the
/// quotient agrees for one of them; a wrong derivative agrees for none.
pub fn check_against_differences(
    g: &Graph,
    r: &Registry,
    x: &[f64],
    d: &[f64],
) -> Result<(), String> {
    let t = taylor(g, r, x, d, Order::Two);
    let (f1, f2) = (t.d1.unwrap_or(f64::NAN), t.d2.unwrap_or(f64::NAN));
    let f0 = value(g, r, x);
    let scale = 1.0 + f0.abs() + f1.abs() + f2.abs();
    // First order: (f(x + h d) − f(x)) / h = f′ + h f″/2 + O(h²).
    let q1: Vec<f64> = [1e-6, 1e-7, 1e-8]
        .iter()
        .map(|h| (value(g, r, &axpy(x, *h, d)) - f0) / h)
        .collect();
    if !q1.iter().any(|q| (q - f1).abs() <= 1e-4 * scale) {
        return Err(format!(
            "f′ = {f1}, one-sided differences {q1:?} (x = {x:?}, d = {d:?})"
        ));
    }
    // Second order: (f(x + h d) − f(x) − h f′) / (h²/2) = f″ + O(h).
    let q2: Vec<f64> = [1e-3, 1e-4, 1e-5, 1e-6]
        .iter()
        .map(|h| (value(g, r, &axpy(x, *h, d)) - f0 - h * f1) / (h * h / 2.0))
        .collect();
    if !q2.iter().any(|q| (q - f2).abs() <= 1e-2 * scale) {
        return Err(format!(
            "f″ = {f2}, one-sided second differences {q2:?} (x = {x:?}, d = {d:?})"
        ));
    }
    Ok(())
}

pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

pub fn file_exists(p: &str) -> bool {
    Path::new(p).exists()
}

pub fn source(text: &str) -> Arc<SourceFile> {
    SourceFile::new("test.mco", text)
}

/// Parse and check `text` with `const` values given from outside, as `--const` gives them.
pub fn compile_consts(
    text: &str,
    consts: &[(&str, f64)],
    r: &Registry,
) -> Result<Model, mcopt::diag::Diags> {
    let overrides: Vec<mcopt::check::ConstOverride> = consts
        .iter()
        .map(|(n, v)| mcopt::check::ConstOverride {
            name: (*n).to_owned(),
            value: *v,
            origin: None,
        })
        .collect();
    mcopt::session::compile_with(&source(text), r, &overrides)
}
