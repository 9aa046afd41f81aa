//! The run file's `model:` and the command line's model (issue 7 item 11): the command-line
//! model may be omitted, both must name the same file, and a `model:` that does not exist is
//! never ignored.

use crate::support;

use support::{at, mcopt, num, Run};

fn assert_bad(run: &Run, code: &str, places: &[&str]) {
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(!run.panicked(), "{run:#?}");
    assert!(run.stderr.contains(code), "expected {code}: {run:#?}");
    for p in places {
        assert!(run.stderr.contains(p), "expected `{p}` in stderr: {run:#?}");
    }
}

#[test]
fn the_command_line_model_may_be_omitted() {
    let run = mcopt(&["eval", "--config", &at("examples/syn/run.yaml"), "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let v = run.json();
    assert!(
        (num(&v, "value", &run) - 2.179217475548).abs() <= 1e-9,
        "{run:#?}"
    );
    for cmd in ["check", "bench"] {
        let mut args = vec![cmd, "--config"];
        let cfg = at("examples/syn/run.yaml");
        args.push(&cfg);
        if cmd == "bench" {
            args.extend(["--seconds", "0.01"]);
        }
        let run = mcopt(&args);
        assert_eq!(run.code, Some(0), "{run:#?}");
    }
}

#[test]
fn the_same_file_spelled_differently_agrees() {
    // The run file says `rnn.mco` relative to its directory; the command line gives the
    // repository path with a `..` detour.
    let model = at("examples/sp500/../syn/rnn.mco");
    let run = mcopt(&["eval", &model, "--config", &at("examples/syn/run.yaml")]);
    assert_eq!(run.code, Some(0), "{run:#?}");
}

#[test]
fn a_different_command_line_model_is_an_error_at_the_run_files_model() {
    let run = mcopt(&[
        "eval",
        &at("examples/sp500/rnn.mco"),
        "--config",
        &at("tests/cli/run_model/other_model.yaml"),
    ]);
    assert_bad(
        &run,
        "mcopt::config::model",
        &["other_model.yaml:2:8", "sp500/rnn.mco"],
    );
}

#[test]
fn a_run_files_model_that_does_not_exist_is_never_ignored() {
    for model in [Some(at("examples/syn/rnn.mco")), None] {
        let cfg = at("tests/cli/run_model/missing_model.yaml");
        let mut args = vec!["eval"];
        if let Some(m) = &model {
            args.push(m);
        }
        args.extend(["--config", &cfg]);
        let run = mcopt(&args);
        assert_bad(
            &run,
            "mcopt::config::model",
            &["missing_model.yaml:2:8", "no_such_model.mco"],
        );
    }
}

#[test]
fn no_model_and_no_run_file_is_an_error() {
    let run = mcopt(&["eval"]);
    assert_bad(&run, "mcopt::cli::model", &["--config"]);
}
