//! `mcopt train` and its outputs (issue 15): `--out` and `output:` checked before the first
//! iteration, divergence as a training outcome (status `diverged`, the last finite iterate
//! saved, exit 1), gd's Armijo search through points outside the domain and its `stalled`
//! stop, `--resume --seed` and `--const`, `validate.tol: 0`, and the default output directory
//! `out/<run file stem>/` under the current directory.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support;
use support::{path_str as s, read_json as json, stderr_of as stderr};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `mcopt ARGS` run in `cwd`.
fn mcopt_in(cwd: &Path, args: &[&str]) -> Output {
    support::bin()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("mcopt runs")
}

/// A syn run file in `dir` with absolute model and data paths; `solver` is the solver
/// section, `extra` more top-level keys.
fn syn_run(dir: &Path, name: &str, solver: &str, extra: &str) -> PathBuf {
    let root = repo().display();
    let text = format!(
        "model: {root}/examples/syn/rnn.mco\ndata:\n  file: {root}/examples/data/syn_T10.csv\n  header: no\n  bind: {{x: 0..5, y: 5..8}}\n  train: 0..8\n  test: 8..10\n{solver}\ninit: {{scheme: gaussian, std: 0.1}}\nseed: 123456\nstop: {{max_iter: 20}}\n{extra}"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Exit 2 with every needle in the diagnostic.
fn assert_refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in\n{err}");
    }
}

// ---- item 4: outputs checked before the first iteration ----

#[test]
fn an_unusable_out_is_refused_before_training() {
    let dir = support::scratch_dir("badout");
    let run = syn_run(&dir, "run.yaml", "solver: {name: adam}", "");
    // a file where the directory should be
    let file = dir.join("a-file");
    std::fs::write(&file, "keep me").unwrap();
    let o = mcopt_in(&dir, &["train", s(&run), "--out", s(&file), "--quiet"]);
    assert_refused(&o, &["a-file", "not a directory"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // below a file
    let below = file.join("sub");
    let o = mcopt_in(&dir, &["train", s(&run), "--out", s(&below), "--quiet"]);
    assert_refused(&o, &["a-file"]);
    // empty
    let o = mcopt_in(&dir, &["train", s(&run), "--out", "", "--quiet"]);
    assert_refused(&o, &["--out", "empty"]);
    // a place nobody can create files in, root included
    let o = mcopt_in(
        &dir,
        &["train", s(&run), "--out", "/proc/mcopt-out", "--quiet"],
    );
    assert_refused(&o, &["/proc/mcopt-out", "cannot write"]);
    // a read-only directory (permission bits do not stop root: then the probe succeeds)
    let ro = dir.join("ro");
    std::fs::create_dir(&ro).unwrap();
    set_mode(&ro, 0o555);
    let probe = std::fs::write(ro.join("probe"), "x").is_ok();
    let _ = std::fs::remove_file(ro.join("probe"));
    let o = mcopt_in(
        &dir,
        &["train", s(&run), "--out", s(&ro.join("o")), "--quiet"],
    );
    if probe {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    } else {
        assert_refused(&o, &["cannot write"]);
    }
    set_mode(&ro, 0o755);
    // the run file's `output:` is checked the same way, at its line
    let run2 = syn_run(
        &dir,
        "run2.yaml",
        "solver: {name: adam}",
        &format!("output:\n  params: {}/p.yaml\n", file.display()),
    );
    let o = mcopt_in(&dir, &["train", s(&run2), "--quiet"]);
    assert_refused(&o, &["a-file", "run2.yaml:"]);
    assert!(!dir.join("out").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(dir);
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---- item 5: divergence is a training outcome ----

#[test]
fn divergence_saves_the_last_finite_iterate_and_exits_1() {
    let dir = support::scratch_dir("diverge");
    let run = syn_run(&dir, "run.yaml", "solver: {name: gd, options: {lr: 3}}", "");
    let out = dir.join("o");
    let o = mcopt_in(&dir, &["train", s(&run), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report = json(&out.join("report.json"));
    assert_eq!(report["status"], "diverged", "{report}");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("iteration")),
        "the report says what diverged: {report}"
    );
    let at = report["diverged_at"].as_u64().expect("diverged_at");
    assert!((1..=20).contains(&at), "{report}");
    assert_eq!(report["iterations"].as_u64(), Some(at - 1), "{report}");
    let f = report["objective"].as_f64().expect("a finite objective");
    assert!(f.is_finite());
    // params.yaml holds that finite iterate: eval agrees with the report
    let e = mcopt_in(
        &dir,
        &[
            "eval",
            "--config",
            s(&run),
            "--at",
            s(&out.join("params.yaml")),
            "--json",
        ],
    );
    assert!(e.status.success(), "{}", stderr(&e));
    let e: Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(e["value"].as_f64(), Some(f), "{e} vs {report}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---- item 20: gd's Armijo search ----

/// x − log x (minimum 1 at x = 1) trained by gd with Armijo from `x0` with `lr`.
fn xlog(dir: &Path, x0: f64, lr: f64) -> Output {
    std::fs::write(
        dir.join("xlog.mco"),
        "param x: real = 1\nminimize x - log(x)\n",
    )
    .unwrap();
    std::fs::write(dir.join("x0.yaml"), format!("x: {x0}\n")).unwrap();
    std::fs::write(
        dir.join("run.yaml"),
        format!("model: xlog.mco\nsolver: {{name: gd, options: {{lr: {lr}, armijo: true}}}}\ninit: {{from: x0.yaml}}\nstop: {{max_iter: 300}}\n"),
    )
    .unwrap();
    mcopt_in(dir, &["train", "run.yaml", "--out", "o", "--quiet"])
}

fn final_x(dir: &Path) -> f64 {
    let text = std::fs::read_to_string(dir.join("o/params.yaml")).unwrap();
    text.trim().trim_start_matches("x:").trim().parse().unwrap()
}

#[test]
fn armijo_shrinks_past_trial_points_outside_the_domain() {
    // the first trial, 10 − 100 · 0.9 = −80, is outside the domain of log
    let dir = support::scratch_dir("armijo-domain");
    let o = xlog(&dir, 10.0, 100.0);
    // `stalled` is a training outcome, not bad input (exit 2) nor a crash
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let report = json(&dir.join("o/report.json"));
    assert_eq!(report["status"], "stalled", "{report}");
    assert!((final_x(&dir) - 1.0).abs() < 1e-6, "{report}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn armijo_stops_stalled_when_the_step_cannot_decrease_f() {
    let dir = support::scratch_dir("armijo-stall");
    let o = xlog(&dir, 2.0, 1.0);
    // `stalled` is a training outcome, not bad input (exit 2) nor a crash
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let report = json(&dir.join("o/report.json"));
    assert_eq!(report["status"], "stalled", "{report}");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no Armijo step")),
        "the report says why it stalled: {report}"
    );
    assert!(report["iterations"].as_u64().unwrap() < 300, "{report}");
    assert!((final_x(&dir) - 1.0).abs() < 1e-6, "{report}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---- item 21: --resume --seed, --const ----

#[test]
fn resume_refuses_another_seed() {
    let dir = support::scratch_dir("seed");
    let run = syn_run(&dir, "run.yaml", "solver: {name: adam}", "");
    let out = dir.join("o");
    let o = mcopt_in(&dir, &["train", s(&run), "--out", s(&out), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = |seed: &'static str| {
        vec![
            "train".to_string(),
            s(&run).to_string(),
            "--out".into(),
            s(&out).into(),
            "--quiet".into(),
            "--resume".into(),
            "--max-iter".into(),
            "25".into(),
            "--seed".into(),
            seed.into(),
        ]
    };
    let a: Vec<String> = args("99");
    let o = mcopt_in(&dir, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_refused(&o, &["--seed 99", "123456", "checkpoint"]);
    let a: Vec<String> = args("123456");
    let o = mcopt_in(&dir, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "the same seed resumes: {}", stderr(&o));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_takes_const_and_resume_checks_it() {
    let dir = support::scratch_dir("const");
    let run = syn_run(&dir, "run.yaml", "solver: {name: adam}", "");
    let train = |out: &str, extra: &[&str]| {
        let mut a = vec!["train", s(&run), "--out", out, "--quiet"];
        a.extend_from_slice(extra);
        mcopt_in(&dir, &a)
    };
    assert!(train("a", &[]).status.success());
    let o = train("b", &["--const", "tau=5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (fa, fb) = (
        json(&dir.join("a/report.json"))["objective"].clone(),
        json(&dir.join("b/report.json"))["objective"].clone(),
    );
    assert_ne!(fa, fb, "tau = 5 changes the objective");
    let o = train("c", &["--const", "tauu=5"]);
    assert_refused(&o, &["tauu"]);
    assert!(!dir.join("c").exists());
    // a checkpoint written with tau = 5 is not resumed with the model's tau
    let o = train("b", &["--resume", "--max-iter", "25"]);
    assert_refused(&o, &["checkpoint"]);
    let o = train("b", &["--resume", "--max-iter", "25", "--const", "tau=5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(dir);
}

// ---- item 22: validate.tol ----

#[test]
fn validate_tol_zero_is_accepted_and_a_bad_one_named_at_its_line() {
    let dir = support::scratch_dir("vtol");
    let run = syn_run(
        &dir,
        "run.yaml",
        "solver: {name: adam}",
        "validate: {tol: 0}\n",
    );
    let o = mcopt_in(&dir, &["train", s(&run), "--out", "o", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json(&dir.join("o/report.json"));
    assert!(report["certificate"].is_object(), "{report}");
    let bad = syn_run(
        &dir,
        "bad.yaml",
        "solver: {name: adam}",
        "validate:\n  tol: -1\n",
    );
    let o = mcopt_in(&dir, &["train", s(&bad), "--out", "o2", "--quiet"]);
    assert_refused(&o, &["validate.tol", "bad.yaml:13:"]);
    let _ = std::fs::remove_dir_all(dir);
}

// ---- item 24: outputs under the current directory ----

#[test]
fn outputs_go_to_out_stem_under_the_current_directory() {
    let dir = support::scratch_dir("cwd");
    let runs = dir.join("runs");
    std::fs::create_dir(&runs).unwrap();
    let run = syn_run(&runs, "syn-adam.yaml", "solver: {name: adam}", "");
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let o = mcopt_in(&work, &["train", s(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = work.join("out/syn-adam");
    for f in [
        "params.yaml",
        "trace.csv",
        "plot.svg",
        "report.json",
        "checkpoint.json",
    ] {
        assert!(out.join(f).is_file(), "{f} in {}", out.display());
    }
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("out/syn-adam/params.yaml"), "{text}");
    assert!(!runs.join("out").exists(), "nothing beside the run file");
    // a relative `output:` path is relative to the current directory too
    let run2 = syn_run(
        &runs,
        "rel.yaml",
        "solver: {name: adam}",
        "output: {params: mine/p.yaml, json: mine/r.json}\n",
    );
    let o = mcopt_in(&work, &["train", s(&run2), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(work.join("mine/p.yaml").is_file());
    assert!(work.join("mine/r.json").is_file());
    assert!(!runs.join("mine").exists());
    let _ = std::fs::remove_dir_all(dir);
}
