//! The products of the reverse pass that read their operands where they lie: the weight
//! gradient Σ g bᵀ of a parameter over all the products that use it, read column by column from
//! the adjoints and the values (nothing staged), and `Wᵀ g` from a transposed copy of `W`, with
//! the inner products in the order the one-column kernels give them.
//!
//! Bits: each entry of a weight gradient is one chain of fused multiply–adds over the columns in
//! the order they were staged, from 0, then added to the gradient (`f64::mul_add`: the same
//! bits with or without an FMA unit); [`tdots_add`] gives `linalg::gemm`'s one-column `Aᵀ x`
//! (`dot`'s order, multiply then add) to the bit.

/// Columns per chunk of a weight gradient: the partial sums go back to memory between chunks
/// (which keeps the columns a chunk reads in cache; the sums and their order do not change).
const CHUNK: usize = 256;

/// Weight gradients with at least this many rows use the AVX-512 kernel (with AVX-512): it
/// packs each chunk's columns first, which pays where they do not stay in cache (the large
/// RNN's 128 rows: −8 % of its ∇f) and cost sp500's 20 rows 6 % of its ∇f.
#[cfg(all(target_arch = "x86_64", mcopt_avx512))]
const AVX512_ROWS: usize = 64;

/// `out[i + j·rows] += Σ_c g_c[i] · b_c[j]` over the columns `cols` = (offset of `g_c` in
/// `gs`, offset of `b_c` in `bs`), each entry one chain of fused multiply–adds over the columns
/// in order, from 0 (in `acc`, `rows · inner` entries), then added to `out`.
///
/// Panics when a column lies outside its slice or a buffer has the wrong length.
pub(super) fn weight_gradient(
    (rows, inner): (usize, usize),
    cols: &[(usize, usize)],
    (gs, bs): (&[f64], &[f64]),
    acc: &mut [f64],
    out: &mut [f64],
) {
    assert!(acc.len() == rows * inner && out.len() == rows * inner);
    for &(g, b) in cols {
        assert!(
            g + rows <= gs.len() && b + inner <= bs.len(),
            "column out of bounds"
        );
    }
    acc.fill(0.0);
    #[cfg(all(target_arch = "x86_64", mcopt_avx512))]
    if rows >= AVX512_ROWS && avx_fma() && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor has AVX, FMA and AVX-512F; every column was checked above.
        unsafe { avx512::weight_gradient(rows, inner, cols, gs, bs, acc) };
        for (o, a) in out.iter_mut().zip(acc.iter()) {
            *o += *a;
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx_fma() {
        // SAFETY: the processor has AVX and FMA; every column was checked just above.
        unsafe { avx::weight_gradient(rows, inner, cols, gs, bs, acc) };
        for (o, a) in out.iter_mut().zip(acc.iter()) {
            *o += *a;
        }
        return;
    }
    portable(rows, inner, cols, (gs, bs), acc);
    for (o, a) in out.iter_mut().zip(acc.iter()) {
        *o += *a;
    }
}

/// `y += Wᵀ g` for `W` (`g.len()` rows, `y.len()` columns) given as `wr`, its transpose stored
/// column-major (`wr[i·cols + j] = W[i, j]`): every entry `dot(W[:, j], g) + y_j` in `dot`'s
/// order (`linalg::dot`: eight interleaved partial sums over blocks of eight rows, combined
/// as (0 + 4) + (1 + 5) + (2 + 6) + (3 + 7), then the remaining rows in order), so the same
/// bits as `gemm(1, Wᵀ, g, 1, y)`, with four entries of `y` per register instead of one.
pub(super) fn tdots_add(wr: &[f64], g: &[f64], y: &mut [f64]) {
    let (m, k) = (g.len(), y.len());
    assert_eq!(wr.len(), m * k, "transposed matrix of the wrong length");
    let mut j0 = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor has AVX; the lengths were checked just above.
        j0 = unsafe { avx::tdots_add(wr, g, y, 0) };
    }
    for j in j0..k {
        let mut acc = [0.0f64; 8];
        let full = m / 8 * 8;
        for i0 in (0..full).step_by(8) {
            for (l, s) in acc.iter_mut().enumerate() {
                *s += wr[(i0 + l) * k + j] * g[i0 + l];
            }
        }
        let mut res = 0.0;
        res += acc[0] + acc[4];
        res += acc[1] + acc[5];
        res += acc[2] + acc[6];
        res += acc[3] + acc[7];
        for i in full..m {
            res += wr[i * k + j] * g[i];
        }
        y[j] += res;
    }
}

/// Whether the processor has AVX and FMA.
#[cfg(target_arch = "x86_64")]
fn avx_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma")
}

/// A weight gradient's sums one entry at a time (`mul_add`, the same bits as the vector
/// kernel's fused multiply–adds), without AVX and FMA.
fn portable(
    rows: usize,
    inner: usize,
    cols: &[(usize, usize)],
    (gs, bs): (&[f64], &[f64]),
    acc: &mut [f64],
) {
    for i in 0..rows {
        for &(g, b) in cols {
            let gi = gs[g + i];
            for (j, bj) in bs[b..b + inner].iter().enumerate() {
                let a = &mut acc[i + j * rows];
                *a = gi.mul_add(*bj, *a);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        __m256d, _mm256_add_pd, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_set1_pd,
        _mm256_setzero_pd, _mm256_storeu_pd,
    };

    use super::CHUNK;

    /// `acc += Σ_c g_c b_cᵀ` (see `super::weight_gradient`), blocks of 12 or 8 rows (then 4,
    /// then the last rows one at a time, see [`row`]) by 4 columns of sums kept in registers
    /// over a chunk of columns.
    ///
    /// # Safety
    /// AVX and FMA must be there, and every column inside its slice.
    #[target_feature(enable = "avx,fma")]
    pub(super) unsafe fn weight_gradient(
        rows: usize,
        inner: usize,
        cols: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
    ) {
        for chunk in cols.chunks(CHUNK) {
            // SAFETY: the contract.
            unsafe { rows_from(0, (rows, inner), chunk, gs, bs, acc) };
        }
    }

    /// [`rows_from`] as a function of its own, for the AVX-512 kernel's last rows.
    ///
    /// # Safety
    /// As [`weight_gradient`].
    #[cfg(mcopt_avx512)]
    #[target_feature(enable = "avx,fma")]
    pub(super) unsafe fn last_rows(
        i0: usize,
        shape: (usize, usize),
        chunk: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
    ) {
        // SAFETY: the contract.
        unsafe { rows_from(i0, shape, chunk, gs, bs, acc) };
    }

    /// Rows `i0 ..` of the sums over one chunk: blocks of 12, 8 or 4 rows, then one at a time.
    ///
    /// # Safety
    /// As [`weight_gradient`] (AVX and FMA there).
    #[inline(always)]
    unsafe fn rows_from(
        mut i0: usize,
        (rows, inner): (usize, usize),
        chunk: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
    ) {
        let r4 = rows / 4 * 4;
        // SAFETY: the contract; `block` reads rows i0 .. i0 + 4·RV ≤ r4 ≤ rows of every g
        // column and entries j0 .. j0 + JB ≤ inner of every b column, and writes acc's.
        unsafe {
            while i0 + 12 <= r4 {
                block_cols::<3>(rows, inner, chunk, gs, bs, acc, i0);
                i0 += 12;
            }
            while i0 + 8 <= r4 {
                block_cols::<2>(rows, inner, chunk, gs, bs, acc, i0);
                i0 += 8;
            }
            if i0 < r4 {
                block_cols::<1>(rows, inner, chunk, gs, bs, acc, i0);
            }
            for i in r4..rows {
                row(i, (rows, inner), chunk, gs, bs, acc);
            }
        }
    }

    /// Row `i` of the sums over one chunk (the rows after the last multiple of four): sixteen,
    /// then four columns of sums per pass over the chunk, the rest one at a time.
    ///
    /// # Safety
    /// As [`weight_gradient`], with `i < rows`.
    #[inline(always)]
    unsafe fn row(
        i: usize,
        (rows, inner): (usize, usize),
        chunk: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
    ) {
        let mut j0 = 0;
        // SAFETY: the contract.
        unsafe {
            while j0 + 16 <= inner {
                row_block::<4>(i, rows, chunk, gs, bs, acc, j0);
                j0 += 16;
            }
            while j0 + 4 <= inner {
                row_block::<1>(i, rows, chunk, gs, bs, acc, j0);
                j0 += 4;
            }
        }
        for j in j0..inner {
            let a = &mut acc[i + j * rows];
            for &(g, b) in chunk {
                *a = gs[g + i].mul_add(bs[b + j], *a);
            }
        }
    }

    /// Row `i` by columns `j0 .. j0 + 4·V` of the sums over one chunk (`g b` fused as `b g`:
    /// the same rounded result).
    ///
    /// # Safety
    /// As [`row`], with `j0 + 4·V ≤ inner`.
    #[inline(always)]
    unsafe fn row_block<const V: usize>(
        i: usize,
        rows: usize,
        chunk: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
        j0: usize,
    ) {
        let at = |v: usize, l: usize| i + (j0 + 4 * v + l) * rows;
        // SAFETY: the contract: every address below is inside its slice.
        unsafe {
            let mut s: [__m256d; V] = std::array::from_fn(|v| {
                let t: [f64; 4] = std::array::from_fn(|l| acc[at(v, l)]);
                _mm256_loadu_pd(t.as_ptr())
            });
            let pb = bs.as_ptr();
            for &(g, b) in chunk {
                let gv = _mm256_set1_pd(*gs.get_unchecked(g + i));
                for (v, sv) in s.iter_mut().enumerate() {
                    *sv = _mm256_fmadd_pd(_mm256_loadu_pd(pb.add(b + j0 + 4 * v)), gv, *sv);
                }
            }
            for (v, sv) in s.iter().enumerate() {
                let mut t = [0.0; 4];
                _mm256_storeu_pd(t.as_mut_ptr(), *sv);
                for (l, x) in t.into_iter().enumerate() {
                    acc[at(v, l)] = x;
                }
            }
        }
    }

    /// Rows `i0 .. i0 + 4·RV` of the sums over one chunk, four columns of sums at a time.
    ///
    /// # Safety
    /// As [`weight_gradient`], with `i0 + 4·RV ≤ rows`.
    #[inline(always)]
    unsafe fn block_cols<const RV: usize>(
        rows: usize,
        inner: usize,
        chunk: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
        i0: usize,
    ) {
        let mut j0 = 0;
        // SAFETY: the contract.
        unsafe {
            while j0 + 4 <= inner {
                block::<RV, 4>(rows, chunk, gs, bs, acc, i0, j0);
                j0 += 4;
            }
            match inner - j0 {
                3 => block::<RV, 3>(rows, chunk, gs, bs, acc, i0, j0),
                2 => block::<RV, 2>(rows, chunk, gs, bs, acc, i0, j0),
                1 => block::<RV, 1>(rows, chunk, gs, bs, acc, i0, j0),
                _ => {}
            }
        }
    }

    /// Rows `i0 .. i0 + 4·RV` by columns `j0 .. j0 + JB` of the sums: loaded, a fused
    /// multiply–add per column of the chunk, stored.
    ///
    /// # Safety
    /// As [`block_cols`], with `j0 + JB ≤ inner`.
    #[inline(always)]
    unsafe fn block<const RV: usize, const JB: usize>(
        rows: usize,
        chunk: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
        i0: usize,
        j0: usize,
    ) {
        // SAFETY: the contract: every address below is inside its slice.
        unsafe {
            let pa = acc.as_mut_ptr();
            let mut s = [[_mm256_setzero_pd(); RV]; JB];
            for (jj, sj) in s.iter_mut().enumerate() {
                for (r, v) in sj.iter_mut().enumerate() {
                    *v = _mm256_loadu_pd(pa.add((j0 + jj) * rows + i0 + 4 * r));
                }
            }
            let (pg, pb) = (gs.as_ptr(), bs.as_ptr());
            for &(g, b) in chunk {
                let gp = pg.add(g + i0);
                let gv: [__m256d; RV] = std::array::from_fn(|r| _mm256_loadu_pd(gp.add(4 * r)));
                for (jj, sj) in s.iter_mut().enumerate() {
                    let bv = _mm256_set1_pd(*pb.add(b + j0 + jj));
                    for (v, gr) in sj.iter_mut().zip(&gv) {
                        *v = _mm256_fmadd_pd(*gr, bv, *v);
                    }
                }
            }
            for (jj, sj) in s.iter().enumerate() {
                for (r, v) in sj.iter().enumerate() {
                    _mm256_storeu_pd(pa.add((j0 + jj) * rows + i0 + 4 * r), *v);
                }
            }
        }
    }

    /// Entries `j0 .. k/4·4` of `y += Wᵀ g` (see `super::tdots_add`), four per register: each
    /// lane the scalar kernel's operations on its own entry; returns where it stopped.
    ///
    /// # Safety
    /// AVX must be there, and `wr.len() == g.len() · y.len()`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn tdots_add(wr: &[f64], g: &[f64], y: &mut [f64], mut j0: usize) -> usize {
        let (m, k) = (g.len(), y.len());
        let full = m / 8 * 8;
        let (pw, py) = (wr.as_ptr(), y.as_mut_ptr());
        // SAFETY: AVX is there; row i of `wr` is entries i·k .. i·k + k, and j0 + 4 ≤ k.
        unsafe {
            let z = _mm256_setzero_pd();
            while j0 + 4 <= k {
                let mut l = [z; 8];
                let mut i0 = 0;
                while i0 < full {
                    for (r, s) in l.iter_mut().enumerate() {
                        let w = _mm256_loadu_pd(pw.add((i0 + r) * k + j0));
                        *s = _mm256_add_pd(*s, _mm256_mul_pd(w, _mm256_set1_pd(g[i0 + r])));
                    }
                    i0 += 8;
                }
                let mut res = _mm256_add_pd(z, _mm256_add_pd(l[0], l[4]));
                res = _mm256_add_pd(res, _mm256_add_pd(l[1], l[5]));
                res = _mm256_add_pd(res, _mm256_add_pd(l[2], l[6]));
                res = _mm256_add_pd(res, _mm256_add_pd(l[3], l[7]));
                for (i, &gi) in g.iter().enumerate().skip(full) {
                    let w = _mm256_loadu_pd(pw.add(i * k + j0));
                    res = _mm256_add_pd(res, _mm256_mul_pd(w, _mm256_set1_pd(gi)));
                }
                let yv = _mm256_loadu_pd(py.add(j0));
                _mm256_storeu_pd(py.add(j0), _mm256_add_pd(res, yv));
                j0 += 4;
            }
        }
        j0
    }
}

/// The weight gradient with AVX-512: the same chains as the AVX kernel's (one fused
/// multiply–add per column, in order, per entry), with blocks of 8-lane registers over the
/// columns of a chunk copied side by side first.
#[cfg(all(target_arch = "x86_64", mcopt_avx512))]
#[allow(
    clippy::incompatible_msrv,
    reason = "compiled only by compilers with stable AVX-512 (build.rs)"
)]
mod avx512 {
    use std::arch::x86_64::{
        __m512d, _mm512_fmadd_pd, _mm512_loadu_pd, _mm512_set1_pd, _mm512_storeu_pd,
    };
    use std::cell::RefCell;

    use super::CHUNK;

    /// Rows of 8-lane registers per block (`RV` of [`block`]).
    const RB: usize = 2;

    /// Columns of sums per block (`J` of [`block`]), and the group of `b` entries a column
    /// contributes to the packed copy.
    const JB: usize = 8;

    thread_local! {
        /// A chunk's columns of `g` and of `b` copied side by side (see [`pack`]), reused.
        static PACKED: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }

    /// `acc += Σ_c g_c b_cᵀ` (see `super::weight_gradient`): per chunk of columns, the chunk
    /// packed ([`pack`]), then blocks of `8·RB` rows by `JB` columns of sums in registers,
    /// blocks of 8 rows, and the last rows (fewer than 8) through the AVX kernel.
    ///
    /// Read in place, the columns of a chunk lie a multiple of a kilobyte apart (the adjoints
    /// and values of consecutive steps), so the lines one block reads share a few sets of the
    /// first-level cache and evict each other; packed, a block reads two sequential streams.
    ///
    /// # Safety
    /// AVX, FMA and AVX-512F must be there, and every column inside its slice.
    #[target_feature(enable = "avx512f,avx,fma")]
    pub(super) unsafe fn weight_gradient(
        rows: usize,
        inner: usize,
        cols: &[(usize, usize)],
        gs: &[f64],
        bs: &[f64],
        acc: &mut [f64],
    ) {
        let r8 = rows / 8 * 8;
        PACKED.with_borrow_mut(|(gp, bp)| {
            for chunk in cols.chunks(CHUNK) {
                let n = chunk.len();
                // SAFETY: the contract; `pack` fills gp with r8/8 groups and bp with
                // ⌈inner/8⌉ groups of n columns of 8 entries, which every block reads.
                unsafe {
                    pack((rows, inner), chunk, (gs, bs), (gp, bp));
                    let (gp, bp) = (gp.as_slice(), bp.as_slice());
                    let mut i0 = 0;
                    while i0 + 8 * RB <= r8 {
                        block_cols::<RB>((rows, inner), n, (gp, bp), acc, i0);
                        i0 += 8 * RB;
                    }
                    while i0 < r8 {
                        block_cols::<1>((rows, inner), n, (gp, bp), acc, i0);
                        i0 += 8;
                    }
                    if r8 < rows {
                        super::avx::last_rows(r8, (rows, inner), chunk, gs, bs, acc);
                    }
                }
            }
        });
    }

    /// Copies a chunk's columns: `gp` gets, for each group of 8 rows (below the last multiple
    /// of 8), the chunk's 8 entries of `g` side by side; `bp` for each group of [`JB`] entries
    /// of `b` the chunk's, the last group padded with zeros (never read into a sum).
    ///
    /// # Safety
    /// AVX-512F must be there (the caller is compiled for it).
    #[inline(always)]
    unsafe fn pack(
        (rows, inner): (usize, usize),
        chunk: &[(usize, usize)],
        (gs, bs): (&[f64], &[f64]),
        (gp, bp): (&mut Vec<f64>, &mut Vec<f64>),
    ) {
        let n = chunk.len();
        let (groups, bgroups) = (rows / 8, inner.div_ceil(JB));
        if gp.len() < groups * n * 8 {
            gp.resize(groups * n * 8, 0.0);
        }
        if bp.len() < bgroups * n * JB {
            bp.resize(bgroups * n * JB, 0.0);
        }
        let (pg, pgs, pb, pbs) = (gp.as_mut_ptr(), gs.as_ptr(), bp.as_mut_ptr(), bs.as_ptr());
        // SAFETY: AVX-512F is there; each g column's rows 8q .. 8q + 8 ≤ rows and each b
        // column's entries 8q .. 8q + 8 ≤ inner (full groups) lie inside `gs` and `bs`
        // (checked by `super::weight_gradient`), and (q·n + c)·8 + 8 ≤ groups·n·8 ≤ gp.len(),
        // likewise for bp (JB = 8).
        unsafe {
            for (c, &(g, b)) in chunk.iter().enumerate() {
                for q in 0..groups {
                    let v = _mm512_loadu_pd(pgs.add(g + 8 * q));
                    _mm512_storeu_pd(pg.add((q * n + c) * 8), v);
                }
                for q in 0..inner / JB {
                    let v = _mm512_loadu_pd(pbs.add(b + JB * q));
                    _mm512_storeu_pd(pb.add((q * n + c) * JB), v);
                }
            }
        }
        if inner % JB != 0 {
            let (q, lo) = (inner / JB, inner / JB * JB);
            for (c, &(_, b)) in chunk.iter().enumerate() {
                let to = &mut bp[(q * n + c) * JB..(q * n + c + 1) * JB];
                for (t, x) in to
                    .iter_mut()
                    .zip(bs[b + lo..b + inner].iter().chain([0.0; JB].iter()))
                {
                    *t = *x;
                }
            }
        }
    }

    /// Rows `i0 .. i0 + 8·RV` of the sums over one packed chunk of `n` columns, `JB` columns
    /// of sums at a time, then the columns left.
    ///
    /// # Safety
    /// As [`weight_gradient`], with `i0 + 8·RV ≤ rows` and the chunk packed.
    #[inline(always)]
    unsafe fn block_cols<const RV: usize>(
        (rows, inner): (usize, usize),
        n: usize,
        packed: (&[f64], &[f64]),
        acc: &mut [f64],
        i0: usize,
    ) {
        let mut j0 = 0;
        // SAFETY: the contract.
        unsafe {
            while j0 + JB <= inner {
                block::<RV, JB>(rows, n, packed, acc, i0, j0);
                j0 += JB;
            }
            match inner - j0 {
                7 => block::<RV, 7>(rows, n, packed, acc, i0, j0),
                6 => block::<RV, 6>(rows, n, packed, acc, i0, j0),
                5 => block::<RV, 5>(rows, n, packed, acc, i0, j0),
                4 => block::<RV, 4>(rows, n, packed, acc, i0, j0),
                3 => block::<RV, 3>(rows, n, packed, acc, i0, j0),
                2 => block::<RV, 2>(rows, n, packed, acc, i0, j0),
                1 => block::<RV, 1>(rows, n, packed, acc, i0, j0),
                _ => {}
            }
        }
    }

    /// Rows `i0 .. i0 + 8·RV` by columns `j0 .. j0 + J` of the sums: loaded, a fused
    /// multiply–add per column of the packed chunk, in order, stored.
    ///
    /// # Safety
    /// As [`block_cols`], with `j0 + J ≤ inner` and `j0` a multiple of [`JB`].
    #[inline(always)]
    unsafe fn block<const RV: usize, const J: usize>(
        rows: usize,
        n: usize,
        (gp, bp): (&[f64], &[f64]),
        acc: &mut [f64],
        i0: usize,
        j0: usize,
    ) {
        assert!(i0 % 8 == 0 && j0 % JB == 0 && i0 + 8 * RV <= rows);
        let (g0, b0) = (i0 / 8 * n * 8, j0 / JB * n * JB);
        assert!(g0 + ((RV - 1) * n + n) * 8 <= gp.len() && b0 + n * JB <= bp.len());
        // SAFETY: AVX-512F is there; the packed reads are inside gp and bp by the assertions
        // (group i0/8 + r of g, group j0/JB of b, columns below n), the sums' inside `acc`
        // (rows i0 .. i0 + 8·RV, columns j0 .. j0 + J ≤ inner, the contract).
        unsafe {
            let pa = acc.as_mut_ptr();
            let mut s: [[__m512d; RV]; J] = std::array::from_fn(|jj| {
                std::array::from_fn(|r| _mm512_loadu_pd(pa.add((j0 + jj) * rows + i0 + 8 * r)))
            });
            let (pg, pb) = (gp.as_ptr().add(g0), bp.as_ptr().add(b0));
            for c in 0..n {
                let gv: [__m512d; RV] =
                    std::array::from_fn(|r| _mm512_loadu_pd(pg.add((r * n + c) * 8)));
                for (jj, sj) in s.iter_mut().enumerate() {
                    let bv = _mm512_set1_pd(*pb.add(c * JB + jj));
                    for (v, gr) in sj.iter_mut().zip(&gv) {
                        *v = _mm512_fmadd_pd(*gr, bv, *v);
                    }
                }
            }
            for (jj, sj) in s.iter().enumerate() {
                for (r, v) in sj.iter().enumerate() {
                    _mm512_storeu_pd(pa.add((j0 + jj) * rows + i0 + 8 * r), *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::linalg::{gemm, Mat};

    fn fill(n: usize, phase: f64) -> Vec<f64> {
        (0..n)
            .map(|i| (i as f64 * 0.731 + phase).sin() * (1.0 + (i % 7) as f64))
            .collect()
    }

    /// Every entry of the weight gradient is one fused chain over the columns in order, from 0,
    /// then added: the vector kernel against that definition, bit for bit, over shapes that
    /// take every block (AVX: 12, 8, 4 rows and the last rows alone, 4, 3, 2, 1 columns;
    /// AVX-512, from 64 rows: 16 and 8 rows, then the AVX kernel's, 8 columns and fewer),
    /// several chunks,
    /// and columns read at scattered offsets.
    #[test]
    fn the_weight_gradient_is_one_fused_chain_per_entry() {
        for (rows, inner, n) in [
            (20, 11, 393),
            (1, 20, 7),
            (23, 13, 600),
            (4, 5, 3),
            (128, 6, 9),
            (95, 17, 300),
        ] {
            let (gs, bs) = (fill(rows * n * 2 + 5, 0.3), fill(inner * n * 3 + 2, 1.1));
            let cols: Vec<(usize, usize)> = (0..n)
                .map(|c| {
                    (
                        (c * 2 * rows + 5) % (gs.len() - rows),
                        (c * 3 * inner + 1) % (bs.len() - inner),
                    )
                })
                .collect();
            let base = fill(rows * inner, 2.0);
            let mut sums = vec![0.0f64; rows * inner];
            for i in 0..rows {
                for j in 0..inner {
                    for &(g, b) in &cols {
                        sums[i + j * rows] = gs[g + i].mul_add(bs[b + j], sums[i + j * rows]);
                    }
                }
            }
            let want: Vec<f64> = base.iter().zip(&sums).map(|(b, s)| b + s).collect();
            let (mut acc, mut got) = (vec![f64::NAN; rows * inner], base.clone());
            weight_gradient((rows, inner), &cols, (&gs, &bs), &mut acc, &mut got);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{rows} × {inner}, {n} columns");
            // The kernel without AVX and FMA: the sums alone, from 0.
            acc.fill(0.0);
            portable(rows, inner, &cols, (&gs, &bs), &mut acc);
            assert_eq!(
                bits(&acc),
                bits(&sums),
                "portable: {rows} × {inner}, {n} columns"
            );
        }
    }

    /// Against the product it replaced (`gemm` of the staged G and Bᵀ, matrixmultiply's order
    /// of sums): the same weight gradient to 1e-12 relative to Σ |g| |b|.
    #[test]
    fn the_weight_gradient_agrees_with_the_staged_product() {
        let (rows, inner, n) = (20, 11, 393);
        let (g, b) = (fill(rows * n, 0.4), fill(inner * n, 1.7));
        let cols: Vec<(usize, usize)> = (0..n).map(|c| (c * rows, c * inner)).collect();
        let base = fill(rows * inner, 2.5);
        let (mut acc, mut got, mut want) = (vec![0.0; rows * inner], base.clone(), base.clone());
        weight_gradient((rows, inner), &cols, (&g, &b), &mut acc, &mut got);
        let (gm, bm) = (Mat::new(&g, rows, n), Mat::new(&b, inner, n));
        gemm(1.0, gm, bm.t(), 1.0, &mut want);
        for i in 0..rows {
            for j in 0..inner {
                let scale: f64 = (0..n)
                    .map(|c| (g[c * rows + i] * b[c * inner + j]).abs())
                    .sum();
                let (x, y) = (got[i + j * rows], want[i + j * rows]);
                assert!(
                    (x - y).abs() <= 1e-12 * (scale + base[i + j * rows].abs()),
                    "{x} {y}"
                );
            }
        }
    }

    /// `Wᵀ g` from the transposed copy gives `gemm`'s one-column `Aᵀ x`, bit for bit.
    #[test]
    fn transposed_dots_give_the_one_column_product() {
        for (m, k) in [(20, 20), (20, 11), (8, 4), (3, 7), (17, 9), (1, 5)] {
            let (w, g) = (fill(m * k, 0.2), fill(m, 0.9));
            let mut wr = vec![0.0; m * k];
            for i in 0..m {
                for j in 0..k {
                    wr[i * k + j] = w[i + j * m];
                }
            }
            let mut want = fill(k, 3.0);
            let mut got = want.clone();
            gemm(
                1.0,
                Mat::new(&w, m, k).t(),
                Mat::new(&g, m, 1),
                1.0,
                &mut want,
            );
            tdots_add(&wr, &g, &mut got);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{m} × {k}");
        }
    }
}
