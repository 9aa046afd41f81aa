//! Finding plugin libraries: `--plugin PATH_OR_NAME` (CLI), `plugins:` lists in run files, and
//! the directories of `MCOPT_PLUGIN_PATH`.
//!
//! A spec that contains a path separator or ends in `.so`, `.dylib` or `.dll` is a path, used
//! as given: relative to the current directory for the CLI, to the run file's directory for a
//! run file (joined here, once). Anything else is a plugin name: a built-in name (`std`) names
//! the plugin linked into mcopt and is never searched for, so no library on the search path
//! can shadow it; other names are looked up in the search directories only, never in the
//! current directory.

use crate::diag::{Diag, Diags};
use crate::registry::Registry;
use std::path::{Path, PathBuf};

/// The environment variable holding extra plugin directories (colon-separated).
pub const PLUGIN_PATH_VAR: &str = "MCOPT_PLUGIN_PATH";

/// Names of the plugins linked into mcopt (the standard plugin, by its short and crate
/// names). Asking for one loads nothing: it is already there.
pub const BUILTIN_PLUGINS: &[&str] = &["std", "mcopt_std", "mcopt-std"];

/// What a request resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A plugin linked into mcopt (see [`BUILTIN_PLUGINS`]).
    Builtin,
    /// A library file to load.
    Library(PathBuf),
}

/// Where a plugin request came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--plugin` on the command line: relative paths are relative to the current directory.
    Cli,
    /// A run file's `plugins:` list: relative paths are relative to the run file's directory.
    RunFile(PathBuf),
}

/// One requested plugin: a path (contains a `/` or ends in a library suffix) or a bare name
/// (`swish`, `std`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRequest {
    pub spec: String,
    pub origin: Origin,
}

/// Everything the user asked for, plus where to look for bare names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginSearch {
    pub requests: Vec<PluginRequest>,
    /// The value of `MCOPT_PLUGIN_PATH`, if set.
    pub env_path: Option<String>,
    /// Directories searched after `env_path` (by default the directory of the mcopt executable,
    /// where the plugins it ships live).
    pub shipped_dirs: Vec<PathBuf>,
}

impl PluginSearch {
    /// A search reading `MCOPT_PLUGIN_PATH` and shipping-directory from the environment.
    pub fn from_env() -> PluginSearch {
        let shipped_dirs = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .into_iter()
            .collect();
        PluginSearch {
            requests: Vec::new(),
            env_path: std::env::var(PLUGIN_PATH_VAR).ok(),
            shipped_dirs,
        }
    }

    /// Add a `--plugin` argument.
    pub fn add_cli(&mut self, spec: impl Into<String>) {
        self.requests.push(PluginRequest {
            spec: spec.into(),
            origin: Origin::Cli,
        });
    }

    /// Add an entry of a run file's `plugins:` list; `run_file_dir` is the run file's directory.
    pub fn add_run_file(&mut self, spec: impl Into<String>, run_file_dir: &Path) {
        self.requests.push(PluginRequest {
            spec: spec.into(),
            origin: Origin::RunFile(run_file_dir.to_path_buf()),
        });
    }

    /// The directories a bare name is looked up in, in order.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let env = self.env_path.as_deref().unwrap_or("");
        env.split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .chain(self.shipped_dirs.iter().cloned())
            .collect()
    }

    /// The library file for one request (or the built-in plugin it names), or a diagnostic
    /// listing every path tried.
    pub fn resolve(&self, req: &PluginRequest) -> Result<Resolved, Diag> {
        if !is_path(&req.spec) && BUILTIN_PLUGINS.contains(&req.spec.as_str()) {
            return Ok(Resolved::Builtin);
        }
        let tried = candidates(req, &self.search_dirs());
        // A path is used as given whatever it is, so loading can say what it found there (a
        // directory, a device); a bare name only finds files.
        let usable = |p: &&PathBuf| p.is_file() || (is_path(&req.spec) && p.exists());
        if let Some(found) = tried.iter().find(usable) {
            return Ok(Resolved::Library(found.clone()));
        }
        let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        let tried_text = if list.is_empty() {
            "no search directories are set".to_string()
        } else {
            // One path per line, so that rendering never breaks a path.
            format!("tried:\n  {}", list.join("\n  "))
        };
        let mut d = Diag::new(
            "mcopt::plugin::not_found",
            format!(
                "plugin library `{}` expected, not found; {tried_text}",
                req.spec
            ),
        );
        d = if is_path(&req.spec) {
            d.help("check the path")
        } else {
            d.help(format!(
                "give a path to the library, or add its directory to {PLUGIN_PATH_VAR} (colon-separated)"
            ))
        };
        Err(d)
    }

    /// The library files of every request (built-in plugins are already loaded and left out;
    /// duplicates by canonical path are dropped), collecting diagnostics.
    pub fn resolve_all(&self) -> Result<Vec<PathBuf>, Diags> {
        let mut diags = Diags::new();
        let mut out: Vec<PathBuf> = Vec::new();
        for req in &self.requests {
            match self.resolve(req) {
                Ok(Resolved::Builtin) => {}
                Ok(Resolved::Library(p)) => {
                    let canon = std::fs::canonicalize(&p).unwrap_or(p);
                    if !out.contains(&canon) {
                        out.push(canon);
                    }
                }
                Err(d) => diags.push(d),
            }
        }
        diags.finish(out)
    }
}

/// Load every requested plugin into `registry`, collecting every diagnostic.
pub fn load_all(registry: &mut Registry, search: &PluginSearch) -> Result<(), Diags> {
    let (paths, mut diags) = match search.resolve_all() {
        Ok(p) => (p, Diags::new()),
        Err(d) => (Vec::new(), d),
    };
    for p in paths {
        if let Err(d) = registry.load_library(&p) {
            diags.0.extend(d.0);
        }
    }
    diags.finish(())
}

/// Whether a spec names a path rather than a plugin: it contains a path separator or ends
/// in a shared-library suffix of any platform.
pub fn is_path(spec: &str) -> bool {
    spec.contains('/')
        || spec.contains('\\')
        || spec.contains(std::path::MAIN_SEPARATOR)
        || [".so", ".dylib", ".dll"].iter().any(|s| spec.ends_with(s))
}

/// File names a bare name may have: `libswish.so`, `libmcopt_swish.so`, `swish.so` (with the
/// platform's prefix and suffix).
pub fn file_names(name: &str) -> Vec<String> {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    let mut v = vec![
        format!("{DLL_PREFIX}{name}{DLL_SUFFIX}"),
        format!("{DLL_PREFIX}mcopt_{name}{DLL_SUFFIX}"),
        format!("{name}{DLL_SUFFIX}"),
    ];
    v.dedup();
    v
}

/// Every path a request may resolve to, in order.
fn candidates(req: &PluginRequest, dirs: &[PathBuf]) -> Vec<PathBuf> {
    if is_path(&req.spec) {
        let p = PathBuf::from(&req.spec);
        let p = match (&req.origin, p.is_absolute()) {
            (Origin::RunFile(dir), false) => dir.join(p),
            _ => p,
        };
        return vec![p];
    }
    let names = file_names(&req.spec);
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .collect()
}
