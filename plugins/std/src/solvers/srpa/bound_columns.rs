//! The matrix-free preconditioner's correction for the lifted columns held at a bound.
//!
//! The Newton matrix of the matrix-free path is M = δI + J_F D J_Fᵀ/ρ, with D zero at the
//! columns whose step sits at a bound of its piece (a ReLU's kink, say). The preconditioner
//! P = (J_L J_Lᵀ + J_θ J_θᵀ)/ρ of [`super::newton_cg`] keeps every column, so each column at a
//! bound leaves an eigenvalue of P⁻¹M away from the others, and the conjugate gradients pay
//! one or two iterations for each (at N_h = 128 on the large RNN, six columns at a bound took
//! the late Newton systems from one iteration to seven and eight, each an inner solve of about
//! 45 directions).
//!
//! Those columns are few and they are columns of J_L, so they can be dropped from P exactly.
//! With A the lifted columns at a bound (J_A = J_L E_A, E_A their unit columns) and
//! Ĵ = [J_θ, J_A], Σ = diag(I, −I):
//!
//! ```text
//! P_D = (J_L J_Lᵀ + Ĵ Σ Ĵᵀ)/ρ,   P_D⁻¹ = ρ (S − S Ĵ Ĉ⁻¹ Ĵᵀ S),   S = J_L⁻ᵀ J_L⁻¹,
//! Ĉ = Σ + Ĵᵀ S Ĵ = [[C, B], [Bᵀ, 0]],   B = J_θᵀ J_L⁻ᵀ E_A,
//! ```
//!
//! since J_Aᵀ S J_A = (J_L⁻¹ J_A)ᵀ (J_L⁻¹ J_A) = E_Aᵀ E_A = I. The bordered system
//! Ĉ (a, c) = (f, g) is solved by its Schur complement on the |A| border entries,
//! H = Bᵀ C⁻¹ B: with u = C⁻¹ f, c = H⁻¹ (Bᵀ u − g) and a = u − C⁻¹B c. Everything else of
//! an application is already there: g = J_Aᵀ S r is the entries of J_L⁻¹ r at A (the first
//! pass's output), and S J_A c = J_L⁻ᵀ E_A c is the last pass's input minus c at A. So an
//! application costs no pass more than before; each column costs, once per subproblem, one
//! pass for its B column and one application of C⁻¹ (a dense solve, or an inner solve on the
//! Kronecker path), kept while its column stays at a bound.
//!
//! H is positive definite when the rows of G = J_L⁻¹ J_θ at A are independent, which is what
//! makes J D Jᵀ nonsingular; a column whose Cholesky pivot falls below [`PIVOT_MIN`] of H's
//! largest diagonal entry depends on the ones before it and stays in P (as all did before),
//! so the columns corrected always give a positive definite H. Past [`BOUND_COLUMNS_MAX`]
//! columns at a bound there is no correction at all (each would cost an inner solve).

use mcopt_plugin_sdk::p1::BOUND_COLUMNS_MAX;

use super::operator::JacOp;
use super::sparse::dot;

/// A squared Cholesky pivot of H under this fraction of H's largest diagonal entry leaves its
/// column out of the correction: its row of G nearly depends on the rows before it, and on the
/// Kronecker path C⁻¹ B is solved only to `kronecker::BORDER_TOL` (1e-6), so H's smallest
/// directions would be its errors. On the large RNN the ratios were 0.65 to 1.
pub const PIVOT_MIN: f64 = 1e-4;

/// C⁻¹ applied to `b` into `out` (`tn`: n entries of scratch, `tm`: m), as the preconditioner
/// applies it: the kept dense factor or the inner solve.
pub type CInverse<'a> = dyn FnMut(&mut dyn JacOp, &[f64], &mut [f64], &mut [f64], &mut [f64]) -> Result<(), String>
    + 'a;

/// One lifted column at a bound: its row i (column n_θ + i of J), B e = J_θᵀ J_L⁻ᵀ e_i and
/// C⁻¹ B e.
struct Column {
    row: usize,
    b: Vec<f64>,
    cb: Vec<f64>,
}

/// The columns at a bound met in the current subproblem, and the correction of the current
/// Newton system (see the module docs).
#[derive(Default)]
pub struct BoundColumns {
    /// The columns met since [`BoundColumns::clear`] (C and J unchanged since), at most
    /// [`BOUND_COLUMNS_MAX`]: past it, those not at a bound any more are dropped.
    kept: Vec<Column>,
    /// The current Newton system's columns (indices into `kept`), empty when uncorrected.
    set: Vec<usize>,
    /// The Cholesky factor of H = Bᵀ C⁻¹ B over `set`, row-major, lower triangle.
    factor: Vec<f64>,
    /// The border's entries: g = J_Aᵀ S r, then c.
    border: Vec<f64>,
}

impl BoundColumns {
    /// Forgets every column: a new subproblem, or a C formed again.
    pub fn clear(&mut self) {
        self.kept.clear();
        self.set.clear();
    }

    /// The number of columns the current Newton system corrects.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the current Newton system is uncorrected.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Takes the lifted columns not free in `free_s` (n entries, the first `n_theta` the
    /// parameters') as the current Newton system's correction: their B columns and C⁻¹ B
    /// through `op` and `c_inverse` where not kept yet, then H's factor (a column whose row of
    /// G depends on the rows before it stays in P). No correction past [`BOUND_COLUMNS_MAX`]
    /// columns.
    pub fn prepare(
        &mut self,
        free_s: &[bool],
        n_theta: usize,
        op: &mut dyn JacOp,
        c_inverse: &mut CInverse<'_>,
        tn: &mut [f64],
        tm: &mut [f64],
    ) -> Result<(), String> {
        self.set.clear();
        let rows: Vec<usize> = (n_theta..free_s.len())
            .filter(|&j| !free_s[j])
            .map(|j| j - n_theta)
            .collect();
        if rows.is_empty() || rows.len() > BOUND_COLUMNS_MAX {
            return Ok(());
        }
        let missing = rows
            .iter()
            .filter(|&&row| !self.kept.iter().any(|c| c.row == row))
            .count();
        if self.kept.len() + missing > BOUND_COLUMNS_MAX {
            self.kept.retain(|c| rows.contains(&c.row));
        }
        for &row in &rows {
            let index = match self.kept.iter().position(|c| c.row == row) {
                Some(index) => index,
                None => {
                    tm.fill(0.0);
                    tm[row] = 1.0;
                    op.ltsolve_theta(tm, tn)?;
                    let b = tn[..n_theta].to_vec();
                    let mut cb = vec![0.0; n_theta];
                    c_inverse(op, &b, &mut cb, tn, tm)?;
                    self.kept.push(Column { row, b, cb });
                    self.kept.len() - 1
                }
            };
            self.set.push(index);
        }
        self.factor_h();
        Ok(())
    }

    /// H = Bᵀ C⁻¹ B over the current set (symmetrized), factored in place; a column whose
    /// squared pivot falls under [`PIVOT_MIN`] of H's largest diagonal entry leaves the set
    /// (it depends on the columns before it), the others stay corrected.
    fn factor_h(&mut self) {
        let h = |a: &Column, b: &Column| 0.5 * (dot(&a.b, &b.cb) + dot(&b.b, &a.cb));
        let largest = self
            .set
            .iter()
            .map(|&i| h(&self.kept[i], &self.kept[i]))
            .fold(0.0, f64::max);
        let candidates = std::mem::take(&mut self.set);
        if !(largest > 0.0 && largest.is_finite()) {
            return;
        }
        let k_max = candidates.len();
        self.factor.clear();
        self.factor.resize(k_max * k_max, 0.0);
        let mut row = vec![0.0; k_max];
        for &i in &candidates {
            let j = self.set.len();
            for (p, &q) in self.set.iter().enumerate() {
                let lp = &self.factor[p * k_max..p * k_max + p];
                let v = h(&self.kept[i], &self.kept[q]) - dot(&row[..p], lp);
                row[p] = v / self.factor[p * k_max + p];
            }
            let d = h(&self.kept[i], &self.kept[i]) - row[..j].iter().map(|v| v * v).sum::<f64>();
            if d > PIVOT_MIN * largest {
                self.factor[j * k_max..j * k_max + j].copy_from_slice(&row[..j]);
                self.factor[j * k_max + j] = d.sqrt();
                self.set.push(i);
            }
        }
        // the factor's rows at the stride of the set kept
        let k = self.set.len();
        for a in 1..k {
            for b in 0..=a {
                self.factor[a * k + b] = self.factor[a * k_max + b];
            }
        }
        self.factor.truncate(k * k);
    }

    /// Keeps g = J_Aᵀ S r from `x` = J_L⁻¹ r (m entries).
    pub fn gather(&mut self, x: &[f64]) {
        self.border.clear();
        self.border
            .extend(self.set.iter().map(|&i| x[self.kept[i].row]));
    }

    /// Turns u = C⁻¹ f (n_θ entries) into the bordered solution's a, and the border into c.
    pub fn adjust(&mut self, u: &mut [f64]) {
        let k = self.set.len();
        // c = H⁻¹ (Bᵀ u − g): forward, then backward substitution with the factor
        for a in 0..k {
            let mut v = dot(&self.kept[self.set[a]].b, u) - self.border[a];
            for p in 0..a {
                v -= self.factor[a * k + p] * self.border[p];
            }
            self.border[a] = v / self.factor[a * k + a];
        }
        for a in (0..k).rev() {
            let mut v = self.border[a];
            for p in a + 1..k {
                v -= self.factor[p * k + a] * self.border[p];
            }
            self.border[a] = v / self.factor[a * k + a];
        }
        for (a, &c) in self.border.iter().enumerate() {
            for (ui, cbi) in u.iter_mut().zip(&self.kept[self.set[a]].cb) {
                *ui -= c * cbi;
            }
        }
    }

    /// Subtracts E_A c from `x` (m entries: −J_L⁻¹ J_θ a, the last pass's input).
    pub fn scatter(&self, x: &mut [f64]) {
        for (&i, &c) in self.set.iter().zip(&self.border) {
            x[self.kept[i].row] -= c;
        }
    }
}
