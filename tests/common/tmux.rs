//! A real terminal for the dashboard: tmux, driven with send-keys and read with capture-pane.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(name: &str) -> Tmux {
        Self::start_sized(name, 100, 30)
    }

    /// A terminal of `width` x `height`.
    pub fn start_sized(name: &str, width: u16, height: u16) -> Tmux {
        let socket = format!("salary-stream-test-{}-{name}", std::process::id());
        let t = Tmux { socket };
        let ok = Command::new("tmux")
            .args([
                "-L",
                &t.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .args([
                "env",
                "PS1=READY$ ",
                "TERM=xterm-256color",
                "bash",
                "--norc",
                "--noprofile",
            ])
            .status()
            .expect("tmux must be installed (apt-get install -y tmux)");
        assert!(ok.success());
        t.wait_for("shell prompt", |s| s.contains("READY$"));
        t
    }

    pub fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "0"])
            .args(keys)
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn query(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display-message",
                "-p",
                "-t",
                "0",
                format,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The first screen `ok` holds for, captured every 100 ms for up to 30 s; else the test
    /// fails with the last one. `ok` sees every capture in turn.
    pub fn wait_for(&self, what: &str, mut ok: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Like `wait_for`, but only a screen that three captures 100 ms apart agree on: tmux 3.3
    /// shows a frame while it is being written (it does not hold back synchronized output),
    /// so one capture can pair the new top of the screen with the old bottom; a frame left half
    /// written for 200 ms would take the dashboard stalled mid-write that long.
    pub fn wait_for_settled(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let mut same = 0;
        self.wait_for(what, |screen| {
            same = if screen == last { same + 1 } else { 0 };
            last = screen.to_owned();
            same >= 2 && ok(screen)
        })
    }

    /// The first figure `read` takes from the screen that the capture 100 ms before agrees with
    /// (`agree(before, now)`), and the screen it was read from: for a figure that changes while
    /// the rest of the screen never settles. One capture can catch it half rewritten (tmux 3.3
    /// shows a frame half written): `0.0` going to `10.3` read as `100`.
    pub fn wait_for_reading<T: Copy>(
        &self,
        what: &str,
        read: impl Fn(&str) -> Option<T>,
        agree: impl Fn(T, T) -> bool,
    ) -> (String, T) {
        let mut before = None;
        let mut agreed = None;
        let screen = self.wait_for(what, |screen| {
            let now = read(screen);
            agreed = before
                .zip(now)
                .filter(|&(a, b)| agree(a, b))
                .map(|(_, b)| b);
            before = now;
            agreed.is_some()
        });
        (screen, agreed.expect("the wait ends on an agreed reading"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

pub fn start_dashboard(name: &str) -> (Tmux, tempfile::TempDir) {
    start_dashboard_with(name, "", "")
}

/// Starts the dashboard with `env` before the command and `args` after it.
pub fn start_dashboard_with(name: &str, env: &str, args: &str) -> (Tmux, tempfile::TempDir) {
    start_dashboard_sized(name, env, args, (100, 30))
}

/// Starts the dashboard in a terminal of `size`, with `env` before the command and `args` after.
pub fn start_dashboard_sized(
    name: &str,
    env: &str,
    args: &str,
    size: (u16, u16),
) -> (Tmux, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start_sized(name, size.0, size.1);
    let log = dir.path().join("dash.log");
    t.keys(&[
        &format!(
            "cd {} && {env} {} --log {} {args}",
            super::root().display(),
            super::bin(),
            log.display()
        ),
        "Enter",
    ]);
    // The broker can be up in the first frame, and tmux 3.3 shows a frame half written: the
    // footer, the last row a frame writes, says the first frame is whole, so a test can read the
    // lines no later frame changes until a key or an event does (the model, the producer).
    t.wait_for("the dashboard whole with its broker up", |s| {
        s.contains("broker ") && s.contains("(up)") && s.lines().any(|l| l.starts_with(" q quit "))
    });
    (t, dir)
}

pub fn assert_restored(t: &Tmux) {
    t.wait_for("the shell prompt back", |s| {
        s.lines().filter(|l| l.starts_with("READY$")).count() >= 2
    });
    assert_eq!(t.query("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(t.query("#{cursor_flag}"), "1", "cursor shown");
    t.keys(&["echo restored-$((40+2))", "Enter"]);
    let screen = t.wait_for("typed input echoed and run", |s| s.contains("restored-42"));
    assert!(
        screen.contains("READY$ echo restored-$((40+2))"),
        "input echoes:\n{screen}"
    );
    assert!(
        !screen.contains("recent events"),
        "dashboard gone:\n{screen}"
    );
}

/// `(years, predicted)` of each row of the demo's events table on `screen`: a row whose first
/// cell is a time and second a partition/offset, with both numbers whole.
pub fn salary_rows(screen: &str) -> Vec<(f64, f64)> {
    screen
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_start_matches('│').split_whitespace().collect();
            if cells.len() < 4 || !cells[0].contains(':') || !cells[1].contains('/') {
                return None;
            }
            let years = cells[2].trim_end_matches('*').parse().ok()?;
            let predicted = cells[3].parse().ok()?;
            Some((years, predicted))
        })
        .collect()
}
