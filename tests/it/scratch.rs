//! The tests' scratch directories: each test process writes under its own root, and the roots
//! of ended processes are removed, so runs do not pile up directories in the temporary one.

use crate::support::{remove_roots_of_ended_processes, scratch_dir, scratch_root};

/// A pid above any the kernel hands out (`pid_max` is at most 2²²), so its process has ended.
const ENDED: u32 = 4_000_000_000;

#[test]
fn roots_of_ended_processes_are_removed_and_running_ones_kept() {
    if !std::path::Path::new("/proc/self").exists() {
        eprintln!("no /proc here: the sweep keeps every root, nothing to check");
        return;
    }
    let temp = scratch_dir("sweep");
    let ended = temp.join(format!("mcopt-tests-{ENDED}"));
    let running = temp.join(format!("mcopt-tests-{}", std::process::id()));
    let init = temp.join("mcopt-tests-1");
    let other = temp.join(format!("mcopt-other-{ENDED}"));
    for dir in [&ended, &running, &init, &other] {
        std::fs::create_dir_all(dir.join("inside")).unwrap();
    }
    remove_roots_of_ended_processes(&temp);
    assert!(!ended.exists(), "the ended process's root was kept");
    for dir in [&running, &init, &other] {
        assert!(dir.join("inside").exists(), "{} was removed", dir.display());
    }
    assert!(temp.starts_with(scratch_root()));
}
