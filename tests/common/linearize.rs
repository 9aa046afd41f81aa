//! The stored linearization of (P1) against exact derivatives, shared by `tests/it/srpa.rs`
//! (layered models) and `tests/it/autolift.rs` (automatically lifted kinks).

use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::forms::linearize::{Linearization, Linearizer, NO_PIECE};
use mcopt::forms::Lifted;
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;

const OPTS: EvalOptions = EvalOptions { ztol: 0.0 };

/// At z: J d against the exact directional derivatives r′(z; d) of every residual (three
/// random d from `seed`), the linearizer's residuals against the lifted graph's, and ∇F
/// against the lifted objective's gradient; `what` names the model in a failure.
pub fn check_linearization(l: &Lifted, r: &Registry, z: &[f64], seed: u64, what: &str) {
    let mut lin = Linearizer::new(l, r).unwrap();
    let mut out = Linearization::default();
    let mut pieces = vec![NO_PIECE; lin.sites()];
    lin.linearize(z, None, &mut pieces, &mut out).unwrap();
    let pat = lin.pattern().clone();
    let mut ev = Evaluator::new(&l.graph, r, Order::One).unwrap();
    let mut rng = Rng::new(seed);
    for _ in 0..3 {
        let d: Vec<f64> = (0..z.len()).map(|_| rng.normal()).collect();
        ev.directional(z, &d, Order::One, OPTS).unwrap();
        let mut row = 0;
        for b in &l.layout.blocks {
            let exact = ev.coeff(b.residual, 1).to_vec();
            let r0 = ev.coeff(b.residual, 0).to_vec();
            for (e, want) in exact.iter().enumerate() {
                let jd: f64 = (pat.row_ptr[row]..pat.row_ptr[row + 1])
                    .map(|p| out.jac[p] * d[pat.col_idx[p]])
                    .sum();
                assert!(
                    (jd - want).abs() <= 1e-12 * (1.0 + want.abs()),
                    "{what}: {} entry {e}: {jd} vs {want}",
                    b.name
                );
                // the same residual, computed by the linearizer and by the evaluator of the
                // lifted graph (their sums may be ordered differently: equal to rounding)
                let scale = 1.0 + r0[e].abs() + out.residual[row].abs();
                assert!(
                    (out.residual[row] - r0[e]).abs() <= 1e-13 * scale,
                    "{what}: {} entry {e}: residual {} vs {}",
                    b.name,
                    out.residual[row],
                    r0[e]
                );
                row += 1;
            }
        }
        assert_eq!(row, pat.row_ptr.len() - 1);
    }
    let mut grad = vec![0.0; z.len()];
    let mut fev = Evaluator::new(&l.graph, r, Order::Zero).unwrap();
    fev.gradient(z, &mut grad, OPTS).unwrap();
    assert_eq!(grad, out.grad, "{what}");
}
