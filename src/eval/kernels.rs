//! Scalar ray-Taylor rules: truncated expansions a(t) = a₀ + a₁t + a₂t²/2 with K ≤ 3 terms.
//!
//! Piecewise functions pick their piece by the lexicographic sign of the expansion
//! (`docs/math.md` §2), so the results are exact one-sided directional derivatives at kinks.
//!
//! Also how the evaluator calls the registry's elementwise functions ([`Calls`]: the built-in
//! relu inline).

use mcopt_plugin_sdk::Elementwise;
use mcopt_std::activations::Relu;

use crate::registry::{CallError, FunctionId, Order, Registry};

/// A truncated expansion with `K` coefficients (K = 1: value, 2: first order, 3: second order).
pub type Tay<const K: usize> = [f64; K];

#[inline(always)]
pub fn add<const K: usize>(a: Tay<K>, b: Tay<K>) -> Tay<K> {
    std::array::from_fn(|k| a[k] + b[k])
}

#[inline(always)]
pub fn sub<const K: usize>(a: Tay<K>, b: Tay<K>) -> Tay<K> {
    std::array::from_fn(|k| a[k] - b[k])
}

#[inline(always)]
pub fn scale<const K: usize>(a: Tay<K>, s: f64) -> Tay<K> {
    std::array::from_fn(|k| s * a[k])
}

#[inline(always)]
pub fn mul<const K: usize>(a: Tay<K>, b: Tay<K>) -> Tay<K> {
    let mut o = [0.0; K];
    o[0] = a[0] * b[0];
    if K > 1 {
        o[1] = a[0] * b[1] + a[1] * b[0];
    }
    if K > 2 {
        o[2] = a[0] * b[2] + 2.0 * a[1] * b[1] + a[2] * b[0];
    }
    o
}

/// `a / b`; `None` when b₀ = 0.
#[inline(always)]
pub fn div<const K: usize>(a: Tay<K>, b: Tay<K>) -> Option<Tay<K>> {
    if b[0] == 0.0 {
        return None;
    }
    let mut c = [0.0; K];
    c[0] = a[0] / b[0];
    if K > 1 {
        c[1] = (a[1] - c[0] * b[1]) / b[0];
    }
    if K > 2 {
        c[2] = (a[2] - 2.0 * c[1] * b[1] - c[0] * b[2]) / b[0];
    }
    Some(c)
}

/// A smooth function applied to an expansion, given φ(a₀), φ′(a₀), φ″(a₀).
#[inline(always)]
pub fn smooth<const K: usize>(a: Tay<K>, f0: f64, f1: f64, f2: f64) -> Tay<K> {
    let mut o = [0.0; K];
    o[0] = f0;
    if K > 1 {
        o[1] = f1 * a[1];
    }
    if K > 2 {
        o[2] = f2 * a[1] * a[1] + f1 * a[2];
    }
    o
}

/// The sign of a(t) for all small t > 0, and whether a₀ counts as a kink (|a₀| ≤ ztol).
#[inline(always)]
pub fn lexsign<const K: usize>(a: Tay<K>, ztol: f64) -> (f64, bool) {
    if a[0].abs() > ztol {
        return (a[0].signum(), false);
    }
    for &c in &a[1..] {
        if c != 0.0 {
            return (c.signum(), true);
        }
    }
    (0.0, true)
}

/// |a| with its kink flag.
#[inline(always)]
pub fn abs<const K: usize>(a: Tay<K>, ztol: f64) -> (Tay<K>, bool) {
    let (s, kink) = lexsign(a, ztol);
    let mut o = scale(a, s);
    o[0] = a[0].abs();
    (o, kink)
}

/// max(a, b) (or min when `is_max` is false): the piece chosen lexicographically, ties to `a`.
#[inline(always)]
pub fn max_min<const K: usize>(a: Tay<K>, b: Tay<K>, ztol: f64, is_max: bool) -> (Tay<K>, bool) {
    let (s, kink) = lexsign(sub(a, b), ztol);
    let pick_a = if is_max { s >= 0.0 } else { s <= 0.0 };
    let mut o = if pick_a { a } else { b };
    o[0] = if is_max {
        a[0].max(b[0])
    } else {
        a[0].min(b[0])
    };
    (o, kink)
}

/// The sums of products of coefficients of a group that its Euclidean norm needs:
/// Σ a₀a₀, Σ a₀a₁, Σ a₁a₁, Σ a₀a₂, Σ a₁a₂, Σ a₂a₂ over the entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Norm2Sums {
    pub a0a0: f64,
    pub a0a1: f64,
    pub a1a1: f64,
    pub a0a2: f64,
    pub a1a2: f64,
    pub a2a2: f64,
}

impl Norm2Sums {
    /// Add one entry's expansion (missing coefficients are 0).
    #[inline(always)]
    pub fn add<const K: usize>(&mut self, a: Tay<K>) {
        let a1 = if K > 1 { a[1] } else { 0.0 };
        let a2 = if K > 2 { a[2] } else { 0.0 };
        self.a0a0 += a[0] * a[0];
        self.a0a1 += a[0] * a1;
        self.a1a1 += a1 * a1;
        self.a0a2 += a[0] * a2;
        self.a1a2 += a1 * a2;
        self.a2a2 += a2 * a2;
    }
}

/// ‖a(t)‖ for a vector of expansions, exact to second order also at a₀ = 0, with its kink
/// flag (‖a₀‖ ≤ ztol). Away from 0: f′ = a₀·a₁/‖a₀‖, f″ = (‖a₁‖² + a₀·a₂ − f′²)/‖a₀‖.
/// At a₀ = 0, ‖a(t)‖ = t‖a₁ + a₂t/2‖ for t > 0: f′ = ‖a₁‖, f″ = a₁·a₂/‖a₁‖; when a₁ = 0 as
/// well, f′ = 0 and f″ = ‖a₂‖.
#[inline(always)]
pub fn norm2<const K: usize>(s: Norm2Sums, ztol: f64) -> (Tay<K>, bool) {
    let n0 = s.a0a0.sqrt();
    let (f1, f2) = if n0 > 0.0 {
        let f1 = s.a0a1 / n0;
        (f1, (s.a1a1 + s.a0a2 - f1 * f1) / n0)
    } else {
        let n1 = s.a1a1.sqrt();
        if n1 > 0.0 {
            (n1, s.a1a2 / n1)
        } else {
            (0.0, s.a2a2.sqrt())
        }
    };
    let mut o = [0.0; K];
    o[0] = n0;
    if K > 1 {
        o[1] = f1;
    }
    if K > 2 {
        o[2] = f2;
    }
    (o, n0 <= ztol)
}

/// φ, φ′, φ″ of x^k at x (integer k); `None` when undefined (x = 0 with a negative power).
#[inline(always)]
pub fn powi_parts(x: f64, k: i32) -> Option<(f64, f64, f64)> {
    match k {
        0 => Some((1.0, 0.0, 0.0)),
        1 => Some((x, 1.0, 0.0)),
        2 => Some((x * x, 2.0 * x, 2.0)),
        _ if k < 0 && x == 0.0 => None,
        _ => {
            let kf = k as f64;
            // k − 2 overflows for k near i32::MIN; powf covers those exponents.
            let xm2 = k
                .checked_sub(2)
                .map_or_else(|| x.powf(kf - 2.0), |j| x.powi(j));
            let xm1 = xm2 * x;
            Some((xm1 * x, kf * xm1, kf * (kf - 1.0) * xm2))
        }
    }
}

/// The registry's elementwise functions as the evaluator calls them: the standard plugin's
/// `relu` (built in, so its code is linked into this binary) runs its own `eval` directly,
/// inlined, without the plugin entry's argument checks and panic guard, which it never needs
/// (it takes no parameters, cannot fail and is trusted: its outputs are not checked for NaN);
/// every other function goes through [`Registry::call`]. The numbers are the plugin's, the
/// same code on the same inputs with the tolerance the entry would pass (negative: 0), so
/// values, slopes and kink counts are the same to the bit. It is the activation of most
/// RNNs, called twice per step of a gradient (value, slope), where the call cost more than
/// its 20 entries' work.
#[derive(Clone, Copy)]
pub(super) struct Calls<'r> {
    pub registry: &'r Registry,
    /// The built-in standard plugin's relu, if the registry holds it.
    relu: Option<FunctionId>,
}

impl<'r> Calls<'r> {
    /// The functions of `registry`, with the built-in relu found once.
    pub fn new(registry: &'r Registry) -> Calls<'r> {
        let relu = registry.lookup(<Relu as Elementwise>::NAME).filter(|&id| {
            let src = &registry.info(id).source;
            src.library.is_none() && src.plugin == "std"
        });
        Calls { registry, relu }
    }

    /// `Registry::call` of `func` (the built-in relu, with no parameters, inline).
    #[inline]
    pub fn call(
        &self,
        func: FunctionId,
        params: &[f64],
        order: Order,
        ztol: f64,
        a: [&[f64]; 3],
        f: [&mut [f64]; 3],
    ) -> Result<usize, CallError> {
        if self.is_relu(func, params) && crate::registry::lengths_ok(order, &a, &f) {
            // What the plugin entry passes: a negative or NaN tolerance means exact ties only.
            let ztol = if ztol > 0.0 { ztol } else { 0.0 };
            return Ok(<Relu as Elementwise>::eval(&[], order, ztol, a, f));
        }
        self.registry.call(func, params, order, ztol, a, f)
    }

    /// Whether a call of `func` with `params` is the built-in relu, which
    /// [`Calls::relu_backward`] runs in one loop (with a tolerance of exact ties).
    #[inline]
    pub fn is_relu(&self, func: FunctionId, params: &[f64]) -> bool {
        self.relu == Some(func) && params.is_empty()
    }

    /// The backward step of an elementwise call `h = φ(x)` when φ is the built-in relu (no
    /// parameters) and the tolerance is exact ties: `adj += gout · φ′(x; +1)` in one loop, and
    /// true; false for every other call, which computes the slopes through [`Calls::call`].
    /// The slope is what the plugin's first-order pass gives for the direction 1 — 1 where
    /// `x > 0`, at `x = ±0` (a tie, passed by d = 1 > 0) and for NaN, 0 where `x < 0` — and it
    /// is multiplied and added as the general step does, so the adjoint has the same bits.
    /// With `first` the adjoint has no contribution yet and is not read: each entry is written
    /// as `0 + g · s`, what zeroing it and adding gives.
    #[inline]
    #[allow(
        clippy::too_many_arguments,
        reason = "the call's function and parameters, the tolerance, and the step's slices"
    )]
    pub fn relu_backward(
        &self,
        func: FunctionId,
        params: &[f64],
        ztol: f64,
        x: &[f64],
        gout: &[f64],
        adj: &mut [f64],
        first: bool,
    ) -> bool {
        if !self.is_relu(func, params) || ztol > 0.0 {
            return false;
        }
        let slope = |v: f64| if v < 0.0 { 0.0 } else { 1.0 };
        if first {
            for ((y, &g), &v) in adj.iter_mut().zip(gout).zip(x) {
                *y = 0.0 + g * slope(v);
            }
        } else {
            for ((y, &g), &v) in adj.iter_mut().zip(gout).zip(x) {
                *y += g * slope(v);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline relu gives the plugin entry's values, slopes and kink counts to the bit, for
    /// every order and tolerance, at kinks, on both sides, at ±0, ±∞ and NaN; other functions
    /// still go through the registry.
    #[test]
    fn the_inline_relu_is_the_plugins() {
        let r = Registry::with_standard();
        let calls = Calls::new(&r);
        let relu = r.lookup("relu");
        assert!(relu.is_some() && calls.relu == relu);
        let x = [
            0.0,
            -0.0,
            1.5,
            -2.0,
            1e-9,
            -1e-9,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let d: Vec<f64> = [1.0, -1.0, 0.0]
            .iter()
            .cycle()
            .take(x.len())
            .copied()
            .collect();
        let c: Vec<f64> = [0.0, 2.0, -3.0, 0.5]
            .iter()
            .cycle()
            .take(x.len())
            .copied()
            .collect();
        let bits = |out: &[Vec<f64>; 3]| -> Vec<u64> {
            out.iter().flatten().map(|v| v.to_bits()).collect()
        };
        for name in ["relu", "tanh"] {
            let Some(func) = r.lookup(name) else {
                panic!("no {name}")
            };
            for order in [Order::Zero, Order::One, Order::Two] {
                for ztol in [0.0, 1e-6, -1.0, f64::NAN] {
                    let n = |k: u32| if k <= order.as_u32() { x.len() } else { 0 };
                    let run = |inline: bool| {
                        let mut out = [0, 1, 2].map(|k| vec![0.0; n(k)]);
                        let [f0, f1, f2] = &mut out;
                        let a = [&x[..n(0)], &d[..n(1)], &c[..n(2)]];
                        let f = [&mut f0[..], &mut f1[..], &mut f2[..]];
                        let kinks = if inline {
                            calls.call(func, &[], order, ztol, a, f)
                        } else {
                            r.call(func, &[], order, ztol, a, f)
                        };
                        (kinks.map_err(|e| e.to_string()), bits(&out))
                    };
                    assert_eq!(run(true), run(false), "{name}, {order:?}, ztol {ztol}");
                }
            }
        }
        // The fused backward step against the slopes of the plugin's first-order pass.
        let Some(relu) = relu else { return };
        let ones = vec![1.0; x.len()];
        let gout: Vec<f64> = (0..x.len())
            .map(|i| [-1.5, 0.0, 2.0, -0.0][i % 4])
            .collect();
        for ztol in [0.0, -1.0, f64::NAN, 1e-6] {
            let (mut f0, mut f1) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            let a = [&x[..], &ones[..], &[][..]];
            let f = [&mut f0[..], &mut f1[..], &mut [][..]];
            assert!(r.call(relu, &[], Order::One, ztol, a, f).is_ok());
            let want: Vec<u64> = f1
                .iter()
                .zip(&gout)
                .map(|(s, g)| (0.0 + g * s).to_bits())
                .collect();
            let mut adj = vec![0.0; x.len()];
            if calls.relu_backward(relu, &[], ztol, &x, &gout, &mut adj, false) {
                assert!(ztol.is_nan() || ztol <= 0.0);
                assert_eq!(adj.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want);
                // Written without reading: the stale entries do not count.
                let mut stale = vec![f64::NAN; x.len()];
                assert!(calls.relu_backward(relu, &[], ztol, &x, &gout, &mut stale, true));
                assert_eq!(stale.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want);
            } else {
                assert!(ztol > 0.0, "ztol {ztol}");
            }
        }
    }

    #[test]
    fn abs_at_kink_follows_direction() {
        assert_eq!(abs([0.0, -2.0, 1.0], 0.0).0, [0.0, 2.0, -1.0]);
        assert_eq!(abs([0.0, 0.0, -3.0], 0.0).0, [0.0, 0.0, 3.0]);
        assert!(abs([0.0, 1.0, 0.0], 0.0).1);
        assert!(!abs([1e-3, 1.0, 0.0], 0.0).1);
        assert!(abs([1e-3, 1.0, 0.0], 1e-2).1);
    }

    #[test]
    fn division_inverts_multiplication() {
        let a = [1.5, -0.5, 2.0];
        let b = [2.0, 0.25, -1.0];
        let q = div(a, b).unwrap_or([f64::NAN; 3]);
        let back = mul(q, b);
        for k in 0..3 {
            assert!((back[k] - a[k]).abs() < 1e-14);
        }
    }

    #[test]
    fn powi_matches_closed_form() {
        let (v, d1, d2) = powi_parts(1.5, 3).unwrap_or_default();
        assert!((v - 3.375).abs() < 1e-14 && (d1 - 6.75).abs() < 1e-14 && (d2 - 9.0).abs() < 1e-14);
        let (v, d1, d2) = powi_parts(2.0, -1).unwrap_or_default();
        assert!((v - 0.5).abs() < 1e-15 && (d1 + 0.25).abs() < 1e-15 && (d2 - 0.25).abs() < 1e-15);
        assert!(powi_parts(0.0, -2).is_none());
        assert_eq!(powi_parts(0.0, 3), Some((0.0, 0.0, 0.0)));
    }
}
