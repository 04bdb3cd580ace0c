//! What `score`'s and `produce`'s stats lines show, gathered from the engine's events on the
//! stats thread, and what is news said once on stderr.

use super::*;

/// What the stats line shows, gathered from engine events.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) totals: Totals,
    /// Records behind, and ms behind.
    pub(super) lag: Option<(i64, i64)>,
    /// End-to-end latency over the engine's sliding window.
    pub(super) latency: Option<crate::observe::stats::LatencySummary>,
    pub(super) last_bad: Option<String>,
    pub(super) producer: Option<ProducerStatus>,
    pub(super) reached: bool,
    pub(super) unreachable: Option<String>,
    pub(super) failed: Option<String>,
    pub(super) rmse: Option<f64>,
    /// The serving model against the challenger, while one challenges.
    pub(super) comparison: Option<crate::observe::quality::Comparison>,
    pub(super) drift_reported: bool,
    /// Exactly-once: transactions `(committed, aborted)` so far.
    pub(super) transactions: Option<(u64, u64)>,
    /// The broker's health as last reported.
    pub(super) health: BrokerHealth,
    /// Brokers up of known and leader changes, as the scorer's client last saw them.
    pub(super) cluster: Option<crate::observe::cluster::ClusterHealth>,
    /// The output was said to be not writable.
    pub(super) blocked: bool,
    /// Topics last reported missing.
    pub(super) missing: Vec<String>,
    /// The Schema Registry as last reported, when framed records are decoded through one.
    pub(super) registry: Option<crate::engine::RegistryStatus>,
    /// For the lines about missing topics.
    pub(super) input_topic: String,
    pub(super) broker: String,
}

/// The tally, written by the stats thread alone, read by the waiting main thread.
#[derive(Default)]
pub(super) struct SharedTally(Mutex<Tally>);

impl SharedTally {
    pub(super) fn new(input_topic: &str, broker: &str) -> Self {
        SharedTally(Mutex::new(Tally {
            input_topic: input_topic.to_owned(),
            broker: broker.to_owned(),
            ..Tally::default()
        }))
    }

    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The engine's side: each event goes into a channel that the stats thread drains, so nothing is
/// added up or printed on the engine's or librdkafka's threads. `None` tells the drain to end.
pub(super) struct EventChannel(pub(super) std::sync::mpsc::Sender<Option<EngineEvent>>);

impl EventSink for EventChannel {
    fn emit(&self, event: EngineEvent) {
        // The drain ends only after the engine has stopped: a send cannot fail before.
        let _ = self.0.send(Some(event));
    }
}

impl Tally {
    /// Takes one engine event in, saying on stderr what is news.
    pub(super) fn absorb(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Scored(r) => self.on_scored(r),
            EngineEvent::Lag(l) => self.lag = Some((l.total(), l.most_behind_ms())),
            EngineEvent::Assigned(partitions) => {
                let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
                say!("assigned partitions: [{}]", list.join(", "));
            }
            EngineEvent::Producer(p) => self.on_producer(p),
            EngineEvent::Broker(health) => self.on_broker(health),
            EngineEvent::Failed(why) => self.failed = Some(why),
            EngineEvent::Topics(missing) => self.on_topics(missing),
            EngineEvent::ProducerFailed(why) => self.failed = Some(why),
            EngineEvent::Members(_) => {}
            EngineEvent::Cluster(health) => self.cluster = Some(health),
            EngineEvent::OutputBlocked(why) => self.on_output_blocked(why),
            EngineEvent::Model(event) => self.on_model(event),
            EngineEvent::Registry(status) => self.on_registry(status),
        }
    }

    /// The registry: the first framed record's format, the registry lost and found again; each
    /// said once.
    pub(super) fn on_registry(&mut self, status: crate::engine::RegistryStatus) {
        let before = self.registry.take().unwrap_or_default();
        if let Some(input) = status.input.as_ref().filter(|_| before.input.is_none()) {
            say!("input: {input} (registry {})", status.url);
        }
        match (&before.unreachable, &status.unreachable) {
            (None, Some(why)) => {
                say!("registry UNREACHABLE: {why}; records wait, nothing is committed past them")
            }
            (Some(_), None) => say!("registry reachable again at {}", status.url),
            _ => {}
        }
        self.registry = Some(status);
    }

    /// A scoring report: totals, quality and latency, and a drift alarm said once.
    pub(super) fn on_scored(&mut self, r: ScoreReport) {
        let t = self;
        if r.transactions.is_some() {
            t.transactions = r.transactions;
        }
        t.totals.absorb(&r);
        if r.last_bad.is_some() {
            t.last_bad = r.last_bad;
        }
        if let Some(a) = r.accuracy {
            t.rmse = Some(a.rmse);
        }
        t.comparison = r.comparison;
        if r.latency.is_some() {
            t.latency = r.latency;
        }
        if let (Some(alarm), false) = (r.drift, t.drift_reported) {
            t.drift_reported = true;
            let direction = match alarm.shift {
                crate::observe::quality::Shift::Up => "above",
                crate::observe::quality::Shift::Down => "below",
            };
            say!(
                "drift: labels {direction} the predictions since {} UTC (after {} labeled events)",
                &crate::engine::clock(alarm.at_ms)[..8],
                alarm.after
            );
        }
    }

    /// The producer's counts; a new acknowledgement shows the broker reached.
    pub(super) fn on_producer(&mut self, p: ProducerStatus) {
        if p.acked > self.producer.map_or(0, |q| q.acked) {
            self.reached = true;
            self.unreachable = None;
        }
        self.producer = Some(p);
    }

    /// The broker's health, and why it is not reached while it is not.
    pub(super) fn on_broker(&mut self, health: BrokerHealth) {
        let t = self;
        match health {
            BrokerHealth::Up => {
                t.health = BrokerHealth::Up;
                t.reached = true;
                t.unreachable = None;
            }
            health @ (BrokerHealth::Unreachable(_)
            | BrokerHealth::WrongAddress(_)
            | BrokerHealth::Refused(_)) => {
                t.health = std::mem::replace(&mut t.health, BrokerHealth::Connecting).then(health);
                t.unreachable = t.health.problem().map(str::to_owned);
            }
            BrokerHealth::Connecting => {}
        }
    }

    /// The topics missing now: says which went missing and which exist again.
    pub(super) fn on_topics(&mut self, missing: Vec<String>) {
        let t = self;
        for topic in &missing {
            if !t.missing.contains(topic) {
                let consequence = if *topic == t.input_topic {
                    "waiting for it to be created"
                } else {
                    "what goes there waits in memory until it is created"
                };
                say!("{}", missing_line(topic, &t.broker, consequence));
            }
        }
        for topic in &t.missing {
            if !missing.contains(topic) {
                say!("topic {topic} exists now");
            }
        }
        t.missing = missing;
    }

    /// The output blocked (with why) or writable again; each change said once.
    pub(super) fn on_output_blocked(&mut self, why: Option<String>) {
        match why {
            Some(why) => {
                say!("{why}: predictions wait, and nothing is committed past them");
                self.blocked = true;
            }
            None if self.blocked => {
                say!("output writable again");
                self.blocked = false;
            }
            None => {}
        }
    }

    /// A change to the model slots, said on stderr.
    pub(super) fn on_model(&mut self, event: ModelEvent) {
        // Whatever changed a slot, the comparison on the stats line was about the old pair.
        if matches!(
            event,
            ModelEvent::Challenger(_) | ModelEvent::Swapped { .. }
        ) {
            self.comparison = None;
        }
        say!("model: {}", event.describe());
    }
}

/// `  broker unreachable: <reason>` while it is, else nothing.
pub(super) fn broker_note(t: &Tally) -> String {
    let cluster = t
        .cluster
        .filter(|c| c.worth_showing())
        .map_or_else(String::new, |c| format!("  {}", c.text()));
    let unreachable = t
        .unreachable
        .as_ref()
        .map_or_else(String::new, |why| format!("  broker unreachable: {why}"));
    cluster + &unreachable
}
