//! `mcopt check` as data: the multicomposite structure of a checked model ([`CheckSummary`]) —
//! parameters, data, layer declarations and, when the model can be lowered, its layer
//! instances — which the command line prints as text or JSON (serialized as it is).

use serde::Serialize;

use crate::check::{LayerBody, Model, TermClass};
use crate::config::Split;
use crate::diag::Diags;
use crate::graph::Graph;

use super::Session;

/// The structure `mcopt check` prints; its JSON object is this struct serialized.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    /// The model file.
    pub model: String,
    /// The number of parameters n = dim θ.
    pub n: usize,
    pub params: Vec<ParamRow>,
    pub layer_declarations: Vec<LayerRow>,
    pub data: Vec<DataRow>,
    /// Layer instances u_ℓ with their sizes (when data are bound or the model has none).
    pub layers: Option<Vec<LayerInstance>>,
    /// Layer sizes grouped by name and runs of time steps: `h[0..393]: 20`.
    pub layer_groups: Option<Vec<String>>,
    #[serde(rename = "L")]
    pub l: Option<usize>,
    #[serde(rename = "L_depending_on_theta")]
    pub l_depending_on_theta: Option<usize>,
    /// The instances that do not depend on θ (a constant base case `h[0]`): counted in L, but
    /// not blocks of (P0)/(P1).
    pub layers_fixed: Option<Vec<String>>,
    pub steps: Option<usize>,
    pub sequences: Option<usize>,
    pub terms: Vec<TermRow>,
    pub notes: Vec<String>,
}

/// One parameter: name, shape (`mat(4, 3)`) and number of entries.
#[derive(Debug, Clone, Serialize)]
pub struct ParamRow {
    pub name: String,
    pub shape: String,
    pub size: usize,
}

/// One layer declaration: plain, or indexed by time with the steps of its base cases.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    pub name: String,
    pub shape: String,
    pub indexed: bool,
    pub bases: Vec<u64>,
}

/// One data declaration: its shape per step and whether it is a batch of sequences.
#[derive(Debug, Clone, Serialize)]
pub struct DataRow {
    pub name: String,
    pub step: String,
    pub batch: bool,
}

/// One layer instance of the lowered graph (`h[3]`) and its number of entries.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInstance {
    pub name: String,
    pub size: usize,
}

/// One objective term: coefficient, source text and class (loss, Tikhonov, parameters only).
#[derive(Debug, Clone, Serialize)]
pub struct TermRow {
    pub coef: f64,
    pub text: String,
    pub class: String,
}

/// The structure of the session's model; the graph of the training split is lowered when the
/// model is not sequential or data are bound.
pub fn inspect(s: &Session) -> Result<CheckSummary, Diags> {
    let graph = if !s.model.is_sequential() || s.data.is_some() {
        s.graph(Split::Train)?
    } else {
        None
    };
    let m = &s.model;
    let instances: Option<Vec<LayerInstance>> = graph.as_ref().map(|g| {
        g.layers
            .iter()
            .map(|l| LayerInstance {
                name: l.name.clone(),
                size: g.node(l.node).rows,
            })
            .collect()
    });
    let fixed: Option<Vec<String>> = graph.as_ref().map(fixed_layers);
    Ok(CheckSummary {
        model: s.model_path.clone(),
        n: m.n_params(),
        params: m
            .params
            .iter()
            .map(|p| ParamRow {
                name: p.name.clone(),
                shape: p.shape.to_string(),
                size: p.shape.len(),
            })
            .collect(),
        layer_declarations: m
            .layers
            .iter()
            .map(|l| LayerRow {
                name: l.name.clone(),
                shape: l.shape.to_string(),
                indexed: l.body.is_indexed(),
                bases: bases(&l.body),
            })
            .collect(),
        data: m
            .data
            .iter()
            .map(|d| DataRow {
                name: d.name.clone(),
                step: d.shape.to_string(),
                batch: d.batch.is_some(),
            })
            .collect(),
        layer_groups: instances.as_deref().map(group_sizes),
        l: instances.as_ref().map(Vec::len),
        l_depending_on_theta: instances
            .as_ref()
            .zip(fixed.as_ref())
            .map(|(i, f)| i.len() - f.len()),
        layers: instances,
        layers_fixed: fixed,
        steps: graph.as_ref().map(|g| g.steps),
        sequences: graph.as_ref().map(|g| g.sequences),
        terms: terms(m),
        notes: m.notes.iter().map(|(_, n)| n.clone()).collect(),
    })
}

/// The layer instances of `g` that do not depend on θ (a constant base case `h[0]`), in order.
fn fixed_layers(g: &Graph) -> Vec<String> {
    let lifted = crate::forms::lifted_layers(g);
    g.layers
        .iter()
        .enumerate()
        .filter(|(i, _)| lifted.binary_search(i).is_err())
        .map(|(_, l)| l.name.clone())
        .collect()
}

/// Steps `first..=last` (none for a plain layer) of one layer name with one size.
type SizeRun = (Option<(u64, u64)>, usize);

/// Layer sizes with runs of time steps grouped per layer name, in order of first
/// appearance: `h[0..393]: 20, u[1..393]: 20, v[1..393]: 1`.
fn group_sizes(layers: &[LayerInstance]) -> Vec<String> {
    // Per base name: runs of (first step, last step, size); plain layers have no step.
    let mut order: Vec<&str> = Vec::new();
    let mut runs: std::collections::HashMap<&str, Vec<SizeRun>> = std::collections::HashMap::new();
    for LayerInstance { name, size } in layers {
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

fn terms(m: &Model) -> Vec<TermRow> {
    m.terms
        .iter()
        .map(|t| TermRow {
            coef: t.coef,
            text: m
                .source
                .text
                .get(t.expr.span.start..t.expr.span.end)
                .unwrap_or("")
                .to_owned(),
            class: match t.class {
                TermClass::Loss => "loss (outer function g)".to_owned(),
                TermClass::Tikhonov { param } => format!("Tikhonov on {}", m.params[param].name),
                TermClass::Other => "parameters only".to_owned(),
            },
        })
        .collect()
}
