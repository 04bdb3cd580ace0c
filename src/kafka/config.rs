//! Typed options turned into librdkafka client configurations, in one place.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

use super::secrets::{redact_argument, redacted};

/// Where to find Kafka and how to talk to it, shared by every client the engine creates.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub bootstrap: String,
    /// Extra librdkafka properties: the `-F` file's, then each `-X key=value`, applied in order
    /// after the defaults, so the last one given wins.
    pub properties: Vec<(String, String)>,
    /// The broker is the embedded mock cluster (consumers tune their timeouts for it).
    pub embedded: bool,
}

/// Parses one `-X key=value` argument.
pub fn parse_property(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!(
            "expected key=value, got {:?}",
            redact_argument(arg)
        )),
    }
}

/// Debug shows secret values masked: options reach logs and panics.
impl std::fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOptions")
            .field("bootstrap", &self.bootstrap)
            .field("properties", &redacted(&self.properties))
            .field("embedded", &self.embedded)
            .finish()
    }
}

/// SASL mechanisms this build serves (librdkafka with OpenSSL, without libsasl2).
pub const SASL_MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

impl KafkaOptions {
    /// The brokers at `bootstrap` (not the embedded one), with no properties of the user's.
    pub fn brokers(bootstrap: &str) -> KafkaOptions {
        KafkaOptions {
            bootstrap: bootstrap.to_owned(),
            properties: Vec::new(),
            embedded: false,
        }
    }

    /// The value the clients will use for `key`: the last one given.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the user set `key` or its alias (`compression.codec` for `compression.type`, ...).
    pub fn sets(&self, key: &str) -> bool {
        let alias = alias_of(key);
        self.properties
            .iter()
            .any(|(k, _)| k.trim() == key || Some(k.trim()) == alias)
    }

    /// `security.protocol`, upper case, PLAINTEXT when not given.
    pub fn security_protocol(&self) -> String {
        self.property("security.protocol")
            .map_or_else(|| "PLAINTEXT".to_owned(), |p| p.trim().to_ascii_uppercase())
    }

    /// The SASL mechanism in use (`sasl.mechanisms`, or its alias `sasl.mechanism`), if SASL is.
    pub fn sasl_mechanism(&self) -> Option<String> {
        if !self.security_protocol().starts_with("SASL") {
            return None;
        }
        let given = self
            .properties
            .iter()
            .rev()
            .find(|(k, _)| k == "sasl.mechanisms" || k == "sasl.mechanism")
            .map(|(_, v)| v.trim().to_ascii_uppercase());
        Some(given.unwrap_or_else(|| "GSSAPI".to_owned()))
    }

    /// The SASL user: `sasl.username`, or the principal of an unsecured OAUTHBEARER token.
    pub fn sasl_user(&self) -> Option<String> {
        match self.sasl_mechanism()?.as_str() {
            "OAUTHBEARER" => {
                let config = self.property("sasl.oauthbearer.config")?;
                config
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("principal="))
                    .map(str::to_owned)
                    .or_else(|| {
                        self.property("sasl.oauthbearer.client.id")
                            .map(str::to_owned)
                    })
            }
            _ => self.property("sasl.username").map(str::to_owned),
        }
    }

    /// How the header names the security in use: `SASL_SSL SCRAM-SHA-512 as alice`, `SSL`, or
    /// nothing for plaintext. Never a secret.
    pub fn security_label(&self) -> Option<String> {
        let protocol = self.security_protocol();
        if protocol == "PLAINTEXT" {
            return None;
        }
        let mut label = protocol;
        if let Some(mechanism) = self.sasl_mechanism() {
            label.push(' ');
            label.push_str(&mechanism);
            if let Some(user) = self.sasl_user() {
                label.push_str(" as ");
                label.push_str(&user);
            }
        }
        Some(label)
    }

    /// Refuses, before any client is made, what this build cannot do: a SASL mechanism it does
    /// not have (GSSAPI needs libsasl2 and Kerberos, which are not built in).
    pub fn check_security(&self) -> Result<(), String> {
        match self.sasl_mechanism() {
            Some(m) if m == "GSSAPI" => Err(format!(
                "sasl.mechanisms=GSSAPI (Kerberos) is not built in: this build has no libsasl2; \
                 it speaks {} (give one with -X sasl.mechanisms=)",
                SASL_MECHANISMS.join(", ")
            )),
            Some(m) if !SASL_MECHANISMS.contains(&m.as_str()) => Err(format!(
                "unknown SASL mechanism {m}: this build speaks {}",
                SASL_MECHANISMS.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// Whether clients talk to the brokers without TLS (`security.protocol` names no SSL).
    pub fn plaintext(&self) -> bool {
        !self.security_protocol().contains("SSL")
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

    /// How the scorer's predictions and dead letters are compressed. Against a real broker, lz4:
    /// a prediction is some 190 bytes that repeat the event's fields and the model's name, and
    /// lz4 brings a salary prediction to about a sixth of that on the broker's disk and network
    /// (on one machine it saves the broker little CPU and costs a ten-feature model about a tenth
    /// of its rate: BENCHMARKS.md, issue 26; `-X compression.type=none` chooses). librdkafka's mock
    /// cluster (`mock_cluster`: the embedded broker, or `salary-stream broker`, see
    /// [`super::mock_cluster`]) keeps the bytes as they come, so there compression would only
    /// cost our own CPU.
    pub fn output_compression(&self, mock_cluster: bool) -> &'static str {
        if mock_cluster {
            "none"
        } else {
            "lz4"
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
            // librdkafka takes either name of a pair of aliases; a default under the other
            // name would compete with the user's choice in an unordered map.
            if let Some(other) = alias_of(k.trim()) {
                config.remove(other);
            }
            config.set(k, v);
        }
        config
    }
}

/// The other name librdkafka gives the same property, for the properties our defaults set.
fn alias_of(key: &str) -> Option<&'static str> {
    match key {
        "compression.type" => Some("compression.codec"),
        "compression.codec" => Some("compression.type"),
        "linger.ms" => Some("queue.buffering.max.ms"),
        "queue.buffering.max.ms" => Some("linger.ms"),
        _ => None,
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

    fn with(properties: &[(&str, &str)]) -> KafkaOptions {
        KafkaOptions {
            bootstrap: "127.0.0.1:9093".into(),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            embedded: false,
        }
    }

    #[test]
    fn the_header_names_the_security_in_use_and_never_the_password() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 6] = [
            (&[], None),
            (&[("security.protocol", "plaintext")], None),
            (&[("security.protocol", "ssl")], Some("SSL")),
            (
                &[
                    ("security.protocol", "SASL_SSL"),
                    ("sasl.mechanisms", "SCRAM-SHA-512"),
                    ("sasl.username", "alice"),
                    ("sasl.password", "alice-secret-1"),
                ],
                Some("SASL_SSL SCRAM-SHA-512 as alice"),
            ),
            (
                &[
                    ("security.protocol", "sasl_ssl"),
                    ("sasl.mechanism", "oauthbearer"),
                    ("sasl.oauthbearer.config", "principal=bob scope=x"),
                ],
                Some("SASL_SSL OAUTHBEARER as bob"),
            ),
            (
                &[
                    ("security.protocol", "SSL"),
                    ("security.protocol", "PLAINTEXT"),
                ],
                None,
            ),
        ];
        for (properties, label) in cases {
            let options = with(properties);
            assert_eq!(options.security_label().as_deref(), label, "{properties:?}");
            assert_eq!(options.plaintext(), label.is_none());
        }
    }

    #[test]
    fn mechanisms_this_build_lacks_are_refused_by_name() {
        let gssapi = with(&[("security.protocol", "SASL_SSL")]);
        assert_eq!(
            gssapi.check_security().unwrap_err(),
            "sasl.mechanisms=GSSAPI (Kerberos) is not built in: this build has no libsasl2; it \
             speaks PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (give one with -X \
             sasl.mechanisms=)"
        );
        let odd = with(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "X"),
        ]);
        assert_eq!(
            odd.check_security().unwrap_err(),
            "unknown SASL mechanism X: this build speaks PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, \
             OAUTHBEARER"
        );
        assert_eq!(
            with(&[("security.protocol", "SSL")]).check_security(),
            Ok(())
        );
    }

    #[test]
    fn debug_output_masks_secret_values() {
        let options = with(&[("sasl.username", "alice"), ("sasl.password", "hunter2")]);
        let text = format!("{options:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("sasl.password=***"), "{text}");
        assert!(text.contains("sasl.username=alice"), "{text}");
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
    fn predictions_are_compressed_with_lz4_for_a_real_broker_and_the_users_alias_wins() {
        let mut opts = KafkaOptions {
            bootstrap: "127.0.0.1:9092".into(),
            properties: vec![],
            embedded: false,
        };
        assert_eq!(opts.output_compression(true), "none", "the mock cluster");
        assert_eq!(opts.output_compression(false), "lz4");
        let defaults = [("compression.type", opts.output_compression(false))];
        assert_eq!(
            opts.client_config(&defaults).get("compression.type"),
            Some("lz4")
        );
        opts.properties = vec![("compression.codec".into(), "none".into())];
        let config = opts.client_config(&defaults);
        assert_eq!(config.get("compression.type"), None);
        assert_eq!(config.get("compression.codec"), Some("none"));
        opts.properties = vec![("queue.buffering.max.ms".into(), "0".into())];
        let config = opts.client_config(&[("linger.ms", "5")]);
        assert_eq!(config.get("linger.ms"), None);
        assert_eq!(config.get("queue.buffering.max.ms"), Some("0"));
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
