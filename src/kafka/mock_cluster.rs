//! Whether the brokers are librdkafka's mock cluster: the embedded broker, or `salary-stream
//! broker` in a process of its own, which a second dashboard or a bench reaches with `-b`. The
//! mock keeps the record batches a producer sends as they come, so compressing predictions for
//! it costs our CPU and saves nobody anything (a ten-feature prediction spent a third of the
//! scorer's user time in lz4 there; BENCHMARKS.md, issue 24).
//!
//! It is told by its cluster id, which librdkafka makes `mockCluster` and a hexadecimal number,
//! read from one Metadata answer of the first bootstrap broker. Only a plaintext listener is
//! asked: the mock speaks nothing else, and a TLS or SASL handshake is not worth a guess.

use std::net::TcpStream;
use std::time::Duration;

use super::config::KafkaOptions;
use super::diagnose::{answer, first_address, request};

/// How long the question waits to connect, and then for its answer: a broker that does not
/// answer by then is taken for a real one (the scorer's start waits no longer for it).
const WAIT: Duration = Duration::from_millis(500);

/// How librdkafka's mock cluster names itself.
const MOCK_CLUSTER_ID: &str = "mockCluster";

/// Whether `kafka` is librdkafka's mock cluster: the embedded broker, or a plaintext broker whose
/// Metadata answer names a mock cluster. False when it cannot be asked or does not answer.
pub fn serves(kafka: &KafkaOptions) -> bool {
    if kafka.embedded {
        return true;
    }
    if kafka.security_protocol() != "PLAINTEXT" {
        return false;
    }
    cluster_id(&kafka.bootstrap).is_some_and(|id| id.starts_with(MOCK_CLUSTER_ID))
}

/// The cluster id the first bootstrap broker gives in a Metadata answer (version 2, no topics).
fn cluster_id(bootstrap: &str) -> Option<String> {
    let (_, _, address) = first_address(bootstrap)?.ok()?;
    let stream = TcpStream::connect_timeout(&address, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    stream.set_write_timeout(Some(WAIT)).ok()?;
    parse_cluster_id(&answer(stream, &metadata_request(), 4)?)
}

/// A Metadata request, version 2, correlation id 1, for no topic (an empty list; a null one
/// would ask for every topic).
fn metadata_request() -> Vec<u8> {
    request(3, 2, b"salary-stream", &0i32.to_be_bytes())
}

/// The cluster id of a Metadata v2 answer's body (after its size): correlation id, the brokers
/// (`[node_id, host, port, rack]`), then the cluster id, a nullable string.
fn parse_cluster_id(body: &[u8]) -> Option<String> {
    let mut at = 0;
    let mut take = |n: usize| {
        let bytes = body.get(at..at + n)?;
        at += n;
        Some(bytes)
    };
    let int32 = |b: &[u8]| i32::from_be_bytes(b.try_into().expect("four bytes"));
    let int16 = |b: &[u8]| i16::from_be_bytes(b.try_into().expect("two bytes"));
    if int32(take(4)?) != 1 {
        return None;
    }
    let brokers = usize::try_from(int32(take(4)?)).ok()?;
    for _ in 0..brokers {
        take(4)?;
        let host = usize::try_from(int16(take(2)?)).ok()?;
        take(host + 4)?;
        // The rack: -1 when null.
        let rack = usize::try_from(int16(take(2)?)).unwrap_or(0);
        take(rack)?;
    }
    let id = usize::try_from(int16(take(2)?)).ok()?;
    String::from_utf8(take(id)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Metadata v2 answer's body with these brokers (`node, host, port, rack`) and cluster id.
    fn answer(brokers: &[(i32, &str, i32, Option<&str>)], cluster_id: Option<&str>) -> Vec<u8> {
        let string = |out: &mut Vec<u8>, s: Option<&str>| match s {
            Some(s) => {
                out.extend_from_slice(&(s.len() as i16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            None => out.extend_from_slice(&(-1i16).to_be_bytes()),
        };
        let mut out = 1i32.to_be_bytes().to_vec();
        out.extend_from_slice(&(brokers.len() as i32).to_be_bytes());
        for (node, host, port, rack) in brokers {
            out.extend_from_slice(&node.to_be_bytes());
            string(&mut out, Some(host));
            out.extend_from_slice(&port.to_be_bytes());
            string(&mut out, *rack);
        }
        string(&mut out, cluster_id);
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out
    }

    #[test]
    fn the_cluster_id_is_read_past_every_broker_with_or_without_a_rack() {
        let brokers = [
            (1, "127.0.0.1", 9092, None),
            (2, "kafka-2.example", 9093, Some("eu-west-1a")),
        ];
        let body = answer(&brokers, Some("mockCluster5a3f"));
        assert_eq!(parse_cluster_id(&body).as_deref(), Some("mockCluster5a3f"));
        let body = answer(&brokers, Some("MkU3OEVBNTcwNTJENDM2Qg"));
        assert_eq!(
            parse_cluster_id(&body).as_deref(),
            Some("MkU3OEVBNTcwNTJENDM2Qg")
        );
        assert_eq!(parse_cluster_id(&answer(&brokers, None)), None);
        assert_eq!(
            parse_cluster_id(&answer(&[], Some("c1"))).as_deref(),
            Some("c1")
        );
    }

    #[test]
    fn a_cut_or_foreign_answer_names_no_cluster() {
        let body = answer(&[(1, "127.0.0.1", 9092, None)], Some("mockCluster1"));
        // The id ends 8 bytes before the end (the controller id and an empty topic list).
        let end = body.len() - 8;
        for cut in 0..end {
            assert_eq!(parse_cluster_id(&body[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            parse_cluster_id(&body[..end]).as_deref(),
            Some("mockCluster1")
        );
        let mut other = body.clone();
        other[3] = 2;
        assert_eq!(parse_cluster_id(&other), None, "another correlation id");
    }

    #[test]
    fn the_request_asks_metadata_v2_for_no_topic() {
        let request = metadata_request();
        let size = i32::from_be_bytes(request[..4].try_into().unwrap());
        assert_eq!(size as usize, request.len() - 4);
        assert_eq!(&request[4..8], &[0, 3, 0, 2], "api key 3, version 2");
        assert_eq!(&request[8..12], &1i32.to_be_bytes(), "correlation id 1");
        assert_eq!(
            &request[request.len() - 4..],
            &0i32.to_be_bytes(),
            "no topic"
        );
    }

    #[test]
    fn the_embedded_broker_is_a_mock_without_asking_and_tls_is_never_asked() {
        let mut kafka = KafkaOptions {
            bootstrap: "127.0.0.1:1".into(),
            properties: vec![],
            embedded: true,
        };
        assert!(serves(&kafka));
        kafka.embedded = false;
        assert!(!serves(&kafka), "nothing answers at port 1");
        kafka.properties = vec![("security.protocol".into(), "SSL".into())];
        assert!(!serves(&kafka));
    }
}
