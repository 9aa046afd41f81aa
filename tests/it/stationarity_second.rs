//! Second order of the max-type tier without enumeration: the examples of examples/nonsmooth and
//! the textbook minimax families (written with the index reductions) at their minimizers are
//! stationary to first and second order at every size; critical subspaces of dimension ≥ 2 are
//! decided through the Lagrangian's Hessian, refuted with a witness whose exact slope and
//! curvature are the reported ones, and a random-model property test agrees with brute force.

use crate::common;
use crate::common::cert::{certify_at, nonsmooth_example as example, proptest_cases};

use common::eval::compile;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::Graph;
use mcopt::registry::{Order, Registry};
use mcopt::stationarity::{Certificate, Status};
use proptest::prelude::*;

/// The models with a known minimizer, at size n: (name, model, minimizer).
fn minimizers(n: usize) -> Vec<(String, String, Vec<f64>)> {
    let header = format!("const n = {n}\nparam x: vec(n)\nminimize ");
    let mut out: Vec<(String, String, Vec<f64>)> = [
        ("maxq", 0.0),
        ("chained_cb3_1", 1.0),
        ("chained_cb3_2", 1.0),
        ("active_faces", 0.0),
        ("chained_crescent_1", 0.0),
        ("chained_crescent_2", 0.0),
    ]
    .iter()
    .map(|&(name, x)| (name.to_string(), example(name, n), vec![x; n]))
    .collect();
    if n <= 100 {
        out.push(("mxhilb".into(), example("mxhilb", n), vec![0.0; n]));
    }
    out.push((
        "max of n + 1 smooth functions".into(),
        header.clone() + "max(max(i in 1..n, x[i] + 0.5 * sqnorm(x)), 0.5 * sqnorm(x) - sum(x))",
        vec![0.0; n],
    ));
    out.push((
        "max of |affine forms|".into(),
        header + "max(max(i in 1..n, abs(x[i] - i)), abs(x[1] + x[2] - 3))",
        (1..=n).map(|i| i as f64).collect(),
    ));
    out
}

fn assert_stationary_to_second_order(n: usize) {
    let r = Registry::with_standard();
    for (name, text, x) in minimizers(n) {
        let g = compile(&text, &r);
        let c = certify_at(&g, &r, &x, Order::Two);
        assert_eq!(
            c.first.status,
            Status::Stationary,
            "{name} at n = {n}: {c:?}"
        );
        let s = c.second.as_ref().unwrap();
        assert_eq!(
            (s.status, s.method),
            (Status::Stationary, "max_type"),
            "{name} at n = {n}: {c:?}"
        );
    }
}

#[test]
fn minimizers_are_second_order_stationary_without_enumeration() {
    assert_stationary_to_second_order(10);
    assert_stationary_to_second_order(100);
}

/// The size (each certificate takes well under a second in release; the report of the
/// branch has the times).
#[test]
#[cfg_attr(debug_assertions, ignore)]
fn minimizers_are_second_order_stationary_at_n_1000() {
    assert_stationary_to_second_order(1000);
}

/// The critical subspaces are the ones the theory gives: {0} where the minimum is sharp, a line
/// for chained crescent II (d = e₁) and all of Rⁿ for MAXQ.
#[test]
fn critical_subspaces_have_the_expected_dimensions() {
    let r = Registry::with_standard();
    let n = 12;
    for (name, x, expect) in [
        ("chained_cb3_1", 1.0, "{0}"),
        ("active_faces", 0.0, "{0}"),
        ("chained_crescent_2", 0.0, "dimension 1;"),
        ("chained_crescent_1", 0.0, "dimension 11;"),
        ("maxq", 0.0, "dimension 12;"),
    ] {
        let g = compile(&example(name, n), &r);
        let c = certify_at(&g, &r, &vec![x; n], Order::Two);
        let reason = c.second.as_ref().unwrap().reason.clone().unwrap();
        assert!(reason.contains(expect), "{name}: {reason}");
    }
}

/// A second-order witness of the max-type tier has the reported exact slope (in [−tol, 0]) and
/// curvature (< −tol).
fn assert_curvature_witness(g: &Graph, r: &Registry, x: &[f64], c: &Certificate) {
    assert_eq!(c.second.as_ref().unwrap().method, "max_type", "{c:?}");
    assert_any_curvature_witness(g, r, x, c);
}

/// A second-order witness, from whichever tier decided (an undecided max-type second order
/// hands over to enumeration), has the reported exact slope and curvature.
fn assert_any_curvature_witness(g: &Graph, r: &Registry, x: &[f64], c: &Certificate) {
    assert_eq!(c.first.status, Status::Stationary, "{c:?}");
    let s = c.second.as_ref().unwrap();
    assert_eq!(s.status, Status::NotStationary, "{c:?}");
    let d = s.direction.as_ref().expect("a witness");
    let (slope, curv) = (s.slope.unwrap(), s.curvature.unwrap());
    assert!((-1e-6..=0.0).contains(&slope) && curv < -1e-6, "{c:?}");
    let mut ev = Evaluator::new(g, r, Order::Two).unwrap();
    let t = ev
        .directional(x, d, Order::Two, EvalOptions::default())
        .unwrap();
    assert_eq!((t.d1, t.d2), (Some(slope), Some(curv)), "{c:?}");
}

#[test]
fn negative_curvature_on_a_critical_plane_is_refuted_with_its_witness() {
    let r = Registry::with_standard();
    // |z| with a concave quadratic in (x, y): the critical cone is the plane d_z = 0, where the
    // Lagrangian's Hessian is −2I.
    let g = compile(
        "param x: real\nparam y: real\nparam z: real\nminimize abs(z) - x^2 - y^2 + 0.1 * x * y",
        &r,
    );
    let x = [0.0; 3];
    let c = certify_at(&g, &r, &x, Order::Two);
    assert_curvature_witness(&g, &r, &x, &c);
    assert_eq!(
        c.second.as_ref().unwrap().direction.as_ref().unwrap()[2],
        0.0
    );
    // A max of two quadratics both negative along (1, 1): refuted on the plane of ties.
    let g = compile(
        "param x: real\nparam y: real\nminimize max(x^2 - 2 * y^2, y^2 - 2 * x^2)",
        &r,
    );
    let x = [0.0; 2];
    let c = certify_at(&g, &r, &x, Order::Two);
    assert_curvature_witness(&g, &r, &x, &c);
    // |x² − y²| = max(x² − y², y² − x²) ≥ 0: the Lagrangian with equal weights is 0.
    let g = compile(
        "param x: real\nparam y: real\nminimize max(x^2 - y^2, y^2 - x^2)",
        &r,
    );
    let c = certify_at(&g, &r, &x, Order::Two);
    let s = c.second.as_ref().unwrap();
    assert_eq!(
        (s.status, s.method),
        (Status::Stationary, "max_type"),
        "{c:?}"
    );
}

/// A coefficient in {−2, −1.75, …, 2}.
fn coef() -> impl Strategy<Value = f64> {
    (-8i32..=8).prop_map(|k| k as f64 / 4.0)
}

fn vec2() -> impl Strategy<Value = [f64; 2]> {
    (coef(), coef()).prop_map(|(a, b)| [a, b])
}

/// f(x) = c·x + Σ a_i max(p_i·x, max(q_i·x, |r_i·x|)) + ½ (h₁ x₁² + h₂ x₂²) in R², every tie
/// at 0: f′(0; d) is piecewise linear and f″(0; d) = h₁ d₁² + h₂ d₂² whatever the pieces.
#[derive(Debug, Clone)]
struct Sq {
    c: [f64; 2],
    terms: Vec<SqTerm>,
    h: [f64; 2],
}

/// a · max(p·x, max(q·x, |r·x|)) as (a, p, q, r).
type SqTerm = (f64, [f64; 2], [f64; 2], [f64; 2]);

fn sq() -> impl Strategy<Value = Sq> {
    (
        vec2(),
        prop::collection::vec((coef(), vec2(), vec2(), vec2()), 1..4),
        vec2(),
    )
        .prop_map(|(c, terms, h)| Sq { c, terms, h })
}

fn lin(v: [f64; 2]) -> String {
    format!("({} * x1 + {} * x2)", v[0], v[1])
}

impl Sq {
    fn text(&self) -> String {
        let mut t = format!(
            "param x1: real\nparam x2: real\nminimize {} + 0.5 * ({} * x1^2 + {} * x2^2)",
            lin(self.c),
            self.h[0],
            self.h[1]
        );
        for (a, p, q, r) in &self.terms {
            t.push_str(&format!(
                " + {a} * max({}, max({}, abs({})))",
                lin(*p),
                lin(*q),
                lin(*r)
            ));
        }
        t
    }

    fn slope(&self, d: [f64; 2]) -> f64 {
        let dot = |v: [f64; 2]| v[0] * d[0] + v[1] * d[1];
        let mut f = dot(self.c);
        for (a, p, q, r) in &self.terms {
            f += a * dot(*p).max(dot(*q).max(dot(*r).abs()));
        }
        f
    }

    /// Brute force: f′(0; ·) is linear between the kink directions, so its zeros on the circle
    /// are sector ends or whole sectors (found on a fine grid); (first, second) order verdicts.
    fn brute_force(&self) -> (Status, Status) {
        let mut dirs: Vec<[f64; 2]> = (0..7200)
            .map(|k| {
                let a = k as f64 * std::f64::consts::PI / 3600.0;
                [a.cos(), a.sin()]
            })
            .collect();
        for (_, p, q, r) in &self.terms {
            let sub = |u: [f64; 2], v: [f64; 2]| [u[0] - v[0], u[1] - v[1]];
            let add = |u: [f64; 2], v: [f64; 2]| [u[0] + v[0], u[1] + v[1]];
            for l in [
                *r,
                sub(*p, *q),
                sub(*p, *r),
                add(*p, *r),
                sub(*q, *r),
                add(*q, *r),
            ] {
                let n = (l[0] * l[0] + l[1] * l[1]).sqrt();
                if n > 0.0 {
                    dirs.push([-l[1] / n, l[0] / n]);
                    dirs.push([l[1] / n, -l[0] / n]);
                }
            }
        }
        let min = dirs
            .iter()
            .map(|d| self.slope(*d))
            .fold(f64::INFINITY, f64::min);
        if min < -1e-9 {
            return (Status::NotStationary, Status::NotStationary);
        }
        let curv = dirs
            .iter()
            .filter(|d| self.slope(**d) <= 1e-9)
            .map(|d| self.h[0] * d[0] * d[0] + self.h[1] * d[1] * d[1])
            .fold(f64::INFINITY, f64::min);
        let second = if curv < -1e-9 {
            Status::NotStationary
        } else {
            Status::Stationary
        };
        (Status::Stationary, second)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(64)))]

    /// Every decided second-order verdict agrees with brute force, and every refutation carries
    /// its witness.
    #[test]
    fn second_order_verdicts_agree_with_brute_force(f in sq()) {
        let r = Registry::with_standard();
        let g = compile(&f.text(), &r);
        let x = [0.0, 0.0];
        let c = certify_at(&g, &r, &x, Order::Two);
        let (first, second) = f.brute_force();
        prop_assert_eq!(c.first.status, first, "{}: {:?}", f.text(), c);
        let s = c.second.as_ref().unwrap();
        if first == Status::Stationary {
            if s.status != Status::Inconclusive {
                prop_assert_eq!(s.status, second, "{}: {:?}", f.text(), c);
            }
            if s.status == Status::NotStationary {
                assert_any_curvature_witness(&g, &r, &x, &c);
            }
        }
    }
}
