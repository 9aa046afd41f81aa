//! The standard plugin passes the same self-test a loaded plugin must pass, and its ray-Taylor
//! coefficients are one-sided derivatives (property tests at random points and on kinks),
//! positively homogeneous in the direction, and agree between equivalent formulas.

use crate::common;

use common::plugins::STANDARD_FUNCTIONS;
use mcopt::plugin_host::self_test;
use mcopt::registry::{Order, Registry};
use proptest::prelude::*;

fn ray(r: &Registry, name: &str, p: &[f64], a: [f64; 3]) -> [f64; 3] {
    let id = r.lookup(name).expect("known function");
    let (mut f0, mut f1, mut f2) = ([0.0], [0.0], [0.0]);
    r.call(
        id,
        p,
        Order::Two,
        0.0,
        [&[a[0]], &[a[1]], &[a[2]]],
        [&mut f0, &mut f1, &mut f2],
    )
    .expect("call succeeds");
    [f0[0], f1[0], f2[0]]
}

#[test]
fn the_standard_plugin_passes_the_self_test() {
    let r = Registry::with_standard();
    let ids: Vec<_> = r.function_ids().collect();
    let report = self_test(&r, &ids);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.checked.len(), 11);
    // Functions with kinks were checked on them too (6 rays per breakpoint).
    let scad = report.checked.iter().find(|(n, _)| n == "scad").unwrap();
    assert!(scad.1 >= 5 * 6, "{scad:?}");
}

/// One-sided (Richardson-extrapolated) first and second differences of t ↦ φ(a(t)).
fn differences(r: &Registry, name: &str, a: [f64; 3]) -> (f64, f64) {
    let g = |t: f64| {
        ray(
            r,
            name,
            &[],
            [a[0] + a[1] * t + 0.5 * a[2] * t * t, 0.0, 0.0],
        )[0]
    };
    let h = 1e-5;
    let d1 = 2.0 * (g(h / 2.0) - g(0.0)) / (h / 2.0) - (g(h) - g(0.0)) / h;
    let h = 1e-3;
    let s = |h: f64| (g(2.0 * h) - 2.0 * g(h) + g(0.0)) / (h * h);
    (d1, 2.0 * s(h / 2.0) - s(h))
}

fn point_or_kink() -> impl Strategy<Value = f64> {
    // Half the time exactly on a breakpoint of some standard function at default parameters.
    prop_oneof![
        -4.5..4.5f64,
        prop::sample::select(vec![0.0, 1.0, -1.0, 3.0, -3.0, 3.7, -3.7]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn coefficients_are_one_sided_derivatives(
        k in 0..STANDARD_FUNCTIONS.len(), x in point_or_kink(), d in prop::sample::select(vec![-1.5, -1.0, 0.0, 0.5, 2.0]),
        c in -1.0..1.0f64,
    ) {
        let r = Registry::with_standard();
        let name = STANDARD_FUNCTIONS[k];
        // Keep the differences on one piece: off a kink, stay 0.05 away from every breakpoint.
        let bps = &r.info(r.lookup(name).unwrap()).breakpoints;
        prop_assume!(bps.iter().all(|b| *b == x || (x - b).abs() > 0.05));
        let f = ray(&r, name, &[], [x, d, c]);
        let (d1, d2) = differences(&r, name, [x, d, c]);
        prop_assert!((d1 - f[1]).abs() < 1e-6 * (1.0 + f[1].abs()), "{name} at {x}, {d}, {c}: f1 {} vs {d1}", f[1]);
        prop_assert!((d2 - f[2]).abs() < 1e-4 * (1.0 + f[2].abs()), "{name} at {x}, {d}, {c}: f2 {} vs {d2}", f[2]);
    }

    #[test]
    fn coefficients_are_positively_homogeneous(
        k in 0..STANDARD_FUNCTIONS.len(), x in point_or_kink(), d in -2.0..2.0f64, c in -1.0..1.0f64, l in 0.1..4.0f64,
    ) {
        let r = Registry::with_standard();
        let f = ray(&r, STANDARD_FUNCTIONS[k], &[], [x, d, c]);
        let g = ray(&r, STANDARD_FUNCTIONS[k], &[], [x, l * d, l * l * c]);
        prop_assert_eq!(f[0], g[0]);
        prop_assert!((g[1] - l * f[1]).abs() <= 1e-12 * (1.0 + g[1].abs()));
        prop_assert!((g[2] - l * l * f[2]).abs() <= 1e-12 * (1.0 + g[2].abs()));
    }

    /// relu(x) = leaky_relu(x, 0), |x| = relu(x) + relu(−x), capped_l1 with a huge cap = l1,
    /// mcp with a huge gamma ≈ l1, elu(x, 0) = relu(x): equal coefficients, kinks included.
    #[test]
    fn equivalent_formulas_agree(x in point_or_kink(), d in -2.0..2.0f64, c in -1.0..1.0f64) {
        let r = Registry::with_standard();
        let relu = ray(&r, "relu", &[], [x, d, c]);
        prop_assert_eq!(relu, ray(&r, "leaky_relu", &[0.0], [x, d, c]));
        prop_assert_eq!(relu, ray(&r, "elu", &[0.0], [x, d, c]).map(|v| v + 0.0));
        let neg = ray(&r, "relu", &[], [-x, -d, -c]);
        let abs = [relu[0] + neg[0], relu[1] + neg[1], relu[2] + neg[2]];
        prop_assert_eq!(abs, ray(&r, "l1", &[], [x, d, c]));
        prop_assert_eq!(ray(&r, "capped_l1", &[1.0, 1e9], [x, d, c]), ray(&r, "l1", &[], [x, d, c]));
    }
}
