//! No input in the repository makes mcopt crash: every model under `tests/` and `examples/`
//! through `check`, and every run file through a one-iteration `train`, ends with a diagnostic
//! or a result, never with exit 3 (an internal error) or a signal.

use crate::support;

use std::path::{Path, PathBuf};

use support::{command, repo, Run};

/// Files under `dir` (recursively) whose name ends with `ext`, sorted.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        // Outputs of earlier runs are not inputs.
        if p.file_name().is_some_and(|n| n == "out") {
            continue;
        }
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.to_string_lossy().ends_with(ext) {
            out.push(p);
        }
    }
    out.sort();
}

fn inputs(ext: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    files(&repo().join("tests"), ext, &mut v);
    files(&repo().join("examples"), ext, &mut v);
    v
}

/// The run ended by itself (no signal) and not with an internal error.
fn crashed(run: &Run) -> Option<String> {
    if run.code.is_none() {
        return Some(format!("killed by a signal: {run:#?}"));
    }
    run.panicked().then(|| format!("internal error: {run:#?}"))
}

#[test]
fn no_model_in_the_repository_crashes_check() {
    let models = inputs(".mco");
    assert!(models.len() > 50, "found only {} models", models.len());
    let failures: Vec<String> = models
        .iter()
        .filter_map(|m| crashed(&command(&["check"]).arg(m).run()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Run files that train for long even for one iteration in a debug build (the large RNN, SRPA
/// on S&P 500); the release CI trains them elsewhere.
const SLOW: &[&str] = &["examples/large/", "examples/sp500/run.yaml"];

#[test]
fn no_run_file_in_the_repository_crashes_train() {
    let runs: Vec<PathBuf> = inputs(".yaml")
        .into_iter()
        .filter(|p| {
            let rel = p.strip_prefix(repo()).unwrap_or(p).to_string_lossy();
            !SLOW.iter().any(|s| rel.starts_with(s))
                && std::fs::read_to_string(p)
                    .is_ok_and(|t| t.lines().any(|l| l.starts_with("model:")))
        })
        .collect();
    assert!(runs.len() > 10, "found only {} run files", runs.len());
    let failures: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            let run = command(&["train"])
                .arg(r)
                .arg("--max-iter")
                .arg("1")
                .arg("--out")
                .arg("o")
                .arg("--quiet")
                .run();
            crashed(&run)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
