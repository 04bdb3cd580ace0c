//! Exactly-once scoring (`--exactly-once`): predictions, dead letters and the input offsets they
//! consumed go to Kafka in one transaction, committed on a short interval, at a revocation and at
//! shutdown.
//!
//! A broker that stops answering (a restart, a lost leader) is waited for: the calls librdkafka
//! calls retriable are retried for up to [`RETRY_FOR`]. A transaction that can no longer commit
//! (its records timed out while the broker was away) is aborted, and the consumer goes back to the
//! last committed offsets, so that the aborted records are scored again in the next transaction:
//! no gap, no repeat. A fatal error (the producer was fenced by a newer instance with the same
//! `transactional.id`), a broker without transactions, or aborts that keep coming stop the
//! scorer; the next run starts where the last committed transaction ended.
//!
//! Each call into librdkafka's transactions runs under a [`CallWatch`]: one that does not
//! return within its timeout and a margin (librdkafka can wait forever, see there), or once
//! stopping by the stop's deadline, stops the scorer too, with nothing more committed.
//!
//! Once the scorer stops, its [`StopDeadline`] bounds every call and retry: each takes what is
//! left of it, and a transaction still open when it passes is neither committed nor aborted
//! (the broker aborts it), so the stop ends on time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use crate::engine::StopDeadline;
use crate::serving::call_watch::{CallWatch, StuckCall};
use crate::serving::offsets::{lock, OffsetTracker, ScoringProducer};
use crate::serving::scorer::ScorerError;

/// How long one transactional call may wait for the broker.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a commit or an abort retries while the broker answers with retriable errors.
pub const RETRY_FOR: Duration = Duration::from_secs(30);
/// Aborts in a row, with no commit between them, after which the scorer stops.
const ABORTS_IN_A_ROW: u32 = 3;

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Nothing was consumed since the last commit.
    Nothing,
    /// The outputs and offsets are committed.
    Committed,
    /// The transaction was aborted, and the consumer rewound to the last committed offsets.
    Aborted,
}

/// The transactions of one scorer: what the open one has consumed, and how many ended how.
#[derive(Debug)]
pub struct Transactions {
    /// How often the open transaction is committed.
    pub interval: Duration,
    /// Per input partition, the next offset to consume once the open transaction commits.
    open: Mutex<BTreeMap<i32, i64>>,
    committed: AtomicU64,
    aborted: AtomicU64,
    /// Aborts since the last commit.
    aborts_in_a_row: AtomicU32,
    /// Where a partition without a committed offset starts again after an abort.
    reset: Offset,
    /// Where each partition without a committed offset started in this run (`-o` may name a
    /// position of its own for each); a rewind goes back there rather than to `reset`.
    starts: Mutex<BTreeMap<i32, Offset>>,
    /// The scorer's deliveries: an aborted transaction's are never acknowledged, and go.
    tracker: Arc<Mutex<OffsetTracker>>,
    /// Why the scorer must stop, once a transaction could not commit.
    failure: Mutex<Option<String>>,
    /// Whether that failure is one a new run gets past: the producer cannot go on, and nothing
    /// says another instance took its `transactional.id` over.
    resumable: AtomicBool,
    /// Why the open transaction must be aborted rather than committed, if it must.
    doomed: Mutex<Option<String>>,
    /// Where each call into librdkafka's transactions runs, waited for at most its bound.
    calls: CallWatch,
    /// When the scorer's stop must be done, once it stops: calls and retries take what is left.
    stopping: StopDeadline,
    /// Set once a call was refused because its share of what was left of the deadline was
    /// nothing: the stop is out of time from then on, whatever the clock says a moment later.
    ran_out: AtomicBool,
    /// Test hook (debug builds only): this many transactions with records are aborted, as if
    /// the broker had failed them, before any commits.
    #[cfg(debug_assertions)]
    forced_aborts: AtomicU32,
    /// Test hook (debug builds only): `send_offsets_to_transaction` never returns, as
    /// librdkafka's can when the coordinator's node is lost ([`crate::serving::call_watch`]).
    #[cfg(debug_assertions)]
    hang_send_offsets: bool,
}

impl Transactions {
    /// Transactions committed every `interval`, their calls made through `calls`; after an
    /// abort, a partition without a committed offset starts again at `reset` (the consumer's
    /// `auto.offset.reset`), and `tracker` forgets the aborted outputs. Once `stopping` is
    /// fixed, each call and retry takes at most what is left of it.
    pub fn new(
        interval: Duration,
        reset: Offset,
        tracker: Arc<Mutex<OffsetTracker>>,
        calls: CallWatch,
        stopping: StopDeadline,
    ) -> Self {
        Transactions {
            interval,
            open: Mutex::new(BTreeMap::new()),
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            aborts_in_a_row: AtomicU32::new(0),
            reset,
            starts: Mutex::new(BTreeMap::new()),
            tracker,
            failure: Mutex::new(None),
            resumable: AtomicBool::new(false),
            doomed: Mutex::new(None),
            calls,
            stopping,
            ran_out: AtomicBool::new(false),
            #[cfg(debug_assertions)]
            forced_aborts: AtomicU32::new(
                std::env::var("SALARY_STREAM_TEST_ABORT_TRANSACTIONS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
            #[cfg(debug_assertions)]
            hang_send_offsets: std::env::var_os("SALARY_STREAM_TEST_HANG_SEND_OFFSETS").is_some(),
        }
    }

    /// Notes that `offset` of `partition` was handled inside the open transaction.
    pub fn handled(&self, partition: i32, offset: i64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partition, offset + 1);
    }

    /// Notes that the open transaction lacks an output of a record it consumed (the producer
    /// refused it): it is aborted rather than committed, and its records consumed again.
    pub fn must_abort(&self, reason: String) {
        self.doomed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(reason);
    }

    /// Whether the open transaction has handled nothing yet.
    pub fn nothing_open(&self) -> bool {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// `(committed, aborted)` so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.committed.load(Ordering::Relaxed),
            self.aborted.load(Ordering::Relaxed),
        )
    }

    /// Why the scorer must stop, if a transaction failed.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The error the scorer stops with for `reason`: the stuck call's own, when a call got stuck.
    pub fn stopped(&self, reason: String) -> ScorerError {
        match self.calls.stuck() {
            Some(stuck) => ScorerError::Stuck(stuck),
            None if self.resumable.load(Ordering::Relaxed) => ScorerError::Resumable(reason),
            None => ScorerError::Transactions(reason),
        }
    }

    /// Runs librdkafka's transactional call `name` through the watch, given its own timeout for
    /// each of its `waits` (rust-rdkafka's commit flushes first, with the same one: two):
    /// [`CALL_TIMEOUT`], or its share of what is left of the stop's deadline. A call that got
    /// stuck, or one the deadline left no time for, comes back as an error no retry takes up (what
    /// it is, [`Transactions::commit`] says).
    fn call(
        &self,
        name: &'static str,
        waits: u32,
        call: impl FnOnce(Duration) -> KafkaResult<()> + Send + 'static,
    ) -> KafkaResult<()> {
        // Stopping, the call's waits share what is left of the deadline, so that it ends by then.
        let timeout = match self.stopping.get() {
            Some(deadline) => CALL_TIMEOUT.min(crate::engine::time_left(deadline) / waits),
            None => CALL_TIMEOUT,
        };
        if timeout.is_zero() {
            // Decided here, once: a share that rounds to nothing is out of time, though the
            // deadline itself may be a few nanoseconds off ([`Transactions::out_of_time`]).
            self.ran_out.store(true, Ordering::Relaxed);
            return Err(KafkaError::Canceled);
        }
        self.calls
            .run_within(name, timeout * waits, &self.stopping, move || call(timeout))
            .unwrap_or(Err(KafkaError::Canceled))
    }

    /// Until when a commit or an abort begun now retries: [`RETRY_FOR`], or the stop's deadline
    /// if that comes first.
    fn retry_until(&self) -> Instant {
        let own = Instant::now() + RETRY_FOR;
        self.stopping
            .get()
            .map_or(own, |deadline| deadline.min(own))
    }

    /// Fails the scorer because the stop's deadline passed (or left a call no time) with the
    /// open transaction neither seen to commit nor to abort, if it did. A commit that timed out
    /// may still complete at the broker (its EndTxn may have got there): the line says either.
    fn out_of_time(&self, reason: &str) -> Option<String> {
        if !self.ran_out.load(Ordering::Relaxed) && !self.stopping.passed() {
            return None;
        }
        Some(self.fail(format!(
            "the shutdown deadline passed before the open transaction was seen to commit \
             ({reason}); the broker aborts it unless its commit had already reached it, and the \
             next run starts after the last transaction that committed"
        )))
    }

    /// Fails the scorer with the stuck call's line, if a call got stuck.
    fn stuck(&self) -> Option<String> {
        let stuck: StuckCall = self.calls.stuck()?;
        Some(self.fail(stuck.to_string()))
    }

    /// Commits the open transaction with the input offsets it consumed, and opens the next. A
    /// transaction that cannot commit is aborted and the consumer rewound ([`Commit::Aborted`]);
    /// when the scorer must stop instead, this records why and returns the reason. Once the
    /// scorer must stop, nothing is committed.
    pub fn commit<C: ConsumerContext>(
        &self,
        producer: &Arc<ScoringProducer>,
        consumer: &BaseConsumer<C>,
        topic: &str,
    ) -> Result<Commit, String> {
        if let Some(reason) = self.failure() {
            return Err(reason);
        }
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(PoisonError::into_inner));
        let doomed = self
            .doomed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if open.is_empty() {
            return Ok(Commit::Nothing);
        }
        if let Some(reason) = doomed {
            return self.abort_and_rewind(producer, consumer, reason);
        }
        #[cfg(debug_assertions)]
        if self
            .forced_aborts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return self.abort_and_rewind(producer, consumer, "test hook: aborted".to_owned());
        }
        let deadline = self.retry_until();
        let attempt = || -> KafkaResult<()> {
            let mut offsets = TopicPartitionList::with_capacity(open.len());
            for (&partition, &next) in &open {
                offsets.add_partition_offset(topic, partition, Offset::Offset(next))?;
            }
            let offsets = Arc::new(offsets);
            let group = Arc::new(consumer.group_metadata().ok_or_else(|| {
                KafkaError::Subscription("the consumer has no group metadata".into())
            })?);
            retried(deadline, || {
                let (p, offsets, group) = (producer.clone(), offsets.clone(), group.clone());
                #[cfg(debug_assertions)]
                let hang = self.hang_send_offsets;
                self.call("send_offsets_to_transaction", 1, move |timeout| {
                    #[cfg(debug_assertions)]
                    if hang {
                        loop {
                            std::thread::park();
                        }
                    }
                    p.send_offsets_to_transaction(&offsets, &group, timeout)
                })
            })?;
            retried(deadline, || {
                let p = producer.clone();
                // rust-rdkafka flushes first, with the same timeout: two waits.
                self.call("commit_transaction", 2, move |timeout| {
                    p.commit_transaction(timeout)
                })
            })
        };
        let error = match attempt() {
            Ok(()) => {
                self.committed.fetch_add(1, Ordering::Relaxed);
                self.aborts_in_a_row.store(0, Ordering::Relaxed);
                return self.begin(producer).map(|()| Commit::Committed);
            }
            Err(e) => e,
        };
        // A call that never returned: its transaction stays open, uncommitted, until the
        // coordinator aborts it or a new producer with this transactional.id fences this one.
        if let Some(line) = self.stuck() {
            return Err(line);
        }
        let reason = error.to_string();
        if let Some(line) = self.out_of_time(&reason) {
            return Err(line);
        }
        if unsupported(&error) {
            self.abort_quietly(producer);
            return Err(self.fail(format!(
                "the broker does not support transactions ({reason}); exactly-once needs one \
                 that does, such as Apache Kafka"
            )));
        }
        if is_fatal(&error) {
            return Err(self.fail(format!(
                "a transaction failed and the producer cannot go on: {reason}"
            )));
        }
        // Abortable, or retriable past the deadline: abort, and consume again from the last
        // committed offsets.
        self.abort_and_rewind(producer, consumer, reason)
    }

    /// Aborts the open transaction, which could not commit for `reason`, sends the consumer back
    /// to the last committed offsets and opens the next; stops the scorer when aborts keep
    /// coming.
    fn abort_and_rewind<C: ConsumerContext>(
        &self,
        producer: &Arc<ScoringProducer>,
        consumer: &BaseConsumer<C>,
        reason: String,
    ) -> Result<Commit, String> {
        let abort_deadline = self.retry_until();
        if let Err(e) = retried(abort_deadline, || {
            let p = producer.clone();
            self.call("abort_transaction", 1, move |timeout| {
                p.abort_transaction(timeout)
            })
        }) {
            if let Some(line) = self.stuck() {
                return Err(line);
            }
            if let Some(line) = self.out_of_time(&reason) {
                return Err(line);
            }
            // Seen when the coordinator had already aborted it (past transaction.timeout.ms
            // while a leader was lost): a new producer with this transactional.id goes on.
            if self.failure().is_none() && !fenced(&e) {
                self.resumable.store(true, Ordering::Relaxed);
            }
            return Err(self.fail(format!(
                "a transaction could not commit ({reason}) nor abort: {e}"
            )));
        }
        self.aborted.fetch_add(1, Ordering::Relaxed);
        // Its outputs are purged, never acknowledged: they are produced again.
        lock(&self.tracker).forget_all();
        let in_a_row = self.aborts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if in_a_row >= ABORTS_IN_A_ROW {
            return Err(self.fail(format!(
                "{in_a_row} transactions in a row could not commit and were aborted; the last: \
                 {reason}"
            )));
        }
        tracing::warn!(%reason, "transaction aborted; consuming again from the last commit");
        if let Err(e) = retried(abort_deadline, || {
            let starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
            rewind(
                consumer,
                self.reset,
                &starts,
                self.stopping.cap(CALL_TIMEOUT),
            )
        }) {
            return Err(self.fail(format!(
                "after an aborted transaction, the consumer could not go back to the last \
                 committed offsets: {e}"
            )));
        }
        self.begin(producer).map(|()| Commit::Aborted)
    }

    /// Notes that `partition`, which has no committed offset, started at `offset` in this run.
    pub fn started_at(&self, partition: i32, offset: Offset) {
        self.starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partition, offset);
    }

    fn begin(&self, producer: &ScoringProducer) -> Result<(), String> {
        producer
            .begin_transaction()
            .map_err(|e| self.fail(format!("cannot begin a transaction: {e}")))
    }

    fn abort_quietly(&self, producer: &Arc<ScoringProducer>) {
        let p = producer.clone();
        if let Err(e) = self.call("abort_transaction", 1, move |timeout| {
            p.abort_transaction(timeout)
        }) {
            tracing::debug!(error = %e, "abort_transaction");
        }
        self.aborted.fetch_add(1, Ordering::Relaxed);
    }

    fn fail(&self, reason: String) -> String {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(reason)
            .clone()
    }
}

/// Runs `call` again while it fails with an error librdkafka calls retriable, until `deadline`.
pub(crate) fn retried(
    deadline: Instant,
    mut call: impl FnMut() -> KafkaResult<()>,
) -> KafkaResult<()> {
    loop {
        match call() {
            Err(e) if is_retriable(&e) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "transactional call; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// The broker does not do transactions (tansu 0.6 answers EndTxn so): no retry can help.
fn unsupported(error: &KafkaError) -> bool {
    error.to_string().contains("not supported by broker")
}

fn is_retriable(error: &KafkaError) -> bool {
    if unsupported(error) {
        return false;
    }
    use rdkafka::error::RDKafkaErrorCode::{
        CoordinatorLoadInProgress, CoordinatorNotAvailable, NotCoordinator, OperationTimedOut,
    };
    match error {
        KafkaError::Transaction(e) => e.is_retriable(),
        // A seek or a committed-offsets lookup that timed out, or whose group coordinator is
        // moving to another node (its own was lost or paused): the next asks the new one.
        other => matches!(
            other.rdkafka_error_code(),
            Some(
                OperationTimedOut
                    | NotCoordinator
                    | CoordinatorNotAvailable
                    | CoordinatorLoadInProgress
            )
        ),
    }
}

/// Another producer with this `transactional.id` took over: this one must not come back.
fn fenced(error: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode::{InvalidProducerEpoch, ProducerFenced};
    matches!(error, KafkaError::Transaction(e) if matches!(e.code(), ProducerFenced | InvalidProducerEpoch))
}

fn is_fatal(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_fatal())
}

/// Sends every assigned partition back to its last committed offset (where it has none, where it
/// started, else `reset`), so that what an aborted transaction consumed is consumed again; each
/// of its two requests waits at most `timeout`.
fn rewind<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    reset: Offset,
    starts: &BTreeMap<i32, Offset>,
    timeout: Duration,
) -> KafkaResult<()> {
    let committed = consumer.committed(timeout)?;
    let mut positions = TopicPartitionList::with_capacity(committed.count());
    for p in committed.elements() {
        let offset = match p.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => starts.get(&p.partition()).copied().unwrap_or(reset),
        };
        positions.add_partition_offset(p.topic(), p.partition(), offset)?;
    }
    if positions.count() == 0 {
        return Ok(());
    }
    for p in consumer.seek_partitions(positions, timeout)?.elements() {
        p.error()?;
    }
    Ok(())
}

/// The `transactional.id` of a scorer: one per group and instance, so a restarted instance
/// fences its crashed predecessor and aborts what it left open.
pub fn transactional_id(group: &str, instance: &str) -> String {
    format!("salary-stream-{group}-{instance}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewind_is_tried_again_while_the_group_coordinator_moves_and_not_on_other_errors() {
        use rdkafka::error::RDKafkaErrorCode::{
            CoordinatorLoadInProgress, CoordinatorNotAvailable, NotCoordinator, OperationTimedOut,
            UnknownTopicOrPartition,
        };
        // As the committed-offsets lookup of a rewind failed on three nodes, a paused node the
        // group's coordinator.
        let lookup = |code| KafkaError::MetadataFetch(code);
        for code in [
            NotCoordinator,
            CoordinatorNotAvailable,
            CoordinatorLoadInProgress,
            OperationTimedOut,
        ] {
            assert!(is_retriable(&lookup(code)), "{code:?}");
        }
        assert!(!is_retriable(&lookup(UnknownTopicOrPartition)));
        assert!(!is_retriable(&KafkaError::Seek("bad offset".into())));
        let mut calls = 0;
        let result = retried(Instant::now() + Duration::from_secs(5), || {
            calls += 1;
            if calls < 3 {
                Err(lookup(NotCoordinator))
            } else {
                Ok(())
            }
        });
        assert_eq!((result.is_ok(), calls), (true, 3));
    }

    #[test]
    fn the_open_transaction_keeps_the_next_offset_of_each_partition() {
        let t = Transactions::new(
            Duration::from_millis(100),
            Offset::Beginning,
            Arc::default(),
            CallWatch::start().unwrap(),
            StopDeadline::default(),
        );
        t.handled(0, 4);
        t.handled(2, 9);
        t.handled(0, 5);
        let open = t.open.lock().unwrap().clone();
        assert_eq!(open, BTreeMap::from([(0, 6), (2, 10)]));
        assert_eq!(t.counts(), (0, 0));
        assert_eq!(transactional_id("g", "host-1"), "salary-stream-g-host-1");
    }

    #[test]
    fn once_the_stop_s_deadline_passed_no_call_is_made_and_the_open_transaction_is_left() {
        let stopping = StopDeadline::default();
        let t = Transactions::new(
            Duration::from_millis(100),
            Offset::Beginning,
            Arc::default(),
            CallWatch::start().unwrap(),
            stopping.clone(),
        );
        // Before a stop, a call gets the whole of its own timeout.
        assert_eq!(
            t.call("send_offsets_to_transaction", 1, |timeout| {
                assert_eq!(timeout, CALL_TIMEOUT);
                Ok(())
            }),
            Ok(())
        );
        assert!(t.retry_until() > Instant::now() + RETRY_FOR - Duration::from_secs(1));
        assert_eq!(t.out_of_time("any"), None);
        stopping.fix(Instant::now() - Duration::from_millis(1));
        // An expired deadline leaves a call no time at all: it is not made.
        let made = Arc::new(AtomicBool::new(false));
        let making = made.clone();
        assert!(matches!(
            t.call("commit_transaction", 2, move |_| {
                making.store(true, Ordering::Relaxed);
                Ok(())
            }),
            Err(KafkaError::Canceled)
        ));
        assert!(!made.load(Ordering::Relaxed));
        assert!(t.retry_until() <= Instant::now());
        let line = t.out_of_time("Operation timed out").unwrap();
        assert_eq!(
            line,
            "the shutdown deadline passed before the open transaction was seen to commit \
             (Operation timed out); the broker aborts it unless its commit had already reached \
             it, and the next run starts after the last transaction that committed"
        );
        // The scorer stops with it, and nothing more is committed.
        assert_eq!(t.failure(), Some(line));
        assert!(matches!(
            t.stopped("x".into()),
            ScorerError::Transactions(_)
        ));
    }

    #[test]
    fn a_call_refused_for_want_of_time_makes_the_stop_out_of_time_though_the_clock_says_not() {
        let stopping = StopDeadline::default();
        let t = Transactions::new(
            Duration::from_millis(100),
            Offset::Beginning,
            Arc::default(),
            CallWatch::start().unwrap(),
            stopping.clone(),
        );
        // An hour left: not out of time.
        stopping.fix(Instant::now() + Duration::from_secs(3600));
        assert_eq!(t.out_of_time("any"), None);
        // As when what was left, shared by a call's waits, rounded to nothing a few nanoseconds
        // before the deadline: the Canceled that came of it is the stop out of time, not a
        // failure (which could make the run resumable, exit 75).
        t.ran_out.store(true, Ordering::Relaxed);
        assert!(t.out_of_time("Operation was canceled").is_some());
        assert!(!t.resumable.load(Ordering::Relaxed));
        // The refusal itself is what marks it.
        let late = StopDeadline::default();
        late.fix(Instant::now());
        let u = Transactions::new(
            Duration::from_millis(100),
            Offset::Beginning,
            Arc::default(),
            CallWatch::start().unwrap(),
            late,
        );
        assert!(!u.ran_out.load(Ordering::Relaxed));
        assert!(matches!(
            u.call("commit_transaction", 2, |_| Ok(())),
            Err(KafkaError::Canceled)
        ));
        assert!(u.ran_out.load(Ordering::Relaxed));
    }
}
