//! The products with J (J s, Jᵀ y, solves with J_L) of the unstored (P1) host against the
//! stored J, shared by `tests/it/products.rs` (syn and small models) and the release-only
//! `tests/p1_products.rs` (sp500).

use mcopt::forms::linearize::{Jacobian, Linearization, NO_PIECE};
use mcopt::forms::p1host::P1Host;
use mcopt::forms::{Betas, Lifted};
use mcopt::graph::Graph;
use mcopt::registry::Registry;
use mcopt::rng::Rng;
use mcopt_plugin_sdk::p1::P1Problem;

/// J by rows, as the stored host wrote it.
struct Rows<'a> {
    ptr: &'a [usize],
    col: &'a [usize],
    val: &'a [f64],
    n_theta: usize,
}

impl Rows<'_> {
    /// (J s, |J| |s|), over all columns or (`lifted`) the lifted ones only, s then indexed by
    /// rows.
    fn mul(&self, s: &[f64], lifted: bool) -> (Vec<f64>, Vec<f64>) {
        let m = self.ptr.len() - 1;
        let (mut v, mut a) = (vec![0.0; m], vec![0.0; m]);
        for i in 0..m {
            for p in self.ptr[i]..self.ptr[i + 1] {
                let c = self.col[p];
                let x = match (lifted, c.checked_sub(self.n_theta)) {
                    (false, _) => s[c],
                    (true, Some(k)) => s[k],
                    (true, None) => continue,
                };
                v[i] += self.val[p] * x;
                a[i] += (self.val[p] * x).abs();
            }
        }
        (v, a)
    }

    /// (Jᵀ y, |J|ᵀ |y|) into `n` entries (lifted: the lifted columns, indexed by rows).
    fn tmul(&self, y: &[f64], n: usize, lifted: bool) -> (Vec<f64>, Vec<f64>) {
        let (mut v, mut a) = (vec![0.0; n], vec![0.0; n]);
        for (i, yi) in y.iter().enumerate() {
            for p in self.ptr[i]..self.ptr[i + 1] {
                let c = self.col[p];
                let k = match (lifted, c.checked_sub(self.n_theta)) {
                    (false, _) => c,
                    (true, Some(k)) => k,
                    (true, None) => continue,
                };
                v[k] += self.val[p] * yi;
                a[k] += (self.val[p] * yi).abs();
            }
        }
        (v, a)
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// `got` equals `want` to 1e-12 relative to the largest entry of `scale` (|J||v|).
fn close(got: &[f64], want: &[f64], scale: &[f64], what: &str) {
    let tol = 1e-12 * max_abs(scale) + f64::MIN_POSITIVE;
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}: entry {i}: {g} against {w} (tolerance {tol:e})"
        );
    }
}

/// The windows of the split passes the checks compare (three: unequal windows on an odd
/// batch).
pub const SPLIT_WORKERS: usize = 3;

/// Whether the unstored host's passes over `l` split over the batch.
pub fn splits(l: &Lifted, source: &Graph, registry: &Registry) -> bool {
    let betas = Betas::uniform(0.5);
    let pen = l.penalized(&betas);
    let mut h =
        P1Host::with_jacobian(l, &pen, &betas, source, registry, Jacobian::Products).unwrap();
    h.linearizer().set_product_workers(SPLIT_WORKERS)
}

/// A point to check at: z and the bound multipliers of a previous subproblem.
pub struct At<'a> {
    pub z: &'a [f64],
    pub multipliers: Option<&'a [f64]>,
}

/// At each point in turn (pieces carried from one to the next, as SRPA does): the unstored
/// host's linearization equals the stored one's (r, ∇F, F, bounds, pieces, ties, bit for bit,
/// no values of J); its four products equal the stored J's (J s, Jᵀ y to 1e-12 relative to
/// |J||v|; the solves by J_L x − y through the stored J), those of the stored host bit for bit,
/// and those of the per-entry rules (`set_generic_products`) to 1e-12; so do the solves fused
/// with θ's columns (J (s_θ, x) = y, and J_θᵀ x beside the same x as J_L⁻ᵀ y, bit for bit). Returns the total ties
/// and switched pieces met.
#[allow(clippy::too_many_arguments)]
pub fn check(
    l: &Lifted,
    source: &Graph,
    registry: &Registry,
    points: &[At<'_>],
    seed: u64,
    what: &str,
) -> (usize, usize) {
    let betas = Betas::uniform(0.5);
    let pen = l.penalized(&betas);
    let host = |j| P1Host::with_jacobian(l, &pen, &betas, source, registry, j).unwrap();
    let (mut hs, mut hu, mut hg) = (
        host(Jacobian::Stored),
        host(Jacobian::Products),
        host(Jacobian::Products),
    );
    hg.linearizer().set_generic_products(true);
    // passes split over the batch in three windows, where the graph allows it
    let mut hw = host(Jacobian::Products);
    hw.linearizer().set_product_workers(SPLIT_WORKERS);
    assert!(hs.structure().stored && !hu.structure().stored, "{what}");
    assert!(hu.structure().col_idx.is_empty() && hu.structure().row_ptr.is_empty());
    let (n, m, nt) = (l.layout.n_z, hu.structure().rows(), l.layout.n_theta);
    let e = hu.jac_mul(&vec![0.0; n], &mut vec![0.0; m]).unwrap_err();
    assert!(e.contains("before a linearization"), "{e}");
    let np = hs.structure().n_pieces;
    let (mut ps, mut pu, mut pg) = (vec![NO_PIECE; np], vec![NO_PIECE; np], vec![NO_PIECE; np]);
    let mut pw = pu.clone();
    let (ptr, col) = (
        hs.structure().row_ptr.clone(),
        hs.structure().col_idx.clone(),
    );
    let mut rng = Rng::new(seed);
    let (mut ties, mut switched) = (0, 0);
    for (k, at) in points.iter().enumerate() {
        let what = format!("{what}, point {k}");
        let (mut ls, mut lu, mut lg) = (
            Linearization::for_structure(hs.structure()),
            Linearization::for_structure(hu.structure()),
            Linearization::for_structure(hg.structure()),
        );
        hs.linearize(at.z, at.multipliers, &mut ps, &mut ls)
            .unwrap();
        hu.linearize(at.z, at.multipliers, &mut pu, &mut lu)
            .unwrap();
        hg.linearize(at.z, at.multipliers, &mut pg, &mut lg)
            .unwrap();
        let mut lw = Linearization::for_structure(hw.structure());
        hw.linearize(at.z, at.multipliers, &mut pw, &mut lw)
            .unwrap();
        assert_eq!(pw, pu, "{what}: pieces, split passes");
        assert!(lu.jac.is_empty() && ls.jac.len() == col.len());
        assert_eq!(ls.residual, lu.residual, "{what}: r");
        assert_eq!(ls.grad, lu.grad, "{what}: ∇F");
        assert_eq!(ls.smooth, lu.smooth, "{what}: F");
        assert_eq!(ls.lower, lu.lower, "{what}: lower bounds");
        assert_eq!(ls.upper, lu.upper, "{what}: upper bounds");
        assert_eq!((ls.ties, ls.switched), (lu.ties, lu.switched), "{what}");
        assert_eq!(ps, pu, "{what}: pieces");
        assert_eq!(pu, pg, "{what}: pieces");
        ties += ls.ties;
        switched += ls.switched;
        let j = Rows {
            ptr: &ptr,
            col: &col,
            val: &ls.jac,
            n_theta: nt,
        };
        for trial in 0..3 {
            let what = format!("{what}, vector {trial}");
            let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let y: Vec<f64> = (0..m).map(|_| rng.normal()).collect();
            // J s
            let (want, scale) = j.mul(&v, false);
            let [a, b, c] = [&mut hs, &mut hu, &mut hg].map(|h| {
                let mut out = vec![f64::NAN; m];
                h.jac_mul(&v, &mut out).unwrap();
                out
            });
            assert_eq!(a, b, "{what}: J s, stored and unstored hosts");
            close(&b, &want, &scale, &format!("{what}: J s"));
            let mut d = vec![f64::NAN; m];
            hw.jac_mul(&v, &mut d).unwrap();
            close(&d, &want, &scale, &format!("{what}: J s, split passes"));
            close(
                &c,
                &want,
                &scale,
                &format!("{what}: J s by the per-entry rules"),
            );
            // Jᵀ y
            let (want, scale) = j.tmul(&y, n, false);
            let [a, b, c] = [&mut hs, &mut hu, &mut hg].map(|h| {
                let mut out = vec![f64::NAN; n];
                h.jac_tmul(&y, &mut out).unwrap();
                out
            });
            assert_eq!(a, b, "{what}: Jᵀ y, stored and unstored hosts");
            close(&b, &want, &scale, &format!("{what}: Jᵀ y"));
            let mut d = vec![f64::NAN; n];
            hw.jac_tmul(&y, &mut d).unwrap();
            close(&d, &want, &scale, &format!("{what}: Jᵀ y, split passes"));
            close(
                &c,
                &want,
                &scale,
                &format!("{what}: Jᵀ y by the per-entry rules"),
            );
            // J_L x = y
            let [a, b, c] = [&mut hs, &mut hu, &mut hg].map(|h| {
                let mut out = vec![f64::NAN; m];
                h.lifted_solve(&y, &mut out).unwrap();
                out
            });
            assert_eq!(a, b, "{what}: J_L⁻¹ y, stored and unstored hosts");
            let mut d = vec![f64::NAN; m];
            hw.lifted_solve(&y, &mut d).unwrap();
            for (x, how) in [
                (&b, ""),
                (&c, " by the per-entry rules"),
                (&d, ", split passes"),
            ] {
                let (jx, scale) = j.mul(x, true);
                let scale: Vec<f64> = scale.iter().zip(&y).map(|(s, y)| s + y.abs()).collect();
                close(&jx, &y, &scale, &format!("{what}: J_L x = y{how}"));
            }
            // J_Lᵀ x = y
            let [a, b, c] = [&mut hs, &mut hu, &mut hg].map(|h| {
                let mut out = vec![f64::NAN; m];
                h.lifted_tsolve(&y, &mut out).unwrap();
                out
            });
            assert_eq!(a, b, "{what}: J_L⁻ᵀ y, stored and unstored hosts");
            let mut d = vec![f64::NAN; m];
            hw.lifted_tsolve(&y, &mut d).unwrap();
            for (x, how) in [
                (&b, ""),
                (&c, " by the per-entry rules"),
                (&d, ", split passes"),
            ] {
                let (jx, scale) = j.tmul(x, m, true);
                let scale: Vec<f64> = scale.iter().zip(&y).map(|(s, y)| s + y.abs()).collect();
                close(&jx, &y, &scale, &format!("{what}: J_Lᵀ x = y{how}"));
            }
            // fused with θ's columns: J (s_θ, x) = y; and (J_θᵀ x, x) with x of J_Lᵀ x = y
            let input: Vec<f64> = v[..nt].iter().chain(&y).copied().collect();
            let [a2, b2, c2] = [&mut hs, &mut hu, &mut hg].map(|h| {
                let mut out = vec![f64::NAN; m];
                h.lifted_solve_theta(&input, &mut out).unwrap();
                out
            });
            assert_eq!(
                a2, b2,
                "{what}: J_L⁻¹ (y − J_θ s_θ), stored and unstored hosts"
            );
            let mut d2 = vec![f64::NAN; m];
            hw.lifted_solve_theta(&input, &mut d2).unwrap();
            for (x, how) in [
                (&b2, ""),
                (&c2, " by the per-entry rules"),
                (&d2, ", split passes"),
            ] {
                let full: Vec<f64> = v[..nt].iter().chain(x.iter()).copied().collect();
                let (jx, scale) = j.mul(&full, false);
                let scale: Vec<f64> = scale.iter().zip(&y).map(|(s, y)| s + y.abs()).collect();
                close(&jx, &y, &scale, &format!("{what}: J (s_θ, x) = y{how}"));
            }
            let [a2, b2, c2] = [&mut hs, &mut hu, &mut hg].map(|h| {
                let mut out = vec![f64::NAN; n];
                h.lifted_tsolve_theta(&y, &mut out).unwrap();
                out
            });
            assert_eq!(a2, b2, "{what}: (J_θᵀ x, x), stored and unstored hosts");
            assert_eq!(b2[nt..], b[..], "{what}: the fused J_L⁻ᵀ y, bit for bit");
            let mut d2 = vec![f64::NAN; n];
            hw.lifted_tsolve_theta(&y, &mut d2).unwrap();
            assert_eq!(d2[nt..], d[..], "{what}: the fused J_L⁻ᵀ y, split passes");
            for (out, how) in [
                (&b2, ""),
                (&c2, " by the per-entry rules"),
                (&d2, ", split passes"),
            ] {
                let (want, scale) = j.tmul(&out[nt..], n, false);
                close(
                    &out[..nt],
                    &want[..nt],
                    &scale[..nt],
                    &format!("{what}: J_θᵀ x{how}"),
                );
            }
        }
    }
    (ties, switched)
}
