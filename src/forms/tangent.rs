//! The tangent cone of (P0) at a feasible z (docs/math.md §3): the tangent directions are exactly the
//! forward-mode propagated ones, d_{u_ℓ} = ψ′_{ℓ−1}((θ, u_{<ℓ}); (d_θ, d_{u_{<ℓ}})).

use super::{Lifted, Residual};
use crate::eval::{EvalError, EvalOptions, Evaluator};
use crate::registry::Order;

/// Complete a θ-direction to the tangent direction (d_θ, d_u) of (P0) at the feasible point
/// (θ, u(θ)), by one forward-mode pass over the original graph (`ev` evaluates the graph that
/// was lifted).
pub fn complete_direction(
    lifted: &Lifted,
    ev: &mut Evaluator<'_>,
    theta: &[f64],
    d_theta: &[f64],
    opts: EvalOptions,
) -> Result<Vec<f64>, EvalError> {
    ev.directional(theta, d_theta, Order::One, opts)?;
    Ok(lifted.with_blocks(ev, d_theta, 1))
}

/// The largest violation of the tangency equations along d at z: the largest |r_ℓ′(z; d)|,
/// where r_ℓ = u_ℓ − ψ_{ℓ−1} (`ev` evaluates [`Lifted::graph`] or a penalized graph of it).
/// A direction is tangent at a feasible z exactly when this is 0.
pub fn tangency_violation(
    lifted: &Lifted,
    ev: &mut Evaluator<'_>,
    z: &[f64],
    d: &[f64],
    opts: EvalOptions,
) -> Result<Residual, EvalError> {
    ev.directional(z, d, Order::One, opts)?;
    Ok(lifted.largest_residual(ev, 1))
}

/// Whether d is tangent at z: every |r_ℓ′(z; d)| ≤ tol · (1 + ‖d‖∞).
pub fn is_tangent(
    lifted: &Lifted,
    ev: &mut Evaluator<'_>,
    z: &[f64],
    d: &[f64],
    tol: f64,
    opts: EvalOptions,
) -> Result<bool, EvalError> {
    let worst = tangency_violation(lifted, ev, z, d, opts)?;
    let scale = 1.0 + d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    Ok(worst.value.abs() <= tol * scale)
}
