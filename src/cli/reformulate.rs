//! `mcopt reformulate`: the lifted (P0) or penalized (P1) problem of a model — its variables,
//! its constraint or penalty blocks, and the exact-penalty thresholds where mcopt computes them.

use clap::Args as ClapArgs;
use mcopt::config::RunFile;
use mcopt::diag::Diags;
use mcopt::session::reformulate::{reformulate, ReformulateRequest, Reformulated};
use mcopt::session::{FormSpec, Session};
use mcopt::stationarity::Form;
use serde_json::json;

use super::stationarity::parse_betas;
use super::{InputArgs, EXIT_OK};

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

pub fn run(model: &str, run: Option<&RunFile>, a: &Args) -> Result<u8, Diags> {
    let s = Session::open(model, &a.input.inputs(), run)?;
    let form = match a.form {
        LiftedForm::P0 => FormSpec::P0,
        LiftedForm::P1 => FormSpec::P1(parse_betas(&a.beta, 1.0)?),
    };
    let r = reformulate(&s, &ReformulateRequest { form })?;
    if a.input.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&r.to_json()).unwrap_or_default()
        );
        return Ok(EXIT_OK);
    }
    print_text(&r);
    Ok(EXIT_OK)
}

fn print_text(r: &Reformulated) {
    let title = match r.form {
        Form::P0 => "(P0) minimize F(z) = g(u) + Tikhonov  subject to  u_ℓ = ψ_{ℓ−1}(θ, u_<ℓ)",
        _ => "(P1) minimize Θ(z) = F(z) + Σ_ℓ β_ℓ ‖u_ℓ − ψ_{ℓ−1}(θ, u_<ℓ)‖₁",
    };
    out!("{title}");
    out!(
        "variables z = (θ, u): n_θ = {}, n_u = {}, n_z = {}",
        r.n_theta,
        r.n_u,
        r.n_z
    );
    for v in &r.variables {
        let shape = format!("{}×{}", v.rows, v.cols);
        if v.is_param() {
            out!("  θ  {:<12} {shape:<8} {}", v.name, v.size());
            continue;
        }
        let inst = v.instances.len();
        let range = match (v.instances.first(), v.instances.last()) {
            (Some(a), Some(b)) if inst > 1 => format!("{a} … {b}"),
            (Some(a), _) => a.to_string(),
            _ => String::new(),
        };
        let from = v
            .from
            .as_ref()
            .map(|o| {
                format!(
                    "  lifted from `{}` at {}:{}: {}",
                    o.term, o.line, o.column, o.text
                )
            })
            .unwrap_or_default();
        out!(
            "  u  {:<12} {shape:<8} {} × {inst}  ({range}){from}",
            v.name,
            v.size()
        );
    }
    let total: usize = r.blocks.iter().map(|b| b.blocks).sum();
    let what = if r.variables.iter().any(|v| v.from.is_some()) {
        "one per layer instance depending on θ, and for each kink of the objective outside the layers its argument and value, lifted automatically (`lift: auto`)"
    } else {
        "one per layer instance depending on θ"
    };
    match r.form {
        Form::P0 => out!("constraint blocks: {total} ({what})"),
        _ => out!("penalty blocks: {total} ({what})"),
    }
    for b in &r.blocks {
        let beta = b
            .beta
            .map(|x| format!("  β = {}", json!(x)))
            .unwrap_or_default();
        out!(
            "  {:<12} {} blocks of {} = {} entries{beta}",
            b.group,
            b.blocks,
            b.size,
            b.entries
        );
    }
    if !r.layers_fixed.is_empty() {
        // `check` counts these in L: say so, so that the two counts say what they count.
        out!(
            "  not a block: {} (does not depend on θ; `check` counts all {} instances in L)",
            super::commands::name_list(&r.layers_fixed),
            r.layers_all
        );
    }
    match &r.thresholds {
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
