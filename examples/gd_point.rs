//! Writes a "trained-ish" point for certificate timings: K plain gradient steps of size STEP
//! from a point file, on the training split of a run file:
//!     cargo run --release --example gd_point -- MODEL RUNFILE START.yaml K STEP OUT.yaml
//! The S&P 500 figure of the closing note used the authors' start
//! (examples/data/srpa_sp500_theta0.yaml), K = 300 and STEP = 0.05.

use std::path::Path;
use std::process::ExitCode;

use mcopt::config;
use mcopt::diag::{render_plain, Diag, Diags, SourceFile};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::{lower, LowerOptions};
use mcopt::registry::{Order, Registry};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: gd_point MODEL RUNFILE START.yaml K STEP OUT.yaml");
        return ExitCode::from(2);
    }
    let (k, step) = (args[4].parse().unwrap_or(0), args[5].parse().unwrap_or(0.0));
    match run(&args[1], &args[2], &args[3], k, step, &args[6]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(d) => {
            eprint!("{}", render_plain(&d));
            ExitCode::from(2)
        }
    }
}

fn run(model: &str, run: &str, start: &str, k: usize, step: f64, out: &str) -> Result<(), Diags> {
    let r = Registry::with_standard();
    let run = config::load_run(Path::new(run))?;
    let text = std::fs::read_to_string(model)
        .map_err(|e| Diag::new("mcopt::io::read", e.to_string()).in_file(model))?;
    let model = mcopt::session::compile(&SourceFile::new(model, text), &r)?;
    let data = match &run.data {
        Some(spec) => mcopt::session::bind_data(&model, spec, &run.dir, config::Split::Train)?,
        None => Vec::new(),
    };
    let g = lower(&model, &LowerOptions { data })?;
    let specs = mcopt::session::param_specs(&g);
    let mut x = mcopt::session::read_theta(&g, Path::new(start))?;
    let diag = |e: mcopt::eval::EvalError| Diags::from(e.to_diag(&g));
    let mut ev = Evaluator::new(&g, &r, Order::Zero).map_err(diag)?;
    let mut grad = vec![0.0; x.len()];
    let o = EvalOptions::default();
    let mut f = 0.0;
    for _ in 0..k {
        f = ev.gradient(&x, &mut grad, o).map_err(diag)?;
        x.iter_mut().zip(&grad).for_each(|(x, g)| *x -= step * g);
    }
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    eprintln!("after {k} steps: f = {f:.10}, ‖∇f‖ = {norm:.3e}");
    let mut vals = Vec::new();
    let mut off = 0;
    for s in &specs {
        vals.push(x[off..off + s.len()].to_vec());
        off += s.len();
    }
    mcopt::atomic::write(
        Path::new(out),
        config::write_point(&specs, &vals).as_bytes(),
    )
}
