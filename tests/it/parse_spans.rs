//! Spans: every AST node and every diagnostic points at the text it came from. The expected
//! texts are written by hand from the inputs.

use std::sync::Arc;

use mcopt::diag::{Diags, SourceFile, Span};
use mcopt::syntax::ast::*;
use mcopt::syntax::parse;

fn source(text: &str) -> Arc<SourceFile> {
    SourceFile::new("spans.mco", text)
}

fn at(src: &SourceFile, span: Span) -> &str {
    &src.text[span.start..span.end]
}

fn program(src: &Arc<SourceFile>) -> Program {
    parse(src).unwrap_or_else(|d| panic!("parse failed: {d}"))
}

fn errors(src: &Arc<SourceFile>) -> Diags {
    match parse(src) {
        Ok(_) => panic!("parsed, expected errors"),
        Err(d) => d,
    }
}

#[test]
fn param_spans() {
    let src = source("# c\nparam w: vec(3) = [1, 0, -1]   # trailing\n");
    let p = program(&src);
    let Item::Param(d) = &p.items[0] else {
        panic!("not a param")
    };
    assert_eq!(at(&src, d.span), "param w: vec(3) = [1, 0, -1]");
    assert_eq!(at(&src, d.name.span), "w");
    assert_eq!(at(&src, d.ty.span), "vec(3)");
    let TypeKind::Vec(n) = &d.ty.kind else {
        panic!("not a vec")
    };
    assert_eq!((n.value, at(&src, n.span)), (3, "3"));
    let init = d.init.as_ref().expect("an initial value");
    assert_eq!(at(&src, init.span), "[1, 0, -1]");
    let ExprKind::List(items) = &init.kind else {
        panic!("not a list")
    };
    let texts: Vec<&str> = items.iter().map(|e| at(&src, e.span)).collect();
    assert_eq!(texts, ["1", "0", "-1"]);
    assert_eq!(items[2].kind, ExprKind::Number(-1.0));
}

#[test]
fn expression_spans() {
    let src = source("minimize -x^2 + w[1] * (y - 1)\n");
    let p = program(&src);
    let Item::Minimize(m) = &p.items[0] else {
        panic!("not minimize")
    };
    assert_eq!(at(&src, m.span), "minimize -x^2 + w[1] * (y - 1)");
    assert_eq!(at(&src, m.expr.span), "-x^2 + w[1] * (y - 1)");
    let ExprKind::Binary {
        op: BinOp::Add,
        lhs,
        rhs,
    } = &m.expr.kind
    else {
        panic!("not +")
    };
    assert_eq!(at(&src, lhs.span), "-x^2");
    let ExprKind::Neg(pow) = &lhs.kind else {
        panic!("not neg")
    };
    let ExprKind::Pow {
        exponent,
        exponent_span,
        base,
    } = &pow.kind
    else {
        panic!("not ^")
    };
    assert_eq!(
        (*exponent, at(&src, *exponent_span), at(&src, base.span)),
        (2, "2", "x")
    );
    assert_eq!(at(&src, pow.span), "x^2");
    let ExprKind::Binary {
        op: BinOp::Mul,
        lhs,
        rhs,
    } = &rhs.kind
    else {
        panic!("not *")
    };
    assert_eq!(at(&src, lhs.span), "w[1]");
    assert_eq!(at(&src, rhs.span), "(y - 1)");
}

#[test]
fn layer_and_call_spans() {
    let src = source("layer h[0] = zeros(4)\nlayer u[t] = max(h[t-1], 0)\n");
    let p = program(&src);
    let Item::Layer(base) = &p.items[0] else {
        panic!("not a layer")
    };
    let Some(LayerIndex::Base { value: 0, span }) = base.index else {
        panic!("no base index")
    };
    assert_eq!(at(&src, span), "0");
    let Item::Layer(step) = &p.items[1] else {
        panic!("not a layer")
    };
    assert_eq!(at(&src, step.span), "layer u[t] = max(h[t-1], 0)");
    let Some(LayerIndex::Var(t)) = &step.index else {
        panic!("no time index")
    };
    assert_eq!(at(&src, t.span), "t");
    let ExprKind::Call { func, args } = &step.value.kind else {
        panic!("not a call")
    };
    assert_eq!(
        (at(&src, func.span), at(&src, step.value.span)),
        ("max", "max(h[t-1], 0)")
    );
    let ExprKind::Index { args: ix, .. } = &args[0].kind else {
        panic!("not an index")
    };
    assert_eq!(at(&src, ix[0].span), "t-1");
}

#[test]
fn spans_after_blank_lines_and_continuations() {
    let src = source("param a: real\n\n  # note\nlet s = (a +\n   1)\nconst c = 2\n");
    let p = program(&src);
    let Item::Let(l) = &p.items[1] else {
        panic!("not a let")
    };
    assert_eq!(at(&src, l.span), "let s = (a +\n   1)");
    let Item::Const(c) = &p.items[2] else {
        panic!("not a const")
    };
    assert_eq!(at(&src, c.value.span), "2");
}

#[test]
fn diagnostic_points_at_the_offending_token() {
    let src = source("param x: real\nparam y: real 0.5\n");
    let d = errors(&src);
    assert_eq!(d.len(), 1);
    let first = &d.0[0];
    assert_eq!(first.code, "mcopt::parse::syntax");
    assert_eq!(
        first.message,
        "expected `=` after the parameter type, found `0.5`"
    );
    assert_eq!(at(&src, first.primary().expect("a span")), "0.5");
}

#[test]
fn unclosed_bracket_points_at_line_end_and_at_the_bracket() {
    let src = source("minimize (x + 1\n");
    let d = errors(&src);
    let first = &d.0[0];
    assert_eq!(first.primary(), Some(Span::new(15, 15)));
    assert_eq!(at(&src, first.labels[1].0), "(");
    assert_eq!(first.labels[1].0, Span::new(9, 10));
}

#[test]
fn one_diagnostic_per_bad_statement() {
    let src = source(
        "param x: real\nparm y: real\nlet a = 1 +\nlet b = 2\nconst c = x^0.5\nminimize 1e999\n",
    );
    let d = errors(&src);
    let summary: Vec<(&str, &str)> = d
        .iter()
        .map(|d| (d.code, at(&src, d.primary().expect("a span"))))
        .collect();
    assert_eq!(
        summary,
        [
            ("mcopt::parse::syntax", "parm"),
            ("mcopt::parse::syntax", ""),
            ("mcopt::parse::syntax", "0.5"),
            ("mcopt::parse::number", "1e999"),
        ]
    );
    // The empty span of the dangling `+` sits right after it.
    assert_eq!(d.0[1].primary(), Some(Span::new(38, 38)));
}

#[test]
fn empty_and_comment_only_files_are_empty_programs() {
    for text in ["", "\n\n", "# nothing\n   # here\n", "  \t \r\n"] {
        assert_eq!(program(&source(text)).items.len(), 0, "{text:?}");
    }
}
