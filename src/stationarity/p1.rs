//! (P1) at the size of the data: the convex-outer tier (`convex_qp`) from the structure of
//! Θ(z) = F(z) + Σ_i β_i |r_i(z)| instead of n probing directional derivatives.
//!
//! When every first-order kink at z is an entry of a penalty term (|r_i| ≤ ztol, i ∈ A) whose
//! argument has no kink below it, Θ′(z; d) = q·d + Σ_{i∈A} β_i |J_i d| with
//! q = ∇F + Σ_{i∉A} β_i sign(r_i) J_iᵀ, where J is the residuals' sparse Jacobian read off the
//! (P1) linearization of SRPA (`forms::linearize`: one reverse pass and one sweep over the
//! lifted graph, exact here since no layer sits on a kink). z is d-stationary iff the
//! min-norm element v = q + J_Aᵀ y* of the subdifferential is 0, where
//!
//! ```text
//! y* = argmin ½‖q + J_Aᵀ y‖²  over  −β_i ≤ y_i ≤ β_i,
//! ```
//!
//! the dual of SRPA's subproblem with ρ = 1, r_A = 0 and no bounds (its step is −v). It is
//! solved as there, by a projected Newton method with an Armijo search, whose Newton systems
//! (J_F J_Fᵀ + δ) d = −∇φ_F on the free multipliers F go to preconditioned conjugate
//! gradients: every residual row i of the lifted problem reads its own layer entry u_i with
//! coefficient 1 and only earlier layer entries besides (r = u − ψ(θ, u_earlier)), so the
//! rows of J restricted to those columns form a unit lower-triangular L, and L_FF L_FFᵀ (two
//! sparse triangular solves) leaves the other columns R (θ) as the only difference, a
//! perturbation of rank ≤ dim θ. Its Woodbury correction, M = L⁻¹R and C = I + MᵀM formed
//! once ([`Schur`]), makes a Newton system one to a few iterations; without it (M too large)
//! L_FF L_FFᵀ alone, and a Jacobi preconditioner when L is not triangular. An iteration costs
//! O(nnz J + k·dim θ); nothing is dense in the number of kinks k.
//!
//! Exactness, as in the dense tier: `stationary` when a feasible y gives ‖v‖ ≤ tol (an upper
//! bound on the distance whatever the solver's accuracy); `not_stationary` only with the
//! witness −v/‖v‖ and its exact ray-Taylor slope below −tol; otherwise the dense tier decides.
//! The model q, J is checked against an exact slope along a seeded direction first.

use super::kinks::{Arg, KinkOrder};
use super::oracle::{Form, Oracle, Problem};
use super::smooth::dot;
use super::{Options, Status, Verdict};
use crate::eval::EvalError;
use crate::forms::linearize::{Linearization, Linearizer, NO_PIECE};
use crate::graph::{ElemUnary, Op};
use crate::registry::Order;

/// Up to this many variables the dense tier ([`super::pieces::convex_outer`]) certifies (P1):
/// its n probes cost little there, and its verdicts, witnesses and slopes stay those reported
/// so far (the README's syn certificate). Above, this tier.
pub(super) const DENSE_MAX: usize = 1000;

/// The tier above [`DENSE_MAX`] variables: `None` when it does not apply (not (P1), a kink that
/// is not a penalty entry, a layer the linearization does not handle) or its answer is not
/// confirmed; then the dense tier decides.
pub(super) fn convex_outer(
    o: &mut Oracle<'_>,
    problem: &Problem<'_>,
    opts: &Options,
) -> Result<Option<Verdict>, EvalError> {
    if o.n <= DENSE_MAX {
        return Ok(None);
    }
    structured(o, problem, opts)
}

/// The tier at any size.
fn structured(
    o: &mut Oracle<'_>,
    problem: &Problem<'_>,
    opts: &Options,
) -> Result<Option<Verdict>, EvalError> {
    if let Some(reason) = problem.lifted.and_then(too_large) {
        let kinks = o.kinks.len();
        return Ok(Some(
            Verdict::new(Status::Inconclusive, "convex_qp", kinks).reason(reason),
        ));
    }
    let Some(model) = Model::at(o, problem, opts) else {
        return Ok(None);
    };
    // The model against the exact slope along a seeded direction.
    let mut rng = crate::rng::Rng::new(0x9e37);
    let probe: Vec<f64> = (0..o.n).map(|_| rng.normal()).collect();
    if !model.agrees(o, &probe)? {
        return Ok(None);
    }
    let kinks = o.kinks.len();
    let active = model.rows.nrows();
    let mut solver = Solver::new(&model);
    let y = solver.solve(&model, opts);
    if super::stopped(opts) {
        return Ok(Some(Verdict::new(Status::Inconclusive, "convex_qp", kinks)));
    }
    let mut v = vec![0.0; model.q.len()];
    model.subgradient(&y, &mut v);
    super::pieces::nearest_point_verdict(o, &v, active, kinks, opts)
}

/// Why this tier cannot hold J for `lifted`, priced before anything is allocated
/// (`forms::linearize::memory`): more entries than a (P1) host stores, or more bytes than the
/// process can still take. The tiers below (n probing derivatives, a dense QP) are hopeless at
/// such a size, so the verdict is then `inconclusive` with this reason, not a crash.
fn too_large(lifted: &crate::forms::Lifted) -> Option<String> {
    use crate::forms::linearize::memory::{estimate, STORED_MAX_ENTRIES};
    let est = estimate(lifted).ok()?;
    // the linearizer's per-node Jacobians, J's pattern and values, and the active rows' copy
    let per_node = est
        .parts
        .iter()
        .find(|(what, _)| what.contains("per-node"))
        .map_or(0, |(_, b)| *b);
    let bytes = per_node.saturating_add(est.jac_nnz.saturating_mul(5 * 8));
    let size = format!(
        "(P1) with {} variables and {} residual rows: its Jacobian has {} entries",
        est.n_z, est.rows, est.jac_nnz
    );
    if est.jac_nnz > STORED_MAX_ENTRIES {
        return Some(format!(
            "{size}, more than the {STORED_MAX_ENTRIES} a certificate holds; not decided at \
             this size"
        ));
    }
    let available = crate::memory::available()?;
    (bytes > available).then(|| {
        format!(
            "{size}, which needs {} to hold, more than the {} available; not decided at this size",
            crate::memory::bytes_shown(bytes),
            crate::memory::bytes_shown(available)
        )
    })
}

/// J_A by rows (CSR).
struct Rows {
    ptr: Vec<usize>,
    idx: Vec<usize>,
    val: Vec<f64>,
}

impl Rows {
    fn nrows(&self) -> usize {
        self.ptr.len() - 1
    }

    fn row(&self, a: usize) -> std::ops::Range<usize> {
        self.ptr[a]..self.ptr[a + 1]
    }

    /// out += J_Aᵀ y.
    fn add_mul_t(&self, y: &[f64], out: &mut [f64]) {
        for (a, &ya) in y.iter().enumerate() {
            if ya != 0.0 {
                for p in self.row(a) {
                    out[self.idx[p]] += self.val[p] * ya;
                }
            }
        }
    }

    /// out = J_A x.
    fn mul(&self, x: &[f64], out: &mut [f64]) {
        for (a, o) in out.iter_mut().enumerate() {
            *o = self.row(a).map(|p| self.val[p] * x[self.idx[p]]).sum();
        }
    }
}

/// Θ′(z; d) = q·d + Σ_{a∈A} β_a |J_a d|.
struct Model {
    q: Vec<f64>,
    rows: Rows,
    beta: Vec<f64>,
    /// The column of each active row's own layer entry (r_i = u_i − ψ_i: n_θ + i).
    own: Vec<usize>,
}

impl Model {
    /// The model at the oracle's point, when every first-order kink is a clean penalty entry
    /// and the lifted graph can be linearized.
    fn at(o: &Oracle<'_>, problem: &Problem<'_>, opts: &Options) -> Option<Model> {
        let lifted = problem.lifted?;
        if problem.form != Form::P1 {
            return None;
        }
        let g = problem.graph;
        let layout = &lifted.layout;
        if g.nodes.len() < lifted.graph.nodes.len() || layout.n_z != o.n {
            return None;
        }
        // Row of each residual node's first entry, and β of each row from its |r| term.
        let mut first_row = vec![usize::MAX; lifted.graph.nodes.len()];
        for b in &layout.blocks {
            if g.node(b.residual).op != lifted.graph.node(b.residual).op {
                return None;
            }
            first_row[b.residual.index()] = b.offset - layout.n_theta;
        }
        let m = layout.n_z - layout.n_theta;
        let weights = super::kinks::linear_weights(g);
        let mut beta = vec![0.0; m];
        let mut penalty = vec![false; g.nodes.len()];
        for (i, node) in g.nodes.iter().enumerate().skip(lifted.graph.nodes.len()) {
            if let Op::Unary(ElemUnary::Abs, r) = node.op {
                let start = *first_row.get(r.index())?;
                if start == usize::MAX {
                    continue;
                }
                let w = weights[i].filter(|w| *w >= 0.0)?;
                beta[start..start + node.len()]
                    .iter_mut()
                    .for_each(|b| *b += w);
                penalty[i] = true;
            }
        }
        let mut active = vec![false; m];
        for k in o.kinks.iter().filter(|k| k.order == KinkOrder::First) {
            match k.arg {
                Arg::One(r, e) if penalty[k.node.index()] && k.clean => {
                    active[first_row[r.index()] + e] = true;
                }
                _ => return None,
            }
        }
        let mut lin = Linearizer::new(lifted, problem.registry).ok()?;
        lin.ztol = opts.ztol;
        let mut pieces = vec![NO_PIECE; lin.sites()];
        let mut out = Linearization::default();
        lin.linearize(&o.x, None, &mut pieces, &mut out).ok()?;
        let pattern = lin.pattern();
        let mut q = out.grad;
        let mut rows = Rows {
            ptr: vec![0],
            idx: Vec::new(),
            val: Vec::new(),
        };
        let mut row_beta = Vec::new();
        let mut own = Vec::new();
        for i in 0..m {
            let range = pattern.row_ptr[i]..pattern.row_ptr[i + 1];
            if active[i] {
                rows.idx.extend_from_slice(&pattern.col_idx[range.clone()]);
                rows.val.extend_from_slice(&out.jac[range]);
                rows.ptr.push(rows.idx.len());
                row_beta.push(beta[i]);
                own.push(layout.n_theta + i);
            } else if beta[i] != 0.0 && out.residual[i] != 0.0 {
                let s = beta[i] * out.residual[i].signum();
                for p in range {
                    q[pattern.col_idx[p]] += s * out.jac[p];
                }
            }
        }
        Some(Model {
            q,
            rows,
            beta: row_beta,
            own,
        })
    }

    /// v = q + J_Aᵀ y.
    fn subgradient(&self, y: &[f64], v: &mut [f64]) {
        v.copy_from_slice(&self.q);
        self.rows.add_mul_t(y, v);
    }

    /// Whether the model's slope along d matches the exact one (the structure was read right).
    fn agrees(&self, o: &mut Oracle<'_>, d: &[f64]) -> Result<bool, EvalError> {
        let mut jd = vec![0.0; self.rows.nrows()];
        self.rows.mul(d, &mut jd);
        let linear: f64 = self.q.iter().zip(d).map(|(a, b)| a * b).sum();
        let kinked: f64 = jd.iter().zip(&self.beta).map(|(j, b)| b * j.abs()).sum();
        let exact = o.eval(d, Order::One)?.d1.unwrap_or(f64::NAN);
        let scale = 1.0 + linear.abs() + kinked;
        Ok((exact - (linear + kinked)).abs() <= 1e-8 * scale)
    }
}

/// L: the rows of J_A on the columns of the active rows' own layer entries, when it is lower
/// triangular with a nonzero diagonal (then L_FF L_FFᵀ preconditions the Newton systems).
struct Lower {
    diag: Vec<f64>,
    ptr: Vec<usize>,
    /// (earlier active row, value) off the diagonal.
    off: Vec<(usize, f64)>,
    /// The other columns of J_A (parameters, inactive rows' layer entries), numbered densely:
    /// R, with J_A J_Aᵀ = L Lᵀ + R Rᵀ.
    rest_ptr: Vec<usize>,
    rest: Vec<(usize, f64)>,
    n_rest: usize,
}

impl Lower {
    fn of(model: &Model) -> Option<Lower> {
        let rows = &model.rows;
        let k = rows.nrows();
        let mut row_of = vec![usize::MAX; model.q.len()];
        for (a, &c) in model.own.iter().enumerate() {
            row_of[c] = a;
        }
        let own = &row_of;
        let cols = &model.own;
        let mut rest_of = vec![usize::MAX; model.q.len()];
        let mut lower = Lower {
            diag: vec![0.0; k],
            ptr: vec![0],
            off: Vec::new(),
            rest_ptr: vec![0],
            rest: Vec::new(),
            n_rest: 0,
        };
        for (a, &col) in cols.iter().enumerate() {
            for p in rows.row(a) {
                let (c, val) = (rows.idx[p], rows.val[p]);
                let b = own[c];
                if c == col {
                    lower.diag[a] = val;
                } else if b != usize::MAX {
                    if b > a {
                        return None;
                    }
                    lower.off.push((b, val));
                } else {
                    if rest_of[c] == usize::MAX {
                        rest_of[c] = lower.n_rest;
                        lower.n_rest += 1;
                    }
                    lower.rest.push((rest_of[c], val));
                }
            }
            if lower.diag[a] == 0.0 {
                return None;
            }
            lower.ptr.push(lower.off.len());
            lower.rest_ptr.push(lower.rest.len());
        }
        Some(lower)
    }

    /// x = (L_FF L_FFᵀ)⁻¹ r on the free rows (0 elsewhere); `t` is scratch.
    fn apply(&self, free: &[bool], r: &[f64], x: &mut [f64], t: &mut [f64]) {
        self.forward(free, r, t);
        self.solve_t(free, t, x);
    }

    /// t = L_FF⁻¹ r on the free rows (0 elsewhere).
    fn forward(&self, free: &[bool], r: &[f64], t: &mut [f64]) {
        let k = self.diag.len();
        for a in 0..k {
            t[a] = if free[a] {
                let mut s = r[a];
                for &(b, v) in &self.off[self.ptr[a]..self.ptr[a + 1]] {
                    if free[b] {
                        s -= v * t[b];
                    }
                }
                s / self.diag[a]
            } else {
                0.0
            };
        }
    }

    /// x = L_FF⁻ᵀ w on the free rows; `w` is overwritten.
    fn solve_t(&self, free: &[bool], w: &mut [f64], x: &mut [f64]) {
        for a in (0..self.diag.len()).rev() {
            if !free[a] {
                x[a] = 0.0;
                continue;
            }
            let xa = w[a] / self.diag[a];
            x[a] = xa;
            for &(b, v) in &self.off[self.ptr[a]..self.ptr[a + 1]] {
                w[b] -= v * xa;
            }
        }
    }
}

/// Most values of the dense k × n_rest matrix M = L⁻¹R kept for the Schur preconditioner
/// (25 million: 200 MB); beyond it the Newton systems use L_FF L_FFᵀ alone.
const SCHUR_MAX: usize = 25_000_000;

/// (L Lᵀ + R Rᵀ)⁻¹ = L⁻ᵀ (I − M C⁻¹ Mᵀ) L⁻¹ with M = L⁻¹R and C = I + MᵀM (Woodbury): the exact
/// inverse of J_A J_Aᵀ, formed once (n_rest triangular solves and one product), used on
/// every free set F as (·)_FF, which differs from (J_F J_Fᵀ)⁻¹ by a term of rank ≤ |A \ F|.
struct Schur {
    /// M by rows (k × n_rest), in single precision: the two passes over it per application
    /// are bound by memory bandwidth (C is formed from the same rounded values, so the
    /// preconditioner stays symmetric positive definite).
    m: Vec<f32>,
    chol: nalgebra::linalg::Cholesky<f64, nalgebra::Dyn>,
    /// Scratch of length n_rest.
    s: Vec<f64>,
}

impl Schur {
    fn of(l: &Lower) -> Option<Schur> {
        let (k, nr) = (l.diag.len(), l.n_rest);
        if nr == 0 || k.checked_mul(nr)? > SCHUR_MAX {
            return None;
        }
        let mut m = vec![0.0; k * nr];
        for a in 0..k {
            let (done, row) = m.split_at_mut(a * nr);
            let row = &mut row[..nr];
            for &(c, v) in &l.rest[l.rest_ptr[a]..l.rest_ptr[a + 1]] {
                row[c] += v;
            }
            for &(b, v) in &l.off[l.ptr[a]..l.ptr[a + 1]] {
                let prev = &done[b * nr..(b + 1) * nr];
                row.iter_mut().zip(prev).for_each(|(x, p)| *x -= v * p);
            }
            let d = l.diag[a];
            row.iter_mut().for_each(|x| *x /= d);
        }
        // the rows below read the exact values; C is formed from the rounded ones
        m.iter_mut().for_each(|x| *x = *x as f32 as f64);
        let mut c = vec![0.0; nr * nr];
        // SAFETY: `m` holds k × nr values by rows, read as Mᵀ (nr × k: row stride 1, column
        // stride nr) and as M (k × nr: row stride nr, column stride 1); `c` holds nr × nr
        // values written by rows; the three do not overlap.
        unsafe {
            matrixmultiply::dgemm(
                nr,
                k,
                nr,
                1.0,
                m.as_ptr(),
                1,
                nr as isize,
                m.as_ptr(),
                nr as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                nr as isize,
                1,
            );
        }
        for j in 0..nr {
            c[j * nr + j] += 1.0;
        }
        let chol = nalgebra::DMatrix::from_row_slice(nr, nr, &c).cholesky()?;
        Some(Schur {
            m: m.iter().map(|&x| x as f32).collect(),
            chol,
            s: vec![0.0; nr],
        })
    }

    /// t ← (I − M C⁻¹ Mᵀ) t.
    fn middle(&mut self, t: &mut [f64]) {
        let nr = self.s.len();
        self.s.iter_mut().for_each(|x| *x = 0.0);
        for (row, &ta) in self.m.chunks_exact(nr).zip(t.iter()) {
            if ta != 0.0 {
                self.s
                    .iter_mut()
                    .zip(row)
                    .for_each(|(x, &r)| *x += f64::from(r) * ta);
            }
        }
        let u = self
            .chol
            .solve(&nalgebra::DVector::from_column_slice(&self.s));
        for (row, ta) in self.m.chunks_exact(nr).zip(t.iter_mut()) {
            *ta -= row
                .iter()
                .zip(u.iter())
                .map(|(&r, x)| f64::from(r) * x)
                .sum::<f64>();
        }
    }
}

/// The projected Newton method on φ(y) = ½‖q + J_Aᵀ y‖² over the box |y| ≤ β.
struct Solver {
    lower: Option<Lower>,
    schur: Option<Schur>,
    /// ‖J_a‖² (the Jacobi preconditioner when L is not triangular).
    row_norm2: Vec<f64>,
    v: Vec<f64>,
    w: Vec<f64>,
    v_try: Vec<f64>,
    w_try: Vec<f64>,
    free: Vec<bool>,
    // conjugate gradients
    d: Vec<f64>,
    r: Vec<f64>,
    z: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    t: Vec<f64>,
    tn: Vec<f64>,
}

/// Newton steps at most.
const MAX_NEWTON: usize = 50;
/// Conjugate-gradient iterations at most per Newton system.
const MAX_CG: usize = 2000;

impl Solver {
    fn new(model: &Model) -> Solver {
        let (k, n) = (model.rows.nrows(), model.q.len());
        let lower = Lower::of(model);
        let schur = lower.as_ref().and_then(Schur::of);
        let row_norm2 = (0..k)
            .map(|a| {
                model
                    .rows
                    .row(a)
                    .map(|p| model.rows.val[p].powi(2))
                    .sum::<f64>()
            })
            .collect();
        Solver {
            lower,
            schur,
            row_norm2,
            v: vec![0.0; n],
            w: vec![0.0; k],
            v_try: vec![0.0; n],
            w_try: vec![0.0; k],
            free: vec![true; k],
            d: vec![0.0; k],
            r: vec![0.0; k],
            z: vec![0.0; k],
            p: vec![0.0; k],
            ap: vec![0.0; k],
            t: vec![0.0; k],
            tn: vec![0.0; n],
        }
    }

    /// φ at y; leaves v = q + J_Aᵀ y and w = ∇φ = J_A v (in the trial buffers with `trial`).
    fn phi(&mut self, model: &Model, y: &[f64], trial: bool) -> f64 {
        let (v, w) = if trial {
            (&mut self.v_try, &mut self.w_try)
        } else {
            (&mut self.v, &mut self.w)
        };
        model.subgradient(y, v);
        model.rows.mul(v, w);
        0.5 * dot(v, v)
    }

    /// The minimizing multipliers (to the accuracy reached).
    fn solve(&mut self, model: &Model, opts: &Options) -> Vec<f64> {
        let k = model.rows.nrows();
        let beta = &model.beta;
        let mut y = self.start(model);
        let beta_max = beta.iter().fold(0.0f64, |a, b| a.max(*b)).max(1e-300);
        let mut cur = self.phi(model, &y, false);
        let mut y_try = vec![0.0; k];
        let (mut last_gap, mut stalls) = (f64::INFINITY, 0);
        for _ in 0..MAX_NEWTON {
            if super::stopped(opts) {
                break;
            }
            let nv = (2.0 * cur).sqrt();
            // gap = P(−v) − D(y) = Σ β|w| + y·w ≥ 0: the slope along −v/‖v‖ is −‖v‖ + gap/‖v‖
            let gap: f64 = (0..k)
                .map(|a| beta[a] * self.w[a].abs() + y[a] * self.w[a])
                .sum();
            let nat = natural(&y, &self.w, beta);
            // stop when decided, converged, or at rounding (the gap no longer halves)
            stalls = if gap > 0.5 * last_gap { stalls + 1 } else { 0 };
            last_gap = gap;
            if nv <= opts.tol || gap <= 1e-12 * nv || nat <= 1e-15 * beta_max || stalls >= 2 {
                break;
            }
            let eps = nat.min(1e-3 * beta_max);
            for a in 0..k {
                let at_lo = y[a] <= -beta[a] + eps && self.w[a] > 0.0;
                let at_hi = y[a] >= beta[a] - eps && self.w[a] < 0.0;
                self.free[a] = !(at_lo || at_hi);
            }
            let delta = (1e-2 * nat / beta_max).max(1e-14);
            self.newton(model, opts, delta, (nat / beta_max).clamp(1e-11, 1e-2));
            // projected search on φ
            let mut alpha = 1.0;
            let next = loop {
                for a in 0..k {
                    let t = if self.free[a] {
                        y[a] + alpha * self.d[a]
                    } else {
                        y[a] + alpha * (-self.w[a].signum() * beta[a] - y[a])
                    };
                    y_try[a] = t.clamp(-beta[a], beta[a]);
                }
                let decrease: f64 = (0..k).map(|a| self.w[a] * (y_try[a] - y[a])).sum();
                let trial = self.phi(model, &y_try, true);
                // near the solution φ's decrease is below its rounding: then the natural
                // residual measures the progress
                let better = natural(&y_try, &self.w_try, beta) < 0.5 * nat;
                if (trial <= cur + 1e-4 * decrease && trial <= cur) || better {
                    std::mem::swap(&mut self.v, &mut self.v_try);
                    std::mem::swap(&mut self.w, &mut self.w_try);
                    break Some(trial);
                }
                if alpha < 1e-10 {
                    break None;
                }
                alpha *= 0.5;
            };
            match next {
                Some(trial) => {
                    std::mem::swap(&mut y, &mut y_try);
                    cur = trial;
                }
                None => break,
            }
        }
        y
    }

    /// The multipliers that zero v on the active rows' own layer entries (the (P0)
    /// multipliers at a feasible point, by one triangular solve), clipped to the box.
    fn start(&mut self, model: &Model) -> Vec<f64> {
        let k = model.rows.nrows();
        let mut y = vec![0.0; k];
        let Some(lower) = &self.lower else {
            return y;
        };
        let mut w: Vec<f64> = model.own.iter().map(|&c| -model.q[c]).collect();
        lower.solve_t(&vec![true; k], &mut w, &mut y);
        for (ya, b) in y.iter_mut().zip(&model.beta) {
            *ya = if ya.is_finite() {
                ya.clamp(-b, *b)
            } else {
                0.0
            };
        }
        y
    }

    /// The Newton direction d on the free rows: (J_F J_Fᵀ + δ) d = −w_F by preconditioned
    /// conjugate gradients (d = 0 off F).
    fn newton(&mut self, model: &Model, opts: &Options, delta: f64, eta: f64) {
        let k = model.rows.nrows();
        for a in 0..k {
            self.d[a] = 0.0;
            self.r[a] = if self.free[a] { -self.w[a] } else { 0.0 };
        }
        let norm_b = dot(&self.r, &self.r).sqrt();
        if norm_b == 0.0 {
            return;
        }
        let target = eta * norm_b;
        self.precondition(delta);
        let mut rz = dot(&self.r, &self.z);
        self.p.copy_from_slice(&self.z);
        for it in 0..MAX_CG.min(k + 10) {
            if it % 16 == 15 && super::stopped(opts) {
                return;
            }
            // ap = (J_F J_Fᵀ + δ) p on F
            self.tn.iter_mut().for_each(|x| *x = 0.0);
            model.rows.add_mul_t(&self.p, &mut self.tn);
            model.rows.mul(&self.tn, &mut self.ap);
            for a in 0..k {
                self.ap[a] = if self.free[a] {
                    self.ap[a] + delta * self.p[a]
                } else {
                    0.0
                };
            }
            let pap = dot(&self.p, &self.ap);
            if !(pap > 0.0 && rz > 0.0) {
                return;
            }
            let alpha = rz / pap;
            for a in 0..k {
                self.d[a] += alpha * self.p[a];
                self.r[a] -= alpha * self.ap[a];
            }
            if dot(&self.r, &self.r).sqrt() <= target {
                return;
            }
            self.precondition(delta);
            let rz_next = dot(&self.r, &self.z);
            let b = rz_next / rz;
            rz = rz_next;
            for a in 0..k {
                self.p[a] = self.z[a] + b * self.p[a];
            }
        }
    }

    /// z = M⁻¹ r: the triangular preconditioner, or Jacobi.
    fn precondition(&mut self, delta: f64) {
        match (&self.lower, &mut self.schur) {
            (Some(l), Some(schur)) => {
                // (P⁻¹)_FF r with P = J_A J_Aᵀ (r is 0 off F)
                let all = vec![true; self.r.len()];
                l.forward(&all, &self.r, &mut self.t);
                schur.middle(&mut self.t);
                l.solve_t(&all, &mut self.t, &mut self.z);
                for (z, f) in self.z.iter_mut().zip(&self.free) {
                    if !f {
                        *z = 0.0;
                    }
                }
            }
            (Some(l), None) => l.apply(&self.free, &self.r, &mut self.z, &mut self.t),
            (None, _) => {
                for a in 0..self.r.len() {
                    self.z[a] = if self.free[a] {
                        self.r[a] / (self.row_norm2[a] + delta)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// ‖y − P(y − w)‖∞, P the projection onto the box |y| ≤ β: 0 exactly at the minimizer.
fn natural(y: &[f64], w: &[f64], beta: &[f64]) -> f64 {
    y.iter()
        .zip(w)
        .zip(beta)
        .map(|((y, w), b)| (y - (y - w).clamp(-b, *b)).abs())
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    //! The structured tier against the dense one (n probes and Clarabel) on small (P1) points:
    //! the same verdicts, witnesses and slopes, the structured witness never less steep, and
    //! its slope the exact ray-Taylor one.

    use super::super::oracle::{Form, Oracle, Problem};
    use super::super::{pieces, Options, Status};
    use crate::config::{ColumnSel, DataSpec, HeaderMode, RowSel, SeqLayout, Split, TestState};
    use crate::diag::SourceFile;
    use crate::eval::{EvalOptions, Evaluator};
    use crate::forms::{self, Betas};
    use crate::graph::{self, Graph, LowerOptions, SeqData};
    use crate::registry::{Order, Registry};
    use std::path::PathBuf;

    fn model(text: &str, r: &Registry) -> crate::check::Model {
        let src = SourceFile::new("test.mco", text);
        crate::session::compile(&src, r).expect("model checks")
    }

    fn lower(m: &crate::check::Model, data: Vec<SeqData>) -> Graph {
        graph::lower(m, &LowerOptions { data }).expect("model lowers")
    }

    const CHAIN: &str = "data x: seq(real)
param w: real = 0.9
param c: real = 0.1
layer h[0] = 0
layer h[t] = relu(w * h[t-1] + x[t] + c)
minimize mean(t, (h[t] - 0.5)^2) + 0.1 * (w^2 + c^2)
";

    /// Chained ReLU layers over `steps` time steps (data x[t] = 0.3 sin(0.7 t)).
    fn chain(steps: usize, r: &Registry) -> Graph {
        let x = (0..steps).map(|t| 0.3 * (0.7 * t as f64).sin()).collect();
        let data = SeqData {
            steps,
            sequences: 1,
            values: x,
            warmup: 0,
        };
        lower(&model(CHAIN, r), vec![data])
    }

    /// The syn RNN on its first `rows` rows.
    fn syn(rows: usize, r: &Registry) -> Graph {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("examples/syn/rnn.mco")).unwrap();
        let m = model(&text, r);
        let range = RowSel::Range {
            start: 0,
            end: rows,
        };
        let spec = DataSpec {
            file: PathBuf::from("examples/data/syn_T10.csv"),
            header: HeaderMode::No,
            bind: vec![
                ("x".into(), ColumnSel::Range { start: 0, end: 5 }),
                ("y".into(), ColumnSel::Range { start: 5, end: 8 }),
            ],
            train: range,
            test: Some(range),
            sequences: SeqLayout::Single,
            test_state: TestState::Carry,
            origin: None,
        };
        let data = crate::session::bind_data(&m, &spec, &root, Split::Train).unwrap();
        lower(&m, data)
    }

    /// Certify z of (P1) with β by both tiers; returns the structured verdict.
    fn both(g: &Graph, theta: &[f64], beta: f64, perturb: f64, r: &Registry) -> Status {
        let lifted = forms::lift(g);
        let mut ev = Evaluator::new(g, r, Order::Zero).unwrap();
        let mut z = lifted.complete(&mut ev, theta).unwrap();
        // an infeasible z: every other layer entry moved (those residuals leave the kink)
        let mut rng = crate::rng::Rng::new(7);
        for x in z[lifted.layout.n_theta..].iter_mut().step_by(2) {
            *x += perturb * rng.normal();
        }
        let p1 = lifted.penalized(&Betas::uniform(beta));
        let problem = Problem {
            form: Form::P1,
            graph: &p1,
            registry: r,
            point: &z,
            lifted: Some(&lifted),
            adjoint: None,
        };
        let opts = Options::default();
        let mut o = Oracle::new(&problem, &opts).unwrap();
        let dense = pieces::convex_outer(&mut o, &opts)
            .unwrap()
            .expect("dense tier");
        let mut o = Oracle::new(&problem, &opts).unwrap();
        let new = super::structured(&mut o, &problem, &opts)
            .unwrap()
            .expect("structured tier");
        assert_eq!(new.status, dense.status, "{new:?}\n{dense:?}");
        assert_eq!(
            (new.method, new.active_kinks),
            ("convex_qp", dense.active_kinks)
        );
        if new.status == Status::NotStationary {
            let (d, s) = (new.direction.unwrap(), new.slope.unwrap());
            let (dd, ds) = (dense.direction.unwrap(), dense.slope.unwrap());
            // the min-norm element is unique: the same witness, the new one never less steep
            let far = d
                .iter()
                .zip(&dd)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(far < 1e-3, "witnesses {far:e} apart");
            assert!(
                s <= ds + 1e-12 && s > ds - 1e-4 * (1.0 + ds.abs()),
                "{s} vs {ds}"
            );
            let mut pev = Evaluator::new(&p1, r, Order::One).unwrap();
            let t = pev
                .directional(&z, &d, Order::One, EvalOptions::default())
                .unwrap();
            assert_eq!(t.d1, Some(s));
        }
        new.status
    }

    #[test]
    fn chained_layers_agree_with_the_dense_tier() {
        let r = Registry::with_standard();
        let g = chain(30, &r);
        for (theta, beta, perturb) in [
            ([0.9, 0.1], 1.0, 0.0),
            ([0.9, 0.1], 0.001, 0.0),
            ([-0.4, 0.7], 0.05, 0.0),
            ([0.5, -0.2], 0.2, 0.1),
        ] {
            assert_eq!(both(&g, &theta, beta, perturb, &r), Status::NotStationary);
        }
    }

    #[test]
    fn a_stationary_chain_is_certified_by_both() {
        // targets the chain itself produces at θ* = (0.9, 0.1): zero loss, so ∇F = 0
        let r = Registry::with_standard();
        let g = chain(30, &r);
        let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
        let lifted = forms::lift(&g);
        let z = lifted.complete(&mut ev, &[0.9, 0.1]).unwrap();
        let targets: Vec<String> = z[2..].iter().map(|v| format!("{v:?}")).collect();
        let text = CHAIN
            .replace(
                "minimize mean(t, (h[t] - 0.5)^2) + 0.1 * (w^2 + c^2)",
                "minimize mean(t, (h[t] - y[t])^2)",
            )
            .replace("data x: seq(real)", "data x: seq(real)\ndata y: seq(real)");
        let x: Vec<f64> = (0..30).map(|t| 0.3 * (0.7 * t as f64).sin()).collect();
        let y: Vec<f64> = targets.iter().map(|s| s.parse().unwrap()).collect();
        let seq = |values| SeqData {
            steps: 30,
            sequences: 1,
            values,
            warmup: 0,
        };
        let g = lower(&model(&text, &r), vec![seq(x), seq(y)]);
        for beta in [1e-3, 1.0] {
            assert_eq!(both(&g, &[0.9, 0.1], beta, 0.0, &r), Status::Stationary);
        }
    }

    #[test]
    fn the_exactness_threshold_with_multipliers_on_their_bounds() {
        // u = 0·θ, g = (u − 1)²: the multiplier of u is 2, stationary iff β ≥ 2
        let r = Registry::with_standard();
        let text =
            "param theta: real = 0\nlayer u = 0 * theta\nminimize (u - 1)^2 + 0.5 * sqnorm(theta)";
        let g = lower(&model(text, &r), Vec::new());
        for (beta, want) in [
            (0.5, Status::NotStationary),
            (1.5, Status::NotStationary),
            (2.5, Status::Stationary),
        ] {
            assert_eq!(both(&g, &[0.0], beta, 0.0, &r), want, "β = {beta}");
        }
    }

    #[test]
    fn every_preconditioner_reaches_the_same_nearest_point() {
        // Woodbury (the default), the triangular L_FF L_FFᵀ alone (M too large to keep) and
        // Jacobi (L not triangular): the same minimizer, to the solver's accuracy
        let r = Registry::with_standard();
        let g = syn(6, &r);
        let mut rng = crate::rng::Rng::new(11);
        let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.4 * rng.normal()).collect();
        let lifted = forms::lift(&g);
        let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
        let z = lifted.complete(&mut ev, &theta).unwrap();
        let p1 = lifted.penalized(&Betas::uniform(0.05));
        let problem = Problem {
            form: Form::P1,
            graph: &p1,
            registry: &r,
            point: &z,
            lifted: Some(&lifted),
            adjoint: None,
        };
        let opts = Options::default();
        let o = Oracle::new(&problem, &opts).unwrap();
        let model = super::Model::at(&o, &problem, &opts).expect("a (P1) model");
        let nearest = |schur: bool, lower: bool| {
            let mut solver = super::Solver::new(&model);
            assert!(solver.lower.is_some() && solver.schur.is_some());
            if !schur {
                solver.schur = None;
            }
            if !lower {
                solver.lower = None;
            }
            let y = solver.solve(&model, &opts);
            assert!(y.iter().zip(&model.beta).all(|(y, b)| y.abs() <= *b));
            let mut v = vec![0.0; model.q.len()];
            model.subgradient(&y, &mut v);
            v
        };
        let want = nearest(true, true);
        assert!(super::super::smooth::norm2(&want) > 1e-3);
        for (schur, lower) in [(false, true), (false, false)] {
            let v = nearest(schur, lower);
            let far = v
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(far < 1e-9, "schur {schur}, lower {lower}: {far:e}");
        }
    }

    #[test]
    fn random_small_rnns_agree_with_the_dense_tier() {
        let r = Registry::with_standard();
        let g = syn(6, &r);
        let n = g.n_params();
        for seed in 1..4u64 {
            let mut rng = crate::rng::Rng::new(seed);
            let theta: Vec<f64> = (0..n).map(|_| 0.4 * rng.normal()).collect();
            for (beta, perturb) in [(1.0, 0.0), (0.01, 0.0), (0.1, 0.05)] {
                assert_eq!(
                    both(&g, &theta, beta, perturb, &r),
                    Status::NotStationary,
                    "seed {seed}, β = {beta}"
                );
            }
        }
    }
}
