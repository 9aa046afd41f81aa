//! What the tiers ask of a problem: exact f′, f″ along directions, the kink arguments' slopes,
//! gradients and Hessian-vector products, and the mapping of directions into the form's variables.

use super::kinks::{self, Kink, KinkOrder};
use super::{Options, Verdict};
use crate::eval::{EvalError, EvalOptions, Evaluator, Taylor};
use crate::forms::Lifted;
use crate::graph::Graph;
use crate::registry::{Order, Registry};

/// Which problem is certified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    P,
    P0,
    P1,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::P => "p",
            Form::P0 => "p0",
            Form::P1 => "p1",
        }
    }
}

/// A point of one form.
///
/// - (P): `graph` is the model's graph and `point` is θ.
/// - (P0): `graph` is the model's graph, `point` is θ of a feasible z and `lifted` its lift: the
///   tangent cone is parameterized by θ-directions completed by forward propagation (MATH.md §3),
///   F′(z; T d) = f′(θ; d), and curvatures are F″(z; T d) of the lifted objective.
/// - (P1): `graph` is the penalized graph ([`Lifted::penalized`]) and `point` is z.
#[derive(Clone, Copy)]
pub struct Problem<'a> {
    pub form: Form,
    pub graph: &'a Graph,
    pub registry: &'a Registry,
    pub point: &'a [f64],
    pub lifted: Option<&'a Lifted>,
}

struct P0<'a> {
    lifted: &'a Lifted,
    ev: Evaluator<'a>,
    z: Vec<f64>,
}

pub(super) struct Oracle<'a> {
    ev: Evaluator<'a>,
    pub x: Vec<f64>,
    pub n: usize,
    pub opts: EvalOptions,
    p0: Option<P0<'a>>,
    pub kinks: Vec<Kink>,
}

impl<'a> Oracle<'a> {
    pub fn new(p: &Problem<'a>, o: &Options) -> Result<Oracle<'a>, EvalError> {
        let opts = EvalOptions { ztol: o.ztol };
        let mut ev = Evaluator::new(p.graph, p.registry, Order::Two)?;
        ev.value(p.point, opts)?;
        ev.check_finite(Order::Zero)?;
        let p0 = match (p.form, p.lifted) {
            (Form::P0, Some(lifted)) => {
                let z = lifted.complete(&mut ev, p.point)?;
                let lev = Evaluator::new(&lifted.graph, p.registry, Order::Two)?;
                ev.value(p.point, opts)?;
                Some(P0 { lifted, ev: lev, z })
            }
            _ => None,
        };
        let kinks = kinks::scan(&ev, p.registry, o.ztol);
        Ok(Oracle {
            ev,
            x: p.point.to_vec(),
            n: p.point.len(),
            opts,
            p0,
            kinks,
        })
    }

    pub fn first_order_kinks(&self) -> usize {
        self.kinks
            .iter()
            .filter(|k| k.order == KinkOrder::First)
            .count()
    }

    /// f, f′(x; d) and with `Order::Two` the curvature of the form along d.
    pub fn eval(&mut self, d: &[f64], order: Order) -> Result<Taylor, EvalError> {
        let Some(p0) = &mut self.p0 else {
            return self.ev.directional(&self.x, d, order, self.opts);
        };
        let mut t = self.ev.directional(
            &self.x,
            d,
            if order == Order::Two {
                Order::One
            } else {
                order
            },
            self.opts,
        )?;
        if order == Order::Two {
            let dz = complete(p0.lifted, &self.ev, d);
            let lt = p0.ev.directional(&p0.z, &dz, Order::Two, self.opts)?;
            t.d2 = lt.d2;
        }
        Ok(t)
    }

    /// After [`Oracle::eval`]: the first-order coefficient of every kink's argument.
    pub fn kink_slopes(&self) -> Vec<f64> {
        self.kinks
            .iter()
            .map(|k| k.arg.coeff(&self.ev, 1))
            .collect()
    }

    /// A gradient selection of f at x (∇f where f is differentiable).
    pub fn gradient(&mut self) -> Result<Vec<f64>, EvalError> {
        let mut g = vec![0.0; self.n];
        self.ev.gradient(&self.x, &mut g, self.opts)?;
        Ok(g)
    }

    /// H v at a smooth point. (P), (P1): central differences of exact gradients,
    /// (∇f(x + hv) − ∇f(x − hv)) / 2h. (P0): exact, by polarization of the ray-Taylor curvature,
    /// (Hv)_j = (q(v + e_j) − q(v − e_j)) / 4 with q(d) = F″(z; T d).
    pub fn hvp(&mut self, v: &[f64]) -> Result<Vec<f64>, EvalError> {
        if self.p0.is_some() {
            let mut out = vec![0.0; self.n];
            let mut d = v.to_vec();
            for (j, o) in out.iter_mut().enumerate() {
                d[j] = v[j] + 1.0;
                let qp = self.eval(&d, Order::Two)?.d2.unwrap_or(f64::NAN);
                d[j] = v[j] - 1.0;
                let qm = self.eval(&d, Order::Two)?.d2.unwrap_or(f64::NAN);
                d[j] = v[j];
                *o = (qp - qm) / 4.0;
            }
            return Ok(out);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Ok(vec![0.0; self.n]);
        }
        let xnorm = self.x.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let h = 1e-5 * (1.0 + xnorm) / norm;
        let mut gp = vec![0.0; self.n];
        let mut gm = vec![0.0; self.n];
        let xp: Vec<f64> = self.x.iter().zip(v).map(|(x, d)| x + h * d).collect();
        let xm: Vec<f64> = self.x.iter().zip(v).map(|(x, d)| x - h * d).collect();
        self.ev.gradient(&xp, &mut gp, self.opts)?;
        self.ev.gradient(&xm, &mut gm, self.opts)?;
        Ok(gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect())
    }

    /// The flattest of −∇f and the coordinate directions (for plots without a witness).
    pub fn flattest(&mut self) -> Result<Vec<f64>, EvalError> {
        let g = self.gradient()?;
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mut d = vec![0.0; self.n];
        if norm > 0.0 {
            d.iter_mut().zip(&g).for_each(|(d, g)| *d = -g / norm);
        } else if let Some(first) = d.first_mut() {
            *first = 1.0;
        }
        Ok(d)
    }

    /// Map a verdict's direction into the form's variables ((P0): complete it to z).
    pub fn map_to_form(&mut self, v: &mut Verdict) -> Result<(), EvalError> {
        if let Some(d) = v.direction.take() {
            v.direction = Some(self.form_direction(&d)?);
        }
        Ok(())
    }

    pub fn form_direction(&mut self, d: &[f64]) -> Result<Vec<f64>, EvalError> {
        if self.p0.is_none() {
            return Ok(d.to_vec());
        }
        self.ev.directional(&self.x, d, Order::One, self.opts)?;
        let p0 = self.p0.as_ref().map(|p| p.lifted);
        Ok(p0.map_or_else(|| d.to_vec(), |l| complete(l, &self.ev, d)))
    }
}

/// d completed by the forward-mode coefficients of the last evaluation of the original graph.
fn complete(lifted: &Lifted, ev: &Evaluator<'_>, d: &[f64]) -> Vec<f64> {
    let mut dz = d.to_vec();
    dz.resize(lifted.layout.n_z, 0.0);
    for b in &lifted.layout.blocks {
        dz[b.range()].copy_from_slice(ev.coeff(b.original, 1));
    }
    dz
}
