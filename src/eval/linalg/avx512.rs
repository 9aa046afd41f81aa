//! The batch product `A X` (5 to 16 right-hand columns and a multiple of 16 rows, see
//! `avx::gemm_n`) with AVX-512:
//! eight-lane registers, 16 rows × up to 8 columns of sums in registers (16 of the 32), so `A`
//! is read once per product for 8 columns where the AVX kernel reads it once per 4. Each entry
//! is `a₀x₀` and then fused multiply–adds in column order, as in `avx::gemm_n`: a lane is one
//! entry, so the results are the AVX kernel's to the bit
//! (`eval::linalg::tests::avx512_batch_products_equal_the_avx_kernel`).
//!
//! Compiled with `mcopt_avx512` only (`build.rs`: Rust 1.89 or later), chosen at run time.
#![allow(
    clippy::incompatible_msrv,
    reason = "compiled only by compilers with stable AVX-512 (build.rs)"
)]

use std::arch::x86_64::{
    __m512d, _mm512_fmadd_pd, _mm512_loadu_pd, _mm512_mul_pd, _mm512_set1_pd, _mm512_setzero_pd,
    _mm512_storeu_pd,
};

use super::avx::Ahead;

/// `y = A X` (beta = 0) for `n` right-hand columns (five to sixteen) and a multiple of 16
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
                    8 => rows::<8>(a, xs, ys, i0, ahead),
                    7 => rows::<7>(a, xs, ys, i0, ahead),
                    6 => rows::<6>(a, xs, ys, i0, ahead),
                    5 => rows::<5>(a, xs, ys, i0, ahead),
                    4 => rows::<4>(a, xs, ys, i0, ahead),
                    3 => rows::<3>(a, xs, ys, i0, ahead),
                    2 => rows::<2>(a, xs, ys, i0, ahead),
                    _ => rows::<1>(a, xs, ys, i0, ahead),
                }
            }
            c0 += w;
        }
    }
    ahead.all();
}

/// Rows `i0 .. i0 + 16` of `A x` for `C` right-hand columns (`x` is `C` columns of `k ≥ 1`
/// entries, `y` `C` columns of `m`): per entry `a₀x₀`, then `+ aⱼxⱼ` fused, in order.
///
/// # Safety
/// The processor must have AVX-512F (the caller is compiled for it).
#[inline(always)]
unsafe fn rows<const C: usize>(
    a: &[f64],
    x: &[f64],
    y: &mut [f64],
    i0: usize,
    ahead: &mut Ahead<'_>,
) {
    let (m, k) = (y.len() / C, x.len() / C);
    assert!(k >= 1 && i0 + 16 <= m && a.len() >= m * k && x.len() == C * k);
    let ya = y.as_mut_ptr();
    // SAFETY: AVX-512F is there (this function's contract). Every pointer read or written is
    // in bounds by the assertion above: A's entries j·m + i0 .. j·m + i0 + 16 for j < k
    // (below m·k), x's c·k + j for c < C, j < k, and y's c·m + i0 .. c·m + i0 + 16.
    unsafe {
        let z = _mm512_setzero_pd();
        let mut acc: [[__m512d; 2]; C] = [[z; 2]; C];
        let pa = a.as_ptr().add(i0);
        let (a0, a1) = (_mm512_loadu_pd(pa), _mm512_loadu_pd(pa.add(8)));
        for (c, acc) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_pd(*x.get_unchecked(c * k));
            *acc = [_mm512_mul_pd(a0, xv), _mm512_mul_pd(a1, xv)];
        }
        for j in 1..k {
            let pa = a.as_ptr().add(j * m + i0);
            let (a0, a1) = (_mm512_loadu_pd(pa), _mm512_loadu_pd(pa.add(8)));
            for (c, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_pd(*x.get_unchecked(c * k + j));
                acc[0] = _mm512_fmadd_pd(a0, xv, acc[0]);
                acc[1] = _mm512_fmadd_pd(a1, xv, acc[1]);
            }
            if j % 4 == 0 {
                ahead.some(1);
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            _mm512_storeu_pd(ya.add(c * m + i0), acc[0]);
            _mm512_storeu_pd(ya.add(c * m + i0 + 8), acc[1]);
        }
    }
}
