//! The max-type tier: textbook convex minimax families with n = 10–20 variables (written with
//! nested binary `max`, `abs`, `log` and unrolled sums), decided at their minimizers without
//! enumerating 2^k pieces, and refuted at their starting points with a witness whose slope an
//! exact ray-Taylor evaluation (what `mcopt diff` prints) confirms.

use crate::common;
use crate::common::cert::certify_at;

use common::eval::compile;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::Graph;
use mcopt::registry::{Order, Registry};
use mcopt::stationarity::{Certificate, Status};

/// A `not_stationary` first order carries a witness whose exact slope is the reported one, < 0.
fn assert_refuted(g: &Graph, r: &Registry, x: &[f64], c: &Certificate, what: &str) {
    assert_eq!(c.first.status, Status::NotStationary, "{what}: {c:?}");
    let d = c.first.direction.as_ref().expect("a witness");
    let s = c.first.slope.expect("the witness's slope");
    assert!(s < -1e-6, "{what}: slope {s}");
    let mut ev = Evaluator::new(g, r, Order::One).unwrap();
    let t = ev
        .directional(x, d, Order::One, EvalOptions::default())
        .unwrap();
    assert_eq!(t.d1, Some(s), "{what}: exact slope of the witness");
}

/// max(a₁, max(a₂, …)) of the terms, nested binary.
fn nested_max(terms: &[String]) -> String {
    match terms {
        [one] => one.clone(),
        [first, rest @ ..] => format!("max({first}, {})", nested_max(rest)),
        [] => "0".into(),
    }
}

fn header(n: usize) -> String {
    format!("param x: vec({n})\nminimize ")
}

/// Max of n + 1 smooth functions: x_i + ½‖x‖² and −Σ x + ½‖x‖²; minimizer 0, all tied there.
fn max_smooth(n: usize) -> String {
    let mut t: Vec<String> = (1..=n)
        .map(|i| format!("x[{i}] + 0.5 * sqnorm(x)"))
        .collect();
    t.push("0.5 * sqnorm(x) - sum(x)".into());
    header(n) + &nested_max(&t)
}

/// Max of the absolute values of n + 1 affine forms: |x_i − i| and |x_1 + x_2 − 3|; minimizer
/// x_i = i, every form at its kink.
fn max_abs(n: usize) -> String {
    let mut t: Vec<String> = (1..=n).map(|i| format!("abs(x[{i}] - {i})")).collect();
    t.push("abs(x[1] + x[2] - 3)".into());
    header(n) + &nested_max(&t)
}

/// Chained CB3: Σ max(x_i⁴ + x_{i+1}², (2 − x_i)² + (2 − x_{i+1})², 2 e^{x_{i+1} − x_i});
/// minimizer x = 1, where all three terms of every link tie.
fn chained_cb3(n: usize) -> String {
    let links: Vec<String> = (1..n)
        .map(|i| {
            let j = i + 1;
            nested_max(&[
                format!("x[{i}]^4 + x[{j}]^2"),
                format!("(2 - x[{i}])^2 + (2 - x[{j}])^2"),
                format!("2 * exp(x[{j}] - x[{i}])"),
            ])
        })
        .collect();
    header(n) + &links.join(" + ")
}

/// A max mixing log(1 + |·|) of partial sums: max_i log(1 + |x_1 + … + x_i|); minimizer 0.
fn max_log_abs(n: usize) -> String {
    let t: Vec<String> = (1..=n)
        .map(|i| {
            let s: Vec<String> = (1..=i).map(|j| format!("x[{j}]")).collect();
            format!("log(1 + abs({}))", s.join(" + "))
        })
        .collect();
    header(n) + &nested_max(&t)
}

#[test]
fn textbook_minimax_families_are_stationary_at_their_minimizers() {
    let r = Registry::with_standard();
    for n in [10, 20] {
        let cases: [(String, Vec<f64>); 4] = [
            (max_smooth(n), vec![0.0; n]),
            (max_abs(n), (1..=n).map(|i| i as f64).collect()),
            (chained_cb3(n), vec![1.0; n]),
            (max_log_abs(n), vec![0.0; n]),
        ];
        for (text, x) in cases {
            let g = compile(&text, &r);
            let c = certify_at(&g, &r, &x, Order::Two);
            assert_eq!(c.first.status, Status::Stationary, "{text}: {c:?}");
            assert_eq!(c.first.method, "max_type", "{text}: {c:?}");
            assert!(c.first.active_kinks >= n, "{text}: {c:?}");
            let s = c.second.as_ref().unwrap();
            assert_eq!(
                (s.status, s.method),
                (Status::Stationary, "max_type"),
                "{text}: {c:?}"
            );
        }
    }
}

#[test]
fn textbook_minimax_families_are_refuted_at_their_starting_points() {
    let r = Registry::with_standard();
    for n in [10, 20] {
        let cases: [(String, Vec<f64>); 5] = [
            // All n first terms tie at x = 1: refuted by the max-type tier itself.
            (max_smooth(n), vec![1.0; n]),
            (max_abs(n), vec![0.0; n]),
            // Every |x_i − 1| ties at 1 (none at its own kink): a tie of n affine pieces.
            (
                header(n)
                    + &nested_max(
                        &(1..=n)
                            .map(|i| format!("abs(x[{i}] - 1)"))
                            .collect::<Vec<_>>(),
                    ),
                vec![0.0; n],
            ),
            (chained_cb3(n), vec![2.0; n]),
            (max_log_abs(n), vec![1.0; n]),
        ];
        for (text, x) in cases {
            let g = compile(&text, &r);
            let c = certify_at(&g, &r, &x, Order::One);
            assert_refuted(&g, &r, &x, &c, &text);
        }
    }
    // The ties are decided by the max-type tier, not by enumeration or search.
    let g = compile(&max_smooth(20), &r);
    let c = certify_at(&g, &r, &[1.0; 20], Order::One);
    assert_eq!(c.first.method, "max_type", "{c:?}");
}

#[test]
fn concave_and_mixed_signs_are_left_to_the_other_tiers() {
    let r = Registry::with_standard();
    // −max(x, y) at a tie enters with a negative weight: not max type; enumeration refutes.
    let g = compile("param x: real\nparam y: real\nminimize -max(x, y)", &r);
    let c = certify_at(&g, &r, &[0.0, 0.0], Order::One);
    assert_ne!(c.first.method, "max_type", "{c:?}");
    assert_refuted(&g, &r, &[0.0, 0.0], &c, "-max(x, y)");
    // min(x, y) − max(x, y) = −|x − y|: concave, refuted with a witness.
    let g = compile(
        "param x: real\nparam y: real\nminimize min(x, y) - max(x, y) + 0.1 * x",
        &r,
    );
    let c = certify_at(&g, &r, &[0.0, 0.0], Order::One);
    assert_ne!(c.first.method, "max_type", "{c:?}");
    assert_refuted(&g, &r, &[0.0, 0.0], &c, "min - max");
    // Nested min ties entering with weight −1 are convex: −min(x, min(y, z)) = max(−x, −y, −z).
    let g = compile(
        "param x: real\nparam y: real\nparam z: real\nminimize -min(x, min(y, z)) + (x + y + z) / 3",
        &r,
    );
    let c = certify_at(&g, &r, &[0.0; 3], Order::Two);
    assert_eq!(
        (c.first.status, c.first.method),
        (Status::Stationary, "max_type"),
        "{c:?}"
    );
    // Not a sharp minimum: the critical cone is the line through (1, 1, 1), where f is affine
    // (f″ = 0 both ways), decided by the max-type tier from its exact curvatures.
    let s = c.second.as_ref().unwrap();
    assert_eq!(
        (s.status, s.method),
        (Status::Stationary, "max_type"),
        "{c:?}"
    );
    assert!(s.reason.as_ref().unwrap().contains("dimension 1"), "{c:?}");
}
