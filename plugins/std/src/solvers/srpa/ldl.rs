//! Sparse LDLᵀ of a symmetric quasi-definite matrix with a fixed pattern: the symbolic analysis
//! (fill-reducing ordering, elimination tree, column counts) is done once, the numeric
//! factorization is redone whenever the values change (an up-looking factorization in the style
//! of QDLDL, no pivoting: quasi-definite matrices have an LDLᵀ for every symmetric permutation).

// Index loops over several parallel arrays read best as index loops here.
#![allow(clippy::needless_range_loop)]

/// A symmetric matrix given by the upper triangle of its pattern, in the caller's numbering, and
/// factored in a fill-reducing permuted numbering chosen once.
#[derive(Debug, Clone)]
pub struct Ldl {
    n: usize,
    /// `perm[new] = old`.
    perm: Vec<usize>,
    /// `iperm[old] = new`.
    iperm: Vec<usize>,
    /// Permuted upper triangle, CSC.
    ap: Vec<usize>,
    ai: Vec<usize>,
    ax: Vec<f64>,
    etree: Vec<usize>,
    lp: Vec<usize>,
    li: Vec<usize>,
    lx: Vec<f64>,
    d: Vec<f64>,
    dinv: Vec<f64>,
    // workspaces
    y_vals: Vec<f64>,
    y_idx: Vec<usize>,
    y_mark: Vec<bool>,
    elim: Vec<usize>,
    next: Vec<usize>,
    tmp: Vec<f64>,
}

const NONE: usize = usize::MAX;

/// Why a factorization failed.
#[derive(Debug, Clone, PartialEq)]
pub enum LdlError {
    /// A zero (or non-finite) pivot: the matrix is not quasi-definite.
    Pivot(usize),
    /// The ordering could not be computed.
    Ordering(String),
}

impl std::fmt::Display for LdlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LdlError::Pivot(k) => write!(f, "zero or non-finite pivot at {k}"),
            LdlError::Ordering(m) => write!(f, "fill-reducing ordering failed: {m}"),
        }
    }
}

impl Ldl {
    /// Symbolic analysis of an `n × n` pattern given as the list of its upper-triangle entries
    /// `(row, col)` with `row ≤ col` (every diagonal entry must be listed). Returns the analysis
    /// and, for each entry in the order given, its slot in [`Ldl::values_mut`].
    pub fn analyse(n: usize, entries: &[(usize, usize)]) -> Result<(Ldl, Vec<usize>), LdlError> {
        let (perm, iperm) = amd_order(n, entries)?;
        // permuted upper triangle: entry (r, c) -> (min, max) of (iperm r, iperm c)
        let mut counts = vec![0usize; n + 1];
        let mut placed: Vec<(usize, usize)> = Vec::with_capacity(entries.len());
        for &(r, c) in entries {
            let (a, b) = (iperm[r], iperm[c]);
            let (row, col) = if a <= b { (a, b) } else { (b, a) };
            counts[col + 1] += 1;
            placed.push((row, col));
        }
        for j in 0..n {
            counts[j + 1] += counts[j];
        }
        let ap = counts.clone();
        let mut fill = counts;
        let mut ai = vec![0usize; entries.len()];
        let mut slots = vec![0usize; entries.len()];
        for (k, &(row, col)) in placed.iter().enumerate() {
            let at = fill[col];
            fill[col] += 1;
            ai[at] = row;
            slots[k] = at;
        }
        let (etree, lnz) = elimination_tree(n, &ap, &ai);
        let mut lp = vec![0usize; n + 1];
        for j in 0..n {
            lp[j + 1] = lp[j] + lnz[j];
        }
        let nnz = lp[n];
        let ldl = Ldl {
            n,
            perm,
            iperm,
            ap,
            ai,
            ax: vec![0.0; entries.len()],
            etree,
            lp,
            li: vec![0; nnz],
            lx: vec![0.0; nnz],
            d: vec![0.0; n],
            dinv: vec![0.0; n],
            y_vals: vec![0.0; n],
            y_idx: vec![0; n],
            y_mark: vec![false; n],
            elim: vec![0; n],
            next: vec![0; n],
            tmp: vec![0.0; n],
        };
        Ok((ldl, slots))
    }

    /// The values of the pattern's entries, addressed by the slots [`Ldl::analyse`] returned.
    pub fn values_mut(&mut self) -> &mut [f64] {
        &mut self.ax
    }

    /// Nonzeros of the factor L (a measure of the fill).
    pub fn factor_nnz(&self) -> usize {
        self.lp[self.n]
    }

    /// Numeric factorization of the current values.
    pub fn factor(&mut self) -> Result<(), LdlError> {
        let n = self.n;
        for (k, slot) in self.next.iter_mut().enumerate() {
            *slot = self.lp[k];
        }
        for k in 0..n {
            let mut nnz_y = 0;
            self.d[k] = 0.0;
            for p in self.ap[k]..self.ap[k + 1] {
                let b = self.ai[p];
                if b == k {
                    self.d[k] += self.ax[p];
                    continue;
                }
                self.y_vals[b] += self.ax[p];
                if self.y_mark[b] {
                    continue;
                }
                self.y_mark[b] = true;
                self.elim[0] = b;
                let mut ne = 1;
                let mut nx = self.etree[b];
                while nx != NONE && nx < k && !self.y_mark[nx] {
                    self.y_mark[nx] = true;
                    self.elim[ne] = nx;
                    ne += 1;
                    nx = self.etree[nx];
                }
                while ne > 0 {
                    ne -= 1;
                    self.y_idx[nnz_y] = self.elim[ne];
                    nnz_y += 1;
                }
            }
            for i in (0..nnz_y).rev() {
                let c = self.y_idx[i];
                let end = self.next[c];
                let yc = self.y_vals[c];
                for j in self.lp[c]..end {
                    self.y_vals[self.li[j]] -= self.lx[j] * yc;
                }
                let lkc = yc * self.dinv[c];
                self.li[end] = k;
                self.lx[end] = lkc;
                self.d[k] -= yc * lkc;
                self.next[c] += 1;
                self.y_vals[c] = 0.0;
                self.y_mark[c] = false;
            }
            if self.d[k] == 0.0 || !self.d[k].is_finite() {
                return Err(LdlError::Pivot(k));
            }
            self.dinv[k] = 1.0 / self.d[k];
        }
        Ok(())
    }

    /// Solves `K x = b` in place (caller's numbering).
    pub fn solve(&mut self, b: &mut [f64]) {
        let n = self.n;
        for (new, &old) in self.perm.iter().enumerate() {
            self.tmp[new] = b[old];
        }
        let x = &mut self.tmp;
        for i in 0..n {
            let xi = x[i];
            if xi != 0.0 {
                for j in self.lp[i]..self.lp[i + 1] {
                    x[self.li[j]] -= self.lx[j] * xi;
                }
            }
        }
        for i in 0..n {
            x[i] *= self.dinv[i];
        }
        for i in (0..n).rev() {
            let mut acc = x[i];
            for j in self.lp[i]..self.lp[i + 1] {
                acc -= self.lx[j] * x[self.li[j]];
            }
            x[i] = acc;
        }
        for (old, &new) in self.iperm.iter().enumerate() {
            b[old] = self.tmp[new];
        }
    }
}

/// The elimination tree of a permuted upper triangle and the column counts of L.
fn elimination_tree(n: usize, ap: &[usize], ai: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut work = vec![NONE; n];
    let mut lnz = vec![0usize; n];
    let mut etree = vec![NONE; n];
    for j in 0..n {
        work[j] = j;
        for &row in &ai[ap[j]..ap[j + 1]] {
            let mut i = row;
            while work[i] != j {
                if etree[i] == NONE {
                    etree[i] = j;
                }
                lnz[i] += 1;
                work[i] = j;
                i = etree[i];
            }
        }
    }
    (etree, lnz)
}

/// Approximate minimum degree ordering of the symmetric pattern (the `amd` crate).
fn amd_order(n: usize, entries: &[(usize, usize)]) -> Result<(Vec<usize>, Vec<usize>), LdlError> {
    let mut cols: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(r, c) in entries {
        cols[c].push(r);
        if r != c {
            cols[r].push(c);
        }
    }
    let mut colptr = Vec::with_capacity(n + 1);
    let mut rowval = Vec::with_capacity(2 * entries.len());
    colptr.push(0usize);
    for col in &mut cols {
        col.sort_unstable();
        col.dedup();
        rowval.extend_from_slice(col);
        colptr.push(rowval.len());
    }
    let control = amd::Control::default();
    let (perm, iperm, _info) = amd::order(n, &colptr, &rowval, &control)
        .map_err(|e| LdlError::Ordering(format!("{e:?}")))?;
    Ok((perm, iperm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_quasi_definite_system() {
        // K = [[4, 1, 2], [1, 3, 0], [2, 0, -5]]
        let entries = [(0, 0), (0, 1), (1, 1), (0, 2), (2, 2)];
        let vals = [4.0, 1.0, 3.0, 2.0, -5.0];
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
}
