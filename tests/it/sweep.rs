//! `mcopt sweep` end to end: planning (manifest, run files, bad input with its key and line),
//! a local pool of 2 workers, idempotent re-runs, a worker killed mid-run and the re-run that
//! only runs what is missing, a changed input refused by its hash, the ranked table, the
//! Kubernetes manifest, and the same sweep through a real Slurm job array when a cluster runs
//! here (`ci/slurm-up.sh`; otherwise that test says it is skipped).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use support::{command, mcopt};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// 2 settings × 3 seeds of Adam on syn, `iters` epochs each.
fn small_sweep(dir: &Path, iters: usize) -> PathBuf {
    let path = dir.join("sweep.yaml");
    let body = format!(
        "base: syn/adam.yaml\nfixed:\n  stop.max_iter: {iters}\ngrid:\n  solver.options.lr: [0.01, 0.003]\nseeds: [1, 2, 3]\n"
    );
    std::fs::write(&path, body).unwrap();
    path
}

/// A scratch copy of the syn example with the small sweep of `iters` epochs planned into
/// `DIR/planned`; returns (DIR, DIR/planned).
fn planned(tag: &str, iters: usize) -> (PathBuf, PathBuf) {
    let dir = support::syn_copy(tag);
    let out = dir.join("planned");
    plan(&small_sweep(&dir, iters), &out);
    (dir, out)
}

fn plan(sweep: &Path, out: &Path) -> Value {
    let o = mcopt(&[
        "sweep",
        "plan",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    o.json()
}

/// The ranked table without the time columns (which differ between runs).
fn table_without_time(dir: &Path) -> Value {
    let o = mcopt(&["sweep", "collect", dir.to_str().unwrap(), "--json"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let mut v = o.json();
    for row in v["settings"].as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("seconds_mean");
    }
    v
}

#[test]
fn plan_writes_a_manifest_and_one_valid_run_file_per_entry() {
    let dir = support::syn_copy("plan");
    let sweep = small_sweep(&dir, 5);
    let out = dir.join("planned");
    let summary = plan(&sweep, &out);
    assert_eq!(summary["entries"], 6);
    assert_eq!(summary["settings"], 2);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let entries = manifest["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    // Setting-major order, seeds fastest; the overrides name the key paths.
    let lrs: Vec<f64> = entries
        .iter()
        .map(|e| e["overrides"]["solver.options.lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs, [0.01, 0.01, 0.01, 0.003, 0.003, 0.003]);
    let seeds: Vec<u64> = entries
        .iter()
        .map(|e| e["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [1, 2, 3, 1, 2, 3]);
    for e in entries {
        let hash = e["hash"].as_str().unwrap();
        assert_eq!(hash.len(), 64, "sha256 hex");
        let run_file = out.join(e["run_file"].as_str().unwrap());
        // Each run file is a valid run file on its own: `mcopt check` reads its model and data.
        let o = mcopt(&["check", "--config", run_file.to_str().unwrap(), "--json"]);
        assert_eq!(o.code, Some(0), "{o:#?}");
        let body = std::fs::read_to_string(&run_file).unwrap();
        assert!(body.contains(&format!("seed: {}", e["seed"])), "{body}");
    }
    // Planning the same sweep again into the same directory is a no-op; another sweep is refused.
    plan(&sweep, &out);
    std::fs::write(
        &sweep,
        "base: syn/adam.yaml\ngrid:\n  solver.options.lr: [0.5]\n",
    )
    .unwrap();
    let o = mcopt(&[
        "sweep",
        "plan",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert!(o.stderr.contains("mcopt::sweep::exists"), "{o:#?}");
}

/// A bad sweep file: exit 2, the diagnostic's code, and the line of the offending key; nothing written.
fn assert_bad_plan(body: &str, code: &str, line: usize) {
    let dir = support::syn_copy("bad");
    let sweep = dir.join("sweep.yaml");
    std::fs::write(&sweep, body).unwrap();
    let out = dir.join("planned");
    let o = mcopt(&[
        "sweep",
        "plan",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.code, Some(2), "{body}\n{o:#?}");
    let diags = o.json()["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        diags
            .iter()
            .any(|d| d["code"] == code && d["line"].as_u64() == Some(line as u64)),
        "expected {code} at line {line} for\n{body}\n{o:#?}"
    );
    assert!(!out.exists(), "nothing may be written for a bad sweep");
}

#[test]
fn bad_sweeps_name_the_key_and_its_line() {
    // An unknown key path.
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  stop.max_itr: [3, 4]\n",
        "mcopt::sweep::key",
        3,
    );
    // A value of the wrong type for its key.
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  solver.options.lr: [0.01]\n  init: [glorot, {scheme: nosuch}]\n",
        "mcopt::sweep::key",
        4,
    );
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  stop.max_iter: [-3]\n",
        "mcopt::sweep::key",
        3,
    );
    // Grid values that are not a list, and an empty grid.
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  solver.options.lr: 0.01\n",
        "mcopt::sweep::type",
        3,
    );
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  solver.options.lr: []\n",
        "mcopt::sweep::empty",
        3,
    );
    assert_bad_plan("base: syn/adam.yaml\ngrid: {}\n", "mcopt::sweep::empty", 2);
    // A constant the model does not declare; a reserved key; repeated seeds.
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  consts.tua: [0.5, 1]\n",
        "mcopt::config::unknown_const",
        3,
    );
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  seed: [1, 2]\n",
        "mcopt::sweep::key",
        3,
    );
    assert_bad_plan(
        "base: syn/adam.yaml\ngrid:\n  solver.options.lr: [0.01]\nseeds: [1, 1]\n",
        "mcopt::sweep::seeds",
        4,
    );
}

#[test]
fn consts_override_model_constants_from_run_files_and_the_command_line() {
    let dir = support::syn_copy("consts");
    let model = dir.join("syn/rnn.mco");
    let run = dir.join("syn/adam.yaml");
    let point = repo().join("examples/data/srpa_syn_theta0.yaml");
    let value = |extra: &[&str]| -> f64 {
        let mut args = vec![
            "eval",
            model.to_str().unwrap(),
            "--config",
            run.to_str().unwrap(),
            "--at",
            point.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = mcopt(&args);
        assert_eq!(o.code, Some(0), "{o:#?}");
        o.json()["value"].as_f64().unwrap()
    };
    let base = value(&[]);
    let no_tikhonov = value(&["--const", "tau=0"]);
    let double = value(&["--const", "tau=2.4"]);
    // The objective is loss + τ·R(θ): linear in τ.
    assert!(no_tikhonov < base);
    assert!(((double - no_tikhonov) - 2.0 * (base - no_tikhonov)).abs() < 1e-12);
    // The run file's `consts:` gives the same, and --const wins over it.
    let body = std::fs::read_to_string(&run).unwrap() + "consts: {tau: 0.0}\n";
    std::fs::write(&run, body).unwrap();
    assert_eq!(value(&[]).to_bits(), no_tikhonov.to_bits());
    assert_eq!(value(&["--const", "tau=2.4"]).to_bits(), double.to_bits());
    // Unknown names and bad values are diagnostics.
    let o = mcopt(&["eval", model.to_str().unwrap(), "--const", "tua=1"]);
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert!(o.stderr.contains("mcopt::config::unknown_const"), "{o:#?}");
    let o = mcopt(&["eval", model.to_str().unwrap(), "--const", "tau=nan"]);
    assert_eq!(o.code, Some(2), "{o:#?}");
}

fn run_all(out: &Path, jobs: &str) -> Value {
    let o = mcopt(&[
        "sweep",
        "run",
        out.to_str().unwrap(),
        "--jobs",
        jobs,
        "--json",
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    o.json()
}

#[test]
fn a_local_pool_runs_every_entry_once_and_the_table_ranks_settings() {
    let (_, out) = planned("pool", 20);
    let first = run_all(&out, "2");
    assert_eq!(first["ran"].as_array().unwrap().len(), 6, "{first}");
    // Idempotent: a second run skips every entry.
    let second = run_all(&out, "2");
    assert_eq!(second["ran"].as_array().unwrap().len(), 0, "{second}");
    assert_eq!(second["skipped"].as_array().unwrap().len(), 6, "{second}");
    let o = mcopt(&["sweep", "status", out.to_str().unwrap(), "--json"]);
    let status = o.json();
    assert_eq!(status["done"], 6, "{status}");
    assert_eq!(status["pending"], 0, "{status}");

    let table = table_without_time(&out);
    let rows = table["settings"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Best first, and the statistics are those of the three runs' reports.
    let means: Vec<f64> = rows
        .iter()
        .map(|r| r["test_loss_mean"].as_f64().unwrap())
        .collect();
    assert!(means[0] <= means[1], "{table}");
    for row in rows {
        assert_eq!(row["runs"], 3);
        let lr = row["overrides"]["solver.options.lr"].as_f64().unwrap();
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
                .unwrap();
        let losses: Vec<f64> = manifest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["overrides"]["solver.options.lr"].as_f64() == Some(lr))
            .map(|e| {
                let dir = out.join(e["run_file"].as_str().unwrap());
                let report: Value = serde_json::from_str(
                    &std::fs::read_to_string(dir.parent().unwrap().join("report.json")).unwrap(),
                )
                .unwrap();
                report["test_loss"].as_f64().unwrap()
            })
            .collect();
        let mean = losses.iter().sum::<f64>() / 3.0;
        let var = losses.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0;
        assert!((row["test_loss_mean"].as_f64().unwrap() - mean).abs() < 1e-12);
        assert!((row["test_loss_std"].as_f64().unwrap() - var.sqrt()).abs() < 1e-12);
    }
    for f in ["summary.csv", "summary.md", "summary.json", "test_loss.svg"] {
        let body = std::fs::read_to_string(out.join("collect").join(f)).unwrap();
        assert!(!body.is_empty(), "{f}");
    }
    let svg = std::fs::read_to_string(out.join("collect/test_loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<circle").count(), 6, "one dot per run");

    // Grouping by a key that the sweep does not vary is a diagnostic.
    let o = mcopt(&[
        "sweep",
        "collect",
        out.to_str().unwrap(),
        "--by",
        "solver.options.b1",
    ]);
    assert_eq!(o.code, Some(2), "{o:#?}");
}

#[test]
fn a_killed_worker_leaves_only_its_entry_to_run_again() {
    // Long enough that a worker is still running when we kill it.
    let (_, out) = planned("kill", 20_000);
    let pool = support::bin()
        .args([
            "sweep",
            "run",
            out.to_str().unwrap(),
            "--jobs",
            "2",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for entry 0's train process, then kill it (SIGKILL: no checkpoint at exit).
    let state = out.join("runs/0000/state.json");
    let start = Instant::now();
    let pid = loop {
        if let Ok(s) = std::fs::read_to_string(&state) {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                if v["state"] == "running" {
                    break v["pid"].as_u64().unwrap();
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "entry 0 never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let kill = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let first = pool.wait_with_output().unwrap();
    // The pool reports the failed entry (exit 1) and finishes the others.
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    let summary: Value = serde_json::from_slice(&first.stdout).unwrap();
    let failed: Vec<u64> = summary["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [0], "{summary}");
    assert_eq!(summary["ran"].as_array().unwrap().len(), 5, "{summary}");
    let status = mcopt(&["sweep", "status", out.to_str().unwrap(), "--json"]).json();
    assert_eq!(
        (status["done"].as_u64(), status["failed"].as_u64()),
        (Some(5), Some(1))
    );

    // The re-run runs only the missing entry.
    let second = run_all(&out, "2");
    let ran: Vec<u64> = second["ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert_eq!(ran, [0], "{second}");
    assert_eq!(second["skipped"].as_array().unwrap().len(), 5);
}

#[test]
fn an_entry_whose_inputs_changed_is_refused_by_its_hash() {
    let (dir, out) = planned("hash", 3);
    // Change the model after planning (a different constant): the planned hash no longer holds.
    let model = dir.join("syn/rnn.mco");
    let body = std::fs::read_to_string(&model)
        .unwrap()
        .replace("const tau = 1.2", "const tau = 1.3");
    std::fs::write(&model, body).unwrap();
    let o = mcopt(&["sweep", "run", out.to_str().unwrap(), "--index", "0"]);
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert!(o.stderr.contains("mcopt::sweep::hash_mismatch"), "{o:#?}");
    assert!(!out.join("runs/0000/report.json").exists());
    // The index may also come from the cluster's environment variable.
    let o = command(&["sweep", "run", out.to_str().unwrap()])
        .env("JOB_COMPLETION_INDEX", "9")
        .run();
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert!(o.stderr.contains("no entry 9"), "{o:#?}");
}

#[test]
fn the_kubernetes_job_is_an_indexed_job_running_the_sweep() {
    let (_, out) = planned("k8s", 3);
    let o = mcopt(&[
        "sweep",
        "k8s",
        out.to_str().unwrap(),
        "--image",
        "registry.example/mcopt:0.1",
        "--parallelism",
        "3",
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let body = std::fs::read_to_string(out.join("k8s-job.yaml")).unwrap();
    let job: serde_norway::Value = serde_norway::from_str(&body).unwrap();
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(spec["completions"].as_u64(), Some(6));
    assert_eq!(spec["parallelism"].as_u64(), Some(3));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let c = &pod["containers"][0];
    assert_eq!(c["image"].as_str(), Some("registry.example/mcopt:0.1"));
    let cmd: Vec<&str> = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cmd, ["mcopt", "sweep", "run", "/sweeps/planned"]);
    assert_eq!(c["volumeMounts"][0]["mountPath"].as_str(), Some("/sweeps"));
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(),
        Some("mcopt-sweeps")
    );
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(
        name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
}

#[test]
fn the_slurm_script_is_a_job_array_of_the_sweep() {
    let (_, out) = planned("slurm-script", 3);
    let o = mcopt(&[
        "sweep",
        "slurm",
        out.to_str().unwrap(),
        "--partition",
        "short",
        "--time",
        "10:00",
        "--cpus-per-task",
        "1",
        "--max-parallel",
        "2",
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let script = std::fs::read_to_string(out.join("sweep.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-5%2",
        "#SBATCH --partition=short",
        "#SBATCH --time=10:00",
        "#SBATCH --cpus-per-task=1",
    ] {
        assert!(script.lines().any(|l| l == line), "{line} in\n{script}");
    }
    assert!(script.contains(" sweep run "), "{script}");
}

/// Whether a Slurm cluster answers here (started by `ci/slurm-up.sh`).
fn slurm_up() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && {
                let s = String::from_utf8_lossy(&o.stdout);
                s.lines()
                    .any(|l| matches!(l.trim(), "idle" | "mixed" | "allocated"))
            }
        })
}

#[test]
fn the_same_sweep_through_a_slurm_job_array_gives_the_same_table() {
    if !slurm_up() {
        eprintln!(
            "SKIPPED the_same_sweep_through_a_slurm_job_array_gives_the_same_table: no Slurm \
             cluster answers here (start one with `ci/slurm-up.sh` as root)"
        );
        return;
    }
    let dir = support::syn_copy("slurm");
    let sweep = small_sweep(&dir, 20);
    let local = dir.join("local");
    let cluster = dir.join("cluster");
    plan(&sweep, &local);
    plan(&sweep, &cluster);
    run_all(&local, "2");
    let o = mcopt(&[
        "sweep",
        "slurm",
        cluster.to_str().unwrap(),
        "--max-parallel",
        "2",
        "--submit",
        "--json",
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let job = o.json()["job_id"].as_str().unwrap().to_string();
    assert!(!job.is_empty());
    let start = Instant::now();
    loop {
        let status = mcopt(&["sweep", "status", cluster.to_str().unwrap(), "--json"]).json();
        if status["done"] == 6 {
            break;
        }
        assert!(
            status["failed"] == 0,
            "a Slurm task failed: {status}; logs in {}",
            cluster.join("slurm").display()
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "job {job} did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(table_without_time(&local), table_without_time(&cluster));
}
