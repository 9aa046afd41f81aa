//! Stop signals for long runs: SIGINT (Ctrl-C), SIGTERM (how Slurm and Kubernetes preempt) and
//! SIGHUP (a closed terminal) all ask the run to stop after the current step and write
//! everything; a second one while the first is being honoured exits at once with 128 + signal.
//!
//! The handlers only set atomics (async-signal-safe); the work loops poll [`flag`] and, once
//! stopped, report [`received`] so the process can exit with [`exit_code`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signals that stop a run.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

struct Handlers {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

static HANDLERS: OnceLock<Handlers> = OnceLock::new();

/// Install the handlers for [`STOP_SIGNALS`] (once per process; later calls return the same
/// flag). Returns the flag a loop polls: true once a stop signal arrived.
pub fn install() -> &'static AtomicBool {
    let h = HANDLERS.get_or_init(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for sig in STOP_SIGNALS {
            // Registered first, so it sees the flag as it was before this delivery: the first
            // signal only sets the flag, a second one exits.
            let _ = signal_hook::flag::register_conditional_shutdown(
                sig,
                i32::from(exit_code(sig)),
                Arc::clone(&stop),
            );
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize);
            let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
        }
        Handlers { stop, which }
    });
    &h.stop
}

/// The flag a loop polls (installing the handlers if needed).
pub fn flag() -> &'static AtomicBool {
    install()
}

/// Whether a stop signal arrived (false when the handlers were never installed).
pub fn stop_requested() -> bool {
    HANDLERS
        .get()
        .is_some_and(|h| h.stop.load(Ordering::SeqCst))
}

/// The last stop signal received, if any.
pub fn received() -> Option<i32> {
    let h = HANDLERS.get()?;
    if !h.stop.load(Ordering::SeqCst) {
        return None;
    }
    match h.which.load(Ordering::SeqCst) {
        0 => Some(SIGINT),
        s => i32::try_from(s).ok(),
    }
}

/// The conventional exit code of a process stopped by `sig`: 128 + the signal number.
pub fn exit_code(sig: i32) -> u8 {
    u8::try_from(128 + sig.clamp(0, 127)).unwrap_or(u8::MAX)
}

/// The name of a stop signal, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(SIGINT), 130);
        assert_eq!(exit_code(SIGTERM), 143);
        assert_eq!(exit_code(SIGHUP), 129);
    }
}
