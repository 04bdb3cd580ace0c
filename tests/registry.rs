//! The registry client against a real Schema Registry: Apicurio Registry 2.6 (in memory,
//! Confluent-compatible API) started by `scripts/registry`, and a hand-made loopback server for
//! what Apicurio cannot easily be made to do (basic auth, a failing server, an answer that is not
//! the API). Also Confluent's own Avro deserializer (Python, through `scripts/registry-vectors
//! read-avro`) reading back predictions our encoder wrote.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use salary_stream::formats::avro::{AvroChallenger, AvroPrediction, PredictionSchema};
use salary_stream::formats::json::EventId;
use salary_stream::formats::record::CompiledSchema;
use salary_stream::formats::registry::{split_header, write_header, SchemaId, SchemaKind};
use salary_stream::formats::registry_client::{RegistryClient, RegistryError};
use salary_stream::formats::registry_config::RegistryConfig;
use salary_stream::formats::shape::EventShape;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use common::registry::{signal, Registry};

fn client(url: &str) -> RegistryClient {
    let config = RegistryConfig::new(url)
        .expect("a valid URL")
        .timeouts(Duration::from_secs(2), Duration::from_secs(2));
    RegistryClient::new(config).expect("a client")
}

const AVRO_EVENT: &str = r#"{"type": "record", "name": "ExperienceEvent", "namespace": "salary_stream.demo", "fields": [{"name": "id", "type": ["null", "string"], "default": null}, {"name": "years_experience", "type": "double"}, {"name": "ts_ms", "type": ["null", "long"], "default": null}]}"#;

const PROTO_EVENT: &str = "syntax = \"proto3\";\npackage salary_stream.demo;\n\nmessage Experience {\n  string id = 1;\n  double years_experience = 2;\n  optional int64 ts_ms = 3;\n}\n";

const JSON_EVENT: &str =
    r#"{"type": "object", "properties": {"years_experience": {"type": "number"}}}"#;

/// An Avro datum of AVRO_EVENT: id "r1", 5.3 years, ts_ms 1000.
fn avro_event_datum() -> Vec<u8> {
    let mut datum = vec![0x02, 0x04, b'r', b'1'];
    datum.extend_from_slice(&5.3f64.to_le_bytes());
    datum.extend_from_slice(&[0x02, 0xd0, 0x0f]);
    datum
}

#[test]
fn schemas_registered_in_apicurio_are_fetched_once_per_id_and_decode_records() {
    let registry = Registry::start(&[]);
    let client = client(&registry.url);
    assert_eq!(client.url(), registry.url);
    let avro = client
        .register("experience-events-value", SchemaKind::Avro, AVRO_EVENT)
        .expect("registers Avro");
    let proto = client
        .register("experience-proto-value", SchemaKind::Protobuf, PROTO_EVENT)
        .expect("registers Protobuf");
    let json = client
        .register("experience-json-value", SchemaKind::Json, JSON_EVENT)
        .expect("registers JSON Schema");
    assert_eq!((avro, proto, json), (SchemaId(1), SchemaId(2), SchemaId(3)));
    // The same schema again under its subject: the same id.
    assert_eq!(
        client.register("experience-events-value", SchemaKind::Avro, AVRO_EVENT),
        Ok(avro)
    );
    assert_eq!(client.lookups(), 0);

    for _ in 0..50 {
        for id in [avro, proto, json] {
            client.schema(id).expect("a registered schema");
        }
    }
    assert_eq!(client.lookups(), 3, "one look-up per id, not per record");

    let avro_schema = client.schema(avro).expect("cached");
    assert_eq!(avro_schema.kind, SchemaKind::Avro);
    assert_eq!(avro_schema.text, AVRO_EVENT);
    let proto_schema = client.schema(proto).expect("cached");
    assert_eq!(proto_schema.kind, SchemaKind::Protobuf);
    assert_eq!(client.schema(json).expect("cached").kind, SchemaKind::Json);

    // Records framed with those ids decode through the fetched schemas.
    let mut value = Vec::new();
    write_header(avro, &mut value);
    value.extend_from_slice(&avro_event_datum());
    let (id, body) = split_header(&value).expect("a header");
    let compiled = CompiledSchema::compile(&client.schema(id).expect("cached")).expect("compiles");
    let event = compiled
        .decode_event(EventShape::salary(), body)
        .expect("decodes");
    assert_eq!(
        (event.features[0], event.id, event.ts_ms),
        (5.3, Some(EventId::Str("r1".into())), Some(1000))
    );

    let mut value = Vec::new();
    write_header(proto, &mut value);
    value.push(0); // message indexes [0]
    value.push(0x11); // field 2, fixed64
    value.extend_from_slice(&7.25f64.to_le_bytes());
    let (id, body) = split_header(&value).expect("a header");
    let compiled = CompiledSchema::compile(&client.schema(id).expect("cached")).expect("compiles");
    let event = compiled
        .decode_event(EventShape::salary(), body)
        .expect("decodes");
    assert_eq!(
        (event.features[0], event.id, event.ts_ms),
        (7.25, None, None)
    );

    // An id the registry does not know: a bad record, named with the registry's URL, and not
    // asked for again at once.
    let e = client.schema(SchemaId(99)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("schema id 99 not found at {}", registry.url)
    );
    assert!(!e.is_retryable());
    assert_eq!(
        e.record_error().map(|r| r.to_string()),
        Some(format!("schema id 99 not found at {}", registry.url))
    );
    assert!(client.schema(SchemaId(99)).is_err());
    assert_eq!(client.lookups(), 4);
}

#[test]
fn a_stopped_registry_is_unreachable_and_retryable_and_the_client_resumes_when_it_returns() {
    let registry = Registry::start(&[]);
    let port = registry.port();
    let client = client(&registry.url);
    let id = client
        .register("experience-events-value", SchemaKind::Avro, AVRO_EVENT)
        .expect("registers");
    client.schema(id).expect("fetched");
    let url = registry.url.clone();

    // Paused: the read timeout ends the wait, as unreachable.
    let jvm = registry.jvm_pid();
    signal("STOP", jvm);
    let began = Instant::now();
    let e = client.schema(SchemaId(2)).unwrap_err();
    signal("CONT", jvm);
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "{:?}",
        began.elapsed()
    );
    assert!(e.is_retryable(), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("registry unreachable at {url}: ")),
        "{e}"
    );

    registry.stop();
    // What is cached is still served; what is not is unreachable, not "not found".
    assert_eq!(client.schema(id).expect("cached").text, AVRO_EVENT);
    let lookups = client.lookups();
    let e = client.schema(SchemaId(2)).unwrap_err();
    assert!(
        matches!(e, RegistryError::Unreachable { .. }),
        "{e:?} is not Unreachable"
    );
    assert!(e.is_retryable());
    assert!(e.record_error().is_none(), "no record is bad for it");
    assert!(
        e.to_string()
            .starts_with(&format!("registry unreachable at {url}: ")),
        "{e}"
    );
    assert_eq!(client.lookups(), lookups + 1);
    let e = client
        .register("x-value", SchemaKind::Avro, AVRO_EVENT)
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");

    // Back on the same port. In memory it starts empty and numbers ids from 1 again, so the
    // schemas are registered again in the same order (a persistent registry keeps its ids: an
    // id always means the same schema, which is what lets the client cache by id). The same
    // client goes on by itself: the id it could not fetch is fetched now.
    let registry = Registry::start(&["--port", &port]);
    assert_eq!(registry.url, url);
    assert_eq!(
        client.register("experience-events-value", SchemaKind::Avro, AVRO_EVENT),
        Ok(id)
    );
    assert_eq!(
        client.register("experience-json-value", SchemaKind::Json, JSON_EVENT),
        Ok(SchemaId(2))
    );
    assert_eq!(
        client.schema(SchemaId(2)).expect("fetched").kind,
        SchemaKind::Json
    );
}

/// A prediction as the scorer would write it.
fn prediction<'a>(id: Option<&'a EventId<'a>>, features: &'a [f64], n: i64) -> AvroPrediction<'a> {
    AvroPrediction {
        id,
        features,
        ts_ms: Some(1_764_748_800_000 + n),
        label: (n == 0).then_some(76_000.0),
        predicted: 75_877.0 + n as f64,
        residual: (n == 0).then_some(123.0),
        extrapolated: n > 0,
        model: "lr-3f9c2a",
        partition: 1,
        offset: 40 + n,
        latency_ms: 2.5,
        challenger: (n == 0).then_some(AvroChallenger {
            model: "lr-77aa01",
            predicted: 75_900.25,
            residual: Some(99.75),
        }),
    }
}

#[test]
fn confluents_own_deserializer_reads_our_avro_predictions() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3 for confluent-kafka's deserializer");
        return;
    }
    let registry = Registry::start(&[]);
    let client = client(&registry.url);
    let schema = PredictionSchema::new("salary", &["years_experience"]).expect("a schema");
    let id = client
        .register("salary-predictions-value", SchemaKind::Avro, schema.text())
        .expect("registers the prediction schema");
    let ids = [EventId::Str("a1".into()), EventId::Int(7)];
    let mut values = Vec::new();
    for (n, event_id) in [Some(&ids[0]), Some(&ids[1]), None].into_iter().enumerate() {
        let mut value = Vec::new();
        schema
            .encode(
                id,
                &prediction(event_id, &[5.3 + n as f64], n as i64),
                &mut value,
            )
            .expect("encodes");
        values.push(value);
    }
    let read = confluent_avro(&registry.url, &values);
    assert_eq!(
        read,
        [
            serde_json::json!({
                "id": "a1", "years_experience": 5.3, "ts_ms": 1_764_748_800_000i64,
                "salary": 76000.0, "predicted_salary": 75877.0, "residual": 123.0,
                "extrapolated": false, "model": "lr-3f9c2a", "partition": 1, "offset": 40,
                "latency_ms": 2.5,
                "challenger": {"model": "lr-77aa01", "predicted_salary": 75900.25, "residual": 99.75},
            }),
            serde_json::json!({
                "id": 7, "years_experience": 6.3, "ts_ms": 1_764_748_800_001i64,
                "salary": null, "predicted_salary": 75878.0, "residual": null,
                "extrapolated": true, "model": "lr-3f9c2a", "partition": 1, "offset": 41,
                "latency_ms": 2.5, "challenger": null,
            }),
            serde_json::json!({
                "id": null, "years_experience": 7.3, "ts_ms": 1_764_748_800_002i64,
                "salary": null, "predicted_salary": 75879.0, "residual": null,
                "extrapolated": true, "model": "lr-3f9c2a", "partition": 1, "offset": 42,
                "latency_ms": 2.5, "challenger": null,
            }),
        ]
    );
}

/// `values` (framed Avro) as Confluent's Python AvroDeserializer reads them through the registry
/// at `url` (`scripts/registry-vectors read-avro`): one JSON value each.
fn confluent_avro(url: &str, values: &[Vec<u8>]) -> Vec<serde_json::Value> {
    let mut lines = String::new();
    for value in values {
        lines.extend(value.iter().map(|b| format!("{b:02x}")));
        lines.push('\n');
    }
    let mut reader = Command::new(root().join("scripts/registry-vectors"))
        .args(["read-avro", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("scripts/registry-vectors");
    reader
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(lines.as_bytes())
        .expect("hex lines written");
    let mut out = String::new();
    reader
        .stdout
        .take()
        .expect("a stdout pipe")
        .read_to_string(&mut out)
        .expect("its output");
    assert!(reader.wait().expect("exits").success(), "read-avro failed");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A loopback HTTP server answering each request with the next of `answers` (status, body),
/// and handing back each request's head.
fn fake_registry(answers: Vec<(u16, &'static str)>) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let mut request_body = vec![0; length];
            let _ = stream.read_exact(&mut request_body);
            let _ = tx.send(format!("{head}{}", String::from_utf8_lossy(&request_body)));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, rx)
}

#[test]
fn basic_auth_comes_from_the_url_or_the_setting_and_is_never_shown() {
    let schema = r#"{"schema": "{\"type\": \"string\"}"}"#;
    let (url, requests) = fake_registry(vec![(200, schema), (401, r#"{"message": "no"}"#)]);
    let with_user = url.replace("http://", "http://alice:alice%20secret@");
    let client = client(&with_user);
    assert_eq!(client.url(), url);
    client.schema(SchemaId(5)).expect("a schema");
    let head = requests.recv().expect("a request");
    assert!(
        head.starts_with("GET /schemas/ids/5 HTTP/1.1\r\n"),
        "{head}"
    );
    // base64("alice:alice secret")
    assert!(
        head.contains("authorization: Basic YWxpY2U6YWxpY2Ugc2VjcmV0\r\n"),
        "{head}"
    );

    let mut config = RegistryConfig::new(&with_user).expect("a valid URL");
    config
        .set("basic.auth.user.info", "bob:bob-secret-2")
        .expect("a setting");
    let client = RegistryClient::new(config).expect("a client");
    let e = client.schema(SchemaId(6)).unwrap_err();
    let head = requests.recv().expect("a request");
    assert!(
        head.contains("authorization: Basic Ym9iOmJvYi1zZWNyZXQtMg==\r\n"),
        "{head}"
    );
    assert_eq!(
        e.to_string(),
        format!("registry at {url} refused access (HTTP 401) for user bob")
    );
    assert!(!e.is_retryable());
    let shown = format!("{e} {e:?} {client:?}");
    for secret in ["bob-secret-2", "alice secret", "alice%20secret", "Ym9i"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn registration_sends_the_schema_type_and_server_errors_are_retryable() {
    let (url, requests) = fake_registry(vec![
        (200, r#"{"id": 12}"#),
        (503, r#"{"error_code": 50003, "message": "storage busy"}"#),
        (200, "<html>a proxy page</html>"),
        (
            409,
            r#"{"error_code": 409, "message": "incompatible schema"}"#,
        ),
    ]);
    let client = client(&url);
    assert_eq!(
        client.register("a b-value", SchemaKind::Protobuf, "syntax = \"proto3\";"),
        Ok(SchemaId(12))
    );
    let head = requests.recv().expect("a request");
    assert!(
        head.starts_with("POST /subjects/a%20b-value/versions HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.ends_with(r#"{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}"#),
        "{head}"
    );

    let e = client.schema(SchemaId(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("registry at {url} answered HTTP 503: storage busy")
    );
    assert!(e.is_retryable());

    let e = client.schema(SchemaId(1)).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "registry at {url} gave an answer that is not the Schema Registry API: "
        )),
        "{e}"
    );
    assert!(!e.is_retryable());

    let e = client
        .register("a-value", SchemaKind::Avro, "\"string\"")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("registry at {url} answered HTTP 409: incompatible schema")
    );
    assert!(!e.is_retryable());
    assert_eq!(client.lookups(), 2);
    assert_eq!(client.requests(), 4);
}

#[test]
fn an_unused_port_is_unreachable_at_once() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/apis/ccompat/v7");
    let began = Instant::now();
    let e = client(&url).schema(SchemaId(1)).unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(2));
    assert!(
        e.to_string()
            .starts_with(&format!("registry unreachable at {url}: ")),
        "{e}"
    );
    assert!(e.is_retryable());
}

/// A CA and a certificate it signed for 127.0.0.1, as PEM: (ca, server certificate, key).
fn certificates() -> (
    Vec<u8>,
    openssl::x509::X509,
    openssl::pkey::PKey<openssl::pkey::Private>,
) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509NameBuilder, X509};

    let key = || {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        PKey::from_ec_key(EcKey::generate(&group).expect("a key")).expect("a key")
    };
    let name = |cn: &str| {
        let mut name = X509NameBuilder::new().expect("a name");
        name.append_entry_by_text("CN", cn).expect("a CN");
        name.build()
    };
    let cert = |subject: &str,
                key: &PKey<openssl::pkey::Private>,
                issuer: Option<(&X509, &PKey<openssl::pkey::Private>)>| {
        let mut b = X509::builder().expect("a builder");
        b.set_version(2).expect("v3");
        b.set_serial_number(
            &BigNum::from_u32(1)
                .and_then(|n| n.to_asn1_integer())
                .expect("a serial"),
        )
        .expect("a serial");
        b.set_subject_name(&name(subject)).expect("a subject");
        b.set_pubkey(key).expect("a public key");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
            .expect("not before");
        b.set_not_after(&Asn1Time::days_from_now(2).expect("later"))
            .expect("not after");
        match issuer {
            None => {
                b.set_issuer_name(&name(subject)).expect("an issuer");
                b.append_extension(BasicConstraints::new().critical().ca().build().expect("CA"))
                    .expect("CA");
                b.sign(key, MessageDigest::sha256()).expect("signed");
            }
            Some((ca, ca_key)) => {
                b.set_issuer_name(ca.subject_name()).expect("an issuer");
                let san = SubjectAlternativeName::new()
                    .ip("127.0.0.1")
                    .build(&b.x509v3_context(Some(ca), None))
                    .expect("a SAN");
                b.append_extension(san).expect("a SAN");
                b.sign(ca_key, MessageDigest::sha256()).expect("signed");
            }
        }
        b.build()
    };
    let ca_key = key();
    let ca = cert("salary-stream test CA", &ca_key, None);
    let server_key = key();
    let server = cert("127.0.0.1", &server_key, Some((&ca, &ca_key)));
    (ca.to_pem().expect("PEM"), server, server_key)
}

/// An https registry on loopback serving `connections` connections with a schema.
fn tls_registry(connections: usize) -> (String, Vec<u8>) {
    use openssl::ssl::{SslAcceptor, SslMethod};
    let (ca, cert, key) = certificates();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("an acceptor");
    acceptor.set_private_key(&key).expect("the key");
    acceptor.set_certificate(&cert).expect("the certificate");
    let acceptor = acceptor.build();
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("https://{}", listener.local_addr().expect("an address"));
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(stream) else {
                continue; // the client refused the certificate
            };
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let body = r#"{"schema": "{\"type\": \"string\"}"}"#;
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, ca)
}

#[test]
fn an_https_registry_is_verified_against_the_system_store_or_the_given_ca() {
    let (url, ca) = tls_registry(2);
    let e = client(&url).schema(SchemaId(1)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("registry at {url}: TLS failed: ")),
        "{e}"
    );
    assert!(e.to_string().contains("certificate verify failed"), "{e}");
    assert!(!e.is_retryable());

    let config = RegistryConfig::new(&url).expect("a valid URL").ca_pem(ca);
    let client = RegistryClient::new(config).expect("a client");
    let schema = client
        .schema(SchemaId(1))
        .expect("fetched over verified TLS");
    assert_eq!(schema.text, r#"{"type": "string"}"#);
}

#[test]
fn tls_to_a_plaintext_port_fails_tls_not_as_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("https://{}", listener.local_addr().expect("an address"));
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        }
    });
    let e = client(&url).schema(SchemaId(1)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("registry at {url}: TLS failed: ")),
        "{e}"
    );
    assert!(!e.is_retryable());
}

// ---------------------------------------------------------------------------------------------
// `score -r URL`: framed records through the scorer, on the embedded broker.

mod common;

/// One vector of a file scripts/registry-vectors wrote with Confluent's Python serializers
/// (tests/registry/vectors.json, tests/registry/diabetes-vectors.json).
struct Vector {
    name: String,
    format: String,
    subject: String,
    schema_id: u32,
    schema_type: Option<String>,
    schema: String,
    value: Vec<u8>,
    /// What a decoder must read from the value.
    expect: serde_json::Value,
}

/// The vectors of `file` (a path from the crate's root).
fn vectors(file: &str) -> Vec<Vector> {
    let text = std::fs::read_to_string(root().join(file)).expect(file);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("a vector file parses");
    let text_of = |v: &serde_json::Value, key: &str| v[key].as_str().map(str::to_owned);
    doc["vectors"]
        .as_array()
        .expect("a list of vectors")
        .iter()
        .map(|v| {
            let hex = text_of(v, "value_hex").expect("value_hex");
            Vector {
                name: text_of(v, "name").expect("a name"),
                format: text_of(v, "format").expect("a format"),
                subject: text_of(v, "subject").expect("a subject"),
                schema_id: v["schema_id"].as_u64().expect("an id") as u32,
                schema_type: text_of(v, "schema_type"),
                schema: text_of(v, "schema").expect("a schema"),
                value: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect(),
                expect: v["expect"].clone(),
            }
        })
        .collect()
}

/// `value` framed with schema `id` instead of its own.
fn reframed(value: &[u8], id: SchemaId) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(id, &mut out);
    out.extend_from_slice(&value[5..]);
    out
}

/// Registers every vector's schema in a fresh registry, under its subject; the ids the
/// registry gave, by the ids the vectors were written with.
fn register_vectors(
    client: &RegistryClient,
    vectors: &[Vector],
) -> std::collections::HashMap<u32, SchemaId> {
    let mut ids = std::collections::HashMap::new();
    for v in vectors {
        if ids.contains_key(&v.schema_id) {
            continue;
        }
        let kind = SchemaKind::from_api(v.schema_type.as_deref()).expect("a known type");
        let id = client
            .register(&v.subject, kind, &v.schema)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        ids.insert(v.schema_id, id);
    }
    ids
}

/// The salary model's exact prediction.
fn salary(years: f64) -> f64 {
    25792.20019866869 + 9449.962321455077 * years
}

#[test]
fn score_reads_avro_protobuf_and_json_schema_beside_plain_json_and_dead_letters_bad_input() {
    let registry = Registry::start(&[]);
    let url = registry.url.clone();
    let vectors = vectors("tests/registry/vectors.json");
    let ids = register_vectors(&client(&url), &vectors);
    let by_name = |name: &str| -> Vec<u8> {
        let v = vectors.iter().find(|v| v.name == name).expect("a vector");
        reframed(&v.value, ids[&v.schema_id])
    };
    let id_of = |name: &str| ids[&vectors.iter().find(|v| v.name == name).unwrap().schema_id];
    let cut = |name: &str| {
        let value = by_name(name);
        value[..value.len() - 3].to_vec()
    };
    let mut unknown = by_name("avro_full");
    unknown[1..5].copy_from_slice(&999u32.to_be_bytes());

    // (value, years when it scores, else the dead letter's reason), in partition order.
    let inputs: Vec<(Vec<u8>, Result<f64, String>)> = vec![
        (by_name("avro_full"), Ok(5.3)),
        (
            br#"{"id": "plain-1", "years_experience": 1.5}"#.to_vec(),
            Ok(1.5),
        ),
        (by_name("protobuf_full"), Ok(5.3)),
        (by_name("json_full"), Ok(5.3)),
        (by_name("avro_bare"), Ok(0.0)),
        (by_name("avro_union_float"), Ok(2.5)),
        (by_name("avro_int_alias"), Ok(4.0)),
        (by_name("protobuf_zero_years"), Ok(0.0)),
        (by_name("protobuf_nested_index"), Ok(9.5)),
        (by_name("protobuf_text_schema"), Ok(3.2)),
        (
            br#"{"id": "plain-2", "years_experience": 10}"#.to_vec(),
            Ok(10.0),
        ),
        (unknown, Err(format!("schema id 999 not found at {url}"))),
        (
            cut("avro_full"),
            Err("avro: Failed to read double: failed to fill whole buffer".into()),
        ),
        (
            cut("protobuf_full"),
            Err("protobuf: buffer underflow".into()),
        ),
        (
            by_name("avro_no_years"),
            Err(format!(
                "schema {} has no field years_experience",
                id_of("avro_no_years")
            )),
        ),
        (
            by_name("protobuf_no_years"),
            Err(format!(
                "schema {} has no field years_experience",
                id_of("protobuf_no_years")
            )),
        ),
        (
            by_name("avro_nested"),
            Err(format!(
                "schema {} has no field years_experience",
                id_of("avro_nested")
            )),
        ),
        (
            by_name("avro_union_null"),
            Err("wrong type for years_experience: null".into()),
        ),
        (
            by_name("json_no_years"),
            Err("missing field years_experience".into()),
        ),
        (by_name("avro_full"), Ok(5.3)),
    ];
    let (_broker, b) = common::broker_process(1);
    let values: Vec<Option<Vec<u8>>> = inputs.iter().map(|(v, _)| Some(v.clone())).collect();
    common::produce_all(&b, "experience-events", &values);
    let count = inputs.len().to_string();
    // Credentials from the URL and from -X (the setting wins); neither is ever printed.
    let with_user = url.replace("http://", "http://alice:alice-pass-1@");
    let (code, stdout, stderr) = common::run(&[
        "score",
        "-b",
        &b,
        "-r",
        &with_user,
        "-X",
        "schema.registry.basic.auth.user.info=bob:bob-pass-22",
        "--count",
        &count,
    ]);
    for secret in ["alice-pass-1", "bob-pass-22"] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{stderr}"
        );
    }
    assert_eq!(code, 0, "{stderr}");
    let good = inputs.iter().filter(|(_, r)| r.is_ok()).count();
    let bad = inputs.len() - good;
    assert_eq!(
        stderr.lines().find(|l| l.starts_with("done: ")),
        Some(format!("done: scored {good}  bad {bad}  delivery errors 0").as_str()),
        "{stderr}"
    );
    // Each schema id fetched once, the unknown one too (within the client's wait), not once
    // per record: 10 known ids and 999.
    assert!(
        stderr.contains(&format!("registry {url}: 11 schema look-ups")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("input: avro, schema 1 (registry {url})")),
        "{stderr}"
    );

    let predicted: std::collections::BTreeMap<i64, serde_json::Value> = stdout
        .lines()
        .map(|l| {
            let v = common::json(l);
            (v["offset"].as_i64().expect("an offset"), v)
        })
        .collect();
    assert_eq!(predicted.len(), good);
    for (offset, (_, want)) in inputs.iter().enumerate() {
        if let Ok(years) = want {
            let v = &predicted[&(offset as i64)];
            assert_eq!(v["years_experience"].as_f64(), Some(*years), "{offset}");
            assert_eq!(
                v["predicted_salary"].as_f64(),
                Some(salary(*years)),
                "{offset}"
            );
        }
    }
    // Ids, times and labels are read from every format.
    let id = |offset: i64| predicted[&offset]["id"].clone();
    assert_eq!(id(0), "a1");
    assert_eq!(id(1), "plain-1");
    assert_eq!(id(2), "p1");
    assert_eq!(id(3), "j1");
    assert_eq!(id(5), 42);
    assert_eq!(id(9), 77);
    assert_eq!(predicted[&0]["ts_ms"], 1_764_748_800_000i64);
    assert_eq!(predicted[&0]["salary"], 75877.0);
    assert_eq!(predicted[&6]["salary"], 61000.0);
    assert_eq!(predicted[&9]["salary"], 60150.5);

    let dead = common::read_n(&b, "experience-events.dlq", bad, Duration::from_secs(30));
    let reasons: std::collections::BTreeMap<i64, String> = dead
        .iter()
        .map(|r| {
            (
                r.headers["source_offset"].parse().expect("an offset"),
                r.headers["error"].clone(),
            )
        })
        .collect();
    let want: std::collections::BTreeMap<i64, String> = inputs
        .iter()
        .enumerate()
        .filter_map(|(offset, (_, r))| r.clone().err().map(|e| (offset as i64, e)))
        .collect();
    assert_eq!(reasons, want);
    // The dead letter keeps the original bytes.
    assert_eq!(dead[0].value.as_deref(), Some(inputs[11].0.as_slice()));
}

/// A datum of an Avro schema shaped as AVRO_EVENT: `id`, `years`, no time.
fn avro_datum(id: &str, years: f64) -> Vec<u8> {
    let mut datum = vec![0x02, (id.len() * 2) as u8];
    datum.extend_from_slice(id.as_bytes());
    datum.extend_from_slice(&years.to_le_bytes());
    datum.push(0x00);
    datum
}

/// AVRO_EVENT under another record name: the same datums, another schema (and id).
fn avro_event_named(name: &str) -> String {
    AVRO_EVENT.replace("\"ExperienceEvent\"", &format!("\"{name}\""))
}

/// Registers the four event schemas, in order: ids 1 to 4 in a fresh registry.
fn register_four(url: &str) {
    let client = client(url);
    for (n, name) in ["EventOne", "EventTwo", "EventThree", "EventFour"]
        .iter()
        .enumerate()
    {
        let id = client
            .register(
                &format!("{name}-value"),
                SchemaKind::Avro,
                &avro_event_named(name),
            )
            .expect("registers");
        assert_eq!(id, SchemaId(n as u32 + 1));
    }
}

/// Batch `batch` of records: framed with schema `batch` and plain JSON, alternating, ids
/// `b{batch}-{i}`, years `i`.
fn batch(batch: u32, n: usize) -> (Vec<Option<Vec<u8>>>, Vec<String>) {
    let mut values = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("b{batch}-{i}");
        let value = if i % 2 == 0 {
            let mut value = Vec::new();
            write_header(SchemaId(batch), &mut value);
            value.extend_from_slice(&avro_datum(&id, i as f64));
            value
        } else {
            format!("{{\"id\": \"{id}\", \"years_experience\": {i}}}").into_bytes()
        };
        values.push(Some(value));
        ids.push(id);
    }
    (values, ids)
}

/// The ids of a scorer's predictions so far, each checked for its exact value.
fn predicted_ids(scorer: &common::Child) -> Vec<String> {
    scorer
        .stdout_lines()
        .iter()
        .map(|l| {
            let v = common::json(l);
            let years = v["years_experience"].as_f64().expect("years");
            assert_eq!(v["predicted_salary"].as_f64(), Some(salary(years)), "{l}");
            v["id"].as_str().expect("an id").to_owned()
        })
        .collect()
}

/// Lines of `scorer`'s stderr that begin with `prefix`.
fn said(scorer: &common::Child, prefix: &str) -> usize {
    scorer
        .stderr_lines()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

#[test]
fn a_registry_that_goes_away_holds_records_back_without_dead_letters_and_scoring_resumes() {
    // The registry keeps its schemas in a database file, as a production one does: stopped and
    // started again, it answers for the same ids.
    let data = tempfile::tempdir().expect("a temp dir");
    let data = data.path().to_str().expect("a UTF-8 path").to_owned();
    let registry = Registry::start(&["--data", &data]);
    let url = registry.url.clone();
    let port = registry.port();
    register_four(&url);
    let (_broker, b) = common::broker_process(1);
    let scorer = || common::Child::spawn(&["score", "-b", &b, "-r", &url, "-g", "outage"]);
    let mut first = scorer();
    let (values, mut want) = batch(1, 10);
    common::produce_all(&b, "experience-events", &values);
    first.wait_for("batch 1 scored", Duration::from_secs(60), |out, _| {
        out.len() == 10
    });

    // The registry stops answering (its JVM paused): schema 2 cannot be fetched, so its first
    // record waits, and the plain JSON behind it in the partition waits too. Nothing is
    // dead-lettered.
    let jvm = registry.jvm_pid();
    signal("STOP", jvm);
    let (values, ids) = batch(2, 10);
    want.extend(ids);
    common::produce_all(&b, "experience-events", &values);
    first.wait_for(
        "the registry said unreachable",
        Duration::from_secs(30),
        |_, err| {
            err.iter().any(|l| {
                l.starts_with("registry UNREACHABLE: ")
                    && l.ends_with("; records wait, nothing is committed past them")
            })
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        predicted_ids(&first).len(),
        10,
        "nothing scored past the waiting record"
    );

    // Back: the same scorer goes on by itself.
    signal("CONT", jvm);
    first.wait_for("batch 2 scored", Duration::from_secs(60), |out, _| {
        out.len() == 20
    });
    assert_eq!(
        said(&first, &format!("registry reachable again at {url}")),
        1
    );

    // Stopped for real and started again on its port with its database: the same scorer
    // scores the batch that waited, by itself.
    registry.stop();
    let (values, ids) = batch(3, 10);
    want.extend(ids);
    common::produce_all(&b, "experience-events", &values);
    first.wait_for("unreachable again", Duration::from_secs(30), |_, err| {
        err.iter()
            .filter(|l| l.starts_with("registry UNREACHABLE: "))
            .count()
            == 2
    });
    assert_eq!(predicted_ids(&first).len(), 20, "batch 3 waits");
    let registry = Registry::start(&["--port", &port, "--data", &data]);
    first.wait_for(
        "batch 3 scored after the restart",
        Duration::from_secs(60),
        |out, _| out.len() == 30,
    );
    assert_eq!(
        said(&first, &format!("registry reachable again at {url}")),
        2
    );

    // Away again, with batch 4 waiting: a quit while waiting is prompt, and commits nothing
    // past the waiting record, so the next run scores batch 4.
    registry.stop();
    let (values, ids) = batch(4, 10);
    want.extend(ids.clone());
    common::produce_all(&b, "experience-events", &values);
    first.wait_for(
        "unreachable a third time",
        Duration::from_secs(30),
        |_, err| {
            err.iter()
                .filter(|l| l.starts_with("registry UNREACHABLE: "))
                .count()
                == 3
        },
    );
    let began = Instant::now();
    first.signal("TERM");
    assert!(
        first.wait(Duration::from_secs(20)).success(),
        "{:?}",
        first.stderr_lines()
    );
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "{:?}",
        began.elapsed()
    );
    let mut seen = predicted_ids(&first);
    assert_eq!(seen.len(), 30);

    let _registry = Registry::start(&["--port", &port, "--data", &data]);
    let second = scorer();
    second.wait_for("batch 4 scored", Duration::from_secs(60), |out, _| {
        out.len() >= 10
    });
    let again = predicted_ids(&second);
    assert!(
        ids.iter().all(|id| again.contains(id)),
        "batch 4 scored by the second run: {again:?}"
    );
    seen.extend(again);
    seen.sort();
    seen.dedup();
    want.sort();
    assert_eq!(seen, want, "every id scored at least once");
    assert!(
        common::nonempty_partitions(&b, "experience-events.dlq", 1).is_empty(),
        "no good record was dead-lettered"
    );
}

#[test]
fn registry_settings_need_a_registry_and_a_bad_one_is_refused_without_its_value() {
    let (code, _, stderr) = common::run(&[
        "score",
        "-X",
        "schema.registry.basic.auth.user.info=bob:bob-pass-22",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "schema.registry.basic.auth.user.info is a Schema Registry setting: give the registry \
             with -r URL"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = common::run(&[
        "score",
        "-r",
        "http://127.0.0.1:1/apis/ccompat/v7",
        "-X",
        "schema.registry.basic.auth.user.info=no-colon-secret",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "bad registry setting schema.registry.basic.auth.user.info: expected USER:PASSWORD"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("no-colon-secret"), "{stderr}");
    let (code, _, stderr) = common::run(&["score", "-r", "ftp://carol:carol-pass@host/"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bad registry URL ftp://***@host/: the scheme is neither http nor https"),
        "{stderr}"
    );
    assert!(!stderr.contains("carol-pass"), "{stderr}");
}

#[test]
fn the_header_names_the_registry_and_the_input_format_and_says_when_it_is_unreachable() {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use salary_stream::app::{App, Message, Setup};
    use salary_stream::engine::{EngineEvent, RegistryStatus};

    let header = |app: &App, width: u16| -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, 24)).expect("a terminal");
        terminal
            .draw(|f| salary_stream::ui::render(f, app))
            .expect("drawn");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.width)
            .map(|x| buffer[(x, 1)].symbol())
            .collect::<String>()
            .trim_end()
            .to_owned()
    };
    let mut app = App::new(
        Setup {
            broker: "kafka-1:9092".into(),
            group: "salary-stream".into(),
            ..Setup::default()
        },
        0,
    );
    let url = "http://registry:8081".to_owned();
    let mut status = RegistryStatus {
        url: url.clone(),
        input: None,
        unreachable: None,
    };
    app.update(Message::Engine(EngineEvent::Registry(status.clone())));
    assert_eq!(
        header(&app, 120),
        "broker kafka-1:9092 (connecting)  group salary-stream  registry http://registry:8081"
    );
    status.input = Some("avro, schema 3".into());
    app.update(Message::Engine(EngineEvent::Registry(status.clone())));
    assert_eq!(
        header(&app, 120),
        "broker kafka-1:9092 (connecting)  group salary-stream  registry http://registry:8081 \
         (avro, schema 3)"
    );
    assert_eq!(
        header(&app, 80),
        "broker kafka-1:9092 (connecting)  group salary-stream  avro, schema 3"
    );
    status.unreachable = Some("Connection refused".into());
    app.update(Message::Engine(EngineEvent::Registry(status)));
    assert_eq!(
        header(&app, 140),
        "broker kafka-1:9092 (connecting)  group salary-stream  registry http://registry:8081 \
         UNREACHABLE: Connection refused"
    );
    assert_eq!(
        header(&app, 80),
        "broker kafka-1:9092 (connecting)  group salary-stream  registry UNREACHABLE"
    );
}

// ---------------------------------------------------------------------------------------------
// `--output-format avro` and `produce --format avro|protobuf`, end to end.

fn have_python() -> bool {
    let ok = Command::new("python3").arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipped: no python3 for confluent-kafka's deserializer");
    }
    ok
}

/// A prediction's JSON (stdout) as its Avro record reads: every optional field the JSON leaves
/// out (`id`, `ts_ms`, the label, `residual`, `challenger` and its `residual`) is null there.
fn with_nulls(mut json: serde_json::Value, label: &str) -> serde_json::Value {
    let object = json.as_object_mut().expect("an object");
    for field in ["id", "ts_ms", label, "residual", "challenger"] {
        object.entry(field).or_insert(serde_json::Value::Null);
    }
    if let Some(challenger) = object["challenger"].as_object_mut() {
        challenger
            .entry("residual")
            .or_insert(serde_json::Value::Null);
    }
    json
}

/// The published predictions of `topic` (`n` of them), each framed with schema `id`, as
/// Confluent's deserializer reads them, by input offset.
fn published_avro(
    b: &str,
    url: &str,
    topic: &str,
    n: usize,
    id: SchemaId,
) -> std::collections::BTreeMap<i64, serde_json::Value> {
    let values: Vec<Vec<u8>> = common::read_n(b, topic, n, Duration::from_secs(30))
        .into_iter()
        .map(|r| r.value.expect("a value"))
        .collect();
    assert_eq!(values.len(), n);
    for value in &values {
        assert_eq!(split_header(value).expect("framed").0, id);
    }
    confluent_avro(url, &values)
        .into_iter()
        .map(|v| (v["offset"].as_i64().expect("an offset"), v))
        .collect()
}

/// Stdout's NDJSON predictions by input offset.
fn by_offset(stdout: &str) -> std::collections::BTreeMap<i64, serde_json::Value> {
    stdout
        .lines()
        .map(|l| {
            let v = common::json(l);
            (v["offset"].as_i64().expect("an offset"), v)
        })
        .collect()
}

#[test]
fn score_writes_avro_predictions_that_confluents_deserializer_reads_back_exactly() {
    if !have_python() {
        return;
    }
    let registry = Registry::start(&[]);
    let url = registry.url.clone();
    let (_broker, b) = common::broker_process(1);
    let inputs: [&[u8]; 5] = [
        br#"{"id": "a1", "years_experience": 5.3, "ts_ms": 1764748800000, "salary": 76000}"#,
        br#"{"id": 7, "years_experience": 0}"#,
        b"not json",
        br#"{"years_experience": 12.25, "ts_ms": 1764748800001}"#,
        br#"{"id": "z\"q", "YearsExperience": 40}"#,
    ];
    let values: Vec<Option<Vec<u8>>> = inputs.iter().map(|v| Some(v.to_vec())).collect();
    common::produce_all(&b, "experience-events", &values);
    let (code, stdout, stderr) = common::run(&[
        "score",
        "-b",
        &b,
        "-r",
        &url,
        "--output-format",
        "avro",
        "--challenger",
        "assets/model.json",
        "--count",
        "5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("done: scored 4  bad 1  delivery errors 0"),
        "{stderr}"
    );
    // No input schema was looked up: the prediction's schema is the first this registry has.
    assert!(
        stderr.contains(&format!("registry {url}: 0 schema look-ups")),
        "{stderr}"
    );
    let printed = by_offset(&stdout);
    let read = published_avro(&b, &url, "salary-predictions", 4, SchemaId(1));
    assert_eq!(read.len(), 4);
    for (offset, json) in &printed {
        let years = json["years_experience"].as_f64().expect("years");
        assert_eq!(json["predicted_salary"].as_f64(), Some(salary(years)));
        assert_eq!(read[offset], with_nulls(json.clone(), "salary"), "{offset}");
    }
    assert_eq!(read[&0]["id"], "a1");
    assert_eq!(read[&0]["residual"], 76000.0 - salary(5.3));
    assert_eq!(read[&1]["id"], 7);
    assert_eq!(read[&3]["id"], serde_json::Value::Null);
    assert_eq!(read[&4]["id"], "z\"q");
    assert_eq!(read[&4]["extrapolated"], true);
    assert_eq!(
        read[&0]["challenger"]["predicted_salary"],
        read[&0]["predicted_salary"]
    );
    // The dead letter keeps the original bytes.
    let dead = common::read_n(&b, "experience-events.dlq", 1, Duration::from_secs(30));
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json"[..]));

    // Without -r, avro output is refused in one line.
    let (code, _, stderr) = common::run(&["score", "-b", &b, "--output-format", "avro"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "--output-format avro writes predictions for a Schema Registry: give it with -r URL"
        ),
        "{stderr}"
    );
}

/// A linear artifact's prediction for `record`: the intercept, then each coefficient times its
/// feature, in the features' order (as the scorer sums).
fn linear(artifact: &serde_json::Value, record: &serde_json::Value) -> f64 {
    let kind = &artifact["kind"];
    let features = artifact["features"].as_array().expect("features");
    features
        .iter()
        .zip(kind["coefficients"].as_array().expect("coefficients"))
        .fold(
            kind["intercept"].as_f64().expect("an intercept"),
            |sum, (f, c)| {
                let field = f["field"].as_str().expect("a field");
                sum + c.as_f64().expect("a number") * record[field].as_f64().expect("a feature")
            },
        )
}

#[test]
fn produced_avro_and_protobuf_events_of_any_model_are_all_scored_exactly() {
    let python = have_python();
    let registry = Registry::start(&[]);
    let url = registry.url.clone();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (diabetes_model, artifact) = common::diabetes::trained(dir.path());
    let n = 40;
    let count = n.to_string();
    for (format, model) in [
        ("avro", None),
        ("protobuf", None),
        ("avro", Some(diabetes_model.as_str())),
        ("protobuf", Some(diabetes_model.as_str())),
    ] {
        let case = format!("{format} {}", model.unwrap_or("salary"));
        let (_broker, b) = common::broker_process(1);
        // A topic (so a subject) for each case: a registry may keep a subject to one type.
        let topic = format!(
            "events-{format}-{}",
            if model.is_some() {
                "diabetes"
            } else {
                "salary"
            }
        );
        let with_model = |mut args: Vec<&'static str>| -> Vec<String> {
            let mut args: Vec<String> = args.drain(..).map(str::to_owned).collect();
            args.extend(["-b".into(), b.clone(), "-r".into(), url.clone()]);
            args.extend(["-t".into(), topic.clone()]);
            if let Some(m) = model {
                args.extend(["--model".into(), m.to_owned()]);
            }
            args
        };
        let args = with_model(vec!["produce", "--labels", "--seed", "5", "--rate", "max"]);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--format", format, "--count", &count]);
        let (code, _, stderr) = common::run(&args);
        assert_eq!(code, 0, "{case}: {stderr}");
        assert!(
            stderr.contains(&format!("done: sent {n}  acked {n}  failed 0")),
            "{case}: {stderr}"
        );
        let subject_line = format!("{format} events, schema ");
        assert!(stderr.contains(&subject_line), "{case}: {stderr}");
        assert!(
            stderr.contains(&format!(" under {topic}-value ")),
            "{case}: {stderr}"
        );

        // Scored with the predictions written as Avro: Confluent's reader checks them too.
        let avro_out = python && model.is_some();
        let args = with_model(vec!["score"]);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--count", &count]);
        if avro_out {
            args.extend(["--output-format", "avro"]);
        }
        let (code, stdout, stderr) = common::run(&args);
        assert_eq!(code, 0, "{case}: {stderr}");
        assert!(
            stderr.contains(&format!("done: scored {n}  bad 0  delivery errors 0")),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("registry {url}: 1 schema look-up\n")),
            "{case}: {stderr}"
        );
        // By id: the topic the producer made has partitions of its own, each from offset 0.
        let printed: std::collections::BTreeMap<i64, serde_json::Value> = stdout
            .lines()
            .map(|l| {
                let v = common::json(l);
                (v["id"].as_i64().expect("an id"), v)
            })
            .collect();
        assert_eq!(
            printed.keys().copied().collect::<Vec<_>>(),
            (0..n as i64).collect::<Vec<_>>(),
            "{case}"
        );
        for v in printed.values() {
            let (field, want) = match model {
                None => {
                    let years = v["years_experience"].as_f64().expect("years");
                    ("predicted_salary", salary(years))
                }
                Some(_) => ("predicted_progression", linear(&artifact, v)),
            };
            assert_eq!(v[field].as_f64(), Some(want), "{case}: {v}");
            assert!(v["ts_ms"].as_i64().is_some(), "{case}: {v}");
            let label = if model.is_some() {
                "progression"
            } else {
                "salary"
            };
            assert!(v[label].as_f64().is_some(), "{case}: labeled: {v}");
        }
        if avro_out {
            let values: Vec<Vec<u8>> =
                common::read_n(&b, "salary-predictions", n, Duration::from_secs(30))
                    .into_iter()
                    .map(|r| r.value.expect("a value"))
                    .collect();
            let read: std::collections::BTreeMap<i64, serde_json::Value> =
                confluent_avro(&url, &values)
                    .into_iter()
                    .map(|v| (v["id"].as_i64().expect("an id"), v))
                    .collect();
            for (id, json) in &printed {
                let avro = &read[id];
                assert_eq!(*avro, with_nulls(json.clone(), "progression"), "{case}");
                assert_eq!(
                    avro["predicted_progression"].as_f64(),
                    Some(linear(&artifact, avro)),
                    "{case}"
                );
            }
        }
    }

    // Apicurio files a new Protobuf schema under a subject of Avro ones as Avro: refused, not
    // misread. (A model of its own names, so that its schema is new to the registry.)
    let pay = dir.path().join("pay.json");
    let (code, _, stderr) = common::run(&[
        "train",
        "--target",
        "Salary=pay",
        "--feature",
        "YearsExperience=years",
        "--out",
        pay.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (_broker, b) = common::broker_process(1);
    let (code, _, stderr) = common::run(&[
        "produce",
        "-b",
        &b,
        "-r",
        &url,
        "-t",
        "events-avro-salary",
        "--model",
        pay.to_str().expect("utf-8"),
        "--format",
        "protobuf",
        "--count",
        "1",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "under events-avro-salary-value as avro, not protobuf: the subject holds \
             avro schemas; produce protobuf events to another topic"
        ),
        "{stderr}"
    );
    // A format needs a registry, and a registry a format.
    let (code, _, stderr) = common::run(&["produce", "-b", &b, "--format", "avro", "--count", "1"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--format avro writes events for a Schema Registry: give it with -r URL"),
        "{stderr}"
    );
    let (code, _, stderr) = common::run(&["produce", "-b", &b, "-r", &url, "--count", "1"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("-r is for --format avro or protobuf; produce writes JSON without"),
        "{stderr}"
    );
}

#[test]
fn confluents_avro_protobuf_and_json_schema_events_of_a_ten_feature_model_are_scored_exactly() {
    let registry = Registry::start(&[]);
    let url = registry.url.clone();
    let vectors = vectors("tests/registry/diabetes-vectors.json");
    let ids = register_vectors(&client(&url), &vectors);
    let dir = tempfile::tempdir().expect("a temp dir");
    let (model, artifact) = common::diabetes::trained(dir.path());
    let mut fields: Vec<&str> = artifact["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["field"].as_str().expect("a field"))
        .collect();
    assert_eq!(fields.len(), 10);

    // What the vectors hold: one schema a format, every format, events with the label and
    // without in each, and every event carrying each field the model reads (by its name there).
    assert_eq!(ids.len(), 3);
    for format in ["avro", "protobuf", "json"] {
        let labeled = |with: bool| {
            vectors
                .iter()
                .filter(|v| v.format == format && v.expect["progression"].is_number() == with)
                .count()
        };
        assert_eq!((labeled(true), labeled(false)), (2, 2), "{format}");
    }
    fields.sort_unstable();
    for v in &vectors {
        let mut carried: Vec<&str> = v.expect["features"]
            .as_object()
            .expect("features")
            .keys()
            .map(String::as_str)
            .collect();
        carried.sort_unstable();
        assert_eq!(carried, fields, "{}", v.name);
    }

    let (_broker, b) = common::broker_process(1);
    let values: Vec<Option<Vec<u8>>> = vectors
        .iter()
        .map(|v| Some(reframed(&v.value, ids[&v.schema_id])))
        .collect();
    common::produce_all(&b, "experience-events", &values);
    let n = vectors.len();
    let (code, stdout, stderr) = common::run(&[
        "score",
        "-b",
        &b,
        "-r",
        &url,
        "--model",
        &model,
        "--count",
        &n.to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().find(|l| l.starts_with("done: ")),
        Some(format!("done: scored {n}  bad 0  delivery errors 0").as_str()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("registry {url}: 3 schema look-ups")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "input: avro, schema {} (registry {url})",
            ids[&vectors[0].schema_id]
        )),
        "{stderr}"
    );

    let printed = by_offset(&stdout);
    assert_eq!(
        printed.keys().copied().collect::<Vec<_>>(),
        (0..n as i64).collect::<Vec<_>>()
    );
    for (offset, v) in vectors.iter().enumerate() {
        let (got, want) = (&printed[&(offset as i64)], &v.expect);
        let features = &want["features"];
        for field in &fields {
            assert_eq!(
                got[*field].as_f64(),
                features[*field].as_f64(),
                "{} {field}",
                v.name
            );
        }
        let predicted = linear(&artifact, features);
        assert_eq!(
            got["predicted_progression"].as_f64(),
            Some(predicted),
            "{}",
            v.name
        );
        assert_eq!(got["id"], want["id"], "{}", v.name);
        assert_eq!(got["ts_ms"], want["ts_ms"], "{}", v.name);
        match want["progression"].as_f64() {
            Some(label) => {
                assert_eq!(got["progression"].as_f64(), Some(label), "{}", v.name);
                assert_eq!(
                    got["residual"].as_f64(),
                    Some(label - predicted),
                    "{}",
                    v.name
                );
            }
            None => assert!(
                got.get("progression").is_none() && got.get("residual").is_none(),
                "{}: {got}",
                v.name
            ),
        }
    }
    assert!(
        common::nonempty_partitions(&b, "experience-events.dlq", 1).is_empty(),
        "nothing dead-lettered"
    );
}

#[test]
fn backtest_reads_framed_records_through_the_registry_as_it_reads_the_same_events_in_json() {
    let registry = Registry::start(&[]);
    let url = registry.url.clone();
    let (_framed_broker, a) = common::broker_process(1);
    let (_json_broker, b) = common::broker_process(1);
    let n = 60;
    let (code, _, stderr) = common::run(&[
        "produce",
        "-b",
        &a,
        "-r",
        &url,
        "--format",
        "avro",
        "--labels",
        "--seed",
        "9",
        "--rate",
        "max",
        "--count",
        &n.to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    // The same events as JSON, in the same order, from what the scorer read of them.
    let (code, stdout, stderr) = common::run(&[
        "score",
        "-b",
        &a,
        "-r",
        &url,
        "--no-output",
        "--count",
        &n.to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let mut unknown = Vec::new();
    write_header(SchemaId(999), &mut unknown);
    unknown.extend_from_slice(&avro_datum("u1", 1.0));
    let mut json: Vec<Option<Vec<u8>>> = by_offset(&stdout)
        .values()
        .map(|v| {
            Some(
                serde_json::json!({
                    "id": v["id"], "years_experience": v["years_experience"],
                    "ts_ms": v["ts_ms"], "salary": v["salary"],
                })
                .to_string()
                .into_bytes(),
            )
        })
        .collect();
    assert_eq!(json.len(), n);
    json.push(Some(unknown.clone()));
    common::produce_all(&b, "experience-events", &json);
    common::produce_all(&a, "experience-events", &[Some(unknown)]);

    let backtest = |broker: &str, registry: bool| -> serde_json::Value {
        let mut args = vec![
            "backtest",
            "-b",
            broker,
            "--candidate",
            "assets/model.json",
            "--json",
        ];
        if registry {
            args.extend(["-r", &url]);
        }
        let (code, stdout, stderr) = common::run(&args);
        assert_eq!(code, 0, "{stderr}");
        common::json(stdout.trim())
    };
    let framed = backtest(&a, true);
    let plain = backtest(&b, false);
    assert_eq!(framed["records"], n as u64 + 1);
    assert_eq!(framed["bad"], 1);
    assert_eq!(framed["models"][0]["labeled"], n as u64);
    assert_eq!(framed["models"], plain["models"]);
    // Without -r, framed records are bad ones.
    let unread = backtest(&a, false);
    assert_eq!(unread["bad"], n as u64 + 1);
}
