//! SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as a Kafka client speaks it,
//! for the batch engine's own connections: the client's two messages and the check of the
//! server's proof, with no I/O (the connection carries the messages in SaslAuthenticate
//! requests). Kafka's SCRAM has no channel binding ("n,,") and no authorization identity.

use anyhow::{anyhow, bail};
use openssl::hash::{MessageDigest, hash};
use openssl::memcmp;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn digest(self) -> MessageDigest {
        match self {
            Hash::Sha256 => MessageDigest::sha256(),
            Hash::Sha512 => MessageDigest::sha512(),
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }
}

/// The fewest iterations accepted from a server: Kafka's own minimum (4096). A server
/// asking for fewer would make the proof cheap to attack.
const MIN_ITERATIONS: u32 = 4096;

/// A client's exchange, from its first message to the server's final one.
pub struct Scram {
    hash: Hash,
    password: String,
    nonce: String,
    first_bare: String,
    /// The server's signature the final message must carry, once the proof is sent.
    server_signature: Option<Vec<u8>>,
}

impl std::fmt::Debug for Scram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scram").field("hash", &self.hash).finish()
    }
}

impl Scram {
    /// Starts an exchange for `user` with the client nonce `nonce` (printable ASCII without
    /// commas: [`nonce`] makes one).
    pub fn new(hash: Hash, user: &str, password: &str, nonce: &str) -> Scram {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        Scram {
            hash,
            password: password.to_string(),
            nonce: nonce.to_string(),
            first_bare: format!("n={name},r={nonce}"),
            server_signature: None,
        }
    }

    /// The client's first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client's final message (with its proof) in answer to the server's first one.
    pub fn client_final(&mut self, server_first: &[u8]) -> anyhow::Result<Vec<u8>> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| anyhow!("the server's first SCRAM message is not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            match field.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                Some(("e", v)) => bail!("the server refused the SCRAM exchange: {v}"),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            bail!("the server's first SCRAM message lacks its nonce, salt or iteration count");
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            bail!("the server's SCRAM nonce does not extend the client's");
        }
        if iterations < MIN_ITERATIONS {
            bail!(
                "the server asks for {iterations} SCRAM iterations, fewer than the \
                 {MIN_ITERATIONS} Kafka requires"
            );
        }
        let salt = openssl::base64::decode_block(salt)
            .map_err(|_| anyhow!("the server's SCRAM salt is not base64"))?;
        let d = self.hash.digest();
        let mut salted = vec![0; self.hash.len()];
        openssl::pkcs5::pbkdf2_hmac(
            self.password.as_bytes(),
            &salt,
            iterations as usize,
            d,
            &mut salted,
        )?;
        let client_key = hmac(d, &salted, b"Client Key")?;
        let stored_key = hash(d, &client_key)?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = hmac(d, &stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(d, &salted, b"Server Key")?;
        self.server_signature = Some(hmac(d, &server_key, auth_message.as_bytes())?);
        let proof = openssl::base64::encode_block(&proof);
        Ok(format!("{without_proof},p={proof}").into_bytes())
    }

    /// Checks the server's final message: its signature proves it knows the password's
    /// keys (a server that does not is not the cluster configured).
    pub fn check_server_final(&self, server_final: &[u8]) -> anyhow::Result<()> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| anyhow!("the server's final SCRAM message is not UTF-8"))?;
        let Some(expected) = &self.server_signature else {
            bail!("the server's final SCRAM message came before the client's proof");
        };
        if let Some(e) = text.strip_prefix("e=") {
            bail!("the server refused the SCRAM proof: {e}");
        }
        let given = text
            .split(',')
            .find_map(|f| f.strip_prefix("v="))
            .and_then(|v| openssl::base64::decode_block(v).ok())
            .ok_or_else(|| anyhow!("the server's final SCRAM message has no signature"))?;
        if given.len() != expected.len() || !memcmp::eq(&given, expected) {
            bail!("the server's SCRAM signature is wrong: it does not hold this user's keys");
        }
        Ok(())
    }
}

/// A fresh client nonce: 24 random bytes, base64 (never a comma).
pub fn nonce() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(openssl::base64::encode_block(&bytes))
}

fn hmac(d: MessageDigest, key: &[u8], data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(d, &key)?;
    signer.update(data)?;
    Ok(signer.sign_to_vec()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (SCRAM-SHA-256, user "user", password "pencil").
    #[test]
    fn rfc_7677_exchange() {
        let mut s = Scram::new(Hash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(s.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                      s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = s.client_final(first).unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.check_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        let wrong = s
            .check_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(wrong.to_string().contains("signature is wrong"), "{wrong}");
    }

    /// RFC 5802's escaping of the user name, and SHA-512's proof length.
    #[test]
    fn names_are_escaped_and_sha512_proofs_are_64_bytes() {
        let mut s = Scram::new(Hash::Sha512, "a=b,c", "pw", "abc");
        assert_eq!(s.client_first(), b"n,,n=a=3Db=2Cc,r=abc");
        let fin = s
            .client_final(b"r=abcdef,s=c2FsdA==,i=4096")
            .map(String::from_utf8)
            .unwrap()
            .unwrap();
        let proof = fin.split_once(",p=").unwrap().1;
        assert_eq!(openssl::base64::decode_block(proof).unwrap().len(), 64);
    }

    #[test]
    fn a_server_that_does_not_follow_the_exchange_is_refused() {
        let cases: [(&[u8], &str); 5] = [
            (b"r=xyz1,s=c2FsdA==,i=4096", "does not extend"),
            (b"r=abc,s=c2FsdA==,i=4096", "does not extend"),
            (b"r=abc1,s=c2FsdA==,i=1000", "fewer than"),
            (b"r=abc1,i=4096", "lacks"),
            (b"e=unknown-user", "refused"),
        ];
        for (first, why) in cases {
            let mut s = Scram::new(Hash::Sha256, "u", "p", "abc");
            let e = s.client_final(first).unwrap_err().to_string();
            assert!(e.contains(why), "{first:?}: {e}");
        }
        let s = Scram::new(Hash::Sha256, "u", "p", "abc");
        assert!(
            s.check_server_final(b"v=AAAA").is_err(),
            "no proof sent yet"
        );
    }

    #[test]
    fn nonces_differ_and_have_no_comma() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_ne!(a, b);
        assert!(!a.contains(','));
    }
}
