//! `--metrics`: the Prometheus endpoint, scraped by a real Prometheus server (Debian's
//! `prometheus`, started here on loopback with a 1 s scrape interval), whose own query API must
//! return exactly what was scored.

mod common;

use std::time::{Duration, Instant};

use common::Child;

/// A Prometheus server scraping `target` every second; stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
                 - job_name: salary-stream\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", common::free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={address}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (apt-get install prometheus; scripts/test does)");
        Prometheus {
            child,
            address,
            _dir: dir,
        }
    }

    /// The instant vector `query` evaluates to: `(labels, value)` per series, or `None` while
    /// the server does not answer.
    fn query(&self, query: &str) -> Option<Vec<(serde_json::Value, String)>> {
        let out = std::process::Command::new("curl")
            .args(["-sf", "--max-time", "5", "-G"])
            .arg(format!("http://{}/api/v1/query", self.address))
            .args(["--data-urlencode", &format!("query={query}")])
            .output()
            .ok()?;
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let series = answer["data"]["result"].as_array()?;
        Some(
            series
                .iter()
                .map(|s| {
                    (
                        s["metric"].clone(),
                        s["value"][1].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect(),
        )
    }

    /// Waits until `query` has a series whose value is `want`.
    fn wait_for_value(&self, query: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = self.query(query);
            if got
                .as_ref()
                .is_some_and(|series| series.iter().any(|(_, v)| v == want))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} never became {want}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a command said it serves its metrics on.
fn metrics_address(child: &Child) -> String {
    child.wait_for("the metrics address", Duration::from_secs(20), |_, err| {
        err.iter().any(|l| l.starts_with("metrics at http://"))
    });
    child
        .stderr_lines()
        .iter()
        .find_map(|l| l.strip_prefix("metrics at http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .expect("an address")
        .to_owned()
}

#[test]
fn prometheus_scrapes_exactly_what_was_scored() {
    let (_broker, b) = common::broker_process(3);
    let (code, _, stderr) = common::run(&["produce", "-b", &b, "--count", "500", "--rate", "max"]);
    assert_eq!(code, 0, "{stderr}");
    common::produce_all(&b, "experience-events", &[Some(b"not json".to_vec())]);
    let mut score = Child::spawn(&["score", "-b", &b, "-q", "--metrics", "127.0.0.1:0"]);
    let target = metrics_address(&score);
    let prometheus = Prometheus::start(&target);
    prometheus.wait_for_value("up{job=\"salary-stream\"}", "1");
    prometheus.wait_for_value("salary_stream_records_scored_total", "500");
    prometheus.wait_for_value("salary_stream_predictions_published_total", "500");
    prometheus.wait_for_value("salary_stream_bad_records_total{reason=\"not_json\"}", "1");
    prometheus.wait_for_value("salary_stream_latency_seconds_count", "500");
    prometheus.wait_for_value("salary_stream_model_info{version=\"6c25318e\"}", "1");
    prometheus.wait_for_value("salary_stream_drift_alarm", "0");
    let partitions = |query: &str| -> std::collections::BTreeSet<String> {
        prometheus
            .query(query)
            .unwrap_or_default()
            .iter()
            .filter_map(|(labels, _)| labels["partition"].as_str().map(str::to_owned))
            .collect()
    };
    // librdkafka reports a partition's lag once it knows an offset for it: keyless records may
    // leave a partition empty, with no lag to report, so the lag is expected exactly where records are.
    let filled = common::nonempty_partitions(&b, "experience-events", 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let shown = partitions("salary_stream_consumer_lag_records");
        if shown == filled {
            break shown;
        }
        assert!(Instant::now() < deadline, "{shown:?} != {filled:?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let seconds = prometheus
        .query("salary_stream_consumer_lag_seconds")
        .expect("an answer");
    assert_eq!(seconds.len(), shown.len(), "{seconds:?}");
    score.signal("TERM");
    assert_eq!(score.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn the_producer_counts_what_it_sends_and_the_endpoint_answers_404_elsewhere() {
    let (_broker, b) = common::broker_process(3);
    let mut produce = Child::spawn(&[
        "produce",
        "-b",
        &b,
        "--rate",
        "100",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let target = metrics_address(&produce);
    let prometheus = Prometheus::start(&target);
    let deadline = Instant::now() + Duration::from_secs(90);
    let value = |query: &str| -> f64 {
        prometheus
            .query(query)
            .and_then(|series| series.first().and_then(|(_, v)| v.parse().ok()))
            .unwrap_or(0.0)
    };
    while value("salary_stream_producer_acked_total") < 200.0 {
        assert!(Instant::now() < deadline, "no acknowledged events scraped");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        value("salary_stream_producer_sent_total") >= value("salary_stream_producer_acked_total")
    );
    assert_eq!(value("salary_stream_producer_failed_total"), 0.0);
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{target}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    produce.signal("TERM");
    assert_eq!(produce.wait(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn a_metrics_address_in_use_is_one_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) = common::run(&["score", "--metrics", &address, "--count", "0"]);
    assert_eq!(code, 1);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "salary-stream: cannot serve metrics on {address}: "
        )),
        "{last}"
    );
}
