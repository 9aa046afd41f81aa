//! `trace: {every: k}` (issue 20): the test loss and the trace row every k iterations, and
//! always row 0, the final iterate and each checkpoint's; the values at the rows written, the
//! final measures and the best iterate are those of a run that traces every iteration, also
//! across `--resume`; a bad value is a diagnostic at the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support;
use support::{path_str as s, read_json as json, stderr_of as stderr};

/// A syn run file in `dir` with absolute model and data paths, `solver` and more top-level
/// keys `extra`.
fn syn_run(dir: &Path, name: &str, solver: &str, extra: &str) -> PathBuf {
    let root = support::repo();
    let root = root.display();
    let text = format!(
        "model: {root}/examples/syn/rnn.mco\ndata:\n  file: {root}/examples/data/syn_T10.csv\n  header: no\n  bind: {{x: 0..5, y: 5..8}}\n  train: 0..8\n  test: 8..10\n{solver}\ninit: {{scheme: gaussian, std: 0.1}}\nseed: 123456\nform: {{p1: {{beta: 1.0}}}}\n{extra}"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const ADAM: &str = "solver: {name: adam, options: {lr: 0.01}}";
/// Adam with a step so long that the objective goes up at iteration 10 of syn: the best
/// iterate (9) is not the final one.
const ADAM_LONG: &str = "solver: {name: adam, options: {lr: 0.3}}";

/// `mcopt train RUN --out OUT --quiet ARGS..` in `dir`, which must succeed.
fn train(dir: &Path, run: &Path, out: &str, args: &[&str]) -> Output {
    let mut a = vec!["train", s(run), "--out", out, "--quiet"];
    a.extend_from_slice(args);
    let o = support::bin()
        .args(&a)
        .current_dir(dir)
        .output()
        .expect("mcopt runs");
    assert!(o.status.success(), "{a:?}: {}", stderr(&o));
    o
}

/// The rows of a trace by iteration (each row's fields, empty ones `None`).
fn rows(path: &Path) -> BTreeMap<u64, Vec<Option<f64>>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let v: Vec<Option<f64>> = line
            .split(',')
            .map(|f| (!f.is_empty()).then(|| f.parse::<f64>().unwrap()))
            .collect();
        let iter = v[0].unwrap() as u64;
        assert!(out.insert(iter, v).is_none(), "row {iter} written twice");
    }
    out
}

/// Every row of `sparse` equals the row of the same iteration in `full`, bit for bit, but for
/// the wall-clock `seconds` (column 4).
fn same_rows(sparse: &BTreeMap<u64, Vec<Option<f64>>>, full: &BTreeMap<u64, Vec<Option<f64>>>) {
    for (iter, row) in sparse {
        let other = &full[iter];
        assert_eq!(row.len(), other.len());
        for (j, (a, b)) in row.iter().zip(other).enumerate() {
            if j != 4 {
                assert_eq!(
                    a.map(f64::to_bits),
                    b.map(f64::to_bits),
                    "row {iter}, column {j}"
                );
            }
        }
        assert!(row[3].is_some(), "row {iter} has its test loss");
    }
}

/// The measures of the final and the best iterate in two reports agree bit for bit.
fn same_report(a: &Value, b: &Value) {
    for key in [
        "iterations",
        "objective",
        "train_loss",
        "test_loss",
        "best",
        "status",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert!(a["best"]["test_loss"].is_number(), "{}", a["best"]);
}

fn iters(rows: &BTreeMap<u64, Vec<Option<f64>>>) -> Vec<u64> {
    rows.keys().copied().collect()
}

#[test]
fn every_k_writes_every_kth_row_and_the_final_one_with_the_values_of_every_row() {
    let dir = support::scratch_dir("trace-every");
    let all = syn_run(&dir, "all.yaml", ADAM_LONG, "");
    let one = syn_run(&dir, "one.yaml", ADAM_LONG, "trace: {every: 1}\n");
    let four = syn_run(&dir, "four.yaml", ADAM_LONG, "trace: {every: 4}\n");
    train(&dir, &all, "all", &["--max-iter", "10"]);
    train(&dir, &one, "one", &["--max-iter", "10"]);
    train(&dir, &four, "four", &["--max-iter", "10"]);
    let full = rows(&dir.join("all/trace.csv"));
    assert_eq!(iters(&full), (0..=10).collect::<Vec<_>>());
    // `every: 1` is the default, exactly.
    same_rows(&rows(&dir.join("one/trace.csv")), &full);
    assert_eq!(iters(&rows(&dir.join("one/trace.csv"))), iters(&full));
    let sparse = rows(&dir.join("four/trace.csv"));
    assert_eq!(
        iters(&sparse),
        [0, 4, 8, 10],
        "row 0, every 4th, the final one"
    );
    same_rows(&sparse, &full);
    let (a, b) = (
        json(&dir.join("all/report.json")),
        json(&dir.join("four/report.json")),
    );
    same_report(&b, &a);
    // The best iterate is not a row of the sparse trace: its test loss was measured for it.
    let best = b["best"]["iteration"].as_u64().unwrap();
    assert!(!sparse.contains_key(&best), "best {best}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_checkpoint_iterate_is_a_trace_row() {
    let dir = support::scratch_dir("trace-every-cp");
    let all = syn_run(&dir, "all.yaml", ADAM, "");
    let run = syn_run(
        &dir,
        "run.yaml",
        ADAM,
        "trace: {every: 4}\ncheckpoint: {every_iterations: 3}\n",
    );
    train(&dir, &all, "all", &["--max-iter", "10"]);
    train(&dir, &run, "o", &["--max-iter", "10"]);
    let sparse = rows(&dir.join("o/trace.csv"));
    assert_eq!(iters(&sparse), [0, 3, 4, 6, 8, 9, 10]);
    same_rows(&sparse, &rows(&dir.join("all/trace.csv")));
    same_report(
        &json(&dir.join("o/report.json")),
        &json(&dir.join("all/report.json")),
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn resume_continues_a_trace_written_every_k() {
    let dir = support::scratch_dir("trace-every-resume");
    let all = syn_run(&dir, "all.yaml", ADAM, "");
    let run = syn_run(&dir, "run.yaml", ADAM, "trace: {every: 3}\n");
    train(&dir, &all, "all", &["--max-iter", "11"]);
    train(&dir, &run, "o", &["--max-iter", "5"]);
    assert_eq!(iters(&rows(&dir.join("o/trace.csv"))), [0, 3, 5]);
    let cp = json(&dir.join("o/checkpoint.json"));
    assert_eq!(cp["trace"]["rows"], 3, "{}", cp["trace"]);
    assert_eq!(cp["trace"]["skipped"]["iterations"], 3, "{}", cp["trace"]);
    train(&dir, &run, "o", &["--max-iter", "11", "--resume"]);
    let sparse = rows(&dir.join("o/trace.csv"));
    assert_eq!(iters(&sparse), [0, 3, 5, 6, 9, 11]);
    same_rows(&sparse, &rows(&dir.join("all/trace.csv")));
    same_report(
        &json(&dir.join("o/report.json")),
        &json(&dir.join("all/report.json")),
    );
    // Resumed once more with nothing left to do: no row is repeated (`rows` checks).
    train(&dir, &run, "o", &["--max-iter", "11", "--resume"]);
    assert_eq!(iters(&rows(&dir.join("o/trace.csv"))), [0, 3, 5, 6, 9, 11]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn srpa_counts_its_steps_between_rows_and_across_a_resume() {
    let dir = support::scratch_dir("trace-every-srpa");
    let srpa = "solver: {name: srpa}";
    let all = syn_run(&dir, "all.yaml", srpa, "");
    let run = syn_run(&dir, "run.yaml", srpa, "trace: {every: 4}\n");
    train(&dir, &all, "all", &["--max-iter", "6"]);
    train(&dir, &run, "o", &["--max-iter", "3"]);
    train(&dir, &run, "o", &["--max-iter", "6", "--resume"]);
    let sparse = rows(&dir.join("o/trace.csv"));
    assert_eq!(iters(&sparse), [0, 3, 4, 6]);
    same_rows(&sparse, &rows(&dir.join("all/trace.csv")));
    let (a, b) = (
        json(&dir.join("all/report.json")),
        json(&dir.join("o/report.json")),
    );
    same_report(&b, &a);
    assert_eq!(
        a["accepted"].as_u64().unwrap() + a["rejected"].as_u64().unwrap(),
        6
    );
    assert_eq!(
        (&b["accepted"], &b["rejected"]),
        (&a["accepted"], &a["rejected"])
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_trace_every_is_a_diagnostic_at_the_key() {
    let dir = support::scratch_dir("trace-every-bad");
    for (i, (value, needles)) in [
        ("{every: 0}", &["trace.every", "at least 1", ":12:"][..]),
        (
            "{every: -2}",
            &["trace.every", "non-negative integer", ":12:"][..],
        ),
        ("{every: 1.5}", &["trace.every", ":12:"][..]),
        ("{evry: 2}", &["evry", ":12:"][..]),
        ("4", &["trace", ":12:"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let run = syn_run(
            &dir,
            &format!("bad{i}.yaml"),
            ADAM,
            &format!("trace: {value}\n"),
        );
        let o = support::bin()
            .args(["train", s(&run), "--out", "o", "--quiet"])
            .current_dir(&dir)
            .output()
            .expect("mcopt runs");
        let err = support::unwrapped(&stderr(&o));
        assert_eq!(o.status.code(), Some(2), "{value}: {err}");
        for n in needles {
            assert!(err.contains(n), "{value}: `{n}` not in\n{err}");
        }
        assert!(!dir.join("o").exists(), "nothing is written");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_diverged_run_traces_its_last_finite_iterate() {
    let dir = support::scratch_dir("trace-every-diverge");
    let gd = "solver: {name: gd, options: {lr: 3}}";
    let all = syn_run(&dir, "all.yaml", gd, "stop: {max_iter: 20}\n");
    let run = syn_run(
        &dir,
        "run.yaml",
        gd,
        "trace: {every: 4}\nstop: {max_iter: 20}\n",
    );
    for (r, out) in [(&all, "all"), (&run, "o")] {
        let o = support::bin()
            .args(["train", s(r), "--out", out, "--quiet"])
            .current_dir(&dir)
            .output()
            .expect("mcopt runs");
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    }
    let (a, b) = (
        json(&dir.join("all/report.json")),
        json(&dir.join("o/report.json")),
    );
    assert_eq!(b["status"], "diverged", "{b}");
    same_report(&b, &a);
    let last = b["iterations"].as_u64().unwrap();
    let sparse = rows(&dir.join("o/trace.csv"));
    assert_eq!(
        sparse.keys().next_back(),
        Some(&last),
        "{:?}",
        iters(&sparse)
    );
    assert!(sparse.keys().all(|i| i % 4 == 0 || *i == last));
    same_rows(&sparse, &rows(&dir.join("all/trace.csv")));
    let _ = std::fs::remove_dir_all(dir);
}
