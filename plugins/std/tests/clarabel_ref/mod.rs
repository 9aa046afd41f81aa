//! Clarabel as the reference solver of the SRPA subproblem (shared by the plugin's tests and the
//! host's tests on real subproblems), and the relative difference the comparisons use.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};
use mcopt_std::solvers::srpa::subproblem::Subproblem;

/// The same problem as a QP for Clarabel: variables (s, t), t ≥ |r + J s|.
/// Returns the solution and whether Clarabel certified it (status `Solved`, not `AlmostSolved`).
pub fn clarabel_solve(inst: &Subproblem<'_>) -> (Vec<f64>, bool) {
    let n = inst.q.len();
    let m = inst.r.len();
    let nv = n + m;
    let p = CscMatrix::new_from_triplets(
        nv,
        nv,
        (0..n).collect(),
        (0..n).collect(),
        vec![inst.rho; n],
    );
    let mut q = inst.q.to_vec();
    q.extend_from_slice(inst.beta);
    let (mut ri, mut ci, mut vi, mut b) = (vec![], vec![], vec![], vec![]);
    let mut row = 0;
    for sign in [1.0, -1.0] {
        for i in 0..m {
            for k in inst.jac.row_ptr[i]..inst.jac.row_ptr[i + 1] {
                ri.push(row);
                ci.push(inst.jac.col_idx[k]);
                vi.push(sign * inst.jac.values[k]);
            }
            ri.push(row);
            ci.push(n + i);
            vi.push(-1.0);
            b.push(-sign * inst.r[i]);
            row += 1;
        }
    }
    for j in 0..n {
        if inst.upper[j].is_finite() {
            ri.push(row);
            ci.push(j);
            vi.push(1.0);
            b.push(inst.upper[j]);
            row += 1;
        }
        if inst.lower[j].is_finite() {
            ri.push(row);
            ci.push(j);
            vi.push(-1.0);
            b.push(-inst.lower[j]);
            row += 1;
        }
    }
    let a = CscMatrix::new_from_triplets(row, nv, ri, ci, vi);
    let cones = [SupportedConeT::NonnegativeConeT(row)];
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .tol_gap_abs(1e-12)
        .tol_gap_rel(1e-12)
        .tol_feas(1e-12)
        .max_iter(200)
        .build()
        .expect("settings");
    let mut solver = DefaultSolver::new(&p, &q, &a, &b, &cones, settings).expect("clarabel setup");
    solver.solve();
    let certified = solver.solution.status == SolverStatus::Solved;
    (solver.solution.x[..n].to_vec(), certified)
}

/// ‖a − b‖ / max(‖b‖, 1): how far a step is from the reference step b.
pub fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let s: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    d / s.max(1.0)
}
