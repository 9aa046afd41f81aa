//! Opening a plugin library: the only code that touches libloading. Checks the ABI version
//! before anything else, self-tests every function, then registers the plugin. A library,
//! once opened, is never unloaded (its code may still be referenced).

use crate::diag::{Diag, Diags};
use crate::plugin_host::selftest::{self_test, SelfTestReport};
use crate::registry::{FunctionId, Registry};
use mcopt_plugin_sdk::abi::{
    EntryFn, PluginDescriptor, ABI_VERSION, ENTRY_SYMBOL, ENTRY_SYMBOL_NUL,
};
use std::path::{Path, PathBuf};

/// How to load a library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Run the self-test and refuse the plugin if it fails (the default).
    pub self_test: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { self_test: true }
    }
}

impl Registry {
    /// Load the plugin library at `path`, self-test it, and register its functions and solvers.
    /// On any diagnostic nothing is registered.
    pub fn load_library(&mut self, path: &Path) -> Result<(), Diags> {
        self.load_library_with(path, LoadOptions::default())
            .map(|_| ())
    }

    /// [`Registry::load_library`] with options; returns the self-test report (empty when the
    /// self-test was skipped).
    pub fn load_library_with(
        &mut self,
        path: &Path,
        options: LoadOptions,
    ) -> Result<SelfTestReport, Diags> {
        let (desc, path) = open_descriptor(path)?;
        let mut report = SelfTestReport::default();
        if options.self_test {
            // Test in a scratch registry so a failing plugin leaves `self` untouched.
            let mut scratch = Registry::empty();
            // SAFETY: `desc` came from the library's entry symbol, its ABI version was checked,
            // and the library is never unloaded.
            unsafe { scratch.register(desc, Some(path.clone()), false)? };
            let ids: Vec<FunctionId> = scratch.function_ids().collect();
            report = self_test(&scratch, &ids);
            report.clone().into_result()?;
        }
        // SAFETY: as above.
        unsafe { self.register(desc, Some(path), false)? };
        Ok(report)
    }
}

/// Open the library at `path` and return its descriptor (ABI version checked) and the absolute
/// path. The library stays loaded for the rest of the process.
pub(crate) fn open_descriptor(path: &Path) -> Result<(&'static PluginDescriptor, PathBuf), Diags> {
    let shown = path.display().to_string();
    check_file(path).map_err(|d| d.in_file(shown.clone()))?;
    // dlopen searches system directories for a name without a slash: always pass a full path.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let entry = open_entry(&path).map_err(|d| d.in_file(shown.clone()))?;
    // SAFETY: calling the entry symbol is what the plugin contract provides for.
    let ptr = unsafe { entry() };
    let desc = check_abi(ptr).map_err(|d| d.in_file(shown))?;
    Ok((desc, path))
}

/// What the loader may be handed: a regular file (not a directory, device or FIFO, which
/// could block or never end) whose ELF headers fit in the file, so that mapping its segments
/// cannot touch a page past its end (SIGBUS).
fn check_file(path: &Path) -> Result<(), Diag> {
    use crate::input::{open_regular, os_error, OpenError};
    let shown = path.display();
    let (mut file, meta) = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => Diag::new(
            "mcopt::plugin::not_found",
            format!("plugin library expected at {shown}, found no such file"),
        ),
        OpenError::Io(e) => Diag::new(
            "mcopt::plugin::read",
            format!(
                "plugin library expected at {shown}, found a file that cannot be read: {}",
                os_error(&e)
            ),
        ),
        OpenError::NotAFile(found) => Diag::new(
            "mcopt::plugin::not_a_file",
            format!("plugin library expected at {shown}, which is {found}"),
        )
        .help("give the path of the library file itself (lib<name>.so)"),
    })?;
    check_headers(&mut file, meta.len())
}

/// The ELF check of [`super::elf`], on platforms whose libraries are ELF files.
#[cfg(not(any(target_os = "macos", target_os = "ios", windows)))]
fn check_headers(file: &mut std::fs::File, len: u64) -> Result<(), Diag> {
    use super::elf::{check_elf, ElfProblem};
    check_elf(file, len).map_err(|p| match p {
        ElfProblem::Foreign(why) => Diag::new(
            "mcopt::plugin::not_a_library",
            format!("not an ELF shared library for this machine: found {why}"),
        )
        .help("build the plugin as a cdylib (crate-type = [\"cdylib\"]) for this platform"),
        ElfProblem::Truncated(why) => Diag::new(
            "mcopt::plugin::truncated",
            format!("a complete plugin library expected, the file is cut short: {why}"),
        )
        .help("the file was cut off (an interrupted copy or download?); build or copy it again"),
        ElfProblem::Io(why) => Diag::new(
            "mcopt::plugin::read",
            format!("a plugin library expected, found a file that cannot be read: {why}"),
        ),
    })
}

/// Other platforms' libraries are left to their loader.
#[cfg(any(target_os = "macos", target_os = "ios", windows))]
fn check_headers(_file: &mut std::fs::File, _len: u64) -> Result<(), Diag> {
    Ok(())
}

/// dlopen the library and find its entry symbol. The library is never unloaded (forgotten).
fn open_entry(path: &Path) -> Result<EntryFn, Diag> {
    // SAFETY: loading a library runs its initializers; mcopt only loads libraries the user named.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        Diag::new(
            "mcopt::plugin::not_a_library",
            format!(
                "a loadable plugin library expected, the loader says: {}",
                error_chain(&e)
            ),
        )
        .help("build the plugin as a cdylib (crate-type = [\"cdylib\"]) for this platform")
    })?;
    // SAFETY: the symbol, if present, has the SDK's entry type.
    let entry = unsafe { lib.get::<EntryFn>(ENTRY_SYMBOL_NUL) }.map(|sym| *sym);
    // Never unload: the descriptor and its function pointers point into the library.
    std::mem::forget(lib);
    entry.map_err(|e| {
        Diag::new(
            "mcopt::plugin::no_entry",
            format!(
                "entry symbol `{ENTRY_SYMBOL}` expected, not found ({})",
                error_chain(&e)
            ),
        )
        .help("export the plugin with mcopt_plugin_sdk::export_plugin!")
    })
}

/// The descriptor behind `ptr`, if its ABI version is ours. Reads the version alone first: the
/// layout behind it may differ.
fn check_abi(ptr: *const PluginDescriptor) -> Result<&'static PluginDescriptor, Diag> {
    if ptr.is_null() {
        return Err(Diag::new(
            "mcopt::plugin::descriptor",
            "plugin descriptor expected, the entry symbol returned null",
        ));
    }
    // SAFETY: every ABI version starts with a u32 version field.
    let abi = unsafe { std::ptr::read(ptr.cast::<u32>()) };
    if abi != ABI_VERSION {
        return Err(Diag::new(
            "mcopt::plugin::abi",
            format!(
                "plugin ABI version {ABI_VERSION} expected, found version {abi} ({})",
                crate::registry::abi_age(abi)
            ),
        )
        .help(format!(
            "rebuild the plugin against the mcopt-plugin-sdk of this mcopt (ABI {ABI_VERSION})"
        )));
    }
    // SAFETY: ABI version matches, so the layout is the SDK's; the library is never unloaded.
    Ok(unsafe { &*ptr })
}

/// An error and all its sources, untruncated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
