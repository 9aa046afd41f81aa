//! Checking calls: built-in functions, reductions over time, `zeros`, and functions of the
//! registry (activations and penalties from plugins) with their constant parameters.

use crate::text::plural;
use std::sync::Arc;

use super::expr::{fold, lit, node, scalar_of, unary, Ctx, Mismatch};
use super::index::RangeReduce;
use super::items::Checker;
use super::{Binary, CExpr, CKind, Shape, Unary, MAX_ELEMENTS};
use crate::diag::{Diag, Span};
use crate::registry::FunctionKind;
use crate::syntax::ast::{Expr, ExprKind, Ident};

/// Built-in functions, for "unknown function" help.
const BUILTINS: &[&str] = &[
    "abs",
    "dot",
    "exp",
    "log",
    "max",
    "mean",
    "min",
    "norm1",
    "norm2",
    "norminf",
    "pow",
    "sqnorm",
    "sqrt",
    "sum",
    "transpose",
    "zeros",
];

impl Checker<'_> {
    pub(super) fn call(
        &mut self,
        e: &Expr,
        func: &Ident,
        args: &[Expr],
        ctx: &Ctx,
    ) -> Option<CExpr> {
        let name = func.name.as_str();
        if let Some(ExprKind::Range { var, lo, hi }) = args.first().map(|a| &a.kind) {
            let kind = match name {
                "sum" => Some(RangeReduce::Sum),
                "mean" => Some(RangeReduce::Mean),
                "max" => Some(RangeReduce::Max),
                "min" => Some(RangeReduce::Min),
                _ => None,
            };
            return match (kind, args) {
                (Some(kind), [_, body]) => self.range_reduce(e, kind, (var, lo, hi), body, ctx),
                _ => {
                    let msg = match kind {
                        Some(_) => format!("`{name}` over a range takes the range and one body, found {} arguments", args.len()),
                        None => format!("`{name}` does not take an index range"),
                    };
                    let d = Diag::new("mcopt::check::range", msg)
                        .at(&self.source, args[0].span, "range here")
                        .help("reductions over a range: sum(i in 1..n, e), mean(..), max(..), min(..)");
                    self.error(d);
                    None
                }
            };
        }
        match (name, args.len()) {
            ("max" | "min", 1) => {
                let [a] = self.args::<1>(func, args, ctx)?;
                let op = if name == "max" {
                    Unary::Max
                } else {
                    Unary::Min
                };
                return Some(unary(op, a, e.span));
            }
            ("pow", 2) => {
                let a = self.expr(&args[0], ctx);
                let pv = self.expr(&args[1], ctx)?;
                let Some(p) = scalar_of(&pv) else {
                    self.not_constant_exponent(&args[1], &pv);
                    return None;
                };
                return Some(unary(Unary::Pow(p), a?, e.span));
            }
            ("sum" | "mean", 2) => return self.time_reduce(e, name == "mean", args, ctx),
            ("zeros", 1 | 2) => return self.zeros(e, args, ctx),
            _ => {}
        }
        if let Some(op) = builtin_unary(name) {
            let [a] = self.args::<1>(func, args, ctx)?;
            return self.unary_checked(op, a, e.span);
        }
        if let Some(op) = builtin_binary(name) {
            let [a, b] = self.args::<2>(func, args, ctx)?;
            if op == Binary::Dot {
                if a.shape != b.shape {
                    self.shape_mismatch(Mismatch::Call(name, func.span, true), &a, &b, e.span);
                    return None;
                }
                return Some(node(
                    CKind::Binary(op, Arc::new(a), Arc::new(b)),
                    Shape::SCALAR,
                    e.span,
                ));
            }
            let Some(shape) = a.shape.broadcast(b.shape) else {
                self.shape_mismatch(Mismatch::Call(name, func.span, false), &a, &b, e.span);
                return None;
            };
            return Some(fold(node(
                CKind::Binary(op, Arc::new(a), Arc::new(b)),
                shape,
                e.span,
            )));
        }
        self.registry_call(e, func, args, ctx)
    }

    /// Check exactly N arguments.
    fn args<const N: usize>(
        &mut self,
        func: &Ident,
        args: &[Expr],
        ctx: &Ctx,
    ) -> Option<[CExpr; N]> {
        if args.len() != N {
            let msg = format!(
                "`{}` takes {} argument(s), found {}",
                func.name,
                N,
                args.len()
            );
            self.error(Diag::new("mcopt::check::arity", msg).at(
                &self.source,
                func.span,
                "called here",
            ));
            return None;
        }
        let checked: Vec<Option<CExpr>> = args.iter().map(|a| self.expr(a, ctx)).collect();
        let all: Option<Vec<CExpr>> = checked.into_iter().collect();
        all?.try_into().ok()
    }

    fn unary_checked(&mut self, op: Unary, a: CExpr, span: Span) -> Option<CExpr> {
        if op == Unary::Transpose && a.shape.is_scalar() {
            return Some(a);
        }
        Some(unary(op, a, span))
    }

    fn time_reduce(&mut self, e: &Expr, mean: bool, args: &[Expr], ctx: &Ctx) -> Option<CExpr> {
        let ExprKind::Name(t) = &args[0].kind else {
            let d = Diag::new(
                "mcopt::check::time",
                "expected a time variable as the first argument",
            )
            .at(&self.source, args[0].span, "not a name")
            .help("write `mean(t, sqnorm(v[t] - y[t]))`");
            self.error(d);
            return None;
        };
        if ctx.time.is_some() || self.scope.contains_key(&t.name) {
            let msg = format!("`{}` cannot be the time variable here", t.name);
            let help = if ctx.time.is_some() {
                "reductions over time cannot be nested or used inside time-indexed layers"
            } else {
                "the name is already declared; pick another one, like t"
            };
            self.error(
                Diag::new("mcopt::check::time", msg)
                    .at(&self.source, t.span, "time variable")
                    .help(help),
            );
            return None;
        }
        let inner = Ctx {
            time: Some(t.name.clone()),
            layer: ctx.layer,
        };
        let body = self.expr(&args[1], &inner)?;
        if !body.shape.is_scalar() {
            let msg = format!(
                "the body of a reduction over time must be real, found {}",
                body.shape
            );
            let d = Diag::new("mcopt::check::shape", msg)
                .at(&self.source, body.span, format!("this is {}", body.shape))
                .help("reduce it first, e.g. sqnorm(v[t] - y[t])");
            self.error(d);
            return None;
        }
        Some(node(
            CKind::TimeReduce {
                mean,
                body: Arc::new(body),
            },
            Shape::SCALAR,
            e.span,
        ))
    }

    fn zeros(&mut self, e: &Expr, args: &[Expr], ctx: &Ctx) -> Option<CExpr> {
        let mut dims = [1usize; 2];
        for (k, a) in args.iter().enumerate() {
            dims[k] = self.const_integer(a, MAX_ELEMENTS, ctx, ("mcopt::check::size", "a size"))?;
        }
        let shape = Shape::matrix(dims[0], dims[1]);
        if !shape.fits() {
            let msg = format!(
                "{shape} has more than {MAX_ELEMENTS} entries, which would not fit in memory"
            );
            self.error(Diag::new("mcopt::check::too_large", msg).at(&self.source, e.span, "here"));
            return None;
        }
        match crate::memory::filled(shape.len(), 0.0) {
            Ok(zeros) => Some(lit(zeros, shape, e.span)),
            Err(err) => {
                self.out_of_memory(err, e.span, "zeros");
                None
            }
        }
    }

    fn registry_call(&mut self, e: &Expr, func: &Ident, args: &[Expr], ctx: &Ctx) -> Option<CExpr> {
        let Some(id) = self.registry.lookup(&func.name) else {
            let mut known: Vec<&str> = BUILTINS.to_vec();
            known.extend(self.registry.function_names());
            known.sort_unstable();
            let d = Diag::new(
                "mcopt::check::unknown_function",
                format!("unknown function `{}`", func.name),
            )
            .at(
                &self.source,
                func.span,
                "not a built-in or a loaded plugin function",
            )
            .help(format!(
                "{}known functions: {}",
                crate::text::did_you_mean(&func.name, &known),
                known.join(", ")
            ));
            self.error(d);
            return None;
        };
        let info = self.registry.info(id);
        let (kind, n_params) = (info.kind, info.params.len());
        let defaults: Vec<Option<f64>> = info.params.iter().map(|p| p.default).collect();
        if args.is_empty() || args.len() > 1 + n_params {
            let takes = match n_params {
                0 => "1 argument".to_owned(),
                n => format!(
                    "1 argument and up to {}",
                    plural(n, "constant parameter", "constant parameters")
                ),
            };
            let msg = format!(
                "`{}` takes {takes}, found {}",
                func.name,
                plural(args.len(), "argument", "arguments")
            );
            self.error(Diag::new("mcopt::check::arity", msg).at(
                &self.source,
                e.span,
                "called here",
            ));
            return None;
        }
        let arg = self.expr(&args[0], ctx);
        let mut params = Vec::with_capacity(n_params);
        for (k, default) in defaults.iter().enumerate() {
            params.push(match args.get(k + 1) {
                Some(p) => self.constant_scalar(p, ctx)?,
                None => self.default_param(func, *default, k, e.span)?,
            });
        }
        let params = match self.registry.check_params(id, &params) {
            Ok(full) => full,
            Err(err) => {
                let d = Diag::new(
                    "mcopt::check::function_parameter",
                    format!("invalid parameters for `{}`: {err}", func.name),
                )
                .at(
                    &self.source,
                    params_span(args).unwrap_or(e.span),
                    "parameters here",
                );
                self.error(d);
                return None;
            }
        };
        let arg = arg?;
        let shape = if kind == FunctionKind::Penalty {
            Shape::SCALAR
        } else {
            arg.shape
        };
        Some(node(
            CKind::Call {
                func: id,
                kind,
                params,
                arg: Arc::new(arg),
            },
            shape,
            e.span,
        ))
    }

    fn default_param(
        &mut self,
        func: &Ident,
        default: Option<f64>,
        k: usize,
        span: Span,
    ) -> Option<f64> {
        if default.is_none() {
            let msg = format!(
                "`{}` needs its parameter number {} (it has no default)",
                func.name,
                k + 1
            );
            self.error(Diag::new("mcopt::check::arity", msg).at(&self.source, span, "called here"));
        }
        default
    }

    fn constant_scalar(&mut self, a: &Expr, ctx: &Ctx) -> Option<f64> {
        let v = self.expr(a, ctx)?;
        let value = scalar_of(&v);
        if value.is_none() {
            let d = Diag::new(
                "mcopt::check::not_constant",
                "a function parameter must be a real constant",
            )
            .at(
                &self.source,
                a.span,
                format!("this is a {} expression", v.shape),
            );
            self.error(d);
        }
        value
    }
}

/// The span of the constant parameters of a call (its arguments after the first).
fn params_span(args: &[Expr]) -> Option<Span> {
    let (first, last) = (args.get(1)?, args.last()?);
    Some(first.span.to(last.span))
}

fn builtin_unary(name: &str) -> Option<Unary> {
    Some(match name {
        "abs" => Unary::Abs,
        "exp" => Unary::Exp,
        "log" => Unary::Log,
        "sqrt" => Unary::Sqrt,
        "sum" => Unary::Sum,
        "mean" => Unary::Mean,
        "sqnorm" => Unary::SqNorm,
        "norm1" => Unary::Norm1,
        "norm2" => Unary::Norm2,
        "norminf" => Unary::NormInf,
        "transpose" => Unary::Transpose,
        _ => return None,
    })
}

fn builtin_binary(name: &str) -> Option<Binary> {
    Some(match name {
        "max" => Binary::Max,
        "min" => Binary::Min,
        "dot" => Binary::Dot,
        _ => return None,
    })
}
