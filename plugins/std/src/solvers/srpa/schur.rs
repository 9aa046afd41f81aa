//! The parameter-Schur preconditioner of the subproblem's Newton systems.
//!
//! A Newton system is M d = b on the free multipliers F, with
//! M = δI + J_F D J_Fᵀ/ρ (D: the free entries of the step). Split J's columns into the
//! parameters θ (the first `n_theta`) and the lifted variables L:
//!
//! ```text
//! M = B + U Uᵀ,   B = δI + J_{F,L} D J_{F,L}ᵀ/ρ,   U = J_{F,θ} D_θ / √ρ,
//! M⁻¹ = B⁻¹ − B⁻¹ U C⁻¹ Uᵀ B⁻¹,   C = I + Uᵀ B⁻¹ U   (n_θ × n_θ, dense).
//! ```
//!
//! B couples only the rows that share a lifted variable (in a layered model: neighbouring
//! layers or time steps), so its sparse factorization is cheap and is redone for every Newton
//! system. C is what makes the direct factorization of the whole KKT matrix expensive (every
//! row touches the parameters, so the factor holds about m × n_θ values): it is formed only now
//! and then, by blocked solves with B, and kept. With the exact B and a kept C̃, the
//! preconditioner P⁻¹ = B⁻¹ − B⁻¹ U C̃⁻¹ Uᵀ B⁻¹ differs from M⁻¹ only through C̃ − C, a rank-n_θ
//! difference that shrinks as consecutive SRPA subproblems get closer; conjugate gradients
//! absorb it. When they do not converge (or P⁻¹ stops being positive definite), the caller
//! reforms C at the current point, which makes P⁻¹ = M⁻¹.
//!
//! Where B goes through its augmented matrix with the eliminated rows (the TIMIT shape: the
//! factored matrix has 49 k unknowns for 821 k rows), factoring B is cheap, so every Newton
//! system factors B at its own point ([`Schur::factor_at`]) and the conjugate gradients run on
//! C itself ([`Schur::solve_through_c`]): C w = Uᵀ B⁻¹ b on the n_θ unknowns w, preconditioned
//! by the kept C̃, then d = B⁻¹(b − U w). M d − b = U (Uᵀ B⁻¹ b − C w), so they stop on
//! U times C's residual. An iteration is one solve with B and two products with U, against two
//! solves, two products with U and the products with J and Jᵀ on the whole system, and the
//! mismatch of a kept B no longer enters. The passes over U and over the eliminated rows run
//! by fixed halves of the rows, on two threads where there are two cores.

// Index loops over several parallel arrays read best as index loops here.
#![allow(clippy::needless_range_loop)]

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::{factor as llt_factor, solve as llt_solve};
use faer::linalg::matmul::matmul;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Conj, Mat, MatMut, MatRef, Par};
use std::collections::HashMap;

use super::ldl::{ColumnsWorkspace, InOrder, Kernels, LdlError, SplitLdl};
use super::sparse::{dot, dot_lanes, each_half, pair, SparseRows, HALVES_MIN_ENTRIES};

/// Right-hand sides per blocked solve when forming C.
const CHUNK: usize = 48;
/// Threads at most when forming C.
const THREADS: usize = 4;
/// The largest condition number of Λ = Sᵀ C S with which [`Schur::learn`] updates H
/// (estimated as the squared ratio of the extreme diagonal entries of its Cholesky factor).
const LEARN_MAX_CONDITION: f64 = 1e8;

/// The point a preconditioner was formed at.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub jac: Vec<f64>,
    pub rho: f64,
    pub delta: f64,
    pub free_s: Vec<bool>,
    pub free_y: Vec<bool>,
}

impl Kept {
    /// The point, borrowed.
    pub fn at(&self) -> At<'_> {
        At {
            jac: &self.jac,
            rho: self.rho,
            delta: self.delta,
            free_s: &self.free_s,
            free_y: &self.free_y,
        }
    }
}

/// Which values of J (and ρ) a point reads: the generation of [`Schur::jac_blocks`] or
/// [`Schur::reform`] it comes after, the values' address and length, and ρ's bits. Within one
/// generation a slice at the same address holds the same values (the caller's contract: a
/// subproblem's J does not change while it is solved, and every new one is announced).
type ValuesKey = (u64, usize, usize, u64);

/// What a checkpoint keeps of a kept preconditioner ([`Schur::saved`]).
pub enum Saved<'a> {
    /// The point it was formed at.
    Point(&'a Kept),
    /// H, the conjugate gradients' preconditioner on C.
    Inverse(MatRef<'a, f64>),
}

/// A point B and U are formed at, borrowed: J's values, ρ, δ and the free sets.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub jac: &'a [f64],
    pub rho: f64,
    pub delta: f64,
    pub free_s: &'a [bool],
    pub free_y: &'a [bool],
}

impl At<'_> {
    /// The point, owned: what a preconditioner formed here keeps.
    pub fn to_kept(&self) -> Kept {
        Kept {
            jac: self.jac.to_vec(),
            rho: self.rho,
            delta: self.delta,
            free_s: self.free_s.to_vec(),
            free_y: self.free_y.to_vec(),
        }
    }
}

/// See the module docs.
pub struct Schur {
    m: usize,
    n_theta: usize,
    b: SplitLdl,
    /// How B is stored and factored.
    form: BForm,
    /// Row and column of every entry of J.
    row_of: Vec<u32>,
    col_idx: Vec<u32>,
    /// Entries of J in θ columns, by row.
    theta_ptr: Vec<usize>,
    theta_entries: Vec<u32>,
    /// U at the point of the last [`Schur::compact_u`], by runs of rows.
    u: URows,
    /// The blocks of eliminated rows taken in closed form (the augmented form only).
    fam: Families,
    /// The same blocks in J's products of the dual (the augmented form only).
    jb: JacBlocks,
    /// The Cholesky factor of the kept C̃, valid when `formed`.
    c_factor: Mat<f64>,
    /// Where B is factored at every Newton system ([`Schur::exact_b`]): the preconditioner H
    /// of the conjugate gradients on C, C̃⁻¹ when C̃ is formed, then updated by what each solve
    /// learnt of C (see [`Schur::learn`]).
    c_inv: Mat<f64>,
    /// The last solve's search directions p and their products C p, column after column,
    /// scaled to pᵀ C p = 1.
    learnt_p: Vec<f64>,
    learnt_q: Vec<f64>,
    /// Whether a preconditioner is kept: false before the first, after a failed formation, and
    /// after [`Schur::retire`].
    formed: bool,
    /// The point the kept B and C were formed at: J's values, ρ, δ and the free sets.
    kept: Kept,
    /// Counts the sets of J's values announced by [`Schur::jac_blocks`] and [`Schur::reform`]:
    /// what U and B take from J's values and ρ alone is kept for the Newton systems of one set
    /// (one subproblem: they change δ and the free sets only), see [`ValuesKey`].
    generation: u64,
    /// The values U's runs and B's [`FromJ`] were last computed for.
    u_key: Option<ValuesKey>,
    b_key: Option<ValuesKey>,
    /// What the augmented form's assembly takes from J's values alone.
    from_j: FromJ,
    // workspaces
    t: Vec<f64>,
    t2: Vec<f64>,
    w: Vec<f64>,
    /// The right-hand side of the augmented system (empty in the row form), and the second
    /// half's share of its lifted columns while the eliminated rows are scattered.
    aug: Vec<f64>,
    aug_half: Vec<f64>,
    /// The workspace of [`Schur::c_product`]'s solves in the factors' order, and the solved
    /// unknowns at the blocks' lifted columns ([`Families::block_cols`]'s).
    one: ColumnsWorkspace,
    xs: Vec<f64>,
    /// The second half's share of the eliminated rows' pairs in B's values
    /// ([`Schur::factor_b`]).
    b_half: Vec<f64>,
    stack: MemBuffer,
}

/// B stored by rows (m × m), or through its augmented quasi-definite matrix.
enum BForm {
    /// B itself: its diagonal and every pair of rows that share a lifted column. Cheap while
    /// lifted columns are short; a lifted column with k entries adds k(k+1)/2 pairs.
    Rows {
        /// Slot of every diagonal entry B_ii.
        diag_slot: Vec<usize>,
        /// Contributions to B: for every lifted column c (range `pair_ptr[c - n_theta]..`),
        /// the products J[p] J[q] of two of its entries (p ≤ q by row) and the slot they add to.
        pair_ptr: Vec<usize>,
        pairs: Vec<(u32, u32, u32)>,
    },
    /// [[ρI, J_Lᵀ], [J_L, −δI]] (the lifted columns first, then the rows), whose Schur
    /// complement on the rows is −B: its pattern is J_L's, whatever the column lengths (the
    /// TIMIT shape's hidden units each touch 129 output rows: 107 M pairs by rows, 2.5 M
    /// entries here). A lifted column with a single entry (an output layer's entry, read by
    /// its own residual row only) is not an unknown: it adds J²/ρ to its row's diagonal. A
    /// row with such an entry is not an unknown either (see [`Eliminated`]): its pivot is a
    /// number, so it is eliminated in closed form before the sparse factorization, which then
    /// only sees the other rows and the lifted columns with more than one entry (the TIMIT
    /// shape: 49 k unknowns rather than 846 k).
    Augmented {
        /// Lifted columns with more than one entry: the unknowns before the rows.
        n_l: usize,
        /// Slot of every such column's diagonal ρ, then of every kept row's diagonal.
        diag_slot: Vec<usize>,
        /// For every entry of J: its slot; [`SINGLE`] for the entry of a single-entry column,
        /// [`THETA`] for θ entries, [`ELIMINATED`] for the other entries of eliminated rows.
        entry_slot: Vec<u32>,
        /// The unknown of every kept row (n_l + its rank among them; below the dimension of
        /// the factored matrix), and the dimension plus e for the e-th eliminated row.
        row_unknown: Vec<u32>,
        /// The rows that are unknowns of the factored matrix: (row, unknown).
        kept_rows: Vec<(u32, u32)>,
        elim: Box<Eliminated>,
    },
}

/// What B's assembly takes from J's values alone ([`FromJ::fill`]): the lists, and the second
/// half's while they are filled (kept for their capacity).
#[derive(Default)]
struct FromJ {
    lists: FromJLists,
    second: FromJLists,
}

/// The entries of [`BForm::Augmented`]'s matrix at J's values, before δ and the free sets:
/// computed once per set of values, so that a Newton system's assembly reads these lists
/// rather than all of J (on the TIMIT shape 0.8 M entries of 6.47 M).
#[derive(Default)]
struct FromJLists {
    /// The entries in a single-entry lifted column of the rows that stay unknowns: (row,
    /// column, J²).
    single: Vec<(u32, u32, f64)>,
    /// The same of the eliminated rows, by eliminated row: (its index in [`Eliminated`],
    /// column, J²).
    single_elim: Vec<(u32, u32, f64)>,
    /// The entries with a slot in the matrix: (row, column, slot, J).
    slotted: Vec<(u32, u32, u32, f64)>,
}

/// What [`FromJ::fill`] reads of the augmented form and of J.
struct FromJInput<'a> {
    entry_slot: &'a [u32],
    row_of: &'a [u32],
    col_idx: &'a [u32],
    jac: &'a [f64],
    row_unknown: &'a [u32],
    dim: usize,
}

impl FromJ {
    /// The lists at J's values: J's entries in two halves on two threads (one pass over the
    /// TIMIT shape's 6.47 M entries was 0.7% of a late iteration on the one thread), the
    /// second half's lists appended to the first's (the order of one pass).
    fn fill(&mut self, input: &FromJInput<'_>) {
        let scan = |out: &mut FromJLists, entries: std::ops::Range<usize>| {
            out.single.clear();
            out.single_elim.clear();
            out.slotted.clear();
            for p in entries {
                let (i, c, j) = (input.row_of[p], input.col_idx[p], input.jac[p]);
                match input.entry_slot[p] {
                    THETA | ELIMINATED => {}
                    SINGLE => match (input.row_unknown[i as usize] as usize).checked_sub(input.dim)
                    {
                        Some(e) => out.single_elim.push((e as u32, c, j * j)),
                        None => out.single.push((i, c, j * j)),
                    },
                    slot => out.slotted.push((i, c, slot, j)),
                }
            }
        };
        let n = input.entry_slot.len();
        let mid = if n >= HALVES_MIN_ENTRIES { n / 2 } else { n };
        let (all, second) = (&mut self.lists, &mut self.second);
        pair(|| scan(all, 0..mid), || scan(second, mid..n));
        all.single.extend_from_slice(&second.single);
        all.single_elim.extend_from_slice(&second.single_elim);
        all.slotted.extend_from_slice(&second.slotted);
    }
}

/// The rows of [`BForm::Augmented`] eliminated in closed form: each has an entry in a lifted
/// column that has no other, so after that column's elimination its pivot is the number
/// a_i = −(δ + Σ J²/ρ) (−1 for a row that is not free) and it couples only the lifted columns
/// it reads (at most [`ELIMINATE_MAX_COLUMNS`]): eliminating it adds J_{i,c} J_{i,c'}/|a_i| to
/// the entries between them (for the TIMIT shape's output rows: a 2 × 2 block per time step).
/// With f_i the row's right-hand side, its unknown is d_i = (f_i − Σ_c J_{i,c} x_c)/a_i.
#[derive(Default)]
struct Eliminated {
    /// The eliminated rows, in increasing order.
    rows: Vec<u32>,
    /// For each: its range in `cols`.
    ptr: Vec<usize>,
    /// Its entries in lifted columns with more than one entry: (entry of J, the column's
    /// unknown).
    cols: Vec<(u32, u32)>,
    /// J at each of these entries at the kept point, 0 where the row or the column is not
    /// free.
    val: Vec<f64>,
    /// The column of each, and J there at the values of the last assembly (free or not).
    col: Vec<u32>,
    raw: Vec<f64>,
    /// For each: its range in `pairs`.
    pair_ptr: Vec<usize>,
    /// (slot, a, b) with a ≤ b indices into `val`: val[a] val[b]/|a_i| adds to the slot.
    pairs: Vec<(u32, u32, u32)>,
    /// a_i at the kept point, by eliminated row.
    pivot: Vec<f64>,
}

/// What [`Schur::factor_b`] reads to set the eliminated rows' pivots and values.
struct ElimRows<'a> {
    elim_rows: &'a [u32],
    ptr: &'a [usize],
    col: &'a [u32],
    raw: &'a [f64],
    free_y: &'a [bool],
    free_s: &'a [bool],
    delta: f64,
    inv_rho: f64,
}

impl ElimRows<'_> {
    /// The eliminated rows from `first` (as many as `pivot` has): a_i = −δ − Σ J²/ρ over the
    /// row's free single-entry columns (`single`: theirs, in order; −1 where the row is not
    /// free), and J at the row's lifted columns where the row and the column are free (0
    /// elsewhere) into `val` (from the first row's first entry).
    fn pivots_and_values(
        &self,
        first: usize,
        pivot: &mut [f64],
        val: &mut [f64],
        single: &[(u32, u32, f64)],
    ) {
        let base = self.ptr[first];
        let mut singles = single.iter().peekable();
        for (k, a) in pivot.iter_mut().enumerate() {
            let e = first + k;
            let free_row = self.free_y[self.elim_rows[e] as usize];
            *a = if free_row { -self.delta } else { -1.0 };
            while let Some(&(_, c, j2)) = singles.next_if(|s| s.0 as usize == e) {
                if free_row && self.free_s[c as usize] {
                    *a -= j2 * self.inv_rho;
                }
            }
            let range = self.ptr[e]..self.ptr[e + 1];
            for ((v, &c), &j) in val[range.start - base..range.end - base]
                .iter_mut()
                .zip(&self.col[range.clone()])
                .zip(&self.raw[range])
            {
                *v = if free_row && self.free_s[c as usize] {
                    j
                } else {
                    0.0
                };
            }
        }
    }
}

impl Eliminated {
    /// The sums over the eliminated rows `rows` (free, reading the same lifted columns: a
    /// block's) of their pairs J_p J_q/|a_i|, pair by pair in the order of a row's pairs.
    fn pair_sums(&self, rows: std::ops::Range<usize>) -> Vec<f64> {
        let first = rows.start;
        let mut sums = vec![0.0; self.pair_ptr[first + 1] - self.pair_ptr[first]];
        for e in rows {
            let w = -1.0 / self.pivot[e];
            for (s, &(_, a, b)) in sums
                .iter_mut()
                .zip(&self.pairs[self.pair_ptr[e]..self.pair_ptr[e + 1]])
            {
                *s += self.val[a as usize] * self.val[b as usize] * w;
            }
        }
        sums
    }

    /// Adds to `vals` (B's values by slot) the pairs J_p J_q/|a_i| of the free eliminated rows
    /// `rows` (pivots and values set).
    fn add_pairs(&self, free_y: &[bool], rows: std::ops::Range<usize>, vals: &mut [f64]) {
        for e in rows {
            if !free_y[self.rows[e] as usize] {
                continue;
            }
            let w = -1.0 / self.pivot[e];
            for &(slot, a, b) in &self.pairs[self.pair_ptr[e]..self.pair_ptr[e + 1]] {
                vals[slot as usize] += self.val[a as usize] * self.val[b as usize] * w;
            }
        }
    }
}

/// A row with an entry in a single-entry lifted column is eliminated in closed form when it
/// reads at most this many other lifted columns (it adds the pairs of them to the matrix).
const ELIMINATE_MAX_COLUMNS: usize = 8;
/// [`BForm::Augmented`]'s `entry_slot` of an entry of an eliminated row (in a lifted column
/// with more than one entry).
const ELIMINATED: u32 = u32::MAX - 2;
/// [`BForm::Augmented`]'s `entry_slot` of an entry whose column has no other.
const SINGLE: u32 = u32::MAX - 1;
/// [`BForm::Augmented`]'s `entry_slot` of a θ entry.
const THETA: u32 = u32::MAX;

/// B is stored through its augmented matrix when the row form would hold more pairs than this.
pub const ROWS_MAX_PAIRS: usize = 16_000_000;
/// Values at most in one thread's block of right-hand sides when forming C in the augmented
/// form (whose unknowns are the lifted columns with more than one entry and the rows not
/// eliminated): 4 M values, 32 MB.
const CHUNK_VALUES: usize = 4_000_000;

/// Rows taken one by one in the formation of C that read the same θ columns go through dense
/// products when there are at least this many ([`Schur::rest_groups`]) ...
const GROUP_MIN_ROWS: usize = 32;
/// ... by blocks of this many rows (the blocks' copies of U and of the solved columns stay
/// small: 512 × 132 and 512 × 48 values on the TIMIT shape).
const GROUP_BLOCK_ROWS: usize = 512;

/// The free rows the formation of C takes one by one, grouped by their θ columns.
#[derive(Default)]
struct RestGroups {
    dense: Vec<RestGroup>,
    lone: Vec<u32>,
    /// The rows per dense product ([`GROUP_BLOCK_ROWS`]).
    block_rows: usize,
}

/// Rows (free, in order) that read the same θ columns `cols` (in J's order on each row).
struct RestGroup {
    cols: Vec<u32>,
    rows: Vec<u32>,
    /// U at the group's rows and columns (rows × cols), once per formation of C: every chunk
    /// of columns reads it whole (filled again per chunk, it was a third of the formation's
    /// own time on the TIMIT shape).
    u: Mat<f64>,
}

/// A chunk of the formation of C: θ columns j0..j1 (their own right-hand sides), or the
/// vectors b0..b1 of a [`CBasis`].
#[derive(Debug, Clone, Copy)]
enum Chunk {
    Theta(usize, usize),
    Basis(usize, usize),
}

impl Chunk {
    /// Its right-hand sides.
    fn width(self) -> usize {
        match self {
            Chunk::Theta(a, b) | Chunk::Basis(a, b) => b - a,
        }
    }
}

/// The right-hand sides W of the families' θ columns (A's and c's in the RNN's output layer)
/// in a few vectors. A family's block adds, at its lifted column j, Σ_k V_kj g_b/π_k for the
/// θ column of its row k's position b: that is g_b (the block's U at position b) times a
/// number of the family, the same at every block. So these columns' W are combinations of
/// n_c × e vectors per family (g_b at lifted column j of every block), plus unit vectors at
/// the unknowns the rows outside the blocks put them on (the steps with a row or a hidden
/// column not free): on the TIMIT shape 6 vectors and two per such step rather than 387
/// solves.
struct CBasis {
    /// The θ columns, ascending.
    cols: Vec<u32>,
    /// Each θ column's place in `cols`, [`NOT_IN_BASIS`] for the others.
    index: Vec<u32>,
    /// Each family's first vector (its (j, b)-th at fam0 + j e + b).
    fam0: Vec<usize>,
    /// The unknowns of the unit vectors (after the families' `n_fam` vectors).
    units: Vec<u32>,
    n_fam: usize,
    /// Vectors in all.
    n: usize,
    /// W = basis × coef: vector v's coefficient for column `cols[s]` at v · cols.len() + s.
    coef: Vec<f64>,
}

/// [`CBasis::index`] of a θ column the basis does not serve.
const NOT_IN_BASIS: u32 = u32::MAX;

impl CBasis {
    /// Whether θ column c takes its solves through the basis.
    fn serves(&self, c: usize) -> bool {
        self.index[c] != NOT_IN_BASIS
    }
}

/// A [`CBasis`] is used where it has at most this share of vectors per column it serves.
const BASIS_MAX_SHARE: f64 = 0.5;

impl Schur {
    /// Analyses B's pattern for J (m × n, the first `n_theta` columns the parameters): by rows
    /// unless that would hold more than [`ROWS_MAX_PAIRS`] pairs or `augmented` asks for the
    /// augmented matrix.
    pub fn new(jac: &SparseRows, n_theta: usize, augmented: bool) -> Result<Schur, LdlError> {
        let n = jac.ncols;
        let m = jac.nrows();
        let nnz = jac.col_idx.len();
        let mut row_of = vec![0u32; nnz];
        let mut theta_ptr = vec![0usize; m + 1];
        let mut theta_entries = Vec::new();
        // lifted columns: their entries (by row order, since rows are visited in order)
        let mut col_count = vec![0usize; n - n_theta + 1];
        for i in 0..m {
            for p in jac.row_ptr[i]..jac.row_ptr[i + 1] {
                row_of[p] = i as u32;
                let c = jac.col_idx[p];
                if c < n_theta {
                    theta_entries.push(p as u32);
                } else {
                    col_count[c - n_theta + 1] += 1;
                }
            }
            theta_ptr[i + 1] = theta_entries.len();
        }
        for c in 0..n - n_theta {
            col_count[c + 1] += col_count[c];
        }
        let col_start = col_count.clone();
        let mut col_entries = vec![0u32; col_start[n - n_theta]];
        let mut fill = col_count;
        for p in 0..nnz {
            let c = jac.col_idx[p];
            if c >= n_theta {
                col_entries[fill[c - n_theta]] = p as u32;
                fill[c - n_theta] += 1;
            }
        }
        let pair_count: usize = (0..n - n_theta)
            .map(|c| {
                let k = col_start[c + 1] - col_start[c];
                k * (k + 1) / 2
            })
            .sum();
        let (b, form) = if augmented || pair_count > ROWS_MAX_PAIRS {
            Schur::augmented(jac, n_theta, &col_start)?
        } else {
            Schur::rows(jac, n_theta, &row_of, &col_start, &col_entries)?
        };
        let aug = match form {
            BForm::Augmented { ref diag_slot, .. } => vec![0.0; diag_slot.len()],
            BForm::Rows { .. } => Vec::new(),
        };
        let col_idx: Vec<u32> = jac.col_idx.iter().map(|&c| c as u32).collect();
        let u = URows::new(&theta_ptr, &theta_entries, &col_idx);
        let fam = Families::new(&u, &form);
        let jb = JacBlocks::new(jac, &form);
        let stack = MemBuffer::new(llt_factor::cholesky_in_place_scratch::<f64>(
            n_theta,
            Par::Seq,
            Default::default(),
        ));
        let one = b.columns_workspace(1);
        Ok(Schur {
            m,
            n_theta,
            b,
            form,
            row_of,
            col_idx,
            theta_ptr,
            theta_entries,
            u,
            fam,
            jb,
            c_factor: Mat::zeros(n_theta, n_theta),
            c_inv: Mat::zeros(0, 0),
            learnt_p: Vec::new(),
            learnt_q: Vec::new(),
            formed: false,
            kept: Kept::default(),
            generation: 0,
            u_key: None,
            b_key: None,
            from_j: FromJ::default(),
            t: vec![0.0; m],
            t2: vec![0.0; m],
            w: vec![0.0; n_theta],
            one,
            xs: Vec::new(),
            aug,
            aug_half: Vec::new(),
            b_half: Vec::new(),
            stack,
        })
    }

    /// B's row form: the diagonal and every pair of rows sharing a lifted column.
    fn rows(
        jac: &SparseRows,
        n_theta: usize,
        row_of: &[u32],
        col_start: &[usize],
        col_entries: &[u32],
    ) -> Result<(SplitLdl, BForm), LdlError> {
        let n = jac.ncols;
        let m = jac.nrows();
        let mut index = std::collections::HashMap::new();
        let mut entries: Vec<(usize, usize)> = Vec::with_capacity(m);
        for i in 0..m {
            index.insert((i, i), i);
            entries.push((i, i));
        }
        let mut pair_ptr = vec![0usize; n - n_theta + 1];
        let mut pairs_by_entry: Vec<(usize, u32, u32)> = Vec::new();
        for c in 0..n - n_theta {
            let col = &col_entries[col_start[c]..col_start[c + 1]];
            for (a, &p) in col.iter().enumerate() {
                for &q in &col[a..] {
                    let (i, k) = (row_of[p as usize] as usize, row_of[q as usize] as usize);
                    let key = (i.min(k), i.max(k));
                    let next = entries.len();
                    let e = *index.entry(key).or_insert(next);
                    if e == next {
                        entries.push(key);
                    }
                    pairs_by_entry.push((e, p, q));
                }
            }
            pair_ptr[c + 1] = pairs_by_entry.len();
        }
        let (b, slots) = SplitLdl::whole(m, &entries, Kernels::Supernodal)?;
        let pairs = pairs_by_entry
            .into_iter()
            .map(|(e, p, q)| (slots[e] as u32, p, q))
            .collect();
        let diag_slot = slots[..m].to_vec();
        Ok((
            b,
            BForm::Rows {
                diag_slot,
                pair_ptr,
                pairs,
            },
        ))
    }

    /// B's augmented form: the pattern of [[ρI, J_Lᵀ], [J_L, −δI]] without the single-entry
    /// columns (`col_start`: where each lifted column's entries start), the other lifted
    /// columns first in their order, then row i as n_L + i.
    fn augmented(
        jac: &SparseRows,
        n_theta: usize,
        col_start: &[usize],
    ) -> Result<(SplitLdl, BForm), LdlError> {
        let m = jac.nrows();
        // the unknown of every lifted column with more than one entry
        let mut unknown = vec![u32::MAX; jac.ncols - n_theta];
        let mut n_l = 0;
        for (c, u) in unknown.iter_mut().enumerate() {
            if col_start[c + 1] - col_start[c] > 1 {
                *u = n_l as u32;
                n_l += 1;
            }
        }
        let lifted = |p: usize| {
            let c = jac.col_idx[p];
            (c >= n_theta).then(|| unknown[c - n_theta])
        };
        // the rows eliminated in closed form; the others numbered after the columns
        let eliminated: Vec<bool> = (0..m)
            .map(|i| {
                let (mut single, mut multi) = (false, 0);
                for p in jac.row_ptr[i]..jac.row_ptr[i + 1] {
                    match lifted(p) {
                        Some(u32::MAX) => single = true,
                        Some(_) => multi += 1,
                        None => {}
                    }
                }
                single && multi <= ELIMINATE_MAX_COLUMNS
            })
            .collect();
        let dim = n_l + eliminated.iter().filter(|e| !**e).count();
        if dim + m >= ELIMINATED as usize {
            return Err(LdlError::Pattern(format!("{m} rows exceed 32-bit indices")));
        }
        let (mut next_kept, mut next_elim) = (n_l, dim);
        let row_unknown: Vec<u32> = eliminated
            .iter()
            .map(|&e| {
                let slot = if e { &mut next_elim } else { &mut next_kept };
                *slot += 1;
                (*slot - 1) as u32
            })
            .collect();
        drop(eliminated);
        let mut entries: Vec<(usize, usize)> = Vec::with_capacity(dim + jac.col_idx.len());
        entries.extend((0..dim).map(|k| (k, k)));
        let mut entry_slot = vec![THETA; jac.col_idx.len()];
        // entry_slot holds the index into `entries` until the analysis gives the slots
        let mut elim = Box::<Eliminated>::default();
        let mut pair_index: std::collections::HashMap<(u32, u32), u32> =
            std::collections::HashMap::new();
        let mut pair_entries: Vec<(u32, u32, u32)> = Vec::new();
        elim.ptr.push(0);
        elim.pair_ptr.push(0);
        for i in 0..m {
            let range = jac.row_ptr[i]..jac.row_ptr[i + 1];
            if (row_unknown[i] as usize) < dim {
                for p in range {
                    match lifted(p) {
                        Some(u32::MAX) => entry_slot[p] = SINGLE,
                        Some(c) => {
                            entry_slot[p] = entries.len() as u32;
                            entries.push((c as usize, row_unknown[i] as usize));
                        }
                        None => {}
                    }
                }
                continue;
            }
            let first = elim.cols.len();
            for p in range {
                match lifted(p) {
                    Some(u32::MAX) => entry_slot[p] = SINGLE,
                    Some(c) => {
                        entry_slot[p] = ELIMINATED;
                        elim.cols.push((p as u32, c));
                    }
                    None => {}
                }
            }
            for a in first..elim.cols.len() {
                for b in a..elim.cols.len() {
                    let ((_, ca), (_, cb)) = (elim.cols[a], elim.cols[b]);
                    let key = (ca.min(cb), ca.max(cb));
                    let e = if ca == cb {
                        ca
                    } else {
                        *pair_index.entry(key).or_insert_with(|| {
                            entries.push((key.0 as usize, key.1 as usize));
                            (entries.len() - 1) as u32
                        })
                    };
                    pair_entries.push((e, a as u32, b as u32));
                }
            }
            elim.rows.push(i as u32);
            elim.ptr.push(elim.cols.len());
            elim.pair_ptr.push(pair_entries.len());
        }
        drop(pair_index);
        let (b, slots) = SplitLdl::by_blocks(dim, &entries, Kernels::Auto)?;
        for s in entry_slot.iter_mut() {
            if *s < ELIMINATED {
                *s = slots[*s as usize] as u32;
            }
        }
        elim.pairs = pair_entries
            .into_iter()
            .map(|(e, p, q)| (slots[e as usize] as u32, p, q))
            .collect();
        elim.pivot = vec![0.0; elim.rows.len()];
        elim.val = vec![0.0; elim.cols.len()];
        elim.raw = vec![0.0; elim.cols.len()];
        elim.col = elim
            .cols
            .iter()
            .map(|&(p, _)| jac.col_idx[p as usize] as u32)
            .collect();
        let diag_slot = slots[..dim].to_vec();
        let kept_rows = row_unknown
            .iter()
            .enumerate()
            .filter(|&(_, &u)| (u as usize) < dim)
            .map(|(i, &u)| (i as u32, u))
            .collect();
        Ok((
            b,
            BForm::Augmented {
                n_l,
                diag_slot,
                entry_slot,
                row_unknown,
                kept_rows,
                elim,
            },
        ))
    }

    /// Whether a preconditioner is kept.
    pub fn has_c(&self) -> bool {
        self.formed
    }

    /// Drops the kept preconditioner (it served its last system slowly): the next Newton
    /// system forms a new one at its own point, and a checkpoint taken now saves none, so a
    /// resumed run does the same.
    pub fn retire(&mut self) {
        self.formed = false;
    }

    /// Assembles and factors B at `k`.
    fn factor_b(&mut self, k: At<'_>) -> Result<(), LdlError> {
        let key = self.values_key(k);
        let vals = self.b.values_mut();
        vals.iter_mut().for_each(|v| *v = 0.0);
        match &mut self.form {
            BForm::Rows {
                diag_slot,
                pair_ptr,
                pairs,
            } => {
                for i in 0..self.m {
                    vals[diag_slot[i]] = if k.free_y[i] { k.delta } else { 1.0 };
                }
                let inv_rho = 1.0 / k.rho;
                for c in 0..pair_ptr.len() - 1 {
                    if !k.free_s[self.n_theta + c] {
                        continue;
                    }
                    for &(slot, p, q) in &pairs[pair_ptr[c]..pair_ptr[c + 1]] {
                        let (i, r) = (self.row_of[p as usize], self.row_of[q as usize]);
                        if k.free_y[i as usize] && k.free_y[r as usize] {
                            vals[slot as usize] += k.jac[p as usize] * k.jac[q as usize] * inv_rho;
                        }
                    }
                }
            }
            BForm::Augmented {
                n_l,
                diag_slot,
                entry_slot,
                row_unknown,
                kept_rows,
                elim,
            } => {
                let from_j = &mut self.from_j;
                let dim = diag_slot.len();
                if self.b_key != Some(key) {
                    from_j.fill(&FromJInput {
                        entry_slot,
                        row_of: &self.row_of,
                        col_idx: &self.col_idx,
                        jac: k.jac,
                        row_unknown,
                        dim,
                    });
                    for (r, &(q, _)) in elim.raw.iter_mut().zip(&elim.cols) {
                        *r = k.jac[q as usize];
                    }
                    self.b_key = Some(key);
                }
                for c in 0..*n_l {
                    vals[diag_slot[c]] = k.rho;
                }
                // every kept row's pivot −δ (−1 where it is not free), then −J²/ρ for its
                // single-entry columns; the slotted entries
                let pivot = |i: u32| if k.free_y[i as usize] { -k.delta } else { -1.0 };
                for &(i, u) in kept_rows.iter() {
                    vals[diag_slot[u as usize]] = pivot(i);
                }
                let inv_rho = 1.0 / k.rho;
                for &(i, c, j2) in &from_j.lists.single {
                    if k.free_y[i as usize] && k.free_s[c as usize] {
                        vals[diag_slot[row_unknown[i as usize] as usize]] -= j2 * inv_rho;
                    }
                }
                for &(i, c, slot, j) in &from_j.lists.slotted {
                    if k.free_y[i as usize] && k.free_s[c as usize] {
                        vals[slot as usize] = j;
                    }
                }
                // the eliminated rows by halves on two threads: their pivots and J at their
                // free columns, then the pairs J_p J_q/|a_i| that eliminating a free row adds
                // between its columns (the second half's into its own buffer, then added)
                let half = elim.rows.len() / 2;
                let (pa, pb) = elim.pivot.split_at_mut(half);
                let (va, vb) = elim.val.split_at_mut(elim.ptr[half]);
                let split = from_j
                    .lists
                    .single_elim
                    .partition_point(|s| (s.0 as usize) < half);
                let (sa, sb) = from_j.lists.single_elim.split_at(split);
                let rows = ElimRows {
                    elim_rows: &elim.rows,
                    ptr: &elim.ptr,
                    col: &elim.col,
                    raw: &elim.raw,
                    free_y: k.free_y,
                    free_s: k.free_s,
                    delta: k.delta,
                    inv_rho,
                };
                pair(
                    || rows.pivots_and_values(0, pa, va, sa),
                    || rows.pivots_and_values(half, pb, vb, sb),
                );
                // the families' blocks first (their pivots and values are set): each adds its
                // family's sums of the pairs at its first row's slots; then the other rows'
                // pairs one by one, by halves of the rows
                self.fam.find(k, &self.u, elim, self.m);
                let fam = &self.fam;
                let mut by_rows: Vec<std::ops::Range<usize>> = Vec::new();
                for &seg in &fam.segs {
                    match seg {
                        ElimSeg::Block { fam: f, group, .. } => {
                            let sums = &fam.fams[f as usize].pair_sum;
                            for (&slot, s) in fam.first_slots(group).iter().zip(sums) {
                                vals[slot as usize] += s;
                            }
                        }
                        ElimSeg::Rows { e0, e1 } => by_rows.push(e0 as usize..e1 as usize),
                    }
                }
                let mut second = std::mem::take(&mut self.b_half);
                second.resize(vals.len(), 0.0);
                let elim_ref: &Eliminated = elim;
                let part = |within: std::ops::Range<usize>, vals: &mut [f64]| {
                    for r in &by_rows {
                        let rows = r.start.max(within.start)..r.end.min(within.end);
                        if !rows.is_empty() {
                            elim_ref.add_pairs(k.free_y, rows, vals);
                        }
                    }
                };
                pair(
                    || part(0..half, vals),
                    || {
                        second.iter_mut().for_each(|v| *v = 0.0);
                        part(half..elim_ref.rows.len(), &mut second)
                    },
                );
                for (v, s) in vals.iter_mut().zip(&second) {
                    *v += s;
                }
                self.b_half = second;
            }
        }
        if let BForm::Augmented {
            row_unknown, elim, ..
        } = &self.form
        {
            let (pos, at) = (self.b.positions(), self.b.second_part_at());
            self.fam.passes = Passes::new(&self.fam, row_unknown, elim, pos, at);
        }
        self.b.factor()
    }

    /// Forms C = I + Uᵀ B⁻¹ U at the kept point (B factored) and keeps it. The columns of U
    /// go in chunks of [`CHUNK`], spread over up to [`THREADS`] threads; each chunk is computed
    /// by one thread in a fixed order, so C does not depend on the thread count.
    fn form_c(&mut self, k: At<'_>) -> Result<(), LdlError> {
        let c = self.c_matrix(k, BASIS_MAX_SHARE);
        self.factor_c(c)
    }

    /// C = I + Uᵀ B⁻¹ U at the kept point: its direct part (the eliminated rows' −u uᵀ/a_i,
    /// [`Schur::c_direct`]) plus Wᵀ K⁻¹ W, W the columns of U pushed onto the factored
    /// matrix's unknowns and K that matrix. The θ columns of the families' blocks take their
    /// solves through a [`CBasis`] where it has at most `basis_share` times as many vectors
    /// as they are columns; the others by chunks of their own columns.
    fn c_matrix(&self, k: At<'_>, basis_share: f64) -> Mat<f64> {
        let nt = self.n_theta;
        let chunk = match self.form {
            BForm::Rows { .. } => CHUNK,
            BForm::Augmented { ref diag_slot, .. } => {
                (CHUNK_VALUES / diag_slot.len().max(1)).clamp(1, CHUNK)
            }
        };
        let basis = self
            .c_basis(k)
            .filter(|b| b.n as f64 <= basis_share * b.cols.len() as f64);
        let in_basis = |c: usize| basis.as_ref().is_some_and(|b| b.serves(c));
        // the columns by their own solves, in ranges of at most `chunk` columns (from each
        // such column, to the last such within reach), then the basis's vectors
        let mut chunks = Vec::new();
        let mut j = 0;
        while j < nt {
            if in_basis(j) || !k.free_s[j] {
                j += 1;
                continue;
            }
            let reach = (j + chunk).min(nt);
            let j1 = (j..reach).rfind(|&c| !in_basis(c)).map_or(j + 1, |c| c + 1);
            chunks.push(Chunk::Theta(j, j1));
            j = j1;
        }
        if let Some(b) = &basis {
            chunks.extend(
                (0..b.n)
                    .step_by(chunk)
                    .map(|b0| Chunk::Basis(b0, (b0 + chunk).min(b.n))),
            );
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, THREADS)
            .min(chunks.len().max(1));
        let groups = self.rest_groups(k);
        let this = self;
        let basis_ref = basis.as_ref();
        let blocks: Vec<(Chunk, Vec<f64>)> = if threads <= 1 {
            this.c_columns(k, &chunks, &groups, basis_ref)
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let mine: Vec<Chunk> =
                            chunks.iter().copied().skip(t).step_by(threads).collect();
                        let groups = &groups;
                        scope.spawn(move || this.c_columns(k, &mine, groups, basis_ref))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        // Wᵀ K⁻¹ W by rows (it is symmetric): c[a * nt + b], computed for the rows a at or
        // below `first[b]` (the first column of b's chunk; 0 for the basis's columns)
        let mut c = vec![0.0; nt * nt];
        let mut first = vec![0; nt];
        let mut by_basis: Vec<(usize, Vec<f64>)> = Vec::new();
        for (chunk, block) in blocks {
            match chunk {
                Chunk::Theta(j0, j1) => {
                    let w = j1 - j0;
                    first[j0..j1].iter_mut().for_each(|f| *f = j0);
                    for row in j0..nt {
                        c[row * nt + j0..row * nt + j1]
                            .copy_from_slice(&block[row * w..(row + 1) * w]);
                    }
                }
                Chunk::Basis(b0, _) => by_basis.push((b0, block)),
            }
        }
        if let Some(b) = &basis {
            // the basis's columns of Wᵀ K⁻¹ (all rows, nt × n), times the coefficients
            let ns = b.cols.len();
            let mut wb = Mat::<f64>::zeros(nt, b.n);
            for (b0, block) in &by_basis {
                let w = block.len() / nt.max(1);
                for row in 0..nt {
                    for j in 0..w {
                        wb[(row, b0 + j)] = block[row * w + j];
                    }
                }
            }
            let coef = MatRef::from_row_major_slice(&b.coef, b.n, ns);
            let mut prod = Mat::<f64>::zeros(nt, ns);
            matmul(
                prod.as_mut(),
                Accum::Replace,
                wb.as_ref(),
                coef,
                1.0,
                Par::Seq,
            );
            for (s, &col) in b.cols.iter().enumerate() {
                for row in 0..nt {
                    c[row * nt + col as usize] = prod[(row, s)];
                }
            }
        }
        // symmetrize (where both triangles are computed they agree up to rounding), add the
        // direct part and I
        let direct = self.c_direct(k);
        Mat::from_fn(nt, nt, |a, b| {
            let v = match (a >= first[b], b >= first[a]) {
                (true, true) => 0.5 * (c[a * nt + b] + c[b * nt + a]),
                (true, false) => c[a * nt + b],
                _ => c[b * nt + a],
            };
            v + direct[a * nt + b] + if a == b { 1.0 } else { 0.0 }
        })
    }

    /// In the augmented form: the dimension of the factored matrix, each row's unknown (the
    /// dimension plus e for the e-th eliminated row) and the eliminated rows.
    fn eliminated(&self) -> Option<(usize, &[u32], &Eliminated)> {
        match &self.form {
            BForm::Augmented {
                diag_slot,
                row_unknown,
                elim,
                ..
            } => Some((diag_slot.len(), row_unknown, elim)),
            BForm::Rows { .. } => None,
        }
    }

    /// The direct part of Uᵀ B⁻¹ U (n_θ × n_θ by rows): an eliminated row's unknown is
    /// d_i = (−u_i − Σ J x)/a_i, whose first term adds −u_i u_iᵀ/a_i without any solve (in
    /// the families' blocks G/π_k at each row's θ columns).
    fn c_direct(&self, k: At<'_>) -> Vec<f64> {
        let nt = self.n_theta;
        let mut out = vec![0.0; nt * nt];
        let Some((dim, row_unknown, elim)) = self.eliminated() else {
            return out;
        };
        for f in &self.fam.fams {
            let sh = Families::shape(&self.u, elim, f.group as usize, f.e0 as usize);
            for kk in 0..sh.rows {
                let inv = 1.0 / sh.pivot[kk];
                for b in 0..sh.e {
                    let row = sh.theta(kk, b);
                    if !k.free_s[row] {
                        continue;
                    }
                    for c in 0..sh.e {
                        let col = sh.theta(kk, c);
                        if k.free_s[col] {
                            out[row * nt + col] -= f.g2[b * sh.e + c] * inv;
                        }
                    }
                }
            }
        }
        let scale = 1.0 / k.rho.sqrt();
        for i in self.fam.rest.iter().flat_map(|r| r.rows()) {
            let r = row_unknown[i] as usize;
            if !k.free_y[i] || r < dim {
                continue;
            }
            let inv = 1.0 / elim.pivot[r - dim];
            let thetas = &self.theta_entries[self.theta_ptr[i]..self.theta_ptr[i + 1]];
            for &p in thetas {
                let row = self.col_idx[p as usize] as usize;
                if !k.free_s[row] {
                    continue;
                }
                let up = k.jac[p as usize] * scale * inv;
                for &q in thetas {
                    let col = self.col_idx[q as usize] as usize;
                    if k.free_s[col] {
                        out[row * nt + col] -= up * k.jac[q as usize] * scale;
                    }
                }
            }
        }
        out
    }

    /// The [`CBasis`] of the families' θ columns at the kept point (the augmented form with
    /// families only).
    fn c_basis(&self, k: At<'_>) -> Option<CBasis> {
        let nt = self.n_theta;
        let (dim, row_unknown, elim) = self.eliminated()?;
        let fams = &self.fam.fams;
        if fams.is_empty() {
            return None;
        }
        let mut index = vec![NOT_IN_BASIS; nt];
        let mut cols = Vec::new();
        for f in fams {
            let sh = Families::shape(&self.u, elim, f.group as usize, f.e0 as usize);
            for kk in 0..sh.rows {
                for b in 0..sh.e {
                    let col = sh.theta(kk, b);
                    if k.free_s[col] && index[col] == NOT_IN_BASIS {
                        index[col] = 0;
                        cols.push(col as u32);
                    }
                }
            }
        }
        cols.sort_unstable();
        for (s, &c) in cols.iter().enumerate() {
            index[c as usize] = s as u32;
        }
        let mut fam0 = Vec::with_capacity(fams.len());
        let mut n = 0;
        for f in fams {
            fam0.push(n);
            n += f.n_c * f.e;
        }
        // the unknowns the other rows put these columns' right-hand sides on (an unknown row
        // its own, an eliminated one its lifted columns), with the values there
        let mut unit_of = HashMap::new();
        let mut units = Vec::new();
        let mut entries: Vec<(usize, usize, f64)> = Vec::new();
        let scale = 1.0 / k.rho.sqrt();
        for i in self.fam.rest.iter().flat_map(|r| r.rows()) {
            if !k.free_y[i] {
                continue;
            }
            for &p in &self.theta_entries[self.theta_ptr[i]..self.theta_ptr[i + 1]] {
                let col = self.col_idx[p as usize] as usize;
                if index[col] == NOT_IN_BASIS {
                    continue;
                }
                let s = index[col] as usize;
                let u = k.jac[p as usize] * scale;
                let mut unit = |x: u32| {
                    *unit_of.entry(x).or_insert_with(|| {
                        units.push(x);
                        units.len() - 1
                    })
                };
                let r = row_unknown[i] as usize;
                if r < dim {
                    entries.push((unit(r as u32), s, -u));
                } else {
                    let e = r - dim;
                    let g = u / elim.pivot[e];
                    let range = elim.ptr[e]..elim.ptr[e + 1];
                    // a lifted column not free (J 0 there) needs no vector
                    for (&(_, c), &v) in elim.cols[range.clone()].iter().zip(&elim.val[range]) {
                        if v != 0.0 {
                            entries.push((unit(c), s, v * g));
                        }
                    }
                }
            }
        }
        let n_fam = n;
        n += units.len();
        let ns = cols.len();
        let mut coef = vec![0.0; n * ns];
        for (f, &b0) in fams.iter().zip(&fam0) {
            let sh = Families::shape(&self.u, elim, f.group as usize, f.e0 as usize);
            for kk in 0..sh.rows {
                for b in 0..sh.e {
                    let col = sh.theta(kk, b);
                    if !k.free_s[col] {
                        continue;
                    }
                    let s = index[col] as usize;
                    for j in 0..sh.n_c {
                        coef[(b0 + j * sh.e + b) * ns + s] += sh.v[kk * sh.n_c + j] / sh.pivot[kk];
                    }
                }
            }
        }
        for (t, s, v) in entries {
            coef[(n_fam + t) * ns + s] += v;
        }
        Some(CBasis {
            cols,
            index,
            fam0,
            units,
            n_fam,
            n,
            coef,
        })
    }

    /// Wᵀ K⁻¹ W's columns for each given chunk, as (chunk, block by rows (n_θ × width)): for
    /// a chunk of θ columns j0..j1 the rows from j0 on (C is symmetric: the rows above are the
    /// transposes of earlier chunks' entries), the others zero; for a chunk of the basis's
    /// vectors every row. In the augmented form the blocks of [`Families`] in closed form (as
    /// in [`Schur::c_product`], for w columns at once), the other rows one by one.
    fn c_columns(
        &self,
        k: At<'_>,
        chunks: &[Chunk],
        groups: &RestGroups,
        basis: Option<&CBasis>,
    ) -> Vec<(Chunk, Vec<f64>)> {
        let (m, nt) = (self.m, self.n_theta);
        let scale = 1.0 / k.rho.sqrt();
        // the augmented form solves for (x, −B⁻¹u) with the right-hand side (0, u), its
        // eliminated rows in closed form (see `Eliminated`)
        let (dim, elim) = match self.eliminated() {
            None => (m, None),
            Some((dim, row_unknown, elim)) => (dim, Some((row_unknown, elim))),
        };
        // the rows one by one: all of them, or those outside the families' blocks
        let rest: Vec<u32> = match elim {
            None => (0..m as u32).collect(),
            Some(_) => self
                .fam
                .rest
                .iter()
                .flat_map(|r| r.rows().map(|i| i as u32))
                .collect(),
        };
        let width = chunks.iter().map(|c| c.width()).max().unwrap_or(1);
        let mut workspace = self.b.columns_workspace(width);
        // the unknowns' rows in the factors' order, where the right-hand sides are built and
        // solved (no gathering into it and back)
        let pos = self.b.positions();
        // the right-hand sides, then the solved columns, by rows (row c's w numbers together):
        // the blocks add to their columns' rows, and the products below read rows
        let mut rows = vec![0.0; dim * width];
        let mut d = vec![0.0; width];
        // per family: Q, then X, for the chunk's columns (columns × positions × w)
        let mut qx: Vec<Vec<f64>> = Vec::new();
        // the dense products' blocks of the solved columns, and their product with U's
        let nc_max = groups.dense.iter().map(|g| g.cols.len()).max().unwrap_or(0);
        let rows_max = groups.dense.iter().map(|g| g.rows.len()).max().unwrap_or(0);
        let rows_max = rows_max.min(groups.block_rows);
        let mut xb = Mat::<f64>::zeros(rows_max, width);
        let mut prod = Mat::<f64>::zeros(nc_max, width);
        let mut out = Vec::with_capacity(chunks.len());
        for &chunk in chunks {
            let w = chunk.width();
            // the first row computed: C's rows above a chunk of θ columns are the transposes of
            // earlier chunks' entries
            let j0 = match chunk {
                Chunk::Theta(j0, _) => j0,
                Chunk::Basis(..) => 0,
            };
            let in_chunk = |c: usize| match chunk {
                Chunk::Theta(j0, j1) => {
                    c >= j0 && c < j1 && k.free_s[c] && !basis.is_some_and(|b| b.serves(c))
                }
                Chunk::Basis(..) => false,
            };
            let x = &mut rows[..dim * w];
            x.iter_mut().for_each(|v| *v = 0.0);
            qx.clear();
            if let Some((_, el)) = elim {
                for f in &self.fam.fams {
                    let sh = Families::shape(&self.u, el, f.group as usize, f.e0 as usize);
                    qx.push(vec![0.0; sh.n_c * sh.e * w]);
                }
            }
            match (chunk, elim, basis) {
                (Chunk::Basis(b0, b1), Some(_), Some(basis)) => {
                    // the families' vectors: g at each block's lifted column j, for position
                    // b; then the unit vectors
                    for blk in &self.fam.blocks {
                        let f = &self.fam.fams[blk.fam as usize];
                        let at = basis.fam0[blk.fam as usize];
                        let g = self.fam.g(blk);
                        let bc = &self.fam.block_cols[blk.cols as usize..][..f.n_c];
                        for (j, &c) in bc.iter().enumerate() {
                            for (b, gb) in g.iter().enumerate() {
                                let v = at + j * f.e + b;
                                if v >= b0 && v < b1 {
                                    x[pos[c as usize] as usize * w + v - b0] += gb;
                                }
                            }
                        }
                    }
                    for (t, &x_t) in basis.units.iter().enumerate() {
                        let v = basis.n_fam + t;
                        if v >= b0 && v < b1 {
                            x[pos[x_t as usize] as usize * w + v - b0] = 1.0;
                        }
                    }
                }
                (Chunk::Basis(..), ..) => {}
                (Chunk::Theta(..), ..) => {
                    if let (Some((_, el)), None) = (elim, basis) {
                        for (f, q) in self.fam.fams.iter().zip(qx.iter_mut()) {
                            let sh = Families::shape(&self.u, el, f.group as usize, f.e0 as usize);
                            for kk in 0..sh.rows {
                                for b in 0..sh.e {
                                    let col = sh.theta(kk, b);
                                    if !in_chunk(col) {
                                        continue;
                                    }
                                    for j in 0..sh.n_c {
                                        q[(j * sh.e + b) * w + col - j0] +=
                                            sh.v[kk * sh.n_c + j] / sh.pivot[kk];
                                    }
                                }
                            }
                        }
                        for blk in &self.fam.blocks {
                            let (nc, at) = (self.fam.fams[blk.fam as usize].n_c, blk.cols as usize);
                            let q = &qx[blk.fam as usize];
                            let g = self.fam.g(blk);
                            let e = g.len();
                            for (j, &c) in self.fam.block_cols[at..at + nc].iter().enumerate() {
                                let r = pos[c as usize] as usize;
                                let xc = &mut x[r * w..(r + 1) * w];
                                for (b, gb) in g.iter().enumerate() {
                                    let qjb = &q[(j * e + b) * w..(j * e + b + 1) * w];
                                    for (xv, qv) in xc.iter_mut().zip(qjb) {
                                        *xv += qv * gb;
                                    }
                                }
                            }
                        }
                    }
                    for &i in &rest {
                        let i = i as usize;
                        if !k.free_y[i] {
                            continue;
                        }
                        for &p in &self.theta_entries[self.theta_ptr[i]..self.theta_ptr[i + 1]] {
                            let col = self.col_idx[p as usize] as usize;
                            if !in_chunk(col) {
                                continue;
                            }
                            let u = k.jac[p as usize] * scale;
                            let j = col - j0;
                            match elim {
                                None => x[pos[i] as usize * w + j] = u,
                                Some((row_unknown, _)) if (row_unknown[i] as usize) < dim => {
                                    x[pos[row_unknown[i] as usize] as usize * w + j] = -u;
                                }
                                Some((row_unknown, el)) => {
                                    let e = row_unknown[i] as usize - dim;
                                    let g = u / el.pivot[e];
                                    let range = el.ptr[e]..el.ptr[e + 1];
                                    for (&(_, c), v) in
                                        el.cols[range.clone()].iter().zip(&el.val[range])
                                    {
                                        x[pos[c as usize] as usize * w + j] += v * g;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // by rows, each product below runs over contiguous memory (column by column, the
            // transpose to rows took half of the formation's time on the TIMIT shape, and a
            // tiled one a sixth)
            self.b.solve_columns_in_order(x, w, &mut workspace);
            let rows = &rows[..dim * w];
            let mut block = vec![0.0; nt * w];
            if let Some((_, el)) = elim {
                qx.iter_mut()
                    .for_each(|x| x.iter_mut().for_each(|v| *v = 0.0));
                for blk in &self.fam.blocks {
                    let (nc, at) = (self.fam.fams[blk.fam as usize].n_c, blk.cols as usize);
                    let xf = &mut qx[blk.fam as usize];
                    let g = self.fam.g(blk);
                    let e = g.len();
                    for (j, &c) in self.fam.block_cols[at..at + nc].iter().enumerate() {
                        let r = pos[c as usize] as usize;
                        let xc = &rows[r * w..(r + 1) * w];
                        for (b, gb) in g.iter().enumerate() {
                            let o = &mut xf[(j * e + b) * w..(j * e + b + 1) * w];
                            for (o, xv) in o.iter_mut().zip(xc) {
                                *o += xv * gb;
                            }
                        }
                    }
                }
                // Uᵀ of the family's rows' unknowns through the solve: −Xᵀ V_kᵀ/π_k at row k's
                // θ columns (their direct part −G P_kᵀ/π_k is in `c_direct`)
                for (f, xf) in self.fam.fams.iter().zip(&qx) {
                    let sh = Families::shape(&self.u, el, f.group as usize, f.e0 as usize);
                    for kk in 0..sh.rows {
                        let inv = 1.0 / sh.pivot[kk];
                        for b in 0..sh.e {
                            let row = sh.theta(kk, b);
                            if row < j0 || !k.free_s[row] {
                                continue;
                            }
                            let o = &mut block[row * w..(row + 1) * w];
                            for j in 0..sh.n_c {
                                let v = sh.v[kk * sh.n_c + j] * inv;
                                let xjb = &xf[(j * sh.e + b) * w..(j * sh.e + b + 1) * w];
                                for (o, xv) in o.iter_mut().zip(xjb) {
                                    *o -= v * xv;
                                }
                            }
                        }
                    }
                }
            }
            for &i in &groups.lone {
                let i = i as usize;
                // a row whose θ columns all lie above the chunk adds only to the rows skipped
                let thetas = &self.theta_entries[self.theta_ptr[i]..self.theta_ptr[i + 1]];
                let below = thetas
                    .iter()
                    .any(|&p| self.col_idx[p as usize] as usize >= j0);
                if !k.free_y[i] || !below {
                    continue;
                }
                let d = &mut d[..w];
                self.rest_x(i, (rows, pos), w, dim, d);
                for &p in thetas {
                    let row = self.col_idx[p as usize] as usize;
                    // the rows above the chunk are the transposes of earlier chunks' entries
                    if row < j0 || !k.free_s[row] {
                        continue;
                    }
                    let u = k.jac[p as usize] * scale;
                    for (o, xj) in block[row * w..(row + 1) * w].iter_mut().zip(d.iter()) {
                        *o += u * xj;
                    }
                }
            }
            // the rows of a group read the same θ columns: U_gᵀ X_g as dense products by
            // blocks of rows
            for g in &groups.dense {
                if g.cols.iter().all(|&c| (c as usize) < j0) {
                    continue;
                }
                // only the group's columns from j0 on (where they are in increasing order):
                // C's rows above the chunk are not computed here
                let c0 = if g.cols.windows(2).all(|p| p[0] < p[1]) {
                    g.cols.partition_point(|&c| (c as usize) < j0)
                } else {
                    0
                };
                let nc = g.cols.len() - c0;
                let mut prod = prod.as_mut().submatrix_mut(0, 0, nc, w);
                prod.fill(0.0);
                for (b, blk) in g.rows.chunks(groups.block_rows).enumerate() {
                    // every entry of xb is written
                    let ub = g.u.submatrix(b * groups.block_rows, c0, blk.len(), nc);
                    let mut xb = xb.as_mut().submatrix_mut(0, 0, blk.len(), w);
                    for (r, &i) in blk.iter().enumerate() {
                        let i = i as usize;
                        let d = &mut d[..w];
                        self.rest_x(i, (rows, pos), w, dim, d);
                        for (j, v) in d.iter().enumerate() {
                            xb[(r, j)] = *v;
                        }
                    }
                    matmul(
                        prod.rb_mut(),
                        Accum::Add,
                        ub.transpose(),
                        xb.rb(),
                        1.0,
                        Par::Seq,
                    );
                }
                for (c, &col) in g.cols[c0..].iter().enumerate() {
                    let col = col as usize;
                    if col < j0 || !k.free_s[col] {
                        continue;
                    }
                    for (j, o) in block[col * w..(col + 1) * w].iter_mut().enumerate() {
                        *o += prod[(c, j)];
                    }
                }
            }
            out.push((chunk, block));
        }
        out
    }

    /// Row i's solved unknown for the chunk's w columns through the solve, from the solved
    /// columns by rows (`rows`, `dim` unknowns, unknown v's at row `pos[v]`): its own unknown where it is one, else, for an
    /// eliminated row, −Σ J_{i,c} x_c/a_i (the direct part of d_i = (−u_i − Σ J x)/a_i is in
    /// [`Schur::c_direct`]).
    fn rest_x(&self, i: usize, (rows, pos): (&[f64], &[u32]), w: usize, dim: usize, d: &mut [f64]) {
        match &self.form {
            BForm::Augmented {
                row_unknown, elim, ..
            } if row_unknown[i] as usize >= dim => {
                let e = row_unknown[i] as usize - dim;
                d.iter_mut().for_each(|v| *v = 0.0);
                let range = elim.ptr[e]..elim.ptr[e + 1];
                for (&(_, c), &jq) in elim.cols[range.clone()].iter().zip(&elim.val[range]) {
                    if jq != 0.0 {
                        let r = pos[c as usize] as usize;
                        let xc = &rows[r * w..(r + 1) * w];
                        for (o, xv) in d.iter_mut().zip(xc) {
                            *o -= jq * xv;
                        }
                    }
                }
                let inv = 1.0 / elim.pivot[e];
                d.iter_mut().for_each(|v| *v *= inv);
            }
            BForm::Augmented { row_unknown, .. } => {
                let r = pos[row_unknown[i] as usize] as usize;
                d.copy_from_slice(&rows[r * w..(r + 1) * w]);
            }
            BForm::Rows { .. } => {
                let r = pos[i] as usize;
                d.copy_from_slice(&rows[r * w..(r + 1) * w]);
            }
        }
    }

    /// The free rows the formation of C takes one by one (outside the families' blocks), in
    /// groups of at least [`GROUP_MIN_ROWS`] rows that read the same θ columns (on the TIMIT
    /// shape the hidden rows: one group of 6,174 rows of 132 columns per hidden unit), and the
    /// others alone. The row form takes every row alone.
    fn rest_groups(&self, k: At<'_>) -> RestGroups {
        let mut groups = RestGroups {
            block_rows: GROUP_BLOCK_ROWS,
            ..RestGroups::default()
        };
        let BForm::Augmented { .. } = self.form else {
            groups.lone = (0..self.m as u32).collect();
            return groups;
        };
        let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
        // rows at the same place of groups with the same positions read the same columns
        // ([`URows`]): their columns are looked up once (per row, hashing them was 4% of the
        // TIMIT shape's k = 100..110)
        let mut by_place: HashMap<(u32, u32), Option<usize>> = HashMap::new();
        let mut found: Vec<RestGroup> = Vec::new();
        for run in &self.fam.rest {
            for i in run.rows() {
                if !k.free_y[i] {
                    continue;
                }
                let place = (run.pos, run.shift + (i as u32 - run.row0));
                let g = *by_place.entry(place).or_insert_with(|| {
                    let cols: Vec<u32> = self.theta_entries
                        [self.theta_ptr[i]..self.theta_ptr[i + 1]]
                        .iter()
                        .map(|&p| self.col_idx[p as usize])
                        .collect();
                    if cols.is_empty() {
                        return None;
                    }
                    Some(*index.entry(cols).or_insert_with_key(|cols| {
                        found.push(RestGroup {
                            cols: cols.clone(),
                            rows: Vec::new(),
                            u: Mat::zeros(0, 0),
                        });
                        found.len() - 1
                    }))
                });
                if let Some(g) = g {
                    found[g].rows.push(i as u32);
                }
            }
        }
        let scale = 1.0 / k.rho.sqrt();
        for mut g in found {
            if g.rows.len() >= GROUP_MIN_ROWS {
                // row by row: each row's entries are together in J (by columns, the reads
                // jumped between rows: 2.6% of the TIMIT shape's k = 100..110)
                let mut u = Mat::<f64>::zeros(g.rows.len(), g.cols.len());
                for (r, &i) in g.rows.iter().enumerate() {
                    let entries = &self.theta_entries[self.theta_ptr[i as usize]..];
                    for (c, &p) in entries[..g.cols.len()].iter().enumerate() {
                        u[(r, c)] = k.jac[p as usize] * scale;
                    }
                }
                g.u = u;
                groups.dense.push(g);
            } else {
                groups.lone.extend(g.rows);
            }
        }
        groups.lone.sort_unstable();
        groups
    }

    /// Forms B and C at the given point and keeps them, with the point, as the preconditioner.
    pub fn reform(&mut self, kept: Kept) -> Result<(), LdlError> {
        self.formed = false;
        self.generation += 1;
        // the old point's copy of J goes first
        self.kept = Kept::default();
        self.compact_u(kept.at());
        self.factor_b(kept.at())?;
        self.form_c(kept.at())?;
        // where B is factored at every system the point is not needed again (a checkpoint
        // saves H itself: [`Schur::saved`])
        if !self.exact_b() {
            self.kept = kept;
        }
        Ok(())
    }

    /// [`Schur::reform`] right after [`Schur::factor_at`] at the same point `at` (where B is
    /// factored at every Newton system): C is formed from that factorization. Nothing of the
    /// point is kept: a checkpoint saves H itself ([`Schur::saved`]), where a copy of J's
    /// values per formation (52 MB on the TIMIT shape) was 5% of its k = 100..110.
    pub fn reform_factored(&mut self, at: At<'_>) -> Result<(), LdlError> {
        self.formed = false;
        self.form_c(at)
    }

    /// Whether every Newton system factors B at its own point and runs the conjugate
    /// gradients on C ([`Schur::factor_at`], [`Schur::solve_through_c`]) rather than on the
    /// whole system with the kept B and C ([`Schur::apply`]): the augmented form, whose B
    /// (the rows not eliminated and the lifted columns with more than one entry) is small.
    pub fn exact_b(&self) -> bool {
        matches!(self.form, BForm::Augmented { .. })
    }

    /// Factors B and compacts U at `at` for [`Schur::solve_through_c`]; the kept C stays.
    pub fn factor_at(&mut self, at: At<'_>) -> Result<(), LdlError> {
        self.compact_u(at);
        self.factor_b(at)
    }

    /// Solves M d = b on the free rows `free` (b zero outside them; d is set to zero there),
    /// with B and U at the point of the last [`Schur::factor_at`]: by the Woodbury identity
    /// d = B⁻¹(b − U w), where C w = Uᵀ B⁻¹ b is solved by conjugate gradients on the n_θ
    /// unknowns w, preconditioned by the kept C̃. The residual of M d = b is U times C's
    /// residual, so they stop when ‖U (Uᵀ B⁻¹ b − C w)‖ ≤ `target`. Returns whether they
    /// reached it within `max` iterations, and the iterations.
    pub fn solve_through_c(
        &mut self,
        free: &[bool],
        b: &[f64],
        d: &mut [f64],
        target: f64,
        max: usize,
    ) -> (bool, usize) {
        let nt = self.n_theta;
        each_half(&mut self.t[..self.m], |first, t| {
            for (k, v) in t.iter_mut().enumerate() {
                let i = first + k;
                *v = if free[i] { b[i] } else { 0.0 };
            }
        });
        self.solve_b(true);
        // r = g − C w with w = 0: g = Uᵀ B⁻¹ b
        let mut r = vec![0.0; nt];
        self.u_tmul(true, &mut r);
        let mut w = vec![0.0; nt];
        let mut z = vec![0.0; nt];
        let mut q = vec![0.0; nt];
        let u_g = self.u_norm(&r);
        let mut ratio = u_g / dot(&r, &r).sqrt().max(f64::MIN_POSITIVE);
        let mut converged = u_g <= target;
        let mut iterations = 0;
        self.learnt_p.clear();
        self.learnt_q.clear();
        if !converged {
            self.c_inv_mul(&r, &mut z);
            let mut p = z.clone();
            let mut rz = dot(&r, &z);
            while iterations < max {
                iterations += 1;
                // q = C p = p + Uᵀ B⁻¹ U p
                self.c_product(&p, &mut q);
                for (qi, pi) in q.iter_mut().zip(&p) {
                    *qi += pi;
                }
                let pq = dot(&p, &q);
                if !(pq > 0.0 && rz > 0.0) {
                    break;
                }
                let scale = pq.sqrt().recip();
                self.learnt_p.extend(p.iter().map(|v| v * scale));
                self.learnt_q.extend(q.iter().map(|v| v * scale));
                let alpha = rz / pq;
                for k in 0..nt {
                    w[k] += alpha * p[k];
                    r[k] -= alpha * q[k];
                }
                // ‖U r‖ costs a pass over U: estimated from ‖r‖ by the ratio of the last one
                // measured, and measured when the estimate is near the target
                let r_norm = dot(&r, &r).sqrt();
                if ratio * r_norm <= 2.0 * target {
                    let u_r = self.u_norm(&r);
                    ratio = u_r / r_norm.max(f64::MIN_POSITIVE);
                    if u_r <= target {
                        converged = true;
                        break;
                    }
                }
                self.c_inv_mul(&r, &mut z);
                let rz_next = dot(&r, &z);
                let beta = rz_next / rz;
                rz = rz_next;
                for k in 0..nt {
                    p[k] = z[k] + beta * p[k];
                }
            }
        }
        if converged {
            self.learn();
        }
        // d = B⁻¹ b − B⁻¹ U w
        self.u_mul(&w);
        self.solve_b(false);
        let (t, t2) = (&self.t, &self.t2);
        each_half(&mut d[..self.m], |first, d| {
            for (k, v) in d.iter_mut().enumerate() {
                let i = first + k;
                *v = if free[i] { t[i] - t2[i] } else { 0.0 };
            }
        });
        (converged, iterations)
    }

    /// out = Uᵀ B⁻¹ U p with B and U at the last factorization: in the augmented form the
    /// blocks of [`Families`] in closed form, the other rows one by one.
    fn c_product(&mut self, p: &[f64], out: &mut [f64]) {
        let BForm::Augmented {
            diag_slot,
            row_unknown,
            elim,
            ..
        } = &self.form
        else {
            self.u_mul(p);
            self.solve_b(false);
            self.u_tmul(false, out);
            return;
        };
        let (u, fam, dim) = (&self.u, &self.fam, diag_slot.len());
        let pm = u.masked(p);
        // the right-hand side built and solved in the factors' order: unknown v at pos[v] (no
        // gathering into the parts' orders and back); a part's from its row `off` there
        let pos = self.b.positions();
        let place = |v: u32, off: usize| pos[v as usize] as usize - off;
        // each family's Q = Σ_k V_kᵀ P_k/π_k (columns × positions), then Q g onto each
        // block's lifted columns
        let mut qx: Vec<Vec<f64>> = Vec::with_capacity(fam.fams.len());
        for f in &fam.fams {
            let sh = Families::shape(u, elim, f.group as usize, f.e0 as usize);
            let mut q = vec![0.0; sh.n_c * sh.e];
            for k in 0..sh.rows {
                let vk = &sh.v[k * sh.n_c..(k + 1) * sh.n_c];
                for b in 0..sh.e {
                    let pv = pm[sh.theta(k, b)] / sh.pivot[k];
                    for (j, v) in vk.iter().enumerate() {
                        q[j * sh.e + b] += v * pv;
                    }
                }
            }
            qx.push(q);
        }
        // the other rows: U p on their runs, by halves
        let (lo, hi) = fam.rest.split_at(fam.rest_half);
        let mid = fam.rest_mid;
        let (ta, tb) = self.t2.split_at_mut(mid);
        pair(
            || u.mul_runs(lo, &pm, ta, 0),
            || u.mul_runs(hi, &pm, tb, mid),
        );
        let passes = &fam.passes;
        // a part's right-hand side: its blocks' Q g, then its other rows (values of U p)
        let qs = &qx;
        let assemble = |aug: &mut [f64],
                        off: usize,
                        blocks: &[std::ops::Range<usize>],
                        rows: &[(usize, &mut [f64])]| {
            aug.iter_mut().for_each(|v| *v = 0.0);
            for blk in blocks.iter().flat_map(|r| &fam.blocks[r.clone()]) {
                let (fi, at) = (blk.fam as usize, blk.cols as usize);
                let (q, e, n_c) = (&qs[fi], fam.fams[fi].e, fam.fams[fi].n_c);
                let g = fam.g(blk);
                for (j, &c) in passes.places[at..at + n_c].iter().enumerate() {
                    aug[c as usize - off] += dot(&q[j * e..(j + 1) * e], g);
                }
            }
            for (first, t) in rows {
                for (k, &ti) in t.iter().enumerate() {
                    let r = row_unknown[first + k] as usize;
                    if r < dim {
                        aug[place(r as u32, off)] = -ti;
                    } else if ti != 0.0 {
                        let e = r - dim;
                        let g = ti / elim.pivot[e];
                        let range = elim.ptr[e]..elim.ptr[e + 1];
                        for (&(_, c), v) in elim.cols[range.clone()].iter().zip(&elim.val[range]) {
                            aug[place(c, off)] += v * g;
                        }
                    }
                }
            }
        };
        // after the solve, the part's other rows' unknowns
        let unknowns = |aug: &[f64], off: usize, rows: &mut [(usize, &mut [f64])]| {
            for (first, t) in rows {
                for (k, ti) in t.iter_mut().enumerate() {
                    let r = row_unknown[*first + k] as usize;
                    if r < dim {
                        *ti = aug[place(r as u32, off)];
                    } else {
                        let e = r - dim;
                        let range = elim.ptr[e]..elim.ptr[e + 1];
                        let mut v = -*ti;
                        for (&(_, c), j) in elim.cols[range.clone()].iter().zip(&elim.val[range]) {
                            v -= j * aug[place(c, off)];
                        }
                        *ti = v / elim.pivot[e];
                    }
                }
            }
        };
        let [mut rows_a, mut rows_b] = chunks_by_part(&mut self.t2, &passes.rows);
        // the unknowns at the blocks' lifted columns gathered by their part's thread, for the
        // pass in order below (read where the other thread wrote them, each was a transfer
        // between the cores' caches)
        self.xs.resize(fam.block_cols.len(), 0.0);
        let [mut xs_a, mut xs_b] = chunks_by_part(&mut self.xs, &passes.cols);
        let gather = |aug: &[f64], off: usize, xs: &mut [(usize, &mut [f64])]| {
            for (first, x) in xs {
                let places = &passes.places[*first..*first + x.len()];
                for (v, &c) in x.iter_mut().zip(places) {
                    *v = aug[c as usize - off];
                }
            }
        };
        let aug = &mut self.aug;
        match self.b.in_order_parts(&mut self.one) {
            InOrder::Two([mut sa, mut sb]) if passes.two => {
                let (aug_a, aug_b) = aug.split_at_mut(passes.at);
                let [blocks_a, blocks_b] = &passes.blocks;
                pair(
                    || {
                        assemble(aug_a, 0, blocks_a, &rows_a);
                        sa.solve_one(aug_a);
                        unknowns(aug_a, 0, &mut rows_a);
                        gather(aug_a, 0, &mut xs_a);
                    },
                    || {
                        assemble(aug_b, passes.at, blocks_b, &rows_b);
                        sb.solve_one(aug_b);
                        unknowns(aug_b, passes.at, &mut rows_b);
                        gather(aug_b, passes.at, &mut xs_b);
                    },
                );
            }
            solves => {
                assemble(aug, 0, &passes.blocks[0], &rows_a);
                solves.solve_one(aug);
                unknowns(aug, 0, &mut rows_a);
                gather(aug, 0, &mut xs_a);
            }
        }
        // each family's X = Σ x gᵀ over its blocks, then Uᵀ of its rows' unknowns
        qx.iter_mut()
            .for_each(|x| x.iter_mut().for_each(|v| *v = 0.0));
        for run in fam.blocks.chunk_by(|a, b| a.fam == b.fam) {
            let f = &fam.fams[run[0].fam as usize];
            let outer = BlockOuter {
                blocks: run,
                g: &fam.block_g,
                xs: &self.xs,
            };
            outer.add_to(&mut qx[run[0].fam as usize], f.e, f.n_c);
        }
        out.iter_mut().for_each(|o| *o = 0.0);
        for (f, x) in fam.fams.iter().zip(&qx) {
            let sh = Families::shape(u, elim, f.group as usize, f.e0 as usize);
            for k in 0..sh.rows {
                let vk = &sh.v[k * sh.n_c..(k + 1) * sh.n_c];
                for b in 0..sh.e {
                    let mut s = 0.0;
                    for c in 0..sh.e {
                        s += f.g2[b * sh.e + c] * pm[sh.theta(k, c)];
                    }
                    for (j, v) in vk.iter().enumerate() {
                        s += v * x[j * sh.e + b];
                    }
                    out[sh.theta(k, b)] -= s / sh.pivot[k];
                }
            }
        }
        // Uᵀ of the other rows' unknowns by halves
        let t = &self.t2;
        let part = |runs: &[URun]| {
            let mut acc = vec![0.0; self.n_theta];
            u.tmul(runs, t, &mut acc);
            acc
        };
        let (a, b) = pair(|| part(lo), || part(hi));
        for ((o, x), y) in out.iter_mut().zip(&a).zip(&b) {
            *o += x + y;
        }
        u.mask_columns(out);
    }

    /// Whether J's products go through [`Schur::jac_mul_halves`] and
    /// [`Schur::jac_mul_t_halves`]: in the augmented form.
    pub fn has_jac_blocks(&self) -> bool {
        self.exact_b()
    }

    /// Finds the blocks of J's products at `jac`'s values (its pattern this one's).
    pub fn jac_blocks(&mut self, jac: &SparseRows) {
        self.generation += 1;
        if let BForm::Augmented { elim, .. } = &self.form {
            self.jb.find(
                jac,
                &self.u,
                &self.fam,
                elim,
                (&self.theta_ptr, &self.theta_entries),
            );
        }
    }

    /// out = J x at the values of the last [`Schur::jac_blocks`], by two halves of the rows of
    /// about equal work (fixed by the pattern and the families).
    pub fn jac_mul_halves(&self, jac: &SparseRows, x: &[f64], out: &mut [f64]) {
        let jb = &self.jb;
        let mid = jb.mid;
        let (ba, bb) = jb.blocks.split_at(jb.block_half);
        let (ra, rb) = jb.rest.split_at(jb.rest_half);
        let (oa, ob) = out.split_at_mut(mid);
        pair(
            || jb.mul(jac, ba, ra, x, oa, 0),
            || jb.mul(jac, bb, rb, x, ob, mid),
        );
    }

    /// out = Jᵀ y at the values of the last [`Schur::jac_blocks`], by fixed halves of the rows
    /// (the second half summed into `second`, then added).
    pub fn jac_mul_t_halves(
        &self,
        jac: &SparseRows,
        y: &[f64],
        out: &mut [f64],
        second: &mut Vec<f64>,
    ) {
        let jb = &self.jb;
        let (ba, bb) = jb.blocks.split_at(jb.block_half);
        let (ra, rb) = jb.rest.split_at(jb.rest_half);
        // `mul_t` sets its whole output: no zeroing here (on the TIMIT shape a serial pass over
        // 6.6 MB at every product)
        second.resize(out.len(), 0.0);
        pair(
            || jb.mul_t(jac, ba, ra, y, out),
            || jb.mul_t(jac, bb, rb, y, second),
        );
        let second = &*second;
        each_half(out, |first, out| {
            for (o, s) in out.iter_mut().zip(&second[first..]) {
                *o += s;
            }
        });
    }

    /// out = Uᵀ t (`first`) or Uᵀ t2: the two halves of the rows summed apart, then added.
    fn u_tmul(&self, first: bool, out: &mut [f64]) {
        let t = if first { &self.t } else { &self.t2 };
        let (lo, hi) = self.u.halves();
        let part = |runs: &[URun]| {
            let mut acc = vec![0.0; self.n_theta];
            self.u.tmul(runs, t, &mut acc);
            acc
        };
        let (a, b) = pair(|| part(lo), || part(hi));
        for ((o, x), y) in out.iter_mut().zip(&a).zip(&b) {
            *o = x + y;
        }
        self.u.mask_columns(out);
    }

    /// t2 = U w, by halves of the rows.
    fn u_mul(&mut self, w: &[f64]) {
        let mid = self.m / 2;
        let wm = self.u.masked(w);
        let (lo, hi) = self.u.halves();
        let (a, b) = self.t2.split_at_mut(mid);
        let u = &self.u;
        pair(|| u.mul(lo, &wm, a, 0), || u.mul(hi, &wm, b, mid));
    }

    /// ‖U w‖, by halves of the rows; in the augmented form the rows of a family of
    /// [`Families`] in closed form: Σ_k P_k G P_kᵀ.
    fn u_norm(&self, w: &[f64]) -> f64 {
        let wm = self.u.masked(w);
        let BForm::Augmented { elim, .. } = &self.form else {
            let (lo, hi) = self.u.halves();
            let (a, b) = pair(|| self.u.norm2(lo, &wm), || self.u.norm2(hi, &wm));
            return (a + b).sqrt();
        };
        let (lo, hi) = self.fam.rest.split_at(self.fam.rest_half);
        let (a, b) = pair(|| self.u.norm2(lo, &wm), || self.u.norm2(hi, &wm));
        let mut sum = a + b;
        for f in &self.fam.fams {
            let sh = Families::shape(&self.u, elim, f.group as usize, f.e0 as usize);
            for k in 0..sh.rows {
                for b in 0..sh.e {
                    let pb = wm[sh.theta(k, b)];
                    for c in 0..sh.e {
                        sum += pb * f.g2[b * sh.e + c] * wm[sh.theta(k, c)];
                    }
                }
            }
        }
        // G is positive semidefinite: a negative sum is rounding
        sum.max(0.0).sqrt()
    }

    /// U at `k` (free rows, free θ columns), by runs of rows: what [`Schur::apply`] and
    /// [`Schur::solve_through_c`] multiply by.
    fn compact_u(&mut self, k: At<'_>) {
        let key = self.values_key(k);
        if self.u_key == Some(key) {
            self.u.set_free(k, self.n_theta);
        } else {
            self.u
                .compact(k, &self.theta_ptr, &self.theta_entries, self.n_theta);
            self.u_key = Some(key);
        }
    }

    /// The [`ValuesKey`] of a point.
    fn values_key(&self, k: At<'_>) -> ValuesKey {
        (
            self.generation,
            k.jac.as_ptr() as usize,
            k.jac.len(),
            k.rho.to_bits(),
        )
    }

    /// What a checkpoint keeps of the kept preconditioner, if there is one: where B is
    /// factored at every Newton system, H itself (the conjugate gradients' preconditioner on
    /// C, with what they learnt since C̃ was formed); elsewhere the point B and C̃ were formed
    /// at, which forms them again ([`Schur::reform`]).
    pub fn saved(&self) -> Option<Saved<'_>> {
        if !self.formed {
            return None;
        }
        Some(if self.exact_b() {
            Saved::Inverse(self.c_inv.as_ref())
        } else {
            Saved::Point(&self.kept)
        })
    }

    /// Takes back H saved by [`Schur::saved`] (n_θ × n_θ by columns), where B is factored at
    /// every Newton system.
    pub fn restore_inverse(&mut self, h: &[f64]) -> Result<(), LdlError> {
        let nt = self.n_theta;
        if !self.exact_b() || h.len() != nt * nt {
            return Err(LdlError::Pattern(format!(
                "a saved preconditioner of {} numbers where the solver keeps {}",
                h.len(),
                if self.exact_b() { nt * nt } else { 0 }
            )));
        }
        self.c_inv = MatRef::from_column_major_slice(h, nt, nt).to_owned();
        self.formed = true;
        Ok(())
    }

    /// Factors C and keeps it.
    fn factor_c(&mut self, c: Mat<f64>) -> Result<(), LdlError> {
        self.c_factor = c;
        llt_factor::cholesky_in_place(
            self.c_factor.as_mut(),
            Default::default(),
            Par::Seq,
            MemStack::new(&mut self.stack),
            Default::default(),
        )
        .map_err(|_| LdlError::Pivot(0))?;
        if self.exact_b() {
            let nt = self.n_theta;
            let mut inv = Mat::<f64>::identity(nt, nt);
            llt_solve::solve_in_place_with_conj(
                self.c_factor.as_ref(),
                Conj::No,
                inv.as_mut(),
                Par::Seq,
                MemStack::new(&mut []),
            );
            self.c_inv = inv;
        }
        self.formed = true;
        Ok(())
    }

    /// z = H r with the preconditioner H of the conjugate gradients on C.
    fn c_inv_mul(&self, r: &[f64], z: &mut [f64]) {
        let nt = self.n_theta;
        matmul(
            MatMut::from_column_major_slice_mut(z, nt, 1),
            Accum::Replace,
            self.c_inv.as_ref(),
            MatRef::from_column_major_slice(r, nt, 1),
            1.0,
            Par::Seq,
        );
    }

    /// Updates H with what the last solve learnt of C: its k search directions S (C-conjugate,
    /// scaled to Sᵀ C S ≈ I) and their products Y = C S. The block BFGS update of an inverse,
    /// H ← (I − S Λ⁻¹ Yᵀ) H (I − Y Λ⁻¹ Sᵀ) + S Λ⁻¹ Sᵀ with Λ = Sᵀ Y, makes H Y = S: on the
    /// directions the conjugate gradients had to explore, H is C⁻¹ of this system, and the
    /// next system's C (another δ, a few rows freed or held, or the next subproblem's J)
    /// differs from it by little there. H stays symmetric positive definite (Λ is). With
    /// A = S Λ⁻¹, Z = H Y and G = A (Λ + Yᵀ Z)/2 − Z, the update is H ← H + G Aᵀ + A Gᵀ, two
    /// products of n_θ × k by k × n_θ. Skipped when Λ is not numerically positive definite.
    fn learn(&mut self) {
        let nt = self.n_theta;
        let k = self.learnt_p.len() / nt.max(1);
        if k == 0 || self.c_inv.nrows() != nt {
            return;
        }
        let s = MatRef::from_column_major_slice(&self.learnt_p, nt, k);
        let y = MatRef::from_column_major_slice(&self.learnt_q, nt, k);
        // Λ = Sᵀ Y, symmetrized; W = Λ⁻¹ through its Cholesky factor
        let mut lambda = Mat::<f64>::zeros(k, k);
        matmul(
            lambda.as_mut(),
            Accum::Replace,
            s.transpose(),
            y,
            1.0,
            Par::Seq,
        );
        let lambda = Mat::from_fn(k, k, |a, b| 0.5 * (lambda[(a, b)] + lambda[(b, a)]));
        let mut chol = lambda.clone();
        let mut stack = MemBuffer::new(llt_factor::cholesky_in_place_scratch::<f64>(
            k,
            Par::Seq,
            Default::default(),
        ));
        if llt_factor::cholesky_in_place(
            chol.as_mut(),
            Default::default(),
            Par::Seq,
            MemStack::new(&mut stack),
            Default::default(),
        )
        .is_err()
        {
            return;
        }
        // a well-conditioned Λ only: the directions' conjugacy lost to rounding makes it nearly
        // singular, and its inverse would then amplify the rounding of Y
        let (lo, hi) = (0..k).fold((f64::INFINITY, 0.0f64), |(lo, hi), i| {
            (lo.min(chol[(i, i)]), hi.max(chol[(i, i)]))
        });
        if !(lo > 0.0 && hi / lo < LEARN_MAX_CONDITION.sqrt()) {
            return;
        }
        // Aᵀ = Λ⁻¹ Sᵀ
        let mut at = s.transpose().to_owned();
        llt_solve::solve_in_place_with_conj(
            chol.as_ref(),
            Conj::No,
            at.as_mut(),
            Par::Seq,
            MemStack::new(&mut []),
        );
        let mut z = Mat::<f64>::zeros(nt, k);
        matmul(
            z.as_mut(),
            Accum::Replace,
            self.c_inv.as_ref(),
            y,
            1.0,
            Par::Seq,
        );
        // M = (Λ + Yᵀ Z)/2, G = A M − Z
        let mut m = Mat::<f64>::zeros(k, k);
        matmul(
            m.as_mut(),
            Accum::Replace,
            y.transpose(),
            z.as_ref(),
            1.0,
            Par::Seq,
        );
        let m = Mat::from_fn(k, k, |a, b| {
            0.25 * (m[(a, b)] + m[(b, a)]) + 0.5 * lambda[(a, b)]
        });
        let mut g = -z;
        matmul(
            g.as_mut(),
            Accum::Add,
            at.transpose(),
            m.as_ref(),
            1.0,
            Par::Seq,
        );
        matmul(
            self.c_inv.as_mut(),
            Accum::Add,
            g.as_ref(),
            at.as_ref(),
            1.0,
            Par::Seq,
        );
        matmul(
            self.c_inv.as_mut(),
            Accum::Add,
            at.transpose(),
            g.transpose(),
            1.0,
            Par::Seq,
        );
    }

    /// Solves with B in place: in `t` (`first`) or in `t2`.
    fn solve_b(&mut self, first: bool) {
        let t = if first { &mut self.t } else { &mut self.t2 };
        match &self.form {
            BForm::Rows { .. } => self.b.solve(t),
            BForm::Augmented {
                n_l,
                kept_rows,
                elim,
                ..
            } => {
                // (x, d) of [[ρI, J_Lᵀ], [J_L, −δI]] (x, d) = (0, −t): d = B⁻¹ t
                let aug = &mut self.aug;
                aug[..*n_l].iter_mut().for_each(|v| *v = 0.0);
                for &(i, u) in kept_rows {
                    aug[u as usize] = -t[i as usize];
                }
                // an eliminated row's right-hand side f = −t_i moves −J f/a_i to its columns
                // (`val` is 0 where the row or the column is not free); the two halves of the
                // eliminated rows apart, the second into its own buffer, then added
                let half = elim.rows.len() / 2;
                let fam = &self.fam;
                let scatter = |out: &mut [f64], rows: std::ops::Range<usize>| {
                    let one_by_one = |out: &mut [f64], rows: std::ops::Range<usize>| {
                        for e in rows {
                            let ti = t[elim.rows[e] as usize];
                            if ti == 0.0 {
                                continue;
                            }
                            let g = ti / elim.pivot[e];
                            let range = elim.ptr[e]..elim.ptr[e + 1];
                            let cols = elim.cols[range.clone()].iter();
                            for (&(_, c), v) in cols.zip(&elim.val[range]) {
                                out[c as usize] += v * g;
                            }
                        }
                    };
                    // a block's g, set before it is read (an array on the stack was zeroed whole,
                    // 8 kB, at every block: 3% of the TIMIT shape's k = 229..235)
                    let mut g_buf = vec![0.0; BLOCK_ROWS_MAX];
                    fam.each_seg(rows, |seg, ks| match seg {
                        ElimSeg::Rows { e0, .. } => {
                            one_by_one(out, e0 as usize + ks.start..e0 as usize + ks.end)
                        }
                        ElimSeg::Block {
                            row0,
                            fam: fi,
                            cols,
                            ..
                        } => {
                            // each column's sum over the rows in order, as row by row
                            let f = &fam.fams[fi as usize];
                            let rows = f.pivot.len();
                            let tb = &t[row0 as usize + ks.start..row0 as usize + ks.end];
                            let g = &mut g_buf[..ks.len()];
                            for ((g, ti), p) in g.iter_mut().zip(tb).zip(&f.pivot[ks.clone()]) {
                                *g = ti / p;
                            }
                            let cols = &fam.block_cols[cols as usize..cols as usize + f.n_c];
                            for (j, &c) in cols.iter().enumerate() {
                                let v = &f.v_cols[j * rows + ks.start..j * rows + ks.end];
                                let mut acc = out[c as usize];
                                for (v, g) in v.iter().zip(g.iter()) {
                                    acc += v * g;
                                }
                                out[c as usize] = acc;
                            }
                        }
                    });
                };
                let n_l = *n_l;
                let mut second = std::mem::take(&mut self.aug_half);
                second.clear();
                second.resize(n_l, 0.0);
                {
                    let (first_part, _) = aug.split_at_mut(n_l);
                    pair(
                        || scatter(first_part, 0..half),
                        || scatter(&mut second, half..elim.rows.len()),
                    );
                }
                for (a, b) in aug[..n_l].iter_mut().zip(&second) {
                    *a += b;
                }
                self.aug_half = second;
                self.b.solve(aug);
                // each eliminated row's unknown, by halves (the rows are increasing)
                let back = |t: &mut [f64], first_row: usize, rows: std::ops::Range<usize>| {
                    // a block's sums, set before they are read
                    let mut acc_buf = vec![0.0; BLOCK_ROWS_MAX];
                    fam.each_seg(rows, |seg, ks| match seg {
                        ElimSeg::Rows { e0, .. } => {
                            for e in e0 as usize + ks.start..e0 as usize + ks.end {
                                let i = elim.rows[e] as usize - first_row;
                                let range = elim.ptr[e]..elim.ptr[e + 1];
                                let mut v = -t[i];
                                let cols = elim.cols[range.clone()].iter();
                                for (&(_, c), j) in cols.zip(&elim.val[range]) {
                                    v -= j * aug[c as usize];
                                }
                                t[i] = v / elim.pivot[e];
                            }
                        }
                        ElimSeg::Block {
                            row0,
                            fam: fi,
                            cols,
                            ..
                        } => {
                            // row by row the same sums: −t_k, then V's columns in order
                            let f = &fam.fams[fi as usize];
                            let rows = f.pivot.len();
                            let at = row0 as usize - first_row;
                            let tb = &mut t[at + ks.start..at + ks.end];
                            let acc = &mut acc_buf[..ks.len()];
                            for (a, ti) in acc.iter_mut().zip(tb.iter()) {
                                *a = -ti;
                            }
                            let cols = &fam.block_cols[cols as usize..cols as usize + f.n_c];
                            for (j, &c) in cols.iter().enumerate() {
                                let x = aug[c as usize];
                                let v = &f.v_cols[j * rows + ks.start..j * rows + ks.end];
                                for (a, v) in acc.iter_mut().zip(v) {
                                    *a -= v * x;
                                }
                            }
                            for ((ti, a), p) in tb.iter_mut().zip(acc.iter()).zip(&f.pivot[ks]) {
                                *ti = a / p;
                            }
                        }
                    });
                };
                let split = elim.rows.get(half).map_or(t.len(), |&r| r as usize);
                let (ta, tb) = t.split_at_mut(split);
                pair(
                    || back(ta, 0, 0..half),
                    || back(tb, split, half..elim.rows.len()),
                );
                for &(i, u) in kept_rows {
                    t[i as usize] = aug[u as usize];
                }
            }
        }
    }

    /// z = P⁻¹ r: the inverse of the Newton matrix at the kept point, on the rows `free`
    /// (r is zero outside them; z is set to zero there).
    pub fn apply(&mut self, free: &[bool], r: &[f64], z: &mut [f64]) {
        for i in 0..self.m {
            self.t[i] = if free[i] { r[i] } else { 0.0 };
        }
        self.solve_b(true);
        // w = C̃⁻¹ Uᵀ t
        self.w.iter_mut().for_each(|w| *w = 0.0);
        self.u.tmul(&self.u.runs, &self.t, &mut self.w);
        self.u.mask_columns(&mut self.w);
        let nt = self.n_theta;
        llt_solve::solve_in_place_with_conj(
            self.c_factor.as_ref(),
            Conj::No,
            MatMut::from_column_major_slice_mut(&mut self.w, nt, 1),
            Par::Seq,
            MemStack::new(&mut []),
        );
        // t2 = U w, then z = t − B⁻¹ t2
        let wm = self.u.masked(&self.w);
        self.u.mul(&self.u.runs, &wm, &mut self.t2, 0);
        self.solve_b(false);
        for i in 0..self.m {
            z[i] = if free[i] { self.t[i] - self.t2[i] } else { 0.0 };
        }
    }
}

/// Blocks of eliminated rows that the conjugate gradients on C and the formation of C take in
/// closed form (the augmented form). A block is a group of [`URows`] whose rows are all
/// eliminated and read the same lifted columns (the TIMIT shape: the 129 output rows of a time
/// step, which read that step's two hidden units). At a point where its rows and lifted
/// columns are free and U has one value per position on all its rows (g, e.g. (h_t, 1)/√ρ),
/// blocks whose rows have the same θ columns, the same J at the lifted columns (V, row by
/// row) and the same pivots (Π) make a family (the TIMIT shape: all 6,174 blocks, V = −A).
/// Row k of a block then has (U p)_k = P_k g, with P_k the masked p at row k's θ columns, and
/// in a solve with B the block adds Σ_k V_kᵀ (U p)_k/π_k = Q g to its lifted columns, with
/// Q = Σ_k V_kᵀ P_k/π_k shared by the family; with the solved x at those columns, its rows'
/// unknowns are d_k = (−(U p)_k − V_k x)/π_k, and Uᵀ d summed over the family is, at row k's
/// θ columns, −(G P_kᵀ + Xᵀ V_kᵀ)/π_k with G = Σ g gᵀ and X = Σ x gᵀ over its blocks. So a
/// product with Uᵀ B⁻¹ U costs O(rows × positions × columns) per family and
/// O(positions × columns) per block, where row by row it cost that per row of every block.
#[derive(Default)]
struct Families {
    /// Per group of [`URows`] (pattern): the index among the eliminated rows of its first row
    /// where it may be a block, else [`NO_BLOCK`].
    first_elim: Vec<u32>,
    /// Per group (pattern): the slots in B of its first eliminated row's pairs, where it may
    /// be a block (group after group, from `first_slots_ptr`): what B's assembly adds a
    /// block's pair sums to, read in order (through [`Eliminated::pairs`] a block's were a
    /// cache miss each, 129 rows apart: 1% of a late iteration on the TIMIT shape).
    first_slots: Vec<u32>,
    first_slots_ptr: Vec<u32>,
    /// The eliminated rows by blocks and rows one by one, in order (at the point of the last
    /// factorization of B).
    segs: Vec<ElimSeg>,
    /// At the point of the last factorization of B: the families, the blocks, and the runs
    /// of U outside the blocks, in two halves of about equal work for two threads: the
    /// second's first run and first row ([`split_row`]).
    fams: Vec<Family>,
    blocks: Vec<Block>,
    /// The blocks' lifted columns, block after block (read at every product).
    block_cols: Vec<u32>,
    /// The blocks' g, block after block (read at every product in order, where in [`URows`]'
    /// values they lie between the hidden rows' runs).
    block_g: Vec<f64>,
    rest: Vec<URun>,
    rest_half: usize,
    rest_mid: usize,
    /// How the passes around B's solve in [`Schur::c_product`] split by B's parts.
    passes: Passes,
}

/// How [`Schur::c_product`]'s passes around B's solve split by B's two parts. A block's
/// lifted columns, a kept row's unknown and an eliminated row's lifted columns are unknowns of
/// one part (the parts are connected components of B), so each part's right-hand side, solve
/// and rows' unknowns go on one thread, in the order of one pass: the same numbers (on the
/// TIMIT shape, whose rows go by time step and the parts by sequences, the passes on the one
/// thread were 3% of a late iteration).
#[derive(Default)]
struct Passes {
    /// Whether they split.
    two: bool,
    /// The second part's first row in the factors' order.
    at: usize,
    /// Each part's blocks, in ranges (all the first's where they do not split).
    blocks: [Vec<std::ops::Range<usize>>; 2],
    /// The rows outside the blocks in ranges of consecutive rows, each with whether it is the
    /// second part's (all the first's where they do not split).
    rows: Vec<(std::ops::Range<usize>, bool)>,
    /// The rows in the factors' order of the blocks' lifted columns
    /// ([`Families::block_cols`]'s), and those in ranges, each with whether it is the second
    /// part's.
    places: Vec<u32>,
    cols: Vec<(std::ops::Range<usize>, bool)>,
}

impl Passes {
    /// The passes at the blocks and runs outside them of `fam`: B's rows in the factors' order
    /// `pos`, its second part from `second_at` (where it is in two).
    fn new(
        fam: &Families,
        row_unknown: &[u32],
        elim: &Eliminated,
        pos: &[u32],
        second_at: Option<usize>,
    ) -> Passes {
        let dim = pos.len();
        let second = |v: u32| second_at.is_some_and(|at| pos[v as usize] as usize >= at);
        let places = || fam.block_cols.iter().map(|&c| pos[c as usize]).collect();
        // the part of the unknowns of B a row reads and writes
        let row_side = |i: usize| {
            let r = row_unknown[i] as usize;
            if r < dim {
                return RowSide::Part(second(r as u32));
            }
            let e = r - dim;
            let mut parts = elim.cols[elim.ptr[e]..elim.ptr[e + 1]]
                .iter()
                .map(|c| second(c.1));
            match parts.next() {
                None => RowSide::Neither,
                Some(p) if parts.all(|q| q == p) => RowSide::Part(p),
                Some(_) => RowSide::Both,
            }
        };
        let block_part = |blk: &Block| {
            let n_c = fam.fams[blk.fam as usize].n_c;
            let cols = &fam.block_cols[blk.cols as usize..blk.cols as usize + n_c];
            let p = cols.first().is_some_and(|&c| second(c));
            cols.iter().all(|&c| second(c) == p).then_some(p)
        };
        let mut two = second_at.is_some();
        let mut blocks: [Vec<std::ops::Range<usize>>; 2] = [Vec::new(), Vec::new()];
        let mut cols: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
        for (b, blk) in fam.blocks.iter().enumerate() {
            let Some(part) = block_part(blk).filter(|_| two) else {
                two = false;
                break;
            };
            let list = &mut blocks[usize::from(part)];
            let at = blk.cols as usize..(blk.cols as usize + fam.fams[blk.fam as usize].n_c);
            match (list.last_mut(), cols.last_mut()) {
                (Some(r), Some((c, p))) if *p == part => {
                    r.end = b + 1;
                    c.end = at.end;
                }
                _ => {
                    list.push(b..b + 1);
                    cols.push((at, part));
                }
            }
        }
        let mut rows: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
        for i in fam.rest.iter().flat_map(|r| r.rows()) {
            let part = if !two {
                false
            } else {
                match row_side(i) {
                    RowSide::Part(p) => p,
                    // with the range it follows
                    RowSide::Neither => rows.last().is_some_and(|r| r.1),
                    RowSide::Both => {
                        two = false;
                        false
                    }
                }
            };
            match rows.last_mut() {
                Some((r, p)) if r.end == i && *p == part => r.end += 1,
                _ => rows.push((i..i + 1, part)),
            }
        }
        if !two {
            // one pass: every row the first part's, merged
            let mut merged: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
            for (r, _) in rows {
                match merged.last_mut() {
                    Some((m, _)) if m.end == r.start => m.end = r.end,
                    _ => merged.push((r, false)),
                }
            }
            return Passes {
                two,
                at: dim,
                blocks: [std::iter::once(0..fam.blocks.len()).collect(), Vec::new()],
                rows: merged,
                places: places(),
                cols: vec![(0..fam.block_cols.len(), false)],
            };
        }
        Passes {
            two,
            at: second_at.unwrap_or(dim),
            blocks,
            rows,
            places: places(),
            cols,
        }
    }
}

/// Which part of B the unknowns a row outside the blocks reads and writes are in
/// ([`Passes::new`]): the second's or not, none, or both (then the passes do not split).
enum RowSide {
    Part(bool),
    Neither,
    Both,
}

/// The blocks of one family in a row with what [`BlockOuter::add_to`] reads: their g and the
/// solved unknowns at their lifted columns (by [`Families::block_cols`]).
struct BlockOuter<'a> {
    blocks: &'a [Block],
    g: &'a [f64],
    xs: &'a [f64],
}

impl BlockOuter<'_> {
    /// X += Σ x gᵀ over the blocks in order (X n_c × e by rows, x the unknowns at a block's
    /// lifted columns): for the small shapes of RNN output layers with X in registers, the
    /// same additions in the same order (through memory each waited for the last one's store:
    /// on the TIMIT shape's 6,174 blocks the pass took 64 µs in registers against 89 µs).
    fn add_to(&self, x: &mut [f64], e: usize, n_c: usize) {
        macro_rules! shapes {
            ($(($e:literal, $n:literal)),*) => {
                match (e, n_c) {
                    $(($e, $n) => self.add_fixed::<$e, $n>(x),)*
                    _ => self.add_any(x, e, n_c),
                }
            };
        }
        shapes!(
            (2, 1),
            (3, 2),
            (4, 3),
            (5, 4),
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 4)
        )
    }

    fn add_fixed<const E: usize, const N: usize>(&self, x: &mut [f64]) {
        let mut acc = [[0.0; E]; N];
        for (j, a) in acc.iter_mut().enumerate() {
            a.copy_from_slice(&x[j * E..(j + 1) * E]);
        }
        for blk in self.blocks {
            let g: &[f64; E] = self.g[blk.g as usize..][..E]
                .try_into()
                .expect("a block's g has its family's e values");
            let xs = &self.xs[blk.cols as usize..][..N];
            for (a, &xc) in acc.iter_mut().zip(xs) {
                for (o, gb) in a.iter_mut().zip(g) {
                    *o += xc * gb;
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            x[j * E..(j + 1) * E].copy_from_slice(a);
        }
    }

    fn add_any(&self, x: &mut [f64], e: usize, n_c: usize) {
        for blk in self.blocks {
            let g = &self.g[blk.g as usize..blk.g as usize + e];
            let xs = &self.xs[blk.cols as usize..blk.cols as usize + n_c];
            for (j, &xc) in xs.iter().enumerate() {
                for (o, gb) in x[j * e..(j + 1) * e].iter_mut().zip(g) {
                    *o += xc * gb;
                }
            }
        }
    }
}

/// `t` at the ranges of `rows` (increasing, disjoint), each range's values with its first
/// index, the first part's and the second's apart.
fn chunks_by_part<'a>(
    mut t: &'a mut [f64],
    rows: &[(std::ops::Range<usize>, bool)],
) -> [Vec<(usize, &'a mut [f64])>; 2] {
    let mut chunks = [Vec::new(), Vec::new()];
    let mut at = 0;
    for (r, second) in rows {
        let (_, from) = std::mem::take(&mut t).split_at_mut(r.start - at);
        let (chunk, after) = from.split_at_mut(r.len());
        chunks[usize::from(*second)].push((r.start, chunk));
        t = after;
        at = r.end;
    }
    chunks
}

/// What [`Families::scan`] finds in a range of groups: families (G zero), blocks (their
/// columns from the range's first at 0) and the runs outside the blocks.
#[derive(Default)]
struct Found {
    fams: Vec<Family>,
    blocks: Vec<Block>,
    block_cols: Vec<u32>,
    rest: Vec<URun>,
}

/// Groups of [`URows`] from which [`Families::find`] scans them in two halves on two threads.
const FIND_HALVES_MIN_GROUPS: usize = 256;

/// A hash of a shape's numbers, which picks the candidate families (compared in full).
fn hash_words(seed: u64, words: impl Iterator<Item = u64>) -> u64 {
    words.fold(seed, |h, x| {
        (h.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95)
    })
}

/// The family of a block in `fams`: the last block's (`last`) when `same` says its shape is
/// the block's (consecutive blocks share one: on the TIMIT shape all 6,174 do), else one of
/// the candidates `index` lists under the shape's `hash` (computed only then), else a `new`
/// one, listed there.
fn family_of<T>(
    fams: &mut Vec<T>,
    index: &mut HashMap<u64, Vec<u32>>,
    last: Option<usize>,
    same: impl Fn(&T) -> bool,
    hash: impl FnOnce() -> u64,
    new: impl FnOnce() -> T,
) -> usize {
    if let Some(f) = last.filter(|&f| same(&fams[f])) {
        return f;
    }
    let list = index.entry(hash()).or_default();
    if let Some(&f) = list.iter().find(|&&f| same(&fams[f as usize])) {
        return f as usize;
    }
    list.push(fams.len() as u32);
    fams.push(new());
    fams.len() - 1
}

/// A group of [`Families::first_elim`] that is no block.
const NO_BLOCK: u32 = u32::MAX;

/// A rows × n_c matrix stored by rows (`v`), stored by columns.
fn by_columns(v: &[f64], rows: usize, n_c: usize) -> Vec<f64> {
    (0..n_c)
        .flat_map(|c| (0..rows).map(move |k| v[k * n_c + c]))
        .collect()
}

/// The most rows of a block the solves with B take in closed form (a larger one goes row by
/// row; the TIMIT shape's have 129).
const BLOCK_ROWS_MAX: usize = 1024;

/// A family of [`Families`]: the group and first eliminated row of its first block (its θ
/// columns, V and pivots), V's columns, and G = Σ g gᵀ over its blocks (positions²).
struct Family {
    group: u32,
    e0: u32,
    /// Positions and lifted columns.
    e: usize,
    n_c: usize,
    g2: Vec<f64>,
    /// For the solves with B ([`ElimSeg`]): V by columns (n_c × rows) and the pivots.
    v_cols: Vec<f64>,
    pivot: Vec<f64>,
    /// For B's assembly: the sums over the rows of the pairs V_kj V_kj'/|π_k| their
    /// elimination adds (in the order of a row's pairs, the same on every row of a block,
    /// which reads the same lifted columns), the same for every block of the family.
    pair_sum: Vec<f64>,
}

/// The eliminated rows in order, for the solves with B: a block of a family in closed form
/// (its rows consecutive from `row0`, V and pivots the family's, its lifted columns at `cols`
/// in [`Families::block_cols`]), or rows one by one (`e0..e1`, each with its own entries).
#[derive(Debug, Clone, Copy)]
enum ElimSeg {
    Block {
        e0: u32,
        row0: u32,
        fam: u32,
        cols: u32,
        group: u32,
    },
    Rows {
        e0: u32,
        e1: u32,
    },
}

impl ElimSeg {
    /// Its first eliminated row.
    fn start(self) -> usize {
        match self {
            ElimSeg::Block { e0, .. } | ElimSeg::Rows { e0, .. } => e0 as usize,
        }
    }

    /// One past its last eliminated row.
    fn end(self, fam: &Families) -> usize {
        match self {
            ElimSeg::Block { e0, fam: f, .. } => e0 as usize + fam.fams[f as usize].pivot.len(),
            ElimSeg::Rows { e1, .. } => e1 as usize,
        }
    }
}

/// A block of [`Families`]: its family, where its g starts in [`URows`]' values, its first
/// eliminated row (whose entries give the block's lifted columns), where its lifted columns
/// start in [`Families::block_cols`] (the family's n_c of them), its group, and where its g
/// starts in [`Families::block_g`].
struct Block {
    fam: u32,
    val: u32,
    e0: u32,
    cols: u32,
    group: u32,
    g: u32,
}

/// A family's shape, read from [`URows`] and [`Eliminated`]: rows, positions, V's columns,
/// each position's first column and stride, V (rows × columns) and the pivots. Blocks of the
/// same shape (all of it equal) make a family.
#[derive(PartialEq)]
struct Shape<'a> {
    rows: usize,
    e: usize,
    n_c: usize,
    base: &'a [u32],
    stride: &'a [u32],
    v: &'a [f64],
    pivot: &'a [f64],
}

impl Shape<'_> {
    /// The θ column of row k's position b.
    fn theta(&self, k: usize, b: usize) -> usize {
        self.base[b] as usize + k * self.stride[b] as usize
    }
}

impl Families {
    /// [`Families::segs`] from the blocks found (a block whose eliminated rows are not
    /// consecutive rows goes row by row).
    fn segments(&mut self, u: &URows, elim: &Eliminated) {
        self.segs.clear();
        let mut order: Vec<usize> = (0..self.blocks.len()).collect();
        order.sort_by_key(|&b| self.blocks[b].e0);
        let mut next = 0u32;
        for b in order {
            let blk = &self.blocks[b];
            let f = &self.fams[blk.fam as usize];
            let rows = u.groups[f.group as usize].rows;
            let e0 = blk.e0;
            let row0 = elim.rows[e0 as usize];
            // (the eliminated rows increase: the last one tells)
            let consecutive = elim.rows[(e0 + rows - 1) as usize] == row0 + rows - 1;
            if !consecutive || e0 < next || rows as usize > BLOCK_ROWS_MAX {
                continue;
            }
            if e0 > next {
                self.segs.push(ElimSeg::Rows { e0: next, e1: e0 });
            }
            self.segs.push(ElimSeg::Block {
                e0,
                row0,
                fam: blk.fam,
                cols: blk.cols,
                group: blk.group,
            });
            next = e0 + rows;
        }
        let end = elim.rows.len() as u32;
        if next < end {
            self.segs.push(ElimSeg::Rows { e0: next, e1: end });
        }
    }

    /// Calls `f` with each segment that overlaps the eliminated rows `rows`, in order, and
    /// the overlap as offsets from the segment's first row.
    fn each_seg(
        &self,
        rows: std::ops::Range<usize>,
        mut f: impl FnMut(ElimSeg, std::ops::Range<usize>),
    ) {
        let start = self.segs.partition_point(|s| s.end(self) <= rows.start);
        for &seg in &self.segs[start..] {
            let (e0, e1) = (seg.start(), seg.end(self));
            if e0 >= rows.end {
                break;
            }
            f(seg, rows.start.max(e0) - e0..rows.end.min(e1) - e0);
        }
    }

    /// The groups of `u` that may be blocks: all rows eliminated, each reading the same
    /// lifted columns, at least two rows.
    fn new(u: &URows, form: &BForm) -> Families {
        let BForm::Augmented {
            diag_slot,
            row_unknown,
            elim,
            ..
        } = form
        else {
            return Families::default();
        };
        let dim = diag_slot.len();
        let cols = |e: usize| elim.cols[elim.ptr[e]..elim.ptr[e + 1]].iter().map(|c| c.1);
        let first_elim: Vec<u32> = u
            .groups
            .iter()
            .map(|g| {
                let rows = g.row0 as usize..(g.row0 + g.rows) as usize;
                let all =
                    g.rows >= 2 && row_unknown[rows.clone()].iter().all(|&r| r as usize >= dim);
                let e0 = row_unknown[rows.start] as usize;
                if all && (e0 - dim..rows.len() + e0 - dim).all(|e| cols(e).eq(cols(e0 - dim))) {
                    (e0 - dim) as u32
                } else {
                    NO_BLOCK
                }
            })
            .collect();
        let mut first_slots = Vec::new();
        let mut first_slots_ptr = vec![0u32];
        for &e0 in &first_elim {
            if e0 != NO_BLOCK {
                let pairs = &elim.pairs[elim.pair_ptr[e0 as usize]..elim.pair_ptr[e0 as usize + 1]];
                first_slots.extend(pairs.iter().map(|p| p.0));
            }
            first_slots_ptr.push(first_slots.len() as u32);
        }
        Families {
            first_elim,
            first_slots,
            first_slots_ptr,
            ..Families::default()
        }
    }

    /// A block's g (its family's e values), at the point of the last factorization of B.
    fn g(&self, blk: &Block) -> &[f64] {
        let e = self.fams[blk.fam as usize].e;
        &self.block_g[blk.g as usize..blk.g as usize + e]
    }

    /// The slots in B of the pairs of `group`'s first eliminated row (a group that may be a
    /// block).
    fn first_slots(&self, group: u32) -> &[u32] {
        let g = group as usize;
        &self.first_slots[self.first_slots_ptr[g] as usize..self.first_slots_ptr[g + 1] as usize]
    }

    /// The shape of the family whose first block is at `group` and `e0`.
    fn shape<'a>(u: &'a URows, elim: &'a Eliminated, group: usize, e0: usize) -> Shape<'a> {
        let g = &u.groups[group];
        let (rows, e, pos) = (g.rows as usize, g.e as usize, g.pos as usize);
        let n_c = elim.ptr[e0 + 1] - elim.ptr[e0];
        Shape {
            rows,
            e,
            n_c,
            base: &u.base[pos..pos + e],
            stride: &u.stride[pos..pos + e],
            v: &elim.val[elim.ptr[e0]..elim.ptr[e0 + rows]],
            pivot: &elim.pivot[e0..e0 + rows],
        }
    }

    /// The families, blocks and runs outside them among `groups` (G left zero).
    fn scan(
        &self,
        groups: std::ops::Range<usize>,
        k: At<'_>,
        u: &URows,
        elim: &Eliminated,
    ) -> Found {
        let mut found = Found::default();
        let mut index: std::collections::HashMap<u64, Vec<u32>> = Default::default();
        let mut last: Option<usize> = None;
        for gi in groups {
            let g = &u.groups[gi];
            let runs = &u.runs[u.group_runs[gi] as usize..u.group_runs[gi + 1] as usize];
            let e0 = self.first_elim[gi] as usize;
            let rows = g.row0 as usize..(g.row0 + g.rows) as usize;
            let block = self.first_elim[gi] != NO_BLOCK
                && runs.len() == 1
                && k.free_y[rows.clone()].iter().all(|&f| f)
                && elim.col[elim.ptr[e0]..elim.ptr[e0 + rows.len()]]
                    .iter()
                    .all(|&c| k.free_s[c as usize]);
            if !block {
                found.rest.extend_from_slice(runs);
                continue;
            }
            let this = Families::shape(u, elim, gi, e0);
            let same =
                |f: &Family| Families::shape(u, elim, f.group as usize, f.e0 as usize) == this;
            let hash = || {
                let words = (this.base.iter().chain(this.stride).map(|&x| x as u64))
                    .chain(this.v.iter().chain(this.pivot).map(|x| x.to_bits()));
                hash_words(
                    (this.rows as u64) << 32 | (this.e as u64) << 16 | this.n_c as u64,
                    words,
                )
            };
            let new = || Family {
                group: gi as u32,
                e0: e0 as u32,
                e: this.e,
                n_c: this.n_c,
                g2: vec![0.0; this.e * this.e],
                v_cols: by_columns(this.v, this.rows, this.n_c),
                pivot: this.pivot.to_vec(),
                pair_sum: elim.pair_sums(e0..e0 + this.rows),
            };
            let fam = family_of(&mut found.fams, &mut index, last, same, hash, new);
            last = Some(fam);
            found.blocks.push(Block {
                fam: fam as u32,
                val: runs[0].val,
                e0: e0 as u32,
                cols: found.block_cols.len() as u32,
                group: gi as u32,
                g: 0,
            });
            let first = elim.ptr[e0];
            found
                .block_cols
                .extend(elim.cols[first..first + this.n_c].iter().map(|c| c.1));
        }
        found
    }

    /// The families and blocks at `k` (U compacted there, `elim`'s values and pivots set),
    /// and the runs outside them: the groups in two halves on two threads (on the TIMIT shape
    /// comparing each of 6,174 blocks with its family was 4% of a late iteration on the one
    /// thread), the second half's families matched with the first's, then G summed over the
    /// blocks in order (the numbers of one pass).
    fn find(&mut self, k: At<'_>, u: &URows, elim: &Eliminated, m: usize) {
        let n_groups = u.groups.len();
        let mid = if n_groups >= FIND_HALVES_MIN_GROUPS {
            n_groups / 2
        } else {
            n_groups
        };
        let (mut a, b) = pair(
            || self.scan(0..mid, k, u, elim),
            || self.scan(mid..n_groups, k, u, elim),
        );
        let same = |f: &Family, g: &Family| {
            Families::shape(u, elim, f.group as usize, f.e0 as usize)
                == Families::shape(u, elim, g.group as usize, g.e0 as usize)
        };
        let mut to_a = Vec::with_capacity(b.fams.len());
        for f in b.fams {
            match a.fams.iter().position(|g| same(&f, g)) {
                Some(i) => to_a.push(i as u32),
                None => {
                    to_a.push(a.fams.len() as u32);
                    a.fams.push(f);
                }
            }
        }
        let offset = a.block_cols.len() as u32;
        a.blocks.extend(b.blocks.into_iter().map(|blk| Block {
            fam: to_a[blk.fam as usize],
            cols: blk.cols + offset,
            ..blk
        }));
        a.block_cols.extend(b.block_cols);
        a.rest.extend(b.rest);
        self.block_g.clear();
        for blk in &mut a.blocks {
            let f = &mut a.fams[blk.fam as usize];
            let gv = &u.vals[blk.val as usize..blk.val as usize + f.e];
            for (x, ga) in gv.iter().enumerate() {
                for (y, gb) in gv.iter().enumerate() {
                    f.g2[x * f.e + y] += ga * gb;
                }
            }
            blk.g = self.block_g.len() as u32;
            self.block_g.extend_from_slice(gv);
        }
        (self.fams, self.blocks, self.block_cols, self.rest) =
            (a.fams, a.blocks, a.block_cols, a.rest);
        self.segments(u, elim);
        // the two threads' halves of the runs outside the blocks by their work (the TIMIT
        // shape's are its hidden rows, all in the first half of the rows)
        let units: Vec<_> = self
            .rest
            .iter()
            .map(|r| (r.rows(), (r.rows * r.e) as usize))
            .collect();
        self.rest_mid = split_row(&units, m);
        self.rest_half = self
            .rest
            .partition_point(|r| (r.row0 as usize) < self.rest_mid);
    }
}

/// The row at which units of work (disjoint ranges of rows, in increasing order, each with its
/// work) split into two halves of about equal work, at a unit's start (`end` where there are
/// none): the two threads' halves of a pass over them.
fn split_row(units: &[(std::ops::Range<usize>, usize)], end: usize) -> usize {
    let total: usize = units.iter().map(|u| u.1).sum();
    let mut done = 0;
    for (rows, work) in units {
        if 2 * (done + work / 2) >= total {
            return rows.start;
        }
        done += work;
    }
    end
}

/// J's products in the dual (J s and Jᵀ y, twice per evaluation of φ) with the blocks of
/// eliminated rows taken as in [`Families`], at J's values alone (no free sets): a block's
/// rows read their θ columns with one value per position (g), their lifted columns with
/// V (row by row) and their own single-entry column with a value per row, and blocks with the
/// same θ columns, V and own values make a family. A block row's product is then e + n_c + 1
/// multiplications with a few numbers of the family and the block, where by rows it read a
/// column index and a value per entry: on the TIMIT shape the 796 k output rows' 4.8 M of J's
/// 6.47 M entries.
#[derive(Default)]
struct JacBlocks {
    /// Per eliminated row (pattern): its entry in its single-entry column, and that column
    /// ([`NO_BLOCK`] where it has another number of them).
    own_entry: Vec<u32>,
    own_col: Vec<u32>,
    /// At the values of the last [`Schur::jac_blocks`]: the families (θ columns, V and own
    /// values), the blocks, their g and their lifted columns, and the rows outside the
    /// blocks. The products go in two halves of the rows of about equal work
    /// ([`split_row`]): `mid` is the second's first row, `rest_half` and `block_half` its
    /// first row outside the blocks and its first block.
    fams: Vec<JacFamily>,
    blocks: Vec<JacBlock>,
    g: Vec<f64>,
    cols: Vec<u32>,
    rest: Vec<u32>,
    rest_half: usize,
    block_half: usize,
    mid: usize,
}

/// A family of [`JacBlocks`]: rows, positions, lifted columns, each position's first θ column
/// and stride, V (rows × lifted columns) and the own values. For the products, the θ column
/// of every position and row (`theta`, position after position) and V by columns (`v_cols`),
/// so that a block's rows go as passes over contiguous numbers.
struct JacFamily {
    rows: usize,
    e: usize,
    n_c: usize,
    base: Vec<u32>,
    stride: Vec<u32>,
    v: Vec<f64>,
    own: Vec<f64>,
    theta: Vec<u32>,
    v_cols: Vec<f64>,
}

/// A block of [`JacBlocks`]: its family, first row, first eliminated row, where its g
/// (e values) and lifted columns (n_c) start, and its rows' first single-entry column when
/// they are consecutive ([`NO_BLOCK`] otherwise).
struct JacBlock {
    fam: u32,
    row0: u32,
    e0: u32,
    at: u32,
    own0: u32,
}

impl JacBlocks {
    /// Each eliminated row's entry in its single-entry column, and that column (pattern).
    fn new(jac: &SparseRows, form: &BForm) -> JacBlocks {
        let BForm::Augmented {
            entry_slot, elim, ..
        } = form
        else {
            return JacBlocks::default();
        };
        let mut jb = JacBlocks::default();
        for &i in &elim.rows {
            let range = jac.row_ptr[i as usize]..jac.row_ptr[i as usize + 1];
            let mut single = range.filter(|&p| entry_slot[p] == SINGLE);
            let (p, c) = match (single.next(), single.next()) {
                (Some(p), None) => (p as u32, jac.col_idx[p] as u32),
                _ => (NO_BLOCK, NO_BLOCK),
            };
            jb.own_entry.push(p);
            jb.own_col.push(c);
        }
        jb
    }

    /// The families and blocks at J's values, and the rows outside them.
    fn find(
        &mut self,
        jac: &SparseRows,
        u: &URows,
        fam: &Families,
        elim: &Eliminated,
        theta: (&[usize], &[u32]),
    ) {
        let (theta_ptr, theta_entries) = theta;
        let m = jac.nrows();
        let vals = &jac.values;
        self.fams.clear();
        self.blocks.clear();
        self.g.clear();
        self.cols.clear();
        let mut in_block = vec![false; m];
        let mut index: std::collections::HashMap<u64, Vec<u32>> = Default::default();
        let mut last: Option<usize> = None;
        for (gi, grp) in u.groups.iter().enumerate() {
            let e0 = fam.first_elim[gi] as usize;
            if fam.first_elim[gi] == NO_BLOCK {
                continue;
            }
            let (rows, e, row0) = (grp.rows as usize, grp.e as usize, grp.row0 as usize);
            let n_c = elim.ptr[e0 + 1] - elim.ptr[e0];
            let theta_val =
                |k: usize, b: usize| vals[theta_entries[theta_ptr[row0 + k] + b] as usize];
            let regular = self.own_entry[e0..e0 + rows].iter().all(|&p| p != NO_BLOCK)
                && (1..rows).all(|k| (0..e).all(|b| theta_val(k, b) == theta_val(0, b)));
            if !regular {
                continue;
            }
            let pos = grp.pos as usize;
            let (base, stride) = (&u.base[pos..pos + e], &u.stride[pos..pos + e]);
            let v: Vec<f64> = elim.cols[elim.ptr[e0]..elim.ptr[e0 + rows]]
                .iter()
                .map(|&(p, _)| vals[p as usize])
                .collect();
            let own: Vec<f64> = self.own_entry[e0..e0 + rows]
                .iter()
                .map(|&p| vals[p as usize])
                .collect();
            let same = |f: &JacFamily| {
                (f.rows, f.e, f.n_c) == (rows, e, n_c)
                    && f.base == base
                    && f.stride == stride
                    && f.v == v
                    && f.own == own
            };
            let hash = || {
                let words = (base.iter().chain(stride).map(|&x| x as u64))
                    .chain(v.iter().chain(&own).map(|x| x.to_bits()));
                hash_words((rows as u64) << 32 | (e as u64) << 16 | n_c as u64, words)
            };
            let new = || JacFamily {
                rows,
                e,
                n_c,
                base: base.to_vec(),
                stride: stride.to_vec(),
                theta: (0..e)
                    .flat_map(|b| (0..rows).map(move |k| base[b] + k as u32 * stride[b]))
                    .collect(),
                v_cols: by_columns(&v, rows, n_c),
                v: v.clone(),
                own: own.clone(),
            };
            let fi = family_of(&mut self.fams, &mut index, last, same, hash, new) as u32;
            last = Some(fi as usize);
            let at = self.blocks.len();
            self.g.extend((0..e).map(|b| theta_val(0, b)));
            self.cols.extend(
                elim.cols[elim.ptr[e0]..elim.ptr[e0] + n_c]
                    .iter()
                    .map(|&(p, _)| jac.col_idx[p as usize] as u32),
            );
            let own_cols = &self.own_col[e0..e0 + rows];
            let consecutive = own_cols
                .iter()
                .enumerate()
                .all(|(k, &c)| c as usize == own_cols[0] as usize + k);
            self.blocks.push(JacBlock {
                fam: fi,
                row0: row0 as u32,
                e0: e0 as u32,
                at: at as u32,
                own0: if consecutive { own_cols[0] } else { NO_BLOCK },
            });
            in_block[row0..row0 + rows]
                .iter_mut()
                .for_each(|b| *b = true);
        }
        self.rest = (0..m as u32).filter(|&i| !in_block[i as usize]).collect();
        // the two threads' halves by their work, the rows outside the blocks (the TIMIT
        // shape's hidden rows, all in the first half of the rows) and the blocks' in order
        let mut units = Vec::with_capacity(self.rest.len() + self.blocks.len());
        let (mut r, mut b) = (self.rest.iter().peekable(), self.blocks.iter().peekable());
        loop {
            let rest_first = match (r.peek(), b.peek()) {
                (None, None) => break,
                (Some(&&i), Some(blk)) => i < blk.row0,
                (other, _) => other.is_some(),
            };
            if rest_first {
                let i = *r.next().expect("peeked") as usize;
                units.push((i..i + 1, jac.row_ptr[i + 1] - jac.row_ptr[i]));
            } else {
                let blk = b.next().expect("peeked");
                let f = &self.fams[blk.fam as usize];
                let row0 = blk.row0 as usize;
                units.push((row0..row0 + f.rows, f.rows * (1 + f.e + f.n_c)));
            }
        }
        self.mid = split_row(&units, m);
        let mid = self.mid as u32;
        self.rest_half = self.rest.partition_point(|&i| i < mid);
        self.block_half = self.blocks.partition_point(|b| b.row0 < mid);
    }

    /// out = J x on the rows of `blocks` and `rest` (rows from `first` in `out`).
    fn mul(
        &self,
        jac: &SparseRows,
        blocks: &[JacBlock],
        rest: &[u32],
        x: &[f64],
        out: &mut [f64],
        first: usize,
    ) {
        // x at each family's θ columns (the same for all its blocks), position after position
        let x_theta: Vec<Vec<f64>> = self
            .fams
            .iter()
            .map(|f| f.theta.iter().map(|&c| x[c as usize]).collect())
            .collect();
        for blk in blocks {
            let f = &self.fams[blk.fam as usize];
            let (at, e0, rows) = (blk.at as usize, blk.e0 as usize, f.rows);
            let g = &self.g[at * f.e..(at + 1) * f.e];
            let row0 = blk.row0 as usize - first;
            let out = &mut out[row0..row0 + rows];
            // row by row the same sums in the same order: the own column, the positions, V
            if blk.own0 != NO_BLOCK {
                let own0 = blk.own0 as usize;
                for ((o, a), xo) in out.iter_mut().zip(&f.own).zip(&x[own0..own0 + rows]) {
                    *o = a * xo;
                }
            } else {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = f.own[k] * x[self.own_col[e0 + k] as usize];
                }
            }
            let xt = &x_theta[blk.fam as usize];
            for (b, gb) in g.iter().enumerate() {
                for (o, xv) in out.iter_mut().zip(&xt[b * rows..(b + 1) * rows]) {
                    *o += gb * xv;
                }
            }
            for (c, &col) in self.cols[at * f.n_c..(at + 1) * f.n_c].iter().enumerate() {
                let xc = x[col as usize];
                for (o, v) in out.iter_mut().zip(&f.v_cols[c * rows..(c + 1) * rows]) {
                    *o += v * xc;
                }
            }
        }
        for &i in rest {
            let i = i as usize;
            let mut acc = 0.0;
            for p in jac.row_ptr[i]..jac.row_ptr[i + 1] {
                acc += jac.values[p] * x[jac.col_idx[p]];
            }
            out[i - first] = acc;
        }
    }

    /// out = Jᵀ y over the rows of `blocks` and `rest`.
    fn mul_t(
        &self,
        jac: &SparseRows,
        blocks: &[JacBlock],
        rest: &[u32],
        y: &[f64],
        out: &mut [f64],
    ) {
        out.iter_mut().for_each(|o| *o = 0.0);
        // each family's sums at its θ columns (position after position), over its blocks in
        // order, added to `out` after the blocks (no other row of a block reads them)
        let mut t_theta: Vec<Vec<f64>> =
            self.fams.iter().map(|f| vec![0.0; f.theta.len()]).collect();
        for blk in blocks {
            let f = &self.fams[blk.fam as usize];
            let (at, e0, rows) = (blk.at as usize, blk.e0 as usize, f.rows);
            let g = &self.g[at * f.e..(at + 1) * f.e];
            let row0 = blk.row0 as usize;
            let yb = &y[row0..row0 + rows];
            // a row's single-entry column is read by that row alone
            if blk.own0 != NO_BLOCK {
                let own0 = blk.own0 as usize;
                for ((o, a), yi) in out[own0..own0 + rows].iter_mut().zip(&f.own).zip(yb) {
                    *o += a * yi;
                }
            } else {
                for (k, yi) in yb.iter().enumerate() {
                    out[self.own_col[e0 + k] as usize] += f.own[k] * yi;
                }
            }
            let tt = &mut t_theta[blk.fam as usize];
            for (b, gb) in g.iter().enumerate() {
                for (t, yi) in tt[b * rows..(b + 1) * rows].iter_mut().zip(yb) {
                    *t += gb * yi;
                }
            }
            for (c, &col) in self.cols[at * f.n_c..(at + 1) * f.n_c].iter().enumerate() {
                let vc = &f.v_cols[c * rows..(c + 1) * rows];
                let mut acc = 0.0;
                for (v, yi) in vc.iter().zip(yb) {
                    acc += v * yi;
                }
                out[col as usize] += acc;
            }
        }
        for (f, tt) in self.fams.iter().zip(&t_theta) {
            for (&c, t) in f.theta.iter().zip(tt) {
                out[c as usize] += t;
            }
        }
        for &i in rest {
            let i = i as usize;
            let yi = y[i];
            if yi == 0.0 {
                continue;
            }
            for p in jac.row_ptr[i]..jac.row_ptr[i + 1] {
                out[jac.col_idx[p]] += jac.values[p] * yi;
            }
        }
    }
}

/// U = J_{F,θ} D_θ/√ρ held by runs of rows that share their values. In a layered model the
/// rows of one lifted block read the parameters with the same values at columns that move by
/// a fixed stride from row to row (the TIMIT shape's 129 output rows of a time step: the
/// values (h_t, 1) at A's and c's columns k; the 2 hidden rows: (h_{t−1}, x_t, 1) at W's, V's
/// and b's rows), so a run stores its values once and no column indices: the passes of the
/// conjugate gradients on C read about a fifth of the bytes of U by rows. The runs' sums are
/// in the order of U by rows, so the products are the same numbers.
#[derive(Default)]
struct URows {
    /// Groups of consecutive rows with the same number of θ entries whose columns move by a
    /// fixed stride per position (from J's pattern; a group never spans the middle row m/2,
    /// where the passes split into halves).
    groups: Vec<URowGroup>,
    /// Per group position: the first row's column, and the stride.
    base: Vec<u32>,
    stride: Vec<u32>,
    /// Runs of rows of one group with equal values at the point (see [`URows::compact`]).
    runs: Vec<URun>,
    /// The runs' values (J/√ρ), `e` per run.
    vals: Vec<f64>,
    /// The first run in the second half of the rows.
    half_run: usize,
    /// Where each group's runs start in `runs` (and their end).
    group_runs: Vec<u32>,
    /// The free rows and θ columns at the point: U is zero outside them.
    free_row: Vec<bool>,
    free_col: Vec<bool>,
}

/// A group of [`URows`]: `rows` rows from `row0`, `e` θ entries each, positions at `pos`.
#[derive(Clone, Copy)]
struct URowGroup {
    row0: u32,
    rows: u32,
    e: u32,
    pos: u32,
}

/// A run of [`URows`]: `rows` rows from `row0`, the `shift`-th on of their group (whose
/// positions are at `pos`), with the values at `val`.
#[derive(Clone, Copy)]
struct URun {
    row0: u32,
    rows: u32,
    e: u32,
    pos: u32,
    shift: u32,
    val: u32,
}

impl URun {
    /// (column of the run's first row, stride, value) of position `kk`.
    fn position(&self, u: &URows, kk: usize) -> (usize, usize, f64) {
        let at = self.pos as usize + kk;
        let stride = u.stride[at] as usize;
        (
            u.base[at] as usize + self.shift as usize * stride,
            stride,
            u.vals[self.val as usize + kk],
        )
    }

    /// The first row's columns, the strides and the values of all its positions.
    fn positions<'a>(&self, u: &'a URows) -> (&'a [u32], &'a [u32], &'a [f64]) {
        let (at, e, val) = (self.pos as usize, self.e as usize, self.val as usize);
        (
            &u.base[at..at + e],
            &u.stride[at..at + e],
            &u.vals[val..val + e],
        )
    }

    fn rows(&self) -> std::ops::Range<usize> {
        self.row0 as usize..(self.row0 + self.rows) as usize
    }

    /// Which θ columns its rows read: runs with the same key read the same ones.
    fn columns(&self) -> (u32, u32, u32) {
        (self.pos, self.shift, self.rows)
    }
}

/// w at the columns of a run's rows, row after row, kept for the next run at the same columns.
#[derive(Default)]
struct Packed {
    key: Option<(u32, u32, u32)>,
    w: Vec<f64>,
}

impl Packed {
    fn gather(&mut self, u: &URows, run: &URun, wm: &[f64]) -> &[f64] {
        let key = run.columns();
        if self.key != Some(key) {
            let (base, stride, _) = run.positions(u);
            self.w.clear();
            for r in 0..run.rows as usize {
                let row = run.shift as usize + r;
                self.w.extend(
                    base.iter()
                        .zip(stride)
                        .map(|(&b, &s)| wm[b as usize + row * s as usize]),
                );
            }
            self.key = Some(key);
        }
        &self.w
    }
}

impl URows {
    /// The groups of J's θ entries (`theta_ptr`, `theta_entries`: J's entries in θ columns by
    /// row; `col_idx`: J's columns).
    fn new(theta_ptr: &[usize], theta_entries: &[u32], col_idx: &[u32]) -> URows {
        let m = theta_ptr.len() - 1;
        let mid = m / 2;
        let count = |i: usize| theta_ptr[i + 1] - theta_ptr[i];
        let col = |i: usize, kk: usize| col_idx[theta_entries[theta_ptr[i] + kk] as usize];
        let mut u = URows::default();
        // the last positions of each length
        let mut same_pos: HashMap<usize, usize> = HashMap::new();
        let mut i = 0;
        while i < m {
            let e = count(i);
            if e == 0 {
                i += 1;
                continue;
            }
            let joins = |r: usize| r < m && r != mid && count(r) == e;
            let pos = u.base.len();
            u.base.extend((0..e).map(|kk| col(i, kk)));
            let mut rows = 1;
            if joins(i + 1) && (0..e).all(|kk| col(i + 1, kk) >= col(i, kk)) {
                u.stride
                    .extend((0..e).map(|kk| col(i + 1, kk) - col(i, kk)));
                rows = 2;
                let fits = |r: usize| {
                    (0..e).all(|kk| {
                        // in 64 bits: a large stride times r must not wrap onto a column
                        let next = u.base[pos + kk] as u64 + r as u64 * u.stride[pos + kk] as u64;
                        col(i + r, kk) as u64 == next
                    })
                };
                while joins(i + rows) && fits(rows) {
                    rows += 1;
                }
            } else {
                u.stride.extend(std::iter::repeat_n(0, e));
            }
            // groups with the same columns and strides share them (on the TIMIT shape every
            // step's hidden rows, and every step's output rows): the passes over U gather each
            // shared set of columns once ([`URows::mul_runs`], [`URows::tmul`])
            let pos = match same_pos.get(&e).copied().filter(|&q| {
                u.base[q..q + e] == u.base[pos..pos + e]
                    && u.stride[q..q + e] == u.stride[pos..pos + e]
            }) {
                Some(q) => {
                    u.base.truncate(pos);
                    u.stride.truncate(pos);
                    q
                }
                None => {
                    same_pos.insert(e, pos);
                    pos
                }
            };
            u.groups.push(URowGroup {
                row0: i as u32,
                rows: rows as u32,
                e: e as u32,
                pos: pos as u32,
            });
            i += rows;
        }
        u
    }

    /// U at `k`: within each group, the runs of rows with equal values of J.
    fn compact(&mut self, k: At<'_>, theta_ptr: &[usize], theta_entries: &[u32], n_theta: usize) {
        let scale = 1.0 / k.rho.sqrt();
        let mid = (theta_ptr.len() - 1) / 2;
        let entry = |i: usize, kk: usize| theta_entries[theta_ptr[i] + kk] as usize;
        self.runs.clear();
        self.vals.clear();
        self.group_runs.clear();
        self.half_run = usize::MAX;
        for g in &self.groups {
            self.group_runs.push(self.runs.len() as u32);
            let (row0, e) = (g.row0 as usize, g.e as usize);
            let mut r = 0;
            while r < g.rows as usize {
                let start = r;
                let val = self.vals.len();
                self.vals
                    .extend((0..e).map(|kk| k.jac[entry(row0 + start, kk)] * scale));
                r += 1;
                while r < g.rows as usize
                    && (0..e).all(|kk| k.jac[entry(row0 + r, kk)] == k.jac[entry(row0 + start, kk)])
                {
                    r += 1;
                }
                if self.half_run == usize::MAX && row0 + start >= mid {
                    self.half_run = self.runs.len();
                }
                self.runs.push(URun {
                    row0: (row0 + start) as u32,
                    rows: (r - start) as u32,
                    e: g.e,
                    pos: g.pos,
                    shift: start as u32,
                    val: val as u32,
                });
            }
        }
        self.group_runs.push(self.runs.len() as u32);
        self.half_run = self.half_run.min(self.runs.len());
        self.set_free(k, n_theta);
    }

    /// The free rows and θ columns at `k` (the runs depend on J's values and ρ alone).
    fn set_free(&mut self, k: At<'_>, n_theta: usize) {
        self.free_row.clear();
        self.free_row.extend_from_slice(k.free_y);
        self.free_col.clear();
        self.free_col.extend_from_slice(&k.free_s[..n_theta]);
    }

    /// The runs of the first half of the rows (below m/2) and of the second.
    fn halves(&self) -> (&[URun], &[URun]) {
        self.runs.split_at(self.half_run)
    }

    /// w with the θ columns that are not free set to zero.
    fn masked(&self, w: &[f64]) -> Vec<f64> {
        w.iter()
            .zip(&self.free_col)
            .map(|(&x, &f)| if f { x } else { 0.0 })
            .collect()
    }

    /// out = (U w) on the rows from `first` (`out` holds them), for the given runs (all in
    /// those rows), `wm` the masked w; rows in no run get zero.
    fn mul(&self, runs: &[URun], wm: &[f64], out: &mut [f64], first: usize) {
        out.iter_mut().for_each(|o| *o = 0.0);
        self.mul_runs(runs, wm, out, first);
    }

    /// out = (U w) on the rows of the given runs (rows from `first` in `out`), `wm` the
    /// masked w; the other rows of `out` are left as they are.
    fn mul_runs(&self, runs: &[URun], wm: &[f64], out: &mut [f64], first: usize) {
        let mut packed = Packed::default();
        for run in runs {
            let rows = run.rows();
            let o = &mut out[rows.start - first..rows.end - first];
            if run.rows < run.e {
                // few rows of many positions (the TIMIT shape's hidden rows: 2 of 132): row by
                // row, each one pass over its positions in four partial sums ([`dot_lanes`]),
                // with w at the rows' columns gathered once for all runs at the same columns
                let vals = run.positions(self).2;
                let e = run.e as usize;
                let w = packed.gather(self, run, wm);
                for (r, o) in o.iter_mut().enumerate() {
                    *o = dot_lanes(vals, &w[r * e..(r + 1) * e]);
                }
            } else {
                o.iter_mut().for_each(|o| *o = 0.0);
                for kk in 0..run.e as usize {
                    let (b, s, v) = run.position(self, kk);
                    for (r, o) in o.iter_mut().enumerate() {
                        *o += v * wm[b + r * s];
                    }
                }
            }
            for (o, &f) in o.iter_mut().zip(&self.free_row[rows]) {
                if !f {
                    *o = 0.0;
                }
            }
        }
    }

    /// acc += (Uᵀ t) over the given runs (θ columns that are not free included: the caller
    /// zeroes them).
    fn tmul(&self, runs: &[URun], t: &[f64], acc: &mut [f64]) {
        // the runs of few rows add into their rows' columns packed (one sum per set of
        // columns, added to `acc` at the end)
        let mut sums: Vec<((u32, u32, u32), Vec<f64>)> = Vec::new();
        for run in runs {
            let rows = run.rows();
            let (t, free) = (&t[rows.clone()], &self.free_row[rows]);
            if run.rows < run.e {
                // row by row, as in `mul_runs` (the same terms; in another order only where
                // two sets of rows share a column, not on the TIMIT shape)
                let vals = run.positions(self).2;
                let e = run.e as usize;
                let key = run.columns();
                let at = match sums.iter().position(|s| s.0 == key) {
                    Some(at) => at,
                    None => {
                        sums.push((key, vec![0.0; e * run.rows as usize]));
                        sums.len() - 1
                    }
                };
                let sum = &mut sums[at].1;
                for (r, (&ti, &f)) in t.iter().zip(free).enumerate() {
                    if !(f && ti != 0.0) {
                        continue;
                    }
                    for (s, v) in sum[r * e..(r + 1) * e].iter_mut().zip(vals) {
                        *s += v * ti;
                    }
                }
                continue;
            }
            for kk in 0..run.e as usize {
                let (b, s, v) = run.position(self, kk);
                for (r, (&ti, &f)) in t.iter().zip(free).enumerate() {
                    if f && ti != 0.0 {
                        acc[b + r * s] += v * ti;
                    }
                }
            }
        }
        for ((pos, shift, rows), sum) in &sums {
            let e = sum.len() / *rows as usize;
            let at = *pos as usize;
            let (base, stride) = (&self.base[at..at + e], &self.stride[at..at + e]);
            for r in 0..*rows as usize {
                let row = *shift as usize + r;
                for ((&b, &s), v) in base.iter().zip(stride).zip(&sum[r * e..(r + 1) * e]) {
                    acc[b as usize + row * s as usize] += v;
                }
            }
        }
    }

    /// Σ (U w)ᵢ² over the given runs, `wm` the masked w.
    fn norm2(&self, runs: &[URun], wm: &[f64]) -> f64 {
        let mut sum = 0.0;
        let mut row = Vec::new();
        for run in runs {
            row.clear();
            row.resize(run.rows as usize, 0.0);
            self.mul(std::slice::from_ref(run), wm, &mut row, run.row0 as usize);
            for v in &row {
                sum += v * v;
            }
        }
        sum
    }

    /// Zeroes the θ columns that are not free.
    fn mask_columns(&self, out: &mut [f64]) {
        for (o, &f) in out.iter_mut().zip(&self.free_col) {
            if !f {
                *o = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A (P1)-shaped J: 3 parameters; rows 0..6 hidden (their own column, read again by
    /// later rows), rows 6..14 outputs (their own column read by no other row, plus two hidden
    /// columns), each row with parameter entries.
    fn jac() -> SparseRows {
        let (n_theta, m) = (3, 14);
        let mut j = SparseRows {
            ncols: n_theta + m,
            row_ptr: vec![0],
            ..Default::default()
        };
        let mut x = 0.37f64;
        let mut next = || {
            x = (x * 7.13 + 0.291).fract();
            x - 0.5
        };
        for i in 0..m {
            let mut cols = vec![i % n_theta, (i + 1) % n_theta, n_theta + i];
            if (1..6).contains(&i) {
                cols.push(n_theta + i - 1);
            }
            if i >= 6 {
                cols.extend([n_theta + 2 * (i % 3), n_theta + 2 * (i % 3) + 1]);
            }
            cols.sort_unstable();
            cols.dedup();
            for c in cols {
                j.col_idx.push(c);
                j.values.push(if c == n_theta + i { 1.0 } else { next() });
            }
            j.row_ptr.push(j.col_idx.len());
        }
        j
    }

    /// M z for M = δI + J_F D J_Fᵀ/ρ on the free rows.
    /// The point of a Newton system at J's own values (ρ = 0.7, δ = 1e-3) and the free sets.
    fn kept_at(j: &SparseRows, free_s: Vec<bool>, free_y: Vec<bool>) -> Kept {
        Kept {
            jac: j.values.clone(),
            rho: 0.7,
            delta: 1e-3,
            free_s,
            free_y,
        }
    }

    /// Another point than [`kept_at`]'s: J scaled by `scale`, ρ = `rho`, δ = 1e-2, all free.
    fn kept_elsewhere(j: &SparseRows, scale: f64, rho: f64) -> Kept {
        Kept {
            jac: j.values.iter().map(|v| scale * v).collect(),
            rho,
            delta: 1e-2,
            free_s: vec![true; j.ncols],
            free_y: vec![true; j.nrows()],
        }
    }

    /// A right-hand side of the Newton system: cos(0.3 i) on the free rows, 0 elsewhere.
    fn rhs_on_free(free_y: &[bool]) -> Vec<f64> {
        free_y
            .iter()
            .enumerate()
            .map(|(i, free)| if *free { (i as f64 * 0.3).cos() } else { 0.0 })
            .collect()
    }

    fn newton_matrix_times(j: &SparseRows, k: &Kept, z: &[f64]) -> Vec<f64> {
        let m = j.nrows();
        let mut t = vec![0.0; j.ncols];
        for i in (0..m).filter(|&i| k.free_y[i]) {
            for p in j.row_ptr[i]..j.row_ptr[i + 1] {
                t[j.col_idx[p]] += k.jac[p] * z[i];
            }
        }
        (0..m)
            .map(|i| {
                if !k.free_y[i] {
                    return 0.0;
                }
                let jt: f64 = (j.row_ptr[i]..j.row_ptr[i + 1])
                    .filter(|&p| k.free_s[j.col_idx[p]])
                    .map(|p| k.jac[p] * t[j.col_idx[p]])
                    .sum();
                k.delta * z[i] + jt / k.rho
            })
            .collect()
    }

    /// With the preconditioner formed at the point it is applied at, it is the Newton matrix's
    /// inverse, by rows and through the augmented matrix with eliminated rows alike (some
    /// rows and columns not free).
    #[test]
    fn the_eliminated_rows_give_the_newton_matrix_inverse() {
        let j = jac();
        let m = j.nrows();
        let mut free_s = vec![true; j.ncols];
        free_s[3 + 7] = false;
        free_s[3 + 2] = false;
        let mut free_y = vec![true; m];
        free_y[9] = false;
        free_y[4] = false;
        let kept = Kept {
            jac: j.values.clone(),
            rho: 0.7,
            delta: 1e-3,
            free_s,
            free_y: free_y.clone(),
        };
        let r: Vec<f64> = (0..m)
            .map(|i| {
                if free_y[i] {
                    (i as f64 * 0.7).sin()
                } else {
                    0.0
                }
            })
            .collect();
        for augmented in [false, true] {
            let mut s = Schur::new(&j, 3, augmented).unwrap();
            if let BForm::Augmented { elim, n_l, .. } = &s.form {
                assert_eq!(elim.rows.len(), 8, "the output rows are eliminated");
                assert_eq!(*n_l, 6, "the hidden columns are unknowns");
            }
            s.reform(kept.clone()).unwrap();
            let mut z = vec![0.0; m];
            s.apply(&free_y, &r, &mut z);
            let mz = newton_matrix_times(&j, &kept, &z);
            for i in 0..m {
                assert!(
                    (mz[i] - r[i]).abs() < 1e-10,
                    "{augmented}: row {i}: {mz:?} {r:?}"
                );
            }
        }
    }

    /// Through the augmented matrix, B factored at a point and C kept from another: the
    /// conjugate gradients on C solve the Newton system at the first point (a C̃ from another
    /// point takes them several iterations, the C of the same point one).
    #[test]
    fn the_conjugate_gradients_on_c_solve_the_newton_system_with_a_kept_c() {
        let j = jac();
        let m = j.nrows();
        let mut s = Schur::new(&j, 3, true).unwrap();
        assert!(s.exact_b());
        let old = kept_elsewhere(&j, 0.8, 0.3);
        s.reform(old).unwrap();
        let mut free_s = vec![true; j.ncols];
        free_s[3 + 2] = false;
        let mut free_y = vec![true; m];
        free_y[9] = false;
        let now = kept_at(&j, free_s, free_y.clone());
        let b = rhs_on_free(&free_y);
        let norm_b = dot(&b, &b).sqrt();
        let mut iterations = Vec::new();
        for same in [false, true] {
            if same {
                s.reform(now.clone()).unwrap();
            }
            s.factor_at(now.at()).unwrap();
            let mut d = vec![1.0; m];
            let (converged, it) = s.solve_through_c(&free_y, &b, &mut d, 1e-12 * norm_b, 50);
            assert!(converged, "{same}: {it} iterations");
            iterations.push(it);
            let md = newton_matrix_times(&j, &now, &d);
            for i in 0..m {
                assert!(
                    (md[i] - b[i]).abs() < 1e-10,
                    "{same}: row {i}: {md:?} {b:?}"
                );
            }
            assert_eq!(d[9], 0.0, "a row that is not free has no step");
        }
        assert!(iterations[0] > 1, "{iterations:?}");
        assert!(iterations[1] <= 1, "{iterations:?}");
    }

    /// The conjugate gradients on C learn it: after a solve with a C̃ kept from another point,
    /// H maps each explored C p to p (H Y = S), stays symmetric, and the same system again
    /// converges at once (without the update the first check fails).
    #[test]
    fn the_conjugate_gradients_on_c_learn_c_from_their_directions() {
        let j = rnn_jac(40);
        let (m, n_theta) = (j.nrows(), 21);
        let old = kept_elsewhere(&j, 0.7, 0.2);
        let mut free_y = vec![true; m];
        free_y[5 * 7 + 4] = false;
        let now = kept_at(&j, vec![true; j.ncols], free_y.clone());
        let b = rhs_on_free(&free_y);
        let norm_b = dot(&b, &b).sqrt();
        let mut s = Schur::new(&j, n_theta, true).unwrap();
        s.reform(old).unwrap();
        s.factor_at(now.at()).unwrap();
        let mut d = vec![0.0; m];
        let (converged, first) = s.solve_through_c(&free_y, &b, &mut d, 1e-12 * norm_b, 50);
        assert!(converged && first > 3, "{first} iterations");
        let k = s.learnt_p.len() / n_theta;
        assert_eq!(k, first);
        for c in 0..k {
            let (p, q) = (
                &s.learnt_p[c * n_theta..(c + 1) * n_theta],
                &s.learnt_q[c * n_theta..(c + 1) * n_theta],
            );
            let mut hq = vec![0.0; n_theta];
            s.c_inv_mul(q, &mut hq);
            for (a, b) in hq.iter().zip(p) {
                assert!(
                    (a - b).abs() < 1e-8 * (1.0 + b.abs()),
                    "direction {c}: {a} {b}"
                );
            }
        }
        for a in 0..n_theta {
            for b in 0..a {
                let (x, y) = (s.c_inv[(a, b)], s.c_inv[(b, a)]);
                assert!(
                    (x - y).abs() <= 1e-12 * (1.0 + x.abs()),
                    "({a}, {b}): {x} {y}"
                );
            }
        }
        let (converged, again) = s.solve_through_c(&free_y, &b, &mut d, 1e-12 * norm_b, 50);
        assert!(converged && again <= 1, "{again} iterations after {first}");
        let md = newton_matrix_times(&j, &now, &d);
        for i in 0..m {
            assert!((md[i] - b[i]).abs() < 1e-10, "row {i}: {} {}", md[i], b[i]);
        }
    }

    /// What B and U take from J's values alone is kept across the Newton systems of one set
    /// of values and recomputed for the next: at the same values with other free sets, and at
    /// new values in the same buffer (announced by [`Schur::jac_blocks`]), the Newton system
    /// is solved at its own point (with the kept parts of another set of values it is not).
    #[test]
    fn what_b_and_u_take_from_j_alone_follows_the_values() {
        let mut j = rnn_jac(8);
        let (m, n_theta) = (j.nrows(), 21);
        let mut s = Schur::new(&j, n_theta, true).unwrap();
        s.reform(kept_at(&j, vec![true; j.ncols], vec![true; m]))
            .unwrap();
        let solve_at = |s: &mut Schur, j: &SparseRows, free_s: Vec<bool>, free_y: Vec<bool>| {
            let at = At {
                jac: &j.values,
                rho: 0.7,
                delta: 1e-3,
                free_s: &free_s,
                free_y: &free_y,
            };
            s.factor_at(at).unwrap();
            let b = rhs_on_free(&free_y);
            let norm_b = dot(&b, &b).sqrt();
            let mut d = vec![0.0; m];
            let (converged, it) = s.solve_through_c(&free_y, &b, &mut d, 1e-12 * norm_b, 80);
            assert!(converged, "{it} iterations");
            let md = newton_matrix_times(j, &at.to_kept(), &d);
            (0..m).map(|i| (md[i] - b[i]).abs()).fold(0.0, f64::max)
        };
        s.jac_blocks(&j);
        let all = |n| vec![true; n];
        assert!(solve_at(&mut s, &j, all(j.ncols), all(m)) < 1e-10);
        let mut free_s = all(j.ncols);
        free_s[n_theta + 3 * 7 + 1] = false;
        let mut free_y = all(m);
        free_y[2 * 7 + 3] = false;
        free_y[4 * 7] = false;
        assert!(solve_at(&mut s, &j, free_s.clone(), free_y.clone()) < 1e-10);
        j.values
            .iter_mut()
            .enumerate()
            .for_each(|(p, v)| *v *= 1.0 + 0.05 * (p % 7) as f64);
        s.jac_blocks(&j);
        assert!(solve_at(&mut s, &j, free_s.clone(), free_y.clone()) < 1e-10);
        // the same buffer changed without a new set announced: the kept parts are stale
        j.values.iter_mut().for_each(|v| *v *= 1.5);
        assert!(solve_at(&mut s, &j, free_s, free_y) > 1e-6);
    }

    /// U by runs of rows gives U w, Uᵀ t and ‖U w‖ of U by rows: on a J whose rows read the
    /// parameters at strided columns with values repeated in runs (an output layer's shape)
    /// and elsewhere not, some rows and θ columns not free.
    #[test]
    fn the_halves_of_a_pass_split_its_work_at_a_unit() {
        // a heavy unit first (the hidden rows), then many light ones (the output blocks)
        let mut units = vec![(0..2, 260)];
        units.extend((0..40).map(|k| (2 + 3 * k..5 + 3 * k, 12)));
        let mid = split_row(&units, 122);
        let first: usize = units.iter().filter(|u| u.0.end <= mid).map(|u| u.1).sum();
        assert!(units.iter().any(|u| u.0.start == mid), "{mid}");
        assert!(
            (first as f64 - 370.0).abs() <= 12.0,
            "{mid}: {first} of 740"
        );
        // by rows the first half (below row 61) would hold 260 + 19 × 12 = 488 of 740
        assert_eq!(split_row(&[], 7), 7);
        assert_eq!(split_row(&[(0..5, 10)], 5), 0);
    }

    #[test]
    fn u_by_runs_of_rows_multiplies_as_u_by_rows() {
        let (n_theta, m) = (12, 14);
        let mut j = SparseRows {
            ncols: n_theta + m,
            row_ptr: vec![0],
            ..Default::default()
        };
        for i in 0..m {
            // rows 0..4: columns 2i, 2i+1 and 8 + i, values repeated on rows 0..3 (a run) and
            // changed at row 3; rows 4..7: every θ column; rows 7..11: columns i − 7, i − 6;
            // rows 11..14: every θ column again (a group at the columns of rows 4..7), values
            // repeated on rows 11 and 12 (a run of fewer rows than columns)
            let cols: Vec<usize> = match i {
                0..4 => vec![2 * i, 2 * i + 1, 8 + i],
                4..7 | 11.. => (0..n_theta).collect(),
                _ => vec![i - 7, i - 6],
            };
            for (kk, c) in cols.into_iter().enumerate() {
                j.col_idx.push(c);
                let v = if i < 3 {
                    0.5 + kk as f64
                } else if i == 11 || i == 12 {
                    (kk as f64 * 0.4).cos()
                } else {
                    ((i * 7 + kk * 3) as f64).sin()
                };
                j.values.push(v);
            }
            j.col_idx.push(n_theta + i);
            j.values.push(1.0);
            j.row_ptr.push(j.col_idx.len());
        }
        let mut free_s = vec![true; j.ncols];
        free_s[3] = false;
        let mut free_y = vec![true; m];
        free_y[1] = false;
        free_y[8] = false;
        let at = At {
            jac: &j.values,
            rho: 0.6,
            delta: 1e-3,
            free_s: &free_s,
            free_y: &free_y,
        };
        let mut s = Schur::new(&j, n_theta, false).unwrap();
        s.compact_u(at);
        assert!(
            s.u.runs.iter().any(|r| r.rows == 3),
            "rows 0..3 make one run"
        );
        assert!(
            s.u.runs.iter().any(|r| r.rows == 2 && r.e == 12),
            "rows 11, 12 make one run"
        );
        let shared: Vec<u32> =
            s.u.groups
                .iter()
                .filter(|g| g.e == 12)
                .map(|g| g.pos)
                .collect();
        assert!(
            shared.len() == 2 && shared[0] == shared[1],
            "rows 4..7 and 11..14 share their columns: {shared:?}"
        );
        // U by rows
        let u = |i: usize, c: usize| -> f64 {
            (j.row_ptr[i]..j.row_ptr[i + 1])
                .filter(|&p| j.col_idx[p] == c && free_y[i] && free_s[c])
                .map(|p| j.values[p] / 0.6f64.sqrt())
                .sum()
        };
        let w: Vec<f64> = (0..n_theta).map(|c| (c as f64 * 0.9).cos()).collect();
        let t: Vec<f64> = (0..m).map(|i| (i as f64 * 1.3).sin()).collect();
        s.u_mul(&w);
        let mut norm = 0.0;
        for i in 0..m {
            let want: f64 = (0..n_theta).map(|c| u(i, c) * w[c]).sum();
            assert!((s.t2[i] - want).abs() < 1e-14, "U w, row {i}");
            norm += want * want;
        }
        assert!((s.u_norm(&w) - norm.sqrt()).abs() < 1e-14);
        s.t.copy_from_slice(&t);
        let mut out = vec![f64::NAN; n_theta];
        s.u_tmul(true, &mut out);
        for c in 0..n_theta {
            let want: f64 = (0..m).map(|i| u(i, c) * t[i]).sum();
            assert!((out[c] - want).abs() < 1e-14, "Uᵀ t, column {c}");
        }
    }

    /// An RNN-shaped J: `steps` time steps of 2 hidden rows (reading the previous step's
    /// hidden columns; θ: W's row and b) and 5 output rows (their own column, read by no
    /// other row, and the step's hidden columns with J = −A; θ: A's row and c with the
    /// values (h_t, 1), the same on the step's rows). θ: W (4), b (2), A by columns (10),
    /// c (5).
    fn rnn_jac(steps: usize) -> SparseRows {
        rnn_jac_in(1, steps)
    }

    /// `seqs` sequences of `steps` steps of [`rnn_jac`]'s shape, their rows by time step (at
    /// each step the sequences in turn, as the TIMIT shape's).
    fn rnn_jac_in(seqs: usize, steps: usize) -> SparseRows {
        let (nh, no) = (2, 5);
        let n_theta = nh * nh + nh + no * nh + no;
        let m = seqs * steps * (nh + no);
        let mut j = SparseRows {
            ncols: n_theta + m,
            row_ptr: vec![0],
            ..Default::default()
        };
        let a = |k: usize, h: usize| ((k * 3 + h * 5) as f64 * 0.77).sin();
        let hv = |t: usize, h: usize| ((t * 7 + h) as f64 * 1.31).cos();
        for t in 0..steps {
            for q in 0..seqs {
                let row0 = (t * seqs + q) * (nh + no);
                let at = t + 97 * q;
                for h in 0..nh {
                    let mut e: Vec<(usize, f64)> = vec![(n_theta + row0 + h, 1.0)];
                    if t > 0 {
                        let prev = row0 - seqs * (nh + no);
                        for g in 0..nh {
                            e.push((n_theta + prev + g, 0.3 + 0.1 * (h + g) as f64));
                        }
                    }
                    for g in 0..nh {
                        e.push((h * nh + g, if t > 0 { -hv(at - 1, g) } else { 0.0 }));
                    }
                    e.push((nh * nh + h, -1.0));
                    e.sort_by_key(|x| x.0);
                    j.col_idx.extend(e.iter().map(|x| x.0));
                    j.values.extend(e.iter().map(|x| x.1));
                    j.row_ptr.push(j.col_idx.len());
                }
                for k in 0..no {
                    let mut e: Vec<(usize, f64)> = vec![(n_theta + row0 + nh + k, 1.0)];
                    for h in 0..nh {
                        e.push((n_theta + row0 + h, -a(k, h)));
                        e.push((nh * nh + nh + h * no + k, -hv(at, h)));
                    }
                    e.push((nh * nh + nh + nh * no + k, -1.0));
                    e.sort_by_key(|x| x.0);
                    j.col_idx.extend(e.iter().map(|x| x.0));
                    j.values.extend(e.iter().map(|x| x.1));
                    j.row_ptr.push(j.col_idx.len());
                }
            }
        }
        j
    }

    /// The rows the formation of C takes one by one, grouped by their θ columns (the hidden
    /// rows, one group per hidden unit), give C's columns by dense products by blocks of rows
    /// as they give them row by row; with a hidden row and a θ column of W not free.
    #[test]
    fn grouped_rows_give_c_as_the_rows_one_by_one() {
        let j = rnn_jac(40);
        let (m, n_theta) = (j.nrows(), 21);
        let mut free_s = vec![true; j.ncols];
        free_s[3] = false;
        let mut free_y = vec![true; m];
        free_y[5 * 7] = false;
        let mut s = Schur::new(&j, n_theta, true).unwrap();
        let kept = kept_at(&j, free_s, free_y);
        s.reform(kept.clone()).unwrap();
        let mut groups = s.rest_groups(kept.at());
        assert_eq!(groups.dense.len(), 2, "one group per hidden unit");
        assert_eq!(groups.dense[0].rows.len() + groups.dense[1].rows.len(), 79);
        groups.block_rows = 7;
        let mut all: Vec<u32> = groups.dense.iter().flat_map(|g| g.rows.clone()).collect();
        all.extend(&groups.lone);
        all.sort_unstable();
        let alone = RestGroups {
            dense: Vec::new(),
            lone: all,
            block_rows: 7,
        };
        let chunks = [
            Chunk::Theta(0, 5),
            Chunk::Theta(5, 12),
            Chunk::Theta(12, n_theta),
        ];
        let grouped = s.c_columns(kept.at(), &chunks, &groups, None);
        let by_rows = s.c_columns(kept.at(), &chunks, &alone, None);
        let mut largest = 0.0f64;
        for ((chunk, a), (_, b)) in grouped.iter().zip(&by_rows) {
            for (e, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
                    "{chunk:?}, entry {e}: {x} against {y}"
                );
                largest = largest.max(y.abs());
            }
        }
        assert!(largest > 0.1, "{largest}");
    }

    /// On the RNN shape the output rows of the time steps make a family of blocks, taken in
    /// closed form: Uᵀ B⁻¹ U p and ‖U p‖ are those of the rows one by one, C formed there is
    /// C (the conjugate gradients on it converge at once) and the Newton system is solved;
    /// with an output row and a hidden column not free (their steps' blocks then go row by
    /// row) and a θ column not free.
    #[test]
    fn the_families_of_output_rows_give_the_rows_products() {
        let j = rnn_jac(8);
        let (m, n_theta) = (j.nrows(), 21);
        let mut free_s = vec![true; j.ncols];
        free_s[8] = false;
        free_s[n_theta + 3 * 7 + 1] = false;
        let mut free_y = vec![true; m];
        free_y[5 * 7 + 4] = false;
        let now = kept_at(&j, free_s, free_y.clone());
        let mut s = Schur::new(&j, n_theta, true).unwrap();
        s.reform(now.clone()).unwrap();
        s.factor_at(now.at()).unwrap();
        assert_eq!(s.fam.fams.len(), 1, "one family");
        assert!(s.fam.blocks.len() >= 5, "{} blocks", s.fam.blocks.len());
        let p: Vec<f64> = (0..n_theta).map(|c| (c as f64 * 0.45).sin()).collect();
        let mut by_families = vec![0.0; n_theta];
        s.c_product(&p, &mut by_families);
        assert_is_the_rows_product(&mut s, &p, &by_families);
        s.u_mul(&p);
        let norm = dot(&s.t2, &s.t2).sqrt();
        assert!((s.u_norm(&p) - norm).abs() < 1e-12 * norm);
        let b = rhs_on_free(&free_y);
        let norm_b = dot(&b, &b).sqrt();
        let mut d = vec![0.0; m];
        let (converged, it) = s.solve_through_c(&free_y, &b, &mut d, 1e-12 * norm_b, 50);
        assert!(converged && it <= 1, "{converged} {it}");
        let md = newton_matrix_times(&j, &now, &d);
        for i in 0..m {
            assert!((md[i] - b[i]).abs() < 1e-10, "row {i}: {md:?} {b:?}");
        }
    }

    /// X += Σ x gᵀ over a family's blocks with X in registers (the shapes of RNN output
    /// layers) gives the numbers of the pass through memory bit for bit.
    #[test]
    fn the_blocks_outer_products_in_registers_are_the_pass_through_memory() {
        let (e, n_c, n) = (3, 2, 40);
        let blocks: Vec<Block> = (0..n)
            .map(|b| Block {
                fam: 0,
                val: 0,
                e0: 0,
                cols: (b * n_c) as u32,
                group: 0,
                g: (b * e) as u32,
            })
            .collect();
        let g: Vec<f64> = (0..n * e).map(|k| (k as f64 * 0.37).sin()).collect();
        let xs: Vec<f64> = (0..n * n_c)
            .map(|k| (k as f64 * 1.91).cos() * 1e3)
            .collect();
        let outer = BlockOuter {
            blocks: &blocks,
            g: &g,
            xs: &xs,
        };
        let start: Vec<f64> = (0..n_c * e).map(|k| k as f64 * 0.1).collect();
        let (mut fixed, mut any) = (start.clone(), start);
        outer.add_to(&mut fixed, e, n_c);
        outer.add_any(&mut any, e, n_c);
        assert_ne!(fixed, vec![0.0; n_c * e]);
        for (a, b) in fixed.iter().zip(&any) {
            assert_eq!(a.to_bits(), b.to_bits(), "{fixed:?} {any:?}");
        }
    }

    /// With four sequences whose rows go by time step, B is in two parts and the product's
    /// passes around its solve go by parts on two threads: the same numbers bit for bit as the
    /// passes in one, and the rows' products; with an output row of a sequence of each part
    /// not free (rows outside the blocks in both parts).
    #[test]
    fn the_passes_by_parts_of_b_give_the_numbers_of_one_pass() {
        let (seqs, steps, per) = (4, 6, 7);
        let j = rnn_jac_in(seqs, steps);
        let (m, n_theta) = (j.nrows(), 21);
        let mut free_y = vec![true; m];
        free_y[(2 * seqs) * per + 4] = false;
        free_y[(3 * seqs + 3) * per + 5] = false;
        let now = kept_at(&j, vec![true; j.ncols], free_y.clone());
        let mut s = Schur::new(&j, n_theta, true).unwrap();
        s.reform(now.clone()).unwrap();
        s.factor_at(now.at()).unwrap();
        let passes = &s.fam.passes;
        assert!(passes.two, "the passes split");
        assert!(
            passes.blocks.iter().all(|b| b.len() >= steps),
            "{:?}",
            passes.blocks
        );
        let parts_of_rows = |second: bool| passes.rows.iter().filter(|r| r.1 == second).count();
        assert!(parts_of_rows(false) >= steps && parts_of_rows(true) >= steps);
        let p: Vec<f64> = (0..n_theta).map(|c| (c as f64 * 0.45).sin()).collect();
        let mut by_parts = vec![0.0; n_theta];
        s.c_product(&p, &mut by_parts);
        let BForm::Augmented {
            row_unknown, elim, ..
        } = &s.form
        else {
            unreachable!("the augmented form")
        };
        s.fam.passes = Passes::new(&s.fam, row_unknown, elim, s.b.positions(), None);
        assert!(!s.fam.passes.two);
        let mut one_pass = vec![0.0; n_theta];
        s.c_product(&p, &mut one_pass);
        for c in 0..n_theta {
            assert_eq!(by_parts[c].to_bits(), one_pass[c].to_bits(), "column {c}");
        }
        assert_is_the_rows_product(&mut s, &p, &by_parts);
    }

    /// `got` is Uᵀ B⁻¹ U p as U's rows, B's solve and Uᵀ give it, to 1e-12.
    fn assert_is_the_rows_product(s: &mut Schur, p: &[f64], got: &[f64]) {
        let mut by_rows = vec![0.0; p.len()];
        s.u_mul(p);
        s.solve_b(false);
        s.u_tmul(false, &mut by_rows);
        for c in 0..p.len() {
            let scale = 1.0 + by_rows[c].abs();
            assert!(
                (got[c] - by_rows[c]).abs() < 1e-12 * scale,
                "column {c}: {got:?} {by_rows:?}"
            );
        }
    }

    /// C formed with the output layer's θ columns through the basis of their right-hand sides
    /// (the families' vectors and the unit vectors of the steps whose rows go one by one) is
    /// C formed with a solve per column; with an output row and a hidden column not free (two
    /// such steps) and θ columns of both layers not free.
    #[test]
    fn the_basis_of_the_output_columns_gives_c() {
        let j = rnn_jac(30);
        let (m, n_theta) = (j.nrows(), 21);
        let mut free_s = vec![true; j.ncols];
        free_s[2] = false;
        free_s[12] = false;
        free_s[n_theta + 9 * 7 + 1] = false;
        let mut free_y = vec![true; m];
        free_y[4 * 7 + 5] = false;
        let mut s = Schur::new(&j, n_theta, true).unwrap();
        let kept = kept_at(&j, free_s, free_y);
        s.reform(kept.clone()).unwrap();
        let basis = s.c_basis(kept.at()).expect("a basis");
        // θ: W (0..4), b (4..6), A (6..16, column 12 not free), c (16..21); 6 vectors of
        // the family (2 lifted columns × 3 positions) and the unit vectors of the steps outside
        // the blocks: step 4 (an output row held) both hidden columns, step 9 (a hidden column
        // not free) its free one
        assert_eq!(basis.cols.len(), 14);
        assert_eq!(basis.n_fam, 6);
        assert_eq!(basis.units.len(), 3, "{:?}", basis.units);
        let by_basis = s.c_matrix(kept.at(), f64::INFINITY);
        let by_columns = s.c_matrix(kept.at(), 0.0);
        let mut largest = 0.0f64;
        for a in 0..n_theta {
            for b in 0..n_theta {
                let (x, y) = (by_basis[(a, b)], by_columns[(a, b)]);
                assert!(
                    (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
                    "C[{a}, {b}]: {x} against {y}"
                );
                if a != b {
                    largest = largest.max(y.abs());
                }
            }
        }
        assert!(largest > 0.01, "{largest}");
    }

    /// The segments of eliminated rows a half of a pass meets, cut where the half ends.
    #[test]
    fn a_range_of_eliminated_rows_meets_the_segments_it_overlaps() {
        let fam = |rows: usize| Family {
            group: 0,
            e0: 0,
            e: 3,
            n_c: 2,
            g2: Vec::new(),
            v_cols: vec![0.0; 2 * rows],
            pivot: vec![-1.0; rows],
            pair_sum: Vec::new(),
        };
        let fams = Families {
            fams: vec![fam(4)],
            segs: vec![
                ElimSeg::Rows { e0: 0, e1: 3 },
                ElimSeg::Block {
                    e0: 3,
                    row0: 10,
                    fam: 0,
                    cols: 0,
                    group: 0,
                },
                ElimSeg::Block {
                    e0: 7,
                    row0: 20,
                    fam: 0,
                    cols: 2,
                    group: 1,
                },
                ElimSeg::Rows { e0: 11, e1: 12 },
            ],
            ..Families::default()
        };
        let seen = |rows: std::ops::Range<usize>| {
            let mut v = Vec::new();
            fams.each_seg(rows, |seg, ks| v.push((seg.start(), ks)));
            v
        };
        // the halves of 0..12 at 5 cut the first block after two of its rows
        assert_eq!(seen(0..5), vec![(0, 0..3), (3, 0..2)]);
        assert_eq!(seen(5..12), vec![(3, 2..4), (7, 0..4), (11, 0..1)]);
        assert_eq!(seen(8..9), vec![(7, 1..2)]);
        assert_eq!(seen(12..12), vec![]);
    }

    /// J's products through the blocks of the RNN shape's output rows are J's products by
    /// rows (one step's output rows changed so that they are no block).
    #[test]
    fn the_blocks_of_j_give_its_products() {
        let mut j = rnn_jac(8);
        // step 2's output row 3 reads h at another value (its first entry, at A's column):
        // its step goes row by row
        let row = 2 * 7 + 2 + 3;
        assert!(j.col_idx[j.row_ptr[row]] < 21);
        j.values[j.row_ptr[row]] += 0.25;
        let (m, n) = (j.nrows(), j.ncols);
        let mut s = Schur::new(&j, 21, true).unwrap();
        assert!(s.has_jac_blocks());
        s.jac_blocks(&j);
        assert_eq!(s.jb.fams.len(), 1, "one family");
        assert_eq!(s.jb.blocks.len(), 7, "every step but one");
        // the output rows' own columns are consecutive: the blocks read them as slices; then
        // the same blocks with them looked up row by row
        assert!(s.jb.blocks.iter().all(|b| b.own0 != NO_BLOCK));
        let x: Vec<f64> = (0..n).map(|c| (c as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..m).map(|i| (i as f64 * 0.91).cos()).collect();
        for by_slices in [true, false] {
            if !by_slices {
                s.jb.blocks.iter_mut().for_each(|b| b.own0 = NO_BLOCK);
            }
            let (mut jx, mut want) = (vec![0.0; m], vec![0.0; m]);
            s.jac_mul_halves(&j, &x, &mut jx);
            j.mul(&x, &mut want);
            for i in 0..m {
                assert!((jx[i] - want[i]).abs() < 1e-13, "J x, row {i}");
            }
            let (mut jty, mut want, mut second) = (vec![0.0; n], vec![0.0; n], Vec::new());
            s.jac_mul_t_halves(&j, &y, &mut jty, &mut second);
            j.mul_t(&y, &mut want);
            for c in 0..n {
                assert!((jty[c] - want[c]).abs() < 1e-13, "Jᵀ y, column {c}");
            }
        }
    }
}
