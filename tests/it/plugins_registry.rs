//! The registry with the standard plugin: lookup, parameters, ray-Taylor values at and away from
//! kinks (worked out by hand), ztol, errors, and the proximal maps against brute force.

use crate::common;

use common::plugins::STANDARD_FUNCTIONS;
use mcopt::registry::{CallErrorKind, FunctionKind, Order, Registry};

/// (f0, f1, f2) of function `name` along the single ray (a0, a1, a2), with the active kink count.
fn ray(r: &Registry, name: &str, params: &[f64], a: [f64; 3], ztol: f64) -> ([f64; 3], usize) {
    let id = r.lookup(name).expect("known function");
    let (a0, a1, a2) = ([a[0]], [a[1]], [a[2]]);
    let (mut f0, mut f1, mut f2) = ([0.0], [0.0], [0.0]);
    let k = r
        .call(
            id,
            params,
            Order::Two,
            ztol,
            [&a0, &a1, &a2],
            [&mut f0, &mut f1, &mut f2],
        )
        .expect("call succeeds");
    ([f0[0], f1[0], f2[0]], k)
}

fn close(got: [f64; 3], want: [f64; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (g - w).abs() <= 1e-12 * (1.0 + w.abs()))
}

#[test]
fn standard_names_are_registered_and_sorted() {
    let r = Registry::with_standard();
    let names = r.function_names();
    for n in STANDARD_FUNCTIONS {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(r.lookup("swish").is_none());
    let l1 = r.info(r.lookup("l1").unwrap());
    assert_eq!(l1.kind, FunctionKind::Penalty);
    assert!(l1.has_prox);
    assert_eq!(l1.breakpoints, vec![0.0]);
    assert!(l1.source.library.is_none());
    let leaky = r.info(r.lookup("leaky_relu").unwrap());
    assert_eq!(leaky.params.len(), 1);
    assert_eq!(leaky.params[0].name, "slope");
    assert_eq!(leaky.params[0].default, Some(0.01));
}

#[test]
fn relu_at_the_kink_follows_the_lexicographic_sign() {
    let r = Registry::with_standard();
    assert_eq!(
        ray(&r, "relu", &[], [0.0, 1.0, 5.0], 0.0),
        ([0.0, 1.0, 5.0], 1)
    );
    assert_eq!(
        ray(&r, "relu", &[], [0.0, -1.0, 5.0], 0.0),
        ([0.0, 0.0, 0.0], 1)
    );
    assert_eq!(
        ray(&r, "relu", &[], [0.0, 0.0, 3.0], 0.0),
        ([0.0, 0.0, 3.0], 1)
    );
    assert_eq!(
        ray(&r, "relu", &[], [0.0, 0.0, -3.0], 0.0),
        ([0.0, 0.0, 0.0], 1)
    );
    assert_eq!(
        ray(&r, "relu", &[], [2.0, -1.0, 1.0], 0.0),
        ([2.0, -1.0, 1.0], 0)
    );
    assert_eq!(
        ray(&r, "relu", &[], [-2.0, 1.0, 1.0], 0.0),
        ([0.0, 0.0, 0.0], 0)
    );
}

#[test]
fn ztol_turns_near_ties_into_ties() {
    let r = Registry::with_standard();
    // 1e-12 away from the kink, going left: exact mode says the right piece, ztol 1e-9 says tie.
    assert_eq!(
        ray(&r, "relu", &[], [1e-12, -1.0, 0.0], 0.0),
        ([1e-12, -1.0, 0.0], 0)
    );
    assert_eq!(
        ray(&r, "relu", &[], [1e-12, -1.0, 0.0], 1e-9),
        ([0.0, 0.0, 0.0], 1)
    );
}

#[test]
fn leaky_relu_and_l1_pick_sides() {
    let r = Registry::with_standard();
    assert_eq!(
        ray(&r, "leaky_relu", &[], [0.0, -2.0, 0.0], 0.0),
        ([0.0, -0.02, 0.0], 1)
    );
    assert_eq!(
        ray(&r, "leaky_relu", &[0.5], [0.0, -2.0, 4.0], 0.0),
        ([0.0, -1.0, 2.0], 1)
    );
    assert_eq!(
        ray(&r, "leaky_relu", &[0.5], [-4.0, 1.0, 0.0], 0.0),
        ([-2.0, 0.5, 0.0], 0)
    );
    // abs(x) + 0.5 x² at 0, d = −1 (docs/math.md §6): f′ = 1 from l1, f″ = 0 from l1.
    assert_eq!(
        ray(&r, "l1", &[], [0.0, -1.0, 0.0], 0.0),
        ([0.0, 1.0, 0.0], 1)
    );
    assert_eq!(
        ray(&r, "l1", &[], [-3.0, 2.0, 1.0], 0.0),
        ([3.0, -2.0, -1.0], 0)
    );
}

#[test]
fn elu_at_zero_uses_the_second_coefficient_of_each_piece() {
    let r = Registry::with_standard();
    // Left piece: φ′ = φ″ = 1 at 0, so (0, a1, a1² + a2); right piece: (0, a1, a2).
    assert!(close(
        ray(&r, "elu", &[], [0.0, -1.0, 0.0], 0.0).0,
        [0.0, -1.0, 1.0]
    ));
    assert!(close(
        ray(&r, "elu", &[], [0.0, -1.0, 0.5], 0.0).0,
        [0.0, -1.0, 1.5]
    ));
    assert!(close(
        ray(&r, "elu", &[], [0.0, 1.0, 0.5], 0.0).0,
        [0.0, 1.0, 0.5]
    ));
    assert!(close(
        ray(&r, "elu", &[], [0.0, 0.0, -2.0], 0.0).0,
        [0.0, 0.0, -2.0]
    ));
    // elu(x) − x at 0, d = −1: f′ = 0, f″ = 1 (docs/math.md §6).
    let ([_, f1, f2], k) = ray(&r, "elu", &[], [0.0, -1.0, 0.0], 0.0);
    assert_eq!((f1 - (-1.0), f2, k), (0.0, 1.0, 1));
    // alpha = 2 at x = −ln 2: φ = 2(1/2 − 1) = −1, φ′ = φ″ = 2·(1/2) = 1.
    let x = 2f64.ln();
    assert!(close(
        ray(&r, "elu", &[2.0], [-x, 1.0, 1.0], 0.0).0,
        [2.0 * (0.5 - 1.0), 1.0, 1.0 + 1.0]
    ));
}

#[test]
fn smooth_activations_match_closed_forms() {
    let r = Registry::with_standard();
    let x: f64 = 0.3;
    let (a1, a2) = (2.0, -1.0);
    let t = x.tanh();
    let (d, dd) = (1.0 - t * t, -2.0 * t * (1.0 - t * t));
    assert!(close(
        ray(&r, "tanh", &[], [x, a1, a2], 0.0).0,
        [t, d * a1, dd * a1 * a1 + d * a2]
    ));
    let s = 1.0 / (1.0 + (-x).exp());
    let (d, dd) = (s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s));
    assert!(close(
        ray(&r, "sigmoid", &[], [x, a1, a2], 0.0).0,
        [s, d * a1, dd * a1 * a1 + d * a2]
    ));
    let sp = (1.0 + x.exp()).ln();
    assert!(close(
        ray(&r, "softplus", &[], [x, a1, a2], 0.0).0,
        [sp, s * a1, d * a1 * a1 + s * a2]
    ));
    // Far tails do not overflow.
    assert_eq!(
        ray(&r, "sigmoid", &[], [-800.0, 1.0, 0.0], 0.0).0,
        [0.0, 0.0, 0.0]
    );
    assert_eq!(
        ray(&r, "softplus", &[], [800.0, 1.0, 0.0], 0.0).0,
        [800.0, 1.0, 0.0]
    );
}

#[test]
fn penalties_match_their_pieces() {
    let r = Registry::with_standard();
    // huber, delta 1: at 2 the linear piece (1.5, sign, 0), at 0.5 the quadratic one.
    assert!(close(
        ray(&r, "huber", &[], [2.0, -1.0, 1.0], 0.0).0,
        [1.5, -1.0, 1.0]
    ));
    assert!(close(
        ray(&r, "huber", &[], [0.5, 2.0, 1.0], 0.0).0,
        [0.125, 1.0, 4.0 + 0.5]
    ));
    // At the C¹ join 1 going right: linear piece, f2 = a2; going left: quadratic, f2 = a1² + a2.
    assert_eq!(
        ray(&r, "huber", &[], [1.0, 1.0, 0.0], 0.0),
        ([0.5, 1.0, 0.0], 1)
    );
    assert_eq!(
        ray(&r, "huber", &[], [1.0, -1.0, 0.0], 0.0),
        ([0.5, -1.0, 1.0], 1)
    );
    // mcp, lambda 1, gamma 3: at 0 going left: λ|x| − x²/6 → (0, 1, −1/3); beyond 3: 1.5 flat.
    assert!(close(
        ray(&r, "mcp", &[], [0.0, -1.0, 0.0], 0.0).0,
        [0.0, 1.0, -1.0 / 3.0]
    ));
    assert!(close(
        ray(&r, "mcp", &[], [-4.0, 1.0, 1.0], 0.0).0,
        [1.5, 0.0, 0.0]
    ));
    // scad, lambda 1, a 3.7, at x = 2: (2·3.7·2 − 4 − 1)/(2·2.7) = 9.8/5.4; slope (3.7 − 2)/2.7.
    let ([f0, f1, f2], k) = ray(&r, "scad", &[], [2.0, 1.0, 0.0], 0.0);
    assert!(
        (f0 - 9.8 / 5.4).abs() < 1e-12
            && (f1 - 1.7 / 2.7).abs() < 1e-12
            && (f2 + 1.0 / 2.7).abs() < 1e-12
    );
    assert_eq!(k, 0);
    // capped_l1 lambda 2 cap 0.5 at the cap going outwards: flat, going inwards: slope −2.
    assert_eq!(
        ray(&r, "capped_l1", &[2.0, 0.5], [0.5, 1.0, 0.0], 0.0),
        ([1.0, 0.0, 0.0], 1)
    );
    assert_eq!(
        ray(&r, "capped_l1", &[2.0, 0.5], [0.5, -1.0, 0.0], 0.0),
        ([1.0, -2.0, 0.0], 1)
    );
}

#[test]
fn lower_orders_leave_higher_slices_alone_and_agree() {
    let r = Registry::with_standard();
    for name in r.function_names() {
        let id = r.lookup(name).unwrap();
        let a0 = [-1.3, 0.0, 0.2, 2.5];
        let a1 = [1.0, -1.0, 0.5, -2.0];
        let a2 = [0.5, 0.5, -1.0, 0.0];
        let mut z = [f64::NAN; 4];
        let (mut g0, mut g1) = ([0.0; 4], [0.0; 4]);
        r.call(
            id,
            &[],
            Order::Zero,
            0.0,
            [&a0, &[], &[]],
            [&mut z, &mut [], &mut []],
        )
        .unwrap();
        r.call(
            id,
            &[],
            Order::One,
            0.0,
            [&a0, &a1, &[]],
            [&mut g0, &mut g1, &mut []],
        )
        .unwrap();
        let (mut h0, mut h1, mut h2) = ([0.0; 4], [0.0; 4], [0.0; 4]);
        r.call(
            id,
            &[],
            Order::Two,
            0.0,
            [&a0, &a1, &a2],
            [&mut h0, &mut h1, &mut h2],
        )
        .unwrap();
        assert_eq!(z, g0, "{name}");
        assert_eq!(g0, h0, "{name}");
        assert_eq!(g1, h1, "{name}");
    }
}

#[test]
fn bad_calls_are_errors_not_panics() {
    let r = Registry::with_standard();
    let id = r.lookup("relu").unwrap();
    let mut f0 = [0.0; 2];
    let e = r.call(
        id,
        &[],
        Order::Zero,
        0.0,
        [&[1.0, 2.0, 3.0], &[], &[]],
        [&mut f0, &mut [], &mut []],
    );
    assert!(matches!(
        e.unwrap_err().kind,
        CallErrorKind::BadArguments(_)
    ));
    let e = r.call(
        id,
        &[1.0],
        Order::Zero,
        0.0,
        [&[1.0, 2.0], &[], &[]],
        [&mut f0, &mut [], &mut []],
    );
    assert!(matches!(
        e.unwrap_err().kind,
        CallErrorKind::BadArguments(_)
    ));
    let e = r.prox(id, &[], 1.0, &[1.0], &mut [0.0]).unwrap_err();
    assert_eq!(e.kind, CallErrorKind::NoProx);
    let huber = r.lookup("huber").unwrap();
    let e = r.check_params(huber, &[-1.0]).unwrap_err();
    assert!(e.to_string().contains("delta must be positive"), "{e}");
    assert_eq!(r.check_params(huber, &[]).unwrap(), vec![1.0]);
    let diag: mcopt::diag::Diag = e.into();
    assert_eq!(diag.code, "mcopt::plugin::call");
}

/// argmin_z p(z) + (z − v)²/(2 step) by a fine grid and golden-section refinement.
fn brute_prox(r: &Registry, name: &str, params: &[f64], step: f64, v: f64) -> (f64, f64) {
    let id = r.lookup(name).unwrap();
    let obj = |z: f64| {
        let mut f = [0.0];
        r.call(
            id,
            params,
            Order::Zero,
            0.0,
            [&[z], &[], &[]],
            [&mut f, &mut [], &mut []],
        )
        .unwrap();
        f[0] + (z - v) * (z - v) / (2.0 * step)
    };
    let (lo, hi) = (-(v.abs() + 1.0) * 2.0, (v.abs() + 1.0) * 2.0);
    let n = 40_000;
    let mut best = (f64::INFINITY, 0.0);
    for i in 0..=n {
        let z = lo + (hi - lo) * i as f64 / n as f64;
        let o = obj(z);
        if o < best.0 {
            best = (o, z);
        }
    }
    best
}

#[test]
fn proximal_maps_match_brute_force() {
    let r = Registry::with_standard();
    let cases: &[(&str, &[f64])] = &[
        ("l1", &[]),
        ("huber", &[0.7]),
        ("mcp", &[1.0, 3.0]),
        ("mcp", &[1.0, 0.5]),
        ("scad", &[0.8, 3.7]),
        ("capped_l1", &[1.0, 1.5]),
    ];
    for &(name, params) in cases {
        let id = r.lookup(name).unwrap();
        for step in [0.3, 1.0, 2.5] {
            for v in [-4.1, -1.7, -0.4, 0.0, 0.25, 0.9, 1.3, 2.2, 3.3, 6.0] {
                let mut z = [0.0];
                r.prox(id, params, step, &[v], &mut z).unwrap();
                let (best, _) = brute_prox(&r, name, params, step, v);
                let mut f = [0.0];
                r.call(
                    id,
                    params,
                    Order::Zero,
                    0.0,
                    [&z, &[], &[]],
                    [&mut f, &mut [], &mut []],
                )
                .unwrap();
                let ours = f[0] + (z[0] - v) * (z[0] - v) / (2.0 * step);
                assert!(
                    ours <= best + 1e-9,
                    "{name}{params:?} step {step} v {v}: prox {} gives {ours}, grid {best}",
                    z[0]
                );
            }
        }
    }
}
