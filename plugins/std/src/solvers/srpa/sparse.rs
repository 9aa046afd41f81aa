//! The lifted Jacobian J of the SRPA subproblem as a sparse matrix by rows, shared by the
//! subproblem solver ([`super::subproblem`]) and the parameter-Schur preconditioner
//! ([`super::schur`]) without either reaching into the other; and the few numeric helpers the
//! solvers share (the in-order dot product, a pass by two halves on two threads).

/// Entries from which [`SparseRows::mul_halves`] and [`SparseRows::mul_t_halves`] run on two
/// threads (the TIMIT shape: 6.47 M); below it (syn, sp500: 448 k) one sequential pass, the
/// same numbers as [`SparseRows::mul`] and [`SparseRows::mul_t`].
pub const HALVES_MIN_ENTRIES: usize = 4_000_000;

/// The dot product aᵀ b, summed in order (the solvers' results depend on that order).
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The dot product aᵀ b in four interleaved partial sums, added at the end: four independent
/// additions per step where the in-order sum waits for each one (on the TIMIT shape's hidden
/// rows, 132 terms, the in-order sum's chain of additions was most of U's products). The
/// result differs from [`dot`]'s by rounding.
pub(super) fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a4, b4) = (a[..n].chunks_exact(4), b[..n].chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    let mut acc = [0.0; 4];
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Whether the machine has two cores or more (read once).
pub(super) fn two_cores() -> bool {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Runs `fa` and `fb` (the two halves of a pass over rows), on two threads where the
/// machine has two cores. The halves are fixed, so the result does not depend on the threads.
pub(super) fn pair<A: Send, B: Send>(
    fa: impl FnOnce() -> A + Send,
    fb: impl FnOnce() -> B + Send,
) -> (A, B) {
    if !two_cores() {
        return (fa(), fb());
    }
    // the kept second thread, else (taken by another pass) a thread for this one
    let (fa, fb) = match super::helper::join(fa, fb) {
        Ok(both) => return both,
        Err(closures) => closures,
    };
    std::thread::scope(|scope| {
        let h = scope.spawn(fb);
        let a = fa();
        match h.join() {
            Ok(b) => (a, b),
            Err(e) => std::panic::resume_unwind(e),
        }
    })
}

/// Elements from which [`each_half`] runs on two threads (the TIMIT shape's 821 k rows); below
/// it (syn, sp500) one pass.
pub const HALVES_MIN_ELEMENTS: usize = 200_000;

/// Runs `f(first, part)` on the two halves of `out` (`first`: the index of the part's first
/// element), on two threads when `out` has at least [`HALVES_MIN_ELEMENTS`] elements, else
/// once on the whole. For passes whose every element is computed on its own (no sums), so the
/// result is the same either way.
pub(super) fn each_half<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    if out.len() < HALVES_MIN_ELEMENTS {
        return f(0, out);
    }
    let mid = out.len() / 2;
    let (a, b) = out.split_at_mut(mid);
    pair(|| f(0, a), || f(mid, b));
}

/// dst = src (of equal lengths), by [`each_half`] (on the TIMIT shape's 821 k rows a copy on
/// one thread takes about a millisecond, and the subproblem's search and face steps make
/// several per Newton step).
pub(super) fn copy_halves<T: Copy + Send + Sync>(dst: &mut [T], src: &[T]) {
    each_half(dst, |first, part| {
        part.copy_from_slice(&src[first..first + part.len()])
    });
}

/// dst = src, `dst` taking `src`'s length, by [`copy_halves`].
pub(super) fn assign_halves<T: Copy + Default + Send + Sync>(dst: &mut Vec<T>, src: &[T]) {
    dst.resize(src.len(), T::default());
    copy_halves(dst, src);
}

/// `f` over `0..len`, or from [`HALVES_MIN_ELEMENTS`] elements over its two halves on two
/// threads with the results joined by `join` (a sum then differs from the one pass by rounding;
/// a largest value does not).
pub(super) fn reduce_halves<T: Send>(
    len: usize,
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
    join: impl FnOnce(T, T) -> T,
) -> T {
    if len < HALVES_MIN_ELEMENTS {
        return f(0..len);
    }
    let (a, b) = pair(|| f(0..len / 2), || f(len / 2..len));
    join(a, b)
}

/// A sparse matrix by rows (m × n), pattern fixed, values may change.
#[derive(Debug, Clone, Default)]
pub struct SparseRows {
    pub ncols: usize,
    pub row_ptr: Vec<usize>,
    pub col_idx: Vec<usize>,
    pub values: Vec<f64>,
}

impl SparseRows {
    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.row_ptr.len().saturating_sub(1)
    }

    /// out = J x.
    pub fn mul(&self, x: &[f64], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0;
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                acc += self.values[p] * x[self.col_idx[p]];
            }
            *o = acc;
        }
    }

    /// out = Jᵀ y.
    pub fn mul_t(&self, y: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (i, &yi) in y.iter().enumerate() {
            if yi == 0.0 {
                continue;
            }
            for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                out[self.col_idx[p]] += self.values[p] * yi;
            }
        }
    }

    /// out = J x, by fixed halves of the rows on two threads when J has at least
    /// [`HALVES_MIN_ENTRIES`] entries (each row's sum is the same as [`SparseRows::mul`]'s).
    pub fn mul_halves(&self, x: &[f64], out: &mut [f64]) {
        if self.col_idx.len() < HALVES_MIN_ENTRIES {
            return self.mul(x, out);
        }
        let mid = self.nrows() / 2;
        let (a, b) = out.split_at_mut(mid);
        let rows = |out: &mut [f64], first: usize| {
            for (k, o) in out.iter_mut().enumerate() {
                let i = first + k;
                let mut acc = 0.0;
                for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                    acc += self.values[p] * x[self.col_idx[p]];
                }
                *o = acc;
            }
        };
        pair(|| rows(a, 0), || rows(b, mid));
    }

    /// out = Jᵀ y, by fixed halves of the rows on two threads when J has at least
    /// [`HALVES_MIN_ENTRIES`] entries (the second half summed into `second`, then added: the
    /// same numbers whatever the threads, up to rounding those of [`SparseRows::mul_t`]).
    pub fn mul_t_halves(&self, y: &[f64], out: &mut [f64], second: &mut Vec<f64>) {
        if self.col_idx.len() < HALVES_MIN_ENTRIES {
            return self.mul_t(y, out);
        }
        let mid = self.nrows() / 2;
        second.clear();
        second.resize(out.len(), 0.0);
        let rows = |out: &mut [f64], range: std::ops::Range<usize>| {
            out.iter_mut().for_each(|o| *o = 0.0);
            for i in range {
                let yi = y[i];
                if yi == 0.0 {
                    continue;
                }
                for p in self.row_ptr[i]..self.row_ptr[i + 1] {
                    out[self.col_idx[p]] += self.values[p] * yi;
                }
            }
        };
        let m = self.nrows();
        pair(|| rows(out, 0..mid), || rows(second, mid..m));
        for (o, s) in out.iter_mut().zip(second.iter()) {
            *o += s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dot_products_in_four_partial_sums_are_the_dot_products() {
        for n in 0..11 {
            let a: Vec<f64> = (0..n).map(|k| (k as f64 * 0.7).sin() + 0.1).collect();
            let b: Vec<f64> = (0..n).map(|k| (k as f64 * 1.3).cos()).collect();
            let want = dot(&a, &b);
            let scale = 1.0 + a.iter().zip(&b).map(|(p, q)| (p * q).abs()).sum::<f64>();
            assert!((dot_lanes(&a, &b) - want).abs() <= 1e-15 * scale, "n = {n}");
        }
        // every term counts: the tail and each lane
        assert_eq!(dot_lanes(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0; 5]), 15.0);
        assert_eq!(dot_lanes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1.0; 6]), 21.0);
    }

    #[test]
    fn each_half_gives_every_element_its_own_index() {
        for len in [10, HALVES_MIN_ELEMENTS + 3] {
            let mut out = vec![0usize; len];
            each_half(&mut out, |first, part| {
                for (k, o) in part.iter_mut().enumerate() {
                    *o = 3 * (first + k) + 1;
                }
            });
            assert!(
                out.iter().enumerate().all(|(i, &o)| o == 3 * i + 1),
                "{len}"
            );
        }
    }

    #[test]
    fn a_copy_by_halves_takes_the_source_and_its_length() {
        for len in [7, HALVES_MIN_ELEMENTS + 5] {
            let src: Vec<u64> = (0..len as u64).map(|i| i * i + 3).collect();
            // longer, shorter and equal destinations
            for start in [len + 9, len / 2, len] {
                let mut dst = vec![1u64; start];
                assign_halves(&mut dst, &src);
                assert_eq!(dst, src, "{len} from {start}");
            }
            let mut dst = vec![0u64; len];
            copy_halves(&mut dst, &src);
            assert_eq!(dst, src, "{len}");
        }
    }
}
