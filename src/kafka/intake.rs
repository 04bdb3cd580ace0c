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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
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
        let target = self.0.clone();
        move || {
            let target = target.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(QueueHandle(queue)) = target.as_ref() {
                // SAFETY: the queue is live while it is in the slot (drop empties the slot, under
                // this lock, before destroying it).
                unsafe { rdsys::rd_kafka_queue_yield(queue.as_ptr()) };
            }
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
