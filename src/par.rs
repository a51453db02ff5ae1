//! The package's one thread pool. Built lazily with `LOGITKIT_NUM_THREADS`
//! threads (default: the machine's available parallelism), resized by
//! `set_num_threads`, and rebuilt in a `fork()`ed child, whose copy of the
//! parent's pool has no threads behind it.

use rayon::ThreadPool;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Elements below which a call runs on the calling thread: a tiny call costs
/// one function call, not a pool wake-up. From ~60 000 elements splitting
/// pays, even for a bare copy, now that a pool call no longer waits for its
/// helper's wake-up (see `for_each_task`). Until stop 18 calls that cost
/// about a copy stayed serial up to 128 Ki, and those with an exp, log or
/// division split from 60 000 (measured then: softmax 64x1000 34 -> 24 us,
/// gelu 49 -> 42 us). 2 threads against 1 at 64x1000 float32 since: softmax
/// 17 -> 9 us, mse_loss + grad 17.2 -> 11.1, relu_backward 6.8 -> 4.3,
/// log_softmax_backward 29.7 -> 18.4, sigmoid 13.5 -> 10.0; relu, a bare
/// copy, even (3.1-5.0 against 3.1-3.8 us).
pub const SERIAL_ELEMS: usize = 60_000;

/// Elements above which a call releases the GIL (cheap next to the work, and
/// it lets other Python threads run their own calls meanwhile).
pub const GIL_RELEASE_ELEMS: usize = 1 << 14;

/// The most threads `set_num_threads` accepts (and `LOGITKIT_NUM_THREADS`
/// is clamped to): far more than any machine's cores, far fewer than the
/// count at which creating the pool itself hangs a process.
pub const MAX_THREADS: usize = 1024;

/// Target elements per parallel task (about 128 KiB of f32).
pub const TASK_ELEMS: usize = 1 << 15;

struct PoolState {
    pid: u32,
    threads: usize,
    pool: Option<Arc<ThreadPool>>,
}

static STATE: Mutex<PoolState> = Mutex::new(PoolState {
    pid: 0,
    threads: 0,
    pool: None,
});

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `LOGITKIT_NUM_THREADS` if it is a thread count from 1 to [`MAX_THREADS`]
/// (clamped to it above), else the CPU count; with why the variable, when
/// set, was not followed as given.
fn threads_from_env() -> (usize, Option<String>) {
    // Unset or empty: the CPU count.
    let v = std::env::var("LOGITKIT_NUM_THREADS").unwrap_or_default();
    if v.trim().is_empty() {
        return (cpus(), None);
    }
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_THREADS as u64).contains(&n) => (n as usize, None),
        Ok(n) if n > MAX_THREADS as u64 => (
            MAX_THREADS,
            Some(format!(
                "LOGITKIT_NUM_THREADS={v:?} is above {MAX_THREADS}; using {MAX_THREADS}"
            )),
        ),
        _ => {
            let n = cpus();
            let msg = format!(
                "LOGITKIT_NUM_THREADS={v:?} is not a thread count from 1 to {MAX_THREADS}; \
                 using {n} (the CPU count)"
            );
            (n, Some(msg))
        }
    }
}

fn default_threads() -> usize {
    threads_from_env().0
}

/// Why the `LOGITKIT_NUM_THREADS` environment variable is not followed as
/// given, if it is set and is not.
pub fn env_warning() -> Option<String> {
    threads_from_env().1
}

fn lock() -> std::sync::MutexGuard<'static, PoolState> {
    // A panic while holding the lock cannot leave the state inconsistent.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Returns the pool (None when one thread is configured), rebuilding it after
/// a fork or a change of thread count.
fn pool() -> Option<Arc<ThreadPool>> {
    let mut st = lock();
    let pid = std::process::id();
    if st.threads == 0 {
        st.threads = default_threads();
    }
    if st.pid != pid {
        // In a forked child the inherited pool's threads do not exist; leak it
        // rather than join threads that will never answer (and forget the
        // waiting helpers, which are those threads).
        if let Some(old) = st.pool.take() {
            std::mem::forget(old);
        }
        if st.pid != 0 {
            linger::forget_all();
        }
        st.pid = pid;
    }
    if st.threads <= 1 {
        return None;
    }
    if st.pool.is_none() {
        // The calling thread is the last worker (see `for_each_task`).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(st.threads - 1)
            .thread_name(|i| format!("logitkit-{i}"))
            .build()
            .ok()?;
        st.pool = Some(Arc::new(pool));
    }
    st.pool.clone()
}

/// Number of threads parallel kernels use.
pub fn num_threads() -> usize {
    let mut st = lock();
    if st.threads == 0 {
        st.threads = default_threads();
    }
    st.threads
}

/// Sets the number of threads (>= 1); the pool is rebuilt on next use.
pub fn set_num_threads(n: usize) {
    let mut st = lock();
    let n = n.max(1);
    if n != st.threads {
        st.threads = n;
        st.pool = None;
    }
}

/// Runs `f(0..ntasks)`, in parallel on the pool when there is more than one
/// task and more than one thread. Each task must write a disjoint part of the
/// output, so the result does not depend on the schedule.
///
/// The calling thread works too: it takes tasks alongside the pool's
/// `threads - 1` workers, instead of sleeping while a
/// pool of `threads` runs them all (`install`), which put two thread
/// wake-ups on the critical path (matmul 128x784x256 at 2 threads: 224 us
/// against 153 us for each half alone).
///
/// Nor does it wait for a helper that has not started: once the counter is
/// exhausted it closes the call, a helper that arrives after that leaves
/// without touching `f`, and the caller spins (never sleeps) only while a
/// helper is inside a task. (A rayon scope waited, asleep, for every spawned
/// helper to run, so a helper's late wake-up and then the caller's own were
/// both on the critical path: 2 threads were slower than 1 at 64x1000
/// log_softmax, 19 against 22-24 us.)
///
/// Tasks are claimed from one counter, but the caller runs them from the
/// front and the helpers from the back: call after call, each thread meets
/// the part of the data it had last time, still in its own core's cache
/// (1 MB float32 at 2 threads: relu 0.91 of the time, the exp-based
/// activations 0.96-0.98; 2 MB relu 0.78).
pub fn for_each_task(ntasks: usize, f: impl Fn(usize) + Sync + Send) {
    if ntasks == 0 {
        return;
    }
    if ntasks > 1 {
        if let Some(p) = pool() {
            let helpers = p.current_num_threads().min(ntasks - 1);
            let f: &(dyn Fn(usize) + Sync) = &f;
            // The helpers get `f` as a raw pointer, with its lifetime erased:
            // they dereference it only between entering and leaving the
            // call, `Call::finish` returns only once the call is closed and
            // no helper is inside, and this function does not return before
            // it. (A helper that runs later holds the pointer, never uses it.)
            // SAFETY: only the lifetime changes (same fat-pointer layout).
            let f: *const (dyn Fn(usize) + Sync + 'static) =
                unsafe { std::mem::transmute(f as *const (dyn Fn(usize) + Sync + '_)) };
            let call = Arc::new(Call {
                next: AtomicUsize::new(0),
                back: AtomicUsize::new(0),
                ntasks,
                inside: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                panic: Mutex::new(None),
                f,
            });
            // Helpers still waiting after a recent call take this one at
            // once; the rest are woken through the pool.
            let claimed = linger::claim(&call, helpers);
            for _ in claimed..helpers {
                let c = Arc::clone(&call);
                p.spawn(move || {
                    c.help();
                    drop(c);
                    linger::wait();
                });
            }
            let own = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.work(true)));
            if own.is_err() {
                call.next.store(ntasks, Ordering::Relaxed);
            }
            call.finish();
            if let Err(e) = own {
                std::panic::resume_unwind(e);
            }
            if let Some(e) = call.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
                std::panic::resume_unwind(e);
            }
            return;
        }
    }
    (0..ntasks).for_each(f);
}

/// Helpers that stay after their part of a call, waiting for the next one.
///
/// A pool thread woken for a call (a rayon job) arrived only after its next
/// `yield` round if it was still spinning, and after a kernel wake-up of
/// tens of microseconds in this VM if it had gone to sleep, which rayon's
/// workers do a few microseconds after their last job. With other work
/// between the calls (20 or 50 us of it), float32 sigmoid at 128 Ki
/// elements took 43 us at 2 threads against 18 back to back (35 us on one
/// thread), gelu_backward at 256 Ki 84-89 against 48, softmax 256x1024 72-75
/// against 42: the helper came too late to take a task, or not at all.
///
/// So after its tasks a helper waits up to `LINGER` in a mailbox of its own,
/// looking at it in a spin loop that yields its CPU every few microseconds.
/// A caller claims each waiting helper's mailbox (a compare-and-swap from
/// `WAITING`), puts the call in it, marks it `CLAIMED`, and wakes through
/// the pool only the helpers it did not find. A helper leaves only by
/// swapping `WAITING` for `IDLE`, so a claimed helper always takes its
/// call: no call counts on a helper that has gone, and no job is queued for
/// one that is there.
mod linger {
    use super::Call;
    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// How long a helper waits for another call: PyTorch's OpenMP threads
    /// spin 200 ms by default; here a millisecond covers a training step's
    /// other work between two calls at small batch sizes, and only that
    /// long is the helper's CPU taken when no call follows.
    const LINGER: Duration = Duration::from_millis(1);
    /// Mailboxes: helpers beyond this many do not wait.
    const BOXES: usize = 64;

    const IDLE: u8 = 0;
    const WAITING: u8 = 1;
    /// A caller is putting its call in.
    const FILLING: u8 = 2;
    const CLAIMED: u8 = 3;
    /// Never used again (its lock may be held by a thread a fork left out).
    const DEAD: u8 = 4;

    /// One helper's; a cache line of its own, which it reads while waiting.
    #[repr(align(64))]
    struct Mailbox {
        state: AtomicU8,
        call: Mutex<Option<Arc<Call>>>,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Mailbox = Mailbox {
        state: AtomicU8::new(IDLE),
        call: Mutex::new(None),
    };
    static BOX: [Mailbox; BOXES] = [EMPTY; BOXES];
    /// Mailboxes ever taken by a helper (a prefix of `BOX`): a caller looks
    /// at these only, one for a 2-thread pool, not all of them.
    static USED: AtomicUsize = AtomicUsize::new(0);

    /// Hands `call` to up to `helpers` waiting helpers; returns how many.
    pub(super) fn claim(call: &Arc<Call>, helpers: usize) -> usize {
        let mut n = 0;
        for b in &BOX[..USED.load(Ordering::Acquire)] {
            if n == helpers {
                break;
            }
            if b.state.load(Ordering::Relaxed) != WAITING
                || b.state
                    .compare_exchange(WAITING, FILLING, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            *b.call.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(call));
            b.state.store(CLAIMED, Ordering::Release);
            n += 1;
        }
        n
    }

    /// A helper's wait after its tasks: takes every call put in its mailbox
    /// until [`LINGER`] passes without one. Returns at once when every
    /// mailbox is taken.
    pub(super) fn wait() {
        let Some((i, b)) = BOX.iter().enumerate().find(|(_, b)| {
            b.state
                .compare_exchange(IDLE, WAITING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            return;
        };
        USED.fetch_max(i + 1, Ordering::AcqRel);
        let mut since = Instant::now();
        let mut looks = 0u32;
        loop {
            match b.state.load(Ordering::Acquire) {
                CLAIMED => {
                    let c = b.call.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(c) = c {
                        c.help();
                    }
                    b.state.store(WAITING, Ordering::Release);
                    since = Instant::now();
                    looks = 0;
                    continue;
                }
                WAITING => {}
                // FILLING: a caller is about to hand over its call.
                _ => {
                    std::hint::spin_loop();
                    continue;
                }
            }
            looks += 1;
            if !looks.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            // Every 64 looks (a few microseconds) the CPU is offered to any
            // other thread that wants it: a helper that only spun for its
            // first 50 us made NumPy's OpenBLAS matmul called between two
            // calls (256^3 float32, its own 2 threads) take 250-290 us on
            // average against 150 (its median), as both pools' threads
            // queued for one CPU; yielding from the start, 160.
            if since.elapsed() > LINGER {
                if b.state
                    .compare_exchange(WAITING, IDLE, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// In a forked child: the waiting helpers were the parent's threads. A
    /// mailbox whose lock a parent thread held at the fork is left unused.
    pub(super) fn forget_all() {
        for b in &BOX {
            let state = match b.call.try_lock() {
                Ok(mut c) => {
                    *c = None;
                    IDLE
                }
                Err(std::sync::TryLockError::Poisoned(e)) => {
                    *e.into_inner() = None;
                    IDLE
                }
                Err(std::sync::TryLockError::WouldBlock) => DEAD,
            };
            b.state.store(state, Ordering::Relaxed);
        }
    }
}

/// One parallel call of [`for_each_task`], shared with its helpers.
struct Call {
    /// Tasks claimed (by anyone); past `ntasks`, none is left.
    next: AtomicUsize,
    /// Tasks the helpers have claimed: theirs are taken from the back.
    back: AtomicUsize,
    ntasks: usize,
    /// Helpers between entering and leaving.
    inside: AtomicUsize,
    /// Set when the caller has run out of tasks: no helper enters after.
    closed: AtomicBool,
    /// A helper's panic, re-raised on the calling thread.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// Valid while the call is open or a helper is inside (see
    /// `for_each_task`).
    f: *const (dyn Fn(usize) + Sync),
}

// SAFETY: `f` points to a `Sync` closure, called only while valid (see
// `for_each_task`); the other fields are `Send + Sync`.
unsafe impl Send for Call {}
unsafe impl Sync for Call {}

impl Call {
    /// Takes tasks until none is left: the caller `0, 1, ...`, helpers
    /// `ntasks - 1, ntasks - 2, ...`. Every claim is counted in `next`
    /// first, so the caller's `m` tasks and the helpers' `h` have `m + h <=
    /// ntasks` and never meet.
    fn work(&self, caller: bool) {
        let mut own = 0;
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            if k >= self.ntasks {
                break;
            }
            let t = if caller {
                own += 1;
                own - 1
            } else {
                self.ntasks - 1 - self.back.fetch_add(1, Ordering::Relaxed)
            };
            // SAFETY: `work` runs on the caller before `finish`, or on a
            // helper that entered an open call: `f` is alive (see
            // `for_each_task`).
            unsafe { (*self.f)(t) };
        }
    }

    /// A helper: enters unless the call is closed, works, leaves. The
    /// SeqCst increment of `inside` and load of `closed` here, against the
    /// caller's store of `closed` and load of `inside` in `finish`, make
    /// sure that either the caller sees this helper inside and waits, or
    /// the helper sees the call closed and stays out.
    fn help(&self) {
        self.inside.fetch_add(1, Ordering::SeqCst);
        if !self.closed.load(Ordering::SeqCst) {
            if let Err(e) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(false)))
            {
                // No task is taken after a panic.
                self.next.store(self.ntasks, Ordering::Relaxed);
                *self.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        }
        // Release: the tasks' writes happen before the caller's Acquire load
        // sees the helper gone.
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }

    /// Closes the call and waits, spinning, until no helper is inside.
    fn finish(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut spins = 0u32;
        while self.inside.load(Ordering::SeqCst) != 0 {
            if spins < 1 << 12 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every task runs exactly once, whoever takes it, over many calls: most
    /// of them short enough that the helper arrives after the caller has
    /// closed the call (it must then leave without running anything).
    #[test]
    fn each_task_once_early_and_late_helpers() {
        // The package's one pool (other tests may resize it meanwhile: the
        // tasks are run once whatever the size).
        set_num_threads(4);
        for round in 0..3000 {
            let ntasks = 2 + round % 37;
            let hits: Vec<AtomicUsize> = (0..ntasks).map(|_| AtomicUsize::new(0)).collect();
            for_each_task(ntasks, |t| {
                if round % 7 == 0 {
                    // Some slow tasks, so that helpers are inside when the
                    // caller finishes its own.
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
            for (t, h) in hits.iter().enumerate() {
                assert_eq!(h.load(Ordering::Relaxed), 1, "round {round}, task {t}");
            }
        }
    }

    /// Every task runs exactly once across calls spaced so that helpers are
    /// found waiting (back to back, or within `linger::LINGER`), have just
    /// given up, or were woken through the pool (the gaps cross the
    /// linger), made from several threads at once.
    #[test]
    fn each_task_once_with_waiting_helpers_and_several_callers() {
        set_num_threads(3);
        std::thread::scope(|sc| {
            for caller in 0..3u64 {
                sc.spawn(move || {
                    let mut r = caller.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                    for round in 0..400 {
                        r ^= r << 13;
                        r ^= r >> 7;
                        r ^= r << 17;
                        let ntasks = 2 + (r % 23) as usize;
                        let hits: Vec<AtomicUsize> =
                            (0..ntasks).map(|_| AtomicUsize::new(0)).collect();
                        for_each_task(ntasks, |t| {
                            hits[t].fetch_add(1, Ordering::Relaxed);
                        });
                        for (t, h) in hits.iter().enumerate() {
                            assert_eq!(
                                h.load(Ordering::Relaxed),
                                1,
                                "caller {caller} round {round} task {t}"
                            );
                        }
                        // 0 to ~2 ms between calls: across the 1 ms wait.
                        let gap = (r >> 20) % 2200;
                        if gap > 100 {
                            std::thread::sleep(std::time::Duration::from_micros(gap));
                        }
                    }
                });
            }
        });
    }

    /// A task's panic reaches the caller (from the calling thread or a
    /// helper), no task starts after it, and the pool still works.
    #[test]
    fn a_task_panic_reaches_the_caller() {
        set_num_threads(4);
        for bad in 0..8 {
            let r = std::panic::catch_unwind(|| {
                for_each_task(8, |t| {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    if t == bad {
                        panic!("task {t}");
                    }
                })
            });
            assert!(r.is_err(), "task {bad}'s panic was lost");
        }
        let n = AtomicUsize::new(0);
        for_each_task(16, |_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 16);
    }
}
