//! Whether the brokers are librdkafka's mock cluster: the embedded broker, or `salary-stream
//! broker` in a process of its own, which a second dashboard or a bench reaches with `-b`. The
//! mock keeps the record batches a producer sends as they come, so compressing predictions for
//! it costs our CPU and saves nobody anything (a ten-feature prediction spent a third of the
//! scorer's user time in lz4 there; BENCHMARKS.md, issue 24).
//!
//! It is told by its cluster id, which librdkafka makes `mockCluster` and a hexadecimal number,
//! read from one Metadata answer of the first bootstrap broker. Only a plaintext listener is
//! asked: the mock speaks nothing else, and a TLS or SASL handshake is not worth a guess.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::config::KafkaOptions;
use super::diagnose::{answer, first_entry, request, CLIENT_ID};

/// How long the question may take in all, connecting and answered: a broker that has not
/// answered by then is taken for a real one (the scorer's start waits no longer for it).
const WAIT: Duration = Duration::from_millis(500);

/// How librdkafka's mock cluster names itself.
const MOCK_CLUSTER_ID: &str = "mockCluster";

/// Whether `kafka` is librdkafka's mock cluster: the embedded broker, or a plaintext broker on
/// this machine whose Metadata answer names a mock cluster. False when it cannot be asked or
/// does not answer in time.
pub fn serves(kafka: &KafkaOptions) -> bool {
    if kafka.embedded {
        return true;
    }
    if kafka.security_protocol() != "PLAINTEXT" {
        return false;
    }
    cluster_id(&kafka.bootstrap).is_some_and(|id| id.starts_with(MOCK_CLUSTER_ID))
}

/// The cluster id the first bootstrap broker gives in a Metadata answer (version 2, no topics),
/// asked only when it is on this machine (a loopback address, or `localhost`: the mock listens
/// on 127.0.0.1 alone), of each of its loopback addresses in turn, within [`WAIT`] in all. No
/// name is looked up, and a broker elsewhere is never asked.
pub fn cluster_id(bootstrap: &str) -> Option<String> {
    let (_, host, port) = first_entry(bootstrap)?;
    let port: u16 = port.parse().ok()?;
    let addresses: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
    } else {
        vec![host.parse().ok().filter(IpAddr::is_loopback)?]
    };
    let deadline = Instant::now() + WAIT;
    addresses
        .into_iter()
        .find_map(|ip| asked(SocketAddr::new(ip, port), deadline))
}

/// The cluster id `address` answers with by `deadline`.
fn asked(address: SocketAddr, deadline: Instant) -> Option<String> {
    let left = deadline.checked_duration_since(Instant::now())?;
    let stream = TcpStream::connect_timeout(&address, left).ok()?;
    let body = answer(Bounded { stream, deadline }, &metadata_request(), 4)?;
    parse_cluster_id(&body)
}

/// A connection whose every read and write ends by `deadline`.
struct Bounded {
    stream: TcpStream,
    deadline: Instant,
}

impl Bounded {
    /// What is left until the deadline, or a timeout once it has passed.
    fn left(&self) -> std::io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| std::io::ErrorKind::TimedOut.into())
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A Metadata request, version 2, correlation id 1, for no topic (an empty list; a null one
/// would ask for every topic).
fn metadata_request() -> Vec<u8> {
    request(3, 2, CLIENT_ID, &0i32.to_be_bytes())
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
    fn answer_body(
        brokers: &[(i32, &str, i32, Option<&str>)],
        cluster_id: Option<&str>,
    ) -> Vec<u8> {
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
        let body = answer_body(&brokers, Some("mockCluster5a3f"));
        assert_eq!(parse_cluster_id(&body).as_deref(), Some("mockCluster5a3f"));
        let body = answer_body(&brokers, Some("MkU3OEVBNTcwNTJENDM2Qg"));
        assert_eq!(
            parse_cluster_id(&body).as_deref(),
            Some("MkU3OEVBNTcwNTJENDM2Qg")
        );
        assert_eq!(parse_cluster_id(&answer_body(&brokers, None)), None);
        assert_eq!(
            parse_cluster_id(&answer_body(&[], Some("c1"))).as_deref(),
            Some("c1")
        );
    }

    #[test]
    fn a_cut_or_foreign_answer_names_no_cluster() {
        let body = answer_body(&[(1, "127.0.0.1", 9092, None)], Some("mockCluster1"));
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

    /// A broker on a loopback port that answers every request with the Metadata answer naming
    /// `cluster_id` (none: it never answers); its address, and how many requests it was sent.
    fn answering(cluster_id: Option<&'static str>) -> (String, std::sync::mpsc::Receiver<usize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (asked, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut size = [0u8; 4];
                if stream.read_exact(&mut size).is_err() {
                    continue;
                }
                let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                let _ = stream.read_exact(&mut body);
                let _ = asked.send(body.len());
                let Some(id) = cluster_id else {
                    std::thread::sleep(Duration::from_secs(2));
                    continue;
                };
                let body = answer_body(&[(1, "127.0.0.1", 9092, None)], Some(id));
                let _ = stream.write_all(&(body.len() as i32).to_be_bytes());
                let _ = stream.write_all(&body);
            }
        });
        (address, requests)
    }

    #[test]
    fn a_loopback_broker_naming_a_mock_cluster_is_one_and_a_real_id_is_not() {
        let (mock, asked) = answering(Some("mockCluster1f2e"));
        assert!(serves(&KafkaOptions::brokers(&mock)));
        assert_eq!(asked.try_recv(), Ok(metadata_request().len() - 4));
        let port = mock.rsplit_once(':').unwrap().1;
        assert!(serves(&KafkaOptions::brokers(&format!(
            "localhost:{port},10.0.0.9:9092"
        ))));
        assert!(serves(&KafkaOptions::brokers(&format!(
            "PLAINTEXT://127.0.0.1:{port}"
        ))));
        let (real, _) = answering(Some("MkU3OEVBNTcwNTJENDM2Qg"));
        assert!(!serves(&KafkaOptions::brokers(&real)));
        assert_eq!(cluster_id(&real).as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qg"));
    }

    #[test]
    fn tls_a_broker_elsewhere_and_a_silent_one_are_not_taken_for_the_mock() {
        let (mock, asked) = answering(Some("mockCluster1f2e"));
        let mut tls = KafkaOptions::brokers(&mock);
        tls.properties = vec![("security.protocol".into(), "SSL".into())];
        assert!(!serves(&tls));
        assert!(asked.try_recv().is_err(), "a TLS listener is not asked");
        assert_eq!(cluster_id("kafka.example.com:9092"), None);
        assert_eq!(cluster_id("10.0.0.9:9092"), None);
        let (silent, asked) = answering(None);
        assert!(!serves(&KafkaOptions::brokers(&silent)));
        assert!(asked.recv_timeout(Duration::from_secs(5)).is_ok(), "asked");
        let mut embedded = KafkaOptions::brokers("127.0.0.1:1");
        embedded.embedded = true;
        assert!(serves(&embedded), "the embedded broker, without asking");
    }
}
