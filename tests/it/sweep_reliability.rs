//! `mcopt sweep` under stress (issue 15): seed ranges too large to allocate, inputs that are
//! devices or FIFOs, two workers on one directory, stop signals forwarded to the running
//! entries (and the resumed entry equal to a straight run), an entry that fails alone, failure
//! messages that show the diagnostic, and job files that no option value can inject into.
//! Linux only: the tests read `/proc` and make FIFOs.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use support::mcopt;

use support::path_str as s;

/// Write `body` as `DIR/sweep.yaml` and plan it into `DIR/<name>`.
fn plan_body(dir: &Path, body: &str, name: &str) -> PathBuf {
    let sweep = dir.join("sweep.yaml");
    std::fs::write(&sweep, body).unwrap();
    let out = dir.join(name);
    let o = mcopt(&["sweep", "plan", s(&sweep), "--out", s(&out), "--json"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    out
}

/// `n` entries (one setting, seeds 1..=n) of Adam on syn, `iters` epochs each.
fn planned(tag: &str, iters: usize, n: usize) -> (PathBuf, PathBuf) {
    let dir = support::syn_copy(tag);
    let seeds: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let body = format!(
        "base: syn/adam.yaml\nfixed:\n  stop.max_iter: {iters}\nseeds: [{}]\n",
        seeds.join(", ")
    );
    let out = plan_body(&dir, &body, "planned");
    (dir, out)
}

fn spawn(args: &[&str]) -> Child {
    support::bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `mcopt args..` under a 1 GiB address-space limit, so a command that tries to allocate
/// gigabytes fails (instead of taking the machine's memory) and one that counts first passes.
fn mcopt_limited(args: &[&str]) -> support::Run {
    let mut all = vec![
        "-c",
        "ulimit -v 1048576; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_mcopt"),
    ];
    all.extend_from_slice(args);
    let out = Command::new("sh").args(&all).output().unwrap();
    support::Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        written: Vec::new(),
    }
}

/// Wait for a child, killing it after `limit` (a guard against a hang, not a timing assertion).
fn wait_or_kill(mut child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the command hung (killed after {limit:?}): {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn state_of(out: &Path, index: usize) -> Value {
    std::fs::read_to_string(out.join(format!("runs/{index:04}/state.json")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// Whether process `pid` has a handler installed for `sig` (Linux: `SigCgt` in /proc).
fn catches(pid: u64, sig: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// The train process of a running entry once it handles `sig` (so it is past its start-up).
fn running_train(out: &Path, index: usize, sig: u32, what: &str) -> u64 {
    let start = Instant::now();
    loop {
        let st = state_of(out, index);
        assert!(
            st["state"] != "done" && st["state"] != "failed",
            "entry {index} ended before it ran with a handler for signal {sig} ({what}); state {st}"
        );
        if st["state"] == "running" {
            let pid = st["pid"].as_u64().unwrap();
            if catches(pid, sig) {
                return pid;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "entry {index} never ran with a handler for signal {sig} ({what}); state {st}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: u64, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn expect_plan_error(dir: &Path, body: &str, code: &str, line: u64) {
    let sweep = dir.join("sweep.yaml");
    std::fs::write(&sweep, body).unwrap();
    let out = dir.join("planned");
    let o = mcopt_limited(&["sweep", "plan", s(&sweep), "--out", s(&out), "--json"]);
    assert_eq!(o.code, Some(2), "{body}\n{o:#?}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|_| panic!("{o:#?}"));
    let diags = v["diagnostics"].as_array().cloned().unwrap_or_default();
    assert!(
        diags
            .iter()
            .any(|d| d["code"] == code && d["line"].as_u64() == Some(line)),
        "expected {code} at line {line} for\n{body}\n{o:#?}"
    );
    assert!(!out.exists(), "nothing may be written");
}

// ---- item 2: counts before allocation ----

#[test]
fn seed_ranges_and_grids_too_large_are_refused_before_allocating() {
    let dir = support::syn_copy("huge");
    let base = "base: syn/adam.yaml\ngrid:\n  solver.options.lr: [0.01, 0.003]\n";
    for seeds in [
        "\"0..18446744073709551615\"",
        "\"0..1000000000\"",
        "1000000000",
        "18446744073709551615",
        "{from: 0, count: 1000000000000}",
    ] {
        let body = format!("{base}seeds: {seeds}\n");
        expect_plan_error(&dir, &body, "mcopt::sweep::too_large", 4);
    }
    // A random search whose size overflows together with the grid.
    let body = format!(
        "{base}random:\n  n: 18446744073709551615\n  space:\n    init: {{choice: [glorot]}}\n"
    );
    expect_plan_error(&dir, &body, "mcopt::sweep::too_large", 5);
    // A grid of 7 axes × 10 values (10⁷ settings), without seeds.
    let axis: Vec<String> = (0..10).map(|i| format!("{}", i + 1)).collect();
    let mut body = String::from("base: syn/adam.yaml\ngrid:\n");
    for k in 0..7 {
        body.push_str(&format!("  consts.c{k}: [{}]\n", axis.join(", ")));
    }
    expect_plan_error(&dir, &body, "mcopt::sweep::too_large", 2);
    // A seed range past the largest seed.
    let body = format!("{base}seeds: {{from: 18446744073709551615, count: 2}}\n");
    expect_plan_error(&dir, &body, "mcopt::sweep::seeds", 4);
}

// ---- item 23 (sweep part): fixed overrides over seeds ----

#[test]
fn fixed_overrides_over_seeds_are_one_setting() {
    let dir = support::syn_copy("fixed");
    let out = plan_body(
        &dir,
        "base: syn/adam.yaml\nfixed:\n  stop.max_iter: 3\nseeds: 4\n",
        "planned",
    );
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["settings"], 1, "{m}");
    let entries = m["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seed"], i as u64);
        assert_eq!(e["overrides"]["stop.max_iter"], 3);
    }
}

// ---- item 12: hashing inputs with the caps, no devices or FIFOs ----

#[test]
fn plan_refuses_devices_and_fifos_among_its_inputs() {
    let dir = support::syn_copy("devices");
    let adam = std::fs::read_to_string(dir.join("syn/adam.yaml")).unwrap();
    let fifo = dir.join("data/fifo.csv");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for (i, data) in ["/dev/zero", s(&fifo)].into_iter().enumerate() {
        let run = dir.join(format!("syn/run{i}.yaml"));
        std::fs::write(&run, adam.replace("../data/syn_T10.csv", data)).unwrap();
        let sweep = dir.join("sweep.yaml");
        std::fs::write(
            &sweep,
            format!("base: syn/run{i}.yaml\ngrid:\n  solver.options.lr: [0.01]\n"),
        )
        .unwrap();
        let out = dir.join("planned");
        let mut all = vec![
            "-c",
            "ulimit -v 1048576; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_mcopt"),
        ];
        all.extend_from_slice(&["sweep", "plan", s(&sweep), "--out", s(&out)]);
        let child = Command::new("sh")
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_or_kill(child, Duration::from_secs(60));
        let stderr = support::unwrapped(&String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(2), "{data}: {o:?}");
        assert!(stderr.contains("not a regular file"), "{data}: {stderr}");
        assert!(!out.exists());
    }
}

// ---- item 13: two workers on one directory share the work ----

#[test]
fn two_concurrent_runs_train_each_entry_once() {
    let (_, out) = planned("concurrent", 300, 6);
    let a = spawn(&["sweep", "run", s(&out), "--jobs", "2", "--json"]);
    let b = spawn(&["sweep", "run", s(&out), "--jobs", "2", "--json"]);
    let a = wait_or_kill(a, Duration::from_secs(600));
    let b = wait_or_kill(b, Duration::from_secs(600));
    assert_eq!(a.status.code(), Some(0), "{a:?}");
    assert_eq!(b.status.code(), Some(0), "{b:?}");
    let ran = |o: &std::process::Output| -> Vec<u64> {
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["ran"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect()
    };
    let mut all = ran(&a);
    all.extend(ran(&b));
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3, 4, 5], "every entry trained exactly once");
    let status = mcopt(&["sweep", "status", s(&out), "--json"]).json();
    assert_eq!(status["done"], 6, "{status}");
}

// ---- item 14: stop signals ----

#[test]
fn a_stopped_sweep_run_stops_its_entries_and_marks_them_interrupted() {
    let (_, out) = planned("sigint", 400_000, 3);
    let pool = spawn(&["sweep", "run", s(&out), "--jobs", "2", "--json"]);
    let t0 = running_train(&out, 0, 2, "SIGINT");
    let t1 = running_train(&out, 1, 2, "SIGINT");
    // Only the worker gets the signal (as from `kill`, or Kubernetes stopping its pod).
    signal(u64::from(pool.id()), "INT");
    let o = wait_or_kill(pool, Duration::from_secs(120));
    let children_alive = [t0, t1].into_iter().filter(|p| alive(*p)).count();
    for p in [t0, t1] {
        if alive(p) {
            let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
        }
    }
    assert_eq!(children_alive, 0, "the entries' train processes still run");
    assert_eq!(o.status.code(), Some(130), "{o:?}");
    for i in [0, 1] {
        let st = state_of(&out, i);
        assert_eq!(st["state"], "interrupted", "entry {i}: {st}");
        assert!(
            out.join(format!("runs/{i:04}/checkpoint.json")).exists(),
            "entry {i} wrote its checkpoint"
        );
    }
    assert_eq!(state_of(&out, 2), Value::Null, "entry 2 never started");
    let status = mcopt(&["sweep", "status", s(&out), "--json"]).json();
    assert_eq!(status["interrupted"], 2, "{status}");
    assert_eq!(status["running"], 0, "{status}");
}

#[test]
fn a_stale_running_entry_is_not_running_and_runs_again() {
    let (_, out) = planned("stale", 5, 2);
    // A `running` state left by a process that is gone (its pid is that of a finished child).
    let gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    let mut gone = gone;
    gone.wait().unwrap();
    let entry = mcopt(&["sweep", "run", s(&out), "--index", "0", "--json"]);
    assert_eq!(entry.code, Some(0), "{entry:#?}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let hash = manifest["entries"][1]["hash"].as_str().unwrap();
    std::fs::write(
        out.join("runs/0001/state.json"),
        format!("{{\"state\": \"running\", \"pid\": {pid}, \"hash\": \"{hash}\"}}"),
    )
    .unwrap();
    let status = mcopt(&["sweep", "status", s(&out), "--json"]).json();
    assert_eq!(status["running"], 0, "{status}");
    assert_eq!(status["interrupted"], 1, "{status}");
    let o = mcopt(&["sweep", "run", s(&out), "--jobs", "1", "--json"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert_eq!(o.json()["ran"], serde_json::json!([1]), "{o:#?}");
}

#[test]
fn in_a_slurm_job_the_signal_slurm_sends_every_process_reaches_the_train_once() {
    let (_, out) = planned("slurm-signal", 400_000, 1);
    let worker = support::bin()
        .args(["sweep", "run", s(&out), "--index", "0", "--json"])
        .env("SLURM_JOB_ID", "42")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let train = running_train(&out, 0, 2, "SIGINT");
    // Slurm signals every process of the job: the worker and its train alike.
    signal(train, "INT");
    signal(u64::from(worker.id()), "INT");
    let o = wait_or_kill(worker, Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(130), "{o:?}");
    assert_eq!(state_of(&out, 0)["state"], "interrupted");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("runs/0000/report.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["status"], "interrupted",
        "train stopped once, with its outputs: {report}"
    );
    assert!(out.join("runs/0000/checkpoint.json").exists());
}

/// Item 7, sweep part: the worker of an entry stopped by `sig` mid-run; the next `sweep run`
/// resumes the entry from its checkpoint, and its params and trace equal a straight run's.
fn stopped_entry_resumes_like_a_straight_run(sig: &str, signo: u32) {
    let iters = 60_000;
    let (dir, straight) = planned(&format!("resume-{sig}"), iters, 1);
    let body = std::fs::read_to_string(dir.join("sweep.yaml")).unwrap();
    let stopped = plan_body(&dir, &body, "stopped");
    let o = mcopt(&["sweep", "run", s(&straight), "--index", "0", "--json"]);
    assert_eq!(o.code, Some(0), "{o:#?}");

    let worker = spawn(&["sweep", "run", s(&stopped), "--index", "0", "--json"]);
    running_train(
        &stopped,
        0,
        signo,
        "mcopt train must handle this signal: SIGTERM needs train's item 7",
    );
    signal(u64::from(worker.id()), sig);
    let o = wait_or_kill(worker, Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(128 + signo as i32), "{o:?}");
    assert_eq!(state_of(&stopped, 0)["state"], "interrupted");

    let o = mcopt(&["sweep", "run", s(&stopped), "--index", "0", "--json"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert_eq!(o.json()["resumed"], true, "{o:#?}");
    let params = |d: &Path| std::fs::read(d.join("runs/0000/params.yaml")).unwrap();
    assert!(
        params(&straight) == params(&stopped),
        "params differ from the straight run's"
    );
    let (a, b) = (timeless_trace(&straight), timeless_trace(&stopped));
    assert_eq!(
        a.len(),
        iters + 2,
        "header, iterate 0 and one row per iteration"
    );
    assert!(a == b, "the trace differs from the straight run's");
}

/// The rows of an entry's trace.csv without the `seconds` column (wall time differs).
fn timeless_trace(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("runs/0000/trace.csv")).unwrap();
    let header = text.lines().next().unwrap();
    let at = header.split(',').position(|h| h == "seconds").unwrap();
    text.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, c)| c.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn an_entry_stopped_by_sigint_resumes_like_a_straight_run() {
    stopped_entry_resumes_like_a_straight_run("INT", 2);
}

/// Needs `mcopt train` to handle SIGTERM like SIGINT (issue 15, item 7, train part).
#[test]
fn an_entry_stopped_by_sigterm_resumes_like_a_straight_run() {
    stopped_entry_resumes_like_a_straight_run("TERM", 15);
}

// ---- item 15: an entry fails alone ----

#[test]
fn a_deleted_entry_directory_fails_alone() {
    let (_, out) = planned("deleted", 3, 6);
    std::fs::remove_dir_all(out.join("runs/0003")).unwrap();
    let o = mcopt(&["sweep", "run", s(&out), "--jobs", "1", "--json"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    let v = o.json();
    assert_eq!(v["ran"], serde_json::json!([0, 1, 2, 4, 5]), "{v}");
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["index"], 3);
    assert!(
        failed[0]["message"].as_str().unwrap().contains("run.yaml"),
        "{v}"
    );
}

#[test]
fn an_entry_directory_removed_mid_run_is_not_done() {
    let (_, out) = planned("removed", 400_000, 1);
    let worker = spawn(&["sweep", "run", s(&out), "--index", "0", "--json"]);
    let train = running_train(&out, 0, 2, "SIGINT");
    std::fs::remove_dir_all(out.join("runs/0000")).unwrap();
    // Stop the train process early (it would run for minutes); the entry is gone either way.
    signal(train, "INT");
    let o = wait_or_kill(worker, Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "failed", "{v}");
    assert!(v["message"].as_str().unwrap().contains("removed"), "{v}");
    let status = mcopt(&["sweep", "status", s(&out), "--json"]).json();
    assert_eq!(status["done"], 0, "{status}");
}

// ---- item 16: failure reports ----

#[test]
fn failures_show_the_diagnostic_in_run_status_and_collect() {
    let dir = support::syn_copy("failures");
    let out = plan_body(
        &dir,
        "base: syn/adam.yaml\nfixed:\n  stop.max_iter: 3\ngrid:\n  solver.name: [adam, nosuch]\nseeds: [1, 2]\n",
        "planned",
    );
    let o = mcopt(&["sweep", "run", s(&out), "--jobs", "1", "--json"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    let v = o.json();
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{v}");
    for f in failed {
        let m = f["message"].as_str().unwrap();
        assert!(m.contains("unknown solver `nosuch`"), "{v}");
    }
    // Text: the pool prints the diagnostic's message.
    let o = mcopt(&["sweep", "run", s(&out), "--index", "2"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(o.stdout.contains("unknown solver `nosuch`"), "{o:#?}");

    let status = mcopt(&["sweep", "status", s(&out), "--json"]).json();
    assert_eq!(status["failed"], 2, "{status}");
    let entries = status["failed_entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{status}");
    assert_eq!(entries[0]["index"], 2);
    assert_eq!(entries[0]["exit_code"], 2);
    assert!(entries[0]["message"]
        .as_str()
        .unwrap()
        .contains("unknown solver `nosuch`"));
    let text = mcopt(&["sweep", "status", s(&out)]);
    assert!(text.stdout.contains("entry 3"), "{text:#?}");
    assert!(text.stdout.contains("unknown solver `nosuch`"), "{text:#?}");

    // An unreadable report is warned about and counted; one seed has no standard deviation.
    std::fs::write(out.join("runs/0001/report.json"), "{ not json").unwrap();
    let o = mcopt(&["sweep", "collect", s(&out), "--json"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert!(o.stderr.contains("warning"), "{o:#?}");
    assert!(o.stderr.contains("runs/0001/report.json"), "{o:#?}");
    let v = o.json();
    assert_eq!(v["unreadable_reports"], 1, "{v}");
    let row = &v["settings"][0];
    assert_eq!(row["runs"], 1, "{v}");
    assert!(row["test_loss_mean"].is_number(), "{v}");
    assert!(row["test_loss_std"].is_null(), "{v}");
    let o = mcopt(&["sweep", "collect", s(&out)]);
    assert!(o.stdout.contains("± n/a"), "{o:#?}");
    assert!(!o.stdout.contains("± 0.000000"), "{o:#?}");
}

// ---- item 17: job files ----

#[test]
fn slurm_and_kubernetes_values_cannot_inject() {
    let dir = support::syn_copy("inject");
    let out = plan_body(
        &dir,
        "base: syn/adam.yaml\nfixed:\n  stop.max_iter: 3\nseeds: 2\n",
        "with space",
    );
    for (opt, value) in [
        ("--time", "10:00\n#SBATCH --wrap=rm"),
        ("--time", "10:00 --wrap=rm"),
        ("--partition", "short\r"),
        ("--partition", "a\"b"),
    ] {
        let o = mcopt(&["sweep", "slurm", s(&out), opt, value]);
        assert_eq!(o.code, Some(2), "{opt} {value:?}: {o:#?}");
        assert!(o.stderr.contains(opt), "{o:#?}");
        assert!(!out.join("sweep.sbatch").exists());
    }
    let o = mcopt(&["sweep", "slurm", s(&out), "--time", "10:00"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let script = std::fs::read_to_string(out.join("sweep.sbatch")).unwrap();
    let logs = format!("#SBATCH --output=\"{}/slurm/%A_%a.out\"", s(&out));
    assert!(script.lines().any(|l| l == logs), "{logs} in\n{script}");
    let exec = script.lines().last().unwrap();
    assert!(
        exec.ends_with(&format!(" sweep run '{}'", s(&out))),
        "{script}"
    );
    for l in script.lines().filter(|l| l.starts_with("#SBATCH")) {
        assert!(!l.contains("--wrap"), "{script}");
    }

    // Kubernetes: control characters are refused, anything else is a quoted value.
    let o = mcopt(&["sweep", "k8s", s(&out), "--image", "img\n  evil: 1"]);
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert!(o.stderr.contains("--image"), "{o:#?}");
    let image = "reg.example/x:1\", \"rm";
    let o = mcopt(&["sweep", "k8s", s(&out), "--image", image, "--claim", "a: b"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let body = std::fs::read_to_string(out.join("k8s-job.yaml")).unwrap();
    let job: serde_norway::Value = serde_norway::from_str(&body).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"].as_str(), Some(image));
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(),
        Some("a: b")
    );
}
