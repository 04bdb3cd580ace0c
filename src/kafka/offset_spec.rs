//! Offsets in kcat's `-o` syntax (`beginning`, `end`, `N`, `-N`, `s@TIMESTAMP_MS`,
//! `e@TIMESTAMP_MS`), and where one lands in each partition of a topic on a given broker.
//!
//! One resolver serves both readers: the scorer, for where a group's partitions without a
//! committed offset start, and `backtest`, for the window of history it reads. Every position is
//! clamped to the partition's watermarks, so an offset past the end means the end, not
//! librdkafka's `auto.offset.reset` jump back to the beginning.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

/// The forms `-o` accepts, for error messages and `--help`.
pub const ACCEPTED_FORMS: &str = "beginning, end, N, -N, s@TIMESTAMP_MS or e@TIMESTAMP_MS";

/// A position in each partition, as kcat's `-o` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// `beginning`: the oldest record still kept (the low watermark).
    Beginning,
    /// `end`: after the newest record (the high watermark).
    End,
    /// `N`: this absolute offset.
    Absolute(i64),
    /// `-N`: N records before the end of each partition.
    FromEnd(i64),
    /// `s@TS`: the first record whose timestamp is at least TS (ms since the epoch).
    StartTime(i64),
    /// `e@TS`: an end, not a start: reading stops before the first record whose timestamp is at
    /// least TS.
    EndTime(i64),
}

/// A spec that is not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid offset {text:?}: expected {ACCEPTED_FORMS}")]
pub struct ParseOffsetSpecError {
    text: String,
}

/// Why the positions of a spec could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The watermarks of a partition.
    #[error("cannot read the offsets of {topic} partition {partition}: {source}")]
    Watermarks {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What librdkafka said.
        source: KafkaError,
    },
    /// The offsets for a timestamp.
    #[error("cannot look up the offsets of {topic} at timestamp {timestamp_ms}: {source}")]
    Times {
        /// The topic.
        topic: String,
        /// The timestamp looked up.
        timestamp_ms: i64,
        /// What librdkafka said.
        source: KafkaError,
    },
}

impl std::str::FromStr for OffsetSpec {
    type Err = ParseOffsetSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let number = |digits: &str| -> Option<i64> {
            // Digits only: `i64::from_str` would also take a sign, and `--5` or `s@-1` is no spec.
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        };
        let spec = match text {
            "beginning" => Some(OffsetSpec::Beginning),
            "end" => Some(OffsetSpec::End),
            _ => {
                if let Some(ts) = text.strip_prefix("s@") {
                    number(ts).map(OffsetSpec::StartTime)
                } else if let Some(ts) = text.strip_prefix("e@") {
                    number(ts).map(OffsetSpec::EndTime)
                } else if let Some(n) = text.strip_prefix('-') {
                    number(n).map(OffsetSpec::FromEnd)
                } else {
                    number(text).map(OffsetSpec::Absolute)
                }
            }
        };
        spec.ok_or_else(|| ParseOffsetSpecError { text: s.to_owned() })
    }
}

impl std::fmt::Display for OffsetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffsetSpec::Beginning => f.write_str("beginning"),
            OffsetSpec::End => f.write_str("end"),
            OffsetSpec::Absolute(n) => write!(f, "{n}"),
            OffsetSpec::FromEnd(n) => write!(f, "-{n}"),
            OffsetSpec::StartTime(ts) => write!(f, "s@{ts}"),
            OffsetSpec::EndTime(ts) => write!(f, "e@{ts}"),
        }
    }
}

/// A partition's low and high watermarks: the oldest offset kept, and the next offset written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// The oldest offset still kept.
    pub low: i64,
    /// The offset the next record will get.
    pub high: i64,
}

impl OffsetSpec {
    /// Whether this spec ends a window (`e@TS`) rather than starting one.
    pub fn is_end(&self) -> bool {
        matches!(self, OffsetSpec::EndTime(_))
    }

    /// librdkafka's own logical offset for `beginning` and `end`, which need no lookup.
    pub fn logical(self) -> Option<Offset> {
        match self {
            OffsetSpec::Beginning => Some(Offset::Beginning),
            OffsetSpec::End => Some(Offset::End),
            _ => None,
        }
    }

    /// The timestamp this spec looks offsets up by, if it is `s@` or `e@`.
    pub fn timestamp_ms(&self) -> Option<i64> {
        match self {
            OffsetSpec::StartTime(ts) | OffsetSpec::EndTime(ts) => Some(*ts),
            _ => None,
        }
    }

    /// The offset this spec names in a partition with `marks`, clamped to them. `by_time` is
    /// the broker's answer for a timestamp spec: the first offset whose timestamp is at least
    /// the spec's, or `None` when every record is older (so the position is the end).
    pub fn position(&self, marks: Watermarks, by_time: Option<i64>) -> i64 {
        let Watermarks { low, high } = marks;
        let high = high.max(low);
        match *self {
            OffsetSpec::Beginning => low,
            OffsetSpec::End => high,
            OffsetSpec::Absolute(n) => n.clamp(low, high),
            OffsetSpec::FromEnd(n) => high.saturating_sub(n).max(low),
            OffsetSpec::StartTime(_) | OffsetSpec::EndTime(_) => {
                by_time.map_or(high, |o| o.clamp(low, high))
            }
        }
    }
}

/// The watermarks of `partitions` of `topic`, each within `timeout`.
pub fn watermarks<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<BTreeMap<i32, Watermarks>, ResolveError> {
    partitions
        .iter()
        .map(|&partition| {
            consumer
                .fetch_watermarks(topic, partition, timeout)
                .map(|(low, high)| (partition, Watermarks { low, high }))
                .map_err(|source| ResolveError::Watermarks {
                    topic: topic.to_owned(),
                    partition,
                    source,
                })
        })
        .collect()
}

/// Where `spec` lands in each partition of `marks` (a partition of `topic` and its watermarks):
/// a timestamp is looked up with the broker (ListOffsets by time), every other spec is worked
/// out from the watermarks alone.
pub fn resolve_with<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    spec: OffsetSpec,
    marks: &BTreeMap<i32, Watermarks>,
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>, ResolveError> {
    let by_time = match spec.timestamp_ms() {
        Some(ts) => offsets_for_time(consumer, topic, marks.keys().copied(), ts, timeout)?,
        None => BTreeMap::new(),
    };
    Ok(marks
        .iter()
        .map(|(&p, &m)| (p, spec.position(m, by_time.get(&p).copied().flatten())))
        .collect())
}

/// Where `spec` lands in each of `partitions` of `topic`: watermarks, then [`resolve_with`].
pub fn resolve<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>, ResolveError> {
    let marks = watermarks(consumer, topic, partitions, timeout)?;
    resolve_with(consumer, topic, spec, &marks, timeout)
}

/// The broker's first offset with a timestamp of at least `timestamp_ms` in each partition;
/// `None` where every record is older, or where the broker cannot look offsets up by time
/// (librdkafka's mock cluster, the embedded broker, answers `None` always).
pub fn offsets_for_time<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    partitions: impl Iterator<Item = i32>,
    timestamp_ms: i64,
    timeout: Duration,
) -> Result<BTreeMap<i32, Option<i64>>, ResolveError> {
    let failed = |source| ResolveError::Times {
        topic: topic.to_owned(),
        timestamp_ms,
        source,
    };
    let mut wanted = TopicPartitionList::new();
    for p in partitions {
        wanted
            .add_partition_offset(topic, p, Offset::Offset(timestamp_ms))
            .map_err(failed)?;
    }
    if wanted.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let found = consumer
        .offsets_for_times(wanted, timeout)
        .map_err(failed)?;
    let mut offsets = BTreeMap::new();
    for e in found.elements() {
        e.error().map_err(failed)?;
        let offset = match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o),
            // librdkafka's -1: no record that new.
            _ => None,
        };
        offsets.insert(e.partition(), offset);
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_parses_and_prints_back() {
        for (text, spec) in [
            ("beginning", OffsetSpec::Beginning),
            ("end", OffsetSpec::End),
            ("0", OffsetSpec::Absolute(0)),
            ("42", OffsetSpec::Absolute(42)),
            ("-5", OffsetSpec::FromEnd(5)),
            ("s@1700000000000", OffsetSpec::StartTime(1_700_000_000_000)),
            ("e@1700000000123", OffsetSpec::EndTime(1_700_000_000_123)),
        ] {
            assert_eq!(text.parse::<OffsetSpec>(), Ok(spec), "{text}");
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!(" 7 ".parse::<OffsetSpec>(), Ok(OffsetSpec::Absolute(7)));
    }

    #[test]
    fn anything_else_is_refused_in_one_line_naming_the_forms() {
        for text in [
            "",
            "start",
            "latest",
            "--5",
            "+5",
            "1.5",
            "s@",
            "e@x",
            "s@-1",
            "x@5",
            "5-",
            "-",
            "99999999999999999999",
        ] {
            let e = text.parse::<OffsetSpec>().unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "invalid offset {text:?}: expected beginning, end, N, -N, s@TIMESTAMP_MS or \
                     e@TIMESTAMP_MS"
                )
            );
        }
    }

    #[test]
    fn positions_are_clamped_to_the_watermarks() {
        let marks = Watermarks { low: 10, high: 50 };
        for (spec, by_time, want) in [
            (OffsetSpec::Beginning, None, 10),
            (OffsetSpec::End, None, 50),
            (OffsetSpec::Absolute(20), None, 20),
            (OffsetSpec::Absolute(3), None, 10),
            (OffsetSpec::Absolute(70), None, 50),
            (OffsetSpec::FromEnd(5), None, 45),
            (OffsetSpec::FromEnd(0), None, 50),
            (OffsetSpec::FromEnd(100), None, 10),
            (OffsetSpec::FromEnd(i64::MAX), None, 10),
            (OffsetSpec::StartTime(1), Some(33), 33),
            (OffsetSpec::StartTime(1), None, 50),
            (OffsetSpec::StartTime(1), Some(2), 10),
            (OffsetSpec::EndTime(1), Some(40), 40),
            (OffsetSpec::EndTime(1), None, 50),
        ] {
            assert_eq!(spec.position(marks, by_time), want, "{spec} {by_time:?}");
        }
        let empty = Watermarks { low: 7, high: 7 };
        assert_eq!(OffsetSpec::FromEnd(3).position(empty, None), 7);
        assert_eq!(OffsetSpec::Absolute(0).position(empty, None), 7);
    }

    #[test]
    fn only_e_at_is_an_end() {
        assert!(OffsetSpec::EndTime(5).is_end());
        assert!(!OffsetSpec::StartTime(5).is_end());
        assert!(!OffsetSpec::End.is_end());
        assert_eq!(OffsetSpec::StartTime(5).timestamp_ms(), Some(5));
        assert_eq!(OffsetSpec::FromEnd(5).timestamp_ms(), None);
    }
}
