//! Initial points: seeded weight schemes (Gaussian, He, Glorot, LeCun) with zero biases.
//!
//! A parameter whose shape has one column (a vector `vec(n)` or a scalar `real`) is a bias and
//! starts at zero; every other parameter (a matrix `mat(r, c)`, used as `P · x` with fan-in c and
//! fan-out r) is a weight. Weights are drawn from [`crate::rng::Rng`] (SplitMix64 with
//! Box–Muller normals, the same stream on every machine) seeded with the run's seed, parameter
//! by parameter in declaration order, each matrix row by row:
//!
//! | scheme | weight distribution |
//! |---|---|
//! | `gaussian` | N(0, std²) |
//! | `he` | N(0, 2 / fan_in) |
//! | `glorot` | U(−a, a), a = √(6 / (fan_in + fan_out)) (Glorot and Bengio's uniform) |
//! | `lecun` | N(0, 1 / fan_in) |
//! | `zeros` | 0 |

use crate::graph::Shape;
use crate::rng::Rng;

/// A weight initialisation scheme (biases are always zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheme {
    Gaussian { std: f64 },
    He,
    Glorot,
    Lecun,
    Zeros,
}

/// θ for parameters of these shapes (column-major per parameter, parameters in declaration
/// order).
pub fn initial_point(shapes: &[Shape], scheme: Scheme, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut theta = Vec::with_capacity(shapes.iter().map(|s| s.len()).sum());
    for shape in shapes {
        let (rows, cols) = (shape.rows, shape.cols);
        let mut block = vec![0.0; rows * cols];
        if cols > 1 {
            let (fan_in, fan_out) = (cols as f64, rows as f64);
            for i in 0..rows {
                for j in 0..cols {
                    block[j * rows + i] = draw(&mut rng, scheme, fan_in, fan_out);
                }
            }
        }
        theta.extend_from_slice(&block);
    }
    theta
}

fn draw(rng: &mut Rng, scheme: Scheme, fan_in: f64, fan_out: f64) -> f64 {
    match scheme {
        Scheme::Gaussian { std } => std * rng.normal(),
        Scheme::He => (2.0 / fan_in).sqrt() * rng.normal(),
        Scheme::Glorot => {
            let a = (6.0 / (fan_in + fan_out)).sqrt();
            rng.uniform_in(-a, a)
        }
        Scheme::Lecun => (1.0 / fan_in).sqrt() * rng.normal(),
        Scheme::Zeros => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `param W: mat(40, 50)`, `param b: vec(40)`, `param s: real`.
    fn model() -> Vec<Shape> {
        vec![
            Shape::matrix(40, 50),
            Shape::matrix(40, 1),
            Shape::matrix(1, 1),
        ]
    }

    #[test]
    fn biases_are_zero_and_weights_follow_the_scheme() {
        let m = model();
        let w = 40 * 50;
        for (scheme, var) in [
            (Scheme::Gaussian { std: 0.1 }, 0.01),
            (Scheme::He, 2.0 / 50.0),
            (Scheme::Glorot, 2.0 / 90.0),
            (Scheme::Lecun, 1.0 / 50.0),
        ] {
            let t = initial_point(&m, scheme, 7);
            assert_eq!(t.len(), w + 41);
            assert!(t[w..].iter().all(|v| *v == 0.0), "{scheme:?}");
            let v = t[..w].iter().map(|x| x * x).sum::<f64>() / w as f64;
            assert!(
                (v / var - 1.0).abs() < 0.1,
                "{scheme:?}: variance {v}, expected {var}"
            );
        }
        let g = initial_point(&m, Scheme::Glorot, 7);
        let a = (6.0f64 / 90.0).sqrt();
        assert!(g[..w].iter().all(|v| v.abs() < a));
    }

    #[test]
    fn same_seed_same_start_and_the_stream_is_pinned() {
        let m = model();
        let a = initial_point(&m, Scheme::Gaussian { std: 0.1 }, 123456);
        assert_eq!(a, initial_point(&m, Scheme::Gaussian { std: 0.1 }, 123456));
        assert_ne!(a, initial_point(&m, Scheme::Gaussian { std: 0.1 }, 123457));
        // W[0][0] is the first draw, W[0][1] (column-major index 40) the second.
        let mut r = Rng::new(123456);
        let (w00, w01) = (0.1 * r.normal(), 0.1 * r.normal());
        assert_eq!((a[0], a[40]), (w00, w01));
    }
}
