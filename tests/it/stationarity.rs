//! Certificates: the cases of docs/math.md §6 in every form that applies, the (P1) exactness case,
//! witnesses confirmed by exact derivatives, and inconclusive verdicts that stay inconclusive.

use crate::common;

use common::eval::compile;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::forms::{self, Betas};
use mcopt::graph::Graph;
use mcopt::registry::{Order, Registry};
use mcopt::stationarity::{certify, Certificate, Form, Options, Problem, Status};

use Status::{Inconclusive as I, NotStationary as N, Stationary as S};

fn opts(order: Order) -> Options {
    Options {
        order,
        ..Options::default()
    }
}

/// Certify the model's initial point in one form ((P1) with one β for all layers).
fn run(g: &Graph, r: &Registry, form: Form, beta: f64, o: &Options) -> Certificate {
    let theta: Vec<f64> = vec![0.0; g.n_params()];
    let lifted = forms::lift(g);
    let mut ev = Evaluator::new(g, r, Order::Zero).unwrap();
    let z = lifted.complete(&mut ev, &theta).unwrap();
    let p1 = lifted.penalized(&Betas::uniform(beta));
    let adjoint = forms::adjoint::transpose_graph(g, &lifted);
    let problem = match form {
        Form::P | Form::P0 => Problem {
            form,
            graph: g,
            registry: r,
            point: &theta,
            lifted: Some(&lifted),
            adjoint: Some(&adjoint),
        },
        Form::P1 => Problem {
            form,
            graph: &p1,
            registry: r,
            point: &z,
            lifted: Some(&lifted),
            adjoint: None,
        },
    };
    certify(&problem, o).unwrap()
}

/// The witness is confirmed by an exact evaluation in the form's variables.
fn confirm(g: &Graph, r: &Registry, form: Form, beta: f64, c: &Certificate) {
    let lifted = forms::lift(g);
    let p1 = lifted.penalized(&Betas::uniform(beta));
    let graph = match form {
        Form::P => g,
        Form::P0 => &lifted.graph,
        Form::P1 => &p1,
    };
    let mut ev = Evaluator::new(g, r, Order::Zero).unwrap();
    let z = lifted.complete(&mut ev, &vec![0.0; g.n_params()]).unwrap();
    let x = if form == Form::P {
        vec![0.0; g.n_params()]
    } else {
        z
    };
    let mut fev = Evaluator::new(graph, r, Order::Two).unwrap();
    for v in [Some(&c.first), c.second.as_ref()].into_iter().flatten() {
        if v.status != N {
            assert!(
                v.direction.is_none(),
                "a witness without a refutation: {v:?}"
            );
            continue;
        }
        // Every refutation carries its witness and its exact slope (and curvature, second order).
        let d = v
            .direction
            .as_ref()
            .expect("a not_stationary verdict carries a witness");
        assert!(v.slope.is_some(), "{v:?}");
        let t = fev
            .directional(&x, d, Order::Two, EvalOptions::default())
            .unwrap();
        if let Some(s) = v.slope {
            assert_eq!(t.d1, Some(s), "slope of the witness");
        }
        if let Some(c2) = v.curvature {
            assert_eq!(t.d2, Some(c2), "curvature of the witness");
            assert!(t.d1.unwrap().abs() <= 1e-9);
        }
    }
}

/// docs/math.md §6, each as written (P) and with its inner function as a layer (P, P0, P1).
const CASES: &[(&str, &str, Status, Status)] = &[
    ("param x: real\nminimize (abs(x) - 1)^2 + 0.5 * x^2", "param x: real\nlayer u = abs(x)\nminimize (u - 1)^2 + 0.5 * x^2", N, N),
    ("param x: real\nminimize abs(x) + 0.5 * x^2", "param x: real\nlayer u = abs(x)\nminimize u + 0.5 * x^2", S, S),
    ("param x: real\nminimize (x^2 - 1)^2 + 0.5 * x^2", "param x: real\nlayer u = x^2 - 1\nminimize u^2 + 0.5 * x^2", S, N),
    ("param x: real\nparam y: real\nminimize max(x, y)", "param x: real\nparam y: real\nlayer u = max(x, y)\nminimize u", N, N),
    ("param x: real\nparam y: real\nminimize abs(y - x^2) - 1.5 * x^2", "param x: real\nparam y: real\nlayer u = y - x^2\nminimize abs(u) - 1.5 * x^2", S, N),
    ("param x: real\nminimize relu(x) - 0.5 * x", "param x: real\nlayer u = relu(x)\nminimize u - 0.5 * x", S, S),
    ("param x: real\nminimize elu(x) - x", "param x: real\nlayer u = elu(x)\nminimize u - x", S, S),
    ("param x: real\nminimize x - elu(x)", "param x: real\nlayer u = elu(x)\nminimize x - u", S, N),
    ("param t1: real\nparam t2: real\nlayer u1 = max(t1, t2)\nlayer u2 = abs(u1 - t1)\nminimize (u2 - 1)^2", "param t1: real\nparam t2: real\nlayer u1 = max(t1, t2)\nlayer u2 = abs(u1 - t1)\nminimize (u2 - 1)^2", N, N),
];

#[test]
fn math_section_6_cases_in_every_form() {
    let r = Registry::with_standard();
    for (plain, layered, first, second) in CASES {
        let g = compile(plain, &r);
        let c = run(&g, &r, Form::P, 10.0, &opts(Order::Two));
        assert_eq!(c.first.status, *first, "(P) first order of {plain}: {c:?}");
        assert_eq!(
            c.second.as_ref().unwrap().status,
            *second,
            "(P) second order of {plain}: {c:?}"
        );
        confirm(&g, &r, Form::P, 10.0, &c);
        let g = compile(layered, &r);
        for form in [Form::P, Form::P0, Form::P1] {
            // Second order of (P0)/(P1) is along straight lines in z, which differs from (P)
            // when a layer is curved; first order is equivalent in all three (β large).
            let c = run(&g, &r, form, 10.0, &opts(Order::Two));
            assert_eq!(
                c.first.status, *first,
                "{form:?} first order of {layered}: {c:?}"
            );
            confirm(&g, &r, form, 10.0, &c);
            if form == Form::P {
                assert_eq!(
                    c.second.as_ref().unwrap().status,
                    *second,
                    "{layered}: {c:?}"
                );
            }
        }
    }
}

#[test]
fn witnesses_have_the_documented_slopes_and_curvatures() {
    let r = Registry::with_standard();
    // Clarke stationary but not d-stationary: refuted with f′ = −2 along ±1.
    let g = compile("param x: real\nminimize (abs(x) - 1)^2 + 0.5 * x^2", &r);
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::One));
    assert_eq!(c.first.status, N);
    assert_eq!(c.first.slope, Some(-2.0));
    assert_eq!(c.first.direction.unwrap()[0].abs(), 1.0);
    // First-order but not second-order stationary: curvature −3 along a unit direction.
    let g = compile("param x: real\nminimize (x^2 - 1)^2 + 0.5 * x^2", &r);
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::Two));
    assert_eq!(c.first.status, S);
    let s = c.second.unwrap();
    assert_eq!((s.status, s.method), (N, "lanczos"));
    assert_eq!(s.curvature, Some(-3.0));
    // abs(y − x²) − 1.5x²: along (±1, 0), f′ = 0 and f″ = −1.
    let g = compile(
        "param x: real\nparam y: real\nminimize abs(y - x^2) - 1.5 * x^2",
        &r,
    );
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::Two));
    let s = c.second.unwrap();
    assert_eq!(s.status, N);
    assert_eq!(s.curvature, Some(-1.0));
    assert_eq!(s.direction.unwrap()[1], 0.0);
}

#[test]
fn p1_exactness_threshold_is_two() {
    let r = Registry::with_standard();
    let text =
        std::fs::read_to_string(common::eval::repo().join("examples/cases/p1_exact.mco")).unwrap();
    let g = compile(&text, &r);
    for form in [Form::P, Form::P0] {
        let c = run(&g, &r, form, 1.0, &opts(Order::Two));
        assert_eq!(c.first.status, S, "{form:?}");
        assert_eq!(c.second.unwrap().status, S, "{form:?}");
    }
    for (beta, want) in [(0.5, N), (1.0, N), (1.99, N), (2.0, S), (2.5, S), (10.0, S)] {
        let c = run(&g, &r, Form::P1, beta, &opts(Order::One));
        assert_eq!(c.first.status, want, "β = {beta}: {c:?}");
        assert_eq!(c.first.method, "convex_qp", "β = {beta}: {c:?}");
        if want == N {
            // The witness increases u: slope −2 + β per unit of d_u.
            let d = c.first.direction.unwrap();
            assert!(d[1] > 0.0);
            assert!((c.first.slope.unwrap() - (beta - 2.0) * d[1]).abs() < 1e-9);
        }
    }
}

#[test]
fn inconclusive_is_never_turned_into_stationary() {
    let r = Registry::with_standard();
    // 10 nested kinks: a stationary point that enumeration certifies, refused past the cap.
    let text = "param x: vec(5)\nminimize sum(abs(abs(x) - 0)) + 0.5 * sqnorm(x)";
    let g = compile(text, &r);
    let capped = Options {
        max_pieces: 16,
        ..opts(Order::One)
    };
    let c = run(&g, &r, Form::P, 1.0, &capped);
    assert_eq!(c.first.status, I, "{c:?}");
    let reason = c.first.reason.unwrap();
    assert!(
        reason.contains("2^10") && reason.contains("--max-pieces 16"),
        "{reason}"
    );
    // With room to enumerate, the same point is certified.
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::One));
    assert_eq!(c.first.status, S, "{c:?}");
    // A descent direction is still found past the cap.
    let g = compile(
        "param x: vec(5)\nminimize sum(abs(abs(x) - 0)) - 2 * sum(x)",
        &r,
    );
    let c = run(&g, &r, Form::P, 1.0, &capped);
    assert_eq!((c.first.status, c.first.method), (N, "search"));
}

#[test]
fn syn_rnn_at_the_authors_start_in_every_form() {
    let r = Registry::with_standard();
    let g = common::eval::syn_graph(&r, mcopt::config::RowSel::Range { start: 0, end: 8 });
    let specs: Vec<mcopt::config::VarSpec> = g
        .params
        .iter()
        .map(|p| {
            mcopt::config::VarSpec::new(
                &p.name,
                p.shape.rows,
                p.shape.cols,
                mcopt::config::VarRole::Param,
            )
        })
        .collect();
    let path = common::eval::repo().join("examples/data/srpa_syn_theta0.yaml");
    let v = mcopt::config::load_point(&path, &specs, mcopt::config::PointMode::Point).unwrap();
    let theta: Vec<f64> = v.values.into_iter().flatten().flatten().collect();
    let lifted = forms::lift(&g);
    let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
    let z = lifted.complete(&mut ev, &theta).unwrap();
    let p1 = lifted.penalized(&Betas::uniform(1.0));
    let o = opts(Order::Two);
    for (form, graph, x) in [
        (Form::P, &g, &theta),
        (Form::P0, &g, &theta),
        (Form::P1, &p1, &z),
    ] {
        let p = Problem {
            form,
            graph,
            registry: &r,
            point: x,
            lifted: Some(&lifted),
            adjoint: None,
        };
        let c = certify(&p, &o).unwrap();
        assert_eq!(c.first.status, N, "{form:?}: {c:?}");
        // (P1) at a feasible point: every penalty term at its kink, one convex QP.
        let want = if form == Form::P1 {
            "convex_qp"
        } else {
            "gradient"
        };
        assert_eq!(c.first.method, want, "{form:?}");
        let d = c.first.direction.clone().unwrap();
        let (fg, fx) = match form {
            Form::P => (&g, &theta),
            Form::P0 => (&lifted.graph, &z),
            Form::P1 => (&p1, &z),
        };
        let mut fev = Evaluator::new(fg, &r, Order::One).unwrap();
        let t = fev
            .directional(fx, &d, Order::One, EvalOptions::default())
            .unwrap();
        assert_eq!(t.d1, c.first.slope, "{form:?}");
        assert!(t.d1.unwrap() < 0.0);
        if form == Form::P0 {
            assert!(forms::tangent::is_tangent(
                &lifted,
                &mut fev,
                &z,
                &d,
                1e-12,
                EvalOptions::default()
            )
            .unwrap());
        }
    }
}

#[test]
fn p0_second_order_is_along_straight_tangent_lines() {
    let r = Registry::with_standard();
    // F = u − 2x² with u = x²: along the tangent (1, 0), F″ = −4, while f″ = −2.
    let g = compile("param x: real\nlayer u = x^2\nminimize u - 2 * x^2", &r);
    let c = run(&g, &r, Form::P0, 1.0, &opts(Order::Two));
    let s = c.second.clone().unwrap();
    assert_eq!((s.status, s.method), (N, "lanczos"), "{c:?}");
    assert_eq!(s.curvature, Some(-4.0));
    confirm(&g, &r, Form::P0, 1.0, &c);
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::Two));
    assert_eq!(c.second.unwrap().curvature, Some(-2.0));
    // Convex along every tangent line: stationary.
    let g = compile(
        "param x: real\nparam y: real\nlayer u = x^2 - y\nminimize u^2 + 0.5 * x^2 + y^2",
        &r,
    );
    let c = run(&g, &r, Form::P0, 1.0, &opts(Order::Two));
    assert_eq!(c.second.unwrap().status, S);
}

/// Issue 15: a kink counted only within `ztol` must not make a point stationary whose exact
/// slope is negative. |x − 0.5| − 0.05x at x = 0 is smooth, f′(0; 1) = −1.05; with ztol 0.7
/// the tiers see a convex kink whose subdifferential holds 0.
#[test]
fn ztol_verdicts_are_rechecked_with_exact_slopes_in_every_form() {
    let r = &Registry::with_standard();
    let plain = compile("param x: real\nminimize abs(x - 0.5) - 0.05 * x", r);
    let layered = compile(
        "param x: real\nlayer u = abs(x - 0.5)\nminimize u - 0.05 * x",
        r,
    );
    let o = Options {
        ztol: 0.7,
        ..opts(Order::Two)
    };
    for (g, form) in [(&plain, Form::P), (&layered, Form::P), (&layered, Form::P0)] {
        let c = run(g, r, form, 2.0, &o);
        assert_eq!(c.first.status, N, "{form:?}: {c:#?}");
        assert!(c.first.slope.unwrap() < -0.5, "{form:?}: {c:#?}");
        assert_eq!(c.second.as_ref().unwrap().status, N, "{form:?}");
        assert_eq!((c.tol, c.ztol), (o.tol, 0.7));
        confirm(g, r, form, 2.0, &c);
        // Without ztol the same verdict, with the exact slope.
        let e = run(g, r, form, 2.0, &opts(Order::One));
        assert_eq!(e.first.status, N, "{form:?}: {e:#?}");
        assert_eq!(e.ztol, 0.0);
    }
    // (P1): the exact descent (1, −1)/√2 runs along the penalty's kink, which no piece of the
    // ztol enumeration examines: the verdict stands, and says exactly what was re-checked.
    let c = run(&layered, r, Form::P1, 2.0, &o);
    if c.first.status == S {
        let reason = c.first.reason.unwrap();
        assert!(reason.contains("reached with ztol = 0.7"), "{reason}");
        assert!(reason.contains("directions examined"), "{reason}");
    }
}

#[test]
fn a_stop_signal_leaves_the_verdict_interrupted_and_the_command_reports_it_inconclusive() {
    use std::sync::atomic::AtomicBool;
    static STOP: AtomicBool = AtomicBool::new(true);
    let r = Registry::with_standard();
    let g = compile(
        "param x: vec(5)\nminimize sum(abs(abs(x) - 0)) + 0.5 * sqnorm(x)",
        &r,
    );
    let o = Options {
        interrupt: Some(&STOP),
        ..opts(Order::Two)
    };
    let mut c = run(&g, &r, Form::P, 1.0, &o);
    assert_eq!(c.first.status, Status::Interrupted, "{c:?}");
    assert_eq!(c.second.as_ref().unwrap().status, Status::Interrupted);
    mcopt::stationarity::interrupted_as_inconclusive(&mut c.first);
    assert_eq!(c.first.status, I);
    assert_eq!(c.first.reason.as_deref(), Some("interrupted"));
    // Without the signal the same point is certified.
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::One));
    assert_eq!(c.first.status, S, "{c:?}");
}

#[test]
fn curved_kinks_are_decided_to_second_order_along_a_one_dimensional_critical_cone() {
    let r = Registry::with_standard();
    // The kink's argument y + x² curves through 0; the critical cone is the line d_y = 0, where
    // f″(0; d) = 2 d_x² > 0: second-order stationary.
    let g = compile(
        "param x: real\nparam y: real\nminimize abs(y + x^2) - 0.5 * y + x^4",
        &r,
    );
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::Two));
    assert_eq!(c.first.status, S, "{c:?}");
    let s = c.second.as_ref().unwrap();
    assert_eq!(s.status, S, "{c:?}");
    // With −3x² the curvature along the same line is 2 − 6 = −4: refuted, with its witness.
    let g = compile(
        "param x: real\nparam y: real\nminimize abs(y + x^2) - 0.5 * y - 3 * x^2",
        &r,
    );
    let c = run(&g, &r, Form::P, 1.0, &opts(Order::Two));
    assert_eq!(c.first.status, S, "{c:?}");
    let s = c.second.as_ref().unwrap();
    assert_eq!(s.status, N, "{c:?}");
    assert_eq!(s.curvature, Some(-4.0), "{c:?}");
    assert_eq!(s.direction.as_ref().unwrap()[1], 0.0, "{c:?}");
    confirm(&g, &r, Form::P, 1.0, &c);
}
