//! Second order on a critical cone that is a subspace K = { d : R d = 0 }: K by sparse
//! elimination of its rows, then f″ on K — by its exact values when K is a line, else by the
//! smallest eigenvalue of the Lagrangian's Hessian on K (Lanczos on Hessian-vector products,
//! central differences of exact gradients of [`super::lagrangian`]'s graph), a lower bound of
//! f″ there. A negative eigenvalue is a witness only when the exact f″ along its vector says so.

use super::lp::Row;
use super::oracle::Oracle;
use super::smooth::{dot, lanczos_min, norm2};
use super::{Options, Status, Verdict};
use crate::eval::{EvalError, Evaluator};
use crate::graph::Graph;
use crate::registry::Order;

/// K = { d : R d = 0 } by its rows in echelon form: (pivot column, row), each row zero in the
/// pivot columns of the rows before it.
pub(super) struct Subspace {
    n: usize,
    rows: Vec<(usize, Vec<(usize, f64)>)>,
}

impl Subspace {
    /// Forward elimination with the largest entry of each reduced row as its pivot; a row
    /// reduced below 1e-9 of its own size is dependent. Sparse: a row meets only the pivot rows
    /// of the columns it reaches (in pivot order, by a heap).
    pub(super) fn of(n: usize, input: impl Iterator<Item = Row>) -> Subspace {
        let mut acc = vec![0.0; n];
        let mut seen = vec![false; n];
        let mut pivot_of: Vec<Option<usize>> = vec![None; n];
        let mut rows: Vec<(usize, Vec<(usize, f64)>)> = Vec::new();
        for row in input {
            let mut touched = Vec::new();
            let mut heap = std::collections::BinaryHeap::new();
            let mut scale = 0.0f64;
            let mut touch =
                |j: usize, touched: &mut Vec<usize>, heap: &mut std::collections::BinaryHeap<_>| {
                    if !seen[j] {
                        seen[j] = true;
                        touched.push(j);
                        if let Some(k) = pivot_of[j] {
                            heap.push(std::cmp::Reverse(k));
                        }
                    }
                };
            for &(j, v) in &row {
                acc[j] += v;
                scale = scale.max(v.abs());
                touch(j, &mut touched, &mut heap);
            }
            while let Some(std::cmp::Reverse(k)) = heap.pop() {
                let (p, r) = &rows[k];
                let c = acc[*p];
                if c == 0.0 {
                    continue;
                }
                let f = c / r.iter().find(|e| e.0 == *p).map_or(1.0, |e| e.1);
                for &(j, v) in r {
                    acc[j] -= f * v;
                    touch(j, &mut touched, &mut heap);
                }
                acc[*p] = 0.0;
            }
            let big = touched
                .iter()
                .copied()
                .max_by(|&a, &b| acc[a].abs().total_cmp(&acc[b].abs()));
            if let Some(p) = big.filter(|&p| scale > 0.0 && acc[p].abs() > 1e-9 * scale) {
                let mut kept: Vec<(usize, f64)> = touched
                    .iter()
                    .filter(|&&j| acc[j].abs() > 1e-14 * scale)
                    .map(|&j| (j, acc[j]))
                    .collect();
                kept.sort_by_key(|e| e.0);
                pivot_of[p] = Some(rows.len());
                rows.push((p, kept));
            }
            for j in touched {
                acc[j] = 0.0;
                seen[j] = false;
            }
        }
        Subspace { n, rows }
    }

    pub(super) fn dim(&self) -> usize {
        self.n - self.rows.len()
    }

    /// An orthonormal basis of K: one vector per free column, by back substitution.
    fn basis(&self) -> Vec<Vec<f64>> {
        let mut pivot = vec![false; self.n];
        self.rows.iter().for_each(|(p, _)| pivot[*p] = true);
        let mut out = Vec::new();
        for f in (0..self.n).filter(|&j| !pivot[j]) {
            let mut v = vec![0.0; self.n];
            v[f] = 1.0;
            for (p, r) in self.rows.iter().rev() {
                let (mut s, mut d) = (0.0, 1.0);
                for &(j, x) in r {
                    if j == *p {
                        d = x;
                    } else {
                        s += x * v[j];
                    }
                }
                v[*p] = -s / d;
            }
            out.push(v);
        }
        orthonormal(out)
    }

    /// The projection onto K, by an orthonormal basis of K or of its complement, whichever is
    /// smaller.
    fn projector(&self) -> Projector {
        if self.dim() <= self.rows.len() {
            return Projector::Onto(self.basis());
        }
        let dense = self
            .rows
            .iter()
            .map(|(_, r)| {
                let mut v = vec![0.0; self.n];
                r.iter().for_each(|&(j, x)| v[j] = x);
                v
            })
            .collect();
        Projector::Away(orthonormal(dense))
    }
}

enum Projector {
    Onto(Vec<Vec<f64>>),
    Away(Vec<Vec<f64>>),
}

impl Projector {
    fn apply(&self, v: &mut [f64]) {
        match self {
            Projector::Onto(b) => {
                let c: Vec<f64> = b.iter().map(|x| dot(x, v)).collect();
                v.iter_mut().for_each(|x| *x = 0.0);
                for (ci, bi) in c.iter().zip(b) {
                    v.iter_mut().zip(bi).for_each(|(x, y)| *x += ci * y);
                }
            }
            Projector::Away(b) => {
                for bi in b {
                    let c = dot(bi, v);
                    v.iter_mut().zip(bi).for_each(|(x, y)| *x -= c * y);
                }
            }
        }
    }
}

/// Modified Gram–Schmidt, dropping dependent vectors.
fn orthonormal(v: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for mut w in v {
        for _ in 0..2 {
            for b in &basis {
                let c = dot(&w, b);
                w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
            }
        }
        let nw = norm2(&w);
        if nw > 1e-10 {
            w.iter_mut().for_each(|x| *x /= nw);
            basis.push(w);
        }
    }
    basis
}

/// A witness of second order along `d` (exact slope in [−tol, 0], curvature < −tol).
fn witness(
    o: &mut Oracle<'_>,
    d: &[f64],
    opts: &Options,
    why: &str,
    method: &'static str,
) -> Result<Option<Verdict>, EvalError> {
    o.remember(d);
    let t = o.eval(d, Order::Two)?;
    let (s, c) = (t.d1.unwrap_or(f64::NAN), t.d2.unwrap_or(f64::NAN));
    if !super::second_order_witness(s, c, opts.tol) {
        return Ok(None);
    }
    let mut v = Verdict::new(Status::NotStationary, method, o.kinks.len()).reason(why);
    v.direction = Some(d.to_vec());
    v.slope = Some(s);
    v.curvature = Some(c);
    Ok(Some(v))
}

/// f″ ≥ −tol on K (of dimension ≥ 1), with `lagrangian` the graph of L when it applies.
///
/// On K every piece of every active kink has the same slope in exact arithmetic; in floating
/// point the evaluator breaks those ties by rounding, so an exact f″ along a computed direction of
/// K is the curvature of *one* of the tied pieces: a lower bound of f″ on K, never more. Hence
/// the order: the Lagrangian's bound first, then witnesses (confirmed exact slopes and
/// curvatures), then, on a line, the exact values as lower bounds.
pub(super) fn decide(
    o: &mut Oracle<'_>,
    opts: &Options,
    k: &Subspace,
    lagrangian: Option<&Graph>,
    method: &'static str,
) -> Result<Verdict, EvalError> {
    let kinks = o.kinks.len();
    let dim = k.dim();
    let what = format!("the critical cone is a subspace of dimension {dim}");
    let mut candidates = Vec::new();
    let mut found = None;
    if let Some(lg) = lagrangian {
        let p = k.projector();
        let mut lev = Evaluator::new(lg, o.registry(), Order::Two)?;
        let (lam, v) = lanczos(o, &mut lev, &p, opts)?;
        // The Ritz value must match the exact curvature of L along its vector, else the
        // differences of gradients crossed a kink near x.
        let exact = lev.directional(&o.x, &v, Order::Two, o.opts)?.d2;
        let exact = exact.unwrap_or(f64::NAN);
        let agrees = (exact - lam).abs() <= 1e-4 * (1.0 + lam.abs()) + opts.tol;
        o.remember(&v);
        o.remember(&v.iter().map(|x| -x).collect::<Vec<f64>>());
        if agrees && lam >= -opts.tol {
            return Ok(Verdict::new(Status::Stationary, method, kinks).reason(format!(
                "{what}; the Lagrangian's smallest eigenvalue on it is {lam:.6e} ≥ −tol (tol = {:e}), a lower bound of f″ there",
                opts.tol
            )));
        }
        found = Some(if agrees {
            format!("the Lagrangian's smallest eigenvalue on it is {lam:.3e} < 0")
        } else {
            format!("Hessian-vector products of the Lagrangian are unreliable here (estimate {lam:.3e}, its exact curvature along the vector {exact:.3e})")
        });
        candidates.push(v);
    } else if dim == 1 {
        candidates = k.basis();
    }
    let mut least = f64::INFINITY;
    for g in &candidates {
        for s in [1.0, -1.0] {
            let d: Vec<f64> = g.iter().map(|x| s * x).collect();
            let why = format!("{what}: negative curvature along it");
            if let Some(v) = witness(o, &d, opts, &why, method)? {
                return Ok(v);
            }
            least = least.min(o.eval(&d, Order::Two)?.d2.unwrap_or(f64::NAN));
        }
    }
    if dim == 1 && least >= -opts.tol {
        // f″(x; t g) = t² f″(x; g) for t > 0: the exact f″ along ±g (each a lower bound) is all
        // of f″ on K.
        return Ok(
            Verdict::new(Status::Stationary, method, kinks).reason(format!(
                "{what} (a line): exact f″ ≥ −tol along both its directions (tol = {:e})",
                opts.tol
            )),
        );
    }
    let why = match found {
        Some(f) => format!("{what}; {f}, and the exact f″ along its vector is no witness (f″ there is the largest of the tied pieces' curvatures: not decided)"),
        None => format!("{what}, and no Lagrangian for its curvature (a lifted form or a kink of the second derivative)"),
    };
    Ok(Verdict::new(Status::Inconclusive, method, kinks).reason(why))
}

/// Lanczos with full reorthogonalization on P ∇²L P: (λ_min, its unit Ritz vector in K).
fn lanczos(
    o: &mut Oracle<'_>,
    lev: &mut Evaluator<'_>,
    p: &Projector,
    opts: &Options,
) -> Result<(f64, Vec<f64>), EvalError> {
    let start: Vec<f64> = (0..o.n)
        .map(|i| 1.0 + 0.1 * ((i * 7919 % 97) as f64 / 97.0))
        .collect();
    lanczos_min(start, |q| hvp(o, lev, q), |v| p.apply(v), opts)
}

/// ∇²L v by central differences of exact gradients of L, with the step of [`Oracle::hvp`].
fn hvp(o: &Oracle<'_>, lev: &mut Evaluator<'_>, v: &[f64]) -> Result<Vec<f64>, EvalError> {
    let n = o.n;
    let norm = norm2(v);
    if norm == 0.0 {
        return Ok(vec![0.0; n]);
    }
    let xnorm = o.x.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let h = super::oracle::HVP_STEP * (1.0 + xnorm) / norm;
    let (mut gp, mut gm) = (vec![0.0; n], vec![0.0; n]);
    let xp: Vec<f64> = o.x.iter().zip(v).map(|(x, d)| x + h * d).collect();
    let xm: Vec<f64> = o.x.iter().zip(v).map(|(x, d)| x - h * d).collect();
    lev.gradient(&xp, &mut gp, o.opts)?;
    lev.gradient(&xm, &mut gm, o.opts)?;
    Ok(gp
        .iter()
        .zip(&gm)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect())
}
