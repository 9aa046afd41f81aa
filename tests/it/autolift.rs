//! Automatic lifting (issue 19, item 5): kinks of the objective outside the layers become blocks
//! of z for SRPA. A LASSO and max-of-smooth problems reach their optimum against solutions
//! computed here; `lift: layers` refuses them naming the terms; `reformulate` lists the blocks;
//! models whose kinks are all in layers lift exactly as before.

use std::path::{Path, PathBuf};

use crate::common;
use crate::support;

use common::eval::{compile, model, sp500_graph, syn_data_graph, syn_graph};
use common::linearize::check_linearization;
use mcopt::config::RowSel;
use mcopt::eval::Evaluator;
use mcopt::forms::{self, Betas, LiftMode, Lifted};
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;

/// A LASSO (1/2m)‖Ax − b‖² + λ‖x‖₁ with A and b drawn from a seed (printed with 6 decimals,
/// the values the model holds) and a sparse ground truth, so the optimum has zero entries.
struct Lasso {
    a: Vec<Vec<f64>>,
    b: Vec<f64>,
    lambda: f64,
}

impl Lasso {
    fn new(m: usize, n: usize, seed: u64) -> Lasso {
        let mut rng = Rng::new(seed);
        let round = |v: f64| format!("{v:.6}").parse::<f64>().unwrap();
        let a: Vec<Vec<f64>> = (0..m)
            .map(|_| (0..n).map(|_| round(rng.normal())).collect())
            .collect();
        let truth: Vec<f64> = (0..n)
            .map(|j| {
                if j % 3 == 0 {
                    1.0 + j as f64 * 0.25
                } else {
                    0.0
                }
            })
            .collect();
        let b = a
            .iter()
            .map(|row| {
                let clean: f64 = row.iter().zip(&truth).map(|(x, y)| x * y).sum();
                round(clean + 0.1 * rng.normal())
            })
            .collect();
        Lasso { a, b, lambda: 0.2 }
    }

    fn model(&self) -> String {
        let list = |v: &[f64]| {
            let items: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
            format!("[{}]", items.join(", "))
        };
        let rows: Vec<String> = self.a.iter().map(|r| list(r)).collect();
        format!(
            "let A = [{}]\nlet b = {}\nparam x: vec({})\nminimize 0.5 / {} * sqnorm(A * x - b) + {} * norm1(x)\n",
            rows.join(", "),
            list(&self.b),
            self.a[0].len(),
            self.a.len(),
            self.lambda
        )
    }

    fn value(&self, x: &[f64]) -> f64 {
        let m = self.a.len() as f64;
        let fit: f64 = self
            .a
            .iter()
            .zip(&self.b)
            .map(|(row, bi)| {
                let r: f64 = row.iter().zip(x).map(|(p, q)| p * q).sum::<f64>() - bi;
                r * r
            })
            .sum();
        0.5 / m * fit + self.lambda * x.iter().map(|v| v.abs()).sum::<f64>()
    }

    /// The minimizer by cyclic coordinate descent with exact soft-thresholding steps, until no
    /// coordinate moves by more than 1e-14.
    fn solve(&self) -> Vec<f64> {
        let (m, n) = (self.a.len(), self.a[0].len());
        let mut x = vec![0.0; n];
        let mut r: Vec<f64> = self.b.iter().map(|v| -v).collect();
        let norms: Vec<f64> = (0..n)
            .map(|j| self.a.iter().map(|row| row[j] * row[j]).sum::<f64>() / m as f64)
            .collect();
        for _ in 0..100_000 {
            let mut moved = 0.0f64;
            for j in 0..n {
                let g: f64 = (0..m).map(|i| self.a[i][j] * r[i]).sum::<f64>() / m as f64;
                let z = x[j] - g / norms[j];
                let t = self.lambda / norms[j];
                let new = z.signum() * (z.abs() - t).max(0.0);
                let d = new - x[j];
                if d != 0.0 {
                    for (i, ri) in r.iter_mut().enumerate() {
                        *ri += self.a[i][j] * d;
                    }
                    x[j] = new;
                }
                moved = moved.max(d.abs());
            }
            if moved <= 1e-14 {
                return x;
            }
        }
        panic!("coordinate descent did not converge");
    }
}

/// A scratch directory holding `model.mco` and `run.yaml` (SRPA with `options`, `extra` lines).
fn problem(tag: &str, model: &str, init: &str, options: &str, extra: &str) -> PathBuf {
    let dir = support::scratch_dir(tag);
    std::fs::write(dir.join("model.mco"), model).unwrap();
    let run = format!(
        "model: model.mco\nsolver:\n  name: srpa\n  options: {options}\ninit: {init}\nstop: {{max_iter: 3000}}\nform: {{p1: {{beta: 2.0}}}}\n{extra}"
    );
    std::fs::write(dir.join("run.yaml"), run).unwrap();
    dir
}

/// `mcopt train run.yaml --out DIR/out` in `dir`: the report and θ of the params file.
fn train(dir: &Path) -> (serde_json::Value, Vec<f64>) {
    let out = dir.join("out");
    let o = support::command(&["train", "run.yaml", "--json", "--quiet", "--out"])
        .arg(&out)
        .current_dir(dir)
        .run();
    assert_eq!(o.code, Some(0), "{o:#?}");
    let params = std::fs::read_to_string(out.join("params.yaml")).unwrap();
    let list = params
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(inside, _)| inside)
        .expect("one vector in the params file");
    let theta = list.split(',').map(|v| v.trim().parse().unwrap()).collect();
    (o.json(), theta)
}

#[test]
fn lasso_reaches_its_optimum() {
    let lasso = Lasso::new(20, 9, 7);
    let x_star = lasso.solve();
    let f_star = lasso.value(&x_star);
    let zeros = x_star.iter().filter(|v| **v == 0.0).count();
    assert!(
        zeros >= 2,
        "the optimum should have zero entries: {x_star:?}"
    );
    let dir = problem(
        "autolift-lasso",
        &lasso.model(),
        "{scheme: zeros}",
        "{rho1: 0.01, tol: 1e-14}",
        "",
    );
    let (report, x) = train(&dir);
    let f = lasso.value(&x);
    assert!(
        (f - f_star).abs() <= 1e-6 * f_star.max(1.0),
        "f = {f}, optimum {f_star}; {report}"
    );
    let worst = x
        .iter()
        .zip(&x_star)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-5, "‖x − x*‖∞ = {worst}: {x:?} vs {x_star:?}");
}

/// max of the squared distances to three points of an acute triangle: the minimizer is the
/// circumcenter (1, 5/12), the value its squared radius 1 + 25/144.
#[test]
fn max_of_smooth_reaches_its_minimizer() {
    let model = "param p: vec(2) = [3, -1]\n\
                 minimize max(sqnorm(p - [0, 0]), max(sqnorm(p - [2, 0]), sqnorm(p - [1, 1.5])))\n";
    let dir = problem(
        "autolift-triangle",
        model,
        "{scheme: zeros}",
        "{rho1: 0.01, tol: 1e-14}",
        "",
    );
    std::fs::write(dir.join("start.yaml"), "p: [3, -1]\n").unwrap();
    let run = std::fs::read_to_string(dir.join("run.yaml")).unwrap();
    let run = run.replace("init: {scheme: zeros}", "init: {file: start.yaml}");
    std::fs::write(dir.join("run.yaml"), run).unwrap();
    let (report, p) = train(&dir);
    assert_eq!(report["status"], "converged", "{report}");
    assert!(
        (p[0] - 1.0).abs() <= 1e-8 && (p[1] - 5.0 / 12.0).abs() <= 1e-8,
        "{p:?}: {report}"
    );
}

/// MAXQ of [LV00] (n = 20, max_i x_i², from x_i = i, −i after n/2): the minimizer 0.
#[test]
fn maxq_reaches_its_minimizer() {
    let model = "const n = 20\nparam x: vec(n)\nminimize max(i in 1..n, x[i]^2)\n";
    let dir = problem(
        "autolift-maxq",
        model,
        "{file: start.yaml}",
        "{rho1: 0.001}",
        "",
    );
    let start: Vec<String> = (1..=20)
        .map(|i| format!("{}", if i <= 10 { i } else { -i }))
        .collect();
    std::fs::write(
        dir.join("start.yaml"),
        format!("x: [{}]\n", start.join(", ")),
    )
    .unwrap();
    let (report, x) = train(&dir);
    let f = x.iter().map(|v| v * v).fold(0.0, f64::max);
    assert!(f <= 1e-9, "max x² = {f}: {report}");
}

#[test]
fn lift_layers_refuses_kinks_outside_layers_naming_the_terms() {
    let model = "param x: vec(3) = [1, -2, 3]\n\
                 minimize sqnorm(x - [1, 1, 1]) + 0.5 * abs(x[1] - x[2]) + max(x)\n";
    let dir = problem(
        "autolift-layers",
        model,
        "{scheme: zeros}",
        "{}",
        "lift: layers\n",
    );
    let out = dir.join("out");
    let o = support::command(&["train", "run.yaml", "--out"])
        .arg(&out)
        .current_dir(&dir)
        .run();
    assert_eq!(o.code, Some(2), "{o:#?}");
    let err = support::unwrapped(&o.stderr);
    assert!(err.contains("mcopt::train::lift"), "{err}");
    assert!(err.contains("2 kinks"), "{err}");
    assert!(err.contains("abs(x[1] - x[2])"), "{err}");
    assert!(err.contains("`max` outside the layers"), "{err}");
    assert!(err.contains("`lift: auto`"), "{err}");
    assert!(!out.exists(), "nothing is written");

    // the same model trains with the default
    let run = std::fs::read_to_string(dir.join("run.yaml")).unwrap();
    std::fs::write(dir.join("run.yaml"), run.replace("lift: layers\n", "")).unwrap();
    let (report, _) = train(&dir);
    assert!(
        report["objective"].as_f64().unwrap().is_finite(),
        "{report}"
    );
}

#[test]
fn reformulate_lists_the_automatic_blocks_with_their_terms() {
    let lasso = Lasso::new(4, 3, 1);
    let dir = problem(
        "autolift-reformulate",
        &lasso.model(),
        "{scheme: zeros}",
        "{}",
        "",
    );
    let o = support::command(&["reformulate", "model.mco", "--form", "p1", "--json"])
        .current_dir(&dir)
        .run();
    assert_eq!(o.code, Some(0), "{o:#?}");
    let j = o.json();
    let vars = j["variables"].as_array().unwrap();
    let lifted: Vec<&serde_json::Value> = vars.iter().filter(|v| v["role"] == "lifted").collect();
    let names: Vec<&str> = lifted.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["norm1#1.arg", "norm1#1"], "{j}");
    let text = std::fs::read_to_string(dir.join("model.mco")).unwrap();
    let at = text.find("norm1(x)").unwrap();
    for v in &lifted {
        let from = &v["from"];
        assert_eq!(from["term"], "norm1");
        assert_eq!(from["line"], 4);
        assert_eq!(from["column"], at - text[..at].rfind('\n').unwrap());
        assert_eq!(from["text"], "norm1(x)");
        assert_eq!(from["start"], at);
        assert_eq!(v["size"], 3);
    }
    assert_eq!(j["n_u"], 6);
    assert_eq!(j["penalties"].as_array().unwrap().len(), 2, "{j}");

    let o = support::command(&["reformulate", "model.mco", "--form", "p0"])
        .current_dir(&dir)
        .run();
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert!(o.stdout.contains("norm1#1.arg"), "{}", o.stdout);
    assert!(
        o.stdout.contains("lifted from `norm1` at 4:"),
        "{}",
        o.stdout
    );

    // `lift: layers` in the run file: no blocks
    let run = std::fs::read_to_string(dir.join("run.yaml")).unwrap();
    std::fs::write(dir.join("run.yaml"), format!("{run}lift: layers\n")).unwrap();
    let o = support::command(&[
        "reformulate",
        "--config",
        "run.yaml",
        "--form",
        "p1",
        "--json",
    ])
    .current_dir(&dir)
    .run();
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert_eq!(o.json()["n_u"], 0);
}

/// `form.p1.beta` may name the automatic groups for SRPA; the final certificate in (P1), which
/// lifts the declared layers only, is still given.
#[test]
fn beta_by_name_reaches_the_automatic_groups() {
    let lasso = Lasso::new(10, 4, 3);
    let dir = problem(
        "autolift-beta",
        &lasso.model(),
        "{scheme: zeros}",
        "{rho1: 0.01}",
        "validate: {form: p1}\n",
    );
    let run = std::fs::read_to_string(dir.join("run.yaml"))
        .unwrap()
        .replace(
            "form: {p1: {beta: 2.0}}",
            "form: {p1: {beta: {norm1#1.arg: 3.0, norm1#1: 2.5}}}",
        );
    std::fs::write(dir.join("run.yaml"), run).unwrap();
    let (report, x) = train(&dir);
    assert_eq!(report["certificate"]["form"], "p1", "{report}");
    let f_star = lasso.value(&lasso.solve());
    assert!((lasso.value(&x) - f_star).abs() <= 1e-6, "{report}");

    // a name that is neither a layer nor an automatic group is refused at its line
    let run = std::fs::read_to_string(dir.join("run.yaml"))
        .unwrap()
        .replace("norm1#1: 2.5", "norm1#2: 2.5");
    std::fs::write(dir.join("run.yaml"), run).unwrap();
    let o = support::command(&["train", "run.yaml"])
        .current_dir(&dir)
        .run();
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert!(o.stderr.contains("norm1#2"), "{}", o.stderr);
}

/// A bad `lift:` value is an error at its line.
#[test]
fn a_bad_lift_value_is_refused_at_its_line() {
    let dir = problem(
        "autolift-bad",
        "param x: real = 1\nminimize x^2\n",
        "{scheme: zeros}",
        "{}",
        "lift: all\n",
    );
    let o = support::command(&["train", "run.yaml"])
        .current_dir(&dir)
        .run();
    assert_eq!(o.code, Some(2), "{o:#?}");
    let err = support::unwrapped(&o.stderr);
    assert!(err.contains("mcopt::config::value"), "{err}");
    assert!(err.contains("`auto`"), "{err}");
}

/// syn and sp500 have every kink in a layer: the automatic lift is the lift of the layers, node
/// for node.
#[test]
fn models_with_kinks_only_in_layers_lift_as_before() {
    let r = Registry::with_standard();
    for g in [
        syn_graph(&r, RowSel::Range { start: 0, end: 8 }),
        sp500_graph(&r),
    ] {
        assert!(forms::outer_kinks(&g, &r).is_empty());
        let auto = forms::lift_with(&g, &r, LiftMode::Auto);
        let layers = forms::lift(&g);
        assert!(auto.source.is_none());
        assert_eq!(auto.graph.nodes, layers.graph.nodes);
        assert_eq!(auto.layout.n_z, layers.layout.n_z);
        let names = |l: &Lifted| -> Vec<(String, usize)> {
            l.layout
                .blocks
                .iter()
                .map(|b| (b.name.clone(), b.offset))
                .collect()
        };
        assert_eq!(names(&auto), names(&layers));
        assert!(auto.layout.blocks.iter().all(|b| b.origin.is_none()));
    }
}

/// Models with kinks of every kind outside layers (and one inside a layer, which stays as it
/// is).
const KINKED: &[&str] = &[
    // norm1 of an affine map (the argument through a matrix product)
    "param x: vec(3)\nminimize sqnorm([[1, 2, 0], [0, 1, -1]] * x - [1, 2]) + 0.3 * norm1(x)",
    // max over entries of a gathered power, and norminf
    "const n = 7\nparam x: vec(n)\nminimize max(i in 1..n, x[i]^2) + norminf(x - 0.5)",
    // pairwise max of two varying sides over a range, min, abs of single entries
    "const n = 5\nparam x: vec(n)\nminimize sum(i in 1..n-1, max(-x[i] - x[i+1], x[i]^2 + x[i+1]^2 - 1)) + min(x[1], x[2]) + abs(x[3] - 1)",
    // relu and leaky_relu of inner products and sums, a max with a constant side, nested kinks
    "param w: vec(3)\nparam c: real = 0.5\nminimize relu(dot(w, [1, -1, 2]) - c) + sum(leaky_relu(w, 0.1)) + max(abs(abs(c) - 1), 0.25)",
    // a layer with a kink, and a kink outside it reading the layer
    "param W: mat(2, 2)\nparam v: vec(2)\nlayer h = relu(W * v)\nminimize sqnorm(h - [1, 0]) + abs(sum(h) - v[1])",
];

/// The completion of θ is feasible (every residual exactly 0) and Θ(z) = f(θ); J d equals the
/// exact directional derivatives of the residuals at generic points.
#[test]
fn lifted_kinks_complete_feasibly_and_linearize_exactly() {
    let r = Registry::with_standard();
    for (i, text) in KINKED.iter().enumerate() {
        let g = compile(text, &r);
        let kinks = forms::outer_kinks(&g, &r);
        assert!(!kinks.is_empty(), "{text}");
        let l = forms::lift_with(&g, &r, LiftMode::Auto);
        assert!(l.layout.blocks.iter().any(|b| b.origin.is_some()), "{text}");
        let source = l.source_of(&g);
        let mut rng = Rng::new(100 + i as u64);
        let theta: Vec<f64> = (0..g.n_params()).map(|_| rng.normal()).collect();
        let mut ev = Evaluator::new(source, &r, Order::Zero).unwrap();
        let z = l.complete(&mut ev, &theta).unwrap();
        let mut lev = Evaluator::new(&l.graph, &r, Order::Zero).unwrap();
        let res = l.residuals(&mut lev, &z).unwrap();
        assert!(res.iter().all(|v| *v == 0.0), "{text}: {res:?}");
        let f = common::eval::value(&g, &r, &theta);
        let pen = l.penalized(&Betas::uniform(1.0));
        let theta_z = common::eval::value(&pen, &r, &z);
        assert!(
            (f - theta_z).abs() <= 1e-12 * (1.0 + f.abs()),
            "{text}: f = {f}, Θ = {theta_z}"
        );
        check_linearization(&l, &r, &z, 200 + i as u64, text);
        let moved: Vec<f64> = z.iter().map(|v| v + 0.1 * rng.normal()).collect();
        check_linearization(&l, &r, &moved, 300 + i as u64, text);
    }
}

/// The syn RNN with an ℓ1 loss and a max-type term per time step: each term's nodes (one per
/// step) are the instances `[1]` … `[8]` of one group, like an indexed layer's, after the
/// declared layers; the completion is feasible and the linearization exact.
#[test]
fn time_indexed_kinks_are_instances_of_one_group() {
    let r = Registry::with_standard();
    let text = std::fs::read_to_string(common::eval::repo().join("examples/syn/rnn.mco"))
        .unwrap()
        .replace(
            "minimize mean(t, sqnorm(v[t] - y[t]))",
            "minimize mean(t, norm1(v[t] - y[t])) + 0.1 * mean(t, max(v[t]))",
        );
    let g = syn_data_graph(&model(&text, &r), RowSel::Range { start: 0, end: 8 });
    let l = forms::lift_with(&g, &r, LiftMode::Auto);
    let groups: Vec<(&str, usize)> = l
        .layout
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.blocks.len()))
        .collect();
    assert_eq!(
        groups,
        [
            ("u", 8),
            ("h", 8),
            ("v", 8),
            ("norm1#1.arg", 8),
            ("norm1#1", 8),
            ("max#2.round1.arg", 8),
            ("max#2.round1", 8),
            ("max#2.round2.arg", 8),
            ("max#2.round2", 8),
        ]
        .iter()
        .map(|(n, k)| (*n, *k))
        .collect::<Vec<_>>()
    );
    let names: Vec<&str> = l.layout.blocks.iter().map(|b| b.name.as_str()).collect();
    assert!(names.contains(&"norm1#1.arg[8]") && names.contains(&"max#2.round2[3]"));
    // the declared layers keep their place in z
    let plain = forms::lift(&g);
    for b in &plain.layout.blocks {
        assert_eq!(l.layout.block(&b.name).map(|x| x.range()), Some(b.range()));
    }
    let mut rng = Rng::new(9);
    let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.3 * rng.normal()).collect();
    let mut ev = Evaluator::new(l.source_of(&g), &r, Order::Zero).unwrap();
    let z = l.complete(&mut ev, &theta).unwrap();
    let mut lev = Evaluator::new(&l.graph, &r, Order::Zero).unwrap();
    assert!(l.residuals(&mut lev, &z).unwrap().iter().all(|v| *v == 0.0));
    check_linearization(&l, &r, &z, 400, "syn with an l1 loss");
}
