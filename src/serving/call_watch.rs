//! A bound on librdkafka's transactional calls, which may never return.
//!
//! librdkafka 2.12.1's `rd_kafka_send_offsets_to_transaction` waits for its reply with no
//! timeout of its own, and the reply can never come: the request to the group coordinator waits
//! for a broker state change that, once the coordinator's broker has been dropped from the
//! cluster's metadata (a SIGKILLed node) or has gone and come back (a lone broker restarted:
//! now and then), never happens (librdkafka issues #5511, whose fix is not released, and #5456,
//! the request's own timeout never checked). No call into librdkafka
//! can end such a wait, so each transactional call runs on a thread of the watch's own while the
//! scorer thread waits for it, at most its own timeout and [`MARGIN`], and once the scorer stops,
//! at most until the stop's deadline ([`StopDeadline`]). A call that overruns either leaves the
//! watch's thread behind, inside librdkafka, and the watch refuses every later call: the scorer
//! ends with [`StuckCall`]'s line and commits nothing more, and a new run with the same
//! `transactional.id` fences the stuck producer and resumes from the last committed transaction.
//!
//! [`StopDeadline`]: crate::engine::StopDeadline

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::StopDeadline;

/// How long past its own timeout a transactional call may take before it is taken for stuck:
/// librdkafka's timeouts are checked when its threads next look, not to the millisecond.
pub const MARGIN: Duration = Duration::from_secs(5);

/// How often a wait for a call looks whether a stop has fixed its deadline meanwhile: well
/// within [`crate::engine::STOP_MARGIN`], so that a call that overruns the deadline is named
/// before the edge's own wait for the scorer ends.
const STOP_LOOK: Duration = Duration::from_millis(20);

/// `score`'s exit status when a transactional call got stuck: `EX_TEMPFAIL` of sysexits.h, a
/// failure that a new run (with the same `--instance-id`) gets past.
pub const RESTART_EXIT_CODE: u8 = 75;

/// What a run that stopped so should be followed by.
pub const RESUME: &str =
    "run again with the same --instance-id to resume from the last committed transaction";

/// One call for the watch's thread.
type Job = Box<dyn FnOnce() + Send>;

/// A transactional call that did not return within the watch's limit, or by the stop's deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "exactly-once: librdkafka's {call} {} librdkafka hang when the coordinator's broker leaves \
     the cluster: librdkafka issues #5511 and #5456); the open transaction is left uncommitted, \
     and nothing more is committed by this run: {RESUME}",
    not_returned(*waited, *at_stop)
)]
pub struct StuckCall {
    /// The librdkafka call, such as `send_offsets_to_transaction`.
    pub call: &'static str,
    /// How long it had been waited for.
    pub waited: Duration,
    /// Whether the stop's deadline ended the wait, before the call's own limit: the line then
    /// says so rather than a wait whose length depends on when the stop began.
    pub at_stop: bool,
}

/// How long a stuck call was waited for, in the words of its line.
fn not_returned(waited: Duration, at_stop: bool) -> String {
    if at_stop {
        "had not returned when the shutdown deadline passed (possibly a known".to_owned()
    } else {
        format!("has not returned after {} s (a known", waited.as_secs())
    }
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
        self.run_within(name, timeout, &StopDeadline::default(), call)
    }

    /// As [`CallWatch::run`], but once `stopping` is fixed (before the call or while it runs)
    /// the wait ends at its deadline too: a call that has not returned by then is taken for
    /// stuck, as one past its own limit is (the scorer ends with its line and exit status 75).
    ///
    /// # Panics
    ///
    /// When `call` panics (the panic is the caller's, as if it had made the call itself).
    pub fn run_within<T: Send + 'static>(
        &self,
        name: &'static str,
        timeout: Duration,
        stopping: &StopDeadline,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StuckCall> {
        let limit = timeout.saturating_add(MARGIN);
        let started = Instant::now();
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = jobs.as_ref() else {
            return Err(self.stuck().unwrap_or(StuckCall {
                call: name,
                waited: Duration::ZERO,
                at_stop: false,
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
        let at_stop = loop {
            // In slices while no stop is fixed, so that one fixed meanwhile ends the wait.
            let own = limit.saturating_sub(started.elapsed());
            let left = stopping.cap(own);
            if left.is_zero() {
                break !own.is_zero();
            }
            let slice = if stopping.get().is_some() {
                left
            } else {
                left.min(STOP_LOOK)
            };
            match result.recv_timeout(slice) {
                Ok(value) => return Ok(value),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    *jobs = None;
                    panic!("librdkafka's {name} panicked")
                }
            }
        };
        // The thread stays inside librdkafka; nothing is sent to it again.
        *jobs = None;
        let stuck = StuckCall {
            call: name,
            waited: if at_stop { started.elapsed() } else { limit },
            at_stop,
        };
        tracing::error!(%stuck, "transactional call stuck");
        *self.stuck.lock().unwrap_or_else(PoisonError::into_inner) = Some(stuck.clone());
        Err(stuck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A call's own timeout that no test waits out.
    const CALL: Duration = Duration::from_secs(3600);

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
            at_stop: false,
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
            at_stop: false,
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

    #[test]
    fn a_call_still_running_at_the_stop_s_deadline_is_taken_for_stuck_and_said_so() {
        // Fixed before the call: the wait ends at the deadline, not 5 s after its timeout.
        let watch = CallWatch::start().unwrap();
        let stopping = StopDeadline::default();
        stopping.fix(Instant::now() - Duration::from_millis(1));
        let (release, blocked) = mpsc::channel::<()>();
        let stuck = watch
            .run_within("commit_transaction", CALL, &stopping, move || {
                let _ = blocked.recv();
            })
            .unwrap_err();
        assert_eq!((stuck.call, stuck.at_stop), ("commit_transaction", true));
        assert_eq!(watch.stuck(), Some(stuck.clone()));
        assert_eq!(
            stuck.to_string(),
            "exactly-once: librdkafka's commit_transaction had not returned when the shutdown \
             deadline passed (possibly a known librdkafka hang when the coordinator's broker \
             leaves the cluster: librdkafka issues #5511 and #5456); the open transaction is \
             left uncommitted, and nothing more is committed by this run: run again with the \
             same --instance-id to resume from the last committed transaction"
        );
        drop(release);
        // Fixed while the call runs (a stop begun during a commit): the wait ends then too,
        // long before the call's own hour and [`MARGIN`].
        let watch = CallWatch::start().unwrap();
        let stopping = StopDeadline::default();
        let (release, blocked) = mpsc::channel::<()>();
        let stopper = {
            let stopping = stopping.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                stopping.fix(Instant::now());
            })
        };
        let stuck = watch
            .run_within("send_offsets_to_transaction", CALL, &stopping, move || {
                let _ = blocked.recv();
            })
            .unwrap_err();
        stopper.join().unwrap();
        assert!(stuck.at_stop);
        drop(release);
    }
}
