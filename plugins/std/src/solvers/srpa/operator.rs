//! The lifted Jacobian J of the SRPA subproblem as an operator: what the matrix-free Newton
//! path ([`super::newton_cg`]) needs of J, and nothing more. J is m × n, n = n_θ + m: the
//! first n_θ columns are the parameters, column n_θ + i is the lifted variable whose residual
//! is row i, so the lifted columns J_L form a square matrix, unit lower triangular in block
//! order (r_ℓ = u_ℓ − ψ_{ℓ−1}(θ, u_{<ℓ}) reads only earlier blocks): a solve with J_L or J_Lᵀ is
//! one substitution pass.
//!
//! Two implementations: [`StoredJac`] over a stored [`SparseRows`] (which checks that its
//! lifted columns are unit lower triangular), and [`HostJac`] over a host's (P1) problem,
//! whose products run through the lifted graph and need no stored J
//! ([`P1Problem::jac_mul`] and the other three).

use mcopt_plugin_sdk::p1::{P1Problem, ParamShape};

use super::sparse::SparseRows;

/// J through its products, at one linearization.
pub trait JacOp {
    /// Rows m (one per lifted entry).
    fn rows(&self) -> usize;
    /// Columns n = n_θ + m.
    fn cols(&self) -> usize;
    /// `out` = J s (`s`: n entries, `out`: m).
    fn mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), String>;
    /// `out` = Jᵀ y (`y`: m entries, `out`: n).
    fn tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String>;
    /// x with J_L x = y (both m entries).
    fn lsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String>;
    /// x with J_Lᵀ x = y (both m entries).
    fn ltsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String>;
    /// x with J_θ s_θ + J_L x = y, for `input` = (s_θ, y) (n entries; `x`: m): J_L⁻¹ (y −
    /// J_θ s_θ), one pass of a host.
    fn lsolve_theta(&mut self, input: &[f64], x: &mut [f64]) -> Result<(), String>;
    /// `out` = (J_θᵀ x, x) with J_Lᵀ x = y (`y`: m entries, `out`: n), one pass of a host.
    fn ltsolve_theta(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String>;
    /// The parameters' shapes in θ, when known (the Kronecker preconditioner's blocks); none
    /// by default.
    fn params(&self) -> &[ParamShape] {
        &[]
    }
}

/// A stored J as a [`JacOp`]; the solves with J_L are substitutions over its rows.
pub struct StoredJac<'a> {
    jac: &'a SparseRows,
    n_theta: usize,
}

impl<'a> StoredJac<'a> {
    /// J (m × n) with `n - m` parameter columns. Refused unless every row i holds the entry
    /// 1 in column n_θ + i and no lifted column after it (J_L unit lower triangular).
    pub fn new(jac: &'a SparseRows) -> Result<StoredJac<'a>, String> {
        let m = jac.nrows();
        let n_theta = jac.ncols.checked_sub(m).ok_or_else(|| {
            format!(
                "J has {m} rows but only {} columns: its lifted columns are not square",
                jac.ncols
            )
        })?;
        for i in 0..m {
            let mut diagonal = false;
            for p in jac.row_ptr[i]..jac.row_ptr[i + 1] {
                let c = jac.col_idx[p];
                if c == n_theta + i {
                    if jac.values[p] != 1.0 {
                        return Err(format!(
                            "row {i} of J has {} on its own lifted variable, not 1",
                            jac.values[p]
                        ));
                    }
                    diagonal = true;
                } else if c > n_theta + i {
                    return Err(format!(
                        "row {i} of J reads the later lifted variable {}: J_L is not lower \
                         triangular",
                        c - n_theta
                    ));
                }
            }
            if !diagonal {
                return Err(format!(
                    "row {i} of J does not read its own lifted variable"
                ));
            }
        }
        Ok(StoredJac { jac, n_theta })
    }
}

impl JacOp for StoredJac<'_> {
    fn rows(&self) -> usize {
        self.jac.nrows()
    }

    fn cols(&self) -> usize {
        self.jac.ncols
    }

    fn mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.jac.mul(s, out);
        Ok(())
    }

    fn tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.jac.mul_t(y, out);
        Ok(())
    }

    fn lsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        let (j, nt) = (self.jac, self.n_theta);
        for i in 0..y.len() {
            let mut acc = y[i];
            for p in j.row_ptr[i]..j.row_ptr[i + 1] {
                let c = j.col_idx[p];
                if c >= nt && c != nt + i {
                    acc -= j.values[p] * x[c - nt];
                }
            }
            x[i] = acc;
        }
        Ok(())
    }

    fn lsolve_theta(&mut self, input: &[f64], x: &mut [f64]) -> Result<(), String> {
        let (j, nt) = (self.jac, self.n_theta);
        let (theta, y) = input.split_at(nt);
        for i in 0..y.len() {
            let mut acc = y[i];
            for p in j.row_ptr[i]..j.row_ptr[i + 1] {
                let c = j.col_idx[p];
                if c < nt {
                    acc -= j.values[p] * theta[c];
                } else if c != nt + i {
                    acc -= j.values[p] * x[c - nt];
                }
            }
            x[i] = acc;
        }
        Ok(())
    }

    fn ltsolve_theta(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        let nt = self.n_theta;
        let (theta, x) = out.split_at_mut(nt);
        self.ltsolve(y, x)?;
        theta.fill(0.0);
        let j = self.jac;
        for (i, &xi) in x.iter().enumerate() {
            for p in j.row_ptr[i]..j.row_ptr[i + 1] {
                let c = j.col_idx[p];
                if c < nt {
                    theta[c] += j.values[p] * xi;
                }
            }
        }
        Ok(())
    }

    fn ltsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        let (j, nt) = (self.jac, self.n_theta);
        x.copy_from_slice(y);
        // row i's entries below the diagonal of J_Lᵀ are final once the later rows are done
        for i in (0..y.len()).rev() {
            let xi = x[i];
            if xi == 0.0 {
                continue;
            }
            for p in j.row_ptr[i]..j.row_ptr[i + 1] {
                let c = j.col_idx[p];
                if c >= nt && c != nt + i {
                    x[c - nt] -= j.values[p] * xi;
                }
            }
        }
        Ok(())
    }
}

/// A host's (P1) problem as a [`JacOp`]: J at its last linearization, through its products.
pub struct HostJac<'a> {
    p: &'a mut dyn P1Problem,
    m: usize,
    n: usize,
}

impl<'a> HostJac<'a> {
    pub fn new(p: &'a mut dyn P1Problem) -> HostJac<'a> {
        let (m, n) = (p.structure().rows(), p.structure().n_z);
        HostJac { p, m, n }
    }
}

impl JacOp for HostJac<'_> {
    fn rows(&self) -> usize {
        self.m
    }

    fn cols(&self) -> usize {
        self.n
    }

    fn mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.p.jac_mul(s, out)
    }

    fn tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.p.jac_tmul(y, out)
    }

    fn lsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.p.lifted_solve(y, x)
    }

    fn ltsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.p.lifted_tsolve(y, x)
    }

    fn lsolve_theta(&mut self, input: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.p.lifted_solve_theta(input, x)
    }

    fn ltsolve_theta(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.p.lifted_tsolve_theta(y, out)
    }

    fn params(&self) -> &[ParamShape] {
        &self.p.structure().params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n_θ = 1, m = 3: rows (θ, u0, u1, u2).
    fn small() -> SparseRows {
        SparseRows {
            ncols: 4,
            row_ptr: vec![0, 2, 4, 7],
            col_idx: vec![0, 1, 1, 2, 0, 1, 3],
            values: vec![2.0, 1.0, -3.0, 1.0, 0.5, 4.0, 1.0],
        }
    }

    #[test]
    fn the_substitutions_invert_the_lifted_columns() {
        let j = small();
        let mut op = StoredJac::new(&j).unwrap();
        let y = [1.0, -2.0, 0.25];
        let mut x = [0.0; 3];
        op.lsolve(&y, &mut x).unwrap();
        // J_L x with θ's step 0: J (0, x)
        let mut back = [0.0; 3];
        op.mul(&[0.0, x[0], x[1], x[2]], &mut back).unwrap();
        assert_eq!(back, y);
        op.ltsolve(&y, &mut x).unwrap();
        let mut full = [0.0; 4];
        op.tmul(&x, &mut full).unwrap();
        assert_eq!(&full[1..], &y);
        // fused with θ's column: J (s_θ, x) = y, and (J_θᵀ x, x) for J_Lᵀ x = y
        let s_theta = 0.75;
        op.lsolve_theta(&[s_theta, y[0], y[1], y[2]], &mut x)
            .unwrap();
        op.mul(&[s_theta, x[0], x[1], x[2]], &mut back).unwrap();
        assert_eq!(back, y);
        let mut both = [0.0; 4];
        op.ltsolve_theta(&y, &mut both).unwrap();
        op.tmul(&both[1..], &mut full).unwrap();
        assert_eq!((&full[1..], full[0]), (&y[..], both[0]));
    }

    #[test]
    fn a_jacobian_whose_lifted_columns_are_not_unit_lower_triangular_is_refused() {
        let mut j = small();
        j.values[3] = 2.0;
        let e = StoredJac::new(&j).err().unwrap();
        assert!(e.contains("not 1"), "{e}");
        let mut j = small();
        j.col_idx[1] = 2;
        let e = StoredJac::new(&j).err().unwrap();
        assert!(e.contains("not lower triangular"), "{e}");
    }
}
