//! The matrix-free path of the SRPA subproblem: the projected semismooth Newton method of
//! [`super::subproblem`] on the dual, with J reached only through a [`JacOp`] (J s, Jᵀ y and
//! solves with its lifted columns J_L), so a host that does not store J (a long RNN with a wide
//! hidden layer) can be solved at all.
//!
//! Everything the dual needs goes through the products: s(y) = clip(−(q + Jᵀy)/ρ, lo, hi) is
//! one `tmul`, ∇φ = −(r + J s(y)) one `mul`, and so are the gap, the natural residual and every
//! point of the line search. The Newton system on the free multipliers F,
//!
//! ```text
//! M d = −g_F,   M = δI + J_F D J_Fᵀ/ρ   (D: the free entries of s),
//! ```
//!
//! is solved by preconditioned conjugate gradients, inexactly (the forcing term
//! η = √(residual), between `cg_tol` and [`FORCING_MAX`]: early Newton steps take few
//! iterations, the last ones converge superlinearly). The preconditioner drops δ, D and the
//! restriction to F from M and splits J = [J_θ J_L]:
//!
//! ```text
//! P = (J_L J_Lᵀ + J_θ J_θᵀ)/ρ,   S = J_L⁻ᵀ J_L⁻¹,
//! P⁻¹ = ρ (S − S J_θ C⁻¹ J_θᵀ S),   C = I + J_θᵀ S J_θ   (n_θ × n_θ, dense; Woodbury),
//! ```
//!
//! applied on F (zero elsewhere): J_L is unit lower triangular, so S is two substitution
//! passes; one application is four of them, a `mul` and a `tmul`. C is formed column by
//! column (C e_k = e_k + J_θᵀ S J_θ e_k: a `mul`, two solves, a `tmul`; O(m) memory) when
//! n_θ ≤ [`WOODBURY_MAX_THETA`], and kept across the Newton systems and subproblems of one J
//! (ρ cancels in it); the SRPA iteration drops it at every new linearization
//! ([`MfSolver::jacobian_changed`]), since a C formed at another J soon makes P⁻¹ indefinite.
//! A caller that does not say when J changes gets the same by a check: a system whose
//! conjugate gradients fail with a C formed at an earlier solve re-forms it and starts again.
//! With a larger n_θ, C is not formed: C⁻¹ is applied by inner conjugate gradients on C,
//! preconditioned by Kronecker factors per parameter and deflated by the directions found
//! before in the same solve ([`super::kronecker`]); the outer conjugate gradients then take
//! the flexible (Polak–Ribière) β, since the inner solve is inexact. A system the conjugate
//! gradients do not solve within `cg_max` still gives a descent direction for the line search
//! (every iterate of conjugate gradients started at 0 is one), so the solve goes on.

// Index loops over several parallel arrays read best as index loops here.
#![allow(clippy::needless_range_loop)]

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::{factor as llt_factor, solve as llt_solve};
use faer::{Conj, Mat, MatMut, Par};

use mcopt_plugin_sdk::p1::WOODBURY_MAX_THETA;

use super::bound_columns::BoundColumns;
use super::instance::{StopRule, SubOptions, SubReport, SubSolution, Subproblem};
use super::kronecker::{KronFactors, PassScratch, Recycled, BORDER_TOL, INNER_TOL};
use super::operator::JacOp;
use super::sparse::dot;
/// The forcing term of the inexact Newton steps is at most this.
pub const FORCING_MAX: f64 = 0.1;
/// The Levenberg–Marquardt term δ = max(δ₀, `LM_SCALE` · gap / max β), as on the Schur path.
const LM_SCALE: f64 = 0.1;
/// Power iterations for ‖J‖² (the scale of δ₀ and of the projected-gradient fallback).
const POWER_STEPS: usize = 6;

/// The matrix-free subproblem solver (see the module docs): warm starts across solves, and the
/// kept Woodbury complement.
pub struct MfSolver {
    n: usize,
    m: usize,
    n_theta: usize,
    y: Vec<f64>,
    ws: Work,
    /// The Cholesky factor of the kept C, when n_θ ≤ [`WOODBURY_MAX_THETA`].
    woodbury: Option<Woodbury>,
    /// The Kronecker-preconditioned inner solve with C, when n_θ > [`WOODBURY_MAX_THETA`].
    kron: Option<KronState>,
    /// The lifted columns at a bound, dropped from the preconditioner ([`super::bound_columns`]).
    bound: BoundColumns,
}

/// How the θ part of the preconditioner applies C⁻¹.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThetaPreconditioner {
    /// The dense C, formed and factored (2 n_θ passes per J).
    Dense,
    /// Inner conjugate gradients on C with Kronecker factors ([`super::kronecker`]).
    Kronecker,
}

impl ThetaPreconditioner {
    /// The dense C where it is formed at all (n_θ ≤ [`WOODBURY_MAX_THETA`]), else Kronecker.
    pub fn for_theta(n_theta: usize) -> ThetaPreconditioner {
        if n_theta <= WOODBURY_MAX_THETA {
            ThetaPreconditioner::Dense
        } else {
            ThetaPreconditioner::Kronecker
        }
    }
}

/// The Kronecker path's state: the factors at the current J, and the kept directions.
struct KronState {
    factors: Option<KronFactors>,
    recycled: Recycled,
    /// J_θᵀ S r, then C⁻¹ of it.
    rhs: Vec<f64>,
    w: Vec<f64>,
}

struct Woodbury {
    factor: Mat<f64>,
    /// Whether `factor` holds a C (false before the first formation and after a failed one).
    formed: bool,
    /// Whether it was formed during the current (or last) solve, at its J.
    fresh: bool,
    stack: MemBuffer,
    theta: Vec<f64>,
}

#[derive(Default)]
struct Work {
    v: Vec<f64>,
    s: Vec<f64>,
    w: Vec<f64>,
    g: Vec<f64>,
    /// ∇φ at the line search's start (the trial evaluations overwrite `g`).
    g0: Vec<f64>,
    d: Vec<f64>,
    y_try: Vec<f64>,
    free_s: Vec<bool>,
    free_y: Vec<bool>,
    cg_r: Vec<f64>,
    cg_z: Vec<f64>,
    cg_p: Vec<f64>,
    cg_ap: Vec<f64>,
    /// Scratch: n entries, and two of m.
    tn: Vec<f64>,
    t1: Vec<f64>,
    t2: Vec<f64>,
}

/// Evaluation of the dual at one y.
struct DualPoint {
    phi: f64,
    primal: f64,
    residual: f64,
}

impl MfSolver {
    /// A solver for J of m rows and n = n_θ + m columns, with the θ preconditioner chosen by
    /// n_θ ([`ThetaPreconditioner::for_theta`]).
    pub fn new(n: usize, m: usize) -> MfSolver {
        let kind = ThetaPreconditioner::for_theta(n.saturating_sub(m));
        MfSolver::with_preconditioner(n, m, kind)
    }

    /// [`MfSolver::new`] with the θ preconditioner given (the dense C only up to
    /// [`WOODBURY_MAX_THETA`]: past it, Kronecker whatever `kind` says).
    pub fn with_preconditioner(n: usize, m: usize, kind: ThetaPreconditioner) -> MfSolver {
        let n_theta = n.saturating_sub(m);
        let kind = match ThetaPreconditioner::for_theta(n_theta) {
            ThetaPreconditioner::Dense => kind,
            large => large,
        };
        let dense = n_theta > 0 && kind == ThetaPreconditioner::Dense;
        let kron = (n_theta > 0 && kind == ThetaPreconditioner::Kronecker).then(|| KronState {
            factors: None,
            recycled: Recycled::default(),
            rhs: vec![0.0; n_theta],
            w: vec![0.0; n_theta],
        });
        let woodbury = dense.then(|| Woodbury {
            factor: Mat::zeros(n_theta, n_theta),
            formed: false,
            fresh: false,
            stack: MemBuffer::new(llt_factor::cholesky_in_place_scratch::<f64>(
                n_theta,
                Par::Seq,
                Default::default(),
            )),
            theta: vec![0.0; n_theta],
        });
        MfSolver {
            n,
            m,
            n_theta,
            y: vec![0.0; m],
            ws: Work {
                v: vec![0.0; n],
                s: vec![0.0; n],
                w: vec![0.0; m],
                g: vec![0.0; m],
                g0: vec![0.0; m],
                d: vec![0.0; m],
                y_try: vec![0.0; m],
                free_s: vec![false; n],
                free_y: vec![false; m],
                cg_r: vec![0.0; m],
                cg_z: vec![0.0; m],
                cg_p: vec![0.0; m],
                cg_ap: vec![0.0; m],
                tn: vec![0.0; n],
                t1: vec![0.0; m],
                t2: vec![0.0; m],
            },
            woodbury,
            kron,
            bound: BoundColumns::default(),
        }
    }

    /// Whether a Woodbury complement C is kept: formed at the current J, for a caller that
    /// reports every change of J ([`MfSolver::jacobian_changed`]); a checkpoint saves this,
    /// and [`MfSolver::form_preconditioner`] forms the same C again.
    pub fn has_preconditioner(&self) -> bool {
        self.woodbury.as_ref().is_some_and(|w| w.formed)
            || self.kron.as_ref().is_some_and(|k| k.factors.is_some())
    }

    /// Drops the kept C: J changed (a new linearization). A C formed at another J makes the
    /// preconditioner indefinite as soon as J moves by more than a little: P⁻¹ is positive
    /// definite only while the kept C dominates the current J_θᵀ S J_θ, and C − I is large.
    pub fn jacobian_changed(&mut self) {
        if let Some(w) = self.woodbury.as_mut() {
            w.formed = false;
        }
        if let Some(k) = self.kron.as_mut() {
            k.factors = None;
            k.recycled.clear();
        }
        self.bound.clear();
    }

    /// Forms C (or the Kronecker factors) at `op`'s J and keeps it (nothing without a θ
    /// preconditioner).
    pub fn form_preconditioner(&mut self, op: &mut dyn JacOp) -> Result<(), String> {
        self.check_sizes(op)?;
        if let Some(mut k) = self.kron.take() {
            let r = self.form_kron(&mut k, op);
            self.kron = Some(k);
            return r;
        }
        let Some(mut wb) = self.woodbury.take() else {
            return Ok(());
        };
        let r = self.form_c(&mut wb, op);
        self.woodbury = Some(wb);
        r
    }

    /// The multipliers the next solve starts from.
    pub fn warm_start(&self) -> &[f64] {
        &self.y
    }

    /// Set the multipliers the next solve starts from.
    pub fn set_warm_start(&mut self, y: &[f64]) {
        self.y.copy_from_slice(y);
    }

    fn check_sizes(&self, op: &dyn JacOp) -> Result<(), String> {
        if op.rows() != self.m || op.cols() != self.n {
            return Err(format!(
                "the operator is {} × {}, the solver {} × {}",
                op.rows(),
                op.cols(),
                self.m,
                self.n
            ));
        }
        Ok(())
    }

    /// Solves `p` (its `jac` is not read: J is `op`), warm-started from the previous
    /// multipliers.
    pub fn solve(
        &mut self,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        opts: SubOptions,
        out: &mut SubSolution,
    ) -> Result<SubReport, String> {
        self.check_sizes(op)?;
        let (n, m) = (self.n, self.m);
        if [p.q.len(), p.lower.len(), p.upper.len()] != [n; 3]
            || [p.r.len(), p.beta.len()] != [m; 2]
        {
            return Err("the subproblem's vectors do not have J's sizes".into());
        }
        if let Some(wb) = self.woodbury.as_mut() {
            wb.fresh = false;
        }
        // the kept directions serve one solve (so a resumed run, which forms only the factors,
        // takes the same steps)
        if let Some(k) = self.kron.as_mut() {
            k.recycled.clear();
        }
        self.bound.clear();
        for (yi, bi) in self.y.iter_mut().zip(p.beta) {
            *yi = yi.clamp(-bi, *bi);
        }
        let scale = self.norm_sq(op)? / p.rho;
        let delta0 = 1e-11 * scale.max(1e-8);
        let mut rep = SubReport::default();
        let mut y = std::mem::take(&mut self.y);
        let result = self.iterate(p, op, opts, &mut y, scale, delta0, &mut rep);
        self.y = y;
        let cur = result?;
        rep.objective = cur.primal;
        // final primal point (s(y) from the last evaluation at y) and bound multipliers
        self.dual(p, op, &self.y.clone())?;
        out.s.clone_from(&self.ws.s);
        out.y.clone_from(&self.y);
        out.bound_multiplier.resize(n, 0.0);
        for j in 0..n {
            let free = self.ws.s[j] > p.lower[j] && self.ws.s[j] < p.upper[j];
            let grad = self.ws.v[j] + p.rho * self.ws.s[j];
            out.bound_multiplier[j] = if free { 0.0 } else { grad.abs() };
        }
        Ok(rep)
    }

    /// The Newton iterations from y; returns the dual evaluation at the final y.
    #[allow(clippy::too_many_arguments)]
    fn iterate(
        &mut self,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        opts: SubOptions,
        y: &mut Vec<f64>,
        scale: f64,
        delta0: f64,
        rep: &mut SubReport,
    ) -> Result<DualPoint, String> {
        let m = self.m;
        let mut cur = self.dual(p, op, y)?;
        let mut stop = StopRule::default();
        loop {
            if stop.stops(cur.primal, cur.phi, cur.residual, &opts, rep) {
                return Ok(cur);
            }
            rep.newton_steps += 1;
            let forcing = cur.residual.sqrt().clamp(opts.cg_tol, FORCING_MAX);
            let reg = self.newton_direction(p, op, y, delta0, forcing, opts, rep)?;
            self.ws.g0.copy_from_slice(&self.ws.g);
            // projected search on φ, as in the direct path
            let mut alpha = 1.0;
            loop {
                for i in 0..m {
                    let t = if self.ws.free_y[i] {
                        y[i] + alpha * self.ws.d[i]
                    } else {
                        y[i] + alpha * (-self.ws.g0[i].signum() * p.beta[i] - y[i])
                    };
                    self.ws.y_try[i] = t.clamp(-p.beta[i], p.beta[i]);
                }
                let y_try = std::mem::take(&mut self.ws.y_try);
                let trial = self.dual(p, op, &y_try);
                let trial = match trial {
                    Ok(t) => t,
                    Err(e) => {
                        self.ws.y_try = y_try;
                        return Err(e);
                    }
                };
                let decrease: f64 = (0..m).map(|i| self.ws.g0[i] * (y_try[i] - y[i])).sum();
                let prox: f64 = (0..m).map(|i| (y_try[i] - y[i]).powi(2)).sum();
                let armijo = trial.phi + 0.5 * reg * prox <= cur.phi + 1e-4 * decrease;
                let better = trial.residual < 0.5 * cur.residual;
                if alpha < 1e-10 {
                    // the Newton model failed: a projected gradient step (always descent)
                    self.ws.y_try = y_try;
                    cur = self.gradient_step(p, op, y, cur.phi, 1.0 / scale)?;
                    break;
                }
                if armijo || better {
                    self.ws.y_try = std::mem::replace(y, y_try);
                    cur = trial;
                    break;
                }
                self.ws.y_try = y_try;
                alpha *= 0.5;
            }
        }
    }

    /// ‖J‖², estimated by power iterations on JᵀJ from a fixed start (deterministic).
    fn norm_sq(&mut self, op: &mut dyn JacOp) -> Result<f64, String> {
        let ws = &mut self.ws;
        ws.t1.iter_mut().for_each(|v| *v = 1.0);
        let mut est = 0.0;
        for _ in 0..POWER_STEPS {
            let norm = dot(&ws.t1, &ws.t1).sqrt();
            if norm == 0.0 || !norm.is_finite() {
                break;
            }
            ws.t1.iter_mut().for_each(|v| *v /= norm);
            op.tmul(&ws.t1, &mut ws.tn)?;
            est = dot(&ws.tn, &ws.tn);
            op.mul(&ws.tn, &mut ws.t1)?;
        }
        Ok(est)
    }

    /// A projected gradient step on φ with backtracking from `step` (with ∇φ(y) in `g0`);
    /// returns the new point's dual evaluation.
    fn gradient_step(
        &mut self,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        y: &mut Vec<f64>,
        phi: f64,
        step: f64,
    ) -> Result<DualPoint, String> {
        let g = self.ws.g0.clone();
        let mut t = step;
        loop {
            let trial: Vec<f64> = (0..self.m)
                .map(|i| (y[i] - t * g[i]).clamp(-p.beta[i], p.beta[i]))
                .collect();
            let dec: f64 = (0..self.m).map(|i| g[i] * (trial[i] - y[i])).sum();
            let point = self.dual(p, op, &trial)?;
            if point.phi <= phi + 1e-4 * dec || t < 1e-300 {
                *y = trial;
                return Ok(point);
            }
            t *= 0.5;
        }
    }

    /// φ, the primal objective at s(y) and the relative natural residual; leaves v = q + Jᵀy,
    /// s = s(y), w = r + J s and g = ∇φ = −w in the workspace.
    fn dual(
        &mut self,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        y: &[f64],
    ) -> Result<DualPoint, String> {
        let ws = &mut self.ws;
        op.tmul(y, &mut ws.v)?;
        let mut inner = 0.0;
        let mut smooth = 0.0;
        for j in 0..self.n {
            ws.v[j] += p.q[j];
            let s = (-ws.v[j] / p.rho).clamp(p.lower[j], p.upper[j]);
            ws.s[j] = s;
            inner += ws.v[j] * s + 0.5 * p.rho * s * s;
            smooth += p.q[j] * s + 0.5 * p.rho * s * s;
        }
        op.mul(&ws.s, &mut ws.w)?;
        let mut yr = 0.0;
        let mut l1 = 0.0;
        let mut res: f64 = 0.0;
        let mut size: f64 = 1.0;
        for i in 0..self.m {
            ws.w[i] += p.r[i];
            ws.g[i] = -ws.w[i];
            yr += y[i] * p.r[i];
            l1 += p.beta[i] * ws.w[i].abs();
            let nat = y[i] - (y[i] + ws.w[i]).clamp(-p.beta[i], p.beta[i]);
            res = res.max(nat.abs());
            size = size.max(p.r[i].abs());
        }
        Ok(DualPoint {
            phi: -yr - inner,
            primal: smooth + l1,
            residual: res / size,
        })
    }

    /// The Newton direction on the free multipliers, left in `d` (uses v and g of the last
    /// dual evaluation at y); returns δ.
    #[allow(clippy::too_many_arguments)]
    fn newton_direction(
        &mut self,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        y: &[f64],
        delta0: f64,
        forcing: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> Result<f64, String> {
        let ws = &mut self.ws;
        let gap = p.free_sets(&ws.v, y, &ws.g, &mut ws.free_s, &mut ws.free_y);
        let beta_max = p.beta.iter().fold(0.0f64, |a, b| a.max(*b)).max(1e-300);
        let delta = delta0.max(LM_SCALE * gap / beta_max);
        if let Some(mut k) = self.kron.take() {
            let r = self.direction_kron(&mut k, p, op, delta, forcing, opts, rep);
            self.kron = Some(k);
            return r.map(|()| delta);
        }
        let mut wb = self.woodbury.take();
        let r = self.direction_with(&mut wb, p, op, delta, forcing, opts, rep);
        self.woodbury = wb;
        r.map(|()| delta)
    }

    /// The conjugate gradients with the kept C (formed first if none is kept), again with C
    /// re-formed when a stale one does not converge; the best iterate otherwise.
    #[allow(clippy::too_many_arguments)]
    fn direction_with(
        &mut self,
        wb: &mut Option<Woodbury>,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        delta: f64,
        forcing: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> Result<(), String> {
        for attempt in 0..2 {
            if let Some(w) = wb.as_mut() {
                if !w.formed || (attempt == 1 && !w.fresh) {
                    self.form_c(w, op)?;
                    rep.schur_forms += 1;
                }
            }
            self.prepare_bound(Theta::dense(wb.as_mut()), op)?;
            let (converged, iterations) =
                self.conjugate_gradients(Theta::dense(wb.as_mut()), p, op, delta, forcing, opts)?;
            rep.cg_iterations += iterations;
            let stale = wb.as_ref().is_some_and(|w| !w.fresh);
            if converged || !stale {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The conjugate gradients with the Kronecker-preconditioned inner solve (the factors
    /// formed first if none are kept at this J).
    #[allow(clippy::too_many_arguments)]
    fn direction_kron(
        &mut self,
        k: &mut KronState,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        delta: f64,
        forcing: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> Result<(), String> {
        if k.factors.is_none() {
            self.form_kron(k, op)?;
            rep.schur_forms += 1;
        }
        self.prepare_bound(Theta::Kron(k), op)?;
        let (_, iterations) =
            self.conjugate_gradients(Theta::Kron(k), p, op, delta, forcing, opts)?;
        rep.cg_iterations += iterations;
        Ok(())
    }

    /// Takes the lifted columns at a bound in this Newton system's `free_s` into the
    /// preconditioner ([`super::bound_columns`]), with C⁻¹ as `theta` applies it; none while
    /// no C is kept.
    fn prepare_bound(&mut self, theta: Theta<'_>, op: &mut dyn JacOp) -> Result<(), String> {
        let nt = self.n_theta;
        let ws = &mut self.ws;
        match theta {
            Theta::Dense(w) if w.formed => {
                let factor = w.factor.as_ref();
                let mut c_inverse = |_: &mut dyn JacOp,
                                     b: &[f64],
                                     out: &mut [f64],
                                     _: &mut [f64],
                                     _: &mut [f64]| {
                    out.copy_from_slice(b);
                    llt_solve::solve_in_place_with_conj(
                        factor,
                        Conj::No,
                        MatMut::from_column_major_slice_mut(out, nt, 1),
                        Par::Seq,
                        MemStack::new(&mut []),
                    );
                    Ok(())
                };
                self.bound
                    .prepare(&ws.free_s, nt, op, &mut c_inverse, &mut ws.tn, &mut ws.t1)
            }
            Theta::Kron(k) => {
                let KronState {
                    factors, recycled, ..
                } = k;
                let factors = factors
                    .as_mut()
                    .ok_or("the Kronecker factors are not formed")?;
                let mut c_inverse = |op: &mut dyn JacOp,
                                     b: &[f64],
                                     out: &mut [f64],
                                     tn: &mut [f64],
                                     tm: &mut [f64]| {
                    recycled.solve(op, factors, b, out, PassScratch { tn, tm }, BORDER_TOL)
                };
                self.bound
                    .prepare(&ws.free_s, nt, op, &mut c_inverse, &mut ws.tn, &mut ws.t1)
            }
            Theta::Dense(_) | Theta::None => {
                self.bound.clear();
                Ok(())
            }
        }
    }

    /// Estimates the Kronecker factors at `op`'s J.
    fn form_kron(&mut self, k: &mut KronState, op: &mut dyn JacOp) -> Result<(), String> {
        let shapes = op.params().to_vec();
        k.recycled.clear();
        self.bound.clear();
        k.factors = Some(KronFactors::form(
            op,
            &shapes,
            &mut self.ws.t1,
            &mut self.ws.tn,
        )?);
        Ok(())
    }

    /// Forms C = I + J_θᵀ S J_θ column by column, in place of the kept factor, and factors
    /// it. A column is two passes: x = J_L⁻¹ (−J_θ e_k), then J_θᵀ J_L⁻ᵀ x = −(C − I) e_k.
    fn form_c(&mut self, wb: &mut Woodbury, op: &mut dyn JacOp) -> Result<(), String> {
        let nt = self.n_theta;
        self.bound.clear();
        let ws = &mut self.ws;
        wb.formed = false;
        let c = &mut wb.factor;
        for k in 0..nt {
            ws.tn.iter_mut().for_each(|v| *v = 0.0);
            ws.tn[k] = 1.0;
            op.lsolve_theta(&ws.tn, &mut ws.t1)?;
            op.ltsolve_theta(&ws.t1, &mut ws.tn)?;
            for a in 0..nt {
                c[(a, k)] = -ws.tn[a];
            }
        }
        // symmetrize (the triangles agree up to rounding) and add I
        for b in 0..nt {
            for a in b + 1..nt {
                let v = 0.5 * (c[(a, b)] + c[(b, a)]);
                c[(a, b)] = v;
                c[(b, a)] = v;
            }
            c[(b, b)] += 1.0;
        }
        llt_factor::cholesky_in_place(
            c.as_mut(),
            Default::default(),
            Par::Seq,
            MemStack::new(&mut wb.stack),
            Default::default(),
        )
        .map_err(|_| "the Woodbury complement of the preconditioner is not positive definite")?;
        wb.formed = true;
        wb.fresh = true;
        Ok(())
    }

    /// z = P⁻¹ r on the free rows (r is zero outside them; so is z).
    fn precondition(
        ws: &mut Work,
        theta: Theta<'_>,
        bound: &mut BoundColumns,
        op: &mut dyn JacOp,
        rho: f64,
    ) -> Result<(), String> {
        // z = S r (and J_θᵀ S r in the same pass when C is kept)
        op.lsolve(&ws.cg_r, &mut ws.t1)?;
        // the border of the columns at a bound: J_Aᵀ S r, the entries of J_L⁻¹ r at A
        bound.gather(&ws.t1);
        let w = match theta {
            Theta::Dense(wb) if wb.formed => {
                let nt = wb.theta.len();
                op.ltsolve_theta(&ws.t1, &mut ws.tn)?;
                ws.cg_z.copy_from_slice(&ws.tn[nt..]);
                wb.theta.copy_from_slice(&ws.tn[..nt]);
                llt_solve::solve_in_place_with_conj(
                    wb.factor.as_ref(),
                    Conj::No,
                    MatMut::from_column_major_slice_mut(&mut wb.theta, nt, 1),
                    Par::Seq,
                    MemStack::new(&mut []),
                );
                bound.adjust(&mut wb.theta);
                Some(&wb.theta)
            }
            Theta::Kron(k) => {
                let nt = k.rhs.len();
                op.ltsolve_theta(&ws.t1, &mut ws.tn)?;
                ws.cg_z.copy_from_slice(&ws.tn[nt..]);
                k.rhs.copy_from_slice(&ws.tn[..nt]);
                let factors = k
                    .factors
                    .as_mut()
                    .ok_or("the Kronecker factors are not formed")?;
                let scratch = PassScratch {
                    tn: &mut ws.tn,
                    tm: &mut ws.t1,
                };
                k.recycled
                    .solve(op, factors, &k.rhs, &mut k.w, scratch, INNER_TOL)?;
                bound.adjust(&mut k.w);
                Some(&k.w)
            }
            Theta::Dense(_) | Theta::None => {
                op.ltsolve(&ws.t1, &mut ws.cg_z)?;
                None
            }
        };
        if let Some(w) = w {
            // z −= S J_θ C⁻¹ J_θᵀ S r: J_L⁻¹ (−J_θ w), then J_L⁻ᵀ; with columns at a bound,
            // z −= S Ĵ Ĉ⁻¹ Ĵᵀ S r: w is the bordered solution's a, and E_A c joins the
            // last pass's input
            let nt = w.len();
            ws.tn.iter_mut().for_each(|v| *v = 0.0);
            ws.tn[..nt].copy_from_slice(w);
            op.lsolve_theta(&ws.tn, &mut ws.t1)?;
            bound.scatter(&mut ws.t1);
            op.ltsolve(&ws.t1, &mut ws.t2)?;
            for (z, b) in ws.cg_z.iter_mut().zip(&ws.t2) {
                *z += b;
            }
        }
        for (z, &free) in ws.cg_z.iter_mut().zip(&ws.free_y) {
            *z = if free { rho * *z } else { 0.0 };
        }
        Ok(())
    }

    /// Solves (δI + J_F D J_Fᵀ/ρ) d = −g_F on the free multipliers F by preconditioned
    /// conjugate gradients to the relative residual `forcing`; leaves d (or the last iterate)
    /// in `ws.d`, zero outside F. Returns whether it converged within `cg_max`, and the
    /// iterations.
    fn conjugate_gradients(
        &mut self,
        mut theta: Theta<'_>,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        delta: f64,
        forcing: f64,
        opts: SubOptions,
    ) -> Result<(bool, usize), String> {
        let (n, m) = (self.n, self.m);
        let ws = &mut self.ws;
        let bound = &mut self.bound;
        for i in 0..m {
            ws.cg_r[i] = if ws.free_y[i] { -ws.g[i] } else { 0.0 };
            ws.d[i] = 0.0;
        }
        let norm_b = dot(&ws.cg_r, &ws.cg_r).sqrt();
        if norm_b == 0.0 {
            return Ok((true, 0));
        }
        let target = forcing * norm_b;
        // an inexact inner solve makes the preconditioner vary: the flexible β then
        let flexible = matches!(theta, Theta::Kron(_));
        MfSolver::precondition(ws, theta.reborrow(), bound, op, p.rho)?;
        ws.cg_p.copy_from_slice(&ws.cg_z);
        let mut rz = dot(&ws.cg_r, &ws.cg_z);
        for it in 1..=opts.cg_max {
            // ap = (δI + J_F D J_Fᵀ/ρ) p
            op.tmul(&ws.cg_p, &mut ws.tn)?;
            for j in 0..n {
                if !ws.free_s[j] {
                    ws.tn[j] = 0.0;
                }
            }
            op.mul(&ws.tn, &mut ws.cg_ap)?;
            for i in 0..m {
                ws.cg_ap[i] = if ws.free_y[i] {
                    delta * ws.cg_p[i] + ws.cg_ap[i] / p.rho
                } else {
                    0.0
                };
            }
            let pap = dot(&ws.cg_p, &ws.cg_ap);
            if !(pap > 0.0 && rz > 0.0) {
                if it == 1 {
                    // the preconditioned residual is still a descent direction
                    ws.d.copy_from_slice(&ws.cg_z);
                }
                return Ok((false, it));
            }
            let alpha = rz / pap;
            for i in 0..m {
                ws.d[i] += alpha * ws.cg_p[i];
                ws.cg_r[i] -= alpha * ws.cg_ap[i];
            }
            if dot(&ws.cg_r, &ws.cg_r).sqrt() <= target {
                return Ok((true, it));
            }
            let r_zold = if flexible {
                dot(&ws.cg_r, &ws.cg_z)
            } else {
                0.0
            };
            MfSolver::precondition(ws, theta.reborrow(), bound, op, p.rho)?;
            let rz_next = dot(&ws.cg_r, &ws.cg_z);
            let beta = (rz_next - r_zold) / rz;
            rz = rz_next;
            for i in 0..m {
                ws.cg_p[i] = ws.cg_z[i] + beta * ws.cg_p[i];
            }
        }
        Ok((false, opts.cg_max))
    }
}

/// The θ part of one application of the preconditioner.
enum Theta<'a> {
    /// ρ S alone.
    None,
    /// The dense C (ρ S alone while it is not formed).
    Dense(&'a mut Woodbury),
    /// The inner solve with C.
    Kron(&'a mut KronState),
}

impl<'a> Theta<'a> {
    fn dense(wb: Option<&'a mut Woodbury>) -> Theta<'a> {
        wb.map_or(Theta::None, Theta::Dense)
    }

    fn reborrow(&mut self) -> Theta<'_> {
        match self {
            Theta::None => Theta::None,
            Theta::Dense(w) => Theta::Dense(w),
            Theta::Kron(k) => Theta::Kron(k),
        }
    }
}

/// The subproblem's objective at s with J through `op` (`w`: scratch of m entries).
pub fn objective(
    p: &Subproblem<'_>,
    op: &mut dyn JacOp,
    s: &[f64],
    w: &mut [f64],
) -> Result<f64, String> {
    op.mul(s, w)?;
    let smooth: f64 = s
        .iter()
        .zip(p.q)
        .map(|(si, qi)| qi * si + 0.5 * p.rho * si * si)
        .sum();
    let l1: f64 = w
        .iter()
        .zip(p.r)
        .zip(p.beta)
        .map(|((wi, ri), bi)| bi * (wi + ri).abs())
        .sum();
    Ok(smooth + l1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solvers::srpa::kronecker::{recurrence, values};
    use crate::solvers::srpa::operator::StoredJac;
    use crate::solvers::srpa::sparse::SparseRows;

    impl MfSolver {
        /// One application of the preconditioner to `r` as a Newton system with the columns
        /// `free_s` free and every row free applies it (C or the factors formed first).
        fn preconditioned(
            &mut self,
            op: &mut dyn JacOp,
            free_s: &[bool],
            r: &[f64],
            rho: f64,
        ) -> Result<Vec<f64>, String> {
            self.ws.free_s.copy_from_slice(free_s);
            self.ws.free_y.fill(true);
            self.bound.clear();
            let (mut wb, mut kron) = (self.woodbury.take(), self.kron.take());
            if let Some(w) = wb.as_mut().filter(|w| !w.formed) {
                self.form_c(w, op)?;
            }
            if let Some(k) = kron.as_mut().filter(|k| k.factors.is_none()) {
                self.form_kron(k, op)?;
            }
            let mut theta = match kron.as_mut() {
                Some(k) => Theta::Kron(k),
                None => Theta::dense(wb.as_mut()),
            };
            self.prepare_bound(theta.reborrow(), op)?;
            self.ws.cg_r.copy_from_slice(r);
            let z = MfSolver::precondition(&mut self.ws, theta, &mut self.bound, op, rho);
            (self.woodbury, self.kron) = (wb, kron);
            z.map(|()| self.ws.cg_z.clone())
        }
    }

    /// The free columns of n with the lifted columns `bound` (rows' indices) at a bound.
    fn free_but(n: usize, n_theta: usize, bound: &[usize]) -> Vec<bool> {
        let mut free = vec![true; n];
        for &lifted in bound {
            free[n_theta + lifted] = false;
        }
        free
    }

    /// ‖(J D Jᵀ/ρ) z − r‖ / ‖r‖ with D zero at the columns not in `kept`.
    fn residual(j: &SparseRows, kept: &[bool], z: &[f64], r: &[f64], rho: f64) -> f64 {
        let mut t = vec![0.0; j.ncols];
        j.mul_t(z, &mut t);
        for (t, &k) in t.iter_mut().zip(kept) {
            if !k {
                *t = 0.0;
            }
        }
        let mut mz = vec![0.0; r.len()];
        j.mul(&t, &mut mz);
        let e: f64 = mz.iter().zip(r).map(|(a, b)| (a / rho - b).powi(2)).sum();
        (e / dot(r, r)).sqrt()
    }

    /// With lifted columns at a bound, one application of the preconditioner is (J D Jᵀ/ρ)⁻¹
    /// itself (the dense C: to rounding; the Kronecker path: to its inner tolerances), where
    /// the preconditioner without the correction is far from it.
    #[test]
    fn the_bordered_preconditioner_inverts_j_d_jt_with_columns_at_a_bound() {
        let (steps, width, n_theta, rho) = (12, 3, 5, 0.7);
        let j = recurrence(steps, width, n_theta);
        let (m, n) = (j.nrows(), j.ncols);
        let r = values(11, m);
        let free = free_but(n, n_theta, &[4, 13, 14, 27]);
        let all = vec![true; n];
        for (kind, tol) in [
            (ThetaPreconditioner::Dense, 1e-10),
            (ThetaPreconditioner::Kronecker, 1e-5),
        ] {
            let mut solver = MfSolver::with_preconditioner(n, m, kind);
            let mut op = StoredJac::new(&j).unwrap();
            let z = solver.preconditioned(&mut op, &free, &r, rho).unwrap();
            assert_eq!(solver.bound.len(), 4, "{kind:?}");
            let corrected = residual(&j, &free, &z, &r, rho);
            assert!(corrected < tol, "{kind:?}: {corrected:e}");
            // P alone: every column kept, so P⁻¹ inverts J Jᵀ/ρ but not J D Jᵀ/ρ
            let z = solver.preconditioned(&mut op, &all, &r, rho).unwrap();
            assert_eq!(solver.bound.len(), 0);
            assert!(residual(&j, &all, &z, &r, rho) < tol, "{kind:?}");
            let uncorrected = residual(&j, &free, &z, &r, rho);
            assert!(uncorrected > 1e-2, "{kind:?}: {uncorrected:e}");
        }
    }

    /// More columns at a bound than parameters: J D Jᵀ is singular, the columns past the
    /// rank of G's rows stay in P, and the ones corrected are inverted exactly.
    #[test]
    fn dependent_columns_at_a_bound_stay_in_the_preconditioner() {
        let (steps, width, n_theta, rho) = (10, 2, 2, 1.3);
        let j = recurrence(steps, width, n_theta);
        let (m, n) = (j.nrows(), j.ncols);
        let r = values(12, m);
        let bound = [3, 8, 15];
        let free = free_but(n, n_theta, &bound);
        let mut solver = MfSolver::with_preconditioner(n, m, ThetaPreconditioner::Dense);
        let mut op = StoredJac::new(&j).unwrap();
        let z = solver.preconditioned(&mut op, &free, &r, rho).unwrap();
        assert_eq!(solver.bound.len(), 2);
        // the first two are independent, so they are the ones corrected
        let corrected = free_but(n, n_theta, &bound[..2]);
        let res = residual(&j, &corrected, &z, &r, rho);
        assert!(res < 1e-10, "{res:e}");
    }
}
