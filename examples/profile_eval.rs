//! Runs one evaluation kind of a model repeatedly, for profilers (perf, callgrind):
//!     cargo run --release --example profile_eval -- MODEL RUNFILE value|d1|d2|grad REPS
use std::path::Path;

use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::{lower, LowerOptions};
use mcopt::registry::{Order, Registry};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: profile_eval MODEL RUNFILE value|d1|d2|grad REPS");
        std::process::exit(2);
    }
    let r = Registry::with_standard();
    let run = mcopt::config::load_run(Path::new(&args[2])).unwrap_or_else(|d| panic!("{d}"));
    let source = mcopt::diag::SourceFile::new(
        &args[1],
        std::fs::read_to_string(&args[1]).unwrap_or_default(),
    );
    let model = mcopt::pipeline::compile(&source, &r).unwrap_or_else(|d| panic!("{d}"));
    let spec = run
        .data
        .as_ref()
        .unwrap_or_else(|| panic!("the run file binds no data"));
    let data = mcopt::pipeline::bind_data(&model, spec, &run.dir, mcopt::config::Split::Train)
        .unwrap_or_else(|d| panic!("{d}"));
    let g = lower(&model, &LowerOptions { data }).unwrap_or_else(|d| panic!("{d}"));
    let mut rng = mcopt::rng::Rng::new(1);
    let x: Vec<f64> = (0..g.n_params()).map(|_| 0.1 * rng.normal()).collect();
    let d: Vec<f64> = (0..g.n_params()).map(|_| rng.normal()).collect();
    let mut grad = vec![0.0; x.len()];
    let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
    let reps: usize = args[4].parse().unwrap_or(10);
    let o = EvalOptions::default();
    let start = std::time::Instant::now();
    let mut acc = 0.0;
    for _ in 0..reps {
        acc += match args[3].as_str() {
            "value" => ev.value(&x, o),
            "d1" => ev.directional(&x, &d, Order::One, o).map(|t| t.value),
            "d2" => ev.directional(&x, &d, Order::Two, o).map(|t| t.value),
            _ => ev.gradient(&x, &mut grad, o),
        }
        .unwrap_or_else(|e| panic!("{e}"));
    }
    println!(
        "{} µs per call ({acc})",
        start.elapsed().as_secs_f64() * 1e6 / reps as f64
    );
}
