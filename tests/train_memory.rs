//! Bounded memory for long runs (release builds only: a million iterations): the peak resident
//! memory of `mcopt train` over 10⁶ syn iterations stays within 1.2× of 10⁴ iterations, and
//! the checkpoint and the plot stay small, because the trace goes to trace.csv as the run goes
//! and the plot keeps bucketed extremes. The peak is the children's `ru_maxrss` from
//! `getrusage(RUSAGE_CHILDREN)`, so this file holds one test (no other child may run).
//!
//! Run with `cargo test --release --test train_memory`.

#[path = "cli/support.rs"]
mod support;

use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The largest peak resident set (KiB) of the children waited for so far.
fn children_peak_kib() -> i64 {
    // SAFETY: rusage is plain integers, for which all zero bytes are a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given, which lives until it returns.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    assert_eq!(rc, 0, "getrusage failed");
    u.ru_maxrss
}

/// Train Adam on syn for `iters` iterations into a fresh directory; its peak RSS (KiB).
fn train(iters: u64) -> (i64, PathBuf) {
    let out = support::fresh_dir(&format!("memory-{iters}"));
    let before = children_peak_kib();
    let o = support::bin()
        .args(["train", "examples/syn/adam.yaml", "--quiet", "--out"])
        .arg(&out)
        .args(["--max-iter", &iters.to_string()])
        .current_dir(repo())
        .output()
        .expect("mcopt runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = children_peak_kib();
    // The maximum over all children: it grew to this run's peak unless an earlier one was higher.
    (after.max(before), out)
}

fn size(p: PathBuf) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
#[cfg_attr(debug_assertions, ignore = "a million iterations: release builds only")]
fn a_million_iterations_peak_within_1_2_times_ten_thousand() {
    let (small, small_dir) = train(10_000);
    let (large, large_dir) = train(1_000_000);
    assert!(
        (large as f64) <= 1.2 * small as f64,
        "peak RSS {large} KiB for 10^6 iterations, {small} KiB for 10^4"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(large_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["iterations"], 1_000_000);
    // The whole trace is on disk, one line per iteration and the header.
    let text = std::fs::read(large_dir.join("trace.csv")).unwrap();
    assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 1_000_002);
    // The checkpoint does not grow with the run; the plot is bounded.
    let (cs, cl) = (
        size(small_dir.join("checkpoint.json")),
        size(large_dir.join("checkpoint.json")),
    );
    assert!(cl <= cs + 64, "checkpoint {cl} bytes vs {cs}");
    assert!(cl < 16 * 1024, "checkpoint {cl} bytes");
    assert!(size(large_dir.join("plot.svg")) < 1024 * 1024);
    let _ = std::fs::remove_dir_all(small_dir);
    let _ = std::fs::remove_dir_all(large_dir);
}
