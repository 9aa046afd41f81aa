//! The pest parser generated from `grammar/mcopt.pest`, and the operator precedence table.
//!
//! Nothing here leaves `crate::syntax`: the rest of mcopt sees only the AST.

use std::sync::LazyLock;

use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "../grammar/mcopt.pest"]
pub(super) struct McoParser;

/// Loosest to tightest: `+ -` (left), `* / .*` (left), unary `-`, `^` (right), indexing.
pub(super) static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::elem_mul, Assoc::Left))
        .op(Op::prefix(Rule::neg))
        .op(Op::infix(Rule::pow, Assoc::Right))
        .op(Op::postfix(Rule::index))
});
