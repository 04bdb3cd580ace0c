//! The two model slots, serving and challenger, and everything that moves a model between them:
//! fitting a challenger on labeled events, promoting it, rolling back, dropping it, a new
//! artifact file, and the optional policy that fits and promotes on its own. One scorer thread
//! owns it; every change is said as a [`ModelEvent`].
//!
//! Every version that serves or challenges is kept in the models directory as `VERSION.json`,
//! and each promotion and rollback is appended to `lineage.jsonl` there, so which version
//! replaced which, and when, can be read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::{DriftAlarm, ModelEvent, ModelLine, SwapReason};
use crate::formats::shape::EventShape;
use crate::model::{Artifact, Predictor};
use crate::observe::quality::{Accuracy, Comparison, Duel, Quality};
use crate::serving::scoring::event_shape;

/// Labeled events a challenger may be fitted on after a drift alarm, at the least: fewer than
/// this and `t` fits on the whole accuracy window instead.
pub const MIN_ROWS_SINCE_ALARM: usize = 30;
/// Labeled events since the drift alarm that `--auto-challenger` waits for before it fits.
pub const AUTO_FIT_ROWS: usize = 100;
/// The file in the models directory that records promotions and rollbacks.
pub const LINEAGE_FILE: &str = "lineage.jsonl";

/// When the scorer promotes a challenger on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Promotion {
    /// Labeled events both models must have scored.
    pub after: usize,
    /// How far below the serving model's MAE the challenger's must be, as a fraction.
    pub margin: f64,
}

/// What the scorer does with models on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Policy {
    /// Fit a challenger once [`AUTO_FIT_ROWS`] labeled events have arrived since a drift alarm.
    pub auto_challenger: bool,
    /// Promote a challenger that beats the serving model.
    pub auto_promote: Option<Promotion>,
}

/// What a user (or a test) asks of the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelCommand {
    /// Fit a challenger on the latest labeled events (`t`).
    FitChallenger,
    /// Make the challenger the serving model (`P`).
    Promote,
    /// Serve the version the serving model replaced (`r`).
    RollBack,
    /// Drop the challenger (`x`).
    DropChallenger,
}

/// A model in a slot: its artifact, the form that predicts, and the names its events carry.
#[derive(Debug, Clone)]
struct Slot {
    artifact: Artifact,
    predictor: Predictor,
    shape: EventShape,
}

impl Slot {
    /// `artifact` in a slot; its names were checked when it was loaded, else the demo's are
    /// used (a fitted challenger has its serving model's).
    fn new(artifact: Artifact) -> Self {
        Slot {
            predictor: Predictor::from(&artifact),
            shape: event_shape(&artifact).unwrap_or_else(|_| EventShape::salary().clone()),
            artifact,
        }
    }

    fn line(&self) -> ModelLine {
        model_line(&self.predictor)
    }
}

/// What the view shows of `predictor`: its version, its formula, and its line when it is one
/// (NaN otherwise: the chart draws no line).
pub fn model_line(predictor: &Predictor) -> ModelLine {
    let (slope, intercept) = predictor.slope_intercept().unwrap_or((f64::NAN, f64::NAN));
    ModelLine {
        version: predictor.version.clone(),
        formula: predictor.formula(),
        slope,
        intercept,
        plotted: predictor
            .fields
            .get(predictor.plotted)
            .cloned()
            .unwrap_or_default(),
        label: predictor.label.clone(),
        range_max: predictor
            .ranges
            .get(predictor.plotted)
            .map_or(f64::NAN, |r| r.max),
    }
}

/// The serving model, the challenger, the versions serving replaced, and how each is doing.
pub struct Slots {
    serving: Slot,
    challenger: Option<Slot>,
    /// Versions that served before, the latest last: what `r` goes back to.
    replaced: Vec<Artifact>,
    /// The serving model's accuracy and drift since it started serving.
    quality: Quality,
    /// Both models on the labeled events since the challenger arrived.
    duel: Duel,
    /// The policy fitted a challenger for the current alarm already.
    auto_fitted: bool,
    policy: Policy,
    models_dir: PathBuf,
    /// The input topic, for lineage.
    topic: String,
    /// Times the serving model or the challenger changed.
    changes: u64,
}

impl Slots {
    /// `serving` serves and `challenger`, if any, challenges; versions are kept in `models_dir`.
    pub fn new(
        serving: Artifact,
        challenger: Option<Artifact>,
        policy: Policy,
        models_dir: PathBuf,
        topic: String,
    ) -> Self {
        Slots {
            quality: Quality::new(serving.rmse),
            serving: Slot::new(serving),
            challenger: challenger.map(Slot::new),
            replaced: Vec::new(),
            duel: Duel::new(),
            auto_fitted: false,
            policy,
            models_dir,
            topic,
            changes: 0,
        }
    }

    /// The serving model.
    #[inline]
    pub fn serving(&self) -> &Predictor {
        &self.serving.predictor
    }

    /// The names the serving model's events carry.
    #[inline]
    pub fn shape(&self) -> &EventShape {
        &self.serving.shape
    }

    /// The challenger, if one is loaded.
    #[inline]
    pub fn challenger(&self) -> Option<&Predictor> {
        self.challenger.as_ref().map(|c| &c.predictor)
    }

    /// How many times the serving model or the challenger has changed (served, promoted, rolled
    /// back, fitted, dropped): records scored ahead by the models of one count are scored
    /// again, one at a time, once it moves on.
    #[inline]
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The challenger's line, for the view at start.
    pub fn challenger_line(&self) -> Option<ModelLine> {
        self.challenger.as_ref().map(Slot::line)
    }

    /// Takes one labeled event: its `features` with its `label`, the serving model's prediction
    /// and the challenger's, when one is loaded.
    pub fn observe(
        &mut self,
        features: &[f64],
        label: f64,
        serving: f64,
        challenger: Option<f64>,
        now_ms: i64,
    ) {
        self.quality.observe(features, label, serving, now_ms);
        if let Some(c) = challenger {
            self.duel.observe(label, serving, c);
        }
    }

    /// The serving model's accuracy over its window.
    pub fn accuracy(&self) -> Option<Accuracy> {
        self.quality.accuracy()
    }

    /// The serving model's drift alarm, once it fired.
    pub fn alarm(&self) -> Option<DriftAlarm> {
        self.quality.alarm()
    }

    /// Both models on the same labeled events, while a challenger is loaded.
    pub fn comparison(&self) -> Option<Comparison> {
        self.challenger.as_ref()?;
        self.duel.comparison()
    }

    /// Carries out `command`; returns what changed.
    pub fn command(&mut self, command: ModelCommand, now_ms: i64) -> Vec<ModelEvent> {
        match command {
            ModelCommand::FitChallenger => self.fit(self.rows_for_fit(), now_ms),
            ModelCommand::Promote => self.promote(now_ms, false),
            ModelCommand::RollBack => self.roll_back(now_ms),
            ModelCommand::DropChallenger => match self.challenger.take() {
                Some(_) => {
                    self.changes += 1;
                    self.duel.clear();
                    vec![ModelEvent::Challenger(None)]
                }
                None => vec![ModelEvent::Rejected("no challenger to drop".into())],
            },
        }
    }

    /// A new artifact in the watched file: it serves from now on, and `r` goes back to the one it
    /// replaced.
    pub fn reload(&mut self, artifact: Artifact, now_ms: i64) -> Vec<ModelEvent> {
        // Names a record cannot carry (a prediction's own, twice the same) are refused here as
        // at start; the serving model goes on.
        if let Err(e) = event_shape(&artifact) {
            return vec![ModelEvent::Rejected(format!(
                "model {} not loaded: {e}",
                artifact.version
            ))];
        }
        let mut unrecorded = Vec::new();
        for artifact in [&self.serving.artifact, &artifact] {
            if let Err(e) = self.keep(artifact) {
                unrecorded.push(e);
            }
        }
        let replaced = self.serve(artifact);
        if let Err(e) = self.record("reloaded", &replaced, now_ms) {
            unrecorded.push(e);
        }
        let mut events = vec![ModelEvent::Swapped {
            line: self.serving.line(),
            reason: SwapReason::Reloaded { replaced },
        }];
        events.extend(unrecorded.into_iter().map(ModelEvent::Unrecorded));
        events
    }

    /// What the policy does now, if anything: called at every report.
    pub fn apply_policy(&mut self, now_ms: i64) -> Vec<ModelEvent> {
        let mut events = Vec::new();
        if self.policy.auto_challenger
            && self.challenger.is_none()
            && !self.auto_fitted
            && self.quality.since_alarm() >= AUTO_FIT_ROWS
        {
            self.auto_fitted = true;
            events.extend(self.fit(self.quality.since_alarm(), now_ms));
        }
        if let (Some(rule), Some(c)) = (self.policy.auto_promote, self.comparison()) {
            if c.challenger_wins(rule.after, rule.margin) {
                events.extend(self.promote(now_ms, true));
            }
        }
        events
    }

    /// How many of the latest labeled events `t` fits on: those since the drift alarm, once
    /// there are enough of them; else every one in the window.
    fn rows_for_fit(&self) -> usize {
        match self.quality.since_alarm() {
            n if n >= MIN_ROWS_SINCE_ALARM => n,
            _ => Quality::WINDOW,
        }
    }

    /// Fits a challenger on the latest `rows` labeled events and keeps it in the models
    /// directory.
    fn fit(&mut self, rows: usize, now_ms: i64) -> Vec<ModelEvent> {
        let (features, labels) = self.quality.labeled(rows);
        let since_alarm = if self.quality.since_alarm() >= labels.len() && !labels.is_empty() {
            " since the drift alarm"
        } else {
            ""
        };
        let trained_on = format!(
            "{} labeled events of {}{since_alarm}",
            labels.len(),
            self.topic
        );
        let fitted = crate::model::fit_challenger(
            &features,
            &labels,
            (&self.serving.artifact, &self.serving.predictor),
            trained_on,
            now_ms,
        );
        let (artifact, rmse_before) = match fitted {
            Ok(fitted) => fitted,
            Err(e) => {
                return vec![ModelEvent::Rejected(format!(
                    "fitting a challenger failed: {e}"
                ))]
            }
        };
        let path = match self.keep(&artifact) {
            Ok(path) => path,
            Err(e) => return vec![ModelEvent::Rejected(e)],
        };
        let fitted = ModelEvent::Fitted {
            rows: artifact.training_rows,
            rmse_before,
            rmse_after: artifact.rmse,
            version: artifact.version.clone(),
            path,
        };
        self.challenger = Some(Slot::new(artifact));
        self.changes += 1;
        self.duel.clear();
        vec![fitted, ModelEvent::Challenger(self.challenger_line())]
    }

    fn promote(&mut self, now_ms: i64, auto: bool) -> Vec<ModelEvent> {
        let Some(challenger) = self.challenger.take() else {
            return vec![ModelEvent::Rejected(
                "no challenger to promote (t fits one)".into(),
            )];
        };
        let evidence = self.duel.comparison();
        let mut events = Vec::new();
        // Both ends of the step are kept, so that the lineage names only versions on disk.
        for artifact in [&self.serving.artifact, &challenger.artifact] {
            if let Err(e) = self.keep(artifact) {
                events.push(ModelEvent::Unrecorded(e));
            }
        }
        let replaced = self.serve(challenger.artifact);
        if let Err(e) = self.record("promoted", &replaced, now_ms) {
            events.push(ModelEvent::Unrecorded(e));
        }
        events.insert(
            0,
            ModelEvent::Swapped {
                line: self.serving.line(),
                reason: SwapReason::Promoted {
                    replaced,
                    auto: if auto { evidence } else { None },
                },
            },
        );
        events
    }

    fn roll_back(&mut self, now_ms: i64) -> Vec<ModelEvent> {
        let Some(previous) = self.replaced.pop() else {
            return vec![ModelEvent::Rejected(format!(
                "nothing to roll back to: {} has served since the start",
                self.serving.predictor.version
            ))];
        };
        let from = self.serving.predictor.version.clone();
        let kept = self.keep(&previous);
        self.quality = Quality::new(previous.rmse);
        self.serving = Slot::new(previous);
        self.changes += 1;
        self.duel.clear();
        self.auto_fitted = false;
        let mut events = vec![ModelEvent::Swapped {
            line: self.serving.line(),
            reason: SwapReason::RolledBack { from: from.clone() },
        }];
        if let Err(e) = kept.and_then(|_| self.record("rolled_back", &from, now_ms)) {
            events.push(ModelEvent::Unrecorded(e));
        }
        events
    }

    /// Makes `artifact` the serving model; its accuracy window and drift detector start over, as
    /// does the comparison. Returns the version it replaced.
    fn serve(&mut self, artifact: Artifact) -> String {
        self.quality = Quality::new(artifact.rmse);
        let old = std::mem::replace(&mut self.serving, Slot::new(artifact));
        self.changes += 1;
        self.duel.clear();
        self.auto_fitted = false;
        let version = old.predictor.version.clone();
        self.replaced.push(old.artifact);
        version
    }

    /// Writes `artifact` to the models directory as `VERSION.json` unless it is there already.
    fn keep(&self, artifact: &Artifact) -> Result<PathBuf, String> {
        let path = self.models_dir.join(format!("{}.json", artifact.version));
        if path.exists() {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.models_dir).map_err(|e| {
            format!(
                "cannot create the models directory {}: {e}",
                self.models_dir.display()
            )
        })?;
        artifact.save(&path).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// Appends one step to the lineage file: `event` made the serving version replace `replaced`.
    fn record(&self, event: &str, replaced: &str, now_ms: i64) -> Result<(), String> {
        let line = serde_json::json!({
            "at_ms": now_ms,
            "event": event,
            "serving": self.serving.predictor.version,
            "replaced": replaced,
        });
        append_line(&self.models_dir.join(LINEAGE_FILE), &line.to_string())
            .map_err(|e| format!("cannot record the {event} step in the lineage file: {e}"))
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Artifact {
        serde_json::from_str(include_str!("../../assets/model.json")).unwrap()
    }

    fn slots(dir: &Path, policy: Policy) -> Slots {
        Slots::new(
            reference(),
            None,
            policy,
            dir.to_owned(),
            "experience-events".into(),
        )
    }

    /// Labeled events on the line `1000 + 2000 × years`, years 0 to 9.5.
    fn feed(slots: &mut Slots, n: usize) {
        feed_from(slots, 0, n);
    }

    /// The `from`th to the `from + n`th of those events.
    fn feed_from(slots: &mut Slots, from: usize, n: usize) {
        for i in from..from + n {
            let years = (i % 20) as f64 / 2.0;
            let label = 1000.0 + 2000.0 * years;
            let serving = slots.serving().predict(&[years]);
            let challenger = slots.challenger().map(|c| c.predict(&[years]));
            slots.observe(&[years], label, serving, challenger, 0);
        }
    }

    fn swapped(events: &[ModelEvent]) -> Option<(&str, &SwapReason)> {
        events.iter().find_map(|e| match e {
            ModelEvent::Swapped { line, reason } => Some((line.version.as_str(), reason)),
            _ => None,
        })
    }

    #[test]
    fn a_reloaded_model_whose_field_a_record_cannot_carry_is_refused_and_serving_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = slots(dir.path(), Policy::default());
        let mut bad = reference();
        bad.features[0].field = "model".into();
        bad.version = "badnames".into();
        let events = s.reload(bad, 1);
        let [ModelEvent::Rejected(reason)] = &events[..] else {
            panic!("{events:?}");
        };
        assert!(
            reason.starts_with("model badnames not loaded: "),
            "{reason}"
        );
        assert_eq!(s.serving().version, reference().version);
        assert_eq!(
            s.serving().predict(&[2.0]),
            Predictor::from(&reference()).predict(&[2.0])
        );
    }

    #[test]
    fn fit_promote_roll_back_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = slots(dir.path(), Policy::default());
        assert!(matches!(
            s.command(ModelCommand::Promote, 1)[..],
            [ModelEvent::Rejected(_)]
        ));
        assert!(matches!(
            s.command(ModelCommand::RollBack, 1)[..],
            [ModelEvent::Rejected(_)]
        ));
        assert_eq!(s.changes(), 0, "a refused command changes no model");
        // Without a drift alarm, `t` fits on every labeled event of the window.
        for i in 0..60 {
            let years = f64::from(i % 20) / 2.0;
            let label = s.serving().predict(&[years]);
            s.observe(&[years], label, label, None, 0);
        }
        let events = s.command(ModelCommand::FitChallenger, 500);
        assert!(
            matches!(&events[0], ModelEvent::Fitted { rows: 60, .. }),
            "{events:?}"
        );
        assert_eq!(s.changes(), 1);
        assert_eq!(
            s.command(ModelCommand::DropChallenger, 600),
            [ModelEvent::Challenger(None)]
        );
        assert_eq!(s.changes(), 2);

        // After one, on the events since it.
        feed(&mut s, 100);
        let since = s.quality.since_alarm();
        assert!((MIN_ROWS_SINCE_ALARM..100).contains(&since), "{since}");
        let events = s.command(ModelCommand::FitChallenger, 1_000);
        let version = s.challenger().unwrap().version.clone();
        assert!(
            matches!(&events[0], ModelEvent::Fitted { rows, version: v, .. } if *v == version && *rows == since),
            "{events:?}"
        );
        let fitted = Artifact::load(&dir.path().join(format!("{version}.json"))).unwrap();
        let trained_on =
            format!("{since} labeled events of experience-events since the drift alarm");
        assert_eq!(
            fitted.lineage.as_ref().map(|l| (
                l.trained_on.as_str(),
                l.trained_at_ms,
                l.challenged.as_str()
            )),
            Some((trained_on.as_str(), 1_000, "6c25318e"))
        );
        assert!((fitted.slope() - 2000.0).abs() < 1e-6);
        // The serving model still serves; both are compared on the same events from now on.
        assert_eq!(s.serving().version, "6c25318e");
        feed(&mut s, 40);
        let c = s.comparison().unwrap();
        assert_eq!((c.n, c.challenger_closer), (40, 40));
        assert!(c.challenger.mae < 1e-6 && c.serving.mae > 10_000.0);

        let events = s.command(ModelCommand::Promote, 2_000);
        assert_eq!(
            swapped(&events),
            Some((
                version.as_str(),
                &SwapReason::Promoted {
                    replaced: "6c25318e".into(),
                    auto: None
                }
            ))
        );
        assert_eq!(s.serving().version, version);
        assert!(s.challenger().is_none() && s.comparison().is_none());
        assert_eq!(s.changes(), 4, "fitted, dropped, fitted, promoted");
        assert_eq!(
            s.accuracy(),
            None,
            "the new serving model's window starts empty"
        );
        assert!(dir.path().join("6c25318e.json").exists());

        let events = s.command(ModelCommand::RollBack, 3_000);
        assert_eq!(
            swapped(&events),
            Some((
                "6c25318e",
                &SwapReason::RolledBack {
                    from: version.clone()
                }
            ))
        );
        assert_eq!(s.serving().version, "6c25318e");
        let lineage = std::fs::read_to_string(dir.path().join(LINEAGE_FILE)).unwrap();
        assert_eq!(
            lineage,
            format!(
                "{{\"at_ms\":2000,\"event\":\"promoted\",\"replaced\":\"6c25318e\",\"serving\":\"{version}\"}}\n\
                 {{\"at_ms\":3000,\"event\":\"rolled_back\",\"replaced\":\"{version}\",\"serving\":\"6c25318e\"}}\n"
            )
        );

        // A new artifact in the watched file serves; both it and the one it replaced are kept,
        // and the step is in the lineage; `r` goes back.
        let mut reloaded = reference();
        reloaded.version = "feed0001".into();
        reloaded.linear_mut().unwrap().coefficients[0] = 1.0;
        let events = s.reload(reloaded, 3_500);
        assert_eq!(
            swapped(&events),
            Some((
                "feed0001",
                &SwapReason::Reloaded {
                    replaced: "6c25318e".into()
                }
            ))
        );
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(dir.path().join("feed0001.json").exists());
        assert!(std::fs::read_to_string(dir.path().join(LINEAGE_FILE))
            .unwrap()
            .ends_with(
                "{\"at_ms\":3500,\"event\":\"reloaded\",\"replaced\":\"6c25318e\",\"serving\":\"feed0001\"}\n"
            ));
        s.command(ModelCommand::RollBack, 3_600);
        assert_eq!(s.serving().version, "6c25318e");
        assert_eq!(s.changes(), 7, "rolled back, reloaded, rolled back");

        feed(&mut s, 100);
        s.command(ModelCommand::FitChallenger, 4_000);
        assert!(s.challenger().is_some());
        assert_eq!(
            s.command(ModelCommand::DropChallenger, 5_000),
            [ModelEvent::Challenger(None)]
        );
        assert!(s.challenger().is_none());
    }

    #[test]
    fn the_policy_fits_after_a_drift_alarm_and_promotes_a_winner() {
        let dir = tempfile::tempdir().unwrap();
        let rule = Promotion {
            after: 200,
            margin: 0.05,
        };
        let mut s = slots(
            dir.path(),
            Policy {
                auto_challenger: true,
                auto_promote: Some(rule),
            },
        );
        // Labels on the serving line, then far from it: the alarm fires within a few events.
        for i in 0..200 {
            let years = f64::from(i % 20) / 2.0;
            let label = s.serving().predict(&[years]);
            s.observe(&[years], label, label, None, 0);
        }
        assert!(s.apply_policy(0).is_empty() && s.alarm().is_none());
        let mut fed = 0;
        while s.quality.since_alarm() < AUTO_FIT_ROWS {
            assert!(s.apply_policy(0).is_empty());
            feed_from(&mut s, fed, 1);
            fed += 1;
        }
        assert!(s.alarm().is_some() && fed < AUTO_FIT_ROWS + 20, "{fed}");
        let events = s.apply_policy(0);
        assert!(matches!(&events[0], ModelEvent::Fitted { rows, .. } if *rows == AUTO_FIT_ROWS));
        let challenger = s.challenger().unwrap().version.clone();
        feed(&mut s, rule.after - 1);
        assert!(
            s.apply_policy(0).is_empty(),
            "199 compared events are too few"
        );
        feed(&mut s, 1);
        let events = s.apply_policy(0);
        let Some((serving, SwapReason::Promoted { replaced, auto })) = swapped(&events) else {
            panic!("{events:?}");
        };
        assert_eq!(
            (serving, replaced.as_str()),
            (challenger.as_str(), "6c25318e")
        );
        assert_eq!(auto.map(|c| c.n), Some(200));
        assert!(s.apply_policy(0).is_empty());
    }
}
