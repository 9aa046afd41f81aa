//! Values and derivatives of a model as typed calls: [`Objective`] (f and ∇f at any θ, the graph
//! lowered and the evaluator's buffers allocated once, for a caller that evaluates in a loop),
//! [`evaluate`] (`mcopt eval`: f, the loss, the test loss and optionally ∇f at a point) and
//! [`directional`] (`mcopt diff`: f, f′ and f″ along a direction in (P), (P0) or (P1)).

use std::path::Path;
use std::sync::Arc;

use crate::check::TermClass;
use crate::config::{self, PointMode, Split, VarSpec};
use crate::diag::{Diag, Diags};
use crate::eval::{EvalError, EvalOptions, Evaluator, Taylor};
use crate::graph::Graph;
use crate::registry::{Order, Registry};
use crate::stationarity::Form;

use super::certify::{self, FormSpec, Point};
use super::Session;

/// The objective f of a session's model on one split: the graph lowered once and an evaluator
/// whose buffers are reused by every call.
pub struct Objective {
    /// Borrows `*graph` and `session.registry` (see [`Objective::from_graph`]); declared first,
    /// so it is dropped before them.
    ev: Evaluator<'static>,
    graph: Arc<Graph>,
    session: Arc<Session>,
    opts: EvalOptions,
}

impl Objective {
    /// f on `split` (an error when the split has no data bound), evaluated with `ztol`.
    pub fn new(session: Arc<Session>, split: Split, ztol: f64) -> Result<Objective, Diags> {
        let graph = require_graph(&session, split)?;
        Objective::from_graph(session, graph, ztol)
    }

    /// f of `graph`, a graph lowered from `session`'s model (buffers for values and the
    /// reverse pass; directional derivatives are [`directional`]'s).
    pub fn from_graph(session: Arc<Session>, graph: Graph, ztol: f64) -> Result<Objective, Diags> {
        let graph = Arc::new(graph);
        // SAFETY: both pointers come from `Arc`s this value owns and never replaces or hands
        // out mutably, so the `Graph` and the `Registry` stay alive and in place for as long
        // as the evaluator; the evaluator is the first field, so it is dropped before either
        // `Arc`, and no reference with the extended lifetime leaves this type.
        let (g, r): (&'static Graph, &'static Registry) =
            unsafe { (&*Arc::as_ptr(&graph), &(*Arc::as_ptr(&session)).registry) };
        let ev = Evaluator::new(g, r, Order::Zero).map_err(eval_err(&graph))?;
        Ok(Objective {
            ev,
            graph,
            session,
            opts: EvalOptions { ztol },
        })
    }

    /// The session the objective was built from.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The lowered graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The specs of the parameters θ in order (name, shape), for splitting θ or ∇f by name.
    pub fn param_specs(&self) -> Vec<VarSpec> {
        super::param_specs(&self.graph)
    }

    /// n = dim θ.
    pub fn n_params(&self) -> usize {
        self.graph.n_params()
    }

    /// f(θ); θ is the parameters in order, each column-major. A non-finite f is an error
    /// naming the first node that overflowed.
    pub fn value(&mut self, theta: &[f64]) -> Result<f64, Diags> {
        let theta = check_len(theta, self.graph.n_params(), "θ")?;
        let g = &*self.graph;
        let v = self.ev.value(theta, self.opts).map_err(eval_err(g))?;
        self.ev.check_finite(Order::Zero).map_err(eval_err(g))?;
        Ok(v)
    }

    /// The loss part g of the last evaluation (0 when the model has no loss term).
    pub fn loss(&self) -> f64 {
        self.ev.loss()
    }

    /// f(θ) and ∇f(θ) by the reverse pass (where f is not differentiable, the documented
    /// selection of `eval::reverse`), in θ's layout.
    pub fn gradient(&mut self, theta: &[f64]) -> Result<(f64, Vec<f64>), Diags> {
        let mut grad = self.session.theta_buffer()?;
        grad.resize(self.graph.n_params(), 0.0);
        let v = self.gradient_into(theta, &mut grad)?;
        Ok((v, grad))
    }

    /// [`Objective::gradient`] into a buffer of length n.
    pub fn gradient_into(&mut self, theta: &[f64], grad: &mut [f64]) -> Result<f64, Diags> {
        let n = self.graph.n_params();
        let theta = check_len(theta, n, "θ")?;
        let grad = check_len_mut(grad, n)?;
        let g = &*self.graph;
        let v = self
            .ev
            .gradient(theta, grad, self.opts)
            .map_err(eval_err(g))?;
        self.ev.check_finite(Order::Zero).map_err(eval_err(g))?;
        Ok(v)
    }
}

/// What `mcopt eval` computes at a point.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// f(θ) on the training split.
    pub value: f64,
    /// Its loss part g.
    pub loss: f64,
    /// Whether the objective has a loss term (else `loss` is 0 and says nothing).
    pub has_loss: bool,
    /// The loss on the test split, when one is bound.
    pub test_loss: Option<f64>,
    /// ∇f(θ), when asked for, in θ's layout (see [`Objective::gradient`]).
    pub gradient: Option<Vec<f64>>,
    /// The specs of the parameters, to split θ or the gradient by name.
    pub specs: Vec<VarSpec>,
}

/// What `mcopt eval` computes: with `gradient` also ∇f; `ztol` as for every evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalRequest {
    pub ztol: f64,
    pub gradient: bool,
}

/// f, its loss, the test loss and (when asked) ∇f at `at`.
pub fn evaluate(
    session: &Arc<Session>,
    at: &Point<'_>,
    req: &EvalRequest,
) -> Result<Evaluated, Diags> {
    let s = &**session;
    let train = require_graph(s, Split::Train)?;
    let theta = match at {
        Point::Initial => s.point_in(None, &train)?,
        Point::File(p) => s.point_in(Some(p), &train)?,
        Point::Theta(t) => check_len(t, train.n_params(), "θ")?.to_vec(),
    };
    let mut obj = Objective::from_graph(Arc::clone(session), train, req.ztol)?;
    let value = obj.value(&theta)?;
    let loss = obj.loss();
    let test_loss = match s.graph(Split::Test)? {
        Some(tg) => {
            let mut tev = Evaluator::new(&tg, &s.registry, Order::Zero).map_err(eval_err(&tg))?;
            tev.value(&theta, obj.opts).map_err(eval_err(&tg))?;
            tev.check_finite(Order::Zero).map_err(eval_err(&tg))?;
            Some(tev.loss())
        }
        None => None,
    };
    let gradient = match req.gradient {
        true => Some(obj.gradient(&theta)?.1),
        false => None,
    };
    Ok(Evaluated {
        value,
        loss,
        has_loss: s.model.terms.iter().any(|t| t.class == TermClass::Loss),
        test_loss,
        gradient,
        specs: obj.param_specs(),
    })
}

/// A direction: a direction file (names missing are zero; for (P0)/(P1) layer entries such as
/// `h[3]` may be given) or values in memory — over θ (layer entries zero), or for (P0)/(P1)
/// over all of z = (θ, u).
#[derive(Debug, Clone, Copy)]
pub enum Direction<'a> {
    File(&'a str),
    Values(&'a [f64]),
}

/// What `mcopt diff` computes: the form, the order and the kink tolerance.
#[derive(Debug, Clone)]
pub struct DirectionalRequest {
    /// (P): f over θ; (P0): F over z; (P1): Θ over z with its β.
    pub form: FormSpec,
    /// [`Order::One`]: f′; [`Order::Two`]: f′ and f″.
    pub order: Order,
    /// |argument − breakpoint| ≤ ztol counts as a kink (≥ 0).
    pub ztol: f64,
}

/// The derivatives along a direction, with ztol > 0 also the exact ones (ztol 0).
#[derive(Debug, Clone)]
pub struct Directional {
    /// f, f′ and f″ with the request's ztol, and the number of active kinks.
    pub taylor: Taylor,
    pub ztol: f64,
    /// With ztol > 0 the pieces are chosen as if arguments within ztol sat on their
    /// breakpoints, so `taylor` is not f′(x; d), f″(x; d): these are.
    pub exact: Option<Taylor>,
}

/// f, f′ and f″ of the form's objective at `at` along `dir`; in (P0)/(P1) the point is completed
/// as for a certificate.
pub fn directional(
    s: &Session,
    at: &Point<'_>,
    dir: &Direction<'_>,
    req: &DirectionalRequest,
) -> Result<Directional, Diags> {
    let (graph, x, d) = match &req.form {
        FormSpec::P => {
            let g = require_graph(s, Split::Train)?;
            let theta = match at {
                Point::Initial => s.point_in(None, &g)?,
                Point::File(p) => s.point_in(Some(p), &g)?,
                Point::Theta(t) => check_len(t, g.n_params(), "θ")?.to_vec(),
            };
            let d = match dir {
                Direction::File(p) => s.direction_in(p, &g)?,
                Direction::Values(v) => check_len(v, g.n_params(), "the direction")?.to_vec(),
            };
            (g, theta, d)
        }
        form => {
            let prep = certify::prepare_at(s, form, at, 1e-6)?;
            let n_theta = prep.graph.n_params();
            let n_z = prep.specs.iter().map(VarSpec::len).sum();
            let d = match dir {
                Direction::File(p) => {
                    let d = config::load_point(Path::new(p), &prep.specs, PointMode::Direction)?;
                    d.values
                        .into_iter()
                        .zip(&prep.specs)
                        .flat_map(|(v, sp)| v.unwrap_or_else(|| vec![0.0; sp.len()]))
                        .collect()
                }
                Direction::Values(v) if v.len() == n_theta => {
                    let mut d = v.to_vec();
                    d.resize(n_z, 0.0);
                    d
                }
                Direction::Values(v) => check_len(v, n_z, "the direction")?.to_vec(),
            };
            let x = prep.objective().1.to_vec();
            let graph = match prep.form {
                Form::P => prep.graph,
                Form::P0 => prep.lifted.graph,
                Form::P1 => prep.penalized.unwrap_or(prep.graph),
            };
            (graph, x, d)
        }
    };
    let taylor = |ztol: f64| -> Result<Taylor, Diags> {
        // Buffers for order 2 also at order 1: f′ of sqrt at 0 needs the second coefficient.
        let mut ev = Evaluator::new(&graph, &s.registry, Order::Two).map_err(eval_err(&graph))?;
        let t = ev
            .directional(&x, &d, req.order, EvalOptions { ztol })
            .map_err(eval_err(&graph))?;
        ev.check_finite(req.order).map_err(eval_err(&graph))?;
        Ok(t)
    };
    let t = taylor(req.ztol)?;
    let exact = match req.ztol > 0.0 {
        true => Some(taylor(0.0)?),
        false => None,
    };
    Ok(Directional {
        taylor: t,
        ztol: req.ztol,
        exact,
    })
}

/// The graph of `split`, or `mcopt::data::unbound` when the split has no data.
pub fn require_graph(s: &Session, split: Split) -> Result<Graph, Diags> {
    match s.graph(split)? {
        Some(g) => Ok(g),
        None => Err(
            Diag::new("mcopt::data::unbound", "no data are bound for this split")
                .in_file(&s.model_path)
                .into(),
        ),
    }
}

/// `values` when it has `n` entries, else `mcopt::point::shape` saying what it should have.
pub(crate) fn check_len<'v>(values: &'v [f64], n: usize, what: &str) -> Result<&'v [f64], Diags> {
    if values.len() == n {
        return Ok(values);
    }
    Err(Diag::new(
        "mcopt::point::shape",
        format!(
            "expected {what} to have {n} entries (the model's parameters in order), found {}",
            values.len()
        ),
    )
    .into())
}

fn check_len_mut(values: &mut [f64], n: usize) -> Result<&mut [f64], Diags> {
    check_len(values, n, "the gradient buffer")?;
    Ok(values)
}

fn eval_err(g: &Graph) -> impl Fn(EvalError) -> Diags + '_ {
    move |e| Diags::from(e.to_diag(g))
}
