//! hyper's HTTP/1 on a thread and a current-thread tokio runtime of its own, answering `GET` and
//! `HEAD` on `/metrics` with [`Metrics::encode`].
//!
//! It is reachable by any peer on the network, so every resource a peer can hold is bounded: the
//! bytes of a request head, the time to send one, the life of a connection and the number of
//! connections. It never reads a request body.
//!
//! Architecture Invariant: it does not use the caller's runtime (the dashboard and the headless
//! scorer may or may not run one), and the caller never waits on it after [`serve`] returns.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::pin::pin;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use super::metrics::Metrics;

/// The content type of the series, as the text encoder writes them.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The answer to any path but `/metrics`.
const ELSEWHERE: &str = "salary-stream serves its metrics at /metrics\n";

/// The answer to a method other than `GET` or `HEAD` on `/metrics`.
const WRONG_METHOD: &str = "/metrics answers GET and HEAD\n";

/// The largest request head read, in bytes; a longer one is answered 431 and its connection
/// closed.
// A scraper's head is a few hundred bytes. Without a bound, the hand-written server this replaced
// buffered a 2.2 GB request line whole. hyper allows no smaller buffer than 8 KiB.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long accepting pauses after it fails.
// The usual failure is running out of file descriptors, which lasts until connections close:
// retrying at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one peer, or many, may hold of the server.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Connections served at once; one more is accepted and closed at once.
    connections: usize,
    /// How long a connection may take to send a whole request head, counted from when the
    /// server starts waiting for it, so also how long a connection may sit idle.
    header_read: Duration,
    /// How long a connection is served before it is asked to close after its current answer.
    lifetime: Duration,
    /// How long a connection asked to close may still take to finish its answer.
    grace: Duration,
}

impl Limits {
    // 1024 connections: far more than any set of scrapers (one connection each), so only a
    // flood meets the cap, and each idle connection holds at most an 8 KiB read buffer.
    // 10 s for a head: a scraper sends its request in one packet; an idle keep-alive connection
    // between scrapes is closed and simply reopened by the next scrape.
    // 60 s of life plus 10 s of grace: a scrape takes milliseconds, so this only ends a peer that
    // sends requests and never reads the answers, which would otherwise hold its slot forever.
    const DEFAULT: Limits = Limits {
        connections: 1024,
        header_read: Duration::from_secs(10),
        lifetime: Duration::from_secs(60),
        grace: Duration::from_secs(10),
    };
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {address}: {source}")]
pub struct ServeError {
    address: String,
    source: std::io::Error,
}

/// Serves `metrics` at `http://ADDRESS/metrics` from a thread of its own for the life of the
/// process; returns the address bound (a port of 0 picks a free one). The address is bound before
/// it returns, so an address in use is an error at once.
pub fn serve(address: &str, metrics: Arc<Metrics>) -> Result<SocketAddr, ServeError> {
    start(address, metrics, Limits::DEFAULT).map(|(bound, _)| bound)
}

/// [`serve`] with given limits; with the address bound, the semaphore holding one permit per
/// connection that may still open.
fn start(
    address: &str,
    metrics: Arc<Metrics>,
    limits: Limits,
) -> Result<(SocketAddr, Arc<Semaphore>), ServeError> {
    let fail = |source| ServeError {
        address: address.to_owned(),
        source,
    };
    let listener = TcpListener::bind(address).map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let free = Arc::new(Semaphore::new(limits.connections));
    let permits = free.clone();
    // The runtime is built, and dropped if it fails, on the server's own thread: dropping a
    // runtime from inside the caller's async context would panic.
    let (ready, started) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return drop(ready.send(Err(e))),
            };
            let listener = {
                let _context = runtime.enter();
                tokio::net::TcpListener::from_std(listener)
            };
            match listener {
                Ok(listener) => {
                    let _ = ready.send(Ok(()));
                    runtime.block_on(accept(listener, metrics, limits, permits));
                }
                Err(e) => drop(ready.send(Err(e))),
            }
        })
        .map_err(fail)?;
    started
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the metrics thread stopped")))
        .map_err(fail)?;
    Ok((bound, free))
}

/// Accepts connections for ever, each served by a task of its own while a permit of `free` is
/// left.
async fn accept(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    limits: Limits,
    free: Arc<Semaphore>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(MAX_REQUEST_HEAD);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Closed at once rather than left unaccepted: the peer learns now, instead of waiting in
        // the kernel's backlog to be served an answer it no longer wants.
        let Ok(permit) = free.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |request: Request<_>| {
            let response = answer(request.method(), request.uri().path(), &metrics);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "metrics connection");
                    }
                }
                () = tokio::time::sleep(limits.lifetime) => {
                    connection.as_mut().graceful_shutdown();
                    if tokio::time::timeout(limits.grace, connection).await.is_err() {
                        tracing::debug!("metrics connection dropped past its lifetime");
                    }
                }
            }
        });
    }
}

/// The answer to `method` on `path`: the series on `/metrics` (headers only for `HEAD`), 405
/// for another method there, 404 with a hint elsewhere.
fn answer(method: &Method, path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    if path != "/metrics" {
        return text(StatusCode::NOT_FOUND, "text/plain", ELSEWHERE.into());
    }
    match *method {
        Method::GET => text(StatusCode::OK, OPENMETRICS, metrics.encode()),
        Method::HEAD => {
            let mut response = text(StatusCode::OK, OPENMETRICS, metrics.encode());
            // The length of what GET would send, which HEAD promises without sending it.
            *response.body_mut() = Full::default();
            response
        }
        _ => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                WRONG_METHOD.into(),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
    }
}

/// A response of `status` carrying `body` as `content_type`, with its length.
fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let length = body.len();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use super::*;
    use crate::engine::{EngineEvent, LagByPartition};

    /// A running endpoint.
    struct Endpoint {
        address: SocketAddr,
        metrics: Arc<Metrics>,
        free: Arc<Semaphore>,
        limits: Limits,
    }

    impl Endpoint {
        fn start(limits: Limits) -> Endpoint {
            let metrics = big_metrics();
            let (address, free) = super::start("127.0.0.1:0", metrics.clone(), limits).unwrap();
            Endpoint {
                address,
                metrics,
                free,
                limits,
            }
        }

        /// How many connections are being served now.
        fn open_connections(&self) -> usize {
            self.limits.connections - self.free.available_permits()
        }
    }

    /// Metrics whose text is longer than [`MAX_REQUEST_HEAD`]: 400 partitions' lag.
    fn big_metrics() -> Arc<Metrics> {
        let metrics = Metrics::new("6c25318e", false);
        metrics.observe(&EngineEvent::Lag(LagByPartition {
            partitions: (0..400).map(|p| (p, i64::from(p) * 7)).collect(),
            behind_ms: (0..400).map(|p| (p, i64::from(p) * 1_000)).collect(),
        }));
        metrics
    }

    /// An answer read to the end of its connection.
    #[derive(Debug)]
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Sends `request_line` with `Connection: close` and reads the answer until the server
    /// closes.
    fn ask(address: SocketAddr, request_line: &str) -> Answer {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{request_line}\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head");
        let head = String::from_utf8(raw[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        Answer {
            status: status.parse().unwrap(),
            headers: lines
                .filter_map(|l| l.split_once(": "))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            body: raw[end + 4..].to_vec(),
        }
    }

    /// Waits until `done` holds, for at most `within`.
    fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(Instant::now() < deadline, "{what} within {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server closed `stream` within `within`: a read ends or is reset.
    fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        stream.set_read_timeout(Some(within)).unwrap();
        match stream.read(&mut [0; 64]) {
            Ok(n) => n == 0,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    /// This process's resident set, in kB.
    fn rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix(" kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmRSS in /proc/self/status")
    }

    #[test]
    fn a_scrape_answers_200_with_the_series_text() {
        let metrics = big_metrics();
        let address = serve("127.0.0.1:0", metrics.clone()).unwrap();
        let text = metrics.encode();
        assert!(text.len() > MAX_REQUEST_HEAD, "{} bytes", text.len());
        for target in ["/metrics", "/metrics?name[]=up"] {
            let got = ask(address, &format!("GET {target} HTTP/1.1"));
            assert_eq!(got.status, 200, "{target}");
            assert_eq!(got.header("content-type"), Some(OPENMETRICS));
            assert_eq!(
                got.header("content-length"),
                Some(text.len().to_string().as_str())
            );
            assert_eq!(String::from_utf8(got.body).unwrap(), text);
        }
        assert!(text
            .lines()
            .any(|l| l == "salary_stream_consumer_lag_records{partition=\"399\"} 2793"));
    }

    #[test]
    fn post_is_405_with_allow_head_is_headers_only_and_other_paths_are_404() {
        let metrics = big_metrics();
        let address = serve("127.0.0.1:0", metrics.clone()).unwrap();
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let got = ask(address, &format!("{method} /metrics HTTP/1.1"));
            assert_eq!(got.status, 405, "{method}");
            assert_eq!(got.header("allow"), Some("GET, HEAD"), "{method}");
            assert_eq!(got.body, WRONG_METHOD.as_bytes(), "{method}");
        }
        let head = ask(address, "HEAD /metrics HTTP/1.1");
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some(OPENMETRICS));
        assert_eq!(
            head.header("content-length"),
            Some(metrics.encode().len().to_string().as_str())
        );
        assert_eq!(head.body, b"");
        for request_line in [
            "GET / HTTP/1.1",
            "POST /other HTTP/1.1",
            "GET /metricsx HTTP/1.1",
        ] {
            let got = ask(address, request_line);
            assert_eq!(got.status, 404, "{request_line}");
            assert_eq!(got.header("content-type"), Some("text/plain"));
            assert_eq!(got.body, ELSEWHERE.as_bytes(), "{request_line}");
        }
    }

    #[test]
    fn a_100_mb_request_line_is_refused_without_being_buffered() {
        const LINE: usize = 100 * 1024 * 1024;
        let address = serve("127.0.0.1:0", big_metrics()).unwrap();
        let before = rss_kb();
        let mut stream = TcpStream::connect(address).unwrap();
        // Only a safety net against a server that stops reading without closing.
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(b"GET /").unwrap();
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        let refused = loop {
            if sent >= LINE {
                break None;
            }
            match stream.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => break Some(e),
            }
        };
        let grown_kb = rss_kb().saturating_sub(before);
        let refused = refused.expect("the server closed before 100 MB were sent");
        assert!(
            matches!(
                refused.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{refused:?} after {sent} bytes"
        );
        // The 431 may be lost to the reset that unread bytes cause; if it arrived, it is a 431.
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 431 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        assert!(grown_kb < 32 * 1024, "RSS grew by {grown_kb} kB");
        eprintln!("refused after {sent} bytes sent; RSS grew by {grown_kb} kB");
    }

    #[test]
    fn a_scrape_answers_within_a_second_while_500_idle_connections_are_open() {
        let endpoint = Endpoint::start(Limits::DEFAULT);
        let idle: Vec<TcpStream> = (0..500)
            .map(|_| TcpStream::connect(endpoint.address).expect("connect (ulimit -n >= 1100)"))
            .collect();
        wait_until(Duration::from_secs(5), "500 connections open", || {
            endpoint.open_connections() == 500
        });
        let asked = Instant::now();
        let got = ask(endpoint.address, "GET /metrics HTTP/1.1");
        let took = asked.elapsed();
        assert_eq!(got.status, 200);
        assert!(got.body == endpoint.metrics.encode().as_bytes());
        assert!(took < Duration::from_secs(1), "{took:?}");
        // The scrape's own connection is let go just after its answer is read.
        wait_until(
            Duration::from_secs(5),
            "the 500 idle connections still open",
            || endpoint.open_connections() == 500,
        );
        eprintln!("scraped in {took:?} beside {} idle connections", idle.len());
    }

    #[test]
    fn a_connection_above_the_cap_is_closed_at_once() {
        let limits = Limits {
            connections: 2,
            ..Limits::DEFAULT
        };
        let endpoint = Endpoint::start(limits);
        let mut first = TcpStream::connect(endpoint.address).unwrap();
        let _second = TcpStream::connect(endpoint.address).unwrap();
        wait_until(Duration::from_secs(5), "2 connections open", || {
            endpoint.open_connections() == 2
        });
        let mut third = TcpStream::connect(endpoint.address).unwrap();
        assert!(closed_within(&mut third, Duration::from_secs(5)));
        assert_eq!(endpoint.open_connections(), 2);
        assert!(!closed_within(&mut first, Duration::from_millis(100)));
        drop(first);
        wait_until(Duration::from_secs(5), "a slot freed", || {
            endpoint.open_connections() == 1
        });
        assert_eq!(ask(endpoint.address, "GET /metrics HTTP/1.1").status, 200);
    }

    #[test]
    fn idle_and_half_sent_heads_are_closed_after_the_header_read_timeout() {
        let limits = Limits {
            header_read: Duration::from_millis(200),
            ..Limits::DEFAULT
        };
        let endpoint = Endpoint::start(limits);
        let mut idle = TcpStream::connect(endpoint.address).unwrap();
        let mut half = TcpStream::connect(endpoint.address).unwrap();
        half.write_all(b"GET /metrics HTTP/1.1\r\nHost: te")
            .unwrap();
        let connected = Instant::now();
        assert!(closed_within(&mut idle, Duration::from_secs(5)));
        assert!(closed_within(&mut half, Duration::from_secs(5)));
        assert!(connected.elapsed() >= Duration::from_millis(150));
        wait_until(Duration::from_secs(5), "both slots freed", || {
            endpoint.open_connections() == 0
        });
    }

    #[test]
    fn a_connection_is_closed_past_its_lifetime() {
        let limits = Limits {
            lifetime: Duration::from_millis(200),
            grace: Duration::from_millis(200),
            ..Limits::DEFAULT
        };
        let endpoint = Endpoint::start(limits);
        let mut idle = TcpStream::connect(endpoint.address).unwrap();
        assert!(closed_within(&mut idle, Duration::from_secs(5)));
        wait_until(Duration::from_secs(5), "the slot freed", || {
            endpoint.open_connections() == 0
        });
    }

    #[test]
    fn an_address_in_use_is_an_error_at_once() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let error = serve(&address, big_metrics()).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot serve metrics on {address}: ")),
            "{error}"
        );
    }
}
