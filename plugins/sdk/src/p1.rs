//! The (P1) structure a host offers to solvers that need it (SRPA): the layout of z = (θ, u),
//! the fixed sparsity pattern of the residuals' Jacobian, β per residual row, and callbacks
//! that evaluate Θ, linearize the residuals on the current activation piece, and report the
//! losses of a forward pass of θ.
//!
//! Conventions (MATH.md §1, §5): z = (θ, u), θ = z[..n_theta]; the residual rows are the
//! entries of every lifted layer instance u_ℓ − ψ_{ℓ−1}(θ, u_{<ℓ}) in block order, so row i
//! belongs to the lifted variable z[n_theta + i];
//! Θ(z) = F(z) + Σ_rows β_i |r_i(z)|.

/// One layer group (`h` for every `h[t]`): its residual rows and the scale of its
/// feasibility measure (1/(N T): sequences times time steps).
#[derive(Debug, Clone, PartialEq)]
pub struct RowGroup {
    pub name: String,
    pub rows: Vec<std::ops::Range<usize>>,
    pub scale: f64,
}

/// The fixed structure of (P1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct P1Structure {
    pub n_theta: usize,
    pub n_z: usize,
    /// Pattern of J (m × n_z) by rows.
    pub row_ptr: Vec<usize>,
    pub col_idx: Vec<usize>,
    /// β of every residual row.
    pub beta: Vec<f64>,
    pub groups: Vec<RowGroup>,
}

impl P1Structure {
    /// Number of residual rows m.
    pub fn rows(&self) -> usize {
        self.row_ptr.len().saturating_sub(1)
    }
}

/// The residuals linearized at one z on the chosen pieces: r + J s, with the piece constraints
/// as bounds lower ≤ s ≤ upper (±∞ where none).
#[derive(Debug, Clone, Default)]
pub struct Linearization {
    /// Values of J in the pattern of [`P1Structure`].
    pub jac: Vec<f64>,
    /// r(z).
    pub residual: Vec<f64>,
    /// ∇F(z).
    pub grad: Vec<f64>,
    /// F(z).
    pub smooth: f64,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// Piecewise entries at a tie, and how many of them switched piece by the tie rule.
    pub ties: usize,
    pub switched: usize,
}

/// A host's (P1) problem, as SRPA uses it.
pub trait P1Problem {
    fn structure(&self) -> &P1Structure;
    /// Θ(z).
    fn penalized(&mut self, z: &[f64]) -> Result<f64, String>;
    /// Linearize at z. `multipliers` (n_z entries, ≥ 0) are the bound multipliers of the
    /// previous subproblem, for the tie rule (MATH.md §5); `None` at the start.
    fn linearize(
        &mut self,
        z: &[f64],
        multipliers: Option<&[f64]>,
        out: &mut Linearization,
    ) -> Result<(), String>;
    /// (train loss, test loss) of a forward pass of θ (the test steps continue the training
    /// steps' state); NaN where the host has no test data.
    fn losses(&mut self, theta: &[f64]) -> Result<(f64, f64), String>;
}
