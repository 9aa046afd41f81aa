//! The standard penalties huber, mcp, scad and capped_l1: even functions that are piecewise
//! quadratic in |x|. One table of pieces per penalty gives the value, the ray-Taylor
//! coefficients (through the SDK's lexicographic piece choice) and the exact proximal map.

use crate::activations::{check_step, finite};
use mcopt_plugin_sdk::{Breakpoints, Kind, Num, ParamDescriptor, Piecewise, Smoothness};
use std::marker::PhantomData;

/// p(y) = c0 + c1 y + c2 y²/2 for y = |x| in [lo, next piece's lo).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quad {
    pub lo: f64,
    pub c0: f64,
    pub c1: f64,
    pub c2: f64,
}

impl Quad {
    const fn new(lo: f64, c0: f64, c1: f64, c2: f64) -> Quad {
        Quad { lo, c0, c1, c2 }
    }

    #[inline]
    fn at(&self, y: f64) -> f64 {
        self.c0 + self.c1 * y + 0.5 * self.c2 * y * y
    }
}

/// Up to three pieces on y ≥ 0, the first starting at 0, continuous at the joins.
#[derive(Clone, Copy, Debug)]
pub struct Quads {
    len: usize,
    q: [Quad; 3],
}

impl Quads {
    fn new(pieces: &[Quad]) -> Quads {
        let mut q = [Quad::new(0.0, 0.0, 0.0, 0.0); 3];
        q[..pieces.len()].copy_from_slice(pieces);
        Quads {
            len: pieces.len(),
            q,
        }
    }

    fn pieces(&self) -> &[Quad] {
        &self.q[..self.len]
    }

    /// Whether 0 is a kink (the first piece has a slope at 0).
    fn kink_at_zero(&self) -> bool {
        self.q[0].c1 != 0.0
    }

    /// The piece of the real line with index `i` (as the SDK numbers them between the
    /// breakpoints from [`Quads::breakpoints`]) as (piece on |x|, sign of x there).
    #[inline]
    fn piece_of(&self, i: usize) -> (Quad, f64) {
        let m = self.len - 1;
        let has0 = self.kink_at_zero() as usize;
        if i < m {
            (self.q[m - i], -1.0)
        } else if i == m {
            (self.q[0], if has0 == 1 { -1.0 } else { 1.0 })
        } else {
            (self.q[(i - m - has0).min(m)], 1.0)
        }
    }

    /// Breakpoints on the real line, ascending: −lo_m … −lo_1, (0), lo_1 … lo_m.
    fn breakpoints(&self) -> Breakpoints {
        let mut v = [0.0; 5];
        let mut n = 0;
        for q in self.pieces()[1..].iter().rev() {
            v[n] = -q.lo;
            n += 1;
        }
        if self.kink_at_zero() {
            v[n] = 0.0;
            n += 1;
        }
        for q in &self.pieces()[1..] {
            v[n] = q.lo;
            n += 1;
        }
        Breakpoints::new(&v[..n])
    }

    /// argmin_z p(z) + (z − v)²/(2 step): the best of every piece's clamped stationary point and
    /// every piece end, taken on |v| and signed back (p is even and nondecreasing in |z|).
    fn prox(&self, step: f64, v: f64) -> f64 {
        if step == 0.0 || v.is_nan() {
            return v;
        }
        let w = v.abs();
        let objective = |q: &Quad, z: f64| q.at(z) + (z - w) * (z - w) / (2.0 * step);
        let mut best = (objective(&self.q[0], 0.0), 0.0);
        let pieces = self.pieces();
        for (k, q) in pieces.iter().enumerate() {
            let hi = pieces.get(k + 1).map_or(f64::INFINITY, |next| next.lo);
            let mut consider = |z: f64| {
                let o = objective(q, z);
                if o < best.0 {
                    best = (o, z);
                }
            };
            consider(q.lo);
            if hi.is_finite() {
                consider(hi);
            }
            let curvature = 1.0 + step * q.c2;
            if curvature > 0.0 {
                consider(((w - step * q.c1) / curvature).clamp(q.lo, hi));
            }
        }
        best.1.copysign(v)
    }
}

/// A penalty given by its pieces on |x|.
pub trait EvenQuadratic {
    const NAME: &'static str;
    const SMOOTHNESS: Smoothness;
    const PARAMS: &'static [ParamDescriptor];
    /// Breakpoints at the default parameters.
    const BREAKPOINTS: &'static [f64];
    fn check_params(p: &[f64]) -> Result<(), String>;
    fn quads(p: &[f64]) -> Quads;
}

/// Adapter: an [`EvenQuadratic`] penalty as a [`Piecewise`] function with a proximal map.
pub struct EvenQuadraticFn<T>(PhantomData<T>);

impl<T: EvenQuadratic> Piecewise for EvenQuadraticFn<T> {
    const NAME: &'static str = T::NAME;
    const KIND: Kind = Kind::Penalty;
    const SMOOTHNESS: Smoothness = T::SMOOTHNESS;
    const PARAMS: &'static [ParamDescriptor] = T::PARAMS;
    const BREAKPOINTS: &'static [f64] = T::BREAKPOINTS;
    const HAS_PROX: bool = true;

    fn check_params(p: &[f64]) -> Result<(), String> {
        T::check_params(p)
    }

    fn breakpoints(p: &[f64]) -> Breakpoints {
        T::quads(p).breakpoints()
    }

    fn piece<D: Num>(i: usize, x: D, p: &[f64]) -> D {
        let (q, s) = T::quads(p).piece_of(i);
        let y = x * s;
        y * y * (0.5 * q.c2) + y * q.c1 + q.c0
    }

    #[inline]
    fn piece_value(i: usize, x: f64, p: &[f64]) -> f64 {
        let (q, s) = T::quads(p).piece_of(i);
        q.at(s * x)
    }

    #[inline]
    fn piece_d1(i: usize, x: f64, p: &[f64]) -> (f64, f64) {
        let (q, s) = T::quads(p).piece_of(i);
        (q.at(s * x), s * q.c1 + q.c2 * x)
    }

    #[inline]
    fn piece_d2(i: usize, x: f64, p: &[f64]) -> (f64, f64, f64) {
        let (q, s) = T::quads(p).piece_of(i);
        (q.at(s * x), s * q.c1 + q.c2 * x, q.c2)
    }

    fn prox(p: &[f64], step: f64, v: &[f64], out: &mut [f64]) -> Result<(), String> {
        check_step(step)?;
        let quads = T::quads(p);
        for (z, &x) in out.iter_mut().zip(v) {
            *z = quads.prox(step, x);
        }
        Ok(())
    }
}

fn positive(name: &str, v: f64) -> Result<(), String> {
    finite(name, v)?;
    if v > 0.0 {
        Ok(())
    } else {
        Err(format!("parameter {name} must be positive, found {v}"))
    }
}

/// huber(x, delta = 1) = x²/2 for |x| ≤ delta, delta·(|x| − delta/2) beyond (C¹).
pub struct Huber;

impl EvenQuadratic for Huber {
    const NAME: &'static str = "huber";
    const SMOOTHNESS: Smoothness = Smoothness::C1;
    const PARAMS: &'static [ParamDescriptor] = &[ParamDescriptor::with_default("delta", 1.0)];
    const BREAKPOINTS: &'static [f64] = &[-1.0, 1.0];

    fn check_params(p: &[f64]) -> Result<(), String> {
        positive("delta", p[0])
    }

    fn quads(p: &[f64]) -> Quads {
        let d = p[0];
        Quads::new(&[
            Quad::new(0.0, 0.0, 0.0, 1.0),
            Quad::new(d, -0.5 * d * d, d, 0.0),
        ])
    }
}

/// mcp(x, lambda = 1, gamma = 3) = lambda|x| − x²/(2 gamma) for |x| ≤ gamma·lambda,
/// gamma·lambda²/2 beyond.
pub struct Mcp;

impl EvenQuadratic for Mcp {
    const NAME: &'static str = "mcp";
    const SMOOTHNESS: Smoothness = Smoothness::Piecewise;
    const PARAMS: &'static [ParamDescriptor] = &[
        ParamDescriptor::with_default("lambda", 1.0),
        ParamDescriptor::with_default("gamma", 3.0),
    ];
    const BREAKPOINTS: &'static [f64] = &[-3.0, 0.0, 3.0];

    fn check_params(p: &[f64]) -> Result<(), String> {
        positive("lambda", p[0])?;
        positive("gamma", p[1])
    }

    fn quads(p: &[f64]) -> Quads {
        let (l, g) = (p[0], p[1]);
        Quads::new(&[
            Quad::new(0.0, 0.0, l, -1.0 / g),
            Quad::new(g * l, 0.5 * g * l * l, 0.0, 0.0),
        ])
    }
}

/// scad(x, lambda = 1, a = 3.7): lambda|x| for |x| ≤ lambda,
/// (2 a lambda |x| − x² − lambda²) / (2(a − 1)) up to a·lambda, lambda²(a + 1)/2 beyond.
pub struct Scad;

impl EvenQuadratic for Scad {
    const NAME: &'static str = "scad";
    const SMOOTHNESS: Smoothness = Smoothness::Piecewise;
    const PARAMS: &'static [ParamDescriptor] = &[
        ParamDescriptor::with_default("lambda", 1.0),
        ParamDescriptor::with_default("a", 3.7),
    ];
    const BREAKPOINTS: &'static [f64] = &[-3.7, -1.0, 0.0, 1.0, 3.7];

    fn check_params(p: &[f64]) -> Result<(), String> {
        positive("lambda", p[0])?;
        finite("a", p[1])?;
        if p[1] > 2.0 {
            Ok(())
        } else {
            Err(format!(
                "parameter a must be greater than 2, found {}",
                p[1]
            ))
        }
    }

    fn quads(p: &[f64]) -> Quads {
        let (l, a) = (p[0], p[1]);
        let r = 1.0 / (a - 1.0);
        Quads::new(&[
            Quad::new(0.0, 0.0, l, 0.0),
            Quad::new(l, -0.5 * l * l * r, a * l * r, -r),
            Quad::new(a * l, 0.5 * l * l * (a + 1.0), 0.0, 0.0),
        ])
    }
}

/// capped_l1(x, lambda = 1, cap = 1) = lambda·min(|x|, cap).
pub struct CappedL1;

impl EvenQuadratic for CappedL1 {
    const NAME: &'static str = "capped_l1";
    const SMOOTHNESS: Smoothness = Smoothness::Piecewise;
    const PARAMS: &'static [ParamDescriptor] = &[
        ParamDescriptor::with_default("lambda", 1.0),
        ParamDescriptor::with_default("cap", 1.0),
    ];
    const BREAKPOINTS: &'static [f64] = &[-1.0, 0.0, 1.0];

    fn check_params(p: &[f64]) -> Result<(), String> {
        positive("lambda", p[0])?;
        positive("cap", p[1])
    }

    fn quads(p: &[f64]) -> Quads {
        let (l, c) = (p[0], p[1]);
        Quads::new(&[Quad::new(0.0, 0.0, l, 0.0), Quad::new(c, l * c, 0.0, 0.0)])
    }
}
