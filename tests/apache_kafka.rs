//! Against Apache Kafka itself (4.x, KRaft, one node, started by `scripts/kafka`): the broker our
//! users run. Interop with Kafka's own console tools; at-least-once through a SIGKILL; group
//! take-over after a SIGKILL; missing topics, `--create-topics` and a closed stdout.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::supervised::Supervised;
use common::tmux::salary_rows;
use common::{
    committed_id_counts, exact_prediction, exactly_once_each, json, run, scored, ApacheKafka, Child,
};

#[test]
fn apache_kafka_console_producer_in_predictions_out_to_the_console_consumer() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "300", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    // Two good records and two bad ones, from Kafka's own console producer.
    ApacheKafka::tool(
        "org.apache.kafka.tools.ConsoleProducer",
        &["--bootstrap-server", b, "--topic", "experience-events"],
        Some("{\"id\": \"c1\", \"years_experience\": 5.3}\n{\"id\": \"c2\", \"YearsExperience\": 40}\nnot json\n{\"years_experience\": -1}\n"),
    );
    let (code, stdout, stderr) = run(&["score", "-b", b, "--count", "304"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 302, "{stderr}");
    assert!(
        stderr.contains("done: scored 302  bad 2  delivery errors 0"),
        "{stderr}"
    );
    let out = ApacheKafka::tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "salary-predictions",
            "--from-beginning",
            "--max-messages",
            "302",
            "--timeout-ms",
            "60000",
        ],
        None,
    );
    let lines: Vec<serde_json::Value> = out.lines().map(json).collect();
    assert_eq!(lines.len(), 302);
    for v in &lines {
        assert_eq!(
            v["predicted_salary"].as_f64().unwrap(),
            exact_prediction(v["years_experience"].as_f64().unwrap())
        );
    }
    let c1 = lines.iter().find(|v| v["id"] == "c1").expect("c1 scored");
    assert_eq!(
        c1["predicted_salary"].as_f64().unwrap(),
        exact_prediction(5.3)
    );
    let c2 = lines.iter().find(|v| v["id"] == "c2").expect("c2 scored");
    assert_eq!(c2["extrapolated"], true);
    let dead = common::read_n(b, "experience-events.dlq", 2, Duration::from_secs(60));
    let reasons: BTreeSet<String> = dead.iter().map(|r| r.headers["error"].clone()).collect();
    assert_eq!(dead.len(), 2);
    assert!(
        reasons.contains("years_experience is negative (-1)"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("not JSON: ")),
        "{reasons:?}"
    );
    assert!(dead
        .iter()
        .all(|r| r.headers["source_topic"] == "experience-events"));
}

#[test]
fn apache_kafka_a_scorer_sigkilled_mid_stream_loses_nothing_after_a_restart() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "3000", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    // A short session, so the restarted member need not wait out the killed one's 45 s.
    let args = [
        "score",
        "-b",
        b,
        "-q",
        "-X",
        "session.timeout.ms=3000",
        "-X",
        "heartbeat.interval.ms=500",
    ];
    let mut first = Child::spawn(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while scored(&first) == 0 {
        assert!(Instant::now() < deadline, "{:?}", first.stderr_lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap();
    first.wait(Duration::from_secs(10));
    let mut second = Child::spawn(&args);
    let seen = common::published_ids(b, "salary-predictions", 3000, Duration::from_secs(90));
    assert_eq!(common::missing(&seen, 3000), Vec::<u64>::new());
    second.signal("TERM");
    assert_eq!(second.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn apache_kafka_two_scorers_split_the_partitions_and_one_takes_over_after_sigkill() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    let args = [
        "score",
        "-b",
        b,
        "-q",
        "-X",
        "session.timeout.ms=3000",
        "-X",
        "heartbeat.interval.ms=500",
    ];
    let a = Child::spawn(&args);
    let mut c = Child::spawn(&args);
    common::wait_for_split(&a, &c, 3);
    c.child.kill().unwrap();
    c.wait(Duration::from_secs(10));
    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "600", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    let seen = common::published_ids(b, "salary-predictions", 600, Duration::from_secs(90));
    assert_eq!(common::missing(&seen, 600), Vec::<u64>::new());
    // Keyless records fill one partition at a time, so all 600 may have missed the dead
    // member's partition: the take-over is waited for on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::assignment(&a) != Some(vec![0, 1, 2]) {
        assert!(
            Instant::now() < deadline,
            "no take-over: {:?}",
            common::assignment(&a)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn apache_kafka_missing_topics_are_named_and_create_topics_makes_them() {
    let kafka = ApacheKafka::start(&["auto.create.topics.enable=false"]);
    let b = kafka.address.as_str();
    let (code, _, stderr) = run(&["produce", "-b", b, "-t", "absent", "--count", "5"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [format!(
            "salary-stream: topic absent does not exist on {b}: nothing was sent (create it, or \
             run again with --create-topics)"
        )]
    );
    let mut score = Child::spawn(&[
        "score",
        "-b",
        b,
        "-t",
        "absent",
        "--output-topic",
        "absent-out",
        "-q",
    ]);
    score.wait_for(
        "the missing topics named",
        Duration::from_secs(15),
        |_, err| err.iter().any(|l| l.starts_with("topic absent-out")),
    );
    let err = score.stderr_lines();
    assert!(
        err.contains(&format!(
            "topic absent does not exist on {b}: waiting for it to be created (create it, or run \
         again with --create-topics)"
        )),
        "{err:?}"
    );
    assert!(
        err.contains(&format!(
            "topic absent-out does not exist on {b}: what goes there waits in memory until it is \
         created (create it, or run again with --create-topics)"
        )),
        "{err:?}"
    );
    let (code, _, stderr) = run(&[
        "produce",
        "-b",
        b,
        "-t",
        "absent",
        "--count",
        "40",
        "--create-topics",
        "--partitions",
        "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "created topic absent on {b} (2 partitions, the broker's default replication)\n"
        )),
        "{stderr}"
    );
    score.wait_for("the topic seen", Duration::from_secs(15), |_, err| {
        err.iter().any(|l| l == "topic absent exists now")
    });
    score.signal("TERM");
    assert_eq!(score.wait(Duration::from_secs(10)).code(), Some(0));
    let (code, _, stderr) = run(&[
        "score",
        "-b",
        b,
        "-t",
        "absent",
        "--output-topic",
        "absent-out",
        "-g",
        "second",
        "--create-topics",
        "--count",
        "40",
        "-q",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "created topic absent-out on {b} (3 partitions, the broker's default replication)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("done: scored 40  bad 0  delivery errors 0"),
        "{stderr}"
    );
    assert_eq!(
        common::published_ids(b, "absent-out", 40, Duration::from_secs(90)).len(),
        40
    );
}

#[test]
fn apache_kafka_score_piped_to_head_stops_and_commits() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "50", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("score.err");
    let started = Instant::now();
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "{} score -b {b} 2>{} | head -n 3; echo \"score=${{PIPESTATUS[0]}}\"",
                common::bin(),
                log.display()
            ),
        ])
        .current_dir(common::root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[3], "score=0");
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = std::fs::read_to_string(&log).unwrap();
    let handled: u64 = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("done: scored ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{err}"));
    assert!((3..=50).contains(&handled), "{err}");
    // What it handled was committed: the group's next run scores exactly the rest.
    let mut next = Child::spawn(&["score", "-b", b, "-q"]);
    next.wait_for("the rest scored", Duration::from_secs(30), |_, err| {
        err.iter()
            .any(|l| l.starts_with("assigned partitions: [0, 1, 2]"))
    });
    std::thread::sleep(Duration::from_secs(3));
    next.signal("TERM");
    assert_eq!(next.wait(Duration::from_secs(10)).code(), Some(0));
    let done = next.stderr_lines();
    assert!(
        done.contains(&format!(
            "done: scored {}  bad 0  delivery errors 0",
            50 - handled
        )),
        "{done:?}"
    );
}

#[test]
fn apache_kafka_paused_10_s_costs_no_cpu_and_loses_nothing() {
    let kafka = ApacheKafka::start(&[]);
    common::a_paused_broker_costs_no_cpu_and_loses_nothing(&kafka.address, kafka.broker_pid(), &[]);
}

#[test]
fn apache_kafka_a_watching_dashboard_names_each_member_and_its_partitions() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.clone();
    let args = ["score", "-b", &b, "-g", "watched", "-q"];
    let a = Child::spawn(&args);
    let c = Child::spawn(&args);
    common::wait_for_split(&a, &c, 3);
    let owned = |child: &Child| {
        let parts: Vec<String> = common::assignment(child)
            .unwrap()
            .iter()
            .map(i32::to_string)
            .collect();
        format!(
            "salary-stream-{}@127.0.0.1 {}",
            child.child.id(),
            parts.join(",")
        )
    };
    let (t, _dir) = common::tmux::start_dashboard_sized(
        "watch-kafka",
        "",
        &format!("-b {b} --watch-group watched"),
        (160, 40),
    );
    let screen = t.wait_for("both members named with their partitions", |s| {
        s.contains(&owned(&a)) && s.contains(&owned(&c))
    });
    assert!(
        screen.contains("group watched (watching, not joined)"),
        "{screen}"
    );
    t.keys(&["q"]);
    common::tmux::assert_restored(&t);
}

/// Runs kcat with `input` on stdin; returns its stdout.
fn kcat(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("kcat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat (apt-get install -y kcat)");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(bytes) = input {
        stdin.write_all(bytes).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn apache_kafka_kcat_sends_the_bad_record_corpus_and_reads_each_reason() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    let mut corpus: Vec<Vec<u8>> = [
        "   ",
        "[1,2]",
        "\"just a string\"",
        "{\"years_experience\": 1, \"years_experience\": 2}",
        "{\"x\": 1}",
        "{\"years_experience\": \"ten\"}",
        "{\"years_experience\": true}",
        "{\"years_experience\": -1}",
        "{\"years_experience\": 1e999}",
        "{\"years_experience\": 5, \"id\": 1.5}",
        "{\"years_experience\": 5, \"ts_ms\": \"x\"}",
        "{\"years_experience\": 5, \"ts_ms\": -5}",
        "{\"years_experience\": 5, \"salary\": \"x\"}",
        "not json at all",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    corpus.push(b"{\"years_experience\": \xff}".to_vec());
    corpus.push(format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000)).into_bytes());
    let mut input = Vec::new();
    for record in &corpus {
        input.extend_from_slice(record);
        input.push(b'\n');
    }
    kcat(&["-b", b, "-P", "-t", "experience-events"], Some(&input));
    let n = corpus.len().to_string();
    let (code, _, stderr) = run(&["score", "-b", b, "--count", &n, "-q"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("done: scored 0  bad {n}  delivery errors 0")),
        "{stderr}"
    );
    let dead = kcat(
        &[
            "-b",
            b,
            "-C",
            "-t",
            "experience-events.dlq",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%h\t%s\n",
        ],
        None,
    );
    let mut reasons = std::collections::BTreeMap::new();
    for line in dead.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let tab = line
            .iter()
            .position(|&c| c == b'\t')
            .expect("headers, a tab, the value");
        let headers = String::from_utf8_lossy(&line[..tab]).into_owned();
        let error = headers
            .split(',')
            .find_map(|h| h.strip_prefix("error="))
            .expect("an error header")
            .to_owned();
        reasons.insert(line[tab + 1..].to_vec(), error);
    }
    assert_eq!(reasons.len(), corpus.len());
    for record in &corpus {
        let want = salary_stream::formats::json::decode(Some(record))
            .expect_err("a bad record")
            .to_string();
        // kcat prints the header list with commas between headers, so a reason holding a comma
        // is cut there; compare up to it.
        let want = want.split(',').next().unwrap_or_default();
        assert_eq!(
            reasons.get(record).map(String::as_str),
            Some(want),
            "{}",
            String::from_utf8_lossy(&record[..record.len().min(60)])
        );
    }
}

#[test]
fn apache_kafka_the_dashboard_in_tmux_scores_its_own_stream() {
    let kafka = ApacheKafka::start(&[]);
    let (t, _dir) = common::tmux::start_dashboard_with(
        "dash-kafka",
        "",
        &format!("-b {} --produce --rate 100", kafka.address),
    );
    t.wait_for("five scored events", |s| salary_rows(s).len() >= 5);
    // Read as the last frame left them, the producer stopped: a capture while events flow can
    // pair the left of a row being rewritten with the right of the one it replaces (tmux 3.3
    // shows a frame half written).
    t.keys(&["p"]);
    let screen = t.wait_for_settled("five events, the producer stopped", |s| {
        s.contains("producer off") && salary_rows(s).len() >= 5
    });
    let mut checked = 0;
    for (years, predicted) in salary_rows(&screen) {
        assert_eq!(
            format!("{predicted:.2}"),
            format!("{:.2}", exact_prediction(years)),
            "{screen}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "{screen}");
    assert!(
        screen.contains(&format!("broker {} (up)", kafka.address)),
        "{screen}"
    );
    t.keys(&["q"]);
    common::tmux::assert_restored(&t);
}

/// Waits (up to 120 s) until predictions of `want` different ids are committed; else fails
/// with what the scorer said.
fn wait_for_committed_ids(address: &str, want: usize, scorer: &Child) {
    let mut ids = BTreeSet::new();
    common::read_committed_until(
        address,
        "salary-predictions",
        Duration::from_secs(120),
        |r| {
            let v = json(std::str::from_utf8(r.value.as_deref().unwrap()).unwrap());
            ids.insert(v["id"].as_u64().unwrap());
            ids.len() >= want
        },
    );
    assert_eq!(
        ids.len(),
        want,
        "committed predictions of {want} ids; the scorer's last lines: {:?}",
        scorer
            .stderr_lines()
            .iter()
            .rev()
            .take(40)
            .rev()
            .collect::<Vec<_>>()
    );
}

#[test]
fn apache_kafka_exactly_once_through_a_sigkill_and_a_restart() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    // Input still flows when the scorer is killed, so it dies with a transaction open.
    let mut produce = Child::spawn(&["produce", "-b", b, "--count", "5000", "--rate", "1000"]);
    // The killed member's session ends soon, so its partitions come back to the restarted one.
    let args = [
        "score",
        "-b",
        b,
        "-q",
        "--exactly-once",
        "--instance-id",
        "one",
        "-X",
        "session.timeout.ms=6000",
        "-X",
        "heartbeat.interval.ms=1000",
    ];
    let mut first = Child::spawn(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while scored(&first) < 500 {
        assert!(Instant::now() < deadline, "{:?}", first.stderr_lines());
        std::thread::sleep(Duration::from_millis(10));
    }
    first.child.kill().unwrap();
    first.wait(Duration::from_secs(10));
    assert!(
        first
            .stderr_lines()
            .iter()
            .any(|l| l.contains("exactly-once every 0.1 s: ")),
        "{:?}",
        first.stderr_lines()
    );
    let scored_by_first = scored(&first);
    assert!(
        scored_by_first < 5000,
        "killed mid-stream: {scored_by_first}"
    );
    let mut second = Child::spawn(&args);
    assert_eq!(produce.wait(Duration::from_secs(60)).code(), Some(0));
    wait_for_committed_ids(b, 5000, &second);
    second.signal("TERM");
    assert_eq!(
        second.wait(Duration::from_secs(15)).code(),
        Some(0),
        "{:?}",
        second.stderr_lines()
    );
    exactly_once_each(
        &committed_id_counts(b, "salary-predictions", Duration::from_secs(60)),
        5000,
    );
}

#[test]
fn apache_kafka_exactly_once_in_a_group_of_two_when_one_is_sigkilled() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    let member = |id: &str| {
        Child::spawn(&[
            "score",
            "-b",
            b,
            "-q",
            "--exactly-once",
            "--instance-id",
            id,
            "-X",
            "session.timeout.ms=3000",
            "-X",
            "heartbeat.interval.ms=500",
        ])
    };
    let mut a = member("a");
    let mut c = member("c");
    common::wait_for_split(&a, &c, 3);
    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "2000", "--rate", "2000"]);
    assert_eq!(code, 0, "{stderr}");
    c.child.kill().unwrap();
    c.wait(Duration::from_secs(10));
    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "1000", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    // Ids of the second run start at 0 again: count each of the 3,000 records by its offset.
    let key = |r: &common::Read| {
        let v = json(std::str::from_utf8(r.value.as_deref().unwrap()).unwrap());
        (v["partition"].as_u64().unwrap() << 32) | v["offset"].as_u64().unwrap()
    };
    let mut seen = BTreeSet::new();
    common::read_committed_until(b, "salary-predictions", Duration::from_secs(120), |r| {
        seen.insert(key(r));
        seen.len() >= 3000
    });
    assert_eq!(seen.len(), 3000, "every input record scored");
    a.signal("TERM");
    assert_eq!(a.wait(Duration::from_secs(15)).code(), Some(0));
    let mut counts = std::collections::BTreeMap::new();
    for r in common::read_committed_to_end(b, "salary-predictions", Duration::from_secs(60)) {
        *counts.entry(key(&r)).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 3000, "every input record scored");
    assert!(counts.values().all(|c| *c == 1), "none twice");
}

/// One broker restarted under an exactly-once scorer. Its group coordinator goes away with it,
/// and librdkafka's send_offsets_to_transaction can then wait forever (issues #5511, #5456): the
/// scorer's watch ends such a run with exit status 75, and a supervisor starts it again with the
/// same instance id, which fences the stuck one and resumes. Some runs meet it, under load.
#[test]
fn apache_kafka_exactly_once_through_a_broker_restart() {
    let data = std::env::temp_dir().join(format!("salary-stream-restart-{}", std::process::id()));
    let data_arg = data.to_str().unwrap().to_owned();
    let kafka = ApacheKafka::start_with(&["--data", &data_arg], &[]);
    let b = kafka.address.clone();
    // Input flows before, during and after the restart; the scorer holds a transaction open
    // every 0.1 s, so the broker goes away with records in one. The input producer is
    // idempotent (the default): a plain one may write a record twice when its acknowledgement
    // is lost in the restart, and the twice-written input would rightly be scored twice.
    let mut produce = Child::spawn(&["produce", "-b", &b, "--count", "6000", "--rate", "500"]);
    let mut score = Supervised::start(&b, "restarted");
    let deadline = Instant::now() + Duration::from_secs(60);
    while scored(&score.scorer) < 1500 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            score.scorer.stderr_lines()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(kafka);
    let kafka = ApacheKafka::start_with(&["--data", &data_arg], &[]);
    assert_eq!(kafka.address, b, "the broker came back on its port");
    assert_eq!(
        produce.wait(Duration::from_secs(120)).code(),
        Some(0),
        "{:?}",
        produce.stderr_lines()
    );
    // A restart that outlasts the records' delivery timeout fails the open transaction: it is
    // aborted and done again, and the run still ends 0 (`until_ids` asserts it).
    let counts = score.until_ids(6000, Duration::from_secs(120));
    score.assert_stuck_runs_said_why();
    // Each id went in once (the producer's retries wrote no duplicate) ...
    let mut inputs = std::collections::BTreeMap::new();
    for r in common::read_committed_to_end(&b, "experience-events", Duration::from_secs(60)) {
        let v = json(std::str::from_utf8(r.value.as_deref().unwrap()).unwrap());
        *inputs.entry(v["id"].as_u64().unwrap()).or_insert(0) += 1;
    }
    exactly_once_each(&inputs, 6000);
    // ... and came out once.
    exactly_once_each(&counts, 6000);
    drop(kafka);
    let _ = std::fs::remove_dir_all(&data);
}

/// Waits for `score` to stop on its own after three aborted transactions in a row, saying so.
fn assert_stopped_after_three_aborts(score: &mut Child) {
    let status = score.wait(Duration::from_secs(90));
    let stderr = score.stderr_lines();
    assert_eq!(status.code(), Some(1), "{stderr:?}");
    let last = stderr.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with(
            "salary-stream: exactly-once: 3 transactions in a row could not commit and were \
             aborted; the last: "
        ),
        "{last}"
    );
}

/// Makes `topic` refuse record batches over 1,000 bytes.
fn refuse_large_records(b: &str, topic: &str) {
    ApacheKafka::tool(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            b,
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--add-config",
            "max.message.bytes=1000",
        ],
        None,
    );
}

/// An event whose prediction, which carries its id, is larger than an output topic that refuses
/// records over 1,000 bytes takes: its transaction can never commit. The id is 1,500 characters
/// drawn from 64 (xorshift, a fixed seed): the scorer writes its predictions lz4-compressed, and
/// an id of one repeated character would compress to a few bytes and be taken.
fn an_event_with_a_long_id() -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let id: String = (0..1500)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(ALPHABET[(x % 64) as usize])
        })
        .collect();
    Some(format!(r#"{{"id":"{id}","years_experience":2.5}}"#).into_bytes())
}

/// Exactly-once from `-o end`: a partition that started at the end and whose first transaction
/// is aborted goes back to where it started, not to the end as it is by then (past the aborted
/// transaction's records, which would never be scored). So the refused record comes round again:
/// three aborts in a row, and the scorer stops.
#[test]
fn apache_kafka_exactly_once_from_the_end_rewinds_to_where_it_started() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    refuse_large_records(b, "salary-predictions");
    let events = |ids: std::ops::Range<u64>| -> Vec<Option<Vec<u8>>> {
        ids.map(|i| Some(format!(r#"{{"id":{i},"years_experience":2.5}}"#).into_bytes()))
            .collect()
    };
    // Before the start: `-o end` leaves them.
    common::produce_all(b, "experience-events", &events(0..50));
    let mut score = Child::spawn(&[
        "score",
        "-b",
        b,
        "-q",
        "--exactly-once",
        "-o",
        "end",
        "-g",
        "from-the-end",
    ]);
    score.wait_for("its partitions", Duration::from_secs(60), |_, err| {
        err.iter().any(|l| l.starts_with("assigned partitions: ["))
    });
    let mut after = events(1000..1010);
    // Its prediction is larger than the output topic takes.
    after.push(an_event_with_a_long_id());
    // One key: one partition and one batch, so that the good records and the refused one are
    // handled in the same transaction (on three partitions a commit could fall between them).
    common::produce_all_with_key(b, "experience-events", "one", &after);
    assert_stopped_after_three_aborts(&mut score);
    // Nothing committed: not the records before the start, not those of the aborted
    // transactions.
    assert_eq!(
        committed_id_counts(b, "salary-predictions", Duration::from_secs(60)),
        std::collections::BTreeMap::new()
    );
}

/// A prediction the broker refuses (larger than the output topic takes) fails its transaction:
/// the transaction is aborted and the consumer rewound, so nothing of it is seen; the same record
/// fails again, and after three aborts in a row the scorer stops with the reason. What was
/// committed before stays exactly once.
#[test]
fn apache_kafka_exactly_once_aborts_and_rewinds_a_transaction_the_broker_refuses() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    let good = |from: u64| -> Vec<Option<Vec<u8>>> {
        (from..from + 300)
            .map(|i| Some(format!(r#"{{"id":{i},"years_experience":2.5}}"#).into_bytes()))
            .collect()
    };
    common::produce_all(b, "experience-events", &good(0));
    let mut score = Child::spawn(&["score", "-b", b, "-q", "--exactly-once"]);
    wait_for_committed_ids(b, 300, &score);
    // Only now: the limit is on a whole batch, which the 300 predictions would pass.
    refuse_large_records(b, "salary-predictions");
    // Its prediction is larger than the output topic takes; and a dead letter beside it.
    common::produce_all_with_key(
        b,
        "experience-events",
        "one",
        &[Some(b"not json".to_vec()), an_event_with_a_long_id()],
    );
    assert_stopped_after_three_aborts(&mut score);
    // Nothing of the aborted transactions is visible, and the 300 are there once each.
    exactly_once_each(
        &committed_id_counts(b, "salary-predictions", Duration::from_secs(60)),
        300,
    );
    let dead: Vec<_> =
        common::read_committed_to_end(b, "experience-events.dlq", Duration::from_secs(30));
    assert_eq!(
        dead.len(),
        0,
        "the dead letter of the aborted transactions never became visible"
    );
}

/// A dead letter larger than the dead-letter topic takes is stored cut to fit, with a header
/// giving its original length: scoring goes on, exactly once, and counts it once.
#[test]
fn apache_kafka_a_dead_letter_larger_than_its_topic_takes_is_stored_cut() {
    let kafka = ApacheKafka::start(&[]);
    let b = kafka.address.as_str();
    refuse_large_records(b, "experience-events.dlq");
    let mut events: Vec<Option<Vec<u8>>> = (0..300)
        .map(|i| Some(format!(r#"{{"id":{i},"years_experience":2.5}}"#).into_bytes()))
        .collect();
    // Not JSON, and larger than the dead-letter topic takes; amid the good ones, on their
    // partition, so in their transaction.
    events.insert(150, Some(vec![b'x'; 1500]));
    common::produce_all_with_key(b, "experience-events", "one", &events);
    let (code, _, stderr) = run(&["score", "-b", b, "-q", "--exactly-once", "--count", "301"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().find(|l| l.starts_with("done: ")),
        Some("done: scored 300  bad 1  delivery errors 0"),
        "{stderr}"
    );
    exactly_once_each(
        &committed_id_counts(b, "salary-predictions", Duration::from_secs(60)),
        300,
    );
    let dead = common::read_committed_to_end(b, "experience-events.dlq", Duration::from_secs(30));
    assert_eq!(dead.len(), 1);
    let value = dead[0].value.clone().unwrap_or_default();
    assert_eq!(dead[0].headers["truncated"], "1500");
    assert!(
        !value.is_empty() && value.len() < 1000 && value.iter().all(|&b| b == b'x'),
        "{} bytes",
        value.len()
    );
    assert!(dead[0].headers["error"].starts_with("not JSON: "));
}

/// Predictions reach Apache Kafka in lz4 batches (its own DumpLogSegments reads the codec off
/// the log): its cluster id is not librdkafka's mock cluster's, for which the scorer writes them
/// uncompressed (tests/headless.rs has `salary-stream broker` told apart).
#[test]
fn apache_kafka_gets_lz4_predictions_and_is_not_taken_for_the_mock_cluster() {
    use salary_stream::kafka::config::KafkaOptions;
    use salary_stream::kafka::mock_cluster;

    let data = tempfile::tempdir().expect("tempdir");
    let data_arg = data.path().to_str().unwrap().to_owned();
    let kafka = ApacheKafka::start_with(&["--data", &data_arg], &[]);
    let b = kafka.address.as_str();
    let id = mock_cluster::cluster_id(b).expect("Apache Kafka names its cluster");
    assert!(!id.starts_with("mockCluster"), "{id}");
    assert!(!mock_cluster::serves(&KafkaOptions::brokers(b)));

    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "300", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&["score", "-b", b, "--count", "300"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 300, "{stderr}");
    let logs: Vec<String> = walk(data.path())
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "log")
                && p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|d| d.to_string_lossy().starts_with("salary-predictions-"))
        })
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        !logs.is_empty(),
        "no log of salary-predictions under {data:?}"
    );
    let mut args = vec!["--files"];
    let files = logs.join(",");
    args.push(&files);
    let dump = ApacheKafka::tool("kafka.tools.DumpLogSegments", &args, None);
    let batches: Vec<&str> = dump
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect();
    assert!(!batches.is_empty(), "{dump}");
    let records: usize = batches
        .iter()
        .map(|l| field(l, "count:").parse::<usize>().unwrap())
        .sum();
    assert_eq!(records, 300, "{dump}");
    for batch in &batches {
        assert_eq!(field(batch, "compresscodec:"), "lz4", "{batch}");
    }
    drop(kafka);
}

/// The word after `name` in a DumpLogSegments line (`... count: 7 ... compresscodec: lz4 ...`).
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let (_, rest) = line
        .split_once(name)
        .unwrap_or_else(|| panic!("{name} in {line}"));
    rest.split_whitespace().next().unwrap_or_default()
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
