//! End to end on the embedded broker: events in, exact predictions out, bad records dead-lettered.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salary_stream::engine::broker::EmbeddedBroker;
use salary_stream::engine::config::KafkaOptions;
use salary_stream::engine::scorer::{self, ScorerConfig};
use salary_stream::engine::{EngineEvent, SharedSink};
use salary_stream::model::{Artifact, Predictor};

/// A scorer of topic `in` on the embedded broker at `bootstrap`, publishing to `out`.
fn config(bootstrap: &str, dlq: &str, group: &str, max_records: Option<u64>) -> ScorerConfig {
    ScorerConfig {
        kafka: KafkaOptions {
            bootstrap: bootstrap.to_owned(),
            properties: vec![],
            embedded: true,
        },
        input_topic: "in".into(),
        output_topic: Some("out".into()),
        dlq_topic: dlq.into(),
        group: group.into(),
        predictor: predictor(),
        model_path: None,
        models_dir: std::env::temp_dir().join("salary-stream-test-models"),
        metrics: None,
        exactly_once: None,
        max_records,
        start_uncommitted_at: None,
        training_rmse: 5592.04,
        shutdown_flush: scorer::FLUSH_TIMEOUT,
    }
}

fn predictor() -> Predictor {
    Predictor::from(&Artifact::load(&common::root().join("assets/model.json")).unwrap())
}

#[test]
fn a_thousand_events_give_a_thousand_exact_predictions() {
    let broker = EmbeddedBroker::start(&[("in", 3), ("out", 3), ("in.dlq", 1)]).unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let years_of = |i: usize| (i % 150) as f64 / 10.0;
    let mut values: Vec<Option<Vec<u8>>> = (0..1000)
        .map(|i| {
            Some(format!(r#"{{"id": {i}, "years_experience": {}}}"#, years_of(i)).into_bytes())
        })
        .collect();
    values.push(Some(b"not json".to_vec()));
    values.push(Some(br#"{"years_experience": -3}"#.to_vec()));
    values.push(None);
    common::produce_all(&bootstrap, "in", &values);

    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let sink: SharedSink = Arc::new(move |e: EngineEvent| seen.lock().unwrap().push(e));
    let p = predictor();
    let scorer =
        scorer::spawn(config(&bootstrap, "in.dlq", "e2e", Some(1003)), sink, None).unwrap();
    let summary = scorer.join().unwrap();
    assert_eq!(
        (
            summary.totals.scored,
            summary.totals.bad,
            summary.totals.delivery_errors
        ),
        (1000, 3, 0)
    );

    let outputs = common::read_n(&bootstrap, "out", 1000, Duration::from_secs(60));
    assert_eq!(outputs.len(), 1000);
    let mut ids = BTreeSet::new();
    for r in &outputs {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let id = v["id"].as_u64().unwrap() as usize;
        let years = v["years_experience"].as_f64().unwrap();
        assert_eq!(years, years_of(id));
        assert_eq!(
            v["predicted_salary"].as_f64().unwrap(),
            p.intercept + p.slope * years
        );
        assert!(
            (v["predicted_salary"].as_f64().unwrap() - (common::INTERCEPT + common::SLOPE * years))
                .abs()
                < 1e-4
        );
        assert_eq!(v["model"], "6c25318e");
        assert_eq!(v["extrapolated"], !(1.1..=10.5).contains(&years));
        assert_eq!(r.key.as_deref(), Some(id.to_string().as_bytes()));
        ids.insert(id);
    }
    assert_eq!(ids, (0..1000).collect());

    let dead = common::read_n(&bootstrap, "in.dlq", 3, Duration::from_secs(30));
    let mut reasons: Vec<(String, Option<Vec<u8>>)> = dead
        .iter()
        .map(|r| (r.headers["error"].clone(), r.value.clone()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            (
                "not JSON: expected ident at line 1 column 2".to_owned(),
                Some(b"not json".to_vec())
            ),
            ("null value (tombstone)".to_owned(), None),
            (
                "years_experience is negative (-3)".to_owned(),
                Some(br#"{"years_experience": -3}"#.to_vec())
            ),
        ]
    );
    for r in &dead {
        assert_eq!(r.headers["source_topic"], "in");
        assert!(r.headers["source_partition"].parse::<i32>().unwrap() < 3);
        assert!(r.headers["source_offset"].parse::<i64>().is_ok());
    }

    let events = events.lock().unwrap();
    let (scored, bad) = events.iter().fold((0, 0), |(s, b), e| match e {
        EngineEvent::Scored(r) => (s + r.scored, b + r.bad),
        _ => (s, b),
    });
    assert_eq!((scored, bad), (1000, 3));
}

#[test]
fn a_restarted_scorer_resumes_at_the_committed_offset() {
    let broker = EmbeddedBroker::start(&[("in", 2), ("out", 2), ("dlq", 1)]).unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let values: Vec<Option<Vec<u8>>> = (0..300)
        .map(|i| Some(format!(r#"{{"id": {i}, "years_experience": 2.5}}"#).into_bytes()))
        .collect();
    common::produce_all(&bootstrap, "in", &values);
    let config = |max| config(&bootstrap, "dlq", "resume", Some(max));
    let sink: SharedSink = Arc::new(|_: EngineEvent| {});
    let first = scorer::spawn(config(100), sink.clone(), None)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(first.totals.scored, 100);
    let second = scorer::spawn(config(200), sink, None)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(second.totals.scored, 200);
    let outputs = common::read_n(&bootstrap, "out", 300, Duration::from_secs(60));
    let ids: BTreeSet<u64> = outputs
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            v["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(outputs.len(), 300, "no record scored twice");
    assert_eq!(ids, (0..300).collect(), "no record skipped");
}

#[test]
fn the_drift_alarm_fires_soon_after_labels_shift() {
    use salary_stream::engine::producer::{EventGenerator, LabelModel};
    use salary_stream::engine::quality::Shift;
    let broker = EmbeddedBroker::start(&[("in", 1), ("out", 1), ("dlq", 1)]).unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let p = predictor();
    let labels = LabelModel {
        slope: p.slope,
        intercept: p.intercept,
        noise_sd: 5592.04,
        drift: 1.0,
    };
    let mut generator = EventGenerator::new((1.1, 10.5), Some(labels), Some(11));
    let mut values = Vec::new();
    let mut buf = Vec::new();
    for i in 0..1200 {
        if i == 1000 {
            generator.set_drift(1.2);
        }
        generator.next_event(&mut buf, 0);
        values.push(Some(buf.clone()));
    }
    common::produce_all(&bootstrap, "in", &values);
    let alarms = Arc::new(Mutex::new(Vec::new()));
    let seen = alarms.clone();
    let sink: SharedSink = Arc::new(move |e: EngineEvent| {
        if let EngineEvent::Scored(r) = e {
            seen.lock()
                .unwrap()
                .push((r.drift, r.accuracy.map(|a| a.n)));
        }
    });
    scorer::spawn(config(&bootstrap, "dlq", "drift", Some(1200)), sink, None)
        .unwrap()
        .join()
        .unwrap();
    let alarms = alarms.lock().unwrap();
    let (last_alarm, last_n) = *alarms.last().unwrap();
    let alarm = last_alarm.expect("the drift alarm fired");
    assert_eq!(alarm.shift, Shift::Up);
    assert!(
        (1001..=1040).contains(&alarm.after),
        "fired after {} labeled events, 1,000 of them before the drift",
        alarm.after
    );
    assert_eq!(
        last_n,
        Some(500),
        "accuracy over the last 500 labeled events"
    );
}

#[test]
fn a_new_artifact_is_swapped_in_and_a_bad_one_refused_and_t_retrains() {
    use salary_stream::engine::ModelEvent;
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.json");
    std::fs::copy(common::root().join("assets/model.json"), &model_path).unwrap();
    let broker = EmbeddedBroker::start(&[("in", 1), ("out", 1), ("dlq", 1)]).unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let sink: SharedSink = Arc::new(move |e: EngineEvent| seen.lock().unwrap().push(e));
    let models_dir = dir.path().join("models");
    let scorer = scorer::spawn(
        ScorerConfig {
            model_path: Some(model_path.clone()),
            models_dir: models_dir.clone(),
            ..config(&bootstrap, "dlq", "reload", None)
        },
        sink,
        None,
    )
    .unwrap();
    let labeled = |from: usize| -> Vec<Option<Vec<u8>>> {
        (from..from + 100)
            .map(|i| {
                let years = (i % 20) as f64 / 2.0;
                let salary = 1000.0 + 2000.0 * years;
                Some(
                    format!(r#"{{"id":{i},"years_experience":{years},"salary":{salary}}}"#)
                        .into_bytes(),
                )
            })
            .collect()
    };
    let wait_for = |what: &str, ok: &dyn Fn(&EngineEvent) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !events.lock().unwrap().iter().any(ok) {
            assert!(std::time::Instant::now() < deadline, "no {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    common::produce_all(&bootstrap, "in", &labeled(0));
    wait_for(
        "first scores",
        &|e| matches!(e, EngineEvent::Scored(r) if r.scored > 0),
    );

    // t: refit on the labeled events (once all 100 are scored), keep the new version in the
    // models directory, serve it; the --model file is never written.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let scored: u64 = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                EngineEvent::Scored(r) => r.scored,
                _ => 0,
            })
            .sum();
        if scored >= 100 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scored {scored} of 100"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    scorer.retrain();
    wait_for("a retrained model", &|e| {
        matches!(e, EngineEvent::Model(ModelEvent::Retrained { .. }))
    });
    wait_for("the swap", &|e| {
        matches!(e, EngineEvent::Model(ModelEvent::Swapped { .. }))
    });
    assert_eq!(
        std::fs::read(&model_path).unwrap(),
        std::fs::read(common::root().join("assets/model.json")).unwrap(),
        "the --model file is untouched"
    );
    let kept: Vec<_> = std::fs::read_dir(&models_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let retrained = salary_stream::model::Artifact::load(&kept[0]).unwrap();
    assert_eq!(
        kept[0].file_name().unwrap().to_string_lossy(),
        format!("{}.json", retrained.version)
    );
    assert!(
        (retrained.coefficient - 2000.0).abs() < 1e-6,
        "{}",
        retrained.coefficient
    );
    assert!(
        (retrained.intercept - 1000.0).abs() < 1e-6,
        "{}",
        retrained.intercept
    );
    let (rows, before, after) = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            EngineEvent::Model(ModelEvent::Retrained {
                rows,
                rmse_before,
                rmse_after,
                ..
            }) => Some((*rows, *rmse_before, *rmse_after)),
            _ => None,
        })
        .unwrap();
    assert_eq!(rows, 100);
    assert!(
        before > 20_000.0 && after < 1e-6,
        "RMSE {before} -> {after}"
    );

    // Predictions from now on carry the new version and its exact values.
    common::produce_all(&bootstrap, "in", &labeled(100));
    let outputs = common::read_n(&bootstrap, "out", 200, Duration::from_secs(30));
    let late: Vec<serde_json::Value> = outputs
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
        .filter(|v: &serde_json::Value| v["id"].as_u64().unwrap() >= 100)
        .collect();
    assert_eq!(late.len(), 100);
    for v in &late {
        assert_eq!(v["model"], retrained.version.as_str());
        let years = v["years_experience"].as_f64().unwrap();
        assert_eq!(
            v["predicted_salary"].as_f64().unwrap(),
            retrained.intercept + retrained.coefficient * years
        );
    }

    // A corrupt artifact is refused; the retrained model keeps serving.
    std::fs::write(&model_path, "{\"schema_version\": 1, \"version\": ").unwrap();
    wait_for(
        "the refusal",
        &|e| matches!(e, EngineEvent::Model(ModelEvent::Rejected(why)) if why.contains("is corrupt")),
    );
    scorer.stop();
    let summary = scorer.join().unwrap();
    assert_eq!(summary.totals.scored, 200);
}
