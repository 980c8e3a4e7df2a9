//! # Signed webhooks (Standard Webhooks)
//!
//! A receiver must be able to tell that a notification came from us, was not
//! altered, and is not an old delivery played again. Orderly follows the
//! Standard Webhooks scheme (<https://www.standardwebhooks.com>), so
//! receivers can verify with any of its libraries:
//!
//! - `webhook-id`: the notification's id, stable across retries (the
//!   receiver deduplicates on it);
//! - `webhook-timestamp`: Unix seconds when this attempt was signed (the
//!   receiver refuses deliveries outside its tolerance: replays);
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//!   with the shared secret, given as `whsec_<base64>`.
//!
//! Signing is pure (the time is an argument), so every host's transport
//! signs the same way and tests can sign "ten minutes ago".

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The signing secret: the bytes after `whsec_`, base64-decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// `whsec_<base64>` of at least 24 bytes (Standard Webhooks asks for 24 to 64).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let encoded = raw.trim().strip_prefix("whsec_").ok_or("must start with whsec_")?;
        let bytes = STANDARD.decode(encoded).map_err(|_| "the part after whsec_ is not base64".to_owned())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!("must decode to 24 to 64 bytes, not {}", bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The `webhook-signature` value of one delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The three headers of one delivery.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
        [
            (ID_HEADER, id.to_owned()),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (SIGNATURE_HEADER, self.sign(id, timestamp, body)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The test vector of the Standard Webhooks reference libraries.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_secret_must_be_whsec_base64_of_a_sane_length() {
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ=", ""] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
        assert!(
            !format!("{:?}", WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()).contains("MfKQ")
        );
    }
}
