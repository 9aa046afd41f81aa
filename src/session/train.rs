//! The parts of `mcopt train` below the command line: the solver and its options from the run
//! file, β of (P1) from the form, the memory check of the lifted problem, the starting point,
//! the batches and thread halves of the data, and the final certificate of the trained point.

use std::path::Path;

use crate::config::{self, InitSpec, RunFile, Split};
use crate::diag::{Diag, Diags};
use crate::forms::{self, Betas, Lifted};
use crate::graph::{self, Graph, LowerOptions};
use crate::registry::{OptionValue, Order, Registry, SolverId};
use crate::solve::batch::select_sequences;
use crate::solve::{initial_point, Batcher, Scheme, Status};

use mcopt_plugin_sdk::abi::PROBLEM_CAP_STRUCTURE;

use super::{certify, CertifyRequest, FormSpec, Session};

pub type SolverOptions = (SolverId, Vec<f64>, Vec<(String, f64)>);

/// Refuses a lifted problem whose structure would need more memory than `limit` (or, without
/// one, than this process can still take), before any of it is allocated: a diagnostic with the
/// bytes needed, the largest parts and the ways to need fewer. A model the linearizer cannot
/// handle passes here and is reported by the linearizer.
pub fn p1_memory(lifted: &Lifted, limit: Option<u64>, model_path: &str) -> Result<(), Diags> {
    use crate::memory::{available, bytes_shown};
    let Ok(est) = forms::linearize::memory::estimate(lifted) else {
        return Ok(());
    };
    let (limit, source) = match limit {
        Some(l) => (l, "--memory-limit"),
        None => match available() {
            Some(a) => (a, "the memory available (MemAvailable, cgroup memory.max)"),
            None => return Ok(()),
        },
    };
    let needed = est.total();
    if needed <= limit {
        return Ok(());
    }
    let parts: Vec<String> = est
        .parts
        .iter()
        .take(3)
        .map(|(what, b)| format!("{what} {}", bytes_shown(*b)))
        .collect();
    Err(Diag::new(
        "crate::train::memory",
        format!(
            "the lifted problem needs about {} but {source} is {}: z has {} entries, J {} stored entries, the KKT factor about {} values; largest: {}",
            bytes_shown(needed),
            bytes_shown(limit),
            est.n_z,
            est.jac_nnz,
            est.factor_nnz,
            parts.join(", ")
        ),
    )
    .in_file(model_path)
    .help(
        "fewer or shorter training sequences (the lifted entries grow with sequences × steps × layer sizes), smaller layers or fewer parameters (the KKT factor grows with residual rows × parameters), or a solver that does not lift (adam, gd); --memory-limit BYTES sets the limit",
    )
    .into())
}

/// The bytes that identify the model of a run in its checkpoint: its text, and the
/// `--const` values when there are any (a checkpoint of another `tau` is not resumed).
pub fn model_identity(session: &Session, consts: &[String]) -> Vec<u8> {
    let mut bytes = session.model.source.text.as_bytes().to_vec();
    for c in consts {
        bytes.extend_from_slice(b"\n--const ");
        bytes.extend_from_slice(c.as_bytes());
    }
    bytes
}

/// The certificate of the trained point in the form, order and tolerance of the run file's
/// `validate:` (default: (P), first order), in (P1) with the form's β (`betas`, the same the
/// solver used); none for an interrupted run.
pub fn final_certificate(
    session: &Session,
    run: &RunFile,
    status: Status,
    params: &Path,
    betas: Option<Betas>,
) -> Result<Option<serde_json::Value>, Diags> {
    if matches!(status, Status::Interrupted | Status::Diverged) {
        return Ok(None);
    }
    let v = &run.validate;
    let req = CertifyRequest {
        tol: v.stationarity_tol,
        ztol: run.ztol,
        ..CertifyRequest::new(
            FormSpec::of(v.form, betas.unwrap_or_else(|| Betas::uniform(1.0))),
            if v.order.number() == 2 {
                Order::Two
            } else {
                Order::One
            },
        )
    };
    // A stop signal during the certificate stops it (`interrupted`); everything is written.
    let params = params.display().to_string();
    let (prep, cert) = certify::certify(
        session,
        &req,
        Some(&params),
        Some(crate::signals::install()),
    )?;
    Ok(Some(crate::report::json::certificate(
        prep.form,
        &cert,
        &prep.specs,
    )))
}

/// The form's β checked against the lifted layer groups (a group not named gets 1).
pub fn form_betas(
    lifted: &Lifted,
    spec: &config::BetaSpec,
    span: crate::diag::Span,
    run: &RunFile,
) -> Result<Betas, Diags> {
    match spec {
        config::BetaSpec::All(b) => Ok(Betas::uniform(*b)),
        config::BetaSpec::ByLayer(m) => {
            let groups = lifted.layout.group_names();
            let mut betas = Betas::uniform(1.0);
            let mut diags = Diags::new();
            for (name, b) in m {
                if lifted.layout.group(name).is_some() {
                    betas.per_group.insert(name.clone(), *b);
                } else {
                    diags.push(
                        Diag::new(
                            "crate::config::value",
                            format!("`form.p1.beta` names `{name}`, which is not a lifted layer of the model"),
                        )
                        .at(&run.source, span, "here")
                        .help(format!(
                            "{}the lifted layers are {}",
                            crate::text::did_you_mean(name, &groups),
                            groups.join(", ")
                        )),
                    );
                }
            }
            diags.finish(betas)
        }
    }
}

/// The run file's span of the solver option `beta` (else the solver's name).
pub fn beta_span(run: &RunFile) -> crate::diag::Span {
    let spec = run.solver.as_ref();
    spec.and_then(|s| s.option_spans.get("beta").copied())
        .or(spec.map(|s| s.name_span))
        .unwrap_or_else(|| run.source.line_span(1))
}

/// `beta` given per layer name, as a mapping: checked here (every value finite and > 0) and
/// taken out of the options the solver's schema checks (where `beta` is one number).
pub fn beta_mapping(
    run: &RunFile,
    spec: &crate::config::SolverSpec,
) -> Result<Vec<(String, f64)>, Diags> {
    let Some(serde_json::Value::Object(map)) = spec.options.get("beta") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut diags = Diags::new();
    for (name, v) in map {
        match v.as_f64() {
            Some(b) if b.is_finite() && b > 0.0 => out.push((name.clone(), b)),
            _ => diags.push(
                Diag::new(
                    "crate::train::option",
                    format!("`beta` of layer `{name}` must be a finite number > 0, not {v}"),
                )
                .at(&run.source, beta_span(run), "this option"),
            ),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// The solver named in the run file and its option values, or diagnostics at the run file's
/// lines (unknown solver with the known ones and the nearest; unknown, ill-typed or
/// out-of-range options).
pub fn solver_and_options(registry: &Registry, run: &RunFile) -> Result<SolverOptions, Diags> {
    let Some(spec) = &run.solver else {
        return Err(
            Diag::new("crate::train::no_solver", "the run file names no solver")
                .at(&run.source, run.source.line_span(1), "`solver` expected")
                .help(format!(
                    "add `solver: {{name: adam}}`; known solvers: {}",
                    registry.solver_names().join(", ")
                ))
                .into(),
        );
    };
    let Some(id) = registry.solver(&spec.name) else {
        let names = registry.solver_names();
        return Err(Diag::new("crate::train::unknown_solver", format!("unknown solver `{}`", spec.name))
            .at(&run.source, spec.name_span, "not a known solver")
            .help(format!("{}known solvers: {} (a solver from another plugin needs `plugins:` in the run file or --plugin)", crate::text::did_you_mean(&spec.name, &names), names.join(", ")))
            .into());
    };
    let info = registry.solver_info(id);
    let has_beta = info.options.iter().any(|o| o.name == "beta");
    let by_layer = if has_beta {
        beta_mapping(run, spec)?
    } else {
        Vec::new()
    };
    let given: Vec<(String, OptionValue)> = spec
        .options
        .iter()
        .filter(|(k, v)| !(has_beta && k.as_str() == "beta" && v.is_object()))
        .map(|(k, v)| (k.clone(), option_value(v)))
        .collect();
    match info.resolve_options(&given) {
        Ok(values) => Ok((id, values, by_layer)),
        Err(problems) => {
            let mut diags = Diags::new();
            for p in problems {
                let span = spec
                    .option_spans
                    .get(&p.option)
                    .copied()
                    .unwrap_or(spec.name_span);
                let mut d = Diag::new("crate::train::option", p.message).at(
                    &run.source,
                    span,
                    "this option",
                );
                if let Some(h) = p.help {
                    d = d.help(h);
                }
                diags.push(d);
            }
            Err(diags)
        }
    }
}

pub fn option_value(v: &serde_json::Value) -> OptionValue {
    use serde_json::Value as J;
    match v {
        J::Bool(b) => OptionValue::Bool(*b),
        J::Number(n) => n.as_f64().map_or(
            OptionValue::Other("a number out of range"),
            OptionValue::Number,
        ),
        J::String(s) => OptionValue::Text(s.clone()),
        J::Array(_) => OptionValue::Other("a list"),
        J::Object(_) => OptionValue::Other("a mapping"),
        J::Null => OptionValue::Other("nothing"),
    }
}

/// The training sequences in two halves with weights Nᵢ / N, for a gradient on two threads,
/// when MCOPT_THREADS ≥ 2, there are several sequences, no minibatches and the objective is a mean
/// over sequences (see [`crate::solve::splittable`]); empty otherwise.
pub fn thread_split(
    session: &Session,
    run: &RunFile,
    train: &Graph,
) -> Result<Vec<(Graph, f64)>, Diags> {
    let n = train.sequences;
    // Opt-in with MCOPT_THREADS=2: measured on a loaded 2-core machine the split was slower
    // than one thread (each half still streams W once per step), so it is off by default.
    let cores = std::env::var("MCOPT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    let batched = run.solver.as_ref().is_some_and(|s| s.batch.is_some());
    if n < 2 || cores < 2 || batched || !crate::solve::splittable(&session.model) {
        return Ok(Vec::new());
    }
    let Some(spec) = &session.data else {
        return Ok(Vec::new());
    };
    let data = crate::session::bind_data(&session.model, spec, &session.data_dir, Split::Train)?;
    let mid = n / 2;
    let mut parts = Vec::new();
    for range in [0..mid, mid..n] {
        let w = range.len() as f64 / n as f64;
        let part: Vec<_> = data
            .iter()
            .map(|d| select_sequences(d, range.clone()))
            .collect();
        parts.push((
            graph::lower(&session.model, &LowerOptions { data: part })?,
            w,
        ));
    }
    Ok(parts)
}

/// The minibatch drawer of `solver.batch`, checked against the bound training data.
pub fn batcher<'s>(
    session: &'s Session,
    run: &RunFile,
    seed: u64,
) -> Result<Option<Batcher<'s>>, Diags> {
    let Some(spec) = &run.solver else {
        return Ok(None);
    };
    let Some(batch) = spec.batch else {
        return Ok(None);
    };
    let data = match &session.data {
        Some(d) => crate::session::bind_data(&session.model, d, &session.data_dir, Split::Train)?,
        None => Vec::new(),
    };
    Batcher::new(&session.model, data, batch, seed)
        .map(Some)
        .map_err(|e| {
            Diag::new("crate::train::batch", e)
                .at(&run.source, spec.batch_span, "this batch layout")
                .into()
        })
}

/// θ⁰ from `--init FILE`, else the run file's `init`.
pub fn start_point(
    session: &Session,
    run: &RunFile,
    init: Option<&str>,
    seed: u64,
) -> Result<Vec<f64>, Diags> {
    if let Some(path) = init {
        return session.point(Some(path));
    }
    let scheme = match &run.init {
        InitSpec::File(p) => return session.point(Some(&p.to_string_lossy())),
        InitSpec::Gaussian { std } => Scheme::Gaussian { std: *std },
        InitSpec::He => Scheme::He,
        InitSpec::Glorot => Scheme::Glorot,
        InitSpec::Lecun => Scheme::Lecun,
        InitSpec::Zeros => Scheme::Zeros,
    };
    Ok(initial_point(&session.model, scheme, seed))
}

/// A solver on the (P1) structure (SRPA) works on the full data: `solver.batch` is refused at
/// its line rather than ignored.
pub fn full_data_only(run: &RunFile, info: &crate::registry::SolverInfo) -> Result<(), Diags> {
    let Some(spec) = &run.solver else {
        return Ok(());
    };
    if spec.batch.is_none() || info.requires & PROBLEM_CAP_STRUCTURE == 0 {
        return Ok(());
    }
    Err(Diag::new(
        "crate::train::batch",
        format!(
            "solver `{}` works on the full data and takes no `batch`",
            info.name
        ),
    )
    .at(&run.source, spec.batch_span, "minibatches here")
    .help("remove `batch`: each step of the solver uses every sequence and time step")
    .into())
}
