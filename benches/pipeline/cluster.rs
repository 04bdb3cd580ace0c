//! Where the Kafka parts run: a fresh `salary-stream broker` process per part, a cluster the
//! bench was pointed at, or Apache Kafka started for the run (with its TLS and SASL listeners);
//! and topics made on a cluster.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Args;
use crate::kafka_tools::KafkaTools;
use crate::watch;
use crate::{BIN, THROUGHPUT_PARTITIONS};

/// the bench was pointed at.
pub struct Broker {
    child: Option<std::process::Child>,
    pub address: String,
}

impl Broker {
    /// The broker's process, when it is the bench's own.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Starts a `salary-stream broker` of `partitions`, or names the cluster `external`.
    pub fn start(partitions: u32, external: Option<&str>) -> Broker {
        if let Some(address) = external {
            return Broker {
                child: None,
                address: address.to_owned(),
            };
        }
        let mut child = Command::new(BIN)
            .args(["broker", "--partitions", &partitions.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start salary-stream broker");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("broker address");
        Broker {
            child: Some(child),
            address: line.trim().to_owned(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where a part writes records of its own: a fresh `salary-stream broker` of
/// `THROUGHPUT_PARTITIONS` (its default input topic), or a fresh topic `bench-NAME-PID` of as many
/// partitions on the cluster `external`.
pub fn fresh_topic(external: Option<&str>, name: &str, pid: u32) -> (Broker, String) {
    let broker = Broker::start(THROUGHPUT_PARTITIONS, external);
    let topic = match external {
        None => salary_stream::engine::DEFAULT_INPUT_TOPIC.to_owned(),
        Some(_) => {
            let topic = format!("bench-{name}-{pid}");
            create_topic(&broker.address, &topic, THROUGHPUT_PARTITIONS);
            topic
        }
    };
    (broker, topic)
}

/// Creates `topic` with `partitions` (the broker's default replication) unless it exists, and
/// waits until each of its partitions has a leader, so no producer or consumer timed later
/// waits for it. Used on a real cluster only: a fresh `salary-stream broker` has its topics.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: u32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let wanted = [NewTopic::new(
        topic,
        partitions as i32,
        TopicReplication::Fixed(-1),
    )];
    let mut created = false;
    for result in runtime
        .block_on(admin.create_topics(&wanted, &options))
        .unwrap_or_else(|e| panic!("create topic {topic} on {bootstrap}: {e}"))
    {
        match result {
            Ok(_) => created = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => panic!("create topic {t} on {bootstrap}: {code}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("metadata of {topic} on {bootstrap}: {e}"));
        let ready = metadata.topics().iter().any(|t| {
            let p = t.partitions();
            t.name() == topic
                && t.error().is_none()
                && !p.is_empty()
                && (!created || p.len() == partitions as usize)
                && p.iter().all(|p| p.leader() >= 0)
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} on {bootstrap} has no leader for every partition after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The TLS listeners of the bench's Apache Kafka (`scripts/kafka --security`), for the scorer
/// over SSL and over SASL_SSL beside the same scorer over plaintext, on the same broker.
pub struct SecureListeners {
    /// The SSL listener (TLS, no client certificate), `127.0.0.1:PORT`.
    pub ssl: String,
    /// The SASL_SSL listener, `127.0.0.1:PORT`.
    pub sasl_ssl: String,
    /// The CA's PEM file, for `ssl.ca.location`.
    pub ca: String,
    /// The first user `scripts/kafka` made, with its password: `(user, password)`.
    pub user: (String, String),
}

impl SecureListeners {
    /// Reads `scripts/kafka --security`'s `key=value` lines after the address, up to `ready`;
    /// `None` if one the bench needs is missing.
    fn read(lines: &mut impl Iterator<Item = String>) -> Option<SecureListeners> {
        let mut values = std::collections::HashMap::new();
        for line in lines.by_ref() {
            if line == "ready" {
                break;
            }
            if let Some((key, value)) = line.split_once('=') {
                values.insert(key.to_owned(), value.to_owned());
            }
        }
        let users = values.remove("users")?;
        let (user, password) = users.split(',').next()?.split_once(':')?;
        Some(SecureListeners {
            ssl: values.remove("ssl")?,
            sasl_ssl: values.remove("sasl_ssl")?,
            ca: values.remove("ca")?,
            user: (user.to_owned(), password.to_owned()),
        })
    }
}

/// The broker JVM's flags: `$KAFKA_JVM_OPTS` if set, else C2 on. `scripts/kafka` runs C1 only,
/// right for quick test starts but not how users run a broker: C1's TLS is about 46 times
/// slower than C2's (BENCHMARKS.md, "What TLS costs"), and its throughput lower.
pub fn broker_jvm_opts() -> String {
    std::env::var("KAFKA_JVM_OPTS").unwrap_or_else(|_| "-XX:TieredStopAtLevel=4".to_owned())
}

/// Apache Kafka for the run (`--apache-kafka`): `scripts/kafka --security --partitions 32`,
/// stopped with SIGTERM at the end (or when the bench panics). `--security` only adds listeners:
/// the PLAINTEXT one every other measure uses is configured as without it.
struct ApacheKafka {
    child: std::process::Child,
    address: String,
    secure: SecureListeners,
    /// The broker's JVM (a child of the script), for its CPU.
    jvm: Option<u32>,
    /// Its JMX server, `127.0.0.1:PORT` (`KAFKA_JMX_PORT`), for its request counts.
    jmx: String,
}

impl ApacheKafka {
    fn start() -> ApacheKafka {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
        let started = Instant::now();
        let jmx = format!("127.0.0.1:{}", watch::free_port());
        // Its progress (and errors) go to the bench's stderr; on stdout the address, then the
        // secure listeners as key=value lines up to `ready`.
        let mut child = Command::new(script)
            .env("KAFKA_JVM_OPTS", broker_jvm_opts())
            .env("KAFKA_JMX_PORT", jmx.rsplit(':').next().unwrap_or_default())
            .args([
                "--security",
                "--partitions",
                &THROUGHPUT_PARTITIONS.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = stdout.lines().map_while(Result::ok);
        let address = lines.next().unwrap_or_default().trim().to_owned();
        let secure = (!address.is_empty())
            .then(|| SecureListeners::read(&mut lines))
            .flatten();
        let Some(secure) = secure else {
            let status = child.wait().expect("wait for scripts/kafka");
            panic!(
                "scripts/kafka --security ended ({status}) without printing its address and \
                 listeners; see its stderr above"
            );
        };
        eprintln!(
            "Apache Kafka at {address}, SSL at {}, SASL_SSL at {} ({:.1} s to start)",
            secure.ssl,
            secure.sasl_ssl,
            started.elapsed().as_secs_f64()
        );
        let jvm = watch::kafka_jvm_of(child.id());
        ApacheKafka {
            child,
            address,
            secure,
            jvm,
            jmx,
        }
    }

    /// SIGTERM, then waits for the script, which stops the broker and removes its folder.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let started = Instant::now();
            // SAFETY: a signal to our own child, whose pid is valid until it is waited for.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
            eprintln!(
                "Apache Kafka stopped ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for ApacheKafka {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The run's Kafka side, chosen by the flags: Apache Kafka if the bench started it, the
/// cluster the Kafka parts run against (none: `salary-stream broker` processes), Kafka's tools
/// if asked for, and the broker as the report names it.
pub struct Cluster {
    apache_kafka: Option<ApacheKafka>,
    given_brokers: Option<String>,
    pub tools: Option<KafkaTools>,
    /// The broker line of the report.
    pub text: String,
}

impl Cluster {
    /// Starts what the flags ask for, prints the broker line, and on a cluster makes the topics
    /// the scorers use besides their input and output.
    pub fn start(args: &Args) -> Cluster {
        // --apache-kafka: Kafka's own broker for the Kafka parts, and Kafka's own tools beside kcat.
        let apache_kafka = args.apache_kafka.then(|| {
            assert!(
                args.brokers.is_none(),
                "--apache-kafka starts its own broker: leave out --brokers (and BENCH_BROKERS)"
            );
            eprintln!(
                "starting Apache Kafka (scripts/kafka --security --partitions \
                 {THROUGHPUT_PARTITIONS}) ..."
            );
            ApacheKafka::start()
        });
        let external = apache_kafka
            .as_ref()
            .map(|k| k.address.as_str())
            .or(args.brokers.as_deref());
        let tools = (apache_kafka.is_some() || args.kafka_tools).then(|| {
            assert!(
                external.is_some(),
                "--kafka-tools needs --brokers host:port (or use --apache-kafka)"
            );
            KafkaTools::new()
        });
        // The broker's JVM for its CPU, and its JMX for its request counts: the bench's Apache
        // Kafka, or what --broker-pid and --broker-jmx name.
        let jvm = apache_kafka
            .as_ref()
            .and_then(|k| k.jvm)
            .or(args.broker_pid);
        let jmx = apache_kafka
            .as_ref()
            .map(|k| k.jmx.clone())
            .or(args.broker_jmx.clone());
        if jvm.is_some() || jmx.is_some() {
            assert!(
                external.is_some(),
                "--broker-pid and --broker-jmx need --brokers host:port"
            );
            let classpath = jmx.as_ref().map(|_| match &tools {
                Some(t) => t.classpath().to_owned(),
                None => KafkaTools::new().classpath().to_owned(),
            });
            watch::watch(jvm, jmx.as_deref().zip(classpath.as_deref()));
        }
        let watched = match (jvm, &jmx) {
            (None, None) => String::new(),
            (pid, jmx) => format!(
                "; broker JVM {}, its request counters over JMX {}",
                pid.map_or_else(
                    || "not known (no broker CPU)".to_owned(),
                    |p| format!("pid {p}")
                ),
                jmx.as_deref().unwrap_or("not read")
            ),
        };
        let text = match (&apache_kafka, external) {
            (Some(k), _) => format!(
                "Apache Kafka at {} (scripts/kafka, KAFKA_JVM_OPTS {}){watched}",
                k.address,
                broker_jvm_opts()
            ),
            (None, Some(b)) => format!("{b}{watched}"),
            (None, None) => "salary-stream broker processes (librdkafka's mock cluster)".to_owned(),
        };
        println!("broker: {text}");
        if let Some(b) = external {
            // What the scorers use besides their input and output; made if missing, kept if not.
            create_topic(
                b,
                salary_stream::engine::DEFAULT_OUTPUT_TOPIC,
                THROUGHPUT_PARTITIONS,
            );
            create_topic(b, salary_stream::engine::DEFAULT_DLQ_TOPIC, 1);
        }
        Cluster {
            apache_kafka,
            given_brokers: args.brokers.clone(),
            tools,
            text,
        }
    }

    /// The cluster the Kafka parts run against; `None`: `salary-stream broker` processes.
    pub fn external(&self) -> Option<&str> {
        self.apache_kafka
            .as_ref()
            .map(|k| k.address.as_str())
            .or(self.given_brokers.as_deref())
    }

    /// The TLS listeners of Apache Kafka, if the bench started it.
    pub fn secure(&self) -> Option<&SecureListeners> {
        self.apache_kafka.as_ref().map(|k| &k.secure)
    }

    /// Stops watching the broker, and stops Apache Kafka if the bench started it.
    pub fn stop_apache_kafka(&mut self) {
        watch::unwatch();
        if let Some(k) = self.apache_kafka.as_mut() {
            k.stop();
        }
    }
}
