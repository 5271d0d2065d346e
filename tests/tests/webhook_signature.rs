//! Herald's Standard Webhooks signatures, checked by an implementation that is not Herald's: the
//! `standardwebhooks` package from PyPI (the specification's reference library), which `scripts/test`
//! installs and names in `HERALD_WEBHOOK_VERIFIER`. A receiver written against the specification must accept
//! what Herald signs, through a secret rotation, and refuse what was altered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::Timestamp;
use herald::domain::webhook::{SigningSecret, sign};
use std::io::Write;
use std::process::{Command, Stdio};

const VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
case = json.load(sys.stdin)
headers = {"webhook-id": case["id"], "webhook-timestamp": str(case["timestamp"]),
           "webhook-signature": case["signature"]}
try:
    Webhook(case["secret"]).verify(case["body"], headers)
    print("verified")
except WebhookVerificationError as error:
    print(f"refused: {error}")
"#;

/// What the reference library says of a delivery signed `signature`, to a receiver holding `secret`.
fn verdict(secret: &SigningSecret, id: &str, timestamp: i64, signature: &str, body: &str) -> String {
    let python = std::env::var("HERALD_WEBHOOK_VERIFIER").expect(
        "HERALD_WEBHOOK_VERIFIER names a Python with the standardwebhooks package: run the tests with ./scripts/test",
    );
    let case = serde_json::json!({
        "secret": secret.expose(), "id": id, "timestamp": timestamp, "signature": signature, "body": body,
    });
    let mut child = Command::new(python)
        .args(["-c", VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the verifier starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(case.to_string().as_bytes())
        .expect("the case is written");
    let output = child.wait_with_output().expect("the verifier answers");
    assert!(output.status.success(), "the verifier failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

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
