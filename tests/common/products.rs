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

/// The z offsets of the entries of a lifted layer group, in order.
pub fn group_entries(l: &Lifted, name: &str) -> Vec<usize> {
    let g = &l.layout.groups[l.layout.group(name).unwrap()];
    g.blocks
        .iter()
        .flat_map(|&k| l.layout.blocks[k].range())
        .collect()
}

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

impl<'a> At<'a> {
    /// z, with no previous subproblem.
    pub fn new(z: &'a [f64]) -> At<'a> {
        At {
            z,
            multipliers: None,
        }
    }

    /// z after a subproblem whose bound multipliers were `multipliers`.
    pub fn after(z: &'a [f64], multipliers: &'a [f64]) -> At<'a> {
        At {
            z,
            multipliers: Some(multipliers),
        }
    }
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
    // stored J; unstored; unstored by the per-entry rules; unstored with its passes split
    // over the batch in three windows, where the graph allows it
    let mut hosts = [
        Jacobian::Stored,
        Jacobian::Products,
        Jacobian::Products,
        Jacobian::Products,
    ]
    .map(host);
    hosts[2].linearizer().set_generic_products(true);
    hosts[3].linearizer().set_product_workers(SPLIT_WORKERS);
    let (hs, hu) = (&hosts[0], &hosts[1]);
    assert!(hs.structure().stored && !hu.structure().stored, "{what}");
    assert!(hu.structure().col_idx.is_empty() && hu.structure().row_ptr.is_empty());
    let (n, m, nt) = (l.layout.n_z, hu.structure().rows(), l.layout.n_theta);
    let np = hs.structure().n_pieces;
    let (ptr, col) = (
        hs.structure().row_ptr.clone(),
        hs.structure().col_idx.clone(),
    );
    let e = hosts[1]
        .jac_mul(&vec![0.0; n], &mut vec![0.0; m])
        .unwrap_err();
    assert!(e.contains("before a linearization"), "{e}");
    let mut pieces = [(); 4].map(|_| vec![NO_PIECE; np]);
    let mut rng = Rng::new(seed);
    let (mut ties, mut switched) = (0, 0);
    for (k, at) in points.iter().enumerate() {
        let what = format!("{what}, point {k}");
        let mut lin: Vec<Linearization> = hosts
            .iter_mut()
            .zip(&mut pieces)
            .map(|(h, pieces)| {
                let mut li = Linearization::for_structure(h.structure());
                h.linearize(at.z, at.multipliers, pieces, &mut li).unwrap();
                li
            })
            .collect();
        let (ls, lu) = (&lin[0], &lin[1]);
        assert!(lu.jac.is_empty() && ls.jac.len() == col.len());
        assert_eq!(ls.residual, lu.residual, "{what}: r");
        assert_eq!(ls.grad, lu.grad, "{what}: ∇F");
        assert_eq!(ls.smooth, lu.smooth, "{what}: F");
        assert_eq!(ls.lower, lu.lower, "{what}: lower bounds");
        assert_eq!(ls.upper, lu.upper, "{what}: upper bounds");
        assert_eq!((ls.ties, ls.switched), (lu.ties, lu.switched), "{what}");
        assert_eq!(pieces[0], pieces[1], "{what}: pieces");
        assert_eq!(pieces[1], pieces[2], "{what}: pieces");
        assert_eq!(pieces[3], pieces[1], "{what}: pieces, split passes");
        ties += ls.ties;
        switched += ls.switched;
        let j = Rows {
            ptr: &ptr,
            col: &col,
            val: &std::mem::take(&mut lin[0].jac),
            n_theta: nt,
        };
        // the hosts' results of one product, in the order above, and how each is named
        let kinds = ["", " by the per-entry rules", ", split passes"];
        for trial in 0..3 {
            let what = format!("{what}, vector {trial}");
            let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let y: Vec<f64> = (0..m).map(|_| rng.normal()).collect();
            // J s
            let (want, scale) = j.mul(&v, false);
            let [a, b, c, d] = on_each(&mut hosts, m, |h, out| h.jac_mul(&v, out));
            assert_eq!(a, b, "{what}: J s, stored and unstored hosts");
            for (x, how) in [&b, &c, &d].into_iter().zip(kinds) {
                close(x, &want, &scale, &format!("{what}: J s{how}"));
            }
            // Jᵀ y
            let (want, scale) = j.tmul(&y, n, false);
            let [a, b, c, d] = on_each(&mut hosts, n, |h, out| h.jac_tmul(&y, out));
            assert_eq!(a, b, "{what}: Jᵀ y, stored and unstored hosts");
            for (x, how) in [&b, &c, &d].into_iter().zip(kinds) {
                close(x, &want, &scale, &format!("{what}: Jᵀ y{how}"));
            }
            // J_L x = y
            let [a, b, c, d] = on_each(&mut hosts, m, |h, out| h.lifted_solve(&y, out));
            assert_eq!(a, b, "{what}: J_L⁻¹ y, stored and unstored hosts");
            for (x, how) in [&b, &c, &d].into_iter().zip(kinds) {
                let (jx, scale) = j.mul(x, true);
                let scale: Vec<f64> = scale.iter().zip(&y).map(|(s, y)| s + y.abs()).collect();
                close(&jx, &y, &scale, &format!("{what}: J_L x = y{how}"));
            }
            // J_Lᵀ x = y
            let [a, b, c, d] = on_each(&mut hosts, m, |h, out| h.lifted_tsolve(&y, out));
            assert_eq!(a, b, "{what}: J_L⁻ᵀ y, stored and unstored hosts");
            for (x, how) in [&b, &c, &d].into_iter().zip(kinds) {
                let (jx, scale) = j.tmul(x, m, true);
                let scale: Vec<f64> = scale.iter().zip(&y).map(|(s, y)| s + y.abs()).collect();
                close(&jx, &y, &scale, &format!("{what}: J_Lᵀ x = y{how}"));
            }
            let tsolved = [b, d];
            // fused with θ's columns: J (s_θ, x) = y; and (J_θᵀ x, x) with x of J_Lᵀ x = y
            let input: Vec<f64> = v[..nt].iter().chain(&y).copied().collect();
            let [a, b, c, d] = on_each(&mut hosts, m, |h, out| h.lifted_solve_theta(&input, out));
            assert_eq!(
                a, b,
                "{what}: J_L⁻¹ (y − J_θ s_θ), stored and unstored hosts"
            );
            for (x, how) in [&b, &c, &d].into_iter().zip(kinds) {
                let full: Vec<f64> = v[..nt].iter().chain(x.iter()).copied().collect();
                let (jx, scale) = j.mul(&full, false);
                let scale: Vec<f64> = scale.iter().zip(&y).map(|(s, y)| s + y.abs()).collect();
                close(&jx, &y, &scale, &format!("{what}: J (s_θ, x) = y{how}"));
            }
            let [a, b, c, d] = on_each(&mut hosts, n, |h, out| h.lifted_tsolve_theta(&y, out));
            assert_eq!(a, b, "{what}: (J_θᵀ x, x), stored and unstored hosts");
            assert_eq!(
                b[nt..],
                tsolved[0][..],
                "{what}: the fused J_L⁻ᵀ y, bit for bit"
            );
            assert_eq!(
                d[nt..],
                tsolved[1][..],
                "{what}: the fused J_L⁻ᵀ y, split passes"
            );
            for (out, how) in [&b, &c, &d].into_iter().zip(kinds) {
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

/// One product on each host: its output of `len` entries (NaN where it writes nothing).
fn on_each(
    hosts: &mut [P1Host; 4],
    len: usize,
    mut product: impl FnMut(&mut P1Host, &mut [f64]) -> Result<(), String>,
) -> [Vec<f64>; 4] {
    hosts.each_mut().map(|h| {
        let mut out = vec![f64::NAN; len];
        product(h, &mut out).unwrap();
        out
    })
}
