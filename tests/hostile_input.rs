//! Every parser of untrusted input, fed arbitrary and mutated input
//! (proptest: cargo-fuzz needs a nightly toolchain this project does not
//! use). Properties: nothing panics; everything is either parsed or refused
//! with the documented error; what is accepted is well-formed.
//!
//! Cases per property: `PROPTEST_CASES` (2,000 by default here).

use std::time::Duration;

use order_intake::IdempotencyKey;
use order_intake::http::PlaceOrderRequest;
use orderly_core::domain::{Currency, CustomerId, Money, Order, OrderId, OrderLine, OrderStatus, Quantity, Sku};
use orderly_core::events::{Envelope, Event, EventMeta, OrderChanged, OrderSnapshot};
use orderly_core::http::{ApiError, AuthConfig, Authenticator, Cursor, KeyConfig, parse_json};
use orderly_core::trace::TraceContext;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

const SECRET: &[u8] = b"hostile-input-secret-hostile-input-secret";

fn authenticator() -> Authenticator {
    Authenticator::new(&AuthConfig { keys: KeyConfig::Hs256(vec![SECRET.to_vec()]), ..Default::default() }).unwrap()
}

/// Verification is async (fetched keys may be refreshed); these keys are fixed.
fn verify(token: &str) -> Result<orderly_core::http::Principal, ApiError> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    runtime.block_on(authenticator().verify(token))
}

/// JSON-ish text: structure characters mixed with fragments of real requests.
fn jsonish() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"items\"".to_owned()),
        Just("\"sku\"".to_owned()),
        Just("\"quantity\"".to_owned()),
        Just("\"status\"".to_owned()),
        Just("\"TEA\"".to_owned()),
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "\\PC{0,8}".prop_map(|s| format!("{s:?}")),
    ];
    prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

fn a_real_envelope() -> Envelope {
    let line = OrderLine {
        sku: Sku::parse("TEA").unwrap(),
        quantity: Quantity::parse(2).unwrap(),
        unit_price: Money::from_minor(250, Currency::parse("EUR").unwrap()).unwrap(),
    };
    let order = Order::place(
        OrderId::from_uuid(uuid::Uuid::now_v7()),
        CustomerId::parse("c").unwrap(),
        vec![line],
        chrono::Utc::now(),
    )
    .unwrap();
    Event::OrderPlaced(OrderChanged::new(&order)).into_envelope(EventMeta {
        id: uuid::Uuid::now_v7(),
        source: "test",
        time: chrono::Utc::now(),
        traceparent: None,
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn order_bodies_parse_or_are_refused_with_400_or_422(raw in prop_oneof![jsonish(), any::<String>()]) {
        match parse_json::<PlaceOrderRequest>(raw.as_bytes()) {
            Ok(request) => {
                let is_object = raw.trim_start().starts_with('{');
                prop_assert!(is_object, "accepted a non-object");
                prop_assert!(request.items.len() < 100_000);
            }
            Err(ApiError::BadRequest(_)) | Err(ApiError::Validation(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?} for {raw:?}"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_break_the_body_parser(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        let result = parse_json::<PlaceOrderRequest>(&raw);
        prop_assert!(matches!(result, Ok(_) | Err(ApiError::BadRequest(_)) | Err(ApiError::Validation(_))));
    }

    #[test]
    fn tokens_that_we_did_not_sign_are_always_refused(raw in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,90}",
    ]) {
        prop_assert!(matches!(verify(&raw), Err(ApiError::Unauthorized(_))));
    }

    #[test]
    fn a_valid_token_with_any_byte_changed_is_refused(index in 0usize..400, byte in any::<u8>()) {
        let token = orderly_core::http::mint_hs256(SECRET, "alice", false, Duration::from_secs(600));
        let mut bytes = token.clone().into_bytes();
        let i = index % bytes.len();
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        // Changing the unused low bits of the last base64url character can
        // leave the signature bytes as they were; any other change must fail.
        prop_assume!(i != bytes.len() - 1);
        prop_assert!(verify(&tampered).is_err(), "tampered at {i}: {tampered}");
    }

    #[test]
    fn idempotency_keys_are_accepted_exactly_when_they_are_1_to_255_visible_ascii(raw in any::<String>()) {
        let valid = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
        prop_assert_eq!(IdempotencyKey::parse(&raw).is_ok(), valid);
    }

    #[test]
    fn cursors_decode_only_what_we_encoded(raw in any::<String>(), position in "[A-Z0-9][A-Z0-9-]{0,39}") {
        let _ = Cursor::decode(&raw, |p| Sku::parse(p).ok());
        let encoded = Cursor::encode(&position);
        let decoded = Cursor::decode(&encoded, |p| Sku::parse(p).ok()).unwrap();
        prop_assert_eq!(decoded.as_str(), position.as_str());
    }

    #[test]
    fn message_bodies_are_an_envelope_or_an_error_never_a_panic(raw in prop_oneof![jsonish(), any::<String>()]) {
        if let Ok(envelope) = Envelope::from_json(&raw) {
            let _ = envelope.decode();
        }
    }

    #[test]
    fn mutated_envelopes_decode_or_fail_cleanly(cut in 0usize..2000, insert in "\\PC{0,4}") {
        let json = a_real_envelope().to_json();
        let at = json.char_indices().map(|(i, _)| i).nth(cut % json.chars().count()).unwrap_or(0);
        let mutated = format!("{}{}{}", &json[..at], insert, &json[at..]);
        if let Ok(envelope) = Envelope::from_json(&mutated) {
            let _ = envelope.decode();
        }
    }

    #[test]
    fn order_snapshots_with_any_numbers_map_back_to_an_order_or_are_refused(
        status in 0usize..4,
        version in any::<u32>(),
        price in any::<i64>(),
        total in any::<i64>(),
        updated_offset_ms in any::<i32>(),
    ) {
        let Ok(Some(Event::OrderPlaced(placed))) = a_real_envelope().decode() else {
            panic!("the real envelope decodes");
        };
        let mut snapshot = placed.order;
        snapshot.status = OrderStatus::ALL[status];
        snapshot.version = version;
        snapshot.items[0].unit_price.amount_minor = price;
        snapshot.total.amount_minor = total;
        snapshot.updated_at = snapshot.created_at + chrono::Duration::milliseconds(i64::from(updated_offset_ms));
        if let Ok(order) = Order::try_from(&snapshot) {
            prop_assert!(order.status().is_reachable_at(order.version()));
            prop_assert_eq!(OrderSnapshot::from(&order), snapshot);
        }
    }

    #[test]
    fn skus_money_ids_and_traceparents_parse_or_refuse(raw in any::<String>()) {
        if let Ok(sku) = Sku::parse(&raw) {
            prop_assert_eq!(sku.as_str(), raw.as_str());
        }
        if let Ok(money) = Money::parse_decimal(&raw, Currency::parse("EUR").unwrap()) {
            let again = Money::parse_decimal(&money.to_decimal_string(), money.currency()).unwrap();
            prop_assert_eq!(again, money);
        }
        if let Some(id) = OrderId::parse(&raw) {
            prop_assert_eq!(id.to_string(), raw.clone());
        }
        if let Some(trace) = TraceContext::parse(&raw) {
            prop_assert_eq!(TraceContext::parse(&trace.to_header()), Some(trace));
        }
    }
}
