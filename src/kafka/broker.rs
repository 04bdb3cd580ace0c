//! The embedded broker: librdkafka's mock cluster, in-process on a loopback port.
//!
//! It speaks the real Kafka protocol, so any client (kcat included) can use its address. It keeps
//! data in memory and prunes old records per partition, which suits a live view.

use std::ffi::{CStr, CString};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ptr::NonNull;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rdsys;

/// Why the embedded broker could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// librdkafka refused to create its handle.
    #[error("cannot create the embedded broker's client handle: {0}")]
    Handle(#[from] rdkafka::error::KafkaError),
    /// librdkafka could not start the mock cluster.
    #[error("cannot start the embedded broker (librdkafka mock cluster)")]
    Start,
    /// The requested port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        /// The port asked for.
        port: u16,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A topic could not be created.
    #[error("cannot create topic {topic}: {reason}")]
    Topic {
        /// The topic name.
        topic: String,
        /// librdkafka's reason.
        reason: String,
    },
}

/// A running embedded broker; dropping it stops it.
pub struct EmbeddedBroker {
    cluster: NonNull<rdsys::rd_kafka_mock_cluster_t>,
    bootstrap: String,
    // The mock cluster lives inside this handle and must be destroyed before it.
    _handle: BaseProducer,
}

// SAFETY: every mock-cluster operation librdkafka offers is sent as an op to the cluster's own
// thread and is safe to call from any thread; the pointer is only freed in Drop.
unsafe impl Send for EmbeddedBroker {}
// SAFETY: as above; `&self` methods only enqueue ops on the cluster.
unsafe impl Sync for EmbeddedBroker {}

impl EmbeddedBroker {
    /// Starts a one-node cluster and creates each `(topic, partitions)`.
    pub fn start(topics: &[(&str, i32)]) -> Result<Self, BrokerError> {
        let handle: BaseProducer = ClientConfig::new()
            .set("client.id", "salary-stream-embedded-broker")
            .create()?;
        // SAFETY: the handle is valid for the call and outlives the cluster (see Drop order).
        let raw = unsafe { rdsys::rd_kafka_mock_cluster_new(handle.client().native_ptr(), 1) };
        let cluster = NonNull::new(raw).ok_or(BrokerError::Start)?;
        // SAFETY: `cluster` is live; the returned string is owned by the cluster and copied here.
        let bootstrap = unsafe {
            CStr::from_ptr(rdsys::rd_kafka_mock_cluster_bootstraps(cluster.as_ptr()))
                .to_string_lossy()
                .into_owned()
        };
        // A dashboard should start scoring at once, not after Kafka's default 3 s group delay.
        // SAFETY: `cluster` is live.
        unsafe { rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster.as_ptr(), 0) };
        let broker = EmbeddedBroker {
            cluster,
            bootstrap,
            _handle: handle,
        };
        for (topic, partitions) in topics {
            broker.create_topic(topic, *partitions)?;
        }
        Ok(broker)
    }

    /// Serves the broker on `127.0.0.1:port` as well and advertises that address in metadata, so
    /// clients can be pointed at a fixed port. librdkafka picks the mock cluster's own port, so
    /// connections to `port` are relayed to it.
    pub fn listen_on(&mut self, port: u16) -> Result<(), BrokerError> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|source| BrokerError::Listen { port, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| BrokerError::Listen { port, source })?
            .port();
        let upstream = self.bootstrap.clone();
        std::thread::Builder::new()
            .name("broker-relay".into())
            .spawn(move || relay(listener, upstream))
            .map_err(|source| BrokerError::Listen { port, source })?;
        let host = CString::new("127.0.0.1").map_err(|_| BrokerError::Start)?;
        // SAFETY: `cluster` is live and `host` outlives the call; broker 1 exists.
        unsafe {
            rdsys::rd_kafka_mock_broker_set_host_port(
                self.cluster.as_ptr(),
                1,
                host.as_ptr(),
                i32::from(port),
            )
        };
        self.bootstrap = format!("127.0.0.1:{port}");
        Ok(())
    }

    /// The `host:port` address clients connect to.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic with `partitions` partitions (an existing one is left as it is).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), BrokerError> {
        let name = CString::new(topic).map_err(|_| BrokerError::Topic {
            topic: topic.to_owned(),
            reason: "the name contains a NUL byte".into(),
        })?;
        // SAFETY: `cluster` is live and `name` outlives the call.
        let err = unsafe {
            rdsys::rd_kafka_mock_topic_create(self.cluster.as_ptr(), name.as_ptr(), partitions, 1)
        };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(BrokerError::Topic {
                topic: topic.to_owned(),
                reason: rdkafka::error::RDKafkaErrorCode::from(err).to_string(),
            })
        }
    }
}

/// Accepts connections and relays each, both ways, to `upstream`.
fn relay(listener: TcpListener, upstream: String) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let server = match TcpStream::connect(&upstream) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "relay cannot reach the embedded broker");
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let pipe = |mut from: TcpStream, mut to: TcpStream| {
            move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            }
        };
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        std::thread::spawn(pipe(client, server));
        std::thread::spawn(pipe(server2, client2));
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_mock_cluster_new and destroyed exactly once, before the
        // handle it lives in (fields drop after this body).
        unsafe { rdsys::rd_kafka_mock_cluster_destroy(self.cluster.as_ptr()) };
    }
}
