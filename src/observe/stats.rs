//! Rates and consumer lag; pure functions and plain data.

use std::collections::VecDeque;

use rdkafka::statistics::Statistics;

/// End-to-end latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Predictions measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencySummary {
    /// The percentiles of a histogram of µs.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        // Values are bucketed; report each bucket's lowest value, which is exact for round inputs.
        let ms = |us: u64| h.lowest_equivalent(us) as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Seconds of history the live latency percentiles cover.
pub const LATENCY_WINDOW_SECONDS: usize = 10;

/// End-to-end latency over a sliding window: one histogram per second, merged when asked.
#[derive(Debug)]
pub struct LatencyWindow {
    /// `(second since the epoch, samples in µs)`, oldest first.
    slots: VecDeque<(i64, hdrhistogram::Histogram<u64>)>,
    seconds: usize,
}

impl LatencyWindow {
    /// A window of `seconds` seconds.
    pub fn new(seconds: usize) -> Self {
        LatencyWindow {
            slots: VecDeque::with_capacity(seconds + 1),
            seconds,
        }
    }

    /// Records `count` samples of `us` at `now_ms`.
    pub fn record_n(&mut self, now_ms: f64, us: u64, count: u64) {
        let second = (now_ms / 1000.0).floor() as i64;
        if self.slots.back().is_none_or(|(s, _)| *s != second) {
            if self.slots.len() > self.seconds {
                self.slots.pop_front();
            }
            // 1 µs to 1 hour at two significant figures (1%): small enough to merge ten of
            // them for every report.
            let fresh = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("constant histogram bounds are valid");
            self.slots.push_back((second, fresh));
        }
        if let Some((_, h)) = self.slots.back_mut() {
            h.saturating_record_n(us, count);
        }
    }

    /// The percentiles of the samples of the last `seconds` seconds before `now_ms`, if any.
    pub fn summary(&self, now_ms: f64) -> Option<LatencySummary> {
        let now = (now_ms / 1000.0).floor() as i64;
        let oldest = now - self.seconds as i64 + 1;
        let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
        for (_, h) in self.slots.iter().filter(|(s, _)| *s >= oldest && *s <= now) {
            match merged.as_mut() {
                None => merged = Some(h.clone()),
                Some(m) => {
                    // Same bounds and precision, so adding cannot fail.
                    let _ = m.add(h);
                }
            }
        }
        merged
            .filter(|h| !h.is_empty())
            .map(|h| LatencySummary::of(&h))
    }
}

/// Consumer lag of each assigned partition of one topic, by partition number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LagByPartition {
    /// `(partition, records not yet handled)`, sorted by partition.
    pub partitions: Vec<(i32, i64)>,
    /// `(partition, ms behind)`: for a partition with lag, how long ago the last record handled
    /// from it was made (its event time); 0 for a partition without lag.
    pub behind_ms: Vec<(i32, i64)>,
}

impl LagByPartition {
    /// The sum over partitions.
    pub fn total(&self) -> i64 {
        self.partitions.iter().map(|(_, l)| l).sum()
    }

    /// Fills [`LagByPartition::behind_ms`] at `now_ms` from the event time of the last record
    /// handled from each partition.
    pub fn with_time_behind(
        mut self,
        last_event_ms: &std::collections::BTreeMap<i32, i64>,
        now_ms: i64,
    ) -> Self {
        self.behind_ms = self
            .partitions
            .iter()
            .map(|&(p, lag)| {
                let behind = match last_event_ms.get(&p) {
                    Some(&t) if lag > 0 => now_ms.saturating_sub(t).max(0),
                    _ => 0,
                };
                (p, behind)
            })
            .collect();
        self
    }

    /// The most any partition is behind, in ms: how far behind the consumer is in time.
    pub fn most_behind_ms(&self) -> i64 {
        self.behind_ms.iter().map(|(_, b)| *b).max().unwrap_or(0)
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
        Some(LagByPartition {
            partitions,
            behind_ms: Vec::new(),
        })
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
            behind_ms: vec![],
        };
        assert_eq!(lag.total(), 13);
    }
}
