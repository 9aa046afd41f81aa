//! The example run files load, and binding their data gives the numbers of the CSV files.

use std::path::Path;

use mcopt::config::{bind, load_run, BoundData, DataSlot, InitSpec, RowSel, Split};

fn slots(x: usize, y: usize) -> Vec<DataSlot> {
    vec![
        DataSlot {
            name: "x".into(),
            width: x,
        },
        DataSlot {
            name: "y".into(),
            width: y,
        },
    ]
}

/// Value `k` of sequence 0 at time step `t`.
fn at(b: &BoundData, t: usize, k: usize) -> f64 {
    b.values[t * b.sequences * b.width + k]
}

#[test]
fn syn_run_file_binds_the_authors_split() {
    let run = load_run(Path::new("examples/syn/run.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.model, Path::new("examples/syn/rnn.mco"));
    assert_eq!(run.seed, 123456);
    assert_eq!(run.stop.max_iter, Some(100));
    assert_eq!(run.init, InitSpec::Gaussian { std: 0.1 });
    let solver = run.solver.as_ref().unwrap();
    assert_eq!(solver.name, "srpa");
    assert_eq!(solver.options["eta2"], serde_json::json!(1.3));
    // no `output:`: `mcopt train` writes into out/run/ under the current directory
    assert!(!run.output.any());
    let data = run.data.as_ref().unwrap();
    assert_eq!(data.train, RowSel::Range { start: 0, end: 8 });

    let train = bind(data, &run.dir, Split::Train, &slots(5, 3)).unwrap_or_else(|e| panic!("{e}"));
    let (x, y) = (&train[0], &train[1]);
    assert_eq!(
        (x.width, x.sequences, x.steps, x.values.len()),
        (5, 1, 8, 40)
    );
    assert_eq!(
        (y.width, y.sequences, y.steps, y.values.len()),
        (3, 1, 8, 24)
    );
    // Row 1 of the file: 0.7252179655757793,...,-1.5410920011166547,...
    assert_eq!(at(x, 0, 0), 0.7252179655757793);
    assert_eq!(at(y, 0, 0), -1.5410920011166547);
    // Row 3: last field 0.7258630577419761; row 2 first field -0.0450911081680212.
    assert_eq!(at(y, 2, 2), 0.7258630577419761);
    assert_eq!(at(x, 1, 0), -0.0450911081680212);

    let test = bind(data, &run.dir, Split::Test, &slots(5, 3)).unwrap_or_else(|e| panic!("{e}"));
    // The 8 training steps carry the state over to the 2 test steps.
    assert_eq!((test[0].steps, test[1].steps, test[0].warmup), (10, 10, 8));
    // Row 9: 0.21208362531373304,...,1.2475470675448723,2.65068257894549,-1.9677290568128305
    assert_eq!(at(&test[0], 8, 0), 0.21208362531373304);
    assert_eq!(at(&test[1], 8, 1), 2.65068257894549);
    // Row 10: last field -0.05077158084588827.
    assert_eq!(at(&test[1], 9, 2), -0.05077158084588827);
}

#[test]
fn sp500_run_file_splits_393_and_44() {
    let run = load_run(Path::new("examples/sp500/run.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.init, InitSpec::Glorot);
    assert_eq!(run.stop.max_iter, Some(1000));
    let data = run.data.as_ref().unwrap();
    assert_eq!(data.train, RowSel::Fraction(0.9));
    let train = bind(data, &run.dir, Split::Train, &slots(11, 1)).unwrap_or_else(|e| panic!("{e}"));
    let test = bind(data, &run.dir, Split::Test, &slots(11, 1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((train[0].steps, train[1].steps), (393, 393));
    // No `test:`: the test split is the rest, after the 393 training steps as a warm-up.
    assert_eq!(
        (test[0].steps, test[1].steps, test[0].warmup),
        (437, 437, 393)
    );
    // Data row 392 (index column 392) is the last training step; row 393 the first test step.
    assert_eq!(at(&train[0], 392, 0), -0.9753601687929514);
    assert_eq!(at(&train[1], 392, 0), 1.1954839761897187);
    assert_eq!(at(&test[0], 393, 10), 1.5383045583793935);
    assert_eq!(at(&test[1], 393, 0), 1.2332083586309073);
    // Data row 436, the last line: DP = -0.26368577514349945, RV_SP500 = 0.9647271390433217.
    assert_eq!(at(&test[0], 436, 0), -0.26368577514349945);
    assert_eq!(at(&test[1], 436, 0), 0.9647271390433217);
}
