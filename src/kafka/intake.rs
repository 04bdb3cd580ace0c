//! Batch intake: the records of every assigned input partition are fetched into one queue of the
//! scorer's own, and taken from it many at a time.
//!
//! rust-rdkafka's `BaseConsumer::poll` hands out one record per call, and each call pays for
//! deadline arithmetic, an event wrapper and an `Arc`. Taking a whole batch with
//! `rd_kafka_consume_batch_queue` pays for that once. The consumer's own queue then carries only
//! control events (rebalances, statistics, errors, commits), which `BaseConsumer::poll` still
//! serves; [`RecordQueue::waker`] cuts a wait for records short when one arrives.

use std::any::Any;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use rdkafka_sys as rdsys;

/// One consumed record, borrowed from librdkafka for as long as its batch lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Input topic.
    pub topic: &'a str,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// The value; `None` for a tombstone.
    pub payload: Option<&'a [u8]>,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The Kafka timestamp in ms since the epoch, if the record has one.
    pub timestamp_ms: Option<i64>,
}

impl<'a> Record<'a> {
    /// The record of a message rust-rdkafka handed out.
    pub fn of<M: rdkafka::Message>(msg: &'a M) -> Self {
        Record {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            payload: msg.payload(),
            key: msg.key(),
            timestamp_ms: msg.timestamp().to_millis(),
        }
    }
}

/// A librdkafka queue handle.
struct QueueHandle(NonNull<rdsys::rd_kafka_queue_t>);

// SAFETY: librdkafka queues are thread-safe: every operation takes the queue's own lock.
unsafe impl Send for QueueHandle {}

/// Ends a [`RecordQueue::take`] that waits for records, from any thread: for the consumer's
/// non-empty callback, so that a rebalance is served as soon as it arrives. Made before the queue
/// (the callback is set while the consumer is still owned alone); harmless before the queue exists
/// and after it is gone.
#[derive(Clone, Default)]
pub struct Waker(Arc<Mutex<Option<QueueHandle>>>);

impl Waker {
    /// A waker with no queue yet.
    pub fn new() -> Self {
        Waker::default()
    }

    /// The function that wakes the queue.
    pub fn callback(&self) -> impl Fn() + Send + Sync + 'static {
        let waker = self.clone();
        move || waker.wake()
    }

    /// Ends a wait for records now (or the next one, if none is under way).
    pub fn wake(&self) {
        let target = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(QueueHandle(queue)) = target.as_ref() {
            // SAFETY: the queue is live while it is in the slot (drop empties the slot, under
            // this lock, before destroying it).
            unsafe { rdsys::rd_kafka_queue_yield(queue.as_ptr()) };
        }
    }
}

/// The scorer's record queue, which assigned partitions are routed to.
pub struct RecordQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// The consumer's own queue, for its length.
    control: NonNull<rdsys::rd_kafka_queue_t>,
    client: NonNull<rdsys::rd_kafka_t>,
    /// The record queue as the waker sees it: emptied before the queue is destroyed.
    waker: Waker,
    /// The consumer whose client the queues live on, held so that it outlives them.
    consumer: Arc<dyn Any + Send + Sync>,
}

// SAFETY: librdkafka queues are thread-safe (every operation takes the queue's lock), and the
// client handle outlives the queues (the queue holds the consumer it lives on).
unsafe impl Send for RecordQueue {}
// SAFETY: as above.
unsafe impl Sync for RecordQueue {}

impl RecordQueue {
    /// A new, empty queue on `consumer`'s client, which it keeps alive for as long as it lives;
    /// `waker` wakes it from now on.
    pub fn new<C: ConsumerContext + 'static>(
        consumer: Arc<BaseConsumer<C>>,
        waker: Waker,
    ) -> Option<Self> {
        let client = NonNull::new(consumer.client().native_ptr())?;
        // SAFETY: the client handle is live for the call.
        let control = NonNull::new(unsafe { rdsys::rd_kafka_queue_get_consumer(client.as_ptr()) })?;
        // SAFETY: as above.
        let Some(queue) = NonNull::new(unsafe { rdsys::rd_kafka_queue_new(client.as_ptr()) })
        else {
            // SAFETY: obtained just above and not used again.
            unsafe { rdsys::rd_kafka_queue_destroy(control.as_ptr()) };
            return None;
        };
        Some(RecordQueue {
            queue,
            control,
            client,
            waker: {
                *waker.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(QueueHandle(queue));
                waker
            },
            consumer,
        })
    }

    /// What wakes a wait for this queue's records.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Control events (rebalances, statistics, errors, logs) waiting on the consumer's queue.
    pub fn control_pending(&self) -> usize {
        // SAFETY: the handle is live until drop.
        unsafe { rdsys::rd_kafka_queue_length(self.control.as_ptr()) }
    }

    /// Routes the records of `topic`/`partition` to this queue from now on, across later
    /// reassignments too (librdkafka keeps a forward set by the application). Returns false if
    /// librdkafka has no such partition queue.
    pub fn route(&self, topic: &str, partition: i32) -> bool {
        let Ok(name) = std::ffi::CString::new(topic) else {
            return false;
        };
        // SAFETY: the client is live and `name` outlives the call.
        let source = unsafe {
            rdsys::rd_kafka_queue_get_partition(self.client.as_ptr(), name.as_ptr(), partition)
        };
        let Some(source) = NonNull::new(source) else {
            return false;
        };
        // SAFETY: both queues are live; the forward holds its own reference to the destination,
        // so the handle to the partition's queue can go at once.
        unsafe {
            rdsys::rd_kafka_queue_forward(source.as_ptr(), self.queue.as_ptr());
            rdsys::rd_kafka_queue_destroy(source.as_ptr());
        }
        true
    }

    /// An empty batch for this queue's records, with room for `capacity` at a time.
    pub fn batch(&self, capacity: usize) -> Batch {
        Batch {
            messages: Vec::with_capacity(capacity.max(1)),
            _consumer: self.consumer.clone(),
        }
    }

    /// Fills `batch` (emptied first) with what is queued, up to `limit` records and the batch's
    /// capacity; when nothing is, waits at most `wait` for one record and then takes whatever
    /// came with it. Records not taken stay queued.
    pub fn take(&self, batch: &mut Batch, wait: Duration, limit: usize) {
        batch.clear();
        let capacity = batch.messages.capacity().min(limit);
        if capacity == 0 {
            return;
        }
        if self.take_queued(batch, capacity) == 0 && !wait.is_zero() {
            let timeout_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: the queue is live; a returned message is owned by `batch` from here on.
            let first = unsafe { rdsys::rd_kafka_consume_queue(self.queue.as_ptr(), timeout_ms) };
            if let Some(first) = NonNull::new(first) {
                batch.messages.push(first);
                self.take_queued(batch, capacity - 1);
            }
        }
    }

    /// Appends up to `room` queued records to `batch` without waiting; returns how many.
    fn take_queued(&self, batch: &mut Batch, room: usize) -> usize {
        if room == 0 {
            return 0;
        }
        let start = batch.messages.len();
        let spare = batch.messages.spare_capacity_mut();
        let room = room.min(spare.len());
        // SAFETY: librdkafka writes at most `room` pointers into the spare capacity, which has
        // space for them, and returns how many it wrote (or -1 on error, then none).
        let got = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                spare.as_mut_ptr().cast::<*mut rdsys::rd_kafka_message_t>(),
                room,
            )
        };
        let got = usize::try_from(got).unwrap_or(0).min(room);
        // SAFETY: the first `got` slots past `start` were just initialised with non-null
        // message pointers, which the batch now owns.
        unsafe { batch.messages.set_len(start + got) };
        got
    }
}

impl Drop for RecordQueue {
    fn drop(&mut self) {
        self.waker
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // SAFETY: both handles were obtained in `new` and are destroyed once, while the client
        // still lives (`self.consumer` is dropped after this); the waker can no longer reach the
        // record queue.
        unsafe {
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
            rdsys::rd_kafka_queue_destroy(self.control.as_ptr());
        }
    }
}

/// Records taken from a [`RecordQueue`]; they are given back to librdkafka when the batch is
/// cleared or dropped.
pub struct Batch {
    messages: Vec<NonNull<rdsys::rd_kafka_message_t>>,
    /// The consumer the records come from, held so that it outlives them.
    _consumer: Arc<dyn Any + Send + Sync>,
}

impl Batch {
    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The records, and the consumer errors librdkafka reported in their place.
    pub fn records(&self) -> impl Iterator<Item = Result<Record<'_>, rdkafka::error::KafkaError>> {
        self.messages.iter().map(|m| {
            // SAFETY: the message is live until the batch is cleared, which needs `&mut self`.
            let msg = unsafe { m.as_ref() };
            if msg.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(rdkafka::error::KafkaError::MessageConsumption(
                    msg.err.into(),
                ));
            }
            // SAFETY: as above; librdkafka sets `len` to the length of the bytes at `payload`
            // (and `key_len` for `key`), and both stay put while the message lives.
            let bytes = |ptr: *mut std::ffi::c_void, len: usize| unsafe {
                (!ptr.is_null()).then(|| std::slice::from_raw_parts(ptr.cast::<u8>(), len))
            };
            // SAFETY: a consumed message holds a reference to its topic, whose name librdkafka
            // keeps as a NUL-terminated string for the topic's lifetime.
            let topic = unsafe { std::ffi::CStr::from_ptr(rdsys::rd_kafka_topic_name(msg.rkt)) };
            let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
            // SAFETY: the message is live; `kind` is a valid place to write to.
            let ts = unsafe { rdsys::rd_kafka_message_timestamp(m.as_ptr(), &mut kind) };
            Ok(Record {
                topic: topic.to_str().unwrap_or_default(),
                partition: msg.partition,
                offset: msg.offset,
                payload: bytes(msg.payload, msg.len),
                key: bytes(msg.key, msg.key_len),
                timestamp_ms: (kind
                    != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
                    .then_some(ts),
            })
        })
    }

    /// Gives every record back to librdkafka.
    pub fn clear(&mut self) {
        for m in self.messages.drain(..) {
            // SAFETY: each message came from librdkafka, is owned by this batch, and is
            // destroyed exactly once (drained here), while the client it came from lives
            // (`self._consumer` holds it).
            unsafe { rdsys::rd_kafka_message_destroy(m.as_ptr()) };
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// After how long with nothing to do an idle-paused intake stops fetching ([`IdleFetch`]).
pub const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// How often a paused intake asks the broker for its partitions' end offsets: the most a record
/// written by another process waits before fetching resumes (plus one fetch).
pub const LOOK_EVERY: Duration = Duration::from_millis(200);

/// What an idle-paused intake does next ([`IdleFetch::step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStep {
    /// Nothing: fetch on (or stay paused).
    Nothing,
    /// Idle long enough: pause fetching the assigned partitions.
    Pause,
    /// Paused, and a look is due: ask for the partitions' end offsets.
    Look,
    /// Paused, and there is work again: resume fetching.
    Resume,
}

/// When a consumer stops fetching while nothing arrives, and resumes. librdkafka's mock cluster
/// holds an empty fetch for the whole `fetch.wait.max.ms`, which the embedded broker keeps short
/// for latency: an idle scorer there fetched 200 times a second, 1.7% of a core between the
/// mock's thread and the consumer's. After [`PAUSE_AFTER`] with nothing to do, fetching pauses;
/// every [`LOOK_EVERY`] the end offsets are asked for in one request, and fetching resumes as
/// soon as one of them is past where reading stood when it paused, or when anything else wakes
/// the scorer (a record, work in flight, a rebalance, the dashboard's own producer).
#[derive(Debug)]
pub struct IdleFetch {
    enabled: bool,
    /// When there was last something to do.
    last_active: Instant,
    /// While paused: when the end offsets were last looked at, and the offset of each paused
    /// partition that, once written, means there is something to read.
    paused: Option<(Instant, Vec<(i32, i64)>)>,
}

impl IdleFetch {
    /// Pausing on (`enabled`) or never; nothing done yet at `now`.
    pub fn new(enabled: bool, now: Instant) -> Self {
        IdleFetch {
            enabled,
            last_active: now,
            paused: None,
        }
    }

    /// Whether fetching is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// The partitions paused, each with the offset whose arrival resumes it.
    pub fn paused_partitions(&self) -> &[(i32, i64)] {
        self.paused.as_ref().map_or(&[], |(_, p)| p.as_slice())
    }

    /// While paused, how long from `now` until the next look is due (zero if it is).
    pub fn until_look(&self, now: Instant) -> Option<Duration> {
        let (looked, _) = self.paused.as_ref()?;
        Some((*looked + LOOK_EVERY).saturating_duration_since(now))
    }

    /// One turn of the loop at `now`; `active`: it found something to do.
    pub fn step(&mut self, now: Instant, active: bool) -> IdleStep {
        if !self.enabled {
            return IdleStep::Nothing;
        }
        if active {
            self.last_active = now;
            return if self.paused.is_some() {
                IdleStep::Resume
            } else {
                IdleStep::Nothing
            };
        }
        match &self.paused {
            Some((looked, _)) if now.duration_since(*looked) >= LOOK_EVERY => IdleStep::Look,
            Some(_) => IdleStep::Nothing,
            None if now.duration_since(self.last_active) >= PAUSE_AFTER => IdleStep::Pause,
            None => IdleStep::Nothing,
        }
    }

    /// Fetching was paused at `now` for `from`: each partition with the first offset not read.
    pub fn paused_at(&mut self, now: Instant, from: Vec<(i32, i64)>) {
        self.paused = Some((now, from));
    }

    /// Pausing was not possible (nothing assigned, a position not known yet): tried again after
    /// another [`PAUSE_AFTER`].
    pub fn not_paused(&mut self, now: Instant) {
        self.last_active = now;
    }

    /// The end offsets looked at `now` (`None`: the look failed); true when fetching must resume:
    /// a paused partition has a record at or past its first unread offset, or its end is unknown.
    pub fn looked(&mut self, now: Instant, ends: Option<&[(i32, i64)]>) -> bool {
        let Some((looked, from)) = &mut self.paused else {
            return false;
        };
        *looked = now;
        let Some(ends) = ends else {
            return true;
        };
        from.iter().any(|(partition, first_unread)| {
            ends.iter()
                .find(|(p, _)| p == partition)
                .is_none_or(|(_, end)| end > first_unread)
        })
    }

    /// Fetching resumed at `now`.
    pub fn resumed(&mut self, now: Instant) {
        self.paused = None;
        self.last_active = now;
    }
}

/// The longest a look at the end offsets may take (the embedded broker is in-process: an answer
/// takes well under a millisecond). A look that fails resumes fetching.
const LOOK_TIMEOUT: Duration = Duration::from_millis(250);

/// What a consumer's owner shares with the thread that fetches: "records are on their way" (a
/// nudge, from the dashboard whose own producer sends), and whether fetching is paused.
pub struct IdleSignal {
    nudged: AtomicBool,
    paused: AtomicBool,
    waker: Waker,
}

impl IdleSignal {
    /// A signal whose nudges wake waits for records through `waker`.
    pub fn new(waker: Waker) -> Arc<Self> {
        Arc::new(IdleSignal {
            nudged: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            waker,
        })
    }

    /// Records are on their way: a paused intake resumes at once, a fetching one goes on.
    /// Cheap: a flag and, only when it was not set yet, a wake of the wait for records.
    pub fn nudge(&self) {
        if !self.nudged.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Ends the current wait for records (for a stop or a command, which a paused intake would
    /// otherwise serve only at its next look).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Whether fetching is paused for want of records.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    fn take_nudge(&self) -> bool {
        self.nudged.load(Ordering::Relaxed) && self.nudged.swap(false, Ordering::AcqRel)
    }
}

/// [`IdleFetch`] applied to a consumer: pauses its assigned partitions, looks at their end
/// offsets, resumes them.
pub struct IdleIntake {
    fetch: IdleFetch,
    signal: Arc<IdleSignal>,
    /// The consumer's rebalances seen so far: one resumes a paused intake.
    rebalances: u64,
}

impl IdleIntake {
    /// Pausing on (`enabled`) or never, telling and told through `signal`.
    pub fn new(enabled: bool, signal: Arc<IdleSignal>) -> Self {
        IdleIntake {
            fetch: IdleFetch::new(enabled, Instant::now()),
            signal,
            rebalances: 0,
        }
    }

    /// While paused, how long until the next look is due.
    pub fn until_look(&self) -> Option<Duration> {
        self.fetch.until_look(Instant::now())
    }

    /// One turn of the consumer's loop: `busy` when it took records or has work in flight;
    /// `rebalances` served so far. Pauses, looks and resumes the partitions of `topic` on
    /// `consumer` as [`IdleFetch`] decides. While records flow, a clock reading a turn.
    pub fn turn<C: ConsumerContext>(
        &mut self,
        busy: bool,
        rebalances: u64,
        consumer: &BaseConsumer<C>,
        topic: &str,
    ) {
        let rebalanced = std::mem::replace(&mut self.rebalances, rebalances) != rebalances;
        let active = busy || rebalanced || self.signal.take_nudge();
        let now = Instant::now();
        match self.fetch.step(now, active) {
            IdleStep::Nothing => return,
            IdleStep::Pause => match pause_assigned(consumer) {
                Some(from) => {
                    tracing::debug!(?from, "idle: fetching paused");
                    self.fetch.paused_at(now, from);
                }
                None => self.fetch.not_paused(now),
            },
            IdleStep::Look => {
                let ends = end_offsets(consumer, topic, self.fetch.paused_partitions());
                if self.fetch.looked(now, ends.as_deref()) {
                    tracing::debug!(?ends, "idle: records arrived");
                    resume(consumer, topic, self.fetch.paused_partitions());
                    self.fetch.resumed(now);
                }
            }
            IdleStep::Resume => {
                resume(consumer, topic, self.fetch.paused_partitions());
                self.fetch.resumed(now);
            }
        }
        self.signal
            .paused
            .store(self.fetch.is_paused(), Ordering::Relaxed);
    }
}

/// Pauses fetching of every assigned partition; returns each with its first unread offset (its
/// position, else, before anything was read from it, the first offset the broker keeps as the
/// client last learnt it). `None`, nothing paused, when nothing is assigned or an offset is not
/// known yet.
fn pause_assigned<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Vec<(i32, i64)>> {
    let positions = consumer.position().ok()?;
    if positions.count() == 0 {
        return None;
    }
    let mut from = Vec::with_capacity(positions.count());
    for p in positions.elements() {
        let first_unread = match p.offset() {
            Offset::Offset(n) => n,
            _ => cached_low_watermark(consumer, p.topic(), p.partition())?,
        };
        from.push((p.partition(), first_unread));
    }
    consumer.pause(&positions).ok()?;
    Some(from)
}

/// The low watermark of `topic`/`partition` as the client last learnt it (from its last fetch
/// response), without asking the broker; `None` if it knows none yet.
fn cached_low_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let name = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client is live for the call, `name` outlives it, and both outputs are valid
    // places to write to.
    let err = unsafe {
        rdsys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            name.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && low >= 0).then_some(low)
}

/// The end offsets of `partitions` of `topic` (the last stable offsets for a read_committed
/// consumer), in one request; `None` if the broker did not answer.
fn end_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[(i32, i64)],
) -> Option<Vec<(i32, i64)>> {
    let mut ask = TopicPartitionList::with_capacity(partitions.len());
    for (partition, _) in partitions {
        // Offset::End is the timestamp -1: the latest offset.
        ask.add_partition_offset(topic, *partition, Offset::End)
            .ok()?;
    }
    let ends = consumer.offsets_for_times(ask, LOOK_TIMEOUT).ok()?;
    Some(
        ends.elements()
            .iter()
            .filter_map(|e| match (e.error(), e.offset()) {
                (Ok(()), Offset::Offset(end)) => Some((e.partition(), end)),
                _ => None,
            })
            .collect(),
    )
}

/// Resumes fetching of `partitions` of `topic` (those no longer assigned are no matter).
fn resume<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partitions: &[(i32, i64)]) {
    let mut list = TopicPartitionList::with_capacity(partitions.len());
    for (partition, _) in partitions {
        list.add_partition(topic, *partition);
    }
    if let Err(e) = consumer.resume(&list) {
        tracing::debug!(error = %e, "idle: resume");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_only_after_a_quiet_while_and_resumes_on_work() {
        let t0 = Instant::now();
        let mut idle = IdleFetch::new(true, t0);
        assert_eq!(
            idle.step(t0 + Duration::from_millis(1999), false),
            IdleStep::Nothing
        );
        assert_eq!(
            idle.step(t0 + Duration::from_millis(1999), true),
            IdleStep::Nothing
        );
        // Work restarts the quiet while.
        assert_eq!(
            idle.step(t0 + Duration::from_millis(3000), false),
            IdleStep::Nothing
        );
        let t1 = t0 + Duration::from_millis(3999);
        assert_eq!(idle.step(t1, false), IdleStep::Pause);
        idle.paused_at(t1, vec![(0, 5), (1, 0)]);
        assert!(idle.is_paused());
        assert_eq!(idle.paused_partitions(), &[(0, 5), (1, 0)]);
        assert_eq!(
            idle.until_look(t1 + LOOK_EVERY / 4),
            Some(LOOK_EVERY * 3 / 4)
        );
        assert_eq!(
            idle.step(t1 + LOOK_EVERY - Duration::from_millis(1), false),
            IdleStep::Nothing
        );
        assert_eq!(idle.step(t1 + LOOK_EVERY, false), IdleStep::Look);
        // Work while paused (a record, a rebalance, the producer's nudge) resumes at once.
        assert_eq!(
            idle.step(t1 + Duration::from_millis(1), true),
            IdleStep::Resume
        );
        idle.resumed(t1 + Duration::from_millis(1));
        assert!(!idle.is_paused());
        assert_eq!(idle.until_look(t1 + LOOK_EVERY), None);
        assert_eq!(
            idle.step(t1 + Duration::from_millis(2000), false),
            IdleStep::Nothing
        );
        assert_eq!(
            idle.step(t1 + Duration::from_millis(2001), false),
            IdleStep::Pause
        );
    }

    #[test]
    fn a_look_resumes_when_an_end_moves_past_the_first_unread_offset() {
        let t0 = Instant::now();
        let mut idle = IdleFetch::new(true, t0);
        idle.paused_at(t0, vec![(0, 5), (1, 0)]);
        let later = t0 + LOOK_EVERY;
        // Ends where reading stopped: stay paused, and the next look is a while off.
        assert!(!idle.looked(later, Some(&[(0, 5), (1, 0)])));
        assert_eq!(idle.step(later + LOOK_EVERY / 2, false), IdleStep::Nothing);
        assert_eq!(idle.step(later + LOOK_EVERY, false), IdleStep::Look);
        // One record written to partition 1 by another client.
        assert!(idle.looked(later, Some(&[(0, 5), (1, 1)])));
        // A partition whose end is unknown, or a failed look, resumes too.
        assert!(idle.looked(later, Some(&[(0, 5)])));
        assert!(idle.looked(later, None));
        // An end below the first unread offset (records pruned, or never read) is no news.
        assert!(!idle.looked(later, Some(&[(0, 4), (1, 0)])));
    }

    #[test]
    fn disabled_never_pauses() {
        let t0 = Instant::now();
        let mut idle = IdleFetch::new(false, t0);
        assert_eq!(
            idle.step(t0 + Duration::from_secs(60), false),
            IdleStep::Nothing
        );
        assert!(!idle.looked(t0, None));
    }
}
