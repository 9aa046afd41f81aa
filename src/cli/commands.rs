//! The commands: check, eval, diff, bench (printing lives here and in `cli::mod`).

use std::sync::Arc;

use mcopt::diag::Diags;
use mcopt::eval::Taylor;
use mcopt::plugin_host::{self, PluginSearch};
use mcopt::registry::Order;
use mcopt::session::bench::BenchRequest;
use mcopt::session::{self, certify, Direction, DirectionalRequest, EvalRequest, FormSpec, Point};
use mcopt::vars::{ShapeKind, VarSpec};
use serde_json::{json, Value};

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

pub fn check(model_path: &str, input: &InputArgs) -> Outcome {
    let s = Session::load(model_path, &input.inputs())?;
    let c = session::inspect(&s)?;
    if input.json {
        print_json(&serde_json::to_value(&c).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    out!("{model_path}: ok");
    out!("parameters θ: n = {}", c.n);
    for p in &c.params {
        out!("  {:<12} {:<14} {}", p.name, p.shape, p.size);
    }
    for d in &c.data {
        let batch = if d.batch { ", batch of sequences" } else { "" };
        out!("data {}: {} per step{batch}", d.name, d.step);
    }
    out!("layer declarations:");
    for l in &c.layer_declarations {
        let kind = if l.indexed {
            format!("indexed by time, base cases {:?}", l.bases)
        } else {
            "plain".to_owned()
        };
        out!("  {:<12} {:<14} {}", l.name, l.shape, kind);
    }
    match (&c.layers, &c.layer_groups, c.steps, c.sequences) {
        (Some(inst), Some(sizes), Some(steps), Some(sequences)) => {
            let fixed = c.layers_fixed.as_deref().unwrap_or_default();
            out!(
                "layers u_ℓ: L = {} (T = {steps}, N = {sequences}){}",
                inst.len(),
                fixed_note(inst.len(), fixed)
            );
            out!("  sizes N_ℓ: {}", sizes.join(", "));
        }
        _ => out!("layers u_ℓ: one per time step of the bound data (bind data to count them)"),
    }
    out!("objective: {} term(s)", c.terms.len());
    for t in &c.terms {
        out!("  {:+} × {}   [{}]", t.coef, t.text, t.class);
    }
    for note in &c.notes {
        out!("note: {note}");
    }
    Ok(EXIT_OK)
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

/// `--at FILE`, or the model's initial values.
fn point(at: Option<&str>) -> Point<'_> {
    at.map_or(Point::Initial, Point::File)
}

pub fn eval(model_path: &str, at: Option<&str>, gradient: bool, input: &InputArgs) -> Outcome {
    let s = Arc::new(Session::load(model_path, &input.inputs())?);
    let req = EvalRequest {
        ztol: input.ztol,
        gradient,
    };
    let e = session::evaluate(&s, &point(at), &req)?;
    let by_param = e.gradient.as_ref().map(|g| certify::split(&e.specs, g));
    if input.json {
        let mut v = json!({"value": e.value, "loss": e.loss, "test_loss": e.test_loss});
        if let Some(vals) = &by_param {
            let rows = e
                .specs
                .iter()
                .zip(vals)
                .map(|(sp, g)| (sp.name.clone(), as_rows(sp, g)));
            v["gradient"] = Value::Object(rows.collect());
        }
        print_json(&v);
        return Ok(EXIT_OK);
    }
    out!("value      {:.12}", e.value);
    if e.has_loss {
        out!("loss       {:.12}", e.loss);
    }
    if let Some(t) = e.test_loss {
        out!("test_loss  {t:.12}");
    }
    if let Some(vals) = &by_param {
        out!("gradient   (∇f by parameter, as a direction file for `mcopt diff --dir`):");
        for line in mcopt::config::write_point(&e.specs, vals).lines() {
            out!("  {line}");
        }
    }
    Ok(EXIT_OK)
}

/// Column-major values of `spec` as JSON: a number (1×1), an array (one column), or an array
/// of rows (a matrix, row-major).
fn as_rows(spec: &VarSpec, vals: &[f64]) -> Value {
    match spec.kind {
        ShapeKind::Scalar => json!(vals[0]),
        ShapeKind::Vector => json!(vals),
        ShapeKind::Matrix => (0..spec.rows)
            .map(|i| {
                json!((0..spec.cols)
                    .map(|j| vals[i + j * spec.rows])
                    .collect::<Vec<_>>())
            })
            .collect(),
    }
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
    let req = DirectionalRequest {
        form: match form {
            FormArg::P => FormSpec::P,
            _ => form_spec(form, beta)?,
        },
        order: if order == 2 { Order::Two } else { Order::One },
        ztol: input.ztol,
    };
    let r = session::directional(&s, &point(at), &Direction::File(dir), &req)?;
    print_diff(&r.taylor, r.exact.as_ref(), input);
    Ok(EXIT_OK)
}

/// The output of `mcopt diff`: the derivatives with the ztol used, and with ztol > 0 the exact
/// ones (`d1_exact`, `d2_exact`, `active_kinks_exact`).
fn print_diff(t: &Taylor, exact: Option<&Taylor>, input: &InputArgs) {
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

pub fn bench(
    model_path: &str,
    at: Option<&str>,
    dir: Option<&str>,
    random: Option<u64>,
    seconds: f64,
    input: &InputArgs,
) -> Outcome {
    let s = Arc::new(Session::load(model_path, &input.inputs())?);
    let req = BenchRequest {
        at: point(at),
        dir,
        random,
        seconds,
        ztol: input.ztol,
    };
    let r = session::bench::bench(&s, &req)?;
    if input.json {
        print_json(&serde_json::to_value(&r).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    let (f, d1, d2, gr) = (r.f_seconds, r.d1_seconds, r.d1d2_seconds, r.grad_seconds);
    out!("{model_path}: n = {}, {} nodes, T = {}, N = {}; median of at least {} blocks per quantity, {seconds} s each", r.n, r.nodes, r.steps, r.sequences, r.blocks);
    out!("  f            {:>12.3} µs", f * 1e6);
    out!(
        "  f′           {:>12.3} µs   ratio {:.2}  (target ≤ 2.5)",
        d1 * 1e6,
        r.ratio_d1
    );
    out!(
        "  (f′, f″)     {:>12.3} µs   ratio {:.2}  (target ≤ 5)",
        d2 * 1e6,
        r.ratio_d1d2
    );
    out!(
        "  ∇f           {:>12.3} µs   ratio {:.2}  (target ≤ 3)",
        gr * 1e6,
        r.ratio_grad
    );
    Ok(EXIT_OK)
}
