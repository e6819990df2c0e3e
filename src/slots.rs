//! Connection slots for the two listeners (the control socket and metrics): how many
//! connections each may hold, and which one goes when all are taken.
//!
//! Each connection holds a file descriptor, and so does every engine call: however many
//! clients connect, the listeners together stay within the process's file limit minus a
//! reserve kept for the engine, the logs and notifications. Connections are accepted as they
//! come, so the kernel's backlog never fills (a new client, the operator's command or
//! Prometheus's scrape, is not left waiting behind idle ones); when every slot is taken the
//! oldest connection that has not sent its request yet is closed to make room.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

/// Connections a listener holds at most when the file limit allows.
pub const MOST: usize = 64;
/// Files kept for everything but the listeners: the engine calls (8 at once, each perhaps with
/// a connection being replaced), the event stream, logs, notifications, the runtime's own.
const RESERVE: u64 = 64;
/// The listeners that share what the limit leaves.
const LISTENERS: u64 = 2;

/// How many connections each listener may hold under the soft file limit `limit`: the limit,
/// less the reserve, shared between the listeners; at least one, at most [`MOST`].
pub fn per_listener(limit: u64) -> usize {
    let share = limit.saturating_sub(RESERVE) / LISTENERS;
    usize::try_from(share).unwrap_or(MOST).clamp(1, MOST)
}

/// [`per_listener`] under this process's soft file limit (as if unlimited when it cannot be
/// read).
pub fn for_this_process() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    // rlim_t is u32 on 32-bit ARM's glibc (armv7) and u64 on 64-bit targets, where converting
    // it is useless but harmless.
    #[allow(clippy::useless_conversion)]
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(soft, _)| u64::from(soft));
    per_listener(soft)
}

/// One listener's slots.
pub struct Slots {
    free: Arc<Semaphore>,
    silent: Arc<Mutex<Silent>>,
}

/// The connections that have not sent their request yet, oldest first.
#[derive(Default)]
struct Silent {
    next: u64,
    conns: VecDeque<(u64, AbortHandle)>,
}

fn lock(silent: &Mutex<Silent>) -> MutexGuard<'_, Silent> {
    // A poisoned lock only means a panic elsewhere mid-update; the queue is still usable.
    silent.lock().unwrap_or_else(|p| p.into_inner())
}

/// Given to a connection's task: it says when the connection's request has come, after which
/// it is no longer among those closed to make room.
#[derive(Clone)]
pub struct Heard {
    silent: Arc<Mutex<Silent>>,
    id: u64,
}

impl Heard {
    pub fn now(&self) {
        lock(&self.silent).conns.retain(|(i, _)| *i != self.id);
    }
}

impl Slots {
    pub fn new(size: usize) -> Slots {
        Slots {
            free: Arc::new(Semaphore::new(size)),
            silent: Arc::new(Mutex::new(Silent::default())),
        }
    }

    /// A slot for a connection just accepted: a free one, else the oldest silent
    /// connection's; waits only while every connection is being answered (each does so
    /// within its own timeout).
    pub async fn take(&self) -> OwnedSemaphorePermit {
        if let Ok(p) = Arc::clone(&self.free).try_acquire_owned() {
            return p;
        }
        if let Some((_, oldest)) = lock(&self.silent).conns.pop_front() {
            oldest.abort();
        }
        match Arc::clone(&self.free).acquire_owned().await {
            Ok(p) => p,
            // The semaphore is ours and never closed: wait for the caller's cancellation.
            Err(_) => std::future::pending().await,
        }
    }

    /// Serves a connection in `slot` as a task of its own, among the silent ones until it
    /// calls [`Heard::now`]; the slot is given back when the task ends or is closed to make
    /// room. Then lets that task run, so it reads its request before more are accepted.
    pub async fn spawn<F>(&self, slot: OwnedSemaphorePermit, serve: impl FnOnce(Heard) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        {
            // Queued under the lock, so the task cannot take itself off the queue before it is
            // on it.
            let mut silent = lock(&self.silent);
            let id = silent.next;
            silent.next += 1;
            let served = serve(Heard {
                silent: Arc::clone(&self.silent),
                id,
            });
            let task = tokio::spawn(async move {
                served.await;
                drop(slot);
            });
            silent.conns.push_back((id, task.abort_handle()));
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listeners_share_what_the_file_limit_leaves_after_the_reserve() {
        for (limit, each) in [
            (1_048_576, MOST),
            (1024, MOST),
            (256, 64),
            (128, 32),
            (100, 18),
            (64, 1),
            (10, 1),
            (0, 1),
        ] {
            assert_eq!(per_listener(limit), each, "limit {limit}");
        }
    }

    #[tokio::test]
    async fn the_oldest_silent_connection_makes_room_and_one_heard_from_stays() {
        let slots = Slots::new(2);
        let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
        // The first is heard from at once, the second stays silent.
        for n in 0..2 {
            let slot = slots.take().await;
            let done_tx = done_tx.clone();
            slots
                .spawn(slot, move |heard| async move {
                    struct Gone(usize, tokio::sync::mpsc::UnboundedSender<usize>);
                    impl Drop for Gone {
                        fn drop(&mut self) {
                            let _ = self.1.send(self.0);
                        }
                    }
                    let _gone = Gone(n, done_tx);
                    if n == 0 {
                        heard.now();
                    }
                    std::future::pending::<()>().await;
                })
                .await;
        }
        // A third takes the silent one's slot.
        let _third = slots.take().await;
        assert_eq!(done.recv().await, Some(1));
        assert!(done.try_recv().is_err());
    }
}
