//! Certificates of (P) at a point, the nonsmooth examples at any size, and the property tests'
//! case count, for the certificate tests.

use mcopt::graph::Graph;
use mcopt::registry::{Order, Registry};
use mcopt::stationarity::{certify, Certificate, Form, Options, Problem};

use super::eval::repo;

/// The certificate of (P) at `x` to `order`, with the default tolerances.
pub fn certify_at(g: &Graph, r: &Registry, x: &[f64], order: Order) -> Certificate {
    let p = Problem {
        form: Form::P,
        graph: g,
        registry: r,
        point: x,
        lifted: None,
        adjoint: None,
    };
    let opts = Options {
        order,
        ..Options::default()
    };
    certify(&p, &opts).unwrap()
}

/// The model `examples/nonsmooth/<name>.mco` at size n (its `const n` replaced).
pub fn nonsmooth_example(name: &str, n: usize) -> String {
    let path = repo()
        .join("examples/nonsmooth")
        .join(format!("{name}.mco"));
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("const n = "))
        .unwrap()
        .to_string();
    text.replace(&line, &format!("const n = {n}"))
}

/// Cases per property test: `PROPTEST_CASES` (`.ci/run` sets it), else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
