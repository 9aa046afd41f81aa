//! Dense matrix products on column-major slices, through nalgebra (matrixmultiply for large sizes).

use nalgebra::{DMatrixView, DVectorView, DVectorViewMut};

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

/// Right-hand sides with at most this many columns use matrix–vector products.
const GEMV_COLUMNS: usize = 4;

/// `c = alpha · a · b + beta · c`, with `c` a column-major `rows × cols` slice.
///
/// Panics when the inner dimensions differ or `c` does not have the product's length, in
/// release builds too: the matrixmultiply path reads and writes through raw pointers.
///
/// Thin products go through nalgebra's gemv column by column; everything else straight to
/// matrixmultiply (nalgebra's gemm falls back to column-by-column gemv for thin matrices,
/// which is several times slower for the RNN's `4 × 128` output weights).
pub fn gemm(alpha: f64, a: Mat<'_>, b: Mat<'_>, beta: f64, c: &mut [f64]) {
    let (m, k) = a.shape();
    let (k2, n) = b.shape();
    assert_eq!(k, k2, "matrix product of mismatched inner dimensions");
    assert_eq!(
        Some(c.len()),
        m.checked_mul(n),
        "matrix product into a slice of the wrong length"
    );
    if n <= GEMV_COLUMNS && !b.trans {
        // Thin right-hand sides: one matrix–vector product per column, no packing.
        let av = DMatrixView::from_slice(a.data, a.rows, a.cols);
        for (x, y) in b.data.chunks_exact(k).zip(c.chunks_exact_mut(m)) {
            let x = DVectorView::from_slice(x, k);
            let mut y = DVectorViewMut::from_slice(y, m);
            if a.trans {
                y.gemv_tr(alpha, &av, &x, beta);
            } else {
                y.gemv(alpha, &av, &x, beta);
            }
        }
        return;
    }
    if m == 0 || n == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
