//! A blocking client of a Confluent-compatible Schema Registry: schemas fetched by id, each id
//! once (cached for the client's life), and schemas registered under a subject.
//!
//! Credentials, CA and timeouts come from a [`RegistryConfig`]. An `https://` registry is
//! verified as the broker is, against the system's CA store or the configured CA, by the
//! system's OpenSSL through native-tls, as for librdkafka.
//!
//! Errors tell apart what a caller does next: [`RegistryError::is_retryable`] (the registry is
//! unreachable or failing: wait and try again, good records are not dead letters), an id the
//! registry does not know ([`RegistryError::record_error`]: that record is bad), and what no
//! waiting mends (credentials refused, TLS, an answer that is not the API).
//!
//! Unlike the rest of `formats/`, this file does network I/O (`formats/` is otherwise pure).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::record::RecordError;
use super::registry::{Dependency, RegisteredSchema, SchemaId, SchemaKind, SchemaReference};
use super::registry_config::RegistryConfig;

/// How long an id the registry said it does not know is not asked for again: a topic full of
/// records with a stray id costs one look-up per this interval, not one per record.
pub const NOT_FOUND_TTL: Duration = Duration::from_secs(10);

/// Most schemas one schema may refer to, transitively (a cycle of references ends here).
const MAX_REFERENCES: usize = 64;

/// What `Accept` asks for: the registry's own media types, then plain JSON.
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";

/// A subject as one URL path segment.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What went wrong talking to the registry. No variant holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No connection, a timeout, a connection cut: retryable, the caller waits.
    #[error("registry unreachable at {url}: {reason}")]
    Unreachable {
        /// The registry's base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The registry does not know the id: the record that carries it is bad.
    #[error("schema id {id} not found at {url}")]
    NotFound {
        /// The id asked for.
        id: SchemaId,
        /// The registry's base URL.
        url: String,
    },
    /// The registry's schema is of a type this crate does not decode.
    #[error("schema {id} is of type {schema_type}, not AVRO, PROTOBUF or JSON")]
    UnsupportedType {
        /// The id asked for.
        id: SchemaId,
        /// The `schemaType` it gave.
        schema_type: String,
    },
    /// 401 or 403: the credentials are missing or refused.
    #[error("registry at {url} refused access (HTTP {status}){}", user.as_ref().map(|u| format!(" for user {u}")).unwrap_or_default())]
    Unauthorized {
        /// The registry's base URL.
        url: String,
        /// The status.
        status: u16,
        /// The user basic auth was sent for.
        user: Option<String>,
    },
    /// The TLS handshake failed: an untrusted certificate, a wrong host name, TLS to a
    /// plaintext port.
    #[error("registry at {url}: TLS failed: {reason}")]
    Tls {
        /// The registry's base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Any other error status: 5xx and 429 are retryable, the rest are not (a schema the
    /// registry refuses to register, for one).
    #[error("registry at {url} answered HTTP {status}: {message}")]
    Status {
        /// The registry's base URL.
        url: String,
        /// The status.
        status: u16,
        /// The registry's message, or the start of the body.
        message: String,
    },
    /// A 200 whose body is not what the API answers (not a registry at that URL?).
    #[error("registry at {url} gave an answer that is not the Schema Registry API: {reason}")]
    BadAnswer {
        /// The registry's base URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL does not parse (its user info shown as `***`).
    #[error("bad registry URL {url}: {reason}")]
    BadUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting's value is wrong (the value is not repeated: it may be a secret).
    #[error("bad registry setting {key}: {reason}")]
    BadSetting {
        /// The key.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },
}

impl RegistryError {
    /// Whether waiting and asking again may succeed: the registry is unreachable, overloaded
    /// or failing (5xx, 429).
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The reason a record is bad, when the error is about the record's schema id rather than
    /// the registry: an unknown id, or a schema type not decoded here.
    pub fn record_error(&self) -> Option<RecordError> {
        match self {
            RegistryError::NotFound { id, url } => Some(RecordError::SchemaNotFound {
                id: *id,
                url: url.clone(),
            }),
            RegistryError::UnsupportedType { id, schema_type } => {
                Some(RecordError::UnsupportedType {
                    id: *id,
                    schema_type: schema_type.clone(),
                })
            }
            _ => None,
        }
    }
}

/// `GET /schemas/ids/{id}` and `GET /subjects/{s}/versions/{v}`.
#[derive(Deserialize)]
struct SchemaAnswer {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<ReferenceAnswer>,
}

#[derive(Deserialize)]
struct ReferenceAnswer {
    name: String,
    subject: String,
    version: i32,
}

/// `POST /subjects/{s}/versions`.
#[derive(Deserialize)]
struct RegisteredAnswer {
    id: u32,
}

/// An error body: `{"error_code": 40403, "message": "..."}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    message: Option<String>,
}

/// A schema as fetched, before its references are.
struct Fetched {
    kind: Result<SchemaKind, String>,
    text: String,
    references: Vec<SchemaReference>,
}

/// The client. Share it (`Arc`) between threads: the cache is behind a lock, held only while
/// it is read or written, never during a request.
pub struct RegistryClient {
    config: RegistryConfig,
    agent: ureq::Agent,
    schemas: Mutex<HashMap<SchemaId, Arc<RegisteredSchema>>>,
    not_found: Mutex<HashMap<SchemaId, Instant>>,
    lookups: AtomicU64,
    requests: AtomicU64,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.config)
            .field("lookups", &self.lookups())
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for the configured registry; makes no request yet.
    pub fn new(config: RegistryConfig) -> Result<RegistryClient, RegistryError> {
        let roots = match &config.ca_pem {
            None => ureq::tls::RootCerts::PlatformVerifier,
            Some(pem) => {
                let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| RegistryError::BadSetting {
                        key: "ssl.ca.location".to_owned(),
                        reason: format!("not a PEM certificate: {e}"),
                    })?;
                if certs.is_empty() {
                    return Err(RegistryError::BadSetting {
                        key: "ssl.ca.location".to_owned(),
                        reason: "no certificate in the PEM text".to_owned(),
                    });
                }
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.connect_timeout + config.read_timeout))
            .user_agent(concat!("salary-stream/", env!("CARGO_PKG_VERSION")))
            .accept(ACCEPT)
            .tls_config(tls)
            .build()
            .new_agent();
        Ok(RegistryClient {
            config,
            agent,
            schemas: Mutex::new(HashMap::new()),
            not_found: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// The registry's base URL, without credentials.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// How many times a schema was fetched by id (`GET /schemas/ids/N`): once per id while the
    /// client lives, unless the registry was unreachable or did not know it.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Every request made: look-ups, references, registrations.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The schema for `id`, from the cache or else from the registry with every schema it
    /// refers to. An id the registry does not know is not asked for again for
    /// [`NOT_FOUND_TTL`].
    pub fn schema(&self, id: SchemaId) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(schema) = lock(&self.schemas).get(&id) {
            return Ok(Arc::clone(schema));
        }
        if let Some(&when) = lock(&self.not_found).get(&id) {
            if when.elapsed() < NOT_FOUND_TTL {
                return Err(self.not_found(id));
            }
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let fetched = match self.fetch(&format!("/schemas/ids/{}", id.0)) {
            Ok(Some(fetched)) => fetched,
            Ok(None) => {
                lock(&self.not_found).insert(id, Instant::now());
                return Err(self.not_found(id));
            }
            Err(e) => return Err(e),
        };
        let kind = fetched
            .kind
            .map_err(|schema_type| RegistryError::UnsupportedType { id, schema_type })?;
        let dependencies = self.dependencies(fetched.references)?;
        let schema = Arc::new(RegisteredSchema {
            id,
            kind,
            text: fetched.text,
            dependencies,
        });
        lock(&self.not_found).remove(&id);
        lock(&self.schemas).insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    /// Registers a schema (with no references) under `subject` and returns its id; the
    /// registry answers with the existing id when the subject already has the same schema.
    pub fn register(
        &self,
        subject: &str,
        kind: SchemaKind,
        text: &str,
    ) -> Result<SchemaId, RegistryError> {
        let mut body = serde_json::json!({ "schema": text });
        if kind != SchemaKind::Avro {
            body["schemaType"] = serde_json::Value::from(kind.api_name());
        }
        let path = format!("/subjects/{}/versions", percent_encode(subject));
        let request = self
            .agent
            .post(&format!("{}{path}", self.config.url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json");
        let request = match &self.config.auth {
            Some(auth) => request.header("Authorization", &auth.header),
            None => request,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = request.send(body.to_string().as_bytes());
        let (status, text) = self.answer(result)?;
        if status != 200 {
            return Err(self.status_error(status, &text));
        }
        let answer: RegisteredAnswer =
            serde_json::from_str(&text).map_err(|e| self.bad_answer(e))?;
        Ok(SchemaId(answer.id))
    }

    fn not_found(&self, id: SchemaId) -> RegistryError {
        RegistryError::NotFound {
            id,
            url: self.config.url.clone(),
        }
    }

    fn bad_answer(&self, e: impl fmt::Display) -> RegistryError {
        RegistryError::BadAnswer {
            url: self.config.url.clone(),
            reason: e.to_string(),
        }
    }

    /// GETs a schema at `path` under the base URL; `None` on 404.
    fn fetch(&self, path: &str) -> Result<Option<Fetched>, RegistryError> {
        let request = self.agent.get(&format!("{}{path}", self.config.url));
        let request = match &self.config.auth {
            Some(auth) => request.header("Authorization", &auth.header),
            None => request,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (status, text) = self.answer(request.call())?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(self.status_error(status, &text));
        }
        let answer: SchemaAnswer = serde_json::from_str(&text).map_err(|e| self.bad_answer(e))?;
        Ok(Some(Fetched {
            kind: SchemaKind::from_api(answer.schema_type.as_deref())
                .ok_or_else(|| answer.schema_type.clone().unwrap_or_default()),
            text: answer.schema,
            references: answer
                .references
                .into_iter()
                .map(|r| SchemaReference {
                    name: r.name,
                    subject: r.subject,
                    version: r.version,
                })
                .collect(),
        }))
    }

    /// Every schema `references` names, transitively, each before what refers to it.
    fn dependencies(
        &self,
        references: Vec<SchemaReference>,
    ) -> Result<Vec<Dependency>, RegistryError> {
        let mut done: Vec<Dependency> = Vec::new();
        // Depth first: a reference's own references go before it.
        let mut stack: Vec<(SchemaReference, bool)> =
            references.into_iter().rev().map(|r| (r, false)).collect();
        let mut texts: HashMap<String, (String, Vec<SchemaReference>)> = HashMap::new();
        while let Some((reference, expanded)) = stack.pop() {
            if done.iter().any(|d| d.name == reference.name) {
                continue;
            }
            if expanded {
                if let Some((text, _)) = texts.remove(&reference.name) {
                    done.push(Dependency {
                        name: reference.name,
                        text,
                    });
                }
                continue;
            }
            if texts.len() + done.len() >= MAX_REFERENCES {
                return Err(self.bad_answer(format!(
                    "more than {MAX_REFERENCES} schema references (a cycle?)"
                )));
            }
            if texts.contains_key(&reference.name) {
                continue; // being expanded further down the stack: a cycle
            }
            let path = format!(
                "/subjects/{}/versions/{}",
                percent_encode(&reference.subject),
                reference.version
            );
            let fetched = self.fetch(&path)?.ok_or_else(|| RegistryError::Status {
                url: self.config.url.clone(),
                status: 404,
                message: format!(
                    "referenced schema {} version {} not found",
                    reference.subject, reference.version
                ),
            })?;
            let inner = fetched.references.clone();
            texts.insert(reference.name.clone(), (fetched.text, fetched.references));
            stack.push((reference, true));
            stack.extend(inner.into_iter().rev().map(|r| (r, false)));
        }
        Ok(done)
    }

    /// The status and body of an answer, or the error that kept it from coming.
    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), RegistryError> {
        let url = || self.config.url.clone();
        let mut response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(RegistryError::Unauthorized {
                url: url(),
                status,
                user: self.config.user().map(str::to_owned),
            });
        }
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        Ok((status, text))
    }

    fn transport_error(&self, e: ureq::Error) -> RegistryError {
        let url = self.config.url.clone();
        match e {
            ureq::Error::Tls(_) | ureq::Error::NativeTls(_) | ureq::Error::Der(_) => {
                RegistryError::Tls {
                    url,
                    reason: e.to_string(),
                }
            }
            ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::BodyStalled => RegistryError::Unreachable {
                url,
                reason: e.to_string(),
            },
            ureq::Error::TooManyRedirects => self.bad_answer("a redirect"),
            _ => self.bad_answer(e),
        }
    }

    fn status_error(&self, status: u16, body: &str) -> RegistryError {
        let message = serde_json::from_str::<ErrorAnswer>(body)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or_else(|| body.chars().take(200).collect());
        RegistryError::Status {
            url: self.config.url.clone(),
            status,
            message,
        }
    }
}

/// The guarded map, also after a panic elsewhere poisoned the lock (a cache stays valid).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_path_segment() {
        assert_eq!(
            percent_encode("salary-predictions-value"),
            "salary-predictions-value"
        );
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn only_unreachable_and_server_errors_are_retryable() {
        let url = "http://r".to_owned();
        assert!(RegistryError::Unreachable {
            url: url.clone(),
            reason: String::new()
        }
        .is_retryable());
        assert!(RegistryError::Status {
            url: url.clone(),
            status: 503,
            message: String::new()
        }
        .is_retryable());
        assert!(!RegistryError::Status {
            url: url.clone(),
            status: 422,
            message: String::new()
        }
        .is_retryable());
        let missing = RegistryError::NotFound {
            id: SchemaId(9),
            url,
        };
        assert!(!missing.is_retryable());
        assert_eq!(
            missing.record_error().map(|e| e.to_string()),
            Some("schema id 9 not found at http://r".to_owned())
        );
    }

    #[test]
    fn a_ca_that_is_not_pem_is_refused_when_the_client_is_made() {
        let config = RegistryConfig::new("https://127.0.0.1:1")
            .expect("a valid URL")
            .ca_pem(b"not a certificate".to_vec());
        assert_eq!(
            RegistryClient::new(config).unwrap_err().to_string(),
            "bad registry setting ssl.ca.location: no certificate in the PEM text"
        );
    }
}
