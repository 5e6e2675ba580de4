//! The batch engine's connections over TLS and SASL: which of a cluster's librdkafka
//! properties they honour (read here, without I/O), and the TLS connector built from them.
//! A cluster with a security property these connections do not honour (Kerberos, OAuth,
//! cipher lists, an engine, ...) keeps the record engine, with the property named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::X509;

use super::scram::Hash;

/// How the batch engine's connections reach a cluster.
#[derive(Clone, Default)]
pub struct WireSecurity {
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
}

/// TLS settings, as librdkafka's `ssl.*` properties give them.
#[derive(Clone)]
pub struct Tls {
    /// `ssl.ca.location` (a file or a directory of certificates); `None` with no `ca_pem`:
    /// the system's certificates, as librdkafka finds them.
    ca_location: Option<PathBuf>,
    ca_pem: Option<String>,
    cert_location: Option<PathBuf>,
    cert_pem: Option<String>,
    key_location: Option<PathBuf>,
    key_pem: Option<String>,
    key_password: Option<String>,
    /// `ssl.keystore.location`: a PKCS#12 file with the client's key and certificate.
    keystore: Option<PathBuf>,
    keystore_password: Option<String>,
    /// `enable.ssl.certificate.verification`.
    verify_certificate: bool,
    /// `ssl.endpoint.identification.algorithm` = https (librdkafka's default).
    verify_host: bool,
}

/// A SASL mechanism with its credentials.
#[derive(Clone)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(Hash),
}

impl Mechanism {
    /// The name SaslHandshake carries.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(Hash::Sha256) => "SCRAM-SHA-256",
            Mechanism::Scram(Hash::Sha512) => "SCRAM-SHA-512",
        }
    }
}

impl std::fmt::Debug for WireSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| s.mechanism))
            .finish()
    }
}

/// Properties the connections honour; every other `ssl.*` or `sasl.*` property is a reason
/// to keep the record engine. Properties of neither kind (librdkafka's tuning) do not
/// concern them.
const HONOURED: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.key.password",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
];

/// Reads a cluster's librdkafka properties: how to connect, or why the batch engine's
/// connections cannot (the words after "the cluster is reached with ...").
pub fn from_properties(props: &BTreeMap<String, String>) -> Result<WireSecurity, String> {
    let get = |k: &str| props.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let protocol = get("security.protocol").map_or("plaintext".to_string(), str::to_lowercase);
    let (tls, sasl) = match protocol.as_str() {
        "plaintext" => (false, false),
        "ssl" => (true, false),
        "sasl_plaintext" => (false, true),
        "sasl_ssl" => (true, true),
        other => {
            return Err(format!(
                "security.protocol {other}, which is not a protocol"
            ));
        }
    };
    if let Some(k) = props
        .keys()
        .filter(|k| k.starts_with("ssl") || k.starts_with("sasl"))
        .find(|k| !HONOURED.contains(&k.as_str()))
    {
        return Err(format!(
            "property {k}, which the batch engine does not apply yet"
        ));
    }
    let sasl = if sasl {
        let mechanism = get("sasl.mechanism")
            .or(get("sasl.mechanisms"))
            .unwrap_or("GSSAPI")
            .to_ascii_uppercase();
        let mechanism = match mechanism.as_str() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::Scram(Hash::Sha256),
            "SCRAM-SHA-512" => Mechanism::Scram(Hash::Sha512),
            other => {
                return Err(format!(
                    "SASL mechanism {other}, which the batch engine does not speak (it speaks \
                     PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512)"
                ));
            }
        };
        Some(Sasl {
            mechanism,
            username: get("sasl.username").unwrap_or_default().to_string(),
            password: get("sasl.password").unwrap_or_default().to_string(),
        })
    } else {
        None
    };
    let flag = |k: &str, default: bool| match get(k).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("{k} = {v}, which is neither true nor false")),
    };
    let verify_host = match get("ssl.endpoint.identification.algorithm")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("https") => true,
        Some("none") => false,
        Some(v) => return Err(format!("ssl.endpoint.identification.algorithm {v}")),
    };
    let path = |k: &str| get(k).map(PathBuf::from);
    let text = |k: &str| get(k).map(str::to_string);
    let tls = if tls {
        Some(Tls {
            ca_location: path("ssl.ca.location").filter(|p| p != Path::new("probe")),
            ca_pem: text("ssl.ca.pem"),
            cert_location: path("ssl.certificate.location"),
            cert_pem: text("ssl.certificate.pem"),
            key_location: path("ssl.key.location"),
            key_pem: text("ssl.key.pem"),
            key_password: text("ssl.key.password"),
            keystore: path("ssl.keystore.location"),
            keystore_password: text("ssl.keystore.password"),
            verify_certificate: flag("enable.ssl.certificate.verification", true)?,
            verify_host,
        })
    } else {
        None
    };
    Ok(WireSecurity { tls, sasl })
}

/// Where librdkafka looks for the system's CA certificates when none is configured
/// (`ssl.ca.location` = probe): the first that exists is loaded with OpenSSL's defaults.
const SYSTEM_CA: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/cacert.pem",
    "/usr/local/etc/ssl/cert.pem",
];

impl Tls {
    /// Whether the broker's name is checked against its certificate.
    pub fn verify_host(&self) -> bool {
        self.verify_host
    }

    /// The TLS client these settings describe. Files are read now: a missing or unreadable
    /// one is named.
    pub fn connector(&self) -> anyhow::Result<SslConnector> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        match (&self.ca_location, &self.ca_pem) {
            (_, Some(pem)) => {
                for cert in X509::stack_from_pem(pem.as_bytes()).context("reading ssl.ca.pem")? {
                    b.cert_store_mut().add_cert(cert)?;
                }
            }
            (Some(p), None) if p.is_dir() => b
                .load_verify_locations(None, Some(p))
                .with_context(|| format!("reading ssl.ca.location {}", p.display()))?,
            (Some(p), None) => b
                .set_ca_file(p)
                .with_context(|| format!("reading ssl.ca.location {}", p.display()))?,
            (None, None) => {
                b.set_default_verify_paths()?;
                if let Some(f) = SYSTEM_CA.iter().map(Path::new).find(|p| p.is_file()) {
                    b.set_ca_file(f)
                        .with_context(|| format!("reading the system's CA file {}", f.display()))?;
                }
            }
        }
        if let Some(p) = &self.keystore {
            let der = std::fs::read(p)
                .with_context(|| format!("reading ssl.keystore.location {}", p.display()))?;
            let store = Pkcs12::from_der(&der)
                .and_then(|s| s.parse2(self.keystore_password.as_deref().unwrap_or("")))
                .with_context(|| format!("opening the PKCS#12 keystore {}", p.display()))?;
            let (Some(cert), Some(key)) = (store.cert, store.pkey) else {
                return Err(anyhow!(
                    "the keystore {} holds no certificate and key",
                    p.display()
                ));
            };
            b.set_certificate(&cert)?;
            b.set_private_key(&key)?;
            for extra in store.ca.into_iter().flatten() {
                b.add_extra_chain_cert(extra)?;
            }
        }
        if let Some(pem) = &self.cert_pem {
            let mut chain = X509::stack_from_pem(pem.as_bytes())
                .context("reading ssl.certificate.pem")?
                .into_iter();
            let leaf = chain
                .next()
                .ok_or_else(|| anyhow!("ssl.certificate.pem holds no certificate"))?;
            b.set_certificate(&leaf)?;
            for extra in chain {
                b.add_extra_chain_cert(extra)?;
            }
        } else if let Some(p) = &self.cert_location {
            b.set_certificate_chain_file(p)
                .with_context(|| format!("reading ssl.certificate.location {}", p.display()))?;
        }
        let password = self.key_password.as_deref().unwrap_or("").as_bytes();
        if let Some(pem) = &self.key_pem {
            let key = PKey::private_key_from_pem_passphrase(pem.as_bytes(), password)
                .context("reading ssl.key.pem (is ssl.key.password right?)")?;
            b.set_private_key(&key)?;
        } else if let Some(p) = &self.key_location {
            let pem = std::fs::read(p)
                .with_context(|| format!("reading ssl.key.location {}", p.display()))?;
            let key = PKey::private_key_from_pem_passphrase(&pem, password).with_context(|| {
                format!(
                    "reading the key in ssl.key.location {} (is ssl.key.password right?)",
                    p.display()
                )
            })?;
            b.set_private_key(&key)?;
        }
        if self.cert_pem.is_some() || self.cert_location.is_some() || self.keystore.is_some() {
            b.check_private_key()
                .context("the client key does not match the client certificate")?;
        }
        if !self.verify_certificate {
            b.set_verify(SslVerifyMode::NONE);
        }
        Ok(b.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_four_protocols_and_the_three_mechanisms() {
        let plain = from_properties(&props(&[])).unwrap();
        assert!(plain.tls.is_none() && plain.sasl.is_none());
        let ssl = from_properties(&props(&[("security.protocol", "SSL")])).unwrap();
        assert!(ssl.tls.is_some() && ssl.sasl.is_none());
        let t = ssl.tls.unwrap();
        assert!(
            t.verify_host && t.verify_certificate,
            "librdkafka's defaults"
        );
        for (name, mech) in [
            ("PLAIN", Mechanism::Plain),
            ("scram-sha-256", Mechanism::Scram(Hash::Sha256)),
            ("SCRAM-SHA-512", Mechanism::Scram(Hash::Sha512)),
        ] {
            let s = from_properties(&props(&[
                ("security.protocol", "sasl_ssl"),
                ("sasl.mechanisms", name),
                ("sasl.username", "u"),
                ("sasl.password", "p"),
            ]))
            .unwrap();
            assert!(s.tls.is_some());
            let sasl = s.sasl.unwrap();
            assert_eq!((sasl.mechanism, sasl.username.as_str()), (mech, "u"));
        }
        let s = from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
        ]))
        .unwrap();
        assert!(s.tls.is_none() && s.sasl.is_some());
    }

    #[test]
    fn what_the_connections_cannot_honour_is_named() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("security.protocol", "sasl_ssl")], "GSSAPI"),
            (
                &[
                    ("security.protocol", "sasl_ssl"),
                    ("sasl.mechanism", "OAUTHBEARER"),
                ],
                "OAUTHBEARER",
            ),
            (
                &[("security.protocol", "ssl"), ("ssl.cipher.suites", "ECDHE")],
                "ssl.cipher.suites",
            ),
            (
                &[("sasl.kerberos.service.name", "kafka")],
                "sasl.kerberos.service.name",
            ),
            (&[("security.protocol", "tls")], "tls"),
            (
                &[
                    ("security.protocol", "ssl"),
                    ("enable.ssl.certificate.verification", "maybe"),
                ],
                "neither true nor false",
            ),
        ];
        for (kv, named) in cases {
            let why = from_properties(&props(kv)).unwrap_err();
            assert!(why.contains(named), "{kv:?}: {why}");
        }
    }

    #[test]
    fn verification_can_be_turned_off_as_in_librdkafka() {
        let s = from_properties(&props(&[
            ("security.protocol", "ssl"),
            ("ssl.endpoint.identification.algorithm", "none"),
            ("enable.ssl.certificate.verification", "false"),
            ("ssl.ca.location", "probe"),
        ]))
        .unwrap();
        let t = s.tls.unwrap();
        assert!(!t.verify_host && !t.verify_certificate && t.ca_location.is_none());
    }

    #[test]
    fn debug_shows_no_credentials() {
        let s = from_properties(&props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "alice"),
            ("sasl.password", "s3cret-pw"),
        ]))
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("alice"),
            "{shown}"
        );
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let s = from_properties(&props(&[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", "/nonexistent/ca.pem"),
        ]))
        .unwrap();
        let e = format!("{:#}", s.tls.unwrap().connector().unwrap_err());
        assert!(e.contains("ssl.ca.location /nonexistent/ca.pem"), "{e}");
    }
}
