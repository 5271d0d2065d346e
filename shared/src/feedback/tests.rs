//! The feedback handler on the in-memory suppression list, with failpoints.

use super::*;
use crate::adapters::memory::suppressions::MemorySuppressionList;
use crate::adapters::memory::{Fault, MemoryActivityStore};
use crate::domain::TenantId;
use crate::domain::provider_feedback::{NOTIFICATION_TAG, TENANT_TAG, tenant_tag_value};
use crate::domain::suppression::SuppressionReason;
use crate::ports::PageRequest;
use lambda_runtime::Context;
use serde_json::json;

const NOTIFICATION: &str = "ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b";

/// An SES event inside its SNS notification, as the feedback queue receives it.
fn message(id: &str, event_type: &str, detail: serde_json::Value) -> SqsMessage {
    let mut event = json!({
        "eventType": event_type,
        "mail": {
            "messageId": format!("ses-{id}"),
            "tags": {TENANT_TAG: [tenant_tag_value(&TenantId::new("acme"))], NOTIFICATION_TAG: [NOTIFICATION]}
        }
    });
    event[event_type.to_ascii_lowercase().as_str()] = detail;
    let envelope = json!({"Type": "Notification", "Message": event.to_string()});
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(envelope.to_string());
    message
}

fn bounce(id: &str, address: &str, bounce_type: &str) -> SqsMessage {
    message(
        id,
        "Bounce",
        json!({"bounceType": bounce_type, "bouncedRecipients": [{"emailAddress": address}], "timestamp": "2026-12-02T15:00:00.000Z"}),
    )
}

fn batch(records: Vec<SqsMessage>) -> LambdaEvent<SqsEvent> {
    let mut event = SqsEvent::default();
    event.records = records;
    LambdaEvent::new(event, Context::default())
}

async fn suppressed(list: &MemorySuppressionList) -> Vec<(String, SuppressionReason)> {
    let page = list
        .suppressions(
            &TenantId::new("acme"),
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    page.items
        .into_iter()
        .map(|entry| (entry.address, entry.reason))
        .collect()
}

#[tokio::test]
async fn permanent_bounces_and_complaints_suppress_and_nothing_else_does() {
    let handler = FeedbackHandler::new(MemorySuppressionList::default(), MemoryActivityStore::default());
    let complaint = message(
        "m3",
        "Complaint",
        json!({"complainedRecipients": [{"emailAddress": "Bob@Example.com"}], "timestamp": "2026-12-02T15:00:00.000Z"}),
    );
    let delivery = message(
        "m4",
        "Delivery",
        json!({"recipients": ["cy@example.com"], "timestamp": "2026-12-02T15:00:00.000Z"}),
    );
    let response = handler
        .handle(batch(vec![
            bounce("m1", "ada@example.com", "Permanent"),
            bounce("m2", "dee@example.com", "Transient"),
            complaint,
            delivery,
        ]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        suppressed(&handler.suppressions).await,
        [
            ("ada@example.com".to_owned(), SuppressionReason::Bounce),
            ("bob@example.com".to_owned(), SuppressionReason::Complaint)
        ]
    );
}

#[tokio::test]
async fn a_message_that_is_not_feedback_never_poisons_its_batch() {
    let handler = FeedbackHandler::new(MemorySuppressionList::default(), MemoryActivityStore::default());
    let mut garbage = SqsMessage::default();
    garbage.message_id = Some("junk".into());
    garbage.body = Some("not json at all".into());
    let mut untagged = bounce("m2", "eve@example.com", "Permanent");
    untagged.body = untagged.body.map(|body| body.replace(TENANT_TAG, "someone-else"));
    let response = handler
        .handle(batch(vec![
            garbage,
            untagged,
            bounce("m3", "ada@example.com", "Permanent"),
        ]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(suppressed(&handler.suppressions).await.len(), 1);
}

#[tokio::test]
async fn a_failed_write_returns_only_its_message_and_a_retry_changes_nothing_twice() {
    let handler = FeedbackHandler::new(MemorySuppressionList::default(), MemoryActivityStore::default());
    handler.suppressions.failpoints.set("suppress", Fault::Fail, 1);
    let response = handler
        .handle(batch(vec![bounce("m1", "ada@example.com", "Permanent")]))
        .await
        .unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m1"]);
    assert!(suppressed(&handler.suppressions).await.is_empty());

    for _ in 0..2 {
        let response = handler
            .handle(batch(vec![bounce("m1", "ada@example.com", "Permanent")]))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(suppressed(&handler.suppressions).await.len(), 1);
}
