//! Property tests of the certificates: random piecewise-affine-plus-quadratic functions with
//! every kink at the point agree with brute force over the pieces (nested abs, and nested
//! max-type terms decided by the max-type tier), every refutation carries a witness whose slope
//! is checked, and second order at a smooth
//! point agrees with the smallest eigenvalue of the explicitly formed Hessian.

use crate::common;
use crate::common::cert::proptest_cases;

use common::eval::compile;
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::registry::{Order, Registry};
use mcopt::stationarity::{certify, Form, Options, Problem, Status};
use proptest::prelude::*;

/// A coefficient in {−2, −1.75, …, 2}.
fn coef() -> impl Strategy<Value = f64> {
    (-8i32..=8).prop_map(|k| k as f64 / 4.0)
}

/// f(x) = c·x + Σ a_i |v_i·x + e_i |w_i·x|| + Σ b_j max(p_j·x, q_j·x) + ½ s ‖x‖² in R²,
/// with e_i ∈ {0, 1} nesting a kink inside another.
#[derive(Debug, Clone)]
struct Pa {
    c: [f64; 2],
    abs: Vec<(f64, [f64; 2], f64, [f64; 2])>,
    max: Vec<(f64, [f64; 2], [f64; 2])>,
    s: f64,
}

fn vec2() -> impl Strategy<Value = [f64; 2]> {
    (coef(), coef()).prop_map(|(a, b)| [a, b])
}

fn pa() -> impl Strategy<Value = Pa> {
    (
        vec2(),
        prop::collection::vec((coef(), vec2(), (0..2u8).prop_map(f64::from), vec2()), 0..3),
        prop::collection::vec((coef(), vec2(), vec2()), 0..3),
        coef(),
    )
        .prop_map(|(c, abs, max, s)| Pa { c, abs, max, s })
}

fn lin(v: [f64; 2]) -> String {
    format!("({} * x1 + {} * x2)", v[0], v[1])
}

impl Pa {
    fn text(&self) -> String {
        let mut t = format!(
            "param x1: real\nparam x2: real\nminimize {} + 0.5 * {} * (x1^2 + x2^2)",
            lin(self.c),
            self.s
        );
        for (a, v, e, w) in &self.abs {
            t.push_str(&format!(
                " + {a} * abs({} + {e} * abs({}))",
                lin(*v),
                lin(*w)
            ));
        }
        for (b, p, q) in &self.max {
            t.push_str(&format!(" + {b} * max({}, {})", lin(*p), lin(*q)));
        }
        t
    }

    /// f′(0; d), from the formula.
    fn slope(&self, d: [f64; 2]) -> f64 {
        let dot = |v: [f64; 2]| v[0] * d[0] + v[1] * d[1];
        let mut f = dot(self.c);
        for (a, v, e, w) in &self.abs {
            f += a * (dot(*v) + e * dot(*w).abs()).abs();
        }
        for (b, p, q) in &self.max {
            f += b * dot(*p).max(dot(*q));
        }
        f
    }

    /// Brute force over the pieces: f′(0; ·) is linear on each sector between the kink
    /// directions, so its minimum on the circle is at a sector end or inside (found by a fine
    /// grid); stationary iff that minimum is ≥ 0.
    fn brute_force(&self) -> Status {
        let mut dirs: Vec<[f64; 2]> = (0..7200)
            .map(|k| {
                let a = k as f64 * std::f64::consts::PI / 3600.0;
                [a.cos(), a.sin()]
            })
            .collect();
        let mut lines: Vec<[f64; 2]> = Vec::new();
        for (_, v, _, w) in &self.abs {
            lines.push(*v);
            lines.push(*w);
            lines.push([v[0] + w[0], v[1] + w[1]]);
            lines.push([v[0] - w[0], v[1] - w[1]]);
        }
        for (_, p, q) in &self.max {
            lines.push([p[0] - q[0], p[1] - q[1]]);
        }
        for l in lines {
            dirs.push([-l[1], l[0]]);
            dirs.push([l[1], -l[0]]);
        }
        let min = dirs
            .iter()
            .map(|d| self.slope(*d))
            .fold(f64::INFINITY, f64::min);
        if min < -1e-9 {
            Status::NotStationary
        } else {
            Status::Stationary
        }
    }
}

/// f(x) = c·x + Σ a_i max(p_i·x, max(q_i·x, |r_i·x|)) in R² with every tie at 0: nested
/// max-type terms; a negative a_i makes f′ nonconvex (then other tiers decide).
#[derive(Debug, Clone)]
struct Mx {
    c: [f64; 2],
    terms: Vec<MxTerm>,
}

/// a · max(p·x, max(q·x, |r·x|)) as (a, p, q, r).
type MxTerm = (f64, [f64; 2], [f64; 2], [f64; 2]);

fn mx() -> impl Strategy<Value = Mx> {
    (
        vec2(),
        prop::collection::vec((coef(), vec2(), vec2(), vec2()), 1..4),
    )
        .prop_map(|(c, terms)| Mx { c, terms })
}

impl Mx {
    fn text(&self) -> String {
        let mut t = format!("param x1: real\nparam x2: real\nminimize {}", lin(self.c));
        for (a, p, q, r) in &self.terms {
            t.push_str(&format!(
                " + {a} * max({}, max({}, abs({})))",
                lin(*p),
                lin(*q),
                lin(*r)
            ));
        }
        t
    }

    fn convex(&self) -> bool {
        self.terms.iter().all(|t| t.0 >= 0.0)
    }

    /// Some term has a nested tie (its inner kinks are not all trivial).
    fn nested(&self) -> bool {
        self.terms
            .iter()
            .any(|(a, _, q, r)| *a > 0.0 && *q != *r && *r != [0.0, 0.0])
    }

    fn slope(&self, d: [f64; 2]) -> f64 {
        let dot = |v: [f64; 2]| v[0] * d[0] + v[1] * d[1];
        let mut f = dot(self.c);
        for (a, p, q, r) in &self.terms {
            f += a * dot(*p).max(dot(*q).max(dot(*r).abs()));
        }
        f
    }

    /// As [`Pa::brute_force`]: the minimum of f′(0; ·) on the circle, at sector ends or on a
    /// fine grid.
    fn brute_force(&self) -> Status {
        let mut dirs: Vec<[f64; 2]> = (0..7200)
            .map(|k| {
                let a = k as f64 * std::f64::consts::PI / 3600.0;
                [a.cos(), a.sin()]
            })
            .collect();
        for (_, p, q, r) in &self.terms {
            let neg = |v: [f64; 2]| [-v[0], -v[1]];
            let sub = |u: [f64; 2], v: [f64; 2]| [u[0] - v[0], u[1] - v[1]];
            for l in [
                *r,
                sub(*p, *q),
                sub(*p, *r),
                sub(*p, neg(*r)),
                sub(*q, *r),
                sub(*q, neg(*r)),
            ] {
                dirs.push([-l[1], l[0]]);
                dirs.push([l[1], -l[0]]);
            }
        }
        let min = dirs
            .iter()
            .map(|d| self.slope(*d))
            .fold(f64::INFINITY, f64::min);
        if min < -1e-9 {
            Status::NotStationary
        } else {
            Status::Stationary
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(64), ..ProptestConfig::default() })]

    #[test]
    fn verdicts_agree_with_brute_force_over_the_pieces(f in pa()) {
        let r = Registry::with_standard();
        let g = compile(&f.text(), &r);
        let x = [0.0, 0.0];
        let p = Problem { form: Form::P, graph: &g, registry: &r, point: &x, lifted: None, adjoint: None };
        let c = certify(&p, &Options::default()).unwrap();
        prop_assert_eq!(c.first.status, f.brute_force(), "{} {:?}", f.text(), c.first);
        if c.first.status == Status::NotStationary {
            // Every refutation carries its witness and its exact slope.
            let (Some(d), Some(s)) = (&c.first.direction, c.first.slope) else {
                return Err(TestCaseError::fail(format!("no witness: {:?}", c.first)));
            };
            prop_assert!(s < 0.0);
            prop_assert!((f.slope([d[0], d[1]]) - s).abs() <= 1e-9 * (1.0 + s.abs()));
        }
    }

    #[test]
    fn max_type_verdicts_agree_with_brute_force(f in mx()) {
        let r = Registry::with_standard();
        let g = compile(&f.text(), &r);
        let x = [0.0, 0.0];
        let p = Problem { form: Form::P, graph: &g, registry: &r, point: &x, lifted: None, adjoint: None };
        let c = certify(&p, &Options::default()).unwrap();
        prop_assert_eq!(c.first.status, f.brute_force(), "{} {:?}", f.text(), c.first);
        if f.convex() && f.nested() {
            prop_assert_eq!(c.first.method, "max_type", "{} {:?}", f.text(), c.first);
        }
        if c.first.status == Status::NotStationary {
            let (Some(d), Some(s)) = (&c.first.direction, c.first.slope) else {
                return Err(TestCaseError::fail(format!("no witness: {:?}", c.first)));
            };
            prop_assert!(s < 0.0);
            prop_assert!((f.slope([d[0], d[1]]) - s).abs() <= 1e-9 * (1.0 + s.abs()));
        }
    }

    #[test]
    fn second_order_at_a_smooth_point_agrees_with_the_explicit_hessian(
        q in prop::collection::vec(coef(), 6), cubic in coef()
    ) {
        // f(x) = ½ xᵀ S x + cubic · x1³ at 0 (∇f = 0), S symmetric from q.
        let s = [[q[0], q[1], q[2]], [q[1], q[3], q[4]], [q[2], q[4], q[5]]];
        let mut text = String::from("param x: vec(3)\nminimize 0 ");
        for (i, row) in s.iter().enumerate() {
            for (j, sij) in row.iter().enumerate() {
                text.push_str(&format!("+ 0.5 * {sij} * x[{}] * x[{}] ", i + 1, j + 1));
            }
        }
        text.push_str(&format!("+ {cubic} * x[1]^3"));
        let r = Registry::with_standard();
        let g = compile(&text, &r);
        let x = [0.0; 3];
        // The Hessian formed explicitly from exact curvatures: H_ij by polarization.
        let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap();
        let mut q2 = |d: [f64; 3]| ev.directional(&x, &d, Order::Two, EvalOptions::default()).unwrap().d2.unwrap();
        let mut h = nalgebra::Matrix3::zeros();
        for i in 0..3 {
            let mut e = [0.0; 3];
            e[i] = 1.0;
            h[(i, i)] = q2(e);
        }
        for i in 0..3 {
            for j in i + 1..3 {
                let mut e = [0.0; 3];
                e[i] = 1.0;
                e[j] = 1.0;
                let v = (q2(e) - h[(i, i)] - h[(j, j)]) / 2.0;
                h[(i, j)] = v;
                h[(j, i)] = v;
            }
        }
        let lam = h.symmetric_eigenvalues().min();
        let p = Problem { form: Form::P, graph: &g, registry: &r, point: &x, lifted: None, adjoint: None };
        let opts = Options { order: Order::Two, tol: 1e-6, ..Options::default() };
        let c = certify(&p, &opts).unwrap();
        prop_assert_eq!(c.first.status, Status::Stationary);
        let v = c.second.unwrap();
        let want = if lam >= -1e-6 { Status::Stationary } else { Status::NotStationary };
        prop_assert_eq!(v.status, want, "λ_min = {} {:?}", lam, v);
        if let Some(k) = v.curvature {
            // The witness is a unit vector: its curvature is at least λ_min, and close to it.
            prop_assert!(k >= lam - 1e-6 && k <= lam * 0.9, "curvature {} vs λ_min {}", k, lam);
        }
    }
}
