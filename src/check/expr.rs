//! Checking expressions: name resolution, time references, shapes and constant folding.

use std::sync::Arc;

pub(super) use super::ctx::{scalar_of, Ctx};
use super::items::{Binding, Checker};
use super::{Binary, CExpr, CKind, Shape, TimeRef, Unary, MAX_ELEMENTS};
use crate::diag::{Diag, Span};
use crate::syntax::ast::{BinOp, Expr, ExprKind, Ident};
use crate::text::plural;

pub(super) fn lit(values: Vec<f64>, shape: Shape, span: Span) -> CExpr {
    CExpr {
        kind: CKind::Literal(values),
        shape,
        span,
    }
}

pub(super) fn node(kind: CKind, shape: Shape, span: Span) -> CExpr {
    CExpr { kind, shape, span }
}

impl Checker<'_> {
    /// Check one expression; `None` means diagnostics were recorded.
    pub(super) fn expr(&mut self, e: &Expr, ctx: &Ctx) -> Option<CExpr> {
        match &e.kind {
            ExprKind::Number(v) => Some(lit(vec![*v], Shape::SCALAR, e.span)),
            ExprKind::Name(id) => self.name(id, ctx),
            ExprKind::Index { base, args } => self.index(e, base, args, ctx),
            ExprKind::Neg(a) => {
                let a = self.expr(a, ctx)?;
                Some(unary(Unary::Neg, a, e.span))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.expr(lhs, ctx), self.expr(rhs, ctx));
                self.binary(*op, a?, b?, e.span)
            }
            ExprKind::Pow { base, exponent, .. } => {
                let a = self.expr(base, ctx)?;
                Some(unary(Unary::PowI(*exponent), a, e.span))
            }
            ExprKind::Call { func, args } => self.call(e, func, args, ctx),
            ExprKind::List(items) => self.list(e, items, ctx),
            ExprKind::Range { var, .. } => {
                let d = Diag::new(
                    "mcopt::check::range",
                    format!("the index range of `{}` is not a value", var.name),
                )
                .at(&self.source, e.span, "range here")
                .help(
                    "a range is the first argument of sum, mean, max or min: sum(i in 1..n, x[i])",
                );
                self.error(d);
                None
            }
        }
    }

    /// "did you mean `x`? " for the nearest name in scope (skipped for huge scopes).
    fn suggest_name(&self, name: &str) -> String {
        const MAX_SCOPE: usize = 10_000;
        if self.scope.len() > MAX_SCOPE {
            return String::new();
        }
        let mut names: Vec<&str> = self.scope.keys().map(String::as_str).collect();
        names.sort_unstable();
        crate::text::did_you_mean(name, &names)
    }

    fn name(&mut self, id: &Ident, ctx: &Ctx) -> Option<CExpr> {
        let Some((binding, _)) = self.scope.get(&id.name).cloned() else {
            let d = if ctx.time.as_deref() == Some(id.name.as_str()) {
                Diag::new(
                    "mcopt::check::time",
                    format!("the time variable `{}` can only index a sequence", id.name),
                )
                .at(&self.source, id.span, "used as a value")
                .help(format!(
                    "write `x[{}]` for the data or layer at this time step",
                    id.name
                ))
            } else {
                Diag::new(
                    "mcopt::check::unknown_name",
                    format!("unknown name `{}`", id.name),
                )
                .at(&self.source, id.span, "not declared")
                .help(format!(
                    "{}declare it with `param`, `const`, `let`, `layer` or `data` before its use",
                    self.suggest_name(&id.name)
                ))
            };
            self.error(d);
            return None;
        };
        match binding {
            Binding::Param(p) => Some(node(CKind::Param(p), self.params[p].shape, id.span)),
            Binding::Const(v) => Some(lit(vec![v], Shape::SCALAR, id.span)),
            Binding::Let(body) => {
                let mut e = (*body).clone();
                e.span = id.span;
                Some(e)
            }
            Binding::Data(_) => {
                let msg = format!("data `{}` is a sequence and needs a time index", id.name);
                let d = Diag::new("mcopt::check::time", msg)
                    .at(&self.source, id.span, "no time index")
                    .help(format!("write `{}[t]`", id.name));
                self.error(d);
                None
            }
            Binding::Layer(l) => self.plain_layer_ref(l, id, ctx),
            Binding::Poisoned => None,
        }
    }

    fn plain_layer_ref(&mut self, l: usize, id: &Ident, ctx: &Ctx) -> Option<CExpr> {
        let slot = &self.layers[l];
        let msg = if slot.indexed {
            format!(
                "layer `{}` is indexed by time and needs a time index",
                id.name
            )
        } else if ctx.layer == Some(l) {
            format!("layer `{}` refers to itself", id.name)
        } else if !slot.defined {
            format!("layer `{}` is used before its definition", id.name)
        } else {
            return Some(node(
                CKind::Layer {
                    id: l,
                    time: TimeRef::None,
                },
                slot.shape?,
                id.span,
            ));
        };
        let d = Diag::new("mcopt::check::layer_order", msg)
            .at(&self.source, id.span, "used here")
            .label(slot.span, "defined here")
            .help("a layer may use parameters, data and the layers defined above it");
        self.error(d);
        None
    }

    fn index(&mut self, e: &Expr, base: &Expr, args: &[Expr], ctx: &Ctx) -> Option<CExpr> {
        if let ExprKind::Name(id) = &base.kind {
            match self.scope.get(&id.name).map(|b| b.0.clone()) {
                Some(Binding::Data(d)) => return self.sequence_ref(e, id, args, ctx, Seq::Data(d)),
                Some(Binding::Layer(l)) if self.layers[l].indexed => {
                    return self.sequence_ref(e, id, args, ctx, Seq::Layer(l))
                }
                _ => {}
            }
        }
        let b = self.expr(base, ctx)?;
        self.element(e, b, args, ctx)
    }

    fn element(&mut self, e: &Expr, b: CExpr, args: &[Expr], ctx: &Ctx) -> Option<CExpr> {
        let want = if b.shape.is_scalar() {
            0
        } else if b.shape.cols == 1 {
            1
        } else {
            2
        };
        if want == 0 {
            let msg = format!(
                "a real takes no index, found {}",
                crate::text::plural(args.len(), "index", "indexes")
            );
            let d = Diag::new("mcopt::check::index", msg)
                .at(&self.source, e.span, "indexed here")
                .label(b.span, "this is real (1 × 1)")
                .help("every 1 × 1 result is a real: a 1 × n matrix times an n-vector, dot(a, b), sum(..) and sqnorm(..) are real, so use them without an index (docs/language.md, \"Scalars, 1 × 1 results and broadcasting\")");
            self.error(d);
            return None;
        }
        if args.len() != want {
            let msg = format!(
                "indexing {} takes {} index(es), found {}",
                b.shape,
                want,
                args.len()
            );
            let d = Diag::new("mcopt::check::index", msg)
                .at(&self.source, e.span, "indexed here")
                .help("indexes are 1-based: v[1], M[2, 3]");
            self.error(d);
            return None;
        }
        let dims = [b.shape.rows, b.shape.cols];
        let mut at = [0usize; 2];
        for (k, a) in args.iter().enumerate() {
            at[k] = self.const_index(a, dims[k], ctx)?;
        }
        let kind = CKind::Element {
            base: Arc::new(b),
            row: at[0],
            col: at[1],
        };
        Some(node(kind, Shape::SCALAR, e.span))
    }

    /// A constant 1-based index in `1..=len`, returned 0-based.
    fn const_index(&mut self, a: &Expr, len: usize, ctx: &Ctx) -> Option<usize> {
        self.const_integer(a, len, ctx, ("mcopt::check::index", "an index"))
            .map(|i| i - 1)
    }

    /// An integer constant in `1..=max`; `what` is the diagnostic code and the noun.
    pub(super) fn const_integer(
        &mut self,
        a: &Expr,
        max: usize,
        ctx: &Ctx,
        what: (&'static str, &str),
    ) -> Option<usize> {
        let v = self.expr(a, ctx)?;
        let value = scalar_of(&v);
        match value {
            Some(x) if x.fract() == 0.0 && x >= 1.0 && x <= max as f64 => Some(x as usize),
            _ => {
                let msg = format!("{} must be an integer constant between 1 and {max}", what.1);
                let found =
                    value.map_or_else(|| "not a constant".to_owned(), |x| format!("found {x}"));
                self.error(Diag::new(what.0, msg).at(&self.source, a.span, found));
                None
            }
        }
    }

    fn sequence_ref(
        &mut self,
        e: &Expr,
        id: &Ident,
        args: &[Expr],
        ctx: &Ctx,
        seq: Seq,
    ) -> Option<CExpr> {
        if args.len() != 1 {
            let msg = format!("`{}` takes one time index, found {}", id.name, args.len());
            self.error(Diag::new("mcopt::check::time", msg).at(&self.source, e.span, "here"));
            return None;
        }
        let time = self.time_ref(&args[0], ctx)?;
        match seq {
            Seq::Data(d) => {
                if time == TimeRef::Abs(0) {
                    let msg = format!("data `{}` starts at time 1", id.name);
                    self.error(Diag::new("mcopt::check::time", msg).at(
                        &self.source,
                        args[0].span,
                        "time 0",
                    ));
                    return None;
                }
                Some(node(
                    CKind::Data { id: d, time },
                    self.data[d].shape,
                    e.span,
                ))
            }
            Seq::Layer(l) => self.indexed_layer_ref(e, id, l, time, ctx),
        }
    }

    fn indexed_layer_ref(
        &mut self,
        e: &Expr,
        id: &Ident,
        l: usize,
        time: TimeRef,
        ctx: &Ctx,
    ) -> Option<CExpr> {
        let slot = &self.layers[l];
        if slot.shape.is_none() && slot.failed {
            return None; // already explained by an earlier diagnostic
        }
        if let (TimeRef::Rel(k), None, true) = (time, slot.shape, slot.bases.is_empty()) {
            if k > 0 && ctx.layer == Some(l) {
                let d = self.missing_base_case(e, id, l, k);
                self.layers[l].failed = true;
                self.error(d);
                return None;
            }
        }
        let slot = &self.layers[l];
        let problem = match (time, slot.shape) {
            (TimeRef::Rel(0), _) if ctx.layer == Some(l) => Some(format!(
                "layer `{}` refers to itself at the same time step",
                id.name
            )),
            (TimeRef::Rel(0), _) if ctx.layer.is_some() && !slot.defined => Some(format!(
                "layer `{}` at time `t` is used before its definition",
                id.name
            )),
            (_, None) => Some(format!(
                "the shape of layer `{}` is not known here",
                id.name
            )),
            _ => None,
        };
        if let Some(msg) = problem {
            let d = Diag::new("mcopt::check::layer_order", msg)
                .at(&self.source, e.span, "used here")
                .label(slot.span, "declared here")
                .help("at time t a layer may use earlier layers at t and any layer at t-1, t-2, ...; declare base cases like h[0] first");
            self.error(d);
            if self.layers[l].shape.is_none() {
                self.layers[l].failed = true;
            }
            return None;
        }
        Some(node(CKind::Layer { id: l, time }, slot.shape?, e.span))
    }

    /// `h[t]` uses `h[t-k]` but no base case `h[0]` is declared before it.
    fn missing_base_case(&self, e: &Expr, id: &Ident, l: usize, k: u64) -> Diag {
        let name = &id.name;
        let bases = (0..k.min(3))
            .map(|t| format!("`{name}[{t}]`"))
            .collect::<Vec<_>>()
            .join(", ");
        let first = format!("layer {name}[0] = ...");
        Diag::new(
            "mcopt::check::base_case",
            format!("layer `{name}` has no base case: its general step uses `{name}[t-{k}]`, and no `{name}[0]` is declared before it"),
        )
        .at(&self.source, e.span, "needs a base case")
        .label(self.layers[l].span, "general step declared here")
        .help(format!("declare the base case{} {bases} above the general step, for example `{first}`", if k > 1 { "s" } else { "" }))
    }

    /// `t`, `t - k` or a constant `k`.
    fn time_ref(&mut self, a: &Expr, ctx: &Ctx) -> Option<TimeRef> {
        let is_t = |x: &Expr| matches!(&x.kind, ExprKind::Name(n) if ctx.time.as_deref() == Some(n.name.as_str()));
        let found = match &a.kind {
            _ if is_t(a) => Some(TimeRef::Rel(0)),
            ExprKind::Binary {
                op: BinOp::Sub,
                lhs,
                rhs,
            } if is_t(lhs) => match rhs.kind {
                ExprKind::Number(k) if k.fract() == 0.0 && (0.0..1e9).contains(&k) => {
                    Some(TimeRef::Rel(k as u64))
                }
                _ => None,
            },
            ExprKind::Number(k) if k.fract() == 0.0 && (0.0..1e9).contains(k) => {
                Some(TimeRef::Abs(*k as u64))
            }
            _ => None,
        };
        if found.is_none() {
            if let Some(d) = self.later_step(a, ctx) {
                self.error(d);
                return None;
            }
            let help = match &ctx.time {
                Some(t) => format!("write `{t}`, `{t} - k` or a constant step like `0`; later steps cannot be used"),
                None => "no time variable is in scope here: use `mean(t, ..)`, `sum(t, ..)` or a layer `h[t]`".to_owned(),
            };
            let d = Diag::new("mcopt::check::time", "expected a time index")
                .at(&self.source, a.span, "not a time index")
                .help(help);
            self.error(d);
        }
        found
    }

    /// `t + k` (or `k + t`) with a whole k ≥ 1: a later step, which docs/language.md says
    /// cannot be used.
    fn later_step(&self, a: &Expr, ctx: &Ctx) -> Option<Diag> {
        let t = ctx.time.as_deref()?;
        let is_t = |x: &Expr| matches!(&x.kind, ExprKind::Name(n) if n.name == t);
        let ExprKind::Binary {
            op: BinOp::Add,
            lhs,
            rhs,
        } = &a.kind
        else {
            return None;
        };
        let k = match (&lhs.kind, &rhs.kind) {
            (_, ExprKind::Number(k)) if is_t(lhs) => *k,
            (ExprKind::Number(k), _) if is_t(rhs) => *k,
            _ => return None,
        };
        if !(k >= 1.0 && k.fract() == 0.0) {
            return None;
        }
        let msg =
            format!("expected step `{t}` or an earlier one, found the later step `{t} + {k}`");
        Some(
            Diag::new("mcopt::check::time", msg)
                .at(&self.source, a.span, "later steps cannot be used")
                .help(format!(
                    "at step `{t}` a model may use steps `{t}`, `{t} - 1`, `{t} - 2`, ... and fixed steps like `0`"
                )),
        )
    }

    fn binary(&mut self, op: BinOp, a: CExpr, b: CExpr, span: Span) -> Option<CExpr> {
        let (kind, shape) = match op {
            BinOp::Add | BinOp::Sub | BinOp::ElemMul | BinOp::Div => {
                let k = match op {
                    BinOp::Add => Binary::Add,
                    BinOp::Sub => Binary::Sub,
                    BinOp::ElemMul => Binary::ElemMul,
                    _ => Binary::Div,
                };
                (k, a.shape.broadcast(b.shape))
            }
            BinOp::Mul if a.shape.is_scalar() || b.shape.is_scalar() => {
                (Binary::ElemMul, a.shape.broadcast(b.shape))
            }
            BinOp::Mul => (
                Binary::MatMul,
                (a.shape.cols == b.shape.rows).then(|| Shape::matrix(a.shape.rows, b.shape.cols)),
            ),
        };
        let Some(shape) = shape else {
            self.shape_mismatch(Mismatch::Op(op), &a, &b, span);
            return None;
        };
        if !shape.fits() {
            let msg = format!(
                "this product is {}×{}, more than {MAX_ELEMENTS} entries, which would not fit in memory",
                shape.rows, shape.cols
            );
            let d = Diag::new("mcopt::check::too_large", msg).at(&self.source, span, "too large");
            self.error(d);
            return None;
        }
        Some(fold(node(
            CKind::Binary(kind, Arc::new(a), Arc::new(b)),
            shape,
            span,
        )))
    }

    /// Operands of incompatible shapes: the primary label on the operator (or the function
    /// name), one label under each operand.
    pub(super) fn shape_mismatch(&mut self, what: Mismatch<'_>, a: &CExpr, b: &CExpr, span: Span) {
        let (msg, help, primary) = match what {
            Mismatch::Op(BinOp::Mul) => (
                format!(
                    "matrix product of {} and {}: {} on the left, {} on the right",
                    a.shape,
                    b.shape,
                    plural(a.shape.cols, "column", "columns"),
                    plural(b.shape.rows, "row", "rows")
                ),
                "for an inner product use dot(a, b); for an elementwise product use .*",
                self.operator_span(a.span, b.span, "*").unwrap_or(span),
            ),
            Mismatch::Op(op) => (
                format!(
                    "`{}` needs equal shapes (or a real operand), found {} and {}",
                    op.symbol(),
                    a.shape,
                    b.shape
                ),
                "a real operand is broadcast to the other operand's shape; otherwise the shapes must be equal (vectors and matrices are not broadcast along rows or columns)",
                self.operator_span(a.span, b.span, op.symbol())
                    .unwrap_or(span),
            ),
            Mismatch::Call(name, name_span, same) => (
                if same {
                    format!(
                        "`{name}` needs equal shapes, found {} and {}",
                        a.shape, b.shape
                    )
                } else {
                    format!(
                        "`{name}` needs equal shapes (or a real operand), found {} and {}",
                        a.shape, b.shape
                    )
                },
                "shapes are checked per time step and per sequence",
                name_span,
            ),
        };
        let d = Diag::new("mcopt::check::shape", msg)
            .at(&self.source, primary, "")
            .label(a.span, format!("{}", a.shape))
            .label(b.span, format!("{}", b.shape))
            .help(help);
        self.error(d);
    }

    /// The span of the operator `symbol` written between two operands, if it is found there.
    fn operator_span(&self, left: Span, right: Span, symbol: &str) -> Option<Span> {
        let between = self.source.text.get(left.end..right.start)?;
        let at = between.find(symbol)?;
        Some(Span::new(left.end + at, left.end + at + symbol.len()))
    }

    fn list(&mut self, e: &Expr, items: &[Expr], ctx: &Ctx) -> Option<CExpr> {
        let checked: Vec<Option<CExpr>> = items.iter().map(|a| self.expr(a, ctx)).collect();
        let items: Vec<CExpr> = checked.into_iter().collect::<Option<_>>()?;
        if items.is_empty() {
            self.error(
                Diag::new("mcopt::check::list", "a list needs at least one entry").at(
                    &self.source,
                    e.span,
                    "empty list",
                ),
            );
            return None;
        }
        let first = items[0].shape;
        for it in &items {
            if it.shape != first || !(it.shape.is_scalar() || it.shape.cols == 1) {
                let msg = format!("list entries must all be reals or all be rows of equal length, found {} and {}", first, it.shape);
                self.error(
                    Diag::new("mcopt::check::list", msg)
                        .at(&self.source, it.span, format!("this is {}", it.shape))
                        .label(items[0].span, format!("first entry is {first}")),
                );
                return None;
            }
        }
        let r = items.len();
        if items.iter().all(|it| matches!(it.kind, CKind::Literal(_))) {
            let values: Vec<&[f64]> = items.iter().map(scalar_values).collect();
            let c = first.rows;
            let mut m = vec![0.0; r * c];
            for (i, row) in values.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    m[i + j * r] = *v;
                }
            }
            let shape = if first.is_scalar() {
                Shape::vector(r)
            } else {
                Shape::matrix(r, c)
            };
            return Some(lit(m, shape, e.span));
        }
        Some(stack(items, e.span))
    }
}

/// `[e₁, .., e_r]` as Σᵢ eᵢ·unitᵢ (reals), or the matrix with rows eᵢ as Σᵢ unitᵢ·eᵢᵀ (vectors).
pub(super) fn stack(items: Vec<CExpr>, span: Span) -> CExpr {
    let r = items.len();
    let first = items[0].shape;
    let mut sum: Option<CExpr> = None;
    for (i, it) in items.into_iter().enumerate() {
        let mut unit = vec![0.0; r];
        unit[i] = 1.0;
        let unit = Arc::new(lit(unit, Shape::vector(r), it.span));
        let term = if first.is_scalar() {
            node(
                CKind::Binary(Binary::ElemMul, Arc::new(it), unit),
                Shape::vector(r),
                span,
            )
        } else {
            let row = Arc::new(node(
                CKind::Unary(Unary::Transpose, Arc::new(it)),
                Shape::matrix(1, first.rows),
                span,
            ));
            node(
                CKind::Binary(Binary::MatMul, unit, row),
                Shape::matrix(r, first.rows),
                span,
            )
        };
        sum = Some(match sum {
            None => term,
            Some(acc) => {
                let shape = acc.shape;
                node(
                    CKind::Binary(Binary::Add, Arc::new(acc), Arc::new(term)),
                    shape,
                    span,
                )
            }
        });
    }
    sum.unwrap_or_else(|| lit(Vec::new(), Shape::vector(0), span))
}

/// What combined two operands of incompatible shapes.
pub(super) enum Mismatch<'a> {
    Op(BinOp),
    /// A built-in function by name, its span, and whether a real operand is not enough.
    Call(&'a str, Span, bool),
}

enum Seq {
    Data(usize),
    Layer(usize),
}

pub(super) fn scalar_values(e: &CExpr) -> &[f64] {
    match &e.kind {
        CKind::Literal(v) => v,
        _ => &[],
    }
}

pub(super) fn unary(op: Unary, a: CExpr, span: Span) -> CExpr {
    let shape = match op {
        Unary::Sum
        | Unary::Mean
        | Unary::SqNorm
        | Unary::Norm1
        | Unary::Norm2
        | Unary::Max
        | Unary::Min
        | Unary::NormInf => Shape::SCALAR,
        Unary::Transpose => Shape::matrix(a.shape.cols, a.shape.rows),
        _ => a.shape,
    };
    fold(node(CKind::Unary(op, Arc::new(a)), shape, span))
}

/// Fold operations on constants into a constant (scalars, and negation of any constant).
pub(super) fn fold(e: CExpr) -> CExpr {
    let value = match &e.kind {
        CKind::Unary(Unary::Neg, a) => match &a.kind {
            CKind::Literal(v) => Some(v.iter().map(|x| -x).collect()),
            _ => None,
        },
        CKind::Unary(op, a) if e.shape.is_scalar() && a.shape.is_scalar() => scalar_of(a)
            .and_then(|x| fold_unary(*op, x))
            .map(|v| vec![v]),
        CKind::Binary(op, a, b) if e.shape.is_scalar() => match (scalar_of(a), scalar_of(b)) {
            (Some(x), Some(y)) => fold_binary(*op, x, y).map(|v| vec![v]),
            _ => None,
        },
        _ => None,
    };
    match value {
        Some(v) => lit(v, e.shape, e.span),
        None => e,
    }
}

fn fold_unary(op: Unary, x: f64) -> Option<f64> {
    let v = match op {
        Unary::Neg => -x,
        Unary::Abs | Unary::Norm1 | Unary::Norm2 | Unary::NormInf => x.abs(),
        Unary::Max | Unary::Min => x,
        Unary::Pow(p) => pow_value(x, p)?,
        Unary::Exp => x.exp(),
        Unary::Log if x > 0.0 => x.ln(),
        Unary::Sqrt if x >= 0.0 => x.sqrt(),
        Unary::PowI(k) => x.powi(k),
        Unary::Sum | Unary::Mean | Unary::Transpose => x,
        Unary::SqNorm => x * x,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

/// x^p as `pow` defines it: any x for an integer p (x ≠ 0 when p < 0), else x > 0, or x = 0
/// with p > 0.
pub(crate) fn pow_value(x: f64, p: f64) -> Option<f64> {
    if p.fract() == 0.0 && p.abs() <= i32::MAX as f64 {
        return (x != 0.0 || p >= 0.0).then(|| x.powi(p as i32));
    }
    (x > 0.0 || (x == 0.0 && p > 0.0)).then(|| x.powf(p))
}

fn fold_binary(op: Binary, x: f64, y: f64) -> Option<f64> {
    let v = match op {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::ElemMul | Binary::MatMul | Binary::Dot => x * y,
        Binary::Div => x / y,
        Binary::Max => x.max(y),
        Binary::Min => x.min(y),
    };
    v.is_finite().then_some(v)
}
