//! Minibatch draws: sequence batches cover every sequence once per epoch, window batches draw
//! ⌊T / w⌋ windows per sequence, and the draws depend only on the seed and the epoch.

use mcopt::config::BatchSpec;
use mcopt::diag::SourceFile;
use mcopt::eval::EvalOptions;
use mcopt::graph::SeqData;
use mcopt::registry::Registry;
use mcopt::solve::Batcher;

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
    }
}

#[test]
fn sequence_batches_partition_the_sequences_and_depend_on_seed_and_epoch() {
    let r = Registry::with_standard();
    let model = mcopt::pipeline::compile(&SourceFile::new("m.mco", MODEL), &r).unwrap();
    let mut b = Batcher::new(&model, vec![data(6, 7)], BatchSpec::Sequences(3), 11).unwrap();
    assert_eq!(b.n_batches(), 3, "7 sequences in batches of 3, 3, 1");
    let grads = |b: &Batcher| -> Vec<Vec<u64>> {
        (0..b.n_batches())
            .map(|k| {
                let mut g = vec![0.0];
                b.gradient(k, &r, &[0.5], &mut g, EvalOptions::default())
                    .unwrap();
                vec![g[0].to_bits()]
            })
            .collect()
    };
    b.begin_epoch(4);
    let e4 = grads(&b);
    b.begin_epoch(5);
    let e5 = grads(&b);
    b.begin_epoch(4);
    assert_eq!(grads(&b), e4, "same seed and epoch, same draw");
    assert_ne!(e4, e5, "another epoch, another draw");
    let w = Batcher::new(
        &model,
        vec![data(10, 2)],
        BatchSpec::Windows {
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
    assert!(Batcher::new(
        &model,
        vec![data(2, 2)],
        BatchSpec::Windows {
            window: 3,
            per_step: 1
        },
        1
    )
    .is_err());
}
