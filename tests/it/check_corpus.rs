//! Data-driven checker tests: `tests/check/err/*.mco` parse but fail the checker with the
//! diagnostics in the `.diag` beside them; `tests/check/ok/*.mco` check, lower and evaluate,
//! and their structure matches the `.check` summary beside them.

use crate::common;

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use common::golden;
use mcopt::check::{self, LayerBody, Model, TermClass};
use mcopt::diag::{render_plain, Diags, SourceFile};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::{self, LowerOptions, SeqData};
use mcopt::registry::{Order, Registry};
use mcopt::syntax;

fn check_source(source: &Arc<SourceFile>, registry: &Registry) -> Result<Model, Diags> {
    let program = syntax::parse(source)
        .unwrap_or_else(|d| panic!("{} does not parse:\n{}", source.name, render_plain(&d)));
    check::check(source, &program, registry)
}

#[test]
fn err_corpus_gives_expected_diagnostics() {
    let registry = Registry::with_standard();
    let cases = golden::sources("tests/check/err");
    assert!(
        cases.len() >= 30,
        "the err corpus has {} files, expected at least 30",
        cases.len()
    );
    let mut failures = Vec::new();
    for (stem, source) in &cases {
        match check_source(source, &registry) {
            Ok(model) => failures.push(format!(
                "{stem}.mco checks but should not:\n{}",
                summary(&model)
            )),
            Err(diags) => {
                failures.extend(diag_shape_problems(source, &diags));
                failures.extend(golden::check(
                    Path::new(&format!("{stem}.diag")),
                    &render_plain(&diags),
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every checker diagnostic has a `mcopt::check::` code, a primary span inside the file on one
/// line, and a lowercase message without a trailing period.
fn diag_shape_problems(source: &SourceFile, diags: &Diags) -> Vec<String> {
    let mut out = Vec::new();
    for d in diags.iter() {
        let Some(span) = d.primary() else {
            out.push(format!("{}: `{}` has no span", source.name, d.message));
            continue;
        };
        let ok_span = span.start <= span.end && span.end <= source.text.len();
        let one_line = ok_span && !source.text[span.start..span.end].trim_end().contains('\n');
        let lower = d.message.chars().next().is_some_and(|c| !c.is_uppercase());
        if !d.code.starts_with("mcopt::check::")
            || !ok_span
            || !one_line
            || !lower
            || d.message.ends_with('.')
        {
            out.push(format!(
                "{}: bad diagnostic {:?} at {:?}",
                source.name, d, span
            ));
        }
    }
    out
}

/// The primary span of each diagnostic of `file`, as source text, in order.
fn primary_texts(file: &str, registry: &Registry) -> Vec<(&'static str, String)> {
    let (_, source) = golden::sources("tests/check/err")
        .into_iter()
        .find(|(s, _)| s.ends_with(file))
        .unwrap_or_else(|| panic!("no {file}"));
    let diags = check_source(&source, registry).expect_err("should fail");
    diags
        .iter()
        .map(|d| {
            let s = d.primary().unwrap_or_default();
            (d.code, source.text[s.start..s.end].to_owned())
        })
        .collect()
}

/// Independent of the rendered files: the primary span is on the offending token.
#[test]
fn primary_spans_are_on_the_offending_token() {
    let r = Registry::with_standard();
    let expect: &[(&str, &str, &str)] = &[
        ("unknown_name", "mcopt::check::unknown_name", "y"),
        (
            "unknown_function",
            "mcopt::check::unknown_function",
            "frobnicate",
        ),
        ("shape_add", "mcopt::check::shape", "+"),
        ("matmul_mismatch", "mcopt::check::shape", "*"),
        ("vec_times_vec", "mcopt::check::shape", "*"),
        ("arity_max", "mcopt::check::arity", "max"),
        ("nonconst_fparam", "mcopt::check::not_constant", "y"),
        ("duplicate_param", "mcopt::check::duplicate", "x"),
        ("layer_before_definition", "mcopt::check::layer_order", "b"),
        ("layer_self", "mcopt::check::layer_order", "u"),
        ("data_no_time", "mcopt::check::time", "y"),
        ("future_index", "mcopt::check::time", "t+1"),
        ("time_var_value", "mcopt::check::time", "t"),
        ("nested_mean", "mcopt::check::time", "s"),
        ("data_not_seq", "mcopt::check::data_type", "vec(3)"),
        ("data_matrix_step", "mcopt::check::data_type", "mat(2, 2)"),
        ("init_wrong_shape", "mcopt::check::shape", "[1, 2]"),
        ("init_not_constant", "mcopt::check::not_constant", "a"),
        ("const_depends_param", "mcopt::check::not_constant", "2 * x"),
        ("index_out_of_range", "mcopt::check::index", "4"),
        ("index_zero", "mcopt::check::index", "0"),
        ("index_non_integer", "mcopt::check::index", "1.5"),
        ("vec_size_zero", "mcopt::check::size", "0"),
        (
            "huge_size",
            "mcopt::check::too_large",
            "mat(100000, 100000)",
        ),
        (
            "objective_not_real",
            "mcopt::check::objective_shape",
            "v - 1",
        ),
        ("layer_case_shapes", "mcopt::check::shape", "relu(W * x[t])"),
    ];
    let mut failures = Vec::new();
    for (file, code, text) in expect {
        let got = primary_texts(file, &r);
        if got.first().map(|(c, t)| (*c, t.as_str())) != Some((code, text)) {
            failures.push(format!("{file}: expected {code} on `{text}`, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn several_problems_are_all_reported() {
    let got = primary_texts("several_problems", &Registry::with_standard());
    let codes: Vec<&str> = got.iter().map(|(c, _)| *c).collect();
    // duplicate `v`, `v[1]` in a const (not constant), unknown `w`, unknown `nosuch`, max arity.
    for want in [
        "mcopt::check::duplicate",
        "mcopt::check::not_constant",
        "mcopt::check::unknown_name",
        "mcopt::check::unknown_function",
        "mcopt::check::arity",
    ] {
        assert!(codes.contains(&want), "{want} missing from {got:?}");
    }
    assert!(
        got.len() >= 6,
        "expected at least 6 diagnostics, got {got:?}"
    );
}

#[test]
fn unknown_function_help_lists_known_names() {
    let (_, source) = golden::sources("tests/check/err")
        .into_iter()
        .find(|(s, _)| s.ends_with("unknown_function"))
        .expect("file");
    let diags = check_source(&source, &Registry::with_standard()).expect_err("should fail");
    let help = diags
        .iter()
        .next()
        .and_then(|d| d.help.clone())
        .unwrap_or_default();
    for name in [
        "abs",
        "max",
        "relu",
        "leaky_relu",
        "elu",
        "tanh",
        "sigmoid",
        "softplus",
        "l1",
        "huber",
        "dot",
        "zeros",
    ] {
        assert!(
            help.split([' ', ',']).any(|w| w == name),
            "`{name}` missing from help: {help}"
        );
    }
}

#[test]
fn ok_corpus_checks_lowers_and_evaluates() {
    let registry = Registry::with_standard();
    let cases = golden::sources("tests/check/ok");
    assert!(cases.len() >= 8, "the ok corpus is missing files");
    let mut failures = Vec::new();
    for (stem, source) in &cases {
        match check_source(source, &registry) {
            Ok(model) => {
                failures.extend(golden::check(
                    Path::new(&format!("{stem}.check")),
                    &summary(&model),
                ));
                if let Err(e) = lower_and_evaluate(&model, &registry) {
                    failures.push(format!("{stem}.mco: {e}"));
                }
            }
            Err(diags) => failures.push(format!(
                "{stem}.mco does not check:\n{}",
                render_plain(&diags)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Bind 3 time steps (2 sequences for batch data) of deterministic data, lower, and evaluate
/// the objective at the model's initial point.
fn lower_and_evaluate(model: &Model, registry: &Registry) -> Result<f64, String> {
    let data: Vec<SeqData> = model
        .data
        .iter()
        .map(|d| {
            let sequences = if d.batch.is_some() { 2 } else { 1 };
            let n = 3 * d.shape.rows * sequences;
            SeqData {
                steps: 3,
                sequences,
                values: (0..n).map(|k| 0.25 + 0.1 * k as f64).collect(),
                warmup: 0,
            }
        })
        .collect();
    let g = graph::lower(model, &LowerOptions { data }).map_err(|d| render_plain(&d))?;
    let x: Vec<f64> = model
        .params
        .iter()
        .flat_map(|p| p.init.iter().copied())
        .collect();
    let mut ev = Evaluator::new(&g, registry, Order::Two).map_err(|e| e.to_string())?;
    let v = ev
        .value(&x, EvalOptions::default())
        .map_err(|e| e.to_string())?;
    let d = vec![1.0; x.len()];
    let t = ev
        .directional(&x, &d, Order::Two, EvalOptions::default())
        .map_err(|e| e.to_string())?;
    if !v.is_finite()
        || t.value != v
        || !t.d1.is_some_and(f64::is_finite)
        || !t.d2.is_some_and(f64::is_finite)
    {
        return Err(format!("value {v}, ray {t:?}"));
    }
    Ok(v)
}

/// A compact, stable summary of a checked model: parameters, data, layers and objective terms.
fn summary(m: &Model) -> String {
    let mut out = String::new();
    for p in &m.params {
        let init: Vec<String> = p.init.iter().take(8).map(|v| format!("{v}")).collect();
        let more = if p.init.len() > 8 { ", .." } else { "" };
        let _ = writeln!(
            out,
            "param {} {} init [{}{more}]",
            p.name,
            p.shape,
            init.join(", ")
        );
    }
    for d in &m.data {
        let batch = match d.batch {
            None => String::new(),
            Some(None) => " batch".to_owned(),
            Some(Some(n)) => format!(" batch({n})"),
        };
        let _ = writeln!(out, "data {} step {}{batch}", d.name, d.shape);
    }
    for l in &m.layers {
        let kind = match &l.body {
            LayerBody::Plain(_) => "plain".to_owned(),
            LayerBody::Indexed { bases, general } => {
                let b: Vec<String> = bases.iter().map(|(t, _)| t.to_string()).collect();
                format!(
                    "indexed bases [{}] general {}",
                    b.join(", "),
                    if general.is_some() { "yes" } else { "no" }
                )
            }
        };
        let _ = writeln!(out, "layer {} {} {kind}", l.name, l.shape);
    }
    for t in &m.terms {
        let class = match t.class {
            TermClass::Loss => "loss".to_owned(),
            TermClass::Tikhonov { param } => format!("tikhonov {}", m.params[param].name),
            TermClass::Other => "other".to_owned(),
        };
        let text = m
            .source
            .text
            .get(t.expr.span.start..t.expr.span.end)
            .unwrap_or("?");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "term {:+} {class}: {text}", t.coef);
    }
    let _ = writeln!(out, "n {} sequential {}", m.n_params(), m.is_sequential());
    out
}

// Known bugs: each test fails until the bug is fixed; then move the model into tests/check/err.

/// The diagnostics of checking `text` (which must parse).
fn diags_of(text: &str) -> Vec<mcopt::diag::Diag> {
    let source = SourceFile::new("bug.mco", text);
    match check_source(&source, &Registry::with_standard()) {
        Ok(m) => panic!("checks but should not:\n{}", summary(&m)),
        Err(d) => d.0,
    }
}

fn primary_text<'a>(text: &'a str, d: &mcopt::diag::Diag) -> &'a str {
    let s = d.primary().unwrap_or_default();
    &text[s.start..s.end]
}

#[test]
fn huge_product_is_refused() {
    let text = "param M: mat(100000, 2)\nminimize sqnorm(M * transpose(M))\n";
    let d = diags_of(text);
    assert_eq!(
        (d[0].code, primary_text(text, &d[0])),
        ("mcopt::check::too_large", "M * transpose(M)")
    );
}

#[test]
fn function_parameter_out_of_range_is_refused() {
    let text = "param x: real\nminimize huber(x, -1)\n";
    let d = diags_of(text);
    assert!(d[0].code.starts_with("mcopt::check::"), "{:?}", d[0]);
    assert_eq!(primary_text(text, &d[0]), "-1");
    assert!(d[0].message.contains("delta"), "{}", d[0].message);
}

#[test]
fn mismatch_messages_name_the_function() {
    for (text, name) in [
        (
            "param v: vec(3)\nparam w: vec(2)\nminimize dot(v, w)\n",
            "dot",
        ),
        (
            "param v: vec(3)\nparam w: vec(2)\nminimize sum(max(v, w))\n",
            "max",
        ),
        (
            "param v: vec(3)\nparam w: vec(2)\nminimize sum(min(v, w))\n",
            "min",
        ),
    ] {
        let d = diags_of(text);
        assert!(
            d[0].message.contains(&format!("`{name}`")),
            "{name}: {}",
            d[0].message
        );
    }
}

#[test]
fn zeros_of_zero_says_size() {
    let d = diags_of("param x: real\nminimize sum(zeros(0)) + x^2\n");
    assert!(
        d[0].message.contains("size") && !d[0].message.contains("index"),
        "{}",
        d[0].message
    );
}

#[test]
fn a_bad_declaration_is_reported_once() {
    for text in [
        "param v: vec(0)\nminimize sqnorm(v)\n",
        "param M: mat(100000, 100000)\nminimize sqnorm(M)\n",
        "param x: real\nlayer u = max(x, 0)\nlayer u = min(x, 0)\nminimize u^2\n",
    ] {
        let d = diags_of(text);
        assert_eq!(d.len(), 1, "{text}{}", render_plain(&Diags(d.clone())));
    }
}

#[test]
fn layer_time_variable_must_be_fresh() {
    let text = "param t: real = 2\ndata x: seq(real)\nlayer h[0] = 0\nlayer h[t] = t * h[t-1] + x[t]\nminimize mean(s, h[s]^2)\n";
    let d = diags_of(text);
    assert_eq!(d[0].code, "mcopt::check::time");
}

#[test]
fn batch_of_zero_sequences_is_refused() {
    let d =
        diags_of("data x: batch(0, seq(real))\nparam a: real\nminimize mean(t, (a - x[t])^2)\n");
    assert_eq!(d[0].code, "mcopt::check::size");
}

/// miette draws labels nested inside another label's span at the wrong columns (zkat/miette#268).
/// A primary label on the operator alone (the text between the operands) renders correctly.
#[test]
fn shape_mismatch_labels_render_under_the_operands() {
    let text = "param v: vec(3)\nparam w: vec(4)\nminimize sum(v + w)\n";
    let source = SourceFile::new("a.mco", text);
    let diags = check_source(&source, &Registry::with_standard()).expect_err("mismatch");
    let out = render_plain(&diags);
    let lines: Vec<Vec<char>> = out.lines().map(|l| l.chars().collect()).collect();
    let src = lines
        .iter()
        .position(|l| {
            l.iter()
                .collect::<String>()
                .ends_with("minimize sum(v + w)")
        })
        .expect("source line");
    let col = |c: char| lines[src].iter().rposition(|&x| x == c).expect("column");
    let under = &lines[src + 1];
    assert_eq!(
        (under.get(col('v')), under.get(col('w'))),
        (Some(&'┬'), Some(&'┬')),
        "\n{out}"
    );
}

/// `let a_i = a_{i-1} + a_{i-1}` doubles the expression at each line; the objective's terms must
/// not be the 2^k leaves of that tree (with k = 22 checking takes 14 s and 4 GB, k = 30 does not
/// finish).
#[test]
fn let_chains_do_not_multiply_terms() {
    let k = 16;
    let mut text = String::from("param x: real = 1\nlet a0 = x\n");
    for i in 1..=k {
        text.push_str(&format!("let a{i} = a{} + a{}\n", i - 1, i - 1));
    }
    text.push_str(&format!("minimize a{k}\n"));
    let source = SourceFile::new("chain.mco", text);
    let model = check_source(&source, &Registry::with_standard())
        .unwrap_or_else(|d| panic!("{}", render_plain(&d)));
    assert!(model.terms.len() <= k + 1, "{} terms", model.terms.len());
}
