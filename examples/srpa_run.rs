//! Runs SRPA from a point file and prints Θ per iteration and the time per iteration:
//!     cargo run --release --example srpa_run -- RUNFILE POINT ITERS [--expect VALUE]
//! The solver options (eta1, eta2, rho1) and β (`form: {p1: {beta: …}}`, else the old options
//! beta, beta1, beta2) come from the run file. With
//! `--expect`, exits 1 unless the final Θ is within 1e-6 of VALUE (a CI check of the authors'
//! numbers, e.g. Θ(z¹) on sp500).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use mcopt::config;
use mcopt::diag::{render_plain, Diag, Diags};
use mcopt::eval::Evaluator;
use mcopt::forms::p1host::P1Host;
use mcopt::forms::{self, Betas};
use mcopt::registry::{Order, Registry};
use mcopt_std::solvers::srpa::iteration::{Srpa, SrpaOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let expect = match args.get(4).map(String::as_str) {
        None => None,
        Some("--expect") => args.get(5).and_then(|v| v.parse::<f64>().ok()),
        Some(_) => f64::NAN.into(),
    };
    if !(args.len() == 4 || args.len() == 6) || expect.is_some_and(f64::is_nan) {
        eprintln!("usage: srpa_run RUNFILE POINT ITERS [--expect VALUE]");
        return ExitCode::from(2);
    }
    match run(&args[1], &args[2], args[3].parse().unwrap_or(10)) {
        Ok(last) => match expect {
            Some(want) if (last - want).abs() > 1e-6 => {
                eprintln!("final objective {last} differs from the expected {want}");
                ExitCode::from(1)
            }
            _ => ExitCode::SUCCESS,
        },
        Err(d) => {
            eprint!("{}", render_plain(&d));
            ExitCode::from(2)
        }
    }
}

fn opt(run: &config::RunFile, name: &str) -> Option<f64> {
    run.solver.as_ref()?.options.get(name)?.as_f64()
}

fn run(run_path: &str, point: &str, iters: usize) -> Result<f64, Diags> {
    let r = Registry::with_standard();
    let run = config::load_run(Path::new(run_path))?;
    let (_, g) = mcopt::session::train_graph(&run, &r)?;
    let theta = mcopt::session::read_theta(&g, Path::new(point))?;
    let l = forms::lift(&g);
    // the run file's `form: {p1: {beta: …}}`, else the old spelling in the solver's options
    let betas = match &run.form.p1 {
        Some(p1) => mcopt::session::certify::betas_of(&p1.beta),
        None => {
            let mut betas = Betas::uniform(opt(&run, "beta").or(opt(&run, "beta1")).unwrap_or(1.0));
            if let (Some(b2), Some(last)) = (opt(&run, "beta2"), l.layout.groups.last()) {
                betas.per_group.insert(last.name.clone(), b2);
            }
            betas
        }
    };
    let pen = l.penalized(&betas);
    let fail = |m: String| Diags::from(Diag::new("mcopt::srpa", m));
    let mut ev = Evaluator::new(&g, &r, Order::Zero).map_err(|e| Diags::from(e.to_diag(&g)))?;
    let z0 = l
        .complete(&mut ev, &theta)
        .map_err(|e| Diags::from(e.to_diag(&g)))?;
    let setup = Instant::now();
    let mut host = P1Host::new(&l, &pen, &betas, &g, &r).map_err(|e| fail(e.to_string()))?;
    let opts = SrpaOptions {
        eta1: opt(&run, "eta1").unwrap_or(0.9),
        eta2: opt(&run, "eta2").unwrap_or(1.3),
        rho1: opt(&run, "rho1").unwrap_or(0.5),
        ..SrpaOptions::default()
    };
    let mut srpa = Srpa::new(&mut host, z0, opts).map_err(fail)?;
    println!(
        "n_z {} rows {} factor nnz {} setup {:.3} s  k 0 objective {:.12}",
        l.layout.n_z,
        l.layout.n_z - l.layout.n_theta,
        srpa.factor_nnz(),
        setup.elapsed().as_secs_f64(),
        srpa.objective
    );
    let start = Instant::now();
    let mut last = None;
    for k in 1..=iters {
        let t = Instant::now();
        let m = srpa.step(&mut host).map_err(fail)?;
        let secs = t.elapsed().as_secs_f64();
        if k <= 10 || k % 10 == 0 || k == iters {
            println!(
                "k {k} objective {:.12} feas {:.3e} pred {:.3e} rho {:.4} acc {} ties {} newton {} faces {} factor {} schur {} cg {} gap {:.1e} {:.4} s",
                m.objective, m.feasibility, m.predicted_decrease, m.rho, m.accepted, m.ties,
                m.newton_steps, m.face_steps, m.factorizations, m.schur_forms, m.cg_iterations, m.sub_gap, secs
            );
        }
        last = Some(m);
    }
    let total = start.elapsed().as_secs_f64();
    let mut ev = Evaluator::new(&g, &r, Order::Zero).map_err(|e| Diags::from(e.to_diag(&g)))?;
    ev.value(&srpa.z[..l.layout.n_theta], Default::default())
        .map_err(|e| Diags::from(e.to_diag(&g)))?;
    let train = ev.loss();
    println!(
        "iterations {iters} total {total:.3} s per iteration {:.6} s accepted {} rejected {} train_loss {train:.12} final {:?}",
        total / iters.max(1) as f64,
        srpa.accepted,
        srpa.rejected,
        last.map(|m| m.objective)
    );
    Ok(srpa.objective)
}
