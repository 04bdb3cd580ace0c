//! The headless commands as processes: `broker`, `produce`, `score`, kcat interoperability,
//! consumer groups, fail-fast on an unreachable broker, and secrets kept out of all output.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{broker_process, exact_prediction, json, run, Child};

fn kcat(args: &[&str], input: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat must be installed (apt-get install -y kcat)");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn produce_then_score_gives_exact_predictions() {
    let (_broker, b) = broker_process(3);
    let (code, _, stderr) = run(&[
        "produce", "-b", &b, "--count", "500", "--rate", "max", "--seed", "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("done: sent 500  acked 500  failed 0")
    );
    let (code, stdout, stderr) = run(&["score", "-b", &b, "--count", "500"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().find(|l| l.starts_with("done: ")),
        Some("done: scored 500  bad 0  delivery errors 0")
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 500);
    let mut ids = BTreeSet::new();
    for line in lines {
        let v = json(line);
        let years = v["years_experience"].as_f64().unwrap();
        assert_eq!(
            v["predicted_salary"].as_f64().unwrap(),
            exact_prediction(years),
            "{line}"
        );
        assert_eq!(v["model"], "6c25318e");
        ids.insert(v["id"].as_u64().unwrap());
    }
    assert_eq!(ids, (0..500).collect());
    let published = common::read_n(&b, "salary-predictions", 500, Duration::from_secs(30));
    assert_eq!(published.len(), 500);
}

/// A local queue far smaller than the run makes librdkafka refuse most batches at first; every
/// event is still sent once, in order of ids, and acknowledged.
#[test]
fn a_full_local_queue_delays_events_but_loses_none() {
    let (_broker, b) = broker_process(3);
    let (code, _, stderr) = run(&[
        "produce",
        "-b",
        &b,
        "--count",
        "3000",
        "--rate",
        "max",
        "-X",
        "queue.buffering.max.messages=5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("done: sent 3000  acked 3000  failed 0")
    );
    let read = common::read_n(&b, "experience-events", 3000, Duration::from_secs(30));
    let mut ids: Vec<u64> = read
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            v["id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..3000).collect::<Vec<u64>>());
}

/// The scorer starts partitions without a committed offset itself (librdkafka would wait 100 ms
/// first): at the beginning by default, at the end with `-X auto.offset.reset=latest`.
#[test]
fn a_new_group_starts_where_auto_offset_reset_says() {
    let (_broker, b) = broker_process(1);
    let produce = |seed: &str| {
        let (code, _, stderr) = run(&[
            "produce", "-b", &b, "--count", "5", "--rate", "max", "--seed", seed,
        ]);
        assert_eq!(code, 0, "{stderr}");
    };
    produce("1");
    let offsets = |lines: &[String]| -> Vec<i64> {
        lines
            .iter()
            .map(|l| json(l)["offset"].as_i64().unwrap())
            .collect()
    };
    let (code, stdout, stderr) = run(&["score", "-b", &b, "-g", "from-start", "--count", "5"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(offsets(&lines), vec![0, 1, 2, 3, 4]);

    let mut latest = Child::spawn(&[
        "score",
        "-b",
        &b,
        "-g",
        "from-end",
        "--count",
        "5",
        "-X",
        "auto.offset.reset=latest",
    ]);
    latest.wait_for("the assignment", Duration::from_secs(30), |_, err| {
        err.iter().any(|l| l == "assigned partitions: [0]")
    });
    // Until the scorer has five records, produce batches of five after the first five: however
    // long its start position takes to settle, it must never see offsets 0..5.
    let deadline = Instant::now() + Duration::from_secs(30);
    while latest.stdout_lines().len() < 5 {
        assert!(Instant::now() < deadline, "{:?}", latest.stderr_lines());
        produce("2");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(latest.wait(Duration::from_secs(30)).success());
    let seen = offsets(&latest.stdout_lines());
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(
        seen.iter().all(|&o| o >= 5) && seen.windows(2).all(|w| w[1] == w[0] + 1),
        "{seen:?}"
    );
}

#[test]
fn kcat_produces_and_reads_the_predictions_and_the_dead_letters() {
    let (_broker, b) = broker_process(3);
    let mut input: String = (0..100)
        .map(|i| {
            format!(
                "{{\"id\": \"k{i}\", \"years_experience\": {}}}\n",
                f64::from(i) / 8.0
            )
        })
        .collect();
    input.push_str("oops\n");
    kcat(&["-b", &b, "-P", "-t", "experience-events"], Some(&input));
    let (code, stdout, stderr) = run(&["score", "-b", &b, "--count", "101", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "", "--quiet prints no predictions");
    assert_eq!(
        stderr.lines().find(|l| l.starts_with("done: ")),
        Some("done: scored 100  bad 1  delivery errors 0")
    );

    let predictions = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "salary-predictions",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
    );
    let by_id: BTreeMap<String, f64> = predictions
        .lines()
        .map(|l| {
            let v = json(l);
            let years = v["years_experience"].as_f64().unwrap();
            assert_eq!(
                v["predicted_salary"].as_f64().unwrap(),
                exact_prediction(years)
            );
            (v["id"].as_str().unwrap().to_owned(), years)
        })
        .collect();
    assert_eq!(by_id.len(), 100);
    assert_eq!(by_id["k40"], 5.0);

    let dead = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "experience-events.dlq",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%h|%s\n",
        ],
        None,
    );
    let (headers, value) = dead.trim_end().split_once('|').unwrap();
    assert_eq!(value, "oops");
    let headers: BTreeMap<&str, &str> = headers
        .split(',')
        .filter_map(|h| h.split_once('='))
        .collect();
    assert_eq!(
        headers["error"],
        "not JSON: expected value at line 1 column 1"
    );
    assert_eq!(headers["source_topic"], "experience-events");
    assert!(headers["source_partition"].parse::<i32>().unwrap() < 3);
    assert!(headers["source_offset"].parse::<i64>().is_ok());
}

#[test]
fn two_scorers_split_the_partitions_and_one_takes_over_after_sigkill() {
    let (_broker, b) = broker_process(4);
    let scorer = |name: &str| {
        Child::spawn(&[
            "score",
            "-b",
            &b,
            "-g",
            "split",
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
            "-X",
            &format!("client.id={name}"),
        ])
    };
    let mut a = scorer("a");
    a.wait_for("a's first assignment", Duration::from_secs(30), |_, err| {
        err.iter()
            .any(|l| l.starts_with("assigned partitions: [0, 1, 2, 3]"))
    });
    let mut killed = scorer("b");
    common::wait_for_split(&a, &killed, 4);
    let mut producer = Child::spawn(&["produce", "-b", &b, "--count", "3000", "--rate", "300"]);
    killed.wait_for("b scoring", Duration::from_secs(20), |out, _| {
        out.len() >= 50
    });
    killed.signal("KILL");
    killed.wait(Duration::from_secs(5));
    assert!(producer.wait(Duration::from_secs(60)).success());
    a.wait_for(
        "a owning every partition",
        Duration::from_secs(60),
        |_, err| {
            err.iter().any(|l| l == "assigned partitions: [0, 1, 2, 3]")
                && err
                    .iter()
                    .filter(|l| l.starts_with("assigned partitions: "))
                    .count()
                    >= 3
        },
    );
    let ids = |child: &Child| -> BTreeSet<u64> {
        child
            .stdout_lines()
            .iter()
            .map(|l| json(l)["id"].as_u64().unwrap())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = ids(&a);
    while seen.len() + ids(&killed).difference(&seen).count() < 3000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        seen = ids(&a);
    }
    let all: BTreeSet<u64> = ids(&a).union(&ids(&killed)).copied().collect();
    assert_eq!(
        all,
        (0..3000).collect(),
        "every input id in the output at least once"
    );
    let mut published = BTreeSet::new();
    common::read_until(&b, "salary-predictions", Duration::from_secs(30), |r| {
        let value = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
        published.insert(json(value)["id"].as_u64().unwrap());
        published.len() >= 3000
    });
    let missing: Vec<u64> = (0..3000).filter(|i| !published.contains(i)).collect();
    assert_eq!(missing, Vec::<u64>::new(), "every id published");
    a.signal("TERM");
    assert!(a.wait(Duration::from_secs(20)).success());
}

#[test]
fn an_unreachable_broker_fails_fast_with_one_line() {
    let closed = common::closed_port();
    let b = format!("127.0.0.1:{}", closed.port);
    for command in ["score", "produce"] {
        let started = Instant::now();
        let (code, stdout, stderr) = run(&[command, "-b", &b]);
        let took = started.elapsed();
        assert_eq!(code, 1, "{command}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(
            stderr.lines().last(),
            Some(
                format!(
                    "salary-stream: cannot reach Kafka at {b} within 10 s: all brokers are down"
                )
                .as_str()
            ),
            "{command}"
        );
        assert!(took < Duration::from_secs(15), "{command} took {took:?}");
    }
}

#[test]
fn secrets_never_reach_the_output() {
    let closed = common::closed_port();
    let b = format!("127.0.0.1:{}", closed.port);
    let secret = "hunter2-s3cret";
    let cases: Vec<Vec<String>> = vec![
        vec![
            "score".into(),
            "-b".into(),
            b.clone(),
            "-X".into(),
            format!("sasl.password.typo={secret}"),
        ],
        vec![
            "produce".into(),
            "-b".into(),
            b.clone(),
            "-X".into(),
            format!("ssl.key.password.x={secret}"),
        ],
        vec![
            "score".into(),
            "-b".into(),
            b.clone(),
            "-X".into(),
            format!("sasl.password={secret}"),
            "-X".into(),
            "sasl.username=alice".into(),
            "--count".into(),
            "1".into(),
        ],
        vec![
            "score".into(),
            "-X".into(),
            format!("sasl.jaas.config{secret}"),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = run(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{args:?} leaked:\n{stdout}{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (_, _, stderr) = run(&[
        "score",
        "-b",
        &b,
        "-X",
        &format!("sasl.password.typo={secret}"),
    ]);
    assert_eq!(
        stderr.trim_end(),
        "salary-stream: kafka: Client config error: No such configuration property: \"sasl.password.typo\" sasl.password.typo ***"
    );
}

#[test]
fn without_a_terminal_the_default_command_scores() {
    let (_broker, b) = broker_process(3);
    let (code, _, stderr) = run(&["produce", "-b", &b, "--count", "20", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    let mut scorer = Child::spawn(&["-b", &b]);
    scorer.wait_for(
        "20 NDJSON predictions",
        Duration::from_secs(30),
        |out, _| out.len() == 20,
    );
    scorer.signal("TERM");
    assert!(scorer.wait(Duration::from_secs(20)).success());
    let last = scorer
        .stderr_lines()
        .into_iter()
        .find(|l| l.starts_with("done: "));
    assert_eq!(
        last.as_deref(),
        Some("done: scored 20  bad 0  delivery errors 0")
    );
}

#[test]
fn the_broker_serves_on_a_chosen_port() {
    let port = common::free_port().to_string();
    let broker = Child::spawn(&["broker", "--port", &port, "--partitions", "2"]);
    broker.wait_for("the address", Duration::from_secs(20), |out, _| {
        !out.is_empty()
    });
    assert_eq!(broker.stdout_lines()[0], format!("127.0.0.1:{port}"));
    let metadata = kcat(
        &[
            "-b",
            &format!("127.0.0.1:{port}"),
            "-L",
            "-t",
            "experience-events",
        ],
        None,
    );
    assert!(
        metadata.contains(&format!("broker 1 at 127.0.0.1:{port}")),
        "{metadata}"
    );
    assert!(
        metadata.contains("topic \"experience-events\" with 2 partitions"),
        "{metadata}"
    );
    let (code, _, stderr) = run(&["broker", "--port", &port]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!(
            "salary-stream: cannot listen on 127.0.0.1:{port}: "
        )),
        "{stderr}"
    );
}

#[test]
fn a_scorer_killed_mid_stream_loses_nothing_after_a_restart() {
    let (_broker, b) = broker_process(3);
    let mut producer = Child::spawn(&["produce", "-b", &b, "--count", "2000", "--rate", "400"]);
    let scorer = || Child::spawn(&["score", "-b", &b, "-X", "session.timeout.ms=6000"]);
    let mut first = scorer();
    first.wait_for("500 predictions", Duration::from_secs(60), |out, _| {
        out.len() >= 500
    });
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    assert!(producer.wait(Duration::from_secs(60)).success());
    let ids = |c: &Child| -> Vec<u64> {
        c.stdout_lines()
            .iter()
            .map(|l| json(l)["id"].as_u64().unwrap())
            .collect()
    };
    let mut seen: BTreeSet<u64> = ids(&first).into_iter().collect();
    let second = scorer();
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.len() < 2000 && Instant::now() < deadline {
        seen.extend(ids(&second));
        std::thread::sleep(Duration::from_millis(200));
    }
    let missing: Vec<u64> = (0..2000).filter(|i| !seen.contains(i)).collect();
    assert_eq!(
        missing,
        Vec::<u64>::new(),
        "every input id scored at least once"
    );
    let duplicates = ids(&first).len() + ids(&second).len() - 2000;
    assert!(
        duplicates < ids(&first).len(),
        "the restart resumed at committed offsets, not at the beginning ({duplicates} again)"
    );
}

#[test]
fn a_bad_model_artifact_stops_every_command_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("m.json");
    std::fs::write(&corrupt, "{not json").unwrap();
    let path = corrupt.to_string_lossy().into_owned();
    for command in ["score", "produce", "dash"] {
        let (code, stdout, stderr) = run(&[command, "--model", &path, "-b", "127.0.0.1:1"]);
        assert_eq!(code, 1, "{command}");
        assert_eq!(stdout, "");
        assert_eq!(
            stderr,
            format!("salary-stream: model artifact {path} is corrupt: key must be a string at line 1 column 2\n"),
            "{command}"
        );
    }
}

#[test]
fn a_port_that_does_not_speak_kafka_and_a_host_that_does_not_resolve_are_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 256];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    for command in ["score", "produce"] {
        let (code, _, stderr) = run(&[command, "-b", &http]);
        assert_eq!(code, 1, "{command}: {stderr}");
        assert_eq!(
            stderr.lines().last().unwrap_or_default(),
            format!(
                "salary-stream: cannot reach Kafka at {http} within 10 s: {http} answered, but \
                 not in Kafka's protocol: is {http} a Kafka broker?"
            ),
            "{command}"
        );
        let (code, _, stderr) = run(&[command, "-b", "no-such-host.invalid:9092"]);
        assert_eq!(code, 1, "{command}: {stderr}");
        assert_eq!(
            stderr.lines().last().unwrap_or_default(),
            "salary-stream: cannot reach Kafka at no-such-host.invalid:9092 within 10 s: cannot \
             resolve host no-such-host.invalid: no such host is known",
            "{command}"
        );
    }
}

#[test]
fn the_embedded_broker_paused_10_s_costs_no_cpu_and_loses_nothing() {
    let (broker, address) = common::broker_process(3);
    common::a_paused_broker_costs_no_cpu_and_loses_nothing(&address, broker.child.id(), &[]);
}

/// librdkafka's mock cluster runs transactions, but does not keep offsets committed inside them
/// across a restart of itself: within one run, every record is published once.
#[test]
fn the_embedded_broker_runs_exactly_once_within_a_run() {
    let (_broker, b) = broker_process(3);
    let (code, _, stderr) = run(&["produce", "-b", &b, "--count", "500", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&["score", "-b", &b, "--exactly-once", "--count", "500", "-q"]);
    assert_eq!(code, 0, "{stderr}");
    let mut ids = BTreeMap::new();
    for r in common::read_committed_to_end(&b, "salary-predictions", Duration::from_secs(30)) {
        let v = json(std::str::from_utf8(r.value.as_deref().unwrap()).unwrap());
        *ids.entry(v["id"].as_u64().unwrap()).or_insert(0u32) += 1;
    }
    assert_eq!(ids.len(), 500);
    assert!(ids.values().all(|c| *c == 1));
}

/// An aborted transaction's records are consumed and scored again after the rewind: they count
/// once, in the stats line's totals and in the final `done:` line. (A test hook aborts the first two
/// transactions that hold records, as a broker that failed them would have them aborted.)
#[test]
fn an_aborted_transaction_s_records_are_counted_once_when_scored_again() {
    let (_broker, b) = broker_process(3);
    let (code, _, stderr) = run(&[
        "produce", "-b", &b, "--count", "500", "--rate", "max", "--seed", "5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let bad: Vec<Option<Vec<u8>>> = (0..5)
        .map(|i| Some(format!("not json {i}").into_bytes()))
        .collect();
    common::produce_all(&b, "experience-events", &bad);
    // No --count: the run ends on SIGTERM once every record is committed, as a service's does.
    let mut score = Child::spawn_with_env(
        &["score", "-b", &b, "--exactly-once"],
        &[("SALARY_STREAM_TEST_ABORT_TRANSACTIONS", "2")],
    );
    // The stats line counts what was committed: 505 records, once each, and then no more.
    score.wait_for(
        "every record committed",
        Duration::from_secs(30),
        |_, err| {
            err.iter()
                .any(|l| l.starts_with("scored 500 (") && l.contains("  bad 5  "))
        },
    );
    score.signal("TERM");
    let status = score.wait(Duration::from_secs(15));
    let stderr = score.stderr_lines();
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    assert_eq!(
        stderr
            .iter()
            .find(|l| l.starts_with("done: "))
            .map(String::as_str),
        Some("done: scored 500  bad 5  delivery errors 0"),
        "{stderr:?}"
    );
    // Written once as scored in an aborted transaction, and again: the aborts did happen.
    assert!(score.stdout_lines().len() > 500, "{stderr:?}");
    // (librdkafka's mock cluster shows aborted records to read_committed readers too: what
    // the output holds once each is tested against Apache Kafka.)
}

/// A transactional call that never returns ends `score` with the watch's one line and exit status
/// 75 (`EX_TEMPFAIL`), for a supervisor to run it again. A test hook makes
/// `send_offsets_to_transaction` hang, as librdkafka 2.12.1's does when the coordinator's node is
/// lost; the watch gives it its timeout (10 s) and 5 s.
#[test]
fn a_transactional_call_that_never_returns_ends_score_with_status_75_and_one_line() {
    let (_broker, b) = broker_process(3);
    let (code, _, stderr) = run(&["produce", "-b", &b, "--count", "20", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    let mut score = Child::spawn_with_env(
        &["score", "-b", &b, "--exactly-once", "-q"],
        &[("SALARY_STREAM_TEST_HANG_SEND_OFFSETS", "1")],
    );
    let status = score.wait(Duration::from_secs(60));
    let stderr = score.stderr_lines();
    assert_eq!(status.code(), Some(75), "{stderr:?}");
    assert_eq!(
        stderr.last().map(String::as_str),
        Some(
            "salary-stream: exactly-once: librdkafka's send_offsets_to_transaction has not \
             returned after 15 s (a known librdkafka hang when the coordinator's broker leaves \
             the cluster: librdkafka issues #5511 and #5456); the open transaction is left \
             uncommitted, and nothing more is committed by this run: run again with the same \
             --instance-id to resume from the last committed transaction"
        ),
        "{stderr:?}"
    );
    // Nothing was committed: no `done:` line counts what the stuck transaction held.
    assert!(
        !stderr.iter().any(|l| l.starts_with("done: ")),
        "{stderr:?}"
    );
}

#[test]
fn score_with_a_challenger_publishes_both_predictions() {
    let (_broker, b) = broker_process(3);
    let dir = tempfile::tempdir().unwrap();
    // The reference artifact with salaries 20% higher: the drifted labels' own line.
    let mut challenger =
        salary_stream::model::Artifact::load(&common::root().join("assets/model.json")).unwrap();
    challenger.version = "c0ffee01".into();
    let line = challenger.linear_mut().unwrap();
    line.coefficients[0] *= 1.2;
    line.intercept *= 1.2;
    let path = dir.path().join("challenger.json");
    challenger.save(&path).unwrap();
    let path = path.to_string_lossy().into_owned();
    let (code, _, stderr) = run(&[
        "produce", "-b", &b, "--count", "300", "--rate", "max", "--seed", "8", "--drift",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&[
        "score",
        "-b",
        &b,
        "--count",
        "300",
        "--challenger",
        &path,
        "--models-dir",
        &dir.path().join("models").to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(json).collect();
    assert_eq!(lines.len(), 300);
    let mut closer = 0;
    for v in &lines {
        let (label, theirs) = common::assert_challenged(v, &challenger);
        let ours = v["predicted_salary"].as_f64().unwrap();
        closer += usize::from((label - theirs).abs() < (label - ours).abs());
    }
    assert!(
        closer > 200,
        "the drifted line is closer to drifted labels: {closer} of 300"
    );

    // A challenger that cannot be read stops the command with one line.
    let corrupt = dir.path().join("bad.json");
    std::fs::write(&corrupt, "{not json").unwrap();
    let bad = corrupt.to_string_lossy().into_owned();
    for command in ["score", "dash"] {
        let (code, stdout, stderr) = run(&[command, "--challenger", &bad, "-b", "127.0.0.1:1"]);
        assert_eq!((code, stdout.as_str()), (1, ""), "{command}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "salary-stream: --challenger: model artifact {bad} is corrupt: key must be a \
                 string at line 1 column 2\n"
            ),
            "{command}"
        );
    }
}

#[test]
fn promotion_flags_are_checked_before_anything_starts() {
    for (args, expected) in [
        (
            vec!["score", "--auto-promote", "--promote-after", "501"],
            "error: invalid value '501' for '--promote-after <N>': 501 is not in 1..=500",
        ),
        (
            vec!["score", "--promote-after", "10"],
            "error: the following required arguments were not provided:",
        ),
        (
            vec!["dash", "--promote-margin", "10"],
            "error: the following required arguments were not provided:",
        ),
        (
            vec!["score", "--auto-promote", "--promote-margin", "100"],
            "error: invalid value '100' for '--promote-margin <PERCENT>': expected a percentage \
             from 0 to below 100, got \"100\"",
        ),
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!((code, stdout.as_str()), (2, ""), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().next(), Some(expected), "{args:?}: {stderr}");
    }
}

/// `salary-stream broker` reached with `-b` is librdkafka's mock cluster, told by the cluster id
/// of one Metadata answer: the scorer writes its predictions uncompressed there, as for the
/// embedded broker (Apache Kafka's, tests/apache_kafka.rs, get lz4). Over `localhost` too.
#[test]
fn a_salary_stream_broker_is_told_for_the_mock_cluster_it_is() {
    use salary_stream::kafka::config::KafkaOptions;
    use salary_stream::kafka::mock_cluster;

    let (_broker, b) = broker_process(1);
    let id = mock_cluster::cluster_id(&b).expect("the mock names its cluster");
    assert!(id.starts_with("mockCluster"), "{id}");
    let port = b.rsplit_once(':').unwrap().1;
    for bootstrap in [b.clone(), format!("localhost:{port}")] {
        let options = KafkaOptions::brokers(&bootstrap);
        assert!(mock_cluster::serves(&options), "{options:?}");
    }
}
