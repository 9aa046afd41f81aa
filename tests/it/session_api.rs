//! The session layer as a library (issue 16 item 1): what `check`, `eval`, `diff` and
//! `reformulate` print is the typed result of a `mcopt::session` call, and `eval --gradient`
//! is `session::Objective::gradient`, bit for bit.

use std::sync::Arc;

use mcopt::config::Split;
use mcopt::registry::Order;
use mcopt::session::reformulate::{reformulate, ReformulateRequest};
use mcopt::session::{
    self, Direction, DirectionalRequest, FormSpec, Inputs, Objective, Point, Session,
};
use serde_json::Value;

use crate::support::{at, mcopt, path_str, scratch_dir};

/// A smooth model with a matrix, a vector and a scalar parameter, and a point away from 0.
const MODEL: &str = "param M: mat(2, 3) = [[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]]
param v: vec(3) = [0.7, -0.3, 0.2]
param s: real = 0.9
minimize sum(tanh(M * v)) + 0.5 * sqnorm(M) + s * s * sqnorm(v) + exp(0.3 * s)
";

fn smooth_model() -> String {
    let dir = scratch_dir("session-api");
    let path = dir.join("smooth.mco");
    std::fs::write(&path, MODEL).unwrap();
    path_str(&path).to_owned()
}

fn open(model: &str, inputs: &Inputs) -> Arc<Session> {
    Arc::new(Session::load(model, inputs).unwrap_or_else(|e| panic!("{e:?}")))
}

/// The gradient of `eval --gradient --json` flattened in θ's layout (each parameter
/// column-major), reading matrices as rows and a scalar as a number.
fn flat_gradient(v: &Value, obj: &Objective) -> Vec<f64> {
    let mut out = Vec::new();
    for spec in obj.param_specs() {
        let g = &v["gradient"][&spec.name];
        for j in 0..spec.cols {
            for i in 0..spec.rows {
                let x = match (spec.rows, spec.cols) {
                    (1, 1) => g.as_f64(),
                    (_, 1) => g[i].as_f64(),
                    _ => g[i][j].as_f64(),
                };
                out.push(x.unwrap_or_else(|| panic!("{}[{i},{j}] in {v}", spec.name)));
            }
        }
    }
    out
}

#[test]
fn eval_gradient_is_the_objective_gradient_and_matches_finite_differences() {
    let model = smooth_model();
    let run = mcopt(&["eval", &model, "--gradient", "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let v = run.json();
    let s = open(&model, &Inputs::default());
    let mut obj = Objective::new(Arc::clone(&s), Split::Train, 0.0).unwrap();
    let theta = s.point(None).unwrap();
    let (f, grad) = obj.gradient(&theta).unwrap();
    assert_eq!(v["value"].as_f64(), Some(f), "{v}");
    // The CLI's numbers are the library's, to the bit, and in the documented layout.
    assert_eq!(flat_gradient(&v, &obj), grad);
    // Central differences: the gradient is ∇f at this smooth point.
    let h = 1e-6;
    for i in 0..theta.len() {
        let (mut up, mut down) = (theta.clone(), theta.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (obj.value(&up).unwrap() - obj.value(&down).unwrap()) / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
            "∂f/∂θ[{i}]: reverse {} vs difference {fd}",
            grad[i]
        );
    }
    // Without the flag there is no gradient.
    let plain = mcopt(&["eval", &model, "--json"]).json();
    assert!(plain.get("gradient").is_none(), "{plain}");
}

#[test]
fn eval_gradient_text_is_a_direction_file() {
    let model = smooth_model();
    let run = mcopt(&["eval", &model, "--gradient"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let block: String = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("gradient"))
        .skip(1)
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let dir = scratch_dir("session-api-grad");
    let file = dir.join("grad.yaml");
    std::fs::write(&file, &block).unwrap();
    // Along d = ∇f, f′(θ; d) = ‖∇f‖².
    let d = mcopt(&["diff", &model, "--dir", path_str(&file), "--json"]);
    assert_eq!(d.code, Some(0), "{d:#?}\n{block}");
    let s = open(&model, &Inputs::default());
    let mut obj = Objective::new(s, Split::Train, 0.0).unwrap();
    let theta = obj.session().point(None).unwrap();
    let (_, g) = obj.gradient(&theta).unwrap();
    let norm2: f64 = g.iter().map(|x| x * x).sum();
    let d1 = d.json()["d1"].as_f64().unwrap();
    assert!((d1 - norm2).abs() <= 1e-12 * norm2, "{d1} vs {norm2}");
}

#[test]
fn objective_refuses_a_point_of_the_wrong_length() {
    let s = open(&smooth_model(), &Inputs::default());
    let mut obj = Objective::new(s, Split::Train, 0.0).unwrap();
    let err = obj.value(&[1.0, 2.0]).unwrap_err();
    assert_eq!(err.0.first().map(|d| d.code), Some("mcopt::point::shape"));
    assert!(obj.gradient(&[0.0; 40]).is_err());
}

#[test]
fn check_json_is_the_inspected_summary() {
    let syn = Inputs {
        config: Some(at("examples/syn/run.yaml")),
        ..Inputs::default()
    };
    let model = session::model_path(None, &syn).unwrap();
    let run = mcopt(&["check", "--config", &at("examples/syn/run.yaml"), "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let summary = session::inspect(&open(&model, &syn)).unwrap();
    assert_eq!(serde_json::to_value(&summary).unwrap(), run.json());
    assert_eq!(summary.l, Some(25));
}

#[test]
fn reformulate_json_is_the_typed_result() {
    let syn = Inputs {
        config: Some(at("examples/syn/run.yaml")),
        ..Inputs::default()
    };
    let s = open(&session::model_path(None, &syn).unwrap(), &syn);
    for (form, flag) in [
        (FormSpec::P0, "p0"),
        (FormSpec::P1(mcopt::forms::Betas::uniform(1.0)), "p1"),
    ] {
        let run = mcopt(&[
            "reformulate",
            "--config",
            &at("examples/syn/run.yaml"),
            "--form",
            flag,
            "--json",
        ]);
        assert_eq!(run.code, Some(0), "{run:#?}");
        let r = reformulate(&s, &ReformulateRequest { form }).unwrap();
        assert_eq!(r.to_json(), run.json(), "{flag}");
    }
    let p = reformulate(&s, &ReformulateRequest { form: FormSpec::P });
    assert!(p.is_err());
}

#[test]
fn directional_in_memory_equals_diff_with_files() {
    let model = at("examples/cases/abs_sq.mco");
    let dir = at("tests/cli/cases/abs_sq.dir.yaml");
    let point = at("tests/cli/cases/abs_sq.point.yaml");
    let run = mcopt(&[
        "diff", &model, "--at", &point, "--dir", &dir, "--order", "2", "--json",
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let v = run.json();
    let s = open(&model, &Inputs::default());
    let req = DirectionalRequest {
        form: FormSpec::P,
        order: Order::Two,
        ztol: 0.0,
    };
    let from_files =
        session::directional(&s, &Point::File(&point), &Direction::File(&dir), &req).unwrap();
    let theta = s.point(Some(&point)).unwrap();
    let g = s.graph(Split::Train).unwrap().unwrap();
    let d = s.direction_in(&dir, &g).unwrap();
    let in_memory =
        session::directional(&s, &Point::Theta(&theta), &Direction::Values(&d), &req).unwrap();
    for t in [&from_files.taylor, &in_memory.taylor] {
        assert_eq!(Some(t.value), v["value"].as_f64());
        assert_eq!(t.d1, v["d1"].as_f64());
        assert_eq!(t.d2, v["d2"].as_f64());
        assert_eq!(Some(t.active_kinks as u64), v["active_kinks"].as_u64());
    }
    assert!(in_memory.exact.is_none());
}

/// An embedding program may move an `Objective` to another thread (a Python extension
/// releases the GIL around a call).
#[test]
fn an_objective_can_move_between_threads() {
    fn send<T: Send>(_: &T) {}
    let s = open(&smooth_model(), &Inputs::default());
    let obj = Objective::new(s, Split::Train, 0.0).unwrap();
    send(&obj);
    let value = std::thread::spawn(move || {
        let mut obj = obj;
        let theta = obj.session().point(None).unwrap();
        obj.value(&theta).unwrap()
    })
    .join()
    .unwrap();
    assert!(value.is_finite());
}
