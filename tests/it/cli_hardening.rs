//! Hostile input through the command line (issue 7, part A): huge lines and tokens, endless
//! files, byte-order marks, bad numeric options, failed writes, `--json` errors, grouped
//! layer sizes. Each is a diagnostic with exit 2 (or a clean success), never exit 3.

use crate::support;

use std::process::{Command, Stdio};

use support::{at, mcopt, Run};

/// Exit 2 with `code` on stderr, stderr under `max_bytes`, no panic.
fn refused(run: &Run, code: &str, max_bytes: usize) {
    assert!(!run.panicked(), "{run:#?}");
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains(code), "expected {code}: {run:#?}");
    assert!(
        run.stderr.len() < max_bytes,
        "stderr has {} bytes:\n{}",
        run.stderr.len(),
        &run.stderr[..run.stderr.len().min(3000)]
    );
}

#[test]
fn a_label_past_column_65535_is_rendered_in_a_window() {
    let text = format!(
        "param x: real = 1\nminimize x + {}nosuch(x)\n",
        " ".repeat(65_600)
    );
    let model = support::scratch_file("wide.mco", text.as_bytes());
    let run = mcopt(&["check", &model]);
    refused(&run, "mcopt::check::unknown_function", 4000);
    assert!(run.stderr.contains("wide.mco:2:65614"), "{}", run.stderr);
    assert!(run.stderr.contains("nosuch(x)"), "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(line.chars().count() < 260, "wide line: {line}");
    }
}

#[test]
fn a_ten_megabyte_csv_field_is_clipped() {
    let mut csv = b"a,b\n1,".to_vec();
    csv.extend(std::iter::repeat_n(b'x', 10_000_000));
    csv.push(b'\n');
    let data = support::scratch_file("wide.csv", &csv);
    let model = support::scratch_file(
        "one_data.mco",
        b"data y: seq(real)\nparam c: real\nminimize mean(t, (y[t] - c)^2)\n",
    );
    let run = mcopt(&["eval", &model, "--data", &format!("y={data}:1")]);
    let _ = std::fs::remove_file(&data);
    refused(&run, "mcopt::data::not_numeric", 6000);
}

#[test]
fn a_million_digit_number_is_clipped() {
    let point = support::scratch_file(
        "big.yaml",
        format!("x: {}\n", "7".repeat(1_000_000)).as_bytes(),
    );
    let model = support::scratch_file("x.mco", b"param x: real = 1\nminimize x^2\n");
    let run = mcopt(&["eval", &model, "--at", &point]);
    refused(&run, "mcopt::point::not_finite", 6000);
    assert!(run.stderr.contains("more characters"), "{}", run.stderr);
}

#[test]
fn endless_inputs_are_refused_at_their_cap() {
    let model = support::scratch_file("x2.mco", b"param x: real = 1\nminimize x^2\n");
    // Devices are not read at all (tests/it/hardening_inputs.rs); files past the cap are refused
    // from their size, before a byte is read (sparse files: nothing is written either).
    let big = |name: &str, len: u64| {
        let path = support::scratch_file(name, b"");
        let file = std::fs::OpenOptions::new().write(true).open(&path);
        file.and_then(|f| f.set_len(len))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        path
    };
    let big_model = big("big.mco", (16 << 20) + 1);
    refused(&mcopt(&["check", &big_model]), "mcopt::io::too_large", 2000);
    let big_run = big("big.yaml", (1 << 20) + 1);
    refused(
        &mcopt(&["check", &model, "--config", &big_run]),
        "mcopt::io::too_large",
        2000,
    );
    refused(
        &mcopt(&["check", "/dev/zero"]),
        "mcopt::io::not_a_file",
        2000,
    );
}

#[test]
fn a_byte_order_mark_is_skipped_in_models_yaml_and_csv() {
    let model = support::scratch_file(
        "bom.mco",
        "\u{feff}data y: seq(real)\nparam c: real = 0\nminimize mean(t, (y[t] - c)^2)\n".as_bytes(),
    );
    let data = support::scratch_file("bom.csv", "\u{feff}level,other\n1,0\n3,0\n".as_bytes());
    let point = support::scratch_file("bom.yaml", "\u{feff}c: 1\n".as_bytes());
    let run = mcopt(&[
        "eval",
        &model,
        "--data",
        &format!("y={data}:level"),
        "--at",
        &point,
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    // mean((1 − 1)², (3 − 1)²) = 2: the header was recognised and both rows read.
    assert_eq!(support::num(&run.json(), "value", &run), 2.0);
}

#[test]
fn numeric_options_are_checked_like_the_run_file() {
    let model = at("examples/cases/abs_parabola.mco");
    let dir = at("examples/cases/abs_parabola.dir.yaml");
    for z in ["nan", "-1", "inf"] {
        let run = mcopt(&["diff", &model, "--dir", &dir, "--ztol", z]);
        refused(&run, "mcopt::cli::value", 2000);
        assert!(run.stderr.contains("--ztol"), "{}", run.stderr);
    }
    for s in ["-1", "0", "nan"] {
        let run = mcopt(&["bench", &model, "--seconds", s]);
        refused(&run, "mcopt::cli::value", 2000);
        assert!(run.stderr.contains("--seconds"), "{}", run.stderr);
    }
}

#[test]
fn bench_spends_the_seconds_it_is_given_on_each_quantity() {
    let run = mcopt(&[
        "bench",
        &at("examples/cases/abs_parabola.mco"),
        "--json",
        "--seconds",
        "0.1",
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let v = run.json();
    let spent = v["seconds_spent"].as_array().cloned().unwrap_or_default();
    assert_eq!(spent.len(), 4, "{v}");
    for s in spent {
        assert!(s.as_f64().is_some_and(|s| s >= 0.1), "{v}");
    }
}

#[test]
fn a_failed_write_to_stdout_is_an_error_and_a_closed_pipe_is_silent() {
    let model = at("examples/cases/abs_parabola.mco");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    if let Ok(full) = full {
        let out = support::bin()
            .args(["eval", &model, "--json"])
            .stdout(Stdio::from(full))
            .output()
            .expect("mcopt runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("mcopt::io::write"), "{err}");
    }
    let mut child = support::bin()
        .args(["check", &at("examples/sp500/rnn.mco")])
        .args(["--config", &at("examples/sp500/run.yaml")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcopt runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("mcopt ends");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_errors_are_printed_on_stdout_and_rendered_on_stderr() {
    let model = support::scratch_file("typo.mco", b"param x: real = 1\nminimize tahn(x)\n");
    let run = mcopt(&["check", &model, "--json"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("mcopt::check::unknown_function"));
    let v = run.json();
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "mcopt::check::unknown_function", "{v}");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 2);
    assert_eq!(d["column"], 10);
    assert!(
        d["file"].as_str().is_some_and(|f| f.ends_with("typo.mco")),
        "{v}"
    );
    assert!(
        d["message"].as_str().is_some_and(|m| m.contains("tahn")),
        "{v}"
    );
    assert!(
        d["help"].as_str().is_some_and(|h| h.contains("`tanh`")),
        "{v}"
    );

    let missing = mcopt(&["eval", "no_such.mco", "--json"]);
    let d = &missing.json()["diagnostics"][0];
    assert_eq!(d["code"], "mcopt::io::read");
    assert_eq!(d["file"], "no_such.mco");
    assert!(d["line"].is_null());
}

#[test]
fn check_groups_layer_sizes_and_json_keeps_every_layer() {
    let args = [
        "check",
        &at("examples/sp500/rnn.mco"),
        "--config",
        &at("examples/sp500/run.yaml"),
    ];
    let run = mcopt(&args);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let sizes = run
        .stdout
        .lines()
        .find(|l| l.contains("sizes N_ℓ"))
        .unwrap_or_default();
    assert_eq!(
        sizes.trim(),
        "sizes N_ℓ: h[0..393]: 20, u[1..393]: 20, v[1..393]: 1"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v = mcopt(&json_args).json();
    assert_eq!(v["layers"].as_array().map(Vec::len), Some(1180));
    assert_eq!(v["layer_groups"][1], "u[1..393]: 20", "{v}");
}

#[test]
fn yaml_nested_past_the_limit_is_refused_before_parsing() {
    let model = support::scratch_file("x3.mco", b"param x: real = 1\nminimize x^2\n");
    let n = 100_000;
    let flow = format!("x: {}{}\n", "[".repeat(n), "]".repeat(n));
    let block = format!("x:\n  {}1\n", "- ".repeat(n));
    let mapping: String = (0..70)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    for (name, text) in [("flow", flow), ("block", block), ("mapping", mapping)] {
        let point = support::scratch_file(&format!("deep_{name}.yaml"), text.as_bytes());
        let run = mcopt(&["eval", &model, "--at", &point]);
        refused(&run, "mcopt::config::too_deep", 4000);
        let run = mcopt(&["eval", &model, "--config", &point]);
        refused(&run, "mcopt::config::too_deep", 4000);
    }
}

/// `mcopt ARGS` under an address-space limit of `kib` KiB.
fn under_ulimit(kib: u64, args: &[&str]) -> std::process::Output {
    let script = format!("ulimit -v {kib} && exec \"$0\" \"$@\"");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_mcopt"))
        .args(args)
        .env_remove("MCOPT_PLUGIN_PATH")
        .output()
        .expect("sh runs")
}

#[test]
fn out_of_memory_is_a_diagnostic_with_the_bytes_needed() {
    let model = support::scratch_file("huge.mco", b"param w: vec(134217728)\nminimize sum(w)\n");
    // 0.9 GB: the parameter's initial values do not fit; 1.5 GB: θ does not; 2.6 GB: the
    // evaluator's buffers do not.
    for (kib, code) in [
        (900_000, "mcopt::check::memory"),
        (1_500_000, "mcopt::eval::memory"),
        (2_600_000, "mcopt::eval::memory"),
    ] {
        let out = under_ulimit(kib, &["eval", &model]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "ulimit -v {kib}: {err}");
        assert!(err.contains(code), "ulimit -v {kib}: {err}");
        assert!(err.contains("1073741"), "the bytes needed: {err}");
    }
}
