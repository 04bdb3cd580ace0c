//! Idle cost: the CPU a dashboard and a scorer use with nothing flowing, as a share of one core,
//! read from /proc/PID/stat over [`SPAN`] once each has settled, and the threads it went to
//! (/proc/PID/task/*/schedstat, by thread name). kcat -G on the same broker is the reference.
//!
//! `cargo bench --bench pipeline -- --idle` runs this part alone; `--idle-against BIN` measures
//! another build of salary-stream (say, of the commit before) in the same run, each of its rows
//! taken right after the same row of the build under test.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::Broker;
use crate::dashboard::{logged_fps, start_pane, tmux};
use crate::measure::process_cpu;
use crate::BIN;

/// How long each process is measured.
const SPAN: Duration = Duration::from_secs(10);
/// How long each process runs before it is measured: started, its group joined, its first
/// statistics and health probes done.
const SETTLE: Duration = Duration::from_secs(5);
/// Threads named in a row, busiest first.
const THREADS_SHOWN: usize = 4;

/// What one idle process used.
pub struct IdleRow {
    /// The JSON key: `dash_separate_broker`, ..., with `@NAME` for a build given by
    /// `--idle-against`.
    pub key: String,
    /// The table's label.
    pub label: String,
    /// CPU (user + system) over [`SPAN`], in % of one core.
    pub percent: f64,
    /// The busiest threads by name (threads of one name summed; `main` is the process's first
    /// thread), in % of one core.
    pub threads: Vec<(String, f64)>,
    /// A dashboard's frames drawn per second over its whole run, from its log.
    pub fps: Option<f64>,
    pub target: &'static str,
}

/// One measured process kind.
#[derive(Clone, Copy)]
enum Kind {
    /// The dashboard in a 120x40 tmux pane against the bench's broker process.
    DashSeparate,
    /// The dashboard in a 120x40 tmux pane with its embedded broker (in its own process).
    DashEmbedded,
    /// `score -q` against the bench's broker process, its stdout dropped.
    Score,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::DashSeparate => "dash_separate_broker",
            Kind::DashEmbedded => "dash_embedded_broker",
            Kind::Score => "score",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::DashSeparate => "dash 120x40, separate broker",
            Kind::DashEmbedded => "dash 120x40, embedded broker (in-process)",
            Kind::Score => "score -q, separate broker",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Kind::DashSeparate | Kind::Score => "<= 1%",
            Kind::DashEmbedded => "reported",
        }
    }
}

/// Measures each kind for the build under test and each of `against`, then kcat -G (if
/// installed), all on one `salary-stream broker` process of the bench's.
pub fn idle_costs(against: &[String]) -> Vec<IdleRow> {
    let broker = Broker::start(3, None);
    let builds: Vec<(&str, Option<String>)> = std::iter::once((BIN, None))
        .chain(against.iter().map(|b| (b.as_str(), Some(build_name(b)))))
        .collect();
    let mut rows = Vec::new();
    for (n, kind) in [Kind::DashSeparate, Kind::DashEmbedded, Kind::Score]
        .into_iter()
        .enumerate()
    {
        for (m, (bin, name)) in builds.iter().enumerate() {
            // A group of its own for each run: none waits for an earlier member to leave.
            let group = format!("salary-stream-bench-idle-{}-{n}-{m}", std::process::id());
            eprintln!(
                "idle: {}{} ...",
                kind.label(),
                name.as_deref().map_or(String::new(), |n| format!(", {n}"))
            );
            let (cpu, threads, fps) = match kind {
                Kind::DashSeparate => dashboard(bin, Some(&broker.address), &group),
                Kind::DashEmbedded => dashboard(bin, None, &group),
                Kind::Score => score(bin, &broker.address, &group),
            };
            let suffix = |sep: &str| {
                name.as_deref()
                    .map_or(String::new(), |n| format!("{sep}{n}"))
            };
            rows.push(IdleRow {
                key: format!("{}{}", kind.key(), suffix("@")),
                label: format!("{}{}", kind.label(), suffix(", ")),
                percent: cpu,
                threads,
                fps,
                target: if name.is_some() { "" } else { kind.target() },
            });
        }
    }
    if let Some(row) = kcat(&broker.address) {
        rows.push(row);
    }
    rows
}

/// A build's name for the table: its file name.
fn build_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The dashboard `bin` in a 120x40 tmux pane, against `brokers` or its embedded broker: its
/// CPU, its threads and its frames per second.
fn dashboard(
    bin: &str,
    brokers: Option<&str>,
    group: &str,
) -> (f64, Vec<(String, f64)>, Option<f64>) {
    let socket = format!("{group}-tmux");
    let log = std::env::temp_dir().join(format!("{group}.log"));
    let _ = std::fs::remove_file(&log);
    let log_text = log.to_string_lossy().into_owned();
    let mut argv = vec![bin, "dash", "-g", group, "--log", &log_text];
    if let Some(brokers) = brokers {
        argv.extend(["-b", brokers]);
    }
    let pid = start_pane(&socket, &argv);
    let pid: u32 = pid.parse().expect("the pane's pid");
    let (cpu, threads) = idle_cpu(pid);
    tmux(&socket, &["send-keys", "q"]);
    wait_gone(pid, Duration::from_secs(10));
    tmux(&socket, &["kill-server"]);
    let fps = logged_fps(&log);
    let _ = std::fs::remove_file(&log);
    (cpu, threads, fps.is_finite().then_some(fps))
}

/// `score -q` of `bin` against `brokers`, its stdout dropped: its CPU and its threads.
fn score(bin: &str, brokers: &str, group: &str) -> (f64, Vec<(String, f64)>, Option<f64>) {
    let mut child = Command::new(bin)
        .args(["score", "-q", "-b", brokers, "-g", group])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} score: {e}"));
    let (cpu, threads) = idle_cpu(child.id());
    stop(&mut child);
    (cpu, threads, None)
}

/// kcat -G on the same broker, the reference; `None` where kcat is not installed.
fn kcat(brokers: &str) -> Option<IdleRow> {
    let group = format!("salary-stream-bench-idle-kcat-{}", std::process::id());
    eprintln!("idle: kcat -G ...");
    let mut child = Command::new("kcat")
        .args(["-b", brokers, "-G", &group, "-q", "experience-events"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let (cpu, threads) = idle_cpu(child.id());
    stop(&mut child);
    Some(IdleRow {
        key: "kcat_g".into(),
        label: "kcat -G, separate broker".into(),
        percent: cpu,
        threads,
        fps: None,
        target: "reference",
    })
}

/// Lets `pid` settle, then reads its CPU over [`SPAN`]: the whole process's from
/// /proc/PID/stat, each thread's from its schedstat (nanoseconds on CPU), both in % of a core.
fn idle_cpu(pid: u32) -> (f64, Vec<(String, f64)>) {
    std::thread::sleep(SETTLE);
    let before = process_cpu(pid).expect("the idle process is running");
    let threads_before = thread_cpu(pid);
    let started = Instant::now();
    std::thread::sleep(SPAN);
    let after = process_cpu(pid).expect("the idle process is still running");
    let threads_after = thread_cpu(pid);
    let span = started.elapsed().as_secs_f64();
    let percent = |cpu: Duration| cpu.as_secs_f64() / span * 100.0;
    // By name: a thread that began within the span counts from 0, one that ended is left out.
    let mut by_name: BTreeMap<String, Duration> = BTreeMap::new();
    for (tid, (name, ns)) in &threads_after {
        let was = threads_before.get(tid).map_or(0, |(_, ns)| *ns);
        *by_name.entry(name.clone()).or_default() += Duration::from_nanos(ns.saturating_sub(was));
    }
    let mut threads: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(name, cpu)| (name, percent(cpu)))
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    threads.truncate(THREADS_SHOWN);
    (percent(after.saturating_sub(before)), threads)
}

/// Each thread of `pid`: its name (`main` for the first) and its nanoseconds on CPU so far.
fn thread_cpu(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let tid: u32 = task.file_name().to_string_lossy().parse().ok()?;
            let dir = task.path();
            let ns = std::fs::read_to_string(dir.join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let name = if tid == pid {
                "main".to_owned()
            } else {
                std::fs::read_to_string(dir.join("comm"))
                    .ok()?
                    .trim()
                    .to_owned()
            };
            Some((tid, (name, ns)))
        })
        .collect()
}

/// Stops `child` with SIGINT, and with SIGKILL if it has not ended within 10 s.
fn stop(child: &mut std::process::Child) {
    // SAFETY: kill sends a signal to a process of ours that has not been reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until `pid` is gone or a zombie, at most `bound`.
fn wait_gone(pid: u32, bound: Duration) {
    let deadline = Instant::now() + bound;
    while crate::dashboard::running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}
