//! End-to-end runs of the `mcopt` binary on good input: eval of the syn RNN, check of every
//! example, diff on the docs/math.md §6 cases, bench.

use crate::support;

use support::{at, mcopt, num, Run};

/// docs/math.md §6: at θ = 0 the training loss on the first 8 rows of syn_T10.csv, and the test
/// error on the last 2 rows.
const SYN_LOSS: f64 = 2.179217475548;
const SYN_TEST: f64 = 6.283130097808;

fn assert_ok(run: &Run) {
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(!run.panicked(), "{run:#?}");
    assert!(run.written.is_empty(), "files written: {run:#?}");
}

fn assert_syn_values(run: &Run) {
    assert_ok(run);
    let v = run.json();
    // At θ = 0 the Tikhonov terms vanish, so the objective equals the training loss.
    for key in ["value", "loss"] {
        let got = num(&v, key, run);
        assert!(
            (got - SYN_LOSS).abs() <= 1e-9,
            "{key} = {got}, expected {SYN_LOSS}"
        );
    }
    let test = num(&v, "test_loss", run);
    assert!(
        (test - SYN_TEST).abs() <= 1e-9,
        "test_loss = {test}, expected {SYN_TEST}"
    );
}

#[test]
fn eval_syn_with_run_file() {
    let run = mcopt(&[
        "eval",
        &at("examples/syn/rnn.mco"),
        "--config",
        &at("examples/syn/run.yaml"),
        "--json",
    ]);
    assert_syn_values(&run);
}

#[test]
fn eval_syn_with_command_line_data() {
    let csv = at("examples/data/syn_T10.csv");
    let (x, y) = (format!("x={csv}:0..5"), format!("y={csv}:5..8"));
    let model = at("examples/syn/rnn.mco");
    let args = [
        "eval",
        &model,
        "--data",
        &x,
        "--data",
        &y,
        "--rows",
        "0..8",
        "--test-rows",
        "8..10",
        "--json",
    ];
    assert_syn_values(&mcopt(&args));
}

#[test]
fn eval_text_output_has_the_value() {
    let run = mcopt(&[
        "eval",
        &at("examples/syn/rnn.mco"),
        "--config",
        &at("examples/syn/run.yaml"),
    ]);
    assert_ok(&run);
    assert!(run.stdout.contains("2.179217475548"), "{run:#?}");
    assert!(run.stdout.contains("6.283130097808"), "{run:#?}");
}

/// Every example model checks; the sequence models with their run files report n and L.
#[test]
fn check_every_example() {
    // n = |A| + |W| + |V| + |b| + |c|; L = (T + 1) h's + T u's + T v's for T training steps.
    let with_data = [
        (
            "examples/syn/rnn.mco",
            "examples/syn/run.yaml",
            3 * 4 + 16 + 4 * 5 + 4 + 3,
            3 * 8 + 1,
        ),
        (
            "examples/sp500/rnn.mco",
            "examples/sp500/run.yaml",
            20 + 400 + 20 * 11 + 20 + 1,
            3 * 393 + 1,
        ),
    ];
    for (model, runfile, n, layers) in with_data {
        let run = mcopt(&["check", &at(model), "--config", &at(runfile), "--json"]);
        assert_ok(&run);
        let v = run.json();
        assert_eq!(v["n"].as_u64(), Some(n as u64), "{model}: {v}");
        assert_eq!(v["L"].as_u64(), Some(layers as u64), "{model}: {v}");
    }
    let mut others = 0;
    for dir in ["examples/cases", "examples/large"] {
        for entry in std::fs::read_dir(support::repo().join(dir)).expect("examples dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "mco") {
                let run = mcopt(&["check", &path.to_string_lossy(), "--json"]);
                assert_ok(&run);
                assert!(run.json()["n"].as_u64().is_some_and(|n| n >= 1), "{run:#?}");
                others += 1;
            }
        }
    }
    assert!(
        others >= 13,
        "expected the 11 cases and 2 large models, found {others}"
    );
}

#[test]
fn check_large_without_data_counts_parameters() {
    let run = mcopt(&["check", &at("examples/large/rnn.mco"), "--json"]);
    assert_ok(&run);
    // A 4×128, W 128×128, V 128×16, b 128, c 4.
    assert_eq!(run.json()["n"].as_u64(), Some(512 + 16384 + 2048 + 128 + 4));
}

#[test]
fn check_text_output_names_the_structure() {
    let run = mcopt(&[
        "check",
        &at("examples/syn/rnn.mco"),
        "--config",
        &at("examples/syn/run.yaml"),
    ]);
    assert_ok(&run);
    for want in ["n = 55", "L = 25", "Tikhonov on A", "loss"] {
        assert!(run.stdout.contains(want), "`{want}` missing: {run:#?}");
    }
}

/// One docs/math.md §6 case: model, point and direction files, and the answers worked out by hand
/// from f(x + t d) (see the comments).
struct Case {
    model: &'static str,
    point: &'static str,
    value: f64,
    d1: f64,
    d2: f64,
    at_kink: bool,
}

const fn case(
    model: &'static str,
    point: &'static str,
    value: f64,
    d1: f64,
    d2: f64,
    at_kink: bool,
) -> Case {
    Case {
        model,
        point,
        value,
        d1,
        d2,
        at_kink,
    }
}

const CASES: &[Case] = &[
    // (|t| − 1)² + 0.5 t² = 1 − 2t + 1.5t² for t ≥ 0.
    case("abs_sq", "abs_sq", 1.0, -2.0, 3.0, true),
    // At x = 0.5: (t − 0.5)² + 0.5 (0.5 + t)² = 0.375 − 0.5t + 1.5t², smooth there.
    case("abs_sq", "abs_sq_off", 0.375, -0.5, 3.0, false),
    // |−t| + 0.5 t² = t + 0.5 t².
    case("abs_plus_sq", "abs_plus_sq", 0.0, 1.0, 1.0, true),
    // (t² − 1)² + 0.5 t² = 1 − 1.5 t² + t⁴: smooth, no kink.
    case("double_well", "double_well", 1.0, 0.0, -3.0, false),
    // max(t, 2t) = 2t.
    case("max_xy", "max_xy", 0.0, 2.0, 0.0, true),
    // |0 − t²| = t².
    case("abs_parabola", "abs_parabola", 0.0, 0.0, 2.0, true),
    // t² − 1.5 t² = −0.5 t².
    case("abs_parabola_neg", "abs_parabola_neg", 0.0, 0.0, -1.0, true),
    // relu(t) − 0.5 t = 0.5 t.
    case("relu_lin", "relu_lin", 0.0, 0.5, 0.0, true),
    // elu(−t) + t = e^{−t} − 1 + t = t²/2 + O(t³).
    case("elu_minus_x", "elu_minus_x", 0.0, 0.0, 1.0, true),
    // −t − (e^{−t} − 1) = −t²/2 + O(t³).
    case("x_minus_elu", "x_minus_elu", 0.0, 0.0, -1.0, true),
    // u₁ = max(t, 2t) = 2t, u₂ = |2t − t| = t, (t − 1)² = 1 − 2t + t².
    case("two_layers", "two_layers", 1.0, -2.0, 2.0, true),
    // (0·θ − 1)² + 0.5 θ² = 1 + 0.5 t²: smooth.
    case("p1_exact", "p1_exact", 1.0, 0.0, 1.0, false),
];

#[test]
fn diff_on_the_math_cases() {
    let mut failures = Vec::new();
    for c in CASES {
        let model = at(&format!("examples/cases/{}.mco", c.model));
        let point = at(&format!("tests/cli/cases/{}.point.yaml", c.point));
        let dir = at(&format!("tests/cli/cases/{}.dir.yaml", c.model));
        let run = mcopt(&[
            "diff", &model, "--at", &point, "--dir", &dir, "--order", "2", "--json",
        ]);
        assert_ok(&run);
        let v = run.json();
        let got = (
            num(&v, "value", &run),
            num(&v, "d1", &run),
            num(&v, "d2", &run),
        );
        let kinks = v["active_kinks"]
            .as_u64()
            .unwrap_or_else(|| panic!("no active_kinks: {v}"));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12;
        if !close(got.0, c.value)
            || !close(got.1, c.d1)
            || !close(got.2, c.d2)
            || (kinks >= 1) != c.at_kink
        {
            failures.push(format!(
                "{} at {}: got (f, f′, f″, kinks) = {got:?}, {kinks}; expected ({}, {}, {}), kink {}",
                c.model, c.point, c.value, c.d1, c.d2, c.at_kink
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn diff_order_one_has_no_second_derivative() {
    let run = mcopt(&[
        "diff",
        &at("examples/cases/abs_sq.mco"),
        "--at",
        &at("tests/cli/cases/abs_sq.point.yaml"),
        "--dir",
        &at("tests/cli/cases/abs_sq.dir.yaml"),
        "--json",
    ]);
    assert_ok(&run);
    let v = run.json();
    assert_eq!(num(&v, "d1", &run), -2.0);
    assert!(v["d2"].is_null(), "{v}");
}

#[test]
fn bench_reports_positive_ratios() {
    let run = mcopt(&[
        "bench",
        &at("examples/syn/rnn.mco"),
        "--config",
        &at("examples/syn/run.yaml"),
        "--json",
        "--seconds",
        "0.2",
    ]);
    assert_ok(&run);
    let v = run.json();
    for key in ["f_seconds", "ratio_d1", "ratio_d1d2", "ratio_grad"] {
        let x = num(&v, key, &run);
        assert!(x > 0.0 && x.is_finite(), "{key} = {x}");
    }
    assert_eq!(v["n"].as_u64(), Some(55), "{v}");
}

/// Reverse mode through `A * B` where B varies and has several columns (a matrix parameter, or a
/// layer batched over sequences) must not reach nalgebra's strided gemm path.
#[test]
fn bench_gradient_of_a_matrix_product() {
    let runs = [
        mcopt(&[
            "bench",
            &at("tests/cli/cases/matrix_product.mco"),
            "--json",
            "--seconds",
            "0.01",
        ]),
        mcopt(&[
            "bench",
            &at("tests/cli/cases/batched_product.mco"),
            "--config",
            &at("tests/cli/cases/batched_product.yaml"),
            "--json",
            "--seconds",
            "0.01",
        ]),
    ];
    for run in &runs {
        assert_ok(run);
        assert!(num(&run.json(), "ratio_grad", run) > 0.0);
    }
}
