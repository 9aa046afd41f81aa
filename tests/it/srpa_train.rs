//! `mcopt train` with SRPA on syn from the authors' starting weights, end to end: the report's
//! fields (objective Θ, accepted, rejected, feasibility), the trace, and a resume that continues
//! bit for bit.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
    let full = support::fresh_dir("full");
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

    let part = support::fresh_dir("part");
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
            "options: {eta1: 0.9, eta2: 1.3, rho1: 0.5}",
            &format!("options: {options}"),
        )
        // β in the options (the old spelling) is the only one: no `form:`.
        .replace("form: {p1: {beta: 1.0}}\n", "");
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
    let mut dirs = Vec::new();
    // trains syn from the authors' start with `beta` (the rest of their options unchanged)
    let mut run = |tag: &str, beta: &str, iters: &str| {
        let dir = support::fresh_dir(tag);
        let options = format!("{{{beta}, eta1: 0.9, eta2: 1.3, rho1: 0.5}}");
        let file = syn_run_file(&dir, &options);
        let out = dir.join("out");
        let o = train_from_authors(&file, &out, iters);
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

/// syn's run file with `options`, its model `relu(u[t])` replaced by `hidden` (with the line
/// of `u` removed when `hidden` does not read it), written to `dir`, and `mcopt train` on it.
fn train_variant(
    tag: &str,
    hidden: &str,
    options: &str,
    extra: &str,
    iters: &str,
) -> (support::Run, PathBuf, PathBuf) {
    let dir = support::fresh_dir(tag);
    let file = syn_run_file(&dir, options);
    let model = std::fs::read_to_string(repo().join("examples/syn/rnn.mco")).unwrap();
    let mut model = model.replace("relu(u[t])", hidden);
    if !hidden.contains("u[t]") {
        model = model.replace("layer u[t] = W * h[t-1] + V * x[t] + b\n", "");
    }
    std::fs::write(dir.join("rnn.mco"), model).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace(
        &repo().join("examples/syn/rnn.mco").display().to_string(),
        &dir.join("rnn.mco").display().to_string(),
    );
    let text = text.replace(
        &format!("  options: {options}\n"),
        &format!("  options: {options}\n{extra}"),
    );
    std::fs::write(&file, text).unwrap();
    let out = dir.join("out");
    let o = train_from_authors(&file, &out, iters);
    (o, out, dir)
}

/// `mcopt train FILE` from the authors' syn start for `iters` iterations into `out` (JSON).
fn train_from_authors(file: &Path, out: &Path, iters: &str) -> support::Run {
    let init = repo().join("examples/data/srpa_syn_theta0.yaml");
    support::command(&[
        "train",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--init",
        init.to_str().unwrap(),
        "--max-iter",
        iters,
        "--json",
        "--quiet",
    ])
    .run()
}

/// The line of the run file that holds `needle` (1-based).
fn line_of(dir: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(dir.join("run.yaml")).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

const AUTHORS: &str = "{beta1: 1.0, beta2: 1.0, eta1: 0.9, eta2: 1.3, rho1: 0.5}";

/// syn with `relu(u[t])` written `max(u[t], 0)` trains (it panicked in the linearizer).
#[test]
fn srpa_trains_syn_written_with_max() {
    let (o, _, dir) = train_variant("max", "max(u[t], 0)", AUTHORS, "", "5");
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r = o.json();
    assert_eq!(r["iterations"], 5);
    assert_eq!(r["accepted"], 5);
    let _ = std::fs::remove_dir_all(dir);
}

/// The ReLU of an expression (its pieces are not bounds): many steps are rejected and ρ grows
/// until its cap, where the predicted decrease is small only because ρ is huge. That is
/// `stalled`, never `converged` (it said `converged` at ρ = 1.9e9 with 85 of 193 steps
/// rejected); the trace shows ρ and the rejections.
#[test]
fn srpa_stalls_at_the_rho_cap_instead_of_converging() {
    let hidden = "relu(W * h[t-1] + V * x[t] + b)";
    let (o, out, dir) = train_variant("rho-cap", hidden, AUTHORS, "", "500");
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r = o.json();
    assert_eq!(r["status"], "stalled", "{r:#}");
    let why = r["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("rho reached its cap") || why.contains("rejected steps in a row"),
        "the report says why it stalled: {r:#}"
    );
    let rho = r["rho"].as_f64().unwrap();
    assert!(rho * 1.3 > 0.5e6, "{rho}");
    assert!(r["rejected"].as_u64().unwrap() > 10, "{r:#}");
    let trace = trace_without_time(&out);
    assert!(trace[0].contains("rejected_in_a_row"), "{}", trace[0]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A run that meets its tolerance with every step accepted still says `converged`.
#[test]
fn srpa_still_converges_legitimately() {
    let options = "{beta1: 1.0, beta2: 1.0, eta1: 0.9, eta2: 1.3, rho1: 0.5, tol: 1e-3}";
    let (o, _, dir) = train_variant("converged", "relu(u[t])", options, "", "100");
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r = o.json();
    assert_eq!(r["status"], "converged", "{r:#}");
    assert!(r["iterations"].as_u64().unwrap() < 100, "{r:#}");
    assert_eq!(r["rejected"], 0, "{r:#}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Options outside SRPA's ranges (they made it say `converged` after one or two iterations)
/// are refused at their line in the run file, before anything runs.
#[test]
fn srpa_options_out_of_range_are_refused_at_their_line() {
    for (k, (option, range)) in [
        ("eta2: 1e308", "(1, 1000]"),
        ("rho1: 1e300", "(0, 1e6]"),
        ("sub_tol: 1e300", "(0, 1)"),
        ("eta1: 1.5", "(0, 1)"),
        ("eta1: 0", "(0, 1)"),
        ("tol: 1e300", "[0, 1)"),
    ]
    .into_iter()
    .enumerate()
    {
        let options = format!("{{beta1: 1.0, {option}}}");
        let (o, out, dir) = train_variant(&format!("range-{k}"), "relu(u[t])", &options, "", "5");
        assert_eq!(o.code, Some(2), "{option}: {o:#?}");
        let name = option.split(':').next().unwrap();
        let line = line_of(&dir, "options:");
        let stderr = &o.stderr;
        assert!(stderr.contains(&format!("`{name}`")), "{stderr}");
        assert!(stderr.contains(range), "{option}: {stderr}");
        assert!(stderr.contains(&format!("run.yaml:{line}:")), "{stderr}");
        assert!(!out.exists(), "nothing may be written on an error");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `solver.batch` with SRPA (which works on the full data) is refused at its line, not ignored.
#[test]
fn srpa_refuses_minibatches() {
    let batch = "  batch: {sequences: 1}\n";
    let (o, out, dir) = train_variant("batch", "relu(u[t])", AUTHORS, batch, "5");
    assert_eq!(o.code, Some(2), "{o:#?}");
    let stderr = &o.stderr;
    assert!(stderr.contains("full data"), "{stderr}");
    let line = line_of(&dir, "batch:");
    assert!(stderr.contains(&format!("run.yaml:{line}:")), "{stderr}");
    assert!(!out.exists(), "nothing may be written on an error");
    let _ = std::fs::remove_dir_all(dir);
}

/// The option `subproblem` chooses how the subproblems are solved: `matrix_free` (Newton–CG
/// with J through products) follows the `direct` run's Θ to 1e-8, by other Newton steps; a
/// name that is not a path is refused (exit 2).
#[test]
fn the_subproblem_option_chooses_the_path() {
    let mut dirs = Vec::new();
    let mut run = |tag: &str, path: &str| {
        let dir = support::fresh_dir(tag);
        let options = format!(
            "{{beta1: 1.0, beta2: 1.0, eta1: 0.9, eta2: 1.3, rho1: 0.5, subproblem: {path}}}"
        );
        let file = syn_run_file(&dir, &options);
        let out = dir.join("out");
        let o = train_from_authors(&file, &out, "20");
        dirs.push(dir);
        (o, out)
    };
    let column = |out: &Path, name: &str| -> Vec<f64> {
        let trace = trace_without_time(out);
        let at = trace[0].split(',').position(|h| h == name).unwrap();
        trace[2..]
            .iter()
            .map(|l| l.split(',').nth(at).unwrap().parse().unwrap())
            .collect()
    };
    let (o, direct) = run("sub-direct", "direct");
    assert_eq!(o.code, Some(0), "{o:#?}");
    let (o, free) = run("sub-mf", "matrix_free");
    assert_eq!(o.code, Some(0), "{o:#?}");
    let (a, b) = (column(&direct, "objective"), column(&free, "objective"));
    assert_eq!(a.len(), 20);
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-8 * x.abs(), "k = {k}: {x} vs {y}");
    }
    assert_ne!(
        column(&direct, "newton_steps"),
        column(&free, "newton_steps")
    );
    let (o, _) = run("sub-bad", "cholesky");
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert!(o.stderr.contains("subproblem"), "{}", o.stderr);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
