//! The plugin host: loading shared libraries (the only place libloading appears), discovery
//! on the search path, the self-test, and the data behind `mcopt plugins list|check`.

pub mod read;
