//! The test error of issue 7 item 8: one forward pass over the training steps and then the
//! test steps (the paper's TestErr), `restart` as the alternative, and a fractional `train`
//! whose rest is the test split.

use crate::support;

use support::{at, mcopt, num, Run};

/// examples/data/SOURCES.md: TrainErr and TestErr at the authors' starting weights.
const SP500_TRAIN: f64 = 2.7552692674297363;
const SP500_TEST_CARRY: f64 = 7.3243278565452785;
const SP500_TEST_RESTART: f64 = 7.3358543881;
const SYN_TRAIN: f64 = 2.14164972268262;
const SYN_TEST_CARRY: f64 = 6.120920720847263;

fn eval(set: &str, extra: &[&str]) -> Run {
    let (model, run, point) = (
        at(&format!("examples/{set}/rnn.mco")),
        at(&format!("examples/{set}/run.yaml")),
        at(&format!("examples/data/srpa_{set}_theta0.yaml")),
    );
    let mut args = vec!["eval", &model, "--config", &run, "--at", &point, "--json"];
    args.extend_from_slice(extra);
    let r = mcopt(&args);
    assert_eq!(r.code, Some(0), "{r:#?}");
    r
}

fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs(),
        "{what} = {got:.17}, expected {want:.17}"
    );
}

#[test]
fn sp500_test_error_carries_the_state_over_from_the_training_steps() {
    // The run file has `train: {fraction: 0.9}` and no `test:`: the test split is the rest.
    let r = eval("sp500", &[]);
    let v = r.json();
    assert_close(num(&v, "loss", &r), SP500_TRAIN, 1e-13, "loss");
    assert_close(
        num(&v, "test_loss", &r),
        SP500_TEST_CARRY,
        1e-13,
        "test_loss",
    );
}

#[test]
fn sp500_test_error_restarts_on_request() {
    let r = eval("sp500", &["--test-state", "restart"]);
    let v = r.json();
    assert_close(
        num(&v, "test_loss", &r),
        SP500_TEST_RESTART,
        1e-10,
        "test_loss",
    );
    assert_close(num(&v, "loss", &r), SP500_TRAIN, 1e-13, "loss");
}

#[test]
fn syn_test_error_at_the_authors_start() {
    let r = eval("syn", &[]);
    let v = r.json();
    assert_close(num(&v, "loss", &r), SYN_TRAIN, 1e-13, "loss");
    assert_close(num(&v, "test_loss", &r), SYN_TEST_CARRY, 1e-13, "test_loss");
}

#[test]
fn run_file_test_state_restart_is_read_and_a_bad_value_is_reported() {
    let dir = crate::support::scratch_dir("test-state");
    let text = std::fs::read_to_string(at("examples/sp500/run.yaml")).unwrap_or_default();
    let data = at("examples/data/sp500.csv");
    let model = at("examples/sp500/rnn.mco");
    let text = text
        .replace("../data/sp500.csv", &data)
        .replace("model: rnn.mco", &format!("model: {model}"));
    let write = |name: &str, state: &str| {
        let t = text.replace(
            "  train: {fraction: 0.9}",
            &format!("  train: {{fraction: 0.9}}\n  test_state: {state}"),
        );
        let p = dir.join(name);
        std::fs::write(&p, t).unwrap_or_else(|e| panic!("{e}"));
        p.to_string_lossy().into_owned()
    };
    let (good, bad) = (write("restart.yaml", "restart"), write("bad.yaml", "carr"));
    let point = at("examples/data/srpa_sp500_theta0.yaml");
    let r = mcopt(&["eval", &model, "--config", &good, "--at", &point, "--json"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_close(
        num(&r.json(), "test_loss", &r),
        SP500_TEST_RESTART,
        1e-10,
        "test_loss",
    );
    let r = mcopt(&["eval", &model, "--config", &bad, "--at", &point]);
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains("mcopt::config::value") && r.stderr.contains("carry"),
        "{r:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
