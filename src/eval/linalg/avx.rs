//! The thin-product kernels for `alpha = 1` (every product the evaluator forms), compiled for
//! AVX and chosen at run time. The one-column kernels do the portable kernels' operations in
//! the portable kernels' order — multiplies and adds, never fused (Rust does not contract
//! `a * b + c` on its own) — so their results are the same to the bit; the two-column kernels
//! (minibatches of two or more sequences) fuse each multiply and add (FMA), which changes
//! low bits, as matrixmultiply's kernels do for wider products. What differs is the
//! blocking: up to eight 4-lane sums in flight (the portable kernels keep two to four, and a
//! chain of dependent adds waits four cycles per add), each block of `A` loaded once for every
//! right-hand column, and `alpha · a` not computed (`1 · a = a` exactly).
//!
//! Written with intrinsics: the same loops on `[f64; 4]` lanes were vectorised by LLVM into
//! two-wide shuffles with spills (slower than the portable kernels).

use std::arch::x86_64::{
    __m256d, _mm256_add_pd, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_set1_pd,
    _mm256_setzero_pd, _mm256_storeu_pd, _mm_prefetch, _MM_HINT_T0,
};

/// Buffers a caller is about to write (the outputs of a recurrent cell, see `eval::plan`),
/// whose cache lines a product asks for a few at a time between its blocks of rows: issued
/// all at once, the requests wait for each other, and without them each first write misses.
pub(in crate::eval) struct Ahead<'a> {
    regions: [&'a [f64]; 2],
    /// The region and entry of the next line to ask for.
    at: (usize, usize),
    /// Lines per block of rows.
    per: usize,
}

impl<'a> Ahead<'a> {
    pub(in crate::eval) fn new(regions: [&'a [f64]; 2]) -> Self {
        Ahead {
            regions,
            at: (0, 0),
            per: usize::MAX,
        }
    }

    pub(super) fn none() -> Ahead<'static> {
        Ahead::new([&[], &[]])
    }

    /// Lines still to ask for.
    fn lines(&self) -> usize {
        self.regions.iter().map(|r| r.len().div_ceil(8)).sum()
    }

    /// Ask for up to `k` more lines, one prefetch per 8 entries (64 bytes).
    #[inline(always)]
    pub(super) fn some(&mut self, k: usize) {
        let mut left = k;
        while left > 0 && self.at.0 < 2 {
            let r = self.regions[self.at.0];
            if self.at.1 >= r.len() {
                self.at = (self.at.0 + 1, 0);
                continue;
            }
            // SAFETY: the address is inside `r` (at.1 < r.len()); a prefetch reads and
            // writes nothing and never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(self.at.1).cast::<i8>()) };
            self.at.1 += 8;
            left -= 1;
        }
    }

    /// Every line left.
    pub(in crate::eval) fn all(&mut self) {
        self.some(usize::MAX);
    }

    /// One block's share.
    #[inline(always)]
    pub(super) fn block(&mut self) {
        self.some(self.per);
    }
}

/// `acc + a · b`: one fused multiply–add when `F` (the two-column kernels), else a multiply
/// and an add, as the portable kernels do.
///
/// # Safety
/// The processor must have AVX, and FMA when `F` (the caller is compiled for them).
#[inline(always)]
unsafe fn madd<const F: bool>(acc: __m256d, a: __m256d, b: __m256d) -> __m256d {
    // SAFETY: the features are there (this function's contract).
    unsafe {
        if F {
            _mm256_fmadd_pd(a, b, acc)
        } else {
            _mm256_add_pd(acc, _mm256_mul_pd(a, b))
        }
    }
}

/// `y = A x + beta · y` for one right-hand column (`super::gemv_n` with alpha = 1).
#[target_feature(enable = "avx")]
pub(super) unsafe fn gemv_n(a: &[f64], x: &[f64], beta: f64, y: &mut [f64]) {
    // SAFETY: AVX is there (this function's contract).
    unsafe { gemv_n_cols::<1, false>(a, x, beta, y, &mut Ahead::none()) }
}

/// [`gemv_n`] for two right-hand columns side by side in `x`, results side by side in `y`,
/// with fused multiply–adds (see `super::gemv_n2`).
#[target_feature(enable = "avx,fma")]
pub(super) unsafe fn gemv_n2(a: &[f64], x: &[f64], beta: f64, y: &mut [f64]) {
    // SAFETY: AVX and FMA are there (this function's contract).
    unsafe { gemv_n_cols::<2, true>(a, x, beta, y, &mut Ahead::none()) }
}

/// `y = Aᵀ x + beta · y` for one right-hand column (`super::gemv_t` with alpha = 1).
#[target_feature(enable = "avx")]
pub(super) unsafe fn gemv_t(a: &[f64], rows: usize, x: &[f64], beta: f64, y: &mut [f64]) {
    let cols = y.len();
    let mut j = 0;
    // SAFETY: AVX is there (this function's contract).
    unsafe {
        while j + 4 <= cols {
            dots::<1, 4, false>(a, rows, x, beta, y, j);
            j += 4;
        }
        for j in j..cols {
            dots::<1, 1, false>(a, rows, x, beta, y, j);
        }
    }
}

/// [`gemv_t`] for two right-hand columns side by side in `x`, results side by side in `y`,
/// with fused multiply–adds (see `super::gemv_t2`).
#[target_feature(enable = "avx,fma")]
pub(super) unsafe fn gemv_t2(a: &[f64], rows: usize, x: &[f64], beta: f64, y: &mut [f64]) {
    let cols = y.len() / 2;
    let mut j = 0;
    // SAFETY: AVX and FMA are there (this function's contract).
    unsafe {
        while j + 2 <= cols {
            dots::<2, 2, true>(a, rows, x, beta, y, j);
            j += 2;
        }
        for j in j..cols {
            dots::<2, 1, true>(a, rows, x, beta, y, j);
        }
    }
}

/// `y = A X + beta · y` for a right-hand side `X` of `n` columns (two to sixteen: the full
/// batch of several sequences), `A` read in place (never packed), four columns at a time,
/// then the rest; every entry with fused multiply–adds in the order of [`gemv_n2`], so each
/// column gets the bits the two-column kernel gives it, whatever the other columns. The lines
/// of `ahead` are asked for between blocks of rows, spread over the product.
#[target_feature(enable = "avx,fma")]
pub(super) unsafe fn gemm_n(
    a: &[f64],
    x: &[f64],
    n: usize,
    beta: f64,
    y: &mut [f64],
    ahead: &mut Ahead<'_>,
) {
    let (k, m) = (x.len() / n, y.len() / n);
    // Blocks of rows of the four-column groups (see `gemv_n_cols`), at least one per group.
    let blocks = n.div_ceil(4) * (m / 8).max(1);
    ahead.per = ahead.lines().div_ceil(blocks).max(1);
    let mut c0 = 0;
    // SAFETY: AVX and FMA are there (this function's contract).
    unsafe {
        while c0 < n {
            let w = (n - c0).min(4);
            let (xs, ys) = (&x[c0 * k..(c0 + w) * k], &mut y[c0 * m..(c0 + w) * m]);
            match w {
                4 => gemv_n_cols::<4, true>(a, xs, beta, ys, ahead),
                3 => gemv_n_cols::<3, true>(a, xs, beta, ys, ahead),
                2 => gemv_n_cols::<2, true>(a, xs, beta, ys, ahead),
                _ => gemv_n_cols::<1, true>(a, xs, beta, ys, ahead),
            }
            c0 += w;
        }
    }
    ahead.all();
}

/// `y = Aᵀ X + beta · y` for `n` right-hand columns (two to sixteen), four at a time against
/// two columns of `A` (see [`tdots`]): each inner product in its own order, whatever the
/// other columns, so a column's bits do not depend on the batch it is in.
#[target_feature(enable = "avx,fma")]
pub(super) unsafe fn gemm_t(a: &[f64], rows: usize, x: &[f64], n: usize, beta: f64, y: &mut [f64]) {
    let cols = y.len() / n;
    let mut c0 = 0;
    // SAFETY: AVX and FMA are there (this function's contract).
    unsafe {
        while c0 < n {
            let w = (n - c0).min(4);
            let xs = &x[c0 * rows..(c0 + w) * rows];
            let ys = &mut y[c0 * cols..(c0 + w) * cols];
            match w {
                4 => tdots_cols::<4>(a, rows, xs, beta, ys),
                3 => tdots_cols::<3>(a, rows, xs, beta, ys),
                2 => tdots_cols::<2>(a, rows, xs, beta, ys),
                _ => tdots_cols::<1>(a, rows, xs, beta, ys),
            }
            c0 += w;
        }
    }
}

/// Every entry of `Aᵀ x` for `C` right-hand columns, two columns of `A` at a time.
///
/// # Safety
/// The processor must have AVX and FMA (the caller is compiled for them).
#[inline(always)]
unsafe fn tdots_cols<const C: usize>(a: &[f64], rows: usize, x: &[f64], beta: f64, y: &mut [f64]) {
    let cols = y.len() / C;
    let mut j = 0;
    // SAFETY: AVX and FMA are there (this function's contract).
    unsafe {
        while j + 2 <= cols {
            tdots::<C, 2>(a, rows, x, beta, y, j);
            j += 2;
        }
        if j < cols {
            tdots::<C, 1>(a, rows, x, beta, y, j);
        }
    }
}

/// Entries `j0 .. j0 + D` of `Aᵀ x` for `C` right-hand columns: `D · C` inner products at
/// once, each in one 4-lane register (lane l sums the rows i ≡ l mod 4 in order, fused
/// multiply–adds), the lanes added as (0 + 1) + (2 + 3), then the rows after the last
/// multiple of four in order (multiply, then add); then `y ← d (+ beta · y)`.
///
/// # Safety
/// The processor must have AVX and FMA (the caller is compiled for them).
#[inline(always)]
#[allow(
    clippy::needless_range_loop,
    reason = "c and d index both the loaded columns and the sums"
)]
unsafe fn tdots<const C: usize, const D: usize>(
    a: &[f64],
    rows: usize,
    x: &[f64],
    beta: f64,
    y: &mut [f64],
    j0: usize,
) {
    let cols = y.len() / C;
    let full = rows / 4 * 4;
    let acol: [&[f64]; D] = std::array::from_fn(|d| &a[(j0 + d) * rows..(j0 + d + 1) * rows]);
    let xcol: [&[f64]; C] = std::array::from_fn(|c| &x[c * rows..(c + 1) * rows]);
    let mut sums = [[[0.0; 4]; C]; D];
    // SAFETY: AVX and FMA are there (this function's contract). Every load reads entries
    // i0 .. i0 + 4 ≤ full ≤ rows of a slice of `rows` entries; every store writes the four
    // entries of one `sums[d][c]`.
    unsafe {
        let z = _mm256_setzero_pd();
        let mut acc = [[z; C]; D];
        let mut i0 = 0;
        while i0 < full {
            let mut xv = [z; C];
            for c in 0..C {
                xv[c] = _mm256_loadu_pd(xcol[c].as_ptr().add(i0));
            }
            for d in 0..D {
                let av = _mm256_loadu_pd(acol[d].as_ptr().add(i0));
                for c in 0..C {
                    acc[d][c] = _mm256_fmadd_pd(av, xv[c], acc[d][c]);
                }
            }
            i0 += 4;
        }
        for d in 0..D {
            for c in 0..C {
                _mm256_storeu_pd(sums[d][c].as_mut_ptr(), acc[d][c]);
            }
        }
    }
    for (d, col) in acol.iter().enumerate() {
        for (c, xc) in xcol.iter().enumerate() {
            let s = &sums[d][c];
            let mut res = (s[0] + s[1]) + (s[2] + s[3]);
            for (u, v) in col[full..].iter().zip(&xc[full..]) {
                res += u * v;
            }
            let yi = &mut y[c * cols + j0 + d];
            *yi = if beta == 0.0 { res } else { res + beta * *yi };
        }
    }
}

/// `A x` for `C` (1 to 4) right-hand columns (`x` is `C` columns of `k ≥ 1` entries, `y` `C`
/// columns of `m`): blocks of 32 rows (one column), 16 (two) or 8 (three or four), then the
/// rest in blocks of four, then single rows; with fused multiply–adds when `F`; a share of
/// the lines of `ahead` after each big block.
///
/// # Safety
/// The processor must have AVX, and FMA when `F` (the caller is compiled for them).
#[inline(always)]
unsafe fn gemv_n_cols<const C: usize, const F: bool>(
    a: &[f64],
    x: &[f64],
    beta: f64,
    y: &mut [f64],
    ahead: &mut Ahead<'_>,
) {
    let m = y.len() / C;
    // Blocks of 32, 16 or 8 rows: 8 sums in registers (one or two columns) or 4 · C (more).
    let big = match C {
        1 => 32,
        2 => 16,
        _ => 8,
    };
    let mut i0 = 0;
    let blocks;
    // SAFETY: AVX, and FMA when `F`, are there (this function's contract).
    unsafe {
        while i0 + big <= m {
            match C {
                1 => rows::<C, 8, F>(a, x, beta, y, i0),
                2 => rows::<C, 4, F>(a, x, beta, y, i0),
                _ => rows::<C, 2, F>(a, x, beta, y, i0),
            }
            ahead.block();
            i0 += big;
        }
        blocks = (m - i0) / 4;
        match blocks {
            0 => {}
            1 => rows::<C, 1, F>(a, x, beta, y, i0),
            2 => rows::<C, 2, F>(a, x, beta, y, i0),
            3 => rows::<C, 3, F>(a, x, beta, y, i0),
            4 => rows::<C, 4, F>(a, x, beta, y, i0),
            5 => rows::<C, 5, F>(a, x, beta, y, i0),
            6 => rows::<C, 6, F>(a, x, beta, y, i0),
            _ => rows::<C, 7, F>(a, x, beta, y, i0),
        }
    }
    let (k, tail) = (x.len() / C, i0 + 4 * blocks);
    for c in 0..C {
        let (xc, yc) = (&x[c * k..(c + 1) * k], &mut y[c * m..(c + 1) * m]);
        for i in tail..m {
            let mut v = if beta == 0.0 {
                a[i] * xc[0]
            } else {
                a[i] * xc[0] + beta * yc[i]
            };
            for (j, &xj) in xc.iter().enumerate().skip(1) {
                v += a[j * m + i] * xj;
            }
            yc[i] = v;
        }
    }
}

/// Rows `i0 .. i0 + 4·NB` of `A x` for `C` right-hand columns, the `NB · C` sums kept in
/// registers across all columns of `A`: per entry `a₀x₀ (+ beta·y)`, then `+ aⱼxⱼ` in order
/// (fused when `F`).
///
/// # Safety
/// The processor must have AVX, and FMA when `F` (the caller is compiled for them).
#[inline(always)]
#[allow(
    clippy::needless_range_loop,
    reason = "b indexes both the column block and the sums, which are stored by column"
)]
unsafe fn rows<const C: usize, const NB: usize, const F: bool>(
    a: &[f64],
    x: &[f64],
    beta: f64,
    y: &mut [f64],
    i0: usize,
) {
    let (m, k) = (y.len() / C, x.len() / C);
    assert!(k >= 1 && i0 + 4 * NB <= m && a.len() >= m * k && x.len() == C * k);
    let ya = y.as_mut_ptr();
    // SAFETY: AVX, and FMA when `F`, are there (this function's contract). Every pointer read
    // or written is in bounds by the assertion above: A's entries j·m + i0 .. j·m + i0 + 4·NB
    // for j < k (below m·k), x's c·k + j for c < C, j < k, and y's c·m + i0 .. c·m + i0 + 4·NB.
    unsafe {
        let z = _mm256_setzero_pd();
        let mut acc = [[z; NB]; C];
        let pa = a.as_ptr().add(i0);
        for b in 0..NB {
            let av = _mm256_loadu_pd(pa.add(4 * b));
            for (c, acc) in acc.iter_mut().enumerate() {
                let p = _mm256_mul_pd(av, _mm256_set1_pd(*x.get_unchecked(c * k)));
                acc[b] = if beta == 0.0 {
                    p
                } else {
                    let yv = _mm256_loadu_pd(ya.add(c * m + i0 + 4 * b));
                    _mm256_add_pd(p, _mm256_mul_pd(_mm256_set1_pd(beta), yv))
                };
            }
        }
        for j in 1..k {
            let pa = a.as_ptr().add(j * m + i0);
            let mut xs = [z; C];
            for (c, v) in xs.iter_mut().enumerate() {
                *v = _mm256_set1_pd(*x.get_unchecked(c * k + j));
            }
            for b in 0..NB {
                let av = _mm256_loadu_pd(pa.add(4 * b));
                for c in 0..C {
                    acc[c][b] = madd::<F>(acc[c][b], av, xs[c]);
                }
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            for (b, &v) in acc.iter().enumerate() {
                _mm256_storeu_pd(ya.add(c * m + i0 + 4 * b), v);
            }
        }
    }
}

/// Entries `j0 .. j0 + D` of `Aᵀ x` for `C` right-hand columns: `D · C` inner products at
/// once, each in `super::dot`'s order (eight interleaved partial sums, here two 4-lane
/// registers, combined as (0 + 4) + (1 + 5) + (2 + 6) + (3 + 7), then the tail in order), then
/// `y ← d (+ beta · y)`.
///
/// # Safety
/// The processor must have AVX, and FMA when `F` (the caller is compiled for them).
#[inline(always)]
unsafe fn dots<const C: usize, const D: usize, const F: bool>(
    a: &[f64],
    rows: usize,
    x: &[f64],
    beta: f64,
    y: &mut [f64],
    j0: usize,
) {
    let cols = y.len() / C;
    let full = rows / 8 * 8;
    let acol: [&[f64]; D] = std::array::from_fn(|d| &a[(j0 + d) * rows..(j0 + d + 1) * rows]);
    let xcol: [&[f64]; C] = std::array::from_fn(|c| &x[c * rows..(c + 1) * rows]);
    let mut sums = [[[0.0; 8]; C]; D];
    // SAFETY: AVX, and FMA when `F`, are there (this function's contract). Every load reads
    // entries i0 .. i0 + 8 ≤ full ≤ rows of a slice of `rows` entries; every store writes the
    // eight entries of one `sums[d][c]`.
    unsafe {
        let z = _mm256_setzero_pd();
        let (mut lo, mut hi) = ([[z; C]; D], [[z; C]; D]);
        let mut i0 = 0;
        while i0 < full {
            let (mut xl, mut xh) = ([z; C], [z; C]);
            for c in 0..C {
                let p = xcol[c].as_ptr().add(i0);
                xl[c] = _mm256_loadu_pd(p);
                xh[c] = _mm256_loadu_pd(p.add(4));
            }
            for d in 0..D {
                let p = acol[d].as_ptr().add(i0);
                let (al, ah) = (_mm256_loadu_pd(p), _mm256_loadu_pd(p.add(4)));
                for c in 0..C {
                    lo[d][c] = madd::<F>(lo[d][c], al, xl[c]);
                    hi[d][c] = madd::<F>(hi[d][c], ah, xh[c]);
                }
            }
            i0 += 8;
        }
        for d in 0..D {
            for c in 0..C {
                _mm256_storeu_pd(sums[d][c].as_mut_ptr(), lo[d][c]);
                _mm256_storeu_pd(sums[d][c].as_mut_ptr().add(4), hi[d][c]);
            }
        }
    }
    for (d, col) in acol.iter().enumerate() {
        for (c, xc) in xcol.iter().enumerate() {
            let s = &sums[d][c];
            let mut res = 0.0;
            res += s[0] + s[4];
            res += s[1] + s[5];
            res += s[2] + s[6];
            res += s[3] + s[7];
            for (u, v) in col[full..].iter().zip(&xc[full..]) {
                res += u * v;
            }
            let yi = &mut y[c * cols + j0 + d];
            *yi = if beta == 0.0 { res } else { res + beta * *yi };
        }
    }
}
