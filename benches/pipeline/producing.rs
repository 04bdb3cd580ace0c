//! The producing part: kcat -P, `produce --rate max` and (with Kafka's tools)
//! ProducerPerformance on the same records.

use std::time::Duration;

use crate::cluster::{fresh_topic, Broker};
use crate::measure::{timed_on, Timed};
use crate::{Run, BIN, ROUNDS};

/// The producing part: each tool's runs, and the last round's kcat broker and topic, kept for
/// the consuming part.
pub struct Produced {
    pub kcat: Vec<Timed>,
    pub ours: Vec<Timed>,
    pub kafka: Vec<Duration>,
    pub kafka_own: Vec<f64>,
    pub kept: (Broker, String),
}

/// Where one tool produces in one round: a fresh broker or topic (`cluster::fresh_topic`).
fn fresh(run: &Run<'_>, tool: &str, round: usize) -> (Broker, String) {
    fresh_topic(run.external, &format!("{tool}-{round}"), run.pid)
}

/// kcat -P, `produce --rate max` and (with Kafka's tools) ProducerPerformance, each into a fresh
/// broker or topic per round, the order rotating.
pub fn producing(run: &Run<'_>, file: &str) -> Produced {
    let (records, tools) = (run.records, run.tools);
    let n = records.to_string();
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
            .map(|&tool| (tool, fresh(run, tool, round)))
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
