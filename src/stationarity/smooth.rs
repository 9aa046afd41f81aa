//! Tier 1: no active kink. First order by the gradient norm, second order by the smallest
//! eigenvalue of the Hessian on the critical subspace (Lanczos on Hessian-vector products;
//! the Hessian is never formed).

use nalgebra::{DMatrix, SymmetricEigen};

use super::oracle::Oracle;
use super::{Options, Status, Verdict};
use crate::eval::EvalError;
use crate::registry::Order;

/// Largest number of Lanczos steps.
const MAX_LANCZOS: usize = 80;

pub(super) fn first_order(o: &mut Oracle<'_>, opts: &Options) -> Result<Verdict, EvalError> {
    let kinks = o.kinks.len();
    let g = o.gradient()?;
    let norm = norm2(&g);
    let d: Vec<f64> = g.iter().map(|x| -x / norm).collect();
    if norm > 0.0 {
        o.remember(&d);
    }
    if norm <= opts.tol {
        return Ok(Verdict::new(Status::Stationary, "gradient", kinks)
            .reason(format!("‖∇f‖ = {norm:.3e} ≤ tol = {:e}", opts.tol)));
    }
    let slope = o.eval(&d, Order::One)?.d1;
    let mut v = Verdict::new(Status::NotStationary, "gradient", kinks)
        .reason(format!("‖∇f‖ = {norm:.3e} > tol = {:e}", opts.tol));
    v.direction = Some(d);
    v.slope = slope;
    Ok(v)
}

/// The smallest eigenvalue of H restricted to the critical subspace ∇f^⊥ (all of Rⁿ when
/// ∇f = 0); a negative one gives the witness, whose curvature is then evaluated exactly.
pub(super) fn second_order(o: &mut Oracle<'_>, opts: &Options) -> Result<Verdict, EvalError> {
    let kinks = o.kinks.len();
    let g = o.gradient()?;
    let gn = norm2(&g);
    let ghat: Option<Vec<f64>> = (gn > 0.0).then(|| g.iter().map(|x| x / gn).collect());
    let (lambda, vec) = lanczos(o, ghat.as_deref(), opts)?;
    let lambda = lambda + 0.0;
    o.remember(&vec);
    o.remember(&vec.iter().map(|x| -x).collect::<Vec<f64>>());
    // The Ritz value must match the exact curvature along its vector, else the differences of
    // gradients crossed a kink near the point and the estimate cannot be trusted.
    let exact = o.eval(&vec, Order::Two)?.d2.unwrap_or(f64::NAN);
    let agrees = (exact - lambda).abs() <= 1e-4 * (1.0 + lambda.abs()) + opts.tol;
    if !agrees {
        return Ok(Verdict::new(Status::Inconclusive, "lanczos", kinks).reason(format!(
            "Hessian-vector products are unreliable here (Lanczos estimate {lambda:.6e}, exact curvature along its vector {exact:.6e}): a kink lies very close to the point"
        )));
    }
    if lambda >= -opts.tol {
        return Ok(
            Verdict::new(Status::Stationary, "lanczos", kinks).reason(format!(
                "smallest eigenvalue on the critical subspace {lambda:.6e} ≥ −tol (tol = {:e})",
                opts.tol
            )),
        );
    }
    // Confirm with the exact curvature along ±v.
    for sign in [1.0, -1.0] {
        let d: Vec<f64> = vec.iter().map(|x| sign * x).collect();
        let t = o.eval(&d, Order::Two)?;
        let (s, c) = (t.d1.unwrap_or(f64::NAN), t.d2.unwrap_or(f64::NAN));
        if super::second_order_witness(s, c, opts.tol) {
            let mut v = Verdict::new(Status::NotStationary, "lanczos", kinks).reason(format!(
                "smallest eigenvalue on the critical subspace {lambda:.6e}"
            ));
            v.direction = Some(d);
            v.slope = Some(s);
            v.curvature = Some(c);
            return Ok(v);
        }
    }
    Ok(Verdict::new(Status::Inconclusive, "lanczos", kinks).reason(format!(
        "Lanczos estimate {lambda:.3e} < 0, but the exact curvature along its vector does not confirm it"
    )))
}

/// Lanczos with full reorthogonalization on P H P, P = I − ĝĝᵀ: (λ_min, its unit Ritz vector).
fn lanczos(
    o: &mut Oracle<'_>,
    ghat: Option<&[f64]>,
    opts: &Options,
) -> Result<(f64, Vec<f64>), EvalError> {
    let n = o.n;
    let project = |v: &mut Vec<f64>| {
        if let Some(g) = ghat {
            let c = dot(v, g);
            v.iter_mut().zip(g).for_each(|(x, gi)| *x -= c * gi);
        }
    };
    let mut q = vec![1.0 / (n as f64).sqrt(); n];
    // A fixed, generic start (not orthogonal to typical eigenvectors).
    for (i, x) in q.iter_mut().enumerate() {
        *x *= 1.0 + 0.1 * ((i * 7919 % 97) as f64 / 97.0);
    }
    lanczos_min(q, |q| o.hvp(q), project, opts)
}

/// Lanczos with full reorthogonalization on P A P for a symmetric A given by its products
/// (`apply`) and an orthogonal projection P (`project`), from `start`: the smallest Ritz value
/// and its unit Ritz vector (0 and the zero vector when P removes the start), after at most
/// `MAX_LANCZOS` steps, or once the Ritz residual is below 1e-3 · tol, or on a stop.
pub(super) fn lanczos_min(
    mut q: Vec<f64>,
    mut apply: impl FnMut(&[f64]) -> Result<Vec<f64>, EvalError>,
    project: impl Fn(&mut Vec<f64>),
    opts: &Options,
) -> Result<(f64, Vec<f64>), EvalError> {
    let n = q.len();
    project(&mut q);
    let qn = norm2(&q);
    if qn == 0.0 {
        return Ok((0.0, vec![0.0; n]));
    }
    q.iter_mut().for_each(|x| *x /= qn);
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    let steps = n.min(MAX_LANCZOS);
    let mut best = (f64::INFINITY, Vec::new());
    for k in 0..steps {
        let mut w = apply(&q)?;
        project(&mut w);
        let a = dot(&w, &q);
        basis.push(q.clone());
        alpha.push(a);
        for b in &basis {
            let c = dot(&w, b);
            w.iter_mut().zip(b).for_each(|(x, bi)| *x -= c * bi);
        }
        let bnorm = norm2(&w);
        let (lam, y) = tridiagonal_min(&alpha, &beta);
        let ritz_res = bnorm * y.last().copied().unwrap_or(0.0).abs();
        best = (lam, y);
        if bnorm <= 1e-10 * (1.0 + a.abs())
            || ritz_res <= 1e-3 * opts.tol.max(1e-8)
            || k + 1 == steps
            || super::stopped(opts)
        {
            break;
        }
        beta.push(bnorm);
        q = w.iter().map(|x| x / bnorm).collect();
    }
    let (lam, y) = best;
    let mut v = vec![0.0; n];
    for (c, b) in y.iter().zip(&basis) {
        v.iter_mut().zip(b).for_each(|(x, bi)| *x += c * bi);
    }
    let vn = norm2(&v);
    if vn > 0.0 {
        v.iter_mut().for_each(|x| *x /= vn);
    }
    Ok((lam + 0.0, v))
}

/// The smallest eigenvalue of the tridiagonal (α, β) and its eigenvector.
pub(super) fn tridiagonal_min(alpha: &[f64], beta: &[f64]) -> (f64, Vec<f64>) {
    let k = alpha.len();
    let mut t = DMatrix::zeros(k, k);
    for i in 0..k {
        t[(i, i)] = alpha[i];
        if i + 1 < k {
            t[(i, i + 1)] = beta[i];
            t[(i + 1, i)] = beta[i];
        }
    }
    let eig = SymmetricEigen::new(t);
    let (i, &lam) = eig
        .eigenvalues
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .unwrap_or((0, &0.0));
    (lam, eig.eigenvectors.column(i).iter().copied().collect())
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// ‖a‖, never −0 (the sum of no terms is −0).
pub(super) fn norm2(a: &[f64]) -> f64 {
    dot(a, a).sqrt() + 0.0
}
