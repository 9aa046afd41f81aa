//! Issue 18 item 4: the (P1) first-order certificate at the size of the data. On chained ReLU
//! layers (one lifted block per layer) its work grows linearly in the number of layers: what
//! the certificate allocates at 40,000 layers (calls, bytes, peak) over what it allocates at
//! 10,000, counted exactly (release only; the dense tier it replaced grew quadratically: 8.6 s
//! at 10k layers, over 120 s at 40k). The times themselves are a measurement, not a test: run
//! `cargo test --release --test p1_scaling -- --ignored --nocapture` to print them.

#[cfg(not(debug_assertions))]
#[path = "common/alloc.rs"]
mod alloc;

#[cfg(not(debug_assertions))]
#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[cfg(not(debug_assertions))]
mod timing {
    use mcopt::diag::SourceFile;
    use mcopt::eval::Evaluator;
    use mcopt::forms::{self, Betas};
    use mcopt::graph::{self, LowerOptions, SeqData};
    use mcopt::registry::{Order, Registry};
    use mcopt::stationarity::{certify, Form, Options, Problem, Status};
    use std::time::Instant;

    use super::alloc::{counted, Counts};

    const CHAIN: &str = "data x: seq(real)
param w: real = 0.9
param c: real = 0.1
layer h[0] = 0
layer h[t] = relu(w * h[t-1] + x[t] + c)
minimize mean(t, (h[t] - 0.5)^2) + 0.1 * (w^2 + c^2)
";

    /// Seconds of the first-order (P1) certificate of the chain with `layers` layers at its
    /// forward-completed initial point (β = 1) and what it allocated, with its verdict checked.
    pub fn certificate(layers: usize) -> (f64, Counts) {
        let r = Registry::with_standard();
        let src = SourceFile::new("chain.mco", CHAIN);
        let m = mcopt::session::compile(&src, &r).expect("the chain checks");
        let data = SeqData {
            steps: layers,
            sequences: 1,
            values: (0..layers).map(|t| 0.3 * (0.7 * t as f64).sin()).collect(),
            warmup: 0,
        };
        let g = graph::lower(&m, &LowerOptions { data: vec![data] }).expect("the chain lowers");
        let lifted = forms::lift(&g);
        let mut ev = Evaluator::new(&g, &r, Order::Zero).unwrap();
        let z = lifted.complete(&mut ev, &[0.9, 0.1]).unwrap();
        let p1 = lifted.penalized(&Betas::uniform(1.0));
        let problem = Problem {
            form: Form::P1,
            graph: &p1,
            registry: &r,
            point: &z,
            lifted: Some(&lifted),
            adjoint: None,
        };
        let start = Instant::now();
        let (c, counts) = counted(|| certify(&problem, &Options::default()).unwrap());
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(
            (c.first.status, c.first.method, c.first.active_kinks),
            (Status::NotStationary, "convex_qp", layers),
            "{:?}",
            c.first
        );
        assert!(c.first.slope.unwrap() < -1e-3, "{:?}", c.first);
        (seconds, counts)
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore)]
fn p1_certificate_of_chained_layers_is_linear_in_the_layers() {
    #[cfg(not(debug_assertions))]
    {
        // Four times the layers: linear is a ratio near 4, quadratic 16. The counts are exact.
        let (_, small) = timing::certificate(10_000);
        let (_, large) = timing::certificate(40_000);
        eprintln!("10k layers: {small:?}\n40k layers: {large:?}");
        small.assert_grows_at_most(&large, 5.0, "the certificate at 40k layers against 10k");
    }
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn time_p1_certificate_of_chained_layers() {
    #[cfg(not(debug_assertions))]
    {
        // Best of three each; four times the layers: linear is a ratio near 4, quadratic 16.
        let best = |n| {
            (0..3)
                .map(|_| timing::certificate(n).0)
                .fold(f64::MAX, f64::min)
        };
        let (small, large) = (best(10_000), best(40_000));
        println!(
            "10k layers: {small:.3} s, 40k layers: {large:.3} s, ratio {:.2}",
            large / small
        );
    }
}
