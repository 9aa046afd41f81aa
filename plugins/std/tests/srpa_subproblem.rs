//! The SRPA subproblem solver against Clarabel (an interior-point reference) on random
//! instances: objective and solution agree to 1e-6 relative, bound multipliers are consistent.

mod clarabel_ref;

use clarabel_ref::{clarabel_solve, rel_diff};
use mcopt_std::solvers::srpa::subproblem::{
    Method, SparseRows, SubOptions, SubSolution, SubSolver, Subproblem,
};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unif(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.unif().max(1e-300), self.unif());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Instance {
    q: Vec<f64>,
    rho: f64,
    lower: Vec<f64>,
    upper: Vec<f64>,
    jac: SparseRows,
    r: Vec<f64>,
    beta: Vec<f64>,
}

impl Instance {
    fn problem(&self) -> Subproblem<'_> {
        Subproblem {
            q: &self.q,
            rho: self.rho,
            lower: &self.lower,
            upper: &self.upper,
            jac: &self.jac,
            r: &self.r,
            beta: &self.beta,
        }
    }
}

/// Shaped like (P1): m residual rows, each with a unit entry on its own lifted variable, a few
/// entries on earlier lifted variables and on parameters; half of the lifted variables bounded
/// on one side at a point where the bound is close (the piece constraints).
fn random_instance(rng: &mut Rng) -> Instance {
    let m = 3 + rng.below(40);
    let ntheta = 1 + rng.below(20);
    let n = ntheta + m;
    let mut jac = SparseRows {
        ncols: n,
        row_ptr: vec![0],
        ..Default::default()
    };
    for i in 0..m {
        let mut cols = vec![ntheta + i];
        for _ in 0..rng.below(4) {
            cols.push(rng.below(ntheta));
        }
        if i > 0 {
            for _ in 0..rng.below(3) {
                cols.push(ntheta + rng.below(i));
            }
        }
        cols.sort_unstable();
        cols.dedup();
        for c in cols {
            jac.col_idx.push(c);
            jac.values
                .push(if c == ntheta + i { 1.0 } else { rng.normal() });
        }
        jac.row_ptr.push(jac.col_idx.len());
    }
    let mut lower = vec![f64::NEG_INFINITY; n];
    let mut upper = vec![f64::INFINITY; n];
    for j in ntheta..n {
        match rng.below(3) {
            0 => lower[j] = -rng.unif(),
            1 => upper[j] = rng.unif(),
            _ => {}
        }
    }
    let scale = [0.01, 1.0, 10.0][rng.below(3)];
    Instance {
        q: (0..n).map(|_| scale * rng.normal()).collect(),
        rho: [0.03, 0.5, 2.0][rng.below(3)],
        lower,
        upper,
        r: (0..m)
            .map(|_| if rng.below(3) == 0 { 0.0 } else { rng.normal() })
            .collect(),
        beta: (0..m).map(|_| [0.1, 1.0][rng.below(2)]).collect(),
        jac,
    }
}

#[test]
fn agrees_with_clarabel_on_random_instances() {
    agrees_with_clarabel(Method::Direct);
}

/// The conjugate gradients with the parameter-Schur preconditioner (forced on these small
/// instances) reach the same solutions.
#[test]
fn the_schur_path_agrees_with_clarabel_on_random_instances() {
    agrees_with_clarabel(Method::Schur);
}

/// The Schur path with B through its augmented matrix [[ρI, J_Lᵀ], [J_L, −δI]] (what the
/// TIMIT shape takes): the same answers, found by the conjugate gradients.
#[test]
fn the_augmented_schur_path_agrees_with_clarabel_on_random_instances() {
    agrees_with_clarabel(Method::SchurAugmented);
}

/// The matrix-free Newton–CG path (J only through products, here over the stored J; its
/// lifted columns solved by substitution): the same answers.
#[test]
fn the_matrix_free_path_agrees_with_clarabel_on_random_instances() {
    agrees_with_clarabel(Method::MatrixFree);
}

fn agrees_with_clarabel(method: Method) {
    let mut rng = Rng(20261203);
    let cases: usize = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
        .max(50);
    let mut compared = 0;
    let (mut fallbacks, mut systems, mut faces) = (0, 0, 0);
    for case in 0..cases {
        let inst = random_instance(&mut rng);
        let prob = inst.problem();
        let ntheta = inst.jac.ncols - inst.r.len();
        let mut solver = SubSolver::with_parameters(&inst.jac, ntheta, method).expect("analysis");
        assert_eq!(
            solver.uses_schur(),
            matches!(method, Method::Schur | Method::SchurAugmented)
        );
        assert_eq!(
            solver.matrix_free_solver().is_some(),
            method == Method::MatrixFree
        );
        let mut sol = SubSolution::default();
        let rep = solver
            .solve(&prob, SubOptions::default(), &mut sol)
            .expect("factorization");
        assert!(rep.converged, "case {case}: {rep:?}");
        fallbacks += rep.factorizations;
        systems += rep.newton_steps;
        faces += rep.face_steps;
        let (x_ref, certified) = clarabel_solve(&inst.problem());
        let mut w = vec![0.0; inst.r.len()];
        let obj = prob.objective(&sol.s, &mut w);
        let obj_ref = prob.objective(&x_ref, &mut w);
        let rel_obj = (obj - obj_ref) / obj_ref.abs().max(1.0);
        if certified {
            compared += 1;
            assert!(
                rel_obj.abs() <= 1e-6,
                "case {case}: objective {obj} vs {obj_ref} {rep:?}"
            );
            let rel_x = rel_diff(&sol.s, &x_ref);
            assert!(rel_x <= 1e-6, "case {case}: solution differs by {rel_x:e}");
        }
        // bound multipliers are nonnegative and only on active bounds
        for j in 0..sol.s.len() {
            let active = sol.s[j] <= inst.lower[j] || sol.s[j] >= inst.upper[j];
            assert!(sol.bound_multiplier[j] >= 0.0);
            if !active {
                assert_eq!(sol.bound_multiplier[j], 0.0);
            }
        }
    }
    assert!(
        compared >= 50,
        "only {compared} instances certified by clarabel"
    );
    // face steps are taken where B is factored at every Newton system, and only there
    assert_eq!(
        faces > 0,
        method == Method::SchurAugmented,
        "{faces} face steps"
    );
    if method != Method::Direct {
        // the conjugate gradients, not the direct fallback, found the Newton steps
        assert!(
            fallbacks * 20 <= systems,
            "{fallbacks} direct factorizations for {systems} Newton systems"
        );
    }
}

#[test]
fn warm_start_reaches_the_same_solution_in_fewer_steps() {
    let mut rng = Rng(7);
    let inst = random_instance(&mut rng);
    let mut solver = SubSolver::new(&inst.jac).expect("analysis");
    let mut cold = SubSolution::default();
    let first = solver
        .solve(&inst.problem(), SubOptions::default(), &mut cold)
        .expect("factor");
    let mut warm = SubSolution::default();
    let second = solver
        .solve(&inst.problem(), SubOptions::default(), &mut warm)
        .expect("factor");
    assert!(first.converged && second.converged);
    assert!(second.newton_steps <= 1, "{second:?}");
    assert!(rel_diff(&warm.s, &cold.s) <= 1e-9);
}

/// A sequence of nearby subproblems on one pattern (as in SRPA: J, q, r and ρ drift), solved by
/// one Schur-path solver that keeps its preconditioner across them, agrees with fresh direct
/// solves; and the kept preconditioner is used (fewer formations than Newton systems).
#[test]
fn a_kept_preconditioner_serves_a_sequence_of_nearby_subproblems() {
    kept_preconditioner_sequence(Method::Schur);
}

/// The same with B through its augmented matrix.
#[test]
fn a_kept_augmented_preconditioner_serves_a_sequence_of_nearby_subproblems() {
    kept_preconditioner_sequence(Method::SchurAugmented);
}

/// The same on the matrix-free path, whose kept Woodbury complement serves the sequence.
#[test]
fn a_kept_matrix_free_preconditioner_serves_a_sequence_of_nearby_subproblems() {
    kept_preconditioner_sequence(Method::MatrixFree);
}

fn kept_preconditioner_sequence(method: Method) {
    let mut rng = Rng(99);
    let mut inst = loop {
        let inst = random_instance(&mut rng);
        if inst.r.len() >= 20 {
            break inst;
        }
    };
    let ntheta = inst.jac.ncols - inst.r.len();
    let mut kept = SubSolver::with_parameters(&inst.jac, ntheta, method).expect("analysis");
    let (mut forms, mut systems) = (0, 0);
    for step in 0..12 {
        for v in inst.jac.values.iter_mut() {
            if *v != 1.0 {
                *v *= 1.0 + 0.02 * rng.normal();
            }
        }
        for q in inst.q.iter_mut() {
            *q += 0.05 * rng.normal();
        }
        for r in inst.r.iter_mut() {
            *r *= 0.8;
        }
        if step == 6 {
            inst.rho *= 1.3;
        }
        let mut sol = SubSolution::default();
        let rep = kept
            .solve(&inst.problem(), SubOptions::default(), &mut sol)
            .expect("solve");
        assert!(rep.converged, "step {step}: {rep:?}");
        forms += rep.schur_forms;
        systems += rep.newton_steps;
        let mut direct = SubSolver::new(&inst.jac).expect("analysis");
        let mut reference = SubSolution::default();
        direct
            .solve(&inst.problem(), SubOptions::default(), &mut reference)
            .expect("solve");
        let d = rel_diff(&sol.s, &reference.s);
        assert!(d <= 1e-8, "step {step}: the steps differ by {d:e}");
    }
    assert!(
        forms < systems,
        "{forms} formations for {systems} Newton systems"
    );
}

/// Asked for a duality gap below its rounding, a solve stops once the gap stops falling (with
/// the residual at the tolerance), not converged, long before its Newton-step limit.
#[test]
fn a_gap_stuck_at_its_rounding_stops_the_solve() {
    let mut rng = Rng(5);
    let inst = random_instance(&mut rng);
    let mut solver = SubSolver::new(&inst.jac).expect("analysis");
    let opts = SubOptions {
        tol: 1e-16,
        ..SubOptions::default()
    };
    let mut sol = SubSolution::default();
    let rep = solver
        .solve(&inst.problem(), opts, &mut sol)
        .expect("factor");
    assert!(!rep.converged, "{rep:?}");
    assert!(rep.newton_steps < 50, "{rep:?}");
}

/// Face steps ([`SubOptions::face_rounds`]): where B is factored at every Newton system, the
/// free multipliers a Newton step takes out of their box are fixed at that bound and the step
/// solved again on that face. On instances whose solutions have many multipliers at their
/// bounds (β a tenth of the others'), solves with face steps and with the projected search
/// alone reach the same solutions, and face steps were taken.
#[test]
fn face_steps_reach_the_solutions_of_the_projected_search() {
    let mut rng = Rng(20261205);
    let mut faces = 0;
    for case in 0..40 {
        let mut inst = random_instance(&mut rng);
        inst.beta.iter_mut().for_each(|b| *b *= 0.1);
        let ntheta = inst.jac.ncols - inst.r.len();
        let mut solutions = Vec::new();
        for face_rounds in [SubOptions::default().face_rounds, 0] {
            let mut solver = SubSolver::with_parameters(&inst.jac, ntheta, Method::SchurAugmented)
                .expect("analysis");
            let opts = SubOptions {
                face_rounds,
                ..SubOptions::default()
            };
            let mut sol = SubSolution::default();
            let rep = solver
                .solve(&inst.problem(), opts, &mut sol)
                .expect("factorization");
            assert!(rep.converged, "case {case}: {rep:?}");
            if face_rounds == 0 {
                assert_eq!(rep.face_steps, 0);
            }
            faces += rep.face_steps;
            solutions.push(sol.s);
        }
        let diff = rel_diff(&solutions[0], &solutions[1]);
        assert!(
            diff <= 1e-7,
            "case {case}: the solutions differ by {diff:e}"
        );
    }
    assert!(faces > 0);
}
