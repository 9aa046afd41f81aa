//! A second thread kept for the solvers' passes by two halves ([`super::sparse::pair`]).
//!
//! On the TIMIT shape a resumed window of six iterations ran about 8,700 such passes, most of
//! them a millisecond or less: a thread spawned per pass cost about 50 µs before its half
//! started, and the spawn and the join were on the calling thread's own time. This thread
//! is spawned once and kept: it waits for a job by spinning a few tens of microseconds (the
//! next pass usually comes sooner), then parks; the caller posts its second half, runs the
//! first and waits for the second the same way.
//!
//! One caller at a time: a caller that finds the thread taken (another thread's pass, or a
//! pass within a pass) is told so and runs its halves some other way. The plugin library is
//! never unloaded (the host forgets it), so the parked thread's code stays mapped.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::thread::{self, Thread};

/// The helper's states: waiting for a job, a job posted, the job done.
const IDLE: u8 = 0;
const POSTED: u8 = 1;
const DONE: u8 = 2;

/// Spins of a wait before it parks (about 20–50 µs on the development machine).
const SPINS: u32 = 1 << 12;

/// A posted job: a function reading its data (a [`Slot`] on the poster's stack), and the
/// poster to wake when it is done.
struct Job {
    call: unsafe fn(*mut ()),
    data: *mut (),
    poster: Thread,
}

/// The kept thread and its mailbox.
struct Helper {
    /// Held by the one caller whose job is posted or running.
    taken: AtomicBool,
    state: AtomicU8,
    /// Written by the caller that holds `taken` while the state is `IDLE`, read by the helper
    /// once the state is `POSTED`.
    job: UnsafeCell<Option<Job>>,
    thread: OnceLock<Thread>,
}

// SAFETY: `job` is written only by the holder of `taken` before it sets `POSTED` (release)
// and read only by the helper thread after it sees `POSTED` (acquire); the data a job points
// to is not touched by its poster until the helper has set `DONE`.
unsafe impl Sync for Helper {}

/// A job's closure and, once run, its result (or its panic).
struct Slot<F, B> {
    f: Option<F>,
    out: Option<thread::Result<B>>,
}

/// Runs the closure in the [`Slot`] at `data`.
///
/// # Safety
/// `data` points to a live `Slot<F, B>` that nothing else reads or writes meanwhile.
unsafe fn call_slot<F: FnOnce() -> B, B>(data: *mut ()) {
    // SAFETY: the caller's contract.
    let slot = unsafe { &mut *data.cast::<Slot<F, B>>() };
    if let Some(f) = slot.f.take() {
        slot.out = Some(catch_unwind(AssertUnwindSafe(f)));
    }
}

/// Waits until `state` is `want`: spins, then parks (woken by whoever sets it; a spurious
/// wake-up checks again).
fn wait_for(state: &AtomicU8, want: u8) {
    let mut spins = 0;
    while state.load(Ordering::Acquire) != want {
        if spins < SPINS {
            spins += 1;
            std::hint::spin_loop();
        } else {
            thread::park();
        }
    }
}

impl Helper {
    /// The helper thread's loop.
    fn serve(&self) {
        loop {
            wait_for(&self.state, POSTED);
            // SAFETY: see `impl Sync for Helper`: the state is `POSTED`.
            let job = unsafe { (*self.job.get()).take() };
            let Some(job) = job else {
                continue;
            };
            // SAFETY: the poster keeps the slot alive and untouched until `DONE`.
            unsafe { (job.call)(job.data) };
            let poster = job.poster;
            self.state.store(DONE, Ordering::Release);
            poster.unpark();
        }
    }
}

/// The helper, spawned at the first call (`None` where it could not be).
fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        let h: &'static Helper = Box::leak(Box::new(Helper {
            taken: AtomicBool::new(false),
            state: AtomicU8::new(IDLE),
            job: UnsafeCell::new(None),
            thread: OnceLock::new(),
        }));
        let spawned = thread::Builder::new()
            .name("mcopt-srpa-half".into())
            .spawn(move || h.serve());
        let handle = spawned.ok()?;
        h.thread.set(handle.thread().clone()).ok()?;
        Some(h)
    })
}

/// Waits for the posted job and frees the helper, also when the caller's own half unwinds
/// (the job borrows what the caller's frame owns).
struct Release(&'static Helper);

impl Drop for Release {
    fn drop(&mut self) {
        wait_for(&self.0.state, DONE);
        self.0.state.store(IDLE, Ordering::Relaxed);
        self.0.taken.store(false, Ordering::Release);
    }
}

/// Runs `fb` on the helper thread and `fa` on this one, and returns both results; or gives
/// both closures back, not run, when the helper is taken or could not be spawned. A panic in
/// either is resumed here once both have ended.
pub(super) fn join<A, B, FA, FB>(fa: FA, fb: FB) -> Result<(A, B), (FA, FB)>
where
    FA: FnOnce() -> A,
    FB: FnOnce() -> B + Send,
    B: Send,
{
    let Some(h) = helper() else {
        return Err((fa, fb));
    };
    if h.taken
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return Err((fa, fb));
    }
    let mut slot = Slot::<FB, B> {
        f: Some(fb),
        out: None,
    };
    let job = Job {
        call: call_slot::<FB, B>,
        data: std::ptr::addr_of_mut!(slot).cast(),
        poster: thread::current(),
    };
    // SAFETY: this caller holds `taken` and the state is `IDLE`: the helper does not read the
    // mailbox until `POSTED`.
    unsafe { *h.job.get() = Some(job) };
    h.state.store(POSTED, Ordering::Release);
    if let Some(t) = h.thread.get() {
        t.unpark();
    }
    let release = Release(h);
    let a = fa();
    drop(release);
    match slot.out.take() {
        Some(Ok(b)) => Ok((a, b)),
        Some(Err(panic)) => resume_unwind(panic),
        None => unreachable!("the helper ran the job"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`join`], again until the helper is free (other tests' passes may hold it).
    fn join_when_free<A, B: Send>(
        mut fa: impl FnOnce() -> A,
        mut fb: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        loop {
            match join(fa, fb) {
                Ok(r) => return r,
                Err((a, b)) => {
                    (fa, fb) = (a, b);
                    thread::yield_now();
                }
            }
        }
    }

    #[test]
    fn both_halves_run_and_a_pass_within_a_pass_is_given_back() {
        let data: Vec<u64> = (0..1000).collect();
        let (a, b) = join_when_free(
            || data[..500].iter().sum::<u64>(),
            || {
                // the helper is taken by the outer call: the inner one gets its closures back
                let inner = join(|| 1, || 2);
                (data[500..].iter().sum::<u64>(), inner.is_err())
            },
        );
        assert_eq!(a + b.0, 999 * 1000 / 2);
        assert!(b.1, "a pass within a pass ran on the taken helper");
        assert_eq!(join_when_free(|| 3, || 4), (3, 4));
    }

    #[test]
    fn a_panic_in_the_second_half_reaches_the_caller_after_both_ended() {
        let first_ran = AtomicBool::new(false);
        let r = catch_unwind(AssertUnwindSafe(|| {
            join_when_free(
                || first_ran.store(true, Ordering::SeqCst),
                || -> u8 { panic!("second half") },
            )
        }));
        assert!(r.is_err());
        assert!(first_ran.load(Ordering::SeqCst));
        assert_eq!(
            join_when_free(|| 1, || 2),
            (1, 2),
            "the helper after a panic"
        );
    }
}
