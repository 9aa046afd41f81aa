//! The data behind `mcopt plugins list` and `mcopt plugins check LIB`: plain serializable
//! structs with a text rendering; printing and exit codes stay in the CLI.

use crate::diag::Diags;
use crate::plugin_host::load::open_descriptor;
use crate::plugin_host::selftest::{self_test, SelfTestReport};
use crate::registry::{FunctionKind, OptionInfo, ParamInfo, Registry, Smoothness};
use mcopt_plugin_sdk::abi::PluginDescriptor;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One function in `mcopt plugins list`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FunctionListing {
    pub name: String,
    /// "activation" or "penalty".
    pub kind: &'static str,
    /// "smooth", "C1" or "piecewise".
    pub smoothness: &'static str,
    pub params: Vec<ParamInfo>,
    pub breakpoints: Vec<f64>,
    pub has_prox: bool,
    pub plugin: String,
    pub version: String,
    /// Library path, or "built in".
    pub library: String,
}

/// One solver in `mcopt plugins list`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SolverListing {
    pub name: String,
    pub description: String,
    pub options: Vec<OptionInfo>,
    pub plugin: String,
    pub version: String,
    pub library: String,
}

/// Everything `mcopt plugins list` shows, sorted by name.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PluginList {
    pub functions: Vec<FunctionListing>,
    pub solvers: Vec<SolverListing>,
}

fn kind_name(k: FunctionKind) -> &'static str {
    match k {
        FunctionKind::Activation => "activation",
        FunctionKind::Penalty => "penalty",
    }
}

fn smoothness_name(s: Smoothness) -> &'static str {
    match s {
        Smoothness::Smooth => "smooth",
        Smoothness::C1 => "C1",
        Smoothness::Piecewise => "piecewise",
    }
}

fn library_name(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map_or("built in".to_string(), |p| p.display().to_string())
}

/// The listing of every function and solver in `registry`.
pub fn plugins_list(registry: &Registry) -> PluginList {
    let mut functions: Vec<FunctionListing> = registry
        .function_ids()
        .map(|id| {
            let i = registry.info(id);
            FunctionListing {
                name: i.name.clone(),
                kind: kind_name(i.kind),
                smoothness: smoothness_name(i.smoothness),
                params: i.params.clone(),
                breakpoints: i.breakpoints.clone(),
                has_prox: i.has_prox,
                plugin: i.source.plugin.clone(),
                version: i.source.version.clone(),
                library: library_name(&i.source.library),
            }
        })
        .collect();
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    let mut solvers: Vec<SolverListing> = registry
        .solvers
        .iter()
        .map(|s| SolverListing {
            name: s.info.name.clone(),
            description: s.info.description.clone(),
            options: s.info.options.clone(),
            plugin: s.info.source.plugin.clone(),
            version: s.info.source.version.clone(),
            library: library_name(&s.info.source.library),
        })
        .collect();
    solvers.sort_by(|a, b| a.name.cmp(&b.name));
    PluginList { functions, solvers }
}

fn params_text(params: &[ParamInfo]) -> String {
    let shown: Vec<String> = params
        .iter()
        .map(|p| match p.default {
            Some(d) => format!(", {} = {d}", p.name),
            None => format!(", {}", p.name),
        })
        .collect();
    format!("(x{})", shown.concat())
}

/// An option's default as the user writes it in a run file: `true`/`false` for a bool.
fn default_text(o: &OptionInfo) -> String {
    match o.ty {
        crate::registry::OptionType::Bool => (o.default != 0.0).to_string(),
        crate::registry::OptionType::Choice => {
            let k = o.default as usize;
            o.choices.get(k).cloned().unwrap_or_default()
        }
        _ => o.default.to_string(),
    }
}

impl PluginList {
    /// The human-readable listing.
    pub fn render_text(&self) -> String {
        let mut s = String::from("functions:\n");
        for f in &self.functions {
            let prox = if f.has_prox { ", prox" } else { "" };
            let _ = writeln!(
                s,
                "  {}{}  {} {}{prox}  [{} {}, {}]",
                f.name,
                params_text(&f.params),
                f.smoothness,
                f.kind,
                f.plugin,
                f.version,
                f.library
            );
        }
        s.push_str("solvers:\n");
        for v in &self.solvers {
            let _ = writeln!(
                s,
                "  {}  {}  [{} {}, {}]",
                v.name, v.description, v.plugin, v.version, v.library
            );
            for o in &v.options {
                let ty = crate::registry::option_type_name(o.ty);
                let range = if !o.choices.is_empty() {
                    format!(", one of {}", o.choices.join(", "))
                } else if o.range.is_empty() {
                    String::new()
                } else {
                    format!(", {}", o.range)
                };
                let _ = writeln!(
                    s,
                    "    {} ({ty}, default {}{range}): {}",
                    o.name,
                    default_text(o),
                    o.description
                );
            }
        }
        s
    }
}

/// What `mcopt plugins check LIB` reports for a library that passes.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckReport {
    pub library: String,
    pub plugin: String,
    pub version: String,
    pub abi_version: u32,
    pub functions: Vec<FunctionCheck>,
    pub solvers: Vec<String>,
}

/// One function's self-test in a [`CheckReport`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FunctionCheck {
    pub name: String,
    pub rays_checked: usize,
}

impl CheckReport {
    pub fn render_text(&self) -> String {
        let mut s = format!(
            "{}: plugin {} {} (ABI {}): ok\n",
            self.library, self.plugin, self.version, self.abi_version
        );
        for f in &self.functions {
            let _ = writeln!(
                s,
                "  function {}: {} rays checked, all passed",
                f.name, f.rays_checked
            );
        }
        for v in &self.solvers {
            let _ = writeln!(s, "  solver {v}");
        }
        s
    }
}

/// Load the library at `path` on its own (no other plugins), self-test every function, and
/// report; any failure (not found, not a library, no entry, ABI, descriptor, self-test) is a
/// diagnostic.
pub fn plugins_check(path: &Path) -> Result<CheckReport, Diags> {
    let (desc, path) = open_descriptor(path)?;
    // SAFETY: descriptor from the entry symbol with a matching ABI version; never unloaded.
    unsafe { check_descriptor(desc, Some(path)) }
}

/// [`plugins_check`] for the standard plugin linked into mcopt (`mcopt plugins check std`):
/// its descriptor is registered as a loaded library's would be (outputs checked, not trusted)
/// and self-tested.
pub fn plugins_check_builtin() -> Result<CheckReport, Diags> {
    // SAFETY: the standard plugin's descriptor is static data built by the SDK.
    unsafe { check_descriptor(mcopt_std::descriptor(), None) }
}

/// Register `desc` in a scratch registry, self-test every function and report.
///
/// # Safety
/// `desc` must point to a descriptor laid out as the SDK's, alive for the rest of the process.
unsafe fn check_descriptor(
    desc: &'static PluginDescriptor,
    library: Option<PathBuf>,
) -> Result<CheckReport, Diags> {
    let mut scratch = Registry::empty();
    // SAFETY: the caller's guarantee.
    unsafe { scratch.register(desc, library.clone(), false)? };
    let ids: Vec<_> = scratch.function_ids().collect();
    let report: SelfTestReport = self_test(&scratch, &ids).into_result()?;
    let source = scratch.plugins()[0].clone();
    Ok(CheckReport {
        library: library_name(&library),
        plugin: source.plugin,
        version: source.version,
        abi_version: desc.abi_version,
        functions: report
            .checked
            .into_iter()
            .map(|(name, rays_checked)| FunctionCheck { name, rays_checked })
            .collect(),
        solvers: scratch
            .solver_names()
            .into_iter()
            .map(str::to_string)
            .collect(),
    })
}
