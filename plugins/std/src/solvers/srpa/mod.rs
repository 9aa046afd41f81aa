//! SRPA, the authors' sequential regularized piecewise affine algorithm on (P1) (MATH.md §5):
//! the exact subproblem solver and the iteration.

pub mod iteration;
pub mod ldl;
pub mod subproblem;
