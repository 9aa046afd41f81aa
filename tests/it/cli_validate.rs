//! End to end: `mcopt validate` — exit codes, JSON, JUnit — and the command lines of the CI
//! examples in `examples/ci/`, run exactly as written.

use crate::support;

use std::path::Path;

use support::{at, mcopt, repo};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn statuses(j: &serde_json::Value) -> Vec<(String, String)> {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status_of(j: &serde_json::Value, name: &str) -> String {
    statuses(j)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .unwrap_or_default()
}

/// The `mcopt validate` line of a CI file, split into arguments.
fn ci_command(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("mcopt validate ") && l.contains("--params"))
        .expect("a validate line");
    let cmd = line.split("mcopt validate").nth(1).unwrap();
    std::iter::once("validate".to_owned())
        .chain(cmd.split_whitespace().map(str::to_owned))
        .collect()
}

#[test]
fn the_ci_examples_run_as_written_and_publish_junit() {
    for file in [
        "examples/ci/github-actions.yml",
        "examples/ci/gitlab-ci.yml",
    ] {
        let args = ci_command(file);
        // Run from a directory that has the repository's examples/, as a CI checkout has.
        let dir = support::scratch_dir(file.rsplit('/').next().unwrap());
        std::os::unix::fs::symlink(repo().join("examples"), dir.join("examples")).unwrap();
        let out = support::bin()
            .args(&args)
            .current_dir(&dir)
            .env_remove("MCOPT_PLUGIN_PATH")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {out:?}");
        let junit = args
            .iter()
            .position(|a| a == "--junit")
            .map(|i| &args[i + 1])
            .unwrap();
        let xml = std::fs::read_to_string(dir.join(junit)).unwrap();
        assert!(
            xml.contains(
                r#"<testsuite name="mcopt validate" tests="7" skipped="1" errors="0" failures="0""#
            ),
            "{xml}"
        );
        for name in [
            "parse_and_check",
            "plugins_self_test",
            "objective_finite",
            "first_order_stationarity",
            "second_order_stationarity",
            "train_loss",
            "test_loss",
        ] {
            assert!(
                xml.contains(&format!(r#"<testcase name="{name}""#)),
                "{name}: {xml}"
            );
        }
        // No temporary file is left beside the report.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}

#[test]
fn json_lists_every_named_check() {
    let r = mcopt(&[
        "validate",
        &at("examples/ci/model.mco"),
        "--params",
        &at("examples/ci/params.yaml"),
        "--config",
        &at("examples/ci/run.yaml"),
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let j = r.json();
    assert_eq!(j["passed"], true);
    let names: Vec<String> = statuses(&j).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "parse_and_check",
            "plugins_self_test",
            "objective_finite",
            "first_order_stationarity",
            "second_order_stationarity",
            "train_loss",
            "test_loss"
        ]
    );
    for c in j["checks"].as_array().unwrap() {
        assert!(
            c["message"].is_string() && c["seconds"].as_f64().is_some(),
            "{c}"
        );
    }
    // The run file asks for order 2; --order 1 skips the second-order check.
    let r = mcopt(&[
        "validate",
        &at("examples/ci/model.mco"),
        "--params",
        &at("examples/ci/params.yaml"),
        "--config",
        &at("examples/ci/run.yaml"),
        "--order",
        "1",
        "--json",
    ]);
    assert_eq!(status_of(&r.json(), "second_order_stationarity"), "skipped");
}

#[test]
fn a_missed_threshold_fails_with_exit_1_and_a_junit_failure() {
    let dir = support::scratch_dir("threshold");
    let model = std::fs::read_to_string(repo().join("examples/ci/model.mco")).unwrap();
    write(&dir, "model.mco", &model);
    let run = write(
        &dir,
        "run.yaml",
        "model: model.mco\nvalidate: {max_train_loss: 0.01}\n",
    );
    let junit = dir.join("out.xml");
    let r = mcopt(&[
        "validate",
        &dir.join("model.mco").to_string_lossy(),
        "--params",
        &at("examples/ci/params.yaml"),
        "--config",
        &run,
        "--junit",
        &junit.to_string_lossy(),
        "--json",
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["passed"], false);
    assert_eq!(status_of(&j, "train_loss"), "fail");
    assert_eq!(status_of(&j, "first_order_stationarity"), "pass");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"failures="1""#) && xml.contains("<failure"),
        "{xml}"
    );
}

#[test]
fn a_clarke_only_point_fails_unless_allowed() {
    let dir = support::scratch_dir("clarke");
    let p = write(&dir, "x0.yaml", "x: 0\n");
    let m = at("examples/cases/abs_sq.mco");
    let r = mcopt(&["validate", &m, "--params", &p, "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(status_of(&j, "first_order_stationarity"), "fail");
    let msg = j["checks"][3]["message"].as_str().unwrap();
    assert!(
        msg.contains("not_stationary") && msg.contains("slope -2"),
        "{msg}"
    );
    let r = mcopt(&[
        "validate",
        &m,
        "--params",
        &p,
        "--allow-not-stationary",
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_eq!(status_of(&r.json(), "first_order_stationarity"), "warn");
    // First order but not second order: fails at --order 2 only.
    let m = at("examples/cases/double_well.mco");
    assert_eq!(mcopt(&["validate", &m, "--params", &p]).code, Some(0));
    let r = mcopt(&["validate", &m, "--params", &p, "--order", "2", "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(status_of(&r.json(), "second_order_stationarity"), "fail");
}

#[test]
fn bad_input_exits_2_with_a_diagnostic_and_a_junit_report() {
    let dir = support::scratch_dir("bad");
    let junit = dir.join("bad.xml");
    let bad_model = write(&dir, "bad.mco", "param x: real\nminimize nosuch(x)\n");
    let p = write(&dir, "x0.yaml", "x: 0\n");
    let r = mcopt(&[
        "validate",
        &bad_model,
        "--params",
        &p,
        "--junit",
        &junit.to_string_lossy(),
    ]);
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(r.stderr.contains("nosuch"), "{}", r.stderr);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testcase name="parse_and_check""#) && xml.contains("<failure"),
        "{xml}"
    );
    // A point file that misses a parameter.
    let m = at("examples/cases/max_xy.mco");
    let r = mcopt(&["validate", &m, "--params", &p]);
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(r.stderr.contains("`y`"), "{}", r.stderr);
    // A missing file.
    let r = mcopt(&["validate", &m, "--params", "/nonexistent.yaml"]);
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(!r.panicked());
}

#[test]
fn the_run_file_chooses_the_form_and_beta() {
    let dir = support::scratch_dir("form");
    let model = std::fs::read_to_string(repo().join("examples/ci/model.mco")).unwrap();
    write(&dir, "model.mco", &model);
    let params = at("examples/ci/params.yaml");
    let m = dir.join("model.mco").to_string_lossy().into_owned();
    // (P1) at the forward-completed point: stationary for β = 5 at both orders.
    let run = write(
        &dir,
        "p1.yaml",
        "model: model.mco\nvalidate: {form: p1, beta: 5.0, order: 2}\n",
    );
    let r = mcopt(&[
        "validate", &m, "--params", &params, "--config", &run, "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let j = r.json();
    assert_eq!(status_of(&j, "first_order_stationarity"), "pass");
    assert_eq!(status_of(&j, "second_order_stationarity"), "pass");
    assert!(
        j["checks"][3]["message"]
            .as_str()
            .unwrap()
            .contains("convex_qp"),
        "{j}"
    );
    // β too small for the exact penalty: the lifted point is not stationary for (P1).
    let run = write(
        &dir,
        "small.yaml",
        "model: model.mco\nvalidate: {form: p1, beta: 0.01}\n",
    );
    let r = mcopt(&[
        "validate", &m, "--params", &params, "--config", &run, "--json",
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(status_of(&r.json(), "first_order_stationarity"), "fail");
}
