//! An exactly-once scorer run as a supervisor runs it, for the tests where a broker goes away
//! under it (one broker restarted, a node of three killed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Child;

/// `score --exactly-once --instance-id ID -q` as a supervisor runs it: started again with the same
/// id when, and only when, it ended with exit status 75 and a line saying a new run resumes: the
/// line of a transactional call that never returned (librdkafka's coordinator hang, issues #5511
/// and #5456), or of a transaction that could neither commit nor abort (its coordinator had
/// aborted it past transaction.timeout.ms while a leader was lost).
pub struct Supervised {
    bootstrap: String,
    instance: &'static str,
    /// The run now.
    pub scorer: Child,
    /// The stderr of each run that ended stuck, in order.
    pub stuck_runs: Vec<Vec<String>>,
}

/// The start of the line a stuck run ends with.
const STUCK: &str = "salary-stream: exactly-once: librdkafka's ";
/// The end of every line a run ends with when a new run resumes.
const RESUME: &str =
    "run again with the same --instance-id to resume from the last committed transaction";

impl Supervised {
    pub fn start(bootstrap: &str, instance: &'static str) -> Supervised {
        Supervised {
            bootstrap: bootstrap.to_owned(),
            instance,
            scorer: Self::spawn(bootstrap, instance),
            stuck_runs: Vec::new(),
        }
    }

    fn spawn(bootstrap: &str, instance: &str) -> Child {
        Child::spawn(&[
            "score",
            "-b",
            bootstrap,
            "-q",
            "--exactly-once",
            "--instance-id",
            instance,
        ])
    }

    /// Starts the scorer again if it ended stuck; fails the test if it ended any other way.
    pub fn tend(&mut self) {
        if self.scorer.child.try_wait().unwrap().is_none() {
            return;
        }
        let status = self.scorer.wait(Duration::from_secs(5));
        let lines = self.scorer.stderr_lines();
        let said = lines.last().map(String::as_str).unwrap_or_default();
        let resumable = said.starts_with(STUCK)
            || said.starts_with("salary-stream: exactly-once: a transaction could not commit (")
                && said.contains(") nor abort: ");
        assert!(
            status.code() == Some(75) && resumable && said.ends_with(RESUME),
            "the scorer ended ({status}) other than for a new run to resume:\n{}",
            lines.join("\n")
        );
        eprintln!("the scorer ended, to be run again: {said}");
        self.stuck_runs.push(lines);
        self.scorer = Self::spawn(&self.bootstrap, self.instance);
    }

    /// Tends the scorer until a read_committed reader sees `want` distinct ids in the output
    /// (within `timeout`); then stops it (exit 0) and returns the ids as read after the stop.
    pub fn until_ids(&mut self, want: usize, timeout: Duration) -> BTreeMap<u64, u32> {
        let deadline = Instant::now() + timeout;
        loop {
            self.tend();
            let counts = super::committed_id_counts(
                &self.bootstrap,
                "salary-predictions",
                Duration::from_secs(20),
            );
            if counts.len() >= want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {want} ids after {timeout:?}; the scorer said:\n{}",
                counts.len(),
                self.scorer.stderr_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        self.scorer.signal("TERM");
        let status = self.scorer.wait(Duration::from_secs(30));
        assert_eq!(
            status.code(),
            Some(0),
            "{}",
            self.scorer.stderr_lines().join("\n")
        );
        super::committed_id_counts(&self.bootstrap, "salary-predictions", timeout)
    }

    /// Each stuck run named the call, the wait and the cause, and said a restart resumes.
    pub fn assert_stuck_runs_said_why(&self) {
        for lines in &self.stuck_runs {
            let said = lines.last().unwrap();
            if !said.starts_with(STUCK) {
                continue;
            }
            let call = said[STUCK.len()..].split(' ').next().unwrap();
            let waited = match call {
                "send_offsets_to_transaction" | "abort_transaction" | "init_transactions" => 15,
                "commit_transaction" => 25,
                other => panic!("not a transactional call: {other}"),
            };
            assert!(
                said.contains(&format!(" has not returned after {waited} s "))
                    && said.contains("librdkafka issues #5511 and #5456")
                    && said.ends_with(RESUME),
                "{said}"
            );
        }
    }
}
