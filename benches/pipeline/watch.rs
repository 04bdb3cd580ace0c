//! What the bench sees of a broker that is not a `salary-stream broker` process of its own: the
//! broker JVM's pid (for its CPU, from /proc) and its request counters over JMX, read with
//! Apache Kafka's own `org.apache.kafka.tools.JmxTool`.
//!
//! One JmxTool runs for the whole Kafka part, polling every [`POLL_MS`]; it is stopped (SIGSTOP)
//! while a measure runs, so neither it nor the broker's JMX server takes CPU from the measure,
//! and woken (SIGCONT) to read the counters before and after. A reading is the second sample
//! stamped after the wake: the first may have been queried before the stop.

use std::collections::HashMap;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often JmxTool reads the counters while it runs (between measures only).
const POLL_MS: u32 = 100;

/// Request kinds counted apart; the rest of [`OTHER_REQUESTS`] are summed.
const PRODUCE: &str = "Produce";
const FETCH: &str = "Fetch";
const OFFSET_COMMIT: &str = "OffsetCommit";
/// Group, metadata and producer set-up requests, counted together as "other".
const OTHER_REQUESTS: [&str; 11] = [
    "Metadata",
    "FindCoordinator",
    "JoinGroup",
    "SyncGroup",
    "Heartbeat",
    "LeaveGroup",
    "OffsetFetch",
    "ListOffsets",
    "InitProducerId",
    "ApiVersions",
    "ConsumerGroupHeartbeat",
];
/// BrokerTopicMetrics over all topics: bytes of record batches written by producers, bytes
/// sent to consumers, records written.
const BYTES_IN: &str = "BytesInPerSec";
const BYTES_OUT: &str = "BytesOutPerSec";
const MESSAGES_IN: &str = "MessagesInPerSec";

/// The broker side of a measure, from the broker's own counters: requests it completed and
/// bytes it took in and sent out over the measure's span.
#[derive(Debug, Clone, Copy, Default)]
pub struct Requests {
    pub produce: u64,
    /// Fetch requests (a consumer's; one broker has no followers).
    pub fetch: u64,
    pub offset_commit: u64,
    /// [`OTHER_REQUESTS`], summed.
    pub other: u64,
    /// Bytes of record batches producers wrote.
    pub bytes_in: u64,
    /// Bytes of records sent in fetch responses.
    pub bytes_out: u64,
    /// Records producers wrote.
    pub messages_in: u64,
}

/// The counters at one time (JmxTool's `Count` attributes, by object name).
pub type Sample = HashMap<String, f64>;

/// JmxTool, polling the broker's counters, and its samples as they come.
struct Sampler {
    child: Child,
    samples: Receiver<(u64, Sample)>,
}

/// The broker JVM, when the bench knows it: its pid and its JMX sampler.
struct Watched {
    pid: Option<u32>,
    jmx: Option<Sampler>,
}

static WATCHED: Mutex<Option<Watched>> = Mutex::new(None);

fn watched() -> std::sync::MutexGuard<'static, Option<Watched>> {
    WATCHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Watches the broker of an external cluster until [`unwatch`]: `pid` (a process on this
/// machine) for CPU, `jmx` (`HOST:PORT` of its JMX server) for request counts, through Kafka's
/// JmxTool on `classpath`. Call before any measure.
pub fn watch(pid: Option<u32>, jmx: Option<(&str, &str)>) {
    let jmx = jmx.map(|(address, classpath)| Sampler::start(address, classpath));
    *watched() = Some(Watched { pid, jmx });
}

/// Stops watching (ends JmxTool): the broker is going away.
pub fn unwatch() {
    watched().take();
}

/// The watched broker's pid, if any.
pub fn broker_pid() -> Option<u32> {
    watched().as_ref().and_then(|w| w.pid)
}

/// Reads the broker's counters now, if a JMX sampler runs (it is left stopped).
pub fn counters() -> Option<Sample> {
    watched().as_mut()?.jmx.as_mut().map(Sampler::read)
}

/// What the broker counted between `before` and `after`.
pub fn requests_between(before: &Sample, after: &Sample) -> Requests {
    let delta = |name: &str| -> u64 {
        let d = after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0);
        d.max(0.0).round() as u64
    };
    let request = |kind: &str| delta(&request_object(kind));
    Requests {
        produce: request(PRODUCE),
        fetch: request(FETCH),
        offset_commit: request(OFFSET_COMMIT),
        other: OTHER_REQUESTS.iter().map(|kind| request(kind)).sum(),
        bytes_in: delta(&topic_object(BYTES_IN)),
        bytes_out: delta(&topic_object(BYTES_OUT)),
        messages_in: delta(&topic_object(MESSAGES_IN)),
    }
}

/// The object counting requests of `kind`: the histogram of their total time, whose `Count` is
/// the requests completed. (`RequestsPerSec` is per request version and made at the first
/// request of that version, after JmxTool has listed its objects.)
fn request_object(kind: &str) -> String {
    format!("kafka.network:type=RequestMetrics,name=TotalTimeMs,request={kind}")
}

fn topic_object(name: &str) -> String {
    format!("kafka.server:type=BrokerTopicMetrics,name={name}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sends `signal` to our own child `child`.
fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: a signal to our own child, whose pid is valid until it is waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

impl Sampler {
    /// Starts JmxTool against `address`, run as Kafka's `kafka-run-class.sh` would but C1-only
    /// and with a small heap (it only polls).
    fn start(address: &str, classpath: &str) -> Sampler {
        let url = format!("service:jmx:rmi:///jndi/rmi://{address}/jmxrmi");
        let mut objects: Vec<String> = [PRODUCE, FETCH, OFFSET_COMMIT]
            .iter()
            .chain(OTHER_REQUESTS.iter())
            .map(|kind| request_object(kind))
            .collect();
        objects.extend([BYTES_IN, BYTES_OUT, MESSAGES_IN].map(topic_object));
        let mut args = vec![
            "-Xmx64m".to_owned(),
            "-XX:TieredStopAtLevel=1".to_owned(),
            "-XX:+UseSerialGC".to_owned(),
            "-cp".to_owned(),
            classpath.to_owned(),
            "org.apache.kafka.tools.JmxTool".to_owned(),
            "--jmx-url".to_owned(),
            url,
            "--attributes".to_owned(),
            "Count".to_owned(),
            "--reporting-interval".to_owned(),
            POLL_MS.to_string(),
            "--wait".to_owned(),
        ];
        for object in objects {
            args.extend(["--object-name".to_owned(), object]);
        }
        let mut command = Command::new("java");
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe. The kernel kills JmxTool, stopped or not, if the
        // bench dies without ending it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("java (JmxTool): {e}"));
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let (send, samples) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // A header of quoted "object:Count" names, then a line of values a poll, the first
            // one the time in milliseconds.
            let mut names: Vec<String> = Vec::new();
            for line in stdout.lines().map_while(Result::ok) {
                if line.starts_with('"') {
                    // Object names hold commas: split between the quotes.
                    names = line
                        .trim_matches('"')
                        .split("\",\"")
                        .map(|n| n.trim_end_matches(":Count").to_owned())
                        .collect();
                    continue;
                }
                let mut values = line.split(',').map(|v| v.trim().parse::<f64>().ok());
                let Some(Some(time)) = values.next() else {
                    continue;
                };
                let sample: Sample = names
                    .iter()
                    .skip(1)
                    .zip(values)
                    .filter_map(|(n, v)| Some((n.clone(), v?)))
                    .collect();
                if send.send((time as u64, sample)).is_err() {
                    return;
                }
            }
        });
        Sampler { child, samples }
    }

    /// Wakes JmxTool, takes the second sample stamped after now, and stops it again.
    fn read(&mut self) -> Sample {
        let asked = now_ms();
        signal(&self.child, libc::SIGCONT);
        let mut after = 0;
        let sample = loop {
            match self.samples.recv_timeout(Duration::from_secs(60)) {
                Ok((time, sample)) if time > asked => {
                    after += 1;
                    if after == 2 {
                        break sample;
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("JmxTool gave no reading of the broker's counters in 60 s")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("JmxTool ended: is the broker's JMX port open (KAFKA_JMX_PORT)?")
                }
            }
        };
        signal(&self.child, libc::SIGSTOP);
        sample
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        signal(&self.child, libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JVM running `kafka.Kafka` among the children of `parent` (`scripts/kafka`'s shell).
pub fn kafka_jvm_of(parent: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|&b| b == 0).any(|arg| arg == b"kafka.Kafka"))
                .unwrap_or(false)
        })
}

/// A free port on loopback (bound and let go; another process could take it in between).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
