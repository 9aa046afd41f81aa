//! The plugin author's guide (written in full below).
