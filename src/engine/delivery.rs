//! A producer whose delivery reports are served by its own thread, promptly, and which flushes and
//! stops without the fixed waits of rdkafka's `ThreadedProducer` (whose poll and flush each block
//! for 100 ms at a time).

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

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
