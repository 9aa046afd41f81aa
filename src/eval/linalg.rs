//! Dense matrix products on column-major slices: thin products by slice kernels that compute
//! what nalgebra's gemv computes, to the bit; the rest through matrixmultiply.

#[cfg(target_arch = "x86_64")]
mod avx;
#[cfg(all(target_arch = "x86_64", mcopt_avx512))]
mod avx512;

/// A column-major matrix stored in a slice, possibly read transposed. The fields are private
/// so that every `Mat` comes from [`Mat::new`], which checks the slice's length: [`gemm`]
/// hands raw pointers to matrixmultiply and relies on it.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f64],
    /// Stored rows and columns (before transposition).
    rows: usize,
    cols: usize,
    trans: bool,
}

impl<'a> Mat<'a> {
    /// Panics unless `data` holds exactly `rows × cols` entries.
    pub fn new(data: &'a [f64], rows: usize, cols: usize) -> Self {
        assert_eq!(
            Some(data.len()),
            rows.checked_mul(cols),
            "matrix slice of the wrong length"
        );
        Mat {
            data,
            rows,
            cols,
            trans: false,
        }
    }

    pub fn t(self) -> Self {
        Mat {
            trans: !self.trans,
            ..self
        }
    }

    /// Rows and columns as read.
    fn shape(&self) -> (usize, usize) {
        if self.trans {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// Row and column strides as read.
    fn strides(&self) -> (isize, isize) {
        if self.trans {
            (self.rows as isize, 1)
        } else {
            (1, self.rows as isize)
        }
    }
}

/// Right-hand sides with at most this many columns use matrix–vector products (one column
/// always; two to four without AVX and FMA, or with a transposed right-hand side).
const GEMV_COLUMNS: usize = 4;

/// Right-hand sides with at most this many columns use the AVX kernels, with AVX and FMA
/// (more go to matrixmultiply, which packs `a` but then runs wider kernels).
const THIN_COLUMNS: usize = 16;

/// `c = alpha · a · b + beta · c`, with `c` a column-major `rows × cols` slice.
///
/// Panics when the inner dimensions differ or `c` does not have the product's length, in
/// release builds too: the matrixmultiply path reads and writes through raw pointers.
///
/// Thin products go through matrix–vector products column by column ([`gemv_n`], [`gemv_t`]);
/// with AVX and FMA, products with 2 to [`THIN_COLUMNS`] right-hand columns through the AVX
/// kernels four (or two) columns at a time, reading `a` in place (`avx::gemm_n`,
/// `avx::gemm_t`; each column gets the bits of the two-column kernel, so a window of a batch
/// gets the whole batch's); everything else straight to matrixmultiply (column-by-column gemv
/// for wide right-hand sides is several times slower for the RNN's `4 × 128` output weights).
pub fn gemm(alpha: f64, a: Mat<'_>, b: Mat<'_>, beta: f64, c: &mut [f64]) {
    let (m, k) = a.shape();
    let (k2, n) = b.shape();
    assert_eq!(k, k2, "matrix product of mismatched inner dimensions");
    assert_eq!(
        Some(c.len()),
        m.checked_mul(n),
        "matrix product into a slice of the wrong length"
    );
    let batch = batch_path(n, k, alpha, b.trans);
    if n <= GEMV_COLUMNS && !b.trans && !batch {
        // Thin right-hand sides: matrix–vector products, two columns at a time (each block of
        // `a` read once for both), no packing; every column gets the same sums in the same
        // order as a product of its own (fused multiply–adds in pairs, see `gemv_n2`).
        let (pairs, single) = (n / 2, n % 2);
        let (bx, cy) = (
            b.data.split_at(pairs * 2 * k),
            c.split_at_mut(pairs * 2 * m),
        );
        for (x, y) in bx.0.chunks_exact(2 * k).zip(cy.0.chunks_exact_mut(2 * m)) {
            if a.trans {
                gemv_t2(alpha, a.data, a.rows, x, beta, y);
            } else {
                gemv_n2(alpha, a.data, x, beta, y);
            }
        }
        if single == 1 {
            if a.trans {
                gemv_t(alpha, a.data, a.rows, bx.1, beta, cy.1);
            } else {
                gemv_n(alpha, a.data, bx.1, beta, cy.1);
            }
        }
        return;
    }
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if batch {
        // A few more columns (a batch of sequences): the AVX kernels read `a` in place, where
        // matrixmultiply would pack it at every call (see `avx::gemm_n`).
        // SAFETY: the processor has AVX and FMA, checked by `batch_path`.
        unsafe {
            if a.trans {
                batch_t(a.data, a.rows, b.data, n, beta, c);
            } else {
                batch_n(a.data, b.data, n, beta, c, &mut avx::Ahead::new([&[], &[]]));
            }
        }
        return;
    }
    let (ars, acs) = a.strides();
    let (brs, bcs) = b.strides();
    // SAFETY: `a` and `b` come from `Mat::new`, so their slices hold exactly `rows × cols`
    // entries, and the strides above address only those (column-major, or its transpose);
    // the assertions above make `c` exactly `m × n` with `m` rows and the inner dimensions
    // equal, so every index dgemm forms is in bounds. `c` does not alias `a` or `b` because
    // it is borrowed mutably while they are borrowed shared.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            ars,
            acs,
            b.data.as_ptr(),
            brs,
            bcs,
            beta,
            c.as_mut_ptr(),
            1,
            m as isize,
        );
    }
}

/// `c = a · b`: what [`gemm`] computes with alpha = 1 and beta = 0, to the bit, asking
/// meanwhile for the cache lines of `ahead` (buffers the caller writes next): between blocks
/// of rows in the batch kernel (`avx::gemm_n`), else all before the product.
pub fn gemm_ahead(a: Mat<'_>, b: Mat<'_>, c: &mut [f64], ahead: [&[f64]; 2]) {
    #[cfg(target_arch = "x86_64")]
    {
        let ((m, k), (k2, n)) = (a.shape(), b.shape());
        assert_eq!(k, k2, "matrix product of mismatched inner dimensions");
        assert_eq!(
            Some(c.len()),
            m.checked_mul(n),
            "matrix product into a slice of the wrong length"
        );
        let mut ahead = avx::Ahead::new(ahead);
        // The path `gemm` takes for these products (the same kernel, the same bits).
        if batch_path(n, k, 1.0, b.trans) && !a.trans && m > 0 {
            // SAFETY: the processor has AVX and FMA, checked by `batch_path`.
            unsafe { batch_n(a.data, b.data, n, 0.0, c, &mut ahead) };
            return;
        }
        ahead.all();
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ahead;
    gemm(1.0, a, b, 0.0, c)
}

/// `c = a₁ b₁ + a₂ b₂`: with AVX-512, 2 to [`THIN_COLUMNS`] right-hand columns not transposed
/// and a multiple of 16 rows, one pass of the batch kernel over both products
/// (`avx512::gemm_n_sum`: each entry the fused sum through `a₁`'s columns and on through
/// `a₂`'s); otherwise [`gemm`] twice, the second adding. The forward passes' `dW h + W dh`.
pub fn gemm_sum(a1: Mat<'_>, b1: Mat<'_>, a2: Mat<'_>, b2: Mat<'_>, c: &mut [f64]) {
    #[cfg(all(target_arch = "x86_64", mcopt_avx512))]
    {
        let ((m1, k1), (k1b, n1)) = (a1.shape(), b1.shape());
        let ((m2, k2), (k2b, n2)) = (a2.shape(), b2.shape());
        assert!(
            k1 == k1b && k2 == k2b,
            "matrix product of mismatched inner dimensions"
        );
        assert!(
            m1 == m2 && n1 == n2 && Some(c.len()) == m1.checked_mul(n1),
            "a sum of products of different shapes"
        );
        let plain = !(a1.trans || a2.trans || b1.trans || b2.trans);
        if plain
            && k1 > 0
            && m1 % 16 == 0
            && batch_path(n1, k1, 1.0, false)
            && std::arch::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: the processor has AVX-512F (checked just above); the shapes agree (the
            // assertions above), and `Mat::new` made every slice exactly rows × cols.
            unsafe { avx512::gemm_n_sum((a1.data, b1.data), (a2.data, b2.data), n1, c) };
            return;
        }
    }
    gemm(1.0, a1, b1, 0.0, c);
    gemm(1.0, a2, b2, 1.0, c);
}

/// Whether [`gemm`] takes the AVX batch kernels: 2 to [`THIN_COLUMNS`] right-hand columns, not
/// transposed, alpha = 1, and a processor with AVX and FMA.
fn batch_path(n: usize, k: usize, alpha: f64, b_trans: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (2..=THIN_COLUMNS).contains(&n) && !b_trans && alpha == 1.0 && k > 0 && has_avx_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (n, k, alpha, b_trans);
        false
    }
}

/// `y = A X + beta · y` for 2 to 16 right-hand columns (`avx::gemm_n`): with beta = 0 and a
/// multiple of 16 rows on a processor with AVX-512, through `avx512::gemm_n` (the same
/// operations per entry, so the same bits, with eight lanes and eight columns at a time).
///
/// # Safety
/// The processor must have AVX and FMA.
#[cfg(target_arch = "x86_64")]
unsafe fn batch_n(
    a: &[f64],
    x: &[f64],
    n: usize,
    beta: f64,
    y: &mut [f64],
    ahead: &mut avx::Ahead<'_>,
) {
    #[cfg(mcopt_avx512)]
    if beta == 0.0 && (y.len() / n) % 16 == 0 && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor has AVX-512F (checked just above), AVX and FMA (this
        // function's contract).
        return unsafe { avx512::gemm_n(a, x, n, y, ahead) };
    }
    // SAFETY: the processor has AVX and FMA (this function's contract).
    unsafe { avx::gemm_n(a, x, n, beta, y, ahead) }
}

/// `y = Aᵀ X + beta · y` for 2 to 16 right-hand columns (`avx::gemm_t`): on a processor with
/// AVX-512, the pairs of columns through `avx512::gemm_t` (the same operations per entry, so
/// the same bits, two entries per register) and an odd last column through the AVX kernel.
///
/// # Safety
/// The processor must have AVX and FMA.
#[cfg(target_arch = "x86_64")]
unsafe fn batch_t(a: &[f64], rows: usize, x: &[f64], n: usize, beta: f64, y: &mut [f64]) {
    #[cfg(mcopt_avx512)]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let (even, cols) = (n / 2 * 2, y.len() / n);
        let (x0, x1) = x.split_at(even * rows);
        let (y0, y1) = y.split_at_mut(even * cols);
        // SAFETY: the processor has AVX-512F (checked just above), AVX and FMA (this
        // function's contract).
        unsafe {
            avx512::gemm_t(a, rows, x0, even, beta, y0);
            if even < n {
                avx::gemm_t(a, rows, x1, 1, beta, y1);
            }
        }
        return;
    }
    // SAFETY: the processor has AVX and FMA (this function's contract).
    unsafe { avx::gemm_t(a, rows, x, n, beta, y) }
}

/// `y = A x` for a column-major `A` (`y.len()` rows, `x.len()` columns): what [`gemm`] computes
/// for a one-column right-hand side, without its dispatch (the value plan's products of one
/// sequence).
pub fn matvec(a: &[f64], x: &[f64], y: &mut [f64]) {
    assert_eq!(
        Some(a.len()),
        y.len().checked_mul(x.len()),
        "matrix–vector product of mismatched sizes"
    );
    gemv_n(1.0, a, x, 0.0, y);
}

/// `y = alpha · A x + beta · y` for a column-major `A` of `y.len()` rows, on slices (so the
/// loops vectorise). The operations and their order are nalgebra's `gemv`, so results are the
/// same to the bit: column by column, `y ← (alpha · A[:, j]) · x_j + y`, the first column
/// with `beta · y` (and `y` not read when beta is 0).
fn gemv_n(alpha: f64, a: &[f64], x: &[f64], beta: f64, y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if alpha == 1.0 && !x.is_empty() && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor has AVX, checked just above.
        return unsafe { avx::gemv_n(a, x, beta, y) };
    }
    gemv_n_body(alpha, a, x, beta, y)
}

#[inline(always)]
fn gemv_n_body(alpha: f64, a: &[f64], x: &[f64], beta: f64, y: &mut [f64]) {
    let m = y.len();
    if x.is_empty() {
        if beta == 0.0 {
            y.fill(0.0);
        } else {
            y.iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    // Blocks of R rows kept in registers across all columns: the same operations in the same
    // order per entry as column by column, with y read and written once.
    const R: usize = 8;
    let full = m / R * R;
    for i0 in (0..full).step_by(R) {
        let mut acc = [0.0; R];
        let (col, x0) = (&a[i0..i0 + R], x[0]);
        if beta == 0.0 {
            for (v, &aij) in acc.iter_mut().zip(col) {
                *v = alpha * aij * x0;
            }
        } else {
            for ((v, &aij), &yi) in acc.iter_mut().zip(col).zip(&y[i0..i0 + R]) {
                *v = alpha * aij * x0 + beta * yi;
            }
        }
        for (j, &xj) in x.iter().enumerate().skip(1) {
            let col = &a[j * m + i0..j * m + i0 + R];
            for (v, &aij) in acc.iter_mut().zip(col) {
                *v += alpha * aij * xj;
            }
        }
        y[i0..i0 + R].copy_from_slice(&acc);
    }
    for i in full..m {
        let mut v = if beta == 0.0 {
            alpha * a[i] * x[0]
        } else {
            alpha * a[i] * x[0] + beta * y[i]
        };
        for (j, &xj) in x.iter().enumerate().skip(1) {
            v += alpha * a[j * m + i] * xj;
        }
        y[i] = v;
    }
}

/// [`gemv_n`] for two columns at once: `x` holds the two right-hand sides one after the other
/// and `y` the two results. Each block of `A` is loaded once for both. The portable kernel
/// does per entry the operations of [`gemv_n`] in its order (each column the same to the bit);
/// with AVX and FMA (alpha = 1) each multiply and add is fused, as in matrixmultiply's kernels
/// for wider products: the same sums in the same order, each term rounded once instead of
/// twice, so a minibatch's low bits depend on the processor (docs/bench.md).
fn gemv_n2(alpha: f64, a: &[f64], x: &[f64], beta: f64, y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if alpha == 1.0 && !x.is_empty() && has_avx_fma() {
        // SAFETY: the processor has AVX and FMA, checked just above.
        return unsafe { avx::gemv_n2(a, x, beta, y) };
    }
    gemv_n2_body(alpha, a, x, beta, y)
}

/// Whether the processor has AVX and FMA (for the two-column kernels).
#[cfg(target_arch = "x86_64")]
fn has_avx_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma")
}

#[inline(always)]
fn gemv_n2_body(alpha: f64, a: &[f64], x: &[f64], beta: f64, y: &mut [f64]) {
    let (k, m) = (x.len() / 2, y.len() / 2);
    let (x0, x1) = x.split_at(k);
    let (y0, y1) = y.split_at_mut(m);
    if k == 0 {
        gemv_n(alpha, a, x0, beta, y0);
        gemv_n(alpha, a, x1, beta, y1);
        return;
    }
    const R: usize = 8;
    let full = m / R * R;
    for i0 in (0..full).step_by(R) {
        let (mut s0, mut s1) = ([0.0; R], [0.0; R]);
        let col = &a[i0..i0 + R];
        if beta == 0.0 {
            for r in 0..R {
                s0[r] = alpha * col[r] * x0[0];
                s1[r] = alpha * col[r] * x1[0];
            }
        } else {
            for r in 0..R {
                s0[r] = alpha * col[r] * x0[0] + beta * y0[i0 + r];
                s1[r] = alpha * col[r] * x1[0] + beta * y1[i0 + r];
            }
        }
        for j in 1..k {
            let col = &a[j * m + i0..j * m + i0 + R];
            let (u, v) = (x0[j], x1[j]);
            for r in 0..R {
                s0[r] += alpha * col[r] * u;
                s1[r] += alpha * col[r] * v;
            }
        }
        y0[i0..i0 + R].copy_from_slice(&s0);
        y1[i0..i0 + R].copy_from_slice(&s1);
    }
    for (xc, yc) in [(x0, &mut *y0), (x1, &mut *y1)] {
        for i in full..m {
            let mut v = if beta == 0.0 {
                alpha * a[i] * xc[0]
            } else {
                alpha * a[i] * xc[0] + beta * yc[i]
            };
            for (j, &xj) in xc.iter().enumerate().skip(1) {
                v += alpha * a[j * m + i] * xj;
            }
            yc[i] = v;
        }
    }
}

/// [`gemv_t`] for two columns at once (`x` and `y` as in [`gemv_n2`]): each column of `A` is
/// read once for both inner products, each computed as [`dot`] computes it (with AVX and FMA,
/// its multiplies and adds fused, as in [`gemv_n2`]).
fn gemv_t2(alpha: f64, a: &[f64], rows: usize, x: &[f64], beta: f64, y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if alpha == 1.0 && rows > 0 && has_avx_fma() {
        // SAFETY: the processor has AVX and FMA, checked just above.
        return unsafe { avx::gemv_t2(a, rows, x, beta, y) };
    }
    gemv_t2_body(alpha, a, rows, x, beta, y)
}

#[inline(always)]
fn gemv_t2_body(alpha: f64, a: &[f64], rows: usize, x: &[f64], beta: f64, y: &mut [f64]) {
    let (k, m) = (x.len() / 2, y.len() / 2);
    let (x0, x1) = x.split_at(k);
    let (y0, y1) = y.split_at_mut(m);
    if rows == 0 {
        gemv_t(alpha, a, rows, x0, beta, y0);
        gemv_t(alpha, a, rows, x1, beta, y1);
        return;
    }
    let scale = |d: f64, v: f64| {
        if beta == 0.0 {
            alpha * d
        } else {
            alpha * d + beta * v
        }
    };
    for ((v0, v1), col) in y0.iter_mut().zip(y1.iter_mut()).zip(a.chunks_exact(rows)) {
        let (d0, d1) = dot2(col, x0, x1);
        *v0 = scale(d0, *v0);
        *v1 = scale(d1, *v1);
    }
}

/// `(dot(a, b0), dot(a, b1))` with `a` read once, each sum in [`dot`]'s order.
#[inline(always)]
fn dot2(a: &[f64], b0: &[f64], b1: &[f64]) -> (f64, f64) {
    let n = a.len().min(b0.len()).min(b1.len());
    let (a, b0, b1) = (&a[..n], &b0[..n], &b1[..n]);
    let (mut s0, mut s1) = ([0.0f64; 8], [0.0f64; 8]);
    let full = n / 8 * 8;
    for i0 in (0..full).step_by(8) {
        let (x, u, v) = (&a[i0..i0 + 8], &b0[i0..i0 + 8], &b1[i0..i0 + 8]);
        for l in 0..8 {
            s0[l] += x[l] * u[l];
            s1[l] += x[l] * v[l];
        }
    }
    let combine = |acc: [f64; 8], b: &[f64]| {
        let mut res = 0.0;
        res += acc[0] + acc[4];
        res += acc[1] + acc[5];
        res += acc[2] + acc[6];
        res += acc[3] + acc[7];
        for (x, y) in a[full..].iter().zip(&b[full..]) {
            res += x * y;
        }
        res
    };
    (combine(s0, b0), combine(s1, b1))
}

/// `y = alpha · Aᵀ x + beta · y` for a column-major `A` of `rows` rows, on slices: one
/// [`dot`] per column of `A`, `y_j ← alpha · dot + beta · y_j` (`y` not read when beta is 0),
/// as nalgebra's `gemv_tr`.
fn gemv_t(alpha: f64, a: &[f64], rows: usize, x: &[f64], beta: f64, y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if alpha == 1.0 && rows > 0 && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor has AVX, checked just above.
        return unsafe { avx::gemv_t(a, rows, x, beta, y) };
    }
    gemv_t_body(alpha, a, rows, x, beta, y)
}

#[inline(always)]
fn gemv_t_body(alpha: f64, a: &[f64], rows: usize, x: &[f64], beta: f64, y: &mut [f64]) {
    if rows == 0 {
        // nalgebra: the dot products are 0.
        y.iter_mut().for_each(|v| {
            *v = if beta == 0.0 {
                alpha * 0.0
            } else {
                alpha * 0.0 + beta * *v
            }
        });
        return;
    }
    for (v, col) in y.iter_mut().zip(a.chunks_exact(rows)) {
        let d = dot(col, x);
        *v = if beta == 0.0 {
            alpha * d
        } else {
            alpha * d + beta * *v
        };
    }
}

/// The inner product in nalgebra's order (bit for bit): eight interleaved partial sums over
/// blocks of eight, combined as (0 + 4) + (1 + 5) + (2 + 6) + (3 + 7), then the tail in order.
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &xl), &yl) in acc.iter_mut().zip(x).zip(y) {
            *s += xl * yl;
        }
    }
    let mut res = 0.0;
    res += acc[0] + acc[4];
    res += acc[1] + acc[5];
    res += acc[2] + acc[6];
    res += acc[3] + acc[7];
    for (x, y) in ta.iter().zip(tb) {
        res += x * y;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{DMatrixView, DVectorView, DVectorViewMut};

    #[test]
    #[should_panic(expected = "mismatched inner dimensions")]
    fn mismatched_inner_dimensions_panic_on_the_matrixmultiply_path() {
        let (a, b) = (vec![1.0; 8 * 8], vec![1.0; 7 * 8]);
        let mut c = vec![0.0; 8 * 8];
        // 8×8 times (7×8): inner 8 ≠ 7.
        gemm(1.0, Mat::new(&a, 8, 8), Mat::new(&b, 7, 8), 0.0, &mut c);
    }

    #[test]
    #[should_panic(expected = "wrong length")]
    fn a_short_output_panics_on_the_matrixmultiply_path() {
        let (a, b) = (vec![1.0; 8 * 8], vec![1.0; 8 * 8]);
        let mut c = vec![0.0; 8 * 7];
        gemm(1.0, Mat::new(&a, 8, 8), Mat::new(&b, 8, 8), 0.0, &mut c);
    }

    #[test]
    #[should_panic(expected = "wrong length")]
    fn a_short_output_panics_on_the_gemv_path() {
        let (a, b) = (vec![1.0; 6], vec![1.0; 3]);
        let mut c = vec![0.0; 1];
        gemm(1.0, Mat::new(&a, 2, 3), Mat::new(&b, 3, 1), 0.0, &mut c);
    }

    #[test]
    #[should_panic(expected = "matrix slice of the wrong length")]
    fn a_matrix_with_too_few_entries_is_refused() {
        let a = vec![1.0; 5];
        let _ = Mat::new(&a, 2, 3);
    }

    #[test]
    #[should_panic(expected = "matrix slice of the wrong length")]
    fn an_overflowing_shape_is_refused() {
        let a = vec![1.0; 4];
        let _ = Mat::new(&a, usize::MAX, 4);
    }

    /// The slice kernels against nalgebra's gemv, gemv_tr and dot, bit for bit, on awkward
    /// sizes (tails of the blocks of eight, empty inner dimensions) and every beta case.
    #[test]
    fn slice_kernels_match_nalgebra_to_the_bit() {
        let mut rng = crate::rng::Rng::new(7);
        for (m, k) in [
            (1, 1),
            (3, 0),
            (5, 7),
            (20, 20),
            (20, 11),
            (17, 9),
            (128, 4),
            (4, 128),
            (40, 13),
            (37, 33),
        ] {
            let a: Vec<f64> = (0..m * k).map(|_| rng.normal()).collect();
            let xn: Vec<f64> = (0..k).map(|_| rng.normal()).collect();
            let xt: Vec<f64> = (0..m).map(|_| rng.normal()).collect();
            let y0: Vec<f64> = (0..m.max(k)).map(|_| rng.normal()).collect();
            let av = DMatrixView::from_slice(&a, m, k);
            for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (-0.3, 0.7), (2.5, 0.0)] {
                let (mut want, mut got) = (y0[..m].to_vec(), y0[..m].to_vec());
                DVectorViewMut::from_slice(&mut want, m).gemv(
                    alpha,
                    &av,
                    &DVectorView::from_slice(&xn, k),
                    beta,
                );
                gemv_n(alpha, &a, &xn, beta, &mut got);
                assert_eq!(
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "gemv {m}×{k}"
                );
                let (mut want, mut got) = (y0[..k].to_vec(), y0[..k].to_vec());
                DVectorViewMut::from_slice(&mut want, k).gemv_tr(
                    alpha,
                    &av,
                    &DVectorView::from_slice(&xt, m),
                    beta,
                );
                gemv_t(alpha, &a, m, &xt, beta, &mut got);
                assert_eq!(
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "gemv_tr {m}×{k}"
                );
            }
            let want = DVectorView::from_slice(&a, m * k).dot(&DVectorView::from_slice(&a, m * k));
            assert_eq!(dot(&a, &a).to_bits(), want.to_bits(), "dot of {}", m * k);
        }
    }

    /// Entrywise, `got` and `want` differ by at most twice the rounding bound of a sum of
    /// `k + 1` terms whose absolute values sum to `scale`: each is within (k + 2) ε · scale of
    /// the exact value, whether its multiplies and adds are fused or not.
    fn assert_close(want: &[f64], got: &[f64], scale: &[f64], k: usize, what: &str) {
        assert_eq!(want.len(), got.len(), "{what}");
        for ((w, g), s) in want.iter().zip(got).zip(scale) {
            let tol = 2.0 * (k + 2) as f64 * f64::EPSILON * s;
            assert!((w - g).abs() <= tol, "{what}: {w} vs {g} (tolerance {tol})");
        }
    }

    fn abs(v: &[f64]) -> Vec<f64> {
        v.iter().map(|x| x.abs()).collect()
    }

    /// The two-column kernels give each column what the one-column kernels give it: the
    /// portable ones bit for bit, the dispatched ones (fused multiply–adds with AVX and FMA)
    /// within rounding (block tails, empty inner dimensions, every beta case).
    #[test]
    fn two_column_kernels_agree_with_two_single_columns() {
        let mut rng = crate::rng::Rng::new(11);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (m, k) in [
            (1, 1),
            (3, 0),
            (0, 3),
            (5, 7),
            (20, 20),
            (17, 9),
            (128, 2),
            (9, 130),
        ] {
            let a: Vec<f64> = (0..m * k).map(|_| rng.normal()).collect();
            let xn: Vec<f64> = (0..2 * k).map(|_| rng.normal()).collect();
            let xt: Vec<f64> = (0..2 * m).map(|_| rng.normal()).collect();
            let y0: Vec<f64> = (0..2 * m.max(k)).map(|_| rng.normal()).collect();
            for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (-0.3, 0.7), (2.5, 0.0)] {
                let (mut want, mut got) = (y0[..2 * m].to_vec(), y0[..2 * m].to_vec());
                let (w0, w1) = want.split_at_mut(m);
                gemv_n_body(alpha, &a, &xn[..k], beta, w0);
                gemv_n_body(alpha, &a, &xn[k..], beta, w1);
                gemv_n2_body(alpha, &a, &xn, beta, &mut got);
                assert_eq!(bits(&want), bits(&got), "portable gemv_n2 {m}×{k}");
                let mut scale = abs(&y0[..2 * m]);
                gemv_n2_body(alpha.abs(), &abs(&a), &abs(&xn), beta.abs(), &mut scale);
                let mut got = y0[..2 * m].to_vec();
                gemv_n2(alpha, &a, &xn, beta, &mut got);
                assert_close(&want, &got, &scale, k, &format!("gemv_n2 {m}×{k}"));

                let (mut want, mut got) = (y0[..2 * k].to_vec(), y0[..2 * k].to_vec());
                let (w0, w1) = want.split_at_mut(k);
                gemv_t_body(alpha, &a, m, &xt[..m], beta, w0);
                gemv_t_body(alpha, &a, m, &xt[m..], beta, w1);
                gemv_t2_body(alpha, &a, m, &xt, beta, &mut got);
                assert_eq!(bits(&want), bits(&got), "portable gemv_t2 {m}×{k}");
                let mut scale = abs(&y0[..2 * k]);
                gemv_t2_body(alpha.abs(), &abs(&a), m, &abs(&xt), beta.abs(), &mut scale);
                let mut got = y0[..2 * k].to_vec();
                gemv_t2(alpha, &a, m, &xt, beta, &mut got);
                assert_close(&want, &got, &scale, m, &format!("gemv_t2 {m}×{k}"));
            }
            // Through gemm: 1 to 4 right-hand columns, against the per-column kernels, for A
            // and for Aᵀ.
            if k == 0 || m == 0 {
                continue;
            }
            for n in 1..=GEMV_COLUMNS {
                let b: Vec<f64> = (0..k * n).map(|_| rng.normal()).collect();
                let (mut want, mut got) = (vec![0.0; m * n], vec![0.0; m * n]);
                let mut scale = vec![0.0; m * n];
                for ((x, y), s) in b
                    .chunks_exact(k)
                    .zip(want.chunks_exact_mut(m))
                    .zip(scale.chunks_exact_mut(m))
                {
                    gemv_n(1.0, &a, x, 0.0, y);
                    gemv_n(1.0, &abs(&a), &abs(x), 0.0, s);
                }
                gemm(1.0, Mat::new(&a, m, k), Mat::new(&b, k, n), 0.0, &mut got);
                assert_close(&want, &got, &scale, k, &format!("gemm {m}×{k}·{k}×{n}"));
                let b: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
                let (mut want, mut got) = (vec![0.0; k * n], vec![0.0; k * n]);
                let mut scale = vec![0.0; k * n];
                for ((x, y), s) in b
                    .chunks_exact(m)
                    .zip(want.chunks_exact_mut(k))
                    .zip(scale.chunks_exact_mut(k))
                {
                    gemv_t(1.0, &a, m, x, 0.0, y);
                    gemv_t(1.0, &abs(&a), m, &abs(x), 0.0, s);
                }
                gemm(
                    1.0,
                    Mat::new(&a, m, k).t(),
                    Mat::new(&b, m, n),
                    0.0,
                    &mut got,
                );
                assert_close(&want, &got, &scale, m, &format!("gemm ({m}×{k})ᵀ·{m}×{n}"));
            }
        }
    }

    /// The AVX kernels (alpha = 1) against the portable kernels on sizes that reach every
    /// block shape (full blocks, each remainder of blocks of four, single rows, columns of `A`
    /// left over, tails of the blocks of eight) and every beta case: one column bit for bit,
    /// two columns (fused multiply–adds) within rounding.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx_kernels_match_the_portable_kernels() {
        if !has_avx_fma() {
            return;
        }
        let mut rng = crate::rng::Rng::new(13);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for m in [1, 3, 4, 7, 12, 20, 31, 32, 33, 47, 64, 130] {
            for k in [1, 2, 5, 8, 9, 16, 17] {
                let a: Vec<f64> = (0..m * k).map(|_| rng.normal()).collect();
                let xn: Vec<f64> = (0..2 * k).map(|_| rng.normal()).collect();
                let xt: Vec<f64> = (0..2 * m).map(|_| rng.normal()).collect();
                let y0: Vec<f64> = (0..2 * m.max(k)).map(|_| rng.normal()).collect();
                for beta in [0.0, 1.0, 0.7] {
                    let (mut want, mut got) = (y0[..m].to_vec(), y0[..m].to_vec());
                    gemv_n_body(1.0, &a, &xn[..k], beta, &mut want);
                    // SAFETY: the processor has AVX and FMA, checked above.
                    unsafe { avx::gemv_n(&a, &xn[..k], beta, &mut got) };
                    assert_eq!(bits(&want), bits(&got), "gemv_n {m}×{k}");
                    let (mut want, mut got) = (y0[..2 * m].to_vec(), y0[..2 * m].to_vec());
                    gemv_n2_body(1.0, &a, &xn, beta, &mut want);
                    // SAFETY: the processor has AVX and FMA, checked above.
                    unsafe { avx::gemv_n2(&a, &xn, beta, &mut got) };
                    let mut scale = abs(&y0[..2 * m]);
                    gemv_n2_body(1.0, &abs(&a), &abs(&xn), beta, &mut scale);
                    assert_close(&want, &got, &scale, k, &format!("gemv_n2 {m}×{k}"));
                    let (mut want, mut got) = (y0[..k].to_vec(), y0[..k].to_vec());
                    gemv_t_body(1.0, &a, m, &xt[..m], beta, &mut want);
                    // SAFETY: the processor has AVX and FMA, checked above.
                    unsafe { avx::gemv_t(&a, m, &xt[..m], beta, &mut got) };
                    assert_eq!(bits(&want), bits(&got), "gemv_t {m}×{k}");
                    let (mut want, mut got) = (y0[..2 * k].to_vec(), y0[..2 * k].to_vec());
                    gemv_t2_body(1.0, &a, m, &xt, beta, &mut want);
                    // SAFETY: the processor has AVX and FMA, checked above.
                    unsafe { avx::gemv_t2(&a, m, &xt, beta, &mut got) };
                    let mut scale = abs(&y0[..2 * k]);
                    gemv_t2_body(1.0, &abs(&a), m, &abs(&xt), beta, &mut scale);
                    assert_close(&want, &got, &scale, m, &format!("gemv_t2 {m}×{k}"));
                }
            }
        }
    }

    /// The AVX-512 batch kernel gives the AVX kernel's results to the bit (each lane one entry,
    /// the same operations in the same order), on every column count it takes and blocks of
    /// 16 rows, with the lines of `ahead` asked for.
    #[cfg(all(target_arch = "x86_64", mcopt_avx512))]
    #[test]
    fn avx512_batch_products_equal_the_avx_kernel() {
        if !(has_avx_fma() && std::arch::is_x86_feature_detected!("avx512f")) {
            return;
        }
        let mut rng = crate::rng::Rng::new(29);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (m, k) in [(16, 1), (32, 3), (128, 128), (128, 16), (144, 37)] {
            let a: Vec<f64> = (0..m * k).map(|_| rng.normal()).collect();
            for n in 5..=THIN_COLUMNS {
                let b: Vec<f64> = (0..k * n).map(|_| rng.normal()).collect();
                let (mut want, mut got) = (vec![f64::NAN; m * n], vec![f64::NAN; m * n]);
                let out = vec![0.0; 3 * m];
                // SAFETY: the processor has AVX, FMA and AVX-512F, checked above.
                unsafe {
                    let none = &mut avx::Ahead::new([&[], &[]]);
                    avx::gemm_n(&a, &b, n, 0.0, &mut want, none);
                    let ahead = &mut avx::Ahead::new([&out[..m], &out[m..]]);
                    avx512::gemm_n(&a, &b, n, &mut got, ahead);
                }
                assert_eq!(bits(&got), bits(&want), "{m}×{k}·{k}×{n}");
            }
        }
    }

    /// The AVX-512 `Aᵀ X` gives the AVX kernel's results to the bit (each entry's lanes the
    /// same operations in the same order), on every even column count, rows with and without
    /// a remainder after the last multiple of four (the scalar and the vector end), columns of
    /// `A` left over after the blocks of four, and every beta case.
    #[cfg(all(target_arch = "x86_64", mcopt_avx512))]
    #[test]
    fn avx512_transposed_batch_products_equal_the_avx_kernel() {
        if !(has_avx_fma() && std::arch::is_x86_feature_detected!("avx512f")) {
            return;
        }
        let mut rng = crate::rng::Rng::new(31);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (rows, cols) in [(128, 128), (4, 128), (128, 16), (13, 9), (3, 7), (20, 1)] {
            let a: Vec<f64> = (0..rows * cols).map(|_| rng.normal()).collect();
            for n in (2..=THIN_COLUMNS).step_by(2) {
                let x: Vec<f64> = (0..rows * n).map(|_| rng.normal()).collect();
                let y0: Vec<f64> = (0..cols * n).map(|_| rng.normal()).collect();
                for beta in [0.0, 1.0, 0.7] {
                    let (mut want, mut got) = (y0.clone(), y0.clone());
                    // SAFETY: the processor has AVX, FMA and AVX-512F, checked above.
                    unsafe {
                        avx::gemm_t(&a, rows, &x, n, beta, &mut want);
                        avx512::gemm_t(&a, rows, &x, n, beta, &mut got);
                    }
                    assert_eq!(bits(&got), bits(&want), "{rows}×{cols}ᵀ·{n}, beta {beta}");
                }
            }
        }
    }

    /// Products with 5 to 16 right-hand columns (a batch of sequences) through the AVX
    /// kernels: each column has the bits it has in any other batch (A: the two-column kernel's,
    /// the column paired with itself; Aᵀ: the column five times over), and is within rounding
    /// of the one-column kernel; for A and for Aᵀ, on sizes that reach every block shape.
    #[cfg(target_arch = "x86_64")]
    /// `gemm_sum` is the product of the joined matrices [a₁ a₂] [b₁; b₂]: to the bit where it
    /// takes the fused kernel (the same sums in the same order as `gemm` of the joined ones),
    /// to rounding elsewhere (the two products added).
    #[test]
    fn a_sum_of_two_products_is_the_product_of_the_joined_matrices() {
        let mut rng = crate::rng::Rng::new(23);
        let fused = cfg!(mcopt_avx512) && std::arch::is_x86_feature_detected!("avx512f");
        for (m, k1, k2) in [
            (128, 128, 128),
            (16, 3, 40),
            (32, 1, 1),
            (13, 9, 2),
            (4, 128, 5),
        ] {
            for n in 1..=THIN_COLUMNS + 1 {
                let mut v = |len: usize| (0..len).map(|_| rng.normal()).collect::<Vec<f64>>();
                let (a1, a2, b1, b2) = (v(m * k1), v(m * k2), v(k1 * n), v(k2 * n));
                let mut got = vec![f64::NAN; m * n];
                gemm_sum(
                    Mat::new(&a1, m, k1),
                    Mat::new(&b1, k1, n),
                    Mat::new(&a2, m, k2),
                    Mat::new(&b2, k2, n),
                    &mut got,
                );
                let a = [a1.as_slice(), &a2].concat();
                let join = |x: &[f64], y: &[f64]| -> Vec<f64> {
                    (0..n)
                        .flat_map(|c| [&x[c * k1..(c + 1) * k1], &y[c * k2..(c + 1) * k2]])
                        .flatten()
                        .copied()
                        .collect()
                };
                let b = join(&b1, &b2);
                let k = k1 + k2;
                let mut want = vec![0.0; m * n];
                gemm(1.0, Mat::new(&a, m, k), Mat::new(&b, k, n), 0.0, &mut want);
                let what = format!("{m}×({k1} + {k2})·{n}");
                if fused && m % 16 == 0 && (2..=THIN_COLUMNS).contains(&n) {
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&want), bits(&got), "{what}");
                } else {
                    let mut scale = vec![0.0; m * n];
                    let (aa, ab) = (abs(&a), abs(&b));
                    gemm(
                        1.0,
                        Mat::new(&aa, m, k),
                        Mat::new(&ab, k, n),
                        0.0,
                        &mut scale,
                    );
                    assert_close(&want, &got, &scale, k, &what);
                }
            }
        }
    }

    #[test]
    fn batch_products_give_each_column_the_two_column_bits() {
        if !has_avx_fma() {
            return;
        }
        let mut rng = crate::rng::Rng::new(17);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (m, k) in [
            (128, 128),
            (4, 128),
            (128, 16),
            (13, 9),
            (31, 1),
            (1, 40),
            (7, 3),
        ] {
            let a: Vec<f64> = (0..m * k).map(|_| rng.normal()).collect();
            for n in 5..=THIN_COLUMNS {
                for (trans, (rows, inner)) in [(false, (m, k)), (true, (k, m))] {
                    let am = || {
                        let am = Mat::new(&a, m, k);
                        if trans {
                            am.t()
                        } else {
                            am
                        }
                    };
                    let b: Vec<f64> = (0..inner * n).map(|_| rng.normal()).collect();
                    let y0: Vec<f64> = (0..rows * n).map(|_| rng.normal()).collect();
                    for beta in [0.0, 1.0] {
                        let mut got = y0.clone();
                        gemm(1.0, am(), Mat::new(&b, inner, n), beta, &mut got);
                        for c in 0..n {
                            let col = &b[c * inner..(c + 1) * inner];
                            let copies = if trans { 5 } else { 2 };
                            let same = vec![col; copies].concat();
                            let mut want = vec![&y0[c * rows..(c + 1) * rows]; copies].concat();
                            gemm(1.0, am(), Mat::new(&same, inner, copies), beta, &mut want);
                            let got = &got[c * rows..(c + 1) * rows];
                            let what =
                                format!("column {c} of {rows}×{inner}·{inner}×{n} ({trans})");
                            assert_eq!(bits(&want[..rows]), bits(got), "{what}");
                            let (mut one, mut scale) = (
                                y0[c * rows..(c + 1) * rows].to_vec(),
                                abs(&y0[c * rows..(c + 1) * rows]),
                            );
                            let absa = abs(&a);
                            if trans {
                                gemv_t_body(1.0, &a, m, col, beta, &mut one);
                                gemv_t_body(1.0, &absa, m, &abs(col), beta, &mut scale);
                            } else {
                                gemv_n_body(1.0, &a, col, beta, &mut one);
                                gemv_n_body(1.0, &absa, &abs(col), beta, &mut scale);
                            }
                            assert_close(&one, got, &scale, inner, &what);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn products_and_transposes_agree_with_hand_results() {
        // a = [1 2; 3 4] (column-major [1, 3, 2, 4]), b = [5; 6]
        let a = [1.0, 3.0, 2.0, 4.0];
        let b = [5.0, 6.0];
        let mut c = [0.0; 2];
        gemm(1.0, Mat::new(&a, 2, 2), Mat::new(&b, 2, 1), 0.0, &mut c);
        assert_eq!(c, [17.0, 39.0]);
        gemm(1.0, Mat::new(&a, 2, 2).t(), Mat::new(&b, 2, 1), 0.0, &mut c);
        assert_eq!(c, [23.0, 34.0]);
        // b bᵀ as (2×1)(1×2), accumulated twice
        let mut m = [0.0; 4];
        gemm(1.0, Mat::new(&b, 2, 1), Mat::new(&b, 2, 1).t(), 0.0, &mut m);
        gemm(1.0, Mat::new(&b, 2, 1), Mat::new(&b, 2, 1).t(), 1.0, &mut m);
        assert_eq!(m, [50.0, 60.0, 60.0, 72.0]);
        // large enough for the matrixmultiply path: 8×8 identity times 8×7
        let mut eye = vec![0.0; 64];
        for i in 0..8 {
            eye[i * 9] = 2.0;
        }
        let x: Vec<f64> = (0..56).map(|v| v as f64).collect();
        let mut y = vec![0.0; 56];
        gemm(
            0.5,
            Mat::new(&eye, 8, 8).t(),
            Mat::new(&x, 8, 7),
            0.0,
            &mut y,
        );
        assert_eq!(y, x);
    }
}
