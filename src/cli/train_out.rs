//! What `mcopt train` writes (where: `mcopt::session::outputs`): the progress bar (indicatif,
//! on a terminal only), and the outputs, each written atomically (temporary
//! file in the same directory, fsync, rename): `params.yaml`, `plot.svg`, the checkpoint and,
//! last, `report.json` (`trace.csv` is appended to as the run goes: `mcopt::session::record`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mcopt::solve::{Observer, Row};

use mcopt::session::outputs::Report;

/// The progress bar: iteration, objective, train and test loss, time left.
pub struct Progress {
    bar: ProgressBar,
    /// When the message was last set (it is set at most every [`MESSAGE_EVERY`]).
    shown: Option<std::time::Instant>,
}

/// How often the bar's message (objective and losses) is formatted again.
const MESSAGE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Progress {
    /// A bar drawn on stderr only when `show` and stderr is a terminal (hidden in CI and pipes).
    pub fn new(max_iter: u64, show: bool) -> Progress {
        let target = if show && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(max_iter), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30} {pos}/{len} iterations  {msg}  [{elapsed_precise} elapsed, {eta} left]",
        ) {
            bar.set_style(style);
        }
        Progress { bar, shown: None }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn row(&mut self, row: &Row) {
        // Off a terminal (and with --quiet) nothing is drawn: no text to format per row.
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_position(row.iter);
        if self.shown.is_some_and(|t| t.elapsed() < MESSAGE_EVERY) {
            return;
        }
        self.shown = Some(std::time::Instant::now());
        let test = row
            .test_loss
            .map_or(String::new(), |t| format!("  test {t:.6e}"));
        self.bar.set_message(format!(
            "objective {:.6e}  train {:.6e}{test}",
            row.objective, row.train_loss
        ));
    }
}

/// The certificate of the final point in a few lines: each verdict with its method and, when
/// not stationary, the slope or curvature of its witness (the whole witness is in report.json).
fn certificate_lines(c: &serde_json::Value) -> String {
    let form = c["form"].as_str().unwrap_or("p");
    let mut s = format!(
        "certificate of the final point, form ({}):\n",
        form.to_uppercase()
    );
    for key in ["first_order", "second_order"] {
        let v = &c[key];
        let Some(status) = v["status"].as_str() else {
            continue;
        };
        s.push_str(&format!(
            "  {key:<13} {status}  (method {}, {})",
            v["method"].as_str().unwrap_or("?"),
            mcopt::text::plural(
                usize::try_from(v["active_kinks"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX),
                "active kink",
                "active kinks"
            )
        ));
        if let Some(x) = v["slope"].as_f64() {
            s.push_str(&format!(
                ", slope {x:.6e} along the witness (in the report)"
            ));
        }
        if let Some(x) = v["curvature"].as_f64() {
            s.push_str(&format!(
                ", curvature {x:.6e} along the witness (in the report)"
            ));
        }
        if let Some(r) = v["reason"].as_str() {
            s.push_str(&format!("; {r}"));
        }
        s.push('\n');
    }
    s
}

/// The text summary printed after a run (without `--json`).
pub fn summary(r: &Report) -> String {
    let mut s = format!(
        "{}: {} after {} iterations ({:.3} s, {:.3e} s per iteration)\n",
        r.solver, r.status, r.iterations, r.seconds, r.seconds_per_iteration
    );
    if let Some(k) = r.diverged_at {
        s.push_str(&format!(
            "iteration {k} was not finite; the outputs hold iteration {}\n",
            r.iterations
        ));
    }
    if let Some(why) = &r.reason {
        s.push_str(&format!("reason      {why}\n"));
    }
    s.push_str(&format!("objective   {:.12}\n", r.objective));
    s.push_str(&format!("train_loss  {:.12}\n", r.train_loss));
    if let Some(t) = r.test_loss {
        s.push_str(&format!("test_loss   {t:.12}\n"));
    }
    for (name, path) in &r.outputs {
        s.push_str(&format!("{name:<11} {path}\n"));
    }
    if let Some(c) = &r.certificate {
        s.push_str(&certificate_lines(c));
    }
    s
}
