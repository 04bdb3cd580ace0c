//! Secrets in client settings: which properties hold one, and text with their values masked.
//!
//! Values are masked, never substrings: a password `b` must not turn "available" into
//! "availa***le". A secret's value is masked where it stands as the value of its property
//! (`sasl.password=b`), and elsewhere only as a whole token, and only when it is long and odd
//! enough not to be an everyday word.

/// Words in a property name that mark its value as a secret, never to be printed.
const SECRET_MARKERS: [&str; 6] = ["password", "secret", "jaas", "key", "token", "user.info"];

/// What a masked value is shown as.
pub const MASK: &str = "***";

/// Whether a property's value must never be printed or logged.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| key.contains(m))
}

/// A `key=value` argument as it may be printed: the value masked when the key is a secret's, the
/// whole text when it has no `=` and looks like one.
pub fn redact_argument(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _)) if is_secret(k) => format!("{k}={MASK}"),
        None if is_secret(arg) => MASK.to_owned(),
        _ => arg.to_owned(),
    }
}

/// The properties as `key=value` text, with secret values replaced by `***`.
pub fn redacted(properties: &[(String, String)]) -> Vec<String> {
    properties
        .iter()
        .map(|(k, v)| {
            if is_secret(k) {
                format!("{k}={MASK}")
            } else {
                format!("{k}={v}")
            }
        })
        .collect()
}

/// `text` with the value of every secret property masked: where it follows its key (`key=v`,
/// `key: v`, `"key": "v"`), and as a whole token where [`maskable_anywhere`] says it can be
/// told from ordinary words.
pub fn redact_text(text: &str, properties: &[(String, String)]) -> String {
    properties
        .iter()
        .filter(|(k, v)| is_secret(k) && !v.is_empty())
        .fold(text.to_owned(), |t, (k, v)| {
            let t = mask_after_key(&t, k, v);
            if maskable_anywhere(v) {
                mask_tokens(&t, v)
            } else {
                t
            }
        })
}

/// Whether a secret may be masked wherever it stands alone: six characters or more, and not a
/// run of letters shorter than twelve (a word a message could hold for its own sake).
pub fn maskable_anywhere(secret: &str) -> bool {
    let letters_only = secret.chars().all(|c| c.is_alphabetic());
    secret.chars().count() >= 6 && (!letters_only || secret.chars().count() >= 12)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text[start..end]` stands alone: no word character touches either end.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    before.is_none_or(|c| !is_word_char(c)) && after.is_none_or(|c| !is_word_char(c))
}

fn mask_tokens(text: &str, secret: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find(secret) {
        let start = from + found;
        let end = start + secret.len();
        if stands_alone(text, start, end) {
            out.push_str(&text[rest..start]);
            out.push_str(MASK);
            rest = end;
            from = end;
        } else {
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&text[rest..]);
    out
}

/// Masks `secret` where it is the value after `key`: the key, an optional closing quote, `=` or
/// `:`, optional spaces and an opening quote, then the value standing alone.
fn mask_after_key(text: &str, key: &str, secret: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find(key) {
        let after_key = from + found + key.len();
        let tail = &text[after_key..];
        let tail_trimmed = tail.trim_start_matches(['"', '\'']);
        let mut value_at = None;
        if let Some(after_sep) = tail_trimmed
            .strip_prefix('=')
            .or_else(|| tail_trimmed.strip_prefix(':'))
        {
            let value = after_sep.trim_start_matches([' ', '"', '\'']);
            let start = text.len() - value.len();
            if value.starts_with(secret) && stands_alone(text, start, start + secret.len()) {
                value_at = Some(start);
            }
        }
        match value_at {
            Some(start) => {
                out.push_str(&text[rest..start]);
                out.push_str(MASK);
                rest = start + secret.len();
                from = rest;
            }
            None => from = after_key,
        }
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn secret_keys_are_known_by_name() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.jaas.config",
            "schema.registry.basic.auth.user.info",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["sasl.username", "security.protocol", "ssl.ca.location"] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn properties_print_with_their_secret_values_masked() {
        let properties = props(&[
            ("sasl.password", "hunter2"),
            ("sasl.username", "alice"),
            ("ssl.key.pem", "PEM"),
        ]);
        assert_eq!(
            redacted(&properties),
            vec![
                "sasl.password=***",
                "sasl.username=alice",
                "ssl.key.pem=***"
            ]
        );
        assert_eq!(redact_argument("sasl.password=b"), "sasl.password=***");
        assert_eq!(redact_argument("sasl.passwordb"), "***");
        assert_eq!(redact_argument("linger.ms=5"), "linger.ms=5");
    }

    #[test]
    fn a_short_secret_is_masked_as_its_propertys_value_and_nowhere_inside_words() {
        let properties = props(&[("sasl.password", "b"), ("sasl.username", "a")]);
        let text = "Client config error: Unsupported value \"SASL_SSL\" for configuration \
                    property \"security.protocol\": OpenSSL not available at build time \
                    (-X sasl.password=b, sasl.password: 'b', b)";
        assert_eq!(
            redact_text(text, &properties),
            "Client config error: Unsupported value \"SASL_SSL\" for configuration \
             property \"security.protocol\": OpenSSL not available at build time \
             (-X sasl.password=***, sasl.password: '***', b)"
        );
    }

    #[test]
    fn a_common_word_secret_does_not_mangle_the_message() {
        let properties = props(&[("sasl.password", "broker")]);
        assert_eq!(
            redact_text("broker down; sasl.password=broker", &properties),
            "broker down; sasl.password=***"
        );
    }

    #[test]
    fn a_long_secret_is_masked_as_a_whole_token_anywhere() {
        let properties = props(&[("sasl.password", "alice-secret-1")]);
        assert_eq!(
            redact_text(
                "login alice-secret-1 failed; alice-secret-12 is another; \"alice-secret-1\"",
                &properties
            ),
            "login *** failed; alice-secret-12 is another; \"***\""
        );
    }

    #[test]
    fn only_secret_properties_are_masked() {
        let properties = props(&[("sasl.username", "alice-admin"), ("my.token", "")]);
        assert_eq!(
            redact_text("alice-admin logged in", &properties),
            "alice-admin logged in"
        );
    }

    #[test]
    fn how_long_and_odd_a_secret_must_be_to_be_masked_anywhere() {
        let cases = [
            ("b", false),
            ("hunter", false),
            ("hunter2", true),
            ("password", false),
            ("correcthorsebattery", true),
            ("p@ss!1", true),
        ];
        for (secret, anywhere) in cases {
            assert_eq!(maskable_anywhere(secret), anywhere, "{secret}");
        }
    }
}
