//! Data as evaluator input: an evaluator of a graph lowered with data A, bound to data B of the
//! same shape (`Evaluator::bind`), gives bit for bit what a graph lowered with B gives — value,
//! loss, gradient and second-order directional derivative — on a model with several data
//! declarations, constants computed from the data and a test split; a bind of the wrong shape
//! is an error that changes nothing.

use mcopt::diag::SourceFile;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::{lower, Graph, LowerOptions, SeqData};
use mcopt::registry::{Order, Registry};

/// Two data declarations, a constant computed from the data (`0.5 .* x[t]`), a data-only term
/// (`mean(t, sqnorm(y[t]))`) and kinks (relu, norm1).
const MODEL: &str = "\
data x: batch(seq(vec(2)))
data y: batch(seq(vec(1)))
param W: mat(3, 3)
param V: mat(3, 2)
param b: vec(3)
param A: mat(1, 3)
layer h[0] = zeros(3)
layer h[t] = relu(W * h[t-1] + V * (0.5 .* x[t]) + b)
layer v[t] = A * h[t]
minimize mean(t, sqnorm(v[t] - y[t]) + norm1(v[t] - y[t])) + 0.1 * mean(t, sqnorm(y[t])) + 0.01 * sqnorm(W)";

const N_PARAMS: usize = 9 + 6 + 3 + 3;

/// `steps` steps of `sequences` sequences of width `width`, the values seeded by `seed`.
fn seq(steps: usize, sequences: usize, width: usize, seed: u64) -> SeqData {
    let values = (0..steps * sequences * width)
        .map(|i| ((i as f64 + 1.0) * (0.37 + seed as f64 * 0.113)).sin())
        .collect();
    SeqData {
        steps,
        sequences,
        values,
        warmup: 0,
    }
}

fn data(steps: usize, sequences: usize, seed: u64) -> Vec<SeqData> {
    vec![
        seq(steps, sequences, 2, seed),
        seq(steps, sequences, 1, seed + 100),
    ]
}

fn with_warmup(mut d: Vec<SeqData>, warmup: usize) -> Vec<SeqData> {
    d.iter_mut().for_each(|s| s.warmup = warmup);
    d
}

fn point(seed: u64) -> Vec<f64> {
    (0..N_PARAMS)
        .map(|i| 0.6 * ((i as f64 + 0.5) * (1.3 + seed as f64)).cos())
        .collect()
}

/// Every figure an evaluator gives at `x` along `d`, as bits: f, the loss, ∇f, f′ and f″.
fn figures(ev: &mut Evaluator, x: &[f64], d: &[f64]) -> Vec<u64> {
    let opts = EvalOptions::default();
    let mut g = vec![0.0; x.len()];
    let f = ev.gradient(x, &mut g, opts).unwrap();
    let mut out = vec![f.to_bits(), ev.loss().to_bits()];
    out.extend(g.iter().map(|v| v.to_bits()));
    let t = ev.directional(x, d, Order::Two, opts).unwrap();
    out.extend([t.value, t.d1.unwrap(), t.d2.unwrap()].map(f64::to_bits));
    out.push(ev.value(x, opts).unwrap().to_bits());
    out
}

fn model() -> (Registry, mcopt::check::Model) {
    let r = Registry::with_standard();
    let m = mcopt::session::compile(&SourceFile::new("m.mco", MODEL), &r).unwrap();
    (r, m)
}

fn low(model: &mcopt::check::Model, data: Vec<SeqData>) -> Graph {
    lower(model, &LowerOptions { data }).unwrap()
}

#[test]
fn binding_b_after_a_gives_what_lowering_b_gives() {
    let (r, m) = model();
    // Several sequences (per-sequence columns) and one sequence (shared values), and a test
    // split whose first steps are a warm-up.
    for (steps, seqs, warmup) in [(5, 3, 0), (4, 1, 0), (7, 2, 3)] {
        let a = low(&m, with_warmup(data(steps, seqs, 1), warmup));
        let b = low(&m, with_warmup(data(steps, seqs, 2), warmup));
        let c = low(&m, with_warmup(data(steps, seqs, 3), warmup));
        assert_eq!(a.nodes, b.nodes, "the same graph but for the data");
        let mut ev = Evaluator::new(&a, &r, Order::Two).unwrap();
        let (x, d) = (point(1), point(2));
        let on_a = figures(&mut ev, &x, &d);
        let fresh_b = figures(&mut Evaluator::new(&b, &r, Order::Two).unwrap(), &x, &d);
        let fresh_c = figures(&mut Evaluator::new(&c, &r, Order::Two).unwrap(), &x, &d);
        assert_ne!(on_a, fresh_b, "the data matter");
        ev.bind(&with_warmup(data(steps, seqs, 2), warmup)).unwrap();
        assert_eq!(
            figures(&mut ev, &x, &d),
            fresh_b,
            "{steps}×{seqs}: A then B"
        );
        ev.bind(&with_warmup(data(steps, seqs, 3), warmup)).unwrap();
        assert_eq!(figures(&mut ev, &x, &d), fresh_c, "{steps}×{seqs}: then C");
        ev.bind(&with_warmup(data(steps, seqs, 1), warmup)).unwrap();
        assert_eq!(figures(&mut ev, &x, &d), on_a, "{steps}×{seqs}: back to A");
    }
}

#[test]
fn a_bind_of_the_wrong_shape_is_an_error_that_changes_nothing() {
    let (r, m) = model();
    let g = low(&m, data(5, 3, 1));
    let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap();
    let (x, d) = (point(1), point(2));
    let before = figures(&mut ev, &x, &d);
    let mut short = data(5, 3, 2);
    short[1].values.pop();
    let bad = [
        ("one declaration", vec![seq(5, 3, 2, 2)]),
        ("three declarations", {
            let mut d = data(5, 3, 2);
            d.push(seq(5, 3, 1, 9));
            d
        }),
        ("fewer steps", data(4, 3, 2)),
        ("more sequences", data(5, 4, 2)),
        ("a warm-up", with_warmup(data(5, 3, 2), 1)),
        ("a value missing", short),
        ("the widths swapped", {
            let mut d = data(5, 3, 2);
            d.swap(0, 1);
            d
        }),
    ];
    for (what, data) in bad {
        let e = ev.bind(&data).expect_err(what);
        assert_eq!(e.code, "mcopt::lower::data", "{what}");
        assert_eq!(figures(&mut ev, &x, &d), before, "{what}: nothing changed");
    }
}

/// A test split that reads its warm-up from the training evaluator (`Evaluator::share`) stops
/// sharing once either is bound to other data: its values are then those of plain passes.
#[test]
fn a_rebound_evaluator_neither_shares_nor_is_shared_from() {
    let (r, m) = model();
    let opts = EvalOptions::default();
    let train = |seed| data(4, 2, seed);
    let test = |seed| {
        // Steps 1..4 are the training steps (the warm-up), 5..6 the test steps.
        let mut d = with_warmup(data(6, 2, seed + 50), 4);
        for (t, tr) in d.iter_mut().zip(train(seed)) {
            t.values[..tr.values.len()].copy_from_slice(&tr.values);
        }
        d
    };
    let (tr_a, te_a) = (low(&m, train(1)), low(&m, test(1)));
    let te_b = low(&m, test(2));
    let x = point(3);
    let mut from = Evaluator::new(&tr_a, &r, Order::Zero).unwrap();
    let mut shared = Evaluator::new(&te_a, &r, Order::Zero).unwrap();
    assert!(shared.share(&tr_a) > 0, "the warm-up is shared");
    let plain_b = Evaluator::new(&te_b, &r, Order::Zero)
        .unwrap()
        .value(&x, opts)
        .unwrap();
    // The source rebound: the test evaluator (still on A) must not read B's training pass.
    from.bind(&train(2)).unwrap();
    from.value(&x, opts).unwrap();
    let plain_a = Evaluator::new(&te_a, &r, Order::Zero)
        .unwrap()
        .value(&x, opts)
        .unwrap();
    let f = shared.value_after(&from, &x, opts).unwrap();
    assert_eq!(
        f.to_bits(),
        plain_a.to_bits(),
        "a rebound source is not read"
    );
    // The test evaluator rebound to B: plain passes from now on, and no new sharing.
    shared.bind(&test(2)).unwrap();
    assert_eq!(shared.share(&tr_a), 0, "a rebound evaluator does not share");
    let f = shared.value_after(&from, &x, opts).unwrap();
    assert_eq!(f.to_bits(), plain_b.to_bits());
}
