//! Minibatch draws: sequence batches cover every sequence once per epoch, window batches draw
//! ⌊T / w⌋ windows per sequence, and the draws depend only on the seed and the epoch.

use mcopt::diag::SourceFile;
use mcopt::eval::EvalOptions;
use mcopt::graph::SeqData;
use mcopt::registry::Registry;
use mcopt::session::train::batch_graphs;
use mcopt::solve::{Batcher, Draws, Layout};

const MODEL: &str = "data x: seq(vec(1))\nparam a: real = 0.5\nlayer h[0] = zeros(1)\nlayer h[t] = a * h[t-1] + x[t]\nminimize mean(t, sqnorm(h[t]))";

fn data(steps: usize, sequences: usize) -> SeqData {
    let values = (0..steps)
        .flat_map(|t| {
            (0..sequences).map(move |s| (t + 1) as f64 * if s % 2 == 0 { 1.0 } else { -0.5 })
        })
        .collect();
    SeqData {
        steps,
        sequences,
        values,
        warmup: 0,
    }
}

#[test]
fn sequence_batches_partition_the_sequences_and_depend_on_seed_and_epoch() {
    let r = Registry::with_standard();
    let model = mcopt::session::compile(&SourceFile::new("m.mco", MODEL), &r).unwrap();
    let draws = Draws::new(vec![data(6, 7)], Layout::Sequences(3), 11).unwrap();
    let graphs = batch_graphs(&model, &draws).unwrap();
    assert_eq!(graphs.len(), 2, "two shapes: 3 sequences and 1");
    let mut b = Batcher::new(draws, &graphs, &r).unwrap();
    assert_eq!(b.n_batches(), 3, "7 sequences in batches of 3, 3, 1");
    let grads = |b: &mut Batcher| -> Vec<Vec<u64>> {
        (0..b.n_batches())
            .map(|k| {
                let mut g = vec![0.0];
                b.gradient(k, &[0.5], &mut g, EvalOptions::default())
                    .unwrap();
                vec![g[0].to_bits()]
            })
            .collect()
    };
    b.begin_epoch(4);
    let e4 = grads(&mut b);
    b.begin_epoch(5);
    let e5 = grads(&mut b);
    b.begin_epoch(4);
    assert_eq!(grads(&mut b), e4, "same seed and epoch, same draw");
    assert_ne!(e4, e5, "another epoch, another draw");
    let w = Draws::new(
        vec![data(10, 2)],
        Layout::Windows {
            window: 3,
            per_step: 2,
        },
        1,
    )
    .unwrap();
    assert_eq!(
        w.n_batches(),
        3,
        "⌊10 / 3⌋ = 3 windows per sequence, 6 in all, 2 per batch"
    );
    assert!(Draws::new(
        vec![data(2, 2)],
        Layout::Windows {
            window: 3,
            per_step: 1
        },
        1
    )
    .is_err());
}

#[test]
fn the_two_thread_split_gives_the_full_gradient_for_a_mean_objective() {
    use mcopt::graph::{lower, LowerOptions};
    use mcopt::registry::SolverProblem;
    use mcopt::session::train::splittable;
    use mcopt::solve::batch::select_sequences;
    use mcopt::solve::GraphProblem;
    let r = Registry::with_standard();
    let model = mcopt::session::compile(&SourceFile::new("m.mco", MODEL), &r).unwrap();
    assert!(splittable(&model));
    let summed = MODEL.replace("mean(t,", "sum(t,");
    let sum_model = mcopt::session::compile(&SourceFile::new("s.mco", summed), &r).unwrap();
    assert!(
        !splittable(&sum_model),
        "a sum over sequences is not a weighted mean of halves"
    );
    let d = data(6, 5);
    let full = lower(
        &model,
        &LowerOptions {
            data: vec![d.clone()],
        },
    )
    .unwrap();
    let halves: Vec<_> = [0..2, 2..5]
        .into_iter()
        .map(|rg| {
            let w = rg.len() as f64 / 5.0;
            (
                lower(
                    &model,
                    &LowerOptions {
                        data: vec![select_sequences(&d, rg)],
                    },
                )
                .unwrap(),
                w,
            )
        })
        .collect();
    let parts: Vec<_> = halves.iter().map(|(g, w)| (g, *w)).collect();
    let opts = EvalOptions::default();
    let mut one = GraphProblem::new(&r, &full, None, opts).unwrap();
    let mut two = GraphProblem::new(&r, &full, None, opts)
        .unwrap()
        .with_split(&parts)
        .unwrap();
    for a in [0.5, -0.3, 0.9] {
        let (mut g1, mut g2) = (vec![0.0], vec![0.0]);
        let f1 = one.gradient(&[a], &mut g1).unwrap();
        let f2 = two.gradient(&[a], &mut g2).unwrap();
        assert!((f1 - f2).abs() <= 1e-12 * f1.abs(), "{f1} vs {f2}");
        assert!(
            (g1[0] - g2[0]).abs() <= 1e-12 * g1[0].abs().max(1.0),
            "{g1:?} vs {g2:?}"
        );
    }
}

/// The host's measurements reuse work and change no value: the test split reads its warm-up
/// from the training pass (`Evaluator::share`, `value_after`), and once a step asks for ∇f at
/// the measured point, measurements compute the gradient and hand it to the next step. Every
/// value and gradient is compared bit for bit with separate plain evaluations.
#[test]
fn measurements_reuse_the_training_pass_and_the_gradient_bit_for_bit() {
    use mcopt::eval::Evaluator;
    use mcopt::graph::{lower, LowerOptions};
    use mcopt::registry::{Order, SolverProblem};
    use mcopt::solve::{GraphProblem, TrainProblem};
    let r = Registry::with_standard();
    let text = MODEL.replace(
        "a * h[t-1] + x[t]",
        "max(a * h[t-1] + 0.01 * x[t], 0.2 * h[t-1])",
    );
    let model = mcopt::session::compile(&SourceFile::new("m.mco", text), &r).unwrap();
    let low = |d: SeqData| lower(&model, &LowerOptions { data: vec![d] }).unwrap();
    // Test: steps 6..10 after a warm-up over the 6 training steps (the same values).
    let train = low(data(6, 3));
    let test = low(SeqData {
        warmup: 6,
        ..data(10, 3)
    });
    let opts = EvalOptions::default();
    let plain = |g, x: f64| {
        let mut ev = Evaluator::new(g, &r, Order::Zero).unwrap();
        let mut grad = vec![0.0];
        let f = ev.gradient(&[x], &mut grad, opts).unwrap();
        (f.to_bits(), grad[0].to_bits(), ev.loss().to_bits())
    };
    let mut shared = Evaluator::new(&test, &r, Order::Zero).unwrap();
    assert!(shared.share(&train) > 0, "the warm-up steps are shared");
    let mut from = Evaluator::new(&train, &r, Order::Zero).unwrap();
    for a in [0.5, -0.3, 0.9] {
        from.value(&[a], opts).unwrap();
        let f = shared.value_after(&from, &[a], opts).unwrap();
        assert_eq!(f.to_bits(), plain(&test, a).0, "test f at {a}");
        assert_eq!(
            shared.loss().to_bits(),
            plain(&test, a).2,
            "test loss at {a}"
        );
    }
    let mut p = GraphProblem::new(&r, &train, Some(&test), opts).unwrap();
    let mut g = vec![0.0];
    // Steps that ask for ∇f at the measured point (the memo), then steps that do not.
    for (a, step_asks) in [
        (0.5, true),
        (0.7, true),
        (0.2, true),
        (-0.4, false),
        (0.8, false),
        (0.6, true),
        (0.3, true),
    ] {
        let m = p.measure(&[a]).unwrap();
        let (f, grad, loss) = plain(&train, a);
        assert_eq!(
            (m.objective.to_bits(), m.train_loss.to_bits()),
            (f, loss),
            "f at {a}"
        );
        assert_eq!(
            m.test_loss.map(f64::to_bits),
            Some(plain(&test, a).2),
            "test loss at {a}"
        );
        if step_asks {
            let v = p.gradient(&[a], &mut g).unwrap();
            assert_eq!((v.to_bits(), g[0].to_bits()), (f, grad), "∇f at {a}");
            // A second request at the same point is computed afresh, with the same result.
            let v = p.gradient(&[a], &mut g).unwrap();
            assert_eq!((v.to_bits(), g[0].to_bits()), (f, grad), "∇f again at {a}");
        }
        let b = a + 0.05;
        let v = p.gradient(&[b], &mut g).unwrap();
        assert_eq!(
            (v.to_bits(), g[0].to_bits()),
            (plain(&train, b).0, plain(&train, b).1),
            "∇f at {b}"
        );
    }
}
