//! The lifted (P0) and penalized (P1) forms: layout, forward completion, residuals, the
//! equality of F and Θ with f at feasible points, and the tangent cone of docs/math.md §3.

use crate::common;

use common::eval::{close, compile, syn_graph};
use mcopt::config::RowSel;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::forms::{self, tangent, Betas};
use mcopt::graph::Graph;
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;

const OPTS: EvalOptions = EvalOptions { ztol: 0.0 };

fn syn() -> (Registry, Graph) {
    let r = Registry::with_standard();
    let g = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
    (r, g)
}

/// θ of a bundled point file, in the graph's parameter order.
fn theta_from(g: &Graph, path: &str) -> Vec<f64> {
    mcopt::session::read_theta(g, &common::eval::repo().join(path)).expect("point file")
}

fn random(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal()).collect()
}

#[test]
fn syn_layout_has_one_block_per_varying_layer_instance() {
    let (_, g) = syn();
    let l = forms::lift(&g);
    // h[0] = zeros(4) is a constant, not a variable; u, h, v at t = 1..8.
    assert_eq!(l.layout.blocks.len(), 3 * 8);
    let names: Vec<&str> = l.layout.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["u", "h", "v"]);
    assert!(l.layout.groups.iter().all(|g| g.blocks.len() == 8));
    assert_eq!(l.layout.n_theta, g.n_params());
    assert_eq!(l.layout.n_z, g.n_params() + 8 * (4 + 4 + 3));
    let h3 = l.layout.block("h[3]").expect("h[3]");
    assert_eq!((h3.rows, h3.cols), (4, 1));
    assert_eq!(l.layout.groups[h3.group].name, "h");
    // Blocks are contiguous and in order.
    let mut off = l.layout.n_theta;
    for b in &l.layout.blocks {
        assert_eq!(b.offset, off);
        off += b.len();
    }
}

#[test]
fn at_a_completed_point_f_and_theta_equal_f_and_residuals_vanish() {
    let (r, g) = syn();
    let theta = theta_from(&g, "examples/data/srpa_syn_theta0.yaml");
    let l = forms::lift(&g);
    let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap();
    let f = ev.value(&theta, OPTS).unwrap();
    let z = l.complete(&mut ev, &theta).unwrap();
    let mut lev = Evaluator::new(&l.graph, &r, Order::Two).unwrap();
    assert_eq!(lev.value(&z, OPTS).unwrap(), f);
    assert!(l.residuals(&mut lev, &z).unwrap().iter().all(|v| *v == 0.0));
    let p1 = l.penalized(&Betas::uniform(1.0));
    let mut pev = Evaluator::new(&p1, &r, Order::Two).unwrap();
    assert_eq!(pev.value(&z, OPTS).unwrap(), f);
}

#[test]
fn f_prime_along_a_tangent_direction_equals_f_prime_along_its_theta_part() {
    let (r, g) = syn();
    let theta = theta_from(&g, "examples/data/srpa_syn_theta0.yaml");
    let l = forms::lift(&g);
    let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap();
    let mut lev = Evaluator::new(&l.graph, &r, Order::Two).unwrap();
    let z = l.complete(&mut ev, &theta).unwrap();
    let mut rng = Rng::new(7);
    for _ in 0..5 {
        let dt = random(&mut rng, theta.len());
        let d = tangent::complete_direction(&l, &mut ev, &theta, &dt, OPTS).unwrap();
        let t = ev.directional(&theta, &dt, Order::One, OPTS).unwrap();
        let tl = lev.directional(&z, &d, Order::One, OPTS).unwrap();
        assert!(
            close(tl.d1.unwrap(), t.d1.unwrap(), 1e-12),
            "{tl:?} vs {t:?}"
        );
        assert!(tangent::is_tangent(&l, &mut lev, &z, &d, 1e-12, OPTS).unwrap());
        // Perturbing one layer entry leaves the cone, and the violation names that block.
        let mut off = d.clone();
        let h5 = l.layout.block("h[5]").unwrap();
        off[h5.offset + 2] += 1.0;
        assert!(!tangent::is_tangent(&l, &mut lev, &z, &off, 1e-9, OPTS).unwrap());
        let v = tangent::tangency_violation(&l, &mut lev, &z, &off, OPTS).unwrap();
        let named = &l.layout.blocks[v.block.unwrap()].name;
        assert!(
            named == "h[5]" || named == "u[6]" || named == "v[5]",
            "{named}"
        );
    }
}

#[test]
fn lifted_gradient_matches_directional_derivatives() {
    let (r, g) = syn();
    let theta = theta_from(&g, "examples/data/srpa_syn_theta0.yaml");
    let l = forms::lift(&g);
    let p1 = l.penalized(&Betas::uniform(0.5));
    let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
    let mut z = l.complete(&mut ev, &theta).unwrap();
    // Move off the feasible set so no residual sits at its kink.
    let mut rng = Rng::new(3);
    for v in z.iter_mut().skip(l.layout.n_theta) {
        *v += 0.01 * rng.normal();
    }
    for graph in [&l.graph, &p1] {
        let mut lev = Evaluator::new(graph, &r, Order::Two).unwrap();
        let mut grad = vec![0.0; z.len()];
        lev.gradient(&z, &mut grad, OPTS).unwrap();
        let d = random(&mut rng, z.len());
        let t = lev.directional(&z, &d, Order::One, OPTS).unwrap();
        let gd: f64 = grad.iter().zip(&d).map(|(a, b)| a * b).sum();
        assert!(close(gd, t.d1.unwrap(), 1e-10), "{gd} vs {:?}", t.d1);
    }
}

#[test]
fn p1_exactness_case_derivatives() {
    let r = Registry::with_standard();
    let text =
        std::fs::read_to_string(common::eval::repo().join("examples/cases/p1_exact.mco")).unwrap();
    let g = compile(&text, &r);
    let l = forms::lift(&g);
    assert_eq!(l.layout.n_z, 2);
    let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
    let z = l.complete(&mut ev, &[0.0]).unwrap();
    assert_eq!(z, [0.0, 0.0]);
    for beta in [1.0, 2.0, 3.0] {
        let p1 = l.penalized(&Betas::uniform(beta));
        let mut pev = Evaluator::new(&p1, &r, Order::Two).unwrap();
        // Θ′(z; d) = −2 d_u + β |d_u|.
        for (du, want) in [(1.0, -2.0 + beta), (-1.0, 2.0 + beta)] {
            let t = pev.directional(&z, &[0.0, du], Order::Two, OPTS).unwrap();
            assert_eq!(t.d1, Some(want));
            assert_eq!(t.active_kinks, 1);
        }
    }
    // By group name too.
    let mut betas = Betas::uniform(0.0);
    betas.per_group.insert("u".into(), 5.0);
    let p1 = l.penalized(&betas);
    let mut pev = Evaluator::new(&p1, &r, Order::One).unwrap();
    let t = pev.directional(&z, &[0.0, 1.0], Order::One, OPTS).unwrap();
    assert_eq!(t.d1, Some(3.0));
}

#[test]
fn missing_blocks_are_filled_in_order_from_the_given_ones() {
    let r = Registry::with_standard();
    let text = std::fs::read_to_string(common::eval::repo().join("examples/cases/two_layers.mco"))
        .unwrap();
    let g = compile(&text, &r);
    let l = forms::lift(&g);
    assert_eq!(l.layout.blocks.len(), 2);
    let mut lev = Evaluator::new(&l.graph, &r, Order::Zero).unwrap();
    // θ = (1, 3); u1 given as 5 (infeasible), u2 = |u1 − θ1| = 4 filled from it.
    let mut z = vec![1.0, 3.0, 5.0, 0.0];
    l.fill_missing(&mut lev, &mut z, &[true, false]).unwrap();
    assert_eq!(z, [1.0, 3.0, 5.0, 4.0]);
    let worst = l.max_residual(&mut lev, &z).unwrap();
    assert_eq!(worst.block, Some(0));
    assert_eq!(worst.value, 2.0); // u1 − max(1, 3)
}
