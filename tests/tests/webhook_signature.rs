//! Herald's Standard Webhooks signatures, checked by an implementation that is not Herald's: the
//! `standardwebhooks` package from PyPI (the specification's reference library), which `scripts/test`
//! installs and names in `HERALD_WEBHOOK_VERIFIER`. A receiver written against the specification must accept
//! what Herald signs, through a secret rotation, and refuse what was altered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::Timestamp;
use herald::domain::webhook::{SigningSecret, sign};
use herald_integration_tests::webhook_verifier::verdict;

#[test]
fn the_reference_library_verifies_what_herald_signs() {
    let secret = SigningSecret::generate().unwrap();
    let body = r#"{"type":"order_created","timestamp":"2026-12-02T15:00:00.000Z","data":{"order":"A-1","total":"12.50 €"}}"#;
    let signed = sign(
        &[&secret],
        "01JEXAMPLE0000000000000000",
        Timestamp::now(),
        body.as_bytes(),
    );
    assert_eq!(
        verdict(&secret, &signed.id, signed.timestamp, &signed.signature, body),
        "verified"
    );

    let altered = body.replace("12.50", "1250");
    assert!(
        verdict(&secret, &signed.id, signed.timestamp, &signed.signature, &altered).starts_with("refused")
    );
    let other = SigningSecret::generate().unwrap();
    assert!(verdict(&other, &signed.id, signed.timestamp, &signed.signature, body).starts_with("refused"));
    // A replay: the same signature an hour later is outside the specification's five-minute tolerance.
    let old = sign(
        &[&secret],
        "m",
        Timestamp::now().plus_seconds(-3600),
        body.as_bytes(),
    );
    assert!(verdict(&secret, &old.id, old.timestamp, &old.signature, body).starts_with("refused"));
}

#[test]
fn during_a_rotation_receivers_holding_either_secret_verify() {
    let previous = SigningSecret::generate().unwrap();
    let current = SigningSecret::generate().unwrap();
    let body = r#"{"type":"order_shipped","data":{}}"#;
    let signed = sign(
        &[&current, &previous],
        "msg_rotation",
        Timestamp::now(),
        body.as_bytes(),
    );
    assert_eq!(
        verdict(&current, &signed.id, signed.timestamp, &signed.signature, body),
        "verified"
    );
    assert_eq!(
        verdict(&previous, &signed.id, signed.timestamp, &signed.signature, body),
        "verified"
    );
}
