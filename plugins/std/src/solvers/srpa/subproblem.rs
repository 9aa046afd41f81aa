//! The SRPA subproblem (docs/math.md §5), solved exactly:
//!
//! ```text
//! minimize over s:  qᵀs + (ρ/2)‖s‖² + Σᵢ βᵢ |rᵢ + (J s)ᵢ|   subject to  lo ≤ s ≤ hi
//! ```
//!
//! Method: a projected semismooth Newton method on the dual. With y the multipliers of the ℓ1
//! terms (|yᵢ| ≤ βᵢ), the inner minimization over the box is separable, so
//! s(y) = clip(−(q + Jᵀy)/ρ, lo, hi) and the dual φ(y) = −yᵀr − min_s[(q + Jᵀy)ᵀs + (ρ/2)‖s‖²]
//! is convex, piecewise quadratic, with gradient −(r + J s(y)). Each Newton step solves
//! (J_F D J_Fᵀ/ρ + δ) d_F = −∇φ_F on the free multipliers F (D: the free entries of s) through
//! the quasi-definite system [[ρI, Jᵀ], [J, −δI]] whose pattern never changes (inactive rows and
//! columns get explicit zeros), so one symbolic analysis serves every step and every SRPA
//! iteration. A projected Armijo search on φ makes it globally convergent; it stops on the
//! duality gap and the natural residual of the ℓ1 optimality condition, both relative.
//!
//! Large problems with parameters (the first `n_theta` columns of J, shared by every row) do
//! not factor the KKT matrix for every Newton system: they solve it by conjugate gradients
//! preconditioned by the parameter-Schur splitting of [`super::schur`] (an exact sparse B per
//! system, a dense n_θ × n_θ C kept across systems and subproblems, reformed when the conjugate
//! gradients stall), and fall back to the direct factorization only if that fails.
//!
//! Where J is not stored (or `Method::MatrixFree` forces it), the matrix-free Newton–CG of
//! [`super::newton_cg`] solves the subproblem with J only through products.

// Index loops over several parallel arrays read best as index loops here.
#![allow(clippy::needless_range_loop)]

use super::instance::StopRule;
pub use super::instance::{SubOptions, SubReport, SubSolution, Subproblem};
use super::ldl::{Ldl, LdlError};
use super::newton_cg::MfSolver;
use super::operator::{JacOp, StoredJac};
use super::schur::{At, Kept, Saved, Schur};
pub use super::sparse::SparseRows;
use super::sparse::{
    assign_halves, copy_halves, dot, each_half, pair, reduce_halves, HALVES_MIN_ELEMENTS,
};

/// How the Newton systems are solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Always a factorization of the KKT matrix.
    Direct,
    /// Conjugate gradients with the parameter-Schur preconditioner (falling back to `Direct`).
    Schur,
    /// `Schur` with B always through its augmented matrix (what `Schur` and `Auto` do when B
    /// by rows would hold more than [`super::schur::ROWS_MAX_PAIRS`] pairs): for tests and
    /// measurements.
    SchurAugmented,
    /// `Schur` when the KKT factor would hold at least [`SCHUR_MIN_FACTOR`] values and the
    /// dense n_θ × n_θ complement at most [`SCHUR_MAX_DENSE`]; `Direct` otherwise. (A host
    /// that does not store J gets the matrix-free path whatever the method:
    /// [`super::iteration`].)
    Auto,
    /// Newton–CG with J only through products ([`super::newton_cg`]; here over the stored J):
    /// what a host that does not store J gets, forced for tests and measurements.
    MatrixFree,
}

/// The Levenberg–Marquardt term is δ = max(δ₀, scale · gap / max β), with this scale on the
/// Schur path. Measured on sp500: 0.1 takes about 15% less time than 1 (fewer conjugate
/// gradients at the start of each subproblem) and about the same as 0.01 and 0.001. On the
/// TIMIT shape's late subproblems (nearly every multiplier free, a few dozen columns at their
/// bounds) a larger δ damps the steps that find those few active constraints: from k = 70 to
/// 80, 272 Newton systems with 0.1, 153 with 0.01, 137 with 0.001 (the same Θ to 13 digits).
/// With face steps ([`SubOptions::face_rounds`]), 0.001 rather than 0.01: 72 rather than 82
/// Newton steps from k = 70 to 80, 12% less CPU; the same from θ⁰ to k = 60 and on sp500.
const LM_SCALE_SCHUR: f64 = 0.001;
/// On the augmented Schur path the scale's multiplier adapts to the line search, as a trust
/// region's radius does: each subproblem starts at 1; a step the search shortened below 1/8
/// multiplies it by this (up to [`LM_BOOST_MAX`]), a step taken whole or halved once divides
/// it by this (down to 1). On the TIMIT shape's late subproblems a new linearization moves
/// thousands of multipliers to the other side of their box; the Newton directions of the
/// undamped system then took 6,000–11,000 free multipliers out of their box, and the search
/// kept 2⁻¹⁴ of them. For k = 432..450 (resumed from k = 431): 199 Newton steps (170.7 s of
/// user CPU) before, 130 (82.6 s) with the adaptation. Earlier iterations barely change (θ⁰ to
/// k = 40: 157 against 156; k = 71..80, 180..184 and 397: the same); a step of 4 gave the
/// counts of 10 there.
const LM_BOOST: f64 = 10.0;
/// The largest multiplier of the adapted scale.
const LM_BOOST_MAX: f64 = 1e6;

/// The multiplier of the Levenberg–Marquardt scale after a step the search took at α
/// ([`LM_BOOST`]; 0 for the projected gradient fallback).
fn adapted_boost(boost: f64, alpha: f64) -> f64 {
    if alpha >= 0.5 {
        (boost / LM_BOOST).max(1.0)
    } else if alpha < 0.125 {
        (boost * LM_BOOST).min(LM_BOOST_MAX)
    } else {
        boost
    }
}

/// The scale on the direct path (small problems), where a Newton system costs one small
/// factorization whatever δ is; 1 keeps the trajectories validated there (syn) unchanged.
const LM_SCALE_DIRECT: f64 = 1.0;

/// Where B is factored at every Newton system and the conjugate gradients run on C alone
/// ([`Schur::exact_b`]), a system that needed more iterations than this makes the next one
/// form C first. An iteration there costs about a third of one on the whole system, so C is
/// kept longer than `SubOptions::cg_reform_after` keeps it.
const C_REFORM_AFTER: usize = 30;

/// Where B is factored at every Newton system: how the kept C̃ fared at the subproblems'
/// first systems. A subproblem's first system has a new J and δ back near its largest
/// (about 2e-3 on the TIMIT shape, from about 1e-9 at the end of the last one); in the
/// middle of the TIMIT shape's run (k ≈ 50..200) the kept C̃ failed every one of them, and
/// the 100 conjugate-gradient iterations it ran (2.7 ms each) came before the formation of C
/// that followed anyway. After such a failure the next [`FIRST_FORM_RUN`] subproblems form C
/// at their first system at once; the one after tries the kept C̃ again.
#[derive(Debug, Default, Clone, Copy)]
struct FirstSystems {
    /// The last first system that tried the kept C̃ failed.
    failed: bool,
    /// First systems that formed C at once since.
    formed: u32,
}

/// [`FirstSystems`]: the subproblems that form C at once after a first system failed the
/// kept C̃.
const FIRST_FORM_RUN: u32 = 3;

impl FirstSystems {
    /// Whether this first system forms C at once.
    fn form_at_once(&mut self) -> bool {
        if self.failed && self.formed < FIRST_FORM_RUN {
            self.formed += 1;
            true
        } else {
            self.formed = 0;
            false
        }
    }
}

/// A face step's direction that the projected search would shorten below this fraction is
/// dropped for the Newton direction (searched from a full step again). Measured on the TIMIT
/// shape from k = 179 to 187: 2⁻³ 109 Newton steps, 2⁻⁶ 101, 2⁻⁸ 104; without the rule a
/// random instance cycled through 200 face steps of α near 2⁻¹⁰.
const FACE_ALPHA_MIN: f64 = 1.0 / 64.0;

/// Below this many factor values a direct factorization per Newton system is cheap enough.
pub const SCHUR_MIN_FACTOR: usize = 2_000_000;
/// The largest dense Schur complement kept (n_θ² values: 16 million is 128 MB).
pub const SCHUR_MAX_DENSE: usize = 16_000_000;

/// A solver bound to one pattern of J: symbolic analysis once, warm starts across solves.
pub struct SubSolver {
    n: usize,
    m: usize,
    /// The factorization of the KKT matrix, with the slots of its entries: first n diagonals
    /// of the s block, then nnz(J) entries (in J's order), then m diagonals of the y block.
    /// None where `Method::Auto` chose the Schur path from J's size alone: then the KKT
    /// matrix itself holds more than [`SCHUR_MIN_FACTOR`] values and its factor, with the
    /// θ columns' fill, would hold about m × n_θ (the TIMIT shape: 543 M values, 4 GB), so it
    /// is never analysed and a Newton system the conjugate gradients do not solve is an error.
    direct: Option<(Ldl, Vec<usize>)>,
    /// The parameter-Schur preconditioner, for large problems with parameters.
    schur: Option<Schur>,
    /// The matrix-free path (`Method::MatrixFree`, or a host without a stored J): then neither
    /// of the above, and the warm start is its own.
    mf: Option<MfSolver>,
    y: Vec<f64>,
    ws: Work,
}

#[derive(Default)]
struct Work {
    /// Whether the next Newton system is its subproblem's first, and how the kept C̃ fared
    /// at the first systems ([`FirstSystems`]).
    first_system: bool,
    firsts: FirstSystems,
    v: Vec<f64>,
    /// The second half's share of Jᵀy ([`SparseRows::mul_t_halves`]).
    v_half: Vec<f64>,
    s: Vec<f64>,
    w: Vec<f64>,
    g: Vec<f64>,
    /// ∇φ at the point a line search starts from, and at the last point it tried.
    g0: Vec<f64>,
    g_dir: Vec<f64>,
    rhs: Vec<f64>,
    y_try: Vec<f64>,
    free_s: Vec<bool>,
    free_y: Vec<bool>,
    /// The right-hand side b of the Newton system M d_F = b on the free multipliers.
    b: Vec<f64>,
    /// The bound a multiplier that a face step fixed goes to (0: not fixed by one), and the
    /// rows fixed so.
    forced: Vec<f64>,
    forced_rows: Vec<usize>,
    /// The Newton direction (`rhs[n..]`), free multipliers and ∇φ(y) kept while face steps
    /// are tried.
    d_saved: Vec<f64>,
    free_saved: Vec<bool>,
    g_saved: Vec<f64>,
    // conjugate gradients
    cg_r: Vec<f64>,
    cg_z: Vec<f64>,
    cg_p: Vec<f64>,
    cg_ap: Vec<f64>,
    cg_t: Vec<f64>,
}

impl Work {
    /// The point `y_try` at α along the direction in `rhs[n..]`: free multipliers follow it,
    /// those a face step fixed move toward their bound, the others (near a bound that the
    /// gradient `g` pushes against) toward that bound; clipped to the box.
    fn step_point(&mut self, p: &Subproblem<'_>, y: &[f64], alpha: f64, g: &[f64]) {
        let d = &self.rhs[self.rhs.len() - y.len()..];
        let (free_y, forced) = (&self.free_y, &self.forced);
        each_half(&mut self.y_try, |first, y_try| {
            for (k, out) in y_try.iter_mut().enumerate() {
                let i = first + k;
                let t = if free_y[i] {
                    y[i] + alpha * d[i]
                } else {
                    y[i] + alpha * (held_bound(forced[i], g[i], p.beta[i]) - y[i])
                };
                *out = t.clamp(-p.beta[i], p.beta[i]);
            }
        });
    }

    /// Armijo's test of the search from y (at `cur`) to `y_try` (at `trial`, whose ∇φ is in
    /// `g`), with the proximal term of the step's model: one proximal-point step on φ.
    fn armijo(
        &self,
        y: &[f64],
        y_try: &[f64],
        trial: &DualPoint,
        cur: &DualPoint,
        reg: f64,
    ) -> bool {
        let (decrease, prox) = step_terms(&self.g, y, y_try);
        trial.phi + 0.5 * reg * prox <= cur.phi + 1e-4 * decrease
    }

    /// The factor by which the search shortens a failed trial y_try from y (∇φ(y) = `g0`):
    /// [`backtrack_factor`] of the change along the step predicted by the gradient and of the
    /// trial's value (with the Levenberg–Marquardt term, as [`Work::armijo`] takes it).
    fn backtrack(
        &self,
        g0: &[f64],
        y: &[f64],
        y_try: &[f64],
        trial: &DualPoint,
        cur: &DualPoint,
        reg: f64,
    ) -> f64 {
        let (slope, prox) = step_terms(g0, y, y_try);
        backtrack_factor(slope, trial.phi + 0.5 * reg * prox - cur.phi)
    }

    /// No multiplier fixed by a face step.
    fn clear_face(&mut self) {
        for &i in &self.forced_rows {
            self.forced[i] = 0.0;
        }
        self.forced_rows.clear();
    }
}

/// Whether a free multiplier the direction takes to `t` leaves its box [−β, β] (a face step
/// fixes it at the bound it crosses).
fn leaves_box(free: bool, t: f64, beta: f64) -> bool {
    free && t.abs() > beta
}

/// gᵀ(y_try − y) and ‖y_try − y‖², summed in order ([`reduce_halves`]: by halves from
/// [`super::sparse::HALVES_MIN_ELEMENTS`] rows).
fn step_terms(g: &[f64], y: &[f64], y_try: &[f64]) -> (f64, f64) {
    let terms = |range: std::ops::Range<usize>| {
        let step = y_try[range.clone()].iter().zip(&y[range.clone()]);
        let along: f64 = g[range]
            .iter()
            .zip(step.clone())
            .map(|(g, (t, y))| g * (t - y))
            .sum();
        let prox: f64 = step.map(|(t, y)| (t - y).powi(2)).sum();
        (along, prox)
    };
    reduce_halves(y.len(), terms, |(a0, p0), (a1, p1)| (a0 + a1, p0 + p1))
}

/// The bound a multiplier that is not free goes to: the one a face step fixed it at
/// (`forced` ≠ 0), else the one the gradient pushes it against.
fn held_bound(forced: f64, g: f64, beta: f64) -> f64 {
    if forced != 0.0 {
        forced
    } else {
        -g.signum() * beta
    }
}

/// The factor of the next trial of a backtracking search after a failed one, from the change
/// the gradient predicts along the trial's step (`slope`, negative for a descent step) and the
/// change φ took there (`rise`). The quadratic through both has its minimizer at the fraction
/// q = −slope / (2 (rise − slope)) of the step. Where q is below [`BACKTRACK_SHORT`] (φ rose
/// far above its first-order change: on the TIMIT shape, directions that take thousands of
/// multipliers across their box raise φ by 10³ where it predicts −1) the next trial is that
/// factor shorter; elsewhere it is half as long, as the search always took it. From k = 229
/// to 260 of the TIMIT shape's run (resumed from a checkpoint) the Newton steps fell from
/// 302 to 276 and the wall time by 11%, from k = 431 to 450 by 10%, the same Θ to 11 digits.
/// (Jumping to q itself, down to a hundredth, took k = 432 from 11 to 21 Newton steps.)
fn backtrack_factor(slope: f64, rise: f64) -> f64 {
    let curv = rise - slope;
    if slope < 0.0 && curv > 0.0 && -slope < 2.0 * BACKTRACK_SHORT * curv {
        BACKTRACK_SHORT
    } else {
        0.5
    }
}

/// See [`backtrack_factor`].
const BACKTRACK_SHORT: f64 = 0.1;

/// The subproblem's data on the columns for [`SubSolver::dual`]'s pass over them.
struct DualCols<'a> {
    q: &'a [f64],
    lower: &'a [f64],
    upper: &'a [f64],
    rho: f64,
}

impl DualCols<'_> {
    /// On the columns from `first` (as many as `v` has): v += q (v = Jᵀy before),
    /// s = s(y) = P(−v/ρ), and the sums Σ (v s + ρ s²/2) and Σ (q s + ρ s²/2).
    fn pass(&self, v: &mut [f64], s: &mut [f64], first: usize) -> (f64, f64) {
        let (mut inner, mut smooth) = (0.0, 0.0);
        let rho = self.rho;
        for (k, (v, s)) in v.iter_mut().zip(s.iter_mut()).enumerate() {
            let j = first + k;
            *v += self.q[j];
            *s = (-*v / rho).clamp(self.lower[j], self.upper[j]);
            inner += *v * *s + 0.5 * rho * *s * *s;
            smooth += self.q[j] * *s + 0.5 * rho * *s * *s;
        }
        (inner, smooth)
    }
}

/// The subproblem's data on the rows for [`SubSolver::dual`]'s pass over them.
struct DualRows<'a> {
    y: &'a [f64],
    r: &'a [f64],
    beta: &'a [f64],
}

/// The sums of [`DualRows::pass`].
struct RowSums {
    yr: f64,
    l1: f64,
    gap: f64,
    res: f64,
    size: f64,
}

impl RowSums {
    fn add(&self, o: &RowSums) -> RowSums {
        RowSums {
            yr: self.yr + o.yr,
            l1: self.l1 + o.l1,
            gap: self.gap + o.gap,
            res: self.res.max(o.res),
            size: self.size.max(o.size),
        }
    }
}

impl DualRows<'_> {
    /// On the rows from `first`: w += r (w = J s before), g = −w, and Σ yᵢrᵢ, Σ βᵢ|wᵢ|, the
    /// gap Σ (βᵢ|wᵢ| − yᵢwᵢ), the largest natural residual and the largest |rᵢ| (at least 1).
    fn pass(&self, w: &mut [f64], g: &mut [f64], first: usize) -> RowSums {
        let mut out = RowSums {
            yr: 0.0,
            l1: 0.0,
            gap: 0.0,
            res: 0.0,
            size: 1.0,
        };
        for (k, (w, g)) in w.iter_mut().zip(g.iter_mut()).enumerate() {
            let i = first + k;
            let (y, r, beta) = (self.y[i], self.r[i], self.beta[i]);
            *w += r;
            *g = -*w;
            out.yr += y * r;
            let l1_i = beta * w.abs();
            out.l1 += l1_i;
            out.gap += l1_i - y * *w;
            let nat = y - (y + *w).clamp(-beta, beta);
            out.res = out.res.max(nat.abs());
            out.size = out.size.max(r.abs());
        }
        out
    }
}

/// Evaluation of the dual at one y.
struct DualPoint {
    phi: f64,
    primal: f64,
    residual: f64,
    /// The duality gap primal + φ summed as Σᵢ (βᵢ|wᵢ| − yᵢwᵢ), a sum of terms ≥ 0 (|yᵢ| ≤
    /// βᵢ): the same number without the cancellation of the two large sums.
    gap: f64,
}

impl SubSolver {
    /// Analyses the pattern of `jac` (m × n) for direct solves only.
    pub fn new(jac: &SparseRows) -> Result<SubSolver, LdlError> {
        SubSolver::with_parameters(jac, 0, Method::Direct)
    }

    /// Analyses the pattern of `jac` (m × n), whose first `n_theta` columns are the parameters.
    pub fn with_parameters(
        jac: &SparseRows,
        n_theta: usize,
        method: Method,
    ) -> Result<SubSolver, LdlError> {
        let n = jac.ncols;
        let m = jac.nrows();
        let kkt_entries = n + jac.col_idx.len() + m;
        let small_dense = n_theta * n_theta <= SCHUR_MAX_DENSE && n_theta > 0 && n_theta < n;
        // the factor holds at least the matrix: past the threshold, Auto needs no analysis
        let skip_direct = method == Method::Auto && small_dense && kkt_entries >= SCHUR_MIN_FACTOR;
        if method == Method::MatrixFree {
            return Ok(SubSolver::matrix_free(n, m));
        }
        let direct = if skip_direct {
            None
        } else {
            let mut entries = Vec::with_capacity(kkt_entries);
            entries.extend((0..n).map(|j| (j, j)));
            for i in 0..m {
                for p in jac.row_ptr[i]..jac.row_ptr[i + 1] {
                    entries.push((jac.col_idx[p], n + i));
                }
            }
            entries.extend((0..m).map(|i| (n + i, n + i)));
            Some(Ldl::analyse(n + m, &entries)?)
        };
        let schur = match (method, &direct) {
            (Method::Direct | Method::MatrixFree, _) => false,
            (Method::Schur | Method::SchurAugmented, _) | (Method::Auto, None) => true,
            (Method::Auto, Some((ldl, _))) => {
                ldl.factor_nnz() >= SCHUR_MIN_FACTOR && n_theta * n_theta <= SCHUR_MAX_DENSE
            }
        };
        let schur = if schur && n_theta > 0 && n_theta < n {
            // without the KKT analysis B goes through its augmented matrix too, whose size the
            // memory estimate knows from J's alone
            let augmented = method == Method::SchurAugmented || skip_direct;
            Some(Schur::new(jac, n_theta, augmented)?)
        } else {
            None
        };
        let ws = Work {
            first_system: false,
            firsts: FirstSystems::default(),
            v: vec![0.0; n],
            v_half: Vec::new(),
            s: vec![0.0; n],
            w: vec![0.0; m],
            g: vec![0.0; m],
            g0: Vec::new(),
            g_dir: Vec::new(),
            rhs: vec![0.0; n + m],
            y_try: vec![0.0; m],
            free_s: vec![false; n],
            free_y: vec![false; m],
            b: vec![0.0; m],
            forced: vec![0.0; m],
            forced_rows: Vec::new(),
            d_saved: Vec::new(),
            free_saved: Vec::new(),
            g_saved: Vec::new(),
            cg_r: vec![0.0; m],
            cg_z: vec![0.0; m],
            cg_p: vec![0.0; m],
            cg_ap: vec![0.0; m],
            cg_t: vec![0.0; n],
        };
        Ok(SubSolver {
            n,
            m,
            direct,
            schur,
            mf: None,
            y: vec![0.0; m],
            ws,
        })
    }

    /// A solver on the matrix-free path for J of m rows and n columns (the first n − m the
    /// parameters), which it reaches only through products: by [`SubSolver::solve_with`], or
    /// by [`SubSolver::solve`] over a stored J.
    pub fn matrix_free(n: usize, m: usize) -> SubSolver {
        SubSolver {
            n,
            m,
            direct: None,
            schur: None,
            mf: Some(MfSolver::new(n, m)),
            y: Vec::new(),
            ws: Work::default(),
        }
    }

    /// The matrix-free solver, on that path.
    pub fn matrix_free_solver(&mut self) -> Option<&mut MfSolver> {
        self.mf.as_mut()
    }

    /// The matrix-free solver, on that path (to read).
    pub fn matrix_free_ref(&self) -> Option<&MfSolver> {
        self.mf.as_ref()
    }

    /// Solves `p` on the matrix-free path with J given by `op` (`p.jac` is not read).
    pub fn solve_with(
        &mut self,
        p: &Subproblem<'_>,
        op: &mut dyn JacOp,
        opts: SubOptions,
        out: &mut SubSolution,
    ) -> Result<SubReport, String> {
        match self.mf.as_mut() {
            Some(mf) => mf.solve(p, op, opts, out),
            None => Err("a solve through products on a solver that factors J".into()),
        }
    }

    /// Whether Newton systems go through the parameter-Schur preconditioner.
    pub fn uses_schur(&self) -> bool {
        self.schur.is_some()
    }

    /// What a checkpoint keeps of the kept preconditioner, if any ([`Schur::saved`]): the
    /// point it was formed at ([`SubSolver::restore_preconditioner`] forms the same one) or H
    /// itself ([`SubSolver::restore_inverse`]), so a resumed run takes the same steps.
    pub fn preconditioner(&self) -> Option<Saved<'_>> {
        self.schur.as_ref().and_then(Schur::saved)
    }

    /// How the kept C̃ fared at the last subproblems' first systems, where B is factored at
    /// every Newton system (whether the last that tried it failed, and how many formed C at
    /// once since): for a checkpoint.
    pub fn first_systems(&self) -> (bool, u32) {
        (self.ws.firsts.failed, self.ws.firsts.formed)
    }

    /// Takes back [`SubSolver::first_systems`].
    pub fn set_first_systems(&mut self, failed: bool, formed: u32) {
        self.ws.firsts = FirstSystems { failed, formed };
    }

    /// Forms the preconditioner at a point saved from [`SubSolver::preconditioner`].
    pub fn restore_preconditioner(&mut self, kept: Kept) -> Result<(), LdlError> {
        match self.schur.as_mut() {
            Some(s) => s.reform(kept),
            None => Err(LdlError::Pattern(
                "a saved preconditioner for a solver without one".into(),
            )),
        }
    }

    /// Takes back the preconditioner H saved from [`SubSolver::preconditioner`] where B is
    /// factored at every Newton system.
    pub fn restore_inverse(&mut self, h: &[f64]) -> Result<(), LdlError> {
        match self.schur.as_mut() {
            Some(s) => s.restore_inverse(h),
            None => Err(LdlError::Pattern(
                "a saved preconditioner for a solver without one".into(),
            )),
        }
    }

    /// Nonzeros of the LDLᵀ factor of the KKT matrix (0 where it is not analysed).
    pub fn factor_nnz(&self) -> usize {
        self.direct.as_ref().map_or(0, |(ldl, _)| ldl.factor_nnz())
    }

    /// The multipliers the next solve starts from.
    pub fn warm_start(&self) -> &[f64] {
        match &self.mf {
            Some(mf) => mf.warm_start(),
            None => &self.y,
        }
    }

    /// Set the multipliers the next solve starts from.
    pub fn set_warm_start(&mut self, y: &[f64]) {
        match self.mf.as_mut() {
            Some(mf) => mf.set_warm_start(y),
            None => copy_halves(&mut self.y, y),
        }
    }

    /// Forgets the warm start.
    pub fn reset(&mut self) {
        let zeros = vec![0.0; self.m];
        self.set_warm_start(&zeros);
    }

    /// Solves `p` (whose J must have the pattern given to [`SubSolver::new`]), warm-started from
    /// the previous multipliers.
    pub fn solve(
        &mut self,
        p: &Subproblem<'_>,
        opts: SubOptions,
        out: &mut SubSolution,
    ) -> Result<SubReport, LdlError> {
        if let Some(mf) = self.mf.as_mut() {
            let mut op = StoredJac::new(p.jac).map_err(LdlError::Pattern)?;
            return mf.solve(p, &mut op, opts, out).map_err(LdlError::Pattern);
        }
        let (n, m) = (self.n, self.m);
        for (yi, bi) in self.y.iter_mut().zip(p.beta) {
            *yi = yi.clamp(-bi, *bi);
        }
        let scale = row_scale(p.jac) / p.rho;
        let delta = 1e-11 * scale.max(1e-8);
        let mut rep = SubReport::default();
        let mut y = std::mem::take(&mut self.y);
        // J's products in the dual at this subproblem's values
        if let Some(s) = self.schur.as_mut().filter(|s| s.has_jac_blocks()) {
            s.jac_blocks(p.jac);
        }
        let mut cur = self.dual(p, &y);
        self.ws.first_system = true;
        let mut stop = StopRule::default();
        let exact = self.schur.as_ref().is_some_and(Schur::exact_b);
        // the Levenberg–Marquardt scale's multiplier (adapted where B is factored at every
        // Newton system, 1 elsewhere)
        let mut boost = 1.0;
        loop {
            // where B is factored at every Newton system (the TIMIT shape's 821 k rows), the
            // gap primal + φ of the two sums sat at their rounding (1.1e-10) for the stall
            // rule's 5 Newton steps at the end of every subproblem: the gap's own sum instead
            let phi = if exact { cur.gap - cur.primal } else { cur.phi };
            if stop.stops(cur.primal, phi, cur.residual, &opts, &mut rep) {
                break;
            }
            rep.newton_steps += 1;
            let reg = self.newton_direction(p, &y, delta, boost, opts, &mut rep)?;
            if exact && opts.face_rounds > 0 {
                if let Some(trial) = self.face_steps(p, &y, &cur, reg, opts, &mut rep)? {
                    std::mem::swap(&mut y, &mut self.ws.y_try);
                    cur = trial;
                    boost = adapted_boost(boost, 1.0);
                    continue;
                }
            }
            // projected search on φ. The multipliers that are not free go onto the bound the
            // gradient pushes them to: the gradient of the last point tried (`g_dir`: ∇φ(y) at
            // the first), as the solver always did. Where B is factored at every Newton system,
            // a trial that fails is tried again with ∇φ(y)'s bounds (`g0`) where they differ:
            // on the TIMIT shape a multiplier whose gradient changed sign at each trial went
            // to the far bound, and the search took 2⁻¹⁰ of every Newton step, 200 steps for a
            // subproblem (with ∇φ(y)'s bounds alone, a random instance stalled instead)
            let mut g_dir = std::mem::take(&mut self.ws.g_dir);
            assign_halves(&mut g_dir, &self.ws.g);
            let mut g0 = std::mem::take(&mut self.ws.g0);
            if exact {
                assign_halves(&mut g0, &self.ws.g);
            }
            let mut alpha = 1.0;
            'search: loop {
                // the next trial's factor (see [`backtrack_factor`], where B is factored at
                // every Newton system; elsewhere halved)
                let mut cut = 0.5;
                for own in [false, true] {
                    let free_y = &self.ws.free_y;
                    if own
                        && !(exact
                            && reduce_halves(
                                m,
                                |rows| {
                                    rows.into_iter()
                                        .any(|i| !free_y[i] && g0[i].signum() != g_dir[i].signum())
                                },
                                |a, b| a || b,
                            ))
                    {
                        continue;
                    }
                    self.ws
                        .step_point(p, &y, alpha, if own { &g0 } else { &g_dir });
                    let y_try = std::mem::take(&mut self.ws.y_try);
                    let trial = self.dual(p, &y_try);
                    if !own {
                        copy_halves(&mut g_dir, &self.ws.g);
                    }
                    let armijo = self.ws.armijo(&y, &y_try, &trial, &cur, reg);
                    if exact && !own && !armijo {
                        cut = self.ws.backtrack(&g0, &y, &y_try, &trial, &cur, reg);
                    }
                    // (not on a face: there the search cycled on a random instance, accepting
                    // steps that halved the residual but not φ)
                    let better = !own
                        && self.ws.forced_rows.is_empty()
                        && trial.residual < 0.5 * cur.residual;
                    if alpha < 1e-10 {
                        // the Newton model failed: a projected gradient step (always descent)
                        self.ws.y_try = y_try;
                        copy_halves(&mut self.ws.g, &g_dir);
                        cur = self.gradient_step(p, &mut y, cur.phi, 1.0 / scale);
                        if exact {
                            boost = adapted_boost(boost, 0.0);
                        }
                        break 'search;
                    }
                    if armijo || better {
                        self.ws.y_try = std::mem::replace(&mut y, y_try);
                        cur = trial;
                        if exact {
                            boost = adapted_boost(boost, alpha);
                        }
                        break 'search;
                    }
                    self.ws.y_try = y_try;
                }
                alpha *= cut;
                if alpha < FACE_ALPHA_MIN && !self.ws.forced_rows.is_empty() {
                    // the face direction makes too little progress: the Newton direction
                    self.drop_face();
                    assign_halves(&mut g_dir, &self.ws.g);
                    alpha = 1.0;
                }
            }
            self.ws.g0 = g0;
            self.ws.g_dir = g_dir;
        }
        // final primal point and bound multipliers
        self.dual(p, &y);
        rep.objective = cur.primal;
        assign_halves(&mut out.s, &self.ws.s);
        assign_halves(&mut out.y, &y);
        out.bound_multiplier.resize(n, 0.0);
        for j in 0..n {
            let free = self.ws.s[j] > p.lower[j] && self.ws.s[j] < p.upper[j];
            let grad = self.ws.v[j] + p.rho * self.ws.s[j];
            out.bound_multiplier[j] = if free { 0.0 } else { grad.abs() };
        }
        self.y = y;
        Ok(rep)
    }

    /// A projected gradient step on φ with backtracking from `step`; returns the new point's
    /// dual evaluation (and leaves its workspace).
    fn gradient_step(
        &mut self,
        p: &Subproblem<'_>,
        y: &mut Vec<f64>,
        phi: f64,
        step: f64,
    ) -> DualPoint {
        let g = self.ws.g.clone();
        let mut t = step;
        loop {
            let trial: Vec<f64> = (0..self.m)
                .map(|i| (y[i] - t * g[i]).clamp(-p.beta[i], p.beta[i]))
                .collect();
            let dec: f64 = (0..self.m).map(|i| g[i] * (trial[i] - y[i])).sum();
            let point = self.dual(p, &trial);
            if point.phi <= phi + 1e-4 * dec || t < 1e-300 {
                *y = trial;
                return point;
            }
            t *= 0.5;
        }
    }

    /// φ, the primal objective at s(y), and the relative natural residual; leaves v = q + Jᵀy,
    /// s = s(y), w = r + J s and g = ∇φ = −w in the workspace.
    fn dual(&mut self, p: &Subproblem<'_>, y: &[f64]) -> DualPoint {
        let ws = &mut self.ws;
        let blocks = self.schur.as_ref().filter(|s| s.has_jac_blocks());
        dual_mul_t(blocks, p.jac, y, &mut ws.v, &mut ws.v_half);
        // where J's products go by halves on two threads (the TIMIT shape), so do the passes
        // over the columns and the rows here; the halves' sums are added (elsewhere one pass
        // in order, the numbers syn's and sp500's runs were validated with)
        let halves = blocks.is_some();
        let cols = DualCols {
            q: p.q,
            lower: p.lower,
            upper: p.upper,
            rho: p.rho,
        };
        let (inner, smooth) = if halves {
            let mid = self.n / 2;
            let (va, vb) = ws.v.split_at_mut(mid);
            let (sa, sb) = ws.s.split_at_mut(mid);
            let (a, b) = pair(|| cols.pass(va, sa, 0), || cols.pass(vb, sb, mid));
            (a.0 + b.0, a.1 + b.1)
        } else {
            cols.pass(&mut ws.v, &mut ws.s, 0)
        };
        dual_mul(blocks, p.jac, &ws.s, &mut ws.w);
        let rows = DualRows {
            y,
            r: p.r,
            beta: p.beta,
        };
        let sums = if halves {
            let mid = self.m / 2;
            let (wa, wb) = ws.w.split_at_mut(mid);
            let (ga, gb) = ws.g.split_at_mut(mid);
            let (a, b) = pair(|| rows.pass(wa, ga, 0), || rows.pass(wb, gb, mid));
            a.add(&b)
        } else {
            rows.pass(&mut ws.w, &mut ws.g, 0)
        };
        let RowSums {
            yr,
            l1,
            gap,
            res,
            size,
        } = sums;
        DualPoint {
            phi: -yr - inner,
            primal: smooth + l1,
            residual: res / size,
            gap,
        }
    }

    /// The Newton direction on the free multipliers, left in `rhs[n..]` (uses v, g from the
    /// last [`SubSolver::dual`] call at y): by preconditioned conjugate gradients where the
    /// Schur preconditioner is in use and converges, else by a factorization of the KKT matrix.
    /// `boost` multiplies the Levenberg–Marquardt scale ([`adapted_boost`]).
    fn newton_direction(
        &mut self,
        p: &Subproblem<'_>,
        y: &[f64],
        delta: f64,
        boost: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> Result<f64, LdlError> {
        let m = self.m;
        let ws = &mut self.ws;
        ws.clear_face();
        let gap = p.free_sets(&ws.v, y, &ws.g, &mut ws.free_s, &mut ws.free_y);
        // Levenberg–Marquardt-style regularization: bounds the step by about the box size far
        // from the solution and vanishes at it (superlinear convergence)
        let beta_max = reduce_halves(
            p.beta.len(),
            |rows| p.beta[rows].iter().fold(0.0f64, |a, b| a.max(*b)),
            f64::max,
        )
        .max(1e-300);
        let lm = if self.schur.is_some() {
            LM_SCALE_SCHUR
        } else {
            LM_SCALE_DIRECT
        };
        let delta = delta.max(boost * lm * gap / beta_max);
        if self.schur.as_ref().is_some_and(Schur::exact_b) {
            self.face_rhs(p, y);
        } else {
            for i in 0..m {
                ws.b[i] = if ws.free_y[i] { -ws.g[i] } else { 0.0 };
            }
        }
        self.solve_newton(p, delta, opts, rep)?;
        Ok(delta)
    }

    /// The right-hand side of the Newton system on the free multipliers F when the others move
    /// to their bounds as the search moves them (a face step's fixed rows to the bound they
    /// crossed, the held ones to the bound ∇φ(y) pushes them to), by Δ_A:
    /// b_F = −g_F − M_FA Δ_A, M_FA Δ_A = J_F D J_Aᵀ Δ_A / ρ, left in `ws.b` (zero outside F).
    ///
    /// Without the coupling the free rows' step assumed the held ones stayed where they were.
    /// Near a solution the Newton step's decrease of φ is tiny (1e-9 on the TIMIT shape's late
    /// subproblems) and the held rows' moves of 1e-6..1e-5 cost more than that through their
    /// curvature: every full step increased φ, the search took 2⁻¹⁶..2⁻¹ of it, and a
    /// subproblem took 46 Newton steps where the coupled direction (with the band of
    /// [`Subproblem::free_sets`]) takes 7.
    fn face_rhs(&mut self, p: &Subproblem<'_>, y: &[f64]) {
        let (schur, ws) = (self.schur.as_ref(), &mut self.ws);
        let (free_y, forced, g) = (&ws.free_y, &ws.forced, &ws.g);
        each_half(&mut ws.cg_z, |first, z| {
            for (k, z) in z.iter_mut().enumerate() {
                let i = first + k;
                *z = if free_y[i] {
                    0.0
                } else {
                    held_bound(forced[i], g[i], p.beta[i]) - y[i]
                };
            }
        });
        let z = &ws.cg_z;
        let moved = reduce_halves(
            z.len(),
            |rows| z[rows].iter().any(|v| *v != 0.0),
            |a, b| a || b,
        );
        if moved {
            // J's products as the dual takes them (through the blocks, on two threads)
            let blocks = schur.filter(|s| s.has_jac_blocks());
            dual_mul_t(blocks, p.jac, &ws.cg_z, &mut ws.cg_t, &mut ws.v_half);
            mask_columns(&mut ws.cg_t, &ws.free_s);
            dual_mul(blocks, p.jac, &ws.cg_t, &mut ws.cg_ap);
        }
        let (free_y, g, ap) = (&ws.free_y, &ws.g, &ws.cg_ap);
        each_half(&mut ws.b, |first, b| {
            for (k, b) in b.iter_mut().enumerate() {
                let i = first + k;
                *b = match (free_y[i], moved) {
                    (false, _) => 0.0,
                    (true, false) => -g[i],
                    (true, true) => -g[i] - ap[i] / p.rho,
                };
            }
        });
    }

    /// Face steps: while the Newton direction in `rhs[n..]` takes free multipliers out of their
    /// box, those are fixed at the bound they cross and the direction is solved again on that
    /// face ([`SubOptions::face_rounds`] times at most); the first whose full step passes
    /// Armijo's test is taken (the new point left in `ws.y_try`, its evaluation returned). If
    /// none does, the last face's direction is left for the projected search, with the Newton
    /// direction, its free sets and ∇φ(y) kept for [`SubSolver::drop_face`].
    fn face_steps(
        &mut self,
        p: &Subproblem<'_>,
        y: &[f64],
        cur: &DualPoint,
        reg: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> Result<Option<DualPoint>, LdlError> {
        let (n, ws) = (self.n, &mut self.ws);
        let (free_y, d) = (&ws.free_y, &ws.rhs[n..]);
        let exits = reduce_halves(
            self.m,
            |rows| {
                rows.into_iter()
                    .any(|i| leaves_box(free_y[i], y[i] + d[i], p.beta[i]))
            },
            |a, b| a || b,
        );
        if !exits {
            return Ok(None);
        }
        assign_halves(&mut ws.d_saved, &ws.rhs[n..]);
        assign_halves(&mut ws.free_saved, &ws.free_y);
        assign_halves(&mut ws.g_saved, &ws.g);
        for _ in 0..opts.face_rounds {
            if !self.fix_exits(p, y) {
                break;
            }
            rep.face_steps += 1;
            self.face_direction(p, y, reg, opts, rep)?;
            if let Some(trial) = self.full_step(p, y, cur, reg) {
                return Ok(Some(trial));
            }
        }
        Ok(None)
    }

    /// Back from a face to the Newton direction, its free sets and ∇φ(y) (kept by
    /// [`SubSolver::face_steps`]).
    fn drop_face(&mut self) {
        let n = self.n;
        let ws = &mut self.ws;
        ws.clear_face();
        copy_halves(&mut ws.rhs[n..], &ws.d_saved);
        assign_halves(&mut ws.free_y, &ws.free_saved);
        copy_halves(&mut ws.g, &ws.g_saved);
    }

    /// The full step of the face direction (free multipliers y + d, the fixed ones at their
    /// bound, the others onto the bound ∇φ(y) pushes them to), if it passes the search's test:
    /// then it is left in `ws.y_try`. Otherwise ∇φ(y) is put back in `ws.g`.
    fn full_step(
        &mut self,
        p: &Subproblem<'_>,
        y: &[f64],
        cur: &DualPoint,
        reg: f64,
    ) -> Option<DualPoint> {
        let g_y = std::mem::take(&mut self.ws.g_saved);
        self.ws.step_point(p, y, 1.0, &g_y);
        self.ws.g_saved = g_y;
        let y_try = std::mem::take(&mut self.ws.y_try);
        let trial = self.dual(p, &y_try);
        let ws = &mut self.ws;
        let armijo = ws.armijo(y, &y_try, &trial, cur, reg);
        ws.y_try = y_try;
        if armijo {
            Some(trial)
        } else {
            copy_halves(&mut ws.g, &ws.g_saved);
            None
        }
    }

    /// Fixes at its bound every free multiplier that the direction in `rhs[n..]` takes out of
    /// the box (a face step: [`SubOptions::face_rounds`]). Returns whether there was one.
    fn fix_exits(&mut self, p: &Subproblem<'_>, y: &[f64]) -> bool {
        let ws = &mut self.ws;
        let d = &ws.rhs[self.n..];
        // by halves of the rows on two threads where the passes over them are (the rows fixed
        // listed in order either way)
        let part = |first: usize, free: &mut [bool], forced: &mut [f64]| {
            let mut fixed = Vec::new();
            for (k, (f, o)) in free.iter_mut().zip(forced.iter_mut()).enumerate() {
                let i = first + k;
                let t = y[i] + d[i];
                if leaves_box(*f, t, p.beta[i]) {
                    *f = false;
                    *o = t.signum() * p.beta[i];
                    fixed.push(i);
                }
            }
            fixed
        };
        let mid = if self.m >= HALVES_MIN_ELEMENTS {
            self.m / 2
        } else {
            self.m
        };
        let (fa, fb) = ws.free_y.split_at_mut(mid);
        let (oa, ob) = ws.forced.split_at_mut(mid);
        let (a, b) = pair(|| part(0, fa, oa), || part(mid, fb, ob));
        ws.forced_rows.extend(a.iter().chain(&b));
        !(a.is_empty() && b.is_empty())
    }

    /// The Newton direction on the face where the multipliers fixed by
    /// [`SubSolver::fix_exits`] sit at their bounds, as the held ones do: those move there (Δ),
    /// the free ones solve M_FF d_F = −g_F − M_FA Δ_A ([`SubSolver::face_rhs`]).
    fn face_direction(
        &mut self,
        p: &Subproblem<'_>,
        y: &[f64],
        delta: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> Result<(), LdlError> {
        self.face_rhs(p, y);
        self.solve_newton(p, delta, opts, rep)
    }

    /// Solves M d_F = b (`ws.b`) on the free multipliers, d left in `rhs[n..]` (zero outside
    /// F): by the Schur path's conjugate gradients where they converge, else by a
    /// factorization of the KKT matrix.
    fn solve_newton(
        &mut self,
        p: &Subproblem<'_>,
        delta: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> Result<(), LdlError> {
        let (n, m) = (self.n, self.m);
        if opts.cg_max > 0 {
            if let Some(mut schur) = self.schur.take() {
                let solved = self.schur_direction(&mut schur, p, delta, opts, rep);
                self.schur = Some(schur);
                if solved {
                    return Ok(());
                }
            }
        }
        let ws = &mut self.ws;
        let Some((ldl, slots)) = self.direct.as_mut() else {
            return Err(LdlError::Analysis(
                "the conjugate gradients did not solve a Newton system with a reformed \
                 preconditioner, and the KKT matrix is too large to factor directly"
                    .into(),
            ));
        };
        let vals = ldl.values_mut();
        for j in 0..n {
            vals[slots[j]] = p.rho;
        }
        let mut k = n;
        for i in 0..m {
            for q in p.jac.row_ptr[i]..p.jac.row_ptr[i + 1] {
                let keep = ws.free_y[i] && ws.free_s[p.jac.col_idx[q]];
                vals[slots[k]] = if keep { p.jac.values[q] } else { 0.0 };
                k += 1;
            }
        }
        for i in 0..m {
            vals[slots[k + i]] = if ws.free_y[i] { -delta } else { -1.0 };
        }
        ldl.factor()?;
        rep.factorizations += 1;
        ws.rhs[..n].iter_mut().for_each(|x| *x = 0.0);
        for i in 0..m {
            ws.rhs[n + i] = -ws.b[i];
        }
        ldl.solve(&mut ws.rhs);
        Ok(())
    }

    /// The Newton direction by conjugate gradients with the Schur preconditioner: with the kept
    /// C first, then with C reformed here if that does not converge. Returns whether it was
    /// found (left in `rhs[n..]`).
    fn schur_direction(
        &mut self,
        schur: &mut Schur,
        p: &Subproblem<'_>,
        delta: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> bool {
        if schur.exact_b() {
            return self.direction_through_c(schur, p, delta, opts, rep);
        }
        self.kept_c_then_fresh(schur, p, delta, opts.cg_reform_after, rep, |s, schur| {
            s.conjugate_gradients(schur, p, delta, opts)
        })
    }

    /// Runs `solve` with the kept C (formed here first if there is none) and, if it does not
    /// converge, once more with C re-formed at this Newton system; retires C after a solve
    /// that needed more than `reform_after` iterations. Returns whether a solve converged.
    fn kept_c_then_fresh(
        &mut self,
        schur: &mut Schur,
        p: &Subproblem<'_>,
        delta: f64,
        reform_after: usize,
        rep: &mut SubReport,
        mut solve: impl FnMut(&mut Self, &mut Schur) -> (bool, usize),
    ) -> bool {
        for attempt in 0..2 {
            if attempt == 1 || !schur.has_c() {
                // where B is factored at every system it was just factored here
                let formed = if schur.exact_b() {
                    schur.reform_factored(self.at(p, delta))
                } else {
                    schur.reform(self.at(p, delta).to_kept())
                };
                if formed.is_err() {
                    return false;
                }
                rep.schur_forms += 1;
            }
            let (converged, iterations) = solve(self, schur);
            rep.cg_iterations += iterations;
            if converged {
                if iterations > reform_after {
                    schur.retire();
                }
                return true;
            }
        }
        false
    }

    /// The point of this Newton system (J's values, ρ, δ and the free sets) as the Schur
    /// preconditioner reads it.
    fn at<'s>(&'s self, p: &'s Subproblem<'_>, delta: f64) -> At<'s> {
        At {
            jac: &p.jac.values,
            rho: p.rho,
            delta,
            free_s: &self.ws.free_s,
            free_y: &self.ws.free_y,
        }
    }

    /// The Newton direction where B is factored at every Newton system
    /// ([`Schur::exact_b`]): conjugate gradients on C, with the kept C̃ first, then with C
    /// formed here if they do not converge within `cg_max` (then C̃ = C, and they converge at
    /// once). Returns whether it was found (left in `rhs[n..]`).
    fn direction_through_c(
        &mut self,
        schur: &mut Schur,
        p: &Subproblem<'_>,
        delta: f64,
        opts: SubOptions,
        rep: &mut SubReport,
    ) -> bool {
        let n = self.n;
        let b = &self.ws.b;
        let norm2 = reduce_halves(
            b.len(),
            |rows| dot(&b[rows.clone()], &b[rows]),
            |x, y| x + y,
        );
        let target = opts.cg_tol * norm2.sqrt();
        if schur.factor_at(self.at(p, delta)).is_err() {
            return false;
        }
        let first = std::mem::take(&mut self.ws.first_system);
        let tried = first && schur.has_c() && !self.ws.firsts.form_at_once();
        if first && !tried {
            schur.retire();
        }
        let forms = rep.schur_forms;
        let solved = self.kept_c_then_fresh(schur, p, delta, C_REFORM_AFTER, rep, |s, schur| {
            let ws = &mut s.ws;
            schur.solve_through_c(&ws.free_y, &ws.b, &mut ws.rhs[n..], target, opts.cg_max)
        });
        if tried {
            // the kept C̃ failed when C was formed after it
            self.ws.firsts.failed = rep.schur_forms > forms;
        }
        solved
    }

    /// Solves (δI + J_F D J_Fᵀ/ρ) d = −g_F on the free multipliers F by conjugate gradients
    /// preconditioned by `schur`; leaves d in `rhs[n..]` (zero outside F). Returns whether the
    /// relative residual reached `cg_tol` within `cg_max` iterations, and the iterations.
    fn conjugate_gradients(
        &mut self,
        schur: &mut Schur,
        p: &Subproblem<'_>,
        delta: f64,
        opts: SubOptions,
    ) -> (bool, usize) {
        let (n, m) = (self.n, self.m);
        let ws = &mut self.ws;
        let free = &ws.free_y;
        ws.cg_r.copy_from_slice(&ws.b);
        ws.rhs[n..].iter_mut().for_each(|x| *x = 0.0);
        let norm_b = dot(&ws.cg_r, &ws.cg_r).sqrt();
        if norm_b == 0.0 {
            return (true, 0);
        }
        let target = opts.cg_tol * norm_b;
        schur.apply(free, &ws.cg_r, &mut ws.cg_z);
        ws.cg_p.copy_from_slice(&ws.cg_z);
        let mut rz = dot(&ws.cg_r, &ws.cg_z);
        for it in 1..=opts.cg_max {
            // ap = (δI + J_F D J_Fᵀ/ρ) p
            j_d_jt(p.jac, &ws.free_s, &ws.cg_p, &mut ws.cg_t, &mut ws.cg_ap);
            for i in 0..m {
                ws.cg_ap[i] = if free[i] {
                    delta * ws.cg_p[i] + ws.cg_ap[i] / p.rho
                } else {
                    0.0
                };
            }
            let pap = dot(&ws.cg_p, &ws.cg_ap);
            if !(pap > 0.0 && rz > 0.0) {
                // the kept C no longer gives a positive definite preconditioner
                return (false, it);
            }
            let alpha = rz / pap;
            for i in 0..m {
                ws.rhs[n + i] += alpha * ws.cg_p[i];
                ws.cg_r[i] -= alpha * ws.cg_ap[i];
            }
            if dot(&ws.cg_r, &ws.cg_r).sqrt() <= target {
                return (true, it);
            }
            schur.apply(free, &ws.cg_r, &mut ws.cg_z);
            let rz_next = dot(&ws.cg_r, &ws.cg_z);
            let beta = rz_next / rz;
            rz = rz_next;
            for i in 0..m {
                ws.cg_p[i] = ws.cg_z[i] + beta * ws.cg_p[i];
            }
        }
        (false, opts.cg_max)
    }
}

/// out = J D Jᵀ x, D zero at the columns that are not free (t: scratch of J's columns).
fn j_d_jt(jac: &SparseRows, free_s: &[bool], x: &[f64], t: &mut [f64], out: &mut [f64]) {
    jac.mul_t(x, t);
    mask_columns(t, free_s);
    jac.mul(t, out);
}

/// Zeroes the entries of the columns that are not free (D's zeros).
fn mask_columns(t: &mut [f64], free_s: &[bool]) {
    for (t, &free) in t.iter_mut().zip(free_s) {
        if !free {
            *t = 0.0;
        }
    }
}

/// out = Jᵀy as the dual takes it: through the augmented Schur path's blocks where it has
/// them, else by halves of J's rows (`second`: scratch for the second half's share).
fn dual_mul_t(
    blocks: Option<&Schur>,
    jac: &SparseRows,
    y: &[f64],
    out: &mut [f64],
    second: &mut Vec<f64>,
) {
    match blocks {
        Some(s) => s.jac_mul_t_halves(jac, y, out, second),
        None => jac.mul_t_halves(y, out, second),
    }
}

/// out = J x as the dual takes it ([`dual_mul_t`]).
fn dual_mul(blocks: Option<&Schur>, jac: &SparseRows, x: &[f64], out: &mut [f64]) {
    match blocks {
        Some(s) => s.jac_mul_halves(jac, x, out),
        None => jac.mul_halves(x, out),
    }
}

/// The largest squared row norm of J.
fn row_scale(jac: &SparseRows) -> f64 {
    (0..jac.nrows())
        .map(|i| {
            jac.values[jac.row_ptr[i]..jac.row_ptr[i + 1]]
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solvers::srpa::instance::EPS_ACTIVE;
    use crate::solvers::srpa::kronecker::{recurrence, values};

    /// After a first system failed the kept C̃, the next [`FIRST_FORM_RUN`] form C at once
    /// and the one after tries the kept one again.
    #[test]
    fn after_a_first_system_failed_the_kept_c_the_next_ones_form_c_at_once() {
        let mut f = FirstSystems::default();
        // nothing failed yet: the kept C̃ is tried
        assert!(!f.form_at_once());
        f.failed = true;
        let runs: Vec<bool> = (0..FIRST_FORM_RUN + 1).map(|_| f.form_at_once()).collect();
        assert!(runs[..FIRST_FORM_RUN as usize].iter().all(|&r| r));
        assert!(
            !runs[FIRST_FORM_RUN as usize],
            "then the kept one is tried again"
        );
        // it served: tried from then on
        f.failed = false;
        assert!(!f.form_at_once() && !f.form_at_once());
    }

    /// The search shortens a failed trial tenfold where φ along it is a quadratic whose
    /// minimizer lies below a tenth of the step, and halves it otherwise (a minimizer at a
    /// tenth or beyond, no descent predicted, no positive curvature).
    #[test]
    fn a_failed_trial_far_above_its_model_is_shortened_tenfold() {
        // φ(t) − φ(0) = slope t + c t² along the step; the trial is t = 1
        let rise = |slope: f64, c: f64| slope + c;
        assert_eq!(backtrack_factor(-1.0, rise(-1.0, 3000.0)), 0.1);
        assert_eq!(
            backtrack_factor(-1.0, rise(-1.0, 6.0)),
            0.1,
            "minimizer at 1/12"
        );
        assert_eq!(
            backtrack_factor(-1.0, rise(-1.0, 4.0)),
            0.5,
            "minimizer at 1/8"
        );
        assert_eq!(
            backtrack_factor(-1.0, rise(-1.0, 1.0)),
            0.5,
            "minimizer at 1/2"
        );
        assert_eq!(backtrack_factor(1.0, 5.0), 0.5, "no descent predicted");
        assert_eq!(backtrack_factor(-1.0, -2.0), 0.5, "no positive curvature");
    }

    /// The Levenberg–Marquardt scale's multiplier grows after a step the search cut below 1/8
    /// (and after the gradient fallback), shrinks after a full or once-halved step, stays
    /// otherwise, within [1, LM_BOOST_MAX].
    #[test]
    fn the_levenberg_marquardt_multiplier_follows_the_search() {
        assert_eq!(adapted_boost(1.0, 1.0), 1.0);
        assert_eq!(adapted_boost(100.0, 0.5), 10.0);
        assert_eq!(adapted_boost(100.0, 0.25), 100.0);
        assert_eq!(adapted_boost(1.0, 0.0625), 10.0);
        assert_eq!(adapted_boost(10.0, 0.0), 100.0);
        assert_eq!(adapted_boost(LM_BOOST_MAX, 2f64.powi(-14)), LM_BOOST_MAX);
    }

    /// A recurrence's subproblem with columns 4, 13 and 27 of the lifted part at a bound (D
    /// zero there), its data owned.
    struct Recurrence {
        jac: SparseRows,
        q: Vec<f64>,
        r: Vec<f64>,
        beta: Vec<f64>,
        lower: Vec<f64>,
        upper: Vec<f64>,
    }

    impl Recurrence {
        fn new() -> Recurrence {
            let (steps, width, n_theta) = (12, 3, 5);
            let jac = recurrence(steps, width, n_theta);
            let (m, n) = (jac.nrows(), jac.ncols);
            let mut lower = vec![f64::NEG_INFINITY; n];
            for lifted in [4, 13, 27] {
                lower[n_theta + lifted] = 10.0;
            }
            Recurrence {
                q: values(21, n),
                r: values(22, m),
                beta: vec![0.5; m],
                lower,
                upper: vec![f64::INFINITY; n],
                jac,
            }
        }

        /// A solver on the augmented Schur path (B factored at every Newton system), J's blocks
        /// found as [`SubSolver::solve`] finds them, and options with tight conjugate gradients.
        fn solver(&self) -> (SubSolver, SubOptions) {
            let mut solver =
                SubSolver::with_parameters(&self.jac, 5, Method::SchurAugmented).expect("analysis");
            let schur = solver.schur.as_mut().expect("schur");
            assert!(schur.exact_b());
            schur.jac_blocks(&self.jac);
            let opts = SubOptions {
                cg_tol: 1e-13,
                ..SubOptions::default()
            };
            (solver, opts)
        }

        fn problem(&self) -> Subproblem<'_> {
            Subproblem {
                q: &self.q,
                rho: 0.7,
                lower: &self.lower,
                upper: &self.upper,
                jac: &self.jac,
                r: &self.r,
                beta: &self.beta,
            }
        }
    }

    /// With the direction in `rhs[n..]` and the free sets of the solver's last Newton system at
    /// y: every row that is not free moves to its bound (a fixed row to `forced`, a held one to
    /// the bound ∇φ(y) pushes it to) by Δ, and the free rows' d solves M_FF d_F = −g_F −
    /// M_FA Δ_A, M = δI + J_F D J_Fᵀ/ρ, checked entry by entry from J's rows. Returns the rows
    /// that moved.
    fn assert_solves_the_face_system(
        solver: &SubSolver,
        p: &Subproblem<'_>,
        y: &[f64],
        delta: f64,
    ) -> usize {
        let (jac, ws, n, m) = (p.jac, &solver.ws, solver.n, solver.m);
        let mut moved = 0;
        let v: Vec<f64> = (0..m)
            .map(|i| {
                if ws.free_y[i] {
                    return ws.rhs[n + i];
                }
                assert_eq!(ws.rhs[n + i], 0.0);
                let target = if ws.forced[i] != 0.0 {
                    ws.forced[i]
                } else {
                    -ws.g[i].signum() * p.beta[i]
                };
                moved += usize::from(target != y[i]);
                target - y[i]
            })
            .collect();
        let mut t = vec![0.0; n];
        for i in 0..m {
            for q in jac.row_ptr[i]..jac.row_ptr[i + 1] {
                t[jac.col_idx[q]] += jac.values[q] * v[i];
            }
        }
        let (mut err, mut size) = (0.0f64, 0.0f64);
        for i in (0..m).filter(|&i| ws.free_y[i]) {
            let mv: f64 = (jac.row_ptr[i]..jac.row_ptr[i + 1])
                .filter(|&q| ws.free_s[jac.col_idx[q]])
                .map(|q| jac.values[q] * t[jac.col_idx[q]])
                .sum();
            err = err.max((delta * v[i] + mv / p.rho + ws.g[i]).abs());
            size = size.max(ws.g[i].abs());
        }
        assert!(err <= 1e-9 * size, "{err:e} against {size:e}");
        moved
    }

    /// The Newton direction on the augmented Schur path moves the held multipliers to their
    /// bounds and solves the free ones' system with that move: multipliers a little inside
    /// their bound (within the band, the gradient pushing out) are held, and the free rows'
    /// direction accounts for their move (without the coupling term it failed).
    #[test]
    fn the_newton_direction_accounts_for_the_held_multipliers_moves() {
        let instance = Recurrence::new();
        let (p, jac) = (instance.problem(), &instance.jac);
        let m = jac.nrows();
        let (mut solver, opts) = instance.solver();
        // every third row a little inside the bound its gradient pushes it to, so that it is
        // held there (a few rounds: moving them changes the gradients)
        let inside = 0.5 * EPS_ACTIVE * 0.5;
        let mut y: Vec<f64> = values(23, m).iter().map(|v| 0.4 * v).collect();
        for _ in 0..3 {
            solver.dual(&p, &y);
            for i in (0..m).step_by(3) {
                y[i] = -solver.ws.g[i].signum() * (0.5 - inside);
            }
        }
        solver.dual(&p, &y);
        let mut rep = SubReport::default();
        let delta = solver
            .newton_direction(&p, &y, 1e-3, 1.0, opts, &mut rep)
            .expect("newton");
        let held = (0..m).filter(|&i| !solver.ws.free_y[i]).count();
        let moved = assert_solves_the_face_system(&solver, &p, &y, delta);
        assert!(
            moved >= 2 && moved == held,
            "{moved} of {held} held rows moved"
        );
    }

    /// A face step solves the Newton system on its face: with the rows A fixed at their bounds
    /// (moving there by Δ_A), the free rows' d solves M_FF d_F = −g_F − M_FA Δ_A, with some
    /// columns at their bounds (D zero there).
    #[test]
    fn a_face_step_solves_the_newton_system_on_its_face() {
        let instance = Recurrence::new();
        let (p, jac) = (instance.problem(), &instance.jac);
        let m = jac.nrows();
        let (mut solver, opts) = instance.solver();
        let y: Vec<f64> = values(23, m).iter().map(|v| 0.4 * v).collect();
        let mut rep = SubReport::default();
        solver.dual(&p, &y);
        let delta = solver
            .newton_direction(&p, &y, 1e-3, 1.0, opts, &mut rep)
            .expect("newton");
        let fixed = [(2, 0.5), (7, -0.5), (20, 0.5)];
        for &(i, bound) in &fixed {
            solver.ws.free_y[i] = false;
            solver.ws.forced[i] = bound;
            solver.ws.forced_rows.push(i);
        }
        solver
            .face_direction(&p, &y, delta, opts, &mut rep)
            .expect("face");
        assert_eq!(solver.ws.free_s.iter().filter(|f| !**f).count(), 3);
        assert!(assert_solves_the_face_system(&solver, &p, &y, delta) >= fixed.len());
    }
}
