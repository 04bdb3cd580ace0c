//! The cluster as a client sees it: how many brokers are up of those it knows, and how often the
//! partitions in use changed leader. Read from librdkafka's statistics, which every client
//! emits once a second.

use std::collections::BTreeMap;

use rdkafka::statistics::Statistics;

/// Brokers up of known, and leader changes seen on the topics in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterHealth {
    /// Brokers the client holds a connection to.
    pub up: usize,
    /// Brokers the client knows of (from metadata; bootstrap entries not counted).
    pub known: usize,
    /// Times a partition in use got a new leader since the start.
    pub leader_changes: u64,
}

impl ClusterHealth {
    /// The health worth showing: only for a cluster (more than one broker), or while one is
    /// down. A single healthy broker (the demo's) shows nothing.
    pub fn worth_showing(&self) -> bool {
        self.known > 1 || self.up < self.known
    }

    /// `brokers 2/3, 1 leader change`.
    pub fn text(&self) -> String {
        let mut text = format!("brokers {}/{}", self.up, self.known);
        match self.leader_changes {
            0 => {}
            1 => text.push_str(", 1 leader change"),
            n => text.push_str(&format!(", {n} leader changes")),
        }
        text
    }
}

/// Follows the statistics of one client and says when what it shows changed.
#[derive(Debug, Default)]
pub struct ClusterWatch {
    leaders: BTreeMap<(String, i32), i32>,
    health: Option<ClusterHealth>,
}

impl ClusterWatch {
    /// Reads one statistics report for `topics`; the new health if it changed.
    pub fn update(&mut self, stats: &Statistics, topics: &[&str]) -> Option<ClusterHealth> {
        let brokers = stats.brokers.values().map(|b| (b.nodeid, b.state.as_str()));
        let leaders = topics.iter().flat_map(|topic| {
            stats.topics.get(*topic).into_iter().flat_map(move |t| {
                t.partitions
                    .values()
                    .map(move |p| (*topic, p.partition, p.leader))
            })
        });
        self.observe(brokers, leaders)
    }

    /// Takes the brokers `(node id, state)` (bootstrap entries have id -1) and the leaders
    /// `(topic, partition, leader id)` (-1: none known) of one report; the new health if it
    /// changed.
    pub fn observe<'a>(
        &mut self,
        brokers: impl IntoIterator<Item = (i32, &'a str)>,
        leaders: impl IntoIterator<Item = (&'a str, i32, i32)>,
    ) -> Option<ClusterHealth> {
        let (mut up, mut known) = (0, 0);
        for (_, state) in brokers.into_iter().filter(|(id, _)| *id >= 0) {
            known += 1;
            if state == "UP" {
                up += 1;
            }
        }
        let mut changes = self.health.map_or(0, |h| h.leader_changes);
        // A leader of -1 is none known right now: the change is counted when the new one is.
        for (topic, partition, leader) in leaders {
            if partition < 0 || leader < 0 {
                continue;
            }
            match self.leaders.insert((topic.to_owned(), partition), leader) {
                Some(before) if before != leader => changes += 1,
                _ => {}
            }
        }
        let health = ClusterHealth {
            up,
            known,
            leader_changes: changes,
        };
        (self.health != Some(health)).then(|| {
            self.health = Some(health);
            health
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        watch: &mut ClusterWatch,
        brokers: &[(i32, &'static str)],
        leaders: &[(i32, i32)],
    ) -> Option<ClusterHealth> {
        let leaders: Vec<(&str, i32, i32)> = leaders
            .iter()
            .map(|(p, l)| ("experience-events", *p, *l))
            .chain(std::iter::once(("experience-events", -1, 1)))
            .collect();
        // librdkafka lists the bootstrap address as a broker of node id -1.
        let brokers = brokers.iter().copied().chain(std::iter::once((-1, "UP")));
        watch.observe(brokers, leaders)
    }

    #[test]
    fn brokers_up_of_known_and_leader_changes_are_counted() {
        let mut watch = ClusterWatch::default();
        let all_up = [(1, "UP"), (2, "UP"), (3, "UP")];
        let first = report(&mut watch, &all_up, &[(0, 1), (1, 2), (2, 3)]).expect("first");
        assert_eq!(
            first,
            ClusterHealth {
                up: 3,
                known: 3,
                leader_changes: 0
            }
        );
        assert_eq!(first.text(), "brokers 3/3");
        assert_eq!(
            report(&mut watch, &all_up, &[(0, 1), (1, 2), (2, 3)]),
            None,
            "nothing changed"
        );
        // Node 1 dies: partition 0 has no leader for a moment, then node 2 leads it.
        let one_down = [(1, "DOWN"), (2, "UP"), (3, "UP")];
        let down = report(&mut watch, &one_down, &[(0, -1), (1, 2), (2, 3)]).unwrap();
        assert_eq!(down.text(), "brokers 2/3");
        let moved = report(&mut watch, &one_down, &[(0, 2), (1, 2), (2, 3)]).unwrap();
        assert_eq!(moved.text(), "brokers 2/3, 1 leader change");
        let back = report(&mut watch, &all_up, &[(0, 1), (1, 2), (2, 1)]).unwrap();
        assert_eq!(back.text(), "brokers 3/3, 3 leader changes");
    }

    #[test]
    fn a_single_healthy_broker_is_not_worth_showing() {
        let one = ClusterHealth {
            up: 1,
            known: 1,
            leader_changes: 0,
        };
        assert!(!one.worth_showing());
        assert!(ClusterHealth { up: 0, ..one }.worth_showing());
        assert!(ClusterHealth {
            known: 3,
            up: 3,
            ..one
        }
        .worth_showing());
    }
}
