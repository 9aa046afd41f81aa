//! The checker: resolves names, checks shapes and finds the multicomposite structure of (P).
//!
//! Input is the parser's [`ast::Program`]; output is a [`Model`]: parameters θ, data
//! declarations, layers u_ℓ (plain, or indexed by time with base cases), and the objective
//! split into top-level terms, each either part of the outer function g or a Tikhonov term
//! `c · sqnorm(θ_i)`. Lets and constants are substituted. All errors found are reported.

mod calls;
mod ctx;
mod expr;
mod index;
mod items;
mod shape;

use std::sync::Arc;

pub use index::MAX_UNROLL;
pub use shape::Shape;

use crate::diag::{Diags, SourceFile, Span};
use crate::registry::{FunctionId, FunctionKind, Registry};
use crate::syntax::ast;

/// Largest number of entries one declared value may have (2^27 f64 = 1 GiB).
pub const MAX_ELEMENTS: usize = 1 << 27;

/// Largest total number of parameter entries n (2^28 f64 = 2 GiB).
pub const MAX_PARAMETERS: usize = 1 << 28;

/// A checked model: the multicomposite structure of (P).
#[derive(Debug, Clone)]
pub struct Model {
    pub source: Arc<SourceFile>,
    pub params: Vec<ParamDef>,
    pub data: Vec<DataDef>,
    pub layers: Vec<LayerDef>,
    /// The objective as a sum of terms `coef · expr`.
    pub terms: Vec<Term>,
    pub objective_span: Span,
    /// What `check` tells the user besides errors: the reductions over index ranges whose
    /// body was unrolled (not elementwise in its index), with why.
    pub notes: Vec<(Span, String)>,
}

#[derive(Debug, Clone)]
pub struct ParamDef {
    pub name: String,
    pub shape: Shape,
    /// Initial value, column-major (zeros unless given).
    pub init: Vec<f64>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct DataDef {
    pub name: String,
    /// Shape of one time step of one sequence.
    pub shape: Shape,
    /// `Some(count)` for `batch(..)` declarations (count if written).
    pub batch: Option<Option<u64>>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct LayerDef {
    pub name: String,
    pub shape: Shape,
    pub body: LayerBody,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum LayerBody {
    /// `layer u = expr`: one layer.
    Plain(CExpr),
    /// `layer h[0] = ..` base cases and `layer h[t] = ..`: one layer per time step.
    Indexed {
        bases: Vec<(u64, CExpr)>,
        general: Option<CExpr>,
    },
}

impl LayerBody {
    pub fn is_indexed(&self) -> bool {
        matches!(self, LayerBody::Indexed { .. })
    }
}

/// One additive term of the objective.
#[derive(Debug, Clone)]
pub struct Term {
    pub coef: f64,
    pub expr: CExpr,
    pub class: TermClass,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TermClass {
    /// Part of the outer function g (depends on layers or data).
    Loss,
    /// `coef · sqnorm(θ_i)` with coef > 0: the Tikhonov part λ‖θ‖².
    Tikhonov { param: usize },
    /// Depends on parameters only, but is not a Tikhonov term.
    Other,
}

/// A checked expression: names resolved, shape known, lets and constants substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct CExpr {
    pub kind: CKind,
    pub shape: Shape,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CKind {
    /// A constant value of the expression's shape, column-major.
    Literal(Vec<f64>),
    Param(usize),
    Data {
        id: usize,
        time: TimeRef,
    },
    Layer {
        id: usize,
        time: TimeRef,
    },
    Unary(Unary, Arc<CExpr>),
    Binary(Binary, Arc<CExpr>, Arc<CExpr>),
    /// A registry function: elementwise for activations, summed to a scalar for penalties.
    Call {
        func: FunctionId,
        kind: FunctionKind,
        params: Vec<f64>,
        arg: Arc<CExpr>,
    },
    /// One entry (0-based) of a vector or matrix.
    Element {
        base: Arc<CExpr>,
        row: usize,
        col: usize,
    },
    /// The entries `start + k·step` (k = 0, 1, .., len − 1; column-major, 0-based, per
    /// sequence) of a vector or matrix, as a `vec(len)`: `x[i + 1]` over a range of `i`.
    Gather {
        base: Arc<CExpr>,
        start: usize,
        step: isize,
    },
    /// `sum(t, e)` or `mean(t, e)`: over time steps (and sequences of a batch).
    TimeReduce {
        mean: bool,
        body: Arc<CExpr>,
    },
}

/// Which time step a sequence reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRef {
    /// Plain layers: no time.
    None,
    /// `h[t - k]`, relative to the time variable.
    Rel(u64),
    /// `h[k]`, a fixed time step.
    Abs(u64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    PowI(i32),
    /// `pow(a, p)`: a real constant power, elementwise (a ≥ 0 unless p is an integer).
    Pow(f64),
    /// Largest entry: `max(v)`, `max(i in a..b, e)` (one n-ary max, ties are kinks).
    Max,
    /// Smallest entry: `min(v)`, `min(i in a..b, e)`.
    Min,
    /// Largest absolute value of the entries: `norminf(v)`.
    NormInf,
    /// Sum of all entries.
    Sum,
    /// Mean of all entries.
    Mean,
    SqNorm,
    Norm1,
    /// Euclidean (for matrices Frobenius) norm, exact to second order at 0.
    Norm2,
    Transpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    /// Matrix product.
    MatMul,
    /// Elementwise product (and scaling by a scalar).
    ElemMul,
    /// Elementwise division (and division by a scalar).
    Div,
    Max,
    Min,
    /// Inner product of equal shapes.
    Dot,
}

impl Model {
    /// Number of scalar parameters n.
    pub fn n_params(&self) -> usize {
        self.params.iter().map(|p| p.shape.len()).sum()
    }

    /// Whether the model has data or time-indexed layers (so needs bound data).
    pub fn is_sequential(&self) -> bool {
        !self.data.is_empty() || self.layers.iter().any(|l| l.body.is_indexed())
    }
}

/// Check a parsed program against the functions of `registry`.
pub fn check(
    source: &Arc<SourceFile>,
    program: &ast::Program,
    registry: &Registry,
) -> Result<Model, Diags> {
    check_with(source, program, registry, &[])
}

/// A value given from outside the model (run file `consts:` or `--const NAME=V`) that replaces
/// the value of a `const` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstOverride {
    pub name: String,
    pub value: f64,
    /// Where the override is written (a run-file key), for "unknown constant" diagnostics;
    /// `None` for the command line.
    pub origin: Option<(Arc<SourceFile>, Span)>,
}

/// [`check`] with `const` values replaced by `overrides`; an override that names no `const`
/// of the model is a diagnostic (with the nearest constant name).
pub fn check_with(
    source: &Arc<SourceFile>,
    program: &ast::Program,
    registry: &Registry,
    overrides: &[ConstOverride],
) -> Result<Model, Diags> {
    items::Checker::new(source, registry)
        .with_overrides(overrides)
        .run(program)
}
