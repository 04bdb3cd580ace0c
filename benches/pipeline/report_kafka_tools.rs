//! The rows against Apache Kafka's own perf tools (`--apache-kafka`, `--kafka-tools`): the
//! table's section and the JSON line's figures.

use std::time::Duration;

use serde::Serialize;

use crate::measure::rate;
use crate::report::{places, print_rows};
use crate::throughput::{KafkaMedians, Throughput};

/// Against Apache Kafka's own perf tools (`--apache-kafka`, `--kafka-tools`).
#[derive(Serialize)]
pub(crate) struct KafkaFigures {
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

/// Against Kafka's tools: the ratio is to the tool's own figure, which leaves out its JVM
/// start-up (and, producing, reading the payload file), while ours is the whole process; the
/// ratio to its whole process is in the last column.
pub(crate) fn print_kafka_rows(t: &Throughput, kafka: KafkaMedians) {
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

/// The figures against Kafka's tools, rounded for the JSON line.
pub(crate) fn kafka_figures(t: &Throughput, kafka: KafkaMedians) -> KafkaFigures {
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
