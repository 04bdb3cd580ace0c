//! An offset commit whose answer is waited for a bounded time: rust-rdkafka's synchronous commit
//! waits with no bound, which a stop within one deadline cannot afford.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka_sys as rdsys;

/// The longest an offset commit outside a stop waits for its answer (a revocation's); a stop's
/// waits at most what is left of its deadline.
pub const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// How an offset commit given a bounded wait ended.
#[derive(Debug)]
pub enum CommitWait {
    /// Committed, or nothing was stored to commit.
    Committed,
    /// No answer within the wait: the commit may still complete, but is not waited for.
    Unanswered,
    /// It failed.
    Failed(KafkaError),
}

/// Commits `consumer`'s stored offsets and waits at most `limit` for the answer. rust-rdkafka's
/// synchronous commit waits with no bound: librdkafka's `rd_kafka_commit_queue` with a queue of
/// our own puts the answer there, which is then waited for with a timeout, and the queue is
/// dropped whether or not it came (librdkafka then drops an answer that comes later). Serves no
/// queue of the consumer, so that a rebalance callback, itself inside a poll, may call it.
pub fn commit_within<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    limit: Duration,
) -> CommitWait {
    let client = consumer.client().native_ptr();
    // SAFETY: the client handle is live for the call (borrowed through `consumer`).
    let queue = unsafe { rdsys::rd_kafka_queue_new(client) };
    if queue.is_null() {
        return CommitWait::Failed(KafkaError::ConsumerCommit(RDKafkaErrorCode::Fail));
    }
    // SAFETY: client and queue are live; no offsets means the assignment's stored ones, and no
    // callback means the answer comes to `queue` as an event.
    let err = unsafe {
        rdsys::rd_kafka_commit_queue(client, std::ptr::null(), queue, None, std::ptr::null_mut())
    };
    let outcome = if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the queue is live; the event is destroyed once, below.
        let event = unsafe { rdsys::rd_kafka_queue_poll(queue, ms) };
        if event.is_null() {
            CommitWait::Unanswered
        } else {
            // SAFETY: `event` came from the poll above and is used before it is destroyed.
            let answer = unsafe { rdsys::rd_kafka_event_error(event) };
            // SAFETY: as above; not used again.
            unsafe { rdsys::rd_kafka_event_destroy(event) };
            committed(answer)
        }
    } else {
        committed(err)
    };
    // SAFETY: created above and destroyed once; the commit's reference to it keeps it valid for
    // an answer that comes later, which librdkafka then drops.
    unsafe { rdsys::rd_kafka_queue_destroy(queue) };
    outcome
}

/// A commit's answer: nothing to commit is no failure.
fn committed(answer: rdsys::rd_kafka_resp_err_t) -> CommitWait {
    match RDKafkaErrorCode::from(answer) {
        RDKafkaErrorCode::NoError | RDKafkaErrorCode::NoOffset => CommitWait::Committed,
        code => CommitWait::Failed(KafkaError::ConsumerCommit(code)),
    }
}
