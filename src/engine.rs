//! The engine's vocabulary: what the engine tells its sinks ([`EngineEvent`], [`ScoreReport`],
//! [`ModelEvent`]), the defaults every command shares, and small helpers (clocks, outages).
//!
//! The engine itself is [`crate::kafka`], [`crate::formats`], [`crate::model`], [`crate::serving`]
//! and [`crate::observe`]; nothing of it knows about the terminal. The dashboard and the headless
//! commands are two [`EventSink`]s.

use std::sync::Arc;

pub use crate::observe::stats::LagByPartition;

/// The default input topic.
pub const DEFAULT_INPUT_TOPIC: &str = "experience-events";
/// The default output topic.
pub const DEFAULT_OUTPUT_TOPIC: &str = "salary-predictions";
/// The default dead-letter topic.
pub const DEFAULT_DLQ_TOPIC: &str = "experience-events.dlq";
/// The default consumer group.
pub const DEFAULT_GROUP: &str = "salary-stream";
/// Partitions of the input topic on the embedded broker.
pub const EMBEDDED_INPUT_PARTITIONS: i32 = 3;

/// One scored input, as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredEvent {
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Event time, ms since the Unix epoch (`ts_ms`, else the Kafka timestamp).
    pub event_ms: Option<i64>,
    /// The event's features as the view shows them, most influential first (years of
    /// experience in the demo).
    pub features: FeatureRow,
    /// Predicted salary.
    pub predicted: f64,
    /// Ground-truth label, when the event carried one.
    pub salary: Option<f64>,
    /// The challenger's prediction, when one was loaded.
    pub challenger: Option<f64>,
    /// Milliseconds from the event's time to its scoring.
    pub latency_ms: Option<f64>,
    /// Outside the model's training range.
    pub extrapolated: bool,
}

/// The features a model's events are shown by, most influential first: each one's index in the
/// model's row of values and its JSON field (`Predictor::shown`).
pub type FeatureColumns = Arc<[(usize, String)]>;

/// The first [`FeatureRow::CAPACITY`] features of one event as the view shows them, most
/// influential first, and their names. Made for every record scored, so it copies no name and
/// allocates nothing: the names are its model's, shared.
#[derive(Debug, Clone)]
pub struct FeatureRow {
    columns: FeatureColumns,
    values: [f64; FeatureRow::CAPACITY],
    len: usize,
}

impl FeatureRow {
    /// Most features a row carries: more than the widest table shows.
    pub const CAPACITY: usize = 12;

    /// `row`, values in the model's order, as `columns` show it.
    #[inline]
    pub fn new(row: &[f64], columns: &FeatureColumns) -> FeatureRow {
        let mut values = [0.0; FeatureRow::CAPACITY];
        let mut len = 0;
        for (value, &(i, _)) in values.iter_mut().zip(columns.iter()) {
            *value = row.get(i).copied().unwrap_or(f64::NAN);
            len += 1;
        }
        FeatureRow {
            columns: Arc::clone(columns),
            values,
            len,
        }
    }

    /// The salary demo's one feature, `years_experience`.
    pub fn years(years: f64) -> FeatureRow {
        static YEARS: std::sync::OnceLock<FeatureColumns> = std::sync::OnceLock::new();
        let columns = YEARS.get_or_init(|| Arc::from([(0, "years_experience".to_owned())]));
        FeatureRow::new(&[years], columns)
    }

    /// `(field, value)` pairs, most influential first: for tests and for rows read back by name.
    pub fn named(pairs: &[(&str, f64)]) -> FeatureRow {
        let columns: FeatureColumns = pairs
            .iter()
            .enumerate()
            .map(|(i, (field, _))| (i, (*field).to_owned()))
            .collect();
        let values: Vec<f64> = pairs.iter().map(|&(_, v)| v).collect();
        FeatureRow::new(&values, &columns)
    }

    /// The values, most influential first.
    pub fn values(&self) -> &[f64] {
        &self.values[..self.len]
    }

    /// The fields of [`Self::values`], in their order.
    pub fn fields(&self) -> impl Iterator<Item = &str> + '_ {
        self.columns[..self.len].iter().map(|(_, f)| f.as_str())
    }

    /// The most influential feature's value (the one plotted); NaN for a row of none.
    pub fn plotted(&self) -> f64 {
        self.values().first().copied().unwrap_or(f64::NAN)
    }

    /// The value of `field`, if the row has it.
    pub fn value_of(&self, field: &str) -> Option<f64> {
        self.fields()
            .position(|f| f == field)
            .map(|i| self.values[i])
    }

    /// Whether `other` was made by the same loaded model: it shares this row's columns. A model
    /// loaded again (a reload, a promotion, a roll-back) is another, even of the same features.
    pub fn same_model(&self, other: &FeatureRow) -> bool {
        Arc::ptr_eq(&self.columns, &other.columns)
    }

    /// Whether `other` shows the same features in the same order (a row of the same model).
    pub fn same_fields(&self, other: &FeatureRow) -> bool {
        Arc::ptr_eq(&self.columns, &other.columns) || self.fields().eq(other.fields())
    }
}

impl PartialEq for FeatureRow {
    fn eq(&self, other: &Self) -> bool {
        self.values() == other.values() && self.fields().eq(other.fields())
    }
}

/// What the scorer did since its last report: at most [`ScoreReport::RECENT`] of the latest events,
/// and counts of everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreReport {
    /// The latest scored events, oldest first.
    pub recent: Vec<ScoredEvent>,
    /// Records scored and published.
    pub scored: u64,
    /// Of those, how many were extrapolations.
    pub extrapolated: u64,
    /// Records sent to the dead-letter topic.
    pub bad: u64,
    /// The reason of the latest bad record.
    pub last_bad: Option<String>,
    /// Transactions `(committed, aborted)` so far, in exactly-once mode.
    pub transactions: Option<(u64, u64)>,
    /// Bad records by reason class ([`crate::formats::json::BadRecord::class`]).
    pub bad_by_class: crate::observe::metrics::BadByClass,
    /// Delivery failures of predictions or dead letters (they will be consumed again).
    pub delivery_errors: u64,
    /// Accuracy over the latest labeled events, if any were labeled.
    pub accuracy: Option<crate::observe::quality::Accuracy>,
    /// The drift alarm, once it has fired.
    pub drift: Option<DriftAlarm>,
    /// The serving model and the challenger on the same labeled events, while one challenges.
    pub comparison: Option<crate::observe::quality::Comparison>,
    /// End-to-end latency over the last [`crate::observe::stats::LATENCY_WINDOW_SECONDS`], from each event's
    /// time to the acknowledgement of its prediction.
    pub latency: Option<crate::observe::stats::LatencySummary>,
}

/// Counts since the start of a run. Every reader of [`ScoreReport`]s (the view, the headless
/// stats line) keeps them by [`Totals::absorb`], and the scorer its own for its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records scored.
    pub scored: u64,
    /// Records dead-lettered.
    pub bad: u64,
    /// Scored records beyond the training range.
    pub extrapolated: u64,
    /// Deliveries that failed (their records will be consumed again).
    pub delivery_errors: u64,
}

impl Totals {
    /// Adds one report's counts.
    pub fn absorb(&mut self, report: &ScoreReport) {
        self.scored += report.scored;
        self.bad += report.bad;
        self.extrapolated += report.extrapolated;
        self.delivery_errors += report.delivery_errors;
    }

    /// Records handled: scored or dead-lettered.
    pub fn handled(&self) -> u64 {
        self.scored + self.bad
    }
}

/// The drift detector fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftAlarm {
    /// Which way the labels moved against the predictions.
    pub shift: crate::observe::quality::Shift,
    /// Labeled events seen when it fired.
    pub after: u64,
    /// When it fired, ms since the epoch.
    pub at_ms: i64,
}

impl ScoreReport {
    /// How many recent events one report carries at most.
    pub const RECENT: usize = 64;

    /// Whether the report has anything to say.
    pub fn is_empty(&self) -> bool {
        self.scored == 0 && self.bad == 0 && self.delivery_errors == 0
    }
}

/// The producer's rate: events per second, or as fast as the broker takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// At most this many events per second.
    PerSecond(u32),
    /// No throttle.
    Unthrottled,
}

impl Rate {
    /// The dashboard's default rate.
    pub const DEFAULT: Rate = Rate::PerSecond(50);
    /// Above this, doubling the rate lifts the throttle.
    const MAX_THROTTLED: u32 = 100_000;

    /// Twice the rate; past [`Self::MAX_THROTTLED`] the throttle is lifted.
    pub fn doubled(self) -> Rate {
        match self {
            Rate::PerSecond(r) if r.saturating_mul(2) <= Self::MAX_THROTTLED => {
                Rate::PerSecond(r * 2)
            }
            _ => Rate::Unthrottled,
        }
    }

    /// Half the rate, never below one per second; unthrottled halves to the top throttled rate.
    pub fn halved(self) -> Rate {
        match self {
            Rate::PerSecond(r) => Rate::PerSecond((r / 2).max(1)),
            Rate::Unthrottled => Rate::PerSecond(102_400),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r}/s"),
            Rate::Unthrottled => f.write_str("max"),
        }
    }
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Unthrottled);
        }
        match s.parse::<u32>() {
            Ok(r) if r > 0 => Ok(Rate::PerSecond(r)),
            _ => Err(format!(
                "rate must be a whole number of events per second above 0, or \"max\"; got {s:?}"
            )),
        }
    }
}

/// What the synthetic producer is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerStatus {
    /// Whether it is sending.
    pub running: bool,
    /// Its set rate.
    pub rate: Rate,
    /// Events handed to the client so far.
    pub sent: u64,
    /// Events the broker acknowledged so far.
    pub acked: u64,
    /// Events the broker refused or that timed out.
    pub failed: u64,
}

/// Whether the broker answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BrokerHealth {
    /// Not known yet.
    #[default]
    Connecting,
    /// At least one broker is up.
    Up,
    /// No broker can be reached; the reason librdkafka gave.
    Unreachable(String),
    /// The address is wrong: its host does not resolve, or what answers there is not Kafka, or
    /// not in the security protocol asked for, or with a certificate the client cannot trust.
    /// Kept over later, vaguer reasons until the broker is up.
    WrongAddress(String),
    /// The broker answered and refused this client: its credentials, or what it may read or
    /// write. Trying again does not help; kept over [`BrokerHealth::Unreachable`] until up.
    Refused(String),
}

impl BrokerHealth {
    /// The state after `next` is reported: a wrong address stays said until the broker is up.
    pub fn then(self, next: BrokerHealth) -> BrokerHealth {
        match (self, next) {
            (
                wrong @ BrokerHealth::WrongAddress(_),
                BrokerHealth::Unreachable(_) | BrokerHealth::Refused(_),
            ) => wrong,
            (refused @ BrokerHealth::Refused(_), BrokerHealth::Unreachable(_)) => refused,
            (_, next) => next,
        }
    }

    /// Why the broker cannot be used, if it cannot.
    pub fn problem(&self) -> Option<&str> {
        match self {
            BrokerHealth::Unreachable(why)
            | BrokerHealth::WrongAddress(why)
            | BrokerHealth::Refused(why) => Some(why),
            BrokerHealth::Connecting | BrokerHealth::Up => None,
        }
    }
}

/// Everything the engine reports.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// Scoring progress.
    Scored(ScoreReport),
    /// Consumer lag of the assigned partitions.
    Lag(LagByPartition),
    /// The input partitions this consumer now owns (after a rebalance).
    Assigned(Vec<i32>),
    /// Producer state.
    Producer(ProducerStatus),
    /// Broker reachability.
    Broker(BrokerHealth),
    /// The scorer stopped on its own: an error it cannot recover from, or a panic.
    Failed(String),
    /// The synthetic producer stopped on its own, or could not deliver what it was asked to.
    ProducerFailed(String),
    /// The serving model changed, or a new one was refused.
    Model(ModelEvent),
    /// The topics this scorer needs that do not exist (empty once all do).
    Topics(Vec<String>),
    /// The output (or dead-letter topic) cannot take acknowledged writes now, and why
    /// (`output not writable: NOT_ENOUGH_REPLICAS (...)`); `None` once it can again.
    OutputBlocked(Option<String>),
    /// Brokers up of known and leader changes, when they change.
    Cluster(crate::observe::cluster::ClusterHealth),
    /// The watched group's members and what each owns.
    Members(Vec<crate::observe::watch::GroupMember>),
    /// The Schema Registry framed records are decoded through: where it is, what the latest
    /// framed record was, and whether it can be reached.
    Registry(RegistryStatus),
}

/// The Schema Registry as the scorer last found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryStatus {
    /// Its base URL, without credentials.
    pub url: String,
    /// The format and schema of the latest framed record (`avro, schema 3`), once one came.
    pub input: Option<String>,
    /// Why the registry cannot be used now, while it cannot: the records wait, and nothing is
    /// committed past them.
    pub unreachable: Option<String>,
}

/// A model's fitted line and the version that names it, and what the view plots it by: a model
/// that serves from a swap may read other features than the one before it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelLine {
    /// Its version id.
    pub version: String,
    /// Its fitted line as text.
    pub formula: String,
    /// Its slope.
    pub slope: f64,
    /// Its intercept.
    pub intercept: f64,
    /// The JSON field of the feature the chart plots (its most influential).
    pub plotted: String,
    /// The JSON field of its label.
    pub label: String,
    /// The largest value of the plotted feature in training: where the chart's x axis reaches.
    pub range_max: f64,
}

/// Why another model serves.
#[derive(Debug, Clone, PartialEq)]
pub enum SwapReason {
    /// The watched artifact file changed.
    Reloaded {
        /// The version it replaced.
        replaced: String,
    },
    /// The challenger was promoted: the challenger slot is empty from now on.
    Promoted {
        /// The version it replaced.
        replaced: String,
        /// Promoted by the policy, on this evidence; `None` when asked to.
        auto: Option<crate::observe::quality::Comparison>,
    },
    /// Serving went back to the version it had replaced.
    RolledBack {
        /// The version rolled back from.
        from: String,
    },
}

/// What happened to the models.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// Another model serves from now on.
    Swapped {
        /// The model that serves now.
        line: ModelLine,
        /// Why.
        reason: SwapReason,
    },
    /// The challenger slot changed: a model challenges from now on, or none does.
    Challenger(Option<ModelLine>),
    /// A new artifact or a step could not be used; the models stay as they were.
    Rejected(String),
    /// A step was taken, but a version or the lineage could not be written to the models
    /// directory.
    Unrecorded(String),
    /// A challenger was fitted on the latest labeled events and kept as a new version.
    Fitted {
        /// Where the new version was written.
        path: std::path::PathBuf,
        /// Labeled events fitted on.
        rows: usize,
        /// RMSE of the serving model on those events.
        rmse_before: f64,
        /// RMSE of the new model on them.
        rmse_after: f64,
        /// The new artifact's version.
        version: String,
    },
}

impl ModelEvent {
    /// The event as one line for a person.
    pub fn describe(&self) -> String {
        match self {
            ModelEvent::Swapped { line, reason } => {
                let v = &line.version;
                match reason {
                    SwapReason::Reloaded { replaced } => {
                        format!("serving {v} from the model file, replacing {replaced}")
                    }
                    SwapReason::Promoted {
                        replaced,
                        auto: None,
                    } => format!("promoted {v} to serving, replacing {replaced}"),
                    SwapReason::Promoted {
                        replaced,
                        auto: Some(c),
                    } => format!(
                        "auto-promoted {v}, replacing {replaced}: MAE {:.0} against {:.0} on {} \
                         labeled",
                        c.challenger.mae, c.serving.mae, c.n
                    ),
                    SwapReason::RolledBack { from } => format!("rolled back to {v} from {from}"),
                }
            }
            ModelEvent::Challenger(Some(line)) => {
                format!("challenger {}: {}", line.version, line.formula)
            }
            ModelEvent::Challenger(None) => "no challenger".to_owned(),
            ModelEvent::Rejected(why) => format!("kept the old model: {why}"),
            ModelEvent::Unrecorded(why) => format!("done, but not recorded: {why}"),
            ModelEvent::Fitted {
                path,
                rows,
                rmse_before,
                rmse_after,
                version,
            } => format!(
                "fitted challenger {version} on {rows} labeled: RMSE {rmse_before:.0} -> \
                 {rmse_after:.0}, kept in {}",
                path.display()
            ),
        }
    }
}

/// Where engine events go; implemented by the dashboard's channel and by headless output.
pub trait EventSink: Send + Sync + 'static {
    /// Delivers one event; must not block.
    fn emit(&self, event: EngineEvent);
}

impl<F: Fn(EngineEvent) + Send + Sync + 'static> EventSink for F {
    fn emit(&self, event: EngineEvent) {
        self(event)
    }
}

/// A shared sink.
pub type SharedSink = Arc<dyn EventSink>;

/// Reports a client error that means the broker cannot be reached, or refuses this client's
/// credentials or TLS; ignores others. A failed connection keeps librdkafka's text (it names the
/// address and the cause); "all brokers down" gets a plain sentence, since librdkafka's count
/// there is not reliable while it reconnects. A refusal keeps librdkafka's text too: the runtime
/// says it with the user and mechanism ([`crate::kafka::diagnose::refusal_line`]).
pub fn report_outage(sink: &dyn EventSink, error: &rdkafka::error::KafkaError, reason: &str) {
    use rdkafka::error::RDKafkaErrorCode::{
        AllBrokersDown, Authentication, BadMessage, BrokerTransportFailure, Resolve,
        SaslAuthenticationFailed, SSL,
    };
    let health = match error.rdkafka_error_code() {
        Some(AllBrokersDown) => BrokerHealth::Unreachable("all brokers are down".to_owned()),
        Some(Authentication | SaslAuthenticationFailed | SSL) => {
            BrokerHealth::Refused(reason.to_owned())
        }
        Some(BrokerTransportFailure | BadMessage | Resolve) => {
            let text = describe_outage(reason, "");
            if text == reason {
                BrokerHealth::Unreachable(text)
            } else {
                BrokerHealth::WrongAddress(text)
            }
        }
        _ => return,
    };
    sink.emit(EngineEvent::Broker(health));
}

/// librdkafka's text for a failed connection, said as a user needs it: a host that does not
/// resolve is named, and a port that answers but not in Kafka's protocol is asked about.
/// `bootstrap` names the address when the text does not.
pub fn describe_outage(reason: &str, bootstrap: &str) -> String {
    // librdkafka's texts start with the broker's name, `HOST:PORT/ID: `.
    let address = reason
        .split_once(": ")
        .and_then(|(name, _)| name.rsplit_once('/').map(|(addr, _)| addr))
        .filter(|addr| addr.contains(':'))
        .unwrap_or(bootstrap);
    if let Some(at) = reason.find("Failed to resolve '") {
        let rest = &reason[at + "Failed to resolve '".len()..];
        let name = rest.split('\'').next().unwrap_or(rest);
        return format!("cannot resolve host {name}: no such host is known");
    }
    // An HTTP reply read as a Kafka frame gives a size of "HTTP" (0x48545450); a server that
    // hangs up on Kafka's first request gives the ApiVersion disconnect.
    let not_kafka = [
        "Invalid response size",
        "while requesting ApiVersion",
        "APIVERSION_QUERY",
    ];
    if not_kafka.iter().any(|m| reason.contains(m)) {
        return format!(
            "{address} answered, but not in Kafka's protocol: is {address} a Kafka broker? \
             (librdkafka: {reason})"
        );
    }
    reason.to_owned()
}

/// Logs a failure reason once, the first time it is seen; the failures themselves are counted
/// where they happen. A reason that repeats for every record would otherwise be a line per record.
#[derive(Default)]
pub struct FailureReasons(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl FailureReasons {
    /// Notes `error`; logs it as a warning with `context` if it is new.
    pub fn note(&self, error: &rdkafka::error::KafkaError, context: impl FnOnce() -> String) {
        let text = error.to_string();
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.insert(text.clone()) {
            tracing::warn!(
                error = %text,
                "{} (further failures for this reason are counted, not logged)",
                context()
            );
        }
    }
}

/// A panic's message, for the line that says a thread stopped.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// What is left of `deadline` now: zero once it has passed. Each step of a stop takes this much
/// at most, so that the steps together never outlast the one deadline.
pub fn time_left(deadline: std::time::Instant) -> std::time::Duration {
    deadline.saturating_duration_since(std::time::Instant::now())
}

/// How much sooner than the edge's deadline the engine's own steps must end: the edge (`score`'s
/// main thread, the dashboard's quit) waits for the engine until the deadline itself, and the
/// engine's steps end [`STOP_MARGIN`] before it ([`steps_deadline`]), so that a stop whose last
/// step ends near the deadline is still seen to end cleanly (or with the engine's own line, such
/// as a stuck transactional call's) rather than taken for one cut short by the edge. A step that
/// runs past the engine's deadline anyway is what the edge's wait cuts short.
pub const STOP_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

/// The deadline for the engine's steps of a stop the edge waits for until `deadline`, the stop
/// beginning `now`: [`STOP_MARGIN`] sooner, but never before `now` (a bound shorter than the
/// margin leaves the steps no time, not less than none).
pub fn steps_deadline(deadline: std::time::Instant, now: std::time::Instant) -> std::time::Instant {
    deadline
        .checked_sub(STOP_MARGIN)
        .map_or(now, |steps| steps.max(now))
}

/// When a stopping engine must be done: one instant, fixed when the stop begins (`q`, Ctrl-C, a
/// signal, `--count` reached, an error) from `--shutdown-timeout`, and shared by every thread that
/// takes part in the stop. Each step (flushing, the final commit or abort, leaving the group) takes
/// what is left of it, so the whole stop is bounded by that one figure whatever the broker does.
/// A stop the edge began ends its steps [`STOP_MARGIN`] before the edge's own deadline
/// ([`steps_deadline`]).
#[derive(Debug, Clone, Default)]
pub struct StopDeadline(Arc<std::sync::OnceLock<std::time::Instant>>);

impl StopDeadline {
    /// Fixes the deadline at `at`, unless a stop fixed it already; returns the one fixed.
    pub fn fix(&self, at: std::time::Instant) -> std::time::Instant {
        *self.0.get_or_init(|| at)
    }

    /// The deadline, once a stop has fixed it.
    pub fn get(&self) -> Option<std::time::Instant> {
        self.0.get().copied()
    }

    /// How long a step may wait that would wait `limit` if nothing were stopping: `limit`, or
    /// what is left of the deadline if that is less.
    pub fn cap(&self, limit: std::time::Duration) -> std::time::Duration {
        self.get()
            .map_or(limit, |deadline| limit.min(time_left(deadline)))
    }

    /// Whether a stop has begun and its deadline has passed.
    pub fn passed(&self) -> bool {
        self.get()
            .is_some_and(|deadline| std::time::Instant::now() >= deadline)
    }
}

/// `n` and its noun, singular for one: `counted(1, "event was", "events were")` is `1 event was`,
/// `counted(3, ...)` is `3 events were`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Formats ms since the epoch as `HH:MM:SS.mmm` (UTC).
pub fn clock(ms: i64) -> String {
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds since the Unix epoch, now, to the nanosecond: for latencies.
pub fn now_ms_precise() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_counted_in_the_singular_and_every_other_number_in_the_plural() {
        assert_eq!(counted(1, "event was", "events were"), "1 event was");
        assert_eq!(counted(0, "event was", "events were"), "0 events were");
        assert_eq!(
            counted(14, "schema look-up", "schema look-ups"),
            "14 schema look-ups"
        );
    }

    #[test]
    fn clock_formats_utc_time_of_day() {
        assert_eq!(clock(0), "00:00:00.000");
        assert_eq!(clock(1_700_000_000_123), "22:13:20.123");
        assert_eq!(clock(86_399_999), "23:59:59.999");
    }

    #[test]
    fn a_step_of_a_stop_gets_what_is_left_of_the_one_deadline_and_none_once_it_passed() {
        use std::time::{Duration, Instant};
        let stop = StopDeadline::default();
        // Before a stop, a step waits its own limit.
        assert_eq!(stop.cap(Duration::from_secs(10)), Duration::from_secs(10));
        assert!(!stop.passed());
        let expired = Instant::now() - Duration::from_secs(1);
        assert_eq!(stop.fix(expired), expired);
        // Fixed once: a later stop (a second quit, the loop's own end) keeps the first deadline.
        assert_eq!(
            stop.clone().fix(Instant::now() + Duration::from_secs(60)),
            expired
        );
        assert_eq!(stop.get(), Some(expired));
        assert_eq!(time_left(expired), Duration::ZERO);
        assert_eq!(stop.cap(Duration::from_secs(10)), Duration::ZERO);
        assert!(stop.passed());
        let later = StopDeadline::default();
        later.fix(Instant::now() + Duration::from_secs(3600));
        assert_eq!(later.cap(Duration::from_secs(10)), Duration::from_secs(10));
        assert!(later.cap(Duration::from_secs(7200)) <= Duration::from_secs(3600));
        assert!(later.cap(Duration::from_secs(7200)) > Duration::from_secs(3590));
    }

    #[test]
    fn the_engine_s_steps_end_a_margin_before_the_edge_s_deadline_and_never_before_now() {
        use std::time::{Duration, Instant};
        let now = Instant::now();
        assert_eq!(
            steps_deadline(now + Duration::from_secs(5), now),
            now + Duration::from_secs(5) - STOP_MARGIN
        );
        assert_eq!(steps_deadline(now + STOP_MARGIN, now), now);
        // A bound shorter than the margin, or none: no time for the steps, not less than none.
        assert_eq!(steps_deadline(now + STOP_MARGIN / 2, now), now);
        assert_eq!(steps_deadline(now, now), now);
    }

    #[test]
    fn rate_steps() {
        assert_eq!(Rate::DEFAULT.doubled(), Rate::PerSecond(100));
        assert_eq!(Rate::PerSecond(51_200).doubled(), Rate::Unthrottled);
        assert_eq!(Rate::PerSecond(50_000).doubled(), Rate::PerSecond(100_000));
        assert_eq!(Rate::Unthrottled.doubled(), Rate::Unthrottled);
        assert_eq!(Rate::Unthrottled.halved(), Rate::PerSecond(102_400));
        assert_eq!(Rate::PerSecond(3).halved(), Rate::PerSecond(1));
        assert_eq!(Rate::PerSecond(1).halved(), Rate::PerSecond(1));
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Unthrottled));
        assert_eq!("250".parse::<Rate>(), Ok(Rate::PerSecond(250)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert_eq!(Rate::PerSecond(50).to_string(), "50/s");
    }
}
