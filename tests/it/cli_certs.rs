//! End to end: `mcopt stationarity`, `reformulate`, `validate` and `diff --form`, their JSON,
//! JUnit and exit codes; witnesses confirmed by `mcopt diff`; point files with layer values.

use crate::support;

use support::{at, mcopt, repo};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// Confirm a verdict's witness with `mcopt diff` (the JSON direction is a direction file).
fn confirm_with_diff(model: &str, point: &str, verdict: &serde_json::Value, extra: &[&str]) {
    // One directory per call: tests run in parallel.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = support::scratch_dir(&format!("witness-{n}"));
    let d = write(&dir, "dir.yaml", &verdict["direction"].to_string());
    let mut args = vec![
        "diff", model, "--at", point, "--dir", &d, "--order", "2", "--json",
    ];
    args.extend_from_slice(extra);
    let r = mcopt(&args);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let j = r.json();
    // Every witness reports its exact slope.
    let s = verdict["slope"].as_f64().expect("the witness's slope");
    assert_eq!(j["d1"].as_f64(), Some(s), "{r:#?}");
    if let Some(c) = verdict["curvature"].as_f64() {
        assert_eq!(j["d2"].as_f64(), Some(c), "{r:#?}");
        assert!(j["d1"].as_f64().unwrap().abs() <= 1e-9);
    }
}

#[test]
fn stationarity_witnesses_are_confirmed_by_diff_in_every_form() {
    let dir = support::scratch_dir("forms");
    let x0 = write(&dir, "x0.yaml", "x: 0\n");
    let xy0 = write(&dir, "xy0.yaml", "x: 0\ny: 0\n");
    let t0 = write(&dir, "t0.yaml", "theta1: 0\ntheta2: 0\n");
    // (P): a Clarke-only point, and a first- but not second-order stationary point.
    let m = at("examples/cases/abs_sq.mco");
    let r = mcopt(&["stationarity", &m, "--at", &x0, "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["form"], "p");
    assert_eq!(j["first_order"]["status"], "not_stationary");
    assert_eq!(j["first_order"]["slope"], -2.0);
    assert!(j["seconds"].as_f64().is_some());
    confirm_with_diff(&m, &x0, &j["first_order"], &[]);
    let m = at("examples/cases/abs_parabola_neg.mco");
    let r = mcopt(&["stationarity", &m, "--at", &xy0, "--order", "2", "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["first_order"]["status"], "stationary");
    assert_eq!(j["second_order"]["status"], "not_stationary");
    assert_eq!(j["second_order"]["curvature"], -1.0);
    confirm_with_diff(&m, &xy0, &j["second_order"], &[]);
    // (P0) and (P1) of the nested case: witnesses over z = (θ, u1, u2).
    let m = at("examples/cases/two_layers.mco");
    for (form, beta) in [("p0", None), ("p1", Some("10"))] {
        let mut args = vec!["stationarity", &m, "--at", &t0, "--form", form, "--json"];
        if let Some(b) = beta {
            args.extend_from_slice(&["--beta", b]);
        }
        let r = mcopt(&args);
        assert_eq!(r.code, Some(1), "{r:#?}");
        let j = r.json();
        assert_eq!(j["form"], form);
        let v = &j["first_order"];
        assert_eq!(v["status"], "not_stationary");
        assert!(v["direction"]["u2"].is_number(), "{v}");
        let mut extra = vec!["--form", form];
        if let Some(b) = beta {
            extra.extend_from_slice(&["--beta", b]);
        }
        confirm_with_diff(&m, &t0, v, &extra);
    }
}

#[test]
fn exit_codes_of_stationarity() {
    let dir = support::scratch_dir("exit");
    let x0 = write(&dir, "x0.yaml", "x: 0\n");
    let r = mcopt(&[
        "stationarity",
        &at("examples/cases/abs_plus_sq.mco"),
        "--at",
        &x0,
        "--order",
        "2",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stdout.contains("first_order   stationary"),
        "{}",
        r.stdout
    );
    // Inconclusive: nested kinks past --max-pieces, exit 1 unless allowed.
    let m = write(
        &dir,
        "nested.mco",
        "param x: vec(4)\nminimize sum(abs(abs(x))) + 0.5 * sqnorm(x)\n",
    );
    let p = write(&dir, "p.yaml", "x: [0, 0, 0, 0]\n");
    let r = mcopt(&[
        "stationarity",
        &m,
        "--at",
        &p,
        "--max-pieces",
        "4",
        "--json",
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(r.json()["first_order"]["status"], "inconclusive");
    assert!(r.json()["first_order"]["reason"]
        .as_str()
        .unwrap()
        .contains("--max-pieces 4"));
    let r = mcopt(&[
        "stationarity",
        &m,
        "--at",
        &p,
        "--max-pieces",
        "4",
        "--allow-inconclusive",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    // Bad input: exit 2 with a diagnostic.
    for bad in [
        vec!["--tol", "nan"],
        vec!["--tol", "-1"],
        vec!["--ztol=-1"],
        vec!["--form", "p1", "--beta", "nosuch=1"],
        vec!["--form", "p1", "--beta", "-2"],
    ] {
        let mut args = vec!["stationarity", &m, "--at", &p];
        args.extend(bad.iter().copied());
        let r = mcopt(&args);
        assert_eq!(r.code, Some(2), "{r:#?}");
        assert!(r.stderr.contains("mcopt::cli::"), "{}", r.stderr);
    }
    let r = mcopt(&["stationarity", &m, "--at", "/nonexistent/p.yaml"]);
    assert_eq!(r.code, Some(2), "{r:#?}");
}

#[test]
fn plot_is_an_svg_along_the_witness() {
    let dir = support::scratch_dir("plot");
    let x0 = write(&dir, "x0.yaml", "x: 0\n");
    let svg = dir.join("f.svg");
    let r = mcopt(&[
        "stationarity",
        &at("examples/cases/abs_sq.mco"),
        "--at",
        &x0,
        "--plot",
        &svg.to_string_lossy(),
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains("along the witness") && text.contains("<polyline"));
}

#[test]
fn point_files_with_layer_values() {
    let dir = support::scratch_dir("layers");
    let m = at("examples/cases/p1_exact.mco");
    // (P1) accepts an infeasible point; (P0) refuses it and names the largest residual.
    let p = write(&dir, "z.yaml", "theta: 0\nu: 0.5\n");
    let r = mcopt(&[
        "stationarity",
        &m,
        "--at",
        &p,
        "--form",
        "p1",
        "--beta",
        "3",
        "--json",
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}"); // off the kink, Θ′ = −1 + 3·sign: not stationary
    let r = mcopt(&["stationarity", &m, "--at", &p, "--form", "p0"]);
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains("mcopt::point::infeasible") && r.stderr.contains("`u`"),
        "{}",
        r.stderr
    );
    // A feasible layer value is accepted by (P0).
    let p = write(&dir, "feasible.yaml", "theta: 0\nu: 0\n");
    let r = mcopt(&["stationarity", &m, "--at", &p, "--form", "p0", "--json"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    // Indexed layers of the syn RNN: eval accepts `h[3]`, checks its shape.
    let theta = std::fs::read_to_string(repo().join("examples/data/srpa_syn_theta0.yaml")).unwrap();
    let cfg = at("examples/syn/run.yaml");
    let good = write(
        &dir,
        "h3.yaml",
        &format!("{theta}h[3]: [0, 0, 0, 0]\nu[1]: [1, 2, 3, 4]\n"),
    );
    let plain = write(&dir, "plain.yaml", &theta);
    let rnn = at("examples/syn/rnn.mco");
    let a = mcopt(&["eval", &rnn, "--config", &cfg, "--at", &good, "--json"]);
    let b = mcopt(&["eval", &rnn, "--config", &cfg, "--at", &plain, "--json"]);
    assert_eq!((a.code, b.code), (Some(0), Some(0)), "{a:#?}");
    assert_eq!(a.json()["value"], b.json()["value"]);
    let bad = write(&dir, "bad.yaml", &format!("{theta}h[3]: [0, 0, 0]\n"));
    let r = mcopt(&["eval", &rnn, "--config", &cfg, "--at", &bad]);
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains("h[3]") && r.stderr.contains("length 4"),
        "{}",
        r.stderr
    );
    // (P1) from a point with some layers: Θ at the given layers differs from f.
    let r = mcopt(&[
        "diff", &rnn, "--config", &cfg, "--at", &good, "--dir", &plain, "--form", "p1", "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.json()["value"].as_f64().unwrap() > b.json()["value"].as_f64().unwrap());
}

#[test]
fn reformulate_reports_blocks_and_thresholds() {
    let r = mcopt(&[
        "reformulate",
        &at("examples/sp500/rnn.mco"),
        "--form",
        "p1",
        "--config",
        &at("examples/sp500/run.yaml"),
        "--beta",
        "v=0.1",
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let j = r.json();
    let t = &j["thresholds"];
    assert_eq!(t["gamma1_overflow"], true);
    assert!(t["gamma1"].is_null() && t["log10_gamma1"].as_f64().unwrap() > 308.0);
    assert!(t["beta2"].as_f64().unwrap() > 0.0);
    let v = j["penalties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["group"] == "v")
        .unwrap()
        .clone();
    assert_eq!(
        (v["blocks"].as_u64(), v["beta"].as_f64()),
        (Some(393), Some(0.1))
    );
    let r = mcopt(&[
        "reformulate",
        &at("examples/syn/rnn.mco"),
        "--form",
        "p0",
        "--config",
        &at("examples/syn/run.yaml"),
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("constraint blocks: 24"), "{}", r.stdout);
    assert!(r.stdout.contains("β₂  > 1.04384"), "{}", r.stdout);
    assert!(!r.stdout.contains("inf"), "{}", r.stdout);
}

/// f = |x| − 0.05 x at x = −0.5: smooth there, exact slope −1.05 along +1; `--ztol 0.7` counts
/// |x| as a kink (a convex outer term whose subdifferential holds 0), as issue 15 found.
const NEAR_KINK: &str = "param x: real = 0\nminimize abs(x) - 0.05 * x\n";

#[test]
fn ztol_verdicts_are_rechecked_with_the_exact_slope() {
    let dir = support::scratch_dir("ztol");
    let m = write(&dir, "k.mco", NEAR_KINK);
    let p = write(&dir, "p.yaml", "x: -0.5\n");
    // JSON: not stationary, with the witness and its exact slope, and the tolerances used.
    let r = mcopt(&["stationarity", &m, "--at", &p, "--ztol", "0.7", "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["first_order"]["status"], "not_stationary", "{r:#?}");
    let slope = j["first_order"]["slope"].as_f64().unwrap();
    assert!((slope + 1.05).abs() < 1e-12, "{r:#?}");
    assert!(j["first_order"]["direction"]["x"].as_f64().unwrap() > 0.0);
    assert_eq!(j["ztol"].as_f64(), Some(0.7), "{r:#?}");
    assert_eq!(j["tol"].as_f64(), Some(1e-6), "{r:#?}");
    // The witness is confirmed by `mcopt diff` with the exact (default) ztol.
    confirm_with_diff(&m, &p, &j["first_order"], &[]);
    // Second order follows first order.
    let r = mcopt(&[
        "stationarity",
        &m,
        "--at",
        &p,
        "--ztol",
        "0.7",
        "--order",
        "2",
        "--json",
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(r.json()["second_order"]["status"], "not_stationary");
    // Text: the verdict, the exact slope and both tolerances.
    let r = mcopt(&["stationarity", &m, "--at", &p, "--ztol", "0.7"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert!(r.stdout.contains("not_stationary"), "{}", r.stdout);
    assert!(r.stdout.contains("-1.050000000000"), "{}", r.stdout);
    assert!(r.stdout.contains("ztol          0.7"), "{}", r.stdout);
    assert!(r.stdout.contains("tol           1e-6"), "{}", r.stdout);
    // Without ztol the smooth tier refutes with the same slope.
    let r = mcopt(&["stationarity", &m, "--at", &p, "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(r.json()["ztol"].as_f64(), Some(0.0));
    // `diff --ztol` shows the ztol it used and the exact slope beside the one within ztol.
    let d = write(&dir, "d.yaml", "x: 1\n");
    let r = mcopt(&[
        "diff", &m, "--at", &p, "--dir", &d, "--ztol", "0.7", "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let j = r.json();
    assert_eq!(j["ztol"].as_f64(), Some(0.7), "{r:#?}");
    assert!(
        (j["d1_exact"].as_f64().unwrap() + 1.05).abs() < 1e-12,
        "{r:#?}"
    );
    assert!((j["d1"].as_f64().unwrap() - 0.95).abs() < 1e-12, "{r:#?}");
    let r = mcopt(&["diff", &m, "--at", &p, "--dir", &d, "--ztol", "0.7"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("ztol          0.7"), "{}", r.stdout);
    assert!(
        r.stdout.contains("d1_exact      -1.050000000000"),
        "{}",
        r.stdout
    );
    // Without ztol `diff` has no exact column (d1 is exact) but names its ztol.
    let r = mcopt(&["diff", &m, "--at", &p, "--dir", &d, "--json"]);
    assert_eq!(r.json()["ztol"].as_f64(), Some(0.0), "{r:#?}");
    assert!(r.json().get("d1_exact").is_none(), "{r:#?}");
    // `validate`: the check fails and names its tolerances (text, JSON, JUnit).
    let junit = dir.join("v.xml");
    let r = mcopt(&[
        "validate",
        &m,
        "--params",
        &p,
        "--ztol",
        "0.7",
        "--json",
        "--junit",
        &junit.to_string_lossy(),
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    let check = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "first_order_stationarity")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "fail", "{r:#?}");
    assert_eq!(check["ztol"].as_f64(), Some(0.7), "{r:#?}");
    assert_eq!(check["tol"].as_f64(), Some(1e-6), "{r:#?}");
    assert!(check["message"].as_str().unwrap().contains("ztol = 0.7"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("ztol = 0.7"), "{xml}");
    assert!(xml.contains("name=\"ztol\" value=\"0.7\""), "{xml}");
}

#[test]
fn stationary_text_states_only_what_was_checked() {
    let dir = support::scratch_dir("tol-text");
    // Nested kinks not of max type (abs of a kinked argument): piece enumeration.
    let m = write(
        &dir,
        "n.mco",
        "param x: real = 0\nparam y: real = 0\nminimize abs(abs(x) - y^2)\n",
    );
    let p = write(&dir, "p.yaml", "x: 0\ny: 0\n");
    let r = mcopt(&["stationarity", &m, "--at", &p, "--tol", "1e-3"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(!r.stdout.contains("f′ ≥ 0"), "{}", r.stdout);
    assert!(
        r.stdout.contains("f′ ≥ −tol on each piece (tol = 1e-3)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("2 active kinks"), "{}", r.stdout);
    // A smooth point: the gradient norm against the tolerance.
    let m = write(&dir, "k.mco", NEAR_KINK);
    let far = write(&dir, "far.yaml", "x: 2\n");
    let r = mcopt(&["stationarity", &m, "--at", &far, "--tol", "2"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("≤ tol = 2e0"), "{}", r.stdout);
    // One kink: singular, and "distance from 0".
    let x0 = write(&dir, "x0.yaml", "x: 0\n");
    let r = mcopt(&["stationarity", &m, "--at", &x0]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("1 active kink)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("distance from 0 to the subdifferential"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("1 active kinks"), "{}", r.stdout);
    // A vacuous tolerance is refused (non-finite already was).
    for tol in ["1e308", "1e100", "inf"] {
        let r = mcopt(&["stationarity", &m, "--at", &x0, "--tol", tol]);
        assert_eq!(r.code, Some(2), "{r:#?}");
        assert!(r.stderr.contains("mcopt::cli::value"), "{}", r.stderr);
        let r = mcopt(&["validate", &m, "--params", &x0, "--tol", tol]);
        assert_eq!(r.code, Some(2), "{r:#?}");
    }
}

#[test]
fn no_negative_zero_in_certificates() {
    let dir = support::scratch_dir("negzero");
    // No parameters: ∇f is empty and its norm was printed as −0.
    let m = write(&dir, "e.mco", "minimize 1\n");
    let p = write(&dir, "e.yaml", "{}\n");
    let r = mcopt(&["stationarity", &m, "--at", &p, "--order", "2"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("‖∇f‖ = 0.000e0"), "{}", r.stdout);
    assert!(!r.stdout.contains("-0.0"), "{}", r.stdout);
    let r = mcopt(&["stationarity", &m, "--at", &p, "--order", "2", "--json"]);
    assert!(!r.stdout.contains("-0.0"), "{}", r.stdout);
}

#[test]
fn seconds_count_both_orders_and_every_tier() {
    let dir = support::scratch_dir("seconds");
    let m = write(&dir, "r.mco", "param x: real = 0\nminimize relu(x)\n");
    let p = write(&dir, "p.yaml", "x: 0\n");
    let r = mcopt(&["stationarity", &m, "--at", &p, "--order", "2", "--json"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let j = r.json();
    let first = j["first_order"]["seconds"]
        .as_f64()
        .expect("first_order.seconds");
    let second = j["second_order"]["seconds"]
        .as_f64()
        .expect("second_order.seconds");
    let total = j["seconds"].as_f64().unwrap();
    assert!(first > 0.0 && second > 0.0, "{r:#?}");
    assert!(total >= first + second, "{r:#?}");
    // `validate` splits the certificate's time between its two checks.
    let r = mcopt(&["validate", &m, "--params", &p, "--order", "2", "--json"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let checks = r.json()["checks"].as_array().unwrap().clone();
    let secs = |name: &str| {
        checks.iter().find(|c| c["name"] == name).unwrap()["seconds"]
            .as_f64()
            .unwrap()
    };
    assert!(secs("second_order_stationarity") > 0.0, "{r:#?}");
}

#[test]
fn ztol_witnesses_are_replaced_or_withdrawn_by_the_exact_slope() {
    let dir = support::scratch_dir("ztol-witness");
    // 0.5x − |x| at x = 0.5: within ztol the steepest piece is −1 (slope −1.5), whose exact
    // slope is +0.5; the other piece examined, +1, has the exact slope −0.5.
    let m = write(
        &dir,
        "c.mco",
        "param x: real = 0\nminimize 0.5 * x - abs(x)\n",
    );
    let p = write(&dir, "p.yaml", "x: 0.5\n");
    let r = mcopt(&["stationarity", &m, "--at", &p, "--ztol", "0.7", "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["first_order"]["status"], "not_stationary", "{r:#?}");
    assert_eq!(j["first_order"]["slope"].as_f64(), Some(-0.5), "{r:#?}");
    confirm_with_diff(&m, &p, &j["first_order"], &[]);
    // 0.5x − |x| + x² at x = 0.25: f′(x) = 0, but within ztol both pieces descend; no witness
    // survives the exact slope, and the tiers decided nothing else: inconclusive, not
    // `not_stationary` with a false witness.
    let m = write(
        &dir,
        "c2.mco",
        "param x: real = 0\nminimize 0.5 * x - abs(x) + x^2\n",
    );
    let p = write(&dir, "q.yaml", "x: 0.25\n");
    let r = mcopt(&["stationarity", &m, "--at", &p, "--ztol", "0.7", "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["first_order"]["status"], "inconclusive", "{r:#?}");
    assert!(j["first_order"].get("direction").is_none(), "{r:#?}");
    assert!(j["first_order"]["reason"]
        .as_str()
        .unwrap()
        .contains("not a descent direction"));
    // Exact ties stay exact: the same model at x = 0 with ztol is decided as without it.
    let x0 = write(&dir, "x0.yaml", "x: 0\n");
    let a = mcopt(&["stationarity", &m, "--at", &x0, "--ztol", "0.7", "--json"]);
    let b = mcopt(&["stationarity", &m, "--at", &x0, "--json"]);
    assert_eq!(
        a.json()["first_order"]["status"],
        b.json()["first_order"]["status"]
    );
}

#[test]
fn max_type_verdicts_end_to_end_with_their_witness_confirmed_by_diff() {
    let dir = support::scratch_dir("maxtype");
    // Max of 13 smooth functions in 12 variables: x_i + ½‖x‖² and −Σx + ½‖x‖².
    let n = 12;
    let mut terms: Vec<String> = (1..=n)
        .map(|i| format!("x[{i}] + 0.5 * sqnorm(x)"))
        .collect();
    terms.push("0.5 * sqnorm(x) - sum(x)".into());
    let mut f = terms.pop().unwrap();
    while let Some(t) = terms.pop() {
        f = format!("max({t}, {f})");
    }
    let m = write(
        &dir,
        "maxq.mco",
        &format!("param x: vec({n})\nminimize {f}\n"),
    );
    let list = |v: &str| format!("x: [{}]\n", vec![v; n].join(", "));
    let zero = write(&dir, "zero.yaml", &list("0"));
    let ones = write(&dir, "ones.yaml", &list("1"));
    // The minimizer: 2^13 pieces would exceed --max-pieces 4096; one min-norm problem decides.
    let r = mcopt(&["stationarity", &m, "--at", &zero, "--order", "2", "--json"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let j = r.json();
    assert_eq!(j["first_order"]["method"], "max_type", "{j}");
    assert_eq!(j["second_order"]["status"], "stationary", "{j}");
    // All 12 first terms tie at x = 1: refuted, the witness confirmed by `mcopt diff`.
    let r = mcopt(&["stationarity", &m, "--at", &ones, "--json"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["first_order"]["status"], "not_stationary", "{j}");
    assert_eq!(j["first_order"]["method"], "max_type", "{j}");
    confirm_with_diff(&m, &ones, &j["first_order"], &[]);
}

#[test]
fn time_limit_makes_a_long_certificate_inconclusive() {
    let dir = support::scratch_dir("time-limit");
    // 14 nested kinks that are not of max type: 2^14 pieces, one LP each.
    let m = write(
        &dir,
        "nested.mco",
        "param x: vec(7)\nminimize sum(abs(abs(x) - 0)) + 0.5 * sqnorm(x)\n",
    );
    let p = write(&dir, "p.yaml", "x: [0, 0, 0, 0, 0, 0, 0]\n");
    let args = [
        "stationarity",
        &m,
        "--at",
        &p,
        "--max-pieces",
        "100000",
        "--time-limit",
        "0.05",
        "--json",
    ];
    let r = mcopt(&args);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let j = r.json();
    assert_eq!(j["first_order"]["status"], "inconclusive", "{j}");
    let reason = j["first_order"]["reason"].as_str().unwrap();
    assert!(reason.contains("time limit of 0.05 s"), "{reason}");
    // `seconds` counts all the work, at least the limit.
    assert!(j["seconds"].as_f64().unwrap() >= 0.05, "{j}");
    let mut allowed = args.to_vec();
    allowed.push("--allow-inconclusive");
    assert_eq!(mcopt(&allowed).code, Some(0));
    for bad in ["0", "-1", "nan"] {
        let r = mcopt(&["stationarity", &m, "--at", &p, "--time-limit", bad]);
        assert_eq!(r.code, Some(2), "{bad}: {r:#?}");
        assert!(r.stderr.contains("--time-limit"), "{r:#?}");
    }
}

/// Chained crescent I at its minimizer 0 (n = 10): on the critical hyperplane Σ_{j≥2} d_j = 0
/// both pieces are active and f″(0; d) = |dᵀHd| ≥ 0, so the point is second-order stationary.
/// The piece enumeration's direction there is the LP's, whose exact slope is a rounding error
/// above 0 (1e-11): along it the lexicographic rule picks the piece curving down, which is never
/// a descent (the other piece takes over first). Such a direction is not a witness: the verdict
/// must not be `not_stationary`, and any second-order witness has an exact slope ≤ 0.
#[test]
fn a_negative_curvature_behind_a_positive_slope_is_not_a_witness() {
    let dir = support::scratch_dir("crescent");
    let model = at("examples/nonsmooth/chained_crescent_1.mco");
    let zero = write(
        &dir,
        "zero.yaml",
        &format!("x: [{}]\n", ["0"; 10].join(", ")),
    );
    let r = mcopt(&[
        "stationarity",
        &model,
        "--const",
        "n=10",
        "--at",
        &zero,
        "--order",
        "2",
        "--json",
    ]);
    let j = r.json();
    assert_eq!(j["first_order"]["status"], "stationary", "{j}");
    let second = &j["second_order"];
    assert_ne!(second["status"], "not_stationary", "{j}");
}
