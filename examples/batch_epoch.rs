//! Times one epoch of minibatch gradients against one full-batch gradient over the same
//! sequences, in one process (docs/bench.md, "Minibatches"):
//!     cargo run --release --example batch_epoch -- RUNFILE K [BLOCKS]
//! The run file's model and training data; minibatches of K sequences (`batch: {sequences: K}`);
//! θ from the glorot scheme with the run's seed. Full gradients and epochs are timed in
//! alternating blocks (BLOCKS of each, default 7, after one warm-up each) and the medians and
//! their ratio printed: the epoch's cost in full-batch gradients.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use mcopt::config::Split;
use mcopt::diag::{render_plain, Diag, Diags};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::registry::{Order, Registry};
use mcopt::session::train::batch_graphs;
use mcopt::solve::{initial_point, Batcher, Draws, Layout, Scheme};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let k = args.get(2).and_then(|v| v.parse::<usize>().ok());
    let blocks = match args.get(3) {
        None => Some(7),
        Some(v) => v.parse::<usize>().ok().filter(|&b| b > 0),
    };
    let (Some(k), Some(blocks), 3..=4) = (k, blocks, args.len()) else {
        eprintln!("usage: batch_epoch RUNFILE K [BLOCKS]");
        return ExitCode::from(2);
    };
    match run(&args[1], k, blocks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(d) => {
            eprint!("{}", render_plain(&d));
            ExitCode::from(2)
        }
    }
}

fn run(run_path: &str, k: usize, blocks: usize) -> Result<(), Diags> {
    let r = Registry::with_standard();
    let run = mcopt::config::load_run(Path::new(run_path))?;
    let (model, g) = mcopt::session::train_graph(&run, &r)?;
    let fail = |m: String| Diags::from(Diag::new("mcopt::bench", m));
    let Some(spec) = &run.data else {
        return Err(fail("the run file binds no data".to_string()));
    };
    let data = mcopt::session::bind_data(&model, spec, &run.dir, Split::Train)?;
    let shapes: Vec<_> = model.params.iter().map(|p| p.shape).collect();
    let theta = initial_point(&shapes, Scheme::Glorot, run.seed);
    let opts = EvalOptions::default();
    let mut grad = vec![0.0; theta.len()];

    let mut full = Evaluator::new(&g, &r, Order::Zero).map_err(|e| fail(e.to_string()))?;
    let draws = Draws::new(data, Layout::Sequences(k), run.seed).map_err(fail)?;
    let graphs = batch_graphs(&model, &draws)?;
    let mut batcher = Batcher::new(draws, &graphs, &r).map_err(fail)?;
    let mut full_grad = || -> Result<(), Diags> {
        full.gradient(&theta, &mut grad, opts)
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    };
    let mut bgrad = vec![0.0; theta.len()];
    let mut epoch = || -> Result<(), Diags> {
        for b in 0..batcher.n_batches() {
            batcher.gradient(b, &theta, &mut bgrad, opts).map_err(fail)?;
        }
        Ok(())
    };
    let time = |f: &mut dyn FnMut() -> Result<(), Diags>| -> Result<f64, Diags> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    time(&mut full_grad)?;
    time(&mut epoch)?;
    let (mut tf, mut te) = (Vec::new(), Vec::new());
    for _ in 0..blocks {
        tf.push(time(&mut full_grad)?);
        te.push(time(&mut epoch)?);
    }
    let (f, e) = (median(&mut tf), median(&mut te));
    println!(
        "{run_path}: N = {} sequences, T = {} steps, batches of {k}; median of {blocks} blocks",
        g.sequences, g.steps
    );
    println!("  full-batch gradient  {:>10.3} ms", f * 1e3);
    println!("  minibatch epoch      {:>10.3} ms", e * 1e3);
    println!("  ratio                {:>10.2}  (target ≤ 1.2)", e / f);
    Ok(())
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
