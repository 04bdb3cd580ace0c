//! Exactly-once scoring (`--exactly-once`): predictions, dead letters and the input offsets they
//! consumed go to Kafka in one transaction, committed on a short interval, at a revocation and at
//! shutdown, and aborted on error (the scorer then stops; the next run starts where the last
//! committed transaction ended).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

/// How long one transactional call may wait for the broker.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The transactions of one scorer: what the open one has consumed, and how many ended how.
#[derive(Debug)]
pub struct Transactions {
    /// How often the open transaction is committed.
    pub interval: Duration,
    /// Per input partition, the next offset to consume once the open transaction commits.
    open: Mutex<BTreeMap<i32, i64>>,
    committed: AtomicU64,
    aborted: AtomicU64,
    /// Why the scorer must stop, once a transaction could not commit.
    failure: Mutex<Option<String>>,
}

impl Transactions {
    /// Transactions committed every `interval`.
    pub fn new(interval: Duration) -> Self {
        Transactions {
            interval,
            open: Mutex::new(BTreeMap::new()),
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            failure: Mutex::new(None),
        }
    }

    /// Notes that `offset` of `partition` was handled inside the open transaction.
    pub fn handled(&self, partition: i32, offset: i64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partition, offset + 1);
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

    /// Commits the open transaction with the input offsets it consumed, and opens the next. On
    /// failure it aborts (the outputs are discarded and the offsets stay where the last commit
    /// left them), records why, and returns the reason.
    pub fn commit<P, C>(
        &self,
        producer: &BaseProducer<P>,
        consumer: &BaseConsumer<C>,
        topic: &str,
    ) -> Result<(), String>
    where
        P: ProducerContext,
        C: ConsumerContext,
    {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(PoisonError::into_inner));
        if open.is_empty() {
            return Ok(());
        }
        let attempt = || -> Result<(), String> {
            let mut offsets = TopicPartitionList::with_capacity(open.len());
            for (&partition, &next) in &open {
                offsets
                    .add_partition_offset(topic, partition, Offset::Offset(next))
                    .map_err(|e| e.to_string())?;
            }
            let group = consumer
                .group_metadata()
                .ok_or("the consumer has no group metadata")?;
            producer
                .send_offsets_to_transaction(&offsets, &group, CALL_TIMEOUT)
                .map_err(|e| e.to_string())?;
            producer
                .commit_transaction(CALL_TIMEOUT)
                .map_err(|e| e.to_string())?;
            Ok(())
        };
        match attempt() {
            Ok(()) => {
                self.committed.fetch_add(1, Ordering::Relaxed);
                producer
                    .begin_transaction()
                    .map_err(|e| self.fail(format!("cannot begin a transaction: {e}")))
            }
            Err(reason) => {
                if let Err(e) = producer.abort_transaction(CALL_TIMEOUT) {
                    tracing::debug!(error = %e, "abort_transaction");
                }
                self.aborted.fetch_add(1, Ordering::Relaxed);
                Err(self.fail(if reason.contains("not supported by broker") {
                    format!(
                        "the broker does not support transactions ({reason}); exactly-once needs \
                         one that does, such as Apache Kafka"
                    )
                } else {
                    format!("a transaction could not commit and was aborted: {reason}")
                }))
            }
        }
    }

    fn fail(&self, reason: String) -> String {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(reason)
            .clone()
    }
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
    fn the_open_transaction_keeps_the_next_offset_of_each_partition() {
        let t = Transactions::new(Duration::from_millis(100));
        t.handled(0, 4);
        t.handled(2, 9);
        t.handled(0, 5);
        let open = t.open.lock().unwrap().clone();
        assert_eq!(open, BTreeMap::from([(0, 6), (2, 10)]));
        assert_eq!(t.counts(), (0, 0));
        assert_eq!(transactional_id("g", "host-1"), "salary-stream-g-host-1");
    }
}
