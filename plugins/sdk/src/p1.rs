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
//!
//! J itself comes in one of two forms, which [`P1Structure::stored`] tells apart. Stored: the
//! table holds J's pattern and every `linearize` writes its values. Not stored (a lifted
//! problem too large to hold J, such as a long RNN with a wide hidden layer): the pattern is
//! empty, `linearize` writes no values, and the solver reaches J only through the products.
//! The products are offered in both forms, always at the point and pieces of the last
//! `linearize`: J s, Jᵀ y, and solves with the lifted columns J_L of J. J_L is square (row i
//! is the residual of the lifted variable z[n_theta + i]) and unit lower triangular in block
//! order, since r_ℓ = u_ℓ − ψ_{ℓ−1}(θ, u_{<ℓ}) reads only earlier blocks; so J_L x = y is a
//! forward substitution through the lifted graph, one pass. Two more products fuse a solve
//! with θ's columns J_θ of J, each in one pass: J_L⁻¹ (y − J_θ s_θ), the lifted step that
//! completes a step s_θ of θ, and J_L⁻ᵀ y together with J_θᵀ J_L⁻ᵀ y.

use crate::abi::{status, MsgBuf};
use crate::export::guarded;
use std::ffi::c_void;

/// The layout version of [`P1Table`].
/// Version 2 gave every callback a message buffer for its error. Version 3 added the Jacobian
/// products (`jac_mul`, `jac_tmul`, `lifted_solve`, `lifted_tsolve`) and [`P1Table::flags`]
/// with [`P1_JACOBIAN_STORED`]. Version 4 added the products fused with θ's columns
/// (`lifted_solve_theta`, `lifted_tsolve_theta`). Version 5 added the parameters' shapes
/// ([`P1Table::params`], [`ParamShape`]).
pub const P1_STRUCTURE_VERSION: u32 = 5;

/// The dense parameter complement C = I + J_θᵀ J_L⁻ᵀ J_L⁻¹ J_θ of SRPA's matrix-free path is
/// formed when n_θ is at most this (C holds n_θ² values and costs 2 n_θ passes to form); past
/// it the path preconditions C by Kronecker factors per parameter, whose inner solves took
/// fewer passes than the formation from n_θ = 596 on (the large RNN's first SRPA iteration in
/// CPU time, dense against Kronecker: N_h = 16 (n_θ 596) 4.7 and 3.9 s, N_h = 32 (1,700) 26.6
/// and 8.7 s; docs/srpa.md, "The large RNN"). The solver (`solvers/srpa/newton_cg.rs`) and
/// the host's memory estimate (`forms::linearize::memory`) read it here.
pub const WOODBURY_MAX_THETA: usize = 1_000;

/// Past [`WOODBURY_MAX_THETA`], SRPA's matrix-free path keeps at most this many directions of
/// its inner conjugate gradients on C, each with its product by C (2 n_θ values per
/// direction; `solvers/srpa/kronecker.rs`), priced by the host's memory estimate.
pub const KRONECKER_RECYCLED_MAX: usize = 800;

/// SRPA's matrix-free path drops from its preconditioner at most this many lifted columns
/// held at a bound of their piece, each with 2 n_θ values kept for the subproblem
/// (`solvers/srpa/bound_columns.rs`); priced by the host's memory estimate.
pub const BOUND_COLUMNS_MAX: usize = 32;

/// One parameter of θ: the entries θ[offset .. offset + rows·cols], a `rows × cols` matrix
/// stored column-major (a vector has one column). Solvers may exploit the shapes (SRPA's
/// Kronecker-factored preconditioner of its parameter complement); nothing else depends on
/// them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamShape {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
}

impl ParamShape {
    /// Number of entries, rows · cols.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the parameter has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`P1Table::flags`] bit: J's pattern is in the table and `linearize` writes its values.
/// Without it the pattern is empty and J is reached only through the products.
pub const P1_JACOBIAN_STORED: u64 = 1;

/// A site whose piece has not been chosen yet.
pub const NO_PIECE: u32 = u32::MAX;

/// The fixed structure of (P1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct P1Structure {
    pub n_theta: usize,
    pub n_z: usize,
    /// Number of piecewise sites.
    pub n_pieces: usize,
    /// Whether J's pattern (below) and values are stored; when not, `row_ptr` and `col_idx`
    /// are empty and J is reached through [`P1Problem::jac_mul`] and the other products.
    pub stored: bool,
    /// Pattern of J (m × n_z) by rows (empty when not [`P1Structure::stored`]).
    pub row_ptr: Vec<usize>,
    pub col_idx: Vec<usize>,
    /// β of every residual row (one per row: its length is the number of rows m).
    pub beta: Vec<f64>,
    /// Layer group of every residual row, and each group's feasibility scale 1/(N T)
    /// (sequences times time steps).
    pub group_of_row: Vec<usize>,
    pub group_scale: Vec<f64>,
    /// The parameters in θ, in order, disjoint and inside θ (may be empty: a host that does
    /// not say; solvers then treat θ as unstructured).
    pub params: Vec<ParamShape>,
}

impl P1Structure {
    /// Number of residual rows m.
    pub fn rows(&self) -> usize {
        self.beta.len()
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
    /// Values of J in the pattern of [`P1Structure`] (empty when J is not stored).
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

    /// `out` = J s, J at the point and pieces of the last [`P1Problem::linearize`] (`s`: n_z
    /// entries, `out`: one per row). The default offers no products.
    fn jac_mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), String> {
        let _ = (s, out);
        Err(NO_PRODUCTS.to_string())
    }

    /// `out` = Jᵀ y (`y`: one entry per row, `out`: n_z entries).
    fn jac_tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        let _ = (y, out);
        Err(NO_PRODUCTS.to_string())
    }

    /// Solve J_L x = y, J_L the lifted columns of J (unit lower triangular; `y` and `x` one
    /// entry per row, x_i the step of z[n_theta + i]).
    fn lifted_solve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        let _ = (y, x);
        Err(NO_PRODUCTS.to_string())
    }

    /// Solve J_Lᵀ x = y.
    fn lifted_tsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        let _ = (y, x);
        Err(NO_PRODUCTS.to_string())
    }

    /// x with J_θ s_θ + J_L x = y (`input` = (s_θ, y): n_z entries, θ's step then one entry
    /// per row; `x` one per row): the lifted step that completes s_θ. A host does it in one
    /// pass; the default composes [`P1Problem::jac_mul`] and [`P1Problem::lifted_solve`].
    fn lifted_solve_theta(&mut self, input: &[f64], x: &mut [f64]) -> Result<(), String> {
        let (n_theta, m) = (self.structure().n_theta, self.structure().rows());
        if input.len() != n_theta + m || x.len() != m {
            return Err("lifted_solve_theta: wrong sizes".into());
        }
        let mut s = input.to_vec();
        s[n_theta..].fill(0.0);
        let mut rhs = vec![0.0; m];
        self.jac_mul(&s, &mut rhs)?;
        for (r, y) in rhs.iter_mut().zip(&input[n_theta..]) {
            *r = y - *r;
        }
        self.lifted_solve(&rhs, x)
    }

    /// x with J_Lᵀ x = y, and J_θᵀ x: `out` = (J_θᵀ x, x), n_z entries (`y` one per row). A
    /// host does it in one pass; the default composes [`P1Problem::lifted_tsolve`] and
    /// [`P1Problem::jac_tmul`].
    fn lifted_tsolve_theta(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        let (n_theta, m) = (self.structure().n_theta, self.structure().rows());
        if y.len() != m || out.len() != n_theta + m {
            return Err("lifted_tsolve_theta: wrong sizes".into());
        }
        let mut x = vec![0.0; m];
        self.lifted_tsolve(y, &mut x)?;
        self.jac_tmul(&x, out)?;
        out[n_theta..].copy_from_slice(&x);
        Ok(())
    }
}

/// The message of a [`P1Problem`] that offers no Jacobian products.
const NO_PRODUCTS: &str = "this (P1) host offers no Jacobian products";

/// The signature of the product callbacks of [`P1Table`]: `input` holds the operand (n_z or
/// rows entries, as the product takes), `output` receives the result.
pub type ProductFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    input: *const f64,
    output: *mut f64,
    msg: *mut MsgBuf,
) -> i32;

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

/// The (P1) structure across the plugin boundary (layout version 5). Arrays are owned by the
/// host and valid while the problem lives. Callbacks return 0 on success; on failure they
/// write the reason into `msg` (which may be null).
#[repr(C)]
pub struct P1Table {
    pub ctx: *mut c_void,
    /// [`P1_JACOBIAN_STORED`] when the pattern is here (else `nnz` is 0).
    pub flags: u64,
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
    pub complete: unsafe extern "C" fn(
        ctx: *mut c_void,
        theta: *const f64,
        z: *mut f64,
        msg: *mut MsgBuf,
    ) -> i32,
    pub penalized: unsafe extern "C" fn(
        ctx: *mut c_void,
        z: *const f64,
        out: *mut f64,
        msg: *mut MsgBuf,
    ) -> i32,
    /// `multipliers` may be null.
    pub linearize: unsafe extern "C" fn(
        ctx: *mut c_void,
        z: *const f64,
        multipliers: *const f64,
        pieces: *mut u32,
        out: *mut LinearOut,
        msg: *mut MsgBuf,
    ) -> i32,
    /// J s (input n_z entries, output rows), at the last linearization.
    pub jac_mul: ProductFn,
    /// Jᵀ y (input rows, output n_z).
    pub jac_tmul: ProductFn,
    /// x with J_L x = y (both rows entries).
    pub lifted_solve: ProductFn,
    /// x with J_Lᵀ x = y (both rows entries).
    pub lifted_tsolve: ProductFn,
    /// x with J_θ s_θ + J_L x = y (input (s_θ, y): n_z entries, output rows).
    pub lifted_solve_theta: ProductFn,
    /// (J_θᵀ x, x) with J_Lᵀ x = y (input rows, output n_z).
    pub lifted_tsolve_theta: ProductFn,
    /// The parameters' shapes, `n_params` of them (version 5).
    pub n_params: usize,
    pub params: *const ParamShape,
}

/// The host's side of a published table: the problem and the linearization buffers reused by
/// every call (the callbacks allocate nothing).
struct Ctx<'p, P: P1Problem> {
    problem: &'p mut P,
    scratch: Linearization,
}

/// A host's [`P1Problem`] published as a [`P1Table`]; the table lives inside (borrow it with
/// [`Published::table`] for as long as the host offers it to solvers).
pub struct Published<'p, P: P1Problem> {
    table: P1Table,
    /// The callbacks' context (boxed, so the table's `ctx` stays valid when `self` moves).
    _ctx: Box<Ctx<'p, P>>,
}

impl<'p, P: P1Problem> Published<'p, P> {
    pub fn new(problem: &'p mut P) -> Published<'p, P> {
        let scratch = Linearization::for_structure(problem.structure());
        let mut ctx = Box::new(Ctx { problem, scratch });
        let s = ctx.problem.structure();
        let table = P1Table {
            flags: if s.stored { P1_JACOBIAN_STORED } else { 0 },
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
            n_params: s.params.len(),
            params: s.params.as_ptr(),
            ctx: (&mut *ctx as *mut Ctx<'p, P>).cast::<c_void>(),
            complete: complete_tramp::<P>,
            penalized: penalized_tramp::<P>,
            linearize: linearize_tramp::<P>,
            jac_mul: product_tramp::<P, { Product::Mul as u8 }>,
            jac_tmul: product_tramp::<P, { Product::TMul as u8 }>,
            lifted_solve: product_tramp::<P, { Product::Solve as u8 }>,
            lifted_tsolve: product_tramp::<P, { Product::TSolve as u8 }>,
            lifted_solve_theta: product_tramp::<P, { Product::SolveTheta as u8 }>,
            lifted_tsolve_theta: product_tramp::<P, { Product::TSolveTheta as u8 }>,
        };
        Published { table, _ctx: ctx }
    }

    /// The table, for [`crate::abi::ProblemTable::structure`] (valid while this borrow is).
    pub fn table(&self) -> &P1Table {
        &self.table
    }
}

/// Run a trampoline body on the context behind `ctx`: a panic or an error becomes status 1 with
/// its message in `msg`; a null context is refused.
///
/// # Safety
/// `ctx` must be null or the context of a live [`Published`] of `P`, used by no one else during
/// the call; `msg` null or a valid message buffer.
unsafe fn tramp<P: P1Problem>(
    ctx: *mut c_void,
    msg: *mut MsgBuf,
    body: impl FnOnce(&mut Ctx<'_, P>) -> Result<(), String>,
) -> i32 {
    let run = || {
        // SAFETY: the caller passes null or the live, unshared context of a `Published<P>`.
        let c = unsafe { ctx.cast::<Ctx<'_, P>>().as_mut() }
            .ok_or_else(|| (1, "null (P1) context".to_string()))?;
        body(c).map_err(|e| (1, e))
    };
    // SAFETY: the caller passes a valid message buffer or null.
    match unsafe { guarded(msg, run) } {
        status::OK => 0,
        _ => 1,
    }
}

/// A slice of `n` values at `p`, refused when null (unless `n` is 0).
///
/// # Safety
/// Unless null or `n == 0`, `p` must point to `n` readable values for `'a`.
unsafe fn read<'a, T>(p: *const T, n: usize, what: &str) -> Result<&'a [T], String> {
    if n == 0 {
        Ok(&[])
    } else if p.is_null() {
        Err(format!("null {what}"))
    } else {
        // SAFETY: non-null; the caller guarantees `n` readable values for `'a`.
        Ok(unsafe { std::slice::from_raw_parts(p, n) })
    }
}

/// Mutable counterpart of [`read`].
///
/// # Safety
/// Unless null or `n == 0`, `p` must point to `n` writable, unaliased values for `'a`.
unsafe fn write<'a, T>(p: *mut T, n: usize, what: &str) -> Result<&'a mut [T], String> {
    if n == 0 {
        Ok(&mut [])
    } else if p.is_null() {
        Err(format!("null {what}"))
    } else {
        // SAFETY: non-null; the caller guarantees `n` writable, unaliased values for `'a`.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
    }
}

/// Values from which [`copy_large`] copies in two halves on two threads.
pub const COPY_HALVES_MIN: usize = 1 << 20;

/// dst = src (of equal lengths): from [`COPY_HALVES_MIN`] values, where the machine has two
/// cores, in two halves on two threads (one thread's copy is short of the memory's bandwidth;
/// a linearization of the TIMIT shape hands over 6.47 M values of J, 52 MB).
pub fn copy_large(dst: &mut [f64], src: &[f64]) {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let two =
        || *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1));
    if dst.len() < COPY_HALVES_MIN || !two() {
        dst.copy_from_slice(src);
        return;
    }
    let mid = dst.len() / 2;
    let ((da, db), (sa, sb)) = (dst.split_at_mut(mid), src.split_at(mid));
    std::thread::scope(|scope| {
        scope.spawn(|| db.copy_from_slice(sb));
        da.copy_from_slice(sa);
    });
}

unsafe extern "C" fn complete_tramp<P: P1Problem>(
    ctx: *mut c_void,
    theta: *const f64,
    z: *mut f64,
    msg: *mut MsgBuf,
) -> i32 {
    let body = |c: &mut Ctx<'_, P>| {
        let (nt, nz) = (c.problem.structure().n_theta, c.problem.structure().n_z);
        // SAFETY: the ABI has the solver pass n_theta readable values at `theta` and n_z
        // writable ones at `z`, not overlapping.
        let theta = unsafe { read(theta, nt, "θ") }?;
        // SAFETY: as above.
        let z = unsafe { write(z, nz, "z") }?;
        c.problem.complete(theta, z)
    };
    // SAFETY: `ctx` is the table's context (or null, refused); `msg` valid or null.
    unsafe { tramp::<P>(ctx, msg, body) }
}

unsafe extern "C" fn penalized_tramp<P: P1Problem>(
    ctx: *mut c_void,
    z: *const f64,
    out: *mut f64,
    msg: *mut MsgBuf,
) -> i32 {
    let body = |c: &mut Ctx<'_, P>| {
        // SAFETY: the ABI has the solver pass n_z readable values at `z`.
        let z = unsafe { read(z, c.problem.structure().n_z, "z") }?;
        // SAFETY: the ABI has the solver pass one writable f64 at `out` (or null, refused).
        let out = unsafe { out.as_mut() }.ok_or("null output")?;
        *out = c.problem.penalized(z)?;
        Ok(())
    };
    // SAFETY: as in `complete_tramp`.
    unsafe { tramp::<P>(ctx, msg, body) }
}

unsafe extern "C" fn linearize_tramp<P: P1Problem>(
    ctx: *mut c_void,
    z: *const f64,
    multipliers: *const f64,
    pieces: *mut u32,
    out: *mut LinearOut,
    msg: *mut MsgBuf,
) -> i32 {
    let body = |c: &mut Ctx<'_, P>| {
        let s = c.problem.structure();
        let (nz, m, nnz, np) = (s.n_z, s.rows(), s.col_idx.len(), s.n_pieces);
        // SAFETY: the ABI has the solver pass n_z readable values at `z` and, unless null, at
        // `multipliers`, n_pieces writable ones at `pieces`, and a valid `out` whose buffers
        // are sized by the structure; none overlap.
        let z = unsafe { read(z, nz, "z") }?;
        // SAFETY: as above (null multipliers mean none).
        let mult = (!multipliers.is_null())
            .then(|| unsafe { read(multipliers, nz, "multipliers") })
            .transpose()?;
        // SAFETY: as above.
        let pieces = unsafe { write(pieces, np, "pieces") }?;
        // SAFETY: as above.
        let o = unsafe { out.as_mut() }.ok_or("null linearization output")?;
        c.problem.linearize(z, mult, pieces, &mut c.scratch)?;
        let lin = &c.scratch;
        let copy = |dst: *mut f64, src: &[f64], n: usize, what: &str| {
            if src.len() != n {
                return Err(format!(
                    "the host's linearization has {} {what} entries, the structure {n}",
                    src.len()
                ));
            }
            // SAFETY: `out`'s buffers hold the structure's sizes (see above).
            copy_large(unsafe { write(dst, n, what) }?, src);
            Ok(())
        };
        copy(o.jac, &lin.jac, nnz, "Jacobian")?;
        copy(o.residual, &lin.residual, m, "residual")?;
        copy(o.grad, &lin.grad, nz, "gradient")?;
        copy(o.lower, &lin.lower, nz, "lower bound")?;
        copy(o.upper, &lin.upper, nz, "upper bound")?;
        o.smooth = lin.smooth;
        o.ties = lin.ties as u64;
        o.switched = lin.switched as u64;
        Ok(())
    };
    // SAFETY: as in `complete_tramp`.
    unsafe { tramp::<P>(ctx, msg, body) }
}

/// The six products of [`P1Table`], as the const parameter of their trampoline.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Product {
    Mul,
    TMul,
    Solve,
    TSolve,
    SolveTheta,
    TSolveTheta,
}

impl Product {
    const ALL: [Product; 6] = [
        Product::Mul,
        Product::TMul,
        Product::Solve,
        Product::TSolve,
        Product::SolveTheta,
        Product::TSolveTheta,
    ];

    fn of(code: u8) -> Product {
        Product::ALL[usize::from(code)]
    }

    /// The lengths of the operand and of the result.
    fn sizes(self, s: &P1Structure) -> (usize, usize) {
        match self {
            Product::Mul | Product::SolveTheta => (s.n_z, s.rows()),
            Product::TMul | Product::TSolveTheta => (s.rows(), s.n_z),
            Product::Solve | Product::TSolve => (s.rows(), s.rows()),
        }
    }
}

unsafe extern "C" fn product_tramp<P: P1Problem, const CODE: u8>(
    ctx: *mut c_void,
    input: *const f64,
    output: *mut f64,
    msg: *mut MsgBuf,
) -> i32 {
    let body = |c: &mut Ctx<'_, P>| {
        let which = Product::of(CODE);
        let (n_in, n_out) = which.sizes(c.problem.structure());
        // SAFETY: the ABI has the solver pass `n_in` readable values at `input` and `n_out`
        // writable ones at `output` (the sizes of `Product::sizes`), not overlapping.
        let input = unsafe { read(input, n_in, "operand") }?;
        // SAFETY: as above.
        let output = unsafe { write(output, n_out, "result") }?;
        match which {
            Product::Mul => c.problem.jac_mul(input, output),
            Product::TMul => c.problem.jac_tmul(input, output),
            Product::Solve => c.problem.lifted_solve(input, output),
            Product::TSolve => c.problem.lifted_tsolve(input, output),
            Product::SolveTheta => c.problem.lifted_solve_theta(input, output),
            Product::TSolveTheta => c.problem.lifted_tsolve_theta(input, output),
        }
    };
    // SAFETY: as in `complete_tramp`.
    unsafe { tramp::<P>(ctx, msg, body) }
}

/// A [`P1Table`] seen from a solver, as a [`P1Problem`]; get one from
/// [`crate::Problem::p1`].
pub struct RemoteP1<'a> {
    table: &'a P1Table,
    structure: P1Structure,
}

/// Call a table callback with a message buffer; its message on failure.
fn call(what: &str, f: impl FnOnce(&mut MsgBuf) -> i32) -> Result<(), String> {
    let mut store = [0u8; 512];
    let mut msg = MsgBuf {
        ptr: store.as_mut_ptr(),
        cap: store.len(),
        len: 0,
    };
    if f(&mut msg) == 0 {
        return Ok(());
    }
    // SAFETY: the callee wrote at most `cap` bytes into `store` and set `len`.
    let text = unsafe { msg.message() };
    Err(if text.is_empty() {
        format!("the host's {what} callback failed")
    } else {
        format!("the host's {what} callback failed: {text}")
    })
}

impl<'a> RemoteP1<'a> {
    /// # Safety
    /// `t` must be a valid table of version [`P1_STRUCTURE_VERSION`] whose arrays hold the
    /// sizes it states, alive for `'a`.
    pub(crate) unsafe fn new(t: &'a P1Table) -> RemoteP1<'a> {
        // SAFETY (both readers): the caller guarantees the table's arrays hold its sizes.
        // SAFETY: the caller guarantees the table's arrays hold its sizes.
        let v = |p: *const usize, n: usize| unsafe { read(p, n, "") }.unwrap_or(&[]).to_vec();
        // SAFETY: as above.
        let f = |p: *const f64, n: usize| unsafe { read(p, n, "") }.unwrap_or(&[]).to_vec();
        let structure = P1Structure {
            stored: t.flags & P1_JACOBIAN_STORED != 0,
            n_theta: t.n_theta,
            n_z: t.n_z,
            n_pieces: t.n_pieces,
            row_ptr: if t.flags & P1_JACOBIAN_STORED != 0 {
                v(t.row_ptr, t.rows + 1)
            } else {
                Vec::new()
            },
            col_idx: v(t.col_idx, t.nnz),
            beta: f(t.beta, t.rows),
            group_of_row: v(t.group_of_row, t.rows),
            group_scale: f(t.group_scale, t.n_groups),
            // SAFETY: as above.
            params: unsafe { read(t.params, t.n_params, "") }
                .unwrap_or(&[])
                .to_vec(),
        };
        RemoteP1 {
            table: t,
            structure,
        }
    }

    /// Like [`RemoteP1::new`], with the structure already read from this same table.
    ///
    /// # Safety
    /// As for [`RemoteP1::new`]; `structure` has the table's sizes.
    pub(crate) unsafe fn with_structure(t: &'a P1Table, structure: P1Structure) -> RemoteP1<'a> {
        RemoteP1 {
            table: t,
            structure,
        }
    }

    /// The structure, to keep for [`crate::Problem::p1_reusing`].
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
        let t = self.table;
        // SAFETY: sizes checked against the structure, which has the table's sizes; the table
        // is valid (constructor contract); `msg` is our buffer.
        call("complete", |msg| unsafe {
            (t.complete)(t.ctx, theta.as_ptr(), z.as_mut_ptr(), msg)
        })
    }

    fn penalized(&mut self, z: &[f64]) -> Result<f64, String> {
        if z.len() != self.structure.n_z {
            return Err("penalized: wrong size".into());
        }
        let mut out = 0.0;
        let t = self.table;
        // SAFETY: as above.
        call("penalized", |msg| unsafe {
            (t.penalized)(t.ctx, z.as_ptr(), &mut out, msg)
        })?;
        Ok(out)
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
        let sized = out.jac.len() == s.col_idx.len()
            && out.residual.len() == s.rows()
            && out.grad.len() == s.n_z
            && out.lower.len() == s.n_z
            && out.upper.len() == s.n_z;
        if !sized {
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
        let t = self.table;
        // SAFETY: buffers sized by the structure (checked or resized above), which has the
        // table's sizes; the table is valid.
        let r = call("linearize", |msg| unsafe {
            (t.linearize)(t.ctx, z.as_ptr(), mp, pieces.as_mut_ptr(), &mut o, msg)
        });
        out.smooth = o.smooth;
        out.ties = o.ties as usize;
        out.switched = o.switched as usize;
        r
    }

    fn jac_mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.product(Product::Mul, s, out)
    }

    fn jac_tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.product(Product::TMul, y, out)
    }

    fn lifted_solve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.product(Product::Solve, y, x)
    }

    fn lifted_tsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.product(Product::TSolve, y, x)
    }

    fn lifted_solve_theta(&mut self, input: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.product(Product::SolveTheta, input, x)
    }

    fn lifted_tsolve_theta(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.product(Product::TSolveTheta, y, out)
    }
}

impl RemoteP1<'_> {
    /// Call one of the table's product callbacks, sizes checked first.
    fn product(&self, which: Product, input: &[f64], output: &mut [f64]) -> Result<(), String> {
        let (n_in, n_out) = which.sizes(&self.structure);
        let (name, f) = match which {
            Product::Mul => ("jac_mul", self.table.jac_mul),
            Product::TMul => ("jac_tmul", self.table.jac_tmul),
            Product::Solve => ("lifted_solve", self.table.lifted_solve),
            Product::TSolve => ("lifted_tsolve", self.table.lifted_tsolve),
            Product::SolveTheta => ("lifted_solve_theta", self.table.lifted_solve_theta),
            Product::TSolveTheta => ("lifted_tsolve_theta", self.table.lifted_tsolve_theta),
        };
        if input.len() != n_in || output.len() != n_out {
            return Err(format!("{name}: wrong sizes"));
        }
        let ctx = self.table.ctx;
        // SAFETY: sizes checked against the structure, which has the table's sizes; the table
        // is valid (constructor contract); `msg` is our buffer.
        call(name, |msg| unsafe {
            f(ctx, input.as_ptr(), output.as_mut_ptr(), msg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_copy_is_the_source() {
        for len in [5, COPY_HALVES_MIN + 3] {
            let src: Vec<f64> = (0..len).map(|i| (i as f64).sqrt() - 7.0).collect();
            let mut dst = vec![0.0; len];
            copy_large(&mut dst, &src);
            assert!(
                dst.iter()
                    .zip(&src)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{len}"
            );
        }
    }

    /// A one-row (P1) host whose Θ fails outside z ≥ 0.
    struct Host(P1Structure);

    impl P1Problem for Host {
        fn structure(&self) -> &P1Structure {
            &self.0
        }
        fn complete(&mut self, theta: &[f64], z: &mut [f64]) -> Result<(), String> {
            z[0] = theta[0];
            z[1] = 2.0 * theta[0];
            Ok(())
        }
        fn penalized(&mut self, z: &[f64]) -> Result<f64, String> {
            if z[0] < 0.0 {
                return Err(format!("z₀ = {} is outside the domain", z[0]));
            }
            Ok(z[0] + z[1])
        }
        fn linearize(
            &mut self,
            z: &[f64],
            _: Option<&[f64]>,
            _: &mut [u32],
            out: &mut Linearization,
        ) -> Result<(), String> {
            out.jac.copy_from_slice(&[-2.0, 1.0]);
            out.residual[0] = z[1] - 2.0 * z[0];
            out.smooth = z[0];
            Ok(())
        }
        fn jac_mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), String> {
            out[0] = -2.0 * s[0] + s[1];
            Ok(())
        }
        fn jac_tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
            out.copy_from_slice(&[-2.0 * y[0], y[0]]);
            Ok(())
        }
        fn lifted_solve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
            x[0] = 3.0 * y[0];
            Ok(())
        }
    }

    fn host() -> Host {
        Host(P1Structure {
            stored: true,
            n_theta: 1,
            n_z: 2,
            n_pieces: 0,
            row_ptr: vec![0, 2],
            col_idx: vec![0, 1],
            beta: vec![1.0],
            group_of_row: vec![0],
            group_scale: vec![1.0],
            params: vec![ParamShape {
                offset: 0,
                rows: 1,
                cols: 1,
            }],
        })
    }

    #[test]
    fn callbacks_carry_the_hosts_messages_and_refuse_null_pointers() {
        let mut h = host();
        let published = Published::new(&mut h);
        let t = published.table();
        // SAFETY: the table of a live `Published`, with the sizes of its structure.
        let mut remote = unsafe { RemoteP1::new(t) };
        let mut z = [0.0; 2];
        remote.complete(&[1.5], &mut z).unwrap();
        assert_eq!(z, [1.5, 3.0]);
        assert_eq!(remote.penalized(&z).unwrap(), 4.5);
        let e = remote.penalized(&[-1.0, 0.0]).unwrap_err();
        assert!(e.contains("z₀ = -1 is outside the domain"), "{e}");
        let mut lin = Linearization::default();
        remote.linearize(&z, None, &mut [], &mut lin).unwrap();
        assert_eq!((lin.jac.as_slice(), lin.smooth), (&[-2.0, 1.0][..], 1.5));
        let mut out = 0.0;
        let mut store = [0u8; 64];
        let mut msg = MsgBuf {
            ptr: store.as_mut_ptr(),
            cap: store.len(),
            len: 0,
        };
        // SAFETY: the table's own context and callback, a null z (refused) and valid buffers.
        let st = unsafe { (t.penalized)(t.ctx, std::ptr::null(), &mut out, &mut msg) };
        assert_eq!(st, 1);
        // SAFETY: the callback wrote `len` bytes into `store`.
        assert_eq!(unsafe { msg.message() }, "null z");
        // SAFETY: a null context is refused before anything is read.
        let st = unsafe {
            (t.complete)(
                std::ptr::null_mut(),
                [1.0].as_ptr(),
                z.as_mut_ptr(),
                &mut msg,
            )
        };
        assert_eq!(st, 1);
    }

    #[test]
    fn products_cross_the_table_with_their_sizes_checked() {
        let mut h = host();
        let published = Published::new(&mut h);
        let t = published.table();
        assert_eq!(t.flags, P1_JACOBIAN_STORED);
        // SAFETY: the table of a live `Published`, with the sizes of its structure.
        let mut remote = unsafe { RemoteP1::new(t) };
        assert!(remote.structure().stored);
        let shape = ParamShape {
            offset: 0,
            rows: 1,
            cols: 1,
        };
        assert_eq!(remote.structure().params, [shape]);
        let mut row = [0.0];
        remote.jac_mul(&[1.0, 5.0], &mut row).unwrap();
        assert_eq!(row, [3.0]);
        let mut col = [0.0; 2];
        remote.jac_tmul(&[2.0], &mut col).unwrap();
        assert_eq!(col, [-4.0, 2.0]);
        remote.lifted_solve(&[2.0], &mut row).unwrap();
        assert_eq!(row, [6.0]);
        let e = remote.lifted_tsolve(&[2.0], &mut row).unwrap_err();
        assert!(e.contains("offers no Jacobian products"), "{e}");
        // the fused products by their default: J_L⁻¹ (y − J_θ s_θ) = 3 (5 + 2·1)
        remote.lifted_solve_theta(&[1.0, 5.0], &mut row).unwrap();
        assert_eq!(row, [21.0]);
        let e = remote.lifted_tsolve_theta(&[2.0], &mut col).unwrap_err();
        assert!(e.contains("offers no Jacobian products"), "{e}");
        let e = remote.lifted_solve_theta(&[5.0], &mut row).unwrap_err();
        assert!(e.contains("lifted_solve_theta: wrong sizes"), "{e}");
        let e = remote.jac_mul(&[1.0], &mut row).unwrap_err();
        assert!(e.contains("wrong sizes"), "{e}");
    }

    #[test]
    fn a_structure_without_its_jacobian_reads_no_pattern() {
        let mut h = host();
        h.0.stored = false;
        h.0.row_ptr.clear();
        h.0.col_idx.clear();
        let published = Published::new(&mut h);
        let t = published.table();
        assert_eq!((t.flags, t.rows, t.nnz), (0, 1, 0));
        // SAFETY: as above.
        let remote = unsafe { RemoteP1::new(t) };
        let s = remote.structure();
        assert!(!s.stored && s.row_ptr.is_empty() && s.col_idx.is_empty());
        assert_eq!(s.rows(), 1);
    }
}
