//! Apache Kafka's own performance tools (ConsumerPerformance, ProducerPerformance), run as
//! references beside kcat.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Apache Kafka's own performance tools, from the classpath `scripts/kafka classpath` prints,
/// run as `kafka-*-perf-test.sh` runs them (its heap and JVM flags, less its log4j file).
pub struct KafkaTools {
    classpath: String,
}

/// What ConsumerPerformance reports of one run.
pub struct ConsumerPerf {
    /// `nMsg.sec`: records over the time from subscribing to the last record (group join
    /// included; JVM start-up and consumer creation not).
    pub per_s: f64,
    /// `MB.sec` (MiB of values).
    pub mb_per_s: f64,
    /// `fetch.nMsg.sec`: the same less the group join (`rebalance.time.ms`).
    pub fetch_per_s: f64,
}

impl KafkaTools {
    /// Kafka's tools, on the classpath `scripts/kafka classpath` prints.
    pub fn new() -> KafkaTools {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
        let out = Command::new(script)
            .arg("classpath")
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{script} classpath: {e}"));
        assert!(out.status.success(), "{script} classpath failed");
        let classpath = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(!classpath.is_empty(), "{script} classpath printed nothing");
        KafkaTools { classpath }
    }

    /// The classpath of Kafka's broker and tools.
    pub fn classpath(&self) -> &str {
        &self.classpath
    }

    /// Runs one of Kafka's tools to completion; returns its wall time (JVM start-up included)
    /// and its stdout.
    fn run(&self, class: &str, args: &[&str]) -> (Duration, String) {
        let started = Instant::now();
        let out = Command::new("java")
            .args([
                "-Xmx512M",
                "-server",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent",
                "-Djava.awt.headless=true",
                "-cp",
                &self.classpath,
                class,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("java (apt-get install -y openjdk-17-jre-headless): {e}"));
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{class} {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (took, stdout)
    }

    /// ProducerPerformance: `count` records picked from the lines of `file`; returns the wall
    /// time and the records/sec of its closing summary line (from its first send to the close
    /// that waits for every acknowledgement: no JVM start-up, no reading of the file).
    pub fn produce(
        &self,
        bootstrap: &str,
        topic: &str,
        count: &str,
        file: &str,
    ) -> (Duration, f64) {
        let servers = format!("bootstrap.servers={bootstrap}");
        let (took, stdout) = self.run(
            "org.apache.kafka.tools.ProducerPerformance",
            &[
                "--topic",
                topic,
                "--num-records",
                count,
                "--payload-file",
                file,
                "--throughput",
                "-1",
                "--producer-props",
                &servers,
                "linger.ms=5",
                "batch.size=1000000",
            ],
        );
        let summary = stdout
            .lines()
            .rev()
            .find(|l| l.contains(" records sent, "))
            .unwrap_or_else(|| panic!("no summary line from ProducerPerformance:\n{stdout}"));
        let sent = summary.split_whitespace().next();
        assert_eq!(sent, Some(count), "ProducerPerformance: {summary}");
        let per_s = summary
            .split(" records sent, ")
            .nth(1)
            .and_then(|r| r.split(" records/sec").next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no records/sec in {summary:?}"));
        (took, per_s)
    }

    /// ConsumerPerformance: `count` records from `topic` in the new group `group`; returns the
    /// wall time and its own figures.
    pub fn consume(
        &self,
        bootstrap: &str,
        topic: &str,
        count: &str,
        group: &str,
    ) -> (Duration, ConsumerPerf) {
        let (took, stdout) = self.run(
            "org.apache.kafka.tools.ConsumerPerformance",
            &[
                "--bootstrap-server",
                bootstrap,
                "--topic",
                topic,
                "--messages",
                count,
                "--group",
                group,
                "--timeout",
                "60000",
            ],
        );
        assert!(
            !stdout.contains("WARNING: Exiting before"),
            "ConsumerPerformance read fewer than {count} records:\n{stdout}"
        );
        let mut lines = stdout.lines().skip_while(|l| !l.starts_with("start.time"));
        let (header, values) = (lines.next(), lines.next());
        let (Some(header), Some(values)) = (header, values) else {
            panic!("no figures from ConsumerPerformance:\n{stdout}");
        };
        let field = |name: &str| -> f64 {
            header
                .split(", ")
                .zip(values.split(", "))
                .find(|(h, _)| h.trim() == name)
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in ConsumerPerformance's\n{header}\n{values}"))
        };
        let read = field("data.consumed.in.nMsg");
        assert!(
            read >= count.parse::<f64>().unwrap_or(f64::MAX),
            "ConsumerPerformance read {read} records of {count}"
        );
        (
            took,
            ConsumerPerf {
                per_s: field("nMsg.sec"),
                mb_per_s: field("MB.sec"),
                fetch_per_s: field("fetch.nMsg.sec"),
            },
        )
    }
}
