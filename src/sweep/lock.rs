//! Claiming a sweep entry: an exclusive `flock` on `runs/NNNN/lock`, held by the worker that
//! runs the entry and inherited by its `mcopt train` (so the entry stays claimed while either
//! lives), and released by the kernel when both are gone — a crashed worker never leaves a
//! claim behind. Also the signal forwarded to a running `mcopt train`.

use std::fs::File;
use std::process::Command;

/// Try to take the exclusive lock without waiting: Ok(false) when another process holds it.
#[cfg(unix)]
pub fn try_exclusive(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)
}

/// Whether another process holds the lock of `file` (probed with a shared lock, released at
/// once).
#[cfg(unix)]
pub fn held_elsewhere(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let free = flock(fd, libc::LOCK_SH | libc::LOCK_NB)?;
    if free {
        flock(fd, libc::LOCK_UN)?;
    }
    Ok(!free)
}

#[cfg(unix)]
fn flock(fd: std::os::fd::RawFd, op: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: `fd` is an open descriptor owned by a live `File`; flock only reads it.
        let rc = unsafe { libc::flock(fd, op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Let the child of `cmd` inherit the lock (the descriptor is close-on-exec everywhere else,
/// so workers starting other entries at the same time do not), and start it in its own
/// process group, so a Ctrl-C at the terminal reaches only the worker, which forwards it once.
#[cfg(unix)]
pub fn hand_down(cmd: &mut Command, lock: &File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = lock.as_raw_fd();
    cmd.process_group(0);
    let inherit = move || {
        // SAFETY: `fd` was open in the parent when it forked, so it is open here; fcntl is
        // async-signal-safe.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and exec and only calls fcntl; it
    // allocates nothing and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(inherit);
    }
}

/// Send `sig` to process `pid` (a child of this process), ignoring a process already gone.
#[cfg(unix)]
pub fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        let _ = unsafe { libc::kill(pid, sig) };
    }
}

#[cfg(not(unix))]
pub fn try_exclusive(_: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(not(unix))]
pub fn held_elsewhere(_: &File) -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(not(unix))]
pub fn hand_down(_: &mut Command, _: &File) {}

#[cfg(not(unix))]
pub fn signal(_: u32, _: i32) {}
