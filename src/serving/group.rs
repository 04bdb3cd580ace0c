//! The scorer's place in its consumer group: where a new partition starts, what is finished before
//! a partition goes to another member, and the lag the client's statistics report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::engine::{EngineEvent, LagByPartition, SharedSink, StopDeadline};
use crate::kafka::commit::{commit_within, CommitWait, COMMIT_WAIT};
use crate::kafka::intake::RecordQueue;
use crate::kafka::offset_spec::{self, OffsetSpec};
use crate::serving::offsets::{lock, OffsetTracker, ScoringProducer};
use crate::serving::transactions::Transactions;

/// How long a new assignment waits for its committed offsets before leaving the lookup to
/// librdkafka.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(2);

/// The share of `revoke_flush` (the stop's bound, `--shutdown-timeout`) that an ordinary
/// rebalance's revocation waits for outstanding deliveries: 3 s of the default 5, as before the
/// one stop deadline gave a stop's flush the whole bound.
const REBALANCE_FLUSH_SHARE: f64 = 0.6;

/// The consumer side: rebalances, statistics and errors.
pub struct ScoringContext {
    /// The most a stop's revocation waits for outstanding deliveries (an ordinary rebalance's
    /// waits [`REBALANCE_FLUSH_SHARE`] of it).
    revoke_flush: Duration,
    sink: SharedSink,
    topic: String,
    tracker: Arc<Mutex<OffsetTracker>>,
    producer: Arc<ScoringProducer>,
    /// Where assigned partitions' records go; weak, because the queue must go before the client.
    records: OnceLock<Weak<RecordQueue>>,
    /// Where a partition without a committed offset starts (`-o`, else `auto.offset.reset`), if
    /// that names a position.
    start_uncommitted_at: Option<OffsetSpec>,
    /// The event time of the last record handled from each partition, as of the last report: how
    /// far behind in time a lagging partition is.
    last_event_ms: Mutex<BTreeMap<i32, i64>>,
    /// Exactly-once: the scorer's transactions, committed here too before partitions go.
    transactions: Option<Arc<Transactions>>,
    /// Brokers up and leader changes, from the statistics.
    cluster: Mutex<crate::observe::cluster::ClusterWatch>,
    /// Partitions revoked since the scorer last asked: it forgets their last event times.
    revoked: Mutex<Vec<i32>>,
    /// Rebalances served so far: one resumes an intake paused while idle.
    rebalances: AtomicU64,
    /// When the scorer's stop must be done, once it stops: the revocation of leaving the group
    /// takes what is left of it.
    stopping: StopDeadline,
}

/// The position `auto.offset.reset` names, if it names one (`error` does not).
pub fn reset_position(setting: Option<&str>) -> Option<OffsetSpec> {
    match setting? {
        "smallest" | "earliest" | "beginning" => Some(OffsetSpec::Beginning),
        "largest" | "latest" | "end" => Some(OffsetSpec::End),
        _ => None,
    }
}

impl ScoringContext {
    /// The context of a scorer consuming `topic`: a revocation waits up to `revoke_flush` for
    /// outstanding deliveries, and partitions without a committed offset start at
    /// `start_uncommitted_at`.
    pub fn new(
        topic: String,
        revoke_flush: Duration,
        sink: SharedSink,
        tracker: Arc<Mutex<OffsetTracker>>,
        producer: Arc<ScoringProducer>,
        start_uncommitted_at: Option<OffsetSpec>,
        transactions: Option<Arc<Transactions>>,
    ) -> Self {
        ScoringContext {
            stopping: StopDeadline::default(),
            cluster: Mutex::default(),
            revoked: Mutex::default(),
            rebalances: AtomicU64::new(0),
            revoke_flush,
            sink,
            topic,
            tracker,
            producer,
            records: OnceLock::new(),
            start_uncommitted_at,
            last_event_ms: Mutex::new(BTreeMap::new()),
            transactions,
        }
    }

    /// The same context, whose revocations take at most what is left of `stopping` once a stop
    /// fixes it.
    pub fn stopping_by(self, stopping: StopDeadline) -> Self {
        ScoringContext { stopping, ..self }
    }

    /// Routes assigned partitions' records to `records` from now on.
    pub fn route_to(&self, records: &Arc<RecordQueue>) {
        let _ = self.records.set(Arc::downgrade(records));
    }

    /// How many rebalances (assignments, revocations, errors) were served so far.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// The partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<i32> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The event time of the last record handled from each partition.
    pub fn set_last_event_ms(&self, last: &BTreeMap<i32, i64>) {
        self.last_event_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone_from(last);
    }

    /// Starts each partition of `assignment` that has no committed offset at the start position
    /// (`-o`, else the reset position). Left to librdkafka, such a partition waits 100 ms before
    /// looking the reset position up (the first start of every group), and could not start at a
    /// time or N from the end; partitions with a committed offset are left to it as before.
    fn start_uncommitted_at_reset(
        &self,
        consumer: &BaseConsumer<Self>,
        assignment: &mut TopicPartitionList,
    ) {
        let Some(start) = self.start_uncommitted_at else {
            return;
        };
        let committed = match consumer.committed_offsets(assignment.clone(), COMMITTED_TIMEOUT) {
            Ok(committed) => committed,
            // librdkafka looks the offsets up itself.
            Err(e) => {
                tracing::debug!(error = %e, "committed offsets");
                return;
            }
        };
        let uncommitted: Vec<i32> = committed
            .elements()
            .iter()
            .filter(|p| p.offset() == Offset::Invalid && p.topic() == self.topic)
            .map(|p| p.partition())
            .collect();
        if uncommitted.is_empty() {
            return;
        }
        let positions: Vec<(i32, Offset)> = match start.logical() {
            // Exactly-once: an aborted transaction rewinds a partition to where it started, and
            // "the end" then would be past what the transaction read: the end as it is now.
            Some(Offset::End) if self.transactions.is_some() => uncommitted
                .iter()
                .map(|&p| {
                    let end = consumer
                        .fetch_watermarks(&self.topic, p, COMMITTED_TIMEOUT)
                        .map_or_else(
                            |e| {
                                tracing::warn!(partition = p, error = %e, "end offset");
                                Offset::End
                            },
                            |(_, high)| Offset::Offset(high),
                        );
                    (p, end)
                })
                .collect(),
            // librdkafka's own `beginning` and `end`: no lookup needed.
            Some(offset) => uncommitted.iter().map(|&p| (p, offset)).collect(),
            None => match offset_spec::resolve(
                consumer,
                &self.topic,
                &uncommitted,
                start,
                COMMITTED_TIMEOUT,
            ) {
                Ok(found) => found
                    .into_iter()
                    .map(|(p, o)| (p, Offset::Offset(o)))
                    .collect(),
                Err(e) => {
                    // Left to librdkafka: auto.offset.reset's position.
                    tracing::warn!(
                        error = %e,
                        "-o {start}: new partitions start at auto.offset.reset instead"
                    );
                    return;
                }
            },
        };
        for (partition, offset) in positions {
            if let Err(e) = assignment.set_partition_offset(&self.topic, partition, offset) {
                tracing::debug!(partition, error = %e, "start offset");
            }
            if let Some(transactions) = &self.transactions {
                transactions.started_at(partition, offset);
            }
        }
    }

    /// Stores every offset whose deliveries are complete.
    pub fn store_ready(&self, consumer: &BaseConsumer<ScoringContext>) {
        let ready = lock(&self.tracker).take_ready();
        if ready.is_empty() {
            return;
        }
        let mut offsets = TopicPartitionList::with_capacity(ready.len());
        for (partition, next) in ready {
            if let Err(e) =
                offsets.add_partition_offset(&self.topic, partition, Offset::Offset(next))
            {
                tracing::debug!(partition, error = %e, "offset list");
            }
        }
        // Fails only for partitions no longer assigned; their next owner consumes them again.
        if let Err(e) = consumer.store_offsets(&offsets) {
            tracing::debug!(error = %e, "store_offsets");
        }
    }
}

/// How long a revocation waits for outstanding deliveries. Stopping: at most `revoke_flush`,
/// within what is left of the stop's deadline. An ordinary rebalance is not a stop, and the
/// partitions' next owner waits meanwhile: [`REBALANCE_FLUSH_SHARE`] of it.
fn revoke_flush_bound(revoke_flush: Duration, stopping: &StopDeadline) -> Duration {
    match stopping.get() {
        Some(_) => stopping.cap(revoke_flush),
        None => revoke_flush.mul_f64(REBALANCE_FLUSH_SHARE),
    }
}

impl ClientContext for ScoringContext {
    fn stats(&self, statistics: Statistics) {
        let cluster = self
            .cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(&statistics, &[self.topic.as_str()]);
        if let Some(health) = cluster {
            self.sink.emit(EngineEvent::Cluster(health));
        }
        if let Some(lag) = LagByPartition::from_statistics(&statistics, &self.topic) {
            let last = self
                .last_event_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let lag = lag.with_time_behind(&last, crate::engine::now_ms());
            drop(last);
            self.sink.emit(EngineEvent::Lag(lag));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka");
        crate::engine::report_outage(self.sink.as_ref(), &error, reason);
    }
}

impl ConsumerContext for ScoringContext {
    /// rust-rdkafka's own rebalance, but a new assignment first starts partitions without a
    /// committed offset at the reset position ([`ScoringContext::start_uncommitted_at_reset`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.start_uncommitted_at_reset(consumer, partitions);
            self.pre_rebalance(consumer, &Rebalance::Assign(partitions));
            let assigned = if cooperative {
                consumer.incremental_assign(partitions)
            } else {
                consumer.assign(partitions)
            };
            if let Err(e) = assigned {
                tracing::warn!(error = %e, "assign");
            }
            self.post_rebalance(consumer, &Rebalance::Assign(partitions));
            return;
        }
        let rebalance = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            Rebalance::Revoke(partitions)
        } else {
            Rebalance::Error(KafkaError::Rebalance(err.into()))
        };
        self.pre_rebalance(consumer, &rebalance);
        let unassigned = if cooperative {
            consumer.incremental_unassign(partitions)
        } else {
            consumer.unassign()
        };
        if let Err(e) = unassigned {
            tracing::warn!(error = %e, "unassign");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        let mut partitions: Vec<i32> = match rebalance {
            Rebalance::Assign(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            Rebalance::Revoke(tpl) => {
                self.revoked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(tpl.elements().iter().map(|e| e.partition()));
                Vec::new()
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance");
                return;
            }
        };
        partitions.sort_unstable();
        self.sink.emit(EngineEvent::Assigned(partitions));
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Routed before librdkafka starts fetching them, so no record lands on the consumer's own
        // queue (any that did would still be scored, by the control poll).
        if let (Rebalance::Assign(partitions), Some(records)) =
            (rebalance, self.records.get().and_then(Weak::upgrade))
        {
            for p in partitions.elements() {
                if !records.route(p.topic(), p.partition()) {
                    tracing::warn!(partition = p.partition(), "cannot route partition records");
                }
            }
        }
        if let Rebalance::Revoke(partitions) = rebalance {
            // Finish what is in flight so the next owner starts where this one stopped.
            match &self.transactions {
                // A failure is recorded there, and stops the scorer.
                Some(transactions) => {
                    let _ = transactions.commit(&self.producer, consumer, &self.topic);
                }
                None => {
                    self.producer
                        .flush_within(revoke_flush_bound(self.revoke_flush, &self.stopping));
                    self.store_ready(consumer);
                    // Past the stop's deadline there is no time left to commit, and a commit
                    // waits for its answer at most what is left of it: the next owner scores
                    // again what is not committed.
                    let wait = self.stopping.cap(COMMIT_WAIT);
                    if wait.is_zero() {
                        tracing::debug!("no commit on revoke: the stop's deadline has passed");
                    } else {
                        match commit_within(consumer, wait) {
                            CommitWait::Committed => {}
                            CommitWait::Unanswered => {
                                tracing::debug!("commit on revoke: no answer")
                            }
                            CommitWait::Failed(e) => {
                                tracing::debug!(error = %e, "commit on revoke")
                            }
                        }
                    }
                }
            }
            let mut tracker = lock(&self.tracker);
            for p in partitions.elements() {
                tracker.forget(p.partition());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_rebalance_flushes_for_a_share_of_the_bound_and_a_stop_s_for_what_is_left() {
        use std::time::Instant;
        let bound = Duration::from_secs(5);
        let ordinary = StopDeadline::default();
        assert_eq!(revoke_flush_bound(bound, &ordinary), Duration::from_secs(3));
        let passed = StopDeadline::default();
        passed.fix(Instant::now());
        assert_eq!(revoke_flush_bound(bound, &passed), Duration::ZERO);
        let far = StopDeadline::default();
        far.fix(Instant::now() + Duration::from_secs(3600));
        assert_eq!(revoke_flush_bound(bound, &far), bound);
    }

    #[test]
    fn reset_settings_name_positions() {
        for (setting, want) in [
            (Some("earliest"), Some(OffsetSpec::Beginning)),
            (Some("smallest"), Some(OffsetSpec::Beginning)),
            (Some("beginning"), Some(OffsetSpec::Beginning)),
            (Some("latest"), Some(OffsetSpec::End)),
            (Some("largest"), Some(OffsetSpec::End)),
            (Some("end"), Some(OffsetSpec::End)),
            (Some("error"), None),
            (None, None),
        ] {
            assert_eq!(reset_position(setting), want, "{setting:?}");
        }
    }
}
