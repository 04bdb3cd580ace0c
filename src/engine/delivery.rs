//! A producer whose delivery reports are served by its own thread, promptly, and which flushes and
//! stops without the fixed waits of rdkafka's `ThreadedProducer` (whose poll and flush each block
//! for 100 ms at a time).

use std::ffi::CString;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka_sys as rdsys;

/// How long one poll of the delivery thread may block: also the longest a stop waits for it.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// How long a sender waits for room when librdkafka's local queue is full: short, since the broker
/// thread frees room continuously (1 ms left the producer idle for a fifth of a full-speed run).
pub const QUEUE_FULL_WAIT: Duration = Duration::from_micros(100);

/// A `BaseProducer` with a thread serving its delivery reports.
pub struct PolledProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    /// Creates the producer and starts its delivery thread.
    pub fn create(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        let producer = Arc::new(config.create_with_context::<C, BaseProducer<C>>(context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("deliveries".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_SLICE);
                    }
                })
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot start the delivery thread");
                    rdkafka::error::KafkaError::ClientCreation(e.to_string())
                })?
        };
        Ok(PolledProducer {
            producer,
            stop,
            thread: Some(thread),
        })
    }

    /// The client, for reading its queue lengths from another thread.
    pub fn shared(&self) -> Arc<BaseProducer<C>> {
        self.producer.clone()
    }

    /// Waits until every message is delivered (or failed) and reported, at most `timeout`;
    /// returns how many are still outstanding.
    pub fn flush_within(&self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.producer.in_flight_count();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl<C: ProducerContext + 'static> Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;
    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// librdkafka's "no partition chosen: let the partitioner pick" (`RD_KAFKA_PARTITION_UA`).
const ANY_PARTITION: i32 = -1;

/// Hands many records for one topic to librdkafka at once (`rd_kafka_produce_batch`).
///
/// rust-rdkafka's `send` builds a C string of the topic's name for every record, and librdkafka
/// then finds the topic by that name under a lock and reads the clock for each record; here the
/// topic is looked up once, and the lock and the clock are taken once per batch. Partitions are
/// still chosen by librdkafka's partitioner, record by record.
pub struct TopicBatcher {
    topic: NonNull<rdsys::rd_kafka_topic_t>,
    /// Reused for every batch.
    messages: Vec<rdsys::rd_kafka_message_t>,
}

// SAFETY: librdkafka topic handles may be used from any thread; the batcher is dropped before
// its producer (see `new`).
unsafe impl Send for TopicBatcher {}

impl TopicBatcher {
    /// A batcher for `topic` on `producer`'s client; it must be dropped before the producer.
    pub fn new<C: ProducerContext>(producer: &BaseProducer<C>, topic: &str) -> KafkaResult<Self> {
        let name = CString::new(topic).map_err(|_| {
            KafkaError::ClientCreation(format!("the topic name {topic:?} holds a NUL byte"))
        })?;
        // SAFETY: the client is live and `name` outlives the call (librdkafka copies it).
        let topic_ptr = unsafe {
            rdsys::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        let topic = NonNull::new(topic_ptr).ok_or_else(|| {
            KafkaError::ClientCreation(format!("librdkafka refused a handle for topic {topic:?}"))
        })?;
        Ok(TopicBatcher {
            topic,
            messages: Vec::new(),
        })
    }

    /// Hands librdkafka one record per range of `bytes` (copied), waiting out a full local
    /// queue; returns the errors of the records it refused for good.
    pub fn send(&mut self, bytes: &[u8], values: &[std::ops::Range<usize>]) -> Vec<KafkaError> {
        self.messages.clear();
        for range in values {
            let value = &bytes[range.clone()];
            // SAFETY: an all-zero rd_kafka_message_t is a valid value (null pointers, zeros).
            let mut message: rdsys::rd_kafka_message_t = unsafe { std::mem::zeroed() };
            message.partition = ANY_PARTITION;
            message.payload = value.as_ptr().cast_mut().cast();
            message.len = value.len();
            self.messages.push(message);
        }
        let mut refused = Vec::new();
        let mut start = 0;
        while start < self.messages.len() {
            let batch = &mut self.messages[start..];
            let count = i32::try_from(batch.len()).unwrap_or(i32::MAX);
            // SAFETY: the topic is live; `batch` holds `count` messages whose payloads point
            // into `bytes`, which outlives the call; F_COPY makes librdkafka copy them, and it
            // writes only each message's `err` (and `_private`, left null) back.
            unsafe {
                rdsys::rd_kafka_produce_batch(
                    self.topic.as_ptr(),
                    ANY_PARTITION,
                    rdsys::RD_KAFKA_MSG_F_COPY,
                    batch.as_mut_ptr(),
                    count,
                );
            }
            let mut resume = None;
            for (i, message) in batch.iter().enumerate() {
                match message.err {
                    rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {}
                    // Every record after the first refused for a full queue is refused for it
                    // too: send again from there once librdkafka has made room.
                    rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL => {
                        resume = Some(start + i);
                        break;
                    }
                    err => refused.push(KafkaError::MessageProduction(RDKafkaErrorCode::from(err))),
                }
            }
            match resume {
                Some(i) => {
                    std::thread::sleep(QUEUE_FULL_WAIT);
                    start = i;
                }
                None => break,
            }
        }
        refused
    }
}

impl Drop for TopicBatcher {
    fn drop(&mut self) {
        // SAFETY: obtained from rd_kafka_topic_new and destroyed once, before the client.
        unsafe { rdsys::rd_kafka_topic_destroy(self.topic.as_ptr()) };
    }
}
