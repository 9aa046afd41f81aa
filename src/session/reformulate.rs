//! `mcopt reformulate` as data: the lifted (P0) or penalized (P1) problem of a model — its
//! variables z = (θ, u), its constraint or penalty blocks per layer group, the layer instances
//! that are not blocks, and the exact-penalty thresholds where mcopt computes them.

use serde_json::{json, Value};

use crate::config::Split;
use crate::diag::{Diag, Diags};
use crate::forms::{self, Lifted};
use crate::graph::Graph;
use crate::stationarity::Form;

use super::certify::{self, FormSpec};
use super::evaluate::require_graph;
use super::thresholds::{self, RnnThresholds};
use super::Session;

/// Which lifted problem: [`FormSpec::P0`] or [`FormSpec::P1`] with its β.
#[derive(Debug, Clone)]
pub struct ReformulateRequest {
    pub form: FormSpec,
}

/// The lifted problem of a model.
#[derive(Debug, Clone)]
pub struct Reformulated {
    /// [`Form::P0`] or [`Form::P1`].
    pub form: Form,
    pub n_theta: usize,
    pub n_u: usize,
    pub n_z: usize,
    /// The parameters, then one variable per layer group.
    pub variables: Vec<Variable>,
    /// One row per layer group: its constraint (P0) or penalty (P1) blocks.
    pub blocks: Vec<BlockGroup>,
    /// The layer instances that are not blocks (they do not depend on θ, like a constant `h[0]`).
    pub layers_fixed: Vec<String>,
    /// How many layer instances there are in all (`check`'s L).
    pub layers_all: usize,
    /// The exact-penalty thresholds of an Elman RNN with Tikhonov terms and bound data.
    pub thresholds: Option<RnnThresholds>,
}

/// A variable of z: a parameter, or a layer group with its instances (`h[1]` … `h[24]`).
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// Empty for a parameter.
    pub instances: Vec<String>,
    pub rows: usize,
    pub cols: usize,
    /// For a group lifted automatically (a kink of the objective outside the layers): the term
    /// it comes from.
    pub from: Option<Origin>,
}

/// The term of the model an automatically lifted group comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// `abs`, `max`, `min`, `norm1` or the piecewise function's name.
    pub term: String,
    /// 1-based line and column of the term in the model file.
    pub line: usize,
    pub column: usize,
    /// Byte offsets of the term in the model file.
    pub start: usize,
    pub end: usize,
    /// The term's text (at most one line, clipped).
    pub text: String,
}

impl Origin {
    fn of(source: &crate::diag::SourceFile, o: &forms::AutoOrigin) -> Origin {
        let text = &source.text;
        let start = o.span.start.min(text.len());
        let end = o.span.end.clamp(start, text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let term_text = text.get(start..end).unwrap_or_default();
        let first_line = term_text.lines().next().unwrap_or_default();
        Origin {
            term: o.term.clone(),
            line: source.line_of(start),
            column: text[line_start..start].chars().count() + 1,
            start,
            end,
            text: crate::text::clip(first_line).into_owned(),
        }
    }
}

impl Variable {
    pub fn is_param(&self) -> bool {
        self.instances.is_empty()
    }

    /// Entries of one instance.
    pub fn size(&self) -> usize {
        self.rows * self.cols
    }
}

/// The blocks of one layer group: how many, the size of each and in all, β in (P1).
#[derive(Debug, Clone)]
pub struct BlockGroup {
    pub group: String,
    pub blocks: usize,
    pub size: usize,
    pub entries: usize,
    pub beta: Option<f64>,
}

/// The lifted problem of the session's model on its training split.
pub fn reformulate(s: &Session, req: &ReformulateRequest) -> Result<Reformulated, Diags> {
    let graph = require_graph(s, Split::Train)?;
    let mode = match s.lift {
        crate::config::LiftChoice::Auto => forms::LiftMode::Auto,
        crate::config::LiftChoice::Layers => forms::LiftMode::Layers,
    };
    let lifted = forms::lift_with(&graph, &s.registry, mode);
    let (form, betas) = match &req.form {
        FormSpec::P0 => (Form::P0, None),
        FormSpec::P1(b) => {
            certify::check_betas(b, &lifted)?;
            (Form::P1, Some(b))
        }
        FormSpec::P => {
            return Err(Diag::new(
                "mcopt::cli::value",
                "expected the form p0 or p1 to reformulate, found p",
            )
            .help("(P) is the model itself: `mcopt check` prints its structure")
            .into())
        }
    };
    let data = match &s.data {
        Some(spec) => super::bind_data(&s.model, spec, &s.data_dir, Split::Train)?,
        None => Vec::new(),
    };
    let layout = &lifted.layout;
    let blocks = layout
        .groups
        .iter()
        .map(|g| BlockGroup {
            group: g.name.clone(),
            blocks: g.blocks.len(),
            size: layout.blocks[g.blocks[0]].len(),
            entries: g.blocks.iter().map(|&b| layout.blocks[b].len()).sum(),
            beta: betas.map(|b| b.of(&g.name)),
        })
        .collect();
    Ok(Reformulated {
        form,
        n_theta: layout.n_theta,
        n_u: layout.n_z - layout.n_theta,
        n_z: layout.n_z,
        variables: variables(&graph, &lifted),
        blocks,
        layers_fixed: fixed_layers(&graph, &lifted),
        layers_all: graph.layers.len(),
        thresholds: thresholds::elman(&s.model, &data),
    })
}

impl Reformulated {
    /// The JSON object of `mcopt reformulate --json`.
    pub fn to_json(&self) -> Value {
        let variables: Vec<Value> = self.variables.iter().map(|v| {
            if v.is_param() {
                json!({"name": v.name, "role": "parameter", "rows": v.rows, "cols": v.cols, "size": v.size()})
            } else if let Some(o) = &v.from {
                let from = json!({"term": o.term, "line": o.line, "column": o.column, "start": o.start, "end": o.end, "text": o.text});
                json!({"name": v.name, "role": "lifted", "instances": v.instances, "rows": v.rows, "cols": v.cols, "size": v.size(), "from": from})
            } else {
                json!({"name": v.name, "role": "layer", "instances": v.instances, "rows": v.rows, "cols": v.cols, "size": v.size()})
            }
        }).collect();
        let blocks: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| {
                let mut v = json!({"group": b.group, "blocks": b.blocks, "size": b.size, "entries": b.entries});
                if let Some(beta) = b.beta {
                    v["beta"] = json!(beta);
                }
                v
            })
            .collect();
        let thresholds = self.thresholds.as_ref().map(|t| {
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
        let kind = match self.form {
            Form::P0 => "constraints",
            _ => "penalties",
        };
        json!({
            "form": self.form.as_str(),
            "n_theta": self.n_theta,
            "n_u": self.n_u,
            "n_z": self.n_z,
            "variables": variables,
            kind: blocks,
            "layers_fixed": self.layers_fixed,
            "thresholds": thresholds,
        })
    }
}

/// The layer instances of `graph` that are not blocks of `lifted` (a constant `h[0]`).
fn fixed_layers(graph: &Graph, lifted: &Lifted) -> Vec<String> {
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

fn variables(graph: &Graph, lifted: &Lifted) -> Vec<Variable> {
    let params = graph.params.iter().map(|p| Variable {
        name: p.name.clone(),
        instances: Vec::new(),
        rows: p.shape.rows,
        cols: p.shape.cols,
        from: None,
    });
    let layers = lifted.layout.groups.iter().map(|g| {
        let b = &lifted.layout.blocks[g.blocks[0]];
        Variable {
            name: g.name.clone(),
            instances: g
                .blocks
                .iter()
                .map(|&i| lifted.layout.blocks[i].name.clone())
                .collect(),
            rows: b.rows,
            cols: b.cols,
            from: b.origin.as_ref().map(|o| Origin::of(&graph.source, o)),
        }
    });
    params.chain(layers).collect()
}
