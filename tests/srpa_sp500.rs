//! The authors' S&P 500 SRPA run reproduced from their starting weights (issue 10): 50
//! iterations with their settings (β₁ = β₂ = 0.1, η₁ = 0.7, η₂ = 1.1, ρ₁ = 0.03). The first step
//! is fully determined (no ties at a random start) and must equal theirs to 1e-6; at k = 10 the
//! path must be within 1% of theirs; at k = 50 it must be no higher. Θ never increases, and the
//! feasibility stays at the level of the subproblem tolerance.
//!
//! Release only (about a minute there, far longer unoptimized):
//! `cargo test --release --test srpa_sp500` (run by `.ci/run`).

#[path = "../plugins/std/tests/clarabel_ref/mod.rs"]
mod clarabel_ref;
mod common;

use clarabel_ref::rel_diff;

use common::eval::sp500_graph;
use mcopt::eval::Evaluator;
use mcopt::forms::linearize::Jacobian;
use mcopt::forms::p1host::P1Host;
use mcopt::forms::{self, Betas};
use mcopt::registry::{Order, Registry};
use mcopt_plugin_sdk::p1::Linearization;
use mcopt_plugin_sdk::p1::P1Problem;
use mcopt_std::solvers::srpa::iteration::{Srpa, SrpaOptions};
use mcopt_std::solvers::srpa::operator::HostJac;
use mcopt_std::solvers::srpa::subproblem::{Method, SubOptions, SubSolution, SubSolver};

/// The authors' Θ(z^k) (docs/math.md §5, issue 10).
const AUTHORS_K0: f64 = 2.96045607066;
const AUTHORS_K1: f64 = 2.14549307310;
const AUTHORS_K10: f64 = 0.301792077059;
const AUTHORS_K50: f64 = 0.171903948156;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: cargo test --release --test srpa_sp500"
)]
fn sp500_fifty_iterations_track_the_authors_and_end_no_higher() {
    let r = Registry::with_standard();
    let g = sp500_graph(&r);
    let theta = mcopt::session::read_theta(
        &g,
        &common::eval::repo().join("examples/data/srpa_sp500_theta0.yaml"),
    )
    .expect("the authors' start");
    let l = forms::lift(&g);
    let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
    let z0 = l.complete(&mut ev, &theta).unwrap();
    let betas = Betas::uniform(0.1);
    let pen = l.penalized(&betas);
    let mut host = P1Host::new(&l, &pen, &betas, &g, &r).unwrap();
    let products = Jacobian::Products;
    let mut unstored = P1Host::with_jacobian(&l, &pen, &betas, &g, &r, products).unwrap();
    let opts = SrpaOptions {
        eta1: 0.7,
        eta2: 1.1,
        rho1: 0.03,
        ..SrpaOptions::default()
    };
    let mut srpa = Srpa::new(&mut host, z0, opts).unwrap();
    let mut t = vec![srpa.objective];
    for k in 1..=50 {
        if [1, 10, 50].contains(&k) {
            real_subproblem_both_ways(&host, &mut unstored, &srpa, k == 10);
        }
        let m = srpa.step(&mut host).unwrap();
        assert!(m.sub_converged, "iteration {k}: {m:?}");
        assert!(m.feasibility <= 1e-4, "iteration {k}: {m:?}");
        t.push(m.objective);
    }
    assert!((t[0] - AUTHORS_K0).abs() <= 1e-9, "k = 0: {}", t[0]);
    assert!((t[1] - AUTHORS_K1).abs() <= 1e-6, "k = 1: {}", t[1]);
    assert!(
        (t[10] - AUTHORS_K10).abs() <= 0.01 * AUTHORS_K10,
        "k = 10: {}",
        t[10]
    );
    assert!(t[50] <= AUTHORS_K50, "k = 50: {}", t[50]);
    for w in t.windows(2) {
        assert!(w[1] <= w[0], "Θ increased: {w:?}");
    }
}

/// The subproblem SRPA solves next, solved from scratch by the direct
/// factorization, by the Schur-preconditioned conjugate gradients (rows and augmented) and by
/// the matrix-free Newton–CG (over the stored J): the same step to 1e-8
/// (relative), and (when `clarabel`) the same as Clarabel's interior point to 1e-6.
fn real_subproblem_both_ways(host: &P1Host, unstored: &mut P1Host, srpa: &Srpa, clarabel: bool) {
    let p = srpa.subproblem(host);
    let n_theta = host.structure().n_theta;
    let solve = |method| {
        let mut solver = SubSolver::with_parameters(p.jac, n_theta, method).unwrap();
        let mut sol = SubSolution::default();
        let rep = solver.solve(&p, SubOptions::default(), &mut sol).unwrap();
        assert!(rep.converged, "{method:?}: {rep:?}");
        (sol.s, rep)
    };
    let (direct, _) = solve(Method::Direct);
    let (schur, rep) = solve(Method::Schur);
    assert_eq!(rep.factorizations, 0, "the Schur path fell back: {rep:?}");
    let d = rel_diff(&schur, &direct);
    assert!(
        d <= 1e-8,
        "the Schur step differs from the direct one by {d:e}"
    );
    let (augmented, rep) = solve(Method::SchurAugmented);
    assert_eq!(
        rep.factorizations, 0,
        "the augmented path fell back: {rep:?}"
    );
    let d = rel_diff(&augmented, &direct);
    assert!(
        d <= 1e-8,
        "the augmented Schur step differs from the direct one by {d:e}"
    );
    let (matrix_free, rep) = solve(Method::MatrixFree);
    assert!(rep.cg_iterations > 0, "{rep:?}");
    let d = rel_diff(&matrix_free, &direct);
    assert!(
        d <= 1e-8,
        "the matrix-free step differs from the direct one by {d:e} ({rep:?})"
    );
    // through the products of a host that does not store J, linearized at the same point on
    // the same pieces
    let st = unstored.structure().clone();
    let mut lin = Linearization::for_structure(&st);
    let mut pieces = srpa.pieces.clone();
    unstored
        .linearize(&srpa.z, None, &mut pieces, &mut lin)
        .unwrap();
    assert_eq!(pieces, srpa.pieces);
    assert_eq!((&lin.residual, &lin.grad), (&p.r.to_vec(), &p.q.to_vec()));
    let mut solver = SubSolver::matrix_free(st.n_z, st.rows());
    let mut sol = SubSolution::default();
    let mut op = HostJac::new(unstored);
    let rep = solver
        .solve_with(&p, &mut op, SubOptions::default(), &mut sol)
        .unwrap();
    assert!(rep.converged, "{rep:?}");
    let d = rel_diff(&sol.s, &direct);
    assert!(
        d <= 1e-8,
        "the step through the host's products differs from the direct one by {d:e} ({rep:?})"
    );
    if clarabel {
        let (x_ref, certified) = clarabel_ref::clarabel_solve(&p);
        assert!(certified, "clarabel did not certify its solution");
        let mut w = vec![0.0; p.r.len()];
        let (ours, theirs) = (p.objective(&schur, &mut w), p.objective(&x_ref, &mut w));
        assert!(
            (ours - theirs).abs() <= 1e-6 * theirs.abs().max(1.0),
            "{ours} vs {theirs}"
        );
        let d = rel_diff(&schur, &x_ref);
        assert!(d <= 1e-6, "the step differs from Clarabel's by {d:e}");
    }
}
