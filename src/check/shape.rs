//! Shapes of checked values: real, vec(n), mat(r, c), and how operators combine them.

use std::fmt;

/// Rows × columns of a value for one sequence. `real` is 1×1 and `vec(n)` is n×1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub rows: usize,
    pub cols: usize,
}

impl Shape {
    pub const SCALAR: Shape = Shape { rows: 1, cols: 1 };

    pub fn vector(n: usize) -> Shape {
        Shape { rows: n, cols: 1 }
    }

    pub fn matrix(rows: usize, cols: usize) -> Shape {
        Shape { rows, cols }
    }

    pub fn is_scalar(self) -> bool {
        self.rows == 1 && self.cols == 1
    }

    pub fn len(self) -> usize {
        self.rows * self.cols
    }

    /// Whether a value of this shape has at most [`super::MAX_ELEMENTS`] entries.
    pub fn fits(self) -> bool {
        self.rows
            .checked_mul(self.cols)
            .is_some_and(|n| n <= super::MAX_ELEMENTS)
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The shape of `self ⊙ other` for elementwise operators, with scalar broadcasting.
    pub fn broadcast(self, other: Shape) -> Option<Shape> {
        if self == other || other.is_scalar() {
            Some(self)
        } else if self.is_scalar() {
            Some(other)
        } else {
            None
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rows, self.cols) {
            (1, 1) => f.write_str("real"),
            (n, 1) => write!(f, "vec({n})"),
            (r, c) => write!(f, "mat({r}, {c})"),
        }
    }
}
