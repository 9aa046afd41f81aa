//! Tier `likq`: the abs-normal form of d ↦ f′(x; d) and the linear independence kink
//! qualification (Griewank and Walther, "First- and second-order optimality conditions for
//! piecewise smooth objective functions", Optimization Methods and Software 2016).
//!
//! Every active kink of the max-type builder's entries ([`maxtype::build`], whatever the signs
//! with which they enter f) is written through switching variables: |a| is |ζ|, a tie
//! σ·max(P₀, …, P_{k−1}) is nested as M = (P_p + M)/2 + |ζ_p|/2 with ζ_p = P_p − M, a plugin
//! kink with slopes l, r is ((l + r)/2)·a + ((r − l)/2)·|ζ|. With leaves read off n exact
//! directional derivatives, the first-order model is
//!
//! ```text
//! f′(x; d) = a·d + b·|ζ|,   ζ = Z d + L |ζ|   (L strictly lower triangular)
//! ```
//!
//! (every switching variable is active at x: its kink sits at its breakpoint). LIKQ: the rows
//! of Z are linearly independent. Then every ζ is reached by some d, and with μ the least-squares
//! solution of Zᵀμ = a and c = b − Lᵀμ,
//!
//! ```text
//! f′(x; d) = (a − Zᵀμ)·d + Σ_i (μ_i ζ_i + c_i |ζ_i|),
//! ```
//!
//! so x is d-stationary iff a = Zᵀμ (tangential stationarity) and |μ_i| ≤ c_i for every i. A
//! violation gives the witness: −(a − Zᵀμ), or d with ζ = −sign(μ_i) e_i.
//!
//! Second order under strict complementarity (|μ_i| < c_i): the critical cone is ker Z, and
//! along it f″ = h(d) + b·|ξ| with ξ = q(d) + L|ξ| (the same form one order up) ≥ h(d) − μ·q(d),
//! the curvature of the Lagrangian whose kinks |ζ_i| are replaced by −(μ_i/c_i) ζ_i
//! ([`lagrangian`]); [`critical::decide`] tests it on ker Z.

use super::critical::{self, Subspace};
use super::kinks::KinkOrder;
use super::lagrangian;
use super::lp::Row;
use super::maxtype::{self, Acc, Ref, Structure};
use super::oracle::Oracle;
use super::smooth::norm2;
use super::{Options, Status, Verdict};
use crate::eval::EvalError;
use crate::graph::Graph;
use crate::registry::Order;
use crate::text::plural;

/// Most switching variables the tier takes (it forms Z Zᵀ densely).
const MAX_SWITCHING: usize = 2000;

/// A linear combination of the coordinates of d and of the |ζ_j|.
#[derive(Clone, Default)]
struct Expr {
    d: Row,
    abs: Row,
}

/// The abs-normal form at x.
struct AbsNormal {
    z: Vec<Row>,
    l: Vec<Row>,
    a: Vec<f64>,
    b: Vec<f64>,
    /// Per live multi-piece entry: its switching variables for p = 0, …, k − 2, each with the
    /// sign it has there (a repeated kink is one variable: ζ and −ζ have the same |ζ|).
    atoms_of: Vec<(usize, Vec<(usize, f64)>)>,
    s: Structure,
}

/// The entries the root reaches.
fn live(s: &Structure) -> Vec<bool> {
    let mut live = vec![false; s.outers.len()];
    live[s.root] = true;
    for v in (0..=s.root).rev() {
        if live[v] {
            for &(r, _) in s.outers[v].pieces.iter().flatten() {
                if let Ref::Outer(u) = r {
                    live[u] = true;
                }
            }
        }
    }
    live
}

fn combine(terms: &[(&Expr, f64)], dacc: &mut Acc, aacc: &mut Acc) -> Expr {
    for (e, c) in terms {
        e.d.iter().for_each(|&(j, x)| dacc.add(j, c * x));
        e.abs.iter().for_each(|&(j, x)| aacc.add(j, c * x));
    }
    Expr {
        d: dacc.drain(),
        abs: aacc.drain(),
    }
}

/// A key equal for ζ and −ζ (its first entry made positive, values by their bits) and the sign
/// that makes it so.
fn canonical(e: &Expr) -> (Vec<(usize, u64)>, f64) {
    let first = e.d.first().or(e.abs.first()).map_or(0.0, |x| x.1);
    let sign = if first < 0.0 { -1.0 } else { 1.0 };
    let n = e.d.len();
    let key =
        e.d.iter()
            .chain(&e.abs)
            .enumerate()
            .map(|(i, &(j, x))| {
                (
                    j + if i < n { 0 } else { usize::MAX / 2 },
                    (sign * x + 0.0).to_bits(),
                )
            })
            .collect();
    (key, sign)
}

impl AbsNormal {
    /// `Err(reason)` when the kinks are not expressible here.
    fn at(o: &mut Oracle<'_>) -> Result<Result<AbsNormal, String>, EvalError> {
        if o.kinks.iter().any(|k| k.order == KinkOrder::Second) {
            return Ok(Err("a kink of the second derivative only".into()));
        }
        let Some(s) = maxtype::build(o) else {
            return Ok(Err(
                "a kink under a matrix or inner product, or a norm at 0".into(),
            ));
        };
        let live = live(&s);
        let atoms: usize = (0..s.outers.len())
            .filter(|&v| live[v])
            .map(|v| s.outers[v].pieces.len() - 1)
            .sum();
        if atoms > MAX_SWITCHING {
            return Ok(Err(format!(
                "{atoms} switching variables > {MAX_SWITCHING}"
            )));
        }
        let n = o.n;
        let cols = maxtype::leaf_gradients(o, &s.leaves)?;
        let leaves: Vec<Expr> = cols
            .into_iter()
            .map(|d| Expr { d, abs: Vec::new() })
            .collect();
        let (mut dacc, mut aacc) = (Acc::new(n), Acc::new(atoms.max(1)));
        let mut val: Vec<Expr> = vec![Expr::default(); s.outers.len()];
        let (mut z, mut l, mut atoms_of) = (Vec::new(), Vec::new(), Vec::new());
        let mut orient: Vec<f64> = Vec::new();
        let mut known: std::collections::HashMap<Vec<(usize, u64)>, usize> =
            std::collections::HashMap::new();
        for v in (0..s.outers.len()).filter(|&v| live[v]) {
            let outer = &s.outers[v];
            let pieces: Vec<Expr> = outer
                .pieces
                .iter()
                .map(|p| {
                    let terms: Vec<(&Expr, f64)> = p
                        .iter()
                        .map(|&(r, c)| match r {
                            Ref::Leaf(k) => (&leaves[k], c),
                            Ref::Outer(u) => (&val[u], c),
                        })
                        .collect();
                    combine(&terms, &mut dacc, &mut aacc)
                })
                .collect();
            let k = pieces.len();
            let mut m = pieces[k - 1].clone();
            let mut mine = vec![(0, 1.0); k.saturating_sub(1)];
            for p in (0..k - 1).rev() {
                // ζ = P_p − M; M ← (P_p + M)/2 + |ζ|/2.
                let zeta = combine(&[(&pieces[p], 1.0), (&m, -1.0)], &mut dacc, &mut aacc);
                let (key, sign) = canonical(&zeta);
                let j = *known.entry(key).or_insert(z.len());
                if j == z.len() {
                    z.push(zeta.d);
                    l.push(zeta.abs);
                    orient.push(sign);
                }
                // ζ here is orient[j]·sign times the stored variable.
                mine[p] = (j, orient[j] * sign);
                let unit = Expr {
                    d: Vec::new(),
                    abs: vec![(j, 1.0)],
                };
                m = combine(
                    &[(&pieces[p], 0.5), (&m, 0.5), (&unit, 0.5)],
                    &mut dacc,
                    &mut aacc,
                );
            }
            val[v] = combine(&[(&m, outer.sigma)], &mut dacc, &mut aacc);
            if k > 1 {
                atoms_of.push((v, mine));
            }
        }
        let root = &val[s.root];
        let mut a = vec![0.0; n];
        root.d.iter().for_each(|&(j, x)| a[j] = x);
        let mut b = vec![0.0; z.len()];
        root.abs.iter().for_each(|&(j, x)| b[j] = x);
        Ok(Ok(AbsNormal {
            z,
            l,
            a,
            b,
            atoms_of,
            s,
        }))
    }

    fn switching(&self) -> usize {
        self.z.len()
    }
}

/// Multipliers under LIKQ: μ with Zᵀμ the projection of a on the rows of Z, the residual
/// a − Zᵀμ, c = b − Lᵀμ, and the Cholesky factor of Z Zᵀ for solves.
struct Multipliers {
    mu: Vec<f64>,
    residual: Vec<f64>,
    c: Vec<f64>,
    gram: nalgebra::linalg::Cholesky<f64, nalgebra::Dyn>,
}

fn dot_rows(x: &Row, y: &Row) -> f64 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < x.len() && j < y.len() {
        match x[i].0.cmp(&y[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += x[i].1 * y[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// LIKQ and the multipliers; `Err(reason)` when LIKQ fails.
fn multipliers(f: &AbsNormal, n: usize) -> Result<Multipliers, String> {
    let s = f.switching();
    let rank = n - Subspace::of(n, f.z.iter().cloned()).dim();
    if rank < s {
        return Err(format!(
            "the {} have rank {rank}",
            plural(s, "active switching row", "active switching rows")
        ));
    }
    let g = nalgebra::DMatrix::from_fn(s, s, |i, j| dot_rows(&f.z[i], &f.z[j]));
    let Some(gram) = g.cholesky() else {
        return Err("the active switching rows are numerically dependent".into());
    };
    let za = nalgebra::DVector::from_fn(s, |i, _| {
        f.z[i].iter().map(|&(j, x)| x * f.a[j]).sum::<f64>()
    });
    let mu = gram.solve(&za);
    let mut residual = f.a.clone();
    for (i, row) in f.z.iter().enumerate() {
        row.iter().for_each(|&(j, x)| residual[j] -= mu[i] * x);
    }
    let mut c = f.b.clone();
    for (i, row) in f.l.iter().enumerate() {
        row.iter().for_each(|&(j, x)| c[j] -= x * mu[i]);
    }
    Ok(Multipliers {
        mu: mu.iter().copied().collect(),
        residual,
        c,
        gram,
    })
}

/// d with Z d = rhs (the least-norm one: Zᵀ (Z Zᵀ)⁻¹ rhs).
fn reach(f: &AbsNormal, m: &Multipliers, rhs: &[f64], n: usize) -> Vec<f64> {
    let y = m.gram.solve(&nalgebra::DVector::from_column_slice(rhs));
    let mut d = vec![0.0; n];
    for (i, row) in f.z.iter().enumerate() {
        row.iter().for_each(|&(j, x)| d[j] += y[i] * x);
    }
    d
}

/// A witness of first order along `d` (normalized), confirmed by its exact slope.
fn descent(
    o: &mut Oracle<'_>,
    d: Vec<f64>,
    opts: &Options,
    why: String,
) -> Result<Option<Verdict>, EvalError> {
    let nd = norm2(&d);
    if nd == 0.0 {
        return Ok(None);
    }
    let d: Vec<f64> = d.iter().map(|x| x / nd).collect();
    o.remember(&d);
    let slope = o.eval(&d, Order::One)?.d1.unwrap_or(f64::NAN);
    if slope < -opts.tol {
        let mut v = Verdict::new(Status::NotStationary, "likq", o.kinks.len()).reason(why);
        v.direction = Some(d);
        v.slope = Some(slope);
        return Ok(Some(v));
    }
    Ok(None)
}

/// Tier `likq`, first order: a verdict, or `None` with the reason the tier does not decide
/// (a LIKQ failure is "LIKQ fails: …").
pub(super) fn first_order(
    o: &mut Oracle<'_>,
    opts: &Options,
) -> Result<(Option<Verdict>, Option<String>), EvalError> {
    let f = match AbsNormal::at(o)? {
        Ok(f) => f,
        Err(why) => return Ok((None, Some(format!("no abs-normal form here: {why}")))),
    };
    let n = o.n;
    let m = match multipliers(&f, n) {
        Ok(m) => m,
        Err(why) => return Ok((None, Some(format!("LIKQ fails: {why}")))),
    };
    let s = f.switching();
    let what = format!(
        "LIKQ holds ({} of rank {s})",
        plural(s, "active switching variable", "active switching variables")
    );
    let res = norm2(&m.residual);
    if res > opts.tol {
        let d: Vec<f64> = m.residual.iter().map(|x| -x).collect();
        let why = format!("{what}; not tangentially stationary: ‖a − Zᵀμ‖ = {res:.3e}");
        return Ok((descent(o, d, opts, why)?, None));
    }
    // The largest violation of |μ_i| ≤ c_i.
    let worst = (0..s)
        .map(|i| (i, m.mu[i].abs() - m.c[i]))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((i, gap)) = worst.filter(|w| w.1 > opts.tol) {
        // ζ = −sign(μ_i) e_i: Z d = ζ − L|ζ| (column i of L).
        let sg = -m.mu[i].signum();
        let mut rhs = vec![0.0; s];
        rhs[i] = sg;
        for (k, row) in f.l.iter().enumerate() {
            if let Some(&(_, x)) = row.iter().find(|e| e.0 == i) {
                rhs[k] -= x;
            }
        }
        let d = reach(&f, &m, &rhs, n);
        let why = format!("{what}; |μ_{i}| exceeds its bound b − Lᵀμ by {gap:.3e}");
        return Ok((descent(o, d, opts, why)?, None));
    }
    let v = Verdict::new(Status::Stationary, "likq", o.kinks.len()).reason(format!(
        "{what}: tangentially stationary (‖a − Zᵀμ‖ = {res:.3e}) and |μ_i| ≤ b_i − (Lᵀμ)_i + tol for each (tol = {:e})",
        opts.tol
    ));
    Ok((Some(v), None))
}

/// Tier `likq`, second order (after a `likq` first order): `None` without strict
/// complementarity (the critical cone is not ker Z) or when the form cannot be built again.
pub(super) fn second_order(
    o: &mut Oracle<'_>,
    opts: &Options,
) -> Result<Option<Verdict>, EvalError> {
    let Ok(f) = AbsNormal::at(o)? else {
        return Ok(None);
    };
    let n = o.n;
    let Ok(m) = multipliers(&f, n) else {
        return Ok(None);
    };
    if (0..f.switching()).any(|i| m.mu[i].abs() >= m.c[i] - opts.tol) {
        return Ok(None);
    }
    let k = Subspace::of(n, f.z.iter().cloned());
    if k.dim() == 0 {
        return Ok(Some(
            Verdict::new(Status::Stationary, "likq", o.kinks.len()).reason(
                "LIKQ with strict complementarity: the critical cone ker Z is {0}, nothing to check f″ along",
            ),
        ));
    }
    let lg = lagrangian_graph(o, &f, &m);
    Ok(Some(critical::decide(o, opts, &k, lg.as_ref(), "likq")?))
}

/// The Lagrangian: each |ζ_j| replaced by s_j ζ_j with s_j = −μ_j / c_j, as weights on the
/// pieces of each tie (nested: piece p weighs (1 + s_p)/2 · Π_{q<p} (1 − s_q)/2).
fn lagrangian_graph(o: &Oracle<'_>, f: &AbsNormal, m: &Multipliers) -> Option<Graph> {
    if o.lifted() {
        return None;
    }
    let mut w = lagrangian::Weights::at(o);
    for (v, atoms) in &f.atoms_of {
        let k = atoms.len() + 1;
        let s_of = |p: usize| {
            let (j, sign) = atoms[p];
            -sign * m.mu[j] / m.c[j]
        };
        let mut weights = vec![0.0; k];
        let mut rest = 1.0;
        for (p, wp) in weights.iter_mut().enumerate().take(k - 1) {
            *wp = rest * (1.0 + s_of(p)) / 2.0;
            rest *= (1.0 - s_of(p)) / 2.0;
        }
        weights[k - 1] = rest;
        if let Some(origin) = &f.s.outers[*v].origin {
            w.set(origin, &weights);
        }
    }
    Some(lagrangian::graph(o.graph(), &w))
}
