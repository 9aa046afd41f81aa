//! The exact-penalty thresholds of docs/math.md §4 where mcopt can compute them: the authors' β₁, β₂
//! bounds for an Elman RNN (a layer that reads itself at t − 1 through a weight matrix W, and
//! an output layer that reads it at t through A), in log space so that a long sequence's γ₁
//! is reported as an overflow instead of `inf`.

use crate::check::{Binary, CExpr, CKind, LayerBody, Model, TermClass, TimeRef};
use crate::graph::SeqData;

/// β₁ > 2 γ₁ γ_y / √(λ₁ N T), β₂ > 2 √(γ_y / (N T)), γ_y = (1/(N T)) Σ ‖y_t‖²,
/// γ₁ = Σ_{s=0}^{T−1} (γ_y / λ₂)^{s/2}.
#[derive(Debug, Clone, PartialEq)]
pub struct RnnThresholds {
    /// The recurrent weight W (λ₂ weights ‖W‖²), the output weight A (λ₁), the hidden layer h
    /// and the target data y.
    pub recurrent: String,
    pub output: String,
    pub hidden: String,
    pub target: String,
    pub lambda1: f64,
    pub lambda2: f64,
    pub steps: usize,
    pub sequences: usize,
    pub gamma_y: f64,
    /// log₁₀ γ₁, always finite; `gamma1` is `None` when γ₁ overflows f64.
    pub log10_gamma1: f64,
    pub gamma1: Option<f64>,
    pub log10_beta1: f64,
    pub beta1: Option<f64>,
    pub beta2: f64,
}

/// The thresholds of an Elman RNN, if the model is one (with Tikhonov terms on W and A) and
/// its data are bound (`data` in declaration order).
pub fn elman(model: &Model, data: &[SeqData]) -> Option<RnnThresholds> {
    let mut w = None;
    let mut a = None;
    for layer in &model.layers {
        let LayerBody::Indexed {
            general: Some(body),
            ..
        } = &layer.body
        else {
            continue;
        };
        visit(body, &mut |e| {
            if let CKind::Binary(Binary::MatMul, l, r) = &e.kind {
                if let (CKind::Param(p), CKind::Layer { id, time }) = (&l.kind, &r.kind) {
                    match time {
                        TimeRef::Rel(1) => w = Some((*p, *id)),
                        TimeRef::Rel(0) => a = Some((*p, *id)),
                        _ => {}
                    }
                }
            }
        });
    }
    let ((wp, h), (ap, h2)) = (w?, a?);
    if h != h2 {
        return None;
    }
    let lambda = |p: usize| {
        model
            .terms
            .iter()
            .find(|t| t.class == TermClass::Tikhonov { param: p })
            .map(|t| t.coef)
    };
    let (lambda1, lambda2) = (lambda(ap)?, lambda(wp)?);
    let target = target_data(model)?;
    let y = data.get(target)?;
    let (steps, sequences) = (y.steps, y.sequences.max(1));
    let nt = (steps * sequences) as f64;
    if nt == 0.0 {
        return None;
    }
    let gamma_y = y.values.iter().map(|v| v * v).sum::<f64>() / nt;
    // log γ₁ = log Σ_s e^{s q}, q = ½ ln(γ_y / λ₂), by log-sum-exp.
    let q = 0.5 * (gamma_y / lambda2).ln();
    let top = if q > 0.0 {
        (steps as f64 - 1.0) * q
    } else {
        0.0
    };
    let sum: f64 = (0..steps).map(|s| (s as f64 * q - top).exp()).sum();
    let ln_gamma1 = top + sum.ln();
    let ln10 = std::f64::consts::LN_10;
    let log10_gamma1 = ln_gamma1 / ln10;
    let log10_beta1 = 2f64.log10() + log10_gamma1 + gamma_y.log10() - 0.5 * (lambda1 * nt).log10();
    let finite = |l: f64| {
        let v = 10f64.powf(l);
        v.is_finite().then_some(v)
    };
    Some(RnnThresholds {
        recurrent: model.params[wp].name.clone(),
        output: model.params[ap].name.clone(),
        hidden: model.layers[h].name.clone(),
        target: model.data[target].name.clone(),
        lambda1,
        lambda2,
        steps,
        sequences,
        gamma_y,
        log10_gamma1,
        gamma1: finite(log10_gamma1),
        log10_beta1,
        beta1: finite(log10_beta1),
        beta2: 2.0 * (gamma_y / nt).sqrt(),
    })
}

/// The data read by the loss but by no layer (the targets y).
fn target_data(model: &Model) -> Option<usize> {
    let mut in_layers = vec![false; model.data.len()];
    let mut mark = |e: &CExpr| {
        if let CKind::Data { id, .. } = e.kind {
            in_layers[id] = true;
        }
    };
    for l in &model.layers {
        match &l.body {
            LayerBody::Plain(e) => visit(e, &mut mark),
            LayerBody::Indexed { bases, general } => {
                for (_, e) in bases {
                    visit(e, &mut mark);
                }
                if let Some(e) = general {
                    visit(e, &mut mark);
                }
            }
        }
    }
    let mut found = None;
    for t in model.terms.iter().filter(|t| t.class == TermClass::Loss) {
        visit(&t.expr, &mut |e| {
            if let CKind::Data { id, .. } = e.kind {
                if !in_layers[id] {
                    found = Some(id);
                }
            }
        });
    }
    found
}

fn visit(e: &CExpr, f: &mut impl FnMut(&CExpr)) {
    f(e);
    match &e.kind {
        CKind::Unary(_, a)
        | CKind::Call { arg: a, .. }
        | CKind::Element { base: a, .. }
        | CKind::Gather { base: a, .. } => visit(a, f),
        CKind::TimeReduce { body, .. } => visit(body, f),
        CKind::Binary(_, a, b) => {
            visit(a, f);
            visit(b, f);
        }
        CKind::Literal(_) | CKind::Param(_) | CKind::Data { .. } | CKind::Layer { .. } => {}
    }
}
