//! What the scorer counts, and what it tells its sink: a [`ScoreReport`] of what happened since
//! the last one, every `REPORT_INTERVAL`, and at the end a [`ScorerSummary`] of the whole run;
//! and, while it stops, what it has not finished ([`Unfinished`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::engine::{EngineEvent, ScoreReport, ScoredEvent};
use crate::serving::offsets::{lock, OffsetTracker};
use crate::serving::scorer::{LoopState, Scorer, ScorerSummary};

/// How often the scorer reports to its sink.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);

/// What the scorer counted since its last report and since the start, and when it last reported.
pub(super) struct Tally {
    /// What happened since the last report.
    report: ScoreReport,
    /// Counts since the start.
    pub(super) summary: ScorerSummary,
    /// Delivery failures already reported.
    reported_failures: u64,
    /// When the last report went out.
    last_report: Instant,
}

impl Tally {
    /// Nothing counted yet.
    pub(super) fn new() -> Self {
        Tally {
            report: ScoreReport::default(),
            summary: ScorerSummary::default(),
            reported_failures: 0,
            last_report: Instant::now(),
        }
    }

    /// Counts a record that scored, and keeps it among the recent ones.
    pub(super) fn scored(&mut self, event: ScoredEvent) {
        self.summary.totals.scored += 1;
        self.summary.totals.extrapolated += u64::from(event.extrapolated);
        let report = &mut self.report;
        report.scored += 1;
        report.extrapolated += u64::from(event.extrapolated);
        report.recent.push(event);
        if report.recent.len() >= 2 * ScoreReport::RECENT {
            report.recent.drain(..ScoreReport::RECENT);
        }
    }

    /// Whether nothing happened since the last report.
    pub(super) fn nothing_to_report(&self) -> bool {
        self.report.is_empty()
    }

    /// Counts a record sent to the dead-letter topic, of `class`, for `reason`.
    pub(super) fn bad(&mut self, class: &'static str, reason: String) {
        self.summary.totals.bad += 1;
        let report = &mut self.report;
        report.bad += 1;
        *report.bad_by_class.entry(class).or_default() += 1;
        report.last_bad = Some(reason);
    }
}

/// What a stopping scorer has not finished, readable from another thread while it stops, so that
/// a shutdown cut short can say what it left.
#[derive(Clone)]
pub struct Unfinished {
    tracker: Arc<Mutex<OffsetTracker>>,
    committed: Arc<AtomicBool>,
}

impl Unfinished {
    /// What is left of the scorer whose offsets `tracker` tracks, and whose final commit sets
    /// `committed`.
    pub(super) fn new(tracker: Arc<Mutex<OffsetTracker>>, committed: Arc<AtomicBool>) -> Self {
        Unfinished { tracker, committed }
    }

    /// Predictions and dead letters not acknowledged yet; `None` if that cannot be read now.
    pub fn unacknowledged(&self) -> Option<usize> {
        self.tracker.try_lock().ok().map(|t| t.unacknowledged())
    }

    /// Whether the final offset commit went through.
    pub fn committed(&self) -> bool {
        self.committed.load(Ordering::Relaxed)
    }

    /// The one line said when stopping is cut short `how` (`after 5 s`, `on SIGINT`).
    pub fn cut_short_line(&self, how: &str) -> String {
        const AGAIN: &str =
            "the next run scores them again (at-least-once: nothing is lost, some may repeat)";
        let left = match (self.unacknowledged(), self.committed()) {
            (Some(0) | None, true) => {
                return format!(
                    "shutdown cut short ({how}) while leaving the group: every offset was \
                     committed; the group rebalances once the session times out"
                )
            }
            (Some(0), _) => format!(
                "every prediction was acknowledged, but the final offset commit did not go \
                 through; records handled since the last commit were not committed, and {AGAIN}"
            ),
            (Some(n), _) => format!(
                "{n} prediction{s} or dead letter{s} not acknowledged, and {their} input \
                 offset{s} not committed; {AGAIN}",
                s = if n == 1 { "" } else { "s" },
                their = if n == 1 { "its" } else { "their" },
            ),
            (None, false) => {
                format!("predictions may be unacknowledged and offsets uncommitted; {AGAIN}")
            }
        };
        format!("shutdown cut short ({how}): {left}")
    }
}

impl Scorer {
    /// The report step: every [`REPORT_INTERVAL`], lets the policy act on the models, reports to
    /// the sink, flushes the writer, and tells the consumer's context each partition's latest
    /// event time.
    pub(super) fn report_if_due(&self, now: Instant, state: &mut LoopState) {
        if now.duration_since(state.tally.last_report) < REPORT_INTERVAL {
            return;
        }
        self.emit_model_events(state.slots.apply_policy(crate::engine::now_ms()));
        let failures = self.failures.load(Ordering::Relaxed);
        state.tally.report.delivery_errors = failures - state.tally.reported_failures;
        state.tally.reported_failures = failures;
        self.emit_report(state);
        state.outputs.flush_writer();
        let context = self.consumer.context();
        forget(&mut state.last_event_ms, &context.take_revoked());
        context.set_last_event_ms(&state.last_event_ms);
        state.tally.last_report = now;
    }

    /// The last report, once the loop has ended and its offsets are committed, and the summary
    /// of the run.
    pub(super) fn final_report(&self, mut state: LoopState) -> ScorerSummary {
        state.outputs.flush_writer();
        let tally = &mut state.tally;
        tally.summary.totals.delivery_errors = self.failures.load(Ordering::Relaxed);
        tally.report.delivery_errors =
            tally.summary.totals.delivery_errors - tally.reported_failures;
        self.emit_report(&mut state);
        state.tally.summary.latency = lock(&self.tracker).latency();
        let left = lock(&self.tracker).in_flight();
        if left > 0 {
            tracing::warn!(left, "records still unacknowledged at shutdown");
        }
        state.tally.summary
    }

    /// Sends what happened since the last report to the sink.
    fn emit_report(&self, state: &mut LoopState) {
        if state.tally.report.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut state.tally.report);
        let excess = out.recent.len().saturating_sub(ScoreReport::RECENT);
        out.recent.drain(..excess);
        out.latency = lock(&self.tracker).recent_latency(crate::engine::now_ms_precise());
        out.transactions = self.transactions.as_ref().map(|t| t.counts());
        out.accuracy = state.slots.accuracy();
        out.drift = state.slots.alarm();
        out.comparison = state.slots.comparison();
        self.sink.emit(EngineEvent::Scored(out));
    }
}

/// Forgets the last event times of `revoked` partitions: a partition that comes back starts
/// anew, and one that never does no longer holds its entry.
fn forget(last_event_ms: &mut std::collections::BTreeMap<i32, i64>, revoked: &[i32]) {
    for p in revoked {
        last_event_ms.remove(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_partitions_lose_their_last_event_times() {
        let mut last: std::collections::BTreeMap<i32, i64> =
            [(0, 10), (1, 20), (2, 30)].into_iter().collect();
        forget(&mut last, &[]);
        assert_eq!(last.len(), 3);
        forget(&mut last, &[0, 2, 7]);
        assert_eq!(last.into_iter().collect::<Vec<_>>(), vec![(1, 20)]);
    }
}
