//! Dead letters the broker can take: a record that could not be scored goes to the dead-letter
//! topic whatever its size, its value cut to fit the topic's `max.message.bytes` (and the
//! producer's `message.max.bytes`) when it would not, with a `truncated` header giving the
//! original length. A dead letter the broker refused would fail its transaction again and again
//! (exactly-once) or hold its partition's offsets back for the rest of the run (at-least-once).

use std::time::{Duration, Instant};

use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::kafka::config::KafkaOptions;

/// The header a cut dead letter carries: the original value's length in bytes.
pub const TRUNCATED_HEADER: &str = "truncated";
/// Kafka's default `max.message.bytes`, assumed until the topic's own is known.
const BROKER_DEFAULT: usize = 1_048_588;
/// librdkafka's default `message.max.bytes`.
const PRODUCER_DEFAULT: usize = 1_000_000;
/// How long a topic's `max.message.bytes` is trusted before it is asked again (it can be altered
/// while the scorer runs).
const ASK_EVERY: Duration = Duration::from_secs(60);
/// How long the scorer waits for the answer (once a minute at most, and only for dead letters).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// What a one-record batch adds to its key, value and headers: the batch header (61 bytes) and
/// the record's own fields at their largest varints (length, attributes, timestamp and offset
/// deltas, key and value lengths, header count).
const BATCH_OVERHEAD: usize = 61 + 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// What each header adds to its key and value: their lengths as varints, at most.
const HEADER_OVERHEAD: usize = 10;

/// The most bytes a dead letter may take, as last asked of the broker.
#[derive(Debug, Default)]
pub struct DeadLetterLimit {
    /// The dead-letter topic's `max.message.bytes`, when known.
    topic_limit: Option<usize>,
    /// When it was last asked.
    asked: Option<Instant>,
}

impl DeadLetterLimit {
    /// The largest batch of one dead letter `topic` takes from a producer configured by `kafka`:
    /// the topic's `max.message.bytes`, asked of the broker at most every [`ASK_EVERY`] (Kafka's
    /// default while it cannot be asked), and the producer's own `message.max.bytes`.
    pub fn bytes(&mut self, kafka: &KafkaOptions, topic: &str) -> usize {
        if self.asked.is_none_or(|at| at.elapsed() >= ASK_EVERY) {
            self.asked = Some(Instant::now());
            match crate::kafka::topics::max_message_bytes(kafka, topic, ASK_TIMEOUT) {
                Ok(found) => self.topic_limit = found,
                Err(e) => tracing::debug!(error = %e, topic, "max.message.bytes"),
            }
        }
        let producer = kafka
            .properties
            .iter()
            .rev()
            .find(|(key, _)| key == "message.max.bytes")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(PRODUCER_DEFAULT);
        self.topic_limit.unwrap_or(BROKER_DEFAULT).min(producer)
    }

    /// The value of a dead letter with `key` and `headers` for `topic`, cut to fit (the headers
    /// then say so): never refused for its size.
    pub fn fit<'a>(
        &mut self,
        kafka: &KafkaOptions,
        topic: &str,
        key: Option<&[u8]>,
        value: &'a [u8],
        headers: OwnedHeaders,
    ) -> (&'a [u8], OwnedHeaders) {
        let fixed = BATCH_OVERHEAD + key.map_or(0, <[u8]>::len) + headers_bytes(&headers);
        // Well under any limit a dead-letter topic is given: no need to know the topic's.
        if fixed + value.len() <= 512 {
            return (value, headers);
        }
        let limit = self.bytes(kafka, topic);
        match fitted(value.len(), fixed, limit) {
            None => (value, headers),
            Some(kept) => {
                let original = value.len().to_string();
                tracing::warn!(
                    topic,
                    original = value.len(),
                    kept,
                    "dead letter cut to fit the topic's max.message.bytes"
                );
                let headers = headers.insert(Header {
                    key: TRUNCATED_HEADER,
                    value: Some(original.as_str()),
                });
                (&value[..kept], headers)
            }
        }
    }
}

/// How many bytes of a value of `len` to keep so that, with `fixed` bytes of the rest and a
/// `truncated` header, it fits in `limit`; `None` when it fits whole.
fn fitted(len: usize, fixed: usize, limit: usize) -> Option<usize> {
    if fixed + len <= limit {
        return None;
    }
    let header = HEADER_OVERHEAD + TRUNCATED_HEADER.len() + len.to_string().len();
    Some(limit.saturating_sub(fixed + header).min(len))
}

/// The bytes `headers` take in a record.
fn headers_bytes(headers: &OwnedHeaders) -> usize {
    headers
        .iter()
        .map(|h| HEADER_OVERHEAD + h.key.len() + h.value.map_or(0, <[u8]>::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_cut_only_when_the_record_would_not_fit() {
        assert_eq!(fitted(500, 300, 1000), None);
        assert_eq!(fitted(700, 300, 1000), None);
        // 701 bytes: one too many; the cut leaves room for the `truncated: 701` header.
        assert_eq!(fitted(701, 300, 1000), Some(1000 - 300 - (10 + 9 + 3)));
        assert_eq!(fitted(1500, 300, 1000), Some(1000 - 300 - (10 + 9 + 4)));
        // Headers alone past the limit: nothing of the value is kept.
        assert_eq!(fitted(1500, 2000, 1000), Some(0));
    }

    #[test]
    fn a_cut_dead_letter_says_how_long_it_was() {
        let kafka = KafkaOptions {
            bootstrap: "127.0.0.1:1".to_owned(),
            properties: vec![("message.max.bytes".to_owned(), "1200".to_owned())],
            embedded: false,
        };
        let mut limit = DeadLetterLimit {
            topic_limit: None,
            asked: Some(Instant::now()),
        };
        let value = vec![b'x'; 5000];
        let headers = OwnedHeaders::new().insert(Header {
            key: "error",
            value: Some("not JSON"),
        });
        let (kept, headers) = limit.fit(&kafka, "t.dlq", Some(b"k"), &value, headers);
        let fixed = BATCH_OVERHEAD + 1 + (10 + 5 + 8);
        assert_eq!(kept.len(), 1200 - fixed - (10 + 9 + 4));
        let pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|h| (h.key, h.value.unwrap_or_default()))
            .collect();
        assert_eq!(
            pairs,
            [("error", &b"not JSON"[..]), ("truncated", &b"5000"[..])]
        );
        let small = vec![b'x'; 100];
        let (kept, headers) = limit.fit(&kafka, "t.dlq", None, &small, OwnedHeaders::new());
        assert_eq!((kept.len(), headers.count()), (100, 0));
    }
}
