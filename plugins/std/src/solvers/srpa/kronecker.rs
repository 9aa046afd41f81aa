//! The θ-space part of the matrix-free preconditioner when n_θ is too large for the dense
//! complement C = I + Gᵀ G (G = J_L⁻¹ J_θ: the sensitivities of the lifted values to θ
//! through the linearized graph; [`super::newton_cg`]).
//!
//! The Woodbury form of the preconditioner needs C⁻¹ b accurately: with an approximation C̃
//! in its place, the preconditioned eigenvalues in the directions of G's large singular
//! values σ grow like (1 − σ²/c̃) σ², so any C̃ short of C itself leaves them unbounded (the
//! rank-40 Nyström C̃ of docs/srpa.md did just that). So C w = b is solved here, by conjugate
//! gradients on C (one product C p = p + Gᵀ G p is two fused passes), preconditioned by
//! [`KronFactors`] and deflated by every direction found before in the same subproblem solve
//! ([`Recycled`]):
//!
//! - **Kronecker factors per parameter** (K-FAC style). For a parameter P (rows × cols,
//!   column-major in θ) and a random ξ of m entries with E[ξ ξᵀ] = I, Y = (Gᵀ ξ)_P reshaped to
//!   rows × cols has E[vec Y vec Yᵀ] = (Gᵀ G)_PP exactly; approximating it by A ⊗ B gives
//!   E[Y Yᵀ] = tr(A) B and E[Yᵀ Y] = tr(B) A, so A ⊗ B = E[Yᵀ Y] ⊗ E[Y Yᵀ] / E‖Y‖². Each
//!   probe is one pass (`ltsolve_theta`); [`PROBES`] of them, with a fixed seed, estimate both
//!   factors of every parameter, and (I + A ⊗ B)⁻¹ is applied through the factors'
//!   eigendecompositions. θ entries outside the host's shapes (or of a parameter with a side
//!   over [`SIDE_MAX`]) get C's diagonal, estimated from the same probes.
//! - **Deflation.** The directions p_i of the conjugate gradients and C p_i are kept for the
//!   whole subproblem solve (one J and one ρ's C: ρ cancels in C). Every new right-hand side
//!   starts from its Galerkin solution in their span, and every new direction is made
//!   C-conjugate to all of them, so later solves need few new passes.
//!
//! Because every w is a Galerkin solution on a subspace, bᵀ w ≤ bᵀ C⁻¹ b, and the outer
//! preconditioner stays positive (rᵀ P⁻¹ r > 0) however inexact the inner solve.

use faer::linalg::matmul::matmul;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use mcopt_plugin_sdk::p1::{ParamShape, KRONECKER_RECYCLED_MAX};

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;

use super::operator::JacOp;
use super::sparse::two_cores;

/// Random probes per formation of the factors (one pass each). A factor's estimate from k
/// probes has rank at most k × the block's other side: [A c] of the RNN (4 rows) needs more
/// than 32 for a full-rank A, and its sketch of Σ [h; 1][h; 1]ᵀ is good to a few tens of
/// percent only from a few hundred rows. Measured at N_h = 64 (inner directions in the first
/// SRPA iteration): 16 probes 2,017, 64 1,321, 128 1,173, 256 1,041, 1,024 1,018.
pub const PROBES: usize = 256;
/// A parameter with more rows or columns than this gets a diagonal approximation (its factors
/// would hold side² values).
pub const SIDE_MAX: usize = 2_048;
/// The inner conjugate gradients stop at this relative residual ‖C w − b‖ / ‖b‖. The error of
/// w reaches the outer preconditioner multiplied by G's large singular values, so a looser
/// inner solve costs outer iterations, each a new inner solve; with the directions kept, the
/// last digits of an inner solve are cheap. Measured at N_h = 64 (outer iterations, inner
/// directions in the first SRPA iteration): 1e-6 54 and 1,041, 1e-8 25 and 661, 1e-9 20 and
/// 611, 1e-10 18 and 617.
pub const INNER_TOL: f64 = 1e-10;
/// The inner solves for the columns C⁻¹ B of the bordered correction
/// ([`super::bound_columns`]) stop at this relative residual: they enter the preconditioner
/// only through the few border entries, where [`INNER_TOL`]'s last digits buy nothing.
/// Measured at N_h = 128 (the first SRPA iteration, six columns at a bound; inner directions,
/// outer iterations, seconds of the iteration): 1e-10 607, 5 and 31.6 s; 1e-8 28.2 s; 1e-6
/// 470, 5 and 25.3 s; 1e-4 520, 8 and 27.5 s.
pub const BORDER_TOL: f64 = 1e-6;
/// The seed of the probes (fixed: the same J gives the same factors, so a resumed run forms
/// the same preconditioner).
const SEED: u64 = 0x5eed_c0ff_ee19_0019;

/// One block of θ in the approximation of C.
enum Block {
    /// Parameters with the same number of rows, side by side as one rows × cols matrix
    /// (their column-major entries concatenated: [W V b] of a recurrent layer, which share
    /// its output): C's block ≈ I + s (A ⊗ B), A = Qa diag(la) Qaᵀ (cols × cols),
    /// B = Qb diag(lb) Qbᵀ (rows × rows).
    Kron {
        parts: Vec<ParamShape>,
        rows: usize,
        cols: usize,
        qa: Mat<f64>,
        la: Vec<f64>,
        qb: Mat<f64>,
        lb: Vec<f64>,
        s: f64,
    },
    /// Entries θ[offset ..] with C's diagonal ≈ 1 + d_j.
    Diag { offset: usize, d: Vec<f64> },
}

/// A block of θ before its factors are estimated: parameters side by side, or a diagonal
/// range (offset, length).
enum Part {
    Kron(Vec<ParamShape>),
    Diag(usize, usize),
}

impl Part {
    /// Rows and columns of the side-by-side matrix.
    fn dims(parts: &[ParamShape]) -> (usize, usize) {
        (parts[0].rows, parts.iter().map(|p| p.cols).sum())
    }
}

/// The Kronecker-factored approximation of C (see the module docs).
pub struct KronFactors {
    blocks: Vec<Block>,
    /// Scratch for one block's entries, gathered, and rotated.
    work: Vec<f64>,
    gathered: Vec<f64>,
}

/// The blocks of θ: the host's shapes (where they are disjoint, ordered and inside θ)
/// grouped by their number of rows, up to [`SIDE_MAX`] columns a group; the gaps, and
/// parameters with more rows, as diagonal ranges.
fn layout(shapes: &[ParamShape], n_theta: usize) -> Vec<Part> {
    let valid = shapes
        .windows(2)
        .all(|w| w[0].offset + w[0].len() <= w[1].offset)
        && shapes.iter().all(|p| p.offset + p.len() <= n_theta);
    let mut out = Vec::new();
    let mut groups: Vec<Vec<ParamShape>> = Vec::new();
    let mut at = 0;
    for p in shapes.iter().filter(|p| valid && !p.is_empty()) {
        if p.offset > at {
            out.push(Part::Diag(at, p.offset - at));
        }
        at = p.offset + p.len();
        if p.rows > SIDE_MAX || p.cols > SIDE_MAX {
            out.push(Part::Diag(p.offset, p.len()));
            continue;
        }
        let fits = |g: &Vec<ParamShape>| {
            let (rows, cols) = Part::dims(g);
            rows == p.rows && cols + p.cols <= SIDE_MAX
        };
        match groups.iter_mut().find(|g| fits(g)) {
            Some(g) => g.push(*p),
            None => groups.push(vec![*p]),
        }
    }
    if at < n_theta {
        out.push(Part::Diag(at, n_theta - at));
    }
    out.extend(groups.into_iter().map(Part::Kron));
    out
}

/// Copies the parts' entries of `v` side by side into `out` (column-major rows × cols).
fn gather(parts: &[ParamShape], v: &[f64], out: &mut Vec<f64>) {
    out.clear();
    for p in parts {
        out.extend_from_slice(&v[p.offset..p.offset + p.len()]);
    }
}

/// The inverse of [`gather`].
fn scatter(parts: &[ParamShape], from: &[f64], v: &mut [f64]) {
    let mut at = 0;
    for p in parts {
        v[p.offset..p.offset + p.len()].copy_from_slice(&from[at..at + p.len()]);
        at += p.len();
    }
}

/// A Rademacher vector (±1 entries) from a splitmix64 stream.
fn rademacher(seed: u64, out: &mut [f64]) {
    let mut state = seed;
    for chunk in out.chunks_mut(64) {
        let z = splitmix(&mut state);
        for (k, v) in chunk.iter_mut().enumerate() {
            *v = if (z >> k) & 1 == 1 { 1.0 } else { -1.0 };
        }
    }
}

/// The next value of a splitmix64 stream.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The eigendecomposition of a symmetric matrix, eigenvalues clipped at 0.
fn eigen(a: &Mat<f64>) -> Result<(Mat<f64>, Vec<f64>), String> {
    let e = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| format!("a Kronecker factor's eigendecomposition failed: {e:?}"))?;
    let l = e.S().column_vector().iter().map(|v| v.max(0.0)).collect();
    Ok((e.U().to_owned(), l))
}

/// Sums over the probes for one part: (Σ Yᵀ Y, Σ Y Yᵀ, Σ ‖Y‖²), or Σ y_j² of a range.
enum Sums {
    Kron(Mat<f64>, Mat<f64>, f64),
    Diag(Vec<f64>),
}

impl KronFactors {
    /// Estimates the factors at `op`'s J from [`PROBES`] passes (`xi`: m entries, `out`: n of
    /// scratch), with the host's parameter shapes.
    pub fn form(
        op: &mut dyn JacOp,
        shapes: &[ParamShape],
        xi: &mut [f64],
        out: &mut [f64],
    ) -> Result<KronFactors, String> {
        let n_theta = op.cols() - op.rows();
        let layout = layout(shapes, n_theta);
        let mut sums: Vec<Sums> = layout
            .iter()
            .map(|part| match part {
                Part::Kron(parts) => {
                    let (r, c) = Part::dims(parts);
                    Sums::Kron(Mat::zeros(c, c), Mat::zeros(r, r), 0.0)
                }
                Part::Diag(_, len) => Sums::Diag(vec![0.0; *len]),
            })
            .collect();
        let mut gathered = Vec::new();
        for k in 0..PROBES {
            rademacher(SEED.wrapping_add(k as u64 * 0x1000_0001), xi);
            op.ltsolve_theta(xi, out)?;
            for (part, sum) in layout.iter().zip(&mut sums) {
                match (part, sum) {
                    (Part::Diag(offset, len), Sums::Diag(d)) => {
                        let y = &out[*offset..offset + len];
                        d.iter_mut().zip(y).for_each(|(d, y)| *d += y * y);
                    }
                    (Part::Kron(parts), Sums::Kron(a, b, tr)) => {
                        let (r, c) = Part::dims(parts);
                        gather(parts, out, &mut gathered);
                        let y = MatRef::from_column_major_slice(&gathered, r, c);
                        matmul(a.as_mut(), Accum::Add, y.transpose(), y, 1.0, Par::Seq);
                        matmul(b.as_mut(), Accum::Add, y, y.transpose(), 1.0, Par::Seq);
                        *tr += y.squared_norm_l2();
                    }
                    _ => unreachable!("the sums follow the layout"),
                }
            }
        }
        let probes = PROBES as f64;
        let mut blocks = Vec::with_capacity(layout.len());
        let mut largest = 0;
        for (part, sum) in layout.into_iter().zip(sums) {
            match (part, sum) {
                (Part::Diag(offset, _), Sums::Diag(d)) => blocks.push(Block::Diag {
                    offset,
                    d: d.into_iter().map(|v| v / probes).collect(),
                }),
                (Part::Kron(parts), Sums::Kron(a, b, tr)) => {
                    let (rows, cols) = Part::dims(&parts);
                    largest = largest.max(rows * cols);
                    let (qa, la) = eigen(&a)?;
                    let (qb, lb) = eigen(&b)?;
                    // A ⊗ B = (Σ YᵀY/k) ⊗ (Σ YYᵀ/k) / (Σ‖Y‖²/k)
                    let s = if tr > 0.0 { 1.0 / (probes * tr) } else { 0.0 };
                    blocks.push(Block::Kron {
                        parts,
                        rows,
                        cols,
                        qa,
                        la,
                        qb,
                        lb,
                        s,
                    });
                }
                _ => unreachable!("the sums follow the layout"),
            }
        }
        Ok(KronFactors {
            blocks,
            work: vec![0.0; largest],
            gathered: Vec::with_capacity(largest),
        })
    }

    /// v ← (I + K)⁻¹ v, K the factored approximation of Gᵀ G (n_θ entries).
    pub fn apply(&mut self, v: &mut [f64]) {
        for b in &self.blocks {
            match b {
                Block::Diag { offset, d } => {
                    for (x, d) in v[*offset..*offset + d.len()].iter_mut().zip(d) {
                        *x /= 1.0 + d;
                    }
                }
                Block::Kron {
                    parts,
                    rows,
                    cols,
                    qa,
                    la,
                    qb,
                    lb,
                    s,
                } => {
                    let (r, c) = (*rows, *cols);
                    gather(parts, v, &mut self.gathered);
                    let x = &mut self.gathered[..];
                    let t = &mut self.work[..r * c];
                    // T = Qbᵀ X, then X = T Qa: the rotated entries
                    let xm = MatRef::from_column_major_slice(x, r, c);
                    let mut tm = MatMut::from_column_major_slice_mut(t, r, c);
                    matmul(
                        tm.rb_mut(),
                        Accum::Replace,
                        qb.transpose(),
                        xm,
                        1.0,
                        Par::Seq,
                    );
                    let mut xm = MatMut::from_column_major_slice_mut(x, r, c);
                    matmul(
                        xm.rb_mut(),
                        Accum::Replace,
                        tm.rb(),
                        qa.as_ref(),
                        1.0,
                        Par::Seq,
                    );
                    for j in 0..c {
                        for i in 0..r {
                            xm[(i, j)] /= 1.0 + s * lb[i] * la[j];
                        }
                    }
                    // back: X = Qb (X Qaᵀ)
                    matmul(
                        tm.rb_mut(),
                        Accum::Replace,
                        xm.rb(),
                        qa.transpose(),
                        1.0,
                        Par::Seq,
                    );
                    matmul(
                        xm.rb_mut(),
                        Accum::Replace,
                        qb.as_ref(),
                        tm.rb(),
                        1.0,
                        Par::Seq,
                    );
                    scatter(parts, &self.gathered, v);
                }
            }
        }
    }
}

/// The C-conjugate directions of the inner conjugate gradients, kept for one subproblem
/// solve (at most [`KRONECKER_RECYCLED_MAX`]; one inner solve adds at most as many more,
/// dropped at its end past the cap).
#[derive(Default)]
pub struct Recycled {
    dirs: Vec<Vec<f64>>,
    cdirs: Vec<Vec<f64>>,
    /// p_iᵀ C p_i.
    curv: Vec<f64>,
    /// Scratch: the preconditioned and the plain residual (n_θ entries each).
    z: Vec<f64>,
    r: Vec<f64>,
    /// The operand (p, 0) of J_L⁻¹ (−J_θ p), n entries: only its θ part is ever written, so
    /// the m zeros after it are set once, not at every product.
    operand: Vec<f64>,
}

/// Kept directions per block of the Gram–Schmidt in [`Recycled::conjugate`].
const GS_BLOCK: usize = 32;

/// Scratch of the passes of one product with C: n entries and m entries.
pub struct PassScratch<'a> {
    pub tn: &'a mut [f64],
    pub tm: &'a mut [f64],
}

impl Recycled {
    /// Forgets every direction (a new subproblem solve, or a new J).
    pub fn clear(&mut self) {
        self.dirs.clear();
        self.cdirs.clear();
        self.curv.clear();
    }

    /// p ← p minus its C-projection on the kept directions (so p is C-conjugate to them), by
    /// blocks of [`GS_BLOCK`] directions: inside a block classical Gram–Schmidt (the kept
    /// directions are C-conjugate, so its coefficients are modified Gram–Schmidt's to
    /// rounding), modified between blocks. The entries go in two halves whose partial inner
    /// products are summed, half 0's first: on two threads where the machine has them (the
    /// projection reads every kept direction twice, hundreds of n_θ-vectors, and is bound by
    /// memory, which two cores read about twice as fast), with the same sums either way.
    fn conjugate(&self, p: &mut [f64]) {
        self.conjugate_on(p, two_cores());
    }

    /// [`Recycled::conjugate`] on two threads or one.
    fn conjugate_on(&self, p: &mut [f64], threads: bool) {
        let half = p.len() / 2;
        let (p0, p1) = p.split_at_mut(half);
        let n = self.dirs.len();
        let blocks = (0..n).step_by(GS_BLOCK).map(|s| s..(s + GS_BLOCK).min(n));
        let (mut coefs, mut d0, mut d1) = (Vec::new(), Vec::new(), Vec::new());
        if !threads || n == 0 {
            for block in blocks {
                self.partial_dots(block.clone(), 0, p0, &mut d0);
                self.partial_dots(block.clone(), half, p1, &mut d1);
                self.coefs(block.clone(), &d0, &d1, &mut coefs);
                self.subtract(block.clone(), &coefs, 0, p0);
                self.subtract(block, &coefs, half, p1);
            }
            return;
        }
        // each thread's partial inner products, by the parity of the block: a thread writes a
        // block's slot after the barrier of the block before, which the other passed only
        // after reading that slot two blocks before
        let slots: [[Vec<AtomicU64>; 2]; 2] = std::array::from_fn(|_| {
            std::array::from_fn(|_| (0..GS_BLOCK).map(|_| AtomicU64::new(0)).collect())
        });
        let barrier = Barrier::new(2);
        let work = |k: usize, at: usize, ph: &mut [f64]| {
            let (mut coefs, mut own, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
            for (b, block) in blocks.clone().enumerate() {
                self.partial_dots(block.clone(), at, ph, &mut own);
                for (slot, d) in slots[k][b % 2].iter().zip(&own) {
                    slot.store(d.to_bits(), Ordering::Relaxed);
                }
                barrier.wait();
                theirs.clear();
                theirs.extend(
                    slots[1 - k][b % 2][..block.len()]
                        .iter()
                        .map(|v| f64::from_bits(v.load(Ordering::Relaxed))),
                );
                let (d0, d1) = if k == 0 {
                    (&own, &theirs)
                } else {
                    (&theirs, &own)
                };
                self.coefs(block.clone(), d0, d1, &mut coefs);
                self.subtract(block, &coefs, at, ph);
            }
        };
        std::thread::scope(|scope| {
            scope.spawn(|| work(1, half, p1));
            work(0, 0, p0);
        });
    }

    /// `out` = the inner products of `ph` (entries from `at` of a vector) with the same
    /// entries of the kept C p_i, i in `block`.
    fn partial_dots(&self, block: Range<usize>, at: usize, ph: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend(block.map(|i| dot(&self.cdirs[i][at..at + ph.len()], ph)));
    }

    /// `out` = the coefficients of the kept directions of `block` from the two halves' inner
    /// products, half 0's first.
    fn coefs(&self, block: Range<usize>, d0: &[f64], d1: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend(
            block
                .zip(d0.iter().zip(d1))
                .map(|(i, (a, b))| (a + b) / self.curv[i]),
        );
    }

    /// `ph` (entries from `at`) −= Σ coefs_i p_i over the kept directions of `block`.
    fn subtract(&self, block: Range<usize>, coefs: &[f64], at: usize, ph: &mut [f64]) {
        for (i, c) in block.zip(coefs) {
            axpy(-c, &self.dirs[i][at..at + ph.len()], ph);
        }
    }

    /// w ≈ C⁻¹ b: the Galerkin solution on the kept directions, then conjugate gradients
    /// preconditioned by `k` to the relative residual `tol` ([`INNER_TOL`] in the
    /// preconditioner, [`BORDER_TOL`] for the bordered correction's columns; every direction
    /// kept, two passes each).
    pub fn solve(
        &mut self,
        op: &mut dyn JacOp,
        k: &mut KronFactors,
        b: &[f64],
        w: &mut [f64],
        scratch: PassScratch<'_>,
        tol: f64,
    ) -> Result<(), String> {
        let nt = b.len();
        let PassScratch { tn, tm } = scratch;
        self.z.resize(nt, 0.0);
        self.r.clear();
        self.r.extend_from_slice(b);
        w.fill(0.0);
        // the Galerkin start: the kept directions are C-conjugate
        for i in 0..self.dirs.len() {
            let coef = dot(&self.dirs[i], &self.r) / self.curv[i];
            axpy(coef, &self.dirs[i], w);
            axpy(-coef, &self.cdirs[i], &mut self.r);
        }
        let target = tol * dot(b, b).sqrt();
        let limit = self.dirs.len() + KRONECKER_RECYCLED_MAX;
        while dot(&self.r, &self.r).sqrt() > target && self.dirs.len() < limit {
            self.z.copy_from_slice(&self.r);
            k.apply(&mut self.z);
            let mut p = self.z.clone();
            self.conjugate(&mut p);
            let mut cp = vec![0.0; nt];
            c_product(op, &p, &mut cp, &mut self.operand, tn, tm)?;
            let curv = dot(&p, &cp);
            if curv.is_nan() || curv <= 0.0 {
                break;
            }
            let alpha = dot(&p, &self.r) / curv;
            axpy(alpha, &p, w);
            axpy(-alpha, &cp, &mut self.r);
            self.dirs.push(p);
            self.cdirs.push(cp);
            self.curv.push(curv);
        }
        // past the cap, this solve's directions served it alone
        self.dirs.truncate(KRONECKER_RECYCLED_MAX);
        self.cdirs.truncate(KRONECKER_RECYCLED_MAX);
        self.curv.truncate(KRONECKER_RECYCLED_MAX);
        Ok(())
    }
}

/// cp = C p = p + Gᵀ G p by two fused passes: J_L⁻¹ (−J_θ p) = −G p, then the θ part of
/// (J_θᵀ x, x) with J_Lᵀ x = −G p, which is −Gᵀ G p (`operand`: zero past n_θ or empty,
/// `tn`: n entries, `tm`: m).
fn c_product(
    op: &mut dyn JacOp,
    p: &[f64],
    cp: &mut [f64],
    operand: &mut Vec<f64>,
    tn: &mut [f64],
    tm: &mut [f64],
) -> Result<(), String> {
    let nt = p.len();
    operand.resize(tn.len(), 0.0);
    operand[..nt].copy_from_slice(p);
    op.lsolve_theta(operand, tm)?;
    op.ltsolve_theta(tm, tn)?;
    for ((c, p), g) in cp.iter_mut().zip(p).zip(&tn[..nt]) {
        *c = p - g;
    }
    Ok(())
}

/// The inner product, summed in eight lanes: the deflation's products with every kept
/// direction (hundreds of n_θ-vectors per inner iteration) are bound by the latency of one
/// running sum otherwise.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// y += a x.
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// A splitmix64 stream of values in [−1, 1) (the solvers' unit tests' random data).
#[cfg(test)]
pub(super) fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| (splitmix(&mut state) >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect()
}

/// The J of a recurrence (the solvers' unit tests'): `steps` blocks of `width` lifted rows,
/// each reading every lifted entry of the block before (J_L unit lower triangular) and every
/// parameter.
#[cfg(test)]
pub(super) fn recurrence(steps: usize, width: usize, n_theta: usize) -> super::sparse::SparseRows {
    let m = steps * width;
    let mut j = super::sparse::SparseRows {
        ncols: n_theta + m,
        row_ptr: vec![0],
        ..Default::default()
    };
    let mut v = values(7, m * (n_theta + width)).into_iter();
    for i in 0..m {
        let step = i / width;
        let mut cols: Vec<usize> = (0..n_theta).collect();
        if step > 0 {
            cols.extend(n_theta + (step - 1) * width..n_theta + step * width);
        }
        for c in cols {
            j.col_idx.push(c);
            j.values.push(v.next().unwrap_or(0.5));
        }
        j.col_idx.push(n_theta + i);
        j.values.push(1.0);
        j.row_ptr.push(j.col_idx.len());
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Gram–Schmidt by blocks and halves makes p C-conjugate to 70 kept directions (two
    /// full blocks and a part, an odd length), with the same bits on two threads and on one.
    #[test]
    fn the_blocked_gram_schmidt_conjugates_with_the_same_bits_on_one_thread_or_two() {
        let n = 101;
        // C = I + Gᵀ G with a random G, as the inner solves' C
        let g = values(1, 3 * n * n);
        let c: Vec<f64> = (0..n * n)
            .map(|e| {
                let (i, j) = (e % n, e / n);
                let gg: f64 = (0..3 * n)
                    .map(|k| g[k + i * 3 * n] * g[k + j * 3 * n])
                    .sum();
                gg + if i == j { 1.0 } else { 0.0 }
            })
            .collect();
        let cmul = |v: &[f64]| -> Vec<f64> {
            (0..n)
                .map(|i| (0..n).map(|j| c[i + j * n] * v[j]).sum())
                .collect()
        };
        let mut kept = Recycled::default();
        for k in 0..70 {
            // each new direction conjugated by plain modified Gram–Schmidt
            let mut d = values(100 + k, n);
            for i in 0..kept.dirs.len() {
                let coef = dot(&kept.cdirs[i], &d) / kept.curv[i];
                axpy(-coef, &kept.dirs[i], &mut d);
            }
            let cd = cmul(&d);
            kept.curv.push(dot(&d, &cd));
            kept.dirs.push(d);
            kept.cdirs.push(cd);
        }
        let p0 = values(7, n);
        let (mut one, mut two) = (p0.clone(), p0.clone());
        kept.conjugate_on(&mut one, false);
        kept.conjugate_on(&mut two, true);
        assert_eq!(
            one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            two.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let cp = cmul(&one);
        let norm_p = dot(&one, &cp).sqrt();
        for (i, d) in kept.dirs.iter().enumerate() {
            let rel = dot(d, &cp).abs() / (kept.curv[i].sqrt() * norm_p);
            assert!(rel < 1e-10, "direction {i}: {rel:e}");
        }
        // and p moved: its component along the kept directions was removed, not all of it
        assert!(norm_p > 1e-3 * dot(&p0, &cmul(&p0)).sqrt());
    }
}
