//! Writing to stdout: a closed pipe is silent, any other failed write (a full disk,
//! `> /dev/full`) is remembered and turned into a diagnostic when the command ends.

use std::io::{ErrorKind, Write};
use std::sync::Mutex;

use mcopt::diag::{Diag, Diags};
use mcopt::input::os_error;

/// The first failed write to stdout, other than a closed pipe.
static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Write one line to stdout.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    remember(r);
}

/// Write to stdout without a newline.
pub fn raw(args: std::fmt::Arguments<'_>) {
    remember(std::io::stdout().lock().write_fmt(args));
}

fn remember(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() != ErrorKind::BrokenPipe {
            if let Ok(mut failed) = FAILED.lock() {
                failed.get_or_insert_with(|| os_error(&e));
            }
        }
    }
}

/// Flush stdout; `Err` with a `mcopt::io::write` diagnostic if any write failed.
pub fn finish() -> Result<(), Diags> {
    remember(std::io::stdout().lock().flush());
    let failed = FAILED.lock().ok().and_then(|mut f| f.take());
    match failed {
        None => Ok(()),
        Some(e) => Err(Diag::new(
            "mcopt::io::write",
            format!("cannot write the output to standard output: {e}"),
        )
        .in_file("<stdout>")
        .help(
            "the output was not written completely; check the disk or the file it is redirected to",
        )
        .into()),
    }
}

/// `{"diagnostics": [{code, severity, message, file, line, column, help}, …]}` for `--json`.
pub fn diagnostics_json(diags: &Diags) -> String {
    let list: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let view = mcopt::diag::View::of(d);
            let (file, line, column) = place(d);
            serde_json::json!({
                "code": d.code,
                "severity": "error",
                "message": view.message(),
                "file": file,
                "line": line,
                "column": column,
                "help": view.help_text(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "diagnostics": list })).unwrap_or_default()
}

/// The file, 1-based line and 1-based column (in characters) of a diagnostic's primary label.
fn place(d: &Diag) -> (Option<String>, Option<usize>, Option<usize>) {
    match (&d.source, d.primary()) {
        (Some(src), Some(span)) => {
            let text = &src.text;
            let mut at = span.start.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let column = text[line_start..at].chars().count() + 1;
            (Some(src.name.clone()), Some(src.line_of(at)), Some(column))
        }
        (Some(src), None) => (Some(src.name.clone()), None, None),
        (None, _) => (d.path.clone(), None, None),
    }
}
