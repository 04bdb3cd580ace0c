//! The machine the bench runs on, as the report names it.

use std::collections::BTreeMap;

use serde::Serialize;

/// The machine the bench runs on.
#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    /// `L1d: 32K`, ... as cpu0 sees them.
    caches: BTreeMap<String, String>,
    pub kernel: String,
}

/// Reads the machine from /proc and /sys (`unknown` or empty where they do not say).
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let read = |path: String| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let mut caches = BTreeMap::new();
    for index in 0..16 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let size = read(format!("{dir}/size"));
        if size.is_empty() {
            continue;
        }
        let kind = match read(format!("{dir}/type")).as_str() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        caches.insert(format!("L{}{kind}", read(format!("{dir}/level"))), size);
    }
    let kernel = read("/proc/sys/kernel/osrelease".to_owned());
    Machine {
        cpu,
        cores,
        caches,
        kernel,
    }
}

impl Machine {
    /// The caches as one line: `L1d 32K, L1i 32K, ...`.
    pub fn caches_text(&self) -> String {
        let list: Vec<String> = self
            .caches
            .iter()
            .map(|(level, size)| format!("{level} {size}"))
            .collect();
        list.join(", ")
    }
}
