//! Against Apache Kafka's own SSL, SASL_SSL and SASL_PLAINTEXT listeners (`scripts/kafka
//! --security [--acl]`): every command over TLS and each SASL mechanism with exact results,
//! `-F client.properties`, the errors a user can act on (each one line, in time, never the
//! password), the dashboard's header, and exactly-once through a SIGKILL over SASL_SSL.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{exact_prediction, json, root, scored, Child};

/// A broker with secure listeners, as `scripts/kafka --security` prints them.
struct SecureKafka {
    child: std::process::Child,
    /// The PLAINTEXT bootstrap (super user on an --acl broker).
    plain: String,
    /// The other keys: ssl, sasl_ssl, sasl_plaintext, ssl_wrong_host, ca, other_ca, users...
    info: BTreeMap<String, String>,
}

impl SecureKafka {
    fn start(acl: bool) -> SecureKafka {
        let args: &[&str] = if acl {
            &["--security", "--acl"]
        } else {
            &["--security"]
        };
        let (child, lines) = common::kafka_until_ready(args);
        let plain = lines[0].clone();
        let info = lines[1..]
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        SecureKafka { child, plain, info }
    }

    fn get(&self, key: &str) -> &str {
        self.info.get(key).map_or("", String::as_str)
    }

    /// `-X` arguments for a SASL_SSL client of `user` with `mechanism`, trusting the CA.
    fn sasl_ssl(&self, mechanism: &str, user: &str) -> Vec<String> {
        let password = format!("{user}-secret-{}", user_number(user));
        let mut args = vec![
            format!("security.protocol=SASL_SSL"),
            format!("ssl.ca.location={}", self.get("ca")),
            format!("sasl.mechanisms={mechanism}"),
        ];
        if mechanism == "OAUTHBEARER" {
            args.push("enable.sasl.oauthbearer.unsecure.jwt=true".into());
            args.push(format!("sasl.oauthbearer.config=principal={user}"));
        } else {
            args.push(format!("sasl.username={user}"));
            args.push(format!("sasl.password={password}"));
        }
        args
    }

    /// `-X` arguments for a TLS client trusting the CA.
    fn ssl(&self) -> Vec<String> {
        vec![
            "security.protocol=SSL".into(),
            format!("ssl.ca.location={}", self.get("ca")),
        ]
    }
}

impl Drop for SecureKafka {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn user_number(user: &str) -> u32 {
    match user {
        "alice" => 1,
        "bob" => 2,
        _ => 3,
    }
}

/// `salary-stream ARGS -X P...`, its exit code, stdout, stderr and how long it took; killed
/// after 60 s (exit code 137), so that one that never ends fails its test.
fn run_with(args: &[&str], properties: &[String]) -> (i32, String, String, Duration) {
    let mut all: Vec<String> = ["-s", "KILL", "60", common::bin()]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    all.extend(args.iter().map(|a| (*a).to_owned()));
    for p in properties {
        all.push("-X".into());
        all.push(p.clone());
    }
    let started = Instant::now();
    let out = std::process::Command::new("timeout")
        .args(&all)
        .current_dir(root())
        .output()
        .expect("salary-stream");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// Every line of NDJSON `stdout` is an exact prediction; returns how many there are.
fn exact_lines(stdout: &str) -> usize {
    let mut n = 0;
    for line in stdout.lines() {
        let v = json(line);
        assert_eq!(
            v["predicted_salary"].as_f64().unwrap(),
            exact_prediction(v["years_experience"].as_f64().unwrap()),
            "{line}"
        );
        n += 1;
    }
    n
}

#[test]
fn secure_kafka_every_command_scores_exactly_over_tls_and_each_sasl_mechanism() {
    let kafka = SecureKafka::start(false);
    let ssl_address = kafka.get("ssl").to_owned();
    let sasl_address = kafka.get("sasl_ssl").to_owned();
    let (code, _, stderr, _) = run_with(
        &[
            "produce",
            "-b",
            &ssl_address,
            "--count",
            "300",
            "--rate",
            "max",
            "--labels",
        ],
        &kafka.ssl(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("done: sent 300  acked 300  failed 0"),
        "{stderr}"
    );
    // Each mechanism in a group of its own reads all 300 from the beginning.
    let clients: [(&str, &str, Vec<String>); 5] = [
        ("SSL", ssl_address.as_str(), kafka.ssl()),
        (
            "PLAIN",
            sasl_address.as_str(),
            kafka.sasl_ssl("PLAIN", "alice"),
        ),
        (
            "SCRAM-SHA-256",
            sasl_address.as_str(),
            kafka.sasl_ssl("SCRAM-SHA-256", "bob"),
        ),
        (
            "SCRAM-SHA-512",
            sasl_address.as_str(),
            kafka.sasl_ssl("SCRAM-SHA-512", "alice"),
        ),
        (
            "OAUTHBEARER",
            sasl_address.as_str(),
            kafka.sasl_ssl("OAUTHBEARER", "carol"),
        ),
    ];
    for (name, address, properties) in &clients {
        let group = format!("g-{name}");
        let (code, stdout, stderr, _) = run_with(
            &[
                "score",
                "-b",
                address,
                "-g",
                &group,
                "--count",
                "300",
                "--no-output",
            ],
            properties,
        );
        assert_eq!(code, 0, "{name}: {stderr}");
        assert_eq!(exact_lines(&stdout), 300, "{name}: {stderr}");
        assert!(
            stderr.contains("done: scored 300  bad 0  delivery errors 0"),
            "{name}: {stderr}"
        );
    }
    // With output: the predictions reach the output topic over SASL_SSL.
    let scram = kafka.sasl_ssl("SCRAM-SHA-512", "alice");
    let (code, stdout, stderr, _) = run_with(
        &[
            "score",
            "-b",
            &sasl_address,
            "-g",
            "with-output",
            "--count",
            "300",
        ],
        &scram,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(exact_lines(&stdout), 300);
    let (code, stdout, stderr, _) = run_with(
        &[
            "backtest",
            "-b",
            &sasl_address,
            "-t",
            "salary-predictions",
            "--json",
        ],
        &kafka.sasl_ssl("PLAIN", "bob"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(stdout.trim())["records"], 300, "{stdout}");
    let (code, stdout, stderr, _) =
        run_with(&["backtest", "-b", &ssl_address, "--json"], &kafka.ssl());
    assert_eq!(code, 0, "{stderr}");
    let report = json(stdout.trim());
    assert_eq!(report["records"], 300, "{stdout}");
    assert_eq!(report["bad"], 0, "{stdout}");
    assert_eq!(report["models"][0]["labeled"], 300, "{stdout}");
}

#[test]
fn secure_kafka_a_client_properties_file_gives_what_x_gives_and_x_wins() {
    let kafka = SecureKafka::start(false);
    let address = kafka.get("sasl_ssl").to_owned();
    let (code, _, stderr, _) = run_with(
        &[
            "produce",
            "-b",
            kafka.get("ssl"),
            "--count",
            "50",
            "--rate",
            "max",
        ],
        &kafka.ssl(),
    );
    assert_eq!(code, 0, "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    // As a hosted cluster hands it out: Java's JAAS line, a comment, a wrong password that -X
    // then corrects.
    std::fs::write(
        &file,
        format!(
            "# from the cluster's console\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\n\
             ssl.ca.location={}\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password=\"alice-secret-1\";\n",
            kafka.get("ca")
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, by_file, stderr, _) = run_with(
        &[
            "score",
            "-b",
            &address,
            "-F",
            f,
            "-g",
            "by-file",
            "--count",
            "50",
            "--no-output",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, by_x, stderr, _) = run_with(
        &[
            "score",
            "-b",
            &address,
            "-g",
            "by-x",
            "--count",
            "50",
            "--no-output",
        ],
        &kafka.sasl_ssl("SCRAM-SHA-512", "alice"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(exact_lines(&by_file), 50);
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                let v = json(l);
                format!(
                    "{} {} {}",
                    v["partition"], v["offset"], v["predicted_salary"]
                )
            })
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&by_file), sorted(&by_x));
    // -X wins over the file: a wrong password in -X fails, the file's right one notwithstanding.
    let (code, _, stderr, _) = run_with(
        &[
            "score", "-b", &address, "-F", f, "-g", "x-wins", "--count", "1",
        ],
        &["sasl.password=not-the-password".into()],
    );
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim_end().lines().last().unwrap(),
        format!("salary-stream: authentication failed for alice with SCRAM-SHA-512 at {address}")
    );
    // The same file through $SALARY_STREAM_CONFIG.
    let out = std::process::Command::new(common::bin())
        .args([
            "score",
            "-b",
            &address,
            "-g",
            "by-env",
            "--count",
            "50",
            "--no-output",
        ])
        .env("SALARY_STREAM_CONFIG", f)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(exact_lines(&String::from_utf8_lossy(&out.stdout)), 50);
    // A line that is not key=value, and a file that is not there: one line, exit 2.
    std::fs::write(&file, "security.protocol=SSL\nsasl.password hunter2\n").unwrap();
    let (code, stdout, stderr, _) = run_with(&["score", "-b", &address, "-F", f], &[]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        format!("salary-stream: -F {f}:2: expected key=value, got \"***\"\n")
    );
    let (code, _, stderr, _) = run_with(&["produce", "-F", "/nonexistent/c.properties"], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "salary-stream: -F /nonexistent/c.properties: no such file\n"
    );
}

#[test]
fn secure_kafka_each_refusal_is_one_line_in_time_and_never_the_password() {
    let kafka = SecureKafka::start(true);
    let sasl = kafka.get("sasl_ssl").to_owned();
    let ssl = kafka.get("ssl").to_owned();
    let wrong_host = kafka.get("ssl_wrong_host").to_owned();
    let (code, _, stderr, _) = run_with(
        &[
            "produce",
            "-b",
            &kafka.plain,
            "--count",
            "20",
            "--rate",
            "max",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let mut wrong = kafka.sasl_ssl("SCRAM-SHA-512", "alice");
    wrong.retain(|p| !p.starts_with("sasl.password="));
    wrong.push("sasl.password=Wr0ng-pa55word".into());
    let other_ca = vec![
        "security.protocol=SSL".to_owned(),
        format!("ssl.ca.location={}", kafka.get("other_ca")),
    ];
    let bob = kafka.sasl_ssl("SCRAM-SHA-512", "bob");
    let carol = kafka.sasl_ssl("PLAIN", "carol");
    let cases: Vec<(&str, Vec<&str>, Vec<String>, String)> =
        vec![
        (
            "wrong password",
            vec!["score", "-b", &sasl, "--count", "1"],
            wrong,
            format!("authentication failed for alice with SCRAM-SHA-512 at {sasl}"),
        ),
        (
            "untrusted certificate",
            vec!["score", "-b", &ssl, "--count", "1"],
            other_ca,
            format!(
                "the TLS certificate of {ssl} is not trusted (self-signed certificate in \
                 certificate chain): give the CA that signed it with -X ssl.ca.location=PATH"
            ),
        ),
        (
            "a certificate for another host",
            vec!["score", "-b", &wrong_host, "--count", "1"],
            kafka.ssl(),
            format!(
                "the TLS certificate of {wrong_host} is not for 127.0.0.1 (IP address mismatch): \
                 connect by a name the certificate holds, or -X \
                 ssl.endpoint.identification.algorithm=none to skip the check"
            ),
        ),
        (
            "TLS to a plaintext port",
            vec!["score", "-b", &kafka.plain, "--count", "1"],
            kafka.ssl(),
            format!(
                "cannot reach Kafka at {0} within 10 s: {0} is a plaintext listener, not TLS: use \
                 security.protocol=PLAINTEXT (or SASL_PLAINTEXT), or the TLS listener's port",
                kafka.plain
            ),
        ),
        (
            "plaintext to a TLS port",
            vec!["score", "-b", &ssl, "--count", "1"],
            vec![],
            format!(
                "cannot reach Kafka at {ssl} within 10 s: {ssl} speaks TLS, not plaintext: add -X \
                 security.protocol=SSL (or SASL_SSL)"
            ),
        ),
        (
            "no READ on the group",
            vec!["score", "-b", &sasl, "--count", "1"],
            bob.clone(),
            "not authorized to read group salary-stream as bob".to_owned(),
        ),
        (
            "no READ on the topic",
            vec!["score", "-b", &sasl, "-g", "bob-group", "-t", "salary-predictions"],
            bob.clone(),
            "not authorized to read topic salary-predictions as bob".to_owned(),
        ),
        (
            "no WRITE on the output",
            vec!["score", "-b", &sasl, "-g", "bob-group", "-q"],
            bob,
            "not authorized to write topic salary-predictions as bob".to_owned(),
        ),
        (
            "no ACL at all",
            vec!["produce", "-b", &sasl, "--count", "1"],
            carol.clone(),
            "not authorized to write topic experience-events as carol".to_owned(),
        ),
        (
            "no ACL at all, no count: the producer stops on the refusal",
            vec!["produce", "-b", &sasl, "--rate", "1000"],
            carol,
            "not authorized to write topic experience-events as carol".to_owned(),
        ),
        (
            "GSSAPI",
            vec!["score", "-b", &sasl],
            vec![
                "security.protocol=SASL_SSL".into(),
                "sasl.mechanisms=GSSAPI".into(),
            ],
            "sasl.mechanisms=GSSAPI (Kerberos) is not built in: this build has no libsasl2; it \
             speaks PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (give one with -X \
             sasl.mechanisms=)"
                .to_owned(),
        ),
    ];
    for (name, args, properties, line) in cases {
        let (code, stdout, stderr, took) = run_with(&args, &properties);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().last().unwrap_or_default(),
            format!("salary-stream: {line}"),
            "{name}"
        );
        assert!(took < Duration::from_secs(15), "{name}: took {took:?}");
        for secret in [
            "Wr0ng-pa55word",
            "alice-secret-1",
            "bob-secret-2",
            "carol-secret-3",
        ] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{name}: {secret} printed"
            );
        }
    }
    // Refused output: nothing of bob-group was committed.
    let described = common::ApacheKafka::tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            &kafka.plain,
            "--describe",
            "--group",
            "bob-group",
        ],
        None,
    );
    for line in described
        .lines()
        .filter(|l| l.contains("experience-events"))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields[3], "-",
            "committed past what was acknowledged: {line}"
        );
    }
}

#[test]
fn secure_kafka_the_dashboard_names_the_security_and_never_logs_the_password() {
    let kafka = SecureKafka::start(false);
    // The settings in a file, as a user keeps them: the command line shows no password.
    let settings = tempfile::tempdir().unwrap();
    let file = settings.path().join("client.properties");
    std::fs::write(&file, kafka.sasl_ssl("SCRAM-SHA-512", "alice").join("\n")).unwrap();
    let sasl = kafka.get("sasl_ssl").to_owned();
    let (t, dir) = common::tmux::start_dashboard_sized(
        "dash-secure",
        "",
        &format!("-b {sasl} -F {} --produce --rate 100", file.display()),
        (140, 30),
    );
    let screen = t.wait_for("five scored events on screen", |s| {
        common::tmux::salary_rows(s).len() >= 5
    });
    assert!(
        screen.contains(&format!(
            "broker {sasl} (up)  SASL_SSL SCRAM-SHA-512 as alice  group salary-stream"
        )),
        "{screen}"
    );
    t.keys(&["q"]);
    common::tmux::assert_restored(&t);
    let log = std::fs::read_to_string(dir.path().join("dash.log")).unwrap_or_default();
    assert!(!log.contains("alice-secret-1"), "password in the log");
    assert!(!t.screen().contains("alice-secret-1"));
}

#[test]
fn secure_kafka_exactly_once_over_sasl_ssl_through_a_sigkill() {
    let kafka = SecureKafka::start(false);
    let b = kafka.get("sasl_ssl").to_owned();
    let scram = kafka.sasl_ssl("SCRAM-SHA-512", "alice");
    let with_x = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        for p in &scram {
            all.push("-X".into());
            all.push(p.clone());
        }
        all
    };
    let produce = with_x(&["produce", "-b", &b, "--count", "3000", "--rate", "1000"]);
    let produce: Vec<&str> = produce.iter().map(String::as_str).collect();
    let mut producer = Child::spawn(&produce);
    let score = with_x(&[
        "score",
        "-b",
        &b,
        "-q",
        "--exactly-once",
        "--instance-id",
        "one",
        "-X",
        "session.timeout.ms=6000",
        "-X",
        "heartbeat.interval.ms=1000",
    ]);
    let score: Vec<&str> = score.iter().map(String::as_str).collect();
    let mut first = Child::spawn(&score);
    let deadline = Instant::now() + Duration::from_secs(60);
    while scored(&first) < 300 {
        assert!(Instant::now() < deadline, "{:?}", first.stderr_lines());
        std::thread::sleep(Duration::from_millis(10));
    }
    first.child.kill().unwrap();
    first.wait(Duration::from_secs(10));
    let mut second = Child::spawn(&score);
    assert_eq!(producer.wait(Duration::from_secs(60)).code(), Some(0));
    // Read committed through the plaintext listener: each id exactly once.
    let counts = common::wait_for_id_counts(
        &kafka.plain,
        "salary-predictions",
        3000,
        Duration::from_secs(120),
    );
    second.signal("TERM");
    assert_eq!(second.wait(Duration::from_secs(15)).code(), Some(0));
    common::exactly_once_each(&counts, 3000);
}
