//! Opaque pagination cursors. Clients pass back what they were given; the
//! encoding is ours to change, and anything we did not make is a 400.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ApiError;

pub struct Cursor;

const PREFIX: &str = "c1:";

impl Cursor {
    pub fn encode(position: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{PREFIX}{position}"))
    }

    /// The position inside a cursor, validated by `parse`.
    pub fn decode<T>(raw: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, ApiError> {
        let invalid = || ApiError::BadRequest("cursor is not one this API returned".into());
        if raw.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let position = text.strip_prefix(PREFIX).ok_or_else(invalid)?;
        parse(position).ok_or_else(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_forgeries() {
        let cursor = Cursor::encode("SKU-9");
        assert_eq!(Cursor::decode(&cursor, |p| Some(p.to_owned())).unwrap(), "SKU-9");
        for bad in ["", "!!", "c1:SKU", &URL_SAFE_NO_PAD.encode("x:SKU"), &"A".repeat(600)] {
            assert!(Cursor::decode(bad, |p| Some(p.to_owned())).is_err(), "{bad}");
        }
        assert!(Cursor::decode(&cursor, |_| None::<()>).is_err());
    }
}
