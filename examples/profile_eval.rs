//! Runs one evaluation kind of a model repeatedly, for profilers (perf, callgrind):
//!     cargo run --release --example profile_eval -- MODEL RUNFILE value|d1|d2|grad REPS
//! The point is θ ~ N(0, 0.1²) and the direction d ~ N(0, 1), both seeded. It prints the time per
//! call, the sum of the results and a hash of the last gradient's bits (0 unless `grad`).

use std::path::Path;
use std::process::ExitCode;

use mcopt::diag::{render_plain, Diags, SourceFile};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::{lower, LowerOptions};
use mcopt::registry::{Order, Registry};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 || !["value", "d1", "d2", "grad"].contains(&args[3].as_str()) {
        eprintln!("usage: profile_eval MODEL RUNFILE value|d1|d2|grad REPS");
        return ExitCode::from(2);
    }
    match run(&args[1], &args[2], &args[3], args[4].parse().unwrap_or(10)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(d) => {
            eprint!("{}", render_plain(&d));
            ExitCode::from(2)
        }
    }
}

fn run(model_path: &str, run_path: &str, kind: &str, reps: usize) -> Result<(), Diags> {
    let r = Registry::with_standard();
    let run = mcopt::config::load_run(Path::new(run_path))?;
    let text = std::fs::read_to_string(model_path).map_err(|e| {
        mcopt::diag::Diag::new("mcopt::io::read", e.to_string()).in_file(model_path)
    })?;
    let model = mcopt::session::compile(&SourceFile::new(model_path, text), &r)?;
    let data = match &run.data {
        Some(spec) => {
            mcopt::session::bind_data(&model, spec, &run.dir, mcopt::config::Split::Train)?
        }
        None => Vec::new(),
    };
    let g = lower(&model, &LowerOptions { data })?;
    let mut rng = mcopt::rng::Rng::new(1);
    let x: Vec<f64> = (0..g.n_params()).map(|_| 0.1 * rng.normal()).collect();
    let d: Vec<f64> = (0..g.n_params()).map(|_| rng.normal()).collect();
    let mut grad = vec![0.0; x.len()];
    let diag = |e: mcopt::eval::EvalError| Diags::from(e.to_diag(&g));
    let mut ev = Evaluator::new(&g, &r, Order::Two).map_err(diag)?;
    let o = EvalOptions::default();
    let start = std::time::Instant::now();
    let mut acc = 0.0;
    for _ in 0..reps {
        acc += match kind {
            "value" => ev.value(&x, o),
            "d1" => ev.directional(&x, &d, Order::One, o).map(|t| t.value),
            "d2" => ev.directional(&x, &d, Order::Two, o).map(|t| t.value),
            _ => ev.gradient(&x, &mut grad, o),
        }
        .map_err(diag)?;
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / reps.max(1) as f64;
    // The last gradient's bits, so that builds can be compared to the bit.
    let bits = grad
        .iter()
        .fold(0u64, |h, v| (h ^ v.to_bits()).wrapping_mul(0x100_0000_01b3));
    println!("{kind}: {micros:.1} µs per call (checksum {acc}, gradient bits {bits:016x})");
    Ok(())
}
