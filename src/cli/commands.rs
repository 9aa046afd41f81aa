//! The commands: check, eval, diff, bench (printing lives here and in `cli::mod`).

use std::time::Instant;

use mcopt::check::{LayerBody, Model, TermClass};
use mcopt::config::Split;
use mcopt::diag::{Diag, Diags};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::graph::Graph;
use mcopt::plugin_host::{self, PluginSearch};
use mcopt::registry::Order;
use mcopt::rng::Rng;
use serde::Serialize;
use serde_json::json;

use super::stationarity::{form_spec, FormArg};
use super::{InputArgs, EXIT_OK};
use mcopt::session::Session;

type Outcome = Result<u8, Diags>;

/// `mcopt plugins list`: every function and solver with its kind, source and options.
pub fn plugins_list(input: &InputArgs) -> Outcome {
    let registry = mcopt::session::registry(&input.inputs(), None)?;
    let list = plugin_host::plugins_list(&registry);
    if input.json {
        print_json(&serde_json::to_value(&list).unwrap_or_default());
    } else {
        out_raw!("{}", list.render_text());
    }
    Ok(EXIT_OK)
}

/// `mcopt plugins check LIB`: load one library and run its self-test.
pub fn plugins_check(lib: &str, input: &InputArgs) -> Outcome {
    let mut search = PluginSearch::from_env();
    search.add_cli(lib);
    let report = match search.resolve(&search.requests[0]).map_err(Diags::from)? {
        plugin_host::Resolved::Builtin => plugin_host::plugins_check_builtin()?,
        plugin_host::Resolved::Library(path) => plugin_host::plugins_check(&path)?,
    };
    if input.json {
        print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        out_raw!("{}", report.render_text());
    }
    Ok(EXIT_OK)
}

pub(super) fn print_json(value: &serde_json::Value) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn require_graph(s: &Session, split: Split) -> Result<Graph, Diags> {
    match s.graph(split)? {
        Some(g) => Ok(g),
        None => Err(
            Diag::new("mcopt::data::unbound", "no data are bound for this split")
                .in_file(&s.model_path)
                .into(),
        ),
    }
}

fn eval_diag(graph: &Graph) -> impl Fn(mcopt::eval::EvalError) -> Diags + '_ {
    move |e| e.to_diag(graph).into()
}

#[derive(Serialize)]
struct ParamRow {
    name: String,
    shape: String,
    size: usize,
}

#[derive(Serialize)]
struct LayerRow {
    name: String,
    shape: String,
    indexed: bool,
    bases: Vec<u64>,
}

pub fn check(model_path: &str, input: &InputArgs) -> Outcome {
    let s = Session::load(model_path, &input.inputs())?;
    let graph = if !s.model.is_sequential() || s.data.is_some() {
        s.graph(Split::Train)?
    } else {
        None
    };
    let m = &s.model;
    let params: Vec<ParamRow> = m
        .params
        .iter()
        .map(|p| ParamRow {
            name: p.name.clone(),
            shape: p.shape.to_string(),
            size: p.shape.len(),
        })
        .collect();
    let layers: Vec<LayerRow> = m
        .layers
        .iter()
        .map(|l| LayerRow {
            name: l.name.clone(),
            shape: l.shape.to_string(),
            indexed: l.body.is_indexed(),
            bases: bases(&l.body),
        })
        .collect();
    let instances: Option<Vec<(String, usize)>> = graph.as_ref().map(|g| {
        g.layers
            .iter()
            .map(|l| (l.name.clone(), g.node(l.node).rows))
            .collect()
    });
    // The instances that do not depend on θ (base cases like h[0]): counted in L, but not
    // blocks of (P0)/(P1), so `reformulate` counts L minus these.
    let fixed: Option<Vec<String>> = graph.as_ref().map(fixed_layers);
    let terms = terms_report(m);
    if input.json {
        print_json(&json!({
            "model": model_path, "n": m.n_params(), "params": params, "layer_declarations": layers,
            "data": m.data.iter().map(|d| json!({"name": d.name, "step": d.shape.to_string(), "batch": d.batch.is_some()})).collect::<Vec<_>>(),
            "layers": instances.as_ref().map(|v| v.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>()),
            "layer_groups": instances.as_deref().map(group_sizes),
            "L": instances.as_ref().map(Vec::len),
            "L_depending_on_theta": instances.as_ref().zip(fixed.as_ref()).map(|(i, f)| i.len() - f.len()),
            "layers_fixed": fixed,
            "steps": graph.as_ref().map(|g| g.steps), "sequences": graph.as_ref().map(|g| g.sequences),
            "terms": terms,
            "notes": m.notes.iter().map(|(_, n)| n).collect::<Vec<_>>(),
        }));
        return Ok(EXIT_OK);
    }
    out!("{model_path}: ok");
    out!("parameters θ: n = {}", m.n_params());
    for p in &params {
        out!("  {:<12} {:<14} {}", p.name, p.shape, p.size);
    }
    for d in &m.data {
        out!(
            "data {}: {} per step{}",
            d.name,
            d.shape,
            if d.batch.is_some() {
                ", batch of sequences"
            } else {
                ""
            }
        );
    }
    out!("layer declarations:");
    for l in &layers {
        let kind = if l.indexed {
            format!("indexed by time, base cases {:?}", l.bases)
        } else {
            "plain".to_owned()
        };
        out!("  {:<12} {:<14} {}", l.name, l.shape, kind);
    }
    match (&instances, &graph) {
        (Some(inst), Some(g)) => {
            let sizes = group_sizes(inst);
            let fixed = fixed.as_deref().unwrap_or_default();
            out!(
                "layers u_ℓ: L = {} (T = {}, N = {}){}",
                inst.len(),
                g.steps,
                g.sequences,
                fixed_note(inst.len(), fixed)
            );
            out!("  sizes N_ℓ: {}", sizes.join(", "));
        }
        _ => out!("layers u_ℓ: one per time step of the bound data (bind data to count them)"),
    }
    out!("objective: {} term(s)", terms.len());
    for t in &terms {
        out!(
            "  {:+} × {}   [{}]",
            t["coef"].as_f64().unwrap_or(0.0),
            t["text"].as_str().unwrap_or(""),
            t["class"].as_str().unwrap_or("")
        );
    }
    for (_, note) in &m.notes {
        out!("note: {note}");
    }
    Ok(EXIT_OK)
}

/// The layer instances of `g` that do not depend on θ (a constant base case `h[0]`), in order.
fn fixed_layers(g: &Graph) -> Vec<String> {
    let lifted = mcopt::forms::lifted_layers(g);
    g.layers
        .iter()
        .enumerate()
        .filter(|(i, _)| lifted.binary_search(i).is_err())
        .map(|(_, l)| l.name.clone())
        .collect()
}

/// ", counting h[0], which does not depend on θ (24 do: the blocks of `reformulate`)".
fn fixed_note(total: usize, fixed: &[String]) -> String {
    if fixed.is_empty() {
        return ", all depending on θ (the blocks of `reformulate`)".to_owned();
    }
    let verb = if fixed.len() == 1 { "does" } else { "do" };
    format!(
        ", counting {}, which {verb} not depend on θ ({} do: the blocks of `reformulate`)",
        name_list(fixed),
        total - fixed.len()
    )
}

/// `h[0]`, `h[0] and g[0]`, or the first three and how many more.
pub(super) fn name_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c] => format!("{a}, {b} and {c}"),
        [a, b, c, rest @ ..] => format!("{a}, {b}, {c} and {} more", rest.len()),
    }
}

/// Steps `first..=last` (none for a plain layer) of one layer name with one size.
type SizeRun = (Option<(u64, u64)>, usize);

/// Layer sizes with runs of time steps grouped per layer name, in order of first
/// appearance: `h[0..393]: 20, u[1..393]: 20, v[1..393]: 1`.
fn group_sizes(layers: &[(String, usize)]) -> Vec<String> {
    // Per base name: runs of (first step, last step, size); plain layers have no step.
    let mut order: Vec<&str> = Vec::new();
    let mut runs: std::collections::HashMap<&str, Vec<SizeRun>> = std::collections::HashMap::new();
    for (name, size) in layers {
        let (base, step) = split_step(name);
        let list = runs.entry(base).or_insert_with(|| {
            order.push(base);
            Vec::new()
        });
        if let (Some((Some((_, hi)), sz)), Some(t)) = (list.last_mut(), step) {
            if *sz == *size && *hi + 1 == t {
                *hi = t;
                continue;
            }
        }
        list.push((step.map(|t| (t, t)), *size));
    }
    let mut out = Vec::new();
    for base in order {
        for (steps, size) in runs.remove(base).unwrap_or_default() {
            out.push(match steps {
                None => format!("{base}: {size}"),
                Some((a, b)) if a == b => format!("{base}[{a}]: {size}"),
                Some((a, b)) => format!("{base}[{a}..{b}]: {size}"),
            });
        }
    }
    out
}

/// `("h", Some(3))` for `h[3]`, `("v", None)` for `v`.
fn split_step(name: &str) -> (&str, Option<u64>) {
    if let Some((base, rest)) = name.split_once('[') {
        if let Some(t) = rest.strip_suffix(']').and_then(|t| t.parse().ok()) {
            return (base, Some(t));
        }
    }
    (name, None)
}

fn bases(body: &LayerBody) -> Vec<u64> {
    match body {
        LayerBody::Indexed { bases, .. } => bases.iter().map(|(t, _)| *t).collect(),
        LayerBody::Plain(_) => Vec::new(),
    }
}

fn terms_report(m: &Model) -> Vec<serde_json::Value> {
    m.terms
        .iter()
        .map(|t| {
            let text = m
                .source
                .text
                .get(t.expr.span.start..t.expr.span.end)
                .unwrap_or("");
            let class = match t.class {
                TermClass::Loss => "loss (outer function g)".to_owned(),
                TermClass::Tikhonov { param } => format!("Tikhonov on {}", m.params[param].name),
                TermClass::Other => "parameters only".to_owned(),
            };
            json!({"coef": t.coef, "text": text, "class": class})
        })
        .collect()
}

pub fn eval(model_path: &str, at: Option<&str>, input: &InputArgs) -> Outcome {
    let s = Session::load(model_path, &input.inputs())?;
    let train = require_graph(&s, Split::Train)?;
    let theta = s.point_in(at, &train)?;
    let opts = EvalOptions { ztol: input.ztol };
    let mut ev = Evaluator::new(&train, &s.registry, Order::Zero).map_err(eval_diag(&train))?;
    let value = ev.value(&theta, opts).map_err(eval_diag(&train))?;
    ev.check_finite(Order::Zero).map_err(eval_diag(&train))?;
    let loss = ev.loss();
    let test_loss = match s.graph(Split::Test)? {
        Some(tg) => {
            let mut tev = Evaluator::new(&tg, &s.registry, Order::Zero).map_err(eval_diag(&tg))?;
            tev.value(&theta, opts).map_err(eval_diag(&tg))?;
            tev.check_finite(Order::Zero).map_err(eval_diag(&tg))?;
            Some(tev.loss())
        }
        None => None,
    };
    if input.json {
        print_json(&json!({"value": value, "loss": loss, "test_loss": test_loss}));
    } else {
        out!("value      {value:.12}");
        if s.model.terms.iter().any(|t| t.class == TermClass::Loss) {
            out!("loss       {loss:.12}");
        }
        if let Some(t) = test_loss {
            out!("test_loss  {t:.12}");
        }
    }
    Ok(EXIT_OK)
}

pub fn diff(
    model_path: &str,
    at: Option<&str>,
    dir: &str,
    order: u8,
    (form, beta): (FormArg, &[String]),
    input: &InputArgs,
) -> Outcome {
    let s = Session::load(model_path, &input.inputs())?;
    let spec = match form {
        FormArg::P => None,
        _ => Some(form_spec(form, beta)?),
    };
    let order = if order == 2 { Order::Two } else { Order::One };
    let taylor = |ztol: f64| -> Result<mcopt::eval::Taylor, Diags> {
        if let Some(spec) = &spec {
            return mcopt::session::certify::diff_form(&s, spec, at, dir, order, ztol);
        }
        let g = require_graph(&s, Split::Train)?;
        let theta = s.point_in(at, &g)?;
        let d = s.direction_in(dir, &g)?;
        // Buffers for order 2 also at order 1: f′ of sqrt at 0 needs the second coefficient.
        let mut ev = Evaluator::new(&g, &s.registry, Order::Two).map_err(eval_diag(&g))?;
        let t = ev
            .directional(&theta, &d, order, EvalOptions { ztol })
            .map_err(eval_diag(&g))?;
        ev.check_finite(order).map_err(eval_diag(&g))?;
        Ok(t)
    };
    let t = taylor(input.ztol)?;
    // With ztol > 0 the pieces are chosen as if arguments within ztol sat on their breakpoints:
    // d1 and d2 are then not f′(x; d) and f″(x; d), which are shown beside them.
    let exact = match input.ztol > 0.0 {
        true => Some(taylor(0.0)?),
        false => None,
    };
    print_diff(&t, exact.as_ref(), input);
    Ok(EXIT_OK)
}

/// The output of `mcopt diff`: the derivatives with the ztol used, and with ztol > 0 the exact
/// ones (`d1_exact`, `d2_exact`, `active_kinks_exact`).
fn print_diff(t: &mcopt::eval::Taylor, exact: Option<&mcopt::eval::Taylor>, input: &InputArgs) {
    let z = |x: Option<f64>| x.map(|x| x + 0.0);
    if input.json {
        let mut v = json!({"value": t.value, "d1": z(t.d1), "d2": z(t.d2),
            "active_kinks": t.active_kinks, "ztol": input.ztol});
        if let Some(e) = exact {
            v["d1_exact"] = json!(z(e.d1));
            v["d2_exact"] = json!(z(e.d2));
            v["active_kinks_exact"] = json!(e.active_kinks);
        }
        print_json(&v);
        return;
    }
    out!("value         {:.12}", t.value);
    out!("d1            {:.12}", z(t.d1).unwrap_or(f64::NAN));
    if let Some(d2) = z(t.d2) {
        out!("d2            {d2:.12}");
    }
    out!("active_kinks  {}", t.active_kinks);
    out!("ztol          {}", input.ztol);
    if let Some(e) = exact {
        out!("d1_exact      {:.12}", z(e.d1).unwrap_or(f64::NAN));
        if let Some(d2) = z(e.d2) {
            out!("d2_exact      {d2:.12}");
        }
        out!("active_kinks_exact  {}", e.active_kinks);
        if e.d1 != t.d1 || e.d2 != t.d2 {
            out!("note          with ztol = {} the derivatives differ from the exact one-sided ones (ztol 0)", input.ztol);
        }
    }
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
    /// Wall-clock seconds spent on this quantity (at least the `--seconds` asked for).
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

pub fn bench(
    model_path: &str,
    at: Option<&str>,
    dir: Option<&str>,
    random: Option<u64>,
    seconds: f64,
    input: &InputArgs,
) -> Outcome {
    let s = Session::load(model_path, &input.inputs())?;
    let g = require_graph(&s, Split::Train)?;
    let theta = match random {
        Some(seed) => {
            let mut rng = Rng::new(seed);
            let mut theta = s.theta_buffer()?;
            theta.extend((0..s.model.n_params()).map(|_| 0.1 * rng.normal()));
            theta
        }
        None => s.point_in(at, &g)?,
    };
    let d = match dir {
        Some(p) => s.direction_in(p, &g)?,
        None => {
            let mut rng = Rng::new(20261129);
            let mut d = s.theta_buffer()?;
            d.extend((0..theta.len()).map(|_| rng.normal()));
            d
        }
    };
    let opts = EvalOptions { ztol: input.ztol };
    let ed = eval_diag(&g);
    let mut ev = Evaluator::new(&g, &s.registry, Order::Two).map_err(&ed)?;
    let mut grad = s.theta_buffer()?;
    grad.resize(theta.len(), 0.0);
    let tf = measure(seconds, || ev.value(&theta, opts).map(|_| ()).map_err(&ed))?;
    let t1 = measure(seconds, || {
        ev.directional(&theta, &d, Order::One, opts)
            .map(|_| ())
            .map_err(&ed)
    })?;
    let t2 = measure(seconds, || {
        ev.directional(&theta, &d, Order::Two, opts)
            .map(|_| ())
            .map_err(&ed)
    })?;
    let tg = measure(seconds, || {
        ev.gradient(&theta, &mut grad, opts)
            .map(|_| ())
            .map_err(&ed)
    })?;
    let (f, d1, d2, gr) = (tf.median, t1.median, t2.median, tg.median);
    let all = [&tf, &t1, &t2, &tg];
    let blocks = all.iter().map(|t| t.blocks).min().unwrap_or(0);
    let report = json!({
        "model": model_path, "n": theta.len(), "nodes": g.nodes.len(), "steps": g.steps, "sequences": g.sequences,
        "blocks": blocks, "reps_per_block": all.map(|t| t.reps),
        "seconds_requested": seconds, "seconds_spent": all.map(|t| t.spent),
        "f_seconds": f, "d1_seconds": d1, "d1d2_seconds": d2, "grad_seconds": gr,
        "ratio_d1": d1 / f, "ratio_d1d2": d2 / f, "ratio_grad": gr / f,
        "targets": {"ratio_d1": 2.5, "ratio_d1d2": 5.0, "ratio_grad": 3.0},
    });
    if input.json {
        print_json(&report);
    } else {
        out!("{model_path}: n = {}, {} nodes, T = {}, N = {}; median of at least {blocks} blocks per quantity, {seconds} s each", theta.len(), g.nodes.len(), g.steps, g.sequences);
        out!("  f            {:>12.3} µs", f * 1e6);
        out!(
            "  f′           {:>12.3} µs   ratio {:.2}  (target ≤ 2.5)",
            d1 * 1e6,
            d1 / f
        );
        out!(
            "  (f′, f″)     {:>12.3} µs   ratio {:.2}  (target ≤ 5)",
            d2 * 1e6,
            d2 / f
        );
        out!(
            "  ∇f           {:>12.3} µs   ratio {:.2}  (target ≤ 3)",
            gr * 1e6,
            gr / f
        );
    }
    Ok(EXIT_OK)
}
