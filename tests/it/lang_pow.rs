//! Issue 17: `pow(a, p)` for a constant real p: values and `diff` (orders 1 and 2) against
//! closed forms and one-sided differences, and the one-sided rules at a = 0
//! (docs/derivatives.md, "pow").

use crate::common;

use common::eval::*;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::registry::{Order, Registry};

/// f, f′, f″ of `minimize pow(<arg>, p)` along the ray, or the error message.
fn ray(
    arg: &str,
    p: f64,
    x: f64,
    d: f64,
    order: Order,
) -> Result<(f64, Option<f64>, Option<f64>), String> {
    let r = Registry::with_standard();
    let g = compile(&format!("param x: real\nminimize pow({arg}, {p})\n"), &r);
    let mut ev = Evaluator::new(&g, &r, Order::Two).map_err(|e| e.to_string())?;
    let t = ev
        .directional(&[x], &[d], order, EvalOptions::default())
        .map_err(|e| e.to_string())?;
    Ok((t.value, t.d1, t.d2))
}

#[test]
fn pow_away_from_zero_is_smooth() {
    let r = Registry::with_standard();
    let g = compile(
        "param x: vec(2)\nminimize pow(x[1], 2.5) + pow(abs(x[2]), 0.3) + pow(x[1], -1.5)\n",
        &r,
    );
    let x = [1.3, -0.7];
    let want = 1.3f64.powf(2.5) + 0.7f64.powf(0.3) + 1.3f64.powf(-1.5);
    assert!(close(value(&g, &r, &x), want, 1e-14));
    check_against_differences(&g, &r, &x, &[0.4, -1.1]).unwrap();
    let grad = gradient(&g, &r, &x);
    let want = [
        2.5 * 1.3f64.powf(1.5) - 1.5 * 1.3f64.powf(-2.5),
        -0.3 * 0.7f64.powf(-0.7),
    ];
    assert!(
        close(grad[0], want[0], 1e-13) && close(grad[1], want[1], 1e-13),
        "{grad:?}"
    );
    // An integer p is the ordinary power, also for a < 0.
    let (v, d1, d2) = ray("x", 3.0, -2.0, 1.0, Order::Two).unwrap();
    assert_eq!((v, d1, d2), (-8.0, Some(12.0), Some(-12.0)));
}

#[test]
fn pow_at_zero_follows_the_one_sided_rules() {
    // |a|^p with a = t·d: f = |d|^p t^p.
    // p > 2: f′ = 0, f″ = 0.
    assert_eq!(
        ray("abs(x)", 2.5, 0.0, -1.0, Order::Two).unwrap(),
        (0.0, Some(0.0), Some(0.0))
    );
    // 1 < p < 2: f′ = 0, f″ infinite: refused at second order only.
    assert_eq!(
        ray("abs(x)", 1.5, 0.0, 1.0, Order::One).unwrap(),
        (0.0, Some(0.0), None)
    );
    let e = ray("abs(x)", 1.5, 0.0, 1.0, Order::Two).unwrap_err();
    assert!(e.contains("f″ is infinite"), "{e}");
    // p < 1: no finite first derivative.
    let e = ray("abs(x)", 0.5, 0.0, 1.0, Order::One).unwrap_err();
    assert!(e.contains("no finite derivative"), "{e}");
    // Along d = 0 the argument stays at 0.
    assert_eq!(
        ray("abs(x)", 0.5, 0.0, 0.0, Order::Two).unwrap(),
        (0.0, Some(0.0), Some(0.0))
    );
    // a < 0 and a moving into a < 0 are outside the domain.
    assert!(ray("x", 1.5, -1.0, 0.0, Order::Zero)
        .unwrap_err()
        .contains("a ≥ 0"));
    assert!(ray("x", 1.5, 0.0, -1.0, Order::One)
        .unwrap_err()
        .contains("a < 0"));
    // a = t²·d²: f = |d|^{2p} t^{2p}.
    // p = 0.5 is sqrt: f′ = |d|, f″ refused (needs the third coefficient).
    let (v, d1, _) = ray("x^2", 0.5, 0.0, -3.0, Order::One).unwrap();
    assert_eq!((v, d1), (0.0, Some(3.0)));
    assert!(ray("x^2", 0.5, 0.0, -3.0, Order::Two).is_err());
    // 0.5 < p < 1: f′ = 0, f″ refused; p > 1: f′ = f″ = 0; p < 0.5: refused.
    assert_eq!(
        ray("x^2", 0.75, 0.0, 2.0, Order::One).unwrap(),
        (0.0, Some(0.0), None)
    );
    assert!(ray("x^2", 0.75, 0.0, 2.0, Order::Two).is_err());
    assert_eq!(
        ray("x^2", 1.25, 0.0, 2.0, Order::Two).unwrap(),
        (0.0, Some(0.0), Some(0.0))
    );
    assert!(ray("x^2", 0.25, 0.0, 2.0, Order::One).is_err());
    // p ≤ 0 at 0 is undefined.
    assert!(ray("abs(x)", -0.5, 0.0, 1.0, Order::Zero).is_err());
}

#[test]
fn pow_at_zero_matches_one_sided_differences() {
    // The exact f′ and f″ agree with one-sided differences where they exist.
    let r = Registry::with_standard();
    let g = compile(
        "param x: vec(2)\nminimize pow(abs(x[1]), 2.5) + pow(x[2]^2, 1.5)\n",
        &r,
    );
    check_against_differences(&g, &r, &[0.0, 0.0], &[-0.8, 1.3]).unwrap();
    check_against_differences(&g, &r, &[0.0, 0.4], &[0.8, -1.3]).unwrap();
}

#[test]
fn the_exponent_must_be_constant() {
    let r = Registry::with_standard();
    let src = source("param x: real\nparam p: real\nminimize pow(x, p)\n");
    let program = mcopt::syntax::parse(&src).unwrap();
    let d = mcopt::check::check(&src, &program, &r).unwrap_err();
    let d = d.iter().next().unwrap();
    assert_eq!(d.code, "mcopt::check::not_constant");
    let span = d.primary().unwrap();
    assert_eq!(&src.text[span.start..span.end], "p");
}
