//! Sparse LDLᵀ of a symmetric quasi-definite matrix with a fixed pattern, over faer's sparse
//! Cholesky: the symbolic analysis (AMD ordering, elimination tree, supernodes) is done once, the
//! numeric factorization is redone whenever the values change. Large factors are supernodal, so
//! the work is dense blocked kernels; small ones are simplicial. No pivoting is needed:
//! quasi-definite matrices have an LDLᵀ for every symmetric permutation.

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, LdltRef, SymbolicCholesky,
    SymmetricOrdering,
};
use faer::sparse::linalg::SupernodalThreshold;
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, MatMut, Par, Side};

/// A symmetric matrix given by the upper triangle of its pattern, in the caller's numbering.
pub struct Ldl {
    n: usize,
    /// The upper triangle in CSC (faer's input), rows sorted within each column.
    col_ptr: Vec<u32>,
    row_idx: Vec<u32>,
    values: Vec<f64>,
    symbolic: SymbolicCholesky<u32>,
    factor: Vec<f64>,
    factored: bool,
    par: Par,
    factor_stack: MemBuffer,
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
        let ldl = Ldl {
            n,
            values: vec![0.0; entries.len()],
            col_ptr,
            row_idx,
            symbolic,
            factor,
            factored: false,
            par,
            factor_stack,
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
        let n = self.n;
        let pattern =
            SymbolicSparseColMatRef::new_checked(n, n, &self.col_ptr, None, &self.row_idx);
        let a = SparseColMatRef::new(pattern, &self.values);
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
        let ldlt = LdltRef::new(&self.symbolic, &self.factor);
        let rhs = MatMut::from_column_major_slice_mut(b, self.n, 1);
        ldlt.solve_in_place_with_conj(
            Conj::No,
            rhs,
            self.par,
            MemStack::new(&mut self.solve_stack),
        );
    }
}

impl Ldl {
    /// A workspace for [`Ldl::solve_columns`] with up to `ncols` right-hand sides.
    pub fn columns_workspace(&self, ncols: usize) -> MemBuffer {
        MemBuffer::new(self.symbolic.solve_in_place_scratch::<f64>(ncols, self.par))
    }

    /// Solves K X = B in place for `ncols` right-hand sides stored column after column in `b`
    /// (blocked kernels: much faster than one column at a time), with the caller's workspace
    /// (from [`Ldl::columns_workspace`]), so that several threads can solve with one
    /// factorization.
    pub fn solve_columns(&self, b: &mut [f64], ncols: usize, workspace: &mut MemBuffer) {
        assert!(
            self.factored,
            "Ldl::solve_columns before a successful factor"
        );
        assert_eq!(b.len(), self.n * ncols, "Ldl::solve_columns: shape");
        let ldlt = LdltRef::new(&self.symbolic, &self.factor);
        let rhs = MatMut::from_column_major_slice_mut(b, self.n, ncols);
        ldlt.solve_in_place_with_conj(Conj::No, rhs, self.par, MemStack::new(workspace));
    }
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
}
