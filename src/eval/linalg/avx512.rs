//! The batch product `A X` (5 to 16 right-hand columns and a multiple of 16 rows, see
//! `avx::gemm_n`) with AVX-512:
//! eight-lane registers, 16 rows × up to 8 columns of sums in registers (16 of the 32), so `A`
//! is read once per product for 8 columns where the AVX kernel reads it once per 4. Each entry
//! is `a₀x₀` and then fused multiply–adds in column order, as in `avx::gemm_n`: a lane is one
//! entry, so the results are the AVX kernel's to the bit
//! (`eval::linalg::tests::avx512_batch_products_equal_the_avx_kernel`).
//!
//! The batch product `Aᵀ X` ([`gemm_t`]) likewise: each entry four lanes of fused
//! multiply–adds as in `avx::gemm_t`, two entries per eight-lane register.
//!
//! Compiled with `mcopt_avx512` only (`build.rs`: Rust 1.89 or later), chosen at run time.
#![allow(
    clippy::incompatible_msrv,
    reason = "compiled only by compilers with stable AVX-512 (build.rs)"
)]

use std::arch::x86_64::{
    __m512d, _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_set1_pd, _mm256_storeu_pd,
    _mm512_add_pd, _mm512_broadcast_f64x4, _mm512_castpd512_pd256, _mm512_extractf64x4_pd,
    _mm512_fmadd_pd, _mm512_loadu_pd, _mm512_mul_pd, _mm512_permute_pd, _mm512_set1_pd,
    _mm512_setzero_pd, _mm512_shuffle_f64x2, _mm512_storeu_pd, _mm512_unpacklo_pd,
};
use std::cell::RefCell;

use super::avx::Ahead;

/// `y = A X` (beta = 0) for `n` right-hand columns (two to sixteen) and a multiple of 16
/// rows, eight columns at a time in blocks of 16 rows; the lines of `ahead` asked for one at a
/// time, every fourth column of `A`.
///
/// # Safety
/// The processor must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gemm_n(a: &[f64], x: &[f64], n: usize, y: &mut [f64], ahead: &mut Ahead<'_>) {
    let (k, m) = (x.len() / n, y.len() / n);
    assert_eq!(m % 16, 0, "rows in blocks of 16");
    let mut c0 = 0;
    // SAFETY: AVX-512F is there (this function's contract).
    unsafe {
        while c0 < n {
            let w = (n - c0).min(8);
            let (xs, ys) = (&x[c0 * k..(c0 + w) * k], &mut y[c0 * m..(c0 + w) * m]);
            for i0 in (0..m).step_by(16) {
                match w {
                    8 => rows::<8>((a, xs), (&[], &[]), ys, i0, ahead),
                    7 => rows::<7>((a, xs), (&[], &[]), ys, i0, ahead),
                    6 => rows::<6>((a, xs), (&[], &[]), ys, i0, ahead),
                    5 => rows::<5>((a, xs), (&[], &[]), ys, i0, ahead),
                    4 => rows::<4>((a, xs), (&[], &[]), ys, i0, ahead),
                    3 => rows::<3>((a, xs), (&[], &[]), ys, i0, ahead),
                    2 => rows::<2>((a, xs), (&[], &[]), ys, i0, ahead),
                    _ => rows::<1>((a, xs), (&[], &[]), ys, i0, ahead),
                }
            }
            c0 += w;
        }
    }
    ahead.all();
}

/// `y = A₁ X₁ + A₂ X₂` (beta = 0) for `n` right-hand columns (two to sixteen) and a multiple
/// of 16 rows: each entry `a₁₀x₁₀`, then fused multiply–adds in column order through `A₁`'s
/// columns and on through `A₂`'s, so the entry is what [`gemm_n`] gives for `[A₁ A₂]` times
/// `[X₁; X₂]`, without the sum of `A₁ X₁` going to memory and back between the two.
///
/// # Safety
/// The processor must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gemm_n_sum(
    (a1, x1): (&[f64], &[f64]),
    (a2, x2): (&[f64], &[f64]),
    n: usize,
    y: &mut [f64],
) {
    let (k1, k2, m) = (x1.len() / n, x2.len() / n, y.len() / n);
    assert_eq!(m % 16, 0, "rows in blocks of 16");
    let mut none = Ahead::none();
    let mut c0 = 0;
    // SAFETY: AVX-512F is there (this function's contract).
    unsafe {
        while c0 < n {
            let w = (n - c0).min(8);
            let xs1 = &x1[c0 * k1..(c0 + w) * k1];
            let xs2 = &x2[c0 * k2..(c0 + w) * k2];
            let ys = &mut y[c0 * m..(c0 + w) * m];
            for i0 in (0..m).step_by(16) {
                match w {
                    8 => rows::<8>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                    7 => rows::<7>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                    6 => rows::<6>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                    5 => rows::<5>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                    4 => rows::<4>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                    3 => rows::<3>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                    2 => rows::<2>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                    _ => rows::<1>((a1, xs1), (a2, xs2), ys, i0, &mut none),
                }
            }
            c0 += w;
        }
    }
}

/// Rows `i0 .. i0 + 16` of `A₁ x₁ + A₂ x₂` for `C` right-hand columns (`x₁`: `C` columns of
/// `k₁ ≥ 1` entries, `x₂` of `k₂ ≥ 0`, `y` `C` columns of `m`): per entry `a₁₀x₁₀`, then
/// `+ aⱼxⱼ` fused, in order through `A₁`'s columns and on through `A₂`'s; a line of `ahead`
/// asked for every fourth column.
///
/// # Safety
/// The processor must have AVX-512F (the caller is compiled for it).
#[inline(always)]
unsafe fn rows<const C: usize>(
    (a1, x1): (&[f64], &[f64]),
    (a2, x2): (&[f64], &[f64]),
    y: &mut [f64],
    i0: usize,
    ahead: &mut Ahead<'_>,
) {
    let (m, k1, k2) = (y.len() / C, x1.len() / C, x2.len() / C);
    assert!(k1 >= 1 && i0 + 16 <= m && a1.len() >= m * k1 && x1.len() == C * k1);
    assert!(a2.len() >= m * k2 && x2.len() == C * k2);
    let ya = y.as_mut_ptr();
    // SAFETY: AVX-512F is there (this function's contract). Every pointer read or written is
    // in bounds by the assertions above: Aₛ's entries j·m + i0 .. j·m + i0 + 16 for j < kₛ
    // (below m·kₛ), xₛ's c·kₛ + j for c < C, j < kₛ, and y's c·m + i0 .. c·m + i0 + 16.
    unsafe {
        let z = _mm512_setzero_pd();
        let mut acc: [[__m512d; 2]; C] = [[z; 2]; C];
        let pa = a1.as_ptr().add(i0);
        let (a0, a1v) = (_mm512_loadu_pd(pa), _mm512_loadu_pd(pa.add(8)));
        for (c, acc) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_pd(*x1.get_unchecked(c * k1));
            *acc = [_mm512_mul_pd(a0, xv), _mm512_mul_pd(a1v, xv)];
        }
        for (a, x, k, from) in [(a1, x1, k1, 1), (a2, x2, k2, 0)] {
            for j in from..k {
                let pa = a.as_ptr().add(j * m + i0);
                let (a0, a1v) = (_mm512_loadu_pd(pa), _mm512_loadu_pd(pa.add(8)));
                for (c, acc) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_pd(*x.get_unchecked(c * k + j));
                    acc[0] = _mm512_fmadd_pd(a0, xv, acc[0]);
                    acc[1] = _mm512_fmadd_pd(a1v, xv, acc[1]);
                }
                if j % 4 == 0 {
                    ahead.some(1);
                }
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            _mm512_storeu_pd(ya.add(c * m + i0), acc[0]);
            _mm512_storeu_pd(ya.add(c * m + i0 + 8), acc[1]);
        }
    }
}

thread_local! {
    /// The right-hand columns of `Aᵀ X` regrouped for [`gemm_t`] (reused across calls).
    static PACKED: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Columns of `A` per block of [`gemm_t`] (`D` in [`tdots`]): 4 × 4 pairs of sums in registers.
const TD: usize = 4;

/// `y = Aᵀ X + beta · y` for an even number `n` of right-hand columns (`x`: `n` columns of
/// `rows` entries, `y`: `n` columns of `A`'s columns), each entry what `avx::gemm_t` computes:
/// lane l sums the rows i ≡ l (mod 4) in order with fused multiply–adds from 0, the lanes added
/// as (0 + 1) + (2 + 3), then the rows after the last multiple of four (multiply, then add),
/// then beta. A register holds two entries (the same column of `A`, two columns of `X`), so
/// `X` is first regrouped: for each block of four rows, the four rows of each pair of
/// columns side by side; up to four pairs (eight columns) per pass over `A`.
///
/// # Safety
/// The processor must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gemm_t(a: &[f64], rows: usize, x: &[f64], n: usize, beta: f64, y: &mut [f64]) {
    assert!(n % 2 == 0 && x.len() == rows * n && a.len() == rows * (y.len() / n));
    let (cols, blocks) = (y.len() / n, rows / 4);
    PACKED.with_borrow_mut(|packed| {
        let mut c0 = 0;
        while c0 < n {
            let pairs = ((n - c0) / 2).min(4);
            packed.clear();
            for b in 0..blocks {
                for p in 0..pairs {
                    let c = c0 + 2 * p;
                    packed.extend_from_slice(&x[c * rows + 4 * b..c * rows + 4 * b + 4]);
                    packed
                        .extend_from_slice(&x[(c + 1) * rows + 4 * b..(c + 1) * rows + 4 * b + 4]);
                }
            }
            let xs = &x[c0 * rows..(c0 + 2 * pairs) * rows];
            let ys = &mut y[c0 * cols..(c0 + 2 * pairs) * cols];
            // SAFETY: AVX-512F is there (this function's contract).
            unsafe {
                match pairs {
                    4 => tdots_pairs::<4>(a, rows, xs, packed, beta, ys),
                    3 => tdots_pairs::<3>(a, rows, xs, packed, beta, ys),
                    2 => tdots_pairs::<2>(a, rows, xs, packed, beta, ys),
                    _ => tdots_pairs::<1>(a, rows, xs, packed, beta, ys),
                }
            }
            c0 += 2 * pairs;
        }
    });
}

/// Every entry of `Aᵀ X` for `P` pairs of right-hand columns (`packed` regrouped as
/// [`gemm_t`] says), [`TD`] columns of `A` at a time, then one at a time.
///
/// # Safety
/// The processor must have AVX-512F (the caller is compiled for it).
#[inline(always)]
unsafe fn tdots_pairs<const P: usize>(
    a: &[f64],
    rows: usize,
    x: &[f64],
    packed: &[f64],
    beta: f64,
    y: &mut [f64],
) {
    let cols = y.len() / (2 * P);
    let mut j = 0;
    // SAFETY: AVX-512F is there (this function's contract).
    unsafe {
        while j + TD <= cols {
            tdots::<P, TD>(a, rows, x, packed, beta, y, j);
            j += TD;
        }
        while j < cols {
            tdots::<P, 1>(a, rows, x, packed, beta, y, j);
            j += 1;
        }
    }
}

/// Entries `j0 .. j0 + D` of `Aᵀ X` for `P` pairs of right-hand columns: `D · P` registers of
/// sums, lanes 0–3 one entry's four lanes and 4–7 the next column's; then the lanes added,
/// the last rows and beta as in `avx::gemm_t`.
///
/// # Safety
/// The processor must have AVX-512F (the caller is compiled for it).
#[inline(always)]
#[allow(
    clippy::needless_range_loop,
    reason = "d and p index both the loaded vectors and the sums"
)]
unsafe fn tdots<const P: usize, const D: usize>(
    a: &[f64],
    rows: usize,
    x: &[f64],
    packed: &[f64],
    beta: f64,
    y: &mut [f64],
    j0: usize,
) {
    let (cols, full) = (y.len() / (2 * P), rows / 4 * 4);
    assert!(j0 + D <= cols && a.len() >= cols * rows && packed.len() == full * 2 * P);
    let mut sums = [[[0.0; 8]; P]; D];
    // SAFETY: AVX-512F is there (this function's contract). `A`'s loads read entries
    // (j0 + d)·rows + i0 .. + 4 with i0 + 4 ≤ full ≤ rows and j0 + d < cols (asserted above);
    // the packed loads read entries i0·2P + 8p .. + 8 < full · 2P = packed.len().
    unsafe {
        let z = _mm512_setzero_pd();
        let mut acc = [[z; P]; D];
        let (pa, pp) = (a.as_ptr(), packed.as_ptr());
        let mut i0 = 0;
        while i0 < full {
            let mut xv = [z; P];
            for p in 0..P {
                xv[p] = _mm512_loadu_pd(pp.add(i0 * 2 * P + 8 * p));
            }
            for d in 0..D {
                let av = _mm512_broadcast_f64x4(_mm256_loadu_pd(pa.add((j0 + d) * rows + i0)));
                for p in 0..P {
                    acc[d][p] = _mm512_fmadd_pd(av, xv[p], acc[d][p]);
                }
            }
            i0 += 4;
        }
        if D == 4 && full == rows {
            // `reduce4` writes entries j0 .. j0 + 4 ≤ cols of each of the 2P columns of `y`.
            reduce4(&acc, beta, y, cols, j0);
            return;
        }
        for d in 0..D {
            for p in 0..P {
                _mm512_storeu_pd(sums[d][p].as_mut_ptr(), acc[d][p]);
            }
        }
    }
    for (d, sd) in sums.iter().enumerate() {
        let col = &a[(j0 + d) * rows..(j0 + d + 1) * rows];
        for (p, s) in sd.iter().enumerate() {
            for h in 0..2 {
                let c = 2 * p + h;
                let s = &s[4 * h..4 * h + 4];
                let mut res = (s[0] + s[1]) + (s[2] + s[3]);
                for (u, v) in col[full..].iter().zip(&x[c * rows + full..(c + 1) * rows]) {
                    res += u * v;
                }
                let yi = &mut y[c * cols + j0 + d];
                *yi = if beta == 0.0 { res } else { res + beta * *yi };
            }
        }
    }
}

/// The end of [`tdots`] for four columns of `A` and no rows after the last multiple of four,
/// in registers: for each pair `p`, the four entries of each of its two columns of `y`
/// (`y[c·cols + j0 .. + 4]`) are (s₀ + s₁) + (s₂ + s₃) of their lanes, then `+ beta · y`
/// unless beta = 0 (multiply, then add), what the scalar end computes.
///
/// # Safety
/// The processor must have AVX-512F (the caller is compiled for it), `acc` must have four
/// rows and `j0 + 4 ≤ cols`, `y.len() = 2P · cols`.
#[inline(always)]
#[allow(
    clippy::needless_range_loop,
    reason = "p indexes the second level of the sums and the columns of y"
)]
unsafe fn reduce4<const P: usize, const D: usize>(
    acc: &[[__m512d; P]; D],
    beta: f64,
    y: &mut [f64],
    cols: usize,
    j0: usize,
) {
    assert!(D == 4 && j0 + 4 <= cols && y.len() == 2 * P * cols);
    // SAFETY: AVX-512F is there (the contract); the loads and stores touch entries
    // c·cols + j0 .. + 4 with c < 2P, inside `y` by the assertion.
    unsafe {
        let py = y.as_mut_ptr();
        for p in 0..P {
            // Lanes 2q (q = 0..4) of t_d: s_2q + s_2q+1 of register d.
            let t: [__m512d; 4] = std::array::from_fn(|d| {
                _mm512_add_pd(acc[d][p], _mm512_permute_pd::<0b0101_0101>(acc[d][p]))
            });
            // [t0₀, t1₀, t0₂, t1₂ | t0₄, t1₄, t0₆, t1₆] and the same for t2, t3.
            let (v01, v23) = (
                _mm512_unpacklo_pd(t[0], t[1]),
                _mm512_unpacklo_pd(t[2], t[3]),
            );
            // lo: [t0₀, t1₀, t0₄, t1₄, t2₀, t3₀, t2₄, t3₄], hi: lanes 2 and 6 likewise.
            let lo = _mm512_shuffle_f64x2::<0b10_00_10_00>(v01, v23);
            let hi = _mm512_shuffle_f64x2::<0b11_01_11_01>(v01, v23);
            // The sums, in the order [d0, d1, d2, d3] of the first column, then the second's.
            let r = _mm512_add_pd(lo, hi);
            let r = _mm512_shuffle_f64x2::<0b11_01_10_00>(r, r);
            let halves = [_mm512_castpd512_pd256(r), _mm512_extractf64x4_pd::<1>(r)];
            for (h, res) in halves.into_iter().enumerate() {
                let at = py.add((2 * p + h) * cols + j0);
                let out = if beta == 0.0 {
                    res
                } else {
                    _mm256_add_pd(
                        res,
                        _mm256_mul_pd(_mm256_set1_pd(beta), _mm256_loadu_pd(at)),
                    )
                };
                _mm256_storeu_pd(at, out);
            }
        }
    }
}
