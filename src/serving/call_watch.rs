//! A bound on librdkafka's transactional calls, which may never return.
//!
//! librdkafka 2.12.1's `rd_kafka_send_offsets_to_transaction` waits for its reply with no
//! timeout of its own, and the reply can never come: the request to the group coordinator waits
//! for a broker state change that, once the coordinator's broker has been dropped from the
//! cluster's metadata (a SIGKILLed node), never happens (librdkafka issues #5511, whose fix is
//! not released, and #5456, the request's own timeout never checked). No call into librdkafka
//! can end such a wait, so each transactional call runs on a thread of the watch's own while the
//! scorer thread waits for it, at most its own timeout and [`MARGIN`]. A call that overruns leaves the
//! watch's thread behind, inside librdkafka, and the watch refuses every later call: the scorer
//! ends with [`StuckCall`]'s line and commits nothing more, and a new run with the same
//! `transactional.id` fences the stuck producer and resumes from the last committed transaction.

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long past its own timeout a transactional call may take before it is taken for stuck:
/// librdkafka's timeouts are checked when its threads next look, not to the millisecond.
pub const MARGIN: Duration = Duration::from_secs(5);

/// `score`'s exit status when a transactional call got stuck: `EX_TEMPFAIL` of sysexits.h, a
/// failure that a new run (with the same `--instance-id`) gets past.
pub const RESTART_EXIT_CODE: u8 = 75;

/// What a run that stopped so should be followed by.
pub const RESUME: &str =
    "run again with the same --instance-id to resume from the last committed transaction";

/// One call for the watch's thread.
type Job = Box<dyn FnOnce() + Send>;

/// A transactional call that did not return within the watch's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "exactly-once: librdkafka's {call} has not returned after {} s (a known librdkafka hang \
     when the coordinator's broker leaves the cluster: librdkafka issues #5511 and #5456); the \
     open transaction is left uncommitted, and nothing more is committed by this run: {RESUME}",
    waited.as_secs()
)]
pub struct StuckCall {
    /// The librdkafka call, such as `send_offsets_to_transaction`.
    pub call: &'static str,
    /// How long it had been waited for.
    pub waited: Duration,
}

/// Runs transactional calls one at a time on a thread of its own, each waited for at most the
/// bound it is run with.
#[derive(Debug)]
pub struct CallWatch {
    /// The thread's queue; `None` once a call got stuck (the thread ends if it ever returns).
    jobs: Mutex<Option<SyncSender<Job>>>,
    /// The call that got stuck, if one did.
    stuck: Mutex<Option<StuckCall>>,
}

impl CallWatch {
    /// Starts the watch's thread.
    pub fn start() -> std::io::Result<CallWatch> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(1);
        std::thread::Builder::new()
            .name("transactions".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })?;
        Ok(CallWatch {
            jobs: Mutex::new(Some(jobs)),
            stuck: Mutex::new(None),
        })
    }

    /// The call that got stuck, if one did.
    pub fn stuck(&self) -> Option<StuckCall> {
        self.stuck
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `call` (librdkafka's `name`, whose own timeouts add up to `timeout`) on the watch's
    /// thread and waits for its result at most `timeout` and [`MARGIN`]. Once a call has got
    /// stuck, every call is refused at once.
    ///
    /// # Panics
    ///
    /// When `call` panics (the panic is the caller's, as if it had made the call itself).
    pub fn run<T: Send + 'static>(
        &self,
        name: &'static str,
        timeout: Duration,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StuckCall> {
        let limit = timeout.saturating_add(MARGIN);
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = jobs.as_ref() else {
            return Err(self.stuck().unwrap_or(StuckCall {
                call: name,
                waited: Duration::ZERO,
            }));
        };
        let (reply, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = reply.send(call());
        });
        assert!(
            queue.send(job).is_ok(),
            "the transactional call thread is gone (an earlier call panicked)"
        );
        match result.recv_timeout(limit) {
            Ok(value) => Ok(value),
            Err(RecvTimeoutError::Timeout) => {
                // The thread stays inside librdkafka; nothing is sent to it again.
                *jobs = None;
                let stuck = StuckCall {
                    call: name,
                    waited: limit,
                };
                tracing::error!(%stuck, "transactional call stuck");
                *self.stuck.lock().unwrap_or_else(PoisonError::into_inner) = Some(stuck.clone());
                Err(stuck)
            }
            Err(RecvTimeoutError::Disconnected) => {
                *jobs = None;
                panic!("librdkafka's {name} panicked")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_call_that_returns_in_time_gives_its_result_and_the_next_call_runs() {
        let watch = CallWatch::start().unwrap();
        assert_eq!(watch.run("first", Duration::ZERO, || 1 + 1), Ok(2));
        assert_eq!(watch.run("second", Duration::ZERO, || "two"), Ok("two"));
        assert_eq!(watch.stuck(), None);
    }

    #[test]
    fn a_call_that_never_returns_is_named_once_the_limit_passes_and_later_calls_are_refused() {
        let watch = CallWatch::start().unwrap();
        let (release, blocked) = mpsc::channel::<()>();
        let stuck = StuckCall {
            call: "send_offsets_to_transaction",
            waited: MARGIN,
        };
        assert_eq!(
            watch.run("send_offsets_to_transaction", Duration::ZERO, move || {
                let _ = blocked.recv();
            }),
            Err(stuck.clone())
        );
        assert_eq!(watch.stuck(), Some(stuck.clone()));
        // Refused without running: the commit after a stuck call never reaches librdkafka.
        // A call queued behind the stuck one would still hold its closure, and so `held`.
        let held = Arc::new(());
        let inside = held.clone();
        assert_eq!(
            watch.run("commit_transaction", Duration::ZERO, move || drop(inside)),
            Err(stuck)
        );
        assert_eq!(Arc::strong_count(&held), 1, "the refused call was dropped");
        drop(release);
    }

    #[test]
    fn the_stuck_line_names_the_call_the_wait_the_cause_and_the_restart() {
        let line = StuckCall {
            call: "send_offsets_to_transaction",
            waited: Duration::from_secs(15),
        }
        .to_string();
        assert_eq!(
            line,
            "exactly-once: librdkafka's send_offsets_to_transaction has not returned after 15 s \
             (a known librdkafka hang when the coordinator's broker leaves the cluster: \
             librdkafka issues #5511 and #5456); the open transaction is left uncommitted, and \
             nothing more is committed by this run: run again with the same --instance-id to \
             resume from the last committed transaction"
        );
    }
}
