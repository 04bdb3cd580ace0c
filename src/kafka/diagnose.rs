//! What is wrong with a bootstrap address that librdkafka cannot use, found by asking it directly:
//! a host that does not resolve, or a port that answers but not in Kafka's protocol.
//!
//! librdkafka reports both as a generic transport failure; a user needs to hear which.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long the check waits to connect, and then for an answer.
const WAIT: Duration = Duration::from_secs(1);

/// Why the first address of `bootstrap` (`host:port[,...]`) cannot be Kafka, if that can be told:
/// `None` when it may well be a Kafka broker that is down, paused or slow. Over TLS
/// (`plaintext` false) only the host name is checked: a plain request proves nothing there.
pub fn wrong_address(bootstrap: &str, plaintext: bool) -> Option<String> {
    let first = bootstrap.split(',').next()?.trim();
    let first = first
        .split_once("://")
        .map_or(first, |(_, address)| address);
    let (host, _) = first.rsplit_once(':')?;
    let addresses: Vec<_> = match first.to_socket_addrs() {
        Ok(addresses) => addresses.collect(),
        Err(_) => return Some(format!("cannot resolve host {host}: no such host is known")),
    };
    let address = addresses.first()?;
    if !plaintext {
        return None;
    }
    let mut stream = TcpStream::connect_timeout(address, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    stream.set_write_timeout(Some(WAIT)).ok()?;
    stream.write_all(&api_versions_request()).ok()?;
    let mut header = [0u8; 8];
    let mut read = 0;
    while read < header.len() {
        match stream.read(&mut header[read..]) {
            // Hung up: a broker restarting or a balancer with no backend does that too, so this
            // tells nothing.
            Ok(0) => return None,
            Ok(n) => read += n,
            // No answer in time: a paused or busy broker, not a wrong one.
            Err(_) => return None,
        }
    }
    let size = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let correlation = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let kafka = read == header.len() && (4..=100_000_000).contains(&size) && correlation == 1;
    (!kafka).then(|| {
        format!("{first} answered, but not in Kafka's protocol: is {first} a Kafka broker?")
    })
}

/// An ApiVersions request, version 0, correlation id 1: the first thing every Kafka client sends.
/// The client id ends in a line break, so that a line-based server (HTTP) answers it too, where
/// it would otherwise wait for the rest of a line; Kafka takes any client id.
fn api_versions_request() -> Vec<u8> {
    let client_id = b"salary-stream\r\n";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut request = (body.len() as i32).to_be_bytes().to_vec();
    request.extend_from_slice(&body);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_does_not_resolve_is_named() {
        assert_eq!(
            wrong_address("no-such-host.invalid:9092", false).as_deref(),
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
            wrong_address(&address, true),
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
        assert_eq!(wrong_address(&address, true), None);
        drop(listener);
    }

    #[test]
    fn the_request_is_an_api_versions_v0_frame() {
        let r = api_versions_request();
        assert_eq!(&r[..4], &(r.len() as i32 - 4).to_be_bytes());
        assert_eq!(&r[4..12], &[0, 18, 0, 0, 0, 0, 0, 1]);
    }
}
