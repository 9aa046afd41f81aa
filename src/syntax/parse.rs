//! Parser: `.mco` text to the AST, one statement at a time, with the depth limits enforced.
//!
//! The text is split into statements first ([`scan::split`]), so a syntax error in one line
//! does not hide the errors in the next. Each statement is checked against [`MAX_NESTING`]
//! before pest sees it (pest and the precedence climber recurse on brackets, unary minus and
//! `^`), and the AST is refused once deeper than [`MAX_DEPTH`] (later stages and `Drop`
//! recurse on it; long chains such as `1+1+1+...` count).

use std::sync::Arc;

use pest::iterators::Pair;
use pest::Parser;

use super::ast::*;
use super::errors::{clip, nesting_diag, pest_diag};
use super::grammar::{McoParser, Rule, PRATT};
use super::scan::{self, Chunk};
use super::{MAX_DEPTH, MAX_NESTING};
use crate::diag::{Diag, Diags, SourceFile, Span};

const CODE_SYNTAX: &str = "mcopt::parse::syntax";
const CODE_NUMBER: &str = "mcopt::parse::number";
const CODE_DEPTH: &str = "mcopt::parse::depth";

/// Parse a model file. Reports every statement that fails, one diagnostic per statement.
pub fn parse(source: &Arc<SourceFile>) -> Result<Program, Diags> {
    let mut items = Vec::new();
    let mut diags = Diags::new();
    for chunk in scan::split(&source.text) {
        match parse_statement(source, chunk) {
            Ok(item) => items.push(item),
            Err(d) => diags.push(d),
        }
    }
    diags.finish(Program { items })
}

fn parse_statement(source: &Arc<SourceFile>, chunk: Chunk) -> Result<Item, Diag> {
    let text = &source.text[chunk.start..chunk.end];
    if let Some(at) = scan::nesting_violation(text, MAX_NESTING) {
        return Err(nesting_diag(source, chunk, at));
    }
    let mut pairs = McoParser::parse(Rule::line, text).map_err(|e| pest_diag(source, chunk, &e))?;
    let line = pairs.next().ok_or_else(|| internal(source, chunk))?;
    let statement = line
        .into_inner()
        .find(|p| p.as_rule() == Rule::statement)
        .and_then(|s| s.into_inner().next())
        .ok_or_else(|| internal(source, chunk))?;
    let builder = Builder {
        source,
        offset: chunk.start,
    };
    builder.statement(statement)
}

/// A diagnostic for a parse tree that does not have the shape the grammar promises (a bug).
fn internal(source: &Arc<SourceFile>, chunk: Chunk) -> Diag {
    Diag::new(CODE_SYNTAX, "internal parser error: unexpected parse tree")
        .at(source, Span::new(chunk.start, chunk.end), "")
        .help("this is a bug in mcopt; please report it with this model")
}

/// An expression being built, with what the parent needs to know about it.
struct Built {
    expr: Expr,
    /// Levels of AST below and including this node.
    depth: usize,
    /// The value, when the expression is an integer literal, possibly negated or parenthesized
    /// (the only exponents `^` accepts). Saturates far outside the `i32` range.
    int_lit: Option<i128>,
}

type BuildResult = Result<Built, Diag>;

/// Turns pest pairs of one statement into AST nodes; spans are shifted by `offset`.
struct Builder<'s> {
    source: &'s Arc<SourceFile>,
    offset: usize,
}

/// Pairs that carry no information once parsed: keywords and punctuation.
fn is_token(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_param
            | Rule::kw_const
            | Rule::kw_let
            | Rule::kw_layer
            | Rule::kw_data
            | Rule::kw_minimize
            | Rule::kw_real
            | Rule::kw_vec
            | Rule::kw_mat
            | Rule::kw_seq
            | Rule::kw_batch
            | Rule::eq
            | Rule::colon
            | Rule::comma
            | Rule::lparen
            | Rule::rparen
            | Rule::lbrack
            | Rule::rbrack
            | Rule::kw_in
            | Rule::dotdot
    )
}

/// The children of `pair` that matter for the AST.
fn children<'i>(pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
    pair.into_inner().filter(|p| !is_token(p.as_rule()))
}

impl Builder<'_> {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.offset + s.start(), self.offset + s.end())
    }

    fn diag(&self, code: &'static str, message: String, span: Span, label: &str) -> Diag {
        Diag::new(code, message).at(self.source, span, label)
    }

    fn bug(&self, span: Span) -> Diag {
        self.diag(
            CODE_SYNTAX,
            "internal parser error: unexpected parse tree".into(),
            span,
            "",
        )
        .help("this is a bug in mcopt; please report it with this model")
    }

    /// The next significant child, or an internal error.
    fn next<'i>(
        &self,
        it: &mut impl Iterator<Item = Pair<'i, Rule>>,
        span: Span,
    ) -> Result<Pair<'i, Rule>, Diag> {
        it.next().ok_or_else(|| self.bug(span))
    }

    /// The span of a pair without the blanks and comments pest includes after a trailing
    /// repetition (an expression at the end of a statement).
    fn trimmed_span(&self, pair: &Pair<'_, Rule>) -> Span {
        let mut text = pair.as_str();
        loop {
            text = text.trim_end();
            let line_start = text.rfind('\n').map_or(0, |i| i + 1);
            match text[line_start..].find('#') {
                Some(hash) => text = &text[..line_start + hash],
                None => break,
            }
        }
        let start = self.offset + pair.as_span().start();
        Span::new(start, start + text.len())
    }

    fn statement(&self, pair: Pair<'_, Rule>) -> Result<Item, Diag> {
        let span = self.trimmed_span(&pair);
        let rule = pair.as_rule();
        let mut it = children(pair);
        match rule {
            Rule::param_decl => {
                let name = self.ident(self.next(&mut it, span)?);
                let ty = self.ty(self.next(&mut it, span)?)?;
                let init = it.next().map(|p| self.expr(p)).transpose()?;
                Ok(Item::Param(ParamDecl {
                    name,
                    ty,
                    init,
                    span,
                }))
            }
            Rule::const_decl => {
                let name = self.ident(self.next(&mut it, span)?);
                let value = self.expr(self.next(&mut it, span)?)?;
                Ok(Item::Const(ConstDecl { name, value, span }))
            }
            Rule::let_decl => {
                let name = self.ident(self.next(&mut it, span)?);
                let value = self.expr(self.next(&mut it, span)?)?;
                Ok(Item::Let(LetDecl { name, value, span }))
            }
            Rule::layer_decl => self.layer(it, span),
            Rule::data_decl => {
                let name = self.ident(self.next(&mut it, span)?);
                let ty = self.ty(self.next(&mut it, span)?)?;
                Ok(Item::Data(DataDecl { name, ty, span }))
            }
            Rule::minimize_decl => {
                let expr = self.expr(self.next(&mut it, span)?)?;
                Ok(Item::Minimize(MinimizeDecl { expr, span }))
            }
            _ => Err(self.bug(span)),
        }
    }

    fn layer<'i>(
        &self,
        mut it: impl Iterator<Item = Pair<'i, Rule>>,
        span: Span,
    ) -> Result<Item, Diag> {
        let name = self.ident(self.next(&mut it, span)?);
        let mut next = self.next(&mut it, span)?;
        let mut index = None;
        if next.as_rule() == Rule::layer_index {
            let inner = self.next(&mut children(next), span)?;
            index = Some(match inner.as_rule() {
                Rule::dim => {
                    let d = self.dim(inner)?;
                    LayerIndex::Base {
                        value: d.value,
                        span: d.span,
                    }
                }
                _ => LayerIndex::Var(self.ident(inner)),
            });
            next = self.next(&mut it, span)?;
        }
        let value = self.expr(next)?;
        Ok(Item::Layer(LayerDecl {
            name,
            index,
            value,
            span,
        }))
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn dim(&self, pair: Pair<'_, Rule>) -> Result<Dim, Diag> {
        let span = self.span(&pair);
        match pair.as_str().parse::<u64>() {
            Ok(value) => Ok(Dim {
                value,
                span,
                expr: None,
            }),
            Err(_) => Err(self
                .diag(
                    CODE_NUMBER,
                    format!("size `{}` is too large", clip(pair.as_str())),
                    span,
                    "does not fit in 64 bits",
                )
                .help("sizes and times are whole numbers below 2^64")),
        }
    }

    /// The size of a `vec` or `mat`: a literal `dim` or an expression.
    fn size(&self, pair: Pair<'_, Rule>) -> Result<Dim, Diag> {
        if pair.as_rule() == Rule::dim {
            return self.dim(pair);
        }
        let expr = self.expr(pair)?;
        Ok(Dim {
            value: 0,
            span: expr.span,
            expr: Some(Box::new(expr)),
        })
    }

    /// A type; `ty` wraps exactly one of the type rules.
    fn ty(&self, pair: Pair<'_, Rule>) -> Result<TypeExpr, Diag> {
        let outer = self.span(&pair);
        let pair = self.next(&mut children(pair), outer)?;
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut it = children(pair);
        let kind = match rule {
            Rule::real_ty => TypeKind::Real,
            Rule::vec_ty => TypeKind::Vec(self.size(self.next(&mut it, span)?)?),
            Rule::mat_ty => {
                let r = self.size(self.next(&mut it, span)?)?;
                TypeKind::Mat(r, self.size(self.next(&mut it, span)?)?)
            }
            Rule::seq_ty => TypeKind::Seq(Box::new(self.ty(self.next(&mut it, span)?)?)),
            Rule::batch_ty => {
                let first = self.next(&mut it, span)?;
                let (count, inner) = if first.as_rule() == Rule::dim {
                    (Some(self.dim(first)?), self.next(&mut it, span)?)
                } else {
                    (None, first)
                };
                TypeKind::Batch {
                    count,
                    inner: Box::new(self.ty(inner)?),
                }
            }
            _ => return Err(self.bug(span)),
        };
        Ok(TypeExpr { kind, span })
    }

    /// An `expr` pair to an expression.
    fn expr(&self, pair: Pair<'_, Rule>) -> Result<Expr, Diag> {
        self.build(pair).map(|b| b.expr)
    }

    /// Apply precedence to an `expr` pair's operand/operator sequence.
    fn build(&self, pair: Pair<'_, Rule>) -> BuildResult {
        PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, rhs| self.neg(op, rhs?))
            .map_postfix(|lhs, op| self.index(lhs?, op))
            .map_infix(|lhs, op, rhs| self.infix(lhs?, op, rhs?))
            .parse(pair.into_inner())
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> BuildResult {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::number => self.number(&pair, span),
            Rule::ident => Ok(leaf(ExprKind::Name(self.ident(pair)), span)),
            Rule::call => {
                let mut it = children(pair);
                let func = self.ident(self.next(&mut it, span)?);
                let mut it = it.peekable();
                let range = match it.peek() {
                    Some(p) if p.as_rule() == Rule::range => it.next().map(|p| self.range(p)),
                    _ => None,
                };
                let (mut args, mut depth) = self.exprs(it)?;
                if let Some(r) = range {
                    let r = r?;
                    depth = depth.max(r.depth);
                    args.insert(0, r.expr);
                }
                self.node(ExprKind::Call { func, args }, span, depth + 1)
            }
            Rule::list => {
                let (items, depth) = self.exprs(children(pair))?;
                self.node(ExprKind::List(items), span, depth + 1)
            }
            Rule::paren => {
                let inner = self.next(&mut children(pair), span)?;
                let mut built = self.build(inner)?;
                built.expr.span = span;
                Ok(built)
            }
            _ => Err(self.bug(span)),
        }
    }

    /// `i in a..b`.
    fn range(&self, pair: Pair<'_, Rule>) -> BuildResult {
        let span = self.span(&pair);
        let mut it = children(pair);
        let var = self.ident(self.next(&mut it, span)?);
        let lo = self.build(self.next(&mut it, span)?)?;
        let hi = self.build(self.next(&mut it, span)?)?;
        let depth = lo.depth.max(hi.depth) + 1;
        let kind = ExprKind::Range {
            var,
            lo: Box::new(lo.expr),
            hi: Box::new(hi.expr),
        };
        self.node(kind, span, depth)
    }

    /// Several `expr` pairs, with the greatest depth among them.
    fn exprs<'i>(
        &self,
        pairs: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> Result<(Vec<Expr>, usize), Diag> {
        let mut out = Vec::new();
        let mut depth = 0;
        for p in pairs {
            let b = self.build(p)?;
            depth = depth.max(b.depth);
            out.push(b.expr);
        }
        Ok((out, depth))
    }

    fn number(&self, pair: &Pair<'_, Rule>, span: Span) -> BuildResult {
        let text = pair.as_str();
        let value: f64 = text.parse().map_err(|_| self.bug(span))?;
        if !value.is_finite() {
            return Err(self
                .diag(
                    CODE_NUMBER,
                    format!("number `{}` is too large", clip(text)),
                    span,
                    "overflows to infinity",
                )
                .help("numbers must be below about 1.8e308"));
        }
        let int_lit = text.bytes().all(|c| c.is_ascii_digit()).then(|| {
            let digits = text.trim_start_matches('0');
            if digits.len() > 30 {
                i128::MAX
            } else {
                digits.parse::<i128>().unwrap_or(0)
            }
        });
        Ok(Built {
            expr: Expr {
                kind: ExprKind::Number(value),
                span,
            },
            depth: 1,
            int_lit,
        })
    }

    /// Unary minus; a minus directly on a number literal folds into the literal.
    fn neg(&self, op: Pair<'_, Rule>, rhs: Built) -> BuildResult {
        let span = self.span(&op).to(rhs.expr.span);
        if let ExprKind::Number(v) = rhs.expr.kind {
            return Ok(Built {
                expr: Expr {
                    kind: ExprKind::Number(-v),
                    span,
                },
                depth: 1,
                int_lit: rhs.int_lit.map(|k| -k),
            });
        }
        self.node(ExprKind::Neg(Box::new(rhs.expr)), span, rhs.depth + 1)
    }

    fn index(&self, lhs: Built, op: Pair<'_, Rule>) -> BuildResult {
        let span = lhs.expr.span.to(self.span(&op));
        let (args, depth) = self.exprs(children(op))?;
        let depth = depth.max(lhs.depth) + 1;
        let kind = ExprKind::Index {
            base: Box::new(lhs.expr),
            args,
        };
        self.node(kind, span, depth)
    }

    fn infix(&self, lhs: Built, op: Pair<'_, Rule>, rhs: Built) -> BuildResult {
        let span = lhs.expr.span.to(rhs.expr.span);
        let depth = lhs.depth.max(rhs.depth) + 1;
        let op_span = self.span(&op);
        let bin = match op.as_rule() {
            Rule::add => BinOp::Add,
            Rule::sub => BinOp::Sub,
            Rule::mul => BinOp::Mul,
            Rule::elem_mul => BinOp::ElemMul,
            Rule::div => BinOp::Div,
            Rule::pow => return self.pow(lhs, rhs, span),
            _ => return Err(self.bug(op_span)),
        };
        let kind = ExprKind::Binary {
            op: bin,
            lhs: Box::new(lhs.expr),
            rhs: Box::new(rhs.expr),
        };
        self.node(kind, span, depth)
            .map_err(|d| relabel(d, op_span))
    }

    fn pow(&self, lhs: Built, rhs: Built, span: Span) -> BuildResult {
        let exponent_span = rhs.expr.span;
        let text = &self.source.text[exponent_span.start..exponent_span.end];
        let Some(k) = rhs.int_lit else {
            return Err(self
                .diag(CODE_SYNTAX, format!("expected an integer exponent, found `{}`", clip(text)), exponent_span, "not an integer literal")
                .help("a power takes an integer literal exponent such as x^2 or x^-1; for other powers use sqrt or exp/log"));
        };
        let exponent = i32::try_from(k).map_err(|_| {
            self.diag(
                CODE_NUMBER,
                format!("exponent `{}` is too large", clip(text)),
                exponent_span,
                "does not fit in a 32-bit integer",
            )
            .help("exponents must lie between -2147483648 and 2147483647")
        })?;
        let kind = ExprKind::Pow {
            base: Box::new(lhs.expr),
            exponent,
            exponent_span,
        };
        self.node(kind, span, lhs.depth + 1)
    }

    /// An inner node of the given depth, refused beyond [`MAX_DEPTH`].
    fn node(&self, kind: ExprKind, span: Span, depth: usize) -> BuildResult {
        if depth > MAX_DEPTH {
            let message = format!("expression is nested more than {MAX_DEPTH} levels deep");
            return Err(self
                .diag(CODE_DEPTH, message, span, "depth limit crossed here")
                .help("split the expression into several `let` definitions"));
        }
        Ok(Built {
            expr: Expr { kind, span },
            depth,
            int_lit: None,
        })
    }
}

fn leaf(kind: ExprKind, span: Span) -> Built {
    Built {
        expr: Expr { kind, span },
        depth: 1,
        int_lit: None,
    }
}

/// Point a depth diagnostic at the operator rather than the whole (long) expression.
fn relabel(mut d: Diag, span: Span) -> Diag {
    if d.code == CODE_DEPTH {
        if let Some(first) = d.labels.first_mut() {
            first.0 = span;
        }
    }
    d
}
