//! Build script: one configuration flag, `mcopt_avx512`, set when the compiler has stable
//! AVX-512 target features (Rust 1.89 and later). The crate's minimum Rust is older, so the
//! AVX-512 product kernel (`src/eval/linalg/avx512.rs`) is compiled only with this flag; with
//! an older compiler the AVX kernels serve every processor, with the same results to the bit.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rustc-check-cfg=cfg(mcopt_avx512)");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    // "rustc 1.95.0 (…)": the minor version.
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo:rustc-cfg=mcopt_avx512");
    }
}
