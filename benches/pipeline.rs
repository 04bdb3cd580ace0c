//! The benchmark: salary-stream against kcat on the same records, in one run.
//!
//! `cargo bench` (or `cargo bench -- --records N --dashboard-events N`); `--brokers host:port`
//! (or `BENCH_BROKERS`) runs the Kafka parts against a real cluster instead of
//! `salary-stream broker` processes, each tool and round into a fresh topic of its own.
//! `--apache-kafka` starts Apache Kafka (`scripts/kafka --partitions 32`) for those parts and
//! adds Kafka's own performance tools (ConsumerPerformance, ProducerPerformance) as references;
//! `--brokers host:port --kafka-tools` adds them against that cluster. Prints the machine, a
//! table and one JSON line (a `Results`, serialized). `cargo bench --bench pipeline -- --help`
//! lists the flags. Needs kcat and tmux on PATH (scripts/test installs both); Kafka's tools need
//! java 17+ and mvn (scripts/kafka fetches Kafka once).
//!
//! One function a part: `write_records`, `producing`, `consuming`, `latency_at`,
//! `frame_render_us`, `dashboard_under_load`; `main` runs them and reports.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde::Serialize;

const BIN: &str = env!("CARGO_BIN_EXE_salary-stream");
/// Partitions of the throughput topic: the embedded broker keeps 5 MB a partition, 800,000
/// records need about 60 MB, and kcat's keyless records fill partitions unevenly (with 24, one
/// run in two lost some to pruning).
const THROUGHPUT_PARTITIONS: u32 = 32;
/// Partitions of the latency topic: those of the embedded broker's input topic.
const LATENCY_PARTITIONS: u32 = 3;
/// Each throughput measure is taken this many times, the tools alternating; the median counts.
/// Five, not three: on a shared 2-core VM one slow round in three moved a median ratio by 0.1.
const ROUNDS: usize = 5;
/// The fetch wait both consumers get: librdkafka's mock cluster holds an empty fetch for the
/// whole wait even when records arrive, so a reader that waits for the end of a partition
/// (kcat -e) would otherwise spend 500 ms there.
const FETCH_WAIT: [&str; 2] = ["-X", "fetch.wait.max.ms=5"];
/// kcat with the librdkafka settings the scorer chooses for itself: connections at once, and
/// prefetch thresholds it never reaches (Debian's kcat is built on librdkafka 2.0.2, whose
/// 1 s pause past those thresholds cannot be shortened as the scorer's is).
const KCAT_AS_OURS: [&str; 6] = [
    "-X",
    "enable.sparse.connections=false",
    "-X",
    "queued.min.messages=10000000",
    "-X",
    "queued.max.messages.kbytes=2097151",
];

/// A broker for one part of the run: a fresh `salary-stream broker` process, or the cluster
/// the bench was pointed at.
struct Broker {
    child: Option<std::process::Child>,
    address: String,
}

impl Broker {
    /// The broker's process, when it is the bench's own.
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    fn start(partitions: u32, external: Option<&str>) -> Broker {
        if let Some(address) = external {
            return Broker {
                child: None,
                address: address.to_owned(),
            };
        }
        let mut child = Command::new(BIN)
            .args(["broker", "--partitions", &partitions.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start salary-stream broker");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("broker address");
        Broker {
            child: Some(child),
            address: line.trim().to_owned(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Creates `topic` with `partitions` (the broker's default replication) unless it exists, and
/// waits until each of its partitions has a leader, so no producer or consumer timed later
/// waits for it. Used on a real cluster only: a fresh `salary-stream broker` has its topics.
fn create_topic(bootstrap: &str, topic: &str, partitions: u32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let wanted = [NewTopic::new(
        topic,
        partitions as i32,
        TopicReplication::Fixed(-1),
    )];
    let mut created = false;
    for result in runtime
        .block_on(admin.create_topics(&wanted, &options))
        .unwrap_or_else(|e| panic!("create topic {topic} on {bootstrap}: {e}"))
    {
        match result {
            Ok(_) => created = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => panic!("create topic {t} on {bootstrap}: {code}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("metadata of {topic} on {bootstrap}: {e}"));
        let ready = metadata.topics().iter().any(|t| {
            let p = t.partitions();
            t.name() == topic
                && t.error().is_none()
                && !p.is_empty()
                && (!created || p.len() == partitions as usize)
                && p.iter().all(|p| p.leader() >= 0)
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} on {bootstrap} has no leader for every partition after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Apache Kafka for the run (`--apache-kafka`): `scripts/kafka --partitions 32`, stopped with
/// SIGTERM at the end (or when the bench panics).
struct ApacheKafka {
    child: std::process::Child,
    address: String,
}

impl ApacheKafka {
    fn start() -> ApacheKafka {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
        let started = Instant::now();
        // Its progress (and errors) go to the bench's stderr; its one stdout line is the address.
        let mut child = Command::new(script)
            .args(["--partitions", &THROUGHPUT_PARTITIONS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the address from scripts/kafka");
        let address = line.trim().to_owned();
        if address.is_empty() {
            let status = child.wait().expect("wait for scripts/kafka");
            panic!(
                "scripts/kafka ended ({status}) without printing an address; see its stderr above"
            );
        }
        eprintln!(
            "Apache Kafka at {address} ({:.1} s to start)",
            started.elapsed().as_secs_f64()
        );
        ApacheKafka { child, address }
    }

    /// SIGTERM, then waits for the script, which stops the broker and removes its folder.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let started = Instant::now();
            // SAFETY: a signal to our own child, whose pid is valid until it is waited for.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
            eprintln!(
                "Apache Kafka stopped ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for ApacheKafka {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Apache Kafka's own performance tools, from the classpath `scripts/kafka classpath` prints,
/// run as `kafka-*-perf-test.sh` runs them (its heap and JVM flags, less its log4j file).
struct KafkaTools {
    classpath: String,
}

/// What ConsumerPerformance reports of one run.
struct ConsumerPerf {
    /// `nMsg.sec`: records over the time from subscribing to the last record (group join
    /// included; JVM start-up and consumer creation not).
    per_s: f64,
    /// `MB.sec` (MiB of values).
    mb_per_s: f64,
    /// `fetch.nMsg.sec`: the same less the group join (`rebalance.time.ms`).
    fetch_per_s: f64,
}

impl KafkaTools {
    fn new() -> KafkaTools {
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
    fn produce(&self, bootstrap: &str, topic: &str, count: &str, file: &str) -> (Duration, f64) {
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
    fn consume(
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

/// The machine the bench runs on.
#[derive(Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    /// `L1d: 32K`, ... as cpu0 sees them.
    caches: BTreeMap<String, String>,
    kernel: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let read = |path: String| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let mut caches = BTreeMap::new();
    for index in 0..16 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let size = read(format!("{dir}/size"));
        if size.is_empty() {
            continue;
        }
        let kind = match read(format!("{dir}/type")).as_str() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        caches.insert(format!("L{}{kind}", read(format!("{dir}/level"))), size);
    }
    let kernel = read("/proc/sys/kernel/osrelease".to_owned());
    Machine {
        cpu,
        cores,
        caches,
        kernel,
    }
}

impl Machine {
    fn caches_text(&self) -> String {
        let list: Vec<String> = self
            .caches
            .iter()
            .map(|(level, size)| format!("{level} {size}"))
            .collect();
        list.join(", ")
    }
}

/// One timed command: its wall time and CPU time (user + system), and the CPU time the broker
/// process used over the same span (when the broker is a process of the bench's).
#[derive(Debug, Clone, Copy)]
struct Timed {
    wall: Duration,
    cpu: Duration,
    broker_cpu: Option<Duration>,
}

/// CPU time (user + system) of every child process this one has reaped so far.
fn reaped_children_cpu() -> Duration {
    // SAFETY: getrusage writes one rusage into the zeroed value it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time (user + system) a running process has used so far, from /proc.
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_s))
}

/// Measures `run`: its wall time, the CPU of the child processes it reaps, and `broker`'s CPU.
fn measured<T>(broker: Option<u32>, run: impl FnOnce() -> T) -> (Timed, T) {
    let (cpu_before, broker_before) = (reaped_children_cpu(), broker.and_then(process_cpu));
    let started = Instant::now();
    let out = run();
    let wall = started.elapsed();
    let broker_cpu = match (broker_before, broker.and_then(process_cpu)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let timed = Timed {
        wall,
        cpu: reaped_children_cpu().saturating_sub(cpu_before),
        broker_cpu,
    };
    (timed, out)
}

/// Runs a command to completion; returns its wall time.
fn timed(program: &str, args: &[&str]) -> Duration {
    timed_on(None, program, args).wall
}

/// Runs a command to completion, with the broker process `broker`; returns what it took.
fn timed_on(broker: Option<u32>, program: &str, args: &[&str]) -> Timed {
    measured(broker, || run_to_end(program, args)).0
}

fn run_to_end(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command to completion counting its stdout lines, with the broker process `broker`;
/// returns what it took and the count.
fn timed_lines(broker: Option<u32>, program: &str, args: &[&str]) -> (Timed, u64) {
    measured(broker, || count_lines(program, args))
}

fn count_lines(program: &str, args: &[&str]) -> u64 {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::io::BufReader::new(stdout).split(b'\n').count() as u64;
    assert!(
        child.wait().expect("wait").success(),
        "{program} {args:?} failed"
    );
    lines
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn rate(records: u64, took: Duration) -> f64 {
    records as f64 / took.as_secs_f64()
}

/// `(p50, p99, p99.9)` from score's closing latency line.
fn latency_line(stderr: &str) -> (f64, f64, f64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("latency ms"))
        .unwrap_or_else(|| panic!("no latency line in:\n{stderr}"));
    let field = |name: &str| -> f64 {
        line.split(name)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (field("p50 "), field("p99 "), field("p99.9 "))
}

/// End-to-end latency at `rate_per_s` for `seconds`: a scorer that owns every partition before
/// the first event is made, then the synthetic producer at that rate. Both get `settings`.
fn latency_at(
    rate_per_s: u64,
    seconds: u64,
    settings: &[&str],
    external: Option<&str>,
) -> (f64, f64, f64) {
    let broker = Broker::start(LATENCY_PARTITIONS, external);
    let b = broker.address.as_str();
    let count = (rate_per_s * seconds).to_string();
    // A fresh broker has the default topic; a real cluster gets a topic of this measure's own,
    // made beforehand (the scorer waits for a missing topic, and `produce -b` refuses one).
    static MEASURE: AtomicU32 = AtomicU32::new(0);
    let topic = match external {
        None => salary_stream::engine::DEFAULT_INPUT_TOPIC.to_owned(),
        Some(_) => {
            let topic = format!(
                "latency-{rate_per_s}-{}-{}",
                MEASURE.fetch_add(1, Ordering::Relaxed),
                std::process::id()
            );
            create_topic(b, &topic, LATENCY_PARTITIONS);
            topic
        }
    };
    let group = format!("latency-{rate_per_s}-{}", settings.join(""));
    let mut score_args = vec![
        "score", "-b", b, "-t", &topic, "-g", &group, "--quiet", "--count", &count,
    ];
    score_args.extend_from_slice(settings);
    let mut scorer = Command::new(BIN)
        .args(&score_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("score");
    // The clock starts only once the scorer owns its partitions.
    let mut stderr = std::io::BufReader::new(scorer.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = stderr.read_line(&mut line).expect("scorer stderr");
        assert!(n > 0, "the scorer ended before it was assigned partitions");
        if line.starts_with("assigned partitions: [") && !line.contains("[]") {
            break;
        }
    }
    let mut produce_args = vec!["produce", "-b", b, "-t", &topic, "--count", &count];
    let r = rate_per_s.to_string();
    produce_args.extend_from_slice(&["--rate", &r]);
    produce_args.extend_from_slice(settings);
    timed(BIN, &produce_args);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("scorer stderr");
    assert!(
        scorer.wait().expect("score").success(),
        "score failed:\n{rest}"
    );
    latency_line(&rest)
}

/// p99 and mean of one 120x40 frame, in microseconds.
fn frame_render_us() -> (f64, f64) {
    let app = common::known_app();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("bounds");
    for _ in 0..3000 {
        let started = Instant::now();
        terminal
            .draw(|f| salary_stream::ui::render(f, &app))
            .expect("draw");
        h.saturating_record(started.elapsed().as_micros().max(1) as u64);
    }
    (h.value_at_quantile(0.99) as f64, h.mean())
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux (apt-get install -y tmux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn vm_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct DashboardRun {
    events: u64,
    peak_rss_mb: f64,
    rss_after_first_100k_mb: f64,
    /// Lowest and highest RSS sampled (every 0.5 s) over the second half of the events.
    rss_second_half_mb: (f64, f64),
    fps: f64,
    quit_ms: f64,
}

/// The dashboard under tmux with the producer unthrottled until `events` are scored.
fn dashboard_under_load(events: u64) -> DashboardRun {
    let socket = format!("salary-stream-bench-{}", std::process::id());
    let log = std::env::temp_dir().join(format!("salary-stream-bench-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let log_arg = log.to_string_lossy().into_owned();
    // Arguments one by one, so tmux runs the dashboard itself rather than a shell around it.
    tmux(
        &socket,
        &[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            BIN,
            "dash",
            "--produce",
            "--rate",
            "max",
            "--log",
            &log_arg,
        ],
    );
    let pid = tmux(&socket, &["display-message", "-p", "#{pane_pid}"])
        .trim()
        .to_owned();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "salary-stream", "the pane runs the dashboard");
    let total = |screen: &str| -> u64 {
        screen
            .split("total ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut after_100k = 0;
    let mut seen = 0;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while seen < events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        seen = total(&tmux(&socket, &["capture-pane", "-p"]));
        let rss = vm_kb(&pid, "VmRSS:");
        samples.push((seen, rss));
        if after_100k == 0 && seen >= 100_000 {
            after_100k = rss;
        }
    }
    let second_half = samples
        .iter()
        .filter(|(n, _)| *n >= seen / 2)
        .map(|(_, r)| *r);
    let (lo, hi) = second_half.fold((u64::MAX, 0), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let peak = vm_kb(&pid, "VmHWM:");
    assert!(peak > 0, "the dashboard is still running");
    let started = Instant::now();
    tmux(&socket, &["send-keys", "q"]);
    // Exited means gone or a zombie: tmux reaps its pane's process late under load.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(") ")
                    .map(|(_, rest)| !rest.starts_with('Z'))
            })
            .unwrap_or(false)
    };
    while running() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let quit_ms = started.elapsed().as_secs_f64() * 1000.0;
    tmux(&socket, &["kill-server"]);
    let fps = std::fs::read_to_string(&log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| l.contains("frames drawn"))
                .and_then(|l| l.split("fps=").nth(1))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN);
    DashboardRun {
        events: seen,
        peak_rss_mb: peak as f64 / 1024.0,
        rss_after_first_100k_mb: after_100k as f64 / 1024.0,
        rss_second_half_mb: (lo as f64 / 1024.0, hi as f64 / 1024.0),
        fps,
        quit_ms,
    }
}

/// What the whole run shares: the records each tool handles, where the Kafka parts run, Kafka's
/// tools if asked for, and the bench's pid (for unique names).
struct Run<'a> {
    records: u64,
    /// A model artifact for `score --challenger`.
    challenger: &'a str,
    external: Option<&'a str>,
    tools: Option<&'a KafkaTools>,
    pid: u32,
}

/// The producing part: each tool's runs, and the last round's kcat broker and topic, kept for
/// the consuming part.
struct Produced {
    kcat: Vec<Timed>,
    ours: Vec<Timed>,
    kafka: Vec<Duration>,
    kafka_own: Vec<f64>,
    kept: (Broker, String),
}

/// Writes `records` synthetic records (the producer's own generator, seed 1) to a file in `dir`;
/// returns its path and the records' average size in bytes.
fn write_records(dir: &std::path::Path, records: u64) -> (String, f64) {
    std::fs::create_dir_all(dir).expect("temp dir");
    let file = dir.join("records.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("records file"));
    let mut generator =
        salary_stream::serving::producer::EventGenerator::new((1.1, 10.5), None, Some(1));
    let mut buf = Vec::new();
    for _ in 0..records {
        generator.next_event(&mut buf, salary_stream::engine::now_ms());
        out.write_all(&buf)
            .and_then(|()| out.write_all(b"\n"))
            .expect("write records");
    }
    out.flush().expect("write records");
    let record_bytes =
        std::fs::metadata(&file).map_or(0, |m| m.len()) as f64 / records as f64 - 1.0;
    (file.to_string_lossy().into_owned(), record_bytes)
}

/// Writes the committed model with its line 20% higher, as another version, to a file in `dir`;
/// returns its path.
fn write_challenger(dir: &std::path::Path) -> String {
    let mut artifact =
        salary_stream::model::Artifact::load(std::path::Path::new("assets/model.json"))
            .expect("assets/model.json");
    artifact.version = "bench0c1".into();
    artifact.slope *= 1.2;
    artifact.intercept *= 1.2;
    let path = dir.join("challenger.json");
    artifact.save(&path).expect("challenger artifact");
    path.to_string_lossy().into_owned()
}

/// kcat -P, `produce --rate max` and (with Kafka's tools) ProducerPerformance, each into a fresh
/// broker or topic per round, the order rotating.
fn producing(run: &Run<'_>, file: &str) -> Produced {
    let (records, external, tools, pid) = (run.records, run.external, run.tools, run.pid);
    let n = records.to_string();
    let topic = salary_stream::engine::DEFAULT_INPUT_TOPIC;
    // Where one tool produces in one round: a fresh `salary-stream broker` (its default topic),
    // or a fresh topic of 32 partitions on the cluster.
    let fresh = |tool: &str, round: usize| -> (Broker, String) {
        let broker = Broker::start(THROUGHPUT_PARTITIONS, external);
        let topic = match external {
            None => topic.to_owned(),
            Some(_) => {
                let name = format!("bench-{tool}-{round}-{pid}");
                create_topic(&broker.address, &name, THROUGHPUT_PARTITIONS);
                name
            }
        };
        (broker, topic)
    };
    let mut producers = vec!["kcat", "ours"];
    if tools.is_some() {
        producers.push("kafka");
    }
    eprintln!(
        "producing {records} records with {} ({ROUNDS} rounds) ...",
        producers.join(", ")
    );
    // Each round produces into a fresh broker or topic per tool; the last round's kcat one is
    // kept for the consuming part.
    let (mut kcat_p, mut ours_p, mut kafka_p, mut kafka_p_own) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut kcat_target = None;
    for round in 0..ROUNDS {
        let mut targets: Vec<(&str, (Broker, String))> = producers
            .iter()
            .map(|&tool| (tool, fresh(tool, round)))
            .collect();
        // Rotate which goes first, so none always meets a cooler machine.
        for i in 0..producers.len() {
            let tool = producers[(i + round) % producers.len()];
            let (broker, t) = &targets
                .iter()
                .find(|(name, _)| *name == tool)
                .expect("target")
                .1;
            let b = broker.address.as_str();
            match tool {
                "kcat" => kcat_p.push(timed_on(
                    broker.pid(),
                    "kcat",
                    &["-b", b, "-P", "-t", t, "-l", file],
                )),
                "ours" => ours_p.push(timed_on(
                    broker.pid(),
                    BIN,
                    &["produce", "-b", b, "-t", t, "--rate", "max", "--count", &n],
                )),
                _ => {
                    let kafka = tools.as_ref().expect("Kafka's tools");
                    let (took, own) = kafka.produce(b, t, &n, file);
                    kafka_p.push(took);
                    kafka_p_own.push(own);
                }
            }
        }
        let kept = targets.iter().position(|(name, _)| *name == "kcat");
        kcat_target = kept.map(|i| targets.swap_remove(i).1);
    }
    Produced {
        kcat: kcat_p,
        ours: ours_p,
        kafka: kafka_p,
        kafka_own: kafka_p_own,
        kept: kcat_target.expect("at least one round"),
    }
}

/// Records of the smaller and the larger callgrind run: the difference of their instruction
/// counts over the difference of their records is what a record costs, start-up, connecting and
/// the group join cancelling out.
/// (With fewer records in the run, the larger is all of them and the smaller a sixth.)
const CALLGRIND_RECORDS: (u64, u64) = (10_000, 60_000);

/// User-space instructions per record of each tool, counted by callgrind: unlike rates and CPU
/// time, they hardly move with the machine or its other load. Every thread of the process is
/// counted (librdkafka's too).
#[derive(Serialize, Clone, Copy)]
struct InstructionsPerRecord {
    /// Records of the smaller and the larger run.
    records: (u64, u64),
    kcat_consume: u64,
    score_bare: u64,
    score_full: u64,
    score_challenger: u64,
    kcat_produce: u64,
    produce: u64,
}

/// The instructions `program args` retires under callgrind; `None` if it cannot be run there.
fn callgrind(program: &str, args: &[&str]) -> Option<u64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.split("Collected :").nth(1)?.trim().parse().ok())
}

/// Instructions per record: `run(n)` counted for both sizes.
fn per_record((small, large): (u64, u64), run: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    let (a, b) = (run(small)?, run(large)?);
    Some(b.saturating_sub(a) / (large - small))
}

/// Writes the first `n` lines of `file` to another file in `dir`; returns its path.
fn first_lines(file: &str, n: u64, dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(file).expect("records file");
    let path = dir.join(format!("records-{n}.ndjson"));
    let mut out = String::new();
    for line in text.lines().take(n as usize) {
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(&path, out).expect("records file");
    path.to_string_lossy().into_owned()
}

/// Each tool's instructions per record on the same records, against a `salary-stream broker`
/// process of its own (valgrind slows the client about 50 times; the broker runs natively).
/// `None` where valgrind is not installed.
fn instructions(
    file: &str,
    records: u64,
    dir: &std::path::Path,
    challenger: &str,
) -> Option<InstructionsPerRecord> {
    callgrind("true", &[])?;
    let large = CALLGRIND_RECORDS.1.min(records);
    let sizes = (CALLGRIND_RECORDS.0.min(large / 6), large);
    eprintln!(
        "instructions per record (callgrind, {} and {} records) ...",
        sizes.0, sizes.1
    );
    let broker = Broker::start(THROUGHPUT_PARTITIONS, None);
    let b = broker.address.as_str();
    let pid = std::process::id();
    let kcat_produce = per_record(sizes, |n| {
        let records = first_lines(file, n, dir);
        let topic = format!("cg-kcat-{n}-{pid}");
        callgrind("kcat", &["-b", b, "-P", "-t", &topic, "-l", &records])
    })?;
    let produce = per_record(sizes, |n| {
        let topic = format!("cg-ours-{n}-{pid}");
        let count = n.to_string();
        callgrind(
            BIN,
            &[
                "produce", "-b", b, "-t", &topic, "--rate", "max", "--count", &count,
            ],
        )
    })?;
    // Everything reads what kcat wrote for the larger run.
    let topic = format!("cg-kcat-{}-{pid}", sizes.1);
    let kcat_consume = per_record(sizes, |n| {
        let count = n.to_string();
        let mut a = vec![
            "-b",
            b,
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-c",
            &count,
            "-e",
            "-q",
        ];
        a.extend_from_slice(&FETCH_WAIT);
        a.extend_from_slice(&KCAT_AS_OURS);
        callgrind("kcat", &a)
    })?;
    let score = |extra: &[&str]| {
        per_record(sizes, |n| {
            let count = n.to_string();
            let group = format!("cg-{}-{n}-{pid}", extra.len());
            // librdkafka's statistics come once a second, and a run under valgrind lasts about
            // 50 times longer: off, or they would count as per-record work (kcat has none).
            let mut a = vec![
                "score",
                "-b",
                b,
                "-t",
                &topic,
                "-g",
                &group,
                "--quiet",
                "--count",
                &count,
                "-X",
                "statistics.interval.ms=0",
            ];
            a.extend_from_slice(extra);
            a.extend_from_slice(&FETCH_WAIT);
            callgrind(BIN, &a)
        })
    };
    Some(InstructionsPerRecord {
        records: sizes,
        kcat_consume,
        score_bare: score(&["--no-output"])?,
        score_full: score(&[])?,
        score_challenger: score(&["--challenger", challenger])?,
        kcat_produce,
        produce,
    })
}

/// The consuming part, on the records kcat produced: what each consumer took, medians later.
struct Consumed {
    /// The records every consumer handles: what kcat can read back.
    records: u64,
    kcat_plain: Vec<Timed>,
    kcat_tuned: Vec<Timed>,
    bare: Vec<Timed>,
    full: Vec<Timed>,
    metered: Vec<Timed>,
    challenged: Vec<Timed>,
    eos: Vec<Timed>,
    kafka_c: Vec<Duration>,
    kafka_c_own: Vec<f64>,
    kafka_c_mb: Vec<f64>,
    kafka_c_fetch: Vec<f64>,
}

/// kcat -C (as installed and tuned), `score` bare, with output, with metrics, exactly-once
/// (`eos`), and ConsumerPerformance, on `topic` of `broker`, the order rotating each round.
fn consuming(run: &Run<'_>, broker: &Broker, topic: &str, eos_too: bool) -> Consumed {
    let (external, tools, pid) = (run.external, run.tools, run.pid);
    let kcat_broker = broker;
    let k = kcat_broker.address.as_str();
    // "metered": the full path again with `--metrics` on, for what serving metrics costs.
    // "challenged": the full path with `--challenger`, for what a second model costs.
    // "eos" (with --eos): the full path in exactly-once mode (transactions every 0.1 s), for what
    // that costs; meant for a real cluster, since the mock cluster serves transactions slowly.
    let mut measures = vec![
        "kcat",
        "kcat tuned",
        "bare",
        "full",
        "metered",
        "challenged",
    ];
    if eos_too {
        measures.push("eos");
    }
    if tools.is_some() {
        measures.push("kafka");
    }
    eprintln!(
        "consuming and scoring: {} ({ROUNDS} rounds) ...",
        measures.join(", ")
    );
    let kcat_read = |extra: &[&str]| {
        let mut a = vec!["-b", k, "-C", "-t", topic, "-o", "beginning", "-e", "-q"];
        a.extend_from_slice(&FETCH_WAIT);
        a.extend_from_slice(extra);
        timed_lines(kcat_broker.pid(), "kcat", &a)
    };
    // The broker keeps about 5 MB a partition: score exactly what kcat can read.
    let (_, consumed) = kcat_read(&[]);
    let records = consumed;
    let n = records.to_string();
    let (mut kcat_plain, mut kcat_tuned, mut bare, mut full, mut metered, mut eos) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut challenged = Vec::new();
    let (mut kafka_c, mut kafka_c_own, mut kafka_c_mb, mut kafka_c_fetch) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Rotate the order each round, so that none always runs first.
        for i in 0..measures.len() {
            match measures[(i + round) % measures.len()] {
                "kcat" => {
                    let (t, lines) = kcat_read(&[]);
                    assert_eq!(lines, records, "kcat read a different number of records");
                    kcat_plain.push(t);
                }
                "kcat tuned" => {
                    let (t, lines) = kcat_read(&KCAT_AS_OURS);
                    assert_eq!(lines, records, "kcat read a different number of records");
                    kcat_tuned.push(t);
                }
                "kafka" => {
                    let group = format!("bench-kafka-{round}-{pid}");
                    let kafka = tools.as_ref().expect("Kafka's tools");
                    let (t, own) = kafka.consume(k, topic, &n, &group);
                    kafka_c.push(t);
                    kafka_c_own.push(own.per_s);
                    kafka_c_mb.push(own.mb_per_s);
                    kafka_c_fetch.push(own.fetch_per_s);
                }
                score => {
                    let group = format!("bench-{score}-{round}-{pid}");
                    let mut a = vec![
                        "score", "-b", k, "-t", topic, "-g", &group, "--quiet", "--count", &n,
                    ];
                    // On a cluster, predictions go to a fresh topic of 32 partitions, made
                    // before the clock starts.
                    let output = format!("bench-predictions-{round}-{pid}");
                    if score == "bare" {
                        a.push("--no-output");
                    } else if external.is_some() {
                        create_topic(k, &output, THROUGHPUT_PARTITIONS);
                        a.extend_from_slice(&["--output-topic", &output]);
                    }
                    if score == "metered" {
                        a.extend_from_slice(&["--metrics", "127.0.0.1:0"]);
                    }
                    if score == "challenged" {
                        a.extend_from_slice(&["--challenger", run.challenger]);
                    }
                    if score == "eos" {
                        a.extend_from_slice(&["--exactly-once", "--instance-id", "bench"]);
                    }
                    a.extend_from_slice(&FETCH_WAIT);
                    let t = timed_on(kcat_broker.pid(), BIN, &a);
                    match score {
                        "bare" => bare.push(t),
                        "metered" => metered.push(t),
                        "challenged" => challenged.push(t),
                        "eos" => eos.push(t),
                        _ => full.push(t),
                    }
                }
            }
        }
    }
    Consumed {
        records,
        kcat_plain,
        kcat_tuned,
        bare,
        full,
        metered,
        challenged,
        eos,
        kafka_c,
        kafka_c_own,
        kafka_c_mb,
        kafka_c_fetch,
    }
}

/// The bench's flags (`cargo bench -- FLAGS`).
#[derive(Parser)]
#[command(about = "salary-stream against kcat (and Kafka's own tools) on the same records")]
struct Args {
    /// Records each tool produces and consumes.
    #[arg(long, default_value_t = 800_000)]
    records: u64,
    /// Events the dashboard is driven to with its producer unthrottled.
    #[arg(long, default_value_t = 1_000_000)]
    dashboard_events: u64,
    /// Runs the Kafka parts against this cluster instead of `salary-stream broker` processes.
    #[arg(long, env = "BENCH_BROKERS", value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// Starts Apache Kafka (scripts/kafka) for the Kafka parts, with Kafka's own perf tools.
    #[arg(long, conflicts_with = "brokers")]
    apache_kafka: bool,
    /// Adds Kafka's own perf tools against the cluster given with --brokers.
    #[arg(long)]
    kafka_tools: bool,
    /// Adds `score --exactly-once` beside at-least-once (meant for a real cluster).
    #[arg(long)]
    eos: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// `cargo bench -- --list` and `cargo test --benches` probe the harness: nothing to list.
    #[arg(long, hide = true)]
    list: bool,
    /// A name filter `cargo bench NAME` passes; there is one benchmark, so it is ignored.
    #[arg(hide = true)]
    filter: Vec<String>,
}

/// The JSON line: every figure of the run, rates in records/s, ratios to three places.
#[derive(Serialize)]
struct Results {
    produced: u64,
    consumed: u64,
    rounds: usize,
    kcat_consume_per_s: u64,
    kcat_tuned_consume_per_s: u64,
    score_bare_per_s: u64,
    score_full_per_s: u64,
    score_bare_ratio: f64,
    score_full_ratio: f64,
    kcat_produce_per_s: u64,
    produce_per_s: u64,
    produce_ratio: f64,
    latency_1k_ms: [f64; 3],
    latency_1k_linger1_ms: [f64; 3],
    latency_10k_ms: [f64; 3],
    frame_p99_us: u64,
    dashboard_fps: f64,
    quit_ms: u64,
    dashboard_events: u64,
    peak_rss_mb: f64,
    rss_100k_mb: f64,
    rss_second_half_mb: [f64; 2],
    score_metered_per_s: u64,
    metrics_ratio: f64,
    score_challenger_per_s: u64,
    challenger_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    score_eos_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eos_ratio: Option<f64>,
    cpu_s_per_million: BTreeMap<&'static str, CpuFigure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions_per_record: Option<InstructionsPerRecord>,
    record_bytes: f64,
    broker: String,
    machine: Machine,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    kafka: Option<KafkaFigures>,
}

/// CPU seconds per million records: the process under test, and the broker when it is ours.
#[derive(Serialize, Clone, Copy)]
struct CpuFigure {
    own: f64,
    broker: Option<f64>,
}

/// Against Apache Kafka's own perf tools (`--apache-kafka`, `--kafka-tools`).
#[derive(Serialize)]
struct KafkaFigures {
    kafka_consumer_perf_per_s: u64,
    kafka_consumer_perf_mb_per_s: f64,
    kafka_consumer_perf_fetch_per_s: u64,
    kafka_consumer_perf_wall_per_s: u64,
    score_bare_kafka_ratio: f64,
    score_full_kafka_ratio: f64,
    score_bare_kafka_wall_ratio: f64,
    score_full_kafka_wall_ratio: f64,
    kafka_producer_perf_per_s: u64,
    kafka_producer_perf_wall_per_s: u64,
    produce_kafka_ratio: f64,
    produce_kafka_wall_ratio: f64,
}

/// `value` to `places` decimal places, for the JSON line.
fn places(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// One row of the table: what, its value, its ratio to the reference, the target or a note.
type Row<'a, T> = (&'a str, f64, f64, T);

/// A CPU row: JSON key, table name, (own, broker, ...) figures, the kcat row it is compared with.
type CpuRow = (&'static str, &'static str, (f64, Option<f64>), &'static str);

fn print_rows<T: std::fmt::Display>(rows: &[Row<'_, T>]) {
    for (name, value, ratio, note) in rows {
        println!("{name:<48} {value:>14.0} {ratio:>9.2}x  {note}");
    }
}

fn print_cpu(rows: &[CpuRow]) {
    println!("CPU seconds per million records (user + system; ratio to the tool's; broker apart):");
    let own_of = |key: &str| {
        rows.iter()
            .find(|row| row.0 == key)
            .map_or(f64::NAN, |row| row.2 .0)
    };
    for (_, name, (own, broker), reference) in rows {
        let broker = broker.map_or_else(|| "-".to_owned(), |b| format!("{b:.2}"));
        println!(
            "{name:<48} {own:>14.2} {:>9.2}x  broker {broker}",
            own / own_of(reference)
        );
    }
}

fn print_instructions(instructions: Option<&InstructionsPerRecord>) {
    let Some(i) = instructions else {
        println!("user-space instructions per record: - (valgrind is not installed)");
        return;
    };
    println!(
        "user-space instructions per record (callgrind, {} and {} records; ratio to the tool's):",
        i.records.0, i.records.1
    );
    for (name, value, reference) in [
        (
            "consume: kcat -C -e, tuned as ours",
            i.kcat_consume,
            i.kcat_consume,
        ),
        ("score --quiet --no-output", i.score_bare, i.kcat_consume),
        (
            "score --quiet, output + commits",
            i.score_full,
            i.kcat_consume,
        ),
        (
            "score --quiet, output + commits, --challenger",
            i.score_challenger,
            i.kcat_consume,
        ),
        ("produce: kcat -P", i.kcat_produce, i.kcat_produce),
        ("produce --rate max", i.produce, i.kcat_produce),
    ] {
        println!(
            "{name:<48} {value:>14} {:>9.2}x",
            value as f64 / reference as f64
        );
    }
}

fn main() {
    let args = Args::parse();
    if args.list {
        return;
    }
    let records = args.records;
    let dashboard_events = args.dashboard_events;
    let given_brokers = args.brokers.as_deref();

    let machine = machine();
    println!(
        "machine: {} ({} cores; {}), kernel {}",
        machine.cpu,
        machine.cores,
        machine.caches_text(),
        machine.kernel
    );

    // --apache-kafka: Kafka's own broker for the Kafka parts, and Kafka's own tools beside kcat.
    let mut apache_kafka = args.apache_kafka.then(|| {
        assert!(
            given_brokers.is_none(),
            "--apache-kafka starts its own broker: leave out --brokers (and BENCH_BROKERS)"
        );
        eprintln!("starting Apache Kafka (scripts/kafka --partitions {THROUGHPUT_PARTITIONS}) ...");
        ApacheKafka::start()
    });
    let external = apache_kafka
        .as_ref()
        .map(|k| k.address.as_str())
        .or(given_brokers);
    let tools = (apache_kafka.is_some() || args.kafka_tools).then(|| {
        assert!(
            external.is_some(),
            "--kafka-tools needs --brokers host:port (or use --apache-kafka)"
        );
        KafkaTools::new()
    });
    let broker_text = match (&apache_kafka, external) {
        (Some(k), _) => format!("Apache Kafka at {} (scripts/kafka)", k.address),
        (None, Some(b)) => b.to_owned(),
        (None, None) => "salary-stream broker processes (librdkafka's mock cluster)".to_owned(),
    };
    println!("broker: {broker_text}");
    let pid = std::process::id();
    if let Some(b) = external {
        // What the scorers use besides their input and output; made if missing, kept if not.
        create_topic(
            b,
            salary_stream::engine::DEFAULT_OUTPUT_TOPIC,
            THROUGHPUT_PARTITIONS,
        );
        create_topic(b, salary_stream::engine::DEFAULT_DLQ_TOPIC, 1);
    }
    let produced = records;

    // The same records for every tool, as the synthetic producer writes them.
    let dir = std::env::temp_dir().join(format!("salary-stream-bench-{pid}"));
    let (file, record_bytes) = write_records(&dir, records);
    let challenger = write_challenger(&dir);

    let run = Run {
        records,
        challenger: &challenger,
        external,
        tools: tools.as_ref(),
        pid,
    };
    let Produced {
        kcat: kcat_p,
        ours: ours_p,
        kafka: kafka_p,
        kafka_own: kafka_p_own,
        kept: (kcat_broker, topic),
    } = producing(&run, &file);
    let Consumed {
        records,
        kcat_plain,
        kcat_tuned,
        bare,
        full,
        metered,
        challenged,
        eos,
        kafka_c,
        kafka_c_own,
        kafka_c_mb,
        kafka_c_fetch,
    } = consuming(&run, &kcat_broker, &topic, args.eos);
    drop(kcat_broker);
    // CPU seconds per million records: medians, the process under test and the broker apart.
    let per_million = |cpu: Duration, n: u64| cpu.as_secs_f64() * 1e6 / n as f64;
    let cpu_of = |runs: &[Timed], n: u64| -> (f64, Option<f64>) {
        let own = median_f64(runs.iter().map(|t| per_million(t.cpu, n)).collect());
        let broker: Vec<f64> = runs
            .iter()
            .filter_map(|t| t.broker_cpu.map(|c| per_million(c, n)))
            .collect();
        (own, (!broker.is_empty()).then(|| median_f64(broker)))
    };
    // (JSON key, table name, figure, the kcat row it is compared with): each of ours against
    // kcat on the same side.
    let cpu_rows: [CpuRow; 6] = [
        (
            "kcat_consume",
            "consume: kcat -C -e, tuned as ours",
            cpu_of(&kcat_tuned, records),
            "kcat_consume",
        ),
        (
            "score_bare",
            "score --quiet --no-output",
            cpu_of(&bare, records),
            "kcat_consume",
        ),
        (
            "score_full",
            "score --quiet, output + commits",
            cpu_of(&full, records),
            "kcat_consume",
        ),
        (
            "score_challenger",
            "score --quiet, output + commits, --challenger",
            cpu_of(&challenged, records),
            "kcat_consume",
        ),
        (
            "kcat_produce",
            "produce: kcat -P",
            cpu_of(&kcat_p, produced),
            "kcat_produce",
        ),
        (
            "produce",
            "produce --rate max",
            cpu_of(&ours_p, produced),
            "kcat_produce",
        ),
    ];
    let wall = |runs: Vec<Timed>| median(runs.into_iter().map(|t| t.wall).collect());
    let (kcat_plain, kcat_tuned, bare, full, metered, eos) = (
        wall(kcat_plain),
        wall(kcat_tuned),
        wall(bare),
        wall(full),
        wall(metered),
        (!eos.is_empty()).then(|| wall(eos)),
    );
    let (kcat_p, ours_p) = (wall(kcat_p), wall(ours_p));
    let challenged = wall(challenged);

    eprintln!("latency at 1,000 and 10,000 events/s ...");
    // Both clients: a 1 ms fetch wait (the mock cluster holds an empty fetch for all of it), and
    // no producer linger at 1,000/s. At 10,000/s one-record batches are more than the mock
    // cluster can serve (it returns one batch a partition per fetch), so there linger is 1 ms;
    // 1,000/s is measured with it too.
    let l1k = latency_at(
        1_000,
        10,
        &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=0"],
        external,
    );
    let l1k_linger = latency_at(
        1_000,
        10,
        &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=1"],
        external,
    );
    let l10k = latency_at(
        10_000,
        10,
        &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=1"],
        external,
    );
    // The rest uses no broker of the bench's: Kafka's cores are free again.
    if let Some(k) = apache_kafka.as_mut() {
        k.stop();
    }

    let instructions = instructions(&file, records, &dir, &challenger);

    eprintln!("rendering frames ...");
    let (frame_p99_us, frame_mean_us) = frame_render_us();

    eprintln!("dashboard with the producer unthrottled until {dashboard_events} events ...");
    let dash = dashboard_under_load(dashboard_events);

    let per_s = |t: Duration| rate(records, t);
    let mut rows = vec![
        (
            "consume: kcat -C -e, as installed (records/s)",
            per_s(kcat_plain),
            per_s(kcat_plain) / per_s(kcat_tuned),
            "",
        ),
        (
            "consume: kcat -C -e, tuned as ours (records/s)",
            per_s(kcat_tuned),
            1.0,
            "reference",
        ),
        (
            "score --quiet --no-output (records/s)",
            per_s(bare),
            per_s(bare) / per_s(kcat_tuned),
            ">= 1.0x kcat",
        ),
        (
            "score --quiet, output + commits (records/s)",
            per_s(full),
            per_s(full) / per_s(kcat_tuned),
            ">= 0.5x kcat",
        ),
        (
            "score, output + commits, --metrics on: vs without",
            per_s(metered),
            per_s(metered) / per_s(full),
            ">= 0.95x without",
        ),
        (
            "score, output + commits, --challenger: vs without",
            per_s(challenged),
            per_s(challenged) / per_s(full),
            ">= 0.90x without",
        ),
        (
            "produce: kcat -P (records/s)",
            rate(produced, kcat_p),
            1.0,
            "reference",
        ),
        (
            "produce --rate max (records/s)",
            rate(produced, ours_p),
            rate(produced, ours_p) / rate(produced, kcat_p),
            ">= 1.0x kcat -P",
        ),
    ];
    println!();
    println!("machine: {}, {} cores", machine.cpu, machine.cores);
    println!("broker: {broker_text}");
    println!(
        "{produced} records produced ({record_bytes:.1} bytes each on average), {records} \
         consumed; medians of {ROUNDS} rounds"
    );
    println!("{:<48} {:>14} {:>10}  target", "measure", "value", "ratio");
    if let Some(eos) = eos {
        rows.insert(
            5,
            (
                "score --exactly-once (0.1 s transactions): vs at-least-once",
                per_s(eos),
                per_s(eos) / per_s(full),
                "reported",
            ),
        );
    }
    print_rows(&rows);
    print_cpu(&cpu_rows);
    print_instructions(instructions.as_ref());
    // Against Kafka's tools: the ratio is to the tool's own figure, which leaves out its JVM
    // start-up (and, producing, reading the payload file), while ours is the whole process; the
    // ratio to its whole process is in the last column.
    let kafka_figures = tools.as_ref().map(|_| {
        let c_wall = per_s(median(kafka_c));
        let c_own = median_f64(kafka_c_own);
        let p_wall = rate(produced, median(kafka_p));
        let p_own = median_f64(kafka_p_own);
        (
            c_wall,
            c_own,
            median_f64(kafka_c_mb),
            median_f64(kafka_c_fetch),
            p_wall,
            p_own,
        )
    });
    if let Some((c_wall, c_own, c_mb, c_fetch, p_wall, p_own)) = kafka_figures {
        let wall = |ours: f64, theirs: f64| format!("whole process: {:.2}x", ours / theirs);
        let kafka_rows = [
            (
                "consume: kafka-consumer-perf-test, own nMsg.sec",
                c_own,
                1.0,
                format!("reference ({c_mb:.1} MB/s; {c_fetch:.0}/s less group join)"),
            ),
            (
                "consume: kafka-consumer-perf-test, whole process",
                c_wall,
                c_wall / c_own,
                "JVM start-up included".to_owned(),
            ),
            (
                "score --quiet --no-output, vs Kafka's consumer",
                per_s(bare),
                per_s(bare) / c_own,
                wall(per_s(bare), c_wall),
            ),
            (
                "score --quiet, output + commits, vs Kafka's",
                per_s(full),
                per_s(full) / c_own,
                wall(per_s(full), c_wall),
            ),
            (
                "produce: kafka-producer-perf-test, own rate",
                p_own,
                1.0,
                "reference".to_owned(),
            ),
            (
                "produce: kafka-producer-perf-test, whole process",
                p_wall,
                p_wall / p_own,
                "JVM start-up, payload file included".to_owned(),
            ),
            (
                "produce --rate max, vs Kafka's producer",
                rate(produced, ours_p),
                rate(produced, ours_p) / p_own,
                wall(rate(produced, ours_p), p_wall),
            ),
        ];
        println!("against Apache Kafka's own tools (records/s; ratio to the tool's own figure):");
        print_rows(&kafka_rows);
    }
    let ms = |l: (f64, f64, f64)| format!("{:.2}/{:.2}/{:.2}", l.0, l.1, l.2);
    println!(
        "{:<48} {:>14}            p99 <= 5 ms",
        "latency p50/p99/p99.9 at 1,000/s, linger 0 (ms)",
        ms(l1k)
    );
    println!(
        "{:<48} {:>14}",
        "latency p50/p99/p99.9 at 1,000/s, linger 1 (ms)",
        ms(l1k_linger)
    );
    println!(
        "{:<48} {:>14}",
        "latency p50/p99/p99.9 at 10,000/s, linger 1 (ms)",
        ms(l10k)
    );
    println!(
        "{:<48} {:>14.0}            p99 <= 2000 us",
        "frame render 120x40 p99 (us)", frame_p99_us
    );
    println!(
        "{:<48} {:>14.0}",
        "frame render 120x40 mean (us)", frame_mean_us
    );
    println!(
        "{:<48} {:>14.1}            >= 15",
        "dashboard frames/s, producer unthrottled", dash.fps
    );
    println!(
        "{:<48} {:>14.0}            <= 300 ms",
        "dashboard q to exit (ms)", dash.quit_ms
    );
    println!(
        "{:<48} {:>14.1}            <= 64 MB, flat",
        format!("dashboard peak RSS after {} events (MB)", dash.events),
        dash.peak_rss_mb
    );
    println!(
        "{:<48} {:>14.1}",
        "dashboard RSS after 100,000 events (MB)", dash.rss_after_first_100k_mb
    );
    println!(
        "{:<48} {:>14}",
        "dashboard RSS, second half of the run (MB)",
        format!(
            "{:.1}-{:.1}",
            dash.rss_second_half_mb.0, dash.rss_second_half_mb.1
        )
    );
    let whole = |v: f64| v.round() as u64;
    let ratio = |v: f64| places(v, 3);
    let ms3 = |l: (f64, f64, f64)| [places(l.0, 3), places(l.1, 3), places(l.2, 3)];
    let results = Results {
        produced,
        consumed: records,
        rounds: ROUNDS,
        kcat_consume_per_s: whole(per_s(kcat_plain)),
        kcat_tuned_consume_per_s: whole(per_s(kcat_tuned)),
        score_bare_per_s: whole(per_s(bare)),
        score_full_per_s: whole(per_s(full)),
        score_bare_ratio: ratio(per_s(bare) / per_s(kcat_tuned)),
        score_full_ratio: ratio(per_s(full) / per_s(kcat_tuned)),
        kcat_produce_per_s: whole(rate(produced, kcat_p)),
        produce_per_s: whole(rate(produced, ours_p)),
        produce_ratio: ratio(rate(produced, ours_p) / rate(produced, kcat_p)),
        latency_1k_ms: ms3(l1k),
        latency_1k_linger1_ms: ms3(l1k_linger),
        latency_10k_ms: ms3(l10k),
        frame_p99_us: whole(frame_p99_us),
        dashboard_fps: places(dash.fps, 1),
        quit_ms: whole(dash.quit_ms),
        dashboard_events: dash.events,
        peak_rss_mb: places(dash.peak_rss_mb, 1),
        rss_100k_mb: places(dash.rss_after_first_100k_mb, 1),
        rss_second_half_mb: [
            places(dash.rss_second_half_mb.0, 1),
            places(dash.rss_second_half_mb.1, 1),
        ],
        score_metered_per_s: whole(per_s(metered)),
        metrics_ratio: ratio(per_s(metered) / per_s(full)),
        score_challenger_per_s: whole(per_s(challenged)),
        challenger_ratio: ratio(per_s(challenged) / per_s(full)),
        score_eos_per_s: eos.map(|t| whole(per_s(t))),
        eos_ratio: eos.map(|t| ratio(per_s(t) / per_s(full))),
        cpu_s_per_million: cpu_rows
            .iter()
            .map(|&(key, _, (own, broker), _)| {
                let figure = CpuFigure {
                    own: places(own, 3),
                    broker: broker.map(|b| places(b, 3)),
                };
                (key, figure)
            })
            .collect(),
        instructions_per_record: instructions,
        record_bytes: places(record_bytes, 1),
        broker: broker_text,
        machine,
        kafka: kafka_figures.map(|(c_wall, c_own, c_mb, c_fetch, p_wall, p_own)| {
            let ours_p = rate(produced, ours_p);
            KafkaFigures {
                kafka_consumer_perf_per_s: whole(c_own),
                kafka_consumer_perf_mb_per_s: places(c_mb, 2),
                kafka_consumer_perf_fetch_per_s: whole(c_fetch),
                kafka_consumer_perf_wall_per_s: whole(c_wall),
                score_bare_kafka_ratio: ratio(per_s(bare) / c_own),
                score_full_kafka_ratio: ratio(per_s(full) / c_own),
                score_bare_kafka_wall_ratio: ratio(per_s(bare) / c_wall),
                score_full_kafka_wall_ratio: ratio(per_s(full) / c_wall),
                kafka_producer_perf_per_s: whole(p_own),
                kafka_producer_perf_wall_per_s: whole(p_wall),
                produce_kafka_ratio: ratio(ours_p / p_own),
                produce_kafka_wall_ratio: ratio(ours_p / p_wall),
            }
        }),
    };
    println!(
        "{}",
        serde_json::to_string(&results).expect("the figures serialize")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
