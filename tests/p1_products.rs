//! The host's products with J on sp500 (issue 19 item 2, docs/srpa.md "Products"): J s, Jᵀ y
//! and the solves with J_L of the unstored host against the stored J, at the authors' start
//! point, at a point off the feasible set, and at points with ReLU ties (pieces chosen, then
//! switched, by the tie rule); the unstored host's linearization equals the stored one's.
//!
//! Release only (the stored J has 448 k entries; many seconds unoptimized):
//! `cargo test --release --test p1_products` (run by `.ci/run`).

mod common;

use common::eval::{repo, sp500_graph};
use common::products::{check, group_entries, At};
use mcopt::eval::Evaluator;
use mcopt::forms;
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;

#[test]
#[cfg_attr(debug_assertions, ignore)]
fn sp500_products_equal_the_stored_jacobians() {
    let r = Registry::with_standard();
    let g = sp500_graph(&r);
    let theta =
        mcopt::session::read_theta(&g, &repo().join("examples/data/srpa_sp500_theta0.yaml"))
            .unwrap();
    let l = forms::lift(&g);
    let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
    let z = l.complete(&mut ev, &theta).unwrap();
    let mut rng = Rng::new(7);
    let moved: Vec<f64> = z.iter().map(|v| v + 0.01 * rng.normal()).collect();
    // every third pre-activation u on its ReLU kink
    let u = group_entries(&l, "u");
    let mut tied = z.clone();
    for &k in u.iter().step_by(3) {
        tied[k] = 0.0;
    }
    let pushed = vec![1.0; z.len()];
    let points = [
        At::new(&z),
        At::new(&moved),
        At::new(&tied),
        At::after(&tied, &pushed),
    ];
    let (ties, switched) = check(&l, &g, &r, &points, 5, "sp500");
    assert!(ties >= 2 * (u.len() / 3), "{ties} ties");
    assert!(switched >= u.len() / 3, "{switched} switched");
}
