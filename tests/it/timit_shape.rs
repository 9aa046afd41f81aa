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

/// SRPA on a small set of the TIMIT shape (the example's model and β: 2 sequences of 3 steps,
/// θ of 651 entries; ρ₁ = 1 and η₂ = 2, so that steps are accepted within a few iterations)
/// with B through its augmented matrix, whose output rows (each with a lifted column read by
/// no other row) are eliminated in closed form: the trajectory and the predicted decreases of
/// the direct factorization of the whole KKT matrix, to 1e-8.
#[test]
fn the_eliminated_output_rows_follow_the_direct_trajectory() {
    use mcopt::eval::Evaluator;
    use mcopt::forms::p1host::P1Host;
    use mcopt::forms::{self, Betas};
    use mcopt::registry::{Order, Registry};
    use mcopt_std::solvers::srpa::iteration::{Srpa, SrpaOptions};
    use mcopt_std::solvers::srpa::subproblem::Method;

    let dir = support::scratch_dir("timit-eliminated");
    for f in ["rnn.mco", "run.yaml"] {
        std::fs::copy(
            support::repo().join("examples/timit_shape").join(f),
            dir.join(f),
        )
        .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    std::fs::write(dir.join("train.csv"), csv(0, 2, 3)).unwrap();
    let r = Registry::with_standard();
    let run = mcopt::config::load_run(&dir.join("run.yaml")).unwrap();
    let (_, g) = mcopt::session::train_graph(&run, &r).unwrap();
    let l = forms::lift(&g);
    let theta: Vec<f64> = (0..l.layout.n_theta)
        .map(|i| 0.3 * (i as f64 * 0.37).sin())
        .collect();
    let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
    let z0 = l.complete(&mut ev, &theta).unwrap();
    let betas = Betas::uniform(0.04);
    let pen = l.penalized(&betas);
    let trajectory = |method: Method| {
        let mut host = P1Host::new(&l, &pen, &betas, &g, &r).unwrap();
        let opts = SrpaOptions {
            eta1: 0.7,
            eta2: 2.0,
            rho1: 1.0,
            method,
            ..SrpaOptions::default()
        };
        let mut srpa = Srpa::new(&mut host, z0.clone(), opts).unwrap();
        let mut t = vec![srpa.objective];
        let mut accepted = 0;
        for k in 0..6 {
            let m = srpa.step(&mut host).unwrap();
            assert!(m.sub_converged, "{method:?}, iteration {k}: {m:?}");
            if method == Method::SchurAugmented {
                assert_eq!(m.factorizations, 0, "no direct fallback: {m:?}");
            }
            accepted += usize::from(m.accepted);
            t.extend([m.objective, m.predicted_decrease]);
        }
        (t, accepted)
    };
    let (direct, accepted) = trajectory(Method::Direct);
    assert!(accepted >= 1, "a step is accepted: {direct:?}");
    let (eliminated, _) = trajectory(Method::SchurAugmented);
    for (k, (a, b)) in eliminated.iter().zip(&direct).enumerate() {
        assert!((a - b).abs() <= 1e-8 * b.abs(), "k = {k}: {a} vs {b}");
    }
}
