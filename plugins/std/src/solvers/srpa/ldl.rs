//! Sparse LDLᵀ of a symmetric quasi-definite matrix with a fixed pattern, over faer's sparse
//! Cholesky: the symbolic analysis (AMD ordering, elimination tree, supernodes) is done once, the
//! numeric factorization is redone whenever the values change. Large factors are supernodal, so
//! the work is dense blocked kernels; small ones are simplicial. No pivoting is needed:
//! quasi-definite matrices have an LDLᵀ for every symmetric permutation.

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::sparse::linalg::cholesky::supernodal::SupernodalLdltRef;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, SymbolicCholesky, SymbolicCholeskyRaw,
    SymmetricOrdering,
};
use faer::sparse::linalg::SupernodalThreshold;
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, MatMut, Par, Side};

use super::sparse::pair;

/// A symmetric matrix given by the upper triangle of its pattern, in the caller's numbering.
pub struct Ldl {
    n: usize,
    /// The upper triangle in CSC (faer's input), rows sorted within each column.
    col_ptr: Vec<u32>,
    row_idx: Vec<u32>,
    values: Vec<f64>,
    symbolic: SymbolicCholesky<u32>,
    /// The fill-reducing order: the caller's unknown at each of the factor's rows.
    order: Vec<u32>,
    factor: Vec<f64>,
    factored: bool,
    par: Par,
    factor_stack: MemBuffer,
    /// [`Ldl::solve`]'s right-hand side in the factor's order, and a supernodal solve's
    /// scratch.
    solve_rhs: Vec<f64>,
    solve_stack: MemBuffer,
}

/// Which factorization kernels to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// faer's choice by the flops per stored value: simplicial for very sparse factors.
    Auto,
    /// Always supernodal (dense blocks): solves with many right-hand sides use matrix products.
    Supernodal,
}

/// Why an analysis or a factorization failed.
#[derive(Debug, Clone, PartialEq)]
pub enum LdlError {
    /// A zero (or non-finite) pivot: the matrix is not quasi-definite.
    Pivot(usize),
    /// The pattern is not usable (duplicate entries, an entry below the diagonal, too large).
    Pattern(String),
    /// The symbolic analysis failed (out of memory, index overflow).
    Analysis(String),
}

impl std::fmt::Display for LdlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LdlError::Pivot(k) => write!(f, "zero or non-finite pivot at {k}"),
            LdlError::Pattern(m) => write!(f, "bad pattern: {m}"),
            LdlError::Analysis(m) => write!(f, "symbolic analysis failed: {m}"),
        }
    }
}

impl Ldl {
    /// Symbolic analysis of an `n × n` pattern given as the list of its upper-triangle entries
    /// `(row, col)` with `row ≤ col`, each at most once (every diagonal entry must be listed).
    /// Returns the analysis and, for each entry in the order given, its slot in
    /// [`Ldl::values_mut`].
    pub fn analyse(n: usize, entries: &[(usize, usize)]) -> Result<(Ldl, Vec<usize>), LdlError> {
        Ldl::analyse_with(n, entries, Kernels::Auto)
    }

    /// [`Ldl::analyse`] with a choice of kernels.
    pub fn analyse_with(
        n: usize,
        entries: &[(usize, usize)],
        kernels: Kernels,
    ) -> Result<(Ldl, Vec<usize>), LdlError> {
        if n >= u32::MAX as usize || entries.len() >= u32::MAX as usize {
            return Err(LdlError::Pattern(format!(
                "{n} rows and {} entries exceed 32-bit indices",
                entries.len()
            )));
        }
        let mut counts = vec![0u32; n + 1];
        for &(r, c) in entries {
            if r > c || c >= n {
                return Err(LdlError::Pattern(format!(
                    "entry ({r}, {c}) is not in the upper triangle of a {n} × {n} matrix"
                )));
            }
            counts[c + 1] += 1;
        }
        for j in 0..n {
            counts[j + 1] += counts[j];
        }
        let col_ptr = counts.clone();
        // place the entries column by column, then sort each column's rows (keeping slots)
        let mut order: Vec<u32> = vec![0; entries.len()];
        let mut fill = counts;
        for (k, &(_, c)) in entries.iter().enumerate() {
            order[fill[c] as usize] = k as u32;
            fill[c] += 1;
        }
        let mut row_idx = vec![0u32; entries.len()];
        let mut slots = vec![0usize; entries.len()];
        for j in 0..n {
            let (a, b) = (col_ptr[j] as usize, col_ptr[j + 1] as usize);
            let column = &mut order[a..b];
            column.sort_unstable_by_key(|&k| entries[k as usize].0);
            for (at, &k) in (a..b).zip(column.iter()) {
                row_idx[at] = entries[k as usize].0 as u32;
                slots[k as usize] = at;
            }
            if row_idx[a..b].windows(2).any(|w| w[0] == w[1]) {
                return Err(LdlError::Pattern(format!(
                    "a duplicate entry in column {j}"
                )));
            }
        }
        let pattern = SymbolicSparseColMatRef::new_checked(n, n, &col_ptr, None, &row_idx);
        let params = CholeskySymbolicParams {
            supernodal_flop_ratio_threshold: match kernels {
                Kernels::Auto => SupernodalThreshold::AUTO,
                Kernels::Supernodal => SupernodalThreshold::FORCE_SUPERNODAL,
            },
            ..Default::default()
        };
        let symbolic =
            factorize_symbolic_cholesky(pattern, Side::Upper, SymmetricOrdering::Amd, params)
                .map_err(|e| LdlError::Analysis(format!("{e:?}")))?;
        let par = Par::Seq;
        let factor_stack = MemBuffer::try_new(
            symbolic.factorize_numeric_ldlt_scratch::<f64>(par, Default::default()),
        )
        .map_err(|e| LdlError::Analysis(format!("{e:?}")))?;
        let solve_stack = MemBuffer::try_new(StackReq::any_of(&[
            symbolic.solve_in_place_scratch::<f64>(1, par)
        ]))
        .map_err(|e| LdlError::Analysis(format!("{e:?}")))?;
        let factor = vec![0.0; symbolic.len_val()];
        let order = match symbolic.perm() {
            Some(perm) => perm.arrays().0.to_vec(),
            None => (0..n as u32).collect(),
        };
        let ldl = Ldl {
            n,
            values: vec![0.0; entries.len()],
            col_ptr,
            row_idx,
            symbolic,
            order,
            factor,
            factored: false,
            par,
            factor_stack,
            solve_rhs: vec![0.0; n],
            solve_stack,
        };
        Ok((ldl, slots))
    }

    /// The values of the pattern's entries, addressed by the slots [`Ldl::analyse`] returned.
    pub fn values_mut(&mut self) -> &mut [f64] {
        self.factored = false;
        &mut self.values
    }

    /// Stored values of the factor L (a measure of the fill; supernodal blocks count whole).
    pub fn factor_nnz(&self) -> usize {
        self.symbolic.len_val()
    }

    /// Numeric factorization of the current values.
    pub fn factor(&mut self) -> Result<(), LdlError> {
        let values = std::mem::take(&mut self.values);
        let out = self.factor_values(&values);
        self.values = values;
        out
    }

    /// Numeric factorization of `values` (by slot, as [`Ldl::values_mut`] holds them).
    fn factor_values(&mut self, values: &[f64]) -> Result<(), LdlError> {
        let n = self.n;
        let pattern =
            SymbolicSparseColMatRef::new_checked(n, n, &self.col_ptr, None, &self.row_idx);
        let a = SparseColMatRef::new(pattern, values);
        self.factored = false;
        self.symbolic
            .factorize_numeric_ldlt(
                &mut self.factor,
                a,
                Side::Upper,
                Default::default(),
                self.par,
                MemStack::new(&mut self.factor_stack),
                Default::default(),
            )
            .map_err(|e| match e {
                faer::linalg::cholesky::ldlt::factor::LdltError::ZeroPivot { index } => {
                    LdlError::Pivot(index)
                }
            })?;
        // a NaN or infinite entry passes the pivot test; refuse it here
        if self.factor.iter().any(|v| !v.is_finite()) {
            return Err(LdlError::Pivot(n));
        }
        self.factored = true;
        Ok(())
    }

    /// Solves K x = b in place (after a successful [`Ldl::factor`]).
    pub fn solve(&mut self, b: &mut [f64]) {
        assert!(self.factored, "Ldl::solve before a successful factor");
        let mut x = std::mem::take(&mut self.solve_rhs);
        for (xi, &v) in x.iter_mut().zip(&self.order) {
            *xi = b[v as usize];
        }
        solve_in_order(
            &self.symbolic,
            &self.factor,
            &mut x,
            1,
            MemStack::new(&mut self.solve_stack),
        );
        for (&xi, &v) in x.iter().zip(&self.order) {
            b[v as usize] = xi;
        }
        self.solve_rhs = x;
    }
}

impl Ldl {
    /// The scratch of a supernodal solve with up to `ncols` right-hand sides.
    fn columns_stack(&self, ncols: usize) -> MemBuffer {
        MemBuffer::new(self.symbolic.solve_in_place_scratch::<f64>(ncols, self.par))
    }
}

/// Solves with a factorization for `w` right-hand sides stored by rows (`x[i · w + j]`), the
/// rows already in the factor's order. A simplicial factor (L by columns, each column's first
/// entry its diagonal, which holds D) goes through [`simplicial_solve`]; a supernodal one
/// through faer's kernels.
fn solve_in_order(
    symbolic: &SymbolicCholesky<u32>,
    factor: &[f64],
    x: &mut [f64],
    w: usize,
    stack: &mut MemStack,
) {
    let n = symbolic.nrows();
    match symbolic.raw() {
        SymbolicCholeskyRaw::Simplicial(s) => {
            simplicial_solve(s.col_ptr(), s.row_idx(), factor, x, w);
        }
        SymbolicCholeskyRaw::Supernodal(s) => {
            let rhs = MatMut::from_row_major_slice_mut(x, n, w);
            SupernodalLdltRef::new(s, factor).solve_in_place_with_conj(
                Conj::No,
                rhs,
                Par::Seq,
                stack,
            );
        }
    }
}

/// L D Lᵀ x = b for a simplicial factor, `w` right-hand sides by rows: one pass over L
/// forward and one backward, each entry of L updating a row's `w` contiguous numbers (faer's
/// kernel takes the right-hand sides four columns at a time, each a strided pass over L).
/// Every number goes through the same operations in the same order as in faer's kernel:
/// x_i −= l_ij x_j for j ascending; then for j descending x_j = x_j / d_j − Σ l_ij x_i, the
/// sum from zero over the column's entries in reverse.
fn simplicial_solve(col_ptr: &[u32], row_idx: &[u32], l: &[f64], x: &mut [f64], w: usize) {
    if w == 1 {
        return simplicial_solve_one(col_ptr, row_idx, l, x);
    }
    let n = col_ptr.len() - 1;
    for j in 0..n {
        let (a, b) = (col_ptr[j] as usize + 1, col_ptr[j + 1] as usize);
        let (head, tail) = x.split_at_mut((j + 1) * w);
        let xj = &head[j * w..];
        for (&i, &lij) in row_idx[a..b].iter().zip(&l[a..b]) {
            let at = (i as usize - j - 1) * w;
            for (xi, v) in tail[at..at + w].iter_mut().zip(xj) {
                *xi -= lij * v;
            }
        }
    }
    let mut acc = vec![0.0; w];
    for j in (0..n).rev() {
        let (d, a, b) = (
            col_ptr[j] as usize,
            col_ptr[j] as usize + 1,
            col_ptr[j + 1] as usize,
        );
        acc.iter_mut().for_each(|v| *v = 0.0);
        let (head, tail) = x.split_at_mut((j + 1) * w);
        for (&i, &lij) in row_idx[a..b].iter().zip(&l[a..b]).rev() {
            let at = (i as usize - j - 1) * w;
            for (s, v) in acc.iter_mut().zip(&tail[at..at + w]) {
                *s += lij * v;
            }
        }
        let inv = l[d].recip();
        for (xj, s) in head[j * w..].iter_mut().zip(&acc) {
            *xj = *xj * inv - s;
        }
    }
}

/// [`simplicial_solve`] for one right-hand side, the same operations in the same order
/// without a slice per entry of L (the conjugate gradients on C solve one vector per
/// iteration; on the TIMIT shape's k = 229..235 this took 12.0 s of wall to 11.5).
fn simplicial_solve_one(col_ptr: &[u32], row_idx: &[u32], l: &[f64], x: &mut [f64]) {
    let n = col_ptr.len() - 1;
    for j in 0..n {
        let (a, b) = (col_ptr[j] as usize + 1, col_ptr[j + 1] as usize);
        let xj = x[j];
        for (&i, &lij) in row_idx[a..b].iter().zip(&l[a..b]) {
            x[i as usize] -= lij * xj;
        }
    }
    for j in (0..n).rev() {
        let (d, a, b) = (
            col_ptr[j] as usize,
            col_ptr[j] as usize + 1,
            col_ptr[j + 1] as usize,
        );
        let mut acc = 0.0;
        for (&i, &lij) in row_idx[a..b].iter().zip(&l[a..b]).rev() {
            acc += lij * x[i as usize];
        }
        x[j] = x[j] * l[d].recip() - acc;
    }
}

/// An [`Ldl`] of a matrix whose pattern falls into independent blocks (connected components
/// of its graph: the TIMIT shape's B has one per sequence), in two parts of whole blocks that
/// are factored and solved on two threads. A pattern of one block (or of blocks too uneven to
/// halve) stays one [`Ldl`], the same numbers as [`Ldl::analyse_with`]'s.
pub struct SplitLdl {
    /// The values of both parts by the caller's slots: the first part's, then the second's.
    values: Vec<f64>,
    parts: Parts,
    /// The row of each of the caller's unknowns in the factors' order (the first part's
    /// factor's rows, then the second's).
    positions: Vec<u32>,
}

enum Parts {
    Whole(Box<Ldl>),
    Two(Box<[Part; 2]>),
}

/// One part of a [`SplitLdl`].
struct Part {
    ldl: Ldl,
    /// The caller's unknown of each of the part's own.
    index: Vec<u32>,
    /// Its slots in [`SplitLdl::values`].
    slots: std::ops::Range<usize>,
    /// The caller's unknown at each row of the part's factor (`index` after the part's
    /// fill-reducing order).
    rows: Vec<u32>,
    /// The right-hand side in the order of the part's factor.
    rhs: Vec<f64>,
}

/// The solves of [`SplitLdl::in_order_parts`]: the whole matrix's, or each part's (its rows
/// the first part's, then the second's, in the factors' order).
pub enum InOrder<'a> {
    Whole(PartSolve<'a>),
    Two([PartSolve<'a>; 2]),
}

impl InOrder<'_> {
    /// Solves K x = b in place for one right-hand side already in the factors' order (unknown
    /// v at row [`SplitLdl::positions`]`[v]`), the parts on two threads: no gathering into
    /// the parts' orders and back.
    pub fn solve_one(self, x: &mut [f64]) {
        match self {
            InOrder::Whole(mut whole) => whole.solve_one(x),
            InOrder::Two([mut a, mut b]) => {
                let (xa, xb) = x.split_at_mut(a.unknowns());
                pair(|| a.solve_one(xa), || b.solve_one(xb));
            }
        }
    }
}

/// The solve in the factors' order of a [`SplitLdl`]'s part (or of the whole), with its
/// workspace.
pub struct PartSolve<'a> {
    ldl: &'a Ldl,
    stack: &'a mut MemBuffer,
}

impl PartSolve<'_> {
    /// Its number of unknowns.
    pub fn unknowns(&self) -> usize {
        self.ldl.n
    }

    /// Solves its part of K x = b in place, `x` from its first row in the factors' order
    /// (longer is allowed: the rest is left as it is).
    pub fn solve_one(&mut self, x: &mut [f64]) {
        let ldl = self.ldl;
        assert!(ldl.factored, "PartSolve::solve_one before a factor");
        solve_in_order(
            &ldl.symbolic,
            &ldl.factor,
            &mut x[..ldl.n],
            1,
            MemStack::new(self.stack),
        );
    }
}

/// A part of a [`SplitLdl`] is at least this share of the unknowns and entries, else the
/// matrix stays whole.
const SPLIT_MIN_SHARE: f64 = 0.25;

/// The workspace of [`SplitLdl::solve_columns_in_order`].
pub struct ColumnsWorkspace {
    stacks: Vec<MemBuffer>,
}

impl SplitLdl {
    /// [`Ldl::analyse_with`], kept whole.
    pub fn whole(
        n: usize,
        entries: &[(usize, usize)],
        kernels: Kernels,
    ) -> Result<(SplitLdl, Vec<usize>), LdlError> {
        let (ldl, slots) = Ldl::analyse_with(n, entries, kernels)?;
        Ok((
            SplitLdl::new(Vec::new(), Parts::Whole(Box::new(ldl))),
            slots,
        ))
    }

    /// [`Ldl::analyse_with`] by independent blocks, in two parts where they halve: the slots
    /// it returns address [`SplitLdl::values_mut`].
    pub fn by_blocks(
        n: usize,
        entries: &[(usize, usize)],
        kernels: Kernels,
    ) -> Result<(SplitLdl, Vec<usize>), LdlError> {
        let Some(first_part) = halves(n, entries) else {
            return SplitLdl::whole(n, entries, kernels);
        };
        // each unknown's part and its number there, in the caller's order
        let mut local = vec![0u32; n];
        let mut index: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        for (v, l) in local.iter_mut().enumerate() {
            let part = &mut index[usize::from(!first_part[v])];
            *l = part.len() as u32;
            part.push(v as u32);
        }
        let mut part_entries: [Vec<(usize, usize)>; 2] = [Vec::new(), Vec::new()];
        let mut at = Vec::with_capacity(entries.len());
        for &(r, c) in entries {
            let part = usize::from(!first_part[c]);
            at.push((part, part_entries[part].len()));
            part_entries[part].push((local[r] as usize, local[c] as usize));
        }
        let offset = [0, part_entries[0].len()];
        let [(e0, i0), (e1, i1)] =
            [0, 1].map(|p| (&part_entries[p], std::mem::take(&mut index[p])));
        let (ldl0, slots0) = Ldl::analyse_with(i0.len(), e0, kernels)?;
        let (ldl1, slots1) = Ldl::analyse_with(i1.len(), e1, kernels)?;
        let slots = at
            .iter()
            .map(|&(part, k)| offset[part] + [&slots0, &slots1][part][k])
            .collect();
        let part = |ldl: Ldl, index: Vec<u32>, slots: std::ops::Range<usize>| Part {
            rhs: vec![0.0; index.len()],
            rows: ldl.order.iter().map(|&i| index[i as usize]).collect(),
            ldl,
            index,
            slots,
        };
        let parts = Box::new([
            part(ldl0, i0, 0..offset[1]),
            part(ldl1, i1, offset[1]..entries.len()),
        ]);
        let values = vec![0.0; entries.len()];
        Ok((SplitLdl::new(values, Parts::Two(parts)), slots))
    }

    /// With its parts' order: each caller's unknown's row in the factors' order.
    fn new(values: Vec<f64>, parts: Parts) -> SplitLdl {
        let mut split = SplitLdl {
            values,
            parts,
            positions: Vec::new(),
        };
        let order: Vec<u32> = match &split.parts {
            Parts::Whole(ldl) => ldl.order.clone(),
            Parts::Two(parts) => parts.iter().flat_map(|p| p.rows.iter().copied()).collect(),
        };
        split.positions = vec![0u32; order.len()];
        for (i, &v) in order.iter().enumerate() {
            split.positions[v as usize] = i as u32;
        }
        split
    }

    /// The factors, the first part's then the second's (or the whole one).
    fn ldls(&self) -> impl Iterator<Item = &Ldl> {
        let (whole, parts) = match &self.parts {
            Parts::Whole(ldl) => (Some(&**ldl), None),
            Parts::Two(parts) => (None, Some(parts.iter().map(|p| &p.ldl))),
        };
        whole.into_iter().chain(parts.into_iter().flatten())
    }

    /// Whether the matrix is in two parts.
    pub fn is_split(&self) -> bool {
        matches!(self.parts, Parts::Two(_))
    }

    /// The values of the pattern's entries, addressed by the slots [`SplitLdl::by_blocks`]
    /// or [`SplitLdl::whole`] returned.
    pub fn values_mut(&mut self) -> &mut [f64] {
        match &mut self.parts {
            Parts::Whole(ldl) => ldl.values_mut(),
            Parts::Two(parts) => {
                parts.iter_mut().for_each(|p| p.ldl.factored = false);
                &mut self.values
            }
        }
    }

    /// Stored values of the factor (both parts').
    pub fn factor_nnz(&self) -> usize {
        match &self.parts {
            Parts::Whole(ldl) => ldl.factor_nnz(),
            Parts::Two(parts) => parts.iter().map(|p| p.ldl.factor_nnz()).sum(),
        }
    }

    /// Numeric factorization of the current values (the parts on two threads).
    pub fn factor(&mut self) -> Result<(), LdlError> {
        let parts = match &mut self.parts {
            Parts::Whole(ldl) => return ldl.factor(),
            Parts::Two(parts) => parts,
        };
        let values = &self.values;
        let [a, b] = &mut **parts;
        let factor = |p: &mut Part| {
            p.ldl
                .factor_values(&values[p.slots.clone()])
                .map_err(|e| match e {
                    LdlError::Pivot(k) => {
                        LdlError::Pivot(p.index.get(k).map_or(k, |&v| v as usize))
                    }
                    e => e,
                })
        };
        let (ra, rb) = pair(|| factor(a), || factor(b));
        ra.and(rb)
    }

    /// Solves K x = b in place (after a successful [`SplitLdl::factor`]): each part gathers
    /// its unknowns in the order of its factor and solves on its thread, then both are put
    /// back (the conjugate gradients' products solve in the factors' order instead:
    /// [`SplitLdl::in_order_parts`]).
    pub fn solve(&mut self, b: &mut [f64]) {
        let parts = match &mut self.parts {
            Parts::Whole(ldl) => return ldl.solve(b),
            Parts::Two(parts) => parts,
        };
        let [pa, pb] = &mut **parts;
        let rhs = &*b;
        let solve = |p: &mut Part| {
            assert!(p.ldl.factored, "SplitLdl::solve before a successful factor");
            for (r, &v) in p.rhs.iter_mut().zip(&p.rows) {
                *r = rhs[v as usize];
            }
            let ldl = &mut p.ldl;
            let stack = MemStack::new(&mut ldl.solve_stack);
            solve_in_order(&ldl.symbolic, &ldl.factor, &mut p.rhs, 1, stack);
        };
        pair(|| solve(pa), || solve(pb));
        for p in [&*pa, &*pb] {
            for (&r, &v) in p.rhs.iter().zip(&p.rows) {
                b[v as usize] = r;
            }
        }
    }

    /// The first row of the second part in the factors' order, where the matrix is in two
    /// parts.
    pub fn second_part_at(&self) -> Option<usize> {
        match &self.parts {
            Parts::Whole(_) => None,
            Parts::Two(parts) => Some(parts[0].ldl.n),
        }
    }

    /// The solves in the factors' order with one right-hand side, part by part, for a caller
    /// that runs each part's solve on its own thread with work of its own around it (the
    /// caller's workspace from [`SplitLdl::columns_workspace`]`(1)`).
    pub fn in_order_parts<'a>(&'a self, work: &'a mut ColumnsWorkspace) -> InOrder<'a> {
        match &self.parts {
            Parts::Whole(ldl) => InOrder::Whole(PartSolve {
                ldl,
                stack: &mut work.stacks[0],
            }),
            Parts::Two(parts) => {
                let [pa, pb] = &**parts;
                let [sa, sb] = &mut work.stacks[..] else {
                    unreachable!("a workspace of a matrix in two parts has two stacks")
                };
                InOrder::Two([
                    PartSolve {
                        ldl: &pa.ldl,
                        stack: sa,
                    },
                    PartSolve {
                        ldl: &pb.ldl,
                        stack: sb,
                    },
                ])
            }
        }
    }

    /// A workspace for [`SplitLdl::solve_columns_in_order`] with up to `ncols` right-hand
    /// sides.
    pub fn columns_workspace(&self, ncols: usize) -> ColumnsWorkspace {
        ColumnsWorkspace {
            stacks: self.ldls().map(|ldl| ldl.columns_stack(ncols)).collect(),
        }
    }

    /// The row of each of the caller's unknowns in the factors' order: the first part's
    /// factor's rows, then the second's (a permutation of 0..n).
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// Solves K X = B in place for `ncols` right-hand sides stored by rows, row
    /// [`SplitLdl::positions`]`[v]` of `x` holding unknown v's `ncols` numbers (so each part's
    /// rows are together, in its factor's order: no gathering), the parts one after the other
    /// on the calling thread, with the caller's workspace (from
    /// [`SplitLdl::columns_workspace`]), so that several threads can solve with one
    /// factorization.
    pub fn solve_columns_in_order(&self, x: &mut [f64], ncols: usize, work: &mut ColumnsWorkspace) {
        let mut rest = x;
        for (ldl, stack) in self.ldls().zip(&mut work.stacks) {
            assert!(
                ldl.factored,
                "SplitLdl::solve_columns_in_order before a factor"
            );
            let (mine, others) = rest.split_at_mut(ldl.n * ncols);
            solve_in_order(
                &ldl.symbolic,
                &ldl.factor,
                mine,
                ncols,
                MemStack::new(stack),
            );
            rest = others;
        }
    }
}

/// Which unknowns go to the first of two parts of whole blocks (connected components of the
/// pattern's graph), taken in the order of their first unknowns until half the unknowns and
/// entries are in; `None` where the blocks do not split into two parts of at least
/// [`SPLIT_MIN_SHARE`] each.
fn halves(n: usize, entries: &[(usize, usize)]) -> Option<Vec<bool>> {
    // union–find by the smaller root, so a block's root is its first unknown
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn root(parent: &mut [u32], mut v: u32) -> u32 {
        while parent[v as usize] != v {
            let up = parent[parent[v as usize] as usize];
            parent[v as usize] = up;
            v = up;
        }
        v
    }
    for &(r, c) in entries {
        if r >= n || c >= n {
            return None;
        }
        let (a, b) = (root(&mut parent, r as u32), root(&mut parent, c as u32));
        if a != b {
            parent[a.max(b) as usize] = a.min(b);
        }
    }
    let mut weight = vec![0usize; n];
    let roots: Vec<u32> = (0..n as u32).map(|v| root(&mut parent, v)).collect();
    for &r in &roots {
        weight[r as usize] += 1;
    }
    for &(_, c) in entries {
        weight[roots[c] as usize] += 1;
    }
    let total = n + entries.len();
    let mut first = vec![false; n];
    let mut taken = 0;
    for v in 0..n {
        if roots[v] as usize == v && 2 * taken < total {
            taken += weight[v];
            first[v] = true;
        }
    }
    let share = taken as f64 / total.max(1) as f64;
    if !(SPLIT_MIN_SHARE..=1.0 - SPLIT_MIN_SHARE).contains(&share) {
        return None;
    }
    for v in 0..n {
        first[v] = first[roots[v] as usize];
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_quasi_definite_system() {
        // K = [[4, 1, 2], [1, 3, 0], [2, 0, -5]], entries listed out of order
        let entries = [(2, 2), (0, 1), (1, 1), (0, 2), (0, 0)];
        let vals = [-5.0, 1.0, 3.0, 2.0, 4.0];
        let (mut ldl, slots) = Ldl::analyse(3, &entries).unwrap();
        for (k, &s) in slots.iter().enumerate() {
            ldl.values_mut()[s] = vals[k];
        }
        ldl.factor().unwrap();
        let x = [1.0, -2.0, 0.5];
        let mut b = vec![
            4.0 * x[0] + x[1] + 2.0 * x[2],
            x[0] + 3.0 * x[1],
            2.0 * x[0] - 5.0 * x[2],
        ];
        ldl.solve(&mut b);
        for i in 0..3 {
            assert!((b[i] - x[i]).abs() < 1e-12, "{b:?}");
        }
    }

    #[test]
    fn refuses_duplicates_and_lower_entries() {
        assert!(matches!(
            Ldl::analyse(2, &[(0, 0), (0, 1), (0, 1), (1, 1)]),
            Err(LdlError::Pattern(_))
        ));
        assert!(matches!(
            Ldl::analyse(2, &[(0, 0), (1, 0), (1, 1)]),
            Err(LdlError::Pattern(_))
        ));
    }

    #[test]
    fn a_singular_matrix_is_a_pivot_error() {
        let (mut ldl, slots) = Ldl::analyse(2, &[(0, 0), (0, 1), (1, 1)]).unwrap();
        for (s, v) in slots.iter().zip([1.0, 1.0, 1.0]) {
            ldl.values_mut()[*s] = v;
        }
        assert!(matches!(ldl.factor(), Err(LdlError::Pivot(_))));
    }

    /// A quasi-definite matrix of `blocks` independent tridiagonal blocks of `size` unknowns,
    /// their unknowns interleaved (unknown v is in block v % blocks), as upper-triangle
    /// entries and values.
    fn interleaved_blocks(blocks: usize, size: usize) -> (usize, Vec<(usize, usize)>, Vec<f64>) {
        let n = blocks * size;
        let (mut entries, mut vals) = (Vec::new(), Vec::new());
        for v in 0..n {
            // the first unknowns of each block positive, the last ones negative
            let sign = if v / blocks < size / 2 { 1.0 } else { -1.0 };
            entries.push((v, v));
            vals.push(sign * (3.0 + (v % 7) as f64));
            if v + blocks < n {
                entries.push((v, v + blocks));
                vals.push(0.5 + 0.1 * (v % 5) as f64);
            }
        }
        (n, entries, vals)
    }

    /// X for `w` right-hand sides by rows in the caller's order, through
    /// [`SplitLdl::solve_columns_in_order`]: each row placed at its position and read back.
    fn solve_by_rows(split: &SplitLdl, b: &[f64], w: usize) -> Vec<f64> {
        let pos = split.positions();
        let mut x = vec![0.0; b.len()];
        for (v, &p) in pos.iter().enumerate() {
            x[p as usize * w..][..w].copy_from_slice(&b[v * w..][..w]);
        }
        split.solve_columns_in_order(&mut x, w, &mut split.columns_workspace(w));
        let mut out = vec![0.0; b.len()];
        for (v, &p) in pos.iter().enumerate() {
            out[v * w..][..w].copy_from_slice(&x[p as usize * w..][..w]);
        }
        out
    }

    /// Our solves (the simplicial kernel by rows, the supernodal one after our gather in the
    /// factor's order) give faer's own solve's numbers bit for bit, for one right-hand side
    /// and for several by rows.
    #[test]
    fn the_solves_by_rows_give_faers_numbers() {
        use faer::sparse::linalg::cholesky::LdltRef;
        // coupled blocks (a band across them) so that the fill-reducing order moves unknowns
        let (n, mut entries, mut vals) = interleaved_blocks(4, 30);
        for v in 0..n - 7 {
            entries.push((v, v + 7));
            vals.push(0.05 * (1 + v % 3) as f64);
        }
        for kernels in [Kernels::Auto, Kernels::Supernodal] {
            let (mut split, slots) = SplitLdl::whole(n, &entries, kernels).unwrap();
            for (&s, &v) in slots.iter().zip(&vals) {
                split.values_mut()[s] = v;
            }
            split.factor().unwrap();
            let Parts::Whole(ldl) = &split.parts else {
                unreachable!("kept whole")
            };
            let simplicial = matches!(ldl.symbolic.raw(), SymbolicCholeskyRaw::Simplicial(_));
            assert_eq!(simplicial, kernels == Kernels::Auto);
            assert!(ldl.order.iter().enumerate().any(|(i, &v)| v as usize != i));
            let w = 5;
            let b: Vec<f64> = (0..n * w).map(|k| ((k * 37) % 11) as f64 - 4.5).collect();
            let faer_solve = |b: &[f64], w: usize| {
                let mut x = b.to_vec();
                let mut stack = ldl.columns_stack(w);
                LdltRef::new(&ldl.symbolic, &ldl.factor).solve_in_place_with_conj(
                    Conj::No,
                    MatMut::from_row_major_slice_mut(&mut x, n, w),
                    Par::Seq,
                    MemStack::new(&mut stack),
                );
                x
            };
            let expected = faer_solve(&b, w);
            assert_eq!(
                solve_by_rows(&split, &b, w),
                expected,
                "{kernels:?}, {w} right-hand sides"
            );
            let expected = faer_solve(&b[..n], 1);
            let mut x = b[..n].to_vec();
            split.solve(&mut x);
            assert_eq!(x, expected, "{kernels:?}, one right-hand side");
        }
    }

    #[test]
    fn independent_blocks_are_factored_and_solved_in_two_parts() {
        let (n, entries, vals) = interleaved_blocks(5, 40);
        let (mut whole, slots_w) = SplitLdl::whole(n, &entries, Kernels::Auto).unwrap();
        let (mut split, slots_s) = SplitLdl::by_blocks(n, &entries, Kernels::Auto).unwrap();
        assert!(split.is_split());
        for (k, v) in vals.iter().enumerate() {
            whole.values_mut()[slots_w[k]] = *v;
            split.values_mut()[slots_s[k]] = *v;
        }
        whole.factor().unwrap();
        split.factor().unwrap();
        let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let (mut xw, mut xs) = (b.clone(), b.clone());
        whole.solve(&mut xw);
        split.solve(&mut xs);
        for i in 0..n {
            assert!((xw[i] - xs[i]).abs() <= 1e-12 * (1.0 + xw[i].abs()), "{i}");
        }
        // the same vector already in the factors' order, its parts solved in place: the same
        // numbers bit for bit, split and whole
        for (ldl, x) in [(&split, &xs), (&whole, &xw)] {
            let pos = ldl.positions();
            let mut in_order = vec![0.0; n];
            for (v, &p) in pos.iter().enumerate() {
                in_order[p as usize] = b[v];
            }
            let mut work = ldl.columns_workspace(1);
            ldl.in_order_parts(&mut work).solve_one(&mut in_order);
            let back: Vec<f64> = pos.iter().map(|&p| in_order[p as usize]).collect();
            assert_eq!(&back, x);
        }
        // three right-hand sides at once (by rows), against the single solves, split and
        // whole
        let rhs: Vec<Vec<f64>> = (0..3)
            .map(|j| (0..n).map(|i| ((i + j * n) as f64 * 0.11).cos()).collect())
            .collect();
        let expected: Vec<Vec<f64>> = rhs
            .iter()
            .map(|c| {
                let mut c = c.clone();
                whole.solve(&mut c);
                c
            })
            .collect();
        let by_rows: Vec<f64> = (0..n)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .map(|(i, j)| rhs[j][i])
            .collect();
        let check = |x: &[f64]| {
            for i in 0..n {
                for j in 0..3 {
                    let (a, e) = (x[i * 3 + j], expected[j][i]);
                    assert!(
                        (a - e).abs() <= 1e-12 * (1.0 + e.abs()),
                        "row {i}, column {j}"
                    );
                }
            }
        };
        check(&solve_by_rows(&split, &by_rows, 3));
        check(&solve_by_rows(&whole, &by_rows, 3));
        // new values in the same pattern: the solve follows them
        split.values_mut()[slots_s[0]] *= 2.0;
        split.factor().unwrap();
        let mut again = b.clone();
        split.solve(&mut again);
        assert!(again.iter().zip(&xs).any(|(a, x)| (a - x).abs() > 1e-6));
    }

    #[test]
    fn one_block_stays_whole() {
        let (n, entries, _) = interleaved_blocks(1, 30);
        assert!(!SplitLdl::by_blocks(n, &entries, Kernels::Auto)
            .unwrap()
            .0
            .is_split());
        // three blocks of 1 + 1 + 28 unknowns: no part of a quarter without the large one
        let mut entries: Vec<(usize, usize)> = (0..30).map(|v| (v, v)).collect();
        entries.extend((2..29).map(|v| (v, v + 1)));
        assert!(!SplitLdl::by_blocks(30, &entries, Kernels::Auto)
            .unwrap()
            .0
            .is_split());
    }
}
