//! End-to-end runs of the `mcopt` binary on bad input: each is exit code 2 with a diagnostic
//! on stderr that has a stable code and names the file and place, nothing on stdout, no file
//! written, and never a panic.

use crate::support;

use support::{at, mcopt, Run};

/// One bad input: the command line, the diagnostic code, and text that must appear on stderr
/// (the file name with line and column, the offending name).
struct Bad {
    name: &'static str,
    args: Vec<String>,
    code: &'static str,
    places: Vec<&'static str>,
}

fn bad(name: &'static str, args: &[&str], code: &'static str, places: &[&'static str]) -> Bad {
    Bad {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        places: places.to_vec(),
    }
}

fn f(rel: &str) -> String {
    at(&format!("tests/cli/bad/{rel}"))
}

fn syn_col(col: usize, name: &str) -> String {
    format!("{name}={}:{col}", at("examples/data/syn_T10.csv"))
}

/// Every bad input that must get a clear answer (a diagnostic, never a panic) that the CLI can reach.
fn cases() -> Vec<Bad> {
    let (params, seq) = (f("params.mco"), f("seq.mco"));
    let ragged = (
        format!("x={}:0", f("ragged.csv")),
        format!("y={}:1", f("ragged.csv")),
    );
    let nan = (
        format!("x={}:0", f("nan.csv")),
        format!("y={}:1", f("nan.csv")),
    );
    let bound_x = syn_col(0, "x");
    vec![
        bad(
            "missing model",
            &["check", &f("no_such_model.mco")],
            "mcopt::io::read",
            &["no_such_model.mco"],
        ),
        bad(
            "syntax error",
            &["check", &f("syntax.mco")],
            "mcopt::parse::syntax",
            &["syntax.mco:3:15", "`0.5`"],
        ),
        bad(
            "not UTF-8",
            &["check", &f("latin1.mco")],
            "mcopt::io::utf8",
            &["latin1.mco", "UTF-8"],
        ),
        bad(
            "a CSV file as the model",
            &["check", &f("ragged.csv")],
            "mcopt::parse::syntax",
            &["ragged.csv:1:1"],
        ),
        bad(
            "unknown function",
            &["check", &f("unknown_function.mco")],
            "mcopt::check::unknown_function",
            &["unknown_function.mco:3:10", "swoosh", "relu"],
        ),
        bad(
            "missing point file",
            &["eval", &params, "--at", &f("no_such_point.yaml")],
            "mcopt::io::read",
            &["no_such_point.yaml"],
        ),
        bad(
            "point missing a parameter",
            &["eval", &params, "--at", &f("point_missing.yaml")],
            "mcopt::point::missing",
            &["point_missing.yaml:3:", "`w`"],
        ),
        bad(
            "point misshapen",
            &["eval", &params, "--at", &f("point_misshapen.yaml")],
            "mcopt::point::shape",
            &["point_misshapen.yaml:2:4", "`w`"],
        ),
        bad(
            "direction misshapen",
            &["diff", &params, "--dir", &f("dir_shape.yaml")],
            "mcopt::point::shape",
            &["dir_shape.yaml:3:5", "`M`"],
        ),
        bad(
            "direction unknown name",
            &["diff", &params, "--dir", &f("dir_unknown.yaml")],
            "mcopt::point::unknown_name",
            &["dir_unknown.yaml:2:1", "`v`"],
        ),
        bad(
            "log of a negative number",
            &["eval", &f("log_negative.mco")],
            "mcopt::eval::domain",
            &["log_negative.mco:3:10", "log"],
        ),
        bad(
            "log of a negative number in diff",
            &[
                "diff",
                &f("log_negative.mco"),
                "--dir",
                &f("x_dir.yaml"),
                "--order",
                "2",
            ],
            "mcopt::eval::domain",
            &["log_negative.mco:3:10"],
        ),
        bad(
            "division by zero",
            &["eval", &f("div_zero.mco")],
            "mcopt::eval::domain",
            &["div_zero.mco:4:10", "division by zero"],
        ),
        bad(
            "ragged CSV",
            &["eval", &seq, "--data", &ragged.0, "--data", &ragged.1],
            "mcopt::data::ragged",
            &["ragged.csv:3:1"],
        ),
        bad(
            "NaN in CSV",
            &["eval", &seq, "--data", &nan.0, "--data", &nan.1],
            "mcopt::data::not_finite",
            &["nan.csv:2:3", "nan"],
        ),
        bad(
            "data not bound",
            &["eval", &seq],
            "mcopt::data::unbound",
            &["seq.mco:2:1"],
        ),
        bad(
            "run file unknown key",
            &["eval", &params, "--config", &f("unknown_key.yaml")],
            "mcopt::config::unknown_key",
            &["unknown_key.yaml:3:1", "`stopp`"],
        ),
        bad(
            "missing run file",
            &["eval", &params, "--config", &f("no_such_run.yaml")],
            "mcopt::io::read",
            &["no_such_run.yaml"],
        ),
        bad(
            "plugin not found",
            &["check", &params, "--plugin", &f("libno_such_plugin.so")],
            "mcopt::plugin::not_found",
            &["libno_such_plugin.so", "tried"],
        ),
        bad(
            "plugin by name not found",
            &["check", &params, "--plugin", "no_such_plugin"],
            "mcopt::plugin::not_found",
            &["no_such_plugin", "tried", "MCOPT_PLUGIN_PATH"],
        ),
        bad(
            "plugin not a library",
            &["check", &params, "--plugin", &f("nan.csv")],
            "mcopt::plugin::not_a_library",
            &["nan.csv"],
        ),
        bad(
            "time before the start",
            &["check", &f("before_start.mco"), "--data", &bound_x],
            "mcopt::lower::time",
            &["before_start.mco:5:23", "before the start"],
        ),
        bad(
            "layer step not defined",
            &["check", &f("not_defined.mco"), "--data", &bound_x],
            "mcopt::lower::time",
            &["not_defined.mco:5:18", "`g[1]` is not defined"],
        ),
        bad(
            "per-sequence value outside a reduction",
            &[
                "check",
                &f("batch_outside.mco"),
                "--config",
                &f("batch_outside.yaml"),
            ],
            "mcopt::lower::batch",
            &["batch_outside.mco:4:10"],
        ),
    ]
}

/// Failures of one run against the contract for bad input; empty when it holds.
fn contract(name: &str, run: &Run, code: &str, places: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut fail = |what: String| out.push(format!("{name}: {what}\n{run:#?}"));
    if run.code != Some(2) {
        fail(format!("exit code {:?}, expected 2", run.code));
    }
    if run.panicked() {
        fail("a panic reached the user".into());
    }
    let json = run.args.iter().any(|a| a == "--json");
    if json && !run.stdout.contains("\"diagnostics\"") {
        fail("--json: stdout has no diagnostics".into());
    } else if !json && !run.stdout.is_empty() {
        fail("stdout is not empty".into());
    }
    if !run.written.is_empty() {
        fail(format!("files written: {:?}", run.written));
    }
    if !run.stderr.contains(code) {
        fail(format!("no `{code}` on stderr"));
    }
    for p in places {
        if !run.stderr.contains(p) {
            fail(format!("`{p}` missing from stderr"));
        }
    }
    out
}

#[test]
fn bad_input_is_exit_2_with_a_diagnostic_naming_the_place() {
    let mut failures = Vec::new();
    for c in cases() {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        failures.extend(contract(c.name, &mcopt(&args), c.code, &c.places));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bad_flags_are_clap_errors_with_exit_2() {
    let model = at("examples/cases/abs_sq.mco");
    let dir = at("tests/cli/cases/abs_sq.dir.yaml");
    let runs = [
        (vec!["check", "--frobnicate", &model], "--frobnicate"),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["diff", &model], "--dir"),
        (
            vec!["diff", &model, "--dir", &dir, "--order", "3"],
            "--order",
        ),
        (vec!["bench", &model, "--seconds", "soon"], "--seconds"),
        (vec![], "Usage"),
    ];
    let mut failures = Vec::new();
    for (args, place) in runs {
        failures.extend(contract(&format!("{args:?}"), &mcopt(&args), "", &[place]));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn help_and_version_are_exit_0() {
    for args in [vec!["--help"], vec!["--version"], vec!["check", "--help"]] {
        let run = mcopt(&args);
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert!(!run.stdout.is_empty(), "{run:#?}");
    }
}

/// A point outside a function's domain points at the expression.
#[test]
fn domain_error_points_at_the_expression() {
    let run = mcopt(&["eval", &f("log_negative.mco")]);
    let failures = contract(
        "log",
        &run,
        "mcopt::eval::domain",
        &["log_negative.mco:3:10"],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The label is under `log(x)`, the first expression on line 3.
    let line = run
        .stderr
        .lines()
        .skip_while(|l| !l.contains("minimize log(x)"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        line.contains("───┬──"),
        "no underline of `log(x)`: {}",
        run.stderr
    );
}

/// One problem gets one diagnostic: lowering must not repeat the same message at the same place.
#[test]
fn lowering_reports_each_problem_once() {
    let run = mcopt(&["check", &f("before_start.mco"), "--data", &syn_col(0, "x")]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    let n = run.stderr.matches("mcopt::lower::time").count();
    assert_eq!(n, 1, "reported {n} times:\n{}", run.stderr);
}

/// No panic across every command of the suite, good or bad, including odd combinations.
#[test]
fn no_panic_anywhere() {
    let mut runs: Vec<Run> = cases()
        .iter()
        .map(|c| mcopt(&c.args.iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    let extra: &[&[&str]] = &[
        &["check", "/dev/null"],
        &["eval", "/dev/null"],
        &["check", "/"],
        &["eval", "/"],
        &["check", "-"],
        &["plugins", "list"],
        &["plugins", "check", "no_such_plugin"],
        &["plugins", "check", "/"],
    ];
    runs.extend(extra.iter().map(|a| mcopt(a)));
    let d = at("tests/cli/bad/params.mco");
    let dirs = [
        "point_missing.yaml",
        "point_misshapen.yaml",
        "dir_shape.yaml",
        "unknown_key.yaml",
        "nan.csv",
        "latin1.mco",
    ];
    for dir in dirs {
        runs.push(mcopt(&[
            "diff",
            &d,
            "--dir",
            &f(dir),
            "--at",
            &f(dir),
            "--order",
            "2",
        ]));
        runs.push(mcopt(&["bench", &d, "--dir", &f(dir), "--seconds", "0.01"]));
    }
    for model in ["abs_sq", "max_xy"] {
        let m = at(&format!("examples/cases/{model}.mco"));
        runs.push(mcopt(&["bench", &m, "--seconds", "0", "--json"]));
        runs.push(mcopt(&["bench", &m, "--seconds", "-1"]));
        runs.push(mcopt(&["bench", &m, "--seconds", "NaN"]));
        runs.push(mcopt(&["eval", &m, "--ztol", "-1"]));
    }
    let panics: Vec<&Run> = runs
        .iter()
        .filter(|r| r.panicked() || r.code.is_none())
        .collect();
    assert!(panics.is_empty(), "{panics:#?}");
}

#[test]
fn exponent_i32_min_is_not_a_panic() {
    let run = mcopt(&["eval", &f("min_exponent.mco"), "--json"]);
    assert!(!run.panicked(), "{run:#?}");
    // 2^(-2^31) underflows to 0, so f = 0 + 2² = 4.
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.json()["value"].as_f64(), Some(4.0), "{run:#?}");
}

#[test]
fn huge_product_is_bad_input() {
    let run = mcopt(&["eval", &f("huge_product.mco")]);
    let failures = contract(
        "huge product",
        &run,
        "mcopt::check::too_large",
        &["huge_product.mco:3:17"],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An objective that overflows is not a success: JSON would print `"value": null` and exit 0.
#[test]
fn overflowing_objective_is_a_diagnostic() {
    let run = mcopt(&["eval", &f("overflow.mco"), "--json"]);
    let failures = contract("overflow", &run, "mcopt::eval::", &["overflow.mco:3:10"]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `mcopt check ... | head -1` closes stdout early; that is not a bug in mcopt's input.
#[test]
fn closed_stdout_is_not_an_internal_error() {
    use std::process::Stdio;
    let mut child = support::bin()
        .args([
            "check",
            &at("examples/sp500/rnn.mco"),
            "--config",
            &at("examples/sp500/run.yaml"),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcopt");
    // Close the read end before mcopt (which first reads the CSV file) writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for mcopt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert_ne!(out.status.code(), Some(3), "{stderr}");
}
