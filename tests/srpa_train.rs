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

/// The syn run file with its solver options replaced, written to `dir` (paths made absolute).
fn syn_run_file(dir: &Path, options: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/syn/run.yaml")).unwrap();
    let syn = repo().join("examples/syn");
    let text = text
        .replace(
            "model: rnn.mco",
            &format!("model: {}", syn.join("rnn.mco").display()),
        )
        .replace(
            "file: ../data/syn_T10.csv",
            &format!("file: {}", syn.join("../data/syn_T10.csv").display()),
        )
        .replace(
            "options: {beta1: 1.0, beta2: 1.0, eta1: 0.9, eta2: 1.3, rho1: 0.5}",
            &format!("options: {options}"),
        );
    assert!(
        text.contains(options),
        "the run file's options line changed"
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("run.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// β per layer name (`beta: {u: .., h: .., v: ..}`): the authors' β₁ = β₂ = 1 given per layer is
/// the same run as `beta1`/`beta2`; a different β on `v` is a different run; a name that is not
/// a lifted layer is an error at the option, with the layers listed.
#[test]
fn beta_per_layer_name() {
    let init = repo().join("examples/data/srpa_syn_theta0.yaml");
    let init = init.to_str().unwrap();
    let mut dirs = Vec::new();
    // trains syn from the authors' start with `beta` (the rest of their options unchanged)
    let mut run = |tag: &str, beta: &str, iters: &str| {
        let dir = scratch(tag);
        let options = format!("{{{beta}, eta1: 0.9, eta2: 1.3, rho1: 0.5}}");
        let file = syn_run_file(&dir, &options);
        let out = dir.join("out");
        let o = support::command(&[
            "train",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--init",
            init,
            "--max-iter",
            iters,
            "--json",
            "--quiet",
        ])
        .run();
        dirs.push(dir);
        (o, out)
    };
    let mut trained = |tag: &str, beta: &str| {
        let (o, out) = run(tag, beta, "20");
        assert_eq!(o.code, Some(0), "{o:#?}");
        trace_without_time(&out)
    };
    let reference = trained("beta-ref", "beta1: 1.0, beta2: 1.0");
    let named = trained("beta-named", "beta: {u: 1.0, h: 1.0, v: 1.0}");
    assert_eq!(named, reference);
    let other = trained("beta-v", "beta: {u: 1.0, h: 1.0, v: 0.25}");
    assert_ne!(other[5], reference[5]);
    let mut refused = |tag: &str, beta: &str| {
        let (o, out) = run(tag, beta, "5");
        assert_eq!(o.code, Some(2), "{o:#?}");
        assert!(!out.exists(), "nothing may be written on an error");
        o.stderr
    };
    let stderr = refused("beta-bad", "beta: {u: 1.0, hh: 1.0}");
    assert!(
        stderr.contains("`hh`") && stderr.contains("u, h, v"),
        "{stderr}"
    );
    let stderr = refused("beta-bad-value", "beta: {u: -1.0}");
    assert!(stderr.contains("finite number > 0"), "{stderr}");
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
