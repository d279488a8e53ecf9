//! DPoP keys and proofs for tests: [`DpopKey`] and [`ProofBuilder`].

use super::*;

/// A client's DPoP key pair (ECDSA P-256, ES256), for tests: bind tokens to it with
/// [`TokenBuilder::dpop_bound`] and sign proofs with [`DpopKey::proof`].
///
/// Proofs are signed with [`jsonwebtoken`], not with this crate's code.
///
/// ```
/// # use tower_jwt_auth::test_util::{DpopKey, TestIssuer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start().await?;
/// let key = DpopKey::generate();
/// let token = issuer.token_builder().dpop_bound(&key).sign();
/// let proof = key.proof("GET", "https://api.example.com/orders").access_token(&token).sign();
/// // Send `Authorization: DPoP {token}` and `DPoP: {proof}`.
/// # let _ = proof;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DpopKey {
    encoding: jsonwebtoken::EncodingKey,
    jwk: jsonwebtoken::jwk::Jwk,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A fresh P-256 key pair.
    ///
    /// # Panics
    ///
    /// If the system's random source fails.
    pub fn generate() -> Self {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("random source");
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::ES256)
                .expect("public JWK of a fresh key");
        let thumbprint = jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .expect("thumbprint of an EC key");
        Self {
            encoding,
            jwk,
            thumbprint,
        }
    }

    /// The RFC 7638 SHA-256 thumbprint: the `cnf.jkt` of tokens bound to this key.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Value {
        serde_json::to_value(&self.jwk).unwrap_or_default()
    }

    /// A proof for a request of `method` to `url` (`htm`, `htu`), issued now, with a random
    /// `jti`; add the token with [`ProofBuilder::access_token`].
    pub fn proof(&self, method: &str, url: &str) -> ProofBuilder<'_> {
        let mut claims = Map::new();
        claims.insert("jti".into(), Value::String(random_jti()));
        claims.insert("htm".into(), Value::String(method.to_owned()));
        claims.insert("htu".into(), Value::String(url.to_owned()));
        claims.insert("iat".into(), json!(now_seconds()));
        ProofBuilder { key: self, claims }
    }
}

/// A DPoP proof being made by a [`DpopKey`]; finish it with [`sign`](Self::sign).
#[must_use]
#[derive(Debug)]
pub struct ProofBuilder<'k> {
    key: &'k DpopKey,
    claims: Map<String, Value>,
}

impl ProofBuilder<'_> {
    /// Sets `ath` to the hash of `token` (RFC 9449 §4.2).
    pub fn access_token(self, token: &str) -> Self {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        self.claim("ath", URL_SAFE_NO_PAD.encode(hash))
    }

    /// Sets the server-provided `nonce`.
    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce)
    }

    /// Sets `iat`, in seconds since the epoch.
    pub fn issued_at(self, iat: i64) -> Self {
        self.claim("iat", iat)
    }

    /// Sets (or, with `Value::Null`, replaces) any claim.
    pub fn claim(mut self, name: &str, value: impl Serialize) -> Self {
        self.claims.insert(
            name.to_owned(),
            serde_json::to_value(value).unwrap_or_default(),
        );
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// The signed proof, for the `DPoP` header.
    ///
    /// # Panics
    ///
    /// If signing fails (it does not, for a key made by [`DpopKey::generate`]).
    pub fn sign(self) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("dpop+jwt".to_owned());
        header.jwk = Some(self.key.jwk.clone());
        jsonwebtoken::encode(&header, &self.claims, &self.key.encoding).expect("signing a proof")
    }
}

fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now_seconds() -> i64 {
    crate::clock::unix_seconds(SystemTime::now())
}
