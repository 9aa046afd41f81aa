//! The (P1) structure a host offers to solvers that need it (SRPA), behind
//! [`crate::abi::PROBLEM_CAP_STRUCTURE`] with layout version [`P1_STRUCTURE_VERSION`]: the layout
//! of z = (θ, u), the fixed sparsity pattern of the residuals' Jacobian, β and the layer group of
//! every residual row, and callbacks that complete θ to a feasible z, evaluate Θ, and linearize
//! the residuals on the current activation piece.
//!
//! Conventions (docs/math.md §1, §5): z = (θ, u), θ = z[..n_theta]; the residual rows are the
//! entries of every lifted layer instance u_ℓ − ψ_{ℓ−1}(θ, u_{<ℓ}) in block order, so row i
//! belongs to the lifted variable z[n_theta + i]; Θ(z) = F(z) + Σ_rows β_i |r_i(z)|.
//! Pieces: every entry of a piecewise activation is a *site* whose piece (interval index
//! between its breakpoints, [`NO_PIECE`] before the first choice) the solver keeps and passes
//! back, so a run's state is the solver's alone (checkpoints resume bit-identically).

use std::ffi::c_void;

/// The layout version of [`P1Table`].
pub const P1_STRUCTURE_VERSION: u32 = 1;

/// A site whose piece has not been chosen yet.
pub const NO_PIECE: u32 = u32::MAX;

/// The fixed structure of (P1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct P1Structure {
    pub n_theta: usize,
    pub n_z: usize,
    /// Number of piecewise sites.
    pub n_pieces: usize,
    /// Pattern of J (m × n_z) by rows.
    pub row_ptr: Vec<usize>,
    pub col_idx: Vec<usize>,
    /// β of every residual row.
    pub beta: Vec<f64>,
    /// Layer group of every residual row, and each group's feasibility scale 1/(N T)
    /// (sequences times time steps).
    pub group_of_row: Vec<usize>,
    pub group_scale: Vec<f64>,
}

impl P1Structure {
    /// Number of residual rows m.
    pub fn rows(&self) -> usize {
        self.row_ptr.len().saturating_sub(1)
    }

    /// The feasibility violation max over groups of scale_g ‖r_g‖₂.
    pub fn feasibility(&self, residual: &[f64]) -> f64 {
        let mut ss = vec![0.0; self.group_scale.len()];
        for (r, &g) in residual.iter().zip(&self.group_of_row) {
            ss[g] += r * r;
        }
        ss.iter()
            .zip(&self.group_scale)
            .map(|(s, c)| c * s.sqrt())
            .fold(0.0, f64::max)
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
    /// Sites at a tie, and how many of them switched piece by the tie rule.
    pub ties: usize,
    pub switched: usize,
}

impl Linearization {
    /// Buffers sized for a structure.
    pub fn for_structure(s: &P1Structure) -> Linearization {
        Linearization {
            jac: vec![0.0; s.col_idx.len()],
            residual: vec![0.0; s.rows()],
            grad: vec![0.0; s.n_z],
            smooth: 0.0,
            lower: vec![0.0; s.n_z],
            upper: vec![0.0; s.n_z],
            ties: 0,
            switched: 0,
        }
    }
}

/// A (P1) problem as SRPA uses it; the host implements it, and solvers in plugins see it
/// through a [`P1Table`] ([`RemoteP1`]).
pub trait P1Problem {
    fn structure(&self) -> &P1Structure;
    /// A feasible z from θ (forward completion).
    fn complete(&mut self, theta: &[f64], z: &mut [f64]) -> Result<(), String>;
    /// Θ(z).
    fn penalized(&mut self, z: &[f64]) -> Result<f64, String>;
    /// Linearize at z. `pieces` (one per site) holds the previous pieces and receives the new
    /// ones; `multipliers` (n_z entries, ≥ 0) are the bound multipliers of the previous
    /// subproblem, for the tie rule (docs/math.md §5), `None` when there are none.
    fn linearize(
        &mut self,
        z: &[f64],
        multipliers: Option<&[f64]>,
        pieces: &mut [u32],
        out: &mut Linearization,
    ) -> Result<(), String>;
}

/// Where [`P1Table::linearize`] writes (buffers sized by the structure).
#[repr(C)]
pub struct LinearOut {
    pub jac: *mut f64,
    pub residual: *mut f64,
    pub grad: *mut f64,
    pub lower: *mut f64,
    pub upper: *mut f64,
    pub smooth: f64,
    pub ties: u64,
    pub switched: u64,
}

/// The (P1) structure across the plugin boundary (layout version 1). Arrays are owned by the
/// host and valid while the problem lives. Callbacks return 0 on success.
#[repr(C)]
pub struct P1Table {
    pub ctx: *mut c_void,
    pub n_theta: usize,
    pub n_z: usize,
    pub rows: usize,
    pub nnz: usize,
    pub n_pieces: usize,
    pub n_groups: usize,
    pub row_ptr: *const usize,
    pub col_idx: *const usize,
    pub beta: *const f64,
    pub group_of_row: *const usize,
    pub group_scale: *const f64,
    pub complete: unsafe extern "C" fn(ctx: *mut c_void, theta: *const f64, z: *mut f64) -> i32,
    pub penalized: unsafe extern "C" fn(ctx: *mut c_void, z: *const f64, out: *mut f64) -> i32,
    /// `multipliers` may be null.
    pub linearize: unsafe extern "C" fn(
        ctx: *mut c_void,
        z: *const f64,
        multipliers: *const f64,
        pieces: *mut u32,
        out: *mut LinearOut,
    ) -> i32,
}

/// A host's [`P1Problem`] published as a [`P1Table`]; keep it (and the problem) alive and
/// unmoved while the table is in use.
pub struct Published<'p, P: P1Problem> {
    table: P1Table,
    _problem: std::marker::PhantomData<&'p mut P>,
}

impl<'p, P: P1Problem> Published<'p, P> {
    pub fn new(problem: &'p mut P) -> Published<'p, P> {
        let s = problem.structure();
        let table = P1Table {
            n_theta: s.n_theta,
            n_z: s.n_z,
            rows: s.rows(),
            nnz: s.col_idx.len(),
            n_pieces: s.n_pieces,
            n_groups: s.group_scale.len(),
            row_ptr: s.row_ptr.as_ptr(),
            col_idx: s.col_idx.as_ptr(),
            beta: s.beta.as_ptr(),
            group_of_row: s.group_of_row.as_ptr(),
            group_scale: s.group_scale.as_ptr(),
            ctx: problem as *mut P as *mut c_void,
            complete: complete_tramp::<P>,
            penalized: penalized_tramp::<P>,
            linearize: linearize_tramp::<P>,
        };
        Published {
            table,
            _problem: std::marker::PhantomData,
        }
    }

    /// The table's address, for [`crate::abi::ProblemTable::structure`].
    pub fn as_ptr(&self) -> *const c_void {
        &self.table as *const P1Table as *const c_void
    }
}

fn guarded_status(f: impl FnOnce() -> Result<(), String>) -> i32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        _ => 1,
    }
}

unsafe extern "C" fn complete_tramp<P: P1Problem>(
    ctx: *mut c_void,
    theta: *const f64,
    z: *mut f64,
) -> i32 {
    guarded_status(|| {
        // SAFETY: ctx is the problem the table was published from; sizes from its structure.
        let p = unsafe { &mut *(ctx as *mut P) };
        let (nt, nz) = (p.structure().n_theta, p.structure().n_z);
        let theta = unsafe { std::slice::from_raw_parts(theta, nt) };
        let z = unsafe { std::slice::from_raw_parts_mut(z, nz) };
        p.complete(theta, z)
    })
}

unsafe extern "C" fn penalized_tramp<P: P1Problem>(
    ctx: *mut c_void,
    z: *const f64,
    out: *mut f64,
) -> i32 {
    guarded_status(|| {
        // SAFETY: as above.
        let p = unsafe { &mut *(ctx as *mut P) };
        let z = unsafe { std::slice::from_raw_parts(z, p.structure().n_z) };
        let v = p.penalized(z)?;
        unsafe { *out = v };
        Ok(())
    })
}

unsafe extern "C" fn linearize_tramp<P: P1Problem>(
    ctx: *mut c_void,
    z: *const f64,
    multipliers: *const f64,
    pieces: *mut u32,
    out: *mut LinearOut,
) -> i32 {
    guarded_status(|| {
        // SAFETY: as above; out's buffers are sized by the structure.
        let p = unsafe { &mut *(ctx as *mut P) };
        let s = p.structure();
        let (nz, m, nnz, np) = (s.n_z, s.rows(), s.col_idx.len(), s.n_pieces);
        let z = unsafe { std::slice::from_raw_parts(z, nz) };
        let mult = (!multipliers.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(multipliers, nz) });
        let pieces = unsafe { std::slice::from_raw_parts_mut(pieces, np) };
        let mut lin = Linearization::default();
        p.linearize(z, mult, pieces, &mut lin)?;
        let o = unsafe { &mut *out };
        let copy = |dst: *mut f64, src: &[f64], n: usize| {
            if src.len() == n {
                unsafe { std::slice::from_raw_parts_mut(dst, n) }.copy_from_slice(src);
                Ok(())
            } else {
                Err("linearization of the wrong size".to_string())
            }
        };
        copy(o.jac, &lin.jac, nnz)?;
        copy(o.residual, &lin.residual, m)?;
        copy(o.grad, &lin.grad, nz)?;
        copy(o.lower, &lin.lower, nz)?;
        copy(o.upper, &lin.upper, nz)?;
        o.smooth = lin.smooth;
        o.ties = lin.ties as u64;
        o.switched = lin.switched as u64;
        Ok(())
    })
}

/// A [`P1Table`] seen from a solver, as a [`P1Problem`].
pub struct RemoteP1<'a> {
    table: &'a P1Table,
    structure: P1Structure,
}

impl<'a> RemoteP1<'a> {
    /// # Safety
    /// `ptr` must point to a valid [`P1Table`] of version [`P1_STRUCTURE_VERSION`] that outlives
    /// `'a`.
    pub unsafe fn new(ptr: *const c_void) -> RemoteP1<'a> {
        let t = unsafe { &*(ptr as *const P1Table) };
        let v = |p: *const usize, n: usize| unsafe { std::slice::from_raw_parts(p, n) }.to_vec();
        let f = |p: *const f64, n: usize| unsafe { std::slice::from_raw_parts(p, n) }.to_vec();
        let structure = P1Structure {
            n_theta: t.n_theta,
            n_z: t.n_z,
            n_pieces: t.n_pieces,
            row_ptr: v(t.row_ptr, t.rows + 1),
            col_idx: v(t.col_idx, t.nnz),
            beta: f(t.beta, t.rows),
            group_of_row: v(t.group_of_row, t.rows),
            group_scale: f(t.group_scale, t.n_groups),
        };
        RemoteP1 {
            table: t,
            structure,
        }
    }

    /// Like [`RemoteP1::new`], with the structure already read from this same table (by an
    /// earlier `new`), so a solver that steps many times copies the pattern only once.
    ///
    /// # Safety
    /// As for [`RemoteP1::new`]; `structure` must come from the table at `ptr`.
    pub unsafe fn with_structure(ptr: *const c_void, structure: P1Structure) -> RemoteP1<'a> {
        RemoteP1 {
            // SAFETY: the caller guarantees a valid table that outlives 'a.
            table: unsafe { &*(ptr as *const P1Table) },
            structure,
        }
    }

    /// The structure, to keep for [`RemoteP1::with_structure`].
    pub fn into_structure(self) -> P1Structure {
        self.structure
    }
}

impl P1Problem for RemoteP1<'_> {
    fn structure(&self) -> &P1Structure {
        &self.structure
    }

    fn complete(&mut self, theta: &[f64], z: &mut [f64]) -> Result<(), String> {
        if theta.len() != self.structure.n_theta || z.len() != self.structure.n_z {
            return Err("complete: wrong sizes".into());
        }
        // SAFETY: sizes checked; the table is valid (constructor contract).
        let st = unsafe { (self.table.complete)(self.table.ctx, theta.as_ptr(), z.as_mut_ptr()) };
        (st == 0)
            .then_some(())
            .ok_or_else(|| "the host's complete callback failed".into())
    }

    fn penalized(&mut self, z: &[f64]) -> Result<f64, String> {
        if z.len() != self.structure.n_z {
            return Err("penalized: wrong size".into());
        }
        let mut out = 0.0;
        // SAFETY: as above.
        let st = unsafe { (self.table.penalized)(self.table.ctx, z.as_ptr(), &mut out) };
        (st == 0)
            .then_some(out)
            .ok_or_else(|| "the host's penalized callback failed".into())
    }

    fn linearize(
        &mut self,
        z: &[f64],
        multipliers: Option<&[f64]>,
        pieces: &mut [u32],
        out: &mut Linearization,
    ) -> Result<(), String> {
        let s = &self.structure;
        if z.len() != s.n_z
            || pieces.len() != s.n_pieces
            || multipliers.is_some_and(|m| m.len() != s.n_z)
        {
            return Err("linearize: wrong sizes".into());
        }
        if out.jac.len() != s.col_idx.len() {
            *out = Linearization::for_structure(s);
        }
        let mut o = LinearOut {
            jac: out.jac.as_mut_ptr(),
            residual: out.residual.as_mut_ptr(),
            grad: out.grad.as_mut_ptr(),
            lower: out.lower.as_mut_ptr(),
            upper: out.upper.as_mut_ptr(),
            smooth: 0.0,
            ties: 0,
            switched: 0,
        };
        let mp = multipliers.map_or(std::ptr::null(), |m| m.as_ptr());
        // SAFETY: buffers sized by the structure; the table is valid.
        let st = unsafe {
            (self.table.linearize)(self.table.ctx, z.as_ptr(), mp, pieces.as_mut_ptr(), &mut o)
        };
        out.smooth = o.smooth;
        out.ties = o.ties as usize;
        out.switched = o.switched as usize;
        (st == 0)
            .then_some(())
            .ok_or_else(|| "the host's linearize callback failed".into())
    }
}
