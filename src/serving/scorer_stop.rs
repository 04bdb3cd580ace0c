//! How the scorer stops: the one deadline fixed when the stop begins ([`StopDeadline`]), and
//! the steps that take what is left of it once the loop has ended: the shutdown commit
//! (exactly-once: the open transaction's; at-least-once: a flush, then the acknowledged
//! offsets), and leaving the consumer group.
//!
//! [`StopDeadline`]: crate::engine::StopDeadline

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::engine::time_left;
use crate::kafka::commit::{commit_within, CommitWait, COMMIT_WAIT};
use crate::serving::scorer::{Scorer, ScorerError};
use crate::serving::scorer_report::Unfinished;
use crate::serving::transactions::Commit;

impl Scorer {
    /// When the stop must be done: as [`ScorerHandle::stop_by`](crate::serving::scorer::ScorerHandle::stop_by) fixed it, else (the loop ended by
    /// itself: `--count`, an error, the reader gone) `shutdown_timeout` from now, fixed now. From
    /// then on the scorer is stopping, whatever ended the loop: a full local queue met by the
    /// last sends is waited on only as a stop's is.
    pub(super) fn deadline(&self) -> Instant {
        self.stop.store(true, Ordering::Relaxed);
        self.stopping
            .fix(Instant::now() + self.config.shutdown_timeout)
    }

    /// What this scorer has not finished, for a line about a stop cut short.
    pub(super) fn unfinished(&self) -> Unfinished {
        Unfinished::new(
            self.tracker.clone(),
            self.committed.clone(),
            self.transactions.is_some(),
        )
    }

    /// The error of a stop whose deadline passed first, with the line saying what was left.
    pub(super) fn cut_short(&self) -> ScorerError {
        let unfinished = self.unfinished();
        // `2 s`, `0.5 s`: as the edge says a bound.
        let bound = self.config.shutdown_timeout.as_secs_f64();
        ScorerError::CutShort(unfinished.cut_short_line(&format!("after {bound} s")))
    }

    /// Leaves the consumer group now, serving the revocation, so that dropping the consumer does
    /// not: rust-rdkafka's drop waits for the close in polls of 100 ms, and the last one always
    /// runs to its end. Takes what is left of `deadline`; returns whether the group was left.
    pub(super) fn leave_group(&self, deadline: Instant) -> bool {
        if let Err(e) = self.consumer.close_queue() {
            tracing::debug!(error = %e, "close");
            return true;
        }
        while !self.consumer.closed() {
            if time_left(deadline).is_zero() {
                // Given up at the deadline: the consumer is never dropped, since rust-rdkafka's
                // drop would poll until the close completes, with no bound, on this thread past
                // the deadline. One reference is leaked so that the last never goes; the process
                // ends soon (as the edge leaves an abandoned engine's clients to the exit).
                std::mem::forget(Arc::clone(&self.consumer));
                return false;
            }
            if let Some(Err(e)) = self.consumer.poll(Duration::from_millis(1)) {
                tracing::debug!(error = %e, "while closing");
            }
        }
        true
    }

    /// The shutdown commit, once the loop has ended. Exactly-once: the open transaction commits
    /// (its outputs and offsets together), or, after a failure, nothing more does.
    /// At-least-once: what is in flight is delivered, and the acknowledged offsets committed.
    /// Either takes what is left of `deadline` (the transactions through the shared
    /// [`StopDeadline`]).
    pub(super) fn commit_on_shutdown(&self, deadline: Instant) -> Result<(), ScorerError> {
        let Some(t) = &self.transactions else {
            return self.flush_and_commit(deadline);
        };
        match t.commit(&self.producer, &self.consumer, &self.config.input_topic) {
            Ok(Commit::Committed | Commit::Nothing) => {
                self.committed.store(true, Ordering::Relaxed);
            }
            // Nothing of it is visible, and its offsets are not committed: the next run scores
            // it.
            Ok(Commit::Aborted) => {}
            Err(reason) => return Err(t.stopped(reason)),
        }
        Ok(())
    }

    /// At-least-once shutdown: delivers what is in flight, for what is left of `deadline` (at
    /// most `shutdown_flush`), then stores and commits the acknowledged offsets, waiting for the
    /// answer at most what is left. Once the deadline has passed no commit is begun, and one not
    /// answered by then is not waited for: the stop is cut short.
    pub(super) fn flush_and_commit(&self, deadline: Instant) -> Result<(), ScorerError> {
        let flush = self.config.shutdown_flush.min(time_left(deadline));
        let left = self.producer.flush_within(flush);
        if left > 0 {
            tracing::warn!(left, "deliveries outstanding after the shutdown flush");
        }
        self.consumer.context().store_ready(&self.consumer);
        let wait = time_left(deadline).min(COMMIT_WAIT);
        if wait.is_zero() {
            return Err(self.cut_short());
        }
        match commit_within(&self.consumer, wait) {
            CommitWait::Committed => self.committed.store(true, Ordering::Relaxed),
            // The deadline, not the commit's own wait, ended it: decided by the wait it was
            // given, not by the clock a moment later.
            CommitWait::Unanswered if wait < COMMIT_WAIT => return Err(self.cut_short()),
            CommitWait::Unanswered => tracing::warn!("commit on shutdown: no answer"),
            CommitWait::Failed(e) => tracing::warn!(error = %e, "commit on shutdown"),
        }
        Ok(())
    }
}
