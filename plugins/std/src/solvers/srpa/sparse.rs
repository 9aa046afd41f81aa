//! The lifted Jacobian J of the SRPA subproblem as a sparse matrix by rows, shared by the
//! subproblem solver ([`super::subproblem`]) and the parameter-Schur preconditioner
//! ([`super::schur`]) without either reaching into the other.

/// A sparse matrix by rows (m × n), pattern fixed, values may change.
#[derive(Debug, Clone, Default)]
pub struct SparseRows {
    pub ncols: usize,
    pub row_ptr: Vec<usize>,
    pub col_idx: Vec<usize>,
    pub values: Vec<f64>,
}

impl SparseRows {
    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.row_ptr.len().saturating_sub(1)
    }

    /// out = J x.
    pub fn mul(&self, x: &[f64], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0;
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                acc += self.values[p] * x[self.col_idx[p]];
            }
            *o = acc;
        }
    }

    /// out = Jᵀ y.
    pub fn mul_t(&self, y: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (i, &yi) in y.iter().enumerate() {
            if yi == 0.0 {
                continue;
            }
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                out[self.col_idx[p]] += self.values[p] * yi;
            }
        }
    }
}
