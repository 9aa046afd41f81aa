//! What `mcopt train` measures at each iterate (issue 20): the host measures row 0 by a gradient
//! pass and hands ∇f to the step, and its clock starts once row 0 is written; the trace's
//! objective, training and test loss and stationarity are still, bit for bit, a plain
//! evaluation's at iterates computed here independently of the host (each solver's update
//! written out again from its documented formula on `session::Objective::gradient`).

use std::path::Path;
use std::sync::Arc;

use mcopt::config::{load_run, Split};
use mcopt::session::train::{TrainOverrides, TrainPlan};
use mcopt::session::{evaluate, EvalRequest, Inputs, Objective, Point, Session};

use crate::support;
use support::{path_str as s, stderr_of as stderr};

/// The trace of `mcopt train RUN --max-iter K` (each row's fields, empty ones `None`).
fn trace(run: &Path, k: u64, tag: &str) -> Vec<Vec<Option<f64>>> {
    let out = support::fresh_dir(tag);
    let o = support::bin()
        .args(["train", s(run), "--out", s(&out), "--quiet", "--max-iter"])
        .arg(k.to_string())
        .output()
        .expect("mcopt runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.join("trace.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|f| (!f.is_empty()).then(|| f.parse::<f64>().unwrap()))
                .collect()
        })
        .collect()
}

/// The iterates x₀ … x_k of the run file `run`: x₀ its `init`, then `update(k, x, g, ‖g‖)`
/// with g = ∇f(x) from an evaluator of its own; with each iterate's ‖∇f‖ before the update.
fn iterates(
    run: &Path,
    k: u64,
    mut update: impl FnMut(u64, &mut [f64], &mut [f64], f64),
) -> (Arc<Session>, Vec<Vec<f64>>, Vec<f64>) {
    let inputs = Inputs {
        config: Some(s(run).to_owned()),
        ..Inputs::default()
    };
    let file = load_run(run).unwrap_or_else(|e| panic!("{e:?}"));
    let plan = TrainPlan::from_run(&file, &inputs, TrainOverrides::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut x = plan.start_point(None).unwrap_or_else(|e| panic!("{e:?}"));
    let model = file.model.to_string_lossy().into_owned();
    let session = Arc::new(Session::load(&model, &inputs).unwrap_or_else(|e| panic!("{e:?}")));
    let mut obj =
        Objective::new(Arc::clone(&session), Split::Train, 0.0).unwrap_or_else(|e| panic!("{e:?}"));
    let (mut xs, mut norms) = (vec![x.clone()], Vec::new());
    for i in 1..=k {
        let (_, mut g) = obj.gradient(&x).unwrap_or_else(|e| panic!("{e:?}"));
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        update(i, &mut x, &mut g, norm);
        xs.push(x.clone());
        norms.push(norm);
    }
    (session, xs, norms)
}

/// Row i of `rows` holds the plain evaluation at `xs[i]` (objective, training and test loss)
/// and `norms[i - 1]` as its stationarity, bit for bit; row 0's clock is 0 and the clock
/// never goes back.
fn check(rows: &[Vec<Option<f64>>], session: &Arc<Session>, xs: &[Vec<f64>], norms: &[f64]) {
    assert_eq!(rows.len(), xs.len());
    let req = EvalRequest {
        ztol: 0.0,
        gradient: false,
    };
    let bits = |v: Option<f64>| v.map(f64::to_bits);
    for (i, (row, x)) in rows.iter().zip(xs).enumerate() {
        let e = evaluate(session, &Point::Theta(x), &req).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(row[0], Some(i as f64));
        assert_eq!(bits(row[1]), bits(Some(e.value)), "objective of row {i}");
        assert_eq!(bits(row[2]), bits(Some(e.loss)), "train loss of row {i}");
        assert!(e.test_loss.is_some());
        assert_eq!(bits(row[3]), bits(e.test_loss), "test loss of row {i}");
        let norm = i.checked_sub(1).map(|j| norms[j]);
        assert_eq!(bits(row[5]), bits(norm), "stationarity of row {i}");
    }
    assert_eq!(rows[0][4], Some(0.0), "row 0 is at 0 seconds");
    for w in rows.windows(2) {
        assert!(w[1][4] >= w[0][4], "the clock goes back: {w:?}");
    }
}

#[test]
fn adam_rows_are_plain_evaluations_at_independent_iterates() {
    let run = support::repo().join("examples/syn/adam.yaml");
    // examples/syn/adam.yaml: lr 0.01, b1 0.9, b2 0.999, eps 1e-8.
    let (lr, b1, b2, eps) = (0.01, 0.9, 0.999, 1e-8);
    // Past k = 13, b1ᵏ as `powi` computes it and a running product differ in their last bits.
    let n = 20;
    let (mut m, mut v) = (Vec::new(), Vec::new());
    let (session, xs, norms) = iterates(&run, n, |k, x, g, _| {
        m.resize(x.len(), 0.0);
        v.resize(x.len(), 0.0);
        let c1 = 1.0 / (1.0 - f64::powi(b1, k as i32));
        let c2 = 1.0 / (1.0 - f64::powi(b2, k as i32));
        for i in 0..x.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            x[i] -= lr * (m[i] * c1) / ((v[i] * c2).sqrt() + eps);
        }
    });
    check(&trace(&run, n, "iterates-adam"), &session, &xs, &norms);
}

#[test]
fn gd_rows_are_plain_evaluations_at_independent_iterates() {
    let run = support::repo().join("examples/syn/gd.yaml");
    // examples/syn/gd.yaml: lr 0.05, momentum 0.9, Nesterov, clipped to norm 10 (PyTorch's
    // SGD update).
    let (lr, mu, clip) = (0.05, 0.9, 10.0);
    let n = 6;
    let mut vel = Vec::new();
    let (session, xs, norms) = iterates(&run, n, |_, x, g, norm| {
        vel.resize(x.len(), 0.0);
        if norm > clip {
            g.iter_mut().for_each(|gi| *gi *= clip / norm);
        }
        for i in 0..x.len() {
            vel[i] = mu * vel[i] + g[i];
            x[i] -= lr * (g[i] + mu * vel[i]);
        }
    });
    check(&trace(&run, n, "iterates-gd"), &session, &xs, &norms);
}
