//! How long scoring stalls when a leader dies (issue 27), on its own: `cargo bench --bench
//! pipeline -- --failover` (about 4 minutes; needs java 17+ and mvn like `--apache-kafka`).
//!
//! A three-node Apache Kafka (`scripts/kafka --nodes 3`: replication 3, `min.insync.replicas` 2,
//! the JVMs with C2 on as users run them), one `score` (at-least-once), and `produce --rate 1000`
//! for 60 s. Two rounds: 20 s into the first, the leader of output partition 0 is SIGKILLed; then
//! the node is started again (`scripts/kafka restart-node`), and 20 s into the second round the
//! leader of input partition 0 is. A consumer of the bench's reads the output topic as it is
//! written and notes when each prediction of the moved partition arrives (output partition 0 in
//! the first round; predictions of input partition 0, by their `partition` field, in the second).
//! The stall is the longest time after the kill with no prediction of that partition arriving:
//! the wait for the new leader's first acknowledged record, seen by a reader that also had to
//! find the new leader (so an upper bound). The latency percentiles are `score`'s closing line over the round's minute,
//! event to acknowledged prediction, kill included.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::cluster::broker_jvm_opts;
use crate::BIN;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
/// Events a second, and seconds a round produces for.
const RATE: u64 = 1000;
const SECONDS: u64 = 60;
/// Seconds into a round when the leader is killed.
const KILL_AFTER: u64 = 20;

/// Which leader a round kills.
#[derive(Clone, Copy)]
enum Victim {
    /// The leader of output partition 0.
    Output,
    /// The leader of input partition 0.
    Input,
}

/// The three-node cluster: its bootstrap list, folder and each node's pid.
struct Nodes {
    child: std::process::Child,
    bootstrap: String,
    dir: String,
    pids: BTreeMap<i32, u32>,
}

impl Nodes {
    fn start() -> Nodes {
        let started = Instant::now();
        let mut child = Command::new(SCRIPT)
            .env("KAFKA_JVM_OPTS", broker_jvm_opts())
            .args(["--nodes", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{SCRIPT}: {e}"));
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let lines: Vec<String> = stdout
            .lines()
            .map_while(Result::ok)
            .take_while(|l| l != "ready")
            .collect();
        let bootstrap = lines.first().cloned().unwrap_or_default();
        let mut pids = BTreeMap::new();
        let mut dir = String::new();
        for line in lines.iter().skip(1) {
            let fields: BTreeMap<&str, &str> =
                line.split(' ').filter_map(|f| f.split_once('=')).collect();
            if let (Some(node), Some(pid)) = (fields.get("node"), fields.get("pid")) {
                pids.insert(
                    node.parse().expect("a node id"),
                    pid.parse().expect("a pid"),
                );
            }
            if let Some(d) = fields.get("dir") {
                dir = (*d).to_owned();
            }
        }
        assert!(
            pids.len() == 3 && !dir.is_empty(),
            "scripts/kafka --nodes 3 printed {lines:?}; see its stderr above"
        );
        eprintln!(
            "three-node Apache Kafka at {bootstrap} ({:.1} s to start)",
            started.elapsed().as_secs_f64()
        );
        Nodes {
            child,
            bootstrap,
            dir,
            pids,
        }
    }

    /// The partitions of `topic` as the cluster describes them now.
    fn describe(&self, topic: &str) -> rdkafka::metadata::Metadata {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("a metadata client");
        consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata")
    }

    fn leader(&self, topic: &str, partition: i32) -> i32 {
        self.describe(topic).topics()[0]
            .partitions()
            .iter()
            .find(|p| p.id() == partition)
            .map(|p| p.leader())
            .expect("the partition")
    }

    fn partitions(&self, topic: &str) -> i32 {
        self.describe(topic).topics()[0].partitions().len() as i32
    }

    fn kill(&self, node: i32) {
        signal(self.pids[&node], libc::SIGKILL);
    }

    fn restart(&mut self, node: i32) {
        let out = Command::new(SCRIPT)
            .env("KAFKA_JVM_OPTS", broker_jvm_opts())
            .args(["restart-node", &self.dir, &node.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/kafka restart-node");
        assert!(out.status.success(), "restart-node {node} failed");
        let line = String::from_utf8_lossy(&out.stdout);
        let pid = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("pid="))
            .expect("restart-node prints pid=");
        self.pids.insert(node, pid.parse().expect("a pid"));
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: a signal to a process of ours (a broker JVM, or our child script).
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// One round's figures.
struct Round {
    what: &'static str,
    stall_ms: f64,
    latency: String,
}

/// Runs both rounds and prints their table.
pub fn failover() {
    let mut nodes = Nodes::start();
    let output_partitions = nodes.partitions("salary-predictions");
    let first = round(&nodes, Victim::Output, output_partitions);
    let killed = first.1;
    eprintln!("starting node {killed} again ...");
    nodes.restart(killed);
    let second = round(&nodes, Victim::Input, output_partitions);
    println!();
    println!("| leader SIGKILLed (3 nodes, min ISR 2, {RATE} events/s) | longest wait for a prediction of the moved partition after the kill | latency ms over the round's {SECONDS} s, event to ack |");
    println!("|---|---:|---|");
    for r in [first.0, second.0] {
        println!("| {} | {:.0} ms | {} |", r.what, r.stall_ms, r.latency);
    }
}

/// A round: scorer, reader and producer, the kill after [`KILL_AFTER`] s; the killed node.
fn round(nodes: &Nodes, victim: Victim, output_partitions: i32) -> (Round, i32) {
    // One group for both rounds: the second starts where the first committed, with no backlog.
    let group = "failover";
    let b = nodes.bootstrap.clone();
    let mut score = Command::new(BIN)
        .args(["score", "-b", &b, "-q", "-g", group])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("score");
    let score_err = score.stderr.take().expect("stderr");
    let score_lines = std::thread::spawn(move || {
        std::io::BufReader::new(score_err)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    // The reader: every output partition from its end, arrival times of the moved partition's
    // predictions.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", format!("{group}-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("a reader");
    let mut assignment = TopicPartitionList::new();
    for p in 0..output_partitions {
        assignment
            .add_partition_offset("salary-predictions", p, Offset::End)
            .expect("a partition");
    }
    reader.assign(&assignment).expect("assign");
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let reading = {
        let (arrivals, done) = (arrivals.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let Some(Ok(m)) = reader.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let moved = match victim {
                    Victim::Output => m.partition() == 0,
                    Victim::Input => m
                        .payload()
                        .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                        .is_some_and(|v| v["partition"].as_i64() == Some(0)),
                };
                if moved {
                    arrivals.lock().expect("arrivals").push(Instant::now());
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(3));

    let count = (RATE * SECONDS).to_string();
    let mut produce = Command::new(BIN)
        .args([
            "produce",
            "-b",
            &b,
            "--rate",
            &RATE.to_string(),
            "--count",
            &count,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("produce");
    std::thread::sleep(Duration::from_secs(KILL_AFTER));
    let (topic, what) = match victim {
        Victim::Output => ("salary-predictions", "leader of output partition 0"),
        Victim::Input => ("experience-events", "leader of input partition 0"),
    };
    let node = nodes.leader(topic, 0);
    let killed_at = Instant::now();
    nodes.kill(node);
    eprintln!("killed node {node}, the {what}");
    let status = produce.wait().expect("produce");
    assert!(status.success(), "produce ended {status}");
    std::thread::sleep(Duration::from_secs(5));
    signal(score.id(), libc::SIGTERM);
    let _ = score.wait();
    done.store(true, Ordering::Relaxed);
    let _ = reading.join();
    let lines = score_lines.join().expect("score's stderr");
    let latency = lines
        .iter()
        .find_map(|l| l.strip_prefix("latency ms, event to acknowledged prediction: "))
        .unwrap_or_else(|| panic!("no latency line from score:\n{}", lines.join("\n")))
        .to_owned();
    let arrivals = arrivals.lock().expect("arrivals");
    let stall_ms = longest_gap_after(&arrivals, killed_at).as_secs_f64() * 1000.0;
    eprintln!("{what}: the moved partition stalled {stall_ms:.0} ms; {latency}");
    (
        Round {
            what,
            stall_ms,
            latency,
        },
        node,
    )
}

/// The longest time, from `killed_at` on, with no prediction of the moved partition: between two
/// arrivals, or from the kill to the first after it. (A prediction that arrives just after the
/// kill may be of a record fetched before it; the gap behind it is the stall then.)
fn longest_gap_after(arrivals: &[Instant], killed_at: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since = killed_at;
    for &t in arrivals.iter().filter(|t| **t > killed_at) {
        longest = longest.max(t - since);
        since = t;
    }
    assert!(
        since > killed_at,
        "no prediction of the moved partition after the kill"
    );
    longest
}
