//! `mcopt train` with SRPA on syn from the authors' starting weights, end to end: the report's
//! fields (objective Θ, accepted, rejected, feasibility), the trace, and a resume that continues
//! bit for bit.

use std::path::{Path, PathBuf};

use serde_json::Value;

#[path = "cli/support.rs"]
mod support;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mcopt-srpa-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train(out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "train",
        "examples/syn/run.yaml",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = support::command(&args).current_dir(repo()).run();
    assert_eq!(o.code, Some(0), "{o:#?}");
    o.json()
}

/// The trace without its time column (`seconds`).
fn trace_without_time(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let t = header.iter().position(|h| *h == "seconds").unwrap();
    text.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != t)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn srpa_trains_syn_like_the_authors_and_resumes_bit_for_bit() {
    let init = "examples/data/srpa_syn_theta0.yaml";
    let full = scratch("full");
    let r = train(&full, &["--init", init]);
    assert_eq!(r["solver"], "srpa");
    assert_eq!(r["iterations"], 100);
    assert_eq!(r["accepted"], 100);
    assert_eq!(r["rejected"], 0);
    let objective = r["objective"].as_f64().unwrap();
    assert!(objective <= 1.07370660933, "{objective}");
    let feas = r["feasibility"].as_f64().unwrap();
    assert!(feas > 0.0 && feas < 1e-5, "{feas}");
    let trace = trace_without_time(&full);
    let header: Vec<&str> = trace[0].split(',').collect();
    for col in [
        "iter",
        "objective",
        "feasibility",
        "predicted_decrease",
        "rho",
        "accepted",
    ] {
        assert!(header.contains(&col), "{header:?}");
    }
    let row1: Vec<&str> = trace[2].split(',').collect();
    let theta1: f64 = row1[1].parse().unwrap();
    assert!((theta1 - 2.07827357021).abs() <= 1e-6, "{theta1}");

    let part = scratch("part");
    train(&part, &["--init", init, "--max-iter", "40"]);
    let resumed = train(&part, &["--resume"]);
    assert_eq!(resumed["iterations"], 100);
    assert_eq!(trace_without_time(&part), trace);
    let _ = std::fs::remove_dir_all(&full);
    let _ = std::fs::remove_dir_all(&part);
}
