//! `mcopt bench` as a typed request: f, f′, (f′, f″) and ∇f timed in one process on the same
//! evaluator, as medians over blocks of calls, with their ratios to f ([`BenchReport`]).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::config::Split;
use crate::diag::Diags;
use crate::eval::{EvalOptions, Evaluator};
use crate::registry::Order;
use crate::rng::Rng;

use super::certify::Point;
use super::evaluate::require_graph;
use super::Session;

/// What to time: at `at`, or at a seeded random θ ~ N(0, 0.1²) (`random`), along a direction
/// file or a seeded random direction, for at least `seconds` per quantity.
#[derive(Debug, Clone)]
pub struct BenchRequest<'a> {
    pub at: Point<'a>,
    pub dir: Option<&'a str>,
    pub random: Option<u64>,
    /// Seconds spent on each quantity (finite, > 0).
    pub seconds: f64,
    pub ztol: f64,
}

/// The timings; its JSON object is `mcopt bench --json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub n: usize,
    pub nodes: usize,
    pub steps: usize,
    pub sequences: usize,
    /// The fewest blocks any quantity's median was taken over.
    pub blocks: usize,
    /// Calls per block for f, f′, (f′, f″), ∇f.
    pub reps_per_block: [usize; 4],
    pub seconds_requested: f64,
    pub seconds_spent: [f64; 4],
    pub f_seconds: f64,
    pub d1_seconds: f64,
    pub d1d2_seconds: f64,
    pub grad_seconds: f64,
    pub ratio_d1: f64,
    pub ratio_d1d2: f64,
    pub ratio_grad: f64,
    pub targets: Targets,
}

/// The targets of the ratios to f.
#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    pub ratio_d1: f64,
    pub ratio_d1d2: f64,
    pub ratio_grad: f64,
}

/// Time f, f′, (f′, f″) and ∇f as `req` asks.
pub fn bench(s: &Arc<Session>, req: &BenchRequest<'_>) -> Result<BenchReport, Diags> {
    let g = require_graph(s, Split::Train)?;
    let theta = match (req.random, req.at) {
        (Some(seed), _) => {
            let mut rng = Rng::new(seed);
            let mut theta = s.theta_buffer()?;
            theta.extend((0..s.model.n_params()).map(|_| 0.1 * rng.normal()));
            theta
        }
        (None, Point::File(p)) => s.point_in(Some(p), &g)?,
        (None, Point::Theta(t)) => super::evaluate::check_len(t, g.n_params(), "θ")?.to_vec(),
        (None, Point::Initial) => s.point_in(None, &g)?,
    };
    let d = match req.dir {
        Some(p) => s.direction_in(p, &g)?,
        None => {
            let mut rng = Rng::new(20261129);
            let mut d = s.theta_buffer()?;
            d.extend((0..theta.len()).map(|_| rng.normal()));
            d
        }
    };
    let opts = EvalOptions { ztol: req.ztol };
    let ed = |e: crate::eval::EvalError| Diags::from(e.to_diag(&g));
    let mut ev = Evaluator::new(&g, &s.registry, Order::Two).map_err(ed)?;
    let mut grad = s.theta_buffer()?;
    grad.resize(theta.len(), 0.0);
    let seconds = req.seconds;
    let tf = measure(seconds, || ev.value(&theta, opts).map(|_| ()).map_err(ed))?;
    let t1 = measure(seconds, || {
        ev.directional(&theta, &d, Order::One, opts)
            .map(|_| ())
            .map_err(ed)
    })?;
    let t2 = measure(seconds, || {
        ev.directional(&theta, &d, Order::Two, opts)
            .map(|_| ())
            .map_err(ed)
    })?;
    let tg = measure(seconds, || {
        ev.gradient(&theta, &mut grad, opts).map(|_| ()).map_err(ed)
    })?;
    let (f, d1, d2, gr) = (tf.median, t1.median, t2.median, tg.median);
    let all = [&tf, &t1, &t2, &tg];
    Ok(BenchReport {
        model: s.model_path.clone(),
        n: theta.len(),
        nodes: g.nodes.len(),
        steps: g.steps,
        sequences: g.sequences,
        blocks: all.iter().map(|t| t.blocks).min().unwrap_or(0),
        reps_per_block: all.map(|t| t.reps),
        seconds_requested: seconds,
        seconds_spent: all.map(|t| t.spent),
        f_seconds: f,
        d1_seconds: d1,
        d1d2_seconds: d2,
        grad_seconds: gr,
        ratio_d1: d1 / f,
        ratio_d1d2: d2 / f,
        ratio_grad: gr / f,
        targets: Targets {
            ratio_d1: 2.5,
            ratio_d1d2: 5.0,
            ratio_grad: 3.0,
        },
    })
}

/// Seconds per call of `f`, over `reps` calls.
fn time_per_call(reps: usize, mut f: impl FnMut() -> Result<(), Diags>) -> Result<f64, Diags> {
    let start = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() / reps.max(1) as f64)
}

/// How one quantity was timed.
struct Timing {
    /// Median seconds per call over the blocks.
    median: f64,
    blocks: usize,
    reps: usize,
    /// Wall-clock seconds spent on this quantity (at least the `seconds` asked for).
    spent: f64,
}

/// The fewest blocks a median is taken over.
const MIN_BLOCKS: usize = 7;

/// Time `f` for at least `seconds`: calibrate one call, then blocks of calls sized so that
/// [`MIN_BLOCKS`] blocks fill the time, and keep adding blocks until the time is spent.
fn measure(seconds: f64, mut f: impl FnMut() -> Result<(), Diags>) -> Result<Timing, Diags> {
    let start = Instant::now();
    let probe = time_per_call(1, &mut f)?;
    let reps = ((seconds / MIN_BLOCKS as f64) / probe.max(1e-9)).clamp(1.0, 1e7) as usize;
    let mut times = Vec::with_capacity(MIN_BLOCKS);
    while times.len() < MIN_BLOCKS || start.elapsed().as_secs_f64() < seconds {
        times.push(time_per_call(reps, &mut f)?);
    }
    Ok(Timing {
        blocks: times.len(),
        median: median(&mut times),
        reps,
        spent: start.elapsed().as_secs_f64(),
    })
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
