//! The signature algorithms jsonwebtoken may use here: HS256 and RS256, no
//! others.
//!
//! jsonwebtoken's own `rust_crypto` backend brings every JOSE algorithm
//! (ES256/384 on P-256/P-384, EdDSA on Ed25519, PS*, RS384/512, HS384/512),
//! and since it picks one at run time from the token's header, link-time
//! optimisation keeps all of them: ~320 KB of each Spin component, for
//! curves no deployment accepts. The service verifies exactly one family per
//! deployment (see [`auth`](super::auth)) and mints only HS256 development
//! tokens, so this provider offers exactly that, on the same RustCrypto
//! crates (`hmac`, `rsa`, `sha2`) the full backend would use. Any other
//! algorithm, or an RSA key not given as a JWK's modulus and exponent, is an
//! error, never a panic.
//!
//! It is installed as the process's provider before the first token is
//! verified or minted ([`install`]). A process whose build also enables
//! jsonwebtoken's `rust_crypto` (the test binaries, which sign tokens as an
//! identity provider would) may already have that one installed; both verify
//! HS256 and RS256 alike.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Makes [`PROVIDER`] the process's jsonwebtoken provider, unless one is
/// installed already. Cheap: call it before any signing or verifying.
pub(crate) fn install() {
    let _ = PROVIDER.install_default();
}

pub(crate) static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    // Key utilities serve JWK thumbprints and JWKs made from private keys:
    // nothing the service does.
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest: |_, _| Err(unsupported()),
    },
};

fn unsupported() -> Error {
    ErrorKind::InvalidAlgorithm.into()
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    match algorithm {
        Algorithm::HS256 if key.family() == AlgorithmFamily::Hmac => Ok(Box::new(Hs256(hmac(key.as_bytes())?))),
        Algorithm::HS256 => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(unsupported()),
    }
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    match (algorithm, key.kind()) {
        (Algorithm::HS256, DecodingKeyKind::SecretOrDer(secret)) if key.family() == AlgorithmFamily::Hmac => {
            Ok(Box::new(Hs256(hmac(secret)?)))
        }
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
            Ok(Box::new(Rs256(key)))
        }
        (Algorithm::HS256 | Algorithm::RS256, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(unsupported()),
    }
}

fn hmac(secret: &[u8]) -> Result<HmacSha256, Error> {
    HmacSha256::new_from_slice(secret).map_err(|_| ErrorKind::InvalidKeyFormat.into())
}

struct Hs256(HmacSha256);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.clone().chain_update(message).finalize().into_bytes().to_vec())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
        // Constant-time comparison.
        self.0.clone().chain_update(message).verify_slice(tag).map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

struct Rs256(RsaPublicKey);

impl Verifier<Vec<u8>> for Rs256 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        self.0
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message), signature)
            .map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

/// The other side, for tests: tokens and JWKs made as an identity provider
/// would, with jsonwebtoken's full RustCrypto backend called directly (the
/// process's provider signs HS256 only, and tests also need tokens of
/// algorithms it refuses).
#[cfg(any(test, feature = "identity-provider"))]
pub mod identity_provider {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER as FULL;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};

    pub fn sign(header: &Header, claims: &serde_json::Value, key: &EncodingKey) -> String {
        let alg = header.alg;
        let (header, claims) = (serde_json::to_vec(header).unwrap(), serde_json::to_vec(claims).unwrap());
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = (FULL.signer_factory)(&alg, key).unwrap().try_sign(message.as_bytes()).unwrap();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The public half of an RSA private key, as a JWKS lists it.
    pub fn rsa_jwk(private: &EncodingKey) -> Jwk {
        let (n, e) = (FULL.key_utils.rsa_pub_components_from_private_key)(private.as_bytes()).unwrap();
        let jwk = serde_json::json!({"kty": "RSA", "alg": "RS256", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)});
        serde_json::from_value(jwk).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER as FULL;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const MESSAGE: &[u8] = b"header.claims";

    fn rsa_pair() -> (EncodingKey, DecodingKey) {
        let private = EncodingKey::from_rsa_pem(include_bytes!("../../../../tests/fixtures/rsa-private.pem")).unwrap();
        let public = DecodingKey::from_jwk(&identity_provider::rsa_jwk(&private)).unwrap();
        (private, public)
    }
    fn full_sign(algorithm: Algorithm, key: &EncodingKey) -> Vec<u8> {
        (FULL.signer_factory)(&algorithm, key).unwrap().try_sign(MESSAGE).unwrap()
    }

    fn verifies(algorithm: Algorithm, key: &DecodingKey, signature: &[u8]) -> bool {
        (PROVIDER.verifier_factory)(&algorithm, key).unwrap().verify(MESSAGE, &signature.to_vec()).is_ok()
    }

    #[test]
    fn an_rs256_signature_from_a_jwks_key_verifies_and_a_tampered_one_does_not() {
        let (private, public) = rsa_pair();
        let mut signature = full_sign(Algorithm::RS256, &private);
        assert!(verifies(Algorithm::RS256, &public, &signature));
        signature[10] ^= 1;
        assert!(!verifies(Algorithm::RS256, &public, &signature));
    }

    #[test]
    fn an_hs256_tag_verifies_with_its_secret_only_and_signs_as_the_full_backend_does() {
        let tag = full_sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET));
        assert!(verifies(Algorithm::HS256, &DecodingKey::from_secret(SECRET), &tag));
        assert!(!verifies(Algorithm::HS256, &DecodingKey::from_secret(b"another secret, also 32 bytes.."), &tag));
        let ours = (PROVIDER.signer_factory)(&Algorithm::HS256, &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(ours.try_sign(MESSAGE).unwrap(), tag);
    }

    #[test]
    fn other_algorithms_and_mismatched_keys_are_errors_not_panics() {
        let (_, public) = rsa_pair();
        let secret = DecodingKey::from_secret(SECRET);
        for algorithm in [Algorithm::HS512, Algorithm::RS512, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
            assert!((PROVIDER.verifier_factory)(&algorithm, &secret).is_err(), "{algorithm:?}");
            assert!((PROVIDER.verifier_factory)(&algorithm, &public).is_err(), "{algorithm:?}");
        }
        assert!((PROVIDER.verifier_factory)(&Algorithm::RS256, &secret).is_err());
        assert!((PROVIDER.verifier_factory)(&Algorithm::HS256, &public).is_err());
        assert!((PROVIDER.signer_factory)(&Algorithm::RS256, &EncodingKey::from_secret(SECRET)).is_err());
    }
}
