//! The parts of `mcopt train` below the command line: the solver and its options from the run
//! file, β of (P1) from the form, the memory check of the lifted problem, the starting point,
//! the batches and thread halves of the data, and the final certificate of the trained point.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::check::{CKind, Model, TermClass};
use crate::config::{self, BatchSpec, InitSpec, RunFile, Split};
use crate::diag::{Diag, Diags};
use crate::eval::EvalOptions;
use crate::forms::{self, linearize::Jacobian, p1host::P1Host, Betas, Lifted};
use crate::graph::{self, Graph, LowerOptions};
use crate::registry::{OptionValue, Order, Registry, SolverId, SolverStart};
use crate::solve::batch::select_sequences;
use crate::solve::{
    initial_point, Batcher, Checkpoint, Draws, Executor, Fingerprint, GraphProblem, Layout,
    Observer, RunState, Scheme, Status, StopRules,
};
use mcopt_plugin_sdk::abi::PROBLEM_CAP_STRUCTURE;
use mcopt_plugin_sdk::p1::Published;

use super::{certify, CertifyRequest, FormSpec, Inputs, Session};

type SolverOptions = (SolverId, Vec<f64>, Vec<(String, f64)>);

/// The way the (P1) host holds J, chosen from the memory of both paths before any of it is
/// allocated: J stored when the stored path's estimate fits in `limit` (or, without one, in
/// what this process can still take) and J has at most
/// [`forms::linearize::memory::STORED_MAX_ENTRIES`] entries; else the products path (J never
/// stored) when its estimate fits, with a warning saying why; else a refusal: a diagnostic
/// with both paths' bytes, the largest parts and the ways to need fewer. A model the
/// linearizer cannot handle passes here (stored) and is reported by the linearizer.
fn p1_memory(
    lifted: &Lifted,
    limit: Option<u64>,
    model_path: &str,
    warnings: &mut Diags,
) -> Result<Jacobian, Diags> {
    use crate::memory::{available, bytes_shown};
    use forms::linearize::memory::STORED_MAX_ENTRIES;
    let Ok(est) = forms::linearize::memory::estimate(lifted) else {
        return Ok(Jacobian::Stored);
    };
    let (limit, source) = match limit {
        Some(l) => (Some(l), "--memory-limit"),
        None => (
            available(),
            "the memory available (MemAvailable, cgroup memory.max)",
        ),
    };
    let (stored, products) = (est.total(), est.products_total());
    let fits = |b: u64| limit.is_none_or(|l| b <= l);
    let few = est.jac_nnz <= STORED_MAX_ENTRIES;
    if fits(stored) && few {
        return Ok(Jacobian::Stored);
    }
    let shown = |parts: &[(&str, u64)]| {
        parts
            .iter()
            .take(3)
            .map(|(what, b)| format!("{what} {}", bytes_shown(*b)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if fits(products) {
        let why = if few {
            format!(
                "the stored path needs about {} but {source} is {}",
                bytes_shown(stored),
                bytes_shown(limit.unwrap_or(0))
            )
        } else {
            format!(
                "J has {} entries, more than {STORED_MAX_ENTRIES}",
                est.jac_nnz
            )
        };
        warnings.push(
            Diag::new(
                "mcopt::train::products",
                format!(
                    "J is not stored: {why}; the solver reaches J through products with the lifted graph (about {}: {})",
                    bytes_shown(products),
                    shown(&est.products)
                ),
            )
            .in_file(model_path),
        );
        return Ok(Jacobian::Products);
    }
    let limit = limit.unwrap_or(0);
    // The path that factors B through its augmented matrix holds no KKT factor.
    let factor = match est.factor_nnz {
        0 => String::new(),
        n => format!(", the KKT factor about {n} values"),
    };
    Err(Diag::new(
        "mcopt::train::memory",
        format!(
            "the lifted problem needs about {} with J stored and {} with J reached through products, but {source} is {}: z has {} entries, J {} stored entries{factor}; largest stored: {}; largest with products: {}",
            bytes_shown(stored),
            bytes_shown(products),
            bytes_shown(limit),
            est.n_z,
            est.jac_nnz,
            shown(&est.parts),
            shown(&est.products),
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
fn model_identity(session: &Session, consts: &[String]) -> Vec<u8> {
    let mut bytes = session.model.source.text.as_bytes().to_vec();
    for c in consts {
        bytes.extend_from_slice(b"\n--const ");
        bytes.extend_from_slice(c.as_bytes());
    }
    bytes
}

/// The run file's final certificate (its `validate:` form, order and tolerance; default (P),
/// first order; (P1) with the form's β, the same the solver used) at a
/// [`certify::Point`] (the params file written, or the trained θ when none is), stopped by
/// `interrupt`; none for a run that was interrupted or diverged.
pub fn final_certificate(
    session: &Session,
    run: &RunFile,
    status: Status,
    point: certify::Point,
    betas: Option<Betas>,
    interrupt: Option<&'static AtomicBool>,
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
    let mut opts = req.options()?;
    opts.interrupt = interrupt;
    let prep = certify::prepare_at(session, &req.form, &point, opts.tol)?;
    let cert = prep.certify(session, &opts)?;
    Ok(Some(crate::report::json::certificate(
        prep.form,
        &cert,
        &prep.specs,
    )))
}

/// What a finished run leaves: its report (what `report.json` holds), how it ended, and θ.
pub struct Finished {
    pub report: super::outputs::Report,
    pub status: Status,
    pub x: Vec<f64>,
}

/// After [`TrainPlan::run`], for every caller alike: a run that failed gets its failure
/// written (and its error returned, placed in the run file); otherwise the trace is flushed, the
/// checkpoint built and every output written, with the run file's final certificate. Without
/// a params file (an embedding program that writes nothing) the certificate is taken at θ.
/// `interrupt` stops the certificate; `None` means the stop signals, installed here, as the
/// command line wants.
pub fn finish(
    plan: &TrainPlan,
    outputs: &super::outputs::Outputs,
    identity: &super::record::RunIdentity,
    trained: Trained<super::record::Recorder>,
    interrupt: Option<&'static AtomicBool>,
) -> Result<Finished, Diags> {
    let Trained {
        status,
        reason,
        state,
        mut recorder,
        solver_state,
    } = trained;
    let status = match status {
        Ok(s) => s,
        Err(message) => {
            super::record::write_failure(outputs, &mut recorder, &state, &message)?;
            return Err(Diag::new("mcopt::train::run", message)
                .in_file(&plan.runfile)
                .into());
        }
    };
    recorder.flush()?;
    let solver_state = match solver_state {
        Some(s) => s?,
        None => Vec::new(),
    };
    let checkpoint = identity.checkpoint(&state, solver_state, recorder.mark());
    let (session, run, betas) = (&plan.session, plan.run, &plan.certificate_betas());
    let interrupt = interrupt.or_else(|| Some(crate::signals::install()));
    let certify = |params: &Path| {
        let params = params.display().to_string();
        let point = certify::Point::File(&params);
        final_certificate(session, run, status, point, betas.clone(), interrupt)
    };
    let mut report = super::outputs::write_all(
        outputs,
        session,
        &checkpoint,
        (&recorder.curves, recorder.steps()),
        (status, reason.as_deref()),
        &certify,
    )?;
    if outputs.params.is_none() && status != Status::Interrupted {
        let point = certify::Point::Theta(&state.x);
        report.certificate =
            final_certificate(session, run, status, point, betas.clone(), interrupt)?;
    }
    Ok(Finished {
        report,
        status,
        x: state.x,
    })
}

/// How a solver on (P1) lifts the model (the run file's `lift:`; a certificate alone lifts the
/// layers). With `lift: layers`, kinks of the objective outside the layers are refused with
/// `mcopt::train::lift`, naming each term: SRPA would see them only through a gradient
/// selection and stall.
fn lift_mode(
    run: &RunFile,
    solver_p1: bool,
    graph: &Graph,
    registry: &Registry,
) -> Result<forms::LiftMode, Diags> {
    if !solver_p1 {
        return Ok(forms::LiftMode::Layers);
    }
    if run.lift == config::LiftChoice::Auto {
        return Ok(forms::LiftMode::Auto);
    }
    let kinks = forms::outer_kinks(graph, registry);
    let Some(first) = kinks.first() else {
        return Ok(forms::LiftMode::Layers);
    };
    const SHOWN: usize = 8;
    let label = |k: &forms::OuterKink| format!("`{}` outside the layers, depends on θ", k.term);
    let mut d = Diag::new(
        "mcopt::train::lift",
        format!(
            "the objective has {} outside the layers, and the run file says `lift: layers`: the solver would see {} only through a gradient selection",
            crate::text::plural(kinks.len(), "kink", "kinks"),
            if kinks.len() == 1 { "it" } else { "them" }
        ),
    )
    .at(&graph.source, first.span, label(first));
    for k in kinks.iter().skip(1).take(SHOWN - 1) {
        d = d.label(k.span, label(k));
    }
    let more = match kinks.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" ({n} more not shown)"),
    };
    Err(d
        .help(format!(
            "`lift: auto` (the default) lifts them: each term's argument and value become blocks of z, as if written as layers{more}; or write them as `layer` declarations"
        ))
        .into())
}

/// The form's β checked against the lifted layer groups (a group not named gets 1).
fn form_betas(
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
                            "mcopt::config::value",
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
fn beta_span(run: &RunFile) -> crate::diag::Span {
    let spec = run.solver.as_ref();
    spec.and_then(|s| s.option_spans.get("beta").copied())
        .or(spec.map(|s| s.name_span))
        .unwrap_or_else(|| run.source.line_span(1))
}

/// `beta` given per layer name, as a mapping: checked here (every value finite and > 0) and
/// taken out of the options the solver's schema checks (where `beta` is one number).
fn beta_mapping(
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
                    "mcopt::train::option",
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
fn solver_and_options(registry: &Registry, run: &RunFile) -> Result<SolverOptions, Diags> {
    let Some(spec) = &run.solver else {
        return Err(
            Diag::new("mcopt::train::no_solver", "the run file names no solver")
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
        return Err(Diag::new("mcopt::train::unknown_solver", format!("unknown solver `{}`", spec.name))
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
                let mut d = Diag::new("mcopt::train::option", p.message).at(
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

fn option_value(v: &serde_json::Value) -> OptionValue {
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
/// over sequences (see [`splittable`]); empty otherwise.
fn thread_split(
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
    if n < 2 || cores < 2 || batched || !splittable(&session.model) {
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

/// Whether the objective of `model` is a mean over the sequences plus parameter-only terms
/// (every loss term a `mean(t, ..)`), so that splitting the sequences into groups with
/// weights Nᵢ / N gives the same f and ∇f (see `GraphProblem::with_split`).
pub fn splittable(model: &Model) -> bool {
    model.terms.iter().all(|t| match t.class {
        TermClass::Loss => matches!(t.expr.kind, CKind::TimeReduce { mean: true, .. }),
        _ => true,
    })
}

/// The run file's batch layout as the executor's.
pub fn layout(spec: BatchSpec) -> Layout {
    match spec {
        BatchSpec::Sequences(k) => Layout::Sequences(k),
        BatchSpec::Windows { window, per_step } => Layout::Windows { window, per_step },
    }
}

/// One graph of `model` per shape of the batches of `draws` (see [`Draws::shapes`]), for
/// [`Batcher::new`].
pub fn batch_graphs(model: &Model, draws: &Draws) -> Result<Vec<Graph>, Diags> {
    draws
        .shapes()
        .into_iter()
        .map(|data| graph::lower(model, &LowerOptions { data }))
        .collect()
}

/// The minibatch draws of `solver.batch`, checked against the bound training data.
fn draws(session: &Session, run: &RunFile, seed: u64) -> Result<Option<Draws>, Diags> {
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
    Draws::new(data, layout(batch), seed)
        .map(Some)
        .map_err(|e| {
            Diag::new("mcopt::train::batch", e)
                .at(&run.source, spec.batch_span, "this batch layout")
                .into()
        })
}

/// θ⁰ from `--init FILE`, else the run file's `init`.
fn start_point(
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
    let shapes: Vec<_> = session.model.params.iter().map(|p| p.shape).collect();
    Ok(initial_point(&shapes, scheme, seed))
}

/// A solver on the (P1) structure (SRPA) works on the full data: `solver.batch` is refused at
/// its line rather than ignored.
fn full_data_only(run: &RunFile, info: &crate::registry::SolverInfo) -> Result<(), Diags> {
    let Some(spec) = &run.solver else {
        return Ok(());
    };
    if spec.batch.is_none() || info.requires & PROBLEM_CAP_STRUCTURE == 0 {
        return Ok(());
    }
    Err(Diag::new(
        "mcopt::train::batch",
        format!(
            "solver `{}` works on the full data and takes no `batch`",
            info.name
        ),
    )
    .at(&run.source, spec.batch_span, "minibatches here")
    .help("remove `batch`: each step of the solver uses every sequence and time step")
    .into())
}

/// β of (P1), the form's: the run file's `form: {p1: {beta: …}}` (one number for every layer
/// group, or numbers by layer name; a group not named gets 1). For a solver that minimizes
/// (P1) (`solver_p1`), the old spelling in its options is still read, with a warning showing
/// the new one: `beta` > 0 for every layer group, otherwise `beta2` for the last group (the
/// output layer) and `beta1` for the others, then `beta` as a mapping by layer name. Both
/// spellings with different values are an error at the option. A name that is not a lifted
/// layer is an error where it is written. Warnings go to `warnings`.
fn p1_betas(
    lifted: &Lifted,
    names: &[String],
    values: &[f64],
    by_layer: &[(String, f64)],
    run: &RunFile,
    solver_p1: bool,
    warnings: &mut Diags,
) -> Result<Betas, Diags> {
    const OLD: [&str; 3] = ["beta", "beta1", "beta2"];
    let spec = run.solver.as_ref();
    let old_key = spec
        .filter(|_| solver_p1)
        .and_then(|s| OLD.iter().find(|k| s.options.contains_key(**k)));
    let groups = lifted.layout.group_names();
    let new = match &run.form.p1 {
        Some(p1) => Some(form_betas(lifted, &p1.beta, p1.span, run)?),
        None => None,
    };
    let Some(key) = old_key else {
        return Ok(new.unwrap_or_else(|| Betas::uniform(1.0)));
    };
    let get = |n: &str, d: f64| names.iter().position(|x| x == n).map_or(d, |i| values[i]);
    let beta = get("beta", 0.0);
    let mut betas = if beta > 0.0 {
        Betas::uniform(beta)
    } else {
        let mut betas = Betas::uniform(get("beta1", 1.0));
        // the last declared layer's group (the output layer), not an automatically lifted one
        let declared = |g: &&forms::Group| lifted.layout.blocks[g.blocks[0]].origin.is_none();
        if let Some(last) = lifted.layout.groups.iter().rev().find(declared) {
            betas.per_group.insert(last.name.clone(), get("beta2", 1.0));
        }
        betas
    };
    let mut diags = Diags::new();
    for (name, beta) in by_layer {
        if lifted.layout.group(name).is_some() {
            betas.per_group.insert(name.clone(), *beta);
        } else {
            diags.push(
                Diag::new(
                    "mcopt::train::option",
                    format!("`beta` names `{name}`, which is not a lifted layer of the model"),
                )
                .at(&run.source, beta_span(run), "this option")
                .help(format!(
                    "{}the lifted layers are {}",
                    crate::text::did_you_mean(name, &groups),
                    groups.join(", ")
                )),
            );
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let written = |b: &Betas| {
        let first = groups.first().map_or(b.default, |g| b.of(g));
        if groups.iter().all(|g| b.of(g) == first) {
            config::BetaSpec::All(first)
        } else {
            config::BetaSpec::ByLayer(groups.iter().map(|g| (g.to_string(), b.of(g))).collect())
        }
    };
    let old = config::P1Beta {
        beta: written(&betas),
        span: spec
            .and_then(|s| s.option_spans.get(*key).copied())
            .unwrap_or_else(|| run.source.line_span(1)),
    };
    let what = "the solver option `beta`, `beta1` or `beta2`";
    match (new, &run.form.p1) {
        (Some(new), Some(p1)) if groups.iter().any(|g| new.of(g) != betas.of(g)) => {
            let shown = config::P1Beta {
                beta: written(&new),
                span: p1.span,
            };
            Err(config::beta_conflict(&run.source, &old, what, &shown).into())
        }
        (Some(new), _) => {
            warnings.push(config::beta_deprecated(&run.source, &old, what));
            Ok(new)
        }
        (None, _) => {
            warnings.push(config::beta_deprecated(&run.source, &old, what));
            Ok(betas)
        }
    }
}

/// What the command line (or an embedding program) changes in a run file's plan.
#[derive(Debug, Clone, Default)]
pub struct TrainOverrides {
    /// Start from this point file instead of the run file's `init`.
    pub init: Option<String>,
    /// Iterations in all (instead of the run file's `stop.max_iter`, else [`DEFAULT_MAX_ITER`]).
    pub max_iter: Option<u64>,
    /// Seed of the initialisation and the minibatches (instead of the run file's `seed`).
    pub seed: Option<u64>,
    /// The memory a lifted problem may take, in bytes (default: what this process can take).
    pub memory_limit: Option<u64>,
}

/// Iterations when neither the overrides nor the run file's `stop.max_iter` say.
pub const DEFAULT_MAX_ITER: u64 = 100;

/// A resumed run: the checkpoint's point, seed and solver state.
pub struct Resume<'c> {
    pub checkpoint: &'c Checkpoint,
    /// The checkpoint's path as shown in diagnostics.
    pub shown: String,
}

/// A run file checked and ready to train: the session, the solver and its options, the graphs
/// of the data splits, and for a solver on (P1) (or a final certificate in (P1)) the lifted
/// problem with the form's β. Everything is checked before anything runs or is written.
pub struct TrainPlan<'r> {
    pub run: &'r RunFile,
    pub session: Session,
    pub solver: SolverId,
    /// Option values in the solver's schema order.
    pub options: Vec<f64>,
    pub seed: u64,
    pub max_iter: u64,
    pub fingerprint: Fingerprint,
    /// β of (P1), the form's, when the solver or the final certificate is in (P1).
    pub betas: Option<Betas>,
    /// Warnings met while checking (the old spelling of β).
    pub warnings: Diags,
    runfile: String,
    init: Option<String>,
    train_graph: Graph,
    test_graph: Option<Graph>,
    lifted: Option<Lifted>,
    penalized: Option<Graph>,
    /// How the (P1) host holds J (chosen by the memory of both paths), for a solver on (P1).
    pub jacobian: Option<Jacobian>,
}

/// What the caller's `start` of [`TrainPlan::run`] gives once the solver started: the state to
/// run from, its record of the run (an observer), and the flag that stops the run.
pub struct Started<R> {
    pub state: RunState,
    pub recorder: R,
    pub interrupt: Option<&'static AtomicBool>,
}

/// A finished run: its status (or the error that stopped it), the final state, the observer
/// the caller's `start` made, and the solver's saved state.
pub struct Trained<R> {
    pub status: Result<Status, String>,
    pub reason: Option<String>,
    pub state: RunState,
    pub recorder: R,
    /// The solver's state for the checkpoint (after a run that did not fail).
    pub solver_state: Option<Result<Vec<u8>, Diags>>,
}

impl<'r> TrainPlan<'r> {
    /// Open the session of `run` (read once, at `inputs.config`), resolve the solver and its
    /// options, lower the data splits and, where (P1) is needed, the lifted problem with β.
    pub fn from_run(
        run: &'r RunFile,
        inputs: &Inputs,
        overrides: TrainOverrides,
    ) -> Result<TrainPlan<'r>, Diags> {
        let runfile = inputs.config.clone().unwrap_or_default();
        let model_path = run.model.to_string_lossy().into_owned();
        let session = Session::open(&model_path, inputs, Some(run))?;
        let (id, options, beta_by_layer) = solver_and_options(&session.registry, run)?;
        let seed = overrides.seed.unwrap_or(run.seed);
        let max_iter = overrides
            .max_iter
            .or(run.stop.max_iter.map(|m| m as u64))
            .unwrap_or(DEFAULT_MAX_ITER);
        let fingerprint = Fingerprint::of(
            &model_identity(&session, &inputs.consts),
            run.source.text.as_bytes(),
        );
        let train_graph = match session.graph(Split::Train)? {
            Some(g) => g,
            None => {
                return Err(
                    Diag::new("mcopt::data::unbound", "no training data are bound")
                        .in_file(&runfile)
                        .into(),
                )
            }
        };
        let test_graph = session.graph(Split::Test)?;
        let info = session.registry.solver_info(id);
        full_data_only(run, info)?;
        // SRPA and other solvers that need (P1): the lifted problem with the form's β, which
        // the final certificate in (P1) reads too.
        let needs_p1 = info.requires & PROBLEM_CAP_STRUCTURE != 0;
        let certify_p1 = run.validate.form == config::ProblemForm::P1;
        let mode = lift_mode(run, needs_p1, &train_graph, &session.registry)?;
        let lifted = (needs_p1 || certify_p1)
            .then(|| forms::lift_with(&train_graph, &session.registry, mode));
        let names: Vec<String> = info.options.iter().map(|o| o.name.clone()).collect();
        let mut warnings = Diags::new();
        let betas = match &lifted {
            Some(l) => Some(p1_betas(
                l,
                &names,
                &options,
                &beta_by_layer,
                run,
                needs_p1,
                &mut warnings,
            )?),
            None => None,
        };
        let penalized = lifted
            .as_ref()
            .zip(betas.as_ref())
            .filter(|_| needs_p1)
            .map(|(l, b)| l.penalized(b));
        let jacobian = match lifted.as_ref().filter(|_| needs_p1) {
            Some(l) => Some(p1_memory(
                l,
                overrides.memory_limit,
                &model_path,
                &mut warnings,
            )?),
            None => None,
        };
        Ok(TrainPlan {
            run,
            session,
            solver: id,
            options,
            seed,
            max_iter,
            fingerprint,
            betas,
            warnings,
            runfile,
            init: overrides.init,
            train_graph,
            test_graph,
            lifted: lifted.filter(|_| needs_p1),
            penalized,
            jacobian,
        })
    }

    /// β for the final certificate, which lifts the declared layers only: without the β of
    /// automatically lifted groups (`form.p1.beta` may name them for the solver).
    fn certificate_betas(&self) -> Option<Betas> {
        let mut betas = self.betas.clone()?;
        if let Some(l) = &self.lifted {
            for g in &l.layout.groups {
                if l.layout.blocks[g.blocks[0]].origin.is_some() {
                    betas.per_group.remove(&g.name);
                }
            }
        }
        Some(betas)
    }

    /// The solver's name, options schema and metrics.
    pub fn solver_info(&self) -> &crate::registry::SolverInfo {
        self.session.registry.solver_info(self.solver)
    }

    /// The starting point: the checkpoint's, else the overrides' `init` file, else the run
    /// file's `init`.
    pub fn start_point(&self, resume: Option<&Resume>) -> Result<Vec<f64>, Diags> {
        match resume {
            Some(r) => Ok(r.checkpoint.state.x.clone()),
            None => start_point(&self.session, self.run, self.init.as_deref(), self.seed),
        }
    }

    /// Build the problem, start (or restore) the solver at `x0`, then call `start` (it prepares the caller's record of the run, so nothing is written before the
    /// solver started, and the stop flag) and run the executor with `progress` and that record
    /// as observers until a stop rule, the flag or an error.
    pub fn run<R: Observer>(
        &self,
        x0: &[f64],
        resume: Option<&Resume>,
        progress: &mut dyn Observer,
        start: impl FnOnce() -> Result<Started<R>, Diags>,
    ) -> Result<Trained<R>, Diags> {
        let session = &self.session;
        let run = self.run;
        let model_path = run.model.to_string_lossy().into_owned();
        let seed = resume.map_or(self.seed, |r| r.checkpoint.seed);
        let opts = EvalOptions { ztol: run.ztol };
        let halves = thread_split(session, run, &self.train_graph)?;
        let draws = draws(session, run, seed)?;
        let batch_graphs = match &draws {
            Some(d) => batch_graphs(&session.model, d)?,
            None => Vec::new(),
        };
        let mut problem = GraphProblem::new(
            &session.registry,
            &self.train_graph,
            self.test_graph.as_ref(),
            opts,
        )
        .map_err(|e| Diags::from(Diag::new("mcopt::train::eval", e).in_file(&model_path)))?;
        if let Some(d) = draws {
            let batcher = Batcher::new(d, &batch_graphs, &session.registry).map_err(|e| {
                Diags::from(Diag::new("mcopt::train::eval", e).in_file(&model_path))
            })?;
            problem = problem.with_batches(batcher);
        } else if !halves.is_empty() {
            let parts: Vec<(&Graph, f64)> = halves.iter().map(|(g, w)| (g, *w)).collect();
            problem = problem.with_split(&parts).map_err(|e| {
                Diags::from(Diag::new("mcopt::train::eval", e).in_file(&model_path))
            })?;
        }
        let mut host = match (&self.lifted, &self.penalized, &self.betas) {
            (Some(l), Some(pen), Some(b)) => Some(
                P1Host::with_jacobian(
                    l,
                    pen,
                    b,
                    l.source_of(&self.train_graph),
                    &session.registry,
                    self.jacobian.unwrap_or(Jacobian::Stored),
                )
                .map_err(|e| {
                    Diags::from(Diag::new("mcopt::train::p1", e.to_string()).in_file(&model_path))
                })?,
            ),
            _ => None,
        };
        let published = host.as_mut().map(Published::new);
        if let Some(p) = &published {
            problem.set_structure(p.table());
        }
        let solver_start = SolverStart {
            options: &self.options,
            x: x0,
            seed,
        };
        let instance = match resume {
            Some(r) => session
                .registry
                .restore_solver(
                    self.solver,
                    &mut problem,
                    solver_start,
                    &r.checkpoint.solver_state,
                )
                .map_err(|e| Diags::from(Diag::from(e).in_file(&r.shown))),
            None => session
                .registry
                .init_solver(self.solver, &mut problem, solver_start)
                .map_err(|e| Diags::from(Diag::from(e).in_file(&self.runfile))),
        };
        let mut instance = instance?;
        let Started {
            mut state,
            mut recorder,
            interrupt,
        } = start()?;
        let mut ex = Executor {
            stop: StopRules {
                max_iter: self.max_iter,
                tol: run.stop.tol,
                max_seconds: run.stop.max_seconds,
            },
            interrupt,
            observers: vec![progress, &mut recorder],
            reason: None,
        };
        let status = ex.run(&mut problem, &mut instance, &mut state);
        let reason = ex.reason.take();
        drop(ex);
        let status = status.map_err(|e| e.to_string());
        let solver_state = status.is_ok().then(|| {
            instance
                .save()
                .map_err(|e| Diags::from(Diag::from(e).in_file(&self.runfile)))
        });
        Ok(Trained {
            status,
            reason,
            state,
            recorder,
            solver_state,
        })
    }
}
