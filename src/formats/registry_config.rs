//! Where a Schema Registry is and how to reach it: its base URL, basic-auth credentials (a
//! secret: no `Debug`, `Display` or error shows the password, and the URL kept is the one
//! without user info), the CA an `https://` registry is verified against, and timeouts.
//! Pure: [`super::registry_client`] makes the requests.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;

use super::registry_client::RegistryError;

/// How long a connection to the registry may take to open.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a whole answer may take once connected.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A basic-auth credential; `Debug` shows the user only.
#[derive(Clone)]
pub(super) struct BasicAuth {
    pub(super) user: String,
    pub(super) header: String,
}

impl BasicAuth {
    fn new(user: &str, password: &str) -> BasicAuth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        BasicAuth {
            user: user.to_owned(),
            header: format!("Basic {token}"),
        }
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BasicAuth {{ user: {:?}, password: [redacted] }}",
            self.user
        )
    }
}

/// Where the registry is and how to reach it.
#[derive(Clone)]
pub struct RegistryConfig {
    pub(super) url: String,
    pub(super) auth: Option<BasicAuth>,
    pub(super) ca_pem: Option<Vec<u8>>,
    pub(super) connect_timeout: Duration,
    pub(super) read_timeout: Duration,
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

/// `%XX` escapes decoded (user info in a URL is percent-encoded).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RegistryConfig {
    /// A registry at `url` (`http://` or `https://`; the Confluent-compatible API's base, e.g.
    /// `http://127.0.0.1:8081` or Apicurio's `http://host:8080/apis/ccompat/v7`). User info in
    /// the URL becomes basic auth and is left out of the URL the client reports.
    pub fn new(url: &str) -> Result<RegistryConfig, RegistryError> {
        let bad = |reason: &str| RegistryError::BadUrl {
            url: redact_url(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("no scheme: write http:// or https://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme is neither http nor https"));
        }
        let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if path.contains(['?', '#']) {
            return Err(bad("a registry URL takes no query or fragment"));
        }
        let (user_info, host) = match authority.rsplit_once('@') {
            Some((info, host)) => (Some(info), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let auth = user_info.map(|info| {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            BasicAuth::new(&percent_decode(user), &percent_decode(password))
        });
        Ok(RegistryConfig {
            url: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
            auth,
            ca_pem: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        })
    }

    /// Applies one registry setting, as kcat and Confluent's clients name them, with or without
    /// the `schema.registry.` prefix: `basic.auth.user.info=USER:PASS` (wins over the URL's user
    /// info) and `basic.auth.credentials.source` (`USER_INFO` or `URL`; either way the
    /// credentials come from where they are given). Returns false for a key that is not a
    /// registry setting, so a caller can pass every `-X` setting through. The CA file
    /// (`ssl.ca.location`) is read by the caller and given to [`RegistryConfig::ca_pem`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, RegistryError> {
        match key.strip_prefix("schema.registry.").unwrap_or(key) {
            "basic.auth.user.info" => {
                let (user, password) =
                    value
                        .split_once(':')
                        .ok_or_else(|| RegistryError::BadSetting {
                            key: key.to_owned(),
                            reason: "expected USER:PASSWORD".to_owned(),
                        })?;
                self.auth = Some(BasicAuth::new(user, password));
                Ok(true)
            }
            "basic.auth.credentials.source" => match value {
                "USER_INFO" | "URL" => Ok(true),
                _ => Err(RegistryError::BadSetting {
                    key: key.to_owned(),
                    reason: format!("{value} is not supported (USER_INFO or URL)"),
                }),
            },
            _ => Ok(false),
        }
    }

    /// Verifies an `https://` registry against this CA certificate (PEM; several may follow one
    /// another) instead of the system's store.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> RegistryConfig {
        self.ca_pem = Some(pem);
        self
    }

    /// How long connecting may take, and how long a whole answer may take once connected.
    pub fn timeouts(mut self, connect: Duration, read: Duration) -> RegistryConfig {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    /// The registry's base URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The user basic auth is sent for, if any (never the password).
    pub fn user(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.user.as_str())
    }
}

/// `url` with any user info replaced by `***`, for messages about a URL that did not parse.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::registry_client::RegistryClient;

    #[test]
    fn user_info_in_the_url_becomes_basic_auth_and_leaves_the_url() {
        let config =
            RegistryConfig::new("https://alice:s%40cret@registry.example:8081/apis/ccompat/v7/")
                .expect("a valid URL");
        assert_eq!(
            config.url(),
            "https://registry.example:8081/apis/ccompat/v7"
        );
        assert_eq!(config.user(), Some("alice"));
        let auth = config.auth.as_ref().expect("basic auth");
        assert_eq!(
            auth.header,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s@cret")
            )
        );
    }

    #[test]
    fn the_password_shows_in_no_debug_and_no_error() {
        let mut config =
            RegistryConfig::new("http://bob:hunter2@127.0.0.1:1").expect("a valid URL");
        assert!(config
            .set("schema.registry.basic.auth.user.info", "carol:swordfish")
            .expect("a valid setting"));
        let client = RegistryClient::new(config.clone()).expect("a client");
        let shown = format!("{config:?} {client:?}");
        assert!(shown.contains("carol"), "{shown}");
        for secret in ["hunter2", "swordfish", "c3dvcmRmaXNo"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let bad = RegistryConfig::new("ftp://dave:pa55@host/")
            .unwrap_err()
            .to_string();
        assert_eq!(
            bad,
            "bad registry URL ftp://***@host/: the scheme is neither http nor https"
        );
        let bad = config
            .set("basic.auth.user.info", "no-colon-secret")
            .unwrap_err()
            .to_string();
        assert_eq!(
            bad,
            "bad registry setting basic.auth.user.info: expected USER:PASSWORD"
        );
    }

    #[test]
    fn other_settings_are_left_to_the_caller() {
        let mut config = RegistryConfig::new("http://127.0.0.1:1").expect("a valid URL");
        assert_eq!(config.set("bootstrap.servers", "x:9092"), Ok(false));
        assert_eq!(
            config.set("basic.auth.credentials.source", "USER_INFO"),
            Ok(true)
        );
        assert!(config
            .set("basic.auth.credentials.source", "SASL_INHERIT")
            .is_err());
    }

    #[test]
    fn urls_without_scheme_or_host_are_refused() {
        assert_eq!(
            RegistryConfig::new("127.0.0.1:8081")
                .unwrap_err()
                .to_string(),
            "bad registry URL 127.0.0.1:8081: no scheme: write http:// or https://"
        );
        assert!(RegistryConfig::new("http:///path").is_err());
        assert!(RegistryConfig::new("http://h/?q=1").is_err());
    }
}
