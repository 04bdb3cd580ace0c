//! What the benches share: a dashboard state with every panel filled.

use salary_stream::app::{App, Message, Setup};
use salary_stream::engine::{EngineEvent, FeatureRow, LagByPartition, ScoreReport, ScoredEvent};

/// A dashboard after 60 seconds of 64 events a second, with lag and a bad record: every panel
/// has something to draw.
pub fn known_app() -> App {
    let mut app = App::new(
        Setup {
            broker: "embedded 127.0.0.1:39093".into(),
            input_topic: "experience-events".into(),
            output_topic: "salary-predictions".into(),
            dlq_topic: "experience-events.dlq".into(),
            group: "salary-stream".into(),
            model_version: "6c25318e".into(),
            formula: "salary = 25792.20 + 9449.96 × years".into(),
            ..Setup::default()
        },
        0,
    );
    for second in 0..60u64 {
        let recent = (0..64)
            .map(|i| ScoredEvent {
                partition: i % 3,
                offset: second as i64 * 64 + i64::from(i),
                event_ms: Some(1_764_000_000_000 + second as i64 * 1000),
                features: FeatureRow::years(f64::from(i % 15)),
                predicted: 25792.2 + 9449.96 * f64::from(i % 15),
                salary: Some(60000.0),
                latency_ms: Some(1.5),
                extrapolated: i % 15 > 10,
                challenger: None,
            })
            .collect();
        app.update(Message::Engine(EngineEvent::Scored(ScoreReport {
            recent,
            scored: 5000,
            extrapolated: 300,
            bad: 1,
            last_bad: Some("not JSON: expected value at line 1 column 1".into()),
            delivery_errors: 0,
            ..Default::default()
        })));
        app.update(Message::Tick((second + 1) * 1000));
    }
    app.update(Message::Engine(EngineEvent::Lag(LagByPartition {
        partitions: vec![(0, 12), (1, 0), (2, 7)],
        behind_ms: vec![(0, 1_200), (1, 0), (2, 700)],
    })));
    app
}
