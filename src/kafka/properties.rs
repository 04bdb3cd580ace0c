//! Client settings from a file, as kcat's `-F`: the Java-style `client.properties` that hosted
//! clusters hand out (`key=value` lines, `#` or `!` comments, a trailing `\` continues a line),
//! and the order in which settings apply: the file first, then each `-X`, so `-X` wins.

use std::path::{Path, PathBuf};

use super::config::parse_property;

/// The environment variable that names a properties file when `-F` is not given.
pub const CONFIG_ENV: &str = "SALARY_STREAM_CONFIG";

/// Why the client settings cannot be used: said in one line naming the file and the line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// The file cannot be read.
    #[error("-F {path}: {reason}")]
    Unreadable {
        /// The file as given.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// A line is not `key=value`.
    #[error("-F {path}:{line}: expected key=value, got {text:?}")]
    NotKeyValue {
        /// The file as given.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// The line, its value hidden when the key is a secret's.
        text: String,
    },
    /// A Java `sasl.jaas.config` that names no user and password librdkafka could use.
    #[error(
        "-F {path}:{line}: sasl.jaas.config is the Java client's; librdkafka needs sasl.username \
         and sasl.password (PLAIN or SCRAM) or sasl.oauthbearer.* (OAUTHBEARER)"
    )]
    JavaOnly {
        /// The file as given.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
    },
    /// A `-X` argument is not `key=value`.
    #[error("-X: {0}")]
    Argument(String),
}

/// The settings in the order they apply: `file` (else the file `$SALARY_STREAM_CONFIG` names,
/// when `env_file` carries it), then each `-X key=value`.
pub fn client_properties(
    file: Option<&Path>,
    env_file: Option<&Path>,
    arguments: &[String],
) -> Result<Vec<(String, String)>, SettingsError> {
    let mut properties = match file.or(env_file) {
        Some(path) => read_file(path)?,
        None => Vec::new(),
    };
    for argument in arguments {
        properties.push(parse_property(argument).map_err(SettingsError::Argument)?);
    }
    Ok(properties)
}

/// The `$SALARY_STREAM_CONFIG` file, if the variable is set and not empty.
pub fn env_file() -> Option<PathBuf> {
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads a properties file.
pub fn read_file(path: &Path) -> Result<Vec<(String, String)>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Unreadable {
        path: path.to_owned(),
        reason: io_reason(&e),
    })?;
    parse(&text, path)
}

/// `e` as a person reads it, without the OS error number.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::InvalidData => "not UTF-8 text".to_owned(),
        _ => e.to_string(),
    }
}

/// Parses the text of a properties file read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Vec<(String, String)>, SettingsError> {
    let mut properties = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let number = index + 1;
        let mut logical = first.trim_start().to_owned();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        // A line ending in an odd number of backslashes goes on in the next line.
        while continues(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = match logical.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => (k.trim(), v.trim()),
            _ => {
                return Err(SettingsError::NotKeyValue {
                    path: path.to_owned(),
                    line: number,
                    text: super::secrets::redact_argument(&logical),
                })
            }
        };
        if key == "sasl.jaas.config" {
            let (user, password) = java_login(value).ok_or_else(|| SettingsError::JavaOnly {
                path: path.to_owned(),
                line: number,
            })?;
            properties.push(("sasl.username".to_owned(), user));
            properties.push(("sasl.password".to_owned(), password));
            continue;
        }
        properties.push((key.to_owned(), value.to_owned()));
    }
    Ok(properties)
}

fn continues(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The user name and password of a Java `PlainLoginModule` or `ScramLoginModule` line, as
/// Confluent Cloud and most hosted clusters give it:
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username='U' password='P';`
fn java_login(jaas: &str) -> Option<(String, String)> {
    if !(jaas.contains("PlainLoginModule") || jaas.contains("ScramLoginModule")) {
        return None;
    }
    Some((
        jaas_option(jaas, "username")?,
        jaas_option(jaas, "password")?,
    ))
}

/// The value of `name="..."` or `name='...'` in a JAAS line.
fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(at) = rest.find(name) {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let after = rest[at + name.len()..].trim_start();
        if let (true, Some(after)) = (before_ok, after.strip_prefix('=')) {
            let after = after.trim_start();
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let body = &after[1..];
            return body.find(quote).map(|end| body[..end].to_owned());
        }
        rest = &rest[at + name.len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<(String, String)>, SettingsError> {
        parse(text, Path::new("client.properties"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_hosted_clusters_client_properties_become_librdkafka_settings() {
        let text = "# Required connection configs for Kafka producer, consumer, and admin\n\
                    bootstrap.servers=pkc-123.example.com:9092\n\
                    security.protocol=SASL_SSL\n\
                    sasl.mechanisms=PLAIN\n\
                    sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
                    required username='ALICEKEY' password='s3cr=t';\n\
                    \n\
                    ! a Java-style comment\n\
                    session.timeout.ms = 45000\n";
        assert_eq!(
            parsed(text).unwrap(),
            pairs(&[
                ("bootstrap.servers", "pkc-123.example.com:9092"),
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanisms", "PLAIN"),
                ("sasl.username", "ALICEKEY"),
                ("sasl.password", "s3cr=t"),
                ("session.timeout.ms", "45000"),
            ])
        );
    }

    #[test]
    fn a_backslash_continues_a_line() {
        let text = "ssl.ca.location=/etc/\\\n    ssl/ca.pem\nsasl.username=a\\\\\nb=c\n";
        assert_eq!(
            parsed(text).unwrap(),
            pairs(&[
                ("ssl.ca.location", "/etc/ssl/ca.pem"),
                ("sasl.username", "a\\\\"),
                ("b", "c")
            ])
        );
    }

    #[test]
    fn a_line_that_is_not_key_value_is_named_by_file_and_line() {
        let err = parsed("a=b\n\nsecurity.protocol SSL\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "-F client.properties:3: expected key=value, got \"security.protocol SSL\""
        );
        let err = parsed("=x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "-F client.properties:1: expected key=value, got \"=x\""
        );
    }

    #[test]
    fn a_java_login_module_librdkafka_cannot_use_is_refused_with_what_to_write() {
        let err =
            parsed("sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;\n")
                .unwrap_err();
        assert_eq!(
            err,
            SettingsError::JavaOnly {
                path: "client.properties".into(),
                line: 1
            }
        );
    }

    #[test]
    fn scram_login_modules_with_double_quotes_are_read() {
        let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p w";"#;
        assert_eq!(
            java_login(jaas),
            Some(("alice".to_owned(), "p w".to_owned()))
        );
    }

    #[test]
    fn x_arguments_come_after_the_file_so_they_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        std::fs::write(&file, "linger.ms=50\nacks=1\n").unwrap();
        let env = dir.path().join("env.properties");
        std::fs::write(&env, "from.env=1\n").unwrap();
        let got = client_properties(Some(&file), Some(&env), &["linger.ms=0".to_owned()]).unwrap();
        assert_eq!(
            got,
            pairs(&[("linger.ms", "50"), ("acks", "1"), ("linger.ms", "0")])
        );
        let got = client_properties(None, Some(&env), &[]).unwrap();
        assert_eq!(got, pairs(&[("from.env", "1")]));
        let err = client_properties(None, None, &["sasl.password".to_owned()]).unwrap_err();
        assert_eq!(err.to_string(), "-X: expected key=value, got \"***\"");
    }

    #[test]
    fn a_missing_file_is_one_line_naming_it() {
        let err =
            client_properties(Some(Path::new("/nonexistent/c.properties")), None, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "-F /nonexistent/c.properties: no such file"
        );
    }
}
