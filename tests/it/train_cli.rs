//! `mcopt train` end to end: Adam and GD (Nesterov) on syn and sp500 from run files, agreement
//! of `report.json` with `mcopt eval` at `params.yaml`, the trace and the plot, determinism,
//! resume (80 + 120 = 200 bit for bit, and after a real SIGINT), bad input with nothing
//! written, and a third-party solver plugin built and loaded from a run file.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use support::{path_str as s, read_json as json, stderr_of as stderr};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mcopt(args: &[&str]) -> Output {
    support::bin()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("mcopt runs")
}

/// `mcopt train RUN --out DIR --quiet EXTRA...`, asserting success; the report.
fn train(run: &str, dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["train", run, "--out", s(dir), "--quiet"];
    args.extend_from_slice(extra);
    let o = mcopt(&args);
    assert!(o.status.success(), "{run}: {}", stderr(&o));
    json(&dir.join("report.json"))
}

/// `mcopt eval MODEL --config RUN --at POINT --json`.
fn eval(model: &str, run: &str, at: &Path) -> Value {
    let o = mcopt(&["eval", model, "--config", run, "--at", s(at), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn trace_rows(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn check_run(model: &str, run: &str, iters: u64, extra: &[&str]) {
    let dir = support::fresh_dir("e2e");
    let n = iters.to_string();
    let mut args = vec!["--max-iter", n.as_str()];
    args.extend_from_slice(extra);
    let report = train(run, &dir, &args);
    assert_eq!(report["status"], "max_iter", "{report}");
    assert_eq!(report["iterations"], iters);
    let rows = trace_rows(&dir);
    assert_eq!(
        rows.len() as u64,
        iters + 2,
        "header and iterations + 1 rows"
    );
    assert_eq!(
        rows[0][..6],
        [
            "iter",
            "objective",
            "train_loss",
            "test_loss",
            "seconds",
            "stationarity"
        ]
    );
    assert!(rows[0].contains(&"grad_norm".to_string()));
    let f0: f64 = rows[1][1].parse().unwrap();
    let f_end = report["objective"].as_f64().unwrap();
    assert!(
        f_end < f0,
        "{run}: the objective did not decrease: {f0} → {f_end}"
    );
    let e = eval(model, run, &dir.join("params.yaml"));
    let close = |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-9;
    assert!(close(&report["objective"], &e["value"]), "{report} vs {e}");
    assert!(close(&report["train_loss"], &e["loss"]), "{report} vs {e}");
    assert!(
        close(&report["test_loss"], &e["test_loss"]),
        "{report} vs {e}"
    );
    let svg = std::fs::read_to_string(dir.join("plot.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn adam_and_nesterov_gd_train_syn_and_agree_with_eval() {
    check_run("examples/syn/rnn.mco", "examples/syn/adam.yaml", 60, &[]);
    check_run("examples/syn/rnn.mco", "examples/syn/gd.yaml", 60, &[]);
}

#[test]
fn adam_and_nesterov_gd_train_sp500_and_agree_with_eval() {
    check_run("examples/sp500/rnn.mco", "examples/sp500/adam.yaml", 4, &[]);
    check_run("examples/sp500/rnn.mco", "examples/sp500/gd.yaml", 4, &[]);
}

#[test]
fn the_same_seed_gives_byte_identical_params_and_another_seed_does_not() {
    let (a, b, c) = (
        support::fresh_dir("det"),
        support::fresh_dir("det"),
        support::fresh_dir("det"),
    );
    let run = "examples/syn/adam.yaml";
    train(run, &a, &["--max-iter", "20", "--seed", "5"]);
    train(run, &b, &["--max-iter", "20", "--seed", "5"]);
    train(run, &c, &["--max-iter", "20", "--seed", "6"]);
    let read = |d: &Path| std::fs::read(d.join("params.yaml")).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Trace rows without the `seconds` column (wall time differs between runs).
fn timeless(dir: &Path) -> Vec<Vec<String>> {
    trace_rows(dir)
        .into_iter()
        .map(|mut r| {
            r.remove(4);
            r
        })
        .collect()
}

#[test]
fn resuming_80_to_200_equals_200_straight_bit_for_bit() {
    for run in ["examples/syn/adam.yaml", "examples/syn/gd.yaml"] {
        let (straight, split) = (support::fresh_dir("resume"), support::fresh_dir("resume"));
        train(run, &straight, &["--max-iter", "200"]);
        train(run, &split, &["--max-iter", "80"]);
        let r = train(run, &split, &["--max-iter", "200", "--resume"]);
        assert_eq!(r["iterations"], 200);
        let read = |d: &Path| std::fs::read(d.join("params.yaml")).unwrap();
        assert_eq!(read(&straight), read(&split), "{run}");
        assert_eq!(timeless(&straight), timeless(&split), "{run}");
        let _ = std::fs::remove_dir_all(straight);
        let _ = std::fs::remove_dir_all(split);
    }
}

#[test]
fn a_real_sigint_checkpoints_exits_130_and_resumes_bit_for_bit() {
    let dir = support::fresh_dir("sigint");
    let run = "examples/syn/adam.yaml";
    let child = support::bin()
        .args([
            "train",
            run,
            "--out",
            s(&dir),
            "--quiet",
            "--max-iter",
            "100000000",
        ])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcopt starts");
    // Wait until it is iterating (the handler is installed before the first step).
    std::thread::sleep(Duration::from_millis(1500));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let t0 = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let report = json(&dir.join("report.json"));
    assert_eq!(report["status"], "interrupted");
    let done = report["iterations"].as_u64().unwrap();
    assert!(done > 0);
    assert_eq!(trace_rows(&dir).len() as u64, done + 2);
    let target = (done + 7).to_string();
    let r = train(run, &dir, &["--max-iter", &target, "--resume"]);
    assert_eq!(
        (r["status"].as_str(), r["iterations"].as_u64()),
        (Some("max_iter"), Some(done + 7))
    );
    let straight = support::fresh_dir("sigint");
    train(run, &straight, &["--max-iter", &target]);
    let read = |d: &Path| std::fs::read(d.join("params.yaml")).unwrap();
    assert_eq!(read(&straight), read(&dir));
    assert_eq!(timeless(&straight), timeless(&dir));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(straight);
}

/// A run file in a scratch directory with absolute model and data paths; `solver` replaces
/// the solver section.
fn run_file(solver: &str, extra: &str) -> (PathBuf, PathBuf) {
    let dir = support::fresh_dir("runfile");
    std::fs::create_dir_all(&dir).unwrap();
    let root = repo().display();
    let text = format!(
        "model: {root}/examples/syn/rnn.mco\n{extra}data:\n  file: {root}/examples/data/syn_T10.csv\n  header: no\n  bind: {{x: 0..5, y: 5..8}}\n  train: 0..8\n  test: 8..10\n{solver}\nseed: 3\nstop: {{max_iter: 5}}\n"
    );
    let path = dir.join("run.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Runs `mcopt train` expecting exit 2, a diagnostic containing each of `needles`, and no
/// output directory.
fn refused(args: &[&str], needles: &[&str]) {
    let out = support::fresh_dir("refused");
    let mut all = vec!["train"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(&out)]);
    let o = mcopt(&all);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    let err = stderr(&o);
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in\n{err}");
    }
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
}

#[test]
fn bad_input_is_exit_2_with_a_diagnostic_and_nothing_written() {
    let (d, p) = run_file("solver: {name: adamm}", "");
    refused(
        &[s(&p)],
        &["unknown solver `adamm`", "did you mean `adam`?"],
    );
    let (d2, p2) = run_file("solver: {name: adam, options: {lr: 0.1, b3: 0.5}}", "");
    refused(
        &[s(&p2)],
        &["solver `adam` has no option `b3`", "run.yaml:8:"],
    );
    let (d3, p3) = run_file("solver:\n  name: gd\n  options:\n    lr: -1", "");
    refused(
        &[s(&p3)],
        &[
            "option `lr` of solver `gd` must be > 0, found -1",
            "run.yaml:11:",
        ],
    );
    let (d4, p4) = run_file("solver: {name: gd, options: {nesterov: yes please}}", "");
    refused(
        &[s(&p4)],
        &["option `nesterov` of solver `gd` expected a boolean"],
    );
    refused(
        &[
            "examples/syn/adam.yaml",
            "--init",
            "/nonexistent/theta.yaml",
        ],
        &["/nonexistent/theta.yaml"],
    );
    for dir in [d, d2, d3, d4] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn resume_refuses_a_changed_run_file_or_a_missing_checkpoint() {
    let (dir, path) = run_file("solver: {name: adam, options: {lr: 0.01}}", "");
    let out = dir.join("out");
    train(s(&path), &out, &[]);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("lr: 0.01", "lr: 0.02");
    std::fs::write(&path, text).unwrap();
    let o = mcopt(&[
        "train",
        s(&path),
        "--out",
        s(&out),
        "--resume",
        "--max-iter",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = support::unwrapped(&stderr(&o));
    assert!(err.contains("different run file"), "{err}");
    let fresh = dir.join("fresh");
    let o = mcopt(&["train", s(&path), "--out", s(&fresh), "--resume"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        support::unwrapped(&stderr(&o)).contains("cannot read the checkpoint"),
        "{}",
        stderr(&o)
    );
    assert!(!fresh.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn init_from_a_point_file_starts_exactly_there() {
    let dir = support::fresh_dir("init");
    let r = train(
        "examples/syn/adam.yaml",
        &dir,
        &[
            "--max-iter",
            "0",
            "--init",
            "examples/data/srpa_syn_theta0.yaml",
        ],
    );
    assert_eq!(r["iterations"], 0);
    let e = eval(
        "examples/syn/rnn.mco",
        "examples/syn/adam.yaml",
        Path::new("examples/data/srpa_syn_theta0.yaml"),
    );
    assert_eq!(r["objective"], e["value"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_third_party_momentum_solver_plugin_trains_from_a_run_file() {
    let lib = common::plugins::lib("mcopt_momentum");
    let plugins = format!("plugins: [{}]\n", lib.display());
    let (dir, path) = run_file(
        "solver: {name: momentum_sgd, options: {lr: 0.05, mu: 0.8}}",
        &plugins,
    );
    let out = dir.join("out");
    let r = train(s(&path), &out, &["--max-iter", "30"]);
    assert_eq!(r["solver"], "momentum_sgd");
    assert!(r["speed"].as_f64().unwrap() > 0.0, "{r}");
    let rows = trace_rows(&out);
    assert_eq!(rows[0].last().unwrap(), "speed");
    let f0: f64 = rows[1][1].parse().unwrap();
    assert!(r["objective"].as_f64().unwrap() < f0);
    // Its options are checked against its schema like the built-in ones.
    let (d2, p2) = run_file("solver: {name: momentum_sgd, options: {mu: 1.5}}", &plugins);
    refused(
        &[s(&p2)],
        &["option `mu` of solver `momentum_sgd` must be in [0, 1), found 1.5"],
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(d2);
}

#[test]
fn a_polyak_subgradient_plugin_trains_with_a_choice_option_and_reports_its_best_iterate() {
    let lib = common::plugins::lib("mcopt_polyak");
    let plugins = format!("plugins: [{}]\n", lib.display());
    let (dir, path) = run_file(
        "solver: {name: polyak, options: {target: adaptive, delta: 0.5, momentum: 0.2}}",
        &plugins,
    );
    let out = dir.join("out");
    let r = train(s(&path), &out, &["--max-iter", "30"]);
    assert_eq!(r["solver"], "polyak");
    // `best` is the trace row with the smallest objective (row 0, the start, included).
    let rows = trace_rows(&out);
    let col = rows[0].iter().position(|c| c == "objective").unwrap();
    let objective = |row: &Vec<String>| row[col].parse::<f64>().unwrap();
    let best = &r["best"];
    let k = best["iteration"].as_u64().unwrap() as usize;
    assert_eq!(rows[1 + k][0], k.to_string(), "{r}");
    let b = best["objective"].as_f64().unwrap();
    assert!(
        (objective(&rows[1 + k]) - b).abs() <= 1e-12 * b.abs(),
        "{r}"
    );
    assert!(
        rows[1..]
            .iter()
            .all(|row| objective(row) >= b * (1.0 - 1e-12)),
        "{r}"
    );
    assert!(b < objective(&rows[1]), "{r}");
    assert!(
        best["train_loss"].is_number() && best["test_loss"].is_number(),
        "{r}"
    );
    // A choice is one of its names.
    let (d2, p2) = run_file("solver: {name: polyak, options: {target: exact}}", &plugins);
    refused(
        &[s(&p2)],
        &["option `target` of solver `polyak` expected one of known, adaptive, found `exact`"],
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(d2);
}

#[test]
fn window_minibatches_train_and_resume_bit_for_bit() {
    let batch = "solver:\n  name: adam\n  options: {lr: 0.01}\n  batch: {window: 3, per_step: 1}";
    let (dir, path) = run_file(batch, "");
    let (straight, split) = (dir.join("straight"), dir.join("split"));
    let r = train(s(&path), &straight, &["--max-iter", "12"]);
    // ⌊8 / 3⌋ = 2 windows per epoch, one gradient each.
    assert_eq!(r["evaluations"]["gradient"], 24, "{r}");
    let rows = trace_rows(&straight);
    assert!(rows[13][1].parse::<f64>().unwrap() < rows[1][1].parse::<f64>().unwrap());
    train(s(&path), &split, &["--max-iter", "5"]);
    train(s(&path), &split, &["--max-iter", "12", "--resume"]);
    let read = |d: &Path| std::fs::read(d.join("params.yaml")).unwrap();
    assert_eq!(read(&straight), read(&split));
    // A window longer than the data, and Armijo with minibatches, are refused up front.
    let (d2, p2) = run_file("solver: {name: adam, batch: {window: 50}}", "");
    refused(
        &[s(&p2)],
        &["a window of 50 time steps is longer than the sequences (8 steps)"],
    );
    let (d3, p3) = run_file(
        "solver: {name: gd, options: {armijo: true}, batch: {window: 2}}",
        "",
    );
    refused(&[s(&p3)], &["option armijo"]);
    for d in [dir, d2, d3] {
        let _ = std::fs::remove_dir_all(d);
    }
}
