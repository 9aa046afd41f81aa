//! The integration tests, one crate (each file a module) so the library is linked once.
//! `cargo test --test it NAME::` runs one former file.

#[path = "../../plugins/std/tests/clarabel_ref/mod.rs"]
mod clarabel_ref;
#[path = "../common/mod.rs"]
mod common;
#[path = "../cli/support.rs"]
mod support;

mod autolift;
mod batch;
mod cert_corpus;
mod check_bench;
mod check_corpus;
mod check_fuzz;
mod check_linear;
mod cli_certs;
mod cli_errors;
mod cli_hardening;
mod cli_run;
mod cli_validate;
mod config_bind;
mod config_examples;
mod config_fixtures;
mod config_point;
mod config_run;
mod data_binding;
mod derivatives;
mod error_codes;
mod form_beta;
mod forms;
mod hardening_inputs;
mod lang_pow;
mod lang_sizes;
mod no_crash;
mod nonsmooth_examples;
mod norm2;
mod parse_bench;
mod parse_corpus;
mod parse_docs;
mod parse_fuzz;
mod parse_limits;
mod parse_spans;
mod plugins_cli;
mod plugins_load;
mod plugins_model;
mod plugins_paths;
mod plugins_registry;
mod plugins_selftest;
mod plugins_solver;
mod products;
mod run_model;
mod scratch;
mod session_api;
mod srpa;
mod srpa_train;
mod stationarity;
mod stationarity_likq;
mod stationarity_maxtype;
mod stationarity_props;
mod stationarity_second;
mod sweep;
mod sweep_reliability;
mod test_error;
mod timit_shape;
mod train_batches;
mod train_cli;
mod train_iterates;
mod train_outputs;
mod train_signals;
mod train_trace;
