//! The SRPA subproblem as data, shared by its solvers ([`super::subproblem`]'s direct and
//! parameter-Schur paths, [`super::newton_cg`]'s matrix-free one): the instance, the options,
//! what a solve returns, and the stall rule every path stops by.

use super::sparse::{each_half, reduce_halves, SparseRows};

/// The widest band below a multiplier's bound, relative to the bound, in which a Newton step
/// holds it at the bound (when the gradient pushes it there): the cap of the ε of the ε-active
/// set. It was 1e-3 absolute, 2.5% of the TIMIT shape's β = 0.04: multipliers inside the band
/// that are free at the solution were pushed to the bound and let go again at every Newton
/// step, and the late subproblems stalled for tens of steps with their active set all but found
/// (k = 230..232: 215 Newton steps, 27 with this band).
pub const EPS_ACTIVE: f64 = 1e-4;

/// One subproblem instance. Bounds may be infinite.
#[derive(Debug, Clone, Copy)]
pub struct Subproblem<'a> {
    pub q: &'a [f64],
    pub rho: f64,
    pub lower: &'a [f64],
    pub upper: &'a [f64],
    pub jac: &'a SparseRows,
    pub r: &'a [f64],
    pub beta: &'a [f64],
}

impl Subproblem<'_> {
    /// The free sets of a Newton step at the multipliers y, with ∇φ(y) = g and s(y) from
    /// v = q + Jᵀy: s_j is free when −v_j/ρ lies strictly inside its box; y_i is free unless
    /// the gradient pushes it against a bound that it lies within ε_i = min(|g_i|,
    /// [`EPS_ACTIVE`] β_i) of, that is, unless its projected gradient step y_i − g_i crosses a
    /// bound near it. Returns the natural gap ‖y − P(y − g)‖∞, which the regularization scales
    /// with.
    ///
    /// The band follows each row's own gradient (the active set of a semismooth Newton step on
    /// the natural residual) rather than the largest one (the gap): near a solution a multiplier
    /// that is free there but close to its bound has a gradient about as small as its residual,
    /// and a band of the whole gap held tens of such rows at every Newton step of the TIMIT
    /// shape's late subproblems, each sent to the bound and let go at the next step.
    pub fn free_sets(
        &self,
        v: &[f64],
        y: &[f64],
        g: &[f64],
        free_s: &mut [bool],
        free_y: &mut [bool],
    ) -> f64 {
        each_half(free_s, |first, free_s| {
            for (k, free) in free_s.iter_mut().enumerate() {
                let j = first + k;
                let t = -v[j] / self.rho;
                *free = t > self.lower[j] && t < self.upper[j];
            }
        });
        each_half(free_y, |first, free_y| {
            for (k, free) in free_y.iter_mut().enumerate() {
                let i = first + k;
                let eps = g[i].abs().min(EPS_ACTIVE * self.beta[i]);
                let at_lo = y[i] <= -self.beta[i] + eps && g[i] > 0.0;
                let at_hi = y[i] >= self.beta[i] - eps && g[i] < 0.0;
                *free = !(at_lo || at_hi);
            }
        });
        natural_gap(y, g, self.beta)
    }

    /// The primal objective at s (`w` is scratch of length m). J s by halves of the rows on two
    /// threads where J is large (each row's sum as in one pass).
    pub fn objective(&self, s: &[f64], w: &mut [f64]) -> f64 {
        self.jac.mul_halves(s, w);
        let smooth: f64 = s
            .iter()
            .zip(self.q)
            .map(|(si, qi)| qi * si + 0.5 * self.rho * si * si)
            .sum();
        let l1: f64 = w
            .iter()
            .zip(self.r)
            .zip(self.beta)
            .map(|((wi, ri), bi)| bi * (wi + ri).abs())
            .sum();
        smooth + l1
    }
}

/// Options of the subproblem solver.
#[derive(Debug, Clone, Copy)]
pub struct SubOptions {
    /// Relative tolerance on the duality gap and on the natural residual.
    pub tol: f64,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Conjugate-gradient iterations at most per Newton system with the kept Schur complement
    /// before it is reformed (0: factor every Newton system directly).
    pub cg_max: usize,
    /// Relative residual the conjugate gradients must reach (inexact Newton).
    pub cg_tol: f64,
    /// A Newton system that needed more conjugate-gradient iterations than this makes the next
    /// one reform the preconditioner first.
    pub cg_reform_after: usize,
    /// Face steps at most per Newton step: the free multipliers that a Newton step takes out
    /// of their box are fixed at the bound they cross and the step is solved again on that
    /// face (0: none; then the projected search alone moves them, one or two per step).
    pub face_rounds: usize,
}

impl Default for SubOptions {
    fn default() -> Self {
        SubOptions {
            tol: 1e-10,
            max_iter: 200,
            cg_max: 100,
            cg_tol: 1e-6,
            cg_reform_after: 10,
            face_rounds: 3,
        }
    }
}

/// A solve stops, not converged, when the residual has been at the tolerance and the gap has
/// not fallen below `STALL_RATIO` times its value of `STALL_STEPS` Newton steps before.
const STALL_STEPS: usize = 5;
const STALL_RATIO: f64 = 0.99;

/// The stop rule of every path's Newton loop, applied at each dual point: converged when the
/// relative duality gap and the relative natural residual are both at the tolerance; not
/// converged at the cap of Newton steps, or when the residual has been at the tolerance and
/// the gap no longer falls (it sits at the rounding of its sums: on the TIMIT shape 1.70e-10
/// for 195 steps at 821 k rows).
#[derive(Debug, Default)]
pub(super) struct StopRule {
    /// The gaps since the residual reached the tolerance.
    gaps: Vec<f64>,
}

impl StopRule {
    /// Record the point's gap (from the primal objective and the dual φ) and residual in
    /// `rep`; whether the solve stops there (`rep.converged` then says how).
    pub(super) fn stops(
        &mut self,
        primal: f64,
        phi: f64,
        residual: f64,
        opts: &SubOptions,
        rep: &mut SubReport,
    ) -> bool {
        rep.gap = (primal + phi) / (1.0 + primal.abs());
        rep.residual = residual;
        if residual <= opts.tol {
            self.gaps.push(rep.gap);
        } else {
            self.gaps.clear();
        }
        let n = self.gaps.len();
        let stalled = n > STALL_STEPS && rep.gap >= STALL_RATIO * self.gaps[n - 1 - STALL_STEPS];
        let solved = rep.gap <= opts.tol && residual <= opts.tol;
        let stops = solved || rep.newton_steps >= opts.max_iter || stalled;
        if stops {
            rep.converged = solved;
        }
        stops
    }
}

/// What a solve returns besides the step.
#[derive(Debug, Clone, Default)]
pub struct SubReport {
    pub converged: bool,
    pub newton_steps: usize,
    pub factorizations: usize,
    /// Conjugate-gradient iterations (each two sparse solves with B, see [`super::schur`]).
    pub cg_iterations: usize,
    /// Times the Schur complement C was formed.
    pub schur_forms: usize,
    /// Newton systems solved again on a face ([`SubOptions::face_rounds`]).
    pub face_steps: usize,
    pub objective: f64,
    /// Relative duality gap (P − D)/(1 + |P|).
    pub gap: f64,
    /// Relative natural residual of the ℓ1 optimality condition.
    pub residual: f64,
}

/// Results of a solve: the step s, the ℓ1 multipliers y and, for each variable, the multiplier
/// of its active bound (≥ 0; 0 where no bound is active).
#[derive(Debug, Clone, Default)]
pub struct SubSolution {
    pub s: Vec<f64>,
    pub y: Vec<f64>,
    pub bound_multiplier: Vec<f64>,
}

/// ‖y − P(y − g)‖∞: how far y is from first-order optimality on the box |y_i| ≤ β_i.
fn natural_gap(y: &[f64], g: &[f64], beta: &[f64]) -> f64 {
    let gap = |r: std::ops::Range<usize>| {
        y[r.clone()]
            .iter()
            .zip(&g[r.clone()])
            .zip(&beta[r])
            .map(|((yi, gi), bi)| (yi - (yi - gi).clamp(-bi, *bi)).abs())
            .fold(0.0, f64::max)
    };
    reduce_halves(y.len(), gap, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multiplier near its bound is held there only within ε_i = min(|g_i|, EPS_ACTIVE β_i),
    /// and only when the gradient pushes it against the bound: with β = 0.04 (the TIMIT
    /// shape's), a multiplier 5e-4 below the bound is free (the band of 1e-3 held it), and so
    /// is one inside the band whose gradient is smaller than its distance to the bound (the band
    /// of the whole gap held it).
    #[test]
    fn only_multipliers_within_the_relative_band_of_a_bound_are_held_there() {
        let beta = [0.04; 6];
        let jac = SparseRows {
            ncols: 1,
            row_ptr: vec![0; 7],
            col_idx: Vec::new(),
            values: Vec::new(),
        };
        let p = Subproblem {
            q: &[0.0],
            rho: 1.0,
            lower: &[0.0],
            upper: &[1.0],
            jac: &jac,
            r: &[0.0; 6],
            beta: &beta,
        };
        let near = EPS_ACTIVE * 0.04 * 0.5;
        // rows: inside the band pushed out (held), inside pushed in (free; its projected
        // gradient step to the far bound makes the natural gap 0.08 − near), 5e-4 below the
        // bound pushed out (free: beyond the cap 4e-6), at the lower bound pushed out (held),
        // an interior one, and inside the cap pushed out by less than its distance (free)
        let y = [
            0.04 - near,
            0.04 - near,
            0.04 - 5e-4,
            -0.04,
            0.0,
            0.04 - near,
        ];
        let g = [-1.0, 1.0, -1.0, 1.0, 0.5, -0.5 * near];
        let (mut free_s, mut free_y) = ([false], [false; 6]);
        let gap = p.free_sets(&[-0.5], &y, &g, &mut free_s, &mut free_y);
        assert!((gap - (0.08 - near)).abs() < 1e-15, "{gap}");
        assert_eq!(free_s, [true]);
        assert_eq!(free_y, [false, true, true, false, true, true]);
    }
}
