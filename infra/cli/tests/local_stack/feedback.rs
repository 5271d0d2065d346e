//! The README's bounces and complaints walk-through against the running stack: an email sent, then
//! `herald local feedback` (the real binary) publishing what SES would say to the stack's feedback topic,
//! through SNS and the feedback queue to the feedback function; seen only through the API.

use super::{RunningStack, notification_on, project_root};
use serde_json::{Value, json};
use tokio::process::Command;

/// `herald local feedback ARGS` beside the stack: its exit status's success, and what it printed.
async fn herald_feedback(stack: &RunningStack, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["local", "feedback"])
        .args(args)
        .current_dir(project_root())
        .env("HERALD_EMULATOR_PORT", stack.ports[1].to_string())
        .env("HERALD_DYNAMODB_PORT", stack.ports[3].to_string())
        .output()
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// An order_created event for `address` alone; its email notification's id once it is `sent`.
async fn emailed(stack: &RunningStack, address: &str, order: u64) -> String {
    let event = json!({"event": "order_created", "recipient": {"email": address},
                       "payload": {"order_id": order, "total": 1}});
    let response = stack.send_event(&event).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let id = notification_on(&accepted, "email");
    stack.wait_for_notification(&id, "sent").await;
    id
}

async fn suppression(stack: &RunningStack, address: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!(
            "{}/v1/suppressions/{}",
            stack.front,
            address.replace('@', "%40")
        ))
        .bearer_auth(super::API_KEY)
        .send()
        .await
        .unwrap()
}

pub(super) async fn ses_feedback_from_herald_local_feedback_is_recorded_and_suppresses(stack: &RunningStack) {
    let address = "bounced-e2e@example.com";
    let id = emailed(stack, address, 900).await;
    assert_eq!(suppression(stack, address).await.status(), 404);

    let (ok, printed) = herald_feedback(stack, &["delivery", &id]).await;
    assert!(ok, "{printed}");
    let delivered = stack.wait_for_notification(&id, "delivered").await;
    assert_eq!(delivered["detail"], "250 2.6.0 Message received");
    assert_eq!(
        suppression(stack, address).await.status(),
        404,
        "a delivery suppresses nothing"
    );

    let (ok, printed) = herald_feedback(stack, &["bounce", &id]).await;
    assert!(ok && printed.contains("b***@example.com"), "{printed}");
    stack.wait_for_notification(&id, "bounced").await;
    let listed = suppression(stack, address).await;
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(
        (&listed["reason"], &listed["notification_id"]),
        (&json!("bounce"), &json!(id)),
        "{listed}"
    );

    // The next email to the address is held back at ingest.
    let response = stack
        .send_event(&json!({"event": "order_created", "recipient": {"email": address},
                            "payload": {"order_id": 901, "total": 1}}))
        .await;
    let accepted: Value = response.json().await.unwrap();
    let next = accepted["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "email")
        .unwrap();
    assert_eq!(
        (&next["status"], &next["reason"]),
        (&json!("suppressed"), &json!("address_suppressed")),
        "{accepted}"
    );

    let unhappy = "complained-e2e@example.com";
    let complained = emailed(stack, unhappy, 902).await;
    let (ok, printed) = herald_feedback(stack, &["complaint", &complained, "--tenant", "local"]).await;
    assert!(ok, "{printed}");
    stack.wait_for_notification(&complained, "complained").await;
    let listed: Value = suppression(stack, unhappy).await.json().await.unwrap();
    assert_eq!(listed["reason"], "complaint", "{listed}");

    let (ok, printed) = herald_feedback(stack, &["bounce", "ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b"]).await;
    assert!(!ok && printed.contains("has no notification"), "{printed}");
    let (ok, printed) = herald_feedback(stack, &["bounce"]).await;
    assert!(
        !ok && printed.contains("usage: herald local feedback"),
        "{printed}"
    );
}
