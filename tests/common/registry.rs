//! Apicurio Registry for the tests, started by `scripts/registry` (in memory, or in a database
//! folder with `--data`), printing its Confluent-compatible API's URL first.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Apicurio Registry started by `scripts/registry`; stopped (SIGTERM) when dropped.
pub struct Registry {
    child: Child,
    pub url: String,
}

impl Registry {
    pub fn start(args: &[&str]) -> Registry {
        let mut child = Command::new(crate::common::root().join("scripts/registry"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("scripts/registry");
        let stdout = child.stdout.take().expect("a stdout pipe");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line.trim().to_owned());
        });
        let url = rx
            .recv_timeout(Duration::from_secs(300))
            .expect("scripts/registry printed no URL within 300 s");
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/apis/ccompat/v7"),
            "scripts/registry failed: {url:?}"
        );
        Registry { child, url }
    }

    pub fn port(&self) -> String {
        let rest = self.url.trim_start_matches("http://127.0.0.1:");
        rest[..rest.find('/').unwrap_or(rest.len())].to_owned()
    }

    /// Stops the registry and waits until the script has exited (143 after SIGTERM).
    pub fn stop(mut self) {
        signal("TERM", self.child.id());
        let status = self.child.wait().expect("scripts/registry exits");
        assert_eq!(status.code(), Some(143));
    }

    /// The registry's JVM (the script's child).
    pub fn jvm_pid(&self) -> u32 {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                .unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("apicurio-registry-app"))
            })
            .expect("the registry's JVM")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal("TERM", self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// Sends signal `name` (`TERM`, `STOP`, `CONT`) to `pid`.
pub fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}
