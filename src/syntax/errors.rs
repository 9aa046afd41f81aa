//! Syntax diagnostics: pest's "expected rules at a position" turned into friendly messages that
//! point at the offending token, with help for the usual mistakes.

use std::sync::Arc;

use pest::error::{Error, ErrorVariant, InputLocation};

use super::grammar::Rule;
use super::scan::{self, Chunk, Tok, TokKind, STATEMENT_KEYWORDS};
use super::MAX_NESTING;
use crate::diag::{Diag, SourceFile, Span};

const CODE_SYNTAX: &str = "mcopt::parse::syntax";
const CODE_NESTING: &str = "mcopt::parse::nesting";

/// The statement nests deeper than [`MAX_NESTING`]; `at` is relative to the chunk.
pub(super) fn nesting_diag(source: &Arc<SourceFile>, chunk: Chunk, at: Span) -> Diag {
    let span = Span::new(chunk.start + at.start, chunk.start + at.end);
    Diag::new(CODE_NESTING, format!("expression nests more than {MAX_NESTING} levels deep"))
        .at(source, span, "nesting limit crossed here")
        .help("brackets, unary minus and `^` each add a level; split the expression into `let` definitions")
}

/// What the parser was looking for, in the words of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    Statement,
    Name,
    Colon,
    Type,
    Size,
    Eq,
    Expr,
    Operator,
    Comma,
    LBracket,
    LParen,
    RParen,
    RBracket,
    EndOfLine,
}

impl Want {
    fn from_rule(rule: Rule) -> Option<Want> {
        Some(match rule {
            Rule::statement => Want::Statement,
            Rule::ident | Rule::layer_index => Want::Name,
            Rule::colon => Want::Colon,
            Rule::ty
            | Rule::real_ty
            | Rule::vec_ty
            | Rule::mat_ty
            | Rule::seq_ty
            | Rule::batch_ty => Want::Type,
            Rule::dim => Want::Size,
            Rule::eq => Want::Eq,
            Rule::expr | Rule::number | Rule::call | Rule::list | Rule::paren | Rule::neg => {
                Want::Expr
            }
            Rule::add
            | Rule::sub
            | Rule::mul
            | Rule::elem_mul
            | Rule::div
            | Rule::pow
            | Rule::index => Want::Operator,
            Rule::comma => Want::Comma,
            Rule::lbrack => Want::LBracket,
            Rule::lparen => Want::LParen,
            Rule::rparen => Want::RParen,
            Rule::rbrack => Want::RBracket,
            Rule::EOI => Want::EndOfLine,
            _ => return None,
        })
    }

    fn words(self) -> &'static str {
        match self {
            Want::Statement => {
                "a statement (`param`, `const`, `let`, `layer`, `data` or `minimize`)"
            }
            Want::Name => "a name",
            Want::Colon => "`:`",
            Want::Type => "a type (`real`, `vec(n)`, `mat(r, c)`, `seq(..)` or `batch(..)`)",
            Want::Size => "a size (a whole number)",
            Want::Eq => "`=`",
            Want::Expr => "an expression",
            Want::Operator => "an operator",
            Want::Comma => "`,`",
            Want::LBracket => "`[`",
            Want::LParen => "`(`",
            Want::RParen => "`)`",
            Want::RBracket => "`]`",
            Want::EndOfLine => "end of line",
        }
    }
}

/// Everything known about one syntax error, relative to its chunk.
struct Ctx<'a> {
    text: &'a str,
    keyword: &'a str,
    wants: Vec<Want>,
    found: Option<Tok<'a>>,
    prev: Option<Tok<'a>>,
    pos: usize,
}

/// Convert a pest error on the statement `chunk` into a diagnostic.
pub(super) fn pest_diag(source: &Arc<SourceFile>, chunk: Chunk, err: &Error<Rule>) -> Diag {
    let text = &source.text[chunk.start..chunk.end];
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { .. } => {
            // pest's own call or stack limit: report it as nesting.
            return nesting_diag(source, chunk, Span::new(pos, pos));
        }
    };
    let ctx = context(text, pos, &positives);
    let shift = |s: Span| Span::new(chunk.start + s.start, chunk.start + s.end);
    // At the end of the statement, point just after its last token.
    let end = ctx.prev.map_or(pos.min(text.len()), |t| t.end);
    let found_span = ctx
        .found
        .map_or(Span::new(end, end), |t| Span::new(t.start, t.end));
    let mut diag = Diag::new(CODE_SYNTAX, message(&ctx)).at(source, shift(found_span), label(&ctx));
    if let Some((open, _)) = unclosed(&ctx) {
        diag = diag.label(
            shift(Span::new(open.start, open.end)),
            format!("this `{}` is not closed", open.text),
        );
    }
    match help(&ctx) {
        Some(h) => diag.help(h),
        None => diag,
    }
}

fn context<'a>(text: &'a str, pos: usize, positives: &[Rule]) -> Ctx<'a> {
    let mut wants: Vec<Want> = positives
        .iter()
        .filter_map(|r| Want::from_rule(*r))
        .collect();
    wants.sort();
    wants.dedup();
    // After an operand, `(` and `[` are part of calls and indexing: "an operator" covers them;
    // where an operand may start, names, `(` and `[` are all "an expression".
    if wants.contains(&Want::Operator) {
        wants.retain(|w| !matches!(w, Want::LParen | Want::LBracket));
    }
    if wants.contains(&Want::Expr) {
        wants.retain(|w| !matches!(w, Want::Name | Want::LParen | Want::LBracket));
    }
    let keyword = scan::token_at(text, 0).map_or("", |t| t.text);
    Ctx {
        text,
        keyword,
        wants,
        found: scan::token_at(text, pos),
        prev: scan::token_before(text, pos),
        pos,
    }
}

fn found_words(ctx: &Ctx<'_>) -> String {
    match ctx.found {
        None => "end of line".to_string(),
        Some(t) if t.is_keyword() => format!("the keyword `{}`", t.text),
        Some(t) => format!("`{}`", clip(t.text)),
    }
}

fn has(ctx: &Ctx<'_>, w: Want) -> bool {
    ctx.wants.contains(&w)
}

fn message(ctx: &Ctx<'_>) -> String {
    let found = found_words(ctx);
    if ctx.keyword == "param" && has(ctx, Want::Eq) {
        return format!("expected `=` after the parameter type, found {found}");
    }
    let alternatives = join(&ctx.wants);
    format!("expected {alternatives}{}, found {found}", after(ctx))
}

/// " after the layer name", " after `=`", ... where it helps to say where.
fn after(ctx: &Ctx<'_>) -> String {
    let what = match ctx.keyword {
        "param" => "parameter",
        "const" => "constant",
        "let" => "definition",
        "layer" => "layer",
        "data" => "data",
        _ => "",
    };
    let prev = ctx.prev.map_or("", |t| t.text);
    let name_second = scan::Lexer::new(ctx.text, 0)
        .nth(1)
        .is_some_and(|t| t.end == ctx.prev.map_or(0, |p| p.end));
    if name_second && !what.is_empty() && (has(ctx, Want::Colon) || has(ctx, Want::Eq)) {
        return format!(" after the {what} name");
    }
    if has(ctx, Want::Expr) && matches!(prev, "=" | "minimize" | "+" | "-" | "*" | "/" | ".*" | "^")
    {
        return format!(" after `{prev}`");
    }
    if has(ctx, Want::Type) && prev == ":" {
        return " after `:`".to_string();
    }
    String::new()
}

fn label(ctx: &Ctx<'_>) -> String {
    if ctx.keyword == "param" && has(ctx, Want::Eq) {
        return "expected `=` here".to_string();
    }
    match ctx.wants.as_slice() {
        [] => "unexpected here".to_string(),
        [one] => format!("expected {} here", short(*one)),
        _ => "unexpected here".to_string(),
    }
}

fn short(w: Want) -> &'static str {
    match w {
        Want::Statement => "a statement",
        Want::Type => "a type",
        Want::Size => "a size",
        other => other.words(),
    }
}

/// "a, b or c".
fn join(wants: &[Want]) -> String {
    let words: Vec<&str> = wants.iter().map(|w| w.words()).collect();
    match words.as_slice() {
        [] => "something else".to_string(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The innermost open bracket, if the parser wanted a closing one there.
fn unclosed<'a>(ctx: &Ctx<'a>) -> Option<(Tok<'a>, Option<Tok<'a>>)> {
    if !(has(ctx, Want::RParen) || has(ctx, Want::RBracket)) {
        return None;
    }
    let open = scan::open_brackets_before(ctx.text, ctx.pos).pop()?;
    let on_other_line = ctx.text[open.0.end..ctx.pos.min(ctx.text.len())].contains('\n');
    (ctx.found.is_none() || on_other_line).then_some(open)
}

fn help(ctx: &Ctx<'_>) -> Option<String> {
    let found = ctx.found?;
    let prev = ctx.prev.map_or("", |t| t.text);
    if has(ctx, Want::Statement) {
        return Some(statement_help(ctx, found));
    }
    if has(ctx, Want::Name) && found.is_keyword() {
        return Some(format!(
            "`{}` is a reserved word; choose another name",
            found.text
        ));
    }
    if has(ctx, Want::EndOfLine)
        && found.kind == TokKind::Ident
        && STATEMENT_KEYWORDS.contains(&found.text)
    {
        return Some("write each statement on its own line".to_string());
    }
    if ctx.keyword == "data" && has(ctx, Want::EndOfLine) && found.text == "=" {
        return Some(
            "data take no value in the model; bind them from a file in the run file".to_string(),
        );
    }
    if let Some(h) = type_help(ctx, found) {
        return Some(h);
    }
    if found.text == "*" && prev == "*" {
        return Some("powers are written `x^2`".to_string());
    }
    if found.text == "." {
        return Some("write numbers with a digit before the point, e.g. `0.5`; the elementwise product is `.*`".to_string());
    }
    if has(ctx, Want::Operator) && matches!(found.kind, TokKind::Ident | TokKind::Number) {
        return Some("two operands in a row: is an operator such as `*` missing?".to_string());
    }
    if has(ctx, Want::Size) && found.kind == TokKind::Ident {
        return Some("sizes in types are written as whole numbers, e.g. `vec(3)`".to_string());
    }
    None
}

fn statement_help(ctx: &Ctx<'_>, found: Tok<'_>) -> String {
    let second = scan::token_at(ctx.text, found.end);
    if found.kind == TokKind::Ident && second.is_some_and(|t| t.text == "=") {
        return format!(
            "to define `{}`, write `let {} = ...` or `const {} = ...`",
            found.text, found.text, found.text
        );
    }
    if let Some(kw) = STATEMENT_KEYWORDS
        .iter()
        .find(|k| close_words(k, found.text))
    {
        return format!("did you mean `{kw}`?");
    }
    "a statement starts with `param`, `const`, `let`, `layer`, `data` or `minimize`".to_string()
}

/// Help for sizes in `vec(..)` and `mat(..)`.
fn type_help(ctx: &Ctx<'_>, found: Tok<'_>) -> Option<String> {
    let (_, before) = scan::open_brackets_before(ctx.text, ctx.pos).pop()?;
    match (before?.text, found.text) {
        ("vec", ",") => {
            Some("a vector type takes one size, `vec(n)`; a matrix is `mat(rows, cols)`".into())
        }
        ("mat", ")") => Some("a matrix type takes two sizes, `mat(rows, cols)`".into()),
        ("mat", ",") => Some(
            "a matrix type takes two sizes, `mat(rows, cols)`; use nested lists for more".into(),
        ),
        ("vec" | "mat", _) if has(ctx, Want::Size) => {
            Some("sizes are whole numbers or integer expressions of constants, e.g. `vec(3)`, `vec(n - 1)`, `mat(2, n)`".into())
        }
        _ => None,
    }
}

/// Whether `a` and `b` are within two single-character edits of each other.
fn close_words(a: &str, b: &str) -> bool {
    a.chars().count().abs_diff(b.chars().count()) <= 2
        && b.chars().count() <= 20
        && crate::text::edit_distance(a, b) <= 2
}

/// `text` shortened for a message.
pub(super) fn clip(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}
