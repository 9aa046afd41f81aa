//! Exact one-sided directional derivatives: docs/math.md §6 cases, one-sided differences,
//! positive homogeneity, equivalent formulas, gradients, and the RNN models.

use crate::common;
use crate::common::cert::proptest_cases;

use common::eval::*;
use mcopt::config::RowSel;
use mcopt::registry::{Order, Registry};
use proptest::prelude::*;

/// (model file, point, direction, f′, f″) from the table of docs/math.md §6.
type Case = (&'static str, &'static [f64], &'static [f64], f64, f64);

const CASES: &[Case] = &[
    ("abs_sq", &[0.0], &[1.0], -2.0, 3.0),
    ("abs_plus_sq", &[0.0], &[-1.0], 1.0, 1.0),
    ("double_well", &[0.0], &[1.0], 0.0, -3.0),
    ("max_xy", &[0.0, 0.0], &[1.0, 2.0], 2.0, 0.0),
    ("abs_parabola", &[0.0, 0.0], &[1.0, 0.0], 0.0, 2.0),
    ("abs_parabola_neg", &[0.0, 0.0], &[1.0, 0.0], 0.0, -1.0),
    ("relu_lin", &[0.0], &[1.0], 0.5, 0.0),
    ("elu_minus_x", &[0.0], &[-1.0], 0.0, 1.0),
    ("x_minus_elu", &[0.0], &[-1.0], 0.0, -1.0),
    ("two_layers", &[0.0, 0.0], &[1.0, 2.0], -2.0, 2.0),
];

#[test]
fn math_section_6_cases_are_exact() {
    let r = Registry::with_standard();
    for (name, x, d, f1, f2) in CASES {
        let m = model_file(&format!("examples/cases/{name}.mco"), &r);
        let g = lower(&m, Vec::new());
        let t = taylor(&g, &r, x, d, Order::Two);
        let (d1, d2) = (t.d1.unwrap_or(f64::NAN), t.d2.unwrap_or(f64::NAN));
        assert!((d1 - f1).abs() <= 1e-12, "{name}: f′ = {d1}, expected {f1}");
        assert!((d2 - f2).abs() <= 1e-12, "{name}: f″ = {d2}, expected {f2}");
        assert!(
            t.active_kinks > 0 || *name == "double_well",
            "{name}: the point is at a kink"
        );
    }
}

#[test]
fn first_order_does_not_report_second() {
    let r = Registry::with_standard();
    let g = compile("param x: real = 0\nminimize abs(x) + x^2", &r);
    let t = taylor(&g, &r, &[0.0], &[-2.0], Order::One);
    assert_eq!(t.d1, Some(2.0));
    assert_eq!(t.d2, None);
}

/// Nonsmooth test functions of three parameters, with kinks at 0 and on x = y = z.
const FORMULAS: &[&str] = &[
    "abs(x) + max(y, z) - min(x, 0.5 * y)",
    "(abs(x - y) - 1)^2 + relu(z) * x",
    "max(x, y) * max(y, z) + abs(z)^3",
    "elu(x) - relu(y - z) + leaky_relu(z, 0.1) * y",
    "exp(max(x, y)) + log(1 + abs(z)) - sqrt(1 + x^2)",
    "abs(y - x^2) - 1.5 * x^2 + tanh(z) * abs(x)",
    "norm1([1, 2] * x - [0, 1] * y) + sqnorm([x, y, z])",
    "max(abs(x), abs(y)) / (2 + sigmoid(z))",
];

fn formula_graph(f: &str, r: &Registry) -> mcopt::graph::Graph {
    compile(
        &format!("param x: real\nparam y: real\nparam z: real\nminimize {f}"),
        r,
    )
}

/// Points on kinks on purpose (coordinates 0 or equal), or random.
fn point() -> impl Strategy<Value = Vec<f64>> {
    let coord = prop_oneof![Just(0.0), Just(1.0), -2.0..2.0f64];
    prop::collection::vec(coord, 3)
}

fn direction() -> impl Strategy<Value = Vec<f64>> {
    let c = prop_oneof![Just(0.0), Just(1.0), Just(-1.0), -2.0..2.0f64];
    prop::collection::vec(c, 3).prop_filter("nonzero", |d| d.iter().any(|v| *v != 0.0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(48)))]

    #[test]
    fn derivatives_match_one_sided_differences(f in 0..FORMULAS.len(), x in point(), d in direction()) {
        let r = Registry::with_standard();
        let g = formula_graph(FORMULAS[f], &r);
        // Ties like x = y exactly are kinks of max; keep them (they are the point of the test).
        let res = check_against_differences(&g, &r, &x, &d);
        prop_assert!(res.is_ok(), "{}: {}", FORMULAS[f], res.err().unwrap_or_default());
    }

    #[test]
    fn derivatives_are_positively_homogeneous(f in 0..FORMULAS.len(), x in point(), d in direction(), s in 0.01..10.0f64) {
        let r = Registry::with_standard();
        let g = formula_graph(FORMULAS[f], &r);
        let t = taylor(&g, &r, &x, &d, Order::Two);
        let ds: Vec<f64> = d.iter().map(|v| s * v).collect();
        let ts = taylor(&g, &r, &x, &ds, Order::Two);
        let (a1, b1) = (t.d1.unwrap_or(f64::NAN), ts.d1.unwrap_or(f64::NAN));
        let (a2, b2) = (t.d2.unwrap_or(f64::NAN), ts.d2.unwrap_or(f64::NAN));
        prop_assert!(close(b1, s * a1, 1e-12), "f′: {} vs {}·{}", b1, s, a1);
        prop_assert!(close(b2, s * s * a2, 1e-12), "f″: {} vs {}²·{}", b2, s, a2);
    }

    #[test]
    fn equivalent_formulas_agree(x in point(), d in direction()) {
        let r = Registry::with_standard();
        let pairs = [
            ("relu(x) + relu(y - z)", "max(x, 0) + max(y - z, 0)"),
            ("abs(x) * abs(y - z)", "max(x, -x) * max(y - z, z - y)"),
            ("min(x, y) + min(y, z)^2", "-max(-x, -y) + (-max(-y, -z))^2"),
            ("norm1([x, y, z])", "abs(x) + abs(y) + abs(z)"),
            ("leaky_relu(x, 0.2)", "max(x, 0.2 * x)"),
        ];
        for (a, b) in pairs {
            let (ga, gb) = (formula_graph(a, &r), formula_graph(b, &r));
            let (ta, tb) = (taylor(&ga, &r, &x, &d, Order::Two), taylor(&gb, &r, &x, &d, Order::Two));
            prop_assert!(close(ta.value, tb.value, 1e-14), "{a} vs {b}: values");
            prop_assert!(close(ta.d1.unwrap_or(0.0), tb.d1.unwrap_or(0.0), 1e-14), "{a} vs {b}: f′ {:?} {:?}", ta.d1, tb.d1);
            prop_assert!(close(ta.d2.unwrap_or(0.0), tb.d2.unwrap_or(0.0), 1e-14), "{a} vs {b}: f″ {:?} {:?}", ta.d2, tb.d2);
        }
    }

    #[test]
    fn gradient_dot_direction_is_the_derivative_away_from_kinks(f in 0..FORMULAS.len(), x in prop::collection::vec(-2.0..2.0f64, 3), d in direction()) {
        let r = Registry::with_standard();
        let g = formula_graph(FORMULAS[f], &r);
        let t = taylor(&g, &r, &x, &d, Order::One);
        prop_assume!(t.active_kinks == 0);
        let grad = gradient(&g, &r, &x);
        let dot: f64 = grad.iter().zip(&d).map(|(a, b)| a * b).sum();
        prop_assert!(close(dot, t.d1.unwrap_or(f64::NAN), 1e-12), "∇f·d = {} but f′ = {:?}", dot, t.d1);
    }
}

#[test]
fn syn_rnn_at_zero_matches_the_papers_numbers() {
    let r = Registry::with_standard();
    let train = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
    let test = syn_graph(&r, RowSel::Range { start: 8, end: 10 });
    let zero = vec![0.0; train.n_params()];
    assert_eq!(train.n_params(), 55);
    assert!((value(&train, &r, &zero) - 2.179217475548).abs() < 1e-9);
    assert!((value(&test, &r, &zero) - 6.283130097808).abs() < 1e-9);
}

fn random_vec(rng: &mut mcopt::rng::Rng, n: usize, std: f64) -> Vec<f64> {
    (0..n).map(|_| std * rng.normal()).collect()
}

#[test]
fn syn_rnn_derivatives_match_differences_at_random_points_and_kinks() {
    let r = Registry::with_standard();
    let g = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
    let n = g.n_params();
    let mut rng = mcopt::rng::Rng::new(42);
    for _ in 0..8 {
        let x = random_vec(&mut rng, n, 0.5);
        let d = random_vec(&mut rng, n, 1.0);
        check_against_differences(&g, &r, &x, &d).unwrap_or_else(|e| panic!("{e}"));
        let mut kinked = x.clone();
        put_u1_on_kink(&g, &mut kinked);
        let t = taylor(&g, &r, &kinked, &d, Order::Two);
        assert!(t.active_kinks >= 1, "u_1 has a zero component");
        check_against_differences(&g, &r, &kinked, &d).unwrap_or_else(|e| panic!("at a kink: {e}"));
        // the gradient selection agrees with f′ where no kink is active
        if taylor(&g, &r, &x, &d, Order::One).active_kinks == 0 {
            let grad = gradient(&g, &r, &x);
            let dot: f64 = grad.iter().zip(&d).map(|(a, b)| a * b).sum();
            assert!(close(
                dot,
                taylor(&g, &r, &x, &d, Order::One).d1.unwrap_or(f64::NAN),
                1e-10
            ));
        }
    }
}

/// Set b₁ so that the first component of u_1 = W h_0 + V x_1 + b is exactly 0.
fn put_u1_on_kink(g: &mcopt::graph::Graph, theta: &mut [f64]) {
    let slot = |name: &str| {
        g.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.offset)
            .unwrap_or(0)
    };
    let (v, b) = (slot("V"), slot("b"));
    let x1: Vec<f64> = std::fs::read_to_string(repo().join("examples/data/syn_T10.csv"))
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .take(5)
        .map(|s| s.parse().unwrap_or(0.0))
        .collect();
    // V is 4×5 column-major: V[0, j] at v + 4 j.
    let vx: f64 = (0..5).map(|j| theta[v + 4 * j] * x1[j]).sum();
    theta[b] = -vx;
}

#[test]
fn sp500_rnn_derivatives_match_differences() {
    let r = Registry::with_standard();
    let g = sp500_graph(&r);
    assert_eq!(g.n_params(), 661);
    let mut rng = mcopt::rng::Rng::new(7);
    for _ in 0..2 {
        let x = random_vec(&mut rng, g.n_params(), 0.1);
        let d = random_vec(&mut rng, g.n_params(), 1.0);
        check_against_differences(&g, &r, &x, &d).unwrap_or_else(|e| panic!("{e}"));
    }
}
