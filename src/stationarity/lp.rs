//! The LPs and QPs of the certificates, solved by Clarabel (the only place it appears).

use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};

/// A sparse row: (column, value) pairs.
pub type Row = Vec<(usize, f64)>;

/// minimize ½ xᵀPx + qᵀx subject to `eq` rows = rhs and `le` rows ≤ rhs.
#[derive(Debug, Clone, Default)]
pub struct Program {
    pub n: usize,
    /// Upper-triangular entries (row ≤ col) of P.
    pub p: Vec<(usize, usize, f64)>,
    pub q: Vec<f64>,
    pub eq: Vec<(Row, f64)>,
    pub le: Vec<(Row, f64)>,
    /// Variables whose values (t, y₁, …) lie in a second-order cone, t ≥ ‖y‖.
    pub soc: Vec<usize>,
}

impl Program {
    pub fn new(n: usize) -> Program {
        Program {
            n,
            q: vec![0.0; n],
            ..Program::default()
        }
    }

    /// `lo ≤ x_j ≤ hi` for the variables in `cols`.
    pub fn bounds(&mut self, cols: std::ops::Range<usize>, lo: f64, hi: f64) {
        for j in cols {
            self.le.push((vec![(j, 1.0)], hi));
            self.le.push((vec![(j, -1.0)], -lo));
        }
    }

    /// Solve; `None` when the solver does not reach a solution (infeasible, numerical trouble).
    pub fn solve(&self) -> Option<Vec<f64>> {
        let n = self.n;
        let p = csc(n, n, self.p.iter().copied());
        let soc_rows: Vec<(Row, f64)> = self.soc.iter().map(|&j| (vec![(j, -1.0)], 0.0)).collect();
        let rows = self.eq.iter().chain(&self.le).chain(&soc_rows);
        let mut trip = Vec::new();
        let mut b = Vec::new();
        for (i, (row, rhs)) in rows.enumerate() {
            trip.extend(row.iter().map(|&(j, v)| (i, j, v)));
            b.push(*rhs);
        }
        let a = csc(b.len(), n, trip.into_iter());
        let mut cones = Vec::new();
        if !self.eq.is_empty() {
            cones.push(SupportedConeT::ZeroConeT(self.eq.len()));
        }
        if !self.le.is_empty() {
            cones.push(SupportedConeT::NonnegativeConeT(self.le.len()));
        }
        if !self.soc.is_empty() {
            cones.push(SupportedConeT::SecondOrderConeT(self.soc.len()));
        }
        let settings = DefaultSettingsBuilder::default()
            .verbose(false)
            .max_iter(200)
            .build()
            .ok()?;
        let mut solver = DefaultSolver::new(&p, &self.q, &a, &b, &cones, settings).ok()?;
        solver.solve();
        match solver.solution.status {
            SolverStatus::Solved | SolverStatus::AlmostSolved => Some(solver.solution.x.clone()),
            _ => None,
        }
    }
}

/// A CSC matrix from (row, col, value) triplets (duplicates summed).
fn csc(m: usize, n: usize, trip: impl Iterator<Item = (usize, usize, f64)>) -> CscMatrix<f64> {
    let (mut i, mut j, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (r, c, x) in trip {
        if x != 0.0 {
            i.push(r);
            j.push(c);
            v.push(x);
        }
    }
    CscMatrix::new_from_triplets(m, n, i, j, v)
}

/// min c·d over { R d ≥ 0, −1 ≤ d ≤ 1 } (plus `E d = 0`): the minimizer.
pub fn min_on_cone(c: &[f64], cone: &[Vec<f64>], eq: &[Vec<f64>]) -> Option<Vec<f64>> {
    let n = c.len();
    let mut prog = Program::new(n);
    prog.q.copy_from_slice(c);
    prog.bounds(0..n, -1.0, 1.0);
    for r in cone {
        prog.le.push((dense_row(r, -1.0), 0.0));
    }
    for r in eq {
        prog.eq.push((dense_row(r, 1.0), 0.0));
    }
    let mut d = prog.solve()?;
    // Interior-point answers sit within ~1e-9 of the box's vertices: snap them there, so a
    // witness reads as written (callers confirm it with an exact derivative anyway).
    for x in &mut d {
        let r = x.round();
        if (*x - r).abs() <= 1e-7 {
            *x = r;
        }
    }
    Some(d)
}

/// A point deep inside { R d ≥ 0 }: maximizes t with R_i d ≥ t ‖R_i‖, −1 ≤ d ≤ 1, t ≤ 1.
/// Returns (d, t); t ≤ 0 means the cone has no interior.
pub fn interior(n: usize, cone: &[Vec<f64>]) -> Option<(Vec<f64>, f64)> {
    let mut prog = Program::new(n + 1);
    prog.q[n] = -1.0;
    prog.bounds(0..n, -1.0, 1.0);
    prog.le.push((vec![(n, 1.0)], 1.0));
    for r in cone {
        let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        let mut row = dense_row(r, -1.0);
        row.push((n, norm));
        prog.le.push((row, 0.0));
    }
    let x = prog.solve()?;
    let t = x[n];
    Some((x[..n].to_vec(), t))
}

/// min ‖c + M s‖² over 0 ≤ s ≤ 1, with M given by its k columns (each sparse, length n).
/// Returns the minimizing y = c + M s.
pub fn min_norm_in_box(c: &[f64], cols: &[Row]) -> Option<Vec<f64>> {
    let (n, k) = (c.len(), cols.len());
    // Variables (s, y, t): minimize t subject to ‖y‖ ≤ t, y − M s = c, 0 ≤ s ≤ 1 (a
    // second-order cone program: the distance itself is accurate, not its square).
    let mut prog = Program::new(k + n + 1);
    prog.q[k + n] = 1.0;
    prog.soc = std::iter::once(k + n).chain(k..k + n).collect();
    let mut rows: Vec<Row> = (0..n).map(|i| vec![(k + i, 1.0)]).collect();
    for (j, col) in cols.iter().enumerate() {
        for &(i, v) in col {
            rows[i].push((j, -v));
        }
    }
    prog.eq = rows.into_iter().zip(c.iter().copied()).collect();
    prog.bounds(0..k, 0.0, 1.0);
    let x = prog.solve()?;
    Some(x[k..k + n].to_vec())
}

fn dense_row(r: &[f64], scale: f64) -> Row {
    r.iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(j, v)| (j, scale * v))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn min_norm_small() {
        let y = super::min_norm_in_box(&[0.0, -2.5], &[vec![(1, 1.0)]]);
        assert!(y.is_some(), "{y:?}");
        let y = y.unwrap();
        assert!((y[1] + 1.5).abs() < 1e-6, "{y:?}");
        let y = super::min_norm_in_box(&[0.0, -4.0], &[vec![(1, 4.0)]]);
        assert!(y.as_ref().unwrap()[1].abs() < 1e-6, "{y:?}");
    }
}
