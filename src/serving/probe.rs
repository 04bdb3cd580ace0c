//! The broker health probe: a detached thread that asks for the scorer's topics once a second and
//! reports when the broker stops or starts answering, and which topics are missing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;

use crate::engine::{BrokerHealth, EngineEvent, SharedSink};
use crate::kafka::config::KafkaOptions;
use crate::serving::offsets::ScoringProducer;

/// How often the broker's health is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a health probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the probe for `needed` topics (the input topic first) on `producer`'s connection. Not
/// joined: a probe waiting for a broker that does not answer must not hold up a stop that has
/// finished its own work. It holds what it uses, and ends at its next wake-up after the returned
/// guard is dropped.
pub fn start(
    producer: Arc<ScoringProducer>,
    kafka: KafkaOptions,
    needed: Vec<String>,
    sink: SharedSink,
) -> std::io::Result<EndProbe> {
    let finished = Arc::new(AtomicBool::new(false));
    let probe = HealthProbe {
        producer,
        kafka,
        needed,
        sink,
        finished: finished.clone(),
    };
    let probe = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || probe.run())?;
    Ok(EndProbe {
        finished,
        probe: probe.thread().clone(),
    })
}

/// Tells the health probe to end, and wakes it, when dropped.
pub struct EndProbe {
    finished: Arc<AtomicBool>,
    probe: std::thread::Thread,
}

/// What the broker health probe needs, owned, so that it can outlive the scorer by a request.
struct HealthProbe {
    producer: Arc<ScoringProducer>,
    kafka: KafkaOptions,
    needed: Vec<String>,
    sink: SharedSink,
    finished: Arc<AtomicBool>,
}

impl HealthProbe {
    /// Asks the broker for metadata every [`PROBE_INTERVAL`] and reports when the answer changes
    /// between yes and no. A connection to a paused broker stays open and quiet, so only a request
    /// with a deadline tells that it has stopped answering.
    fn run(&self) {
        let mut last: Option<bool> = None;
        let mut last_missing: Option<Vec<String>> = None;
        let mut next = Instant::now();
        let needed: Vec<&str> = self.needed.iter().map(String::as_str).collect();
        let mut probes = 0u64;
        let mut min_isr = std::collections::HashMap::new();
        let mut last_blocked: Option<Option<String>> = None;
        while !self.finished.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                // Every topic at the first probe, every tenth, and while one is missing; the
                // input topic alone otherwise: each metadata request shares the producer's
                // connection with the predictions.
                let all = probes.is_multiple_of(10)
                    || last_missing.as_ref().is_none_or(|m| !m.is_empty());
                probes += 1;
                let asked = if all { &needed[..] } else { &needed[..1] };
                // The producer's client may create topics, so a broker that creates them on
                // demand does so here, as it would for the first record sent.
                let answer =
                    crate::kafka::topics::missing(self.producer.client(), asked, PROBE_TIMEOUT);
                let answer = match answer {
                    // The input topic alone tells nothing about the others: keep what was seen.
                    Ok(missing) if !all => Ok(if missing.is_empty() {
                        last_missing.clone().unwrap_or_default()
                    } else {
                        missing
                    }),
                    other => other,
                };
                if let Ok(missing) = &answer {
                    if last_missing.as_ref() != Some(missing) {
                        self.sink.emit(EngineEvent::Topics(missing.clone()));
                        last_missing = Some(missing.clone());
                    }
                }
                let up = answer.is_ok();
                // Up is said after every answer: a client's "all brokers are down" can come in
                // after the broker is back, and must not stand.
                if up || last != Some(up) {
                    self.sink.emit(EngineEvent::Broker(match answer {
                        Ok(_) => BrokerHealth::Up,
                        Err(e)
                            if e.rdkafka_error_code()
                                == Some(RDKafkaErrorCode::OperationTimedOut) =>
                        {
                            BrokerHealth::Unreachable(format!(
                                "no answer within {} s",
                                PROBE_TIMEOUT.as_secs()
                            ))
                        }
                        Err(e) => match crate::kafka::diagnose::wrong_address(&self.kafka) {
                            Some(wrong) => BrokerHealth::WrongAddress(wrong),
                            None => BrokerHealth::Unreachable(crate::engine::describe_outage(
                                &e.to_string(),
                                &self.kafka.bootstrap,
                            )),
                        },
                    }));
                    last = Some(up);
                }
                if up {
                    let blocked = self.short_of_replicas(&needed[1..], &mut min_isr);
                    if last_blocked.as_ref() != Some(&blocked) {
                        self.sink.emit(EngineEvent::OutputBlocked(blocked.clone()));
                        last_blocked = Some(blocked);
                    }
                }
                next = Instant::now() + PROBE_INTERVAL;
            }
            // Until the next probe, or until the scorer finishes and unparks this thread.
            std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
        }
    }
}

impl HealthProbe {
    /// The line for the first written topic (`written`: output, then dead letters) with a
    /// partition short of in-sync replicas, if one is: writes with acks=all wait there.
    /// `min_isr` caches each topic's `min.insync.replicas`, asked only once a shrunk ISR is seen.
    fn short_of_replicas(
        &self,
        written: &[&str],
        min_isr: &mut std::collections::HashMap<String, usize>,
    ) -> Option<String> {
        for (i, topic) in written.iter().enumerate() {
            let shrunk =
                crate::kafka::topics::shrunk_isr(self.producer.client(), topic, PROBE_TIMEOUT)
                    .ok()?;
            if shrunk.is_empty() {
                continue;
            }
            let min = match min_isr.get(*topic) {
                Some(&min) => min,
                None => {
                    let min = crate::kafka::topics::min_insync_replicas(&self.kafka, topic).ok()?;
                    min_isr.insert((*topic).to_owned(), min);
                    min
                }
            };
            if let Some(&(partition, in_sync)) = shrunk.iter().find(|(_, n)| *n < min) {
                let role = if i + 1 < written.len() {
                    "output"
                } else {
                    "dead-letter topic"
                };
                let short = crate::kafka::topics::ShortOfReplicas {
                    topic: (*topic).to_owned(),
                    partition,
                    in_sync,
                    min_in_sync: min,
                };
                return Some(short.line(role));
            }
        }
        None
    }
}

impl Drop for EndProbe {
    fn drop(&mut self) {
        self.finished.store(true, Ordering::Relaxed);
        self.probe.unpark();
    }
}
