//! The example and fixture plugins built as shared libraries, once per test binary, into
//! their own target directory (`target/plugin-fixtures`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every function of the standard plugin, as the SDK guide (`plugins/sdk/src/guide.rs`) lists them.
pub const STANDARD_FUNCTIONS: [&str; 11] = [
    "relu",
    "leaky_relu",
    "elu",
    "tanh",
    "sigmoid",
    "softplus",
    "l1",
    "huber",
    "mcp",
    "scad",
    "capped_l1",
];

/// The directory holding the built plugin libraries.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugin-fixtures");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.arg("build").arg("--target-dir").arg(&target);
        for p in [
            "mcopt-swish",
            "mcopt-momentum",
            "mcopt-polyak",
            "mcopt-fixture-misbehaving",
            "mcopt-fixture-wrong-abi",
            "mcopt-fixture-no-entry",
            "mcopt-fixture-duplicate",
            "mcopt-fixture-marker",
            "mcopt-std",
        ] {
            cmd.args(["-p", p]);
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the plugin fixtures failed");
        target.join("debug")
    })
}

/// The shared library of crate `crate_name` (`mcopt_swish`, `mcopt_fixture_no_entry`, ...).
pub fn lib(crate_name: &str) -> PathBuf {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    lib_dir().join(format!("{DLL_PREFIX}{crate_name}{DLL_SUFFIX}"))
}
