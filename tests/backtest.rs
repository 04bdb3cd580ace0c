//! `backtest` and `-o` end to end: known labeled records with known timestamps on the embedded
//! broker (as a process) and on tansu, every figure checked against one computed here from the
//! same records, and every offset spec against the window it must give.

mod common;

use std::time::Duration;

use common::{json, run, Tansu};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use salary_stream::model::Artifact;

const TOPIC: &str = "experience-events";
/// The first record's timestamp; record `i` of a partition is `T0 + 1000 i`.
const T0: i64 = 1_700_000_000_000;
/// Records per partition.
const PER_PARTITION: i64 = 12;

/// One record of the test topic.
#[derive(Debug, Clone)]
struct Sent {
    partition: i32,
    offset: i64,
    timestamp: i64,
    value: Vec<u8>,
}

/// Two partitions of 12 records each: years rising by 0.7, salaries 20% above the serving
/// model's line with a fixed wobble, every third record unlabeled, and one bad record.
fn records() -> Vec<Sent> {
    let serving = serving();
    let mut out = Vec::new();
    for partition in 0..2 {
        for offset in 0..PER_PARTITION {
            let i = offset as f64 + 12.0 * partition as f64;
            let years = 1.0 + 0.7 * i;
            let wobble = [-2500.0, 1200.0, 3100.0, -800.0][offset as usize % 4];
            let salary = (serving.intercept() + serving.slope() * years) * 1.2 + wobble;
            let value = if partition == 1 && offset == 5 {
                "not json".to_owned()
            } else if offset % 3 == 2 {
                format!(r#"{{"id": {i}, "years_experience": {years}}}"#)
            } else {
                format!(r#"{{"id": {i}, "years_experience": {years}, "salary": {salary}}}"#)
            };
            out.push(Sent {
                partition,
                offset,
                timestamp: T0 + 1000 * offset,
                value: value.into_bytes(),
            });
        }
    }
    out
}

/// Produces `records` one at a time (one record a batch, which tansu needs), each with its own
/// partition and timestamp.
fn produce(bootstrap: &str, records: &[Sent]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for r in records {
        producer
            .send(
                BaseRecord::<(), [u8]>::to(TOPIC)
                    .partition(r.partition)
                    .timestamp(r.timestamp)
                    .payload(&r.value),
            )
            .map_err(|(e, _)| e)
            .expect("send");
        producer.flush(Duration::from_secs(30)).expect("flush");
    }
}

fn serving() -> Artifact {
    Artifact::load(&common::root().join("assets/model.json")).unwrap()
}

/// A candidate fitted to salaries 20% higher: the serving line times 1.2.
fn candidate(dir: &std::path::Path) -> (Artifact, std::path::PathBuf) {
    let mut a = serving();
    let line = a.linear_mut().unwrap();
    line.coefficients[0] *= 1.2;
    line.intercept *= 1.2;
    a.version = "c4ndid8e".into();
    let path = dir.join("candidate.json");
    a.save(&path).unwrap();
    (a, path)
}

/// The figures one model must get over `window`, worked out here independently of the crate:
/// labeled records in partition order, then offset order.
#[derive(Debug, PartialEq)]
struct Expected {
    records: u64,
    labeled: u64,
    mae: Option<f64>,
    rmse: Option<f64>,
    r2: Option<f64>,
    wins: u64,
}

fn expected(sent: &[Sent], window: &[(i32, i64, i64)], models: &[&Artifact]) -> Vec<Expected> {
    let inside: Vec<&Sent> = window
        .iter()
        .flat_map(|&(p, start, end)| {
            sent.iter()
                .filter(move |r| r.partition == p && r.offset >= start && r.offset < end)
        })
        .collect();
    let decoded: Vec<serde_json::Value> = inside
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.value).ok())
        .collect();
    let labeled: Vec<(f64, f64)> = decoded
        .iter()
        .filter(|v| v.get("salary").is_some())
        .map(|v| {
            (
                v["years_experience"].as_f64().unwrap(),
                v["salary"].as_f64().unwrap(),
            )
        })
        .collect();
    let predict = |a: &Artifact, years: f64| a.intercept() + a.slope() * years;
    let mut wins = vec![0; models.len()];
    for &(years, label) in &labeled {
        let errors: Vec<f64> = models
            .iter()
            .map(|a| (label - predict(a, years)).abs())
            .collect();
        let best = errors.iter().copied().fold(f64::INFINITY, f64::min);
        let at_best: Vec<usize> = (0..errors.len()).filter(|&m| errors[m] == best).collect();
        if at_best.len() == 1 {
            wins[at_best[0]] += 1;
        }
    }
    let n = labeled.len() as f64;
    let mut mean = 0.0;
    for &(_, y) in &labeled {
        mean += y;
    }
    mean /= n;
    models
        .iter()
        .zip(wins)
        .map(|(a, wins)| {
            let (mut abs, mut sq, mut tot) = (0.0, 0.0, 0.0);
            for &(years, y) in &labeled {
                let e = y - predict(a, years);
                abs += e.abs();
                sq += e * e;
                tot += (y - mean) * (y - mean);
            }
            let some = !labeled.is_empty();
            Expected {
                records: decoded.len() as u64,
                labeled: labeled.len() as u64,
                mae: some.then(|| abs / n),
                rmse: some.then(|| (sq / n).sqrt()),
                r2: (some && tot > 0.0).then(|| 1.0 - sq / tot),
                wins,
            }
        })
        .collect()
}

/// Runs `backtest --json` with `args`, and checks the window it read and every model's figures.
fn check(bootstrap: &str, args: &[&str], window: &[(i32, i64, i64)]) {
    let dir = tempfile::tempdir().unwrap();
    let (cand, cand_path) = candidate(dir.path());
    let cand_path = cand_path.to_str().unwrap();
    let mut all = vec![
        "backtest",
        "-b",
        bootstrap,
        "--candidate",
        cand_path,
        "--json",
    ];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&all);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object: {stdout}");
    let report = json(lines[0]);
    let got_window: Vec<(i32, i64, i64)> = report["window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["partition"].as_i64().unwrap() as i32,
                w["start"].as_i64().unwrap(),
                w["end"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_window, window, "{args:?}");
    let sent = records();
    let inside = |r: &&Sent| {
        window
            .iter()
            .any(|&(p, s, e)| r.partition == p && r.offset >= s && r.offset < e)
    };
    let in_window: Vec<&Sent> = sent.iter().filter(inside).collect();
    let bad = in_window
        .iter()
        .filter(|r| serde_json::from_slice::<serde_json::Value>(&r.value).is_err())
        .count();
    assert_eq!(report["records"], in_window.len() as u64, "{args:?}");
    assert_eq!(report["bad"], bad as u64, "{args:?}");
    assert_eq!(report["topic"], TOPIC);
    let serving = serving();
    let want = expected(&sent, window, &[&serving, &cand]);
    let models = report["models"].as_array().unwrap();
    let got: Vec<Expected> = models
        .iter()
        .map(|m| Expected {
            records: m["records"].as_u64().unwrap(),
            labeled: m["labeled"].as_u64().unwrap(),
            mae: m["mae"].as_f64(),
            rmse: m["rmse"].as_f64(),
            r2: m["r2"].as_f64(),
            wins: m["wins"].as_u64().unwrap(),
        })
        .collect();
    assert_eq!(got, want, "{args:?}");
    assert_eq!(
        (
            &models[0]["role"],
            &models[0]["version"],
            &models[0]["file"]
        ),
        (
            &serde_json::json!("serving"),
            &serde_json::json!(serving.version),
            &serde_json::json!("assets/model.json")
        )
    );
    assert_eq!(
        (
            &models[1]["role"],
            &models[1]["version"],
            &models[1]["file"]
        ),
        (
            &serde_json::json!("candidate 1"),
            &serde_json::json!("c4ndid8e"),
            &serde_json::json!(cand_path)
        )
    );
}

/// The embedded broker as a process, with the test records on two partitions.
fn embedded() -> (common::Child, String) {
    let (broker, address) = common::broker_process(2);
    produce(&address, &records());
    (broker, address)
}

#[test]
fn backtest_figures_equal_ones_computed_from_the_same_records_for_every_offset_spec() {
    let (_broker, b) = embedded();
    let all = [(0, 0, 12), (1, 0, 12)];
    check(&b, &[], &all);
    check(&b, &["-o", "beginning"], &all);
    check(&b, &["-o", "-4"], &[(0, 8, 12), (1, 8, 12)]);
    check(&b, &["--offset=-30"], &all);
    check(&b, &["-o", "5"], &[(0, 5, 12), (1, 5, 12)]);
    check(&b, &["-o", "100"], &[(0, 12, 12), (1, 12, 12)]);
    let s7 = format!("s@{}", T0 + 7000);
    check(&b, &["-o", &s7], &[(0, 7, 12), (1, 7, 12)]);
    let s_late = format!("s@{}", T0 + 500_000);
    check(&b, &["-o", &s_late], &[(0, 12, 12), (1, 12, 12)]);
    let e3 = format!("e@{}", T0 + 3000);
    check(&b, &["-o", &e3], &[(0, 0, 3), (1, 0, 3)]);
    check(
        &b,
        &["-o", "2", "-o", &format!("e@{}", T0 + 6500)],
        &[(0, 2, 7), (1, 2, 7)],
    );
    // 2023-11-14T22:13:20Z is T0.
    check(
        &b,
        &["--until", "2023-11-14T22:13:29Z"],
        &[(0, 0, 9), (1, 0, 9)],
    );
    check(
        &b,
        &["-o", &s7, "--until", "2023-11-14T23:13:30+01:00"],
        &[(0, 7, 10), (1, 7, 10)],
    );
    check(&b, &["-o", "end"], &[(0, 12, 12), (1, 12, 12)]);
}

#[test]
fn the_table_prints_the_same_figures_and_an_empty_window_is_zeros_not_an_error() {
    let (_broker, b) = embedded();
    let dir = tempfile::tempdir().unwrap();
    let (cand, cand_path) = candidate(dir.path());
    let cand_path = cand_path.to_str().unwrap();
    let serving = serving();
    let (code, stdout, stderr) = run(&["backtest", "-b", &b, "-o", "-6", "--candidate", cand_path]);
    assert_eq!(code, 0, "{stderr}");
    let want = expected(&records(), &[(0, 6, 12), (1, 6, 12)], &[&serving, &cand]);
    let f =
        |v: Option<f64>, decimals: usize| v.map_or("-".to_owned(), |v| format!("{v:.decimals$}"));
    let rows: Vec<[String; 9]> = [
        ("serving", &serving.version, &want[0], "assets/model.json"),
        ("candidate 1", &cand.version, &want[1], cand_path),
    ]
    .iter()
    .map(|(role, version, e, file)| {
        [
            (*role).to_owned(),
            (*version).clone(),
            e.records.to_string(),
            e.labeled.to_string(),
            f(e.mae, 0),
            f(e.rmse, 0),
            f(e.r2, 3),
            e.wins.to_string(),
            (*file).to_owned(),
        ]
    })
    .collect();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "topic experience-events  partitions 2  from -6  to the high watermarks at start",
            "offsets p0 6..12  p1 6..12  records 12  bad 0",
        ]
    );
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["model", "version", "records", "labeled", "MAE", "RMSE", "R²", "wins", "file"]
    );
    for (line, row) in lines[3..].iter().zip(&rows) {
        let mut want: Vec<&str> = Vec::new();
        for cell in row {
            want.extend(cell.split_whitespace());
        }
        assert_eq!(line.split_whitespace().collect::<Vec<_>>(), want);
    }
    // The candidate fits the 20% higher salaries: it wins most labeled records.
    assert!(want[1].wins > want[0].wins, "{want:?}");

    let (code, stdout, stderr) = run(&["backtest", "-b", &b, "-o", "end"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "topic experience-events  partitions 2  from end  to the high watermarks at start\n\
             offsets p0 12..12  p1 12..12  records 0  bad 0\n\
             model    version   records  labeled  MAE  RMSE  R²  wins  file\n\
             serving  {}        0        0    -     -   -     0  assets/model.json\n",
            serving.version
        )
    );
}

#[test]
fn bad_flags_specs_and_files_are_one_line_and_a_non_zero_exit() {
    let (code, _, stderr) = run(&["backtest", "-b", "127.0.0.1:1", "-o", "yesterday"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(
            "error: invalid value 'yesterday' for '--offset <SPEC>': invalid offset \
             \"yesterday\": expected beginning, end, N, -N, s@TIMESTAMP_MS or e@TIMESTAMP_MS\n"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[
        "backtest",
        "-b",
        "127.0.0.1:1",
        "--until",
        "2026-11-31T00:00:00Z",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid time \"2026-11-31T00:00:00Z\": no such date"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[
        "backtest",
        "-b",
        "127.0.0.1:1",
        "--candidate",
        "/nonexistent.json",
    ]);
    assert_eq!((code, stderr.lines().count()), (1, 1), "{stderr}");
    assert_eq!(
        stderr,
        "salary-stream: --candidate 1: cannot read model artifact /nonexistent.json: No such \
         file or directory (os error 2)\n"
    );
    let (code, _, stderr) = run(&["backtest", "-b", "127.0.0.1:1", "-o", "1", "-o", "-1"]);
    assert_eq!(code, 1);
    assert_eq!(stderr, "salary-stream: -o: give one start, got 1 and -1\n");
    let (code, _, stderr) = run(&["score", "-b", "127.0.0.1:1", "-o", "e@5"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("e@5 is an end, not where a group starts"),
        "{stderr}"
    );
}

/// The offsets a `score` run printed (NDJSON on stdout).
fn offsets(stdout: &str) -> Vec<(i64, i64)> {
    stdout
        .lines()
        .map(|l| {
            let v = json(l);
            (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn score_o_starts_a_new_group_where_it_says_and_a_committed_offset_wins() {
    let (_broker, b) = common::broker_process(1);
    let event = |i: usize| Some(format!(r#"{{"id": {i}, "years_experience": 3.5}}"#).into_bytes());
    common::produce_all(&b, TOPIC, &(0..10).map(event).collect::<Vec<_>>());
    let score = |group: &str, spec: &str, count: &str| {
        let (code, stdout, stderr) = run(&[
            "score",
            "-b",
            &b,
            "-g",
            group,
            "-o",
            spec,
            "--count",
            count,
            "--no-output",
        ]);
        assert_eq!(code, 0, "{stderr}");
        offsets(&stdout)
    };
    assert_eq!(score("at-six", "6", "4"), [(0, 6), (0, 7), (0, 8), (0, 9)]);
    assert_eq!(score("last-three", "-3", "3"), [(0, 7), (0, 8), (0, 9)]);
    // -o also wins over -X auto.offset.reset.
    let (code, stdout, stderr) = run(&[
        "score",
        "-b",
        &b,
        "-g",
        "over-reset",
        "-o",
        "8",
        "-X",
        "auto.offset.reset=latest",
        "--count",
        "2",
        "--no-output",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(offsets(&stdout), [(0, 8), (0, 9)]);
    // A group with a committed offset goes on from there, whatever -o says.
    common::produce_all(&b, TOPIC, &(10..12).map(event).collect::<Vec<_>>());
    assert_eq!(score("at-six", "0", "2"), [(0, 10), (0, 11)]);
}

#[test]
fn tansu_backtest_honours_offset_specs() {
    let tansu = Tansu::start(&[(TOPIC, 2)]);
    let b = tansu.address.as_str();
    produce(b, &records());
    check(b, &[], &[(0, 0, 12), (1, 0, 12)]);
    check(b, &["-o", "-4"], &[(0, 8, 12), (1, 8, 12)]);
    check(
        b,
        &["-o", "3", "-o", &format!("e@{}", T0 + 10_000)],
        &[(0, 3, 10), (1, 3, 10)],
    );
    check(
        b,
        &["-o", &format!("s@{}", T0 + 7000)],
        &[(0, 7, 12), (1, 7, 12)],
    );
}

/// Apache Kafka looks offsets up by time itself: `s@` lands exactly where the broker says, in
/// `backtest` and where `score -o` starts a new group.
#[test]
fn apache_kafka_backtest_and_score_o_start_at_a_time() {
    let kafka = common::ApacheKafka::start_with(&["--partitions", "2"], &[]);
    let b = kafka.address.as_str();
    produce(b, &records());
    let s7 = format!("s@{}", T0 + 7000);
    check(b, &["-o", &s7], &[(0, 7, 12), (1, 7, 12)]);
    check(
        b,
        &["-o", "-8", "--until", "2023-11-14T22:13:30Z"],
        &[(0, 4, 10), (1, 4, 10)],
    );
    let s9 = format!("s@{}", T0 + 9000);
    let (code, stdout, stderr) = run(&[
        "score",
        "-b",
        b,
        "-g",
        "from-a-time",
        "-o",
        &s9,
        "--count",
        "6",
        "--no-output",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let mut got = offsets(&stdout);
    got.sort_unstable();
    assert_eq!(got, [(0, 9), (0, 10), (0, 11), (1, 9), (1, 10), (1, 11)]);
}
