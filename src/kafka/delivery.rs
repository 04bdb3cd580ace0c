//! A producer whose delivery reports are served by its own thread, promptly, and which flushes and
//! stops without the fixed waits of rdkafka's `ThreadedProducer` (whose poll and flush each block
//! for 100 ms at a time).

use std::ffi::{CStr, CString};
use std::ops::{Deref, Range};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::IntoOpaque;
use rdkafka_sys as rdsys;

use crate::kafka::config::KafkaOptions;

/// How long one poll of the delivery thread may block. A stop ends the wait at once (see
/// [`wake`]), so this is only how often an idle producer's thread wakes: at 10 ms, its 100
/// wake-ups a second were the largest part of an idle dashboard's CPU (BENCHMARKS.md, "Idle").
const POLL_SLICE: Duration = Duration::from_secs(1);

/// How long a sender waits for room when librdkafka's local queue is full: short, since the broker
/// thread frees room continuously (1 ms left the producer idle for a fifth of a full-speed run).
pub const QUEUE_FULL_WAIT: Duration = Duration::from_micros(100);

/// When a sender stops waiting for room in librdkafka's full local queue: once `flag` is set
/// (the sender is stopping) and the queue has then stayed full for `patience`. A broker that
/// takes records makes room within milliseconds; one that is gone or paused never does.
#[derive(Debug)]
pub struct GiveUp {
    flag: Arc<AtomicBool>,
    patience: Duration,
    /// When a full queue was first met after `flag` was set.
    since: std::cell::Cell<Option<Instant>>,
    /// A stop's deadline, which ends the patience early ([`GiveUp::within`]).
    deadline: Option<crate::engine::StopDeadline>,
}

impl GiveUp {
    /// Gives up once `flag` is set and a full queue has been waited on for `patience` since.
    pub fn after(flag: Arc<AtomicBool>, patience: Duration) -> Self {
        GiveUp {
            flag,
            patience,
            since: std::cell::Cell::new(None),
            deadline: None,
        }
    }

    /// As it was, but giving up at once when `deadline` (a stop's, once fixed) has passed: the
    /// patience is capped by what is left of the stop.
    pub fn within(self, deadline: crate::engine::StopDeadline) -> Self {
        GiveUp {
            deadline: Some(deadline),
            ..self
        }
    }

    /// Whether to give up now, the queue being full.
    pub fn now(&self) -> bool {
        if !self.flag.load(Ordering::Relaxed) {
            return false;
        }
        let since = self.since.get().unwrap_or_else(|| {
            let now = Instant::now();
            self.since.set(Some(now));
            now
        });
        since.elapsed() >= self.patience
            || self
                .deadline
                .as_ref()
                .is_some_and(crate::engine::StopDeadline::passed)
    }
}

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

    /// Sends `record`, waiting for room while librdkafka's local queue is full, until `give_up`
    /// says to stop waiting; an error means the record was refused for good (`QueueFull` when
    /// given up).
    pub fn send_waiting<K, P>(
        &self,
        mut record: BaseRecord<'_, K, P, C::DeliveryOpaque>,
        give_up: Option<&GiveUp>,
    ) -> KafkaResult<()>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((e @ KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if give_up.is_some_and(GiveUp::now) =>
                {
                    return Err(e)
                }
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
        wake(&self.producer);
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                tracing::error!(
                    reason = crate::engine::panic_text(&*panic),
                    "the delivery thread panicked"
                );
            }
        }
    }
}

/// Serves `producer`'s main queue until `stop`: delivery reports a batch (an event) at a time,
/// and the errors, logs and statistics that rust-rdkafka's `poll` hands to the context.
fn serve_deliveries<C: BatchedDeliveries>(producer: &BaseProducer<C>, stop: &AtomicBool) {
    // rust-rdkafka's poll would hand token refresh events to such a context; this loop does not.
    const {
        assert!(
            !C::ENABLE_REFRESH_OAUTH_TOKEN,
            "a context that refreshes OAuth tokens needs rust-rdkafka's own poll"
        );
    }
    let client = producer.client();
    let context = client.context();
    // SAFETY: the client is live for the whole loop (borrowed from `producer`), and the handle is
    // released when `queue` drops, before the borrow ends.
    let Some(queue) =
        NonNull::new(unsafe { rdsys::rd_kafka_queue_get_main(client.native_ptr()) }).map(MainQueue)
    else {
        tracing::error!("librdkafka gave no main queue: delivery reports are not served");
        return;
    };
    let timeout_ms = i32::try_from(POLL_SLICE.as_millis()).unwrap_or(i32::MAX);
    let mut reports = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: the queue handle is live (held by `queue`).
        let Some(owned) =
            NonNull::new(unsafe { rdsys::rd_kafka_queue_poll(queue.0.as_ptr(), timeout_ms) })
                .map(Event)
        else {
            continue;
        };
        let event = owned.0.as_ptr();
        // SAFETY: `event` is live until `owned` drops at the end of this turn (or as a panic
        // unwinds); the messages and strings it hands out are read before that.
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
        }
    }
}

/// Ends the delivery thread's wait on `producer`'s main queue now, or its next one if it is not
/// waiting: librdkafka keeps the yield until a poll takes it.
fn wake<C: BatchedDeliveries>(producer: &BaseProducer<C>) {
    // SAFETY: the client is live (borrowed from `producer`), and the handle is released when
    // `queue` drops, before the borrow ends.
    let queue =
        NonNull::new(unsafe { rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()) })
            .map(MainQueue);
    if let Some(queue) = queue {
        // SAFETY: the queue handle is live (held by `queue`).
        unsafe { rdsys::rd_kafka_queue_yield(queue.0.as_ptr()) };
    }
}

/// A handle on a client's main queue, released when dropped.
struct MainQueue(NonNull<rdsys::rd_kafka_queue_t>);

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: taken from rd_kafka_queue_get_main and released once, while its client lives.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0.as_ptr()) };
    }
}

/// An event taken from a queue, destroyed when dropped.
struct Event(NonNull<rdsys::rd_kafka_event_t>);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: taken from rd_kafka_queue_poll and destroyed once.
        unsafe { rdsys::rd_kafka_event_destroy(self.0.as_ptr()) };
    }
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
/// topic is looked up once, and the lock and the clock are taken once per batch. Keyed records'
/// partitions are chosen by librdkafka's partitioner, by their key; keyless ones go to one
/// partition a batch, chosen here (see [`Spread`]) once [`TopicBatcher::watch_partitions`] knows
/// the topic's partitions, until then by the partitioner too.
/// Headers cannot go this way (`rd_kafka_produce_batch` takes none).
pub struct TopicBatcher<C: ProducerContext> {
    topic: NonNull<rdsys::rd_kafka_topic_t>,
    /// Reused for every batch.
    messages: Vec<rdsys::rd_kafka_message_t>,
    /// The opaque of each of `messages`.
    opaques: Vec<C::DeliveryOpaque>,
    /// The topic's partitions, when all have a leader (0: not known; the partitioner chooses).
    partitions: Arc<AtomicI32>,
    /// The partition keyless records go to while `partitions` is known.
    spread: Spread,
    /// The topic's name.
    name: String,
    /// Ends the thread that watches the topic's partitions when dropped.
    watching: Option<mpsc::Sender<()>>,
    /// The client the topic handle lives on, held so that it outlives the handle.
    client: Arc<BaseProducer<C>>,
    /// Set by whoever stops the sender: a full local queue is then waited out no longer.
    give_up: Option<GiveUp>,
}

// SAFETY: librdkafka topic handles may be used from any thread, and the client they live on is
// held by the batcher (an `Arc` of a client that is itself `Send` and `Sync`).
unsafe impl<C: ProducerContext> Send for TopicBatcher<C> {}

impl<C> TopicBatcher<C>
where
    C: ProducerContext + 'static,
    C::DeliveryOpaque: Copy,
{
    /// Stops waiting out a full local queue once `flag` is set: the records not yet taken are
    /// returned as refused (`QueueFull`), so a sender whose broker is gone can still stop.
    pub fn give_up_when(&mut self, flag: Arc<AtomicBool>) {
        self.give_up_after(flag, Duration::ZERO);
    }

    /// As [`TopicBatcher::give_up_when`], once the full queue has been waited on for `patience`
    /// after `flag` was set.
    pub fn give_up_after(&mut self, flag: Arc<AtomicBool>, patience: Duration) {
        self.give_up_with(GiveUp::after(flag, patience));
    }

    /// Stops waiting out a full local queue when `give_up` says so.
    pub fn give_up_with(&mut self, give_up: GiveUp) {
        self.give_up = Some(give_up);
    }

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
        let handle = NonNull::new(topic_ptr).ok_or_else(|| {
            KafkaError::ClientCreation(format!("librdkafka refused a handle for topic {topic:?}"))
        })?;
        Ok(TopicBatcher {
            topic: handle,
            messages: Vec::new(),
            opaques: Vec::new(),
            partitions: Arc::new(AtomicI32::new(0)),
            spread: Spread {
                current: rand::random_range(0..i32::MAX),
                since: Instant::now(),
            },
            name: topic.to_owned(),
            give_up: None,
            watching: None,
            client,
        })
    }

    /// Starts a thread that asks the broker how many partitions the topic has, at once and then
    /// every [`PARTITIONS_INTERVAL`], so that keyless records are spread over them; the sending
    /// thread never waits for the answer. Without an answer, the count known before stands. When
    /// `kafka` sets how librdkafka partitions, none starts: its partitioner keeps choosing.
    pub fn watch_partitions(&mut self, kafka: &KafkaOptions) {
        if self.watching.is_some() || kafka.partitions_chosen_by_user() {
            return;
        }
        let (stop, stopped) = mpsc::channel();
        let client = Arc::downgrade(&self.client);
        let (topic, known) = (self.name.clone(), self.partitions.clone());
        let started = std::thread::Builder::new()
            .name("partitions".into())
            .spawn(move || watch_partitions(&client, &topic, &known, &stopped));
        match started {
            Ok(_) => self.watching = Some(stop),
            Err(e) => tracing::warn!(error = %e, "cannot watch the topic's partitions"),
        }
    }

    /// Spreads keyless records over `partitions` (`None`: librdkafka's partitioner chooses), as
    /// the watching thread does with the count it learns.
    pub fn spread_keyless(&self, partitions: Option<i32>) {
        self.partitions
            .store(partitions.unwrap_or(0).max(0), Ordering::Relaxed);
    }

    /// Hands librdkafka `records`, whose bytes are in `bytes` (copied), waiting out a full local
    /// queue; returns the opaque and error of each record it refused for good.
    pub fn send(
        &mut self,
        bytes: &[u8],
        records: &[Outgoing<C::DeliveryOpaque>],
    ) -> Vec<(C::DeliveryOpaque, KafkaError)> {
        let mut refused = Vec::new();
        let partitions = self.partitions.load(Ordering::Relaxed);
        match (partitions > 0).then(|| self.spread.pick(Instant::now(), partitions)) {
            None => self.produce(bytes, records.iter(), ANY_PARTITION, &mut refused),
            // Keyless records first: an output partition that gets both no longer has them in
            // the order they came (nothing promises an order across keys).
            Some(partition) => {
                let keyless = records.iter().filter(|r| r.key.is_none());
                self.produce(bytes, keyless, partition, &mut refused);
                let keyed = records.iter().filter(|r| r.key.is_some());
                self.produce(bytes, keyed, ANY_PARTITION, &mut refused);
            }
        }
        refused
    }

    /// Hands librdkafka `records` for `partition` (or the partitioner's choice, with
    /// [`ANY_PARTITION`]), adding those it refused for good to `refused`.
    fn produce<'r>(
        &mut self,
        bytes: &[u8],
        records: impl Iterator<Item = &'r Outgoing<C::DeliveryOpaque>>,
        mut partition: i32,
        refused: &mut Vec<(C::DeliveryOpaque, KafkaError)>,
    ) where
        C::DeliveryOpaque: 'r,
    {
        self.stage(bytes, records);
        let mut start = 0;
        while start < self.messages.len() {
            let batch = &mut self.messages[start..];
            let count = i32::try_from(batch.len()).unwrap_or(i32::MAX);
            // SAFETY: the topic is live; `batch` holds `count` messages whose payloads and keys
            // point into `bytes`, which outlives the call; F_COPY makes librdkafka copy the
            // payloads (it always copies keys), and it writes only each message's `err` back.
            // `_private` is each record's opaque, as rust-rdkafka's own `send` sets it. (Not
            // F_PARTITION, a partition a message: librdkafka 2.12 leaks a message whose own
            // partition it does not find. One partition for the call is looked up once, before
            // any message is made.)
            unsafe {
                rdsys::rd_kafka_produce_batch(
                    self.topic.as_ptr(),
                    partition,
                    rdsys::RD_KAFKA_MSG_F_COPY,
                    batch.as_mut_ptr(),
                    count,
                );
            }
            match self.take_refusals(start, &mut partition, refused) {
                Some(resume) => start = resume,
                None => break,
            }
        }
    }

    /// Makes `messages` and `opaques` the messages of `records`, whose payloads and keys point
    /// into `bytes`.
    fn stage<'r>(
        &mut self,
        bytes: &[u8],
        records: impl Iterator<Item = &'r Outgoing<C::DeliveryOpaque>>,
    ) where
        C::DeliveryOpaque: 'r,
    {
        self.messages.clear();
        self.opaques.clear();
        for record in records {
            let value = &bytes[record.value.clone()];
            // SAFETY: an all-zero rd_kafka_message_t is a valid value (null pointers, zeros).
            let mut message: rdsys::rd_kafka_message_t = unsafe { std::mem::zeroed() };
            message.payload = value.as_ptr().cast_mut().cast();
            message.len = value.len();
            if let Some(key) = &record.key {
                let key = &bytes[key.clone()];
                message.key = key.as_ptr().cast_mut().cast();
                message.key_len = key.len();
            }
            message._private = record.opaque.into_ptr();
            self.messages.push(message);
            self.opaques.push(record.opaque);
        }
    }

    /// Reads what librdkafka made of the staged messages from `start` on: adds those it refused
    /// for good to `refused`, and returns where to send again from when it refused the rest for
    /// the time being (`partition` then says where to).
    // Inlined into `produce`, as it was written there: called out of line, the batcher's own
    // code took a few more instructions a record (callgrind, `produce --rate max`).
    #[inline(always)]
    fn take_refusals(
        &self,
        start: usize,
        partition: &mut i32,
        refused: &mut Vec<(C::DeliveryOpaque, KafkaError)>,
    ) -> Option<usize> {
        for (i, message) in self.messages[start..].iter().enumerate() {
            match message.err {
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {}
                // Every record after the first refused for a full queue is refused for it
                // too: send again from there once librdkafka has made room.
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL
                    if self.give_up.as_ref().is_some_and(GiveUp::now) =>
                {
                    refused.extend(self.opaques[start + i..].iter().map(|&opaque| {
                        (
                            opaque,
                            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                        )
                    }));
                    return None;
                }
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL => {
                    // Deliveries make room; this client's reports are served by its own
                    // thread.
                    std::thread::sleep(QUEUE_FULL_WAIT);
                    return Some(start + i);
                }
                // Fewer partitions than the count given (the topic was made again): every
                // record is refused, none made; the partitioner chooses from here on.
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
                    if *partition != ANY_PARTITION =>
                {
                    self.spread_keyless(None);
                    *partition = ANY_PARTITION;
                    return Some(start + i);
                }
                err => refused.push((
                    self.opaques[start + i],
                    KafkaError::MessageProduction(RDKafkaErrorCode::from(err)),
                )),
            }
        }
        None
    }
}

/// How often a batcher asks how many partitions its topic has.
const PARTITIONS_INTERVAL: Duration = Duration::from_secs(30);
/// How long the watching thread waits for an answer (it holds the client meanwhile).
const PARTITIONS_TIMEOUT: Duration = Duration::from_millis(250);

/// Asks how many partitions `topic` has, at once and then every [`PARTITIONS_INTERVAL`], into
/// `known`, until `stop` says so or the client is gone. The client is held only while asking.
fn watch_partitions<C: ProducerContext>(
    client: &Weak<BaseProducer<C>>,
    topic: &str,
    known: &AtomicI32,
    stop: &mpsc::Receiver<()>,
) {
    loop {
        let Some(client) = client.upgrade() else {
            return;
        };
        match crate::kafka::topics::led_partition_count(client.client(), topic, PARTITIONS_TIMEOUT)
        {
            Ok(count) => known.store(count.unwrap_or(0), Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, topic, "partitions unknown"),
        }
        drop(client);
        if !matches!(
            stop.recv_timeout(PARTITIONS_INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
    }
}

/// How long keyless records stay on one partition before the next: librdkafka's default
/// `sticky.partitioning.linger.ms`, so that each partition's batches are as large as with its own
/// sticky partitioner.
const STICK_FOR: Duration = Duration::from_millis(10);

/// Keyless records go to one partition for [`STICK_FOR`], then to the next, round the topic's
/// partitions: as large batches as librdkafka's sticky partitioner makes, but chosen once a batch
/// rather than by the partitioner once a record (which takes the partition's lock each time to
/// check that it has a leader; here the count is used only while every partition has one).
#[derive(Debug)]
struct Spread {
    current: i32,
    since: Instant,
}

impl Spread {
    /// The partition of `partitions` for keyless records sent at `now`.
    fn pick(&mut self, now: Instant, partitions: i32) -> i32 {
        if now.duration_since(self.since) >= STICK_FOR {
            self.current = self.current.wrapping_add(1);
            self.since = now;
        }
        self.current.rem_euclid(partitions)
    }
}

impl<C: ProducerContext> Drop for TopicBatcher<C> {
    fn drop(&mut self) {
        // SAFETY: obtained from rd_kafka_topic_new and destroyed once; the client it lives on is
        // still held (`self.client` is dropped after this).
        unsafe { rdsys::rd_kafka_topic_destroy(self.topic.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

    use super::*;
    use crate::kafka::broker::EmbeddedBroker;

    #[test]
    fn a_full_queue_is_waited_out_no_longer_once_the_sender_stops() {
        // Nothing listens there: nothing leaves the local queue of two records.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap().to_string();
        drop(closed);
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &address)
            .set("queue.buffering.max.messages", "2")
            .set("message.timeout.ms", "60000");
        let producer = PolledProducer::create(&config, Reports::default()).unwrap();
        let mut batcher = TopicBatcher::new(producer.shared(), "t").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        batcher.give_up_when(stop.clone());
        let bytes = b"abcdefghij";
        let records: Vec<Outgoing<usize>> = (0..10)
            .map(|i| Outgoing {
                value: i..i + 1,
                key: None,
                opaque: i,
            })
            .collect();
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let started = Instant::now();
        let refused = batcher.send(bytes, &records);
        stopper.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let opaques: Vec<usize> = refused.iter().map(|(o, _)| *o).collect();
        assert_eq!(opaques, (2..10).collect::<Vec<_>>());
        assert!(refused
            .iter()
            .all(|(_, e)| e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)));
    }

    #[test]
    fn a_single_send_gives_up_on_a_full_queue_once_stopping_and_patience_is_out() {
        // Nothing listens there: nothing leaves the local queue of one record.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap().to_string();
        drop(closed);
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &address)
            .set("queue.buffering.max.messages", "1")
            .set("message.timeout.ms", "60000");
        let producer = PolledProducer::create(&config, Reports::default()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let give_up = GiveUp::after(stop.clone(), Duration::from_millis(300));
        let record = |i: usize| BaseRecord::<(), [u8], usize>::with_opaque_to("t", i).payload(b"x");
        producer.send_waiting(record(0), Some(&give_up)).unwrap();
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let started = Instant::now();
        let refused = producer.send_waiting(record(1), Some(&give_up));
        stopper.join().unwrap();
        let took = started.elapsed();
        assert_eq!(
            refused.err().and_then(|e| e.rdkafka_error_code()),
            Some(RDKafkaErrorCode::QueueFull)
        );
        // The stop after 200 ms, then 300 ms of patience.
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // Once given up, at once.
        let started = Instant::now();
        assert!(producer.send_waiting(record(2), Some(&give_up)).is_err());
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn keyless_records_stay_on_a_partition_for_a_while_then_move_on() {
        let t0 = Instant::now();
        let mut spread = Spread {
            current: 1,
            since: t0,
        };
        let at = |ms| t0 + Duration::from_millis(ms);
        let picks: Vec<i32> = [0, 9, 10, 15, 19, 20, 31, 45]
            .into_iter()
            .map(|ms| spread.pick(at(ms), 3))
            .collect();
        assert_eq!(picks, vec![1, 1, 2, 2, 2, 0, 1, 2]);
        // A partition added: the rotation takes it in.
        assert_eq!(spread.pick(at(55), 4), 2);
        assert_eq!(spread.pick(at(65), 4), 3);
    }

    /// The value of the record each test sends first.
    const WARM_UP: &str = "warm-up";

    /// Every report, in the order they came.
    #[derive(Default)]
    struct Reports(Mutex<Vec<(usize, Option<KafkaError>)>>);

    impl ClientContext for Reports {}

    impl ProducerContext for Reports {
        type DeliveryOpaque = usize;
        fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
            deliver_one(self, result, opaque);
        }
    }

    impl BatchedDeliveries for Reports {
        fn delivered(&self, reports: &[(usize, Option<KafkaError>)]) {
            self.0.lock().unwrap().extend_from_slice(reports);
        }
    }

    /// Sends `keys.len()` records to `topic`, record `i` with value `i` and key `keys[i]`, the
    /// batcher spreading keyless ones over `spread` partitions from partition `first`; returns
    /// the reports, sorted, and the partition count the batcher knows afterwards.
    fn send_through_a_batcher(
        broker: &EmbeddedBroker,
        topic: &str,
        (spread, first): (Option<i32>, i32),
        keys: &[Option<&str>],
    ) -> (Vec<(usize, Option<KafkaError>)>, i32) {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", broker.bootstrap_servers());
        let producer = PolledProducer::create(&config, Reports::default()).unwrap();
        let mut batcher = TopicBatcher::new(producer.shared(), topic).unwrap();
        let count = crate::kafka::topics::led_partition_count(
            producer.client(),
            topic,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(count, Some(3));
        // A record first, so that the client knows the topic's partitions, as it does once it has
        // sent for a while (before that it holds records with a partition of their own until its
        // metadata comes, and fails one of a partition it then finds missing only after that).
        let warm_up = Outgoing {
            value: 0..WARM_UP.len(),
            key: None,
            opaque: usize::MAX,
        };
        assert!(batcher.send(WARM_UP.as_bytes(), &[warm_up]).is_empty());
        assert_eq!(producer.flush_within(Duration::from_secs(10)), 0);
        batcher.spread_keyless(spread);
        // From `first`, with no move to the next partition during the test.
        batcher.spread = Spread {
            current: first,
            since: Instant::now() + Duration::from_secs(3600),
        };
        let mut bytes = Vec::new();
        let mut records = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let key = key.map(|k| {
                let start = bytes.len();
                bytes.extend_from_slice(k.as_bytes());
                start..bytes.len()
            });
            let start = bytes.len();
            bytes.extend_from_slice(i.to_string().as_bytes());
            records.push(Outgoing {
                value: start..bytes.len(),
                key,
                opaque: i,
            });
        }
        assert!(batcher.send(&bytes, &records).is_empty());
        assert_eq!(producer.flush_within(Duration::from_secs(10)), 0);
        // Reports are served by the delivery thread: wait for the last.
        let started = Instant::now();
        while producer.context().0.lock().unwrap().len() < keys.len() + 1 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "reports missing"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut reports = producer.context().0.lock().unwrap().clone();
        reports.retain(|(opaque, _)| *opaque != usize::MAX);
        reports.sort_by_key(|(opaque, _)| *opaque);
        (reports, batcher.partitions.load(Ordering::Relaxed))
    }

    /// Each record of `topic` but the warm-up as `(partition, key, value)`, in partition and value
    /// order.
    fn read_back(
        broker: &EmbeddedBroker,
        topic: &str,
        expected: usize,
    ) -> Vec<(i32, Option<String>, String)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("group.id", "read-back")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for p in 0..3 {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let mut records = Vec::new();
        let started = Instant::now();
        while records.len() < expected + 1 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "records missing: {records:?}"
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                records.push((m.partition(), text(m.key()), text(m.payload()).unwrap()));
            }
        }
        records.retain(|(_, _, v)| v != WARM_UP);
        records.sort_by_key(|(p, _, v)| (*p, v.parse::<usize>().unwrap()));
        records
    }

    #[test]
    fn a_batch_s_keyless_records_go_to_one_partition_and_keyed_ones_by_their_key() {
        let broker = EmbeddedBroker::start(&[("spread", 3)]).unwrap();
        let keys = [None, Some("k"), None, None, Some("k"), None];
        let (reports, known) = send_through_a_batcher(&broker, "spread", (Some(3), 2), &keys);
        assert_eq!(known, 3);
        assert_eq!(
            reports
                .iter()
                .map(|(o, e)| (*o, e.is_none()))
                .collect::<Vec<_>>(),
            (0..6).map(|i| (i, true)).collect::<Vec<_>>()
        );
        let records = read_back(&broker, "spread", 6);
        let keyless: Vec<_> = records.iter().filter(|(_, k, _)| k.is_none()).collect();
        let values: Vec<&str> = keyless.iter().map(|(_, _, v)| v.as_str()).collect();
        assert_eq!(values, ["0", "2", "3", "5"]);
        assert!(
            keyless.iter().all(|(p, _, _)| *p == 2),
            "the batch's keyless records on partition 2: {records:?}"
        );
        let keyed: Vec<_> = records.iter().filter(|(_, k, _)| k.is_some()).collect();
        assert_eq!(keyed.len(), 2);
        assert_eq!(
            keyed[0].0, keyed[1].0,
            "one key, one partition: {records:?}"
        );
    }

    #[test]
    fn the_watching_thread_learns_the_topic_s_partitions() {
        let broker = EmbeddedBroker::start(&[("watched", 3)]).unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", broker.bootstrap_servers());
        let producer = PolledProducer::create(&config, Reports::default()).unwrap();
        let mut batcher = TopicBatcher::new(producer.shared(), "watched").unwrap();
        assert_eq!(batcher.partitions.load(Ordering::Relaxed), 0);
        let mut kafka = KafkaOptions {
            bootstrap: broker.bootstrap_servers().to_owned(),
            properties: vec![("partitioner".to_owned(), "murmur2".to_owned())],
            embedded: true,
        };
        batcher.watch_partitions(&kafka);
        assert!(batcher.watching.is_none(), "the user's partitioner chooses");
        kafka.properties.clear();
        batcher.watch_partitions(&kafka);
        let started = Instant::now();
        while batcher.partitions.load(Ordering::Relaxed) == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "no answer");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(batcher.partitions.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_count_past_the_topic_s_partitions_falls_back_to_librdkafka_s_partitioner() {
        let broker = EmbeddedBroker::start(&[("shrunk", 3)]).unwrap();
        // Partition 7 of a topic of three.
        let (reports, known) = send_through_a_batcher(&broker, "shrunk", (Some(8), 7), &[None; 5]);
        assert_eq!(known, 0, "the count is forgotten");
        assert_eq!(
            reports
                .iter()
                .map(|(o, e)| (*o, e.is_none()))
                .collect::<Vec<_>>(),
            (0..5).map(|i| (i, true)).collect::<Vec<_>>(),
            "every record delivered: {reports:?}"
        );
        let records = read_back(&broker, "shrunk", 5);
        let mut values: Vec<&str> = records.iter().map(|(_, _, v)| v.as_str()).collect();
        values.sort_unstable();
        assert_eq!(values, ["0", "1", "2", "3", "4"]);
    }
}
