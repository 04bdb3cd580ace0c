//! What the scorer counts, and what it tells its sink: a [`ScoreReport`] of what happened since
//! the last one, every `REPORT_INTERVAL`, and at the end a [`ScorerSummary`] of the whole run;
//! and, while it stops, what it has not finished ([`Unfinished`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;

use crate::engine::{EngineEvent, ScoreReport, ScoredEvent};
use crate::observe::metrics::BadByClass;
use crate::serving::offsets::{lock, OffsetTracker};
use crate::serving::scorer::{LoopState, Scorer, ScorerSummary};
use crate::serving::transactions::Transactions;

/// How often the scorer reports to its sink.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);

/// What the scorer counted since its last report and since the start, and when it last reported.
///
/// Exactly-once, a record counts once its transaction commits: until then its counts are held,
/// and an aborted transaction's are dropped, so that the records it consumed, scored again after
/// the rewind, are counted once.
pub(super) struct Tally {
    /// What happened since the last report.
    report: ScoreReport,
    /// Counts since the start.
    pub(super) summary: ScorerSummary,
    /// Delivery failures already reported.
    reported_failures: u64,
    /// When the last report went out.
    last_report: Instant,
    /// Exactly-once: the transactions whose outcome settles the held counts.
    transactions: Option<Arc<Transactions>>,
    /// Exactly-once: counts of the records handled since the last transaction ended.
    held: Held,
    /// The transactions' `(committed, aborted)` when the held counts were last settled.
    settled_at: (u64, u64),
    /// Where the next scored event goes in `report.recent` once it holds
    /// [`ScoreReport::RECENT`]: a ring, so that an event is moved once, not shifted.
    next_recent: usize,
    /// Poll batches scored together, and the predictions handled from them.
    pub(super) together: Together,
}

/// What the batch path did in a run: the poll batches whose records were scored together (one
/// model run each, and one of the challenger's) and whose scores were then handled, and how many
/// predictions those were. Written at the end as a debug line: what shows, without timing, that
/// a model which runs batches was run a batch at a time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Together {
    /// Poll batches scored together of which at least one record's scores were handled.
    pub(super) batches: u64,
    /// Records handled with a prediction from such a batch.
    pub(super) predictions: u64,
}

/// Counts of records whose transaction has not ended yet.
#[derive(Debug, Default, PartialEq)]
struct Held {
    scored: u64,
    extrapolated: u64,
    bad: u64,
    bad_by_class: BadByClass,
}

impl Tally {
    /// Nothing counted yet; exactly-once, counts wait for the outcome of their transaction in
    /// `transactions`.
    pub(super) fn new(transactions: Option<Arc<Transactions>>) -> Self {
        Tally {
            report: ScoreReport::default(),
            summary: ScorerSummary::default(),
            reported_failures: 0,
            last_report: Instant::now(),
            settled_at: transactions.as_ref().map_or((0, 0), |t| t.counts()),
            transactions,
            held: Held::default(),
            next_recent: 0,
            together: Together::default(),
        }
    }

    /// Records handled so far, those of the open transaction included: what `--count` counts.
    /// An aborted transaction's no longer count: they are consumed again.
    pub(super) fn handled(&mut self) -> u64 {
        self.settle();
        self.summary.totals.handled() + self.held.scored + self.held.bad
    }

    /// Counts a record that scored, and keeps it among the recent ones.
    pub(super) fn scored(&mut self, event: ScoredEvent) {
        let extrapolated = u64::from(event.extrapolated);
        if self.settle() {
            self.held.scored += 1;
            self.held.extrapolated += extrapolated;
        } else {
            self.add(1, extrapolated);
        }
        let recent = &mut self.report.recent;
        if recent.len() < ScoreReport::RECENT {
            recent.push(event);
        } else {
            recent[self.next_recent] = event;
            self.next_recent = (self.next_recent + 1) % ScoreReport::RECENT;
        }
    }

    /// What happened since the last report, the recent events oldest first; the next report
    /// starts empty.
    fn take_report(&mut self) -> ScoreReport {
        let mut out = std::mem::replace(
            &mut self.report,
            ScoreReport {
                recent: Vec::with_capacity(ScoreReport::RECENT),
                ..ScoreReport::default()
            },
        );
        out.recent
            .rotate_left(std::mem::take(&mut self.next_recent));
        out
    }

    /// Whether nothing happened since the last report.
    pub(super) fn nothing_to_report(&self) -> bool {
        self.report.is_empty()
    }

    /// Counts a record sent to the dead-letter topic, of `class`, for `reason`.
    pub(super) fn bad(&mut self, class: &'static str, reason: String) {
        if self.settle() {
            self.held.bad += 1;
            *self.held.bad_by_class.entry(class).or_default() += 1;
        } else {
            self.add_bad(1, &BadByClass::from([(class, 1)]));
        }
        self.report.last_bad = Some(reason);
    }

    /// Exactly-once: if a transaction ended since the last call, counts the held records when it
    /// committed and drops them when it was aborted (they are consumed and counted again).
    /// Returns whether counts are held (exactly-once). Every record is counted after its own
    /// `Transactions::handled` and settles first, and only the scorer thread ends transactions,
    /// so at most one transaction with records ends between two calls: the held records' own.
    pub(super) fn settle(&mut self) -> bool {
        let Some(outcomes) = self.transactions.as_ref().map(|t| t.counts()) else {
            return false;
        };
        if outcomes != self.settled_at {
            let committed = outcomes.0 > self.settled_at.0;
            self.settled_at = outcomes;
            let held = std::mem::take(&mut self.held);
            if committed {
                self.add(held.scored, held.extrapolated);
                self.add_bad(held.bad, &held.bad_by_class);
            } else if held != Held::default() {
                tracing::debug!(?held, "an aborted transaction's records are counted again");
            }
        }
        true
    }

    fn add(&mut self, scored: u64, extrapolated: u64) {
        self.summary.totals.scored += scored;
        self.summary.totals.extrapolated += extrapolated;
        self.report.scored += scored;
        self.report.extrapolated += extrapolated;
    }

    fn add_bad(&mut self, bad: u64, by_class: &BadByClass) {
        self.summary.totals.bad += bad;
        self.report.bad += bad;
        for (class, n) in by_class {
            *self.report.bad_by_class.entry(class).or_default() += n;
        }
    }
}

/// What a stopping scorer has not finished, readable from another thread while it stops, so that
/// a shutdown cut short can say what it left.
#[derive(Clone)]
pub struct Unfinished {
    tracker: Arc<Mutex<OffsetTracker>>,
    committed: Arc<AtomicBool>,
    /// Whether predictions go out in transactions (what is left is then an open one).
    exactly_once: bool,
}

impl Unfinished {
    /// What is left of the scorer whose offsets `tracker` tracks, whose final commit sets
    /// `committed`, and which writes in transactions if `exactly_once`.
    pub(super) fn new(
        tracker: Arc<Mutex<OffsetTracker>>,
        committed: Arc<AtomicBool>,
        exactly_once: bool,
    ) -> Self {
        Unfinished {
            tracker,
            committed,
            exactly_once,
        }
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
        if self.exactly_once && !self.committed() {
            return format!(
                "shutdown cut short ({how}): what was scored since the last committed \
                 transaction is not committed (a transaction left open is aborted by the broker, \
                 at once when a run with the same --instance-id starts); the next run scores it \
                 again, and read_committed readers see each prediction once"
            );
        }
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
        state.tally.settle();
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
        // The shutdown commit has ended the last transaction.
        tally.settle();
        tally.summary.totals.delivery_errors = self.failures.load(Ordering::Relaxed);
        tally.report.delivery_errors =
            tally.summary.totals.delivery_errors - tally.reported_failures;
        self.emit_report(&mut state);
        state.tally.summary.latency = lock(&self.tracker).latency();
        let left = lock(&self.tracker).in_flight();
        if left > 0 {
            tracing::warn!(left, "records still unacknowledged at shutdown");
        }
        let together = state.tally.together;
        tracing::debug!(
            batches = together.batches,
            predictions = together.predictions,
            "scored together"
        );
        state.tally.summary
    }

    /// Sends what happened since the last report to the sink.
    fn emit_report(&self, state: &mut LoopState) {
        if state.tally.report.is_empty() {
            return;
        }
        let mut out = state.tally.take_report();
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

/// How long a refusal to write noted at the start waits for the consumer's own refusal, unless
/// partitions are assigned first.
const READ_REFUSAL_GRACE: Duration = Duration::from_secs(5);

/// What the broker refused this scorer, said as one line.
impl Scorer {
    /// `not authorized to WHAT as USER`.
    pub(super) fn not_authorized(&self, what: &str) -> String {
        match self.config.kafka.sasl_user() {
            Some(user) => format!("not authorized to {what} as {user}"),
            None => format!("not authorized to {what}"),
        }
    }

    /// What the broker refused, if anything: the consumer's refusal, else a delivery refused
    /// for want of a permission (predictions and dead letters share a producer; the output
    /// topic is named when there is one).
    pub(super) fn refusal(&self, state: &LoopState) -> Option<String> {
        if let Some(line) = &state.refused {
            return Some(line.clone());
        }
        let code = rdkafka::producer::Producer::context(&**self.producer).refused()?;
        // An idempotent producer is refused its id at the start, before the consumer has heard
        // whether it may read: a refusal to read says more, and comes within a moment (or the
        // partitions are assigned, and reading is allowed).
        if state.began.elapsed() < READ_REFUSAL_GRACE
            && self.consumer.assignment().map_or(true, |a| a.count() == 0)
        {
            return None;
        }
        let topic = self
            .config
            .output_topic
            .as_deref()
            .unwrap_or(&self.config.dlq_topic);
        Some(match code {
            // An idempotent producer is refused its producer id (cluster authorization) when
            // its principal may write no topic at all, the output topic among them.
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed => {
                self.not_authorized(&format!("write topic {topic}"))
            }
            other => self.not_authorized(&format!("write topic {topic} ({other})")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_the_latest_events_oldest_first() {
        let event = |offset| ScoredEvent {
            partition: 0,
            offset,
            event_ms: None,
            features: crate::engine::FeatureRow::years(1.0),
            predicted: 0.0,
            salary: None,
            challenger: None,
            latency_ms: None,
            extrapolated: false,
        };
        let mut tally = Tally::new(None);
        for offset in 0..150 {
            tally.scored(event(offset));
        }
        let offsets =
            |report: ScoreReport| -> Vec<i64> { report.recent.iter().map(|e| e.offset).collect() };
        let want: Vec<i64> = (86..150).collect();
        assert_eq!(offsets(tally.take_report()), want);
        assert_eq!(
            tally.take_report().scored,
            0,
            "the next report starts empty"
        );
        for offset in 150..160 {
            tally.scored(event(offset));
        }
        let want: Vec<i64> = (150..160).collect();
        assert_eq!(offsets(tally.take_report()), want);
    }

    #[test]
    fn a_stop_cut_short_says_what_its_delivery_mode_leaves() {
        let line = |exactly_once: bool, committed: bool| {
            let mut tracker = OffsetTracker::default();
            if !committed {
                tracker.track(0, 7, None);
            }
            let unfinished = Unfinished::new(
                Arc::new(Mutex::new(tracker)),
                Arc::new(AtomicBool::new(committed)),
                exactly_once,
            );
            unfinished.cut_short_line("after 2 s")
        };
        assert_eq!(
            line(false, false),
            "shutdown cut short (after 2 s): 1 prediction or dead letter not acknowledged, and \
             its input offset not committed; the next run scores them again (at-least-once: \
             nothing is lost, some may repeat)"
        );
        assert_eq!(
            line(true, false),
            "shutdown cut short (after 2 s): what was scored since the last committed \
             transaction is not committed (a transaction left open is aborted by the broker, at \
             once when a run with the same --instance-id starts); the next run scores it again, \
             and read_committed readers see each prediction once"
        );
        assert!(
            line(true, true).ends_with("while leaving the group: every offset was committed; the group rebalances once the session times out"),
            "{}",
            line(true, true)
        );
    }

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
