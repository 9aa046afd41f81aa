//! Times the (P1) host's products with J on a run file's training data, J not stored:
//!     cargo run --release --example p1_products -- RUNFILE [REPEATS]
//! Prints the host's build time, one `linearize`, and the median over REPEATS (default 5) of
//! J s, Jᵀ y, the solves with J_L and J_Lᵀ, f and ∇f of the unlifted model at the same θ (entries
//! 0.05 × a standard normal, seed 1), each in milliseconds, and the peak RSS of the process
//! (docs/srpa.md, "Products").

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use mcopt::config;
use mcopt::diag::{render_plain, Diag, Diags};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::forms::linearize::{Jacobian, Linearization, NO_PIECE};
use mcopt::forms::p1host::P1Host;
use mcopt::forms::{self, Betas, LiftMode};
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;
use mcopt_plugin_sdk::p1::P1Problem;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if !(2..=3).contains(&args.len()) {
        eprintln!("usage: p1_products RUNFILE [REPEATS]");
        return ExitCode::from(2);
    }
    let repeats = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(5);
    match run(&args[1], repeats) {
        Ok(()) => ExitCode::SUCCESS,
        Err(d) => {
            eprint!("{}", render_plain(&d));
            ExitCode::from(2)
        }
    }
}

/// Peak resident set of this process (VmHWM), in MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Median milliseconds of `repeats` calls of `f`.
fn median_ms(repeats: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut t = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn run(run_path: &str, repeats: usize) -> Result<(), Diags> {
    let fail = |m: String| Diags::from(Diag::new("mcopt::p1_products", m));
    let r = Registry::with_standard();
    let run = config::load_run(Path::new(run_path))?;
    let (_, g) = mcopt::session::train_graph(&run, &r)?;
    let mut rng = Rng::new(1);
    let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.05 * rng.normal()).collect();
    let l = forms::lift_with(&g, &r, LiftMode::Auto);
    let source = l.source_of(&g);
    let betas = Betas::uniform(1.0);
    let pen = l.penalized(&betas);
    let mut ev = Evaluator::new(source, &r, Order::Zero).map_err(|e| fail(format!("{e:?}")))?;
    let z = l
        .complete(&mut ev, &theta)
        .map_err(|e| fail(format!("{e:?}")))?;
    drop(ev);
    let start = Instant::now();
    let mut host = P1Host::with_jacobian(&l, &pen, &betas, source, &r, Jacobian::Products)
        .map_err(|e| fail(e.to_string()))?;
    let build = start.elapsed().as_secs_f64() * 1e3;
    let s = host.structure();
    let (n, m) = (s.n_z, s.rows());
    let mut pieces = vec![NO_PIECE; s.n_pieces];
    let mut lin = Linearization::for_structure(s);
    let lin_ms = median_ms(repeats, || host.linearize(&z, None, &mut pieces, &mut lin))
        .map_err(fail)?;
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let y: Vec<f64> = (0..m).map(|_| rng.normal()).collect();
    let (mut rows, mut cols) = (vec![0.0; m], vec![0.0; n]);
    let mul = median_ms(repeats, || host.jac_mul(&v, &mut rows)).map_err(fail)?;
    let tmul = median_ms(repeats, || host.jac_tmul(&y, &mut cols)).map_err(fail)?;
    let solve = median_ms(repeats, || host.lifted_solve(&y, &mut rows)).map_err(fail)?;
    let tsolve = median_ms(repeats, || host.lifted_tsolve(&y, &mut rows)).map_err(fail)?;
    let host_peak = peak_mib();
    let mut fev = Evaluator::new(&g, &r, Order::Zero).map_err(|e| fail(format!("{e:?}")))?;
    let mut grad = vec![0.0; theta.len()];
    let opts = EvalOptions::default();
    let f = median_ms(repeats, || {
        fev.value(&theta, opts).map(|_| ()).map_err(|e| format!("{e:?}"))
    })
    .map_err(fail)?;
    let df = median_ms(repeats, || {
        fev.gradient(&theta, &mut grad, opts)
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    })
    .map_err(fail)?;
    println!(
        "n_theta {} n_z {n} rows {m} product buffers {:.1} MiB",
        l.layout.n_theta,
        host.linearizer().product_bytes() as f64 / (1u64 << 20) as f64
    );
    println!("host build {build:.1} ms, peak RSS after the products {host_peak:.0} MiB");
    println!("linearize {lin_ms:.1} ms");
    println!("J s {mul:.1} ms, Jᵀ y {tmul:.1} ms, J_L⁻¹ y {solve:.1} ms, J_L⁻ᵀ y {tsolve:.1} ms");
    println!("f {f:.1} ms, ∇f {df:.1} ms");
    Ok(())
}
