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

/// The memory this process may still take: the kernel's `MemAvailable` (`/proc/meminfo`),
/// lowered to what the cgroup's `memory.max` leaves above its `memory.current` where one is
/// set; `None` where neither can be read (then nothing is refused for want of memory).
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    let cgroup =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Why a byte count does not parse; its `Display` is the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BytesError {
    /// No digits before the unit.
    NotANumber(String),
    /// A unit other than K, M, G, T (with an optional `B` or `iB`) or B.
    UnknownUnit(String),
    /// Zero, or 16 EiB or more.
    OutOfRange(String),
}

impl std::fmt::Display for BytesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BytesError::NotANumber(t) => {
                write!(f, "`{t}` is not a byte count (digits and K, M, G or T)")
            }
            BytesError::UnknownUnit(u) => write!(f, "unknown unit `{u}` (use K, M, G or T)"),
            BytesError::OutOfRange(t) => {
                write!(f, "`{t}` is not a positive byte count below 16 EiB")
            }
        }
    }
}

impl std::error::Error for BytesError {}

/// A byte count as given on a command line: digits, optionally followed by `K`, `M`, `G` or
/// `T` (powers of 1024, with an optional `B` or `iB`), or a plain `B`: `4G`, `512MiB`, `1000000`.
pub fn parse_bytes(text: &str) -> Result<u64, BytesError> {
    let t = text.trim();
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = t.split_at(digits);
    let value: u64 = number
        .parse()
        .map_err(|_| BytesError::NotANumber(text.to_owned()))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KB" | "KiB" | "k" | "kB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        "T" | "TB" | "TiB" => 40,
        other => return Err(BytesError::UnknownUnit(other.to_owned())),
    };
    value
        .checked_mul(1u64 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| BytesError::OutOfRange(text.to_owned()))
}

/// "1234567 bytes (1.2 MiB)".
pub fn bytes_shown(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{bytes} bytes ({v:.1} {})", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_units() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512MB"), Ok(512 << 20));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("4X").is_err());
        assert!(parse_bytes("G").is_err());
        assert!(parse_bytes("99999999T").is_err());
    }

    #[test]
    fn available_memory_is_read_on_linux() {
        assert!(available().is_some_and(|b| b > 0));
    }

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
