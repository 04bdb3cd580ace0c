//! What the run prints: the machine line, the table and the JSON line (a `Results`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::any_model::TenFeatures;
use crate::dashboard::DashboardRun;
use crate::idle::IdleRow;
use crate::instructions::InstructionsPerRecord;
use crate::latency::{Latencies, Percentiles};
use crate::machine::Machine;
use crate::measure::rate;
use crate::registry::RegistryPath;
use crate::report_kafka_tools::{kafka_figures, print_kafka_rows, KafkaFigures};
use crate::throughput::{CpuRow, Throughput};
use crate::watch::Requests;
use crate::ROUNDS;

/// Everything the run measured, for the table and the JSON line.
pub struct Figures {
    pub machine: Machine,
    /// The broker line: what the Kafka parts ran against.
    pub broker: String,
    /// The records' average size in bytes.
    pub record_bytes: f64,
    pub throughput: Throughput,
    pub ten_features: TenFeatures,
    /// `None` when the registry part was skipped.
    pub registry: Option<RegistryPath>,
    pub latency: Latencies,
    /// `None` where valgrind is not installed.
    pub instructions: Option<InstructionsPerRecord>,
    /// p99 and mean of one 120x40 frame, in microseconds.
    pub frame_us: (f64, f64),
    pub dashboard: DashboardRun,
    /// A dashboard and a scorer with nothing flowing.
    pub idle: Vec<IdleRow>,
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
    /// kcat -C piped into kcat -P, records/s, and the full path's ratio to it.
    kcat_relay_per_s: u64,
    score_full_relay_ratio: f64,
    kcat_produce_per_s: u64,
    produce_per_s: u64,
    produce_ratio: f64,
    latency_1k_ms: [f64; 3],
    latency_1k_linger1_ms: [f64; 3],
    latency_10k_ms: [f64; 3],
    /// The warm-up latency measure (1,000/s, linger 0), run first and left out of the three
    /// above: its percentiles, max, and first second's p50 and max.
    latency_warm_up_ms: [f64; 3],
    latency_warm_up_max_ms: f64,
    latency_warm_up_first_second_ms: [f64; 2],
    /// The max of the three measures, in their order.
    latency_max_ms: [f64; 3],
    /// InitProducerId retries seen (warm-up, then the three).
    latency_pid_retries: [usize; 4],
    frame_p99_us: u64,
    dashboard_fps: f64,
    quit_ms: u64,
    dashboard_events: u64,
    peak_rss_mb: f64,
    rss_100k_mb: f64,
    rss_second_half_mb: [f64; 2],
    /// Idle CPU in % of one core, by row (`dash_separate_broker`, ..., `kcat_g`).
    idle_cpu_pct: BTreeMap<String, f64>,
    score_metered_per_s: u64,
    metrics_ratio: f64,
    score_challenger_per_s: u64,
    challenger_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    score_eos_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eos_ratio: Option<f64>,
    /// The full path over SSL, and its ratio to the same over plaintext (Apache Kafka only).
    #[serde(skip_serializing_if = "Option::is_none")]
    score_ssl_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_ratio: Option<f64>,
    /// The same over SASL_SSL with SCRAM-SHA-512.
    #[serde(skip_serializing_if = "Option::is_none")]
    score_sasl_ssl_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sasl_ssl_ratio: Option<f64>,
    /// The full path with the ten-feature diabetes model, and against the salary model's on as
    /// many records in the same rounds (`score_ten_features_salary_per_s`).
    score_ten_features_per_s: u64,
    score_ten_features_salary_per_s: u64,
    ten_features_ratio: f64,
    ten_features_record_bytes: f64,
    /// The ONNX models on records of the ten-feature topic, and against the OLS fit on as many
    /// records in the same rounds (`onnx_figures`).
    #[serde(flatten)]
    onnx: BTreeMap<String, serde_json::Value>,
    /// `score -r` on Avro records, against the same records as JSON, and its look-ups.
    #[serde(skip_serializing_if = "Option::is_none")]
    score_avro_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avro_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_lookups: Option<u64>,
    cpu_s_per_million: BTreeMap<&'static str, CpuFigure>,
    /// The broker's request counts by measure (where its JMX was read).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    broker_requests: BTreeMap<&'static str, RequestFigure>,
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
    /// (ours + the broker's CPU) / wall time / cores, in percent (where the broker's is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    busy_pct: Option<f64>,
    /// The cores busy over the span, every process on the machine counted, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    machine_busy_pct: Option<f64>,
}

/// `value` to `places` decimal places, for the JSON line.
pub(crate) fn places(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// One row of the table: what, its value, its ratio to the reference, the target or a note.
pub(crate) type Row<'a, T> = (&'a str, f64, f64, T);

/// The ten-feature rows: the salary model's reference on as many records, the ten-feature OLS
/// against it, then the ONNX rows.
pub fn print_ten_feature_rows(ten: &TenFeatures) {
    let (ten_per_s, salary_per_s) = (rate(ten.records, ten.full), rate(ten.records, ten.salary));
    let reference = format!("score, salary on {} records", ten.records);
    print_rows(&[
        (
            reference.as_str(),
            salary_per_s,
            1.0,
            "reference for the next row, same rounds",
        ),
        (
            "score, output + commits, 10-feature OLS: vs salary",
            ten_per_s,
            ten_per_s / salary_per_s,
            ">= 0.90x salary",
        ),
    ]);
    crate::report_onnx::print_onnx_rows(&ten.onnx);
}

pub(crate) fn print_rows<T: std::fmt::Display>(rows: &[Row<'_, T>]) {
    for (name, value, ratio, note) in rows {
        println!("{name:<48} {value:>14.0} {ratio:>9.2}x  {note}");
    }
}

fn print_cpu(rows: &[CpuRow]) {
    println!(
        "CPU seconds per million records (user + system; ratio to the tool's; broker apart; both \
         over wall time and cores):"
    );
    let own_of = |key: &str| {
        rows.iter()
            .find(|row| row.0 == key)
            .map_or(f64::NAN, |row| row.2.own)
    };
    for (_, name, cost, reference) in rows {
        let broker = cost
            .broker
            .map_or_else(|| "-".to_owned(), |b| format!("{b:.2}"));
        let busy = cost
            .busy_pct
            .map_or_else(String::new, |b| format!("  cores busy {b:.0}%"));
        let machine = cost
            .machine_busy_pct
            .map_or_else(String::new, |b| format!(" (all processes {b:.0}%)"));
        println!(
            "{name:<48} {:>14.2} {:>9.2}x  broker {broker}{busy}{machine}",
            cost.own,
            cost.own / own_of(reference)
        );
    }
    print_requests(rows);
}

/// The broker's request counts per measure (where its JMX was read): requests of each kind over
/// the measure's span, records per produce request, bytes in and out per record.
fn print_requests(rows: &[CpuRow]) {
    if rows.iter().all(|row| row.2.requests.is_none()) {
        return;
    }
    println!(
        "requests the broker counted per measure (JMX, read before and after each; medians of \
         {ROUNDS} rounds):"
    );
    println!(
        "{:<48} {:>8} {:>9} {:>8} {:>8} {:>6} {:>8} {:>9}",
        "measure", "produce", "rec/prod", "fetch", "commits", "other", "in B/rec", "out B/rec"
    );
    for (_, name, cost, _) in rows {
        let Some(r) = cost.requests else { continue };
        let f = request_figure(cost.records, r);
        let per_produce = f
            .records_per_produce
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        println!(
            "{name:<48} {:>8} {per_produce:>9} {:>8} {:>8} {:>6} {:>8.1} {:>9.1}",
            r.produce,
            r.fetch,
            r.offset_commit,
            r.other,
            f.bytes_in_per_record,
            f.bytes_out_per_record
        );
    }
}

/// A measure's request counts as the JSON line gives them.
#[derive(Serialize, Clone, Copy)]
struct RequestFigure {
    produce: u64,
    fetch: u64,
    offset_commit: u64,
    other: u64,
    /// Records the broker took in (predictions, for the full path), per produce request.
    #[serde(skip_serializing_if = "Option::is_none")]
    records_per_produce: Option<f64>,
    records_in: u64,
    /// Bytes of record batches taken in, and of records fetched, per record of the measure.
    bytes_in_per_record: f64,
    bytes_out_per_record: f64,
}

fn request_figure(records: u64, r: Requests) -> RequestFigure {
    let per_record = |bytes: u64| places(bytes as f64 / records.max(1) as f64, 1);
    RequestFigure {
        produce: r.produce,
        fetch: r.fetch,
        offset_commit: r.offset_commit,
        other: r.other,
        records_per_produce: (r.produce > 0)
            .then(|| places(r.messages_in as f64 / r.produce as f64, 1)),
        records_in: r.messages_in,
        bytes_in_per_record: per_record(r.bytes_in),
        bytes_out_per_record: per_record(r.bytes_out),
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

/// The machine line the run opens with.
pub fn print_machine(machine: &Machine) {
    println!(
        "machine: {} ({} cores; {}), kernel {}",
        machine.cpu,
        machine.cores,
        machine.caches_text(),
        machine.kernel
    );
}

/// The table: the heading, throughput, CPU, instructions, Kafka's tools (if run), latency and
/// the screen.
pub fn print_table(f: &Figures) {
    let t = &f.throughput;
    let (produced, records, record_bytes) = (t.produced, t.consumed, f.record_bytes);
    println!();
    println!("machine: {}, {} cores", f.machine.cpu, f.machine.cores);
    println!("broker: {}", f.broker);
    println!(
        "{produced} records produced ({record_bytes:.1} bytes each on average), {records} \
         consumed; medians of {ROUNDS} rounds"
    );
    println!("{:<48} {:>14} {:>10}  target", "measure", "value", "ratio");
    print_rows(&throughput_rows(t));
    print_ten_feature_rows(&f.ten_features);
    if let Some(r) = &f.registry {
        let (avro, json) = (rate(r.records, r.avro), rate(r.records, r.json));
        print_rows(&[(
            "score -r, output + commits, Avro: vs same as JSON",
            avro,
            avro / json,
            ">= 0.80x JSON",
        )]);
        println!(
            "{:<48} {:>14}             one per schema id ({} records)",
            "registry look-ups, one score -r run", r.lookups, r.records
        );
    }
    print_cpu(&t.cpu_rows);
    print_instructions(f.instructions.as_ref());
    if let Some(kafka) = t.kafka {
        print_kafka_rows(t, kafka);
    }
    print_latency_rows(&f.latency);
    print_screen_rows(f.frame_us, &f.dashboard);
    print_idle_rows(&f.idle);
}

/// The idle rows: CPU over the span in % of one core, the busiest threads, a dashboard's frames
/// per second.
pub fn print_idle_rows(rows: &[IdleRow]) {
    println!("idle, nothing flowing (% of one core over 10 s; busiest threads):");
    for row in rows {
        let threads: Vec<String> = row
            .threads
            .iter()
            .map(|(name, pct)| format!("{name} {pct:.2}"))
            .collect();
        let fps = row
            .fps
            .map_or_else(String::new, |fps| format!("; {fps:.1} frames/s"));
        println!(
            "{:<48} {:>13.2}% {:>10}  {}{fps}",
            row.label,
            row.percent,
            row.target,
            threads.join(", ")
        );
    }
}

/// The throughput rows: records/s, and the ratio to kcat (or to the same run without the option,
/// or over plaintext).
fn throughput_rows(t: &Throughput) -> Vec<Row<'static, &'static str>> {
    let (produced, records) = (t.produced, t.consumed);
    let (kcat_plain, kcat_tuned, bare, full) = (t.kcat_plain, t.kcat_tuned, t.bare, t.full);
    let (metered, challenged, kcat_p, ours_p) = (t.metered, t.challenged, t.kcat_p, t.ours_p);
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
            "relay: kcat -C | kcat -P, tuned as ours (records/s)",
            per_s(t.kcat_relay),
            per_s(t.kcat_relay) / per_s(kcat_tuned),
            "the full path's work, by kcat",
        ),
        (
            "score, output + commits: vs kcat -C | kcat -P",
            per_s(full),
            per_s(full) / per_s(t.kcat_relay),
            "reported",
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
    if let Some(eos) = t.eos {
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
    // Over the same broker's TLS listeners, after the other score rows.
    let produce_rows = rows.len() - 2;
    let tls_rows = [
        (
            "score, output + commits, over SSL: vs plaintext",
            t.ssl,
            ">= 0.7x plaintext",
        ),
        (
            "score, output + commits, over SASL_SSL SCRAM-SHA-512: vs plaintext",
            t.sasl_ssl,
            "reported",
        ),
    ];
    let tls_rows = tls_rows
        .into_iter()
        .filter_map(|(name, took, target)| {
            took.map(|took| (name, per_s(took), per_s(took) / per_s(full), target))
        })
        .collect::<Vec<_>>();
    rows.splice(produce_rows..produce_rows, tls_rows);
    rows
}

/// The latency rows: p50/p99/p99.9 in milliseconds, the warm-up first (discarded); each with
/// its max, its first second and its InitProducerId retries.
pub fn print_latency_rows(latency: &Latencies) {
    let ms = |l: Percentiles| format!("{:.2}/{:.2}/{:.2}", l.0, l.1, l.2);
    let rows = [
        (
            "latency warm-up, discarded: 1,000/s, linger 0 (ms)",
            latency.warm_up,
            "",
        ),
        (
            "latency p50/p99/p99.9 at 1,000/s, linger 0 (ms)",
            latency.at_1k,
            "p99 <= 5 ms",
        ),
        (
            "latency p50/p99/p99.9 at 1,000/s, linger 1 (ms)",
            latency.at_1k_linger1,
            "",
        ),
        (
            "latency p50/p99/p99.9 at 10,000/s, linger 1 (ms)",
            latency.at_10k,
            "",
        ),
    ];
    for (name, run, target) in rows {
        println!(
            "{name:<48} {:>14}  {target:<11} max {:.2}; first second p50 {:.2}, max {:.2}; \
             PID retries {}",
            ms(run.percentiles),
            run.max,
            run.first_second.0,
            run.first_second.1,
            run.pid_retries
        );
    }
}

/// The screen rows: frame render time, and the dashboard under load.
fn print_screen_rows((frame_p99_us, frame_mean_us): (f64, f64), dash: &DashboardRun) {
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
}

/// The JSON line.
pub fn print_json(f: Figures) {
    println!(
        "{}",
        serde_json::to_string(&results(f)).expect("the figures serialize")
    );
}

/// Every figure of the run, rounded for the JSON line.
fn results(f: Figures) -> Results {
    let t = &f.throughput;
    let (produced, records) = (t.produced, t.consumed);
    let (kcat_plain, kcat_tuned, bare, full) = (t.kcat_plain, t.kcat_tuned, t.bare, t.full);
    let (metered, challenged, kcat_p, ours_p) = (t.metered, t.challenged, t.kcat_p, t.ours_p);
    let (l1k, l1k_linger, l10k) = (
        f.latency.at_1k.percentiles,
        f.latency.at_1k_linger1.percentiles,
        f.latency.at_10k.percentiles,
    );
    let warm_up = f.latency.warm_up;
    let (l1k_max, l1k_linger_max, l10k_max) = (
        f.latency.at_1k.max,
        f.latency.at_1k_linger1.max,
        f.latency.at_10k.max,
    );
    let dash = &f.dashboard;
    let per_s = |t: Duration| rate(records, t);
    let whole = |v: f64| v.round() as u64;
    let ratio = |v: f64| places(v, 3);
    let ms3 = |l: (f64, f64, f64)| [places(l.0, 3), places(l.1, 3), places(l.2, 3)];
    Results {
        produced,
        consumed: records,
        rounds: ROUNDS,
        kcat_consume_per_s: whole(per_s(kcat_plain)),
        kcat_tuned_consume_per_s: whole(per_s(kcat_tuned)),
        score_bare_per_s: whole(per_s(bare)),
        score_full_per_s: whole(per_s(full)),
        score_bare_ratio: ratio(per_s(bare) / per_s(kcat_tuned)),
        score_full_ratio: ratio(per_s(full) / per_s(kcat_tuned)),
        kcat_relay_per_s: whole(per_s(t.kcat_relay)),
        score_full_relay_ratio: ratio(per_s(full) / per_s(t.kcat_relay)),
        kcat_produce_per_s: whole(rate(produced, kcat_p)),
        produce_per_s: whole(rate(produced, ours_p)),
        produce_ratio: ratio(rate(produced, ours_p) / rate(produced, kcat_p)),
        latency_1k_ms: ms3(l1k),
        latency_1k_linger1_ms: ms3(l1k_linger),
        latency_10k_ms: ms3(l10k),
        latency_warm_up_ms: ms3(warm_up.percentiles),
        latency_warm_up_max_ms: places(warm_up.max, 3),
        latency_warm_up_first_second_ms: [
            places(warm_up.first_second.0, 3),
            places(warm_up.first_second.1, 3),
        ],
        latency_max_ms: [l1k_max, l1k_linger_max, l10k_max].map(|v| places(v, 3)),
        latency_pid_retries: [
            warm_up.pid_retries,
            f.latency.at_1k.pid_retries,
            f.latency.at_1k_linger1.pid_retries,
            f.latency.at_10k.pid_retries,
        ],
        frame_p99_us: whole(f.frame_us.0),
        dashboard_fps: places(dash.fps, 1),
        quit_ms: whole(dash.quit_ms),
        dashboard_events: dash.events,
        peak_rss_mb: places(dash.peak_rss_mb, 1),
        rss_100k_mb: places(dash.rss_after_first_100k_mb, 1),
        rss_second_half_mb: [
            places(dash.rss_second_half_mb.0, 1),
            places(dash.rss_second_half_mb.1, 1),
        ],
        idle_cpu_pct: f
            .idle
            .iter()
            .map(|row| (row.key.clone(), places(row.percent, 2)))
            .collect(),
        score_metered_per_s: whole(per_s(metered)),
        metrics_ratio: ratio(per_s(metered) / per_s(full)),
        score_challenger_per_s: whole(per_s(challenged)),
        challenger_ratio: ratio(per_s(challenged) / per_s(full)),
        score_eos_per_s: t.eos.map(|t| whole(per_s(t))),
        eos_ratio: t.eos.map(|t| ratio(per_s(t) / per_s(full))),
        score_ssl_per_s: t.ssl.map(|t| whole(per_s(t))),
        ssl_ratio: t.ssl.map(|t| ratio(per_s(t) / per_s(full))),
        score_sasl_ssl_per_s: t.sasl_ssl.map(|t| whole(per_s(t))),
        sasl_ssl_ratio: t.sasl_ssl.map(|t| ratio(per_s(t) / per_s(full))),
        score_ten_features_per_s: whole(rate(f.ten_features.records, f.ten_features.full)),
        score_ten_features_salary_per_s: whole(rate(f.ten_features.records, f.ten_features.salary)),
        ten_features_ratio: ratio(
            f.ten_features.salary.as_secs_f64() / f.ten_features.full.as_secs_f64(),
        ),
        ten_features_record_bytes: places(f.ten_features.record_bytes, 1),
        onnx: crate::report_onnx::onnx_figures(&f.ten_features.onnx),
        score_avro_per_s: f.registry.as_ref().map(|r| whole(rate(r.records, r.avro))),
        avro_ratio: f
            .registry
            .as_ref()
            .map(|r| ratio(rate(r.records, r.avro) / rate(r.records, r.json))),
        registry_lookups: f.registry.as_ref().map(|r| r.lookups),
        cpu_s_per_million: cpu_figures(&t.cpu_rows),
        broker_requests: t
            .cpu_rows
            .iter()
            .filter_map(|&(key, _, cost, _)| {
                Some((key, request_figure(cost.records, cost.requests?)))
            })
            .collect(),
        instructions_per_record: f.instructions,
        record_bytes: places(f.record_bytes, 1),
        kafka: t.kafka.map(|k| kafka_figures(t, k)),
        broker: f.broker,
        machine: f.machine,
    }
}

/// The CPU rows by JSON key, to three places.
fn cpu_figures(rows: &[CpuRow]) -> BTreeMap<&'static str, CpuFigure> {
    rows.iter()
        .map(|&(key, _, cost, _)| {
            let figure = CpuFigure {
                own: places(cost.own, 3),
                broker: cost.broker.map(|b| places(b, 3)),
                busy_pct: cost.busy_pct.map(|b| places(b, 1)),
                machine_busy_pct: cost.machine_busy_pct.map(|b| places(b, 1)),
            };
            (key, figure)
        })
        .collect()
}
