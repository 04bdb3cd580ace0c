//! The screen: one frame's render time, and the dashboard under tmux with its producer
//! unthrottled (frames per second, memory, how fast `q` quits).

use std::process::Command;
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::{common, BIN};

/// p99 and mean of one 120x40 frame, in microseconds.
pub fn frame_render_us() -> (f64, f64) {
    let app = common::known_app();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("bounds");
    for _ in 0..3000 {
        let started = Instant::now();
        terminal
            .draw(|f| salary_stream::ui::render(f, &app))
            .expect("draw");
        h.saturating_record(started.elapsed().as_micros().max(1) as u64);
    }
    (h.value_at_quantile(0.99) as f64, h.mean())
}

/// Runs tmux on the bench's own server `socket`; returns its stdout.
pub fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux (apt-get install -y tmux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `Vm*:` figure of /proc/PID/status in kB; 0 once the process is gone.
fn vm_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What the dashboard under load showed.
pub struct DashboardRun {
    pub events: u64,
    pub peak_rss_mb: f64,
    pub rss_after_first_100k_mb: f64,
    /// Lowest and highest RSS sampled (every 0.5 s) over the second half of the events.
    pub rss_second_half_mb: (f64, f64),
    pub fps: f64,
    pub quit_ms: f64,
}

/// The dashboard under tmux with the producer unthrottled until `events` are scored.
pub fn dashboard_under_load(events: u64) -> DashboardRun {
    let socket = format!("salary-stream-bench-{}", std::process::id());
    let log = std::env::temp_dir().join(format!("salary-stream-bench-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let pid = start_dashboard(&socket, &log.to_string_lossy());
    let sampled = sample_until(&socket, &pid, events);
    let peak = vm_kb(&pid, "VmHWM:");
    assert!(peak > 0, "the dashboard is still running");
    let quit_ms = quit(&socket, &pid);
    tmux(&socket, &["kill-server"]);
    let (lo, hi) = sampled.rss_second_half_kb;
    DashboardRun {
        events: sampled.events,
        peak_rss_mb: peak as f64 / 1024.0,
        rss_after_first_100k_mb: sampled.rss_after_100k_kb as f64 / 1024.0,
        rss_second_half_mb: (lo as f64 / 1024.0, hi as f64 / 1024.0),
        fps: logged_fps(&log),
        quit_ms,
    }
}

/// Starts `dash --produce --rate max --log LOG` in a 120x40 tmux session; returns its pid.
fn start_dashboard(socket: &str, log: &str) -> String {
    start_pane(
        socket,
        &[BIN, "dash", "--produce", "--rate", "max", "--log", log],
    )
}

/// Starts `argv` (a program and its arguments) in a 120x40 session of tmux server `socket`;
/// returns its pid once the pane runs it.
pub fn start_pane(socket: &str, argv: &[&str]) -> String {
    // Arguments one by one, so tmux runs the program itself rather than a shell around it.
    let mut args = vec![
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
    ];
    args.extend_from_slice(argv);
    tmux(socket, &args);
    let pid = tmux(socket, &["display-message", "-p", "#{pane_pid}"])
        .trim()
        .to_owned();
    // The pane's process is the tmux server's fork until it execs the program: on a loaded
    // machine /proc can show it before the exec ("tmux: server"). The kernel keeps 15 bytes of
    // its name.
    let name: String = std::path::Path::new(argv[0])
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while comm().trim() != name && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(comm().trim(), name, "the pane runs {}", argv[0]);
    pid
}

/// What the screen and /proc showed while the dashboard scored.
struct Sampled {
    /// Events on the screen at the last sample.
    events: u64,
    /// RSS at the first sample past 100,000 events (0 if the run never got there).
    rss_after_100k_kb: u64,
    /// Lowest and highest RSS sampled over the second half of the events.
    rss_second_half_kb: (u64, u64),
}

/// Reads the screen's event total and the RSS every 0.5 s until `events` (or 600 s).
fn sample_until(socket: &str, pid: &str, events: u64) -> Sampled {
    let total = |screen: &str| -> u64 {
        screen
            .split("total ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut after_100k = 0;
    let mut seen = 0;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while seen < events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        seen = total(&tmux(socket, &["capture-pane", "-p"]));
        let rss = vm_kb(pid, "VmRSS:");
        samples.push((seen, rss));
        if after_100k == 0 && seen >= 100_000 {
            after_100k = rss;
        }
    }
    let second_half = samples
        .iter()
        .filter(|(n, _)| *n >= seen / 2)
        .map(|(_, r)| *r);
    let (lo, hi) = second_half.fold((u64::MAX, 0), |(lo, hi), r| (lo.min(r), hi.max(r)));
    Sampled {
        events: seen,
        rss_after_100k_kb: after_100k,
        rss_second_half_kb: (lo, hi),
    }
}

/// Sends `q`; returns the milliseconds until the dashboard has exited (at most 30 s).
fn quit(socket: &str, pid: &str) -> f64 {
    let started = Instant::now();
    tmux(socket, &["send-keys", "q"]);
    while running(pid) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    started.elapsed().as_secs_f64() * 1000.0
}

/// The frames per second of the dashboard's closing `frames drawn` log line; NaN without one.
pub fn logged_fps(log: &std::path::Path) -> f64 {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| l.contains("frames drawn"))
                .and_then(|l| l.split("fps=").nth(1))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// Whether process `pid` still runs. Exited means gone or a zombie: tmux reaps its pane's
/// process late under load.
pub fn running(pid: impl std::fmt::Display) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}
