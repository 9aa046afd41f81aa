//! Work counted by the allocator, for the tests of how a cost grows with size. Counts are
//! exact and the same on every run, where a time depends on the machine's load; a test binary
//! that uses them installs the allocator with
//! `#[global_allocator] static ALLOC: Counting = Counting;`.
//!
//! Each thread counts what it allocates itself: the test harness runs tests on threads side by
//! side, and one test's counts must not take in another's. Work that a measured function hands
//! to threads of its own is not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// What one thread allocated while a function ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls to `alloc` and `realloc`.
    pub allocations: u64,
    /// Bytes asked for by those calls (a `realloc` counts its new size).
    pub bytes: u64,
    /// The most bytes live at once above what was live when the function started.
    pub peak: u64,
}

impl Counts {
    /// Asserts that each count of `larger` (the same work at a larger size) is below `bound`
    /// times this one's; `what` names the work and the sizes in the message.
    pub fn assert_grows_at_most(&self, larger: &Counts, bound: f64, what: &str) {
        let counts = [
            ("allocations", self.allocations, larger.allocations),
            ("bytes", self.bytes, larger.bytes),
            ("peak bytes", self.peak, larger.peak),
        ];
        for (count, small, large) in counts {
            let ratio = large as f64 / small as f64;
            assert!(
                ratio < bound,
                "{count} of {what}: {large} against {small} (ratio {ratio:.2}, bound {bound})"
            );
        }
    }
}

#[derive(Clone, Copy)]
struct State {
    allocations: u64,
    bytes: u64,
    live: i64,
    peak: i64,
}

thread_local! {
    static STATE: Cell<State> = const {
        Cell::new(State { allocations: 0, bytes: 0, live: 0, peak: 0 })
    };
}

fn record(allocated: usize, freed: usize) {
    // `try_with`: the allocator runs while thread-locals are torn down too.
    let _ = STATE.try_with(|s| {
        let mut st = s.get();
        if allocated > 0 {
            st.allocations += 1;
            st.bytes += allocated as u64;
        }
        st.live += allocated as i64 - freed as i64;
        st.peak = st.peak.max(st.live);
        s.set(st);
    });
}

/// The system allocator, counting on each thread.
pub struct Counting;

// SAFETY: every call goes to `System` with the caller's arguments unchanged; the counting
// touches only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(0, layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size, layout.size());
        System.realloc(ptr, layout, new_size)
    }
}

/// Run `f` and return what the current thread allocated meanwhile.
pub fn counted<T>(f: impl FnOnce() -> T) -> (T, Counts) {
    let before = STATE.with(|s| {
        let mut st = s.get();
        st.peak = st.live;
        s.set(st);
        st
    });
    let out = f();
    let after = STATE.with(Cell::get);
    let counts = Counts {
        allocations: after.allocations - before.allocations,
        bytes: after.bytes - before.bytes,
        peak: (after.peak - before.live).max(0) as u64,
    };
    (out, counts)
}
