//! Hostile inputs of issue 15: truncated plugin libraries, directories, devices and FIFOs as
//! inputs, sizes refused before anything is allocated, and the messages of item 23 (later
//! steps, out-of-range numbers, exact integers, bool defaults, what L counts). Each is a
//! diagnostic with exit 2 (or a clean success), never a signal, a hang or exit 3.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{at, mcopt, Run};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p.to_string_lossy().into_owned()
}

/// The stderr of `run` with miette's line wrapping undone (words joined by single spaces).
fn flat(run: &Run) -> String {
    support::unwrapped(&run.stderr)
}

/// Exit 2 with `code` on stderr, no panic, no signal.
fn refused(run: &Run, code: &str) {
    assert!(!run.panicked(), "{run:#?}");
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains(code), "expected {code}: {run:#?}");
}

/// A run file for the syn RNN with `solver` as its solver block.
fn syn_run_file(dir: &Path, name: &str, solver: &str) -> String {
    let text = format!(
        "model: {}\ndata:\n  file: {}\n  header: no\n  bind: {{x: 0..5, y: 5..8}}\n  train: 0..8\n{solver}",
        at("examples/syn/rnn.mco"),
        at("examples/data/syn_T10.csv"),
    );
    write(dir, name, text.as_bytes())
}

// ---- item 3: plugin libraries -------------------------------------------------------------

#[test]
fn a_truncated_library_is_refused_before_the_loader_sees_it() {
    let dir = support::scratch_dir("truncated");
    // The mcopt executable is a position-independent ELF object like a plugin library; cut
    // short, the loader maps segments past the end of the file and dies with SIGBUS.
    let whole = std::fs::read(env!("CARGO_BIN_EXE_mcopt")).expect("the binary is readable");
    for n in [100_000, 64, 20, 0] {
        let lib = write(&dir, &format!("cut{n}.so"), &whole[..n.min(whole.len())]);
        let run = mcopt(&["plugins", "check", &lib]);
        assert!(!run.panicked(), "{run:#?}");
        assert_eq!(run.code, Some(2), "{n} bytes: {run:#?}");
        let want = if n >= 20 {
            "mcopt::plugin::truncated"
        } else {
            "mcopt::plugin::not_a_library"
        };
        assert!(run.stderr.contains(want), "{n} bytes: {run:#?}");
    }
    let lib = dir.join("cut100000.so");
    let run = mcopt(&["plugins", "list", "--plugin", &lib.to_string_lossy()]);
    refused(&run, "mcopt::plugin::truncated");
    assert!(flat(&run).contains("100000 bytes"), "{}", run.stderr);
}

#[test]
fn a_directory_or_a_device_as_a_library_is_named_for_what_it_is() {
    let dir = support::scratch_dir("libdir");
    let run = mcopt(&["plugins", "check", &dir.to_string_lossy()]);
    refused(&run, "mcopt::plugin::not_a_file");
    assert!(flat(&run).contains("is a directory"), "{}", run.stderr);
    assert!(!run.stderr.contains("not found"), "{}", run.stderr);
    let run = mcopt(&["plugins", "check", "/dev/zero"]);
    refused(&run, "mcopt::plugin::not_a_file");
    assert!(flat(&run).contains("character device"), "{}", run.stderr);
    let text = write(&dir, "text.so", b"not a library\n");
    let run = mcopt(&["plugins", "check", &text]);
    refused(&run, "mcopt::plugin::not_a_library");
    assert!(
        flat(&run).contains("not an ELF shared library for this machine"),
        "{}",
        run.stderr
    );
}

#[test]
fn plugins_check_std_self_tests_the_built_in_plugin() {
    let run = mcopt(&["plugins", "check", "std"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stdout.contains("built in: plugin std"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("function relu"), "{}", run.stdout);
    assert!(run.stdout.contains("solver srpa"), "{}", run.stdout);
    let v = mcopt(&["plugins", "check", "std", "--json"]).json();
    assert_eq!(v["plugin"], "std", "{v}");
    assert_eq!(v["library"], "built in", "{v}");
    assert_eq!(v["functions"].as_array().map(Vec::len), Some(11), "{v}");
}

#[test]
fn plugins_list_shows_bool_defaults_as_booleans() {
    let run = mcopt(&["plugins", "list"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stdout.contains("nesterov (bool, default false)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("armijo (bool, default false)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("(bool, default 0"), "{}", run.stdout);
}

// ---- item 11: devices and FIFOs as inputs --------------------------------------------------

/// `mcopt args..`, killed (and the test failed) if it has not ended after a generous guard:
/// a FIFO that hangs the open must fail the test, not hang it.
fn mcopt_guarded(args: &[&str]) -> Run {
    let mut child = support::bin()
        .args(args)
        .env_remove("MCOPT_PLUGIN_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcopt runs");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mcopt {args:?} hangs on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("mcopt ends");
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        written: Vec::new(),
    }
}

/// Every kind of input read through `read_source`, with `bad` in its place.
fn every_input(dir: &Path, bad: &str) -> Vec<Vec<String>> {
    let model = write(dir, "x.mco", b"param x: real = 1\nminimize x^2\n");
    let seq = write(
        dir,
        "seq.mco",
        b"data y: seq(real)\nparam c: real\nminimize mean(t, (y[t] - c)^2)\n",
    );
    let run = write(
        dir,
        "data_file.yaml",
        format!("model: {seq}\ndata:\n  file: {bad}\n  bind: {{y: 0}}\n").as_bytes(),
    );
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        s(&["check", bad]),
        s(&["check", &model, "--config", bad]),
        s(&["eval", &model, "--at", bad]),
        s(&["eval", &seq, "--data", &format!("y={bad}:0")]),
        s(&["eval", "--config", &run]),
    ]
}

#[test]
fn devices_are_refused_before_they_are_read() {
    let dir = support::scratch_dir("devices");
    for args in every_input(&dir, "/dev/zero") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = mcopt_guarded(&args);
        refused(&run, "mcopt::io::not_a_file");
        assert!(flat(&run).contains("character device"), "{run:#?}");
        assert!(run.stderr.contains("/dev/zero"), "{run:#?}");
    }
    let run = mcopt(&["check", &dir.to_string_lossy()]);
    refused(&run, "mcopt::io::not_a_file");
    assert!(flat(&run).contains("a directory"), "{run:#?}");
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_opening_it() {
    let dir = support::scratch_dir("fifo");
    let fifo = dir.join("pipe");
    let status = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let fifo = fifo.to_string_lossy().into_owned();
    for args in every_input(&dir, &fifo) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = mcopt_guarded(&args);
        refused(&run, "mcopt::io::not_a_file");
        assert!(flat(&run).contains("a FIFO"), "{run:#?}");
    }
    let run = mcopt_guarded(&["plugins", "check", &fifo]);
    refused(&run, "mcopt::plugin::not_a_file");
}

// ---- item 12: sizes before allocation ------------------------------------------------------

/// `mcopt ARGS` under an address-space limit of `kib` KiB.
fn under_ulimit(kib: u64, args: &[&str]) -> Run {
    let script = format!("ulimit -v {kib} && exec \"$0\" \"$@\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_mcopt"))
        .args(args)
        .env_remove("MCOPT_PLUGIN_PATH")
        .output()
        .expect("sh runs");
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        written: Vec::new(),
    }
}

#[test]
fn check_refuses_the_total_size_before_allocating_any_parameter() {
    let dir = support::scratch_dir("sizes");
    // Two parameters of 2^27 entries (1 GiB each) and one more: past the 2^28 limit. Under a
    // 400 MB address-space limit the refusal must be the size limit, at the third
    // declaration, not an allocation of the first parameter that failed.
    let model = write(
        &dir,
        "three.mco",
        b"param w: vec(134217728)\nparam v: vec(134217728)\nparam u: vec(10)\nminimize sum(w) + sum(v) + sum(u)\n",
    );
    let run = under_ulimit(400_000, &["check", &model]);
    refused(&run, "mcopt::check::too_large");
    assert!(!run.stderr.contains("mcopt::check::memory"), "{run:#?}");
    assert!(run.stderr.contains("three.mco:3:"), "{run:#?}");
    assert!(flat(&run).contains("2147483728 bytes in all"), "{run:#?}");
    // A model with another error allocates nothing either.
    let typo = write(
        &dir,
        "typo.mco",
        b"param w: vec(134217728)\nminimize sum(w) + tahn(1)\n",
    );
    let run = under_ulimit(400_000, &["check", &typo]);
    refused(&run, "mcopt::check::unknown_function");
    assert!(!run.stderr.contains("mcopt::check::memory"), "{run:#?}");
}

#[test]
fn a_scalar_initial_value_is_allocated_once() {
    let dir = support::scratch_dir("fill");
    // 1 GiB of initial values fit under 1.6 GB; zeros first and the filled copy after
    // needed 2 GiB.
    let model = write(
        &dir,
        "fill.mco",
        b"param w: vec(134217728) = 1\nminimize sum(w)\n",
    );
    let run = under_ulimit(1_600_000, &["check", &model]);
    assert_eq!(run.code, Some(0), "{run:#?}");
}

// ---- item 23: messages -----------------------------------------------------------------------

#[test]
fn a_later_step_says_later_steps_cannot_be_used() {
    let dir = support::scratch_dir("later");
    let model = write(
        &dir,
        "later.mco",
        b"data x: seq(real)\nparam w: real = 1\nlayer h[0] = 0\nlayer h[t] = w * h[t+1] + x[t]\nminimize mean(t, h[t]^2)\n",
    );
    let run = mcopt(&["check", &model]);
    refused(&run, "mcopt::check::time");
    assert!(flat(&run).contains("later step `t + 1`"), "{}", run.stderr);
    assert!(
        flat(&run).contains("later steps cannot be used"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not a time index"), "{}", run.stderr);
}

#[test]
fn check_and_reformulate_say_which_count_includes_h0() {
    let (model, config) = (at("examples/syn/rnn.mco"), at("examples/syn/adam.yaml"));
    let check = mcopt(&["check", &model, "--config", &config]);
    assert_eq!(check.code, Some(0), "{check:#?}");
    let line = check
        .stdout
        .lines()
        .find(|l| l.contains("L = "))
        .unwrap_or_default();
    assert!(line.contains("L = 25"), "{line}");
    assert!(
        line.contains("counting h[0], which does not depend on θ (24 do"),
        "{line}"
    );
    let v = mcopt(&["check", &model, "--config", &config, "--json"]).json();
    assert_eq!(v["L"], 25, "{v}");
    assert_eq!(v["L_depending_on_theta"], 24, "{v}");
    assert_eq!(v["layers_fixed"][0], "h[0]", "{v}");

    let args = ["reformulate", &model, "--config", &config, "--form", "p0"];
    let re = mcopt(&args);
    assert_eq!(re.code, Some(0), "{re:#?}");
    assert!(
        re.stdout
            .contains("constraint blocks: 24 (one per layer instance depending on θ)"),
        "{}",
        re.stdout
    );
    assert!(
        re.stdout.contains("not a block: h[0]") && re.stdout.contains("all 25 instances in L"),
        "{}",
        re.stdout
    );
    let mut json = args.to_vec();
    json.push("--json");
    let v = mcopt(&json).json();
    assert_eq!(v["layers_fixed"][0], "h[0]", "{v}");
}

#[test]
fn a_number_past_the_range_of_a_double_is_out_of_range() {
    let dir = support::scratch_dir("range");
    let run_file = syn_run_file(
        &dir,
        "lr.yaml",
        "solver:\n  name: adam\n  options: {lr: 1e309}\n",
    );
    let run = mcopt(&["check", "--config", &run_file]);
    refused(&run, "mcopt::config::value");
    assert!(flat(&run).contains("out of range"), "{}", run.stderr);
    assert!(run.stderr.contains("lr.yaml:9:"), "{}", run.stderr);
    assert!(!run.stderr.contains("a string"), "{}", run.stderr);
}

#[test]
fn a_huge_integer_is_echoed_exactly() {
    let dir = support::scratch_dir("exact");
    let run_file = syn_run_file(
        &dir,
        "window.yaml",
        "solver:\n  name: adam\n  batch: {window: 18446744073709551615}\n",
    );
    let run = mcopt(&["check", "--config", &run_file]);
    refused(&run, "mcopt::config::value");
    assert!(
        flat(&run).contains("found 18446744073709551615"),
        "{}",
        run.stderr
    );
}
