//! The certificate corpus: the models the certificate tests use (docs/math.md §6, curved and
//! nested kinks, the textbook minimax families, the examples of examples/nonsmooth at their
//! minimizers and starting points), certified to second order in (P). Prints the share of
//! `inconclusive` verdicts (`cargo test --test it cert_corpus -- --nocapture`) and holds it at
//! none.

use crate::common;
use crate::common::cert::nonsmooth_example as example;

use common::eval::compile;
use mcopt::registry::{Order, Registry};
use mcopt::stationarity::{certify, Form, Options, Problem, Status};

fn nested_max(terms: &[String]) -> String {
    match terms {
        [one] => one.clone(),
        [first, rest @ ..] => format!("max({first}, {})", nested_max(rest)),
        [] => "0".into(),
    }
}

/// (label, model, point).
fn corpus() -> Vec<(String, String, Vec<f64>)> {
    let mut out: Vec<(String, String, Vec<f64>)> = Vec::new();
    let mut add = |label: &str, text: String, x: Vec<f64>| out.push((label.into(), text, x));
    // docs/math.md §6 and the curved and nested kinks of tests/it/stationarity.rs, at 0.
    let small = [
        "param x: real\nminimize (abs(x) - 1)^2 + 0.5 * x^2",
        "param x: real\nminimize abs(x) + 0.5 * x^2",
        "param x: real\nminimize (x^2 - 1)^2 + 0.5 * x^2",
        "param x: real\nparam y: real\nminimize max(x, y)",
        "param x: real\nparam y: real\nminimize abs(y - x^2) - 1.5 * x^2",
        "param x: real\nminimize relu(x) - 0.5 * x",
        "param x: real\nminimize elu(x) - x",
        "param x: real\nminimize x - elu(x)",
        "param t1: real\nparam t2: real\nlayer u1 = max(t1, t2)\nlayer u2 = abs(u1 - t1)\nminimize (u2 - 1)^2",
        "param x: real\nparam y: real\nminimize abs(y + x^2) - 0.5 * y + x^4",
        "param x: real\nparam y: real\nminimize abs(y + x^2) - 0.5 * y - 3 * x^2",
        "param x: vec(5)\nminimize sum(abs(abs(x) - 0)) + 0.5 * sqnorm(x)",
        "param x: vec(5)\nminimize sum(abs(abs(x) - 0)) - 2 * sum(x)",
        "param x: real\nparam y: real\nparam z: real\nminimize -min(x, min(y, z)) + (x + y + z) / 3",
        "param x: real\nparam y: real\nminimize min(x, y) - max(x, y) + 0.1 * x",
        "param x: real\nparam y: real\nparam z: real\nminimize abs(z) - x^2 - y^2 + 0.1 * x * y",
        "param x: real\nparam y: real\nminimize max(x^2 - y^2, y^2 - x^2)",
    ];
    for text in small {
        let n = text.matches("param").count() + if text.contains("vec(5)") { 4 } else { 0 };
        add(text, text.to_string(), vec![0.0; n]);
    }
    // The textbook minimax families of tests/it/stationarity_maxtype.rs, nested binary.
    let n = 10;
    let header = format!("param x: vec({n})\nminimize ");
    let smooth: Vec<String> = (1..=n)
        .map(|i| format!("x[{i}] + 0.5 * sqnorm(x)"))
        .chain(["0.5 * sqnorm(x) - sum(x)".to_string()])
        .collect();
    let abs: Vec<String> = (1..=n)
        .map(|i| format!("abs(x[{i}] - {i})"))
        .chain(["abs(x[1] + x[2] - 3)".to_string()])
        .collect();
    let cb3: Vec<String> = (1..n)
        .map(|i| {
            let j = i + 1;
            nested_max(&[
                format!("x[{i}]^4 + x[{j}]^2"),
                format!("(2 - x[{i}])^2 + (2 - x[{j}])^2"),
                format!("2 * exp(x[{j}] - x[{i}])"),
            ])
        })
        .collect();
    let logabs: Vec<String> = (1..=n)
        .map(|i| {
            let s: Vec<String> = (1..=i).map(|j| format!("x[{j}]")).collect();
            format!("log(1 + abs({}))", s.join(" + "))
        })
        .collect();
    let iota: Vec<f64> = (1..=n).map(|i| i as f64).collect();
    for (label, text, min, start) in [
        (
            "max_smooth",
            nested_max(&smooth),
            vec![0.0; n],
            vec![1.0; n],
        ),
        ("max_abs", nested_max(&abs), iota, vec![0.0; n]),
        ("chained_cb3", cb3.join(" + "), vec![1.0; n], vec![2.0; n]),
        (
            "max_log_abs",
            nested_max(&logabs),
            vec![0.0; n],
            vec![1.0; n],
        ),
    ] {
        add(label, header.clone() + &text, min);
        add(label, header.clone() + &text, start);
    }
    // examples/nonsmooth at n = 10: minimizers and starting points.
    let crescent: Vec<f64> = (1..=n)
        .map(|i| if i % 2 == 1 { -1.5 } else { 2.0 })
        .collect();
    let maxq: Vec<f64> = (1..=n)
        .map(|i| if i <= n / 2 { i as f64 } else { -(i as f64) })
        .collect();
    for (name, min, start) in [
        ("maxq", vec![0.0; n], maxq),
        ("mxhilb", vec![0.0; n], vec![1.0; n]),
        ("chained_cb3_1", vec![1.0; n], vec![2.0; n]),
        ("chained_cb3_2", vec![1.0; n], vec![2.0; n]),
        ("active_faces", vec![0.0; n], vec![1.0; n]),
        ("chained_crescent_1", vec![0.0; n], crescent.clone()),
        ("chained_crescent_2", vec![0.0; n], crescent.clone()),
        ("chained_lq", vec![0.5f64.sqrt(); n], vec![-0.5; n]),
    ] {
        add(name, example(name, n), min);
        add(name, example(name, n), start);
    }
    out
}

#[test]
fn the_share_of_inconclusive_verdicts_over_the_corpus() {
    let r = Registry::with_standard();
    let (mut verdicts, mut inconclusive) = (0, Vec::new());
    for (label, text, x) in corpus() {
        let g = compile(&text, &r);
        let p = Problem {
            form: Form::P,
            graph: &g,
            registry: &r,
            point: &x,
            lifted: None,
            adjoint: None,
        };
        let opts = Options {
            order: Order::Two,
            time_limit: Some(60.0),
            ..Options::default()
        };
        let c = certify(&p, &opts).unwrap();
        for v in std::iter::once(&c.first).chain(c.second.as_ref()) {
            verdicts += 1;
            if v.status == Status::Inconclusive {
                inconclusive.push(format!("{label}: {:?}", v.reason));
            }
        }
    }
    println!(
        "certificate corpus: {} of {verdicts} verdicts inconclusive ({:.1}%)",
        inconclusive.len(),
        100.0 * inconclusive.len() as f64 / verdicts as f64
    );
    for i in &inconclusive {
        println!("  {i}");
    }
    assert!(inconclusive.is_empty(), "{inconclusive:#?}");
}
