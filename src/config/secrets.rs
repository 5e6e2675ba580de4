//! Secrets: which librdkafka properties hold one, their redaction wherever the
//! configuration is printed, and `${VAR}` references to the environment.

use std::collections::BTreeMap;
use std::fmt;

/// librdkafka properties. `Debug` and [`Properties::redacted`] hide secret values.
#[derive(Clone, PartialEq, Default)]
pub struct Properties(pub BTreeMap<String, String>);

impl Properties {
    /// The properties with every secret value replaced, for printing and logging.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) {
                    REDACTED.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Every secret value, so that outputs can be checked for leaks.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(k, v)| is_secret_key(k) && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

pub const REDACTED: &str = "<redacted>";

/// Whether a librdkafka property holds a secret (passwords, keys, JAAS config, tokens).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("token")
        || k == "sasl.jaas.config"
        || k == "sasl.oauthbearer.config"
        || k == "ssl.key.pem"
        || k == "ssl_key"
        || k.ends_with(".key.pem")
}

/// Replaces `${NAME}` with the environment's value; `$${` stands for a literal `${`.
/// Returns the name of the first variable that is not set.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body) = after.strip_prefix("${") {
            match body.find('}') {
                Some(end) => {
                    let name = &body[..end];
                    match env(name) {
                        Some(v) => out.push_str(&v),
                        None => return Err(name.to_string()),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    // An unterminated reference is kept as written: it is not a variable.
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        let env = |n: &str| (n == "PW").then(|| "s3cret".to_string());
        assert_eq!(expand_env("a${PW}b", &env), Ok("as3cretb".into()));
        assert_eq!(expand_env("$${PW}", &env), Ok("${PW}".into()));
        assert_eq!(expand_env("cost $5", &env), Ok("cost $5".into()));
        assert_eq!(expand_env("${PW", &env), Ok("${PW".into()));
        assert_eq!(expand_env("${X}", &env), Err("X".into()));
    }

    #[test]
    fn secret_keys() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.jaas.config",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "sasl.username",
            "security.protocol",
            "ssl.ca.location",
            "linger.ms",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
