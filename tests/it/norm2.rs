//! `norm2(v)` exact to second order at 0, and `sqrt` at 0 with its finite first-order limit
//! (issue 7 item 9; docs/derivatives.md).

use crate::common;

use common::eval::*;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::registry::{Order, Registry};

fn d1_d2(text: &str, x: &[f64], d: &[f64]) -> (f64, f64, usize) {
    let r = Registry::with_standard();
    let g = compile(text, &r);
    let t = taylor(&g, &r, x, d, Order::Two);
    (
        t.d1.unwrap_or(f64::NAN),
        t.d2.unwrap_or(f64::NAN),
        t.active_kinks,
    )
}

const TOL: f64 = 1e-12;

#[test]
fn norm2_at_zero_of_an_affine_argument() {
    // f(t) = t‖d‖: f′ = ‖d‖ = 5, f″ = 0.
    let (f1, f2, kinks) = d1_d2(
        "param w: vec(3)\nminimize norm2(w)",
        &[0.0; 3],
        &[3.0, 0.0, 4.0],
    );
    assert!((f1 - 5.0).abs() <= TOL && f2.abs() <= TOL, "{f1} {f2}");
    assert_eq!(kinks, 1);
}

#[test]
fn norm2_at_zero_with_a1_and_a2() {
    // a(t) = (t + t², 0) along (1, 1): a₁ = (1, 0), a₂ = (2, 0); f′ = ‖a₁‖ = 1 and
    // f″ = a₁·a₂/‖a₁‖ = 2, as f(t) = t + t².
    let text = "param x: real\nparam y: real\nminimize norm2([x + y^2, x - y])";
    let (f1, f2, _) = d1_d2(text, &[0.0, 0.0], &[1.0, 1.0]);
    assert!(
        (f1 - 1.0).abs() <= TOL && (f2 - 2.0).abs() <= TOL,
        "{f1} {f2}"
    );
}

#[test]
fn norm2_at_zero_with_a1_zero() {
    // a(t) = (t², 4t²) along (1, 2): a₁ = 0, a₂ = (2, 8); f′ = 0, f″ = ‖a₂‖ = 2√17.
    let text = "param x: real\nparam y: real\nminimize norm2([x^2, y^2])";
    let (f1, f2, _) = d1_d2(text, &[0.0, 0.0], &[1.0, 2.0]);
    assert!(f1.abs() <= TOL, "{f1}");
    assert!((f2 - 2.0 * 17f64.sqrt()).abs() <= TOL, "{f2}");
}

#[test]
fn norm2_matches_one_sided_differences_at_and_away_from_zero() {
    let r = Registry::with_standard();
    let text = "param x: real\nparam y: real\nparam z: real\n\
                minimize norm2([x + y^2, x*z - y, sin_free(z)]) + 0.5 * norm2([x, y]) * x";
    let text = text.replace("sin_free(z)", "exp(z) - 1");
    let g = compile(&text, &r);
    let points: [[f64; 3]; 3] = [[0.0; 3], [0.3, -0.2, 0.1], [1e-3, 0.0, -2e-3]];
    let dirs: [[f64; 3]; 4] = [
        [1.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [-0.7, 0.2, 0.5],
        [0.0, 1.0, 0.0],
    ];
    for x in &points {
        for d in &dirs {
            check_against_differences(&g, &r, x, d).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn norm2_gradient_selection() {
    let r = Registry::with_standard();
    let g = compile("param w: vec(2)\nminimize norm2(w)", &r);
    // At 0 the selection is 0, the least-norm element of the unit ball.
    assert_eq!(gradient(&g, &r, &[0.0, 0.0]), [0.0, 0.0]);
    let gr = gradient(&g, &r, &[3.0, -4.0]);
    assert!(
        (gr[0] - 0.6).abs() <= TOL && (gr[1] + 0.8).abs() <= TOL,
        "{gr:?}"
    );
}

#[test]
fn norm2_folds_on_constants_and_takes_matrices() {
    let r = Registry::with_standard();
    let g = compile("param M: mat(2, 2)\nminimize norm2(M) + norm2(-3)", &r);
    let v = value(&g, &r, &[1.0, 2.0, 2.0, 4.0]);
    assert!((v - 8.0).abs() <= TOL, "{v}");
}

#[test]
fn sqrt_at_zero_gives_its_finite_first_derivative() {
    // sqrt(sqnorm(w)) at 0 along d: a₀ = a₁ = 0, a₂ = 2‖d‖², f′ = √(a₂/2) = ‖d‖.
    let r = Registry::with_standard();
    let g = compile("param w: vec(3)\nminimize sqrt(sqnorm(w))", &r);
    let t = taylor(&g, &r, &[0.0; 3], &[3.0, 0.0, 4.0], Order::One);
    assert_eq!(t.d1, Some(5.0));
    // f″ would need the argument's third coefficient: refused, saying why.
    let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
    let e = ev
        .directional(
            &[0.0; 3],
            &[3.0, 0.0, 4.0],
            Order::Two,
            EvalOptions::default(),
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("third Taylor coefficient") && msg.contains("norm2"),
        "{msg}"
    );
    // Buffers for first order only cannot hold a₂: the error says so.
    let mut ev = Evaluator::new(&g, &r, Order::One).unwrap_or_else(|e| panic!("{e}"));
    let e = ev
        .directional(
            &[0.0; 3],
            &[1.0, 0.0, 0.0],
            Order::One,
            EvalOptions::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("order 2"), "{e}");
    // Zero direction: everything is 0.
    let t = taylor(&g, &r, &[0.0; 3], &[0.0; 3], Order::Two);
    assert_eq!((t.d1, t.d2), (Some(0.0), Some(0.0)));
}

#[test]
fn sqrt_at_zero_with_a_linear_argument_is_still_refused() {
    let r = Registry::with_standard();
    let g = compile("param x: real\nminimize sqrt(x)", &r);
    let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
    for d in [1.0, -1.0] {
        let e = ev
            .directional(&[0.0], &[d], Order::One, EvalOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("no finite derivative"), "{e}");
    }
}
