//! `mcopt stationarity`: the certificate of a point in (P), (P0) or (P1), with its witness;
//! also the loading of points for the three forms, shared with `validate` and `reformulate`.

use std::path::Path;

use clap::Args as ClapArgs;
use mcopt::config::{self, PointMode, PointValues, Split, VarRole, VarSpec};
use mcopt::diag::{Diag, Diags};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::forms::{self, Betas, Lifted};
use mcopt::graph::Graph;
use mcopt::registry::Order;
use mcopt::report;
use mcopt::stationarity::{self, Certificate, Form, Problem, Status, Verdict};
use mcopt::text::plural;

use super::{InputArgs, EXIT_OK};
use mcopt::session::Session;

/// The check ran and failed.
pub const EXIT_FAILED: u8 = 1;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Model file (.mco); may be omitted when the run file (--config) names one.
    pub model: Option<String>,
    /// Point file (YAML): parameters, and for p0/p1 optionally layer values.
    #[arg(long)]
    pub at: String,
    /// 1: first-order certificate; 2: first and second order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub order: u8,
    #[command(flatten)]
    pub cert: CertArgs,
    /// Write an SVG plot of f(x + t·d) against t along the witness (or the flattest direction).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<String>,
    /// Exit 0 when a verdict is inconclusive.
    #[arg(long)]
    pub allow_inconclusive: bool,
    /// Stop after this many seconds: a verdict not reached by then is inconclusive.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub time_limit: Option<f64>,
    #[command(flatten)]
    pub input: InputArgs,
}

/// Options of a certificate shared by `stationarity` and `reformulate`.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct CertArgs {
    /// Which problem: p (original), p0 (lifted, constrained), p1 (ℓ1 penalty).
    #[arg(long, default_value = "p", value_parser = ["p", "p0", "p1"])]
    pub form: String,
    /// Penalty weight of (P1): B for every layer, or NAME=B for one layer group; repeatable.
    #[arg(long = "beta", value_name = "B|NAME=B", allow_negative_numbers = true)]
    pub beta: Vec<String>,
    /// Tolerance on slopes, curvatures and (P0) residuals (> 0).
    #[arg(long, allow_negative_numbers = true)]
    pub tol: Option<f64>,
    /// Largest number of pieces enumerated for nested kinks (2^k for k kinks).
    #[arg(long, default_value_t = 4096)]
    pub max_pieces: usize,
    /// β of (P1) already resolved (a run file's `form.p1.beta`); replaces `beta`.
    #[arg(skip)]
    pub betas: Option<Betas>,
}

pub fn form_of(s: &str) -> Form {
    match s {
        "p0" => Form::P0,
        "p1" => Form::P1,
        _ => Form::P,
    }
}

/// A point ready to certify: the graph of its form and the point in that form's variables.
pub struct Prepared {
    pub form: Form,
    pub graph: Graph,
    pub lifted: Lifted,
    pub penalized: Option<Graph>,
    /// (P0): the transpose of the tangent map, for Hessian-vector products.
    pub adjoint: Option<Graph>,
    pub theta: Vec<f64>,
    pub z: Vec<f64>,
    /// Specs of the form's variables (θ for p; θ then layer blocks for p0/p1).
    pub specs: Vec<VarSpec>,
}

impl Prepared {
    pub fn problem<'a>(&'a self, s: &'a Session) -> Problem<'a> {
        let (graph, point) = match self.form {
            Form::P1 => (self.penalized.as_ref().unwrap_or(&self.graph), &self.z[..]),
            _ => (&self.graph, &self.theta[..]),
        };
        Problem {
            form: self.form,
            graph,
            registry: &s.registry,
            point,
            lifted: Some(&self.lifted),
            adjoint: self.adjoint.as_ref(),
        }
    }

    /// The graph whose objective is the form's (f, F or Θ) and the point in its variables.
    pub fn objective(&self) -> (&Graph, &[f64]) {
        match self.form {
            Form::P => (&self.graph, &self.theta),
            Form::P0 => (&self.lifted.graph, &self.z),
            Form::P1 => (self.penalized.as_ref().unwrap_or(&self.graph), &self.z),
        }
    }
}

/// `mcopt diff --form p0|p1`: f, f′ and f″ of the form's objective (F or Θ) at the point
/// completed as for a certificate, along a direction over all of z (missing names are zero).
pub fn diff_form(
    s: &Session,
    form: &str,
    beta: &[String],
    at: Option<&str>,
    dir: &str,
    order: Order,
    ztol: f64,
) -> Result<mcopt::eval::Taylor, Diags> {
    let cert = CertArgs {
        form: form.to_owned(),
        beta: beta.to_vec(),
        tol: None,
        max_pieces: 1,
        betas: None,
    };
    let prep = prepare(s, &cert, at, 1e-6, ztol)?;
    let d = config::load_point(Path::new(dir), &prep.specs, PointMode::Direction)?;
    let d: Vec<f64> = d
        .values
        .into_iter()
        .zip(&prep.specs)
        .flat_map(|(v, sp)| v.unwrap_or_else(|| vec![0.0; sp.len()]))
        .collect();
    let (graph, x) = prep.objective();
    let mut ev = Evaluator::new(graph, &s.registry, Order::Two).map_err(eval_err(graph))?;
    let t = ev
        .directional(x, &d, order, EvalOptions { ztol })
        .map_err(eval_err(graph))?;
    ev.check_finite(order).map_err(eval_err(graph))?;
    Ok(t)
}

/// Number check for a command-line option: finite and inside its range.
pub fn check_number(name: &str, v: f64, ok: bool, expected: &str) -> Result<f64, Diags> {
    if v.is_finite() && ok {
        return Ok(v);
    }
    Err(Diag::new(
        "mcopt::cli::value",
        format!("expected `{name}` to be {expected}, found {v}"),
    )
    .help(format!("pass {name} with {expected}"))
    .into())
}

/// β of (P1) from `--beta` values (`B` or `NAME=B`), checked against the layer groups.
pub fn parse_betas(args: &[String], lifted: &Lifted, default: f64) -> Result<Betas, Diags> {
    let mut betas = Betas::uniform(default);
    for a in args {
        let (name, num) = match a.split_once('=') {
            Some((n, b)) => (Some(n.trim()), b.trim()),
            None => (None, a.trim()),
        };
        let value: f64 = num.parse().map_err(|_| {
            Diags::from(
                Diag::new(
                    "mcopt::cli::value",
                    format!("expected `--beta` to be a number, found `{num}`"),
                )
                .help("write --beta 1.0 or --beta NAME=1.0"),
            )
        })?;
        check_number("--beta", value, value > 0.0, "a positive number")?;
        match name {
            None => betas.default = value,
            Some(n) if lifted.layout.group(n).is_some() => {
                betas.per_group.insert(n.to_owned(), value);
            }
            Some(n) => {
                return Err(Diag::new(
                    "mcopt::cli::beta",
                    format!("`{n}` is not a layer group of this model"),
                )
                .help(format!(
                    "layer groups: {}",
                    lifted.layout.group_names().join(", ")
                ))
                .into())
            }
        }
    }
    Ok(betas)
}

/// Lower the model, read the point for `form` and complete it: θ-only points by a forward pass;
/// layer values are kept ((P1) accepts infeasible points; (P0) refuses a residual above `tol`).
pub fn prepare(
    s: &Session,
    cert: &CertArgs,
    point: Option<&str>,
    tol: f64,
    ztol: f64,
) -> Result<Prepared, Diags> {
    let form = form_of(&cert.form);
    let graph = match s.graph(Split::Train)? {
        Some(g) => g,
        None => {
            return Err(
                Diag::new("mcopt::data::unbound", "no data are bound for this split")
                    .in_file(&s.model_path)
                    .into(),
            )
        }
    };
    let lifted = forms::lift(&graph);
    let specs = all_specs(&graph, &lifted);
    let values = match point {
        Some(path) => config::load_point(Path::new(path), &specs, PointMode::Point)?,
        None => PointValues {
            values: s
                .model
                .params
                .iter()
                .map(|p| Some(p.init.clone()))
                .chain(lifted.layout.blocks.iter().map(|_| None))
                .collect(),
        },
    };
    let n = graph.n_params();
    let given: Vec<bool> = values.values[graph.params.len()..]
        .iter()
        .map(Option::is_some)
        .collect();
    let flat: Vec<f64> = values
        .values
        .iter()
        .zip(&specs)
        .flat_map(|(v, s)| v.clone().unwrap_or_else(|| vec![0.0; s.len()]))
        .collect();
    let theta = flat[..n].to_vec();
    let mut lev =
        Evaluator::new(&lifted.graph, &s.registry, Order::Zero).map_err(eval_err(&lifted.graph))?;
    let mut z = flat;
    let any_given = given.iter().any(|g| *g);
    if form == Form::P || !any_given {
        let mut ev = Evaluator::new(&graph, &s.registry, Order::Zero).map_err(eval_err(&graph))?;
        z = lifted.complete(&mut ev, &theta).map_err(eval_err(&graph))?;
    } else {
        lifted
            .fill_missing(&mut lev, &mut z, &given)
            .map_err(eval_err(&lifted.graph))?;
    }
    let _ = ztol;
    if form == Form::P0 && any_given {
        let worst = lifted
            .max_residual(&mut lev, &z)
            .map_err(eval_err(&lifted.graph))?;
        let scale = 1.0 + z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if let Some(b) = worst
            .block
            .filter(|_| worst.value.is_nan() || worst.value.abs() > tol * scale)
        {
            let block = &lifted.layout.blocks[b];
            return Err(Diag::new(
                "mcopt::point::infeasible",
                format!(
                    "the point is not feasible for (P0): the largest residual is {:.3e} in layer `{}` (entry {}, sequence {}), above the tolerance {:.1e}",
                    worst.value, block.name, worst.row, worst.col, tol * scale
                ),
            )
            .in_file(point.unwrap_or_default())
            .help("omit the layer values to complete them by a forward pass, or certify the point in (P1) with --form p1")
            .into());
        }
    }
    let penalized = match form {
        Form::P1 => Some(lifted.penalized(&match &cert.betas {
            Some(b) => b.clone(),
            None => parse_betas(&cert.beta, &lifted, 1.0)?,
        })),
        _ => {
            parse_betas(&cert.beta, &lifted, 1.0)?;
            None
        }
    };
    let specs = match form {
        Form::P => specs[..graph.params.len()].to_vec(),
        _ => specs,
    };
    let adjoint = (form == Form::P0).then(|| forms::adjoint::transpose_graph(&graph, &lifted));
    Ok(Prepared {
        form,
        graph,
        lifted,
        penalized,
        adjoint,
        theta,
        z,
        specs,
    })
}

fn eval_err(g: &Graph) -> impl Fn(mcopt::eval::EvalError) -> Diags + '_ {
    move |e| Diags::from(e.to_diag(g))
}

/// Parameters, then every lifted layer block (`h[3]`), as point-file variables.
pub fn all_specs(graph: &Graph, lifted: &Lifted) -> Vec<VarSpec> {
    let params = graph
        .params
        .iter()
        .map(|p| VarSpec::new(&p.name, p.shape.rows, p.shape.cols, VarRole::Param));
    let layers = lifted
        .layout
        .blocks
        .iter()
        .map(|b| VarSpec::new(&b.name, b.rows, b.cols, VarRole::Layer));
    params.chain(layers).collect()
}

/// Certificate options from the command line (and a run file's `validate.tol`).
pub fn options(
    cert: &CertArgs,
    order: u8,
    ztol: f64,
    run_tol: Option<f64>,
) -> Result<stationarity::Options, Diags> {
    // A run file's `validate.tol` is checked (finite, ≥ 0, below MAX_TOL) at its line when the
    // file is read; 0 makes the comparisons exact (f′ ≥ −tol, ‖∇f‖ ≤ tol).
    let tol = match cert.tol {
        Some(t) => {
            check_number("--tol", t, t >= 0.0, "a number ≥ 0")?;
            check_tol_range(t)?;
            t
        }
        None => run_tol.unwrap_or(1e-6),
    };
    check_number("--ztol", ztol, ztol >= 0.0, "a number ≥ 0")?;
    if cert.max_pieces == 0 {
        return Err(Diag::new(
            "mcopt::cli::value",
            "expected `--max-pieces` to be at least 1, found 0",
        )
        .into());
    }
    Ok(stationarity::Options {
        order: if order == 2 { Order::Two } else { Order::One },
        tol,
        ztol,
        max_pieces: cert.max_pieces,
        interrupt: None,
        time_limit: None,
    })
}

/// Tolerances at or above this make every verdict vacuous (any slope passes); refused.
pub const MAX_TOL: f64 = 1e100;

/// `--tol` (or `validate.tol`) below [`MAX_TOL`]: a tolerance that large would certify anything.
fn check_tol_range(tol: f64) -> Result<(), Diags> {
    if tol < MAX_TOL {
        return Ok(());
    }
    Err(Diag::new(
        "mcopt::cli::value",
        format!("expected `--tol` to be below {MAX_TOL:e}, found {tol:e}: with it every slope would pass and the verdict would say nothing"),
    )
    .help("the tolerance bounds slopes along unit directions: use a small multiple of the objective's rounding error, such as the default 1e-6")
    .into())
}

pub fn run(model: &str, a: &Args) -> Result<u8, Diags> {
    let start = std::time::Instant::now();
    let s = Session::load(model, &a.input.inputs())?;
    let mut opts = options(&a.cert, a.order, a.input.ztol, None)?;
    if let Some(t) = a.time_limit {
        opts.time_limit = Some(check_number("--time-limit", t, t > 0.0, "a number > 0")?);
    }
    // Ctrl-C (or SIGTERM, SIGHUP) stops the tiers: the verdicts not reached are inconclusive.
    opts.interrupt = Some(mcopt::signals::install());
    let prep = prepare(&s, &a.cert, Some(&a.at), opts.tol, opts.ztol)?;
    let problem = prep.problem(&s);
    let bar = spinner();
    let cert = stationarity::certify(&problem, &opts);
    bar.finish_and_clear();
    let mut cert = cert.map_err(|e| Diags::from(e.to_diag(problem.graph)))?;
    stationarity::interrupted_as_inconclusive(&mut cert.first);
    if let Some(v) = &mut cert.second {
        stationarity::interrupted_as_inconclusive(v);
    }
    if let Some(path) = &a.plot {
        let svg = plot(&s, &prep, &cert)?;
        mcopt::atomic::write(Path::new(path), &svg)?;
    }
    // All the work: loading and completing the point, every tier of both orders, the plot.
    cert.seconds = start.elapsed().as_secs_f64();
    if a.input.json {
        let v = report::json::certificate(prep.form, &cert, &prep.specs);
        out_raw!("{}", String::from_utf8_lossy(&report::json::to_bytes(&v)));
    } else {
        print_text(&prep, &cert);
    }
    if let Some(sig) = mcopt::signals::received() {
        return Ok(mcopt::signals::exit_code(sig));
    }
    Ok(exit_code(&cert, a.allow_inconclusive))
}

/// A spinner with the elapsed time on a terminal (stderr), hidden otherwise.
fn spinner() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} certifying  {elapsed_precise}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// 0 when every verdict is stationary (or inconclusive and allowed), else 1.
pub fn exit_code(cert: &Certificate, allow_inconclusive: bool) -> u8 {
    let ok = |v: &Verdict| {
        v.status == Status::Stationary || (allow_inconclusive && v.status == Status::Inconclusive)
    };
    if ok(&cert.first) && cert.second.as_ref().is_none_or(ok) {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

fn print_text(prep: &Prepared, cert: &Certificate) {
    out!("form          {}", prep.form.as_str());
    out!("tol           {:e}", cert.tol);
    out!("ztol          {}", cert.ztol);
    for (label, v) in [
        ("first_order", Some(&cert.first)),
        ("second_order", cert.second.as_ref()),
    ] {
        let Some(v) = v else { continue };
        out!(
            "{label:<13} {}  (method {}, {})",
            v.status.as_str(),
            v.method,
            plural(v.active_kinks, "active kink", "active kinks")
        );
        if let Some(s) = v.slope {
            out!("  slope       {s:.12}");
        }
        if let Some(c) = v.curvature {
            out!("  curvature   {c:.12}");
        }
        if let Some(r) = &v.reason {
            out!("  reason      {r}");
        }
        if let Some(d) = &v.direction {
            out!("  direction (a direction file for `mcopt diff --dir`):");
            let vals = split(&prep.specs, d);
            for line in config::write_point(&prep.specs, &vals).lines() {
                out!("    {line}");
            }
        }
    }
    out!("seconds       {:.6}", cert.seconds);
}

/// Column-major values per spec.
pub fn split(specs: &[VarSpec], flat: &[f64]) -> Vec<Vec<f64>> {
    let mut off = 0;
    specs
        .iter()
        .map(|s| {
            let v = flat[off..off + s.len()].to_vec();
            off += s.len();
            v
        })
        .collect()
}

/// The SVG of the form's objective along the plot direction, t ∈ [−s, s].
fn plot(s: &Session, prep: &Prepared, cert: &Certificate) -> Result<Vec<u8>, Diags> {
    let (graph, x) = prep.objective();
    let d = &cert.plot_direction;
    let dmax = d.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let xmax = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let span = 0.5 * (1.0 + xmax) / dmax;
    let mut ev = Evaluator::new(graph, &s.registry, Order::Zero)
        .map_err(|e| Diags::from(e.to_diag(graph)))?;
    let mut pts = Vec::with_capacity(201);
    for i in 0..=200 {
        let t = span * (i as f64 / 100.0 - 1.0);
        let p: Vec<f64> = x.iter().zip(d).map(|(a, b)| a + t * b).collect();
        // Points outside a function's domain are left out of the curve.
        if let Ok(v) = ev.value(&p, EvalOptions::default()) {
            pts.push((t, v));
        }
    }
    let which = if cert.first.status == Status::NotStationary
        || cert
            .second
            .as_ref()
            .is_some_and(|v| v.status == Status::NotStationary)
    {
        "along the witness"
    } else {
        "along the flattest direction checked"
    };
    let title = format!("({}) {which}", prep.form.as_str().to_uppercase());
    report::line::along_direction(&pts, &title).map_err(|e| {
        Diags::from(Diag::new(
            "mcopt::report::plot",
            format!("cannot draw the plot: {e}"),
        ))
    })
}
