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
use crate::throughput::{CpuRow, KafkaMedians, Throughput};
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
    /// The full path with the ten-feature diabetes model, and against the salary model's.
    score_ten_features_per_s: u64,
    ten_features_ratio: f64,
    ten_features_record_bytes: f64,
    /// `score -r` on Avro records, against the same records as JSON, and its look-ups.
    #[serde(skip_serializing_if = "Option::is_none")]
    score_avro_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avro_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_lookups: Option<u64>,
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
    let ten = &f.ten_features;
    let ten_per_s = rate(ten.records, ten.full);
    print_rows(&[(
        "score, output + commits, 10-feature OLS: vs salary",
        ten_per_s,
        ten_per_s / rate(records, t.full),
        ">= 0.90x salary",
    )]);
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

/// Against Kafka's tools: the ratio is to the tool's own figure, which leaves out its JVM
/// start-up (and, producing, reading the payload file), while ours is the whole process; the
/// ratio to its whole process is in the last column.
fn print_kafka_rows(t: &Throughput, kafka: KafkaMedians) {
    let per_s = |d: Duration| rate(t.consumed, d);
    let (produced, bare, full, ours_p) = (t.produced, t.bare, t.full, t.ours_p);
    let KafkaMedians {
        c_wall,
        c_own,
        c_mb,
        c_fetch,
        p_wall,
        p_own,
    } = kafka;
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

/// The latency rows: p50/p99/p99.9 in milliseconds.
fn print_latency_rows(latency: &Latencies) {
    let (l1k, l1k_linger, l10k) = (latency.at_1k, latency.at_1k_linger1, latency.at_10k);
    let ms = |l: Percentiles| format!("{:.2}/{:.2}/{:.2}", l.0, l.1, l.2);
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
    let (l1k, l1k_linger, l10k) = (f.latency.at_1k, f.latency.at_1k_linger1, f.latency.at_10k);
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
        kcat_produce_per_s: whole(rate(produced, kcat_p)),
        produce_per_s: whole(rate(produced, ours_p)),
        produce_ratio: ratio(rate(produced, ours_p) / rate(produced, kcat_p)),
        latency_1k_ms: ms3(l1k),
        latency_1k_linger1_ms: ms3(l1k_linger),
        latency_10k_ms: ms3(l10k),
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
        ten_features_ratio: ratio(rate(f.ten_features.records, f.ten_features.full) / per_s(full)),
        ten_features_record_bytes: places(f.ten_features.record_bytes, 1),
        score_avro_per_s: f.registry.as_ref().map(|r| whole(rate(r.records, r.avro))),
        avro_ratio: f
            .registry
            .as_ref()
            .map(|r| ratio(rate(r.records, r.avro) / rate(r.records, r.json))),
        registry_lookups: f.registry.as_ref().map(|r| r.lookups),
        cpu_s_per_million: cpu_figures(&t.cpu_rows),
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
        .map(|&(key, _, (own, broker), _)| {
            let figure = CpuFigure {
                own: places(own, 3),
                broker: broker.map(|b| places(b, 3)),
            };
            (key, figure)
        })
        .collect()
}

/// The figures against Kafka's tools, rounded for the JSON line.
fn kafka_figures(t: &Throughput, kafka: KafkaMedians) -> KafkaFigures {
    let per_s = |d: Duration| rate(t.consumed, d);
    let whole = |v: f64| v.round() as u64;
    let ratio = |v: f64| places(v, 3);
    let (bare, full) = (t.bare, t.full);
    let KafkaMedians {
        c_wall,
        c_own,
        c_mb,
        c_fetch,
        p_wall,
        p_own,
    } = kafka;
    let ours_p = rate(t.produced, t.ours_p);
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
}
