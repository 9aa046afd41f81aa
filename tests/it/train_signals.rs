//! `mcopt train` under stop signals, crashes and reruns: SIGTERM and SIGHUP stop after the
//! current iteration, write everything and exit 128 + signal; a periodic checkpoint (run file
//! `checkpoint: {every_iterations}`) survives a SIGKILL and `--resume` continues from it bit for
//! bit; a signal during the final certificate stops it (`interrupted`) with everything written;
//! a checkpoint holding NaN or ∞ is refused; a rerun that fails leaves no file of the previous
//! run behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

fn spawn(args: &[&str]) -> Child {
    support::bin()
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcopt starts")
}

/// A syn run file (Adam) in `dir` with absolute model and data paths and `extra` lines.
fn run_file(dir: &Path, extra: &str) -> PathBuf {
    let root = repo().display();
    let text = format!(
        "model: {root}/examples/syn/rnn.mco\ndata:\n  file: {root}/examples/data/syn_T10.csv\n  header: no\n  bind: {{x: 0..5, y: 5..8}}\n  train: 0..8\n  test: 8..10\nsolver: {{name: adam, options: {{lr: 0.01}}}}\nseed: 3\n{extra}"
    );
    let path = dir.join("run.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `mcopt train RUN --out DIR --quiet EXTRA...`, asserting success; the report.
fn train(run: &Path, dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["train", s(run), "--out", s(dir), "--quiet"];
    args.extend_from_slice(extra);
    let o = mcopt(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    json(&dir.join("report.json"))
}

/// Wait (at most two minutes) until `path` exists.
fn wait_for(path: &Path, child: &mut Child) {
    let t0 = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("mcopt ended ({status}) before {} existed", path.display());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let kill = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
}

/// Trace rows without the `seconds` column (wall time differs between runs).
fn timeless(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    text.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(4);
            f.join(",")
        })
        .collect()
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Start a long run with a checkpoint every 5 iterations and wait for its first checkpoint.
fn start_long(run: &Path, out: &Path) -> Child {
    let mut child = spawn(&[
        "train",
        s(run),
        "--out",
        s(out),
        "--quiet",
        "--max-iter",
        "100000000",
    ]);
    wait_for(&out.join("checkpoint.json"), &mut child);
    child
}

#[test]
fn sigterm_and_sighup_stop_write_everything_and_resume_bit_for_bit() {
    let dir = support::scratch_dir("term");
    let run = run_file(&dir, "checkpoint: {every_iterations: 5}\n");
    for (sig, code) in [("-TERM", 143), ("-HUP", 129)] {
        let out = dir.join(&sig[1..]);
        let child = start_long(&run, &out);
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{sig}: {}", stderr(&o));
        let report = json(&out.join("report.json"));
        assert_eq!(report["status"], "interrupted", "{report}");
        let done = report["iterations"].as_u64().unwrap();
        assert!(done >= 5);
        assert_eq!(timeless(&out).len() as u64, done + 2);
        let cp = json(&out.join("checkpoint.json"));
        assert_eq!(cp["iteration"].as_u64(), Some(done));
        let target = (done + 7).to_string();
        let r = train(&run, &out, &["--max-iter", &target, "--resume"]);
        assert_eq!(r["iterations"].as_u64(), Some(done + 7));
        let straight = dir.join(format!("straight{code}"));
        train(&run, &straight, &["--max-iter", &target]);
        assert_eq!(
            read(straight.join("params.yaml")),
            read(out.join("params.yaml"))
        );
        assert_eq!(timeless(&straight), timeless(&out));
        assert_eq!(read(straight.join("plot.svg")), read(out.join("plot.svg")));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_killed_run_resumes_from_its_periodic_checkpoint_bit_for_bit() {
    let dir = support::scratch_dir("kill");
    let run = run_file(&dir, "checkpoint: {every_iterations: 5}\n");
    let out = dir.join("out");
    let mut child = start_long(&run, &out);
    // Let it run past a few more checkpoints and trace flushes, then kill it hard.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();
    let cp = json(&out.join("checkpoint.json"));
    let at = cp["iteration"].as_u64().unwrap();
    assert!(at >= 5 && at % 5 == 0, "{at}");
    // The checkpoint keeps the trace's length, not the trace.
    assert!(cp.get("trace").is_some_and(|t| t["rows"] == at + 1), "{cp}");
    let target = (at + 12).to_string();
    let r = train(&run, &out, &["--max-iter", &target, "--resume"]);
    assert_eq!(r["iterations"].as_u64(), Some(at + 12));
    let straight = dir.join("straight");
    train(&run, &straight, &["--max-iter", &target]);
    assert_eq!(
        read(straight.join("params.yaml")),
        read(out.join("params.yaml"))
    );
    assert_eq!(timeless(&straight), timeless(&out));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_checkpoint_key_is_checked_at_its_line() {
    let dir = support::scratch_dir("every");
    for (bad, needle) in [
        (
            "checkpoint: {every_iterations: 0}\n",
            "expected `checkpoint.every_iterations` to be at least 1, found 0",
        ),
        (
            "checkpoint: {every_seconds: -1}\n",
            "expected `checkpoint.every_seconds` to be a positive number of seconds, found -1",
        ),
        ("checkpoint: {each: 3}\n", "unknown key `checkpoint.each`"),
    ] {
        let run = run_file(&dir, bad);
        let o = mcopt(&["train", s(&run), "--out", s(&dir.join("out"))]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = stderr(&o);
        assert!(err.contains(needle), "{bad}: {err}");
        assert!(err.contains("run.yaml:10:"), "{bad}: {err}");
        assert!(!dir.join("out").exists());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A model whose certificate (second order, 2^8 pieces at the zero start) takes long.
fn slow_certificate(dir: &Path) -> PathBuf {
    let model = "data x: seq(vec(5))\nparam w: vec(8)\nparam v: vec(20)\nminimize 0 * mean(t, sqnorm(x[t])) + sqnorm(relu(w) + 1) + sqnorm(v)\n";
    std::fs::write(dir.join("kinks.mco"), model).unwrap();
    let root = repo().display();
    let text = format!(
        "model: kinks.mco\ndata:\n  file: {root}/examples/data/syn_T10.csv\n  header: no\n  bind: {{x: 0..5}}\nsolver: {{name: gd, options: {{lr: 0.1}}}}\ninit: zeros\nstop: {{max_iter: 0}}\nvalidate: {{order: 2}}\n"
    );
    let path = dir.join("run.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_signal_during_the_final_certificate_stops_it_and_writes_everything() {
    let dir = support::scratch_dir("cert");
    let run = slow_certificate(&dir);
    let out = dir.join("out");
    let mut child = spawn(&["train", s(&run), "--out", s(&out), "--quiet"]);
    // params.yaml is written just before the certificate starts.
    wait_for(&out.join("params.yaml"), &mut child);
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let report = json(&out.join("report.json"));
    assert_eq!(report["status"], "max_iter", "{report}");
    let cert = &report["certificate"];
    assert!(
        cert["first_order"]["status"] == "interrupted"
            || cert["second_order"]["status"] == "interrupted",
        "{report}"
    );
    // First order is one max-type problem (decided at once); the enumeration of second order
    // is what the signal stops, and it is never reported as complete.
    assert_ne!(cert["second_order"]["status"], "stationary", "{report}");
    for f in ["checkpoint.json", "trace.csv", "plot.svg", "params.yaml"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Replace the `n`-th (0-based) 16-hex-digit value of the checkpoint's `key` array.
fn poke_hex(cp: &Path, key: &str, n: usize, hex: &str) {
    let mut doc = json(cp);
    doc[key][n] = Value::String(hex.into());
    std::fs::write(cp, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

#[test]
fn a_checkpoint_holding_nan_or_infinity_is_refused_naming_it() {
    let dir = support::scratch_dir("nan");
    let run = run_file(&dir, "");
    let out = dir.join("out");
    train(&run, &out, &["--max-iter", "5"]);
    let cp = out.join("checkpoint.json");
    let good = read(cp.clone());
    let resume = || {
        mcopt(&[
            "train",
            s(&run),
            "--out",
            s(&out),
            "--resume",
            "--max-iter",
            "9",
        ])
    };
    for (key, hex) in [("x", "7ff8000000000000"), ("x", "fff0000000000000")] {
        std::fs::write(&cp, &good).unwrap();
        poke_hex(&cp, key, 2, hex);
        let o = resume();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("checkpoint.json"), "{err}");
        assert!(err.contains("non-finite"), "{err}");
    }
    // Adam's state: k (8 bytes), then m (length, values): the first value of m set to +∞.
    std::fs::write(&cp, &good).unwrap();
    let mut doc = json(&cp);
    let blob = doc["solver_state"].as_str().unwrap().to_string();
    let poked = format!("{}{}{}", &blob[..32], "000000000000f07f", &blob[48..]);
    doc["solver_state"] = Value::String(poked);
    std::fs::write(&cp, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let o = resume();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("checkpoint.json") && err.contains("non-finite"),
        "{err}"
    );
    // The intact checkpoint still resumes.
    std::fs::write(&cp, &good).unwrap();
    assert!(resume().status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_rerun_leaves_no_file_of_the_previous_run() {
    let dir = support::scratch_dir("mixed");
    let good = run_file(&dir, "");
    let out = dir.join("out");
    train(&good, &out, &["--max-iter", "20"]);
    let names = [
        "params.yaml",
        "trace.csv",
        "plot.svg",
        "report.json",
        "checkpoint.json",
    ];
    let before: Vec<Vec<u8>> = names.iter().map(|n| read(out.join(n))).collect();
    // gd with lr 3 diverges on syn: the run does not succeed.
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(&good).unwrap().replace(
        "{name: adam, options: {lr: 0.01}}",
        "{name: gd, options: {lr: 3}}",
    );
    std::fs::write(&bad, text).unwrap();
    let o = mcopt(&[
        "train",
        s(&bad),
        "--out",
        s(&out),
        "--quiet",
        "--max-iter",
        "100",
    ]);
    assert!(!o.status.success(), "{}", stderr(&o));
    let report = json(&out.join("report.json"));
    assert_eq!(report["solver"], "gd", "{report}");
    assert_ne!(report["status"], "max_iter", "{report}");
    for (name, old) in names.iter().zip(&before) {
        if let Ok(now) = std::fs::read(out.join(name)) {
            assert_ne!(&now, old, "{name} of the first run was left behind");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
