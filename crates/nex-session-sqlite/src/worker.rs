//! The SQLite store's connection thread: one OS thread per opened store runs its
//! blocking calls, fed by a channel.
//!
//! It replaces a `spawn_blocking` per call: handing a job to a thread that
//! already waits for it costs one channel send and one wake-up, where the
//! blocking pool also allocates a task and goes through its own queue and lock.
//! One thread is enough: the store has one connection, and its calls ran one
//! at a time under its lock anyway. The thread ends when the last clone of the
//! store is dropped (the channel closes).

use std::sync::mpsc;

use nex_session_core::StoreError;

/// A call for the thread to run.
type Job = Box<dyn FnOnce() + Send>;

/// The sending end of a store's connection thread.
pub(super) struct Worker {
    jobs: mpsc::Sender<Job>,
}

/// The connection thread ended (it could not be started, or a job panicked).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite connection thread is gone")]
struct ThreadGone;

impl Worker {
    /// Starts the thread.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the OS refuses a new thread.
    pub(super) fn start() -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("nex-session-sqlite".into())
            .spawn(move || {
                for job in queue {
                    // A panicking job drops its reply sender (its caller gets an
                    // error); the thread goes on serving the others.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self { jobs })
    }

    /// Queues `job` on the thread without waiting for it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the thread is gone (the job never runs).
    pub(super) fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
        self.jobs.send(Box::new(job)).map_err(|_| StoreError::Unavailable(Box::new(ThreadGone)))
    }

    /// Runs `job` on the thread and waits (asynchronously) for its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (its future dropped): nobody to tell.
            let _ = reply.send(job());
        });
        self.jobs.send(job).map_err(|_| StoreError::Unavailable(Box::new(ThreadGone)))?;
        answer.await.map_err(|_| StoreError::Unavailable(Box::new(ThreadGone)))?
    }
}
