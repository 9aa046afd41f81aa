//! β belongs to the form (issue 16 item 2): the run file's `form: {p1: {beta: …}}` is read by
//! SRPA and by the final certificate alike; the old spellings (SRPA's options `beta`, `beta1`,
//! `beta2`, and `validate.beta`) give the same run with a warning showing the new spelling, and
//! β stated both ways with different values is refused at the old spelling's line.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support;

/// A syn copy with `run.yaml` written from `solver_options` and `extra` top-level lines.
fn run_file(tag: &str, solver_options: &str, extra: &str) -> PathBuf {
    let dir = support::syn_copy(tag);
    let text = format!(
        "model: rnn.mco\n\
         data:\n  file: ../data/syn_T10.csv\n  header: no\n  bind: {{x: 0..5, y: 5..8}}\n  train: 0..8\n  test: 8..10\n\
         solver:\n  name: srpa\n  options: {{{solver_options}eta1: 0.9, eta2: 1.3, rho1: 0.5}}\n\
         init: {{scheme: gaussian, std: 0.1}}\n\
         seed: 123456\n\
         stop: {{max_iter: 3}}\n\
         {extra}"
    );
    let path = dir.join("syn/run.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `mcopt train RUN --json --quiet` into `out`: the report, the trace without its time column,
/// and the standard error.
fn train(run: &Path, out: &Path) -> (Value, Vec<String>, String) {
    let o = support::command(&[
        "train",
        support::path_str(run),
        "--out",
        support::path_str(out),
        "--json",
        "--quiet",
    ])
    .run();
    assert_eq!(o.code, Some(0), "{o:#?}");
    let text = std::fs::read_to_string(out.join("trace.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let t = header.iter().position(|h| *h == "seconds").unwrap();
    let trace = text
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            cells
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != t)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    (o.json(), trace, o.stderr)
}

/// The certificate without its timings.
fn certificate(report: &Value) -> Value {
    let mut c = report["certificate"].clone();
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !k.contains("seconds") && !k.contains("time"));
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut c);
    c
}

#[test]
fn the_old_and_the_new_spelling_give_the_same_srpa_run_and_certificate() {
    let validate = "validate: {form: p1, order: 1}\n";
    let cases = [
        // One β for every group: SRPA's `beta` and `validate.beta`, against `form`.
        (
            "beta: 0.5, ",
            "validate: {form: p1, beta: 0.5, order: 1}\n".to_string(),
            format!("form: {{p1: {{beta: 0.5}}}}\n{validate}"),
        ),
        // The authors' rule: `beta1` for the hidden groups, `beta2` for the output layer.
        (
            "beta1: 0.5, beta2: 2.0, ",
            validate.to_string(),
            format!("form: {{p1: {{beta: {{u: 0.5, h: 0.5, v: 2.0}}}}}}\n{validate}"),
        ),
    ];
    for (i, (old_options, old_extra, new_extra)) in cases.iter().enumerate() {
        let old = run_file(&format!("beta-old-{i}"), old_options, old_extra);
        let new = run_file(&format!("beta-new-{i}"), "", new_extra);
        let (r_old, t_old, e_old) = train(&old, &old.parent().unwrap().join("out"));
        let (r_new, t_new, e_new) = train(&new, &new.parent().unwrap().join("out"));
        assert_eq!(t_old.len(), 5, "header, start and 3 iterations: {t_old:?}");
        assert_eq!(t_old, t_new, "case {i}");
        assert!(r_new["certificate"].is_object(), "{r_new}");
        assert_eq!(certificate(&r_old), certificate(&r_new), "case {i}");
        assert_eq!(r_old["objective"], r_new["objective"]);
        let e_old = support::unwrapped(&e_old);
        assert!(e_old.contains("mcopt::config::deprecated"), "{e_old}");
        assert!(e_old.contains("form: {p1: {beta:"), "{e_old}");
        assert!(!e_new.contains("mcopt::config::deprecated"), "{e_new}");
    }
}

#[test]
fn a_beta_stated_both_ways_with_different_values_is_refused_at_its_line() {
    let form = "form: {p1: {beta: 1.0}}\n";
    // SRPA's option (line 10 is `options:`), and `validate.beta` (line 15).
    let cases = [
        ("beta1: 0.5, ", String::new(), 10),
        ("", "validate: {form: p1, beta: 2.0}\n".to_string(), 15),
    ];
    for (i, (options, validate, line)) in cases.iter().enumerate() {
        let run = run_file(
            &format!("beta-both-{i}"),
            options,
            &format!("{form}{validate}"),
        );
        let out = run.parent().unwrap().join("out");
        let o = support::command(&[
            "train",
            support::path_str(&run),
            "--out",
            support::path_str(&out),
        ])
        .run();
        assert_eq!(o.code, Some(2), "{o:#?}");
        let err = support::unwrapped(&o.stderr);
        assert!(err.contains("mcopt::config::conflict"), "{err}");
        assert!(
            err.contains(&format!("run.yaml:{line}:")),
            "case {i}: {err}"
        );
        assert!(!out.join("report.json").exists(), "nothing runs");
    }
    // The same value both ways is only the warning.
    let run = run_file(
        "beta-both-same",
        "",
        "form: {p1: {beta: 2.0}}\nvalidate: {form: p1, beta: 2.0}\n",
    );
    let (_, _, err) = train(&run, &run.parent().unwrap().join("out"));
    assert!(err.contains("mcopt::config::deprecated"), "{err}");
}

/// The authors' β of the bundled SRPA runs is stated in their run files: syn 1 and sp500 0.1
/// for every layer group. (A run file without `form:` trains with β = 1, so a β lost from the
/// file changes the run silently; the reproductions against the authors set their own β.)
#[test]
fn the_bundled_srpa_run_files_state_the_authors_beta() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, beta) in [
        ("examples/syn/run.yaml", 1.0),
        ("examples/sp500/run.yaml", 0.1),
    ] {
        let run =
            mcopt::config::load_run(&root.join(file)).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert_eq!(
            run.solver.as_ref().map(|s| s.name.as_str()),
            Some("srpa"),
            "{file}"
        );
        let p1 = run
            .form
            .p1
            .unwrap_or_else(|| panic!("{file} states no form: {{p1: {{beta}}}}"));
        assert_eq!(p1.beta, mcopt::config::BetaSpec::All(beta), "{file}");
        assert!(run.warnings.is_empty(), "{file}: old spellings");
    }
}
