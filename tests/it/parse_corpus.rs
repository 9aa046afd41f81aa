//! Data-driven parser tests: `tests/parse/ok/*.mco` must parse to the AST in the `.ast` beside
//! it; `tests/parse/err/*.mco` must fail with the diagnostics in the `.diag` beside it.

use crate::common;

use std::path::Path;

use common::{golden, sexp};
use mcopt::diag::render_plain;
use mcopt::syntax::parse;

#[test]
fn ok_corpus_parses_to_expected_ast() {
    let cases = golden::sources("tests/parse/ok");
    assert!(cases.len() >= 8, "the ok corpus is missing files");
    let mut failures = Vec::new();
    for (stem, source) in &cases {
        match parse(source) {
            Ok(program) => failures.extend(golden::check(
                Path::new(&format!("{stem}.ast")),
                &sexp::program(&program),
            )),
            Err(diags) => failures.push(format!(
                "{stem}.mco does not parse:\n{}",
                render_plain(&diags)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn err_corpus_gives_expected_diagnostics() {
    let cases = golden::sources("tests/parse/err");
    assert!(cases.len() >= 20, "the err corpus is missing files");
    let mut failures = Vec::new();
    for (stem, source) in &cases {
        match parse(source) {
            Ok(program) => failures.push(format!(
                "{stem}.mco parses but should not:\n{}",
                sexp::program(&program)
            )),
            Err(diags) => failures.extend(golden::check(
                Path::new(&format!("{stem}.diag")),
                &render_plain(&diags),
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
