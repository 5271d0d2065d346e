//! An implementation of Standard Webhooks verification that is not Herald's: the `standardwebhooks` package
//! from PyPI (the specification's reference library), which `scripts/test` installs and names in
//! `HERALD_WEBHOOK_VERIFIER`.

#![allow(clippy::expect_used)] // test support: a verifier that cannot run is a failed test

use herald::domain::webhook::SigningSecret;
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
pub fn verdict(secret: &SigningSecret, id: &str, timestamp: i64, signature: &str, body: &str) -> String {
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
