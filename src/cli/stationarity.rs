//! `mcopt stationarity`: the certificate of a point in (P), (P0) or (P1), with its witness;
//! its body is `mcopt::session::certify`; here are the flags, the spinner, printing and exit codes.

use std::path::Path;

use clap::Args as ClapArgs;
use mcopt::config;
use mcopt::diag::{Diag, Diags};
use mcopt::forms::Betas;
use mcopt::registry::Order;
use mcopt::report;
use mcopt::session::certify::{self, check_number, Prepared};
use mcopt::session::{CertifyRequest, FormSpec, Session};
use mcopt::stationarity::{self, Certificate, Status, Verdict};
use mcopt::text::plural;

use super::{InputArgs, EXIT_OK};

/// The check ran and failed.
pub const EXIT_FAILED: u8 = 1;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Model file (.mco); may be omitted when the run file (--config) names one.
    pub model: Option<String>,
    /// Point file (YAML): parameters, and for p0/p1 optionally layer values.
    #[arg(long)]
    pub at: String,
    /// 1: first-order certificate; 2: first and second order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub order: u8,
    #[command(flatten)]
    pub cert: CertArgs,
    /// Write an SVG plot of f(x + t·d) against t along the witness (or the flattest direction).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<String>,
    /// Exit 0 when a verdict is inconclusive.
    #[arg(long)]
    pub allow_inconclusive: bool,
    /// Stop after this many seconds: a verdict not reached by then is inconclusive.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub time_limit: Option<f64>,
    #[command(flatten)]
    pub input: InputArgs,
}

/// Options of a certificate shared by `stationarity` and `reformulate`.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct CertArgs {
    /// Which problem: p (original), p0 (lifted, constrained), p1 (ℓ1 penalty).
    #[arg(long, value_enum, default_value = "p")]
    pub form: FormArg,
    /// Penalty weight of (P1): B for every layer, or NAME=B for one layer group; repeatable.
    #[arg(long = "beta", value_name = "B|NAME=B", allow_negative_numbers = true)]
    pub beta: Vec<String>,
    /// Tolerance on slopes, curvatures and (P0) residuals (> 0).
    #[arg(long, allow_negative_numbers = true)]
    pub tol: Option<f64>,
    /// Largest number of pieces enumerated for nested kinks (2^k for k kinks).
    #[arg(long, default_value_t = 4096)]
    pub max_pieces: usize,
}

/// The form of a certificate on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FormArg {
    #[default]
    P,
    P0,
    P1,
}

impl CertArgs {
    /// The request of these options at `order` (1 or 2), with the evaluator's `ztol`.
    pub fn request(&self, order: u8, ztol: f64) -> Result<CertifyRequest, Diags> {
        Ok(CertifyRequest {
            form: form_spec(self.form, &self.beta)?,
            order: if order == 2 { Order::Two } else { Order::One },
            tol: self.tol,
            ztol,
            max_pieces: self.max_pieces,
            time_limit: None,
        })
    }
}

/// The form of `--form` with β of (P1) from `--beta` (numbers checked here, layer names when
/// the model is lowered); `--beta` is read for (P1) only.
pub fn form_spec(form: FormArg, beta: &[String]) -> Result<FormSpec, Diags> {
    let betas = parse_betas(beta, 1.0)?;
    Ok(match form {
        FormArg::P => FormSpec::P,
        FormArg::P0 => FormSpec::P0,
        FormArg::P1 => FormSpec::P1(betas),
    })
}

/// β of (P1) from `--beta` values (`B` or `NAME=B`).
pub fn parse_betas(args: &[String], default: f64) -> Result<Betas, Diags> {
    let mut betas = Betas::uniform(default);
    for a in args {
        let (name, num) = match a.split_once('=') {
            Some((n, b)) => (Some(n.trim()), b.trim()),
            None => (None, a.trim()),
        };
        let value: f64 = num.parse().map_err(|_| {
            Diags::from(
                Diag::new(
                    "mcopt::cli::value",
                    format!("expected `--beta` to be a number, found `{num}`"),
                )
                .help("write --beta 1.0 or --beta NAME=1.0"),
            )
        })?;
        check_number("--beta", value, value > 0.0, "a positive number")?;
        match name {
            None => betas.default = value,
            Some(n) => {
                betas.per_group.insert(n.to_owned(), value);
            }
        }
    }
    Ok(betas)
}

pub fn run(model: &str, run: Option<&config::RunFile>, a: &Args) -> Result<u8, Diags> {
    let start = std::time::Instant::now();
    let s = Session::open(model, &a.input.inputs(), run)?;
    let mut req = a.cert.request(a.order, a.input.ztol)?;
    req.time_limit = a.time_limit;
    let mut opts = req.options()?;
    // Ctrl-C (or SIGTERM, SIGHUP) stops the tiers: the verdicts not reached are inconclusive.
    opts.interrupt = Some(mcopt::signals::install());
    let prep = certify::prepare(&s, &req.form, Some(&a.at), opts.tol)?;
    let bar = spinner();
    let cert = prep.certify(&s, &opts);
    bar.finish_and_clear();
    let mut cert = cert?;
    stationarity::interrupted_as_inconclusive(&mut cert.first);
    if let Some(v) = &mut cert.second {
        stationarity::interrupted_as_inconclusive(v);
    }
    if let Some(path) = &a.plot {
        let svg = certify::plot(&s, &prep, &cert)?;
        mcopt::atomic::write(Path::new(path), &svg)?;
    }
    // All the work: loading and completing the point, every tier of both orders, the plot.
    cert.seconds = start.elapsed().as_secs_f64();
    if a.input.json {
        let v = report::json::certificate(prep.form, &cert, &prep.specs);
        out_raw!("{}", String::from_utf8_lossy(&report::json::to_bytes(&v)));
    } else {
        print_text(&prep, &cert);
    }
    if let Some(sig) = mcopt::signals::received() {
        return Ok(mcopt::signals::exit_code(sig));
    }
    Ok(exit_code(&cert, a.allow_inconclusive))
}

/// A spinner with the elapsed time on a terminal (stderr), hidden otherwise.
fn spinner() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} certifying  {elapsed_precise}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// 0 when every verdict is stationary (or inconclusive and allowed), else 1.
pub fn exit_code(cert: &Certificate, allow_inconclusive: bool) -> u8 {
    let ok = |v: &Verdict| {
        v.status == Status::Stationary || (allow_inconclusive && v.status == Status::Inconclusive)
    };
    if ok(&cert.first) && cert.second.as_ref().is_none_or(ok) {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

fn print_text(prep: &Prepared, cert: &Certificate) {
    out!("form          {}", prep.form.as_str());
    out!("tol           {:e}", cert.tol);
    out!("ztol          {}", cert.ztol);
    for (label, v) in [
        ("first_order", Some(&cert.first)),
        ("second_order", cert.second.as_ref()),
    ] {
        let Some(v) = v else { continue };
        out!(
            "{label:<13} {}  (method {}, {})",
            v.status.as_str(),
            v.method,
            plural(v.active_kinks, "active kink", "active kinks")
        );
        if let Some(s) = v.slope {
            out!("  slope       {s:.12}");
        }
        if let Some(c) = v.curvature {
            out!("  curvature   {c:.12}");
        }
        if let Some(r) = &v.reason {
            out!("  reason      {r}");
        }
        if let Some(d) = &v.direction {
            out!("  direction (a direction file for `mcopt diff --dir`):");
            let vals = certify::split(&prep.specs, d);
            for line in config::write_point(&prep.specs, &vals).lines() {
                out!("    {line}");
            }
        }
    }
    out!("seconds       {:.6}", cert.seconds);
}
