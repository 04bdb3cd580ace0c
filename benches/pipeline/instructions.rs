//! Instructions per record, counted by callgrind: the figure that hardly moves with the machine.

use std::process::{Command, Stdio};

use serde::Serialize;

use crate::cluster::Broker;
use crate::{BIN, FETCH_WAIT, KCAT_AS_OURS, THROUGHPUT_PARTITIONS};

/// Records of the smaller and the larger callgrind run: the difference of their instruction
/// counts over the difference of their records is what a record costs, start-up, connecting and
/// the group join cancelling out.
/// (With fewer records in the run, the larger is all of them and the smaller a sixth.)
const CALLGRIND_RECORDS: (u64, u64) = (10_000, 60_000);

/// User-space instructions per record of each tool, counted by callgrind: unlike rates and CPU
/// time, they hardly move with the machine or its other load. Every thread of the process is
/// counted (librdkafka's too).
#[derive(Serialize, Clone, Copy)]
pub struct InstructionsPerRecord {
    /// Records of the smaller and the larger run.
    pub records: (u64, u64),
    pub kcat_consume: u64,
    pub score_bare: u64,
    pub score_full: u64,
    pub score_challenger: u64,
    pub kcat_produce: u64,
    pub produce: u64,
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
pub fn instructions(
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
    let kcat_produce = per_record(sizes, |n| kcat_producing(b, file, n, dir, pid))?;
    let produce = per_record(sizes, |n| producing(b, n, pid))?;
    // Everything reads what kcat wrote for the larger run.
    let topic = format!("cg-kcat-{}-{pid}", sizes.1);
    let kcat_consume = per_record(sizes, |n| kcat_consuming(b, &topic, n))?;
    let score = |extra: &[&str]| per_record(sizes, |n| scoring(b, &topic, n, pid, extra));
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

/// kcat -P of the first `n` records of `file` into a topic of its own; its instructions.
fn kcat_producing(b: &str, file: &str, n: u64, dir: &std::path::Path, pid: u32) -> Option<u64> {
    let records = first_lines(file, n, dir);
    let topic = format!("cg-kcat-{n}-{pid}");
    callgrind("kcat", &["-b", b, "-P", "-t", &topic, "-l", &records])
}

/// `produce --rate max --count n` into a topic of its own; its instructions.
fn producing(b: &str, n: u64, pid: u32) -> Option<u64> {
    let topic = format!("cg-ours-{n}-{pid}");
    let count = n.to_string();
    callgrind(
        BIN,
        &[
            "produce", "-b", b, "-t", &topic, "--rate", "max", "--count", &count,
        ],
    )
}

/// kcat -C -e of `n` records of `topic`, tuned as ours; its instructions.
fn kcat_consuming(b: &str, topic: &str, n: u64) -> Option<u64> {
    let count = n.to_string();
    let mut a = vec![
        "-b",
        b,
        "-C",
        "-t",
        topic,
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
}

/// `score --count n` of `topic` with `extra` flags, in a group of its own; its instructions.
fn scoring(b: &str, topic: &str, n: u64, pid: u32, extra: &[&str]) -> Option<u64> {
    let count = n.to_string();
    let group = format!("cg-{}-{n}-{pid}", extra.len());
    // librdkafka's statistics come once a second, and a run under valgrind lasts about
    // 50 times longer: off, or they would count as per-record work (kcat has none).
    let mut a = vec![
        "score",
        "-b",
        b,
        "-t",
        topic,
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
}
