//! Certificates as a typed request: [`CertifyRequest`] (the form with its β, the order and the
//! tolerances) checked into [`stationarity::Options`], the point read and completed in its form
//! ([`prepare`]), the certificate, and the data of the witness plot. Used by `stationarity`,
//! `validate`, `diff --form` and the final certificate of `train` alike.

use std::path::Path;

use crate::config::{self, PointMode, PointValues, Split, VarRole, VarSpec};
use crate::diag::{Diag, Diags};
use crate::eval::{EvalOptions, Evaluator};
use crate::forms::{self, Betas, Lifted};
use crate::graph::Graph;
use crate::registry::Order;
use crate::report;
use crate::stationarity::{self, Certificate, Form, Problem, Status};

use super::Session;

/// Which problem a point is certified in: (P), the lifted (P0), or the penalized (P1) with its β.
#[derive(Debug, Clone, PartialEq)]
pub enum FormSpec {
    P,
    P0,
    P1(Betas),
}

impl FormSpec {
    /// The form, without its β.
    pub fn form(&self) -> Form {
        match self {
            FormSpec::P => Form::P,
            FormSpec::P0 => Form::P0,
            FormSpec::P1(_) => Form::P1,
        }
    }

    /// The form of a run file's `validate.form`, in (P1) with `betas`.
    pub fn of(form: config::ProblemForm, betas: Betas) -> FormSpec {
        match form {
            config::ProblemForm::P => FormSpec::P,
            config::ProblemForm::P0 => FormSpec::P0,
            config::ProblemForm::P1 => FormSpec::P1(betas),
        }
    }
}

/// β of (P1) as a run file writes it (`form: {p1: {beta: …}}`): a group not named gets 1.
pub fn betas_of(spec: &config::BetaSpec) -> Betas {
    match spec {
        config::BetaSpec::All(b) => Betas::uniform(*b),
        config::BetaSpec::ByLayer(m) => {
            let mut betas = Betas::uniform(1.0);
            for (n, b) in m {
                betas.per_group.insert(n.clone(), *b);
            }
            betas
        }
    }
}

/// A certificate to compute: every option of `mcopt stationarity` but the point.
#[derive(Debug, Clone)]
pub struct CertifyRequest {
    pub form: FormSpec,
    /// [`Order::One`]: first-order certificate; [`Order::Two`]: first and second order.
    pub order: Order,
    /// Tolerance on slopes, curvatures and (P0) residuals (≥ 0, below [`MAX_TOL`]); 1e-6 when
    /// none is given.
    pub tol: Option<f64>,
    /// Kink tolerance of the evaluator (≥ 0).
    pub ztol: f64,
    /// Largest number of pieces enumerated for nested kinks (≥ 1).
    pub max_pieces: usize,
    /// Seconds after which the tiers stop (> 0).
    pub time_limit: Option<f64>,
}

impl CertifyRequest {
    /// A request for `form` at `order` with the default tolerances (1e-6, ztol 0, 4096 pieces).
    pub fn new(form: FormSpec, order: Order) -> CertifyRequest {
        CertifyRequest {
            form,
            order,
            tol: None,
            ztol: 0.0,
            max_pieces: 4096,
            time_limit: None,
        }
    }

    /// The options of the certificate, each number checked (finite and inside its range).
    pub fn options(&self) -> Result<stationarity::Options, Diags> {
        // A run file's `validate.tol` is checked (finite, ≥ 0, below MAX_TOL) at its line when
        // the file is read; 0 makes the comparisons exact (f′ ≥ −tol, ‖∇f‖ ≤ tol).
        let tol = match self.tol {
            Some(t) => {
                check_number("--tol", t, t >= 0.0, "a number ≥ 0")?;
                check_tol_range(t)?;
                t
            }
            None => 1e-6,
        };
        let ztol = self.ztol;
        check_number("--ztol", ztol, ztol >= 0.0, "a number ≥ 0")?;
        if self.max_pieces == 0 {
            return Err(Diag::new(
                "mcopt::cli::value",
                "expected `--max-pieces` to be at least 1, found 0",
            )
            .into());
        }
        let time_limit = match self.time_limit {
            Some(t) => Some(check_number("--time-limit", t, t > 0.0, "a number > 0")?),
            None => None,
        };
        Ok(stationarity::Options {
            order: if matches!(self.order, Order::Two) {
                Order::Two
            } else {
                Order::One
            },
            tol,
            ztol,
            max_pieces: self.max_pieces,
            interrupt: None,
            time_limit,
        })
    }
}

/// The certificate of the point in the file `point` (the model's initial values when none) as
/// `req` asks, stopped by `interrupt` when it is set; with the prepared point.
pub fn certify(
    s: &Session,
    req: &CertifyRequest,
    point: Option<&str>,
    interrupt: Option<&'static std::sync::atomic::AtomicBool>,
) -> Result<(Prepared, Certificate), Diags> {
    let mut opts = req.options()?;
    opts.interrupt = interrupt;
    let prep = prepare(s, &req.form, point, opts.tol)?;
    let cert = prep.certify(s, &opts)?;
    Ok((prep, cert))
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

    /// The certificate of the prepared point with `opts` (interrupted verdicts stay so).
    pub fn certify(&self, s: &Session, opts: &stationarity::Options) -> Result<Certificate, Diags> {
        let problem = self.problem(s);
        stationarity::certify(&problem, opts).map_err(|e| Diags::from(e.to_diag(problem.graph)))
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

/// β of (P1) checked against the model's layer groups: every group named is one.
pub fn check_betas(betas: &Betas, lifted: &Lifted) -> Result<(), Diags> {
    let mut names: Vec<&String> = betas.per_group.keys().collect();
    names.sort();
    match names.into_iter().find(|n| lifted.layout.group(n).is_none()) {
        None => Ok(()),
        Some(n) => Err(Diag::new(
            "mcopt::cli::beta",
            format!("`{n}` is not a layer group of this model"),
        )
        .help(format!(
            "layer groups: {}",
            lifted.layout.group_names().join(", ")
        ))
        .into()),
    }
}

/// Lower the model, read the point for `form` and complete it: θ-only points by a forward pass;
/// layer values are kept ((P1) accepts infeasible points; (P0) refuses a residual above `tol`).
pub fn prepare(
    s: &Session,
    form_spec: &FormSpec,
    point: Option<&str>,
    tol: f64,
) -> Result<Prepared, Diags> {
    let at = match point {
        Some(path) => Point::File(path),
        None => Point::Initial,
    };
    prepare_at(s, form_spec, &at, tol)
}

/// A point: the model's initial values, a point file (parameters and, for (P0)/(P1),
/// optionally layer values), or θ in memory (the parameters in order, each column-major).
#[derive(Debug, Clone, Copy)]
pub enum Point<'a> {
    Initial,
    File(&'a str),
    Theta(&'a [f64]),
}

/// [`prepare`] at a [`Point`]; θ in memory is completed like a θ-only point file.
pub fn prepare_at(
    s: &Session,
    form_spec: &FormSpec,
    at: &Point<'_>,
    tol: f64,
) -> Result<Prepared, Diags> {
    let point = match at {
        Point::File(path) => Some(*path),
        _ => None,
    };
    let form = form_spec.form();
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
    let values = match at {
        Point::File(path) => config::load_point(Path::new(path), &specs, PointMode::Point)?,
        Point::Theta(theta) => PointValues {
            values: split(
                &specs[..graph.params.len()],
                super::evaluate::check_len(theta, graph.n_params(), "θ")?,
            )
            .into_iter()
            .map(Some)
            .chain(lifted.layout.blocks.iter().map(|_| None))
            .collect(),
        },
        Point::Initial => PointValues {
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
    let penalized = match form_spec {
        FormSpec::P1(betas) => {
            check_betas(betas, &lifted)?;
            Some(lifted.penalized(betas))
        }
        _ => None,
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

fn eval_err(g: &Graph) -> impl Fn(crate::eval::EvalError) -> Diags + '_ {
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
pub fn plot(s: &Session, prep: &Prepared, cert: &Certificate) -> Result<Vec<u8>, Diags> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tol: Option<f64>) -> CertifyRequest {
        CertifyRequest {
            tol,
            ..CertifyRequest::new(FormSpec::P0, Order::Two)
        }
    }

    #[test]
    fn options_carry_the_request() {
        let o = CertifyRequest {
            ztol: 1e-9,
            max_pieces: 7,
            time_limit: Some(2.5),
            ..request(Some(0.0))
        }
        .options()
        .unwrap();
        assert!(matches!(o.order, Order::Two));
        assert_eq!(
            (o.tol, o.ztol, o.max_pieces, o.time_limit),
            (0.0, 1e-9, 7, Some(2.5))
        );
        assert_eq!(request(None).options().unwrap().tol, 1e-6);
    }

    #[test]
    fn options_refuse_numbers_out_of_range() {
        for bad in [
            request(Some(f64::NAN)),
            request(Some(-1.0)),
            request(Some(MAX_TOL)),
            CertifyRequest {
                ztol: -1.0,
                ..request(None)
            },
            CertifyRequest {
                max_pieces: 0,
                ..request(None)
            },
            CertifyRequest {
                time_limit: Some(0.0),
                ..request(None)
            },
        ] {
            let e = bad.options().unwrap_err();
            let code = e.iter().next().map(|d| d.code).unwrap_or_default();
            assert_eq!(code, "mcopt::cli::value", "{bad:?}");
        }
    }

    #[test]
    fn the_form_keeps_its_beta() {
        let by_layer = config::BetaSpec::ByLayer(vec![("h".into(), 0.5)]);
        let spec = FormSpec::of(config::ProblemForm::P1, betas_of(&by_layer));
        assert_eq!(spec.form(), Form::P1);
        let FormSpec::P1(b) = spec else {
            panic!("not (P1)")
        };
        assert_eq!((b.of("h"), b.of("y")), (0.5, 1.0));
        assert_eq!(betas_of(&config::BetaSpec::All(3.0)).of("y"), 3.0);
        assert_eq!(
            FormSpec::of(config::ProblemForm::P0, Betas::uniform(2.0)),
            FormSpec::P0
        );
    }
}
