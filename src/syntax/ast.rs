//! The abstract syntax tree of a `.mco` model: what the parser produces and the checker reads.
//!
//! Every node carries the [`Span`] of the text it came from, so later stages can point at it.
//! The AST is purely syntactic: names are not resolved, shapes are not known.

use crate::diag::Span;

/// A whole model file, items in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `param x: real = 0.5`, `param w: vec(3) = [1, 0, -1]`, `param M: mat(2, 3)`
    Param(ParamDecl),
    /// `const beta = 2.0`
    Const(ConstDecl),
    /// `let s = x + 1`
    Let(LetDecl),
    /// `layer u = max(x, 0)`, `layer h[0] = zeros(4)`, `layer u[t] = W * h[t-1] + b`
    Layer(LayerDecl),
    /// `data x: seq(vec(5))`
    Data(DataDecl),
    /// `minimize expr`
    Minimize(MinimizeDecl),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    /// The initial value: a number, a list `[..]` or a list of rows `[[..], [..]]`.
    pub init: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConstDecl {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LetDecl {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LayerDecl {
    pub name: Ident,
    pub index: Option<LayerIndex>,
    pub value: Expr,
    pub span: Span,
}

/// The bracket after a layer name in its declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerIndex {
    /// `h[t]`: the general case, `t` ranges over the time steps 1..T.
    Var(Ident),
    /// `h[0]`: a base case at a fixed (non-negative) time.
    Base { value: u64, span: Span },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MinimizeDecl {
    pub expr: Expr,
    pub span: Span,
}

/// A declared type: `real`, `vec(n)`, `mat(r, c)`, `seq(T)`, `batch(N, seq(T))`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    Real,
    Vec(Dim),
    Mat(Dim, Dim),
    Seq(Box<TypeExpr>),
    /// `batch(seq(vec(5)))` or `batch(8, seq(vec(5)))`: N sequences evaluated together; the
    /// count, when written, must match the bound data.
    Batch {
        count: Option<Dim>,
        inner: Box<TypeExpr>,
    },
}

/// A size in a type, as written (checked for range by the checker): a whole number, or for
/// `vec(..)` and `mat(..)` an integer expression of constants (`vec(n - 1)`), evaluated by
/// the checker.
#[derive(Debug, Clone, PartialEq)]
pub struct Dim {
    /// The literal value (0 when the size is an expression).
    pub value: u64,
    pub span: Span,
    /// The size expression, when it is not a literal.
    pub expr: Option<Box<Expr>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A numeric literal (integers and decimals, with optional exponent).
    Number(f64),
    /// A bare name: parameter, constant, let, layer, data or time variable.
    Name(Ident),
    /// `base[i]`, `base[i, j]`, `h[t-1]`: indexing (1-based) or time indexing.
    Index { base: Box<Expr>, args: Vec<Expr> },
    /// `-a`
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `a ^ k` with an integer literal exponent (possibly negative).
    Pow {
        base: Box<Expr>,
        exponent: i32,
        exponent_span: Span,
    },
    /// `f(a, b, ...)`: built-ins (`abs`, `max`, `sum`, `mean`, ...) and registry functions.
    Call { func: Ident, args: Vec<Expr> },
    /// `[a, b, c]` or `[[a, b], [c, d]]` (rows).
    List(Vec<Expr>),
    /// `i in a..b`: an index range, only as the first argument of a call
    /// (`sum(i in 1..n, x[i])`); the checker refuses it elsewhere.
    Range {
        var: Ident,
        lo: Box<Expr>,
        hi: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    /// `*`: matrix product for matrix/vector operands, scaling when one side is scalar.
    Mul,
    /// `.*`: elementwise (Hadamard) product.
    ElemMul,
    /// `/`: division by a scalar, or elementwise when shapes agree.
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::ElemMul => ".*",
            BinOp::Div => "/",
        }
    }
}
