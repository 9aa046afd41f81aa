//! Times one epoch of minibatch gradients against one full-batch gradient over the same
//! sequences, in one process (docs/bench.md, "Minibatches"):
//!     cargo run --release --example batch_epoch -- RUNFILE K [BLOCKS]
//! The run file's model and training data; minibatches of K sequences (`batch: {sequences: K}`);
//! θ from the glorot scheme with the run's seed. Timed in alternating blocks (BLOCKS of each,
//! default 7, after one warm-up each): the full-batch gradient; an epoch as training runs it
//! (`Batcher`: one graph per batch shape, each batch bound to its evaluator); and an epoch the
//! way it ran before data were evaluator inputs (a graph lowered and an evaluator built per
//! batch). Medians of the thread's CPU time (steadier than wall time on a shared machine; wall
//! time in brackets) and the epochs' cost in full-batch gradients.
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use mcopt::graph::{lower, LowerOptions};
use mcopt::solve::batch::select_sequences;

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

/// One timed thing: a full gradient or an epoch.
type Job<'a> = dyn FnMut() -> Result<(), Diags> + 'a;

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
    let draws = Draws::new(data.clone(), Layout::Sequences(k), run.seed).map_err(fail)?;
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
            batcher
                .gradient(b, &theta, &mut bgrad, opts)
                .map_err(fail)?;
        }
        Ok(())
    };
    let mut rgrad = vec![0.0; theta.len()];
    let n = g.sequences;
    let mut relowered = || -> Result<(), Diags> {
        for start in (0..n).step_by(k.max(1)) {
            let seqs = start..(start + k).min(n);
            let part = data
                .iter()
                .map(|d| select_sequences(d, seqs.clone()))
                .collect();
            let bg = lower(&model, &LowerOptions { data: part })?;
            let mut ev = Evaluator::new(&bg, &r, Order::Zero).map_err(|e| fail(e.to_string()))?;
            ev.gradient(&theta, &mut rgrad, opts)
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    };
    let time = |f: &mut Job| -> Result<(f64, f64), Diags> {
        let (c, t) = (cpu_seconds(), Instant::now());
        f()?;
        Ok((cpu_seconds() - c, t.elapsed().as_secs_f64()))
    };
    let mut jobs: [(&str, &mut Job); 3] = [
        ("full-batch gradient", &mut full_grad),
        ("epoch, data bound", &mut epoch),
        ("epoch, re-lowered", &mut relowered),
    ];
    for (_, f) in jobs.iter_mut() {
        time(f)?;
    }
    let mut times = vec![(Vec::new(), Vec::new()); jobs.len()];
    for _ in 0..blocks {
        for ((_, f), (cpu, wall)) in jobs.iter_mut().zip(times.iter_mut()) {
            let (c, w) = time(f)?;
            cpu.push(c);
            wall.push(w);
        }
    }
    println!(
        "{run_path}: N = {n} sequences, T = {} steps, batches of {k}; median of {blocks} blocks, CPU time [wall]",
        g.steps
    );
    let mut full_cpu = 0.0;
    for (i, ((name, _), (cpu, wall))) in jobs.iter().zip(times.iter_mut()).enumerate() {
        let (c, w) = (median(cpu), median(wall));
        if i == 0 {
            full_cpu = c;
            println!("  {name:<20} {:>10.3} ms [{:>8.3} ms]", c * 1e3, w * 1e3);
        } else {
            println!(
                "  {name:<20} {:>10.3} ms [{:>8.3} ms]  ratio {:.2}  (target ≤ 1.2)",
                c * 1e3,
                w * 1e3,
                c / full_cpu
            );
        }
    }
    Ok(())
}

/// CPU time of this thread, in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
