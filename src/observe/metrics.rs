//! Prometheus metrics (`--metrics HOST:PORT`): the engine's events counted into a registry of the
//! official client crate, served as text at `/metrics` by [`super::metrics_http`].
//!
//! Names follow Prometheus conventions: `salary_stream_` prefix, `_total` on counters, base
//! units (`_seconds`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::engine::{
    EngineEvent, EventSink, LagByPartition, ModelEvent, ModelLine, ProducerStatus, ScoreReport,
    SharedSink, SwapReason,
};

pub use super::metrics_http::{serve, ServeError};

/// Labels naming a reason class of bad records.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

/// Labels naming an input partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Partition {
    partition: String,
}

/// Labels naming a model version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

/// Labels naming a model slot: `serving` or `challenger`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Slot {
    slot: String,
}

/// Every metric this process exposes.
pub struct Metrics {
    registry: Registry,
    scored: Counter,
    bad: Family<Reason, Counter>,
    published: Counter,
    failed: Counter,
    latency: Histogram,
    lag_records: Family<Partition, Gauge>,
    lag_seconds: Family<Partition, Gauge<f64, AtomicU64>>,
    model: Family<Version, Gauge>,
    challenger: Family<Version, Gauge>,
    /// Each slot's MAE over the labeled events both scored, while a challenger is loaded.
    comparison_mae: Family<Slot, Gauge<f64, AtomicU64>>,
    drift: Gauge,
    producer_sent: Counter,
    producer_acked: Counter,
    producer_failed: Counter,
    /// The producer's cumulative counts last seen, to turn them into counter increments.
    producer_seen: Mutex<(u64, u64, u64)>,
    serving: Mutex<String>,
    challenging: Mutex<Option<String>>,
    publishing: bool,
    /// The partitions whose lag is exposed now.
    lag_shown: Mutex<Vec<i32>>,
}

impl Metrics {
    /// A registry for a process serving `version`; `publishing` says whether scored records are
    /// published to an output topic.
    pub fn new(version: &str, publishing: bool) -> Arc<Metrics> {
        let mut metrics = Metrics {
            registry: Registry::default(),
            scored: Counter::default(),
            bad: Family::default(),
            published: Counter::default(),
            failed: Counter::default(),
            // 0.5 ms to about 16 s, doubling.
            latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            lag_records: Family::default(),
            lag_seconds: Family::default(),
            model: Family::default(),
            challenger: Family::default(),
            comparison_mae: Family::default(),
            drift: Gauge::default(),
            producer_sent: Counter::default(),
            producer_acked: Counter::default(),
            producer_failed: Counter::default(),
            producer_seen: Mutex::new((0, 0, 0)),
            serving: Mutex::new(version.to_owned()),
            challenging: Mutex::new(None),
            publishing,
            lag_shown: Mutex::new(Vec::new()),
        };
        // Registered in this order, the order the text lists them in.
        metrics.register_scoring();
        metrics.register_latency();
        metrics.register_lag();
        metrics.register_model();
        metrics.register_producer();
        metrics
            .model
            .get_or_create(&Version {
                version: version.to_owned(),
            })
            .set(1);
        Arc::new(metrics)
    }

    /// Registers the series of records scored, refused and published.
    fn register_scoring(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "salary_stream_records_scored",
            "Input records scored",
            self.scored.clone(),
        );
        registry.register(
            "salary_stream_bad_records",
            "Input records sent to the dead-letter topic, by reason class",
            self.bad.clone(),
        );
        registry.register(
            "salary_stream_predictions_published",
            "Predictions handed to the output topic",
            self.published.clone(),
        );
        registry.register(
            "salary_stream_deliveries_failed",
            "Predictions or dead letters the broker did not take (their records are consumed again)",
            self.failed.clone(),
        );
    }

    /// Registers the latency histogram.
    fn register_latency(&mut self) {
        self.registry.register_with_unit(
            "salary_stream_latency",
            "From an event's time to the acknowledgement of its prediction",
            Unit::Seconds,
            self.latency.clone(),
        );
    }

    /// Registers consumer lag, in records and in seconds, by partition.
    fn register_lag(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "salary_stream_consumer_lag_records",
            "Records not yet handled, by assigned input partition",
            self.lag_records.clone(),
        );
        registry.register_with_unit(
            "salary_stream_consumer_lag",
            "How long ago the last record handled from a lagging partition was made",
            Unit::Seconds,
            self.lag_seconds.clone(),
        );
    }

    /// Registers the models' series: versions, the comparison of slots, the drift alarm.
    fn register_model(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "salary_stream_model_info",
            "The serving model's version (1 for the one serving)",
            self.model.clone(),
        );
        registry.register(
            "salary_stream_challenger_info",
            "The challenger's version (1 for the one loaded; absent without one)",
            self.challenger.clone(),
        );
        registry.register(
            "salary_stream_comparison_mae",
            "Mean absolute error of each slot (serving, challenger) over the labeled events both \
             scored, while a challenger is loaded",
            self.comparison_mae.clone(),
        );
        registry.register(
            "salary_stream_drift_alarm",
            "1 once the drift detector has fired for the serving model, else 0",
            self.drift.clone(),
        );
    }

    /// Registers the synthetic producer's counts.
    fn register_producer(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "salary_stream_producer_sent",
            "Synthetic events handed to the client",
            self.producer_sent.clone(),
        );
        registry.register(
            "salary_stream_producer_acked",
            "Synthetic events the broker acknowledged",
            self.producer_acked.clone(),
        );
        registry.register(
            "salary_stream_producer_failed",
            "Synthetic events the broker refused or that timed out",
            self.producer_failed.clone(),
        );
    }

    /// One latency sample, in µs.
    pub fn observe_latency_us(&self, us: u64) {
        self.latency.observe(us as f64 / 1e6);
    }

    /// Removes the challenger's version series: none is loaded any more.
    fn forget_challenger(&self) {
        let old = self
            .challenging
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(version) = old {
            self.challenger.remove(&Version { version });
        }
    }

    /// Counts what an engine event says.
    pub fn observe(&self, event: &EngineEvent) {
        match event {
            EngineEvent::Scored(report) => self.observe_scored(report),
            EngineEvent::Model(ModelEvent::Challenger(line)) => {
                self.observe_challenger(line.as_ref())
            }
            EngineEvent::Lag(lag) => self.observe_lag(lag),
            EngineEvent::Model(ModelEvent::Swapped {
                line: ModelLine { version, .. },
                reason,
            }) => self.observe_swap(version, reason),
            EngineEvent::Producer(status) => self.observe_producer(status),
            _ => {}
        }
    }

    /// Counts a report of records scored, refused and delivered, and the slots' comparison.
    fn observe_scored(&self, report: &ScoreReport) {
        self.scored.inc_by(report.scored);
        if self.publishing {
            self.published.inc_by(report.scored);
        }
        self.failed.inc_by(report.delivery_errors);
        for (class, n) in &report.bad_by_class {
            self.bad
                .get_or_create(&Reason {
                    reason: (*class).to_owned(),
                })
                .inc_by(*n);
        }
        self.drift.set(i64::from(report.drift.is_some()));
        if let Some(c) = report.comparison {
            for (slot, a) in [("serving", c.serving), ("challenger", c.challenger)] {
                self.comparison_mae
                    .get_or_create(&Slot { slot: slot.into() })
                    .set(a.mae);
            }
        }
    }

    /// Shows the challenger now loaded, if any, in place of the last one.
    fn observe_challenger(&self, line: Option<&ModelLine>) {
        self.forget_challenger();
        self.comparison_mae.clear();
        if let Some(line) = line {
            self.challenger
                .get_or_create(&Version {
                    version: line.version.clone(),
                })
                .set(1);
            *self
                .challenging
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(line.version.clone());
        }
    }

    /// Sets each assigned partition's lag, and removes the partitions no longer assigned.
    fn observe_lag(&self, lag: &LagByPartition) {
        // Set in place, never cleared first: a scrape between a clear and the new values
        // would see series vanish (Prometheus marks them stale).
        let mut shown = self
            .lag_shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in shown
            .iter()
            .filter(|p| !lag.partitions.iter().any(|(q, _)| q == *p))
        {
            let label = Partition {
                partition: gone.to_string(),
            };
            self.lag_records.remove(&label);
            self.lag_seconds.remove(&label);
        }
        *shown = lag.partitions.iter().map(|(p, _)| *p).collect();
        drop(shown);
        for (p, records) in &lag.partitions {
            let label = Partition {
                partition: p.to_string(),
            };
            self.lag_records.get_or_create(&label).set(*records);
            let behind = lag
                .behind_ms
                .iter()
                .find(|(q, _)| q == p)
                .map_or(0, |(_, ms)| *ms);
            self.lag_seconds
                .get_or_create(&label)
                .set(behind as f64 / 1000.0);
        }
    }

    /// Shows `version` as the serving model; a promotion also removes the challenger.
    fn observe_swap(&self, version: &str, reason: &SwapReason) {
        if matches!(reason, SwapReason::Promoted { .. }) {
            self.forget_challenger();
        }
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        self.model.remove(&Version {
            version: serving.clone(),
        });
        self.model
            .get_or_create(&Version {
                version: version.to_owned(),
            })
            .set(1);
        version.clone_into(&mut serving);
        self.drift.set(0);
        self.comparison_mae.clear();
    }

    /// Turns the producer's cumulative counts into counter increments.
    fn observe_producer(&self, status: &ProducerStatus) {
        let mut seen = self
            .producer_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.producer_sent
            .inc_by(status.sent.saturating_sub(seen.0));
        self.producer_acked
            .inc_by(status.acked.saturating_sub(seen.1));
        self.producer_failed
            .inc_by(status.failed.saturating_sub(seen.2));
        *seen = (
            seen.0.max(status.sent),
            seen.1.max(status.acked),
            seen.2.max(status.failed),
        );
    }

    /// The metrics in Prometheus's text format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A sink that counts every event into [`Metrics`], then passes it on.
pub struct MeteredSink {
    /// Where events go after being counted.
    pub inner: SharedSink,
    /// What counts them.
    pub metrics: Arc<Metrics>,
}

impl EventSink for MeteredSink {
    fn emit(&self, event: EngineEvent) {
        self.metrics.observe(&event);
        self.inner.emit(event);
    }
}

/// Counts per reason class in a report: `(class, count)`.
pub type BadByClass = BTreeMap<&'static str, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    fn line(version: &str, slope: f64) -> crate::engine::ModelLine {
        crate::engine::ModelLine {
            version: version.into(),
            formula: String::new(),
            slope,
            intercept: 0.0,
            plotted: "years_experience".into(),
            label: "salary".into(),
            range_max: 10.5,
        }
    }
    use crate::engine::{LagByPartition, ProducerStatus, Rate, ScoreReport};

    #[test]
    fn events_become_prometheus_series() {
        let m = Metrics::new("6c25318e", true);
        let mut bad = BadByClass::new();
        bad.insert("not_json", 2);
        m.observe(&EngineEvent::Scored(ScoreReport {
            scored: 40,
            bad: 2,
            bad_by_class: bad,
            delivery_errors: 1,
            ..ScoreReport::default()
        }));
        m.observe(&EngineEvent::Lag(LagByPartition {
            partitions: vec![(0, 3), (2, 0)],
            behind_ms: vec![(0, 1_500), (2, 0)],
        }));
        for (sent, acked) in [(10, 4), (25, 25)] {
            m.observe(&EngineEvent::Producer(ProducerStatus {
                running: true,
                rate: Rate::DEFAULT,
                sent,
                acked,
                failed: 0,
            }));
        }
        m.observe_latency_us(1_200);
        let challenger = line("c0ffee01", 2.0);
        m.observe(&EngineEvent::Model(ModelEvent::Challenger(Some(
            challenger.clone(),
        ))));
        let accuracy = |mae| crate::observe::quality::Accuracy {
            n: 10,
            mae,
            rmse: mae,
            r2: 0.5,
        };
        m.observe(&EngineEvent::Scored(ScoreReport {
            comparison: Some(crate::observe::quality::Comparison {
                n: 10,
                serving: accuracy(15020.5),
                challenger: accuracy(4390.25),
                mean_abs_difference: 1.0,
                challenger_closer: 9,
            }),
            ..ScoreReport::default()
        }));
        let text = m.encode();
        for line in [
            "salary_stream_challenger_info{version=\"c0ffee01\"} 1",
            "salary_stream_comparison_mae{slot=\"serving\"} 15020.5",
            "salary_stream_comparison_mae{slot=\"challenger\"} 4390.25",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        m.observe(&EngineEvent::Model(ModelEvent::Challenger(None)));
        let text = m.encode();
        assert!(
            !text.contains("c0ffee01") && !text.contains("comparison_mae{"),
            "no challenger, no comparison:\n{text}"
        );
        m.observe(&EngineEvent::Model(ModelEvent::Challenger(Some(
            challenger,
        ))));
        m.observe(&EngineEvent::Model(ModelEvent::Swapped {
            line: line("9f00aa11", 1.0),
            reason: crate::engine::SwapReason::Reloaded {
                replaced: "6c25318e".into(),
            },
        }));
        let text = m.encode();
        for line in [
            "salary_stream_records_scored_total 40",
            "salary_stream_predictions_published_total 40",
            "salary_stream_deliveries_failed_total 1",
            "salary_stream_bad_records_total{reason=\"not_json\"} 2",
            "salary_stream_consumer_lag_records{partition=\"0\"} 3",
            "salary_stream_consumer_lag_records{partition=\"2\"} 0",
            "salary_stream_consumer_lag_seconds{partition=\"0\"} 1.5",
            "salary_stream_producer_sent_total 25",
            "salary_stream_producer_acked_total 25",
            "salary_stream_model_info{version=\"9f00aa11\"} 1",
            "salary_stream_latency_seconds_count 1",
            "salary_stream_latency_seconds_bucket{le=\"0.002\"} 1",
            "salary_stream_drift_alarm 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(
            !text.contains("6c25318e"),
            "the old version is gone:\n{text}"
        );
        assert!(
            text.contains("salary_stream_challenger_info{version=\"c0ffee01\"} 1"),
            "a reload keeps the challenger:\n{text}"
        );
        m.observe(&EngineEvent::Model(ModelEvent::Swapped {
            line: line("c0ffee01", 2.0),
            reason: crate::engine::SwapReason::Promoted {
                replaced: "9f00aa11".into(),
                auto: None,
            },
        }));
        let text = m.encode();
        assert!(
            text.contains("salary_stream_model_info{version=\"c0ffee01\"} 1")
                && !text.contains("salary_stream_challenger_info{"),
            "promoted, it serves and nothing challenges:\n{text}"
        );
    }
}
