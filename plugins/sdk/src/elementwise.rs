//! Author-facing traits for elementwise functions: the low-level [`Elementwise`], and the two
//! ways most plugins write one: [`Smooth`] (written once, generic over a dual number type) and
//! [`Piecewise`] (smooth pieces between breakpoints, piece chosen lexicographically).

use crate::abi::{Kind, ParamDescriptor, Smoothness};
use num_dual::{Dual2_64, Dual64, DualNum};
use std::marker::PhantomData;

/// The number types a generic function is evaluated with: `f64`, `Dual64`, `Dual2_64`.
pub trait Num: DualNum<Primitive = f64> + Copy {}
impl<T: DualNum<Primitive = f64> + Copy> Num for T {}

/// How many ray-Taylor coefficients a call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// f0 only.
    Zero,
    /// f0, f1.
    One,
    /// f0, f1, f2.
    Two,
}

impl Order {
    /// The ABI encoding (0, 1, 2).
    pub fn as_u32(self) -> u32 {
        match self {
            Order::Zero => 0,
            Order::One => 1,
            Order::Two => 2,
        }
    }

    /// Decode the ABI encoding.
    pub fn from_u32(k: u32) -> Option<Order> {
        match k {
            0 => Some(Order::Zero),
            1 => Some(Order::One),
            2 => Some(Order::Two),
            _ => None,
        }
    }
}

/// Input coefficients of one call: `a[0]` always has the slice length; `a[k]` for `k > order`
/// is empty.
pub type Coeffs<'a> = [&'a [f64]; 3];
/// Output coefficients of one call, same convention as [`Coeffs`].
pub type CoeffsMut<'a> = [&'a mut [f64]; 3];

/// The low-level interface: one vectorized ray-Taylor evaluation per call.
///
/// `a` holds the coefficients (a0, a1, a2) of the argument along the ray, `f` receives
/// (f0, f1, f2) with f(t) = φ(a(t)) = f0 + f1 t + f2 t²/2 + o(t²). Return the number of elements
/// whose argument sits on a breakpoint (|a0 − bp| ≤ ztol). Implement this directly only for the
/// fastest closed forms; [`Smooth`] and [`Piecewise`] implement it for you.
pub trait Elementwise {
    const NAME: &'static str;
    const KIND: Kind;
    const SMOOTHNESS: Smoothness;
    /// Constant parameters, in call order (`leaky_relu(x, 0.01)`).
    const PARAMS: &'static [ParamDescriptor] = &[];
    /// Breakpoints at the default parameters, ascending.
    const BREAKPOINTS: &'static [f64] = &[];
    /// Whether [`Elementwise::prox`] is implemented (penalties only).
    const HAS_PROX: bool = false;

    /// Check parameter values once, before any call.
    fn check_params(_params: &[f64]) -> Result<(), String> {
        Ok(())
    }

    /// Evaluate a slice. `params` has exactly `PARAMS.len()` entries (the host fills defaults).
    fn eval(params: &[f64], order: Order, ztol: f64, a: Coeffs<'_>, f: CoeffsMut<'_>) -> usize;

    /// Proximal map: `out_i = argmin_z p(z) + (z − v_i)² / (2 step)`.
    fn prox(_params: &[f64], _step: f64, _v: &[f64], _out: &mut [f64]) -> Result<(), String> {
        Err(format!("{} has no proximal map", Self::NAME))
    }
}

/// A smooth scalar function, written once generically; φ′ and φ″ come from dual numbers unless
/// the author overrides [`Smooth::d1`] / [`Smooth::d2`] with closed forms.
pub trait Smooth {
    const NAME: &'static str;
    const KIND: Kind = Kind::Activation;
    const PARAMS: &'static [ParamDescriptor] = &[];

    /// φ(x) for any number type.
    fn phi<D: Num>(x: D, params: &[f64]) -> D;

    fn check_params(_params: &[f64]) -> Result<(), String> {
        Ok(())
    }

    /// φ(x).
    #[inline]
    fn value(x: f64, params: &[f64]) -> f64 {
        Self::phi(x, params)
    }

    /// (φ(x), φ′(x)), by a first-order dual number.
    #[inline]
    fn d1(x: f64, params: &[f64]) -> (f64, f64) {
        let y = Self::phi(Dual64::new(x, 1.0), params);
        (y.re, y.eps)
    }

    /// (φ(x), φ′(x), φ″(x)), by a second-order dual number.
    #[inline]
    fn d2(x: f64, params: &[f64]) -> (f64, f64, f64) {
        let y = Self::phi(Dual2_64::new(x, 1.0, 0.0), params);
        (y.re, y.v1, y.v2)
    }
}

/// Adapter: a [`Smooth`] function as an [`Elementwise`] one.
pub struct SmoothFn<T>(PhantomData<T>);

impl<T: Smooth> Elementwise for SmoothFn<T> {
    const NAME: &'static str = T::NAME;
    const KIND: Kind = T::KIND;
    const SMOOTHNESS: Smoothness = Smoothness::Smooth;
    const PARAMS: &'static [ParamDescriptor] = T::PARAMS;

    fn check_params(params: &[f64]) -> Result<(), String> {
        T::check_params(params)
    }

    #[inline]
    fn eval(p: &[f64], order: Order, _ztol: f64, a: Coeffs<'_>, f: CoeffsMut<'_>) -> usize {
        let [f0, f1, f2] = f;
        match order {
            Order::Zero => {
                for (y, &x) in f0.iter_mut().zip(a[0]) {
                    *y = T::value(x, p);
                }
            }
            Order::One => {
                for ((y0, y1), (&x, &a1)) in
                    f0.iter_mut().zip(f1.iter_mut()).zip(a[0].iter().zip(a[1]))
                {
                    let (v, d) = T::d1(x, p);
                    *y0 = v;
                    *y1 = d * a1;
                }
            }
            Order::Two => {
                let outs = f0.iter_mut().zip(f1.iter_mut()).zip(f2.iter_mut());
                let ins = a[0].iter().zip(a[1]).zip(a[2]);
                for (((y0, y1), y2), ((&x, &a1), &a2)) in outs.zip(ins) {
                    let (v, d, dd) = T::d2(x, p);
                    *y0 = v;
                    *y1 = d * a1;
                    *y2 = dd * a1 * a1 + d * a2;
                }
            }
        }
        0
    }
}

/// Most breakpoints a [`Piecewise`] function may have.
pub const MAX_BREAKPOINTS: usize = 8;

/// Breakpoints of a piecewise function for given parameters (ascending, at most
/// [`MAX_BREAKPOINTS`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Breakpoints {
    len: usize,
    values: [f64; MAX_BREAKPOINTS],
}

impl Breakpoints {
    /// Copy the first [`MAX_BREAKPOINTS`] values of `bps` (which must be ascending).
    pub fn new(bps: &[f64]) -> Breakpoints {
        let len = bps.len().min(MAX_BREAKPOINTS);
        let mut values = [0.0; MAX_BREAKPOINTS];
        values[..len].copy_from_slice(&bps[..len]);
        Breakpoints { len, values }
    }

    pub fn as_slice(&self) -> &[f64] {
        &self.values[..self.len]
    }
}

/// The piece of a piecewise function that applies along the ray a(t) = a0 + a1 t + a2 t²/2 for
/// small t > 0, and whether a0 sits on a breakpoint (within `ztol`).
///
/// Piece `i` lies between breakpoints `i − 1` and `i`. At a tie (|a0 − bp| ≤ ztol) the side is the
/// lexicographic sign of (a1, a2); an all-zero ray on a breakpoint takes the right piece (any
/// piece gives the same answer there for a continuous function).
#[inline]
pub fn locate(bps: &[f64], a0: f64, a1: f64, a2: f64, ztol: f64) -> (usize, bool) {
    let mut piece = 0;
    let mut kink = false;
    for (k, &b) in bps.iter().enumerate() {
        let d = a0 - b;
        let right = if d.abs() <= ztol {
            kink = true;
            a1 > 0.0 || (a1 == 0.0 && a2 >= 0.0)
        } else {
            d > 0.0
        };
        if !right {
            break;
        }
        piece = k + 1;
    }
    (piece, kink)
}

/// A continuous piecewise-smooth function: smooth pieces (generic over the number type) between
/// ascending breakpoints. The SDK picks the piece by the lexicographic sign of (a0 − bp, a1, a2)
/// and counts active kinks; C¹ joins such as ELU at 0 come out right because each piece supplies
/// its own φ″.
pub trait Piecewise {
    const NAME: &'static str;
    const KIND: Kind = Kind::Activation;
    const SMOOTHNESS: Smoothness = Smoothness::Piecewise;
    const PARAMS: &'static [ParamDescriptor] = &[];
    /// Breakpoints at the default parameters.
    const BREAKPOINTS: &'static [f64];
    const HAS_PROX: bool = false;

    /// Piece `i` (0 ..= number of breakpoints) at `x`.
    fn piece<D: Num>(i: usize, x: D, params: &[f64]) -> D;

    fn check_params(_params: &[f64]) -> Result<(), String> {
        Ok(())
    }

    /// Breakpoints for the given parameters; by default [`Piecewise::BREAKPOINTS`].
    #[inline]
    fn breakpoints(_params: &[f64]) -> Breakpoints {
        Breakpoints::new(Self::BREAKPOINTS)
    }

    #[inline]
    fn piece_value(i: usize, x: f64, params: &[f64]) -> f64 {
        Self::piece(i, x, params)
    }

    #[inline]
    fn piece_d1(i: usize, x: f64, params: &[f64]) -> (f64, f64) {
        let y = Self::piece(i, Dual64::new(x, 1.0), params);
        (y.re, y.eps)
    }

    #[inline]
    fn piece_d2(i: usize, x: f64, params: &[f64]) -> (f64, f64, f64) {
        let y = Self::piece(i, Dual2_64::new(x, 1.0, 0.0), params);
        (y.re, y.v1, y.v2)
    }

    fn prox(_params: &[f64], _step: f64, _v: &[f64], _out: &mut [f64]) -> Result<(), String> {
        Err(format!("{} has no proximal map", Self::NAME))
    }
}

/// Adapter: a [`Piecewise`] function as an [`Elementwise`] one.
pub struct PiecewiseFn<T>(PhantomData<T>);

impl<T: Piecewise> Elementwise for PiecewiseFn<T> {
    const NAME: &'static str = T::NAME;
    const KIND: Kind = T::KIND;
    const SMOOTHNESS: Smoothness = T::SMOOTHNESS;
    const PARAMS: &'static [ParamDescriptor] = T::PARAMS;
    const BREAKPOINTS: &'static [f64] = T::BREAKPOINTS;
    const HAS_PROX: bool = T::HAS_PROX;

    fn check_params(params: &[f64]) -> Result<(), String> {
        T::check_params(params)
    }

    fn eval(p: &[f64], order: Order, ztol: f64, a: Coeffs<'_>, f: CoeffsMut<'_>) -> usize {
        let bps = T::breakpoints(p);
        let bps = bps.as_slice();
        let [f0, f1, f2] = f;
        let mut kinks = 0;
        match order {
            Order::Zero => {
                for (y, &x) in f0.iter_mut().zip(a[0]) {
                    let (piece, kink) = locate(bps, x, 0.0, 0.0, ztol);
                    kinks += kink as usize;
                    *y = T::piece_value(piece, x, p);
                }
            }
            Order::One => {
                for i in 0..a[0].len() {
                    // The second coefficient only breaks ties where a1 = 0, and then f1 = 0 on
                    // either side, so order one needs no a2.
                    let (piece, kink) = locate(bps, a[0][i], a[1][i], 0.0, ztol);
                    kinks += kink as usize;
                    let (v, d) = T::piece_d1(piece, a[0][i], p);
                    f0[i] = v;
                    f1[i] = d * a[1][i];
                }
            }
            Order::Two => {
                for i in 0..a[0].len() {
                    let (a0, a1, a2) = (a[0][i], a[1][i], a[2][i]);
                    let (piece, kink) = locate(bps, a0, a1, a2, ztol);
                    kinks += kink as usize;
                    let (v, d, dd) = T::piece_d2(piece, a0, p);
                    f0[i] = v;
                    f1[i] = d * a1;
                    f2[i] = dd * a1 * a1 + d * a2;
                }
            }
        }
        kinks
    }

    fn prox(params: &[f64], step: f64, v: &[f64], out: &mut [f64]) -> Result<(), String> {
        T::prox(params, step, v, out)
    }
}
