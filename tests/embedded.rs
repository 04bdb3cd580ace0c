//! End to end on the embedded broker: events in, exact predictions out, bad records dead-lettered.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salary_stream::engine::{EngineEvent, SharedSink};
use salary_stream::kafka::broker::EmbeddedBroker;
use salary_stream::kafka::config::KafkaOptions;
use salary_stream::model::{Artifact, Predictor};
use salary_stream::serving::scorer::{self, ScorerConfig};
use salary_stream::serving::slots::{ModelCommand, Policy};

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
        model: artifact(),
        model_path: None,
        challenger: None,
        policy: Policy::default(),
        models_dir: std::env::temp_dir().join("salary-stream-test-models"),
        metrics: None,
        exactly_once: None,
        max_records,
        start_uncommitted_at: None,
        shutdown_timeout: scorer::FLUSH_TIMEOUT,
        shutdown_flush: scorer::FLUSH_TIMEOUT,
        output: Default::default(),
    }
}

fn artifact() -> Artifact {
    Artifact::load(&common::root().join("assets/model.json")).unwrap()
}

fn predictor() -> Predictor {
    Predictor::from(&artifact())
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
        assert_eq!(v["predicted_salary"].as_f64().unwrap(), p.predict(&[years]));
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
    use salary_stream::observe::quality::Shift;
    use salary_stream::serving::producer::{EventGenerator, LabelModel};
    let broker = EmbeddedBroker::start(&[("in", 1), ("out", 1), ("dlq", 1)]).unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let p = predictor();
    let (slope, intercept) = p.slope_intercept().unwrap();
    let labels = LabelModel {
        slope,
        intercept,
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
fn t_fits_a_challenger_that_rides_along_p_promotes_it_r_rolls_back_and_a_bad_artifact_is_refused() {
    use salary_stream::engine::{ModelEvent, SwapReason};
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
    // Labels on the line 1000 + 2000 × years, far below the reference model's.
    let produce = |from: u64| {
        let values: Vec<Option<Vec<u8>>> = (from..from + 100)
            .map(|i| {
                let years = (i % 20) as f64 / 2.0;
                let salary = 1000.0 + 2000.0 * years;
                Some(
                    format!(r#"{{"id":{i},"years_experience":{years},"salary":{salary}}}"#)
                        .into_bytes(),
                )
            })
            .collect();
        common::produce_all(&bootstrap, "in", &values);
    };
    let wait_for = |what: &str, ok: &dyn Fn(&EngineEvent) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !events.lock().unwrap().iter().any(ok) {
            assert!(std::time::Instant::now() < deadline, "no {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let wait_scored = |n: u64| {
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
            if scored >= n {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "scored {scored} of {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The output records of ids `from..from + 100`, once there.
    let outputs = |from: u64| -> Vec<serde_json::Value> {
        let all = common::read_n(
            &bootstrap,
            "out",
            from as usize + 100,
            Duration::from_secs(30),
        );
        let late: Vec<serde_json::Value> = all
            .iter()
            .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
            .filter(|v: &serde_json::Value| v["id"].as_u64().unwrap() >= from)
            .collect();
        assert_eq!(late.len(), 100);
        late
    };
    produce(0);
    wait_scored(100);

    // t: a challenger fitted on the labeled events since the drift alarm, kept in the models
    // directory; the reference model still serves.
    scorer.command(ModelCommand::FitChallenger);
    wait_for("a challenger", &|e| {
        matches!(e, EngineEvent::Model(ModelEvent::Challenger(Some(_))))
    });
    let (rows, before, after, version) = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            EngineEvent::Model(ModelEvent::Fitted {
                rows,
                rmse_before,
                rmse_after,
                version,
                ..
            }) => Some((*rows, *rmse_before, *rmse_after, version.clone())),
            _ => None,
        })
        .unwrap();
    assert!(
        (30..100).contains(&rows),
        "fitted on the {rows} events since the alarm"
    );
    assert!(
        before > 20_000.0 && after < 1e-6,
        "RMSE {before} -> {after}"
    );
    let challenger = Artifact::load(&models_dir.join(format!("{version}.json"))).unwrap();
    assert!((challenger.slope() - 2000.0).abs() < 1e-6);
    assert!((challenger.intercept() - 1000.0).abs() < 1e-6);
    assert_eq!(
        challenger
            .lineage
            .as_ref()
            .map(|l| (&l.trained_on[..], &l.challenged[..])),
        Some((
            &format!("{rows} labeled events of in since the drift alarm")[..],
            "6c25318e"
        ))
    );

    // Both score every event: the serving prediction is published, the challenger's rides along.
    produce(100);
    let reference = predictor();
    for v in outputs(100) {
        common::assert_challenged(&v, &challenger);
    }
    wait_for("the comparison over 100 events", &|e| {
        matches!(e, EngineEvent::Scored(r) if r.comparison.is_some_and(|c| c.n == 100
            && c.challenger_closer == 100 && c.challenger.mae < 1e-6 && c.serving.mae > 10_000.0))
    });

    // P: the challenger serves.
    scorer.command(ModelCommand::Promote);
    wait_for(
        "the promotion",
        &|e| matches!(e, EngineEvent::Model(ModelEvent::Swapped { reason: SwapReason::Promoted { replaced, auto: None }, line }) if replaced == "6c25318e" && line.version == version),
    );
    produce(200);
    for v in outputs(200) {
        let years = v["years_experience"].as_f64().unwrap();
        assert_eq!(v["model"], version.as_str());
        assert_eq!(
            v["predicted_salary"].as_f64().unwrap(),
            challenger.intercept() + challenger.slope() * years
        );
        assert_eq!(v.get("challenger"), None);
    }

    // r: back to the version it replaced.
    scorer.command(ModelCommand::RollBack);
    wait_for(
        "the rollback",
        &|e| matches!(e, EngineEvent::Model(ModelEvent::Swapped { reason: SwapReason::RolledBack { from }, line }) if *from == version && line.version == "6c25318e"),
    );
    produce(300);
    for v in outputs(300) {
        let years = v["years_experience"].as_f64().unwrap();
        assert_eq!(v["model"], "6c25318e");
        assert_eq!(
            v["predicted_salary"].as_f64().unwrap(),
            reference.predict(&[years])
        );
    }
    let mut kept: Vec<String> = std::fs::read_dir(&models_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let mut expected = vec![
        "6c25318e.json".to_owned(),
        format!("{version}.json"),
        "lineage.jsonl".to_owned(),
    ];
    expected.sort();
    assert_eq!(kept, expected);
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(models_dir.join("lineage.jsonl"))
        .unwrap()
        .lines()
        .map(common::json)
        .collect();
    assert_eq!(
        steps
            .iter()
            .map(|s| (
                s["event"].as_str().unwrap(),
                s["serving"].as_str().unwrap(),
                s["replaced"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [
            ("promoted", version.as_str(), "6c25318e"),
            ("rolled_back", "6c25318e", version.as_str()),
        ]
    );
    assert_eq!(
        std::fs::read(&model_path).unwrap(),
        std::fs::read(common::root().join("assets/model.json")).unwrap(),
        "the --model file is untouched"
    );

    // A corrupt artifact is refused; the serving model keeps serving.
    std::fs::write(&model_path, "{\"schema_version\": 1, \"version\": ").unwrap();
    wait_for(
        "the refusal",
        &|e| matches!(e, EngineEvent::Model(ModelEvent::Rejected(why)) if why.contains("is corrupt")),
    );
    scorer.stop();
    let summary = scorer.join().unwrap();
    assert_eq!(summary.totals.scored, 400);
}

/// Waits (up to a minute: a bound for a stuck test, not a measure) until `done`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// On the embedded broker a scorer with nothing to read stops fetching (the mock cluster held
/// an empty fetch 200 times a second: issue 26), and records another client writes while it is
/// paused are still scored, each exactly once, whether it had read nothing yet or had read
/// records before; a paused scorer still reports every partition's lag.
#[test]
fn an_idle_scorer_stops_fetching_and_still_scores_what_another_client_writes() {
    let broker = EmbeddedBroker::start(&[("in", 3), ("out", 3), ("dlq", 1)]).unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let values = |ids: std::ops::Range<u64>| -> Vec<Option<Vec<u8>>> {
        ids.map(|i| Some(format!(r#"{{"id": {i}, "years_experience": 4.5}}"#).into_bytes()))
            .collect()
    };
    let lags = Arc::new(Mutex::new(Vec::new()));
    let seen = lags.clone();
    let sink: SharedSink = Arc::new(move |e: EngineEvent| {
        if let EngineEvent::Lag(lag) = e {
            seen.lock().unwrap().push(lag.partitions);
        }
    });
    let scorer = scorer::spawn(config(&bootstrap, "dlq", "idle", Some(60)), sink, None).unwrap();
    let handled = scorer.handled();
    let handled = || handled.load(std::sync::atomic::Ordering::Relaxed);

    // Nothing written yet: it pauses before reading anything.
    wait_until("paused with nothing read", || scorer.fetch_paused());
    assert_eq!(handled(), 0);

    common::produce_all(&bootstrap, "in", &values(0..30));
    wait_until("the first 30 scored", || handled() == 30);
    // Idle again after reading: it pauses again, at the offsets it has read up to, and still
    // reports the lag of every partition it has read from (none behind).
    wait_until("paused after reading", || scorer.fetch_paused());
    lags.lock().unwrap().clear();
    wait_until("a lag report while paused", || {
        !lags.lock().unwrap().is_empty()
    });
    let read_from: Vec<(i32, i64)> = common::nonempty_partitions(&bootstrap, "in", 3)
        .iter()
        .map(|p| (p.parse().unwrap(), 0))
        .collect();
    assert_eq!(read_from.len(), 3, "30 keys spread over the 3 partitions");
    assert_eq!(lags.lock().unwrap()[0], read_from);
    assert_eq!(handled(), 30);

    common::produce_all(&bootstrap, "in", &values(30..60));
    let summary = scorer.join().unwrap();
    assert_eq!(
        (summary.totals.scored, summary.totals.bad),
        (60, 0),
        "stopped at --count 60"
    );
    let outputs = common::read_n(&bootstrap, "out", 60, Duration::from_secs(60));
    let ids: Vec<u64> = {
        let mut ids: Vec<u64> = outputs
            .iter()
            .map(|r| {
                let v: serde_json::Value =
                    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                assert_eq!(
                    v["predicted_salary"].as_f64().unwrap(),
                    predictor().predict(&[4.5])
                );
                v["id"].as_u64().unwrap()
            })
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids, (0..60).collect::<Vec<_>>(), "each record scored once");
}
