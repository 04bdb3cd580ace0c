//! Dashboard state and its one mutation path, [`App::update`]. No I/O, no drawing.

use std::collections::VecDeque;

use crate::engine::{
    BrokerHealth, DriftAlarm, EngineEvent, LagByPartition, ModelEvent, ModelLine, ProducerStatus,
    Rate, RegistryStatus, ScoreReport, ScoredEvent, SwapReason, Totals,
};
use crate::observe::quality::{Accuracy, Comparison};
use crate::observe::stats::Throughput;
use crate::serving::producer::ProducerCommand;
use crate::serving::slots::ModelCommand;

/// How many recent events the view keeps.
pub const RECENT_CAPACITY: usize = 100;
/// How many predictions the salary sparkline keeps.
pub const PREDICTION_HISTORY: usize = 240;
/// What `d` multiplies the synthetic salaries by.
pub const DRIFT_FACTOR: f64 = 1.2;
/// Seconds of throughput history.
pub const THROUGHPUT_SECONDS: usize = 60;

/// The latest values of a series, at most a fixed number of them, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History<T> {
    values: VecDeque<T>,
    capacity: usize,
}

impl<T> History<T> {
    /// An empty history keeping at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        History {
            values: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds the newest value, forgetting the oldest if full.
    pub fn push(&mut self, value: T) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// The values, oldest first.
    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, T> {
        self.values.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The newest.
    pub fn last(&self) -> Option<&T> {
        self.values.back()
    }
}

/// What the header says about the setup; fixed for a run but for the serving model's version,
/// formula and axes, which a swap changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// Broker description, e.g. `embedded 127.0.0.1:40123` or `kafka-1:9092`.
    pub broker: String,
    /// The security in use, e.g. `SASL_SSL SCRAM-SHA-512 as alice`; none for plaintext.
    pub security: Option<String>,
    /// Input topic.
    pub input_topic: String,
    /// Output topic.
    pub output_topic: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Consumer group.
    pub group: String,
    /// Model version id.
    pub model_version: String,
    /// The fitted line as text.
    pub formula: String,
    /// The challenger at start (`--challenger`).
    pub challenger: Option<ModelLine>,
    /// The serving line at start, for the chart.
    pub line: ServingLine,
    /// What the serving model plots against what: the names the chart and the events table give
    /// its events once one is shown ([`StreamView::plot`]).
    pub axes: Axes,
    /// The producer's rate at start.
    pub rate: Rate,
    /// How predictions are delivered: `at-least-once`, or exactly-once and its interval.
    pub delivery: String,
    /// Where Prometheus metrics are served, if they are.
    pub metrics_address: Option<String>,
    /// What `--create-topics` did, for the header.
    pub topics_note: Option<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            broker: String::new(),
            security: None,
            input_topic: crate::engine::DEFAULT_INPUT_TOPIC.into(),
            output_topic: crate::engine::DEFAULT_OUTPUT_TOPIC.into(),
            dlq_topic: crate::engine::DEFAULT_DLQ_TOPIC.into(),
            group: crate::engine::DEFAULT_GROUP.into(),
            model_version: String::new(),
            formula: String::new(),
            challenger: None,
            line: ServingLine::default(),
            axes: Axes::default(),
            rate: Rate::DEFAULT,
            delivery: "at-least-once".into(),
            metrics_address: None,
            topics_note: None,
        }
    }
}

/// Everything the stream has shown: what `space` freezes and `c` clears.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamView {
    /// Latest scored events, newest last.
    pub recent: VecDeque<ScoredEvent>,
    /// Latest predicted salaries, newest last.
    pub predictions: VecDeque<u64>,
    /// Scored events per second.
    pub throughput: Throughput,
    /// Consumer lag by partition.
    pub lag: LagByPartition,
    /// Counts since the start (or the last clear).
    pub totals: Totals,
    /// The latest bad record's reason.
    pub last_bad: Option<String>,
    /// Accuracy over the latest labeled events.
    pub accuracy: Option<Accuracy>,
    /// Rolling RMSE at each report, and whether the drift alarm had fired by then.
    pub rmse_history: History<(u64, bool)>,
    /// End-to-end latency over the engine's sliding window, as last reported.
    pub latency: Option<crate::observe::stats::LatencySummary>,
    /// p99 of that latency at each report, in µs.
    pub p99_history: History<u64>,
    /// Total consumer lag at each lag report (about one a second), in records.
    pub lag_history: History<u64>,
    /// The drift alarm, once fired.
    pub drift: Option<DriftAlarm>,
    /// The serving model against the challenger on the same labeled events.
    pub comparison: Option<Comparison>,
    /// What the chart and the events table name and draw these events by.
    pub plot: Plot,
}

impl StreamView {
    fn new(now_ms: u64, plot: Plot) -> Self {
        StreamView {
            recent: VecDeque::with_capacity(RECENT_CAPACITY),
            predictions: VecDeque::with_capacity(PREDICTION_HISTORY),
            throughput: Throughput::new(THROUGHPUT_SECONDS, now_ms),
            lag: LagByPartition::default(),
            totals: Totals::default(),
            last_bad: None,
            accuracy: None,
            rmse_history: History::new(PREDICTION_HISTORY),
            latency: None,
            p99_history: History::new(PREDICTION_HISTORY),
            lag_history: History::new(THROUGHPUT_SECONDS),
            drift: None,
            comparison: None,
            plot,
        }
    }

    /// Takes in `report`'s counts and events; the first event of another model than the newest
    /// shown (or the first of all) brings the serving model's `axes` and `line`: the events
    /// before it keep the names of the model that scored them, even in a report that came after
    /// the swap.
    fn absorb(&mut self, report: ScoreReport, now_ms: u64, axes: &Axes, line: ServingLine) {
        self.throughput.record(report.scored, now_ms);
        self.totals.absorb(&report);
        if report.last_bad.is_some() {
            self.last_bad = report.last_bad;
        }
        self.drift = report.drift.or(self.drift);
        self.comparison = report.comparison;
        if let Some(a) = report.accuracy {
            self.rmse_history
                .push((a.rmse.round() as u64, self.drift.is_some()));
            self.accuracy = Some(a);
        }
        if let Some(l) = report.latency {
            self.p99_history.push((l.p99_ms * 1000.0).round() as u64);
            self.latency = Some(l);
        }
        for event in report.recent {
            let newest = self.recent.back().map(|e| &e.features);
            if newest.is_none_or(|newest| !newest.same_model(&event.features)) {
                self.plot = Plot::of(axes, line);
            }
            if self.predictions.len() == PREDICTION_HISTORY {
                self.predictions.pop_front();
            }
            self.predictions
                .push_back(event.predicted.max(0.0).round() as u64);
            if self.recent.len() == RECENT_CAPACITY {
                self.recent.pop_front();
            }
            self.recent.push_back(event);
        }
    }
}

/// The serving model's line and training range, for the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServingLine {
    /// Salary per year.
    pub slope: f64,
    /// Salary at zero years.
    pub intercept: f64,
    /// Largest training value of years.
    pub range_max: f64,
}

/// What the chart and the events table name and draw the events in view by: the axes and the line
/// of the model that scored the newest of them. A swap changes it only when that model's first
/// event is shown (at once while none is), so the names over the values are always theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// The names of the plotted feature and the label.
    pub axes: Axes,
    /// The model's line and training range.
    pub line: ServingLine,
}

impl Plot {
    /// A model's `axes` and `line`.
    fn of(axes: &Axes, line: ServingLine) -> Plot {
        Plot {
            axes: axes.clone(),
            line,
        }
    }
}

/// The names the chart and the events table give the plotted feature and the prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axes {
    /// The plotted feature: `years` for the demo, else the feature's field.
    pub x: String,
    /// The label: `salary` for the demo.
    pub y: String,
}

impl Axes {
    /// The axes of a model plotted by the feature read from `plotted` and labeled `label`:
    /// `years` and `salary` for the demo's line (`line`: a linear model of one feature), else
    /// the fields themselves.
    pub fn of_model(plotted: &str, label: &str, line: bool) -> Self {
        let demo = line && plotted == "years_experience" && label == "salary";
        Axes {
            x: if demo { "years" } else { plotted }.to_owned(),
            y: label.to_owned(),
        }
    }
}

impl Default for Axes {
    fn default() -> Self {
        Axes {
            x: "years".into(),
            y: "salary".into(),
        }
    }
}

impl Default for ServingLine {
    fn default() -> Self {
        ServingLine {
            slope: 0.0,
            intercept: 0.0,
            range_max: 10.0,
        }
    }
}

/// Messages: the only way state changes.
// A report is moved once per frame from the channel into `update`; boxing it would allocate
// per report for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Time passes; milliseconds on the dashboard's clock.
    Tick(u64),
    /// Something happened in the engine.
    Engine(EngineEvent),
    /// Engine reports were dropped because the view fell behind.
    Dropped(u64),
    /// `p`
    ToggleProducer,
    /// `+`
    FasterProducer,
    /// `-`
    SlowerProducer,
    /// `d`: shift the synthetic labels (salaries 20% higher) or stop shifting them.
    ToggleDrift,
    /// `t`, `P`, `r`, `x`: fit a challenger, promote it, roll back, drop it.
    Model(ModelCommand),
    /// `space`
    ToggleFreeze,
    /// `c`
    Clear,
    /// `?`
    ToggleHelp,
    /// `q`, Ctrl-C, SIGTERM
    Quit,
    /// Something the runtime says about the models (a key it cannot serve), for the header.
    ModelNote(String),
}

/// Effects `update` asks the runtime to carry out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Send a command to the synthetic producer.
    Producer(ProducerCommand),
    /// Ask the scorer to change its models.
    Model(ModelCommand),
}

/// The dashboard's state.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// Fixed facts for the header.
    setup: Setup,
    /// The live stream state.
    live: StreamView,
    /// A copy of `live` taken when the view was frozen.
    frozen: Option<StreamView>,
    /// The producer as last reported (rate updated at once on `+`/`-`).
    producer: ProducerStatus,
    /// Broker reachability.
    broker: BrokerHealth,
    /// Brokers up of known and leader changes, once the scorer's statistics tell them.
    cluster: Option<crate::observe::cluster::ClusterHealth>,
    /// Why the output cannot take acknowledged writes now, if it cannot.
    output_blocked: Option<String>,
    /// Help overlay shown.
    show_help: bool,
    /// The runtime should exit.
    should_quit: bool,
    /// Engine reports lost between engine and view.
    dropped_reports: u64,
    /// The scorer's fatal error, if it stopped.
    failure: Option<String>,
    /// Why the synthetic producer stopped, if it stopped on its own.
    producer_failure: Option<String>,
    /// Quit was asked for again while quitting: exit now, whatever is unfinished.
    force_quit: bool,
    /// Topics the scorer needs that the broker does not have.
    missing_topics: Vec<String>,
    /// Labeled events the accuracy figures cover.
    accuracy_window: usize,
    /// The watched group's members (`--watch-group`), once the broker told them.
    members: Option<Vec<crate::observe::watch::GroupMember>>,
    /// Exactly-once: transactions `(committed, aborted)` so far.
    transactions: Option<(u64, u64)>,
    /// Input partitions this instance owns.
    assigned: Vec<i32>,
    /// The synthetic producer's labels are drifted.
    drift_on: bool,
    /// The latest model change, refusal or retraining, for the header.
    model_note: Option<String>,
    /// The serving line, for the chart.
    line: ServingLine,
    /// The challenger, if one is loaded.
    challenger: Option<ModelLine>,
    /// The Schema Registry, when framed records are decoded through one.
    registry: Option<RegistryStatus>,
    /// The dashboard clock, ms.
    now_ms: u64,
}

impl App {
    /// A fresh dashboard at `now_ms`.
    pub fn new(setup: Setup, now_ms: u64) -> Self {
        App {
            line: setup.line,
            challenger: setup.challenger.clone(),
            live: StreamView::new(now_ms, Plot::of(&setup.axes, setup.line)),
            frozen: None,
            producer: ProducerStatus {
                running: false,
                rate: setup.rate,
                sent: 0,
                acked: 0,
                failed: 0,
            },
            broker: BrokerHealth::Connecting,
            cluster: None,
            output_blocked: None,
            show_help: false,
            should_quit: false,
            dropped_reports: 0,
            failure: None,
            producer_failure: None,
            force_quit: false,
            missing_topics: Vec::new(),
            accuracy_window: crate::observe::quality::Quality::WINDOW,
            members: None,
            transactions: None,
            assigned: Vec::new(),
            drift_on: false,
            model_note: None,
            registry: None,
            setup,
            now_ms,
        }
    }

    /// Fixed facts for the header (the serving version and its line as last reported).
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The producer as last reported (its rate updated at once on `+`/`-`).
    pub fn producer(&self) -> &ProducerStatus {
        &self.producer
    }

    /// Broker reachability.
    pub fn broker(&self) -> &BrokerHealth {
        &self.broker
    }

    /// Why the output cannot take acknowledged writes now, if it cannot.
    pub fn output_blocked(&self) -> Option<&str> {
        self.output_blocked.as_deref()
    }

    /// Brokers up of known and leader changes, when worth showing (a cluster, or one down).
    pub fn cluster(&self) -> Option<crate::observe::cluster::ClusterHealth> {
        self.cluster.filter(|c| c.worth_showing())
    }

    /// Whether the help overlay is shown.
    pub fn show_help(&self) -> bool {
        self.show_help
    }

    /// Whether the view is frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Whether the runtime should exit.
    pub fn should_quit(&self) -> bool {
        self.should_quit
    }

    /// Quit was asked for again while quitting: exit now, whatever is unfinished.
    pub fn force_quit(&self) -> bool {
        self.force_quit
    }

    /// Engine reports lost between engine and view.
    pub fn dropped_reports(&self) -> u64 {
        self.dropped_reports
    }

    /// The scorer's fatal error, if it stopped.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Why the synthetic producer stopped, if it stopped on its own.
    pub fn producer_failure(&self) -> Option<&str> {
        self.producer_failure.as_deref()
    }

    /// Topics the scorer needs that the broker does not have.
    pub fn missing_topics(&self) -> &[String] {
        &self.missing_topics
    }

    /// Labeled events the accuracy figures cover.
    pub fn accuracy_window(&self) -> usize {
        self.accuracy_window
    }

    /// The watched group's members (`--watch-group`), once the broker told them: an empty list
    /// is a group with no members; `None` is a dashboard that scores, or a broker yet to tell.
    pub fn members(&self) -> Option<&[crate::observe::watch::GroupMember]> {
        self.members.as_deref()
    }

    /// Exactly-once: transactions `(committed, aborted)` so far.
    pub fn transactions(&self) -> Option<(u64, u64)> {
        self.transactions
    }

    /// Input partitions this instance owns.
    pub fn assigned(&self) -> &[i32] {
        &self.assigned
    }

    /// Whether the synthetic producer's labels are drifted.
    pub fn drift_on(&self) -> bool {
        self.drift_on
    }

    /// The latest model change, refusal or fit, for the header.
    pub fn model_note(&self) -> Option<&str> {
        self.model_note.as_deref()
    }

    /// The serving line (the chart draws the view's [`Plot`]: the line of the model that scored
    /// the events it shows).
    pub fn line(&self) -> ServingLine {
        self.line
    }

    /// The challenger, if one is loaded.
    pub fn challenger(&self) -> Option<&ModelLine> {
        self.challenger.as_ref()
    }

    /// The Schema Registry as last reported, when framed records are decoded through one.
    pub fn registry(&self) -> Option<&RegistryStatus> {
        self.registry.as_ref()
    }

    /// The serving model's axes and line: what its events are drawn by.
    fn serving_plot(&self) -> Plot {
        Plot::of(&self.setup.axes, self.line)
    }

    /// What to draw: the frozen copy while frozen, else the live state.
    pub fn view(&self) -> &StreamView {
        self.frozen.as_ref().unwrap_or(&self.live)
    }

    /// Applies one message; returns an effect for the runtime to carry out, if any.
    pub fn update(&mut self, message: Message) -> Option<Effect> {
        match message {
            Message::Tick(now) => {
                self.now_ms = self.now_ms.max(now);
                self.live.throughput.advance(self.now_ms);
            }
            Message::Engine(event) => self.on_engine(event),
            Message::Dropped(n) => self.dropped_reports += n,
            Message::ToggleProducer => {
                return Some(Effect::Producer(ProducerCommand::Toggle));
            }
            Message::FasterProducer => {
                self.producer.rate = self.producer.rate.doubled();
                return Some(Effect::Producer(ProducerCommand::SetRate(
                    self.producer.rate,
                )));
            }
            Message::SlowerProducer => {
                self.producer.rate = self.producer.rate.halved();
                return Some(Effect::Producer(ProducerCommand::SetRate(
                    self.producer.rate,
                )));
            }
            Message::ToggleDrift => {
                self.drift_on = !self.drift_on;
                let factor = if self.drift_on { DRIFT_FACTOR } else { 1.0 };
                return Some(Effect::Producer(ProducerCommand::SetDrift(factor)));
            }
            Message::Model(command) => {
                if command == ModelCommand::FitChallenger {
                    self.model_note =
                        Some("fitting a challenger on the latest labeled events...".into());
                }
                return Some(Effect::Model(command));
            }
            Message::ToggleFreeze => {
                self.frozen = match self.frozen.take() {
                    Some(_) => None,
                    None => Some(self.live.clone()),
                };
            }
            Message::Clear => {
                let lag = std::mem::take(&mut self.live.lag);
                self.live = StreamView::new(self.now_ms, self.serving_plot());
                self.live.lag = lag;
                if self.frozen.is_some() {
                    self.frozen = Some(self.live.clone());
                }
            }
            Message::ToggleHelp => self.show_help = !self.show_help,
            Message::Quit => {
                self.force_quit = self.should_quit;
                self.should_quit = true;
            }
            Message::ModelNote(note) => self.model_note = Some(note),
        }
        None
    }

    fn on_engine(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Scored(report) => {
                if report.transactions.is_some() {
                    self.transactions = report.transactions;
                }
                self.live
                    .absorb(report, self.now_ms, &self.setup.axes, self.line)
            }
            EngineEvent::Lag(lag) => {
                // Before any partition is assigned there is no lag to chart, not a lag of 0.
                if !lag.partitions.is_empty() {
                    self.live
                        .lag_history
                        .push(u64::try_from(lag.total()).unwrap_or(0));
                }
                self.live.lag = lag;
            }
            EngineEvent::Assigned(partitions) => self.assigned = partitions,
            EngineEvent::Producer(status) => self.producer = status,
            EngineEvent::Broker(health) => {
                self.broker =
                    std::mem::replace(&mut self.broker, BrokerHealth::Connecting).then(health)
            }
            EngineEvent::Failed(reason) => self.failure = Some(reason),
            EngineEvent::Topics(missing) => self.missing_topics = missing,
            EngineEvent::Members(members) => self.members = Some(members),
            EngineEvent::Cluster(health) => self.cluster = Some(health),
            EngineEvent::OutputBlocked(why) => self.output_blocked = why,
            EngineEvent::ProducerFailed(reason) => {
                self.producer.running = false;
                self.producer_failure = Some(reason);
            }
            EngineEvent::Model(event) => self.on_model(event),
            EngineEvent::Registry(status) => self.registry = Some(status),
        }
    }

    fn on_model(&mut self, event: ModelEvent) {
        let note = event.describe();
        match event {
            ModelEvent::Swapped { line, reason } => {
                if matches!(reason, SwapReason::Promoted { .. }) {
                    self.challenger = None;
                }
                self.line.slope = line.slope;
                self.line.intercept = line.intercept;
                // A model of other features is plotted and tabled by its own names.
                if !line.plotted.is_empty() {
                    let is_line = line.slope.is_finite() && line.intercept.is_finite();
                    self.setup.axes = Axes::of_model(&line.plotted, &line.label, is_line);
                }
                if line.range_max.is_finite() {
                    self.line.range_max = line.range_max;
                }
                self.setup.model_version = line.version;
                self.setup.formula = line.formula;
                // With no event in view, no name stands over an old model's values.
                if self.live.recent.is_empty() {
                    self.live.plot = self.serving_plot();
                }
                // The alarm, the accuracy and the comparison were about the old model.
                self.live.drift = None;
                self.live.accuracy = None;
                self.live.comparison = None;
                self.model_note = Some(note);
            }
            ModelEvent::Challenger(line) => {
                let old = std::mem::replace(&mut self.challenger, line);
                self.live.comparison = None;
                // A new challenger is named in the header, and the fit's note says where it came
                // from; one dropped is said.
                if let (None, Some(old)) = (&self.challenger, old) {
                    self.model_note = Some(format!("dropped challenger {}", old.version));
                }
            }
            ModelEvent::Rejected(_) | ModelEvent::Unrecorded(_) | ModelEvent::Fitted { .. } => {
                self.model_note = Some(note);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn setup() -> Setup {
        Setup {
            broker: "embedded 127.0.0.1:9092".into(),
            input_topic: "experience-events".into(),
            output_topic: "salary-predictions".into(),
            dlq_topic: "experience-events.dlq".into(),
            group: "salary-stream".into(),
            model_version: "0123abcd".into(),
            formula: "salary = 25792.20 + 9449.96 × years".into(),
            ..Setup::default()
        }
    }

    fn event(offset: i64, years: f64) -> ScoredEvent {
        ScoredEvent {
            partition: 0,
            offset,
            event_ms: Some(0),
            features: crate::engine::FeatureRow::years(years),
            predicted: 25792.200199 + 9449.962321 * years,
            salary: None,
            challenger: None,
            latency_ms: Some(1.0),
            extrapolated: years > 10.5,
        }
    }

    fn report(offsets: std::ops::Range<i64>, bad: u64) -> ScoreReport {
        ScoreReport {
            recent: offsets.clone().map(|o| event(o, 5.0)).collect(),
            scored: offsets.count() as u64,
            extrapolated: 0,
            bad,
            last_bad: (bad > 0).then(|| "empty value".to_owned()),
            delivery_errors: 0,
            ..Default::default()
        }
    }

    #[test]
    fn keys_become_effects() {
        let mut app = App::new(setup(), 0);
        let table: &[(Message, Option<Effect>, Rate)] = &[
            (
                Message::ToggleProducer,
                Some(Effect::Producer(ProducerCommand::Toggle)),
                Rate::PerSecond(50),
            ),
            (
                Message::FasterProducer,
                Some(Effect::Producer(ProducerCommand::SetRate(Rate::PerSecond(
                    100,
                )))),
                Rate::PerSecond(100),
            ),
            (
                Message::FasterProducer,
                Some(Effect::Producer(ProducerCommand::SetRate(Rate::PerSecond(
                    200,
                )))),
                Rate::PerSecond(200),
            ),
            (
                Message::SlowerProducer,
                Some(Effect::Producer(ProducerCommand::SetRate(Rate::PerSecond(
                    100,
                )))),
                Rate::PerSecond(100),
            ),
            (Message::ToggleHelp, None, Rate::PerSecond(100)),
        ];
        for (msg, effect, rate) in table {
            assert_eq!(app.update(msg.clone()), *effect, "{msg:?}");
            assert_eq!(app.producer.rate, *rate, "{msg:?}");
        }
        assert!(app.show_help);
        assert!(!app.should_quit);
        app.update(Message::Quit);
        assert!(app.should_quit);
    }

    #[test]
    fn reports_fill_the_view_with_bounds() {
        let mut app = App::new(setup(), 0);
        app.update(Message::Engine(EngineEvent::Scored(report(0..60, 2))));
        app.update(Message::Tick(1000));
        app.update(Message::Engine(EngineEvent::Scored(report(60..120, 1))));
        app.update(Message::Tick(2000));
        let v = app.view();
        assert_eq!(v.recent.len(), RECENT_CAPACITY);
        assert_eq!(v.recent.front().map(|e| e.offset), Some(20));
        assert_eq!(v.recent.back().map(|e| e.offset), Some(119));
        assert_eq!(v.predictions.len(), 120);
        assert_eq!(v.predictions.back(), Some(&73042));
        assert_eq!(v.throughput.per_second_now(), 60);
        assert_eq!(v.throughput.total(), 120);
        assert_eq!(v.throughput.per_second_average(), 60.0);
        assert_eq!(v.totals.bad, 3);
        assert_eq!(v.last_bad.as_deref(), Some("empty value"));
    }

    #[test]
    fn drift_key_and_accuracy_reports() {
        use crate::observe::quality::Shift;
        let mut app = App::new(setup(), 0);
        assert_eq!(
            app.update(Message::ToggleDrift),
            Some(Effect::Producer(ProducerCommand::SetDrift(1.2)))
        );
        assert!(app.drift_on);
        let accuracy = Accuracy {
            n: 500,
            mae: 4000.0,
            rmse: 5000.4,
            r2: 0.9,
        };
        let alarm = DriftAlarm {
            shift: Shift::Up,
            after: 1034,
            at_ms: 7,
        };
        let mut r = report(0..2, 0);
        r.accuracy = Some(accuracy);
        app.update(Message::Engine(EngineEvent::Scored(r.clone())));
        r.drift = Some(alarm);
        app.update(Message::Engine(EngineEvent::Scored(r.clone())));
        r.drift = None;
        app.update(Message::Engine(EngineEvent::Scored(r)));
        assert_eq!(app.view().accuracy, Some(accuracy));
        assert_eq!(
            app.view().rmse_history.iter().copied().collect::<Vec<_>>(),
            [(5000, false), (5000, true), (5000, true)]
        );
        assert_eq!(
            app.view().drift,
            Some(alarm),
            "an alarm stays until cleared"
        );
        assert_eq!(
            app.update(Message::ToggleDrift),
            Some(Effect::Producer(ProducerCommand::SetDrift(1.0)))
        );
    }

    #[test]
    fn model_events_update_the_header_and_reset_quality() {
        let mut app = App::new(setup(), 0);
        assert_eq!(
            app.update(Message::Model(ModelCommand::FitChallenger)),
            Some(Effect::Model(ModelCommand::FitChallenger))
        );
        let mut r = report(0..1, 0);
        r.drift = Some(DriftAlarm {
            shift: crate::observe::quality::Shift::Up,
            after: 9,
            at_ms: 0,
        });
        app.update(Message::Engine(EngineEvent::Scored(r)));
        let challenger = ModelLine {
            version: "9f00aa11".into(),
            formula: "salary = 1.00 + 2.00 × years".into(),
            slope: 2.0,
            intercept: 1.0,
            plotted: "years_experience".into(),
            label: "salary".into(),
            range_max: 12.5,
        };
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Fitted {
            rows: 500,
            rmse_before: 18502.4,
            rmse_after: 5480.6,
            version: "9f00aa11".into(),
            path: "/data/models/9f00aa11.json".into(),
        })));
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Challenger(
            Some(challenger.clone()),
        ))));
        assert_eq!(
            app.model_note.as_deref(),
            Some(
                "fitted challenger 9f00aa11 on 500 labeled: RMSE 18502 -> 5481, kept in \
                 /data/models/9f00aa11.json"
            )
        );
        assert_eq!(app.challenger.as_ref(), Some(&challenger));
        assert_eq!(
            app.setup.model_version, "0123abcd",
            "the challenger does not serve"
        );
        assert!(app.view().drift.is_some());

        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
            line: challenger.clone(),
            reason: SwapReason::Promoted {
                replaced: "0123abcd".into(),
                auto: None,
            },
        })));
        assert_eq!(
            app.line,
            ServingLine {
                slope: 2.0,
                intercept: 1.0,
                range_max: 12.5
            }
        );
        assert_eq!(
            app.setup.axes,
            Axes::default(),
            "the demo's years and salary"
        );
        assert_eq!(app.setup.model_version, "9f00aa11");
        assert_eq!(app.setup.formula, "salary = 1.00 + 2.00 × years");
        assert_eq!(app.challenger, None);
        assert_eq!(app.view().drift, None);
        assert_eq!(
            app.model_note.as_deref(),
            Some("promoted 9f00aa11 to serving, replacing 0123abcd")
        );
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Rejected(
            "model artifact m.json is corrupt: EOF".into(),
        ))));
        assert_eq!(
            app.model_note.as_deref(),
            Some("kept the old model: model artifact m.json is corrupt: EOF")
        );
        assert_eq!(app.setup.model_version, "9f00aa11");
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Challenger(
            Some(ModelLine {
                version: "77aa0011".into(),
                ..challenger
            }),
        ))));
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Challenger(
            None,
        ))));
        assert_eq!(
            app.model_note.as_deref(),
            Some("dropped challenger 77aa0011")
        );
    }

    #[test]
    fn a_reload_to_a_model_of_other_features_is_plotted_by_its_names() {
        let mut app = App::new(setup(), 0);
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
            line: ModelLine {
                version: "e2f71670".into(),
                formula: "progression ~ linear, 10 features".into(),
                slope: f64::NAN,
                intercept: f64::NAN,
                plotted: "s1".into(),
                label: "progression".into(),
                range_max: 301.0,
            },
            reason: SwapReason::Reloaded {
                replaced: "0123abcd".into(),
            },
        })));
        assert_eq!(
            app.setup.axes,
            Axes {
                x: "s1".into(),
                y: "progression".into()
            }
        );
        assert_eq!(app.line.range_max, 301.0);
        assert_eq!(app.setup.formula, "progression ~ linear, 10 features");
        // Back to a line of years: the demo's names again. A line of another feature is named
        // by its field.
        let line = |plotted: &str, label: &str| ModelLine {
            version: "0123abcd".into(),
            formula: String::new(),
            slope: 9449.96,
            intercept: 25792.2,
            plotted: plotted.into(),
            label: label.into(),
            range_max: 10.5,
        };
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
            line: line("years_experience", "salary"),
            reason: SwapReason::RolledBack {
                from: "e2f71670".into(),
            },
        })));
        assert_eq!(app.setup.axes, Axes::default());
        assert_eq!(app.line.range_max, 10.5);
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
            line: line("rooms", "price"),
            reason: SwapReason::Reloaded {
                replaced: "0123abcd".into(),
            },
        })));
        assert_eq!(
            app.setup.axes,
            Axes {
                x: "rooms".into(),
                y: "price".into()
            }
        );
    }

    /// A swap renames what is drawn only with the new model's first event: the events before it,
    /// even those reported after the swap, keep the names and the line of the model that scored
    /// them, and so does a frozen view.
    #[test]
    fn a_swap_renames_the_view_with_the_new_models_first_event() {
        let diabetes = ModelLine {
            version: "e2f71670".into(),
            formula: "progression ~ linear, 10 features".into(),
            slope: f64::NAN,
            intercept: f64::NAN,
            plotted: "s1".into(),
            label: "progression".into(),
            range_max: 301.0,
        };
        let swap = Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
            line: diabetes,
            reason: SwapReason::Reloaded {
                replaced: "0123abcd".into(),
            },
        }));
        let demo = Plot {
            axes: Axes::default(),
            line: ServingLine::default(),
        };
        let mut app = App::new(setup(), 0);
        app.update(Message::Engine(EngineEvent::Scored(report(0..2, 0))));
        app.update(Message::ToggleFreeze);
        app.update(swap.clone());
        assert_eq!(app.view().plot, demo, "frozen");
        app.update(Message::ToggleFreeze);
        assert_eq!(app.view().plot, demo, "no event of the new model yet");
        // Scored by the old model before the swap, reported after it.
        app.update(Message::Engine(EngineEvent::Scored(report(2..3, 0))));
        assert_eq!(app.view().plot, demo, "an old model's event");
        app.update(Message::ToggleFreeze);
        let mut r = report(3..4, 0);
        r.recent[0].features = crate::engine::FeatureRow::named(&[("s1", 157.0), ("s5", 4.86)]);
        app.update(Message::Engine(EngineEvent::Scored(r)));
        let new = Plot {
            axes: Axes {
                x: "s1".into(),
                y: "progression".into(),
            },
            line: ServingLine {
                slope: f64::NAN,
                intercept: f64::NAN,
                range_max: 301.0,
            },
        };
        // NaN is not equal to itself: compared as text.
        assert_eq!(
            format!("{:?}", app.view().plot),
            format!("{demo:?}"),
            "frozen"
        );
        app.update(Message::ToggleFreeze);
        assert_eq!(format!("{:?}", app.view().plot), format!("{new:?}"));
        // With no event in view, a swap renames at once.
        app.update(Message::Clear);
        assert_eq!(format!("{:?}", app.view().plot), format!("{new:?}"));
        app.update(swap_back());
        assert_eq!(app.view().plot, demo);
    }

    /// A model of the same features that names its label otherwise: its events are told from
    /// the old model's by the model that made them, not by their fields.
    #[test]
    fn a_model_of_the_same_features_renames_the_label_with_its_first_event() {
        let mut app = App::new(setup(), 0);
        app.update(Message::Engine(EngineEvent::Scored(report(0..2, 0))));
        app.update(Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
            line: ModelLine {
                version: "5a1e0001".into(),
                formula: "pay = 1.00 + 2.00 × years_experience".into(),
                slope: 2.0,
                intercept: 1.0,
                plotted: "years_experience".into(),
                label: "pay".into(),
                range_max: 10.0,
            },
            reason: SwapReason::Reloaded {
                replaced: "0123abcd".into(),
            },
        })));
        app.update(Message::Engine(EngineEvent::Scored(report(2..3, 0))));
        assert_eq!(app.view().plot.axes, Axes::default());
        let mut r = report(3..4, 0);
        r.recent[0].features = crate::engine::FeatureRow::named(&[("years_experience", 5.0)]);
        app.update(Message::Engine(EngineEvent::Scored(r)));
        assert_eq!(
            app.view().plot,
            Plot {
                axes: Axes {
                    x: "years_experience".into(),
                    y: "pay".into()
                },
                line: ServingLine {
                    slope: 2.0,
                    intercept: 1.0,
                    range_max: 10.0
                }
            }
        );
    }

    fn swap_back() -> Message {
        Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
            line: ModelLine {
                version: "0123abcd".into(),
                formula: String::new(),
                slope: 0.0,
                intercept: 0.0,
                plotted: "years_experience".into(),
                label: "salary".into(),
                range_max: 10.0,
            },
            reason: SwapReason::RolledBack {
                from: "e2f71670".into(),
            },
        }))
    }

    #[test]
    fn freeze_holds_the_view_and_clear_empties_it() {
        let mut app = App::new(setup(), 0);
        app.update(Message::Engine(EngineEvent::Scored(report(0..5, 0))));
        app.update(Message::ToggleFreeze);
        app.update(Message::Engine(EngineEvent::Scored(report(5..10, 0))));
        assert_eq!(app.view().recent.len(), 5);
        assert_eq!(app.live.recent.len(), 10);
        app.update(Message::ToggleFreeze);
        assert_eq!(app.view().recent.len(), 10);
        app.update(Message::Engine(EngineEvent::Lag(LagByPartition {
            partitions: vec![(0, 4)],
            behind_ms: vec![],
        })));
        app.update(Message::Clear);
        assert_eq!(app.view().recent.len(), 0);
        assert_eq!(app.view().throughput.total(), 0);
        assert_eq!(app.view().lag.total(), 4);
    }

    #[test]
    fn lag_is_charted_only_once_a_partition_has_some() {
        let mut app = App::new(setup(), 0);
        app.update(Message::Engine(EngineEvent::Lag(LagByPartition::default())));
        app.update(Message::Engine(EngineEvent::Lag(LagByPartition::default())));
        assert!(app.view().lag_history.is_empty());
        app.update(Message::Engine(EngineEvent::Lag(LagByPartition {
            partitions: vec![(0, 4), (1, 3)],
            behind_ms: vec![],
        })));
        assert_eq!(
            app.view().lag_history.iter().copied().collect::<Vec<_>>(),
            [7]
        );
    }

    #[test]
    fn engine_status_events_replace_state() {
        let mut app = App::new(setup(), 0);
        let status = ProducerStatus {
            running: true,
            rate: Rate::PerSecond(50),
            sent: 10,
            acked: 9,
            failed: 0,
        };
        app.update(Message::Engine(EngineEvent::Producer(status)));
        app.update(Message::Engine(EngineEvent::Broker(BrokerHealth::Up)));
        app.update(Message::Dropped(3));
        app.update(Message::Engine(EngineEvent::Failed("boom".into())));
        assert_eq!(app.producer, status);
        assert_eq!(app.broker, BrokerHealth::Up);
        assert_eq!(app.dropped_reports, 3);
        assert_eq!(app.failure.as_deref(), Some("boom"));
    }
}
