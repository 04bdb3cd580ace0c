//! Running a fleet: three `score` processes in one group and one dashboard watching the group
//! without joining it. A SIGKILLed member's partitions lag, then recover as the others take them
//! over, and no record is missing from the output topic.

mod common;

use std::time::{Duration, Instant};

use common::tmux::{assert_restored, start_dashboard_sized};
use common::Child;

/// The lag shown for partition `p` in the watching dashboard's lag panel.
fn lag_of(screen: &str, p: i32) -> Option<u64> {
    let key = format!("p{p} ");
    screen.lines().find_map(|line| {
        let at = line.find(&key)?;
        line[at + key.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// `sent` and `acked` of the header's producer line.
fn sent_acked(screen: &str) -> Option<(u64, u64)> {
    let line = screen.lines().find(|l| l.contains(" sent "))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "sent")?;
    let sent = words.next()?.parse().ok()?;
    words.find(|w| *w == "acked")?;
    let acked = words.next()?.parse().ok()?;
    Some((sent, acked))
}

#[test]
fn a_watching_dashboard_sees_a_killed_member_lag_and_recover_with_nothing_lost() {
    let (_broker, b) = common::broker_process(3);
    let member = |_: usize| {
        Child::spawn(&[
            "score",
            "-b",
            &b,
            "-g",
            "fleet",
            "-q",
            "-X",
            "session.timeout.ms=3000",
            "-X",
            "heartbeat.interval.ms=500",
        ])
    };
    let mut members: Vec<Child> = (0..3).map(member).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !members
        .iter()
        .all(|m| common::assignment(m).is_some_and(|a| a.len() == 1))
    {
        assert!(
            Instant::now() < deadline,
            "the group never split three ways"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (t, _dir) = start_dashboard_sized(
        "fleet",
        "",
        &format!("-b {b} --watch-group fleet --produce --rate 100"),
        (120, 40),
    );
    t.wait_for("the whole group's predictions", |s| {
        let rate: Option<u64> = s
            .split("now ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok());
        s.contains("group fleet (watching, not joined)") && rate.is_some_and(|r| r >= 50)
    });
    // Committed offsets move once a second (auto commit), so a healthy partition lags up to about
    // a second of its records (33 at 100/s on 3 partitions); a dead member's grows past that
    // until the group takes it over (a session timeout of 3 s).
    let victim = common::assignment(&members[0]).unwrap()[0];
    members[0].child.kill().unwrap();
    members[0].wait(Duration::from_secs(10));
    t.wait_for("the killed member's partition lagging", |s| {
        lag_of(s, victim).is_some_and(|l| l >= 80)
    });
    t.wait_for("its partition taken over", |s| {
        lag_of(s, victim).is_some_and(|l| l <= 40)
    });
    t.keys(&["p"]);
    // Settled: a capture of the producer line half rewritten can pair `producer off` with the
    // counts of an earlier frame.
    let screen = t.wait_for_settled("every sent event acknowledged", |s| {
        s.contains("producer off") && sent_acked(s).is_some_and(|(sent, acked)| sent == acked)
    });
    let (_, acked) = sent_acked(&screen).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    common::read_until(&b, "salary-predictions", Duration::from_secs(90), |r| {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        seen.insert(v["id"].as_u64().unwrap());
        seen.len() as u64 >= acked
    });
    let missing: Vec<u64> = (0..acked).filter(|i| !seen.contains(i)).collect();
    assert_eq!(missing, Vec::<u64>::new(), "of {acked}");
    t.keys(&["q"]);
    assert_restored(&t);
}
