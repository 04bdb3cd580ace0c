//! What is wrong with a bootstrap address that librdkafka cannot use, found by asking it directly:
//! a host that does not resolve, a port that answers but not in Kafka's protocol, TLS spoken to a
//! plaintext listener or the reverse, and a certificate the client does not trust or that names
//! another host.
//!
//! librdkafka reports all of these as a transport failure or "certificate verify failed"; a user
//! needs to hear which, and what to change.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::X509;

use super::config::KafkaOptions;

/// How long the check waits to connect, and then for an answer.
const WAIT: Duration = Duration::from_secs(1);

/// OpenSSL's `X509_V_ERR_HOSTNAME_MISMATCH`, `X509_V_ERR_EMAIL_MISMATCH` and
/// `X509_V_ERR_IP_ADDRESS_MISMATCH`: the certificate is valid, but for another name.
const NAME_MISMATCHES: [i32; 3] = [62, 63, 64];

/// Why the first address of the bootstrap list cannot be used, if that can be told: `None` when
/// it may well be a Kafka broker that is down, paused or slow.
pub fn wrong_address(kafka: &KafkaOptions) -> Option<String> {
    let (first, host, address) = match first_address(&kafka.bootstrap)? {
        Ok(found) => found,
        Err(unresolved) => return Some(unresolved),
    };
    if kafka.plaintext() {
        match speaks_kafka(&address) {
            Some(true) => None,
            Some(false) => Some(format!(
                "{first} answered, but not in Kafka's protocol: is {first} a Kafka broker?"
            )),
            // A TLS listener hangs up on a plain request, as a restarting broker may.
            None if tls_answers(&address, &host) => Some(format!(
                "{first} speaks TLS, not plaintext: add -X security.protocol=SSL (or SASL_SSL)"
            )),
            None => None,
        }
    } else {
        tls_problem(kafka, &first, &host, &address)
    }
}

/// The first address of `bootstrap` as given (without a `proto://`), its host (without the
/// brackets of an IPv6 address) and its port, unresolved.
pub(super) fn first_entry(bootstrap: &str) -> Option<(&str, &str, &str)> {
    let first = bootstrap.split(',').next()?.trim();
    let first = first
        .split_once("://")
        .map_or(first, |(_, address)| address);
    let (host, port) = first.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((first, host, port))
}

/// The first address of `bootstrap` as given, its host and where it resolves; `Err` with the line
/// for a host that does not resolve.
fn first_address(bootstrap: &str) -> Option<Result<(String, String, SocketAddr), String>> {
    let (first, host, _) = first_entry(bootstrap)?;
    let host = host.to_owned();
    let address = match first.to_socket_addrs() {
        Ok(mut addresses) => addresses.next()?,
        Err(_) => {
            return Some(Err(format!(
                "cannot resolve host {host}: no such host is known"
            )))
        }
    };
    Some(Ok((first.to_owned(), host, address)))
}

/// Whether what answers at `address` is Kafka (an ApiVersions answer); `None` when nothing
/// answers in time, which tells nothing.
fn speaks_kafka(address: &SocketAddr) -> Option<bool> {
    let mut stream = TcpStream::connect_timeout(address, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    stream.set_write_timeout(Some(WAIT)).ok()?;
    stream.write_all(&api_versions_request()).ok()?;
    let mut header = [0u8; 8];
    let mut read = 0;
    while read < header.len() {
        match stream.read(&mut header[read..]) {
            // Hung up: a broker restarting or a balancer with no backend does that too, and so
            // does a TLS listener, so this alone tells nothing.
            Ok(0) => return None,
            Ok(n) => read += n,
            // No answer in time: a paused or busy broker, not a wrong one.
            Err(_) => return None,
        }
    }
    let size = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let correlation = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    Some((4..=100_000_000).contains(&size) && correlation == 1)
}

/// Whether a TLS handshake, trusting anything, completes at `address`.
fn tls_answers(address: &SocketAddr, host: &str) -> bool {
    let Ok(mut builder) = SslConnector::builder(SslMethod::tls_client()) else {
        return false;
    };
    builder.set_verify(SslVerifyMode::NONE);
    let connector = builder.build();
    let Some(stream) = connected(address) else {
        return false;
    };
    connector
        .configure()
        .map(|c| c.verify_hostname(false))
        .map(|c| c.connect(host, stream).is_ok())
        .unwrap_or(false)
}

fn connected(address: &SocketAddr) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(address, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    stream.set_write_timeout(Some(WAIT)).ok()?;
    Some(stream)
}

/// A TLS client configuration that trusts what librdkafka would (`ssl.ca.location`,
/// `ssl.ca.pem`, else the system's store) and checks the host name unless
/// `ssl.endpoint.identification.algorithm=none`.
fn verifying(kafka: &KafkaOptions) -> Option<openssl::ssl::ConnectConfiguration> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).ok()?;
    match kafka.property("ssl.ca.location") {
        Some(path) if std::path::Path::new(path).is_dir() => builder
            .load_verify_locations(None, Some(path.as_ref()))
            .ok()?,
        Some(path) => builder.set_ca_file(path).ok()?,
        None => builder.set_default_verify_paths().ok()?,
    }
    if let Some(pem) = kafka.property("ssl.ca.pem") {
        for cert in X509::stack_from_pem(pem.as_bytes()).ok()? {
            builder.cert_store_mut().add_cert(cert).ok()?;
        }
    }
    let check_host = kafka
        .property("ssl.endpoint.identification.algorithm")
        .is_none_or(|a| !a.eq_ignore_ascii_case("none"));
    builder
        .build()
        .configure()
        .ok()
        .map(|c| c.verify_hostname(check_host))
}

/// Kafka's API keys of the transactional requests: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn
/// and TxnOffsetCommit.
const TRANSACTION_APIS: [(i16, &str); 4] = [
    (24, "AddPartitionsToTxn"),
    (25, "AddOffsetsToTxn"),
    (26, "EndTxn"),
    (28, "TxnOffsetCommit"),
];

/// The transactional requests the first bootstrap broker does not serve, by name, from its
/// ApiVersions answer (which Kafka gives before any SASL authentication); `None` when it cannot
/// be asked. librdkafka finds out only at the first commit, which on an idle topic may be never.
pub fn missing_transaction_apis(kafka: &KafkaOptions) -> Option<Vec<&'static str>> {
    let (_, host, address) = first_address(&kafka.bootstrap)?.ok()?;
    let stream = connected(&address)?;
    let keys = if kafka.plaintext() {
        api_keys(stream)?
    } else {
        api_keys(verifying(kafka)?.connect(&host, stream).ok()?)?
    };
    Some(
        TRANSACTION_APIS
            .iter()
            .filter(|(key, _)| !keys.contains(key))
            .map(|(_, name)| *name)
            .collect(),
    )
}

/// The API keys a broker serves, from its ApiVersions v0 answer on `stream`.
fn api_keys(stream: impl Read + Write) -> Option<Vec<i16>> {
    parse_api_versions(&answer(stream, &api_versions_request(), 10)?)
}

/// Sends `request` on `stream` and reads the answer's body (after its size), which must be
/// `min_size` bytes to 1 MB; `None` when the broker hangs up, is silent or says something else.
pub(super) fn answer(
    mut stream: impl Read + Write,
    request: &[u8],
    min_size: usize,
) -> Option<Vec<u8>> {
    stream.write_all(request).ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let size = usize::try_from(i32::from_be_bytes(size)).ok()?;
    if !(min_size..=1 << 20).contains(&size) {
        return None;
    }
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// The API keys of an ApiVersions v0 response body (after its size): correlation id, error
/// code, then `[api_key, min_version, max_version]`.
fn parse_api_versions(body: &[u8]) -> Option<Vec<i16>> {
    let i16_at = |at: usize| Some(i16::from_be_bytes(body.get(at..at + 2)?.try_into().ok()?));
    let error = i16_at(4)?;
    if error != 0 {
        return None;
    }
    let count = i32::from_be_bytes(body.get(6..10)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    (0..count).map(|i| i16_at(10 + i * 6)).collect()
}

/// What is wrong with TLS at `address` for these settings, found by a handshake that trusts what
/// librdkafka would (`ssl.ca.location`, `ssl.ca.pem`, else the system's store) and checks the
/// host name unless `ssl.endpoint.identification.algorithm=none`.
fn tls_problem(
    kafka: &KafkaOptions,
    first: &str,
    host: &str,
    address: &SocketAddr,
) -> Option<String> {
    let configured = verifying(kafka)?;
    let stream = connected(address)?;
    match configured.connect(host, stream) {
        Ok(_) => None,
        Err(HandshakeError::Failure(failed) | HandshakeError::WouldBlock(failed)) => {
            let verify = failed.ssl().verify_result();
            if NAME_MISMATCHES.contains(&verify.as_raw()) {
                Some(format!(
                    "the TLS certificate of {first} is not for {host} ({}): connect by a name the \
                     certificate holds, or -X ssl.endpoint.identification.algorithm=none to skip \
                     the check",
                    verify.error_string()
                ))
            } else if verify.as_raw() != 0 {
                Some(format!(
                    "the TLS certificate of {first} is not trusted ({}): give the CA that signed \
                     it with -X ssl.ca.location=PATH",
                    verify.error_string()
                ))
            } else if speaks_kafka(address) == Some(true) {
                Some(format!(
                    "{first} is a plaintext listener, not TLS: use security.protocol=PLAINTEXT \
                     (or SASL_PLAINTEXT), or the TLS listener's port"
                ))
            } else {
                None
            }
        }
        Err(HandshakeError::SetupFailure(_)) => None,
    }
}

/// A refusal librdkafka reported (its text), said as a user can act on it:
/// `authentication failed for alice with SCRAM-SHA-512 at 127.0.0.1:9094`, or for TLS the
/// certificate problem and the setting to change. Text it does not know comes back as it is.
pub fn refusal_line(kafka: &KafkaOptions, reason: &str) -> String {
    let address = broker_address(reason).unwrap_or_else(|| {
        let first = kafka.bootstrap.split(',').next().unwrap_or_default();
        first.trim().to_owned()
    });
    let lower = reason.to_ascii_lowercase();
    if lower.contains("authentication") && lower.contains("sasl") {
        let user = kafka
            .sasl_user()
            .unwrap_or_else(|| "a user not given (-X sasl.username=)".to_owned());
        let mechanism = kafka.sasl_mechanism().unwrap_or_else(|| "SASL".to_owned());
        return format!("authentication failed for {user} with {mechanism} at {address}");
    }
    if lower.contains("certificate verify failed") {
        return format!(
            "the TLS certificate of {address} could not be verified: give the CA that signed it \
             with -X ssl.ca.location=PATH"
        );
    }
    if let Some(at) = lower.find("ssl handshake failed") {
        let rest = reason[at + "ssl handshake failed".len()..].trim_start_matches([':', ' ']);
        let rest = rest.split(" (after ").next().unwrap_or(rest);
        return format!("TLS handshake with {address} failed: {rest}");
    }
    reason.to_owned()
}

/// The `HOST:PORT` of librdkafka's `proto://HOST:PORT/ID: ` prefix.
fn broker_address(reason: &str) -> Option<String> {
    let (name, _) = reason.split_once(": ")?;
    let name = name.split_once("://").map_or(name, |(_, rest)| rest);
    let (address, _) = name.rsplit_once('/')?;
    address.contains(':').then(|| address.to_owned())
}

/// An ApiVersions request, version 0, correlation id 1: the first thing every Kafka client sends.
/// The client id ends in a line break, so that a line-based server (HTTP) answers it too, where
/// it would otherwise wait for the rest of a line; Kafka takes any client id.
fn api_versions_request() -> Vec<u8> {
    request(18, 0, CLIENT_ID, &[])
}

/// The client id of the requests made here; it ends in a line break (see
/// [`api_versions_request`]).
pub(super) const CLIENT_ID: &[u8] = b"salary-stream\r\n";

/// A request of `api_key` at `version` with correlation id 1, `client_id` and `body`, its size
/// first (request header v1).
pub(super) fn request(api_key: i16, version: i16, client_id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut request = Vec::with_capacity(14 + client_id.len() + body.len());
    let size = 10 + client_id.len() + body.len();
    request.extend_from_slice(&(size as i32).to_be_bytes());
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    request.extend_from_slice(body);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_does_not_resolve_is_named() {
        assert_eq!(
            wrong_address(&KafkaOptions::brokers("no-such-host.invalid:9092")).as_deref(),
            Some("cannot resolve host no-such-host.invalid: no such host is known")
        );
    }

    #[test]
    fn a_port_that_answers_http_is_not_kafka() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let _ = conn.read(&mut buf);
            conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        });
        assert_eq!(
            wrong_address(&KafkaOptions::brokers(&address)),
            Some(format!(
                "{address} answered, but not in Kafka's protocol: is {address} a Kafka broker?"
            ))
        );
        server.join().unwrap();
    }

    #[test]
    fn a_port_that_says_nothing_may_be_a_paused_broker() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        assert_eq!(wrong_address(&KafkaOptions::brokers(&address)), None);
        drop(listener);
    }

    #[test]
    fn refusals_are_said_with_the_user_the_mechanism_and_the_address() {
        let scram = KafkaOptions {
            properties: vec![
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.mechanisms".into(), "SCRAM-SHA-512".into()),
                ("sasl.username".into(), "alice".into()),
                ("sasl.password".into(), "wrong-one".into()),
            ],
            ..KafkaOptions::brokers("127.0.0.1:9094")
        };
        let cases = [
            (
                "sasl_ssl://127.0.0.1:40001/bootstrap: SASL authentication error: Authentication \
                 failed during authentication due to invalid credentials with SASL mechanism \
                 SCRAM-SHA-512 (after 302ms in state AUTH_REQ)",
                "authentication failed for alice with SCRAM-SHA-512 at 127.0.0.1:40001",
            ),
            (
                "ssl://127.0.0.1:40002/bootstrap: SSL handshake failed: error:0A000086:SSL \
                 routines::certificate verify failed: broker certificate could not be verified, \
                 verify that ssl.ca.location is correctly configured (after 4ms in state \
                 SSL_HANDSHAKE)",
                "the TLS certificate of 127.0.0.1:40002 could not be verified: give the CA that \
                 signed it with -X ssl.ca.location=PATH",
            ),
            (
                "ssl://127.0.0.1:40003/bootstrap: SSL handshake failed: Disconnected: connection \
                 closed by peer (after 2ms in state SSL_HANDSHAKE)",
                "TLS handshake with 127.0.0.1:40003 failed: Disconnected: connection closed by \
                 peer",
            ),
            ("something else", "something else"),
        ];
        for (reason, line) in cases {
            assert_eq!(refusal_line(&scram, reason), line);
        }
    }

    #[test]
    fn an_api_versions_answer_gives_the_keys_served() {
        // Correlation 1, no error, two APIs: Produce (0) v0-9 and EndTxn (26) v0-3.
        let body = [
            0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 9, 0, 26, 0, 0, 0, 3,
        ];
        assert_eq!(parse_api_versions(&body), Some(vec![0, 26]));
        let refused = [0, 0, 0, 1, 0, 35, 0, 0, 0, 0];
        assert_eq!(parse_api_versions(&refused), None);
        assert_eq!(parse_api_versions(&body[..12]), None, "cut short");
    }

    #[test]
    fn the_request_is_an_api_versions_v0_frame() {
        let r = api_versions_request();
        assert_eq!(&r[..4], &(r.len() as i32 - 4).to_be_bytes());
        assert_eq!(&r[4..12], &[0, 18, 0, 0, 0, 0, 0, 1]);
    }
}
