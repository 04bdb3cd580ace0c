//! Running commands and timing them: wall time, the CPU of the command and of the broker
//! process, and the medians and rates the report takes from them.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::watch::{self, Requests};

/// What a measured command took: its wall time, its CPU (user + system), the CPU the broker
/// process used over the same span (when the broker is a process of the bench's, or the
/// watched JVM of Apache Kafka), and the requests the broker counted (when its JMX is read).
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub wall: Duration,
    pub cpu: Duration,
    pub broker_cpu: Option<Duration>,
    pub requests: Option<Requests>,
    /// How busy the machine's cores were over the span, every process counted (/proc/stat), as
    /// a fraction: other work on the machine shows here and not in `cpu` or `broker_cpu`.
    pub machine_busy: Option<f64>,
}

/// The machine's CPU time so far, all cores, from /proc/stat's `cpu` line: (busy, total) in
/// clock ticks, busy being all but idle and iowait.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((total - idle, total))
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
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_s))
}

/// Measures `run`: its wall time, the CPU of the child processes it reaps, `broker`'s CPU (or
/// the watched broker JVM's) and, where the broker's JMX is read, its request counts (read
/// before and after the span, outside it).
fn measured<T>(broker: Option<u32>, run: impl FnOnce() -> T) -> (Timed, T) {
    let broker = broker.or_else(watch::broker_pid);
    let counters_before = watch::counters();
    let (cpu_before, broker_before) = (reaped_children_cpu(), broker.and_then(process_cpu));
    let machine_before = machine_ticks();
    let started = Instant::now();
    let out = run();
    let wall = started.elapsed();
    let broker_cpu = match (broker_before, broker.and_then(process_cpu)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let machine_busy = match (machine_before, machine_ticks()) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64),
        _ => None,
    };
    let cpu = reaped_children_cpu().saturating_sub(cpu_before);
    let requests = counters_before
        .and_then(|before| Some(watch::requests_between(&before, &watch::counters()?)));
    let timed = Timed {
        wall,
        cpu,
        broker_cpu,
        requests,
        machine_busy,
    };
    (timed, out)
}

/// Runs a command to completion; returns its wall time (no CPU or broker figures).
pub fn timed(program: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    let _ = run_to_end(program, args);
    started.elapsed()
}

/// Runs a command to completion, with the broker process `broker`; returns what it took.
pub fn timed_on(broker: Option<u32>, program: &str, args: &[&str]) -> Timed {
    measured(broker, || {
        let _ = run_to_end(program, args);
    })
    .0
}

/// Runs a command to completion, its stdout dropped; panics with its stderr if it fails, else
/// returns it.
pub fn run_to_end(program: &str, args: &[&str]) -> String {
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
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command to completion counting its stdout lines, with the broker process `broker`;
/// returns what it took and the count.
pub fn timed_lines(broker: Option<u32>, program: &str, args: &[&str]) -> (Timed, u64) {
    measured(broker, || count_lines(program, args))
}

/// Runs a command to completion; returns how many lines it wrote to stdout.
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

/// The median of `times` (the upper one of an even count).
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median of `values` (the upper one of an even count).
pub fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Records per second.
pub fn rate(records: u64, took: Duration) -> f64 {
    records as f64 / took.as_secs_f64()
}
