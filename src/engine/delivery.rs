//! A producer whose delivery reports are served by its own thread, promptly, and which flushes and
//! stops without the fixed waits of rdkafka's `ThreadedProducer` (whose poll and flush each block
//! for 100 ms at a time).

use std::ffi::CString;
use std::ops::{Deref, Range};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::util::IntoOpaque;
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

    /// Sends `record`, waiting for room while librdkafka's local queue is full; an error means
    /// the record was refused for good.
    pub fn send_waiting<K, P>(
        &self,
        mut record: BaseRecord<'_, K, P, C::DeliveryOpaque>,
    ) -> KafkaResult<()>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(QUEUE_FULL_WAIT);
                }
                Err((e, _)) => return Err(e),
            }
        }
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

/// One record for a [`TopicBatcher`]: its value and key as ranges of a shared buffer, and the
/// opaque its delivery report carries back.
#[derive(Debug, Clone)]
pub struct Outgoing<O> {
    /// The value's bytes in the buffer.
    pub value: Range<usize>,
    /// The key's bytes in the buffer; `None` for a keyless record.
    pub key: Option<Range<usize>>,
    /// Handed to the producer context's delivery callback.
    pub opaque: O,
}

/// Hands many records for one topic to librdkafka at once (`rd_kafka_produce_batch`).
///
/// rust-rdkafka's `send` builds a C string of the topic's name for every record, and librdkafka
/// then finds the topic by that name under a lock and reads the clock for each record; here the
/// topic is looked up once, and the lock and the clock are taken once per batch. Partitions are
/// still chosen by librdkafka's partitioner, record by record (by key when there is one).
/// Headers cannot go this way (`rd_kafka_produce_batch` takes none).
pub struct TopicBatcher<C: ProducerContext> {
    topic: NonNull<rdsys::rd_kafka_topic_t>,
    /// Reused for every batch.
    messages: Vec<rdsys::rd_kafka_message_t>,
    /// The client the topic handle lives on, held so that it outlives the handle.
    _client: Arc<BaseProducer<C>>,
}

// SAFETY: librdkafka topic handles may be used from any thread, and the client they live on is
// held by the batcher (an `Arc` of a client that is itself `Send` and `Sync`).
unsafe impl<C: ProducerContext> Send for TopicBatcher<C> {}

impl<C> TopicBatcher<C>
where
    C: ProducerContext,
    C::DeliveryOpaque: Copy,
{
    /// A batcher for `topic` on `client`, which it keeps alive for as long as it lives.
    pub fn new(client: Arc<BaseProducer<C>>, topic: &str) -> KafkaResult<Self> {
        let name = CString::new(topic).map_err(|_| {
            KafkaError::ClientCreation(format!("the topic name {topic:?} holds a NUL byte"))
        })?;
        // SAFETY: the client is live and `name` outlives the call (librdkafka copies it).
        let topic_ptr = unsafe {
            rdsys::rd_kafka_topic_new(
                client.client().native_ptr(),
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
            _client: client,
        })
    }

    /// Hands librdkafka `records`, whose bytes are in `bytes` (copied), waiting out a full local
    /// queue; returns the opaque and error of each record it refused for good.
    pub fn send(
        &mut self,
        bytes: &[u8],
        records: &[Outgoing<C::DeliveryOpaque>],
    ) -> Vec<(C::DeliveryOpaque, KafkaError)> {
        self.messages.clear();
        for record in records {
            let value = &bytes[record.value.clone()];
            // SAFETY: an all-zero rd_kafka_message_t is a valid value (null pointers, zeros).
            let mut message: rdsys::rd_kafka_message_t = unsafe { std::mem::zeroed() };
            message.partition = ANY_PARTITION;
            message.payload = value.as_ptr().cast_mut().cast();
            message.len = value.len();
            if let Some(key) = &record.key {
                let key = &bytes[key.clone()];
                message.key = key.as_ptr().cast_mut().cast();
                message.key_len = key.len();
            }
            message._private = record.opaque.into_ptr();
            self.messages.push(message);
        }
        let mut refused = Vec::new();
        let mut start = 0;
        while start < self.messages.len() {
            let batch = &mut self.messages[start..];
            let count = i32::try_from(batch.len()).unwrap_or(i32::MAX);
            // SAFETY: the topic is live; `batch` holds `count` messages whose payloads and keys
            // point into `bytes`, which outlives the call; F_COPY makes librdkafka copy the
            // payloads (it always copies keys), and it writes only each message's `err` back.
            // `_private` is each record's opaque, as rust-rdkafka's own `send` sets it.
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
                    err => refused.push((
                        records[start + i].opaque,
                        KafkaError::MessageProduction(RDKafkaErrorCode::from(err)),
                    )),
                }
            }
            match resume {
                Some(i) => {
                    // Deliveries make room; this client's reports are served by its own thread.
                    std::thread::sleep(QUEUE_FULL_WAIT);
                    start = i;
                }
                None => break,
            }
        }
        refused
    }
}

impl<C: ProducerContext> Drop for TopicBatcher<C> {
    fn drop(&mut self) {
        // SAFETY: obtained from rd_kafka_topic_new and destroyed once; the client it lives on is
        // still held (`self._client` is dropped after this).
        unsafe { rdsys::rd_kafka_topic_destroy(self.topic.as_ptr()) };
    }
}
