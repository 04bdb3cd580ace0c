//! A producer whose delivery reports are served by its own thread, promptly, and which flushes and
//! stops without the fixed waits of rdkafka's `ThreadedProducer` (whose poll and flush each block
//! for 100 ms at a time).

use std::ffi::{CStr, CString};
use std::ops::{Deref, Range};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::IntoOpaque;
use rdkafka_sys as rdsys;

/// How long one poll of the delivery thread may block: also the longest a stop waits for it.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// How long a sender waits for room when librdkafka's local queue is full: short, since the broker
/// thread frees room continuously (1 ms left the producer idle for a fifth of a full-speed run).
pub const QUEUE_FULL_WAIT: Duration = Duration::from_micros(100);

/// A producer context that takes its delivery reports a batch at a time: librdkafka hands them
/// over an event at a time, often hundreds in one, and whatever a context does once per report
/// (reading the clock, taking a lock) it can then do once per batch.
pub trait BatchedDeliveries: ProducerContext {
    /// Takes the reports of one batch: each record's opaque, and why its delivery failed (`None`:
    /// acknowledged).
    fn delivered(&self, reports: &[(Self::DeliveryOpaque, Option<KafkaError>)]);
}

/// A single report as a batch of one: rust-rdkafka's own `poll` (which its `flush` also calls)
/// reports a record at a time, and must have the same effect as the delivery thread's batches.
pub fn deliver_one<C: BatchedDeliveries>(
    context: &C,
    result: &DeliveryResult<'_>,
    opaque: C::DeliveryOpaque,
) {
    let error = result.as_ref().err().map(|(e, _)| e.clone());
    context.delivered(&[(opaque, error)]);
}

/// A `BaseProducer` with a thread serving its delivery reports.
pub struct PolledProducer<C: BatchedDeliveries + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<C: BatchedDeliveries + 'static> PolledProducer<C> {
    /// Creates the producer and starts its delivery thread.
    pub fn create(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        let producer = Arc::new(config.create_with_context::<C, BaseProducer<C>>(context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("deliveries".into())
                .spawn(move || serve_deliveries(&producer, &stop))
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

impl<C: BatchedDeliveries + 'static> Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;
    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl<C: BatchedDeliveries + 'static> Drop for PolledProducer<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `producer`'s main queue until `stop`: delivery reports a batch (an event) at a time,
/// and the errors, logs and statistics that rust-rdkafka's `poll` would hand to the context.
fn serve_deliveries<C: BatchedDeliveries>(producer: &BaseProducer<C>, stop: &AtomicBool) {
    let client = producer.client();
    let context = client.context();
    // SAFETY: the client is live for the whole loop (borrowed from `producer`); the queue handle
    // is released below, before the borrow ends.
    let queue = unsafe { rdsys::rd_kafka_queue_get_main(client.native_ptr()) };
    let timeout_ms = i32::try_from(POLL_SLICE.as_millis()).unwrap_or(i32::MAX);
    let mut reports = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `queue` is the live handle taken above.
        let event = unsafe { rdsys::rd_kafka_queue_poll(queue, timeout_ms) };
        if event.is_null() {
            continue;
        }
        // SAFETY: `event` is a live event, owned here until destroyed below; the pointers it
        // hands out (messages, strings) are read before that.
        unsafe {
            match rdsys::rd_kafka_event_type(event) {
                rdsys::RD_KAFKA_EVENT_DR => {
                    reports.clear();
                    loop {
                        let message = rdsys::rd_kafka_event_message_next(event);
                        let Some(message) = message.as_ref() else {
                            break;
                        };
                        let error = (message.err
                            != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                            .then(|| KafkaError::MessageProduction(message.err.into()));
                        // The opaque was made by `into_ptr` when the record was sent, and each
                        // record is reported once.
                        reports.push((C::DeliveryOpaque::from_ptr(message._private), error));
                    }
                    context.delivered(&reports);
                }
                rdsys::RD_KAFKA_EVENT_ERROR => {
                    let code = rdsys::rd_kafka_event_error(event);
                    let reason = CStr::from_ptr(rdsys::rd_kafka_event_error_string(event));
                    context.error(
                        KafkaError::Global(code.into()),
                        reason.to_string_lossy().trim(),
                    );
                }
                rdsys::RD_KAFKA_EVENT_LOG => {
                    let (mut facility, mut text, mut level) =
                        (std::ptr::null(), std::ptr::null(), 0);
                    if rdsys::rd_kafka_event_log(event, &mut facility, &mut text, &mut level) == 0 {
                        context.log(
                            log_level(level),
                            CStr::from_ptr(facility).to_string_lossy().trim(),
                            CStr::from_ptr(text).to_string_lossy().trim(),
                        );
                    }
                }
                rdsys::RD_KAFKA_EVENT_STATS => {
                    context
                        .stats_raw(CStr::from_ptr(rdsys::rd_kafka_event_stats(event)).to_bytes());
                }
                _ => {}
            }
            rdsys::rd_kafka_event_destroy(event);
        }
    }
    // SAFETY: taken above and released once; no event from it is still held.
    unsafe { rdsys::rd_kafka_queue_destroy(queue) };
}

/// rust-rdkafka's level for a syslog level as librdkafka logs it.
fn log_level(level: i32) -> RDKafkaLogLevel {
    match level {
        i32::MIN..=0 => RDKafkaLogLevel::Emerg,
        1 => RDKafkaLogLevel::Alert,
        2 => RDKafkaLogLevel::Critical,
        3 => RDKafkaLogLevel::Error,
        4 => RDKafkaLogLevel::Warning,
        5 => RDKafkaLogLevel::Notice,
        6 => RDKafkaLogLevel::Info,
        _ => RDKafkaLogLevel::Debug,
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
