//! Reductions over index ranges: `sum(i in a..b, e)`, `mean(..)`, `max(..)`, `min(..)`.
//!
//! A body that is elementwise in its index is checked once, as a vector over the range: `i`
//! becomes the constant vector `[a, .., b]`, `x[i + c]` (any index affine in `i`, also
//! `M[i, j]`, `x[n + 1 - i]`) a [`CKind::Gather`] of the entries it takes, operators and
//! elementwise functions act on the whole vector, and the reduction is one node
//! (`sum`, `mean`, or the n-ary `max` / `min`). The graph then has the same number of nodes
//! whatever the length of the range. A body that is not elementwise in `i` (an index that is
//! not affine in `i`, a nested reduction whose body uses `i`, a function of a vector, a
//! plugin function) is unrolled, one copy per value of `i`, up to [`MAX_UNROLL`] values.

use std::sync::Arc;

use super::expr::{lit, node, scalar_of, unary, Ctx};
use super::items::{Binding, Checker};
use super::{Binary, CExpr, CKind, Shape, Unary};
use crate::diag::{Diag, Span};
use crate::syntax::ast::{BinOp, Expr, ExprKind, Ident};

/// Largest range a body that cannot be vectorized is unrolled over.
pub const MAX_UNROLL: usize = 256;

/// Which reduction over an index range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeReduce {
    Sum,
    Mean,
    Max,
    Min,
}

/// The index variable of a range being checked as a vector.
struct IndexVar<'a> {
    name: &'a str,
    lo: i64,
    len: usize,
}

/// A checked body part: the same for every `i`, or one entry per `i` (a `vec(len)`).
enum V {
    Uniform(CExpr),
    PerIndex(CExpr),
}

/// Why a body part is not checked as a vector.
enum NoVec {
    /// Not elementwise in the index (no diagnostic yet; the body is unrolled).
    Unroll(&'static str),
    /// A diagnostic was recorded.
    Failed,
}

type VResult = Result<V, NoVec>;

/// `c₀ + c₁·i`.
#[derive(Debug, Clone, Copy)]
struct Affine {
    c0: i64,
    c1: i64,
}

impl Checker<'_> {
    /// `name(i in lo..hi, body)`.
    pub(super) fn range_reduce(
        &mut self,
        e: &Expr,
        kind: RangeReduce,
        (var, lo, hi): (&Ident, &Expr, &Expr),
        body: &Expr,
        ctx: &Ctx,
    ) -> Option<CExpr> {
        if let Some((_, declared)) = self.scope.get(&var.name) {
            let d = Diag::new(
                "mcopt::check::index",
                format!(
                    "`{}` cannot be an index variable: the name is already declared",
                    var.name
                ),
            )
            .at(&self.source, var.span, "index variable")
            .label(*declared, "declared here")
            .help("pick a fresh name for the index, like i or j");
            self.error(d);
            return None;
        }
        if ctx.time.as_deref() == Some(var.name.as_str()) {
            let d = Diag::new(
                "mcopt::check::index",
                format!("`{}` is the time variable here", var.name),
            )
            .at(&self.source, var.span, "index variable")
            .help("pick another name for the index, like i");
            self.error(d);
            return None;
        }
        let (lo_v, hi_v) = (self.bound(lo), self.bound(hi));
        let (lo_v, hi_v) = (lo_v?, hi_v?);
        if hi_v < lo_v {
            let d = Diag::new(
                "mcopt::check::range",
                format!("the range {lo_v}..{hi_v} of `{}` is empty", var.name),
            )
            .at(&self.source, lo.span.to(hi.span), "empty range")
            .help("a range a..b needs a ≤ b");
            self.error(d);
            return None;
        }
        let len = usize::try_from(hi_v - lo_v + 1).unwrap_or(usize::MAX);
        if len > super::MAX_ELEMENTS {
            let d = Diag::new(
                "mcopt::check::too_large",
                format!(
                    "the range {lo_v}..{hi_v} has more than {} values",
                    super::MAX_ELEMENTS
                ),
            )
            .at(&self.source, lo.span.to(hi.span), "range here");
            self.error(d);
            return None;
        }
        let iv = IndexVar {
            name: &var.name,
            lo: lo_v,
            len,
        };
        let v = match self.vexpr(body, &iv, ctx) {
            Ok(v) => v,
            Err(NoVec::Failed) => return None,
            Err(NoVec::Unroll(why)) => {
                return self.unrolled(e, kind, (var, lo_v, len), body, ctx, why)
            }
        };
        let (per, uniform) = match v {
            V::PerIndex(c) => (Some(c), None),
            V::Uniform(c) => (None, Some(c)),
        };
        if let Some(c) = uniform {
            if !self.real_body(&c, kind) {
                return None;
            }
            let mut out = match kind {
                RangeReduce::Sum => {
                    let n = Arc::new(lit(vec![len as f64], Shape::SCALAR, e.span));
                    super::expr::fold(node(
                        CKind::Binary(Binary::ElemMul, n, Arc::new(c)),
                        Shape::SCALAR,
                        e.span,
                    ))
                }
                _ => c,
            };
            out.span = e.span;
            return Some(out);
        }
        let c = per?;
        let op = match kind {
            RangeReduce::Sum => Unary::Sum,
            RangeReduce::Mean => Unary::Mean,
            RangeReduce::Max => Unary::Max,
            RangeReduce::Min => Unary::Min,
        };
        Some(unary(op, c, e.span))
    }

    /// A range bound: an integer constant.
    fn bound(&mut self, a: &Expr) -> Option<i64> {
        let v = self.expr(a, &Ctx::top())?;
        match scalar_of(&v) {
            Some(x) if x.fract() == 0.0 && x.abs() <= 1e15 => Some(x as i64),
            found => {
                let label = found.map_or_else(
                    || format!("this is a {} expression", v.shape),
                    |x| format!("this is {x}"),
                );
                let d = Diag::new(
                    "mcopt::check::range",
                    "a range bound must be an integer constant",
                )
                .at(&self.source, a.span, label)
                .help("write bounds from whole numbers and constants, like 1..n or 2..n-1");
                self.error(d);
                None
            }
        }
    }

    /// The body of a reduction over a range must be real for each index.
    fn real_body(&mut self, c: &CExpr, kind: RangeReduce) -> bool {
        if c.shape.is_scalar() {
            return true;
        }
        let name = match kind {
            RangeReduce::Sum => "sum",
            RangeReduce::Mean => "mean",
            RangeReduce::Max => "max",
            RangeReduce::Min => "min",
        };
        let d = Diag::new(
            "mcopt::check::shape",
            format!(
                "the body of `{name}` over a range must be real for each index, found {}",
                c.shape
            ),
        )
        .at(&self.source, c.span, format!("this is {}", c.shape))
        .help("index the vector with the range variable, like x[i], or reduce it first");
        self.error(d);
        false
    }

    /// Whether the expression mentions the name `var` (not under a nested range of the same
    /// name).
    fn mentions(e: &Expr, var: &str) -> bool {
        match &e.kind {
            ExprKind::Number(_) => false,
            ExprKind::Name(id) => id.name == var,
            ExprKind::Index { base, args } => {
                Self::mentions(base, var) || args.iter().any(|a| Self::mentions(a, var))
            }
            ExprKind::Neg(a) => Self::mentions(a, var),
            ExprKind::Binary { lhs, rhs, .. } => {
                Self::mentions(lhs, var) || Self::mentions(rhs, var)
            }
            ExprKind::Pow { base, .. } => Self::mentions(base, var),
            ExprKind::Call { args, .. } | ExprKind::List(args) => {
                args.iter().any(|a| Self::mentions(a, var))
            }
            ExprKind::Range { var: v, lo, hi } => {
                v.name == var || Self::mentions(lo, var) || Self::mentions(hi, var)
            }
        }
    }

    /// Check `e` as a vector over the range of `iv`.
    fn vexpr(&mut self, e: &Expr, iv: &IndexVar<'_>, ctx: &Ctx) -> VResult {
        if !Self::mentions(e, iv.name) {
            return self.expr(e, ctx).map(V::Uniform).ok_or(NoVec::Failed);
        }
        match &e.kind {
            ExprKind::Name(_) => {
                let values = (0..iv.len).map(|k| (iv.lo + k as i64) as f64).collect();
                Ok(V::PerIndex(lit(values, Shape::vector(iv.len), e.span)))
            }
            ExprKind::Neg(a) => {
                let a = self.per_index(a, iv, ctx)?;
                Ok(V::PerIndex(unary(Unary::Neg, a, e.span)))
            }
            ExprKind::Pow { base, exponent, .. } => {
                let a = self.per_index(base, iv, ctx)?;
                Ok(V::PerIndex(unary(Unary::PowI(*exponent), a, e.span)))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.vexpr(lhs, iv, ctx)?, self.vexpr(rhs, iv, ctx)?);
                let kind = match op {
                    BinOp::Add => Binary::Add,
                    BinOp::Sub => Binary::Sub,
                    BinOp::Mul | BinOp::ElemMul => Binary::ElemMul,
                    BinOp::Div => Binary::Div,
                };
                self.combine(kind, a, b, e.span, iv)
            }
            ExprKind::Index { base, args } => self.gather(e, base, args, iv, ctx),
            ExprKind::Call { func, args } => self.vcall(e, func, args, iv, ctx),
            ExprKind::Number(_) | ExprKind::List(_) | ExprKind::Range { .. } => {
                Err(NoVec::Unroll("a list or range that uses the index"))
            }
        }
    }

    /// A body part that uses the index, as its vector over the range.
    fn per_index(&mut self, e: &Expr, iv: &IndexVar<'_>, ctx: &Ctx) -> Result<CExpr, NoVec> {
        match self.vexpr(e, iv, ctx)? {
            V::PerIndex(c) => Ok(c),
            V::Uniform(c) => Ok(c),
        }
    }

    /// An elementwise operation of two parts; a part the same for every index must be real.
    fn combine(&mut self, kind: Binary, a: V, b: V, span: Span, iv: &IndexVar<'_>) -> VResult {
        let shape = Shape::vector(iv.len);
        let side = |v: V| match v {
            V::PerIndex(c) => Ok(c),
            V::Uniform(c) if c.shape.is_scalar() => Ok(c),
            V::Uniform(_) => Err(NoVec::Unroll(
                "a vector operand that does not use the index",
            )),
        };
        let (a, b) = (side(a)?, side(b)?);
        Ok(V::PerIndex(super::expr::fold(node(
            CKind::Binary(kind, Arc::new(a), Arc::new(b)),
            shape,
            span,
        ))))
    }

    /// `x[i + c]`, `M[i, j]`, `x[n + 1 - i]`: the entries taken over the range, one gather.
    fn gather(
        &mut self,
        e: &Expr,
        base: &Expr,
        args: &[Expr],
        iv: &IndexVar<'_>,
        ctx: &Ctx,
    ) -> VResult {
        if Self::mentions(base, iv.name) {
            return Err(NoVec::Unroll("an indexed value that uses the index"));
        }
        if let ExprKind::Name(id) = &base.kind {
            if matches!(self.scope.get(&id.name), Some((Binding::Data(_), _)))
                || matches!(self.scope.get(&id.name), Some((Binding::Layer(l), _)) if self.layers[*l].indexed)
            {
                return Err(NoVec::Unroll("a time index that uses the index"));
            }
        }
        let b = self.expr(base, ctx).ok_or(NoVec::Failed)?;
        let want = if b.shape.is_scalar() {
            0
        } else if b.shape.cols == 1 {
            1
        } else {
            2
        };
        if args.len() != want {
            // The unrolled copy reports the indexing error.
            return Err(NoVec::Unroll("indexing of the wrong arity"));
        }
        let dims = [b.shape.rows, b.shape.cols];
        let mut start = 0i64;
        let mut step = 0i64;
        let mut stride = 1i64;
        for (k, a) in args.iter().enumerate() {
            let Some(f) = self.affine(a, iv.name) else {
                return Err(NoVec::Unroll(
                    "an index that is not affine in the index variable",
                ));
            };
            let first = f.c0 + f.c1 * iv.lo;
            let last = f.c0 + f.c1 * (iv.lo + iv.len as i64 - 1);
            let (min, max) = (first.min(last), first.max(last));
            if min < 1 || max > dims[k] as i64 {
                let text = &self.source.text[a.span.start..a.span.end];
                let msg = if f.c1 == 0 {
                    format!(
                        "index `{text}` is {first}, outside the range 1..{} of this dimension",
                        dims[k]
                    )
                } else {
                    format!(
                        "index `{text}` takes the values {first}..{last} for {} in {}..{}, outside the range 1..{} of this dimension",
                        iv.name,
                        iv.lo,
                        iv.lo + iv.len as i64 - 1,
                        dims[k]
                    )
                };
                let d = Diag::new("mcopt::check::index", msg)
                    .at(&self.source, a.span, format!("leaves 1..{}", dims[k]))
                    .label(b.span, format!("this is {}", b.shape))
                    .help("indexes are 1-based; shorten the range or shift the index");
                self.error(d);
                return Err(NoVec::Failed);
            }
            start += (first - 1) * stride;
            step += f.c1 * stride;
            stride *= dims[0] as i64;
        }
        let kind = CKind::Gather {
            base: Arc::new(b),
            start: start as usize,
            step: step as isize,
        };
        Ok(V::PerIndex(node(kind, Shape::vector(iv.len), e.span)))
    }

    /// An index as `c₀ + c₁·i` with integer constants, if it is one.
    fn affine(&mut self, a: &Expr, var: &str) -> Option<Affine> {
        match &a.kind {
            ExprKind::Name(id) if id.name == var => Some(Affine { c0: 0, c1: 1 }),
            ExprKind::Neg(x) => {
                let f = self.affine(x, var)?;
                Some(Affine {
                    c0: -f.c0,
                    c1: -f.c1,
                })
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (f, g) = (self.affine(lhs, var)?, self.affine(rhs, var)?);
                match op {
                    BinOp::Add => Some(Affine {
                        c0: f.c0.checked_add(g.c0)?,
                        c1: f.c1.checked_add(g.c1)?,
                    }),
                    BinOp::Sub => Some(Affine {
                        c0: f.c0.checked_sub(g.c0)?,
                        c1: f.c1.checked_sub(g.c1)?,
                    }),
                    BinOp::Mul if f.c1 == 0 || g.c1 == 0 => Some(Affine {
                        c0: f.c0.checked_mul(g.c0)?,
                        c1: f
                            .c0
                            .checked_mul(g.c1)?
                            .checked_add(f.c1.checked_mul(g.c0)?)?,
                    }),
                    _ => None,
                }
            }
            _ if !Self::mentions(a, var) => {
                let mut scratch = crate::diag::Diags::new();
                std::mem::swap(&mut scratch, &mut self.diags);
                let v = self.expr(a, &Ctx::top());
                std::mem::swap(&mut scratch, &mut self.diags);
                let x = scalar_of(&v?)?;
                (x.fract() == 0.0 && x.abs() <= 1e15).then_some(Affine {
                    c0: x as i64,
                    c1: 0,
                })
            }
            _ => None,
        }
    }

    /// An elementwise function of a part that uses the index.
    fn vcall(
        &mut self,
        e: &Expr,
        func: &Ident,
        args: &[Expr],
        iv: &IndexVar<'_>,
        ctx: &Ctx,
    ) -> VResult {
        let elementwise = match func.name.as_str() {
            "abs" => Some(Unary::Abs),
            "exp" => Some(Unary::Exp),
            "log" => Some(Unary::Log),
            "sqrt" => Some(Unary::Sqrt),
            _ => None,
        };
        match (func.name.as_str(), args) {
            (_, [a]) if elementwise.is_some() && self.registry.lookup(&func.name).is_none() => {
                let a = self.per_index(a, iv, ctx)?;
                let op = elementwise.unwrap_or(Unary::Abs);
                Ok(V::PerIndex(unary(op, a, e.span)))
            }
            ("max" | "min", [a, b]) if !matches!(a.kind, ExprKind::Range { .. }) => {
                let (a, b) = (self.vexpr(a, iv, ctx)?, self.vexpr(b, iv, ctx)?);
                let kind = if func.name == "max" {
                    Binary::Max
                } else {
                    Binary::Min
                };
                self.combine(kind, a, b, e.span, iv)
            }
            ("pow", [a, p]) if !Self::mentions(p, iv.name) => {
                let a = self.per_index(a, iv, ctx)?;
                let p = self.pow_exponent(p)?;
                Ok(V::PerIndex(unary(Unary::Pow(p), a, e.span)))
            }
            _ => Err(NoVec::Unroll(
                "a function that is not elementwise in the index",
            )),
        }
    }

    /// The exponent of `pow`: a real constant.
    fn pow_exponent(&mut self, p: &Expr) -> Result<f64, NoVec> {
        let v = self.expr(p, &Ctx::top()).ok_or(NoVec::Failed)?;
        match scalar_of(&v) {
            Some(x) => Ok(x),
            None => {
                self.not_constant_exponent(p, &v);
                Err(NoVec::Failed)
            }
        }
    }

    pub(super) fn not_constant_exponent(&mut self, p: &Expr, v: &CExpr) {
        let d = Diag::new(
            "mcopt::check::not_constant",
            "the exponent of `pow` must be a real constant",
        )
        .at(
            &self.source,
            p.span,
            format!("this is a {} expression", v.shape),
        )
        .help("pow(a, p) takes a constant p; for a variable exponent write exp(p * log(a))");
        self.error(d);
    }

    /// The body checked once per value of the index (bound as a constant), joined by one
    /// reduction node over the stacked values.
    fn unrolled(
        &mut self,
        e: &Expr,
        kind: RangeReduce,
        (var, lo, len): (&Ident, i64, usize),
        body: &Expr,
        ctx: &Ctx,
        why: &str,
    ) -> Option<CExpr> {
        if len > MAX_UNROLL {
            let d = Diag::new(
                "mcopt::check::unroll",
                format!(
                    "this body is not elementwise in `{}` ({why}), and its range has {len} values, more than the {MAX_UNROLL} mcopt unrolls",
                    var.name
                ),
            )
            .at(&self.source, body.span, "not elementwise in the index")
            .help("write the body from entries x[i + c] of vectors, operators and elementwise functions (docs/language.md, \"Reductions over index ranges\")");
            self.error(d);
            return None;
        }
        if !self.notes.iter().any(|(s, _)| *s == e.span) {
            let text = &self.source.text[e.span.start..e.span.end];
            let head: String = text.chars().take(60).collect();
            let more = if head.len() < text.len() { " .." } else { "" };
            self.notes.push((
                e.span,
                format!(
                    "`{head}{more}` is unrolled into {len} copies: its body is not elementwise in `{}` ({why})",
                    var.name
                ),
            ));
        }
        let mut items = Vec::with_capacity(len);
        for k in 0..len {
            let value = (lo + k as i64) as f64;
            self.scope
                .insert(var.name.clone(), (Binding::Const(value), var.span));
            let c = self.expr(body, ctx);
            self.scope.remove(&var.name);
            let c = c?;
            if !self.real_body(&c, kind) {
                return None;
            }
            items.push(c);
        }
        let stacked = super::expr::stack(items, e.span);
        let op = match kind {
            RangeReduce::Sum => Unary::Sum,
            RangeReduce::Mean => Unary::Mean,
            RangeReduce::Max => Unary::Max,
            RangeReduce::Min => Unary::Min,
        };
        Some(unary(op, stacked, e.span))
    }
}
