//! The dashboard drawn into a test backend: exact screens in a known state, and no panic at any
//! small size.

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use salary_stream::app::{App, Message, Setup};
use salary_stream::engine::{
    BrokerHealth, DriftAlarm, EngineEvent, FeatureRow, LagByPartition, ProducerStatus, Rate,
    ScoreReport, ScoredEvent,
};
use salary_stream::observe::quality::{Accuracy, Shift};
use salary_stream::observe::stats::LatencySummary;

const SLOPE: f64 = 9449.962321455077;
const INTERCEPT: f64 = 25792.20019866869;

fn known_app() -> App {
    let mut app = App::new(
        Setup {
            broker: "embedded 127.0.0.1:39093".into(),
            input_topic: "experience-events".into(),
            output_topic: "salary-predictions".into(),
            dlq_topic: "experience-events.dlq".into(),
            group: "salary-stream".into(),
            model_version: "6c25318e".into(),
            formula: "salary = 25792.20 + 9449.96 × years".into(),
            line: salary_stream::app::ServingLine {
                slope: SLOPE,
                intercept: INTERCEPT,
                range_max: 10.5,
            },
            ..Setup::default()
        },
        0,
    );
    let base_ms = 1_764_000_000_000;
    let years = [1.1, 5.3, 10.5, 12.0, 3.2, 7.9, 2.0, 9.6];
    for second in 0..5u64 {
        let recent = years
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                let n = second as i64 * 8 + i as i64;
                ScoredEvent {
                    partition: (n % 3) as i32,
                    offset: n / 3,
                    event_ms: Some(base_ms + n * 125),
                    features: FeatureRow::years(y),
                    predicted: INTERCEPT + SLOPE * y,
                    salary: (i % 2 == 0).then_some(INTERCEPT + SLOPE * y + 1000.0),
                    challenger: None,
                    latency_ms: Some(1.5 + i as f64),
                    extrapolated: y > 10.5,
                }
            })
            .collect();
        app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
            recent,
            scored: 8,
            extrapolated: 1,
            bad: u64::from(second == 2),
            last_bad: (second == 2).then(|| "wrong type for years_experience: string".into()),
            delivery_errors: 0,
            ..Default::default()
        })));
        app.update(Message::Tick((second + 1) * 1000));
    }
    app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
        accuracy: Some(Accuracy {
            n: 500,
            mae: 4480.2,
            rmse: 5601.7,
            r2: 0.9571,
        }),
        drift: Some(DriftAlarm {
            shift: Shift::Up,
            after: 1034,
            at_ms: 1_764_000_321_000,
        }),
        ..Default::default()
    })));
    for (total, behind) in [(3, 400), (12, 2_300), (7, 1_250)] {
        app.update(Message::Engine(EngineEvent::Lag(LagByPartition {
            partitions: vec![(0, 2), (1, total - 7), (2, 5)],
            behind_ms: vec![(0, behind), (1, 0), (2, behind / 2)],
        })));
    }
    for (p99, max) in [(3.2, 4.0), (4.75, 9.5), (2.6, 3.1)] {
        app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
            latency: Some(LatencySummary {
                count: 400,
                p50_ms: 1.55,
                p99_ms: p99,
                p999_ms: max - 0.2,
                max_ms: max,
            }),
            ..Default::default()
        })));
    }
    app.update(Message::Engine(EngineEvent::Broker(BrokerHealth::Up)));
    app.update(Message::Engine(EngineEvent::Assigned(vec![0, 1, 2])));
    app.update(Message::Engine(EngineEvent::Producer(ProducerStatus {
        running: true,
        rate: Rate::PerSecond(50),
        sent: 40,
        acked: 40,
        failed: 0,
    })));
    app
}

/// `app` with a challenger loaded, four events scored by both models, and the two compared on
/// 240 labeled events.
fn challenged(mut app: App) -> App {
    use salary_stream::engine::{ModelEvent, ModelLine};
    use salary_stream::observe::quality::Comparison;
    app.update(Message::Engine(EngineEvent::Model(ModelEvent::Challenger(
        Some(ModelLine {
            version: "9f00aa11".into(),
            formula: "salary = 30950.40 + 11339.95 × years".into(),
            slope: 11339.95,
            intercept: 30950.4,
            plotted: "years_experience".into(),
            label: "salary".into(),
            range_max: 10.5,
        }),
    ))));
    let recent = [4.0, 6.5, 8.2, 11.0]
        .iter()
        .enumerate()
        .map(|(i, &y)| ScoredEvent {
            partition: 1,
            offset: 14 + i as i64,
            event_ms: Some(1_764_000_005_000 + i as i64 * 125),
            features: FeatureRow::years(y),
            predicted: INTERCEPT + SLOPE * y,
            salary: (i % 2 == 1).then_some(30950.4 + 11339.95 * y + 500.0),
            challenger: Some(30950.4 + 11339.95 * y),
            latency_ms: Some(2.0),
            extrapolated: y > 10.5,
        })
        .collect();
    app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
        recent,
        scored: 4,
        ..Default::default()
    })));
    app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
        comparison: Some(Comparison {
            n: 240,
            serving: Accuracy {
                n: 240,
                mae: 15020.4,
                rmse: 18502.6,
                r2: 0.4123,
            },
            challenger: Accuracy {
                n: 240,
                mae: 4390.5,
                rmse: 5480.2,
                r2: 0.9511,
            },
            mean_abs_difference: 12003.3,
            challenger_closer: 231,
        }),
        ..Default::default()
    })));
    app
}

fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| salary_stream::ui::render(f, app))
        .unwrap();
    terminal
}

fn lines(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

#[test]
fn dashboard_at_100x30() {
    insta::assert_snapshot!(draw(&known_app(), 100, 30).backend());
}

#[test]
fn dashboard_at_80x24() {
    insta::assert_snapshot!(draw(&known_app(), 80, 24).backend());
}

#[test]
fn dashboard_at_120x40() {
    insta::assert_snapshot!(draw(&known_app(), 120, 40).backend());
}

#[test]
fn dashboard_at_200x50() {
    insta::assert_snapshot!(draw(&known_app(), 200, 50).backend());
}

#[test]
fn dashboard_at_the_minimum_size() {
    let (w, h) = (salary_stream::ui::MIN_WIDTH, salary_stream::ui::MIN_HEIGHT);
    insta::assert_snapshot!(draw(&known_app(), w, h).backend());
}

#[test]
fn below_the_minimum_size_the_screen_says_so() {
    let screen = lines(&draw(&known_app(), 49, 15));
    assert_eq!(
        screen[7].trim(),
        "terminal too small: need 50x15, have 49x15"
    );
    assert_eq!(screen.iter().filter(|l| !l.trim().is_empty()).count(), 1);
    let screen = lines(&draw(&known_app(), 30, 4));
    assert!(
        screen.iter().any(|l| l.trim() == "too small: need 50x15"),
        "{screen:?}"
    );
    let screen = lines(&draw(&known_app(), 12, 3));
    assert!(
        screen.iter().any(|l| l.trim() == "need 50x15"),
        "{screen:?}"
    );
}

#[test]
fn dashboard_shows_exact_values() {
    let screen = lines(&draw(&known_app(), 100, 30));
    assert_eq!(
        screen[1].trim_end(),
        "broker embedded 127.0.0.1:39093 (up)  group salary-stream"
    );
    assert_eq!(
        screen[3].trim_end(),
        "model 6c25318e  salary = 25792.20 + 9449.96 × years"
    );
    assert_eq!(screen[4].trim_end(), "producer ON 50/s  sent 40 acked 40");
    assert!(
        screen[6].contains("│now 8  avg 8.0  total 40"),
        "{}",
        screen[6]
    );
    // Newest first: the last event of the last report, 9.6 years.
    assert!(
        screen[7].contains("│16:00:04.875     0/13   9.6 116511.84 8.5 "),
        "{}",
        screen[7]
    );
    assert!(
        screen.iter().any(|l| l.contains("12.0* 139191.75")),
        "extrapolation marked"
    );
    let has = |text: &str| screen.iter().any(|l| l.contains(text));
    assert!(has("┌ DRIFT ↑ at 16:05:21 after 1034 labeled "));
    assert!(has("│RMSE 5602  MAE 4480  R² 0.957  n 500"));
    assert!(has("│p50 1.55  p99 2.60  p99.9 2.90  max 3.10"));
    assert!(has("│p99 range 2.60..4.75"));
    assert!(has("│total 7 records, 1.2 s behind  range 3..12"));
    assert!(has("│p0 2 (1.2 s)  p1 0 (0.0 s)  p2 5 (0.6 s)"));
    assert!(has("┌ salary by years over the fitted line"));
    assert!(has("│150k│"), "y axis up to 150k");
    assert!(has("12 y│"), "x axis to 12 years");
    assert!(has("│bad 1  beyond range 5  delivery errors 0"));
}

/// Every run of digits with the punctuation numbers are written with (`16:00:04.875`, `0/13`,
/// `12.0*`, `+1000`, `2.60..4.75`).
fn numbers(screen: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for line in screen {
        let mut token = String::new();
        for c in line.chars().chain([' ']) {
            if c.is_ascii_digit() || ".:/+-*".contains(c) {
                token.push(c);
            } else {
                if token.chars().any(|c| c.is_ascii_digit()) {
                    out.push(std::mem::take(&mut token));
                }
                token.clear();
            }
        }
    }
    out
}

/// The apps the property is tried on: the demo, the demo challenged, a ten-feature model.
fn app_of(which: usize) -> App {
    match which {
        0 => known_app(),
        1 => challenged(known_app()),
        _ => diabetes_app(),
    }
}

/// Whole values of [`app_of`] `which`: those of its full-size screen, with the help overlay and
/// without.
fn whole_values(which: usize) -> &'static std::collections::BTreeSet<String> {
    static WHOLE: std::sync::OnceLock<Vec<std::collections::BTreeSet<String>>> =
        std::sync::OnceLock::new();
    &WHOLE.get_or_init(|| {
        (0..3)
            .map(|which| {
                let mut app = app_of(which);
                let mut all = std::collections::BTreeSet::new();
                all.extend(numbers(&lines(&draw(&app, 250, 80))));
                app.update(Message::ToggleHelp);
                all.extend(numbers(&lines(&draw(&app, 250, 80))));
                all
            })
            .collect()
    })[which]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// At every size, each number on screen is one the full-size screen shows whole: a value cut
    /// by the edge of its column or panel (`476.92` of `165476.92`) is not.
    #[test]
    fn every_number_is_whole_or_absent(
        width in 0u16..=250,
        height in 0u16..=80,
        help: bool,
        which in 0..3usize,
    ) {
        let mut app = app_of(which);
        if help {
            app.update(Message::ToggleHelp);
        }
        let full = whole_values(which);
        let screen = lines(&draw(&app, width, height));
        let small = width < salary_stream::ui::MIN_WIDTH || height < salary_stream::ui::MIN_HEIGHT;
        for n in numbers(&screen) {
            let said = [
                format!("{}x{}", salary_stream::ui::MIN_WIDTH, salary_stream::ui::MIN_HEIGHT),
                format!("{width}x{height}"),
            ];
            if small {
                proptest::prop_assert!(
                    said.iter().any(|s| s.split('x').any(|p| p == n)),
                    "{n} at {width}x{height}:\n{}", screen.join("\n")
                );
            } else {
                proptest::prop_assert!(
                    full.contains(&n),
                    "{n} at {width}x{height} is not a whole value:\n{}", screen.join("\n")
                );
            }
        }
    }
}

#[test]
fn the_help_overlay_fits_its_text_wherever_it_is_shown() {
    let mut app = known_app();
    app.update(Message::ToggleHelp);
    let (w, h) = salary_stream::ui::help_size(&app);
    for (width, height) in [(w, h.max(15)), (120, 40), (80, 24), (w - 1, 30)] {
        let screen = lines(&draw(&app, width.max(50), height));
        let shown = screen.iter().any(|l| l.contains("┌ keys "));
        if width.max(50) >= w {
            assert!(shown, "{width}x{height}");
            for (k, what) in salary_stream::ui::help(500) {
                assert!(
                    screen
                        .iter()
                        .any(|l| l.contains(&format!("{k:>6}  {what}"))),
                    "{k} {what} at {width}x{height}:\n{}",
                    screen.join("\n")
                );
            }
        }
    }
}

#[test]
fn help_overlay_and_frozen_marker() {
    let mut app = known_app();
    app.update(Message::ToggleHelp);
    app.update(Message::ToggleFreeze);
    insta::assert_snapshot!(draw(&app, 100, 30).backend());
}

#[test]
fn unreachable_broker_is_shown_in_the_header() {
    let mut app = known_app();
    app.update(Message::Engine(EngineEvent::Broker(
        BrokerHealth::Unreachable("1/1 brokers are down".into()),
    )));
    let screen = lines(&draw(&app, 100, 30));
    assert_eq!(
        screen[1].trim_end(),
        "broker embedded 127.0.0.1:39093 (UNREACHABLE: 1/1 brokers are down)  group salary-stream"
    );
}

#[test]
fn a_challenger_is_named_compared_and_drawn() {
    let app = challenged(known_app());
    let terminal = draw(&app, 120, 40);
    let screen = lines(&terminal);
    let find = |what: &str| {
        screen
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in\n{}", screen.join("\n")))
            .clone()
    };
    assert!(find("model 6c25318e").contains("model 6c25318e  challenger 9f00aa11  salary = "));
    assert!(find("vs challenger").contains("┌ DRIFT ↑ 6c25318e vs challenger 9f00aa11 "));
    assert!(find("serving  ").contains("serving    RMSE 18503  MAE 15020  R² 0.412"));
    let row = find("challenger RMSE");
    assert!(
        row.contains("challenger RMSE 5480   MAE 4390   R² 0.951"),
        "{row}"
    );
    assert!(find("closer ").contains("closer 231 of 240 (96%)  mean |difference| 12003"));
    assert!(find("salary by years").contains("serving line (yellow), challenger (magenta)"));
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn an_undefined_r2_is_absent_not_nan() {
    use salary_stream::observe::quality::Comparison;
    let mut app = challenged(known_app());
    let one = Accuracy {
        n: 1,
        mae: 1200.0,
        rmse: 1200.0,
        r2: f64::NAN,
    };
    app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
        comparison: Some(Comparison {
            n: 1,
            serving: one,
            challenger: Accuracy {
                mae: 300.0,
                rmse: 300.0,
                ..one
            },
            mean_abs_difference: 900.0,
            challenger_closer: 1,
        }),
        ..Default::default()
    })));
    let screen = lines(&draw(&app, 120, 40));
    let row = |name: &str| {
        screen
            .iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name:?} in\n{}", screen.join("\n")))
            .clone()
    };
    assert!(row("serving    RMSE").contains("serving    RMSE 1200   MAE 1200 "));
    assert!(row("challenger RMSE").contains("challenger RMSE 300    MAE 300 "));
    assert!(
        !screen
            .iter()
            .any(|l| l.contains("NaN") || l.contains("R² ")),
        "{}",
        screen.join("\n")
    );
}

#[test]
fn a_cluster_losing_a_broker_and_an_output_short_of_replicas_are_in_the_header() {
    let mut app = known_app();
    app.update(Message::Engine(EngineEvent::Broker(BrokerHealth::Up)));
    app.update(Message::Engine(EngineEvent::Cluster(
        salary_stream::observe::cluster::ClusterHealth {
            up: 2,
            known: 3,
            leader_changes: 1,
        },
    )));
    app.update(Message::Engine(EngineEvent::OutputBlocked(Some(
        "output not writable: NOT_ENOUGH_REPLICAS (salary-predictions partition 0: 1 in-sync \
         replica of min 2)"
            .into(),
    ))));
    let screen = lines(&draw(&app, 200, 50));
    assert_eq!(
        screen[1].trim_end(),
        "broker embedded 127.0.0.1:39093 (up)  brokers 2/3, 1 leader change  group salary-stream"
    );
    assert!(
        screen[2].contains(
            "salary-predictions  output not writable: NOT_ENOUGH_REPLICAS (salary-predictions \
             partition 0: 1 in-sync replica of min 2)  dead letters → experience-events.dlq"
        ),
        "{}",
        screen[2]
    );
    // Narrower, the reason's detail goes first, then the state itself stays short.
    let screen = lines(&draw(&app, 100, 30));
    assert_eq!(
        screen[2].trim_end(),
        "topics experience-events → salary-predictions  output not writable: NOT_ENOUGH_REPLICAS"
    );
    app.update(Message::Engine(EngineEvent::OutputBlocked(None)));
    let screen = lines(&draw(&app, 200, 50));
    assert!(!screen[2].contains("not writable"), "{}", screen[2]);
}

/// The diabetes model's features, most influential first (|coefficient| times standard deviation
/// of `train --data data/diabetes.csv --target progression`).
const DIABETES_FIELDS: [&str; 10] = [
    "s1", "s5", "bmi", "s2", "bp", "sex", "s4", "s3", "s6", "age",
];

/// A dashboard serving the ten-feature diabetes model, with the data's first three rows scored
/// (in [`DIABETES_FIELDS`] order; the third's s1 beyond its training range, 97 to 301).
fn diabetes_app() -> App {
    let mut app = App::new(
        Setup {
            broker: "embedded 127.0.0.1:39093".into(),
            model_version: "e2f71670".into(),
            formula: "progression ~ linear, 10 features".into(),
            line: salary_stream::app::ServingLine {
                slope: f64::NAN,
                intercept: f64::NAN,
                range_max: 301.0,
            },
            axes: salary_stream::app::Axes {
                x: "s1".into(),
                y: "progression".into(),
            },
            ..Setup::default()
        },
        0,
    );
    let rows: [([f64; 10], f64); 3] = [
        (
            [157.0, 4.8598, 32.1, 93.2, 101.0, 2.0, 4.0, 38.0, 87.0, 59.0],
            151.0,
        ),
        (
            [183.0, 3.8918, 21.6, 103.2, 87.0, 1.0, 3.0, 70.0, 69.0, 48.0],
            75.0,
        ),
        (
            [310.0, 4.6728, 30.5, 93.6, 93.0, 2.0, 4.0, 41.0, 85.0, 72.0],
            141.0,
        ),
    ];
    let recent = rows
        .iter()
        .enumerate()
        .map(|(i, (values, label))| {
            let named: Vec<(&str, f64)> = DIABETES_FIELDS.into_iter().zip(*values).collect();
            ScoredEvent {
                partition: 0,
                offset: i as i64,
                event_ms: Some(1_764_000_000_000 + i as i64),
                features: FeatureRow::named(&named),
                predicted: label - 10.0,
                salary: Some(*label),
                challenger: None,
                latency_ms: Some(1.0),
                extrapolated: values[0] > 301.0,
            }
        })
        .collect();
    app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
        recent,
        scored: 3,
        extrapolated: 1,
        ..Default::default()
    })));
    app
}

/// A model of ten features (the diabetes data): the header names it, the table its most
/// influential features by their fields, as many as fit, and the chart plots the label against
/// the most influential with no line.
#[test]
fn a_ten_feature_model_is_named_plotted_and_tabled_by_its_own_fields() {
    let app = diabetes_app();
    let screen = lines(&draw(&app, 120, 40));
    let has = |text: &str| screen.iter().any(|l| l.contains(text));
    assert_eq!(
        screen[3].trim_end(),
        "model e2f71670  progression ~ linear, 10 features"
    );
    assert!(
        has("┌ progression by s1: labels where known, else predictions "),
        "{screen:#?}"
    );
    assert!(has("│200│"), "y axis up to 200: {screen:#?}");
    assert!(has("310│"), "x axis to 310: {screen:#?}");
    let table: Vec<String> = screen[6..10]
        .iter()
        .map(|l| l.chars().take(67).collect())
        .collect();
    assert_eq!(
        table,
        [
            "│time (UTC)   p/offset     s1   s5 predicted  ms progression resid│",
            "│16:00:00.002      0/2 310.0* 4.67    131.00 1.0      141.00   +10│",
            "│16:00:00.001      0/1  183.0 3.89     65.00 1.0       75.00   +10│",
            "│16:00:00.000      0/0  157.0 4.86    141.00 1.0      151.00   +10│",
        ],
        "{screen:#?}"
    );
    assert!(has("predicted progression"), "{screen:#?}");
    assert!(!has("salary by") && !has("predicted salary") && !has(" years"));
    for size in [(80, 24), (100, 30), (200, 50)] {
        let screen = lines(&draw(&app, size.0, size.1));
        assert!(!screen
            .iter()
            .any(|l| l.contains("NaN") || l.contains("inf")));
    }
}

/// A hot reload from the salary demo to the ten-feature model: the chart is titled, scaled and
/// plotted by the new model's most influential feature and label, and the table's columns are
/// named by its fields; the demo's events before the reload keep their rows, with no value
/// under the new features. The names change with the new model's first event, not before:
/// until it comes (no traffic yet, or the view frozen) the demo's names stay over the demo's
/// values, and only the header tells of the reload.
#[test]
fn a_reload_to_a_model_of_other_features_renames_the_chart_and_the_table() {
    use salary_stream::engine::{ModelEvent, ModelLine, SwapReason};
    let reload = Message::Engine(EngineEvent::Model(ModelEvent::Swapped {
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
            replaced: "6c25318e".into(),
        },
    }));
    let diabetes = diabetes_app();
    let first_events = Message::Engine(EngineEvent::Scored(ScoreReport {
        recent: diabetes.view().recent.iter().cloned().collect(),
        scored: 3,
        ..Default::default()
    }));
    let header = "model e2f71670  progression ~ linear, 10 features  (serving e2f71670 from the model file, replacing 6c25318e)";
    // The table and the chart: below the header, left of the side panels.
    let left = |screen: &[String]| -> Vec<String> {
        screen[5..39]
            .iter()
            .map(|l| l.chars().take(67).collect())
            .collect()
    };
    let demo = left(&lines(&draw(&known_app(), 120, 40)));
    let demo_named = |screen: &[String], what: &str| {
        assert_eq!(
            left(screen),
            demo,
            "{what}: the table and the chart as before the reload"
        );
        assert_eq!(
            [&demo[1], &demo[2], &demo[21], &demo[32]],
            [
                "│time (UTC)   p/offset years predicted  ms    salary resid        │",
                "│16:00:04.875     0/13   9.6 116511.84 8.5                        │",
                "┌ salary by years over the fitted line ───────────────────────────┐",
                "│    0                                                        12 y│",
            ]
        );
    };

    // The reload, no event of the new model yet.
    let mut app = known_app();
    app.update(reload.clone());
    let screen = lines(&draw(&app, 120, 40));
    assert_eq!(screen[3].trim_end(), header);
    demo_named(&screen, "no event of the new model");

    // Frozen before the reload: its events and names, whatever came since.
    let mut frozen = known_app();
    frozen.update(Message::ToggleFreeze);
    frozen.update(reload);
    frozen.update(first_events.clone());
    let screen = lines(&draw(&frozen, 120, 40));
    assert_eq!(screen[3].trim_end(), header);
    demo_named(&screen, "frozen");
    frozen.update(Message::ToggleFreeze);

    app.update(first_events);
    for app in [app, frozen] {
        let screen = lines(&draw(&app, 120, 40));
        assert_eq!(screen[3].trim_end(), header);
        let table: Vec<String> = screen[6..11]
            .iter()
            .map(|l| l.chars().take(67).collect())
            .collect();
        assert_eq!(
            table,
            [
                "│time (UTC)   p/offset     s1   s5 predicted  ms progression resid│",
                "│16:00:00.002      0/2 310.0* 4.67    131.00 1.0      141.00   +10│",
                "│16:00:00.001      0/1  183.0 3.89     65.00 1.0       75.00   +10│",
                "│16:00:00.000      0/0  157.0 4.86    141.00 1.0      151.00   +10│",
                "│16:00:04.875     0/13             116511.84 8.5                  │",
            ],
            "{screen:#?}"
        );
        let chart_top = screen
            .iter()
            .position(|l| l.contains("┌ progression by s1"))
            .unwrap_or_else(|| panic!("the chart titled by the new model: {screen:#?}"));
        assert_eq!(
            screen[chart_top].chars().take(67).collect::<String>(),
            "┌ progression by s1: labels where known, else predictions ────────┐"
        );
        assert!(
            screen[chart_top + 1].starts_with("│200│"),
            "the y axis of the new labels alone, not the demo's salaries: {screen:#?}"
        );
        assert!(
            screen.iter().any(|l| l.contains("310│")),
            "the x axis to 310: {screen:#?}"
        );
        // The table and the chart: below the header (the topics' names), left of the side
        // panels (whose last reason is the demo's).
        let demo_names: Vec<String> = screen
            .iter()
            .skip(5)
            .map(|l| l.chars().take(66).collect::<String>())
            .filter(|l| l.contains("salary") || l.contains("years"))
            .collect();
        assert_eq!(demo_names, Vec::<String>::new());
    }
}

/// At 200x50 a ten-feature model's table fills its width with features, most influential first;
/// narrower, the least influential go first, and the first feature and the prediction stay.
#[test]
fn a_wide_table_shows_as_many_features_as_fit() {
    let app = diabetes_app();
    let table = |width: u16, height: u16| -> Vec<String> {
        let screen = lines(&draw(&app, width, height));
        screen[6..9]
            .iter()
            .map(|l| l.split('│').nth(1).unwrap_or("").trim_end().to_owned())
            .collect()
    };
    assert_eq!(
        table(200, 50),
        [
            "time (UTC)   p/offset     s1   s5  bmi    s2    bp sex  s4   s3   s6  age predicted  ms progression resid",
            "16:00:00.002      0/2 310.0* 4.67 30.5  93.6  93.0 2.0 4.0 41.0 85.0 72.0    131.00 1.0      141.00   +10",
            "16:00:00.001      0/1  183.0 3.89 21.6 103.2  87.0 1.0 3.0 70.0 69.0 48.0     65.00 1.0       75.00   +10",
        ]
    );
    assert_eq!(
        table(100, 30),
        [
            "time (UTC)   p/offset     s1   s5 predicted  ms resid",
            "16:00:00.002      0/2 310.0* 4.67    131.00 1.0   +10",
            "16:00:00.001      0/1  183.0 3.89     65.00 1.0   +10",
        ]
    );
    assert_eq!(
        table(80, 24),
        [
            "time (UTC)   p/offset     s1 predicted  ms",
            "16:00:00.002      0/2 310.0*    131.00 1.0",
            "16:00:00.001      0/1  183.0     65.00 1.0",
        ]
    );
}

/// The characters of `line` from column `from` on.
fn from_column(line: &str, from: usize) -> String {
    line.chars().skip(from).collect()
}

/// At 80x24 the right column has room for three panels: throughput, accuracy and lag, the
/// spare rows shared among them; predicted values, records and latency go first.
#[test]
fn at_80x24_accuracy_stays_and_latency_goes() {
    let screen = lines(&draw(&known_app(), 80, 24));
    let right: Vec<String> = screen[5..23].iter().map(|l| from_column(l, 45)).collect();
    assert_eq!(
        right,
        [
            "┌ throughput (events/s) ──────────┐",
            "│now 8  avg 8.0  total 40         │",
            "│█████                            │",
            "│█████                            │",
            "│█████                            │",
            "└─────────────────────────────────┘",
            "┌ DRIFT ↑ at 16:05:21 ────────────┐",
            "│RMSE 5602  MAE 4480  R² 0.957    │",
            "│█                                │",
            "│█                                │",
            "│█                                │",
            "└─────────────────────────────────┘",
            "┌ consumer lag, partitions 0,1,2 ─┐",
            "│total 7 records, 1.2 s behind    │",
            "│p0 2 (1.2 s)  p1 0 (0.0 s)  p2 5 │",
            "│ █                               │",
            "│▁██                              │",
            "└─────────────────────────────────┘",
        ]
    );
    assert!(!screen.iter().any(|l| l.contains("latency")));
}

/// Before the consumer is assigned a partition, the lag panel says so and draws no bars, though
/// lag reports (of no partitions) came.
#[test]
fn the_lag_panel_draws_no_bars_before_a_partition_is_assigned() {
    let mut app = App::new(Setup::default(), 0);
    for _ in 0..3 {
        app.update(Message::Engine(EngineEvent::Lag(LagByPartition::default())));
    }
    let screen = lines(&draw(&app, 120, 40));
    let top = screen
        .iter()
        .position(|l| l.contains("┌ consumer lag "))
        .expect("a lag panel");
    let panel: Vec<String> = screen[top..top + 4]
        .iter()
        .map(|l| from_column(l, 67))
        .collect();
    assert_eq!(
        panel,
        [
            "┌ consumer lag ─────────────────────────────────────┐",
            "│no partitions assigned yet                         │",
            "│                                                   │",
            "│                                                   │",
        ]
    );
    // Once assigned, the bars begin with the first lag of a partition.
    app.update(Message::Engine(EngineEvent::Assigned(vec![0])));
    app.update(Message::Engine(EngineEvent::Lag(LagByPartition {
        partitions: vec![(0, 5)],
        behind_ms: vec![(0, 0)],
    })));
    let screen = lines(&draw(&app, 120, 40));
    assert_eq!(
        from_column(&screen[top + 1], 67),
        "│total 5 records, 0.0 s behind  range 5..5          │"
    );
    assert_eq!(
        from_column(&screen[top + 3], 67),
        "│█                                                  │"
    );
}

/// The help overlay is a box over the dashboard: what lies outside it stays drawn.
#[test]
fn the_help_overlay_lies_over_the_dashboard() {
    let mut app = known_app();
    app.update(Message::ToggleHelp);
    let screen = lines(&draw(&app, 100, 30));
    assert_eq!(
        screen[1].trim_end(),
        "broker embedded 127.0.0.1:39093 (up)  group salary-stream"
    );
    assert_eq!(
        screen[7],
        "│16:00:04.875     0/13   9.6 116511.84 8.5             ││█████                                     │"
    );
    assert_eq!(
        screen[8],
        "│16:00:04.750┌ keys ───────────────────────────────────────────────────────────────────┐           │"
    );
    assert_eq!(
        screen[16],
        "│16:00:03.750│ space  freeze / unfreeze the view                                       │ max 3.10  │"
    );
    assert_eq!(
        screen[21],
        "│    │       └─────────────────────────────────────────────────────────────────────────┘range 3..12│"
    );
}

/// With a challenger loaded, the table shows its prediction beside the serving model's, blank
/// for events scored before it was loaded.
#[test]
fn the_events_table_shows_the_challengers_prediction() {
    let screen = lines(&draw(&challenged(known_app()), 120, 40));
    let table: Vec<String> = screen[6..10]
        .iter()
        .map(|l| l.chars().take(67).collect())
        .collect();
    assert_eq!(
        table,
        [
            "│time (UTC)   p/offset years predicted challenger  ms  resid      │",
            "│16:00:05.375     1/17 11.0* 129741.79  155689.85 2.0 +26448      │",
            "│16:00:05.250     1/16   8.2 103281.89  123937.99 2.0             │",
            "│16:00:05.125     1/15   6.5  87216.96  104660.08 2.0 +17943      │",
        ]
    );
    assert!(screen[11].starts_with("│16:00:04.875     0/13   9.6 116511.84            8.5      "));
    // Without a challenger there is no such column.
    let screen = lines(&draw(&known_app(), 120, 40));
    assert!(!screen.iter().any(|l| l.contains("challenger  ms")));
}

/// At 200x50 the table shows the label beside the prediction (and the challenger's, when one is
/// loaded), the chart is two fifths of the left column, and the right column's spare rows go to
/// its panels.
#[test]
fn at_200x50_the_space_is_used() {
    let screen = lines(&draw(&challenged(known_app()), 200, 50));
    let table: Vec<String> = screen[6..9]
        .iter()
        .map(|l| l.chars().take(70).collect::<String>().trim_end().to_owned())
        .collect();
    assert_eq!(
        table,
        [
            "│time (UTC)   p/offset years predicted challenger  ms    salary  resid",
            "│16:00:05.375     1/17 11.0* 129741.79  155689.85 2.0 156189.85 +26448",
            "│16:00:05.250     1/16   8.2 103281.89  123937.99 2.0",
        ]
    );
    let chart_top = screen
        .iter()
        .position(|l| l.starts_with("┌ salary by years"))
        .expect("a chart");
    assert_eq!(
        (chart_top, screen.len() - 1 - chart_top),
        (32, 17),
        "17 rows of 44"
    );
    let right_tops: Vec<usize> = screen
        .iter()
        .enumerate()
        .filter(|(_, l)| from_column(l, 112).starts_with('┌'))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(right_tops, [5, 13, 20, 28, 35, 43]);
    assert_eq!(
        from_column(&screen[45], 112).trim_end(),
        "│last reason wrong type for years_experience: string                                   │"
    );
}

/// Where the overlay's sides fall on a value, the part left outside goes too: no `16` of
/// `16:00:04.875`, no `bro` of `broker`.
#[test]
fn the_help_overlay_leaves_no_fragment_beside_it() {
    let mut app = known_app();
    app.update(Message::ToggleHelp);
    let screen = lines(&draw(&app, 80, 15));
    assert_eq!(
        screen[1],
        "   ┌ keys ───────────────────────────────────────────────────────────────────┐  "
    );
    assert_eq!(
        screen[6],
        "│  │     P  promote the challenger to serving                                │ │"
    );
}

/// A watched group with no members: how old its oldest unread record is, and `no members`; with
/// members, every one of them or how many.
#[test]
fn a_watched_group_shows_its_members_or_that_it_has_none() {
    use salary_stream::observe::watch::GroupMember;
    let mut app = App::new(Setup::default(), 0);
    app.update(Message::Engine(EngineEvent::Lag(LagByPartition {
        partitions: vec![(0, 4_000), (1, 12)],
        behind_ms: vec![(0, 94_500), (1, 3_000)],
    })));
    app.update(Message::Engine(EngineEvent::Members(vec![])));
    let lag_panel = |app: &App| {
        let screen = lines(&draw(app, 120, 40));
        let top = screen
            .iter()
            .position(|l| l.contains("┌ consumer lag "))
            .expect("a lag panel");
        screen[top + 1..top + 4]
            .iter()
            .map(|l| from_column(l, 67))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lag_panel(&app),
        [
            "│total 4012 records, 94 s behind  range 4012..4012  │",
            "│p0 4000 (94 s)  p1 12 (3.0 s)                      │",
            "│no members                                         │",
        ]
    );
    let member = |id: &str, host: &str, partitions: Vec<i32>| GroupMember {
        client_id: id.into(),
        host: host.into(),
        partitions,
    };
    app.update(Message::Engine(EngineEvent::Members(vec![
        member("scorer-a", "10.89.0.5", vec![0]),
        member("scorer-b", "10.89.0.6", vec![1]),
    ])));
    assert_eq!(
        lag_panel(&app)[2],
        "│scorer-a@10.89.0.5 0  scorer-b@10.89.0.6 1         │"
    );
    app.update(Message::Engine(EngineEvent::Members(vec![
        member("salary-stream-scorer-a", "10.89.0.5", vec![0]),
        member("salary-stream-scorer-b", "10.89.0.6", vec![1]),
    ])));
    assert_eq!(
        lag_panel(&app)[2],
        "│salary-stream-scorer-a 0  salary-stream-scorer-b 1 │",
        "both without their hosts rather than one with"
    );
    app.update(Message::Engine(EngineEvent::Members(vec![
        member("salary-stream-scorer-a", "10.89.0.5", vec![0]),
        member("salary-stream-scorer-b", "10.89.0.6", vec![1]),
        member("salary-stream-scorer-c", "10.89.0.7", vec![]),
    ])));
    assert_eq!(
        lag_panel(&app)[2],
        "│3 members                                          │"
    );
}

/// Without a labeled event in view there is no label column, however wide the table.
#[test]
fn an_unlabeled_stream_has_no_label_column() {
    let mut app = App::new(Setup::default(), 0);
    app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
        recent: vec![ScoredEvent {
            partition: 0,
            offset: 7,
            event_ms: Some(1_764_000_000_000),
            features: FeatureRow::years(5.3),
            predicted: 75877.0,
            salary: None,
            challenger: None,
            latency_ms: Some(1.5),
            extrapolated: false,
        }],
        scored: 1,
        ..Default::default()
    })));
    let screen = lines(&draw(&app, 200, 50));
    let table: Vec<String> = screen[6..8]
        .iter()
        .map(|l| {
            l.chars()
                .take(111)
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    assert_eq!(
        table,
        [
            "│time (UTC)   p/offset years predicted  ms resid",
            "│16:00:00.000      0/7   5.3  75877.00 1.5",
        ]
    );
}
