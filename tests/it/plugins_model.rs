//! A plugin loaded at run time, used by name in a model: the swish example plugin evaluates,
//! differentiates exactly (same property tests as the built-ins), trains with the `gd`
//! solver through the plugin solver interface, and works from the command line.

use crate::common;

use crate::support;
use std::path::PathBuf;

use support::command;

use common::eval::*;
use mcopt::eval::EvalOptions;
use mcopt::registry::{OptionValue, SolverStart};
use mcopt::registry::{Order, Registry};
use mcopt::solve::{Executor, GraphProblem, RunState, Status, StopRules};
use proptest::prelude::*;

/// The swish example plugin, built as a shared library.
fn swish_lib() -> PathBuf {
    common::plugins::lib("mcopt_swish")
}

fn registry() -> Registry {
    let mut r = Registry::with_standard();
    r.load_library(&swish_lib())
        .unwrap_or_else(|d| panic!("{}", mcopt::diag::render_plain(&d)));
    r
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn swish_model_value_and_derivatives_match_closed_forms() {
    let r = registry();
    let g = lower(&model_file("examples/swish.mco", &r), Vec::new());
    // f(x) = swish(x)² + 0.1 x², swish(x) = x σ(x).
    let x = 0.5;
    let (s, sp) = (x * sigmoid(x), sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x))));
    let spp = sigmoid(x) * (1.0 - sigmoid(x)) * (2.0 + x * (1.0 - 2.0 * sigmoid(x)));
    let f = s * s + 0.1 * x * x;
    let f1 = 2.0 * s * sp + 0.2 * x;
    let f2 = 2.0 * (sp * sp + s * spp) + 0.2;
    let t = taylor(&g, &r, &[x], &[1.0], Order::Two);
    assert!((t.value - f).abs() < 1e-14, "{} vs {f}", t.value);
    assert!((t.d1.unwrap_or(f64::NAN) - f1).abs() < 1e-13);
    assert!((t.d2.unwrap_or(f64::NAN) - f2).abs() < 1e-12);
}

const FORMULAS: &[&str] = &[
    "swish(x) * max(y, 0) - abs(swish(y - x))",
    "(swish(max(x, y)) - 1)^2 + relu(swish(x))",
    "mish(x) + swish(abs(y)) * x",
];

fn graph(f: &str, r: &Registry) -> mcopt::graph::Graph {
    compile(&format!("param x: real\nparam y: real\nminimize {f}"), r)
}

fn point() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop_oneof![Just(0.0), -3.0..3.0f64], 2)
}

/// A nonzero direction (coordinates 0 on purpose, but never both).
fn direction() -> impl Strategy<Value = Vec<f64>> {
    point().prop_map(|mut d| {
        if d.iter().all(|v| *v == 0.0) {
            d[0] = 1.0;
        }
        d
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn plugin_activation_derivatives_match_one_sided_differences(f in 0..FORMULAS.len(), x in point(), d in direction()) {
        let r = registry();
        let res = check_against_differences(&graph(FORMULAS[f], &r), &r, &x, &d);
        prop_assert!(res.is_ok(), "{}: {}", FORMULAS[f], res.err().unwrap_or_default());
    }

    #[test]
    fn plugin_activation_derivatives_are_positively_homogeneous(f in 0..FORMULAS.len(), x in point(), d in direction(), s in 0.05..20.0f64) {
        let r = registry();
        let g = graph(FORMULAS[f], &r);
        let t = taylor(&g, &r, &x, &d, Order::Two);
        let ds: Vec<f64> = d.iter().map(|v| s * v).collect();
        let ts = taylor(&g, &r, &x, &ds, Order::Two);
        prop_assert!(close(ts.d1.unwrap_or(0.0), s * t.d1.unwrap_or(0.0), 1e-12));
        prop_assert!(close(ts.d2.unwrap_or(0.0), s * s * t.d2.unwrap_or(0.0), 1e-12));
    }
}

#[test]
fn a_model_with_a_plugin_activation_trains_with_the_plugin_solver() {
    let r = registry();
    // Fit swish(w x_i + b) to targets made by w = 1.5, b = -0.5: the minimum is 0 there.
    let xs = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0];
    let terms: Vec<String> = xs
        .iter()
        .map(|x: &f64| {
            let target = (1.5 * x - 0.5) * sigmoid(1.5 * x - 0.5);
            format!("(swish(w * {x} + b) - {target})^2")
        })
        .collect();
    let text = format!(
        "param w: real = 0.5\nparam b: real = 0\nminimize {}",
        terms.join(" + ")
    );
    let g = compile(&text, &r);
    let mut problem =
        GraphProblem::new(&r, &g, None, EvalOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let gd = r.solver("gd").expect("the standard plugin ships gd");
    let options = r
        .solver_info(gd)
        .resolve_options(&[
            ("lr".into(), OptionValue::Number(1.0)),
            ("armijo".into(), OptionValue::Bool(true)),
        ])
        .unwrap_or_default();
    let mut state = RunState::start(vec![0.5, 0.0]);
    let start = SolverStart {
        options: &options,
        x: &[0.5, 0.0],
        seed: 0,
    };
    let mut inst = r
        .init_solver(gd, &mut problem, start)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ex = Executor {
        stop: StopRules {
            max_iter: 5000,
            tol: Some(1e-9),
            max_seconds: None,
        },
        interrupt: None,
        observers: vec![],
        reason: None,
    };
    let status = ex
        .run(&mut problem, &mut inst, &mut state)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, Status::Converged);
    let x = &state.x;
    assert!(
        (x[0] - 1.5).abs() < 1e-5 && (x[1] + 0.5).abs() < 1e-5,
        "x = {x:?}"
    );
}

#[test]
fn the_cli_loads_the_plugin_by_path_and_refuses_the_model_without_it() {
    let with = command(&["eval", "examples/swish.mco", "--json", "--plugin"])
        .arg(swish_lib())
        .current_dir(repo())
        .run();
    assert_eq!(with.code, Some(0), "{}", with.stderr);
    let json = with.json();
    let x = 0.5;
    let expected = (x * sigmoid(x)).powi(2) + 0.1 * x * x;
    assert!((json["value"].as_f64().unwrap_or(f64::NAN) - expected).abs() < 1e-12);

    let without = command(&["eval", "examples/swish.mco"])
        .current_dir(repo())
        .run();
    assert_eq!(without.code, Some(2));
    let err = &without.stderr;
    assert!(
        err.contains("mcopt::check::unknown_function") && err.contains("swish"),
        "{err}"
    );
}
