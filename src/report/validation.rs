//! The result of `mcopt validate`: named checks with their status, message and time.

/// The status of one `validate` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// A stationarity failure allowed by `--allow-not-stationary` or `--allow-inconclusive`.
    Warn,
    Skipped,
}

/// One named check of `mcopt validate`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    pub message: String,
    pub seconds: f64,
    /// The certificate's tolerance on slopes and curvatures (stationarity checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// The kink tolerance of the certificate (stationarity checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ztol: Option<f64>,
}

/// The result of `mcopt validate`: passed when no check failed (warnings allowed).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Validation {
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Validation {
    pub fn new(checks: Vec<Check>) -> Validation {
        let passed = checks.iter().all(|c| c.status != CheckStatus::Fail);
        Validation { passed, checks }
    }
}
