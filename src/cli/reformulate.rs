//! `mcopt reformulate`: the lifted (P0) or penalized (P1) problem of a model — its variables,
//! its constraint or penalty blocks, and the exact-penalty thresholds where mcopt computes them.

use clap::Args as ClapArgs;
use mcopt::config::Split;
use mcopt::diag::{Diag, Diags};
use mcopt::forms::{self, Lifted};
use mcopt::session;
use mcopt::session::{certify, thresholds};
use serde_json::{json, Value};

use super::stationarity::parse_betas;
use super::{InputArgs, EXIT_OK};
use mcopt::session::Session;
use mcopt::stationarity::Form;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Model file (.mco); may be omitted when the run file (--config) names one.
    pub model: Option<String>,
    /// p0: lifted, one constraint block per layer instance; p1: ℓ1 penalty of the same blocks.
    #[arg(long, value_enum)]
    pub form: LiftedForm,
    /// Penalty weight of (P1): B for every layer, or NAME=B for one layer group; repeatable.
    #[arg(long = "beta", value_name = "B|NAME=B")]
    pub beta: Vec<String>,
    #[command(flatten)]
    pub input: InputArgs,
}

/// The forms `reformulate` writes out.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiftedForm {
    P0,
    P1,
}

pub fn run(model: &str, a: &Args) -> Result<u8, Diags> {
    let s = Session::load(model, &a.input.inputs())?;
    let graph = s.graph(Split::Train)?.ok_or_else(|| {
        Diags::from(
            Diag::new("mcopt::data::unbound", "no data are bound for this split")
                .in_file(&s.model_path),
        )
    })?;
    let form = match a.form {
        LiftedForm::P0 => Form::P0,
        LiftedForm::P1 => Form::P1,
    };
    let lifted = forms::lift(&graph);
    let betas = parse_betas(&a.beta, 1.0)?;
    certify::check_betas(&betas, &lifted)?;
    let data = match &s.data {
        Some(spec) => session::bind_data(&s.model, spec, &s.data_dir, Split::Train)?,
        None => Vec::new(),
    };
    let th = thresholds::elman(&s.model, &data);
    let variables = variables(&graph, &lifted);
    let blocks: Vec<Value> = lifted
        .layout
        .groups
        .iter()
        .map(|g| {
            let first = &lifted.layout.blocks[g.blocks[0]];
            let entries: usize = g
                .blocks
                .iter()
                .map(|&b| lifted.layout.blocks[b].len())
                .sum();
            let mut v = json!({
                "group": g.name,
                "blocks": g.blocks.len(),
                "size": first.len(),
                "entries": entries,
            });
            if form == Form::P1 {
                v["beta"] = json!(betas.of(&g.name));
            }
            v
        })
        .collect();
    let threshold_json = th.as_ref().map(|t| {
        json!({
            "model": "elman_rnn",
            "recurrent": t.recurrent, "output": t.output, "hidden": t.hidden, "target": t.target,
            "lambda1": t.lambda1, "lambda2": t.lambda2, "steps": t.steps, "sequences": t.sequences,
            "gamma_y": t.gamma_y,
            "gamma1": t.gamma1, "log10_gamma1": t.log10_gamma1, "gamma1_overflow": t.gamma1.is_none(),
            "beta1": t.beta1, "log10_beta1": t.log10_beta1, "beta1_overflow": t.beta1.is_none(),
            "beta2": t.beta2,
        })
    });
    let kind = if form == Form::P0 {
        "constraints"
    } else {
        "penalties"
    };
    if a.input.json {
        let v = json!({
            "form": form.as_str(),
            "n_theta": lifted.layout.n_theta,
            "n_u": lifted.layout.n_z - lifted.layout.n_theta,
            "n_z": lifted.layout.n_z,
            "variables": variables,
            kind: blocks,
            "layers_fixed": fixed_layers(&graph, &lifted),
            "thresholds": threshold_json,
        });
        out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    let fixed = Fixed {
        names: fixed_layers(&graph, &lifted),
        all: graph.layers.len(),
    };
    print_text(form, &lifted, &variables, &blocks, &fixed, th.as_ref());
    Ok(EXIT_OK)
}

/// The layer instances that are not blocks, and how many instances there are in all.
struct Fixed {
    names: Vec<String>,
    all: usize,
}

/// The layer instances of `graph` that are not blocks of `lifted` (a constant `h[0]`).
fn fixed_layers(graph: &mcopt::graph::Graph, lifted: &Lifted) -> Vec<String> {
    let blocks: std::collections::HashSet<&str> = lifted
        .layout
        .blocks
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    graph
        .layers
        .iter()
        .filter(|l| !blocks.contains(l.name.as_str()))
        .map(|l| l.name.clone())
        .collect()
}

fn variables(graph: &mcopt::graph::Graph, lifted: &Lifted) -> Vec<Value> {
    let params = graph.params.iter().map(|p| {
        json!({"name": p.name, "role": "parameter", "rows": p.shape.rows, "cols": p.shape.cols, "size": p.shape.len()})
    });
    let layers = lifted.layout.groups.iter().map(|g| {
        let b = &lifted.layout.blocks[g.blocks[0]];
        let names: Vec<&str> = g.blocks.iter().map(|&i| lifted.layout.blocks[i].name.as_str()).collect();
        json!({"name": g.name, "role": "layer", "instances": names, "rows": b.rows, "cols": b.cols, "size": b.len()})
    });
    params.chain(layers).collect()
}

fn print_text(
    form: Form,
    lifted: &Lifted,
    variables: &[Value],
    blocks: &[Value],
    fixed: &Fixed,
    th: Option<&thresholds::RnnThresholds>,
) {
    let l = &lifted.layout;
    let title = match form {
        Form::P0 => "(P0) minimize F(z) = g(u) + Tikhonov  subject to  u_ℓ = ψ_{ℓ−1}(θ, u_<ℓ)",
        _ => "(P1) minimize Θ(z) = F(z) + Σ_ℓ β_ℓ ‖u_ℓ − ψ_{ℓ−1}(θ, u_<ℓ)‖₁",
    };
    out!("{title}");
    out!(
        "variables z = (θ, u): n_θ = {}, n_u = {}, n_z = {}",
        l.n_theta,
        l.n_z - l.n_theta,
        l.n_z
    );
    for v in variables {
        let shape = format!("{}×{}", v["rows"], v["cols"]);
        match v["role"].as_str() {
            Some("parameter") => out!(
                "  θ  {:<12} {shape:<8} {}",
                v["name"].as_str().unwrap_or(""),
                v["size"]
            ),
            _ => {
                let inst = v["instances"].as_array().map_or(0, Vec::len);
                let range = match (
                    v["instances"][0].as_str(),
                    v["instances"][inst.saturating_sub(1)].as_str(),
                ) {
                    (Some(a), Some(b)) if inst > 1 => format!("{a} … {b}"),
                    (Some(a), _) => a.to_string(),
                    _ => String::new(),
                };
                out!(
                    "  u  {:<12} {shape:<8} {} × {inst}  ({range})",
                    v["name"].as_str().unwrap_or(""),
                    v["size"]
                );
            }
        }
    }
    let total: usize = l.blocks.len();
    match form {
        Form::P0 => out!("constraint blocks: {total} (one per layer instance depending on θ)"),
        _ => out!("penalty blocks: {total} (one per layer instance depending on θ)"),
    }
    for b in blocks {
        let beta = b
            .get("beta")
            .map(|x| format!("  β = {x}"))
            .unwrap_or_default();
        out!(
            "  {:<12} {} blocks of {} = {} entries{beta}",
            b["group"].as_str().unwrap_or(""),
            b["blocks"],
            b["size"],
            b["entries"]
        );
    }
    if !fixed.names.is_empty() {
        // `check` counts these in L: say so, so that the two counts say what they count.
        out!(
            "  not a block: {} (does not depend on θ; `check` counts all {} instances in L)",
            super::commands::name_list(&fixed.names),
            fixed.all
        );
    }
    match th {
        None => out!("penalty thresholds: not computed (mcopt computes them for Elman RNNs with Tikhonov terms on W and A and bound data)"),
        Some(t) => {
            out!("penalty thresholds (Elman RNN: W = {}, A = {}, h = {}, y = {}; N = {}, T = {}):", t.recurrent, t.output, t.hidden, t.target, t.sequences, t.steps);
            out!("  γ_y = {:.6e}   λ₁ = {:.6e}   λ₂ = {:.6e}", t.gamma_y, t.lambda1, t.lambda2);
            match t.gamma1 {
                Some(g) => out!("  γ₁  = {g:.6e}"),
                None => out!("  γ₁  = 10^{:.3} (overflows f64)", t.log10_gamma1),
            }
            match t.beta1 {
                Some(b) => out!("  β₁  > {b:.6e}"),
                None => out!("  β₁  > 10^{:.3} (overflows f64)", t.log10_beta1),
            }
            out!("  β₂  > {:.6e}", t.beta2);
        }
    }
}
