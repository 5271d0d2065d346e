//! The README's dead-letter walk-through against the running stack: `herald dlq list|show|redrive --local`.

use super::{DELIVERY_TIMEOUT, RunningStack, herald_local, notification_on, order_event};
use serde_json::Value;
use std::time::Duration;

async fn herald_dlq(stack: &RunningStack, args: &[&str]) -> String {
    herald_local(stack, "dlq", args).await
}

/// The README's DLQ walk-through: Slack down past the retries → `dead_lettered`; fixed; `herald dlq
/// redrive` → `sent`, once each.
pub(super) async fn a_dead_lettered_slack_is_redriven_once_by_herald_dlq(stack: &RunningStack) {
    stack.set_sink_status(500).await;
    let mut slack_ids = Vec::new();
    for (webhook, phone) in [("B005", "+15555550105"), ("B006", "+15555550106")] {
        let event = order_event(
            stack,
            webhook,
            "dlq@example.com",
            phone,
            &format!("e2e-dlq-{webhook}"),
        );
        let response = stack.send_event(&event).await;
        let status = response.status();
        let accepted: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "{accepted}\n{}", stack.log_tail());
        slack_ids.push(notification_on(&accepted, "slack"));
    }
    for id in &slack_ids {
        stack.wait_for_notification(id, "dead_lettered").await;
    }
    // SQS moves a message to the DLQ on the receive after its last: wait until both are there.
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let listed = herald_dlq(stack, &["list"]).await;
        let slack_line = listed
            .lines()
            .find(|line| line.starts_with("herald-local-slack-dlq"))
            .unwrap();
        if slack_line.split_whitespace().nth(1) == Some("2") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the DLQ never held both:\n{listed}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let shown = herald_dlq(stack, &["show", "slack"]).await;
    for id in &slack_ids {
        assert!(shown.contains(id.as_str()), "{shown}");
    }
    assert!(
        shown.contains("dead_lettered") && shown.contains("sink_failing"),
        "{shown}"
    );
    assert!(
        !shown.contains("/services/T000/"),
        "addresses are masked: {shown}"
    );

    stack.set_sink_status(200).await;
    let redriven = herald_dlq(stack, &["redrive", "slack"]).await;
    assert!(redriven.contains("redriven: 2"), "{redriven}");

    for (id, webhook) in slack_ids.iter().zip(["B005", "B006"]) {
        stack.wait_for_notification(id, "sent").await;
        assert_eq!(
            stack.slack_messages(webhook).await.len(),
            1,
            "sent once: {webhook}"
        );
    }
    let listed = herald_dlq(stack, &["list"]).await;
    assert!(
        listed
            .lines()
            .filter(|l| l.starts_with("herald-local-"))
            .all(|l| l.split_whitespace().nth(1) == Some("0")),
        "{listed}"
    );
}
