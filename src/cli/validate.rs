//! `mcopt validate`: the named checks a CI job gates on, as text or JSON, and as JUnit XML.

use std::path::Path;

use clap::Args as ClapArgs;
use mcopt::config::RunFile;
use mcopt::diag::Diags;
use mcopt::report;
use mcopt::session::validate::{validate_with, ValidateRequest};

use super::stationarity::EXIT_FAILED;
use super::{InputArgs, EXIT_OK};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Model file (.mco); may be omitted when the run file (--config) names one.
    pub model: Option<String>,
    /// Point file (YAML) with the trained parameters (and, for p0/p1, optionally layer values).
    #[arg(long)]
    pub params: String,
    /// 1: first-order certificate; 2: also second order (default: the run file's, else 1).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub order: Option<u8>,
    /// Tolerance of the certificate (default: the run file's `validate.tol`, else 1e-6).
    #[arg(long)]
    pub tol: Option<f64>,
    /// Write a JUnit XML report (one test case per check) to FILE, atomically.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<String>,
    /// A point that is not stationary is a warning, not a failure.
    #[arg(long)]
    pub allow_not_stationary: bool,
    /// An inconclusive certificate is a warning, not a failure.
    #[arg(long)]
    pub allow_inconclusive: bool,
    #[command(flatten)]
    pub input: InputArgs,
}

pub fn run(model: &str, run: Option<&RunFile>, a: &Args) -> Result<u8, Diags> {
    let req = ValidateRequest {
        params: a.params.clone(),
        order: a.order,
        tol: a.tol,
        ztol: a.input.ztol,
        allow_not_stationary: a.allow_not_stationary,
        allow_inconclusive: a.allow_inconclusive,
    };
    let (validation, result) = validate_with(model, &a.input.inputs(), run, &req);
    if let Some(path) = &a.junit {
        let xml = report::junit::validation(&validation, model).map_err(|e| {
            Diags::from(mcopt::diag::Diag::new(
                "mcopt::report::junit",
                format!("cannot write the JUnit report: {e}"),
            ))
        })?;
        mcopt::atomic::write(Path::new(path), &xml)?;
    }
    result?;
    if a.input.json {
        let bytes = report::json::to_bytes(&report::json::validation(&validation));
        out_raw!("{}", String::from_utf8_lossy(&bytes));
    } else {
        for c in &validation.checks {
            let status = format!("{:?}", c.status).to_lowercase();
            out!(
                "{status:<8} {:<26} {} ({:.3} s)",
                c.name,
                c.message,
                c.seconds
            );
        }
        out!(
            "{}",
            if validation.passed {
                "passed"
            } else {
                "FAILED"
            }
        );
    }
    Ok(if validation.passed {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}
