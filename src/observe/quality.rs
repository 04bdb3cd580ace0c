//! How good the model is right now: rolling accuracy over the latest labeled events, and a
//! Page-Hinkley drift detector on their residuals. Pure; fed by the scorer.

use std::collections::VecDeque;

use crate::engine::DriftAlarm;

/// Accuracy over the latest labeled events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Labeled events in the window.
    pub n: usize,
    /// Mean absolute error.
    pub mae: f64,
    /// Root of the mean squared error.
    pub rmse: f64,
    /// Coefficient of determination (NaN while every label in the window is the same).
    pub r2: f64,
}

/// `(label, prediction)` pairs of the latest `capacity` labeled events.
#[derive(Debug, Clone)]
pub struct RollingAccuracy {
    window: VecDeque<(f64, f64)>,
    capacity: usize,
}

impl RollingAccuracy {
    /// A window of `capacity` labeled events.
    pub fn new(capacity: usize) -> Self {
        RollingAccuracy {
            window: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Adds one labeled event.
    pub fn push(&mut self, label: f64, predicted: f64) {
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back((label, predicted));
    }

    /// Forgets everything (the model changed).
    pub fn clear(&mut self) {
        self.window.clear();
    }

    /// MAE, RMSE and R² over the window; `None` while it is empty.
    pub fn accuracy(&self) -> Option<Accuracy> {
        Accuracy::of(self.window.iter().copied())
    }
}

impl Accuracy {
    /// MAE, RMSE and R² of `(label, prediction)` pairs, summed in the order given (two passes:
    /// the labels' mean, then the errors); `None` for no pairs. `backtest` feeds it a whole
    /// window of history.
    pub fn of(pairs: impl Iterator<Item = (f64, f64)> + Clone) -> Option<Accuracy> {
        let n = pairs.clone().count();
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let mean = pairs.clone().map(|(y, _)| y).sum::<f64>() / nf;
        let (abs, sq, tot) = pairs.fold((0.0, 0.0, 0.0), |(a, s, t), (y, p)| {
            let e = y - p;
            (a + e.abs(), s + e * e, t + (y - mean) * (y - mean))
        });
        Some(Accuracy {
            n,
            mae: abs / nf,
            rmse: (sq / nf).sqrt(),
            r2: if tot > 0.0 { 1.0 - sq / tot } else { f64::NAN },
        })
    }
}

/// The serving model and the challenger over the same labeled events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Labeled events both models scored.
    pub n: usize,
    /// The serving model's accuracy on them.
    pub serving: Accuracy,
    /// The challenger's accuracy on them.
    pub challenger: Accuracy,
    /// The mean absolute difference between the two models' predictions.
    pub mean_abs_difference: f64,
    /// Events where the challenger's prediction was strictly closer to the label (ties count for
    /// neither).
    pub challenger_closer: usize,
}

impl Comparison {
    /// Whether the challenger's MAE is below the serving model's by more than `margin` (a
    /// fraction of the serving MAE) over at least `after` labeled events.
    pub fn challenger_wins(&self, after: usize, margin: f64) -> bool {
        self.n >= after && self.challenger.mae < self.serving.mae * (1.0 - margin)
    }
}

/// `(label, serving prediction, challenger prediction)` of the latest labeled events both models
/// scored.
#[derive(Debug, Clone)]
pub struct Duel {
    window: VecDeque<(f64, f64, f64)>,
}

impl Duel {
    /// An empty comparison over the latest [`Quality::WINDOW`] labeled events.
    pub fn new() -> Self {
        Duel {
            window: VecDeque::with_capacity(Quality::WINDOW),
        }
    }

    /// Adds one labeled event with both predictions.
    pub fn observe(&mut self, label: f64, serving: f64, challenger: f64) {
        if self.window.len() == Quality::WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((label, serving, challenger));
    }

    /// Starts over (either model changed).
    pub fn clear(&mut self) {
        self.window.clear();
    }

    /// Both models over the window; `None` while it is empty.
    pub fn comparison(&self) -> Option<Comparison> {
        let w = &self.window;
        let serving = Accuracy::of(w.iter().map(|&(y, s, _)| (y, s)))?;
        let challenger = Accuracy::of(w.iter().map(|&(y, _, c)| (y, c)))?;
        let difference: f64 = w.iter().map(|&(_, s, c)| (s - c).abs()).sum();
        Some(Comparison {
            n: w.len(),
            serving,
            challenger,
            mean_abs_difference: difference / w.len() as f64,
            challenger_closer: w
                .iter()
                .filter(|&&(y, s, c)| (y - c).abs() < (y - s).abs())
                .count(),
        })
    }
}

impl Default for Duel {
    fn default() -> Self {
        Duel::new()
    }
}

/// Which way the residuals moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// Labels above the predictions: the model under-predicts.
    Up,
    /// Labels below the predictions: the model over-predicts.
    Down,
}

/// A two-sided Page-Hinkley test on residuals scaled by the training RMSE.
///
/// With `x` the scaled residual and `x̄` its running mean, it sums `x - x̄ - δ` (and, for a fall,
/// `x̄ - x - δ`) and alarms when a sum rises more than `λ` above its lowest point. It is armed from
/// the first label: `x̄` starts as the training residuals' mean, 0, weighted as
/// [`PageHinkley::PRIOR`] labels, so a stream drifted from its start is measured against the
/// model as trained rather than against itself.
#[derive(Debug, Clone)]
pub struct PageHinkley {
    scale: f64,
    delta: f64,
    lambda: f64,
    n: u64,
    mean: f64,
    up: f64,
    up_min: f64,
    down: f64,
    down_min: f64,
    alarm: Option<(Shift, u64)>,
}

impl PageHinkley {
    /// Magnitude of change (in RMSEs) tolerated without alarm.
    pub const DELTA: f64 = 0.5;
    /// Alarm threshold.
    pub const LAMBDA: f64 = 25.0;
    /// How many labels the training residuals' mean counts for in the running mean. Enough that
    /// a shift of 2 RMSEs from the first label sums past `λ` before the mean follows it; few
    /// enough that a model biased by less than its RMSE never does (at most about 10).
    pub const PRIOR: f64 = 50.0;

    /// A detector for residuals of typical size `rmse`.
    pub fn new(rmse: f64) -> Self {
        PageHinkley {
            scale: if rmse > 0.0 { rmse } else { 1.0 },
            delta: Self::DELTA,
            lambda: Self::LAMBDA,
            n: 0,
            mean: 0.0,
            up: 0.0,
            up_min: 0.0,
            down: 0.0,
            down_min: 0.0,
            alarm: None,
        }
    }

    /// Feeds one residual (label minus prediction); returns the alarm once it has fired, with
    /// the direction and the number of residuals seen when it fired.
    pub fn update(&mut self, residual: f64) -> Option<(Shift, u64)> {
        if self.alarm.is_some() || !residual.is_finite() {
            return self.alarm;
        }
        let x = residual / self.scale;
        self.n += 1;
        self.mean += (x - self.mean) / (self.n as f64 + Self::PRIOR);
        self.up += x - self.mean - self.delta;
        self.up_min = self.up_min.min(self.up);
        self.down += self.mean - x - self.delta;
        self.down_min = self.down_min.min(self.down);
        if self.up - self.up_min > self.lambda {
            self.alarm = Some((Shift::Up, self.n));
        } else if self.down - self.down_min > self.lambda {
            self.alarm = Some((Shift::Down, self.n));
        }
        self.alarm
    }

    /// Starts over (the model changed).
    pub fn reset(&mut self) {
        *self = PageHinkley::new(self.scale);
    }
}

/// One event's feature values, inline for models of up to 4 features.
pub type Row = smallvec::SmallVec<[f64; 4]>;

/// The serving model's accuracy and drift, from every labeled event, and the latest labeled
/// events themselves for a retrain. One scorer thread owns it.
#[derive(Debug, Clone)]
pub struct Quality {
    accuracy: RollingAccuracy,
    detector: PageHinkley,
    alarm: Option<DriftAlarm>,
    /// `(features, label)` of the latest labeled events.
    labeled: VecDeque<(Row, f64)>,
    /// Labeled events since the alarm fired, the one that fired it included.
    since_alarm: usize,
}

impl Quality {
    /// Labeled events the rolling accuracy covers.
    pub const WINDOW: usize = 500;

    /// A fresh start for a model whose training RMSE is `rmse` (the drift detector's scale).
    pub fn new(rmse: f64) -> Self {
        Quality {
            accuracy: RollingAccuracy::new(Self::WINDOW),
            detector: PageHinkley::new(rmse),
            alarm: None,
            labeled: VecDeque::with_capacity(Self::WINDOW),
            since_alarm: 0,
        }
    }

    /// Takes one labeled event: its `features` with its `label`, which the model `predicted`;
    /// `now_ms` dates an alarm this raises.
    pub fn observe(&mut self, features: &[f64], label: f64, predicted: f64, now_ms: i64) {
        self.accuracy.push(label, predicted);
        let oldest = match self.labeled.len() {
            Self::WINDOW => self.labeled.pop_front(),
            _ => None,
        };
        // A row of more than four features is on the heap: the oldest one's storage takes the
        // new values rather than one allocated for each event.
        let row = match oldest {
            Some((mut row, _)) if row.spilled() => {
                row.clear();
                row.extend_from_slice(features);
                row
            }
            _ => Row::from_slice(features),
        };
        self.labeled.push_back((row, label));
        if self.alarm.is_none() {
            if let Some((shift, after)) = self.detector.update(label - predicted) {
                self.alarm = Some(DriftAlarm {
                    shift,
                    after,
                    at_ms: now_ms,
                });
            }
        }
        if self.alarm.is_some() {
            self.since_alarm += 1;
        }
    }

    /// Labeled events since the drift alarm fired (the one that fired it included), at most
    /// [`Self::WINDOW`]; 0 before it fires.
    pub fn since_alarm(&self) -> usize {
        self.since_alarm.min(Self::WINDOW)
    }

    /// Accuracy over the window, once it holds a labeled event.
    pub fn accuracy(&self) -> Option<Accuracy> {
        self.accuracy.accuracy()
    }

    /// The drift alarm, once it fired.
    pub fn alarm(&self) -> Option<DriftAlarm> {
        self.alarm
    }

    /// The feature values (flattened, a row after another) and the labels of the latest `n`
    /// labeled events (all of them if fewer), oldest first.
    pub fn labeled(&self, n: usize) -> (Vec<f64>, Vec<f64>) {
        let skip = self.labeled.len().saturating_sub(n);
        let latest = self.labeled.iter().skip(skip);
        (
            latest
                .clone()
                .flat_map(|(x, _)| x.iter().copied())
                .collect(),
            latest.map(|(_, y)| *y).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    const SLOPE: f64 = 9449.962321455077;
    const INTERCEPT: f64 = 25792.20019866869;
    const RMSE: f64 = 5592.043608760662;

    /// Residuals of the reference model on synthetic labels, salaries times `drift`.
    fn residuals(seed: u64, n: usize, drift: f64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let noise = Normal::new(0.0, RMSE).unwrap();
        (0..n)
            .map(|_| {
                let years: f64 = rng.random_range(1.1..=10.5);
                let predicted = INTERCEPT + SLOPE * years;
                predicted * drift + noise.sample(&mut rng) - predicted
            })
            .collect()
    }

    #[test]
    fn stays_quiet_without_drift() {
        for seed in 0..20 {
            let mut ph = PageHinkley::new(RMSE);
            for r in residuals(seed, 20_000, 1.0) {
                assert_eq!(ph.update(r), None, "seed {seed}");
            }
        }
    }

    #[test]
    fn fires_soon_after_salaries_rise_twenty_percent() {
        for seed in 0..20 {
            let mut ph = PageHinkley::new(RMSE);
            for r in residuals(seed, 1_000, 1.0) {
                assert_eq!(ph.update(r), None);
            }
            let fired = residuals(seed + 100, 200, 1.2)
                .into_iter()
                .enumerate()
                .find_map(|(i, r)| ph.update(r).map(|alarm| (i + 1, alarm)));
            let (after, (shift, seen)) = fired.expect("the alarm fires");
            assert_eq!(shift, Shift::Up);
            assert!(
                after <= 40,
                "seed {seed}: fired after {after} drifted events"
            );
            assert_eq!(seen, 1_000 + after as u64);
        }
    }

    #[test]
    fn fires_down_when_salaries_fall() {
        let mut ph = PageHinkley::new(RMSE);
        residuals(1, 500, 1.0).into_iter().for_each(|r| {
            ph.update(r);
        });
        let alarm = residuals(2, 200, 0.8)
            .into_iter()
            .find_map(|r| ph.update(r));
        assert_eq!(alarm.map(|a| a.0), Some(Shift::Down));
        ph.reset();
        assert_eq!(ph.update(0.0), None);
    }

    /// A stream whose labels are salaries 20% higher from its first label, with noise of one
    /// training RMSE alternating in sign: deterministic, so the alarm's count is exact.
    fn drifted_from_the_start(n: usize, drift: f64) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| {
            let years = 1.1 + (i % 10) as f64;
            let predicted = INTERCEPT + SLOPE * years;
            let noise = if i % 2 == 0 { RMSE } else { -RMSE };
            predicted * drift + noise - predicted
        })
    }

    #[test]
    fn a_drift_from_the_first_label_is_flagged() {
        let mut ph = PageHinkley::new(RMSE);
        let alarm = drifted_from_the_start(1_000, 1.2).find_map(|r| ph.update(r));
        assert_eq!(alarm, Some((Shift::Up, 15)));
        let mut ph = PageHinkley::new(RMSE);
        let alarm = drifted_from_the_start(1_000, 0.8).find_map(|r| ph.update(r));
        assert_eq!(alarm, Some((Shift::Down, 16)));
        let mut ph = PageHinkley::new(RMSE);
        assert_eq!(
            drifted_from_the_start(20_000, 1.0).find_map(|r| ph.update(r)),
            None,
            "the same stream undrifted"
        );
        // Biased by 0.8 RMSE from the start, with the rest of its error as noise: within what
        // training allowed, so no alarm.
        for seed in 0..20 {
            let mut ph = PageHinkley::new(RMSE);
            let biased = residuals(seed, 20_000, 1.0)
                .into_iter()
                .map(|r| 0.8 * RMSE + 0.6 * r);
            assert_eq!(biased.into_iter().find_map(|r| ph.update(r)), None);
        }
    }

    #[test]
    fn a_drift_from_the_first_label_is_flagged_by_quality() {
        let mut q = Quality::new(RMSE);
        for (i, r) in drifted_from_the_start(15, 1.2).enumerate() {
            assert_eq!(q.alarm(), None, "label {i}");
            q.observe(&[5.0], 70_000.0 + r, 70_000.0, 42);
        }
        assert_eq!(
            q.alarm(),
            Some(DriftAlarm {
                shift: Shift::Up,
                after: 15,
                at_ms: 42
            })
        );
    }

    #[test]
    fn rolling_accuracy_over_a_known_window() {
        let mut acc = RollingAccuracy::new(3);
        assert_eq!(acc.accuracy(), None);
        acc.push(100.0, 90.0);
        acc.push(200.0, 210.0);
        acc.push(300.0, 300.0);
        let a = acc.accuracy().unwrap();
        assert_eq!(a.n, 3);
        assert_eq!(a.mae, 20.0 / 3.0);
        assert_eq!(a.rmse, (200.0f64 / 3.0).sqrt());
        assert_eq!(a.r2, 1.0 - 200.0 / 20_000.0);
        acc.push(400.0, 500.0);
        let a = acc.accuracy().unwrap();
        assert_eq!((a.n, a.mae), (3, 110.0 / 3.0));
        acc.clear();
        assert_eq!(acc.accuracy(), None);
    }

    #[test]
    fn a_duel_compares_both_models_on_the_same_labels() {
        let mut duel = Duel::new();
        assert_eq!(duel.comparison(), None);
        // (label, serving, challenger): the challenger is closer twice, tied once, farther once.
        for (y, s, c) in [
            (100.0, 90.0, 99.0),
            (200.0, 230.0, 205.0),
            (300.0, 310.0, 290.0),
            (400.0, 400.0, 410.0),
        ] {
            duel.observe(y, s, c);
        }
        let c = duel.comparison().unwrap();
        assert_eq!(c.n, 4);
        assert_eq!(c.serving.mae, 50.0 / 4.0);
        assert_eq!(c.challenger.mae, 26.0 / 4.0);
        assert_eq!(c.serving.rmse, (1100.0f64 / 4.0).sqrt());
        assert_eq!(c.challenger.rmse, (226.0f64 / 4.0).sqrt());
        assert_eq!(c.challenger.r2, 1.0 - 226.0 / 50_000.0);
        assert_eq!(c.mean_abs_difference, (9.0 + 25.0 + 20.0 + 10.0) / 4.0);
        assert_eq!(c.challenger_closer, 2);
        assert!(c.challenger_wins(4, 0.4));
        assert!(!c.challenger_wins(5, 0.4), "too few events");
        assert!(!c.challenger_wins(4, 0.5), "not by the margin");
        duel.clear();
        assert_eq!(duel.comparison(), None);
    }

    #[test]
    fn labeled_events_since_the_alarm_are_counted() {
        let mut q = Quality::new(RMSE);
        for r in residuals(3, 300, 1.0) {
            q.observe(&[5.0], 70_000.0 + r, 70_000.0, 0);
        }
        assert_eq!((q.alarm(), q.since_alarm()), (None, 0));
        let mut n = 0;
        while q.alarm().is_none() {
            q.observe(&[5.0], 70_000.0 + 4.0 * RMSE, 70_000.0, 0);
            n += 1;
        }
        assert_eq!(q.since_alarm(), 1);
        for _ in 0..9 {
            q.observe(&[6.0], 1.0, 2.0, 0);
        }
        assert_eq!(q.since_alarm(), 10);
        assert_eq!(q.labeled(2), (vec![6.0, 6.0], vec![1.0, 1.0]));
        assert_eq!(
            q.labeled(10_000).1.len(),
            (300 + n + 9).min(Quality::WINDOW)
        );
    }

    #[test]
    fn the_window_keeps_the_latest_rows_of_many_features() {
        let mut q = Quality::new(RMSE);
        let row = |i: usize| -> Vec<f64> { (0..10).map(|j| (i * 10 + j) as f64).collect() };
        let n = Quality::WINDOW + 7;
        for i in 0..n {
            q.observe(&row(i), i as f64, 0.0, 0);
        }
        let (features, labels) = q.labeled(n);
        let first = n - Quality::WINDOW;
        assert_eq!(labels, (first..n).map(|i| i as f64).collect::<Vec<_>>());
        assert_eq!(features, (first..n).flat_map(row).collect::<Vec<_>>());
        // A model of fewer features after: the row that takes a ten-feature row's storage is two.
        q.observe(&[-1.0, -2.0], 1.0, 0.0, 0);
        let mut latest = row(n - 1);
        latest.extend([-1.0, -2.0]);
        assert_eq!(q.labeled(2).0, latest);
    }
}
