//! Adam (Kingma and Ba), with bias correction: m ← b1 m + (1 − b1) g, v ← b2 v + (1 − b2) g²,
//! x ← x − lr m̂ / (√v̂ + eps) with m̂ = m / (1 − b1ᵏ), v̂ = v / (1 − b2ᵏ).

use mcopt_plugin_sdk::abi::{OptionDescriptor, Str, OPEN_HI};
use mcopt_plugin_sdk::{Blob, BlobReader, Metrics, Problem, Solver, Start, Step};

/// Adam; see the module docs. One step is one epoch (one update per minibatch).
pub struct Adam {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    g: Vec<f64>,
    /// Updates taken so far (k in the bias correction).
    k: u64,
    /// b1ᵏ and b2ᵏ of the bias correction.
    p1: Powers,
    p2: Powers,
}

/// bᵏ to the bit as `f64::powi` gives it, from the squares b^(2^i) computed once: `powi`
/// (compiler-builtins' `__powidf2`) squares b at every call and multiplies, from 1, the
/// squares of k's set bits from the lowest; this multiplies the same numbers in the same order.
#[derive(Clone, Copy)]
struct Powers {
    squares: [f64; 31],
}

impl Powers {
    fn new(b: f64) -> Powers {
        let mut squares = [0.0; 31];
        let mut a = b;
        for s in squares.iter_mut() {
            *s = a;
            a *= a;
        }
        Powers { squares }
    }

    /// bᵏ for k ≥ 0.
    fn pow(&self, k: i32) -> f64 {
        let mut r = 1.0;
        let mut bits = k as u32;
        for s in &self.squares {
            if bits == 0 {
                break;
            }
            if bits & 1 != 0 {
                r *= s;
            }
            bits >>= 1;
        }
        r
    }
}

impl Solver for Adam {
    const NAME: &'static str = "adam";
    const DESCRIPTION: &'static str = "Adam with bias correction";
    const OPTIONS: &'static [OptionDescriptor] = &[
        OptionDescriptor::real("lr", 0.001, "step size").positive(),
        OptionDescriptor::real("b1", 0.9, "first-moment decay in [0, 1)").range(0.0, 1.0, OPEN_HI),
        OptionDescriptor::real("b2", 0.999, "second-moment decay in [0, 1)")
            .range(0.0, 1.0, OPEN_HI),
        OptionDescriptor::real("eps", 1e-8, "denominator offset").positive(),
    ];
    const METRICS: &'static [Str] = &[Str::new("grad_norm")];

    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String> {
        let o = start.options;
        let n = problem.dim();
        let (b1, b2) = (o.number("b1")?, o.number("b2")?);
        Ok(Adam {
            lr: o.number("lr")?,
            b1,
            b2,
            eps: o.number("eps")?,
            m: vec![0.0; n],
            v: vec![0.0; n],
            g: vec![0.0; n],
            k: 0,
            p1: Powers::new(b1),
            p2: Powers::new(b2),
        })
    }

    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut Metrics<'_>,
    ) -> Result<Step, String> {
        let mut g = std::mem::take(&mut self.g);
        let step = problem.epoch(x, &mut g, |_, x, batch| {
            self.update(x, batch.grad);
            Ok(None)
        });
        self.g = g;
        let step = step?;
        if step.signal != mcopt_plugin_sdk::Signal::Diverged {
            metrics.set("grad_norm", step.stationarity)?;
        }
        Ok(step)
    }

    fn save(&self, out: &mut Vec<u8>) {
        Blob::new(out).u64(self.k).f64s(&self.m).f64s(&self.v);
    }

    fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String> {
        let mut s = Self::init(problem, start)?;
        let n = problem.dim();
        let mut r = BlobReader::new(bytes);
        s.k = r.u64()?;
        s.m = r.f64s(n)?;
        s.v = r.f64s(n)?;
        r.finish()?;
        Ok(s)
    }
}

impl Adam {
    /// One Adam update of `x` with the gradient `g`.
    fn update(&mut self, x: &mut [f64], g: &[f64]) {
        self.k += 1;
        let k = self.k.min(i32::MAX as u64) as i32;
        let c1 = 1.0 / (1.0 - self.p1.pow(k));
        let c2 = 1.0 / (1.0 - self.p2.pow(k));
        let (b1, b2, lr, eps) = (self.b1, self.b2, self.lr, self.eps);
        for (((xi, g), m), v) in x.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *xi -= lr * (*m * c1) / ((*v * c2).sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Powers;

    #[test]
    fn powers_are_powi_to_the_bit() {
        let bases = [0.9, 0.999, 0.5, 0.0, 0.99999, 0.123456789, 1.0 - 1e-12, 0.3];
        let mut ks: Vec<i32> = (0..70_000).collect();
        ks.extend((0..31).flat_map(|s| [(1i32 << s) - 1, 1 << s, (1 << s) | 1]));
        ks.push(i32::MAX);
        for b in bases {
            let p = Powers::new(b);
            for &k in &ks {
                assert_eq!(p.pow(k).to_bits(), b.powi(k).to_bits(), "{b}^{k}");
            }
        }
    }
}
