//! Against a real, independently written Kafka-compatible broker: tansu on loopback.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{json, run, Child, Tansu};

/// tansu 0.6 cannot serve a fetch that starts inside a record batch (it returns nothing), so a
/// consumer resuming at a committed offset in the middle of a batch would stall. Producing one
/// record per batch keeps every committed offset at a batch boundary; real Kafka needs no such help.
const ONE_RECORD_PER_BATCH: [&str; 2] = ["-X", "batch.num.messages=1"];

/// `produce` against tansu.
fn produce(b: &str, count: &str, rate: &str) -> Vec<String> {
    let mut args: Vec<String> = ["produce", "-b", b, "--count", count, "--rate", rate]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(ONE_RECORD_PER_BATCH.iter().map(|s| (*s).to_owned()));
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

const TOPICS: [(&str, u32); 3] = [
    ("experience-events", 4),
    ("salary-predictions", 4),
    ("experience-events.dlq", 1),
];

fn ids_of(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| json(l)["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn n_inputs_give_n_exact_outputs_and_bad_records_are_dead_lettered() {
    let tansu = Tansu::start(&TOPICS);
    let b = tansu.address.as_str();
    let (code, _, stderr) = run(&refs(&produce(b, "1000", "max")));
    assert_eq!(code, 0, "{stderr}");
    common::produce_all(
        b,
        "experience-events",
        &[Some(b"{\"years_experience\": \"ten\"}".to_vec())],
    );
    let (code, stdout, stderr) = run(&["score", "-b", b, "--count", "1001"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().find(|l| l.starts_with("done: ")),
        Some("done: scored 1000  bad 1  delivery errors 0")
    );
    let ids = ids_of(&stdout.lines().map(str::to_owned).collect::<Vec<_>>());
    assert_eq!(ids.len(), 1000);
    assert_eq!(
        ids.iter().copied().collect::<BTreeSet<_>>(),
        (0..1000).collect()
    );
    assert_eq!(
        common::missing(
            &common::published_ids(b, "salary-predictions", 1000, Duration::from_secs(60)),
            1000
        ),
        Vec::<u64>::new()
    );
    let dead = common::read_n(b, "experience-events.dlq", 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].value.as_deref(),
        Some(&b"{\"years_experience\": \"ten\"}"[..])
    );
    assert_eq!(
        dead[0].headers["error"],
        "wrong type for years_experience: string"
    );
    assert_eq!(dead[0].headers["source_topic"], "experience-events");
}

#[test]
fn a_restart_resumes_at_the_committed_offset_with_no_gap() {
    let tansu = Tansu::start(&TOPICS);
    let b = tansu.address.as_str();
    let (code, _, stderr) = run(&refs(&produce(b, "600", "max")));
    assert_eq!(code, 0, "{stderr}");
    let (code, first, stderr) = run(&["score", "-b", b, "--count", "200"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, second, stderr) = run(&["score", "-b", b, "--count", "400"]);
    assert_eq!(code, 0, "{stderr}");
    let mut ids = ids_of(&first.lines().map(str::to_owned).collect::<Vec<_>>());
    ids.extend(ids_of(
        &second.lines().map(str::to_owned).collect::<Vec<_>>(),
    ));
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..600).collect::<Vec<_>>(),
        "each id exactly once across the restart"
    );
}

/// Clean hand-over only: tansu 0.6 keeps a member that died without leaving (SIGKILL) in the group
/// after its session expires, so its partitions are never reassigned there. The SIGKILL takeover and
/// the kill-and-restart tests run against the embedded broker as a separate process (tests/headless.rs).
#[test]
fn two_scorers_split_the_partitions_and_one_hands_over_on_sigterm() {
    let tansu = Tansu::start(&TOPICS);
    let b = tansu.address.as_str();
    let scorer = || {
        Child::spawn(&[
            "score",
            "-b",
            b,
            "-g",
            "split",
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ])
    };
    let a = scorer();
    a.wait_for("a's assignment", Duration::from_secs(30), |_, err| {
        err.iter().any(|l| l == "assigned partitions: [0, 1, 2, 3]")
    });
    let mut leaving = scorer();
    common::wait_for_split(&a, &leaving, 4);
    let mut producer = Child::spawn(&refs(&produce(b, "2000", "400")));
    leaving.wait_for("b scoring", Duration::from_secs(30), |out, _| {
        out.len() >= 50
    });
    leaving.signal("TERM");
    assert!(leaving.wait(Duration::from_secs(20)).success());
    assert!(producer.wait(Duration::from_secs(60)).success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: BTreeSet<u64> = ids_of(&leaving.stdout_lines()).into_iter().collect();
    while seen.len() < 2000 && Instant::now() < deadline {
        seen.extend(ids_of(&a.stdout_lines()));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        common::missing(&seen, 2000),
        Vec::<u64>::new(),
        "every input id scored"
    );
    assert_eq!(
        common::assignment(&a),
        Some(vec![0, 1, 2, 3]),
        "the survivor owns every partition"
    );
    assert_eq!(
        common::missing(
            &common::published_ids(b, "salary-predictions", 2000, Duration::from_secs(60)),
            2000
        ),
        Vec::<u64>::new(),
        "every id published"
    );
}

#[test]
fn tansu_paused_10_s_costs_no_cpu_and_loses_nothing() {
    let tansu = Tansu::start(&TOPICS);
    common::a_paused_broker_costs_no_cpu_and_loses_nothing(
        &tansu.address,
        tansu.pid(),
        &ONE_RECORD_PER_BATCH,
    );
}

/// tansu, like many production clusters, creates no topic on demand.
#[test]
fn tansu_missing_topics_are_named_and_create_topics_makes_them() {
    let tansu = Tansu::start(&[]);
    let b = tansu.address.as_str();
    let (code, _, stderr) = run(&["produce", "-b", b, "--count", "5"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        format!(
            "salary-stream: topic experience-events does not exist on {b}: nothing was sent \
             (create it, or run again with --create-topics)"
        )
    );
    let mut score = Child::spawn(&["score", "-b", b, "-q"]);
    score.wait_for(
        "the missing topics named",
        Duration::from_secs(20),
        |_, err| {
            err.iter()
                .any(|l| l.starts_with("topic experience-events.dlq does not exist"))
        },
    );
    let err = score.stderr_lines();
    assert!(
        err.contains(&format!(
            "topic experience-events does not exist on {b}: waiting for it to be created \
             (create it, or run again with --create-topics)"
        )),
        "{err:?}"
    );
    score.signal("TERM");
    assert_eq!(score.wait(Duration::from_secs(10)).code(), Some(0));
    let mut args = produce(b, "200", "max");
    args.extend([
        "--create-topics".to_owned(),
        "--partitions".to_owned(),
        "2".to_owned(),
    ]);
    let (code, _, stderr) = run(&refs(&args));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().next().unwrap_or_default(),
        format!("created topic experience-events on {b} (2 partitions, the broker's default replication)")
    );
    let (code, stdout, stderr) = run(&["score", "-b", b, "--create-topics", "--count", "200"]);
    assert_eq!(code, 0, "{stderr}");
    for topic in [
        "salary-predictions (3 partitions",
        "experience-events.dlq (1 partition,",
    ] {
        assert!(
            stderr.contains(&format!(
                "created topic {}",
                topic.replace(" (", &format!(" on {b} ("))
            )),
            "{topic}: {stderr}"
        );
    }
    assert_eq!(stdout.lines().count(), 200);
    assert_eq!(
        common::missing(
            &common::published_ids(b, "salary-predictions", 200, Duration::from_secs(60)),
            200
        ),
        Vec::<u64>::new()
    );
}

/// tansu 0.6 answers EndTxn as unsupported: exactly-once is refused at the first commit, in one
/// line, not a hang.
#[test]
fn tansu_refuses_exactly_once_with_one_line() {
    let tansu = Tansu::start(&TOPICS);
    let b = tansu.address.as_str();
    let (code, _, stderr) = run(&refs(&produce(b, "20", "max")));
    assert_eq!(code, 0, "{stderr}");
    let started = Instant::now();
    let (code, _, stderr) = run(&["score", "-b", b, "--exactly-once", "--count", "20", "-q"]);
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("salary-stream: exactly-once: the broker does not support transactions (")
            && last.ends_with("exactly-once needs one that does, such as Apache Kafka"),
        "{last}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn tansu_refuses_exactly_once_at_start_on_an_idle_topic() {
    let tansu = Tansu::start(&TOPICS);
    let started = Instant::now();
    let (code, _, stderr) = run(&["score", "-b", &tansu.address, "--exactly-once", "-q"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        "salary-stream: exactly-once: the broker does not support transactions (it serves no \
         EndTxn); exactly-once needs one that does, such as Apache Kafka"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
