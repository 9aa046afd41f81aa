//! The standard activations: relu, leaky_relu and l1 in hand-written closed form (they sit on the
//! hot path), elu through the SDK's piecewise machinery, tanh, sigmoid and softplus as smooth
//! functions with closed-form derivatives.

use mcopt_plugin_sdk::{
    Coeffs, CoeffsMut, Elementwise, Kind, Num, Order, ParamDescriptor, Piecewise, Smooth,
    Smoothness,
};

/// Which side of a kink at 0 the ray (x, a1, a2) takes for small t > 0, and whether it is a tie
/// (|x| ≤ ztol). A NaN argument goes right, so NaN flows through instead of becoming 0.
#[inline(always)]
fn side(x: f64, a1: f64, a2: f64, ztol: f64) -> (bool, bool) {
    // Bitwise `&`/`|` on bools, not `&&`/`||`: no branches, so the loops vectorize.
    let tie = x.abs() <= ztol;
    let tie_right = (a1 > 0.0) | ((a1 == 0.0) & (a2 >= 0.0));
    let right = (tie & tie_right) | (!tie & ((x > 0.0) | x.is_nan()));
    (right, tie)
}

/// Shared loop of the functions that are linear on each side of a kink at 0:
/// φ(x) = x·(right slope) or x·(left slope). Written with zipped iterators (no bounds checks)
/// and selects (no branches) so it vectorizes.
#[inline(always)]
fn two_slopes(
    left: f64,
    right: f64,
    order: Order,
    ztol: f64,
    a: Coeffs<'_>,
    f: CoeffsMut<'_>,
) -> usize {
    let [f0, f1, f2] = f;
    let mut kinks = 0;
    match order {
        Order::Zero => {
            for (y, &x) in f0.iter_mut().zip(a[0]) {
                let (r, tie) = side(x, 0.0, 0.0, ztol);
                kinks += tie as usize;
                *y = x * if r { right } else { left };
            }
        }
        Order::One => {
            for ((y0, y1), (&x, &d)) in f0.iter_mut().zip(f1.iter_mut()).zip(a[0].iter().zip(a[1]))
            {
                let (r, tie) = side(x, d, 0.0, ztol);
                kinks += tie as usize;
                let s = if r { right } else { left };
                *y0 = s * x;
                *y1 = s * d;
            }
        }
        Order::Two => {
            let outs = f0.iter_mut().zip(f1.iter_mut()).zip(f2.iter_mut());
            let ins = a[0].iter().zip(a[1]).zip(a[2]);
            for (((y0, y1), y2), ((&x, &d), &c)) in outs.zip(ins) {
                let (r, tie) = side(x, d, c, ztol);
                kinks += tie as usize;
                let s = if r { right } else { left };
                *y0 = s * x;
                *y1 = s * d;
                *y2 = s * c;
            }
        }
    }
    kinks
}

/// relu(x) = max(x, 0).
pub struct Relu;

impl Elementwise for Relu {
    const NAME: &'static str = "relu";
    const KIND: Kind = Kind::Activation;
    const SMOOTHNESS: Smoothness = Smoothness::Piecewise;
    const BREAKPOINTS: &'static [f64] = &[0.0];

    #[inline]
    fn eval(_p: &[f64], order: Order, ztol: f64, a: Coeffs<'_>, f: CoeffsMut<'_>) -> usize {
        let [f0, f1, f2] = f;
        let mut kinks = 0;
        match order {
            // The hot paths of every forward pass: selects, no multiplications, vectorizable.
            Order::Zero if ztol == 0.0 => {
                let mut k = 0u64;
                for (y, &x) in f0.iter_mut().zip(a[0]) {
                    k += (x == 0.0) as u64;
                    // NaN compares false, so it flows through instead of becoming 0.
                    *y = if x <= 0.0 { 0.0 } else { x };
                }
                kinks = k as usize;
            }
            Order::Zero => {
                for (y, &x) in f0.iter_mut().zip(a[0]) {
                    let (r, tie) = side(x, 0.0, 0.0, ztol);
                    kinks += tie as usize;
                    *y = if r { x } else { 0.0 };
                }
            }
            Order::One if ztol == 0.0 => {
                let mut k = 0u64;
                let outs = f0.iter_mut().zip(f1.iter_mut());
                for ((y0, y1), (&x, &d)) in outs.zip(a[0].iter().zip(a[1])) {
                    let tie = x == 0.0;
                    k += tie as u64;
                    // At a tie with d = 0 both sides give (0, 0), so d > 0 decides alone.
                    let r = (x > 0.0) | (tie & (d > 0.0)) | x.is_nan();
                    *y0 = if r { x } else { 0.0 };
                    *y1 = if r { d } else { 0.0 };
                }
                kinks = k as usize;
            }
            Order::One => {
                for ((y0, y1), (&x, &d)) in
                    f0.iter_mut().zip(f1.iter_mut()).zip(a[0].iter().zip(a[1]))
                {
                    let (r, tie) = side(x, d, 0.0, ztol);
                    kinks += tie as usize;
                    *y0 = if r { x } else { 0.0 };
                    *y1 = if r { d } else { 0.0 };
                }
            }
            Order::Two => return two_slopes(0.0, 1.0, order, ztol, a, [f0, f1, f2]),
        }
        kinks
    }
}

/// leaky_relu(x, slope = 0.01) = x for x > 0, slope·x otherwise.
pub struct LeakyRelu;

impl Elementwise for LeakyRelu {
    const NAME: &'static str = "leaky_relu";
    const KIND: Kind = Kind::Activation;
    const SMOOTHNESS: Smoothness = Smoothness::Piecewise;
    const PARAMS: &'static [ParamDescriptor] = &[ParamDescriptor::with_default("slope", 0.01)];
    const BREAKPOINTS: &'static [f64] = &[0.0];

    fn check_params(p: &[f64]) -> Result<(), String> {
        finite("slope", p[0])
    }

    #[inline]
    fn eval(p: &[f64], order: Order, ztol: f64, a: Coeffs<'_>, f: CoeffsMut<'_>) -> usize {
        two_slopes(p[0], 1.0, order, ztol, a, f)
    }
}

/// elu(x, alpha = 1) = x for x > 0, alpha·(eˣ − 1) otherwise. C¹ at 0 when alpha = 1 (the
/// second coefficient is then a2 on the right piece and a1² + a2 on the left one).
pub struct Elu;

impl Piecewise for Elu {
    const NAME: &'static str = "elu";
    const PARAMS: &'static [ParamDescriptor] = &[ParamDescriptor::with_default("alpha", 1.0)];
    const BREAKPOINTS: &'static [f64] = &[0.0];

    fn check_params(p: &[f64]) -> Result<(), String> {
        finite("alpha", p[0])
    }

    fn piece<D: Num>(i: usize, x: D, p: &[f64]) -> D {
        if i == 0 {
            x.exp_m1() * p[0]
        } else {
            x
        }
    }

    #[inline]
    fn piece_value(i: usize, x: f64, p: &[f64]) -> f64 {
        if i == 0 {
            p[0] * x.exp_m1()
        } else {
            x
        }
    }

    #[inline]
    fn piece_d1(i: usize, x: f64, p: &[f64]) -> (f64, f64) {
        if i == 0 {
            let e = x.exp();
            (p[0] * x.exp_m1(), p[0] * e)
        } else {
            (x, 1.0)
        }
    }

    #[inline]
    fn piece_d2(i: usize, x: f64, p: &[f64]) -> (f64, f64, f64) {
        if i == 0 {
            let e = p[0] * x.exp();
            (p[0] * x.exp_m1(), e, e)
        } else {
            (x, 1.0, 0.0)
        }
    }
}

/// tanh(x), closed-form derivatives: φ′ = 1 − t², φ″ = −2t(1 − t²).
pub struct Tanh;

impl Smooth for Tanh {
    const NAME: &'static str = "tanh";

    fn phi<D: Num>(x: D, _p: &[f64]) -> D {
        x.tanh()
    }

    #[inline]
    fn value(x: f64, _p: &[f64]) -> f64 {
        x.tanh()
    }

    #[inline]
    fn d1(x: f64, _p: &[f64]) -> (f64, f64) {
        let t = x.tanh();
        (t, 1.0 - t * t)
    }

    #[inline]
    fn d2(x: f64, _p: &[f64]) -> (f64, f64, f64) {
        let t = x.tanh();
        let d = 1.0 - t * t;
        (t, d, -2.0 * t * d)
    }
}

/// The logistic function, evaluated without overflow for large |x|.
#[inline]
pub fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// sigmoid(x) = 1 / (1 + e⁻ˣ), closed-form derivatives: φ′ = s(1 − s), φ″ = φ′(1 − 2s).
pub struct Sigmoid;

impl Smooth for Sigmoid {
    const NAME: &'static str = "sigmoid";

    fn phi<D: Num>(x: D, _p: &[f64]) -> D {
        ((-x).exp() + 1.0).recip()
    }

    #[inline]
    fn value(x: f64, _p: &[f64]) -> f64 {
        logistic(x)
    }

    #[inline]
    fn d1(x: f64, _p: &[f64]) -> (f64, f64) {
        let s = logistic(x);
        (s, s * (1.0 - s))
    }

    #[inline]
    fn d2(x: f64, _p: &[f64]) -> (f64, f64, f64) {
        let s = logistic(x);
        let d = s * (1.0 - s);
        (s, d, d * (1.0 - 2.0 * s))
    }
}

/// softplus(x) = ln(1 + eˣ), computed as max(x, 0) + ln(1 + e^−|x|); φ′ = sigmoid, φ″ = s(1 − s).
pub struct Softplus;

#[inline]
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

impl Smooth for Softplus {
    const NAME: &'static str = "softplus";

    fn phi<D: Num>(x: D, _p: &[f64]) -> D {
        x.exp().ln_1p()
    }

    #[inline]
    fn value(x: f64, _p: &[f64]) -> f64 {
        softplus(x)
    }

    #[inline]
    fn d1(x: f64, _p: &[f64]) -> (f64, f64) {
        (softplus(x), logistic(x))
    }

    #[inline]
    fn d2(x: f64, _p: &[f64]) -> (f64, f64, f64) {
        let s = logistic(x);
        (softplus(x), s, s * (1.0 - s))
    }
}

/// l1(x) = |x| (a penalty; the caller sums it). Prox: soft thresholding.
pub struct L1;

impl Elementwise for L1 {
    const NAME: &'static str = "l1";
    const KIND: Kind = Kind::Penalty;
    const SMOOTHNESS: Smoothness = Smoothness::Piecewise;
    const BREAKPOINTS: &'static [f64] = &[0.0];
    const HAS_PROX: bool = true;

    #[inline]
    fn eval(_p: &[f64], order: Order, ztol: f64, a: Coeffs<'_>, f: CoeffsMut<'_>) -> usize {
        two_slopes(-1.0, 1.0, order, ztol, a, f)
    }

    fn prox(_p: &[f64], step: f64, v: &[f64], out: &mut [f64]) -> Result<(), String> {
        check_step(step)?;
        for (z, &x) in out.iter_mut().zip(v) {
            *z = x.signum() * (x.abs() - step).max(0.0);
        }
        Ok(())
    }
}

/// A parameter must be a finite number.
pub(crate) fn finite(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("parameter {name} must be finite, found {v}"))
    }
}

/// A proximal step must be finite and nonnegative.
pub(crate) fn check_step(step: f64) -> Result<(), String> {
    if step.is_finite() && step >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "proximal step must be finite and nonnegative, found {step}"
        ))
    }
}
