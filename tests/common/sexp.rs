//! A compact, stable s-expression rendering of the AST, for the expected `*.ast` files.
//!
//! One line per item. Numbers print with Rust's `Debug` for f64 (shortest round-trip).
//! Spans are not printed here (tests/it/parse_spans.rs checks them).

use mcopt::syntax::ast::*;

/// The whole program, one item per line.
pub fn program(p: &Program) -> String {
    let mut out = String::new();
    for item in &p.items {
        out.push_str(&self::item(item));
        out.push('\n');
    }
    out
}

pub fn item(item: &Item) -> String {
    match item {
        Item::Param(d) => {
            let init = d.init.as_ref().map_or("_".to_string(), expr);
            format!("(param {} {} {})", d.name.name, ty(&d.ty), init)
        }
        Item::Const(d) => format!("(const {} {})", d.name.name, expr(&d.value)),
        Item::Let(d) => format!("(let {} {})", d.name.name, expr(&d.value)),
        Item::Layer(d) => {
            let index = match &d.index {
                None => String::new(),
                Some(LayerIndex::Var(v)) => format!(" [{}]", v.name),
                Some(LayerIndex::Base { value, .. }) => format!(" [{value}]"),
            };
            format!("(layer {}{} {})", d.name.name, index, expr(&d.value))
        }
        Item::Data(d) => format!("(data {} {})", d.name.name, ty(&d.ty)),
        Item::Minimize(d) => format!("(minimize {})", expr(&d.expr)),
    }
}

pub fn ty(t: &TypeExpr) -> String {
    match &t.kind {
        TypeKind::Real => "real".to_string(),
        TypeKind::Vec(n) => format!("(vec {})", dim(n)),
        TypeKind::Mat(r, c) => format!("(mat {} {})", dim(r), dim(c)),
        TypeKind::Seq(inner) => format!("(seq {})", ty(inner)),
        TypeKind::Batch { count: None, inner } => format!("(batch {})", ty(inner)),
        TypeKind::Batch {
            count: Some(n),
            inner,
        } => format!("(batch {} {})", n.value, ty(inner)),
    }
}

/// A size: its literal value or its expression.
fn dim(d: &mcopt::syntax::ast::Dim) -> String {
    match &d.expr {
        Some(e) => expr(e),
        None => d.value.to_string(),
    }
}

pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number(v) => format!("{v:?}"),
        ExprKind::Name(id) => id.name.clone(),
        ExprKind::Index { base, args } => format!("(index {} {})", expr(base), list(args)),
        ExprKind::Neg(a) => format!("(neg {})", expr(a)),
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.symbol(), expr(lhs), expr(rhs))
        }
        ExprKind::Pow { base, exponent, .. } => format!("(^ {} {exponent})", expr(base)),
        ExprKind::Call { func, args } if args.is_empty() => format!("(call {})", func.name),
        ExprKind::Call { func, args } => format!("(call {} {})", func.name, list(args)),
        ExprKind::List(items) => format!("[{}]", list(items)),
        ExprKind::Range { var, lo, hi } => {
            format!("(in {} {} {})", var.name, expr(lo), expr(hi))
        }
    }
}

fn list(items: &[Expr]) -> String {
    items.iter().map(expr).collect::<Vec<_>>().join(" ")
}

/// The span of an item.
pub fn item_span(item: &Item) -> mcopt::diag::Span {
    match item {
        Item::Param(d) => d.span,
        Item::Const(d) => d.span,
        Item::Let(d) => d.span,
        Item::Layer(d) => d.span,
        Item::Data(d) => d.span,
        Item::Minimize(d) => d.span,
    }
}
