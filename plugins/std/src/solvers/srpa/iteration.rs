//! One SRPA run as a state machine over a host's (P1) problem (docs/math.md §5): fix the pieces at
//! z^k (the host's tie rule, fed with the previous subproblem's bound multipliers), solve the
//! convex subproblem exactly, accept with η₁, raise ρ by η₂ on a rejection.

use mcopt_plugin_sdk::p1::{Linearization, P1Problem, NO_PIECE};

use super::newton_cg;
use super::operator::HostJac;
use super::schur::{Kept, Saved};
use super::sparse::reduce_halves;
use super::subproblem::{
    Method, SparseRows, SubOptions, SubReport, SubSolution, SubSolver, Subproblem,
};

/// The largest `eta2` and `rho1` the options admit.
pub const ETA2_MAX: f64 = 1e3;
pub const RHO1_MAX: f64 = 1e6;
/// ρ may grow to this multiple of ρ₁; beyond it the run stalls: a predicted decrease that is
/// small because ρ is huge says nothing about stationarity.
pub const RHO_GROWTH_MAX: f64 = 1e6;
/// This many rejected steps in a row stall the run.
pub const REJECTED_IN_A_ROW_MAX: usize = 100;

/// Why a run stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// ρ would exceed [`RHO_GROWTH_MAX`] · ρ₁.
    RhoCap,
    /// [`REJECTED_IN_A_ROW_MAX`] steps were rejected in a row.
    Rejected,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::RhoCap => write!(f, "rho reached its cap ({RHO_GROWTH_MAX:e} times rho1)"),
            Stall::Rejected => write!(f, "{REJECTED_IN_A_ROW_MAX} rejected steps in a row"),
        }
    }
}

/// SRPA's options.
#[derive(Debug, Clone, Copy)]
pub struct SrpaOptions {
    /// Accept a step when Θ(z) − Θ(z + s) ≥ (η₁ ρ / 2)‖s‖².
    pub eta1: f64,
    /// ρ ← η₂ ρ after a rejected step.
    pub eta2: f64,
    /// ρ at the start.
    pub rho1: f64,
    /// Converged when the predicted decrease Φ(0) − Φ(s) is at most this.
    pub tol: f64,
    pub sub: SubOptions,
    /// How the subproblems' Newton systems are solved (chosen by size unless forced).
    pub method: Method,
}

impl Default for SrpaOptions {
    fn default() -> Self {
        SrpaOptions {
            eta1: 0.9,
            eta2: 1.3,
            rho1: 0.5,
            tol: 1e-10,
            sub: SubOptions::default(),
            method: Method::Auto,
        }
    }
}

/// What one iteration measured (the trace columns).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SrpaMetrics {
    /// Θ(z^{k+1}) (unchanged after a rejection).
    pub objective: f64,
    /// F(z^{k+1}) and the feasibility violation at z^{k+1}: the largest over layer groups of
    /// (1/(N T))‖residual‖₂.
    pub smooth: f64,
    pub feasibility: f64,
    /// Φ_k(0) − Φ_k(s^k), ‖s^k‖ and the ρ_k the subproblem used.
    pub predicted_decrease: f64,
    pub step_norm: f64,
    pub rho: f64,
    pub accepted: bool,
    /// Piece entries at a tie at z^{k+1} and how many switched piece.
    pub ties: usize,
    pub switched: usize,
    /// The subproblem solve.
    pub newton_steps: usize,
    /// Factorizations and conjugate-gradient iterations of the subproblem solve.
    pub factorizations: usize,
    pub schur_forms: usize,
    pub cg_iterations: usize,
    /// Newton systems solved again on a face (`SubOptions::face_rounds`).
    pub face_steps: usize,
    pub sub_gap: f64,
    pub sub_residual: f64,
    pub sub_converged: bool,
    /// Rejected steps in a row up to this one (0 after an accepted step).
    pub rejected_in_a_row: usize,
    /// Set when the run cannot go on: it stops `stalled`, never `converged`.
    pub stall: Option<Stall>,
}

/// The state of a run: the iterate, ρ, and the current linearization and subproblem solver.
pub struct Srpa {
    pub opts: SrpaOptions,
    pub z: Vec<f64>,
    pub rho: f64,
    /// Θ(z).
    pub objective: f64,
    pub accepted: usize,
    pub rejected: usize,
    /// Rejected steps since the last accepted one.
    pub rejected_in_a_row: usize,
    /// The piece of every site (the host's sites), chosen at z.
    pub pieces: Vec<u32>,
    lin: Linearization,
    jac: SparseRows,
    solver: SubSolver,
    sol: SubSolution,
    trial: Vec<f64>,
    scratch: Vec<f64>,
}

impl Srpa {
    /// Start at z⁰ (normally feasible: a forward completion of θ⁰).
    pub fn new(p: &mut dyn P1Problem, z0: Vec<f64>, opts: SrpaOptions) -> Result<Srpa, String> {
        Srpa::start(p, z0, None, opts)
    }

    fn start(
        p: &mut dyn P1Problem,
        z0: Vec<f64>,
        pieces: Option<Vec<u32>>,
        opts: SrpaOptions,
    ) -> Result<Srpa, String> {
        let st = p.structure().clone();
        if z0.len() != st.n_z {
            return Err(format!("z has {} entries, expected {}", z0.len(), st.n_z));
        }
        let objective = p.penalized(&z0)?;
        let mut lin = Linearization::for_structure(&st);
        let mut pieces = pieces.unwrap_or_else(|| vec![NO_PIECE; st.n_pieces]);
        p.linearize(&z0, None, &mut pieces, &mut lin)?;
        // without a stored J the subproblems go through the host's products (`jac` is then
        // the zero matrix, a placeholder of J's size)
        let row_ptr = if st.stored {
            st.row_ptr.clone()
        } else {
            vec![0; st.rows() + 1]
        };
        let jac = SparseRows {
            ncols: st.n_z,
            row_ptr,
            col_idx: st.col_idx.clone(),
            values: lin.jac.clone(),
        };
        let solver = if st.stored {
            SubSolver::with_parameters(&jac, st.n_theta, opts.method).map_err(|e| e.to_string())?
        } else {
            SubSolver::matrix_free(st.n_z, st.rows())
        };
        Ok(Srpa {
            opts,
            rho: opts.rho1,
            objective,
            accepted: 0,
            rejected: 0,
            rejected_in_a_row: 0,
            trial: vec![0.0; st.n_z],
            scratch: vec![0.0; st.rows()],
            z: z0,
            pieces,
            lin,
            jac,
            solver,
            sol: SubSolution::default(),
        })
    }

    /// The state a checkpoint needs: z, ρ, Θ(z), the counts, the pieces, the subproblem's
    /// warm start and its kept preconditioner (tag 1: the point it was formed at, where the
    /// preconditioner is recomputed from it identically; tag 2: H itself, where B is factored
    /// at every Newton system; the linearization at z is recomputed), then the rejected steps
    /// in a row (last, so states saved before it existed still restore), then, on the
    /// matrix-free path, whether it keeps a Woodbury complement (formed at the current J),
    /// elsewhere how the kept C̃ fared at the last subproblems' first systems (which decides
    /// whether the next one forms C at once).
    pub fn save(&self, out: &mut Vec<u8>) {
        let pieces: Vec<f64> = self.pieces.iter().map(|&p| p as f64).collect();
        let flags =
            |b: &[bool]| -> Vec<f64> { b.iter().map(|&x| f64::from(u8::from(x))).collect() };
        let mut blob = mcopt_plugin_sdk::Blob::new(out);
        blob.f64s(&self.z)
            .f64(self.rho)
            .f64(self.objective)
            .u64(self.accepted as u64)
            .u64(self.rejected as u64)
            .f64s(&pieces)
            .f64s(self.solver.warm_start());
        match self.solver.preconditioner() {
            None => {
                blob.u64(0);
            }
            Some(Saved::Point(k)) => {
                blob.u64(1)
                    .f64s(&k.jac)
                    .f64(k.rho)
                    .f64(k.delta)
                    .f64s(&flags(&k.free_s))
                    .f64s(&flags(&k.free_y));
            }
            Some(Saved::Inverse(h)) => {
                let by_columns: Vec<f64> = (0..h.ncols())
                    .flat_map(|j| (0..h.nrows()).map(move |i| h[(i, j)]))
                    .collect();
                blob.u64(2).f64s(&by_columns);
            }
        }
        blob.u64(self.rejected_in_a_row as u64);
        if let Some(mf) = self.solver.matrix_free_ref() {
            blob.u64(u64::from(mf.has_preconditioner()));
        } else {
            let (failed, formed) = self.solver.first_systems();
            blob.u64(u64::from(failed)).u64(u64::from(formed));
        }
    }

    /// Rebuild a run saved by [`Srpa::save`].
    pub fn restore(p: &mut dyn P1Problem, bytes: &[u8], opts: SrpaOptions) -> Result<Srpa, String> {
        let st = p.structure().clone();
        let mut r = mcopt_plugin_sdk::BlobReader::new(bytes);
        let z = r.f64s(st.n_z)?;
        let (rho, objective) = (r.f64()?, r.f64()?);
        let (accepted, rejected) = (r.u64()? as usize, r.u64()? as usize);
        let pieces: Vec<u32> = r.f64s(st.n_pieces)?.iter().map(|&v| v as u32).collect();
        let y = r.f64s(st.rows())?;
        let kept = match r.u64()? {
            0 => None,
            2 => Some(KeptState::Inverse(r.f64s(st.n_theta * st.n_theta)?)),
            _ => {
                let flags = |v: Vec<f64>| -> Vec<bool> { v.iter().map(|&x| x != 0.0).collect() };
                Some(KeptState::Point(Kept {
                    jac: r.f64s(st.col_idx.len())?,
                    rho: r.f64()?,
                    delta: r.f64()?,
                    free_s: flags(r.f64s(st.n_z)?),
                    free_y: flags(r.f64s(st.rows())?),
                }))
            }
        };
        let in_a_row = if r.finish().is_err() {
            r.u64()? as usize
        } else {
            0
        };
        let mut s = Srpa::start(p, z, Some(pieces), opts)?;
        if s.solver.matrix_free_ref().is_some() {
            if r.finish().is_err() && r.u64()? == 1 {
                s.restore_matrix_free(p)?;
            }
        } else if r.finish().is_err() {
            let failed = r.u64()? == 1;
            let formed = r.u64()? as u32;
            s.solver.set_first_systems(failed, formed);
        }
        r.finish()?;
        let restored = match kept {
            None => Ok(()),
            Some(KeptState::Point(k)) => s.solver.restore_preconditioner(k),
            Some(KeptState::Inverse(h)) => s.solver.restore_inverse(&h),
        };
        restored.map_err(|e| format!("the saved preconditioner: {e}"))?;
        s.rho = rho;
        s.objective = objective;
        s.accepted = accepted;
        s.rejected = rejected;
        s.rejected_in_a_row = in_a_row;
        s.solver.set_warm_start(&y);
        Ok(s)
    }

    /// Forms the matrix-free path's Woodbury complement at the current J (a checkpoint said
    /// one was kept).
    fn restore_matrix_free(&mut self, p: &mut dyn P1Problem) -> Result<(), String> {
        let formed = match self.solver.matrix_free_solver() {
            None => Err("a saved matrix-free preconditioner for a solver without one".into()),
            Some(mf) if p.structure().stored => {
                mf.form_preconditioner(&mut super::operator::StoredJac::new(&self.jac)?)
            }
            Some(mf) => mf.form_preconditioner(&mut HostJac::new(p)),
        };
        formed.map_err(|e| format!("the saved preconditioner: {e}"))
    }

    /// Nonzeros of the subproblem's LDLᵀ factor.
    pub fn factor_nnz(&self) -> usize {
        self.solver.factor_nnz()
    }

    /// The feasibility violation at the current z.
    pub fn feasibility(&self, p: &dyn P1Problem) -> f64 {
        p.structure().feasibility(&self.lin.residual)
    }

    /// One iteration: subproblem, acceptance test, ρ update; relinearizes after acceptance.
    pub fn step(&mut self, p: &mut dyn P1Problem) -> Result<SrpaMetrics, String> {
        let rho = self.rho;
        let rep = self.solve_subproblem(p)?;
        if !rep.objective.is_finite() || self.sol.s.iter().any(|v| !v.is_finite()) {
            return Err(self.blame(&format!(
                "the subproblem's solution is not finite (objective {})",
                rep.objective
            )));
        }
        let l1_now: f64 = self
            .lin
            .residual
            .iter()
            .zip(&p.structure().beta)
            .map(|(r, b)| b * r.abs())
            .sum();
        let predicted = l1_now - rep.objective;
        let s = &self.sol.s;
        let ss: f64 = s.iter().map(|v| v * v).sum();
        for ((t, z), d) in self.trial.iter_mut().zip(&self.z).zip(s) {
            *t = z + d;
        }
        let value = p.penalized(&self.trial)?;
        let accepted = self.objective - value >= 0.5 * self.opts.eta1 * rho * ss;
        let mut m = SrpaMetrics {
            predicted_decrease: predicted,
            step_norm: ss.sqrt(),
            rho,
            accepted,
            newton_steps: rep.newton_steps,
            factorizations: rep.factorizations,
            cg_iterations: rep.cg_iterations,
            schur_forms: rep.schur_forms,
            face_steps: rep.face_steps,
            sub_gap: rep.gap,
            sub_residual: rep.residual,
            sub_converged: rep.converged,
            ..SrpaMetrics::default()
        };
        if accepted {
            std::mem::swap(&mut self.z, &mut self.trial);
            self.objective = value;
            self.accepted += 1;
            self.rejected_in_a_row = 0;
            let mult = Some(&self.sol.bound_multiplier[..]);
            p.linearize(&self.z, mult, &mut self.pieces, &mut self.lin)?;
            // J's new values into `jac` by a swap, not a copy (6.47 M values on the TIMIT
            // shape): a linearization writes all of `lin`, so the old values it gets back are
            // never read
            std::mem::swap(&mut self.jac.values, &mut self.lin.jac);
            if let Some(mf) = self.solver.matrix_free_solver() {
                mf.jacobian_changed();
            }
            m.ties = self.lin.ties;
            m.switched = self.lin.switched;
        } else {
            self.rejected += 1;
            self.rejected_in_a_row += 1;
            let next = self.rho * self.opts.eta2;
            if next > RHO_GROWTH_MAX * self.opts.rho1 {
                m.stall = Some(Stall::RhoCap);
            } else {
                self.rho = next;
            }
            if self.rejected_in_a_row >= REJECTED_IN_A_ROW_MAX {
                m.stall = m.stall.or(Some(Stall::Rejected));
            }
        }
        m.rejected_in_a_row = self.rejected_in_a_row;
        m.objective = self.objective;
        m.smooth = self.lin.smooth;
        m.feasibility = p.structure().feasibility(&self.lin.residual);
        Ok(m)
    }

    /// The subproblem the next step solves: at z, on the current pieces, with the current ρ.
    pub fn subproblem<'a>(&'a self, p: &'a dyn P1Problem) -> Subproblem<'a> {
        subproblem(&self.lin, &self.jac, self.rho, &p.structure().beta)
    }

    fn solve_subproblem(&mut self, p: &mut dyn P1Problem) -> Result<SubReport, String> {
        let l = &self.lin;
        let finite = |v: &[f64]| {
            reduce_halves(
                v.len(),
                |r| v[r].iter().all(|x| x.is_finite()),
                |a, b| a && b,
            )
        };
        if !(finite(&l.grad) && finite(&self.jac.values) && finite(&l.residual)) {
            return Err(
                "the linearization at the current point is not finite (the model's \
                 gradient or a layer's derivative overflowed)"
                    .to_string(),
            );
        }
        if !p.structure().stored {
            return self.solve_through_products(p);
        }
        let prob = subproblem(&self.lin, &self.jac, self.rho, &p.structure().beta);
        let rep = self.solver.solve(&prob, self.opts.sub, &mut self.sol);
        let rep = rep.map_err(|e| self.blame(&e.to_string()))?;
        // the objective without the constant: qᵀs + ρ/2‖s‖² + Σβ|r + Js|
        let obj = prob.objective(&self.sol.s, &mut self.scratch);
        Ok(SubReport {
            objective: obj,
            ..rep
        })
    }

    /// The subproblem on the matrix-free path with J through the host's products.
    fn solve_through_products(&mut self, p: &mut dyn P1Problem) -> Result<SubReport, String> {
        let beta = p.structure().beta.clone();
        let prob = subproblem(&self.lin, &self.jac, self.rho, &beta);
        let mut op = HostJac::new(p);
        let rep = self
            .solver
            .solve_with(&prob, &mut op, self.opts.sub, &mut self.sol);
        let rep = rep.map_err(|e| self.blame(&e))?;
        let obj = newton_cg::objective(&prob, &mut op, &self.sol.s, &mut self.scratch)?;
        Ok(SubReport {
            objective: obj,
            ..rep
        })
    }
}

impl Srpa {
    /// A failure inside the subproblem, with the options that set its ρ and tolerance: a
    /// non-finite pivot or value there most likely comes from them.
    fn blame(&self, what: &str) -> String {
        format!(
            "the subproblem at rho = {:e} failed: {what} (rho1 = {:e}, eta2 = {:e}, {} rejected \
             steps, sub_tol = {:e}): check the options rho1, eta2 and sub_tol",
            self.rho, self.opts.rho1, self.opts.eta2, self.rejected, self.opts.sub.tol
        )
    }
}

/// A kept preconditioner as a checkpoint holds it ([`Saved`], owned).
enum KeptState {
    Point(Kept),
    Inverse(Vec<f64>),
}

/// The subproblem of a linearization (`jac` holds its J values in the structure's pattern).
fn subproblem<'a>(
    lin: &'a Linearization,
    jac: &'a SparseRows,
    rho: f64,
    beta: &'a [f64],
) -> Subproblem<'a> {
    Subproblem {
        q: &lin.grad,
        rho,
        lower: &lin.lower,
        upper: &lin.upper,
        jac,
        r: &lin.residual,
        beta,
    }
}
