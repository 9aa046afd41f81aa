//! Reading a plugin descriptor's tables into owned [`FunctionInfo`] / [`SolverInfo`] values,
//! validating names, parameter tables and breakpoints on the way.

use crate::diag::{Diag, Diags};
use crate::registry::{
    read_str, FunctionInfo, OptionInfo, ParamInfo, PluginSource, SolverInfo, MAX_PARAMS,
};
use mcopt_plugin_sdk::abi::{
    FunctionDescriptor, Kind, OptionType, PluginDescriptor, Smoothness, SolverDescriptor,
    CAP_FUNCTIONS,
};
use std::collections::HashSet;

const CODE: &str = "mcopt::plugin::descriptor";

/// Whether `name` can be written in a model: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The functions of `desc` with their descriptors.
///
/// # Safety
/// `desc` must be laid out as the SDK's and alive for the rest of the process.
pub(crate) unsafe fn functions(
    desc: &'static PluginDescriptor,
    source: &PluginSource,
    where_: &str,
) -> Result<Vec<(FunctionInfo, &'static FunctionDescriptor)>, Diags> {
    let mut diags = Diags::new();
    let mut out = Vec::new();
    if desc.capabilities & CAP_FUNCTIONS == 0 {
        return Ok(out);
    }
    let mut seen = HashSet::new();
    // SAFETY: the caller guarantees an SDK-layout descriptor alive for the whole process.
    for fd in unsafe { desc.functions() } {
        // SAFETY: `fd` is an entry of that descriptor's table, alive as long as it is.
        match unsafe { function(fd, source, where_) } {
            Ok(info) => {
                if !seen.insert(info.name.clone()) {
                    diags.push(Diag::new(
                        CODE,
                        format!("function `{}` is defined twice in {where_}", info.name),
                    ));
                }
                out.push((info, fd));
            }
            Err(d) => diags.push(d),
        }
    }
    diags.finish(out)
}

/// # Safety
/// `fd` must be laid out as the SDK's, with live tables and strings.
unsafe fn function(
    fd: &FunctionDescriptor,
    source: &PluginSource,
    where_: &str,
) -> Result<FunctionInfo, Diag> {
    // SAFETY (every table and string read below): the caller guarantees a well-formed,
    // live descriptor, whose strings, parameter and breakpoint tables are alive with it.
    // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
    let name = unsafe { read_str(fd.name, "a function name", where_) }?;
    if !is_identifier(&name) {
        return Err(Diag::new(
            CODE,
            format!("function name expected to be an identifier, found `{name}` in {where_}"),
        ));
    }
    let mut params = Vec::new();
    // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
    for p in unsafe { fd.params() } {
        params.push(ParamInfo {
            // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
            name: unsafe { read_str(p.name, "a parameter name", where_) }?,
            default: (p.has_default != 0).then_some(p.default),
        });
    }
    if params.len() > MAX_PARAMS {
        return Err(Diag::new(
            CODE,
            format!("function `{name}` in {where_} declares {} parameters, at most {MAX_PARAMS} are supported", params.len()),
        ));
    }
    // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
    let breakpoints = unsafe { fd.breakpoints() }.to_vec();
    let ascending = breakpoints.windows(2).all(|w| w[0] < w[1]);
    if !ascending || breakpoints.iter().any(|b| !b.is_finite()) {
        return Err(Diag::new(
            CODE,
            format!("function `{name}` in {where_}: breakpoints expected finite and strictly ascending, found {breakpoints:?}"),
        ));
    }
    let kind = Kind::from_u32(fd.kind).ok_or_else(|| {
        Diag::new(CODE, format!("function `{name}` in {where_}: kind 0 (activation) or 1 (penalty) expected, found {}", fd.kind))
    })?;
    let smoothness = Smoothness::from_u32(fd.smoothness).ok_or_else(|| {
        Diag::new(
            CODE,
            format!(
                "function `{name}` in {where_}: smoothness class 0, 1 or 2 expected, found {}",
                fd.smoothness
            ),
        )
    })?;
    Ok(FunctionInfo {
        name,
        kind,
        smoothness,
        params,
        breakpoints,
        has_prox: fd.prox.is_some(),
        source: source.clone(),
    })
}

/// The solvers of `desc` with their entry points.
///
/// # Safety
/// As for [`functions`].
pub(crate) unsafe fn solvers(
    desc: &'static PluginDescriptor,
    source: &PluginSource,
    where_: &str,
) -> Result<Vec<(SolverInfo, &'static SolverDescriptor)>, Diags> {
    let mut diags = Diags::new();
    let mut out: Vec<(SolverInfo, &'static SolverDescriptor)> = Vec::new();
    // SAFETY (every table and string read in this loop): the caller guarantees an SDK-layout
    // descriptor alive for the whole process, whose tables and strings are alive with it.
    // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
    for sd in unsafe { desc.solvers() } {
        let info = (|| -> Result<SolverInfo, Diag> {
            // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
            let name = unsafe { read_str(sd.name, "a solver name", where_) }?;
            if !is_identifier(&name) {
                return Err(Diag::new(
                    CODE,
                    format!("solver name expected to be an identifier, found `{name}` in {where_}"),
                ));
            }
            let mut options = Vec::new();
            // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
            for o in unsafe { sd.options() } {
                // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
                let oname = unsafe { read_str(o.name, "an option name", where_) }?;
                let ty = OptionType::from_u32(o.ty).ok_or_else(|| {
                    Diag::new(CODE, format!("option `{oname}` of solver `{name}` in {where_}: type 0, 1, 2 or 3 expected, found {}", o.ty))
                })?;
                let mut choices = Vec::new();
                // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
                for c in unsafe { o.choice_names() } {
                    // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
                    choices.push(unsafe { read_str(*c, "a choice name", where_) }?);
                }
                if (ty == OptionType::Choice) == choices.is_empty() {
                    return Err(Diag::new(CODE, format!("option `{oname}` of solver `{name}` in {where_}: names of choices expected exactly for a choice option")));
                }
                if o.lo.is_nan() || o.hi.is_nan() || !o.admits(o.default) {
                    return Err(Diag::new(CODE, format!("option `{oname}` of solver `{name}` in {where_}: default {} outside its range {}", o.default, o.range_text())));
                }
                options.push(OptionInfo {
                    name: oname,
                    ty,
                    default: o.default,
                    // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
                    description: unsafe {
                        read_str(o.description, "an option description", where_)
                    }?,
                    range: o.range_text(),
                    bounds: (o.lo, o.hi, o.open),
                    choices,
                });
            }
            let mut metrics = Vec::new();
            // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
            for m in unsafe { sd.metrics() } {
                // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
                let m = unsafe { read_str(*m, "a metric name", where_) }?;
                if !is_identifier(&m) {
                    return Err(Diag::new(CODE, format!("metric name of solver `{name}` expected to be an identifier, found `{m}` in {where_}")));
                }
                metrics.push(m);
            }
            Ok(SolverInfo {
                name,
                // SAFETY: the caller guarantees an SDK-layout descriptor alive for the process, with its strings and tables (see the note on this loop).
                description: unsafe { read_str(sd.description, "a solver description", where_) }?,
                options,
                metrics,
                requires: sd.requires,
                source: source.clone(),
            })
        })();
        match info {
            Ok(info) if out.iter().any(|(s, _)| s.name == info.name) => {
                diags.push(Diag::new(
                    CODE,
                    format!("solver `{}` is defined twice in {where_}", info.name),
                ));
            }
            Ok(info) => out.push((info, sd)),
            Err(d) => diags.push(d),
        }
    }
    diags.finish(out)
}
