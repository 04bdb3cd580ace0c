//! Rates and consumer lag; pure functions and plain data.

use std::collections::VecDeque;

use rdkafka::statistics::Statistics;

/// Consumer lag of each assigned partition of one topic, by partition number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LagByPartition {
    /// `(partition, records not yet handled)`, sorted by partition.
    pub partitions: Vec<(i32, i64)>,
}

impl LagByPartition {
    /// The sum over partitions.
    pub fn total(&self) -> i64 {
        self.partitions.iter().map(|(_, l)| l).sum()
    }

    /// Reads the lag of `topic` from librdkafka's statistics: the high watermark minus the
    /// offset stored for commit (or, before any is stored, the committed offset).
    pub fn from_statistics(stats: &Statistics, topic: &str) -> Option<LagByPartition> {
        let topic = stats.topics.get(topic)?;
        let mut partitions: Vec<(i32, i64)> = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && p.desired)
            .filter_map(|p| {
                let lag = if p.consumer_lag_stored >= 0 {
                    p.consumer_lag_stored
                } else {
                    p.consumer_lag
                };
                (lag >= 0).then_some((p.partition, lag))
            })
            .collect();
        partitions.sort_unstable();
        Some(LagByPartition { partitions })
    }
}

/// Events counted into one-second buckets: the rate now, the average, and a history for a
/// sparkline.
#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    history: VecDeque<u64>,
    capacity: usize,
    current: u64,
    bucket_start_ms: u64,
    started_ms: u64,
    total: u64,
}

impl Throughput {
    /// A window of `seconds` one-second buckets, starting at `now_ms`.
    pub fn new(seconds: usize, now_ms: u64) -> Self {
        Throughput {
            history: VecDeque::with_capacity(seconds),
            capacity: seconds,
            current: 0,
            bucket_start_ms: now_ms,
            started_ms: now_ms,
            total: 0,
        }
    }

    /// Closes every full second up to `now_ms`.
    pub fn advance(&mut self, now_ms: u64) {
        while now_ms >= self.bucket_start_ms + 1000 {
            if self.history.len() == self.capacity {
                self.history.pop_front();
            }
            self.history.push_back(self.current);
            self.current = 0;
            self.bucket_start_ms += 1000;
        }
    }

    /// Counts `n` events at `now_ms`.
    pub fn record(&mut self, n: u64, now_ms: u64) {
        self.advance(now_ms);
        self.current += n;
        self.total += n;
    }

    /// Events in the last complete second.
    pub fn per_second_now(&self) -> u64 {
        self.history.back().copied().unwrap_or(0)
    }

    /// Average events per second since the window started (whole seconds only).
    pub fn per_second_average(&self) -> f64 {
        let seconds = (self.bucket_start_ms - self.started_ms) / 1000;
        if seconds == 0 {
            0.0
        } else {
            (self.total - self.current) as f64 / seconds as f64
        }
    }

    /// All events counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Per-second counts of the complete seconds, oldest first.
    pub fn history(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.history.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_buckets_by_second() {
        let mut t = Throughput::new(3, 10_000);
        t.record(5, 10_100);
        t.record(5, 10_900);
        assert_eq!(t.per_second_now(), 0);
        t.record(7, 11_000);
        assert_eq!(t.per_second_now(), 10);
        t.advance(14_500);
        assert_eq!(t.history().collect::<Vec<_>>(), vec![7, 0, 0]);
        assert_eq!(t.per_second_now(), 0);
        assert_eq!(t.total(), 17);
        assert_eq!(t.per_second_average(), 17.0 / 4.0);
    }

    #[test]
    fn lag_sums_partitions() {
        let lag = LagByPartition {
            partitions: vec![(0, 3), (1, 0), (2, 10)],
        };
        assert_eq!(lag.total(), 13);
    }
}
