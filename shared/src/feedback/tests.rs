//! The feedback handler on the in-memory suppression list and activity table, with failpoints.

use super::*;
use crate::adapters::memory::suppressions::MemorySuppressionList;
use crate::adapters::memory::{Fault, MemoryActivityStore};
use crate::domain::TenantId;
use crate::domain::delivery::{Attempt, AttemptOutcome};
use crate::domain::provider_feedback::{NOTIFICATION_TAG, TENANT_TAG, tenant_tag_value};
use crate::domain::suppression::SuppressionReason;
use crate::domain::{NotificationId, Timestamp};
use crate::ports::{ActivityStore, Claim, DeliveryLedger, PageRequest, Settlement};
use crate::test_fixtures::acceptance;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);
use lambda_runtime::Context;
use serde_json::json;

const NOTIFICATION: &str = "ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b";

/// An SES event inside its SNS notification, as the feedback queue receives it.
fn message(id: &str, event_type: &str, detail: serde_json::Value) -> SqsMessage {
    message_about(NOTIFICATION, id, event_type, detail)
}

fn message_about(notification: &str, id: &str, event_type: &str, detail: serde_json::Value) -> SqsMessage {
    let mut event = json!({
        "eventType": event_type,
        "mail": {
            "messageId": format!("ses-{id}"),
            "tags": {TENANT_TAG: [tenant_tag_value(&TenantId::new("acme"))], NOTIFICATION_TAG: [notification]}
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

/// A handler over an activity table holding one email notification of tenant `acme`, `sent` when `was_sent`.
async fn with_notification(
    was_sent: bool,
) -> (
    FeedbackHandler<MemorySuppressionList, MemoryActivityStore>,
    String,
) {
    let activity = MemoryActivityStore::default();
    let accepted = acceptance("acme", None, &[Channel::Email]);
    activity.record_acceptance(&accepted, LEASE).await.unwrap();
    let notification = &accepted.notifications[0];
    let (tenant, id) = (&notification.tenant, &notification.id);
    if was_sent {
        let Claim::Claimed { attempt, .. } =
            activity.claim(tenant, id, Timestamp::now(), LEASE).await.unwrap()
        else {
            panic!("a queued notification is claimable");
        };
        let sent = Settlement {
            status: NotificationStatus::Sent,
            reason: None,
            detail: None,
            provider_message_id: Some("ses-1".into()),
            next_attempt_at: None,
            failures: 0,
        };
        let record = Attempt {
            number: attempt,
            at: Timestamp::now(),
            outcome: AttemptOutcome::Sent,
            error: None,
            duration_ms: 1,
            provider_message_id: Some("ses-1".into()),
        };
        assert!(
            activity
                .settle(tenant, id, &record, &sent, Timestamp::now().plus_seconds(60))
                .await
                .unwrap()
        );
    }
    let id = id.to_string();
    (
        FeedbackHandler::new(MemorySuppressionList::default(), activity),
        id,
    )
}

/// The handler's one notification as the activity table has it now.
async fn stored(
    handler: &FeedbackHandler<MemorySuppressionList, MemoryActivityStore>,
    id: &str,
) -> crate::domain::notification::Notification {
    let id = NotificationId::parse(id).unwrap();
    let (notification, _) = handler
        .notifications
        .notification_with_attempts(&TenantId::new("acme"), &id)
        .await
        .unwrap()
        .unwrap();
    notification
}

async fn status_of(
    handler: &FeedbackHandler<MemorySuppressionList, MemoryActivityStore>,
    id: &str,
) -> (NotificationStatus, Option<String>) {
    let notification = stored(handler, id).await;
    (notification.status, notification.detail)
}

async fn reason_of(
    handler: &FeedbackHandler<MemorySuppressionList, MemoryActivityStore>,
    id: &str,
) -> Option<String> {
    stored(handler, id).await.reason
}

fn delivered(id: &str, notification: &str) -> SqsMessage {
    message_about(
        notification,
        id,
        "Delivery",
        json!({"recipients": ["ada@example.com"], "smtpResponse": "250 ok", "timestamp": "2026-12-02T15:00:00.000Z"}),
    )
}

fn bounced(id: &str, notification: &str) -> SqsMessage {
    message_about(
        notification,
        id,
        "Bounce",
        json!({"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "ada@example.com", "diagnosticCode": "smtp; 550 user unknown"}], "timestamp": "2026-12-02T15:00:01.000Z"}),
    )
}

#[tokio::test]
async fn feedback_moves_a_sent_notification_forward_only_and_once() {
    let (handler, id) = with_notification(true).await;
    assert!(
        handler
            .handle(batch(vec![delivered("m1", &id)]))
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(
        status_of(&handler, &id).await,
        (NotificationStatus::Delivered, Some("250 ok".into()))
    );

    let bounce_detail = Some("Permanent: smtp; 550 user unknown".to_owned());
    handler.handle(batch(vec![bounced("m2", &id)])).await.unwrap();
    assert_eq!(
        status_of(&handler, &id).await,
        (NotificationStatus::Bounced, bounce_detail.clone())
    );
    assert_eq!(
        reason_of(&handler, &id).await.as_deref(),
        Some("permanent_bounce")
    );

    // SQS redelivers, and SES's events arrive out of order: neither moves it back.
    for late in [bounced("m2", &id), delivered("m1", &id)] {
        handler.handle(batch(vec![late])).await.unwrap();
    }
    assert_eq!(
        status_of(&handler, &id).await,
        (NotificationStatus::Bounced, bounce_detail)
    );
    assert_eq!(suppressed(&handler.suppressions).await.len(), 1);
}

#[tokio::test]
async fn a_complaint_after_a_delivery_is_recorded_and_feedback_before_the_send_is_not() {
    let (handler, id) = with_notification(true).await;
    let complaint = message_about(
        &id,
        "m2",
        "Complaint",
        json!({"complainedRecipients": [{"emailAddress": "ada@example.com"}], "complaintFeedbackType": "abuse", "timestamp": "2026-12-02T16:00:00.000Z"}),
    );
    handler
        .handle(batch(vec![delivered("m1", &id), complaint]))
        .await
        .unwrap();
    // The two ran concurrently: whichever came second, a complaint outranks a delivery.
    assert_eq!(
        status_of(&handler, &id).await,
        (NotificationStatus::Complained, Some("complaint: abuse".into()))
    );
    assert_eq!(reason_of(&handler, &id).await.as_deref(), Some("complaint"));

    let (handler, id) = with_notification(false).await;
    handler.handle(batch(vec![bounced("m1", &id)])).await.unwrap();
    assert_eq!(
        status_of(&handler, &id).await.0,
        NotificationStatus::Queued,
        "only a sent message gets feedback"
    );
    assert_eq!(
        suppressed(&handler.suppressions).await.len(),
        1,
        "the address bounced all the same"
    );
}

#[tokio::test]
async fn a_failed_status_write_returns_the_message_and_its_retry_does_it_all() {
    let (handler, id) = with_notification(true).await;
    handler
        .notifications
        .failpoints
        .set("record_feedback", Fault::Fail, 1);
    let response = handler.handle(batch(vec![bounced("m1", &id)])).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(status_of(&handler, &id).await.0, NotificationStatus::Sent);

    let response = handler.handle(batch(vec![bounced("m1", &id)])).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status_of(&handler, &id).await.0, NotificationStatus::Bounced);
    assert_eq!(suppressed(&handler.suppressions).await.len(), 1);
}
