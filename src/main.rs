//! The `mcopt` command: runs the CLI on a thread with a large stack and maps the outcome to an exit code.

mod cli;

use std::process::ExitCode;

/// Stack for the worker thread: deep (but bounded) expressions recurse in the checker and lowering.
const STACK_BYTES: usize = 256 << 20;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error[mcopt::internal]: internal error, this is a bug in mcopt: {info}");
        eprintln!("  help: please report it with the command line and input files that caused it");
    }));
    let worker = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(cli::main);
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => ExitCode::from(code),
        _ => ExitCode::from(cli::EXIT_INTERNAL),
    }
}
