//! `examples/timit_shape/` (the shape of the authors' third experiment) runs as its README says:
//! its model, run file and test file, copied beside small data of the same columns (the real
//! 45 MB set is generated, not stored), train with SRPA from the run file's settings, and the
//! test file evaluates the trained parameters on held-out sequences.

use std::fmt::Write as _;
use std::path::Path;

use crate::support;

/// `seq,x1..x129,y1..y129` for `seqs` sequences of `steps` steps (first sequence `first`),
/// deterministic values in [-1, 1].
fn csv(first: usize, seqs: usize, steps: usize) -> String {
    let mut s = String::from("seq");
    for k in 1..=129 {
        write!(s, ",x{k}").unwrap();
    }
    for k in 1..=129 {
        write!(s, ",y{k}").unwrap();
    }
    s.push('\n');
    for q in first..first + seqs {
        for t in 0..steps {
            write!(s, "{q}").unwrap();
            for k in 0..258 {
                let v = (((q * 131 + t * 17 + k * 7) % 97) as f64 / 48.0) - 1.0;
                write!(s, ",{v}").unwrap();
            }
            s.push('\n');
        }
    }
    s
}

#[test]
fn the_timit_shape_example_trains_and_evaluates_on_held_out_sequences() {
    let dir = support::scratch_dir("timit");
    for f in ["rnn.mco", "run.yaml", "test.yaml"] {
        std::fs::copy(
            support::repo().join("examples/timit_shape").join(f),
            dir.join(f),
        )
        .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    std::fs::write(dir.join("train.csv"), csv(0, 3, 4)).unwrap();
    std::fs::write(dir.join("test.csv"), csv(3, 2, 4)).unwrap();
    let out = dir.join("out");
    let run = support::command(&[
        "train",
        support::path_str(&dir.join("run.yaml")),
        "--max-iter",
        "3",
        "--out",
        support::path_str(&out),
        "--quiet",
        "--json",
    ])
    .run();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let report = run.json();
    assert_eq!(report["solver"], "srpa", "{report}");
    assert_eq!(report["iterations"], 3, "{report}");
    let objective = report["objective"].as_f64().unwrap();
    assert!(objective.is_finite() && objective > 0.0, "{report}");
    assert!(Path::new(&out.join("params.yaml")).is_file());

    let eval = support::command(&[
        "eval",
        "--config",
        support::path_str(&dir.join("test.yaml")),
        "--at",
        support::path_str(&out.join("params.yaml")),
        "--json",
    ])
    .run();
    assert_eq!(eval.code, Some(0), "{eval:#?}");
    let v = eval.json();
    let f = v["value"].as_f64().unwrap_or(f64::NAN);
    assert!(f.is_finite() && f > 0.0, "{v}");
}
