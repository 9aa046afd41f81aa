//! Batches of sequences: a batched model equals the average of its sequences evaluated one at a
//! time, and its derivatives and gradients are right (the batch is the columns of one matrix,
//! and reverse mode batches weight gradients across time steps and sequences).

use crate::common;

use common::eval::*;
use mcopt::graph::SeqData;
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;

const MODEL: &str = "
data x: batch(seq(vec(3)))
data y: batch(seq(vec(2)))
param A: mat(2, 4)
param W: mat(4, 4)
param V: mat(4, 3)
param b: vec(4)
param c: vec(2)
layer h[0] = zeros(4)
layer u[t] = W * h[t-1] + V * x[t] + b
layer h[t] = relu(u[t])
layer v[t] = A * tanh(h[t]) + c
minimize mean(t, sqnorm(v[t] - y[t])) + 0.1 * sqnorm(W) + 0.01 * norm1(A)
";

const STEPS: usize = 6;
const SEQS: usize = 3;

/// Random data: per step a width × SEQS column-major matrix.
fn data(rng: &mut Rng, width: usize) -> Vec<f64> {
    (0..STEPS * SEQS * width)
        .map(|_| rng.uniform_in(-1.0, 1.0))
        .collect()
}

/// The model with inputs `xs` and targets `ys` of `seqs` sequences bound.
fn bound(m: &mcopt::check::Model, xs: Vec<f64>, ys: Vec<f64>, seqs: usize) -> mcopt::graph::Graph {
    let seq = |values| SeqData {
        steps: STEPS,
        sequences: seqs,
        values,
        warmup: 0,
    };
    lower(m, vec![seq(xs), seq(ys)])
}

/// Sequence `s` alone, from batched values.
fn one(values: &[f64], width: usize, s: usize) -> Vec<f64> {
    (0..STEPS)
        .flat_map(|t| values[(t * SEQS + s) * width..(t * SEQS + s + 1) * width].to_vec())
        .collect()
}

#[test]
fn a_batch_is_the_average_of_its_sequences() {
    let r = Registry::with_standard();
    let m = model(MODEL, &r);
    let mut rng = Rng::new(3);
    let (xs, ys) = (data(&mut rng, 3), data(&mut rng, 2));
    let batch = bound(&m, xs.clone(), ys.clone(), SEQS);
    let theta: Vec<f64> = (0..batch.n_params()).map(|_| 0.5 * rng.normal()).collect();
    let d: Vec<f64> = (0..batch.n_params()).map(|_| rng.normal()).collect();
    let tb = taylor(&batch, &r, &theta, &d, Order::Two);
    let gb = gradient(&batch, &r, &theta);
    // Regularization is counted once; the loss is averaged over sequences.
    let (mut v, mut d1, mut d2, mut grad) = (0.0, 0.0, 0.0, vec![0.0; theta.len()]);
    for s in 0..SEQS {
        let single = bound(&m, one(&xs, 3, s), one(&ys, 2, s), 1);
        let t = taylor(&single, &r, &theta, &d, Order::Two);
        v += t.value / SEQS as f64;
        d1 += t.d1.unwrap_or(f64::NAN) / SEQS as f64;
        d2 += t.d2.unwrap_or(f64::NAN) / SEQS as f64;
        for (g, x) in grad.iter_mut().zip(gradient(&single, &r, &theta)) {
            *g += x / SEQS as f64;
        }
    }
    assert!(close(tb.value, v, 1e-13), "{} vs {v}", tb.value);
    assert!(close(tb.d1.unwrap_or(f64::NAN), d1, 1e-12));
    assert!(close(tb.d2.unwrap_or(f64::NAN), d2, 1e-12));
    for (a, b) in gb.iter().zip(&grad) {
        assert!(close(*a, *b, 1e-12), "gradient {a} vs {b}");
    }
}

#[test]
fn batched_derivatives_match_differences_and_the_gradient() {
    let r = Registry::with_standard();
    let m = model(MODEL, &r);
    let mut rng = Rng::new(11);
    let g = bound(&m, data(&mut rng, 3), data(&mut rng, 2), SEQS);
    for _ in 0..10 {
        let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.5 * rng.normal()).collect();
        let d: Vec<f64> = (0..g.n_params()).map(|_| rng.normal()).collect();
        check_against_differences(&g, &r, &theta, &d).unwrap_or_else(|e| panic!("{e}"));
        let t = taylor(&g, &r, &theta, &d, Order::One);
        if t.active_kinks == 0 {
            let grad = gradient(&g, &r, &theta);
            let dot: f64 = grad.iter().zip(&d).map(|(a, b)| a * b).sum();
            assert!(
                close(dot, t.d1.unwrap_or(f64::NAN), 1e-10),
                "∇f·d = {dot}, f′ = {:?}",
                t.d1
            );
        }
    }
}

#[test]
fn repeated_gradients_reuse_buffers_without_stale_values() {
    let r = Registry::with_standard();
    let m = model(MODEL, &r);
    let mut rng = Rng::new(5);
    let g = bound(&m, data(&mut rng, 3), data(&mut rng, 2), SEQS);
    let mut ev = mcopt::eval::Evaluator::new(&g, &r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
    let opts = mcopt::eval::EvalOptions::default();
    let points: Vec<Vec<f64>> = (0..3)
        .map(|_| (0..g.n_params()).map(|_| 0.5 * rng.normal()).collect())
        .collect();
    let mut first = Vec::new();
    for p in &points {
        let mut grad = vec![0.0; p.len()];
        ev.gradient(p, &mut grad, opts)
            .unwrap_or_else(|e| panic!("{e}"));
        first.push(grad);
    }
    // The same points again, in another order, through the same evaluator; and through a fresh one.
    for (i, p) in points.iter().enumerate().rev() {
        let mut grad = vec![0.0; p.len()];
        ev.gradient(p, &mut grad, opts)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(grad, first[i]);
        assert_eq!(gradient(&g, &r, p), first[i]);
    }
}
