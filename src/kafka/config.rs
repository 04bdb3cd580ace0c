//! Typed options turned into librdkafka client configurations, in one place.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

/// Words in a librdkafka property name that mark its value as a secret, never to be printed.
const SECRET_MARKERS: [&str; 5] = ["password", "secret", "jaas", "key", "token"];

/// Where to find Kafka and how to talk to it, shared by every client the engine creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub bootstrap: String,
    /// Extra librdkafka properties (`-X key=value`), applied last so they win.
    pub properties: Vec<(String, String)>,
    /// The broker is the embedded mock cluster (consumers tune their timeouts for it).
    pub embedded: bool,
}

/// Parses one `-X key=value` argument.
pub fn parse_property(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, got {:?}", redact_arg(arg))),
    }
}

/// Whether a property's value must never be printed or logged.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| key.contains(m))
}

fn redact_arg(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _)) if is_secret(k) => format!("{k}=***"),
        None if is_secret(arg) => "***".to_owned(),
        _ => arg.to_owned(),
    }
}

/// The properties as `key=value` text, with secret values replaced by `***`.
pub fn redacted(properties: &[(String, String)]) -> Vec<String> {
    properties
        .iter()
        .map(|(k, v)| {
            if is_secret(k) {
                format!("{k}=***")
            } else {
                format!("{k}={v}")
            }
        })
        .collect()
}

/// `text` with the value of every secret property replaced by `***` (librdkafka's configuration
/// errors quote the value they refused).
pub fn redact_text(text: &str, properties: &[(String, String)]) -> String {
    properties
        .iter()
        .filter(|(k, v)| is_secret(k) && !v.is_empty())
        .fold(text.to_owned(), |t, (_, v)| t.replace(v.as_str(), "***"))
}

impl KafkaOptions {
    /// Whether clients talk to the brokers without TLS (`security.protocol` names no SSL).
    pub fn plaintext(&self) -> bool {
        !self
            .properties
            .iter()
            .any(|(k, v)| k.trim() == "security.protocol" && v.to_ascii_lowercase().contains("ssl"))
    }

    /// Most bytes in one producer batch. On the embedded broker the broker's memory is the
    /// process's own, and batches of librdkafka's 1 MB, held by producer, broker and consumer
    /// alike, raised the unthrottled dashboard's peak to 66.8 MB (51.9 MB with 128 KB, for 12%
    /// fewer events a second).
    pub fn producer_batch_bytes(&self) -> &'static str {
        if self.embedded {
            "131072"
        } else {
            "1000000"
        }
    }

    /// Whether the user chose how librdkafka partitions records (`-X partitioner=...` or
    /// `-X sticky.partitioning.linger.ms=...`): then librdkafka chooses for keyless records too.
    pub fn partitions_chosen_by_user(&self) -> bool {
        self.properties
            .iter()
            .any(|(k, _)| matches!(k.trim(), "partitioner" | "sticky.partitioning.linger.ms"))
    }

    /// A configuration with the bootstrap servers, quiet logging, `defaults`, then the user's
    /// properties (which win).
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "salary-stream")
            // Connect to every broker at once rather than when first needed: a group join and
            // a producer's first records otherwise wait for that connection (about 50 ms of
            // every start, even on loopback).
            .set("enable.sparse.connections", "false")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_properties() {
        assert_eq!(
            parse_property("security.protocol=SASL_SSL"),
            Ok(("security.protocol".into(), "SASL_SSL".into()))
        );
        assert_eq!(parse_property("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(
            parse_property("novalue"),
            Err("expected key=value, got \"novalue\"".into())
        );
        assert_eq!(
            parse_property("=x"),
            Err("expected key=value, got \"=x\"".into())
        );
        assert_eq!(
            parse_property("sasl.passwordhunter2"),
            Err("expected key=value, got \"***\"".into())
        );
    }

    #[test]
    fn redacts_secrets() {
        let props = vec![
            ("sasl.password".to_owned(), "hunter2".to_owned()),
            ("sasl.username".to_owned(), "alice".to_owned()),
            ("ssl.key.pem".to_owned(), "PEM".to_owned()),
            ("sasl.oauthbearer.client.secret".to_owned(), "s".to_owned()),
            ("sasl.jaas.config".to_owned(), "j".to_owned()),
        ];
        assert_eq!(
            redacted(&props),
            vec![
                "sasl.password=***",
                "sasl.username=alice",
                "ssl.key.pem=***",
                "sasl.oauthbearer.client.secret=***",
                "sasl.jaas.config=***"
            ]
        );
    }

    #[test]
    fn redacts_secret_values_in_text() {
        let props = vec![
            ("sasl.password".to_owned(), "hunter2".to_owned()),
            ("sasl.username".to_owned(), "alice".to_owned()),
            ("my.token".to_owned(), String::new()),
        ];
        assert_eq!(
            redact_text("bad sasl.password hunter2 for alice", &props),
            "bad sasl.password *** for alice"
        );
    }

    #[test]
    fn producer_batches_are_small_on_the_embedded_broker() {
        let mut opts = KafkaOptions {
            bootstrap: "127.0.0.1:9092".into(),
            properties: vec![],
            embedded: true,
        };
        assert_eq!(opts.producer_batch_bytes(), "131072");
        opts.embedded = false;
        assert_eq!(opts.producer_batch_bytes(), "1000000");
    }

    #[test]
    fn user_properties_come_last() {
        let opts = KafkaOptions {
            bootstrap: "127.0.0.1:9092".into(),
            properties: vec![
                ("client.id".into(), "mine".into()),
                ("linger.ms".into(), "0".into()),
            ],
            embedded: false,
        };
        let config = opts.client_config(&[("linger.ms", "5"), ("acks", "all")]);
        assert_eq!(config.get("client.id"), Some("mine"));
        assert_eq!(config.get("linger.ms"), Some("0"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(config.get("enable.sparse.connections"), Some("false"));
        let eager_off = KafkaOptions {
            properties: vec![("enable.sparse.connections".into(), "true".into())],
            ..opts
        };
        assert_eq!(
            eager_off
                .client_config(&[])
                .get("enable.sparse.connections"),
            Some("true")
        );
    }
}
