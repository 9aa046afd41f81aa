//! Fallible allocation of large buffers (parameters, evaluator arenas, data): a request the
//! system cannot meet is an error that says how many bytes were needed, never an abort.

/// An allocation the system refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError {
    /// The bytes that were asked for.
    pub bytes: usize,
}

impl AllocError {
    /// "cannot allocate 1073741824 bytes (1.0 GiB) for WHAT".
    pub fn message(&self, what: &str) -> String {
        format!(
            "cannot allocate {} bytes ({:.1} GiB) for {what}",
            self.bytes,
            self.bytes as f64 / (1u64 << 30) as f64
        )
    }

    /// The help every out-of-memory diagnostic carries.
    pub const HELP: &'static str =
        "the system refused the memory; use smaller sizes, or run where more memory is available";
}

/// A vector of `len` copies of `value`, or the bytes it would have needed.
pub fn filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    v.try_reserve_exact(len).map_err(|_| AllocError { bytes })?;
    v.resize(len, value);
    Ok(v)
}

/// An empty vector with room for `len` entries, or the bytes it would have needed.
pub fn with_capacity<T>(len: usize) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    v.try_reserve_exact(len).map_err(|_| AllocError { bytes })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_request_is_an_error_with_its_size() {
        let e = filled(usize::MAX / 16, 0.0f64).err();
        assert_eq!(
            e.map(|e| e.bytes),
            Some((usize::MAX / 16).saturating_mul(8))
        );
        assert_eq!(filled(3, 1.5), Ok(vec![1.5; 3]));
        assert!(with_capacity::<f64>(4).is_ok_and(|v| v.capacity() >= 4));
    }
}
