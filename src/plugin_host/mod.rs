//! The plugin host: loading shared libraries (the only place libloading appears), discovery
//! on the search path, the self-test, and the data behind
//! `mcopt plugins list|check`.

pub mod discover;
pub mod elf;
pub mod listing;
pub mod load;
pub mod selftest;

pub use discover::{
    file_names, is_path, load_all, Origin, PluginRequest, PluginSearch, Resolved, BUILTIN_PLUGINS,
    PLUGIN_PATH_VAR,
};
pub use listing::{
    plugins_check, plugins_check_builtin, plugins_list, CheckReport, FunctionCheck,
    FunctionListing, PluginList, SolverListing,
};
pub use load::LoadOptions;
pub use selftest::{self_test, Failure, SelfTestReport};
