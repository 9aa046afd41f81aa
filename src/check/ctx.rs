//! What expression checking and declaration checking share, so that `items.rs` (declarations,
//! the `Checker`'s state) and `expr.rs` (expressions) depend one way: the context an
//! expression is checked in, and reading a folded constant.

use super::{CExpr, CKind};

/// Where an expression is checked.
#[derive(Debug, Clone, Default)]
pub(super) struct Ctx {
    /// The time variable in scope (`t` of `layer h[t]` or of `mean(t, ..)`).
    pub(super) time: Option<String>,
    /// The layer whose body this is.
    pub(super) layer: Option<usize>,
}

impl Ctx {
    pub(super) fn top() -> Ctx {
        Ctx::default()
    }

    /// The body of a plain layer or of a base case: no time variable.
    pub(super) fn layer(id: usize) -> Ctx {
        Ctx {
            time: None,
            layer: Some(id),
        }
    }

    pub(super) fn layer_general(id: usize, t: &str) -> Ctx {
        Ctx {
            time: Some(t.to_owned()),
            layer: Some(id),
        }
    }
}

/// The value of a scalar literal (a folded constant).
pub(super) fn scalar_of(e: &CExpr) -> Option<f64> {
    match &e.kind {
        CKind::Literal(v) if e.shape.is_scalar() => Some(v[0]),
        _ => None,
    }
}
