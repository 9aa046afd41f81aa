//! JUnit XML of a validation: one test suite `mcopt validate`, one test case per check, in the
//! dialect GitLab and GitHub test reporters read (quick-junit, as cargo-nextest writes it).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{CheckStatus, RenderError, Validation};

/// The report as XML bytes; `name` names the run (the model path, say).
pub fn validation(v: &Validation, name: &str) -> Result<Vec<u8>, RenderError> {
    let mut report = Report::new("mcopt");
    let mut suite = TestSuite::new("mcopt validate");
    suite.add_property(quick_junit::Property::new("model", name));
    // The certificate's tolerances, once (they are the same for both orders).
    if let Some(c) = v.checks.iter().find(|c| c.tol.is_some()) {
        for (key, value) in [("tol", c.tol), ("ztol", c.ztol)] {
            if let Some(x) = value {
                suite.add_property(quick_junit::Property::new(key, x.to_string()));
            }
        }
    }
    let mut total = Duration::ZERO;
    for c in &v.checks {
        let status = match c.status {
            CheckStatus::Pass | CheckStatus::Warn => TestCaseStatus::success(),
            CheckStatus::Fail => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(c.message.as_str()).set_type(c.name);
                s
            }
            CheckStatus::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(c.message.as_str());
                s
            }
        };
        let mut case = TestCase::new(c.name, status);
        case.set_classname(format!("mcopt.validate.{}", c.name));
        let secs = Duration::from_secs_f64(c.seconds.max(0.0));
        case.set_time(secs);
        total += secs;
        let prefix = if c.status == CheckStatus::Warn {
            "warning: "
        } else {
            ""
        };
        case.set_system_out(format!("{prefix}{}", c.message));
        suite.add_test_case(case);
    }
    suite.set_time(total);
    report.add_test_suite(suite);
    report.set_time(total);
    report
        .to_string()
        .map(String::into_bytes)
        .map_err(|e| RenderError::Xml(e.to_string()))
}
