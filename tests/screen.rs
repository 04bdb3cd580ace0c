//! The dashboard drawn into a test backend: exact screens in a known state, and no panic at any
//! small size.

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use salary_stream::app::{App, Message, Setup};
use salary_stream::engine::quality::{Accuracy, Shift};
use salary_stream::engine::{
    BrokerHealth, DriftAlarm, EngineEvent, LagByPartition, ProducerStatus, Rate, ScoreReport,
    ScoredEvent,
};

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
                    years: y,
                    predicted: INTERCEPT + SLOPE * y,
                    salary: (i % 2 == 0).then_some(INTERCEPT + SLOPE * y + 1000.0),
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
            last_bad: (second == 2)
                .then(|| "years_experience is a string, expected a number".into()),
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
    app.update(Message::Engine(EngineEvent::Lag(LagByPartition {
        partitions: vec![(0, 2), (1, 0), (2, 5)],
    })));
    app.update(Message::Engine(EngineEvent::Broker(BrokerHealth::Up)));
    app.update(Message::Engine(EngineEvent::Assigned(vec![0, 1, 2])));
    app.line = salary_stream::app::ServingLine {
        slope: SLOPE,
        intercept: INTERCEPT,
        range_max: 10.5,
    };
    app.update(Message::Engine(EngineEvent::Producer(ProducerStatus {
        running: true,
        rate: Rate::PerSecond(50),
        sent: 40,
        acked: 40,
        failed: 0,
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
        screen[6].contains("now 8  avg 8.0  total 40"),
        "{}",
        screen[6]
    );
    // Newest first: the last event of the last report, 9.6 years.
    assert!(
        screen[7].contains("0/13   9.6 116511.84    8.5"),
        "{}",
        screen[6]
    );
    assert!(
        screen.iter().any(|l| l.contains("12.0* 139191.75")),
        "extrapolation marked"
    );
    assert!(screen
        .iter()
        .any(|l| l.contains("┌ DRIFT ↑ at 16:05:21 after 1034 labeled ")));
    assert!(screen
        .iter()
        .any(|l| l.contains("│MAE 4480  RMSE 5602  R² 0.957  n 500")));
    assert!(screen.iter().any(|l| l.contains("p0 2  p1 0  p2 5")));
    assert!(screen
        .iter()
        .any(|l| l.contains("┌ salary by years over the fitted line")));
    assert!(
        screen.iter().any(|l| l.contains("│150k│")),
        "y axis up to 150k"
    );
    assert!(
        screen.iter().any(|l| l.contains("12 y│")),
        "x axis to 12 years"
    );
    assert!(screen.iter().any(|l| l.contains("total 7")));
    assert!(screen
        .iter()
        .any(|l| l.contains("bad records 1  beyond range 5")));
    assert!(screen
        .iter()
        .any(|l| l.contains("│last reason years_experience is a string, │")));
    assert!(screen.iter().any(|l| l.contains("│expected a number ")));
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
fn no_panic_at_any_small_size() {
    let mut app = known_app();
    for help in [false, true] {
        if help {
            app.update(Message::ToggleHelp);
        }
        for width in 0..=40 {
            for height in 0..=14 {
                draw(&app, width, height);
            }
        }
    }
    draw(&app, 20, 5);
}
